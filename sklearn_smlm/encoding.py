"""Distance-transform target maps: emitter positions to super-resolved maps."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._localizations import check_positions
from ._validation import check_int, check_positive

__all__ = ["distance_transform_maps", "DistanceTransform"]


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

    The distance to the nearest emitter is computed exactly (in float32) for
    every pixel within ``d_max`` of an emitter; emitters sharing an output
    pixel are handled like any others.

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
    """Fill one output map in place from emitters at continuous (row, col).

    Each emitter's squared distance is an outer sum of a row and a column
    term over the square of pixels within ``d_max`` of it, so one vectorized
    minimum per emitter gives the exact nearest-emitter distance of every
    pixel (about 4.5x faster than a grid distance transform with re-checks,
    which it replaced: 57 -> 275 frames of 64 x 64 per second at 205
    emitters per frame, one core).
    """
    n_rows, n_cols = out.shape
    reach = int(np.ceil(d_max))  # d < d_max lies within reach of floor/ceil
    r0 = np.clip(np.floor(row).astype(np.intp) - reach, 0, n_rows)
    r1 = np.clip(np.ceil(row).astype(np.intp) + reach + 1, 0, n_rows)
    c0 = np.clip(np.floor(col).astype(np.intp) - reach, 0, n_cols)
    c1 = np.clip(np.ceil(col).astype(np.intp) + reach + 1, 0, n_cols)
    near = np.flatnonzero((r0 < r1) & (c0 < c1))
    if not len(near):
        return
    limit = np.float32(d_max) ** 2
    dist2 = np.full(out.shape, limit, dtype=np.float32)
    ii = np.arange(n_rows, dtype=np.float32)
    jj = np.arange(n_cols, dtype=np.float32)
    row32, col32 = row.astype(np.float32), col.astype(np.float32)
    for e in near.tolist():
        top, bottom, left, right = r0[e], r1[e], c0[e], c1[e]
        dr = ii[top:bottom] - row32[e]
        dr *= dr
        dc = jj[left:right] - col32[e]
        dc *= dc
        block = dist2[top:bottom, left:right]
        np.minimum(block, dr[:, None] + dc, out=block)
    inside = dist2 < limit
    d = np.sqrt(dist2[inside])
    out[inside] = np.expm1(np.float32(alpha) * (1 - d / np.float32(d_max)))


def _check_frame_shape(frame_shape):
    what = "a pair of positive integers (height, width) in camera pixels"
    try:
        shape = tuple(frame_shape)
    except TypeError:
        raise TypeError(f"frame_shape must be {what}, got {frame_shape!r}.") from None
    if len(shape) != 2:
        raise ValueError(f"frame_shape must be {what}, got {frame_shape!r}.")
    return tuple(check_int(s, f"frame_shape[{i}]", low=1) for i, s in enumerate(shape))


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
