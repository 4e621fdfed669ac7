"""CIFAR-10 (50k train, 10k test, 32x32 RGB, 10 classes), read from its python batches and held on the device.

The files are those of ``cifar-10-python.tar.gz``: ``<root>/cifar-10-batches-py/`` holding
``data_batch_1`` .. ``data_batch_5`` and ``test_batch``, each a pickled dict with ``data``
(uint8 (N, 3072): the 1024 red, then green, then blue values of each image, row-major) and
``labels`` (N ints).

Why ganlab reads the batches itself rather than through ``torchvision.datasets.CIFAR10``:
torchvision refuses any file whose md5 differs from the official release's, which also refuses
every CIFAR-format set that is not that release (a subset, a re-encoding, the tests' tiny
files), and its md5 check is also what makes its plain ``pickle.load`` safe. ganlab instead

- uses torchvision only to download (``download=True``): torchvision fetches the archive,
  checks the archive's md5 and unpacks it;
- checks the md5 of each batch against torchvision's list of the official sums, and records the
  answer in ``official``; files that differ still load, with a warning that the scores are not
  comparable with published CIFAR-10 numbers;
- unpickles with an allow-list (dicts, lists, strings, numbers and numpy arrays only), because
  a pickle that is not the known release could otherwise run code when loaded.
"""

from __future__ import annotations

import codecs
import importlib
import logging
import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
import torchvision
from torchvision.datasets.utils import check_integrity

from ganlab.data.images import RESOLUTIONS, DeviceImages, check_choice, resolve_root
from ganlab.errors import ConfigError, first_line

log = logging.getLogger("ganlab")

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
OFFICIAL_MD5 = dict(torchvision.datasets.CIFAR10.train_list + torchvision.datasets.CIFAR10.test_list)


def _numpy_global(module: str, name: str):
    """A numpy function from ``numpy._core`` (numpy 2) or ``numpy.core`` (numpy 1, and old pickles' name for it)."""
    for mod in (f"numpy._core.{module}", f"numpy.core.{module}"):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {module}.{name}")


# Everything a CIFAR batch pickle refers to: numpy's array reconstruction, and _codecs.encode,
# which protocol-2 pickles written by Python 3 use for bytes.
_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}
for _core in ("numpy._core", "numpy.core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _numpy_global("multiarray", "_reconstruct")
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _numpy_global("multiarray", "scalar")
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _numpy_global("numeric", "_frombuffer")


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain data and numpy arrays, and refuses every other global."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR batch holds only arrays, lists and strings") from None


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, 32, 32) images and int64 labels of one batch file; a bad file is a ConfigError naming it."""
    problem = None
    try:
        with open(path, "rb") as f:
            # latin1: the official batches are Python 2 pickles, whose numpy arrays need it (numpy's docs)
            entry = _BatchUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, OSError) as err:
        problem = first_line(err)
    else:
        entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()} if isinstance(entry, dict) else {}
        data, labels = entry.get("data"), entry.get("labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            problem = "no uint8 'data' array of shape (N, 3072)"
        elif labels is None or len(labels) != len(data) or not all(0 <= int(v) < len(CLASSES) for v in labels):
            problem = f"'labels' must hold {len(data)} labels in 0..{len(CLASSES) - 1}"
    if problem is not None:
        raise ConfigError(f"dataset cifar10: {path} is not a CIFAR-10 python batch ({problem}); delete the folder "
                          f"and run with dataset.download=true, or replace it with the files of cifar-10-python.tar.gz")
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32))
    return images, torch.tensor([int(v) for v in labels], dtype=torch.int64)


def download_cifar10(root: Path) -> None:
    """Fetch and unpack the official archive through torchvision (it checks the archive's md5)."""
    try:
        torchvision.datasets.CIFAR10(root=str(root), train=True, download=True)
    except (RuntimeError, URLError, OSError) as err:
        raise ConfigError(f"dataset cifar10: downloading CIFAR-10 into {root} failed ({first_line(err)}); "
                          f"check the network, or unpack cifar-10-python.tar.gz there by hand") from err


class CIFAR10(DeviceImages):
    """CIFAR-10 at ``resolution`` (8, 16, 32 or 64) px, 3 channels, 10 classes (``classes`` names them).

    ``official`` is True when every batch matches the md5 of the official release.
    """

    classes = CLASSES

    def __init__(self, root: str | None = None, download: bool = False, resolution: int = 32,
                 device: torch.device | str = "cpu", seed: int = 0):
        check_choice("dataset.resolution", resolution, RESOLUTIONS)
        self.root = resolve_root(root)
        folder = self.root / FOLDER
        if download:
            download_cifar10(self.root)
        missing = [f for f in TRAIN_FILES + (TEST_FILE,) if not (folder / f).is_file()]
        if missing:
            raise ConfigError(self._missing_message(folder, missing))
        differs = [f for f in TRAIN_FILES + (TEST_FILE,) if not check_integrity(str(folder / f), OFFICIAL_MD5[f])]
        self.official = not differs
        if differs:
            log.warning("dataset cifar10: %s is not the official CIFAR-10 release (the md5 of %s differs); "
                        "loading it as CIFAR-10-format data, so scores are not comparable with published CIFAR-10 numbers",
                        folder, differs[0])
        train = [read_batch(folder / f) for f in TRAIN_FILES]
        test_x, test_y = read_batch(folder / TEST_FILE)
        super().__init__(torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]), name=f"cifar10-{resolution}",
                         device=device, seed=seed, resolution=resolution, num_classes=len(CLASSES),
                         test_images=test_x, test_labels=test_y)

    def _missing_message(self, folder: Path, missing: list[str]) -> str:
        fix = "(or set dataset.root / $GANLAB_DATA)"
        archive = self.root / "cifar-10-python.tar.gz"
        if archive.is_file():
            return f"dataset cifar10: {archive} is not unpacked; run tar -xzf {archive} -C {self.root}, or run with dataset.download=true {fix}"
        if len(missing) == len(TRAIN_FILES) + 1:
            return (f"dataset cifar10: no CIFAR-10 files under {folder} (looked for {missing[0]}); run with dataset.download=true "
                    f"on a machine with a network, or unpack cifar-10-python.tar.gz into {self.root} {fix}")
        return (f"dataset cifar10: CIFAR-10 files missing under {folder}: {', '.join(missing)}; run with dataset.download=true "
                f"on a machine with a network, or unpack cifar-10-python.tar.gz into {self.root} {fix}")
