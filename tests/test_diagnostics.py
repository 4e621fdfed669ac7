"""The per-interval diagnostics: closed forms on a linear critic, and what a run writes to TensorBoard."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import mannwhitneyu
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from ganlab.train.diagnostics import critic_diagnostics, ranking_accuracy

from inprocess import train_in_process
from networks import objective


@pytest.mark.parametrize("d_real,d_fake", [
    ([1.0, 2.0, 3.0], [0.0, 2.5]),
    ([1.0, 1.0, 2.0], [1.0, 0.0, 5.0, 1.0]),  # ties count one half
    ([0.0], [0.0]),
])
def test_ranking_accuracy_is_the_mann_whitney_statistic_over_n_m(d_real, d_fake):
    expected = mannwhitneyu(d_real, d_fake).statistic / (len(d_real) * len(d_fake))
    assert float(ranking_accuracy(torch.tensor(d_real), torch.tensor(d_fake))) == pytest.approx(expected, abs=1e-6)  # a float32 ratio


def test_ranking_accuracy_in_chunks_equals_the_whole_comparison():
    torch.manual_seed(0)
    d_real, d_fake = torch.randn(3000), torch.randn(2000) - 0.5  # 6e6 pairs: more than one chunk
    whole = ((d_real[:, None] > d_fake).double().mean() + 0.5 * (d_real[:, None] == d_fake).double().mean()).item()
    assert float(ranking_accuracy(d_real, d_fake)) == pytest.approx(whole, abs=1e-6)


def test_a_linear_critic_has_its_weight_norm_as_input_gradient_everywhere():
    D = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        D.weight.copy_(torch.tensor([[3.0, -4.0]]))  # ||w|| = 5
    real = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, -1.0]])  # scores 3, 6, 4
    fake = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])  # scores -4, -1, 0
    scalars, histograms = critic_diagnostics(objective("wasserstein"), D, real, fake, step=3)
    for name in ("real", "fake", "interp"):
        for stat in ("mean", "max"):
            assert float(scalars[f"CriticGrad/{name}_{stat}"]) == pytest.approx(5.0)
    assert float(scalars["Critic/accuracy"]) == 1.0
    torch.testing.assert_close(histograms["Histogram/D_real"], torch.tensor([3.0, 6.0, 4.0]))
    torch.testing.assert_close(histograms["Histogram/D_fake"], torch.tensor([-4.0, -1.0, 0.0]))


def test_a_run_writes_the_critic_histograms_and_accuracy_to_tensorboard(tmp_path):
    train_in_process(["steps=4", "batch_size=16", "model.width=8", "threads=1", "log_every=2", "sample_every=4",
                      "eval_every=4", "eval_samples=32"], tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"histograms": 0, "scalars": 0})
    events.Reload()
    assert {"Histogram/D_real", "Histogram/D_fake"} <= set(events.Tags()["histograms"])
    for tag in ("Histogram/D_real", "Histogram/D_fake"):
        logged = events.Histograms(tag)
        assert [e.step for e in logged] == [2, 4]
        assert all(e.histogram_value.num == 16 for e in logged)  # one score per sample of the batch
    accuracy = [e.value for e in events.Scalars("Critic/accuracy")]
    assert len(accuracy) == 2 and all(0.0 <= a <= 1.0 for a in accuracy)
