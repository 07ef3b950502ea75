"""Training plumbing: the dataset of frames and target maps, and the skorch net."""

import numpy as np
import torch
from skorch import NeuralNetRegressor

from ._precision import autocast, resolve_precision

__all__ = ["MapDataset", "MapNet", "autocast", "resolve_precision"]


def _dihedral(a, k):
    """Apply the k-th of the 8 flips/rotations (k in 0..7) to the last two axes."""
    if k >= 4:
        a = torch.flip(a, dims=(-1,))
    return torch.rot90(a, k % 4, dims=(-2, -1))


class MapDataset(torch.utils.data.Dataset):
    """Frames and their target maps, with optional random dihedral augmentation.

    Frames and target maps are flipped and rotated together: output pixel
    centres of the ``r``-times finer map fall on the same places under any of
    the 8 symmetries of the square, so the pair stays consistent.

    Parameters
    ----------
    frames : Tensor of shape (n, H, W)
        Normalized frames.
    targets : Tensor of shape (n, r * H, r * W)
        Target maps (any float dtype; returned as float32).
    augment : bool
        Draw one of the 8 symmetries at random for every item.
    seed : int
        Seed of the augmentation draws.
    keep_axes : bool, default=False
        Only the 4 symmetries that keep the x and y axes (flips and the half
        turn): for an astigmatic PSF, whose x and y widths encode z. Targets
        of shape (n, c, r * H, r * W) (a 3D model's map, z and weight) are
        transformed channel by channel.
    """

    def __init__(self, frames, targets, augment=False, seed=0, keep_axes=False):
        self.frames = frames
        self.targets = targets
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        square = frames.shape[-1] == frames.shape[-2]
        self.n_symmetries = 8 if square else 2
        self.keep_axes = keep_axes

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        x = self.frames[i][None]
        y = self.targets[i]
        y = (y if y.ndim == 3 else y[None]).float()
        if self.augment:
            k = int(self.rng.integers(self.n_symmetries))
            if self.n_symmetries == 2:  # non-square frames: a flip keeps the shape
                k = 4 * k
            elif self.keep_axes:  # flips and the half turn only
                k = 2 * (k // 2)
            x, y = _dihedral(x, k), _dihedral(y, k)
        return x.contiguous(), y.contiguous()


class MapNet(NeuralNetRegressor):
    """skorch regressor with channels-last tensors and optional bf16 autocast.

    The network's last layer runs in float32 whatever the autocast setting
    (see :class:`sklearn_smlm.nn.SubPixelCNN`), so the loss and the map keep
    full precision.
    """

    def __init__(self, *args, precision="fp32", **kwargs):
        super().__init__(*args, **kwargs)
        self.precision = precision

    def initialize_module(self):
        super().initialize_module()
        self.module_ = self.module_.to(memory_format=torch.channels_last)
        return self

    def infer(self, x, **fit_params):
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            return self.module_(x, **fit_params)
