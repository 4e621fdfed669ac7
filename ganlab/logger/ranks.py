"""The loop's ``Run`` on each process of a distributed run: rank 0 records, the others follow.

Only rank 0 writes TensorBoard, pictures, metrics and checkpoints (:class:`MainRank` wraps its
:class:`~ganlab.logger.run.RunLogger`); the metrics use rank 0's samples. A checkpoint is a
collective: every rank hands its own streams to rank 0 (:func:`ganlab.train.state.gather_ranks`),
which writes one file. A rollback is too: every rank reads the newest checkpoint of the run
directory and takes its own part (:func:`ganlab.train.state.rank_state`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganlab.checkpoint import latest_checkpoint, load_checkpoint
from ganlab.distributed import World
from ganlab.logger.run import RunLogger
from ganlab.train.state import gather_ranks, rank_state


class MainRank:
    """Rank 0: its RunLogger, with checkpoints that hold every rank's streams."""

    def __init__(self, run: RunLogger, world: World):
        self.run, self.world = run, world

    def __getattr__(self, name: str) -> Any:  # progress, log, histograms, sample, evaluate, rolled_back, ...
        return getattr(self.run, name)

    def save(self, step: int, state: dict[str, Any]) -> None:
        self.run.save(step, gather_ranks(state, self.world))

    def last_good_state(self) -> dict[str, Any] | None:
        state = self.run.last_good_state()
        return rank_state(state, self.world) if state is not None else None


class Follower:
    """Ranks 1..N-1: they record nothing, take part in checkpoints and read rank 0's for a rollback."""

    def __init__(self, run_dir: str | Path, device: torch.device, world: World):
        self.run_dir, self.device, self.world = Path(run_dir), device, world

    def progress(self, step: int) -> None:
        pass

    def log(self, step: int, scalars: dict[str, float]) -> None:
        pass

    def histograms(self, step: int, values: dict[str, torch.Tensor]) -> None:
        pass

    def sample(self, step: int, G: nn.Module, D: nn.Module) -> None:
        pass

    def evaluate(self, step: int, G: nn.Module, D: nn.Module) -> dict[str, float]:
        return {}

    def save(self, step: int, state: dict[str, Any]) -> None:
        gather_ranks(state, self.world)

    def last_good_state(self) -> dict[str, Any] | None:
        path = latest_checkpoint(self.run_dir)
        return rank_state(load_checkpoint(path, map_location=self.device), self.world) if path else None

    def last_good_description(self) -> str:
        return "rank 0 keeps the checkpoints"

    def rolled_back(self, step: int, count: int, reason: str, lr_G: float, lr_D: float) -> None:
        pass

    def recorded_final(self) -> dict[str, float]:
        return {}

    def finish(self, metrics: dict[str, float] | None) -> None:
        pass
