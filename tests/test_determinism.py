"""Same ``random_state``, same results: simulation, CPU training and prediction.

What is guaranteed, and where
-----------------------------
On the CPU, with the same library, numpy and torch versions, the same number
of torch threads and the same machine type, a fixed ``random_state`` gives
bit-identical simulated frames and ground truth, bit-identical network
weights after ``fit`` and bit-identical localization tables, in one process
and across processes (checked below). Changing the number of torch threads,
the CPU type (another vector instruction set: AVX2 vs AVX-512 kernels) or
``precision`` (``"auto"`` resolves to bfloat16 on CPUs with AVX-512-BF16 or
AMX and to float32 elsewhere) may change the float rounding of the
convolutions, hence weights and scores in their last bits and, rarely, a peak
at a tie.

On a GPU (``tests/test_cuda.py`` checks these where CUDA is present; it
passed on an NVIDIA H200 with torch 2.11; this module pins the CPU because
it compares bit patterns):

- cuDNN picks convolution algorithms per shape, some of which (the backward
  pass for the weights in particular) use atomic additions whose order
  varies, so two trainings with the same seed differ slightly. For
  bit-reproducible GPU training call ``torch.use_deterministic_algorithms(True)``,
  set ``torch.backends.cudnn.benchmark = False`` and the environment variable
  ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` before training (slower); prediction
  (forward only) is usually deterministic for a fixed batch size.
- ``precision="auto"`` trains in bfloat16 autocast on GPUs that support it
  and cuDNN may use TF32 for float32 convolutions on Ampere and newer
  (``torch.backends.cudnn.allow_tf32``), so GPU weights and maps differ from
  the CPU ones by more than rounding (a relative 1e-3 in the maps is
  typical); localizations agree to far below a nanometre except at ties.
- A model trained on a GPU predicts on the CPU (the model file stores
  tensors, loaded to the CPU when CUDA is absent) with the CPU's rounding.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator

SEED = 1234
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator

    def run(seed):
        sim = PAFPSimulator(
            frame_shape=(16, 16), density_per_um2=1.5, random_state=seed
        )
        X, y = sim.simulate(12)
        loc = DistanceTransformLocalizer(
            n_layers=2, n_channels=8, max_epochs=2, batch_size=4, upscaling=3,
            d_max=15.0, dropout=0.1, validation_fraction=0.25, threshold=20.0,
            random_state=seed, device="cpu",
        ).fit(X, y)
        params = {k: v.detach().cpu().numpy()
                  for k, v in loc.net_.module_.state_dict().items()}
        return X, y, params, loc.predict(X)

    if __name__ == "__main__":
        X, y, params, table = run(int(sys.argv[1]))
        np.savez(sys.argv[2], X=X, **{"param:" + k: v for k, v in params.items()})
        np.savez(sys.argv[3], **{c: table[c].to_numpy() for c in table.columns})
        json.dump([p.tolist() for p in y], open(sys.argv[4], "w"))
    """
)


def _namespace():
    namespace = {"__name__": "determinism_script"}
    exec(SCRIPT, namespace)  # the same code runs in this process and a child
    return namespace


@pytest.fixture(scope="module")
def runs():
    run = _namespace()["run"]
    return run(SEED), run(SEED)


def test_simulation_is_reproducible(runs):
    (X1, y1, _, _), (X2, y2, _, _) = runs
    np.testing.assert_array_equal(X1, X2)
    assert len(y1) == len(y2) == 12
    for a, b in zip(y1, y2, strict=True):
        np.testing.assert_array_equal(a, b)
    # and another seed gives other frames
    X3, _ = PAFPSimulator(
        frame_shape=(16, 16), density_per_um2=1.5, random_state=SEED + 1
    ).simulate(12)
    assert not np.array_equal(X1, X3)


def test_training_is_bit_reproducible(runs):
    (_, _, p1, _), (_, _, p2, _) = runs
    assert p1.keys() == p2.keys()
    for name in p1:
        # bit-equal, not just close
        assert p1[name].tobytes() == p2[name].tobytes(), name


def test_prediction_is_reproducible(runs):
    (X, _, _, t1), (_, _, _, t2) = runs
    assert len(t1) > 50  # a meaningful comparison: many detections
    pd.testing.assert_frame_equal(t1, t2, check_exact=True)


def test_another_seed_trains_another_network():
    X, y = PAFPSimulator(frame_shape=(16, 16), random_state=0).simulate(8)
    kwargs = dict(
        n_layers=2, n_channels=4, max_epochs=1, validation_fraction=0, batch_size=4
    )
    kwargs["device"] = "cpu"
    a = DistanceTransformLocalizer(random_state=1, **kwargs).fit(X, y)
    b = DistanceTransformLocalizer(random_state=2, **kwargs).fit(X, y)
    wa = a.net_.module_.state_dict()["features.0.weight"].numpy()
    wb = b.net_.module_.state_dict()["features.0.weight"].numpy()
    assert not np.array_equal(wa, wb)


def test_same_results_in_a_fresh_process(runs, tmp_path):
    X, y, params, table = runs[0]
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    arrays, tables, truth = tmp_path / "a.npz", tmp_path / "t.npz", tmp_path / "y.json"
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    import torch

    # same number of torch threads as this process: the rounding may depend on it
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    subprocess.run(
        [sys.executable, str(script), str(SEED), str(arrays), str(tables), str(truth)],
        check=True,
        env=env,
        timeout=300,
    )
    saved = np.load(arrays)
    np.testing.assert_array_equal(saved["X"], X)
    for name, value in params.items():
        assert saved["param:" + name].tobytes() == value.tobytes(), name
    # binary columns: no text parsing between the two tables
    child = pd.DataFrame(dict(np.load(tables)))
    pd.testing.assert_frame_equal(child, table, check_exact=True)
    assert [
        np.asarray(p).reshape(-1, 2).tolist() for p in json.loads(truth.read_text())
    ] == [p.reshape(-1, 2).tolist() for p in y]
