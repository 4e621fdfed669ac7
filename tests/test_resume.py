"""Checkpoints that really resume: bit-exact continuation, SIGINT/SIGTERM, SIGKILL at any moment."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganlab.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint

from conftest import ganlab_command, run_ganlab
from data_formats import write_image_folder

pytestmark = pytest.mark.cli

# log, sample, evaluate and checkpoint every 4 steps, so a run cut at step 8 has the same records as one that was not.
EVERY_4 = ["batch_size=32", "log_every=4", "sample_every=4", "eval_every=4", "checkpoint_every=4", "eval_samples=64", "model.width=16", "threads=1"]


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"] if not tag.startswith("Speed/")}


def final_state(run_dir: Path) -> dict:
    return load_checkpoint(latest_checkpoint(run_dir))


def assert_same_parameters(a: dict, b: dict) -> None:
    for net in ("G", "D"):
        assert a[net].keys() == b[net].keys()
        for key in a[net]:
            torch.testing.assert_close(a[net][key], b[net][key], rtol=0, atol=0, msg=f"{net}.{key}")


@pytest.mark.parametrize("objective", ["js", "wgan_clip", "wgan_gp", "spectral_norm"])
def test_stopped_and_resumed_run_is_bit_exact(workdir, objective):
    whole = run_ganlab(["train", f"objective={objective}", "steps=12", *EVERY_4, "hydra.run.dir=whole"], cwd=workdir)
    assert whole.returncode == 0, whole.stderr[-2000:]
    first = run_ganlab(["train", f"objective={objective}", "steps=8", *EVERY_4, "hydra.run.dir=cut"], cwd=workdir)
    assert first.returncode == 0, first.stderr[-2000:]
    first_config = (workdir / "cut" / ".hydra" / "config.yaml").read_text()
    second = run_ganlab(["train", "resume=cut", "steps=12"], cwd=workdir)
    assert second.returncode == 0, second.stderr[-2000:]

    assert_same_parameters(final_state(workdir / "whole"), final_state(workdir / "cut"))
    logged_whole, logged_cut = scalars(workdir / "whole"), scalars(workdir / "cut")
    assert logged_whole.keys() == logged_cut.keys()
    for tag in logged_whole:
        assert [s for s, _ in logged_cut[tag]] == [s for s, _ in logged_whole[tag]], tag  # no duplicated or missing steps
        assert [v for _, v in logged_cut[tag]] == pytest.approx([v for _, v in logged_whole[tag]], rel=0, abs=0, nan_ok=True), tag
    # The first run's record survives the resume unchanged; the resume's own config goes beside it.
    assert (workdir / "cut" / ".hydra" / "config.yaml").read_text() == first_config
    assert "steps: 8" in first_config and "steps: 12" in (workdir / "cut" / ".hydra" / "resume_1" / "config.yaml").read_text()


def test_a_streamed_image_folder_resumes_bit_exact(workdir, classifier_cache):
    """The DataLoader path: the stream continues at the checkpoint's position, not where the workers had read to."""
    write_image_folder(workdir / "images", per_class=6)
    images = ["dataset=imagefolder", "dataset.root=images", "dataset.resolution=16", "dataset.in_memory=false", "dataset.num_workers=2",
              "model=dcgan", "model.width=8", "batch_size=5", "objective=wgan_gp", f"metrics.classifier_cache={classifier_cache}",
              *[a for a in EVERY_4 if not a.startswith(("batch_size", "model"))]]
    whole = run_ganlab(["train", *images, "steps=12", "hydra.run.dir=whole"], cwd=workdir)
    assert whole.returncode == 0, whole.stderr[-2000:]
    first = run_ganlab(["train", *images, "steps=8", "hydra.run.dir=cut"], cwd=workdir)
    assert first.returncode == 0, first.stderr[-2000:]
    assert final_state(workdir / "cut")["data_stream"]["fetched"] == 8 * 5 * 5  # streamed: 8 steps of n_critic=5 real batches of 5
    second = run_ganlab(["train", "resume=cut", "steps=12"], cwd=workdir)
    assert second.returncode == 0, second.stderr[-2000:]
    assert_same_parameters(final_state(workdir / "whole"), final_state(workdir / "cut"))


def test_resume_auto_starts_afresh_then_continues(workdir):
    fresh = run_ganlab(["train", "resume=auto", "steps=4", *EVERY_4, "hydra.run.dir=job"], cwd=workdir)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    again = run_ganlab(["train", "resume=auto", "steps=8", *EVERY_4, "hydra.run.dir=job"], cwd=workdir)
    assert again.returncode == 0, again.stderr[-2000:]
    assert [p.name for p in list_checkpoints(workdir / "job")] == ["step_0000004.pt", "step_0000008.pt"]
    assert "resuming" in again.stdout + again.stderr


