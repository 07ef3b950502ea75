"""The camera: how photons become counts (ADU), and how counts go back to photons.

One description shared by the simulator, the frame normalizer, the Gaussian
fitter, the hybrid refinement and the command line, instead of the same four
to six numbers declared in each of them.
"""

import os

import numpy as np

from ._validation import check_real

__all__ = ["Camera"]

# fields that may be per-pixel maps (sCMOS offset, gain and noise maps)
_MAP_FIELDS = ("baseline_adu", "e_per_adu", "read_noise_e")
_DEFAULTS = {
    "baseline_adu": 0.0,
    "e_per_adu": 1.0,
    "em_gain": 1.0,
    "quantum_efficiency": 1.0,
    "read_noise_e": 0.0,
    "saturation_adu": None,
}
_FIELDS = tuple(_DEFAULTS)


def _check_value_or_map(value, name, *, low, low_open):
    """Return a checked finite number, or a finite read-only 2-D float64 map."""
    if isinstance(value, (list, tuple)) or hasattr(value, "__array__"):
        arr = np.asarray(value)
        if arr.ndim == 0:
            return _check_value_or_map(arr.item(), name, low=low, low_open=low_open)
        if arr.ndim != 2 or 0 in arr.shape:
            raise ValueError(
                f"{name} must be a number or a 2-D per-pixel map, got an array of "
                f"shape {arr.shape}."
            )
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}.")
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} holds NaN or infinite values.")
        if low is not None and ((arr <= low).any() if low_open else (arr < low).any()):
            bound = f"> {low}" if low_open else f">= {low}"
            raise ValueError(f"{name} must be {bound} in every pixel.")
        arr.setflags(write=False)
        return arr
    return check_real(value, name, low=low, low_open=low_open)


