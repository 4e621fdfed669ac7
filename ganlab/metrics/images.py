"""Image-quality and class-coverage metrics computed with ganlab's own classifier (no download).

With a classifier trained on the dataset's labels (``ganlab.metrics.classifier``):

* ``fcd``: Fréchet classifier distance, FID's formula on the classifier's 128-d penultimate
  features instead of Inception's 2048-d pool features. 0 for identical feature statistics;
  comparable between runs on the same dataset and classifier, not with published FIDs.
* ``classes_covered``: classes that get at least ``coverage_threshold(n, K)`` =
  max(1, ceil(n / (10 K))) of the n generated samples, i.e. a tenth of the share a uniform class
  distribution would give them. VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018)
  count a Stacked MNIST mode covered when it gets *one* sample, with 26k samples over 1000
  modes (about 4% of a mode's uniform share). With 10 classes and thousands of samples
  a single sample proves nothing: a 99%-accurate classifier alone scatters ~n/100 mislabelled
  samples over the other classes. A tenth of the uniform share (1% of all samples for 10 classes)
  stays above that scatter while any class the generator really produces clears it easily;
  for Stacked MNIST with up to 10k samples the rule is the papers' single sample.
* ``class_kl``: KL(p_fake || p_real) between the predicted-class histograms, both with add-one
  (Laplace) smoothing so that a class missing on either side keeps it finite. About log K for a
  generator that produces a single class of a balanced dataset.
* ``classifier_is``: the Inception Score's formula, exp(E_x KL(p(y|x) || p(y))), with the
  classifier's softmax, on the whole generated set (no splits). Between 1 and K; K when every
  sample is confidently classified and the classes are balanced.

Stacked MNIST (three MNIST digits as R, G, B; 1000 modes) is scored as in VEEGAN and PacGAN:
each channel is classified by the MNIST classifier and the digits give the mode
100 r + 10 g + b; ``modes_covered`` counts modes with at least one sample and ``mode_kl`` is
KL(mode histogram || uniform). :class:`ChannelwiseClassifier` turns the MNIST classifier into a
1000-way one, so the metrics above apply to Stacked MNIST unchanged.

Typical use::

    reference = classifier_reference(real, classifier, num_classes)   # once per run
    features, probs = classify(fake, classifier)
    metrics = classifier_scores(features, probs, reference)
    # or, all at once: classifier_metrics(fake, real, classifier, num_classes)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ganlab.metrics.frechet import frechet_distance, gaussian_stats
from ganlab.metrics.toy import kl_to_uniform

CLASSIFY_BATCH = 500  # images per classifier forward: a few MB of activations at 32x32
COVERAGE_SHARE = 0.1  # a class is covered by a tenth of its uniform share (module docstring)
KL_SMOOTHING = 1.0  # add-one (Laplace) pseudo-count per class in class_kl


class ChannelwiseClassifier(nn.Module):
    """Classify each channel with a one-channel classifier and combine the labels into one mode.

    For Stacked MNIST (3 channels, 10 digits) the mode of an image is 100 r + 10 g + b. Its
    log-probability is the sum of the channels' log-probabilities (the channels are classified
    independently), so the argmax of the 1000-way output is exactly the mode of the three
    per-channel argmaxes. Features are the channels' features, concatenated.
    """

    def __init__(self, classifier: nn.Module, channels: int, channel_classes: int):
        super().__init__()
        self.classifier = classifier
        self.channels = channels
        self.channel_classes = channel_classes
        self.num_classes = channel_classes**channels

    def _per_channel(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        if c != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {c}")
        return x.reshape(n * c, 1, *x.shape[2:])  # (n*c, 1, H, W): image-major, channel-minor

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(self._per_channel(x)).reshape(len(x), -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over the channel_classes**channels modes, the first channel most significant."""
        return self._joint(self.classifier(self._per_channel(x)), len(x))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = _features_and_logits(self.classifier, self._per_channel(x))
        return features.reshape(len(x), -1), self._joint(logits, len(x))

    def _joint(self, channel_logits: torch.Tensor, n: int) -> torch.Tensor:
        log_p = torch.log_softmax(channel_logits, dim=1).reshape(n, self.channels, -1)
        joint = log_p[:, 0]
        for ch in range(1, self.channels):
            joint = (joint[:, :, None] + log_p[:, ch, None, :]).reshape(n, -1)
        return joint


