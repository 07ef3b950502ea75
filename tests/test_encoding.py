import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_smlm.encoding import DistanceTransform, distance_transform_maps

PEAK = np.expm1(7.0)


def brute_force(positions, shape, px=100.0, r=7, alpha=7.0, d_max=35.0):
    """Exact map: minimum over every emitter of the distance to every pixel."""
    ii, jj = np.mgrid[0 : shape[0] * r, 0 : shape[1] * r].astype(float)
    d = np.full(ii.shape, np.inf)
    for x, y in np.asarray(positions, float).reshape(-1, 2):
        d = np.minimum(d, np.hypot(jj - (x * r / px - 0.5), ii - (y * r / px - 0.5)))
    return np.where(d < d_max, np.expm1(alpha * (1 - d / d_max)), 0.0)


def test_peak_height_at_output_pixel_centre():
    # camera pixel (row 2, col 1) centre -> map pixel (2.5 * 7 - 0.5, 1.5 * 7 - 0.5)
    maps = distance_transform_maps([np.array([[150.0, 250.0]])], (4, 4))
    assert maps.shape == (1, 28, 28) and maps.dtype == np.float32
    assert np.unravel_index(maps[0].argmax(), (28, 28)) == (17, 10)
    assert maps[0, 17, 10] == pytest.approx(PEAK, rel=1e-6)
    # an output pixel centre that is not a camera pixel centre: x = (j + 0.5) px / r
    x, y = (5 + 0.5) * 100 / 7, (20 + 0.5) * 100 / 7
    maps = distance_transform_maps([np.array([[x, y]])], (4, 4))
    assert maps[0, 20, 5] == pytest.approx(PEAK, rel=1e-6)


def test_profile_and_zero_beyond_d_max():
    x = y = (40 + 0.5) * 100 / 7  # map pixel (40, 40) of an 84 x 84 map
    m = distance_transform_maps([np.array([[x, y]])], (12, 12), dtype=np.float64)[0]
    assert m[40, 40 + 10] == pytest.approx(np.expm1(7 * (1 - 10 / 35)), rel=1e-6)
    assert m[40 + 3, 40 + 4] == pytest.approx(np.expm1(7 * (1 - 5 / 35)), rel=1e-6)
    assert m[40, 40 + 34] == pytest.approx(np.expm1(7 / 35), rel=1e-5)
    assert m[40, 40 + 35] == 0.0  # d == d_max
    assert m[40 + 30, 40 + 30] == 0.0  # d = 42.4
    assert (m >= 0).all()


def test_matches_brute_force_with_outside_emitters():
    rng = np.random.default_rng(3)
    positions = [rng.uniform(-400, 1200, size=(n, 2)) for n in (12, 40, 3)]
    fast = distance_transform_maps(positions, (8, 8), dtype=np.float64)
    exact = np.stack([brute_force(p, (8, 8)) for p in positions])
    diff = np.abs(fast - exact)
    # exact up to float32 distances: measured max 4.4e-3 = 4e-6 of the peak
    # (the grid distance transform used before differed by up to 9.7, 0.9 %
    # of the peak, for 200 emitters in 64 x 64 frames)
    assert diff.max() < 1e-5 * PEAK
    assert diff.mean() < 1e-7 * PEAK


def test_dense_frames_match_brute_force():
    # 300 emitters in 24 x 24 camera pixels (52 per um^2), many overlapping
    rng = np.random.default_rng(7)
    positions = [rng.uniform(-300, 2700, size=(300, 2)) for _ in range(2)]
    fast = distance_transform_maps(positions, (24, 24), dtype=np.float64)
    exact = np.stack([brute_force(p, (24, 24)) for p in positions])
    np.testing.assert_allclose(fast, exact, rtol=2e-5, atol=1e-5 * PEAK)


def test_emitters_sharing_an_output_pixel_are_exact():
    # two emitters in the same output pixel: the second must not be lost
    positions = [np.array([[300.0, 300.0], [303.0, 304.0], [500.0, 100.0]])]
    fast = distance_transform_maps(positions, (8, 8), dtype=np.float64)[0]
    # distances are computed in float32
    np.testing.assert_allclose(
        fast, brute_force(positions[0], (8, 8)), rtol=1e-5, atol=1e-5
    )


def test_empty_and_far_away_frames_are_zero():
    maps = distance_transform_maps(
        [np.empty((0, 2)), np.array([[-1000.0, 50.0]]), []], (3, 5)
    )
    assert maps.shape == (3, 21, 35)
    assert not maps.any()


def test_outside_emitter_reaches_into_the_frame():
    # emitter at the centre of camera column -1: map column (-1 + 0.5) * 7 - 0.5 = -4
    y = (10 + 0.5) * 100 / 7
    m = distance_transform_maps([np.array([[-50.0, y]])], (4, 4), dtype=np.float64)
    assert m[0, 10, 0] == pytest.approx(np.expm1(7 * (1 - 4 / 35)), rel=1e-6)
    assert m[0, 10, 27] > 0 and m[0, 27, 27] == 0.0  # d = 31 and 35.4


