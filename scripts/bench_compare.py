"""Reading the curves of a sweep for ``ganlab compare``: ganlab's reader against TensorBoard's EventAccumulator, in one run of this script.

    python scripts/bench_compare.py                          # 100 runs of 5000 steps, in a temporary folder
    python scripts/bench_compare.py --runs 20 --steps 2000
    python scripts/bench_compare.py --dir /tmp/bench_runs    # keep the runs there (written once, read again next time)

Writes ``--runs`` synthetic run directories with ganlab's own TensorBoard writer
(``ganlab.logger.tensorboard.TensorBoard``), logged as ``ganlab train`` logs them: every 10 steps
the 18 scalars of a WGAN-GP run on 2-D data (losses, gradient norms, penalty, Wasserstein estimate,
learning rates, speed, the critic diagnostics), every 100 steps two histograms of 512 critic
scores, every 500 steps five ``Metrics/*``, every 1000 steps a 384 x 384 picture (a smooth field with
points, ~75 kB as PNG, the size of ganlab's critic maps and sample grids). Every third run was
stopped at 60% of its steps and resumed from the checkpoint at 40% (``purge_step``), as a resumed
sweep job is. Then it reads the default tags of ``ganlab compare`` (``Metrics/*``,
``Wasserstein/estimate``, ``Loss/D``, ``Loss/G``) of every run twice:

* **ganlab**: :func:`ganlab.compare.scalars.read_scalars`;
* **tensorboard**: ``EventAccumulator(run, size_guidance=<0 for every kind>).Reload()`` (keep every
  point, as ``read_scalars`` does), then its ``Scalars(tag)`` of the matching tags.

The files are read once before the timing, so both read from the page cache. Each reader's time is
the median of ``--rounds`` rounds, which alternate which reader goes first. It checks that both
read the same points (steps and values of every tag of every run), then prints one line:
seconds, points read, and the ratio tensorboard/ganlab. Each run also gets the ``.hydra/`` records
and ``metrics.json`` of a finished ``ganlab train`` job (4 objectives, the seeds shared among them),
and a second line times the whole comparison in process, as ``ganlab compare <dir>`` does it:
finding and grouping the runs, the bootstrap intervals and pairwise probabilities, reading the
curves, the figures, the TensorBoard runs and the report files.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from tensorboard.backend.event_processing import event_accumulator

from ganlab.compare.scalars import DEFAULT_TAGS, event_files, read_scalars
from ganlab.logger.tensorboard import TensorBoard

LOG_EVERY, HISTOGRAM_EVERY, EVAL_EVERY, SAMPLE_EVERY = 10, 100, 500, 1000
SCALARS = (
    "Loss/D", "Loss/D_main", "Loss/G", "GradNorm/D", "GradNorm/G", "Penalty/gp", "Wasserstein/estimate",
    "LR/G", "LR/D", "Speed/steps_per_sec", "Health/nonfinite_params", "Critic/accuracy",
    "CriticGrad/real_mean", "CriticGrad/real_max", "CriticGrad/fake_mean", "CriticGrad/fake_max",
    "CriticGrad/interp_mean", "CriticGrad/interp_max",
)
METRICS = ("Metrics/w1", "Metrics/w1_ratio", "Metrics/w1_real_baseline", "Metrics/modes_covered", "Metrics/high_quality")
PICTURE = 384  # px, the size of ganlab's critic map


def picture(rng: np.random.Generator) -> torch.Tensor:
    """A uint8 (3, 384, 384) picture that compresses like ganlab's: a smooth field and 600 points."""
    y, x = np.mgrid[0:PICTURE, 0:PICTURE] / PICTURE
    field = np.sin(6 * x + rng.uniform(0, 6)) * np.cos(5 * y)
    image = np.stack([field * 100 + 128, np.roll(field, 50, 0) * 80 + 120, field * 60 + 90], -1).astype(np.uint8)
    for k, (i, j) in enumerate(rng.integers(2, PICTURE - 2, (600, 2))):
        image[i - 2:i + 2, j - 2:j + 2] = (255, 255, 255) if k % 2 else (230, 60, 40)
    return torch.from_numpy(image).permute(2, 0, 1).contiguous()


def log_steps(tb: TensorBoard, rng: np.random.Generator, first: int, last: int) -> None:
    for step in range(first, last + 1):
        if step % LOG_EVERY == 0:
            tb.scalars(step, {tag: float(rng.normal()) for tag in SCALARS})
        if step % HISTOGRAM_EVERY == 0:
            tb.histograms(step, {"Histogram/D_real": torch.randn(512), "Histogram/D_fake": torch.randn(512)})
        if step % EVAL_EVERY == 0:
            tb.scalars(step, {tag: float(rng.normal()) for tag in METRICS})
        if step % SAMPLE_EVERY == 0:
            tb.image("Critic/map", step, picture(rng))


