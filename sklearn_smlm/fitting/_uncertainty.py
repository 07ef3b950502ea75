"""Photons, background and a calibrated position uncertainty for any detection.

A detector that does not fit (the CNN) gives positions without an error bar.
:func:`estimate_uncertainty` measures, around every detection, the local
background (median of the ring of a small box) and the spot's counts (the sum
above it in the central ``5 x 5`` pixels, corrected for the PSF's light
outside them), and turns them into a per-axis uncertainty with the
maximum-likelihood form of the Mortensen et al. (2010) formula, scaled by
calibration constants measured for the detector on simulated data:

    var = a^2 * var_mortensen(sigma, N, b) + c^2 + k^2 * exp(-(d / r)^2)

``a`` absorbs the detector's efficiency relative to the bound, ``c`` is a
floor (the network's error does not fall to zero at high photon counts) and
the last term is the crowding error: ``d`` is the distance to the nearest
other detection of the frame, in pixels (close pairs are where a detector's
errors are largest).

For a calibrated camera the counts are photoelectrons and an EMCCD's excess
noise doubles the variance. For an uncalibrated one, an *effective gain*
(ADU per photon of Poisson-equivalent noise, ``F^2 * em_gain / e_per_adu``)
is measured from the background pixels as ``variance / (mean -
baseline_adu)`` (the photon transfer relation), which needs only the
baseline; in those units an EMCCD's counts are Poisson again, so the same
formula gives the same uncertainty.
Everything is vectorized over the detections (one gather of the boxes, a few
sums): its cost is small beside the network's.
"""

import numpy as np
from scipy.spatial import cKDTree

from .._localizations import validate_localizations
from .._validation import check_frames, check_positive

__all__ = [
    "estimate_uncertainty",
    "add_localizer_uncertainty",
    "CNN_UNCERTAINTY_CALIBRATION",
    "FIT_UNCERTAINTY_CALIBRATION",
]

#: ``(a, c_nm, k_nm, r_px)`` of the pretrained default CNN's positions (see
#: the module docstring), measured on simulated frames only: ``"low_density"``
#: preset at 0.3 (200 frames, seed 501) and 1.0 emitters/um^2 (150 frames,
#: seed 502), chosen so that the SD of the per-axis z-scores is 1 in every
#: photon tertile. On other seeds and 0.15 emitters/um^2 the SDs were
#: 0.95-1.17 (``benchmarks/results/precision_diagnostic.md``).
CNN_UNCERTAINTY_CALIBRATION = (1.01, 6.19, 37.1, 2.58)

#: The same form for positions refined by a Gaussian fit, with ``var_mortensen``
#: replaced by the fit's Cramer-Rao bound (``a = 1``, no floor): the bound
#: holds for isolated spots, and the crowding term adds what neighbours cost.
#: Measured as above on the hybrid's fitted rows (seeds 501-503, 0.15-1.0
#: emitters/um^2; refinement with the density counted in a 2 um disc and the
#: split of merged pairs, which fit more detections with close neighbours):
#: z-score SDs 0.88-1.22 per photon tertile, against 1.06-1.83 for the bare
#: bound and 0.71-0.99 for the former constants (13.24 nm, 8.64 px), which
#: were fitted to the refinement with the density counted in a 1 um disc.
FIT_UNCERTAINTY_CALIBRATION = (1.0, 0.0, 14.38, 5.73)

_BOX = 9  # box side of the background ring, pixels (4 px from the centre)
_CORE = 5  # side of the central square whose counts are summed, pixels


def _ring_offsets(width):
    """Flat offsets of the edge pixels of a ``_BOX`` box in rows of ``width``."""
    i, j = np.mgrid[0:_BOX, 0:_BOX]
    edge = (i == 0) | (i == _BOX - 1) | (j == 0) | (j == _BOX - 1)
    return (i * width + j)[edge]


def _core_offsets(width):
    i, j = np.mgrid[0:_CORE, 0:_CORE]
    return (i * width + j).ravel()


class _OffsetCache(dict):
    def __missing__(self, width):
        self[width] = value = _ring_offsets(width)
        return value


_RING_OFFSETS = _OffsetCache()


