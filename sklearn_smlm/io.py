"""Read and write SMLM data: TIFF stacks and ThunderSTORM / SMLM-challenge CSV.

Frames
    :class:`TiffStack` is a lazy view of one or several TIFF files as one stack
    of frames ``(n_frames, H, W)``; it memory-maps uncompressed contiguous data
    and otherwise reads page by page, so stacks larger than memory can be
    processed chunk by chunk (:meth:`TiffStack.iter_chunks`).
    :func:`read_stack` loads frames eagerly, :func:`write_stack` writes an
    ImageJ-compatible stack that records the pixel size.

Localizations
    Tables follow the schema of :mod:`sklearn_smlm._localizations`: ``frame``
    is 0-based in memory and 1-based in ThunderSTORM and challenge files.
    Three CSV layouts are read and written:

    - ThunderSTORM (:func:`read_thunderstorm_csv`): a quoted header such as
      ``"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]",...``.
      Reading then writing gives the same columns, values and order.
    - SMLM challenge (:func:`read_challenge_csv`): 2016 ground truth
      ``Ground-truth,frame,xnano,ynano,znano,intensity`` with or without the
      header line, and header-less ``frame,x,y[,z[,intensity]]`` rows.
    - The library's own layout (``format="native"``): the table's own column
      names (``frame,x_nm,y_nm,...``) with 0-based frames.

    :func:`read_localizations` recognises the layout from the first line.

Every reader names the file in its errors (:class:`SMLMFileError`) and every
writer writes to a temporary file in the destination folder, then renames it,
so a failed write never leaves a half-written or clobbered file.
"""

import contextlib
import csv
import errno
import glob
import io
import logging
import math
import mmap
import operator
import os
import re
import struct

import numpy as np
import pandas as pd
import tifffile

from ._files import atomic_path as _atomic_path
from ._localizations import validate_localizations

__all__ = [
    "SMLMFileError",
    "TiffStack",
    "read_stack",
    "write_stack",
    "read_thunderstorm_csv",
    "write_thunderstorm_csv",
    "read_challenge_csv",
    "write_challenge_csv",
    "read_localizations",
    "write_localizations",
]


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


# --------------------------------------------------------------------------- #
# TIFF stacks
# --------------------------------------------------------------------------- #

_UNIT_TO_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "μm": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "cm": 1e7,
    "centimeter": 1e7,
    "m": 1e9,
    "meter": 1e9,
}

# tifffile reports damaged files through its logger and then carries on with
# what it could parse; these words mark the messages that mean lost data.
_CORRUPTION_WORDS = ("corrupt", "invalid", "truncat", "failed", "cannot")

# Beyond this size write_stack writes BigTIFF (ImageJ TIFF is limited to 4 GB).
_BIGTIFF_BYTES = 2**31


