"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (a cluster's preemption notice).

The first signal only sets a flag, which the training loop reads after each step (a Python bool,
no device sync): it then writes a checkpoint and stops with a message saying how to resume. A
second SIGINT restores Python's default behaviour, so pressing Ctrl-C again quits at once.

A :class:`StopOnSignal` can be entered again while it is in force (a distributed run takes the
signals from the moment it joins its process group, and the training loop's ``with`` then keeps
them): only the outermost ``with`` installs the handlers and puts the earlier ones back.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable
from types import FrameType

log = logging.getLogger("ganlab")

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as shells report it


class StopOnSignal:
    def __init__(self, signals: Iterable[signal.Signals] = tuple(EXIT_STATUS)) -> None:
        self.signals = tuple(signals)  # a submitit job adds its requeue signal (ganlab.apps.cluster)
        self.received: signal.Signals | None = None
        self.previous: dict[signal.Signals, object] = {}  # the handlers these replaced, put back on exit (ganlab.apps.cluster hands over to submitit's)
        self.depth = 0  # how many ``with`` blocks of this one are open

    def __call__(self) -> bool:
        """True once a stop was requested."""
        return self.received is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C quits at once
        log.warning("%s received: stopping after this step and writing a checkpoint (Ctrl-C again to quit at once)", self.received.name)

    def __enter__(self) -> "StopOnSignal":
        self.depth += 1
        if self.depth == 1 and threading.current_thread() is threading.main_thread():  # signals can only be set there
            for sig in self.signals:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self.depth -= 1
        if self.depth == 0:
            for sig, handler in self.previous.items():
                signal.signal(sig, handler)
