"""``sklearn-smlm localize``: a TIFF stack -> a localization table, chunk by chunk."""

import math
import os
import time
import warnings

from .._chunks import iter_chunk_tables
from .._conditions import ConditionsWarning, choose_pretrained
from ._common import (
    DEFAULT_PIXEL_SIZE_NM,
    PROG,
    CLIError,
    Formatter,
    add_camera,
    add_common,
    camera_options,
    check_output_file,
    example,
    expand_stack_paths,
    load_cnn,
    make_camera,
    number,
    positive_int,
    positive_number,
    stack_pixel_size,
)

NAME = "localize"


def add_parser(subparsers):
    """Add the ``localize`` sub-parser to ``subparsers``."""
    p = subparsers.add_parser(
        "localize",
        help="localize the emitters of a TIFF stack into a CSV table",
        description="Localize the emitters of a TIFF stack, chunk by chunk (the "
        "stack is never loaded whole). The table is written to OUTPUT.partial as "
        "the frames are processed and renamed to OUTPUT at the end, so an "
        "interrupted run leaves OUTPUT.partial (complete rows of the frames done) "
        "and never a half-written OUTPUT.",
        epilog=example(
            f"{PROG} localize movie.tif -o locs.csv",
            f"{PROG} localize 'run_*.tif' -o locs.csv --pixel-size-nm 160",
            f"{PROG} localize movie.tif -o locs.csv --method gaussian "
            "--baseline-adu 100 --e-per-adu 45 --em-gain 300",
        ),
        formatter_class=Formatter,
    )
    p.add_argument(
        "stacks",
        nargs="+",
        metavar="STACK",
        help="TIFF file(s) of one acquisition, in order, or a glob pattern "
        "(quoted) such as 'run_*.tif'",
    )
    p.add_argument(
        "-o", "--output", required=True, help="output CSV file", metavar="OUT"
    )
    p.add_argument(
        "--format",
        choices=("thunderstorm", "native", "challenge", "picasso"),
        default="thunderstorm",
        help="CSV layout: ThunderSTORM (1-based frames), the library's own "
        "(0-based frames) or SMLM challenge 2016; or picasso: a Picasso HDF5 "
        "file (OUT.hdf5) and its OUT.yaml, which Picasso Render opens",
    )
    p.add_argument(
        "--method",
        choices=("cnn", "gaussian", "hybrid"),
        default=None,
        help="the neural network, classical integrated-Gaussian fitting, or "
        "hybrid: the network's detections refined by Gaussian fits on the raw "
        "pixels where they can be trusted (default: hybrid when the camera is "
        "given by camera options or --camera-map, else cnn)",
    )
    p.add_argument(
        "--calibration",
        metavar="YAML",
        help="astigmatic z calibration (from 'sklearn-smlm calibrate', or a "
        "Picasso 3D calibration): localize in 3D with the classical astigmatic "
        "fitter, z_nm in the table",
    )
    p.add_argument(
        "--model",
        metavar="PATH|NAME",
        help="model file saved by 'sklearn-smlm train', or the name of a "
        "pretrained model shipped with the package: 'default' (the default; "
        "0.1-15 emitters/um^2, PSF FWHM 190-350 nm at 100 nm pixels, in focus "
        "and thick samples, EMCCD and sCMOS), 'dense_2013' (3-8 emitters/um^2 "
        "in focus only), "
        "'bt_hd_2013' (the 2013 Bundled Tubes HD conditions only; most "
        "accurate there, about 15x slower), 'astig_3d' (3D: astigmatic frames "
        "of the 2016-like PSF over +-750 nm, z_nm in the table); 'auto' picks "
        "the 2D one that fits the first frames. The specialists give mostly "
        "false detections on sparse or thick data; a one-line warning says so",
    )
    p.add_argument(
        "--pixel-size-nm",
        type=positive_number,
        help="camera pixel size in the sample plane (default: from the TIFF "
        f"metadata, else {DEFAULT_PIXEL_SIZE_NM:g})",
        metavar="NM",
    )
    p.add_argument(
        "--threshold",
        type=number,
        help="detection threshold (cnn: on the distance-transform map, model's "
        "default 300; gaussian: in noise standard deviations, default 4)",
        metavar="T",
    )
    p.add_argument(
        "--test-time-augmentation",
        choices=("flips", "dihedral"),
        default=None,
        help="cnn: average the network's maps over the 4 flips (4x slower) or "
        "the 8 flips and rotations (8x) of each frame: fewer false detections, "
        "fewer detections in dense frames (see the model card)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        help="frames per network pass (cnn)",
        metavar="N",
    )
    p.add_argument(
        "--chunk-size",
        type=positive_int,
        default=256,
        help="frames read from the stack at a time",
        metavar="N",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where the network runs (cnn)",
    )
    add_camera(p)
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args, reporter):
    """Run ``localize``; return the exit status."""
    from ..io import TiffStack

    check_output_file(args.output)
    if args.format == "picasso" and not args.output.lower().endswith(".hdf5"):
        raise CLIError(
            f"{args.output}: --format picasso writes HDF5 (and a .yaml beside it); "
            "give a name ending in .hdf5",
            code=2,
        )
    paths = expand_stack_paths(args.stacks)
    with TiffStack(paths) as stack:
        pixel_size_nm, source = stack_pixel_size(stack, args.pixel_size_nm, reporter)
        if args.model == "auto" and args.method != "gaussian":
            args.model = choose_model(stack, pixel_size_nm, args.device, reporter)
        localizer = make_localizer(args, pixel_size_nm, reporter)
        files = len(stack.paths)
        reporter.note(
            f"{stack.n_frames} frames of {stack.frame_shape[0]}x"
            f"{stack.frame_shape[1]} pixels ({pixel_size_nm:g} nm, from {source})"
            f" in {files} file{'s' if files > 1 else ''}; method {args.method}"
        )
        options = {}
        if args.format == "picasso":  # Picasso's positions are in camera pixels
            options = dict(
                pixel_size_nm=pixel_size_nm,
                frame_shape=stack.frame_shape,
                n_frames=stack.n_frames,
                source=os.path.basename(stack.paths[0]),
            )

        original_showwarning = warnings.showwarning
        shown = set()

        def show(message, category, filename, lineno, file=None, line=None):
            # as they come: the conditions check speaks after the first chunk,
            # not after the whole stack; above the progress bar, one line each
            if issubclass(category, ConditionsWarning):
                reporter.warning(str(message))
            elif options and issubclass(category, UserWarning):
                reporter.note(str(message))
            elif issubclass(category, UserWarning):
                # the library's own warnings, once per place (not once per chunk)
                if (category, filename, lineno) not in shown:
                    shown.add((category, filename, lineno))
                    reporter.warning(str(message))
            else:
                original_showwarning(message, category, filename, lineno, file, line)

        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.showwarning = show
            warnings.simplefilter("always", ConditionsWarning)
            # the Picasso writer's warnings become notes; the others are shown
            # once per place by show()
            warnings.simplefilter("always", UserWarning)
            n_frames, n_locs = localize_stack(
                stack,
                localizer,
                args.output,
                args.format,
                args.chunk_size,
                args.batch_size,
                reporter,
                writer_options=options,
            )
        seconds = time.perf_counter() - t0
    rate = n_frames / seconds if seconds > 0 else float("inf")
    reporter.result(
        f"localized {n_frames} frames: {n_locs} localizations in {seconds:.1f} s "
        f"({rate:.0f} frames/s)"
    )
    what = "Picasso HDF5 + .yaml" if args.format == "picasso" else f"{args.format} CSV"
    reporter.result(f"wrote {args.output} ({what})")
    return 0


