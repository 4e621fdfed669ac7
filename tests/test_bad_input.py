"""The bad-input table: each bad config value, data file, checkpoint or command line, run through
the installed ``ganlab`` command, must stop with the expected exit status and a message that names
the problem, and must leave the files of an earlier finished run exactly as they were.

Each case is one row of :data:`CASES`; the README's "Troubleshooting" section lists the same rows.
Placeholders in a case's arguments: ``{earlier}`` is the earlier finished run, ``{case}`` a folder
of the case's own (its setup writes the bad files there). Every command runs in the folder that
holds the earlier run, as a user would run it next to their outputs. Range errors that
tests/test_cli.py already checks (steps, batch_size, n_critic, lr_G, clip c, gp weight) are
not repeated here, except where this table adds the check that nothing was lost.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from conftest import TINY, run_ganlab, tree_digest
from data_formats import write_corrupt_image, write_image_folder, write_tiny_cifar10

pytestmark = pytest.mark.cli

IMAGES = ["model=dcgan", "model.width=8", "batch_size=8", "steps=2", "log_every=1", "sample_every=2", "eval_every=2", "eval_samples=20", "threads=1"]
EXIT_HYDRA = 1  # Hydra's own errors (composing the config) exit with 1 and Hydra's message
EXIT_USAGE = 2  # ganlab's one-line errors
MARKER = "pickle_payload_ran"  # the file the crafted checkpoint's payload would create


# ----------------------------------------------------------------------------- setups


def newest_checkpoint(run_dir: Path) -> Path:
    """The run's newest checkpoint file, whatever the layout (checkpoints/last.pt or step_<n>.pt)."""
    return max((run_dir / "checkpoints").glob("*.pt"), key=lambda p: (p.stat().st_mtime_ns, p.name))


def copy_of_earlier(case: Path, earlier: Path) -> Path:
    return Path(shutil.copytree(earlier, case / "run"))


def truncated_checkpoint(case: Path, earlier: Path) -> None:
    checkpoint = newest_checkpoint(copy_of_earlier(case, earlier))
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 3])


class Payload:
    """Pickles as a call of ``open(MARKER, "w")``: loading it unsafely creates the marker file."""

    def __reduce__(self):
        return (open, (MARKER, "w"))


def crafted_pickle_checkpoint(case: Path, earlier: Path) -> None:
    checkpoint = newest_checkpoint(copy_of_earlier(case, earlier))
    torch.save({"step": 12, "data_shape": [2], "G": Payload()}, checkpoint)


def foreign_checkpoint(case: Path, earlier: Path) -> None:
    torch.save({"net.0.weight": torch.zeros(16, 2)}, newest_checkpoint(copy_of_earlier(case, earlier)))


def no_checkpoint(case: Path, earlier: Path) -> None:
    for checkpoint in (copy_of_earlier(case, earlier) / "checkpoints").glob("*.pt"):
        checkpoint.unlink()


def wider_model_in_config(case: Path, earlier: Path) -> None:
    config = copy_of_earlier(case, earlier) / ".hydra" / "config.yaml"
    text = config.read_text()
    assert "width: 16" in text
    config.write_text(text.replace("width: 16", "width: 32"))


def not_a_run(case: Path, earlier: Path) -> None:
    (case / "notes").mkdir()
    (case / "notes" / "todo.txt").write_text("not a run\n")


def a_file(case: Path, earlier: Path) -> None:
    (case / "file").write_text("a regular file, not a folder\n")


def empty_folder(case: Path, earlier: Path) -> None:
    (case / "empty").mkdir()


def folder_with_corrupt_image(case: Path, earlier: Path) -> None:
    write_image_folder(case / "images", per_class=2)
    write_corrupt_image(case / "images" / "cats" / "broken.png")


def image_folder(case: Path, earlier: Path) -> None:
    write_image_folder(case / "images", per_class=2)


