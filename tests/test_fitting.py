import numpy as np
import pandas as pd
import pytest
from scipy.special import erf
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_smlm.fitting import (
    FIT_COLUMNS,
    GaussianFitLocalizer,
    crlb,
    detect_candidates,
    filter_frames,
    fit_boxes,
    gaussian_model,
    mortensen_variance,
    refine_localizations,
)

PX = 100.0


def paint(frames, x, y, photons, sigma, f=0, pad=8):
    """Add an exact pixel-integrated Gaussian centred at pixel coords (x, y)."""
    _, h, w = frames.shape
    r0, c0 = max(int(y) - pad, 0), max(int(x) - pad, 0)
    r1, c1 = min(int(y) + pad + 1, h), min(int(x) + pad + 1, w)
    size = max(r1 - r0, c1 - c0)
    spot = gaussian_model(np.array([[x - c0, y - r0, photons, 0.0, sigma]]), size)[0]
    frames[f, r0:r1, c0:c1] += spot[: r1 - r0, : c1 - c0]


def sparse_frames(n_frames=50, size=32, photons=1000.0, bg=10.0, sigma=1.2, seed=0):
    """Four spots per frame on a 2x2 grid with random sub-pixel offsets."""
    rng = np.random.default_rng(seed)
    mean = np.full((n_frames, size, size), bg)
    truth = []
    for f in range(n_frames):
        for cy in (size // 4, 3 * size // 4):
            for cx in (size // 4, 3 * size // 4):
                x, y = cx + rng.uniform(-0.5, 0.5), cy + rng.uniform(-0.5, 0.5)
                paint(mean, x, y, photons, sigma, f)
                truth.append((f, (x + 0.5) * PX, (y + 0.5) * PX))
    return mean, np.array(truth), rng


def match(table, truth, radius_nm=100.0):
    """Nearest localization of every true spot: (dx, dy, row index)."""
    out = []
    for f, x, y in truth:
        sub = table[table["frame"] == f]
        d = np.hypot(sub["x_nm"] - x, sub["y_nm"] - y).to_numpy()
        if len(d) and d.min() < radius_nm:
            i = sub.index[d.argmin()]
            out.append((table.at[i, "x_nm"] - x, table.at[i, "y_nm"] - y, i))
    return np.array(out)


# --------------------------------------------------------------------- model


def test_model_matches_erf_integral_and_total():
    # independent route: the 2-D integral over one pixel factorizes into erfs
    p = np.array([[2.3, 3.6, 500.0, 2.0, 0.9]])
    mu = gaussian_model(p, 7)[0]
    s = np.sqrt(2) * 0.9
    ex = 0.5 * (erf((4 + 0.5 - 2.3) / s) - erf((4 - 0.5 - 2.3) / s))
    ey = 0.5 * (erf((1 + 0.5 - 3.6) / s) - erf((1 - 0.5 - 3.6) / s))
    assert mu[1, 4] == pytest.approx(2.0 + 500.0 * ex * ey, rel=1e-12)
    big = gaussian_model(np.array([[15.0, 15.0, 500.0, 2.0, 0.9]]), 31)[0]
    assert big.sum() == pytest.approx(500.0 + 2.0 * 31**2, rel=1e-9)


@pytest.mark.parametrize("k, fixed", [(1, None), (1, 1.1), (2, None), (3, 0.8)])
def test_jacobian_matches_finite_differences(k, fixed):
    rng = np.random.default_rng(1)
    cols = []
    for _ in range(k):
        cols += [rng.uniform(2, 5), rng.uniform(2, 5), rng.uniform(300, 900)]
    cols.append(3.0)
    if fixed is None:
        cols.append(1.2)
    p = np.array([cols])
    fs = None if fixed is None else np.array([fixed])
    mu, jac = gaussian_model(p, 7, k, fs, jacobian=True)
    for i in range(p.shape[1]):
        h = 1e-6 * max(1.0, abs(p[0, i]))
        up, down = p.copy(), p.copy()
        up[0, i] += h
        down[0, i] -= h
        numeric = (gaussian_model(up, 7, k, fs) - gaussian_model(down, 7, k, fs)) / (
            2 * h
        )
        np.testing.assert_allclose(jac[0, :, i], numeric.ravel(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["mle", "lsq"])
def test_fit_boxes_recovers_noise_free_parameters(method):
    true = np.array([[3.2, 2.9, 2000.0, 5.0, 1.1], [2.6, 4.1, 800.0, 20.0, 1.4]])
    init = np.array([[3.0, 3.0, 1500.0, 3.0, 1.3], [3.0, 4.0, 1500.0, 10.0, 1.3]])
    params, ok, n_iter, _, _ = fit_boxes(gaussian_model(true, 7), init, method=method)
    assert ok.all() and (n_iter < 30).all()
    np.testing.assert_allclose(params, true, rtol=1e-5, atol=1e-5)


def test_crlb_no_background_limit_and_excess_noise():
    # Without background and with pixels small against the PSF, the bound on x
    # tends to sqrt(sigma^2 + a^2 / 12) / sqrt(N) (Mortensen et al. 2010).
    p = np.array([[20.0, 20.0, 1e4, 1e-6, 4.0]])
    mu, jac = gaussian_model(p, 41, jacobian=True)
    sd = np.sqrt(crlb(mu, jac)[0, 0])
    assert sd == pytest.approx(np.sqrt(16 + 1 / 12) / 100, rel=0.01)
    assert np.sqrt(crlb(mu, jac, 2.0)[0, 0]) == pytest.approx(sd * np.sqrt(2))


def test_mortensen_formula_by_hand():
    # sigma_a^2 = 100^2 + 100^2/12 = 10833.3; b = 10 photons/px, N = 1000:
    # 10.8333 * (1.77778 + 8 pi 10833.3 * 10 / (1000 * 1e4) = 0.27227) = 22.209 nm^2
    assert mortensen_variance(100.0, 1000.0, 10.0, 100.0) == pytest.approx(
        22.209, rel=1e-4
    )
    assert mortensen_variance(100.0, 1000.0, 10.0, 100.0, 2.0) == pytest.approx(
        44.418, rel=1e-4
    )


# ----------------------------------------------------------------- detection


def test_noise_estimate_matches_filtered_noise():
    # independent route: the empirical std of the filtered image of pure noise
    rng = np.random.default_rng(2)
    frames = rng.normal(100.0, 3.0, (4, 64, 64))
    for method in ("wavelet", "dog"):
        image, noise = filter_frames(frames, method)
        assert noise == pytest.approx(image.std(axis=(1, 2)), rel=0.08)
    # few false candidates at the default threshold on pure noise
    assert len(detect_candidates(frames, threshold=5.0)[0]) <= 1
    assert len(detect_candidates(np.full((1, 16, 16), 7.0))[0]) == 0


# ------------------------------------------------------------------ accuracy


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"fit_method": "lsq"},
        {"psf_sigma_nm": 120.0},
        {"detection": "dog"},
    ],
)
def test_sparse_rmse_near_crlb_and_calibrated_uncertainty(params):
    mean, truth, rng = sparse_frames()
    frames = 100.0 + rng.poisson(mean)
    table, info = GaussianFitLocalizer(**params).fit().predict(frames, return_info=True)
    assert list(table.columns) == list(FIT_COLUMNS)
    assert np.isfinite(table.drop(columns="frame").to_numpy()).all()
    m = match(table, truth)
    assert len(m) == len(truth) == 200  # every spot found
    rmse_axis = np.sqrt(np.mean(m[:, :2] ** 2))
    crlb_axis = np.sqrt(np.mean(table.loc[m[:, 2], "uncertainty_nm"] ** 2))
    # measured (seed 0, mle): rmse 4.9 nm per axis, CRLB 5.1 nm
    assert rmse_axis < 1.3 * crlb_axis
    z = m[:, :2] / table.loc[m[:, 2], "uncertainty_nm"].to_numpy()[:, None]
    assert 0.8 < z.std() < 1.25
    assert table.loc[m[:, 2], "photons"].mean() == pytest.approx(1000.0, rel=0.05)
    if params.get("fit_method") != "lsq":  # 1/data weights bias lsq's background
        assert table.loc[m[:, 2], "background"].mean() == pytest.approx(10.0, rel=0.05)
    if "psf_sigma_nm" not in params:
        assert table.loc[m[:, 2], "sigma_nm"].mean() == pytest.approx(120.0, rel=0.03)
    # Mortensen's least-squares formula sits a little above the MLE bound
    ratio = table["uncertainty_mortensen_nm"] / table["uncertainty_nm"]
    assert 1.0 < ratio.median() < 1.3
    assert sum(info["n_dropped"].values()) == info["n_candidates"] - len(table)


