"""Smoke test of the benchmark scripts on tiny 16x16 frames (``--smoke``)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

pytest.importorskip("matplotlib")
pytest.importorskip("tabulate")  # DataFrame.to_markdown


def _load(name):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


@pytest.fixture(scope="module")
def tiny_model():
    from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator

    X, y = PAFPSimulator(
        frame_shape=(16, 16), density_per_um2=2.0, random_state=0
    ).simulate(12)
    loc = DistanceTransformLocalizer(
        n_layers=2,
        n_channels=8,
        max_epochs=2,
        validation_fraction=0,
        threshold=50.0,
        precision="fp32",
        device="cpu",
        random_state=0,
    ).fit(X, y)
    return loc, X


def test_unfolded_head_computes_the_folded_function(tiny_model):
    bench = _load("bench_localizer")
    loc, X = tiny_model
    sub = bench.unfold_to_subpixel(loc)
    assert sub.net_.module_.upsampling == "subpixel"
    # 8 * 49 channels before the shuffle: the paper's head, not the folded one.
    assert sub.net_.module_.upsample[0].out_channels == 8 * 49
    np.testing.assert_allclose(
        sub.predict_maps(X), loc.predict_maps(X), rtol=0, atol=1e-3
    )


def test_staged_prediction_equals_predict(tiny_model):
    bench = _load("bench_localizer")
    common = _load("_common")
    loc, X = tiny_model
    sw = common.Stopwatch()
    staged = bench.staged_predict(loc, X, 5, sw)
    pd.testing.assert_frame_equal(staged, loc.predict(X, batch_size=5))
    assert set(sw.seconds) == {"normalize", "network", "peaks"}


def test_set_precision_reaches_the_fitted_network(tiny_model):
    common = _load("_common")
    loc, _ = tiny_model
    common.set_precision(loc, "bf16")
    assert loc.regressor_.precision_ == "bf16"
    common.set_precision(loc, "fp32")
    assert loc.regressor_.precision_ == "fp32"


def test_bench_localizer_smoke_run_writes_results(tmp_path):
    bench = _load("bench_localizer")
    bench.main(["--smoke", "--only", "speed", "--out", str(tmp_path)])
    table = pd.read_csv(tmp_path / "localizer_speed.csv")
    # 1 and 2 threads x fp32/bf16 x (one batch size folded + subpixel)
    assert len(table) == 8
    assert set(table["head"]) == {"folded", "subpixel"}
    assert (table["frames_per_s"] > 0).all()
    assert "load average" in (tmp_path / "localizer_speed.md").read_text()


def test_history_summary_picks_the_best_validation_epoch():
    common = _load("_common")

    class Fake:
        class net_:  # noqa: N801 - mimics the fitted attribute
            history = [
                {"dur": 2.0, "valid_loss": 0.5},
                {"dur": 3.0, "valid_loss": 0.2},
                {"dur": 4.0, "valid_loss": 0.3},
            ]

    info = common.history_summary(Fake())
    assert info["best_epoch"] == 2
    assert info["seconds_to_best"] == 5.0
    assert info["seconds_total_epochs"] == 9.0


def test_bench_scale_smoke_run_writes_results(tmp_path, monkeypatch):
    # the streaming runs in fresh processes at tiny sizes; the worker-pool
    # timings (process and cluster start-up: tens of seconds) are left out
    bench = _load("bench_scale")
    monkeypatch.setattr(bench, "run_speed", lambda *args: [])
    bench.main(
        [
            "--n-frames",
            "6",
            "--frame-size",
            "32",
            "--chunk-size",
            "4",
            "--tmp",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    table = pd.read_csv(tmp_path / "out" / "scale.csv")
    assert table["n_frames"].tolist() == [2, 6, 2]
    assert (table["peak_rss_mb"] > 0).all() and (table["fps"] > 0).all()
    assert "| benchmark" in (tmp_path / "out" / "scale.md").read_text()


def test_count_fuzz_cases_parses_hypothesis_statistics():
    bench = _load("count_fuzz_cases")
    text = (
        "tests/test_fuzz.py::test_check_frames:\n\n"
        "  - during generate phase (0.50 seconds):\n"
        "    - Typical runtimes: < 1ms, of which < 1ms in data generation\n"
        "    - 100 passing examples, 0 failing examples, 7 invalid examples\n"
        "tests/test_fuzz.py::test_cli_bad_input[x]:\n"
        "    - 50 passing examples, 0 failing examples, 0 invalid examples\n"
    )
    rows = bench.parse_statistics(text)
    assert rows == [
        {"test": "test_check_frames", "passing": 100, "failing": 0, "invalid": 7},
        {"test": "test_cli_bad_input[x]", "passing": 50, "failing": 0, "invalid": 0},
    ]


def test_bench_fitting_smoke_run_writes_our_rows_without_picasso(tmp_path):
    bench = _load("bench_fitting")
    bench.main(["--smoke", "--only", "memory", "--out", str(tmp_path)])
    table = pd.read_csv(tmp_path / "fitting.csv")
    ours = table[table["method"] == "classical GaussianFitLocalizer"]
    # two frame types, 1 thread and all cores, each at its best-JI setting
    assert len(ours) == 2 * len({1, __import__("os").cpu_count()})
    assert (ours["frames_per_s"] > 0).all()
    assert ours["jaccard_250nm"].between(0, 1).all()
    # without --picasso-python the Picasso rows say why they are missing
    picasso = table[table["method"] == "Picasso localize_frames"]
    assert picasso["setting"].str.contains("not run").all() and len(picasso) == 2
    assert "load average" in (tmp_path / "fitting.md").read_text()


def test_threshold_for_recall_finds_the_lowest_cut_reaching_the_target():
    bench = _load("bench_fitting")
    truth = pd.DataFrame(
        {"frame": [0, 0, 0, 0], "x_nm": [100.0, 900.0, 1700.0, 2500.0], "y_nm": 100.0}
    )
    # scores 1..4; rows with scores 1 and 3 are near a true emitter, 2 and 4
    # are far from all of them
    table = pd.DataFrame(
        {
            "frame": [0, 0, 0, 0],
            "x_nm": [110.0, 5000.0, 1710.0, 6000.0],
            "y_nm": [100.0, 5000.0, 100.0, 6000.0],
            "score": [1.0, 2.0, 3.0, 4.0],
        }
    )
    # recall 2/4 with every row; 1/4 once the row of score 1 is cut
    cut, recall = bench.threshold_for_recall(truth, table, "score", 0.25)
    assert (cut, recall) == (1.0, 0.25)
    # a target the whole table already meets needs no cut
    assert bench.threshold_for_recall(truth, table, "score", 0.5) == (-np.inf, 0.5)
    # zero recall: every matched row goes
    assert bench.threshold_for_recall(truth, table, "score", 0.0) == (3.0, 0.0)


def test_picasso_helpers_without_picasso():
    common = _load("_common")
    with pytest.raises(RuntimeError, match="not run: no --picasso-python"):
        common.PicassoServer(None)
    with pytest.raises(RuntimeError, match="not run"):
        common.run_picasso(None, np.zeros((2, 8, 8)), [(3, 500)])
    camera = common.picasso_camera(baseline_adu=100, e_per_adu=50, em_gain=100)
    cmd = common.picasso_cli_command("py", "a.tif", 5, 1000, camera)
    assert cmd[:5] == ["py", "-m", "picasso", "localize", "a.tif"]
    args = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    # the gausslq fit, no drift correction, the camera passed through
    assert args["-a"] == "lq" and args["-d"] == "0" and args["-b"] == "5"
    assert args["-g"] == "1000" and args["-bl"] == "100" and args["-ga"] == "100"


def test_bench_stack_smoke_run_writes_results(tmp_path, monkeypatch, tiny_model):
    bench = _load("bench_stack")
    loc, _ = tiny_model
    monkeypatch.setattr(bench, "model_for", lambda args, settings: (loc, "tiny"))
    bench.main(
        ["--smoke", "--stack-frames", "12", "--out", str(tmp_path / "out")]
        + ["--tmp-dir", str(tmp_path)]
    )
    table = pd.read_csv(tmp_path / "out" / "stack.csv")
    cnn = table[table["measure"].str.startswith("CNN iter_predict")]
    assert len(cnn) == 1 and cnn["value"].iloc[0] > 0
    assert table["measure"].str.contains("peak RSS").any()
    # no --picasso-python: its row says why it is missing
    assert table["note"].str.contains("not run").any()


def test_bench_precision_summary_finds_the_largest_drop():
    bench = _load("bench_precision")
    rows = []
    for cell, ref, other in [("a", 0.90, 0.91), ("b", 0.80, 0.79), ("c", 0.70, 0.694)]:
        rows += [
            {"model": "m@bf16", "cell": cell, "jaccard": ref, "frames_per_s": 10.0},
            {"model": "m@int8", "cell": cell, "jaccard": other, "frames_per_s": 13.0},
        ]
    rows.append(
        {"model": "m@int8", "cell": "background/emccd", "jaccard": np.nan,
         "frames_per_s": 1.0}
    )  # fmt: skip
    summary = bench.summary(pd.DataFrame(rows), "m@bf16").set_index("setting")
    assert summary.loc["m@bf16", "min_dJI"] == 0.0
    assert summary.loc["m@int8", "min_dJI"] == pytest.approx(-0.01)
    assert summary.loc["m@int8", "worst_cell"] == "b"
    assert summary.loc["m@int8", "max_dJI"] == pytest.approx(0.01)
    assert summary.loc["m@int8", "cells_dropping_over_0.005"] == 2
    assert summary.loc["m@int8", "median_frames_per_s_64x64"] == 13.0


def test_bench_cnn_speed_old_dense_path_is_find_peaks_and_is_undone():
    from sklearn_smlm._subpixel_maps import SubPixelMaps
    from sklearn_smlm.peaks import find_peaks

    bench = _load("bench_cnn_speed")
    rng = np.random.default_rng(0)
    channels = rng.uniform(0, 1, (2, 5, 6, 9)).astype(np.float32)
    maps = SubPixelMaps(channels, 3, 1000.0)
    new = SubPixelMaps._dense_peaks
    expected = find_peaks(np.asarray(maps), 500.0)
    from sklearn_smlm import DistanceTransformLocalizer

    loc = DistanceTransformLocalizer(threshold=300.0)
    assert loc._head_threshold() == 300.0  # predict's partial head
    with bench.old_dense_path():
        assert SubPixelMaps._dense_peaks is not new
        assert loc._head_threshold() is None  # the whole head, as before
        got = maps._dense_peaks(500.0, 1, "auto")
    assert SubPixelMaps._dense_peaks is new
    assert loc._head_threshold() == 300.0
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(maps._dense_peaks(500.0, 1, "auto"), expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_diag_precision_joint_bound_by_hand():
    diag = _load("diag_precision")
    # frame 0: one emitter in the middle; frame 1: a pair 1 px apart; frame 2:
    # a pair 4 px apart (both in one 11 px box)
    truth = pd.DataFrame(
        {
            "frame": [0, 1, 1, 2, 2],
            "x_nm": [3250.0, 3250.0, 3350.0, 3250.0, 3650.0],
            "y_nm": [3250.0] * 5,
            "photons": [1500.0] * 5,
            "background": [20.0] * 5,
            "sigma_nm": [130.0] * 5,
        }
    )
    iso, frame, ctx = diag.bounds_nm(truth, (64, 64))
    # away from the edge and alone, the three bounds are one
    np.testing.assert_allclose([frame[0], ctx[0]], iso[0], rtol=1e-9)
    np.testing.assert_allclose(iso, iso[0], rtol=1e-9)  # same photons, width
    # a close pair: the neighbour's unknown position and photons cost a lot
    assert (ctx[1:3] > 2.0 * iso[1:3]).all()
    # 4 px apart (3 PSF widths): less (its light adds noise to the wings)
    assert (ctx[3:] > iso[3:]).all() and (ctx[3:] < 1.25 * iso[3:]).all()
    assert (ctx[3:] < 0.5 * ctx[1:3]).all()


def test_diag_emccd_information_of_the_em_output():
    diag = _load("diag_emccd")
    # Chao et al. 2013: like a Poisson count for lam << 1, half of it for
    # lam >> 1, decreasing in between
    values = [diag.information_ratio(lam) for lam in (0.05, 0.5, 2.0, 10.0, 200.0)]
    assert values[0] > 0.95 and abs(values[-1] - 0.5) < 0.01
    assert all(a > b for a, b in zip(values[:-1], values[1:], strict=True))
