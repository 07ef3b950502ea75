"""The file error, paths and atomic writes shared by the io readers and writers."""

import contextlib
import errno
import glob
import os
import re

from .._files import atomic_path as _atomic_path

__all__ = ["SMLMFileError"]


class SMLMFileError(ValueError):
    """A file is unreadable, corrupt, truncated or not in the expected format.

    The message names the file and the problem. It subclasses
    :class:`ValueError`, so code that catches bad input in general still works.
    """


# --------------------------------------------------------------------------- #
# paths and atomic writes
# --------------------------------------------------------------------------- #


def _check_file(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "No such file", path)
    if os.path.isdir(path):
        raise SMLMFileError(f"{path}: is a folder, not a file.")
    return path


@contextlib.contextmanager
def _atomic_output(path, mode="wb"):
    """Yield a file object whose content replaces ``path`` only on success."""
    kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    with _atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def _natural_key(s):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _resolve_paths(path_or_paths):
    if isinstance(path_or_paths, (str, os.PathLike)):
        path = os.fspath(path_or_paths)
        if glob.has_magic(path) and not os.path.exists(path):
            paths = sorted(glob.glob(path), key=_natural_key)
            if not paths:
                raise FileNotFoundError(
                    errno.ENOENT, "No file matches the pattern", path
                )
            return paths
        return [path]
    try:
        paths = [os.fspath(p) for p in path_or_paths]
    except TypeError as exc:
        raise TypeError(
            "path_or_paths must be a path, a glob pattern or a list of paths, "
            f"got {type(path_or_paths).__name__}."
        ) from exc
    if not paths:
        raise ValueError("path_or_paths is an empty list; give at least one file.")
    return paths