def choose_model(stack, pixel_size_nm, device, reporter):
    """``--model auto``: the shipped model that fits the stack's first frames."""
    import numpy as np

    n = max(1, min(64, stack.n_frames, 2**18 // math.prod(stack.frame_shape)))
    name, est = choose_pretrained(
        np.asarray(stack[:n]), pixel_size_nm=pixel_size_nm, device=device
    )
    reporter.note(
        f"--model auto: {name} (first {est['n_frames']} frames: "
        f"{est['density_per_um2']:.2g} emitters/um^2 detected, PSF sigma "
        f"{est['psf_sigma_px']:.2f} px)"
    )
    return name


def make_localizer(args, pixel_size_nm, reporter):
    """Build the estimator that localizes, set up from the command line."""
    camera = camera_options(args)
    if args.method is None and getattr(args, "calibration", None) is None:
        # the hybrid is more precise on sparse frames and never worse on dense
        # ones (benchmarks/results/precision_diagnostic.md), but its fits need
        # the camera's offset and gain
        known = bool(camera) or getattr(args, "camera_map", None) is not None
        args.method = "hybrid" if known else "cnn"
    if getattr(args, "calibration", None) is not None:
        from .calibrate import astigmatic_localizer

        return astigmatic_localizer(args, pixel_size_nm, camera, reporter)
    if args.method == "gaussian":
        from ..fitting import GaussianFitLocalizer

        params = dict(camera, pixel_size_nm=pixel_size_nm)
        if getattr(args, "camera_map", None) is not None:
            params = dict(pixel_size_nm=pixel_size_nm, camera=make_camera(args))
        if args.threshold is not None:
            params["threshold"] = args.threshold
        if args.batch_size is not None:
            reporter.note("--batch-size only applies to --method cnn; ignored")
        if getattr(args, "test_time_augmentation", None):
            reporter.note(
                "--test-time-augmentation only applies to the network; ignored"
            )
        return GaussianFitLocalizer(**params).fit()
    loc = load_cnn(args.model, args.device, reporter)
    model_px = float(loc.pixel_size_nm)
    if not math.isclose(model_px, pixel_size_nm, rel_tol=1e-6):
        # The network sees pixels, not nanometres: the map's peaks are converted
        # with the stack's pixel size so that the positions are right.
        reporter.note(
            f"the model was trained on {model_px:g} nm pixels and the stack has "
            f"{pixel_size_nm:g} nm pixels; positions are computed with "
            f"{pixel_size_nm:g} nm (accuracy may drop if the PSF width in pixels "
            "differs much from the training data's)"
        )
        loc.pixel_size_nm = pixel_size_nm
    camera_map = getattr(args, "camera_map", None)
    if camera or camera_map is not None:
        if (
            args.method == "cnn"
            and loc.normalizer_.get_params().get("min_scale") is None
            and camera_map is None
        ):
            # Documented property of FrameNormalizer: without min_scale the
            # normalized frames do not depend on gain or offset.
            reporter.note(
                "this model's frame normalization ignores camera gain and offset, "
                "so the camera options do not change its localizations"
            )
        # the model's own conversion, if any, with the options' values
        get_camera = getattr(loc.normalizer_, "get_camera", None)
        base = get_camera() if get_camera is not None else None
        loc.set_params(camera=make_camera(args, base=base))
    if args.threshold is not None:
        loc.threshold = args.threshold
    if getattr(args, "test_time_augmentation", None):
        loc.set_params(test_time_augmentation=args.test_time_augmentation)
    if args.method == "hybrid" and loc.z_range_nm is not None:
        # the hybrid's Gaussian fits are 2D: a 3D model localizes alone
        reporter.note(f"{args.model} is a 3D model: it localizes alone (--method cnn)")
        args.method = "cnn"
    if args.method == "hybrid":
        from ..camera import Camera
        from ..fitting import GaussianFitLocalizer

        fitter = GaussianFitLocalizer(pixel_size_nm=loc.pixel_size_nm)
        if camera_map is not None:
            fitter.set_params(camera=loc.camera)
        elif camera:  # the fitter's own baseline (100 ADU) when none is given
            camera = {"baseline_adu": fitter.baseline_adu, **camera}
            fitter.set_params(camera=Camera(**camera))
        loc.refiner = fitter
    return loc


def iter_tables(localizer, stack, chunk_size, batch_size):
    """Yield the localizations of the stack's chunks, in order.

    The network's :meth:`~sklearn_smlm.DistanceTransformLocalizer.iter_predict`;
    the classical fitter gets the chunks as read (its saturation test needs
    the camera's integer type) through the same chunk loop.
    """
    if hasattr(localizer, "iter_predict"):
        kwargs = {} if batch_size is None else {"batch_size": batch_size}
        return localizer.iter_predict(stack, chunk_size=chunk_size, **kwargs)

    def predict_chunk(chunk, start):
        table = localizer.predict(chunk)
        table["frame"] = table["frame"].to_numpy() + start
        return table

    return iter_chunk_tables(predict_chunk, stack, chunk_size, check=False)


def localize_stack(
    stack, localizer, output, fmt, chunk_size, batch_size, reporter, writer_options=None
):
    """Stream ``stack`` through ``localizer`` into ``output``; return counts."""
    from ..io import LocalizationWriter

    writer = LocalizationWriter(output, format=fmt, **(writer_options or {}))
    done = 0
    try:
        with reporter.progress(stack.n_frames) as bar:
            for table in iter_tables(localizer, stack, chunk_size, batch_size):
                writer.write(table)
                n_frames = min(chunk_size, stack.n_frames - done)
                done += n_frames
                del table
                bar.update(n_frames)
                bar.set_postfix(locs=writer.n_rows, refresh=False)
        writer.close()
    except BaseException as exc:
        writer.abandon(remove=not done)
        if done:
            exc.partial_note = (
                f"the localizations of frames 1-{done} of {stack.n_frames} are "
                f"kept in {writer.partial_path}"
            )
        raise
    return done, writer.n_rows
