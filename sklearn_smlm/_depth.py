"""Depth (z) of the 3D CNN: target z maps, their loss, and z read at peaks.

A 3D model (:class:`~sklearn_smlm.nn.SubPixelCNN` with ``predict_z=True``)
regresses, beside the distance-transform map, a z map at the same resolution:
every map pixel within ``d_max`` of an emitter holds the nearest emitter's z,
scaled to [-1, 1] over the model's axial range. The loss weighs each pixel by
the distance-transform target (1 at an emitter, 0 beyond ``d_max``), so the z
map is learnt where the peaks are and free elsewhere. At prediction the z map
is read around each detected peak.
"""

import numpy as np

from ._localizations import check_positions, localizations_to_list

__all__ = [
    "add_z_column",
    "check_z_range",
    "denormalize_z",
    "depth_targets",
    "nearest_z_maps",
    "normalize_z",
    "positions_with_z",
    "with_z_column",
    "z_at_peaks",
]


def nearest_z_maps(
    positions, frame_shape, *, pixel_size_nm=100.0, upscaling=7, d_max=35.0
):
    """Return, per map pixel, the z of the nearest emitter within ``d_max``.

    The map grid is that of
    :func:`~sklearn_smlm.encoding.distance_transform_maps` (the same pixel
    centres, distances and ``d_max``), so the pixels holding a z are exactly
    those where the distance-transform target is positive.

    Parameters
    ----------
    positions : sequence of array-like of shape (k_i, 3) or pandas.DataFrame
        Per frame, the ``(x_nm, y_nm, z_nm)`` of the emitters, or a table
        with a ``z_nm`` column.
    frame_shape : tuple of int (height, width)
        Camera frame size in pixels.
    pixel_size_nm : float, default=100.0
        Camera pixel size.
    upscaling : int, default=7
        Map pixels per camera pixel.
    d_max : float, default=35.0
        Radius, in map pixels, of the pixels that get a z.

    Returns
    -------
    z_maps : ndarray of shape (n_frames, height * upscaling, width * upscaling)
        float32 z in nanometres; NaN farther than ``d_max`` from every emitter.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm._depth import nearest_z_maps
    >>> z = nearest_z_maps([np.array([[150.0, 250.0, -300.0],
    ...                               [350.0, 250.0, 200.0]])], (4, 6), d_max=7)
    >>> float(z[0, 17, 10]), float(z[0, 17, 24]), bool(np.isnan(z[0, 0, 40]))
    (-300.0, 200.0, True)
    """
    positions = positions_with_z(positions, name="positions")
    height, width = (int(s) for s in frame_shape)
    out = np.full(
        (len(positions), height * upscaling, width * upscaling), np.nan, np.float32
    )
    scale = upscaling / pixel_size_nm
    for index, xyz in enumerate(positions):
        if len(xyz):
            col = xyz[:, 0] * scale - 0.5
            row = xyz[:, 1] * scale - 0.5
            _frame_z(out[index], row, col, xyz[:, 2].astype(np.float32), d_max)
    return out


def positions_with_z(y, n_frames=None, *, name="y"):
    """Return true positions as a per-frame list of ``(k, 3)`` arrays.

    As :func:`~sklearn_smlm._localizations.check_positions` (the same checks
    of x and y), keeping ``z_nm``: a table needs a ``z_nm`` column, arrays
    need three columns.
    """
    if hasattr(y, "columns"):
        if "z_nm" not in y.columns:
            raise ValueError(
                f"{name} needs a z_nm column to train a 3D model (z_range_nm set)."
            )
        return localizations_to_list(
            y, n_frames=n_frames, columns=("x_nm", "y_nm", "z_nm")
        )
    check_positions(y, n_frames=n_frames, name=name)
    out = []
    for i, p in enumerate(y):
        a = np.asarray(p, dtype=np.float64)
        if a.size == 0:
            out.append(np.empty((0, 3)))
            continue
        if a.shape[1] != 3:
            raise ValueError(
                f"{name}[{i}] needs (x_nm, y_nm, z_nm) per emitter to train a 3D "
                f"model (z_range_nm set), got shape {a.shape}."
            )
        out.append(a)
    return out