class _LogCollector(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        message = record.getMessage()
        if any(w in message.lower() for w in _CORRUPTION_WORDS):
            self.messages.append(message)


@contextlib.contextmanager
def _collect_tifffile_warnings():
    handler = _LogCollector()
    logger = tifffile.logger()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _unit_to_nm(unit):
    if not isinstance(unit, str):
        return None
    unit = unit.strip()
    if "\\u" in unit:  # ImageJ writes micro signs as a literal \u00B5 escape
        with contextlib.suppress(UnicodeDecodeError):
            unit = unit.encode("ascii", "backslashreplace").decode("unicode_escape")
    return _UNIT_TO_NM.get(unit.lower().replace("\u00b5", "µ"))


def _positive_or_none(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _pixel_size_nm(tif):
    """Pixel size in nm from our own key, OME, ImageJ or resolution tags."""
    page = tif.pages.first
    ij = tif.imagej_metadata or {}
    px = _positive_or_none(ij.get("pixel_size_nm"))
    if px is None and tif.shaped_metadata:
        px = _positive_or_none(tif.shaped_metadata[0].get("pixel_size_nm"))
    if px is not None:
        return px
    description = page.description or ""
    if "<OME" in description:
        match = re.search(r'PhysicalSizeX="([^"]+)"', description)
        unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', description)
        scale = _unit_to_nm(unit.group(1) if unit else "µm")
        size = _positive_or_none(match.group(1)) if match else None
        if size is not None and scale is not None:
            return size * scale
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    numerator, denominator = tag.value
    if not numerator or not denominator:
        return None
    scale = None
    if ij:
        scale = _unit_to_nm(ij.get("unit"))
    elif int(page.resolutionunit) == 3:  # centimetre; inch is display dpi
        scale = 1e7
    if scale is None:
        return None
    return scale * denominator / numerator


class _TiffSource:
    """One TIFF file (or one OME multi-file series) as frames (n, H, W)."""

    def __init__(self, path, *, single):
        self.path = _check_file(path)
        flags = {} if single else {"is_ome": False}
        with _collect_tifffile_warnings() as problems:
            try:
                self.tif = tifffile.TiffFile(self.path, **flags)
            except (tifffile.TiffFileError, struct.error, ValueError, EOFError) as e:
                raise SMLMFileError(
                    f"{self.path}: not a readable TIFF file ({e}). "
                    "Check that the file is a complete TIFF image stack."
                ) from e
            try:
                if not self.tif.series:
                    raise SMLMFileError(f"{self.path}: the TIFF file holds no image.")
                series = self.tif.series[0]
                shape, axes = tuple(series.shape), series.axes
                # walk the whole IFD chain so that a cut-off file is noticed
                # even when its (contiguous) image data is intact
                len(self.tif.pages)
                pages = None if series.dataoffset is not None else list(series.pages)
            except SMLMFileError:
                self.close()
                raise
            except Exception as e:
                self.close()
                raise SMLMFileError(f"{self.path}: corrupt TIFF file ({e}).") from e
        try:
            if problems:
                raise SMLMFileError(
                    f"{self.path}: corrupt or truncated TIFF file: "
                    + "; ".join(dict.fromkeys(problems))
                    + ". Re-export or re-copy the file."
                )
            self._setup(series, shape, axes, pages)
        except BaseException:
            self.close()
            raise

    def _setup(self, series, shape, axes, pages):
        path = self.path
        if "S" in axes and shape[axes.index("S")] > 1:
            raise SMLMFileError(
                f"{path}: holds colour (RGB) images of shape {shape} (axes "
                f"{axes!r}); SMLM frames must be single-channel grey images. "
                "Convert the stack to 16-bit greyscale."
            )
        # drop length-1 axes, e.g. (n, 1, H, W) -> (n, H, W), but keep H and W
        keep = [i for i in range(len(shape) - 2) if shape[i] != 1]
        keep += [len(shape) - 2, len(shape) - 1]
        shape = tuple(shape[i] for i in keep)
        axes = "".join(axes[i] for i in keep)
        if len(shape) == 2:
            shape = (1, *shape)
        elif len(shape) != 3:
            raise SMLMFileError(
                f"{path}: holds {len(shape)}-D data of shape {shape} (axes "
                f"{axes!r}); expected one stack of 2-D frames (n_frames, H, W). "
                "Split channels or positions into separate stacks first."
            )
        self.shape = shape
        self.dtype = np.dtype(series.dtype).newbyteorder("=")
        ij = self.tif.imagej_metadata or {}
        announced = ij.get("images")
        if isinstance(announced, int) and announced > shape[0] and len(axes) <= 3:
            raise SMLMFileError(
                f"{path}: truncated TIFF: its ImageJ metadata announces "
                f"{announced} images but only {shape[0]} are present."
            )
        self.memmap = None
        self.pages = None
        size = self.tif.filehandle.size
        if pages is None:
            end = series.dataoffset + int(np.prod(shape)) * self.dtype.itemsize
            if end > size:
                raise SMLMFileError(
                    f"{path}: truncated TIFF: the image data needs {end} bytes "
                    f"but the file has only {size}."
                )
            self.memmap = np.memmap(
                path,
                dtype=np.dtype(series.dtype).newbyteorder(self.tif.byteorder),
                mode="r",
                offset=series.dataoffset,
                shape=shape,
            )
        else:
            if len(pages) != shape[0]:
                raise SMLMFileError(
                    f"{path}: {len(pages)} TIFF pages do not map one-to-one onto "
                    f"{shape[0]} frames; this layout is not supported."
                )
            for i, page in enumerate(pages):
                if page is None:
                    raise SMLMFileError(
                        f"{path}: frame {i} is missing (a file of the multi-file "
                        "series could not be found)."
                    )
                fh_size = page.parent.filehandle.size
                ends = np.add(page.dataoffsets, page.databytecounts)
                if len(ends) and int(ends.max()) > fh_size:
                    raise SMLMFileError(
                        f"{page.parent.filehandle.path}: truncated TIFF: frame {i} "
                        f"ends at byte {int(ends.max())} but the file has "
                        f"{fh_size} bytes."
                    )
            self.pages = pages
        files = {os.path.abspath(p.parent.filehandle.path): None for p in pages or []}
        self.files = list(files) if len(files) > 1 else [path]
        self.metadata = {
            "pixel_size_nm": _pixel_size_nm(self.tif),
            "axes": axes,
            "imagej": bool(self.tif.is_imagej),
            "ome": bool(self.tif.is_ome)
            or "<OME" in (self.tif.pages.first.description or ""),
        }

    def read(self, start, stop, out):
        """Read frames [start, stop) of this source into ``out``."""
        if self.memmap is not None:
            out[...] = self.memmap[start:stop]
            self._release(start, stop)
            return
        for i in range(start, stop):
            page = self.pages[i]
            try:
                out[i - start] = page.asarray().reshape(self.shape[1:])
            except Exception as e:
                raise SMLMFileError(
                    f"{page.parent.filehandle.path}: cannot read frame {i} "
                    f"({type(e).__name__}: {e}); the file is corrupt or truncated."
                ) from e

    def _release(self, start, stop):
        """Unmap the pages of frames [start, stop) from this process.

        They were copied out; without this, every page read stays in the
        process's resident memory (``RssFile``) until the file is closed, so
        the RSS of a run over a 2.6 GB stack grows to 2.6 GB although only
        the current chunk is in use. The pages stay in the system's page
        cache, and the read-only shared mapping refills from the file if the
        frames are read again.
        """
        mm = getattr(self.memmap, "_mmap", None)
        advise = getattr(mm, "madvise", None)
        if advise is None or not hasattr(mmap, "MADV_DONTNEED"):
            return  # not on this platform: the kernel reclaims them when needed
        frame_bytes = self.memmap.itemsize * int(np.prod(self.shape[1:]))
        # numpy maps from an allocation-granularity boundary before the data
        base = self.memmap.offset % mmap.ALLOCATIONGRANULARITY
        begin = base + start * frame_bytes
        begin -= begin % mmap.PAGESIZE
        end = base + stop * frame_bytes
        if end > begin:
            advise(mmap.MADV_DONTNEED, begin, end - begin)

    def close(self):
        self.memmap = None
        self.pages = None
        tif = getattr(self, "tif", None)
        if tif is not None:
            tif.close()
            self.tif = None


class TiffStack:
    """Lazy view of one or several TIFF files as one stack of frames.

    Frames are read only when asked for: uncompressed contiguous data (what
    ImageJ, Micro-Manager and :func:`write_stack` write) is memory-mapped,
    anything else is decoded page by page. A stack larger than memory can so be
    processed with :meth:`iter_chunks`.

    Parameters
    ----------
    path_or_paths : str, path-like or sequence of them
        One TIFF file, a glob pattern (``"run_*.tif"``, files in natural order,
        so ``run_2`` before ``run_10``) or a list of files (kept in the given
        order) that together form one acquisition. A single OME-TIFF file
        whose series spans several files (OME multi-file) is followed to all of
        them; when several files are given, each contributes its own pages.

    Attributes
    ----------
    paths : list of str
        The files, in stack order.
    shape : tuple of int
        ``(n_frames, H, W)``.
    n_frames : int
        Number of frames.
    frame_shape : tuple of int
        ``(H, W)``.
    dtype : numpy.dtype
        Pixel type, in native byte order.
    metadata : dict
        ``pixel_size_nm`` (float or None): read, in this order, from the
        ``pixel_size_nm`` entry written by :func:`write_stack`, OME
        ``PhysicalSizeX``, ImageJ ``unit`` with the ``XResolution`` tag, or an
        ``XResolution`` tag in pixels per centimetre (a resolution in dots per
        inch is a display setting and is ignored). Also ``axes`` (tifffile axes
        of the first file), ``imagej``, ``ome`` (bools for the first file),
        ``memory_mapped`` (True when every file is memory-mapped) and
        ``frames_per_file``.

    Notes
    -----
    A single 2-D image is a stack of one frame. Axes of length 1 are dropped
    (so ``(n, 1, H, W)`` reads as ``(n, H, W)``). Colour (RGB) images and data
    with more than one non-trivial axis besides ``(H, W)`` raise
    :class:`SMLMFileError`, as do files whose frames differ in shape or dtype.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_smlm.io import TiffStack, write_stack
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "movie.tif")
    >>> write_stack(path, np.arange(24, dtype=np.uint16).reshape(6, 2, 2),
    ...             pixel_size_nm=100.0)
    >>> with TiffStack(path) as stack:
    ...     print(stack.shape, stack.metadata["pixel_size_nm"])
    ...     print([(start, chunk.shape) for start, chunk in stack.iter_chunks(4)])
    (6, 2, 2) 100.0
    [(0, (4, 2, 2)), (4, (2, 2, 2))]
    """

    def __init__(self, path_or_paths):
        paths = _resolve_paths(path_or_paths)
        self._sources = []
        try:
            for path in paths:
                self._sources.append(_TiffSource(path, single=len(paths) == 1))
            first = self._sources[0]
            for source in self._sources[1:]:
                if source.shape[1:] != first.shape[1:] or source.dtype != first.dtype:
                    raise SMLMFileError(
                        f"{source.path}: frames of shape {source.shape[1:]} and "
                        f"dtype {source.dtype} do not match those of "
                        f"{first.path} ({first.shape[1:]}, {first.dtype}); all "
                        "files of a stack need the same frame shape and dtype."
                    )
        except BaseException:
            self.close()
            raise
        self.paths = [f for s in self._sources for f in s.files]
        counts = [s.shape[0] for s in self._sources]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.n_frames = int(self._starts[-1])
        self.frame_shape = tuple(int(n) for n in first.shape[1:])
        self.shape = (self.n_frames, *self.frame_shape)
        self.dtype = first.dtype
        self.metadata = dict(first.metadata)
        self.metadata["memory_mapped"] = all(
            s.memmap is not None for s in self._sources
        )
        self.metadata["frames_per_file"] = counts

    def __len__(self):
        return self.n_frames

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self):
        return (
            f"TiffStack(shape={self.shape}, dtype={self.dtype}, "
            f"files={len(self.paths)})"
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the files (arrays already returned stay valid)."""
        for source in getattr(self, "_sources", []):
            source.close()

    def _check_open(self):
        if any(s.tif is None for s in self._sources):
            raise ValueError("I/O operation on a closed TiffStack.")

    def _read(self, start, stop):
        self._check_open()
        out = np.empty((max(stop - start, 0), *self.frame_shape), dtype=self.dtype)
        if stop <= start:
            return out
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        for k in range(first, len(self._sources)):
            lo = int(self._starts[k])
            if lo >= stop:
                break
            a, b = max(start, lo), min(stop, int(self._starts[k + 1]))
            self._sources[k].read(a - lo, b - lo, out[a - start : b - start])
        return out

    def __getitem__(self, key):
        """Return frame ``key`` (an int) or frames ``key`` (a slice) as an array.

        A tuple indexes the frame axis first and the result with the rest, so
        ``stack[:, 0, 0]`` reads every frame (use it for small stacks only).
        """
        if isinstance(key, tuple):
            if not key:
                return self[:]
            frames = self[key[0]]
            rest = key[1:]
            if isinstance(key[0], slice):
                return frames[(slice(None), *rest)]
            return frames[rest]
        if isinstance(key, slice):
            start, stop, step = key.indices(self.n_frames)
            if step == 1:
                return self._read(start, stop)
            indices = range(start, stop, step)
            out = np.empty((len(indices), *self.frame_shape), dtype=self.dtype)
            for j, i in enumerate(indices):
                out[j] = self._read(i, i + 1)[0]
            return out
        try:
            if isinstance(key, (bool, np.bool_)):
                raise TypeError
            index = operator.index(key)
        except TypeError:
            raise TypeError(
                f"TiffStack indices must be integers or slices, not {key!r}."
            ) from None
        if not -self.n_frames <= index < self.n_frames:
            raise IndexError(
                f"frame {index} is out of range for a stack of {self.n_frames} frames."
            )
        index %= self.n_frames
        return self._read(index, index + 1)[0]

    def __iter__(self):
        for _, chunk in self.iter_chunks():
            yield from chunk

    def iter_chunks(self, chunk_size=256):
        """Yield the frames in consecutive chunks.

        Parameters
        ----------
        chunk_size : int, default=256
            Frames per chunk (the last chunk may be shorter).

        Yields
        ------
        start_frame : int
            Global (0-based) index of the first frame of the chunk.
        frames : ndarray of shape (m, H, W)
            A fresh array; only these ``m`` frames are held in memory.
        """
        if (
            isinstance(chunk_size, (bool, np.bool_))
            or not isinstance(chunk_size, (int, np.integer))
            or chunk_size < 1
        ):
            raise ValueError(
                f"chunk_size must be a positive integer, got {chunk_size!r}."
            )
        for start in range(0, self.n_frames, int(chunk_size)):
            yield start, self._read(start, min(start + int(chunk_size), self.n_frames))


def read_stack(path_or_paths, *, frames=None):
    """Read TIFF frames into memory.

    Parameters
    ----------
    path_or_paths : str, path-like or sequence of them
        As for :class:`TiffStack`.
    frames : slice, int or sequence of int, optional
        Which frames to read (0-based); default all.

    Returns
    -------
    frames : ndarray of shape (n, H, W)
        The frames, in the dtype of the file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_smlm.io import read_stack, write_stack
    >>> path = os.path.join(tempfile.mkdtemp(), "movie.tif")
    >>> write_stack(path, np.arange(12, dtype=np.uint16).reshape(3, 2, 2))
    >>> read_stack(path, frames=slice(1, 3))[:, 0, 0]
    array([4, 8], dtype=uint16)
    """
    with TiffStack(path_or_paths) as stack:
        if frames is None:
            return stack[:]
        if isinstance(frames, slice):
            return stack[frames]
        if np.ndim(frames) == 0:
            return stack[frames][np.newaxis]
        indices = np.asarray(frames)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"frames must hold integers, got dtype {indices.dtype}.")
        out = np.empty((len(indices), *stack.frame_shape), dtype=stack.dtype)
        for j, i in enumerate(indices):
            out[j] = stack[int(i)]
        return out


_IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16))
_IMAGEJ_DTYPES += (np.dtype(np.float32),)


def write_stack(path, frames, *, pixel_size_nm=None, dtype=None):
    """Write frames as a multi-page TIFF, atomically.

    uint8, uint16, int16 and float32 frames are written as an ImageJ hyperstack
    (axes ``TYX``); other dtypes, and stacks over 2 GB, as a plain (Big)TIFF
    that tifffile, Fiji (Bio-Formats) and :class:`TiffStack` read back exactly.

    Parameters
    ----------
    path : str or path-like
        Destination; replaced only once the whole file is written.
    frames : array-like of shape (n, H, W) or (H, W)
        The frames; a 2-D image is written as one frame.
    pixel_size_nm : float, optional
        Camera pixel size, stored in the resolution tags (unit ``nm``) and as a
        ``pixel_size_nm`` metadata entry, so that
        ``TiffStack(path).metadata["pixel_size_nm"]`` returns it exactly.
    dtype : dtype, optional
        Store the frames as this type. Converting to an integer type requires
        whole numbers within its range (no silent rounding or clipping).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_smlm.io import TiffStack, write_stack
    >>> path = os.path.join(tempfile.mkdtemp(), "movie.tif")
    >>> write_stack(path, np.full((2, 3, 3), 100.0), pixel_size_nm=160.0,
    ...             dtype=np.uint16)
    >>> with TiffStack(path) as stack:
    ...     print(stack.dtype, stack.metadata["pixel_size_nm"])
    uint16 160.0
    """
    array = np.asarray(frames)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise ValueError(
            f"frames must have shape (n_frames, H, W) or (H, W), got {array.shape}."
        )
    if array.dtype.kind not in "biuf":
        raise ValueError(f"frames must be numeric, got dtype {array.dtype}.")
    if dtype is not None:
        array = _convert_exactly(array, np.dtype(dtype))
    elif array.dtype.kind == "b":
        array = array.astype(np.uint8)
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    if pixel_size_nm is not None:
        px = _positive_or_none(pixel_size_nm)
        if px is None:
            raise ValueError(
                f"pixel_size_nm must be a positive number, got {pixel_size_nm!r}."
            )
        pixel_size_nm = px
    big = array.nbytes > _BIGTIFF_BYTES
    imagej = array.dtype in _IMAGEJ_DTYPES and not big
    kwargs = {"photometric": "minisblack"}
    if imagej:
        metadata = {"axes": "TYX"}
        if pixel_size_nm is not None:
            metadata.update(unit="nm", pixel_size_nm=pixel_size_nm)
            kwargs["resolution"] = (1.0 / pixel_size_nm, 1.0 / pixel_size_nm)
        kwargs.update(imagej=True, metadata=metadata)
    else:
        metadata = {"axes": "TYX"}
        if pixel_size_nm is not None:
            metadata["pixel_size_nm"] = pixel_size_nm
            kwargs["resolution"] = (1e7 / pixel_size_nm, 1e7 / pixel_size_nm)
            kwargs["resolutionunit"] = "CENTIMETER"
        kwargs.update(metadata=metadata, bigtiff=big)
    with _atomic_path(path) as tmp:
        tifffile.imwrite(tmp, array, **kwargs)


def _convert_exactly(array, dtype):
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if array.size:
            finite = np.isfinite(array) if array.dtype.kind == "f" else True
            if not np.all(finite) or np.any(array != np.round(array)):
                raise ValueError(
                    f"frames hold values that are not whole numbers; they cannot "
                    f"be stored as {dtype} without rounding."
                )
            lo, hi = array.min(), array.max()
            if lo < info.min or hi > info.max:
                raise ValueError(
                    f"frames range from {lo} to {hi}, outside the range of {dtype} "
                    f"[{info.min}, {info.max}]."
                )
        return array.astype(dtype)
    if dtype.kind == "f":
        return array.astype(dtype)
    raise ValueError(f"dtype must be an integer or float type, got {dtype}.")


# --------------------------------------------------------------------------- #
# CSV: shared reading machinery
# --------------------------------------------------------------------------- #

#: ThunderSTORM column name -> library column name.
THUNDERSTORM_COLUMNS = {
    "id": "id",
    "frame": "frame",
    "x [nm]": "x_nm",
    "y [nm]": "y_nm",
    "z [nm]": "z_nm",
    "sigma [nm]": "sigma_nm",
    "intensity [photon]": "photons",
    "offset [photon]": "background",
    "bkgstd [photon]": "bkgstd_photons",
    "uncertainty [nm]": "uncertainty_nm",
    "uncertainty_xy [nm]": "uncertainty_nm",
    "uncertainty_z [nm]": "uncertainty_z_nm",
}
#: The ``table.attrs`` key recording which ThunderSTORM uncertainty name a
#: table was read from, so that writing it back uses the same name.
UNCERTAINTY_ATTR = "thunderstorm_uncertainty_column"
_INTEGER_COLUMNS = ("id", "frame")


def _read_text(path):
    """Return the text of a CSV file, with clear errors for unusable files."""
    path = _check_file(path)
    with open(path, "rb") as f:
        data = f.read()
    if not data.strip():
        raise SMLMFileError(
            f"{path}: the file is empty; a localization CSV needs at least a "
            "header line."
        )
    if b"\x00" in data[:65536]:
        raise SMLMFileError(
            f"{path}: holds binary data, not comma-separated text; is it the "
            "right file (an image, a zip archive)?"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SMLMFileError(
            f"{path}: is not UTF-8 text (byte {e.start} is {data[e.start]:#04x}); "
            "is it a CSV file?"
        ) from e
    return path, text


def _header_fields(line, path):
    try:
        fields = next(csv.reader([line.strip("\r")]), [])
    except csv.Error as exc:
        raise SMLMFileError(
            f"{path}: the first line is not a comma-separated header ({exc}); is "
            "it the right file?"
        ) from None
    return [f.strip() for f in fields]


def _split_header(text, path):
    line, _, rest = text.partition("\n")
    return _header_fields(line, path), rest


def _check_field_counts(path, body, n_fields, first_line_number):
    """Find rows with the wrong number of fields (truncated or mangled lines)."""
    if '"' in body:  # quoted fields may hold commas; let the parser judge
        return
    lines = body.split("\n")
    ends_with_newline = body.endswith("\n")
    if ends_with_newline:
        lines.pop()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        count = line.count(",") + 1
        if count == n_fields:
            continue
        number = first_line_number + i
        if count < n_fields and i == len(lines) - 1 and not ends_with_newline:
            raise SMLMFileError(
                f"{path}: truncated: the last line (line {number}) has {count} of "
                f"{n_fields} fields and no line end; the file was probably cut off "
                "while being written or copied."
            )
        raise SMLMFileError(
            f"{path}: line {number} has {count} fields but the header has "
            f"{n_fields}: {line[:80]!r}."
        )


def _float_parsing():
    """``read_csv`` options that read every ``repr()``-written float bit-exactly.

    Whether pandas' default parser does depends on its version (pandas 2 and
    early 3.0 releases can be off by an ulp, later ones deprecate the
    option), so test the default once on hard cases and ask for
    ``"round_trip"`` only where it is needed.
    """
    global _FLOAT_PARSING
    if _FLOAT_PARSING is None:
        values = [397.30266615910796, 5e-324, 6.666666666666667e-301, 0.1 + 0.2]
        text = "\n".join(map(repr, values))
        parsed = pd.read_csv(io.StringIO(text), header=None, dtype=np.float64)
        exact = parsed[0].to_numpy().tobytes() == np.array(values).tobytes()
        _FLOAT_PARSING = {} if exact else {"float_precision": "round_trip"}
    return _FLOAT_PARSING


_FLOAT_PARSING = None


def _parse(path, body, names, float_columns, first_line_number):
    """Parse the CSV body with float64 for ``float_columns``, inferring others."""
    dtypes = {c: np.float64 for c in float_columns}
    kwargs = {"header": None, "names": names, "skip_blank_lines": True}
    try:
        return pd.read_csv(
            io.StringIO(body), dtype=dtypes, **_float_parsing(), **kwargs
        )
    except (ValueError, pd.errors.ParserError) as e:
        error = e
    # Find the offending cell to name it; parsing without dtypes cannot fail on
    # a non-numeric cell.
    try:
        raw = pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False, **kwargs)
    except (ValueError, pd.errors.ParserError) as e:
        raise SMLMFileError(f"{path}: not a valid CSV file ({e}).") from e
    for column in float_columns:
        values = raw[column].str.strip()
        bad = pd.to_numeric(values.replace("", "nan"), errors="coerce").isna() & ~(
            values.str.lower().isin(["", "nan", "na", "null", "n/a"])
        )
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise SMLMFileError(
                f"{path}: column {column!r} must be numeric but line "
                f"{first_line_number + row} holds {raw[column].iloc[row]!r}."
            ) from error
    raise SMLMFileError(f"{path}: cannot parse the CSV file ({error}).") from error


def _finish(path, table, *, one_based):
    """Turn id/frame into integers, shift frames to 0-based and validate."""
    for column in _INTEGER_COLUMNS:
        if column not in table.columns:
            continue
        values = table[column].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SMLMFileError(
                f"{path}: column {column!r} must hold whole numbers; row {row} "
                f"holds {values[row]!r}."
            )
        table[column] = values.astype(np.int64)
    if one_based and len(table) and table["frame"].min() < 1:
        raise SMLMFileError(
            f"{path}: frame numbers start at 1 in this format, but the file has "
            f"frame {int(table['frame'].min())}. Was it written with 0-based "
            "frames (format='native')?"
        )
    if one_based:
        table["frame"] = table["frame"] - 1
    try:
        return validate_localizations(table, name=str(path), copy=False)
    except ValueError as e:
        raise SMLMFileError(str(e)) from e


def _require_columns(path, names, required, what, hint):
    missing = [c for c in required if c not in names]
    if missing:
        raise SMLMFileError(
            f"{path}: not a {what} file: missing column(s) {missing}; the header "
            f"has {names}. {hint}"
        )
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SMLMFileError(f"{path}: duplicated column(s) {duplicated} in the header.")


# --------------------------------------------------------------------------- #
# CSV: writing machinery
# --------------------------------------------------------------------------- #


def _format_column(values):
    """Column as text: integers plainly, floats with the shortest exact repr."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return values.astype(np.float64).astype(str)
    if values.dtype.kind in "iub":
        return values.astype(np.int64).astype(str)
    return np.array([str(v) for v in values], dtype=object)


def _write_csv(path, header_fields, columns, *, quote_header):
    """Write ``columns`` (list of arrays of str) under ``header_fields``."""
    quoting = csv.QUOTE_ALL if quote_header else csv.QUOTE_MINIMAL
    with _atomic_output(path, "w") as f:
        csv.writer(f, quoting=quoting, lineterminator="\n").writerow(header_fields)
        block = 65536
        n = len(columns[0]) if columns else 0
        for start in range(0, n, block):
            rows = zip(*(c[start : start + block] for c in columns), strict=True)
            writer = csv.writer(f, lineterminator="\n")
            writer.writerows(rows)


def _check_table(table, name="table"):
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"{name} must be a localization DataFrame, got {type(table).__name__}."
        )
    return validate_localizations(table, name=name)


