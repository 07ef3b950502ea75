"""Micro-benchmark of the map stages: target encoding, peak finding, normalization.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_peaks.py``. Prints a table and
writes ``benchmarks/results/bench_peaks.csv`` and ``.md``; a second table
compares the sub-pixel refinements on synthetic peaks.
"""

import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sklearn_smlm.encoding import distance_transform_maps
from sklearn_smlm.peaks import find_peaks, maps_to_localizations
from sklearn_smlm.preprocessing import FrameNormalizer

RESULTS = Path(__file__).parent / "results"
PEAK = np.expm1(7.0)


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def brute_force(positions, shape, r=7, px=100.0):
    ii, jj = np.mgrid[0 : shape[0] * r, 0 : shape[1] * r].astype(np.float64)
    d = np.full(ii.shape, np.inf)
    for x, y in positions:
        d = np.minimum(d, np.hypot(jj - (x * r / px - 0.5), ii - (y * r / px - 0.5)))
    return np.where(d < 35, np.expm1(7 * (1 - d / 35)), 0.0)


def timings(rng):
    rows = []
    for n_emitters in (20, 200, 1000):
        pos = [rng.uniform(0, 6400, (n_emitters, 2)) for _ in range(32)]
        best, median = best_of(lambda p=pos: distance_transform_maps(p, (64, 64)), 3)
        rows.append(
            ("distance_transform_maps, 64x64 -> 448x448", n_emitters, 1e3 * best / 32,
             1e3 * median / 32, "per frame")
        )  # fmt: skip
    pos = [rng.uniform(0, 6400, (200, 2)) for _ in range(32)]
    maps = distance_transform_maps(pos, (64, 64))
    for name, fn in [
        ("find_peaks, 32 maps 448x448", lambda: find_peaks(maps, 300.0)),
        ("find_peaks refine=None", lambda: find_peaks(maps, 300.0, refine=None)),
        ("maps_to_localizations, 32 maps", lambda: maps_to_localizations(maps, 300.0)),
    ]:
        best, median = best_of(fn)
        rows.append((name, 200, 1e3 * best, 1e3 * median, "per batch of 32"))
    frames = rng.poisson(50, (1000, 64, 64)).astype(np.float32)
    for method in ("robust", "noise"):
        norm = FrameNormalizer(method=method)
        best, median = best_of(lambda n=norm: n.transform(frames), 3)
        rows.append(
            (f"FrameNormalizer({method}), 64x64", 0, best, median, "per frame")
        )  # ms per frame = s per 1000 frames
    return pd.DataFrame(
        rows, columns=["stage", "emitters_per_frame", "best_ms", "median_ms", "unit"]
    )


def encoder_accuracy(rng):
    rows = []
    for n_emitters in (20, 200, 1000):
        diffs = []
        for _ in range(3):
            p = rng.uniform(-500, 6900, (n_emitters, 2))
            fast = distance_transform_maps([p], (64, 64), dtype=np.float64)[0]
            diffs.append(np.abs(fast - brute_force(p, (64, 64))))
        d = np.stack(diffs)
        rows.append((n_emitters, d.max() / PEAK, d.mean() / PEAK))
    return pd.DataFrame(
        rows, columns=["emitters_per_frame", "max_diff_of_peak", "mean_diff_of_peak"]
    )


def refinement_accuracy(rng):
    """Max / mean error (output px) of each refinement on 400 synthetic peaks."""
    ii, jj = np.mgrid[0:9, 0:9].astype(np.float64)
    shapes = {
        "distance transform": lambda r, c: np.expm1(
            7 * (1 - np.hypot(ii - r, jj - c) / 35)
        ),
        "Gaussian sigma=1.5": lambda r, c: (
            1000 * np.exp(-((ii - r) ** 2 + (jj - c) ** 2) / (2 * 1.5**2))
        ),
    }
    rows = []
    for shape, make in shapes.items():
        for noise in (0.0, 0.01):
            offsets = rng.uniform(-0.5, 0.5, (400, 2))
            maps = np.stack([make(4 + dr, 4 + dc) for dr, dc in offsets])
            maps *= 1 + noise * rng.standard_normal(maps.shape)
            for refine in ("auto", "cone", "quadratic"):
                frame, row, col, _ = find_peaks(maps, 100.0, refine=refine)
                keep = np.bincount(frame, minlength=400) == 1
                sel = keep[frame]
                err = np.hypot(
                    row[sel] - 4 - offsets[keep, 0], col[sel] - 4 - offsets[keep, 1]
                )
                rows.append((shape, noise, refine, err.max(), err.mean()))
    return pd.DataFrame(
        rows, columns=["peak", "relative_noise", "refine", "max_err_px", "mean_err_px"]
    )


def main():
    rng = np.random.default_rng(0)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tables = {
        "timings": timings(rng),
        "encoder_vs_brute_force": encoder_accuracy(rng),
        "refinement": refinement_accuracy(rng),
    }
    lines = [f"# bench_peaks ({platform.processor() or platform.machine()}, "
             f"OMP_NUM_THREADS as set)\n"]  # fmt: skip
    for name, table in tables.items():
        print(f"\n== {name}\n{table.to_string(index=False, float_format='%.4g')}")
        table.to_csv(RESULTS / f"bench_peaks_{name}.csv", index=False)
        lines += [f"## {name}\n", table.to_markdown(index=False, floatfmt=".4g"), ""]
    (RESULTS / "bench_peaks.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
