"""Atomic file writing, shared by every writer of the library."""

import contextlib
import errno
import os
import tempfile

__all__ = ["atomic_path"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, *, suffix=".tmp"):
    """Yield a temporary path beside ``path`` that replaces it on success.

    The caller writes the whole file to the temporary path. When the block
    ends without an exception the data are flushed to disk and the file is
    renamed over ``path`` in one step; on any exception it is removed. So a
    reader never sees a half-written file and an existing file is never
    clobbered by a failed write. The result gets the permissions of a normally
    created file (``mkstemp`` alone would leave it readable by its owner only).

    Parameters
    ----------
    path : str or path-like
        The destination; its folder must exist.
    suffix : str, default=".tmp"
        Ending of the temporary name (writers that pick the format from the
        extension need the real one).

    Yields
    ------
    tmp : str
        The temporary path to write to.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, "No such folder", folder)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix="." + os.path.basename(path) + ".", suffix=suffix
    )
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
