"""Tests for the critic picture: the matplotlib figure's artists, its rendering, and the critic's state."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from matplotlib.collections import PathCollection
from matplotlib.contour import ContourSet
from torch import nn

from ganlab.viz.critic_map import (
    COLORBAR_LABEL,
    DPI,
    FIGURE_SIZE,
    critic_figure,
    critic_map,
    critic_values,
    default_extent,
    save_png,
)

EXTENT = (-1.0, 1.0, -1.0, 1.0)
NO_POINTS = torch.empty(0, 2)
REAL = torch.tensor([[0.5, 0.5], [-0.25, 0.1]])
FAKE = torch.tensor([[0.0, 0.0], [-0.5, -0.75], [0.9, -0.1]])


def x_coordinate(points: torch.Tensor) -> torch.Tensor:
    """A critic whose value grows from left to right: -1 to 1 across EXTENT."""
    return points[:, 0]


def contour_sets(fig) -> tuple[ContourSet, ContourSet]:
    """The figure's filled contour set and its contour lines."""
    ax = fig.axes[0]
    sets = [c for c in ax.collections if isinstance(c, ContourSet)]
    filled = [c for c in sets if c.filled]
    lines = [c for c in sets if not c.filled]
    assert len(filled) == 1 and len(lines) == 1
    return filled[0], lines[0]


def scatters(fig) -> dict[str, PathCollection]:
    """The figure's point sets by the first word of their label."""
    ax = fig.axes[0]
    found = [c for c in ax.collections if isinstance(c, PathCollection) and not isinstance(c, ContourSet)]
    return {c.get_label().split()[0]: c for c in found}


def legend_texts(fig) -> list[str]:
    (legend,) = fig.legends
    return [text.get_text() for text in legend.get_texts()]


def test_the_picture_of_a_known_critic_has_its_colour_bar_legend_and_title():
    fig = critic_figure(x_coordinate, REAL, FAKE, extent=EXTENT, title="wgan_gp: critic at step 2500")

    ax = fig.axes[0]
    assert ax.get_title() == "wgan_gp: critic at step 2500"
    assert (ax.get_xlim(), ax.get_ylim()) == ((-1.0, 1.0), (-1.0, 1.0))
    assert ax.get_aspect() == 1.0
    assert ax.get_xticks().size > 0 and ax.get_yticks().size > 0

    filled, lines = contour_sets(fig)
    # The critic runs from -1 at the left edge to 1 at the right: the bands cover exactly that.
    assert (filled.levels[0], filled.levels[-1]) == pytest.approx((-1.0, 1.0))
    assert len(filled.levels) >= 5
    np.testing.assert_allclose(lines.levels, filled.levels)
    assert filled.get_cmap().name == "viridis"

    colorbar = filled.colorbar
    assert colorbar is not None and colorbar.ax in fig.axes
    assert colorbar.ax.get_ylabel() == COLORBAR_LABEL == "critic D(x)"

    assert legend_texts(fig) == ["real", "generated"]
    points = scatters(fig)
    np.testing.assert_allclose(points["real"].get_offsets(), REAL.numpy())
    np.testing.assert_allclose(points["generated"].get_offsets(), FAKE.numpy())
    # Distinct markers and colours, real points drawn over generated ones.
    assert not np.allclose(points["real"].get_facecolor(), points["generated"].get_facecolor())
    assert points["real"].get_paths()[0] != points["generated"].get_paths()[0]
    assert points["real"].get_zorder() > points["generated"].get_zorder()


