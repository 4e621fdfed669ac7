"""Runs written before the objective components (a flat ``objective`` node: ``loss: wasserstein``,
``constraint: gp``, ``gp_weight``, ...): ganlab/apps/migrate.py reads them into today's layout, a
resume continues them bit for bit, and ``ganlab sample`` / ``ganlab eval`` read them as they are."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ganlab.apps import CONFIG_DIR
from ganlab.apps import eval as eval_app
from ganlab.apps import sample as sample_app
from ganlab.apps.build import build_objective_from, plain
from ganlab.apps.migrate import is_flat, migrate_config, renamed_override
from ganlab.apps.saved_config import check_saved_config
from ganlab.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from ganlab.config import TrainConfig, validate_train
from ganlab.errors import ConfigError
from ganlab.objectives.constraints.gradient_penalty import GradientPenalty
from ganlab.objectives.constraints.spectral_norm import SpectralNorm
from ganlab.objectives.constraints.weight_clip import WeightClip
from ganlab.objectives.losses.hinge import Hinge
from ganlab.objectives.losses.js import JS
from ganlab.objectives.losses.least_squares import LeastSquares
from ganlab.objectives.losses.wasserstein import Wasserstein

from conftest import TINY, compose_train
from inprocess import final_networks, train_in_process

OPTIMIZER = {"name": "adam", "lr_G": 1e-4, "lr_D": 1e-4, "betas": [0.5, 0.9], "alpha": 0.99}  # no schedule: it came with the components


def flat_objective(loss: str, constraint: str = "none", **values) -> dict:
    """An objective node as ganlab wrote it before the components: every key of the flat schema."""
    return {
        "name": "old", "loss": loss, "saturating": False, "constraint": constraint, "n_critic": 5,
        "clip_value": 0.01, "gp_weight": 10.0, "gp_every": 1, "sn_power_iterations": 1,
        "optimizer": dict(OPTIMIZER), **values,
    }


def flat_config(objective: dict) -> dict:
    """A whole saved train config around ``objective``, as a checkpoint held it (no ``tuning`` yet)."""
    config = plain(compose_train(TINY))
    del config["tuning"]
    return {**config, "objective": objective}


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# ----------------------------------------------------------------------------- unit


@pytest.mark.parametrize("old,loss,constraints", [
    (flat_objective("js", n_critic=1), {"_target_": class_path(JS), "saturating": False}, {}),
    (flat_objective("js", saturating=True, n_critic=1), {"_target_": class_path(JS), "saturating": True}, {}),
    (flat_objective("least_squares", n_critic=1), {"_target_": class_path(LeastSquares)}, {}),
    (flat_objective("wasserstein", "clip", clip_value=0.02), {"_target_": class_path(Wasserstein)},
     {"clip": {"_target_": class_path(WeightClip), "c": 0.02}}),
    (flat_objective("wasserstein", "gp", gp_weight=0.1, gp_every=4), {"_target_": class_path(Wasserstein)},
     {"gp": {"_target_": class_path(GradientPenalty), "weight": 0.1, "every": 4}}),
    (flat_objective("hinge", "sn", sn_power_iterations=2), {"_target_": class_path(Hinge)},
     {"sn": {"_target_": class_path(SpectralNorm), "power_iterations": 2}}),
])
def test_a_flat_objective_becomes_its_components(old, loss, constraints):
    config = flat_config(old)
    before = copy.deepcopy(config)
    assert is_flat(config)
    new = migrate_config(config, "checkpoint x.pt")
    assert config == before  # the caller's config is left as it was
    assert not is_flat(new)
    assert new["objective"] == {"name": "old", "n_critic": old["n_critic"], "optimizer": OPTIMIZER, "loss": loss, "constraints": constraints}
    assert {k: v for k, v in new.items() if k != "objective"} == {k: v for k, v in config.items() if k != "objective"}
    # What it became is a config today's ganlab accepts and builds.
    check_saved_config(new, "checkpoint x.pt")
    typed = OmegaConf.merge(OmegaConf.structured(TrainConfig), new)
    validate_train(typed)
    built = build_objective_from(typed.objective)
    assert {name: type(c) for name, c in built.constraints.items()} == {
        name: {"clip": WeightClip, "gp": GradientPenalty, "sn": SpectralNorm}[name] for name in constraints
    }


def test_migrated_values_reach_the_built_components():
    built = build_objective_from(OmegaConf.merge(
        OmegaConf.structured(TrainConfig),
        migrate_config(flat_config(flat_objective("wasserstein", "gp", gp_weight=0.25, gp_every=3)), "x"),
    ).objective)
    gp = built.constraints["gp"]
    assert (gp.weight, gp.every, built.n_critic) == (0.25, 3, 5)
    clip = build_objective_from(OmegaConf.create(migrate_config(flat_config(flat_objective("wasserstein", "clip", clip_value=0.03)), "x")["objective"]))
    assert clip.constraints["clip"].c == 0.03
    js = build_objective_from(OmegaConf.create(migrate_config(flat_config(flat_objective("js", saturating=True)), "x")["objective"]))
    assert isinstance(js.loss, JS) and js.loss.saturating is True


def test_a_current_config_is_returned_as_it_is():
    config = plain(compose_train(TINY + ["objective=spectral_norm"]))
    assert not is_flat(config)
    assert migrate_config(config, "checkpoint x.pt") is config


@pytest.mark.parametrize("loss,constraint", [("ralsgan", "none"), ("wasserstein", "lipschitz")])
def test_a_flat_objective_ganlab_never_had_is_refused_in_one_line(loss, constraint):
    with pytest.raises(ConfigError) as info:
        migrate_config(flat_config(flat_objective(loss, constraint)), "checkpoint runs/x/step_0000003.pt")
    message = str(info.value)
    assert message.startswith(f"checkpoint runs/x/step_0000003.pt: objective.loss={loss}, objective.constraint={constraint} is not an objective ganlab had")
    assert "\n" not in message


# ----------------------------------------------------------------------- end to end


def to_flat(objective: dict) -> dict:
    """The wgan_gp objective of today (plain data) in the layout a run written before the change has."""
    gp = objective["constraints"]["gp"]
    return flat_objective(
        "wasserstein", "gp", name=objective["name"], n_critic=objective["n_critic"], gp_weight=gp["weight"], gp_every=gp["every"],
        optimizer={key: value for key, value in objective["optimizer"].items() if key != "schedule"},
    )


def make_old(run_dir: Path) -> None:
    """Rewrite a run of today into one written before the components: its checkpoints' configs and
    its .hydra/config.yaml in the flat layout, without ``tuning`` and without the schedules' state."""
    for path in list_checkpoints(run_dir):
        state = load_checkpoint(path)
        state["config"] = {key: value for key, value in state["config"].items() if key != "tuning"}
        state["config"]["objective"] = to_flat(state["config"]["objective"])
        del state["schedules"]
        save_checkpoint(state, path)
    config_file = run_dir / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    objective = plain(OmegaConf.create(config)["objective"])  # resolved (the penalty weight reads tuning): the old files had no interpolation there
    del config["tuning"]
    config["objective"] = to_flat(objective)
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))