def write_run(run_dir: Path, steps: int, seed: int) -> None:
    """One run; every third one stopped at 60% of ``steps`` and resumed from its checkpoint at 40%."""
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    tb = TensorBoard(run_dir)
    tb.hparams({"objective": "wgan_gp", "seed": seed}, list(METRICS))
    if seed % 3 == 0:
        log_steps(tb, rng, 1, steps * 6 // 10)
        tb.close()
        checkpoint = steps * 4 // 10
        tb = TensorBoard(run_dir, purge_step=checkpoint + 1)  # as ganlab.logger.run.RunLogger on resume
        log_steps(tb, rng, checkpoint + 1, steps)
    else:
        log_steps(tb, rng, 1, steps)
    tb.close()


OBJECTIVES = ("js", "wgan_clip", "wgan_gp", "spectral_norm")


def write_records(run_dir: Path, seed: int, steps: int) -> None:
    """The .hydra/ records and metrics.json of a finished training job: objective seed % 4, seed seed // 4."""
    objective, rng = OBJECTIVES[seed % len(OBJECTIVES)], np.random.default_rng(seed)
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump({"objective": {"name": objective}, "seed": seed // len(OBJECTIVES), "steps": steps}))
    choices = {"objective": objective, "dataset": "gaussians25", "model": "mlp"}
    (hydra_dir / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"name": "train"}, "runtime": {"choices": choices}}}))
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump([f"objective={objective}", f"seed={seed // len(OBJECTIVES)}"]))
    final = {tag: float(rng.uniform(0.5, 3.0)) for tag in METRICS}
    (run_dir / "metrics.json").write_text(json.dumps({"history": [{"step": steps, **final}], "final": final}))


def time_comparison(root: Path) -> tuple[float, int, int]:
    """Seconds of the whole comparison of the runs below ``root`` (as ganlab compare), groups, figures."""
    from rich.console import Console

    from ganlab.apps.compare import draw_curves
    from ganlab.compare import report
    from ganlab.compare.comparison import compare
    from ganlab.compare.runs import find_runs

    with tempfile.TemporaryDirectory(prefix="bench_compare_out_") as out:
        out, console = Path(out), Console(quiet=True)
        t0 = time.perf_counter()
        comparison = compare(find_runs([root]))
        figures = draw_curves(comparison, list(DEFAULT_TAGS), comparison.settings.confidence, out, console)
        report.write_csv(comparison, out / "summary.csv")
        report.write_json(comparison, out / "summary.json", figures, "bench")
        report.write_markdown(comparison, out / "report.md", figures, "bench")
        report.print_tables(comparison, console)
        return time.perf_counter() - t0, len(comparison.groups), len(figures)


def read_ganlab(runs: list[Path]) -> list[dict[str, tuple[list[int], list[float]]]]:
    out = []
    for run in runs:
        out.append({tag: (s.steps.tolist(), s.values.tolist()) for tag, s in read_scalars(run, DEFAULT_TAGS).items()})
    return out


def read_tensorboard(runs: list[Path]) -> list[dict[str, tuple[list[int], list[float]]]]:
    keep_all = {kind: 0 for kind in event_accumulator.DEFAULT_SIZE_GUIDANCE}
    out = []
    for run in runs:
        acc = event_accumulator.EventAccumulator(str(run), size_guidance=keep_all).Reload()
        tags = [t for t in acc.Tags()[event_accumulator.SCALARS] if any(fnmatch.fnmatchcase(t, p) for p in DEFAULT_TAGS)]
        out.append({tag: ([e.step for e in acc.Scalars(tag)], [e.value for e in acc.Scalars(tag)]) for tag in sorted(tags)})
    return out


def points(read: list[dict[str, tuple[list[int], list[float]]]]) -> int:
    return sum(len(steps) for run in read for steps, _ in run.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per reader (median)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the runs (kept; reused when complete)")
    args = parser.parse_args(argv)
    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # the accumulator warns at each purge of a resumed run

    with tempfile.TemporaryDirectory(prefix="bench_compare_") as tmp:
        root = args.dir or Path(tmp)
        runs = [root / f"seed={seed}" for seed in range(args.runs)]
        marker = root / f"complete_{args.runs}x{args.steps}"
        if not marker.exists():
            t0 = time.perf_counter()
            for seed, run in enumerate(runs):
                for old in event_files(run) if run.is_dir() else []:
                    old.unlink()
                write_run(run, args.steps, seed)
                write_records(run, seed, args.steps)
            marker.touch()
            print(f"wrote {args.runs} runs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        size_mb = sum(f.stat().st_size for run in runs for f in event_files(run)) / 1e6
        for run in runs:  # into the page cache, so that neither reader pays for the disk
            for f in event_files(run):
                f.read_bytes()

        times: dict[str, list[float]] = {"ganlab": [], "tensorboard": []}
        results = {}
        readers = {"ganlab": read_ganlab, "tensorboard": read_tensorboard}
        for round_ in range(args.rounds):
            for name in (["ganlab", "tensorboard"] if round_ % 2 == 0 else ["tensorboard", "ganlab"]):
                t0 = time.perf_counter()
                results[name] = readers[name](runs)
                times[name].append(time.perf_counter() - t0)
        same = results["ganlab"] == results["tensorboard"]
        ours, theirs = statistics.median(times["ganlab"]), statistics.median(times["tensorboard"])
        print(
            f"runs={args.runs} steps={args.steps} event_files_MB={size_mb:.0f} tags={','.join(DEFAULT_TAGS)} "
            f"ganlab_s={ours:.2f} ganlab_points={points(results['ganlab'])} "
            f"tensorboard_s={theirs:.2f} tensorboard_points={points(results['tensorboard'])} "
            f"same_points={same} ratio={theirs / ours:.1f}"
        )
        seconds, groups, figures = time_comparison(root)
        print(f"runs={args.runs} compare_s={seconds:.2f} groups={groups} figures={figures} "
              "(find, group, bootstrap, pairs, curves, figures, TensorBoard runs, report)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
