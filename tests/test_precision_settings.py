"""The opt-in prediction precisions "bf16-map" and "int8" of the CNN."""

import numpy as np
import pytest
import torch

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm.metrics import localization_metrics
from sklearn_smlm.nn import (
    PRECISIONS,
    SubPixelCNN,
    autocast,
    quantize_features,
    resolve_precision,
)

pytestmark = pytest.mark.skipif(
    "onednn" not in torch.backends.quantized.supported_engines,
    reason="no oneDNN quantized engine in this torch build",
)


@pytest.fixture(scope="module")
def frames():
    X, y = PAFPSimulator(
        frame_shape=(48, 48), density_per_um2=1.0, random_state=3
    ).simulate(6)
    return X, [np.asarray(p)[:, :2] for p in y]


def test_explicit_settings_resolve_to_themselves_and_others_are_refused():
    for precision in PRECISIONS[1:]:
        assert resolve_precision(precision, "cpu") == precision
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int4", "cpu")
    loc = DistanceTransformLocalizer.pretrained(device="cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        loc.set_params(precision="half").predict(np.zeros((1, 16, 16)))


def test_bf16_map_runs_the_head_in_bfloat16():
    torch.manual_seed(0)
    module = SubPixelCNN(n_layers=2, n_channels=8, upscaling=3).eval()
    x = torch.rand(2, 1, 6, 5)
    with torch.inference_mode(), autocast("cpu", "bf16-map"):
        fp32_head = module.subpixel_channels(x)
        bf16_head = module.subpixel_channels(x, fp32_head=False)
    assert fp32_head.dtype == bf16_head.dtype == torch.float32
    # the bf16 head's values are bf16 numbers; the fp32 head's are not
    assert torch.equal(bf16_head, bf16_head.bfloat16().float())
    assert not torch.equal(fp32_head, fp32_head.bfloat16().float())
    assert torch.allclose(bf16_head, fp32_head, rtol=0.05, atol=0.02)


@pytest.mark.parametrize("precision", ["bf16-map", "int8"])
def test_fast_settings_find_the_same_emitters(frames, precision):
    X, truth = frames
    reference = DistanceTransformLocalizer.pretrained(device="cpu")
    fast = DistanceTransformLocalizer.pretrained(device="cpu")
    fast.set_params(precision=precision)
    expected = reference.predict(X)
    table = fast.predict(X)
    assert fast.regressor_.precision_ == precision
    ji = localization_metrics(truth, table, tolerance_nm=250.0)["jaccard"]
    ji_ref = localization_metrics(truth, expected, tolerance_nm=250.0)["jaccard"]
    assert ji_ref > 0.8
    assert abs(ji - ji_ref) < 0.03
    # the same detections, moved by far less than a camera pixel
    assert abs(len(table) - len(expected)) <= 0.03 * len(expected)
    d = np.hypot(
        table["x_nm"].to_numpy()[:, None] - expected["x_nm"].to_numpy(),
        table["y_nm"].to_numpy()[:, None] - expected["y_nm"].to_numpy(),
    )
    same_frame = table["frame"].to_numpy()[:, None] == expected["frame"].to_numpy()
    nearest = np.where(same_frame, d, np.inf).min(1)
    assert np.median(nearest) < 5.0
    assert np.mean(nearest < 30.0) > 0.95


def test_int8_does_not_depend_on_the_frames_predicted_first(frames):
    X, _ = frames
    first = DistanceTransformLocalizer.pretrained(device="cpu")
    first.set_params(precision="int8")
    other = PAFPSimulator(
        frame_shape=(32, 32), density_per_um2=6.0, random_state=9
    ).simulate(3)[0]
    first.predict(other)  # calibrated now, on fixed simulated frames
    second = DistanceTransformLocalizer.pretrained(device="cpu")
    second.set_params(precision="int8")
    np.testing.assert_array_equal(
        first.predict(X).to_numpy(), second.predict(X).to_numpy()
    )


def test_int8_keeps_the_quantized_engine_setting():
    before = torch.backends.quantized.engine
    features = SubPixelCNN(n_layers=2, n_channels=8, upscaling=3).features
    quantize_features(features, torch.rand(4, 1, 8, 8))
    assert torch.backends.quantized.engine == before


def test_int8_refuses_a_3d_network_in_one_line():
    loc = DistanceTransformLocalizer.pretrained("astig_3d", device="cpu")
    loc.set_params(precision="int8")
    with pytest.raises(ValueError, match="needs a folded 2D network"):
        loc.predict(np.full((1, 16, 16), 100.0))
