"""Everything one training run writes into its run directory, behind the loop's ``Run`` protocol.

Layout of a run directory (Hydra's, under ``outputs/``)::

    .hydra/config.yaml        resolved config (written by Hydra); .hydra/resume_<n>/ for each resume
    run_info.json             versions, git commit, device, precision (run_info_resume_<step>.json later)
    events.out.tfevents.*     TensorBoard scalars, images and the HParams entry
    samples/critic_*.png      2-D data: the critic map with real and generated points, every sample_every
    samples/samples_*.png     images: a grid of G's samples from fixed noise, every sample_every
    checkpoints/step_*.pt     the full training state, atomic writes, the newest keep_checkpoints kept
    metrics.json              every evaluation, and the final metrics
    train.log                 Hydra's job log (appended to when the run is resumed)

A resumed run (``start_step`` > 0) continues in the same directory: TensorBoard purges the events
logged after the checkpoint's step, and metrics.json keeps its evaluations up to that step. A run
resumed from an older checkpoint than its newest starts a new branch there: :func:`supersede_after`
first moves the old branch's later records into ``superseded_<n>/``.
"""

from __future__ import annotations

import errno
import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganlab.checkpoint import CHECKPOINT_DIR, checkpoint_path, latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from ganlab.errors import TrainingFailed
from ganlab.filenames import numbered
from ganlab.logger.console import ProgressDisplay
from ganlab.logger.tensorboard import TensorBoard, session_hparams
from ganlab.viz.critic_map import save_png

log = logging.getLogger("ganlab")

EXIT_WRITE_FAILED = 4


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN/inf


SAMPLES_DIR = "samples"
SUPERSEDED = "superseded_"


