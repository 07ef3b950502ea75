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

    Picasso HDF5 (:func:`read_picasso_hdf5`, :func:`write_picasso_hdf5`,
    ``format="picasso"``): the ``locs`` dataset in camera pixels and the
    YAML sidecar that Picasso Render opens; recognised by the HDF5 signature.
    :class:`LocalizationWriter` appends the table of each chunk of a long
    run to one file (header once, ``id`` numbers running on).

Modules: ``_tiff`` (stacks), ``_csv`` (the CSV layouts and their recognition),
``_picasso`` (Picasso HDF5 and the dispatch between file formats),
``_writer`` (streaming output; formats register an appender there),
``_common`` (the file error, paths, atomic writes).

Every reader names the file in its errors (:class:`SMLMFileError`) and every
writer writes to a temporary file in the destination folder, then renames it,
so a failed write never leaves a half-written or clobbered file.
"""

from ._common import SMLMFileError
from ._csv import (
    read_challenge_csv,
    read_thunderstorm_csv,
    write_challenge_csv,
    write_thunderstorm_csv,
)
from ._picasso import (
    PicassoAppender,
    read_localizations,
    read_picasso_hdf5,
    write_localizations,
    write_picasso_hdf5,
)
from ._tiff import TiffStack, read_stack, write_stack
from ._writer import LocalizationWriter, register_appender

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
    "LocalizationWriter",
    "register_appender",
    "read_picasso_hdf5",
    "write_picasso_hdf5",
]

register_appender("picasso", PicassoAppender)