def _ids(table):
    if "id" not in table.columns:
        return np.arange(1, len(table) + 1, dtype=np.int64)
    values = pd.to_numeric(table["id"], errors="coerce").to_numpy(dtype=np.float64)
    if (~np.isfinite(values) | (values != np.round(values))).any():
        raise ValueError("column 'id' must hold whole numbers.")
    return values.astype(np.int64)


# --------------------------------------------------------------------------- #
# ThunderSTORM
# --------------------------------------------------------------------------- #


def read_thunderstorm_csv(path):
    r"""Read a ThunderSTORM localization CSV file.

    Parameters
    ----------
    path : str or path-like
        A file exported by ThunderSTORM ("Export results", CSV, positions in
        nanometres). Frames are 1-based in the file.

    Returns
    -------
    table : pandas.DataFrame
        A localization table with 0-based ``frame``. ThunderSTORM names are
        mapped: ``id`` -> ``id`` (int64), ``x [nm]`` -> ``x_nm``,
        ``y [nm]`` -> ``y_nm``, ``z [nm]`` -> ``z_nm``, ``sigma [nm]`` ->
        ``sigma_nm``, ``intensity [photon]`` -> ``photons``,
        ``offset [photon]`` -> ``background``, ``bkgstd [photon]`` ->
        ``bkgstd_photons``, ``uncertainty [nm]`` or ``uncertainty_xy [nm]`` ->
        ``uncertainty_nm`` (which of the two is recorded in
        ``table.attrs["thunderstorm_uncertainty_column"]``),
        ``uncertainty_z [nm]`` -> ``uncertainty_z_nm``; other columns
        (``chi2``, ``detections``, ...) keep their names and values.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    SMLMFileError
        If the file is empty, binary, truncated, lacks ``frame``, ``x [nm]`` or
        ``y [nm]``, has non-numeric values or NaN positions.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_smlm.io import read_thunderstorm_csv
    >>> path = os.path.join(tempfile.mkdtemp(), "locs.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write('"id","frame","x [nm]","y [nm]","uncertainty_xy [nm]"\n'
    ...                 '1.0,1.0,150.5,250.25,9.5\n')
    >>> table = read_thunderstorm_csv(path)
    >>> table
       id  frame   x_nm    y_nm  uncertainty_nm
    0   1      0  150.5  250.25             9.5
    >>> table.attrs["thunderstorm_uncertainty_column"]
    'uncertainty_xy [nm]'
    """
    path, text = _read_text(path)
    names, body = _split_header(text, path)
    _require_columns(
        path,
        names,
        ["frame", "x [nm]", "y [nm]"],
        "ThunderSTORM CSV",
        "ThunderSTORM files name positions 'x [nm]' and 'y [nm]'; export the "
        "results in nanometres (not pixels).",
    )
    uncertainty = next(
        (n for n in names if n in ("uncertainty [nm]", "uncertainty_xy [nm]")), None
    )
    mapped = []
    for n in names:
        target = THUNDERSTORM_COLUMNS.get(n, n)
        if target == "uncertainty_nm" and n != uncertainty:
            target = n  # a second uncertainty variant stays as it is
        mapped.append(target)
    _require_columns(path, mapped, [], "ThunderSTORM CSV", "")
    floats = [
        m for n, m in zip(names, mapped, strict=True) if n in THUNDERSTORM_COLUMNS
    ]
    _check_field_counts(path, body, len(names), 2)
    table = _parse(path, body, mapped, floats, 2)
    table = _finish(path, table, one_based=True)
    if uncertainty is not None:
        table.attrs[UNCERTAINTY_ATTR] = uncertainty
    return table


