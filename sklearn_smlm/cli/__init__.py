"""Command line of sklearn-smlm: localization, simulation and post-processing.

The command line holds no science of its own: it parses arguments, checks them,
reports progress and turns the library's errors into one readable line. Every
result comes from the library (:class:`~sklearn_smlm.io.TiffStack`,
:class:`~sklearn_smlm.DistanceTransformLocalizer`,
:class:`~sklearn_smlm.PAFPSimulator`, :mod:`sklearn_smlm.metrics`,
:mod:`sklearn_smlm.rendering`).

Exit codes: 0 success, 1 runtime error (a missing or corrupt file, a missing
GPU, ...), 2 usage error (bad arguments), 130 interrupted (Ctrl-C).
``--debug`` shows the Python traceback instead of the one-line message.

Layout: one module per command (``localize.py``, ``simulate.py``, ...), each
with ``add_parser(subparsers)`` (its options) beside ``run(args, reporter)``
(what it does); what they share is in ``_common.py``. To add a command, write
its module and append it to :data:`COMMANDS`. A library error names its Python
parameters; the message the user sees names the command's flags instead
(``segment_frames`` -> ``--segment-frames``); a command whose flag differs
from the parameter it sets lists it in ``PARAM_FLAGS``.

Examples
--------
>>> from sklearn_smlm.cli import build_parser
>>> args = build_parser().parse_args(["localize", "movie.tif", "-o", "locs.csv"])
>>> args.command, args.stacks, args.output, args.chunk_size
('localize', ['movie.tif'], 'locs.csv', 256)
"""

import re
import sys

from . import (
    calibrate,
    demo,
    evaluate,
    frc,
    localize,
    merge,
    render,
    simulate,
    train,
    undrift,
)
from ._common import (
    PROG,
    CLIError,
    Formatter,
    Parser,
    Reporter,
    add_common,
    describe,
    example,
    in_flags,
    one_line,
    param_flags,
)

__all__ = ["main", "build_parser", "COMMANDS"]

#: The command modules, in the order ``--help`` lists them. Each has
#: ``add_parser(subparsers)``, which adds its sub-parser and sets
#: ``func=run``, and ``run(args, reporter)``, which returns the exit status.
COMMANDS = [
    localize,
    calibrate,
    simulate,
    train,
    evaluate,
    render,
    undrift,
    merge,
    frc,
    demo,
]


def build_parser():
    """Return the argument parser of the ``sklearn-smlm`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    from .. import __version__

    parser = Parser(
        prog=PROG,
        description="Single-molecule localization microscopy (PALM/STORM) with "
        "super-resolution neural networks.",
        epilog=example(
            f"{PROG} demo                       # a 1-minute tour",
            f"{PROG} localize movie.tif -o locs.csv",
            f"{PROG} <command> --help           # options of a command",
        ),
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    add_common(parser, top=True)
    sub = parser.add_subparsers(
        dest="command", metavar="<command>", parser_class=Parser
    )
    for command in COMMANDS:
        command.add_parser(sub)
        # library errors name Python parameters; say them as this command's flags
        renames = getattr(command, "PARAM_FLAGS", None)
        command_parser = sub.choices[command.NAME]
        command_parser.set_defaults(param_flags=param_flags(command_parser, renames))
    return parser


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
    flags = None
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
        flags = args.param_flags
        reporter = Reporter(prog, args.quiet)
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
        message = describe(exc)
        if isinstance(exc, ValueError):
            message = in_flags(message, flags)
        note = getattr(exc, "partial_note", None)
        if note:
            message += f" ({note})"
        print(f"{prog}: error: {message}", file=sys.stderr)
        return exc.code if isinstance(exc, CLIError) else 1
    except Exception as exc:
        if debug:
            raise
        print(
            f"{prog}: error: unexpected {type(exc).__name__}: {one_line(exc)}; "
            "this may be a bug: rerun with --debug and report the traceback",
            file=sys.stderr,
        )
        return 1


def _prog_from_message(message, default):
    # argparse's errors name the subcommand's prog in our "see '... --help'" tail.
    match = re.search(r"see '(.+) --help'$", message)
    return match.group(1) if match else default
