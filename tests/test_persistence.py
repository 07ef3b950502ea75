"""Model files: loading builds the network only; training after a load works."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import sklearn_smlm
from sklearn_smlm import (
    DistanceTransformLocalizer,
    PAFPSimulator,
    _persistence,
    load_model,
    localizer,
)

TINY = dict(n_layers=2, n_channels=8, batch_size=8, random_state=0)


@pytest.fixture(scope="module")
def data():
    sim = PAFPSimulator(frame_shape=(16, 16), density_per_um2=1.0, random_state=0)
    return sim.simulate(12)


@pytest.fixture(scope="module")
def model_path(data, tmp_path_factory):
    X, y = data
    loc = DistanceTransformLocalizer(
        max_epochs=1, validation_fraction=0.25, upscaling=3, d_max=15.0, **TINY
    ).fit(X, y)
    return loc.save(tmp_path_factory.mktemp("model") / "tiny.pt")


def _run(code):
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_public_import_paths_are_one_object():
    assert sklearn_smlm.load_model is localizer.load_model is _persistence.load_model
    assert sklearn_smlm.ModelFileError is localizer.ModelFileError
    assert localizer.pretrained_names is _persistence.pretrained_names
    assert localizer.MODEL_FORMAT_VERSION == _persistence.MODEL_FORMAT_VERSION == 2


def test_package_import_does_not_import_torch():
    assert _run("import sys, sklearn_smlm; print('torch' in sys.modules)") == ["False"]


def test_pretrained_predict_imports_neither_skorch_nor_dynamo_nor_numba():
    # skorch's net creates torch's Adam, which imports torch._dynamo (seconds);
    # numba (the classical fitter's kernels) would add a second to every start
    code = (
        "import sys, numpy as np\n"
        "from sklearn_smlm import DistanceTransformLocalizer\n"
        "loc = DistanceTransformLocalizer.pretrained(device='cpu')\n"
        "x = np.random.default_rng(0).poisson(100, (2, 32, 32)).astype('uint16')\n"
        "x[:, 9:12, 9:12] += 3000  # a spot: the conditions and frame tests run\n"
        "print(len(loc.predict(x)) > 0)\n"
        "print('torch._dynamo' in sys.modules, 'skorch' in sys.modules)\n"
        "print('numba' in sys.modules)\n"
    )
    assert _run(code) == ["True", "False", "False", "False"]


def test_loaded_network_matches_one_built_through_skorch(data):
    # the network the loader builds by hand is the one skorch's net would build
    X, _ = data
    loc = DistanceTransformLocalizer.pretrained("default", device="cpu")
    reg = loc.regressor_
    assert "_net" not in reg.__dict__  # nothing built yet
    net = reg._build_net()
    net.initialize()
    net.module_.load_state_dict(reg._state())
    frames = loc.normalizer_.transform(X[:4])
    expected = net.predict(torch.from_numpy(frames)[:, None])[:, 0] * reg.peak_value
    np.testing.assert_array_equal(reg.transform(frames), expected)
    assert next(reg.module_.parameters()).is_contiguous() is True
    assert reg.module_.features[0].weight.is_contiguous(
        memory_format=torch.channels_last
    )


def test_load_leaves_the_global_rng_alone(model_path):
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    load_model(model_path, device="cpu")
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_partial_fit_after_load_trains_the_loaded_network(model_path, data):
    X, y = data
    loc = load_model(model_path, device="cpu")
    before = {k: v.clone() for k, v in loc.regressor_.module_.state_dict().items()}
    maps_before = loc.predict_maps(X)
    loc.set_params(max_epochs=2)
    loc.partial_fit(X, y)
    reg = loc.regressor_
    assert reg.net_.module_ is reg.module_  # one network, trained in place
    assert len(loc.net_.history) == 2
    after = reg.module_.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # the trained weights are those predict uses, and those saved
    assert np.abs(loc.predict_maps(X) - maps_before).max() > 1e-3
    again = load_model(loc.save(model_path.parent / "more.pt"), device="cpu")
    np.testing.assert_array_equal(again.predict_maps(X), loc.predict_maps(X))


def test_saving_a_loaded_model_keeps_its_file_contents(model_path):
    import json

    loaded = load_model(model_path, device="cpu")
    resaved = loaded.save(model_path.parent / "resaved.pt")
    a = torch.load(model_path, weights_only=True)
    b = torch.load(resaved, weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key])
    meta_a, meta_b = json.loads(a["metadata"]), json.loads(b["metadata"])
    # a loaded model has no skorch history of its own (as before the lazy net)
    assert meta_b.pop("history") == []
    meta_a.pop("history")
    meta_a["params"].pop("device"), meta_b["params"].pop("device")
    assert meta_a == meta_b


def test_weights_of_another_network_are_a_model_file_error(model_path, tmp_path):
    def wider(metadata):
        metadata["params"]["n_channels"] = 16

    _persistence.rewrite_model_metadata(model_path, wider, out=tmp_path / "wide.pt")
    with pytest.raises(_persistence.ModelFileError, match="do not fit"):
        load_model(tmp_path / "wide.pt")
