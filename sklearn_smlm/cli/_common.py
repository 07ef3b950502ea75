"""What the commands share: errors, argument types, messages, common steps."""

import argparse
import glob
import json
import math
import os
import re
import shutil
import sys

from .._files import atomic_path

PROG = "sklearn-smlm"


DEFAULT_PRESET = "bt_hd_2013"


PRESET_NAMES = ("bt_hd_2013", "mt0_n1_hd_2016", "mt0_n2_hd_2016", "low_density")
#: Astigmatic (3D) presets: ``simulate`` only (the networks ``train`` makes are 2D)
PRESET_NAMES_3D = ("low_density_as", "mt0_n1_as_2016", "mt0_n2_as_2016")


DEFAULT_PIXEL_SIZE_NM = 100.0


PLOT_INSTALL = 'pip install "sklearn-smlm[plot]"'


class CLIError(Exception):
    """An expected failure, reported as one line; ``code`` is the exit status."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line with a pointer to --help."""

    def error(self, message):
        raise CLIError(f"{message}; see '{self.prog} --help'", code=2)


class Formatter(argparse.HelpFormatter):
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


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_number(text):
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_number(text):
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text):
    value = number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def positive_fraction(text):
    """Parse a number in (0, 1]: a quantum efficiency, a share of frames."""
    value = number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


quantum_efficiency = positive_fraction


def example(*lines):
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def add_common(parser, top=False):
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


def add_camera(parser):
    group = parser.add_argument_group(
        "camera (ADU to photons before normalization; default: not converted)"
    )
    group.add_argument(
        "--baseline-adu", type=number, help="camera offset in ADU", metavar="ADU"
    )
    group.add_argument(
        "--e-per-adu",
        type=positive_number,
        help="electrons per ADU (conversion)",
        metavar="E",
    )
    group.add_argument(
        "--em-gain", type=positive_number, help="EMCCD EM gain", metavar="G"
    )
    group.add_argument(
        "--quantum-efficiency",
        type=quantum_efficiency,
        help="detected fraction of the photons, in (0, 1]",
        metavar="QE",
    )
    group.add_argument(
        "--camera-map",
        metavar="FILE",
        help="sCMOS calibration: offset, gain and variance maps as a .npz "
        "(offset_adu, gain_adu_per_e, variance_adu2) or a 3-page .tif; the "
        "options above override its scalar values (see sklearn_smlm.Camera)",
    )


def add_simulation_options(p, n_frames, presets=PRESET_NAMES):
    p.add_argument(
        "--preset",
        choices=presets,
        help="simulator settings like a reference data set (default: bt_hd_2013)",
    )
    p.add_argument("--n-frames", type=positive_int, default=n_frames, metavar="N")
    p.add_argument(
        "--frame-shape",
        nargs=2,
        type=positive_int,
        metavar=("H", "W"),
        help="frame height and width in pixels (default: the preset's, 64 64)",
    )
    p.add_argument(
        "--density-per-um2",
        type=non_negative_number,
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
        type=non_negative_int,
        help="random seed (default: a fresh one, printed)",
        metavar="S",
    )


class Reporter:
    """Notes and progress on stderr, results on stdout."""

    def __init__(self, prog, quiet):
        self.prog = prog
        self.quiet = quiet

    def note(self, message):
        if not self.quiet:
            print(f"{self.prog}: note: {message}", file=sys.stderr, flush=True)

    def warning(self, message):
        """One line on stderr, above a progress bar; shown even with --quiet."""
        from tqdm import tqdm

        tqdm.write(f"{self.prog}: warning: {one_line(message)}", file=sys.stderr)

    def result(self, message=""):
        print(message, flush=True)

    def progress(self, total, unit="frame"):
        from tqdm import tqdm

        # A bar in a log file is noise; only draw it for a person watching.
        disable = self.quiet or not isatty(sys.stderr)
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


def isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def one_line(text):
    return " ".join(str(text).split())


def param_flags(parser, renames=None):
    """Map the library's parameter names to the flags of one command.

    A library error names its Python parameter (``segment_frames``); on the
    command line the user knows ``--segment-frames``. Every option whose
    destination holds an underscore maps to its long flag; ``renames`` adds
    the parameters a command passes under another flag (``{"pixel_size_nm":
    "--render-pixel-nm"}``) and wins over the automatic ones.
    """
    flags = {}
    for action in parser._actions:  # argparse has no public list of options
        long = [s for s in action.option_strings if s.startswith("--")]
        if long and action.dest != "help":
            flags[action.dest] = long[0]
    flags.update(renames or {})
    return flags


def in_flags(message, flags):
    """Say ``message``'s parameter names as the command's flags.

    ``name='value'`` and ``name=value`` become ``--flag value``; a bare name
    is replaced when it holds an underscore (``block_frames``), so ordinary
    words such as "method" stay as they are. The arguments of a Python call
    (``set_params(threshold=...)``) are left alone.

    Examples
    --------
    >>> flags = {"segment_frames": "--segment-frames", "method": "--method"}
    >>> in_flags("Use method='rcc' or a smaller segment_frames.", flags)
    'Use --method rcc or a smaller --segment-frames.'
    """
    if not flags:
        return message
    words = sorted((n for n in flags if "_" in n), key=len, reverse=True)
    bare = r"(?<![-\w])(" + "|".join(map(re.escape, words)) + r")\b"

    def assignment(match):
        name, value = match.group(1), match.group(3)
        return f"{flags[name]} {value}" if name in flags else match.group(0)

    def outside_calls(text):
        text = re.sub(r"\b([A-Za-z_]\w*)=(['\"]?)([^'\"\s,;)]*)\2", assignment, text)
        if words:
            text = re.sub(bare, lambda m: flags[m.group(1)], text)
        return text

    parts, depth, start = [], 0, 0
    for i, char in enumerate(message):
        if char == "(" and (
            depth or (i and (message[i - 1].isalnum() or message[i - 1] == "_"))
        ):
            if depth == 0:
                parts.append(outside_calls(message[start:i]))
                start = i
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                parts.append(message[start : i + 1])
                start = i + 1
    tail = message[start:]
    parts.append(tail if depth else outside_calls(tail))
    return "".join(parts)


