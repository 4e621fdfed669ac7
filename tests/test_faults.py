"""Divergence and write failures, in process: stop with the last good checkpoint kept, or roll back."""

from __future__ import annotations

import errno
import json

import pytest
import torch

from ganlab.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from ganlab.data.toy import Gaussians25
from ganlab.errors import TrainingFailed
from ganlab.logger.console import ProgressDisplay
from ganlab.logger.run import RunLogger
from ganlab.metrics.evaluator import build_evaluator
from ganlab.precision import Precision
from ganlab.train.faults import Diverged, Faults
from ganlab.train.loop import train
from ganlab.train.optim import build_optimizers

from networks import build_model, objective


class PoisonedData(Gaussians25):
    """Gaussians25 whose ``poison_at``-th batch is NaN (once)."""

    def __init__(self, poison_at: int, **kwargs):
        super().__init__(**kwargs)
        self.calls, self.poison_at = 0, poison_at

    def sample(self, n, generator=None):
        batch = super().sample(n, generator)
        if generator is None:
            self.calls += 1
            if self.calls == self.poison_at:
                batch = batch * float("nan")
        return batch


def run_training(tmp_path, poison_at: int, faults: Faults, steps: int = 12):
    torch.manual_seed(0)
    data = PoisonedData(poison_at)
    G, D = build_model("mlp", (2,), z_dim=2, width=16, depth=2)
    wgan_gp = objective("wasserstein", "gp", n_critic=1, gp={"weight": 0.1})
    opt_G, opt_D = build_optimizers(G, D, "adam", 1e-4, 1e-4, [0.5, 0.9], 0.99)
    evaluator = build_evaluator(data, 2, 32, 0)
    with ProgressDisplay(steps, live=False) as progress:
        run = RunLogger(tmp_path, evaluator, progress, {"config": {}, "data_shape": [2]}, device=torch.device("cpu"))
        try:
            return train(G, D, wgan_gp, opt_G, opt_D, data, Precision("fp32", "cpu"), run, steps=steps, batch_size=16,
                         log_every=2, sample_every=100, eval_every=100, checkpoint_every=4, faults=faults), opt_G
        finally:
            run.finish(None)


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(Diverged) as info:
        run_training(tmp_path, poison_at=7, faults=Faults("stop"))  # batch 7 = step 7 with n_critic=1
    message = str(info.value)
    assert "diverged at step 8" in message and "Loss/D" in message and "step_0000004.pt" in message
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000004.pt"]
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert all(torch.isfinite(t).all() for t in state["G"].values())


def test_rollback_restores_lowers_the_learning_rates_and_finishes(tmp_path):
    metrics, opt_G = run_training(tmp_path, poison_at=7, faults=Faults("rollback", max_rollbacks=2, rollback_lr_factor=0.5))
    assert opt_G.param_groups[0]["lr"] == pytest.approx(0.5e-4)
    assert latest_checkpoint(tmp_path).name == "step_0000012.pt"
    assert all(torch.isfinite(t).all() for t in load_checkpoint(latest_checkpoint(tmp_path))["G"].values())
    assert metrics and all(v == v for v in metrics.values())  # evaluated at the end, no NaN


def test_rollbacks_are_limited(tmp_path, monkeypatch):
    """A fault that comes back after every rollback ends the run once max_rollbacks are used."""
    def sample(self, n, generator=None):
        batch = Gaussians25.sample(self, n, generator)
        if generator is None:
            self.calls += 1
            if self.calls >= self.poison_at:  # every batch from the 5th on
                batch = batch * float("nan")
        return batch

    monkeypatch.setattr(PoisonedData, "sample", sample)
    with pytest.raises(Diverged, match="1 rollback\\(s\\) used of max_rollbacks=1"):
        run_training(tmp_path, poison_at=5, faults=Faults("rollback", max_rollbacks=1))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000004.pt"]


def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import ganlab.checkpoint as checkpoint

    real_save = torch.save
    calls = {"n": 0}

    def failing_save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 2:  # the first checkpoint is written, the second finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(TrainingFailed) as info:
        run_training(tmp_path, poison_at=10**9, faults=Faults("stop"))
    assert "disk is full" in str(info.value) and "step_0000004.pt is kept" in str(info.value)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000004.pt"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    load_checkpoint(tmp_path / "checkpoints" / "step_0000004.pt")
    assert json.loads((tmp_path / "metrics.json").read_text())["history"] == []