def write_thunderstorm_csv(table, path):
    """Write a localization table as a ThunderSTORM CSV file, atomically.

    Parameters
    ----------
    table : pandas.DataFrame
        A localization table (0-based ``frame``). Library columns are renamed
        to their ThunderSTORM names (the inverse of
        :func:`read_thunderstorm_csv`); ``uncertainty_nm`` is written as
        ``uncertainty [nm]`` unless ``table.attrs`` records
        ``uncertainty_xy [nm]``. Other columns (``score``, ``chi2``, ...) are
        written under their own names. An ``id`` column ``1..n`` is added first
        when the table has none.
    path : str or path-like
        Destination, replaced only once the whole file is written.

    Notes
    -----
    The header is quoted like ThunderSTORM's; frames are written 1-based;
    floats with the shortest text that reads back to the same double, so a
    write/read round trip is exact.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from sklearn_smlm.io import write_thunderstorm_csv
    >>> path = os.path.join(tempfile.mkdtemp(), "locs.csv")
    >>> write_thunderstorm_csv(
    ...     pd.DataFrame({"frame": [0], "x_nm": [150.5], "y_nm": [0.1]}), path)
    >>> from pathlib import Path
    >>> print(Path(path).read_text(), end="")
    "id","frame","x [nm]","y [nm]"
    1,1,150.5,0.1
    """
    original = table
    table = _check_table(table)
    uncertainty = original.attrs.get(UNCERTAINTY_ATTR, "uncertainty [nm]")
    if uncertainty not in ("uncertainty [nm]", "uncertainty_xy [nm]"):
        uncertainty = "uncertainty [nm]"
    to_thunderstorm = {v: k for k, v in THUNDERSTORM_COLUMNS.items()}
    to_thunderstorm["uncertainty_nm"] = uncertainty
    header, columns = [], []
    if "id" not in table.columns:
        header.append("id")
        columns.append(_format_column(_ids(table)))
    for column in table.columns:
        name = to_thunderstorm.get(column, str(column))
        header.append(name)
        if column == "frame":
            columns.append(_format_column(table["frame"].to_numpy() + 1))
        elif column == "id":
            columns.append(_format_column(_ids(table)))
        else:
            columns.append(_format_column(table[column].to_numpy()))
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise ValueError(
            f"the table has columns that would share the ThunderSTORM name(s) "
            f"{duplicated}; rename or drop one of them."
        )
    _write_csv(path, header, columns, quote_header=True)


