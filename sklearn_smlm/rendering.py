"""Super-resolved images from localization tables: render, contrast, save, plot.

Pixel convention of the rendered images: with ``origin_nm = (x0, y0)`` and
render pixel size ``px``, image pixel ``(i, j)`` covers ``y`` in
``[y0 + i * px, y0 + (i + 1) * px)`` and ``x`` in ``[x0 + j * px, x0 + (j + 1) * px)``
nanometres, so row ``i`` runs along ``y_nm`` and column ``j`` along ``x_nm``,
exactly like the camera pixels of :mod:`sklearn_smlm._localizations` (whose
pixel ``(row, col)`` has its centre at ``x_nm = (col + 0.5) * px``).
A rendered image with the camera pixel size and origin ``(0, 0)`` therefore
lines up with the camera frames.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage, optimize, signal, special

from ._files import atomic_path
from ._localizations import validate_localizations
from ._validation import check_positive

__all__ = [
    "render",
    "render_depth",
    "render_side_view",
    "auto_contrast",
    "save_image",
    "plot_localizations",
    "plot_depth",
]

_METHODS = ("histogram", "gaussian")
#: Default Gaussian width when the table has no ``uncertainty_nm`` column.
DEFAULT_SIGMA_NM = 20.0
#: Refuse images above this many pixels (about 1 GiB as float32) with a clear
#: message instead of a MemoryError deep inside numpy.
_MAX_PIXELS = 2**28
#: Neighbouring Gaussian widths are grouped when they differ by less than 10 %,
#: so a width is rendered at most about 5 % off its own value.
_WIDTH_RATIO = 1.1
_MAX_WIDTH_BINS = 40
#: Variance (pixel²) of the 3-tap sharing of a point between pixels.
_SHARED_VARIANCE = 0.25
#: Gaussians narrower than this (in render pixels) are integrated exactly.
_NARROW_PX = 0.8
#: Exactly integrated Gaussians cover this many widths on each side.
_WINDOW_SIGMAS = 3.5
#: Kernels longer than this are applied with FFTs, which do not slow down with
#: the kernel size.
_MAX_DIRECT_RADIUS = 32
_PLOT_HINT = 'install it with `pip install "sklearn-smlm[plot]"`'


def render(
    table,
    *,
    pixel_size_nm=10.0,
    method="histogram",
    sigma_nm=None,
    field_of_view_nm=None,
    origin_nm=(0, 0),
    weights=None,
):
    """Render a localization table as a super-resolved image.

    Image pixel ``(i, j)`` covers ``y`` in ``[y0 + i * px, y0 + (i + 1) * px)``
    and ``x`` in ``[x0 + j * px, x0 + (j + 1) * px)``, with ``(x0, y0) =
    origin_nm`` and ``px = pixel_size_nm``; rows run along ``y_nm``. The image
    has ``ceil(height_nm / px)`` rows and ``ceil(width_nm / px)`` columns.
    Localizations that fall in no pixel of the image are dropped; ``z_nm`` is
    ignored (the image is a 2-D projection).

    Parameters
    ----------
    table : pandas.DataFrame
        Localization table with columns ``frame``, ``x_nm`` and ``y_nm`` (see
        :func:`~sklearn_smlm.validate_localizations`), plus ``uncertainty_nm``
        if the Gaussian widths should come from it.
    pixel_size_nm : float, default=10.0
        Side of a render pixel, in nanometres.
    method : {"histogram", "gaussian"}, default="histogram"
        ``"histogram"`` counts the localizations in each pixel.
        ``"gaussian"`` draws each localization as a 2-D Gaussian of unit
        integral (times its weight) and standard deviation ``sigma_nm``; each
        pixel holds the Gaussian's integral over the pixel, exactly for
        widths under 0.8 render pixel and within a few percent of the peak
        value for wider ones, and the part of a Gaussian that falls outside
        the image is lost. Wider Gaussians are grouped in bins of widths at
        most 10 % apart and drawn with their bin's mean variance, so within
        about 5 % of their own width; their centroid stays exact.
    sigma_nm : float, array-like of shape (n_localizations,) or str, optional
        Gaussian widths (``method="gaussian"`` only): one width for all, one
        per row, or the name of a column of ``table``. Default: the column
        ``uncertainty_nm`` when the table has it, else 20 nm.
    field_of_view_nm : tuple of (float, float), optional
        ``(width_nm, height_nm)`` of the image, counted from ``origin_nm``,
        e.g. the camera frame size times the camera pixel size. Default: just
        large enough to hold the largest ``x_nm`` and ``y_nm`` of the table.
    origin_nm : tuple of (float, float), default=(0, 0)
        ``(x_nm, y_nm)`` of the top-left corner of pixel ``(0, 0)``.
    weights : array-like of shape (n_localizations,) or str, optional
        Weight of each localization (one per row, or a column name such as
        ``"photons"``); default 1, so the image counts localizations.

    Returns
    -------
    image : ndarray of shape (rows, cols), dtype float32
        The image sums to the number of localizations inside it (or to the sum
        of their weights); for ``"gaussian"`` less the Gaussian tails that
        cross the border.

    Raises
    ------
    ValueError
        For a bad table, an unknown method, non-positive sizes or widths, a
        ``weights`` or ``sigma_nm`` of the wrong length, an empty table
        without ``field_of_view_nm``, or an image of more than 2**28 pixels.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_smlm.rendering import render
    >>> table = pd.DataFrame(
    ...     {"frame": [0, 0, 1], "x_nm": [15.0, 18.0, 31.0], "y_nm": [5.0, 9.0, 12.0]}
    ... )
    >>> render(table, pixel_size_nm=10.0, field_of_view_nm=(40.0, 20.0))
    array([[0., 2., 0., 0.],
           [0., 0., 0., 1.]], dtype=float32)
    >>> image = render(table, method="gaussian", sigma_nm=20.0, pixel_size_nm=5.0,
    ...                field_of_view_nm=(500.0, 500.0), origin_nm=(-250.0, -250.0))
    >>> round(float(image.sum()), 4)
    3.0
    """
    table = validate_localizations(table, copy=False)
    pixel_size_nm = float(check_positive(pixel_size_nm, "pixel_size_nm"))
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    if sigma_nm is not None and method != "gaussian":
        raise ValueError(
            f"sigma_nm is only used by method='gaussian', not method={method!r}."
        )
    origin = _pair(origin_nm, "origin_nm", positive=False)
    n = len(table)
    weight = None if weights is None else _per_row(weights, table, "weights")
    # Positions in units of render pixels, measured from the image's corner.
    u = (table["x_nm"].to_numpy() - origin[0]) / pixel_size_nm
    v = (table["y_nm"].to_numpy() - origin[1]) / pixel_size_nm
    shape = _image_shape(u, v, field_of_view_nm, pixel_size_nm)

    col = np.floor(u)
    row = np.floor(v)
    inside = (col >= 0) & (col < shape[1]) & (row >= 0) & (row < shape[0])
    if method == "histogram":
        flat = row[inside].astype(np.intp) * shape[1] + col[inside].astype(np.intp)
        image = np.bincount(
            flat,
            weights=None if weight is None else weight[inside],
            minlength=shape[0] * shape[1],
        )
        return image.reshape(shape).astype(np.float32)

    if sigma_nm is None:
        sigma_nm = "uncertainty_nm" if "uncertainty_nm" in table else DEFAULT_SIGMA_NM
    if isinstance(sigma_nm, str) or np.ndim(sigma_nm) > 0:
        sigma = _per_row(sigma_nm, table, "sigma_nm")
        bad = ~(sigma > 0)
        if bad.any():
            row_bad = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"Gaussian widths must be > 0 nm; {int(bad.sum())} of {n} are not "
                f"(first at row {row_bad}: {sigma[row_bad]!r}). Drop those rows or "
                "pass one width for all, e.g. sigma_nm=20.0."
            )
        sigma = sigma[inside]
    else:
        sigma = np.full(int(inside.sum()), check_positive(sigma_nm, "sigma_nm"))
    return _render_gaussian(
        u[inside] - 0.5,
        v[inside] - 0.5,
        None if weight is None else weight[inside],
        sigma / pixel_size_nm,
        shape,
    )


def _pair(value, name, *, positive):
    try:
        pair = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or not all(map(math.isfinite, pair)):
        raise ValueError(f"{name} must be two finite numbers (x, y), got {value!r}.")
    if positive and min(pair) <= 0:
        raise ValueError(f"{name} must be two numbers > 0, got {value!r}.")
    return pair


def _per_row(values, table, name):
    if isinstance(values, str):
        if values not in table:
            raise ValueError(
                f"{name}={values!r} names no column of the table; it has "
                f"{list(map(str, table.columns))}."
            )
        label = f"column {values!r}"
        values = table[values]
    else:
        label = name
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric.") from exc
    if array.shape != (len(table),):
        raise ValueError(
            f"{name} must hold one value per localization ({len(table)}), got "
            f"shape {array.shape}."
        )
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(
            f"{label} has {int(bad.sum())} NaN or infinite value(s), first at row "
            f"{int(np.flatnonzero(bad)[0])}."
        )
    return array


def _image_shape(u, v, field_of_view_nm, pixel_size_nm):
    if field_of_view_nm is not None:
        width, height = _pair(field_of_view_nm, "field_of_view_nm", positive=True)
        # The small slack keeps 1.1 / 0.1 = 11.000000000000002 at 11 pixels.
        cols = max(1, math.ceil(width / pixel_size_nm - 1e-9))
        rows = max(1, math.ceil(height / pixel_size_nm - 1e-9))
    elif len(u) == 0:
        raise ValueError(
            "cannot size the image of an empty table; pass field_of_view_nm="
            "(width_nm, height_nm), e.g. the camera frame size times its pixel size."
        )
    else:
        cols = math.floor(u.max()) + 1
        rows = math.floor(v.max()) + 1
        if cols < 1 or rows < 1:
            raise ValueError(
                "every localization lies left of or above origin_nm, so the "
                "image would be empty; lower origin_nm or pass field_of_view_nm."
            )
    if rows * cols > _MAX_PIXELS:
        raise ValueError(
            f"the image would have {rows} x {cols} pixels; increase pixel_size_nm "
            f"(now {pixel_size_nm} nm) or reduce field_of_view_nm."
        )
    return rows, cols


def _render_gaussian(u, v, weight, sigma_px, shape):
    """Draw Gaussians at ``(u, v)`` (pixel-centre units) with widths in pixels.

    The localizations are grouped by width. A group is drawn exactly, each
    Gaussian integrated over a window of pixels around it, when it is
    narrower than 0.8 pixel or when its windows hold fewer values than the
    image has pixels. Otherwise each point is shared between the 3 x 3
    pixels around it, with weights that keep its centroid exactly and give a
    variance of exactly 1/4 pixel² along each axis wherever it sits in its
    pixel, and the group is blurred with a sampled Gaussian kernel whose
    variance brings the total to the group's mean width squared plus the
    1/12 pixel² that integrating over a pixel adds.
    """
    rows, cols = shape
    if len(u) == 0:
        return np.zeros(shape, np.float32)
    narrow = sigma_px < _NARROW_PX
    log_width = np.log(sigma_px[~narrow])
    key = np.zeros(len(u), np.intp)
    if log_width.size:
        lo, hi = float(log_width.min()), float(log_width.max())
        n_bins = math.ceil((hi - lo) / math.log(_WIDTH_RATIO))
        n_bins = min(_MAX_WIDTH_BINS, max(1, n_bins))
        step = (hi - lo) / n_bins if hi > lo else 1.0
        key[~narrow] = 1 + np.minimum(
            ((log_width - lo) / step).astype(np.intp), n_bins - 1
        )
    order = np.argsort(key, kind="stable")
    counts = np.bincount(key)
    bounds = np.concatenate([[0], np.cumsum(counts[counts > 0])])
    groups = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    pad = math.ceil(_WINDOW_SIGMAS * float(sigma_px.max())) + 3
    padded = (rows + 2 * pad, cols + 2 * pad)
    image = np.zeros(padded, np.float32)
    for group in groups:
        width = sigma_px[group]
        half = math.ceil(_WINDOW_SIGMAS * float(width.max()))
        exact = width[0] < _NARROW_PX or len(group) * (2 * half + 1) ** 2 <= image.size
        if width[0] < _NARROW_PX:
            half = 2
        centre_u = np.floor(u[group] + 0.5)
        centre_v = np.floor(v[group] + 0.5)
        if exact:
            taps_u = _gaussian_taps(u[group] - centre_u, width, half)
            taps_v = _gaussian_taps(v[group] - centre_v, width, half)
        else:
            taps_u = _shared_taps(u[group] - centre_u)
            taps_v = _shared_taps(v[group] - centre_v)
        if weight is not None:
            taps_v *= weight[group, np.newaxis]
        half = taps_u.shape[1] // 2
        offsets = np.arange(-half, half + 1)
        index = (
            (centre_v.astype(np.intp) + pad)[:, None, None] + offsets[None, :, None]
        ) * padded[1] + ((centre_u.astype(np.intp) + pad)[:, None, None] + offsets)
        splat = np.bincount(
            index.ravel(),
            weights=(taps_v[:, :, None] * taps_u[:, None, :]).ravel(),
            minlength=image.size,
        ).reshape(padded)
        if not exact:
            variance = float(np.mean(width**2)) + 1.0 / 12.0 - _SHARED_VARIANCE
            splat = _blur(splat.astype(np.float32), variance)
        image += splat
    return np.ascontiguousarray(image[pad : pad + rows, pad : pad + cols])


def _shared_taps(offset):
    """Share points ``offset`` from a pixel's centre between pixels -1, 0, +1.

    The weights have mean ``offset`` and variance 1/4 for every offset in
    [-0.5, 0.5]: the smallest variance that keeps all three weights >= 0.
    """
    square = offset**2 + _SHARED_VARIANCE
    return np.stack(
        [(square - offset) / 2, 1.0 - square, (square + offset) / 2], axis=1
    )


def _gaussian_taps(offset, width, half):
    """Integrals of Gaussians over pixels ``-half`` to ``half``, summing to 1.

    The windows reach at least 2 pixels and 3.5 widths past the point, so
    under 1 % of a Gaussian falls beyond them; keeping the sum at 1 moves its
    centroid by < 0.02 pixel.
    """
    edges = np.arange(-half - 0.5, half + 1.0)
    inside = np.diff(special.ndtr((edges - offset[:, None]) / width[:, None]), axis=1)
    return inside / inside.sum(axis=1, keepdims=True)


def _blur(image, t):
    """Blur along both axes by a kernel of sum 1 and variance ``t`` pixel²."""
    if t <= 0:
        return image
    kernel = _gaussian_kernel(t)
    radius = kernel.size // 2
    for axis in (0, 1):
        if radius <= _MAX_DIRECT_RADIUS:
            image = ndimage.correlate1d(image, kernel, axis=axis, mode="constant")
        else:
            shape = [1, 1]
            shape[axis] = kernel.size
            image = signal.oaconvolve(
                image, kernel.reshape(shape).astype(np.float32), mode="same", axes=axis
            ).astype(np.float32)
    return image


def _gaussian_kernel(t):
    """Return a sampled Gaussian of sum 1 whose variance is exactly ``t``.

    Sampling and normalizing shrinks the variance of Gaussians narrower than
    about one pixel, so their width is solved for; below ``t = 1/4`` the
    kernel is ``[t/2, 1 - t, t/2]``, the only 3-tap one of variance ``t``.
    """
    if t < 0.25:
        return np.array([t / 2, 1.0 - t, t / 2])
    radius = math.ceil(4.0 * math.sqrt(t))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)

    def sampled(width):
        kernel = np.exp(-0.5 * (offsets / width) ** 2)
        return kernel / kernel.sum()

    if t < 1.0:
        width = optimize.brentq(
            lambda w: sampled(w) @ offsets**2 - t, 0.3, 1.5, xtol=1e-10
        )
    else:  # the sampled variance is within 1e-6 of t already
        width = math.sqrt(t)
    return sampled(width)


def auto_contrast(image, *, percentile=99.5, gamma=1.0):
    """Scale an image to ``[0, 1]`` so that its structure shows.

    The ``percentile`` of the positive pixels maps to 1 and anything brighter
    saturates, like Picasso's auto contrast: a super-resolved image is mostly
    empty, so a percentile over all pixels would be 0. Zero and negative
    pixels (and NaN) map to 0. ``gamma < 1`` brightens faint structure.

    Parameters
    ----------
    image : array-like
        A rendered image (any shape).
    percentile : float, default=99.5
        Percentile, in ``(0, 100]``, of the positive pixels that maps to 1.
    gamma : float, default=1.0
        Exponent applied after scaling.

    Returns
    -------
    scaled : ndarray of the shape of ``image``, dtype float32
        Values in ``[0, 1]``; all zeros when no pixel is positive.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.rendering import auto_contrast
    >>> auto_contrast(np.array([[0.0, 1.0], [2.0, 4.0]]), percentile=50)
    array([[0. , 0.5],
           [1. , 1. ]], dtype=float32)
    """
    image = np.asarray(image, dtype=np.float64)
    percentile = float(check_positive(percentile, "percentile"))
    if percentile > 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}.")
    gamma = float(check_positive(gamma, "gamma"))
    positive = image[image > 0]
    positive = positive[np.isfinite(positive)]
    if positive.size == 0:
        return np.zeros(image.shape, np.float32)
    top = np.percentile(positive, percentile)
    scaled = np.clip(np.nan_to_num(image / top, nan=0.0), 0.0, 1.0)
    if gamma != 1.0:
        scaled **= gamma
    return scaled.astype(np.float32)


def save_image(
    image,
    path,
    *,
    cmap="hot",
    percentile=99.5,
    scale_bar_nm=None,
    pixel_size_nm=None,
):
    """Save a rendered image as a colour PNG or a float32 TIFF.

    The format follows the extension of ``path``:

    - ``.png``: 8-bit RGB after :func:`auto_contrast`, coloured with ``cmap``,
      for viewing; with ``scale_bar_nm`` and ``pixel_size_nm`` a white scale
      bar is drawn into the bottom-right corner. Needs matplotlib.
    - ``.tif`` / ``.tiff``: the raw values as 32-bit float, with the pixel
      size (when given) in the resolution tags and ImageJ metadata (unit µm),
      so that Fiji shows the right scale. ``cmap``, ``percentile`` and
      ``scale_bar_nm`` do not apply.

    The file is written to a temporary file in the same folder, then moved
    over ``path``, so a failed save never leaves a half-written image.

    Parameters
    ----------
    image : array-like of shape (rows, cols)
        The image, e.g. from :func:`render`.
    path : str or path-like
        Destination; the folder must exist.
    cmap : str, default="hot"
        Matplotlib colour map of the PNG, e.g. ``"hot"``, ``"magma"`` or
        ``"gray"``.
    percentile : float, default=99.5
        Passed to :func:`auto_contrast` for the PNG.
    scale_bar_nm : float, optional
        Length of the PNG's scale bar, in nanometres; needs ``pixel_size_nm``.
    pixel_size_nm : float, optional
        Size of an image pixel, in nanometres.

    Returns
    -------
    path : pathlib.Path
        The written file.

    Raises
    ------
    ValueError
        For an unsupported extension, an image that is not 2-D or not finite,
        an unknown colour map, or a scale bar without pixel size or wider
        than the image; in each case before anything is written.
    ImportError
        For a PNG when matplotlib is not installed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np, tifffile
    >>> from sklearn_smlm.rendering import save_image
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = save_image(np.eye(3), folder / "render.tif", pixel_size_nm=10.0)
    >>> tifffile.imread(path).dtype
    dtype('float32')
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".tif", ".tiff"):
        raise ValueError(
            f"cannot save {str(path)!r}: the extension must be .png (colour "
            "image for viewing) or .tif/.tiff (32-bit float values)."
        )
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(
            f"image must be a non-empty 2-D array, got shape {image.shape}."
        )
    if not (np.issubdtype(image.dtype, np.number) and np.isfinite(image).all()):
        raise ValueError("image must hold finite real numbers.")
    if pixel_size_nm is not None:
        pixel_size_nm = float(check_positive(pixel_size_nm, "pixel_size_nm"))
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder {str(path.parent)!r} does not exist.")

    if suffix == ".png":
        rgb, description = _colour_png(
            image, cmap, percentile, scale_bar_nm, pixel_size_nm
        )
        from matplotlib.image import imsave

        metadata = {"Software": "sklearn-smlm", "Description": description}
        return _atomic_write(
            path,
            lambda f: imsave(f, rgb, format="png", metadata=metadata),
        )

    import tifffile

    data = image.astype(np.float32)
    options = {"imagej": True, "photometric": "minisblack"}
    if pixel_size_nm is not None:
        pixels_per_um = 1000.0 / pixel_size_nm
        options["resolution"] = (pixels_per_um, pixels_per_um)
        options["metadata"] = {"unit": "um"}
    return _atomic_write(path, lambda f: tifffile.imwrite(f, data, **options))


