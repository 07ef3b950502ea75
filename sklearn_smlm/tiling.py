"""Localize frames larger than memory allows in overlapping tiles, seam-free.

The network is fully convolutional, so a large frame can also be passed to
``predict`` whole; tiles bound the memory of the maps (``upscaling**2`` times
the frame) and of the network's activations (``n_channels`` times the frame).

How the seams stay exact
------------------------
Each frame is normalized whole (the normalizer's background and scale are
per-frame statistics, which must not change from tile to tile), then cut into
tiles of ``tile_size`` pixels. The tiles partition the frame into disjoint
*cores*; each tile reaches at least ``overlap`` pixels beyond its core on every
side that is not the frame's edge. A map pixel depends only on the input
within the network's receptive radius (:func:`receptive_radius`: one pixel per
3x3 convolution, 10 for the paper's 9 layers and folded head), so when
``overlap`` covers that radius plus the peak finder's neighbourhood, a tile's
map equals the whole frame's map over its core and the peaks found there are
the whole frame's peaks. A peak is kept by the one tile whose core holds its
map pixel, so an emitter on a seam is found exactly once. As a guard against
float rounding that could differ between tiles, peaks that two neighbouring
tiles report within ``min_distance`` map pixels of each other (which one map
never does) are merged, keeping the higher one.
"""

import math

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ._chunks import iter_chunks
from ._localizations import concat_localizations, empty_localizations
from ._memory import trim_heap
from ._validation import check_frames, check_int, check_real
from .peaks import find_peaks

__all__ = ["predict_tiled", "receptive_radius", "min_overlap", "tile_layout"]