def _frame_z(out, row, col, z, d_max):
    """Fill one map with the nearest emitter's z (the loop of encoding's maps)."""
    n_rows, n_cols = out.shape
    reach = int(np.ceil(d_max))
    r0 = np.clip(np.floor(row).astype(np.intp) - reach, 0, n_rows)
    r1 = np.clip(np.ceil(row).astype(np.intp) + reach + 1, 0, n_rows)
    c0 = np.clip(np.floor(col).astype(np.intp) - reach, 0, n_cols)
    c1 = np.clip(np.ceil(col).astype(np.intp) + reach + 1, 0, n_cols)
    limit = np.float32(d_max) ** 2
    dist2 = np.full(out.shape, limit, dtype=np.float32)
    ii = np.arange(n_rows, dtype=np.float32)
    jj = np.arange(n_cols, dtype=np.float32)
    row32, col32 = row.astype(np.float32), col.astype(np.float32)
    for e in np.flatnonzero((r0 < r1) & (c0 < c1)).tolist():
        top, bottom, left, right = r0[e], r1[e], c0[e], c1[e]
        dr = ii[top:bottom] - row32[e]
        dc = jj[left:right] - col32[e]
        d2 = dr[:, None] ** 2 + dc**2
        block = dist2[top:bottom, left:right]
        closer = d2 < block
        block[closer] = d2[closer]
        out[top:bottom, left:right][closer] = z[e]


def normalize_z(z_nm, z_range_nm):
    """Scale z from nanometres to [-1, 1] over ``z_range_nm = (low, high)``."""
    low, high = (float(v) for v in z_range_nm)
    return (np.asarray(z_nm, dtype=np.float32) - 0.5 * (low + high)) / (
        0.5 * (high - low)
    )


def denormalize_z(z, z_range_nm):
    """Inverse of :func:`normalize_z`: scaled z to nanometres."""
    low, high = (float(v) for v in z_range_nm)
    return np.asarray(z, dtype=np.float64) * (0.5 * (high - low)) + 0.5 * (low + high)


def z_at_peaks(z_channels, frame, row, col, upscaling, *, radius=1):
    """Read the z map's channels around detected peaks.

    Parameters
    ----------
    z_channels : ndarray of shape (n, H, W, r * r)
        The depth head's channels, channel-last (map pixel ``(r i + a, r j +
        b)`` is channel ``a r + b`` of camera pixel ``(i, j)``).
    frame, row, col : ndarray
        Peaks: frame index within the batch and (refined) map coordinates.
    upscaling : int
        ``r``.
    radius : int, default=1
        Half-size of the square of map pixels, around the peak's pixel,
        whose mean is returned (indices clipped at the map's edges, so an
        edge pixel counts again).

    Returns
    -------
    z : ndarray of shape (n_peaks,)
        Mean z (normalized scale) in the window of each peak.
    """
    n, h, w, _ = z_channels.shape
    r = upscaling
    frame = np.asarray(frame, dtype=np.intp)
    if not len(frame):
        return np.empty(0)
    row0 = np.rint(np.asarray(row)).astype(np.intp)
    col0 = np.rint(np.asarray(col)).astype(np.intp)
    steps = np.arange(-radius, radius + 1)
    rows = np.clip(row0[:, None, None] + steps[:, None], 0, h * r - 1)
    cols = np.clip(col0[:, None, None] + steps[None, :], 0, w * r - 1)
    rows, cols = np.broadcast_arrays(rows, cols)
    ci, a = np.divmod(rows, r)
    cj, b = np.divmod(cols, r)
    values = z_channels[frame[:, None, None], ci, cj, a * r + b]
    return values.reshape(len(frame), -1).astype(np.float64).mean(axis=1)


#: z is learnt within this many camera pixels of an emitter (map pixels
#: farther have a distance-transform weight below 0.015 at alpha = 7,
#: d_max = 5 camera pixels).
Z_RADIUS_PX = 3.0
#: Weight of the z loss against the map's (both on their training scales).
Z_WEIGHT = 0.1


def with_z_column(table):
    """Return ``table`` with a ``z_nm`` column after ``y_nm`` (empty tables)."""
    if "z_nm" in table.columns:
        return table
    table = table.copy()
    table.insert(table.columns.get_loc("y_nm") + 1, "z_nm", np.nan)
    return table


