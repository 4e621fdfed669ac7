"""Mixed precision in one object: the autocast context, the GradScaler, and their use in a step.

``Precision("bf16", device)`` autocasts forward passes to bfloat16 (CUDA and CPU) and needs no
scaler; ``"fp16"`` autocasts to float16 and scales the losses with a GradScaler so that small
gradients do not underflow; ``"fp32"`` turns both off. ``"auto"`` is resolved to one of those
first, by :func:`resolve_precision`: bf16 on GPUs that support it and for convolutional networks
on CPUs with native bfloat16, fp32 otherwise. The loop and the objectives go through this object
only, so they never branch on the precision themselves.

Parameters and optimizer states always stay float32: autocast casts copies for the forward pass,
so weight clipping and the optimizer act on the fp32 master weights.

With a scaler, a step whose scaled gradients overflowed is skipped by the scaler, never applied,
and :attr:`Precision.skipped_steps` counts it on the device: the scaler halves its scale after
such a step, so comparing the scale before and after ``update`` needs no host sync.
"""

from __future__ import annotations

import contextlib

import torch

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_cpu_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), so oneDNN runs bf16 convolutions fast."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def resolve_precision(name: str, device: torch.device | str, convolutional: bool = False) -> str:
    """``auto`` -> the fast precision for this device and network; other names are returned unchanged.

    * CUDA: bf16 where the GPU supports it (Ampere and newer), else fp32.
    * CPU: bf16 for convolutional networks when the CPU has native bfloat16 (measured 1.3-1.5x on
      DCGAN-32 with AVX512-BF16, ``scripts/bench_train.py``); fp32 otherwise, and always for MLPs,
      whose small matmuls ran slower in bf16 (the casts cost more than they save).
    """
    if name != "auto":
        return name
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if convolutional and native_cpu_bf16() else "fp32"


class Precision:
    def __init__(self, name: str, device: torch.device | str, init_scale: float = 2.0**16):
        if name not in DTYPES:
            raise ValueError(f"precision must be one of {', '.join(DTYPES)} (resolve auto first), got {name!r}")
        self.name = name
        self.device = torch.device(device)
        self.dtype = DTYPES[name]
        self.scaler = torch.amp.GradScaler(self.device.type, init_scale=init_scale, enabled=name == "fp16")
        self.skipped_steps = torch.zeros((), dtype=torch.int64, device=self.device)  # overflowed, not applied
        self._one = torch.ones((), device=self.device)  # scaled to read the loss scale on the device

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
        return self.scaler.scale(self._one)

    def backward(self, loss: torch.Tensor) -> None:
        self.scale(loss).backward()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients back to their true size (before measuring or clipping them)."""
        if self.scaler.is_enabled():
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Apply the step and adjust the loss scale; an overflowed step is skipped and counted.

        A fused optimizer (``fused=True``) receives the overflow flag as a device tensor and skips
        inside its kernel, so the whole step runs without a host sync; a non-fused one makes the
        scaler read the flag on the host once per step.
        """
        if not self.scaler.is_enabled():
            optimizer.step()
            return
        before = self.loss_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        self.skipped_steps += self.loss_scale() < before  # update() halves the scale after an overflow
