import h5py
import numpy as np
import pytest
import yaml

from sklearn_smlm.cli import main
from sklearn_smlm.io import read_localizations, write_localizations
from sklearn_smlm.postprocessing import simulate_drift, simulate_localizations


@pytest.fixture(scope="module")
def drifting(tmp_path_factory):
    folder = tmp_path_factory.mktemp("post")
    drift = simulate_drift(3000, random_state=0)
    table, _ = simulate_localizations(
        3000, drift=drift, field_of_view_nm=(6400.0, 6400.0), random_state=0
    )
    path = folder / "locs.csv"
    write_localizations(table, path)
    return folder, path, table, drift


def assert_one_line_error(err, command):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"sklearn-smlm {command}: error: "), err


def test_undrift_writes_the_corrected_table_the_curve_and_the_plot(drifting, capsys):
    folder, path, table, drift = drifting
    out, png, curve = folder / "c.csv", folder / "drift.png", folder / "drift.csv"
    rc = main(
        ["undrift", str(path), "-o", str(out), "--plot", str(png)]
        + ["--drift-csv", str(curve)]
    )
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "drift over 3000 frames (rcc)" in stdout
    corrected = read_localizations(out)
    assert len(corrected) == len(table)
    estimated = np.loadtxt(curve, delimiter=",", skiprows=1)
    err = estimated[:, 1:] - drift[["dx_nm", "dy_nm"]].to_numpy()
    assert np.sqrt(np.mean(err**2, axis=0)).max() < 5.0
    # the corrected positions are the input's minus the drift of their frame
    shift = drift[["dx_nm", "dy_nm"]].to_numpy()[table["frame"]]
    residual = corrected[["x_nm", "y_nm"]].to_numpy() - (
        table[["x_nm", "y_nm"]].to_numpy() - shift
    )
    assert np.sqrt(np.mean(residual**2)) < 5.0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_merge_to_picasso_and_frc_of_the_result(drifting, capsys):
    folder, path, table, _ = drifting
    out = folder / "merged.hdf5"
    rc = main(
        ["merge", str(path), "-o", str(out), "--pixel-size-nm", "100"]
        + ["--max-distance-nm", "50", "--max-dark-frames", "0"]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert "into" in captured.out and "Picasso HDF5" in captured.out
    with h5py.File(out) as f:
        n = len(f["locs"])
        assert "n_merged" in f["locs"].dtype.names
    with open(folder / "merged.yaml") as f:
        assert list(yaml.safe_load_all(f))[-1]["Pixelsize"] == 100.0
    assert len(table) / n > 2  # mean on-time 3 frames
    png = folder / "frc.png"
    rc = main(["frc", str(out), "--plot", str(png), "--split", "random", "-q"])
    assert rc == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("FRC resolution: ") and line.endswith(" nm")
    assert 10 < float(line.split()[2]) < 200
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_merge_to_thunderstorm_keeps_the_frame_columns_consistent(drifting):
    folder, path, table, _ = drifting
    out = folder / "merged.csv"
    assert main(["merge", str(path), "-o", str(out), "-q"]) == 0
    header, first = out.read_text().splitlines()[:2]
    fields = dict(
        zip(header.replace('"', "").split(","), first.split(","), strict=True)
    )
    # 1-based in the file, like ThunderSTORM's frame
    assert fields["frame"] == fields["first_frame"] == "1"
    merged = read_localizations(out)
    assert (merged["frame"] == merged["first_frame"]).all()
    assert merged["first_frame"].min() == 0
    assert (merged["last_frame"] >= merged["first_frame"]).all()
    assert "id" in merged.columns  # written afresh, not averaged


def test_table_commands_fail_in_one_line(drifting, capsys):
    folder, path, _, _ = drifting
    assert (
        main(["merge", str(path), "-o", str(folder / "m.csv"), "--format", "picasso"])
        == 2
    )
    assert_one_line_error(capsys.readouterr().err, "merge")
    assert main(["merge", str(path), "-o", str(folder / "m.hdf5")]) == 2
    err = capsys.readouterr().err
    assert_one_line_error(err, "merge")
    assert "--pixel-size-nm" in err
    assert (
        main(["undrift", str(path), "-o", str(folder / "u.csv"), "--plot", "d.jpg"])
        == 2
    )
    assert_one_line_error(capsys.readouterr().err, "undrift")
    rc = main(
        ["undrift", str(path), "-o", str(folder / "u.csv"), "--method", "fiducial"]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert_one_line_error(err, "undrift")
    assert "no fiducial found" in err
    assert main(["frc", str(folder / "missing.csv")]) == 1
    assert_one_line_error(capsys.readouterr().err, "frc")


def test_library_errors_name_the_command_flags(drifting, capsys):
    # the library says segment_frames / method='rcc' / min_fraction; a user of
    # the command line knows the flags
    folder, path, _, _ = drifting
    out = str(folder / "u.csv")
    assert main(["undrift", str(path), "-o", out, "--segment-frames", "2999"]) == 1
    err = capsys.readouterr().err
    assert_one_line_error(err, "undrift")
    assert "--segment-frames 2999 gives fewer" in err
    assert "segment_frames" not in err
    argv = ["undrift", str(path), "-o", out, "--method", "fiducial"]
    assert main(argv + ["--min-fraction", "1"]) == 1
    err = capsys.readouterr().err
    assert "Use --method rcc, or lower --min-fraction." in err, err
    # a flag that sets a parameter of another name is said as that flag
    argv = ["undrift", str(path), "-o", out, "--render-pixel-nm", "0.001"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "give a larger --render-pixel-nm" in err and "pixel_size_nm" not in err
    assert main(["frc", str(path), "--block-frames", "5000"]) == 1
    err = capsys.readouterr().err
    assert "(use a smaller --block-frames or --split random)" in err, err


def test_in_flags_leaves_python_calls_and_plain_words_alone():
    from sklearn_smlm.cli._common import in_flags

    flags = {"threshold": "--threshold", "block_frames": "--block-frames"}
    text = "raise it (set_params(threshold=300)); the threshold of block_frames=2"
    assert in_flags(text, flags) == (
        "raise it (set_params(threshold=300)); the threshold of --block-frames 2"
    )
    assert in_flags("x --block-frames y", flags) == "x --block-frames y"
    assert in_flags("no flags", None) == "no flags"


def test_localize_writes_picasso(tmp_path, capsys):
    assert (
        main(
            ["simulate", "-o", str(tmp_path / "sim"), "--n-frames", "8"]
            + ["--preset", "low_density", "--seed", "0", "-q"]
        )
        == 0
    )
    out = tmp_path / "locs.hdf5"
    rc = main(
        ["localize", str(tmp_path / "sim" / "frames.tif"), "-o", str(out)]
        + ["--format", "picasso", "--method", "gaussian", "-q"]
    )
    assert rc == 0
    assert "Picasso HDF5" in capsys.readouterr().out
    with open(tmp_path / "locs.yaml") as f:
        docs = list(yaml.safe_load_all(f))
    assert (docs[0]["Width"], docs[0]["Height"], docs[0]["Frames"]) == (64, 64, 8)
    assert docs[-1]["Pixelsize"] == 100.0
    table = read_localizations(out)
    assert len(table) > 0 and table["frame"].max() < 8
    assert (
        main(
            [
                "localize",
                str(tmp_path / "sim" / "frames.tif"),
                "-o",
                str(tmp_path / "l.csv"),
            ]
            + ["--format", "picasso"]
        )
        == 2
    )
    assert_one_line_error(capsys.readouterr().err, "localize")