def test_the_critic_is_evaluated_on_the_grid_that_contourf_expects():
    xs, ys, values = critic_values(lambda p: p[:, 0] + 10 * p[:, 1], EXTENT, 5, "cpu")

    np.testing.assert_allclose(xs, [-1.0, -0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(ys, [-1.0, -0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(values, xs[None, :] + 10 * ys[:, None], rtol=1e-6)  # values[i, j] = D(xs[j], ys[i])


def test_the_critic_is_evaluated_in_batches(monkeypatch):
    monkeypatch.setattr("ganlab.viz.critic_map.EVAL_BATCH_SIZE", 7)
    calls = []

    def D(points):
        calls.append(len(points))
        return points[:, 0]

    critic_values(D, EXTENT, 5, "cpu")
    assert calls == [7, 7, 7, 4]


def test_critic_map_renders_the_figure_to_a_uint8_rgb_image_on_cpu():
    image = critic_map(x_coordinate, REAL, FAKE, extent=EXTENT)

    width, height = FIGURE_SIZE[0] * DPI, FIGURE_SIZE[1] * DPI
    assert image.shape == (3, round(height), round(width)) == (3, 480, 540)
    assert image.dtype == torch.uint8 and image.device.type == "cpu"
    assert image.is_contiguous()
    assert torch.unique(image.view(3, -1), dim=1).shape[1] > 50  # colours: a picture, not a blank canvas


def test_the_critic_scale_follows_the_critic():
    fig = critic_figure(lambda p: 100 * p[:, 1] + 5, REAL, NO_POINTS, extent=EXTENT)
    levels = contour_sets(fig)[0].levels
    # Round levels (MaxNLocator) that reach just past the critic's range [-95, 105] at either end.
    assert levels[0] <= -95 < levels[1] and levels[-2] < 105 <= levels[-1]
    np.testing.assert_allclose(levels, np.round(levels))


def test_a_constant_critic_gets_one_band_around_its_value():
    fig = critic_figure(lambda p: torch.full((len(p),), 3.0), REAL, NO_POINTS, extent=EXTENT)
    filled, _ = contour_sets(fig)
    assert filled.levels[0] < 3.0 < filled.levels[-1]
    assert filled.colorbar is not None


def test_non_finite_critic_values_leave_a_hole_with_a_legend_entry():
    def half_nan(points):
        return torch.where(points[:, 0] < 0, torch.nan, points[:, 0])

    fig = critic_figure(half_nan, REAL, FAKE, extent=EXTENT)

    filled, _ = contour_sets(fig)
    assert (filled.levels[0], filled.levels[-1]) == pytest.approx((0.0, 1.0))  # the scale of the finite half
    assert legend_texts(fig) == ["real", "generated", "D(x) not finite"]
    critic_map(half_nan, REAL, FAKE, extent=EXTENT)  # renders


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_critic_without_finite_values_still_gets_a_picture(value):
    def diverged(points):
        return torch.full((len(points),), value)

    fig = critic_figure(diverged, REAL, FAKE, extent=EXTENT)

    assert not [c for c in fig.axes[0].collections if isinstance(c, ContourSet)]
    assert len(fig.axes) == 1  # no colour bar: there is no scale
    assert legend_texts(fig) == ["real", "generated", "D(x) not finite"]
    assert critic_map(diverged, REAL, FAKE, extent=EXTENT).shape == (3, 480, 540)


def test_generated_points_that_are_not_finite_or_outside_are_counted_not_drawn():
    fake = torch.tensor([[0.0, 0.0], [float("nan"), 0.0], [50.0, 0.0], [0.5, -0.5]])

    fig = critic_figure(x_coordinate, REAL, fake, extent=EXTENT)

    assert legend_texts(fig) == ["real", "generated (2 of 4 outside)"]
    np.testing.assert_allclose(scatters(fig)["generated"].get_offsets(), [[0.0, 0.0], [50.0, 0.0], [0.5, -0.5]])


def test_no_generated_points_keep_the_legend_entry():
    fig = critic_figure(x_coordinate, REAL, NO_POINTS, extent=EXTENT)
    assert legend_texts(fig) == ["real", "generated"]
    assert scatters(fig)["generated"].get_offsets().shape == (0, 2)


def test_default_extent_is_a_square_clamped_against_diverged_fakes():
    real = torch.tensor([[-1.0, 0.0], [1.0, 0.5]])
    fake = torch.tensor([[1000.0, 0.0], [float("nan"), 0.0]])

    xmin, xmax, ymin, ymax = default_extent(real, fake)

    # x spans [-1, 4] after clamping the fake to 4 * max|real| = 4; 10% margin each side.
    assert (xmin, xmax) == pytest.approx((-1.5, 4.5))
    assert (ymin, ymax) == pytest.approx((0.25 - 3.0, 0.25 + 3.0))


def test_the_figure_uses_the_default_extent():
    real = torch.tensor([[-1.0, 0.0], [1.0, 0.5]])
    fake = torch.tensor([[1000.0, 0.0], [float("nan"), 0.0]])
    ax = critic_figure(x_coordinate, real, fake).axes[0]
    assert ax.get_xlim() + ax.get_ylim() == pytest.approx(default_extent(real, fake))


@pytest.mark.parametrize(
    ("real", "fake", "extent", "message"),
    [
        (torch.zeros(5, 3), NO_POINTS, EXTENT, r"real must have shape \(n, 2\), got \(5, 3\)"),
        (NO_POINTS, NO_POINTS, EXTENT, "real must contain at least one point"),
        (REAL, torch.zeros(4), EXTENT, r"fake must have shape \(n, 2\), got \(4,\)"),
        (REAL, NO_POINTS, (1.0, -1.0, -1.0, 1.0), "extent must satisfy xmin < xmax"),
    ],
)
def test_bad_input_is_rejected(real, fake, extent, message):
    with pytest.raises(ValueError, match=message):
        critic_figure(x_coordinate, real, fake, extent=extent)


class RecordsMode(nn.Module):
    """A critic that records whether it was in training mode when called."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.modes_seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes_seen.append(self.training)
        return self.linear(x)


@pytest.mark.parametrize("training", [True, False])
def test_critic_runs_in_eval_mode_and_its_mode_is_restored(training):
    D = RecordsMode().train(training)
    critic_map(D, torch.randn(5, 2), torch.randn(5, 2))
    assert D.modes_seen and not any(D.modes_seen)
    assert D.training is training
    assert D.linear.training is training


def test_submodule_modes_are_restored_individually():
    D = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    D.train()
    D[1].eval()  # deliberately frozen part
    critic_figure(D, torch.randn(5, 2), torch.randn(5, 2))
    assert [m.training for m in D] == [True, False, True]


def test_batch_norm_statistics_and_spectral_norm_vectors_are_untouched():
    torch.manual_seed(0)
    D = nn.Sequential(
        nn.utils.parametrizations.spectral_norm(nn.Linear(2, 8)), nn.BatchNorm1d(8), nn.LeakyReLU(0.2), nn.Linear(8, 1)
    )
    D.train()
    D(torch.randn(64, 2))  # give the running stats and the power iteration's vectors non-default values
    before = {name: buffer.clone() for name, buffer in D.named_buffers()}
    assert any("_u" in name for name in before)

    critic_figure(D, torch.randn(5, 2), torch.randn(5, 2))

    for name, buffer in D.named_buffers():
        torch.testing.assert_close(buffer, before[name], rtol=0, atol=0)
    assert D.training


def test_critic_output_of_shape_n_by_1_is_accepted():
    fig = critic_figure(nn.Linear(2, 1), REAL, NO_POINTS, extent=EXTENT)
    assert contour_sets(fig)[0].colorbar is not None


def test_critic_with_wrong_output_size_is_rejected():
    with pytest.raises(ValueError, match="one score per point"):
        critic_figure(nn.Linear(2, 3), REAL, NO_POINTS, extent=EXTENT)


def test_importing_the_module_does_not_import_matplotlib():
    code = "import sys, ganlab.viz.critic_map; print(sorted(m for m in sys.modules if m.startswith('matplotlib')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.stdout.strip() == "[]"


# torchvision 0.29 deprecates its image codecs in favour of TorchCodec.
@pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")
def test_save_png_round_trips(tmp_path):
    image = critic_map(x_coordinate, REAL, FAKE, extent=EXTENT)
    path = tmp_path / "nested" / "dir" / "map.png"

    save_png(image, path)

    torch.testing.assert_close(torchvision.io.read_image(str(path)), image, rtol=0, atol=0)


def test_the_logged_picture_is_titled_with_the_objective_and_the_step(tmp_path, monkeypatch):
    from ganlab.data.toy import Gaussians8
    from ganlab.logger.console import ProgressDisplay
    from ganlab.logger.run import RunLogger
    from ganlab.metrics import evaluator as evaluator_module

    titles = []
    real_critic_map = evaluator_module.critic_map
    monkeypatch.setattr(evaluator_module, "critic_map", lambda *args, title, **kw: titles.append(title) or real_critic_map(*args, title=title, **kw))
    evaluator = evaluator_module.build_evaluator(Gaussians8(), 2, 64, 0, objective_name="wgan_gp")
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)

    with ProgressDisplay(1, live=False) as progress:
        run = RunLogger(tmp_path, evaluator, progress, {"config": {}, "data_shape": [2]}, device=torch.device("cpu"))
        run.sample(2500, G, D)
        run.finish(None)

    assert titles == ["wgan_gp: critic at step 2500"]
    assert (tmp_path / "samples" / "critic_0002500.png").is_file()
    assert evaluator_module.build_evaluator(Gaussians8(), 2, 64, 0).picture(G, D, 7).shape == (3, 480, 540)
