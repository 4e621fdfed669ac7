"""``ganlab eval``: recompute every metric of a finished run and print them as a table.

Uses the run's own dataset, evaluator and generator (G_ema when the run kept one), with
``n`` samples (default: the run's ``eval_samples``), and writes ``eval.json`` into the run.
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from ganlab.apps import CONFIG_DIR
from ganlab.apps.build import build_data
from ganlab.apps.finished import open_run, run_option
from ganlab.config import register_configs, validate_device
from ganlab.errors import ConfigError, cannot_write, report_user_errors
from ganlab.logger.console import print_summary
from ganlab.metrics.evaluator import build_evaluator
from ganlab.runinfo import resolve_device

register_configs()


@hydra.main(config_path=CONFIG_DIR, config_name="eval", version_base="1.3")
@report_user_errors
def main(cfg: DictConfig) -> dict[str, float]:
    validate_device(cfg.device)
    device = resolve_device(cfg.device)
    run = open_run(run_option(cfg), device)
    n = cfg.n if cfg.n is not None else run.config.eval_samples
    if n < 2:
        raise ConfigError(f"n={n} is not allowed: metrics need at least 2 samples")
    data = build_data(run.config.dataset, device, run.config.seed)
    metrics_cfg = run.config.get("metrics", {})
    evaluator = build_evaluator(
        data, run.G.z_dim, n, cfg.seed,
        classifier_cache_dir=cfg.classifier_cache or metrics_cfg.get("classifier_cache"),
        inception_weights=cfg.inception_weights or metrics_cfg.get("inception_weights"),
    )
    metrics = evaluator.evaluate(run.G)
    report = {"step": run.state["step"], "n": n, "seed": cfg.seed, "metrics": metrics}
    try:
        (run.run_dir / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    except OSError as err:
        raise cannot_write(f"run={cfg.run}", err, "eval writes eval.json into the run directory: make it writable") from err
    print_summary(metrics, run.run_dir, title=f"ganlab eval (step {run.state['step']}, {n} samples)")
    return metrics