def supersede_after(run_dir: str | Path, step: int) -> tuple[Path, list[str]] | None:
    """Move what a run recorded past ``step`` into ``superseded_<n>/``; return (folder, moved names).

    A run resumed from ``step`` while its directory holds checkpoints past ``step`` (it is resumed
    from an older checkpoint than its newest) or the ``run_info_resume_<s>.json`` of an earlier
    resume from ``step`` or later continues a new branch. The old branch's records would otherwise
    be mixed with the new ones or lost: its later checkpoints would count as the newest (``resume=auto`` would go back to them,
    and pruning would delete each new checkpoint right after writing it), its later pictures would
    sit beside the new ones, its ``run_info_resume_<step>.json`` would be overwritten and its later
    evaluations dropped from metrics.json. They are kept, never deleted, with the folder layout:
    ``checkpoints/step_*.pt`` and ``samples/*_<step>.png`` past ``step``,
    ``run_info_resume_<s>.json`` for s >= ``step``, and a copy of metrics.json when it has
    evaluations past ``step``. ``n`` is one more than the largest existing. Returns None, moving
    nothing, when there is no such checkpoint or record: pictures and evaluations past ``step``
    alone come from a process stopped before its next checkpoint, on the trajectory that the
    resumed run repeats, and are written again.
    """
    run_dir = Path(run_dir)
    later = [path for n, path in numbered(run_dir / CHECKPOINT_DIR, "step_", ".pt") if n > step]
    later += [path for n, path in numbered(run_dir, "run_info_resume_", ".json") if n >= step]
    if not later:
        return None
    samples = run_dir / SAMPLES_DIR
    if samples.is_dir():
        later += sorted(path for path in samples.glob("*_*.png") if (n := _trailing_number(path.stem)) is not None and n > step)
    metrics = run_dir / "metrics.json"
    copy_metrics = any(h["step"] > step for h in _history(metrics))
    aside = run_dir / f"{SUPERSEDED}{max((n for n, _ in numbered(run_dir, SUPERSEDED)), default=0) + 1}"
    moved = []
    for path in later:
        target = aside / path.relative_to(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
        moved.append(str(path.relative_to(run_dir)))
    if copy_metrics:
        aside.mkdir(exist_ok=True)
        (aside / "metrics.json").write_bytes(metrics.read_bytes())  # the resumed run keeps the history up to step
        moved.append("metrics.json (a copy)")
    return aside, moved


def _trailing_number(stem: str) -> int | None:
    tail = stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _history(path: Path) -> list[dict[str, Any]]:
    """The evaluations recorded in a run's metrics.json (none when there is no such file)."""
    return json.loads(path.read_text()).get("history", []) if path.is_file() else []


class RunLogger:
    def __init__(
        self, run_dir: Path, evaluator: Any, progress: ProgressDisplay, checkpoint_meta: dict[str, Any],
        device: torch.device, keep_checkpoints: int = 3, start_step: int = 0,
    ):
        self.run_dir = Path(run_dir)
        self.evaluator = evaluator
        self.progress_display = progress
        self.checkpoint_meta = checkpoint_meta
        self.device = device
        self.keep_checkpoints = keep_checkpoints
        self.start_step = start_step
        self.tb = TensorBoard(self.run_dir, purge_step=start_step + 1 if start_step else None)
        self.history: list[dict[str, Any]] = self._earlier_history(start_step) if start_step else []

    def start(self, hparams: dict[str, Any], choices: dict[str, Any] | None = None, overrides: list[str] = ()) -> None:
        """Register the run in TensorBoard's HParams tab (:func:`session_hparams`): ``hparams`` the
        flat config, ``choices`` and ``overrides`` Hydra's config-group choices and task overrides,
        which name the run's session group (its seeds are averaged there) and the keys shown first.
        A resumed run keeps the entry that its first process wrote (TensorBoard reads only that one)."""
        if self.start_step:
            return
        entry, group, leading = session_hparams(hparams, choices or {}, list(overrides))
        self.tb.hparams(entry, self.evaluator.metric_names, group=group, leading=leading)

    # ----------------------------------------------------------------- the Run protocol
    def progress(self, step: int) -> None:
        self.progress_display.advance(step)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.tb.scalars(step, scalars)
        self.progress_display.report(step, scalars)

    def histograms(self, step: int, values: dict[str, torch.Tensor]) -> None:
        self.tb.histograms(step, values)

    def sample(self, step: int, G: nn.Module, D: nn.Module) -> None:
        image = self.evaluator.picture(G, D, step)
        self.tb.image(self.evaluator.picture_tag, step, image)
        self._write(lambda: save_png(image, self.run_dir / SAMPLES_DIR / f"{self.evaluator.picture_name}_{step:07d}.png"), "sample picture")

    def evaluate(self, step: int, G: nn.Module, D: nn.Module) -> dict[str, float]:
        metrics = self.evaluator.evaluate(G)
        self.tb.scalars(step, metrics)
        self.tb.flush()
        self.history.append({"step": step, **{k: _json_number(v) for k, v in metrics.items()}})
        self._write_metrics(final=None)
        log.info("step %d  %s", step, "  ".join(f"{k.split('/')[-1]}={v:.4g}" for k, v in metrics.items()))
        return metrics

    def save(self, step: int, state: dict[str, Any]) -> None:
        path = checkpoint_path(self.run_dir, step)
        previous = latest_checkpoint(self.run_dir)
        try:
            save_checkpoint({**state, **self.checkpoint_meta}, path)
        except OSError as err:
            kept = f"the previous checkpoint {previous} is kept" if previous else "no earlier checkpoint exists"
            reason = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
            raise TrainingFailed(f"could not write checkpoint {path}: {reason}; {kept}", EXIT_WRITE_FAILED) from err
        prune_checkpoints(self.run_dir, self.keep_checkpoints)

    def last_good_state(self) -> dict[str, Any] | None:
        path = latest_checkpoint(self.run_dir)
        return load_checkpoint(path, map_location=self.device) if path else None

    def last_good_description(self) -> str:
        path = latest_checkpoint(self.run_dir)
        if path is None:
            return "no checkpoint was written before that"
        return f"the last good checkpoint {path} is kept (resume with: ganlab train resume={self.run_dir})"

    def rolled_back(self, step: int, count: int, reason: str, lr_G: float, lr_D: float) -> None:
        log.warning("rollback %d: %s; back to step %d with learning rates G %.3g, D %.3g", count, reason, step, lr_G, lr_D)
        self.tb.close()
        self.tb = TensorBoard(self.run_dir, purge_step=step + 1)  # drop what was logged after the checkpoint
        self.tb.scalars(step, {"Health/rollbacks": float(count)})
        self.history = [h for h in self.history if h["step"] <= step]

    def recorded_final(self) -> dict[str, float]:
        """The final metrics that metrics.json already holds (its ``final``, else its last evaluation),
        for a resumed run with no step left to train; empty when it holds none."""
        path = self.run_dir / "metrics.json"
        body = json.loads(path.read_text()) if path.is_file() else {}
        final = body.get("final") or {k: v for k, v in (body.get("history") or [{}])[-1].items() if k != "step"}
        return {k: math.nan if v is None else float(v) for k, v in final.items()}

    # ----------------------------------------------------------------------- closing
    def finish(self, metrics: dict[str, float] | None) -> None:
        """Write metrics.json (with ``final`` when the run completed) and close the event files."""
        self._write_metrics(final=metrics)
        if metrics is not None:
            self.tb.session_end()
        self.tb.close()

    def _earlier_history(self, start_step: int) -> list[dict[str, Any]]:
        return [h for h in _history(self.run_dir / "metrics.json") if h["step"] <= start_step]

    def _write_metrics(self, final: dict[str, float] | None) -> None:
        body: dict[str, Any] = {"history": self.history}
        if final is not None:
            body["final"] = {k: _json_number(v) for k, v in final.items()}

        def write() -> None:
            tmp = self.run_dir / "metrics.json.tmp"
            tmp.write_text(json.dumps(body, indent=2) + "\n")
            tmp.replace(self.run_dir / "metrics.json")

        self._write(write, "metrics.json")

    def _write(self, write: Any, what: str) -> None:
        try:
            write()
        except OSError as err:
            reason = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
            raise TrainingFailed(f"could not write the {what} in {self.run_dir}: {reason}; the checkpoints already written are kept", EXIT_WRITE_FAILED) from err
