"""The ``ganlab`` command: dispatches ``ganlab <command> [overrides]`` to a Hydra app."""

from __future__ import annotations

import importlib
import os
import sys

import ganlab

COMMANDS = {
    "train": ("ganlab.apps.train", "train a GAN (Hydra app: overrides, -m sweeps, --cfg job, --help)"),
    "sample": ("ganlab.apps.sample", "write samples of a finished run: run=<run dir> n=<N> out=<file.npy|.npz|.png> seed=<int>"),
    "eval": ("ganlab.apps.eval", "recompute all metrics of a finished run: run=<run dir> [n=<samples>]"),
    "compare": ("ganlab.apps.compare", "compare groups of runs over seeds: <sweep or run dirs> [group_by=[objective]] [metric=<tag>]"),
    "claims": ("ganlab.apps.claims", "measure the textbook claims, write report.md with verdicts: [claims=[1,2]] [mode=quick|full|gpu]"),
}

RERUN_FLAG = "--experimental-rerun"

# Choices that need a sweep plugin (the extra ganlab[sweeps]): (override key, option or None for any) -> plugin module.
PLUGINS = {
    ("hydra/sweeper", "optuna"): "hydra_plugins.hydra_optuna_sweeper",
    ("hydra/sweeper", "search"): "hydra_plugins.hydra_optuna_sweeper",  # ganlab.apps.search
    ("hparams_search", None): "hydra_plugins.hydra_optuna_sweeper",
    ("hydra/launcher", "joblib"): "hydra_plugins.hydra_joblib_launcher",
    ("hydra/launcher", "submitit_local"): "hydra_plugins.hydra_submitit_launcher",
    ("hydra/launcher", "submitit_slurm"): "hydra_plugins.hydra_submitit_launcher",
    ("hydra/launcher", "slurm"): "hydra_plugins.hydra_submitit_launcher",
}


def missing_plugin(args: list[str]) -> str | None:
    """One line for the first override that chooses a sweep plugin that is not installed, else None."""
    import importlib.util

    for arg in args:
        key, _, value = arg.lstrip("+~").partition("=")
        module = PLUGINS.get((key, value)) or PLUGINS.get((key, None))
        if module and value and importlib.util.find_spec(module) is None:
            package = module.split(".")[-1].replace("_", "-")
            return f"{arg} needs Hydra's {package} plugin, which is not installed: pip install 'ganlab[sweeps]'"
    return None

def directory_arguments(args: list[str]) -> list[str]:
    """``ganlab compare``'s positional directories as the override ``runs=[...]``, the options kept.

    An argument is a directory when it exists as a path, has no ``=``, or has a ``/`` before its
    first ``=`` that does not start a ``hydra/`` group (a sweep's job directory such as
    ``.../objective=js,seed=0``). Each is escaped for Hydra's override grammar.
    """
    from hydra._internal.grammar.utils import escape_special_characters  # what Hydra's own sweeper uses

    def is_directory(arg: str) -> bool:
        key = arg.split("=", 1)[0]
        return not arg.startswith("-") and (os.path.exists(arg) or "=" not in arg or ("/" in key and not key.lstrip("+~").startswith("hydra")))

    directories = [arg for arg in args if is_directory(arg)]
    options = [arg for arg in args if not is_directory(arg)]
    if not directories:
        return options
    if any(option.split("=", 1)[0] == "runs" for option in options):
        raise ValueError("pass the directories either as arguments or as runs=[...], not both")
    return [f"runs=[{','.join(escape_special_characters(d) for d in directories)}]", *options]


def _rank() -> int:
    """This process's rank in a distributed run (0 outside one): ganlab.distributed.world_from_env."""
    from ganlab.distributed import world_from_env  # imports torch: only for ganlab train

    return world_from_env().rank


USAGE = f"""usage: ganlab <command> [key=value ...] [hydra flags]

ganlab {ganlab.__version__}: train the classic GAN objectives side by side and compare them in TensorBoard.

commands:
""" + "\n".join(f"  {name:<8} {text}" for name, (_, text) in COMMANDS.items()) + """

examples:
  ganlab train                                   # WGAN-GP on 25 Gaussians, MLP, CPU, ~2 minutes
  ganlab train objective=spectral_norm dataset=gaussians8
  ganlab train -m objective=js,wgan_clip,wgan_gp,spectral_norm seed=0,1,2
  ganlab train --help                            # every config group and key
  ganlab train dataset=digits model=dcgan objective=js    # real images, offline
  ganlab sample run=outputs/runs/<date>/<time> n=1000 out=samples.npy
  ganlab eval run=outputs/runs/<date>/<time>
  ganlab compare outputs/multirun/<date>/<time>  # IQM, intervals over seeds, P(A beats B), curves with bands
  ganlab claims claims=[1,2] mode=quick          # the textbook claims, measured: report.md with verdicts
  tensorboard --logdir outputs
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if argv[0] == "--version":
        print(f"ganlab {ganlab.__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}: choose one of {', '.join(COMMANDS)} (see ganlab --help)", file=sys.stderr)
        return 2
    if any(len(flag) > 2 and RERUN_FLAG.startswith(flag) for flag in (arg.split("=", 1)[0] for arg in rest)):
        # Hydra's flag (argparse takes any prefix of it) unpickles the named file, which can run
        # code; ganlab never writes that file (see ganlab.apps.saved_config).
        print(f"error: {RERUN_FLAG} is not supported: it loads a pickled config, which can run code; "
              "rerun with the run's command line, or continue it with ganlab train resume=<run dir>", file=sys.stderr)
        return 2
    if command == "train" and (problem := missing_plugin(rest)):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if command == "train":
        from ganlab.apps.migrate import renamed_override  # Hydra would suggest +key, which would add an unused key

        hints = [hint for hint in map(renamed_override, rest) if hint]
        if hints:
            print(f"error: {hints[0]}", file=sys.stderr)
            return 2
    if command == "compare":
        try:
            rest = directory_arguments(rest)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if command == "train" and _rank() > 0:
        # A distributed run's ranks 1..N-1 (torchrun, SLURM tasks): Hydra resolves the run directory's
        # ${now:...} on each rank (hydra #2070), so they write nothing of their own; rank 0 tells them
        # its directory (ganlab.apps.train.shared_run_dir), and they log only warnings.
        rest = [*rest, "hydra.output_subdir=null", "hydra.run.dir=.", "hydra/job_logging=none"]
    sys.argv = [f"ganlab {command}", *rest]  # Hydra parses sys.argv
    importlib.import_module(COMMANDS[command][0]).main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
