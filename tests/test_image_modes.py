"""Every kind of image file Pillow opens loads into an image folder with the right values (issue #10, part 2).

Each case writes one small file in its real on-disk format (PNG, JPEG, GIF, TIFF where PNG cannot
hold the mode) with a known mean and checks the per-channel mean of what :class:`ImageFolder`
yields, for ``channels=3`` and ``channels=1``. The rule under test is :func:`to_8bit`'s: integer
modes map the full range of their bit depth to 0..255, ``F`` is read as [0, 1] and refused
outside it, transparency is composited on black (channel * alpha / 255), EXIF orientation is
applied. Files are 8x8 (16x16 for JPEG) and ``resolution`` equals their size, so no resize blurs
the values: the tolerance is rounding (1 level of 255) for lossless files and 3 levels for JPEG.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from ganlab.data.imagefolder import ImageFolder, to_8bit
from ganlab.errors import ConfigError

SIZE = 8
LOSSLESS, JPEG = 1.0, 3.0  # tolerances, in levels of 255
RAMP_MEAN = 0.375 * 255  # a ramp over the lower three quarters of a range: a mean that no wrong depth hits by chance
ORANGE, BLUE = (200, 100, 50), (60, 120, 180)


def ramp(low: float, high: float, dtype) -> np.ndarray:
    """SIZE x SIZE values from ``low`` to ``low + 0.75 * (high - low)``, row by row."""
    return np.linspace(low, low + 0.75 * (high - low), SIZE * SIZE).reshape(SIZE, SIZE).astype(dtype)


def halves(left, right) -> np.ndarray:
    """SIZE x SIZE (x channels) pixels: ``left`` in the left half, ``right`` in the right half."""
    pixels = np.empty((SIZE, SIZE, len(np.atleast_1d(left))), dtype=np.uint8)
    pixels[:, :SIZE // 2], pixels[:, SIZE // 2:] = left, right
    return pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels


def wide_halves(left: int, right: int) -> np.ndarray:
    """16-bit SIZE x SIZE: ``left`` in the left half, ``right`` in the right half."""
    return np.where(np.arange(SIZE) < SIZE // 2, left, right).astype(np.uint16)[None].repeat(SIZE, axis=0)


def write_grey_tiff(path: Path, values: np.ndarray, sample_format: int) -> None:
    """A baseline one-strip grey TIFF of ``values`` (16 or 32 bits), SampleFormat 1 (unsigned) or 2 (signed).

    Written by hand because Pillow writes mode I only as signed 32-bit; these are the depths a
    scientific camera or another library writes, which Pillow opens as mode I.
    """
    h, w = values.shape
    data = values.astype(values.dtype.newbyteorder("<")).tobytes()
    tags = [(256, 3, w), (257, 3, h), (258, 3, 8 * values.dtype.itemsize), (259, 3, 1), (262, 3, 1), (273, 4, None),
            (277, 3, 1), (278, 3, h), (279, 4, len(data)), (339, 3, sample_format)]
    data_offset = 8 + 2 + 12 * len(tags) + 4  # header, entry count, entries, next-IFD offset
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHII", tag, kind, 1, data_offset if value is None else value) for tag, kind, value in tags)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + data)


def palette_image() -> Image.Image:
    """Mode P: index 0 (orange) on the left, index 1 (blue) on the right."""
    img = Image.fromarray(halves(0, 1), "P")
    img.putpalette(list(ORANGE) + list(BLUE) + [0, 0, 0] * 254)
    return img


def save_palette_alpha(path: Path) -> None:
    img = palette_image().convert("PA")
    img.putalpha(51)  # 0.2
    img.save(path)


def composite(rgb, alpha: float) -> tuple[float, ...]:
    return tuple(c * alpha / 255 for c in rgb)


def cmyk_to_rgb(c: int, m: int, y: int, k: int) -> tuple[float, ...]:
    return tuple((255 - v) * (255 - k) / 255 for v in (c, m, y))


def ycbcr_to_rgb(y: float, cb: float, cr: float) -> tuple[float, ...]:
    """JFIF (ITU-R 601, full range)."""
    return (y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128))


def mean(*pairs) -> tuple[float, ...]:
    """The mean colour of equal halves, e.g. mean(ORANGE, BLUE)."""
    return tuple(float(np.mean(c)) for c in zip(*pairs))


# name -> (write the file at this path, expected RGB mean, tolerance)
CASES = {
    "1.png": (lambda p: Image.fromarray(halves(1, 0).astype(bool)).save(p), (127.5,) * 3, LOSSLESS),
    "L.png": (lambda p: Image.fromarray(halves(40, 200), "L").save(p), (120.0,) * 3, LOSSLESS),
    "L_transparent.png": (lambda p: Image.fromarray(halves(77, 200), "L").save(p, transparency=77), (100.0,) * 3, LOSSLESS),
    "LA.png": (lambda p: Image.fromarray(np.full((SIZE, SIZE, 2), (200, 128), np.uint8), "LA").save(p),
               composite((200,) * 3, 128), LOSSLESS),
    "P.png": (lambda p: palette_image().save(p), mean(ORANGE, BLUE), LOSSLESS),
    "P_transparent.png": (lambda p: palette_image().save(p, transparency=0), mean((0, 0, 0), BLUE), LOSSLESS),
    "P_transparent.gif": (lambda p: palette_image().save(p, transparency=0), mean((0, 0, 0), BLUE), LOSSLESS),
    "PA.tif": (save_palette_alpha, mean(composite(ORANGE, 51), composite(BLUE, 51)), LOSSLESS),
    "RGB.png": (lambda p: Image.fromarray(halves(ORANGE, BLUE), "RGB").save(p), mean(ORANGE, BLUE), LOSSLESS),
    "RGB_transparent.png": (lambda p: Image.fromarray(halves((10, 20, 30), ORANGE), "RGB").save(p, transparency=(10, 20, 30)),
                            mean((0, 0, 0), ORANGE), LOSSLESS),
    "RGBA.png": (lambda p: Image.fromarray(np.full((SIZE, SIZE, 4), ORANGE + (51,), np.uint8), "RGBA").save(p),
                 composite(ORANGE, 51), LOSSLESS),
    "CMYK.tif": (lambda p: Image.new("CMYK", (SIZE, SIZE), (100, 0, 0, 64)).save(p), cmyk_to_rgb(100, 0, 0, 64), LOSSLESS),
    "CMYK.jpg": (lambda p: Image.new("CMYK", (2 * SIZE, 2 * SIZE), (100, 0, 0, 64)).save(p, quality=95),
                 cmyk_to_rgb(100, 0, 0, 64), JPEG),
    "YCbCr.tif": (lambda p: Image.new("YCbCr", (SIZE, SIZE), (120, 90, 170)).save(p), ycbcr_to_rgb(120, 90, 170), 1.5),
    "LAB_white.tif": (lambda p: Image.new("LAB", (SIZE, SIZE), (255, 128, 128)).save(p), (255.0,) * 3, 1.5),
    "I16.png": (lambda p: Image.fromarray(ramp(0, 65535, np.uint16)).save(p), (RAMP_MEAN,) * 3, LOSSLESS),
    "I16_transparent.png": (lambda p: Image.fromarray(wide_halves(65535, 32768)).save(p, transparency=65535),
                            mean((0, 0, 0), (32768 * 255 / 65535,) * 3), LOSSLESS),
    "I16.tif": (lambda p: Image.fromarray(ramp(0, 65535, np.uint16)).save(p), (RAMP_MEAN,) * 3, LOSSLESS),
    "I16B.tif": (lambda p: Image.frombytes("I;16B", (SIZE, SIZE), ramp(0, 65535, ">u2").tobytes()).save(p),
                 (RAMP_MEAN,) * 3, LOSSLESS),
    "I32.tif": (lambda p: Image.fromarray(ramp(-2**31, 2**31 - 1, np.int32), "I").save(p), (RAMP_MEAN,) * 3, LOSSLESS),
    "I16_signed.tif": (lambda p: write_grey_tiff(p, ramp(-2**15, 2**15 - 1, np.int16), sample_format=2), (RAMP_MEAN,) * 3, LOSSLESS),
    "I32_unsigned.tif": (lambda p: write_grey_tiff(p, ramp(0, 2**32 - 1, np.uint32), sample_format=1), (RAMP_MEAN,) * 3, LOSSLESS),
    "F.tif": (lambda p: Image.fromarray(ramp(0.0, 1.0, np.float32), "F").save(p), (RAMP_MEAN,) * 3, LOSSLESS),
}


def luma(rgb) -> float:
    """Pillow's RGB -> L (ITU-R 601-2)."""
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


