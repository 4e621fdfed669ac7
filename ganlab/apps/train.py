"""``ganlab train``: compose the config, build the objects, and hand them to the training loop.

This is the only place that reads the training config tree; everything below receives plain objects.
"""

from __future__ import annotations

import copy
import logging
import os
import random
from contextlib import nullcontext
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ganlab.apps import CONFIG_DIR, cluster, search
from ganlab.apps.build import build_data, build_networks, build_objective_from, build_optimizers_from, build_schedules, plain, resolve_schedule_lengths
from ganlab.apps.migrate import is_flat, migrate_config
from ganlab.apps.parallel import share_machine
from ganlab.apps.saved_config import check_saved_config
from ganlab.checkpoint import load_checkpoint, resume_target
from ganlab.config import TrainConfig, register_configs, validate_train
from ganlab.distributed import World, broadcast_module, lost_peer, sync_batch_norm, world_from_env
from ganlab.errors import EXIT_LOST_PEER, ConfigError, TrainingFailed, first_line, report_user_errors
from ganlab.logger.stats import Stats
from ganlab.logger.console import ProgressDisplay, print_config, print_summary
from ganlab.logger.ranks import Follower, MainRank
from ganlab.logger.run import RunLogger, supersede_after
from ganlab.logger.tensorboard import flatten_hparams
from ganlab.metrics.evaluator import build_evaluator
from ganlab.precision import Precision, resolve_precision
from ganlab.runinfo import resolve_device, run_info, write_run_info
from ganlab.train import fast
from ganlab.train.ema import EMA
from ganlab.train.faults import Faults
from ganlab.train.loop import Interrupted, train
from ganlab.train.observe import observing
from ganlab.train.signals import EXIT_STATUS, StopOnSignal
from ganlab.train.state import rank_state, restore

register_configs()
log = logging.getLogger("ganlab")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


# Keys a resumed run may change; everything else (data, model, objective, seed, ...) must stay as
# the checkpoint has it, or the continuation would not be the same experiment.
RESUMABLE_KEYS = {
    "resume", "steps", "log_every", "sample_every", "eval_every", "eval_samples", "checkpoint_every",
    "keep_checkpoints", "device", "threads", "compile", "precision", "on_nonfinite", "max_rollbacks", "rollback_lr_factor",
}


def resumed_config(saved: dict, composed: DictConfig, overrides: list[str]) -> DictConfig:
    """The checkpoint's config, typed by the schema, with the command line's resumable overrides.

    An override of any other key is accepted only when it repeats the saved value, so a
    preempted cluster job can rerun its whole command line with ``resume=auto``.
    """
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), saved)
    except Exception as err:  # a key or value the schema does not have
        raise ConfigError(f"the checkpoint's config does not fit this ganlab's schema ({first_line(err)}); start a new run") from err
    saved_cfg = OmegaConf.create(saved)
    composed = copy.deepcopy(composed)  # compared as the saved config was written: schedules of the run's length resolved
    composed.steps = saved_cfg.steps
    resolve_schedule_lengths(composed)
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group.replace("/", ".")  # a group of a group: objective/constraints=[gp]
        if key.startswith("hydra."):
            continue
        if key in RESUMABLE_KEYS:
            OmegaConf.update(cfg, key, override.value(), merge=False)
        elif plain(OmegaConf.select(composed, key)) != plain(OmegaConf.select(saved_cfg, key)):
            raise ConfigError(
                f"{override.input_line} cannot be used with resume: a resumed run keeps its config; "
                f"only {', '.join(sorted(RESUMABLE_KEYS - {'resume'}))} may change (start a new run otherwise)"
            )
    return cfg


RANK_SEED_STRIDE = 1_000_003  # rank r > 0 of a distributed run draws its data and noise from seed + r * stride


