import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from sklearn_smlm.metrics import match_localizations

GROUND_TRUTH = Path("/work/shared/data/bt_hd_recreated/ground_truth.csv")


def table(rows):
    """Localization table from (frame, x, y) rows."""
    rows = np.asarray(rows, dtype=float).reshape(-1, 3)
    return pd.DataFrame(
        {"frame": rows[:, 0].astype(int), "x_nm": rows[:, 1], "y_nm": rows[:, 2]}
    )


# --- worked by hand ---------------------------------------------------------


def test_two_truths_three_predictions():
    truth = [np.array([[0.0, 0.0], [300.0, 0.0]])]
    pred = [np.array([[1000.0, 1000.0], [30.0, 40.0], [300.0, 60.0]])]
    for matching in ("hungarian", "greedy"):
        pairs = match_localizations(truth, pred, tolerance_nm=100, matching=matching)
        assert list(pairs.columns) == [
            "frame",
            "true_index",
            "pred_index",
            "distance_nm",
            "dx_nm",
            "dy_nm",
        ]
        assert_array_equal(pairs["true_index"], [0, 1])
        assert_array_equal(pairs["pred_index"], [1, 2])
        assert_array_equal(pairs["distance_nm"], [50.0, 60.0])
        assert_array_equal(pairs["dx_nm"], [30.0, 0.0])
        assert_array_equal(pairs["dy_nm"], [40.0, 60.0])
        assert pairs.attrs == {"n_true": 2, "n_pred": 3}


def test_greedy_finds_fewer_pairs_than_hungarian():
    # On a line: T0=0, P0=90, T1=150, P1=240. The closest pair (P0, T1) is 60 nm
    # apart; greedy takes it and strands T0 and P1 (each 90 nm from a taken
    # partner), while the optimal assignment pairs T0-P0 and T1-P1.
    truth = table([[0, 0, 0], [0, 150, 0]])
    pred = table([[0, 90, 0], [0, 240, 0]])
    greedy = match_localizations(truth, pred, tolerance_nm=100, matching="greedy")
    hungarian = match_localizations(truth, pred, tolerance_nm=100)
    assert len(greedy) == 1
    assert (greedy["true_index"].item(), greedy["pred_index"].item()) == (1, 0)
    assert greedy["distance_nm"].item() == 60.0
    assert len(hungarian) == 2
    assert_array_equal(hungarian["pred_index"], [0, 1])
    assert_array_equal(hungarian["distance_nm"], [90.0, 90.0])


def test_hungarian_prefers_least_total_distance():
    # Both assignments match 2 pairs; the crossed one costs 95 + 95 nm, the
    # straight one 5 + 5 nm.
    truth = table([[0, 0, 0], [0, 100, 0]])
    pred = table([[0, 95, 0], [0, 5, 0]])
    pairs = match_localizations(truth, pred, tolerance_nm=100)
    assert_array_equal(pairs["pred_index"], [1, 0])
    assert_array_equal(pairs["distance_nm"], [5.0, 5.0])


def test_pair_exactly_at_tolerance_is_matched():
    truth = table([[0, 0, 0]])
    pred = table([[0, 30, 40]])  # 50 nm away, exactly
    for matching in ("hungarian", "greedy"):
        assert (
            len(match_localizations(truth, pred, tolerance_nm=50, matching=matching))
            == 1
        )
        assert (
            len(
                match_localizations(truth, pred, tolerance_nm=49.999, matching=matching)
            )
            == 0
        )


def test_zero_distance_pair_is_matched_at_zero_tolerance():
    truth = table([[0, 12.5, 7.5]])
    pairs = match_localizations(truth, truth.copy(), tolerance_nm=0)
    assert len(pairs) == 1 and pairs["distance_nm"].item() == 0.0


def test_greedy_tie_goes_to_lower_prediction_row():
    truth = table([[0, 0, 0]])
    pred = table([[0, 50, 0], [0, -50, 0]])
    pairs = match_localizations(truth, pred, tolerance_nm=100, matching="greedy")
    assert pairs["pred_index"].tolist() == [0]
    assert pairs["dx_nm"].tolist() == [50.0]
    swapped = match_localizations(
        truth, pred.iloc[::-1], tolerance_nm=100, matching="greedy"
    )
    assert swapped["dx_nm"].tolist() == [-50.0]


def test_only_same_frame_pairs_match():
    truth = table([[0, 100, 100], [2, 500, 500]])
    pred = table([[1, 100, 100], [2, 510, 500], [3, 500, 500]])
    pairs = match_localizations(truth, pred, tolerance_nm=250)
    assert pairs[["frame", "true_index", "pred_index"]].values.tolist() == [[2, 1, 1]]
    assert pairs.attrs == {"n_true": 2, "n_pred": 3}


