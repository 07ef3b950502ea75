"""``sklearn-smlm simulate``: a simulated movie and its ground truth."""

import os
import time

from ._common import (
    PRESET_NAMES,
    PRESET_NAMES_3D,
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
        "(ThunderSTORM CSV). The astigmatic presets (*_as*) simulate depth as "
        "well (z in the ground truth) and write the PSF's z calibration to "
        "DIR/calibration.yaml, for localize --calibration.",
        epilog=example(
            f"{PROG} simulate -o sim --preset bt_hd_2013 --n-frames 500 --seed 0",
            f"{PROG} simulate -o sim --structure filaments --density-per-um2 2",
            f"{PROG} simulate -o sim3d --preset low_density_as",
        ),
        formatter_class=Formatter,
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder")
    add_simulation_options(p, n_frames=100, presets=PRESET_NAMES + PRESET_NAMES_3D)
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
    flags = camera_flags(simulator)
    if flags:
        reporter.result(f"camera:       {flags} (localize options for the fits)")
    if simulator.calibration is not None:
        path = os.path.join(args.output, "calibration.yaml")
        write_calibration(simulator, path)
        reporter.result(f"calibration:  {path} (localize --calibration)")
    return 0


def camera_flags(simulator):
    """Return the ``localize`` camera options of the simulated camera."""
    if simulator.camera not in ("emccd", "scmos"):
        return ""
    values = {
        "--baseline-adu": simulator.baseline_adu,
        "--e-per-adu": simulator.e_per_adu,
        "--em-gain": simulator.em_gain if simulator.camera == "emccd" else None,
        "--quantum-efficiency": simulator.quantum_efficiency,
    }
    if not all(isinstance(v, (int, float)) for v in values.values() if v is not None):
        return ""  # drawn per frame: no single value describes the movie
    return " ".join(f"{k} {v:g}" for k, v in values.items() if v is not None)


def write_calibration(simulator, path):
    """Write the simulator's astigmatic PSF as a calibration file."""
    from ..calibration import AstigmaticCalibration

    calibration = simulator.calibration
    if not isinstance(calibration, AstigmaticCalibration):
        calibration = AstigmaticCalibration.from_parameters(
            calibration["x"], calibration["y"], z_range_nm=simulator.z_range_nm
        )
    calibration.save(path)
