"""Picasso HDF5 localization files (``locs`` dataset and YAML sidecar).

Picasso (Schnitzbauer et al. 2017) keeps localizations in an HDF5 file with one
dataset ``locs``, a structured array with one field per column, and writes the
metadata beside it in ``<name>.yaml``: a YAML file of several documents, one
per processing step (the movie's ``Width``, ``Height`` and ``Frames`` first,
then one document per step such as Picasso Localize's, which holds
``Pixelsize``). Positions are in camera pixels with pixel centres at whole
numbers, so ``x_nm = (x + 0.5) * pixel_size`` (the library's convention puts
the centre of pixel ``col`` at ``(col + 0.5) * pixel_size``); ``frame``
counts from 0; ``lpx``, ``lpy`` (localization precision), ``sx``, ``sy``
(PSF widths) are in pixels; ``photons`` and ``bg`` (photons per pixel) as in
the table; ``z`` and ``lpz`` in nm.

This module also holds the package's format dispatch
(:func:`read_localizations`, :func:`write_localizations`): Picasso files are
recognised by their HDF5 signature, everything else goes to the CSV readers.
"""

import os
import warnings

import numpy as np
import pandas as pd

from .. import __version__
from .._files import atomic_path
from .._localizations import validate_localizations
from .._validation import check_real
from ._common import SMLMFileError, _check_file
from ._csv import read_localizations as read_csv_localizations
from ._csv import write_localizations as write_csv_localizations

__all__ = [
    "read_picasso_hdf5",
    "write_picasso_hdf5",
    "PicassoAppender",
    "read_localizations",
    "write_localizations",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Picasso's columns, in the order Picasso Localize writes them
_PICASSO_FIELDS = ("frame", "x", "y", "photons", "sx", "sy", "bg", "lpx", "lpy")
# table columns written under Picasso's names or used to build them
_MAPPED = {
    "frame",
    "x_nm",
    "y_nm",
    "z_nm",
    "photons",
    "background",
    "sigma_nm",
    "sigma_x_nm",
    "sigma_y_nm",
    "uncertainty_nm",
    "uncertainty_x_nm",
    "uncertainty_y_nm",
    "uncertainty_z_nm",
    "id",
}


def _check_pixel_size(pixel_size_nm):
    try:
        return check_real(pixel_size_nm, "pixel_size_nm", low=0, low_open=True)
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"Picasso files store positions in camera pixels: {exc}"
        ) from None


def _sidecar(path):
    return os.path.splitext(os.fspath(path))[0] + ".yaml"


def _picasso_columns(table, px):
    """Return the columns under Picasso's names and units, and what is missing."""

    def column(name, scale=1.0):
        if name in table.columns:
            return table[name].to_numpy(dtype=np.float64) * scale
        return None

    missing = []

    def first(*candidates, scale=1.0, what):
        for name in candidates:
            values = column(name, scale)
            if values is not None:
                return values
        missing.append(what)
        return None

    frame = table["frame"].to_numpy()
    if len(frame) and frame.max() > np.iinfo(np.uint32).max:
        raise ValueError("frame numbers above 2**32 - 1 do not fit Picasso's uint32.")
    cols = {
        "frame": frame.astype(np.uint32),
        "x": table["x_nm"].to_numpy(dtype=np.float64) / px - 0.5,
        "y": table["y_nm"].to_numpy(dtype=np.float64) / px - 0.5,
        "photons": first("photons", what="photons"),
        "sx": first("sigma_x_nm", "sigma_nm", scale=1 / px, what="sigma_nm (sx)"),
        "sy": first("sigma_y_nm", "sigma_nm", scale=1 / px, what="sigma_nm (sy)"),
        "bg": first("background", what="background (bg)"),
        "lpx": first(
            "uncertainty_x_nm", "uncertainty_nm", scale=1 / px, what="uncertainty_nm"
        ),
        "lpy": first(
            "uncertainty_y_nm", "uncertainty_nm", scale=1 / px, what="uncertainty_nm"
        ),
    }
    if "z_nm" in table.columns:  # Picasso's z and lpz are in nm
        cols["z"] = table["z_nm"].to_numpy(dtype=np.float64)
    if "uncertainty_z_nm" in table.columns:
        cols["lpz"] = table["uncertainty_z_nm"].to_numpy(dtype=np.float64)
    for name in table.columns:
        if name in _MAPPED or name in cols:
            continue
        values = table[name]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(
            values
        ):
            cols[name] = values.to_numpy(dtype=np.float64)
    out = {}
    for name, values in cols.items():
        if values is not None:
            out[name] = values if name == "frame" else values.astype(np.float32)
    return out, sorted(set(missing))


