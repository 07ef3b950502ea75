"""Command line of sklearn-smlm: localize, simulate, train, evaluate, render, demo.

The command line holds no science of its own: it parses arguments, checks them,
reports progress and turns the library's errors into one readable line. Every
result comes from the library (:class:`~sklearn_smlm.io.TiffStack`,
:class:`~sklearn_smlm.DistanceTransformLocalizer`,
:class:`~sklearn_smlm.PAFPSimulator`, :mod:`sklearn_smlm.metrics`,
:mod:`sklearn_smlm.rendering`).

Exit codes: 0 success, 1 runtime error (a missing or corrupt file, a missing
GPU, ...), 2 usage error (bad arguments), 130 interrupted (Ctrl-C).
``--debug`` shows the Python traceback instead of the one-line message.

Examples
--------
>>> from sklearn_smlm.cli import build_parser
>>> args = build_parser().parse_args(["localize", "movie.tif", "-o", "locs.csv"])
>>> args.command, args.stacks, args.output, args.chunk_size
('localize', ['movie.tif'], 'locs.csv', 256)
"""

import argparse
import glob
import json
import math
import os
import re
import shutil
import sys
import time

from ._files import atomic_path
from ._memory import trim_heap

__all__ = ["main", "build_parser"]

PROG = "sklearn-smlm"
DEFAULT_PRESET = "bt_hd_2013"
PRESET_NAMES = ("bt_hd_2013", "mt0_n1_hd_2016", "mt0_n2_hd_2016", "low_density")
#: Camera pixel size assumed when neither the TIFF nor the user gives one.
DEFAULT_PIXEL_SIZE_NM = 100.0
_PLOT_INSTALL = 'pip install "sklearn-smlm[plot]"'


class CLIError(Exception):
    """An expected failure, reported as one line; ``code`` is the exit status."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line with a pointer to --help."""

    def error(self, message):
        raise CLIError(f"{message}; see '{self.prog} --help'", code=2)


class _Formatter(argparse.HelpFormatter):
    """Wrap descriptions, keep the epilog's example lines as written, show defaults."""

    def _fill_text(self, text, width, indent):
        if text.startswith("example:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            "%(default)" not in text
            and action.default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
        ):
            default = action.default
            if isinstance(default, (list, tuple)):
                default = " ".join(str(v) for v in default)
            text += f" (default: {default})"
        return text


# --------------------------------------------------------------------------- #
# argument types
# --------------------------------------------------------------------------- #


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _positive_number(text):
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_number(text):
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _fraction(text):
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _quantum_efficiency(text):
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


# --------------------------------------------------------------------------- #
# the parser
# --------------------------------------------------------------------------- #


def _example(*lines):
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def _add_common(parser, top=False):
    # On subcommands the defaults are SUPPRESSed so that a flag given before the
    # subcommand is not reset by the subcommand's own default.
    default = False if top else argparse.SUPPRESS
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        default=default,
        help="no progress bar and no notes on stderr (results and errors still show)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="show the Python traceback of an error instead of a one-line message",
    )


def _add_camera(parser):
    group = parser.add_argument_group(
        "camera (ADU to photons before normalization; default: not converted)"
    )
    group.add_argument(
        "--baseline-adu", type=_number, help="camera offset in ADU", metavar="ADU"
    )
    group.add_argument(
        "--e-per-adu",
        type=_positive_number,
        help="electrons per ADU (conversion)",
        metavar="E",
    )
    group.add_argument(
        "--em-gain", type=_positive_number, help="EMCCD EM gain", metavar="G"
    )
    group.add_argument(
        "--quantum-efficiency",
        type=_quantum_efficiency,
        help="detected fraction of the photons, in (0, 1]",
        metavar="QE",
    )


