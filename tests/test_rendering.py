import os

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import tifffile  # noqa: E402
from scipy.special import erf  # noqa: E402

from sklearn_smlm.rendering import (  # noqa: E402
    auto_contrast,
    plot_localizations,
    render,
    save_image,
)


def _table(x, y, **columns):
    x = np.atleast_1d(np.asarray(x, dtype=float))
    y = np.atleast_1d(np.asarray(y, dtype=float))
    return pd.DataFrame({"frame": np.zeros(len(x), np.int64), "x_nm": x, "y_nm": y})


def _pixel_integrals(x_nm, y_nm, sigma_nm, pixel_size_nm, shape):
    """Integral of a normalized 2-D Gaussian over each pixel, by erf."""
    edges_x = np.arange(shape[1] + 1) * pixel_size_nm
    edges_y = np.arange(shape[0] + 1) * pixel_size_nm
    gx = np.diff(0.5 * erf((edges_x - x_nm) / (np.sqrt(2) * sigma_nm)))
    gy = np.diff(0.5 * erf((edges_y - y_nm) / (np.sqrt(2) * sigma_nm)))
    return np.outer(gy, gx)


def _centroid_nm(image, pixel_size_nm):
    rows, cols = np.indices(image.shape)
    total = image.sum(dtype=np.float64)
    x = ((cols + 0.5) * image).sum(dtype=np.float64) / total * pixel_size_nm
    y = ((rows + 0.5) * image).sum(dtype=np.float64) / total * pixel_size_nm
    return x, y


# --- histogram ---------------------------------------------------------------


def test_single_localization_lands_in_hand_computed_pixel():
    # x = 123.4 nm at 10 nm pixels from origin 20 nm: (123.4 - 20) / 10 = 10.34
    # -> column 10; y = 57.0 from origin -5: 62 / 10 = 6.2 -> row 6.
    image = render(
        _table(123.4, 57.0),
        pixel_size_nm=10.0,
        field_of_view_nm=(200.0, 100.0),
        origin_nm=(20.0, -5.0),
    )
    assert image.shape == (10, 20)
    assert image.dtype == np.float32
    assert image[6, 10] == 1.0
    assert image.sum() == 1.0


def test_pixel_edges_belong_to_the_next_pixel():
    # Pixel j covers [j * px, (j + 1) * px): x = 20 is the left edge of column 2.
    image = render(_table([20.0, 19.999], [0.0, 0.0]), field_of_view_nm=(40, 10))
    np.testing.assert_array_equal(image, [[0, 1, 1, 0]])


def test_histogram_counts_only_localizations_inside_the_field():
    rng = np.random.default_rng(0)
    x = rng.uniform(-100, 1100, 5000)
    y = rng.uniform(-100, 600, 5000)
    image = render(_table(x, y), pixel_size_nm=20.0, field_of_view_nm=(1000, 500))
    assert image.shape == (25, 50)
    inside = (x >= 0) & (x < 1000) & (y >= 0) & (y < 500)
    assert image.sum() == inside.sum()
    # Independent route: numpy's own 2-D histogram with the same edges.
    expected, _, _ = np.histogram2d(
        y[inside], x[inside], bins=[np.arange(0, 501, 20), np.arange(0, 1001, 20)]
    )
    np.testing.assert_array_equal(image, expected)


def test_field_of_view_rounds_up_to_whole_pixels():
    image = render(_table(5.0, 5.0), pixel_size_nm=10.0, field_of_view_nm=(25, 1.1))
    assert image.shape == (1, 3)
    # 1.1 / 0.1 is 11.000000000000002 in floating point: still 11 pixels.
    image = render(_table(0.05, 0.05), pixel_size_nm=0.1, field_of_view_nm=(1.1, 1.1))
    assert image.shape == (11, 11)


def test_default_field_of_view_holds_the_largest_position():
    # max x = 100 nm lies on the edge of column 10, so 11 columns are needed.
    image = render(_table([0.0, 100.0], [35.0, 5.0]), pixel_size_nm=10.0)
    assert image.shape == (4, 11)
    assert image[0, 10] == 1 and image[3, 0] == 1