def test_dataframe_input_and_extra_columns():
    xyz = [np.array([[120.0, 230.0, 5.0]]), np.empty((0, 3)), np.array([[50.0, 50, 0]])]
    table = pd.DataFrame(
        {"frame": [0, 2], "x_nm": [120.0, 50.0], "y_nm": [230.0, 50.0]}
    )
    a = distance_transform_maps(xyz, (4, 4))
    b = distance_transform_maps(table, (4, 4))
    np.testing.assert_array_equal(a, b)


def test_parameters_pixel_size_and_upscaling():
    # 130 nm pixels, r = 5: emitter at camera pixel (1, 2) centre -> map (7, 12)
    m = distance_transform_maps(
        [np.array([[2.5 * 130, 1.5 * 130]])], (3, 4), pixel_size_nm=130.0, upscaling=5
    )
    assert m.shape == (1, 15, 20)
    assert np.unravel_index(m[0].argmax(), m[0].shape) == (7, 12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frame_shape": (4,)}, "frame_shape"),
        ({"frame_shape": (0, 4)}, "frame_shape"),
        ({"frame_shape": (4, 4), "upscaling": 0}, "upscaling"),
        ({"frame_shape": (4, 4), "d_max": -1.0}, "d_max"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        distance_transform_maps([np.zeros((1, 2))], **kwargs)


def test_bad_positions():
    with pytest.raises(ValueError, match="shape"):
        distance_transform_maps([np.zeros((2, 4))], (4, 4))
    with pytest.raises(ValueError, match="NaN"):
        distance_transform_maps([np.array([[np.nan, 1.0]])], (4, 4))


def test_distance_transform_estimator_round_trip():
    rng = np.random.default_rng(0)
    # well separated emitters (> 1 camera pixel apart) at sub-pixel positions
    grid = np.stack(np.meshgrid([150, 450, 750], [150, 450, 750]), -1).reshape(-1, 2)
    positions = [grid + rng.uniform(-50, 50, grid.shape) for _ in range(3)]
    encoder = DistanceTransform(frame_shape=(9, 9)).fit(positions)
    assert encoder.frame_shape_ == (9, 9)
    assert encoder.peak_value == pytest.approx(PEAK)
    maps = encoder.transform(positions)
    table = encoder.inverse_transform(maps)
    assert list(table.columns) == ["frame", "x_nm", "y_nm", "score"]
    assert len(table) == 27
    found = table.sort_values(["frame", "y_nm", "x_nm"])
    for f in range(3):
        got = found[found.frame == f][["x_nm", "y_nm"]].to_numpy()
        true = positions[f][np.lexsort((positions[f][:, 0], positions[f][:, 1]))]
        assert np.abs(got - true).max() < 0.05 * 100 / 7
    np.testing.assert_allclose(table.score, PEAK, rtol=1e-3)
    # a higher threshold than the peaks finds nothing
    assert len(encoder.inverse_transform(maps, threshold=PEAK * 1.01)) == 0


def test_distance_transform_needs_frame_shape():
    with pytest.raises(ValueError, match="frame_shape"):
        DistanceTransform().fit(None)


# X is a per-frame list of position arrays, not (n_samples, n_features): the
# checks that feed a 2-D numeric X see each row as a frame's positions.
_POSITIONS_NOT_2D = "X is a per-frame list of (k, 2) position arrays, not a 2-D array"
_EXPECTED_FAILED = {
    name: _POSITIONS_NOT_2D
    for name in [
        "check_fit_score_takes_y",
        "check_estimators_dtypes",
        "check_dtype_object",
        "check_estimators_empty_data_messages",
        "check_pipeline_consistency",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit2d_predict1d",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_fit_check_is_fitted",
        "check_readonly_memmap_input",
        "check_estimators_overwrite_params",
        "check_estimators_fit_returns_self",
        "check_positive_only_tag_during_fit",
        "check_dont_overwrite_parameters",
        "check_n_features_in",
        "check_complex_data",
        "check_estimators_nan_inf",
        "check_estimator_sparse_tag",
        "check_estimator_sparse_array",
        "check_estimator_sparse_matrix",
        "check_set_output_transform",
        "check_global_output_transform_pandas",
        "check_global_set_output_transform_polars",
        "check_set_output_transform_pandas",
        "check_set_output_transform_polars",
    ]
}
_EXPECTED_FAILED["check_n_features_in_after_fitting"] = (
    "the input is positions, there are no features to count"
)


def _expected_failed(estimator):
    return _EXPECTED_FAILED


@parametrize_with_checks(
    [DistanceTransform(frame_shape=(4, 4))], expected_failed_checks=_expected_failed
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
