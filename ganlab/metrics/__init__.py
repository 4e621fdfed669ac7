"""Evaluation metrics: exact optimal transport and mode coverage for the 2-D toy datasets."""

# optimized_metric=auto and ganlab compare's metric=auto: the first of these that the runs report
# (2-D data, classifier metrics on images, Inception metrics).
AUTO_METRICS = ("Metrics/w1_ratio", "Metrics/fcd", "Metrics/fid")

# Which way each metric is better, for ganlab compare's ranking and the probability of improvement.
# Metrics not listed (Metrics/w1_real_baseline, Metrics/classifier_accuracy) describe the yardstick,
# not the generator: they are reported but not ranked.
HIGHER_IS_BETTER = {
    "Metrics/modes_covered": True, "Metrics/high_quality": True, "Metrics/classes_covered": True,
    "Metrics/classifier_is": True, "Metrics/is": True,
    "Metrics/w1": False, "Metrics/w1_ratio": False, "Metrics/mode_kl": False, "Metrics/fcd": False,
    "Metrics/class_kl": False, "Metrics/fid": False, "Metrics/kid": False,
}


def named_metric(option: str, name: str, reported: list[str], who: str = "this run reports") -> str:
    """The metric tag that option ``option=name`` names among ``reported``: ``auto`` is the first of
    :data:`AUTO_METRICS` reported. ``who`` words the error (``"this run reports"``, ``"these runs report"``).

    Raises:
        ConfigError: ``auto`` finds none of them, or ``name`` is not reported; the message lists what is.
    """
    from ganlab.errors import ConfigError

    listed = ", ".join(reported)
    if name == "auto":
        for tag in AUTO_METRICS:
            if tag in reported:
                return tag
        raise ConfigError(f"{option}=auto: {who} none of {', '.join(AUTO_METRICS)}; name one of: {listed}")
    if name not in reported:
        raise ConfigError(f"{option}={name} is not a metric {who}; reported: {listed}")
    return name
