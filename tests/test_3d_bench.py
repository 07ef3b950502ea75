"""Smoke test of benchmarks/bench_3d.py on tiny frames (numbers meaningless)."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

pytest.importorskip("tabulate")  # DataFrame.to_markdown


def test_bench_3d_smoke(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_3d", BENCH / "bench_3d.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        text = module.main(["--smoke", "--frames", "4", "--out", str(tmp_path)])
    finally:
        sys.path.remove(str(BENCH))
    assert (tmp_path / "3d.md").read_text() == text
    assert "z_rmse_over_crlb" in text and "bead calibration" in text
    assert "Picasso 3D" in text and "CNN 3D" in text  # the rows not run say so
