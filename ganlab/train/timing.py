"""Training speed: steps per second of training alone, without the pauses for pictures, metrics and
checkpoints (which depend on the intervals, not on how fast the GAN step is)."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator


class Speedometer:
    """Counts steps and training time between two readings (``lap``); ``paused()`` blocks don't count."""

    def __init__(self, step: int):
        self.restart(step)

    def restart(self, step: int) -> None:
        """Count from ``step`` now (at the start, and after a rollback)."""
        self._clock, self._step, self._paused = time.perf_counter(), step, 0.0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - start

    def lap(self, step: int) -> float:
        """Steps per second of training since the last reading; then start the next lap at ``step``."""
        now = time.perf_counter()
        rate = (step - self._step) / max(now - self._clock - self._paused, 1e-9)
        self._clock, self._step, self._paused = now, step, 0.0
        return rate
