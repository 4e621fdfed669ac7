"""Evaluators: what a run measures and draws for its kind of data.

An evaluator holds fixed held-out material drawn once at the start (real samples, latent
vectors), so every evaluation of a run compares like with like, and its draws never touch the
training data stream or the global RNG. ``evaluate(G)`` returns metric name -> float;
``picture(G, D)`` returns a uint8 (3, H, W) image for TensorBoard and PNG.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.data.toy import ToyData
from ganlab.metrics.ot import wasserstein1
from ganlab.metrics.toy import toy_metrics
from ganlab.viz.critic_map import critic_map


def _generate(G: nn.Module, z: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """G's samples for ``z`` in eval mode (batches of ``batch``), float32; G's mode restored."""
    was_training = G.training
    G.eval()
    try:
        with torch.no_grad():
            return torch.cat([G(chunk).float() for chunk in z.split(batch)])
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
    picture_points = 512  # points drawn in the picture, real and generated
    picture_size = 384  # pixels: large enough to see the 25 modes apart
    baseline_pairs = 3

    def __init__(self, data: ToyData, z_dim: int, n_samples: int, seed: int):
        device = data.device
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

    def picture(self, G: nn.Module, D: nn.Module) -> torch.Tensor:
        n = self.picture_points
        return critic_map(D, self.real[:n], _generate(G, self.z[:n]), size=self.picture_size)


def build_evaluator(data: object, z_dim: int, n_samples: int, seed: int) -> ToyEvaluator:
    """The evaluator for ``data``'s kind (2-D points for now)."""
    if isinstance(data, ToyData):
        return ToyEvaluator(data, z_dim, n_samples, seed)
    raise TypeError(f"no evaluator for data of type {type(data).__name__}")
