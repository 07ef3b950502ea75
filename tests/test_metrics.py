import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from sklearn_smlm.metrics import (
    efficiency,
    f1,
    jaccard_index,
    localization_metrics,
    plot_tolerance_sweep,
    precision,
    recall,
    rmse,
    tolerance_sweep,
)

matplotlib.use("Agg")

# Two truths, three predictions: pairs at 50 nm (dx 30, dy 40) and 60 nm
# (dx 0, dy 60) within 100 nm, one far prediction.
TRUTH = [np.array([[0.0, 0.0], [300.0, 0.0]])]
PRED = [np.array([[1000.0, 1000.0], [30.0, 40.0], [300.0, 60.0]])]


def test_hand_worked_metrics():
    m = localization_metrics(TRUTH, PRED, tolerance_nm=100)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 1, 0)
    assert m["jaccard"] == pytest.approx(2 / 3)
    assert m["recall"] == 1.0
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(0.8)  # 2 * (2/3) * 1 / (2/3 + 1)
    # sqrt((50^2 + 60^2) / 2) = sqrt(3050)
    assert m["rmse_nm"] == pytest.approx(math.sqrt(3050))
    assert m["rmse_x_nm"] == pytest.approx(math.sqrt(30**2 / 2))
    assert m["rmse_y_nm"] == pytest.approx(math.sqrt((40**2 + 60**2) / 2))
    assert math.isnan(m["rmse_z_nm"]) and math.isnan(m["efficiency_axial"])
    # 100 - sqrt((100 - 66.667)^2 + 3050) = 100 - sqrt(4161.11) = 100 - 64.5067
    assert m["efficiency"] == pytest.approx(35.4933, abs=1e-4)
    assert m["tolerance_nm"] == 100.0 and m["matching"] == "hungarian"
    assert set(m) == {
        "tp",
        "fp",
        "fn",
        "jaccard",
        "recall",
        "precision",
        "f1",
        "rmse_nm",
        "rmse_x_nm",
        "rmse_y_nm",
        "rmse_z_nm",
        "efficiency",
        "efficiency_axial",
        "tolerance_nm",
        "matching",
    }


def test_thin_functions_agree_with_the_dict():
    m = localization_metrics(TRUTH, PRED, tolerance_nm=100, matching="greedy")
    for function, key in [
        (jaccard_index, "jaccard"),
        (rmse, "rmse_nm"),
        (recall, "recall"),
        (precision, "precision"),
        (f1, "f1"),
        (efficiency, "efficiency"),
    ]:
        assert function(TRUTH, PRED, tolerance_nm=100, matching="greedy") == m[key]


def test_greedy_and_hungarian_metrics_differ_where_matchings_do():
    truth = [np.array([[0.0, 0.0], [150.0, 0.0]])]
    pred = [np.array([[90.0, 0.0], [240.0, 0.0]])]
    greedy = localization_metrics(truth, pred, tolerance_nm=100, matching="greedy")
    hungarian = localization_metrics(truth, pred, tolerance_nm=100)
    assert (greedy["tp"], greedy["fp"], greedy["fn"]) == (1, 1, 1)
    assert greedy["jaccard"] == pytest.approx(1 / 3) and greedy["rmse_nm"] == 60.0
    assert (hungarian["tp"], hungarian["jaccard"], hungarian["rmse_nm"]) == (
        2,
        1.0,
        90.0,
    )
    # 100 - sqrt(0 + 90^2) = 10
    assert hungarian["efficiency"] == pytest.approx(10.0)


def test_exactly_at_tolerance():
    truth = [np.array([[0.0, 0.0]])]
    pred = [np.array([[30.0, 40.0]])]
    assert jaccard_index(truth, pred, tolerance_nm=50) == 1.0
    assert rmse(truth, pred, tolerance_nm=50) == 50.0
    assert jaccard_index(truth, pred, tolerance_nm=49.9) == 0.0


def test_empty_predictions():
    m = localization_metrics(TRUTH, [np.empty((0, 2))])
    assert (m["tp"], m["fp"], m["fn"]) == (0, 0, 2)
    assert (m["jaccard"], m["recall"], m["precision"], m["f1"]) == (0, 0, 0, 0)
    assert math.isnan(m["rmse_nm"]) and math.isnan(m["efficiency"])


