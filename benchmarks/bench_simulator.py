"""Speed of PAFPSimulator and its calibration against data/bt_hd_recreated.

Run from the repository root:

    python benchmarks/bench_simulator.py [--quick]

Prints two tables and writes benchmarks/results/simulator.csv and .md.
OMP_NUM_THREADS is left as the caller set it (recorded in the output).
"""

import argparse
import os
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from scipy.special import ndtr

from sklearn_smlm.simulation import PAFPSimulator

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = Path("/work/shared/data/bt_hd_recreated")
if not DATA.exists():
    DATA = ROOT / "data" / "bt_hd_recreated"

SPEED_CASES = [
    ("bt_hd_2013 64x64 uniform (225/frame)", "bt_hd_2013", {}),
    ("bt_hd_2013 64x64 exact EMCCD sampling", "bt_hd_2013", {"fast_noise": False}),
    ("bt_hd_2013 64x64 filaments", "bt_hd_2013", {"structure": "filaments"}),
    ("bt_hd_2013 64x64 augment=True", "bt_hd_2013", {"augment": True}),
    (
        "bt_hd_2013 64x64 ranges + gradients",
        "bt_hd_2013",
        {
            "density_per_um2": (1.0, 8.0),
            "photons": (500.0, 5000.0),
            "density_gradient": (0.5, 1.5),
            "background_gradient": (0.5, 1.5),
        },
    ),
    ("mt0_n1_hd_2016 64x64 3D", "mt0_n1_hd_2016", {}),
    ("low_density 256x256 (0.3 per um^2)", "low_density", {"frame_shape": (256, 256)}),
]


def time_case(preset, overrides, n_frames, repeats):
    sim = PAFPSimulator.from_preset(preset, random_state=0, **overrides)
    sim.simulate(8)  # warm-up (imports, first allocations)
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        X, y = sim.simulate(n_frames)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    per_frame = np.mean([len(p) for p in y])
    return float(np.median(times)), float(min(times)), float(np.median(cpu)), per_frame


def streaming_memory(n_frames, chunk_size):
    sim = PAFPSimulator.from_preset("bt_hd_2013", random_state=0)
    tracemalloc.start()
    t0 = time.perf_counter()
    total = 0
    for X, _ in sim.iter_simulate(n_frames, chunk_size=chunk_size):
        total += len(X)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return total, elapsed, peak / 2**20


def _design(gt, sigma, shape=(64, 64), px=100.0):
    edges_x = np.arange(shape[1] + 1) * px
    edges_y = np.arange(shape[0] + 1) * px
    ex = np.diff(ndtr((edges_x[None, :] - gt[:, :1]) / sigma), axis=1)
    ey = np.diff(ndtr((edges_y[None, :] - gt[:, 1:2]) / sigma), axis=1)
    A = (ey[:, :, None] * ex[:, None, :]).reshape(len(gt), -1).T
    return np.c_[A, np.ones(A.shape[0])]


SIGMA_GRID_NM = np.arange(95.0, 126.0, 2.5)
HIST_BINS_ADU = np.arange(0, 4001, 10)


def fitted_sigma(frames, truth, sigmas=SIGMA_GRID_NM, step=24):
    """PSF width minimizing the NNLS residual of frames given the true positions."""
    rss = []
    for s in sigmas:
        r = 0.0
        for f in range(0, len(frames), step):
            A = _design(truth[f], s)
            r += nnls(A, frames[f].ravel().astype(float))[1] ** 2
        rss.append(r)
    i = int(np.argmin(rss))
    if 0 < i < len(sigmas) - 1:  # parabola through the three best points
        y0, y1, y2 = rss[i - 1 : i + 2]
        h = sigmas[1] - sigmas[0]
        return float(sigmas[i] + 0.5 * h * (y0 - y2) / (y0 - 2 * y1 + y2))
    return float(sigmas[i])


def frame_stats(name, X, truth):
    q = np.percentile(X, [1, 5, 25, 50, 75, 95, 99])
    counts = np.array([len(t) for t in truth])
    return {
        "frames": name,
        "mean_adu": X.mean(),
        "std_adu": X.std(),
        **{f"p{p}": v for p, v in zip([1, 5, 25, 50, 75, 95, 99], q, strict=True)},
        "emitters_mean": counts.mean(),
        "emitters_min": counts.min(),
        "emitters_max": counts.max(),
        "psf_sigma_nm_fit": fitted_sigma(X, truth),
    }