def test_weights_from_array_and_column():
    table = _table([5.0, 15.0, 15.0], [5.0, 5.0, 5.0])
    table["photons"] = [100.0, 20.0, 30.0]
    by_column = render(table, field_of_view_nm=(20, 10), weights="photons")
    np.testing.assert_array_equal(by_column, [[100.0, 50.0]])
    by_array = render(table, field_of_view_nm=(20, 10), weights=[1.0, 2.0, 3.0])
    np.testing.assert_array_equal(by_array, [[1.0, 5.0]])
    with pytest.raises(ValueError, match="one value per localization"):
        render(table, field_of_view_nm=(20, 10), weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="names no column"):
        render(table, field_of_view_nm=(20, 10), weights="intensity")


def test_empty_table():
    empty = _table([], [])
    image = render(empty, pixel_size_nm=10.0, field_of_view_nm=(50, 30))
    np.testing.assert_array_equal(image, np.zeros((3, 5), np.float32))
    image = render(empty, method="gaussian", field_of_view_nm=(50, 30))
    np.testing.assert_array_equal(image, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="field_of_view_nm"):
        render(empty)


def test_bad_arguments_are_named():
    table = _table(5.0, 5.0)
    with pytest.raises(ValueError, match="method"):
        render(table, method="splat")
    with pytest.raises(ValueError, match="pixel_size_nm"):
        render(table, pixel_size_nm=0)
    with pytest.raises(ValueError, match="field_of_view_nm"):
        render(table, field_of_view_nm=(10, -1))
    with pytest.raises(ValueError, match="sigma_nm is only used"):
        render(table, sigma_nm=10.0)
    with pytest.raises(ValueError, match="left of or above"):
        render(table, origin_nm=(100, 100))
    with pytest.raises(ValueError, match="pixels; increase pixel_size_nm"):
        render(table, pixel_size_nm=0.001, field_of_view_nm=(1e5, 1e5))
    with pytest.raises(ValueError, match="missing the column"):
        render(pd.DataFrame({"x_nm": [1.0], "y_nm": [1.0]}))


# --- gaussian ----------------------------------------------------------------


@pytest.mark.parametrize("sigma_nm", [4.0, 10.0, 25.0])
@pytest.mark.parametrize("position", [(503.0, 507.5), (481.3, 512.9)])
def test_single_gaussian_matches_pixel_integrals(sigma_nm, position):
    image = render(
        _table(*position),
        method="gaussian",
        sigma_nm=sigma_nm,
        pixel_size_nm=10.0,
        field_of_view_nm=(1000, 1000),
    )
    assert abs(image.sum(dtype=np.float64) - 1.0) < 0.01
    expected = _pixel_integrals(*position, sigma_nm, 10.0, image.shape)
    np.testing.assert_allclose(image, expected, atol=0.01 * expected.max())
    if sigma_nm >= 10:  # narrower ones are centred on their pixel by integration
        x, y = _centroid_nm(image, 10.0)
        assert abs(x - position[0]) < 1.0 and abs(y - position[1]) < 1.0


def test_many_gaussians_integrate_to_count_and_keep_centroids():
    # Enough localizations of one width that they are blurred as a group
    # rather than drawn one window each; each cluster keeps its centroid.
    rng = np.random.default_rng(1)
    centres = np.array([[300.0, 300.0], [700.0, 650.0]])
    x = np.repeat(centres[:, 0], 400) + rng.normal(0, 15, 800)
    y = np.repeat(centres[:, 1], 400) + rng.normal(0, 15, 800)
    image = render(
        _table(x, y),
        method="gaussian",
        sigma_nm=20.0,
        pixel_size_nm=10.0,
        field_of_view_nm=(1000, 1000),
    )
    assert image.sum(dtype=np.float64) == pytest.approx(800, rel=0.01)
    for k, half in enumerate([slice(0, 50), slice(50, 100)]):
        # Each cluster lies in its own half of the image.
        part = np.zeros_like(image)
        part[half] = image[half]
        cx, cy = _centroid_nm(part, 10.0)
        members = slice(400 * k, 400 * (k + 1))
        assert abs(cx - x[members].mean()) < 1.0  # 0.1 render pixel
        assert abs(cy - y[members].mean()) < 1.0


def test_grouped_blur_agrees_with_single_windows():
    rng = np.random.default_rng(2)
    x = rng.uniform(50, 550, 300)
    y = rng.uniform(50, 550, 300)
    kwargs = dict(method="gaussian", pixel_size_nm=10.0, field_of_view_nm=(600, 600))
    together = render(_table(x, y), sigma_nm=15.0, **kwargs)
    one_by_one = sum(
        render(_table(a, b), sigma_nm=15.0, **kwargs) for a, b in zip(x, y, strict=True)
    )
    np.testing.assert_allclose(together, one_by_one, atol=0.005 * one_by_one.max())


