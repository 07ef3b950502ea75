"""Fourier ring correlation of two halves of a localization table."""

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .._localizations import validate_localizations
from .._validation import check_int, check_real

__all__ = ["frc_curve", "frc_resolution", "plot_frc", "split_localizations"]

#: The fixed threshold of Nieuwenhuizen et al. (2013).
FRC_THRESHOLD = 1.0 / 7.0


def split_localizations(table, *, split="blocks", block_frames=500, random_state=0):
    """Split a localization table into two halves for Fourier ring correlation.

    Parameters
    ----------
    table : pandas.DataFrame
        Localization table.
    split : {"blocks", "random"}, default="blocks"
        "blocks": frames cut into blocks of ``block_frames``, even blocks in
        one half and odd blocks in the other (the repeated localizations of
        one on-event then stay in one half, which keeps them from faking
        correlation, Nieuwenhuizen et al. 2013). "random": each row to a
        random half (use it on merged tables).
    block_frames : int, default=500
        Frames per block for ``split="blocks"``.
    random_state : int, numpy.random.Generator or None, default=0
        Seed of the random split.

    Returns
    -------
    first, second : pandas.DataFrame
    """
    table = validate_localizations(table, name="table")
    if split == "blocks":
        block_frames = check_int(block_frames, "block_frames", low=1)
        half = (table["frame"].to_numpy() // block_frames) % 2 == 1
    elif split == "random":
        rng = check_random_state(random_state)
        half = rng.random_sample(len(table)) < 0.5
    else:
        raise ValueError(f"split must be 'blocks' or 'random', got {split!r}.")
    first, second = table[~half], table[half]
    if len(first) == 0 or len(second) == 0:
        raise ValueError(
            "one half of the table is empty; with split='blocks' the table must "
            "span more than block_frames frames (use a smaller block_frames or "
            "split='random')."
        )
    return first.reset_index(drop=True), second.reset_index(drop=True)


def _histogram(table, origin, px, shape):
    col = np.floor((table["x_nm"].to_numpy() - origin[0]) / px).astype(np.int64)
    row = np.floor((table["y_nm"].to_numpy() - origin[1]) / px).astype(np.int64)
    inside = (col >= 0) & (col < shape[1]) & (row >= 0) & (row < shape[0])
    flat = row[inside] * shape[1] + col[inside]
    return np.bincount(flat, minlength=shape[0] * shape[1]).reshape(shape)


def frc_curve(
    first,
    second=None,
    *,
    pixel_size_nm=5.0,
    field_of_view_nm=None,
    origin_nm=None,
    smoothing_rings=7,
    split="blocks",
    block_frames=500,
    random_state=0,
):
    """Fourier ring correlation of two halves of a localization table.

    Both halves are rendered as histograms on the same grid; their 2-D FFTs
    ``F1``, ``F2`` give, on each ring of spatial frequency ``q``,
    ``FRC(q) = sum Re(F1 F2*) / sqrt(sum |F1|^2 sum |F2|^2)`` (Nieuwenhuizen
    et al. 2013). The curve is smoothed by a moving average over
    ``smoothing_rings`` rings.

    Parameters
    ----------
    first : pandas.DataFrame
        One half; or the whole table when ``second`` is None, then split by
        :func:`split_localizations` with ``split``, ``block_frames`` and
        ``random_state``.
    second : pandas.DataFrame, optional
        The other half.
    pixel_size_nm : float, default=5.0
        Render pixel; at most a quarter of the expected resolution.
    field_of_view_nm : (float, float), optional
        ``(width, height)`` of the rendered region; default the bounding box
        of both halves.
    origin_nm : (float, float), optional
        Corner of the rendered region; default the lower corner of the
        bounding box.
    smoothing_rings : int, default=7
        Width of the moving average (1: no smoothing).
    split, block_frames, random_state
        See :func:`split_localizations`.

    Returns
    -------
    curve : pandas.DataFrame
        ``frequency_per_nm`` (ring centre), ``frc`` (raw), ``frc_smoothed``
        and ``n_pixels`` (Fourier pixels in the ring), up to the Nyquist
        frequency ``1 / (2 * pixel_size_nm)``.
    """
    if second is None:
        first, second = split_localizations(
            first, split=split, block_frames=block_frames, random_state=random_state
        )
    else:
        first = validate_localizations(first, name="first")
        second = validate_localizations(second, name="second")
    if len(first) == 0 or len(second) == 0:
        raise ValueError("both halves need at least one localization.")
    check_real(pixel_size_nm, "pixel_size_nm", low=0, low_open=True)
    smoothing_rings = check_int(smoothing_rings, "smoothing_rings", low=1)
    px = float(pixel_size_nm)
    both = pd.concat([first[["x_nm", "y_nm"]], second[["x_nm", "y_nm"]]])
    lo = both.min().to_numpy()
    hi = both.max().to_numpy()
    origin = lo if origin_nm is None else np.asarray(origin_nm, dtype=float)
    extent = (
        hi - origin + px
        if field_of_view_nm is None
        else np.asarray(field_of_view_nm, dtype=float)
    )
    # square images, so that the rings are circles in frequency units
    side = int(np.ceil(max(extent) / px))
    if side > 8192:
        raise ValueError(
            f"the rendered halves would be {side}x{side} pixels; give a larger "
            "pixel_size_nm or a smaller field_of_view_nm."
        )
    shape = (side, side)
    f1 = np.fft.rfft2(_histogram(first, origin, px, shape).astype(np.float64))
    f2 = np.fft.rfft2(_histogram(second, origin, px, shape).astype(np.float64))
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.rfftfreq(side)[None, :]
    radius = np.sqrt(fx**2 + fy**2) * side  # in rings of width 1 / (side * px)
    ring = np.round(radius).astype(np.int64).ravel()
    # the rfft holds each frequency once except the columns 0 (and Nyquist);
    # doubling the others weights every ring as the full spectrum would
    weight = np.full(fx.shape[1], 2.0)
    weight[0] = 1.0
    if side % 2 == 0:
        weight[-1] = 1.0
    weight = np.broadcast_to(weight, f1.shape).ravel()
    n_rings = side // 2 + 1
    keep = ring < n_rings
    ring, weight = ring[keep], weight[keep]
    a, b = f1.ravel()[keep], f2.ravel()[keep]
    num = np.bincount(ring, weights=weight * (a * np.conj(b)).real, minlength=n_rings)
    p1 = np.bincount(ring, weights=weight * np.abs(a) ** 2, minlength=n_rings)
    p2 = np.bincount(ring, weights=weight * np.abs(b) ** 2, minlength=n_rings)
    npix = np.bincount(ring, weights=weight, minlength=n_rings)
    with np.errstate(invalid="ignore", divide="ignore"):
        frc = num / np.sqrt(p1 * p2)
    frc = np.nan_to_num(frc, nan=0.0)
    if smoothing_rings > 1:
        kernel = np.ones(smoothing_rings) / smoothing_rings
        padded = np.pad(frc, smoothing_rings // 2, mode="edge")
        smoothed = np.convolve(padded, kernel, mode="valid")[:n_rings]
    else:
        smoothed = frc.copy()
    return pd.DataFrame(
        {
            "frequency_per_nm": np.arange(n_rings) / (side * px),
            "frc": frc,
            "frc_smoothed": smoothed,
            "n_pixels": npix.astype(np.int64),
        }
    )


def frc_resolution(curve_or_first, second=None, *, threshold=FRC_THRESHOLD, **kwargs):
    """Resolution in nm: the inverse of the frequency where the FRC falls to 1/7.

    Parameters
    ----------
    curve_or_first : pandas.DataFrame
        A curve from :func:`frc_curve`, or a localization table (or its first
        half with ``second``) from which the curve is computed.
    second : pandas.DataFrame, optional
        The other half.
    threshold : float, default=1/7
        The fixed threshold of Nieuwenhuizen et al. (2013).
    **kwargs
        Passed to :func:`frc_curve`.

    Returns
    -------
    resolution_nm : float
        ``1 / q`` at the first crossing of the smoothed curve below
        ``threshold`` (linear between rings); NaN (with no warning) when the
        curve never falls below it up to the Nyquist frequency, which means the
        render pixel is too coarse to measure the resolution.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> sites = rng.uniform(0, 2000, (400, 2))
    >>> def half():
    ...     xy = np.repeat(sites, 5, axis=0) + rng.normal(0, 10, (2000, 2))
    ...     return pd.DataFrame({"frame": 0, "x_nm": xy[:, 0], "y_nm": xy[:, 1]})
    >>> r = frc_resolution(half(), half(), pixel_size_nm=2.0)
    >>> 28 < r < 40  # 2 pi sigma / sqrt(ln(6 n + 1)) = 33.9 nm for n = 5
    True
    """
    if second is None and "frc_smoothed" in getattr(curve_or_first, "columns", ()):
        curve = curve_or_first
    else:
        curve = frc_curve(curve_or_first, second, **kwargs)
    q = curve["frequency_per_nm"].to_numpy()
    v = curve["frc_smoothed"].to_numpy()
    below = np.flatnonzero((v < threshold) & (q > 0))
    if len(below) == 0:
        return float("nan")
    k = below[0]
    if k == 0 or q[k - 1] == 0:
        return float(1.0 / q[k])
    # linear between the last ring above and the first below
    t = (v[k - 1] - threshold) / (v[k - 1] - v[k])
    return float(1.0 / (q[k - 1] + t * (q[k] - q[k - 1])))


def plot_frc(curve, *, resolution_nm=None, threshold=FRC_THRESHOLD, ax=None):
    """Plot an FRC curve with its threshold and resolution.

    Parameters
    ----------
    curve : pandas.DataFrame
        From :func:`frc_curve`.
    resolution_nm : float, optional
        Marked on the plot; default computed from ``curve``.
    threshold : float, default=1/7
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    ax : matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
    if resolution_nm is None:
        resolution_nm = frc_resolution(curve, threshold=threshold)
    q = curve["frequency_per_nm"]
    ax.plot(q, curve["frc"], color="0.7", lw=0.8, label="FRC")
    ax.plot(q, curve["frc_smoothed"], color="C0", label="smoothed")
    ax.axhline(threshold, color="C3", ls="--", lw=1, label="1/7")
    if np.isfinite(resolution_nm):
        ax.axvline(1.0 / resolution_nm, color="C2", lw=1)
        ax.set_title(f"FRC resolution {resolution_nm:.1f} nm")
    else:
        ax.set_title("FRC: no crossing of 1/7 (render pixel too coarse)")
    ax.set_xlabel("spatial frequency (1/nm)")
    ax.set_ylabel("FRC")
    ax.set_ylim(-0.2, 1.05)
    ax.legend()
    return ax
