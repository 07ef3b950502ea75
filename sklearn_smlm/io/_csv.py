"""Localization tables as CSV: ThunderSTORM, SMLM challenge and the native layout."""

import csv
import io

import numpy as np
import pandas as pd

from .._localizations import validate_localizations
from ._common import SMLMFileError, _atomic_output, _check_file

__all__ = [
    "read_thunderstorm_csv",
    "write_thunderstorm_csv",
    "read_challenge_csv",
    "write_challenge_csv",
    "read_localizations",
    "write_localizations",
]

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
    # the elliptical widths of ThunderSTORM's astigmatic 3D fits
    "sigma1 [nm]": "sigma_x_nm",
    "sigma2 [nm]": "sigma_y_nm",
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
_INTEGER_COLUMNS = ("id", "frame", "first_frame", "last_frame")
# frame numbers: 1-based in ThunderSTORM and challenge files, 0-based in memory
# (first_frame / last_frame are the span of a merged event)
_FRAME_COLUMNS = ("frame", "first_frame", "last_frame")


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
        for column in _FRAME_COLUMNS:
            if column in table.columns:
                table[column] = table[column] - 1
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


def _write_header(f, header_fields, *, quote_header):
    quoting = csv.QUOTE_ALL if quote_header else csv.QUOTE_MINIMAL
    csv.writer(f, quoting=quoting, lineterminator="\n").writerow(header_fields)


def _write_rows(f, columns):
    """Write ``columns`` (list of arrays of str) as rows, a block at a time."""
    block = 65536
    n = len(columns[0]) if columns else 0
    for start in range(0, n, block):
        rows = zip(*(c[start : start + block] for c in columns), strict=True)
        writer = csv.writer(f, lineterminator="\n")
        writer.writerows(rows)


def _write_csv(path, header_fields, columns, *, quote_header):
    """Write ``columns`` (list of arrays of str) under ``header_fields``."""
    with _atomic_output(path, "w") as f:
        if header_fields is not None:
            _write_header(f, header_fields, quote_header=quote_header)
        _write_rows(f, columns)


def _check_table(table, name="table"):
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"{name} must be a localization DataFrame, got {type(table).__name__}."
        )
    return validate_localizations(table, name=name)


def _ids(table, first_id=1):
    if "id" not in table.columns:
        return np.arange(first_id, first_id + len(table), dtype=np.int64)
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
    header, columns = _thunderstorm_fields(table)
    _write_csv(path, header, columns, quote_header=True)


def _thunderstorm_fields(table, first_id=1):
    """Header and text columns of a ThunderSTORM CSV; ids from ``first_id``."""
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
        columns.append(_format_column(_ids(table, first_id)))
    for column in table.columns:
        name = to_thunderstorm.get(column, str(column))
        header.append(name)
        if column in _FRAME_COLUMNS:
            columns.append(_format_column(table[column].to_numpy() + 1))
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
    return header, columns


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
    _, columns = _challenge_fields(table)
    _write_csv(path, _CHALLENGE_HEADER if header else None, columns, quote_header=False)


def _challenge_fields(table, first_id=1):
    """Header and text columns of a challenge CSV; ids from ``first_id``."""
    table = _check_table(table)
    zeros = np.zeros(len(table))
    columns = [
        _format_column(_ids(table, first_id)),
        _format_column(table["frame"].to_numpy() + 1),
        _format_column(table["x_nm"].to_numpy()),
        _format_column(table["y_nm"].to_numpy()),
        _format_column(table["z_nm"].to_numpy() if "z_nm" in table else zeros),
        _format_column(table["photons"].to_numpy() if "photons" in table else zeros),
    ]
    return list(_CHALLENGE_HEADER), columns


# --------------------------------------------------------------------------- #
# the library's own layout and dispatch
# --------------------------------------------------------------------------- #

_FORMATS = ("thunderstorm", "challenge", "native")


def _read_native_csv(path):
    path, text = _read_text(path)
    names, body = _split_header(text, path)
    _require_columns(path, names, ["frame", "x_nm", "y_nm"], "sklearn-smlm CSV", "")
    from .._localizations import LOCALIZATION_COLUMNS

    floats = [n for n in names if n in LOCALIZATION_COLUMNS or n == "id"]
    _check_field_counts(path, body, len(names), 2)
    table = _parse(path, body, names, floats, 2)
    return _finish(path, table, one_based=False)


def _write_native_csv(table, path):
    header, columns = _native_fields(table)
    _write_csv(path, header, columns, quote_header=False)


def _native_fields(table, first_id=1):
    """Header and text columns of the native layout (the table's own columns).

    ``first_id`` is unused: this layout adds no ``id`` column.
    """
    table = _check_table(table)
    header = [str(c) for c in table.columns]
    columns = [_format_column(table[c].to_numpy()) for c in table.columns]
    return header, columns


#: format -> (fields function, quoted header); used by the one-shot writers
#: and by :class:`~sklearn_smlm.io.LocalizationWriter`.
_CSV_LAYOUTS = {
    "thunderstorm": (_thunderstorm_fields, True),
    "challenge": (_challenge_fields, False),
    "native": (_native_fields, False),
}


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
    """Read a localization CSV file, recognising its layout from the header.

    The CSV part of the public :func:`sklearn_smlm.io.read_localizations`
    (which also reads Picasso HDF5 files), where the rule is documented: a
    field ``x [nm]`` is ThunderSTORM, fields ``x_nm`` and ``y_nm`` the
    library's own layout (0-based ``frame``), ``xnano``, ``frame, x, y`` or a
    first line of numbers the SMLM challenge's; anything else raises
    :class:`SMLMFileError`.
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
