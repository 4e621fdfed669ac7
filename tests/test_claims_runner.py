"""ganlab claims' machinery (ganlab.claims.base, runner, report) on a fake claim: verdicts from
checks, the sweep run once as a real ganlab train -m subprocess, results stored and reused, the report."""

from __future__ import annotations

import json
import math
import types

import pytest

from ganlab.claims import base, report, runner
from ganlab.claims.base import Check, Figure, Outcome, Sweep, Verdict, above, below, verdict_from
from ganlab.errors import ConfigError, TrainingFailed

from claims_support import assert_tables_well_formed


def test_a_verdict_holds_only_when_every_check_passed():
    yes, no, undecided = Check("a", True, ""), Check("b", False, ""), Check("c", None, "")
    assert verdict_from([yes, yes]) is Verdict.held
    assert verdict_from([yes, no]) is Verdict.not_held
    assert verdict_from([no, undecided]) is Verdict.not_held  # a failed check refutes the conjunction
    assert verdict_from([yes, undecided]) is Verdict.inconclusive
    assert Outcome([], [yes, no, undecided]).because() == "b: " and Outcome([], [yes, undecided]).because() == "c: "
    assert verdict_from([]) is Verdict.inconclusive
    unmet, met = base.precondition(Check("won", False, "0.4 >= 0.1")), base.precondition(yes)
    assert unmet.passed is None and verdict_from([unmet, no]) is Verdict.inconclusive  # not put to the test
    assert verdict_from([met, no]) is Verdict.not_held and verdict_from([met, yes]) is Verdict.held
    assert Outcome([], [unmet, no]).because().startswith("won: 0.4 >= 0.1: not met")


@pytest.mark.parametrize("value, bound, passed", [
    (0.5, None, True), (1.5, None, False), (0.5, 0.9, True), (0.5, 1.2, None), (1.5, 1.2, False), (1.5, 0.8, None),
    (math.nan, None, None),
])
def test_below_is_undecided_when_the_interval_straddles_the_threshold(value, bound, passed):
    assert below("x", value, 1.0, high=bound).passed is passed


@pytest.mark.parametrize("value, bound, passed", [(2.0, 1.5, True), (2.0, 0.5, None), (0.5, None, False), (0.5, 0.2, False)])
def test_above_mirrors_below(value, bound, passed):
    assert above("x", value, 1.0, low=bound).passed is passed


def test_a_figure_prints_its_interval():
    assert Figure("r", 0.12345, 0.1, 0.15).text() == "0.123 [0.1, 0.15]"
    assert Figure("r", 2.0, unit="steps").text() == "2 steps"
    assert Figure("r", 2.0, math.nan, math.nan).text() == "2"


def test_an_outcome_survives_json():
    outcome = Outcome([Figure("a", 1.0, 0.5, 2.0, interval="95%")], [Check("a", True, "1 > 0")], table="|x|", plots=["p.png"],
                      notes=["n"], commands=["ganlab claims"])
    back = Outcome.from_json(json.loads(json.dumps(outcome.to_json())))
    assert back == outcome and back.verdict is Verdict.held


def test_claims_are_numbered_in_order_and_complete():
    from ganlab.claims import claim_modules

    modules = claim_modules()
    assert [m.NUMBER for m in modules] == list(range(1, len(modules) + 1))
    for m in modules:
        assert m.SLUG == m.__name__.rsplit(".", 1)[1] and m.TITLE and m.SOURCE and m.STATEMENT
        for mode in base.MODES:
            json.dumps(m.settings(mode))  # settings are plain data
            assert all(isinstance(s, Sweep) for s in m.sweeps(mode))
    runner.needed_sweeps(modules, "full")  # claims that share a sweep agree on it


def test_an_unknown_claim_is_a_one_line_error():
    with pytest.raises(ConfigError, match="there is no claim 99"):
        runner.select([1, 99])


