"""Localize a stack in parallel: dask (local or a cluster) and joblib.

Both functions split the stack along the frames only, localize each chunk with
the same fitted localizer and concatenate the tables in frame order; frames
are independent, so the result is the table ``localizer.predict`` gives for
the whole stack (identical on the CPU, see ``tests/test_parallel.py``).

Scaling to a cluster
--------------------
:func:`predict_dask` uses whatever ``dask.distributed`` client is active, so
the same call runs on a laptop, a workstation or a cluster; only the client
changes::

    from dask.distributed import Client
    from dask_jobqueue import SLURMCluster      # or PBSCluster, SGECluster ...
    cluster = SLURMCluster(cores=8, processes=2, memory="16GB")
    cluster.scale(jobs=10)                      # 20 workers on 10 nodes
    client = Client(cluster)                    # or Client(KubeCluster(...))
    table = predict_dask(localizer, stack)      # unchanged code

The model is sent once to every worker (``client.scatter(...,
broadcast=True)``), never once per chunk. Frames given as a
:class:`~sklearn_smlm.io.TiffStack` are read by the workers themselves from
the file paths (which must be visible to them, e.g. on a shared file system);
a zarr or dask array is read the same way, chunk by chunk, so the client
never holds the stack. Only the localization tables travel back. Each dask
worker runs as many chunks at once as it has threads; dask's nanny starts
workers with one BLAS/OpenMP thread (``OMP_NUM_THREADS=1``), so torch then
uses one core per task and a worker with ``n`` threads uses ``n`` cores. For
GPU workers load the model with ``device="cuda"`` and give each worker one
thread and one GPU.
"""

import hashlib
import numbers
import os
import pickle
import threading

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._chunks import check_chunk_size, chunk_bounds
from ._localizations import concat_localizations
from ._validation import check_frames, check_int, check_real

__all__ = ["predict_dask", "predict_joblib"]

_COLUMNS = ["frame", "x_nm", "y_nm", "score"]


def _import_dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "predict_dask needs dask: install it with "
            "pip install 'sklearn-smlm[dask]' (dask[array,distributed] and zarr)."
        ) from exc
    return dask, da


