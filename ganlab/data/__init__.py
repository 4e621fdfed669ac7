"""Datasets: the 2-D toy distributions (:mod:`ganlab.data.toy`) and the image sets (:mod:`ganlab.data.images`).

Every dataset yields float32 batches of its ``shape``, and the shape says which values they take
(:func:`value_range`): images, (C, H, W), lie in [-1, 1]; points, (d,), are unbounded. The model
builders read that range to give the generator an output that can reach all of the data and
nothing outside it (``ganlab.apps.build.build_networks``).
"""

from __future__ import annotations

IMAGE_RANGE = (-1.0, 1.0)  # uint8 pixels p -> p / 127.5 - 1 (ganlab.data.images.to_unit_range)


def value_range(data_shape: tuple[int, ...]) -> tuple[float, float] | None:
    """The (low, high) bounds of every value of data of ``data_shape``: [-1, 1] for images (C, H, W), None (unbounded) for points."""
    return IMAGE_RANGE if len(data_shape) == 3 else None
