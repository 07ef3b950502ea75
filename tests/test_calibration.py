"""Tests of the astigmatic calibration: curves, bead fits, files, Picasso import."""

import numpy as np
import pytest
import yaml
from sklearn.base import clone

from sklearn_smlm.calibration import CALIBRATION_FORMAT, AstigmaticCalibration
from sklearn_smlm.simulation import defocus_width, simulate_bead_stack

X_CURVE = dict(sigma0_nm=110.0, focus_nm=-200.0, depth_nm=400.0, a=0.1, b=0.02)
Y_CURVE = dict(sigma0_nm=120.0, focus_nm=250.0, depth_nm=450.0, a=-0.05, b=0.0)


def _true():
    return AstigmaticCalibration.from_parameters(
        x=X_CURVE, y=Y_CURVE, z_range_nm=(-600.0, 600.0)
    )


def test_defocus_width_by_hand_and_derivative():
    # at focus +- depth the argument is 1 + 1 (+ a for +d, - a for -d) + b
    s = defocus_width(
        np.array([-200.0, 200.0, 600.0]), 100.0, 200.0, 400.0, a=0.3, b=0.1
    )
    np.testing.assert_allclose(
        s, [100 * np.sqrt(2 - 0.3 + 0.1), 100, 100 * np.sqrt(2.4)]
    )
    z = np.linspace(-700, 700, 15)
    _, d = defocus_width(z, 110.0, 50.0, 380.0, 0.2, 0.05, derivative=True)
    eps = 1e-3
    numeric = (
        defocus_width(z + eps, 110.0, 50.0, 380.0, 0.2, 0.05)
        - defocus_width(z - eps, 110.0, 50.0, 380.0, 0.2, 0.05)
    ) / (2 * eps)
    np.testing.assert_allclose(d, numeric, rtol=1e-6, atol=1e-9)


def test_from_parameters_widths_and_errors():
    cal = _true()
    sx, sy = cal.widths([-200.0, 250.0])
    assert sx[0] == pytest.approx(110.0)
    assert sy[1] == pytest.approx(120.0)
    with pytest.raises(ValueError, match="lacks"):
        AstigmaticCalibration.from_parameters(
            x={"sigma0_nm": 1.0}, y=Y_CURVE, z_range_nm=(-1, 1)
        )
    with pytest.raises(ValueError, match="depth_nm must be > 0"):
        AstigmaticCalibration.from_parameters(
            x=dict(X_CURVE, depth_nm=-1.0), y=Y_CURVE, z_range_nm=(-1, 1)
        )
    with pytest.raises(ValueError, match="unknown key"):
        AstigmaticCalibration.from_parameters(
            x=dict(X_CURVE, c=1.0), y=Y_CURVE, z_range_nm=(-1, 1)
        )
    with pytest.raises(ValueError, match="low < high"):
        AstigmaticCalibration.from_parameters(x=X_CURVE, y=Y_CURVE, z_range_nm=(1, -1))
    with pytest.raises(ValueError, match="width <= 0"):
        AstigmaticCalibration.from_parameters(
            x={"coefficients": [1.0, 0.0]},
            y={"coefficients": [0.0, 100.0]},
            z_range_nm=(-10, 10),
            model="polynomial",
        )


def test_fit_recovers_curves_from_simulated_beads():
    true = _true()
    stack, truth = simulate_bead_stack(true, n_beads=5, z_step_nm=20.0, random_state=3)
    cal = AstigmaticCalibration(z_step_nm=20.0).fit(stack)
    assert cal.beads_["bead"].nunique() == truth["bead"].nunique()
    z = np.linspace(-600, 600, 61)
    fx, fy = cal.widths(z)
    tx, ty = true.widths(z)
    # the widths of 5 bright beads per slice pin the curves to ~1 % of the width
    assert np.max(np.abs(fx - tx) / tx) < 0.02
    assert np.max(np.abs(fy - ty) / ty) < 0.02
    assert cal.curve_x_["focus_nm"] == pytest.approx(-200.0, abs=15.0)
    assert cal.curve_y_["focus_nm"] == pytest.approx(250.0, abs=15.0)
    assert cal.z_range_nm_ == (-600.0, 600.0)
    assert max(cal.rms_residual_nm_) < 5.0
    # bead positions agree with the truth
    first = cal.beads_[cal.beads_["slice"] == 30].sort_values("x_nm")
    true_xy = truth[truth["frame"] == 30].sort_values("x_nm")
    np.testing.assert_allclose(first["x_nm"], true_xy["x_nm"], atol=5.0)