def test_list_and_table_inputs_agree():
    truth = [np.empty((0, 2)), np.array([[10.0, 10.0], [400.0, 400.0]])]
    pred = [np.array([[0.0, 0.0]]), np.array([[420.0, 400.0]])]
    from_lists = match_localizations(truth, pred)
    from_tables = match_localizations(
        table([[1, 10, 10], [1, 400, 400]]), table([[0, 0, 0], [1, 420, 400]])
    )
    pd.testing.assert_frame_equal(from_lists, from_tables)
    # Row positions refer to the frames concatenated in order; the prediction
    # at (0, 0) is in frame 0, where there is no truth.
    assert from_lists[["frame", "true_index", "pred_index"]].values.tolist() == [
        [1, 1, 1]
    ]
    assert from_lists["distance_nm"].tolist() == [20.0]


def test_empty_inputs():
    empty = table(np.empty((0, 3)))
    one = table([[0, 5, 5]])
    for truth, pred, n_true, n_pred in [
        (empty, one, 0, 1),
        (one, empty, 1, 0),
        (empty, empty, 0, 0),
        ([], [], 0, 0),
    ]:
        pairs = match_localizations(truth, pred)
        assert len(pairs) == 0
        assert pairs.attrs == {"n_true": n_true, "n_pred": n_pred}
        assert "distance_nm" in pairs


def test_border_exclusion_follows_the_2016_rule():
    fov = (1000.0, 1000.0)
    truth = table(
        [
            [0, 50, 500],  # 0: in the border band
            [0, 500, 500],  # 1: inside, matched
            [0, 800, 200],  # 2: inside, unmatched -> FN
            [0, 110, 300],  # 3: inside, matched to a prediction in the band
        ]
    )
    pred = table(
        [
            [0, 60, 500],  # 0: matched to truth 0 -> not scored
            [0, 500, 510],  # 1: matched to truth 1 -> TP
            [0, 950, 500],  # 2: unmatched, in the band -> not scored
            [0, 500, 800],  # 3: unmatched, inside -> FP
            [0, 90, 300],  # 4: in the band but matched to truth 3 -> TP
        ]
    )
    pairs = match_localizations(
        truth, pred, tolerance_nm=50, border_nm=100, field_of_view_nm=fov
    )
    assert pairs[["true_index", "pred_index"]].values.tolist() == [[1, 1], [3, 4]]
    assert pairs.attrs == {"n_true": 3, "n_pred": 3}
    # Without the border every localization is scored.
    pairs = match_localizations(truth, pred, tolerance_nm=50)
    assert len(pairs) == 3 and pairs.attrs == {"n_true": 4, "n_pred": 5}


def test_axial_positions_and_tolerance():
    truth = [np.array([[0.0, 0.0, 0.0], [500.0, 0.0, 0.0]])]
    pred = [np.array([[10.0, 0.0, 300.0], [500.0, 10.0, -700.0]])]
    lateral = match_localizations(truth, pred, tolerance_nm=100)
    assert_array_equal(lateral["dz_nm"], [300.0, -700.0])
    axial = match_localizations(truth, pred, tolerance_nm=100, axial_tolerance_nm=500)
    assert axial["true_index"].tolist() == [0]
    with pytest.raises(ValueError, match="axial_tolerance_nm needs axial"):
        match_localizations([np.zeros((1, 2))], pred, axial_tolerance_nm=500)
    # Without z in one input, no dz column.
    assert "dz_nm" not in match_localizations([np.zeros((1, 2))], pred)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"matching": "nearest"}, ValueError, "matching must be one of"),
        ({"tolerance_nm": -1}, ValueError, "tolerance_nm must be"),
        ({"tolerance_nm": "250"}, TypeError, "tolerance_nm must be a number"),
        ({"border_nm": 300}, ValueError, "needs field_of_view_nm"),
        ({"border_nm": 300, "field_of_view_nm": 6400}, ValueError, "pair"),
    ],
)
def test_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        match_localizations(table([[0, 0, 0]]), table([[0, 0, 0]]), **kwargs)


def test_bad_inputs():
    with pytest.raises(TypeError, match="y_true must be"):
        match_localizations(3.0, table([[0, 0, 0]]))
    with pytest.raises(ValueError, match="y_pred is missing"):
        match_localizations(table([[0, 0, 0]]), pd.DataFrame({"x": [1.0]}))
    with pytest.raises(ValueError, match=r"y_pred: .*shape"):
        match_localizations(table([[0, 0, 0]]), [np.zeros((2, 4))])


# --- properties ---------------------------------------------------------------


def brute_force_greedy(truth, pred, tolerance_nm):
    """Closest pair first, frame by frame, from the full distance matrix."""
    pairs = []
    for frame in sorted(set(truth["frame"]) & set(pred["frame"])):
        t = np.flatnonzero(truth["frame"].to_numpy() == frame)
        p = np.flatnonzero(pred["frame"].to_numpy() == frame)
        d = np.hypot(
            truth["x_nm"].to_numpy()[t, None] - pred["x_nm"].to_numpy()[None, p],
            truth["y_nm"].to_numpy()[t, None] - pred["y_nm"].to_numpy()[None, p],
        )
        d[d > tolerance_nm] = np.inf
        while np.isfinite(d).any():
            i, j = np.unravel_index(np.argmin(d), d.shape)
            pairs.append((t[i], p[j]))
            d[i, :] = np.inf
            d[:, j] = np.inf
    return sorted(pairs)


