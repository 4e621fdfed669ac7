"""Evaluators: what a run measures and draws for its kind of data.

An evaluator holds fixed held-out material drawn once at the start (real samples, latent
vectors), so every evaluation of a run compares like with like, and its draws never touch the
training data stream or the global RNG. ``evaluate(G)`` returns metric name -> float;
``picture(G, D, step)`` returns a uint8 (3, H, W) image for TensorBoard and PNG, logged under
``picture_tag`` and saved as ``samples/<picture_name>_<step>.png``.

:class:`ToyEvaluator` serves 2-D point data, :class:`ImageEvaluator` image data (a ``shape`` of
three dimensions); :func:`build_evaluator` picks the one for a dataset.
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ganlab.data.toy import ToyData
from ganlab.metrics.classifier import get_classifier
from ganlab.metrics.images import ChannelwiseClassifier, classifier_reference, classifier_scores, classify, mode_scores
from ganlab.metrics.inception import InceptionUnavailable, check_inception, inception_metrics
from ganlab.metrics.ot import wasserstein1
from ganlab.metrics.toy import toy_metrics
from ganlab.viz.critic_map import critic_map
from ganlab.viz.grid import image_grid, to_uint8

log = logging.getLogger("ganlab")


def _generate(G: nn.Module, z: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """G's samples for ``z`` in eval mode (batches of ``batch``), float32; G's mode restored."""
    was_training = G.training
    G.eval()
    try:
        with torch.no_grad():
            return torch.cat([G(chunk).float() for chunk in z.split(batch)])
    finally:
        G.train(was_training)


@contextlib.contextmanager
def _eval_mode(G: nn.Module) -> Iterator[nn.Module]:
    """G in eval mode without gradients for the block; its mode restored afterwards."""
    was_training = G.training
    G.eval()
    try:
        with torch.no_grad():
            yield G
    finally:
        G.train(was_training)


class ToyEvaluator:
    """Mode coverage, high-quality share and exact W1 for 2-D data; the WGAN-GP critic picture.

    ``Metrics/w1_real_baseline`` is the W1 between two independent real sets of the same size,
    the floor that sampling noise alone gives, averaged over ``baseline_pairs`` pairs because a
    single pair's W1 varies by tens of percent with the draw of mode counts; ``Metrics/w1_ratio``
    divides the generated W1 by it.
    """

    picture_tag = "Critic/map"
    picture_name = "critic"
    picture_points = 512  # points drawn in the picture, real and generated
    baseline_pairs = 3

    def __init__(self, data: ToyData, z_dim: int, n_samples: int, seed: int, objective_name: str | None = None):
        """``objective_name`` (config ``objective.name``, e.g. ``wgan_gp``) starts the picture's title."""
        device = data.device
        self.objective_name = objective_name
        generator = torch.Generator(device).manual_seed(seed + 7919)  # independent of training draws
        self.data = data
        self.real = data.sample(n_samples, generator=generator)
        self.z = torch.randn(n_samples, z_dim, device=device, generator=generator)
        pairs = [(data.sample(n_samples, generator=generator), data.sample(n_samples, generator=generator)) for _ in range(self.baseline_pairs)]
        self.w1_real_baseline = sum(wasserstein1(a, b) for a, b in pairs) / len(pairs)

    @property
    def metric_names(self) -> list[str]:
        names = ["w1", "w1_real_baseline", "w1_ratio"]
        if self.data.centers is not None:
            names += ["modes_covered", "high_quality", "mode_kl"]
        return [f"Metrics/{name}" for name in names]

    def evaluate(self, G: nn.Module) -> dict[str, float]:
        fake = _generate(G, self.z)
        if not torch.isfinite(fake).all():
            nan = float("nan")
            found = {"w1": nan, "modes_covered": 0.0, "high_quality": 0.0, "mode_kl": nan}
        else:
            found = toy_metrics(fake, self.real, self.data.centers, self.data.std)
        found.pop("modes_total", None)
        found["w1_real_baseline"] = self.w1_real_baseline
        found["w1_ratio"] = found["w1"] / self.w1_real_baseline
        return {f"Metrics/{k}": float(v) for k, v in found.items() if f"Metrics/{k}" in self.metric_names}

    def picture(self, G: nn.Module, D: nn.Module, step: int | None = None) -> torch.Tensor:
        """The critic map (:func:`ganlab.viz.critic_map.critic_map`) with ``picture_points`` real and
        generated points, titled e.g. ``wgan_gp: critic at step 2500``; uint8 (3, 480, 540)."""
        n = self.picture_points
        title = "critic" if step is None else f"critic at step {step}"
        if self.objective_name:
            title = f"{self.objective_name}: {title}"
        return critic_map(D, self.real[:n], _generate(G, self.z[:n]), title=title)


