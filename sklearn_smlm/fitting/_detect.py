"""Image filtering and candidate detection with a threshold tied to the noise level.

Two filters, both as in ThunderSTORM:

- ``"wavelet"``: the a trous B-spline wavelet transform (cubic B-spline,
  kernel ``[1, 4, 6, 4, 1] / 16``, then the same kernel dilated by 2).
  ``V1 = I * k1``, ``V2 = V1 * k2``; the fine scale ``F1 = I - V1`` holds
  mostly pixel noise, the second scale ``F2 = V1 - V2`` holds spots and is the
  detection image.
- ``"dog"``: a difference of Gaussians of widths ``sigma`` and ``1.6 sigma``
  (``sigma`` the PSF width in pixels).

The threshold is in units of the noise standard deviation *of the detection
image*. The noise is measured robustly on ``F1`` in every frame (1.4826 times
the median absolute deviation, so that spots barely move it) and carried over
to the detection image by the ratio of the two filters' noise gains for white
noise. ThunderSTORM's default rule ``threshold = std(Wave.F1)`` is therefore
``threshold = 1 / noise_gain("wavelet") ~= 4.4`` here (for white noise, up
to the robust estimate).
"""

import numpy as np
from scipy import ndimage

__all__ = ["filter_frames", "detect_candidates", "noise_gain"]

_B3 = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
_B3_DILATED = np.array([1.0, 0.0, 4.0, 0.0, 6.0, 0.0, 4.0, 0.0, 1.0]) / 16.0
_DOG_RATIO = 1.6
_MAD_TO_STD = 1.4826
_NOISE_SAMPLES = 16384


def _smooth(frames, kernel):
    out = ndimage.correlate1d(frames, kernel, axis=1, mode="reflect")
    return ndimage.correlate1d(out, kernel, axis=2, mode="reflect")


def _fine_scale(frames):
    return frames - _smooth(frames, _B3)


def _detection_image(frames, method, sigma_px, v1=None):
    if method == "wavelet":
        v1 = _smooth(frames, _B3) if v1 is None else v1
        return v1 - _smooth(v1, _B3_DILATED)
    if method == "dog":
        return ndimage.gaussian_filter(
            frames, (0, sigma_px, sigma_px), mode="reflect"
        ) - ndimage.gaussian_filter(
            frames, (0, _DOG_RATIO * sigma_px, _DOG_RATIO * sigma_px), mode="reflect"
        )
    raise ValueError(f"detection must be 'wavelet' or 'dog', got {method!r}.")


