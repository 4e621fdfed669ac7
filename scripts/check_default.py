"""Check the embedded default against its targets: `ganlab train` with no overrides must finish in
under 3 minutes on a 2-core CPU, cover 25/25 modes, and reach W1 <= 4x the real-vs-real W1.

    python scripts/check_default.py            # seed 0, the default
    python scripts/check_default.py 0 1 2      # several seeds, one after another
    python scripts/check_default.py 0 1 objective.constraints.gp.every=4   # the default with overrides (lazy penalty)

Runs the installed `ganlab` command in a temporary directory and prints one line per seed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIME_LIMIT_S = 180.0
RATIO_LIMIT = 4.0


def main(seeds: list[int], overrides: list[str] = ()) -> int:
    ganlab = shutil.which("ganlab") or str(Path(sys.executable).with_name("ganlab"))
    failures = 0
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            args = [ganlab, "train", "hydra.run.dir=run", *overrides] + ([f"seed={seed}"] if seed != 0 else [])
            start = time.perf_counter()
            result = subprocess.run(args, cwd=tmp, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if result.returncode != 0:
                print(f"seed={seed} FAILED (exit {result.returncode}): {result.stderr.strip()[-500:]}")
                failures += 1
                continue
            final = json.loads((Path(tmp) / "run" / "metrics.json").read_text())["final"]
        modes, ratio = final["Metrics/modes_covered"], final["Metrics/w1_ratio"]
        ok = wall < TIME_LIMIT_S and modes == 25 and ratio <= RATIO_LIMIT
        failures += not ok
        print(
            f"{' '.join(overrides) + ' ' if overrides else ''}seed={seed} wall={wall:.1f}s modes={modes:.0f}/25 high_quality={final['Metrics/high_quality']:.3f} "
            f"w1={final['Metrics/w1']:.4f} w1_real_baseline={final['Metrics/w1_real_baseline']:.4f} "
            f"ratio={ratio:.2f} {'ok' if ok else 'MISSED'}",
            flush=True,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    overrides = [a for a in sys.argv[1:] if "=" in a]
    sys.exit(main([int(a) for a in sys.argv[1:] if "=" not in a] or [0], overrides))
