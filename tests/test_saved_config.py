"""A saved config never runs code (ganlab.apps.saved_config).

Every command that reads a config back from disk (``ganlab train resume=...`` a checkpoint's,
``ganlab sample`` and ``ganlab eval`` a run directory's ``.hydra/config.yaml``) is given crafted
files, made from a real tiny run: each must stop with one line that names the key and the fix,
before anything is called, and leave a folder outside the run (whose file each payload would
truncate) exactly as it was. The control tests show each payload does run when the config is used
without the check. Most tests run in process; one runs the installed ``ganlab`` command.
"""

from __future__ import annotations

import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from ganlab import cli
from ganlab.apps import CONFIG_DIR
from ganlab.apps import eval as eval_app
from ganlab.apps import sample as sample_app
from ganlab.apps import saved_config
from ganlab.apps.build import build_data, build_networks
from ganlab.apps.saved_config import check_saved_config, load_run_config, shipped_keys
from ganlab.checkpoint import latest_checkpoint, load_checkpoint
from ganlab.errors import ConfigError

from conftest import TINY, compose_train, run_ganlab, tree_digest
from inprocess import train_in_process

RESOLVER = "ganlab_test_truncate"  # a resolver as someone else's code might register one: it truncates a file
SENTINEL = "precious.txt"
KEEP = "keep me\n"


def truncate(path: str) -> str:
    Path(path).write_text("")
    return "x"


OmegaConf.register_new_resolver(RESOLVER, truncate, replace=True)


# ------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class Payload:
    id: str
    entry: str  # the config entry it goes into
    value: Callable[[Path], object]  # what ``<entry>.payload`` (or the key in ``key``) is set to, given the sentinel file
    needle: str  # what the message must name
    fix: str  # what the message must say to do
    key: str = "payload"
    fires: bool = True  # the control test shows it truncates the sentinel when used unchecked


PAYLOADS = [
    # as reported: a nested _target_ inside the dataset entry, which Hydra calls before the dataset
    Payload("nested_target", "dataset", lambda s: {"_target_": "builtins.open", "file": str(s), "mode": "w"},
            "dataset.payload._target_ is refused", "delete dataset.payload._target_"),
    Payload("foreign_target", "model", lambda s: "builtins.open", "model._target_='builtins.open' is refused",
            "set one of them", key="_target_", fires=False),
    Payload("positional_args", "model", lambda s: [str(s), "w"], "model._args_ is refused", "delete model._args_", key="_args_", fires=False),
    Payload("custom_resolver", "model", lambda s: f"${{{RESOLVER}:'{s}'}}", f"calls the resolver {RESOLVER}", "replace it with a plain value"),
    # escaped, it passes a first resolve as text and would run at the next (Hydra's instantiate resolves again)
    Payload("escaped_resolver", "model", lambda s: f"\\${{{RESOLVER}:'{s}'}}", "still an interpolation", "replace it with a plain value"),
    # oc.decode turns text into a node: a _target_ that no key shows
    Payload("decoded_target", "model", lambda s: f"${{oc.decode:'{{_target_: builtins.open, file: \"{s}\", mode: w}}'}}",
            "calls the resolver oc.decode", "replace it with a plain value"),
    # a reference copies a node with a (shipped) _target_ to where ganlab never instantiates one
    Payload("reference_to_a_target", "dataset", lambda s: "${model}", "dataset.payload._target_ is refused",
            "delete dataset.payload._target_", fires=False),
]


def craft(config: dict, payload: Payload, sentinel: Path) -> dict:
    config[payload.entry][payload.key] = payload.value(sentinel)
    return config


def craft_checkpoint(run: Path, payload: Payload, sentinel: Path) -> Path:
    checkpoint = latest_checkpoint(run)
    state = load_checkpoint(checkpoint)
    craft(state["config"], payload, sentinel)
    torch.save(state, checkpoint)
    return checkpoint


def craft_run_config(run: Path, payload: Payload, sentinel: Path) -> Path:
    file = run / ".hydra" / "config.yaml"
    config = OmegaConf.to_container(OmegaConf.load(file), resolve=False)
    OmegaConf.save(OmegaConf.create(craft(config, payload, sentinel)), file)
    return file


def assert_refused(message: str, payload: Payload, source: str) -> None:
    assert message.splitlines() == [message]
    assert message.startswith(f"{source}: "), message
    assert payload.needle in message and payload.fix in message, message


