"""The edge rule for sparse chunks of thick samples (thick_edge_threshold)."""

import numpy as np
import pandas as pd
import pytest

from sklearn_smlm import PAFPSimulator
from sklearn_smlm._conditions import drop_thick_edge_spill


def _frames(thick):
    extra = dict(z_range_nm=(-750.0, 750.0), focal_depth_nm=400.0) if thick else {}
    X, _ = PAFPSimulator(
        frame_shape=(64, 64), density_per_um2=0.3, random_state=5, **extra
    ).simulate(32)
    return X


@pytest.fixture(scope="module")
def thick():
    return _frames(True)


@pytest.fixture(scope="module")
def thin():
    return _frames(False)


# frame 0: a weak edge detection (30 nm from x = 0), a strong edge one, a weak
# interior one
TABLE = pd.DataFrame(
    {
        "frame": [0, 0, 0],
        "x_nm": [30.0, 6380.0, 3200.0],
        "y_nm": [3000.0, 3000.0, 3200.0],
        "score": [420.0, 700.0, 320.0],
    }
)


def test_weak_edge_detection_dropped_in_a_sparse_thick_chunk(thick):
    kept = drop_thick_edge_spill(thick, TABLE, 450.0, pixel_size_nm=100.0)
    assert kept["score"].tolist() == [700.0, 320.0]


def test_in_focus_chunk_is_left_alone(thin):
    assert drop_thick_edge_spill(thin, TABLE, 450.0, pixel_size_nm=100.0) is TABLE


def test_dense_chunk_and_no_threshold_are_left_alone(thick):
    # 0.5 detections per um^2 per frame or more: the rule does not apply
    n = int(np.ceil(0.5 * 6.4 * 6.4 * len(thick)))
    rng = np.random.default_rng(0)
    dense = pd.DataFrame(
        {
            "frame": rng.integers(0, len(thick), n),
            "x_nm": rng.uniform(0, 6400, n),
            "y_nm": rng.uniform(0, 6400, n),
            "score": np.full(n, 400.0),
        }
    )
    dense.loc[0, "x_nm"] = 10.0
    assert drop_thick_edge_spill(thick, dense, 450.0, pixel_size_nm=100.0) is dense
    assert drop_thick_edge_spill(thick, TABLE, None, pixel_size_nm=100.0) is TABLE


def test_bad_threshold_is_named():
    with pytest.raises(TypeError, match="thick_edge_threshold must be"):
        drop_thick_edge_spill(np.zeros((1, 8, 8)), TABLE, "high", pixel_size_nm=100.0)


def test_localizer_applies_it_after_the_other_rules(thick):
    from sklearn_smlm import DistanceTransformLocalizer

    loc = DistanceTransformLocalizer.pretrained("default", device="cpu")
    plain = loc.predict(thick)
    expected = drop_thick_edge_spill(thick, plain, 600.0, pixel_size_nm=100.0)
    got = loc.set_params(thick_edge_threshold=600.0).predict(thick)
    assert len(got) < len(plain)  # some weak edge detections in these frames
    # the same detections (the photons and uncertainty columns, computed
    # after the rules, may change for a neighbour of a dropped one)
    columns = ["frame", "x_nm", "y_nm", "score"]
    pd.testing.assert_frame_equal(got[columns], expected[columns])
