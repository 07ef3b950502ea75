import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import erf

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator, tiling
from sklearn_smlm.io import TiffStack, write_stack
from sklearn_smlm.nn import SubPixelCNN
from sklearn_smlm.tiling import (
    _merge_seam_duplicates,
    min_overlap,
    predict_tiled,
    receptive_radius,
    tile_layout,
)


@pytest.fixture(scope="module")
def localizer():
    # 3 layers x 16 channels, 8 epochs: about 4 s; JI@250 nm about 0.87 on
    # sparse 50x70 frames at threshold 300, so isolated spots give one peak.
    X, y = PAFPSimulator(
        frame_shape=(16, 16), density_per_um2=1.0, random_state=0
    ).simulate(64)
    return DistanceTransformLocalizer(
        n_layers=3,
        n_channels=16,
        max_epochs=8,
        batch_size=8,
        lr=3e-3,
        upscaling=3,
        d_max=15.0,
        validation_fraction=0,
        precision="fp32",
        threshold=300.0,
        random_state=0,
    ).fit(X, y)


def _spot(shape, x_nm, y_nm, photons=3000.0, sigma_px=1.1, pixel_size_nm=100.0):
    """Pixel-integrated Gaussian spot on a background of 100 ADU."""
    height, width = shape
    cx, cy = x_nm / pixel_size_nm, y_nm / pixel_size_nm  # pixel edges at integers
    s = np.sqrt(2) * sigma_px
    gx = np.diff(0.5 * erf((np.arange(width + 1) - cx) / s))
    gy = np.diff(0.5 * erf((np.arange(height + 1) - cy) / s))
    return photons * np.outer(gy, gx)


def _same(tiled, whole):
    """Same detections; positions within 1e-3 nm, heights within 1e-5.

    float32 convolutions of a tile and of the whole frame may round
    differently (1e-5 nm on positions was seen), so exact equality is not
    expected, only agreement far below any localization precision.
    """
    return (
        list(tiled.columns) == list(whole.columns)
        and len(tiled) == len(whole)
        and np.array_equal(tiled.frame, whole.frame)
        and np.allclose(
            tiled[["x_nm", "y_nm"]], whole[["x_nm", "y_nm"]], rtol=0, atol=1e-3
        )
        and np.allclose(tiled.score, whole.score, rtol=1e-5, atol=0)
    )


@pytest.mark.parametrize("size", [1, 7, 20, 21, 33, 40, 100, 257, 1000])
@pytest.mark.parametrize("tile_size, overlap", [(20, 4), (24, 11), (64, 0)])
def test_tile_layout_partitions_with_context(size, tile_size, overlap):
    starts, bounds = tile_layout(size, tile_size, overlap)
    width = min(size, tile_size)
    assert bounds[0] == 0 and bounds[-1] == size
    assert np.all(np.diff(bounds) > 0)  # cores are disjoint and cover the axis
    assert len(starts) == len(bounds) - 1
    assert np.all(starts >= 0) and np.all(starts + width <= size)
    for i, start in enumerate(starts):
        lo, hi = bounds[i], bounds[i + 1]
        # each core sees `overlap` pixels of context unless at the frame's edge
        assert lo == 0 or lo - start >= overlap
        assert hi == size or start + width - hi >= overlap


def test_tile_layout_by_hand():
    # 40 px, tiles of 20 with 4 px context: step 12 -> 3 tiles at 0, 10, 20;
    # seams in the middle of the shared stretches: (0+10+20)//2, (10+20+20)//2
    starts, bounds = tile_layout(40, 20, 4)
    assert starts.tolist() == [0, 10, 20]
    assert bounds.tolist() == [0, 15, 25, 40]


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(n_layers=3, upsampling="folded"), 4),
        (dict(n_layers=3, upsampling="subpixel"), 4),
        (dict(n_layers=2, upscaling=4, upsampling="multistage", stages=(2, 2)), 5),
    ],
)
def test_receptive_radius_matches_gradient_support(kwargs, expected):
    torch.manual_seed(0)
    net = SubPixelCNN(n_channels=4, **kwargs).eval()
    assert receptive_radius(net) == expected
    # independent route: which input pixels change the central output block
    size, r = 21, net.upscaling
    x = torch.randn(1, 1, size, size, requires_grad=True)
    out = net(x)[0, 0]
    c = size // 2
    out[c * r : (c + 1) * r, c * r : (c + 1) * r].sum().backward()
    rows, cols = np.nonzero(x.grad[0, 0].numpy())
    support = max(np.abs(rows - c).max(), np.abs(cols - c).max())
    # folded / subpixel: exact; multistage: the bound is conservative by <= 1
    assert expected - 1 <= support <= expected
    if kwargs["upsampling"] != "multistage":
        assert support == expected


