"""Conditions of the data against a model's: estimate, compare, warn, choose.

A model file records the conditions its network was trained for (the
``"conditions"`` entry of its metadata, see :data:`SHIPPED_CONDITIONS`). The
first chunk that ``predict`` / ``iter_predict`` / the command line localize
is measured from the raw pixels and the model's own detections
(:func:`estimate_conditions`): detections per um^2, the PSF width of isolated
spots, the signal-to-noise ratio of every detection (a wavelet filter of the
raw frame, as ThunderSTORM's detector, in units of the frame's own noise).
When the data lie outside the model's range, or most detections are no
brighter than the background noise, one :class:`ConditionsWarning` names the
model, what was measured and what to use instead.
"""

import warnings

import numpy as np

__all__ = [
    "ConditionsWarning",
    "SHIPPED_CONDITIONS",
    "choose_pretrained",
    "estimate_conditions",
    "conditions_problems",
    "drop_sparse_duplicates",
    "drop_edge_spill",
    "drop_weak_sparse",
    "decide_detections",
]

#: A detection whose raw-pixel SNR (3 x 3 maximum of the wavelet detection
#: image over the frame's noise) is below this looks like noise: on frames of
#: pure background (ideal, EMCCD and sCMOS cameras) 50 % of the default
#: model's false detections are below 3.3-3.7 and 95 % below 4.3-5.1, while
#: the median true detection on simulated frames of every training condition
#: is at 13-26.
NOISE_SNR = 4.0
#: Spots at least this bright (raw-pixel SNR) are certainly not noise.
BRIGHT_SNR = 6.0
#: A model's detections are noise-like when fewer than this fraction of
#: their number are bright spots in the raw frames.
BRIGHT_FRACTION = 0.2
#: Most detections looking like noise (this fraction or more) -> warning.
NOISE_FRACTION = 0.5
#: At least this many detections before the density and noise-fraction
#: tests speak, and before "detections without bright spots" does.
MIN_DETECTIONS = 8
MIN_NOISE_DETECTIONS = 3
#: Frames of the first chunk that are measured: at most 64, and at most
#: 2^17 pixels (32 frames of 64 x 64, 2 of 256 x 256): the check costs a
#: few tens of ms per ``predict`` call (68 ms for 64 frames of 64 x 64 on a
#: loaded 2-core AMD EPYC) and runs once per ``iter_predict``.
MAX_FRAMES = 64
MAX_PIXELS = 2**17
#: Detected density below ``SPARSE_FACTOR`` times the low end of a model's
#: density range, or above ``DENSE_FACTOR`` times its high end, is outside.
#: Detections undercount dense frames (close emitters merge), hence the
#: lenient low side.
SPARSE_FACTOR = 0.5
DENSE_FACTOR = 1.25
#: PSF widths (sigma, camera pixels) this far below or above a model's range
#: warn, the upper side widened by 0.05 px per detected emitter/um^2. The
#: estimate reads 0.00-0.05 px off in sparse frames; in frames of 5.5
#: emitters/um^2 unresolved pairs look like wide spots (1.10 px spots read
#: 1.22-1.33 px). It cannot tell a thick sample from dense in-focus frames
#: (spots 1.21-1.27 px in a 1.5 um slab at 0.3-5 emitters/um^2 of 1.10 px
#: in-focus spots): the spread of the widths does (``THICK_SPREAD``).
SIGMA_TOLERANCE_PX = (0.15, 0.15)
#: Thick samples: the spread of the PSF widths of isolated spots (upper
#: over lower quartile of widths from a Gaussian fit with free width; spots
#: of raw-pixel SNR >= ``SPREAD_MIN_SNR``, at most ``SPREAD_SPOTS`` of them,
#: ``SPREAD_ITER`` iterations) at or above this says "defocused spots of
#: many depths" to a model trained in focus. Simulated frames of the
#: matrix's 48 conditions (5 seeds: 27000 ... 67000 + cell, 32 frames of
#: 64 x 64, so 240 chunks): in focus 1.05-1.23 at 0.1-2 emitters/um^2 and up
#: to 1.26 at up to 0.05 emitters per pixel^2; 1.5 um slabs 1.38-1.81 at
#: 0.1-2/um^2. Above ``SPREAD_MAX_DENSITY_PX2`` detected emitters per pixel^2
#: the test says nothing: overlapping in-focus spots reach 1.41 there (the
#: 2013 preset at 5.5 emitters/um^2: 1.31-1.41).
THICK_SPREAD = 1.32
SPREAD_MAX_DENSITY_PX2 = 0.035
SPREAD_MIN_SNR = 6.0
SPREAD_MIN_SPOTS = 30
SPREAD_SPOTS = 200
SPREAD_ITER = 10

