import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile

from sklearn_smlm import Camera, __version__, cli
from sklearn_smlm import _persistence as persistence_module
from sklearn_smlm.cli import _common as cli_common
from sklearn_smlm.cli import localize as cli_localize
from sklearn_smlm.cli import main
from sklearn_smlm.io import (
    TiffStack,
    read_localizations,
    read_stack,
    write_localizations,
    write_stack,
    write_thunderstorm_csv,
)
from sklearn_smlm.localizer import DistanceTransformLocalizer, load_model
from sklearn_smlm.simulation import PAFPSimulator

COMMANDS = [
    "localize",
    "calibrate",
    "simulate",
    "train",
    "evaluate",
    "render",
    "undrift",
    "merge",
    "frc",
    "demo",
]
# A threshold at which the barely trained test model finds a few peaks per frame.
LOW_THRESHOLD = "40"


def _env():
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env.pop("PYTHONWARNINGS", None)
    return env


def run_cli(*args, timeout=120, cwd=None):
    """Run the real entry point in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "sklearn_smlm", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=cwd,
    )


def assert_one_line_error(err, command):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"sklearn-smlm {command}: error: "), err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def tiny_model(workdir):
    X, y = PAFPSimulator(frame_shape=(16, 16), random_state=0).simulate(8)
    loc = DistanceTransformLocalizer(
        n_layers=2,
        n_channels=8,
        max_epochs=1,
        validation_fraction=0,
        random_state=0,
        device="cpu",
    )
    path = workdir / "tiny.pt"
    loc.fit(X, y).save(path)
    return path


@pytest.fixture(scope="module")
def sim(workdir):
    folder = workdir / "sim"
    rc = main(
        [
            "simulate",
            "-o",
            str(folder),
            "--n-frames",
            "12",
            "--frame-shape",
            "16",
            "16",
            "--density-per-um2",
            "1.5",
            "--seed",
            "3",
        ]
    )
    assert rc == 0
    return folder


# --------------------------------------------------------------------- help


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_shows_an_example(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: sklearn-smlm {command}")
    assert "example:" in out
    assert f"sklearn-smlm {command} " in out.split("example:")[1]


def test_entry_point_help_and_version_in_a_fresh_interpreter():
    result = run_cli("--help", timeout=60)
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout
    assert "sklearn-smlm demo" in result.stdout
    result = run_cli("--version", timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"sklearn-smlm {__version__}"


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err


# ----------------------------------------------------------------- simulate


def test_simulate_writes_the_simulators_frames_and_truth(sim, capsys):
    expected = PAFPSimulator.from_preset(
        "bt_hd_2013", frame_shape=(16, 16), density_per_um2=1.5, random_state=3
    )
    X, truth = expected.simulate(12, return_table=True)
    with TiffStack(sim / "frames.tif") as stack:
        assert stack.dtype == np.uint16  # whole counts in range
        assert stack.metadata["pixel_size_nm"] == 100.0
        np.testing.assert_array_equal(stack[:], X)
    table = read_localizations(sim / "ground_truth.csv")
    pd.testing.assert_frame_equal(
        table[truth.columns].reset_index(drop=True), truth, check_dtype=False
    )
    assert (sim / "ground_truth.csv").read_text().startswith('"id","frame","x [nm]"')


def test_simulate_without_seed_reports_the_seed_it_drew(workdir, capsys):
    folder = workdir / "unseeded"
    rc = main(
        ["simulate", "-o", str(folder), "--n-frames", "2", "--frame-shape", "8", "8"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "seed " in out  # a fresh seed is reported so the run can be repeated
    seed = int(out.split("seed ")[1].split(",")[0])
    X, _ = PAFPSimulator.from_preset(
        "bt_hd_2013", frame_shape=(8, 8), random_state=seed
    ).simulate(2)
    np.testing.assert_array_equal(read_stack(folder / "frames.tif"), X)


# ----------------------------------------------------------------- localize


def _predict_whole(model, frames, threshold, pixel_size_nm=None):
    loc = load_model(model, device="cpu")
    loc.threshold = threshold
    if pixel_size_nm is not None:
        loc.pixel_size_nm = pixel_size_nm
    return loc.predict(frames)


def test_localize_streams_chunks_like_one_prediction(sim, tiny_model, workdir):
    out = workdir / "locs.csv"
    rc = main(
        [
            "localize",
            str(sim / "frames.tif"),
            "-o",
            str(out),
            "--model",
            str(tiny_model),
            "--chunk-size",
            "5",
            "--threshold",
            LOW_THRESHOLD,
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    assert not os.path.exists(str(out) + ".partial")
    expected = _predict_whole(tiny_model, read_stack(sim / "frames.tif"), 40.0)
    assert len(expected) > 12  # the test needs localizations in several chunks
    assert expected["frame"].nunique() > 3
    got = read_localizations(out)
    # one id sequence across the chunks (12 frames in chunks of 5, 5, 2)
    np.testing.assert_array_equal(got["id"], np.arange(1, len(expected) + 1))
    np.testing.assert_array_equal(got["frame"], expected["frame"])
    np.testing.assert_allclose(got["x_nm"], expected["x_nm"], atol=1e-3)
    np.testing.assert_allclose(got["y_nm"], expected["y_nm"], atol=1e-3)
    reference = workdir / "reference.csv"
    write_thunderstorm_csv(expected, reference)
    assert out.read_text().splitlines()[0] == reference.read_text().splitlines()[0]
    # frames are 1-based in the ThunderSTORM file
    first_row = out.read_text().splitlines()[1].split(",")
    assert int(first_row[1]) == expected["frame"].iloc[0] + 1


def test_localize_hybrid_adds_fit_columns(sim, tiny_model, workdir):
    out = workdir / "hybrid.csv"
    args = ["localize", str(sim / "frames.tif"), "-o", str(out)]
    args += ["--model", str(tiny_model), "--threshold", LOW_THRESHOLD]
    args += ["--method", "hybrid", "--baseline-adu", "100", "--e-per-adu", "50"]
    args += ["--em-gain", "100", "--device", "cpu"]
    assert main(args) == 0
    got = read_localizations(out)
    expected = _predict_whole(tiny_model, read_stack(sim / "frames.tif"), 40.0)
    # every detection of the network is kept and gets the fit's columns
    np.testing.assert_array_equal(got["frame"], expected["frame"])
    for column in ("photons", "sigma_nm", "uncertainty_nm"):
        assert got[column].notna().all()


def test_localize_several_files_numbers_frames_globally(sim, tiny_model, workdir):
    frames = read_stack(sim / "frames.tif")
    write_stack(workdir / "part_1.tif", frames[:7], pixel_size_nm=100.0)
    write_stack(workdir / "part_2.tif", frames[7:], pixel_size_nm=100.0)
    out = workdir / "parts.csv"
    rc = main(
        [
            "-q",
            "localize",
            str(workdir / "part_1.tif"),
            str(workdir / "part_2.tif"),
            "-o",
            str(out),
            "--model",
            str(tiny_model),
            "--threshold",
            LOW_THRESHOLD,
            "--format",
            "native",
            "--device",
            "cpu",  # compared with a CPU prediction: the same rounding
        ]
    )
    assert rc == 0
    expected = _predict_whole(tiny_model, frames, 40.0)
    got = read_localizations(out)
    assert "id" not in got.columns  # native: the table's own columns
    np.testing.assert_array_equal(got["frame"], expected["frame"])
    assert got["frame"].max() >= 7  # frames of the second file come after
    np.testing.assert_allclose(got["x_nm"], expected["x_nm"], atol=1e-3)


def test_localize_uses_the_stacks_pixel_size(sim, tiny_model, workdir, capsys):
    frames = read_stack(sim / "frames.tif")
    write_stack(workdir / "px160.tif", frames, pixel_size_nm=160.0)
    out = workdir / "px160.csv"
    args = ["--model", str(tiny_model), "--threshold", LOW_THRESHOLD]
    args += ["--device", "cpu"]  # compared with a CPU prediction
    rc = main(["localize", str(workdir / "px160.tif"), "-o", str(out), *args])
    assert rc == 0
    err = capsys.readouterr().err
    assert "trained on 100 nm pixels" in err and "160 nm" in err
    # the network sees pixels: the same peaks, positions scaled by 160 / 100
    expected = _predict_whole(tiny_model, frames, 40.0)
    got = read_localizations(out)
    np.testing.assert_allclose(got["x_nm"], 1.6 * expected["x_nm"], atol=1e-3)
    np.testing.assert_allclose(got["y_nm"], 1.6 * expected["y_nm"], atol=1e-3)


def test_localize_without_pixel_size_assumes_100_nm(sim, tiny_model, workdir, capsys):
    tifffile.imwrite(workdir / "bare.tif", read_stack(sim / "frames.tif"))
    out = workdir / "bare.csv"
    rc = main(
        ["localize", str(workdir / "bare.tif"), "-o", str(out)]
        + ["--model", str(tiny_model)]
    )
    assert rc == 0
    assert "assuming 100 nm" in capsys.readouterr().err
    rc = main(
        ["--quiet", "localize", str(workdir / "bare.tif"), "-o", str(out)]
        + ["--model", str(tiny_model), "--pixel-size-nm", "100"]
    )
    assert rc == 0
    assert capsys.readouterr().err == ""


def test_camera_options_reach_the_normalizer_and_the_fitter(tiny_model):
    camera = ["--baseline-adu", "98", "--e-per-adu", "45", "--em-gain", "300"]
    camera += ["--quantum-efficiency", "0.9"]
    parser = cli.build_parser()
    reporter = cli_common.Reporter("test", quiet=True)
    args = parser.parse_args(
        ["localize", "x.tif", "-o", "y.csv", "--model", str(tiny_model), *camera]
    )
    fitted_normalizer = load_model(tiny_model, device="cpu").normalizer_
    loc = cli_localize.make_localizer(args, 100.0, reporter)
    # a parameter of the localizer, not a replaced fitted normalizer
    assert loc.camera == Camera(
        baseline_adu=98.0, e_per_adu=45.0, em_gain=300.0, quantum_efficiency=0.9
    )
    assert loc.normalizer_.get_params() == fitted_normalizer.get_params()
    # the photons follow the documented formula
    frame = np.full((1, 2, 2), 98.0, dtype=np.float32)
    frame[0, 0, 0] = 98.0 + 600.0
    assert loc.camera.to_photons(frame)[0, 0, 0] == pytest.approx(
        600.0 * 45.0 / 300.0 / 0.9
    )
    args = parser.parse_args(
        ["localize", "x.tif", "-o", "y.csv", "--method", "gaussian", *camera]
        + ["--threshold", "6"]
    )
    fitter = cli_localize.make_localizer(args, 130.0, reporter)
    assert fitter.get_params()["baseline_adu"] == 98.0
    assert fitter.get_params()["em_gain"] == 300.0
    assert fitter.pixel_size_nm == 130.0 and fitter.threshold == 6.0


def test_localize_gaussian_through_the_entry_point(sim, workdir):
    out = workdir / "gauss.csv"
    result = run_cli(
        "localize",
        sim / "frames.tif",
        "-o",
        out,
        "--method",
        "gaussian",
        "--baseline-adu",
        "100",
        "--e-per-adu",
        "50",
        "--em-gain",
        "100",
        "--chunk-size",
        "4",
    )
    assert result.returncode == 0, result.stderr
    assert "localized 12 frames" in result.stdout
    assert f"wrote {out}" in result.stdout
    assert "Traceback" not in result.stderr
    from sklearn_smlm.fitting import GaussianFitLocalizer

    expected = GaussianFitLocalizer(
        baseline_adu=100.0, e_per_adu=50.0, em_gain=100.0
    ).fit()
    expected = expected.predict(read_stack(sim / "frames.tif"))
    got = read_localizations(out)
    assert len(got) == len(expected) > 0
    np.testing.assert_array_equal(got["frame"], expected["frame"])
    np.testing.assert_allclose(got["x_nm"], expected["x_nm"], rtol=1e-9)


def test_interrupted_localize_keeps_only_a_partial_file(
    sim, tiny_model, workdir, monkeypatch, capsys
):
    real = DistanceTransformLocalizer._predict_frames

    def interrupt_second_chunk(self, frames, *, batch_size=None, frame_offset=0):
        if frame_offset > 0:
            raise KeyboardInterrupt
        return real(self, frames, batch_size=batch_size, frame_offset=frame_offset)

    monkeypatch.setattr(
        DistanceTransformLocalizer, "_predict_frames", interrupt_second_chunk
    )
    out = workdir / "interrupted.csv"
    rc = main(
        ["localize", str(sim / "frames.tif"), "-o", str(out), "--chunk-size", "5"]
        + ["--model", str(tiny_model), "--threshold", LOW_THRESHOLD]
    )
    assert rc == 130
    assert not out.exists()
    partial = read_localizations(str(out) + ".partial")
    assert len(partial) and partial["frame"].max() < 5  # first chunk only
    err = capsys.readouterr().err
    assert "interrupted" in err and "frames 1-5 of 12" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------- errors


def test_missing_pretrained_model_is_one_clear_line(sim, workdir, monkeypatch, capsys):
    monkeypatch.setattr(persistence_module, "_PRETRAINED_DIR", workdir / "no_models")
    rc = main(["localize", str(sim / "frames.tif"), "-o", str(workdir / "x.csv")])
    assert rc == 1
    err = capsys.readouterr().err
    assert_one_line_error(err, "localize")
    assert "pretrained model is not installed" in err and "--model" in err
    rc = main(["demo", "-o", str(workdir / "demo_none")])
    assert rc == 1
    assert "--model PATH" in capsys.readouterr().err


def _bad_inputs(workdir, sim):
    text_tif = workdir / "text.tif"
    text_tif.write_text("this is not an image\n")
    truncated = workdir / "truncated.tif"
    data = (sim / "frames.tif").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    corrupt_model = workdir / "corrupt.pt"
    corrupt_model.write_bytes(b"PK\x03\x04 definitely not a model" * 10)
    return text_tif, truncated, corrupt_model


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_stack", "no such file"),
        ("text_tif", "not a readable TIFF"),
        ("truncated_tif", "truncated"),
        ("corrupt_model", "not a readable sklearn-smlm model"),
        ("missing_model", "does not exist"),
        ("missing_folder", "does not exist; create it first"),
        ("empty_glob", "no file matches the pattern"),
    ],
)
def test_localize_runtime_errors(case, expected, sim, tiny_model, workdir, capsys):
    text_tif, truncated, corrupt_model = _bad_inputs(workdir, sim)
    stack, model = str(sim / "frames.tif"), str(tiny_model)
    out = str(workdir / "err.csv")
    if case == "missing_stack":
        stack = str(workdir / "nope.tif")
    elif case == "text_tif":
        stack = str(text_tif)
    elif case == "truncated_tif":
        stack = str(truncated)
    elif case == "corrupt_model":
        model = str(corrupt_model)
    elif case == "missing_model":
        model = str(workdir / "nope.pt")
    elif case == "missing_folder":
        out = str(workdir / "no_folder" / "err.csv")
    elif case == "empty_glob":
        stack = str(workdir / "nothing_*.tif")
    rc = main(["localize", stack, "-o", out, "--model", model])
    assert rc == 1
    err = capsys.readouterr().err
    assert_one_line_error(err, "localize")
    assert expected in err
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")


def test_bad_tiff_through_the_entry_point_has_no_traceback(sim, workdir):
    text_tif, _, _ = _bad_inputs(workdir, sim)
    result = run_cli(
        "localize", text_tif, "-o", workdir / "e.csv", "--method", "gaussian"
    )
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "localize")
    assert str(text_tif) in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["localize", "x.tif", "-o", "y.csv", "--chunk-size", "0"],
        ["localize", "x.tif", "-o", "y.csv", "--format", "xml"],
        ["localize", "x.tif"],
        ["localize", "x.tif", "-o", "y.csv", "--quantum-efficiency", "1.5"],
        ["simulate", "-o", "d", "--preset", "nope"],
        ["train", "-o", "m.pt", "--frames", "x.tif"],
        ["evaluate", "a.csv", "b.csv", "--border-nm", "300"],
        ["render", "a.csv"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert ": error: " in err and "Traceback" not in err


def test_cuda_asked_for_but_absent(sim, tiny_model, workdir, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    rc = main(
        ["localize", str(sim / "frames.tif"), "-o", str(workdir / "c.csv")]
        + ["--model", str(tiny_model), "--device", "cuda"]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert_one_line_error(err, "localize")
    assert "no CUDA GPU" in err


def test_debug_shows_the_traceback(workdir):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "localize", str(workdir / "nope.tif"), "-o", "x.csv"])
    with pytest.raises(FileNotFoundError):
        main(["localize", str(workdir / "nope.tif"), "-o", "x.csv", "--debug"])


# ----------------------------------------------------------------- evaluate


@pytest.fixture(scope="module")
def hand_tables(workdir):
    truth = pd.DataFrame(
        {"frame": [0, 0, 0], "x_nm": [100.0, 1000.0, 3000.0], "y_nm": [100.0] * 3}
    )
    # 30 nm and 40 nm from two true positions, one far from everything
    pred = pd.DataFrame(
        {
            "frame": [0, 0, 0],
            "x_nm": [130.0, 1000.0, 5000.0],
            "y_nm": [100.0, 140.0, 0.0],
        }
    )
    write_localizations(truth, workdir / "truth.csv")
    write_localizations(pred, workdir / "pred.csv", format="native")
    return workdir / "pred.csv", workdir / "truth.csv"


def test_evaluate_prints_and_writes_the_metrics(hand_tables, workdir, capsys):
    pred, truth = hand_tables
    json_path, plot = workdir / "m.json", workdir / "curves.png"
    rc = main(
        ["evaluate", str(pred), str(truth), "--json", str(json_path)]
        + ["--plot", str(plot), "--matching", "greedy"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    metrics = json.loads(json_path.read_text())
    # TP 2, FP 1, FN 1 -> JI 2/4; RMSE sqrt((30^2 + 40^2) / 2)
    assert (metrics["tp"], metrics["fp"], metrics["fn"]) == (2, 1, 1)
    assert metrics["jaccard"] == pytest.approx(0.5)
    assert metrics["rmse_nm"] == pytest.approx(np.sqrt(1250.0))
    assert metrics["matching"] == "greedy"
    assert "Jaccard index  0.500" in out and "RMSE (nm)      35.4" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a tolerance below 30 nm matches nothing; RMSE is then undefined (null)
    rc = main(
        ["evaluate", str(pred), str(truth), "--tolerance-nm", "20"]
        + ["--json", str(json_path)]
    )
    assert rc == 0
    metrics = json.loads(json_path.read_text())
    assert metrics["tp"] == 0 and metrics["rmse_nm"] is None


def test_evaluate_csv_without_positions(hand_tables, workdir, capsys):
    pred, truth = hand_tables
    bad = workdir / "bad.csv"
    bad.write_text('"id","frame","x [nm]"\n1,1,5.0\n')
    assert main(["evaluate", str(bad), str(truth)]) == 1
    err = capsys.readouterr().err
    assert_one_line_error(err, "evaluate")
    assert str(bad) in err and "y [nm]" in err


def test_evaluate_plot_without_matplotlib(hand_tables, workdir, monkeypatch, capsys):
    pred, truth = hand_tables
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rc = main(["evaluate", str(pred), str(truth), "--plot", str(workdir / "p.png")])
    assert rc == 1
    err = capsys.readouterr().err
    assert_one_line_error(err, "evaluate")
    assert 'pip install "sklearn-smlm[plot]"' in err


# ------------------------------------------------------------------- render


def test_render_histogram_to_png_and_tiff(hand_tables, workdir, capsys):
    pred, _ = hand_tables
    png, tif = workdir / "r.png", workdir / "r.tif"
    rc = main(
        ["render", str(pred), "-o", str(png), "--tiff", str(tif)]
        + ["--pixel-size-nm", "100", "--camera-pixel-size-nm", "200"]
        + ["--frame-shape", "2", "10"]
    )
    assert rc == 0
    image = tifffile.imread(tif)
    # field of view 2000 x 400 nm in 100 nm pixels; the third point (x = 5000)
    # lies outside; pixel (row, col) = (floor(y / 100), floor(x / 100))
    assert image.shape == (4, 20) and image.dtype == np.float32
    expected = np.zeros((4, 20), np.float32)
    expected[1, 1] = 1  # (130, 100)
    expected[1, 10] = 1  # (1000, 140)
    np.testing.assert_array_equal(image, expected)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "rendered 3 localizations" in capsys.readouterr().out


# -------------------------------------------------------------------- train


def test_train_on_a_preset_then_on_own_frames(sim, workdir, capsys):
    model = workdir / "trained.pt"
    tiny = ["--n-layers", "2", "--n-channels", "8", "--max-epochs", "1"]
    rc = main(
        ["train", "-o", str(model), "--n-frames", "8", "--frame-shape", "16", "16"]
        + tiny
        + ["--seed", "0", "--validation-fraction", "0.25", "--preset", "low_density"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "validation loss:" in out and str(model) in out
    loc = load_model(model)
    assert (loc.n_layers, loc.n_channels, loc.frame_shape_) == (2, 8, (16, 16))
    assert loc.training_info_["preset"] == "low_density"
    assert loc.training_info_["seed"] == 0

    own = workdir / "own.pt"
    rc = main(
        ["train", "-o", str(own), "--frames", str(sim / "frames.tif")]
        + ["--truth", str(sim / "ground_truth.csv"), *tiny]
        + ["--validation-fraction", "0"]
    )
    assert rc == 0
    assert "no validation frames" in capsys.readouterr().out
    loc = load_model(own)
    assert loc.training_info_["source"] == "user"
    assert loc.training_info_["n_frames"] == 12 and loc.pixel_size_nm == 100.0


def test_train_truth_beyond_the_stack(sim, workdir, capsys):
    truth = pd.DataFrame({"frame": [40], "x_nm": [10.0], "y_nm": [10.0]})
    write_localizations(truth, workdir / "late.csv")
    rc = main(
        ["train", "-o", str(workdir / "m.pt"), "--frames", str(sim / "frames.tif")]
        + ["--truth", str(workdir / "late.csv")]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert_one_line_error(err, "train")
    assert "frame 41" in err and "12 frames" in err


# --------------------------------------------------------------------- demo


def test_demo_through_the_entry_point(tiny_model, workdir):
    folder = workdir / "demo"
    result = run_cli("demo", "-o", folder, "--n-frames", "8", "--model", tiny_model)
    assert result.returncode == 0, result.stderr
    names = [
        "frames.tif",
        "ground_truth.csv",
        "localizations.csv",
        "metrics.json",
        "render.png",
        "render.tif",
        "tolerance_curves.png",
    ]
    for name in names:
        assert (folder / name).is_file(), name
        assert str(folder / name) in result.stdout
    assert "Jaccard index" in result.stdout
    with TiffStack(folder / "frames.tif") as stack:
        assert stack.shape == (8, 64, 64)
    metrics = json.loads((folder / "metrics.json").read_text())
    truth = read_localizations(folder / "ground_truth.csv")
    assert metrics["tp"] + metrics["fn"] == len(truth) > 0


def test_camera_options_do_not_move_a_gain_invariant_model(
    sim, tiny_model, workdir, capsys
):
    # --method cnn: with camera options the default is the hybrid
    common = ["--model", str(tiny_model), "--threshold", LOW_THRESHOLD]
    common += ["--method", "cnn"]
    plain, converted = workdir / "plain.csv", workdir / "converted.csv"
    assert main(["localize", str(sim / "frames.tif"), "-o", str(plain), *common]) == 0
    capsys.readouterr()
    rc = main(
        ["localize", str(sim / "frames.tif"), "-o", str(converted), *common]
        + ["--baseline-adu", "100", "--e-per-adu", "50", "--em-gain", "100"]
    )
    assert rc == 0
    assert "ignores camera gain and offset" in capsys.readouterr().err
    a, b = read_localizations(plain), read_localizations(converted)
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a["x_nm"], b["x_nm"], atol=1e-2)


def test_the_command_registry_builds_the_parser():
    # adding a command = one module with add_parser/run + one line in COMMANDS
    assert [module.NAME for module in cli.COMMANDS] == COMMANDS
    parser = cli.build_parser()
    for module in cli.COMMANDS:
        args = parser.parse_args([module.NAME, *_minimal_args(module)])
        assert args.func is module.run


def _minimal_args(module):
    return {
        "localize": ["x.tif", "-o", "y.csv"],
        "calibrate": ["beads.tif", "--z-step-nm", "10", "-o", "c.yaml"],
        "simulate": ["-o", "d"],
        "train": ["-o", "m.pt"],
        "evaluate": ["a.csv", "b.csv"],
        "render": ["a.csv"],
        "undrift": ["a.csv", "-o", "b.csv"],
        "merge": ["a.csv", "-o", "b.csv"],
        "frc": ["a.csv"],
        "demo": [],
    }[module.NAME]


def test_camera_map_reaches_the_localizer(sim, tiny_model, workdir, capsys):
    # an sCMOS map file: per-pixel offsets the scalar options cannot express
    maps = workdir / "scmos.npz"
    offset = np.full((32, 32), 100.0)
    offset[:, 16:] = 103.0
    np.savez(maps, offset_adu=offset, gain_adu_per_e=np.full((32, 32), 0.02))
    parser = cli.build_parser()
    args = parser.parse_args(
        ["localize", "x.tif", "-o", "y.csv", "--model", str(tiny_model)]
        + ["--camera-map", str(maps), "--quantum-efficiency", "0.9"]
    )
    loc = cli_localize.make_localizer(args, 100.0, cli_common.Reporter("t", True))
    assert loc.camera.shape == (32, 32)
    np.testing.assert_array_equal(loc.camera.baseline_adu, offset)
    assert loc.camera.e_per_adu[0, 0] == 50.0 and loc.camera.quantum_efficiency == 0.9
    # the classical fitter uses the maps in its likelihood (issue 16); maps of
    # another shape than the frames: one clear line, exit 1
    rc = main(
        ["localize", str(sim / "frames.tif"), "-o", str(workdir / "g.csv")]
        + ["--method", "gaussian", "--camera-map", str(maps)]
    )
    assert rc == 1
    assert "maps are (32, 32) pixels but the frames are" in capsys.readouterr().err
