"""Astigmatic 3D fits: elliptical Gaussians and a direct (x, y, z) fit with its CRLB.

An astigmatic PSF is modelled as a pixel-integrated Gaussian with different
widths along x and y, ``sigma_x(z)`` and ``sigma_y(z)`` given by a calibration
(:class:`~sklearn_smlm.calibration.AstigmaticCalibration`). Box and pixel
conventions are those of :mod:`sklearn_smlm.fitting._gauss`: pixel ``(i, j)``
of a ``B x B`` box has its centre at box coordinates ``(y, x) = (i, j)``.

Two models are fitted, one emitter per box, by maximum likelihood under
Poisson noise (Levenberg-Marquardt with the expected Hessian, all boxes of a
batch at once):

- ``"ellipse"``: ``[x, y, N, bg, sx, sy]``, both widths free (in pixels);
- ``"z"``: ``[x, y, N, bg, z]``, the widths fixed by the calibration at ``z``
  (in nm), the direct fit of Huang et al. 2008 / Smith et al. 2010.

:class:`AstigmaticFitLocalizer` detects spots as
:class:`~sklearn_smlm.fitting.GaussianFitLocalizer` does, fits the ``"z"``
model from the best start of a grid over the calibrated range and reports
``z_nm`` with its Cramer-Rao lower bound ``uncertainty_z_nm``.
"""

import numbers
import warnings

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.special import erf
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._validation import check_frames, check_positive
from ._detect import detect_candidates
from ._gauss import crlb
from ._localizer import _box_members

__all__ = [
    "AstigmaticFitLocalizer",
    "astigmatic_model",
    "ASTIG_COLUMNS",
    "elliptical_model",
    "fit_elliptical",
    "fit_z",
]

#: Columns of the table returned by :meth:`AstigmaticFitLocalizer.predict`.
ASTIG_COLUMNS = (
    "frame",
    "x_nm",
    "y_nm",
    "z_nm",
    "photons",
    "background",
    "sigma_x_nm",
    "sigma_y_nm",
    "uncertainty_nm",
    "uncertainty_z_nm",
    "deviance_ratio",
    "score",
)

#: Status code -> reason of a fit that is not kept (0 is a good fit).
ASTIG_STATUS_REASONS = {
    1: "saturated",
    2: "no_signal",
    3: "not_converged",
    4: "outside_box",
    5: "z_out_of_range",
    6: "poor_fit",
    7: "duplicate",
}

_SQRT2 = np.sqrt(2.0)
_SQRT_PI = np.sqrt(np.pi)
_SQRT_2PI = np.sqrt(2.0 * np.pi)
_MIN_PHOTONS = 1e-3
_MIN_BACKGROUND = 1e-6
_MIN_SIGMA_PX = 0.3
_CHUNK = 4096
# z grid of the starting values: this many depths over the calibrated range
_N_Z_STARTS = 31
# joint fits include candidates up to this far outside the box (pixels):
# a defocused neighbour's light reaches that far in
_NEIGHBOUR_MARGIN_PX = 3.0
# boxes fitted this badly (deviance ratio) are tried with a second emitter,
# kept when the deviance falls by more than this (a chi-square of 4 extra
# parameters reaches 25 with probability ~5e-5)
_SPLIT_FROM_RATIO = 1.3
_SPLIT_MIN_GAIN = 25.0
# a fit has converged when an undamped step lowers the negative
# log-likelihood by less than this (the parameters are then within about
# sqrt(2 * 1e-4) = 0.014 standard deviations of the optimum)
_FLAT_NLL = 1e-4
# warn when more than this fraction of the fits is dropped as poor fits
_POOR_FIT_WARNING = 0.25
# a maximum of the residual frames this close (pixels) to a fitted spot or a
# candidate is that spot's misfit, not a new emitter
_RESIDUAL_MIN_PX = 1.5
# two kept fits of one frame closer than this (pixels) are one emitter fitted
# twice (two candidates on one spot): the brighter is kept
_DUPLICATE_PX = 1.5
# the shipped CNN that localizes astigmatic 3D data (named by that warning)
_CNN_3D_MODEL = "astig_3d"


def _axis(pos, sigma, size, derivs):
    """Pixel-integrated 1D Gaussians; pos, sigma (n,) -> E, dE/dpos, dE/dsigma."""
    edges = np.arange(size + 1, dtype=np.float64) - 0.5
    s = sigma[:, None]
    t = (edges - pos[:, None]) / (_SQRT2 * s)
    e = 0.5 * np.diff(erf(t), axis=-1)
    if not derivs:
        return e, None, None
    g = np.exp(-(t * t))
    d_pos = -np.diff(g, axis=-1) / (_SQRT_2PI * s)
    d_sigma = -np.diff(t * g, axis=-1) / (_SQRT_PI * s)
    return e, d_pos, d_sigma


def _elliptical(x, y, n, bg, sx, sy, size, derivs):
    """Model and the derivatives by x, y, N, bg, sx, sy, parameter-major."""
    ex, dex, dsx = _axis(x, sx, size, derivs)
    ey, dey, dsy = _axis(y, sy, size, derivs)
    psf = ey[:, :, None] * ex[:, None, :]
    mu = bg[:, None, None] + n[:, None, None] * psf
    if not derivs:
        return mu, None
    m, npx = len(x), size * size
    nn = n[:, None, None]
    jac_t = np.empty((m, 6, npx))
    jac_t[:, 0] = (nn * ey[:, :, None] * dex[:, None, :]).reshape(m, npx)
    jac_t[:, 1] = (nn * dey[:, :, None] * ex[:, None, :]).reshape(m, npx)
    jac_t[:, 2] = psf.reshape(m, npx)
    jac_t[:, 3] = 1.0
    jac_t[:, 4] = (nn * ey[:, :, None] * dsx[:, None, :]).reshape(m, npx)
    jac_t[:, 5] = (nn * dsy[:, :, None] * ex[:, None, :]).reshape(m, npx)
    return mu, jac_t


def elliptical_model(params, size, jacobian=False):
    """Return the expected counts of an elliptical integrated Gaussian in boxes.

    Parameters
    ----------
    params : ndarray of shape (n, 6)
        ``[x, y, N, bg, sx, sy]``: position and widths in pixels, ``N`` the
        counts of the spot, ``bg`` per pixel.
    size : int
        Box side in pixels.
    jacobian : bool, default=False
        Also return the derivatives, shape (n, size * size, 6).

    Returns
    -------
    mu : ndarray of shape (n, size, size)
    jac : ndarray of shape (n, size * size, 6)
        Only with ``jacobian``.

    Examples
    --------
    >>> import numpy as np
    >>> mu = elliptical_model(np.array([[5.0, 5.0, 1000.0, 0.0, 1.0, 2.0]]), 11)
    >>> round(float(mu.sum()), 1)  # the tails of the 2-pixel y width leave the box
    994.0
    >>> bool(mu[0, 2, 5] > mu[0, 5, 2])  # wider along y (rows) than along x
    True
    """
    p = np.asarray(params, dtype=np.float64)
    mu, jac_t = _elliptical(*p.T, size, jacobian)
    return (mu, jac_t.transpose(0, 2, 1)) if jacobian else mu