def channel_means(root: Path, channels: int, **kwargs) -> list[float]:
    data = ImageFolder(str(root), resolution=kwargs.pop("resolution", SIZE), channels=channels, num_workers=0,
                       in_memory="true", **kwargs)
    assert len(data) == 1
    return data.store.images[0].float().mean(dim=(1, 2)).tolist()


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("name", list(CASES))
def test_each_kind_of_file_loads_with_its_mean(tmp_path, name, channels):
    write, expected, tolerance = CASES[name]
    write(tmp_path / name)
    resolution = Image.open(tmp_path / name).size[0]
    want = list(expected) if channels == 3 else [luma(expected)]
    assert channel_means(tmp_path, channels, resolution=resolution) == pytest.approx(want, abs=tolerance)


def test_the_issues_16_bit_gradient_loads_level_by_level(tmp_path):
    """The report: a 0..65535 gradient loaded almost white (mean 247 of 255, 87.5% saturated)."""
    levels = np.linspace(0, 65535, 16).round()
    Image.fromarray(np.tile(levels.astype(np.uint16), (16, 1))).save(tmp_path / "gradient.png")
    image = ImageFolder(str(tmp_path), resolution=16, channels=1, num_workers=0).store.images[0, 0]
    expected = torch.from_numpy(np.rint(levels * 255 / 65535).astype(np.uint8)).expand(16, 16)
    torch.testing.assert_close(image, expected, atol=0, rtol=0)


