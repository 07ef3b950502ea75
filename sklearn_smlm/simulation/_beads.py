"""Bead z-stacks: fixed emitters imaged through focus, for astigmatic calibration."""

import numpy as np
import pandas as pd

from .._validation import check_int
from ._psf import render_spots

__all__ = ["simulate_bead_stack", "astigmatic_widths"]


def astigmatic_widths(calibration):
    """Return ``widths(z_nm) -> (sigma_x_nm, sigma_y_nm)`` of a calibration.

    Parameters
    ----------
    calibration : object with a ``widths`` method, or dict
        An :class:`~sklearn_smlm.calibration.AstigmaticCalibration` (or any
        object whose ``widths(z_nm)`` returns the two widths in nm), or a dict
        ``{"x": {...}, "y": {...}}`` of the parameters of
        :func:`~sklearn_smlm.simulation.defocus_width` per axis
        (``sigma0_nm``, ``focus_nm``, ``depth_nm`` and optionally ``a``, ``b``).

    Returns
    -------
    widths : callable
    """
    if hasattr(calibration, "widths"):
        return lambda z: calibration.widths(z)[:2]
    if isinstance(calibration, dict) and {"x", "y"} <= set(calibration):
        from ._psf import defocus_width

        curves = []
        for axis in ("x", "y"):
            c = calibration[axis]
            try:
                args = (
                    float(c["sigma0_nm"]),
                    float(c["focus_nm"]),
                    float(c["depth_nm"]),
                    float(c.get("a", 0.0)),
                    float(c.get("b", 0.0)),
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                raise ValueError(
                    f"calibration[{axis!r}] must hold sigma0_nm, focus_nm, depth_nm "
                    f"(and optionally a, b), got {c!r}."
                ) from None
            if args[0] <= 0 or args[2] <= 0:
                raise ValueError(
                    f"calibration[{axis!r}]: sigma0_nm and depth_nm must be > 0."
                )
            curves.append(args)
        return lambda z: tuple(defocus_width(z, *a) for a in curves)
    raise ValueError(
        "calibration must be an AstigmaticCalibration (or an object with a "
        "widths(z_nm) method) or a dict {'x': {...}, 'y': {...}} of defocus curve "
        f"parameters, got {type(calibration).__name__}."
    )


def simulate_bead_stack(
    calibration,
    *,
    n_beads=6,
    z_step_nm=10.0,
    z_range_nm=None,
    frame_shape=(64, 64),
    pixel_size_nm=100.0,
    photons=20000.0,
    background_photons=50.0,
    baseline_adu=100.0,
    e_per_adu=1.0,
    random_state=None,
):
    """Simulate a z-stack of fluorescent beads seen through an astigmatic lens.

    Beads sit at random lateral positions (at least 16 pixels apart and 8
    from the border); slice ``i`` images them at depth ``z_i`` relative to
    the focal plane, with ``z_i`` running from the low to the high end of
    ``z_range_nm`` in steps of ``z_step_nm``, centred on the middle of the
    range (so :class:`~sklearn_smlm.calibration.AstigmaticCalibration`'s
    default centred stack matches a range symmetric about 0). Each bead is a
    pixel-integrated Gaussian of widths ``widths(z_i)``; the camera counts
    Poisson photoelectrons (quantum efficiency 1) plus ``baseline_adu``.

    Parameters
    ----------
    calibration : AstigmaticCalibration or dict
        The true curves (see :func:`astigmatic_widths`).
    n_beads : int, default=6
        Beads wanted; fewer are placed when the frame has no room.
    z_step_nm : float, default=10.0
    z_range_nm : (float, float), optional
        Default: the calibration's ``z_range_nm_``.
    frame_shape : (int, int), default=(64, 64)
    pixel_size_nm : float, default=100.0
    photons : float, default=20000.0
        Photons per bead per slice.
    background_photons : float, default=50.0
        Per pixel per slice.
    baseline_adu : float, default=100.0
    e_per_adu : float, default=1.0
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    stack : ndarray of shape (n_slices, height, width), float32
        Counts in ADU.
    truth : pandas.DataFrame
        One row per bead and slice: ``frame`` (the slice), ``bead``,
        ``x_nm``, ``y_nm``, ``z_nm`` (depth of the slice), ``photons``,
        ``sigma_x_nm``, ``sigma_y_nm``.

    Examples
    --------
    >>> from sklearn_smlm.simulation import simulate_bead_stack
    >>> curves = {"x": dict(sigma0_nm=110.0, focus_nm=-200.0, depth_nm=400.0),
    ...           "y": dict(sigma0_nm=110.0, focus_nm=200.0, depth_nm=400.0)}
    >>> stack, truth = simulate_bead_stack(curves, z_range_nm=(-500.0, 500.0),
    ...                                    z_step_nm=50.0, random_state=0)
    >>> stack.shape, float(truth["z_nm"].min()), float(truth["z_nm"].max())
    ((21, 64, 64), -500.0, 500.0)
    """
    widths = astigmatic_widths(calibration)
    if z_range_nm is None:
        z_range_nm = getattr(calibration, "z_range_nm_", None)
        if z_range_nm is None:
            raise ValueError("z_range_nm is needed for a calibration given as a dict.")
    lo, hi = (float(v) for v in z_range_nm)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"z_range_nm must be (low, high), got {z_range_nm!r}.")
    step = float(z_step_nm)
    if not step > 0:
        raise ValueError(f"z_step_nm must be > 0, got {z_step_nm!r}.")
    check_int(n_beads, "n_beads")
    h, w = (int(v) for v in frame_shape)
    px = float(pixel_size_nm)
    rng = np.random.default_rng(random_state)
    n_half = int(np.floor(0.5 * (hi - lo) / step + 1e-9))
    z = 0.5 * (lo + hi) + step * np.arange(-n_half, n_half + 1)
    # lateral positions: rejection sampling with a minimum separation
    cols, rows = [], []
    for _ in range(200 * max(int(n_beads), 1)):
        if len(cols) == n_beads:
            break
        c, r = rng.uniform(8, w - 8), rng.uniform(8, h - 8)
        if all(
            np.hypot(c - c2, r - r2) >= 16 for c2, r2 in zip(cols, rows, strict=True)
        ):
            cols.append(c)
            rows.append(r)
    cols, rows = np.array(cols), np.array(rows)
    n, k = len(z), len(cols)
    sx, sy = widths(z)
    sx, sy = np.asarray(sx, dtype=np.float64), np.asarray(sy, dtype=np.float64)
    frame = np.repeat(np.arange(n), k)
    half_width = int(np.ceil(4.0 * max(sx.max(), sy.max()) / px))
    image = render_spots(
        n,
        (h, w),
        frame,
        np.tile(cols, n),
        np.tile(rows, n),
        np.repeat(sx, k) / px,
        np.repeat(sy, k) / px,
        float(photons),
        half_width,
    )
    counts = rng.poisson(image + float(background_photons))
    stack = (float(baseline_adu) + counts / float(e_per_adu)).astype(np.float32)
    truth = pd.DataFrame(
        {
            "frame": frame.astype(np.int64),
            "bead": np.tile(np.arange(k), n),
            "x_nm": np.tile(cols, n) * px,
            "y_nm": np.tile(rows, n) * px,
            "z_nm": np.repeat(z, k),
            "photons": np.full(n * k, float(photons)),
            "sigma_x_nm": np.repeat(sx, k),
            "sigma_y_nm": np.repeat(sy, k),
        }
    )
    return stack, truth
