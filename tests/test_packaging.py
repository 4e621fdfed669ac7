"""The built wheel carries the YAML tree: ``ganlab train --cfg job`` works from an install outside the repo."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.cli


def source_packages() -> set[str]:
    found = {"ganlab.conf"}
    for init in (REPO / "ganlab").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(REPO).parts))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (found,) = out.glob("ganlab-*.whl")
    return found


def test_wheel_holds_every_package_and_every_yaml(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packages = {".".join(Path(n).parent.parts) for n in names if n.endswith(".py") and n.startswith("ganlab/")}
    assert source_packages() - {"ganlab.conf"} <= packages, "add the missing packages to pyproject.toml"
    yaml_in_repo = sorted(str(p.relative_to(REPO / "conf")) for p in (REPO / "conf").rglob("*.yaml"))
    yaml_in_wheel = sorted(n[len("ganlab/conf/"):] for n in names if n.startswith("ganlab/conf/") and n.endswith(".yaml"))
    assert yaml_in_wheel == yaml_in_repo


def test_installed_wheel_composes_from_another_directory(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import sys, ganlab; from ganlab.cli import main; print(ganlab.__file__); sys.argv = ['ganlab'] + sys.argv[1:]; sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", code, "train", "--cfg", "job", "objective=spectral_norm"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(str(target))
    assert "name: spectral_norm" in result.stdout and "_target_: ganlab.data.toy.Gaussians25" in result.stdout
