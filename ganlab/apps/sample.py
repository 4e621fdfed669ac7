"""``ganlab sample``: draw samples from a finished run's generator into a .npy file."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ganlab.apps import CONFIG_DIR
from ganlab.checkpoint import load_checkpoint
from ganlab.config import register_configs, validate_device
from ganlab.errors import ConfigError, report_user_errors
from ganlab.logger.console import console
from ganlab.logger.run import CHECKPOINT_NAME
from ganlab.runinfo import resolve_device

register_configs()


def load_generator(run_dir: Path, device: torch.device) -> torch.nn.Module:
    """The generator of ``run_dir`` (its EMA copy when the run kept one), in eval mode."""
    if not run_dir.is_dir():
        raise ConfigError(f"run={run_dir}: no such run directory (pass a directory written by ganlab train, e.g. run=outputs/runs/<date>/<time>)")
    config_file = run_dir / ".hydra" / "config.yaml"
    checkpoint_file = run_dir / CHECKPOINT_NAME
    if not config_file.is_file() or not checkpoint_file.is_file():
        missing = config_file if not config_file.is_file() else checkpoint_file
        raise ConfigError(f"run={run_dir} is not a ganlab training run: {missing} is missing (a run writes it at its first evaluation)")
    config = OmegaConf.load(config_file)
    state = load_checkpoint(checkpoint_file, map_location=device)
    G, _ = instantiate(config.model, data_shape=tuple(state["data_shape"]))
    key = "G_ema" if "G_ema" in state else "G"
    try:
        G.load_state_dict(state[key])
    except RuntimeError as err:
        detail = " ".join(str(err).split("\n")[1:]).strip() or str(err)
        raise ConfigError(f"run={run_dir}: the checkpoint does not match the run's config (model changed?): {detail[:300]}") from err
    return G.to(device).eval()


@hydra.main(config_path=CONFIG_DIR, config_name="sample", version_base="1.3")
@report_user_errors
def main(cfg: DictConfig) -> None:
    if cfg.n < 1:
        raise ConfigError(f"n={cfg.n} is not allowed: need at least 1 sample")
    if not str(cfg.out).endswith(".npy"):
        raise ConfigError(f"out={cfg.out} is not allowed: samples are written as a .npy file (e.g. out=samples.npy)")
    validate_device(cfg.device)
    device = resolve_device(cfg.device)
    G = load_generator(Path(cfg.run), device)
    generator = torch.Generator(device).manual_seed(cfg.seed)
    z = torch.randn(cfg.n, G.z_dim, device=device, generator=generator)
    with torch.no_grad():
        samples = torch.cat([G(chunk) for chunk in z.split(4096)]).float().cpu().numpy()
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, samples)
    console().print(f"wrote {cfg.n} samples of shape {tuple(samples.shape[1:])} from {cfg.run} to {out}")