def test_jobs_in_counts_the_comma_lists():
    assert runner.jobs_in(Sweep("s", ("objective=js,wgan_gp", "seed=0,1,2", "steps=10", "objective.optimizer.betas=[0.5,0.9]"))) == 6
    assert runner.jobs_in(Sweep("s", ("objective.optimizer.betas=[0.5,0.9],[0,0.9]", "seed=range(3)"))) == 6


def fake_claim(measured: list) -> types.ModuleType:
    """A claim that reads one tiny training run and checks its final W1 ratio is finite."""
    claim = types.ModuleType("ganlab.claims.fake")
    claim.NUMBER, claim.SLUG, claim.TITLE = 1, "fake", "a fake claim"
    claim.SOURCE, claim.STATEMENT = "nobody (2026)", "a tiny run finishes"
    sweep = Sweep("tiny", ("dataset=gaussians8", "seed=0,1", "steps=4", "batch_size=16", "model.width=8", "log_every=2",
                           "sample_every=4", "eval_every=4", "eval_samples=64", "checkpoint_every=4", "threads=1"))
    claim.settings = lambda mode: {"steps": 4, "seeds": 2}
    claim.sweeps = lambda mode: [sweep]

    def measure(ctx):
        measured.append(ctx.mode)
        runs = ctx.runs("tiny")
        ratios = [r.final["Metrics/w1_ratio"] for r in runs if r.status == "finished"]
        (ctx.out / "plot.png").write_bytes(b"png")
        return Outcome([Figure("runs finished", len(ratios))], [above("|runs| finished", len(ratios), 1.5)], plots=["plot.png"])

    claim.measure = measure
    return claim


def test_the_sweep_runs_once_and_a_second_call_reuses_the_result(tmp_path, monkeypatch):
    measured = []
    claim = fake_claim(measured)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    lines = []
    outcomes = runner.run_claims([claim], "quick", tmp_path, n_jobs=1, device="cpu", status=lines.append)
    assert measured == ["quick"] and outcomes[1].verdict is Verdict.held
    assert len(list((tmp_path / "sweeps" / "tiny").glob("*/metrics.json"))) == 2
    assert outcomes[1].commands[0].startswith("ganlab train -m dataset=gaussians8 seed=0,1") and "resume=auto" in outcomes[1].commands[0]
    assert outcomes[1].commands[-1] == f"ganlab claims 'claims=[1]' mode=quick out={tmp_path}"
    stored = json.loads((tmp_path / "01_fake" / "result.json").read_text())
    assert stored["settings"] == {"steps": 4, "seeds": 2} and stored["outcome"]["verdict"] == "held"

    again = runner.run_claims([claim], "quick", tmp_path, n_jobs=1, device="cpu", status=lines.append)
    assert measured == ["quick"] and again[1] == outcomes[1]  # neither the sweep nor the claim ran again
    assert any("its 2 runs are finished" in line for line in lines)
    runner.run_claims([claim], "quick", tmp_path, n_jobs=1, device="cpu", rerun=True, status=lines.append)
    assert measured == ["quick", "quick"]
    claim.settings = lambda mode: {"steps": 4, "seeds": 3}  # other settings: measured again
    runner.run_claims([claim], "quick", tmp_path, n_jobs=1, device="cpu", status=lines.append)
    assert len(measured) == 3

    path = report.write_report(tmp_path, [claim], "ganlab claims mode=quick")
    text = path.read_text()
    assert report.QUICK_WARNING in text and "| 1 | [a fake claim](#claim-1) | **held** | \\|runs\\| finished: 2 > 1.5 |" in text
    assert_tables_well_formed(text)  # the pipes of |runs| escaped in the summary's cell
    assert "![plot](01_fake/plot.png)" in text and "resume=auto" in text and "runs finished: 2" in text


