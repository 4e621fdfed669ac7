"""FID, KID and Inception Score with the standard Inception network, when it can be had offline.

The published numbers (FID of Heusel et al. 2017, KID of Bińkowski et al. 2018, IS of Salimans
et al. 2016) need the TensorFlow Inception graph of 2015-12-05, ported to PyTorch, and
torch-fidelity's port of the reference code, which matches the TensorFlow implementations to
float precision. Both are normally downloaded at first use; ganlab never downloads anything, so
they are used only when the package is installed *and* the weights file is given by path
(``metrics.inception_weights``). Otherwise :func:`inception_metrics` raises
:class:`InceptionUnavailable`, whose one-line message says how to provide them, and the image
evaluator carries on with the classifier metrics of ``ganlab.metrics.images``.

torchmetrics' ``FrechetInceptionDistance``, ``KernelInceptionDistance`` and ``InceptionScore``
run torch-fidelity's Inception network internally (they refuse to build without it), so
torch-fidelity is the one requirement either way and is called directly.

Typical use::

    check_inception(weights)                     # raises InceptionUnavailable early
    metrics = inception_metrics(lambda n: fake[:n], lambda n: real[:n], n=10_000, weights_path=weights)
    metrics["fid"], metrics["kid"], metrics["is"]
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import torch

from ganlab.viz.grid import to_uint8

PACKAGE = "torch_fidelity"
WEIGHTS_NAME = "pt_inception-2015-12-05 weights file (torch-fidelity's weights-inception-2015-12-05-6726825d.pth)"
HOW_TO = f"pip install torch-fidelity, and point metrics.inception_weights=<path to the {WEIGHTS_NAME}>"
KID_SUBSET_SIZE = 1000  # torch-fidelity's default (Bińkowski et al.); capped at the sample count
ISC_SPLITS = 10  # Salimans et al.: the score is averaged over 10 splits
BATCH_SIZE = 64  # torch-fidelity's default: Inception runs at 299x299, so memory grows fast with it

# torch-fidelity's result keys (torch_fidelity.KEY_METRIC_*), mapped to ganlab's names.
RESULT_KEYS = {
    "frechet_inception_distance": "fid",
    "kernel_inception_distance_mean": "kid",
    "inception_score_mean": "is",
}


class InceptionUnavailable(RuntimeError):
    """The Inception metrics cannot run here; the message (one line) says why and how to fix it."""


def check_inception(weights_path: str | Path | None) -> None:
    """Raise :class:`InceptionUnavailable` unless torch-fidelity imports and ``weights_path`` is a file."""
    missing = []
    try:
        importlib.import_module(PACKAGE)
    except ImportError:
        missing.append("torch-fidelity is not installed")
    if weights_path is None:
        missing.append("no Inception weights file is configured")
    elif not Path(weights_path).is_file():
        missing.append(f"the Inception weights file {weights_path} does not exist")
    if missing:
        raise InceptionUnavailable(f"FID, KID and IS skipped ({'; '.join(missing)}): to get them, {HOW_TO}")


class _Images(torch.utils.data.Dataset):
    """A fixed set of uint8 (3, H, W) images on the CPU, the form torch-fidelity's Inception reads."""

    def __init__(self, images: torch.Tensor):
        images = (images if images.dtype == torch.uint8 else to_uint8(images)).cpu()
        if images.shape[1] == 1:  # Inception reads RGB: grey images become three equal channels
            images = images.repeat(1, 3, 1, 1)
        if images.shape[1] != 3:
            raise ValueError(f"Inception metrics need 1- or 3-channel images, got {images.shape[1]} channels")
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def inception_metrics(
    generate_fn: Callable[[int], torch.Tensor],
    real_fn: Callable[[int], torch.Tensor],
    n: int,
    weights_path: str | Path | None,
    cuda: bool | None = None,
    seed: int = 2020,
) -> dict[str, float]:
    """``fid``, ``kid`` (mean over subsets) and ``is`` (mean over 10 splits) of generated against real images.

    Args:
        generate_fn: ``generate_fn(n)`` returns n generated images (n, C, H, W), C = 1 or 3, as
            floats in [-1, 1] or as uint8 0..255 (already quantised: kept as they are).
        real_fn: ``real_fn(n)`` returns n real images, the same way.
        n: number of images on each side (FID is biased upwards for small n: compare equal n only).
        weights_path: the Inception weights file (see :data:`HOW_TO`).
        cuda: run Inception on the (current) CUDA device; by default when the images are on CUDA.
        seed: torch-fidelity's RNG seed (KID subsets, IS splits), fixed so that evaluations compare.

    Raises:
        InceptionUnavailable: torch-fidelity or the weights are missing (nothing is generated then).
    """
    check_inception(weights_path)
    fidelity = importlib.import_module(PACKAGE)
    fake, real = generate_fn(n), real_fn(n)
    if cuda is None:
        cuda = fake.device.type == "cuda"
    found = fidelity.calculate_metrics(
        input1=_Images(fake),
        input2=_Images(real),
        cuda=bool(cuda),
        batch_size=BATCH_SIZE,
        isc=True,
        fid=True,
        kid=True,
        feature_extractor_weights_path=str(weights_path),
        kid_subset_size=min(KID_SUBSET_SIZE, n),
        isc_splits=ISC_SPLITS,
        rng_seed=seed,
        cache=False,  # the inputs change at every evaluation; nothing to gain from its disk cache
        verbose=False,
    )
    return {name: float(found[key]) for key, name in RESULT_KEYS.items()}
