"""Speed (and accuracy) of GaussianFitLocalizer on sparse and dense frames.

Frames: emitters uniform at random, photons log-normal (median 1500), sigma
1.2 px, background 20 photons/px, Poisson noise, baseline 100 ADU, 100 nm
pixels, drawn from the exact pixel-integrated Gaussian model (our own spot
maker; the library simulator had not landed when this was written).
Sparse: 0.1 emitters/um^2 (about 4 per 64x64 frame); dense: 1.5 emitters/um^2
(about 60 per 64x64 frame).

The whole path is timed, array in to table out (filtering, detection, box
extraction, fitting, CRLB, DataFrame), single process, best of 3 runs.

Picasso (``picassosr``) is timed side by side when ``--picasso-python`` points
at a Python that has it (install it in its own venv: it pins its own numpy);
it runs ``localize.identify`` (``threaded=False``) + ``localize.get_spots`` +
``gausslq.fit_spots`` + ``gausslq.locs_from_fits`` with ``NUMBA_NUM_THREADS=1``
on the same frames (saved as uint16 to a temporary .npy file), minimum net
gradient ``--picasso-min-ng`` (default 1000, which gives about as many
localizations as ours on these frames), boxes of 5 and 7 pixels.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_fitting.py [--picasso-python PATH]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sklearn_smlm.fitting import GaussianFitLocalizer, gaussian_model
from sklearn_smlm.metrics import localization_metrics

RESULTS = Path(__file__).parent / "results"
PX = 100.0

PICASSO_WORKER = r"""
import json, sys, time
import numpy as np
from picasso import localize, gausslq
frames = np.load(sys.argv[1])
box, min_ng = int(sys.argv[2]), float(sys.argv[3])
camera = {"Baseline": 100.0, "Sensitivity": 1.0, "Gain": 1.0, "Qe": 1.0}
def run(movie):
    ids = localize.identify(movie, min_ng, box, threaded=False, return_info=False)
    spots = localize.get_spots(movie, ids, box, camera)
    theta = gausslq.fit_spots(spots)
    locs = gausslq.locs_from_fits(ids, theta, box, 1.0)
    return locs
run(frames[:2])  # numba compilation
best = np.inf
for _ in range(3):
    t = time.perf_counter()
    locs = run(frames)
    best = min(best, time.perf_counter() - t)
x, y, f = (np.asarray(locs[c], dtype=float) for c in ("x", "y", "frame"))
ok = np.isfinite(x) & np.isfinite(y)
out = {"seconds": best, "n": int(ok.sum()), "frame": f[ok].astype(int).tolist(),
       "x_nm": ((x[ok] + 0.5) * 100.0).tolist(),
       "y_nm": ((y[ok] + 0.5) * 100.0).tolist()}
