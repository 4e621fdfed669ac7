"""Every model with every dataset, built as ``ganlab train`` builds them: G's output range is the data's.

Images lie in [-1, 1], so G must end in a bound that reaches both ends and nothing beyond; the 2-D
points are unbounded, so G must not be squashed. Each pair of ``conf/model`` x ``conf/dataset``
options (at the dataset's default resolution, and at the native 28 px of the MNIST files) is
either built and checked, or refused with one line that names the sizes the model takes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import compose_train
from data_formats import write_image_folder, write_tiny_cifar10, write_tiny_mnist
from torch import nn

from ganlab.apps import CONFIG_DIR
from ganlab.apps.build import build_data, build_networks
from ganlab.data import value_range
from ganlab.errors import ConfigError

MODELS = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (Path(CONFIG_DIR) / "dataset").glob("*.yaml"))
NATIVE = {"mnist": 28, "fashion_mnist": 28, "stacked_mnist": 28, "digits": 8, "cifar10": 32}  # the files' own sizes
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """Tiny files in every on-disk format the dataset options read."""
    root = tmp_path_factory.mktemp("data")
    write_tiny_mnist(root, folder="MNIST")
    write_tiny_mnist(root, folder="FashionMNIST")
    write_tiny_cifar10(root)
    write_image_folder(root / "folder")
    return root


def compose(model: str, dataset: str, root: Path, resolution: int | None) -> object:
    overrides = [f"model={model}", f"dataset={dataset}", "model.width=8"]
    if dataset == "imagefolder":
        overrides.append(f"dataset.root={root / 'folder'}")
    elif dataset in ("mnist", "fashion_mnist", "stacked_mnist", "cifar10"):
        overrides.append(f"dataset.root={root}")
    if resolution is not None:
        overrides.append(f"dataset.resolution={resolution}")
    return compose_train(overrides)


def takes(model: str, shape: tuple[int, ...]) -> bool:
    """What each architecture can take: mlp anything; dcgan images whose side halves to 4..7 px; resnet 32 px."""
    if model == "mlp":
        return True
    if len(shape) != 3:
        return False
    return shape[1] in (8, 16, 28, 32, 64) if model == "dcgan" else shape[1] == 32


def last_layer(G: nn.Module) -> nn.Module:
    return [m for m in G.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))][-1]


PAIRS = [(m, d, None) for m in MODELS for d in DATASETS] + [(m, d, r) for m in MODELS for d, r in NATIVE.items()]


@pytest.mark.parametrize("model, dataset, resolution", PAIRS, ids=[f"{m}-{d}-{r or 'default'}" for m, d, r in PAIRS])
def test_generator_output_range_is_the_data_range(model, dataset, resolution, data_root):
    cfg = compose(model, dataset, data_root, resolution)
    data = build_data(cfg.dataset, CPU, seed=0)
    if not takes(model, data.shape):
        with pytest.raises(ConfigError, match=rf"^model {model} (needs|takes) .*(use model=mlp|set dataset.resolution)"):
            build_networks(cfg.model, data.shape, CPU)
        return
    torch.manual_seed(0)
    G, _ = build_networks(cfg.model, data.shape, CPU)
    real = data.sample(64)
    with torch.no_grad():
        last_layer(G).weight.mul_(1e4)  # drive G's raw output far past any range the data has
        fake = G(1e3 * torch.randn(64, G.z_dim))
    assert fake.shape == real.shape
    bounds = value_range(data.shape)
    if bounds is None:  # points: G is not squashed, it goes far beyond the data
        assert len(data.shape) == 1
        assert fake.abs().max().item() > 100 * real.abs().max().item()
    else:  # images: the data lies in the range, and G reaches both ends of it and nothing beyond
        low, high = bounds
        assert (low, high) == (-1.0, 1.0)
        assert ((real >= low) & (real <= high)).all()
        assert ((fake >= low) & (fake <= high)).all()
        assert (fake.min().item(), fake.max().item()) == pytest.approx((low, high))


def test_every_dataset_and_model_option_is_covered():
    assert {"mlp", "dcgan", "resnet"} <= set(MODELS)
    assert {"gaussians25", "mnist", "fashion_mnist", "stacked_mnist", "cifar10", "digits", "imagefolder"} <= set(DATASETS)
