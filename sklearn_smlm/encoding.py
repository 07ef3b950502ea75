"""Distance-transform target maps: emitter positions to super-resolved maps."""

import numbers

import numpy as np
from scipy.ndimage import distance_transform_edt, maximum_filter1d
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._localizations import check_positions
from ._validation import check_positive

__all__ = ["distance_transform_maps", "DistanceTransform"]

# Half-width, in output pixels, of the band around the cell boundaries of the
# grid distance transform where the nearest emitter is re-checked exactly.
_BAND_PX = 2


def distance_transform_maps(
    positions,
    frame_shape,
    *,
    pixel_size_nm=100.0,
    upscaling=7,
    alpha=7.0,
    d_max=35.0,
    dtype=np.float32,
):
    """Make the distance-transform target map of each frame.

    Every output pixel gets ``f(d) = exp(alpha * (1 - d / d_max)) - 1`` for
    ``d < d_max`` and 0 beyond, where ``d`` is the Euclidean distance, in output
    pixels, from the pixel centre to the nearest emitter's exact (continuous)
    position. Each emitter thus makes a cone-like peak of height
    ``exp(alpha) - 1``. Output pixel ``(i, j)`` has its centre at camera column
    ``(j + 0.5) / r - 0.5`` and row ``(i + 0.5) / r - 0.5``, i.e. at
    ``x_nm = (j + 0.5) * pixel_size_nm / r``, ``y_nm = (i + 0.5) * pixel_size_nm
    / r``.

    The nearest emitter of each pixel is found with a grid Euclidean distance
    transform (emitters marked at their nearest output pixel) and re-checked
    among the grid neighbours' nearest emitters on the Voronoi boundaries; the
    distance to it is then computed exactly. Emitters sharing an output pixel
    are added exactly. The result matches a brute-force computation except for
    rare pixels far from any peak, where a farther emitter can be picked (a
    difference below 1e-4 of the peak height in the tests).

    Parameters
    ----------
    positions : sequence of array-like of shape (k_i, 2) or pandas.DataFrame
        Per frame, the ``(x_nm, y_nm)`` positions of the emitters (extra
        columns such as ``z_nm`` are ignored), or a localization table.
        Emitters outside the frame are allowed: they shape the pixels within
        ``d_max`` of them.
    frame_shape : tuple of int (height, width)
        Camera frame size in pixels.
    pixel_size_nm : float, default=100.0
        Camera pixel size in nanometres.
    upscaling : int, default=7
        Output pixels per camera pixel along each axis (``r``).
    alpha : float, default=7.0
        Sharpness: the peak height is ``exp(alpha) - 1``.
    d_max : float, default=35.0
        Radius of each peak, in *output* pixels (35 output pixels are 500 nm
        for 100 nm camera pixels at ``r = 7``).
    dtype : numpy dtype, default=numpy.float32
        Dtype of the maps.

    Returns
    -------
    maps : ndarray of shape (n_frames, height * upscaling, width * upscaling)
        The target maps; an emitter peaks at ``exp(alpha) - 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.encoding import distance_transform_maps
    >>> maps = distance_transform_maps([np.array([[150.0, 250.0]])], (4, 4))
    >>> maps.shape
    (1, 28, 28)
    >>> float(maps[0, 17, 10]), float(maps.max())  # camera pixel (2, 1) centre
    (1095.63..., 1095.63...)
    """
    positions = check_positions(positions, name="positions")
    height, width = _check_frame_shape(frame_shape)
    check_positive(pixel_size_nm, "pixel_size_nm")
    check_positive(upscaling, "upscaling", integer=True)
    check_positive(alpha, "alpha")
    check_positive(d_max, "d_max")
    out_shape = (height * upscaling, width * upscaling)
    maps = np.zeros((len(positions),) + out_shape, dtype=dtype)
    scale = upscaling / pixel_size_nm
    for index, xy in enumerate(positions):
        if len(xy):
            # continuous output-pixel coordinates (pixel centres at integers)
            col = xy[:, 0] * scale - 0.5
            row = xy[:, 1] * scale - 0.5
            _frame_map(maps[index], row, col, float(alpha), float(d_max))
    return maps


