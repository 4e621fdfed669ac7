"""``ganlab sample``: draw samples from a finished run's generator (its EMA copy when present).

The file type follows ``out``: ``.npy`` writes the raw samples (2-D points: an N x 2 array;
images: N x C x H x W floats in [-1, 1]); ``.npz`` writes images as uint8 (key ``images``) and a
PNG grid of the first 64 beside it; ``.png`` writes the grid only.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from ganlab.apps import CONFIG_DIR
from ganlab.apps.finished import open_run, run_option
from ganlab.config import register_configs, validate_device
from ganlab.errors import ConfigError, cannot_write, report_user_errors
from ganlab.logger.console import console
from ganlab.runinfo import resolve_device
from ganlab.viz.critic_map import save_png
from ganlab.viz.grid import image_grid, to_uint8

register_configs()

SUFFIXES = (".npy", ".npz", ".png")


def generate(G: torch.nn.Module, n: int, seed: int, device: torch.device, batch: int = 1024) -> torch.Tensor:
    generator = torch.Generator(device).manual_seed(seed)
    z = torch.randn(n, G.z_dim, device=device, generator=generator)
    with torch.no_grad():
        return torch.cat([G(chunk).float() for chunk in z.split(batch)]).cpu()


@hydra.main(config_path=CONFIG_DIR, config_name="sample", version_base="1.3")
@report_user_errors
def main(cfg: DictConfig) -> None:
    if cfg.n < 1:
        raise ConfigError(f"n={cfg.n} is not allowed: need at least 1 sample")
    out = Path(cfg.out)
    if out.suffix not in SUFFIXES:
        raise ConfigError(f"out={cfg.out} is not allowed: the file must end in {', '.join(SUFFIXES)}")
    validate_device(cfg.device)
    device = resolve_device(cfg.device)
    run = open_run(run_option(cfg), device)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)  # before generating: an unwritable out fails at once
    except OSError as err:
        raise cannot_write(f"out={cfg.out}", err, "choose a writable path for out") from err
    samples = generate(run.G, cfg.n, cfg.seed, device)
    is_image = samples.dim() == 4
    if out.suffix != ".npy" and not is_image:
        raise ConfigError(f"out={cfg.out} is not allowed: this run makes {tuple(samples.shape[1:])} points, not images; use a .npy file")
    written = [out]
    try:
        if out.suffix == ".npy":
            np.save(out, samples.numpy())
        else:
            if out.suffix == ".npz":
                np.savez_compressed(out, images=to_uint8(samples).numpy())
                out = out.with_suffix(".png")
                written.append(out)
            save_png(image_grid(samples[:64]), out)
    except OSError as err:  # e.g. out names a folder, or the disk is full
        raise cannot_write(f"out={cfg.out}", err, "choose a writable path for out") from err
    console().print(f"wrote {cfg.n} samples of shape {tuple(samples.shape[1:])} from {cfg.run} to {', '.join(map(str, written))}")
