"""scripts/gpu_check.sh: its dry run passes every check on the CPU, and scripts/gpu_check.py judges
what a GPU run leaves behind (skipped fp16 steps from ganlab's own events, skipped CUDA tests,
missing benchmark cases) the way its header says."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import compose_train
from ganlab.apps.build import build_data, build_networks, build_objective_from, build_optimizers_from
from ganlab.logger.tensorboard import TensorBoard
from ganlab.precision import Precision
from ganlab.train.loop import train

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
CHECKS = ["cuda-tests", "bench", "train-fp32", "train-bf16", "train-fp16", "train-distributed"]


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPTS / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


gpu_check = load_gpu_check()


@pytest.mark.cli
def test_dry_run_passes_every_check_on_the_cpu(tmp_path, classifier_cache):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    args = ["bash", str(SCRIPTS / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path), "--classifier-cache", str(classifier_cache)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    verdicts = re.findall(r"^(PASS|FAIL) (\S+):", result.stdout, re.MULTILINE)
    assert verdicts == [("PASS", check) for check in CHECKS], result.stdout + result.stderr[-3000:]
    assert result.returncode == 0
    assert "6 of 6 checks passed (dry run on the CPU)" in result.stdout
    # The CUDA tests that pytest -m cuda selects (and the CPU skips): the ones the GPU check exists for.
    selected = set(re.findall(r'testcase classname="[^"]+" name="([^"]+)"', (tmp_path / "cuda_tests.xml").read_text()))
    assert {"test_cuda_storage", "test_cuda_steps_have_no_host_sync[bf16]", "test_cuda_steps_have_no_host_sync[fp16]"} <= selected


def test_without_cuda_it_says_so_and_exits_0(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(["bash", str(SCRIPTS / "gpu_check.sh"), "--out", str(tmp_path)], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0 and "no CUDA device here" in result.stdout, result.stdout + result.stderr
    assert not re.search(r"^(PASS|FAIL) ", result.stdout, re.MULTILINE)


def test_an_interpreter_without_torch_is_an_error_not_a_pass(tmp_path):
    """python3 outside the venv has no torch: that must not read as "no CUDA, nothing to check"."""
    bare = tmp_path / "python"
    bare.write_text("#!/bin/sh\nexit 1\n")  # an interpreter that cannot import anything
    bare.chmod(0o755)
    env = {**os.environ, "PYTHON": str(bare)}
    result = subprocess.run(["bash", str(SCRIPTS / "gpu_check.sh"), "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [f"error: {bare} cannot import torch: set PYTHON to the interpreter that has ganlab's dependencies (e.g. PYTHON=.venv/bin/python)"]


def test_a_bad_option_is_one_line_with_exit_status_2():
    result = subprocess.run(["bash", str(SCRIPTS / "gpu_check.sh"), "--dryrun"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "error: unknown option --dryrun: choose from --dry-run, --wheels DIR, --out DIR, --classifier-cache DIR (see --help)"]


# ------------------------------------------------------------------------ judging an fp16 run


class EventsRun:
    """The loop's Run writing its scalars to TensorBoard in ``run_dir``, as a ganlab run does."""

    def __init__(self, run_dir: Path):
        self.tb = TensorBoard(run_dir)

    def progress(self, step): pass
    def log(self, step, scalars): self.tb.scalars(step, scalars)
    def histograms(self, step, values): self.tb.histograms(step, values)
    def sample(self, step, G, D): pass
    def evaluate(self, step, G, D): return {}
    def save(self, step, state): pass
    def last_good_state(self): return None
    def last_good_description(self): return "no checkpoint"
    def rolled_back(self, *args): pass


def fp16_run(run_dir: Path, init_scale: float, steps: int = 3) -> Precision:
    """A tiny WGAN-GP run in fp16 on the CPU (the library allows it; the CLI does not) with the
    files gpu_check.py reads: events from ganlab's loop, run_info.json, metrics.json, .hydra/config.yaml."""
    cfg = compose_train(["objective=wgan_gp", "objective.n_critic=1", "model.width=8"])
    device = torch.device("cpu")
    torch.manual_seed(0)
    data = build_data(cfg.dataset, device, seed=0)
    G, D = build_networks(cfg.model, data.shape, device)
    objective = build_objective_from(cfg.objective)
    objective.attach(D)
    opt_G, opt_D = build_optimizers_from(cfg.objective, G, D)
    precision = Precision("fp16", device, init_scale=init_scale)
    run = EventsRun(run_dir)
    train(G, D, objective, opt_G, opt_D, data, precision, run, steps=steps, batch_size=16, log_every=steps, sample_every=steps, eval_every=steps)
    run.tb.writer.close()
    (run_dir / "run_info.json").write_text(json.dumps({"device": "cpu", "precision": "fp16"}))
    (run_dir / "metrics.json").write_text(json.dumps({"final": {"Metrics/w1": 0.5}}))
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text("objective:\n  n_critic: 1\n")
    return precision


def test_fp16_skipped_steps_are_read_from_the_loops_events(tmp_path):
    precision = fp16_run(tmp_path, init_scale=2.0**100)  # float16 overflows above 65504: every step skips
    assert int(precision.skipped_steps) == 6  # 3 critic steps and 3 generator steps
    assert gpu_check.last_scalars(tmp_path)["Precision/skipped_steps"] == (3, pytest.approx(6.0))
    verdict = gpu_check.judge_run(tmp_path, 0, 1.0, "train-fp16", "fp16", 3, dry_run=True)
    assert not verdict.passed
    assert "6 of 6 optimizer steps skipped (more than 5%)" in verdict.problems
    assert verdict.line().startswith("FAIL train-fp16: ")


