"""The localization table: one pandas DataFrame schema shared by every stage.

Every estimator, reader, writer, metric and renderer of the library exchanges
emitters and localizations as a :class:`pandas.DataFrame` with the columns
below. Positions follow the camera convention of ThunderSTORM and of the SMLM
challenges: camera pixel ``(row, col)`` covers ``x`` in
``[col * px, (col + 1) * px)`` nanometres, so its centre lies at
``x_nm = (col + 0.5) * px`` (and likewise ``y_nm`` with ``row``). Frames are
numbered from 0 in memory (they are 1-based in ThunderSTORM files).

Scikit-learn estimators take their targets ``y`` as a *per-frame list*: one
``(k, 2)`` array of ``(x_nm, y_nm)`` (or ``(k, 3)`` with ``z_nm``) per frame,
so that cross-validation splits frames, not rows. The helpers here convert
between the two forms.
"""

import numbers

import numpy as np
import pandas as pd

__all__ = [
    "LOCALIZATION_COLUMNS",
    "REQUIRED_COLUMNS",
    "empty_localizations",
    "validate_localizations",
    "localizations_from_list",
    "localizations_to_list",
    "check_positions",
]

#: Column name -> (dtype, unit, meaning). Only ``frame``, ``x_nm`` and ``y_nm``
#: are required; a table may carry any other column as well.
LOCALIZATION_COLUMNS = {
    "frame": ("int64", "", "0-based index of the frame in the stack"),
    "x_nm": ("float64", "nm", "lateral position along the image columns"),
    "y_nm": ("float64", "nm", "lateral position along the image rows"),
    "z_nm": ("float64", "nm", "axial position (3D data only)"),
    "photons": ("float64", "photons", "total photons of the emitter in the frame"),
    "background": ("float64", "photons/pixel", "local background level"),
    "score": ("float64", "", "detection confidence (height of the map peak)"),
    "sigma_nm": ("float64", "nm", "width (standard deviation) of the fitted PSF"),
    "uncertainty_nm": ("float64", "nm", "lateral localization uncertainty"),
}

REQUIRED_COLUMNS = ("frame", "x_nm", "y_nm")
_POSITION_COLUMNS = ("x_nm", "y_nm", "z_nm")


def concat_localizations(tables, columns=REQUIRED_COLUMNS):
    """Concatenate the tables of consecutive chunks into one.

    Empty tables are left out of the concatenation, but when every table is
    empty the result keeps their columns (so a run without a detection has
    the same columns as one with detections).

    Parameters
    ----------
    tables : list of pandas.DataFrame
        Tables with the same columns.
    columns : sequence of str, default=("frame", "x_nm", "y_nm")
        Columns of the empty result when ``tables`` is empty.

    Returns
    -------
    table : pandas.DataFrame
        One table with a fresh 0-based index.
    """
    nonempty = [t for t in tables if len(t)]
    if nonempty:
        return pd.concat(nonempty, ignore_index=True)
    if tables:
        return tables[0].iloc[:0].reset_index(drop=True)
    return empty_localizations(columns)


def empty_localizations(columns=REQUIRED_COLUMNS):
    """Return a localization table with no rows and the right dtypes.

    Parameters
    ----------
    columns : sequence of str, default=("frame", "x_nm", "y_nm")
        Columns of the table. Known columns get their documented dtype,
        others ``float64``.

    Returns
    -------
    table : pandas.DataFrame of shape (0, len(columns))
        A table without rows.

    Examples
    --------
    >>> from sklearn_smlm import empty_localizations
    >>> empty_localizations().dtypes.to_dict()
    {'frame': dtype('int64'), 'x_nm': dtype('float64'), 'y_nm': dtype('float64')}
    """
    return pd.DataFrame(
        {
            c: np.empty(0, dtype=LOCALIZATION_COLUMNS.get(c, ("float64",))[0])
            for c in columns
        }
    )


