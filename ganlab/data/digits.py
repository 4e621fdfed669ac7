"""scikit-learn's bundled 8x8 handwritten digits: the real-image dataset that needs no download.

1797 grey-level scans (values 0..16, mapped to 0..255), 10 classes, upscaled once to
``resolution`` and held on the training device. The digits have no official test split, so a
fixed 80/20 split (the same in every run, see :func:`ganlab.data.images.fixed_split`) gives
1438 training images, which the GAN samples, and 359 held-out images for the classifier metrics.
"""

from __future__ import annotations

import numpy as np
import torch

from ganlab.data.images import RESOLUTIONS, DeviceImages, check_choice, fixed_split
from ganlab.errors import ConfigError

LEVELS = 16  # load_digits counts ink in 4x4 blocks of a 32x32 bitmap: 0..16


class Digits(DeviceImages):
    """The 8x8 digits at ``resolution`` (8, 16, 32 or 64) px, 1 channel, 10 classes."""

    def __init__(self, resolution: int = 32, device: torch.device | str = "cpu", seed: int = 0):
        check_choice("dataset.resolution", resolution, RESOLUTIONS)
        try:
            from sklearn.datasets import load_digits
        except ImportError as err:
            raise ConfigError("dataset digits needs scikit-learn, which ships the digits: pip install scikit-learn") from err
        x, y = load_digits(return_X_y=True)
        images = torch.from_numpy(np.rint(x * (255 / LEVELS)).astype(np.uint8).reshape(-1, 1, 8, 8))
        labels = torch.from_numpy(y.astype(np.int64))
        train, test = fixed_split(len(images))
        super().__init__(images[train], labels[train], name=f"digits-{resolution}", device=device, seed=seed,
                         resolution=resolution, num_classes=10, test_images=images[test], test_labels=labels[test])
