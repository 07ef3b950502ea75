"""Post-processing on simulated long acquisitions: drift, merging, FRC.

Run from the repository root:

    python benchmarks/bench_postprocessing.py [--quick] [--out DIR]

The acquisitions are simulated at the table level
(``sklearn_smlm.postprocessing.simulate_localizations``: the simulator's
filaments and blinking law, each localization displaced by its Cramér-Rao
precision), 20,000 frames of a 12.8 x 12.8 um field, with a drift of
``simulate_drift`` (300 / -200 nm linear plus a 40 nm RMS wander of periods
6,000-20,000 frames). Goals (issue 18): drift recovered to <= 5 nm RMS per
axis, and the Jaccard index at 50 nm of the corrected table against the
truth within 0.02 of the drift-free table's; merging within 5 % of the true
number of on-events.

Prints the tables and writes benchmarks/results/postprocessing.md (and .csv).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Conditions  # noqa: E402

from sklearn_smlm.metrics import localization_metrics  # noqa: E402
from sklearn_smlm.postprocessing import (  # noqa: E402
    DriftCorrector,
    frc_resolution,
    merge_localizations,
    simulate_drift,
    simulate_localizations,
)

ROOT = Path(__file__).resolve().parents[1]

DRIFT_CASES = [
    # name, simulate_localizations overrides, DriftCorrector parameters
    ("rcc, 0.2 /um^2", {"density_per_um2": 0.2}, {}),
    ("rcc, 0.5 /um^2", {"density_per_um2": 0.5}, {}),
    ("rcc, 1.0 /um^2", {"density_per_um2": 1.0}, {}),
    ("rcc, 0.5 /um^2, 500 photons", {"density_per_um2": 0.5, "photons": 500.0}, {}),
    (
        "rcc segments of 1000, 0.5 /um^2",
        {"density_per_um2": 0.5},
        {"segment_frames": 1000},
    ),
    (
        "fiducial (3 beads), 0.5 /um^2",
        {"density_per_um2": 0.5, "n_fiducials": 3},
        {"method": "fiducial"},
    ),
]


def drift_rows(n_frames, seed):
    rows = []
    drift = simulate_drift(n_frames, random_state=seed)
    truth_xy = drift[["dx_nm", "dy_nm"]].to_numpy()
    for name, sim_kw, corr_kw in DRIFT_CASES:
        table, truth = simulate_localizations(
            n_frames, drift=drift, random_state=seed, **sim_kw
        )
        # same seed, no drift: the same localizations (the drift draws nothing)
        still, _ = simulate_localizations(n_frames, random_state=seed, **sim_kw)
        t0 = time.perf_counter()
        corrector = DriftCorrector(**corr_kw).fit(table)
        seconds = time.perf_counter() - t0
        corrected = corrector.transform(table)
        err = corrector.drift_[["dx_nm", "dy_nm"]].to_numpy() - truth_xy
        rms = np.sqrt(np.mean(err**2, axis=0))
        shape_rms = err.std(axis=0)
        # score the sample, not the fiducial beads
        sample = truth["emitter"].to_numpy() >= 0
        truth, table, still, corrected = (
            t[sample] for t in (truth, table, still, corrected)
        )
        ji = {}
        for key, t in (("free", still), ("drift", table), ("corrected", corrected)):
            ji[key] = localization_metrics(truth, t, tolerance_nm=50.0)["jaccard"]
        rows.append(
            {
                "case": name,
                "locs": len(table),
                "locs_per_frame": round(len(table) / n_frames, 1),
                "median_precision_nm": round(
                    float(np.median(table["uncertainty_nm"])), 1
                ),
                "fit_s": round(seconds, 1),
                "rms_x_nm": round(rms[0], 2),
                "rms_y_nm": round(rms[1], 2),
                "rms_x_about_mean_nm": round(shape_rms[0], 2),
                "rms_y_about_mean_nm": round(shape_rms[1], 2),
                "ji50_free": round(ji["free"], 4),
                "ji50_drifting": round(ji["drift"], 4),
                "ji50_corrected": round(ji["corrected"], 4),
                "ji50_gap": round(ji["free"] - ji["corrected"], 4),
            }
        )
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def merge_rows(n_frames, seed):
    rows = []
    for l_on, p_detect, dark in [(3.0, 1.0, 0), (3.0, 0.9, 1), (5.0, 0.8, 2)]:
        table, truth = simulate_localizations(
            n_frames,
            mean_on_frames=l_on,
            detection_probability=p_detect,
            random_state=seed,
        )
        t0 = time.perf_counter()
        merged = merge_localizations(table, max_distance_nm=50.0, max_dark_frames=dark)
        seconds = time.perf_counter() - t0
        n_true = truth["emitter"].nunique()
        rows.append(
            {
                "mean_on_frames": l_on,
                "detection_probability": p_detect,
                "max_dark_frames": dark,
                "locs": len(table),
                "true_events": n_true,
                "merged_events": len(merged),
                "relative_error": round(len(merged) / n_true - 1, 4),
                "seconds": round(seconds, 2),
                "locs_per_s": round(len(table) / seconds),
            }
        )
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def frc_rows(seed):
    rows = []
    rng = np.random.default_rng(seed)
    for sigma in (5.0, 10.0, 20.0):
        for n in (5, 20):
            sites = rng.uniform(0, 4000, (800, 2))

            def half(sites=sites, n=n, sigma=sigma):
                xy = np.repeat(sites, n, axis=0) + rng.normal(
                    0, sigma, (len(sites) * n, 2)
                )
                return pd.DataFrame({"frame": 0, "x_nm": xy[:, 0], "y_nm": xy[:, 1]})

            expected = 2 * np.pi * sigma / np.sqrt(np.log(6 * n + 1))
            measured = frc_resolution(half(), half(), pixel_size_nm=sigma / 4)
            rows.append(
                {
                    "precision_nm": sigma,
                    "locs_per_site_per_half": n,
                    "theory_nm": round(expected, 2),
                    "frc_nm": round(measured, 2),
                    "ratio": round(measured / expected, 3),
                }
            )
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


PICASSO_SCRIPT = """
import json, sys, time
import numpy as np
from picasso import io, postprocess
locs, info = io.load_locs(sys.argv[1])
out = {"n_loaded": len(locs)}
for seg in (1000, 500):
    t0 = time.perf_counter()
    drift = postprocess.undrift(locs, info, seg, display=False)[0]
    out[str(seg)] = {
        "seconds": time.perf_counter() - t0,
        "dx_px": np.asarray(drift["x"], dtype=float).tolist(),
        "dy_px": np.asarray(drift["y"], dtype=float).tolist(),
    }