def test_fit_uses_z_start_and_sign_of_step():
    true = _true()
    stack, _ = simulate_bead_stack(true, n_beads=3, z_step_nm=40.0, random_state=1)
    # the same stack read top-down: every depth flips sign
    cal = AstigmaticCalibration(z_step_nm=-40.0).fit(stack)
    assert cal.curve_x_["focus_nm"] == pytest.approx(200.0, abs=25.0)
    shifted = AstigmaticCalibration(z_step_nm=40.0, z_start_nm=0.0).fit(stack)
    assert shifted.curve_x_["focus_nm"] == pytest.approx(400.0, abs=25.0)


def test_fit_errors_are_clear():
    with pytest.raises(ValueError, match="at least 7 slices"):
        AstigmaticCalibration().fit(np.zeros((3, 32, 32)))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no bead found"):
        AstigmaticCalibration().fit(100.0 + rng.poisson(10.0, (20, 32, 32)))
    with pytest.raises(ValueError, match="z_step_nm"):
        AstigmaticCalibration(z_step_nm=0).fit(np.zeros((10, 32, 32)))


def test_save_load_round_trip(tmp_path):
    true = _true()
    stack, _ = simulate_bead_stack(true, n_beads=3, z_step_nm=40.0, random_state=0)
    cal = AstigmaticCalibration(z_step_nm=40.0).fit(stack)
    path = cal.save(tmp_path / "calib.yaml")
    text = path.read_text()
    assert text.startswith("#")
    doc = yaml.safe_load(text)
    assert doc["format"] == CALIBRATION_FORMAT
    assert set(doc["x"]) == {"sigma0_nm", "focus_nm", "depth_nm", "a", "b"}
    back = AstigmaticCalibration.load(path)
    assert back.curve_x_ == cal.curve_x_
    assert back.curve_y_ == cal.curve_y_
    assert back.z_range_nm_ == cal.z_range_nm_
    assert back.z_step_nm == 40.0
    z = np.linspace(-500, 500, 11)
    np.testing.assert_array_equal(back.widths(z)[0], cal.widths(z)[0])
    (tmp_path / "other.yaml").write_text("format: something else\n")
    with pytest.raises(ValueError, match="not an sklearn-smlm calibration"):
        AstigmaticCalibration.load(tmp_path / "other.yaml")


def test_from_picasso_converts_pixels_and_magnification(tmp_path):
    # a Picasso-style file: width in camera pixels as a 6th-order polynomial
    # of the stage depth, 81 frames 10 nm apart, magnification 0.8
    px, mag = 130.0, 0.8
    stage_z = np.linspace(-400, 400, 81)
    cx = np.polyfit(stage_z, defocus_width(stage_z, 1.0, -150.0, 400.0), 6)
    cy = np.polyfit(stage_z, defocus_width(stage_z, 1.1, 150.0, 400.0), 6)
    doc = {
        "X Coefficients": [float(v) for v in cx],
        "Y Coefficients": [float(v) for v in cy],
        "Number of frames": 81,
        "Step size in nm": 10.0,
        "Magnification factor": mag,
    }
    path = tmp_path / "picasso_calib.yaml"
    path.write_text(yaml.safe_dump(doc))
    cal = AstigmaticCalibration.from_picasso(
        path, pixel_size_nm=px, point_sampled=False
    )
    assert cal.model_ == "polynomial"
    assert cal.z_range_nm_ == pytest.approx((-320.0, 320.0))
    sample_z = np.array([-300.0, 0.0, 120.0])
    sx, sy = cal.widths(sample_z)
    np.testing.assert_allclose(sx, px * np.polyval(cx, sample_z / mag), rtol=1e-9)
    np.testing.assert_allclose(sy, px * np.polyval(cy, sample_z / mag), rtol=1e-9)
    # the derivative follows the polynomial
    _, _, dsx, _ = cal.widths(sample_z, derivative=True)
    np.testing.assert_allclose(
        dsx, px * np.polyval(np.polyder(cx), sample_z / mag) / mag, rtol=1e-9
    )
    over = AstigmaticCalibration.from_picasso(
        path, pixel_size_nm=px, magnification_factor=1.0, point_sampled=False
    )
    assert over.z_range_nm_ == pytest.approx((-400.0, 400.0))
    (tmp_path / "bad.yaml").write_text("X Coefficients: [1, 2]\n")
    with pytest.raises(ValueError, match="not a Picasso 3D calibration"):
        AstigmaticCalibration.from_picasso(tmp_path / "bad.yaml", pixel_size_nm=px)


