"""Scalars reported from anywhere during a step and read from the device once per interval.

``stats.report("Loss/D", loss_D)`` adds the value to a running sum *on the device*; nothing
waits for the GPU. ``stats.collect()`` turns every running mean into a Python float with a
single transfer, so a training loop synchronises with the device once per log interval,
never once per step (StyleGAN's ``training_stats`` idea, reduced to what ganlab needs).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class Stats:
    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def report(self, tag: str, value: torch.Tensor | float) -> None:
        """Add one observation of ``tag`` (a scalar tensor or number)."""
        if isinstance(value, torch.Tensor):
            value = value.detach().float()
        if tag in self._sums:
            self._sums[tag] = self._sums[tag] + value
            self._counts[tag] += 1
        else:
            self._sums[tag] = value if isinstance(value, torch.Tensor) else torch.tensor(float(value))
            self._counts[tag] = 1

    def collect(self, world=None) -> dict[str, float]:
        """The mean of each tag since the last collect, read in one transfer; then start afresh.

        With a distributed ``world`` (:class:`ganlab.distributed.World`), each value is the
        mean of the ranks' means (one all-reduce; every rank reports the same tags in the same order).
        """
        if not self._sums:
            return {}
        tags = list(self._sums)
        device = next(iter(self._sums.values())).device
        means = torch.stack([self._sums[t].to(device) / self._counts[t] for t in tags])
        if world is not None and world.distributed:
            dist.all_reduce(means)
            means /= world.size
        values = means.cpu().tolist()
        self._sums.clear()
        self._counts.clear()
        return dict(zip(tags, values))

    def state_dict(self) -> dict:
        """The unfinished interval's sums and counts, so a resumed run logs the same means."""
        return {"sums": dict(self._sums), "counts": dict(self._counts)}

    def load_state_dict(self, state: dict) -> None:
        self._sums = dict(state["sums"])
        self._counts = dict(state["counts"])