# --------------------------------------------------------------------------- #
# SMLM challenge
# --------------------------------------------------------------------------- #

_CHALLENGE_NAMES = {
    "ground-truth": "id",
    "ground truth": "id",
    "groundtruth": "id",
    "index": "id",
    "id": "id",
    "frame": "frame",
    "xnano": "x_nm",
    "ynano": "y_nm",
    "znano": "z_nm",
    "x": "x_nm",
    "y": "y_nm",
    "z": "z_nm",
    "x [nm]": "x_nm",
    "y [nm]": "y_nm",
    "z [nm]": "z_nm",
    "intensity": "photons",
}
_CHALLENGE_HEADERLESS = {
    6: ["id", "frame", "x_nm", "y_nm", "z_nm", "photons"],
    5: ["frame", "x_nm", "y_nm", "z_nm", "photons"],
    4: ["frame", "x_nm", "y_nm", "z_nm"],
    3: ["frame", "x_nm", "y_nm"],
}
_CHALLENGE_HEADER = ["Ground-truth", "frame", "xnano", "ynano", "znano", "intensity"]


def _is_number(field):
    try:
        float(field)
    except ValueError:
        return False
    return True


def read_challenge_csv(path):
    r"""Read an SMLM-challenge ground-truth or localization CSV file.

    Supported layouts (frames 1-based in the file, positions in nm):

    - 2016 challenge ``activations.csv`` and submissions: rows
      ``index, frame, x, y, z, intensity`` under the header
      ``Ground-truth,frame,xnano,ynano,znano,intensity`` or without header;
    - header-less ``frame, x, y, z, intensity``, ``frame, x, y, z`` or
      ``frame, x, y`` rows (2013-style localization lists);
    - any header naming ``frame`` and ``xnano``/``x``, ``ynano``/``y``
      (optionally ``znano``/``z``, ``intensity``, ``Ground-truth``/``index``);
      other named columns are kept as they are.

    Parameters
    ----------
    path : str or path-like
        The CSV file.

    Returns
    -------
    table : pandas.DataFrame
        Columns ``id`` (int64, when present), ``frame`` (0-based), ``x_nm``,
        ``y_nm`` and, when present, ``z_nm`` and ``photons`` (the intensity).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    SMLMFileError
        If the file is empty, binary, truncated or not in a supported layout.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_smlm.io import read_challenge_csv
    >>> path = os.path.join(tempfile.mkdtemp(), "activations.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("Ground-truth,frame,xnano,ynano,znano,intensity \n"
    ...                 "1, 1, 3256.75, 4501.5, -120.0, 1520.3\n")
    >>> read_challenge_csv(path)
       id  frame     x_nm    y_nm   z_nm  photons
    0   1      0  3256.75  4501.5 -120.0   1520.3
    """
    path, text = _read_text(path)
    fields, rest = _split_header(text, path)
    if all(_is_number(f) for f in fields if f):
        names = _CHALLENGE_HEADERLESS.get(len(fields))
        if names is None:
            raise SMLMFileError(
                f"{path}: header-less challenge CSV rows must have 3 to 6 fields "
                "(frame, x, y[, z[, intensity]] or index, frame, x, y, z, "
                f"intensity); the first line has {len(fields)}."
            )
        body, first_line = text, 1
        floats = list(names)
    else:
        names = [_CHALLENGE_NAMES.get(f.lower(), f) for f in fields]
        _require_columns(
            path,
            names,
            ["frame", "x_nm", "y_nm"],
            "SMLM challenge CSV",
            "Expected a header like 'Ground-truth,frame,xnano,ynano,znano,"
            "intensity' or no header.",
        )
        body, first_line = rest, 2
        floats = [
            n
            for n, f in zip(names, fields, strict=True)
            if f.lower() in _CHALLENGE_NAMES
        ]
    _check_field_counts(path, body, len(names), first_line)
    table = _parse(path, body, names, floats, first_line)
    return _finish(path, table, one_based=True)


