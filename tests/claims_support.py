"""What the claims' tests share: the quick toy sweep (ganlab.claims.sweeps.toy("quick")), run once per
session in this process, and a Context over it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ganlab.claims.base import Context, Sweep
from ganlab.claims.sweeps import toy

from inprocess import ganlab_in_process


def assert_tables_well_formed(markdown: str) -> None:
    """Every row of every Markdown table in ``markdown`` has its header's number of cells: a bare ``|``
    inside a cell (``|rho|``, ``|sigma - 1|``) splits it and breaks the table on GitHub; ``\\|`` does not."""
    header = None
    for number, line in enumerate(markdown.splitlines(), 1):
        if not line.startswith("|"):
            header = None
            continue
        cells = len(re.findall(r"(?<!\\)\|", line))
        header = header or cells
        assert cells == header, f"line {number}: {cells - 1} cells, the table's header has {header - 1}: {line[:120]}"


def run_sweep_in_process(sweep: Sweep, sweep_dir: Path, cwd: Path) -> None:
    """``ganlab train -m <sweep> hydra.sweep.dir=<sweep_dir>`` in this process, one thread, one job at a time."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        args = sweep.command(sweep_dir)[1:]  # without "ganlab"
        status = ganlab_in_process([*args, "threads=1"], cwd, monkeypatch)
    assert status in (0, None), f"sweep {sweep.name} exited with {status}"


@pytest.fixture(scope="session")
def quick_toy_sweep(tmp_path_factory) -> Path:
    """The quick toy sweep's folder (16 runs of 24 steps: 4 objectives x 2 datasets x 2 seeds)."""
    root = tmp_path_factory.mktemp("claims_toy")
    run_sweep_in_process(toy("quick"), root / "toy", root)
    return root / "toy"


def quick_context(out: Path, sweep_dirs: dict[str, Path]) -> Context:
    """A quick-mode Context writing into ``out`` (created), on the CPU."""
    out.mkdir(parents=True, exist_ok=True)
    return Context(mode="quick", out=out, device="cpu", sweep_dirs=sweep_dirs)
