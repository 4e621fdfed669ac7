"""``ganlab claims``: measure the textbook claims about GAN training and write a report with verdicts.

    ganlab claims [claims=[1,2]] [mode=quick|full|gpu] [out=<dir>] [n_jobs=auto] [device=auto] [rerun=false]

Runs the training sweeps the chosen claims read (``ganlab train -m`` with the joblib launcher and
``resume=auto``), then each claim's measurement (:mod:`ganlab.claims.runner`), then writes
``out/report.md`` (:mod:`ganlab.claims.report`). Calling it again resumes: finished sweep runs
and measured claims are kept. The claims themselves are the modules of :mod:`ganlab.claims`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ganlab.apps import CONFIG_DIR
from ganlab.claims.base import MODES
from ganlab.config import register_configs
from ganlab.errors import ConfigError, report_user_errors

register_configs()


def claim_numbers(value: Any) -> list[int] | None:
    """``claims=all`` -> None; ``claims=3`` -> [3]; ``claims=[1,2]`` -> [1, 2].

    Raises:
        ConfigError: anything else.
    """
    if value == "all":
        return None
    values = list(value) if isinstance(value, (ListConfig, list, tuple)) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"claims={value} is not allowed: all, a claim's number or a list of them, e.g. claims=[1,2]")
    return values


def jobs(value: Any, device: str) -> int:
    """``n_jobs=auto`` -> one job per GPU with a CUDA device, else one per core; or a number >= 1.

    Raises:
        ConfigError: a value that is neither auto nor a positive integer.
    """
    if value == "auto":
        import torch

        from ganlab.apps.parallel import available_cores

        on_gpu = device != "cpu" and torch.cuda.is_available()
        return max(1, torch.cuda.device_count()) if on_gpu else available_cores()
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"n_jobs={value} is not allowed: auto or a number of jobs >= 1, e.g. n_jobs=2")
    return value


@hydra.main(config_path=CONFIG_DIR, config_name="claims", version_base="1.3")
@report_user_errors
def main(cfg: DictConfig) -> None:
    from ganlab.claims.report import write_report
    from ganlab.claims.runner import run_claims, select
    from ganlab.runinfo import resolve_device

    if cfg.mode not in MODES:
        raise ConfigError(f"mode={cfg.mode} is not allowed: one of {', '.join(MODES)} (quick checks the machinery, full measures)")
    modules = select(claim_numbers(cfg.claims))
    try:
        device = str(resolve_device(cfg.device))
    except RuntimeError as err:
        raise ConfigError(f"device={cfg.device} is not allowed ({err}): auto, cpu, cuda or cuda:N") from err
    n_jobs = jobs(cfg.n_jobs, device)
    out = Path(cfg.out)
    console = Console()
    say = lambda line: console.print(line, markup=False, highlight=False)  # noqa: E731
    command = shlex.join(["ganlab", "claims", *HydraConfig.get().overrides.task])
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        tasks: dict[str, Any] = {}

        def sweep_progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(f"sweep {name}: runs finished", total=total)
            progress.update(tasks[name], completed=done)

        try:
            outcomes = run_claims(modules, cfg.mode, out, n_jobs, device, seed=cfg.seed, rerun=cfg.rerun,
                                  status=say, sweep_progress=sweep_progress)
        finally:
            from ganlab.claims import claim_modules

            if out.is_dir():
                write_report(out, claim_modules(), command)
    held = sum(o.verdict.value == "held" for o in outcomes.values())
    say(f"{held} of {len(outcomes)} claims held at mode={cfg.mode}; the report: {out / 'report.md'}")
    if cfg.mode == "quick":
        say("quick mode checks the machinery: its verdicts are not evidence (mode=full measures)")
