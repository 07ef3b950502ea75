"""From predicted maps to localizations: local maxima and sub-pixel refinement."""

import numpy as np
import pandas as pd
from scipy.sparse import issparse
from sklearn.base import BaseEstimator

from ._localizations import empty_localizations
from ._peak_kernels import _DX, _DY, _first_of_plateau, _max_filter, _refine_peaks
from ._validation import check_int, check_positive, check_real

__all__ = [
    "find_peaks",
    "maps_to_localizations",
    "localization_columns",
    "columns_to_localizations",
    "PeakExtractor",
]

_REFINE_METHODS = ("auto", "cone", "quadratic", None)


def find_peaks(maps, threshold, *, min_distance=1, refine="auto"):
    """Find the local maxima of a stack of maps, with sub-pixel positions.

    A pixel is a peak when its value is greater than ``threshold`` and equal to
    the maximum of its ``(2 * min_distance + 1)`` square neighbourhood. Flat tops
    (plateaus, as made by low-precision maps such as bfloat16 network outputs)
    give one peak only: among equal neighbours the first in raster order
    (row-major) is kept, i.e. a peak must also be strictly greater than the
    neighbours that precede it. Each peak is then refined on its 3x3
    neighbourhood (see ``refine``); the offset is clipped to +-0.5 pixel.

    Parameters
    ----------
    maps : array-like of shape (n_maps, height, width), (n_maps, 1, height, width) \
            or (height, width)
        The maps, e.g. predicted distance-transform maps. A torch tensor is
        accepted too (it is copied to the CPU as float32).
    threshold : float
        Peaks must be strictly greater than this value.
    min_distance : int, default=1
        Half-size of the neighbourhood in which a peak is the maximum; two peaks
        are at least ``min_distance + 1`` pixels apart along a row or column.
    refine : {"auto", "cone", "quadratic"} or None, default="auto"
        Sub-pixel refinement, done on ``log1p(max(value, 0))``:

        - ``"cone"``: fit ``(A - u)^2 = k^2 ((x - x0)^2 + (y - y0)^2)``, a cone of
          any height and slope. It is exact for distance-transform maps
          (whose ``log1p`` is a cone) and for isotropic Gaussian peaks.
        - ``"quadratic"``: least-squares 2-D quadratic (6 coefficients); exact
          for Gaussian peaks (whose logarithm is a quadratic), biased by up to
          about 0.06 pixel on cone-shaped peaks.
        - ``"auto"``: the cone fit where it gives a plausible cone (positive
          slope, apex within 0.75 pixel of the centre, no degeneracy), the
          quadratic otherwise; noisy peaks usually fall back to the quadratic,
          which is more robust.
        - ``None``: no refinement, integer pixel positions.

    Returns
    -------
    frame : ndarray of shape (n_peaks,), dtype int64
        Index of the map of each peak.
    row, col : ndarray of shape (n_peaks,), dtype float64
        Sub-pixel position in map pixels (pixel centres at whole numbers).
    value : ndarray of shape (n_peaks,), dtype float64
        Height of the refined peak (the map value for ``refine=None``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.peaks import find_peaks
    >>> m = np.zeros((1, 7, 7))
    >>> m[0, 2:5, 2:5] = [[1, 2, 1], [2, 8, 4], [1, 2, 1]]
    >>> frame, row, col, value = find_peaks(m, 3.0, refine=None)
    >>> frame, row, col
    (array([0]), array([3.]), array([3.]))
    >>> [len(a) for a in find_peaks(m, 10.0)]
    [0, 0, 0, 0]
    """
    maps = _as_map_stack(maps)
    threshold = _check_threshold(threshold)
    check_positive(min_distance, "min_distance", integer=True)
    if refine not in _REFINE_METHODS:
        raise ValueError(f"refine must be one of {_REFINE_METHODS}, got {refine!r}.")

    local_max = _max_filter(maps, min_distance)
    if np.issubdtype(maps.dtype, np.floating):
        # a threshold beyond the map's dtype would overflow in the comparison;
        # +-inf give the same answer for every finite map value
        largest = float(np.finfo(maps.dtype).max)
        if abs(threshold) > largest:
            threshold = np.inf if threshold > 0 else -np.inf
    is_peak = maps > threshold
    is_peak &= maps == local_max
    _, height, width = maps.shape
    # flatnonzero on the flat mask is several times faster than a 3-D nonzero
    flat = np.flatnonzero(is_peak)
    frame, pixel = np.divmod(flat, height * width)
    row, col = np.divmod(pixel, width)

    if len(frame):
        keep = _first_of_plateau(maps, frame, row, col, min_distance)
        frame, row, col = frame[keep], row[keep], col[keep]

    frame = frame.astype(np.int64)
    if refine is None or not len(frame):
        value = maps[frame, row, col].astype(np.float64)
        return frame, row.astype(np.float64), col.astype(np.float64), value

    # 3x3 patches, edge pixels repeated at the border of the map.
    rows = np.clip(row[:, None] + _DY.astype(np.intp), 0, height - 1)
    cols = np.clip(col[:, None] + _DX.astype(np.intp), 0, width - 1)
    return _refine_peaks(frame, row, col, maps[frame[:, None], rows, cols], refine)


