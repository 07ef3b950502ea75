"""``sklearn-smlm undrift``: estimate and remove the stage drift of a table."""

from ._common import (
    PROG,
    Formatter,
    add_common,
    example,
    positive_fraction,
    positive_int,
    positive_number,
)
from ._tables import (
    add_input,
    add_output,
    check_png,
    output_format,
    read_table,
    save_figure,
    write_table,
)

NAME = "undrift"
#: DriftCorrector parameters set by a flag of another name (errors say the flag)
PARAM_FLAGS = {"pixel_size_nm": "--render-pixel-nm"}


def add_parser(subparsers):
    """Add the ``undrift`` sub-parser to ``subparsers``."""
    p = subparsers.add_parser(
        "undrift",
        help="correct the stage drift of a localization table",
        description="Estimate the drift by redundant cross-correlation of time "
        "segments (Wang et al. 2014; default) or by tracking fiducial beads, "
        "subtract it from every localization, and write the corrected table.",
        epilog=example(
            f"{PROG} undrift locs.csv -o corrected.csv --plot drift.png",
            f"{PROG} undrift locs.hdf5 -o corrected.hdf5 --method fiducial",
        ),
        formatter_class=Formatter,
    )
    add_input(p)
    add_output(p)
    p.add_argument(
        "--method",
        choices=("rcc", "fiducial"),
        default="rcc",
        help="cross-correlation of time segments, or fiducial beads",
    )
    p.add_argument(
        "--segment-frames",
        type=positive_int,
        metavar="N",
        help="frames per segment (default 500 for rcc, 100 for fiducial)",
    )
    p.add_argument(
        "--render-pixel-nm",
        type=positive_number,
        metavar="NM",
        help="pixel of the segment images (rcc; default 20 nm, larger for big fields)",
    )
    p.add_argument(
        "--max-drift-nm",
        type=positive_number,
        default=1000.0,
        metavar="NM",
        help="largest drift between two segments (rcc)",
    )
    p.add_argument(
        "--radius-nm",
        type=positive_number,
        default=100.0,
        metavar="NM",
        help="search radius around a fiducial (fiducial)",
    )
    p.add_argument(
        "--min-fraction",
        type=positive_fraction,
        default=0.5,
        metavar="F",
        help="fraction of frames in which a fiducial must appear (fiducial)",
    )
    p.add_argument(
        "--plot", metavar="PNG", help="plot the estimated drift curves to a PNG"
    )
    p.add_argument(
        "--drift-csv",
        metavar="CSV",
        help="also write the drift per frame (frame, dx_nm, dy_nm; frames from 0)",
    )
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args, reporter):
    """Run ``undrift``; return the exit status."""
    from ..postprocessing import DriftCorrector

    fmt = output_format(args)
    if args.plot is not None:
        check_png(args.plot, "--plot")
    table = read_table(args, reporter)
    corrector = DriftCorrector(
        args.method,
        segment_frames=args.segment_frames,
        pixel_size_nm=args.render_pixel_nm,
        max_drift_nm=args.max_drift_nm,
        radius_nm=args.radius_nm,
        min_fraction=args.min_fraction,
    ).fit(table)
    corrected = corrector.transform(table)
    what = write_table(corrected, args, fmt, table, reporter, "undrift")
    drift = corrector.drift_
    span = drift[["dx_nm", "dy_nm"]].abs().max()
    reporter.result(
        f"drift over {len(drift)} frames ({args.method}): up to "
        f"{span['dx_nm']:.1f} nm in x and {span['dy_nm']:.1f} nm in y"
    )
    if corrector.n_rejected_pairs_:
        reporter.note(
            f"{corrector.n_rejected_pairs_} segment pairs rejected as outliers"
        )
    reporter.result(f"wrote {args.output} ({what})")
    if args.drift_csv is not None:
        from .._files import atomic_path

        with atomic_path(args.drift_csv, suffix=".csv") as tmp:
            drift.to_csv(tmp, index=False)
        reporter.result(f"drift: {args.drift_csv}")
    if args.plot is not None:
        save_figure(corrector.plot_drift(), args.plot)
        reporter.result(f"plot: {args.plot}")
    return 0
