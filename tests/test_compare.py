"""ganlab compare on synthetic run directories with known values: finding, grouping, ranking, the files it writes."""

import csv
import json
from pathlib import Path

import pytest
import yaml

from ganlab.cli import directory_arguments
from ganlab.compare import report
from ganlab.compare.comparison import Settings, compare
from ganlab.compare.grouping import group_runs
from ganlab.compare.runs import DIVERGED, FAILED, FINISHED, UNFINISHED, find_runs
from ganlab.errors import ConfigError

LOSSES = {"js": "ganlab.objectives.losses.js.JS", "wgan_gp": "ganlab.objectives.losses.wasserstein.Wasserstein"}
FAST = Settings(resamples=1000)


def write_run(path: Path, objective="wgan_gp", seed=0, w1_ratio=1.0, *, dataset="gaussians25", lr_D=1e-4, steps=100,
              status=FINISHED, overrides=None, modes=25.0) -> Path:
    """A run directory as ganlab train writes it: .hydra/{config,hydra,overrides}.yaml, metrics.json or failed.json."""
    hydra_dir = path / ".hydra"
    hydra_dir.mkdir(parents=True)
    config = {
        "dataset": {"_target_": f"ganlab.data.toy.{dataset}"},
        "model": {"_target_": "ganlab.models.mlp.build_mlp", "width": 128},
        "objective": {"name": objective, "loss": {"_target_": LOSSES[objective]}, "constraints": {"gp": {"weight": 0.1}} if objective == "wgan_gp" else {},
                      "optimizer": {"lr_D": lr_D, "betas": [0.5, 0.9]}},
        "seed": seed, "steps": steps, "log_every": 10, "eval_every": steps, "resume": None, "threads": 0,
    }
    choices = {"objective": objective, "objective/loss": "wasserstein" if objective == "wgan_gp" else "js", "dataset": dataset,
               "model": "mlp", "experiment": None, "hydra/launcher": "basic"}
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (hydra_dir / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"name": "train"}, "runtime": {"choices": choices}}}))
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides if overrides is not None else [f"objective={objective}", f"seed={seed}"]))
    final = {"Metrics/w1_ratio": w1_ratio, "Metrics/modes_covered": modes, "Metrics/w1_real_baseline": 0.05}
    history = [{"step": steps // 2, **final}]
    if status == FINISHED:
        (path / "metrics.json").write_text(json.dumps({"history": history + [{"step": steps, **final}], "final": final}))
    elif status == UNFINISHED:
        (path / "metrics.json").write_text(json.dumps({"history": history}))
    elif status == DIVERGED:
        (path / "metrics.json").write_text(json.dumps({"history": history}))
        (path / "failed.json").write_text(json.dumps({"overrides": [], "error": "Diverged", "message": "Loss/D is nan at step 60"}))
    else:
        (path / "failed.json").write_text(json.dumps({"overrides": [], "error": "ConfigError", "message": "lr_D=-1 is not allowed"}))
    return path


@pytest.fixture
def sweep(tmp_path):
    """2 objectives x 3 seeds, with known w1_ratio; a failed job and an unfinished one."""
    root = tmp_path / "sweep"
    for seed, (js, gp) in enumerate([(3.0, 1.0), (4.0, 2.0), (8.0, 1.5)]):
        write_run(root / f"objective=js,seed={seed}", "js", seed, js, modes=20.0 + seed)
        write_run(root / f"objective=wgan_gp,seed={seed}", "wgan_gp", seed, gp)
    write_run(root / "objective=js,seed=3", "js", 3, status=FAILED)
    write_run(root / "objective=wgan_gp,seed=3", "wgan_gp", 3, status=UNFINISHED)
    return root


def test_finds_every_run_once_and_tells_their_state_apart(sweep):
    runs = find_runs([sweep, sweep / "objective=js,seed=0"])
    assert len(runs) == 8
    states = {run.path.name: run.status for run in runs}
    assert states["objective=js,seed=3"] == FAILED and states["objective=wgan_gp,seed=3"] == UNFINISHED
    assert sum(s == FINISHED for s in states.values()) == 6
    failed = next(run for run in runs if run.status == FAILED)
    assert failed.reason == "ConfigError: lr_D=-1 is not allowed"
    unfinished = next(run for run in runs if run.status == UNFINISHED)
    assert unfinished.reason == "no final metrics (last evaluation at step 50 of 100 steps)"


def test_a_comparison_output_and_other_apps_are_not_runs(sweep, tmp_path):
    compare_out = tmp_path / "sweep" / "compare"
    (compare_out / ".hydra").mkdir(parents=True)
    (compare_out / ".hydra" / "config.yaml").write_text("runs: []\n")
    (compare_out / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"name": "compare"}}}))
    assert len(find_runs([sweep])) == 8


