"""The config tree: every option composes, schemas catch typos and wrong types, validation catches ranges."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest
import yaml
from hydra.errors import ConfigCompositionException
from hydra.utils import get_object
from omegaconf.errors import ConfigKeyError, ValidationError

from ganlab.apps import CONFIG_DIR
from ganlab.apps.build import build_objective_from
from ganlab.config import validate_train
from ganlab.errors import ConfigError
from ganlab.objectives import constraints, losses
from ganlab.objectives.components import component_schemas

from conftest import compose_train
from networks import CONSTRAINTS, LOSSES

GROUPS = ("dataset", "model", "objective")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def test_every_group_has_options():
    assert options("objective") == ["dragan", "js", "lsgan", "numpy_ml", "r1", "r3gan", "ragan", "rsgan", "spectral_norm", "wgan_clip", "wgan_gp", "wgan_lp"]
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
    "preset,loss,constraints,n_critic,optimizer,lr,betas",
    [
        ("js", "js", [], 1, "adam", 2e-4, [0.5, 0.999]),
        ("wgan_clip", "wasserstein", ["clip"], 5, "rmsprop", 5e-5, None),
        ("wgan_gp", "wasserstein", ["gp"], 5, "adam", 1e-4, [0.5, 0.9]),
        ("spectral_norm", "hinge", ["sn"], 5, "adam", 2e-4, [0.0, 0.9]),
    ],
)
def test_presets_carry_their_paper_defaults(preset, loss, constraints, n_critic, optimizer, lr, betas):
    obj = compose_train([f"objective={preset}", "dataset=digits", "model=dcgan"]).objective  # off the toy data's tuning
    assert obj.loss._target_ == f"{LOSSES[loss][0].__module__}.{LOSSES[loss][0].__name__}"
    assert list(obj.constraints) == constraints
    assert (obj.n_critic, obj.optimizer.name.value) == (n_critic, optimizer)
    assert obj.optimizer.lr_G == pytest.approx(lr) and obj.optimizer.lr_D == pytest.approx(lr)
    if betas is not None:
        assert list(obj.optimizer.betas) == pytest.approx(betas)
    if preset == "js":
        assert obj.loss.saturating is False  # the non-saturating generator loss (Goodfellow 2014, Sec. 3)
    if preset == "wgan_clip":
        assert obj.constraints.clip.c == pytest.approx(0.01)
    if preset == "wgan_gp":
        assert (obj.constraints.gp.weight, obj.constraints.gp.every) == (pytest.approx(10.0), 1)
    if preset == "spectral_norm":
        assert obj.constraints.sn.power_iterations == 1


def test_loss_and_constraints_compose_freely():
    cfg = compose_train(["objective/loss=hinge", "objective/constraints=gp"])
    validate_train(cfg)
    built = build_objective_from(cfg.objective)
    assert type(built.loss) is LOSSES["hinge"][0] and list(built.constraints) == ["gp"]
    assert type(built.constraints["gp"]) is CONSTRAINTS["gp"][0]
    cfg = compose_train(["objective=wgan_gp", "objective/constraints=[gp,sn]"])
    assert [type(c) for c in build_objective_from(cfg.objective).constraints.values()] == [CONSTRAINTS["gp"][0], CONSTRAINTS["sn"][0]]
    cfg = compose_train(["objective=wgan_gp", "objective/constraints=[]"])
    assert build_objective_from(cfg.objective).constraints == {}


def component_modules(package) -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules(package.__path__))


def selected_schema(yaml_file: Path) -> str:
    """The one ``/<module>_schema@...`` entry of a component YAML's defaults list, as ``<module>``."""
    defaults = yaml.safe_load(yaml_file.read_text())["defaults"]
    schemas = [entry.split("@")[0].lstrip("/") for entry in defaults if isinstance(entry, str) and "_schema@" in entry]
    assert len(schemas) == 1, (yaml_file, defaults)
    return schemas[0].removesuffix("_schema")


@pytest.mark.parametrize("package,group", [(losses, "loss"), (constraints, "constraints")])
def test_every_component_module_has_one_yaml_that_selects_its_schema(package, group):
    """One module, one YAML, one mechanism: nothing besides them names a component, so they cannot drift."""
    yamls = sorted((Path(CONFIG_DIR) / "objective" / group).glob("*.yaml"))
    selected = sorted(selected_schema(f) for f in yamls)
    assert selected == component_modules(package)  # every module has exactly one YAML, every YAML a module
    # The ConfigStore holds one schema per module of the two packages, and nothing else.
    assert set(component_schemas()) == {f"{m}_schema" for m in component_modules(losses) + component_modules(constraints)}


COMPONENT_YAMLS = [(group, p.stem) for group in ("loss", "constraints") for p in sorted((Path(CONFIG_DIR) / "objective" / group).glob("*.yaml"))]


