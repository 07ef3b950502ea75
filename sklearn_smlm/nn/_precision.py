"""Arithmetic precision of the network: bfloat16 autocast where it is native.

Prediction also offers two faster settings that change the maps, so they are
opt-in: ``"bf16-map"`` (the folded head, the map's layer, in bfloat16 too) and
``"int8"`` (the feature layers quantized to int8 with oneDNN; the head in
float32). Their effect on the Jaccard index is measured in
``benchmarks/results/precision.md``.
"""

import contextlib

import torch

__all__ = [
    "PRECISIONS",
    "autocast",
    "int8_inference",
    "quantize_features",
    "resolve_precision",
]

PRECISIONS = ("auto", "fp32", "bf16", "bf16-map", "int8")


def resolve_precision(precision, device):
    """Return the precision ``precision`` runs at on ``device``.

    ``"auto"`` picks bfloat16 autocast where the hardware runs it natively
    (CPUs with AVX-512-BF16 or AMX, CUDA GPUs with bf16 support), float32
    elsewhere. The explicit settings (``"fp32"``, ``"bf16"``, ``"bf16-map"``,
    ``"int8"``) are returned as they are.
    """
    if precision in PRECISIONS[1:]:
        return precision
    if precision != "auto":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if str(device).startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    cpu = getattr(torch.backends, "cpu", None)
    capability = cpu.get_cpu_capability() if cpu is not None else ""
    native = "AVX512" in capability.upper() or "AMX" in capability.upper()
    return "bf16" if native and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def autocast(device, precision):
    """Context manager: bfloat16 autocast for ``"bf16"`` and ``"bf16-map"``.

    Nothing for the others (``"int8"`` quantizes the feature layers instead,
    see :func:`quantize_features`).
    """
    if precision not in ("bf16", "bf16-map"):
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


@contextlib.contextmanager
def _quantized_engine(engine="onednn"):
    """Run quantized ops on ``engine`` inside the block, then restore it."""
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def quantized_engine_available():
    """Whether this torch build runs int8 convolutions with oneDNN."""
    return "onednn" in torch.backends.quantized.supported_engines


def quantize_features(features, calibration):
    """Return an int8 copy of a network's feature layers (post-training).

    Static quantization with torch's FX graph mode and the oneDNN engine
    (per-channel int8 weights, uint8 activations whose ranges are observed
    on ``calibration``). Input and output stay float32; the result must be
    called inside :func:`int8_inference`.

    Parameters
    ----------
    features : torch.nn.Module
        The feature layers (``SubPixelCNN.features``), on the CPU.
    calibration : torch.Tensor of shape (n, 1, H, W)
        Normalized frames whose activations set the quantization ranges.

    Returns
    -------
    module : torch.nn.Module
    """
    import copy
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping, quantize_fx

    if not quantized_engine_available():
        raise ValueError(
            "precision='int8' needs a torch build with the oneDNN quantized "
            "engine; use precision='bf16' or 'fp32'."
        )
    module = copy.deepcopy(features).float().eval()
    x = calibration.float().contiguous(memory_format=torch.channels_last)
    with _quantized_engine(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        qconfig = get_default_qconfig_mapping("onednn")
        prepared = quantize_fx.prepare_fx(module, qconfig, (x[:1],))
        with torch.inference_mode():
            for start in range(0, len(x), 4):
                prepared(x[start : start + 4])
        return quantize_fx.convert_fx(prepared)


def int8_inference():
    """Context manager of :func:`quantize_features`' modules (oneDNN engine)."""
    return _quantized_engine()