def test_emccd_camera_conversion_and_excess_noise():
    # EMCCD: Poisson photoelectrons (QE 0.9), gamma-distributed EM gain 100,
    # 10 e-/ADU after gain, baseline 100. Photons reported = electrons / QE.
    mean, truth, rng = sparse_frames(photons=2000.0, bg=20.0, seed=3)
    electrons = rng.poisson(0.9 * mean).astype(float)
    amplified = rng.gamma(np.maximum(electrons, 1e-12), 100.0) * (electrons > 0)
    frames = 100.0 + amplified / 10.0
    loc = GaussianFitLocalizer(em_gain=100.0, e_per_adu=10.0, quantum_efficiency=0.9)
    table = loc.fit().predict(frames)
    assert loc.excess_noise_ == 2.0 and loc.e_per_count_ == pytest.approx(0.1)
    m = match(table, truth)
    assert len(m) >= 195
    photons = table.loc[m[:, 2], "photons"]
    assert photons.mean() == pytest.approx(2000.0, rel=0.05)
    z = m[:, :2] / table.loc[m[:, 2], "uncertainty_nm"].to_numpy()[:, None]
    assert 0.8 < z.std() < 1.25  # without the factor 2 it would be ~1.4


# ------------------------------------------------------------ failure modes


def test_empty_frame_gives_empty_table_with_columns():
    loc = GaussianFitLocalizer().fit()
    table, info = loc.predict(np.full((2, 16, 16), 100.0), return_info=True)
    assert len(table) == 0 and list(table.columns) == list(FIT_COLUMNS)
    assert table["frame"].dtype == np.int64 and table["x_nm"].dtype == np.float64
    assert info == {"n_candidates": 0, "n_dropped": dict.fromkeys(info["n_dropped"], 0)}


