"""scikit-learn's common estimator checks on the network estimators.

The estimators take a stack of frames ``X`` of shape (n_frames, height, width)
and targets ``y`` as one (k, 2) array of positions per frame. Most common
checks feed a 2-D ``X`` with a 1-D numeric ``y`` (a regression or
classification target); a 2-D ``X`` is one frame here and a number is not a
list of positions, so those checks cannot apply. Each is listed with its reason.
"""

import copy
import pickle

import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_smlm import (
    DistanceTransformLocalizer,
    DistanceTransformRegressor,
    FrameNormalizer,
    PAFPSimulator,
)

_Y_IS_POSITIONS = (
    "y must be a per-frame list of (k, 2) position arrays; the check passes a "
    "1-D numeric target"
)
_NEEDS_Y = {
    name: _Y_IS_POSITIONS
    for name in (
        "check_dict_unchanged",
        "check_dont_overwrite_parameters",
        "check_dtype_object",
        "check_estimators_dtypes",
        "check_estimators_fit_returns_self",
        "check_estimators_nan_inf",
        "check_estimators_overwrite_params",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_fit2d_predict1d",
        "check_fit_check_is_fitted",
        "check_fit_idempotent",
        "check_fit_score_takes_y",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_n_features_in",
        "check_n_features_in_after_fitting",
        "check_pipeline_consistency",
        "check_positive_only_tag_during_fit",
        "check_readonly_memmap_input",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
    )
}
_OTHER = {
    "check_fit2d_1sample": "a 2-D X is one frame, not samples; " + _Y_IS_POSITIONS,
    "check_fit2d_1feature": "a 2-D X is one frame, not features; " + _Y_IS_POSITIONS,
    "check_estimators_empty_data_messages": (
        "the error names empty frames, not features"
    ),
    "check_requires_y_none": (
        "the message says y must be a list of positions, the check wants "
        "classification wording"
    ),
    "check_transformer_data_not_an_array": (
        "X is converted with numpy; the check's _NotAnArray is a 2-D sample "
        "matrix passed with a 1-D numeric y"
    ),
}


def _expected_failed_checks(estimator):
    return {**_NEEDS_Y, **_OTHER}


TINY = dict(
    n_layers=1,
    n_channels=2,
    max_epochs=1,
    validation_fraction=0,
    upscaling=2,
    d_max=4.0,
    random_state=0,
)


@parametrize_with_checks(
    [DistanceTransformLocalizer(**TINY), DistanceTransformRegressor(**TINY)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------- #
# The invariants behind the excluded checks, on frames and positions
# (check_fit_idempotent, check_dont_overwrite_parameters /
# check_estimators_overwrite_params, check_dict_unchanged, pickling).
# ------------------------------------------------------------------------- #
_TINY = dict(
    n_layers=2,
    n_channels=4,
    max_epochs=1,
    batch_size=4,
    validation_fraction=0,
    random_state=0,
    device="cpu",
    precision="fp32",
    threshold=1.0,
)


@pytest.fixture(scope="module")
def data():
    return PAFPSimulator(frame_shape=(16, 16), random_state=0).simulate(6)


def _weights(est):
    module = est.regressor_.module_ if hasattr(est, "regressor_") else est.module_
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _snapshot(obj):
    """Attribute name -> object identity and, for plain values, the value."""
    return {
        k: (id(v), v if isinstance(v, (int, float, str, tuple, type(None))) else None)
        for k, v in vars(obj).items()
    }


@pytest.mark.parametrize(
    "cls", [DistanceTransformLocalizer, DistanceTransformRegressor]
)
def test_fit_is_idempotent_and_keeps_the_parameters(cls, data):
    X, y = data
    params = {k: v for k, v in _TINY.items() if k in cls().get_params()}
    est = cls(**params)
    if cls is DistanceTransformLocalizer:
        est.set_params(normalizer=FrameNormalizer(min_scale=0.5))
    before = copy.deepcopy(est.get_params(deep=False))
    if cls is DistanceTransformRegressor:
        X = FrameNormalizer().fit_transform(X)
    first = _weights(est.fit(X, y))
    after = est.get_params(deep=False)
    assert after.keys() == before.keys()
    for name, value in before.items():
        if name == "normalizer":
            assert after[name] is est.normalizer  # the given object, not the fitted
            assert value.get_params() == after[name].get_params()
            assert not hasattr(after[name], "n_features_in_")
        else:
            assert after[name] == value, name
    second = _weights(est.fit(X, y))  # a second fit starts over: same weights
    assert first.keys() == second.keys()
    for name in first:
        assert first[name].tobytes() == second[name].tobytes(), name


def test_predict_leaves_the_fitted_state_alone(data):
    X, y = data
    loc = DistanceTransformLocalizer(**_TINY).fit(X, y)
    state, regressor_state = _snapshot(loc), _snapshot(loc.regressor_)
    normalizer = loc.normalizer_
    first = loc.predict(X)
    loc.predict_maps(X[:2])
    list(loc.iter_predict(X, chunk_size=4))
    assert _snapshot(loc) == state
    assert _snapshot(loc.regressor_) == regressor_state
    assert loc.normalizer_ is normalizer
    # pickling round-trips the fitted estimator: the same table
    again = pickle.loads(pickle.dumps(loc)).predict(X)
    assert len(first) > 0 and again.equals(first)


def test_iter_predict_reads_any_sliceable_sequence_lazily(data):
    # the documented contract: anything with len and slicing along the frames
    X, y = data
    loc = DistanceTransformLocalizer(**_TINY).fit(X, y)
    asked = []

    class Lazy:
        def __len__(self):
            return len(X)

        def __getitem__(self, key):
            asked.append((key.start, key.stop))
            return X[key]

    tables = list(loc.iter_predict(Lazy(), chunk_size=4))
    assert asked == [(0, 4), (4, 6)]  # 6 frames in chunks of 4
    assert pd.concat(tables, ignore_index=True).equals(loc.predict(X))
