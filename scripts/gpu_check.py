"""Judges the checks that ``scripts/gpu_check.sh`` runs and prints their figures.

``gpu_check.sh`` runs each check as a plain command and hands what it left behind to one of
these subcommands, which prints the figures and one ``PASS <check>: ...`` or ``FAIL <check>: ...``
line, and exits 0 on PASS, 1 on FAIL::

    python scripts/gpu_check.py tests JUNIT_XML --rc RC --seconds S --log LOG [--dry-run]
    python scripts/gpu_check.py bench LOG --rc RC --seconds S --cases A,B --objectives ... --precisions ... [--dry-run]
    python scripts/gpu_check.py train RUN_DIR --rc RC --seconds S --check NAME --precision P --steps N --log LOG [--dry-run]

``--dry-run`` (everything on the CPU, tiny sizes) accepts what only a GPU can give: CUDA tests that
skip, a run on ``device=cpu``. Everything else is judged the same way, so the dry run that CI
runs keeps this parsing in step with the training loop's tags and files.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

# An fp16 run with a GradScaler skips the steps whose scaled gradients overflowed. The scaler
# starts at 2^16 and halves after each overflow, so a healthy run skips a handful while the scale
# settles (each optimizer step counts: n_critic critic steps and one generator step per step).
MAX_SKIPPED_SHARE = 0.05
# The README's GPU targets (section Speed): reported beside the figures, not judged. Speed depends
# on the machine, and a check that fails for a slower GPU would hide the failures that matter.
TARGET_SPEEDUP = 3.0  # ganlab over the reference loop, generator steps per second
TARGET_BF16_OVER_FP32 = {"resnet32": 1.7}  # WGAN-GP, ganlab's steps per second
TIMED_OUT = (124, 137)  # timeout(1)'s status, and SIGKILL's after its grace period
LOG_TAIL = 20  # lines of a failed check's log printed under its FAIL line


@dataclass
class Verdict:
    """One check's outcome: ``problems`` empty means PASS; ``figures`` are printed above the line."""

    check: str
    summary: str = ""
    problems: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def line(self) -> str:
        """``PASS <check>: <summary>`` or ``FAIL <check>: <problems>; <summary>``."""
        if self.passed:
            return f"PASS {self.check}: {self.summary}"
        return f"FAIL {self.check}: {'; '.join(self.problems)}" + (f" ({self.summary})" if self.summary else "")


def exit_problem(rc: int, seconds: float) -> list[str]:
    """The problem a command's exit status names, if any."""
    if rc in TIMED_OUT:
        return [f"timed out after {seconds:.0f} s"]
    return [f"exit status {rc}"] if rc else []


# -------------------------------------------------------------------------------- the CUDA tests


def judge_tests(junit: Path, rc: int, seconds: float, dry_run: bool) -> Verdict:
    """``pytest -m cuda`` from its JUnit XML: all selected tests passed (on the CPU: skipped).

    A CUDA test that skips on a CUDA machine did not check anything, so it fails the check there.
    """
    verdict = Verdict("cuda-tests")
    if not junit.is_file():
        verdict.problems = exit_problem(rc, seconds) + [f"pytest wrote no report {junit}"]
        return verdict
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    for suite in ET.parse(junit).getroot().iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(f"{case.get('classname')}::{case.get('name')}")
    bad = counts["failures"] + counts["errors"]
    passed = counts["tests"] - bad - counts["skipped"]
    verdict.summary = f"{passed} passed, {bad} failed, {counts['skipped']} skipped in {seconds:.0f} s"
    verdict.figures = [f"  failed: {name}" for name in failed]
    if counts["tests"] == 0:
        verdict.problems.append("no test is marked cuda (pytest -m cuda selected none)")
    elif bad:
        verdict.problems.append(f"{bad} of {counts['tests']} CUDA tests failed")
    elif counts["skipped"] and not dry_run:
        verdict.problems.append(f"{counts['skipped']} CUDA tests skipped on a CUDA machine")
    if not verdict.problems:
        verdict.problems = exit_problem(rc, seconds)
    return verdict


# ---------------------------------------------------------------------------------- the benchmark