# fields that Picasso's loader requires to be >= 0 (it drops other rows)
_NON_NEGATIVE = ("x", "y", "lpx", "lpy", "lpz", "photons", "ellipticity", "sx", "sy")


def _dropped_by_picasso(cols, width=None, height=None):
    """Count the rows Picasso's loader drops: NaN anywhere, negative, off-frame."""
    bad = np.zeros(len(cols["frame"]), dtype=bool)
    for name, values in cols.items():
        if name == "frame":
            continue
        bad |= ~np.isfinite(values)
        if name in _NON_NEGATIVE:
            bad |= values < 0
    if width is not None:
        bad |= cols["x"] >= width
    if height is not None:
        bad |= cols["y"] >= height
    return int(bad.sum())


def _warn(missing, dropped, stacklevel):
    if missing:
        warnings.warn(
            f"the table has no {', '.join(missing)}: the Picasso file leaves those "
            "fields out (Picasso Render's precision blur needs lpx/lpy, from "
            "uncertainty_nm).",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
    if dropped:
        warnings.warn(
            f"{dropped} localizations lie outside the frame (x or y below 0 or "
            "beyond Width/Height) or hold NaN or negative values; Picasso drops "
            "them when it loads the file.",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def _structured(cols):
    dtype = np.dtype([(name, values.dtype) for name, values in cols.items()])
    array = np.empty(len(cols["frame"]), dtype=dtype)
    for name, values in cols.items():
        array[name] = values
    return array


def _info(table_frames, px, *, frame_shape, n_frames, x, y, source, step):
    if frame_shape is None:
        # the smallest frame holding every localization
        width = int(np.floor(np.nanmax(x, initial=0.0) + 0.5)) + 1
        height = int(np.floor(np.nanmax(y, initial=0.0) + 0.5)) + 1
    else:
        height, width = (int(v) for v in frame_shape)
    if n_frames is None:
        n_frames = int(table_frames) if table_frames else 0
    movie = {
        "Byte Order": "<",
        "File": source,
        "Frames": int(n_frames),
        "Height": int(height),
        "Width": int(width),
    }
    generated = {
        "Generated by": f"sklearn-smlm {__version__} {step}",
        "Pixelsize": px,
    }
    return [movie, generated]


def _write_info(path, info):
    import yaml

    with (
        atomic_path(path, suffix=".yaml") as tmp,
        open(tmp, "w", encoding="utf-8") as f,
    ):
        yaml.safe_dump_all(info, f, default_flow_style=False, sort_keys=False)


def write_picasso_hdf5(
    table,
    path,
    *,
    pixel_size_nm,
    frame_shape=None,
    n_frames=None,
    source=None,
    step="localize",
):
    """Write a localization table as a Picasso HDF5 file and its YAML sidecar.

    Parameters
    ----------
    table : pandas.DataFrame
        Localization table (``frame``, ``x_nm``, ``y_nm``; ``photons``,
        ``background``, ``sigma_nm``, ``uncertainty_nm``, ``z_nm`` where
        present; other numeric columns are kept under their own names).
    path : str or path-like
        The ``.hdf5`` file; the metadata go to the same name with ``.yaml``.
    pixel_size_nm : float
        Camera pixel size: Picasso's positions and widths are in pixels.
    frame_shape : (int, int), optional
        ``(height, width)`` of the camera frames (``Height``, ``Width``);
        default the smallest frame holding every localization.
    n_frames : int, optional
        Length of the movie (``Frames``); default the last frame + 1.
    source : str, optional
        The movie the table came from (``File``).
    step : str, default="localize"
        Named in the ``Generated by`` entry of the metadata.

    Notes
    -----
    Fields the table cannot fill (``lpx``/``lpy`` without
    ``uncertainty_nm``, ...) are left out, with a warning naming them: Picasso
    drops every row holding a NaN when it loads a file. Rows it would drop for
    another reason (a position below 0 or beyond ``Width``/``Height``, a
    negative value) are written, with a warning that counts them. Columns are
    float32, as Picasso writes them: positions round to ~1e-5 pixel.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from sklearn_smlm.io import read_localizations
    >>> path = os.path.join(tempfile.mkdtemp(), "locs.hdf5")
    >>> table = pd.DataFrame({"frame": [0, 3], "x_nm": [150.0, 1230.0],
    ...     "y_nm": [50.0, 700.0], "photons": [900.0, 1500.0],
    ...     "background": [12.0, 20.0], "sigma_nm": [110.0, 120.0],
    ...     "uncertainty_nm": [8.0, 6.0]})
    >>> write_picasso_hdf5(table, path, pixel_size_nm=100.0, frame_shape=(64, 64))
    >>> read_localizations(path)[["frame", "x_nm", "y_nm", "uncertainty_nm"]]
       frame    x_nm   y_nm  uncertainty_nm
    0      0   150.0   50.0             8.0
    1      3  1230.0  700.0             6.0
    """
    import h5py

    table = validate_localizations(table, name="table")
    px = _check_pixel_size(pixel_size_nm)
    cols, missing = _picasso_columns(table, px)
    info = _info(
        int(table["frame"].max()) + 1 if len(table) else 0,
        px,
        frame_shape=frame_shape,
        n_frames=n_frames,
        x=cols["x"],
        y=cols["y"],
        source=source,
        step=step,
    )
    _warn(missing, _dropped_by_picasso(cols, info[0]["Width"], info[0]["Height"]), 2)
    with atomic_path(path, suffix=".hdf5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("locs", data=_structured(cols))
    _write_info(_sidecar(path), info)


def _load_info(path):
    import yaml

    sidecar = _sidecar(path)
    if not os.path.exists(sidecar):
        return None
    try:
        with open(sidecar, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as exc:
        raise SMLMFileError(f"{sidecar}: not readable YAML ({exc}).") from exc
    return docs


def _from_info(docs, key):
    """``key`` from the last document that has it (Picasso's own rule)."""
    for doc in reversed(docs or []):
        if isinstance(doc, dict) and key in doc:
            return doc[key]
    return None


def read_picasso_hdf5(path, *, pixel_size_nm=None):
    """Read a Picasso HDF5 localization file as a localization table.

    Parameters
    ----------
    path : str or path-like
        The ``.hdf5`` file (its ``<name>.yaml`` sidecar is read for
        ``Pixelsize``).
    pixel_size_nm : float, optional
        Camera pixel size; overrides the sidecar's ``Pixelsize``. Required
        when the sidecar has none.

    Returns
    -------
    table : pandas.DataFrame
        ``frame``, ``x_nm``, ``y_nm`` (``(x + 0.5) * pixel_size``),
        ``photons``, ``background`` (from ``bg``), ``sigma_nm`` (geometric
        mean of ``sx`` and ``sy``; also ``sigma_x_nm``, ``sigma_y_nm`` when
        they differ), ``uncertainty_nm`` (root mean square of ``lpx`` and
        ``lpy``; also per axis when they differ), ``z_nm`` and
        ``uncertainty_z_nm`` (from ``z`` and ``lpz``, in nm), and
        every other field under its own name. The sidecar's documents are
        kept in ``table.attrs["picasso_info"]``.
    """
    import h5py

    path = _check_file(path)
    docs = _load_info(path)
    if pixel_size_nm is None:
        pixel_size_nm = _from_info(docs, "Pixelsize")
        if pixel_size_nm is None:
            raise SMLMFileError(
                f"{path}: no Pixelsize in {_sidecar(path)}"
                + ("" if docs is not None else " (file missing)")
                + "; give the camera pixel size (pixel_size_nm=, or --pixel-size-nm)."
            )
    px = _check_pixel_size(pixel_size_nm)
    try:
        with h5py.File(path, "r") as f:
            if "locs" not in f:
                raise SMLMFileError(
                    f"{path}: HDF5 file without a 'locs' dataset; it has "
                    f"{sorted(f.keys())}. Is it a Picasso localization file?"
                )
            locs = f["locs"][...]
    except OSError as exc:
        raise SMLMFileError(f"{path}: not a readable HDF5 file ({exc}).") from exc
    names = locs.dtype.names or ()
    for need in ("frame", "x", "y"):
        if need not in names:
            raise SMLMFileError(
                f"{path}: the 'locs' dataset has no field {need!r}; it has "
                f"{list(names)}."
            )

    def get(name):
        return locs[name].astype(np.float64)

    out = {
        "frame": locs["frame"].astype(np.int64),
        "x_nm": (get("x") + 0.5) * px,
        "y_nm": (get("y") + 0.5) * px,
    }
    if "z" in names:
        out["z_nm"] = get("z")
    if "lpz" in names:
        out["uncertainty_z_nm"] = get("lpz")
    if "photons" in names:
        out["photons"] = get("photons")
    if "bg" in names:
        out["background"] = get("bg")
    if "sx" in names and "sy" in names:
        sx, sy = get("sx") * px, get("sy") * px
        out["sigma_nm"] = np.sqrt(sx * sy)
        if not np.array_equal(sx, sy, equal_nan=True):
            out["sigma_x_nm"], out["sigma_y_nm"] = sx, sy
    if "lpx" in names and "lpy" in names:
        lx, ly = get("lpx") * px, get("lpy") * px
        out["uncertainty_nm"] = np.sqrt(0.5 * (lx**2 + ly**2))
        if not np.array_equal(lx, ly, equal_nan=True):
            out["uncertainty_x_nm"], out["uncertainty_y_nm"] = lx, ly
    taken = {"frame", "x", "y", "z", "lpz", "photons", "bg", "sx", "sy", "lpx", "lpy"}
    for name in names:
        if name not in taken and name not in out:
            out[name] = locs[name]
    table = validate_localizations(pd.DataFrame(out), name=path, copy=False)
    table.attrs["picasso_info"] = docs or []
    return table


class PicassoAppender:
    """Append chunk tables to a Picasso HDF5 file (a resizable ``locs`` dataset).

    The appender of :class:`~sklearn_smlm.io.LocalizationWriter` for
    ``format="picasso"``: each chunk is added to the end of ``locs``; the YAML
    sidecar is written when the writer closes (with ``Frames`` the last frame
    + 1 unless ``n_frames`` is given).

    Parameters
    ----------
    path : str
        The file being written (``<name>.hdf5.partial``: the sidecar is named
        after the final ``<name>.hdf5``).
    format : str
        ``"picasso"``.
    pixel_size_nm : float
        Camera pixel size.
    frame_shape, n_frames, source, step
        As in :func:`write_picasso_hdf5`.
    """

    def __init__(
        self,
        path,
        format="picasso",
        *,
        pixel_size_nm=None,
        frame_shape=None,
        n_frames=None,
        source=None,
        step="localize",
    ):
        import h5py

        self.px = _check_pixel_size(pixel_size_nm)
        self.path = path
        final = path[: -len(".partial")] if path.endswith(".partial") else path
        self.sidecar = _sidecar(final)
        self.frame_shape = frame_shape
        self.n_frames = n_frames
        self.source = source
        self.step = step
        self.file = h5py.File(path, "w")
        self.dataset = None
        self.max_frame = -1
        self.max_xy = [0.0, 0.0]
        self.warned = False
        self.dropped = 0

    def append(self, table, first_id):
        """Add the rows of one chunk; ``first_id`` is not used (no ids)."""
        table = validate_localizations(table, name="table")
        cols, missing = _picasso_columns(table, self.px)
        if missing and not self.warned:
            self.warned = True
            _warn(missing, 0, 3)
        height, width = (None, None) if self.frame_shape is None else self.frame_shape
        self.dropped += _dropped_by_picasso(cols, width, height)
        rows = _structured(cols)
        if self.dataset is None:
            self.dataset = self.file.create_dataset(
                "locs",
                shape=(0,),
                maxshape=(None,),
                dtype=rows.dtype,
                chunks=(65536,),
            )
        elif rows.dtype != self.dataset.dtype:
            raise ValueError(
                f"{self.path}: the columns changed between chunks "
                f"({list(self.dataset.dtype.names)} then {list(rows.dtype.names)}); "
                "every chunk must have the same columns."
            )
        n = self.dataset.shape[0]
        self.dataset.resize((n + len(rows),))
        self.dataset[n:] = rows
        if len(rows):
            self.max_frame = max(self.max_frame, int(cols["frame"].max()))
            self.max_xy[0] = max(self.max_xy[0], float(np.nanmax(cols["x"])))
            self.max_xy[1] = max(self.max_xy[1], float(np.nanmax(cols["y"])))
        self.file.flush()

    def close(self):
        """Close the HDF5 file and write the YAML sidecar."""
        if self.dataset is None:  # no chunk: an empty table with the core fields
            empty = {"frame": np.empty(0, np.uint32)}
            empty.update({f: np.empty(0, np.float32) for f in _PICASSO_FIELDS[1:]})
            self.file.create_dataset("locs", data=_structured(empty), maxshape=(None,))
        self.file.close()
        info = _info(
            self.max_frame + 1,
            self.px,
            frame_shape=self.frame_shape,
            n_frames=self.n_frames,
            x=np.array([self.max_xy[0]]),
            y=np.array([self.max_xy[1]]),
            source=self.source,
            step=self.step,
        )
        _write_info(self.sidecar, info)
        _warn([], self.dropped, 2)

    def abort(self):
        """Close the file without a sidecar."""
        self.file.close()


# ------------------------------------------------------------------ dispatch
def _is_hdf5(path):
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def read_localizations(path, *, pixel_size_nm=None):
    """Read a localization file, recognising its format.

    Picasso HDF5 files (recognised by the HDF5 signature) are read by
    :func:`read_picasso_hdf5`; CSV files by their header line:

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
        The file.
    pixel_size_nm : float, optional
        Picasso files only: the camera pixel size when the YAML sidecar has
        no ``Pixelsize`` (it overrides the sidecar's).

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
    checked = _check_file(path)
    if _is_hdf5(checked):
        return read_picasso_hdf5(checked, pixel_size_nm=pixel_size_nm)
    return read_csv_localizations(path)


def write_localizations(table, path, *, format="thunderstorm", **picasso_options):
    """Write a localization table, atomically.

    Parameters
    ----------
    table : pandas.DataFrame
        A localization table (0-based ``frame``).
    path : str or path-like
        Destination, replaced only once the whole file is written.
    format : {"thunderstorm", "challenge", "native", "picasso"}, \
default="thunderstorm"
        ``"thunderstorm"``: :func:`write_thunderstorm_csv`; ``"challenge"``:
        :func:`write_challenge_csv`; ``"native"``: the table's own columns with
        0-based frames and exact floats, read back by
        :func:`read_localizations`; ``"picasso"``: :func:`write_picasso_hdf5`
        (HDF5 and a YAML sidecar, for Picasso Render).
    **picasso_options
        ``pixel_size_nm`` (required), ``frame_shape``, ``n_frames``,
        ``source`` for ``format="picasso"``.
    """
    if format == "picasso":
        write_picasso_hdf5(table, path, **picasso_options)
        return
    if picasso_options:
        raise TypeError(
            f"options {sorted(picasso_options)} are for format='picasso' only."
        )
    write_csv_localizations(table, path, format=format)