def test_a_16_bit_png_opened_as_I_by_older_pillow_maps_by_16_bits(tmp_path, monkeypatch):
    """Older Pillow opened 16-bit grey PNGs as mode I (32-bit): their range is still 0..65535."""
    Image.fromarray(ramp(0, 65535, np.uint16)).save(tmp_path / "old.png")
    monkeypatch.setitem(PngImagePlugin._MODES, (16, 0), ("I", "I;16B"))  # what Pillow's PNG reader used to say
    assert Image.open(tmp_path / "old.png").mode == "I"
    assert channel_means(tmp_path, 1) == pytest.approx([RAMP_MEAN], abs=LOSSLESS)


# Stored 16x16 grey: top-left quadrant white, top-right mid-grey, bottom black. Where the viewer shows
# the (white, grey) quadrants for each EXIF orientation (TIFF/EXIF 2.3, tag 0x0112).
ORIENTATIONS = {1: ("TL", "TR"), 2: ("TR", "TL"), 3: ("BR", "BL"), 4: ("BL", "BR"),
                5: ("TL", "BL"), 6: ("TR", "BR"), 7: ("BR", "TR"), 8: ("BL", "TL")}
QUADRANTS = {"TL": (0, 0), "TR": (0, 1), "BL": (1, 0), "BR": (1, 1)}


@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
def test_exif_rotated_jpeg_loads_upright(tmp_path, orientation):
    stored = np.zeros((16, 16), np.uint8)
    stored[:8, :8], stored[:8, 8:] = 255, 128
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored, "L").save(tmp_path / "photo.jpg", quality=95, exif=exif.tobytes())
    image = ImageFolder(str(tmp_path), resolution=16, channels=1, num_workers=0).store.images[0, 0].float()
    quadrant_means = image.reshape(2, 8, 2, 8).mean(dim=(1, 3))
    expected = torch.zeros(2, 2)
    white, grey = ORIENTATIONS[orientation]
    expected[QUADRANTS[white]], expected[QUADRANTS[grey]] = 255.0, 128.0
    torch.testing.assert_close(quadrant_means, expected, atol=JPEG, rtol=0)


