"""Input checks shared by the estimators: frames, sizes and devices."""

import numbers

import numpy as np

__all__ = ["check_frames", "check_positive", "resolve_device"]


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
