"""scripts/bench_train.py runs every CPU case and prints one machine-readable line per case (no timing asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_train.py"
LINE = re.compile(
    r"^case=(?P<case>\S+) objective=(?P<objective>\S+) precision=(?P<precision>\S+) device=cpu .*"
    r"ganlab_steps_per_s=(?P<ganlab>[0-9.]+) .*critic_ms\(fwd/gp/bwd\)=(?P<fwd>[0-9.]+)/(?P<gp>[0-9.]+)/(?P<bwd>[0-9.]+) .*"
    r"reference_steps_per_s=(?P<reference>[0-9.]+) .*speedup=(?P<speedup>[0-9.]+)$"
)


def test_bench_prints_one_line_per_case_ending_in_speedup():
    args = [sys.executable, str(SCRIPT), "--cases", "mlp-gaussians25,dcgan32-digits", "--objectives", "js,wgan_gp,spectral_norm",
            "--precisions", "fp32", "--seconds", "0.2", "--rounds", "1", "--warmup", "1", "--split-repeats", "1", "--threads", "1"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("case=")]
    assert len(lines) == 6, result.stdout
    seen = set()
    for line in lines:
        match = LINE.match(line)
        assert match, line
        seen.add((match["case"], match["objective"]))
        assert float(match["ganlab"]) > 0 and float(match["reference"]) > 0
        ratio = float(match["ganlab"]) / float(match["reference"])  # with one round, the ratio of the two rates
        assert float(match["speedup"]) == pytest.approx(ratio, rel=0.02, abs=0.006)  # both printed rounded
        assert (float(match["gp"]) > 0) == (match["objective"] == "wgan_gp")  # only WGAN-GP has a penalty
    assert seen == {(c, o) for c in ("mlp-gaussians25", "dcgan32-digits") for o in ("js", "wgan_gp", "spectral_norm")}


def test_bench_refuses_an_unknown_case():
    result = subprocess.run([sys.executable, str(SCRIPT), "--cases", "vgg"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "unknown case vgg" in result.stderr
