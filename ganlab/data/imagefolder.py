"""Any folder of images (CelebA, LSUN, your own), optionally with one sub-folder per class.

The folder is searched recursively for ``.png .jpg .jpeg .bmp .webp .gif`` files (any case);
hidden files and folders (names starting with ".", e.g. macOS ``._x.jpg`` resource forks) are
ignored. When every image lies in a sub-folder of ``root`` and there are at least two of them,
the sorted sub-folder names are the classes; otherwise the set is unlabeled (``num_classes``
None).

Each image is converted to RGB (``channels=3``) or grey (``channels=1``) and resized with
Lanczos, as StyleGAN's ``dataset_tool.py`` does: with ``center_crop`` the shorter side goes to
``resolution`` and the centre square is kept; without it the whole image is squeezed to a square.

``in_memory`` chooses the storage (a string, as the YAML and the command line give it, or a bool):

- ``"auto"``: decode everything into device memory (:class:`~ganlab.data.images.DeviceImages`)
  when the decoded uint8 set is under 1 GiB, else stream it (:class:`~ganlab.data.images.LoaderImages`);
- ``"true"`` / ``"false"``: force one or the other.

An unreadable image is found before training on the in-memory path (everything is decoded at
construction) and at its first read on the streamed path. ``on_corrupt="stop"`` raises a
ConfigError naming the file; ``"skip"`` leaves it out, lists it in ``skipped`` and logs
"skipped N unreadable images, e.g. <path>".
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ganlab.data.images import DeviceImages, Item, LoaderImages, check_choice, choices
from ganlab.errors import ConfigError, first_line

log = logging.getLogger("ganlab")

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
RESOLUTIONS = (8, 16, 32, 64, 128, 256)
IN_MEMORY_LIMIT = 1 << 30  # bytes of decoded uint8 below which "auto" keeps the set in device memory
MODES = {1: "L", 3: "RGB"}


def find_images(root: Path) -> list[Path]:
    """Every image file under ``root``, recursively (following links to folders once), sorted, hidden names ignored."""
    found, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder, f) for f in files if not f.startswith(".") and f.lower().endswith(EXTENSIONS)]
    return sorted(found)


def read_image(path: Path, resolution: int, channels: int, center_crop: bool) -> torch.Tensor:
    """Decode, convert and resize one image: uint8 (channels, resolution, resolution). PIL's errors pass through."""
    with Image.open(path) as img:
        img.load()  # decode now: a truncated file fails here, not later
        img = img.convert(MODES[channels])
    w, h = img.size
    if center_crop:
        scale = resolution / min(w, h)
        size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
        if size != (w, h):
            img = img.resize(size, Image.Resampling.LANCZOS)
        left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        img = img.crop((left, top, left + resolution, top + resolution))
    elif (w, h) != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    pixels = torch.from_numpy(np.array(img, dtype=np.uint8))
    return pixels[None] if channels == 1 else pixels.permute(2, 0, 1).contiguous()


class ImageFiles(Dataset):
    """The image files as a map-style dataset of :data:`~ganlab.data.images.Item`: decoding never raises.

    An unreadable file comes back as a black image with its path and the one-line message to
    report, so that worker processes never die and the main process decides (stop or skip).
    """

    def __init__(self, paths: list[Path], labels: list[int] | None, resolution: int, channels: int, center_crop: bool):
        self.paths = [str(p) for p in paths]
        self.labels = labels
        self.resolution, self.channels, self.center_crop = resolution, channels, center_crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Item:
        path = self.paths[index]
        label = -1 if self.labels is None else self.labels[index]
        try:
            return read_image(Path(path), self.resolution, self.channels, self.center_crop), label, "", ""
        except Exception as err:  # anything PIL raises on foreign bytes (OSError, SyntaxError, ValueError, DecompressionBombError, ...)
            blank = torch.zeros((self.channels, self.resolution, self.resolution), dtype=torch.uint8)
            message = (f"dataset imagefolder: cannot read image {path} ({type(err).__name__}: {first_line(err)}); "
                       f"delete or replace it, or set dataset.on_corrupt=skip to leave unreadable images out")
            return blank, label, path, message


