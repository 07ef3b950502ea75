"""Test-time dihedral averaging of the network's maps.

The network is run on flipped (and transposed) copies of each frame; each
output is transformed back and the outputs are averaged. The map is ``r``
times finer than the camera and aligned with its pixel grid: map pixel
``(r i + a, r j + b)`` is sub-pixel ``(a, b)`` of camera pixel ``(i, j)``
(``sklearn_smlm._subpixel_maps``), so flipping the frame's rows flips the
map's rows exactly (``r i + a -> r (H - 1 - i) + (r - 1 - a)``), and likewise
for columns and the transpose. On the folded head's channels, held as
``(n, H, W, r, r)``, a row flip flips axes 1 and 3, a column flip axes 2 and
4, and the transpose swaps 1 with 2 and 3 with 4.
"""

import numpy as np

__all__ = [
    "TTA_OPTIONS",
    "average_outputs",
    "dihedral_transforms",
    "transform_frames",
    "untransform",
]

#: ``test_time_augmentation`` values: the transforms they average.
TTA_OPTIONS = ("flips", "dihedral")


def dihedral_transforms(option):
    """Return the ``(transpose, flip_rows, flip_cols)`` triples of ``option``.

    ``"flips"``: identity, row flip, column flip and both (the 180-degree
    rotation); ``"dihedral"``: these and the same after a transpose, the 8
    symmetries of the square (rotations by 90 degrees and reflections). The
    identity comes first.
    """
    flips = [(False, False, False), (False, True, False)]
    flips += [(False, False, True), (False, True, True)]
    if option == "flips":
        return flips
    return flips + [(True, r, c) for _, r, c in flips]


def transform_frames(x, transform):
    """Apply a transform to a torch batch ``(n, c, H, W)``: transpose, then flips."""
    transpose, flip_rows, flip_cols = transform
    if transpose:
        x = x.transpose(2, 3)
    dims = [d for d, f in ((2, flip_rows), (3, flip_cols)) if f]
    return x.flip(dims) if dims else x


def untransform(out, transform, *, channels=None):
    """Undo ``transform`` on a numpy output batch.

    Parameters
    ----------
    out : ndarray
        Maps ``(n, rH, rW)``, or with ``channels=r`` the folded head's
        channels ``(n, H, W, r * r)``.
    transform : tuple of bool
        ``(transpose, flip_rows, flip_cols)`` as applied to the frames.
    channels : int, optional
        ``r`` when ``out`` holds channels.

    Returns
    -------
    ndarray
        The output in the untransformed frame's geometry (a view where
        possible), of the same layout as ``out``.
    """
    transpose, flip_rows, flip_cols = transform
    if channels is None:
        if flip_rows:
            out = out[:, ::-1]
        if flip_cols:
            out = out[:, :, ::-1]
        return out.transpose(0, 2, 1) if transpose else out
    n, h, w, _ = out.shape
    r = channels
    out = out.reshape(n, h, w, r, r)
    if flip_rows:
        out = out[:, ::-1, :, ::-1]
    if flip_cols:
        out = out[:, :, ::-1, :, ::-1]
    if transpose:
        out = out.transpose(0, 2, 1, 4, 3)
        h, w = w, h
    return out.reshape(n, h, w, r * r)


def average_outputs(outputs):
    """Average untransformed outputs in float64, returned as float32.

    The float64 sum of up to 8 float32 values is exact, hence independent of
    their order, when the values lie within a factor of about 2**26 of each
    other (map values near peaks do): a rotated frame gives the rotated
    average.
    """
    total = np.zeros(outputs[0].shape, np.float64)
    for out in outputs:
        total += out
    return (total / len(outputs)).astype(np.float32)
