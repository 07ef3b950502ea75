"""The 3D path through the command line: simulate -> localize -> evaluate."""

import re

import pytest

from sklearn_smlm.calibration import AstigmaticCalibration
from sklearn_smlm.cli import main
from sklearn_smlm.io import read_localizations
from sklearn_smlm.simulation._presets import ASTIGMATIC_2016


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim3d")
    return folder


def test_simulate_localize_evaluate_in_3d(simulated, capsys):
    folder = simulated
    argv = ["simulate", "-o", str(folder), "--preset", "low_density_as"]
    argv += ["--n-frames", "30", "--frame-shape", "32", "32", "--seed", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # the astigmatic preset's PSF comes back as a calibration file ...
    cal = AstigmaticCalibration.load(folder / "calibration.yaml")
    assert cal.curve_x_["focus_nm"] == ASTIGMATIC_2016["x"]["focus_nm"]
    assert cal.curve_y_["depth_nm"] == ASTIGMATIC_2016["y"]["depth_nm"]
    assert tuple(cal.z_range_nm_) == (-750.0, 750.0)
    truth = read_localizations(folder / "ground_truth.csv")
    assert truth["z_nm"].abs().max() <= 750.0 and truth["z_nm"].std() > 100.0
    # ... and the camera as the options localize needs
    camera = re.search(r"camera:\s+(.*) \(localize", out).group(1).split()
    assert camera == [
        "--baseline-adu",
        "100",
        "--e-per-adu",
        "50",
        "--em-gain",
        "100",
        "--quantum-efficiency",
        "1",
    ]

    locs = folder / "locs.csv"
    frames = str(folder / "frames.tif")
    cal_path = str(folder / "calibration.yaml")
    argv = ["localize", frames, "-o", str(locs), "--calibration", cal_path]
    assert main([*argv, *camera]) == 0
    table = read_localizations(locs)
    assert table["z_nm"].notna().all() and len(table) > 0.5 * len(truth)
    capsys.readouterr()

    assert main(["evaluate", str(locs), str(folder / "ground_truth.csv")]) == 0
    captured = capsys.readouterr()
    assert "--axial-tolerance-nm 500" in captured.err  # both hold z: say so
    argv = ["evaluate", str(locs), str(folder / "ground_truth.csv")]
    assert main([*argv, "--axial-tolerance-nm", "500"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "axial 500 nm" in lines[0]
    rmse_z = float(next(x for x in lines if "RMSE z (nm)" in x).split()[-1])
    jaccard = float(next(x for x in lines if "Jaccard" in x).split()[-1])
    assert 20.0 < rmse_z < 120.0 and jaccard > 0.6


def test_3d_without_camera_warns_and_2d_tables_refuse_axial_matching(simulated, capsys):
    folder = simulated  # written by the test above when run in order
    if not (folder / "calibration.yaml").exists():
        argv = ["simulate", "-o", str(folder), "--preset", "low_density_as"]
        assert main([*argv, "--n-frames", "10", "--frame-shape", "32", "32"]) == 0
    frames = str(folder / "frames.tif")
    cal_path = str(folder / "calibration.yaml")
    out = str(folder / "nocam.csv")
    assert main(["localize", frames, "-o", out, "--calibration", cal_path, "-q"]) == 0
    err = capsys.readouterr().err
    warnings = [x for x in err.splitlines() if ": warning: " in x]
    assert any("no camera given" in x and "--em-gain" in x for x in warnings), err
    # library warnings are single lines, without Python's file:line prefix
    assert "UserWarning" not in err

    table = folder / "flat.csv"
    read_localizations(folder / "ground_truth.csv").drop(columns="z_nm").to_csv(
        table, index=False
    )
    argv = ["evaluate", str(table), str(folder / "ground_truth.csv")]
    assert main([*argv, "--axial-tolerance-nm", "500"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{table} holds no z" in err