def write_challenge_csv(table, path, *, header=True):
    """Write a localization table in the SMLM challenge 2016 layout, atomically.

    Rows are ``index, frame, xnano, ynano, znano, intensity`` with 1-based
    frames: ``index`` is the table's ``id`` (or ``1..n``), ``znano`` its
    ``z_nm`` and ``intensity`` its ``photons``, written as 0 when the table has
    no such column. Other columns have no place in this layout and are not
    written (use :func:`write_thunderstorm_csv` to keep them).

    Parameters
    ----------
    table : pandas.DataFrame
        A localization table (0-based ``frame``).
    path : str or path-like
        Destination, replaced only once the whole file is written.
    header : bool, default=True
        Write the header ``Ground-truth,frame,xnano,ynano,znano,intensity``.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from sklearn_smlm.io import write_challenge_csv
    >>> path = os.path.join(tempfile.mkdtemp(), "submission.csv")
    >>> write_challenge_csv(
    ...     pd.DataFrame({"frame": [0], "x_nm": [150.5], "y_nm": [20.0]}), path)
    >>> from pathlib import Path
    >>> print(Path(path).read_text(), end="")
    Ground-truth,frame,xnano,ynano,znano,intensity
    1,1,150.5,20.0,0.0,0.0
    """
    table = _check_table(table)
    zeros = np.zeros(len(table))
    columns = [
        _format_column(_ids(table)),
        _format_column(table["frame"].to_numpy() + 1),
        _format_column(table["x_nm"].to_numpy()),
        _format_column(table["y_nm"].to_numpy()),
        _format_column(table["z_nm"].to_numpy() if "z_nm" in table else zeros),
        _format_column(table["photons"].to_numpy() if "photons" in table else zeros),
    ]
    if header:
        _write_csv(path, _CHALLENGE_HEADER, columns, quote_header=False)
        return
    with _atomic_output(path, "w") as f:
        csv.writer(f, lineterminator="\n").writerows(zip(*columns, strict=True))


