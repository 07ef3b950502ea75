"""Kernels of the peak finder, shared by the whole-map and the windowed paths.

:mod:`sklearn_smlm.peaks` runs them on whole maps and
:mod:`sklearn_smlm._subpixel_maps` on windows of the folded head's channels.

All act on stacks or on ``(n, 9)`` patches of a 3x3 neighbourhood in raster
order, so both callers give bit-identical detections.
"""

import numpy as np

# 3x3 neighbourhood offsets in raster order (row-major), as (row, col).
_DY, _DX = (a.ravel().astype(np.float64) for a in np.mgrid[-1:2, -1:2])

# Least-squares 2-D quadratic a + b x + c y + d x^2 + e x y + f y^2 on the 3x3
# neighbourhood: a fixed linear map from the 9 values to the 6 coefficients.
_QUAD_PINV = np.linalg.pinv(
    np.column_stack([np.ones(9), _DX, _DY, _DX**2, _DX * _DY, _DY**2])
)

# Cone model (see _refine_cone): basis B = [r^2, x, y, 1], its pseudo-inverse and
# the projector onto the complement of its span.
_CONE_BASIS = np.column_stack([_DX**2 + _DY**2, _DX, _DY, np.ones(9)])
_CONE_PINV = np.linalg.pinv(_CONE_BASIS)
_CONE_PERP = np.eye(9) - _CONE_BASIS @ _CONE_PINV


def _max_filter(maps, radius):
    """Maximum over the (2 radius + 1)^2 window of each pixel, map by map.

    Separable (rows, then columns) over the whole stack at once, with shifted
    in-place maxima: far cheaper than a 2-D filter or than scipy's
    ``maximum_filter1d`` for these small windows (method.md section 10). The
    window is cut at the edges of the map, which never adds a larger value.
    """
    out = maps
    for axis in (2, 1):
        source, out = out, out.copy()
        for shift in range(1, radius + 1):
            lead = [slice(None)] * 3
            lag = [slice(None)] * 3
            lead[axis], lag[axis] = slice(shift, None), slice(None, -shift)
            lead, lag = tuple(lead), tuple(lag)
            np.maximum(out[lead], source[lag], out=out[lead])
            np.maximum(out[lag], source[lead], out=out[lag])
    return out


def _refine_quadratic(patches):
    """Apex of the least-squares 2-D quadratic of each (n, 9) patch."""
    c = patches @ _QUAD_PINV.T
    b, cy = c[:, 1], c[:, 2]
    hxx, hxy, hyy = 2 * c[:, 3], c[:, 4], 2 * c[:, 5]
    det = hxx * hyy - hxy**2
    # A maximum needs a negative definite Hessian; otherwise stay on the pixel.
    good = (det > 0) & (hxx < 0)
    safe = np.where(good, det, 1.0)
    dx = np.where(good, (-hyy * b + hxy * cy) / safe, 0.0)
    dy = np.where(good, (hxy * b - hxx * cy) / safe, 0.0)
    dx, dy = np.clip(dx, -0.5, 0.5), np.clip(dy, -0.5, 0.5)
    top = c[:, 0] + b * dx + cy * dy + c[:, 3] * dx**2 + c[:, 4] * dx * dy
    top += c[:, 5] * dy**2
    return dy, dx, np.maximum(top, patches[:, 4])


def _refine_cone(patches):
    """Apex of a cone fitted to each (n, 9) patch; also says where it is sound.

    The cone ``u = A - k * d`` squares to ``u^2 = 2 A u + k^2 r^2 - 2 k^2 x0 x -
    2 k^2 y0 y + c``, linear in ``(A, k^2, k^2 x0, k^2 y0, c)``: ``A`` comes
    from the part of ``u`` outside the span of ``[r^2, x, y, 1]``, the rest by
    least squares. When ``u`` is itself an isotropic quadratic (a Gaussian in
    log), that part vanishes, ``A`` is arbitrary, and the apex ratio is still
    exact.
    """
    u = patches
    u2 = u**2
    pu = u @ _CONE_PERP.T
    norm = np.einsum("ij,ij->i", pu, pu)
    scale = np.einsum("ij,ij->i", u - u.mean(1, keepdims=True), u)
    degenerate = norm <= 1e-10 * np.maximum(scale, 1e-300)
    a_apex = np.einsum("ij,ij->i", pu, u2) / (2 * np.where(degenerate, 1.0, norm))
    a_apex = np.where(degenerate, u.max(1), a_apex)
    q = (u2 - 2 * a_apex[:, None] * u) @ _CONE_PINV.T
    k2 = q[:, 0]
    safe = np.where(k2 > 0, k2, 1.0)
    dx, dy = -q[:, 1] / (2 * safe), -q[:, 2] / (2 * safe)
    rise = a_apex - u[:, 4]
    ok = (
        (k2 > 0)
        & (np.abs(dx) <= 0.75)
        & (np.abs(dy) <= 0.75)
        & ~degenerate
        & (rise >= 0)
        & (rise <= 0.75 * np.sqrt(safe))
    )
    # A Gaussian (degenerate) patch has the right apex but no cone height.
    ok_apex = (k2 > 0) & (np.abs(dx) <= 0.75) & (np.abs(dy) <= 0.75)
    dx = np.where(ok_apex, np.clip(dx, -0.5, 0.5), 0.0)
    dy = np.where(ok_apex, np.clip(dy, -0.5, 0.5), 0.0)
    height_log = np.where(ok, np.maximum(a_apex, u[:, 4]), u[:, 4])
    return dy, dx, height_log, ok


def _first_of_plateau(maps, frame, row, col, min_distance):
    """Keep a candidate unless an equal neighbour precedes it in raster order."""
    _, height, width = maps.shape
    value = maps[frame, row, col]
    keep = np.ones(len(frame), dtype=bool)
    offsets = [
        (dr, dc)
        for dr in range(-min_distance, 0)
        for dc in range(-min_distance, min_distance + 1)
    ]
    offsets += [(0, dc) for dc in range(-min_distance, 0)]
    for dr, dc in offsets:
        r, c = row + dr, col + dc
        inside = (r >= 0) & (c >= 0) & (c < width)
        r, c = np.clip(r, 0, height - 1), np.clip(c, 0, width - 1)
        # The candidate is the maximum of its window, so "not greater" is "equal".
        keep &= ~(inside & (maps[frame, r, c] == value))
    return keep


def _refine_peaks(frame, row, col, values, refine):
    """Sub-pixel refinement of peaks from their ``(n, 9)`` 3x3 map values.

    Returns ``(frame, row, col, value)`` as :func:`sklearn_smlm.peaks.find_peaks`
    reports them: the fit of ``log1p`` of the values (``"quadratic"``,
    ``"cone"``, or ``"auto"``: the cone, the quadratic where the cone fails).
    """
    patches = np.log1p(np.maximum(values, 0.0))
    patches = patches.astype(np.float64)
    if refine == "quadratic":
        dy, dx, height_log = _refine_quadratic(patches)
    else:
        dy, dx, height_log, ok = _refine_cone(patches)
        if refine == "auto" and not ok.all():
            qy, qx, qh = _refine_quadratic(patches[~ok])
            dy[~ok], dx[~ok], height_log[~ok] = qy, qx, qh
    return frame, row + dy, col + dx, np.expm1(height_log)
