"""The HParams entry of a run, read back by TensorBoard's own HParams plugin (in process, over real
event files): the seeds of one experiment form one session group whose metrics are aggregated, the
keys that say which experiment a run is come first, and a resumed run keeps its first entry."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from google.protobuf import json_format
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

from ganlab.config import NOT_GROUPING_KEYS
from ganlab.logger.run import RunLogger
from ganlab.logger.tensorboard import TensorBoard, session_group, session_hparams

CHOICES = {"objective": "js", "objective/loss": "js", "model": "mlp", "dataset": "gaussians25",
           "experiment": None, "hparams_search": None, "hydra/env": "default", "hydra/launcher": "basic"}
CONFIG = {  # a flat config (flatten_hparams) as a run has it, shortened
    "batch_size": 64, "checkpoint_every": 500, "compile": False, "dataset._target_": "ganlab.data.toy.Gaussians25",
    "eval_every": 4, "log_every": 2, "model.width": 8, "objective.name": "js", "objective.optimizer.lr_D": 0.0002,
    "objective.optimizer.lr_G": 0.0002, "resume": "none", "seed": 0, "steps": 4, "threads": 1,
}
SWEEP = ["steps=4", "model.width=8", "threads=1", "eval_every=4", "log_every=2"]  # the same in every job


def write_run(logdir: Path, objective: str, seed: int, w1: float, ended: bool = True) -> None:
    """One run as ``ganlab train -m objective=... seed=...`` writes its HParams entry and its metric;
    ``w1`` is its latest ``Metrics/w1`` (an earlier, other value is logged before it)."""
    config = {**CONFIG, "objective.name": objective, "seed": seed}
    entry, group, leading = session_hparams(config, {**CHOICES, "objective": objective, "objective/loss": objective},
                                            [f"objective={objective}", f"seed={seed}", *SWEEP])
    tb = TensorBoard(logdir / f"objective={objective},seed={seed}")
    tb.hparams(entry, ["Metrics/w1"], group=group, leading=leading)
    tb.scalars(2, {"Metrics/w1": 100.0, "Loss/D": 1.0})
    tb.scalars(4, {"Metrics/w1": w1, "Loss/D": 1.0})
    if ended:
        tb.session_end()
    tb.close()


class HParamsPlugin:
    """TensorBoard's HParams plugin backend over a log directory, as ``tensorboard --logdir`` serves
    it (``/data/plugin/hparams/experiment`` and ``/session_groups``), without a server."""

    def __init__(self, logdir: Path):
        multiplexer = plugin_event_multiplexer.EventMultiplexer()
        multiplexer.AddRunsFromDirectory(str(logdir))
        multiplexer.Reload()
        provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
        self.backend = backend_context.Context(base_plugin.TBContext(data_provider=provider, multiplexer=multiplexer, logdir=str(logdir)))
        self.ctx = context.RequestContext()

    def experiment(self) -> api_pb2.Experiment:
        request = api_pb2.GetExperimentRequest(hparams_limit=1000)  # the HParams tab's request (its _maxNumHparamsToLoad)
        return get_experiment.Handler(self.ctx, self.backend, "", request).run()

    def session_groups(self, aggregation: str = "AGGREGATION_AVG") -> dict[str, api_pb2.SessionGroup]:
        request = json_format.ParseDict({
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "startIndex": 0, "sliceSize": 100, "aggregationType": aggregation, "aggregationMetric": {"tag": "Metrics/w1"},
        }, api_pb2.ListSessionGroupsRequest())
        response = list_session_groups.Handler(self.ctx, self.backend, "", request).run()
        return {group.name: group for group in response.session_groups}


def metric(group: api_pb2.SessionGroup, tag: str = "Metrics/w1") -> float:
    return {m.name.tag: m.value for m in group.metric_values}[tag]


def test_the_group_name_is_the_overrides_without_seed_and_schedule_keys_in_sorted_order():
    assert session_group(["objective=js", "seed=2"]) == "objective=js"
    assert session_group(["seed=1", "objective=wgan_gp", "steps=4", "model.width=8", "resume=auto"]) == "model.width=8,objective=wgan_gp"
    assert session_group(["seed=0", "hydra.verbose=true"]) == session_group([]) == "defaults"  # not "": that would make each seed its own group


def test_the_entry_leaves_out_the_keys_that_differ_between_seeds_and_leads_with_the_experiment_keys():
    entry, group, leading = session_hparams(CONFIG, CHOICES, ["objective=js", "seed=0", *SWEEP, "objective.optimizer.lr_D=0.0002"])
    assert group == "model.width=8,objective.optimizer.lr_D=0.0002,objective=js"
    assert entry["group"] == group
    assert {k: entry[k] for k in ("objective", "objective/loss", "model", "dataset")} == {"objective": "js", "objective/loss": "js", "model": "mlp", "dataset": "gaussians25"}
    assert not (NOT_GROUPING_KEYS | {"experiment", "hydra/env"}) & set(entry)
    assert leading == ["dataset", "group", "model", "model.width", "objective", "objective.optimizer.lr_D", "objective/loss"]
    # a node overridden whole leads with its leaves
    _, _, leading = session_hparams(CONFIG, {}, ["+objective.optimizer={lr_D:0.1,lr_G:0.1}"])
    assert leading == ["group", "objective.optimizer.lr_D", "objective.optimizer.lr_G"]


def test_tensorboard_averages_the_seeds_of_a_group_and_lists_the_experiment_keys_first(tmp_path):
    write_run(tmp_path, "js", 0, w1=1.0)
    write_run(tmp_path, "js", 1, w1=3.0, ended=False)
    write_run(tmp_path, "wgan_gp", 0, w1=0.5)
    plugin = HParamsPlugin(tmp_path)

    groups = plugin.session_groups()
    assert sorted(groups) == ["model.width=8,objective=js", "model.width=8,objective=wgan_gp"]
    js = groups["model.width=8,objective=js"]
    assert [s.name for s in js.sessions] == ["objective=js,seed=0", "objective=js,seed=1"]
    assert [s.status for s in js.sessions] == [api_pb2.STATUS_SUCCESS, api_pb2.STATUS_UNKNOWN]  # the second did not end
    assert metric(js) == pytest.approx(2.0)  # the mean of the two seeds' latest values
    assert [m.name.tag for m in js.metric_values] == ["Metrics/w1"]  # the experiment's metrics, not every scalar (Loss/D)
    assert metric(plugin.session_groups("AGGREGATION_MAX")["model.width=8,objective=js"]) == pytest.approx(3.0)
    assert metric(groups["model.width=8,objective=wgan_gp"]) == pytest.approx(0.5)
    assert js.hparams["objective"].string_value == "js" and js.hparams["group"].string_value == js.name
    assert "seed" not in js.hparams

    experiment = plugin.experiment()
    columns = [(h.name, h.differs) for h in experiment.hparam_infos]
    leading = ["dataset", "group", "model", "model.width", "objective", "objective/loss"]
    assert columns[:len(leading)] == [(name, True) for name in leading]
    assert columns[len(leading):] == [(name, False) for name in sorted(set(CONFIG) - NOT_GROUPING_KEYS - {"model.width"})]
    assert [m.name.tag for m in experiment.metric_infos] == ["Metrics/w1"]  # not every scalar tag (Loss/D)


def test_a_resumed_run_keeps_its_first_entry_and_ends_once_it_completes(tmp_path):
    evaluator = SimpleNamespace(metric_names=["Metrics/w1"])
    first = RunLogger(tmp_path / "run", evaluator, progress=None, checkpoint_meta={}, device="cpu")
    first.start(CONFIG, CHOICES, ["objective=js", "seed=0"])
    first.finish(None)  # stopped before its last step
    resumed = RunLogger(tmp_path / "run", evaluator, progress=None, checkpoint_meta={}, device="cpu", start_step=4)
    resumed.start({**CONFIG, "objective.name": "other"}, {}, ["resume=auto"])  # what a resume's own command line says
    resumed.tb.scalars(4, {"Metrics/w1": 0.25})
    resumed.finish({"Metrics/w1": 0.25})

    groups = HParamsPlugin(tmp_path).session_groups()
    assert list(groups) == ["objective=js"]
    (session,) = groups["objective=js"].sessions
    assert session.status == api_pb2.STATUS_SUCCESS
    assert groups["objective=js"].hparams["objective.name"].string_value == "js"
    assert metric(groups["objective=js"]) == pytest.approx(0.25)


def test_a_training_run_registers_its_group_and_config_group_choices(tmp_path):
    from inprocess import train_in_process

    train_in_process(["objective=wgan_clip", "seed=3", "steps=2", "model.width=8", "batch_size=16", "log_every=1",
                      "sample_every=2", "eval_every=2", "eval_samples=64", "threads=1"], tmp_path / "run")
    name = "batch_size=16,eval_samples=64,model.width=8,objective=wgan_clip"  # seed and the schedule keys left out
    groups = HParamsPlugin(tmp_path).session_groups()
    assert list(groups) == [name]
    group = groups[name]
    assert [s.status for s in group.sessions] == [api_pb2.STATUS_SUCCESS]
    assert {k: group.hparams[k].string_value for k in ("group", "objective", "model", "dataset")} == {
        "group": name, "objective": "wgan_clip", "model": "mlp", "dataset": "gaussians25"}
    assert "seed" not in group.hparams and group.hparams["model.width"].number_value == 8
    assert "Metrics/modes_covered" in {m.name.tag for m in group.metric_values}
