"""ganlab compare end to end on a real tiny sweep (2 objectives x 2 seeds, extended by a seed) with a failed job."""

import json

import pytest

from conftest import TINY, run_ganlab
from inprocess import ganlab_in_process

SHORT = [a for a in TINY if not a.startswith(("steps=", "sample_every=", "eval_every=", "log_every="))] + ["steps=8", "log_every=2", "eval_every=4", "sample_every=8"]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """outputs/multirun/sweep: objective=js,wgan_gp x seed=0,1, then resumed with seed 2 added and 2 more steps;
    outputs/multirun/broken: one job that fails (lr_D=-1)."""
    root = tmp_path_factory.mktemp("compare_e2e")
    monkeypatch = pytest.MonkeyPatch()
    try:
        assert ganlab_in_process(["train", "-m", "objective=js,wgan_gp", "seed=0,1", *SHORT, "hydra.sweep.dir=outputs/multirun/sweep"], root, monkeypatch) == 0
        # the sweep extended as the README says: one more seed, and the first jobs trained longer
        assert ganlab_in_process(["train", "-m", "objective=js,wgan_gp", "seed=0,1,2", *SHORT, "steps=10", "resume=auto", "hydra.sweep.dir=outputs/multirun/sweep"], root, monkeypatch) == 0
        assert ganlab_in_process(["train", "-m", "objective.optimizer.lr_D=-1", *SHORT, "hydra.sweep.dir=outputs/multirun/broken"], root, monkeypatch) == 1
    finally:
        monkeypatch.undo()
    return root


@pytest.mark.cli
def test_the_installed_command_compares_a_real_sweep(sweeps):
    result = run_ganlab(["compare", "outputs/multirun", "out=cmp"], cwd=sweeps)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Metrics/w1_ratio (lower is better), best first by IQM" in result.stdout
    assert "objective=js" in result.stdout and "objective=wgan_gp" in result.stdout
    assert "failed runs (left out)" in result.stdout and "objective.optimizer.lr_D=-1" in result.stdout
    assert "tensorboard --logdir cmp" in result.stdout

    out = sweeps / "cmp"
    summary = json.loads((out / "summary.json").read_text())
    assert sorted((g["label"], len(g["runs"])) for g in summary["groups"]) == [("objective=js", 3), ("objective=wgan_gp", 3)]
    assert len(summary["failed"]) == 1 and "lr_D" in summary["failed"][0]["reason"]
    for group in summary["groups"]:  # the final metrics are the runs' own, from metrics.json
        finals = [json.loads((sweeps / "outputs" / "multirun" / "sweep" / run["path"].rsplit("/", 1)[1] / "metrics.json").read_text())["final"]["Metrics/w1_ratio"] for run in group["runs"]]
        assert group["metrics"]["Metrics/w1_ratio"]["mean"] == pytest.approx(sum(finals) / 3)
    assert summary["command"] == "ganlab compare outputs/multirun out=cmp"
    assert "Loss_D.png" in " ".join(summary["figures"])
    assert all((out / figure).is_file() for figure in summary["figures"])
    assert {p.name for p in (out / "tensorboard").iterdir()} == {"objective=js", "objective=wgan_gp"}
    report = (out / "report.md").read_text()
    assert "## Probability of improvement on Metrics/w1_ratio" in report and "![" in report


def test_a_second_comparison_into_the_same_folder_is_refused_and_keeps_the_first(sweeps, monkeypatch, capsys):
    out = sweeps / "cmp_twice"
    assert ganlab_in_process(["compare", "outputs/multirun/sweep", f"out={out}", "tags=[]"], sweeps, monkeypatch) == 0
    before = (out / "summary.json").read_text()
    assert ganlab_in_process(["compare", "outputs/multirun/sweep", f"out={out}", "tags=[]"], sweeps, monkeypatch) == 2
    assert "holds an earlier comparison: choose another out=" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == before


def test_a_list_option_takes_one_name_without_brackets(sweeps, monkeypatch, capsys):
    out = sweeps / "cmp_one_name"
    assert ganlab_in_process(["compare", "outputs/multirun/sweep", f"out={out}", "group_by=objective", "tags=Loss/D"], sweeps, monkeypatch) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(g["label"] for g in summary["groups"]) == ["objective=js", "objective=wgan_gp"]
    assert summary["figures"] == ["curves/Loss_D.png"]
    assert "out: " + str(out) in (out / "compare.yaml").read_text()  # resolved, as written


def test_no_directories_is_a_one_line_error(sweeps, monkeypatch, capsys):
    assert ganlab_in_process(["compare"], sweeps, monkeypatch) == 2
    assert "no directories to compare: ganlab compare <sweep or run directory>" in capsys.readouterr().err