# --------------------------------------------------------------------------- #
# the library's own layout and dispatch
# --------------------------------------------------------------------------- #

_FORMATS = ("thunderstorm", "challenge", "native")


def _read_native_csv(path):
    path, text = _read_text(path)
    names, body = _split_header(text, path)
    _require_columns(path, names, ["frame", "x_nm", "y_nm"], "sklearn-smlm CSV", "")
    from ._localizations import LOCALIZATION_COLUMNS

    floats = [n for n in names if n in LOCALIZATION_COLUMNS or n == "id"]
    _check_field_counts(path, body, len(names), 2)
    table = _parse(path, body, names, floats, 2)
    return _finish(path, table, one_based=False)


def _write_native_csv(table, path):
    table = _check_table(table)
    header = [str(c) for c in table.columns]
    columns = [_format_column(table[c].to_numpy()) for c in table.columns]
    _write_csv(path, header, columns, quote_header=False)


def _sniff(path):
    path = _check_file(path)
    with open(path, "rb") as f:
        head = f.read(65536)
    if not head.strip():
        raise SMLMFileError(f"{path}: the file is empty.")
    if b"\x00" in head:
        raise SMLMFileError(
            f"{path}: holds binary data, not comma-separated text; is it the "
            "right file?"
        )
    try:
        line = head.decode("utf-8-sig").partition("\n")[0]
    except UnicodeDecodeError:
        line = head.decode("latin-1").partition("\n")[0]
    fields = _header_fields(line, path)
    if "x [nm]" in fields:
        return "thunderstorm"
    if "x_nm" in fields and "y_nm" in fields:
        return "native"
    lowered = [f.lower() for f in fields]
    if "xnano" in lowered or all(_is_number(f) for f in fields if f):
        return "challenge"
    if "frame" in lowered and "x" in lowered and "y" in lowered:
        return "challenge"
    raise SMLMFileError(
        f"{path}: unrecognised CSV header {fields[:10]}; expected a ThunderSTORM "
        "file ('x [nm]', 'y [nm]'), an SMLM challenge file ('xnano', 'ynano', or "
        "no header) or an sklearn-smlm file ('frame', 'x_nm', 'y_nm')."
    )