def _features_and_logits(classifier: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass when the classifier offers ``features_and_logits``, else its two methods."""
    if hasattr(classifier, "features_and_logits"):
        return classifier.features_and_logits(x)
    return classifier.features(x), classifier(x)


def classify(images: torch.Tensor, classifier: nn.Module, batch: int = CLASSIFY_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features (n, d) and class probabilities (n, K) of ``images``, in batches, float32."""
    features, probs = [], []
    with torch.no_grad():
        for chunk in images.split(batch):
            feats, logits = _features_and_logits(classifier, chunk.float())
            features.append(feats.float())
            probs.append(torch.softmax(logits.float(), dim=1))
    return torch.cat(features), torch.cat(probs)


def coverage_threshold(n: int, num_classes: int) -> int:
    """Samples a class needs to count as covered: max(1, ceil(n / (10 K))) (module docstring)."""
    return max(1, math.ceil(COVERAGE_SHARE * n / num_classes))


def class_counts(probs: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Histogram (K,) of the predicted (argmax) classes, on the CPU."""
    return torch.bincount(probs.argmax(dim=1).cpu(), minlength=num_classes)


def class_kl(counts_fake: torch.Tensor, counts_real: torch.Tensor, smoothing: float = KL_SMOOTHING) -> float:
    """KL(p_fake || p_real) of two class histograms, each with ``smoothing`` added to every bin."""
    p = counts_fake.double() + smoothing
    q = counts_real.double().to(p.device) + smoothing
    p, q = p / p.sum(), q / q.sum()
    return float((torch.xlogy(p, p) - torch.xlogy(p, q)).sum())


def classifier_score(probs: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))), the Inception Score's formula, on one split of ``probs`` (n, K).

    p(y) is the mean of the rows; 0 log 0 counts as 0, so classes nobody predicts do no harm.
    """
    p_yx = probs.double()
    p_y = p_yx.mean(dim=0, keepdim=True)
    kl = (torch.xlogy(p_yx, p_yx) - torch.xlogy(p_yx, p_y)).sum(dim=1)
    return float(torch.exp(kl.mean()))


@dataclass(frozen=True)
class ClassifierReference:
    """What the metrics need from the real images, computed once: feature Gaussian and class histogram."""

    mu: torch.Tensor
    sigma: torch.Tensor
    counts: torch.Tensor
    num_classes: int


def classifier_reference(real: torch.Tensor, classifier: nn.Module, num_classes: int, batch: int = CLASSIFY_BATCH) -> ClassifierReference:
    features, probs = classify(real, classifier, batch)
    mu, sigma = gaussian_stats(features)
    return ClassifierReference(mu, sigma, class_counts(probs, num_classes), num_classes)


def classifier_scores(features: torch.Tensor, probs: torch.Tensor, reference: ClassifierReference) -> dict[str, float]:
    """``fcd``, ``classes_covered``, ``class_kl`` and ``classifier_is`` of generated images' classifier outputs."""
    mu, sigma = gaussian_stats(features)
    counts = class_counts(probs, reference.num_classes)
    return {
        "fcd": frechet_distance(mu, sigma, reference.mu, reference.sigma),
        "classes_covered": float((counts >= coverage_threshold(len(probs), reference.num_classes)).sum()),
        "class_kl": class_kl(counts, reference.counts),
        "classifier_is": classifier_score(probs),
    }


def classifier_metrics(fake: torch.Tensor, real: torch.Tensor, classifier: nn.Module, num_classes: int) -> dict[str, float]:
    """All classifier metrics of ``fake`` (n, C, H, W) against ``real`` (m, C, H, W), both in [-1, 1]."""
    reference = classifier_reference(real, classifier, num_classes)
    return classifier_scores(*classify(fake, classifier), reference)


def mode_scores(probs: torch.Tensor) -> dict[str, float]:
    """``modes_covered`` (modes with at least one sample) and ``mode_kl`` (to uniform) of K-way predictions."""
    counts = class_counts(probs, probs.shape[1])
    return {"modes_covered": float((counts > 0).sum()), "mode_kl": kl_to_uniform(counts)}


def stacked_mnist_metrics(fake: torch.Tensor, classifier: nn.Module, channel_classes: int = 10) -> dict[str, float]:
    """``modes_covered`` (of 1000) and ``mode_kl`` of Stacked MNIST images, with the one-channel MNIST ``classifier``."""
    stacked = ChannelwiseClassifier(classifier, channels=fake.shape[1], channel_classes=channel_classes)
    _, probs = classify(fake, stacked)
    return mode_scores(probs)
