"""The Hydra applications behind ``ganlab <command>``; each composes the config tree in ``conf/``."""

from pathlib import Path


def config_dir() -> str:
    """The YAML tree: ``ganlab/conf`` in an installed wheel, ``conf/`` in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "conf"
    return str(packaged if packaged.is_dir() else package.parent / "conf")


CONFIG_DIR = config_dir()
