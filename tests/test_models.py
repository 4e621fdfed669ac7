"""Shapes, ranges, parameter counts and critic properties of the networks, at tiny widths."""

from __future__ import annotations

import copy
import dataclasses
import enum
import inspect
import math

import pytest
import torch
from networks import SCHEMAS, build_model
from torch import nn

from ganlab.errors import ConfigError
from ganlab.models.dcgan import build_dcgan
from ganlab.models.mlp import build_mlp
from ganlab.models.norms import CRITIC_NORMS, critic_norm
from ganlab.models.output import ScaledTanh, output_layer
from ganlab.models.resnet import build_resnet
from ganlab.objectives.constraints.gradient_penalty import GradientPenalty
from ganlab.objectives.constraints.spectral_norm import SpectralNorm
from ganlab.precision import Precision

WIDTH = 8  # channels: tiny, so that every test runs in well under a second
Z_DIM = 4
N = 4

# (model, data_shape, Linear/Conv layers in the critic)
IMAGE_NETS = [
    pytest.param("dcgan", (1, 8, 8), 2, id="dcgan-8-gray"),  # conv 8->4, 4x4 score
    pytest.param("dcgan", (1, 16, 16), 3, id="dcgan-16-gray"),  # conv 16->8, 8->4, 4x4 score
    pytest.param("dcgan", (1, 28, 28), 3, id="dcgan-28-gray"),  # conv 28->14, 14->7, 7x7 score
    pytest.param("dcgan", (3, 32, 32), 4, id="dcgan-32-rgb"),
    pytest.param("dcgan", (1, 32, 32), 4, id="dcgan-32-gray"),
    pytest.param("dcgan", (3, 64, 64), 5, id="dcgan-64-rgb"),
    # first block 2 convs + shortcut, down block 2 + shortcut, two blocks 2 each, final Linear
    pytest.param("resnet", (3, 32, 32), 3 + 3 + 2 + 2 + 1, id="resnet-32-rgb"),
    pytest.param("resnet", (1, 32, 32), 11, id="resnet-32-gray"),
]
ARCHITECTURES = [pytest.param("dcgan", (3, 32, 32), id="dcgan"), pytest.param("resnet", (3, 32, 32), id="resnet")]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def images(shape: tuple[int, ...], n: int = N) -> torch.Tensor:
    return torch.rand(n, *shape) * 2 - 1


@pytest.mark.parametrize("model, shape, _layers", IMAGE_NETS)
def test_generator_makes_images_in_tanh_range_and_critic_one_score_each(model, shape, _layers):
    G, D = build_model(model, shape, z_dim=Z_DIM, width=WIDTH)
    assert G.z_dim == Z_DIM
    fake = G(torch.randn(N, Z_DIM))
    assert fake.shape == (N, *shape)
    assert fake.abs().max().item() <= 1.0
    assert fake.std().item() > 0  # not a constant image
    score = D(fake)
    assert score.shape == (N,)
    assert torch.isfinite(score).all()


@pytest.mark.parametrize("model, shape", ARCHITECTURES)
@pytest.mark.parametrize("norm", CRITIC_NORMS)
def test_every_critic_norm_builds_runs_and_adds_its_layers(model, shape, norm):
    G, D = build_model(model, shape, z_dim=Z_DIM, width=WIDTH, critic_norm=norm)
    assert D(images(shape)).shape == (N,)
    expected = {"none": (), "layer": nn.GroupNorm, "instance": nn.InstanceNorm2d, "batch": nn.BatchNorm2d}[norm]
    assert any(isinstance(m, expected) for m in D.modules()) == (norm != "none")
    assert not any(isinstance(m, (nn.GroupNorm, nn.InstanceNorm2d)) for m in G.modules())  # G keeps its BatchNorm


def test_mlp_critic_norms_and_unchanged_checkpoint_layout():
    _, D = build_model("mlp", (2,), z_dim=2, width=16, depth=2, critic_norm="none")
    assert [k for k in D.state_dict() if k.endswith("weight")] == ["net.0.weight", "net.2.weight", "net.4.weight"]
    _, D = build_model("mlp", (2,), z_dim=2, width=16, depth=2, critic_norm="layer")
    assert isinstance(D.net[1], nn.LayerNorm)
    _, D = build_model("mlp", (2,), z_dim=2, width=16, depth=2, critic_norm="batch")
    assert isinstance(D.net[1], nn.BatchNorm1d)
    assert D(torch.randn(N, 2)).shape == (N,)
    with pytest.raises(ConfigError, match="critic_norm=layer"):
        build_model("mlp", (2,), critic_norm="instance")