def maps_to_localizations(
    maps,
    threshold,
    *,
    upscaling=7,
    pixel_size_nm=100.0,
    frame_offset=0,
    min_distance=1,
    refine="auto",
):
    """Turn predicted maps into a localization table.

    Map pixel ``(row, col)`` at upscaling ``r`` lies at camera column
    ``(col + 0.5) / r - 0.5`` (method.md section 4), so at
    ``x_nm = (col + 0.5) * pixel_size_nm / r``, and likewise ``y_nm`` with the
    row.

    Parameters
    ----------
    maps : array-like of shape (n_frames, height * r, width * r)
        One map per camera frame (``(n_frames, 1, ...)`` and torch tensors are
        accepted, see :func:`find_peaks`).
    threshold : float
        Detection threshold on the map values.
    upscaling : int, default=7
        Map pixels per camera pixel along each axis.
    pixel_size_nm : float, default=100.0
        Camera pixel size in nanometres.
    frame_offset : int, default=0
        Added to the frame numbers, for maps that are a chunk of a longer movie.
    min_distance : int, default=1
        See :func:`find_peaks`.
    refine : {"auto", "cone", "quadratic"} or None, default="auto"
        See :func:`find_peaks`.

    Returns
    -------
    localizations : pandas.DataFrame
        Columns ``frame`` (int64), ``x_nm``, ``y_nm`` and ``score`` (the refined
        peak height), sorted by frame then raster order.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.peaks import maps_to_localizations
    >>> m = np.zeros((1, 14, 14))
    >>> m[0, 3, 10] = 5.0
    >>> maps_to_localizations(m, 1.0, upscaling=7, refine=None)
       frame   x_nm  y_nm  score
    0      0  150.0  50.0    5.0
    """
    check_positive(upscaling, "upscaling", integer=True)
    check_positive(pixel_size_nm, "pixel_size_nm")
    check_int(frame_offset, "frame_offset")
    columns = localization_columns(
        maps,
        threshold,
        upscaling=upscaling,
        pixel_size_nm=pixel_size_nm,
        frame_offset=frame_offset,
        min_distance=min_distance,
        refine=refine,
    )
    return columns_to_localizations([columns])


def localization_columns(
    maps, threshold, *, upscaling, pixel_size_nm, frame_offset, min_distance, refine
):
    """Return the columns of :func:`maps_to_localizations` as a dict of arrays.

    The unchecked fast path of :func:`maps_to_localizations` for a batch of a
    longer run: parameters are not validated, and the batches' dicts are
    joined by :func:`columns_to_localizations` into one table.

    Parameters
    ----------
    maps : ndarray of shape (n_maps, height, width), or SubPixelMaps
        Predicted maps; the network's batches of folded-head channels
        (``sklearn_smlm._subpixel_maps.SubPixelMaps``) are localized
        without assembling the maps, with the same result.
    threshold, upscaling, pixel_size_nm, frame_offset, min_distance, refine
        As in :func:`maps_to_localizations` (all required).

    Returns
    -------
    columns : dict of str to ndarray
        ``frame``, ``x_nm``, ``y_nm`` and ``score``.
    """
    if hasattr(maps, "peaks"):  # SubPixelMaps: the same peaks, found faster
        frame, row, col, value = maps.peaks(
            threshold, min_distance=min_distance, refine=refine
        )
    else:
        frame, row, col, value = find_peaks(
            maps, threshold, min_distance=min_distance, refine=refine
        )
    nm_per_map_pixel = pixel_size_nm / upscaling
    return {
        "frame": frame + np.int64(frame_offset),
        "x_nm": (col + 0.5) * nm_per_map_pixel,
        "y_nm": (row + 0.5) * nm_per_map_pixel,
        "score": value,
    }


