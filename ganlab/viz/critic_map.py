"""Critic value maps for 2-D toy data, the figure of the WGAN-GP paper (Fig. 2).

``critic_map`` evaluates the critic ``D`` on a regular grid over the plane and
renders the result as an RGB uint8 tensor: a viridis heat map of the critic's
value (low = dark purple, high = yellow), darker contour lines at evenly
spaced levels, real samples as orange squares and generated samples as white
squares with a dark outline. Everything is drawn with tensor operations, so a
training loop can log the picture (e.g. TensorBoard ``add_image``) or write it
with ``save_png`` without a plotting library::

    image = critic_map(D, real, fake)          # uint8, (3, 256, 256), CPU
    save_png(image, run_dir / "critic_map.png")

The image's row 0 is the top of the extent (largest y), so the picture reads
like an ordinary plot with the y axis pointing up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image

Extent = tuple[float, float, float, float]  # (xmin, xmax, ymin, ymax)

# Eight evenly spaced samples of matplotlib's viridis colormap, from its low
# end (0.0) to its high end (1.0); linear interpolation between them is visually
# indistinguishable from the full 256-entry table at heat-map scale.
VIRIDIS = (
    (68, 1, 84),
    (70, 50, 126),
    (54, 92, 141),
    (39, 127, 142),
    (31, 161, 135),
    (74, 193, 109),
    (160, 218, 57),
    (253, 231, 37),
)
REAL_COLOUR = (255, 127, 14)  # matplotlib's "tab:orange": stands out on all of viridis
FAKE_COLOUR = (255, 255, 255)
OUTLINE_COLOUR = (20, 20, 20)  # outline of generated points, visible on the yellow end
CONTOUR_LEVELS = 10  # about as many lines as the WGAN-GP figure shows
CONTOUR_SHADE = 0.6  # contour pixels keep this fraction of their heat-map brightness
EXTENT_MARGIN = 0.1  # fraction of the data span added on each side of the default extent
MAX_EXTENT_SCALE = 4.0  # default extent reaches at most this many times max |real coordinate|
EVAL_BATCH_SIZE = 16384  # grid points per critic call; bounds activation memory


def critic_map(
    D: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    extent: Extent | None = None,
    size: int = 256,
) -> torch.Tensor:
    """Render the critic's value over the plane with real and generated points on top.

    Args:
        D: maps an (N, 2) float32 tensor on ``real.device`` to (N,) or (N, 1)
            scores. An ``nn.Module`` is evaluated in eval mode and every
            submodule's train/eval flag is restored afterwards.
        real: real samples, shape (n, 2); the grid is evaluated on its device.
        fake: generated samples, shape (m, 2); may be empty.
        extent: (xmin, xmax, ymin, ymax) of the picture; by default a square
            around all points (see ``default_extent``).
        size: height and width of the image in pixels.

    Returns:
        A uint8 tensor of shape (3, size, size) on the CPU.
    """
    _check_points(real, "real", allow_empty=False)
    _check_points(fake, "fake", allow_empty=True)
    if size < 2:
        raise ValueError(f"size must be at least 2 pixels, got {size}")
    extent = default_extent(real, fake) if extent is None else extent
    xmin, xmax, ymin, ymax = extent
    if not (xmin < xmax and ymin < ymax):
        raise ValueError(f"extent must satisfy xmin < xmax and ymin < ymax, got {extent}")

    grid = grid_points(extent, size, device=real.device)
    with _eval_mode(D), torch.no_grad():
        scores = torch.cat([_scores(D, batch) for batch in grid.split(EVAL_BATCH_SIZE)])
    values = normalise(scores.view(size, size).cpu())

    rgb = apply_colormap(values)
    rgb = torch.where(contour_mask(values, CONTOUR_LEVELS), rgb * CONTOUR_SHADE, rgb)
    image = rgb.round().to(torch.uint8)
    draw_squares(image, real, extent, REAL_COLOUR, half_width=1)
    draw_squares(image, fake, extent, OUTLINE_COLOUR, half_width=2)
    draw_squares(image, fake, extent, FAKE_COLOUR, half_width=1)
    return image


def save_png(image: torch.Tensor, path: str | Path) -> None:
    """Write a uint8 (3, H, W) image tensor as PNG, creating parent directories.

    Uses Pillow (a torchvision dependency) because torchvision's own image
    encoders are deprecated since torchvision 0.29.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.cpu().permute(1, 2, 0).numpy()).save(path)


def default_extent(real: torch.Tensor, fake: torch.Tensor) -> Extent:
    """A square extent around ``real`` and ``fake`` with a margin on every side.

    Generated points are first clamped to ``MAX_EXTENT_SCALE`` times the largest
    absolute real coordinate, so that a few diverged samples do not shrink the
    real data to a dot; non-finite generated points are ignored.
    """
    real = real.detach().double().cpu()
    fake = fake.detach().double().cpu()
    limit = MAX_EXTENT_SCALE * float(real.abs().max())
    fake = fake[fake.isfinite().all(dim=1)].clamp(-limit, limit)
    points = torch.cat([real, fake])
    low, high = points.min(dim=0).values, points.max(dim=0).values
    centre = (low + high) / 2
    # A single repeated point has no span; fall back to a unit square around it.
    span = float((high - low).max()) or 1.0
    half = span * (0.5 + EXTENT_MARGIN)
    cx, cy = float(centre[0]), float(centre[1])
    return (cx - half, cx + half, cy - half, cy + half)


