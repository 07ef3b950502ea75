"""Streaming output: append the localizations of each chunk to one file.

:class:`LocalizationWriter` is what the command line and any long run use: a
chunk's table is appended as soon as it is computed, so the memory holds one
chunk, and the file is written to ``path + ".partial"`` and renamed to
``path`` when the writer is closed, so an interrupted run leaves a ``.partial``
file of complete rows and never a half-written ``path``.

A format is an *appender*: a class built with the partial path that has
``append(table, first_id)`` and ``close()`` (and ``abort()``). CSV layouts are
in :data:`APPENDERS`; another format (Picasso HDF5) registers its own
appender there with :func:`register_appender`.
"""

import contextlib
import os

from ._csv import _CSV_LAYOUTS, _write_header, _write_rows

__all__ = ["LocalizationWriter", "register_appender", "APPENDERS"]


class _CSVAppender:
    """Append tables to a CSV file: the header once, then rows.

    The header, column names and number formatting are those of the one-shot
    writer of the same layout (:func:`~sklearn_smlm.io.write_localizations`),
    so chunks written one after the other give the same bytes as one write of
    the whole table.
    """

    def __init__(self, path, format):
        self.fields, self.quote_header = _CSV_LAYOUTS[format]
        self.path = path
        self.header = None
        self.file = open(path, "w", encoding="utf-8", newline="")

    def append(self, table, first_id):
        header, columns = self.fields(table, first_id)
        if self.header is None:
            self.header = header
            _write_header(self.file, header, quote_header=self.quote_header)
        elif header != self.header:
            raise ValueError(
                f"{self.path}: the columns changed between chunks ({self.header} "
                f"then {header}); every chunk must have the same columns."
            )
        _write_rows(self.file, columns)
        self.file.flush()

    def close(self):
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def abort(self):
        self.file.close()


#: Output format -> appender class; see :func:`register_appender`.
APPENDERS = {name: _CSVAppender for name in _CSV_LAYOUTS}


def register_appender(format, appender):
    """Make ``LocalizationWriter(path, format=format)`` use ``appender``.

    Parameters
    ----------
    format : str
        The name of the format (``"picasso"``).
    appender : callable
        ``appender(path, format, **options)`` (the options given to the
        writer) returns an object with ``append(table,
        first_id)`` (write the rows of one chunk; ``first_id`` is the 1-based
        running number of its first row), ``close()`` (flush and close the
        file) and ``abort()`` (close without finishing).
    """
    APPENDERS[format] = appender


class LocalizationWriter:
    """Write a localization table chunk by chunk into one file.

    Parameters
    ----------
    path : str or path-like
        The final file. Rows go to ``path + ".partial"``, renamed to ``path``
        by :meth:`close`.
    format : str, default="thunderstorm"
        ``"thunderstorm"``, ``"challenge"`` or ``"native"`` (see
        :func:`~sklearn_smlm.io.write_localizations`), or a format added with
        :func:`register_appender`.
    **options
        Passed to the format's appender (``pixel_size_nm``, ``frame_shape``,
        ``n_frames`` for ``"picasso"``).

    Attributes
    ----------
    n_rows : int
        Rows written so far.
    partial_path : str
        Where the rows are written until :meth:`close`.

    Notes
    -----
    Used as a context manager, the file is renamed when the block ends
    normally and left as ``.partial`` when an exception ends it (the rows of
    the chunks done are complete). ``id`` numbers run on across chunks in the
    layouts that have them.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from sklearn_smlm.io import LocalizationWriter, read_localizations
    >>> path = os.path.join(tempfile.mkdtemp(), "locs.csv")
    >>> with LocalizationWriter(path) as writer:
    ...     for frame in range(3):
    ...         writer.write(pd.DataFrame({"frame": [frame], "x_nm": [1.5],
    ...                                    "y_nm": [2.0]}))
    >>> read_localizations(path)["id"].tolist()
    [1, 2, 3]
    """

    def __init__(self, path, *, format="thunderstorm", **options):
        if format not in APPENDERS:
            raise ValueError(
                f"format must be one of {sorted(APPENDERS)}, got {format!r}."
            )
        self.path = os.fspath(path)
        self.format = format
        self.partial_path = self.path + ".partial"
        self.n_rows = 0
        self._appender = APPENDERS[format](self.partial_path, format, **options)
        self._open = True

    def write(self, table):
        """Append the rows of ``table`` (a localization DataFrame)."""
        if not self._open:
            raise ValueError(f"{self.path}: the writer is closed.")
        self._appender.append(table, self.n_rows + 1)
        self.n_rows += len(table)

    def close(self):
        """Finish the file and rename it from ``.partial`` to ``path``."""
        if self._open:
            self._open = False
            self._appender.close()
            os.replace(self.partial_path, self.path)

    def abandon(self, *, remove=False):
        """Stop writing; keep the ``.partial`` file unless ``remove``."""
        if self._open:
            self._open = False
            with contextlib.suppress(OSError):
                self._appender.abort()
        if remove:
            with contextlib.suppress(OSError):
                os.remove(self.partial_path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abandon()