@pytest.mark.parametrize("values", [ramp(-0.5, 2.0, np.float32), np.full((SIZE, SIZE), np.nan, np.float32)],
                         ids=["outside", "nan"])
@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_float_image_outside_unit_range_is_refused_naming_file_and_mode(tmp_path, values, in_memory):
    bad = tmp_path / "depth.tif"
    Image.fromarray(values, "F").save(bad)
    with pytest.raises(ConfigError) as err:
        ImageFolder(str(tmp_path), resolution=SIZE, num_workers=0, in_memory=in_memory).sample(4)
    message = str(err.value)
    assert str(bad) in message and "mode F" in message and "[0, 1]" in message
    assert "dataset.on_corrupt=skip" in message and "\n" not in message


@pytest.mark.parametrize("write", [
    lambda p: Image.fromarray(ramp(0, 65535 / 0.75, np.int32), "I").save(p),  # Pillow's mode I: signed 32-bit; 0..65535
    lambda p: write_grey_tiff(p, ramp(0, 65535 / 0.75, np.uint32), sample_format=1),
], ids=["signed", "unsigned"])
def test_16_bit_data_in_a_32_bit_image_is_refused_not_flattened(tmp_path, write):
    """Under the full-range rule 0..65535 in a 32-bit image lands on one or two grey levels: say so."""
    bad = tmp_path / "depth.tif"
    write(bad)
    with pytest.raises(ConfigError) as err:
        ImageFolder(str(tmp_path), resolution=SIZE, num_workers=0).sample(4)
    message = str(err.value)
    assert str(bad) in message and "mode I" in message and "32-bit" in message and "[0, 65535]" in message
    assert "16-bit" in message and "\n" not in message


def test_a_constant_32_bit_image_still_loads_by_the_full_range(tmp_path):
    Image.fromarray(np.full((SIZE, SIZE), 2**30, np.int32), "I").save(tmp_path / "flat.tif")
    x = ImageFolder(str(tmp_path), resolution=SIZE, channels=1, num_workers=0).sample(2)
    level = round((2**30 + 2**31) * 255 / (2**32 - 1))  # 191
    torch.testing.assert_close(x, torch.full_like(x, level / 127.5 - 1))


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_refused_image_is_skipped_like_an_unreadable_one(tmp_path, in_memory):
    bad = tmp_path / "depth.tif"
    Image.fromarray(ramp(0.0, 4.0, np.float32), "F").save(bad)
    Image.new("L", (SIZE, SIZE), 200).save(tmp_path / "good.png")
    data = ImageFolder(str(tmp_path), resolution=SIZE, channels=1, num_workers=0, in_memory=in_memory,
                       on_corrupt="skip", batch_size=4)
    x = data.sample(64)
    assert data.skipped == [str(bad)]
    torch.testing.assert_close(x, torch.full_like(x, 200 / 127.5 - 1))  # only the good image comes out


@pytest.mark.parametrize("img, expected", [
    (Image.frombytes("I;16L", (SIZE, SIZE), ramp(0, 65535, "<u2").tobytes()), RAMP_MEAN),
    (Image.frombytes("I;16N", (SIZE, SIZE), ramp(0, 65535, "=u2").tobytes()), RAMP_MEAN),
    (Image.new("La", (SIZE, SIZE), (100, 128)), 100.0),  # premultiplied: on black it is the stored value
    (Image.new("RGBa", (SIZE, SIZE), (100, 50, 25, 128)), luma((100, 50, 25))),
    (Image.new("HSV", (SIZE, SIZE), (0, 255, 200)), luma((200, 0, 0))),  # hue 0 = red
], ids=["I;16L", "I;16N", "La", "RGBa", "HSV"])
def test_modes_no_file_opens_in_convert_by_the_same_rule(img, expected):
    """Pillow exposes these modes but no file opens in them here; the one conversion function still covers them."""
    assert float(np.asarray(to_8bit(img, channels=1)).mean()) == pytest.approx(expected, abs=LOSSLESS)
