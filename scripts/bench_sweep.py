"""Wall time of one sweep run sequentially and side by side (hydra-joblib-launcher), in one run of this script.

    python scripts/bench_sweep.py                      # 4 toy jobs (seed=0..3, 800 steps each), 3 paired rounds
    python scripts/bench_sweep.py --rounds 5 --steps 400 --n-jobs 2
    python scripts/bench_sweep.py --set experiment=digits_dcgan --steps 100   # any config override

Each round runs the same sweep (``ganlab train -m seed=0,1,...`` on the default WGAN-GP / 25
Gaussians setup) twice, as a user would type it:

* **sequential**: Hydra's basic launcher, one job after the other, each with torch's default
  threads (every core);
* **parallel**: ``hydra/launcher=joblib hydra.launcher.n_jobs=N``, where each job runs with its
  share of the cores (``ganlab.apps.parallel``: cores // jobs at once).

The two alternate which goes first from round to round, so that a slow spell of the machine hits
both. One line per round with both wall times (the whole command: start-up, training, the final
evaluation), their ratio, the torch threads each job recorded in its ``run_info.json``, and how
many cores other processes kept busy meanwhile (from ``/proc/stat``, less this script's own
children): a busy machine slows the sequential sweep's every-core threads far more than 1-thread
jobs, so a figure measured beside other work says little. The last line is the median of the
per-round ratios parallel/sequential (issue 12's target: at most 0.8 on 2 cores). ``OMP_NUM_THREADS``
and the other thread variables are removed from the jobs' environment, so that the sequential
sweep gets torch's default.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ganlab.apps.parallel import available_cores

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def ganlab_command() -> list[str]:
    script = Path(sys.executable).with_name("ganlab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ganlab"]


def busy_seconds() -> float | None:
    """CPU seconds all processes of this machine have used since boot (Linux), or None."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_sweep(args: argparse.Namespace, parallel: bool, sweep_dir: Path) -> tuple[float, list[int], float | None]:
    """Run one sweep; return its wall time, each job's torch threads, and the cores other processes kept busy."""
    seeds = ",".join(str(s) for s in range(args.jobs))
    overrides = [
        f"seed={seeds}", f"steps={args.steps}", f"sample_every={args.steps}", f"checkpoint_every={args.steps}",
        f"eval_every={args.steps}", *args.set, f"hydra.sweep.dir={sweep_dir}",
    ]
    if parallel:
        overrides = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}", *overrides]
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES and k != "HYDRA_FULL_ERROR"}
    busy, ours = busy_seconds(), children_seconds()
    start = time.perf_counter()
    result = subprocess.run([*ganlab_command(), "train", "-m", *overrides], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"error: the {'parallel' if parallel else 'sequential'} sweep failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    others = None
    if busy is not None:
        others = max(0.0, (busy_seconds() - busy) - (children_seconds() - ours)) / wall
    threads = [json.loads(p.read_text())["torch_threads"] for p in sorted(sweep_dir.glob("*/run_info.json"))]
    return wall, threads, others


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (sequential and parallel each once)")
    parser.add_argument("--jobs", type=int, default=4, help="jobs in the sweep (seed=0..jobs-1)")
    parser.add_argument("--n-jobs", type=int, default=2, help="hydra.launcher.n_jobs of the parallel sweep")
    parser.add_argument("--steps", type=int, default=800, help="generator steps per job (800: ~15 s a job on 2 idle cores)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override for every job (repeatable)")
    args = parser.parse_args()

    cores = available_cores()  # as the per-job thread rule counts them
    print(f"sweep: {args.jobs} jobs x {args.steps} steps {' '.join(args.set)}; parallel: joblib n_jobs={args.n_jobs}; "
          f"{cores} cores; load average {os.getloadavg()[0]:.2f}", flush=True)
    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        for round_ in range(args.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            measured = {}
            for parallel in order:
                sweep_dir = Path(tmp) / f"round{round_}_{'parallel' if parallel else 'sequential'}"
                measured[parallel] = run_sweep(args, parallel, sweep_dir)
            (seq, seq_threads, seq_others), (par, par_threads, par_others) = measured[False], measured[True]
            ratios.append(par / seq)
            fmt = lambda x: "?" if x is None else f"{x:.2f}"  # noqa: E731
            print(f"round={round_ + 1} order={'sequential,parallel' if not order[0] else 'parallel,sequential'} "
                  f"sequential_s={seq:.1f} parallel_s={par:.1f} ratio={par / seq:.3f} "
                  f"threads_sequential={','.join(map(str, seq_threads))} threads_parallel={','.join(map(str, par_threads))} "
                  f"other_busy_cores_sequential={fmt(seq_others)} other_busy_cores_parallel={fmt(par_others)}", flush=True)
    print(f"median_ratio={statistics.median(ratios):.3f} (parallel/sequential wall time over {args.rounds} paired rounds; target <= 0.8)")


if __name__ == "__main__":
    main()