def build_parser():
    """Return the argument parser of the ``sklearn-smlm`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    from . import __version__

    parser = _Parser(
        prog=PROG,
        description="Single-molecule localization microscopy (PALM/STORM) with "
        "super-resolution neural networks.",
        epilog=_example(
            f"{PROG} demo                       # a 1-minute tour",
            f"{PROG} localize movie.tif -o locs.csv",
            f"{PROG} <command> --help           # options of a command",
        ),
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_common(parser, top=True)
    sub = parser.add_subparsers(
        dest="command", metavar="<command>", parser_class=_Parser
    )

    # ------------------------------------------------------------ localize
    p = sub.add_parser(
        "localize",
        help="localize the emitters of a TIFF stack into a CSV table",
        description="Localize the emitters of a TIFF stack, chunk by chunk (the "
        "stack is never loaded whole). The table is written to OUTPUT.partial as "
        "the frames are processed and renamed to OUTPUT at the end, so an "
        "interrupted run leaves OUTPUT.partial (complete rows of the frames done) "
        "and never a half-written OUTPUT.",
        epilog=_example(
            f"{PROG} localize movie.tif -o locs.csv",
            f"{PROG} localize 'run_*.tif' -o locs.csv --pixel-size-nm 160",
            f"{PROG} localize movie.tif -o locs.csv --method gaussian "
            "--baseline-adu 100 --e-per-adu 45 --em-gain 300",
        ),
        formatter_class=_Formatter,
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
        type=_positive_number,
        help="camera pixel size in the sample plane (default: from the TIFF "
        f"metadata, else {DEFAULT_PIXEL_SIZE_NM:g})",
        metavar="NM",
    )
    p.add_argument(
        "--threshold",
        type=_number,
        help="detection threshold (cnn: on the distance-transform map, model's "
        "default 300; gaussian: in noise standard deviations, default 4)",
        metavar="T",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        help="frames per network pass (cnn)",
        metavar="N",
    )
    p.add_argument(
        "--chunk-size",
        type=_positive_int,
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
    _add_camera(p)
    _add_common(p)
    p.set_defaults(func=_cmd_localize)

    # ------------------------------------------------------------ simulate
    p = sub.add_parser(
        "simulate",
        help="simulate a movie and its ground truth",
        description="Simulate a PALM/STORM movie with PAFPSimulator and write "
        "DIR/frames.tif (with its pixel size) and DIR/ground_truth.csv "
        "(ThunderSTORM CSV).",
        epilog=_example(
            f"{PROG} simulate -o sim --preset bt_hd_2013 --n-frames 500 --seed 0",
            f"{PROG} simulate -o sim --structure filaments --density-per-um2 2",
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder")
    _add_simulation_options(p, n_frames=100)
    _add_common(p)
    p.set_defaults(func=_cmd_simulate)

    # ------------------------------------------------------------ train
    p = sub.add_parser(
        "train",
        help="train a DistanceTransformLocalizer and save it",
        description="Train the CNN localizer on simulated frames (a preset) or "
        "on your own labelled frames (--frames and --truth), then save it.",
        epilog=_example(
            f"{PROG} train -o model.pt --preset bt_hd_2013 --n-frames 1000",
            f"{PROG} train -o model.pt --frames sim/frames.tif "
            "--truth sim/ground_truth.csv",
        ),
        formatter_class=_Formatter,
    )
    p.add_argument(
        "-o", "--output", required=True, help="model file (.pt)", metavar="OUT"
    )
    _add_simulation_options(p, n_frames=1000)
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
        type=_positive_number,
        help="pixel size of --frames (default: from its TIFF metadata, else "
        f"{DEFAULT_PIXEL_SIZE_NM:g}); with a preset use --preset's",
        metavar="NM",
    )
    p.add_argument("--max-epochs", type=_positive_int, default=30, metavar="N")
    p.add_argument("--batch-size", type=_positive_int, default=16, metavar="N")
    p.add_argument("--dropout", type=_fraction, default=0.0, metavar="P")
    p.add_argument(
        "--upsampling",
        choices=("folded", "subpixel", "multistage"),
        default="folded",
        help="upscaling head of the network",
    )
    p.add_argument("--n-layers", type=_positive_int, default=9, metavar="N")
    p.add_argument("--n-channels", type=_positive_int, default=32, metavar="N")
    p.add_argument("--validation-fraction", type=_fraction, default=0.1, metavar="F")
    p.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="device"
    )
    p.add_argument(
        "--verbose", action="store_true", help="print skorch's table of epochs"
    )
    _add_common(p)
    p.set_defaults(func=_cmd_train)

    # ------------------------------------------------------------ evaluate
    p = sub.add_parser(
        "evaluate",
        help="compare localizations with the ground truth",
        description="Match localizations to the ground truth one-to-one per "
        "frame within a lateral tolerance and print Jaccard index, recall, "
        "precision, F1, RMSE, efficiency and TP/FP/FN.",
        epilog=_example(
            f"{PROG} evaluate locs.csv sim/ground_truth.csv --plot curves.png",
            f"{PROG} evaluate locs.csv truth.csv --matching greedy --border-nm 300 "
            "--field-of-view-nm 6400 6400 --json metrics.json",
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("locs", metavar="LOCS", help="localizations (CSV)")
    p.add_argument("truth", metavar="TRUTH", help="ground truth (CSV)")
    p.add_argument("--tolerance-nm", type=_positive_number, default=250.0, metavar="NM")
    p.add_argument(
        "--matching",
        choices=("hungarian", "greedy"),
        default="hungarian",
        help="optimal assignment, or nearest pairs first (ThunderSTORM, 2016 "
        "challenge)",
    )
    p.add_argument(
        "--border-nm",
        type=_non_negative_number,
        help="ignore a band this wide along the field's edges (needs "
        "--field-of-view-nm)",
        metavar="NM",
    )
    p.add_argument(
        "--field-of-view-nm",
        nargs=2,
        type=_positive_number,
        metavar=("WIDTH", "HEIGHT"),
        help="size of the field, e.g. 6400 6400 for 64x64 pixels of 100 nm",
    )
    p.add_argument(
        "--plot", metavar="PNG", help="write JI and RMSE against the tolerance"
    )
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    _add_common(p)
    p.set_defaults(func=_cmd_evaluate)

    # ------------------------------------------------------------ render
    p = sub.add_parser(
        "render",
        help="render a super-resolved image from localizations",
        description="Render localizations as a super-resolved image: a colour "
        "PNG for viewing (-o) and/or the raw 32-bit float values as TIFF "
        "(--tiff).",
        epilog=_example(
            f"{PROG} render locs.csv -o image.png --pixel-size-nm 10",
            f"{PROG} render locs.csv -o image.png --tiff image.tif --method gaussian "
            "--camera-pixel-size-nm 100 --frame-shape 64 64",
        ),
        formatter_class=_Formatter,
    )
    p.add_argument("locs", metavar="LOCS", help="localizations (CSV)")
    p.add_argument("-o", "--output", help="image file (.png, or .tif)", metavar="OUT")
    p.add_argument("--tiff", metavar="TIF", help="also write a 32-bit float TIFF")
    p.add_argument("--pixel-size-nm", type=_positive_number, default=10.0, metavar="NM")
    p.add_argument(
        "--method",
        choices=("histogram", "gaussian"),
        default="histogram",
        help="count localizations per pixel, or draw each as a Gaussian",
    )
    p.add_argument(
        "--sigma-nm",
        type=_positive_number,
        help="Gaussian width (gaussian; default: the table's uncertainty_nm, else 20)",
        metavar="NM",
    )
    p.add_argument(
        "--camera-pixel-size-nm",
        type=_positive_number,
        help="camera pixel size; with --frame-shape gives the field of view",
        metavar="NM",
    )
    p.add_argument(
        "--frame-shape",
        nargs=2,
        type=_positive_int,
        metavar=("H", "W"),
        help="camera frame shape in pixels (default: the field just holds the "
        "localizations)",
    )
    p.add_argument(
        "--scale-bar-nm", type=_positive_number, help="PNG scale bar", metavar="NM"
    )
    _add_common(p)
    p.set_defaults(func=_cmd_render)

    # ------------------------------------------------------------ demo
    p = sub.add_parser(
        "demo",
        help="simulate, localize, evaluate and render a filament sample",
        description="A one-minute tour: simulates filaments at high density, "
        "localizes them with the pretrained model, prints the metrics against "
        "the truth and writes the super-resolved image and tolerance curves.",
        epilog=_example(f"{PROG} demo", f"{PROG} demo -o my_demo --n-frames 500"),
        formatter_class=_Formatter,
    )
    p.add_argument("-o", "--output", default="smlm_demo", metavar="DIR")
    p.add_argument("--n-frames", type=_positive_int, default=200, metavar="N")
    p.add_argument("--seed", type=_non_negative_int, default=0, metavar="S")
    p.add_argument(
        "--model",
        metavar="PATH",
        help="use this model file instead of the pretrained one",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    _add_common(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def _add_simulation_options(p, n_frames):
    p.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        help="simulator settings like a reference data set (default: bt_hd_2013)",
    )
    p.add_argument("--n-frames", type=_positive_int, default=n_frames, metavar="N")
    p.add_argument(
        "--frame-shape",
        nargs=2,
        type=_positive_int,
        metavar=("H", "W"),
        help="frame height and width in pixels (default: the preset's, 64 64)",
    )
    p.add_argument(
        "--density-per-um2",
        type=_non_negative_number,
        help="emitters on per frame per square micrometre (default: the preset's)",
        metavar="D",
    )
    p.add_argument(
        "--structure",
        choices=("uniform", "filaments"),
        help="where emitters sit (default: the preset's, uniform)",
    )
    p.add_argument(
        "--seed",
        type=_non_negative_int,
        help="random seed (default: a fresh one, printed)",
        metavar="S",
    )


# --------------------------------------------------------------------------- #
# messages
# --------------------------------------------------------------------------- #


class _Reporter:
    """Notes and progress on stderr, results on stdout."""

    def __init__(self, prog, quiet):
        self.prog = prog
        self.quiet = quiet

    def note(self, message):
        if not self.quiet:
            print(f"{self.prog}: note: {message}", file=sys.stderr, flush=True)

    def result(self, message=""):
        print(message, flush=True)

    def progress(self, total, unit="frame"):
        from tqdm import tqdm

        # A bar in a log file is noise; only draw it for a person watching.
        disable = self.quiet or not _isatty(sys.stderr)
        return tqdm(
            total=total,
            unit=unit,
            file=sys.stderr,
            disable=disable,
            # some terminals (docker exec -t, script) report 0 columns, where
            # tqdm's own detection draws an empty bar
            ncols=shutil.get_terminal_size().columns or 80,
            smoothing=0.1,
        )


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _one_line(text):
    return " ".join(str(text).split())


def _describe(exc):
    """Return the one-line message of an expected exception."""
    if isinstance(exc, FileNotFoundError):
        name = exc.filename
        if name is None:
            return f"{_one_line(exc)}; check the path"
        what = (exc.strerror or "no such file").rstrip(".")
        return f"{name}: {what[0].lower() + what[1:]}; check the path"
    if isinstance(exc, PermissionError):
        return f"{exc.filename}: permission denied; choose a location you can write to"
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename}: is a folder; give a file name"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {_one_line(exc.strerror or exc)}"
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller --chunk-size or --batch-size"
    return _one_line(exc)


# --------------------------------------------------------------------------- #
# shared steps
# --------------------------------------------------------------------------- #


def _expand_stack_paths(patterns):
    """Paths of the stack: one argument goes to TiffStack as it is (a glob too)."""
    if len(patterns) == 1:
        return patterns[0]
    paths = []
    for pattern in patterns:
        if glob.has_magic(pattern) and not os.path.exists(pattern):
            matches = sorted(glob.glob(pattern), key=_natural_key)
            if not matches:
                raise FileNotFoundError(2, "No file matches the pattern", pattern)
            paths.extend(matches)
        else:
            paths.append(pattern)
    return paths


def _natural_key(text):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _check_device(device):
    if device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise CLIError(
            "--device cuda: no CUDA GPU is available on this machine; use "
            "--device auto or --device cpu"
        )


def _check_output_file(path, what="output"):
    """Fail before any work when the output cannot be written where asked."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a folder; give the {what} a file name")
    if not os.path.isdir(folder):
        raise CLIError(
            f"{path}: the folder {folder} does not exist; create it first",
        )


