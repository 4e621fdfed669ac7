"""Config that ganlab reads back from disk is data, never code: the one check every command runs on it.

A checkpoint's ``config`` (``ganlab train resume=...``) and a run directory's
``.hydra/config.yaml`` (``ganlab sample``, ``ganlab eval``) are handed to Hydra's ``instantiate``,
which calls whatever a ``_target_`` names, at any depth. Loading the checkpoint with
``weights_only=True`` does not help with that: a file from someone else could name
``builtins.open`` or ``shutil.rmtree``. So before anything in a saved config is used,
:func:`check_saved_config` refuses it, with one line (:class:`ganlab.errors.ConfigError`), unless:

- **Hydra's instantiation keys** (``_target_``, ``_partial_``, ``_args_``, ``_recursive_``,
  ``_convert_``, any ``_name_``) appear only where ganlab's own config puts them, with a value it
  gives them there. Today that is ``dataset._target_``, ``model._target_``,
  ``objective.loss._target_`` and ``objective.constraints.<name>._target_``, each one of the
  components that ``conf/`` ships. The allow-list is not written by hand: :func:`shipped_keys`
  reads it from the YAML tree ``conf/`` and the ConfigStore schemas in :mod:`ganlab.config`, so a
  new option file extends it. A ``_target_`` nested anywhere else, ``_args_`` (positional
  arguments) and the other keys are refused, since ganlab never writes them.
- **Interpolations** refer to the config's own keys (``${batch_size}``: Hydra writes
  ``.hydra/config.yaml`` unresolved) or call only the read-only resolvers in
  :data:`SAFE_RESOLVERS`. Every other resolver is refused before it runs: ``oc.decode`` and
  ``oc.create`` build config nodes out of text (a way to smuggle in a ``_target_``), and a
  custom resolver is code of whoever registered it. ``oc.env`` is allowed because a user may
  have typed ``dataset.root=${oc.env:DATA}``; it only reads the environment of the machine that
  loads the file.
- **After resolving**, the config still obeys the first rule (a ``${model}`` reference cannot
  copy a ``_target_`` node somewhere else) and holds no interpolation any more: an escaped
  ``\\${...}`` turns into a live one when resolved and would be run by a later resolve.

Hydra's own ``--experimental-rerun`` flag loads a pickled config (which can run code on loading);
:mod:`ganlab.cli` refuses it, since ganlab never writes one.

Typical use::

    check_saved_config(state["config"], f"checkpoint {path}")   # raises ConfigError
    config = load_run_config(run_dir / ".hydra" / "config.yaml")  # the same, for a YAML file
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from hydra.core.config_store import ConfigNode, ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import GrammarParseError
from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser
from omegaconf.grammar_parser import parse

from ganlab.apps import CONFIG_DIR
from ganlab.config import register_configs
from ganlab.errors import ConfigError, first_line

# Hydra's instantiate reads keys of this form (_target_, _partial_, _args_, _recursive_, _convert_);
# the whole form is covered so that a key a later Hydra adds is refused too.
INSTANTIATION_KEY = re.compile(r"^_[A-Za-z0-9]+_$")

# Resolvers that only look a value up; every other one is refused before it runs (module docstring).
SAFE_RESOLVERS = (
    "oc.env",  # an environment variable, e.g. dataset.root=${oc.env:DATA}
    "oc.select",  # another key of the config, with a default
    "hydra",  # Hydra's own settings, e.g. ${hydra:runtime.cwd}
    "now",  # the date and time, e.g. in a path
)

MAX_SHOWN = 80  # characters of a refused value quoted in the message: it stays one line


# ------------------------------------------------------------------ the allow-list


def _package_of(text: str, group: str) -> str:
    """The package a ``conf/<group>/x.yaml`` writes into, by Hydra's rules: its ``# @package``
    header (read, as Hydra reads it, from the leading ``# @...`` lines), else its group."""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if not re.match(r"^#\s*@", line):
            break
        words = line.lstrip("#").split()
        if words[0] == "@package" and len(words) == 2:
            package = words[1].replace("_group_", group)
            return "" if package == "_global_" else package.removeprefix("_global_.")
    return group


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any, bool]]:
    """Each leaf of ``node`` as (dotted path, value, whether its key is an instantiation key);
    list items are ``[i]``. The value of an instantiation key is a leaf, whatever it holds."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            name = str(key) if str(key).isprintable() else repr(key)  # a key in a message stays on one line
            key_path = f"{path}.{name}" if path else name
            if isinstance(key, str) and INSTANTIATION_KEY.match(key):
                yield key_path, value, True
            else:
                yield from _leaves(value, key_path)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _leaves(value, f"{path}[{i}]")
    else:
        yield path, node, False


def _schema_refs(defaults: list, package: str) -> Iterator[tuple[ConfigNode, str]]:
    """The ConfigStore schemas a defaults list pulls in (``- /mlp_schema@_here_``), each with the
    package it lands in (Hydra: ``_here_`` or none = the file's own, ``_global_...`` = absolute,
    else relative to the file's)."""
    store = ConfigStore.instance().repo
    for entry in defaults:
        if not isinstance(entry, str):
            continue  # {group: option}: each option file is read on its own
        name, _, at = entry.partition("@")
        node = store.get(f"{name.lstrip('/')}.yaml")
        if not isinstance(node, ConfigNode):
            continue  # _self_
        if at in ("", "_here_"):
            yield node, package
        elif at.startswith("_global_"):
            yield node, at.removeprefix("_global_").lstrip(".")
        else:
            yield node, f"{package}.{at}" if package else at


@functools.cache
def shipped_keys() -> dict[str, frozenset[Any]]:
    """Where ganlab's own config sets an instantiation key, and to what: the allow-list.

    Returns ``{"dataset._target_": {"ganlab.data.toy.Gaussians8", ...}, "model._target_": {...}}``,
    read from every YAML file under ``conf/`` (each at its package, with the ConfigStore schema
    it builds on) and from the ConfigStore entries inside config groups. The ``hydra`` section is
    left out: Hydra runs its callbacks from ganlab's own files, and a saved config never holds it.
    """
    register_configs()
    found: dict[str, set[Any]] = {}

    def add(node: Any, package: str) -> None:
        tree = OmegaConf.to_container(node, resolve=False, enum_to_str=True) if isinstance(node, (DictConfig, ListConfig)) else node
        if not isinstance(tree, dict):
            return
        if package == "":
            tree = {k: v for k, v in tree.items() if k != "hydra"}
        for key_path, value, special in _leaves(tree, package):
            if special and value != "???":  # a schema's MISSING _target_: the option file sets it
                found.setdefault(key_path, set()).add(value)

    root = Path(CONFIG_DIR)
    for file in sorted(root.rglob("*.yaml")):
        group = file.parent.relative_to(root).as_posix()
        group = "" if group == "." else group.replace("/", ".")
        if group.split(".")[0] == "hydra":
            continue
        text = file.read_text()
        package = _package_of(text, group)
        if package.split(".")[0] == "hydra":
            continue
        tree = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}  # plain YAML: 3x faster than OmegaConf's
        for schema, placed in _schema_refs(tree.pop("defaults", []), package):
            add(schema.node, placed)
        add(tree, package)

    def store_groups(repo: dict, group: str) -> None:
        for name, entry in repo.items():
            if isinstance(entry, dict) and f"{group}{name}".split("/")[0] != "hydra":
                store_groups(entry, f"{group}{name}/")
            elif isinstance(entry, ConfigNode) and group:
                add(entry.node, entry.package or group.rstrip("/").replace("/", "."))

    store_groups(ConfigStore.instance().repo, "")
    return {key: frozenset(values) for key, values in found.items()}


