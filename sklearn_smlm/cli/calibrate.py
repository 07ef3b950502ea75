"""``sklearn-smlm calibrate``: a bead z-stack -> an astigmatic calibration file."""

from ._common import (
    PROG,
    CLIError,
    Formatter,
    add_camera,
    add_common,
    camera_options,
    check_output_file,
    example,
    number,
    positive_int,
    positive_number,
    require_matplotlib,
)

NAME = "calibrate"


def add_parser(subparsers):
    """Add the ``calibrate`` sub-parser to ``subparsers``."""
    p = subparsers.add_parser(
        "calibrate",
        help="measure an astigmatic z calibration on a bead z-stack",
        description="Fit the PSF widths sigma_x(z) and sigma_y(z) of an "
        "astigmatic set-up on a z-stack of sparse fluorescent beads (Huang et "
        "al. 2008 defocus model per axis) and write them as a small YAML file, "
        "which 'localize --calibration' reads. Slice i is at depth "
        "z_start + i * z_step (the stack centred on 0 by default).",
        epilog=example(
            f"{PROG} calibrate beads.tif --z-step-nm 10 -o calib.yaml --plot calib.png",
            f"{PROG} localize movie.tif --calibration calib.yaml -o locs.csv",
        ),
        formatter_class=Formatter,
    )
    p.add_argument("stack", metavar="STACK", help="TIFF z-stack of beads")
    p.add_argument(
        "--z-step-nm",
        type=number,
        required=True,
        metavar="NM",
        help="depth step between slices (negative for a top-down stack)",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="calibration file (.yaml)"
    )
    p.add_argument("--plot", metavar="PNG", help="also draw the curves and beads")
    p.add_argument(
        "--z-start-nm",
        type=number,
        metavar="NM",
        help="depth of the first slice (default: the stack centred on 0)",
    )
    p.add_argument(
        "--pixel-size-nm",
        type=positive_number,
        metavar="NM",
        help="camera pixel size (default: from the TIFF metadata, else 100)",
    )
    p.add_argument(
        "--box-size",
        type=positive_int,
        default=15,
        metavar="PX",
        help="side of the box fitted around each bead",
    )
    p.add_argument(
        "--threshold",
        type=positive_number,
        default=8.0,
        metavar="T",
        help="bead detection threshold on the maximum projection, in noise "
        "standard deviations",
    )
    add_camera(p)
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args, reporter):
    """Run ``calibrate``; return the exit status."""
    from ..calibration import AstigmaticCalibration
    from ..io import TiffStack
    from ._common import stack_pixel_size

    if args.z_step_nm == 0:
        raise CLIError("--z-step-nm must not be 0", code=2)
    check_output_file(args.output, "calibration")
    if args.plot is not None:
        check_output_file(args.plot, "plot")
        require_matplotlib("--plot")
    with TiffStack([args.stack]) as stack:
        pixel_size_nm, source = stack_pixel_size(stack, args.pixel_size_nm, reporter)
        frames = stack[:]
    camera = camera_options(args)
    camera.pop("quantum_efficiency", None)  # widths do not depend on it
    calibration = AstigmaticCalibration(
        z_step_nm=args.z_step_nm,
        z_start_nm=args.z_start_nm,
        pixel_size_nm=pixel_size_nm,
        box_size=args.box_size,
        threshold=args.threshold,
        **camera,
    ).fit(frames)
    calibration.save(args.output)
    beads = calibration.beads_
    lo, hi = calibration.z_range_nm_
    reporter.result(
        f"{beads['bead'].nunique()} beads, {int(beads['inlier'].sum())} of "
        f"{len(beads)} widths used, {len(frames)} slices ({pixel_size_nm:g} nm "
        f"pixels, from {source}); calibrated range {lo:g} to {hi:g} nm"
    )
    for axis, curve, rms in (
        ("x", calibration.curve_x_, calibration.rms_residual_nm_[0]),
        ("y", calibration.curve_y_, calibration.rms_residual_nm_[1]),
    ):
        reporter.result(
            f"{axis}: sigma0 {curve['sigma0_nm']:.1f} nm, focus "
            f"{curve['focus_nm']:.1f} nm, depth {curve['depth_nm']:.1f} nm, "
            f"A {curve['a']:.3f}, B {curve['b']:.3f} (rms residual {rms:.1f} nm)"
        )
    reporter.result(f"wrote {args.output}")
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = calibration.plot(args.plot)
        plt.close(ax.figure)
        reporter.result(f"plot: {args.plot}")
    return 0


def load_calibration(path, pixel_size_nm):
    """Read a calibration file: this library's YAML, or Picasso's 3D YAML."""
    import yaml

    from ..calibration import AstigmaticCalibration

    try:
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise CLIError(f"{path}: not a YAML calibration file ({exc})") from None
    if isinstance(doc, dict) and "X Coefficients" in doc:
        return AstigmaticCalibration.from_picasso(path, pixel_size_nm=pixel_size_nm)
    return AstigmaticCalibration.load(path)


def astigmatic_localizer(args, pixel_size_nm, camera, reporter):
    """Return the 3D localizer of ``localize --calibration``."""
    from ..fitting import AstigmaticFitLocalizer

    if args.method in ("cnn", "hybrid"):
        raise CLIError(
            "--calibration localizes in 3D with the classical astigmatic fitter; "
            f"it does not combine with --method {args.method}",
            code=2,
        )
    args.method = "gaussian 3D (astigmatic)"  # what the start-up note names
    reporter.note(
        "--calibration: 3D localization (z_nm) by the classical astigmatic fitter "
        "(the network is 2D)"
    )
    if not camera and getattr(args, "camera_map", None) is None:
        reporter.warning(
            "no camera given: the 3D fit counts 1 photon per ADU above an offset "
            "of 100 ADU, so its photons, uncertainties and poor-fit filter are "
            "off for most cameras; give --baseline-adu, --e-per-adu and "
            "--em-gain (or --camera-map)"
        )
    calibration = load_calibration(args.calibration, pixel_size_nm)
    params = dict(camera, pixel_size_nm=pixel_size_nm)
    if args.threshold is not None:
        params["threshold"] = args.threshold
    return AstigmaticFitLocalizer(calibration, **params).fit()