def _core_fraction(sigma_px, offset_x, offset_y, half):
    """Fraction of a Gaussian's light inside ``[-half, half]`` around a pixel."""
    from scipy.special import erf

    def frac(o):
        s = np.sqrt(2.0) * sigma_px
        return 0.5 * (erf((half - o) / s) - erf((-half - o) / s))

    return frac(offset_x) * frac(offset_y)


def effective_gain(ring, baseline_adu):
    """ADU per Poisson-equivalent photon of every box, from its background ring.

    ``variance / (mean - baseline)`` of the ring pixels, both measured
    robustly (median absolute deviation and median, so that the tail of a
    neighbouring spot does not inflate them). One value per box, so the
    result of a detection does not depend on which others are processed with
    it (chunks, tiles). NaN where the background is not above the baseline.

    Parameters
    ----------
    ring : ndarray of shape (n_boxes, n_ring_pixels)
    baseline_adu : float

    Returns
    -------
    gain : ndarray of shape (n_boxes,)
    """
    ring = np.asarray(ring, dtype=np.float64)
    med = np.median(ring, axis=1)
    var = (1.4826 * np.median(np.abs(ring - med[:, None]), axis=1)) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = var / (med - baseline_adu)
    return np.where((med > baseline_adu) & (var > 0), gain, np.nan)