def test_a_failing_sweep_names_its_log(tmp_path, monkeypatch):
    claim = fake_claim([])
    claim.sweeps = lambda mode: [Sweep("bad", ("objective=nosuch",))]
    with pytest.raises(ConfigError, match=r"sweep bad exited with status .*bad\.log"):
        runner.run_claims([claim], "quick", tmp_path, n_jobs=1, device="cpu", status=lambda line: None)


def test_sweeps_run_side_by_side_with_the_joblib_launcher():
    assert runner.launcher_overrides(2, 16) == ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    assert runner.launcher_overrides(8, 3) == ["hydra/launcher=joblib", "hydra.launcher.n_jobs=3"]  # no more than the sweep's jobs
    assert runner.launcher_overrides(1, 16) == [] and runner.launcher_overrides(4, 1) == []  # one at a time: Hydra's basic launcher


def test_ganlab_claims_quick_runs_every_claim_end_to_end_and_resumes(tmp_path):
    """The CI check of the whole machinery: ``ganlab claims mode=quick`` (every sweep as a real
    ``ganlab train -m`` subprocess, every claim's protocol), then a second call that only rewrites the
    report. One job at a time (Hydra's basic launcher): starting joblib's workers for each of the nine
    small sweeps cost about a third of the test; the joblib launcher it would choose is
    test_sweeps_run_side_by_side_with_the_joblib_launcher's, and joblib sweeps are tests/test_sweep_parallel.py's."""
    from ganlab.claims import claim_modules

    from conftest import run_ganlab

    out = tmp_path / "claims"
    first = run_ganlab(["claims", "mode=quick", f"out={out}", "n_jobs=1"], cwd=tmp_path, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "claims held at mode=quick" in first.stdout and "not evidence" in first.stdout
    modules = claim_modules()
    for module in modules:
        body = json.loads((out / runner.folder(module) / "result.json").read_text())
        outcome = Outcome.from_json(body["outcome"])
        assert body["mode"] == "quick" and outcome.figures and outcome.checks and outcome.commands, module.SLUG
        for plot in outcome.plots:
            assert (out / runner.folder(module) / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", (module.SLUG, plot)
    text = (out / "report.md").read_text()
    assert report.QUICK_WARNING in text and all(f"## {m.NUMBER}. {m.TITLE}" in text for m in modules)
    assert text.count("ganlab train -m ") >= len(runner.needed_sweeps(modules, "quick"))
    assert_tables_well_formed(text)

    again = run_ganlab(["claims", "mode=quick", f"out={out}", "claims=[1,7]"], cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "claim 1: measured before" in again.stdout and "sweep toy: its 16 runs are finished" in again.stdout
    assert all(f"## {m.NUMBER}. " in (out / "report.md").read_text() for m in modules)  # the report keeps every claim


@pytest.mark.parametrize("args, message", [
    (["mode=fast"], "mode=fast is not allowed"), (["claims=[0]"], "there is no claim 0"),
    (["claims=[a]"], "claims=['a'] is not allowed"), (["n_jobs=0"], "n_jobs=0 is not allowed"),
])
def test_bad_options_are_one_line_errors(args, message, tmp_path, monkeypatch, capsys):
    from inprocess import ganlab_in_process

    assert ganlab_in_process(["claims", *args, f"out={tmp_path / 'out'}"], tmp_path, monkeypatch) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_ctrl_c_during_a_sweep_is_one_line_that_says_how_to_resume(tmp_path, monkeypatch):
    """The sweep gets the terminal's SIGINT too and checkpoints; ganlab claims waits for it, then
    says in one line (exit status 130) what is kept and how to go on, not a traceback."""
    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.time, "sleep", interrupted)
    with pytest.raises(TrainingFailed, match="stopped during sweep toy; .* run the same ganlab claims command again to resume") as err:
        runner.run_sweep(["ganlab", "--version"], tmp_path / "toy", tmp_path / "toy.log", lambda done: None)
    assert err.value.exit_status == 130