# ------------------------------------------------------------------------ the check


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def _resolvers_in(value: str) -> list[str]:
    """The names of the resolvers an interpolation string calls, nested calls included."""
    names, stack = [], [parse(value)]
    while stack:
        ctx = stack.pop()
        if isinstance(ctx, OmegaConfGrammarParser.InterpolationResolverContext):
            names.append(ctx.resolverName().getText())
        stack.extend(getattr(ctx, "children", None) or ())
    return names


def _check_tree(tree: Any, source: str, resolved: bool) -> None:
    allowed = shipped_keys()
    for key_path, value, special in _leaves(tree):
        if special:
            if key_path not in allowed:
                raise ConfigError(
                    f"{source}: {key_path} is refused: a saved config may hold Hydra's instantiation keys only where ganlab's own "
                    f"config puts them ({', '.join(sorted(allowed))}), so that loading it cannot call other code; "
                    f"delete {key_path} from it, or start a new run from the command line"
                )
            try:
                known = value in allowed[key_path]
            except TypeError:  # unhashable: a list or mapping, never what ganlab writes
                known = False
            if not known:
                raise ConfigError(
                    f"{source}: {key_path}={_show(value)} is refused: a saved config may name only ganlab's own components "
                    f"({' | '.join(sorted(map(str, allowed[key_path])))}); set one of them, or start a new run from the command line"
                )
        elif isinstance(value, str) and "${" in value:
            if resolved:
                raise ConfigError(
                    f"{source}: {key_path}={_show(value)} is refused: it is still an interpolation after the config was resolved "
                    "(it was escaped), and a later step would resolve it; replace it with a plain value"
                )
            try:
                resolvers = _resolvers_in(value)
            except GrammarParseError as err:
                raise ConfigError(f"{source}: {key_path}={_show(value)} is not a valid interpolation ({first_line(err)}); replace it with a plain value") from err
            unsafe = [name for name in resolvers if name not in SAFE_RESOLVERS]
            if unsafe:
                raise ConfigError(
                    f"{source}: {key_path}={_show(value)} is refused: it calls the resolver {unsafe[0]}, and a saved config may call only "
                    f"{', '.join(SAFE_RESOLVERS)} (or refer to its own keys, ${{key}}); replace it with a plain value"
                )