def noise_gain(method, sigma_px=1.3):
    """White-noise std of the detection image relative to that of ``F1``.

    Parameters
    ----------
    method : {"wavelet", "dog"}
    sigma_px : float, default=1.3
        PSF width in pixels (used by ``"dog"``).

    Returns
    -------
    gain : float

    Examples
    --------
    >>> round(noise_gain("wavelet"), 3)
    0.225
    """
    size = 41
    delta = np.zeros((1, size, size))
    delta[0, size // 2, size // 2] = 1.0
    detect = _detection_image(delta, method, sigma_px)
    fine = _fine_scale(delta)
    return float(np.sqrt((detect**2).sum() / (fine**2).sum()))


def filter_frames(frames, method="wavelet", sigma_px=1.3, *, compiled=True):
    """Return the detection image and its noise std in every frame.

    Parameters
    ----------
    frames : ndarray of shape (n_frames, H, W)
    method : {"wavelet", "dog"}, default="wavelet"
    sigma_px : float, default=1.3
        PSF width in pixels (used by ``"dog"``).
    compiled : bool, default=True
        Filter ``"wavelet"`` frames with the compiled (numba) kernel, 3-5x
        faster on long stacks; the first call in a process loads numba
        (about a second). False runs the scipy passes: the same values to
        float32 rounding, and no numba import (the network's per-frame
        checks use it so that a short ``localize`` starts quickly).

    Returns
    -------
    image : ndarray of shape (n_frames, H, W)
    noise : ndarray of shape (n_frames,)
        Robust noise std of ``image``, from the median absolute deviation of
        the fine wavelet scale.
    """
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    # The noise of a frame larger than 128 x 128 is estimated on an evenly
    # spread subset of 16384 or more of its pixels (relative error about 1 %).
    step = max(1, frames.shape[1] * frames.shape[2] // _NOISE_SAMPLES)
    if compiled and method == "wavelet" and frames.ndim == 3 and len(frames):
        # one compiled pass per frame (numba): 3-5x faster than the
        # scipy.ndimage passes below, the same values to float32 rounding
        from ._kernels import run_in_threads, wavelet_filter

        image = np.empty(frames.shape, np.float32)
        mad = np.empty(len(frames))

        def run(a, b):
            wavelet_filter(frames[a:b], step, image[a:b], mad[a:b])

        # frames split across numba's threads, each filtered alone
        run_in_threads(run, len(frames), max(1, 65536 // frames[0].size))
        return image, _MAD_TO_STD * mad * noise_gain(method, sigma_px)
    v1 = _smooth(frames, _B3)  # shared by the fine scale and the wavelet image
    image = _detection_image(frames, method, sigma_px, v1=v1)
    fine = (frames - v1).reshape(len(frames), -1)
    fine = fine[:, ::step]
    mad = np.median(np.abs(fine - np.median(fine, axis=1, keepdims=True)), axis=1)
    return image, _MAD_TO_STD * mad * noise_gain(method, sigma_px)


def detect_candidates(
    frames, *, method="wavelet", threshold=4.0, sigma_px=1.3, compiled=True
):
    """Local maxima (8-neighbourhood) of the filtered frames above the threshold.

    Parameters
    ----------
    frames : ndarray of shape (n_frames, H, W)
    method : {"wavelet", "dog"}, default="wavelet"
    threshold : float, default=4.0
        In units of the noise std of the detection image (see the module
        docstring). A frame without measurable noise (constant) gives no
        candidate.
    sigma_px : float, default=1.3
    compiled : bool, default=True
        Filter and find the maxima with the compiled (numba) kernels, or with
        numpy and scipy (no numba import; see :func:`filter_frames`).

    Returns
    -------
    frame, row, col : ndarray of int64 of shape (n,)
    strength : ndarray of shape (n,)
        Height of the maximum in units of the noise std.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = rng.poisson(10.0, (1, 32, 32)).astype(float)
    >>> img[0, 10, 20] += 300
    >>> f, r, c, s = detect_candidates(img)
    >>> r.tolist(), c.tolist()
    ([10], [20])
    """
    image, noise = filter_frames(frames, method, sigma_px, compiled=compiled)
    # Pixels above the threshold first (few in sparse frames), then whether
    # each is a maximum of its 3 x 3 neighbourhood, the border replicated
    # (as ``maximum_filter(..., mode="nearest") == image``, without filtering
    # the whole stack).
    level = np.where(noise > 0, threshold * noise, np.inf)  # no noise: no candidate
    if compiled and image.ndim == 3 and image.dtype == np.float32:
        from ._kernels import local_maxima, run_in_threads  # compiled (numba)

        level = level.astype(np.float64)
        pieces = {}

        def run(a, b):
            fr, r, c = local_maxima(image[a:b], level[a:b])
            pieces[a] = (fr + a, r, c)

        # frames split across numba's threads, in order
        per_frame = max(1, image.shape[1] * image.shape[2])
        run_in_threads(run, len(image), max(1, 65536 // per_frame))
        frame, row, col = (
            np.concatenate([pieces[a][i] for a in sorted(pieces)]) for i in range(3)
        )
        snr = image[frame, row, col] / noise[frame]
        return frame, row, col, snr.astype(np.float64)
    above = image > level[:, None, None]
    frame, row, col = np.nonzero(above)
    value = image[frame, row, col]
    h, w = image.shape[1:]
    is_max = np.ones(len(frame), dtype=bool)
    for dr in (-1, 0, 1):
        r = np.clip(row + dr, 0, h - 1)
        for dc in (-1, 0, 1):
            if dr or dc:
                is_max &= value >= image[frame, r, np.clip(col + dc, 0, w - 1)]
    frame, row, col = frame[is_max], row[is_max], col[is_max]
    snr = image[frame, row, col] / noise[frame]
    return frame, row, col, snr.astype(np.float64)
