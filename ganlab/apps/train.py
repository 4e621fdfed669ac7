"""``ganlab train``: compose the config, build the objects, and hand them to the training loop.

This is the only place that reads the training config tree; everything below receives plain objects.
"""

from __future__ import annotations

import random
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ganlab.apps import CONFIG_DIR
from ganlab.apps.build import build_data, build_networks, build_objective_from, build_optimizers_from, plain
from ganlab.config import register_configs, validate_train
from ganlab.errors import report_user_errors
from ganlab.logger.console import ProgressDisplay, print_config, print_summary
from ganlab.logger.run import RunLogger
from ganlab.logger.tensorboard import flatten_hparams
from ganlab.metrics.evaluator import build_evaluator
from ganlab.precision import Precision
from ganlab.runinfo import resolve_device, run_info, write_run_info
from ganlab.train.ema import EMA
from ganlab.train.loop import train

register_configs()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def run_training(cfg: DictConfig) -> dict[str, float]:
    validate_train(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    device = resolve_device(cfg.device)
    print_config(OmegaConf.to_yaml(cfg))
    seed_everything(cfg.seed)

    data = build_data(cfg.dataset, device, cfg.seed)
    G, D = build_networks(cfg.model, data.shape, device)
    objective = build_objective_from(cfg.objective)
    objective.attach(D)  # before D's optimizer: spectral norm re-registers D's weights
    opt_G, opt_D = build_optimizers_from(cfg.objective, G, D)
    ema = EMA(G, cfg.ema_decay) if cfg.ema_decay > 0 else None
    precision = Precision(cfg.precision.value, device)
    evaluator = build_evaluator(
        data, G.z_dim, cfg.eval_samples, cfg.seed,
        classifier_cache_dir=cfg.metrics.classifier_cache, inception_weights=cfg.metrics.inception_weights,
    )
    write_run_info(run_dir, run_info(device, precision.name))

    config = plain(cfg)
    with ProgressDisplay(cfg.steps, live=not multirun) as progress:
        run = RunLogger(run_dir, evaluator, progress, checkpoint_meta={"config": config, "data_shape": list(data.shape)})
        run.start(flatten_hparams(config))
        metrics = train(
            G, D, objective, opt_G, opt_D, data, precision, run,
            steps=cfg.steps, batch_size=cfg.batch_size, log_every=cfg.log_every,
            sample_every=cfg.sample_every, eval_every=cfg.eval_every, ema=ema,
        )
    run.finish(metrics)
    print_summary(metrics, run_dir)
    return metrics


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
@report_user_errors
def main(cfg: DictConfig) -> dict[str, float]:
    return run_training(cfg)
