"""``sklearn-smlm merge``: one row per on-event of a molecule."""

from ._common import (
    PROG,
    Formatter,
    add_common,
    example,
    non_negative_int,
    positive_number,
)
from ._tables import add_input, add_output, output_format, read_table, write_table

NAME = "merge"


def add_parser(subparsers):
    """Add the ``merge`` sub-parser to ``subparsers``."""
    p = subparsers.add_parser(
        "merge",
        help="merge the localizations of one molecule in consecutive frames",
        description="Link the localizations of each molecule over consecutive "
        "frames (within --max-distance-nm, bridging up to --max-dark-frames "
        "missed frames) and write one row per event: positions averaged by "
        "1/uncertainty^2, photons summed, with n_merged, first_frame and "
        "last_frame.",
        epilog=example(
            f"{PROG} merge locs.csv -o merged.csv --max-distance-nm 50",
        ),
        formatter_class=Formatter,
    )
    add_input(p)
    add_output(p)
    p.add_argument(
        "--max-distance-nm",
        type=positive_number,
        default=50.0,
        metavar="NM",
        help="largest distance between linked localizations (3-4x the precision)",
    )
    p.add_argument(
        "--max-dark-frames",
        type=non_negative_int,
        default=1,
        metavar="N",
        help="frames a molecule may be missed inside one event",
    )
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args, reporter):
    """Run ``merge``; return the exit status."""
    from ..postprocessing import merge_localizations

    fmt = output_format(args)
    table = read_table(args, reporter)
    merged = merge_localizations(
        table,
        max_distance_nm=args.max_distance_nm,
        max_dark_frames=args.max_dark_frames,
    )
    what = write_table(merged, args, fmt, table, reporter, "merge")
    reporter.result(
        f"merged {len(table)} localizations into {len(merged)} events "
        f"({len(table) / max(len(merged), 1):.2f} per event)"
    )
    reporter.result(f"wrote {args.output} ({what})")
    return 0