# ------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real tiny run, trained once in process; each test crafts a copy of it."""
    run_dir = tmp_path_factory.mktemp("saved_config") / "run"
    run_dir.mkdir()
    train_in_process([*TINY, "steps=2"], run_dir)
    return run_dir


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder outside the run whose file every payload would truncate."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / SENTINEL).write_text(KEEP)
    return folder


def refused_app(main: Callable, config_name: str, overrides: list[str], capsys) -> str:
    """Call a Hydra app (``ganlab sample``/``eval``) in process; it must exit 2; return its stderr."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(cfg)
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: "), err
    return err.removeprefix("error: ")


# ---------------------------------------------------------------------- per command


@pytest.mark.parametrize("payload", PAYLOADS, ids=[p.id for p in PAYLOADS])
def test_train_resume_refuses_a_crafted_checkpoint(payload: Payload, run: Path, victim: Path):
    checkpoint = craft_checkpoint(run, payload, victim / SENTINEL)
    before, checkpoints = tree_digest(victim), tree_digest(run / "checkpoints")

    with pytest.raises(ConfigError) as refused:
        train_in_process([*TINY, "steps=4", f"resume={run}"], run)

    assert_refused(str(refused.value), payload, f"checkpoint {checkpoint}")
    assert tree_digest(victim) == before
    assert tree_digest(run / "checkpoints") == checkpoints  # no training happened


@pytest.mark.parametrize("payload", PAYLOADS, ids=[p.id for p in PAYLOADS])
def test_sample_refuses_a_crafted_run_config(payload: Payload, run: Path, victim: Path, tmp_path: Path, capsys):
    config_file = craft_run_config(run, payload, victim / SENTINEL)
    before = tree_digest(victim)
    out = tmp_path / "samples.npy"

    message = refused_app(sample_app.main, "sample", [f"run={run}", f"out={out}", "n=4", "device=cpu"], capsys)

    assert_refused(message, payload, f"run config {config_file}")
    assert tree_digest(victim) == before
    assert not out.exists()


@pytest.mark.parametrize("payload", PAYLOADS, ids=[p.id for p in PAYLOADS])
def test_eval_refuses_a_crafted_run_config(payload: Payload, run: Path, victim: Path, capsys):
    config_file = craft_run_config(run, payload, victim / SENTINEL)
    before = tree_digest(victim)

    message = refused_app(eval_app.main, "eval", [f"run={run}", "n=8", "device=cpu"], capsys)

    assert_refused(message, payload, f"run config {config_file}")
    assert tree_digest(victim) == before
    assert not (run / "eval.json").exists()


@pytest.mark.parametrize("payload", [p for p in PAYLOADS if p.fires], ids=[p.id for p in PAYLOADS if p.fires])
def test_each_payload_runs_when_the_config_is_used_unchecked(payload: Payload, finished_run: Path, victim: Path):
    """The control: each crafted config really is armed (as resume built it before the check)."""
    config = OmegaConf.create(craft(load_checkpoint(latest_checkpoint(finished_run))["config"], payload, victim / SENTINEL))
    with pytest.raises(InstantiationException):  # the builder then fails on the extra key: too late
        if payload.entry == "dataset":
            build_data(config.dataset, torch.device("cpu"), 0)
        else:
            build_networks(config.model, (2,), torch.device("cpu"))
    assert (victim / SENTINEL).read_text() == ""


@pytest.mark.cli
def test_the_ganlab_command_refuses_a_crafted_checkpoint_with_one_line(run: Path, victim: Path, tmp_path: Path):
    checkpoint = craft_checkpoint(run, PAYLOADS[0], victim / SENTINEL)
    before = tree_digest(victim)

    result = run_ganlab(["train", *TINY, "steps=4", f"resume={run}"], cwd=tmp_path)

    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.startswith("error: "), result.stderr[-3000:]
    assert_refused(result.stderr.strip().removeprefix("error: "), PAYLOADS[0], f"checkpoint {checkpoint}")
    assert tree_digest(victim) == before


class Truncates:
    """Pickles as a call of ``open(path, "w")``: unpickling it truncates ``path``."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("args", [["--experimental-rerun", "{p}"], ["--exp", "{p}"], ["--experimental-rerun={p}"]])
def test_hydras_pickled_rerun_is_refused(args: list[str], tmp_path: Path, victim: Path, capsys):
    pickled = tmp_path / "config.pickle"
    pickled.write_bytes(pickle.dumps(Truncates(victim / SENTINEL)))
    before = tree_digest(victim)

    status = cli.main(["sample", *(a.format(p=pickled) for a in args)])

    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.splitlines() == [err] and err.startswith("error: --experimental-rerun is not supported"), err
    assert tree_digest(victim) == before
    pickle.loads(pickled.read_bytes())  # the control: the file is armed
    assert (victim / SENTINEL).read_text() == ""


