"""The comparison of groups of runs on their final metrics: summaries over seeds and pairwise odds.

:func:`compare` takes the runs that :func:`ganlab.compare.runs.find_runs` found, groups the
finished ones (:mod:`ganlab.compare.grouping`), summarises every final metric of every group
(:func:`ganlab.compare.stats.summarize`, stratified by dataset), ranks the groups by the IQM of the
chosen metric in its direction, and gives for every pair of groups the probability that a run of the
better-ranked one beats a run of the other, with its interval and the exact Mann-Whitney test
(inconclusive when the interval holds 0.5 or the test's p-value is not below 1 - confidence).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from ganlab.compare import stats
from ganlab.compare.grouping import Group, group_runs
from ganlab.compare.runs import DIVERGED, FAILED, FINISHED, UNFINISHED, Run
from ganlab.errors import ConfigError
from ganlab.metrics import HIGHER_IS_BETTER, named_metric

log = logging.getLogger("ganlab")


@dataclass(frozen=True)
class Settings:
    """How the intervals are computed: level, bootstrap resamples, and the resampling seed."""

    confidence: float = stats.CONFIDENCE
    resamples: int = stats.RESAMPLES
    seed: int = 0


@dataclass
class Pair:
    """P(a run of ``better`` beats a run of ``other``) on the chosen metric, with its interval and the
    p-value of the exact Mann-Whitney test (None over several datasets); ``alpha`` = 1 - confidence."""

    better: str
    other: str
    probability: float
    interval: stats.Interval
    p_value: float | None
    alpha: float

    @property
    def verdict(self) -> str:
        """Inconclusive when the interval holds 0.5 (or there is none), or the test's p-value is not below alpha."""
        if self.interval.method == "none" or self.interval.contains(0.5):
            return "inconclusive"
        if self.p_value is not None and self.p_value >= self.alpha:
            return f"inconclusive (test p = {self.p_value:.2g})"
        return f"{self.better} better" if self.probability > 0.5 else f"{self.other} better"


@dataclass
class Comparison:
    """Everything ``ganlab compare`` reports. ``groups`` are ranked best first on ``metric``;
    ``summaries[label][metric tag]``. Finished and diverged runs make the groups (a diverged seed's
    metrics count as non-finite); ``failed`` and ``unfinished`` runs are left out, and so are
    ``duplicates``: a second run of a seed already in its group (a copied sweep, a job run again
    under another name), of which the one evaluated last (the most steps) is kept."""

    metric: str
    higher_is_better: bool
    groups: list[Group]
    summaries: dict[str, dict[str, stats.Summary]]
    pairs: list[Pair]
    failed: list[Run]
    unfinished: list[Run]
    settings: Settings
    metrics: list[str] = field(default_factory=list)  # every final metric, the chosen one first
    duplicates: list[Run] = field(default_factory=list)

    def steps_note(self, group: Group) -> str:
        """'steps 300-600' when the group's runs were evaluated at different final steps, else ''."""
        steps = sorted({run.step for run in group.runs if run.status == FINISHED})
        return f"steps {steps[0]}-{steps[-1]}" if len(steps) > 1 else ""

    def direction(self, metric: str) -> bool | None:
        """True: higher is better; False: lower is; None: not a quality metric (not ranked)."""
        return self.higher_is_better if metric == self.metric else HIGHER_IS_BETTER.get(metric)