def test_options_arrive_as_config_enums_or_strings():
    Norm = enum.Enum("Norm", {"layer": "layer"})  # Hydra's instantiate passes schema enums as members
    assert isinstance(critic_norm(Norm.layer, 8, (4, 4)), nn.GroupNorm)
    with pytest.raises(ValueError, match="'group'"):
        critic_norm("group", 8, (4, 4))


def _depends_on_other_samples(D: nn.Module, shape: tuple[int, ...]) -> bool:
    D.train()
    x = images(shape, 6)
    other = torch.cat([x[:2], images(shape, 4)])  # same first two samples, different rest
    with torch.no_grad():
        return not torch.allclose(D(x)[:2], D(other)[:2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "model, shape, norm",
    [pytest.param("dcgan", (3, 32, 32), n, id=f"dcgan-{n}") for n in CRITIC_NORMS]
    + [pytest.param("resnet", (3, 32, 32), n, id=f"resnet-{n}") for n in CRITIC_NORMS]
    + [pytest.param("mlp", (2,), n, id=f"mlp-{n}") for n in ("none", "layer", "batch")],  # instance: refused
)
def test_critic_is_per_sample_unless_batch_norm(model, shape, norm):
    # The objective refuses batch norm with the gradient penalty because of exactly this property.
    _, D = build_model(model, shape, z_dim=Z_DIM, width=WIDTH, critic_norm=norm)
    assert _depends_on_other_samples(D, shape) == (norm == "batch")


@pytest.mark.parametrize("model, shape, layers", IMAGE_NETS)
def test_spectral_norm_wraps_every_critic_layer_and_the_critic_still_runs(model, shape, layers):
    _, D = build_model(model, shape, z_dim=Z_DIM, width=WIDTH, critic_norm="none")
    assert sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in D.modules()) == layers
    SpectralNorm(power_iterations=1).attach(D)
    assert len(SpectralNorm.layers(D)) == layers
    score = D(images(shape))
    assert score.shape == (N,)
    assert torch.isfinite(score).all()
    # Normalised weights: the largest singular value of each effective weight is close to 1.
    for _, layer in SpectralNorm.layers(D):
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("model, shape", ARCHITECTURES)
@pytest.mark.parametrize("norm", ["none", "layer"])
def test_gradient_penalty_backward_reaches_every_critic_parameter(model, shape, norm):
    _, D = build_model(model, shape, z_dim=Z_DIM, width=WIDTH, critic_norm=norm)
    gp = GradientPenalty(weight=10.0, every=1).penalty(D, images(shape), images(shape), Precision("fp32", "cpu"))
    gp.backward()
    assert torch.isfinite(gp)
    # The input gradient does not depend on the last bias (no grad at all), but on every weight.
    for name, p in D.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    for layer in D.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            assert layer.weight.grad is not None and layer.weight.grad.abs().sum().item() > 0


DCGAN_SIZES = "8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, ... px"