def receptive_radius(module):
    """Receptive radius of a network, in camera pixels, on each side.

    Every convolution of kernel ``k`` and dilation ``d`` at ``f`` map pixels
    per camera pixel widens the radius by ``ceil(d * (k // 2) / f)`` camera
    pixels (a pixel shuffle of factor ``s`` multiplies ``f`` by ``s``). The
    bound is tight for the layers at camera resolution and conservative after
    an upscaling.

    Parameters
    ----------
    module : torch.nn.Module
        The network, e.g. ``localizer.net_.module_``; its convolutions and
        pixel shuffles are taken in registration order, which is the order of
        the forward pass for :class:`~sklearn_smlm.nn.SubPixelCNN`.

    Returns
    -------
    radius : int

    Examples
    --------
    >>> from sklearn_smlm.nn import SubPixelCNN
    >>> receptive_radius(SubPixelCNN(n_layers=9, upsampling="folded"))
    10
    >>> receptive_radius(SubPixelCNN(n_layers=9, upsampling="multistage"))
    11
    """
    from torch import nn

    radius, scale = 0, 1
    for layer in module.modules():
        if isinstance(layer, nn.PixelShuffle):
            scale *= layer.upscale_factor
        elif isinstance(layer, nn.modules.conv._ConvNd):
            k = layer.kernel_size[0]
            d = layer.dilation[0]
            radius += math.ceil(d * (k // 2) / scale)
    return radius


def min_overlap(localizer):
    """Smallest ``overlap`` for which tiling reproduces whole-frame prediction.

    The receptive radius of the network plus the map pixels the peak finder
    looks at beyond a core (``min_distance`` for the local maximum, then the
    larger of ``min_distance`` and 1 for the 3x3 refinement), in camera pixels.

    Parameters
    ----------
    localizer : DistanceTransformLocalizer
        A fitted localizer.

    Returns
    -------
    overlap : int
    """
    check_is_fitted(localizer, "regressor_")
    md = int(localizer.min_distance)
    peak_margin = math.ceil((md + max(md, 1)) / localizer.upscaling)
    return receptive_radius(localizer.regressor_.module_) + peak_margin


def tile_layout(size, tile_size, overlap):
    """Tile starts and core bounds along one axis.

    Parameters
    ----------
    size : int
        Frame size along the axis.
    tile_size : int
        Tile size along the axis (a frame smaller than it is one tile).
    overlap : int
        Pixels of context every core keeps on each side inside its tile.

    Returns
    -------
    starts : ndarray of int
        First pixel of each tile; every tile spans ``min(tile_size, size)``.
    bounds : ndarray of int
        ``bounds[i]:bounds[i + 1]`` is the core of tile ``i``; the cores
        partition ``range(size)``.

    Examples
    --------
    >>> starts, bounds = tile_layout(100, 40, 8)
    >>> starts.tolist(), bounds.tolist()
    ([0, 20, 40, 60], [0, 30, 50, 70, 100])
    """
    if size <= tile_size:
        return np.array([0]), np.array([0, size])
    step = tile_size - 2 * overlap
    n_tiles = 1 + math.ceil((size - tile_size) / step)
    starts = np.round(np.linspace(0, size - tile_size, n_tiles)).astype(np.int64)
    # The seam between tiles i and i + 1 lies in the middle of the stretch
    # both see with full context: [starts[i + 1] + overlap, starts[i] + tile -
    # overlap], which is not empty because starts are at most `step` apart.
    seams = (starts[:-1] + starts[1:] + tile_size) // 2
    return starts, np.concatenate([[0], seams, [size]]).astype(np.int64)


def predict_tiled(
    localizer, frames, *, tile_size=256, overlap=16, chunk_size=4, batch_size=None
):
    """Localize frames in overlapping tiles; same result as whole frames.

    Parameters
    ----------
    localizer : DistanceTransformLocalizer
        A fitted localizer; its ``threshold``, ``min_distance``,
        ``upscaling`` and ``pixel_size_nm`` are used.
    frames : array-like of shape (n_frames, H, W) or (H, W), or TiffStack
        Camera frames, of any size (a frame not larger than ``tile_size`` is
        one tile). A :class:`~sklearn_smlm.io.TiffStack` or memory map is read
        ``chunk_size`` frames at a time.
    tile_size : int, default=256
        Height and width of the tiles, in camera pixels.
    overlap : int, default=16
        Pixels of context each tile keeps around its core on every side; at
        least :func:`min_overlap` (11 for the paper's 9-layer network),
        otherwise a ``ValueError`` says so. Adjacent tiles share at least
        ``2 * overlap`` pixels.
    chunk_size : int, default=4
        Frames normalized at a time; tiles and maps are held one batch at a
        time.
    batch_size : int, optional
        Tiles per forward pass; default as ``localizer.predict`` chooses it for
        frames of the tile's size (a batch of maps near 32 MB).

    Returns
    -------
    localizations : pandas.DataFrame
        Columns ``frame``, ``x_nm``, ``y_nm``, ``score`` in the frame's
        coordinates, ordered by frame then map pixel in raster order, as
        ``localizer.predict(frames)`` returns them.

    Examples
    --------
    >>> from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
    >>> from sklearn_smlm.tiling import predict_tiled
    >>> X, y = PAFPSimulator(frame_shape=(16, 16), random_state=0).simulate(8)
    >>> loc = DistanceTransformLocalizer(n_layers=2, n_channels=8, max_epochs=1,
    ...                                  validation_fraction=0, precision="fp32",
    ...                                  threshold=1.0, random_state=0).fit(X, y)
    >>> big, _ = PAFPSimulator(frame_shape=(40, 40), random_state=1).simulate(2)
    >>> tiled = predict_tiled(loc, big, tile_size=24, overlap=4)
    >>> whole = loc.predict(big)
    >>> len(tiled) == len(whole)
    True
    """
    check_is_fitted(localizer, "regressor_")
    check_real(localizer.threshold, "threshold")
    if getattr(localizer, "z_range_nm", None) is not None:
        raise ValueError(
            "predict_tiled reads the 2D maps only: localize with a 3D model "
            "(z_range_nm set) through predict or iter_predict."
        )
    tile_size = check_int(tile_size, "tile_size", low=1)
    overlap = check_int(overlap, "overlap", low=0)
    chunk_size = check_int(chunk_size, "chunk_size", low=1)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", low=1)
    needed = min_overlap(localizer)
    if overlap < needed:
        raise ValueError(
            f"overlap={overlap} is smaller than this network needs ({needed} camera "
            "pixels: its receptive radius plus the peak finder's neighbourhood); "
            "tiles would change the result near their seams."
        )
    if tile_size <= 2 * overlap:
        raise ValueError(
            f"tile_size={tile_size} must be larger than 2 * overlap = {2 * overlap}."
        )
    chunks, (height, width) = _frame_chunks(frames, chunk_size)
    row_starts, row_bounds = tile_layout(height, tile_size, overlap)
    col_starts, col_bounds = tile_layout(width, tile_size, overlap)
    layout = (row_starts, row_bounds, col_starts, col_bounds)
    tile_h, tile_w = min(tile_size, height), min(tile_size, width)
    batch_size = batch_size or localizer.prediction_batch_size((tile_h, tile_w))
    tables = []
    for start, chunk in chunks:
        tables.append(
            _predict_chunk(localizer, chunk, start, layout, tile_h, tile_w, batch_size)
        )
        trim_heap()  # as iter_predict: the kept tables would grow the heap
    return concat_localizations(tables, ["frame", "x_nm", "y_nm", "score"])


def _frame_chunks(frames, chunk_size):
    """``(start, checked float32 chunk)`` pairs and the frame shape.

    A :class:`~sklearn_smlm.io.TiffStack`, a memory map or any array with a
    3-D ``shape`` is read chunk by chunk; anything else is checked whole.
    """
    lazy = len(getattr(frames, "shape", ())) == 3 and hasattr(frames, "__getitem__")
    if not (hasattr(frames, "iter_chunks") or lazy):
        frames = check_frames(frames, name="frames")
    shape = tuple(frames.shape)
    if shape[0] == 0 or 0 in shape[1:]:
        check_frames(np.empty(shape), name="frames")  # raises the usual error
    return iter_chunks(frames, chunk_size), tuple(int(n) for n in shape[1:])


def _predict_chunk(localizer, frames, frame_offset, layout, tile_h, tile_w, batch):
    row_starts, row_bounds, col_starts, col_bounds = layout
    r = localizer.upscaling
    md = int(localizer.min_distance)
    normalized = localizer.normalizer_.transform(frames)
    grid = np.array(
        [(i, j) for i in range(len(row_starts)) for j in range(len(col_starts))],
        dtype=np.int64,
    )
    n_tiles = len(normalized) * len(grid)
    found = []
    # Tiles are cut batch by batch, so memory holds one batch of tiles and maps.
    for first in range(0, n_tiles, batch):
        frame, tile = np.divmod(
            np.arange(first, min(first + batch, n_tiles)), len(grid)
        )
        ti, tj = grid[tile].T
        tiles = np.stack(
            [
                normalized[f, rs : rs + tile_h, cs : cs + tile_w]
                for f, rs, cs in zip(frame, row_starts[ti], col_starts[tj], strict=True)
            ]
        )
        maps = localizer.predict_maps(tiles, batch_size=len(tiles), normalized=True)
        # integer peak pixels decide which tile keeps a peak; the refined
        # positions come from the same detections in the same order
        index, row, col, _ = find_peaks(
            maps, localizer.threshold, min_distance=md, refine=None
        )
        _, fine_row, fine_col, value = find_peaks(
            maps, localizer.threshold, min_distance=md
        )
        pti, ptj = ti[index], tj[index]
        row0, col0 = row_starts[pti] * r, col_starts[ptj] * r
        row_i, col_i = row.astype(np.int64) + row0, col.astype(np.int64) + col0
        # Keep the peaks of the core grown by min_distance map pixels: a peak
        # that the neighbouring tile misses (rounding at a tie) is not lost;
        # the copies both tiles see are merged below.
        keep = (row_i >= row_bounds[pti] * r - md) & (
            row_i < row_bounds[pti + 1] * r + md
        )
        keep &= (col_i >= col_bounds[ptj] * r - md) & (
            col_i < col_bounds[ptj + 1] * r + md
        )
        found.append(
            (
                frame[index][keep],
                tile[index][keep],
                row_i[keep],
                col_i[keep],
                (fine_row - row)[keep],
                (fine_col - col)[keep],
                value[keep],
            )
        )
    frame, tile, row, col, dy, dx, value = (
        np.concatenate(a) for a in zip(*found, strict=True)
    )
    if not len(frame):
        empty = empty_localizations(["frame", "x_nm", "y_nm", "score"])
        return localizer.refine(frames, empty)
    keep = _merge_seam_duplicates(frame, tile, row, col, value, md)
    order = np.flatnonzero(keep)[np.lexsort((col[keep], row[keep], frame[keep]))]
    nm_per_map_pixel = localizer.pixel_size_nm / r
    table = pd.DataFrame(
        {
            "frame": frame[order],
            "x_nm": (col[order] + dx[order] + 0.5) * nm_per_map_pixel,
            "y_nm": (row[order] + dy[order] + 0.5) * nm_per_map_pixel,
            "score": value[order],
        }
    )
    table = localizer.refine(frames, table)
    table["frame"] += np.int64(frame_offset)
    return table


def _merge_seam_duplicates(frame, tile, row, col, value, min_distance):
    """Keep one of two peaks of different tiles within ``min_distance``.

    One map never has two peaks within ``min_distance`` (Chebyshev) of each
    other, so such a pair is one emitter seen by two tiles: the same pixel when
    both maps agree, neighbouring pixels when rounding differed at a tie.
    """
    from scipy.spatial import cKDTree

    keep = np.ones(len(frame), dtype=bool)
    # frames far apart in a third coordinate so that no pair crosses frames
    span = float(max(row.max(), col.max()) + 2 * min_distance + 2)
    points = np.column_stack([frame * span, row, col]).astype(np.float64)
    pairs = cKDTree(points).query_pairs(
        min_distance + 0.5, p=np.inf, output_type="ndarray"
    )
    for a, b in pairs[np.argsort(pairs[:, 0], kind="stable")] if len(pairs) else ():
        if tile[a] == tile[b] or not (keep[a] and keep[b]):
            continue
        # the higher peak wins; on a tie the first in raster order, as in find_peaks
        a_first = (row[a], col[a]) < (row[b], col[b])
        a_wins = value[a] > value[b] or (value[a] == value[b] and a_first)
        keep[b if a_wins else a] = False
    return keep