print(json.dumps(out))
"""


def make_frames(n_frames, size, density_per_um2, seed=0):
    rng = np.random.default_rng(seed)
    area_um2 = (size * PX / 1000.0) ** 2
    mean = np.full((n_frames, size, size), 20.0)
    rows = []
    pad = 6
    for f in range(n_frames):
        k = rng.poisson(density_per_um2 * area_um2)
        xs, ys = rng.uniform(0, size, k) - 0.5, rng.uniform(0, size, k) - 0.5
        photons = rng.lognormal(np.log(1500.0), 0.4, k)
        c0 = np.floor(xs).astype(int) - pad
        r0 = np.floor(ys).astype(int) - pad
        b = 2 * pad + 1
        p = np.column_stack([xs - c0, ys - r0, photons, np.zeros(k), np.full(k, 1.2)])
        spots = gaussian_model(p, b)
        canvas = np.zeros((size + 2 * b, size + 2 * b))
        for i in range(k):
            canvas[r0[i] + b : r0[i] + 2 * b, c0[i] + b : c0[i] + 2 * b] += spots[i]
        mean[f] += canvas[b:-b, b:-b]
        rows += [
            (f, (x + 0.5) * PX, (y + 0.5) * PX) for x, y in zip(xs, ys, strict=True)
        ]
    truth = pd.DataFrame(rows, columns=["frame", "x_nm", "y_nm"])
    return 100.0 + rng.poisson(mean).astype(np.float32), truth


def time_ours(estimator, frames):
    estimator.fit()
    estimator.predict(frames[:2])  # warm caches
    best, table = np.inf, None
    for _ in range(3):
        t = time.perf_counter()
        table = estimator.predict(frames)
        best = min(best, time.perf_counter() - t)
    return best, table


def time_picasso(python, frames, box, min_ng):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "frames.npy")
        np.save(path, frames.astype(np.uint16))
        worker = os.path.join(tmp, "worker.py")
        Path(worker).write_text(PICASSO_WORKER)
        env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
        out = subprocess.run(
            [python, worker, path, str(box), str(min_ng)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    table = pd.DataFrame({k: res[k] for k in ("frame", "x_nm", "y_nm")})
    table["frame"] = table["frame"].astype(np.int64)
    return res["seconds"], table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--picasso-python", default=None)
    parser.add_argument("--picasso-min-ng", type=float, default=1000.0)
    args = parser.parse_args()

    conditions = [
        ("sparse", 64, 500, 0.1),
        ("dense", 64, 200, 1.5),
        ("sparse", 256, 30, 0.1),
        ("dense", 256, 10, 1.5),
    ]
    methods = {
        "ours mle (fit sigma)": GaussianFitLocalizer(),
        "ours lsq (fit sigma)": GaussianFitLocalizer(fit_method="lsq"),
        "ours mle (fixed sigma)": GaussianFitLocalizer(psf_sigma_nm=120.0),
    }
    rows = []
    for density, size, n_frames, rho in conditions:
        frames, truth = make_frames(n_frames, size, rho, seed=size + n_frames)
        runs = {name: time_ours(est, frames) for name, est in methods.items()}
        if args.picasso_python:
            for box in (5, 7):
                try:
                    runs[f"picasso gausslq box {box}"] = time_picasso(
                        args.picasso_python, frames, box, args.picasso_min_ng
                    )
                except (subprocess.CalledProcessError, OSError, ValueError) as exc:
                    print(f"picasso failed: {exc}", file=sys.stderr)
        for name, (seconds, table) in runs.items():
            m = localization_metrics(truth, table, tolerance_nm=250.0)
            rows.append(
                {
                    "frames": f"{density} {size}x{size}",
                    "method": name,
                    "n_frames": n_frames,
                    "true_per_frame": round(len(truth) / n_frames, 1),
                    "locs_per_frame": round(len(table) / n_frames, 1),
                    "seconds": round(seconds, 4),
                    "frames_per_s": round(n_frames / seconds, 1),
                    "locs_per_s": round(len(table) / seconds),
                    "jaccard_250nm": round(m["jaccard"], 3),
                    "rmse_nm": round(m["rmse_nm"], 1),
                }
            )
            print(rows[-1], flush=True)
    result = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    result.to_csv(RESULTS / "fitting.csv", index=False)
    load = os.getloadavg()
    header = (
        "# GaussianFitLocalizer speed\n\n"
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/bench_fitting.py"
        f"{' --picasso-python ' + args.picasso_python if args.picasso_python else ''}`"
        f"\n\nPicasso minimum net gradient: {args.picasso_min_ng:g}. "
        f"Machine: {os.cpu_count()} CPU cores; load "
        f"average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
        "(1 / 5 / 15 min). Single process, best of 3 runs, whole path "
        "(array in, table out). Jaccard and RMSE: Hungarian matching at 250 nm.\n\n"
    )
    (RESULTS / "fitting.md").write_text(header + result.to_markdown(index=False) + "\n")
    print(result.to_string(index=False))


if __name__ == "__main__":
    main()
