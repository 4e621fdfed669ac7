"""What ``ganlab compare`` shows and writes: rich tables in the terminal, summary.csv, summary.json, report.md.

The tables, best group first on the chosen metric:

- the chosen metric per group: seeds, IQM and mean with their intervals, standard deviation,
  median, and a note where fewer than 5 seeds make the interval unreliable;
- every final quality metric per group (mean ± standard deviation; the files add the yardsticks
  such as ``Metrics/w1_real_baseline``);
- every pair of groups: P(a run of A beats a run of B) with its interval, the exact Mann-Whitney
  test's p-value and the verdict.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

import ganlab
from ganlab.compare.comparison import Comparison
from ganlab.compare.runs import DIVERGED
from ganlab.compare.stats import FEW_SEEDS, Interval, Summary

CSV_FIELDS = [
    "group", "metric", "higher_is_better", "n", "n_nonfinite", "mean", "std", "median", "iqm",
    "mean_ci_low", "mean_ci_high", "iqm_ci_low", "iqm_ci_high", "ci_method", "note",
]


def note(summary: Summary, steps: str = "") -> str:
    """What a reader must know beside a group's interval; ``steps``: :meth:`Comparison.steps_note`."""
    parts = [steps] if steps else []
    if summary.n < 2:
        parts.append("1 seed: no CI")
    elif summary.mean_ci.method == "none":
        parts.append("a dataset with 1 seed: no CI")
    elif summary.n < FEW_SEEDS:
        parts.append(f"n<{FEW_SEEDS}: CI unreliable")
    if summary.n_nonfinite:
        parts.append(f"{summary.n_nonfinite} diverged: out of the mean, lose every pair")
    return "; ".join(parts)


def direction_text(higher_is_better: bool | None) -> str:
    return {True: "higher is better", False: "lower is better", None: "not ranked"}[higher_is_better]


def method_text(comparison: Comparison) -> str:
    s = comparison.settings
    return (f"{s.confidence:.0%} confidence intervals by bootstrap over seeds (BCa, {s.resamples} resamples, seed {s.seed}"
            f"{', stratified by dataset' if any(len(g.datasets) > 1 for g in comparison.groups) else ''}); "
            "IQM: interquartile mean (Agarwal et al. 2021). "
            f"n<{FEW_SEEDS}: with fewer than {FEW_SEEDS} seeds the intervals undercover (a nominal 95% interval of the mean holds the true "
            "mean of normal data in about 72% of draws with 3 seeds, 85% with 5, 90% with 10, 93% with 20) and the IQM is (almost) the mean. "
            "Diverged runs (non-finite values) are left out of the summaries and lose every pairwise comparison")


# ------------------------------------------------------------------------------ terminal
def print_tables(comparison: Comparison, console: Console | None = None) -> None:
    console = console or Console()
    metric = comparison.metric
    table = Table(title=f"{metric} ({direction_text(comparison.higher_is_better)}), best first by IQM", caption=method_text(comparison), **COMPACT)
    for column in ("#", "group", "seeds", "IQM [CI]", "mean [CI]", "std", "median", "note"):
        table.add_column(column, justify="right" if column in ("#", "seeds", "std", "median") else "left", **_whole(column))
    for rank, group in enumerate(comparison.groups, 1):
        s = comparison.summaries[group.label][metric]
        table.add_row(str(rank), group.label, str(len(group.runs)), with_interval(s.iqm, s.iqm_ci), with_interval(s.mean, s.mean_ci), fmt(s.std), fmt(s.median), note(s, comparison.steps_note(group)))
    console.print(table)

    ranked = [tag for tag in comparison.metrics if comparison.direction(tag) is not None]  # the yardsticks (w1_real_baseline) are in the files
    others = Table(title="quality metrics: mean ± std over seeds (↓ lower is better, ↑ higher)", **COMPACT)
    others.add_column("group", **_whole("group"))
    for tag in ranked:
        others.add_column(f"{tag.removeprefix('Metrics/')} {ARROWS[comparison.direction(tag)]}", justify="right", overflow="fold")
    for group in comparison.groups:
        others.add_row(group.label, *(mean_std(comparison.summaries[group.label][tag]) for tag in ranked))
    console.print(others)

    if comparison.pairs:
        pairs = Table(title=f"probability of improvement on {metric}: P(a run of A beats a run of B)", **COMPACT)
        for column in ("A", "B", "P(A > B) [CI]", "test p", "verdict"):
            pairs.add_column(column, **_whole(column))
        for pair in comparison.pairs:
            pairs.add_row(pair.better, pair.other, with_interval(pair.probability, pair.interval, digits=2), fmt(pair.p_value, 2), pair.verdict)
        console.print(pairs)
    for title, runs in left_apart(comparison):
        if runs:
            console.print(f"[bold]{title}:[/bold]")
            for run in runs:
                console.print(f"  {run.path}: {run.reason}", markup=False, highlight=False)


