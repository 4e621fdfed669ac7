"""Packing (PacGAN): shapes, the packed critic against a hand concatenation, every preset trained
packed in process on points and images, the gradient penalty through the pack, the batch_size
check, a bit-exact resume, the critic picture. ganlab/models/packing.py."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganlab.apps.build import build_data, build_networks, build_objective_from
from ganlab.errors import ConfigError
from ganlab.logger.stats import Stats
from ganlab.models.packing import Packed, on_copies, pack_samples, packed_shape
from ganlab.objectives.constraints.gradient_penalty import GradientPenalty
from ganlab.precision import Precision
from ganlab.train.diagnostics import critic_diagnostics
from ganlab.viz.critic_map import critic_figure, critic_map, critic_values

from conftest import compose_train
from inprocess import final_networks, train_in_process

CPU = torch.device("cpu")
PRESETS = ["js", "wgan_clip", "wgan_gp", "spectral_norm"]
TINY_PACKED = ["steps=4", "batch_size=16", "log_every=2", "sample_every=4", "eval_every=4", "eval_samples=64",
               "model.width=8", "threads=1", "precision=fp32"]
DIGITS = ["experiment=digits_dcgan", "dataset.resolution=16", "ema_decay=0"]


def networks(overrides: list[str], pack: int, seed: int = 0) -> tuple[nn.Module, nn.Module, object]:
    cfg = compose_train([*overrides, "model.width=8"])
    torch.manual_seed(seed)
    data = build_data(cfg.dataset, CPU, seed=seed)
    G, D = build_networks(cfg.model, data.shape, CPU, pack=pack)
    return G, D, data


def test_packing_concatenates_consecutive_samples_along_the_first_data_dimension():
    points = torch.arange(16.0).view(8, 2)
    packed = pack_samples(points, 4)
    assert packed.shape == (2, 8) and packed_shape((2,), 4) == (8,)
    torch.testing.assert_close(packed[1], torch.cat(list(points[4:8])), rtol=0, atol=0)

    images = torch.randn(6, 3, 5, 5)
    packed = pack_samples(images, 2)
    assert packed.shape == (3, 6, 5, 5) and packed_shape((3, 5, 5), 2) == (6, 5, 5)
    torch.testing.assert_close(packed[2], torch.cat([images[4], images[5]]), rtol=0, atol=0)  # channels 0-2: sample 4, 3-5: sample 5

    with pytest.raises(ValueError, match="multiple of 4 samples, got 6"):
        pack_samples(torch.zeros(6, 2), 4)


@pytest.mark.parametrize("overrides, pack", [([], 4), (["dataset=digits", "model=dcgan", "dataset.resolution=16"], 2),
                                             (["dataset=digits", "model=mlp", "dataset.resolution=8"], 2),
                                             (["dataset=digits", "model=resnet", "dataset.resolution=32"], 2)])
def test_a_packed_critic_scores_the_concatenation_of_each_pack(overrides, pack):
    G, D, data = networks(overrides, pack)
    assert isinstance(D, Packed) and D.pack == pack
    real = data.sample(4 * pack)
    scores = D(real)
    assert scores.shape == (4,)
    by_hand = torch.stack([D.critic(torch.cat(list(real[g * pack:(g + 1) * pack]))[None]).reshape(()) for g in range(4)])
    torch.testing.assert_close(scores, by_hand, rtol=1e-6, atol=1e-6)
    first = next(m for m in D.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    shape = packed_shape(data.shape, pack)  # (2m,) or (mC, H, W)
    assert (first.in_features == math.prod(shape)) if isinstance(first, nn.Linear) else (first.in_channels == shape[0])


def test_pack_one_builds_the_plain_critic_and_a_packed_run_starts_from_the_same_generator():
    G1, D1, _ = networks([], 1)
    G4, D4, _ = networks([], 4)
    assert not isinstance(D1, Packed)  # m = 1: no wrapper, the checkpoint's keys as before
    assert all(key.startswith("critic.") for key in D4.state_dict())
    for (name, a), (_, b) in zip(G1.state_dict().items(), G4.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_the_gradient_penalty_through_a_pack_is_each_samples_own_gradient_norm():
    """A linear critic of packs, D(x_1, x_2) = w_1.x_1 + w_2.x_2: the gradient with respect to
    sample x_i is w_i wherever it is evaluated, so the penalty is the mean of (||w_i|| - 1)^2."""
    linear = nn.Linear(4, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[3.0, 4.0, 0.6, 0.8]]))  # ||w_1|| = 5, ||w_2|| = 1
    D = Packed(linear, 2)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    penalty = GradientPenalty(weight=1.0, every=1).term(D, real, fake, Precision("fp32", CPU))
    assert penalty.item() == pytest.approx(((5 - 1) ** 2 + (1 - 1) ** 2) / 2, rel=1e-6)


def test_a_batch_size_that_is_not_a_multiple_of_the_pack_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^batch_size=250 is not allowed: with pack=4 it must be a multiple of 4 .*batch_size=248$"):
        train_in_process(["pack=4", "batch_size=250", "steps=1"], tmp_path / "run")
    with pytest.raises(ConfigError, match=r"^pack=0 is not allowed"):
        train_in_process(["pack=0", "steps=1"], tmp_path / "run0")


@pytest.mark.parametrize("objective", PRESETS)
def test_every_preset_trains_packed_on_points(tmp_path, objective):
    metrics = train_in_process([f"objective={objective}", "pack=2", *TINY_PACKED], tmp_path)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics
    D = final_networks(tmp_path)["D"]
    assert D["critic.net.0.weight" if objective != "spectral_norm" else "critic.net.0.parametrizations.weight.original"].shape[1] == 4
    assert (tmp_path / "samples").is_dir() and any((tmp_path / "samples").iterdir())  # the critic picture was drawn


@pytest.mark.parametrize("objective", PRESETS)
def test_every_preset_trains_packed_on_images_with_dcgan(tmp_path, objective, classifier_cache):
    metrics = train_in_process([*DIGITS, f"objective={objective}", "pack=2", *TINY_PACKED, f"metrics.classifier_cache={classifier_cache}"], tmp_path)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics
    first = "critic.net.0.weight" if objective != "spectral_norm" else "critic.net.0.parametrizations.weight.original"
    assert final_networks(tmp_path)["D"][first].shape[1] == 2  # two 1-channel digits per pack


def test_clipping_and_spectral_norm_reach_the_critic_inside_the_pack():
    for objective, check in (("wgan_clip", lambda D: max(p.abs().max() for p in D.critic.parameters()) <= 0.01),
                             ("spectral_norm", lambda D: all(hasattr(m, "parametrizations") for m in D.critic.net if isinstance(m, nn.Linear)))):
        cfg = compose_train([f"objective={objective}"])
        _, D, _ = networks([f"objective={objective}"], 2)
        built = build_objective_from(cfg.objective)
        built.attach(D)
        built.after_critic_step(D)
        assert check(D), objective
        assert built.diagnostics(D), objective


def test_the_critic_diagnostics_of_a_packed_critic_have_one_score_per_pack():
    cfg = compose_train(["objective=wgan_gp"])
    _, D, data = networks([], 4)
    real, fake = data.sample(32), torch.randn(32, 2)
    scalars, histograms = critic_diagnostics(build_objective_from(cfg.objective), D, real, fake, step=1)
    assert histograms["Histogram/D_real"].shape == (8,) and histograms["Histogram/D_fake"].shape == (8,)
    assert 0 <= scalars["Critic/accuracy"].item() <= 1
    assert torch.isfinite(scalars["CriticGrad/interp_mean"])


def test_the_losses_of_a_packed_critic_average_over_packs():
    cfg = compose_train(["objective=wgan_clip"])
    _, D, data = networks([], 2)
    real, fake = data.sample(16), torch.randn(16, 2)
    stats = Stats()
    loss = build_objective_from(cfg.objective).critic_loss(D, real, fake, Precision("fp32", CPU), stats)
    with torch.no_grad():
        expected = D(fake).mean() - D(real).mean()  # 8 packs each
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-6, atol=1e-6)


def test_a_packed_run_resumes_bit_exact_and_an_unpacked_run_cannot_be_resumed_packed(tmp_path):
    base = ["objective=spectral_norm", "pack=4", "steps=6", "batch_size=16", "model.width=8", "threads=1",
            "log_every=3", "sample_every=3", "eval_every=3", "checkpoint_every=3", "eval_samples=64"]
    train_in_process(base, tmp_path / "whole")
    train_in_process([*base, "steps=3"], tmp_path / "cut")
    train_in_process([f"resume={tmp_path / 'cut'}", "steps=6"], tmp_path / "cut")
    whole, cut = final_networks(tmp_path / "whole"), final_networks(tmp_path / "cut")
    assert whole["step"] == cut["step"] == 6
    for net in ("G", "D"):
        assert whole[net].keys() == cut[net].keys()
        for key in whole[net]:
            torch.testing.assert_close(cut[net][key], whole[net][key], rtol=0, atol=0, msg=f"{net}.{key}")

    train_in_process(["steps=2", "batch_size=16", "model.width=8", "threads=1", "eval_samples=64"], tmp_path / "plain")
    with pytest.raises(ConfigError, match="pack=4 cannot be used with resume"):
        train_in_process([f"resume={tmp_path / 'plain'}", "pack=4", "steps=4"], tmp_path / "plain")


def test_the_critic_picture_of_a_packed_critic_shows_the_pack_of_copies_of_each_point():
    _, D, data = networks([], 2)
    real, fake = data.sample(64), torch.randn(64, 2)
    xs, ys, values = critic_values(D, (-1.0, 1.0, -1.0, 1.0), 5, CPU)
    point = torch.tensor([[xs[1], ys[3]]], dtype=torch.float32)
    with torch.no_grad():
        by_hand = D.critic(torch.cat([point, point], dim=1)).item()
    assert values[3, 1] == pytest.approx(by_hand, rel=1e-5, abs=1e-6)
    assert on_copies(D, point).shape == (1,)
    figure = critic_figure(D, real, fake)
    assert figure.axes[1].get_ylabel() == "critic D(x, x)"  # the colour bar says what is drawn
    image = critic_map(D, real, fake, title="js: critic at step 1")
    assert image.shape == (3, 480, 540) and image.dtype == torch.uint8
