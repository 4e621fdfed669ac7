"""Tests for the image metrics: Fréchet distance, the cached classifier, class coverage, Inception, the evaluator.

Everything runs on tiny synthetic data that follows the image-dataset contract of
``ganlab.data.images`` (``shape``, ``num_classes``, ``name``, ``device``, ``sample``,
``classifier_data``): ten classes of fixed random +-0.7 patterns plus noise at 16x16, which
the classifier separates perfectly after a hundred steps.
"""

from __future__ import annotations

import logging
import math
import sys
import types

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from ganlab.data.toy import Gaussians8
from ganlab.metrics import classifier as classifier_module
from ganlab.metrics.classifier import default_cache_dir, get_classifier
from ganlab.metrics.evaluator import ImageEvaluator, ToyEvaluator, build_evaluator
from ganlab.metrics.frechet import frechet_distance, gaussian_stats
from ganlab.metrics.images import (
    ChannelwiseClassifier,
    ClassifierReference,
    classifier_metrics,
    classifier_score,
    classifier_scores,
    coverage_threshold,
    stacked_mnist_metrics,
)
from ganlab.metrics.inception import InceptionUnavailable, check_inception, inception_metrics
from ganlab.metrics.toy import kl_to_uniform
from ganlab.viz.grid import to_uint8

SIZE = 16
CLASSES = 10
TRAIN_STEPS = 120  # enough for the patterns below (test accuracy 1.0); the default is for real digits


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small convolutions on a shared two-core machine run several times faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- synthetic data following the image-dataset contract ----------------------------------------


