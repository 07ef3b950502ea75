"""``sklearn-smlm render``: a super-resolved image from localizations."""

import os

from ._common import (
    PROG,
    CLIError,
    Formatter,
    add_common,
    check_output_file,
    example,
    positive_int,
    positive_number,
    require_matplotlib,
)

NAME = "render"


def add_parser(subparsers):
    """Add the ``render`` sub-parser to ``subparsers``."""
    p = subparsers.add_parser(
        "render",
        help="render a super-resolved image from localizations",
        description="Render localizations as a super-resolved image: a colour "
        "PNG for viewing (-o) and/or the raw 32-bit float values as TIFF "
        "(--tiff).",
        epilog=example(
            f"{PROG} render locs.csv -o image.png --pixel-size-nm 10",
            f"{PROG} render locs.csv -o image.png --tiff image.tif --method gaussian "
            "--camera-pixel-size-nm 100 --frame-shape 64 64",
        ),
        formatter_class=Formatter,
    )
    p.add_argument("locs", metavar="LOCS", help="localizations (CSV)")
    p.add_argument("-o", "--output", help="image file (.png, or .tif)", metavar="OUT")
    p.add_argument("--tiff", metavar="TIF", help="also write a 32-bit float TIFF")
    p.add_argument("--pixel-size-nm", type=positive_number, default=10.0, metavar="NM")
    p.add_argument(
        "--method",
        choices=("histogram", "gaussian"),
        default="histogram",
        help="count localizations per pixel, or draw each as a Gaussian",
    )
    p.add_argument(
        "--sigma-nm",
        type=positive_number,
        help="Gaussian width (gaussian; default: the table's uncertainty_nm, else 20)",
        metavar="NM",
    )
    p.add_argument(
        "--camera-pixel-size-nm",
        type=positive_number,
        help="camera pixel size; with --frame-shape gives the field of view",
        metavar="NM",
    )
    p.add_argument(
        "--frame-shape",
        nargs=2,
        type=positive_int,
        metavar=("H", "W"),
        help="camera frame shape in pixels (default: the field just holds the "
        "localizations)",
    )
    p.add_argument(
        "--scale-bar-nm", type=positive_number, help="PNG scale bar", metavar="NM"
    )
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args, reporter):
    """Run ``render``; return the exit status."""
    from ..io import read_localizations
    from ..rendering import render

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
            check_output_file(path, "image")
            if os.path.splitext(path)[1].lower() not in (".png", ".tif", ".tiff"):
                raise CLIError(
                    f"{path}: the image must end in .png (for viewing) or "
                    ".tif/.tiff (32-bit values)",
                    code=2,
                )
    if args.tiff is not None and not args.tiff.lower().endswith((".tif", ".tiff")):
        raise CLIError(f"{args.tiff}: --tiff needs a .tif or .tiff name", code=2)
    if args.output is not None and args.output.lower().endswith(".png"):
        require_matplotlib("a PNG image")
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
    from ..rendering import save_image

    written = []
    for path in (png, tiff):
        if path is None:
            continue
        scale = args.scale_bar_nm if path.lower().endswith(".png") else None
        save_image(image, path, pixel_size_nm=args.pixel_size_nm, scale_bar_nm=scale)
        written.append(path)
    return written