def describe(exc):
    """Return the one-line message of an expected exception."""
    if isinstance(exc, FileNotFoundError):
        name = exc.filename
        if name is None:
            return f"{one_line(exc)}; check the path"
        what = (exc.strerror or "no such file").rstrip(".")
        return f"{name}: {what[0].lower() + what[1:]}; check the path"
    if isinstance(exc, PermissionError):
        return f"{exc.filename}: permission denied; choose a location you can write to"
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename}: is a folder; give a file name"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {one_line(exc.strerror or exc)}"
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller --chunk-size or --batch-size"
    return one_line(exc)


def expand_stack_paths(patterns):
    """Paths of the stack: one argument goes to TiffStack as it is (a glob too)."""
    if len(patterns) == 1:
        return patterns[0]
    paths = []
    for pattern in patterns:
        if glob.has_magic(pattern) and not os.path.exists(pattern):
            matches = sorted(glob.glob(pattern), key=natural_key)
            if not matches:
                raise FileNotFoundError(2, "No file matches the pattern", pattern)
            paths.extend(matches)
        else:
            paths.append(pattern)
    return paths


def natural_key(text):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def check_device(device):
    if device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise CLIError(
            "--device cuda: no CUDA GPU is available on this machine; use "
            "--device auto or --device cpu"
        )


def check_output_file(path, what="output"):
    """Fail before any work when the output cannot be written where asked."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a folder; give the {what} a file name")
    if not os.path.isdir(folder):
        raise CLIError(
            f"{path}: the folder {folder} does not exist; create it first",
        )


def load_cnn(model, device, reporter):
    """Load the model of --model, or the pretrained one."""
    from ..localizer import DistanceTransformLocalizer, load_model, pretrained_names

    check_device(device)
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


def camera_options(args):
    names = ("baseline_adu", "e_per_adu", "em_gain", "quantum_efficiency")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def make_camera(args, base=None):
    """Return the Camera of the camera options, or None when none is given.

    ``--camera-map`` is read first; the scalar options override its values,
    or those of ``base`` (a Camera), or the Camera defaults.
    """
    from ..camera import Camera

    options = camera_options(args)
    path = getattr(args, "camera_map", None)
    if path is not None:
        return Camera.from_file(path, **options)
    if not options:
        return None
    return base.replace(**options) if base is not None else Camera(**options)


def stack_pixel_size(stack, given, reporter):
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


def print_metrics(reporter, metrics, title=None):
    rows = [
        ("Jaccard index", metrics["jaccard"], "{:.3f}"),
        ("recall", metrics["recall"], "{:.3f}"),
        ("precision", metrics["precision"], "{:.3f}"),
        ("F1", metrics["f1"], "{:.3f}"),
        ("RMSE (nm)", metrics["rmse_nm"], "{:.1f}"),
        ("efficiency", metrics["efficiency"], "{:.1f}"),
        ("RMSE z (nm)", metrics["rmse_z_nm"], "{:.1f}"),
        ("efficiency 3D", metrics["efficiency_axial"], "{:.1f}"),
        ("TP", metrics["tp"], "{:d}"),
        ("FP", metrics["fp"], "{:d}"),
        ("FN", metrics["fn"], "{:d}"),
    ]
    if title:
        reporter.result(title)
    if math.isnan(metrics.get("rmse_z_nm", math.nan)):
        axial = ("RMSE z (nm)", "efficiency 3D")
        rows = [row for row in rows if row[0] not in axial]
    for name, value, fmt in rows:
        text = "nan" if isinstance(value, float) and math.isnan(value) else None
        reporter.result(f"  {name:<14} {text or fmt.format(value)}")


def json_metrics(metrics):
    return {
        k: (None if isinstance(v, float) and math.isnan(v) else v)
        for k, v in metrics.items()
    }


def require_matplotlib(option):
    try:
        import matplotlib
    except ImportError:
        raise CLIError(
            f"{option} needs matplotlib, which is not installed; install it "
            f"with `{PLOT_INSTALL}`"
        ) from None
    matplotlib.use("Agg")


def save_sweep_plot(truth, locs, path, matching, border_nm, fov):
    import matplotlib.pyplot as plt

    from ..metrics import plot_tolerance_sweep, tolerance_sweep

    sweep = tolerance_sweep(
        truth, locs, matching=matching, border_nm=border_nm, field_of_view_nm=fov
    )
    axes = plot_tolerance_sweep(sweep)
    figure = axes[0].figure
    try:
        atomic_savefig(figure, path)
    finally:
        plt.close(figure)
    return sweep


def atomic_savefig(figure, path):
    suffix = os.path.splitext(os.fspath(path))[1] or ".png"
    with atomic_path(path, suffix=suffix) as tmp:
        figure.savefig(tmp, dpi=120)


def make_simulator(args):
    import numpy as np

    from ..simulation import PAFPSimulator

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


def write_frames(path, frames, pixel_size_nm):
    import numpy as np

    from ..io import write_stack

    dtype = None
    whole = np.all(frames == np.round(frames))
    if whole and frames.min() >= 0 and frames.max() <= np.iinfo(np.uint16).max:
        dtype = np.uint16  # what cameras write; 2x smaller than float32
    write_stack(path, frames, pixel_size_nm=pixel_size_nm, dtype=dtype)


def write_json(path, data):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