def check_z_range(z_range_nm, upsampling="folded"):
    """Return ``z_range_nm`` as a pair of floats ``low < high``; else raise."""
    from ._validation import check_real

    try:
        low, high = z_range_nm
    except (TypeError, ValueError):
        raise TypeError(
            f"z_range_nm must be a pair (low, high) in nm, got {z_range_nm!r}."
        ) from None
    low = check_real(low, "z_range_nm[0]")
    high = check_real(high, "z_range_nm[1]")
    if not high > low:
        raise ValueError(f"z_range_nm must have low < high, got {z_range_nm!r}.")
    if upsampling != "folded":
        raise ValueError(
            "a 3D model (z_range_nm set) needs upsampling='folded', got "
            f"{upsampling!r}."
        )
    return float(low), float(high)


def depth_targets(
    positions, maps, frame_shape, *, pixel_size_nm, upscaling, z_range_nm
):
    """Stack a 3D model's training targets: map, scaled z and z weight.

    Parameters
    ----------
    positions : list of ndarray of shape (k_i, 3)
        ``(x_nm, y_nm, z_nm)`` per frame.
    maps : ndarray of shape (n, r * H, r * W)
        Their distance-transform maps scaled to a peak of 1.
    frame_shape : tuple of int
    pixel_size_nm, upscaling : float, int
    z_range_nm : tuple of float

    Returns
    -------
    targets : ndarray of shape (n, 3, r * H, r * W), float32
        The map; the nearest emitter's z scaled to [-1, 1] (0 where none is
        within :data:`Z_RADIUS_PX`); the z weight: the map where a z is set,
        else 0.
    """
    z = nearest_z_maps(
        positions,
        frame_shape,
        pixel_size_nm=pixel_size_nm,
        upscaling=upscaling,
        d_max=Z_RADIUS_PX * upscaling,
    )
    weight = np.where(np.isnan(z), np.float32(0), maps)
    z = np.nan_to_num(normalize_z(z, z_range_nm), nan=0.0)
    return np.stack([maps, z, weight], axis=1).astype(np.float32, copy=False)


def add_z_column(
    columns, z_channels, frame_offset, z_range_nm, *, upscaling, pixel_size_nm
):
    """Add ``z_nm`` (after ``y_nm``) to a batch's peak columns.

    The z map is read around each peak (:func:`z_at_peaks`) and scaled back
    to nanometres over the model's ``z_range_nm``.
    """
    nm = pixel_size_nm / upscaling
    row = columns["y_nm"] / nm - 0.5
    col = columns["x_nm"] / nm - 0.5
    frame = columns["frame"] - np.int64(frame_offset)
    z = denormalize_z(z_at_peaks(z_channels, frame, row, col, upscaling), z_range_nm)
    out = {}
    for key, value in columns.items():
        out[key] = value
        if key == "y_nm":
            out["z_nm"] = z
    return out


# ------------------------------------------------------ astigmatism check
#: Bright isolated spots needed before the astigmatism check speaks.
MIN_SPOTS = 8
#: A 3D model's frames are called round (2D) when the median of
#: ``|ln(sigma_x / sigma_y)|`` of their bright isolated spots is below this.
#: Measured on 32 simulated frames each: 2D low_density 0.05, mt0_n1_hd /
#: mt0_n2_hd (2D, 1.5 um thick) 0.12 / 0.13, bt_hd_2013 (dense 2D) 0.25;
#: astigmatic low_density_as 0.46, mt0_n1_as / mt0_n2_as 0.40 / 0.35. A thin
#: astigmatic sample near the crossing of the two widths reads low too
#: (|ln| is 0.19 at 100 nm from it), so the bound is low.
ROUND_LOG_RATIO = 0.1