def read_localizations(path):
    """Read a localization CSV file, recognising its layout from the first line.

    The rule, applied to the header line:

    1. a field ``x [nm]`` -> ThunderSTORM (:func:`read_thunderstorm_csv`);
    2. fields ``x_nm`` and ``y_nm`` -> the library's own layout, written by
       ``write_localizations(..., format="native")``: columns are the table's
       own and ``frame`` is **0-based**;
    3. a field ``xnano``, a header ``frame, x, y, ...`` or a first line of
       numbers (no header) -> SMLM challenge (:func:`read_challenge_csv`).

    Anything else raises :class:`SMLMFileError`.

    Parameters
    ----------
    path : str or path-like
        The CSV file.

    Returns
    -------
    table : pandas.DataFrame
        A validated localization table with 0-based ``frame``.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from sklearn_smlm.io import read_localizations, write_localizations
    >>> path = os.path.join(tempfile.mkdtemp(), "locs.csv")
    >>> table = pd.DataFrame({"frame": [0, 2], "x_nm": [1.5, 2.5],
    ...                       "y_nm": [3.0, 4.0], "score": [0.9, 0.7]})
    >>> write_localizations(table, path, format="native")
    >>> read_localizations(path).equals(table)
    True
    """
    kind = _sniff(path)
    if kind == "thunderstorm":
        return read_thunderstorm_csv(path)
    if kind == "native":
        return _read_native_csv(path)
    return read_challenge_csv(path)


def write_localizations(table, path, *, format="thunderstorm"):
    """Write a localization table as CSV, atomically.

    Parameters
    ----------
    table : pandas.DataFrame
        A localization table (0-based ``frame``).
    path : str or path-like
        Destination, replaced only once the whole file is written.
    format : {"thunderstorm", "challenge", "native"}, default="thunderstorm"
        ``"thunderstorm"``: :func:`write_thunderstorm_csv`; ``"challenge"``:
        :func:`write_challenge_csv`; ``"native"``: the table's own columns with
        0-based frames and exact floats, read back by
        :func:`read_localizations`.
    """
    if format == "thunderstorm":
        write_thunderstorm_csv(table, path)
    elif format == "challenge":
        write_challenge_csv(table, path)
    elif format == "native":
        _write_native_csv(table, path)
    else:
        raise ValueError(f"format must be one of {list(_FORMATS)}, got {format!r}.")
