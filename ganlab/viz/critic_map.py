"""Critic value maps for 2-D toy data, the figure of the WGAN-GP paper (Fig. 2), drawn with matplotlib.

The critic ``D`` is evaluated on a regular grid over the plane; the figure shows its value as
filled contours (viridis, low = dark purple, high = yellow) with thin contour lines, real samples
as orange dots on top of generated samples as white diamonds, a colour bar of the critic's value, axes
with ticks at equal aspect, a legend and a title. ``critic_figure`` builds the matplotlib
``Figure`` (to inspect or save as PDF); ``critic_map`` renders it with the Agg backend to a uint8
RGB tensor that a training loop logs to TensorBoard (``add_image``) and writes with ``save_png``::

    image = critic_map(D, real, fake, title="wgan_gp: critic at step 2500")  # uint8 (3, 480, 540), CPU
    save_png(image, run_dir / "critic.png")

A packed critic (``pack`` = m > 1, :mod:`ganlab.models.packing`) scores m points at once; the map
shows its value for the pack of m copies of x, labelled ``critic D(x, x)`` (m = 2): a slice of a
function of m points along its diagonal, where real and generated packs (m independent draws) seldom lie.

pyplot is never used: its global figure manager is not thread-safe, and the joblib launcher runs
training jobs in threads; ``critic_map`` also draws one figure at a time (``_DRAWING``). matplotlib
is imported when a figure is first drawn, not with this module, because its import adds 0.3 to
0.6 s to the start of every ganlab command (measured with ``python -X importtime``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from ganlab.models.packing import on_copies

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Extent = tuple[float, float, float, float]  # (xmin, xmax, ymin, ymax)

FIGURE_SIZE = (5.4, 4.8)  # inches; at DPI, 540 x 480 pixels with a plot area of about 370 x 370,
DPI = 100  # where the 25 Gaussians' modes (std 0.02 on a spacing of 0.7) stay well apart
GRID_POINTS = 200  # critic evaluations per side: contours smooth at this plot size
CONTOUR_LEVELS = 12  # at most this many filled bands, at round values (matplotlib's MaxNLocator)
COLORMAP = "viridis"
COLORBAR_LABEL = "critic D(x)"
# Real points on top of generated ones: they are 25 small clusters that a spread-out G would hide.
# The dark edges keep both visible on the yellow end of viridis, where a critic puts real data.
REAL_STYLE = dict(marker="o", s=12, color="tab:orange", edgecolors="black", linewidths=0.4, zorder=4, label="real")
FAKE_STYLE = dict(marker="D", s=9, color="white", edgecolors="black", linewidths=0.4, zorder=3, label="generated")
NOT_FINITE_COLOUR = "0.8"  # light grey: where the critic's value is NaN or infinite
EXTENT_MARGIN = 0.1  # fraction of the data span added on each side of the default extent
MAX_EXTENT_SCALE = 4.0  # default extent reaches at most this many times max |real coordinate|
EVAL_BATCH_SIZE = 16384  # grid points per critic call; bounds activation memory
# matplotlib's FAQ: "Matplotlib is not thread-safe ... it is your responsibility to set up the proper
# locks"; drawing takes about 0.1 s every sample_every steps, so jobs in threads barely wait.
_DRAWING = threading.Lock()


def critic_map(
    D: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    extent: Extent | None = None,
    title: str = "critic",
) -> torch.Tensor:
    """The critic figure of :func:`critic_figure`, rendered: a uint8 (3, 480, 540) CPU tensor.

    The pixel size is ``FIGURE_SIZE`` times ``DPI`` (height 480, width 540). Arguments and errors
    are those of :func:`critic_figure`.
    """
    with _DRAWING:
        return figure_to_image(critic_figure(D, real, fake, extent, title))


def critic_figure(
    D: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    extent: Extent | None = None,
    title: str = "critic",
) -> Figure:
    """A figure of the critic's value over the plane with real and generated points on top.

    Args:
        D: maps an (N, 2) float32 tensor on ``real.device`` to (N,) or (N, 1) scores, or a packed
            critic (a ``pack`` attribute m > 1, :class:`ganlab.models.packing.Packed`): (N*m, 2) to
            (N,), drawn at x for the pack of m copies of x. An
            ``nn.Module`` is evaluated in eval mode (batch norm uses its running statistics,
            spectral norm skips its power iteration) and every submodule's train/eval flag is
            restored afterwards.
        real: real samples, shape (n, 2), n >= 1; the critic is evaluated on its device.
        fake: generated samples, shape (m, 2); may be empty. Non-finite points and points outside
            the extent are not drawn; the legend entry counts them.
        extent: (xmin, xmax, ymin, ymax) of the plot; by default a square around the points
            (:func:`default_extent`).
        title: the axes' title, e.g. ``"wgan_gp: critic at step 2500"``.

    Returns:
        A ``matplotlib.figure.Figure`` of ``FIGURE_SIZE`` inches at ``DPI``: one axes with the
        filled contour set (``ContourSet.filled``; its ``colorbar`` is labelled
        ``COLORBAR_LABEL``), contour lines, one scatter per point set (labels ``real`` and
        ``generated``), and a figure legend. Non-finite critic values are left unfilled on a grey
        background and get a legend entry; when no value is finite there is no colour bar.

    Raises:
        ValueError: ``real`` or ``fake`` is not of shape (n, 2), ``real`` is empty, the extent is
            empty, or ``D`` does not return one score per point.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    _check_points(real, "real", allow_empty=False)
    _check_points(fake, "fake", allow_empty=True)
    extent = default_extent(real, fake) if extent is None else extent
    xmin, xmax, ymin, ymax = extent
    if not (xmin < xmax and ymin < ymax):
        raise ValueError(f"extent must satisfy xmin < xmax and ymin < ymax, got {extent}")
    xs, ys, values = critic_values(D, extent, GRID_POINTS, real.device)

    fig = Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_facecolor(NOT_FINITE_COLOUR)  # shows only where the contours leave a hole
    finite = values[np.isfinite(values)]
    extra_handles = []
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        if high - low <= 1e-6 * max(1.0, abs(low)):  # a constant critic still gets one band around its value
            low, high = low - 0.5, high + 0.5
        levels = MaxNLocator(nbins=CONTOUR_LEVELS).tick_values(low, high)
        masked = np.ma.masked_invalid(values)
        filled = ax.contourf(xs, ys, masked, levels=levels, cmap=COLORMAP)
        ax.contour(xs, ys, masked, levels=levels, colors="black", linewidths=0.4, alpha=0.4)
        fig.colorbar(filled, ax=ax, label=colorbar_label(getattr(D, "pack", 1)), shrink=0.9)
    if finite.size < values.size:
        extra_handles.append(Patch(facecolor=NOT_FINITE_COLOUR, edgecolor="black", linewidth=0.4, label="D(x) not finite"))

    real, fake = (points.detach().double().cpu().numpy() for points in (real, fake))
    ax.scatter(real[:, 0], real[:, 1], **REAL_STYLE)
    fake_label = FAKE_STYLE["label"]
    shown = np.isfinite(fake).all(axis=1)
    hidden = len(fake) - int(_inside(fake[shown], extent).sum())
    if hidden:
        fake_label += f" ({hidden} of {len(fake)} outside)"
    fake = fake[shown]
    ax.scatter(fake[:, 0], fake[:, 1], **{**FAKE_STYLE, "label": fake_label})

    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)
    handles, _ = ax.get_legend_handles_labels()
    # Below the plot, not on it: the 25 modes reach into every corner of the default extent.
    fig.legend(handles=handles + extra_handles, loc="outside lower center", ncols=3, markerscale=2, frameon=False)
    return fig


