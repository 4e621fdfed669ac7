"""Tests for the image datasets: real on-disk formats, the sampling contract, errors, and the two storage paths."""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from data_formats import (
    noise_image, random_digits, save_image, write_corrupt_image, write_image_folder, write_mnist, write_tiny_cifar10, write_tiny_mnist,
)
from ganlab.data.cifar10 import CIFAR10
from ganlab.data.digits import Digits
from ganlab.data.imagefolder import ImageFiles, ImageFolder, find_images
from ganlab.data.images import DeviceImages, LoaderImages, StreamSampler, default_root, to_unit_range
from ganlab.data.mnist import MNIST, FashionMNIST, StackedMNIST
from ganlab.errors import ConfigError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """One root holding a tiny MNIST, Fashion-MNIST (pixel = 20 * digit) and CIFAR-10, as a user's $GANLAB_DATA would."""
    root = tmp_path_factory.mktemp("data")
    write_tiny_mnist(root, n_train=60, n_test=20)
    write_tiny_mnist(root, n_train=60, n_test=20, folder="FashionMNIST")
    write_tiny_cifar10(root, n_train=50, n_test=10)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two class folders of PNG and JPEG files, RGB and grey, of different sizes."""
    root = tmp_path_factory.mktemp("images")
    write_image_folder(root, per_class=4)
    return root


# --- MNIST and Fashion-MNIST ----------------------------------------------------------


@pytest.mark.parametrize("cls, folder_name, name", [(MNIST, "MNIST", "mnist"), (FashionMNIST, "FashionMNIST", "fashion_mnist")])
def test_mnist_reads_idx_files_through_torchvision(data_root, cls, folder_name, name):
    assert (data_root / folder_name / "raw" / "train-images-idx3-ubyte").is_file()
    data = cls(root=str(data_root), resolution=16)
    assert (data.name, data.shape, data.num_classes, len(data)) == (f"{name}-16", (1, 16, 16), 10, 60)
    train_x, train_y, test_x, test_y = data.classifier_data()
    assert train_x.shape == (60, 1, 16, 16) and test_x.shape == (20, 1, 16, 16)
    torch.testing.assert_close(train_y, torch.arange(60) % 10)
    torch.testing.assert_close(test_y, torch.arange(20) % 10)
    # Constant images stay constant through the resize: every pixel is 20 * label.
    expected = (20 * train_y).float().div(127.5).sub(1)[:, None, None, None].expand_as(train_x)
    torch.testing.assert_close(train_x, expected)


def test_mnist_downscale_is_antialiased(tmp_path):
    """A one-pixel checkerboard shrunk 28 -> 8 becomes mid-grey, not a sampled pattern of black and white."""
    board = ((np.indices((28, 28)).sum(0) % 2) * 255).astype(np.uint8)
    images = np.stack([board] * 10)
    write_mnist(tmp_path, images, np.arange(10), images[:2], np.arange(2))
    x = MNIST(root=tmp_path, resolution=8).sample(4)
    assert x.abs().max() < 0.1


def test_mnist_root_defaults_to_ganlab_data(data_root, monkeypatch):
    monkeypatch.setenv("GANLAB_DATA", str(data_root))
    assert default_root() == data_root
    assert len(MNIST()) == 60
    monkeypatch.delenv("GANLAB_DATA")
    assert default_root() == Path("~/.cache/ganlab/data").expanduser()


def test_missing_mnist_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(ConfigError) as err:
        MNIST(root=tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "dataset.download=true" in message


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    def offline(self):  # what torchvision raises after trying every mirror
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://a/, got:\nno route\nTried http://b/, got:\nname unknown\n")
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(ConfigError, match=r"^dataset mnist: downloading MNIST into .* failed \(Error downloading "
                                          r"train-images-idx3-ubyte.gz, last: name unknown\); check the network"):
        MNIST(root=tmp_path, download=True)


def test_mnist_with_a_missing_test_file_names_it(tmp_path):
    raw = write_tiny_mnist(tmp_path)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ConfigError, match="missing under .*: t10k-labels-idx1-ubyte; run with dataset.download=true"):
        MNIST(root=tmp_path)


def test_mnist_compressed_files_only_says_unpack(tmp_path):
    raw = write_tiny_mnist(tmp_path)
    for f in list(raw.iterdir()):
        f.rename(f.with_name(f.name + ".gz"))
    with pytest.raises(ConfigError, match="compressed MNIST files only; unpack them"):
        MNIST(root=tmp_path)


def test_truncated_mnist_file_is_a_config_error(tmp_path):
    raw = write_tiny_mnist(tmp_path)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ConfigError, match="MNIST files under .* are unreadable"):
        MNIST(root=tmp_path)


@pytest.mark.parametrize("value", [30, 27, 32.0, "32", True])
def test_bad_resolution_names_the_key(data_root, value):
    with pytest.raises(ConfigError, match=rf"^dataset.resolution={value} is not allowed: choose 8, 16, 28, 32 or 64$"):
        MNIST(root=data_root, resolution=value)


@pytest.mark.parametrize("cls, folder_name", [(MNIST, "MNIST"), (FashionMNIST, "FashionMNIST"), (StackedMNIST, "MNIST")])
def test_mnist_at_its_own_28_px_keeps_the_files_pixels(tmp_path, cls, folder_name):
    train, _ = random_digits(30, seed=3)
    test, _ = random_digits(10, seed=4)
    write_mnist(tmp_path, train, np.arange(30) % 10, test, np.arange(10) % 10, folder=folder_name)
    data = cls(root=tmp_path, resolution=28)
    assert data.shape == ((3 if cls is StackedMNIST else 1), 28, 28)
    torch.testing.assert_close(data.images, torch.from_numpy(train)[:, None])  # not resized: the bytes as written
    torch.testing.assert_close(data.test_images, torch.from_numpy(test)[:, None])


# --- Stacked MNIST --------------------------------------------------------------------


def test_stacked_mnist_labels_match_the_channels(data_root):
    data = StackedMNIST(root=data_root)
    assert (data.name, data.shape, data.num_classes, data.channel_classes) == ("stacked_mnist-32", (3, 32, 32), 1000, 10)
    x, y = data.sample_labeled(2000)
    assert x.shape == (2000, 3, 32, 32) and y.dtype == torch.int64
    # Each channel is a constant MNIST image of value 20 * digit, so the channels spell the label.
    assert torch.equal(x.amin(dim=(2, 3)), x.amax(dim=(2, 3)))
    digits = torch.round((x[:, :, 0, 0] + 1) * 127.5 / 20).long()
    torch.testing.assert_close(y, 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2])
    # Three independent draws: 2000 samples of 1000 equally likely modes cover about 1000 (1 - e^-2) = 865 of them.
    assert 780 < len(y.unique()) <= 1000


def test_stacked_mnist_classifier_data_is_plain_mnist(data_root):
    train_x, train_y, test_x, test_y = StackedMNIST(root=data_root).classifier_data()
    assert train_x.shape == (60, 1, 32, 32) and test_x.shape == (20, 1, 32, 32)
    assert int(train_y.max()) == 9


def test_stacked_mnist_fixed_training_set(data_root):
    data = StackedMNIST(root=data_root, n_train=50)
    assert (len(data), data.name) == (50, "stacked_mnist-32-n50")
    _, y = data.sample_labeled(3000)
    # Exactly the modes of the 50 fixed triples of image indices (image i shows digit i % 10); 3000
    # draws miss one of 50 triples with probability 50 * (49/50)^3000 < 1e-24.
    assert set(y.tolist()) == {100 * (r % 10) + 10 * (g % 10) + b % 10 for r, g, b in data.triples.tolist()}
    assert torch.equal(StackedMNIST(root=data_root, n_train=50, seed=3).triples, data.triples)  # part of the benchmark
    with pytest.raises(ConfigError, match="dataset.n_train=0 is not allowed"):
        StackedMNIST(root=data_root, n_train=0)


# --- CIFAR-10 -------------------------------------------------------------------------


def test_cifar10_reads_the_python_batches(data_root, caplog):
    with caplog.at_level(logging.WARNING, logger="ganlab"):
        data = CIFAR10(root=data_root)
    assert (data.name, data.shape, data.num_classes, len(data), data.official) == ("cifar10-32", (3, 32, 32), 10, 50, False)
    assert "not the official CIFAR-10 release" in caplog.text
    train_x, train_y, test_x, test_y = data.classifier_data()
    assert train_x.shape == (50, 3, 32, 32) and test_x.shape == (10, 3, 32, 32)
    torch.testing.assert_close(train_y, torch.arange(50) % 10)
    # Channel order: red = 10 * label, green = 100, blue = 200 + label.
    expected = torch.stack([10 * train_y, torch.full_like(train_y, 100), 200 + train_y], dim=1).float() / 127.5 - 1
    torch.testing.assert_close(train_x[:, :, 5, 7], expected)


def test_cifar10_writer_matches_what_torchvision_reads(data_root, monkeypatch):
    """The test files are the release's format: torchvision parses them once its md5 check is bypassed (here only)."""
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    theirs = torchvision.datasets.CIFAR10(root=str(data_root), train=True)
    ours = CIFAR10(root=data_root)
    assert theirs.classes[0] == "airplane"
    assert np.array_equal(theirs.data, ours.images.permute(0, 2, 3, 1).numpy())
    assert theirs.targets == ours.labels.tolist()