def validate_localizations(table, *, name="localizations", copy=True):
    """Check a localization table and return it with the documented dtypes.

    Parameters
    ----------
    table : pandas.DataFrame
        Must have the columns ``frame``, ``x_nm`` and ``y_nm``.
    name : str, default="localizations"
        What the table is called in error messages (a file name, say).
    copy : bool, default=True
        Work on a copy; ``False`` may convert the columns of ``table`` in place.

    Returns
    -------
    table : pandas.DataFrame
        ``frame`` as ``int64``, the known float columns as ``float64``, with a
        fresh ``RangeIndex``.

    Raises
    ------
    TypeError
        If ``table`` is not a DataFrame.
    ValueError
        If a required column is missing, a position is NaN or infinite, or a
        frame number is negative or not a whole number.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_smlm import validate_localizations
    >>> validate_localizations(pd.DataFrame({"frame": [0], "x_nm": [1], "y_nm": [2]}))
       frame  x_nm  y_nm
    0      0   1.0   2.0
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"{name} must be a pandas DataFrame with columns 'frame', 'x_nm' and "
            f"'y_nm', got {type(table).__name__}."
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"{name} is missing the column(s) {missing}; it has "
            f"{list(map(str, table.columns))}. A localization table needs "
            f"{list(REQUIRED_COLUMNS)}."
        )
    if copy:
        table = table.copy()
    table = table.reset_index(drop=True)

    frame = pd.to_numeric(table["frame"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(frame) | (frame != np.round(frame))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}: column 'frame' must hold whole numbers; row {row} holds "
            f"{table['frame'].iloc[row]!r}."
        )
    if (frame >= 2**62).any():
        row = int(np.flatnonzero(frame >= 2**62)[0])
        raise ValueError(
            f"{name}: frame number {frame[row]:.3g} in row {row} is too large to be "
            "a frame of a stack."
        )
    if (frame < 0).any():
        raise ValueError(
            f"{name}: frame numbers must be >= 0 (0-based), found {int(frame.min())}."
        )
    table["frame"] = frame.astype(np.int64)

    for column, (dtype, _, _) in LOCALIZATION_COLUMNS.items():
        if column == "frame" or column not in table.columns:
            continue
        try:
            table[column] = table[column].astype(dtype)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: column {column!r} is not numeric.") from exc
        if column in _POSITION_COLUMNS:
            values = table[column].to_numpy()
            bad = ~np.isfinite(values)
            if bad.any():
                raise ValueError(
                    f"{name}: column {column!r} has {int(bad.sum())} NaN or "
                    f"infinite value(s), first at row {int(np.flatnonzero(bad)[0])}."
                )
    return table


def localizations_from_list(positions, *, columns=None):
    """Build a localization table from a per-frame list of position arrays.

    Parameters
    ----------
    positions : sequence of array-like of shape (k_i, 2) or (k_i, 3)
        Entry ``i`` holds the ``(x_nm, y_nm[, z_nm])`` positions of frame ``i``;
        an empty frame is an array of shape ``(0, 2)`` (or any empty array).
    columns : sequence of str, optional
        Column names for the position axis; default ``("x_nm", "y_nm")`` or
        ``("x_nm", "y_nm", "z_nm")`` from the width of the arrays.

    Returns
    -------
    table : pandas.DataFrame
        Columns ``frame`` followed by ``columns``, rows in frame order.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm import localizations_from_list
    >>> localizations_from_list([np.array([[150.0, 250.0]]), np.empty((0, 2))])
       frame   x_nm   y_nm
    0      0  150.0  250.0
    """
    arrays = [_as_position_array(p, i) for i, p in enumerate(positions)]
    widths = {a.shape[1] for a in arrays if len(a)}
    if len(widths) > 1:
        raise ValueError(
            f"positions mix arrays of widths {sorted(widths)}; use (k, 2) or "
            "(k, 3) for every frame."
        )
    width = widths.pop() if widths else (len(columns) if columns else 2)
    if columns is None:
        columns = _POSITION_COLUMNS[:width]
    if len(columns) != width:
        raise ValueError(f"{len(columns)} column names for positions of width {width}.")
    counts = np.array([len(a) for a in arrays], dtype=np.int64)
    data = (
        np.concatenate([a for a in arrays if len(a)])
        if counts.sum()
        else np.empty((0, width))
    )
    table = pd.DataFrame(data, columns=list(columns), dtype=np.float64)
    table.insert(0, "frame", np.repeat(np.arange(len(arrays), dtype=np.int64), counts))
    return table


def localizations_to_list(table, n_frames=None, *, columns=("x_nm", "y_nm")):
    """Split a localization table into a per-frame list of position arrays.

    Parameters
    ----------
    table : pandas.DataFrame
        A localization table (see :func:`validate_localizations`).
    n_frames : int, optional
        Length of the list; frames without localizations get empty arrays.
        Default: the largest frame number plus one.
    columns : sequence of str, default=("x_nm", "y_nm")
        The columns that form each row of the arrays.

    Returns
    -------
    positions : list of ndarray of shape (k_i, len(columns))
        One array per frame, in frame order.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_smlm import localizations_to_list
    >>> table = pd.DataFrame({"frame": [1, 1], "x_nm": [1.0, 2.0], "y_nm": [3.0, 4.0]})
    >>> [p.shape for p in localizations_to_list(table, n_frames=3)]
    [(0, 2), (2, 2), (0, 2)]
    """
    table = validate_localizations(table, copy=False)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"the table has no column(s) {missing}.")
    frames = table["frame"].to_numpy()
    if n_frames is None:
        n_frames = int(frames.max()) + 1 if len(frames) else 0
    if len(frames) and frames.max() >= n_frames:
        raise ValueError(
            f"the table has localizations in frame {int(frames.max())} but only "
            f"{n_frames} frame(s) were asked for."
        )
    order = np.argsort(frames, kind="stable")
    values = table[list(columns)].to_numpy(dtype=np.float64)[order]
    bounds = np.searchsorted(frames[order], np.arange(n_frames + 1))
    return [values[bounds[i] : bounds[i + 1]] for i in range(n_frames)]


def check_positions(y, n_frames=None, *, name="y"):
    """Return targets ``y`` as a per-frame list of ``(k, 2)`` float arrays.

    Accepts the per-frame list itself (or an object array of such arrays) or a
    localization DataFrame.

    Parameters
    ----------
    y : sequence of array-like or pandas.DataFrame
        True positions, in nanometres.
    n_frames : int, optional
        Expected number of frames; a list of another length is an error.
    name : str, default="y"
        Name used in error messages.

    Returns
    -------
    positions : list of ndarray of shape (k_i, 2)
    """
    if isinstance(y, pd.DataFrame):
        return localizations_to_list(y, n_frames=n_frames)
    if y is None or isinstance(y, (str, bytes, numbers.Number)):
        raise TypeError(
            f"{name} must be a list with one (k, 2) array of (x_nm, y_nm) per frame "
            f"or a localization DataFrame, got {type(y).__name__}."
        )
    positions = [_as_position_array(p, i, name=name)[:, :2] for i, p in enumerate(y)]
    if n_frames is not None and len(positions) != n_frames:
        raise ValueError(
            f"{name} has positions for {len(positions)} frame(s) but there are "
            f"{n_frames} frame(s)."
        )
    return positions


def _as_position_array(p, i, name="positions"):
    try:
        a = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}[{i}] is not a numeric array.") from exc
    if a.size == 0:
        return a.reshape(0, a.shape[1] if a.ndim == 2 else 2)
    if a.ndim != 2 or a.shape[1] not in (2, 3):
        raise ValueError(
            f"{name}[{i}] must have shape (k, 2) or (k, 3) (x_nm, y_nm[, z_nm]), "
            f"got shape {a.shape}."
        )
    if not np.isfinite(a).all():
        raise ValueError(f"{name}[{i}] holds NaN or infinite positions.")
    return a
