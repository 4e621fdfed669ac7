"""Run ``ganlab train`` in this process: the real task function on the real composed config.

``train_in_process(overrides, run_dir)`` composes ``conf/train.yaml`` as the command line would,
gives Hydra's runtime the run directory and the overrides, and calls
:func:`ganlab.apps.train.run_training`, so a test exercises everything ``ganlab train`` does
(config validation, building, the loop, the run directory) without a subprocess.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from ganlab.apps.train import run_training
from ganlab.checkpoint import latest_checkpoint, load_checkpoint

from conftest import compose_train_with_hydra


def train_in_process(overrides: list[str], run_dir: Path) -> dict[str, float]:
    """Train in ``run_dir`` with ``overrides`` (``resume=<run_dir>`` continues it); return the final metrics."""
    cfg = compose_train_with_hydra(list(overrides))
    hydra = cfg.hydra
    with open_dict(hydra):
        hydra.runtime.output_dir = str(run_dir)
        hydra.mode = RunMode.RUN
        hydra.overrides.task = list(overrides)
        hydra.output_subdir = OmegaConf.select(hydra, "output_subdir")  # resolved now, before anything is written
    (run_dir / hydra.output_subdir).mkdir(parents=True, exist_ok=True)
    HydraConfig.instance().set_config(cfg)
    try:
        with open_dict(cfg):
            del cfg["hydra"]
        OmegaConf.save(cfg, run_dir / hydra.output_subdir / "config.yaml")
        return run_training(cfg)
    finally:
        HydraConfig.instance().cfg = None


def final_networks(run_dir: Path) -> dict:
    """G and D (parameters and buffers) of the run's newest checkpoint."""
    state = load_checkpoint(latest_checkpoint(run_dir))
    return {"G": state["G"], "D": state["D"], "step": state["step"]}


def ganlab_in_process(args: list[str], cwd: Path, monkeypatch) -> int:
    """``ganlab <args>`` through :func:`ganlab.cli.main` in this process (Hydra's app, sweeps and all), in
    ``cwd``; returns its exit status (a SystemExit's code). Hydra's job logging handlers are removed after."""
    import logging
    import sys

    from hydra.core.global_hydra import GlobalHydra

    from ganlab.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["ganlab"])  # main() sets it for Hydra; restored afterwards
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        return main(args)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
        for handler in logging.root.handlers[:]:
            if handler not in handlers:
                logging.root.removeHandler(handler)
                handler.close()
        logging.root.setLevel(level)