def astigmatic_model(params, size, widths, *, pixel_size_nm, jacobian=False):
    """Return the expected counts of astigmatic spots at depths ``z`` in boxes.

    The model :func:`fit_z` fits: an elliptical integrated Gaussian whose two
    widths come from the calibration at each spot's depth.

    Parameters
    ----------
    params : ndarray of shape (n, 5)
        ``[x, y, N, bg, z]``: position in pixels, ``N`` the counts of the
        spot, ``bg`` per pixel, ``z`` in nm (the layout of :func:`fit_z`).
    size : int
        Box side in pixels.
    widths : callable
        ``widths(z_nm) -> (sigma_x_nm, sigma_y_nm, dsigma_x_dz, dsigma_y_dz)``,
        e.g. :meth:`AstigmaticCalibration.widths
        <sklearn_smlm.calibration.AstigmaticCalibration.widths>` with
        ``derivative=True``.
    pixel_size_nm : float
    jacobian : bool, default=False
        Also return the derivatives, shape (n, size * size, 5), the layout
        :func:`~sklearn_smlm.fitting.crlb` takes: ``crlb(mu, jac)[:, 4]`` is
        the variance bound of ``z`` (nm^2) of each spot with these values.

    Returns
    -------
    mu : ndarray of shape (n, size, size)
    jac : ndarray of shape (n, size * size, 5)
        Only with ``jacobian``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.calibration import AstigmaticCalibration
    >>> from sklearn_smlm.fitting import crlb
    >>> cal = AstigmaticCalibration.from_parameters(
    ...     x=dict(sigma0_nm=110.0, focus_nm=-250.0, depth_nm=450.0),
    ...     y=dict(sigma0_nm=110.0, focus_nm=250.0, depth_nm=450.0),
    ...     z_range_nm=(-750.0, 750.0))
    >>> p = np.array([[5.0, 5.0, 2000.0, 20.0, 0.0]])
    >>> mu, jac = astigmatic_model(p, 11, lambda z: cal.widths(z, derivative=True),
    ...                            pixel_size_nm=100.0, jacobian=True)
    >>> bound_z_nm = float(np.sqrt(crlb(mu, jac)[0, 4]))
    >>> 10 < bound_z_nm < 40
    True
    """
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 5:
        raise ValueError(f"params must have shape (n, 5), got {p.shape}.")
    px = float(check_positive(pixel_size_nm, "pixel_size_nm"))
    model = _ZModel(widths, px, (-np.inf, np.inf))
    mu, jac_t = model(p, int(size), jacobian)
    return (mu, jac_t.transpose(0, 2, 1)) if jacobian else mu


class _ZModel:
    """``k`` emitters ``[x, y, N, z] * k + [bg]``; widths from ``widths(z)``.

    For ``k = 1`` the layout is ``[x, y, N, bg, z]`` (bg before z), the
    public layout of :func:`fit_z`.
    """

    def __init__(self, widths, pixel_size_nm, z_bounds_nm, k=1, margin=0.0):
        self.widths = widths
        self.margin = margin
        self.px = float(pixel_size_nm)
        self.z_bounds = z_bounds_nm
        self.k = k
        if k == 1:
            self.x, self.y, self.n, self.z, self.bg = [0], [1], [2], [4], 3
        else:
            base = 4 * np.arange(k)
            self.x, self.y, self.n, self.z = (list(base + i) for i in range(4))
            self.bg = 4 * k
        self.pos_cols = self.x + self.y
        self.n_cols = self.n
        self.shape_cols = self.z
        # z is in nm: it has converged when it moves less than tol_px pixels
        self.shape_scale = self.px

    def __call__(self, p, size, derivs):
        m, npx = len(p), size * size
        mu = np.repeat(p[:, self.bg, None, None], size, axis=1).repeat(size, axis=2)
        jac_t = np.empty((m, p.shape[1], npx)) if derivs else None
        zero = np.zeros(m)
        for e in range(self.k):
            z = p[:, self.z[e]]
            sx, sy, dsx, dsy = self.widths(z)
            sx, sy = sx / self.px, sy / self.px
            mu_e, j6 = _elliptical(
                p[:, self.x[e]],
                p[:, self.y[e]],
                p[:, self.n[e]],
                zero,
                sx,
                sy,
                size,
                derivs,
            )
            mu += mu_e
            if derivs:
                jac_t[:, self.x[e]] = j6[:, 0]
                jac_t[:, self.y[e]] = j6[:, 1]
                jac_t[:, self.n[e]] = j6[:, 2]
                jac_t[:, self.z[e]] = (
                    j6[:, 4] * (dsx / self.px)[:, None]
                    + j6[:, 5] * (dsy / self.px)[:, None]
                )
        if derivs:
            jac_t[:, self.bg] = 1.0
        return mu, jac_t

    def clip(self, p, size):
        m = self.margin
        p[:, self.pos_cols] = np.clip(p[:, self.pos_cols], -1.0 - m, size + m)
        p[:, self.n_cols] = np.maximum(p[:, self.n_cols], _MIN_PHOTONS)
        p[:, self.bg] = np.maximum(p[:, self.bg], _MIN_BACKGROUND)
        p[:, self.z] = np.clip(p[:, self.z], *self.z_bounds)
        return p


class _EllipseModel:
    pos_cols, n_cols, shape_cols = [0, 1], [2], [4, 5]
    shape_scale = 1.0

    def __call__(self, p, size, derivs):
        return _elliptical(*p.T, size, derivs)

    @staticmethod
    def clip(p, size):
        p[:, 0:2] = np.clip(p[:, 0:2], -1.0, size)
        p[:, 2] = np.maximum(p[:, 2], _MIN_PHOTONS)
        p[:, 3] = np.maximum(p[:, 3], _MIN_BACKGROUND)
        p[:, 4:6] = np.clip(p[:, 4:6], _MIN_SIGMA_PX, size)
        return p


def _nll(data, mu):
    # Poisson negative log-likelihood without the parameter-free log(d!) term
    return (mu - data * np.log(mu)).sum(axis=(1, 2))


