"""``sklearn-smlm train``: train a DistanceTransformLocalizer and save it."""

import os
import time

from ._common import (
    DEFAULT_PIXEL_SIZE_NM,
    PROG,
    CLIError,
    Formatter,
    add_common,
    add_simulation_options,
    check_device,
    check_output_file,
    example,
    fraction,
    make_simulator,
    positive_int,
    positive_number,
    stack_pixel_size,
)

NAME = "train"


def add_parser(subparsers):
    """Add the ``train`` sub-parser to ``subparsers``."""
    p = subparsers.add_parser(
        "train",
        help="train a DistanceTransformLocalizer and save it",
        description="Train the CNN localizer on simulated frames (a preset) or "
        "on your own labelled frames (--frames and --truth), then save it.",
        epilog=example(
            f"{PROG} train -o model.pt --preset bt_hd_2013 --n-frames 1000",
            f"{PROG} train -o model.pt --frames sim/frames.tif "
            "--truth sim/ground_truth.csv",
        ),
        formatter_class=Formatter,
    )
    p.add_argument(
        "-o", "--output", required=True, help="model file (.pt)", metavar="OUT"
    )
    add_simulation_options(p, n_frames=1000)
    p.add_argument(
        "--frames",
        metavar="STACK",
        help="train on this TIFF stack instead of a simulation (needs --truth)",
    )
    p.add_argument(
        "--truth",
        metavar="CSV",
        help="true positions of --frames (ThunderSTORM, challenge or native CSV)",
    )
    p.add_argument(
        "--pixel-size-nm",
        type=positive_number,
        help="pixel size of --frames (default: from its TIFF metadata, else "
        f"{DEFAULT_PIXEL_SIZE_NM:g}); with a preset use --preset's",
        metavar="NM",
    )
    p.add_argument("--max-epochs", type=positive_int, default=30, metavar="N")
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="N")
    p.add_argument("--dropout", type=fraction, default=0.0, metavar="P")
    p.add_argument(
        "--upsampling",
        choices=("folded", "subpixel", "multistage"),
        default="folded",
        help="upscaling head of the network",
    )
    p.add_argument("--n-layers", type=positive_int, default=9, metavar="N")
    p.add_argument("--n-channels", type=positive_int, default=32, metavar="N")
    p.add_argument("--validation-fraction", type=fraction, default=0.1, metavar="F")
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="device"
    )
    p.add_argument(
        "--verbose", action="store_true", help="print skorch's table of epochs"
    )
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args, reporter):
    """Run ``train``; return the exit status."""
    from ..localizer import DistanceTransformLocalizer

    if (args.frames is None) != (args.truth is None):
        raise CLIError("--frames and --truth go together; give both", code=2)
    check_output_file(args.output, "model")
    check_device(args.device)
    t0 = time.perf_counter()
    if args.frames is not None:
        frames, truth, pixel_size_nm, info = _user_training_data(args, reporter)
    else:
        simulator, seed = make_simulator(args)
        reporter.note(
            f"simulating {args.n_frames} training frames (preset {args.preset}, "
            f"seed {seed})"
        )
        frames, truth = simulator.simulate(args.n_frames)
        pixel_size_nm = float(simulator.pixel_size_nm)
        info = {"source": "simulation", "preset": args.preset, "seed": seed}
        info.update(n_frames=args.n_frames, frame_shape=list(frames.shape[1:]))
        args.seed = seed
    loc = DistanceTransformLocalizer(
        pixel_size_nm=pixel_size_nm,
        n_layers=args.n_layers,
        n_channels=args.n_channels,
        upsampling=args.upsampling,
        dropout=args.dropout,
        max_epochs=args.max_epochs,
        batch_size=args.batch_size,
        validation_fraction=args.validation_fraction,
        device=args.device,
        random_state=args.seed,
        verbose=int(args.verbose),
    )
    reporter.note(
        f"training on {len(frames)} frames for up to {args.max_epochs} epochs"
    )
    t1 = time.perf_counter()
    loc.fit(frames, truth)
    train_seconds = time.perf_counter() - t1
    loc.training_info_ = info
    loc.save(args.output)
    history = loc.net_.history
    losses = [row["valid_loss"] for row in history if "valid_loss" in row]
    reporter.result(
        f"trained {len(history)} epochs in {train_seconds:.1f} s "
        f"({time.perf_counter() - t0:.1f} s in all)"
    )
    if losses:
        reporter.result(
            f"validation loss: {losses[-1]:.4g} (last), {min(losses):.4g} (best, kept)"
        )
    else:
        reporter.result(
            f"training loss: {history[-1]['train_loss']:.4g} (no validation "
            "frames: --validation-fraction 0)"
        )
    reporter.result(f"model: {args.output}")
    return 0


def _user_training_data(args, reporter):
    from ..io import TiffStack, read_localizations

    with TiffStack(args.frames) as stack:
        pixel_size_nm, _ = stack_pixel_size(stack, args.pixel_size_nm, reporter)
        frames = stack[:]
    truth = read_localizations(args.truth)
    if len(truth) and int(truth["frame"].max()) >= len(frames):
        raise CLIError(
            f"{args.truth}: has positions in frame {int(truth['frame'].max()) + 1} "
            f"but {args.frames} has only {len(frames)} frames; is it the truth of "
            "this stack?"
        )
    ignored = [
        f"--{name.replace('_', '-')}"
        for name in ("preset", "frame_shape", "density_per_um2", "structure")
        if getattr(args, name) is not None
    ]
    if ignored:
        reporter.note(f"{', '.join(ignored)} ignored: training on --frames")
    info = {"source": "user", "frames": os.path.abspath(args.frames)}
    info.update(truth=os.path.abspath(args.truth), n_frames=len(frames))
    return frames, truth, pixel_size_nm, info