def columns_to_localizations(parts):
    """Return one localization table from the column dicts of several batches.

    Building a single DataFrame at the end, rather than one per batch and a
    concatenation, is faster, and it keeps memory bounded when a long stack
    is localized: small per-batch DataFrames that outlive a batch split the
    heap space freed by its large map arrays, and glibc's heap then grew by
    tens of MB per batch (4.4 GB for 256 frames of 256 x 256, against 0.7 GB
    with this).

    Parameters
    ----------
    parts : list of dict
        Column dicts from :func:`localization_columns`, in frame order.

    Returns
    -------
    localizations : pandas.DataFrame
        Columns ``frame``, ``x_nm``, ``y_nm``, ``score``; empty with these
        columns when no part holds a row.
    """
    parts = [p for p in parts if len(p["frame"])]
    if not parts:
        return empty_localizations(["frame", "x_nm", "y_nm", "score"])
    return pd.DataFrame(
        {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    )


def _as_map_stack(maps, name="maps"):
    """Return maps as a float (n, height, width) numpy array."""
    if hasattr(maps, "detach") and hasattr(maps, "cpu"):  # a torch tensor
        maps = maps.detach().float().cpu().numpy()
    if issparse(maps):
        raise TypeError(f"{name} must be a dense array; sparse input is not supported.")
    try:
        arr = np.asarray(maps)
        if arr.dtype == object:
            arr = arr.astype(np.float64)
    except TypeError as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"{name} could not be turned into an array: {exc}") from exc
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"Complex data not supported: {name} must hold real numbers.")
    if not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}.")
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must have shape (n_maps, height, width), (n_maps, 1, height, "
            f"width) or (height, width), got shape {arr.shape}."
        )
    if 0 in arr.shape[1:]:
        raise ValueError(f"{name} has empty maps of shape {arr.shape[1:]}.")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values.")
    return arr


def _check_threshold(threshold):
    return check_real(threshold, "threshold")


class PeakExtractor(BaseEstimator):
    """Pipeline step that turns predicted maps into localizations.

    Stateless: ``fit`` only checks the parameters. It is the last step of a
    pipeline ``[FrameNormalizer, network, PeakExtractor]``.

    Parameters
    ----------
    threshold : float, default=300.0
        Detection threshold on the map (the paper's value for ``alpha = 7``,
        ``d_max = 35``, whose peaks are about 1096 high).
    upscaling : int, default=7
        Map pixels per camera pixel.
    pixel_size_nm : float, default=100.0
        Camera pixel size in nanometres.
    min_distance : int, default=1
        Half-size of the local-maximum neighbourhood, in map pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.encoding import distance_transform_maps
    >>> from sklearn_smlm.peaks import PeakExtractor
    >>> maps = distance_transform_maps([np.array([[150.0, 250.0]])], (4, 4))
    >>> PeakExtractor().fit(maps).predict(maps).round(3)
       frame   x_nm   y_nm   score
    0      0  150.0  250.0  1095.633
    """

    def __init__(
        self, threshold=300.0, upscaling=7, pixel_size_nm=100.0, min_distance=1
    ):
        self.threshold = threshold
        self.upscaling = upscaling
        self.pixel_size_nm = pixel_size_nm
        self.min_distance = min_distance

    def _check_params(self):
        _check_threshold(self.threshold)
        check_positive(self.upscaling, "upscaling", integer=True)
        check_positive(self.pixel_size_nm, "pixel_size_nm")
        check_positive(self.min_distance, "min_distance", integer=True)

    def fit(self, maps, y=None):
        """Check the parameters (nothing is learnt).

        Parameters
        ----------
        maps : array-like of shape (n_frames, height, width)
            Ignored apart from a shape check.
        y : None
            Ignored.

        Returns
        -------
        self : PeakExtractor
        """
        self._check_params()
        _as_map_stack(maps)
        return self

    def predict(self, maps):
        """Localize the peaks of the maps.

        Parameters
        ----------
        maps : array-like of shape (n_frames, height, width)
            Predicted maps, one per frame.

        Returns
        -------
        localizations : pandas.DataFrame
            Columns ``frame``, ``x_nm``, ``y_nm``, ``score``.
        """
        self._check_params()
        return maps_to_localizations(
            maps,
            self.threshold,
            upscaling=self.upscaling,
            pixel_size_nm=self.pixel_size_nm,
            min_distance=self.min_distance,
        )

    def score(self, maps, y):
        """Jaccard index at 250 nm of the predictions against ``y``.

        Parameters
        ----------
        maps : array-like of shape (n_frames, height, width)
            Predicted maps.
        y : list of (k, 2) arrays or pandas.DataFrame
            True positions per frame.

        Returns
        -------
        score : float
        """
        from .metrics import jaccard_index

        return jaccard_index(y, self.predict(maps), tolerance_nm=250.0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.target_tags.required = False
        return tags