def join_world(cfg: DictConfig, multirun: bool) -> World:
    """This process's place in a distributed run (torchrun, a SLURM job's tasks), its process group
    joined; the single process otherwise (:mod:`ganlab.distributed`).

    Raises:
        ConfigError: a sweep under torchrun, or a batch that does not split evenly over the ranks.
    """
    world = world_from_env()
    launched = "WORLD_SIZE" in os.environ  # torchrun, even with one process: its group is joined (NCCL or Gloo checked)
    if not (world.distributed or launched):
        return world
    if multirun:
        raise ConfigError("ganlab train -m under torchrun: torchrun trains one run on several processes; sweep distributed runs "
                          "with the slurm launcher (hydra.launcher.tasks_per_node=N), or sweep single-process runs without torchrun")
    share = cfg.batch_size // world.size
    if cfg.batch_size % world.size or share % cfg.pack:
        raise ConfigError(f"batch_size={cfg.batch_size} does not split over {world.size} processes"
                          + (f" in packs of pack={cfg.pack}" if cfg.pack > 1 else "")
                          + f": choose a multiple of {world.size * cfg.pack}")
    import torch.distributed as dist

    if "MASTER_ADDR" not in os.environ:  # the tasks of a SLURM job (submitit): the first node is the master
        export_slurm_master()
    if world.rank > 0:
        logging.getLogger("ganlab").setLevel(logging.WARNING)  # rank 0 reports; the others only what goes wrong
    on_gpu = cfg.device != "cpu" and torch.cuda.is_available()
    if on_gpu:
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if on_gpu else "gloo", rank=world.rank, world_size=world.size)
    return world


def export_slurm_master() -> None:
    """Set torch.distributed's ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE`` and
    ``LOCAL_RANK`` from SLURM's environment with submitit's own helper (the first node of the job, a
    port drawn from the job id), as a SLURM job with several tasks needs (hydra/launcher=slurm with
    ``tasks_per_node`` > 1).

    Raises:
        ConfigError: submitit is not installed, or the environment is not a SLURM job's.
    """
    try:
        from submitit.helpers import TorchDistributedEnvironment
    except ImportError as err:
        raise ConfigError("several SLURM tasks train one run through submitit's environment, which is not installed: "
                          "pip install 'ganlab[sweeps]' (or start the processes with torchrun, which sets MASTER_ADDR)") from err
    try:
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # each process takes cuda:<local rank>
    except (KeyError, RuntimeError, ValueError) as err:
        raise ConfigError(f"SLURM_NTASKS > 1 but not a SLURM job's environment ({first_line(str(err))}): "
                          "start the processes with torchrun or srun") from err