# ------------------------------------------------------------------------- the rules


def test_the_configs_ganlab_writes_pass(finished_run: Path, monkeypatch):
    check_saved_config(load_checkpoint(latest_checkpoint(finished_run))["config"], "checkpoint")
    assert load_run_config(finished_run / ".hydra" / "config.yaml").model.width == 16
    # Hydra writes .hydra/config.yaml unresolved: references to its own keys and read-only resolvers stay
    monkeypatch.setenv("GANLAB_TEST_DATA", "/data")
    cfg = compose_train(["dataset=imagefolder", "dataset.root=${oc.env:GANLAB_TEST_DATA}/faces", "batch_size=8"])
    assert OmegaConf.to_container(cfg.dataset, resolve=False)["batch_size"] == "${batch_size}"
    check_saved_config(cfg, "run config")


def option_names(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def instantiation_keys(node: object, path: str = "") -> set[tuple[str, object]]:
    if isinstance(node, dict):
        found = set()
        for key, value in node.items():
            key_path = f"{path}.{key}" if path else key
            found |= {(key_path, value)} if key.startswith("_") and key.endswith("_") else instantiation_keys(value, key_path)
        return found
    if isinstance(node, list):
        return set().union(*(instantiation_keys(v, f"{path}[{i}]") for i, v in enumerate(node)))
    return set()


def test_the_allow_list_is_exactly_what_ganlab_ships():
    """Composed by Hydra itself, every option of every group names only listed targets, and every listed one is used."""
    composed = set()
    for group in ("dataset", "model", "objective", "objective/loss", "objective/constraints", "experiment"):
        for option in option_names(group):
            cfg = compose_train([f"{group}={option}"])
            composed |= instantiation_keys(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True))
    listed = {(key, value) for key, values in shipped_keys().items() for value in values}
    assert composed == listed
    assert {key for key, _ in listed} >= {"dataset._target_", "model._target_"}


def test_a_new_option_file_extends_the_allow_list(tmp_path: Path, monkeypatch):
    conf = Path(shutil.copytree(CONFIG_DIR, tmp_path / "conf"))
    (conf / "dataset" / "rings.yaml").write_text("defaults:\n  - /toy_schema@_here_\n  - _self_\n\n_target_: mylab.data.Rings\n")
    (conf / "experiment" / "mine.yaml").write_text("# @package _global_\nmodel:\n  _target_: mylab.models.build\n")
    monkeypatch.setattr(saved_config, "CONFIG_DIR", str(conf))

    keys = shipped_keys.__wrapped__()

    assert keys["dataset._target_"] == shipped_keys()["dataset._target_"] | {"mylab.data.Rings"}
    assert keys["model._target_"] == shipped_keys()["model._target_"] | {"mylab.models.build"}


@pytest.mark.parametrize("value, needle", [
    ("${oc.create:{a: 1}}", "calls the resolver oc.create"),
    ("${oc.env:${oc.decode:'1'}}", "calls the resolver oc.decode"),  # nested inside an allowed one
    ("${oc.env:X", "is not a valid interpolation"),
])
def test_resolvers_outside_the_read_only_few_are_refused(value: str, needle: str):
    with pytest.raises(ConfigError, match=r"^checkpoint x: model\.root=.*" + needle):
        check_saved_config({"model": {"_target_": "ganlab.models.mlp.build_mlp", "root": value}}, "checkpoint x")


@pytest.mark.parametrize("config", [None, [1, 2], "text"])
def test_a_checkpoint_without_a_config_mapping_is_refused(config):
    with pytest.raises(ConfigError, match=r"^checkpoint x holds no config"):
        check_saved_config(config, "checkpoint x")


def test_a_key_with_a_newline_stays_on_one_line():
    with pytest.raises(ConfigError) as refused:
        check_saved_config({"model": {"a\nb": {"_target_": "os.system"}}}, "checkpoint x")
    assert str(refused.value).splitlines() == [str(refused.value)]
    assert "model.'a\\nb'._target_ is refused" in str(refused.value)


def test_an_unreadable_run_config_is_one_line(tmp_path: Path):
    file = tmp_path / "config.yaml"
    file.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"^run config {file} is unreadable") as refused:
        load_run_config(file)
    assert str(refused.value).splitlines() == [str(refused.value)]