def test_min_overlap(localizer):
    # 3 layers + the folded head's 3x3 = 4 px, plus ceil((1 + 1) / 3) = 1 px
    # for the peak finder's neighbourhood at min_distance = 1
    assert min_overlap(localizer) == 5
    assert min_overlap(localizer.set_params(min_distance=2)) == 4 + 2
    localizer.set_params(min_distance=1)


def test_tiled_equals_whole_on_dense_frames(localizer):
    X, _ = PAFPSimulator(
        frame_shape=(50, 70), density_per_um2=3.0, random_state=1
    ).simulate(3)
    localizer.set_params(threshold=100.0)  # many peaks, some on every seam
    try:
        whole = localizer.predict(X)
        tiled = predict_tiled(localizer, X, tile_size=20, overlap=5, batch_size=7)
    finally:
        localizer.set_params(threshold=300.0)
    assert len(whole) > 200
    # many of them within a camera pixel of a seam, where tiles meet
    _, row_seams = tile_layout(50, 20, 5)
    _, col_seams = tile_layout(70, 20, 5)
    near_x = np.abs(whole.x_nm.to_numpy()[:, None] / 100 - col_seams[1:-1]) < 1
    near_y = np.abs(whole.y_nm.to_numpy()[:, None] / 100 - row_seams[1:-1]) < 1
    assert (near_x.any(1) | near_y.any(1)).sum() > 50
    assert _same(tiled, whole)


def test_too_small_overlap_changes_results_and_is_refused(localizer, monkeypatch):
    X, _ = PAFPSimulator(
        frame_shape=(40, 40), density_per_um2=3.0, random_state=2
    ).simulate(2)
    with pytest.raises(ValueError, match="overlap=4 is smaller than this network"):
        predict_tiled(localizer, X, tile_size=20, overlap=4)
    # the check is what keeps seams exact: without context the maps differ
    # near the seams (beyond the tolerance of _same)
    monkeypatch.setattr(tiling, "min_overlap", lambda loc: 0)
    localizer.set_params(threshold=100.0)
    try:
        whole = localizer.predict(X)
        tiled = predict_tiled(localizer, X, tile_size=20, overlap=0)
    finally:
        localizer.set_params(threshold=300.0)
    assert not _same(tiled, whole)


@pytest.mark.parametrize(
    "x_nm, y_nm",
    [
        (1500.0, 1500.0),  # the corner where four tile cores meet
        (1500.0, 800.0),  # on the vertical seam x = 15 px
        (2500.0, 2500.0),  # on the second seams
        (1450.0, 2550.0),  # half a pixel off both seams
    ],
)
def test_emitter_on_a_seam_is_found_once(localizer, x_nm, y_nm):
    # the emitter under test plus five far from the seams, 2000 photons each,
    # on 100 photons of background with Poisson noise (like the training data)
    expected = 100.0 + _spot((40, 40), x_nm, y_nm, photons=2000.0)
    for other in [(500, 500), (3300, 700), (700, 3300), (3300, 3300), (2000, 500)]:
        expected += _spot((40, 40), *other, photons=2000.0)
    frame = np.random.default_rng(0).poisson(expected).astype(np.float64)
    # tiles of 20 px with 5 px context: cores [0, 15), [15, 25), [25, 40)
    _, bounds = tile_layout(40, 20, 5)
    assert bounds.tolist() == [0, 15, 25, 40]
    tiled = predict_tiled(localizer, frame, tile_size=20, overlap=5)
    whole = localizer.predict(frame)
    assert len(whole) == 6  # the model sees the six spots, once each
    assert _same(tiled, whole)
    distance = np.hypot(tiled.x_nm - x_nm, tiled.y_nm - y_nm)
    assert (distance < 250).sum() == 1
    assert distance.min() < 30.0


