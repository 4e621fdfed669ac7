"""Training curves of groups of runs: the mean over seeds with a confidence band, as PNG figures and as TensorBoard runs.

``seed_band(series)`` turns one tag's :class:`~ganlab.compare.scalars.Series` of a group's runs
(one per seed) into a :class:`Band`; :func:`plot_curves` draws ``bands[group][tag]`` as one
figure per tag, and :func:`write_tensorboard` writes them as TensorBoard runs with a custom
scalars layout, so ``tensorboard --logdir <output>`` shows each group's band in the Custom
Scalars tab.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats
from tensorboard.backend.event_processing import io_wrapper
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter

from ganlab.compare.scalars import Series
from ganlab.filenames import portable_name

TENSORBOARD_DIR = "tensorboard"  # <output>/tensorboard/<group>: one TensorBoard run per group
BAND_SUFFIXES = ("mean", "lower", "upper")  # <tag>/mean, <tag>/lower, <tag>/upper in each group's run
BAND_ALPHA = 0.2  # opacity of a band, so that overlapping bands stay readable
MARKED_POINTS = 30  # a curve of this many points or fewer (the metrics, every eval_every) gets a marker per point


@dataclass(frozen=True)
class Band:
    """One tag of one group: at each step, the mean over the group's runs and its confidence band.

    ``steps`` int64 (m,), increasing; ``mean``, ``lower``, ``upper`` float64 (m,); ``n`` int64
    (m,): the number of runs with a finite value at that step (NaN for all three when it is 0);
    ``runs``: the number of runs the band was made from (the group's seeds); ``confidence``: the
    band's level (0.95: a 95% interval).
    """

    steps: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: np.ndarray
    runs: int
    confidence: float


def seed_band(series: list[Series], confidence: float = 0.95) -> Band:
    """The mean over ``series`` (one per run, usually one per seed) and its ``confidence`` interval, at each step.

    Alignment: a step is kept where every run logged it (the intersection of their steps), so each
    point averages the same runs; runs logged at different intervals share only their common steps.
    Band: Student's t-interval of the mean over runs at each step, mean +- t_{(1+confidence)/2,
    n-1} * s / sqrt(n) with s the sample standard deviation (ddof=1) of the n finite values
    (``scipy.stats.t``). It is analytic on purpose: a bootstrap at every step of every tag would
    take seconds per figure, and the final metrics, where the decision is made, get the bootstrap.
    The t-interval assumes the values over seeds are roughly normal, which for few seeds cannot be
    checked; it is an honest picture of the spread, not a test. With one finite value the band is
    the value itself (no spread can be estimated). Non-finite values (a diverged run's NaN or inf)
    are left out of that step's statistics, and ``n`` counts the finite ones.

    Raises ValueError for no series, or a ``confidence`` outside (0, 1).
    """
    if not series:
        raise ValueError("seed_band needs at least one series")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    steps = series[0].steps
    for s in series[1:]:
        steps = np.intersect1d(steps, s.steps, assume_unique=True)
    values = np.stack([s.values[np.searchsorted(s.steps, steps)] for s in series])  # (runs, m)
    finite = np.isfinite(values)
    n = finite.sum(axis=0)
    x = np.where(finite, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, x.sum(axis=0) / n, np.nan)
        spread = np.where(finite, values - mean, 0.0)
        sd = np.sqrt((spread**2).sum(axis=0) / (n - 1))
        half = stats.t.ppf((1 + confidence) / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    half = np.where(n > 1, half, np.where(n == 1, 0.0, np.nan))
    return Band(steps.astype(np.int64), mean, mean - half, mean + half, n.astype(np.int64), len(series), confidence)


def _file_names(tags: list[str]) -> dict[str, str]:
    """A file name (without suffix) for each tag: ``Loss/D`` -> ``Loss_D``; distinct, portable."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for tag in tags:
        name = portable_name(tag.replace("/", "_"))
        if name.lower() in taken:  # "Loss/D" and "Loss_D", or two tags equal but for case
            name = portable_name(tag, distinct_by_case=True)  # ends in a hash of the tag
        taken.add(name.lower())
        names[tag] = name
    return names


def _tags(bands: dict[str, dict[str, Band]]) -> list[str]:
    return sorted({tag for by_tag in bands.values() for tag in by_tag})


def _label(group: str, band: Band) -> str:
    return f"{group} ({band.runs} seed{'s' if band.runs != 1 else ''})"


def curve_figure(tag: str, bands: dict[str, dict[str, Band]]) -> Figure:
    """The figure of one tag: each group's mean as a line with its band shaded, in the order of ``bands``.

    ``bands[group][tag]``; a group without ``tag`` is left out. The legend names each group with
    its seed count; the title gives the bands' confidence level.
    Drawn with matplotlib's object API (Figure and the Agg canvas, no pyplot state), so it is safe
    in threads.
    """
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    levels = set()
    for group, by_tag in bands.items():
        band = by_tag.get(tag)
        if band is None:
            continue
        levels.add(band.confidence)
        marker = "o" if len(band.steps) <= MARKED_POINTS else None  # a few evaluations: show where they are
        (line,) = ax.plot(band.steps, band.mean, marker=marker, markersize=4, label=_label(group, band))
        ax.fill_between(band.steps, band.lower, band.upper, color=line.get_color(), alpha=BAND_ALPHA, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.set_xlabel("step")
    ax.set_ylabel(tag)
    ax.set_title(f"{tag}: mean over seeds, {'/'.join(f'{c:.0%}' for c in sorted(levels))} t-interval")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def plot_curves(bands: dict[str, dict[str, Band]], out_dir: str | Path) -> list[Path]:
    """One PNG per tag in ``out_dir`` (``Loss/D`` -> ``Loss_D.png``, 700x450 px), drawn by :func:`curve_figure`.

    ``bands[group][tag]``. Returns the paths written, in tag order (sorted). File names are
    portable (``ganlab.filenames.portable_name``); two tags that would share one (``Loss/D`` and
    ``Loss_D``) get distinct names, the second ending in a hash of its tag.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tags = _tags(bands)
    names = _file_names(tags)
    paths = []
    for tag in tags:
        path = out_dir / f"{names[tag]}.png"
        curve_figure(tag, bands).savefig(path, dpi=100)
        paths.append(path)
    return paths


def run_folder(group: str) -> str:
    """The folder of ``group``'s TensorBoard run below ``<out_dir>/tensorboard`` (:func:`write_tensorboard`)."""
    return portable_name(group, distinct_by_case=True)


def _is_ours(root: Path) -> bool:
    """Whether every file below ``root`` is a TensorBoard event file (a folder this module wrote)."""
    return all(io_wrapper.IsSummaryEventsFile(str(p)) for p in root.rglob("*") if not p.is_dir())


def write_tensorboard(bands: dict[str, dict[str, Band]], out_dir: str | Path) -> Path:
    """Write ``bands[group][tag]`` as TensorBoard runs ``<out_dir>/tensorboard/<group>``; return ``<out_dir>/tensorboard``.

    Each group's run holds, for each tag, the scalars ``<tag>/mean``, ``<tag>/lower`` and
    ``<tag>/upper`` at the band's steps (NaN where no run had a finite value), all of one step in
    one event. The folder name is ``ganlab.filenames.portable_name(group, distinct_by_case=True)``,
    which keeps a group name such as ``objective=wgan_gp,lr=1e-4`` as it is (TensorBoard shows it
    as the run's name); characters that some file system refuses are replaced and a hash of the
    name added, as it is to a name with upper case letters (two groups that differ only in case
    would share one folder on macOS and Windows).

    One custom scalars layout (``SummaryWriter.add_custom_scalars``), written into the first
    group's run (TensorBoard merges the layouts of all runs, so one is enough): a category per tag
    prefix (``Loss``, ``Metrics``, ...) with a margin chart per tag whose series is (mean, lower,
    upper): the Custom Scalars tab draws every group's mean with its band in one chart.

    An earlier ``<out_dir>/tensorboard`` is replaced when it holds nothing but event files (a
    comparison written there before: its runs would otherwise mix with the new ones); otherwise
    FileExistsError is raised, and nothing is deleted.
    """
    root = Path(out_dir) / TENSORBOARD_DIR
    if root.exists():
        if not (root.is_dir() and _is_ours(root)):
            raise FileExistsError(f"{root} exists and holds files that ganlab compare did not write; choose another output directory")
        shutil.rmtree(root)
    tags = _tags(bands)
    layout: dict[str, dict[str, list]] = defaultdict(dict)
    for tag in tags:
        layout[tag.split("/")[0]][tag] = ["Margin", [f"{tag}/{suffix}" for suffix in BAND_SUFFIXES]]
    for i, (group, by_tag) in enumerate(bands.items()):
        by_step: dict[int, list[Summary.Value]] = defaultdict(list)
        for tag, band in by_tag.items():
            for j, step in enumerate(band.steps.tolist()):
                for suffix, values in zip(BAND_SUFFIXES, (band.mean, band.lower, band.upper)):
                    by_step[step].append(Summary.Value(tag=f"{tag}/{suffix}", simple_value=float(values[j])))
        writer = SummaryWriter(log_dir=str(root / run_folder(group)))
        try:
            if i == 0:
                writer.add_custom_scalars(dict(layout))
            for step in sorted(by_step):
                writer.file_writer.add_summary(Summary(value=by_step[step]), step)
        finally:
            writer.close()
    return root
