"""Detection rules after the threshold: frame-edge spill-over, weak sparse."""

import copy

import numpy as np
import pandas as pd
import pytest

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm._conditions import (
    decide_detections,
    drop_edge_spill,
    drop_weak_sparse,
)

AREA = 40.96  # 64 x 64 pixels of 100 nm


def _table(rows):
    return pd.DataFrame(rows, columns=["frame", "x_nm", "y_nm", "score"])


def test_edge_spill_asks_the_edge_threshold_within_half_a_pixel_of_each_side():
    # 64 rows x 32 columns of 100 nm: x in [0, 3200), y in [0, 6400)
    rows = [
        (0, 40.0, 3000.0, 380.0),  # 0.4 px from the left edge: weak -> dropped
        (0, 40.0, 1000.0, 450.0),  # same place, strong enough -> kept
        (0, 60.0, 3000.0, 380.0),  # 0.6 px inside -> kept
        (0, 3170.0, 3000.0, 380.0),  # 0.3 px from the right edge (x = 3200)
        (0, 1000.0, 6370.0, 380.0),  # 0.3 px from the bottom edge (y = 6400)
        (1, 3170.0, 6370.0, 380.0),  # the bottom-right corner
        (1, 1000.0, 30.0, 399.0),  # top edge, just under the threshold
    ]
    out = drop_edge_spill(
        _table(rows), 400.0, frame_shape=(64, 32), pixel_size_nm=100.0
    )
    assert out[["x_nm", "y_nm"]].values.tolist() == [[40.0, 1000.0], [60.0, 3000.0]]
    # with 160 nm pixels half a pixel is 80 nm: 60 nm from the edge is dropped
    out160 = drop_edge_spill(
        _table([(0, 60.0, 3000.0, 380.0), (0, 90.0, 3000.0, 380.0)]),
        400.0,
        frame_shape=(64, 64),
        pixel_size_nm=160.0,
    )
    assert out160["x_nm"].tolist() == [90.0]


def test_weak_sparse_drops_below_the_fraction_of_the_median_in_sparse_frames():
    # frame 0 sparse (3 detections), frame 1 dense: 40 detections (0.98/um^2)
    sparse = [(0, 1e3, 1e3, 800.0), (0, 2e3, 2e3, 399.0), (0, 3e3, 3e3, 401.0)]
    dense = [(1, 100.0 * k, 100.0 * k, 800.0) for k in range(39)]
    dense += [(1, 5e3, 5e3, 310.0)]
    table = _table(sparse + dense)
    assert np.median(table["score"]) == 800.0
    out = drop_weak_sparse(table, 0.5, frame_area_um2=AREA)
    # 399 < 0.5 * 800 goes; 401 stays; the weak one of the dense frame stays
    assert out[out.frame == 0]["score"].tolist() == [800.0, 401.0]
    assert (out.frame == 1).sum() == 40


def test_none_keeps_the_table_and_bad_values_are_refused():
    table = _table([(0, 10.0, 10.0, 310.0), (0, 1e3, 1e3, 900.0)])
    kw = dict(frame_shape=(64, 64), pixel_size_nm=100.0)
    assert drop_edge_spill(table, None, **kw) is table
    assert drop_weak_sparse(table, None, frame_area_um2=AREA) is table
    assert decide_detections(table, **kw) is table
    with pytest.raises(ValueError, match="edge_threshold"):
        drop_edge_spill(table, float("nan"), **kw)
    with pytest.raises(ValueError, match="sparse_score_fraction"):
        drop_weak_sparse(table, 1.5, frame_area_um2=AREA)
    with pytest.raises(TypeError, match="edge_threshold"):
        drop_edge_spill(table.iloc[:0], "high", **kw)  # also on an empty table


def test_localizer_parameters_only_remove_detections():
    X, _ = PAFPSimulator(
        frame_shape=(64, 64), density_per_um2=0.3, random_state=11
    ).simulate(6)
    loc = copy.copy(DistanceTransformLocalizer.pretrained("default", device="cpu"))
    loc.set_params(edge_threshold=None, sparse_score_fraction=None)
    before = loc.predict(X)
    after = loc.set_params(edge_threshold=1e9, sparse_score_fraction=0.5).predict(X)
    # an unreachable edge threshold: nothing within half a pixel of the edge
    x, y = after["x_nm"].to_numpy(), after["y_nm"].to_numpy()
    edge = np.minimum.reduce([x, y, 6400.0 - x, 6400.0 - y])
    assert edge.min() >= 50.0
    assert set(map(tuple, after[["frame", "x_nm", "y_nm"]].values)) <= set(
        map(tuple, before[["frame", "x_nm", "y_nm"]].values)
    )
    x, y = before["x_nm"].to_numpy(), before["y_nm"].to_numpy()
    at_edge = np.minimum.reduce([x, y, 6400.0 - x, 6400.0 - y]) < 50.0
    weak = before["score"] < 0.5 * before["score"].median()
    assert at_edge.sum() >= 1 and weak.sum() >= 1
    assert len(after) == len(before) - (at_edge | weak).sum()