def parse_bench(text: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The ``case=...`` lines and the ``bf16_over_fp32 ...`` lines of ``scripts/bench_train.py``, as key=value dicts."""

    def fields(line: str) -> dict[str, str]:
        return dict(token.split("=", 1) for token in line.split() if "=" in token)

    lines = text.splitlines()
    cases = [fields(line) for line in lines if line.startswith("case=") and "skipped:" not in line]
    ratios = [fields(line) for line in lines if line.startswith("bf16_over_fp32 ")]
    return cases, ratios


def _number(value: str | None) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def judge_bench(text: str, rc: int, seconds: float, cases: list[str], objectives: list[str], precisions: list[str], dry_run: bool = False) -> Verdict:
    """Every (case, objective, precision) asked for printed one line with finite, positive rates.

    The README's GPU targets are noted beside the figures (not in a dry run: they are for CUDA)."""
    verdict = Verdict("bench")
    rows, ratios = parse_bench(text)
    header = f"  {'case':<10} {'objective':<14} {'precision':<9} {'ganlab st/s':>11} {'ref st/s':>9} {'speedup':>7} {'peak MiB':>8}  critic ms fwd/gp/bwd"
    verdict.figures.append(header)
    broken = []
    for row in rows:
        ganlab, reference, speedup = (_number(row.get(k)) for k in ("ganlab_steps_per_s", "reference_steps_per_s", "speedup"))
        if not all(math.isfinite(x) and x > 0 for x in (ganlab, reference, speedup)):
            broken.append(f"{row.get('case')}/{row.get('objective')}/{row.get('precision')}")
        target = "" if dry_run or speedup >= TARGET_SPEEDUP else f"  (README target {TARGET_SPEEDUP:g})"
        verdict.figures.append(
            f"  {row.get('case', '?'):<10} {row.get('objective', '?'):<14} {row.get('precision', '?'):<9} {ganlab:>11.2f} "
            f"{reference:>9.2f} {speedup:>7.2f} {row.get('ganlab_peak_mib', 'n/a'):>8}  {row.get('critic_ms(fwd/gp/bwd)', '?')}{target}")
    for ratio in ratios:
        case, value = ratio.get("case", "?"), _number(ratio.get("ratio"))
        target = None if dry_run else TARGET_BF16_OVER_FP32.get(case)
        note = f" (README target {target:g}: {'met' if value >= target else 'not met'})" if target else ""
        verdict.figures.append(f"  bf16 over fp32, ganlab steps/s, {case} {ratio.get('objective', '?')}: {value:.2f}{note}")
    wanted = set(product(cases, objectives, precisions))
    seen = {(row.get("case"), row.get("objective"), row.get("precision")) for row in rows}
    missing = sorted(wanted - seen)
    verdict.summary = f"{len(wanted & seen)} of {len(wanted)} cases ran in {seconds:.0f} s"
    verdict.problems = exit_problem(rc, seconds)
    if missing:
        verdict.problems.append("no line for " + ", ".join("/".join(m) for m in missing))
    if broken:
        verdict.problems.append("rates not finite and positive for " + ", ".join(broken))
    return verdict


# ---------------------------------------------------------------------------------- training runs


def last_scalars(run_dir: Path) -> dict[str, tuple[int, float]]:
    """The last logged (step, value) of every scalar tag in the run's TensorBoard event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0: keep every event
    events.Reload()
    return {tag: (events.Scalars(tag)[-1].step, events.Scalars(tag)[-1].value) for tag in events.Tags()["scalars"]}


def n_critic(run_dir: Path) -> int:
    """The run's critic steps per generator step, from the resolved config Hydra saved."""
    import yaml

    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    return int(config["objective"]["n_critic"])


def judge_run(run_dir: Path, rc: int, seconds: float, check: str, precision: str, steps: int, dry_run: bool) -> Verdict:
    """A ``ganlab train`` run: finished all steps on the expected device and precision, with
    finite losses and metrics, and (fp16) few skipped steps. The summary holds its figures."""
    verdict = Verdict(check)
    verdict.problems = exit_problem(rc, seconds)
    if verdict.problems:
        return verdict
    info = json.loads((run_dir / "run_info.json").read_text())
    device = "cpu" if dry_run else "cuda"
    if not str(info.get("device", "")).startswith(device):
        verdict.problems.append(f"ran on device {info.get('device')}, not {device}")
    if info.get("precision") != precision:
        verdict.problems.append(f"ran in precision {info.get('precision')}, not {precision}")

    scalars = last_scalars(run_dir)
    for tag in ("Loss/D", "Loss/G"):
        step, value = scalars.get(tag, (0, math.nan))
        if step != steps or not math.isfinite(value):
            verdict.problems.append(f"{tag} at the last log is {value:.4g} at step {step}, not finite at step {steps}")
    final = json.loads((run_dir / "metrics.json").read_text()).get("final") or {}
    nonfinite = sorted(k for k, v in final.items() if v is None or not math.isfinite(v))  # JSON writes non-finite as null
    if not final:
        verdict.problems.append("metrics.json has no final metrics")
    elif nonfinite:
        verdict.problems.append("non-finite final " + ", ".join(nonfinite))

    optimizer_steps = steps * (n_critic(run_dir) + 1)
    if precision == "fp16":
        if "Precision/skipped_steps" not in scalars:
            verdict.problems.append("no Precision/skipped_steps logged (no GradScaler?)")
        skipped = scalars.get("Precision/skipped_steps", (0, math.nan))[1]
        scale = scalars.get("Precision/loss_scale", (0, math.nan))[1]
        skips = f"skipped {skipped:.0f} of {optimizer_steps} optimizer steps, loss scale {scale:.4g}"
        if skipped > MAX_SKIPPED_SHARE * optimizer_steps:
            verdict.problems.append(f"{skipped:.0f} of {optimizer_steps} optimizer steps skipped (more than {MAX_SKIPPED_SHARE:.0%})")
    else:
        if "Precision/skipped_steps" in scalars:
            verdict.problems.append(f"{precision} logged Precision/skipped_steps: a GradScaler ran without fp16")
        skips = "skipped 0 (no GradScaler)"

    rate = scalars.get("Speed/steps_per_sec", (0, math.nan))[1]
    metrics = ", ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in final.items() if v is not None and k != "Metrics/classifier_accuracy")
    wasserstein = scalars.get("Wasserstein/estimate", (0, math.nan))[1]
    verdict.summary = (f"{precision} on {info.get('device')}, {steps} steps, {rate:.1f} steps/s, {seconds:.0f} s in all; "
                       f"{metrics}; W estimate {wasserstein:.3g}; {skips}")
    return verdict


# ------------------------------------------------------------------------------------------- main


def print_verdict(verdict: Verdict, log: Path | None) -> int:
    """Print the figures, the PASS/FAIL line and, on FAIL, the end of the check's log; 0 on PASS."""
    for line in verdict.figures:
        print(line)
    print(verdict.line(), flush=True)
    if not verdict.passed and log is not None and log.is_file():
        tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL:]
        print(f"  --- last {len(tail)} lines of {log}", *(f"  | {line}" for line in tail), sep="\n")
    return 0 if verdict.passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("tests", "bench", "train"):
        p = sub.add_parser(name)
        p.add_argument("path", type=Path, help={"tests": "pytest's JUnit XML", "bench": "bench_train.py's output", "train": "the run directory"}[name])
        p.add_argument("--rc", type=int, required=True, help="the command's exit status")
        p.add_argument("--seconds", type=float, required=True, help="the command's wall time")
        p.add_argument("--log", type=Path, help="the command's output, printed in part on FAIL")
        p.add_argument("--dry-run", action="store_true", help="on the CPU: accept skipped CUDA tests and device=cpu")
    bench = sub.choices["bench"]
    for key in ("cases", "objectives", "precisions"):
        bench.add_argument(f"--{key}", required=True, help="comma-separated, as passed to bench_train.py")
    train = sub.choices["train"]
    train.add_argument("--check", required=True, help="the check's name on its PASS/FAIL line")
    train.add_argument("--precision", required=True, choices=["fp32", "bf16", "fp16"])
    train.add_argument("--steps", type=int, required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "tests":
            verdict = judge_tests(args.path, args.rc, args.seconds, args.dry_run)
        elif args.command == "bench":
            text = args.path.read_text(errors="replace") if args.path.is_file() else ""
            verdict = judge_bench(text, args.rc, args.seconds, *(getattr(args, k).split(",") for k in ("cases", "objectives", "precisions")), args.dry_run)
        else:
            verdict = judge_run(args.path, args.rc, args.seconds, args.check, args.precision, args.steps, args.dry_run)
    except (OSError, ValueError, KeyError, ET.ParseError) as err:  # a file missing or half-written: the check failed
        name = args.check if args.command == "train" else {"tests": "cuda-tests", "bench": "bench"}[args.command]
        verdict = Verdict(name, problems=exit_problem(args.rc, args.seconds) + [f"could not read {args.path}: {type(err).__name__}: {err}"])
    return print_verdict(verdict, args.log)


if __name__ == "__main__":
    sys.exit(main())
