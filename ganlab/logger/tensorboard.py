"""TensorBoard output of one run: scalars, images and the HParams entry, in the run directory.

Event files go straight into the run directory (no sub-folder), so ``tensorboard --logdir
<sweep dir>`` names each run after its job directory, e.g. ``objective=wgan_gp,seed=1``.

The HParams entry (:func:`session_hparams`, :meth:`TensorBoard.hparams`) puts the seeds of one
experiment into one *session group*, whose metrics TensorBoard's HParams tab aggregates (average,
median, min or max, the tab's choice), and puts the keys that say which experiment a run is first.
How TensorBoard 2.21's HParams plugin reads it (``tensorboard/plugins/hparams``):

* sessions whose ``SessionStartInfo.group_name`` is equal form one group; an empty name makes a
  group of the session alone (``list_session_groups.Handler._add_session``). A group shows the
  hparams of its first session (by run name), so the keys that may differ between the seeds of
  one experiment (:data:`ganlab.config.NOT_GROUPING_KEYS`: ``seed``, ``steps``, the intervals,
  ``resume``, ``threads``, ...) are left out of the entry: every value shown holds for the whole group.
* when any run holds an experiment summary, the plugin takes the first one it finds, whole, for
  the columns (``backend_context.Context._find_experiment_tag``); only when none does, it builds
  them from every run's hparams and computes ``differs`` itself, but then every scalar tag becomes
  a metric column (``Critic/D_fake``, ``CriticGrad/...`` before ``Metrics/*``). Each run writes
  one, with ``Metrics/*`` as the metrics; its columns are the run's own keys, so a key that only
  other objectives have (``objective.constraints.gp.weight`` beside a ``js`` run) may be missing.
* it orders the columns by (not ``differs``, name) (``backend_context._sort_and_reduce_to_hparams_limit``),
  and the HParams tab shows the first 5 hparam and the first 5 metric columns, the rest behind
  check boxes (the Time Series runs table shows none until chosen, tagging the ``differs`` ones).
  A run cannot see the other runs, so ``differs`` marks the keys that say which experiment it is:
  ``group``, the config-group choices and the keys of its grouping overrides.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2
from torch.utils.tensorboard import SummaryWriter

from ganlab.config import NOT_GROUPING_KEYS, grouping_overrides

NO_OVERRIDES_GROUP = "defaults"  # the group of runs without grouping overrides; no override is without "="
GROUP_KEY = "group"  # the hparam that shows the group name in the table


def wait_past_newest_events_file(log_dir: Path) -> None:
    """Sleep, if need be, until the clock's second is past that of ``log_dir``'s newest event file.

    TensorBoard (and ganlab.compare.scalars) read a run's event files in name order, and a name is
    ``events.out.tfevents.<seconds, 10 digits>.<host>.<pid>.<a counter of the process>``
    (tensorboard/summary/writer/event_file_writer.py): two files that one process opens in the same
    second sort by the counter as text, ``.10`` before ``.9``, so a resume or a rollback in the same
    process and second would be read before the events it follows, and its purge would drop them.
    A new file in a later second sorts after every earlier one. Costs at most a second, only then; a
    file from the future (a run copied from a machine whose clock is ahead) is not waited for.
    """
    seconds = [p.name.split(".")[3] for p in log_dir.glob("events.out.tfevents.*")]
    delay = max((int(s) for s in seconds if s.isdigit()), default=0) + 1 - time.time()
    if 0 < delay <= 1:
        time.sleep(delay)


class TensorBoard:
    def __init__(self, log_dir: str | Path, purge_step: int | None = None):
        # purge_step: events at and after this step, logged by an earlier process, are hidden
        # (a resumed or rolled-back run logs them again).
        wait_past_newest_events_file(Path(log_dir))
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def histograms(self, step: int, values: dict[str, torch.Tensor]) -> None:
        """``values``: tag -> a tensor of any shape (its values are binned; non-finite ones are dropped)."""
        for tag, value in values.items():
            value = value.detach().float().flatten().cpu()
            self.writer.add_histogram(tag, value[torch.isfinite(value)], step)

    def image(self, tag: str, step: int, image: torch.Tensor) -> None:
        """``image``: a uint8 (3, H, W) tensor."""
        self.writer.add_image(tag, image, step, dataformats="CHW")

    def hparams(self, hparams: dict[str, Any], metric_tags: list[str], group: str = "", leading: list[str] = ()) -> None:
        """Register the run in the HParams view, in this run's own event file (``SummaryWriter.add_hparams``
        would make a separate sub-run): an experiment summary (the columns: ``leading``, marked as
        differing, then the other keys of ``hparams``, each in name order; ``metric_tags`` as the
        metrics, whose latest logged values TensorBoard shows) and the session start with ``group``
        as its group name (an empty one makes the run a group of its own).

        ``hparams``: name -> bool, int, float or str (:func:`flatten_hparams`). With TensorBoard's
        own summary API (``tensorboard.plugins.hparams``), as torch's ``hparams()`` has no group name.
        Only the first entry of a run counts (TensorBoard keeps a tag's first metadata), so a resumed
        run does not write another. The session's status is written by :meth:`session_end`."""
        self.writer.file_writer.add_summary(hparams_experiment(hparams, metric_tags, leading))
        self.writer.file_writer.add_summary(summary_v2.hparams_pb(hparams, trial_id=group))

    def session_end(self) -> None:
        """Mark the HParams session as completed (status success); a run that stopped before its
        last step writes none (status unknown), so its resumed process can."""
        info = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
        self.writer.file_writer.add_summary(_hparams_summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=info)))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def flatten_hparams(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config into ``{"objective.lr_G": 1e-4, ...}`` with TensorBoard-legal values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif value is None:
            flat[name] = "none"
        else:
            flat[name] = str(value)
    return flat


def session_group(overrides: list[str]) -> str:
    """A run's HParams session group: its task overrides without :data:`NOT_GROUPING_KEYS`, sorted and
    joined with ``,`` (``"objective=js"`` for ``objective=js seed=2``), or :data:`NO_OVERRIDES_GROUP`
    when none is left, so that the seeds of a run with the default config share a group too."""
    return ",".join(sorted(grouping_overrides(overrides))) or NO_OVERRIDES_GROUP


def session_hparams(config: dict[str, Any], choices: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], str, list[str]]:
    """A run's HParams entry: (hparams, group name, leading keys), for :meth:`TensorBoard.hparams`.

    ``config``: the flat config (:func:`flatten_hparams`); ``choices``: Hydra's config-group choices
    (``hydra.runtime.choices``: ``{"objective": "wgan_gp", "model": "mlp", "hydra/env": "default", ...}``);
    ``overrides``: the run's task overrides (``hydra.overrides.task``). hparams: ``config`` without
    :data:`NOT_GROUPING_KEYS`, the choices (not ``hydra/*``, not unset ones) and :data:`GROUP_KEY`;
    the group name: :func:`session_group`; leading: :data:`GROUP_KEY`, the choices and the keys set
    by the grouping overrides (a leaf, a config group's choice, or the leaves below a node set
    whole), in name order.
    """
    group = session_group(overrides)
    hparams = {key: value for key, value in config.items() if key not in NOT_GROUPING_KEYS}
    chosen = flatten_hparams({k: v for k, v in choices.items() if v is not None and not k.startswith("hydra/") and k not in hparams})
    hparams.update(chosen)
    hparams[GROUP_KEY] = group
    leading = {GROUP_KEY, *chosen}
    for override in grouping_overrides(overrides):
        key = override.split("=", 1)[0].lstrip("+~")
        if key in hparams:  # a leaf, or a config group (its choice)
            leading.add(key)
        else:  # a node set whole (objective.optimizer={...}): its leaves
            leading.update(leaf for leaf in hparams if leaf.startswith(f"{key}."))
    return hparams, group, sorted(leading)