#: Conditions of the shipped models, from ``scripts/train_pretrained.py``'s
#: settings (what the shipped files were trained on) and the model card. The
#: shipped files carry the same entry in their metadata; this table fills it
#: for files written before the entry existed.
SHIPPED_CONDITIONS = {
    "default": {
        "name": "default",
        "density_per_um2": [0.1, 15.0],
        "psf_fwhm_nm": [190.0, 350.0],
        "pixel_size_nm": 100.0,
        "psf_sigma_px": [0.81, 1.49],
        "photons": [200.0, 5000.0],
        "background_photons": [5.0, 200.0],
        "z_range_nm": [-750.0, 750.0],
        "focal_depth_nm": 400.0,
        "cameras": ["emccd", "scmos"],
        "structures": ["uniform", "filaments"],
        "summary": "0.1-15 emitters/um^2, PSF FWHM 190-350 nm at 100 nm pixels, "
        "in focus and 1.5 um thick samples, EMCCD and sCMOS",
    },
    "dense_2013": {
        "name": "dense_2013",
        "density_per_um2": [3.0, 8.0],
        "psf_fwhm_nm": [230.0, 290.0],
        "pixel_size_nm": 100.0,
        "psf_sigma_px": [0.98, 1.23],
        "photons": [800.0, 2500.0],
        "background_photons": [10.0, 40.0],
        "z_range_nm": [0.0, 0.0],
        "focal_depth_nm": None,
        "cameras": ["emccd"],
        "structures": ["uniform", "filaments"],
        "summary": "very dense in-focus 2013-like frames: 3-8 emitters/um^2, "
        "PSF FWHM 230-290 nm at 100 nm pixels",
    },
    "bt_hd_2013": {
        "name": "bt_hd_2013",
        "density_per_um2": [4.5, 6.5],
        "psf_fwhm_nm": [258.0, 258.0],
        "pixel_size_nm": 100.0,
        "psf_sigma_px": [1.10, 1.10],
        "photons": [1000.0, 2000.0],
        "background_photons": [20.0, 20.0],
        "z_range_nm": [0.0, 0.0],
        "focal_depth_nm": None,
        "cameras": ["emccd"],
        "structures": ["uniform"],
        "summary": "the 2013 Bundled Tubes HD conditions only: 5.5 emitters/um^2, "
        "PSF FWHM 258 nm at 100 nm pixels, 1000-2000 photons, in focus",
    },
}

#: ``--model auto``: the first shipped model whose range holds the data.
AUTO_ORDER = ("bt_hd_2013", "dense_2013", "default")
#: ``--model auto`` takes a specialist only where the default model detects
#: at least this fraction of the low end of its density range (stricter than
#: the warning: in the evaluation matrix, ``dense_2013`` loses 0.17-0.31
#: Jaccard to ``default`` on 1-2 emitters/um^2 in a 1.5 um thick sample,
#: which the PSF estimate cannot tell from in-focus frames).
AUTO_SPARSE_FACTOR = 0.6


class ConditionsWarning(UserWarning):
    """The data look outside what the model was trained for, or like noise."""


def model_conditions(localizer):
    """Return a model's ``conditions`` entry, or ``None`` when unknown."""
    return getattr(localizer, "conditions_", None)


# ---------------------------------------------------------------- estimate
def _raw_snr(frames, rows, cols, frame_index):
    """Wavelet SNR (3 x 3 maximum) at pixels, and per-frame detection images."""
    from scipy import ndimage

    from .fitting import filter_frames

    image, noise = filter_frames(frames, compiled=False)  # no numba import here
    peak = ndimage.maximum_filter(image, size=(1, 3, 3), mode="nearest")
    noise = np.where(noise > 0, noise, np.inf)
    return peak[frame_index, rows, cols] / noise[frame_index]


def _boxes_and_ring(frames, f, r, c):
    """7x7 boxes around ``(f, r, c)`` (float64) and the 24 pixels of their rim."""
    offsets = np.arange(-3, 4)
    boxes = frames[
        f[:, None, None],
        r[:, None, None] + offsets[None, :, None],
        c[:, None, None] + offsets[None, None, :],
    ].astype(np.float64)
    ring = np.concatenate(
        [boxes[:, 0, :], boxes[:, -1, :], boxes[:, 1:-1, 0], boxes[:, 1:-1, -1]],
        axis=1,
    )
    return boxes, ring