@pytest.mark.parametrize(
    "model, shape, message",
    [
        ("dcgan", (3, 30, 30), f"^model dcgan takes square images of {DCGAN_SIZES} .*, got 30x30; set dataset.resolution to one of them"),
        ("dcgan", (3, 18, 18), "got 18x18; set dataset.resolution"),  # 18 -> 9: above 7 px
        ("dcgan", (3, 6, 6), "got 6x6; set dataset.resolution"),  # no stride-2 stage fits
        ("dcgan", (3, 32, 64), "got 32x64; set dataset.resolution"),
        ("resnet", (3, 64, 64), "^model resnet takes 32 x 32 px images only, got 64x64; set dataset.resolution=32"),
        ("resnet", (1, 28, 28), "got 28x28; set dataset.resolution=32, or use model=dcgan"),
    ],
)
def test_unsupported_resolutions_are_one_line_naming_the_sizes_the_model_takes(model, shape, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_model(model, shape, z_dim=Z_DIM, width=WIDTH)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("size, base", [(8, 4), (12, 6), (28, 7), (56, 7), (64, 4), (128, 4)])
def test_dcgan_takes_every_side_that_halves_down_to_4_to_7_px(size, base):
    G, D = build_model("dcgan", (1, size, size), z_dim=Z_DIM, width=WIDTH)
    assert G.net[0].kernel_size == D.net[-1].kernel_size == (base, base)  # z -> base x base, base x base -> score
    fake = G(torch.randn(N, Z_DIM))
    assert fake.shape == (N, 1, size, size)
    assert D(fake).shape == (N,)


@pytest.mark.parametrize("model", ["dcgan", "resnet"])
def test_vector_data_is_refused(model):
    with pytest.raises(ConfigError, match="model=mlp"):
        build_model(model, (2,))


@pytest.mark.parametrize("build", [build_mlp, build_dcgan, build_resnet])
def test_builders_take_every_option_of_their_schema_and_default_none(build):
    """The schema is the one place a model option gets its default (a builder default could disagree with it)."""
    schema = SCHEMAS[build.__module__.rsplit(".", 1)[1]]
    params = inspect.signature(build).parameters
    options = {f.name for f in dataclasses.fields(schema)} - {"_target_"}
    assert {name for name, p in params.items() if p.kind is p.KEYWORD_ONLY} == options
    assert [name for name, p in params.items() if p.default is not p.empty] == []
    assert list(params)[:2] == ["data_shape", "value_range"]  # from the data, not from the config


def test_output_layer_bounds_to_the_value_range_or_leaves_it_alone():
    x = torch.tensor([-1e4, -1.0, 0.0, 1.0, 1e4])
    assert output_layer(None) is None
    assert isinstance(output_layer((-1.0, 1.0)), nn.Tanh)
    torch.testing.assert_close(output_layer((-1, 1))(x), torch.tanh(x))
    scaled = output_layer((0.0, 255.0))
    assert isinstance(scaled, ScaledTanh)
    torch.testing.assert_close(scaled(x), (torch.tanh(x) + 1) * 127.5)
    assert scaled(x)[[0, 2, 4]].tolist() == pytest.approx([0.0, 127.5, 255.0])
    for bad in [(1.0, -1.0), (0.0, 0.0), (0.0, float("inf"))]:
        with pytest.raises(ValueError, match="value_range must be None .* got"):
            output_layer(bad)


def test_dcgan_parameter_count_matches_hand_count():
    # 32 px, width 8, 1 channel, z_dim 4: G 4x4 map of 4w = 32 channels -> 16 -> 8 -> 1.
    # Kernels are 4x4; convolutions followed by BatchNorm have no bias; BatchNorm has 2 per channel.
    G_expected = (
        4 * 32 * 16 + 2 * 32  # ConvTranspose 1x1 -> 4x4, BN
        + 32 * 16 * 16 + 2 * 16  # 4 -> 8, BN
        + 16 * 8 * 16 + 2 * 8  # 8 -> 16, BN
        + 8 * 1 * 16 + 1  # 16 -> 32 to the image, with bias
    )
    D_expected = (
        1 * 8 * 16 + 8  # 32 -> 16, bias, no norm
        + 8 * 16 * 16 + 2 * 16  # 16 -> 8, layer norm (the schema's default; batch norm has as many)
        + 16 * 32 * 16 + 2 * 32  # 8 -> 4, layer norm
        + 32 * 1 * 16 + 1  # 4x4 -> score
    )
    G, D = build_model("dcgan", (1, 32, 32), z_dim=4, width=8)
    assert (n_params(G), n_params(D)) == (G_expected, D_expected) == (12529, 10985)
    _, D_none = build_model("dcgan", (1, 32, 32), z_dim=4, width=8, critic_norm="none")
    assert n_params(D_none) == D_expected - 2 * 16 - 2 * 32 + 16 + 32  # norm params out, conv biases in


def test_dcgan_64_default_matches_the_pytorch_example_counts():
    # The PyTorch DCGAN example (nz 100, ngf = ndf = 64, 3 channels, no biases anywhere) has
    # 3,576,704 and 2,765,568 parameters; ganlab adds the biases of the layers without a norm.
    # (Its critic's batch norm has as many parameters as the schema's default layer norm.)
    G, D = build_model("dcgan", (3, 64, 64), critic_norm="batch")
    assert n_params(D) == n_params(build_model("dcgan", (3, 64, 64))[1])
    assert n_params(G) == 3_576_704 + 3
    assert n_params(D) == 2_765_568 + 64 + 1


def test_resnet_parameter_count_matches_hand_count():
    w, c, z = 8, 3, 4
    conv3 = lambda i, o: i * o * 9 + o  # noqa: E731
    conv1 = lambda i, o: i * o + o  # noqa: E731
    up_block = 2 * w + conv3(w, w) + 2 * w + conv3(w, w) + conv1(w, w)
    G_expected = (z * 16 * w + 16 * w) + 3 * up_block + 2 * w + conv3(w, c)
    D_expected = (
        conv3(c, w) + conv3(w, w) + conv1(c, w)  # first block
        + conv3(w, w) + conv3(w, w) + conv1(w, w)  # down block
        + 2 * 2 * conv3(w, w)  # two blocks with identity shortcuts
        + w + 1  # Linear -> 1
    )
    G, D = build_model("resnet", (c, 32, 32), z_dim=z, width=w)
    assert (n_params(G), n_params(D)) == (G_expected, D_expected)


def test_dcgan_init_draws_weights_from_n_0_002():
    G, D = build_model("dcgan", (3, 64, 64))
    weight = G.net[3].weight  # 512 -> 256 channels, 2M weights
    assert weight.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert weight.std().item() == pytest.approx(0.02, rel=0.01)
    bn = G.net[1]
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert bn.bias.abs().max().item() == 0.0
    _, D_default = build_model("dcgan", (3, 64, 64), init="default")
    # PyTorch's own conv init, U(-b, b) with b = 1/sqrt(fan_in): std 1/sqrt(3 * 48) = 0.083 for 3 x 4 x 4 inputs.
    assert D_default.net[0].weight.std().item() == pytest.approx(1 / math.sqrt(3 * 48), rel=0.05)


# ------------------------------------------------------------------ critic activations


def with_native_activations(D: nn.Module) -> nn.Module:
    """A copy of ``D`` with torch's own ReLU / LeakyReLU in place of ganlab's critic activations."""
    from ganlab.models.activations import use_torch_activations

    return use_torch_activations(copy.deepcopy(D))


def penalty_gradients(D: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The parameter gradients of a WGAN-GP critic loss: scores plus the penalty's double backward."""
    D.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    loss = D(x.detach()).mean() + ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    loss.backward()
    return [p.grad for p in D.parameters()]


@pytest.mark.parametrize("model,shape,options", [
    ("mlp", (2,), {"activation": "relu"}),
    ("mlp", (2,), {"activation": "leaky_relu"}),
    ("dcgan", (1, 16, 16), {"critic_norm": "none"}),
    ("dcgan", (1, 16, 16), {"critic_norm": "layer"}),
    ("resnet", (3, 32, 32), {"width": 8}),
])
def test_critic_activations_give_torchs_values_and_gradients(model, shape, options):
    """ganlab's critic ReLU/LeakyReLU only change what autograd records: the numbers are torch's, bit for bit."""
    torch.manual_seed(0)
    _, D = build_model(model, shape, **({"width": 8} | options))
    native = with_native_activations(D)
    assert any(isinstance(m, (nn.ReLU, nn.LeakyReLU)) for m in native.modules())
    x = torch.randn(6, *shape)
    assert torch.equal(D(x), native(x))
    for ours, theirs in zip(penalty_gradients(D, x), penalty_gradients(native, x)):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_penalty_double_backward_skips_the_dead_path():
    """With torch's ReLU the double backward multiplies zeros through the forward pass; ganlab's skips it."""
    from torch.profiler import profile

    torch.manual_seed(0)
    _, D = build_model("mlp", (2,), width=32, depth=3)
    x = torch.randn(8, 2)

    def matmuls(critic: nn.Module) -> int:
        with profile() as prof:
            penalty_gradients(critic, x)
        return sum(e.count for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm"))

    # torch's ReLU sends zeros back through the forward pass on x: below each of the 3 ReLUs, a
    # Linear layer computes its weight gradient and its input gradient from them (26 vs 32, torch 2.14).
    assert matmuls(with_native_activations(D)) - matmuls(D) == 6
