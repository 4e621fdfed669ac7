"""Tests for the critic value map renderer."""

import pytest
import torch
import torchvision
from torch import nn

from ganlab.viz.critic_map import (
    CONTOUR_LEVELS,
    REAL_COLOUR,
    VIRIDIS,
    contour_mask,
    critic_map,
    default_extent,
    save_png,
)

EXTENT = (-1.0, 1.0, -1.0, 1.0)
NO_POINTS = torch.empty(0, 2)
FAR_AWAY = torch.tensor([[50.0, 50.0]])  # outside EXTENT, so never drawn


def x_coordinate(points: torch.Tensor) -> torch.Tensor:
    """A critic whose value grows from left to right."""
    return points[:, 0]


def colour_at(image: torch.Tensor, row: int, col: int) -> torch.Tensor:
    return image[:, row, col]


def test_critic_map_returns_a_uint8_rgb_image_on_cpu():
    image = critic_map(x_coordinate, FAR_AWAY, NO_POINTS, extent=EXTENT, size=48)
    assert image.shape == (3, 48, 48)
    assert image.dtype == torch.uint8
    assert image.device.type == "cpu"


def test_low_critic_values_are_dark_and_high_values_bright():
    image = critic_map(x_coordinate, FAR_AWAY, NO_POINTS, extent=EXTENT, size=64)

    # The leftmost pixel centres hold the minimum and the rightmost the maximum,
    # so they show exactly the two ends of the colormap.
    low, high = torch.tensor(VIRIDIS[0], dtype=torch.uint8), torch.tensor(VIRIDIS[-1], dtype=torch.uint8)
    torch.testing.assert_close(image[:, :, 0], low[:, None].expand(3, 64))
    torch.testing.assert_close(image[:, :, -1], high[:, None].expand(3, 64))


def test_the_heat_map_has_its_y_axis_pointing_up():
    image = critic_map(lambda points: points[:, 1], FAR_AWAY, NO_POINTS, extent=EXTENT, size=64)

    low, high = torch.tensor(VIRIDIS[0], dtype=torch.uint8), torch.tensor(VIRIDIS[-1], dtype=torch.uint8)
    torch.testing.assert_close(image[:, 0, :], high[:, None].expand(3, 64))  # top row: largest y
    torch.testing.assert_close(image[:, -1, :], low[:, None].expand(3, 64))


def test_a_linear_ramp_has_one_contour_line_per_level_boundary():
    ramp = torch.linspace(0, 1, 100).expand(20, 100)
    mask = contour_mask(ramp, CONTOUR_LEVELS)
    lines_per_row = mask.sum(dim=1)
    torch.testing.assert_close(lines_per_row, torch.full((20,), CONTOUR_LEVELS - 1))


def test_contour_lines_are_drawn_darker():
    image = critic_map(x_coordinate, FAR_AWAY, NO_POINTS, extent=EXTENT, size=64)
    brightness = image.float().sum(dim=0)[0]  # one row; the map varies only along x
    darker_than_both_neighbours = (brightness[1:-1] < brightness[:-2]) & (brightness[1:-1] < brightness[2:])
    assert int(darker_than_both_neighbours.sum()) == CONTOUR_LEVELS - 1


def test_real_point_is_drawn_orange_with_the_y_axis_pointing_up():
    real = torch.tensor([[0.5, 0.5]])  # upper right quadrant
    image = critic_map(x_coordinate, real, NO_POINTS, extent=EXTENT, size=64)

    # Column (0.5 + 1) / 2 * 64 = 48, row (1 - 0.5) / 2 * 64 = 16.
    orange = torch.tensor(REAL_COLOUR, dtype=torch.uint8)
    for row in (15, 16, 17):
        for col in (47, 48, 49):
            torch.testing.assert_close(colour_at(image, row, col), orange)
    assert not torch.equal(colour_at(image, 48, 48), orange)  # the mirror image below the x axis
    assert not torch.equal(colour_at(image, 16, 51), orange)  # squares are 3 pixels wide


def test_points_outside_the_extent_are_skipped():
    without = critic_map(x_coordinate, FAR_AWAY, NO_POINTS, extent=EXTENT, size=32)
    with_far_fake = critic_map(x_coordinate, FAR_AWAY, -FAR_AWAY, extent=EXTENT, size=32)
    torch.testing.assert_close(with_far_fake, without)


def test_fake_points_change_the_picture_where_they_are():
    without = critic_map(x_coordinate, FAR_AWAY, NO_POINTS, extent=EXTENT, size=32)
    with_fake = critic_map(x_coordinate, FAR_AWAY, torch.tensor([[0.0, 0.0]]), extent=EXTENT, size=32)
    changed = (with_fake != without).any(dim=0)
    # A 3x3 core with a one-pixel outline around pixel (16, 16).
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[14:19, 14:19] = True
    torch.testing.assert_close(changed, expected)


def test_default_extent_is_a_square_clamped_against_diverged_fakes():
    real = torch.tensor([[-1.0, 0.0], [1.0, 0.5]])
    fake = torch.tensor([[1000.0, 0.0], [float("nan"), 0.0]])

    xmin, xmax, ymin, ymax = default_extent(real, fake)

    # x spans [-1, 4] after clamping the fake to 4 * max|real| = 4; 10% margin each side.
    assert (xmin, xmax) == pytest.approx((-1.5, 4.5))
    assert (ymin, ymax) == pytest.approx((0.25 - 3.0, 0.25 + 3.0))


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
    critic_map(D, torch.randn(5, 2), torch.randn(5, 2), size=16)
    assert D.modes_seen == [False]
    assert D.training is training
    assert D.linear.training is training


def test_submodule_modes_are_restored_individually():
    D = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    D.train()
    D[1].eval()  # deliberately frozen part
    critic_map(D, torch.randn(5, 2), torch.randn(5, 2), size=16)
    assert [m.training for m in D] == [True, False, True]


def test_batch_norm_running_statistics_are_untouched():
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    D.train()
    D(torch.randn(64, 2))  # give the running stats non-default values
    before = {name: buffer.clone() for name, buffer in D.named_buffers()}

    critic_map(D, torch.randn(5, 2), torch.randn(5, 2), size=16)

    for name, buffer in D.named_buffers():
        torch.testing.assert_close(buffer, before[name], rtol=0, atol=0)
    assert D.training


def test_critic_output_of_shape_n_by_1_is_accepted():
    D = nn.Linear(2, 1)
    image = critic_map(D, torch.randn(5, 2), NO_POINTS, size=16)
    assert image.shape == (3, 16, 16)


def test_critic_with_wrong_output_size_is_rejected():
    with pytest.raises(ValueError, match="one score per point"):
        critic_map(nn.Linear(2, 3), torch.randn(5, 2), NO_POINTS, size=16)


# torchvision 0.29 deprecates its image codecs in favour of TorchCodec.
@pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")
def test_save_png_round_trips(tmp_path):
    image = critic_map(x_coordinate, torch.tensor([[0.2, -0.3]]), torch.tensor([[-0.5, 0.1]]), size=40)
    path = tmp_path / "nested" / "dir" / "map.png"

    save_png(image, path)

    torch.testing.assert_close(torchvision.io.read_image(str(path)), image, rtol=0, atol=0)
