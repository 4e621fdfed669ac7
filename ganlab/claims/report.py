"""``report.md`` of ``ganlab claims``: a summary table, then per claim its statement and source,
every setting, the exact commands, the measured figures with their intervals, its table and
figures, and the verdict with the checks that decided it.

The report covers every claim of the output folder that has a result (``<NN>_<slug>/result.json``),
so claims run one by one (``claims=[1]``, then ``claims=[2]``) end in one report.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from types import ModuleType

import torch

import ganlab
from ganlab.apps.parallel import available_cores
from ganlab.claims.base import Outcome
from ganlab.claims.runner import RESULT_FILE, folder
from ganlab.runinfo import git_commit

QUICK_WARNING = ("**Quick mode**: this checks the machinery end to end at a tiny budget. Its verdicts are not "
                 "evidence for or against any claim; run `ganlab claims mode=full` for them.")


def machine() -> str:
    """One line: the CPU or GPU, cores, torch and ganlab versions."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"{platform.processor() or platform.machine()} CPU"
    cores = available_cores()
    commit = git_commit()
    return f"{device}, {cores} cores, torch {torch.__version__}, ganlab {ganlab.__version__}" + (f" ({commit[:7]})" if commit else "")


def summary_rows(entries: list[tuple[ModuleType, dict]]) -> list[str]:
    """The summary table: per claim its title (linked to its section), verdict, and the measured figures
    against the thresholds that decided the verdict (:meth:`Outcome.because`)."""
    rows = ["| # | claim | verdict | decided by (measured vs threshold) |", "| --- | --- | --- | --- |"]
    for module, body in entries:
        outcome = Outcome.from_json(body["outcome"])
        decided = outcome.because().replace("|", "\\|")
        rows.append(f"| {module.NUMBER} | [{module.TITLE}](#{_anchor(module)}) | **{outcome.verdict.value}** | {decided} |")
    return rows


def _anchor(module: ModuleType) -> str:
    return f"claim-{module.NUMBER}"


def claim_section(module: ModuleType, body: dict) -> list[str]:
    outcome = Outcome.from_json(body["outcome"])
    lines = [
        f'<a id="{_anchor(module)}"></a>',
        f"## {module.NUMBER}. {module.TITLE}",
        "",
        f"**Claim.** {module.STATEMENT}",
        "",
        f"**Source.** {module.SOURCE}",
        "",
        f"**Verdict: {outcome.verdict.value}.** {outcome.because()}",
        "",
        "**Settings** (mode " + body["mode"] + f", measured in {body.get('seconds', '?')} s):",
        "",
        "```json",
        json.dumps(body["settings"], indent=1),
        "```",
        "",
        "**Commands:**",
        "",
        "```",
        *outcome.commands,
        "```",
        "",
        "**Measured:**",
        "",
        *(f"- {f.name}: {f.text()}" + (f" ({f.interval})" if f.interval else "") for f in outcome.figures),
        "",
    ]
    if outcome.table:
        lines += [outcome.table.rstrip(), ""]
    lines += [f"![{Path(p).stem}]({folder(module)}/{p})" for p in outcome.plots]
    lines += [""] if outcome.plots else []
    lines += ["**Checks** (thresholds fixed in `ganlab/claims/" + module.SLUG + ".py` before the full run):", ""]
    lines += [f"- {c.what}: {c.detail} — {'passed' if c.passed else 'failed' if c.passed is False else 'undecided'}" for c in outcome.checks]
    if outcome.notes:
        lines += ["", "**Notes:**", "", *(f"- {n}" for n in outcome.notes)]
    return lines + [""]


def stored(out: Path, modules: list[ModuleType]) -> list[tuple[ModuleType, dict]]:
    """(module, result body) of every claim in ``out`` that has a readable result, in claim order."""
    entries = []
    for module in modules:
        try:
            entries.append((module, json.loads((out / folder(module) / RESULT_FILE).read_text())))
        except (OSError, ValueError):
            continue
    return entries


def write_report(out: Path, modules: list[ModuleType], command: str) -> Path:
    """Write ``out/report.md`` over every claim with a stored result; returns its path."""
    entries = stored(out, modules)
    modes = sorted({body["mode"] for _, body in entries})
    lines = [
        "# ganlab claims: the textbook claims, measured",
        "",
        f"Machine: {machine()}. Mode: {', '.join(modes) or '-'}. Command: `{command}`.",
        "",
    ]
    if "quick" in modes:
        lines += [QUICK_WARNING, ""]
    lines += ["Every verdict is computed from the measurements with thresholds written in each claim's module "
              "before the full run: *held*, *did not hold*, or *inconclusive* where an interval straddles a threshold "
              "or too few runs finished.", ""]
    lines += summary_rows(entries) + [""]
    for module, body in entries:
        lines += claim_section(module, body)
    path = out / "report.md"
    tmp = out / "report.md.tmp"
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return path
