"""Training throughput of one run on 1 process and on N processes (torchrun), side by side in one run.

    python scripts/bench_distributed.py                          # toy MLP and digits DCGAN, 1 vs 2 processes, 3 rounds
    python scripts/bench_distributed.py --nproc 4 --rounds 5     # on a machine with 4 cores (or 4 GPUs: --device cuda)
    python scripts/bench_distributed.py --set experiment=digits_dcgan --steps 200

Each round trains the same run (the same global ``batch_size``) twice, as a user would type it:

* **1 process**: ``ganlab train`` with every core (``threads`` = the cores), or one GPU;
* **N processes**: ``torchrun --nproc_per_node=N $(which ganlab) train``, each process with
  cores / N threads (or one GPU each), the gradients averaged over the processes every step.

The figure is samples per second: generator steps per second (``Speed/steps_per_sec``, logged by
rank 0, the start-up and the evaluations left out: the mean of the intervals after the first) times
the global ``batch_size``. The two alternate which goes first from round to round; the last lines
give the median ratio N processes / 1 process per setting. On a 2-core CPU the processes only
share the same two cores: what is measured there is the cost of the all-reduce and of the split
batch, not a speed-up; on N GPUs each process has its own device.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ganlab.apps.parallel import available_cores
from ganlab.compare.scalars import read_scalars

SETTINGS = {
    "toy MLP (gaussians25, wgan_gp)": ["batch_size=256"],
    "digits DCGAN (32 px, js)": ["experiment=digits_dcgan", "batch_size=64", "eval_samples=500"],
}


def ganlab_command() -> list[str]:
    script = Path(sys.executable).with_name("ganlab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ganlab"]


def command(nproc: int, port: int) -> list[str]:
    if nproc == 1:
        return ganlab_command()
    target = ganlab_command() if len(ganlab_command()) == 1 else ["-m", "ganlab"]
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={port}", *target]


def samples_per_second(run_dir: Path, batch_size: int) -> float:
    steps_per_sec = read_scalars(run_dir, ["Speed/steps_per_sec"])["Speed/steps_per_sec"].values[1:]
    return statistics.mean(steps_per_sec) * batch_size


def train(nproc: int, overrides: list[str], steps: int, device: str, threads: int, out: Path, port: int) -> float:
    run_dir = out / f"nproc{nproc}"
    args = ["train", f"steps={steps}", f"log_every={max(1, steps // 10)}", f"sample_every={steps}", f"eval_every={steps}",
            f"checkpoint_every={steps}", f"device={device}", f"threads={threads}", *overrides, f"hydra.run.dir={run_dir}"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "HYDRA_FULL_ERROR")}
    done = subprocess.run([*command(nproc, port), *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command(nproc, port) + args)} failed:\n{done.stderr[-3000:]}")
    batch = int(next((o.split("=")[1] for o in reversed(overrides) if o.startswith("batch_size=")), 256))
    return samples_per_second(run_dir, batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nproc", type=int, default=2, help="processes of the distributed run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300, help="generator steps of each run")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (one GPU per process)")
    parser.add_argument("--set", action="append", default=[], help="run only this setting: config overrides (repeatable)")
    args = parser.parse_args()
    settings = {"custom": args.set} if args.set else SETTINGS
    cores = available_cores()
    print(f"{cores} cores; 1 process with {cores} threads against {args.nproc} processes with {max(1, cores // args.nproc)} each"
          + (f"; {args.device}" if args.device != "cpu" else ""))
    results: dict[str, dict[int, list[float]]] = {name: {1: [], args.nproc: []} for name in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, overrides in settings.items():
                order = [1, args.nproc] if round_ % 2 == 0 else [args.nproc, 1]
                for nproc in order:
                    threads = cores if nproc == 1 else max(1, cores // nproc)
                    out = Path(tmp) / f"r{round_}" / name.split()[0]
                    started = time.perf_counter()
                    rate = train(nproc, overrides, args.steps, args.device, threads, out, 29600 + round_)
                    results[name][nproc].append(rate)
                    print(f"round {round_ + 1} {name:<32} {nproc} process{'es' if nproc > 1 else '  '}: "
                          f"{rate:9.1f} samples/s  ({time.perf_counter() - started:.0f} s wall)", flush=True)
    print()
    summary = {}
    for name, rates in results.items():
        one, many = statistics.median(rates[1]), statistics.median(rates[args.nproc])
        ratios = [m / o for o, m in zip(rates[1], rates[args.nproc])]
        summary[name] = {"1": one, str(args.nproc): many, "ratio": statistics.median(ratios)}
        print(f"{name:<32} 1 process {one:9.1f} samples/s, {args.nproc} processes {many:9.1f}: "
              f"ratio {statistics.median(ratios):.2f} (median of {len(ratios)} rounds)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