def _frame_map(out, row, col, alpha, d_max):
    """Fill one output map in place from emitters at continuous (row, col)."""
    n_rows, n_cols = out.shape
    near = (
        (row > -d_max) & (row < n_rows - 1 + d_max) & (col > -d_max)
        & (col < n_cols - 1 + d_max)
    )  # fmt: skip
    if not near.any():
        return
    row, col = row[near], col[near]
    # Pad so that every emitter within d_max of the map gets a grid cell.
    pad = int(np.ceil(d_max)) + 1
    cell_row = np.rint(row).astype(np.intp) + pad
    cell_col = np.rint(col).astype(np.intp) + pad
    shape = (n_rows + 2 * pad, n_cols + 2 * pad)
    label = np.full(shape, -1, dtype=np.int32)
    label[cell_row, cell_col] = np.arange(len(row), dtype=np.int32)
    # Emitters that lost their cell to another one in the same output pixel.
    extra = np.flatnonzero(label[cell_row, cell_col] != np.arange(len(row)))

    background = np.ones(shape, dtype=bool)
    background[cell_row, cell_col] = False
    nearest_row, nearest_col = distance_transform_edt(
        background, return_distances=False, return_indices=True
    )
    nearest_row *= shape[1]
    nearest_row += nearest_col
    nearest = label.ravel().take(nearest_row)
    del nearest_row, nearest_col

    row32, col32 = row.astype(np.float32), col.astype(np.float32)
    ii = np.arange(n_rows, dtype=np.float32)[:, None]
    jj = np.arange(n_cols, dtype=np.float32)[None, :]
    core = nearest[pad : pad + n_rows, pad : pad + n_cols]
    dist2 = (ii - row32[core]) ** 2 + (jj - col32[core]) ** 2

    # The grid-nearest emitter A of a pixel may not be the exactly nearest one:
    # rounding moves each emitter by up to 0.71 px, which shifts and turns the
    # bisector between two emitters. Re-check A's neighbours in the grid
    # Voronoi diagram on the pixels near a cell boundary (and near enough to
    # an emitter to be non-zero).
    neighbours = _voronoi_neighbours(
        nearest[pad - 1 : pad + n_rows + 1, pad - 1 : pad + n_cols + 1], len(row)
    )
    if neighbours.shape[1]:
        window = nearest[pad - 1 : pad + n_rows + 1, pad - 1 : pad + n_cols + 1]
        boundary = np.zeros(core.shape, dtype=np.uint8)
        for dr, dc in ((0, 1), (2, 1), (1, 0), (1, 2)):
            boundary |= core != window[dr : dr + n_rows, dc : dc + n_cols]
        size = 2 * _BAND_PX + 1
        band = maximum_filter1d(boundary, size, axis=0, mode="constant")
        band = maximum_filter1d(band, size, axis=1, mode="constant")
        flat = dist2.ravel()
        sel = np.flatnonzero(band.ravel().view(bool) & (flat < (d_max + 1.5) ** 2))
        si, sj = np.divmod(sel, n_cols)
        best = flat[sel]
        fi, fj = si.astype(np.float32), sj.astype(np.float32)
        owner = core.ravel()[sel]
        for k in range(neighbours.shape[1]):
            e = neighbours[owner, k]
            np.minimum(best, (fi - row32[e]) ** 2 + (fj - col32[e]) ** 2, out=best)
        flat[sel] = best

    # Emitters sharing a cell: exact minimum over a window around each.
    reach = int(np.ceil(d_max))
    for e in extra:
        r0 = max(int(np.floor(row[e])) - reach, 0)
        r1 = min(int(np.ceil(row[e])) + reach + 1, n_rows)
        c0 = max(int(np.floor(col[e])) - reach, 0)
        c1 = min(int(np.ceil(col[e])) + reach + 1, n_cols)
        if r0 < r1 and c0 < c1:
            window = (ii[r0:r1] - row32[e]) ** 2 + (jj[:, c0:c1] - col32[e]) ** 2
            np.minimum(dist2[r0:r1, c0:c1], window, out=dist2[r0:r1, c0:c1])

    inside = dist2 < np.float32(d_max) ** 2
    d = np.sqrt(dist2[inside])
    out[inside] = np.expm1(np.float32(alpha) * (1 - d / np.float32(d_max)))


def _voronoi_neighbours(nearest, n_emitters):
    """Table of each emitter's neighbours in a label map (padded with itself)."""
    firsts, seconds = [], []
    for a, b in (
        (nearest[:, :-1], nearest[:, 1:]),
        (nearest[:-1, :], nearest[1:, :]),
    ):
        differ = np.nonzero(a != b)
        firsts += [a[differ], b[differ]]
        seconds += [b[differ], a[differ]]
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    if not len(first):
        return np.empty((n_emitters, 0), dtype=np.intp)
    first, second = np.divmod(np.unique(first * n_emitters + second), n_emitters)
    degree = np.bincount(first, minlength=n_emitters)
    table = np.repeat(np.arange(n_emitters)[:, None], degree.max(), axis=1)
    start = np.concatenate([[0], np.cumsum(degree)[:-1]])
    table[first, np.arange(len(first)) - start[first]] = second
    return table