def test_spot_near_border_is_fitted_and_half_spot_outside_is_dropped():
    rng = np.random.default_rng(4)
    mean = np.full((2, 20, 20), 10.0)
    paint(mean, 1.0, 9.3, 3000.0, 1.2, f=0)  # centre 1 px from the left edge
    paint(mean, -0.7, 9.0, 3000.0, 1.2, f=1)  # centre outside the frame
    frames = 100.0 + rng.poisson(mean)
    table, info = GaussianFitLocalizer().fit().predict(frames, return_info=True)
    f0 = table[table["frame"] == 0]
    assert len(f0) == 1
    assert f0["x_nm"].iloc[0] == pytest.approx(
        150.0, abs=4 * f0["uncertainty_nm"].iloc[0]
    )
    assert f0["y_nm"].iloc[0] == pytest.approx(
        980.0, abs=4 * f0["uncertainty_nm"].iloc[0]
    )
    assert (table["frame"] == 1).sum() == 0
    assert info["n_dropped"]["outside_box"] == 1
    assert np.isfinite(table.drop(columns="frame").to_numpy()).all()


def test_saturated_spot_is_dropped_with_count():
    mean = np.full((1, 20, 20), 10.0)
    paint(mean, 9.2, 9.7, 20000.0, 1.2)
    frames = np.minimum(100.0 + np.random.default_rng(5).poisson(mean), 1000.0)
    table, info = (
        GaussianFitLocalizer(saturation_adu=1000.0)
        .fit()
        .predict(frames, return_info=True)
    )
    assert len(table) == 0 and info["n_dropped"]["saturated"] == 1
    # integer frames saturate at the top of their range without being told
    table, info = (
        GaussianFitLocalizer()
        .fit()
        .predict(np.minimum(frames * 70, 65535).astype(np.uint16), return_info=True)
    )
    assert len(table) == 0 and info["n_dropped"]["saturated"] == 1
    # the same spot below saturation is kept
    ok = GaussianFitLocalizer(saturation_adu=1e9).fit().predict(frames)
    assert len(ok) == 1


def test_flat_box_fails_cleanly():
    frames = np.full((1, 15, 15), 110.0)
    dets = pd.DataFrame(
        {"frame": [0], "x_nm": [720.0], "y_nm": [730.0], "score": [5.0]}
    )
    out = refine_localizations(frames, dets)
    assert not out["fit_ok"].iloc[0]
    assert out["fit_status"].iloc[0] == "no_signal"
    assert out[["x_nm", "y_nm"]].to_numpy().tolist() == [[720.0, 730.0]]
    assert out["uncertainty_nm"].iloc[0] == 100.0
    assert np.isfinite(out.drop(columns=["fit_ok", "fit_status"]).to_numpy()).all()
    # the localizer on noise with a zero threshold: all candidates either kept
    # as finite rows or dropped with a reason, never NaN
    noise = 100.0 + np.random.default_rng(6).poisson(10.0, (2, 24, 24))
    table, info = (
        GaussianFitLocalizer(threshold=0.0).fit().predict(noise, return_info=True)
    )
    assert info["n_candidates"] == len(table) + sum(info["n_dropped"].values())
    assert info["n_dropped"]["no_signal"] + info["n_dropped"]["sigma_out_of_bounds"] > 0
    assert np.isfinite(table.drop(columns="frame").to_numpy()).all()


