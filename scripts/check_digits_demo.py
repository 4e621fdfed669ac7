"""Check the real-image demo against its targets: `ganlab train experiment=digits_dcgan` trains on
the CPU in under 5 minutes, its samples cover at least 8 of the 10 digit classes, and their Frechet
classifier distance is clearly below that of the untrained generator.

    python scripts/check_digits_demo.py [extra overrides, e.g. objective=spectral_norm]

Runs the installed `ganlab` in a temporary directory with a fresh classifier cache (so the wall time
includes training the metric classifier once), then scores the untrained generator of the same seed
with the same evaluator, and prints both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from ganlab.apps import CONFIG_DIR
from ganlab.apps.build import build_data, build_networks
from ganlab.config import register_configs
from ganlab.metrics.evaluator import build_evaluator

TIME_LIMIT_S = 300.0


def untrained_metrics(overrides: list[str], cache: str) -> dict[str, float]:
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    torch.manual_seed(cfg.seed)
    device = torch.device("cpu")
    data = build_data(cfg.dataset, device, cfg.seed)
    G, _ = build_networks(cfg.model, data.shape, device)
    evaluator = build_evaluator(data, G.z_dim, cfg.eval_samples, cfg.seed, classifier_cache_dir=cache)
    return evaluator.evaluate(G)


def main(extra: list[str]) -> int:
    overrides = ["experiment=digits_dcgan", *extra]
    ganlab = shutil.which("ganlab") or str(Path(sys.executable).with_name("ganlab"))
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "classifiers")
        start = time.perf_counter()
        result = subprocess.run([ganlab, "train", *overrides, "hydra.run.dir=run", f"metrics.classifier_cache={cache}"], cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            print(f"FAILED (exit {result.returncode}): {result.stderr.strip()[-800:]}")
            return 1
        trained = json.loads((Path(tmp) / "run" / "metrics.json").read_text())["final"]
        untrained = untrained_metrics(overrides, cache)
    covered, fcd, fcd0 = trained["Metrics/classes_covered"], trained["Metrics/fcd"], untrained["Metrics/fcd"]
    ok = wall < TIME_LIMIT_S and covered >= 8 and fcd < 0.5 * fcd0
    print(
        f"{' '.join(overrides)}: wall={wall:.1f}s classes_covered={covered:.0f}/10 fcd={fcd:.1f} "
        f"fcd_untrained={fcd0:.1f} ratio={fcd / fcd0:.3f} class_kl={trained['Metrics/class_kl']:.3f} "
        f"classifier_is={trained['Metrics/classifier_is']:.2f} classifier_accuracy={trained['Metrics/classifier_accuracy']:.3f} "
        f"{'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