def test_an_fp16_run_that_skips_nothing_passes(tmp_path):
    fp16_run(tmp_path, init_scale=2.0**8)
    verdict = gpu_check.judge_run(tmp_path, 0, 1.0, "train-fp16", "fp16", 3, dry_run=True)
    assert verdict.problems == []
    assert "skipped 0 of 6 optimizer steps, loss scale 256" in verdict.line()
    on_gpu = gpu_check.judge_run(tmp_path, 0, 1.0, "train-fp16", "fp16", 3, dry_run=False)
    assert on_gpu.problems == ["ran on device cpu, not cuda"]  # a GPU check that ran on the CPU checked nothing


def test_a_run_that_timed_out_or_ended_nonfinite_fails(tmp_path):
    fp16_run(tmp_path, init_scale=2.0**8)
    assert gpu_check.judge_run(tmp_path, 124, 120.0, "train-fp32", "fp32", 3, dry_run=True).problems == ["timed out after 120 s"]
    assert gpu_check.judge_run(tmp_path, 3, 12.0, "train-fp32", "fp32", 3, dry_run=True).problems == ["exit status 3"]
    (tmp_path / "metrics.json").write_text(json.dumps({"final": {"Metrics/w1": None}}))  # JSON holds NaN as null
    problems = gpu_check.judge_run(tmp_path, 0, 1.0, "train-fp16", "fp16", 3, dry_run=True).problems
    assert problems == ["non-finite final Metrics/w1"]


# ----------------------------------------------------------------- judging the tests and the bench


def junit(tmp_path: Path, cases: dict[str, str]) -> Path:
    """A JUnit XML file as pytest writes it; ``cases``: test name -> passed | skipped | failure."""
    counts = {kind: sum(v == kind for v in cases.values()) for kind in ("skipped", "failure")}
    body = "".join(
        f'<testcase classname="tests.t" name="{name}">' + ("" if kind == "passed" else f'<{kind} message="m"/>') + "</testcase>"
        for name, kind in cases.items())
    path = tmp_path / "junit.xml"
    path.write_text(f'<testsuites><testsuite name="pytest" errors="0" failures="{counts["failure"]}" '
                    f'skipped="{counts["skipped"]}" tests="{len(cases)}">{body}</testsuite></testsuites>')
    return path


def test_cuda_tests_that_skip_fail_on_a_cuda_machine_only(tmp_path):
    path = junit(tmp_path, {"a": "passed", "b": "skipped"})
    assert gpu_check.judge_tests(path, 0, 5.0, dry_run=True).line() == "PASS cuda-tests: 1 passed, 0 failed, 1 skipped in 5 s"
    assert gpu_check.judge_tests(path, 0, 5.0, dry_run=False).problems == ["1 CUDA tests skipped on a CUDA machine"]
    failed = gpu_check.judge_tests(junit(tmp_path, {"a": "passed", "b": "failure"}), 1, 5.0, dry_run=False)
    assert failed.problems == ["1 of 2 CUDA tests failed"] and failed.figures == ["  failed: tests.t::b"]
    assert gpu_check.judge_tests(junit(tmp_path, {}), 5, 5.0, dry_run=True).problems == ["no test is marked cuda (pytest -m cuda selected none)"]


BENCH_LINE = ("case={case} objective=wgan_gp model.width=4 precision={precision} device=cuda batch=64 n_critic=5 "
              "ganlab_steps_per_s={rate} ganlab_images_per_s=1 ganlab_peak_mib=12 critic_ms(fwd/gp/bwd)=1.00/2.00/3.00 "
              "reference_steps_per_s=10.00 reference_images_per_s=1 reference_peak_mib=9 speedup=2.00")


def test_the_bench_needs_a_line_with_finite_rates_per_case():
    lines = [BENCH_LINE.format(case=c, precision=p, rate=20.0) for c in ("dcgan64", "resnet32") for p in ("fp32", "bf16")]
    lines.append("bf16_over_fp32 case=resnet32 objective=wgan_gp ratio=1.80")
    judge = lambda text: gpu_check.judge_bench(text, 0, 30.0, ["dcgan64", "resnet32"], ["wgan_gp"], ["fp32", "bf16"])
    complete = judge("\n".join(lines))
    assert complete.line() == "PASS bench: 4 of 4 cases ran in 30 s"
    assert complete.figures[-1] == "  bf16 over fp32, ganlab steps/s, resnet32 wgan_gp: 1.80 (README target 1.7: met)"
    assert judge("\n".join(lines[1:])).problems == ["no line for dcgan64/wgan_gp/fp32"]
    dry = gpu_check.judge_bench("\n".join(lines), 0, 30.0, ["dcgan64", "resnet32"], ["wgan_gp"], ["fp32", "bf16"], dry_run=True)
    assert dry.passed and not any("README target" in line for line in dry.figures)  # CUDA targets, not the CPU's
    nan = judge("\n".join([BENCH_LINE.format(case="dcgan64", precision="fp32", rate="nan"), *lines[1:]]))
    assert nan.problems == ["rates not finite and positive for dcgan64/wgan_gp/fp32"]