print(json.dumps(out))
"""


def picasso_rows(n_frames, seed, python, out):
    """Picasso's own RCC (postprocess.undrift) on our Picasso file of one case."""
    import json
    import subprocess
    import tempfile
    import warnings

    from sklearn_smlm.io import write_picasso_hdf5

    drift = simulate_drift(n_frames, random_state=seed)
    truth_xy = drift[["dx_nm", "dy_nm"]].to_numpy()
    table, _ = simulate_localizations(
        n_frames, drift=drift, random_state=seed, density_per_um2=0.5
    )
    rows = []
    t0 = time.perf_counter()
    ours = DriftCorrector().fit(table)
    rows.append(_drift_row("sklearn-smlm RCC, 500", ours.drift_, truth_xy, t0))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "locs.hdf5"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # edge rows Picasso drops; counted below
            write_picasso_hdf5(
                table,
                path,
                pixel_size_nm=100.0,
                frame_shape=(128, 128),
                n_frames=n_frames,
            )
        result = subprocess.run(
            [python, "-c", PICASSO_SCRIPT, str(path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
    data = json.loads(result.stdout.strip().splitlines()[-1])
    for seg in ("1000", "500"):
        d = data[seg]
        curve = pd.DataFrame(
            {
                "dx_nm": np.array(d["dx_px"]) * 100.0,
                "dy_nm": np.array(d["dy_px"]) * 100.0,
            }
        )
        row = _drift_row(f"Picasso undrift, {seg}", curve, truth_xy, None)
        row["fit_s"] = round(d["seconds"], 1)
        rows.append(row)
    for row in rows:
        row["locs"] = (
            data["n_loaded"] if row["case"].startswith("Picasso") else len(table)
        )
        print(row, flush=True)
    return pd.DataFrame(rows)


def _drift_row(name, curve, truth_xy, t0):
    err = curve[["dx_nm", "dy_nm"]].to_numpy() - truth_xy
    rms = np.sqrt(np.mean(err**2, axis=0))
    about = err.std(axis=0)
    return {
        "case": name,
        "fit_s": None if t0 is None else round(time.perf_counter() - t0, 1),
        "rms_x_nm": round(rms[0], 2),
        "rms_y_nm": round(rms[1], 2),
        "rms_x_about_mean_nm": round(about[0], 2),
        "rms_y_about_mean_nm": round(about[1], 2),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,000 frames")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--picasso-python",
        metavar="PATH",
        help="a Python with picassosr: compare Picasso's postprocess.undrift on our "
        "Picasso HDF5 file of the 0.5 /um^2 case (results/postprocessing_picasso.md) "
        "and skip the other sections",
    )
    args = parser.parse_args(argv)
    out = args.out or (
        ROOT / "benchmarks" / "results" / ("quick" if args.quick else "")
    )
    out.mkdir(parents=True, exist_ok=True)
    n_frames = 4000 if args.quick else 20000
    conditions = Conditions(argv)
    if args.picasso_python:
        picasso = picasso_rows(n_frames, args.seed, args.picasso_python, out)
        conditions.close()
        picasso.to_csv(out / "postprocessing_picasso.csv", index=False)
        (out / "postprocessing_picasso.md").write_text(
            "# Drift correction: sklearn-smlm and Picasso on the same file\n\n"
            + conditions.markdown()
            + f"\n{n_frames:,} frames, 0.5 emitters/um^2 (the drift section's case), "
            "written with `write_picasso_hdf5` and loaded by Picasso's `io.load_locs` "
            "(which drops the rows within half a pixel of the left or top edge). "
            "Picasso's curve is not pinned at frame 0, so compare the RMS about the "
            "mean. Segment lengths in frames.\n\n"
            + picasso.to_markdown(index=False)
            + "\n"
        )
        print(picasso.to_string(index=False))
        return
    drift = drift_rows(n_frames, args.seed)
    merge = merge_rows(n_frames, args.seed)
    frc = frc_rows(args.seed)
    conditions.close()
    for name, table in (("drift", drift), ("merge", merge), ("frc", frc)):
        table.to_csv(out / f"postprocessing_{name}.csv", index=False)
        print(table.to_string(index=False))
    text = [
        "# Post-processing: drift correction, merging, FRC\n",
        conditions.markdown(),
        f"\n## Drift ({n_frames:,} frames, 12.8 x 12.8 um, table-level simulation)\n",
        "RMS of the estimated drift curve against the true one over all frames, "
        "per axis, with the curve pinned at 0 at frame 0 as `DriftCorrector` "
        "reports it, and about its mean (the shape alone: a drift is defined up "
        "to a translation). JI at 50 nm: Hungarian matching per frame of the "
        "table against the truth; `ji50_gap` = drift-free minus corrected "
        "(goal <= 0.02). `fit_s` includes the segment rendering and every "
        "pairwise correlation.\n\n",
        drift.to_markdown(index=False),
        "\n\n## Merging (max_distance_nm=50)\n\n",
        merge.to_markdown(index=False),
        "\n\n## FRC against its closed form\n\n",
        "Two independent halves, each with `n` localizations of precision "
        "sigma per random site: FRC(q) = 1 / (1 + (exp(4 pi^2 sigma^2 q^2) - 1)"
        " / n), so the 1/7 threshold is reached at 2 pi sigma / sqrt(ln(6 n + "
        "1)). Render pixel sigma / 4, 7-ring moving average.\n\n",
        frc.to_markdown(index=False),
        "\n",
    ]
    (out / "postprocessing.md").write_text("".join(text))
    print(f"wrote {out / 'postprocessing.md'}")


if __name__ == "__main__":
    main()
