"""PAFPSimulator: truth, statistics, streams, structures, presets, errors."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from sklearn_smlm.simulation import PRESETS, PAFPSimulator

PX = 100.0


def _sim(**kw):
    params = dict(frame_shape=(16, 16), density_per_um2=2.0, random_state=0)
    params.update(kw)
    return PAFPSimulator(**params)


def test_outputs_shapes_dtypes_and_truth_inside_field():
    sim = _sim(frame_shape=(12, 20))
    X, y = sim.simulate(5)
    assert X.shape == (5, 12, 20) and X.dtype == np.float32
    assert np.all(X == np.round(X))
    assert len(y) == 5
    for p in y:
        assert p.dtype == np.float64 and p.shape[1] == 2
        assert np.all((p[:, 0] >= 0) & (p[:, 0] < 20 * PX))
        assert np.all((p[:, 1] >= 0) & (p[:, 1] < 12 * PX))
    _, table = sim.simulate(5, return_table=True)
    assert list(table.columns) == [
        "frame",
        "x_nm",
        "y_nm",
        "photons",
        "background",
        "sigma_nm",
    ]
    assert table["frame"].dtype == np.int64
    np.testing.assert_allclose(table[["x_nm", "y_nm"]].to_numpy(), np.concatenate(y))


def test_same_seed_is_bit_identical_and_other_seed_differs():
    a = _sim(random_state=7).simulate(40, return_table=True)
    b = _sim(random_state=7).simulate(40, return_table=True)
    c = _sim(random_state=8).simulate(40)
    np.testing.assert_array_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("chunk_size", [1, 7, 32, 50, 1000])
def test_iter_simulate_concatenates_to_simulate(chunk_size):
    sim = _sim(mean_on_frames=3.0, density_per_um2=(1.0, 4.0), random_state=5)
    X, table = sim.simulate(70, return_table=True)
    chunks = list(sim.iter_simulate(70, chunk_size=chunk_size, return_table=True))
    assert all(len(Xc) <= chunk_size for Xc, _ in chunks)
    np.testing.assert_array_equal(np.concatenate([Xc for Xc, _ in chunks]), X)
    pd.testing.assert_frame_equal(
        pd.concat([t for _, t in chunks], ignore_index=True), table
    )
    lists = [p for _, yc in sim.iter_simulate(70, chunk_size=chunk_size) for p in yc]
    assert len(lists) == 70
    for p, q in zip(lists, sim.simulate(70)[1], strict=True):
        np.testing.assert_array_equal(p, q)


def test_prefix_of_longer_movie_is_shorter_movie():
    sim = _sim(mean_on_frames=2.0)
    X10, y10 = sim.simulate(10)
    X45, y45 = sim.simulate(45)
    np.testing.assert_array_equal(X45[:10], X10)


def test_mean_adu_matches_camera_model_without_emitters():
    qe, gain, e_per_adu, base, b = 0.9, 150.0, 30.0, 200.0, 25.0
    sim = _sim(
        density_per_um2=0.0,
        background_photons=b,
        quantum_efficiency=qe,
        em_gain=gain,
        e_per_adu=e_per_adu,
        read_noise_e=60.0,
        baseline_adu=base,
        frame_shape=(32, 32),
    )
    X, y = sim.simulate(64)
    assert sum(len(p) for p in y) == 0
    mean = base + qe * b * gain / e_per_adu  # 312.5 ADU
    var = 2 * qe * b * (gain / e_per_adu) ** 2 + (60.0 / e_per_adu) ** 2 + 1 / 12
    assert abs(X.mean() - mean) < 4 * np.sqrt(var / X.size)
    assert X.var() == pytest.approx(var, rel=0.03)


@pytest.mark.parametrize("fast_noise", [True, False])
def test_frame_sum_matches_emitted_photons(fast_noise):
    # emitters on fixed sites far from the border: all their light is in the
    # frame, so sum(X - baseline) = QE * gain / e_per_adu * (photons + bg)
    sites = np.array([[800.0, 800.0], [1000.0, 700.0], [700.0, 1100.0], [900, 900.0]])
    qe, gain, e_per_adu, base, b = 0.8, 100.0, 40.0, 100.0, 5.0
    sim = _sim(
        structure=sites,
        density_per_um2=1.0,
        photons=2000.0,
        photon_distribution="constant",
        background_photons=b,
        quantum_efficiency=qe,
        em_gain=gain,
        e_per_adu=e_per_adu,
        read_noise_e=0.0,
        baseline_adu=base,
        fast_noise=fast_noise,
    )
    X, table = sim.simulate(64, return_table=True)
    assert np.all(table["photons"] == 2000.0)
    counts = np.bincount(table["frame"], minlength=64)
    n_pix = 16 * 16
    signal = (X - base).sum(axis=(1, 2))
    expected = qe * gain / e_per_adu * (counts * 2000.0 + b * n_pix)
    # per-frame variance of the sum: 2 * QE * photons * (g / e)^2 + rounding
    var = 2 * qe * (counts * 2000.0 + b * n_pix) * (gain / e_per_adu) ** 2 + n_pix / 12
    z = (signal - expected) / np.sqrt(var)
    assert abs(z.mean()) < 4 / np.sqrt(64)
    assert 0.6 < z.std() < 1.4
    assert counts.mean() == pytest.approx(1.0 * 1.6 * 1.6, rel=0.4)  # density * FOV


def test_emitter_count_is_poisson_with_the_density():
    sim = _sim(frame_shape=(20, 20), density_per_um2=5.0)
    _, y = sim.simulate(200)
    counts = np.array([len(p) for p in y])
    expected = 5.0 * 2.0 * 2.0  # 20 emitters per 2 x 2 um frame
    assert abs(counts.mean() - expected) < 4 * np.sqrt(expected / 200)
    assert counts.var() == pytest.approx(expected, rel=0.3)


def test_margin_emitters_give_light_but_no_truth():
    sim = _sim(
        frame_shape=(16, 16),
        density_per_um2=3.0,
        camera="ideal",
        background_photons=0.0,
        photons=3000.0,
        photon_distribution="constant",
    )
    X, y = sim.simulate(100)
    # light in the first column from emitters whose centre is left of it
    no_truth_near_left = [f for f in range(100) if not np.any(y[f][:, 0] < 300)]
    assert no_truth_near_left
    assert X[no_truth_near_left, :, 0].sum() > 0
    assert _sim(margin_nm=0.0, camera="ideal").simulate(2)[0].shape == (2, 16, 16)


def test_ideal_camera_without_background_counts_photons():
    sim = _sim(
        camera="ideal",
        background_photons=0.0,
        photons=1000.0,
        photon_distribution="constant",
        structure=np.array([[800.0, 800.0]]),
        density_per_um2=2.0,
    )
    X, table = sim.simulate(50, return_table=True)
    counts = np.bincount(table["frame"], minlength=50)
    totals = X.sum(axis=(1, 2))
    np.testing.assert_allclose(totals.mean(), 1000.0 * counts.mean(), rtol=0.02)


def test_3d_and_astigmatic_widths_in_table():
    sim = _sim(z_range_nm=(-600.0, 600.0), psf_sigma_nm=100.0, focal_depth_nm=300.0)
    X, y = sim.simulate(4)
    assert y[0].shape[1] == 3
    _, t = sim.simulate(4, return_table=True)
    assert t["z_nm"].between(-600, 600).all()
    np.testing.assert_allclose(
        t["sigma_nm"], 100 * np.sqrt(1 + (t["z_nm"] / 300.0) ** 2)
    )
    sim.set_params(astigmatism_nm=250.0)
    _, t = sim.simulate(4, return_table=True)
    np.testing.assert_allclose(
        t["sigma_x_nm"], 100 * np.sqrt(1 + ((t["z_nm"] - 250.0) / 300.0) ** 2)
    )
    np.testing.assert_allclose(
        t["sigma_y_nm"], 100 * np.sqrt(1 + ((t["z_nm"] + 250.0) / 300.0) ** 2)
    )
    np.testing.assert_allclose(t["sigma_nm"] ** 2, t["sigma_x_nm"] * t["sigma_y_nm"])


def test_psf_fwhm_and_sigma():
    t = _sim(psf_fwhm_nm=235.482).simulate(3, return_table=True)[1]
    np.testing.assert_allclose(t["sigma_nm"], 100.0, rtol=1e-4)
    t = _sim(psf_sigma_nm=(80.0, 160.0)).simulate(64, return_table=True)[1]
    per_frame = t.groupby("frame")["sigma_nm"].agg(["min", "max"])
    np.testing.assert_allclose(per_frame["min"], per_frame["max"])
    assert per_frame["min"].between(80, 160).all() and per_frame["min"].std() > 10


def test_density_gradient_top_to_bottom():
    sim = _sim(frame_shape=(20, 20), density_per_um2=4.0, density_gradient=(1.0, 3.0))
    t = sim.simulate(200, return_table=True)[1]
    top = (t["y_nm"] < 1000).sum()
    bottom = (t["y_nm"] >= 1000).sum()
    # mean factor over the top half 1.5, bottom half 2.5
    assert bottom / top == pytest.approx(2.5 / 1.5, rel=0.1)
    assert len(t) / 200 == pytest.approx(4.0 * 4.0 * 2.0, rel=0.1)


def test_background_gradient_left_to_right():
    sim = _sim(
        frame_shape=(8, 10),
        density_per_um2=0.0,
        camera="ideal",
        background_photons=50.0,
        background_gradient=(0.5, 1.5),
    )
    X, _ = sim.simulate(400)
    expected = 50.0 * (0.5 + (np.arange(10) + 0.5) / 10)
    np.testing.assert_allclose(X.mean(axis=(0, 1)), expected, rtol=0.03)
    t = _sim(background_gradient=(0.5, 1.5), background_photons=50.0).simulate(
        5, return_table=True
    )[1]
    col = (t["x_nm"] // PX).to_numpy()
    np.testing.assert_allclose(t["background"], 50.0 * (0.5 + (col + 0.5) / 16))


def test_background_variation_is_smooth_and_mean_preserving():
    sim = _sim(
        frame_shape=(32, 32),
        density_per_um2=0.0,
        camera="ideal",
        background_photons=1000.0,
        background_variation=0.3,
    )
    X, _ = sim.simulate(32)
    assert X.mean() == pytest.approx(1000.0, rel=0.05)
    assert X.std(axis=(1, 2)).mean() > 3 * np.sqrt(1000.0)


def test_ranges_draw_per_frame_values():
    sim = _sim(frame_shape=(32, 32), density_per_um2=(1.0, 8.0), photons=(500, 5000))
    t = sim.simulate(96, return_table=True)[1]
    counts = np.bincount(t["frame"], minlength=96)
    # 10 to 82 emitters expected per frame: far more spread than Poisson(mean)
    assert counts.var() > 3 * counts.mean()
    mean_photons = t.groupby("frame")["photons"].mean()
    assert mean_photons.min() < 1200 and mean_photons.max() > 2500


def test_blinking_emitters_stay_on_consecutive_frames():
    sim = _sim(frame_shape=(32, 32), density_per_um2=1.0, mean_on_frames=4.0)
    _, y = sim.simulate(96)
    counts = np.array([len(p) for p in y])
    # steady state from frame 0: density * area on in every frame
    assert counts[:10].mean() == pytest.approx(1.0 * 3.2 * 3.2, rel=0.35)
    assert counts.mean() == pytest.approx(1.0 * 3.2 * 3.2, rel=0.15)
    # a fraction 1 - 1/4 of the emitters of a frame is still on at the next
    repeats = [
        np.isin(y[f][:, 0], y[f + 1][:, 0]).sum() / max(len(y[f]), 1) for f in range(95)
    ]
    assert np.mean(repeats) == pytest.approx(0.75, abs=0.08)
    _, y1 = _sim(mean_on_frames=1.0).simulate(20)
    assert not any(np.isin(y1[f][:, 0], y1[f + 1][:, 0]).any() for f in range(19))


def test_user_points_and_mask_structures():
    sites = np.array([[300.0, 400.0], [1200.0, 500.0], [800.0, 1400.0]])
    y = _sim(structure=sites, density_per_um2=3.0).simulate(20)[1]
    allpos = np.concatenate(y)
    assert len(allpos) > 0
    assert np.isin(allpos[:, 0], sites[:, 0]).all()
    mask = np.zeros((4, 4), dtype=bool)
    mask[1, 2] = True  # x in [800, 1200), y in [400, 800) of a 1.6 um field
    t = _sim(structure=mask, density_per_um2=2.0).simulate(50, return_table=True)[1]
    assert t["x_nm"].between(800, 1200).all() and t["y_nm"].between(400, 800).all()
    assert len(t) / 50 == pytest.approx(2.0 * 1.6 * 1.6, rel=0.2)


def test_filaments_put_emitters_on_thin_curves():
    sim = _sim(
        frame_shape=(32, 32),
        structure="filaments",
        n_filaments=2,
        filament_width_nm=30.0,
        density_per_um2=3.0,
    )
    t = sim.simulate(64, return_table=True)[1]
    pts = t[["x_nm", "y_nm"]].to_numpy()
    occupied = np.unique((pts // 100).astype(int), axis=0)
    # two curves of ~3-6 um in a 3.2 um field cover far fewer than the
    # 1024 pixels a uniform sample would hit
    assert len(occupied) < 250
    # emitters within 15 nm laterally of their filament: nearest neighbours
    # among the densely sampled emitters are close
    from scipy.spatial import cKDTree

    d, _ = cKDTree(pts).query(pts, k=2)
    assert np.median(d[:, 1]) < 30
    # same seed -> same filaments
    t2 = sim.simulate(64, return_table=True)[1]
    pd.testing.assert_frame_equal(t, t2)
    # the density counts emitters per um^2 of field of view here too
    assert len(t) / 64 == pytest.approx(3.0 * 3.2 * 3.2, rel=0.25)


def test_3d_sites_make_a_3d_sample_with_wide_enough_window():
    sites = np.array([[1600.0, 1600.0, 0.0], [1600.0, 1600.0, 900.0]])
    sim = _sim(
        frame_shape=(32, 32),
        density_per_um2=0.2,
        structure=sites,
        camera="ideal",
        background_photons=0.0,
        photons=1000.0,
        photon_distribution="constant",
        psf_sigma_nm=100.0,
        focal_depth_nm=300.0,
    )
    X, table = sim.simulate(64, return_table=True)
    assert set(np.round(table["z_nm"])) <= {0.0, 900.0}
    np.testing.assert_allclose(
        table["sigma_nm"], 100.0 * np.sqrt(1 + (table["z_nm"] / 300.0) ** 2)
    )
    # a defocused spot (sigma 316 nm) keeps nearly all its light in the frame
    counts = np.bincount(table["frame"], minlength=64)
    np.testing.assert_allclose(X.sum() / counts.sum(), 1000.0, rtol=0.02)


def test_scmos_maps():
    shape = (8, 8)
    offset = np.full(shape, 100.0)
    offset[0, 0] = 300.0
    gain = np.full(shape, 0.5)
    gain[1, 1] = 1.0
    sim = _sim(
        frame_shape=shape,
        camera="scmos",
        density_per_um2=0.0,
        background_photons=100.0,
        quantum_efficiency=0.8,
        scmos_offset_adu=offset,
        scmos_gain_adu_per_e=gain,
        scmos_read_noise_e=np.full(shape, 1.5),
    )
    X, _ = sim.simulate(400)
    m = X.mean(axis=0)
    expected = offset + 0.8 * 100.0 * gain
    np.testing.assert_allclose(m, expected, rtol=0.02)
    v = X.var(axis=0)
    assert v[1, 1] == pytest.approx(80.0 + 1.5**2, rel=0.25)
    # default maps are drawn once and fixed over the movie
    sim2 = _sim(camera="scmos", density_per_um2=0.0, read_noise_e=2.0)
    X2, _ = sim2.simulate(64)
    assert np.ptp(X2.mean(axis=0)) > 3


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_simulate(name):
    sim = PAFPSimulator.from_preset(name, random_state=0)
    X, y = sim.simulate(4)
    assert X.shape == (4, 64, 64)
    assert (y[0].shape[1] == 3) == (sim.z_range_nm is not None)


def test_bt_hd_2013_preset_matches_measured_statistics():
    # Values measured on data/bt_hd_recreated/frames.tif (361 frames): mean
    # 304.8 ADU, 1st percentile 118 ADU, 224.9 emitters per frame.
    X, y = PAFPSimulator.from_preset("bt_hd_2013", random_state=0).simulate(64)
    assert X.mean() == pytest.approx(304.8, rel=0.03)
    assert np.percentile(X, 1) == pytest.approx(118, abs=10)
    assert np.mean([len(p) for p in y]) == pytest.approx(224.9, rel=0.03)
    with pytest.raises(ValueError, match="unknown preset"):
        PAFPSimulator.from_preset("nope")
    sim = PAFPSimulator.from_preset("low_density", photons=900.0)
    assert sim.photons == 900.0


def test_sklearn_params_and_clone():
    sim = _sim(em_gain=(100.0, 300.0))
    params = sim.get_params()
    assert params["em_gain"] == (100.0, 300.0)
    assert clone(sim).get_params()["density_per_um2"] == 2.0


@pytest.mark.parametrize(
    "params, match",
    [
        ({"density_per_um2": -1.0}, "density_per_um2 must be >= 0"),
        ({"psf_sigma_nm": 0.0}, "psf_sigma_nm must be > 0"),
        ({"psf_fwhm_nm": -3.0}, "psf_fwhm_nm must be > 0"),
        ({"frame_shape": (0, 64)}, "frame_shape must be two integers >= 1"),
        ({"pixel_size_nm": 0}, "pixel_size_nm must be > 0"),
        ({"camera": "ccd"}, "camera must be one of"),
        ({"photons": (500.0, 100.0)}, "low <= high"),
        ({"photons": (1, 2, 3)}, "a number or a \\(low, high\\) pair"),
        ({"quantum_efficiency": 1.5}, "quantum_efficiency must be in"),
        ({"photon_distribution": "normal"}, "photon_distribution must be one of"),
        ({"mean_on_frames": 0.5}, "mean_on_frames must be >= 1"),
        ({"structure": "tubes"}, "structure must be"),
        ({"structure": np.zeros((4, 4))}, "not all zero"),
        ({"z_range_nm": (500.0, -500.0)}, "low <= high"),
        ({"background_mask": np.ones((3, 3))}, "background_mask must have shape"),
        ({"random_state": "seed"}, "random_state must be"),
    ],
)
def test_bad_parameters_give_clear_errors(params, match):
    sim = _sim(**params)
    with pytest.raises(ValueError, match=match):
        sim.simulate(2)


def test_bad_n_frames_and_chunk_size():
    sim = _sim()
    with pytest.raises(ValueError, match="n_frames must be >= 1, got 0"):
        sim.simulate(0)
    with pytest.raises(ValueError, match="chunk_size must be"):
        next(sim.iter_simulate(4, chunk_size=0))
    with pytest.raises(ValueError, match="em_gain must be a number"):
        _sim(em_gain="high").simulate(1)
    with pytest.raises(TypeError, match="frame_shape must be a pair"):
        _sim(frame_shape=64).simulate(1)
    with pytest.raises(TypeError, match="n_frames must be an integer"):
        sim.simulate(2.0)
    with pytest.raises(TypeError, match="chunk_size must be an integer"):
        next(sim.iter_simulate(4, chunk_size=1.5))