class Camera:
    """A camera: offset, conversion gain, EM gain, quantum efficiency, noise.

    The counts of a pixel are ``ADU = baseline_adu + electrons / e_per_adu``,
    with ``electrons`` the photo-electrons ``quantum_efficiency * photons``,
    multiplied by ``em_gain`` in an EMCCD, plus a read noise of
    ``read_noise_e`` electrons (standard deviation); the ADC saturates at
    ``saturation_adu``. :meth:`to_photons` inverts the mean of this chain.

    ``baseline_adu``, ``e_per_adu`` and ``read_noise_e`` may be per-pixel maps
    (2-D arrays of the frame's shape): the offset, conversion and read-noise
    maps of an sCMOS camera (Huang et al., Nat. Methods 2013), read with
    :meth:`from_file`. Treat a Camera as immutable; :meth:`replace` returns a
    changed copy.

    Parameters
    ----------
    baseline_adu : float or ndarray of shape (height, width), default=0.0
        Offset added by the camera, in ADU.
    e_per_adu : float or ndarray of shape (height, width), default=1.0
        Electrons per ADU (the conversion factor; for an EMCCD the electrons
        after the EM register, so the gain is not in it).
    em_gain : float, default=1.0
        Electron-multiplying gain; above 1 the camera is an EMCCD, whose
        multiplication doubles the variance of the signal
        (:attr:`excess_noise_factor` 2).
    quantum_efficiency : float, default=1.0
        Fraction of the photons detected, in (0, 1].
    read_noise_e : float or ndarray of shape (height, width), default=0.0
        Read noise in electrons (standard deviation).
    saturation_adu : float or None, default=None
        The ADC's largest count; None: not known (the fitter then takes the
        top of an integer frame's type).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm import Camera
    >>> camera = Camera(baseline_adu=100.0, e_per_adu=50.0, em_gain=100.0)
    >>> camera
    Camera(baseline_adu=100.0, e_per_adu=50.0, em_gain=100.0)
    >>> camera.to_photons(np.array([[[300.0]]], dtype=np.float32))  # 200 ADU
    array([[[100.]]], dtype=float32)
    >>> camera.excess_noise_factor
    2.0
    """

    def __init__(
        self,
        *,
        baseline_adu=0.0,
        e_per_adu=1.0,
        em_gain=1.0,
        quantum_efficiency=1.0,
        read_noise_e=0.0,
        saturation_adu=None,
    ):
        self.baseline_adu = _check_value_or_map(
            baseline_adu, "baseline_adu", low=None, low_open=False
        )
        self.e_per_adu = _check_value_or_map(
            e_per_adu, "e_per_adu", low=0, low_open=True
        )
        self.em_gain = check_real(em_gain, "em_gain", low=1)
        self.quantum_efficiency = check_real(
            quantum_efficiency, "quantum_efficiency", low=0, high=1, low_open=True
        )
        self.read_noise_e = _check_value_or_map(
            read_noise_e, "read_noise_e", low=0, low_open=False
        )
        self.saturation_adu = (
            None
            if saturation_adu is None
            else check_real(saturation_adu, "saturation_adu", low=0, low_open=True)
        )
        shapes = {np.shape(getattr(self, n)) for n in _MAP_FIELDS} - {()}
        if len(shapes) > 1:
            raise ValueError(
                f"the per-pixel maps have different shapes {sorted(shapes)}; "
                "they must all have the frame's shape."
            )

    # ---------------------------------------------------------------- views
    @property
    def shape(self):
        """``(height, width)`` of the per-pixel maps, or None for scalars."""
        for name in _MAP_FIELDS:
            value = getattr(self, name)
            if np.ndim(value):
                return value.shape
        return None

    @property
    def is_per_pixel(self):
        """True when a field is a per-pixel map (an sCMOS calibration)."""
        return self.shape is not None

    @property
    def excess_noise_factor(self):
        """Variance factor of the signal: 2 for EM gain above 1, else 1."""
        return 2.0 if self.em_gain > 1 else 1.0

    @property
    def photons_per_adu(self):
        """``e_per_adu / em_gain / quantum_efficiency`` (a map for sCMOS maps)."""
        return self.e_per_adu / self.em_gain / self.quantum_efficiency

    def as_dict(self):
        """Return the fields as a dict (maps as read-only arrays)."""
        return {name: getattr(self, name) for name in _FIELDS}

    def replace(self, **changes):
        """Return a copy with some fields changed.

        Examples
        --------
        >>> Camera(em_gain=100.0).replace(em_gain=300.0).em_gain
        300.0
        """
        unknown = sorted(set(changes) - set(_FIELDS))
        if unknown:
            raise TypeError(f"Camera has no field(s) {unknown}; fields: {_FIELDS}.")
        return Camera(**{**self.as_dict(), **changes})

    def crop(self, rows, cols):
        """Return the camera of a window of the sensor (for a cropped stack).

        Parameters
        ----------
        rows, cols : slice
            The window, as the frames are cropped: ``frames[:, rows, cols]``.

        Returns
        -------
        camera : Camera
            Scalar fields unchanged, maps cut to the window.

        Examples
        --------
        >>> import numpy as np
        >>> cam = Camera(baseline_adu=np.arange(12.0).reshape(3, 4))
        >>> cam.crop(slice(1, 3), slice(0, 2)).baseline_adu.tolist()
        [[4.0, 5.0], [8.0, 9.0]]
        """
        if not (isinstance(rows, slice) and isinstance(cols, slice)):
            raise TypeError("rows and cols must be slices, e.g. slice(0, 64).")
        params = self.as_dict()
        for name in _MAP_FIELDS:
            if np.ndim(params[name]):
                params[name] = params[name][rows, cols]
        return Camera(**params)

    def check_frame_shape(self, frame_shape):
        """Raise ValueError if per-pixel maps do not match ``frame_shape``."""
        shape = self.shape
        if shape is not None and tuple(shape) != tuple(frame_shape):
            raise ValueError(
                f"the camera's per-pixel maps are {shape[0]}x{shape[1]} but the "
                f"frames are {frame_shape[0]}x{frame_shape[1]}; crop the maps to "
                "the frames' window with Camera.crop(rows, cols)."
            )

    # --------------------------------------------------------------- convert
    def to_photons(self, frames, *, copy=True):
        """Convert ADU to photons: ``(frames - baseline_adu) * photons_per_adu``.

        Parameters
        ----------
        frames : ndarray of shape (n_frames, height, width), float32
            Camera frames in ADU.
        copy : bool, default=True
            False converts ``frames`` in place.

        Returns
        -------
        photons : ndarray, float32
            Mean photons per pixel (the inverse of the camera's mean response).
        """
        if copy:
            frames = np.array(frames, dtype=np.float32)
        else:
            frames = np.asarray(frames, dtype=np.float32)
        self.check_frame_shape(frames.shape[-2:])
        baseline = self.baseline_adu
        if np.ndim(baseline):
            frames -= baseline.astype(np.float32)
        elif baseline != 0:
            frames -= np.float32(baseline)
        factor = self.photons_per_adu
        if np.ndim(factor):
            frames *= factor.astype(np.float32)
        elif factor != 1.0:
            frames *= np.float32(factor)
        return frames

    # ------------------------------------------------------------------ files
    @classmethod
    def from_file(cls, path, **scalars):
        """Read an sCMOS calibration: offset, gain and variance maps.

        Two layouts are read:

        - ``.npz`` (``numpy.savez``) with arrays ``offset_adu`` (or
          ``baseline_adu``), ``gain_adu_per_e`` (ADU per electron, as sCMOS
          calibrations give it; or ``e_per_adu``) and ``variance_adu2`` (read
          noise variance in ADU^2; or ``read_noise_e``), each ``(H, W)``;
          scalar entries ``em_gain``, ``quantum_efficiency`` and
          ``saturation_adu`` are read too when present;
        - a TIFF of 3 pages: offset (ADU), gain (ADU per electron) and
          variance (ADU^2), the layout of the sCMOS calibration files of
          Huang et al. 2013 and SMAP.

        The variance becomes ``read_noise_e = sqrt(variance) / gain``.

        Parameters
        ----------
        path : str or path-like
            The ``.npz`` or ``.tif``/``.tiff`` file.
        **scalars
            Other fields (``quantum_efficiency``, ``saturation_adu``, ...),
            which override the file's.

        Returns
        -------
        camera : Camera

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "scmos.npz")
        >>> np.savez(path, offset_adu=np.full((2, 3), 100.0),
        ...          gain_adu_per_e=np.full((2, 3), 2.0),
        ...          variance_adu2=np.full((2, 3), 4.0))
        >>> cam = Camera.from_file(path, quantum_efficiency=0.8)
        >>> cam.shape, float(cam.e_per_adu[0, 0]), float(cam.read_noise_e[0, 0])
        ((2, 3), 0.5, 1.0)
        """
        from .io import SMLMFileError

        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file", path)
        suffix = os.path.splitext(path)[1].lower()
        fields = {}
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                entries = {k: np.asarray(data[k]) for k in data.files}
            fields.update(_npz_fields(entries, path))
        elif suffix in (".tif", ".tiff"):
            import tifffile

            pages = np.asarray(tifffile.imread(path), dtype=np.float64)
            if pages.ndim != 3 or len(pages) != 3:
                raise SMLMFileError(
                    f"{path}: an sCMOS calibration TIFF holds 3 pages (offset, "
                    f"gain, variance), got an array of shape {pages.shape}."
                )
            fields.update(_from_gain_variance(pages[0], pages[1], pages[2], path))
        else:
            raise SMLMFileError(
                f"{path}: a camera calibration is a .npz or a 3-page .tif file."
            )
        fields.update(scalars)
        try:
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            raise SMLMFileError(f"{path}: {exc}") from exc

    # ------------------------------------------------------------- protocol
    def __eq__(self, other):
        if not isinstance(other, Camera):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, n), getattr(other, n))
            if np.ndim(getattr(self, n)) or np.ndim(getattr(other, n))
            else getattr(self, n) == getattr(other, n)
            for n in _FIELDS
        )

    __hash__ = None  # mutable-looking fields (maps): not hashable

    def __repr__(self):
        parts = []
        for name in _FIELDS:
            value = getattr(self, name)
            if np.ndim(value):
                parts.append(
                    f"{name}=<{value.shape[0]}x{value.shape[1]} map, mean "
                    f"{value.mean():.4g}>"
                )
            elif value != _DEFAULTS[name]:
                parts.append(f"{name}={value!r}")
        return f"Camera({', '.join(parts)})"