def shared_run_dir(own: Path, world: World) -> Path:
    """Rank 0's run directory, on every rank (the others' Hydra wrote nothing: ganlab.cli)."""
    if not world.distributed:
        return own
    import torch.distributed as dist

    box = [str(own) if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def run_training(cfg: DictConfig) -> dict[str, float]:
    validate_train(cfg)
    hydra_cfg = HydraConfig.get()
    world = join_world(cfg, hydra_cfg.mode == RunMode.MULTIRUN)
    stop = StopOnSignal(cluster.stop_signals())
    # Every rank of a distributed run takes the stop signals from here on, not only once it trains:
    # torchrun passes SIGTERM to all ranks at once, and one that died of it while it was still setting
    # up would leave the others a lost peer; now they all stop after their first step, with a checkpoint.
    with stop if world.distributed else nullcontext():
        return _train_run(cfg, hydra_cfg, world, stop)


def _train_run(cfg: DictConfig, hydra_cfg: DictConfig, world: World, stop: StopOnSignal) -> dict[str, float]:
    """The run of :func:`run_training` once its process has joined ``world``; ``stop`` is in force
    while it trains."""
    run_dir = shared_run_dir(Path(hydra_cfg.runtime.output_dir), world)
    cluster.continue_if_requeued(cfg, run_dir)  # a submitit job requeued into its directory continues there (resume=auto)
    checkpoint = resume_target(cfg.resume, run_dir) if cfg.resume else None
    saved = load_checkpoint(checkpoint) if checkpoint else None
    if saved is not None:
        check_saved_config(saved.get("config") if isinstance(saved, dict) else None, f"checkpoint {checkpoint}")  # before any of it is used: it may come from anyone
        if is_flat(saved["config"]):
            log.info("checkpoint %s has the objective layout from before its components (loss, constraint, gp_weight, ...): read into today's", checkpoint)
        saved_config = migrate_config(saved["config"], f"checkpoint {checkpoint}")
        cfg = resumed_config(saved_config, cfg, list(hydra_cfg.overrides.task))
        validate_train(cfg)
        if world.is_main:
            OmegaConf.save(cfg, run_dir / hydra_cfg.output_subdir / "config.yaml")  # what this process runs
    else:
        resolve_schedule_lengths(cfg)  # kept in the checkpoint's config: a resume with other steps keeps the schedules
    device_name = share_machine(cfg.threads, cfg.device)  # torch threads; in a parallel sweep each job's share of the cores, and its own GPU
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    device = resolve_device(device_name)
    if world.distributed and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)  # one GPU per process
    if world.is_main:
        print_config(OmegaConf.to_yaml(cfg))
    seed_everything(cfg.seed)
    fast.configure(device)

    data = build_data(cfg.dataset, device, cfg.seed + RANK_SEED_STRIDE * world.rank)  # each rank its own data stream
    G, D = build_networks(cfg.model, data.shape, device, pack=cfg.pack)
    if world.distributed:
        broadcast_module(G, world)  # every rank starts from rank 0's weights (the same seed builds them anyway)
        broadcast_module(D, world)
        if cfg.sync_batch_norm:
            G, D = sync_batch_norm(G, device), sync_batch_norm(D, device)
    fast.prepare_networks(G, D, device)
    objective = build_objective_from(cfg.objective)
    objective.attach(D)  # before D's optimizer: spectral norm re-registers D's weights
    opt_G, opt_D = build_optimizers_from(cfg.objective, G, D)
    if cfg.objective.ema is not None and cfg.ema_decay > 0:
        log.warning("ema_decay=%s is not used: objective %s schedules G_ema's half-life (objective.ema); pass objective.ema=null to use ema_decay",
                    cfg.ema_decay, cfg.objective.name)
    ema = EMA(G, cfg.ema_decay) if cfg.ema_decay > 0 or cfg.objective.ema is not None else None
    schedules = build_schedules(cfg.objective, objective, opt_G, opt_D, cfg.steps, ema=ema)
    precision = Precision(resolve_precision(cfg.precision.value, device, fast.has_convolutions(D)), device)
    evaluator = None
    if world.is_main:  # the metrics use rank 0's samples
        with observing(G, D):  # the metric classifier (trained or cached) and held-out draws leave the run as it was
            evaluator = build_evaluator(
                data, G.z_dim, cfg.eval_samples, cfg.seed,
                classifier_cache_dir=cfg.metrics.classifier_cache, inception_weights=cfg.metrics.inception_weights,
                objective_name=cfg.objective.name,
            )
    if world.rank > 0:
        seed_everything(cfg.seed + RANK_SEED_STRIDE * world.rank)  # its own noise and penalty draws; rank 0 keeps a single process's
    stats = Stats()
    start_step = 0
    if saved is not None:
        try:
            start_step = restore(rank_state(saved, world), G, D, opt_G, opt_D, precision, ema, data, stats, schedules)
        except (KeyError, RuntimeError, ValueError) as err:
            detail = " ".join(line.strip() for line in str(err).splitlines()[:3])
            raise ConfigError(f"resume={cfg.resume}: checkpoint {checkpoint} does not fit this run: {detail[:300]}") from err
        log.info("resuming %s from step %d (%s)", run_dir, start_step, checkpoint)
        superseded = supersede_after(run_dir, start_step) if world.is_main else None
        if superseded is not None:
            folder, moved = superseded
            log.warning("the run directory holds records past step %d, where this run continues: they are moved to %s (%s), "
                        "so that resume=auto, keep_checkpoints and the pictures follow this continuation",
                        start_step, folder, ", ".join(moved[:4]) + (f" and {len(moved) - 4} more" if len(moved) > 4 else ""))
        trained_in = saved.get("precision")  # the resolved precision; absent in checkpoints written before it was kept
        if trained_in and trained_in != precision.name:
            log.warning("this run trained in %s up to step %d and continues in %s (precision=%s on %s); pass precision=%s to keep %s",
                        trained_in, start_step, precision.name, cfg.precision.value, device.type, trained_in, trained_in)
    if world.is_main:
        write_run_info(run_dir / ("run_info.json" if not start_step else f"run_info_resume_{start_step}.json"),
                       {**run_info(device, precision.name), "processes": world.size})

    config = plain(cfg)
    metrics = None
    with ProgressDisplay(cfg.steps, live=not multirun and world.is_main, start_step=start_step) as progress, stop:
        if world.is_main:
            run = RunLogger(
                run_dir, evaluator, progress, checkpoint_meta={"config": config, "data_shape": list(data.shape), "precision": precision.name},
                device=device, keep_checkpoints=cfg.keep_checkpoints, start_step=start_step,
            )
            run.start(flatten_hparams(config), choices=dict(hydra_cfg.runtime.choices), overrides=list(hydra_cfg.overrides.task))
            if world.distributed:
                run = MainRank(run, world)
        else:
            run = Follower(run_dir, device, world)
        faults = Faults(cfg.on_nonfinite.value, cfg.max_rollbacks, cfg.rollback_lr_factor, should_stop=stop)
        try:
            if start_step >= cfg.steps:  # e.g. a finished job of a sweep extended with resume=auto: its final metrics stay
                metrics = run.recorded_final()
                (log.warning if start_step > cfg.steps else log.info)(
                    "%s is at step %d (steps=%d): nothing to train; its final metrics are kept%s", run_dir, start_step, cfg.steps,
                    "" if start_step == cfg.steps else f" (a run is not shortened: pass steps > {start_step} to train it further)")
            else:
                metrics = train(
                    G, D, objective, opt_G, opt_D, data, precision, run,
                    steps=cfg.steps, batch_size=cfg.batch_size // world.size, log_every=cfg.log_every,
                    sample_every=cfg.sample_every, eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every,
                    ema=ema, stats=stats, start_step=start_step, faults=faults, compile=cfg.compile, schedules=schedules,
                    world=world,
                )
        except RuntimeError as err:
            if not (world.distributed and lost_peer(err)):
                raise
            raise TrainingFailed(f"rank {world.rank} of {world.size}: another process of this run ended ({first_line(str(err))[:160]}); "
                                 f"torchrun names it; the last checkpoint is kept: resume with torchrun --nproc_per_node={world.size} "
                                 f"... ganlab train resume={run_dir}", exit_status=EXIT_LOST_PEER) from None
        except Interrupted as err:
            cluster.hand_over(stop)  # a submitit job is requeued (submitit exits here) rather than ending the sweep
            launcher = f"torchrun --nproc_per_node={world.size} $(which ganlab)" if world.distributed else "ganlab"
            raise Interrupted(f"{stop.received.name}: {err}; resume with: {launcher} train resume={run_dir}", EXIT_STATUS[stop.received]) from None
        finally:
            run.finish(metrics)
    if world.is_main:
        print_summary(metrics, run_dir)
    return metrics


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
@report_user_errors
def main(cfg: DictConfig) -> dict[str, float] | float | list[float]:
    return search.task_result(cfg, run_training(cfg))
