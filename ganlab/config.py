"""Typed schemas for every config group, registered in Hydra's ConfigStore, and the
semantic checks that run before any work starts.

The YAML under ``conf/`` fills these schemas: ``conf/<group>/<option>.yaml`` starts with
``defaults: [/<schema name>@_here_, _self_]``, so a misspelt key or a wrong type fails when Hydra
composes the config, with Hydra's own message. What a type cannot express (ranges, a device
that this machine lacks) is checked by :func:`validate_train`, which raises
:class:`ganlab.errors.ConfigError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import os
import re
import sys
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import MISSING, OmegaConf

from ganlab.checkpoint import latest_checkpoint, resume_run_dir
from ganlab.errors import ConfigError, require
from ganlab.filenames import numbered, portable_name
from ganlab.schedules import ScheduleConfig, ScheduleShape


class Precision(enum.Enum):
    auto = "auto"  # bf16 on a GPU with bfloat16 support and for conv nets on CPUs with native bf16, else fp32 (ganlab.precision.resolve_precision)
    fp32 = "fp32"
    bf16 = "bf16"  # autocast to bfloat16: CUDA (Ampere or newer) and CPU; needs no scaler
    fp16 = "fp16"  # autocast to float16 with a GradScaler: CUDA only


class CriticNorm(enum.Enum):
    none = "none"
    layer = "layer"  # per sample: works with every objective
    instance = "instance"  # per sample and channel
    batch = "batch"  # mixes the samples of a batch: refused with the gradient penalty


class Activation(enum.Enum):
    relu = "relu"
    leaky_relu = "leaky_relu"  # slope 0.2, as in DCGAN's critic
    elu = "elu"
    tanh = "tanh"


class MLPInit(enum.Enum):
    he_uniform = "he_uniform"  # numpy-ml style WGAN-GP recipe
    xavier_uniform = "xavier_uniform"
    default = "default"  # PyTorch's own


class DCGANInit(enum.Enum):
    dcgan = "dcgan"  # N(0, 0.02) weights, BatchNorm scales N(1, 0.02), zero biases (Radford 2016; the PyTorch DCGAN example)
    default = "default"  # PyTorch's own


class ResNetInit(enum.Enum):
    sngan = "sngan"  # Glorot-uniform, gain sqrt(2) in the residual branches, zero biases (the SN-GAN code)
    default = "default"  # PyTorch's own


class OnCorrupt(enum.Enum):
    stop = "stop"  # an unreadable image stops the run before training, naming its path
    skip = "skip"  # unreadable images are skipped and counted


class OnNonfinite(enum.Enum):
    stop = "stop"  # stop with a clear message; the last good checkpoint is kept
    rollback = "rollback"  # restore the last good checkpoint, lower the learning rates, go on


class OptimizerName(enum.Enum):
    adam = "adam"
    rmsprop = "rmsprop"


# ---------------------------------------------------------------------------- objective


@dataclass
class OptimizerSchedules:
    lr_G: ScheduleConfig = field(default_factory=ScheduleConfig)
    lr_D: ScheduleConfig = field(default_factory=ScheduleConfig)
    beta2: ScheduleConfig = field(default_factory=ScheduleConfig)  # Adam only; both players (R3GAN: 0.9 -> 0.99)


@dataclass
class OptimizerConfig:
    name: OptimizerName = OptimizerName.adam
    lr_G: float = 1e-4
    lr_D: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])  # Adam only
    alpha: float = 0.99  # RMSProp smoothing constant (PyTorch default)
    schedule: OptimizerSchedules = field(default_factory=OptimizerSchedules)  # ganlab.schedules: constant, linear or cosine, warm-up


@dataclass
class EMAHalfLifeConfig:
    """G_ema with a half-life that grows from 0 (R3GAN: ganlab.train.ema.half_life_schedule)."""

    half_life: float = 0.25  # at the ramp's end, as a share of the ramp's generator steps (R3GAN: ema_nimg / decay_nimg = 5M / 20M images)
    shape: ScheduleShape = ScheduleShape.cosine  # how the half-life grows from 0 (R3GAN: half a cosine)
    steps: Optional[int] = None  # generator steps of the ramp; null: the run's steps


@dataclass
class ObjectiveConfig:
    name: str = MISSING  # preset name, shown in run summaries
    loss: Any = MISSING  # a loss family: conf/objective/loss/<name>.yaml, e.g. objective/loss=hinge
    constraints: Dict[str, Any] = field(default_factory=dict)  # conf/objective/constraints/<name>.yaml, e.g. objective/constraints=[gp]
    n_critic: int = 1  # critic steps per generator step
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    ema: Optional[EMAHalfLifeConfig] = None  # the objective's own G_ema recipe (r3gan); set, it replaces the run's ema_decay


# ------------------------------------------------------------------------------ dataset


@dataclass
class ToyDatasetConfig:
    _target_: str = MISSING  # a class in ganlab.data.toy


@dataclass
class DigitsConfig:
    _target_: str = "ganlab.data.digits.Digits"
    resolution: int = 32  # 8 | 16 | 32 | 64: the 8x8 scans are upscaled once, on load


@dataclass
class TorchvisionDatasetConfig:
    _target_: str = MISSING  # MNIST, FashionMNIST, StackedMNIST, CIFAR10
    root: Optional[str] = None  # None: $GANLAB_DATA, else ~/.cache/ganlab/data
    download: bool = False  # true fetches the files (needs a network)
    resolution: int = 32  # 8 | 16 | 32 | 64, and 28 for MNIST and Fashion-MNIST (their own size; model=resnet takes 32 only)


@dataclass
class ImageFolderConfig:
    _target_: str = "ganlab.data.imagefolder.ImageFolder"
    root: str = MISSING  # a folder of images, optionally one sub-folder per class
    resolution: int = 64
    center_crop: bool = True  # resize the shorter side, then crop the centre square
    channels: int = 3  # 1 (grayscale) or 3 (RGB)
    on_corrupt: OnCorrupt = OnCorrupt.stop
    in_memory: str = "auto"  # auto (in device memory below 1 GiB) | true | false (DataLoader)
    num_workers: int = 2  # DataLoader workers for folders too large for device memory
    batch_size: int = MISSING  # the loader's batch; the YAML sets it to the training batch_size


# -------------------------------------------------------------------------------- model


# The one place where the model options get their defaults: the builders have none and
# conf/model/*.yaml set none. The builders also get the data's shape and value range
# (ganlab.apps.build.build_networks), which are not options.


@dataclass
class MLPConfig:
    _target_: str = "ganlab.models.mlp.build_mlp"
    z_dim: int = 2  # latent size: gan_toy.py feeds 2-D noise
    width: int = 128  # hidden units per layer: the WGAN-GP toy script uses 512; 128 covers 25/25 modes within the CPU default run
    depth: int = 3  # hidden layers, in G and in D (gan_toy.py)
    activation: Activation = Activation.relu  # gan_toy.py
    init: MLPInit = MLPInit.he_uniform  # numpy-ml style WGAN-GP recipe
    critic_norm: CriticNorm = CriticNorm.none  # normalisation between critic layers: none or layer (batch mixes samples: refused with the gradient penalty)


@dataclass
class DCGANConfig:
    _target_: str = "ganlab.models.dcgan.build_dcgan"
    z_dim: int = 100  # DCGAN paper, Fig. 1 (uniform there; ganlab draws z ~ N(0, I))
    width: int = 64  # channels of D's first block / G's last block: the PyTorch DCGAN example (the paper: 128)
    critic_norm: CriticNorm = CriticNorm.layer  # the paper uses batch; layer works with every objective, the gradient penalty included
    init: DCGANInit = DCGANInit.dcgan


@dataclass
class ResNetConfig:
    _target_: str = "ganlab.models.resnet.build_resnet"
    z_dim: int = 128  # WGAN-GP / SN-GAN CIFAR-10 ResNets
    width: int = 128  # channels per block (WGAN-GP: 128; SN-GAN: 256 in G, 128 in D)
    critic_norm: CriticNorm = CriticNorm.none  # SN-GAN and WGAN-GP critics use none; layer is WGAN-GP's script's option
    init: ResNetInit = ResNetInit.sngan


# -------------------------------------------------------------------------- top level


@dataclass
class MetricsConfig:
    classifier_cache: Optional[str] = None  # None: $GANLAB_CACHE/classifiers, else ~/.cache/ganlab/classifiers
    inception_weights: Optional[str] = None  # a local Inception weights file for FID/KID/IS (torch-fidelity)



@dataclass
class TrainConfig:
    dataset: Any = MISSING
    model: Any = MISSING
    objective: ObjectiveConfig = MISSING
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Precision = Precision.auto
    compile: bool = False  # torch.compile G and D (the penalty's double backward stays eager)
    seed: int = 0
    steps: int = 5000  # generator steps
    batch_size: int = 256
    sync_batch_norm: bool = True  # several processes (torchrun): batch norm over the whole batch of all ranks (ganlab.distributed)
    pack: int = 1  # PacGAN (Lin et al. 2018): the critic judges packs of this many samples (2 or 4 there); 1 = no packing
    log_every: int = 100  # scalars are read from the device once per interval
    sample_every: int = 1000  # critic map / sample images
    eval_every: int = 2500  # quality metrics (also run at the end)
    eval_samples: int = 2500  # samples per metric evaluation (VEEGAN/PacGAN use 2500)
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    ema_decay: float = 0.0  # generator EMA (G_ema) for samples and metrics; 0 = off, e.g. 0.999
    checkpoint_every: int = 1000  # full training state, written atomically (also at the end and on SIGINT/SIGTERM)
    keep_checkpoints: int = 3  # the newest K are kept
    resume: Optional[str] = None  # a run directory, a checkpoint file, or auto (this run directory's newest, if any)
    on_nonfinite: OnNonfinite = OnNonfinite.stop  # checked once per log interval
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5  # learning rates are multiplied by this at each rollback
    metrics: MetricsConfig = field(default_factory=lambda: MetricsConfig())
    tuning: Dict[str, Any] = field(default_factory=dict)  # per-data values that components read, e.g. tuning.gp.weight (conf/tuning/)
    optimized_metric: Any = "auto"  # what a search sweeper optimises: auto (Metrics/w1_ratio on 2-D data, Metrics/fcd on images), a metric tag, or a list of tags (ganlab.apps.search)


@dataclass
class SampleConfig:
    run: str = MISSING  # a run directory written by ganlab train
    n: int = 1000
    out: str = "samples.npy"
    seed: int = 0
    device: str = "auto"


@dataclass
class EvalConfig:
    run: str = MISSING
    n: Optional[int] = None
    seed: int = 0
    device: str = "auto"
    classifier_cache: Optional[str] = None
    inception_weights: Optional[str] = None


@dataclass
class CompareConfig:
    runs: Any = MISSING  # sweep or run directories (ganlab compare's positional arguments); Any: one name is a list of one
    group_by: Any = None
    metric: str = "auto"
    higher_is_better: Optional[bool] = None
    tags: Any = field(default_factory=lambda: ["Metrics/*", "Wasserstein/estimate", "Loss/D", "Loss/G"])
    confidence: float = 0.95
    resamples: int = 10_000
    seed: int = 0
    out: str = MISSING


@dataclass
class ClaimsConfig:
    claims: Any = "all"  # all, or claim numbers: claims=[1,2] (Any: one number or a list)
    mode: str = "full"  # quick | full | gpu (ganlab.claims.base.MODES)
    out: str = MISSING
    n_jobs: Any = "auto"  # training jobs at once in a sweep; auto: one per core (CPU) or per GPU
    device: str = "auto"  # the critic protocols' device: auto | cpu | cuda | cuda:N
    seed: int = 0  # base seed of the critic protocols
    rerun: bool = False  # measure claims again even where out holds their result at these settings


MAX_DIRNAME = 200  # bytes (ganlab.filenames.name_size); file systems allow 255, the rest is headroom


# Keys that do not make another experiment: runs that differ only in these are seeds of one group
# (ganlab compare, TensorBoard's HParams group name). The seed, and the schedule of the run's work
# and records: a sweep extended later with resume=auto or more steps keeps its groups.
NOT_GROUPING_KEYS = frozenset({
    "seed", "resume", "steps", "log_every", "sample_every", "eval_every", "checkpoint_every", "keep_checkpoints",
    "threads", "optimized_metric", "metrics.classifier_cache",
})


def grouping_overrides(overrides: list[str]) -> list[str]:
    """A run's task overrides without those of :data:`NOT_GROUPING_KEYS` (nor ``hydra.*``): the
    overrides that say which experiment the run is, e.g. ``["objective=js"]`` for ``objective=js seed=2``."""
    kept = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key not in NOT_GROUPING_KEYS and not key.startswith("hydra"):
            kept.append(override)
    return kept


_HYDRA_ESCAPE = re.compile(r"\\(.)")  # Hydra's escape_special_characters puts a backslash before each special character


def swept_keys(overrides: list[str]) -> set[str]:
    """The keys that a sweep's overrides (a command line, or Hydra's record of it) sweep: those with
    sweep syntax (``seed=0,1``, ``range(3)``, ``interval(0.1,1)``, ``'objective/constraints=[gp],[sn]'``)."""
    words = [w for w in overrides if "=" in w and not w.startswith("-")]
    try:
        return {o.key_or_group for o in OverridesParser.create().parse_overrides(words) if o.is_sweep_override()}
    except Exception:  # an unparsable command line already failed in Hydra; name by everything
        return set()


def swept_overrides(task_overrides: list[str], argv: list[str] | None = None) -> str:
    """A multirun job's directory name, with the swept keys read from the command line (``argv``,
    default ``sys.argv``): :func:`job_dirname`. A sweep started by ``ganlab train -m`` names its jobs
    with :func:`job_dirname` and the keys Hydra recorded instead (:mod:`ganlab.apps.sweep_dir`), so
    that a launcher whose workers have another command line names them the same."""
    return job_dirname(task_overrides, swept_keys(sys.argv[1:] if argv is None else argv))


def job_dirname(task_overrides: list[str], swept: Any) -> str:
    """A multirun job's directory name: its overrides of the *swept* keys, e.g. ``objective=js,seed=1``.

    Hydra's ``override_dirname`` lists every override, so ``-m objective=js,wgan_gp steps=500``
    would name jobs ``objective=js,steps=500``; the keys that are the same in every job only make
    the names (and TensorBoard's run list) longer. ``swept`` holds the swept keys; with none of them
    among the job's overrides the name lists every override.
    The name is made valid on Linux, macOS and Windows by :func:`ganlab.filenames.portable_name`:
    plain names stay as they are; a value with a path, other unsafe characters, non-ASCII text,
    upper case text or too many bytes gets ``_`` for each unsafe character and a hash suffix.
    """
    swept = set(swept)
    chosen = sorted(o for o in task_overrides if o.split("=", 1)[0].lstrip("+~") in swept) or sorted(task_overrides)
    if not chosen:
        return ""  # nothing overridden: Hydra puts the one job in the sweep directory itself
    # A sweep hands each job its value escaped (``a\ dir\:x`` for ``a dir:x``); name it by what was typed.
    chosen = [_HYDRA_ESCAPE.sub(r"\1", o) for o in chosen]
    return portable_name(",".join(chosen), MAX_DIRNAME, distinct_by_case=any(map(_has_cased_text, chosen)))


def _has_cased_text(override: str) -> bool:
    """Whether the override's value holds text with upper case letters (``name=Foo``, not ``compile=True``).

    Two such values that differ only in case are distinct jobs, but one folder on the file systems
    that ignore case (macOS, Windows). Keys are left out: in one sweep a key is always spelt the same
    (``objective.optimizer.lr_D``). Booleans, numbers and null (``True``, ``1E-4``, ``NULL``) are
    the same value in any case.
    """
    try:
        value = OverridesParser.create().parse_override(override).value()
    except Exception:  # Hydra accepted it, so this does not happen; count all of it as text
        value = override.split("=", 1)[-1]

    def cased(v: Any) -> bool:
        if isinstance(v, str):
            return v != v.lower()
        if isinstance(v, dict):
            return any(cased(k) or cased(x) for k, x in v.items())
        return isinstance(v, list) and any(map(cased, v))

    return cased(value)


@functools.lru_cache(maxsize=None)  # Hydra resolves it more than once; the answer must not change
def resume_output_subdir(resume: str | None, run_dir: str) -> str:
    """Where Hydra writes its config files: ``.hydra``, except when this run continues an earlier
    one, whose ``.hydra`` must survive: then ``.hydra/resume_<n>``."""
    if resume in (None, "", "None", "null") or latest_checkpoint(run_dir) is None:
        return ".hydra"
    # One past the largest number so far, so that the newest resume has the largest number even
    # when an earlier folder was deleted.
    earlier = numbered(Path(run_dir) / ".hydra", "resume_")
    return f".hydra/resume_{earlier[-1][0] + 1 if earlier else 1}"


def register_configs() -> None:
    """Put every schema into Hydra's ConfigStore and register ganlab's resolvers (idempotent)."""
    OmegaConf.register_new_resolver("swept_overrides", swept_overrides, replace=True)
    OmegaConf.register_new_resolver("job_dirname", job_dirname, replace=True)
    OmegaConf.register_new_resolver("resume_run_dir", resume_run_dir, replace=True)
    OmegaConf.register_new_resolver("resume_output_subdir", resume_output_subdir, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="sample_schema", node=SampleConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(name="compare_schema", node=CompareConfig)
    cs.store(name="claims_schema", node=ClaimsConfig)
    # Group schemas live at the root (not inside their group), so that `ganlab train --help`
    # lists only real options; an option file pulls its schema in with `/<name>@_here_`.
    cs.store(name="objective_schema", node=ObjectiveConfig)
    from ganlab.objectives.components import component_schemas  # imports torch: not needed before a config is composed

    for name, schema in component_schemas().items():  # every loss family and constraint: ganlab.objectives.components
        cs.store(name=name, node=schema)
    cs.store(name="toy_schema", node=ToyDatasetConfig)
    cs.store(name="digits_schema", node=DigitsConfig)
    cs.store(name="torchvision_schema", node=TorchvisionDatasetConfig)
    cs.store(name="imagefolder_schema", node=ImageFolderConfig)
    cs.store(name="mlp_schema", node=MLPConfig)
    cs.store(name="dcgan_schema", node=DCGANConfig)
    cs.store(name="resnet_schema", node=ResNetConfig)


# --------------------------------------------------------------------- semantic checks

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


_require = require  # ConfigError: "<key>=<value> is not allowed: <allowed>"


def validate_train(cfg: Any) -> None:
    """Check the ranges and combinations that the schema's types cannot express."""
    obj = cfg.objective
    _require(cfg.steps >= 1, "steps", cfg.steps, "need at least 1 generator step")
    _require(cfg.batch_size >= 1, "batch_size", cfg.batch_size, "must be >= 1")
    _require(cfg.pack >= 1, "pack", cfg.pack, "must be >= 1 (1: no packing; PacGAN uses 2 to 4)")
    _require(cfg.batch_size % cfg.pack == 0, "batch_size", cfg.batch_size,
             f"with pack={cfg.pack} it must be a multiple of {cfg.pack} (it counts samples), e.g. batch_size={max(cfg.pack, cfg.batch_size // cfg.pack * cfg.pack)}")
    for key in ("log_every", "sample_every", "eval_every", "eval_samples", "checkpoint_every", "keep_checkpoints"):
        _require(cfg[key] >= 1, key, cfg[key], "must be >= 1")
    _require(cfg.threads >= 0, "threads", cfg.threads, "must be >= 0 (0 keeps torch's default)")
    _require(obj.n_critic >= 1, "objective.n_critic", obj.n_critic, "need at least 1 critic step per generator step")
    for key in ("lr_G", "lr_D"):
        lr = obj.optimizer[key]
        _require(lr > 0, f"objective.optimizer.{key}", lr, "the learning rate must be > 0")
    betas = list(obj.optimizer.betas)
    _require(
        len(betas) == 2 and all(0 <= b < 1 for b in betas),
        "objective.optimizer.betas", betas, "need two values in [0, 1), e.g. [0.5,0.999]",
    )
    unknown = sorted(set(obj.keys()) - {f.name for f in dataclasses.fields(ObjectiveConfig)})
    _require(not unknown, f"objective.{unknown[0] if unknown else ''}", obj[unknown[0]] if unknown else None,
             f"the objective has no such key (added with +?); its keys: {', '.join(f.name for f in dataclasses.fields(ObjectiveConfig))}")
    from ganlab.apps.build import check_objective  # the components check their own options

    check_objective(obj, cfg.steps)
    for key in ("z_dim", "width", "depth"):
        if key in cfg.model:
            _require(cfg.model[key] >= 1, f"model.{key}", cfg.model[key], "must be >= 1")
    _require(cfg.max_rollbacks >= 0, "max_rollbacks", cfg.max_rollbacks, "must be >= 0")
    _require(0 < cfg.rollback_lr_factor <= 1, "rollback_lr_factor", cfg.rollback_lr_factor, "must be in (0, 1]")
    _require(0 <= cfg.ema_decay < 1, "ema_decay", cfg.ema_decay, "must be in [0, 1): 0 turns G_ema off, 0.999 is typical")
    validate_device(cfg.device, cfg.precision)
    if cfg.compile:
        validate_compile(cfg.device)


def has_cxx_compiler() -> bool:
    """Whether a C++ compiler that torch.compile's CPU backend can use is installed ($CXX, g++, c++, clang++)."""
    import shutil

    return any(c and shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++"))


def validate_compile(device: str) -> None:
    """torch.compile on the CPU generates C++: refuse it up front when no compiler is installed."""
    import torch

    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if on_cpu and not has_cxx_compiler():
        raise ConfigError("compile=true on the CPU needs a C++ compiler (g++ or clang++, or $CXX) and none was found: install one or use compile=false")


def validate_device(device: str, precision: Precision = Precision.fp32) -> None:
    """Refuse a device this machine does not have, or a precision that device cannot run."""
    import torch

    _require(bool(_DEVICE_PATTERN.match(device)), "device", device, "choose auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device} is not available: this machine has no CUDA device (use device=auto or device=cpu)")
        index = int(device.split(":")[1]) if ":" in device else 0
        count = torch.cuda.device_count()
        _require(index < count, "device", device, f"this machine has {count} CUDA device(s): cuda:0..cuda:{count - 1}")
    on_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if precision == Precision.fp16 and not on_cuda:
        raise ConfigError("precision=fp16 is not allowed on the CPU: float16 autocast with a GradScaler needs a CUDA device (use precision=bf16 or fp32)")
    if precision == Precision.bf16 and on_cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("precision=bf16 is not allowed on this GPU: it has no bfloat16 support (use precision=fp16 or fp32)")