def truncated_cifar_batch(case: Path, earlier: Path) -> None:
    folder = write_tiny_cifar10(case / "data")
    batch = folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[: batch.stat().st_size // 2])


# ------------------------------------------------------------------------------ table


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # after `ganlab`
    status: int  # the expected exit status
    needle: str  # what the message must contain: the key, value, file or path at fault
    setup: Callable[[Path, Path], None] | None = None
    one_line: bool = True  # ganlab's own message: stderr is exactly one line, "error: ..."
    needs_no_cuda: bool = False  # only bad on a machine without CUDA


def train(*overrides: str) -> tuple[str, ...]:
    return ("train", *TINY, *overrides)


CASES = [
    # config
    Case("typo_key", train("objective.n_critc=3"), EXIT_HYDRA, "Key 'n_critc' not in 'ObjectiveConfig'", one_line=False),
    Case("wrong_type", train("steps=ten"), EXIT_HYDRA, "Value 'ten' of type 'str' could not be converted to Integer", one_line=False),
    Case("unknown_option", train("objective=wgan"), EXIT_HYDRA, "Could not find 'objective/wgan'", one_line=False),
    Case("interval_zero", train("eval_every=0"), EXIT_USAGE, "eval_every=0 is not allowed"),
    Case("threads_negative", train("threads=-1"), EXIT_USAGE, "threads=-1 is not allowed"),
    Case("lr_zero", train("objective.optimizer.lr_D=0"), EXIT_USAGE, "objective.optimizer.lr_D=0.0 is not allowed"),
    Case("betas_out_of_range", train("objective.optimizer.betas=[0.5,1.0]"), EXIT_USAGE, "objective.optimizer.betas=[0.5, 1.0] is not allowed"),
    Case("gp_every_zero", train("objective.constraints.gp.every=0"), EXIT_USAGE, "objective.constraints.gp.every=0 is not allowed"),
    Case("sn_iterations_zero", train("objective=spectral_norm", "objective.constraints.sn.power_iterations=0"), EXIT_USAGE, "objective.constraints.sn.power_iterations=0 is not allowed"),
    Case("width_zero", train("model.width=0"), EXIT_USAGE, "model.width=0 is not allowed"),
    Case("ema_decay_one", train("ema_decay=1.0"), EXIT_USAGE, "ema_decay=1.0 is not allowed"),
    Case("device_unknown", train("device=tpu"), EXIT_USAGE, "device=tpu is not allowed"),
    Case("cuda_without_gpu", train("device=cuda"), EXIT_USAGE, "device=cuda is not available", needs_no_cuda=True),
    Case("fp16_on_cpu", train("precision=fp16"), EXIT_USAGE, "precision=fp16 is not allowed on the CPU", needs_no_cuda=True),
    # Only the js loss has the key: Hydra refuses it on another loss when it composes the config.
    Case("saturating_not_js", train("objective=wgan_gp", "objective.loss.saturating=true"), EXIT_HYDRA, "Key 'saturating' not in 'WassersteinConfig'", one_line=False),
    # A component is chosen by its group, with a slash; with a dot the key would hold the bare name.
    Case("loss_with_a_dot", train("objective.loss=hinge"), EXIT_USAGE, "objective.loss=hinge is not allowed: a component is chosen with its config group, with a slash: objective/loss=hinge"),
    # A key of the flat objective layout: one line naming today's key (Hydra would suggest +key, which adds an unused key).
    Case("flat_objective_key", train("objective.gp_weight=1"), EXIT_USAGE, "objective.gp_weight was renamed when the objective became components: use objective.constraints.gp.weight"),
    Case("batch_norm_with_gp", ("train", "dataset=digits", *IMAGES, "model.critic_norm=batch", "objective=wgan_gp"), EXIT_USAGE, "model.critic_norm=batch is not allowed with the gradient penalty"),
    Case("resolution_unsupported", ("train", "dataset=digits", "dataset.resolution=16", *IMAGES, "model=resnet"), EXIT_USAGE, "model resnet takes 32 x 32 px images only"),
    # data files
    Case("mnist_files_missing", ("train", "dataset=mnist", "dataset.root={case}/empty", *IMAGES), EXIT_USAGE, "no MNIST files under", empty_folder),
    Case("image_corrupt_stop", ("train", "dataset=imagefolder", "dataset.root={case}/images", "dataset.resolution=16", "dataset.on_corrupt=stop", *IMAGES), EXIT_USAGE, "cannot read image {case}/images/cats/broken.png", folder_with_corrupt_image),
    Case("image_folder_empty", ("train", "dataset=imagefolder", "dataset.root={case}/empty", "dataset.resolution=16", *IMAGES), EXIT_USAGE, "no images under {case}/empty", empty_folder),
    Case("image_channels_two", ("train", "dataset=imagefolder", "dataset.root={case}/images", "dataset.resolution=16", "dataset.channels=2", *IMAGES), EXIT_USAGE, "dataset.channels=2 is not allowed", image_folder),
    Case("cifar_batch_truncated", ("train", "dataset=cifar10", "dataset.root={case}/data", *IMAGES), EXIT_USAGE, "data_batch_3 is not a CIFAR-10 python batch", truncated_cifar_batch),
    # command line
    Case("unknown_command", ("trian",), EXIT_USAGE, "unknown command 'trian'"),
    Case("sample_run_missing", ("sample", "run={case}/nowhere", "out={case}/x.npy"), EXIT_USAGE, "no such run directory"),
    Case("eval_run_missing", ("eval", "run={case}/nowhere"), EXIT_USAGE, "no such run directory"),
    Case("sample_run_not_set", ("sample", "out={case}/x.npy"), EXIT_USAGE, "run is not set"),
    Case("sample_bad_suffix", ("sample", "run={earlier}", "out={case}/x.txt"), EXIT_USAGE, "out={case}/x.txt is not allowed"),
    Case("sample_n_zero", ("sample", "run={earlier}", "n=0", "out={case}/x.npy"), EXIT_USAGE, "n=0 is not allowed"),
    Case("sample_out_unwritable", ("sample", "run={earlier}", "out={case}/file/x.npy"), EXIT_USAGE, "out={case}/file/x.npy: cannot write there", a_file),
    Case("eval_not_a_run", ("eval", "run={case}/notes"), EXIT_USAGE, "is not a ganlab training run", not_a_run),
    Case("run_dir_under_proc", train("hydra.run.dir=/proc/ganlab/run"), EXIT_USAGE, "hydra.run.dir=/proc/ganlab/run: cannot write"),
    Case("run_dir_under_a_file", train("hydra.run.dir={case}/file/run"), EXIT_USAGE, "hydra.run.dir={case}/file/run: cannot write", a_file),
    Case("sweep_dir_under_a_file", ("train", "-m", "seed=0,1", "hydra.sweep.dir={case}/file/sweep"), EXIT_USAGE, "hydra.sweep.dir={case}/file/sweep: cannot write", a_file),
    Case("run_dir_of_earlier_run", train("hydra.run.dir={earlier}", "steps=0"), EXIT_USAGE, "already holds a training run"),
    # checkpoints
    Case("checkpoint_truncated", ("sample", "run={case}/run", "out={case}/x.npy"), EXIT_USAGE, "is unreadable", truncated_checkpoint),
    Case("checkpoint_runs_code", ("sample", "run={case}/run", "out={case}/x.npy"), EXIT_USAGE, "was refused", crafted_pickle_checkpoint),
    Case("checkpoint_not_ganlab", ("sample", "run={case}/run", "out={case}/x.npy"), EXIT_USAGE, "is not a ganlab checkpoint", foreign_checkpoint),
    Case("checkpoint_missing", ("eval", "run={case}/run"), EXIT_USAGE, "has no checkpoint", no_checkpoint),
    Case("config_width_changed", ("sample", "run={case}/run", "out={case}/x.npy"), EXIT_USAGE, "does not match", wider_model_in_config),
]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad_input")


@pytest.fixture(scope="module")
def earlier(workdir: Path) -> tuple[Path, dict[str, str]]:
    """A finished tiny run, trained once, and the digest of its files."""
    run_dir = workdir / "outputs" / "runs" / "earlier"
    result = run_ganlab(["train", *TINY, f"hydra.run.dir={run_dir}"], cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    digest = tree_digest(run_dir)
    names = set(digest)
    assert {"metrics.json", ".hydra/config.yaml"} <= names
    assert any(n.startswith("checkpoints/") and n.endswith(".pt") for n in names)
    assert any(n.startswith("events.out.tfevents.") for n in names)
    return run_dir, digest


# ------------------------------------------------------------------------------ tests


def test_the_table_has_enough_distinct_cases():
    assert len({c.id for c in CASES}) == len(CASES) >= 25
    assert len({c.args for c in CASES if c.setup is None}) == len([c for c in CASES if c.setup is None])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_clearly_and_loses_nothing(case: Case, workdir: Path, earlier, monkeypatch):
    if case.needs_no_cuda and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run_dir, digest = earlier
    case_dir = workdir / "cases" / case.id
    case_dir.mkdir(parents=True)
    if case.setup is not None:
        case.setup(case_dir, run_dir)
    fill = {"earlier": run_dir, "case": case_dir}

    result = run_ganlab([arg.format(**fill) for arg in case.args], cwd=workdir)

    needle = case.needle.format(**fill)
    assert result.returncode == case.status, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    if case.one_line:
        assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
        assert result.stderr.startswith("error: ") and needle in result.stderr, result.stderr
    else:
        assert needle in result.stderr, result.stderr
    assert tree_digest(run_dir) == digest  # nothing the earlier run wrote was changed or lost
    assert not (workdir / MARKER).exists()  # a crafted checkpoint never ran its payload


def test_the_crafted_checkpoint_would_run_code_if_loaded_unsafely(tmp_path: Path, earlier, monkeypatch):
    """The control for ``checkpoint_runs_code``: its file really is armed."""
    run_dir, _ = earlier
    crafted_pickle_checkpoint(tmp_path, run_dir)
    monkeypatch.chdir(tmp_path)
    torch.load(newest_checkpoint(tmp_path / "run"), weights_only=False)
    assert (tmp_path / MARKER).exists()