def test_missing_cifar10_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(ConfigError) as err:
        CIFAR10(root=tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "cifar-10-batches-py") in message and "dataset.download=true" in message


def test_cifar10_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    folder = write_tiny_cifar10(tmp_path)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({"data": Payload(), "labels": [0]}, f, protocol=2)
    with pytest.raises(ConfigError, match=r"data_batch_3 is not a CIFAR-10 python batch \(refused to load "):
        CIFAR10(root=tmp_path)
    assert not marker.exists()


def test_cifar10_batch_of_the_wrong_shape_is_refused(tmp_path):
    folder = write_tiny_cifar10(tmp_path)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((3, 100), np.uint8), "labels": [0, 1, 2]}, f, protocol=2)
    with pytest.raises(ConfigError, match=r"test_batch is not a CIFAR-10 python batch \(no uint8 'data' array"):
        CIFAR10(root=tmp_path)


# --- digits ---------------------------------------------------------------------------


def test_digits_fixed_split_and_levels():
    data = Digits(resolution=8)
    train_x, train_y, test_x, test_y = data.classifier_data()
    assert (data.name, data.shape, len(data), len(test_x)) == ("digits-8", (1, 8, 8), 1438, 359)
    assert set(train_y.unique().tolist()) == set(range(10))
    # At the native 8 px the pixels are exactly the 17 ink levels 0..16 scaled to 0..255.
    levels = torch.tensor([round(k * 255 / 16) for k in range(17)], dtype=torch.uint8)
    assert torch.equal(torch.cat([data.images, data.test_images]).unique(), levels)
    # The split is fixed: a different run seed holds out the same images.
    torch.testing.assert_close(Digits(resolution=8, seed=5).classifier_data()[2], test_x)


