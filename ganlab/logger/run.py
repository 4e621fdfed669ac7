"""Everything one training run writes into its run directory, behind the loop's ``Run`` protocol.

Layout of a run directory (Hydra's, under ``outputs/``)::

    .hydra/config.yaml        resolved config (written by Hydra), plus run_info.json beside it
    events.out.tfevents.*     TensorBoard scalars, images and the HParams entry
    samples/critic_*.png      2-D data: the critic map with real and generated points, every sample_every
    samples/samples_*.png     images: a grid of G's samples from fixed noise, every sample_every
    checkpoints/last.pt       G, D, G_ema and both optimizers (atomic write), at every evaluation
    metrics.json              every evaluation, and the final metrics
    train.log                 Hydra's job log
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganlab.checkpoint import save_checkpoint
from ganlab.logger.console import ProgressDisplay
from ganlab.logger.tensorboard import TensorBoard
from ganlab.viz.critic_map import save_png

log = logging.getLogger("ganlab")

CHECKPOINT_NAME = "checkpoints/last.pt"


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN/inf


class RunLogger:
    def __init__(self, run_dir: Path, evaluator: Any, progress: ProgressDisplay, checkpoint_meta: dict[str, Any]):
        self.run_dir = Path(run_dir)
        self.evaluator = evaluator
        self.progress_display = progress
        self.checkpoint_meta = checkpoint_meta
        self.tb = TensorBoard(self.run_dir)
        self.history: list[dict[str, Any]] = []

    def start(self, hparams: dict[str, Any]) -> None:
        self.tb.hparams(hparams, self.evaluator.metric_names)

    # ----------------------------------------------------------------- the Run protocol
    def progress(self, step: int) -> None:
        self.progress_display.advance(step)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.tb.scalars(step, scalars)
        self.progress_display.report(step, scalars)

    def sample(self, step: int, G: nn.Module, D: nn.Module) -> None:
        image = self.evaluator.picture(G, D)
        self.tb.image(self.evaluator.picture_tag, step, image)
        save_png(image, self.run_dir / "samples" / f"{self.evaluator.picture_name}_{step:07d}.png")

    def evaluate(self, step: int, G: nn.Module, D: nn.Module) -> dict[str, float]:
        metrics = self.evaluator.evaluate(G)
        self.tb.scalars(step, metrics)
        self.tb.flush()
        self.history.append({"step": step, **{k: _json_number(v) for k, v in metrics.items()}})
        self._write_metrics(final=None)
        log.info("step %d  %s", step, "  ".join(f"{k.split('/')[-1]}={v:.4g}" for k, v in metrics.items()))
        return metrics

    def save(self, step: int, G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer, G_ema: nn.Module | None) -> None:
        state = {
            "step": step,
            "G": G.state_dict(),
            "D": D.state_dict(),
            "opt_G": opt_G.state_dict(),
            "opt_D": opt_D.state_dict(),
            **({"G_ema": G_ema.state_dict()} if G_ema is not None else {}),
            **self.checkpoint_meta,
        }
        save_checkpoint(state, self.run_dir / CHECKPOINT_NAME)

    # ----------------------------------------------------------------------- closing
    def finish(self, metrics: dict[str, float]) -> None:
        self._write_metrics(final=metrics)
        self.tb.close()

    def _write_metrics(self, final: dict[str, float] | None) -> None:
        body = {"history": self.history}
        if final is not None:
            body["final"] = {k: _json_number(v) for k, v in final.items()}
        tmp = self.run_dir / "metrics.json.tmp"
        tmp.write_text(json.dumps(body, indent=2) + "\n")
        tmp.replace(self.run_dir / "metrics.json")
