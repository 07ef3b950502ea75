"""Tests of ``sklearn-smlm calibrate`` and ``localize --calibration``."""

import numpy as np
import pytest
import yaml

from sklearn_smlm.calibration import AstigmaticCalibration
from sklearn_smlm.cli import main
from sklearn_smlm.cli.calibrate import load_calibration
from sklearn_smlm.io import read_localizations, write_stack
from sklearn_smlm.metrics import localization_metrics
from sklearn_smlm.simulation import PAFPSimulator, simulate_bead_stack
from sklearn_smlm.simulation._presets import ASTIGMATIC_2016


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli3d")
    stack, _ = simulate_bead_stack(
        ASTIGMATIC_2016, z_range_nm=(-750, 750), z_step_nm=25.0, random_state=0
    )
    write_stack(folder / "beads.tif", stack.astype(np.uint16), pixel_size_nm=100.0)
    sim = PAFPSimulator.from_preset(
        "low_density_as", frame_shape=(32, 32), random_state=0
    )
    movie, truth = sim.simulate(40, return_table=True)
    write_stack(folder / "movie.tif", movie.astype(np.uint16), pixel_size_nm=100.0)
    return folder, truth


def test_calibrate_writes_file_and_plot(files, capsys):
    folder, _ = files
    out = folder / "calib.yaml"
    status = main(
        [
            "calibrate",
            str(folder / "beads.tif"),
            "--z-step-nm",
            "25",
            "-o",
            str(out),
            "--plot",
            str(folder / "calib.png"),
        ]
    )
    assert status == 0
    assert "wrote" in capsys.readouterr().out
    cal = AstigmaticCalibration.load(out)
    assert cal.curve_x_["focus_nm"] == pytest.approx(-250.0, abs=15.0)
    assert cal.curve_y_["focus_nm"] == pytest.approx(250.0, abs=15.0)
    assert (folder / "calib.png").read_bytes()[:4] == b"\x89PNG"


def test_localize_with_calibration_gives_z(files):
    folder, truth = files
    cal = AstigmaticCalibration.from_parameters(
        **ASTIGMATIC_2016, z_range_nm=(-750, 750)
    )
    cal.save(folder / "true.yaml")
    out = folder / "locs.csv"
    camera = ["--baseline-adu", "100", "--e-per-adu", "50", "--em-gain", "100"]
    args = ["localize", str(folder / "movie.tif"), "-o", str(out), *camera]
    assert main([*args, "--calibration", str(folder / "true.yaml"), "-q"]) == 0
    table = read_localizations(out)
    assert {"z_nm", "uncertainty_z_nm", "sigma_x_nm"} <= set(table.columns)
    m = localization_metrics(truth, table, tolerance_nm=250, axial_tolerance_nm=500)
    assert m["jaccard"] > 0.5 and m["rmse_z_nm"] < 120
    # a Picasso 3D calibration works the same way: the widths Picasso's
    # least-squares fit measures (a Gaussian sampled at the pixel centres)
    cal.to_picasso(folder / "picasso.yaml", pixel_size_nm=100.0)
    picasso = yaml.safe_load((folder / "picasso.yaml").read_text())
    z = np.linspace(-750, 750, 151)
    sampled = 100.0 * np.polyval(picasso["Y Coefficients"], z)
    np.testing.assert_allclose(
        sampled, np.hypot(cal.widths(z)[1], 100 / 12**0.5), atol=1
    )
    # ... which localize reads back as the widths of the fitted (integrated) model
    read = load_calibration(folder / "picasso.yaml", 100.0)
    for got, want in zip(read.widths(z)[:2], cal.widths(z)[:2], strict=True):
        np.testing.assert_allclose(got, want, atol=1.0)
    out2 = folder / "locs_picasso.csv"
    args[3] = str(out2)
    assert main([*args, "--calibration", str(folder / "picasso.yaml"), "-q"]) == 0
    table2 = read_localizations(out2)
    assert len(table2) == pytest.approx(len(table), rel=0.05)
    # (a 6th-order polynomial follows the curves less closely near the ends)
    m2 = localization_metrics(truth, table2, tolerance_nm=250, axial_tolerance_nm=500)
    assert m2["jaccard"] == pytest.approx(m["jaccard"], abs=0.1)
    assert m2["rmse_z_nm"] < 120


def test_calibrate_errors_are_one_line(files, capsys):
    folder, _ = files
    beads = str(folder / "beads.tif")
    assert main(["calibrate", beads, "--z-step-nm", "0", "-o", "c.yaml"]) == 2
    assert "must not be 0" in capsys.readouterr().err
    for method in ("hybrid", "cnn"):  # neither is silently replaced by the fitter
        status = main(
            [
                "localize",
                str(folder / "movie.tif"),
                "-o",
                str(folder / "x.csv"),
                "--method",
                method,
                "--calibration",
                str(folder / "calib.yaml"),
            ]
        )
        assert status == 2
        assert f"does not combine with --method {method}" in capsys.readouterr().err
    (folder / "bad.yaml").write_text("format: nothing\n")
    status = main(
        [
            "localize",
            str(folder / "movie.tif"),
            "-o",
            str(folder / "x.csv"),
            "--calibration",
            str(folder / "bad.yaml"),
        ]
    )
    assert status == 1
    assert "not an sklearn-smlm calibration" in capsys.readouterr().err
