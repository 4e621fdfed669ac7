"""The textbook claims, measured (``ganlab claims``): one module per claim, in the order of
:data:`CLAIM_MODULES`; :mod:`ganlab.claims.base` says what a claim module defines and
:mod:`ganlab.claims.runner` runs them."""

from __future__ import annotations

import importlib
from types import ModuleType

CLAIM_MODULES = (
    "saturating_loss",  # 1
    "js_saturation",  # 2
    "progress_curve",  # 3
    "weight_clipping",  # 4
    "gradient_penalty",  # 5
    "spectral_norm",  # 6
    "mode_collapse",  # 7
    "d_converges_g_diverges",  # 8
    "numpy_ml_recipe",  # 9
    "tuning_spread",  # 10
)


def claim_modules() -> list[ModuleType]:
    """Every claim module, in claim order (each has NUMBER 1, 2, ...)."""
    return [importlib.import_module(f"ganlab.claims.{name}") for name in CLAIM_MODULES]