def _colour_png(image, cmap, percentile, scale_bar_nm, pixel_size_nm):
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"saving a PNG needs matplotlib; {_PLOT_HINT}.") from exc
    try:
        colour_map = matplotlib.colormaps[cmap]
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"cmap={cmap!r} is not a matplotlib colour map; try 'hot', 'magma' "
            "or 'gray'."
        ) from exc
    rows, cols = image.shape
    rgba = colour_map(auto_contrast(image, percentile=percentile), bytes=True)
    rgba[..., 3] = 255
    description = f"{rows} x {cols} pixels"
    if pixel_size_nm is not None:
        description += f", pixel size {pixel_size_nm:g} nm"
    if scale_bar_nm is not None:
        if pixel_size_nm is None:
            raise ValueError("scale_bar_nm needs pixel_size_nm to know its length.")
        scale_bar_nm = float(check_positive(scale_bar_nm, "scale_bar_nm"))
        length = round(scale_bar_nm / pixel_size_nm)
        margin = max(1, round(0.04 * min(rows, cols)))
        thickness = max(1, round(0.015 * rows))
        if length < 1 or length > cols - 2 * margin or thickness > rows - 2 * margin:
            raise ValueError(
                f"a scale bar of {scale_bar_nm:g} nm is {length} pixel(s) long at "
                f"{pixel_size_nm:g} nm per pixel; it must be between 1 and "
                f"{cols - 2 * margin} pixels to fit the image."
            )
        rgba[
            rows - margin - thickness : rows - margin,
            cols - margin - length : cols - margin,
            :3,
        ] = 255
        description += f", scale bar {scale_bar_nm:g} nm"
    return rgba, description