def compare(
    runs: Sequence[Run], metric: str = "auto", higher_is_better: bool | None = None,
    group_by: Sequence[str] | None = None, settings: Settings = Settings(),
) -> Comparison:
    """Group, summarise and rank ``runs`` (see the module docstring).

    Args:
        runs: found runs of every state; only finished ones are compared.
        metric: the ranking metric's tag, or ``auto`` (the first of :data:`ganlab.metrics.AUTO_METRICS` the runs report).
        higher_is_better: the metric's direction; None: ganlab's own (``ganlab.metrics.HIGHER_IS_BETTER``).
        group_by: attribute names to group by; None: the attributes that differ between the runs.

    Raises:
        ConfigError: no finished run, an unknown metric, or a metric of unknown direction.
    """
    finished = [run for run in runs if run.status == FINISHED]
    failed = [run for run in runs if run.status == FAILED]
    unfinished = [run for run in runs if run.status == UNFINISHED]
    if not finished:
        raise ConfigError(f"none of the {len(runs)} runs found has finished (failed: {len(failed)}, unfinished: {len(unfinished)}); a run is finished when its metrics.json has its final metrics")
    metrics = list(dict.fromkeys(tag for run in finished for tag in run.final))
    metric = named_metric("metric", metric, metrics, who="these runs report")
    known = HIGHER_IS_BETTER.get(metric)
    if higher_is_better is None:
        higher_is_better = known
        if higher_is_better is None:
            raise ConfigError(f"metric={metric}: ganlab does not know whether higher or lower is better; pass higher_is_better=true or higher_is_better=false")
    elif known is not None and higher_is_better != known:
        log.warning("higher_is_better=%s ranks %s against its known direction (%s is better)", higher_is_better, metric, "higher" if known else "lower")
    metrics = [metric] + [m for m in metrics if m != metric]
    groups = group_runs([run for run in runs if run.status in (FINISHED, DIVERGED)], group_by)
    duplicates = [run for group in groups for run in _keep_one_run_per_seed(group)]
    summaries = {
        group.label: {m: stats.summarize(_strata(group, m), settings.confidence, settings.resamples, settings.seed) for m in metrics}
        for group in groups
    }
    groups.sort(key=lambda group: _rank_key(summaries[group.label][metric], higher_is_better))
    pairs = [
        _pair(better, other, metric, higher_is_better, settings)
        for i, better in enumerate(groups) for other in groups[i + 1:]
    ]
    return Comparison(metric, higher_is_better, groups, summaries, [p for p in pairs if p], failed, unfinished, settings, metrics, duplicates)


def _keep_one_run_per_seed(group: Group) -> list[Run]:
    """Keep one run per (dataset, seed) in ``group``, the one evaluated last (the most steps; the first
    by path among equals), and return the others: seeds counted twice would narrow the intervals."""
    kept: dict[tuple[str, Any], Run] = {}
    for run in group.runs:
        key = (run.dataset, run.seed)
        if key not in kept or run.step > kept[key].step:
            kept[key] = run
    left_out = [run for run in group.runs if kept[(run.dataset, run.seed)] is not run]
    for run in left_out:
        winner = kept[(run.dataset, run.seed)]
        run.reason = f"seed {run.seed} of {group.label} again (step {run.step}); kept {winner.path} (step {winner.step})"
    group.runs = [run for run in group.runs if run not in left_out]
    return left_out


def _strata(group: Group, metric: str) -> list[list[float]]:
    """The group's values of ``metric``, one list per dataset (the bootstrap's strata)."""
    by_dataset: dict[str, list[float]] = {}
    for run in group.runs:
        by_dataset.setdefault(run.dataset, []).append(run.final.get(metric, math.nan))
    return list(by_dataset.values())


def _rank_key(summary: stats.Summary, higher_is_better: bool) -> tuple[bool, float]:
    """Best first by IQM; groups with no finite value last."""
    if summary.n == 0:
        return (True, 0.0)
    return (False, -summary.iqm if higher_is_better else summary.iqm)


def _pair(better: Group, other: Group, metric: str, higher_is_better: bool, settings: Settings) -> Pair | None:
    """The pair's probability of improvement over the datasets both groups ran; None when they share none."""
    common = sorted(set(better.datasets) & set(other.datasets))
    if not common:
        return None
    a = [[run.final.get(metric, math.nan) for run in better.runs if run.dataset == d] for d in common]
    b = [[run.final.get(metric, math.nan) for run in other.runs if run.dataset == d] for d in common]
    probability = stats.probability_of_improvement(a, b, higher_is_better)
    interval = stats.improvement_interval(a, b, higher_is_better, settings.confidence, settings.resamples, settings.seed)
    p_value = stats.improvement_test(a, b, higher_is_better)
    return Pair(better.label, other.label, probability, interval, p_value, 1 - settings.confidence)
