"""Observing a run never changes it: intervals, metrics, pictures, G_ema and the metric classifier.

Runs that differ only in what they observe (``log_every``, ``sample_every``, ``eval_every``,
``checkpoint_every``, ``eval_samples``, ``ema_decay``, a cold or warm classifier cache) end with
bit-identical G and D on the CPU, for every preset and for an image dataset; a resume with another
``log_every`` stays bit-exact. Runs are in-process (tests/inprocess.py).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from ganlab.objectives.constraints.spectral_norm import SpectralNorm
from ganlab.train.diagnostics import critic_input_gradients
from ganlab.train.observe import observing
from ganlab.apps.build import build_data, build_networks, build_objective_from

from conftest import compose_train
from inprocess import final_networks, train_in_process

TOY = ["steps=6", "batch_size=32", "model.width=16", "threads=1"]
# Everything observed as often as possible, G_ema on ...
OBSERVE_ALL = ["log_every=1", "sample_every=1", "eval_every=2", "checkpoint_every=1", "eval_samples=64", "ema_decay=0.9", "keep_checkpoints=2"]
# ... against everything observed once, at the end.
OBSERVE_END = ["log_every=6", "sample_every=6", "eval_every=6", "checkpoint_every=6", "eval_samples=100", "ema_decay=0"]


def assert_bit_identical(a: dict, b: dict) -> None:
    assert a["step"] == b["step"]
    for net in ("G", "D"):
        assert a[net].keys() == b[net].keys(), net
        for key in a[net]:
            torch.testing.assert_close(a[net][key], b[net][key], rtol=0, atol=0, msg=lambda m, k=f"{net}.{key}": f"{k}: {m}")


@pytest.mark.parametrize("objective", ["js", "wgan_clip", "wgan_gp", "spectral_norm"])
def test_observing_does_not_change_the_trajectory(tmp_path, objective):
    base = [f"objective={objective}", *TOY]
    train_in_process([*base, *OBSERVE_ALL], tmp_path / "all")
    train_in_process([*base, *OBSERVE_END], tmp_path / "end")
    assert_bit_identical(final_networks(tmp_path / "all"), final_networks(tmp_path / "end"))

    # Stopped at step 3 while logging every step, resumed logging every 5: the same end point.
    train_in_process([*base, *OBSERVE_ALL, "steps=3"], tmp_path / "cut")
    train_in_process([f"resume={tmp_path / 'cut'}", "steps=6", "log_every=5", "eval_every=5", "sample_every=5"], tmp_path / "cut")
    assert_bit_identical(final_networks(tmp_path / "cut"), final_networks(tmp_path / "end"))


def test_observing_an_image_run_does_not_change_it(tmp_path, classifier_cache):
    """DCGAN on digits with spectral norm and a batch-norm G: metrics from a classifier trained in
    the run (cold cache) or loaded (warm cache) leave the run as it was."""
    images = ["experiment=digits_dcgan", "objective=spectral_norm", "dataset.resolution=16", "model.width=8",
              "batch_size=16", "steps=4", "threads=1", "precision=fp32"]
    cold = tmp_path / "cold_cache"
    train_in_process([*images, *OBSERVE_ALL, f"metrics.classifier_cache={cold}"], tmp_path / "all")
    assert any(cold.iterdir())  # the classifier was trained in that run
    train_in_process([*images, *OBSERVE_END, "log_every=4", "sample_every=4", "eval_every=4", "checkpoint_every=4",
                      f"metrics.classifier_cache={cold}"], tmp_path / "end")
    assert_bit_identical(final_networks(tmp_path / "all"), final_networks(tmp_path / "end"))


def global_rng() -> tuple:
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def test_the_critic_diagnostic_leaves_the_critic_and_the_global_rng_as_they_were():
    cfg = compose_train(["objective=spectral_norm", "model.width=16", "model.critic_norm=batch"])
    data = build_data(cfg.dataset, torch.device("cpu"), seed=0)
    G, D = build_networks(cfg.model, data.shape, torch.device("cpu"))
    build_objective_from(cfg.objective).attach(D)
    real, fake = data.sample(32), torch.randn(32, 2)
    buffers = {k: v.clone() for k, v in D.named_buffers()}
    assert any("running_mean" in k for k in buffers) and any(k.endswith(".u") for k in buffers)
    before = global_rng()
    first = critic_input_gradients(D, real, fake, step=7)
    after = global_rng()
    torch.testing.assert_close(after[0], before[0], rtol=0, atol=0)
    assert np.array_equal(after[1], before[1]) and after[2] == before[2]
    for k, v in D.named_buffers():
        torch.testing.assert_close(v, buffers[k], rtol=0, atol=0, msg=k)
    assert D.training
    # Its own draws: the same step gives the same figures, whatever ran before it.
    torch.rand(5)
    again = critic_input_gradients(D, real, fake, step=7)
    for tag in first:
        torch.testing.assert_close(again[tag], first[tag], rtol=0, atol=0, msg=tag)


def test_observing_restores_rng_buffers_and_modes_even_when_the_observer_changes_them():
    D = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4))
    SpectralNorm(power_iterations=1).attach(D)
    buffers = {k: v.clone() for k, v in D.named_buffers()}
    before = global_rng()
    with observing(D):
        D.eval()
        D[1].train()
        D(torch.randn(8, 2))  # batch norm statistics move; the global RNG advances
        np.random.rand()
        random.random()
        D.requires_grad_(False)
    after = global_rng()
    torch.testing.assert_close(after[0], before[0], rtol=0, atol=0)
    assert np.array_equal(after[1], before[1]) and after[2] == before[2]
    for k, v in D.named_buffers():
        torch.testing.assert_close(v, buffers[k], rtol=0, atol=0, msg=k)
    assert all(m.training for m in D.modules())
    assert all(p.requires_grad for p in D.parameters())
