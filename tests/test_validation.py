import numpy as np
import pytest

from sklearn_smlm._validation import check_frames, check_positive, resolve_device


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
