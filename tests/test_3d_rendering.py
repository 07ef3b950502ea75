"""Tests of the depth-coloured rendering and the side view."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from sklearn_smlm.rendering import plot_depth, render, render_depth, render_side_view

matplotlib.use("Agg")


def _table():
    return pd.DataFrame(
        {
            "frame": [0, 0, 0, 1],
            "x_nm": [15.0, 15.0, 55.0, 95.0],
            "y_nm": [5.0, 5.0, 25.0, 35.0],
            "z_nm": [-400.0, 0.0, 400.0, 0.0],
        }
    )


def test_render_depth_colours_by_mean_depth():
    import matplotlib as mpl

    table = _table()
    rgb, z_range = render_depth(
        table,
        pixel_size_nm=10.0,
        z_range_nm=(-400, 400),
        cmap="viridis",
        field_of_view_nm=(100.0, 40.0),
    )
    assert z_range == (-400.0, 400.0)
    assert rgb.shape == (4, 10, 3) and rgb.dtype == np.float32
    cmap = mpl.colormaps["viridis"]
    # pixel (0, 1) holds z = -400 and 0: mean -200 -> 0.25 of the map, and the
    # densest pixel of the image: full brightness
    np.testing.assert_allclose(rgb[0, 1], cmap(0.25)[:3], atol=1e-6)
    # pixel (2, 5) holds one localization at +400: the top of the map, at the
    # brightness auto_contrast gives a count of 1 next to a count of 2
    density = render(table, pixel_size_nm=10.0, field_of_view_nm=(100.0, 40.0))
    from sklearn_smlm.rendering import auto_contrast

    level = auto_contrast(density)[2, 5]
    np.testing.assert_allclose(rgb[2, 5], np.array(cmap(1.0)[:3]) * level, atol=1e-6)
    assert (rgb[1] == 0).all()  # empty row stays black


def test_render_depth_needs_z_and_valid_range():
    with pytest.raises(ValueError, match="no 'z_nm' column"):
        render_depth(_table().drop(columns="z_nm"))
    with pytest.raises(ValueError, match="low < high"):
        render_depth(_table(), z_range_nm=(10, -10))
    _, z_range = render_depth(_table())
    assert z_range[0] == pytest.approx(np.percentile([-400, 0, 400, 0], 0.5))


def test_side_view_counts_and_slab():
    table = _table()
    image, extent = render_side_view(
        table, pixel_size_nm=100.0, z_range_nm=(-500, 500), lateral_range_nm=(0, 100)
    )
    assert image.shape == (10, 1) and image.sum() == 4
    # z = -400 -> row 1, z = 0 -> row 5, z = 400 -> row 9
    assert image[:, 0].tolist() == [0, 1, 0, 0, 0, 2, 0, 0, 0, 1]
    assert extent == (0.0, 100.0, 500.0, -500.0)
    slab, _ = render_side_view(
        table,
        pixel_size_nm=100.0,
        z_range_nm=(-500, 500),
        lateral_range_nm=(0, 100),
        slab_nm=(0, 10),
    )
    assert slab.sum() == 2
    y_view, _ = render_side_view(
        table,
        axis="y",
        pixel_size_nm=10.0,
        z_range_nm=(-500, 500),
        lateral_range_nm=(0, 40),
    )
    assert y_view.shape == (100, 4) and y_view[90, 2] == 1  # y 25, z 400
    with pytest.raises(ValueError, match="axis"):
        render_side_view(table, axis="z")


def test_plot_depth_writes_a_figure_with_colour_bar(tmp_path):
    import matplotlib.pyplot as plt

    fig = plot_depth(
        _table(),
        pixel_size_nm=10.0,
        field_of_view_nm=(100.0, 40.0),
        path=tmp_path / "depth.png",
    )
    assert (tmp_path / "depth.png").read_bytes()[:4] == b"\x89PNG"
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "z (nm)" in labels  # the colour bar and the side view
    assert len(fig.axes) == 3
    plt.close(fig)
