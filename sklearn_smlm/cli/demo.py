"""``sklearn-smlm demo``: simulate, localize, evaluate and render in one go."""

import math
import os
import time

from ._common import (
    PROG,
    Formatter,
    add_common,
    example,
    json_metrics,
    load_cnn,
    non_negative_int,
    positive_int,
    print_metrics,
    save_sweep_plot,
    write_frames,
    write_json,
)
from .localize import localize_stack

NAME = "demo"


def add_parser(subparsers):
    """Add the ``demo`` sub-parser to ``subparsers``."""
    p = subparsers.add_parser(
        "demo",
        help="simulate, localize, evaluate and render a filament sample",
        description="A one-minute tour: simulates filaments at high density, "
        "localizes them with the pretrained model, prints the metrics against "
        "the truth and writes the super-resolved image and tolerance curves.",
        epilog=example(f"{PROG} demo", f"{PROG} demo -o my_demo --n-frames 500"),
        formatter_class=Formatter,
    )
    p.add_argument("-o", "--output", default="smlm_demo", metavar="DIR")
    p.add_argument("--n-frames", type=positive_int, default=200, metavar="N")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="S")
    p.add_argument(
        "--model",
        metavar="PATH",
        help="use this model file instead of the pretrained one",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args, reporter):
    """Run ``demo``; return the exit status."""
    from ..io import TiffStack, write_localizations
    from ..metrics import localization_metrics
    from ..rendering import render, save_image
    from ..simulation import PAFPSimulator

    t0 = time.perf_counter()
    out = args.output
    os.makedirs(out, exist_ok=True)
    localizer = load_cnn(args.model, args.device, reporter)
    # Bundled-tubes-like filaments at a density where single-spot fitting
    # already loses emitters to overlaps.
    simulator = PAFPSimulator.from_preset(
        "bt_hd_2013",
        structure="filaments",
        density_per_um2=2.0,
        frame_shape=(64, 64),
        random_state=args.seed,
    )
    px = float(simulator.pixel_size_nm)
    frames, truth = simulator.simulate(args.n_frames, return_table=True)
    paths = {
        "frames": os.path.join(out, "frames.tif"),
        "truth": os.path.join(out, "ground_truth.csv"),
        "locs": os.path.join(out, "localizations.csv"),
        "metrics": os.path.join(out, "metrics.json"),
        "png": os.path.join(out, "render.png"),
        "tiff": os.path.join(out, "render.tif"),
        "curves": os.path.join(out, "tolerance_curves.png"),
    }
    write_frames(paths["frames"], frames, px)
    write_localizations(truth, paths["truth"], format="thunderstorm")
    reporter.result(
        f"simulated {len(frames)} frames of 64x64 pixels ({px:g} nm) with "
        f"{len(truth)} emitters on filaments (seed {args.seed})"
    )
    if not math.isclose(float(localizer.pixel_size_nm), px):
        localizer.pixel_size_nm = px
    t1 = time.perf_counter()
    with TiffStack(paths["frames"]) as stack:
        n_frames, n_locs = localize_stack(
            stack, localizer, paths["locs"], "thunderstorm", 256, None, reporter
        )
    seconds = time.perf_counter() - t1
    reporter.result(
        f"localized them with the CNN: {n_locs} localizations in {seconds:.1f} s "
        f"({n_frames / max(seconds, 1e-9):.0f} frames/s)"
    )
    from ..io import read_localizations

    locs = read_localizations(paths["locs"])
    metrics = localization_metrics(truth, locs, tolerance_nm=250.0)
    print_metrics(reporter, metrics, "against the truth (tolerance 250 nm):")
    write_json(paths["metrics"], json_metrics(metrics))
    fov = (frames.shape[2] * px, frames.shape[1] * px)
    image = render(locs, pixel_size_nm=10.0, field_of_view_nm=fov)
    save_image(image, paths["tiff"], pixel_size_nm=10.0)
    # matplotlib is a core dependency: every install writes the picture
    import matplotlib

    matplotlib.use("Agg")
    save_image(image, paths["png"], pixel_size_nm=10.0, scale_bar_nm=1000.0)
    save_sweep_plot(truth, locs, paths["curves"], "hungarian", None, None)
    written = ["frames", "truth", "locs", "metrics", "png", "tiff", "curves"]
    labels = {
        "frames": "simulated frames",
        "truth": "ground truth",
        "locs": "localizations",
        "metrics": "metrics",
        "png": "super-resolved image",
        "tiff": "image values (32-bit)",
        "curves": "JI and RMSE vs tolerance",
    }
    reporter.result(f"files (demo took {time.perf_counter() - t0:.1f} s):")
    for key in written:
        reporter.result(f"  {labels[key] + ':':<26} {paths[key]}")
    return 0