def test_digits_upscaled():
    data = Digits(resolution=64)
    assert data.sample(3).shape == (3, 1, 64, 64)


# --- the sampling contract, for every dataset ------------------------------------------


def build(kind: str, data_root: Path, folder: Path, seed: int = 0):
    return {
        "digits": lambda: Digits(resolution=16, seed=seed),
        "mnist": lambda: MNIST(root=data_root, resolution=16, seed=seed),
        "stacked_mnist": lambda: StackedMNIST(root=data_root, resolution=16, seed=seed),
        "cifar10": lambda: CIFAR10(root=data_root, resolution=16, seed=seed),
        "folder_memory": lambda: ImageFolder(folder, resolution=16, in_memory="true", num_workers=0, seed=seed),
        "folder_stream": lambda: ImageFolder(folder, resolution=16, in_memory=False, num_workers=0, batch_size=5, seed=seed),
    }[kind]()


KINDS = ["digits", "mnist", "stacked_mnist", "cifar10", "folder_memory", "folder_stream"]


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_contract(kind, data_root, folder):
    global_rng = torch.get_rng_state()
    data = build(kind, data_root, folder)
    x = data.sample(37)
    assert x.shape == (37, *data.shape) and x.dtype == torch.float32 and x.device == data.device
    assert -1 <= float(x.min()) and float(x.max()) <= 1
    x, y = data.sample_labeled(50)
    assert y.dtype == torch.int64 and y.device == data.device and 0 <= int(y.min()) and int(y.max()) < data.num_classes
    # Same seed, same batches; another seed, other batches.
    again = build(kind, data_root, folder)
    again.sample(37)
    torch.testing.assert_close(again.sample_labeled(50), (x, y))
    assert not torch.equal(build(kind, data_root, folder, seed=1).sample(50), build(kind, data_root, folder).sample(50))
    # An explicit generator gives the same batch twice and leaves the dataset's own stream alone.
    held_out = [data.sample(20, generator=torch.Generator(data.device).manual_seed(7)) for _ in range(2)]
    torch.testing.assert_close(held_out[0], held_out[1])
    torch.testing.assert_close(data.sample(20), again.sample(20))
    # Sampling never touches the global RNG that draws the noise z.
    assert torch.equal(torch.get_rng_state(), global_rng)
    train_x, train_y, test_x, test_y = data.classifier_data()
    assert train_x.shape[1:] == test_x.shape[1:] and train_x.dtype == torch.float32 and test_y.dtype == torch.int64
    assert len(train_x) == len(train_y) and len(test_x) == len(test_y) > 0
    assert repr(data).startswith(type(data).__name__) and str(len(data)) in repr(data)


