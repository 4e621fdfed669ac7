"""The config tree: every option composes, schemas catch typos and wrong types, validation catches ranges."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import get_object
from omegaconf.errors import ConfigKeyError, ValidationError

from ganlab.apps import CONFIG_DIR
from ganlab.config import ConstraintName, LossName, validate_train
from ganlab.errors import ConfigError
from ganlab.objectives.constraints import CONSTRAINTS
from ganlab.objectives.losses import LOSSES

from conftest import compose_train

GROUPS = ("dataset", "model", "objective")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def test_every_group_has_options():
    assert options("objective") == ["js", "spectral_norm", "wgan_clip", "wgan_gp"]
    assert options("dataset") == ["cifar10", "digits", "fashion_mnist", "gaussians25", "gaussians8", "imagefolder", "mnist", "stacked_mnist", "swissroll"]
    assert options("model") == ["dcgan", "mlp", "resnet"]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group, option):
    cfg = compose_train([f"{group}={option}"])
    validate_train(cfg)
    if group == "objective":
        assert cfg.objective.name == option  # the preset's name, as run summaries show it
    else:
        assert callable(get_object(cfg[group]._target_))  # what instantiate will call exists


@pytest.mark.parametrize(
    "preset,loss,constraint,n_critic,optimizer,lr,betas",
    [
        ("js", "js", "none", 1, "adam", 2e-4, [0.5, 0.999]),
        ("wgan_clip", "wasserstein", "clip", 5, "rmsprop", 5e-5, None),
        ("wgan_gp", "wasserstein", "gp", 5, "adam", 1e-4, [0.5, 0.9]),
        ("spectral_norm", "hinge", "sn", 5, "adam", 2e-4, [0.0, 0.9]),
    ],
)
def test_presets_carry_their_paper_defaults(preset, loss, constraint, n_critic, optimizer, lr, betas):
    obj = compose_train([f"objective={preset}"]).objective
    assert (obj.loss.value, obj.constraint.value, obj.n_critic, obj.optimizer.name.value) == (loss, constraint, n_critic, optimizer)
    assert obj.optimizer.lr_G == pytest.approx(lr) and obj.optimizer.lr_D == pytest.approx(lr)
    if betas is not None:
        assert list(obj.optimizer.betas) == pytest.approx(betas)
    if preset == "wgan_clip":
        assert obj.clip_value == pytest.approx(0.01)


def test_loss_and_constraint_compose_freely():
    cfg = compose_train(["objective.loss=hinge", "objective.constraint=gp"])
    assert cfg.objective.loss == LossName.hinge and cfg.objective.constraint == ConstraintName.gp


def test_config_names_match_the_registries():
    assert {n.value for n in LossName} == set(LOSSES) - {"js_saturating"}
    assert {n.value for n in ConstraintName} == set(CONSTRAINTS)


@pytest.mark.parametrize(
    "override,error",
    [
        ("objective.n_critc=3", ConfigKeyError),      # typo in a key
        ("objective.n_critic=three", ValidationError),  # wrong type
        ("objective.loss=wassertein", ValidationError),  # not an allowed value
        ("precision=fp64", ValidationError),
        ("steps=1.5", ValidationError),
        ("model.widht=8", ConfigKeyError),
        ("model.activation=swish", ValidationError),
        ("model.critic_norm=group", ValidationError),
    ],
)
def test_typos_and_wrong_types_fail_at_compose_time(override, error):
    with pytest.raises((ConfigCompositionException, error)) as info:
        compose_train([override])
    assert override.split("=")[0].split(".")[-1] in str(info.value) or override.split("=")[1] in str(info.value)


def test_unknown_option_fails_at_compose_time():
    with pytest.raises(ConfigCompositionException, match="objective"):
        compose_train(["objective=wgan_lp"])


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["objective.n_critic=0"], "objective.n_critic=0"),
        (["objective.optimizer.lr_D=0"], "objective.optimizer.lr_D=0"),
        (["objective.optimizer.lr_G=-1e-4"], "objective.optimizer.lr_G=-0.0001"),
        (["objective=wgan_clip", "objective.clip_value=0"], "objective.clip_value=0"),
        (["objective.gp_weight=-1"], "objective.gp_weight=-1"),
        (["steps=0"], "steps=0"),
        (["batch_size=0"], "batch_size=0"),
        (["objective.saturating=true"], "objective.saturating=True"),
        (["device=gpu"], "device=gpu"),
        (["ema_decay=1.0"], "ema_decay=1.0"),
        (["objective.optimizer.betas=[0.5]"], "objective.optimizer.betas"),
    ],
)
def test_semantic_validation_names_key_and_value(overrides, needle):
    cfg = compose_train(overrides)
    with pytest.raises(ConfigError) as info:
        validate_train(cfg)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_cuda_and_fp16_refused_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="device=cuda is not available"):
        validate_train(compose_train(["device=cuda"]))
    with pytest.raises(ConfigError, match="precision=fp16 is not allowed on the CPU"):
        validate_train(compose_train(["precision=fp16"]))
    validate_train(compose_train(["precision=bf16"]))  # bf16 runs on the CPU


@pytest.mark.parametrize(
    "argv,task,expected",
    [
        (["-m", "objective=js,wgan_gp", "seed=0,1", "steps=500"], ["objective=js", "seed=1", "steps=500"], "objective=js,seed=1"),
        (["-m", "seed=range(3)", "steps=5"], ["steps=5", "seed=2"], "seed=2"),
        (["-m", "steps=5"], ["steps=5"], "steps=5"),  # nothing swept: every override
        (["-m"], [], ""),
        (["-m", "dataset.root=/data/x"], ["dataset.root=/data/x"], "dataset.root=_data_x~07d878b39a"),  # "/" replaced, so a hash keeps it apart from dataset.root=_data_x
    ],
)
def test_multirun_job_directories_are_named_by_the_swept_overrides(argv, task, expected):
    from ganlab.config import swept_overrides

    assert swept_overrides(task, argv) == expected


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ([], 0.1),  # wgan_gp on gaussians25: the toy script's lambda (conf/tuning)
        (["dataset=swissroll"], 0.1),
        (["dataset=digits"], 10.0),  # images: the paper's lambda
        (["objective.gp_weight=3"], 3.0),  # the command line wins over the tuning
    ],
)
def test_gradient_penalty_weight_follows_the_data(overrides, expected):
    assert compose_train(overrides).objective.gp_weight == pytest.approx(expected)


def test_experiment_presets_can_be_overridden_from_the_command_line():
    cfg = compose_train(["experiment=digits_dcgan", "objective=spectral_norm", "steps=7"])
    assert cfg.objective.name == "spectral_norm" and cfg.steps == 7
    assert cfg.dataset._target_ == "ganlab.data.digits.Digits" and cfg.model._target_ == "ganlab.models.dcgan.build_dcgan"


def test_multirun_job_directory_names_stay_short():
    from ganlab.config import MAX_DIRNAME, swept_overrides

    overrides = [f"key{i}=" + "v" * 30 for i in range(20)]
    name = swept_overrides(overrides, ["-m", *overrides])
    assert len(name) == MAX_DIRNAME and name != swept_overrides(overrides[:-1], ["-m", *overrides[:-1]])


def test_each_resume_writes_its_config_under_the_next_number(tmp_path):
    from ganlab.checkpoint import checkpoint_path
    from ganlab.config import resume_output_subdir

    checkpoint_path(tmp_path, 4).parent.mkdir(parents=True)
    checkpoint_path(tmp_path, 4).write_bytes(b"")
    for n in (2, 9, 10):  # resume_1 was deleted; resume_10 has one digit more than resume_9
        (tmp_path / ".hydra" / f"resume_{n}").mkdir(parents=True)
    assert resume_output_subdir("auto", str(tmp_path)) == ".hydra/resume_11"
    assert resume_output_subdir(None, str(tmp_path)) == ".hydra"
