"""ganlab: train the classic GAN objectives side by side and compare them in TensorBoard."""

__version__ = "0.1.0"