class ImageEvaluator:
    """Classifier metrics (offline), Inception metrics (when available) and a grid of samples for images.

    Labeled data (``num_classes`` >= 2) get the metrics of ``ganlab.metrics.images`` from a
    classifier trained on the dataset's labels and cached in ``classifier_cache_dir``:
    ``Metrics/fcd``, ``classes_covered``, ``class_kl``, ``classifier_is``, and the classifier's
    own test accuracy ``classifier_accuracy`` (how far to trust the others). Stacked MNIST
    (``channel_classes`` set) classifies each channel with the MNIST classifier and adds
    ``modes_covered`` (of 1000) and ``mode_kl``. ``fid``, ``kid`` and ``is`` come from
    ``ganlab.metrics.inception`` when torch-fidelity and ``inception_weights`` are there; if not,
    one warning at construction says how to get them. Unlabeled data without Inception have no
    metrics, only the picture.

    The real images are classified once, here. Every evaluation generates from the same z in
    batches of ``eval_batch`` and keeps only features and probabilities (plus uint8 copies on the
    CPU for Inception), so ten thousand samples fit in memory.
    """

    picture_tag = "Samples/grid"
    picture_name = "samples"
    picture_count = 64  # an 8x8 grid
    picture_nrow = 8
    eval_batch = 500  # images per generator and classifier pass

    def __init__(
        self,
        data: object,
        z_dim: int,
        n_samples: int,
        seed: int,
        classifier_cache_dir: str | Path | None = None,
        inception_weights: str | Path | None = None,
    ):
        device = data.device
        generator = torch.Generator(device).manual_seed(seed + 7919)  # independent of training draws
        self.data = data
        self.n_samples = n_samples
        real = data.sample(n_samples, generator=generator)
        self.z = torch.randn(n_samples, z_dim, device=device, generator=generator)
        self.picture_z = torch.randn(self.picture_count, z_dim, device=device, generator=generator)

        num_classes = getattr(data, "num_classes", None)
        channel_classes = getattr(data, "channel_classes", None)
        self.stacked = channel_classes is not None
        self.classifier: nn.Module | None = None
        self.classifier_accuracy = math.nan
        if num_classes is not None and num_classes >= 2:
            channels, height, width = data.shape
            if self.stacked:
                # Stacked MNIST: MNIST's classifier (one channel) applied to every channel.
                if channel_classes**channels != num_classes:
                    raise ValueError(f"{data.name}: {channels} channels of {channel_classes} classes give {channel_classes**channels} modes, not num_classes={num_classes}")
                base, self.classifier_accuracy = get_classifier(data.name, data.classifier_data, (1, height, width), channel_classes, classifier_cache_dir, device)
                self.classifier = ChannelwiseClassifier(base, channels, channel_classes)
            else:
                self.classifier, self.classifier_accuracy = get_classifier(data.name, data.classifier_data, data.shape, num_classes, classifier_cache_dir, device)
            self.reference = classifier_reference(real, self.classifier, num_classes, self.eval_batch)

        self.inception_weights = inception_weights
        try:
            check_inception(inception_weights)
            self.inception = True
        except InceptionUnavailable as err:
            log.warning("%s", err)
            self.inception = False
        # Inception reads uint8 images on the CPU: keep the real set in that form, 4x smaller.
        self.real_uint8 = to_uint8(real).cpu() if self.inception else None

    @property
    def metric_names(self) -> list[str]:
        names = []
        if self.classifier is not None:
            names += ["fcd", "classes_covered", "class_kl", "classifier_is", "classifier_accuracy"]
            if self.stacked:
                names += ["modes_covered", "mode_kl"]
        if self.inception:
            names += ["fid", "kid", "is"]
        return [f"Metrics/{name}" for name in names]

    def evaluate(self, G: nn.Module) -> dict[str, float]:
        features, probs, fake_uint8 = [], [], []
        finite = True
        with _eval_mode(G):
            for z in self.z.split(self.eval_batch):
                fake = G(z).float()
                if not torch.isfinite(fake).all():
                    finite = False
                    break
                if self.classifier is not None:
                    batch_features, batch_probs = classify(fake, self.classifier, self.eval_batch)
                    features.append(batch_features)
                    probs.append(batch_probs)
                if self.inception:
                    fake_uint8.append(to_uint8(fake).cpu())
        if not finite:
            # A diverged G has nothing to score: distances are NaN and nothing is covered.
            nan = math.nan
            found = {"fcd": nan, "classes_covered": 0.0, "class_kl": nan, "classifier_is": nan, "modes_covered": 0.0, "mode_kl": nan, "fid": nan, "kid": nan, "is": nan}
        else:
            found = {}
            if self.classifier is not None:
                probs = torch.cat(probs)
                found.update(classifier_scores(torch.cat(features), probs, self.reference))
                if self.stacked:
                    found.update(mode_scores(probs))
            if self.inception:
                found.update(self._inception(torch.cat(fake_uint8)))
        found["classifier_accuracy"] = self.classifier_accuracy
        return {f"Metrics/{k}": float(v) for k, v in found.items() if f"Metrics/{k}" in self.metric_names}

    def _inception(self, fake_uint8: torch.Tensor) -> dict[str, float]:
        if self.inception_weights is None:  # failed before: see below
            return {"fid": math.nan, "kid": math.nan, "is": math.nan}
        try:
            return inception_metrics(
                lambda n: fake_uint8[:n], lambda n: self.real_uint8[:n], self.n_samples, self.inception_weights,
                cuda=self.data.device.type == "cuda",
            )
        except Exception as err:  # noqa: BLE001 - a third-party failure must not end a long run
            # Keep the names (TensorBoard's HParams already lists them) but stop trying: the
            # same package and weights would fail the same way at every evaluation.
            log.warning("FID, KID and IS failed and are skipped from now on: %s: %s", type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            self.inception_weights = None
            return {"fid": math.nan, "kid": math.nan, "is": math.nan}

    def picture(self, G: nn.Module, D: nn.Module, step: int | None = None) -> torch.Tensor:
        """An 8x8 grid of G's samples from fixed z, uint8 (3, H, W); grey images as three equal channels.
        ``D`` and ``step`` are not used (the grid has no title)."""
        fake = torch.nan_to_num(_generate(G, self.picture_z))  # a diverged G still gets a picture
        return image_grid(fake, nrow=self.picture_nrow)


def build_evaluator(
    data: object,
    z_dim: int,
    n_samples: int,
    seed: int,
    classifier_cache_dir: str | Path | None = None,
    inception_weights: str | Path | None = None,
    objective_name: str | None = None,
) -> ToyEvaluator | ImageEvaluator:
    """The evaluator for ``data``'s kind: 2-D points, or images (a ``shape`` of three dimensions).
    ``objective_name`` titles the 2-D critic picture."""
    if isinstance(data, ToyData):
        return ToyEvaluator(data, z_dim, n_samples, seed, objective_name)
    if len(getattr(data, "shape", ())) == 3:
        return ImageEvaluator(data, z_dim, n_samples, seed, classifier_cache_dir, inception_weights)
    raise TypeError(f"no evaluator for data of type {type(data).__name__}")
