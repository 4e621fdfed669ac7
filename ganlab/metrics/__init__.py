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
