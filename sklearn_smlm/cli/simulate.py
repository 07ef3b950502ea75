"""``sklearn-smlm simulate``: a simulated movie and its ground truth."""

import os
import time

from ._common import (
    PROG,
    Formatter,
    add_common,
    add_simulation_options,
    example,
    make_simulator,
    write_frames,
)

NAME = "simulate"


def add_parser(subparsers):
    """Add the ``simulate`` sub-parser to ``subparsers``."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate a movie and its ground truth",
        description="Simulate a PALM/STORM movie with PAFPSimulator and write "
        "DIR/frames.tif (with its pixel size) and DIR/ground_truth.csv "
        "(ThunderSTORM CSV).",
        epilog=example(
            f"{PROG} simulate -o sim --preset bt_hd_2013 --n-frames 500 --seed 0",
            f"{PROG} simulate -o sim --structure filaments --density-per-um2 2",
        ),
        formatter_class=Formatter,
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder")
    add_simulation_options(p, n_frames=100)
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args, reporter):
    """Run ``simulate``; return the exit status."""
    from ..io import write_localizations

    simulator, seed = make_simulator(args)
    os.makedirs(args.output, exist_ok=True)
    t0 = time.perf_counter()
    frames, truth = simulator.simulate(args.n_frames, return_table=True)
    frames_path = os.path.join(args.output, "frames.tif")
    truth_path = os.path.join(args.output, "ground_truth.csv")
    write_frames(frames_path, frames, simulator.pixel_size_nm)
    write_localizations(truth, truth_path, format="thunderstorm")
    seconds = time.perf_counter() - t0
    reporter.result(
        f"simulated {len(frames)} frames of {frames.shape[1]}x{frames.shape[2]} "
        f"pixels ({simulator.pixel_size_nm:g} nm), {len(truth)} emitters, preset "
        f"{args.preset}, seed {seed}, in {seconds:.1f} s"
    )
    reporter.result(f"frames:       {frames_path}")
    reporter.result(f"ground truth: {truth_path}")
    return 0
