"""The end-of-sweep report: which jobs of a multirun failed, and why.

A failing multirun job does not stop the sweep (see :func:`ganlab.errors.report_user_errors`):
it writes ``<job dir>/failed.json`` and returns. This Hydra callback, registered in
``conf/train.yaml`` under ``hydra.callbacks``, then prints one table of the failed jobs when the
sweep ends (job directory, error, message), or "all N jobs succeeded", then the TensorBoard command
for the whole sweep directory (the comparison), and makes ``ganlab train -m`` exit with status 1 when
any job failed, so that scripts and CI notice.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.table import Table

from ganlab.apps.parallel import stopped_by
from ganlab.errors import EXIT_SWEEP_FAILED, FAILED_FILE
from ganlab.filenames import sorted_by_number
from ganlab.logger.console import console, print_compare_command, print_tensorboard_command


def read_failure(job_dir: Path) -> dict[str, Any] | None:
    """A job's failed.json, or None when the job succeeded; an unreadable record still counts as a failure."""
    path = job_dir / FAILED_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return {"error": type(err).__name__, "message": f"{path} is unreadable"}


class SweepReport(Callback):
    """Lists a multirun's failed jobs at its end and sets the exit status."""

    def __init__(self) -> None:
        self.job_dirs: list[Path] = []

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # A sweep into an existing sweep directory reuses job directories: an earlier failure of
        # this job must not be reported again if the job now succeeds.
        (Path(config.hydra.runtime.output_dir) / FAILED_FILE).unlink(missing_ok=True)

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.job_dirs.append(Path(config.hydra.runtime.output_dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        # A launcher that runs jobs in other processes calls on_job_end there, not here: then
        # every directory under the sweep that Hydra wrote a job config into is a job.
        job_dirs = self.job_dirs or sorted_by_number({p.parent.parent for p in sweep_dir.glob("**/.hydra/config.yaml")})  # seed=2 before seed=10
        failed = [(job_dir, record) for job_dir in job_dirs if (record := read_failure(job_dir)) is not None]
        out = console()
        if not failed:
            out.print(f"all {len(job_dirs)} jobs succeeded ({sweep_dir})")
            print_tensorboard_command(sweep_dir)  # the comparison, not the last job's run
            print_compare_command(sweep_dir)
            return
        table = Table(title=f"{len(failed)} of {len(job_dirs)} jobs failed ({sweep_dir})", title_justify="left")
        for column in ("job directory", "error", "message"):
            table.add_column(column, overflow="fold")
        for job_dir, record in failed:
            name = str(job_dir.relative_to(sweep_dir)) if job_dir.is_relative_to(sweep_dir) else str(job_dir)
            table.add_row(name, str(record.get("error", "?")), str(record.get("message", "")))
        out.print(table)
        print_tensorboard_command(sweep_dir)
        print_compare_command(sweep_dir)
        # Exiting here is safe: on_multirun_end is the last thing Hydra does in a multirun. Every
        # job has returned and closed its files, and multirun.yaml is written; all that is left
        # is to return the sweep's results, which the ganlab command does not use. SystemExit is
        # not an Exception, so Hydra's callback runner (which turns a callback's exceptions into
        # warnings) and its error reporter let it through. This callback comes first under
        # hydra.callbacks, and Hydra calls on_multirun_end in reverse order, so any other
        # callback's on_multirun_end has already run.
        stopped = stopped_by()  # a parallel sweep stopped by a signal: 128 + its number, as shells report it
        sys.exit(128 + stopped if stopped else EXIT_SWEEP_FAILED)
