"""Write an MNIST-format stand-in made from scikit-learn's bundled 8x8 digits, for machines without MNIST.

    python scripts/make_digits_mnist.py <root> [--train 60000] [--test 10000] [--seed 0]

Writes torchvision's raw layout, which ``dataset=mnist dataset.root=<root>`` (and any code that
reads MNIST through torchvision with ``download=False``) loads:

    <root>/MNIST/raw/{train,t10k}-images-idx3-ubyte, {train,t10k}-labels-idx1-ubyte

Each image is one of the 1797 scans (ink levels 0..16 mapped to 0..255), upscaled to 20 x 20
(bilinear) and put at a random offset into a black 28 x 28 frame, as MNIST centres its 20 x 20
digits in 28 x 28 (here the offset varies, 0..8 px on each axis). The scans are split once, 80/20
by ganlab's fixed split, so that the test images are other people's handwriting than the
training images. Used for the MLP-on-images budget check of issue #10 (README, "Models").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from data_formats import write_mnist  # noqa: E402  (the idx writer the tests use)

from ganlab.data.digits import LEVELS  # noqa: E402
from ganlab.data.images import fixed_split  # noqa: E402

SIZE = 28  # MNIST's frame
DIGIT = 20  # MNIST's digits fit a 20 x 20 box


def upscaled_scans() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 scans as uint8 (N, 20, 20) and their int labels."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    scans = torch.from_numpy(x.reshape(-1, 1, 8, 8) * (255 / LEVELS)).float()
    big = F.interpolate(scans, size=(DIGIT, DIGIT), mode="bilinear", align_corners=False)
    return big.round().clamp(0, 255).to(torch.uint8)[:, 0].numpy(), y.astype(np.uint8)


def framed(scans: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws (with replacement) of ``scans``, each at a random offset in a 28 x 28 frame."""
    pick = rng.integers(len(scans), size=n)
    rows, cols = rng.integers(SIZE - DIGIT + 1, size=(2, n))
    images = np.zeros((n, SIZE, SIZE), dtype=np.uint8)
    for i, (k, r, c) in enumerate(zip(pick, rows, cols)):
        images[i, r:r + DIGIT, c:c + DIGIT] = scans[k]
    return images, labels[pick]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="dataset root: files go to <root>/MNIST/raw")
    parser.add_argument("--train", type=int, default=60_000, help="training images (MNIST: 60000)")
    parser.add_argument("--test", type=int, default=10_000, help="test images (MNIST: 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws and offsets")
    args = parser.parse_args(argv)
    scans, labels = upscaled_scans()
    train_idx, test_idx = (i.numpy() for i in fixed_split(len(scans)))
    rng = np.random.default_rng(args.seed)
    train_x, train_y = framed(scans[train_idx], labels[train_idx], args.train, rng)
    test_x, test_y = framed(scans[test_idx], labels[test_idx], args.test, rng)
    raw = write_mnist(args.root, train_x, train_y, test_x, test_y)
    print(f"wrote {args.train} training and {args.test} test images (28 x 28, 10 classes) to {raw}")


if __name__ == "__main__":
    main()
