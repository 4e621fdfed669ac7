"""Networks as the app builds them: from the model schema's defaults, with a test's options over them."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf
from torch import nn

from ganlab.apps.build import build_networks
from ganlab.config import DCGANConfig, MLPConfig, ResNetConfig

SCHEMAS = {"mlp": MLPConfig, "dcgan": DCGANConfig, "resnet": ResNetConfig}


def build_model(model: str, data_shape: tuple[int, ...], **options) -> tuple[nn.Module, nn.Module]:
    """G and D of ``model`` (mlp, dcgan, resnet) for data of ``data_shape``, on the CPU, through
    ``build_networks``: the schema holds every default, so a test names only what it changes."""
    return build_networks(OmegaConf.structured(SCHEMAS[model](**options)), data_shape, torch.device("cpu"))