def test_missing_or_empty_directories_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such directory"):
        find_runs([tmp_path / "nowhere"])
    with pytest.raises(ConfigError, match="no training runs below"):
        find_runs([tmp_path])


def test_groups_by_what_differs_without_the_seed(sweep):
    finished = [run for run in find_runs([sweep]) if run.status == FINISHED]
    groups = group_runs(finished)
    assert [g.label for g in groups] == ["objective=js", "objective=wgan_gp"]
    assert [sorted(run.seed for run in g.runs) for g in groups] == [[0, 1, 2], [0, 1, 2]]


def test_seeds_added_later_with_resume_and_more_steps_join_their_group(sweep):
    write_run(sweep / "objective=wgan_gp,seed=4", "wgan_gp", 4, 1.2, steps=300, overrides=["objective=wgan_gp", "seed=4", "resume=auto", "steps=300"])
    groups = group_runs([run for run in find_runs([sweep]) if run.status == FINISHED])
    assert {g.label: len(g.runs) for g in groups} == {"objective=js": 3, "objective=wgan_gp": 4}


def test_a_swept_key_beside_a_choice_is_in_the_label_and_group_by_names_keys(tmp_path):
    for objective in ("js", "wgan_gp"):
        for lr in (1e-4, 1e-3):
            for seed in (0, 1):
                write_run(tmp_path / f"{objective},{lr},{seed}", objective, seed, lr_D=lr,
                          overrides=[f"objective={objective}", f"objective.optimizer.lr_D={lr}", f"seed={seed}"])
    runs = find_runs([tmp_path])
    labels = [g.label for g in group_runs(runs)]
    assert labels == ["objective=js,objective.optimizer.lr_D=0.0001", "objective=js,objective.optimizer.lr_D=0.001",
                      "objective=wgan_gp,objective.optimizer.lr_D=0.0001", "objective=wgan_gp,objective.optimizer.lr_D=0.001"]
    by_objective = group_runs(runs, ["objective"])
    assert [(g.label, len(g.runs)) for g in by_objective] == [("objective=js", 4), ("objective=wgan_gp", 4)]
    with pytest.raises(ConfigError, match="group_by: optimizer is not a key of these runs"):
        group_runs(runs, ["optimizer"])


def test_one_group_is_named_by_what_it_ran(tmp_path):
    for seed in range(3):
        write_run(tmp_path / f"seed={seed}", "wgan_gp", seed)
    assert [g.label for g in group_runs(find_runs([tmp_path]))] == ["objective=wgan_gp,dataset=gaussians25,model=mlp"]


