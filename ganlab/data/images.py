"""Image datasets behind one sampling contract, held in device memory or streamed from disk.

Every image dataset offers what :class:`ganlab.data.toy.ToyData` offers, so the training loop
cannot tell images from points:

- ``shape`` (C, H, W), ``num_classes`` (``None`` when unlabeled), ``device``, ``name`` (a cache
  key naming the dataset, resolution and channels, e.g. ``"mnist-32"``) and ``generator`` (a
  ``torch.Generator`` on the device, seeded by ``seed``);
- ``sample(n, generator=None)``: float32 (n, C, H, W) in [-1, 1] on the device, drawn uniformly
  with replacement; ``sample_labeled(n)`` also returns the int64 labels;
- ``classifier_data()``: (train_x, train_y, test_x, test_y) on the device, to train the small
  classifier behind the image metrics;
- ``len(data)``: the number of training images.

Two storage paths give the same statistics (``tests/test_data_images.py`` checks it):

- :class:`DeviceImages` holds the whole set once, as uint8 (N, C, H, W) on the training device,
  resized once at construction. A batch is an index draw and a gather on the device: no
  DataLoader, no host copies per step. Everything up to CIFAR-10 at 64 px fits easily.
- :class:`LoaderImages` streams a map-style dataset through a ``DataLoader`` (worker processes,
  pinned memory on CUDA, a seeded sampler with replacement), for folders too large for that.

Pixels are stored as uint8 and mapped to floats as ``x / 127.5 - 1``, so 0 -> -1 and 255 -> 1
exactly on both paths.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from ganlab.errors import ConfigError, first_line

log = logging.getLogger("ganlab")

RESOLUTIONS = (8, 16, 32, 64)  # the built-in datasets (MNIST adds its own 28); model=resnet takes 32 only
SPLIT_SEED = 0  # fixed, not the run's seed: every run must measure on the same held-out images
TEST_FRACTION = 0.2  # held-out share where a dataset has no test split of its own
RESIZE_CHUNK = 1024  # images resized at a time, which bounds the temporary float copy
CLASSIFIER_DATA_LIMIT = 2 << 30  # bytes of float32 that classifier_data() decodes from a streamed folder


def default_root() -> Path:
    """Where dataset files live unless ``dataset.root`` says otherwise: ``$GANLAB_DATA``, else ``~/.cache/ganlab/data``."""
    env = os.environ.get("GANLAB_DATA")
    return Path(env).expanduser() if env else Path("~/.cache/ganlab/data").expanduser()


def resolve_root(root: str | os.PathLike | None) -> Path:
    return Path(root).expanduser() if root not in (None, "") else default_root()


def choices(allowed: Sequence[object]) -> str:
    """``8, 16, 32 or 64``: a list of allowed values for a one-line message."""
    words = [str(a) for a in allowed]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def check_choice(key: str, value: object, allowed: Sequence[object]) -> None:
    """Raise a ConfigError naming ``key`` unless ``value`` is one of ``allowed`` (ints must be ints, not 32.0 or True)."""
    same_type = all(type(value) is type(a) for a in allowed)
    if not same_type or value not in allowed:
        raise ConfigError(f"{key}={value} is not allowed: choose {choices(allowed)}")


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-1, 1] (0 -> -1, 255 -> 1), on the tensor's own device."""
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def resize_uint8(images: torch.Tensor, resolution: int, device: torch.device | str) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) to (N, C, resolution, resolution) on ``device``, once, in chunks.

    Bilinear, antialiased when shrinking (otherwise thin strokes alias away); computed in float
    and rounded back to uint8 so that the stored set stays a quarter of the float size.
    """
    n, c, h, w = images.shape
    if (h, w) == (resolution, resolution):
        return images.to(device)
    out = torch.empty((n, c, resolution, resolution), dtype=torch.uint8, device=device)
    antialias = resolution < h or resolution < w
    for start in range(0, n, RESIZE_CHUNK):
        chunk = images[start:start + RESIZE_CHUNK].to(device).to(torch.float32)
        chunk = F.interpolate(chunk, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=antialias)
        out[start:start + len(chunk)] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


def fixed_split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) indices: a fixed 80/20 split of ``range(n)``, the same in every run and torch version.

    numpy's legacy RandomState is used because its stream is frozen (NEP 19); the split must not
    change under a user's feet, or cached classifiers would be scored on their training images.
    """
    if n < 2:
        raise ValueError(f"cannot split {n} image(s) into a training and a test set")
    perm = torch.from_numpy(np.random.RandomState(SPLIT_SEED).permutation(n))
    n_test = min(n - 1, max(1, round(n * TEST_FRACTION)))
    return perm[n_test:], perm[:n_test]