def _load_cnn(model, device, reporter):
    """Load the model of --model, or the pretrained one."""
    from .localizer import DistanceTransformLocalizer, load_model, pretrained_names

    _check_device(device)
    if model is not None:
        if not os.path.exists(model) and model in pretrained_names():
            return DistanceTransformLocalizer.pretrained(model, device=device)
        return load_model(model, device=device)
    try:
        return DistanceTransformLocalizer.pretrained(device=device)
    except ValueError as exc:
        if "no pretrained model" not in str(exc):
            raise
        raise CLIError(
            "the pretrained model is not installed with this copy of "
            "sklearn-smlm (sklearn_smlm/models/default.pt is missing); pass "
            "--model PATH with a model saved by 'sklearn-smlm train'"
        ) from exc


def _camera_options(args):
    names = ("baseline_adu", "e_per_adu", "em_gain", "quantum_efficiency")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _set_camera(localizer, camera):
    """Convert ADU to photons in the loaded localizer's normalizer."""
    import numpy as np

    from .preprocessing import FrameNormalizer

    params = localizer.normalizer_.get_params(deep=False)
    params.update(camera)
    localizer.normalizer_ = FrameNormalizer(**params).fit(np.zeros((1, 2, 2)))


def _stack_pixel_size(stack, given, reporter):
    if given is not None:
        return float(given), "--pixel-size-nm"
    found = stack.metadata.get("pixel_size_nm")
    if found:
        return float(found), "the TIFF metadata"
    reporter.note(
        f"the TIFF holds no pixel size; assuming {DEFAULT_PIXEL_SIZE_NM:g} nm "
        "(set it with --pixel-size-nm)"
    )
    return DEFAULT_PIXEL_SIZE_NM, "the default"


