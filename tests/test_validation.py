import numpy as np
import pytest

from sklearn_smlm._validation import (
    check_bool,
    check_frames,
    check_int,
    check_option,
    check_positive,
    check_real,
    resolve_device,
)


def test_check_frames_shapes_and_dtypes():
    assert check_frames(np.zeros((4, 5), dtype=np.uint16)).shape == (1, 4, 5)
    out = check_frames(np.zeros((2, 4, 5), dtype=np.float16))
    assert out.dtype == np.float32 and out.shape == (2, 4, 5)
    assert check_frames(np.ones((1, 3, 3), dtype=np.int64)).dtype == np.float32


@pytest.mark.parametrize(
    "X, error, message",
    [
        (np.zeros((2, 3, 4, 5)), ValueError, "shape"),
        (np.zeros(5), ValueError, "shape"),
        (np.zeros((0, 8, 8)), ValueError, "no frames"),
        (np.zeros((2, 0, 8)), ValueError, "empty frames"),
        (np.zeros((2, 8, 8), dtype=bool), TypeError, "boolean"),
        (np.full((2, 4, 4), np.nan), ValueError, "NaN"),
        (np.array([[["a"]]]), TypeError, "real numbers"),
        ("frames.tif", TypeError, "array of frames"),
    ],
)
def test_check_frames_rejects(X, error, message):
    with pytest.raises(error, match=message):
        check_frames(X)


def test_check_positive():
    assert check_positive(2, "n", integer=True) == 2
    with pytest.raises(ValueError, match="> 0"):
        check_positive(0.0, "sigma")
    with pytest.raises(TypeError):
        check_positive(True, "n")


def test_resolve_device_cpu():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda"}
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu9")


# --------------------------------------------------------------------------- #
# one rule for parameters: TypeError for the type, ValueError for the value
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: check_int(True, "n"), TypeError, "n must be an integer, got True."),
        (lambda: check_int(2.0, "n"), TypeError, "n must be an integer, got 2.0."),
        (lambda: check_int(0, "n", low=1), ValueError, "n must be >= 1, got 0."),
        (lambda: check_int(9, "n", high=8), ValueError, "n must be <= 8, got 9."),
        (lambda: check_real("1", "x"), TypeError, "x must be a number, got '1'."),
        (lambda: check_real(np.bool_(True), "x"), TypeError, "x must be a number"),
        (lambda: check_real(np.inf, "x"), ValueError, "x must be a finite number"),
        (
            lambda: check_real(0.0, "x", low=0, low_open=True),
            ValueError,
            "x must be > 0, got 0.0.",
        ),
        (
            lambda: check_real(1.0, "p", low=0, high=1, high_open=True),
            ValueError,
            "p must be < 1, got 1.0.",
        ),
        (lambda: check_bool(0, "flag"), TypeError, "flag must be True or False"),
        (
            lambda: check_option("x", "mode", ("a", "b")),
            ValueError,
            "mode must be one of 'a', 'b', got 'x'.",
        ),
    ],
)
def test_parameter_checks_follow_one_rule(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error
    assert str(info.value).startswith(message)


def test_checks_return_plain_python_values():
    assert type(check_int(np.int64(3), "n")) is int
    assert type(check_real(np.float32(0.5), "x")) is float
    assert check_bool(np.bool_(False), "flag") is False


@pytest.mark.parametrize(
    "params, error",
    [
        ({"n_layers": 2.5}, TypeError),
        ({"n_layers": 0}, ValueError),
        ({"lr": "fast"}, TypeError),
        ({"dropout": 1.0}, ValueError),
        ({"threshold": "high"}, TypeError),
        ({"threshold": float("nan")}, ValueError),
    ],
)
def test_localizer_parameters_follow_the_rule(params, error):
    from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator

    X, y = PAFPSimulator(frame_shape=(8, 8), random_state=0).simulate(2)
    with pytest.raises(error, match=next(iter(params))):
        DistanceTransformLocalizer(max_epochs=1, **params).fit(X, y)
