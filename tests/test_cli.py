"""End to end: the installed ``ganlab`` command in a subprocess, on tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import TINY, run_ganlab

pytestmark = pytest.mark.cli

SCALAR_TAGS = {
    "Loss/D", "Loss/G", "Wasserstein/estimate", "GradNorm/D", "GradNorm/G",
    "CriticGrad/real_mean", "CriticGrad/real_max", "CriticGrad/fake_mean", "CriticGrad/fake_max",
    "CriticGrad/interp_mean", "CriticGrad/interp_max", "LR/G", "LR/D", "Speed/steps_per_sec",
    "Metrics/w1", "Metrics/modes_covered", "Metrics/high_quality", "Metrics/w1_real_baseline",
}
PER_CONSTRAINT_TAGS = {"wgan_gp": {"Penalty/gp"}, "wgan_clip": {"Clip/fraction_at_bound"}, "spectral_norm": {"SpectralNorm/sigma/net.0"}, "js": set()}


def read_events(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def train_once(workdir: Path, *overrides: str) -> tuple[Path, object]:
    run_dir = workdir / "run"
    result = run_ganlab(["train", *TINY, f"hydra.run.dir={run_dir}", *overrides], cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


@pytest.mark.parametrize("objective", ["wgan_gp", "wgan_clip", "spectral_norm", "js"])
def test_train_writes_a_complete_run_directory(workdir, objective):
    run_dir, result = train_once(workdir, f"objective={objective}")
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "train.log").is_file()
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["device"] == "cpu" and info["precision"] == "fp32"
    assert sorted(p.name for p in (run_dir / "samples").glob("*.png")) == ["critic_0000006.png", "critic_0000012.png"]
    checkpoint = torch.load(run_dir / "checkpoints" / "step_0000012.pt", weights_only=True)
    assert checkpoint["step"] == 12 and {"G", "D", "opt_G", "opt_D", "config", "rng", "data_rng", "scaler", "stats"} <= set(checkpoint)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [h["step"] for h in metrics["history"]] == [6, 12]
    assert set(metrics["final"]) == {"Metrics/w1", "Metrics/w1_real_baseline", "Metrics/w1_ratio", "Metrics/modes_covered", "Metrics/high_quality", "Metrics/mode_kl"}
    assert 0 <= metrics["final"]["Metrics/modes_covered"] <= 25

    acc = read_events(run_dir)
    tags = set(acc.Tags()["scalars"])
    assert SCALAR_TAGS | PER_CONSTRAINT_TAGS[objective] <= tags, sorted(SCALAR_TAGS - tags)
    assert [e.step for e in acc.Scalars("Loss/D")] == [4, 8, 12]
    assert all(np.isfinite(e.value) for e in acc.Scalars("Loss/D"))
    assert [e.step for e in acc.Images("Critic/map")] == [6, 12]
    experiment = acc.summary_metadata.get("_hparams_/experiment")  # the HParams entry
    assert experiment is not None and experiment.plugin_data.plugin_name == "hparams"

    assert "run directory" in result.stdout and str(run_dir) in result.stdout.replace("\n", "")
    assert f"TensorBoard: tensorboard --logdir {run_dir}\n" in result.stdout  # one line to copy; the event files just checked are there


def test_hparams_entry_lists_hyperparameters_and_metrics(workdir):
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir, _ = train_once(workdir)
    acc = read_events(run_dir)
    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert "Metrics/modes_covered" in {m.name.tag for m in experiment.metric_infos}
    assert session.hparams["objective.name"].string_value == "wgan_gp"
    assert session.hparams["objective.n_critic"].number_value == 5


def test_same_seed_gives_the_same_numbers(workdir):
    finals = []
    for name in ("a", "b"):
        run_dir = workdir / name
        result = run_ganlab(["train", *TINY, f"hydra.run.dir={run_dir}", "seed=3"], cwd=workdir)
        assert result.returncode == 0, result.stderr[-2000:]
        checkpoint = torch.load(run_dir / "checkpoints" / "step_0000012.pt", weights_only=True)
        finals.append(checkpoint["G"])
    for key in finals[0]:
        torch.testing.assert_close(finals[0][key], finals[1][key], rtol=0, atol=0)


def test_sample_writes_points_from_a_run(workdir):
    run_dir, _ = train_once(workdir)
    result = run_ganlab(["sample", f"run={run_dir}", "n=300", "out=pts.npy", "seed=5"], cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    points = np.load(workdir / "pts.npy")
    assert points.shape == (300, 2) and np.isfinite(points).all()
    again = run_ganlab(["sample", f"run={run_dir}", "n=300", "out=pts2.npy", "seed=5"], cwd=workdir)
    assert again.returncode == 0
    np.testing.assert_array_equal(points, np.load(workdir / "pts2.npy"))
    other = run_ganlab(["sample", f"run={run_dir}", "n=300", "out=pts3.npy", "seed=6"], cwd=workdir)
    assert other.returncode == 0 and not np.array_equal(points, np.load(workdir / "pts3.npy"))


def test_sample_refuses_missing_and_mismatched_runs(workdir):
    result = run_ganlab(["sample", "run=does/not/exist", "out=x.npy"], cwd=workdir)
    assert result.returncode == 2 and "no such run directory" in result.stderr
    assert "Traceback" not in result.stderr
    run_dir, _ = train_once(workdir)
    config = run_dir / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("width: 16", "width: 32"))
    result = run_ganlab(["sample", f"run={run_dir}", "out=x.npy"], cwd=workdir)
    assert result.returncode == 2 and "does not match" in result.stderr, result.stderr
    assert not (workdir / "x.npy").exists()


def test_multirun_names_job_directories_by_their_overrides(workdir):
    result = run_ganlab(["train", "-m", *TINY, "objective=js,wgan_gp", "hydra.sweep.dir=sweep"], cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p.name for p in (workdir / "sweep").iterdir() if p.is_dir())
    assert jobs == ["objective=js", "objective=wgan_gp"]
    for job in jobs:
        assert (workdir / "sweep" / job / "metrics.json").is_file()
        assert read_events(workdir / "sweep" / job).Scalars("Loss/D")
    assert "steps/s" in result.stdout + result.stderr  # plain progress lines, no live bar


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["objective.n_critic=0"], "objective.n_critic=0"),
        (["objective.optimizer.lr_G=0"], "objective.optimizer.lr_G=0"),
        (["objective=wgan_clip", "objective.constraints.clip.c=-0.01"], "objective.constraints.clip.c=-0.01 is not allowed"),
        (["objective.constraints.gp.weight=-10"], "objective.constraints.gp.weight=-10.0 is not allowed"),
        (["steps=0"], "steps=0"),
        (["batch_size=0"], "batch_size=0"),
        (["device=cuda"], "device=cuda"),
        (["precision=fp16"], "precision=fp16"),
    ],
)
def test_validation_errors_are_one_line_with_exit_status_2(workdir, overrides, needle):
    if overrides[0].startswith(("device=cuda", "precision=fp16")) and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_ganlab(["train", *overrides, "hydra.run.dir=run"], cwd=workdir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_full_error_shows_the_traceback(workdir):
    result = run_ganlab(["train", "steps=0", "hydra.run.dir=run"], cwd=workdir, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr and "steps=0" in result.stderr  # Python's own exit status


def test_help_cfg_and_info(workdir):
    top = run_ganlab(["--help"], cwd=workdir)
    assert top.returncode == 0 and "train" in top.stdout and "sample" in top.stdout
    bad = run_ganlab(["trian"], cwd=workdir)
    assert bad.returncode == 2 and "unknown command 'trian'" in bad.stderr
    help_ = run_ganlab(["train", "--help"], cwd=workdir)
    assert help_.returncode == 0
    for text in ("objective: dragan, js, lsgan, numpy_ml, r1, r3gan, ragan, rsgan, spectral_norm, wgan_clip, wgan_gp, wgan_lp",
                 "objective/loss: hinge, js, least_squares, relativistic, wasserstein",
                 "objective/constraints: clip, dragan, gp, lp, r1, r2, sn", "dataset: cifar10, digits, fashion_mnist, gaussians25, gaussians8, imagefolder, mnist, stacked_mnist, swissroll", "ganlab train -m"):
        assert text in help_.stdout, help_.stdout
    cfg = run_ganlab(["train", "--cfg", "job", "objective=js"], cwd=workdir)
    assert cfg.returncode == 0 and "name: js" in cfg.stdout and "n_critic: 1" in cfg.stdout
    info = run_ganlab(["train", "--info", "defaults"], cwd=workdir)
    assert info.returncode == 0 and "objective/wgan_gp" in info.stdout
    assert not (workdir / "outputs").exists()  # none of these started a run


@pytest.mark.parametrize("dataset,has_modes", [("swissroll", False), ("gaussians8", True)])
def test_other_toy_datasets_train_and_report_their_metrics(workdir, dataset, has_modes):
    run_dir, _ = train_once(workdir, f"dataset={dataset}", "objective=spectral_norm")
    final = json.loads((run_dir / "metrics.json").read_text())["final"]
    assert "Metrics/w1" in final and np.isfinite(final["Metrics/w1"])
    assert ("Metrics/modes_covered" in final) == has_modes
    if has_modes:
        assert 0 <= final["Metrics/modes_covered"] <= 8


IMAGE_TINY = ["experiment=digits_dcgan", "steps=4", "log_every=2", "sample_every=2", "eval_every=4", "eval_samples=200", "model.width=8", "batch_size=16", "threads=1"]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, classifier_cache) -> Path:
    workdir = tmp_path_factory.mktemp("image_run")
    run_dir = workdir / "run"
    result = run_ganlab(["train", *IMAGE_TINY, f"hydra.run.dir={run_dir}", f"metrics.classifier_cache={classifier_cache}"], cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_image_run_logs_sample_grids_and_classifier_metrics(image_run):
    assert sorted(p.name for p in (image_run / "samples").glob("*.png")) == ["samples_0000002.png", "samples_0000004.png"]
    final = json.loads((image_run / "metrics.json").read_text())["final"]
    assert set(final) == {"Metrics/fcd", "Metrics/classes_covered", "Metrics/class_kl", "Metrics/classifier_is", "Metrics/classifier_accuracy"}
    assert final["Metrics/classifier_accuracy"] > 0.9  # the digits classifier the metrics rely on
    acc = read_events(image_run)
    assert [e.step for e in acc.Images("Samples/grid")] == [2, 4]
    assert "Metrics/fcd" in acc.Tags()["scalars"]
    assert "G_ema" in torch.load(image_run / "checkpoints" / "step_0000004.pt", weights_only=True)


def test_sample_writes_image_npz_and_grid(image_run, tmp_path):
    result = run_ganlab(["sample", f"run={image_run}", "n=20", "out=imgs.npz"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    images = np.load(tmp_path / "imgs.npz")["images"]
    assert images.shape == (20, 1, 32, 32) and images.dtype == np.uint8
    assert (tmp_path / "imgs.png").is_file()
    points_only = run_ganlab(["sample", f"run={image_run}", "n=5", "out=grid.png"], cwd=tmp_path)
    assert points_only.returncode == 0 and (tmp_path / "grid.png").is_file()
    bad = run_ganlab(["sample", f"run={image_run}", "out=imgs.txt"], cwd=tmp_path)
    assert bad.returncode == 2 and "out=imgs.txt" in bad.stderr


def test_eval_recomputes_the_metrics_of_a_run(image_run, tmp_path, classifier_cache):
    result = run_ganlab(["eval", f"run={image_run}", "n=200", f"classifier_cache={classifier_cache}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((image_run / "eval.json").read_text())
    assert report["step"] == 4 and report["n"] == 200
    assert "Metrics/classes_covered" in report["metrics"] and "Metrics/fcd" in result.stdout
    missing = run_ganlab(["eval", "run=nowhere"], cwd=tmp_path)
    assert missing.returncode == 2 and "no such run directory" in missing.stderr


def test_every_experiment_preset_runs(workdir, classifier_cache):
    """A sweep over conf/experiment/*.yaml on tiny settings: every preset composes and trains."""
    from ganlab.apps import CONFIG_DIR

    names = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))
    result = run_ganlab(
        ["train", "-m", f"experiment={','.join(names)}", "steps=2", "log_every=1", "sample_every=2", "eval_every=2",
         "eval_samples=50", "model.width=8", "batch_size=8", "threads=1", "hydra.sweep.dir=sweep", f"metrics.classifier_cache={classifier_cache}"],
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [p for p in (workdir / "sweep").iterdir() if p.is_dir()]
    assert len(jobs) == len(names) and all((job / "metrics.json").is_file() for job in jobs)
