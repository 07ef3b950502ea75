"""Torch modules and training plumbing of the super-resolution network.

The training plumbing (:class:`MapNet`, :class:`MapDataset`) imports skorch; it
is loaded on first use, so that predicting with a loaded model needs torch
only.
"""

import importlib

from ._modules import DepthMapLoss, SubPixelCNN, fold_subpixel_head
from ._precision import (
    PRECISIONS,
    autocast,
    int8_inference,
    quantize_features,
    resolve_precision,
)

__all__ = [
    "PRECISIONS",
    "DepthMapLoss",
    "MapDataset",
    "MapNet",
    "SubPixelCNN",
    "autocast",
    "fold_subpixel_head",
    "int8_inference",
    "quantize_features",
    "resolve_precision",
]

_LAZY = {"MapDataset": "._net", "MapNet": "._net"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
