"""Frames chunk by chunk: the one loop shared by prediction, tiling, parallel and CLI.

A long stack is localized a chunk of frames at a time, so that memory holds
one chunk (and its maps), never the stack. :func:`iter_chunks` reads the
chunks of anything that holds frames; :func:`chunk_bounds` gives the same
chunks as frame ranges, for workers that read their chunk themselves;
:func:`iter_chunk_tables` runs a prediction per chunk and gives the heap back
after each one.
"""

import numpy as np

from ._memory import trim_heap
from ._validation import check_frames, check_int

__all__ = ["check_chunk_size", "chunk_bounds", "iter_chunks", "iter_chunk_tables"]


def check_chunk_size(chunk_size, name="chunk_size"):
    """Return ``chunk_size`` as an int >= 1 (TypeError / ValueError otherwise)."""
    return check_int(chunk_size, name, low=1)


def chunk_bounds(n_frames, chunk_size):
    """``(start, stop)`` of every chunk of ``chunk_size`` frames, in order.

    Examples
    --------
    >>> list(chunk_bounds(7, 3))
    [(0, 3), (3, 6), (6, 7)]
    """
    return ((s, min(s + chunk_size, n_frames)) for s in range(0, n_frames, chunk_size))


def _is_stack(frames):
    """Return whether frames is a lazily sliced 3-D array (numpy, zarr, dask)."""
    return len(getattr(frames, "shape", ())) == 3 and hasattr(frames, "__getitem__")


def iter_chunks(frames, chunk_size=256, *, name="frames", check=True):
    """Yield ``(start, chunk)`` pairs of a stack, ``chunk_size`` frames at a time.

    Parameters
    ----------
    frames : array-like, memory map, TiffStack or sequence of frames
        An object with ``iter_chunks(chunk_size)`` (a
        :class:`~sklearn_smlm.io.TiffStack`) is read through it; a 3-D
        array-like (numpy array or memory map, zarr, dask, h5py) and any other
        object with ``len`` and slicing along the frames are sliced lazily; a
        list of frames or a single 2-D frame is checked whole first.
    chunk_size : int, default=256
        Frames per chunk.
    name : str, default="frames"
        Name used in error messages.
    check : bool, default=True
        Check every chunk and return it as float32; ``False`` gives the
        chunks as read (a TIFF's integer type, which the classical fitter
        uses to find saturated pixels).

    Yields
    ------
    start : int
        Index of the chunk's first frame in the stack.
    chunk : ndarray of shape (n, height, width)
        The frames, checked by :func:`~sklearn_smlm._validation.check_frames`.
    """
    chunk_size = check_chunk_size(chunk_size)
    if hasattr(frames, "iter_chunks"):
        source = frames.iter_chunks(chunk_size)
    else:
        if not hasattr(frames, "__len__") or not hasattr(frames, "__getitem__"):
            raise TypeError(
                f"{name} must be an array, a TiffStack or a sequence of frames, "
                f"got {type(frames).__name__}."
            )
        if len(frames) == 0:
            return
        whole = isinstance(frames, (list, tuple)) or hasattr(frames, "__array__")
        if whole and not _is_stack(frames) and check:
            # a list of frames or a single 2-D frame: checked at once
            frames = check_frames(frames, name=name)
        source = (
            (start, frames[start:stop])
            for start, stop in chunk_bounds(len(frames), chunk_size)
        )
    for start, chunk in source:
        if check:
            chunk = check_frames(np.asarray(chunk), name=f"{name} {start}+")
        yield int(start), chunk


def iter_chunk_tables(
    predict_chunk, frames, chunk_size=256, *, name="frames", check=True
):
    """Yield ``predict_chunk(chunk, start)`` for every chunk of ``frames``.

    After each chunk the freed heap is given back to the system
    (:func:`~sklearn_smlm._memory.trim_heap`), so that the tables a caller
    keeps do not pin the memory of the chunks' maps: resident memory stays at
    about one chunk.

    Parameters
    ----------
    predict_chunk : callable
        ``predict_chunk(chunk, start)`` returns the table of a chunk whose
        first frame is ``start`` in the stack, with global frame numbers.
    frames, chunk_size, name, check
        As in :func:`iter_chunks`.

    Yields
    ------
    table : pandas.DataFrame
    """
    for start, chunk in iter_chunks(frames, chunk_size, name=name, check=check):
        table = predict_chunk(chunk, start)
        del chunk
        trim_heap()
        yield table
