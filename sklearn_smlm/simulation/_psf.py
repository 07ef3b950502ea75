"""Point-spread functions: pixel-integrated Gaussians rendered for many emitters."""

import numpy as np
from scipy.special import erf, ndtr

__all__ = [
    "fwhm_to_sigma",
    "sigma_at_z",
    "defocus_width",
    "integrated_gaussian_1d",
    "render_spots",
]

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def fwhm_to_sigma(fwhm):
    """Return the standard deviation of a Gaussian of half-maximum width ``fwhm``.

    Examples
    --------
    >>> round(float(fwhm_to_sigma(258.21)), 2)
    109.65
    """
    return np.asarray(fwhm, dtype=np.float64) / _FWHM_PER_SIGMA


def sigma_at_z(sigma0_nm, z_nm, *, focal_depth_nm=400.0, astigmatism_nm=None):
    """Return the lateral PSF widths ``(sigma_x, sigma_y)`` of emitters at depth ``z``.

    Defocus widens the Gaussian as ``sigma(z) = sigma0 * sqrt(1 + (z / d)^2)``
    with ``d = focal_depth_nm``. An astigmatic PSF (Huang et al., Science 2008)
    focuses x and y at ``+c`` and ``-c`` (``c = astigmatism_nm``):
    ``sigma_x = sigma0 * sqrt(1 + ((z - c) / d)^2)`` and
    ``sigma_y = sigma0 * sqrt(1 + ((z + c) / d)^2)``.

    Parameters
    ----------
    sigma0_nm : float or ndarray
        In-focus width in nanometres.
    z_nm : ndarray
        Axial positions in nanometres (0 is the focal plane).
    focal_depth_nm : float, default=400.0
        Depth over which the width grows by a factor sqrt(2).
    astigmatism_nm : float, optional
        Focal offset ``c`` of the astigmatic PSF; None for a symmetric PSF.

    Returns
    -------
    sigma_x, sigma_y : ndarray

    Examples
    --------
    >>> sx, sy = sigma_at_z(100.0, [0.0, 400.0])
    >>> sx.round(1).tolist()
    [100.0, 141.4]
    >>> sx, sy = sigma_at_z(100.0, [200.0], astigmatism_nm=200.0)
    >>> float(sx[0]), round(float(sy[0]), 1)
    (100.0, 141.4)
    """
    z = np.asarray(z_nm, dtype=np.float64)
    c = 0.0 if astigmatism_nm is None else float(astigmatism_nm)
    sx = sigma0_nm * np.sqrt(1.0 + ((z - c) / focal_depth_nm) ** 2)
    sy = sigma0_nm * np.sqrt(1.0 + ((z + c) / focal_depth_nm) ** 2)
    return sx, sy


#: Smallest value of the square-root argument of :func:`defocus_width`; curves
#: with strong higher-order terms may dip below zero far from focus.
_MIN_DEFOCUS_ARG = 1e-6


def defocus_width(
    z_nm, sigma0_nm, focus_nm, depth_nm, a=0.0, b=0.0, *, derivative=False
):
    """Return the PSF width along one axis at depth ``z`` (Huang et al. 2008).

    ``sigma(z) = sigma0 * sqrt(1 + t^2 + a t^3 + b t^4)`` with
    ``t = (z - focus) / depth``: the defocus curve of one lateral axis of an
    astigmatic PSF (Huang, Wang, Bates, Zhuang, Science 319:810, 2008), the
    model that :class:`~sklearn_smlm.calibration.AstigmaticCalibration` fits
    to bead z-stacks. ``a`` and ``b`` capture the asymmetry of real lenses;
    with both 0 the curve is :func:`sigma_at_z`'s. The square-root
    argument is kept at 1e-6 or above, so the width stays positive.

    Parameters
    ----------
    z_nm : array-like
        Axial positions in nanometres.
    sigma0_nm : float
        Width at the focus of this axis.
    focus_nm : float
        Depth ``c`` at which this axis is in focus.
    depth_nm : float
        Focal depth ``d``: the width grows by sqrt(2) at ``focus +- d`` (for
        ``a = b = 0``).
    a, b : float, default=0.0
        Third- and fourth-order coefficients.
    derivative : bool, default=False
        Also return ``d sigma / d z``.

    Returns
    -------
    sigma_nm : ndarray
    dsigma_dz : ndarray
        Only when ``derivative`` is true.

    Examples
    --------
    >>> import numpy as np
    >>> defocus_width(np.array([200.0, 600.0]), 100.0, 200.0, 400.0).round(1)
    array([100. , 141.4])
    """
    z = np.asarray(z_nm, dtype=np.float64)
    t = (z - focus_nm) / depth_nm
    arg = np.maximum(1.0 + t * t * (1.0 + a * t + b * t * t), _MIN_DEFOCUS_ARG)
    root = np.sqrt(arg)
    sigma = sigma0_nm * root
    if not derivative:
        return sigma
    darg = np.where(
        arg > _MIN_DEFOCUS_ARG, t * (2.0 + 3.0 * a * t + 4.0 * b * t * t), 0.0
    )
    return sigma, sigma0_nm * darg / (2.0 * depth_nm * root)