def test_ranks_best_first_in_the_metrics_direction_and_compares_pairs(sweep):
    comparison = compare(find_runs([sweep]), settings=FAST)
    assert comparison.metric == "Metrics/w1_ratio" and comparison.higher_is_better is False
    assert [g.label for g in comparison.groups] == ["objective=wgan_gp", "objective=js"]  # lower W1 ratio first
    gp = comparison.summaries["objective=wgan_gp"]["Metrics/w1_ratio"]
    assert (gp.n, gp.mean, gp.median, gp.iqm) == (3, pytest.approx(1.5), 1.5, pytest.approx(1.5))
    [pair] = comparison.pairs
    assert (pair.better, pair.other, pair.probability) == ("objective=wgan_gp", "objective=js", 1.0)
    # every resample keeps the 3 runs apart (interval [1, 1]), but 3 seeds each cannot show it: exact p = 2/20
    assert (pair.interval.low, pair.interval.high, pair.p_value) == (1.0, 1.0, pytest.approx(0.1))
    assert pair.verdict == "inconclusive (test p = 0.1)"
    assert [run.path.name for run in comparison.failed] == ["objective=js,seed=3"]
    assert [run.path.name for run in comparison.unfinished] == ["objective=wgan_gp,seed=3"]

    by_modes = compare(find_runs([sweep]), metric="Metrics/modes_covered", settings=FAST)
    assert [g.label for g in by_modes.groups] == ["objective=wgan_gp", "objective=js"]  # 25 modes beat 20-22
    assert by_modes.summaries["objective=js"]["Metrics/modes_covered"].mean == pytest.approx(21.0)


def test_five_seeds_apart_make_a_verdict(tmp_path):
    for seed in range(5):
        write_run(tmp_path / f"js{seed}", "js", seed, 3.0 + seed)
        write_run(tmp_path / f"gp{seed}", "wgan_gp", seed, 1.0 + seed / 10)
    [pair] = compare(find_runs([tmp_path]), settings=FAST).pairs
    assert pair.p_value == pytest.approx(2 / 252)  # exact: 2 of the C(10, 5) orderings are this separated
    assert pair.verdict == "objective=wgan_gp better"


def test_an_overlapping_pair_is_inconclusive(tmp_path):
    for seed, (a, b) in enumerate([(1.0, 1.1), (2.0, 0.9), (1.5, 2.2), (1.2, 1.4)]):
        write_run(tmp_path / f"js{seed}", "js", seed, a)
        write_run(tmp_path / f"gp{seed}", "wgan_gp", seed, b)
    [pair] = compare(find_runs([tmp_path]), settings=FAST).pairs
    assert pair.interval.contains(0.5) and pair.verdict == "inconclusive"


def test_metric_errors_name_the_fix(sweep):
    runs = find_runs([sweep])
    with pytest.raises(ConfigError, match="metric=Metrics/fid is not a metric these runs report; reported: Metrics/w1_ratio"):
        compare(runs, metric="Metrics/fid")
    with pytest.raises(ConfigError, match="pass higher_is_better=true or higher_is_better=false"):
        compare(runs, metric="Metrics/w1_real_baseline")
    assert compare(runs, metric="Metrics/w1_real_baseline", higher_is_better=False, settings=FAST).metric == "Metrics/w1_real_baseline"


def test_writes_csv_json_and_markdown(sweep, tmp_path):
    comparison = compare(find_runs([sweep]), settings=FAST)
    report.write_csv(comparison, tmp_path / "summary.csv")
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert len(rows) == 2 * 3  # groups x metrics
    first = rows[0]
    assert (first["group"], first["metric"], first["n"], float(first["mean"])) == ("objective=wgan_gp", "Metrics/w1_ratio", "3", 1.5)
    assert first["note"] == "n<5: CI unreliable"

    report.write_json(comparison, tmp_path / "summary.json", ["curves/Loss_D.png"], "ganlab compare sweep")
    body = json.loads((tmp_path / "summary.json").read_text())
    assert [g["label"] for g in body["groups"]] == ["objective=wgan_gp", "objective=js"]
    assert body["groups"][1]["metrics"]["Metrics/w1_ratio"]["mean"] == pytest.approx(5.0)
    assert body["pairs"][0]["verdict"] == "inconclusive (test p = 0.1)" and body["pairs"][0]["mann_whitney_p"] == pytest.approx(0.1)
    assert [r["reason"] for r in body["failed"]] == ["ConfigError: lr_D=-1 is not allowed"]
    assert len(body["unfinished"]) == 1

    report.write_markdown(comparison, tmp_path / "report.md", ["curves/Loss_D.png"], "ganlab compare sweep")
    text = (tmp_path / "report.md").read_text()
    assert "| 1 | objective=wgan_gp | 3 |" in text
    assert "![Loss_D](curves/Loss_D.png)" in text and "## Failed runs (left out)" in text


