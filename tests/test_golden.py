"""Golden tables: the localizations of a fixed stack, bit for bit, per method.

``tests/data/golden_stack.tif`` holds 8 simulated EMCCD frames of 32 x 32
pixels (100 nm, uint16; PAFPSimulator, bt_hd_2013 camera, seed 17), stored so
that a change of the simulator does not change the input. ``golden.json``
holds, for every method, the SHA-256 of the exact bytes of every column of the
table (and of the CSV files the command line writes). Refactorings must keep
them: a different float in the last bit fails the test.

The hashes depend on the float rounding of the machine: the torch version, the
CPU's vector unit (``torch.backends.cpu.get_cpu_capability()``), whether
``precision="auto"`` resolves to bfloat16, and one torch thread (conftest).
On another kind of machine the test is skipped and says why; regenerate with
``SKLEARN_SMLM_REGEN_GOLDEN=1 pytest tests/test_golden.py`` (only when a change
of the numbers is intended, and say so in the commit).
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from sklearn_smlm import DistanceTransformLocalizer
from sklearn_smlm.cli import main
from sklearn_smlm.fitting import GaussianFitLocalizer
from sklearn_smlm.nn import resolve_precision

DATA = Path(__file__).parent / "data"
STACK = DATA / "golden_stack.tif"
REFERENCE = DATA / "golden.json"
REGENERATE = os.environ.get("SKLEARN_SMLM_REGEN_GOLDEN") == "1"
# the camera of the simulated stack (the preset's; QE 0.9 to exercise it)
CAMERA = dict(baseline_adu=100.0, e_per_adu=50.0, em_gain=100.0, quantum_efficiency=0.9)
CAMERA_ARGS = [
    "--baseline-adu", "100", "--e-per-adu", "50", "--em-gain", "100",
    "--quantum-efficiency", "0.9",
]  # fmt: skip


def _machine():
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "auto_precision": str(resolve_precision("auto", torch.device("cpu"))),
        "torch_threads": torch.get_num_threads(),
    }


def _column_bytes(values):
    if values.dtype == object:  # strings: their text, not the pointers
        return "\0".join(map(str, values)).encode()
    return np.ascontiguousarray(values).tobytes()


def _table_digest(table):
    return {
        "n_rows": len(table),
        "columns": {
            name: [
                str(table[name].dtype),
                hashlib.sha256(_column_bytes(table[name].to_numpy())).hexdigest(),
            ]
            for name in table.columns
        },
    }


def _file_digest(path):
    data = Path(path).read_bytes()
    return {"n_lines": data.count(b"\n"), "sha256": hashlib.sha256(data).hexdigest()}


@pytest.fixture(scope="module")
def frames():
    return tifffile.imread(STACK)


@pytest.fixture(scope="module")
def reference():
    if REGENERATE:
        return {"machine": _machine(), "results": {}}
    ref = json.loads(REFERENCE.read_text())
    if ref["machine"] != _machine():
        pytest.skip(
            f"golden tables were recorded on {ref['machine']}, this machine is "
            f"{_machine()}; regenerate with SKLEARN_SMLM_REGEN_GOLDEN=1"
        )
    return ref


@pytest.fixture(scope="module", autouse=True)
def _write_reference(reference):
    yield
    if REGENERATE:
        REFERENCE.write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n")


def _check(reference, key, digest):
    if REGENERATE:
        reference["results"][key] = digest
        return
    assert digest == reference["results"][key], key


def _cnn(**params):
    return DistanceTransformLocalizer.pretrained(device="cpu").set_params(**params)


def test_golden_stack_is_the_committed_one(frames):
    assert frames.shape == (8, 32, 32) and frames.dtype == np.uint16


def test_cnn_predict(frames, reference):
    table = _cnn().predict(frames)
    assert len(table) > 20  # a meaningful comparison: many detections
    _check(reference, "cnn_predict", _table_digest(table))


def test_cnn_iter_predict(frames, reference):
    tables = list(_cnn().iter_predict(frames, chunk_size=3))
    assert len(tables) == 3
    _check(reference, "cnn_iter_predict", [_table_digest(t) for t in tables])


def test_cnn_predict_maps(frames, reference):
    maps = _cnn().predict_maps(frames[:2])
    digest = hashlib.sha256(np.ascontiguousarray(maps).tobytes()).hexdigest()
    _check(reference, "cnn_predict_maps", [str(maps.dtype), list(maps.shape), digest])


def test_hybrid_predict(frames, reference):
    table = _cnn(refiner=GaussianFitLocalizer(**CAMERA)).predict(frames)
    assert "photons" in table.columns
    _check(reference, "hybrid_predict", _table_digest(table))


def test_hybrid_refine_every_detection(frames, reference):
    # the golden stack is dense: the hybrid keeps every detection's position
    # there (crowded), so the fits (joint, split, frame edge) are pinned here
    # with the density rule off
    from sklearn_smlm.fitting import refine_localizations

    detections = _cnn().predict(frames)[["frame", "x_nm", "y_nm"]]
    table = refine_localizations(
        frames, detections, max_local_density_per_um2=None, **CAMERA
    )
    assert table["fit_ok"].mean() > 0.3  # 156 of 401 rows fitted
    _check(reference, "hybrid_refine_every_detection", _table_digest(table))


def test_gaussian_predict(frames, reference):
    table = GaussianFitLocalizer(**CAMERA).fit().predict(frames)
    assert len(table) > 10
    _check(reference, "gaussian_predict", _table_digest(table))


CLI_CASES = {
    "cli_cnn_thunderstorm": ["--chunk-size", "3"],
    "cli_cnn_camera_native": ["--method", "cnn", "--format", "native", *CAMERA_ARGS],
    "cli_hybrid_native": ["--method", "hybrid", "--format", "native", *CAMERA_ARGS],
    "cli_gaussian_challenge": [
        "--method",
        "gaussian",
        "--format",
        "challenge",
        "--chunk-size",
        "5",
        *CAMERA_ARGS,
    ],  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_localize_file(case, reference, tmp_path):
    out = tmp_path / "locs.csv"
    argv = ["localize", str(STACK), "-o", str(out), "-q", "--device", "cpu"]
    assert main(argv + CLI_CASES[case]) == 0
    _check(reference, case, _file_digest(out))
