"""TIFF stacks: the lazy :class:`TiffStack`, :func:`read_stack`, :func:`write_stack`."""

import contextlib
import logging
import math
import mmap
import operator
import os
import re
import struct

import numpy as np
import tifffile

from .._files import atomic_path as _atomic_path
from .._validation import check_int
from ._common import SMLMFileError, _check_file, _resolve_paths

__all__ = ["TiffStack", "read_stack", "write_stack"]

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
        chunk_size = check_int(chunk_size, "chunk_size", low=1)
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