def hist_distance(a, b, bins=HIST_BINS_ADU):
    ha = np.histogram(a, bins)[0] / a.size
    hb = np.histogram(b, bins)[0] / b.size
    return 0.5 * np.abs(ha - hb).sum()


def calibration(n_frames):
    import tifffile

    from sklearn_smlm import localizations_to_list

    data = tifffile.imread(DATA / "frames.tif").astype(np.float64)[:n_frames]
    gt = pd.read_csv(DATA / "ground_truth.csv")
    table = pd.DataFrame(
        {"frame": gt["frame"] - 1, "x_nm": gt["x [nm]"], "y_nm": gt["y [nm]"]}
    )
    truth = localizations_to_list(table, n_frames=len(data))
    rows = [frame_stats("frames.tif (ThunderSTORM)", data, truth)]
    rows[0]["hist_tv_vs_data"] = 0.0
    for label, overrides in [
        ("preset bt_hd_2013 (uniform)", {}),
        ("preset bt_hd_2013, structure='filaments'", {"structure": "filaments"}),
    ]:
        sim = PAFPSimulator.from_preset("bt_hd_2013", random_state=0, **overrides)
        X, y = sim.simulate(len(data))
        row = frame_stats(label, X.astype(np.float64), y)
        row["hist_tv_vs_data"] = hist_distance(X, data)
        rows.append(row)
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer frames")
    args = parser.parse_args()
    n_frames = 1000 if args.quick else 4000
    repeats = 3

    conditions = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"load average at start {os.getloadavg()[0]:.2f} (other jobs share the CPU), "
        f"numpy {np.__version__}"
    )
    speed = []
    for label, preset, overrides in SPEED_CASES:
        n = n_frames if "256x256" not in label else max(n_frames // 8, 100)
        median, best, cpu, per_frame = time_case(preset, overrides, n, repeats)
        speed.append(
            {
                "case": label,
                "frames": n,
                "emitters_per_frame": round(per_frame, 1),
                "median_s": round(median, 3),
                "frames_per_s_median": round(n / median),
                "frames_per_s_best": round(n / best),
                "frames_per_cpu_s": round(n / cpu),
            }
        )
        print(speed[-1])
    speed = pd.DataFrame(speed)
    n_stream = 4 * n_frames
    total, elapsed, peak = streaming_memory(n_stream, 256)
    stream_row = {
        "case": f"iter_simulate({n_stream}, chunk_size=256), bt_hd_2013",
        "frames": total,
        "seconds": round(elapsed, 2),
        "frames_per_s": round(total / elapsed),
        "peak_traced_MiB": round(peak, 1),
        "full_movie_MiB": round(total * 64 * 64 * 4 / 2**20, 1),
    }
    print(stream_row)

    calib = None
    if (DATA / "frames.tif").exists():
        calib = calibration(361)
        print(calib.round(1).to_string(index=False))

    RESULTS.mkdir(parents=True, exist_ok=True)
    parts = [
        speed.assign(section="speed"),
        pd.DataFrame([stream_row]).assign(section="streaming"),
    ]
    if calib is not None:
        parts.append(calib.assign(section="calibration"))
    pd.concat(parts, ignore_index=True).to_csv(RESULTS / "simulator.csv", index=False)

    quick = " --quick" if args.quick else ""
    lines = [
        "# PAFPSimulator benchmark",
        "",
        f"Command: `python benchmarks/bench_simulator.py{quick}`",
        f"Conditions: {conditions}.",
        "",
        "## Speed (simulate(n), median of 3 runs, seed 0)",
        "",
        "frames_per_s: wall clock; frames_per_cpu_s: frames per second of CPU time",
        "of this process (the simulator runs on one thread), i.e. what one free",
        "core gives; the two differ when other jobs share the CPU.",
        "",
        speed.to_markdown(index=False),
        "",
        "## Streaming (bounded memory)",
        "",
        pd.DataFrame([stream_row]).to_markdown(index=False),
        "",
    ]
    if calib is not None:
        lines += [
            "## Calibration against data/bt_hd_recreated (361 frames)",
            "",
            "Pixel statistics in ADU; emitters per frame from the truth; PSF sigma",
            "fitted by non-negative least squares of every 24th frame given the",
            "true positions (grid 95-125 nm, parabolic refinement); hist_tv_vs_data:",
            "total-variation distance of the 10-ADU histograms to frames.tif.",
            "",
            calib.round(2).to_markdown(index=False),
            "",
        ]
    (RESULTS / "simulator.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