def _make_localizer(args, pixel_size_nm, reporter):
    """Build the estimator that localizes, set up from the command line."""
    camera = _camera_options(args)
    if args.method == "gaussian":
        from .fitting import GaussianFitLocalizer

        params = dict(camera, pixel_size_nm=pixel_size_nm)
        if args.threshold is not None:
            params["threshold"] = args.threshold
        if args.batch_size is not None:
            reporter.note("--batch-size only applies to --method cnn; ignored")
        return GaussianFitLocalizer(**params).fit()
    loc = _load_cnn(args.model, args.device, reporter)
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
        _set_camera(loc, camera)
    if args.threshold is not None:
        loc.threshold = args.threshold
    if args.method == "hybrid":
        from .fitting import GaussianFitLocalizer

        loc.refiner = GaussianFitLocalizer(**camera, pixel_size_nm=loc.pixel_size_nm)
    return loc


def _predict_chunk(localizer, frames, start, batch_size):
    kwargs = {"batch_size": batch_size} if batch_size is not None else {}
    table = localizer.predict(frames, **kwargs)
    table["frame"] = table["frame"].to_numpy() + start
    return table


def _localize_stack(stack, localizer, output, fmt, chunk_size, batch_size, reporter):
    """Stream ``stack`` through ``localizer`` into ``output``; return counts."""
    from .io import LocalizationWriter

    writer = LocalizationWriter(output, format=fmt)
    done = 0
    try:
        with reporter.progress(stack.n_frames) as bar:
            for start, frames in stack.iter_chunks(chunk_size):
                table = _predict_chunk(localizer, frames, start, batch_size)
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