class ImageData:
    """What every image dataset offers; see the module docstring for the contract."""

    shape: tuple[int, int, int]
    num_classes: int | None
    name: str

    def __init__(self, *, shape: tuple[int, int, int], num_classes: int | None, name: str,
                 device: torch.device | str = "cpu", seed: int = 0):
        self.shape = tuple(int(s) for s in shape)
        self.num_classes = num_classes
        self.name = name
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images, float32 (n, C, H, W) in [-1, 1] on the device, with the dataset's generator (or ``generator``)."""
        raise NotImplementedError

    def sample_labeled(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Like :meth:`sample`, with the int64 labels of the images drawn."""
        raise NotImplementedError

    def classifier_data(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(train_x, train_y, test_x, test_y) on the device, to train a classifier for the metrics."""
        raise NotImplementedError

    def _require_labels(self, what: str) -> None:
        if self.num_classes is None:
            raise ValueError(f"{self.name} is unlabeled: it has no {what}")

    def __len__(self) -> int:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, {len(self)} images, shape={self.shape}, device={self.device})"


class DeviceImages(ImageData):
    """A whole image set as one uint8 tensor on the training device; a batch is a gather there.

    Args:
        images: uint8 (N, C, H, W), on any device; resized once to ``resolution`` and moved.
        labels: int64 (N,) or None for an unlabeled set.
        name: the cache key (dataset, resolution and channels).
        resolution: target height and width (None keeps H, W; they must then be equal).
        num_classes: the number of labels (default: the largest label + 1).
        test_images, test_labels: a held-out split for :meth:`classifier_data`; without one,
            a labeled set is split 80/20 by :func:`fixed_split`.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, *, name: str,
                 device: torch.device | str = "cpu", seed: int = 0, resolution: int | None = None,
                 num_classes: int | None = None, test_images: torch.Tensor | None = None,
                 test_labels: torch.Tensor | None = None):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) == 0:
            raise ValueError(f"{name}: no images")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if labels is not None and num_classes is None:
            num_classes = int(labels.max()) + 1
        resolution = resolution or images.shape[-1]
        super().__init__(shape=(images.shape[1], resolution, resolution), num_classes=num_classes,
                         name=name, device=device, seed=seed)
        self.images = resize_uint8(images, resolution, self.device)
        self.labels = None if labels is None else labels.to(self.device, torch.int64)
        self.test_images = None if test_images is None else resize_uint8(test_images, resolution, self.device)
        self.test_labels = None if test_labels is None else test_labels.to(self.device, torch.int64)

    def draw(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Indices drawn on the device, then the uint8 images and their labels (None if unlabeled)."""
        idx = torch.randint(len(self.images), (n,), device=self.device, generator=generator or self.generator)
        return self.images[idx], None if self.labels is None else self.labels[idx]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return to_unit_range(self.draw(n, generator)[0])

    def sample_labeled(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self._require_labels("labels")
        x, y = self.draw(n, generator)
        return to_unit_range(x), y

    def classifier_data(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        self._require_labels("classifier data")
        if self.test_images is not None:
            train_x, train_y, test_x, test_y = self.images, self.labels, self.test_images, self.test_labels
        else:
            train, test = (i.to(self.device) for i in fixed_split(len(self.images)))
            train_x, train_y, test_x, test_y = self.images[train], self.labels[train], self.images[test], self.labels[test]
        return to_unit_range(train_x), train_y, to_unit_range(test_x), test_y

    def __len__(self) -> int:
        return len(self.images)


# An item of a dataset that LoaderImages streams: (uint8 image (C, H, W), label (-1 when unlabeled),
# bad_path, message). bad_path is "" for a good image; for an unreadable one it names the file and
# message is the one-line error to raise. Workers report failures instead of raising, because an
# exception raised in a worker reaches the main process wrapped in a multi-line traceback, and
# because only the main process can count skipped files.
Item = tuple[torch.Tensor, int, str, str]

_FOREVER = sys.maxsize  # sampler length: the stream of indices never ends (drawn lazily)


class StreamSampler(Sampler[int]):
    """Uniform indices with replacement, forever, the same sequence for the same ``seed``.

    The DataLoader reads its sampler ahead of what training has used (workers prefetch), so a
    generator's state says little about where training is. This sampler is a pure function of
    ``seed`` and ``start``, a position in its sequence: an iterator begun after ``start = k``
    yields what a fresh one yields from its k-th index on (resume and rollback set it).
    """

    CHUNK = 4096  # indices drawn per generator call

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.start = n, seed, 0

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        skip = self.start
        while True:
            chunk = torch.randint(self.n, (self.CHUNK,), generator=generator)
            if skip >= self.CHUNK:  # positions used before the resume: drawn, not decoded
                skip -= self.CHUNK
                continue
            yield from chunk[skip:].tolist()
            skip = 0

    def __len__(self) -> int:
        return _FOREVER


class LoaderImages(ImageData):
    """Images streamed by a ``DataLoader`` from a map-style dataset of :data:`Item`, for sets too large for device memory.

    The main stream's indices come from a :class:`StreamSampler` seeded by ``seed``, so the same
    seed gives the same images whatever ``num_workers`` is. ``sample(n)`` returns exactly ``n``
    images: loader batches are moved to the device as they arrive (``non_blocking`` from pinned
    memory on CUDA), joined, and what is left over is kept for the next call. ``stream_state()``
    (the position in the index sequence and the leftover) and ``load_stream_state()`` let a resumed
    run continue the stream exactly where the checkpoint was taken. ``sample(n, generator)`` with
    an explicit generator draws its indices from that generator and decodes them in a separate
    pass (for held-out evaluation sets); it does not disturb the main stream.

    An unreadable image (``bad_path`` set) stops sampling with its message when ``on_corrupt`` is
    ``"stop"``; with ``"skip"`` it is recorded in ``skipped``, logged, and another image is drawn.
    """

    def __init__(self, dataset: Dataset, *, shape: tuple[int, int, int], num_classes: int | None, name: str,
                 device: torch.device | str = "cpu", seed: int = 0, batch_size: int = 64, num_workers: int = 2,
                 on_corrupt: str = "stop"):
        super().__init__(shape=shape, num_classes=num_classes, name=name, device=device, seed=seed)
        if on_corrupt not in ("stop", "skip"):
            raise ValueError(f"on_corrupt must be 'stop' or 'skip', got {on_corrupt!r}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.on_corrupt = on_corrupt
        self.skipped: list[str] = []
        self._skipped_set: set[str] = set()
        self.sampler = StreamSampler(len(dataset), seed)
        self.loader = self._make_loader(dataset, self.sampler, stream=True)
        self._batches = None  # the loader's iterator, started at the first sample (workers start then)
        self._fetched = 0  # positions of the index sequence taken from the loader so far
        self._left: tuple[torch.Tensor, torch.Tensor] | None = None  # drawn but not yet returned

    def _make_loader(self, dataset: Dataset, sampler: StreamSampler | None = None, stream: bool = False) -> DataLoader:
        """The main stream's loader (``stream``: workers kept alive, pinned batches on CUDA), or a one-pass decoder."""
        # The loader's own generator only seeds the workers; without it, DataLoader draws that
        # seed from the global RNG, which would shift the noise z of every later step.
        return DataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
            pin_memory=stream and self.device.type == "cuda", persistent_workers=stream and self.num_workers > 0,
            generator=torch.Generator().manual_seed(0),
        )

    def _good(self, bad_paths: Sequence[str], messages: Sequence[str], warn: bool = True) -> torch.Tensor | None:
        """A mask of the readable images in a batch (None when all are), after stop/skip handling (``warn``: log each new skip)."""
        if not any(bad_paths):
            return None
        for path, message in zip(bad_paths, messages):
            if not path:
                continue
            if self.on_corrupt == "stop":
                raise ConfigError(message)
            if path not in self._skipped_set:
                self._skipped_set.add(path)
                self.skipped.append(path)
                if warn:
                    log.warning("skipped %d unreadable images, e.g. %s", len(self.skipped), path)
        if len(self._skipped_set) >= len(self.dataset):
            raise ConfigError(f"dataset {self.name}: none of the {len(self.dataset)} images is readable, e.g. {self.skipped[0]}")
        return torch.tensor([not p for p in bad_paths])

    def _next_batch(self):
        if self._batches is None:
            self._batches = iter(self.loader)
        try:
            return next(self._batches)
        except StopIteration:  # only after sys.maxsize indices, but an infinite stream should say so
            self._batches = iter(self.loader)
            return next(self._batches)

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``n`` images of the main stream, uint8 on the device, and their labels."""
        xs, ys = ([self._left[0]], [self._left[1]]) if self._left is not None else ([], [])
        have = sum(len(x) for x in xs)
        while have < n:
            images, labels, bad_paths, messages = self._next_batch()
            self._fetched += len(images)
            good = self._good(bad_paths, messages)
            if good is not None:
                images, labels = images[good], labels[good]
            xs.append(images.to(self.device, non_blocking=True))
            ys.append(labels.to(self.device, non_blocking=True))
            have += len(images)
        x, y = torch.cat(xs), torch.cat(ys)
        self._left = (x[n:], y[n:]) if len(x) > n else None
        return x[:n], y[:n]

    def stream_state(self) -> dict[str, object]:
        """Where the main stream is: plain data and tensors, for a checkpoint."""
        images, labels = self._left if self._left is not None else (torch.empty(0, *self.shape, dtype=torch.uint8), torch.empty(0, dtype=torch.int64))
        return {"fetched": self._fetched, "left_images": images.cpu(), "left_labels": labels.cpu()}

    def load_stream_state(self, state: dict[str, object]) -> None:
        """Continue the main stream from ``state``; batches the loader had read ahead are dropped."""
        self._fetched = self.sampler.start = int(state["fetched"])
        self._batches = None  # a new iterator reads the sampler from its new start
        left = state["left_images"], state["left_labels"]
        self._left = (left[0].to(self.device), left[1].to(self.device)) if len(left[0]) else None

    def decode(self, indices: Sequence[int], warn: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode the given images in one pass (workers, no shuffling): uint8 images, labels and a readable mask, on the host.

        ``warn=False`` leaves the warning about skipped files to the caller, who can give one summary.
        """
        indices = list(indices)
        # Filled in place rather than joined at the end: the in-memory path decodes up to 1 GiB here.
        images = torch.empty((len(indices), *self.shape), dtype=torch.uint8)
        labels = torch.empty(len(indices), dtype=torch.int64)
        good = torch.ones(len(indices), dtype=torch.bool)
        start = 0
        for batch, batch_labels, bad_paths, messages in self._make_loader(Subset(self.dataset, indices)):
            end = start + len(batch)
            images[start:end], labels[start:end] = batch, batch_labels
            mask = self._good(bad_paths, messages, warn)
            if mask is not None:
                good[start:end] = mask
            start = end
        return images, labels, good

    def draw_with(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` images at indices drawn from ``generator`` (an unreadable one is redrawn), uint8 on the device."""
        xs, ys, have = [], [], 0
        while have < n:
            idx = torch.randint(len(self.dataset), (n - have,), generator=generator, device=generator.device)
            images, labels, good = self.decode(idx.tolist())
            xs.append(images[good])
            ys.append(labels[good])
            have += int(good.sum())
        return torch.cat(xs).to(self.device), torch.cat(ys).to(self.device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        x, _ = self.draw(n) if generator is None else self.draw_with(n, generator)
        return to_unit_range(x)

    def sample_labeled(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self._require_labels("labels")
        x, y = self.draw(n) if generator is None else self.draw_with(n, generator)
        return to_unit_range(x), y

    def classifier_data(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A fixed 80/20 split of (at most ``CLASSIFIER_DATA_LIMIT`` bytes of float32 worth of) the images, decoded now."""
        self._require_labels("classifier data")
        c, h, w = self.shape
        limit = max(2, CLASSIFIER_DATA_LIMIT // (4 * c * h * w))
        train, test = fixed_split(len(self.dataset))
        if len(self.dataset) > limit:  # a fixed subset, in the same 80/20 proportion
            train = train[:round(limit * (1 - TEST_FRACTION))]
            test = test[:limit - len(train)]
        out = []
        for indices in (train, test):
            images, labels, good = self.decode(indices.tolist())
            out += [to_unit_range(images[good].to(self.device)), labels[good].to(self.device)]
        return tuple(out)

    def close(self) -> None:
        """Stop the worker processes now rather than when the object is collected (sampling again restarts them)."""
        self._batches = None
        # A DataLoader keeps its persistent workers' iterator in _iterator; there is no public way to stop them.
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
            self.loader._iterator = None

    def __len__(self) -> int:
        return len(self.dataset)
