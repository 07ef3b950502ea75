"""``sklearn-smlm localize``: a TIFF stack -> a localization table, chunk by chunk."""

import math
import time

from .._memory import trim_heap
from ._common import (
    DEFAULT_PIXEL_SIZE_NM,
    PROG,
    Formatter,
    add_camera,
    add_common,
    camera_options,
    check_output_file,
    example,
    expand_stack_paths,
    load_cnn,
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
        choices=("thunderstorm", "native", "challenge"),
        default="thunderstorm",
        help="CSV layout: ThunderSTORM (1-based frames), the library's own "
        "(0-based frames) or SMLM challenge 2016",
    )
    p.add_argument(
        "--method",
        choices=("cnn", "gaussian", "hybrid"),
        default="cnn",
        help="the neural network, classical integrated-Gaussian fitting, or "
        "hybrid: the network's detections refined by Gaussian fits on the raw "
        "pixels (give the camera options)",
    )
    p.add_argument(
        "--model",
        metavar="PATH|NAME",
        help="model file saved by 'sklearn-smlm train', or the name of a "
        "pretrained model shipped with the package: 'default' (the default), "
        "'dense_2013', 'bt_hd_2013' (most accurate on 2013-like very dense "
        "data, about 15x slower)",
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
    paths = expand_stack_paths(args.stacks)
    with TiffStack(paths) as stack:
        pixel_size_nm, source = stack_pixel_size(stack, args.pixel_size_nm, reporter)
        localizer = make_localizer(args, pixel_size_nm, reporter)
        files = len(stack.paths)
        reporter.note(
            f"{stack.n_frames} frames of {stack.frame_shape[0]}x"
            f"{stack.frame_shape[1]} pixels ({pixel_size_nm:g} nm, from {source})"
            f" in {files} file{'s' if files > 1 else ''}; method {args.method}"
        )
        t0 = time.perf_counter()
        n_frames, n_locs = localize_stack(
            stack,
            localizer,
            args.output,
            args.format,
            args.chunk_size,
            args.batch_size,
            reporter,
        )
        seconds = time.perf_counter() - t0
    rate = n_frames / seconds if seconds > 0 else float("inf")
    reporter.result(
        f"localized {n_frames} frames: {n_locs} localizations in {seconds:.1f} s "
        f"({rate:.0f} frames/s)"
    )
    reporter.result(f"wrote {args.output} ({args.format} CSV)")
    return 0


def set_camera(localizer, camera):
    """Convert ADU to photons in the loaded localizer's normalizer."""
    import numpy as np

    from ..preprocessing import FrameNormalizer

    params = localizer.normalizer_.get_params(deep=False)
    params.update(camera)
    localizer.normalizer_ = FrameNormalizer(**params).fit(np.zeros((1, 2, 2)))


def make_localizer(args, pixel_size_nm, reporter):
    """Build the estimator that localizes, set up from the command line."""
    camera = camera_options(args)
    if args.method == "gaussian":
        from ..fitting import GaussianFitLocalizer

        params = dict(camera, pixel_size_nm=pixel_size_nm)
        if args.threshold is not None:
            params["threshold"] = args.threshold
        if args.batch_size is not None:
            reporter.note("--batch-size only applies to --method cnn; ignored")
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
    if camera:
        if (
            args.method == "cnn"
            and loc.normalizer_.get_params().get("min_scale") is None
        ):
            # Documented property of FrameNormalizer: without min_scale the
            # normalized frames do not depend on gain or offset.
            reporter.note(
                "this model's frame normalization ignores camera gain and offset, "
                "so the camera options do not change its localizations"
            )
        set_camera(loc, camera)
    if args.threshold is not None:
        loc.threshold = args.threshold
    if args.method == "hybrid":
        from ..fitting import GaussianFitLocalizer

        loc.refiner = GaussianFitLocalizer(**camera, pixel_size_nm=loc.pixel_size_nm)
    return loc


def predict_chunk(localizer, frames, start, batch_size):
    """Localize one chunk; ``frame`` numbers are global (chunk + ``start``)."""
    kwargs = {"batch_size": batch_size} if batch_size is not None else {}
    table = localizer.predict(frames, **kwargs)
    table["frame"] = table["frame"].to_numpy() + start
    return table


def localize_stack(stack, localizer, output, fmt, chunk_size, batch_size, reporter):
    """Stream ``stack`` through ``localizer`` into ``output``; return counts."""
    from ..io import LocalizationWriter

    writer = LocalizationWriter(output, format=fmt)
    done = 0
    try:
        with reporter.progress(stack.n_frames) as bar:
            for start, frames in stack.iter_chunks(chunk_size):
                table = predict_chunk(localizer, frames, start, batch_size)
                writer.write(table)
                done = start + len(frames)
                del table
                trim_heap()  # keep the resident memory at one chunk (_memory)
                bar.update(len(frames))
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
