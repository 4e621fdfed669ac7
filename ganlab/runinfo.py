"""What ran: package and library versions, git commit, device and precision, for the run directory."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import ganlab


def git_commit() -> str | None:
    """The commit of the ganlab checkout this code runs from, or None (installed from a wheel)."""
    source = Path(ganlab.__file__).resolve().parent.parent
    try:
        top = subprocess.run(["git", "-C", str(source), "rev-parse", "--show-toplevel", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = top.stdout.split()
    # Only the checkout ganlab itself lives in: a wheel inside some other repository's venv must not
    # report that repository's commit.
    if top.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != source:
        return None
    return lines[1]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the first CUDA device if there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_info(device: torch.device, precision: str) -> dict[str, Any]:
    return {
        "ganlab": ganlab.__version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "precision": precision,
        "torch_threads": torch.get_num_threads(),
        "command": sys.argv,
    }


def write_run_info(path: Path, info: dict[str, Any]) -> None:
    path.write_text(json.dumps(info, indent=2) + "\n")
