"""Mixed precision in one object: the autocast context, the GradScaler, and their use in a step.

``Precision("bf16", device)`` autocasts forward passes to bfloat16 (CUDA and CPU) and needs no
scaler; ``"fp16"`` autocasts to float16 and scales the losses with a GradScaler so that small
gradients do not underflow; ``"fp32"`` turns both off. The loop and the objectives go through
this object only, so they never branch on the precision themselves.
"""

from __future__ import annotations

import contextlib

import torch

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    def __init__(self, name: str, device: torch.device | str):
        if name not in DTYPES:
            raise ValueError(f"precision must be one of {', '.join(DTYPES)}, got {name!r}")
        self.name = name
        self.device = torch.device(device)
        self.dtype = DTYPES[name]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=name == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context for forward passes; a no-op in fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scale(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` times the loss scale (``value`` itself without a scaler)."""
        return self.scaler.scale(value) if self.scaler.is_enabled() else value

    def loss_scale(self) -> torch.Tensor | None:
        """The current loss scale as a device tensor (no host sync), or None without a scaler."""
        if not self.scaler.is_enabled():
            return None
        return self.scaler.scale(torch.ones((), device=self.device))

    def backward(self, loss: torch.Tensor) -> None:
        self.scale(loss).backward()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients back to their true size (before measuring or clipping them)."""
        if self.scaler.is_enabled():
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Apply the step; with a scaler, a step whose gradients overflowed is skipped."""
        if self.scaler.is_enabled():
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Adjust the loss scale once per iteration, after every optimizer has stepped."""
        if self.scaler.is_enabled():
            self.scaler.update()