def test_positional_directories_become_the_runs_override(tmp_path):
    job = tmp_path / "objective=js,seed=0"
    job.mkdir()
    args = directory_arguments([str(tmp_path), str(job), "group_by=[objective]", "outputs/x/objective=js,seed=1"])
    escaped = str(job).replace("=", "\\=").replace(",", "\\,")
    assert args[0] == f"runs=[{tmp_path},{escaped},outputs/x/objective\\=js\\,seed\\=1]"
    assert args[1:] == ["group_by=[objective]"]
    with pytest.raises(ValueError, match="not both"):
        directory_arguments([str(tmp_path), "runs=[a]"])


def test_a_seed_counted_twice_is_kept_once_the_longest_run(sweep, tmp_path):
    """A copy of the sweep beside it, and seed 0 of js run again longer under another name: each
    seed counts once (the intervals would narrow otherwise), and the runs' steps differ: said."""
    import shutil

    shutil.copytree(sweep, tmp_path / "copy")
    write_run(tmp_path / "seed=0", "js", 0, 2.0, steps=300)
    comparison = compare(find_runs([sweep, tmp_path / "copy", tmp_path / "seed=0"]), settings=FAST)
    js = next(g for g in comparison.groups if g.label == "objective=js")
    assert sorted(run.seed for run in js.runs) == [0, 1, 2]
    assert next(run for run in js.runs if run.seed == 0).path == tmp_path / "seed=0"
    assert comparison.summaries["objective=js"]["Metrics/w1_ratio"].mean == pytest.approx((2.0 + 4.0 + 8.0) / 3)
    assert len(comparison.duplicates) == 3 + 3 + 1  # the copy's 6 finished runs, and the first js seed 0
    assert comparison.steps_note(js) == "steps 100-300"
    assert "seed 0 of objective=js again (step 100); kept" in next(r.reason for r in comparison.duplicates if r.seed == 0 and "js" in r.path.name)


def test_a_diverged_seed_stays_in_its_group_and_loses(tmp_path):
    for seed, (js, gp) in enumerate([(3.0, 1.0), (4.0, 2.0), (5.0, 1.5), (6.0, 1.2), (7.0, 1.1)]):
        write_run(tmp_path / f"js{seed}", "js", seed, js)
        write_run(tmp_path / f"gp{seed}", "wgan_gp", seed, gp, status=DIVERGED if seed == 4 else FINISHED)
    comparison = compare(find_runs([tmp_path]), settings=FAST)
    assert comparison.failed == []
    gp = comparison.summaries["objective=wgan_gp"]["Metrics/w1_ratio"]
    assert (gp.n, gp.n_nonfinite, gp.mean) == (4, 1, pytest.approx(1.425))
    [pair] = comparison.pairs
    assert pair.probability == pytest.approx(20 / 25)  # the diverged seed loses to all 5 js runs
    assert report.note(gp) == "n<5: CI unreliable; 1 diverged: out of the mean, lose every pair"


def test_group_by_errors_say_what_a_group_key_is(sweep):
    runs = find_runs([sweep])
    with pytest.raises(ConfigError, match="group_by: seed is what the runs of a group may differ in"):
        group_runs(runs, ["seed"])
    with pytest.raises(ConfigError, match="README.md is a file: pass sweep or run directories"):
        find_runs([Path(__file__).resolve().parent.parent / "README.md"])
