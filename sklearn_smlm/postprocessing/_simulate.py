"""Table-level simulation of long blinking acquisitions, with drift and fiducials."""

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .._validation import check_int, check_real
from ..simulation import Structure, blink_expand, make_filaments

__all__ = ["simulate_localizations", "simulate_drift"]


def _check_int(value, name, minimum):
    return check_int(value, name, low=minimum)


def _check_float(value, name, *, allow_zero=False):
    return check_real(value, name, low=0, low_open=not allow_zero)


def simulate_drift(
    n_frames,
    *,
    linear_nm=(300.0, -200.0),
    wander_nm=40.0,
    wander_periods_frames=(6000.0, 20000.0),
    random_state=None,
):
    """Draw a smooth stage drift: a linear trend plus a slow random wander.

    The wander of each axis is a sum of three sines with random periods in
    ``wander_periods_frames`` (at 20-50 ms a frame, minutes: thermal drift of
    a stage) and random phases, scaled to an RMS of ``wander_nm`` over the
    acquisition; the drift is 0 at frame 0.

    Parameters
    ----------
    n_frames : int
        Length of the acquisition.
    linear_nm : (float, float), default=(300.0, -200.0)
        Total linear drift along x and y over the acquisition.
    wander_nm : float, default=40.0
        RMS of the smooth wander around the trend, per axis.
    wander_periods_frames : (float, float), default=(6000.0, 20000.0)
        Range of the periods of the wander's sines.
    random_state : int, numpy.random.Generator or None, default=None
        Seed.

    Returns
    -------
    drift : pandas.DataFrame
        Columns ``frame``, ``dx_nm``, ``dy_nm``, one row per frame.

    Examples
    --------
    >>> drift = simulate_drift(1000, random_state=0)
    >>> drift.shape, float(drift["dx_nm"].iloc[0])
    ((1000, 3), 0.0)
    """
    n_frames = _check_int(n_frames, "n_frames", 1)
    wander_nm = _check_float(wander_nm, "wander_nm", allow_zero=True)
    rng = check_random_state(random_state)
    low, high = (float(v) for v in wander_periods_frames)
    if not 0 < low <= high:
        raise ValueError(
            "wander_periods_frames must be (low, high) with 0 < low <= high, got "
            f"{wander_periods_frames!r}."
        )
    frames = np.arange(n_frames, dtype=np.float64)
    t = frames / max(n_frames - 1, 1)
    out = {"frame": np.arange(n_frames, dtype=np.int64)}
    for axis, total in zip(("dx_nm", "dy_nm"), linear_nm, strict=True):
        periods = rng.uniform(low, high, 3)
        phases = rng.uniform(0.0, 2.0 * np.pi, 3)
        wave = np.sin(2.0 * np.pi * frames[:, None] / periods + phases).sum(axis=1)
        wave = wave - wave[0]
        rms = np.sqrt(np.mean((wave - wave.mean()) ** 2))
        wave = wave * (wander_nm / rms if rms > 0 else 0.0)
        out[axis] = float(total) * t + wave
    return pd.DataFrame(out)


