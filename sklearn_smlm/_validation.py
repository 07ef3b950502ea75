"""Input checks shared by the estimators: frames, parameters and devices.

One rule for every parameter check: a value of the wrong *type* raises
:class:`TypeError`, a value of the right type outside the allowed range raises
:class:`ValueError`, and both say ``"<name> must be <what>, got <value>."``.
``bool`` is never accepted as a number (``True`` is an ``int`` in Python).
"""

import numbers

import numpy as np

__all__ = [
    "check_frames",
    "check_positive",
    "check_int",
    "check_real",
    "check_bool",
    "check_option",
    "resolve_device",
]


def check_frames(X, *, name="X", dtype=np.float32, allow_single=True):
    """Validate a stack of camera frames and return it as a float array.

    Parameters
    ----------
    X : array-like of shape (n_frames, height, width) or (height, width)
        Camera frames in ADU (or photons). A 2-D array is one frame when
        ``allow_single`` is true.
    name : str, default="X"
        Name used in error messages.
    dtype : numpy dtype, default=numpy.float32
        Dtype of the returned array.
    allow_single : bool, default=True
        Accept a single 2-D frame.

    Returns
    -------
    frames : ndarray of shape (n_frames, height, width)

    Raises
    ------
    TypeError
        For boolean, complex, string or object data.
    ValueError
        For a wrong number of dimensions, an empty stack or empty frames, and
        NaN or infinite values.
    """
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{name} is a sparse matrix; sparse input is not supported: frames are "
            "dense images of shape (n_frames, height, width)."
        )
    if hasattr(X, "__array__") or isinstance(X, (list, tuple)):
        try:
            raw = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} could not be turned into an array of frames: {exc}"
            ) from exc
    else:
        raise TypeError(
            f"{name} must be an array of frames of shape (n_frames, height, width), "
            f"got {type(X).__name__}."
        )
    if raw.dtype == bool:
        raise TypeError(
            f"{name} is a boolean array; frames must hold camera counts (ADU) or "
            "photons."
        )
    if np.issubdtype(raw.dtype, np.complexfloating):
        raise ValueError(f"Complex data not supported: {name} has dtype {raw.dtype}.")
    if raw.dtype == object:
        try:
            raw = raw.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} holds objects that are not numbers: {exc}"
            ) from exc
    if not (
        np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {raw.dtype}.")
    if raw.ndim == 2 and allow_single:
        raw = raw[np.newaxis]
    if raw.ndim != 3:
        expected = "(n_frames, height, width)" + (
            " or (height, width)" if allow_single else ""
        )
        raise ValueError(
            f"{name} must have shape {expected}, got an array of shape {raw.shape}."
        )
    if raw.shape[0] == 0:
        raise ValueError(f"{name} holds no frames (shape {raw.shape}).")
    if raw.shape[1] == 0 or raw.shape[2] == 0:
        raise ValueError(f"{name} has empty frames of shape {raw.shape[1:]}.")
    if np.issubdtype(raw.dtype, np.floating) and not np.isfinite(raw).all():
        bad = ~np.isfinite(raw).reshape(len(raw), -1).all(axis=1)
        raise ValueError(
            f"{name} holds NaN or infinite values (in {int(bad.sum())} frame(s), "
            f"first frame {int(np.flatnonzero(bad)[0])})."
        )
    if (
        np.issubdtype(raw.dtype, np.floating)
        and raw.dtype.itemsize > np.dtype(dtype).itemsize
    ):
        largest, limit = float(np.abs(raw).max()), float(np.finfo(dtype).max)
        if largest > limit:
            raise ValueError(
                f"{name} holds values up to {largest:.3g}, beyond the range of "
                f"{np.dtype(dtype).name} ({limit:.3g}); camera frames never do."
            )
    return raw.astype(dtype, copy=False)


def check_positive(value, name, *, integer=False, allow_zero=False):
    """Check that ``value`` is a (strictly) positive real or integer number."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {what}, got {value!r}.")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}.")
    return value


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def check_int(value, name, *, low=None, high=None):
    """Return ``value`` as an int, checking its type and ``low <= value <= high``.

    Examples
    --------
    >>> check_int(3, "chunk_size", low=1)
    3
    >>> check_int(0, "chunk_size", low=1)
    Traceback (most recent call last):
    ...
    ValueError: chunk_size must be >= 1, got 0.
    >>> check_int(2.0, "chunk_size")
    Traceback (most recent call last):
    ...
    TypeError: chunk_size must be an integer, got 2.0.
    """
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}.")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}.")
    return int(value)


def check_real(
    value, name, *, low=None, high=None, low_open=False, high_open=False, finite=True
):
    """Return ``value`` as a float, checking its type, finiteness and range.

    ``low`` and ``high`` are included unless ``low_open`` / ``high_open``.

    Examples
    --------
    >>> check_real(0.5, "quantum_efficiency", low=0, high=1, low_open=True)
    0.5
    >>> check_real(float("nan"), "threshold")
    Traceback (most recent call last):
    ...
    ValueError: threshold must be a finite number, got nan.
    """
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    if finite and not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(
            f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}."
        )
    if high is not None and (value >= high if high_open else value > high):
        bound = "<" if high_open else "<="
        raise ValueError(f"{name} must be {bound} {high}, got {value!r}.")
    return float(value)


def check_bool(value, name):
    """Return ``value`` if it is a bool (numpy's too), else raise TypeError.

    Examples
    --------
    >>> check_bool(1, "augment")
    Traceback (most recent call last):
    ...
    TypeError: augment must be True or False, got 1.
    """
    if not _is_bool(value):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_option(value, name, options):
    """Return ``value`` if it is one of ``options``, else raise ValueError.

    Examples
    --------
    >>> check_option("lsq", "fit_method", ("mle", "lsq"))
    'lsq'
    """
    if not isinstance(value, str) or value not in options:
        choices = ", ".join(repr(o) for o in options)
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")
    return value


def resolve_device(device="auto"):
    """Return the torch device name: ``"auto"`` picks CUDA when available."""
    import torch

    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for but CUDA is not available on this "
            "machine; use device='auto' or 'cpu'."
        )
    return str(resolved)