# --- image folders --------------------------------------------------------------------


def test_image_folder_classes_and_conversion(folder):
    data = ImageFolder(folder, resolution=16, num_workers=0)
    assert data.in_memory and data.classes == ["cats", "dogs"] and data.num_classes == 2 and len(data) == 8
    assert data.shape == (3, 16, 16) and data.name.startswith("imagefolder-") and data.name.endswith("-16")
    paths = [str(p) for p in find_images(folder)]
    assert {Path(p).suffix for p in paths} == {".png", ".jpg"}
    # Grey files are spread over three equal channels when channels=3.
    grey = paths.index(str(folder / "cats" / "img_1.jpg"))
    image = data.store.images[grey]
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert ImageFolder(folder, resolution=8, channels=1, num_workers=0).shape == (1, 8, 8)


def test_image_folder_without_class_folders_is_unlabeled(tmp_path):
    for i in range(3):
        save_image(tmp_path / f"{i}.bmp", noise_image(10, 12, 3, seed=i))
    save_image(tmp_path / "only" / "3.webp", noise_image(10, 12, 3, seed=3))
    (tmp_path / ".hidden").mkdir()
    write_corrupt_image(tmp_path / ".hidden" / "x.png")  # hidden folders are ignored
    write_corrupt_image(tmp_path / "._4.png")  # as are macOS resource forks
    data = ImageFolder(tmp_path, resolution=8, num_workers=0)
    assert data.num_classes is None and data.classes is None and len(data) == 4
    with pytest.raises(ValueError, match="unlabeled"):
        data.classifier_data()
    with pytest.raises(ValueError, match="unlabeled"):
        data.sample_labeled(2)


def test_image_folder_center_crop(tmp_path):
    """A 60x20 image of red | green | blue thirds: the centre crop is green; the squeezed square keeps all three."""
    bands = np.zeros((20, 60, 3), dtype=np.uint8)
    bands[:, :20, 0], bands[:, 20:40, 1], bands[:, 40:, 2] = 255, 255, 255
    save_image(tmp_path / "bands.png", bands)
    crop = ImageFolder(tmp_path, resolution=16, num_workers=0).store.images[0].float()
    torch.testing.assert_close(crop[:, :, 4:12].mean(dim=(1, 2)), torch.tensor([0.0, 255.0, 0.0]), atol=1.0, rtol=0)
    squeezed = ImageFolder(tmp_path, resolution=16, center_crop=False, num_workers=0).store.images[0].float()
    torch.testing.assert_close(squeezed[:, :, [1, 8, 14]].mean(dim=1), 255 * torch.eye(3), atol=12.0, rtol=0)


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_corrupt_image_stops_with_its_path(tmp_path, in_memory):
    write_image_folder(tmp_path, per_class=2)
    bad = write_corrupt_image(tmp_path / "dogs" / "broken.png")
    data = None
    with pytest.raises(ConfigError) as err:
        data = ImageFolder(tmp_path, resolution=8, in_memory=in_memory, num_workers=0, batch_size=4)
        data.sample(200)  # the streamed path finds it at its first read; 1 file in 5, so (4/5)^200 never misses it
    message = str(err.value)
    assert str(bad) in message and "dataset.on_corrupt=skip" in message and "\n" not in message
    assert (data is None) == (in_memory == "true")  # in memory: before training starts


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_corrupt_image_skipped_and_counted(tmp_path, in_memory, caplog):
    write_image_folder(tmp_path, per_class=2)
    bad = write_corrupt_image(tmp_path / "dogs" / "broken.jpg")
    with caplog.at_level(logging.WARNING, logger="ganlab"):
        data = ImageFolder(tmp_path, resolution=8, in_memory=in_memory, on_corrupt="skip", num_workers=0, batch_size=4)
        x, y = data.sample_labeled(200)
    assert data.skipped == [str(bad)]
    assert [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()] == [f"skipped 1 unreadable images, e.g. {bad}"]
    assert x.shape == (200, 3, 8, 8) and float(x.min()) >= -1
    # The all-black placeholder of the bad file never comes out.
    assert bool((x.amax(dim=(1, 2, 3)) > -1).all())


