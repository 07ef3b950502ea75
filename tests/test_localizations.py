import numpy as np
import pandas as pd
import pytest

from sklearn_smlm._localizations import (
    check_positions,
    empty_localizations,
    localizations_from_list,
    localizations_to_list,
    validate_localizations,
)


def test_round_trip_list_table_list():
    rng = np.random.default_rng(0)
    positions = [rng.uniform(0, 6400, size=(k, 2)) for k in (3, 0, 5, 1)]
    table = localizations_from_list(positions)
    assert list(table.columns) == ["frame", "x_nm", "y_nm"]
    assert table["frame"].tolist() == [0, 0, 0, 2, 2, 2, 2, 2, 3]
    back = localizations_to_list(table, n_frames=4)
    for a, b in zip(positions, back, strict=True):
        np.testing.assert_array_equal(a, b)


def test_to_list_sorts_frames_and_pads():
    table = pd.DataFrame({"frame": [2, 0, 2], "x_nm": [1.0, 2.0, 3.0], "y_nm": 0.0})
    out = localizations_to_list(table, n_frames=4)
    assert [len(p) for p in out] == [1, 0, 2, 0]
    np.testing.assert_array_equal(out[2][:, 0], [1.0, 3.0])  # stable order
    with pytest.raises(ValueError, match="frame 2 but only 2"):
        localizations_to_list(table, n_frames=2)


def test_3d_positions_get_z_column():
    table = localizations_from_list([np.array([[1.0, 2.0, -300.0]])])
    assert list(table.columns) == ["frame", "x_nm", "y_nm", "z_nm"]


def test_empty_table_has_dtypes():
    table = empty_localizations(["frame", "x_nm", "y_nm", "score"])
    assert len(table) == 0
    assert table["frame"].dtype == np.int64
    assert table["score"].dtype == np.float64
    assert localizations_to_list(table) == []


@pytest.mark.parametrize(
    "table, message",
    [
        (pd.DataFrame({"frame": [0], "x_nm": [1.0]}), "missing the column"),
        (pd.DataFrame({"frame": [0], "x_nm": [np.nan], "y_nm": [1.0]}), "NaN"),
        (pd.DataFrame({"frame": [-1], "x_nm": [1.0], "y_nm": [1.0]}), ">= 0"),
        (pd.DataFrame({"frame": [0.5], "x_nm": [1.0], "y_nm": [1.0]}), "whole"),
        (pd.DataFrame({"frame": [0], "x_nm": ["a"], "y_nm": [1.0]}), "not numeric"),
    ],
)
def test_validate_rejects_bad_tables(table, message):
    with pytest.raises(ValueError, match=message):
        validate_localizations(table, name="my.csv")


def test_validate_names_the_table():
    with pytest.raises(ValueError, match="locs.csv"):
        validate_localizations(pd.DataFrame({"x": [1]}), name="locs.csv")
    with pytest.raises(TypeError, match="DataFrame"):
        validate_localizations(np.zeros((3, 3)))


def test_check_positions_accepts_list_and_table():
    positions = [np.array([[1.0, 2.0]]), np.empty((0, 2))]
    out = check_positions(positions, n_frames=2)
    assert [p.shape for p in out] == [(1, 2), (0, 2)]
    out = check_positions(localizations_from_list(positions), n_frames=2)
    assert [p.shape for p in out] == [(1, 2), (0, 2)]
    with pytest.raises(ValueError, match="1 frame"):
        check_positions(positions[:1], n_frames=2)
    with pytest.raises(ValueError, match="shape"):
        check_positions([np.zeros((2, 5))])
    with pytest.raises(TypeError):
        check_positions(3.0)