COMPACT = {"box": box.SIMPLE_HEAD, "pad_edge": False}  # no vertical rules: the tables fit an 80-column terminal
ARROWS = {True: "↑", False: "↓", None: "·"}  # higher is better, lower is better, not ranked


def _whole(column: str) -> dict[str, Any]:
    """Nothing is cut short ("objectiv…") in a narrow terminal: names fold, intervals wrap at their space."""
    return {"overflow": "fold", "min_width": 12} if column in ("group", "A", "B", "verdict") else {"overflow": "fold"}


def left_apart(comparison: Comparison) -> list[tuple[str, list]]:
    """The runs listed under the tables, by kind, with a title each."""
    diverged = [run for group in comparison.groups for run in group.runs if run.status == DIVERGED]
    return [
        ("diverged runs (in their groups: out of the means, losing every pair)", diverged),
        ("duplicate runs of a seed (left out)", comparison.duplicates),
        ("failed runs (left out)", comparison.failed),
        ("unfinished runs (left out)", comparison.unfinished),
    ]


# ------------------------------------------------------------------------------- files
def write_csv(comparison: Comparison, path: Path) -> None:
    """One row per group and metric."""
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, CSV_FIELDS)
        writer.writeheader()
        for group in comparison.groups:
            for tag in comparison.metrics:
                s = comparison.summaries[group.label][tag]
                writer.writerow({
                    "group": group.label, "metric": tag, "higher_is_better": comparison.direction(tag),
                    "n": s.n, "n_nonfinite": s.n_nonfinite, "mean": s.mean, "std": s.std, "median": s.median, "iqm": s.iqm,
                    "mean_ci_low": s.mean_ci.low, "mean_ci_high": s.mean_ci.high, "iqm_ci_low": s.iqm_ci.low, "iqm_ci_high": s.iqm_ci.high,
                    "ci_method": s.mean_ci.method, "note": note(s, comparison.steps_note(group)),
                })


def summary_json(comparison: Comparison, figures: list[str], command: str) -> dict[str, Any]:
    s = comparison.settings
    return {
        "ganlab": ganlab.__version__,
        "command": command,
        "metric": comparison.metric,
        "higher_is_better": comparison.higher_is_better,
        "confidence": s.confidence, "resamples": s.resamples, "seed": s.seed, "method": method_text(comparison),
        "groups": [
            {
                "label": group.label,
                "key": dict(group.key),
                "datasets": group.datasets,
                "runs": [{"path": str(run.path), "seed": run.seed, "step": run.step, "status": run.status} for run in group.runs],
                "metrics": {tag: _summary_dict(comparison.summaries[group.label][tag]) for tag in comparison.metrics},
            }
            for group in comparison.groups
        ],
        "pairs": [
            {"a": p.better, "b": p.other, "p_a_beats_b": _number(p.probability), "ci": _interval(p.interval), "ci_method": p.interval.method,
             "mann_whitney_p": p.p_value, "verdict": p.verdict}
            for p in comparison.pairs
        ],
        "duplicates": [{"path": str(run.path), "reason": run.reason} for run in comparison.duplicates],
        "failed": [{"path": str(run.path), "reason": run.reason} for run in comparison.failed],
        "unfinished": [{"path": str(run.path), "reason": run.reason} for run in comparison.unfinished],
        "figures": figures,
    }