def test_a_resume_in_another_precision_says_so(workdir):
    first = run_ganlab(["train", "steps=4", *EVERY_4, "hydra.run.dir=job"], cwd=workdir)  # auto: fp32 for the MLP on a CPU
    assert first.returncode == 0, first.stderr[-2000:]
    assert final_state(workdir / "job")["precision"] == "fp32"
    same = run_ganlab(["train", "resume=job", "steps=8"], cwd=workdir)
    assert same.returncode == 0 and "trained in" not in same.stdout + same.stderr
    other = run_ganlab(["train", "resume=job", "steps=12", "precision=bf16"], cwd=workdir)  # e.g. moved to a GPU with precision=auto
    assert other.returncode == 0, other.stderr[-2000:]
    assert "this run trained in fp32 up to step 8 and continues in bf16" in other.stdout + other.stderr
    assert json.loads((workdir / "job" / "run_info_resume_8.json").read_text())["precision"] == "bf16"
    assert final_state(workdir / "job")["precision"] == "bf16"


def test_resume_refuses_changes_to_the_experiment(workdir):
    first = run_ganlab(["train", "steps=4", *EVERY_4, "hydra.run.dir=job"], cwd=workdir)
    assert first.returncode == 0
    changed = run_ganlab(["train", "resume=job", "objective.n_critic=2"], cwd=workdir)
    assert changed.returncode == 2 and "objective.n_critic=2 cannot be used with resume" in changed.stderr
    missing = run_ganlab(["train", "resume=nope"], cwd=workdir)
    assert missing.returncode == 2 and "resume=nope: no such run directory or checkpoint file" in missing.stderr


def start_long_run(workdir: Path, *extra: str) -> subprocess.Popen:
    args = ganlab_command() + ["train", "steps=100000", *EVERY_4, "hydra.run.dir=long", *extra]
    return subprocess.Popen(args, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def checkpoint_steps(run_dir: Path) -> list[int]:
    return [int(p.stem.split("_")[1]) for p in list_checkpoints(run_dir)]


def wait_for_checkpoint(workdir: Path, process: subprocess.Popen, after: int = 0, timeout: float = 60) -> None:
    """Until the long run has a checkpoint of a step past ``after``."""
    deadline = time.monotonic() + timeout
    while max(checkpoint_steps(workdir / "long"), default=0) <= after:
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"no checkpoint past step {after} appeared"
        time.sleep(0.05)


def wait_for_progress(workdir: Path, process: subprocess.Popen, step: int = 4, timeout: float = 60) -> None:
    """Until the long run's log reports ``step``."""
    log = workdir / "long" / "train.log"
    deadline = time.monotonic() + timeout
    while f"step {step}/" not in (log.read_text() if log.exists() else ""):
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"step {step} was not logged"
        time.sleep(0.1)


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_writes_a_checkpoint_and_says_how_to_resume(workdir, sig, status):
    process = start_long_run(workdir, "checkpoint_every=100000")  # no checkpoint but the one the signal writes
    wait_for_progress(workdir, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr[-2000:]
    assert f"resume with: ganlab train resume={workdir / 'long'}" in stderr
    stopped_at = int(re.search(r"stopped at step (\d+) of 100000", stderr)[1])
    # The stop wrote a checkpoint at the step it stopped, and that is the one a resume continues from.
    assert checkpoint_steps(workdir / "long") == [stopped_at] and final_state(workdir / "long")["step"] == stopped_at
    resumed = run_ganlab(["train", "resume=long", f"steps={stopped_at + 4}"], cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole = run_ganlab(["train", f"steps={stopped_at + 4}", *EVERY_4, "hydra.run.dir=whole"], cwd=workdir)
    assert whole.returncode == 0
    assert_same_parameters(final_state(workdir / "long"), final_state(workdir / "whole"))


def test_sigkill_never_leaves_a_corrupt_latest_checkpoint(workdir):
    """Kill -9 at many moments of a run that writes a checkpoint every step: the newest checkpoint
    always loads, and resume=auto continues from it."""
    reached = 0  # the newest step after the last kill
    for attempt in range(4):
        process = start_long_run(workdir, "checkpoint_every=1", "keep_checkpoints=2", "resume=auto", "log_every=1000")
        wait_for_checkpoint(workdir, process, after=reached)  # this process is training and writing, not starting up
        time.sleep(0.03 * attempt)  # land at different points of the write cycle
        process.kill()
        process.communicate(timeout=60)
        newest = latest_checkpoint(workdir / "long")
        state = load_checkpoint(newest)  # raises on a truncated or corrupt file
        assert state["step"] == int(newest.stem.split("_")[1]) > reached
        if attempt:  # resume=auto went on from the newest checkpoint the last kill left, not from step 0
            assert f"from step {reached} (" in (workdir / "long" / "train.log").read_text()
        reached = state["step"]
    assert all(not p.name.endswith(".tmp") or p.name.startswith(".") for p in (workdir / "long" / "checkpoints").iterdir())
