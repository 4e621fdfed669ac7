"""What a person sees in the terminal: the config at start, progress while training, a summary at the end.

In an interactive terminal progress is a live rich bar (step, steps/s, ETA; the last losses on the
line below). When the output is a file or pipe, or in a multirun (where several jobs' bars would
fight), it degrades to one plain log line per log interval, which also lands in Hydra's job log file.
"""

from __future__ import annotations

import logging
import math
import shlex
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.syntax import Syntax
from rich.table import Column, Table
from rich.text import Text

log = logging.getLogger("ganlab")

SHOWN_LOSSES = ("Loss/D", "Loss/G", "Wasserstein/estimate")


def console() -> Console:
    """rich's global console, which the RichHandler in Hydra's job logging also writes to."""
    from rich import get_console

    return get_console()


def print_config(config_yaml: str) -> None:
    console().print(Syntax(config_yaml.rstrip(), "yaml", theme="ansi_dark", background_color="default"))


def _losses_text(scalars: dict[str, float]) -> str:
    return "  ".join(f"{tag}={scalars[tag]:.4g}" for tag in SHOWN_LOSSES if tag in scalars)


class _BarThenLosses(Progress):
    """rich's Progress with each task's losses on a line of their own under its bar.

    In the bar's row the losses took the width that the step count, the elapsed time and the ETA
    need: rich cuts every column of the row to fit the terminal, so at 100 columns those read
    ``73…``, ``0:0…``. On their own line they wrap between entries (``tag=value`` never splits).
    """

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            if task.fields.get("losses"):
                yield Text(task.fields["losses"])


def _whole() -> Column:
    """A column rich may not wrap or collapse, so that only the bar gives way in a narrow terminal."""
    return Column(no_wrap=True)


class ProgressDisplay:
    """Training progress: a live rich bar in an interactive terminal, else one log line per interval.

    The bar's row holds the step count, steps/s, elapsed time and ETA, whole from 80 columns up;
    the last losses (``SHOWN_LOSSES``) go on the line below it.

    Args:
        total_steps: the step the run ends at.
        live: show the live bar; it is shown only if rich's console is also a terminal.
        start_step: the step the run starts from (a resumed run's checkpoint step).
    """

    def __init__(self, total_steps: int, live: bool, start_step: int = 0):
        self.total = total_steps
        self.live = live and console().is_terminal
        self._progress: Progress | None = None
        self._task = None
        self._start_step = start_step

    def __enter__(self) -> "ProgressDisplay":
        if self.live:
            self._progress = _BarThenLosses(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(table_column=_whole()),
                TextColumn("{task.fields[speed]}"),
                TimeElapsedColumn(table_column=_whole()),
                TextColumn("ETA"),
                TimeRemainingColumn(table_column=_whole()),
                console=console(),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=self.total, completed=self._start_step, speed="", losses="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, step: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step)

    def report(self, step: int, scalars: dict[str, float]) -> None:
        speed = scalars.get("Speed/steps_per_sec", float("nan"))
        if self._progress is not None:
            self._progress.update(self._task, completed=step, speed=f"{speed:.1f} steps/s", losses=_losses_text(scalars))
        else:
            eta = (self.total - step) / speed if speed > 0 and math.isfinite(speed) else float("nan")
            eta_text = f"{int(eta // 60)}:{int(eta % 60):02d}" if math.isfinite(eta) else "?"
            log.info("step %d/%d  %.1f steps/s  ETA %s  %s", step, self.total, speed, eta_text, _losses_text(scalars))


def print_summary(metrics: dict[str, float], run_dir: Path, title: str = "ganlab train") -> None:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for tag, value in metrics.items():
        table.add_row(tag, f"{value:.4g}")
    table.add_row("run directory", str(run_dir))
    console().print(table)
    print_tensorboard_command(run_dir)


def print_tensorboard_command(logdir: Path) -> None:
    """``TensorBoard: tensorboard --logdir <logdir>``: one unbroken line, to copy.

    A table cell would wrap a long path, and a path with spaces or shell characters (a sweep job
    named by its values) is quoted. For a run, the event files are in the run directory itself; for
    a sweep, TensorBoard finds each job's below the sweep directory and names it by its folder.
    """
    console().print(f"TensorBoard: tensorboard --logdir {shlex.quote(str(logdir))}", soft_wrap=True, highlight=False, markup=False)


def print_compare_command(sweep_dir: Path) -> None:
    """``Compare over seeds: ganlab compare <sweep dir>``: one unbroken line, to copy."""
    console().print(f"Compare over seeds: ganlab compare {shlex.quote(str(sweep_dir))}", soft_wrap=True, highlight=False, markup=False)