def test_per_row_sigma_from_column_array_and_default():
    table = _table([200.0, 600.0], [200.0, 200.0])
    table["uncertainty_nm"] = [10.0, 30.0]
    kwargs = dict(method="gaussian", pixel_size_nm=10.0, field_of_view_nm=(800, 400))
    image = render(table, **kwargs)  # widths from uncertainty_nm
    expected = _pixel_integrals(200.0, 200.0, 10.0, 10.0, image.shape)
    expected += _pixel_integrals(600.0, 200.0, 30.0, 10.0, image.shape)
    np.testing.assert_allclose(image, expected, atol=0.01 * expected.max())
    np.testing.assert_array_equal(image, render(table, sigma_nm=[10.0, 30.0], **kwargs))
    # Each half holds one Gaussian of integral 1 whose variance is sigma^2 plus
    # the px^2 / 12 that integrating over pixels adds.
    cols = (np.arange(image.shape[1]) + 0.5) * 10.0
    for half, x0, sigma in [(slice(0, 40), 200.0, 10.0), (slice(40, 80), 600.0, 30.0)]:
        profile = image[:, half].sum(axis=0, dtype=np.float64)
        assert profile.sum() == pytest.approx(1.0, abs=0.01)
        variance = (profile * (cols[half] - x0) ** 2).sum()
        assert variance == pytest.approx(sigma**2 + 100.0 / 12.0, rel=0.02)
    # Without the column, 20 nm for all.
    no_column = render(table.drop(columns="uncertainty_nm"), **kwargs)
    np.testing.assert_array_equal(no_column, render(table, sigma_nm=20.0, **kwargs))


def test_bad_widths_raise():
    table = _table([100.0, 200.0], [100.0, 100.0])
    table["uncertainty_nm"] = [10.0, np.nan]
    with pytest.raises(ValueError, match="NaN"):
        render(table, method="gaussian")
    with pytest.raises(ValueError, match="must be > 0"):
        render(table, method="gaussian", sigma_nm=[10.0, 0.0])
    with pytest.raises(ValueError, match="sigma_nm"):
        render(table, method="gaussian", sigma_nm=-1.0)


def test_gaussian_weights_scale_the_integral():
    table = _table([300.0, 500.0], [300.0, 300.0])
    image = render(
        table,
        method="gaussian",
        sigma_nm=20.0,
        weights=[2.0, 3.5],
        field_of_view_nm=(800, 600),
    )
    assert image.sum(dtype=np.float64) == pytest.approx(5.5, rel=0.01)


# --- auto_contrast -----------------------------------------------------------


def test_auto_contrast_saturates_top_percentile_of_nonzero_pixels():
    image = np.zeros((10, 10))
    image[0, :5] = [1, 2, 3, 4, 100]  # 95 zero pixels must not matter
    scaled = auto_contrast(image, percentile=75)
    # 75th percentile of [1, 2, 3, 4, 100] is 4.
    np.testing.assert_allclose(scaled[0, :5], [0.25, 0.5, 0.75, 1.0, 1.0])
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    assert scaled.dtype == np.float32
    gamma = auto_contrast(image, percentile=75, gamma=0.5)
    np.testing.assert_allclose(gamma[0, :2], [0.5, np.sqrt(0.5)], rtol=1e-6)