def test_frames_smaller_than_a_tile_and_single_frames(localizer):
    X, _ = PAFPSimulator(frame_shape=(12, 30), random_state=3).simulate(2)
    localizer.set_params(threshold=100.0)
    try:
        whole = localizer.predict(X)
        tiled = predict_tiled(localizer, X, tile_size=16, overlap=5)
        single = predict_tiled(localizer, X[1], tile_size=16, overlap=5)
    finally:
        localizer.set_params(threshold=300.0)
    assert _same(tiled, whole)
    expected = whole[whole.frame == 1].assign(frame=0).reset_index(drop=True)
    assert _same(single, expected)


def test_tiff_stack_is_streamed_with_global_frames(localizer, tmp_path):
    X, _ = PAFPSimulator(frame_shape=(30, 30), random_state=4).simulate(5)
    path = tmp_path / "movie.tif"
    write_stack(path, X.astype(np.uint16))
    localizer.set_params(threshold=100.0)
    try:
        whole = localizer.predict(X.astype(np.uint16))
        with TiffStack(path) as stack:
            tiled = predict_tiled(
                localizer, stack, tile_size=20, overlap=5, chunk_size=2
            )
    finally:
        localizer.set_params(threshold=300.0)
    assert set(tiled.frame) == set(whole.frame) and tiled.frame.max() == 4
    assert _same(tiled, whole)


def test_no_detection_gives_empty_table(localizer):
    frames = np.full((2, 30, 30), 100.0)
    table = predict_tiled(localizer, frames, tile_size=20, overlap=5)
    assert len(table) == 0
    # the columns of predict's own empty table (uncertainty columns included)
    assert list(table.columns) == list(localizer.predict(frames).columns)
    assert {"photons", "background", "uncertainty_nm"} <= set(table.columns)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(tile_size=10, overlap=5), ValueError, "larger than 2 \\* overlap"),
        (dict(tile_size=20.0), TypeError, "tile_size must be an integer"),
        (dict(overlap=-1), ValueError, "overlap must be >= 0"),
        (dict(chunk_size=0), ValueError, "chunk_size must be >= 1"),
        (dict(batch_size=True), TypeError, "batch_size must be an integer"),
    ],
)
def test_bad_parameters(localizer, kwargs, error, match):
    with pytest.raises(error, match=match):
        predict_tiled(localizer, np.zeros((1, 30, 30)), **kwargs)


@pytest.mark.parametrize(
    "frames, error",
    [
        (np.zeros((0, 30, 30)), ValueError),
        (np.zeros((1, 0, 30)), ValueError),
        (np.full((1, 30, 30), np.nan), ValueError),
        (np.zeros((1, 30, 30), dtype=bool), TypeError),
        (np.zeros(5), ValueError),
    ],
)
def test_bad_frames(localizer, frames, error):
    with pytest.raises(error, match="frames"):
        predict_tiled(localizer, frames, tile_size=20, overlap=5)


def test_unfitted_localizer_is_refused():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        predict_tiled(DistanceTransformLocalizer(), np.zeros((1, 8, 8)))


def test_merge_seam_duplicates_by_hand():
    frame = np.array([0, 0, 0, 0, 1, 0])
    tile = np.array([0, 1, 0, 2, 1, 3])
    row = np.array([10, 10, 30, 31, 10, 60])
    col = np.array([10, 11, 30, 30, 10, 60])
    value = np.array([5.0, 6.0, 4.0, 4.0, 1.0, 2.0])
    keep = _merge_seam_duplicates(frame, tile, row, col, value, 1)
    # (0, 1): neighbours from two tiles, the higher (1) stays; (2, 3): equal
    # heights, the first in raster order (2) stays; 4 is another frame; 5 alone
    assert keep.tolist() == [False, True, True, False, True, True]
    # peaks two pixels apart are distinct emitters at min_distance = 1
    keep = _merge_seam_duplicates(
        np.zeros(2, int),
        np.array([0, 1]),
        np.array([5, 5]),
        np.array([5, 7]),
        np.ones(2),
        1,
    )
    assert keep.all()


def test_gaussian_refiner_is_applied_like_predict(localizer):
    from sklearn_smlm import GaussianFitLocalizer

    X, _ = PAFPSimulator(frame_shape=(40, 40), random_state=5).simulate(2)
    localizer.set_params(refiner=GaussianFitLocalizer())
    try:
        whole = localizer.predict(X)
        tiled = predict_tiled(localizer, X, tile_size=20, overlap=5)
    finally:
        localizer.set_params(refiner=None)
    assert len(whole) > 5 and len(whole.columns) > 4  # the fits' columns
    pd.testing.assert_frame_equal(tiled, whole, check_exact=False, rtol=1e-5, atol=1e-3)