def test_folder_of_corrupt_images_only_is_an_error(tmp_path):
    write_corrupt_image(tmp_path / "a.png")
    write_corrupt_image(tmp_path / "b.png")
    with pytest.raises(ConfigError, match="none of the 2 images"):
        ImageFolder(tmp_path, on_corrupt="skip", num_workers=0)
    with pytest.raises(ConfigError, match="none of the 2 images"):
        ImageFolder(tmp_path, on_corrupt="skip", num_workers=0, in_memory=False).sample(10)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ConfigError, match=rf"no images under {tmp_path} \(looked for \*.png, .*\*.gif"):
        ImageFolder(tmp_path)


@pytest.mark.parametrize("overrides, message", [
    ({"channels": 2}, r"^dataset.channels=2 is not allowed: choose 1 or 3$"),
    ({"resolution": 48}, r"^dataset.resolution=48 is not allowed: choose 8, 16, 32, 64, 128 or 256$"),
    ({"on_corrupt": "ignore"}, r"^dataset.on_corrupt=ignore is not allowed: choose stop or skip$"),
    ({"in_memory": "maybe"}, r"^dataset.in_memory=maybe is not allowed: choose auto, true or false$"),
    ({"num_workers": -1}, r"^dataset.num_workers=-1 is not allowed"),
    ({"batch_size": 0}, r"^dataset.batch_size=0 is not allowed"),
])
def test_bad_image_folder_settings_name_the_key(folder, overrides, message):
    with pytest.raises(ConfigError, match=message):
        ImageFolder(folder, **overrides)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=rf"dataset.root={tmp_path / 'nope'} is not a folder"):
        ImageFolder(tmp_path / "nope")


# --- the two storage paths ------------------------------------------------------------


class NoiseImages(torch.utils.data.Dataset):
    """Images held in a tensor, served as LoaderImages items."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i]), "", ""


def population(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images with different brightness per image and channel, each with a 0 and a 255."""
    generator = torch.Generator().manual_seed(0)
    scale = torch.rand(n, 3, 1, 1, generator=generator)
    images = (torch.rand(n, 3, 8, 8, generator=generator) * 255 * scale).round().to(torch.uint8)
    images[:, :, 0, 0], images[:, :, -1, -1] = 0, 255
    return images, torch.arange(n) % 4


def assert_same_statistics(samples: torch.Tensor, images: torch.Tensor) -> None:
    """Per-channel mean and second moment within 5 standard errors of the population's (images are the sampling unit)."""
    pixels = to_unit_range(images)
    n = len(samples)
    for moment in (1, 2):
        per_image = pixels.pow(moment).mean(dim=(2, 3))  # (N, C): what one draw contributes
        expected, spread = per_image.mean(dim=0), per_image.std(dim=0, correction=0)
        got = samples.pow(moment).mean(dim=(0, 2, 3))
        assert ((got - expected).abs() <= 5 * spread / math.sqrt(n)).all(), (moment, got, expected)
    assert float(samples.min()) == float(pixels.min()) and float(samples.max()) == float(pixels.max())


def test_device_and_loader_paths_have_the_same_statistics():
    images, labels = population()
    memory = DeviceImages(images, labels, name="noise-8")
    stream = LoaderImages(NoiseImages(images, labels), shape=(3, 8, 8), num_classes=4, name="noise-8", batch_size=64, num_workers=0)
    n = 4000
    a, b = memory.sample(n), stream.sample(n)
    assert a.shape == b.shape == (n, 3, 8, 8)
    assert float(a.min()) == float(b.min()) == -1.0 and float(a.max()) == float(b.max()) == 1.0
    assert_same_statistics(a, images)
    assert_same_statistics(b, images)