class PatternData:
    """``CLASSES`` fixed random +-0.7 patterns plus N(0, 0.3^2) noise, clamped to [-1, 1]."""

    def __init__(self, channels: int = 1, labeled: bool = True, device: str = "cpu", seed: int = 0):
        self.templates = torch.sign(torch.randn(CLASSES, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1234))) * 0.7
        self.shape = (channels, SIZE, SIZE)
        self.num_classes = CLASSES if labeled else None
        self.name = f"patterns-{SIZE}"
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)

    def images(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One-channel images of ``labels`` (any shape (...)) -> (..., 1, H, W)."""
        noise = torch.randn(*labels.shape, 1, SIZE, SIZE, generator=generator)
        return (self.templates[labels] + 0.3 * noise).clamp(-1, 1)

    def sample_labeled(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        generator = generator or self.generator
        y = torch.randint(CLASSES, (n,), generator=generator)
        return self.images(y, generator), y

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_labeled(n, generator)[0]

    def classifier_data(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(99)
        train_x, train_y = self.sample_labeled(2000, generator)
        test_x, test_y = self.sample_labeled(500, generator)
        return train_x, train_y, test_x, test_y


class StackedPatternData(PatternData):
    """Stacked MNIST's contract: three pattern channels, 1000 modes, one-channel classifier data."""

    channel_classes = CLASSES

    def __init__(self, seed: int = 0):
        super().__init__(channels=3, seed=seed)
        self.num_classes = CLASSES**3
        self.name = f"stacked-patterns-{SIZE}"

    def sample_labeled(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (n, 3, H, W) and their modes 100 r + 10 g + b."""
        generator = generator or self.generator
        digits = torch.randint(CLASSES, (n, 3), generator=generator)
        return self.images(digits, generator).squeeze(2), digits @ torch.tensor([100, 10, 1])

    def classifier_data(self):
        return PatternData().classifier_data()


class ReplayG(nn.Module):
    """A 'generator' that outputs fresh real samples (of one class, if ``only_class`` is set)."""

    z_dim = 4

    def __init__(self, data: PatternData, only_class: int | None = None, seed: int = 5):
        super().__init__()
        self.data, self.only_class = data, only_class
        self.generator = torch.Generator().manual_seed(seed)
        self.dummy = nn.Linear(1, 1)  # a parameter, so that train()/eval() have something to switch
        self.labels: list[torch.Tensor] = []  # the labels (modes) of everything it produced

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.only_class is None:
            x, y = self.data.sample_labeled(len(z), self.generator)
        else:
            y = torch.full((len(z),), self.only_class)
            x = self.data.images(y, self.generator)
        self.labels.append(y)
        return x


class LinearG(nn.Module):
    """A deterministic generator: tanh of a fixed linear map of z."""

    z_dim = 4

    def __init__(self, channels: int = 1):
        super().__init__()
        self.channels = channels
        self.net = nn.Linear(self.z_dim, channels * SIZE * SIZE)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z)).reshape(len(z), self.channels, SIZE, SIZE)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A classifier cache with the pattern classifiers already trained, so evaluator tests only load."""
    path = tmp_path_factory.mktemp("classifiers")
    for data in (PatternData(), StackedPatternData()):
        get_classifier(data.name, data.classifier_data, (1, SIZE, SIZE), CLASSES, path, "cpu", steps=TRAIN_STEPS)
    return path


@pytest.fixture(scope="module")
def classifier(cache_dir):
    data = PatternData()
    model, _ = get_classifier(data.name, data.classifier_data, data.shape, CLASSES, cache_dir, "cpu")
    return model


# --- frechet ----------------------------------------------------------------------------------


def scipy_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """The reference FID formula (pytorch-fid / TTUR): scipy's sqrtm of the product, real part."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def random_gaussian(dim: int, rank: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    factor = rng.normal(size=(dim, rank))
    return rng.normal(size=dim), factor @ factor.T / rank + (0 if rank < dim else 0.1 * np.eye(dim))


@pytest.mark.parametrize("dim, rank1", [(1, 1), (5, 5), (32, 32), (64, 64), (12, 4)])
def test_frechet_distance_matches_scipy_sqrtm(dim, rank1):
    rng = np.random.default_rng(dim)
    mu1, sigma1 = random_gaussian(dim, rank1, rng)  # rank1 < dim: a singular covariance
    mu2, sigma2 = random_gaussian(dim, dim, rng)

    got = frechet_distance(*(torch.from_numpy(a) for a in (mu1, sigma1, mu2, sigma2)))

    assert got == pytest.approx(scipy_frechet(mu1, sigma1, mu2, sigma2), rel=1e-7, abs=1e-9)


def test_frechet_distance_of_identical_statistics_is_zero():
    mu, sigma = gaussian_stats(torch.randn(500, 20, generator=torch.Generator().manual_seed(0)))
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_two_samples_of_the_same_gaussian_is_near_zero():
    # For N(mu, I) in d dimensions and n points per side the mean term alone is 2d/n on average
    # (8e-4 here) and the covariance term is of the same order; 0.01 bounds both with a margin.
    generator = torch.Generator().manual_seed(1)
    mix = torch.randn(8, 8, generator=generator) / 3 + torch.eye(8)
    a = torch.randn(20_000, 8, generator=generator) @ mix
    b = torch.randn(20_000, 8, generator=generator) @ mix

    d = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))

    assert 0.0 < d < 0.01


def test_frechet_distance_grows_with_noise():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(5000, 16, generator=generator) @ (torch.randn(16, 16, generator=generator) / 4)
    noise = torch.randn(5000, 16, generator=generator)
    reference = gaussian_stats(x)

    distances = [frechet_distance(*gaussian_stats(x + level * noise), *reference) for level in (0.0, 0.1, 0.3, 1.0)]

    assert distances[0] == pytest.approx(0.0, abs=1e-9)
    assert all(a < b for a, b in zip(distances, distances[1:])), distances


def test_gaussian_stats_match_numpy():
    x = torch.randn(300, 7, generator=torch.Generator().manual_seed(3))
    mu, sigma = gaussian_stats(x)
    assert mu.dtype == sigma.dtype == torch.float64
    np.testing.assert_allclose(mu.numpy(), x.double().numpy().mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(x.double().numpy(), rowvar=False), rtol=1e-10)


def test_gaussian_stats_need_two_samples():
    with pytest.raises(ValueError, match="n >= 2"):
        gaussian_stats(torch.zeros(1, 3))


# --- classifier and its cache -----------------------------------------------------------------


def test_classifier_trains_caches_and_loads(tmp_path, caplog, monkeypatch):
    data = PatternData()
    rng_before = torch.random.get_rng_state()
    with caplog.at_level(logging.INFO, logger="ganlab"):
        model, accuracy = get_classifier(data.name, data.classifier_data, data.shape, CLASSES, tmp_path, "cpu", steps=TRAIN_STEPS)
    # Training forks the global RNG: the run's z stream is the same whether the cache existed or not.
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert accuracy == pytest.approx(1.0)
    assert (tmp_path / f"{data.name}.pt").is_file()
    assert any("trained" in r.message and "100.00%" in r.message for r in caplog.records)
    assert not model.training and not any(p.requires_grad for p in model.parameters())

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier should have been loaded")

    monkeypatch.setattr(classifier_module, "train_classifier", no_training)
    caplog.clear()
    rng_before = torch.random.get_rng_state()
    with caplog.at_level(logging.INFO, logger="ganlab"):
        loaded, loaded_accuracy = get_classifier(data.name, no_training, data.shape, CLASSES, tmp_path, "cpu")
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # loading draws nothing either (its network is built forked)
    assert loaded_accuracy == accuracy
    assert any("loaded from" in r.message for r in caplog.records)
    x = data.sample(8)
    torch.testing.assert_close(loaded(x), model(x))
    torch.testing.assert_close(loaded.features(x), model.features(x))
    assert model.features(x).shape == (8, 128)


def test_corrupt_cache_file_is_retrained_with_a_warning(tmp_path, caplog):
    data = PatternData()
    (tmp_path / f"{data.name}.pt").write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.INFO, logger="ganlab"):
        _, accuracy = get_classifier(data.name, data.classifier_data, data.shape, CLASSES, tmp_path, "cpu", steps=TRAIN_STEPS)
    assert accuracy == pytest.approx(1.0)
    assert [r.levelno for r in caplog.records if "unusable" in r.message] == [logging.WARNING]
    assert any("trained" in r.message for r in caplog.records)
    # The retrained file replaced the corrupt one and now loads.
    _, again = get_classifier(data.name, lambda: pytest.fail("retrained twice"), data.shape, CLASSES, tmp_path, "cpu")
    assert again == accuracy


def test_cache_for_another_shape_is_not_loaded(cache_dir, tmp_path):
    data = PatternData()
    trained = []

    def classifier_data():
        trained.append(True)
        train_x, train_y, test_x, test_y = data.classifier_data()
        return train_x, train_y % 5, test_x, test_y % 5

    (tmp_path / f"{data.name}.pt").write_bytes((cache_dir / f"{data.name}.pt").read_bytes())
    model, _ = get_classifier(data.name, classifier_data, data.shape, 5, tmp_path, "cpu", steps=5)
    assert trained == [True] and model.head.out_features == 5


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "classifiers"
    monkeypatch.delenv("GANLAB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "ganlab" / "classifiers"


# --- classifier metrics -----------------------------------------------------------------------


def test_real_against_real(classifier):
    data = PatternData()
    real = data.sample(2000, torch.Generator().manual_seed(10))
    other = data.sample(2000, torch.Generator().manual_seed(11))
    collapsed = ReplayG(data, only_class=3)(torch.zeros(2000, 4))

    same = classifier_metrics(real, real, classifier, CLASSES)
    independent = classifier_metrics(other, real, classifier, CLASSES)
    one_class = classifier_metrics(collapsed, real, classifier, CLASSES)

    assert same["fcd"] == pytest.approx(0.0, abs=1e-6)
    assert same["class_kl"] == pytest.approx(0.0, abs=1e-12)
    assert same["classes_covered"] == independent["classes_covered"] == CLASSES
    # Independent real sets: only sampling noise, small against what a collapse costs.
    assert independent["fcd"] < 0.05 * one_class["fcd"]
    assert independent["class_kl"] < 0.01
    assert independent["classifier_is"] == pytest.approx(CLASSES, rel=0.02)


def test_single_class_generator(classifier):
    data = PatternData()
    real = data.sample(2000, torch.Generator().manual_seed(10))
    fake = ReplayG(data, only_class=3)(torch.zeros(2000, 4))

    found = classifier_metrics(fake, real, classifier, CLASSES)

    assert found["classes_covered"] == 1
    # All of p_fake on one class that has ~1/10 of p_real: KL -> log 10 (smoothing takes a little off).
    assert found["class_kl"] == pytest.approx(math.log(CLASSES), rel=0.05)
    assert found["classifier_is"] == pytest.approx(1.0, rel=1e-3)


def one_hot_probs(counts: list[int]) -> torch.Tensor:
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return torch.nn.functional.one_hot(labels, len(counts)).float()


@pytest.mark.parametrize("k", [1, 2, 7, 10])
def test_classifier_score_of_uniform_confident_predictions_is_k(k):
    assert classifier_score(one_hot_probs([50] * k + [0] * (10 - k))) == pytest.approx(k, rel=1e-12)


def test_classifier_score_closed_form_with_soft_predictions():
    # Balanced classes, each sample (1 - eps) on its class and eps / (K - 1) elsewhere: p(y) is
    # uniform and KL(p(y|x) || p(y)) = log K + (1 - eps) log(1 - eps) + eps log(eps / (K - 1)).
    k, eps = 10, 0.2
    probs = one_hot_probs([30] * k).double() * (1 - eps - eps / (k - 1)) + eps / (k - 1)
    expected = math.exp(math.log(k) + (1 - eps) * math.log(1 - eps) + eps * math.log(eps / (k - 1)))
    assert classifier_score(probs) == pytest.approx(expected, rel=1e-12)


def test_coverage_threshold_is_a_tenth_of_the_uniform_share():
    assert coverage_threshold(1000, 10) == 10
    assert coverage_threshold(10_000, 1000) == 1  # Stacked MNIST sizes: the papers' single sample
    assert coverage_threshold(10, 10) == 1
    # 10 samples cover a class at n = 1000, K = 10; 9 do not.
    probs = one_hot_probs([10, 9, 981] + [0] * 7)
    reference = ClassifierReference(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), torch.full((10,), 100), 10)
    assert classifier_scores(torch.randn(1000, 2), probs, reference)["classes_covered"] == 2


def test_stacked_modes(classifier):
    data = StackedPatternData()
    images, modes = data.sample_labeled(3000, torch.Generator().manual_seed(4))

    stacked = ChannelwiseClassifier(classifier, channels=3, channel_classes=CLASSES)
    with torch.no_grad():
        predicted = stacked(images).argmax(dim=1)
    found = stacked_mnist_metrics(images, classifier)

    assert torch.equal(predicted, modes)  # 100 r + 10 g + b, each channel classified on its own
    assert found["modes_covered"] == len(modes.unique())
    assert found["mode_kl"] == pytest.approx(kl_to_uniform(torch.bincount(modes, minlength=1000)), rel=1e-12)
    collapsed = stacked_mnist_metrics(images[modes == modes[0]], classifier)
    assert collapsed == {"modes_covered": 1.0, "mode_kl": pytest.approx(math.log(1000))}


# --- Inception ----------------------------------------------------------------------------------


@pytest.fixture
def no_torch_fidelity(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import fails even where it is installed


@pytest.mark.usefixtures("no_torch_fidelity")
def test_inception_unavailable_says_how_to_provide_it(tmp_path):
    with pytest.raises(InceptionUnavailable) as err:
        inception_metrics(lambda n: pytest.fail("generated"), lambda n: pytest.fail("sampled"), 10, tmp_path / "missing.pth")
    message = str(err.value)
    assert "\n" not in message
    assert "torch-fidelity is not installed" in message and "missing.pth does not exist" in message
    assert "pip install torch-fidelity" in message
    assert "metrics.inception_weights=<path to the pt_inception-2015-12-05 weights file" in message


@pytest.mark.usefixtures("no_torch_fidelity")
def test_evaluator_without_inception_warns_once_and_keeps_classifier_metrics(cache_dir, caplog):
    with caplog.at_level(logging.INFO, logger="ganlab"):
        evaluator = ImageEvaluator(PatternData(), ReplayG.z_dim, 600, seed=0, classifier_cache_dir=cache_dir)
        first = evaluator.evaluate(ReplayG(PatternData()))
        evaluator.evaluate(ReplayG(PatternData()))

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "pip install torch-fidelity" in warnings[0].message
    assert set(first) == set(evaluator.metric_names) == {
        "Metrics/fcd", "Metrics/classes_covered", "Metrics/class_kl", "Metrics/classifier_is", "Metrics/classifier_accuracy",
    }
    assert first["Metrics/classes_covered"] == CLASSES
    assert first["Metrics/classifier_accuracy"] == pytest.approx(1.0)


def fake_torch_fidelity(calls: list[dict], fail: bool = False) -> types.ModuleType:
    module = types.ModuleType("torch_fidelity")

    def calculate_metrics(**kwargs):
        calls.append(kwargs)
        if fail:
            raise RuntimeError("weights do not match the network")
        return {
            "frechet_inception_distance": 12.5,
            "kernel_inception_distance_mean": 0.0125,
            "kernel_inception_distance_std": 0.001,
            "inception_score_mean": 3.25,
            "inception_score_std": 0.1,
        }

    module.calculate_metrics = calculate_metrics
    return module


def test_check_inception_needs_both_package_and_weights(tmp_path, monkeypatch):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"stand-in")
    monkeypatch.setitem(sys.modules, "torch_fidelity", fake_torch_fidelity([]))
    check_inception(weights)  # both there: no exception
    with pytest.raises(InceptionUnavailable, match=r"\(no Inception weights file is configured\)"):
        check_inception(None)
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    with pytest.raises(InceptionUnavailable, match=r"\(torch-fidelity is not installed\)"):
        check_inception(weights)


def test_evaluator_passes_images_and_weights_to_torch_fidelity(cache_dir, tmp_path, monkeypatch):
    calls: list[dict] = []
    monkeypatch.setitem(sys.modules, "torch_fidelity", fake_torch_fidelity(calls))
    weights = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"stand-in")
    data, G = PatternData(), LinearG()
    n = 300

    evaluator = build_evaluator(data, G.z_dim, n, 0, classifier_cache_dir=cache_dir, inception_weights=str(weights))
    found = evaluator.evaluate(G)

    assert {"Metrics/fid", "Metrics/kid", "Metrics/is", "Metrics/fcd"} <= set(evaluator.metric_names) == set(found)
    assert (found["Metrics/fid"], found["Metrics/kid"], found["Metrics/is"]) == (12.5, 0.0125, 3.25)
    (kwargs,) = calls
    assert kwargs["feature_extractor_weights_path"] == str(weights)
    assert kwargs["fid"] and kwargs["kid"] and kwargs["isc"] and not kwargs["cuda"]
    assert kwargs["kid_subset_size"] == n  # torch-fidelity refuses subsets larger than the set
    fake, real = kwargs["input1"], kwargs["input2"]
    assert len(fake) == len(real) == n
    assert fake[0].dtype == torch.uint8 and fake[0].shape == (3, SIZE, SIZE)
    with torch.no_grad():
        expected = to_uint8(G(evaluator.z[:2]))
    assert torch.equal(fake[1], expected[1].repeat(3, 1, 1))  # grey repeated to RGB
    assert torch.equal(real[0][0], real[0][2])


def test_inception_failure_is_reported_once_as_nan(cache_dir, tmp_path, monkeypatch, caplog):
    calls: list[dict] = []
    monkeypatch.setitem(sys.modules, "torch_fidelity", fake_torch_fidelity(calls, fail=True))
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"stand-in")
    evaluator = ImageEvaluator(PatternData(), LinearG.z_dim, 100, 0, cache_dir, weights)

    with caplog.at_level(logging.WARNING, logger="ganlab"):
        first, second = evaluator.evaluate(LinearG()), evaluator.evaluate(LinearG())

    assert len(calls) == 1 and len(caplog.records) == 1 and "weights do not match" in caplog.records[0].message
    assert math.isnan(first["Metrics/fid"]) and math.isnan(second["Metrics/is"])
    assert math.isfinite(second["Metrics/fcd"])


# --- the evaluator ------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_torch_fidelity")
def test_evaluator_batches_match_one_pass(cache_dir, classifier):
    data, G = PatternData(), ReplayG(PatternData(), seed=8)
    evaluator = ImageEvaluator(data, G.z_dim, 700, seed=3, classifier_cache_dir=cache_dir)
    evaluator.eval_batch = 300  # 700 = 300 + 300 + 100: batches of unequal size
    G.train()

    found = evaluator.evaluate(G)

    assert G.training  # G's mode restored
    replay = ReplayG(PatternData(), seed=8)
    fake = torch.cat([replay(z) for z in evaluator.z.split(300)])  # the same draws as the evaluator's
    real = data.sample(700, torch.Generator().manual_seed(3 + 7919))
    expected = classifier_metrics(fake, real, classifier, CLASSES)
    assert found["Metrics/fcd"] == pytest.approx(expected["fcd"], rel=1e-5)
    assert found["Metrics/class_kl"] == pytest.approx(expected["class_kl"], rel=1e-9, abs=1e-12)
    assert found["Metrics/classes_covered"] == expected["classes_covered"] == CLASSES


@pytest.mark.usefixtures("no_torch_fidelity")
def test_evaluator_stacked_mnist(cache_dir):
    data = StackedPatternData()
    evaluator = ImageEvaluator(data, ReplayG.z_dim, 2000, seed=0, classifier_cache_dir=cache_dir)
    assert {"Metrics/modes_covered", "Metrics/mode_kl", "Metrics/fcd"} <= set(evaluator.metric_names)

    G = ReplayG(data, seed=6)
    found = evaluator.evaluate(G)
    modes = torch.cat(G.labels)

    assert found["Metrics/modes_covered"] == len(modes.unique())
    assert found["Metrics/mode_kl"] == pytest.approx(kl_to_uniform(torch.bincount(modes, minlength=1000)), rel=1e-12)
    assert found["Metrics/classifier_accuracy"] == pytest.approx(1.0)


@pytest.mark.usefixtures("no_torch_fidelity")
def test_evaluator_of_a_diverged_generator(cache_dir):
    class NanG(LinearG):
        def forward(self, z):
            return torch.full((len(z), 1, SIZE, SIZE), float("nan"))

    evaluator = ImageEvaluator(PatternData(), LinearG.z_dim, 100, 0, cache_dir)
    found = evaluator.evaluate(NanG())
    assert math.isnan(found["Metrics/fcd"]) and found["Metrics/classes_covered"] == 0
    assert evaluator.picture(NanG(), None).dtype == torch.uint8


@pytest.mark.usefixtures("no_torch_fidelity")
def test_unlabeled_data_has_no_classifier_metrics(tmp_path):
    data = PatternData(labeled=False)
    evaluator = build_evaluator(data, LinearG.z_dim, 50, 0, classifier_cache_dir=tmp_path)
    assert evaluator.metric_names == []
    assert evaluator.evaluate(LinearG()) == {}
    assert list(tmp_path.iterdir()) == []  # no classifier trained


@pytest.mark.usefixtures("no_torch_fidelity")
def test_picture_is_a_fixed_8x8_grid(tmp_path):
    G = LinearG(channels=1)
    evaluator = ImageEvaluator(PatternData(labeled=False), G.z_dim, 10, 0, tmp_path)
    G.train()

    image = evaluator.picture(G, None)

    assert evaluator.picture_tag == "Samples/grid" and evaluator.picture_name == "samples"
    assert image.dtype == torch.uint8 and image.shape == (3, 8 * SIZE + 9 * 2, 8 * SIZE + 9 * 2)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert G.training
    assert torch.equal(evaluator.picture(G, None), image)  # the same z every time
    with torch.no_grad():
        first = to_uint8(G(evaluator.picture_z[:1]))[0, 0]
    # image_grid rounds (x + 1) / 2 * 255, to_uint8 (x + 1) * 127.5: the same up to one level.
    assert (image[0, 2:2 + SIZE, 2:2 + SIZE].int() - first.int()).abs().max() <= 1


def test_build_evaluator_keeps_toy_data_positional():
    evaluator = build_evaluator(Gaussians8(), 2, 64, 0)
    assert isinstance(evaluator, ToyEvaluator) and evaluator.picture_name == "critic"
    with pytest.raises(TypeError, match="no evaluator"):
        build_evaluator(object(), 2, 64, 0)
