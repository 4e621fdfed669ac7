"""A small CNN classifier that ganlab trains itself, the offline stand-in for Inception.

Inception-based metrics need ImageNet weights that are normally downloaded; on a machine
without a network the image metrics use a classifier trained on the dataset's own labels
instead (as the Stacked MNIST literature does with an MNIST classifier). Its penultimate layer
gives the features of the Fréchet classifier distance, its softmax the class predictions for
coverage and the classifier score.

The trained weights are cached per dataset in ``<cache_dir>/<data name>.pt`` (default
``$GANLAB_CACHE/classifiers``, else ``~/.cache/ganlab/classifiers``), so a sweep trains once::

    classifier, accuracy = get_classifier("digits-32", data.classifier_data, data.shape,
                                          data.num_classes, cache_dir=None, device=data.device)
    features, logits = classifier.features(images), classifier(images)

Training draws from its own seeded generators and restores the global RNG afterwards, so a run
gives the same numbers whether the classifier came from the cache or was trained in it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.checkpoint import load_checkpoint, save_checkpoint
from ganlab.errors import ConfigError

log = logging.getLogger("ganlab")

# Bump when the architecture or the training recipe changes: cached files of another
# version are retrained instead of loaded into a network they do not describe.
ARCH_VERSION = 1
FEATURE_DIM = 128  # penultimate width: the FCD feature space (Inception's is 2048)
TRAIN_STEPS = 2000  # ~2 MNIST epochs at batch 64; 15-20 s on one CPU core at 32x32
TRAIN_BATCH = 64
TRAIN_LR = 1e-3  # Adam's default; the network is small and has no normalisation layers
LOW_ACCURACY = 0.8  # below this the class-based metrics say more about the classifier than about G

ClassifierData = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def default_cache_dir() -> Path:
    """``$GANLAB_CACHE/classifiers``, else ``~/.cache/ganlab/classifiers``."""
    root = os.environ.get("GANLAB_CACHE") or Path.home() / ".cache" / "ganlab"
    return Path(root) / "classifiers"


class Classifier(nn.Module):
    """Three strided convolutions and a 128-unit feature layer: small enough to train on one CPU core.

    Strided convolutions from the first layer on (no pooling, no full-resolution layer) keep the
    cost under a million multiply-adds per 32x32 image, so the default 2000 training steps take
    15-20 s on one CPU core. No BatchNorm or dropout: the network behaves the same in train and
    eval mode, and training draws nothing from the global RNG.
    """

    def __init__(self, shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        channels, height, width = shape
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.body(torch.zeros(1, channels, height, width)).shape[1]
        self.penultimate = nn.Sequential(nn.Linear(flat, FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (n, 128): the feature space of the Fréchet classifier distance."""
        return self.penultimate(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (n, num_classes)."""
        return self.head(self.features(x))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both outputs from one pass (the metrics need both for every image)."""
        features = self.features(x)
        return features, self.head(features)


def accuracy(classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    """Share of ``x`` that ``classifier`` labels ``y`` (evaluated in batches, no gradients)."""
    with torch.no_grad():
        correct = sum(int((classifier(xb).argmax(dim=1) == yb).sum()) for xb, yb in zip(x.split(batch), y.split(batch)))
    return correct / max(len(y), 1)


def untrained_classifier(shape: tuple[int, int, int], num_classes: int, seed: int = 0) -> Classifier:
    """A freshly initialised :class:`Classifier`, drawn without touching the global RNG.

    The initialisation comes from the global CPU RNG (nn.Module's reset_parameters); it is forked
    so that the caller's stream, which drives the run's z, is the same whether the classifier is
    trained or loaded from the cache.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Classifier(shape, num_classes)


def train_classifier(
    data: ClassifierData,
    shape: tuple[int, int, int],
    num_classes: int,
    device: torch.device | str,
    steps: int = TRAIN_STEPS,
    batch_size: int = TRAIN_BATCH,
    seed: int = 0,
) -> tuple[Classifier, float]:
    """Train a :class:`Classifier` with Adam on ``data``'s train split; return it (eval mode) and its test accuracy."""
    train_x, train_y, test_x, test_y = (t.to(device) for t in data)
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError("classifier data needs non-empty train and test splits")
    model = untrained_classifier(shape, num_classes, seed).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=TRAIN_LR)
    # Cosine decay to 0: the last steps settle in a minimum instead of hopping around it at full step size.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    generator = torch.Generator(train_x.device).manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(train_x), (batch_size,), device=train_x.device, generator=generator)
        loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval().requires_grad_(False)
    return model, accuracy(model, test_x, test_y)


def _load_cached(path: Path, shape: tuple[int, int, int], num_classes: int, device: torch.device | str) -> tuple[Classifier, float] | None:
    """The cached classifier at ``path`` if it exists and fits; None (with a log line) otherwise."""
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path, map_location="cpu")
        found = (state.get("arch_version"), tuple(state.get("shape", ())), state.get("num_classes"))
        if found != (ARCH_VERSION, tuple(shape), num_classes):
            log.info("classifier cache %s is for (version, shape, classes) = %s, not %s: retraining", path, found, (ARCH_VERSION, tuple(shape), num_classes))
            return None
        model = untrained_classifier(shape, num_classes)
        model.load_state_dict(state["model"])
        test_accuracy = float(state["test_accuracy"])
    except (ConfigError, AttributeError, KeyError, RuntimeError, TypeError, ValueError) as err:
        # A half-copied or foreign file must not stop a training run: the cache can be rebuilt.
        log.warning("classifier cache %s is unusable (%s): retraining", path, str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None
    return model.to(device).eval().requires_grad_(False), test_accuracy


def get_classifier(
    data_name: str,
    classifier_data_fn: Callable[[], ClassifierData],
    shape: tuple[int, int, int],
    num_classes: int,
    cache_dir: str | Path | None,
    device: torch.device | str,
    steps: int = TRAIN_STEPS,
    batch_size: int = TRAIN_BATCH,
    seed: int = 0,
) -> tuple[Classifier, float]:
    """The classifier for ``data_name``, from ``<cache_dir>/<data_name>.pt`` or trained and cached.

    Args:
        data_name: the dataset's cache key (``data.name``, e.g. ``"digits-32"``).
        classifier_data_fn: returns (train_x, train_y, test_x, test_y); called only to train.
        shape: (C, H, W) of the classifier's input.
        num_classes: number of labels.
        cache_dir: folder of cached classifiers; None for :func:`default_cache_dir`.
        device: where the returned classifier lives (and trains).
        steps, batch_size, seed: the training recipe (only used when training).

    Returns:
        (classifier in eval mode with frozen parameters, its accuracy on the test split).
    """
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{data_name}.pt"
    shape = tuple(int(s) for s in shape)
    cached = _load_cached(path, shape, num_classes, device)
    if cached is not None:
        log.info("classifier for %s loaded from %s (test accuracy %.2f%%)", data_name, path, 100 * cached[1])
        model, test_accuracy = cached
    else:
        start = time.perf_counter()
        model, test_accuracy = train_classifier(classifier_data_fn(), shape, num_classes, device, steps, batch_size, seed)
        seconds = time.perf_counter() - start
        state = {
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "arch_version": ARCH_VERSION,
            "shape": list(shape),
            "num_classes": num_classes,
            "test_accuracy": test_accuracy,
            "steps": steps,
            "batch_size": batch_size,
            "seed": seed,
        }
        save_checkpoint(state, path)
        log.info("classifier for %s trained in %.1f s (%d steps), test accuracy %.2f%%, saved to %s", data_name, seconds, steps, 100 * test_accuracy, path)
    if test_accuracy < LOW_ACCURACY:
        log.warning("classifier for %s has test accuracy %.2f%% only: classifier-based metrics are unreliable", data_name, 100 * test_accuracy)
    return model, test_accuracy