def grid_points(extent: Extent, size: int, device: torch.device) -> torch.Tensor:
    """Pixel-centre coordinates of a size x size image, (size * size, 2) float32.

    Points are in row-major image order: row 0 is the top (largest y), and
    within a row x increases from left to right.
    """
    xmin, xmax, ymin, ymax = extent
    steps = (torch.arange(size, device=device, dtype=torch.float64) + 0.5) / size
    xs = xmin + steps * (xmax - xmin)
    ys = ymax - steps * (ymax - ymin)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x, y], dim=-1).view(-1, 2).float()


def normalise(values: torch.Tensor) -> torch.Tensor:
    """Rescale ``values`` to [0, 1] by their own finite min and max.

    A constant map becomes all zeros. Non-finite values, which a diverged
    critic can produce, are mapped to the nearest end (NaN to 0) instead of
    spoiling the scale of the finite ones.
    """
    finite = values[values.isfinite()]
    if finite.numel() == 0:
        return torch.zeros_like(values)
    low, high = finite.min(), finite.max()
    scaled = (values - low) / (high - low).clamp_min(torch.finfo(values.dtype).tiny)
    return scaled.nan_to_num(nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)


def apply_colormap(values: torch.Tensor) -> torch.Tensor:
    """Map (H, W) values in [0, 1] to (3, H, W) float RGB in [0, 255] through ``VIRIDIS``."""
    table = torch.tensor(VIRIDIS, dtype=torch.float32)
    position = values.float() * (len(table) - 1)
    index = position.floor().long().clamp(max=len(table) - 2)
    frac = (position - index).unsqueeze(-1)
    rgb = table[index] * (1 - frac) + table[index + 1] * frac
    return rgb.permute(2, 0, 1)


def contour_mask(values: torch.Tensor, levels: int) -> torch.Tensor:
    """Pixels of (H, W) ``values`` in [0, 1] where the map crosses one of ``levels`` bands.

    A pixel is on a contour when its quantised level differs from that of its
    right or lower neighbour, which gives lines one pixel wide.
    """
    band = (values * levels).floor().clamp(max=levels - 1)
    mask = torch.zeros_like(values, dtype=torch.bool)
    mask[:, :-1] |= band[:, :-1] != band[:, 1:]
    mask[:-1, :] |= band[:-1, :] != band[1:, :]
    return mask


def draw_squares(
    image: torch.Tensor,
    points: torch.Tensor,
    extent: Extent,
    colour: tuple[int, int, int],
    half_width: int,
) -> None:
    """Paint a (2 * half_width + 1)-pixel square at each point, in place.

    Points whose pixel lies outside the extent are skipped; squares of points
    near the border are cut off at the image edge.
    """
    _, height, width = image.shape
    rows, cols = pixel_indices(points, extent, height, width)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    rows, cols = rows[inside], cols[inside]
    fill = torch.tensor(colour, dtype=torch.uint8).unsqueeze(1)
    for dr in range(-half_width, half_width + 1):
        for dc in range(-half_width, half_width + 1):
            r, c = rows + dr, cols + dc
            on_image = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            image[:, r[on_image], c[on_image]] = fill


def pixel_indices(
    points: torch.Tensor, extent: Extent, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of the pixel containing each (x, y) point; may fall off the image.

    Non-finite points get index -1 so that callers skip them.
    """
    xmin, xmax, ymin, ymax = extent
    points = points.detach().double().cpu()
    cols = ((points[:, 0] - xmin) / (xmax - xmin) * width).floor()
    rows = ((ymax - points[:, 1]) / (ymax - ymin) * height).floor()
    return rows.nan_to_num(-1.0).long(), cols.nan_to_num(-1.0).long()


def _scores(D: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor) -> torch.Tensor:
    """Critic scores of ``points`` as a flat float32 tensor, checking D's output shape."""
    scores = D(points)
    if scores.numel() != points.shape[0]:
        raise ValueError(
            f"D must return one score per point, got shape {tuple(scores.shape)} "
            f"for {points.shape[0]} points"
        )
    return scores.reshape(-1).float()


@contextmanager
def _eval_mode(D: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Put an ``nn.Module`` critic in eval mode, restoring every submodule's flag on exit.

    Restoring per submodule (rather than ``D.train(previous)``) keeps parts that
    were deliberately frozen in eval mode, such as a pretrained feature
    extractor, the way they were. In eval mode batch norm uses its running
    statistics instead of updating them and spectral norm skips its power
    iteration, so drawing the map leaves the critic's state untouched.
    """
    if not isinstance(D, torch.nn.Module):
        yield
        return
    modes = [(module, module.training) for module in D.modules()]
    D.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _check_points(points: torch.Tensor, name: str, allow_empty: bool) -> None:
    """Raise ValueError unless ``points`` has shape (n, 2) (with n > 0 unless allowed)."""
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2), got {tuple(points.shape)}")
    if not allow_empty and points.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one point")