def spot_log_ratios(frames, *, min_snr=8.0, isolation_px=5, box=9):
    """``ln(sigma_x / sigma_y)`` of the bright isolated spots of raw frames.

    Candidates of the wavelet detector (:func:`~sklearn_smlm.fitting.
    detect_candidates`) with a signal-to-noise ratio of at least ``min_snr``
    and no other candidate within ``isolation_px`` are fitted with an
    elliptical Gaussian (:func:`~sklearn_smlm.fitting.fit_elliptical`, both
    widths free) on the background-subtracted box; the camera's gain and
    offset do not matter for the widths.

    Returns
    -------
    log_ratios : ndarray
        One per converged fit with plausible widths (0.5-5 pixels).
    """
    from scipy.spatial import cKDTree

    from .fitting import detect_candidates, fit_elliptical

    frames = np.asarray(frames, dtype=np.float64)
    f, r, c, snr = detect_candidates(frames, threshold=4.0, compiled=False)
    if not len(f):
        return np.empty(0)
    h, w = frames.shape[1:]
    half = box // 2
    pts = np.column_stack([f * 1e6, r, c]).astype(float)
    counts = cKDTree(pts).query_ball_point(pts, isolation_px, return_length=True)
    keep = (counts == 1) & (snr >= min_snr)
    keep &= (r >= half) & (r < h - half) & (c >= half) & (c < w - half)
    f, r, c = f[keep], r[keep], c[keep]
    if not len(f):
        return np.empty(0)
    offsets = np.arange(-half, half + 1)
    boxes = frames[
        f[:, None, None],
        r[:, None, None] + offsets[None, :, None],
        c[:, None, None] + offsets[None, None, :],
    ]
    edge = np.concatenate(
        [boxes[:, 0], boxes[:, -1], boxes[:, 1:-1, 0], boxes[:, 1:-1, -1]], axis=1
    )
    background = np.median(edge, axis=1)
    noise = 1.4826 * np.median(np.abs(edge - background[:, None]), axis=1)
    # on a scale where the background's noise is that of ~100 counts
    scale = 10.0 / np.maximum(noise, 1e-9)
    data = np.maximum((boxes - background[:, None, None]) * scale[:, None, None], 0)
    data += 100.0
    init = np.column_stack(
        [
            np.full(len(f), float(half)),
            np.full(len(f), float(half)),
            data.sum(axis=(1, 2)) - 100.0 * box * box,
            np.full(len(f), 100.0),
            np.full(len(f), 1.3),
            np.full(len(f), 1.3),
        ]
    )
    init[:, 2] = np.maximum(init[:, 2], 100.0)
    params, ok, _ = fit_elliptical(data, init)
    sx, sy = np.abs(params[:, 4]), np.abs(params[:, 5])
    ok &= (sx > 0.5) & (sx < 5) & (sy > 0.5) & (sy < 5)
    return np.log(sx[ok] / sy[ok])


def depth_problems(localizer, frames):
    """Why a 3D model's z may not hold for ``frames`` (a list, may be empty).

    A model that records no astigmatic calibration in its conditions, and
    frames whose bright isolated spots are round (median
    ``|ln(sigma_x / sigma_y)|`` below :data:`ROUND_LOG_RATIO` over at least
    :data:`MIN_SPOTS` spots: 2D frames, no cylindrical lens), are reported.
    """
    problems = []
    conditions = getattr(localizer, "conditions_", None) or {}
    if not conditions.get("calibration"):
        problems.append(
            "it predicts z_nm but records no astigmatic calibration, so its z holds "
            "only for the PSF of its training frames"
        )
    n_max = max(1, min(64, 2**17 // (frames.shape[1] * frames.shape[2])))
    ratios = np.abs(spot_log_ratios(frames[:n_max]))
    if len(ratios) >= MIN_SPOTS and np.median(ratios) < ROUND_LOG_RATIO:
        problems.append(
            f"the spots are round (median |ln(sigma_x/sigma_y)| "
            f"{np.median(ratios):.2f} over {len(ratios)} spots; astigmatic frames "
            "give 0.3-0.5): these look like 2D frames, where z_nm means nothing; "
            "use a 2D model (pretrained('default'), --model default)"
        )
    return problems


def check_depth_and_warn(localizer, frames, *, stacklevel=3):
    """Warn once (one line) when a 3D model's z may not hold for ``frames``."""
    import warnings

    from ._conditions import ConditionsWarning

    problems = depth_problems(localizer, np.asarray(frames))
    if problems:
        name = (getattr(localizer, "conditions_", None) or {}).get("name", "3D model")
        warnings.warn(
            f"{name}: " + "; ".join(problems) + ".",
            ConditionsWarning,
            stacklevel=stacklevel,
        )
    return problems