def integrated_gaussian_1d(edges, centre, sigma):
    """Return the mass of a unit 1-D Gaussian falling between consecutive ``edges``.

    Parameters
    ----------
    edges : ndarray of shape (..., w + 1)
        Pixel edges, in the same units as ``centre`` and ``sigma``.
    centre, sigma : ndarray broadcastable to ``edges[..., :1]``

    Returns
    -------
    mass : ndarray of shape (..., w)
        ``Phi((e[i + 1] - c) / s) - Phi((e[i] - c) / s)``, computed with the
        error function (exact integral over each pixel, not a point sample).

    Examples
    --------
    >>> import numpy as np
    >>> m = integrated_gaussian_1d(np.arange(-10.0, 11.0), 0.3, 1.2)
    >>> round(float(m.sum()), 12)
    1.0
    """
    cdf = 0.5 * erf((edges - centre) / (np.sqrt(2.0) * sigma))
    return np.diff(cdf, axis=-1)


def render_spots(
    n_frames,
    shape,
    frame_index,
    col,
    row,
    sigma_col,
    sigma_row,
    photons,
    half_width,
    *,
    method="auto",
):
    """Add pixel-integrated Gaussian spots of many emitters into a stack of frames.

    All emitters are handled at once from separable integrals (the normal
    CDF, i.e. error functions, at the edges of a ``2 * half_width + 1`` pixel
    window around each emitter). Two ways to add them up, same result:

    - "dense": each frame is ``Ey.T @ Ex`` with ``Ey`` (emitters x rows) and
      ``Ex`` (emitters x columns) holding the window integrals, one batched
      float32 matrix product per block (fast when frames are small and
      crowded);
    - "sparse": an outer product per emitter scattered with one
      :func:`numpy.bincount` (fast for large frames with few emitters).

    "auto" picks the cheaper from the sizes. Both render on a padded canvas
    so that spots near or beyond the border need no masking, then crop.

    Parameters
    ----------
    n_frames : int
        Number of frames of the output.
    shape : tuple of int
        ``(height, width)`` of a frame in pixels.
    frame_index : ndarray of int, shape (k,)
        Frame of each emitter.
    col, row : ndarray of shape (k,)
        Continuous pixel coordinates: pixel ``(r, c)`` covers ``[c, c + 1)``
        horizontally, so ``col = x_nm / pixel_size_nm``.
    sigma_col, sigma_row : ndarray of shape (k,) or float
        PSF widths in pixels.
    photons : ndarray of shape (k,) or float
        Total photons of each emitter.
    half_width : int
        Half size of the rendering window in pixels; mass beyond it is dropped
        (choose ``>= 4 * sigma`` so that it is below 1e-4 of the photons).
    method : {"auto", "dense", "sparse"}, default="auto"

    Returns
    -------
    image : ndarray of shape (n_frames, height, width)
        Expected photons per pixel (float32 for "dense", float64 for "sparse").

    Examples
    --------
    >>> import numpy as np
    >>> img = render_spots(1, (9, 9), np.array([0]), np.array([4.5]),
    ...                    np.array([4.5]), np.array([1.0]), np.array([1.0]),
    ...                    np.array([1000.0]), 4)
    >>> round(float(img.sum())), int(img[0].argmax())
    (1000, 40)
    """
    height, width = shape
    frame_index = np.asarray(frame_index, dtype=np.int64)
    col = np.asarray(col, dtype=np.float64)
    row = np.asarray(row, dtype=np.float64)
    sigma_col = np.broadcast_to(np.asarray(sigma_col, dtype=np.float64), col.shape)
    sigma_row = np.broadcast_to(np.asarray(sigma_row, dtype=np.float64), col.shape)
    photons = np.broadcast_to(np.asarray(photons, dtype=np.float64), col.shape)
    w = 2 * half_width + 1
    # Emitters whose window would not touch the padded canvas contribute nothing.
    keep = (
        (col > -half_width - 1)
        & (col < width + half_width + 1)
        & (row > -half_width - 1)
        & (row < height + half_width + 1)
    )
    if not keep.all():
        frame_index, col, row = frame_index[keep], col[keep], row[keep]
        sigma_col, sigma_row = sigma_col[keep], sigma_row[keep]
        photons = photons[keep]
    pad = 2 * half_width + 2
    hp, wp = height + 2 * pad, width + 2 * pad
    k = len(col)
    if k == 0:
        return np.zeros((n_frames, height, width))
    c0 = np.floor(col).astype(np.int64) - half_width
    r0 = np.floor(row).astype(np.int64) - half_width
    offsets = np.arange(w + 1, dtype=np.float64)
    ex = np.diff(ndtr(((c0 - col)[:, None] + offsets) / sigma_col[:, None]), axis=1)
    ey = np.diff(ndtr(((r0 - row)[:, None] + offsets) / sigma_row[:, None]), axis=1)
    ey *= photons[:, None]

    counts = np.bincount(frame_index, minlength=n_frames)
    k_max = int(counts.max())
    if method == "auto":
        # measured: ~0.05 ns per float32 multiply-add in the batched product,
        # ~8 ns per scattered weight in bincount
        dense_cost = 0.05 * n_frames * height * width * k_max
        method = "dense" if dense_cost < 8.0 * k * w * w else "sparse"
    if method == "dense":
        if np.all(frame_index[1:] >= frame_index[:-1]):
            fi, order = frame_index, slice(None)
        else:
            order = np.argsort(frame_index, kind="stable")
            fi = frame_index[order]
        slot = np.arange(k) - (np.cumsum(counts) - counts)[fi]
        ex_full = np.zeros((n_frames, k_max, wp), dtype=np.float32)
        ey_full = np.zeros((n_frames, hp, k_max), dtype=np.float32)
        j = np.arange(w)
        ix = ((fi * k_max + slot) * wp + (c0[order] + pad))[:, None] + j
        ex_full.reshape(-1)[ix.ravel()] = ex[order].ravel()
        iy = ((fi * hp + (r0[order] + pad))[:, None] + j) * k_max + slot[:, None]
        ey_full.reshape(-1)[iy.ravel()] = ey[order].ravel()
        # only the rows and columns of the frame itself are multiplied out
        return np.matmul(
            ey_full[:, pad : pad + height, :], ex_full[:, :, pad : pad + width]
        )
    elif method == "sparse":
        weights = ey[:, :, None] * ex[:, None, :]  # (k, w, w)
        base = frame_index * (hp * wp) + (r0 + pad) * wp + (c0 + pad)
        window = (np.arange(w)[:, None] * wp + np.arange(w)[None, :]).ravel()
        index = (base[:, None] + window[None, :]).ravel()
        canvas = np.bincount(
            index, weights=weights.ravel(), minlength=n_frames * hp * wp
        ).reshape(n_frames, hp, wp)
    else:
        raise ValueError(f"method must be 'auto', 'dense' or 'sparse', got {method!r}.")
    return canvas[:, pad : pad + height, pad : pad + width]