def figure_to_image(fig: Figure) -> torch.Tensor:
    """Render ``fig`` with matplotlib's Agg backend: a uint8 (3, H, W) CPU tensor, H x W the
    figure's size in inches times its dpi."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).contiguous()


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


def critic_values(
    D: Callable[[torch.Tensor], torch.Tensor], extent: Extent, n: int, device: torch.device | str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """D on an n x n grid spanning ``extent`` edge to edge: (xs (n,), ys (n,), values (n, n)).

    ``values[i, j]`` is D at (xs[j], ys[i]) (a packed critic: at m copies of that point,
    :func:`ganlab.models.packing.on_copies`), the layout of matplotlib's ``contourf(xs, ys, values)``;
    float64, non-finite values kept as they are. D runs in eval mode without gradients, in batches
    of ``EVAL_BATCH_SIZE`` float32 points on ``device``.
    """
    xmin, xmax, ymin, ymax = extent
    xs = torch.linspace(xmin, xmax, n, dtype=torch.float64)
    ys = torch.linspace(ymin, ymax, n, dtype=torch.float64)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([x, y], dim=-1).view(-1, 2).float().to(device)
    with _eval_mode(D), torch.no_grad():
        scores = torch.cat([_scores(D, batch) for batch in grid.split(EVAL_BATCH_SIZE // getattr(D, "pack", 1))])
    return xs.numpy(), ys.numpy(), scores.view(n, n).double().cpu().numpy()


def colorbar_label(pack: int = 1) -> str:
    """``critic D(x)``, or for a critic of packs of m samples ``critic D(x, x)`` (m = 2): m copies of x."""
    return COLORBAR_LABEL if pack == 1 else f"critic D({', '.join(['x'] * pack)})"


def _inside(points: np.ndarray, extent: Extent) -> np.ndarray:
    """Which of the (n, 2) ``points`` lie within ``extent`` (edges included): (n,) bool."""
    xmin, xmax, ymin, ymax = extent
    x, y = points[:, 0], points[:, 1]
    return (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)


def _scores(D: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor) -> torch.Tensor:
    """Critic scores of ``points`` as a flat float32 tensor, checking D's output shape."""
    scores = on_copies(D, points)
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