@pytest.mark.parametrize(
    "X, error, message",
    [
        (np.zeros((2, 3, 16, 16)), ValueError, "shape"),
        (np.full((1, 16, 16), np.nan), ValueError, "NaN"),
        ("frames.tif", TypeError, "array of frames"),
        (np.zeros((1, 5, 40)), ValueError, "smaller than box_size"),
    ],
)
def test_predict_rejects_bad_input(X, error, message):
    with pytest.raises(error, match=message):
        GaussianFitLocalizer().fit().predict(X)


def test_predict_before_fit_and_bad_parameters():
    with pytest.raises(NotFittedError):
        GaussianFitLocalizer().predict(np.zeros((1, 16, 16)))
    for params, message in [
        ({"fit_method": "newton"}, "fit_method"),
        ({"detection": "log"}, "detection"),
        ({"box_size": 2}, "box_size"),
        ({"pixel_size_nm": -1.0}, "pixel_size_nm"),
        ({"quantum_efficiency": 1.5}, "quantum_efficiency"),
        ({"sigma_range_nm": (300.0, 50.0)}, "sigma_range_nm"),
        ({"em_gain": 0.5}, "em_gain"),
    ]:
        with pytest.raises(ValueError, match=message):
            GaussianFitLocalizer(**params).fit()


def test_predict_is_deterministic_and_clone_keeps_params():
    mean, _, rng = sparse_frames(n_frames=3)
    frames = 100.0 + rng.poisson(mean)
    loc = GaussianFitLocalizer(box_size=5, threshold=6.0).fit()
    pd.testing.assert_frame_equal(loc.predict(frames), loc.predict(frames))
    assert clone(loc).get_params() == loc.get_params()


# ----------------------------------------------------------- refinement


def pair_frames(n_frames=20, sep_px=1.5, photons=2000.0, bg=10.0, sigma=1.0, seed=7):
    rng = np.random.default_rng(seed)
    mean = np.full((n_frames, 21, 21), bg)
    truth = []
    for f in range(n_frames):
        cx, cy = 10 + rng.uniform(-0.5, 0.5), 10 + rng.uniform(-0.5, 0.5)
        angle = rng.uniform(0, np.pi)
        dx, dy = 0.5 * sep_px * np.cos(angle), 0.5 * sep_px * np.sin(angle)
        for x, y in ((cx - dx, cy - dy), (cx + dx, cy + dy)):
            paint(mean, x, y, photons, sigma, f)
            truth.append((f, (x + 0.5) * PX, (y + 0.5) * PX))
    return 100.0 + rng.poisson(mean), np.array(truth), rng


def test_single_emitter_mode_fits_one_emitter_per_box(monkeypatch):
    # multi_emitter=False: every box is fitted with one emitter (no joint
    # fits, no split test, no second fits), one row per kept candidate
    import sklearn_smlm.fitting._localizer as module

    frames, truth, _ = pair_frames(sep_px=3.5)  # pairs in each other's boxes
    ks = []
    real = module._fit_in_chunks

    def spy(data, init, k, *args, **kwargs):
        ks.append(k)
        return real(data, init, k, *args, **kwargs)

    monkeypatch.setattr(module, "_fit_in_chunks", spy)
    loc = GaussianFitLocalizer(box_size=7, threshold=6.0)
    single, info = (
        loc.set_params(multi_emitter=False).fit().predict(frames, return_info=True)
    )
    assert ks and set(ks) == {1}
    assert len(single) == info["n_candidates"] - sum(info["n_dropped"].values())
    ks.clear()
    joint = loc.set_params(multi_emitter=True).predict(frames)
    assert 2 in ks  # the default fits the pairs jointly
    # both emitters of every pair are candidates; fitted jointly each is
    # found within 100 nm, fitted alone most are pulled towards the partner
    # (measured, seed 7: 40 and 6 of 40)
    assert info["n_candidates"] == 40
    assert len(match(joint, truth)) == 40
    assert len(match(single, truth)) < 20