def hparams_experiment(hparams: dict[str, Any], metric_tags: list[str], leading: list[str] = ()) -> Summary:
    """The HParams experiment summary: a column per key of ``hparams``, ``leading`` first (marked
    ``differs``, which the plugin sorts first), then the rest, each in name order; a metric per tag.

    Built from the plugin's protos (``api_pb2``) because ``summary_v2.hparams_config_pb`` sets no
    ``differs`` and, without a domain, no type; no domain is set, as a run knows only its own value
    (a discrete domain would offer only that value in the tab's filter)."""
    types = {bool: api_pb2.DATA_TYPE_BOOL, int: api_pb2.DATA_TYPE_FLOAT64, float: api_pb2.DATA_TYPE_FLOAT64, str: api_pb2.DATA_TYPE_STRING}
    lead = set(leading)
    order = sorted(hparams, key=lambda key: (key not in lead, key))
    experiment = api_pb2.Experiment(
        time_created_secs=time.time(),
        hparam_infos=[api_pb2.HParamInfo(name=key, type=types[type(hparams[key])], differs=key in lead) for key in order],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metric_tags],
    )
    return _hparams_summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment))


def _hparams_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    """A summary holding HParams plugin data, as ``summary_v2`` builds its own (``_summary_pb``)."""
    summary = Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)
    return summary
