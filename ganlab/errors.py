"""The one exception type for a user's mistake, and how the command line reports it.

A :class:`ConfigError` carries a one-line message that names the bad key or file, the bad value
and what would be accepted. The apps turn it into ``error: <message>`` on stderr and exit status 2,
without a traceback; ``HYDRA_FULL_ERROR=1`` shows the traceback, as for Hydra's own errors.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable, TypeVar

EXIT_USAGE = 2  # the conventional exit status for bad input (argparse, Hydra overrides)

T = TypeVar("T")


class ConfigError(Exception):
    """Bad configuration, file or command-line input, reported as one line."""


def report_user_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Make ``fn`` (a Hydra task function) print a ConfigError as one line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(EXIT_USAGE)

    return wrapper