def _from_gain_variance(offset, gain_adu_per_e, variance_adu2, path):
    from .io import SMLMFileError

    gain = np.asarray(gain_adu_per_e, dtype=np.float64)
    if (gain <= 0).any() or not np.isfinite(gain).all():
        raise SMLMFileError(f"{path}: the gain map must be > 0 in every pixel.")
    variance = np.asarray(variance_adu2, dtype=np.float64)
    if (variance < 0).any():
        raise SMLMFileError(f"{path}: the variance map must be >= 0 in every pixel.")
    return {
        "baseline_adu": np.asarray(offset, dtype=np.float64),
        "e_per_adu": 1.0 / gain,
        "read_noise_e": np.sqrt(variance) / gain,
    }


def _npz_fields(entries, path):
    from .io import SMLMFileError

    def pick(*names):
        found = [n for n in names if n in entries]
        return entries[found[0]] if found else None

    offset = pick("offset_adu", "baseline_adu")
    gain = entries.get("gain_adu_per_e")
    variance = entries.get("variance_adu2")
    if offset is None:
        raise SMLMFileError(
            f"{path}: no offset map ('offset_adu' or 'baseline_adu'); the file "
            f"holds {sorted(entries)}."
        )
    fields = {}
    if gain is not None:
        if variance is None:
            variance = np.zeros_like(np.asarray(gain, dtype=np.float64))
        fields.update(_from_gain_variance(offset, gain, variance, path))
    else:
        fields["baseline_adu"] = offset
        for name in ("e_per_adu", "read_noise_e"):
            if name in entries:
                fields[name] = entries[name]
    for name in ("em_gain", "quantum_efficiency", "saturation_adu"):
        if name in entries:
            fields[name] = float(entries[name])
    return fields
