"""``sklearn-smlm evaluate``: localizations against the ground truth."""

from ._common import (
    PROG,
    CLIError,
    Formatter,
    add_common,
    check_output_file,
    example,
    json_metrics,
    non_negative_number,
    positive_number,
    print_metrics,
    require_matplotlib,
    save_sweep_plot,
    write_json,
)

NAME = "evaluate"


def add_parser(subparsers):
    """Add the ``evaluate`` sub-parser to ``subparsers``."""
    p = subparsers.add_parser(
        "evaluate",
        help="compare localizations with the ground truth",
        description="Match localizations to the ground truth one-to-one per "
        "frame within a lateral tolerance and print Jaccard index, recall, "
        "precision, F1, RMSE, efficiency and TP/FP/FN.",
        epilog=example(
            f"{PROG} evaluate locs.csv sim/ground_truth.csv --plot curves.png",
            f"{PROG} evaluate locs.csv truth.csv --matching greedy --border-nm 300 "
            "--field-of-view-nm 6400 6400 --json metrics.json",
        ),
        formatter_class=Formatter,
    )
    p.add_argument("locs", metavar="LOCS", help="localizations (CSV)")
    p.add_argument("truth", metavar="TRUTH", help="ground truth (CSV)")
    p.add_argument("--tolerance-nm", type=positive_number, default=250.0, metavar="NM")
    p.add_argument(
        "--axial-tolerance-nm",
        type=positive_number,
        metavar="NM",
        help="3D matching: also require |dz| within this (2016 challenge: 500); "
        "prints the axial RMSE and efficiency (both tables need z)",
    )
    p.add_argument(
        "--matching",
        choices=("hungarian", "greedy"),
        default="hungarian",
        help="optimal assignment, or nearest pairs first (ThunderSTORM, 2016 "
        "challenge)",
    )
    p.add_argument(
        "--border-nm",
        type=non_negative_number,
        help="ignore a band this wide along the field's edges (needs "
        "--field-of-view-nm)",
        metavar="NM",
    )
    p.add_argument(
        "--field-of-view-nm",
        nargs=2,
        type=positive_number,
        metavar=("WIDTH", "HEIGHT"),
        help="size of the field, e.g. 6400 6400 for 64x64 pixels of 100 nm",
    )
    p.add_argument(
        "--plot", metavar="PNG", help="write JI and RMSE against the tolerance"
    )
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args, reporter):
    """Run ``evaluate``; return the exit status."""
    from ..io import read_localizations
    from ..metrics import localization_metrics

    if args.border_nm is not None and args.field_of_view_nm is None:
        raise CLIError(
            "--border-nm needs --field-of-view-nm WIDTH HEIGHT (the field's size "
            "in nm)",
            code=2,
        )
    for path in (args.plot, args.json):
        if path is not None:
            check_output_file(path)
    if args.plot is not None:
        require_matplotlib("--plot")
    locs = read_localizations(args.locs)
    truth = read_localizations(args.truth)
    has_z = [
        "z_nm" in t.columns and bool(t["z_nm"].notna().any()) for t in (locs, truth)
    ]
    if args.axial_tolerance_nm is not None and not all(has_z):
        paths = (args.locs, args.truth)
        missing = [p for p, z in zip(paths, has_z, strict=True) if not z]
        verb = "hold" if len(missing) > 1 else "holds"
        raise CLIError(
            f"--axial-tolerance-nm: {' and '.join(missing)} {verb} no z; 3D "
            "matching needs z in both tables (localize with --calibration)"
        )
    if args.axial_tolerance_nm is None and all(has_z):
        reporter.note(
            "both tables hold z; matching is lateral only (add "
            "--axial-tolerance-nm 500 for the 2016 challenge's 3D matching)"
        )
    fov = tuple(args.field_of_view_nm) if args.field_of_view_nm else None
    metrics = localization_metrics(
        truth,
        locs,
        tolerance_nm=args.tolerance_nm,
        matching=args.matching,
        border_nm=args.border_nm,
        field_of_view_nm=fov,
        axial_tolerance_nm=args.axial_tolerance_nm,
    )
    axial = ""
    if args.axial_tolerance_nm is not None:
        axial = f", axial {args.axial_tolerance_nm:g} nm"
    print_metrics(
        reporter,
        metrics,
        f"{len(locs)} localizations against {len(truth)} true positions "
        f"({args.matching} matching, tolerance {args.tolerance_nm:g} nm{axial}):",
    )
    if args.json is not None:
        write_json(args.json, json_metrics(metrics))
        reporter.result(f"metrics: {args.json}")
    if args.plot is not None:
        save_sweep_plot(truth, locs, args.plot, args.matching, args.border_nm, fov)
        reporter.result(f"tolerance curves: {args.plot}")
    return 0
