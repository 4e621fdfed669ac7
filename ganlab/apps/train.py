"""``ganlab train``: compose the config, build the objects, and hand them to the training loop.

This is the only place that reads the config tree; everything below receives plain objects.
"""

from __future__ import annotations

import random
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ganlab.apps import CONFIG_DIR
from ganlab.config import register_configs, validate_train
from ganlab.errors import report_user_errors
from ganlab.logger.console import ProgressDisplay, print_config, print_summary
from ganlab.logger.run import RunLogger
from ganlab.logger.tensorboard import flatten_hparams
from ganlab.metrics.evaluator import build_evaluator
from ganlab.objectives import build_objective
from ganlab.precision import Precision
from ganlab.runinfo import resolve_device, run_info, write_run_info
from ganlab.train.loop import train
from ganlab.train.optim import build_optimizers

register_configs()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def config_as_dict(cfg: DictConfig) -> dict:
    """The resolved config as plain data (enums as strings): for checkpoints and HParams."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


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

    data = instantiate(cfg.dataset, device=device, seed=cfg.seed)
    G, D = instantiate(cfg.model, data_shape=data.shape)
    G, D = G.to(device), D.to(device)
    obj = cfg.objective
    objective = build_objective(
        obj.loss.value, obj.constraint.value, n_critic=obj.n_critic, saturating=obj.saturating,
        clip_value=obj.clip_value, gp_weight=obj.gp_weight, sn_power_iterations=obj.sn_power_iterations,
    )
    objective.attach(D)
    opt = obj.optimizer
    opt_G, opt_D = build_optimizers(G, D, opt.name.value, opt.lr_G, opt.lr_D, list(opt.betas), opt.alpha)
    precision = Precision(cfg.precision.value, device)
    evaluator = build_evaluator(data, G.z_dim, cfg.eval_samples, cfg.seed)
    write_run_info(run_dir, run_info(device, precision.name))

    plain = config_as_dict(cfg)
    with ProgressDisplay(cfg.steps, live=not multirun) as progress:
        run = RunLogger(run_dir, evaluator, progress, checkpoint_meta={"config": plain, "data_shape": list(data.shape)})
        run.start(flatten_hparams(plain))
        metrics = train(
            G, D, objective, opt_G, opt_D, data, precision, run,
            steps=cfg.steps, batch_size=cfg.batch_size, log_every=cfg.log_every,
            sample_every=cfg.sample_every, eval_every=cfg.eval_every,
        )
    run.finish(metrics)
    print_summary(metrics, run_dir)
    return metrics


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
@report_user_errors
def main(cfg: DictConfig) -> dict[str, float]:
    return run_training(cfg)
