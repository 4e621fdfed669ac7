"""Adding a penalty is one module plus one YAML: shown with a penalty that exists nowhere in ganlab.

The test writes an R1-style penalty module into a folder that it adds to the
``ganlab.objectives.constraints`` package, and its YAML into a folder on Hydra's search path.
Nothing else is touched (no registry, enum, schema list or builder code), and the penalty composes
from the command line beside another one, is checked for range, trains, and is logged under its
own tag.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ganlab.apps import saved_config
from ganlab.config import register_configs, validate_train
from ganlab.errors import ConfigError
from ganlab.objectives import constraints
from ganlab.objectives.components import component_schemas

from conftest import TINY, compose_train
from inprocess import train_in_process

MODULE = '''
"""A test penalty: weight / 2 * E ||grad D(real)||^2 (R1, Mescheder et al. 2018, Eq. 9)."""
from dataclasses import dataclass

from ganlab.objectives.constraints import Penalty, PenaltyConfig
from ganlab.objectives.gradients import input_gradient_norm, uncompiled


class ZeroCenteredReal(Penalty):
    def term(self, D, real, fake, precision):
        return 0.5 * (input_gradient_norm(uncompiled(D), real, precision, create_graph=True) ** 2).mean()


@dataclass
class ZeroCenteredRealConfig(PenaltyConfig):
    _target_: str = "ganlab.objectives.constraints.zero_centered_real.ZeroCenteredReal"
'''

YAML = """
defaults:
  - /zero_centered_real_schema@r1test
  - _self_
r1test:
  weight: 10.0
"""


@pytest.fixture
def new_penalty(tmp_path):
    """The two files of a new penalty, visible to ganlab for this test only; the override that adds its YAML."""
    package = tmp_path / "package"
    package.mkdir()
    (package / "zero_centered_real.py").write_text(textwrap.dedent(MODULE))
    conf = tmp_path / "conf" / "objective" / "constraints"
    conf.mkdir(parents=True)
    (conf / "r1test.yaml").write_text(YAML)
    shipped = list(constraints.__path__)
    constraints.__path__[:] = [*shipped, str(package)]
    component_schemas.cache_clear()
    saved_config.shipped_keys.cache_clear()
    register_configs()
    yield f"hydra.searchpath=[file://{tmp_path / 'conf'}]"
    constraints.__path__[:] = shipped
    component_schemas.cache_clear()
    saved_config.shipped_keys.cache_clear()
    register_configs()


def test_a_new_penalty_composes_checks_trains_and_logs_under_its_own_tag(new_penalty, tmp_path):
    overrides = [new_penalty, "objective/constraints=[gp,r1test]"]
    cfg = compose_train(overrides)
    assert cfg.objective.constraints.r1test.weight == pytest.approx(10.0)
    assert cfg.objective.constraints.r1test.every == 1  # the generic options of every penalty
    validate_train(cfg)
    with pytest.raises(ConfigError, match=r"^objective\.constraints\.r1test\.every=0 is not allowed"):
        validate_train(compose_train([*overrides, "objective.constraints.r1test.every=0"]))

    run_dir = tmp_path / "run"
    train_in_process([*TINY, "steps=4", "log_every=2", *overrides], run_dir)
    tags = _logged_tags(run_dir)
    assert {"Penalty/gp", "Penalty/r1test"} <= tags, sorted(tags)


def _logged_tags(run_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return set(events.Tags()["scalars"])
