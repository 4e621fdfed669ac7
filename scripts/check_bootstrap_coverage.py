"""How often ganlab compare's 95% intervals hold the true value, by the number of seeds.

    python scripts/check_bootstrap_coverage.py                 # 400 draws per seed count
    python scripts/check_bootstrap_coverage.py --draws 1000 --seeds 3 5 10

Draws ``--draws`` sets of n values from N(0, 1) (the true mean and the true IQM are both 0, the
distribution being symmetric), computes the intervals exactly as ``ganlab compare`` does
(:func:`ganlab.compare.stats.summarize`: BCa, stratified bootstrap, one stratum here), and prints
for each n the share of draws whose interval of the mean, and of the IQM, holds 0. A 95% interval
should hold it in about 95% of the draws; bootstrap intervals undercover with few values, which is
why ganlab compare marks groups of fewer than 5 seeds.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ganlab.compare.stats import summarize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10, 20])
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(2021)
    for n in args.seeds:
        mean = iqm = 0
        for draw in range(args.draws):
            summary = summarize([rng.normal(size=n)], resamples=args.resamples, seed=draw)
            mean += summary.mean_ci.contains(0.0)
            iqm += summary.iqm_ci.contains(0.0)
        print(f"seeds={n} draws={args.draws} coverage_mean={mean / args.draws:.3f} coverage_iqm={iqm / args.draws:.3f} nominal=0.95")
    return 0


if __name__ == "__main__":
    sys.exit(main())