def check_saved_config(config: Any, source: str) -> None:
    """Refuse a config read back from disk unless it names only ganlab's own components.

    ``config`` is a checkpoint's ``config`` entry (plain dicts and lists) or a loaded
    ``.hydra/config.yaml`` (a DictConfig); ``source`` names where it came from, e.g.
    ``"checkpoint outputs/runs/x/checkpoints/step_0001000.pt"``, and starts the message.
    Nothing in ``config`` is instantiated and no resolver outside :data:`SAFE_RESOLVERS` runs.

    Raises:
        ConfigError: one line naming the offending key and value and the fix; the rules are in
            the module docstring.
    """
    if isinstance(config, DictConfig):
        raw = OmegaConf.to_container(config, resolve=False, enum_to_str=True)
    elif isinstance(config, Mapping):
        raw = config
    else:
        raise ConfigError(f"{source} holds no config (a mapping of keys): it was not written by ganlab train")
    _check_tree(raw, source, resolved=False)
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    except Exception as err:  # a file from elsewhere can fail to resolve in any way; only the safe resolvers can run here
        raise ConfigError(f"{source}: the saved config cannot be resolved ({first_line(err)}); it was not written by ganlab train, or was edited") from err
    _check_tree(resolved, source, resolved=True)


def load_run_config(path: str | Path) -> DictConfig:
    """A run directory's ``.hydra/config.yaml``, after :func:`check_saved_config`.

    Raises:
        ConfigError: the file cannot be read or parsed as YAML, or the check refuses it.
    """
    path = Path(path)
    try:
        config = OmegaConf.load(path)  # YAML's safe loader: builds only plain data
    except Exception as err:  # unreadable, or not YAML
        raise ConfigError(f"run config {path} is unreadable ({first_line(err)}): it was not written by ganlab train, or was edited") from err
    check_saved_config(config, f"run config {path}")
    return config