@pytest.mark.parametrize("group,name", COMPONENT_YAMLS)
def test_every_component_yaml_composes_and_builds_its_class(group, name):
    override = f"objective/loss={name}" if group == "loss" else f"objective/constraints=[{name}]"
    cfg = compose_train([override, "dataset=digits", "model=dcgan"])  # off the toy data's tuning
    validate_train(cfg)
    objective = build_objective_from(cfg.objective)
    if group == "loss":
        built, (cls, options) = objective.loss, LOSSES[name]
    else:
        assert list(objective.constraints) == [name]  # kept under its config name: reported as Penalty/<name>
        built, (cls, options) = objective.constraints[name], CONSTRAINTS[name]
    schema = component_schemas()[f"{selected_schema(Path(CONFIG_DIR) / 'objective' / group / f'{name}.yaml')}_schema"]
    assert type(built) is get_object(schema._target_)
    # The unit tests' objectives (tests/networks.py) are what the YAML builds.
    assert type(built) is cls and {key: getattr(built, key) for key in options} == pytest.approx(options)


@pytest.mark.parametrize(
    "override,error",
    [
        ("objective.n_critc=3", ConfigKeyError),      # typo in a key
        ("objective.n_critic=three", ValidationError),  # wrong type
        ("objective/loss=wassertein", ConfigCompositionException),  # not an option of the group
        ("objective/constraints=[gp,pg]", ConfigCompositionException),
        ("objective.constraints.gp.wieght=1", ConfigCompositionException),  # typo in a component's key
        ("objective.constraints.gp.every=two", ValidationError),  # wrong type in a component's key
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
        compose_train(["objective=wgan_gq"])


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["objective.n_critic=0"], "objective.n_critic=0"),
        (["objective.optimizer.lr_D=0"], "objective.optimizer.lr_D=0"),
        (["objective.optimizer.lr_G=-1e-4"], "objective.optimizer.lr_G=-0.0001"),
        (["objective=wgan_clip", "objective.constraints.clip.c=0"], "objective.constraints.clip.c=0.0 is not allowed: the clip bound c must be > 0"),
        (["objective.constraints.gp.weight=-1"], "objective.constraints.gp.weight=-1.0 is not allowed"),
        (["objective.constraints.gp.every=0"], "objective.constraints.gp.every=0 is not allowed"),
        (["objective=spectral_norm", "objective.constraints.sn.power_iterations=0"], "objective.constraints.sn.power_iterations=0 is not allowed"),
        (["+objective.gp_weight=1"], "objective.gp_weight=1 is not allowed: the objective has no such key (added with +?)"),
        (["objective.loss=hinge"], "objective.loss=hinge is not allowed: a component is chosen with its config group, with a slash: objective/loss=hinge"),
        (["steps=0"], "steps=0"),
        (["batch_size=0"], "batch_size=0"),
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


def test_saturating_exists_only_for_the_js_loss():
    """Only the js loss has the key: on another loss Hydra refuses it when it composes the config."""
    with pytest.raises(ConfigCompositionException, match="Could not override 'objective.loss.saturating'") as info:
        compose_train(["objective=wgan_gp", "objective.loss.saturating=true"])
    assert str(info.value.__cause__).startswith("Key 'saturating' not in 'WassersteinConfig'")  # what the CLI prints below it
    cfg = compose_train(["objective=js", "objective.loss.saturating=true"])
    validate_train(cfg)
    assert build_objective_from(cfg.objective).loss.saturating is True


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
        ([], 0.1),  # wgan_gp on gaussians25: the toy script's lambda (conf/tuning/toy.yaml)
        (["dataset=swissroll"], 0.1),
        (["dataset=gaussians8"], 0.1),
        (["dataset=digits"], 10.0),  # images: the paper's lambda
        (["objective.constraints.gp.weight=3"], 3.0),  # the command line wins over the tuning
        # The tuning follows the penalty, whichever preset carries it (10 here before issue 11).
        (["objective=spectral_norm", "objective/constraints=gp", "dataset=gaussians25"], 0.1),
        (["objective=spectral_norm", "objective/constraints=[sn,gp]", "dataset=swissroll"], 0.1),
        (["objective=spectral_norm", "objective/constraints=gp", "dataset=digits", "model=dcgan"], 10.0),
        (["objective=spectral_norm", "objective/constraints=gp", "objective.constraints.gp.weight=3"], 3.0),
    ],
)
def test_gradient_penalty_weight_follows_the_data(overrides, expected):
    cfg = compose_train(overrides)
    validate_train(cfg)
    assert cfg.objective.constraints.gp.weight == pytest.approx(expected)
    assert build_objective_from(cfg.objective).constraints["gp"].weight == pytest.approx(expected)  # what the run uses


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