def _print_metrics(reporter, metrics, title=None):
    rows = [
        ("Jaccard index", metrics["jaccard"], "{:.3f}"),
        ("recall", metrics["recall"], "{:.3f}"),
        ("precision", metrics["precision"], "{:.3f}"),
        ("F1", metrics["f1"], "{:.3f}"),
        ("RMSE (nm)", metrics["rmse_nm"], "{:.1f}"),
        ("efficiency", metrics["efficiency"], "{:.1f}"),
        ("TP", metrics["tp"], "{:d}"),
        ("FP", metrics["fp"], "{:d}"),
        ("FN", metrics["fn"], "{:d}"),
    ]
    if title:
        reporter.result(title)
    for name, value, fmt in rows:
        text = "nan" if isinstance(value, float) and math.isnan(value) else None
        reporter.result(f"  {name:<14} {text or fmt.format(value)}")


def _json_metrics(metrics):
    return {
        k: (None if isinstance(v, float) and math.isnan(v) else v)
        for k, v in metrics.items()
    }


def _require_matplotlib(option):
    try:
        import matplotlib
    except ImportError:
        raise CLIError(
            f"{option} needs matplotlib, which is not installed; install it "
            f"with `{_PLOT_INSTALL}`"
        ) from None
    matplotlib.use("Agg")