def test_image_folder_paths_have_the_same_statistics(tmp_path):
    for i in range(12):
        save_image(tmp_path / f"{i}.png", noise_image(10 + i, 14, 3, seed=i) // (1 + i % 3) | np.uint8(i % 2))
    memory = ImageFolder(tmp_path, resolution=8, in_memory=True, num_workers=0)
    stream = ImageFolder(tmp_path, resolution=8, in_memory=False, num_workers=0, batch_size=100, seed=1)
    assert torch.equal(memory.store.images, stream.store.decode(range(12))[0])  # the same decoded pixels
    n = 1500
    assert_same_statistics(memory.sample(n), memory.store.images)
    assert_same_statistics(stream.sample(n), memory.store.images)


def test_loader_returns_exactly_n_and_continues_the_stream():
    images, labels = population()
    make = lambda workers: LoaderImages(NoiseImages(images, labels), shape=(3, 8, 8), num_classes=4, name="noise-8",
                                        batch_size=16, num_workers=workers, seed=3)
    whole = make(0).sample_labeled(45)
    pieces = make(0)
    parts = [pieces.sample_labeled(k) for k in (5, 30, 10)]  # split a batch, span batches, use the leftover
    torch.testing.assert_close(tuple(torch.cat(p) for p in zip(*parts)), whole)
    # Worker processes change nothing: the indices are drawn in the main process.
    before = len(multiprocessing.active_children())
    workers = make(2)
    assert workers.loader.persistent_workers and not workers.loader.pin_memory
    torch.testing.assert_close(workers.sample_labeled(45), whole)
    assert len(multiprocessing.active_children()) == before + 2
    workers.close()
    assert len(multiprocessing.active_children()) == before


def test_stream_sampler_started_at_k_continues_a_fresh_sequence():
    fresh = itertools.islice(iter(StreamSampler(10, seed=5)), 2 * StreamSampler.CHUNK + 40)
    sequence = list(fresh)
    for k in (0, 7, StreamSampler.CHUNK, 2 * StreamSampler.CHUNK + 7):  # inside and across the generator's chunks
        sampler = StreamSampler(10, seed=5)
        sampler.start = k
        assert list(itertools.islice(iter(sampler), 33)) == sequence[k:k + 33]
    assert list(itertools.islice(iter(StreamSampler(10, seed=6)), 40)) != sequence[:40]


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_stream_continues_from_its_state_in_a_new_object_and_after_a_rollback(workers):
    images, labels = population()
    make = lambda: LoaderImages(NoiseImages(images, labels), shape=(3, 8, 8), num_classes=4, name="noise-8",
                                batch_size=16, num_workers=workers, seed=3)
    first = make()
    first.sample_labeled(21)  # two batches fetched, 11 images left over; with workers the loader has read further ahead
    state = first.stream_state()
    assert state["fetched"] == 32 and len(state["left_images"]) == len(state["left_labels"]) == 11
    expected = first.sample_labeled(40)
    resumed = make()
    resumed.load_stream_state(state)
    torch.testing.assert_close(resumed.sample_labeled(40), expected)
    first.load_stream_state(state)  # a rollback: the same object goes back
    torch.testing.assert_close(first.sample_labeled(40), expected)
    assert not torch.equal(make().sample_labeled(40)[0], expected[0])  # the control: a fresh stream differs
    first.close()
    resumed.close()


def test_image_files_report_instead_of_raising(tmp_path):
    bad = write_corrupt_image(tmp_path / "x.gif")
    image, label, path, message = ImageFiles([bad], None, 8, 3, True)[0]
    assert image.shape == (3, 8, 8) and label == -1 and path == str(bad) and str(bad) in message


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_storage(data_root, folder):
    device = torch.device("cuda")
    data = MNIST(root=data_root, device=device)
    assert data.images.device.type == "cuda" and data.images.dtype == torch.uint8
    assert data.sample(8).device.type == "cuda"
    stream = ImageFolder(folder, resolution=16, in_memory=False, num_workers=1, batch_size=4, device=device)
    assert stream.store.loader.pin_memory
    x = stream.sample(10)
    assert x.device.type == "cuda" and x.shape == (10, 3, 16, 16)
    cpu = ImageFolder(folder, resolution=16, in_memory=False, num_workers=0, batch_size=4)
    torch.testing.assert_close(x.cpu(), cpu.sample(10))
