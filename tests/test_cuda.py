"""The GPU path: training and prediction on CUDA, and models moving to the CPU.

Skipped where CUDA is absent (CI has no GPU); run on a GPU machine with
``python -m pytest tests/test_cuda.py``. The statements of
``tests/test_determinism.py`` about GPUs are what these tests check.
"""

import numpy as np
import pytest
import torch

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator, load_model
from sklearn_smlm.metrics import localization_metrics

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"
)

# As tests/test_localizer.py's "trained" fixture, which learns on the CPU.
TINY = dict(
    n_layers=4,
    n_channels=16,
    upscaling=3,
    d_max=15.0,
    max_epochs=12,
    lr=3e-3,
    validation_fraction=0.1,
    threshold=150.0,
    random_state=0,
)
SPARSE = dict(frame_shape=(16, 16), density_per_um2=0.8, photons=3000.0)


@pytest.fixture(scope="module")
def frames():
    return PAFPSimulator(**SPARSE, random_state=1).simulate(160)


@pytest.fixture(scope="module")
def on_gpu(frames):
    X, y = frames
    return DistanceTransformLocalizer(device="auto", **TINY).fit(X, y)


def test_auto_trains_on_the_gpu(on_gpu, frames):
    assert on_gpu.regressor_.device_.startswith("cuda")
    assert next(on_gpu.net_.module_.parameters()).is_cuda
    history = on_gpu.net_.history
    assert history[-1, "train_loss"] < history[0, "train_loss"]
    X, y = frames
    table = on_gpu.predict(X)
    assert localization_metrics(y, table, tolerance_nm=250.0)["jaccard"] > 0.5


def test_gpu_model_predicts_the_same_on_the_cpu(on_gpu, frames, tmp_path):
    X, _ = frames
    gpu = on_gpu.predict(X)
    cpu_model = load_model(on_gpu.save(tmp_path / "gpu.pt"), device="cpu")
    assert cpu_model.regressor_.device_ == "cpu"
    cpu = cpu_model.predict(X)
    # other rounding (bf16 kernels of another kind): the same emitters, a
    # small fraction of a pixel apart; a peak at a tie may differ
    m = localization_metrics(gpu, cpu, tolerance_nm=20.0)
    assert len(gpu) > 50
    assert m["jaccard"] > 0.95
    assert m["rmse_nm"] < 5.0


def test_gpu_prediction_does_not_depend_on_the_batch(on_gpu, frames):
    X = frames[0][:8]
    whole = on_gpu.predict_maps(X, batch_size=8)
    one_by_one = on_gpu.predict_maps(X, batch_size=1)
    assert np.abs(whole - one_by_one).max() < 1e-2 * np.abs(whole).max()


def test_same_seed_trains_nearly_the_same_network_on_the_gpu(frames):
    X, y = frames
    kwargs = dict(TINY, max_epochs=2, device="cuda")
    a = DistanceTransformLocalizer(**kwargs).fit(X, y)
    b = DistanceTransformLocalizer(**kwargs).fit(X, y)
    for (name, wa), wb in zip(
        a.net_.module_.state_dict().items(),
        b.net_.module_.state_dict().values(),
        strict=True,
    ):
        np.testing.assert_allclose(
            wa.cpu().numpy(), wb.cpu().numpy(), rtol=1e-2, atol=1e-4, err_msg=name
        )