def _save_sweep_plot(truth, locs, path, matching, border_nm, fov):
    import matplotlib.pyplot as plt

    from .metrics import plot_tolerance_sweep, tolerance_sweep

    sweep = tolerance_sweep(
        truth, locs, matching=matching, border_nm=border_nm, field_of_view_nm=fov
    )
    axes = plot_tolerance_sweep(sweep)
    figure = axes[0].figure
    try:
        _atomic_savefig(figure, path)
    finally:
        plt.close(figure)
    return sweep


def _atomic_savefig(figure, path):
    suffix = os.path.splitext(os.fspath(path))[1] or ".png"
    with atomic_path(path, suffix=suffix) as tmp:
        figure.savefig(tmp, dpi=120)


def _simulator(args):
    import numpy as np

    from .simulation import PAFPSimulator

    seed = args.seed
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    overrides = {"random_state": seed}
    if args.frame_shape is not None:
        overrides["frame_shape"] = tuple(args.frame_shape)
    if args.density_per_um2 is not None:
        overrides["density_per_um2"] = args.density_per_um2
    if args.structure is not None:
        overrides["structure"] = args.structure
    if args.preset is None:
        args.preset = DEFAULT_PRESET
    return PAFPSimulator.from_preset(args.preset, **overrides), seed


def _write_frames(path, frames, pixel_size_nm):
    import numpy as np

    from .io import write_stack

    dtype = None
    whole = np.all(frames == np.round(frames))
    if whole and frames.min() >= 0 and frames.max() <= np.iinfo(np.uint16).max:
        dtype = np.uint16  # what cameras write; 2x smaller than float32
    write_stack(path, frames, pixel_size_nm=pixel_size_nm, dtype=dtype)


# --------------------------------------------------------------------------- #
# commands
# --------------------------------------------------------------------------- #


