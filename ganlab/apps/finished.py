"""Opening a finished run directory (for ``ganlab sample`` and ``ganlab eval``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ganlab.apps.build import build_networks
from ganlab.apps.saved_config import load_run_config
from ganlab.checkpoint import CHECKPOINT_DIR, latest_checkpoint, load_checkpoint
from ganlab.errors import ConfigError


@dataclass
class FinishedRun:
    run_dir: Path
    config: DictConfig  # the run's resolved config, as Hydra wrote it
    state: dict[str, Any]  # the checkpoint
    G: torch.nn.Module  # G_ema when the run kept one, else G; in eval mode


def run_option(cfg: DictConfig) -> str:
    """The ``run=`` of ``ganlab sample`` / ``ganlab eval``, which has no default."""
    if OmegaConf.is_missing(cfg, "run"):
        raise ConfigError("run is not set: pass the directory of a finished training run, e.g. run=outputs/runs/<date>/<time>")
    return cfg.run


def open_run(run_dir: str | Path, device: torch.device) -> FinishedRun:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run={run_dir}: no such run directory (pass a directory written by ganlab train, e.g. run=outputs/runs/<date>/<time>)")
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"run={run_dir} is not a ganlab training run: {config_file} is missing")
    checkpoint_file = latest_checkpoint(run_dir)
    if checkpoint_file is None:
        raise ConfigError(f"run={run_dir} has no checkpoint yet under {run_dir / CHECKPOINT_DIR} (a run writes one every checkpoint_every steps and at its end)")
    config = load_run_config(config_file)  # checked before any of it is used: a run directory may come from anyone
    state = load_checkpoint(checkpoint_file, map_location=device)
    missing = [key for key in ("step", "data_shape", "G") if key not in state] if isinstance(state, dict) else ["a dict"]
    if missing:  # loads safely, but was not written by ganlab train (e.g. a bare state_dict)
        raise ConfigError(f"checkpoint {checkpoint_file} is not a ganlab checkpoint: it lacks {', '.join(missing)}")
    G, _ = build_networks(config.model, tuple(state["data_shape"]), device)
    key = "G_ema" if "G_ema" in state else "G"
    try:
        G.load_state_dict(state[key])
    except RuntimeError as err:
        detail = " ".join(line.strip() for line in str(err).splitlines()[1:]) or str(err)
        raise ConfigError(f"run={run_dir}: the checkpoint does not match the run's config (was the model changed?): {detail[:300]}") from err
    return FinishedRun(run_dir, config, state, G.eval())
