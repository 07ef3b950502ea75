"""Torch modules and training plumbing of the super-resolution network."""

from ._modules import SubPixelCNN, fold_subpixel_head
from ._net import MapDataset, MapNet, autocast, resolve_precision

__all__ = [
    "MapDataset",
    "MapNet",
    "SubPixelCNN",
    "autocast",
    "fold_subpixel_head",
    "resolve_precision",
]