def test_auto_contrast_handles_empty_and_odd_images():
    np.testing.assert_array_equal(auto_contrast(np.zeros((3, 4))), np.zeros((3, 4)))
    odd = np.array([[-1.0, np.nan], [2.0, 0.0]])
    np.testing.assert_array_equal(auto_contrast(odd), [[0.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="percentile"):
        auto_contrast(odd, percentile=150)


# --- save_image --------------------------------------------------------------


def test_png_written_and_read_back(tmp_path):
    image = np.zeros((40, 60), np.float32)
    image[10, 20] = 5.0
    image[30, 30] = 1.0
    path = save_image(image, tmp_path / "render.png", cmap="gray", percentile=100)
    assert path == tmp_path / "render.png"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (40, 60)
    # gray colour map: the brightest pixel is white, the 1/5 one 20 % grey.
    np.testing.assert_allclose(pixels[10, 20, :3], 1.0)
    np.testing.assert_allclose(pixels[30, 30, :3], 0.2, atol=1 / 255)
    np.testing.assert_allclose(pixels[0, 0, :3], 0.0)
    assert os.listdir(tmp_path) == ["render.png"]


def test_png_scale_bar_is_drawn(tmp_path):
    image = np.zeros((100, 200))
    path = save_image(
        image, tmp_path / "bar.png", scale_bar_nm=500.0, pixel_size_nm=10.0
    )
    pixels = matplotlib.image.imread(path)[..., :3]
    white = np.all(pixels == 1.0, axis=2)
    rows = np.flatnonzero(white.any(axis=1))
    cols = np.flatnonzero(white.any(axis=0))
    assert len(cols) == 50  # 500 nm at 10 nm per pixel
    assert cols.max() < 200 - 1 and rows.max() < 100 - 1  # inside, bottom right
    assert cols.min() > 100 and rows.min() > 50
    with pytest.raises(ValueError, match="needs pixel_size_nm"):
        save_image(image, tmp_path / "x.png", scale_bar_nm=500.0)
    with pytest.raises(ValueError, match="to fit the image"):
        save_image(image, tmp_path / "x.png", scale_bar_nm=1e6, pixel_size_nm=10.0)
    assert sorted(os.listdir(tmp_path)) == ["bar.png"]


def test_tiff_round_trip_with_pixel_size(tmp_path):
    image = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    path = save_image(image, tmp_path / "render.tif", pixel_size_nm=20.0)
    back = tifffile.imread(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, image.astype(np.float32))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["unit"] in ("um", "micron", "\\u00B5m")
        numerator, denominator = tif.pages[0].tags["XResolution"].value
        # 20 nm per pixel = 50 pixels per micrometre.
        assert numerator / denominator == pytest.approx(50.0)
        numerator, denominator = tif.pages[0].tags["YResolution"].value
        assert numerator / denominator == pytest.approx(50.0)
    assert os.listdir(tmp_path) == ["render.tif"]


def test_save_overwrites_atomically_and_cleans_up_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "render.tiff"
    save_image(np.ones((2, 2)), target)
    save_image(np.full((2, 2), 3.0), target)
    np.testing.assert_array_equal(tifffile.imread(target), np.full((2, 2), 3.0))

    def broken_write(*args, **kwargs):
        with open(args[0], "wb") as handle:
            handle.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save_image(np.zeros((2, 2)), target)
    assert os.listdir(tmp_path) == ["render.tiff"]
    np.testing.assert_array_equal(tifffile.imread(target), np.full((2, 2), 3.0))


def test_save_rejects_bad_input_before_writing(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        save_image(np.ones((2, 2)), tmp_path / "render.jpg")
    with pytest.raises(ValueError, match="2-D"):
        save_image(np.ones((2, 2, 2)), tmp_path / "render.png")
    with pytest.raises(ValueError, match="finite"):
        save_image(np.array([[np.nan]]), tmp_path / "render.tif")
    with pytest.raises(ValueError, match="colour map"):
        save_image(np.ones((2, 2)), tmp_path / "render.png", cmap="nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_image(np.ones((2, 2)), tmp_path / "missing" / "render.png")
    assert os.listdir(tmp_path) == []


# --- plot_localizations ------------------------------------------------------


def test_plot_localizations_places_markers_on_camera_pixels():
    import matplotlib.pyplot as plt

    table = pd.DataFrame(
        {"frame": [0, 1, 1], "x_nm": [50.0, 250.0, 0.0], "y_nm": [50.0, 150.0, 0.0]}
    )
    truth = pd.DataFrame({"frame": [1], "x_nm": [260.0], "y_nm": [140.0]})
    stack = np.zeros((2, 4, 5))
    ax = plot_localizations(table, frame=1, image=stack, truth=truth)
    try:
        truth_line, loc_line = ax.lines
        # Pixel (row, col) has its centre at ((col + 0.5) * 100, (row + 0.5) * 100).
        np.testing.assert_allclose(loc_line.get_xydata(), [[2.0, 1.0], [-0.5, -0.5]])
        np.testing.assert_allclose(truth_line.get_xydata(), [[2.1, 0.9]])
        assert len(ax.images) == 1 and ax.images[0].get_array().shape == (4, 5)
    finally:
        plt.close(ax.figure)

    fig, given = plt.subplots()
    try:
        ax = plot_localizations(table, ax=given, truth=np.array([[10.0, 20.0]]))
        assert ax is given
        assert len(ax.lines[1].get_xydata()) == 3
        assert ax.yaxis_inverted()  # same orientation as an image
        with pytest.raises(ValueError, match="frame="):
            plot_localizations(table, ax=given, image=stack)
    finally:
        plt.close(fig)