def max_pairs(truth, pred, tolerance_nm):
    """Largest number of one-to-one pairs within the tolerance (graph theory)."""
    close = (
        truth["frame"].to_numpy()[:, None] == pred["frame"].to_numpy()[None, :]
    ) & (
        np.hypot(
            truth["x_nm"].to_numpy()[:, None] - pred["x_nm"].to_numpy()[None, :],
            truth["y_nm"].to_numpy()[:, None] - pred["y_nm"].to_numpy()[None, :],
        )
        <= tolerance_nm
    )
    if close.size == 0:
        return 0
    matched = maximum_bipartite_matching(
        csr_matrix(close.astype(int)), perm_type="column"
    )
    return int((matched >= 0).sum())


@st.composite
def scenes(draw):
    """Random truth and prediction tables: few frames, clustered points.

    Positions come from a seeded continuous distribution, so exact distance
    ties (which make any matching order-dependent) have probability zero.
    """
    seed = draw(st.integers(0, 2**32 - 1))
    n_true = draw(st.integers(0, 12))
    n_pred = draw(st.integers(0, 12))
    spread = draw(st.sampled_from([100.0, 300.0, 1000.0]))
    rng = np.random.default_rng(seed)

    def random_table(n):
        return pd.DataFrame(
            {
                "frame": rng.integers(0, 3, n),
                "x_nm": rng.uniform(0, spread, n),
                "y_nm": rng.uniform(0, spread, n),
            }
        )

    return random_table(n_true), random_table(n_pred), seed


def pair_set(pairs):
    return sorted(zip(pairs["true_index"], pairs["pred_index"], strict=True))


@settings(max_examples=50, deadline=None)
@given(scenes())
def test_greedy_equals_brute_force(scene):
    truth, pred, _ = scene
    pairs = match_localizations(truth, pred, tolerance_nm=100, matching="greedy")
    assert pair_set(pairs) == brute_force_greedy(truth, pred, 100)


@settings(max_examples=50, deadline=None)
@given(scenes())
def test_hungarian_finds_the_most_pairs_and_least_distance(scene):
    truth, pred, _ = scene
    hungarian = match_localizations(truth, pred, tolerance_nm=100)
    greedy = match_localizations(truth, pred, tolerance_nm=100, matching="greedy")
    assert len(hungarian) == max_pairs(truth, pred, 100)
    assert len(hungarian) >= len(greedy)
    if len(hungarian) == len(greedy):
        assert hungarian["distance_nm"].sum() <= greedy["distance_nm"].sum() + 1e-9
    for pairs in (hungarian, greedy):
        assert pairs["true_index"].is_unique and pairs["pred_index"].is_unique
        assert (pairs["distance_nm"] <= 100).all()
        t, p = pairs["true_index"], pairs["pred_index"]
        assert_array_equal(truth["frame"].to_numpy()[t], pred["frame"].to_numpy()[p])
        assert_allclose(
            pairs["dx_nm"], pred["x_nm"].to_numpy()[p] - truth["x_nm"].to_numpy()[t]
        )


@settings(max_examples=50, deadline=None)
@given(scenes(), st.sampled_from(["hungarian", "greedy"]))
def test_permuting_rows_gives_the_same_pairs(scene, matching):
    truth, pred, seed = scene
    rng = np.random.default_rng(seed + 1)
    t_perm = rng.permutation(len(truth))
    p_perm = rng.permutation(len(pred))
    pairs = match_localizations(truth, pred, tolerance_nm=100, matching=matching)
    permuted = match_localizations(
        truth.iloc[t_perm], pred.iloc[p_perm], tolerance_nm=100, matching=matching
    )
    # Map the permuted row positions back to the original rows.
    back = sorted(
        zip(
            t_perm[permuted["true_index"]],
            p_perm[permuted["pred_index"]],
            strict=True,
        )
    )
    assert back == pair_set(pairs)


# --- real data ----------------------------------------------------------------


@pytest.mark.skipif(not GROUND_TRUTH.exists(), reason="reference data not present")
def test_ground_truth_against_itself_shifted():
    gt = pd.read_csv(GROUND_TRUTH)
    truth = pd.DataFrame(
        {"frame": gt["frame"] - 1, "x_nm": gt["x [nm]"], "y_nm": gt["y [nm]"]}
    )
    pred = truth.copy()
    pred["x_nm"] += 6.0
    pred["y_nm"] += 8.0
    start = time.perf_counter()
    pairs = match_localizations(truth, pred, tolerance_nm=250)
    elapsed = time.perf_counter() - start
    print(f"matched {len(truth)} localizations in {elapsed:.2f} s")
    assert len(pairs) == len(truth) == 81178
    # Every point pairs with its own shifted copy.
    assert_array_equal(pairs["true_index"], pairs["pred_index"])
    assert_allclose(pairs["distance_nm"], 10.0, atol=1e-9)