def simulate_localizations(
    n_frames,
    *,
    field_of_view_nm=(12800.0, 12800.0),
    density_per_um2=0.5,
    mean_on_frames=3.0,
    structure="filaments",
    n_filaments=30,
    filament_width_nm=25.0,
    photons=1500.0,
    photon_spread=0.4,
    psf_sigma_nm=110.0,
    pixel_size_nm=100.0,
    background_photons=20.0,
    detection_probability=1.0,
    drift=None,
    n_fiducials=0,
    fiducial_photons=50000.0,
    fiducial_on_fraction=0.95,
    random_state=None,
):
    """Simulate the localization table of a long blinking acquisition, no images.

    The table-level counterpart of :class:`~sklearn_smlm.PAFPSimulator`, for
    movies too long to render frame by frame (drift correction needs tens of
    thousands of frames): the same structures (:func:`make_filaments`) and the
    same blinking law (a Poisson stream of switch-ons, each emitter on for a
    geometric number of consecutive frames, started in the steady state,
    log-normal photons per frame), then each localization displaced by a
    Gaussian error of its own Cramér-Rao precision (Mortensen et al. 2010 with
    the EMCCD excess noise factor) and by the stage drift of its frame.

    Parameters
    ----------
    n_frames : int
        Length of the acquisition.
    field_of_view_nm : (float, float), default=(12800.0, 12800.0)
        ``(width, height)`` of the field; positions lie in ``[0, width) x [0,
        height)``.
    density_per_um2 : float, default=0.5
        Mean number of emitters on per frame per square micrometre.
    mean_on_frames : float, default=3.0
        Mean on-time in frames (geometric law; 1 makes each frame independent).
    structure : {"filaments", "uniform"}, default="filaments"
    n_filaments : int, default=30
    filament_width_nm : float, default=25.0
    photons : float, default=1500.0
        Mean photons per emitter per frame (log-normal, ``photon_spread`` the
        standard deviation of the log).
    photon_spread : float, default=0.4
    psf_sigma_nm, pixel_size_nm, background_photons : float
        PSF width, camera pixel and background (photons/pixel) of the
        precision formula.
    detection_probability : float, default=1.0
        Chance that an emitter on in a frame is localized (missed detections
        make dark gaps inside an on-period).
    drift : pandas.DataFrame, optional
        ``frame``, ``dx_nm``, ``dy_nm`` (see :func:`simulate_drift`), added to
        every localization of that frame, fiducials included.
    n_fiducials : int, default=0
        Bright beads fixed to the sample, localized in a fraction
        ``fiducial_on_fraction`` of the frames with ``fiducial_photons``.
    fiducial_photons, fiducial_on_fraction : float
    random_state : int, numpy.random.Generator or None, default=None
        Seed; the same seed gives the same tables.

    Returns
    -------
    table : pandas.DataFrame
        Localizations: ``frame``, ``x_nm``, ``y_nm``, ``photons``,
        ``background``, ``uncertainty_nm``, sorted by frame.
    truth : pandas.DataFrame
        The same rows without error or drift: ``frame``, ``x_nm``, ``y_nm``,
        ``emitter`` (one id per on-period; fiducials have ids from
        ``-n_fiducials`` to -1).

    Examples
    --------
    >>> table, truth = simulate_localizations(100, random_state=0)
    >>> list(table.columns)
    ['frame', 'x_nm', 'y_nm', 'photons', 'background', 'uncertainty_nm']
    >>> len(table) == len(truth)
    True
    """
    n_frames = _check_int(n_frames, "n_frames", 1)
    width, height = (float(v) for v in field_of_view_nm)
    density = _check_float(density_per_um2, "density_per_um2", allow_zero=True)
    l_on = _check_float(mean_on_frames, "mean_on_frames")
    if l_on < 1:
        raise ValueError(f"mean_on_frames must be >= 1, got {l_on}.")
    p_detect = _check_float(detection_probability, "detection_probability")
    if p_detect > 1:
        raise ValueError(f"detection_probability must be <= 1, got {p_detect}.")
    n_fiducials = _check_int(n_fiducials, "n_fiducials", 0)
    rng = check_random_state(random_state)
    rng = np.random.default_rng(rng.randint(0, 2**31 - 1))
    region = (0.0, 0.0, width, height)
    if structure == "filaments":
        segments = make_filaments(
            rng, _check_int(n_filaments, "n_filaments", 1), region
        )
        sampler = Structure(
            "filaments", region, segments=segments, width_nm=filament_width_nm
        )
    elif structure == "uniform":
        sampler = Structure("uniform", region)
    else:
        raise ValueError(
            f"structure must be 'filaments' or 'uniform', got {structure!r}."
        )

    # switch-ons: the steady-state population at frame 0, then a Poisson stream
    rate = density * sampler.draw_area_um2 / l_on
    births = rng.poisson(rate, n_frames)
    start = np.repeat(np.arange(n_frames), births)
    if l_on > 1:
        start = np.concatenate([np.zeros(rng.poisson(rate * (l_on - 1)), int), start])
    x, y, _ = sampler.sample(len(start), rng)
    keep = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    x, y, start = x[keep], y[keep], start[keep]
    duration = (
        np.ones(len(x), dtype=np.int64)
        if l_on == 1
        else rng.geometric(1.0 / l_on, len(x))
    )
    emitter, frame, _ = blink_expand(start, duration, n_frames)
    k = len(frame)
    phot = photons * np.exp(
        photon_spread * rng.standard_normal(k) - 0.5 * photon_spread**2
    )
    if p_detect < 1:
        seen = rng.random(k) < p_detect
        emitter, frame, phot = emitter[seen], frame[seen], phot[seen]
    tx, ty = x[emitter], y[emitter]

    if n_fiducials:
        fx = rng.uniform(0.05 * width, 0.95 * width, n_fiducials)
        fy = rng.uniform(0.05 * height, 0.95 * height, n_fiducials)
        on = rng.random((n_fiducials, n_frames)) < fiducial_on_fraction
        fid, fframe = np.nonzero(on)
        emitter = np.concatenate([emitter, fid - n_fiducials])
        frame = np.concatenate([frame, fframe])
        tx = np.concatenate([tx, fx[fid]])
        ty = np.concatenate([ty, fy[fid]])
        phot = np.concatenate([phot, np.full(len(fid), float(fiducial_photons))])

    # Mortensen et al. (2010) precision with the EMCCD excess factor 2
    sa2 = psf_sigma_nm**2 + pixel_size_nm**2 / 12.0
    tau = 8.0 * np.pi * sa2 * background_photons / (phot * pixel_size_nm**2)
    uncertainty = np.sqrt(2.0 * sa2 / phot * (16.0 / 9.0 + tau))
    mx = tx + uncertainty * rng.standard_normal(len(tx))
    my = ty + uncertainty * rng.standard_normal(len(ty))
    if drift is not None:
        shift = _drift_at(drift, frame)
        mx, my = mx + shift[:, 0], my + shift[:, 1]

    order = np.lexsort((emitter, frame))
    table = pd.DataFrame(
        {
            "frame": frame[order].astype(np.int64),
            "x_nm": mx[order],
            "y_nm": my[order],
            "photons": phot[order],
            "background": np.full(len(order), float(background_photons)),
            "uncertainty_nm": uncertainty[order],
        }
    )
    truth = pd.DataFrame(
        {
            "frame": frame[order].astype(np.int64),
            "x_nm": tx[order],
            "y_nm": ty[order],
            "emitter": emitter[order].astype(np.int64),
        }
    )
    return table, truth


def _drift_at(drift, frames):
    """Drift ``(dx, dy)`` of each frame from a drift table (linear between rows)."""
    known = drift["frame"].to_numpy(dtype=float)
    return np.stack(
        [
            np.interp(frames, known, drift["dx_nm"].to_numpy(dtype=float)),
            np.interp(frames, known, drift["dy_nm"].to_numpy(dtype=float)),
        ],
        axis=1,
    )