def _cmd_localize(args, reporter):
    from .io import TiffStack

    _check_output_file(args.output)
    paths = _expand_stack_paths(args.stacks)
    with TiffStack(paths) as stack:
        pixel_size_nm, source = _stack_pixel_size(stack, args.pixel_size_nm, reporter)
        localizer = _make_localizer(args, pixel_size_nm, reporter)
        files = len(stack.paths)
        reporter.note(
            f"{stack.n_frames} frames of {stack.frame_shape[0]}x"
            f"{stack.frame_shape[1]} pixels ({pixel_size_nm:g} nm, from {source})"
            f" in {files} file{'s' if files > 1 else ''}; method {args.method}"
        )
        t0 = time.perf_counter()
        n_frames, n_locs = _localize_stack(
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


def _cmd_simulate(args, reporter):
    from .io import write_localizations

    simulator, seed = _simulator(args)
    os.makedirs(args.output, exist_ok=True)
    t0 = time.perf_counter()
    frames, truth = simulator.simulate(args.n_frames, return_table=True)
    frames_path = os.path.join(args.output, "frames.tif")
    truth_path = os.path.join(args.output, "ground_truth.csv")
    _write_frames(frames_path, frames, simulator.pixel_size_nm)
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


def _cmd_train(args, reporter):
    from .localizer import DistanceTransformLocalizer

    if (args.frames is None) != (args.truth is None):
        raise CLIError("--frames and --truth go together; give both", code=2)
    _check_output_file(args.output, "model")
    _check_device(args.device)
    t0 = time.perf_counter()
    if args.frames is not None:
        frames, truth, pixel_size_nm, info = _user_training_data(args, reporter)
    else:
        simulator, seed = _simulator(args)
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
    from .io import TiffStack, read_localizations

    with TiffStack(args.frames) as stack:
        pixel_size_nm, _ = _stack_pixel_size(stack, args.pixel_size_nm, reporter)
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


def _cmd_evaluate(args, reporter):
    from .io import read_localizations
    from .metrics import localization_metrics

    if args.border_nm is not None and args.field_of_view_nm is None:
        raise CLIError(
            "--border-nm needs --field-of-view-nm WIDTH HEIGHT (the field's size "
            "in nm)",
            code=2,
        )
    for path in (args.plot, args.json):
        if path is not None:
            _check_output_file(path)
    if args.plot is not None:
        _require_matplotlib("--plot")
    locs = read_localizations(args.locs)
    truth = read_localizations(args.truth)
    fov = tuple(args.field_of_view_nm) if args.field_of_view_nm else None
    metrics = localization_metrics(
        truth,
        locs,
        tolerance_nm=args.tolerance_nm,
        matching=args.matching,
        border_nm=args.border_nm,
        field_of_view_nm=fov,
    )
    _print_metrics(
        reporter,
        metrics,
        f"{len(locs)} localizations against {len(truth)} true positions "
        f"({args.matching} matching, tolerance {args.tolerance_nm:g} nm):",
    )
    if args.json is not None:
        _write_json(args.json, _json_metrics(metrics))
        reporter.result(f"metrics: {args.json}")
    if args.plot is not None:
        _save_sweep_plot(truth, locs, args.plot, args.matching, args.border_nm, fov)
        reporter.result(f"tolerance curves: {args.plot}")
    return 0


def _write_json(path, data):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def _cmd_render(args, reporter):
    from .io import read_localizations
    from .rendering import render

    if args.output is None and args.tiff is None:
        raise CLIError("give an image to write: -o image.png and/or --tiff", code=2)
    if (args.camera_pixel_size_nm is None) != (args.frame_shape is None):
        raise CLIError(
            "--camera-pixel-size-nm and --frame-shape go together (the field of "
            "view is H x W camera pixels)",
            code=2,
        )
    if args.sigma_nm is not None and args.method != "gaussian":
        raise CLIError("--sigma-nm only applies to --method gaussian", code=2)
    for path in (args.output, args.tiff):
        if path is not None:
            _check_output_file(path, "image")
            if os.path.splitext(path)[1].lower() not in (".png", ".tif", ".tiff"):
                raise CLIError(
                    f"{path}: the image must end in .png (for viewing) or "
                    ".tif/.tiff (32-bit values)",
                    code=2,
                )
    if args.tiff is not None and not args.tiff.lower().endswith((".tif", ".tiff")):
        raise CLIError(f"{args.tiff}: --tiff needs a .tif or .tiff name", code=2)
    if args.output is not None and args.output.lower().endswith(".png"):
        _require_matplotlib("a PNG image")
    table = read_localizations(args.locs)
    fov = None
    if args.frame_shape is not None:
        height, width = args.frame_shape
        fov = (width * args.camera_pixel_size_nm, height * args.camera_pixel_size_nm)
    elif len(table) == 0:
        raise CLIError(
            f"{args.locs}: holds no localization; give --camera-pixel-size-nm "
            "and --frame-shape to render an empty field"
        )
    image = render(
        table,
        pixel_size_nm=args.pixel_size_nm,
        method=args.method,
        sigma_nm=args.sigma_nm,
        field_of_view_nm=fov,
    )
    written = _save_images(args.output, args.tiff, image, args)
    reporter.result(
        f"rendered {len(table)} localizations into {image.shape[0]}x"
        f"{image.shape[1]} pixels of {args.pixel_size_nm:g} nm"
    )
    for path in written:
        reporter.result(f"image: {path}")
    return 0


def _save_images(png, tiff, image, args):
    from .rendering import save_image

    written = []
    for path in (png, tiff):
        if path is None:
            continue
        scale = args.scale_bar_nm if path.lower().endswith(".png") else None
        save_image(image, path, pixel_size_nm=args.pixel_size_nm, scale_bar_nm=scale)
        written.append(path)
    return written


def _cmd_demo(args, reporter):
    from .io import TiffStack, write_localizations
    from .metrics import localization_metrics
    from .rendering import render, save_image
    from .simulation import PAFPSimulator

    t0 = time.perf_counter()
    out = args.output
    os.makedirs(out, exist_ok=True)
    localizer = _load_cnn(args.model, args.device, reporter)
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
    _write_frames(paths["frames"], frames, px)
    write_localizations(truth, paths["truth"], format="thunderstorm")
    reporter.result(
        f"simulated {len(frames)} frames of 64x64 pixels ({px:g} nm) with "
        f"{len(truth)} emitters on filaments (seed {args.seed})"
    )
    if not math.isclose(float(localizer.pixel_size_nm), px):
        localizer.pixel_size_nm = px
    t1 = time.perf_counter()
    with TiffStack(paths["frames"]) as stack:
        n_frames, n_locs = _localize_stack(
            stack, localizer, paths["locs"], "thunderstorm", 256, None, reporter
        )
    seconds = time.perf_counter() - t1
    reporter.result(
        f"localized them with the CNN: {n_locs} localizations in {seconds:.1f} s "
        f"({n_frames / max(seconds, 1e-9):.0f} frames/s)"
    )
    from .io import read_localizations

    locs = read_localizations(paths["locs"])
    metrics = localization_metrics(truth, locs, tolerance_nm=250.0)
    _print_metrics(reporter, metrics, "against the truth (tolerance 250 nm):")
    _write_json(paths["metrics"], _json_metrics(metrics))
    fov = (frames.shape[2] * px, frames.shape[1] * px)
    image = render(locs, pixel_size_nm=10.0, field_of_view_nm=fov)
    save_image(image, paths["tiff"], pixel_size_nm=10.0)
    written = ["frames", "truth", "locs", "metrics", "tiff"]
    try:
        import matplotlib
    except ImportError:
        reporter.note(
            f"matplotlib is not installed: no PNG image and no tolerance curves "
            f"(install it with `{_PLOT_INSTALL}`)"
        )
    else:
        matplotlib.use("Agg")
        save_image(image, paths["png"], pixel_size_nm=10.0, scale_bar_nm=1000.0)
        _save_sweep_plot(truth, locs, paths["curves"], "hungarian", None, None)
        written[4:4] = ["png"]
        written.append("curves")
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


# --------------------------------------------------------------------------- #
# entry point
# --------------------------------------------------------------------------- #


# SMLMFileError and ModelFileError subclass ValueError; a TypeError or any
# other exception from the library would be a bug and is reported as such.
_EXPECTED_ERRORS = (CLIError, OSError, ValueError, ImportError, MemoryError)


def main(argv=None):
    """Run the ``sklearn-smlm`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 1 for a runtime error, 2 for a usage error, 130 when
        interrupted.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    debug = "--debug" in argv
    prog = PROG
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help and --version
            return exc.code if isinstance(exc.code, int) else 0
        debug = args.debug
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        prog = f"{PROG} {args.command}"
        reporter = _Reporter(prog, args.quiet)
        return args.func(args, reporter)
    except KeyboardInterrupt as exc:
        if debug:
            raise
        note = getattr(exc, "partial_note", None)
        print(
            f"{prog}: interrupted" + (f"; {note}" if note else ""),
            file=sys.stderr,
        )
        return 130
    except _EXPECTED_ERRORS as exc:
        if debug:
            raise
        if isinstance(exc, CLIError) and exc.code == 2 and prog == PROG:
            prog = _prog_from_message(str(exc), prog)
        message = _describe(exc)
        note = getattr(exc, "partial_note", None)
        if note:
            message += f" ({note})"
        print(f"{prog}: error: {message}", file=sys.stderr)
        return exc.code if isinstance(exc, CLIError) else 1
    except Exception as exc:
        if debug:
            raise
        print(
            f"{prog}: error: unexpected {type(exc).__name__}: {_one_line(exc)}; "
            "this may be a bug: rerun with --debug and report the traceback",
            file=sys.stderr,
        )
        return 1


def _prog_from_message(message, default):
    # argparse's errors name the subcommand's prog in our "see '... --help'" tail.
    match = re.search(r"see '(.+) --help'$", message)
    return match.group(1) if match else default
