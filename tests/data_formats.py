"""Write tiny datasets in the real on-disk formats, so that tests load them the way users' files load.

Nothing can be downloaded here, so each writer produces the files a real download leaves:

- :func:`write_mnist`: the four uncompressed idx files under ``<root>/MNIST/raw/`` (or
  ``FashionMNIST/raw/``), the layout and format ``torchvision.datasets.MNIST`` reads;
- :func:`write_cifar10`: ``<root>/cifar-10-batches-py/`` with ``data_batch_1..5``,
  ``test_batch`` and ``batches.meta``, protocol-2 pickles of the same dicts as the release;
- :func:`write_image_folder`: PNG and JPEG files of several sizes, RGB and grey, in two class
  sub-folders, and :func:`write_corrupt_image` for a file that no decoder accepts.

Images are numpy uint8 arrays: (N, 28, 28) for MNIST, (N, 32, 32, 3) (height, width, RGB) for CIFAR-10.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

IDX_UBYTE = 0x08  # the idx type code of unsigned bytes


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An idx file (LeCun's format): magic 0x0000, type 0x08, number of dims, big-endian int32 sizes, the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">HBB", 0, IDX_UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())
    return path


def write_mnist(root: Path, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
                test_labels: np.ndarray, folder: str = "MNIST") -> Path:
    """The four idx files under ``root/folder/raw``; returns that raw folder."""
    raw = Path(root) / folder / "raw"
    write_idx(raw / "train-images-idx3-ubyte", train_images)
    write_idx(raw / "train-labels-idx1-ubyte", train_labels)
    write_idx(raw / "t10k-images-idx3-ubyte", test_images)
    write_idx(raw / "t10k-labels-idx1-ubyte", test_labels)
    return raw


def constant_digits(labels: np.ndarray, size: int = 28, step: int = 20) -> np.ndarray:
    """Images whose every pixel is ``step * label``: a digit's label can be read back from any pixel."""
    return np.broadcast_to((np.asarray(labels, dtype=np.uint8) * step)[:, None, None], (len(labels), size, size)).copy()


def random_digits(n: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noise images (labels 0..9 in turn), each with at least one 0 and one 255 pixel."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    images[:, 0, 0], images[:, -1, -1] = 0, 255
    return images, np.arange(n, dtype=np.uint8) % 10


def write_tiny_mnist(root: Path, n_train: int = 60, n_test: int = 20, folder: str = "MNIST", constant: bool = True) -> Path:
    """A small MNIST: constant images (pixel = 20 * digit) or noise; labels cycle through 0..9."""
    train_labels, test_labels = np.arange(n_train) % 10, np.arange(n_test) % 10
    if constant:
        train, test = constant_digits(train_labels), constant_digits(test_labels)
    else:
        train, _ = random_digits(n_train, seed=1)
        test, _ = random_digits(n_test, seed=2)
    return write_mnist(root, train, train_labels, test, test_labels, folder)


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the release's batches are Python 2 pickles; protocol 2 is their newest


def write_cifar10(root: Path, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
                  test_labels: np.ndarray) -> Path:
    """``root/cifar-10-batches-py`` as in cifar-10-python.tar.gz; the training set is split over five batches."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(images: np.ndarray, labels: np.ndarray, name: str) -> dict:
        # (N, H, W, RGB) -> rows of 1024 red, 1024 green, 1024 blue values, as in the release
        data = np.ascontiguousarray(np.asarray(images, dtype=np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1))
        return {"batch_label": name, "labels": [int(v) for v in labels], "data": data,
                "filenames": [f"image_{i}.png" for i in range(len(images))]}

    for i, (images, labels) in enumerate(zip(np.array_split(train_images, 5), np.array_split(train_labels, 5)), start=1):
        _pickle(folder / f"data_batch_{i}", batch(images, labels, f"training batch {i} of 5"))
    _pickle(folder / "test_batch", batch(test_images, test_labels, "testing batch 1 of 1"))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _pickle(folder / "batches.meta", {"num_cases_per_batch": len(train_images) // 5, "label_names": names, "num_vis": 3072})
    return folder


def write_tiny_cifar10(root: Path, n_train: int = 50, n_test: int = 10) -> Path:
    """A small CIFAR-10 whose images are constant colours: red = 10 * label, green = 100, blue = 200 + label."""
    def images(labels: np.ndarray) -> np.ndarray:
        out = np.zeros((len(labels), 32, 32, 3), dtype=np.uint8)
        out[..., 0], out[..., 1], out[..., 2] = (10 * labels)[:, None, None], 100, (200 + labels)[:, None, None]
        return out
    train_labels, test_labels = np.arange(n_train) % 10, np.arange(n_test) % 10
    return write_cifar10(root, images(train_labels), train_labels, images(test_labels), test_labels)


def noise_image(height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """Random pixels with at least one 0 and one 255 in each channel."""
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    pixels[0, 0], pixels[-1, -1] = 0, 255
    return pixels


def save_image(path: Path, pixels: np.ndarray) -> Path:
    """Save uint8 (H, W) or (H, W, 3) pixels; the format follows the extension (JPEG at quality 95)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB")
    image.save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else image.save(path)
    return path


def write_corrupt_image(path: Path) -> Path:
    """A file named like an image that no decoder reads: a PNG signature, then garbage."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 10)
    return path


def write_image_folder(root: Path, per_class: int = 4, classes: tuple[str, ...] = ("cats", "dogs")) -> list[Path]:
    """``per_class`` images in each class sub-folder: PNG and JPEG, RGB and grey, landscape, portrait and square."""
    sizes = [(24, 40), (50, 20), (33, 33), (17, 64)]
    paths = []
    for c, name in enumerate(classes):
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            channels = 1 if i % 2 else 3
            ext = ".jpg" if i % 3 == 1 else ".png"
            paths.append(save_image(Path(root) / name / f"img_{i}{ext}", noise_image(h, w, channels, seed=100 * c + i)))
    return paths
