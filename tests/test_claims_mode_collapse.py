"""Claim 7 (ganlab.claims.mode_collapse): the per-dataset comparison on synthetic seeds with known answers, the
papers' rows, the Stacked MNIST switch, and measure() end to end on the quick toy sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ganlab.claims import mode_collapse as claim
from ganlab.claims.base import Verdict, verdict_from
from ganlab.compare.runs import FINISHED, UNFINISHED, Run

from claims_support import quick_context
from conftest import compose_train


def test_fewer_modes_passes_on_a_complete_separation_of_five_seeds():
    check, figure = claim.fewer_modes_check("gaussians25", "wgan_gp", [14, 15, 12, 16, 13], [20, 21, 22, 23, 24])
    assert check.passed is True
    assert figure.value == pytest.approx(1.0)  # every wgan_gp seed covers more than every js seed
    assert "p = 0.00794" in figure.interval  # the exact test: 2 / C(10, 5) = 2 / 252
    # tied counts (integers often tie): scipy's normal approximation, still below ALPHA for a complete separation
    check, figure = claim.fewer_modes_check("gaussians25", "wgan_gp", [14, 15, 12, 16, 13], [24, 25, 23, 24, 25])
    assert check.passed is True and "p = 0.0117" in figure.interval


def test_fewer_modes_fails_when_js_covers_as_many_or_more():
    all_eight = [8, 8, 8, 8, 8]
    check, _ = claim.fewer_modes_check("gaussians8", "spectral_norm", all_eight, all_eight)
    assert check.passed is False and "as many or more" in check.detail
    check, _ = claim.fewer_modes_check("gaussians25", "wgan_gp", [24, 25, 24, 23, 25], [18, 19, 20, 17, 21])
    assert check.passed is False


def test_fewer_modes_is_undecided_when_fewer_but_not_significantly_or_without_runs():
    check, _ = claim.fewer_modes_check("gaussians25", "wgan_gp", [20, 22, 24, 21, 23], [21, 23, 24, 22, 22])
    assert check.passed is None and "not significantly" in check.detail
    check, figure = claim.fewer_modes_check("gaussians25", "wgan_gp", [], [24.0])
    assert check.passed is None and math.isnan(figure.value)
    check, _ = claim.fewer_modes_check("gaussians25", "wgan_gp", [math.nan], [24.0])  # a diverged run has no count
    assert check.passed is None


def test_verdict_needs_js_to_cover_fewer_on_every_dataset_and_against_both():
    separated = ([14, 15, 12, 16, 13], [24, 25, 23, 24, 25])
    held = [claim.fewer_modes_check(d, o, *separated)[0] for d in ("gaussians8", "gaussians25") for o in claim.OPPONENTS]
    assert verdict_from(held) is Verdict.held
    tie = claim.fewer_modes_check("gaussians8", "wgan_gp", [8] * 5, [8] * 5)[0]
    assert verdict_from(held[1:] + [tie]) is Verdict.not_held


def _run(dataset: str, objective: str, modes: float, status: str = FINISHED) -> Run:
    return Run(Path(f"/runs/{dataset}-{objective}-{modes}"), {}, {"dataset": dataset, "objective": objective}, [], status,
               final={"Metrics/modes_covered": modes} if status == FINISHED else {})


def test_final_values_group_finished_runs_by_dataset_and_objective():
    runs = [_run("gaussians8", "js", 6), _run("gaussians8", "js", 7), _run("gaussians25", "js", 15),
            _run("gaussians25", "wgan_gp", 24), _run("gaussians25", "wgan_gp", 0, UNFINISHED)]
    assert claim.final_values(runs, "Metrics/modes_covered") == {
        ("gaussians8", "js"): [6, 7], ("gaussians25", "js"): [15], ("gaussians25", "wgan_gp"): [24]}
    mean = claim.mean_figure("modes", [6.0, 7.0, 8.0])
    assert mean.value == pytest.approx(7.0) and mean.low <= 7.0 <= mean.high


def test_the_papers_rows_are_within_their_datasets_ranges():
    for row in claim.PAPER_ROWS:
        assert 0 < row.modes <= claim.MODES_TOTAL[row.dataset], row
        assert math.isnan(row.high_quality) or 0 <= row.high_quality <= 100, row
    grid_gan = [r for r in claim.PAPER_ROWS if r.dataset == "gaussians25" and r.method == "GAN"]
    assert {(r.modes, r.high_quality) for r in grid_gan} == {(17.3, 94.8), (3.3, 0.5)}  # PacGAN, VEEGAN: as printed


def test_stacked_mnist_joins_in_gpu_mode_only_and_only_where_the_files_are(monkeypatch):
    monkeypatch.setattr(claim, "mnist_files_present", lambda: False)
    assert [s.name for s in claim.sweeps("gpu")] == ["toy"]
    assert claim.settings("gpu")["stacked_mnist"] is False
    monkeypatch.setattr(claim, "mnist_files_present", lambda: True)
    assert [s.name for s in claim.sweeps("full")] == ["toy"]
    assert [s.name for s in claim.sweeps("gpu")] == ["toy", "stacked_mnist"]
    settings = claim.settings("gpu")
    assert json.loads(json.dumps(settings)) == settings and settings["stacked_mnist"] is True
    # the sweep's overrides compose into a real config (one value of each comma list)
    overrides = [o if "," not in o else o.split("=")[0] + "=" + o.split("=")[1].split(",")[-1] for o in claim.stacked_sweep("gpu").overrides]
    cfg = compose_train(overrides)
    assert cfg.dataset._target_.endswith("StackedMNIST") and cfg.objective.name == "spectral_norm" and cfg.eval_samples == 26000


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_settings_are_json(mode):
    settings = claim.settings(mode)
    assert json.loads(json.dumps(settings)) == settings
    assert settings["comparison"]["alpha"] == claim.ALPHA and settings["stacked_mnist"] is False


def test_measure_in_quick_mode_on_the_quick_toy_sweep(quick_toy_sweep, tmp_path):
    ctx = quick_context(tmp_path / "07_mode_collapse", {"toy": quick_toy_sweep})
    outcome = claim.measure(ctx)
    assert [c.what for c in outcome.checks] == [f"{d}: js covers fewer modes than {o}" for d in ("gaussians8", "gaussians25")
                                                for o in ("wgan_gp", "spectral_norm")]
    modes = {f.name: f for f in outcome.figures}
    js8 = modes["gaussians8, js: modes covered (of 8)"]
    assert 0 <= js8.value <= 8 and "over 2 seeds" in js8.interval
    assert modes["runs skipped (not finished)"].value == 0.0
    assert "| PacGAN (Lin et al. 2018), Table 1 | GAN | 10 | 17.3 | 94.8 | 0.7 |" in outcome.table
    assert "| ganlab (this run) | wgan_gp | 2 |" in outcome.table
    assert any("Stacked MNIST did not run" in n for n in outcome.notes)
    assert outcome.plots == ["mode_collapse.png"]
    assert (ctx.out / "mode_collapse.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(json.dumps(outcome.to_json(), allow_nan=True))["verdict"] == outcome.verdict.value
