"""drop_sparse_duplicates: one detection per emitter in sparse frames."""

import copy

import numpy as np
import pandas as pd
import pytest

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm._conditions import drop_sparse_duplicates

AREA = 40.96  # 64 x 64 pixels of 100 nm


def _table(rows):
    return pd.DataFrame(rows, columns=["frame", "x_nm", "y_nm", "score"])


def test_the_weaker_of_a_close_pair_goes_in_sparse_frames_only():
    sparse = [(0, 1000.0, 1000.0, 400.0), (0, 1060.0, 1060.0, 900.0)]
    sparse += [(0, 4000.0, 4000.0, 500.0)]  # alone: kept
    # frame 1: 30 detections on 40.96 um^2 (0.73 per um^2), one close pair
    dense = [
        (1, 300.0 + 1000.0 * (k % 6), 300.0 + 1000.0 * (k // 6), 600.0)
        for k in range(29)
    ] + [(1, 350.0, 300.0, 300.0)]
    table = _table(sparse + dense)
    out = drop_sparse_duplicates(table, 100.0, frame_area_um2=AREA)
    assert out[out.frame == 0][["x_nm", "score"]].values.tolist() == [
        [1060.0, 900.0],
        [4000.0, 500.0],
    ]
    assert (out.frame == 1).sum() == 30
    # a pair further apart than the radius stays
    apart = drop_sparse_duplicates(table, 50.0, frame_area_um2=AREA)
    assert (apart.frame == 0).sum() == 3
    # the same pair in two different frames is no pair
    two = _table([(0, 1000.0, 1000.0, 400.0), (1, 1000.0, 1000.0, 900.0)])
    assert len(drop_sparse_duplicates(two, 100.0, frame_area_um2=AREA)) == 2


def test_none_keeps_the_table_and_a_bad_radius_is_refused():
    table = _table([(0, 1000.0, 1000.0, 400.0), (0, 1010.0, 1000.0, 900.0)])
    assert drop_sparse_duplicates(table, None, frame_area_um2=AREA) is table
    with pytest.raises(ValueError, match="duplicate_radius_nm"):
        drop_sparse_duplicates(table, -5.0, frame_area_um2=AREA)


def test_localizer_parameter_leaves_no_close_pair_in_sparse_frames():
    X, _ = PAFPSimulator(
        frame_shape=(64, 64),
        density_per_um2=0.3,
        z_range_nm=(-750.0, 750.0),
        focal_depth_nm=400.0,
        random_state=5,
    ).simulate(8)
    loc = copy.copy(DistanceTransformLocalizer.pretrained("default", device="cpu"))
    before = loc.set_params(duplicate_radius_nm=None).predict(X)
    after = loc.set_params(duplicate_radius_nm=100.0).predict(X)
    # frames of fewer than 0.5 detections per um^2 (20.48 on 40.96 um^2)
    sparse = before.groupby("frame").size().loc[lambda n: n < 0.5 * AREA].index
    assert len(sparse) >= 4
    assert len(after) < len(before)
    for f in sparse:
        xy = after.loc[after.frame == f, ["x_nm", "y_nm"]].to_numpy()
        d = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(len(xy)) * 1e9
        assert d.min() >= 100.0