def estimate_uncertainty(
    X,
    table,
    *,
    pixel_size_nm=100.0,
    psf_sigma_nm=110.0,
    baseline_adu=100.0,
    e_per_adu=None,
    em_gain=1.0,
    quantum_efficiency=1.0,
    calibration=CNN_UNCERTAINTY_CALIBRATION,
    only_missing=True,
    fit_calibration=None,
):
    """Add ``photons``, ``background`` and ``uncertainty_nm`` to detections.

    Parameters
    ----------
    X : array-like of shape (n_frames, height, width)
        Camera frames in ADU.
    table : pandas.DataFrame
        Detections with ``frame``, ``x_nm``, ``y_nm``.
    pixel_size_nm : float, default=100.0
    psf_sigma_nm : float, default=110.0
        PSF width used by the formula and by the light-outside-the-core
        correction.
    baseline_adu : float, default=100.0
        Camera offset.
    e_per_adu : float, optional
        Photoelectrons per ADU after the EM gain is divided out, as in
        :class:`GaussianFitLocalizer`. None: the camera is not calibrated,
        and the effective gain is measured from the background pixels
        around the detections; ``photons`` and ``background`` are then in
        Poisson-equivalent photons (half the true ones for an EMCCD).
    em_gain : float, default=1.0
        EM gain (with ``e_per_adu``); above 1 means an EMCCD, excess noise
        factor ``F^2 = 2``.
    quantum_efficiency : float, default=1.0
        Divides the counts to report photons.
    calibration : tuple of 4 floats, default=CNN_UNCERTAINTY_CALIBRATION
        ``(a, c_nm, k_nm, r_px)`` of the detector (see the module
        docstring); ``(1, 0, 0, 1)`` is the plain Mortensen formula.
    only_missing : bool, default=True
        Keep the values of rows that already have a finite
        ``uncertainty_nm`` from a fit (``fit_ok`` true where that column
        exists); estimate the others.
    fit_calibration : tuple of 4 floats, optional
        ``(a, c_nm, k_nm, r_px)`` applied to those kept rows, with their
        ``uncertainty_nm`` (the fit's bound) in place of the Mortensen
        term, e.g. :data:`FIT_UNCERTAINTY_CALIBRATION`; None keeps them as
        they are.

    Returns
    -------
    table : pandas.DataFrame
        A copy with ``photons`` and ``background`` (photons per pixel; in
        Poisson-equivalent photons when the gain is measured) and
        ``uncertainty_nm`` (per axis) on every row.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn_smlm.fitting import estimate_uncertainty
    >>> from sklearn_smlm.fitting._gauss import gaussian_model
    >>> # expected counts of a 2000-photon spot on 20 photons/px, 1 e/ADU
    >>> p = np.array([[10.0, 10.0, 2000.0, 20.0, 1.1]])
    >>> frames = 100.0 + gaussian_model(p, 21)
    >>> dets = pd.DataFrame({"frame": [0], "x_nm": [1050.0], "y_nm": [1050.0]})
    >>> plain = (1.0, 0.0, 0.0, 1.0)  # the Mortensen formula, not calibrated
    >>> out = estimate_uncertainty(frames, dets, e_per_adu=1.0, calibration=plain)
    >>> photons, background = out.loc[0, ["photons", "background"]]
    >>> round(float(photons), -2), round(float(background))
    (2000.0, 20)
    >>> round(float(out["uncertainty_nm"].iloc[0]), 1)  # Mortensen MLE form
    2.9
    """
    check_positive(pixel_size_nm, "pixel_size_nm")
    check_positive(psf_sigma_nm, "psf_sigma_nm")
    check_positive(quantum_efficiency, "quantum_efficiency")
    if e_per_adu is not None:
        check_positive(e_per_adu, "e_per_adu")
    check_positive(em_gain, "em_gain")
    a, c_nm, k_nm, r_px = calibration
    nearest_all = None
    table = validate_localizations(table, name="table")
    out = table.copy()
    n = len(table)
    have = np.zeros(n, bool)
    if only_missing and "uncertainty_nm" in table:
        have = np.isfinite(table["uncertainty_nm"].to_numpy(dtype=float))
        if "fit_ok" in table:
            have &= table["fit_ok"].to_numpy(dtype=bool)
    todo = np.flatnonzero(~have)
    for name in ("photons", "background", "uncertainty_nm"):
        if name not in out:
            out[name] = np.nan
    if fit_calibration is not None and have.any():
        fa, fc, fk, fr = fit_calibration
        nearest_all = _nearest_px(table, pixel_size_nm)
        bound = table["uncertainty_nm"].to_numpy(dtype=np.float64)[have]
        crowd = np.exp(-((nearest_all[have] / fr) ** 2))
        column = out["uncertainty_nm"].to_numpy(dtype=np.float64, copy=True)
        column[have] = np.sqrt(fa * fa * bound**2 + fc * fc + fk * fk * crowd)
        out["uncertainty_nm"] = column
    if not len(todo):
        return out
    frames = check_frames(X, dtype=np.float32)
    px = float(pixel_size_nm)
    h, w = frames.shape[1:]
    if h < _BOX or w < _BOX:
        raise ValueError(
            f"frames of {h}x{w} pixels are smaller than the {_BOX}-pixel box of "
            "the uncertainty estimate."
        )
    f = table["frame"].to_numpy()[todo]
    if len(f) and f.max() >= len(frames):
        raise ValueError(
            f"table has localizations in frame {int(f.max())} but X holds "
            f"{len(frames)} frame(s)."
        )
    x = table["x_nm"].to_numpy()[todo] / px - 0.5
    y = table["y_nm"].to_numpy()[todo] / px - 0.5
    row = np.clip(np.round(y).astype(np.int64), 0, h - 1)
    col = np.clip(np.round(x).astype(np.int64), 0, w - 1)
    # one gather of the ring and core pixels of every box, by flat index
    r0 = np.clip(row - _BOX // 2, 0, h - _BOX)
    c0 = np.clip(col - _BOX // 2, 0, w - _BOX)
    # the core is centred on the detection's pixel, or shifted at the border
    cr = np.clip(row - r0 - _CORE // 2, 0, _BOX - _CORE)
    cc = np.clip(col - c0 - _CORE // 2, 0, _BOX - _CORE)
    base = (f * h + r0) * w + c0
    flat = frames.reshape(-1)
    ring = flat[base[:, None] + _RING_OFFSETS[w]].astype(np.float64)
    core = flat[(base + cr * w + cc)[:, None] + _core_offsets(w)].astype(np.float64)
    if e_per_adu is not None:
        gain, excess = em_gain / e_per_adu, (2.0 if em_gain > 1 else 1.0)
    else:
        gain, excess = effective_gain(ring, baseline_adu), 1.0
        gain = np.where(np.isfinite(gain), gain, 1.0)
    bg_adu = np.median(ring, axis=1)
    signal_adu = core.sum(axis=1) - _CORE * _CORE * bg_adu
    sigma_px = psf_sigma_nm / px
    centre_x = c0 + cc + _CORE // 2
    centre_y = r0 + cr + _CORE // 2
    inside = _core_fraction(sigma_px, x - centre_x, y - centre_y, _CORE / 2.0)
    photons = np.maximum(signal_adu / gain / np.maximum(inside, 0.05), 1.0)
    background = np.maximum((bg_adu - baseline_adu) / gain, 0.0)
    # Mortensen et al. (2010), maximum-likelihood form (no 16/9), per axis
    sa2 = sigma_px**2 + 1.0 / 12.0
    var_px2 = excess * sa2 / photons * (1.0 + 8.0 * np.pi * sa2 * background / photons)
    if nearest_all is None:
        nearest_all = _nearest_px(table, px)
    nearest = nearest_all[todo]
    crowding = np.exp(-((nearest / r_px) ** 2))
    var_nm2 = a * a * var_px2 * px * px + c_nm * c_nm + k_nm * k_nm * crowding
    for name, values in (
        ("photons", photons / quantum_efficiency),
        ("background", background / quantum_efficiency),
        ("uncertainty_nm", np.sqrt(var_nm2)),
    ):
        column = out[name].to_numpy(dtype=np.float64, copy=True)
        column[todo] = values
        out[name] = column
    return out


def _nearest_px(table, pixel_size_nm):
    """Distance of every row to the nearest other row of its frame, in pixels."""
    px = float(pixel_size_nm)
    points = np.column_stack(
        [
            table["x_nm"].to_numpy() / px,
            table["y_nm"].to_numpy() / px,
            table["frame"].to_numpy() * 1e6,
        ]
    )
    if len(points) < 2:
        return np.full(len(points), np.inf)
    return cKDTree(points).query(points, k=2)[0][:, 1]


def add_localizer_uncertainty(localizer, frames, table):
    """Give every row of a CNN localizer's table photons, background, uncertainty.

    The hook of :meth:`DistanceTransformLocalizer.predict`, after the optional
    refinement: rows refined by a good fit get the fit's Cramer-Rao bound
    with the calibrated crowding term (:data:`FIT_UNCERTAINTY_CALIBRATION`);
    the others get :func:`estimate_uncertainty`.
    The camera is the localizer's ``camera`` where it has one, else the
    refiner's (hybrid mode), else the normalizer's where it is calibrated
    (``e_per_adu`` given), else unknown: the effective gain is then measured
    from the frames (see the module docstring).

    Parameters
    ----------
    localizer : DistanceTransformLocalizer
        Fitted; its ``pixel_size_nm``, ``refiner`` and ``normalizer_`` are read.
    frames : ndarray of shape (n_frames, height, width)
        The frames of the table (``frame`` indexes them), in ADU.
    table : pandas.DataFrame

    Returns
    -------
    table : pandas.DataFrame
    """
    if not len(table) or min(frames.shape[1:]) < _BOX:
        for name in ("photons", "background", "uncertainty_nm"):
            if name not in table:
                table[name] = np.full(len(table), np.nan)
        return table
    camera = {"baseline_adu": 100.0}
    shared = getattr(localizer, "camera", None)  # a sklearn_smlm.Camera
    source = localizer.refiner
    if source is None:
        source = getattr(localizer, "normalizer_", None)
    if shared is not None and hasattr(shared, "e_per_adu"):
        # per-pixel maps (sCMOS) enter through their means: the estimate
        # is a calibrated approximation, not a per-pixel likelihood
        for name in ("baseline_adu", "e_per_adu", "em_gain", "quantum_efficiency"):
            camera[name] = float(np.mean(getattr(shared, name)))
    elif source is not None and getattr(source, "e_per_adu", None) is not None:
        for name in ("baseline_adu", "e_per_adu", "em_gain", "quantum_efficiency"):
            value = getattr(source, name, None)
            if value is not None:
                camera[name] = float(value)
    elif source is not None and getattr(source, "baseline_adu", None) is not None:
        camera["baseline_adu"] = float(source.baseline_adu)
    sigma_nm = 110.0
    if localizer.refiner is not None and localizer.refiner.psf_sigma_nm is not None:
        sigma_nm = float(localizer.refiner.psf_sigma_nm)
    return estimate_uncertainty(
        frames,
        table,
        pixel_size_nm=localizer.pixel_size_nm,
        psf_sigma_nm=sigma_nm,
        fit_calibration=FIT_UNCERTAINTY_CALIBRATION,
        **camera,
    )
