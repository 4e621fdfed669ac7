"""MNIST, Fashion-MNIST and Stacked MNIST, read through torchvision and held on the training device.

torchvision reads the four uncompressed idx files under ``<root>/MNIST/raw/`` (or
``<root>/FashionMNIST/raw/``): ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``. It checks only that they exist (the md5
sums it knows are those of the ``.gz`` downloads), so any files in the idx format load, which
is what the tests rely on. ``download=True`` is passed to torchvision for machines with a
network. The 28x28 digits are resized once (bilinear) to ``resolution``; 28 keeps them as they are.

Stacked MNIST (VEEGAN, PacGAN) puts three MNIST digits into the R, G and B channels: 1000
modes, label ``100 * d_R + 10 * d_G + d_B``. It is drawn on the device from the same uint8
MNIST tensor, so it costs no memory beyond MNIST itself.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision

from ganlab.data.images import RESOLUTIONS, DeviceImages, check_choice, resolve_root
from ganlab.errors import ConfigError, first_line

RESOLUTIONS = tuple(sorted({*RESOLUTIONS, 28}))  # 28: the files' own size, which model=mlp and model=dcgan take
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
STACKED_SEED = 0  # the fixed training set of n_train triples is part of the benchmark, not of the run


def missing_message(key: str, title: str, raw: Path) -> str:
    """Say what is missing under ``raw`` and how to get it, in one line."""
    missing = [f for f in IDX_FILES if not (raw / f).is_file()] or list(IDX_FILES)
    fix = "(or set dataset.root / $GANLAB_DATA)"
    if all((raw / f"{f}.gz").is_file() for f in missing):
        return (f"dataset {key}: {raw} holds the compressed {title} files only; unpack them there "
                f"(gunzip {raw}/*.gz) or run with dataset.download=true {fix}")
    if len(missing) == len(IDX_FILES):
        return (f"dataset {key}: no {title} files under {raw} (looked for {IDX_FILES[0]}); run with "
                f"dataset.download=true on a machine with a network, or put the four idx files there {fix}")
    return (f"dataset {key}: {title} files missing under {raw}: {', '.join(missing)}; run with "
            f"dataset.download=true on a machine with a network, or put them there {fix}")


def read_split(tv_class: type, key: str, root: Path, download: bool, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 28, 28) images and int64 labels of one split, through torchvision; problems as ConfigErrors."""
    title = tv_class.__name__
    raw = root / title / "raw"
    try:
        ds = tv_class(root=str(root), train=train, download=download)
    except RuntimeError as err:
        if "Dataset not found" in str(err):
            raise ConfigError(missing_message(key, title, raw)) from err
        if download:  # torchvision gathers each mirror's failure into one multi-line RuntimeError: keep the first and the last
            lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__]
            reason = lines[0].rstrip(":") + (f", last: {lines[-1]}" if len(lines) > 1 else "")
            raise ConfigError(f"dataset {key}: downloading {title} into {raw} failed ({reason}); "
                              f"check the network, or put the four idx files there by hand") from err
        raise ConfigError(f"dataset {key}: the {title} files under {raw} are unreadable ({first_line(err)}); "
                          f"delete them and run with dataset.download=true, or replace them") from err
    except (AssertionError, ValueError, TypeError, OSError) as err:  # a truncated or foreign file fails torchvision's asserts
        raise ConfigError(f"dataset {key}: the {title} files under {raw} are unreadable ({first_line(err)}); "
                          f"delete them and run with dataset.download=true, or replace them") from err
    return ds.data, ds.targets.to(torch.int64)


class MNIST(DeviceImages):
    """MNIST digits at ``resolution`` (8, 16, 28, 32 or 64) px, 1 channel, 10 classes; 60k train, 10k test."""

    key = "mnist"
    torchvision_class: type = torchvision.datasets.MNIST

    def __init__(self, root: str | None = None, download: bool = False, resolution: int = 32,
                 device: torch.device | str = "cpu", seed: int = 0):
        check_choice("dataset.resolution", resolution, RESOLUTIONS)
        self.root = resolve_root(root)
        train_x, train_y = read_split(self.torchvision_class, self.key, self.root, download, train=True)
        test_x, test_y = read_split(self.torchvision_class, self.key, self.root, False, train=False)
        super().__init__(train_x[:, None], train_y, name=f"{self.key}-{resolution}", device=device, seed=seed,
                         resolution=resolution, num_classes=10, test_images=test_x[:, None], test_labels=test_y)


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando's clothing images in MNIST's format), read the same way."""

    key = "fashion_mnist"
    torchvision_class = torchvision.datasets.FashionMNIST


class StackedMNIST(MNIST):
    """Three MNIST digits as the R, G, B channels: 3 channels, 1000 modes (``num_classes``).

    ``n_train=None`` draws three independent MNIST images per sample, on the fly (60000^3
    possible images); an integer fixes a training set of that many triples (PacGAN uses a
    finite set), drawn once with a fixed seed and stored as indices only. ``classifier_data()``
    returns plain 1-channel MNIST, so that the metrics can classify each channel separately
    (``channel_classes`` = 10) and count the modes. ``len()`` is ``n_train``, or the number of
    MNIST training images the triples are drawn from.
    """

    key = "stacked_mnist"
    channel_classes = 10
    place = (100, 10, 1)  # label = 100 * d_R + 10 * d_G + d_B

    def __init__(self, root: str | None = None, download: bool = False, resolution: int = 32,
                 n_train: int | None = None, device: torch.device | str = "cpu", seed: int = 0):
        if n_train is not None and (type(n_train) is not int or n_train < 1):
            raise ConfigError(f"dataset.n_train={n_train} is not allowed: choose a positive number of triples, or null to draw them on the fly")
        super().__init__(root, download, resolution, device, seed)
        self.shape = (3, resolution, resolution)
        self.num_classes = 10 ** 3
        self.n_train = n_train
        self.triples = None
        if n_train is not None:
            generator = torch.Generator().manual_seed(STACKED_SEED)
            self.triples = torch.randint(len(self.images), (n_train, 3), generator=generator).to(self.device)
            self.name = f"{self.key}-{resolution}-n{n_train}"

    def draw(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        generator = generator or self.generator
        if self.triples is None:  # three independent draws per sample
            idx = torch.randint(len(self.images), (n, 3), device=self.device, generator=generator)
        else:
            idx = self.triples[torch.randint(len(self.triples), (n,), device=self.device, generator=generator)]
        images = self.images[idx.flatten()].view(n, 3, *self.shape[1:])
        place = torch.tensor(self.place, device=self.device)
        return images, (self.labels[idx] * place).sum(dim=1)

    def __len__(self) -> int:
        return self.n_train if self.n_train is not None else len(self.images)