def test_single_emitter_mode_equals_the_default_where_no_emitters_are_near():
    # four spots 16 px apart per frame: nothing to fit jointly or split
    mean, _, rng = sparse_frames(n_frames=20)
    frames = 100.0 + rng.poisson(mean)
    loc = GaussianFitLocalizer(threshold=6.0).fit()
    multi = loc.predict(frames)
    single = loc.set_params(multi_emitter=False).predict(frames)
    assert len(multi) == 80
    pd.testing.assert_frame_equal(single, multi, check_exact=True)


def test_multi_emitter_must_be_a_bool():
    with pytest.raises(TypeError, match="multi_emitter must be True or False"):
        GaussianFitLocalizer(multi_emitter="no").fit()


def test_multi_emitter_refinement_separates_close_pair():
    # two spots 150 nm apart (1.5 sigma); detections start 40 nm off in random
    # directions, as a CNN's might
    frames, truth, rng = pair_frames()
    start = truth.copy()
    start[:, 1:] += rng.normal(0.0, 40.0 / np.sqrt(2), (len(truth), 2))
    dets = pd.DataFrame(start, columns=["frame", "x_nm", "y_nm"])
    # detections this far off would often be held by the default 0.5 px limit
    joint = refine_localizations(frames, dets, max_shift_px=1.0)
    assert joint["fit_ok"].all() and (joint["n_emitters"] == 2).all()
    err = np.hypot(joint["x_nm"] - truth[:, 1], joint["y_nm"] - truth[:, 2])
    # measured (seed 7): mean 7 nm, max 17 nm
    assert err.mean() < 12.0 and err.max() < 25.0
    # the single-emitter fit of the same boxes is pulled towards the partner
    single = refine_localizations(frames, dets, max_emitters=1, max_shift_px=1.0)
    err1 = np.hypot(single["x_nm"] - truth[:, 1], single["y_nm"] - truth[:, 2])
    assert (single["n_emitters"] == 1).all()
    assert err1[single["fit_ok"]].mean() > 2 * err.mean()


def test_refine_keeps_every_row_order_and_extra_columns():
    mean, truth, rng = sparse_frames(n_frames=3)
    frames = 100.0 + rng.poisson(mean)
    # copy: on pandas 2 a frame built from an array is a view of it, and the
    # shift below would move the truth too
    dets = pd.DataFrame(truth[::-1].copy(), columns=["frame", "x_nm", "y_nm"])
    dets["x_nm"] += 30.0
    dets["score"] = np.arange(len(dets), dtype=float)
    dets.loc[len(dets)] = [1, 1000.0, 1600.0, 99.0]  # a false detection between spots
    out = refine_localizations(frames, dets, psf_sigma_nm=120.0)
    assert len(out) == len(dets) and out["score"].tolist() == dets["score"].tolist()
    good = out.iloc[:-1]
    assert good["fit_ok"].all()
    err = np.hypot(good["x_nm"] - truth[::-1, 1], good["y_nm"] - truth[::-1, 2])
    assert err.max() < 25.0
    assert out["frame"].dtype == np.int64
    numeric = out.drop(columns=["fit_ok", "fit_status"]).to_numpy(dtype=float)
    assert np.isfinite(numeric).all()
    # the estimator method uses the estimator's parameters
    via = GaussianFitLocalizer(psf_sigma_nm=120.0).fit().refine(frames, dets)
    pd.testing.assert_frame_equal(via, out)


def test_refine_empty_table_and_bad_frame():
    frames = np.full((1, 16, 16), 100.0)
    empty = pd.DataFrame({"frame": [], "x_nm": [], "y_nm": []})
    out = refine_localizations(frames, empty)
    assert len(out) == 0 and {"photons", "fit_ok", "uncertainty_nm"} <= set(out)
    bad = pd.DataFrame({"frame": [3], "x_nm": [10.0], "y_nm": [10.0]})
    with pytest.raises(ValueError, match="frame 3"):
        refine_localizations(frames, bad)


# --------------------------------------------------- scikit-learn checks

_FRAME_OUTPUT = "predict returns a localization DataFrame, not one value per sample"
_SMALL_FRAME = "a 2-D X is one camera frame; the checks' frames are too small to fit"
EXPECTED_FAILED_CHECKS = {
    "check_n_features_in_after_fitting": "frames have no feature axis",
    "check_n_features_in": "frames have no feature axis",
    "check_estimators_empty_data_messages": "the error names the empty frame shape",
    "check_methods_sample_order_invariance": _FRAME_OUTPUT,
    "check_methods_subset_invariance": _SMALL_FRAME,
    "check_fit_idempotent": _SMALL_FRAME,
    "check_fit2d_predict1d": "the error says the frame shape, not 'Reshape your data'",
}


