"""What the table-to-table commands (undrift, merge, frc) share: reading and writing."""

import os
import warnings

from ._common import CLIError, check_output_file, positive_number

#: output formats of the table commands (``picasso`` is HDF5 + YAML)
TABLE_FORMATS = ("thunderstorm", "native", "challenge", "picasso")


def add_input(p):
    """Add the input table and the pixel size of Picasso files."""
    p.add_argument(
        "locs",
        metavar="LOCS",
        help="localizations: ThunderSTORM / SMLM-challenge / native CSV, or a "
        "Picasso .hdf5 (with its .yaml)",
    )
    p.add_argument(
        "--pixel-size-nm",
        type=positive_number,
        metavar="NM",
        help="camera pixel size for Picasso files (default: the Pixelsize of "
        "the input's .yaml)",
    )


def add_output(p):
    """Add ``-o`` and ``--format``."""
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file")
    p.add_argument(
        "--format",
        choices=TABLE_FORMATS,
        help="output layout (default: picasso for a .hdf5 name, else thunderstorm)",
    )


def read_table(args, reporter):
    """Read the input table; warnings become notes."""
    from ..io import read_localizations

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = read_localizations(args.locs, pixel_size_nm=args.pixel_size_nm)
    for w in caught:
        reporter.note(str(w.message))
    if len(table) == 0:
        raise CLIError(f"{args.locs}: holds no localization")
    return table


def output_format(args):
    """Return the output format: the one given, or from the file name."""
    check_output_file(args.output)
    fmt = args.format
    if fmt is None:
        fmt = (
            "picasso"
            if args.output.lower().endswith((".hdf5", ".h5"))
            else ("thunderstorm")
        )
    if fmt == "picasso" and not args.output.lower().endswith(".hdf5"):
        raise CLIError(
            f"{args.output}: --format picasso writes HDF5 (and a .yaml beside it); "
            "give a name ending in .hdf5",
            code=2,
        )
    return fmt


def write_table(table, args, fmt, source_table, reporter, step):
    """Write ``table`` in ``fmt``; Picasso metadata from the input or the options."""
    from ..io import write_localizations

    options = {}
    if fmt == "picasso":
        info = source_table.attrs.get("picasso_info") or []
        px = args.pixel_size_nm
        shape = None
        frames = None
        for doc in reversed(info):
            if isinstance(doc, dict):
                px = px if px is not None else doc.get("Pixelsize")
                if shape is None and "Width" in doc and "Height" in doc:
                    shape = (int(doc["Height"]), int(doc["Width"]))
                frames = frames if frames is not None else doc.get("Frames")
        if px is None:
            raise CLIError(
                "--format picasso needs the camera pixel size: give --pixel-size-nm",
                code=2,
            )
        options = dict(
            pixel_size_nm=float(px),
            frame_shape=shape,
            n_frames=frames,
            source=os.path.basename(args.locs),
            step=step,
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_localizations(table, args.output, format=fmt, **options)
    for w in caught:
        reporter.note(str(w.message))
    return "Picasso HDF5 + .yaml" if fmt == "picasso" else f"{fmt} CSV"


def save_figure(ax, path):
    """Write the figure of ``ax`` atomically and close it."""
    import matplotlib.pyplot as plt

    from ._common import atomic_savefig

    atomic_savefig(ax.figure, path)
    plt.close(ax.figure)


def check_png(path, option):
    """Fail early on a plot path that is not a writable .png."""
    check_output_file(path, option)
    if not path.lower().endswith(".png"):
        raise CLIError(
            f"{path}: {option} writes a PNG; give a name ending in .png", code=2
        )
    import matplotlib

    matplotlib.use("Agg")