def _atomic_write(path, write):
    with atomic_path(path) as temporary:
        write(Path(temporary))
    return path


def plot_localizations(
    table, *, frame=None, image=None, pixel_size_nm=100.0, ax=None, truth=None
):
    """Overlay localizations (and true positions) on a camera frame.

    Markers are placed in camera-pixel units as :func:`matplotlib.pyplot.imshow`
    draws the frame: camera pixel ``(row, col)`` has its centre at
    ``x_nm = (col + 0.5) * pixel_size_nm``, which imshow puts at ``x = col``,
    so a localization is drawn at ``x_nm / pixel_size_nm - 0.5``.

    Parameters
    ----------
    table : pandas.DataFrame
        Localization table (columns ``frame``, ``x_nm``, ``y_nm``).
    frame : int, optional
        Show only this frame's localizations (and truth, when it is a table).
        Default: all rows.
    image : array-like of shape (height, width) or (n_frames, height, width), optional
        Camera frame to show underneath, in grey; from a stack, ``frame`` picks
        the frame.
    pixel_size_nm : float, default=100.0
        Camera pixel size, in nanometres.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.
    truth : pandas.DataFrame or array-like of shape (k, 2), optional
        True positions ``(x_nm, y_nm)``, drawn as open circles.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np, pandas as pd
    >>> from sklearn_smlm.rendering import plot_localizations
    >>> table = pd.DataFrame({"frame": [0], "x_nm": [250.0], "y_nm": [150.0]})
    >>> ax = plot_localizations(table, image=np.zeros((4, 4)), frame=0)
    >>> ax.lines[0].get_xydata().tolist()
    [[2.0, 1.0]]
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"plot_localizations needs matplotlib; {_PLOT_HINT}."
        ) from exc
    table = validate_localizations(table, copy=False)
    pixel_size_nm = float(check_positive(pixel_size_nm, "pixel_size_nm"))
    if frame is not None:
        frame = int(check_positive(frame, "frame", integer=True, allow_zero=True))
        table = table[table["frame"].to_numpy() == frame]
    if ax is None:
        _, ax = plt.subplots()

    if image is not None:
        image = np.asarray(image)
        if image.ndim == 3:
            if frame is None:
                raise ValueError("image is a stack of frames; pass frame= to pick one.")
            image = image[frame]
        if image.ndim != 2:
            raise ValueError(
                "image must be one camera frame (height, width) or a stack "
                f"(n_frames, height, width), got shape {image.shape}."
            )
        ax.imshow(image, cmap="gray")
    if truth is not None:
        if isinstance(truth, pd.DataFrame):
            truth = validate_localizations(truth, name="truth", copy=False)
            if frame is not None:
                truth = truth[truth["frame"].to_numpy() == frame]
            truth = truth[["x_nm", "y_nm"]].to_numpy()
        truth = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
        ax.plot(
            truth[:, 0] / pixel_size_nm - 0.5,
            truth[:, 1] / pixel_size_nm - 0.5,
            "o",
            markerfacecolor="none",
            markeredgecolor="lime",
            markersize=10,
            linestyle="none",
            label="truth",
        )
    ax.plot(
        table["x_nm"].to_numpy() / pixel_size_nm - 0.5,
        table["y_nm"].to_numpy() / pixel_size_nm - 0.5,
        "+",
        color="red",
        markersize=10,
        linestyle="none",
        label="localizations",
    )
    if image is None:
        ax.set_aspect("equal")
        if not ax.yaxis_inverted():
            ax.invert_yaxis()
    ax.set_xlabel("x (camera pixels)")
    ax.set_ylabel("y (camera pixels)")
    ax.legend(loc="upper right", fontsize="small")
    return ax


# ------------------------------------------------------------------- 3D
def _z_values(table, z_range_nm):
    if "z_nm" not in table:
        raise ValueError(
            "the table has no 'z_nm' column; depth rendering needs 3D "
            "localizations (e.g. from AstigmaticFitLocalizer)."
        )
    z = _per_row("z_nm", table, "z_nm")
    if z_range_nm is None:
        if len(z) == 0:
            raise ValueError("cannot choose the depth range of an empty table.")
        lo, hi = np.percentile(z, [0.5, 99.5])
        if hi <= lo:
            lo, hi = lo - 1.0, hi + 1.0
        return z, (float(lo), float(hi))
    lo, hi = _pair(z_range_nm, "z_range_nm", positive=False)
    if not lo < hi:
        raise ValueError(f"z_range_nm must have low < high, got {z_range_nm!r}.")
    return z, (lo, hi)


def render_depth(
    table,
    *,
    pixel_size_nm=10.0,
    z_range_nm=None,
    cmap="turbo",
    method="histogram",
    sigma_nm=None,
    field_of_view_nm=None,
    origin_nm=(0, 0),
    percentile=99.5,
):
    """Render a 3D table as an RGB image coloured by depth.

    Each pixel's brightness is its localization density (after
    :func:`auto_contrast`) and its colour the mean ``z_nm`` of the
    localizations in it, mapped through ``cmap`` over ``z_range_nm``
    (depths beyond the range take the end colours). Pixel layout and the
    other parameters as in :func:`render`.

    Parameters
    ----------
    table : pandas.DataFrame
        Localizations with ``frame``, ``x_nm``, ``y_nm`` and ``z_nm``.
    pixel_size_nm : float, default=10.0
    z_range_nm : (float, float), optional
        Depths mapped to the two ends of the colour map; default the 0.5th
        and 99.5th percentiles of ``z_nm``.
    cmap : str, default="turbo"
        Matplotlib colour map.
    method, sigma_nm, field_of_view_nm, origin_nm
        As in :func:`render`.
    percentile : float, default=99.5
        Contrast of the brightness (:func:`auto_contrast`).

    Returns
    -------
    rgb : ndarray of shape (rows, cols, 3), float32 in [0, 1]
    z_range_nm : (float, float)
        The depths of the colour map's ends, for a colour bar.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_smlm.rendering import render_depth
    >>> table = pd.DataFrame({"frame": [0, 0], "x_nm": [5.0, 25.0],
    ...                       "y_nm": [5.0, 5.0], "z_nm": [-300.0, 300.0]})
    >>> rgb, zr = render_depth(table, field_of_view_nm=(30.0, 10.0),
    ...                        z_range_nm=(-300, 300), cmap="coolwarm")
    >>> rgb.shape, bool(rgb[0, 0, 2] > rgb[0, 0, 0]), bool(rgb[0, 2, 0] > rgb[0, 2, 2])
    ((1, 3, 3), True, True)
    """
    import matplotlib

    table = validate_localizations(table, copy=False)
    z, (lo, hi) = _z_values(table, z_range_nm)
    try:
        colour_map = matplotlib.colormaps[cmap]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"cmap={cmap!r} is not a matplotlib colour map.") from exc
    options = dict(
        pixel_size_nm=pixel_size_nm,
        method=method,
        sigma_nm=sigma_nm,
        field_of_view_nm=field_of_view_nm,
        origin_nm=origin_nm,
    )
    density = render(table, **options)
    z_sum = render(table, weights=np.clip((z - lo) / (hi - lo), 0.0, 1.0), **options)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(density > 0, z_sum / density, 0.0)
    colour = colour_map(np.clip(mean, 0.0, 1.0))[..., :3]
    brightness = auto_contrast(density, percentile=percentile)
    return (colour * brightness[..., None]).astype(np.float32), (lo, hi)


def render_side_view(
    table,
    *,
    pixel_size_nm=10.0,
    axis="x",
    z_range_nm=None,
    slab_nm=None,
    method="histogram",
    sigma_nm=None,
    lateral_range_nm=None,
):
    """Render a side view: localizations projected onto the x-z (or y-z) plane.

    Row ``i`` of the image covers ``z`` in ``[z0 + i * px, z0 + (i + 1) * px)``
    (``z0`` the low end of ``z_range_nm``, so depth grows downwards), column
    ``j`` the lateral coordinate ``axis`` from ``lateral_range_nm[0]``.

    Parameters
    ----------
    table : pandas.DataFrame
        Localizations with ``z_nm``.
    pixel_size_nm : float, default=10.0
    axis : {"x", "y"}, default="x"
        Lateral axis of the view.
    z_range_nm : (float, float), optional
        Depths shown; default the range of ``z_nm`` (0.5th to 99.5th
        percentile).
    slab_nm : (float, float), optional
        Keep only localizations whose other lateral coordinate lies in this
        range (a slab through the sample); default all.
    method, sigma_nm
        As in :func:`render`.
    lateral_range_nm : (float, float), optional
        Lateral extent; default from 0 to the largest coordinate.

    Returns
    -------
    image : ndarray of shape (rows, cols), float32
    extent : (float, float, float, float)
        ``(left, right, bottom, top)`` in nm, for ``matplotlib.imshow``.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_smlm.rendering import render_side_view
    >>> table = pd.DataFrame({"frame": [0, 0], "x_nm": [5.0, 25.0],
    ...                       "y_nm": [0.0, 0.0], "z_nm": [-15.0, 5.0]})
    >>> image, extent = render_side_view(table, z_range_nm=(-20, 20),
    ...                                  lateral_range_nm=(0, 30))
    >>> image.tolist()  # z = -15 in row 0, z = 5 in row 2
    [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    >>> extent
    (0.0, 30.0, 20.0, -20.0)
    """
    table = validate_localizations(table, copy=False)
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}.")
    z, (lo, hi) = _z_values(table, z_range_nm)
    other = "y_nm" if axis == "x" else "x_nm"
    keep = np.ones(len(table), dtype=bool)
    if slab_nm is not None:
        a, b = _pair(slab_nm, "slab_nm", positive=False)
        values = table[other].to_numpy()
        keep = (values >= a) & (values < b)
    lateral = table[f"{axis}_nm"].to_numpy()
    if lateral_range_nm is None:
        left = 0.0
        right = float(lateral.max()) + pixel_size_nm if len(lateral) else pixel_size_nm
    else:
        left, right = _pair(lateral_range_nm, "lateral_range_nm", positive=False)
    view = pd.DataFrame(
        {
            "frame": table["frame"].to_numpy()[keep],
            "x_nm": lateral[keep],
            "y_nm": z[keep],
        }
    )
    if isinstance(sigma_nm, str):
        sigma_nm = table[sigma_nm].to_numpy()[keep]
    elif sigma_nm is not None and np.ndim(sigma_nm) > 0:
        sigma_nm = np.asarray(sigma_nm)[keep]
    image = render(
        view,
        pixel_size_nm=pixel_size_nm,
        method=method,
        sigma_nm=sigma_nm,
        field_of_view_nm=(right - left, hi - lo),
        origin_nm=(left, lo),
    )
    return image, (left, right, hi, lo)


def plot_depth(
    table,
    *,
    pixel_size_nm=10.0,
    z_range_nm=None,
    cmap="turbo",
    side_view=True,
    field_of_view_nm=None,
    path=None,
):
    """Figure of a 3D table: depth-coloured top view with a colour bar and an x-z view.

    Parameters
    ----------
    table : pandas.DataFrame
        Localizations with ``z_nm``.
    pixel_size_nm : float, default=10.0
    z_range_nm : (float, float), optional
        Colour range (see :func:`render_depth`).
    cmap : str, default="turbo"
    side_view : bool, default=True
        Add the x-z side view (:func:`render_side_view`) below the top view.
    field_of_view_nm : (float, float), optional
        As in :func:`render`.
    path : str or path-like, optional
        Save the figure there (e.g. a PNG).

    Returns
    -------
    fig : matplotlib Figure
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"plot_depth needs matplotlib; {_PLOT_HINT}.") from exc
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    rgb, (lo, hi) = render_depth(
        table,
        pixel_size_nm=pixel_size_nm,
        z_range_nm=z_range_nm,
        cmap=cmap,
        field_of_view_nm=field_of_view_nm,
    )
    rows, cols = rgb.shape[:2]
    width_nm, height_nm = cols * pixel_size_nm, rows * pixel_size_nm
    if side_view:
        fig, (ax, ax_side) = plt.subplots(
            2,
            1,
            figsize=(6.5, 5.0 * (height_nm + (hi - lo)) / width_nm + 1.0),
            height_ratios=[height_nm, max(hi - lo, 0.15 * height_nm)],
            layout="constrained",
        )
    else:
        fig, ax = plt.subplots(figsize=(6, 6 * height_nm / width_nm + 0.5))
    ax.imshow(rgb, extent=(0, width_nm, height_nm, 0))
    ax.set_xlabel("x (nm)")
    ax.set_ylabel("y (nm)")
    ax.set_facecolor("black")
    bar = fig.colorbar(
        ScalarMappable(norm=Normalize(lo, hi), cmap=cmap), ax=ax, shrink=0.8
    )
    bar.set_label("z (nm)")
    if side_view:
        image, extent = render_side_view(
            table,
            pixel_size_nm=pixel_size_nm,
            z_range_nm=(lo, hi),
            lateral_range_nm=(0.0, width_nm),
        )
        ax_side.imshow(auto_contrast(image), cmap="hot", extent=extent, aspect="equal")
        ax_side.set_xlabel("x (nm)")
        ax_side.set_ylabel("z (nm)")
    if path is not None:
        fig.savefig(path, dpi=150)
    return fig
