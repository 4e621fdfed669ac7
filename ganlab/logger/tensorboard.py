"""TensorBoard output of one run: scalars, images and the HParams entry, in the run directory.

Event files go straight into the run directory (no sub-folder), so ``tensorboard --logdir
<sweep dir>`` names each run after its job directory, e.g. ``objective=wgan_gp,seed=1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary


class TensorBoard:
    def __init__(self, log_dir: str | Path, purge_step: int | None = None):
        # purge_step: events at and after this step, logged by an earlier process, are hidden
        # (a resumed or rolled-back run logs them again).
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def histograms(self, step: int, values: dict[str, torch.Tensor]) -> None:
        """``values``: tag -> a tensor of any shape (its values are binned; non-finite ones are dropped)."""
        for tag, value in values.items():
            value = value.detach().float().flatten().cpu()
            self.writer.add_histogram(tag, value[torch.isfinite(value)], step)

    def image(self, tag: str, step: int, image: torch.Tensor) -> None:
        """``image``: a uint8 (3, H, W) tensor."""
        self.writer.add_image(tag, image, step, dataformats="CHW")

    def hparams(self, hparams: dict[str, Any], metric_tags: list[str]) -> None:
        """Register the run in the HParams view: its hyperparameters, and which scalar tags are
        its metrics (TensorBoard shows their latest logged values). Written into this run's own
        event file, unlike ``SummaryWriter.add_hparams``, which makes a separate sub-run."""
        exp, ssi, sei = hparams_summary(hparams, {tag: 0.0 for tag in metric_tags})
        for summary in (exp, ssi, sei):
            self.writer.file_writer.add_summary(summary)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def flatten_hparams(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config into ``{"objective.lr_G": 1e-4, ...}`` with TensorBoard-legal values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif value is None:
            flat[name] = "none"
        else:
            flat[name] = str(value)
    return flat