def test_to_picasso_writes_what_from_picasso_and_zfit_read(tmp_path):
    cal, px = _true(), 130.0
    z = np.linspace(-600.0, 600.0, 241)
    path = cal.to_picasso(tmp_path / "p.yaml", pixel_size_nm=px, point_sampled=False)
    doc = yaml.safe_load(path.read_text())
    # the keys picasso.zfit reads; 7 coefficients per axis, highest power first
    assert len(doc["X Coefficients"]) == len(doc["Y Coefficients"]) == 7
    assert doc["Magnification factor"] == 1.0
    assert doc["Step size in nm"] * (doc["Number of frames"] - 1) == pytest.approx(1200)
    # Picasso's width in pixels at depth z is the polynomial at z
    np.testing.assert_allclose(
        px * np.polyval(doc["X Coefficients"], z), cal.widths(z)[0], atol=1.0
    )
    back = AstigmaticCalibration.from_picasso(
        path, pixel_size_nm=px, point_sampled=False
    )
    assert back.z_range_nm_ == pytest.approx((-600.0, 600.0))
    for got, want in zip(back.widths(z), cal.widths(z), strict=True):
        np.testing.assert_allclose(got, want, atol=1.0)
    # what Picasso's point-sampled Gaussian fit measures: + a pixel^2 / 12
    sampled = cal.to_picasso(tmp_path / "s.yaml", pixel_size_nm=px)
    raw = AstigmaticCalibration.from_picasso(
        sampled, pixel_size_nm=px, point_sampled=False
    )
    np.testing.assert_allclose(
        raw.widths(z)[1], np.hypot(cal.widths(z)[1], px / 12**0.5), atol=1.0
    )
    # and back by default: Picasso's point-sampled widths read as integrated ones
    back = AstigmaticCalibration.from_picasso(sampled, pixel_size_nm=px)
    for got, want in zip(back.widths(z), cal.widths(z), strict=True):
        np.testing.assert_allclose(got, want, atol=1.0)
    narrow = {"X Coefficients": [0.0] * 6 + [0.2], "Y Coefficients": [0.0] * 6 + [1]}
    (tmp_path / "narrow.yaml").write_text(yaml.safe_dump(narrow))
    with pytest.raises(ValueError, match="point-sampled"):
        AstigmaticCalibration.from_picasso(
            tmp_path / "narrow.yaml", pixel_size_nm=px, point_sampled=True
        )
    with pytest.raises(ValueError, match="pixel_size_nm"):
        cal.to_picasso(tmp_path / "x.yaml", pixel_size_nm=-1.0)


def test_z_from_widths_inverts_the_curves():
    cal = _true()
    z = np.array([-590.0, -123.0, 0.0, 77.0, 444.0])
    est, dist = cal.z_from_widths(*cal.widths(z), step_nm=0.5)
    np.testing.assert_allclose(est, z, atol=0.5)
    assert np.all(dist < 1e-2)


def test_plot_writes_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    true = _true()
    stack, _ = simulate_bead_stack(true, n_beads=2, z_step_nm=50.0, random_state=0)
    cal = AstigmaticCalibration(z_step_nm=50.0).fit(stack)
    ax = cal.plot(tmp_path / "calib.png")
    assert (tmp_path / "calib.png").read_bytes()[:4] == b"\x89PNG"
    assert len(ax.lines) >= 4
    import matplotlib.pyplot as plt

    plt.close("all")


def test_estimator_conventions():
    cal = AstigmaticCalibration(z_step_nm=25.0, box_size=13)
    assert clone(cal).get_params() == cal.get_params()
    assert not hasattr(cal, "curve_x_")
