import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GridSearchCV, cross_validate

from sklearn_smlm.metrics import (
    JaccardScorer,
    LocalizationScorer,
    RMSEScorer,
    jaccard_scorer,
    make_localization_scorer,
    rmse_scorer,
)


class DummyLocalizer(BaseEstimator):
    """Frames X of shape (n, 2, 2) hold up to two (x_nm, y_nm) positions per
    frame (NaN rows are absent); predict returns them shifted by offset_nm."""

    def __init__(self, offset_nm=0.0, pixel_size_nm=100.0):
        self.offset_nm = offset_nm
        self.pixel_size_nm = pixel_size_nm

    def fit(self, X, y=None):
        self.is_fitted_ = True
        return self

    def predict(self, X):
        X = np.asarray(X)
        frame, slot = np.nonzero(~np.isnan(X[:, :, 0]))
        return pd.DataFrame(
            {
                "frame": frame,
                "x_nm": X[frame, slot, 0] + self.offset_nm,
                "y_nm": X[frame, slot, 1],
            }
        )


def make_data(n_frames=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(500, 5000, (n_frames, 2, 2))
    X[::3, 1] = np.nan  # every third frame holds one emitter only
    y = [x[~np.isnan(x[:, 0])] for x in X]
    return X, y


def test_scorers_on_hand_cases():
    X, y = make_data()
    assert jaccard_scorer(DummyLocalizer(0.0), X, y) == 1.0
    assert rmse_scorer(DummyLocalizer(0.0), X, y) == 0.0
    assert rmse_scorer(DummyLocalizer(50.0), X, y) == pytest.approx(-50.0)
    assert JaccardScorer(tolerance_nm=30)(DummyLocalizer(50.0), X, y) == 0.0
    # No pair matched: the RMSE counts as the tolerance, never NaN.
    assert RMSEScorer(tolerance_nm=30)(DummyLocalizer(50.0), X, y) == -30.0
    # A table of truth works as well as a per-frame list.
    table = DummyLocalizer(0.0).predict(X)
    assert rmse_scorer(DummyLocalizer(50.0), X, table) == pytest.approx(-50.0)


def test_generic_scorer_and_factory():
    X, y = make_data()
    # 8 frames, frames 0, 3 and 6 with one emitter: 13 emitters. Frame 1 holds
    # two; predict only the first of them.
    est = DummyLocalizer(20.0)
    X_missing = X.copy()
    X_missing[1, 1] = np.nan
    assert LocalizationScorer(metric="recall")(est, X_missing, y) == pytest.approx(
        12 / 13
    )
    assert LocalizationScorer(metric="precision")(est, X_missing, y) == 1.0
    assert make_localization_scorer("rmse_x_nm")(est, X, y) == pytest.approx(-20.0)
    assert make_localization_scorer("efficiency")(est, X, y) == pytest.approx(80.0)
    # No pair: the efficiency is computed with RMSE = tolerance (JI = 0).
    far = make_localization_scorer("efficiency", tolerance_nm=10)
    assert far(est, X, y) == pytest.approx(100 - np.hypot(100, 10))
    assert isinstance(make_localization_scorer(), JaccardScorer)
    assert isinstance(make_localization_scorer("rmse_nm"), RMSEScorer)
    with pytest.raises(ValueError, match="metric must be one of"):
        make_localization_scorer("rmse_z_nm")
    with pytest.raises(ValueError, match="metric must be one of"):
        LocalizationScorer(metric="nope")(est, X, y)


def test_scorer_params_and_repr():
    scorer = JaccardScorer(tolerance_nm=100)
    assert repr(scorer) == "JaccardScorer(tolerance_nm=100)"
    assert scorer.get_params()["tolerance_nm"] == 100
    assert scorer.set_params(matching="greedy").matching == "greedy"
    assert clone(scorer).get_params() == scorer.get_params()
    assert jaccard_scorer.greater_is_better and not rmse_scorer.greater_is_better
    assert (jaccard_scorer._sign, rmse_scorer._sign) == (1, -1)
    assert repr(rmse_scorer) == "RMSEScorer()"


def test_scorer_border_uses_the_estimator_pixel_size():
    # 10 x 10 pixels of 100 nm: a 1000 nm field; a 200 nm border leaves
    # [200, 800] scored.
    X = np.full((1, 2, 2), np.nan)
    X[0, 0] = [100.0, 500.0]  # in the band
    X[0, 1] = [500.0, 500.0]
    y = [X[0, :2]]
    X_frames = np.zeros((1, 10, 10))
    est = DummyLocalizer(10.0)

    class Wrapped(DummyLocalizer):
        def predict(self, frames):
            return super().predict(X)

    scorer = RMSEScorer(border_nm=200)
    assert scorer(Wrapped(10.0), X_frames, y) == pytest.approx(-10.0)
    # The in-band truth is not scored, so JI stays 1 even when it is missed.
    X_missing = X.copy()
    X_missing[0, 0] = np.nan

    class Missing(DummyLocalizer):
        def predict(self, frames):
            return super().predict(X_missing)

    assert JaccardScorer(border_nm=200)(Missing(0.0), X_frames, y) == 1.0
    assert JaccardScorer()(Missing(0.0), X_frames, y) == 0.5
    with pytest.raises(ValueError, match="border_nm needs the field of view"):
        JaccardScorer(border_nm=200)(est.set_params(pixel_size_nm=None), X_frames, y)


def test_scorer_rejects_mismatched_y():
    X, y = make_data()
    with pytest.raises(ValueError, match="y holds positions for 7 frame"):
        jaccard_scorer(DummyLocalizer(), X, y[:-1])
    with pytest.raises(ValueError, match="needs the true positions"):
        jaccard_scorer(DummyLocalizer(), X, None)
    with pytest.raises(ValueError, match="matching must be"):
        JaccardScorer(matching="best")(DummyLocalizer(), X, y)


def test_grid_search_picks_the_right_offset():
    X, y = make_data(n_frames=10)
    search = GridSearchCV(
        DummyLocalizer(), {"offset_nm": [0, 50, 400]}, scoring=jaccard_scorer, cv=2
    )
    search.fit(X, y)
    # Offsets 0 and 50 are within 250 nm (JI 1); 400 nm matches nothing.
    assert_allclose(search.cv_results_["mean_test_score"], [1.0, 1.0, 0.0])
    assert search.best_params_ == {"offset_nm": 0}

    search = GridSearchCV(
        DummyLocalizer(),
        {"offset_nm": [400, 50, 0]},
        scoring={"ji": JaccardScorer(tolerance_nm=100), "rmse": rmse_scorer},
        refit="ji",
        cv=2,
    )
    search.fit(X, y)
    assert_allclose(search.cv_results_["mean_test_ji"], [0.0, 1.0, 1.0])
    assert_allclose(search.cv_results_["mean_test_rmse"], [-250.0, -50.0, 0.0])
    assert search.best_params_ == {"offset_nm": 50}  # first of the tied best JI
    assert search.best_estimator_.offset_nm == 50


def test_grid_search_with_rmse_refit_and_cross_validate():
    X, y = make_data(n_frames=9)
    search = GridSearchCV(
        DummyLocalizer(), {"offset_nm": [50, 10, 400]}, scoring=rmse_scorer, cv=3
    )
    assert search.fit(X, y).best_params_ == {"offset_nm": 10}
    result = cross_validate(
        DummyLocalizer(offset_nm=30.0),
        X,
        y,
        cv=3,
        scoring={"ji": jaccard_scorer, "rmse": rmse_scorer},
    )
    assert_allclose(result["test_ji"], [1.0, 1.0, 1.0])
    assert_allclose(result["test_rmse"], [-30.0, -30.0, -30.0])