def _aligned_chunk_size(localizer, chunk_size, batch_size, frame_shape):
    """Round ``chunk_size`` up to a whole number of forward-pass batches.

    Then every batch holds the same frames as in ``localizer.predict`` of the
    whole stack; float32 convolutions on the CPU can round differently for
    another batch size (1e-4 nm on positions for batches of 1 or 2 frames
    against 8 were measured), and identical batches keep the results
    bit-identical.
    """
    if batch_size is not None:
        check_int(batch_size, "batch_size", low=1)
    batch = int(batch_size or localizer.prediction_batch_size(frame_shape))
    return -(-chunk_size // batch) * batch


def _check_localizer(localizer):
    if not hasattr(localizer, "localize_maps"):
        raise TypeError(
            "localizer must be a DistanceTransformLocalizer, got "
            f"{type(localizer).__name__}."
        )
    check_is_fitted(localizer, "regressor_")
    check_real(localizer.threshold, "threshold")


def _concat(tables):
    return concat_localizations(tables, _COLUMNS)


def _predict_block(localizer, block, start, batch_size):
    """Localize one chunk; frame numbers are global (``start`` + index)."""
    frames = check_frames(np.asarray(block), name=f"frames {start}+")
    return localizer.predict(frames, batch_size=batch_size, frame_offset=int(start))


# --------------------------------------------------------------------- TIFF
_OPEN_STACKS = {}
_OPEN_LOCK = threading.Lock()
_MAX_OPEN_STACKS = 8


def _read_tiff(paths, start, stop):
    """Read frames [start, stop) of the stack of ``paths``, in a worker.

    The opened stack is kept per process and thread: opening walks every IFD
    of the files, and tifffile's page reads are not thread-safe.
    """
    from .io import TiffStack

    key = (tuple(paths), os.getpid(), threading.get_ident())
    with _OPEN_LOCK:
        stack = _OPEN_STACKS.pop(key, None)
    if stack is None:
        stack = TiffStack(list(paths))
    with _OPEN_LOCK:
        _OPEN_STACKS[key] = stack  # most recently used last
        while len(_OPEN_STACKS) > _MAX_OPEN_STACKS:
            _OPEN_STACKS.pop(next(iter(_OPEN_STACKS))).close()
    return stack[start:stop]


def _tiff_paths(stack):
    """Files of a TiffStack in a form a worker can reopen."""
    return tuple(os.path.abspath(p) for p in stack.paths)


# --------------------------------------------------------------------- dask
def _active_client(client):
    if client is not None:
        return client
    try:
        from distributed import default_client
    except ImportError:  # dask without distributed: local scheduler only
        return None
    try:
        return default_client()
    except ValueError:  # no client was started
        return None


def predict_dask(localizer, frames, *, chunk_size=256, client=None, batch_size=None):
    """Localize a stack with dask: on a cluster when a client is active.

    Parameters
    ----------
    localizer : DistanceTransformLocalizer
        A fitted localizer.
    frames : dask array, zarr array, TiffStack or array-like
        Frames of shape ``(n_frames, H, W)``. A dask array is used as is
        (rechunked along the frames only); a
        :class:`~sklearn_smlm.io.TiffStack` is read by the workers from its
        files; anything ``dask.array.from_array`` accepts (numpy, memory map,
        zarr, h5py) is wrapped.
    chunk_size : int, default=256
        Frames per task, rounded up to a multiple of the batch size (so that
        every forward pass sees the frames it sees in ``predict``, and the
        float results are bit-identical). Memory per task is about
        ``chunk_size`` frames in float32 plus one batch of maps.
    client : distributed.Client, optional
        The client to run on; default the active client if there is one
        (``distributed.default_client()``), else dask's local threaded
        scheduler.
    batch_size : int, optional
        Frames per forward pass inside a task.

    Returns
    -------
    localizations : pandas.DataFrame
        The table ``localizer.predict`` gives for the whole stack: global
        0-based ``frame`` numbers, sorted by frame.

    Raises
    ------
    ImportError
        If dask is not installed (``pip install 'sklearn-smlm[dask]'``).

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
    >>> from sklearn_smlm.parallel import predict_dask
    >>> X, y = PAFPSimulator(frame_shape=(16, 16), random_state=0).simulate(8)
    >>> loc = DistanceTransformLocalizer(n_layers=2, n_channels=8, max_epochs=1,
    ...                                  validation_fraction=0, threshold=1.0,
    ...                                  random_state=0).fit(X, y)
    >>> table = predict_dask(loc, da.from_array(X, chunks=3), chunk_size=2)
    >>> table.equals(loc.predict(X))
    True
    """
    dask, da = _import_dask()
    _check_localizer(localizer)
    chunk_size = check_chunk_size(chunk_size)

    if hasattr(frames, "iter_chunks") and hasattr(frames, "paths"):
        paths = _tiff_paths(frames)
        n_frames = len(frames)
        chunk_size = _aligned_chunk_size(
            localizer, chunk_size, batch_size, frames.shape[1:]
        )
        bounds = list(chunk_bounds(n_frames, chunk_size))
        starts = [start for start, _ in bounds]
        blocks = [
            dask.delayed(_read_tiff, pure=True)(paths, start, stop)
            for start, stop in bounds
        ]
    else:
        if not isinstance(frames, da.Array):
            if not hasattr(frames, "shape") or not hasattr(frames, "dtype"):
                frames = check_frames(frames, name="frames")
            frames = da.from_array(
                frames, chunks=(chunk_size,) + (-1,) * (frames.ndim - 1)
            )
        if frames.ndim == 2:
            frames = frames[np.newaxis]
        if frames.ndim != 3:
            raise ValueError(
                "frames must have shape (n_frames, height, width), got shape "
                f"{frames.shape}."
            )
        if 0 in frames.shape:
            check_frames(np.empty(frames.shape), name="frames")  # the usual error
        chunk_size = _aligned_chunk_size(
            localizer, chunk_size, batch_size, frames.shape[1:]
        )
        frames = frames.rechunk({0: chunk_size, 1: -1, 2: -1})
        blocks = list(frames.to_delayed().ravel())
        starts = np.concatenate([[0], np.cumsum(frames.chunks[0])[:-1]]).tolist()

    client = _active_client(client)
    if client is not None:
        # one copy of the model per worker, not one per task
        model = client.scatter(localizer, broadcast=True, hash=False)
    else:
        model = dask.delayed(localizer, pure=True)
    tasks = [
        dask.delayed(_predict_block, pure=True)(model, block, start, batch_size)
        for block, start in zip(blocks, starts, strict=True)
    ]
    if client is not None:
        tables = client.gather(client.compute(tasks))
    else:
        tables = dask.compute(*tasks)
    return _concat(tables)


# ------------------------------------------------------------------- joblib
_WORKER_MODELS = {}


def _joblib_block(key, payload, threads, source, start, stop, batch_size):
    """Worker side of :func:`predict_joblib`; the model is unpickled once."""
    localizer = _WORKER_MODELS.get(key)
    if localizer is None:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        localizer = pickle.loads(payload)
        _WORKER_MODELS.clear()  # one model per worker process
        _WORKER_MODELS[key] = localizer
    if isinstance(source, tuple):  # TIFF file paths
        block = _read_tiff(source, start, stop)
    else:
        block = source
    return _predict_block(localizer, block, start, batch_size)


def predict_joblib(
    localizer, frames, *, n_jobs=2, chunk_size=256, backend="loky", batch_size=None
):
    """Localize a stack with joblib, in parallel chunks of frames.

    Parameters
    ----------
    localizer : DistanceTransformLocalizer
        A fitted localizer.
    frames : array-like, memory map or TiffStack
        Frames of shape ``(n_frames, H, W)``. A
        :class:`~sklearn_smlm.io.TiffStack` is read by the workers from its
        files; an array is sliced lazily (joblib memory-maps large slices to
        the worker processes).
    n_jobs : int, default=2
        Number of workers (joblib's convention: -1 for all cores).
    chunk_size : int, default=256
        Frames per task, rounded up to a multiple of the batch size (see
        :func:`predict_dask`).
    backend : str, default="loky"
        joblib backend. With process backends each worker unpickles the model
        once and runs torch on ``cpu_count // n_jobs`` threads, so workers do
        not compete for the same cores; ``"threading"`` shares one model and
        torch's thread pool.
    batch_size : int, optional
        Frames per forward pass inside a task.

    Returns
    -------
    localizations : pandas.DataFrame
        The table ``localizer.predict`` gives for the whole stack.

    Examples
    --------
    >>> from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
    >>> from sklearn_smlm.parallel import predict_joblib
    >>> X, y = PAFPSimulator(frame_shape=(16, 16), random_state=0).simulate(8)
    >>> loc = DistanceTransformLocalizer(n_layers=2, n_channels=8, max_epochs=1,
    ...                                  validation_fraction=0, threshold=1.0,
    ...                                  random_state=0).fit(X, y)
    >>> table = predict_joblib(loc, X, n_jobs=1, chunk_size=3)
    >>> table.equals(loc.predict(X))
    True
    """
    from joblib import Parallel, delayed, effective_n_jobs

    _check_localizer(localizer)
    chunk_size = check_chunk_size(chunk_size)
    if isinstance(n_jobs, (bool, np.bool_)) or not isinstance(
        n_jobs, (numbers.Integral, type(None))
    ):
        raise TypeError(f"n_jobs must be an integer or None, got {n_jobs!r}.")
    if n_jobs == 0:
        raise ValueError("n_jobs must not be 0 (joblib: -1 means all cores).")

    n_workers = effective_n_jobs(n_jobs)
    in_process = n_workers == 1 or backend in ("threading", "sequential")
    threads = None if in_process else max(1, (os.cpu_count() or 1) // n_workers)
    if hasattr(frames, "iter_chunks") and hasattr(frames, "paths") and not in_process:
        # worker processes read their chunks from the files themselves
        paths = _tiff_paths(frames)
        n_frames = len(frames)

        def source(start, stop):
            return paths
    else:
        if not (
            len(getattr(frames, "shape", ())) == 3 and hasattr(frames, "__getitem__")
        ):
            frames = check_frames(frames, name="frames")
        n_frames = frames.shape[0]
        if n_frames == 0 or 0 in frames.shape[1:]:
            check_frames(np.empty(frames.shape), name="frames")  # the usual error

        def source(start, stop):
            # called by the dispatching thread, one chunk at a time, so a
            # TiffStack is never read by two threads at once
            return np.asarray(frames[start:stop])

    chunk_size = _aligned_chunk_size(
        localizer, chunk_size, batch_size, frames.shape[1:]
    )
    if in_process:
        # same process: no copy of the model, no change to torch's threads
        payload, key = None, f"in-process-{id(localizer)}"
        _WORKER_MODELS[key] = localizer
    else:
        payload = pickle.dumps(localizer, protocol=pickle.HIGHEST_PROTOCOL)
        key = hashlib.sha256(payload).hexdigest()
    try:
        tables = Parallel(n_jobs=n_jobs, backend=backend)(
            delayed(_joblib_block)(
                key, payload, threads, source(start, stop), start, stop, batch_size
            )
            for start, stop in chunk_bounds(n_frames, chunk_size)
        )
    finally:
        if in_process:
            _WORKER_MODELS.pop(key, None)
    return _concat(tables)
