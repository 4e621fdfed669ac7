"""Objectives as components (ganlab/objectives/components.py, objective.py, constraints/__init__.py):
several constraints on one critic, each penalty under its own name, lazy penalties, building a
node, and the saved-config allow-list that the components extend."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from ganlab.apps import CONFIG_DIR
from ganlab.apps.build import build_objective_from, plain
from ganlab.apps.saved_config import check_saved_config, shipped_keys
from ganlab.config import validate_train
from ganlab.errors import ConfigError
from ganlab.logger.stats import Stats
from ganlab.objectives import Objective, build_objective
from ganlab.objectives.components import build_component, component_schemas
from ganlab.objectives.constraints import Penalty
from ganlab.objectives.constraints.gradient_penalty import GradientPenalty
from ganlab.objectives.constraints.spectral_norm import SpectralNorm
from ganlab.objectives.losses.wasserstein import Wasserstein
from ganlab.precision import Precision

from conftest import TINY, compose_train
from inprocess import train_in_process

CPU_FP32 = Precision("fp32", "cpu")
LOSS_FILES = sorted(p.stem for p in (Path(CONFIG_DIR) / "objective" / "loss").glob("*.yaml"))
CONSTRAINT_FILES = sorted(p.stem for p in (Path(CONFIG_DIR) / "objective" / "constraints").glob("*.yaml"))


def critic() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))


class Constant(Penalty):
    """A penalty whose term is a known number."""

    def __init__(self, *, weight: float, every: int, value: float):
        super().__init__(weight=weight, every=every)
        self.value = value

    def term(self, D, real, fake, precision):
        return torch.tensor(self.value)


# ------------------------------------------------------------------ several constraints


def test_an_objective_composes_with_several_constraints():
    cfg = compose_train(TINY + ["objective/constraints=[gp,sn]"])
    validate_train(cfg)
    objective = build_objective_from(cfg.objective)
    assert list(objective.constraints) == ["gp", "sn"]
    assert isinstance(objective.constraints["gp"], GradientPenalty) and isinstance(objective.constraints["sn"], SpectralNorm)
    assert objective.constraints["gp"].weight == pytest.approx(0.1)  # the toy data's tuning reaches it
    assert isinstance(objective.loss, Wasserstein)


def test_no_constraint_at_all():
    cfg = compose_train(TINY + ["objective/constraints=[]"])
    validate_train(cfg)
    assert build_objective_from(cfg.objective).constraints == {}


def test_a_run_with_two_constraints_reports_both(tmp_path):
    train_in_process(TINY + ["steps=2", "log_every=1", "sample_every=2", "eval_every=2", "objective/constraints=[gp,sn]"], tmp_path)
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert "Penalty/gp" in tags
    sigmas = sorted(tag for tag in tags if tag.startswith("SpectralNorm/sigma/"))
    assert len(sigmas) == 4  # the MLP critic's 3 hidden layers and its output layer
    assert [e.step for e in events.Scalars("Penalty/gp")] == [1, 2]


def test_each_penalty_is_reported_under_its_own_name_and_added_to_the_critic_loss():
    objective = Objective(Wasserstein(), {"a": GradientPenalty(weight=1.0, every=1), "b": GradientPenalty(weight=3.0, every=1)}, n_critic=1)
    torch.manual_seed(1)
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    stats = Stats()
    loss_D = objective.critic_loss(critic(), real, fake, CPU_FP32, stats)
    logged = stats.collect()
    assert {"Penalty/a", "Penalty/b", "Loss/D_main", "Loss/D"} <= logged.keys()
    assert logged["Penalty/a"] > 0 and logged["Penalty/b"] > 0  # a critic at init is not 1-Lipschitz everywhere
    assert logged["Loss/D"] == pytest.approx(logged["Loss/D_main"] + logged["Penalty/a"] + logged["Penalty/b"], rel=1e-6)
    assert loss_D.item() == pytest.approx(logged["Loss/D"], rel=1e-6)


def test_the_objective_sums_the_penalties_due_at_a_critic_step():
    objective = Objective(Wasserstein(), {"often": Constant(weight=0.5, every=1, value=2.0), "lazy": Constant(weight=0.25, every=2, value=4.0)})
    D, real, fake = critic(), torch.zeros(4, 2), torch.ones(4, 2)

    stats = Stats()
    total = objective.penalty(D, real, fake, CPU_FP32, stats, critic_step=0)
    assert total.item() == pytest.approx(0.5 * 2.0 + 2 * 0.25 * 4.0, abs=1e-6)
    assert stats.collect() == pytest.approx({"Penalty/often": 1.0, "Penalty/lazy": 2.0}, abs=1e-6)

    total = objective.penalty(D, real, fake, CPU_FP32, stats, critic_step=1)
    assert total.item() == pytest.approx(1.0, abs=1e-6)
    assert stats.collect() == pytest.approx({"Penalty/often": 1.0}, abs=1e-6)  # the lazy one skipped this step: not reported

    none_due = Objective(Wasserstein(), {"lazy": Constant(weight=1.0, every=3, value=1.0)})
    assert none_due.penalty(D, real, fake, CPU_FP32, stats, critic_step=4) is None
    assert stats.collect() == {}


# ---------------------------------------------------------------------- lazy penalty


@pytest.mark.parametrize("every,weight", [(1, 0.5), (3, 0.4), (4, 10.0)])
def test_a_lazy_penalty_is_due_every_k_critic_steps_with_weight_k(every, weight):
    penalty = Constant(weight=weight, every=every, value=2.5)
    D, real, fake = critic(), torch.zeros(4, 2), torch.ones(4, 2)
    for critic_step in range(12):
        value = penalty.penalty(D, real, fake, CPU_FP32, critic_step)
        if critic_step % every:
            assert value is None, critic_step
        else:
            assert value.item() == pytest.approx(every * weight * 2.5, rel=1e-6), critic_step


@pytest.mark.parametrize("options,message", [
    ({"weight": -1.0, "every": 1}, "weight=-1.0 is not allowed: the penalty weight must be >= 0"),
    ({"weight": 1.0, "every": 0}, "every=0 is not allowed: must be >= 1"),
])
def test_a_penalty_checks_its_options(options, message):
    with pytest.raises(ConfigError) as info:
        Constant(value=1.0, **options)
    assert message in str(info.value)


# -------------------------------------------------------------------- building a node


def test_build_component_names_the_full_path_of_a_bad_option():
    node = {"_target_": "ganlab.objectives.constraints.gradient_penalty.GradientPenalty", "weight": 1.0, "every": 0}
    with pytest.raises(ConfigError) as info:
        build_component(node, "objective.constraints.gp", "objective/constraints")
    assert str(info.value).startswith("objective.constraints.gp.every=0 is not allowed: must be >= 1")


def test_build_component_leaves_the_schedule_to_the_schedules():
    node = {"_target_": "ganlab.objectives.constraints.gradient_penalty.GradientPenalty", "weight": 2.0, "every": 2,
            "schedule": {"weight": {"shape": "linear", "end": 0.0}}}
    gp = build_component(node, "objective.constraints.gp", "objective/constraints")
    assert isinstance(gp, GradientPenalty) and (gp.weight, gp.every) == (2.0, 2)


@pytest.mark.parametrize("overrides,message", [
    (["objective.constraints.gp.every=0"], "objective.constraints.gp.every=0 is not allowed: must be >= 1"),
    (["objective.constraints.gp.weight=-1"], "objective.constraints.gp.weight=-1.0 is not allowed: the penalty weight must be >= 0"),
    (["objective=wgan_clip", "objective.constraints.clip.c=0"], "objective.constraints.clip.c=0.0 is not allowed: the clip bound c must be > 0"),
    (["objective=spectral_norm", "objective.constraints.sn.power_iterations=0"], "objective.constraints.sn.power_iterations=0 is not allowed: must be >= 1"),
])
def test_a_bad_component_option_is_one_line_naming_its_full_key(overrides, message):
    with pytest.raises(ConfigError) as info:
        validate_train(compose_train(TINY + overrides))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_values_for_a_constraint_that_is_not_selected_name_no_component():
    cfg = compose_train(TINY + ["+objective.constraints.foo.weight=1"])
    with pytest.raises(ConfigError) as info:
        validate_train(cfg)
    message = str(info.value)
    assert message.startswith("objective.constraints.foo names no component (it has no _target_)")
    assert "objective/constraints does not select it" in message and "objective/constraints=[a,b]" in message and "\n" not in message
    with pytest.raises(ConfigError, match="^objective.loss names no component"):
        build_objective({"loss": {"saturating": True}, "constraints": {}, "n_critic": 1})


def test_every_component_module_has_one_schema_with_its_own_target():
    schemas = component_schemas()
    assert set(schemas) == {
        "js_schema", "wasserstein_schema", "hinge_schema", "least_squares_schema", "relativistic_schema",
        "gradient_penalty_schema", "weight_clip_schema", "spectral_norm_schema",
        "r1_schema", "r2_schema", "dragan_schema", "lipschitz_penalty_schema",
    }
    for name, schema in schemas.items():
        module = schema._target_.rsplit(".", 1)[0]
        assert module.endswith("." + name.removesuffix("_schema")), name  # the schema names a class of its own module


# ------------------------------------------------------------ saved configs and targets


@pytest.mark.parametrize("loss", LOSS_FILES)
def test_the_allow_list_holds_every_shipped_loss(loss):
    target = compose_train(TINY + [f"objective/loss={loss}"]).objective.loss._target_
    assert target in shipped_keys()["objective.loss._target_"]


@pytest.mark.parametrize("name", CONSTRAINT_FILES)
def test_the_allow_list_holds_every_shipped_constraint(name):
    target = compose_train(TINY + [f"objective/constraints=[{name}]"]).objective.constraints[name]._target_
    assert target in shipped_keys()[f"objective.constraints.{name}._target_"]


def test_the_allow_list_holds_exactly_the_shipped_targets():
    def target(overrides: list[str], key: str) -> str:
        return plain(compose_train(TINY + overrides))["objective"][key]

    keys = shipped_keys()
    assert keys["objective.loss._target_"] == {target([f"objective/loss={loss}"], "loss")["_target_"] for loss in LOSS_FILES}
    for name in CONSTRAINT_FILES:
        assert keys[f"objective.constraints.{name}._target_"] == {target([f"objective/constraints=[{name}]"], "constraints")[name]["_target_"]}
    assert not {key for key in keys if key.startswith("objective.")} - {
        "objective.loss._target_", *(f"objective.constraints.{name}._target_" for name in CONSTRAINT_FILES)
    }


@pytest.mark.parametrize("overrides", [[], ["objective=js", "objective.loss.saturating=true"], ["objective=wgan_clip"],
                                       ["objective=spectral_norm"], ["objective/constraints=[gp,sn,clip]"]])
def test_a_composed_config_passes_the_saved_config_check(overrides):
    check_saved_config(plain(compose_train(TINY + overrides)), "checkpoint x.pt")


def test_the_saved_config_check_refuses_another_target_for_a_constraint():
    config = plain(compose_train(TINY))
    config["objective"]["constraints"]["gp"]["_target_"] = "builtins.print"
    with pytest.raises(ConfigError) as info:
        check_saved_config(config, "checkpoint x.pt")
    message = str(info.value)
    assert message.startswith("checkpoint x.pt: objective.constraints.gp._target_='builtins.print' is refused")
    assert "ganlab.objectives.constraints.gradient_penalty.GradientPenalty" in message and "\n" not in message


def test_the_saved_config_check_refuses_a_target_under_a_constraint_name_ganlab_does_not_ship():
    config = plain(compose_train(TINY))
    config["objective"]["constraints"]["mine"] = dict(config["objective"]["constraints"]["gp"])
    with pytest.raises(ConfigError, match=r"^checkpoint x.pt: objective.constraints.mine._target_ is refused"):
        check_saved_config(config, "checkpoint x.pt")