def _width_spread(frames, f, r, c):
    """Upper over lower quartile of fitted PSF widths at ``(f, r, c)``, and count.

    Each 7 x 7 box is fitted with an integrated Gaussian of free width
    (weighted least squares, :func:`~sklearn_smlm.fitting.fit_boxes`) after
    its ring median is subtracted and its ring noise scaled to that of a
    Poisson background of 10, so that the weights suit any camera.
    """
    from .fitting import fit_boxes

    if len(f) > SPREAD_SPOTS:  # evenly over the chunk, deterministic
        idx = np.linspace(0, len(f) - 1, SPREAD_SPOTS).astype(np.int64)
        f, r, c = f[idx], r[idx], c[idx]
    boxes, ring = _boxes_and_ring(frames, f, r, c)
    scale = 10.0 / np.clip(np.std(ring, axis=1), 1e-6, None) ** 2
    data = (boxes - np.median(ring, axis=1)[:, None, None]) * scale[:, None, None]
    data += 10.0
    n = len(f)
    init = np.column_stack(
        [
            np.full(n, 3.0),
            np.full(n, 3.0),
            np.clip(data.sum(axis=(1, 2)) - 490.0, 10.0, None),
            np.full(n, 10.0),
            np.full(n, 1.2),
        ]
    )
    params, ok = fit_boxes(data, init, method="lsq", max_iter=SPREAD_ITER)[:2]
    width = params[:, 4]
    width = width[ok & (width > 0.5) & (width < 3.5)]
    if len(width) < SPREAD_MIN_SPOTS:
        return float("nan"), int(len(width))
    q25, q75 = np.quantile(width, [0.25, 0.75])
    return float(q75 / q25), int(len(width))


def _isolated_spots(frames, min_snr=SPREAD_MIN_SNR, isolation_px=5):
    """Frame, row, column, SNR of isolated spots, and the bright-spot count."""
    from scipy.spatial import cKDTree

    from .fitting import detect_candidates

    # isolated: no other candidate (even a faint one) within isolation_px
    f, r, c, snr = detect_candidates(frames, threshold=NOISE_SNR, compiled=False)
    h, w = frames.shape[1:]
    n_bright = int(np.sum(snr >= BRIGHT_SNR))
    if len(f) == 0:
        return f, r, c, snr, n_bright
    pts = np.column_stack([f * 1e6, r, c]).astype(float)
    counts = cKDTree(pts).query_ball_point(pts, isolation_px, return_length=True)
    keep = (counts == 1) & (snr >= min_snr)
    keep &= (r >= 3) & (r < h - 3) & (c >= 3) & (c < w - 3)
    return f[keep], r[keep], c[keep], snr[keep], n_bright