def write_json(comparison: Comparison, path: Path, figures: list[str], command: str) -> None:
    path.write_text(json.dumps(summary_json(comparison, figures, command), indent=2) + "\n")


def write_markdown(comparison: Comparison, path: Path, figures: list[str], command: str) -> None:
    """report.md: the command, the tables, the left-out runs and the figures (relative links)."""
    metric = comparison.metric
    lines = [f"# ganlab compare: {metric}", "", f"    {command}", "", method_text(comparison) + ".", ""]
    lines += [f"## {metric} ({direction_text(comparison.higher_is_better)}), best first by IQM", ""]
    lines += _md_table(["#", "group", "seeds", "IQM [CI]", "mean [CI]", "std", "median", "note"], [
        [str(rank), group.label, str(len(group.runs)), with_interval(s.iqm, s.iqm_ci), with_interval(s.mean, s.mean_ci), fmt(s.std), fmt(s.median), note(s, comparison.steps_note(group))]
        for rank, group in enumerate(comparison.groups, 1)
        for s in [comparison.summaries[group.label][metric]]
    ])
    lines += ["", "## All final metrics: mean ± std over seeds", ""]
    lines += _md_table(["group"] + [f"{t.removeprefix('Metrics/')} ({direction_text(comparison.direction(t))})" for t in comparison.metrics], [
        [group.label] + [mean_std(comparison.summaries[group.label][t]) for t in comparison.metrics] for group in comparison.groups
    ])
    if comparison.pairs:
        lines += ["", f"## Probability of improvement on {metric}", "",
                  f"P(A > B): the probability that a run of A beats a run of B; test p: the exact Mann-Whitney U test of P(A > B) = 0.5 "
                  f"(one dataset). Inconclusive when the interval holds 0.5 or p >= {1 - comparison.settings.confidence:.2g}.", ""]
        lines += _md_table(["A", "B", "P(A > B) [CI]", "test p", "verdict"], [
            [p.better, p.other, with_interval(p.probability, p.interval, digits=2), fmt(p.p_value, 2), p.verdict] for p in comparison.pairs
        ])
    for title, runs in left_apart(comparison):
        if runs:
            lines += ["", f"## {title[0].upper()}{title[1:]}", ""] + [f"- `{run.path}`: {run.reason}" for run in runs]
    if figures:
        lines += ["", "## Curves: mean over seeds with its band", ""]
        lines += [f"![{Path(f).stem}]({f})" for f in figures]
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------ numbers
def fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def with_interval(value: float, interval: Interval, digits: int = 4) -> str:
    if interval.method == "none":
        return fmt(value, digits)
    return f"{fmt(value, digits)} [{fmt(interval.low, digits)}, {fmt(interval.high, digits)}]"


def mean_std(summary: Summary) -> str:
    if summary.n == 0:
        return "–"
    return fmt(summary.mean) if summary.n < 2 else f"{fmt(summary.mean)} ± {fmt(summary.std, 2)}"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    escape = lambda cell: cell.replace("|", "\\|")  # noqa: E731
    return ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(map(escape, row)) + " |" for row in rows]


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN


def _interval(interval: Interval) -> list[float | None]:
    return [_number(interval.low), _number(interval.high)]


def _summary_dict(s: Summary) -> dict[str, Any]:
    return {
        "n": s.n, "n_nonfinite": s.n_nonfinite, "mean": _number(s.mean), "std": _number(s.std), "median": _number(s.median),
        "iqm": _number(s.iqm), "mean_ci": _interval(s.mean_ci), "iqm_ci": _interval(s.iqm_ci), "ci_method": s.mean_ci.method, "note": note(s),
    }
