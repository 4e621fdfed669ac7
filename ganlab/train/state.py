"""Everything a run needs to continue bit-exactly: networks, optimizers, scaler, EMA, the stats of
the unfinished log interval, the data streams' RNGs, every global RNG (torch CPU and CUDA,
numpy, Python) and the schedules' learning-rate scale (the scheduled values themselves are a
function of the step).

``capture`` returns plain data (tensors, numbers, strings, lists, dicts) so that the checkpoint
loads with ``torch.load(weights_only=True)``; ``restore`` puts it back and returns the step.

A run on several processes (:mod:`ganlab.distributed`) writes one checkpoint: rank 0's state, whose
networks, optimizers, scaler, EMA and schedules every rank holds identically, plus under ``ranks``
each rank's own streams and unfinished interval (:data:`RANK_KEYS`): :func:`gather_ranks` collects
them on rank 0, :func:`rank_state` gives each rank back its own.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn

from ganlab.distributed import World
from ganlab.logger.stats import Stats
from ganlab.precision import Precision
from ganlab.schedules import Schedules
from ganlab.train.ema import EMA


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # numpy's state holds an ndarray, which weights_only loading refuses: store it as a tensor.
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss, "cached": cached},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


def data_generators(data: object) -> dict[str, torch.Generator]:
    """The data object's own RNG streams (any torch.Generator attribute)."""
    return {name: value for name, value in vars(data).items() if isinstance(value, torch.Generator)}


def capture(
    step: int, G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
    precision: Precision, ema: EMA | None, data: object, stats: Stats, schedules: Schedules | None = None,
) -> dict[str, Any]:
    state = {
        "step": step,
        "G": G.state_dict(),
        "D": D.state_dict(),
        "opt_G": opt_G.state_dict(),
        "opt_D": opt_D.state_dict(),
        "scaler": precision.scaler.state_dict(),
        "skipped_steps": precision.skipped_steps.clone(),
        "stats": stats.state_dict(),
        "data_rng": {name: g.get_state() for name, g in data_generators(data).items()},
        "data_stream": data.stream_state() if hasattr(data, "stream_state") else None,  # a streamed image set's position
        "rng": rng_state(),
        "schedules": schedules.state_dict() if schedules is not None else None,
    }
    if ema is not None:
        state["G_ema"] = ema.G_ema.state_dict()
        state["ema_updates"] = ema.updates
    return state


def restore(
    state: dict[str, Any], G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
    precision: Precision, ema: EMA | None, data: object, stats: Stats, schedules: Schedules | None = None,
) -> int:
    """Load ``state`` into the objects; raises KeyError/RuntimeError naming what does not match."""
    G.load_state_dict(state["G"])
    D.load_state_dict(state["D"])
    opt_G.load_state_dict(state["opt_G"])
    opt_D.load_state_dict(state["opt_D"])
    if state["scaler"]:
        precision.scaler.load_state_dict(state["scaler"])
    precision.skipped_steps.fill_(int(state.get("skipped_steps", 0)))  # absent in checkpoints older than the counter
    stats.load_state_dict(state["stats"])
    generators = data_generators(data)
    for name, generator_state in state["data_rng"].items():
        if name in generators:  # checkpoints before the StreamSampler also hold a streamed set's sampler_generator
            generators[name].set_state(generator_state)
    if state.get("data_stream") is not None and hasattr(data, "load_stream_state"):
        data.load_stream_state(state["data_stream"])
    if ema is not None:
        if "G_ema" in state:
            ema.G_ema.load_state_dict(state["G_ema"])
            ema.updates = state["ema_updates"]
        else:  # EMA switched on at resume: start it from the current G
            ema.G_ema.load_state_dict(state["G"])
    if schedules is not None:
        schedules.load_state_dict(state.get("schedules") or {"lr_scale": 1.0})  # absent in checkpoints older than schedules
    set_rng_state(state["rng"])
    return int(state["step"])


RANK_KEYS = ("stats", "data_rng", "data_stream", "rng")  # what differs between the ranks of one run


def gather_ranks(state: dict[str, Any], world: World) -> dict[str, Any] | None:
    """On every rank (a collective): rank 0 gets ``state`` with every rank's :data:`RANK_KEYS` under
    ``ranks`` (a list in rank order) and ``world_size``; the other ranks get None."""
    if not world.distributed:
        return state
    import torch.distributed as dist

    own = {key: state[key] for key in RANK_KEYS}
    gathered: list[Any] | None = [None] * world.size if world.is_main else None
    dist.gather_object(own, gathered, dst=0)
    if not world.is_main:
        return None
    return {**state, "ranks": gathered, "world_size": world.size}


def rank_state(state: dict[str, Any], world: World) -> dict[str, Any]:
    """The state that this rank restores from a checkpoint: its own :data:`RANK_KEYS` in place of
    rank 0's.

    Raises:
        ValueError: the checkpoint was written by another number of processes (its streams are
            one per rank: a bit-exact continuation needs as many).
    """
    written_by = int(state.get("world_size", 1))
    if written_by != world.size:
        raise ValueError(f"it was written by {written_by} process{'es' if written_by > 1 else ''} and this run has {world.size}: "
                         f"resume it with {written_by} (torchrun --nproc_per_node={written_by})" if written_by > 1 else
                         f"it was written by 1 process and this run has {world.size}: resume it without torchrun")
    if not world.distributed:
        return state
    return {**state, **state["ranks"][world.rank]}

