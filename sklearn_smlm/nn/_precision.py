"""Arithmetic precision of the network: bfloat16 autocast where it is native."""

import contextlib

import torch

__all__ = ["autocast", "resolve_precision"]


def resolve_precision(precision, device):
    """Return ``"bf16"`` or ``"fp32"`` for ``precision`` on ``device``.

    ``"auto"`` picks bfloat16 autocast where the hardware runs it natively
    (CPUs with AVX-512-BF16 or AMX, CUDA GPUs with bf16 support), float32
    elsewhere.
    """
    if precision in ("fp32", "bf16"):
        return precision
    if precision != "auto":
        raise ValueError(
            f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}."
        )
    if str(device).startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    cpu = getattr(torch.backends, "cpu", None)
    capability = cpu.get_cpu_capability() if cpu is not None else ""
    native = "AVX512" in capability.upper() or "AMX" in capability.upper()
    return "bf16" if native and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def autocast(device, precision):
    """Context manager: bfloat16 autocast for ``precision="bf16"``, else nothing."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
