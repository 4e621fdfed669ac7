"""A run's checkpoints are picked and pruned by their step as a number, beyond 10^7 steps too
(``step_10000000.pt`` has one digit more than ``step_9999990.pt`` and sorts before it as text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganlab.checkpoint import checkpoint_path, latest_checkpoint, list_checkpoints, prune_checkpoints, resume_target

STEPS = [9_999_980, 9_999_990, 10_000_000]


def write_checkpoints(run_dir: Path, steps: list[int]) -> list[Path]:
    paths = [checkpoint_path(run_dir, step) for step in steps]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")  # picking and pruning read only the names
    return paths


def test_the_newest_checkpoint_is_the_largest_step(tmp_path):
    paths = write_checkpoints(tmp_path, [10_000_000, 9_999_980, 9_999_990, 123_456_789])
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_9999980.pt", "step_9999990.pt", "step_10000000.pt", "step_123456789.pt"]
    assert latest_checkpoint(tmp_path) == paths[-1]


def test_resume_picks_the_newest_checkpoint_past_ten_million_steps(tmp_path):
    newest = write_checkpoints(tmp_path, STEPS)[-1]
    assert resume_target("auto", tmp_path) == newest
    assert resume_target(str(tmp_path), "elsewhere") == newest  # resume=<run dir>


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_pruning_keeps_the_newest_checkpoints_past_ten_million_steps(tmp_path, keep):
    paths = write_checkpoints(tmp_path, STEPS)
    prune_checkpoints(tmp_path, keep)
    assert list_checkpoints(tmp_path) == paths[-keep:]
    assert [p.exists() for p in paths] == [i >= len(paths) - keep for i in range(len(paths))]


def test_resuming_from_an_older_checkpoint_sets_the_later_records_aside_and_keeps_the_new_branch_whole(tmp_path):
    """Resumed from step 4 of a run that reached step 8, with keep_checkpoints=1: the later
    checkpoints would count as newest, and pruning would delete the continuation's own checkpoint
    right after writing it; its writes would overwrite the old branch's files and records."""
    import json

    from inprocess import train_in_process

    from ganlab.checkpoint import load_checkpoint

    run = tmp_path / "run"
    tiny = ["batch_size=16", "model.width=8", "threads=1", "log_every=2", "sample_every=2", "eval_every=2", "eval_samples=32"]
    train_in_process(["steps=6", *tiny, "checkpoint_every=2", "keep_checkpoints=3"], run)
    train_in_process([f"resume={run}", "steps=8", "checkpoint_every=2", "keep_checkpoints=3"], run)  # writes run_info_resume_6.json
    old = {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name.startswith(("step_", "critic_", "run_info_resume_"))}
    old_metrics = (run / "metrics.json").read_text()
    assert sorted(p for p in old if p.startswith("checkpoints")) == ["checkpoints/step_0000004.pt", "checkpoints/step_0000006.pt", "checkpoints/step_0000008.pt"]

    train_in_process([f"resume={checkpoint_path(run, 4)}", "steps=7", "checkpoint_every=3", "keep_checkpoints=1"], run)
    assert [p.name for p in list_checkpoints(run)] == ["step_0000007.pt"]
    assert load_checkpoint(latest_checkpoint(run))["step"] == 7
    assert resume_target("auto", run) == checkpoint_path(run, 7)
    aside = run / "superseded_1"
    kept = {str(p.relative_to(aside)): p.read_bytes() for p in aside.rglob("*") if p.is_file() and p.name != "metrics.json"}
    past_4 = {"checkpoints/step_0000006.pt", "checkpoints/step_0000008.pt", "samples/critic_0000006.png", "samples/critic_0000008.png", "run_info_resume_6.json"}
    assert kept == {name: old[name] for name in past_4}  # moved whole, nothing deleted
    assert (aside / "metrics.json").read_text() == old_metrics
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["critic_0000002.png", "critic_0000004.png", "critic_0000006.png", "critic_0000007.png"]
    assert [h["step"] for h in json.loads((run / "metrics.json").read_text())["history"]] == [2, 4, 6, 7]
    assert (run / "run_info_resume_4.json").is_file()


@pytest.mark.parametrize("steps", [6, 4])
def test_a_resumed_run_with_no_step_left_keeps_its_final_metrics(tmp_path, steps, caplog):
    """A finished job of a sweep extended with resume=auto (steps=6 again), or a resume with fewer
    steps: nothing is trained, and metrics.json keeps the final metrics it had (it lost them before)."""
    import json
    import logging

    from inprocess import train_in_process

    caplog.set_level(logging.INFO, logger="ganlab")
    run = tmp_path / "run"
    tiny = ["batch_size=16", "model.width=8", "threads=1", "log_every=2", "sample_every=2", "eval_every=2", "eval_samples=32"]
    final = train_in_process(["steps=6", *tiny], run)
    before = json.loads((run / "metrics.json").read_text())
    assert before["final"] == pytest.approx(final) and final
    again = train_in_process([f"resume={run}", f"steps={steps}"], run)
    after = json.loads((run / "metrics.json").read_text())
    assert after == before and again == pytest.approx(final)
    assert f"is at step 6 (steps={steps}): nothing to train; its final metrics are kept" in caplog.text
    assert [p.name for p in list_checkpoints(run)] == ["step_0000006.pt"]
