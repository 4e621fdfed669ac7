"""``ganlab compare``: decide between groups of runs over seeds, in the terminal, in TensorBoard and in a report.

    ganlab compare outputs/multirun/2026-11-30/12-00-00 [more directories] [key=value ...]

Finds the training runs below the directories (:mod:`ganlab.compare.runs`), groups the finished
ones (:mod:`ganlab.compare.grouping`), summarises their final metrics over seeds and compares the
groups pairwise (:mod:`ganlab.compare.comparison`, :mod:`ganlab.compare.stats`), reads every
logged point of the chosen scalar tags and draws each group's mean with its band over seeds
(:mod:`ganlab.compare.scalars`, :mod:`ganlab.compare.curves`). It writes into ``out``::

    summary.csv, summary.json, report.md   the tables (report.md also links the figures)
    curves/*.png                           one figure per tag, every group's mean and band
    tensorboard/<group>/                   the same as TensorBoard runs, with a Custom Scalars layout
    compare.yaml                           the options this comparison ran with
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.console import Console
from rich.progress import Progress

from ganlab.apps import CONFIG_DIR
from ganlab.compare import curves, report
from ganlab.compare.comparison import Comparison, Settings, compare
from ganlab.compare.runs import find_runs
from ganlab.compare.scalars import read_scalars
from ganlab.config import register_configs
from ganlab.errors import ConfigError, cannot_write, report_user_errors

register_configs()

OUTPUT_FILES = ("summary.csv", "summary.json", "report.md")


@hydra.main(config_path=CONFIG_DIR, config_name="compare", version_base="1.3")
@report_user_errors
def main(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "runs") or not cfg.runs:
        raise ConfigError("no directories to compare: ganlab compare <sweep or run directory> [more ...], e.g. ganlab compare outputs/multirun/<date>/<time>")
    if not 0 < cfg.confidence < 1:
        raise ConfigError(f"confidence={cfg.confidence} is not allowed: a level in (0, 1), e.g. 0.95")
    if cfg.resamples < 100:
        raise ConfigError(f"resamples={cfg.resamples} is not allowed: at least 100 (10000 gives end points stable to about 1% of the width)")
    group_by, tags = names("group_by", cfg.group_by), names("tags", cfg.tags)
    runs = find_runs(names("runs", cfg.runs))
    comparison = compare(runs, cfg.metric, cfg.higher_is_better, group_by, Settings(cfg.confidence, cfg.resamples, cfg.seed))
    out = prepare_output(Path(cfg.out))
    console = Console()
    figures = draw_curves(comparison, tags or [], cfg.confidence, out, console)
    command = command_line(cfg)
    try:
        report.write_csv(comparison, out / "summary.csv")
        report.write_json(comparison, out / "summary.json", figures, command)
        report.write_markdown(comparison, out / "report.md", figures, command)
        OmegaConf.save(cfg, out / "compare.yaml", resolve=True)  # out's date and time, as written
    except OSError as err:
        raise cannot_write(f"out={out}", err, "choose a writable out=") from err
    report.print_tables(comparison, console)
    console.print(f"wrote {out}/{{{','.join(OUTPUT_FILES)}}}" + (f" and {len(figures)} figures in {out}/curves" if figures else "")
                  + f"; {out}/report.md has the tables whole", markup=False, highlight=False)
    if figures:
        console.print(f"TensorBoard (Custom Scalars: each group's band): tensorboard --logdir {out}", markup=False, highlight=False)


def names(key: str, value: Any) -> list[str] | None:
    """A list option given as a list, or as one name (``group_by=objective`` for ``group_by=[objective]``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, ListConfig) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}={value} is not allowed: give names, e.g. {key}=[a,b]")
    return list(value)


def prepare_output(out: Path) -> Path:
    """Create ``out``; refuse one that holds an earlier comparison, whose TensorBoard runs would mix with these."""
    if any((out / name).exists() for name in (*OUTPUT_FILES, "curves", curves.TENSORBOARD_DIR)):
        raise ConfigError(f"out={out} holds an earlier comparison: choose another out= (the default is a new folder per run), or delete it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cannot_write(f"out={out}", err, "choose a writable out=") from err
    return out


def draw_curves(comparison: Comparison, tags: list[str], confidence: float, out: Path, console: Console) -> list[str]:
    """Read every logged point of ``tags`` from each compared run; write the figures and the
    TensorBoard runs of each group's mean and band. Returns the figures' paths relative to ``out``."""
    if not tags:
        return []
    runs = [run for group in comparison.groups for run in group.runs]
    series = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("reading event files", total=len(runs))
        for run in runs:
            series[run.path] = read_scalars(run.path, tags)
            progress.advance(task)
    bands = {}
    for group in comparison.groups:
        found = [series[run.path] for run in group.runs]
        common = [tag for tag in dict.fromkeys(t for s in found for t in s) if all(tag in s for s in found)]
        bands[group.label] = {tag: curves.seed_band([s[tag] for s in found], confidence) for tag in common}
    if not any(bands.values()):
        console.print(f"no scalars matching {', '.join(tags)} in the runs' event files: no curves drawn", markup=False, highlight=False)
        return []
    figures = curves.plot_curves(bands, out / "curves")
    curves.write_tensorboard(bands, out)
    return [str(Path(f).relative_to(out)) for f in figures]


def command_line(cfg: DictConfig) -> str:
    """The ``ganlab compare`` command that gives this comparison: the directories, then the other options."""
    options = [o for o in HydraConfig.get().overrides.task if not o.startswith("runs=")]
    return shlex.join(["ganlab", "compare", *names("runs", cfg.runs), *options])
