"""``sklearn-smlm frc``: the Fourier ring correlation resolution of a table."""

import math

from ._common import PROG, Formatter, add_common, example, positive_int, positive_number
from ._tables import add_input, check_png, read_table, save_figure

NAME = "frc"


def add_parser(subparsers):
    """Add the ``frc`` sub-parser to ``subparsers``."""
    p = subparsers.add_parser(
        "frc",
        help="resolution of a localization table by Fourier ring correlation",
        description="Split the table in two halves (even and odd blocks of "
        "frames, or at random), render both, and report where their Fourier "
        "ring correlation falls below 1/7 (Nieuwenhuizen et al. 2013).",
        epilog=example(f"{PROG} frc locs.csv --plot frc.png"),
        formatter_class=Formatter,
    )
    add_input(p)
    p.add_argument(
        "--render-pixel-nm",
        type=positive_number,
        default=5.0,
        metavar="NM",
        help="pixel of the rendered halves (at most a quarter of the resolution)",
    )
    p.add_argument(
        "--split",
        choices=("blocks", "random"),
        default="blocks",
        help="even/odd blocks of frames (keeps each blink in one half), or a "
        "random half per row (for merged tables)",
    )
    p.add_argument(
        "--block-frames",
        type=positive_int,
        default=500,
        metavar="N",
        help="frames per block (--split blocks)",
    )
    p.add_argument("--plot", metavar="PNG", help="plot the FRC curve to a PNG")
    p.add_argument("--curve-csv", metavar="CSV", help="also write the curve")
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args, reporter):
    """Run ``frc``; return the exit status."""
    from ..postprocessing import frc_curve, frc_resolution, plot_frc

    if args.plot is not None:
        check_png(args.plot, "--plot")
    table = read_table(args, reporter)
    curve = frc_curve(
        table,
        pixel_size_nm=args.render_pixel_nm,
        split=args.split,
        block_frames=args.block_frames,
    )
    resolution = frc_resolution(curve)
    if math.isnan(resolution):
        reporter.result(
            "FRC resolution: not reached (the curve stays above 1/7 up to the "
            f"render pixel's Nyquist frequency; use a --render-pixel-nm below "
            f"{args.render_pixel_nm:g})"
        )
    else:
        reporter.result(f"FRC resolution: {resolution:.1f} nm")
    if args.curve_csv is not None:
        from .._files import atomic_path

        with atomic_path(args.curve_csv, suffix=".csv") as tmp:
            curve.to_csv(tmp, index=False)
        reporter.result(f"curve: {args.curve_csv}")
    if args.plot is not None:
        save_figure(plot_frc(curve, resolution_nm=resolution), args.plot)
        reporter.result(f"plot: {args.plot}")
    return 0