def compose_app(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def test_a_run_written_before_the_components_resumes_bit_exact_and_is_read_by_sample_and_eval(tmp_path):
    """The old run trains 3 steps; resumed to 6 it equals a run of today that went 6 steps at once."""
    every_3 = ["log_every=3", "sample_every=3", "eval_every=3"]
    whole, old = tmp_path / "whole", tmp_path / "old"
    train_in_process(TINY + every_3 + ["steps=6"], whole)
    train_in_process(TINY + every_3 + ["steps=3"], old)
    make_old(old)
    state = load_checkpoint(latest_checkpoint(old))
    assert is_flat(state["config"]) and state["config"]["objective"]["gp_weight"] == pytest.approx(0.1)
    assert "schedules" not in state and "tuning" not in state["config"]
    saved = yaml.safe_load((old / ".hydra" / "config.yaml").read_text())["objective"]
    assert (saved["constraint"], saved["gp_weight"]) == ("gp", pytest.approx(0.1))

    # sample and eval read the old run directory: they need only its dataset and model.
    out = tmp_path / "samples.npy"
    sample_app.main(compose_app("sample", [f"run={old}", "n=16", f"out={out}", "device=cpu"]))
    assert np.load(out).shape == (16, 2)
    metrics = eval_app.main(compose_app("eval", [f"run={old}", "n=32", "device=cpu"]))
    report = json.loads((old / "eval.json").read_text())
    assert report["step"] == 3 and report["metrics"] == pytest.approx(metrics)
    (old / "eval.json").unlink()

    train_in_process([f"resume={old}", "steps=6"], old)
    a, b = final_networks(whole), final_networks(old)
    assert a["step"] == b["step"] == 6
    for net in ("G", "D"):
        assert a[net].keys() == b[net].keys()
        for key in a[net]:
            torch.testing.assert_close(a[net][key], b[net][key], rtol=0, atol=0, msg=f"{net}.{key}")
    # The continuation is saved in today's layout, with the values the old run had.
    resumed = load_checkpoint(latest_checkpoint(old))["config"]["objective"]
    assert resumed["loss"]["_target_"] == class_path(Wasserstein)
    assert resumed["constraints"]["gp"]["_target_"] == class_path(GradientPenalty)
    assert (resumed["constraints"]["gp"]["weight"], resumed["constraints"]["gp"]["every"]) == (pytest.approx(0.1), 1)
    assert not is_flat(yaml.safe_load((old / ".hydra" / "resume_1" / "config.yaml").read_text()))


@pytest.mark.parametrize("override,new", [
    ("objective.gp_weight=1", "objective.constraints.gp.weight"),
    ("+objective.gp_weight=1", "objective.constraints.gp.weight"),
    ("objective.gp_every=4", "objective.constraints.gp.every"),
    ("objective.clip_value=0.1,0.2", "objective.constraints.clip.c"),
    ("objective.sn_power_iterations=2", "objective.constraints.sn.power_iterations"),
    ("objective.saturating=true", "objective.loss.saturating"),
    ("objective.constraint=gp", "objective/constraints=<name>"),
])
def test_an_override_of_the_flat_layout_names_the_key_to_use_now(override, new):
    hint = renamed_override(override)
    assert hint.startswith(f"{override.split('=')[0].lstrip('+')} was renamed when the objective became components: use {new}")


@pytest.mark.parametrize("override", ["objective.constraints.gp.weight=1", "objective/loss=hinge", "steps=5", "gp_weight", "objective.gp_weightx=1"])
def test_other_overrides_get_no_hint(override):
    assert renamed_override(override) is None


def test_the_command_line_refuses_a_flat_key_before_hydra_suggests_adding_it(capsys):
    from ganlab.cli import main

    assert main(["train", "+objective.gp_weight=1", "steps=1"]) == 2
    assert capsys.readouterr().err == "error: objective.gp_weight was renamed when the objective became components: use objective.constraints.gp.weight\n"


def test_resuming_a_checkpoint_whose_config_has_a_key_the_schema_lacks_is_one_line():
    from ganlab.apps.train import resumed_config

    saved = plain(compose_train(TINY))
    saved["objective"]["gp_weight"] = 1.0  # as `+objective.gp_weight=1` left it before validate_train refused such keys
    with pytest.raises(ConfigError, match=r"^the checkpoint's config does not fit this ganlab's schema \(Key 'gp_weight' not in 'ObjectiveConfig'\); start a new run$"):
        resumed_config(saved, compose_train(TINY), [])