def test_empty_truth():
    m = localization_metrics([np.empty((0, 2))], PRED)
    assert (m["tp"], m["fp"], m["fn"]) == (0, 3, 0)
    assert (m["jaccard"], m["recall"], m["precision"], m["f1"]) == (0, 0, 0, 0)
    assert math.isnan(m["rmse_nm"])


def test_both_empty():
    m = localization_metrics([np.empty((0, 2))], [])
    assert (m["tp"], m["fp"], m["fn"]) == (0, 0, 0)
    assert (m["jaccard"], m["recall"], m["precision"], m["f1"]) == (1, 1, 1, 1)
    assert math.isnan(m["rmse_nm"])


def test_frames_in_one_table_only():
    truth = pd.DataFrame({"frame": [0, 1], "x_nm": [100.0, 100.0], "y_nm": [0.0, 0.0]})
    pred = pd.DataFrame({"frame": [1, 5], "x_nm": [110.0, 100.0], "y_nm": [0.0, 0.0]})
    m = localization_metrics(truth, pred)
    assert (m["tp"], m["fp"], m["fn"], m["rmse_nm"]) == (1, 1, 1, 10.0)


def test_three_dimensional_metrics():
    truth = [np.array([[0.0, 0.0, 0.0], [500.0, 0.0, 0.0]])]
    pred = [np.array([[30.0, 40.0, 300.0], [500.0, 0.0, -100.0]])]
    m = localization_metrics(truth, pred, tolerance_nm=100)
    assert m["rmse_nm"] == pytest.approx(math.sqrt(50**2 / 2))
    assert m["rmse_z_nm"] == pytest.approx(math.sqrt((300**2 + 100**2) / 2))
    # JI 1: E_axial = 100 - 0.5 * rmse_z
    assert m["efficiency_axial"] == pytest.approx(100 - 0.5 * math.sqrt(50000))
    m = localization_metrics(truth, pred, tolerance_nm=100, axial_tolerance_nm=200)
    assert (m["tp"], m["fp"], m["fn"], m["rmse_z_nm"]) == (1, 1, 1, 100.0)


def test_border_and_as_frame():
    truth = [np.array([[50.0, 500.0], [500.0, 500.0]])]
    pred = [np.array([[60.0, 500.0], [520.0, 500.0]])]
    row = localization_metrics(
        truth, pred, border_nm=100, field_of_view_nm=(1000, 1000), as_frame=True
    )
    assert isinstance(row, pd.DataFrame) and len(row) == 1
    assert row[["tp", "fp", "fn", "rmse_nm"]].iloc[0].tolist() == [1, 0, 0, 20.0]


def test_tolerance_sweep_matches_single_calls_and_is_monotone():
    rng = np.random.default_rng(0)
    truth = [rng.uniform(0, 2000, (30, 2)) for _ in range(4)]
    pred = [t[5:] + rng.normal(0, 40, t[5:].shape) for t in truth]
    pred[0] = np.vstack([pred[0], rng.uniform(0, 2000, (5, 2))])
    sweep = tolerance_sweep(truth, pred)
    assert_allclose(sweep["tolerance_nm"], np.arange(10, 251, 10))
    assert (np.diff(sweep["tp"]) >= 0).all()
    assert sweep["tp"].iloc[0] < sweep["tp"].iloc[-1]
    for matching in ("hungarian", "greedy"):
        sweep = tolerance_sweep(
            truth, pred, tolerances_nm=[25, 80, 250], matching=matching
        )
        for _, row in sweep.iterrows():
            single = localization_metrics(
                truth, pred, tolerance_nm=row["tolerance_nm"], matching=matching
            )
            for key, value in single.items():
                if isinstance(value, float) and math.isnan(value):
                    assert math.isnan(row[key])
                else:
                    assert row[key] == value, key


def test_tolerance_sweep_rejects_bad_tolerances():
    with pytest.raises(ValueError, match="at least one"):
        tolerance_sweep(TRUTH, PRED, tolerances_nm=[])
    with pytest.raises(ValueError, match="tolerance_nm must be"):
        tolerance_sweep(TRUTH, PRED, tolerances_nm=[10, -5])
    with pytest.raises(ValueError, match="sequence of numbers"):
        tolerance_sweep(TRUTH, PRED, tolerances_nm=["a"])


