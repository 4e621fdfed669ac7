"""Shared test helpers: composing the real config tree, tiny training settings, running the CLI."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from ganlab.apps import CONFIG_DIR
from ganlab.apps.parallel import available_cores
from ganlab.config import register_configs

register_configs()

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # one worker per core: a worker with every core's threads would oversubscribe them


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (pyproject's addopts): one worker per core this process may use (its affinity mask,
    not the machine's count), at most 8: each worker holds torch and its own session fixtures."""
    return min(available_cores(), 8)


# Small enough that a whole run takes a few seconds on one CPU core.
TINY = [
    "steps=12", "batch_size=32", "log_every=4", "sample_every=6", "eval_every=6",
    "eval_samples=64", "model.width=16", "threads=1",
]


def compose_train(overrides: list[str] = ()) -> object:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def compose_train_with_hydra(overrides: list[str] = ()) -> object:
    """The train config with its ``hydra`` node, as a run sees it (for in-process runs: tests/inprocess.py)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def ganlab_command() -> list[str]:
    """The installed console script (the one a user runs), next to this Python."""
    script = Path(sys.executable).with_name("ganlab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ganlab"]


def run_ganlab(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    full_env.update({"OMP_NUM_THREADS": "1", "COLUMNS": "200", **(env or {})})
    return subprocess.run(ganlab_command() + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) with the sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory) -> Path:
    """One classifier cache for the whole session: each dataset's classifier is trained once."""
    return tmp_path_factory.mktemp("classifiers")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory to run the CLI in (its outputs/ land there)."""
    return tmp_path


# The claims' shared quick toy sweep (tests/claims_support.py), a session fixture: defined here once, it runs
# at most once per session. Imported last: claims_support imports this module's helpers.
import claims_support  # noqa: E402

quick_toy_sweep = claims_support.quick_toy_sweep