@parametrize_with_checks(
    [GaussianFitLocalizer(box_size=3)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("shape", [(3, 40, 30), (2, 160, 200)])
def test_candidates_are_the_thresholded_maxima_of_the_wavelet_image(shape):
    # Reference: the plain definition (a 3 x 3 maximum filter with the border
    # replicated, the noise from the MAD of all fine-scale pixels); frames
    # above 128 x 128 estimate the noise on a subset, hence a tolerance there.
    from scipy import ndimage

    from sklearn_smlm.fitting._detect import _B3, _detection_image, _smooth, noise_gain

    rng = np.random.default_rng(0)
    frames = rng.poisson(20.0, shape).astype(np.float32)
    frames[:, ::7, ::9] += rng.uniform(0, 400, frames[:, ::7, ::9].shape)
    frames[0, 0, 0] = 900.0  # a spot on the corner
    f, r, c, snr = detect_candidates(frames, threshold=4.0)

    image = _detection_image(frames, "wavelet", 1.3)
    fine = (frames - _smooth(frames, _B3)).reshape(len(frames), -1)
    mad = np.median(np.abs(fine - np.median(fine, axis=1, keepdims=True)), axis=1)
    noise = 1.4826 * mad * noise_gain("wavelet")
    peaks = ndimage.maximum_filter(image, size=(1, 3, 3), mode="nearest") == image
    exact = shape[1] * shape[2] <= 16384
    if exact:
        peaks &= image / noise[:, None, None] > 4.0
        np.testing.assert_array_equal(np.column_stack([f, r, c]), np.argwhere(peaks))
        # the compiled filter keeps float64 between its passes (scipy: float32)
        np.testing.assert_allclose(
            snr, (image / noise[:, None, None])[peaks], rtol=1e-5
        )
    else:
        strong = peaks & (image / noise[:, None, None] > 4.4)
        weak = peaks & (image / noise[:, None, None] > 3.6)
        found = set(map(tuple, np.column_stack([f, r, c])))
        assert set(map(tuple, np.argwhere(strong))) <= found
        assert found <= set(map(tuple, np.argwhere(weak)))
    assert (0, 0, 0) in set(zip(f.tolist(), r.tolist(), c.tolist(), strict=True))


@pytest.mark.parametrize("shape", [(3, 40, 33), (2, 150, 140)])
def test_detection_without_the_compiled_kernels_gives_the_same_candidates(shape):
    # compiled=False (scipy passes, no numba import: the network's per-frame
    # checks) and the numba kernels agree to float32 rounding
    rng = np.random.default_rng(11)
    frames = rng.poisson(20.0, shape).astype(np.float32)
    frames[:, ::6, ::7] += rng.uniform(0, 300, frames[:, ::6, ::7].shape)
    image, noise = filter_frames(frames)
    image0, noise0 = filter_frames(frames, compiled=False)
    np.testing.assert_allclose(image0, image, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(noise0, noise, rtol=1e-5)
    fast = detect_candidates(frames, threshold=4.0)
    slow = detect_candidates(frames, threshold=4.0, compiled=False)
    assert len(fast[0]) > 20 * shape[0]
    for a, b in zip(fast[:3], slow[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(fast[3], slow[3], rtol=1e-5)


def test_refine_does_not_trust_a_fit_far_from_its_detection():
    # a detection 1.5 px from an isolated spot: the fit finds the spot, which
    # is more than max_shift_px away, so the detection is kept and flagged
    mean, truth, rng = sparse_frames(n_frames=1)
    frames = 100.0 + rng.poisson(mean)
    dets = pd.DataFrame(truth[:1].copy(), columns=["frame", "x_nm", "y_nm"])
    dets["x_nm"] += 150.0
    free = refine_localizations(frames, dets, psf_sigma_nm=120.0, max_shift_px=None)
    assert free["fit_ok"].all()
    assert abs(free["x_nm"].iloc[0] - truth[0, 1]) < 25.0
    held = refine_localizations(frames, dets, psf_sigma_nm=120.0)
    assert held["fit_status"].tolist() == ["moved_from_detection"]
    assert held["x_nm"].iloc[0] == dets["x_nm"].iloc[0]
    wide = refine_localizations(frames, dets, psf_sigma_nm=120.0, max_shift_px=2.0)
    pd.testing.assert_frame_equal(wide, free)
    with pytest.raises(ValueError, match="max_shift_px"):
        refine_localizations(frames, dets, max_shift_px=-1.0)


def test_crlb_is_infinite_exactly_where_the_fisher_matrix_is_singular():
    # regular boxes, a box without photons (the positions carry no information)
    # and two emitters on the same spot (their parameters cannot be told apart)
    p1 = np.array([[3.0, 3.2, 1000.0, 5.0, 1.1], [3.0, 3.2, 0.0, 5.0, 1.1]])
    p2 = np.array(
        [
            [2.5, 3.0, 800.0, 4.5, 3.0, 900.0, 5.0, 1.1],
            [3.0, 3.0, 800.0, 3.0, 3.0, 900.0, 5.0, 1.1],
        ]
    )
    for p, k in ((p1, 1), (p2, 2)):
        mu, jac = gaussian_model(p, 7, k, jacobian=True)
        var = crlb(mu, jac)
        fisher = np.matmul(jac.transpose(0, 2, 1) / mu.reshape(len(p), 1, -1), jac)
        full = np.linalg.matrix_rank(fisher) == p.shape[1]
        assert full.tolist() == [True, False]
        assert np.isfinite(var[0]).all() and (var[0] > 0).all()
        assert np.isinf(var[1]).all()


# ------------------------------------------------- compiled kernels (numba)


def test_compiled_fit_is_the_poisson_maximum_of_an_independent_optimizer():
    # scipy's bounded quasi-Newton on the same Poisson likelihood, from the
    # compiled fit's own start, lands on the same optimum
    from scipy.optimize import minimize

    rng = np.random.default_rng(3)
    true = np.column_stack(
        [
            rng.uniform(2.0, 4.0, 12),
            rng.uniform(2.0, 4.0, 12),
            rng.uniform(300.0, 3000.0, 12),
            rng.uniform(2.0, 40.0, 12),
            rng.uniform(0.9, 1.5, 12),
        ]
    )
    data = rng.poisson(gaussian_model(true, 7)).astype(float)
    init = true + [0.4, -0.3, 200.0, 3.0, 0.2]
    params, ok, _, _, _ = fit_boxes(data, init, tol_px=1e-6, max_iter=100)
    assert ok.all()
    for d, p in zip(data, params, strict=True):

        def nll(q, d=d):
            mu = gaussian_model(q[None, :], 7)[0]
            return float((mu - d * np.log(mu)).sum())

        ref = minimize(
            nll,
            p + [0.05, -0.05, 20.0, 1.0, 0.02],
            method="L-BFGS-B",
            bounds=[(-1, 7), (-1, 7), (1e-3, None), (1e-6, None), (0.1, 7)],
            options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000},
        ).x
        assert nll(p) <= nll(ref) + 1e-6
        np.testing.assert_allclose(p[:2], ref[:2], atol=2e-3)


def test_compiled_fit_converges_with_a_parameter_on_its_bound():
    # no background at all: the background sits on its lower clip, and the
    # held (projected) step still converges in a few iterations
    true = np.array([[3.3, 2.6, 2500.0, 0.0, 1.1]])
    data = gaussian_model(true, 7)
    params, ok, n_iter, _, _ = fit_boxes(data, np.array([[3.0, 3.0, 2000.0, 5.0, 1.3]]))
    assert ok[0] and n_iter[0] <= 15
    np.testing.assert_allclose(
        params[0, [0, 1, 2, 4]], true[0, [0, 1, 2, 4]], rtol=1e-3
    )
    assert params[0, 3] < 1e-3


def test_box_members_are_the_nearest_neighbours_in_or_near_the_box():
    from sklearn_smlm.fitting._localizer import _box_members

    # a brute-force reference on a half-pixel grid (many distance ties)
    rng = np.random.default_rng(5)
    n, size, margin = 60, 7, 1.5
    f = rng.integers(0, 3, n)
    cx = np.round(rng.uniform(0, 30, n) * 2) / 2
    cy = np.round(rng.uniform(0, 30, n) * 2) / 2
    r0 = np.clip(np.round(cy).astype(int) - size // 2, 0, 31 - size)
    c0 = np.clip(np.round(cx).astype(int) - size // 2, 0, 31 - size)
    got = _box_members(f, cx, cy, r0, c0, size, 3, margin)
    for i in range(n):
        near = [
            j
            for j in range(n)
            if j != i
            and f[j] == f[i]
            and -margin <= cx[j] - c0[i] <= size - 1 + margin
            and -margin <= cy[j] - r0[i] <= size - 1 + margin
        ]
        near.sort(key=lambda j: (np.hypot(cx[j] - cx[i], cy[j] - cy[i]), j))
        assert got[i] == [i, *near[:2]]


def test_predict_fits_spots_at_the_frame_edge_with_the_width_of_the_others():
    # 24 spots inside, one 0.8 px from the left edge in every frame
    rng = np.random.default_rng(2)
    mean = np.full((6, 40, 40), 15.0)
    for f in range(6):
        for cy in (8, 20, 32):
            paint(mean, 12 + rng.uniform(-0.5, 0.5), cy, 2000.0, 1.2, f)
            paint(mean, 28 + rng.uniform(-0.5, 0.5), cy, 2000.0, 1.2, f)
        paint(mean, 0.3, 20.0, 2000.0, 1.2, f)
    frames = 100.0 + rng.poisson(mean)
    table = GaussianFitLocalizer(threshold=6.0).fit().predict(frames)
    at_edge = table["x_nm"].to_numpy() < 300.0
    assert at_edge.sum() == 6 and len(table) == 42
    inner = table.loc[~at_edge, "sigma_nm"]
    np.testing.assert_allclose(table.loc[at_edge, "sigma_nm"], np.median(inner))


def test_compiled_median_is_numpys_median_on_ties_and_outliers():
    # the wavelet filter's noise estimate: histogram select, exact
    from sklearn_smlm.fitting._kernels import _median

    rng = np.random.default_rng(3)
    buf, hist = np.empty((2, 5000)), np.zeros((4, 256), np.int64)
    cases = [
        np.array([4.0, 2.0, 2.0, 9.0, 2.0, 2.0]),  # both middle values tied
        np.round(rng.normal(size=4096) * 4) / 256,  # many tied values
        rng.normal(size=4095),
        -np.abs(rng.normal(size=4096)),  # even length, all below zero
        np.concatenate([rng.normal(size=999), [1e30]]),  # one far outlier
        np.full(64, 2.5),
        rng.poisson(3, 4000).astype(float),
        np.array([1.0, 3.0]),
        np.array([7.0]),
    ]
    for a in cases:
        assert _median(a.copy(), buf, hist) == np.median(a)


def test_compiled_boxes_are_the_fancy_indexed_boxes_shifted_in_at_the_border():
    from sklearn_smlm.fitting._localizer import _boxes

    rng = np.random.default_rng(5)
    frames = rng.normal(100.0, 10.0, (3, 12, 15)).astype(np.float32)
    f = np.array([0, 1, 2, 2, 0])
    row = np.array([0, 11, 5, 1, 6])
    col = np.array([14, 0, 7, 13, 2])
    boxes, r0, c0 = _boxes(frames, f, row, col, 5)
    # by hand: clipped corners, then the pixels
    np.testing.assert_array_equal(r0, [0, 7, 3, 0, 4])
    np.testing.assert_array_equal(c0, [10, 0, 5, 10, 0])
    for b in range(5):
        want = frames[f[b], r0[b] : r0[b] + 5, c0[b] : c0[b] + 5].astype(np.float64)
        np.testing.assert_array_equal(boxes[b], want)
    assert boxes.dtype == np.float64


def test_candidates_in_frame_order_whatever_the_numba_threads():
    # detection splits the frames across numba's threads: same candidates,
    # in frame then raster order, as one thread (200 frames: 4 pieces)
    numba = pytest.importorskip("numba")
    rng = np.random.default_rng(8)
    frames = 100.0 + rng.poisson(10.0, (200, 32, 32)).astype(np.float32)
    frames[:, 5:27:7, 6:28:5] += 400.0  # 16 spots per frame
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = detect_candidates(frames)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = detect_candidates(frames)
    finally:
        numba.set_num_threads(before)
    assert len(one[0]) >= 200 * 16
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    key = one[0] * 32 * 32 + one[1] * 32 + one[2]
    assert (np.diff(key) > 0).all()


@pytest.mark.parametrize("threads", [1, 2])
def test_fits_and_detection_do_not_depend_on_the_numba_threads(threads):
    numba = pytest.importorskip("numba")
    mean, _, rng = sparse_frames(n_frames=80, seed=4)
    frames = 100.0 + rng.poisson(mean)  # 320 spots: enough boxes for two threads
    loc = GaussianFitLocalizer(pixel_size_nm=PX, baseline_adu=100.0).fit()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = loc.predict(frames)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        pd.testing.assert_frame_equal(loc.predict(frames), one, check_exact=True)
    finally:
        numba.set_num_threads(before)