def test_plot_tolerance_sweep():
    import matplotlib.pyplot as plt

    sweep = tolerance_sweep(TRUTH, PRED, tolerances_nm=[20, 50, 100])
    axes = plot_tolerance_sweep({"a": sweep, "b": sweep.assign(jaccard=0.5)})
    assert len(axes) == 2
    assert axes[0].get_xlabel() == "tolerance (nm)"
    assert [len(a.get_lines()) for a in axes] == [2, 2]
    assert_allclose(axes[0].get_lines()[0].get_ydata(), sweep["jaccard"])
    plt.close(axes[0].figure)

    fig, ax = plt.subplots()
    axes = plot_tolerance_sweep(sweep, ax=ax, metrics="recall")
    assert axes[0] is ax and axes[0].get_legend() is None
    with pytest.raises(ValueError, match="one Axes per metric"):
        plot_tolerance_sweep(sweep, ax=ax)
    with pytest.raises(ValueError, match="no column"):
        plot_tolerance_sweep(sweep, ax=ax, metrics="nope")
    with pytest.raises(TypeError, match="sweeps must be"):
        plot_tolerance_sweep([sweep])
    plt.close(fig)


# --- properties ---------------------------------------------------------------


@st.composite
def scenes(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n_frames = draw(st.integers(1, 3))
    counts_true = draw(
        st.lists(st.integers(0, 8), min_size=n_frames, max_size=n_frames)
    )
    counts_pred = draw(
        st.lists(st.integers(0, 8), min_size=n_frames, max_size=n_frames)
    )
    spread = draw(st.sampled_from([150.0, 500.0]))
    rng = np.random.default_rng(seed)
    truth = [rng.uniform(0, spread, (k, 2)) for k in counts_true]
    pred = [rng.uniform(0, spread, (k, 2)) for k in counts_pred]
    return truth, pred, rng


def same_metrics(a, b):
    for key in a:
        if isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], nan_ok=True), key
        else:
            assert a[key] == b[key], key


@settings(max_examples=50, deadline=None)
@given(scenes(), st.sampled_from(["hungarian", "greedy"]))
def test_permuting_within_frames_leaves_metrics_unchanged(scene, matching):
    truth, pred, rng = scene
    before = localization_metrics(truth, pred, tolerance_nm=100, matching=matching)
    after = localization_metrics(
        [rng.permutation(t) for t in truth],
        [rng.permutation(p) for p in pred],
        tolerance_nm=100,
        matching=matching,
    )
    same_metrics(before, after)


@settings(max_examples=50, deadline=None)
@given(scenes(), st.sampled_from(["hungarian", "greedy"]))
def test_identical_sets_are_perfect(scene, matching):
    truth, _, _ = scene
    m = localization_metrics(truth, truth, matching=matching)
    assert m["jaccard"] == 1.0 and m["fp"] == m["fn"] == 0
    if m["tp"]:
        assert m["rmse_nm"] == 0.0 and m["efficiency"] == 100.0


@settings(max_examples=50, deadline=None)
@given(scenes())
def test_hungarian_finds_at_least_as_many_pairs_as_greedy(scene):
    truth, pred, _ = scene
    hungarian = localization_metrics(truth, pred, tolerance_nm=100)
    greedy = localization_metrics(truth, pred, tolerance_nm=100, matching="greedy")
    assert hungarian["tp"] >= greedy["tp"]
    assert hungarian["jaccard"] >= greedy["jaccard"]
    for m in (hungarian, greedy):
        assert m["tp"] + m["fn"] == sum(len(t) for t in truth)
        assert m["tp"] + m["fp"] == sum(len(p) for p in pred)


@settings(max_examples=50, deadline=None)
@given(scenes(), st.sampled_from(["hungarian", "greedy"]))
def test_far_prediction_adds_one_false_positive(scene, matching):
    truth, pred, _ = scene
    before = localization_metrics(truth, pred, tolerance_nm=100, matching=matching)
    pred = list(pred)
    pred[0] = np.vstack([pred[0], [[1e5, 1e5]]])
    after = localization_metrics(truth, pred, tolerance_nm=100, matching=matching)
    assert after["fp"] == before["fp"] + 1
    assert (after["tp"], after["fn"]) == (before["tp"], before["fn"])
    assert after["rmse_nm"] == pytest.approx(before["rmse_nm"], nan_ok=True)
