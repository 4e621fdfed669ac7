"""Any folder of images (CelebA, LSUN, your own), optionally with one sub-folder per class.

The folder is searched recursively for ``.png .jpg .jpeg .bmp .webp .gif`` files (any case);
hidden files and folders (names starting with ".", e.g. macOS ``._x.jpg`` resource forks) are
ignored. When every image lies in a sub-folder of ``root`` and there are at least two of them,
the sorted sub-folder names are the classes; otherwise the set is unlabeled (``num_classes``
None).

Every image Pillow opens is turned into 8-bit RGB (``channels=3``) or grey (``channels=1``) by
one rule, in :func:`to_8bit`: the EXIF orientation is applied first; integer samples are mapped
linearly from the full range of their bit depth to 0..255 (16-bit ``I;16*``: 0..65535; 32-bit
``I``: its file's declared depth, see :func:`integer_range`); float ``F`` is read as brightness in
[0, 1] and refused outside it; transparency (an alpha channel, or a PNG/palette transparent
colour) is composited on black, i.e. each channel is multiplied by alpha / 255; colour modes
(CMYK, YCbCr, LAB, HSV, palette) go through Pillow's own conversion to RGB, and grey is RGB's
ITU-R 601-2 luma. A refused image is handled like an unreadable one (below). The result is
resized with Lanczos, as StyleGAN's ``dataset_tool.py`` does: with ``center_crop`` the shorter
side goes to ``resolution`` and the centre square is kept; without it the whole image is squeezed
to a square.

``in_memory`` chooses the storage (a string, as the YAML and the command line give it, or a bool):

- ``"auto"``: decode everything into device memory (:class:`~ganlab.data.images.DeviceImages`)
  when the decoded uint8 set is under 1 GiB, else stream it (:class:`~ganlab.data.images.LoaderImages`);
- ``"true"`` / ``"false"``: force one or the other.

An unreadable image, or one whose values the rule above refuses (``F`` outside [0, 1]), is
found before training on the in-memory path (everything is decoded at construction) and at its
first read on the streamed path. ``on_corrupt="stop"`` raises a ConfigError naming the file (and,
for a refused one, its mode and why); ``"skip"`` leaves it out, lists it in ``skipped`` and logs
"skipped N unreadable images, e.g. <path>": a refused image cannot be used as it is, so it counts
as unreadable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from ganlab.data.images import DeviceImages, Item, LoaderImages, check_choice, choices
from ganlab.errors import ConfigError, first_line

log = logging.getLogger("ganlab")

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
RESOLUTIONS = (8, 16, 32, 64, 128, 256)
IN_MEMORY_LIMIT = 1 << 30  # bytes of decoded uint8 below which "auto" keeps the set in device memory
MODES = {1: "L", 3: "RGB"}
CONVERSION = 2  # bumped when to_8bit changes what a file decodes to: it is part of the cache key (classifiers)
GREY_MODES = ("1", "L")
COLOUR_MODES = ("RGB", "RGBX", "P", "CMYK", "YCbCr", "LAB", "HSV")
ALPHA_MODES = {"LA": "LA", "La": "LA", "PA": "RGBA", "RGBA": "RGBA", "RGBa": "RGBA"}  # mode -> straight-alpha mode
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")  # byte orders of one unsigned 16-bit grey
TIFF_BITS_PER_SAMPLE, TIFF_SAMPLE_FORMAT, TIFF_SIGNED = 258, 339, 2  # TIFF 6.0 tags and SampleFormat's "signed integer"


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


def _tag(tags, key: int, default: int) -> int:
    value = tags.get(key, default)
    return int(value[0] if isinstance(value, tuple) else value)


def integer_range(img: Image.Image) -> tuple[int, int]:
    """The (lowest, highest) sample value a file opened in 32-bit integer mode ``I`` can hold.

    Pillow's ``I`` holds samples of several depths, so the depth comes from the file: a PNG holds
    at most 16 bits per sample (Pillow before ``I;16`` opened 16-bit grey PNGs as ``I``), so
    (0, 65535); a TIFF declares BitsPerSample and SampleFormat (signed or not), e.g. (-32768,
    32767) for signed 16-bit; any other file is taken at Pillow's full signed 32-bit range.
    Read it from the opened file, before any operation that copies the image and drops ``format``.
    """
    if img.format == "PNG":
        return 0, (1 << 16) - 1
    tags = getattr(img, "tag_v2", None)
    bits, signed = (_tag(tags, TIFF_BITS_PER_SAMPLE, 32), _tag(tags, TIFF_SAMPLE_FORMAT, 1) == TIFF_SIGNED) if tags is not None else (32, True)
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _composite_on_black(img: Image.Image, mode: str) -> Image.Image:
    """``img`` in straight-alpha ``mode`` (LA or RGBA), composited on black: each channel times alpha / 255, rounded."""
    pixels = np.asarray(img.convert(mode), dtype=np.uint32)
    colour, alpha = pixels[..., :-1], pixels[..., -1:]
    out = ((colour * alpha + 127) // 255).astype(np.uint8)
    return Image.fromarray(out[..., 0] if mode == "LA" else out, "L" if mode == "LA" else "RGB")


def _wide_grey(img: Image.Image, value_range: tuple[int, int] | None, path: str) -> Image.Image:
    """A 16-bit, 32-bit integer or float grey image mapped to 8-bit ``L`` (``value_range`` None: 0..65535)."""
    values = np.asarray(img)
    if img.mode == "F":
        low, high = float(values.min()), float(values.max())
        if not (np.isfinite(values).all() and low >= 0.0 and high <= 1.0):
            raise ConfigError(f"dataset imagefolder: image {path} has mode F (float) with values in [{low:.6g}, {high:.6g}], "
                              f"outside [0, 1], the range ganlab reads float images as; rescale it to [0, 1] or save it as 8- or 16-bit")
        return Image.fromarray(np.rint(values * 255.0).astype(np.uint8), "L")
    low, high = value_range or (0, (1 << 16) - 1)
    if high > (1 << 31) - 1:  # unsigned 32-bit samples: Pillow keeps their bits in a signed int32
        values = values.view(np.uint32)
    values = values.astype(np.float64)
    span = float(values.max() - values.min()) if values.size else 0.0
    if high - low > (1 << 16) and 0 < span < (high - low) / 255:
        # E.g. 16-bit data saved as 32-bit integers: under the full-range rule every pixel would land
        # on one or two grey levels, a flat image that trains without a word. Say so instead.
        raise ConfigError(f"dataset imagefolder: image {path} has mode I ({'signed' if low < 0 else 'unsigned'} 32-bit) with values in "
                          f"[{values.min():.0f}, {values.max():.0f}], which the full 32-bit range maps to at most 2 of 256 grey levels; "
                          f"save it as a 16-bit image (values 0..65535) or as float in [0, 1]")
    if "transparency" in img.info:  # a PNG's transparent grey level: composited on black
        values[values == float(img.info["transparency"])] = low
    return Image.fromarray(np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8), "L")


def to_8bit(img: Image.Image, channels: int, path: str | os.PathLike = "") -> Image.Image:
    """Any image Pillow opens, as 8-bit ``L`` (``channels=1``) or ``RGB`` (``channels=3``), upright.

    The rule, mode by mode (Pillow's modes; the module docstring says it in words):

    - EXIF orientation first (``ImageOps.exif_transpose``), so a rotated phone photo is upright;
    - ``1``, ``L``: grey as stored (``1`` -> 0 or 255);
    - ``I;16``, ``I;16L``, ``I;16B``, ``I;16N``: ``round(v * 255 / 65535)``;
    - ``I``: linear from :func:`integer_range` (the file's declared bit depth) to 0..255; a 32-bit
      image whose values (not all equal) would land on at most 2 grey levels is refused, not flattened;
    - ``F``: ``round(v * 255)`` when every value lies in [0, 1]; otherwise (or NaN/inf) refused;
    - ``RGB``, ``RGBX``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's conversion to RGB;
    - alpha (``LA``, ``La``, ``PA``, ``RGBA``, ``RGBa``) or a transparent colour in ``info``
      (palette, grey or RGB PNGs): composited on black, channel * alpha / 255;
    - grey to ``channels=3`` repeats the grey; colour to ``channels=1`` is ITU-R 601-2 luma
      (Pillow's ``L``: 0.299 R + 0.587 G + 0.114 B).

    Args:
        img: an opened, loaded image (its ``format`` and TIFF tags are read for mode ``I``).
        channels: 1 or 3.
        path: the file, named in the error message.

    Raises:
        ConfigError: one line naming the file and the mode, for ``F`` outside [0, 1], for 32-bit ``I``
            data that would flatten to at most 2 grey levels, and for a mode the rule does not cover.
    """
    mode = img.mode
    value_range = integer_range(img) if mode == "I" else None  # before exif_transpose, whose copy has no format
    img = ImageOps.exif_transpose(img)
    transparent = "transparency" in img.info
    if mode in SIXTEEN_BIT_MODES or mode in ("I", "F"):
        img = _wide_grey(img, value_range, str(path))
    elif mode in ALPHA_MODES or (transparent and mode in GREY_MODES + COLOUR_MODES):
        img = _composite_on_black(img, ALPHA_MODES.get(mode, "LA" if mode in GREY_MODES else "RGBA"))
    elif mode in GREY_MODES:
        img = img.convert("L")
    elif mode in COLOUR_MODES:
        img = img.convert("RGB")
    else:
        raise ConfigError(f"dataset imagefolder: image {path} has mode {mode}, which ganlab does not convert; "
                          f"save it as an 8- or 16-bit PNG")
    return img.convert(MODES[channels])


def read_image(path: Path, resolution: int, channels: int, center_crop: bool) -> torch.Tensor:
    """Decode, convert (:func:`to_8bit`) and resize one image: uint8 (channels, resolution, resolution).

    PIL's errors pass through; a refused image raises :func:`to_8bit`'s ConfigError.
    """
    with Image.open(path) as img:
        img.load()  # decode now: a truncated file fails here, not later
        img = to_8bit(img, channels, path)
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
        except ConfigError as err:  # a readable file whose values the conversion rule refuses
            blank = torch.zeros((self.channels, self.resolution, self.resolution), dtype=torch.uint8)
            return blank, label, path, f"{err}, or set dataset.on_corrupt=skip to leave such images out"
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
        key = f"{self.root.resolve()}|{channels}|{center_crop}|conversion{CONVERSION}"
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