def parse_in_memory(value: str | bool) -> bool | None:
    """``"auto"`` -> None, ``"true"`` / True -> True, ``"false"`` / False -> False."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("auto", "true", "false"):
        return {"auto": None, "true": True, "false": False}[value.lower()]
    raise ConfigError(f"dataset.in_memory={value} is not allowed: choose auto, true or false")


def check_count(key: str, value: object, minimum: int) -> None:
    if type(value) is not int or value < minimum:
        raise ConfigError(f"{key}={value} is not allowed: choose a whole number >= {minimum}")


class ImageFolder:
    """A folder of images behind the image-dataset contract (see :mod:`ganlab.data.images`).

    Attributes besides the contract's: ``root``, ``paths`` (the image files), ``classes`` (the
    class folder names, or None), ``in_memory`` (the storage chosen), ``skipped`` (unreadable
    files left out) and ``store`` (the DeviceImages or LoaderImages that holds the images).
    """

    def __init__(self, root: str, resolution: int = 64, center_crop: bool = True, channels: int = 3,
                 on_corrupt: str = "stop", num_workers: int = 2, batch_size: int = 64,
                 in_memory: str | bool = "auto", device: torch.device | str = "cpu", seed: int = 0):
        check_choice("dataset.channels", channels, tuple(MODES))
        check_choice("dataset.resolution", resolution, RESOLUTIONS)
        check_choice("dataset.on_corrupt", on_corrupt, ("stop", "skip"))
        check_count("dataset.num_workers", num_workers, 0)
        check_count("dataset.batch_size", batch_size, 1)
        forced = parse_in_memory(in_memory)
        if root in (None, ""):
            raise ConfigError("dataset.root is not set: point it at a folder of images")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise ConfigError(f"dataset.root={self.root} is not a folder: point it at a folder of images")
        self.paths = find_images(self.root)
        if not self.paths:
            raise ConfigError(f"dataset imagefolder: no images under {self.root} (looked for "
                              f"{choices(['*' + e for e in EXTENSIONS])}, in sub-folders too); point dataset.root at a folder of images")
        self.classes, labels = self._classes()
        shape = (channels, resolution, resolution)
        nbytes = len(self.paths) * channels * resolution * resolution
        self.in_memory = forced if forced is not None else nbytes < IN_MEMORY_LIMIT
        key = f"{self.root.resolve()}|{channels}|{center_crop}"
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", self.root.resolve().name) or "root"
        self.name = f"imagefolder-{slug}-{hashlib.sha1(key.encode()).hexdigest()[:8]}-{resolution}"
        files = ImageFiles(self.paths, labels, resolution, channels, center_crop)
        num_classes = None if self.classes is None else len(self.classes)
        stream = LoaderImages(files, shape=shape, num_classes=num_classes, name=self.name, device=device, seed=seed,
                              batch_size=batch_size, num_workers=num_workers, on_corrupt=on_corrupt)
        if self.in_memory:
            self.store = self._decode_all(stream, num_classes, device, seed)
            stream.close()
        else:
            self.store = stream
        self.shape, self.num_classes = shape, num_classes
        self.device, self.generator = self.store.device, self.store.generator

    def _classes(self) -> tuple[list[str] | None, list[int] | None]:
        """Class names and per-image labels when every image sits in one of >= 2 top-level sub-folders."""
        tops = [p.relative_to(self.root).parts for p in self.paths]
        folders = sorted({t[0] for t in tops if len(t) > 1})
        if len(folders) < 2 or any(len(t) == 1 for t in tops):
            return None, None
        index = {name: i for i, name in enumerate(folders)}
        return folders, [index[t[0]] for t in tops]

    def _decode_all(self, stream: LoaderImages, num_classes: int | None, device, seed: int) -> DeviceImages:
        """Decode every image now (the loader's workers, in order), so a bad file shows before training."""
        images, labels, good = stream.decode(range(len(self.paths)), warn=False)
        if not bool(good.any()):
            raise ConfigError(f"dataset imagefolder: none of the {len(self.paths)} images under {self.root} is readable, e.g. {self.paths[0]}")
        if stream.skipped:
            log.warning("skipped %d unreadable images, e.g. %s", len(stream.skipped), stream.skipped[0])
        self._skipped = list(stream.skipped)
        return DeviceImages(images[good], None if num_classes is None else labels[good], name=self.name, device=device,
                            seed=seed, num_classes=num_classes)

    @property
    def skipped(self) -> list[str]:
        return self._skipped if self.in_memory else self.store.skipped

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.store.sample(n, generator)

    def sample_labeled(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.store.sample_labeled(n, generator)

    def classifier_data(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.store.classifier_data()

    def stream_state(self) -> dict[str, object] | None:
        """The streamed path's position, for checkpoints; None in device memory, where ``generator`` is all the state."""
        return None if self.in_memory else self.store.stream_state()

    def load_stream_state(self, state: dict[str, object]) -> None:
        self.store.load_stream_state(state)

    def __len__(self) -> int:
        return len(self.store)

    def __repr__(self) -> str:
        storage = "in device memory" if self.in_memory else f"streamed by {self.store.num_workers} workers"
        classes = f"{len(self.classes)} classes" if self.classes else "unlabeled"
        return f"ImageFolder({self.root}, {len(self)} images, shape={self.shape}, {classes}, {storage})"
