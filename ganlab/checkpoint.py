"""Writing and reading checkpoints safely.

A checkpoint is a dict of tensors, numbers and strings, written atomically (temporary file in
the same folder, flush, fsync, rename) so that a crash never leaves a half-written file under
the final name, and loaded with ``weights_only=True`` so that loading never runs code.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from ganlab.errors import ConfigError


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; any problem is a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"checkpoint {path} was refused: it holds objects other than tensors and plain data, and loading it could run code ({first})") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise ConfigError(f"checkpoint {path} is unreadable (truncated or not a ganlab checkpoint): {str(err).splitlines()[0] if str(err) else type(err).__name__}") from err