def _spot_sigmas(frames, min_snr=8.0, isolation_px=5):
    """Per-spot PSF sigma (pixels) of bright isolated spots, by a 3-point fit.

    Also returns the number of bright spots (wavelet SNR >= ``BRIGHT_SNR``,
    isolated or not) and ``(frame, row, col)`` of the isolated spots of SNR
    >= ``SPREAD_MIN_SNR`` (for :func:`_width_spread`).

    The width along each axis is ``sqrt(-1 / c)`` with ``c`` the second
    difference of the log of the background-subtracted pixels through the
    maximum (exact for a sampled Gaussian); the mean of x and y, minus the
    pixel's own width (``1 / 12`` px^2, pixel integration), per spot.
    """
    f, r, c, snr, n_bright = _isolated_spots(frames, SPREAD_MIN_SNR, isolation_px)
    isolated = (f, r, c)  # for the width spread (SNR >= SPREAD_MIN_SNR)
    bright = snr >= min_snr
    f, r, c = f[bright], r[bright], c[bright]
    if len(f) == 0:
        return np.empty(0), n_bright, isolated
    boxes, ring = _boxes_and_ring(frames, f, r, c)
    signal = boxes - np.median(ring, axis=1)[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(signal)
        cx = logs[:, 3, 2] - 2 * logs[:, 3, 3] + logs[:, 3, 4]
        cy = logs[:, 2, 3] - 2 * logs[:, 3, 3] + logs[:, 4, 3]
        var = 0.5 * (-1.0 / cx + -1.0 / cy) - 1.0 / 12.0
    ok = np.isfinite(var) & (var > 0.05) & (cx < 0) & (cy < 0)
    return np.sqrt(var[ok]), n_bright, isolated


def estimate_conditions(frames, table=None, *, pixel_size_nm=100.0, spread=False):
    """Measure the conditions of frames (and of a model's detections there).

    Parameters
    ----------
    frames : ndarray of shape (n_frames, height, width)
        Raw camera frames (any offset and gain); the first 64 at most, and
        at most ``MAX_PIXELS`` pixels in all, are used.
    table : DataFrame, optional
        A model's localizations of these frames (``frame`` 0-based within
        ``frames``, ``x_nm``, ``y_nm``).
    pixel_size_nm : float, default=100.0
        Camera pixel size, to turn ``x_nm`` into pixels and areas into um^2.
    spread : bool, default=False
        Also fit the widths of up to 200 isolated spots and return
        their spread ``psf_width_spread`` (upper over lower quartile; ``nan``
        below 30 fitted spots) and ``n_fitted``: spots of many widths mean a
        thick sample (see :data:`THICK_SPREAD`). About 20-60 ms.

    Returns
    -------
    conditions : dict
        ``n_frames``, ``area_um2`` (of one frame); ``n_bright_spots``
        (wavelet SNR >= ``BRIGHT_SNR``, from the raw pixels alone);
        ``psf_sigma_px`` (median width of bright isolated spots, ``nan``
        below 5 spots), its upper quartile ``psf_sigma_px_p75`` and
        ``n_spots``; with ``table``: ``n_detections``,
        ``detections_per_um2`` (all detections per um^2 per frame),
        ``density_per_um2`` (those brighter than the noise, per um^2 per
        frame), ``noise_fraction`` (fraction of detections whose raw-pixel
        SNR is below :data:`NOISE_SNR`) and ``median_snr``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> frames = rng.poisson(20.0, (4, 32, 32)).astype(np.float32)
    >>> estimate_conditions(frames)["n_spots"]
    0
    """
    frames = np.asarray(frames)
    n_max = max(1, min(MAX_FRAMES, MAX_PIXELS // (frames.shape[1] * frames.shape[2])))
    frames = frames[:n_max].astype(np.float32)
    n, h, w = frames.shape
    area_um2 = _frame_area_um2((h, w), pixel_size_nm)
    sigmas, n_bright, isolated = _spot_sigmas(frames)
    enough = len(sigmas) >= 5
    out = {
        "n_frames": int(n),
        "area_um2": float(area_um2),
        "n_bright_spots": n_bright,
        "n_spots": int(len(sigmas)),
        "psf_sigma_px": float(np.median(sigmas)) if enough else float("nan"),
        "psf_sigma_px_p75": float(np.quantile(sigmas, 0.75))
        if enough
        else float("nan"),
    }
    if spread:
        if len(isolated[0]) >= SPREAD_MIN_SPOTS:
            out["psf_width_spread"], out["n_fitted"] = _width_spread(frames, *isolated)
        else:
            out["psf_width_spread"], out["n_fitted"] = float("nan"), 0
    if table is None:
        return out
    sub = table[table["frame"].to_numpy() < n]
    fi = sub["frame"].to_numpy().astype(np.int64)
    cols = np.clip(np.rint(sub["x_nm"].to_numpy() / pixel_size_nm - 0.5), 0, w - 1)
    rows = np.clip(np.rint(sub["y_nm"].to_numpy() / pixel_size_nm - 0.5), 0, h - 1)
    snr = _raw_snr(frames, rows.astype(np.int64), cols.astype(np.int64), fi)
    bright = snr >= NOISE_SNR
    out.update(
        n_detections=int(len(sub)),
        detections_per_um2=len(sub) / (area_um2 * n),
        density_per_um2=float(bright.sum()) / (area_um2 * n),
        noise_fraction=float(np.mean(~bright)) if len(sub) else float("nan"),
        median_snr=float(np.median(snr)) if len(sub) else float("nan"),
    )
    return out


# ----------------------------------------------------------------- compare
def conditions_problems(
    conditions, estimate, *, pixel_size_nm=100.0, sparse_factor=SPARSE_FACTOR
):
    """Reasons why an estimate lies outside a model's conditions (may be empty).

    Parameters
    ----------
    conditions : dict or None
        A model's ``conditions`` entry; ``None`` (unknown) checks only whether
        the detections look like noise.
    estimate : dict
        From :func:`estimate_conditions` with a table.
    pixel_size_nm : float, default=100.0
        The data's pixel size: turns the detected density into emitters per
        pixel^2 for the thick-sample test (the PSF range and the estimate
        are both in camera pixels, which is what the network sees).

    Returns
    -------
    problems : list of str
    """
    problems = []
    n_det = estimate.get("n_detections", 0)
    if estimate.get("n_bright_spots", 1) == 0:
        problems.append(
            "no spot stands clearly above the noise (wavelet SNR >= "
            f"{BRIGHT_SNR:g}): they look like pure background"
        )
    elif n_det >= MIN_NOISE_DETECTIONS and (
        estimate["n_bright_spots"] < BRIGHT_FRACTION * n_det
    ):
        problems.append(
            f"its {n_det} detections look like noise (the raw frames hold "
            f"{estimate['n_bright_spots']} clearly bright spots)"
        )
    elif n_det >= MIN_DETECTIONS and estimate["noise_fraction"] >= NOISE_FRACTION:
        problems.append(
            f"{estimate['noise_fraction']:.0%} of its {n_det} detections are no "
            "brighter than the background noise"
        )
    if not conditions:
        return problems
    low, high = conditions["density_per_um2"]
    density = estimate.get("density_per_um2")
    if density is not None and n_det >= MIN_DETECTIONS:
        if density < sparse_factor * low:
            problems.append(
                f"{density:.2g} emitters/um^2 detected, fewer than its {low:g}-{high:g}"
            )
        elif density > DENSE_FACTOR * high:
            problems.append(
                f"{density:.2g} emitters/um^2 detected, more than its {low:g}-{high:g}"
            )
    # The network sees pixels: the PSF width in camera pixels of its training
    # frames is what counts, whatever the data's pixel size in nm.
    sigma_range = conditions.get("psf_sigma_px")
    sigma = estimate.get("psf_sigma_px", float("nan"))
    if sigma_range and np.isfinite(sigma):
        lo, hi = sigma_range
        if conditions.get("focal_depth_nm"):  # thick samples: wider spots seen
            hi *= 1.5
        # close emitters widen the measured spots: +0.05 px per emitter/um^2
        upper = hi + SIGMA_TOLERANCE_PX[1] + 0.05 * estimate.get("density_per_um2", 0)
        if sigma < lo - SIGMA_TOLERANCE_PX[0] or sigma > upper:
            problems.append(
                f"PSF sigma {sigma:.2f} px, outside its {lo:.2f}-{hi:.2f} px"
            )
    # Spots of many widths: a thick sample, to a model trained in focus.
    width_spread = estimate.get("psf_width_spread", float("nan"))
    per_px2 = estimate.get("density_per_um2", 0.0) * (pixel_size_nm / 1000.0) ** 2
    if (
        not conditions.get("focal_depth_nm")
        and np.isfinite(width_spread)
        and width_spread >= THICK_SPREAD
        and per_px2 <= SPREAD_MAX_DENSITY_PX2
    ):
        problems.append(
            f"spot widths vary as in a thick sample (upper/lower quartile "
            f"{width_spread:.2f}, in focus below {THICK_SPREAD:g}), but it was "
            "trained in focus"
        )
    return problems


def _advice(name):
    if name == "default":
        return (
            "check that the frames hold emitters, or raise the threshold "
            "(set_params(threshold=...) / --threshold)"
        )
    return "use pretrained('default') (--model default) or --model auto"


def check_and_warn(localizer, frames, table, *, frame_offset=0, stacklevel=3):
    """Warn once (one line) when ``frames`` look outside the model's range.

    The hook of ``predict`` / ``iter_predict``: measures the first
    :data:`MAX_FRAMES` frames and the model's detections there. Models that
    do not record their conditions (``conditions_`` None: trained by the
    user, or files written before the entry existed) are not checked.

    Returns
    -------
    problems : list of str
        Empty when nothing is wrong.
    """
    conditions = model_conditions(localizer)
    if not conditions:  # a model that does not record its conditions: no check
        return []
    if frame_offset:
        table = table.assign(frame=table["frame"] - frame_offset)
    estimate = estimate_conditions(
        frames,
        table,
        pixel_size_nm=float(localizer.pixel_size_nm),
        # the width fit only speaks against models trained in focus
        spread=not conditions.get("focal_depth_nm"),
    )
    problems = conditions_problems(
        conditions, estimate, pixel_size_nm=float(localizer.pixel_size_nm)
    )
    if problems:
        name = (conditions or {}).get("name", "this model")
        trained = (conditions or {}).get("summary")
        message = (
            f"model {name!r}"
            + (f" (trained for {trained})" if trained else "")
            + f": in the first {estimate['n_frames']} frames "
            + "; ".join(problems)
            + f"; {_advice(name)}."
        )
        warnings.warn(message, ConditionsWarning, stacklevel=stacklevel)
    return problems


# ------------------------------------------------------------------ choose
def choose_pretrained(frames, *, pixel_size_nm=100.0, device="auto"):
    """Name of the shipped model that fits ``frames`` best.

    The ``default`` model localizes the first frames; the first model of
    :data:`AUTO_ORDER` (the most accurate first) whose conditions hold what
    was measured is chosen, else ``"default"``.

    Parameters
    ----------
    frames : ndarray of shape (n_frames, height, width)
        The first frames of the data (at most 64 are used).
    pixel_size_nm : float, default=100.0
    device : str, default="auto"

    Returns
    -------
    name : str
    estimate : dict
        What :func:`estimate_conditions` measured with the ``default`` model.
    """
    from .localizer import DistanceTransformLocalizer, pretrained_names

    frames = np.asarray(frames, dtype=np.float32)[:MAX_FRAMES]
    loc = DistanceTransformLocalizer.pretrained("default", device=device)
    loc.set_params(pixel_size_nm=float(pixel_size_nm))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConditionsWarning)
        table = loc.predict(frames)
    estimate = estimate_conditions(
        frames, table, pixel_size_nm=pixel_size_nm, spread=True
    )
    available = pretrained_names()
    for name in AUTO_ORDER:
        if name not in available:
            continue
        if not conditions_problems(
            SHIPPED_CONDITIONS.get(name),
            estimate,
            pixel_size_nm=pixel_size_nm,
            sparse_factor=AUTO_SPARSE_FACTOR,
        ):
            return name, estimate
    return "default", estimate


# --------------------------------------------------------------- decision
def _kept(table, keep):
    """Rows of ``table`` where ``keep``, index reset (``table`` when all are)."""
    if keep.all():
        return table
    return table[keep].reset_index(drop=True)


def _in_sparse_frames(table, frame_area_um2, max_density_per_um2):
    """Whether each row's frame has fewer than ``max_density_per_um2`` per um^2."""
    frames = table["frame"].to_numpy()
    counts = np.bincount(frames - frames.min())
    return counts[frames - frames.min()] < max_density_per_um2 * frame_area_um2


def _frame_area_um2(frame_shape, pixel_size_nm):
    """Area of one frame of ``frame_shape`` (rows, columns) in um^2."""
    return frame_shape[0] * frame_shape[1] * (pixel_size_nm / 1e3) ** 2


def drop_noise_frames(frames, table, min_frame_snr):
    """Drop the detections of frames without a spot of ``min_frame_snr``.

    Parameters
    ----------
    frames : ndarray of shape (n_frames, height, width)
        Raw camera frames.
    table : DataFrame
        Their localizations (``frame`` 0-based within ``frames``).
    min_frame_snr : float or None
        A frame keeps its detections if its wavelet detection image
        (:func:`~sklearn_smlm.fitting.detect_candidates`) has a local maximum
        of at least this many noise standard deviations; ``None`` keeps all.

    Returns
    -------
    table : DataFrame
        The rows kept, index reset (the same object when nothing is dropped).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> frames = rng.poisson(20.0, (2, 32, 32)).astype(np.float32)
    >>> frames[1, 10, 12] += 400.0
    >>> table = pd.DataFrame({"frame": [0, 1], "x_nm": [500.0, 1250.0],
    ...                       "y_nm": [500.0, 1050.0]})
    >>> drop_noise_frames(frames, table, 6.0)["frame"].tolist()
    [1]
    """
    if min_frame_snr is None or len(table) == 0:
        return table
    from .fitting import detect_candidates

    # scipy, not the compiled kernels: the network's path stays free of the
    # numba import (a second of start-up) and costs ~1 % of the network here
    bright = detect_candidates(
        np.asarray(frames, dtype=np.float32),
        threshold=float(min_frame_snr),
        compiled=False,
    )[0]
    has_spot = np.zeros(len(frames), dtype=bool)
    has_spot[bright] = True
    keep = has_spot[table["frame"].to_numpy()]
    return _kept(table, keep)


#: ``drop_sparse_duplicates`` acts only in frames with fewer detections than
#: this per um^2: there two true emitters within ``radius_nm`` are rare, and
#: a defocused spot that the network reports twice is the commonest false
#: detection (simulated 1.5 um slabs at 0.1-0.5 emitters/um^2: 80-110 of the
#: 110-140 false detections of the default model in 24 frames of 64 x 64 lie
#: within 350 nm of a true emitter and of another detection). A gate of 0.75
#: gained mean Jaccard +0.0009 on the model matrix's recipes with other seeds
#: (17000+, 18000+, 96 frames per cell) but lost 0.0031 in a medium filament
#: cell (160 nm pixels), more than the 0.0025 allowed when choosing.
SPARSE_DUPLICATE_DENSITY = 0.5


def drop_sparse_duplicates(
    table, radius_nm, *, frame_area_um2, max_density_per_um2=SPARSE_DUPLICATE_DENSITY
):
    """In sparse frames, keep only the higher-scoring of two close detections.

    Parameters
    ----------
    table : DataFrame
        Localizations with ``frame``, ``x_nm``, ``y_nm`` and ``score``.
    radius_nm : float or None
        Two detections of one frame closer than this are one emitter reported
        twice; the lower ``score`` is dropped. ``None`` keeps all.
    frame_area_um2 : float
        Area of one frame.
    max_density_per_um2 : float, default=SPARSE_DUPLICATE_DENSITY
        Only frames with fewer detections per um^2 than this are touched.

    Returns
    -------
    table : DataFrame
        The rows kept, index reset (the same object when nothing is dropped).

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"frame": [0, 0, 0], "x_nm": [1000.0, 1080.0, 3000.0],
    ...                       "y_nm": [1000.0, 1000.0, 3000.0],
    ...                       "score": [900.0, 400.0, 800.0]})
    >>> drop_sparse_duplicates(table, 100.0, frame_area_um2=40.96)["x_nm"].tolist()
    [1000.0, 3000.0]
    """
    if radius_nm is None or len(table) < 2:
        return table
    from scipy.spatial import cKDTree

    from ._validation import check_real

    check_real(radius_nm, "duplicate_radius_nm", low=0, low_open=True)
    frames = table["frame"].to_numpy()
    sparse = _in_sparse_frames(table, frame_area_um2, max_density_per_um2)
    xy = table[["x_nm", "y_nm"]].to_numpy(dtype=np.float64)
    score = table["score"].to_numpy()
    keep = np.ones(len(table), dtype=bool)
    idx = np.flatnonzero(sparse)
    if len(idx) > 1:
        # one tree over the sparse frames: frames kept apart along a third axis
        pts = np.column_stack([xy[idx], frames[idx] * 10.0 * (radius_nm + 1e6)])
        for a, b in sorted(cKDTree(pts).query_pairs(float(radius_nm))):
            i, j = idx[a], idx[b]
            keep[j if score[i] >= score[j] else i] = False
    return _kept(table, keep)


#: ``drop_edge_spill`` applies its higher threshold to detections closer than
#: this to the frame's edge, in camera pixels. Emitters just outside the field
#: (whose light spills in) are reported a median 0.35-0.49 px inside it (model
#: matrix recipes, other seeds, per density and focus); true emitters are
#: spread over the whole frame.
EDGE_SPILL_PX = 0.5


def drop_edge_spill(table, threshold, *, frame_shape, pixel_size_nm):
    """Drop weak detections at the frame's edge (light of emitters outside).

    An emitter just outside the field of view spills part of its light into
    the frame, and the network reports it at the edge, inside the field: the
    commonest false detection of the default model in sparse in-focus frames
    (58-62 % of them on the model matrix's recipes) and 9-34 % elsewhere.
    Such spots score lower than whole ones (median 383-427 against 628-820
    for true detections), so at the edge a higher score is asked for.

    Parameters
    ----------
    table : DataFrame
        Localizations with ``x_nm``, ``y_nm`` (0 at the first pixel's outer
        edge) and ``score``.
    threshold : float or None
        Least score kept for detections closer than :data:`EDGE_SPILL_PX`
        pixels to the edge. ``None`` keeps all.
    frame_shape : (int, int)
        Rows and columns of the frames.
    pixel_size_nm : float
        Camera pixel size.

    Returns
    -------
    table : DataFrame
        The rows kept, index reset (the same object when nothing is dropped).

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"frame": [0, 0, 0], "x_nm": [30.0, 30.0, 3000.0],
    ...                       "y_nm": [3000.0, 3000.0, 3000.0],
    ...                       "score": [350.0, 700.0, 350.0]})
    >>> drop_edge_spill(table, 400.0, frame_shape=(64, 64),
    ...                 pixel_size_nm=100.0)["score"].tolist()
    [700.0, 350.0]
    """
    if threshold is None:
        return table
    from ._validation import check_real

    check_real(threshold, "edge_threshold")
    if len(table) == 0:
        return table
    rows, cols = frame_shape
    x = table["x_nm"].to_numpy() / pixel_size_nm
    y = table["y_nm"].to_numpy() / pixel_size_nm
    edge_px = np.minimum(np.minimum(x, cols - x), np.minimum(y, rows - y))
    keep = (edge_px >= EDGE_SPILL_PX) | (table["score"].to_numpy() >= threshold)
    return _kept(table, keep)


#: ``drop_thick_edge_spill`` acts only on chunks with fewer detections than
#: this per um^2 per frame.
THICK_EDGE_DENSITY = 0.5


def drop_thick_edge_spill(
    frames, table, threshold, *, pixel_size_nm, max_density_per_um2=THICK_EDGE_DENSITY
):
    """:func:`drop_edge_spill`, only in sparse chunks of a thick sample.

    In sparse thick frames 68-71 % of the default model's edge detections
    scoring below 400 are false (defocused emitters outside the field
    spill much light in), against 33-59 % elsewhere, where an edge rule
    trades true for false detections one to one. The chunk (``frames`` and
    their ``table``) is thick when the widths of its isolated spots spread
    as in a thick sample (:func:`estimate_conditions` with ``spread=True``,
    at or above :data:`THICK_SPREAD`; about 20-60 ms) and sparse below
    ``max_density_per_um2`` detections per um^2 per frame.

    Parameters
    ----------
    frames : ndarray of shape (n_frames, height, width)
        The raw frames of ``table``.
    table : DataFrame
        Their localizations (``frame`` 0-based within ``frames``).
    threshold : float or None
        Least score kept at the edge in such chunks. ``None`` keeps all.
    pixel_size_nm : float
        Camera pixel size.
    max_density_per_um2 : float, default=THICK_EDGE_DENSITY
        Denser chunks are left alone.

    Returns
    -------
    table : DataFrame
        The rows kept (the same object when nothing is dropped).
    """
    if threshold is None:
        return table
    from ._validation import check_real

    check_real(threshold, "thick_edge_threshold")
    if len(table) == 0:
        return table
    n, h, w = frames.shape
    area_um2 = _frame_area_um2((h, w), pixel_size_nm)
    if len(table) >= max_density_per_um2 * area_um2 * n:
        return table
    found = estimate_conditions(frames, table, pixel_size_nm=pixel_size_nm, spread=True)
    sparse = found["detections_per_um2"] < max_density_per_um2
    if not (sparse and found["psf_width_spread"] >= THICK_SPREAD):
        return table
    return drop_edge_spill(
        table, threshold, frame_shape=(h, w), pixel_size_nm=pixel_size_nm
    )


#: ``drop_weak_sparse`` acts only in frames with fewer detections than this
#: per um^2.
WEAK_SPARSE_DENSITY = 0.5


def drop_weak_sparse(
    table, fraction, *, frame_area_um2, max_density_per_um2=WEAK_SPARSE_DENSITY
):
    """In sparse frames, drop detections far weaker than the typical one.

    In sparse frames a true emitter is an isolated whole spot and scores
    about as high as the others (the 5 % quantile of true detections is at
    0.64-0.84 of their median in the model matrix's sparse cells), while noise
    peaks and partial spots score near the threshold. The reference is the
    median score of all detections of ``table`` (one ``predict`` call or one
    chunk), so it follows the data's brightness and focus.

    Parameters
    ----------
    table : DataFrame
        Localizations with ``frame`` and ``score``.
    fraction : float or None
        Detections of sparse frames scoring below ``fraction`` times the
        median score are dropped. ``None`` keeps all.
    frame_area_um2 : float
        Area of one frame.
    max_density_per_um2 : float, default=WEAK_SPARSE_DENSITY
        Only frames with fewer detections per um^2 than this are touched.

    Returns
    -------
    table : DataFrame
        The rows kept, index reset (the same object when nothing is dropped).

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"frame": [0, 0, 0, 1], "x_nm": [1e3, 2e3, 3e3, 1e3],
    ...                       "y_nm": [1e3, 2e3, 3e3, 1e3],
    ...                       "score": [800.0, 820.0, 380.0, 790.0]})
    >>> drop_weak_sparse(table, 0.5, frame_area_um2=40.96)["score"].tolist()
    [800.0, 820.0, 790.0]
    """
    if fraction is None:
        return table
    from ._validation import check_real

    check_real(fraction, "sparse_score_fraction", low=0, high=1)
    if len(table) == 0:
        return table
    sparse = _in_sparse_frames(table, frame_area_um2, max_density_per_um2)
    score = table["score"].to_numpy()
    keep = ~sparse | (score >= fraction * np.median(score))
    return _kept(table, keep)


def decide_detections(
    table,
    *,
    frame_shape,
    pixel_size_nm,
    duplicate_radius_nm=None,
    edge_threshold=None,
    sparse_score_fraction=None,
):
    """Apply the detection rules of a localizer after its threshold, in order.

    :func:`drop_weak_sparse`, then :func:`drop_sparse_duplicates`, then
    :func:`drop_edge_spill`; each one is skipped when its parameter is None.
    """
    area_um2 = _frame_area_um2(frame_shape, pixel_size_nm)
    table = drop_weak_sparse(table, sparse_score_fraction, frame_area_um2=area_um2)
    table = drop_sparse_duplicates(table, duplicate_radius_nm, frame_area_um2=area_um2)
    return drop_edge_spill(
        table, edge_threshold, frame_shape=frame_shape, pixel_size_nm=pixel_size_nm
    )