def _check_frame_shape(frame_shape):
    try:
        shape = tuple(frame_shape)
    except TypeError:
        shape = None
    if (
        shape is None
        or len(shape) != 2
        or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
            for s in shape
        )
    ):
        raise ValueError(
            f"frame_shape must be a pair of positive integers (height, width) in "
            f"camera pixels, got {frame_shape!r}."
        )
    return int(shape[0]), int(shape[1])


class DistanceTransform(TransformerMixin, BaseEstimator):
    """Encode emitter positions as distance-transform maps, and decode them.

    ``transform`` is :func:`distance_transform_maps`; ``inverse_transform``
    finds the peaks of maps (:func:`sklearn_smlm.peaks.maps_to_localizations`).

    Parameters
    ----------
    frame_shape : tuple of int (height, width)
        Camera frame size in pixels; required.
    pixel_size_nm : float, default=100.0
        Camera pixel size in nanometres.
    upscaling : int, default=7
        Output pixels per camera pixel.
    alpha : float, default=7.0
        Sharpness of the peaks; their height is ``exp(alpha) - 1``.
    d_max : float, default=35.0
        Radius of each peak in output pixels.

    Attributes
    ----------
    frame_shape_ : tuple of int
        The validated frame shape.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.encoding import DistanceTransform
    >>> encoder = DistanceTransform(frame_shape=(4, 4)).fit(None)
    >>> maps = encoder.transform([np.array([[150.0, 250.0]]), np.empty((0, 2))])
    >>> maps.shape
    (2, 28, 28)
    >>> encoder.inverse_transform(maps).round(3)
       frame   x_nm   y_nm     score
    0      0  150.0  250.0  1095.633
    """

    def __init__(
        self,
        frame_shape=None,
        pixel_size_nm=100.0,
        upscaling=7,
        alpha=7.0,
        d_max=35.0,
    ):
        self.frame_shape = frame_shape
        self.pixel_size_nm = pixel_size_nm
        self.upscaling = upscaling
        self.alpha = alpha
        self.d_max = d_max

    @property
    def peak_value(self):
        """Height of a peak, ``exp(alpha) - 1``."""
        return float(np.expm1(self.alpha))

    def fit(self, positions=None, y=None):
        """Check the parameters (nothing is learnt from ``positions``).

        Parameters
        ----------
        positions : sequence of (k_i, 2) arrays or pandas.DataFrame, optional
            Checked when given, otherwise ignored.
        y : None
            Ignored.

        Returns
        -------
        self : DistanceTransform
        """
        if self.frame_shape is None:
            raise ValueError(
                "DistanceTransform needs frame_shape=(height, width) in camera pixels."
            )
        self.frame_shape_ = _check_frame_shape(self.frame_shape)
        check_positive(self.pixel_size_nm, "pixel_size_nm")
        check_positive(self.upscaling, "upscaling", integer=True)
        check_positive(self.alpha, "alpha")
        check_positive(self.d_max, "d_max")
        if positions is not None:
            check_positions(positions, name="positions")
        return self

    def transform(self, positions):
        """Make one map per frame.

        Parameters
        ----------
        positions : sequence of (k_i, 2) arrays or pandas.DataFrame
            Emitter positions per frame, in nanometres.

        Returns
        -------
        maps : ndarray of shape (n_frames, height * upscaling, width * upscaling)
        """
        check_is_fitted(self)
        return distance_transform_maps(
            positions,
            self.frame_shape_,
            pixel_size_nm=self.pixel_size_nm,
            upscaling=self.upscaling,
            alpha=self.alpha,
            d_max=self.d_max,
        )

    def inverse_transform(self, maps, threshold=None):
        """Localize the peaks of maps.

        Parameters
        ----------
        maps : array-like of shape (n_frames, height * upscaling, width * upscaling)
            Maps such as made by :meth:`transform` or predicted by a network.
        threshold : float, optional
            Detection threshold; default half the peak height.

        Returns
        -------
        localizations : pandas.DataFrame
            Columns ``frame``, ``x_nm``, ``y_nm``, ``score``.
        """
        from .peaks import maps_to_localizations

        check_is_fitted(self)
        if threshold is None:
            threshold = 0.5 * self.peak_value
        return maps_to_localizations(
            maps,
            threshold,
            upscaling=self.upscaling,
            pixel_size_nm=self.pixel_size_nm,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.target_tags.required = False
        return tags
