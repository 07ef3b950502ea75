import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_smlm.preprocessing import FrameNormalizer


def spots(rng, n_frames=3, size=16, n_spots=5, background=10.0, photons=300.0):
    ii, jj = np.mgrid[0:size, 0:size]
    frames = np.full((n_frames, size, size), background)
    for f in range(n_frames):
        for r, c in rng.uniform(2, size - 2, (n_spots, 2)):
            frames[f] += (
                photons / (2 * np.pi) * np.exp(-((ii - r) ** 2 + (jj - c) ** 2) / 2)
            )
    return rng.poisson(frames).astype(np.float64)


@pytest.mark.parametrize("method", ["robust", "noise"])
@pytest.mark.parametrize(
    "gain, offset", [(1.0, 0.0), (45.0, 100.0), (0.01, -3.0), (7.0, 1e4)]
)
def test_invariant_to_gain_and_offset(method, gain, offset):
    X = spots(np.random.default_rng(0))
    reference = FrameNormalizer(method=method).transform(X)
    scaled = FrameNormalizer(method=method).transform(gain * X + offset)
    np.testing.assert_allclose(scaled, reference, rtol=1e-4, atol=1e-4)


def test_robust_percentiles_by_hand():
    X = np.arange(100, dtype=float).reshape(1, 10, 10)[:, ::-1]
    Z = FrameNormalizer(background_percentile=20, scale_percentile=99).transform(X)
    # ranks floor(0.2 * 99) = 19 and floor(0.99 * 99) = 98: background 19, scale 79
    np.testing.assert_allclose(Z, (X - 19) / 79, rtol=1e-6)
    assert Z.dtype == np.float32 and Z.shape == (1, 10, 10)


def test_background_in_dense_frames():
    # half the pixels hold signal: the 20th percentile still reads the background
    rng = np.random.default_rng(1)
    X = rng.normal(100.0, 2.0, (1, 20, 20))
    X[0, :, :10] += 50.0
    Z = FrameNormalizer().transform(X)
    assert abs(np.median(Z[0, :, 10:])) < 0.05
    assert np.median(Z[0, :, :10]) == pytest.approx(50 / (X[0].max() - 100), abs=0.1)


def test_noise_method_reads_the_noise():
    rng = np.random.default_rng(2)
    X = rng.normal(100.0, 5.0, (2, 64, 64))
    Z = FrameNormalizer(method="noise").transform(X)
    # unit standard deviation once divided by the noise estimate
    assert Z.std(axis=(1, 2)) == pytest.approx([1.0, 1.0], rel=0.05)


def test_photon_conversion_and_min_scale():
    X = np.full((1, 4, 4), 100.0)
    X[0, 1, 1] = 100.0 + 45 * 2  # 90 ADU above baseline
    norm = FrameNormalizer(
        baseline_adu=100.0,
        e_per_adu=45.0,
        em_gain=300.0,
        quantum_efficiency=0.9,
        min_scale=1.0,
    )
    Z = norm.transform(X)
    # 90 ADU * 45 e/ADU / 300 / 0.9 = 15 photons; the floor of 1 photon wins
    # over the 0.1 % of the range, the 99th percentile is background here
    assert Z[0, 1, 1] == pytest.approx(15.0, rel=1e-5)
    assert Z[0, 0, 0] == 0.0


def test_flat_and_nearly_flat_frames():
    Z = FrameNormalizer().transform(np.full((2, 8, 8), 123.0))
    assert np.all(Z == 0)
    X = np.full((1, 8, 8), 5.0)
    X[0, 3, 3] = 6.0  # one hot pixel: scale floored at 1e-3 of the range
    Z = FrameNormalizer().transform(X)
    assert np.isfinite(Z).all() and Z.max() == pytest.approx(1000.0)


def test_input_not_modified_and_2d_frame():
    X = np.random.default_rng(3).poisson(20, (8, 8)).astype(np.float32)
    copy = X.copy()
    Z = FrameNormalizer().fit(X).transform(X)
    np.testing.assert_array_equal(X, copy)
    assert Z.shape == (1, 8, 8)


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"method": "mad"}, ValueError, "method"),
        (
            {"background_percentile": 99, "scale_percentile": 50},
            ValueError,
            "percentile",
        ),
        ({"scale_percentile": 120}, ValueError, "percentile"),
        ({"quantum_efficiency": 1.5}, ValueError, "quantum_efficiency"),
        ({"em_gain": 0}, ValueError, "em_gain"),
        ({"baseline_adu": "100"}, TypeError, "baseline_adu"),
    ],
)
def test_bad_parameters(params, error, message):
    with pytest.raises(error, match=message):
        FrameNormalizer(**params).fit(np.zeros((1, 4, 4)))


def test_bad_frames():
    with pytest.raises(ValueError, match="NaN"):
        FrameNormalizer().transform(np.full((1, 4, 4), np.nan))
    with pytest.raises(ValueError, match="shape"):
        FrameNormalizer().transform(np.zeros((1, 1, 4, 4)))


# A 2-D X is one frame (height, width), so the output is (1, height, width)
# rather than (n_samples, n_features).
_ONE_FRAME = "a 2-D X is one frame: the output has shape (1, height, width)"
_EXPECTED_FAILED = {
    "check_methods_sample_order_invariance": _ONE_FRAME,
    "check_methods_subset_invariance": _ONE_FRAME,
    "check_fit2d_predict1d": _ONE_FRAME,
    "check_transformer_general": _ONE_FRAME,
    "check_transformer_data_not_an_array": _ONE_FRAME,
    "check_transformers_unfitted_stateless": _ONE_FRAME,
    "check_n_features_in": "frames have no fixed number of features",
    "check_n_features_in_after_fitting": "frames have no fixed number of features",
    # the shared check_frames (sklearn_smlm._validation) words these errors its way
    "check_estimators_empty_data_messages": "check_frames says 'empty frames'",
}


@parametrize_with_checks(
    [FrameNormalizer()], expected_failed_checks=lambda est: _EXPECTED_FAILED
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
