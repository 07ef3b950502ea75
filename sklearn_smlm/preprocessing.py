"""Per-frame normalization of camera frames, so one model serves any camera."""

import numpy as np
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, TransformerMixin

from ._validation import check_frames, check_positive, check_real

__all__ = ["FrameNormalizer"]

_METHODS = ("robust", "noise")
_CAMERA_PARAMS = ("baseline_adu", "e_per_adu", "em_gain", "quantum_efficiency")
# Median absolute deviation of a normal variable, in standard deviations; the
# difference of two pixels has sqrt(2) times the pixel noise.
_MAD_TO_SIGMA = 1.482602218505602 / np.sqrt(2.0)
# Scale floor relative to the frame's full range, so that a frame that is flat
# but for a few pixels is not blown up (and the floor keeps the gain invariance).
_RELATIVE_FLOOR = 1e-3


class FrameNormalizer(TransformerMixin, BaseEstimator):
    """Bring camera frames to a common scale: background 0, signal about 1.

    Optionally converts ADU to photons first with a :class:`~sklearn_smlm.Camera`
    (``camera``, :meth:`~sklearn_smlm.Camera.to_photons`), or with the
    shorthand ``baseline_adu`` ... ``quantum_efficiency``: ``(ADU -
    baseline_adu) * e_per_adu / em_gain / quantum_efficiency`` (each factor
    only when given).
    Then each frame ``F`` becomes ``(F - background) / scale`` with

    - ``background``: the ``background_percentile`` of the frame's pixels. A
      low percentile stays on the background in dense frames where half the
      pixels hold signal, and is the background itself in sparse ones.
    - ``scale`` with ``method="robust"``: the ``scale_percentile`` minus the
      background, i.e. the brightness of the brightest pixels (emitters) in
      dense and sparse frames alike; with ``method="noise"``: the standard
      deviation of the pixel noise, from the median absolute difference of
      horizontally adjacent pixels (the map then reads in units of noise,
      insensitive to how many emitters the frame holds).
    - the scale is floored at ``1e-3`` of the frame's range (max - min) and at
      ``min_scale``; a perfectly flat frame becomes all zeros.

    Without ``min_scale`` the result does not depend on the camera gain and
    offset: ``transform(a * X + b) == transform(X)`` for any ``a > 0`` (up to
    float rounding). Stateless: ``fit`` only checks the parameters.

    Parameters
    ----------
    baseline_adu : float, optional
        Camera offset in ADU, subtracted first.
    e_per_adu : float, optional
        Electrons per ADU (the camera's conversion factor).
    em_gain : float, optional
        EMCCD electron-multiplying gain.
    quantum_efficiency : float, optional
        Photons to photo-electrons, in (0, 1].
    method : {"robust", "noise"}, default="robust"
        How the scale is measured (see above).
    background_percentile : float, default=20.0
        Percentile of the frame taken as its background, in [0, 100).
    scale_percentile : float, default=99.0
        Percentile of the frame taken as the signal level (``method="robust"``),
        in (background_percentile, 100].
    min_scale : float, optional
        Absolute floor on the scale, in photons when the camera is calibrated
        (in the input units otherwise). It keeps the noise of empty frames from
        being amplified, at the cost of the gain invariance.
    camera : Camera, optional
        The camera whose ADU are converted to photons, per-pixel sCMOS maps
        included; instead of ``baseline_adu`` ... ``quantum_efficiency``
        (giving both is an error). Change it on a fitted localizer with
        ``localizer.set_params(camera=...)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.preprocessing import FrameNormalizer
    >>> X = np.random.default_rng(0).poisson(10.0, size=(2, 8, 8)) + 100.0
    >>> Z = FrameNormalizer().fit_transform(X)
    >>> Z.shape, Z.dtype
    ((2, 8, 8), dtype('float32'))
    >>> bool(np.allclose(FrameNormalizer().transform(3 * X + 7), Z, atol=1e-5))
    True
    """

    def __init__(
        self,
        baseline_adu=None,
        e_per_adu=None,
        em_gain=None,
        quantum_efficiency=None,
        method="robust",
        background_percentile=20.0,
        scale_percentile=99.0,
        min_scale=None,
        camera=None,
    ):
        self.baseline_adu = baseline_adu
        self.e_per_adu = e_per_adu
        self.em_gain = em_gain
        self.quantum_efficiency = quantum_efficiency
        self.method = method
        self.background_percentile = background_percentile
        self.scale_percentile = scale_percentile
        self.min_scale = min_scale
        self.camera = camera

    def _check_params(self):
        if self.camera is not None:
            from .camera import Camera

            if not isinstance(self.camera, Camera):
                what = type(self.camera).__name__
                raise TypeError(f"camera must be a Camera or None, got {what}.")
            given = [n for n in _CAMERA_PARAMS if getattr(self, n) is not None]
            if given:
                raise ValueError(
                    f"give the camera or {', '.join(given)}, not both; put "
                    "every camera value in the Camera."
                )
        if self.baseline_adu is not None:
            check_real(self.baseline_adu, "baseline_adu")
        for name in ("e_per_adu", "em_gain", "quantum_efficiency", "min_scale"):
            if getattr(self, name) is not None:
                check_positive(getattr(self, name), name)
        if self.quantum_efficiency is not None and self.quantum_efficiency > 1:
            raise ValueError(
                f"quantum_efficiency must be in (0, 1], got {self.quantum_efficiency}."
            )
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {self.method!r}.")
        low = check_positive(
            self.background_percentile, "background_percentile", allow_zero=True
        )
        high = check_positive(self.scale_percentile, "scale_percentile")
        if not low < 100 or not low < high <= 100:
            raise ValueError(
                "need 0 <= background_percentile < scale_percentile <= 100, got "
                f"{low} and {high}."
            )

    def fit(self, X, y=None):
        """Check the parameters and the frames; nothing is learnt.

        Parameters
        ----------
        X : array-like of shape (n_frames, height, width)
            Camera frames.
        y : None
            Ignored.

        Returns
        -------
        self : FrameNormalizer
        """
        self._check_params()
        _check_dense(X)
        check_frames(X)
        return self

    def transform(self, X):
        """Normalize each frame.

        Parameters
        ----------
        X : array-like of shape (n_frames, height, width) or (height, width)
            Camera frames in ADU (or photons).

        Returns
        -------
        frames : ndarray of shape (n_frames, height, width), dtype float32
        """
        self._check_params()
        _check_dense(X)
        frames = check_frames(X, dtype=np.float32)
        if isinstance(X, np.ndarray) and np.may_share_memory(frames, X):
            frames = frames.copy()  # normalized in place below
        camera = self.get_camera()
        if camera is not None:
            frames = camera.to_photons(frames, copy=False)
        n_frames, height, width = frames.shape
        flat = frames.reshape(n_frames, -1)
        n_pixels = flat.shape[1]

        k_low = _rank(self.background_percentile, n_pixels)
        k_high = _rank(self.scale_percentile, n_pixels)
        kth = sorted({0, k_low, k_high, n_pixels - 1})
        # One partial sort gives all order statistics, far cheaper than
        # np.percentile (method "lower": exact order statistics, so the result
        # is invariant to gain and offset).
        part = np.partition(flat, kth, axis=1)
        background = part[:, k_low].astype(np.float64)
        spread = part[:, -1].astype(np.float64) - part[:, 0]
        if self.method == "robust":
            scale = part[:, k_high] - background
        else:
            diff = np.abs(np.diff(frames, axis=2)).reshape(n_frames, -1)
            if diff.shape[1]:
                mid = diff.shape[1] // 2
                scale = np.partition(diff, mid, axis=1)[:, mid] * _MAD_TO_SIGMA
            else:  # one-pixel-wide frames have no horizontal neighbours
                scale = np.zeros(n_frames)
        scale = np.maximum(scale, _RELATIVE_FLOOR * spread)
        if self.min_scale is not None:
            scale = np.maximum(scale, self.min_scale)
        scale[scale <= 0] = 1.0  # flat frame: all pixels equal the background
        frames -= background.astype(np.float32)[:, None, None]
        frames *= (1.0 / scale).astype(np.float32)[:, None, None]
        return frames

    def get_camera(self):
        """Return the :class:`~sklearn_smlm.Camera` that converts ADU, or None.

        ``camera`` itself, or one built from ``baseline_adu`` ...
        ``quantum_efficiency`` (a value not given leaves that step out), or
        None when the frames are not converted.

        Returns
        -------
        camera : Camera or None
        """
        if self.camera is not None:
            return self.camera
        given = {n: getattr(self, n) for n in _CAMERA_PARAMS}
        if all(v is None for v in given.values()):
            return None
        from .camera import Camera

        defaults = {"baseline_adu": 0.0, "e_per_adu": 1.0}
        defaults.update(em_gain=1.0, quantum_efficiency=1.0)
        return Camera(**{n: defaults[n] if v is None else v for n, v in given.items()})

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


def _check_dense(X):
    if issparse(X):
        raise TypeError(
            "X must be a dense array of frames; sparse input is not supported."
        )


def _rank(percentile, n):
    """Index of the given percentile among n sorted values ("lower" rule)."""
    return min(int(np.floor(percentile / 100.0 * (n - 1))), n - 1)