def _lm(data, init, model, max_iter, tol_px):
    """Batched Levenberg-Marquardt on the Poisson likelihood (Fisher scoring).

    The boxes still running form a compact working set, shrunk whenever some
    finish, so that every iteration touches only their rows.
    """
    size = data.shape[-1]
    data = np.maximum(np.asarray(data, dtype=np.float64), 0.0)
    n, n_par = init.shape
    p = model.clip(np.array(init, dtype=np.float64), size)
    mu, jac = model(p, size, True)
    converged = np.zeros(n, dtype=bool)
    eye = np.eye(n_par)
    idx = np.arange(n)
    p_w, mu_w, jac_w = p.copy(), mu.copy(), jac.copy()
    d_w = data
    cost_w = _nll(d_w, mu_w)
    lam_w = np.full(n, 1e-3)
    for _ in range(max_iter):
        if not len(idx):
            break
        m = mu_w.reshape(len(idx), -1)
        grad = np.matmul(jac_w, (1.0 - d_w.reshape(len(idx), -1) / m)[:, :, None])
        hess = np.matmul(jac_w / m[:, None, :], jac_w.transpose(0, 2, 1))
        diag = np.einsum("nii->ni", hess)
        floor = 1e-9 * np.maximum(diag.max(axis=1, keepdims=True), 1e-12)
        a = hess + (lam_w[:, None] * np.maximum(diag, floor))[:, :, None] * eye
        try:
            step = np.linalg.solve(a, -grad)[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.stack(
                [
                    np.linalg.lstsq(a[i], -grad[i, :, 0], rcond=None)[0]
                    for i in range(len(a))
                ]
            )
        trial = model.clip(p_w + step, size)
        mu_t, jac_t = model(trial, size, True)
        with np.errstate(invalid="ignore", divide="ignore"):
            cost_t = _nll(d_w, mu_t)
        better = np.isfinite(cost_t) & (cost_t <= cost_w)
        # an undamped step that lowers the log-likelihood by less than this
        # leaves the parameters a tiny fraction of their uncertainty away from
        # the optimum: Fisher scoring's slow last steps need not be waited for
        flat = better & (cost_w - cost_t < _FLAT_NLL) & (lam_w <= 1.0)
        moved = np.abs(trial - p_w)
        worse = ~better
        # most steps are accepted: keep the trial arrays, put back the others
        trial[worse], mu_t[worse], jac_t[worse] = p_w[worse], mu_w[worse], jac_w[worse]
        cost_t[worse] = cost_w[worse]
        p_w, mu_w, jac_w, cost_w = trial, mu_t, jac_t, cost_t
        lam_w = np.where(better, np.maximum(lam_w * 0.1, 1e-7), lam_w * 10.0)
        rel_n = moved[:, model.n_cols] / np.maximum(np.abs(p_w[:, model.n_cols]), 1e-12)
        small = (
            (moved[:, model.pos_cols].max(axis=1) < tol_px)
            & (rel_n.max(axis=1) < tol_px)
            & (moved[:, model.shape_cols].max(axis=1) < tol_px * model.shape_scale)
        )
        # a damping this large means no step lowers the cost any more
        done = (better & small) | flat | (lam_w > 1e9)
        if done.any():
            fin = idx[done]
            converged[fin] = True
            p[fin], mu[fin], jac[fin] = p_w[done], mu_w[done], jac_w[done]
            keep = ~done
            idx = idx[keep]
            p_w, mu_w, jac_w = p_w[keep], mu_w[keep], jac_w[keep]
            cost_w, lam_w, d_w = cost_w[keep], lam_w[keep], d_w[keep]
    p[idx], mu[idx], jac[idx] = p_w, mu_w, jac_w
    return p, converged, mu, jac


def _deviance(data, mu):
    """Poisson deviance of every box: 2 sum(mu - d + d log(d / mu))."""
    d = np.maximum(np.asarray(data, dtype=np.float64), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(d > 0, d * np.log(d / mu), 0.0)
    return 2.0 * (mu - d + term).sum(axis=(1, 2))


def _crlb(mu, jac_t, excess_noise):
    """:func:`~sklearn_smlm.fitting.crlb` of parameter-major derivatives."""
    return crlb(mu, jac_t.transpose(0, 2, 1), excess_noise)


def fit_elliptical(data, init, *, max_iter=50, tol_px=1e-4, excess_noise=1.0):
    """Fit elliptical integrated Gaussians (both widths free) to many boxes.

    Parameters
    ----------
    data : ndarray of shape (n, B, B)
        Counts in photoelectrons.
    init : ndarray of shape (n, 6)
        Starting ``[x, y, N, bg, sx, sy]`` (pixels, counts).
    max_iter : int, default=50
    tol_px : float, default=1e-4
        Convergence: an accepted step moves the position by less than this
        (and the counts by less than ``tol_px`` relatively).
    excess_noise : float, default=1.0
        Variance factor of the counts (2 for an EMCCD), applied to the CRLB.

    Returns
    -------
    params : ndarray of shape (n, 6)
    converged : ndarray of bool of shape (n,)
    variance : ndarray of shape (n, 6)
        Cramer-Rao lower bound of every parameter at the solution.

    Examples
    --------
    >>> import numpy as np
    >>> true = np.array([[5.2, 4.9, 3000.0, 5.0, 1.2, 1.9]])
    >>> p, ok, var = fit_elliptical(elliptical_model(true, 11),
    ...                             np.array([[5.0, 5.0, 2000.0, 3.0, 1.5, 1.5]]))
    >>> bool(ok[0]), np.round(p[0], 3).tolist()
    (True, [5.2, 4.9, 3000.0, 5.0, 1.2, 1.9])
    """
    p, conv, mu, jac = _lm(data, init, _EllipseModel(), max_iter, tol_px)
    return p, conv, _crlb(mu, jac, excess_noise)


def fit_z(
    data,
    init,
    widths,
    *,
    pixel_size_nm,
    z_bounds_nm,
    max_iter=50,
    tol_px=1e-4,
    excess_noise=1.0,
):
    """Fit ``[x, y, N, bg, z]`` with calibrated astigmatic widths to many boxes.

    Parameters
    ----------
    data : ndarray of shape (n, B, B)
        Counts in photoelectrons.
    init : ndarray of shape (n, 5)
        Starting ``[x, y, N, bg, z]``: position in pixels, ``z`` in nm.
    widths : callable
        ``widths(z_nm) -> (sigma_x_nm, sigma_y_nm, dsigma_x_dz, dsigma_y_dz)``,
        e.g. :meth:`AstigmaticCalibration.widths
        <sklearn_smlm.calibration.AstigmaticCalibration.widths>` with
        ``derivative=True``.
    pixel_size_nm : float
    z_bounds_nm : (float, float)
        ``z`` is kept inside these bounds during the fit.
    max_iter, tol_px, excess_noise
        As in :func:`fit_elliptical`.

    Returns
    -------
    params : ndarray of shape (n, 5)
    converged : ndarray of bool of shape (n,)
    variance : ndarray of shape (n, 5)
        Cramer-Rao lower bound; ``variance[:, 4]`` is that of ``z`` in nm^2.
    deviance : ndarray of shape (n,)
        Poisson deviance ``2 sum(mu - d + d log(d / mu))`` of every box at
        the solution (about ``excess_noise * B * B`` for a good fit).
    """
    model = _ZModel(widths, pixel_size_nm, z_bounds_nm)
    p, conv, mu, jac = _lm(data, init, model, max_iter, tol_px)
    return p, conv, _crlb(mu, jac, excess_noise), _deviance(data, mu)


def z_start_grid(data, xy, widths, *, pixel_size_nm, z_grid_nm):
    """Best starting ``[x, y, N, bg, z]`` of every box over a grid of depths.

    For every depth of the grid the PSF shape is fixed; photons and
    background then follow by linear least squares, and the depth with the
    smallest Poisson deviance is kept.
    """
    n, size = len(data), data.shape[-1]
    flat = np.maximum(data.reshape(n, -1), 0.0)
    best = np.full(n, np.inf)
    out = np.zeros((n, 5))
    out[:, :2] = xy
    sx_all, sy_all = widths(np.asarray(z_grid_nm, dtype=np.float64))[:2]
    for z, sx, sy in zip(z_grid_nm, sx_all, sy_all, strict=True):
        ex = _axis(xy[:, 0], np.full(n, sx / pixel_size_nm), size, False)[0]
        ey = _axis(xy[:, 1], np.full(n, sy / pixel_size_nm), size, False)[0]
        psf = (ey[:, :, None] * ex[:, None, :]).reshape(n, -1)
        # least squares of data = bg + N * psf, closed form per box
        npx = psf.shape[1]
        s1, s2 = psf.sum(axis=1), (psf * psf).sum(axis=1)
        sd, d1 = (psf * flat).sum(axis=1), flat.sum(axis=1)
        det = npx * s2 - s1 * s1
        photons = np.maximum((npx * sd - s1 * d1) / det, 1.0)
        bg = np.maximum((d1 - photons * s1) / npx, _MIN_BACKGROUND)
        mu = bg[:, None] + photons[:, None] * psf
        cost = (mu - flat * np.log(mu)).sum(axis=1)
        better = cost < best
        best[better] = cost[better]
        out[better, 2] = photons[better]
        out[better, 3] = bg[better]
        out[better, 4] = z
    return out


def _centroid_xy(data):
    """Start positions: centroid of the background-subtracted 3x3 peak area."""
    size = data.shape[-1]
    ring = np.concatenate(
        [data[:, 0, :], data[:, -1, :], data[:, 1:-1, 0], data[:, 1:-1, -1]], axis=1
    )
    bg = np.median(ring, axis=1)
    signal = np.maximum(data - bg[:, None, None], 0.0)
    c = size // 2
    patch = signal[:, c - 1 : c + 2, c - 1 : c + 2]
    total = patch.sum(axis=(1, 2))
    safe = np.where(total > 0, total, 1.0)
    d = np.arange(-1, 2)
    dy = np.where(total > 0, (patch.sum(axis=2) * d).sum(axis=1) / safe, 0.0)
    dx = np.where(total > 0, (patch.sum(axis=1) * d).sum(axis=1) / safe, 0.0)
    return np.column_stack([c + dx, c + dy]), bg, signal.sum(axis=(1, 2))


def _residual_candidates(frames, fitted, widths, bounds, px, e_per_count, detect, old):
    """Candidates found in the frames minus the fitted spots (in ADU).

    Only good fits are subtracted (converged, inside their box, depth inside
    the bounds); a residual maximum within :data:`_RESIDUAL_MIN_PX` pixels of
    a fitted spot or of an earlier candidate is not new. Returns ``frame,
    row, col, strength`` of the new candidates.
    """
    boxes, r0, c0, data, params, var, conv, dev, extra = fitted
    f, row, col = old
    size = boxes.shape[-1]
    x, y, z = params[:, 0], params[:, 1], params[:, 4]
    good = conv & np.isfinite(params).all(axis=1)
    good &= (x >= -0.5) & (x <= size - 0.5) & (y >= -0.5) & (y <= size - 0.5)
    good &= (z > bounds[0] + 1.0) & (z < bounds[1] - 1.0)
    idx = np.flatnonzero(good)
    spots = params[idx].copy()
    spots[:, 3] = 0.0  # the spot alone, no background
    mu = _ZModel(widths, px, bounds)(spots, size, False)[0] / e_per_count
    resid = np.array(frames, dtype=np.float32, copy=True)
    ar = np.arange(size)
    rows = (r0[idx, None] + ar)[:, :, None]
    cols = (c0[idx, None] + ar)[:, None, :]
    np.subtract.at(resid, (f[idx, None, None], rows, cols), mu.astype(np.float32))
    f2, row2, col2, s2 = detect_candidates(resid, **detect)
    if not len(f2):
        return f2, row2, col2, s2
    spacing = 10.0 * (frames.shape[1] + frames.shape[2])
    known = np.concatenate(
        [
            np.column_stack([c0[idx] + x[idx], r0[idx] + y[idx], f[idx] * spacing]),
            np.column_stack([col, row, f * spacing]),
        ]
    )
    d, _ = cKDTree(known).query(np.column_stack([col2, row2, f2 * spacing]))
    new = d > _RESIDUAL_MIN_PX
    return f2[new], row2[new], col2[new], s2[new]


def _duplicates(f, x, y, n, keep, min_px=_DUPLICATE_PX):
    """Kept fits within ``min_px`` of a brighter kept fit of their frame."""
    out = np.zeros(len(f), dtype=bool)
    idx = np.flatnonzero(keep)
    if len(idx) < 2:
        return out
    spacing = 10.0 * (np.ptp(x[idx]) + np.ptp(y[idx]) + 10.0)
    pts = np.column_stack([x[idx], y[idx], f[idx] * spacing])
    pairs = cKDTree(pts).query_pairs(r=min_px, output_type="ndarray")
    if not len(pairs):
        return out
    # brightest first: a fit is dropped when a brighter one was kept
    order = np.argsort(-n[idx], kind="stable")
    rank = np.empty(len(idx), dtype=np.int64)
    rank[order] = np.arange(len(idx))
    partners = {}
    for a, b in pairs:
        hi, lo = (a, b) if rank[a] < rank[b] else (b, a)
        partners.setdefault(hi, []).append(lo)
    dropped = np.zeros(len(idx), dtype=bool)
    for i in order:
        if not dropped[i]:
            for j in partners.get(i, ()):
                dropped[j] = True
    out[idx[dropped]] = True
    return out


def _dense_remedy():
    """Name what to use for data too dense for the classical 3D fit."""
    from .._persistence import pretrained_names

    if _CNN_3D_MODEL in pretrained_names():
        return (
            f"the CNN 3D model (DistanceTransformLocalizer.pretrained("
            f"{_CNN_3D_MODEL!r}))"
        )
    return "a DistanceTransformLocalizer trained on astigmatic frames"


def _not_duplicates(f, x, y, f_new, x_new, y_new, min_px=1.0):
    """Whether each new position is farther than ``min_px`` from all others.

    Others are the kept positions ``(f, x, y)`` and the earlier new ones.
    """
    keep = np.ones(len(f_new), dtype=bool)
    if not len(f_new):
        return keep
    spacing = 1e4
    tree = cKDTree(np.column_stack([x, y, f * spacing])) if len(f) else None
    points = np.column_stack([x_new, y_new, f_new * spacing])
    if tree is not None:
        d, _ = tree.query(points, k=1)
        keep &= d > min_px
    chosen = []
    for i in np.flatnonzero(keep):
        if any(
            np.hypot(*(points[i, :2] - points[j, :2])) <= min_px
            and f_new[i] == f_new[j]
            for j in chosen
        ):
            keep[i] = False
        else:
            chosen.append(i)
    return keep


def cut_boxes(frames, f, row, col, size):
    """Cut ``size`` boxes centred on ``(row, col)``, shifted inwards at the border."""
    h, w = frames.shape[1:]
    r0 = np.clip(row - size // 2, 0, h - size)
    c0 = np.clip(col - size // 2, 0, w - size)
    ar = np.arange(size)
    boxes = frames[
        f[:, None, None], (r0[:, None] + ar)[:, :, None], (c0[:, None] + ar)[:, None, :]
    ]
    return boxes.astype(np.float64), r0, c0


class AstigmaticFitLocalizer(BaseEstimator):
    """Classical 3D localizer for astigmatic PSFs: detect, then fit x, y and z.

    Spots are detected as in :class:`~sklearn_smlm.fitting.GaussianFitLocalizer`
    (wavelet or difference-of-Gaussians filter, threshold in units of the
    noise). Every candidate's box is fitted by maximum likelihood under
    Poisson noise with the calibrated astigmatic model: a pixel-integrated
    Gaussian of widths ``sigma_x(z)``, ``sigma_y(z)`` taken from
    ``calibration``, free parameters ``x, y, z``, photons and background. The
    fit starts from the best of a grid of depths over the calibrated range,
    so it does not fall into the mirror solution; ``z_nm`` and its Cramer-Rao
    bound ``uncertainty_z_nm`` are reported.

    Parameters
    ----------
    calibration : AstigmaticCalibration
        A fitted calibration (from beads, :meth:`~sklearn_smlm.calibration.\
AstigmaticCalibration.from_parameters`, a saved file or a Picasso file).
    pixel_size_nm : float, default=100.0
        Camera pixel size in the sample plane.
    baseline_adu : float, default=100.0
        Camera offset.
    e_per_adu : float, default=1.0
        Photoelectrons per ADU (before the EM gain is divided out).
    em_gain : float, default=1.0
        EM gain; above 1 means an EMCCD (excess noise factor 2).
    quantum_efficiency : float, default=1.0
        Divides the fitted counts to report photons.
    box_size : int, default=11
        Side of the fitted box in pixels; a defocused astigmatic spot is
        wide, so larger than for 2D fits.
    detection : {"wavelet", "dog"}, default="wavelet"
    threshold : float, default=4.0
        Detection threshold in units of the noise std of the filtered image.
    max_iter : int, default=300
        Levenberg-Marquardt iterations per box. Joint fits of two or three
        emitters converge slowly (Fisher scoring is linear near the
        optimum): at 100, 40-70 % of them had not converged on
        ``"low_density_as"`` and fell back to single fits.
    max_emitters : int, default=3
        A box that holds other candidates of its frame is refitted with them
        jointly (one shared background, each emitter its own ``x, y, z`` and
        photons), up to this many emitters, the nearest first; 1 fits every
        box alone.
    keep_split_emitters : bool, default=False
        A fit that explains its box badly is tried with a second emitter at
        the peak of its residual (an emitter too close to be detected); the
        pair's fit replaces the single one where it is clearly better. With
        True the second emitter is reported too (unless it duplicates a
        localization): more recall in dense frames (``"mt0_n1_as_2016"``, 30
        frames, no deviance filter: Jaccard 0.36 -> 0.40) at a cost in z
        accuracy (``"low_density_as"``: recall 0.83 -> 0.86, z RMSE 76 ->
        80 nm).
    residual_detection : bool, default=False
        After the fits, the fitted spots are subtracted from the frames and
        the residual frames are searched again: an emitter hidden next to a
        brighter one (one detection for two spots) becomes a candidate of
        its own, and every candidate is fitted again, neighbours jointly.
        Costs a second pass of the fits (2-4x the time). Only with
        ``max_emitters`` above 1. On ``"low_density_as"`` (600 frames,
        ``max_iter=300``, ``max_deviance_ratio=2.0``; two development runs)
        recall rose from 0.845 to 0.861 but precision fell from 0.941 to
        0.928 and the z RMSE rose from 78.4 to 80.0 nm: off by default.
    max_deviance_ratio : float or None, default=1.5
        Fits whose Poisson deviance exceeds this multiple of its expectation
        for a correct model (``excess_noise * box_size**2``) are dropped
        (``"poor_fit"``): mostly boxes holding a second emitter, whose depth
        comes out wrong. On the ``"low_density_as"`` preset (600 frames,
        ``max_iter=300``) the axial RMSE of the matched fits was 78.1 nm
        (1.34x the CRLB of an isolated emitter in its box, recall 0.855)
        with 2.0, 76.4 nm (1.31x, recall 0.844) with 1.6 and 75.4 nm (1.29x,
        recall 0.839) with 1.5. None keeps every fit. A limit that grows
        with the spot's brightness was no better, there or in dense frames
        (at equal axial RMSE it kept fewer fits).
        In dense frames most boxes hold overlapping spots and most fits are
        poor: when more than a quarter is dropped, a warning says so.
    saturation_adu : float or None, default=None
        Boxes with a pixel at or above it are dropped; None: the top of the
        integer range for integer frames.
    camera : Camera, optional
        The camera as one :class:`~sklearn_smlm.Camera` (scalar values); when
        given, its values replace ``baseline_adu``, ``e_per_adu``,
        ``em_gain``, ``quantum_efficiency`` and (if set) ``saturation_adu``.

    Attributes
    ----------
    e_per_count_ : float
        Photoelectrons per ADU above the baseline.
    excess_noise_ : float
        2 for an EMCCD, else 1.
    z_range_nm_ : (float, float)
        Calibrated axial range. The fit may extrapolate the curves by 10 %
        of the range beyond either end; fits that reach that bound are
        dropped (``"z_out_of_range"``).

    Notes
    -----
    Output columns (:data:`ASTIG_COLUMNS`): ``frame``, ``x_nm``, ``y_nm``,
    ``z_nm``, ``photons``, ``background``, ``sigma_x_nm`` and ``sigma_y_nm``
    (the calibrated widths at ``z_nm``), ``uncertainty_nm`` (lateral CRLB,
    ``sqrt((var_x + var_y) / 2)``), ``uncertainty_z_nm`` (axial CRLB), both
    times ``sqrt(2)`` for an EMCCD, ``deviance_ratio`` (Poisson deviance of
    the box over its expectation, about 1 for a good fit) and ``score``
    (detection strength).
    Dropped fits are counted by reason in ``table.attrs["n_dropped"]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.calibration import AstigmaticCalibration
    >>> from sklearn_smlm.fitting import AstigmaticFitLocalizer
    >>> from sklearn_smlm.fitting._astig import elliptical_model
    >>> cal = AstigmaticCalibration.from_parameters(
    ...     x=dict(sigma0_nm=110.0, focus_nm=-200.0, depth_nm=400.0),
    ...     y=dict(sigma0_nm=110.0, focus_nm=200.0, depth_nm=400.0),
    ...     z_range_nm=(-600.0, 600.0))
    >>> sx, sy = cal.widths([300.0])
    >>> spot = elliptical_model([[7.3, 6.8, 5000.0, 0.0, sx[0] / 100, sy[0] / 100]], 15)
    >>> frames = 100.0 + np.random.default_rng(0).poisson(spot + 10.0)
    >>> table = AstigmaticFitLocalizer(calibration=cal).fit().predict(frames)
    >>> round(float(table["z_nm"].iloc[0]), -2)
    300.0
    """

    def __init__(
        self,
        calibration=None,
        *,
        pixel_size_nm=100.0,
        baseline_adu=100.0,
        e_per_adu=1.0,
        em_gain=1.0,
        quantum_efficiency=1.0,
        box_size=11,
        detection="wavelet",
        threshold=4.0,
        max_iter=300,
        max_emitters=3,
        max_deviance_ratio=1.5,
        keep_split_emitters=False,
        residual_detection=False,
        saturation_adu=None,
        camera=None,
    ):
        self.calibration = calibration
        self.pixel_size_nm = pixel_size_nm
        self.baseline_adu = baseline_adu
        self.e_per_adu = e_per_adu
        self.em_gain = em_gain
        self.quantum_efficiency = quantum_efficiency
        self.box_size = box_size
        self.detection = detection
        self.threshold = threshold
        self.max_iter = max_iter
        self.max_emitters = max_emitters
        self.max_deviance_ratio = max_deviance_ratio
        self.keep_split_emitters = keep_split_emitters
        self.residual_detection = residual_detection
        self.saturation_adu = saturation_adu
        self.camera = camera

    def _validate(self):
        cal = self.calibration
        if cal is None or not hasattr(cal, "widths") or not hasattr(cal, "z_range_nm_"):
            raise ValueError(
                "calibration must be a fitted AstigmaticCalibration (from beads, "
                "AstigmaticCalibration.from_parameters, .load or .from_picasso), "
                f"got {type(cal).__name__}."
            )
        cam = self._camera_values()
        check_positive(self.pixel_size_nm, "pixel_size_nm")
        for name in ("e_per_adu", "em_gain", "quantum_efficiency"):
            check_positive(cam[name], name)
        if isinstance(cam["baseline_adu"], bool) or not isinstance(
            cam["baseline_adu"], numbers.Real
        ):
            raise TypeError(
                f"baseline_adu must be a number, got {cam['baseline_adu']!r}."
            )
        if cam["quantum_efficiency"] > 1:
            raise ValueError(
                "quantum_efficiency must be in (0, 1], got "
                f"{cam['quantum_efficiency']!r}."
            )
        if cam["em_gain"] < 1:
            raise ValueError(f"em_gain must be >= 1, got {cam['em_gain']!r}.")
        check_positive(self.box_size, "box_size", integer=True)
        if self.box_size < 5:
            raise ValueError(f"box_size must be >= 5 pixels, got {self.box_size}.")
        if self.detection not in ("wavelet", "dog"):
            raise ValueError(
                f"detection must be 'wavelet' or 'dog', got {self.detection!r}."
            )
        check_positive(self.threshold, "threshold", allow_zero=True)
        check_positive(self.max_iter, "max_iter", integer=True)
        check_positive(self.max_emitters, "max_emitters", integer=True)
        if self.max_deviance_ratio is not None:
            check_positive(self.max_deviance_ratio, "max_deviance_ratio")
        if not isinstance(self.keep_split_emitters, (bool, np.bool_)):
            raise TypeError(
                "keep_split_emitters must be True or False, got "
                f"{self.keep_split_emitters!r}."
            )
        if not isinstance(self.residual_detection, (bool, np.bool_)):
            raise TypeError(
                "residual_detection must be True or False, got "
                f"{self.residual_detection!r}."
            )
        if cam["saturation_adu"] is not None and (
            isinstance(cam["saturation_adu"], bool)
            or not isinstance(cam["saturation_adu"], numbers.Real)
        ):
            raise TypeError(
                "saturation_adu must be a number or None, got "
                f"{cam['saturation_adu']!r}."
            )
        return cam

    def _camera_values(self):
        """Return the camera numbers: ``camera`` when given, else the shorthands."""
        values = {
            "baseline_adu": self.baseline_adu,
            "e_per_adu": self.e_per_adu,
            "em_gain": self.em_gain,
            "quantum_efficiency": self.quantum_efficiency,
            "saturation_adu": self.saturation_adu,
        }
        if self.camera is None:
            return values
        from ..camera import Camera

        if not isinstance(self.camera, Camera):
            raise TypeError(f"camera must be a Camera or None, got {self.camera!r}.")
        if self.camera.is_per_pixel:
            raise ValueError(
                "the astigmatic fit uses one baseline and gain for all pixels; "
                "give a Camera with scalar values (per-pixel sCMOS maps are not "
                "used by the fit)."
            )
        for name in ("baseline_adu", "e_per_adu", "em_gain", "quantum_efficiency"):
            values[name] = getattr(self.camera, name)
        if self.camera.saturation_adu is not None:
            values["saturation_adu"] = self.camera.saturation_adu
        return values

    def fit(self, X=None, y=None):
        """Check the parameters and the calibration; there is nothing to learn.

        Parameters
        ----------
        X : array-like of shape (n_frames, height, width), optional
            Only checked when given.
        y : ignored

        Returns
        -------
        self : AstigmaticFitLocalizer
        """
        cam = self._validate()
        if X is not None:
            check_frames(X)
        self.e_per_count_ = float(cam["e_per_adu"]) / float(cam["em_gain"])
        self.excess_noise_ = 2.0 if cam["em_gain"] > 1 else 1.0
        self.z_range_nm_ = tuple(float(v) for v in self.calibration.z_range_nm_)
        return self

    def predict(self, X, *, return_info=False):
        """Localize the spots of every frame in 3D.

        Parameters
        ----------
        X : array-like of shape (n_frames, height, width) or (height, width)
            Camera frames in ADU.
        return_info : bool, default=False
            Also return ``{"n_candidates": int, "n_dropped": {reason: count}}``.

        Returns
        -------
        table : pandas.DataFrame
            Columns :data:`ASTIG_COLUMNS`, one row per kept fit, frame order.
        info : dict
            Only with ``return_info``.
        """
        check_is_fitted(self)
        cam = self._validate()
        raw = X if hasattr(X, "dtype") else np.asarray(X)
        frames = check_frames(X, dtype=np.float32)
        saturation = cam["saturation_adu"]
        if saturation is None and np.issubdtype(raw.dtype, np.integer):
            saturation = float(np.iinfo(raw.dtype).max)
        size = int(self.box_size)
        h, w = frames.shape[1:]
        if h < size or w < size:
            raise ValueError(
                f"frames of {h}x{w} pixels are smaller than box_size={size}; use a "
                "smaller box or larger frames."
            )
        px = float(self.pixel_size_nm)
        cal = self.calibration
        z_lo, z_hi = self.z_range_nm_
        sx0, sy0 = cal.widths([0.5 * (z_lo + z_hi)])
        sigma_px = float(np.sqrt(sx0[0] * sy0[0])) / px
        f, row, col, strength = detect_candidates(
            frames, method=self.detection, threshold=self.threshold, sigma_px=sigma_px
        )
        # the fit may leave the calibrated range by a margin (the curves
        # extrapolated), so that emitters near its ends are not cut at the
        # end: only fits pinned to the margin's bound are dropped
        margin = 0.1 * (z_hi - z_lo)
        bounds = (z_lo - margin, z_hi + margin)
        grid = np.linspace(z_lo, z_hi, _N_Z_STARTS)

        def widths(z):
            return cal.widths(z, derivative=True)

        def fit_candidates(f, row, col):
            boxes, r0, c0 = cut_boxes(frames, f, row, col, size)
            data = (boxes - cam["baseline_adu"]) * self.e_per_count_
            params = np.empty((len(f), 5))
            var = np.empty((len(f), 5))
            conv = np.empty(len(f), dtype=bool)
            dev = np.empty(len(f))
            for s in range(0, len(f), _CHUNK):
                sl = slice(s, s + _CHUNK)
                d = data[sl]
                xy = _centroid_xy(d)[0]
                xy[:, 0] += (col[sl] - c0[sl]) - size // 2
                xy[:, 1] += (row[sl] - r0[sl]) - size // 2
                init = z_start_grid(d, xy, widths, pixel_size_nm=px, z_grid_nm=grid)
                params[sl], conv[sl], var[sl], dev[sl] = fit_z(
                    d,
                    init,
                    widths,
                    pixel_size_nm=px,
                    z_bounds_nm=bounds,
                    max_iter=int(self.max_iter),
                    excess_noise=self.excess_noise_,
                )
            if self.max_emitters > 1:
                self._joint_fits(
                    data, f, row, col, r0, c0, params, conv, var, dev, widths, bounds
                )
                extra = self._split_poor_fits(
                    data, params, conv, var, dev, widths, bounds
                )
                if not self.keep_split_emitters:
                    extra = tuple(e[:0] for e in extra)
            else:
                extra = (np.empty(0, np.int64), np.empty((0, 5)), np.empty((0, 5)), [])
            extra = (extra[0], extra[1], extra[2], np.asarray(extra[3], dtype=float))
            return boxes, r0, c0, data, params, var, conv, dev, extra

        fitted = fit_candidates(f, row, col)
        if self.residual_detection and self.max_emitters > 1 and len(f):
            # emitters hidden by a brighter neighbour show in the frames
            # minus the fitted spots: detect there, then fit everything again
            new = _residual_candidates(
                frames,
                fitted,
                widths,
                bounds,
                px,
                self.e_per_count_,
                dict(
                    method=self.detection, threshold=self.threshold, sigma_px=sigma_px
                ),
                (f, row, col),
            )
            if len(new[0]):
                order = np.argsort(np.concatenate([f, new[0]]), kind="stable")
                f, row, col, strength = (
                    np.concatenate([a, b])[order]
                    for a, b in zip((f, row, col, strength), new, strict=True)
                )
                fitted = fit_candidates(f, row, col)
        boxes, r0, c0, data, params, var, conv, dev, extra = fitted
        x, y, n, z = params[:, 0], params[:, 1], params[:, 2], params[:, 4]
        ratio = dev / (self.excess_noise_ * size * size)
        status = np.zeros(len(f), dtype=np.int64)
        checks = [
            (
                6,
                np.zeros(len(f), bool)
                if self.max_deviance_ratio is None
                else ~(ratio <= self.max_deviance_ratio),
            ),
            (5, ~((z > bounds[0] + 1.0) & (z < bounds[1] - 1.0))),
            (4, ~((x >= -0.5) & (x <= size - 0.5) & (y >= -0.5) & (y <= size - 0.5))),
            (3, ~conv),
            (2, ~(n > 10 * _MIN_PHOTONS) | ~np.isfinite(var[:, [0, 1, 4]]).all(axis=1)),
        ]
        if saturation is not None:
            checks.append((1, (boxes >= saturation).any(axis=(1, 2))))
        for code, bad in checks:
            status[bad] = code
        status[_duplicates(f, c0 + x, r0 + y, n, status == 0)] = 7
        keep = status == 0
        n_poor = int((status == 6).sum())
        if n_poor > _POOR_FIT_WARNING * max(len(f), 1) and n_poor >= 20:
            warnings.warn(
                f"{n_poor} of {len(f)} fits ({100 * n_poor / len(f):.0f} %) were "
                f"dropped as poor fits (deviance ratio above "
                f"{self.max_deviance_ratio:g}): the spots overlap too much for the "
                "classical 3D fit (dense frames, or box_size too large); use "
                f"{_dense_remedy()} for such data, or keep the fits at a cost in z "
                "accuracy with a larger max_deviance_ratio (None keeps all).",
                UserWarning,
                stacklevel=2,
            )
        # second emitters found by splitting poor fits, unless they duplicate
        # a kept localization (or each other) within a pixel
        box, q, qvar, qdev = extra
        qratio = np.asarray(qdev) / (self.excess_noise_ * size * size)
        ok = keep[box] & (q[:, 4] > bounds[0] + 1.0) & (q[:, 4] < bounds[1] - 1.0)
        if self.max_deviance_ratio is not None:
            ok &= qratio <= self.max_deviance_ratio
        box, q, qvar, qratio = box[ok], q[ok], qvar[ok], qratio[ok]
        ok = _not_duplicates(
            f[keep],
            c0[keep] + x[keep],
            r0[keep] + y[keep],
            f[box],
            c0[box] + q[:, 0],
            r0[box] + q[:, 1],
        )
        box, q, qvar, qratio = box[ok], q[ok], qvar[ok], qratio[ok]
        rows = np.concatenate([np.flatnonzero(keep), box])
        p_all = np.concatenate([params[keep], q])
        v_all = np.concatenate([var[keep], qvar])
        order = np.argsort(f[rows], kind="stable")
        rows, p_all, v_all = rows[order], p_all[order], v_all[order]
        r_all = np.concatenate([ratio[keep], qratio])[order]
        sx, sy = cal.widths(p_all[:, 4])
        to_photons = 1.0 / cam["quantum_efficiency"]
        table = pd.DataFrame(
            {
                "frame": f[rows].astype(np.int64),
                "x_nm": (c0[rows] + p_all[:, 0] + 0.5) * px,
                "y_nm": (r0[rows] + p_all[:, 1] + 0.5) * px,
                "z_nm": p_all[:, 4],
                "photons": p_all[:, 2] * to_photons,
                "background": p_all[:, 3] * to_photons,
                "sigma_x_nm": sx,
                "sigma_y_nm": sy,
                "uncertainty_nm": np.sqrt(0.5 * (v_all[:, 0] + v_all[:, 1])) * px,
                "uncertainty_z_nm": np.sqrt(v_all[:, 4]),
                "deviance_ratio": r_all,
                "score": strength[rows],
            },
            columns=list(ASTIG_COLUMNS),
        )
        n_dropped = {
            reason: int((status == code).sum())
            for code, reason in ASTIG_STATUS_REASONS.items()
        }
        table.attrs["n_dropped"] = n_dropped
        info = {"n_candidates": len(f), "n_dropped": n_dropped}
        return (table, info) if return_info else table

    def _joint_fits(
        self, data, f, row, col, r0, c0, params, conv, var, dev, widths, bounds
    ):
        """Refit jointly every box that holds other candidates (in place).

        A box's own emitter takes the joint result; its neighbours start from
        their own single fits (or their detection when that failed).
        """
        size = data.shape[-1]
        px = float(self.pixel_size_nm)
        ok = conv & np.isfinite(params).all(axis=1)
        # positions in frame pixels: the single fit where it stayed in its box
        fx = np.where(ok, c0 + params[:, 0], col).astype(np.float64)
        fy = np.where(ok, r0 + params[:, 1], row).astype(np.float64)
        inside = (params[:, 0] >= -0.5) & (params[:, 0] <= size - 0.5)
        inside &= (params[:, 1] >= -0.5) & (params[:, 1] <= size - 0.5)
        fx = np.where(inside, fx, col)
        fy = np.where(inside, fy, row)
        # the 2-D fitter's rule: its margin counts from the box's edge pixel
        # centres, this one from the box's outer edge, half a pixel further
        members = _box_members(
            f,
            fx,
            fy,
            r0,
            c0,
            size,
            int(self.max_emitters),
            margin_px=_NEIGHBOUR_MARGIN_PX + 0.5,
        )
        k_of = np.array([len(m) for m in members], dtype=np.int64)
        n_start = np.maximum(np.where(ok, params[:, 2], 1.0), 1.0)
        z_start = np.clip(np.where(ok, params[:, 4], 0.0), *bounds)
        for k in range(2, int(self.max_emitters) + 1):
            idx = np.flatnonzero(k_of == k)
            if not len(idx):
                continue
            mem = np.array([members[i] for i in idx])
            cols = []
            for e in range(k):
                j = mem[:, e]
                cols += [fx[j] - c0[idx], fy[j] - r0[idx], n_start[j], z_start[j]]
            cols.append(np.maximum(params[idx, 3], _MIN_BACKGROUND))
            init = np.stack(cols, axis=1)
            model = _ZModel(widths, px, bounds, k=k, margin=_NEIGHBOUR_MARGIN_PX)
            for s in range(0, len(idx), _CHUNK):
                sl = idx[s : s + _CHUNK]
                p, c, mu, jac = _lm(
                    data[sl], init[s : s + _CHUNK], model, int(self.max_iter), 1e-4
                )
                v = _crlb(mu, jac, self.excess_noise_)
                own = [0, 1, 2, 4 * k, 3]  # x, y, N, bg, z of emitter 0
                # the joint fit replaces the single one where it succeeded
                good = c & (p[:, 2] > 10 * _MIN_PHOTONS)
                good &= np.isfinite(v[:, own]).all(axis=1)
                sl = sl[good]
                params[sl] = p[good][:, own]
                var[sl] = v[good][:, own]
                conv[sl] = True
                dev[sl] = _deviance(data[sl], mu[good])

    def _split_poor_fits(self, data, params, conv, var, dev, widths, bounds):
        """Refit poor fits with a second emitter at the residual's peak (in place).

        A box whose fit explains its pixels badly often holds an emitter
        that was not detected (too close to the first). The second emitter
        starts at the maximum of the smoothed residual; the two-emitter fit
        replaces the single one when it lowers the deviance by more than
        :data:`_SPLIT_MIN_GAIN` (in units of the counts' variance factor).

        Returns the second emitters kept, as ``(box index, params (m, 5),
        variance (m, 5), deviance (m,))`` in the ``[x, y, N, bg, z]`` layout.
        """
        size = data.shape[-1]
        px = float(self.pixel_size_nm)
        ratio = dev / (self.excess_noise_ * size * size)
        inside = (params[:, :2] >= -0.5).all(axis=1) & (
            params[:, :2] <= size - 0.5
        ).all(axis=1)
        cand = np.flatnonzero(
            conv & inside & (ratio > _SPLIT_FROM_RATIO) & np.isfinite(dev)
        )
        empty = (np.empty(0, np.int64), np.empty((0, 5)), np.empty((0, 5)), [])
        if not len(cand):
            return empty
        single = _ZModel(widths, px, bounds)
        mu = single(params[cand], size, False)[0]
        resid = ndimage.uniform_filter(data[cand] - mu, size=(1, 3, 3))
        peak = resid.reshape(len(cand), -1).argmax(axis=1)
        r1, c1 = np.divmod(peak, size)
        n1 = np.maximum(9.0 * resid.reshape(len(cand), -1).max(axis=1), 1.0) * 3.0
        p0 = params[cand]
        init = np.column_stack(
            [
                p0[:, 0],
                p0[:, 1],
                p0[:, 2],
                p0[:, 4],
                c1.astype(float),
                r1.astype(float),
                n1,
                np.zeros(len(cand)),
                p0[:, 3],
            ]
        )
        model = _ZModel(widths, px, bounds, k=2)
        p, c, mu2, jac = _lm(data[cand], init, model, int(self.max_iter), 1e-4)
        v = _crlb(mu2, jac, self.excess_noise_)
        d2 = _deviance(data[cand], mu2)
        own, other = [0, 1, 2, 8, 3], [4, 5, 6, 8, 7]
        gain = (dev[cand] - d2) / self.excess_noise_
        second_in = (p[:, 4:6] >= -0.5).all(axis=1) & (p[:, 4:6] <= size - 0.5).all(
            axis=1
        )
        good = c & (gain > _SPLIT_MIN_GAIN) & second_in
        good &= (p[:, [2, 6]] > 10 * _MIN_PHOTONS).all(axis=1)
        good &= np.isfinite(v).all(axis=1)
        # two emitters less than a pixel apart are one emitter fitted twice
        good &= np.hypot(p[:, 0] - p[:, 4], p[:, 1] - p[:, 5]) > 1.0
        idx = cand[good]
        params[idx] = p[good][:, own]
        var[idx] = v[good][:, own]
        dev[idx] = d2[good]
        return idx, p[good][:, other], v[good][:, other], d2[good]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.target_tags.required = False
        tags.non_deterministic = False
        return tags
