"""The eight flips and 90-degree rotations, applied to frames and positions together."""

import numpy as np
import pandas as pd

from .._localizations import _as_position_array
from .._validation import check_int

__all__ = ["augment_dihedral", "dihedral_positions", "SHAPE_PRESERVING"]

#: Transforms that keep a non-square frame's shape (identity, 180-degree
#: rotation, left-right flip, up-down flip).
SHAPE_PRESERVING = (0, 2, 4, 6)


def _transform_frames(X, k):
    """Apply transform ``k`` to frames of shape (..., H, W)."""
    if k >= 4:
        X = X[..., ::-1]
    return np.rot90(X, k % 4, axes=(-2, -1))


def dihedral_positions(xy, k, shape, pixel_size_nm):
    """Map ``(x_nm, y_nm)`` positions through dihedral transform ``k``.

    Transform ``k`` (0 to 7) is a left-right flip when ``k >= 4``, followed by
    ``k % 4`` counter-clockwise quarter turns as :func:`numpy.rot90` does on
    the ``(row, col)`` axes. With ``u = x_nm / px`` and ``v = y_nm / px`` in a
    frame of ``H`` rows and ``W`` columns (pixel ``(r, c)`` covers
    ``[c, c + 1) x [r, r + 1)``), the flip maps ``u -> W - u`` and a quarter
    turn maps ``(u, v) -> (v, W - u)`` and the shape to ``(W, H)``.

    Parameters
    ----------
    xy : ndarray of shape (k, 2) or (k, 3)
        Positions; a third column (z) is left unchanged.
    k : int
    shape : tuple of int
        ``(H, W)`` of the frame before the transform.
    pixel_size_nm : float

    Returns
    -------
    positions : ndarray, same shape as ``xy``

    Examples
    --------
    >>> import numpy as np
    >>> dihedral_positions(np.array([[50.0, 150.0]]), 1, (2, 3), 100.0).tolist()
    [[150.0, 250.0]]
    """
    out = np.array(xy, dtype=np.float64, copy=True)
    h, w = shape
    u = out[:, 0] / pixel_size_nm
    v = out[:, 1] / pixel_size_nm
    if k >= 4:
        u = w - u
    for _ in range(k % 4):
        u, v = v, w - u
        h, w = w, h
    out[:, 0] = u * pixel_size_nm
    out[:, 1] = v * pixel_size_nm
    return out


def _check_k(k, square):
    try:
        check_int(k, "k", low=0, high=7)
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"k must be None, 'all' or an integer 0..7, got {k!r}."
        ) from None
    if not square and k % 2 == 1:
        raise ValueError(
            f"transform k={k} is a quarter turn and would swap the frame's height "
            "and width; for a stack of non-square frames use k in (0, 2, 4, 6)."
        )
    return int(k)


def augment_dihedral(X, y, *, pixel_size_nm, k=None, random_state=None):
    """Flip and rotate frames and move their emitter positions with them.

    Parameters
    ----------
    X : ndarray of shape (n_frames, H, W)
        Frames.
    y : list of ndarray of shape (k_i, 2) or (k_i, 3), or pandas.DataFrame
        Positions in nm per frame (a localization table is transformed in its
        ``x_nm`` and ``y_nm`` columns, keeping the other columns).
    pixel_size_nm : float
        Camera pixel size.
    k : None, int or "all", default=None
        Transform (see :func:`dihedral_positions`): an integer 0..7 applies the
        same transform to every frame; None draws one per frame from
        ``random_state`` (all eight for square frames, the four
        shape-preserving ones, :data:`SHAPE_PRESERVING`, otherwise); "all"
        returns the eight variants stacked, ``8 * n_frames`` frames in the
        order ``k = 0, ..., 7`` (square frames only: the paper's 8-fold
        augmentation).
    random_state : int, numpy.random.Generator or None, default=None
        Used when ``k`` is None.

    Returns
    -------
    X_out : ndarray
        Transformed frames; shape ``(n, W, H)`` when a quarter turn is applied
        to all frames, ``(8 n, H, W)`` for "all".
    y_out : list of ndarray or pandas.DataFrame
        Positions in the same form as ``y`` (for "all", table frame numbers are
        ``k * n_frames + frame``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.zeros((1, 3, 3)); X[0, 0, 2] = 1.0  # spot at row 0, col 2
    >>> y = [np.array([[250.0, 50.0]])]
    >>> Xt, yt = augment_dihedral(X, y, pixel_size_nm=100.0, k=1)
    >>> np.argwhere(Xt[0]).tolist(), yt[0].tolist()
    ([[0, 0]], [[50.0, 50.0]])
    """
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"X must have shape (n_frames, H, W), got {X.shape}.")
    n, h, w = X.shape
    square = h == w
    is_table = isinstance(y, pd.DataFrame)
    if is_table:
        frame = y["frame"].to_numpy()
        positions = None
    else:
        positions = [_as_position_array(p, i, name="y") for i, p in enumerate(y)]
        if len(positions) != n:
            raise ValueError(f"y has {len(positions)} frame(s) but X has {n}.")

    if isinstance(k, str):
        if k != "all":
            raise ValueError(f"k must be None, 'all' or an integer 0..7, got {k!r}.")
        if not square:
            raise ValueError("k='all' needs square frames (quarter turns swap H, W).")
        parts = [
            augment_dihedral(X, y, pixel_size_nm=pixel_size_nm, k=j) for j in range(8)
        ]
        X_out = np.concatenate([p[0] for p in parts])
        if is_table:
            tables = []
            for j, (_, t) in enumerate(parts):
                t = t.copy()
                t["frame"] = t["frame"] + j * n
                tables.append(t)
            return X_out, pd.concat(tables, ignore_index=True)
        return X_out, [a for p in parts for a in p[1]]

    if k is None:
        rng = (
            np.random.default_rng(random_state)
            if not isinstance(random_state, np.random.RandomState)
            else np.random.default_rng(random_state.randint(2**31))
        )
        choices = np.arange(8) if square else np.array(SHAPE_PRESERVING)
        ks = choices[rng.integers(0, len(choices), n)]
    else:
        ks = np.full(n, _check_k(k, square))

    if k is not None:
        X_out = np.ascontiguousarray(_transform_frames(X, int(ks[0]) if n else 0))
    else:
        X_out = np.empty_like(X)
        for j in np.unique(ks):
            sel = ks == j
            X_out[sel] = _transform_frames(X[sel], int(j))

    if is_table:
        out = y.copy()
        xy = out[["x_nm", "y_nm"]].to_numpy(dtype=np.float64, copy=True)
        fk = ks[frame] if len(frame) else np.empty(0, dtype=int)
        for j in np.unique(fk):
            sel = fk == j
            xy[sel] = dihedral_positions(xy[sel], int(j), (h, w), pixel_size_nm)
        out["x_nm"], out["y_nm"] = xy[:, 0], xy[:, 1]
        return X_out, out
    y_out = [
        dihedral_positions(p, int(j), (h, w), pixel_size_nm)
        for p, j in zip(positions, ks, strict=True)
    ]
    return X_out, y_out
