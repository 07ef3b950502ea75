"""Smoke test of benchmarks/bench_models.py (the model evaluation matrix)."""

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

pytest.importorskip("matplotlib")
pytest.importorskip("tabulate")  # DataFrame.to_markdown


def _load(name):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_grid_has_48_distinct_cells():
    bench = _load("bench_models")
    cells = bench.cells()
    assert len(cells) == 3 * 2 * 2 * 2 * 2 == len({name for name, _, _ in cells})
    dense_thick = [p for n, _, p in cells if n.startswith("dense/thick")]
    assert all(p["density_per_um2"] == (3.0, 6.0) for p in dense_thick)
    assert all(p["z_range_nm"] == (-750.0, 750.0) for p in dense_thick)


def test_quick_matrix_runs_on_a_candidate(tmp_path):
    from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator

    X, y = PAFPSimulator(frame_shape=(16, 16), random_state=0).simulate(8)
    loc = DistanceTransformLocalizer(
        n_layers=1,
        n_channels=4,
        max_epochs=1,
        validation_fraction=0,
        threshold=1000.0,
        device="cpu",
        random_state=0,
    ).fit(X, y)
    path = loc.save(tmp_path / "tiny.pt")
    bench = _load("bench_models")
    table = bench.main(
        ["--quick", "--no-shipped", "--model", str(path), "--out", str(tmp_path)]
    )
    assert set(table["model"]) == {"tiny"}
    scored = table[table["jaccard"].notna()]
    assert len(scored) == 48 + int(bench._common.DATA_BT_HD.exists())
    assert scored["jaccard"].between(0, 1).all()
    assert (table["cell"].str.startswith("background")).sum() == 2
    for ext in ("csv", "md", "png"):
        assert (tmp_path / f"models.{ext}").is_file()
    assert len(pd.read_csv(tmp_path / "models.csv")) == len(table)
