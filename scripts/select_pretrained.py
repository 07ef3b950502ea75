"""Choose a pretrained model and its threshold among candidates, on simulated frames.

Every candidate model (e.g. trained with ``scripts/train_pretrained.py`` or
``scripts/train_on_gpu.sh``) is scored on fresh simulated frames of a preset:
its uniform emitters, and the same emitters on filaments (a stand-in for
bundled-tube data, where close pairs along the tubes limit recall). For each
candidate the threshold with the best mean Jaccard index over both sets is
taken; the chosen model is the one with the best such mean whose RMSE stays
within ``--max-rmse`` on both sets. No reference data are read::

    python scripts/select_pretrained.py candidates/*.pt --out chosen.pt

``--cells`` scores instead on the 48 condition recipes of the model matrix
(``benchmarks/bench_models.py``) with other seeds (``--seed`` + cell index,
17000 by default there; the matrix uses 7000), ``predict`` end to end (frame
test and duplicate rule included), and takes for each candidate the
threshold with the best mean Jaccard index over the 48 cells: the choice of
a new ``default``::

    python scripts/select_pretrained.py cand.pt --cells --out chosen.pt
"""

import argparse
import json
from pathlib import Path

import numpy as np

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm.metrics import localization_metrics
from sklearn_smlm.peaks import maps_to_localizations
from sklearn_smlm.simulation import PRESETS

THRESHOLDS = (100.0, 200.0, 300.0, 400.0, 500.0)


def validation_sets(preset, n_frames, seed):
    """Fresh frames of the preset: uniform emitters and on 8 filaments."""
    sets = {}
    for name, extra in (
        ("uniform", {}),
        ("filaments", {"structure": "filaments", "n_filaments": 8}),
    ):
        params = dict(PRESETS[preset], **extra)
        X, y = PAFPSimulator(**params, random_state=seed).simulate(n_frames)
        sets[name] = (X, [p[:, :2] for p in y])
    return sets


def score(loc, sets):
    """{threshold: {set: (jaccard, rmse_nm)}} at 250 nm."""
    scores = {t: {} for t in THRESHOLDS}
    for name, (X, y) in sets.items():
        maps = loc.predict_maps(X)
        for t in THRESHOLDS:
            table = maps_to_localizations(
                maps, t, upscaling=loc.upscaling, pixel_size_nm=loc.pixel_size_nm
            )
            m = localization_metrics(y, table, tolerance_nm=250.0)
            scores[t][name] = (round(m["jaccard"], 4), round(m["rmse_nm"], 2))
    return scores


CELL_THRESHOLDS = (150.0, 200.0, 250.0, 300.0, 350.0, 400.0)


def cell_sets(n_frames, seed):
    """Simulate the matrix's 48 cell recipes: 64 x 64, seed ``seed`` + cell."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_models

    sets = {}
    for i, (name, _, params) in enumerate(bench_models.cells()):
        X, y = PAFPSimulator(
            frame_shape=(64, 64), random_state=seed + i, **params
        ).simulate(n_frames)
        sets[name] = (X, [p[:, :2] for p in y], params["pixel_size_nm"])
    return sets


def score_cells(loc, sets):
    """Score ``{threshold: {cell: (jaccard, precision)}}`` on the cells.

    ``predict`` runs once at the lowest threshold without the detection
    rules; each threshold then keeps the detections scoring above it (the
    maxima of a map do not depend on the threshold) and applies the model's
    rules (duplicates, frame edge, weak sparse) to them, as ``predict`` at
    that threshold does.
    """
    import warnings

    from sklearn_smlm._conditions import decide_detections

    rules = loc.get_params()
    rules = {
        k: rules[k]
        for k in ("duplicate_radius_nm", "edge_threshold", "sparse_score_fraction")
    }
    scores = {t: {} for t in CELL_THRESHOLDS}
    for name, (X, y, px) in sets.items():
        loc.set_params(
            threshold=min(CELL_THRESHOLDS),
            pixel_size_nm=float(px),
            **dict.fromkeys(rules),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # out-of-range cells on purpose
            table = loc.predict(X)
        for t in CELL_THRESHOLDS:
            kept = table[table["score"] > t].reset_index(drop=True)
            kept = decide_detections(
                kept, frame_shape=X.shape[1:3], pixel_size_nm=float(px), **rules
            )
            m = localization_metrics(y, kept, tolerance_nm=250.0)
            scores[t][name] = (round(m["jaccard"], 4), round(m["precision"], 4))
    loc.set_params(pixel_size_nm=100.0, **rules)
    return scores


def main_cells(args):
    """``--cells``: the threshold of each candidate on the matrix recipes."""
    sets = cell_sets(args.n_frames, args.seed)
    results = []
    for path in args.models:
        loc = DistanceTransformLocalizer.load(path, device="cpu")
        if args.duplicate_radius_nm:
            loc.set_params(duplicate_radius_nm=args.duplicate_radius_nm)
        if args.edge_threshold:
            loc.set_params(edge_threshold=args.edge_threshold)
        if args.sparse_score_fraction:
            loc.set_params(sparse_score_fraction=args.sparse_score_fraction)
        scores = score_cells(loc, sets)
        mean = {t: np.mean([ji for ji, _ in s.values()]) for t, s in scores.items()}
        best = max(CELL_THRESHOLDS, key=lambda t: mean[t])
        results.append((path, loc, best, mean, scores))
        print(
            f"{path}: "
            + ", ".join(f"{t:g}: {mean[t]:.4f}" for t in CELL_THRESHOLDS)
            + f" -> threshold {best:g}",
            flush=True,
        )
    path, loc, threshold, mean, scores = max(results, key=lambda r: r[3][r[2]])
    print(f"chosen: {path} at threshold {threshold:g} (mean JI {mean[threshold]:.4f})")
    if args.out:
        loc.set_params(threshold=float(threshold))
        loc.training_info_ = dict(
            loc.training_info_ or {},
            selection={
                "script": "scripts/select_pretrained.py --cells",
                "cells": "benchmarks/bench_models.py recipes, 64 x 64",
                "n_frames_per_cell": args.n_frames,
                "seed": args.seed,
                "duplicate_radius_nm": args.duplicate_radius_nm,
                "edge_threshold": args.edge_threshold,
                "sparse_score_fraction": args.sparse_score_fraction,
                "threshold": threshold,
                "mean_jaccard_by_threshold": {
                    str(t): round(v, 4) for t, v in mean.items()
                },
                "scores_at_threshold": scores[threshold],
                "candidates": {
                    Path(r[0]).name: {
                        "threshold": r[2],
                        "mean_jaccard": round(r[3][r[2]], 4),
                    }
                    for r in results
                },
            },
        )
        print(f"saved {loc.save(args.out)}")


def main(argv=None):
    """Score every candidate, print the table and save the chosen model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--preset", default="bt_hd_2013")
    parser.add_argument("--n-frames", type=int, default=150)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--max-rmse", type=float, default=44.0)
    parser.add_argument("--out", default=None, help="save the chosen model here")
    parser.add_argument(
        "--cells",
        action="store_true",
        help="score on the model matrix's 48 recipes (other seeds) instead",
    )
    parser.add_argument(
        "--duplicate-radius-nm",
        type=float,
        default=None,
        help="with --cells: set this duplicate_radius_nm on every candidate",
    )
    parser.add_argument(
        "--edge-threshold",
        type=float,
        default=None,
        help="with --cells: set this edge_threshold on every candidate",
    )
    parser.add_argument(
        "--sparse-score-fraction",
        type=float,
        default=None,
        help="with --cells: set this sparse_score_fraction on every candidate",
    )
    args = parser.parse_args(argv)
    if args.cells:
        return main_cells(args)
    sets = validation_sets(args.preset, args.n_frames, args.seed)
    results = []
    for path in args.models:
        loc = DistanceTransformLocalizer.load(path, device="cpu")
        scores = score(loc, sets)
        mean = {t: np.mean([ji for ji, _ in s.values()]) for t, s in scores.items()}
        best = max(THRESHOLDS, key=lambda t: mean[t])
        ok = all(rmse <= args.max_rmse for _, rmse in scores[best].values())
        results.append((path, loc, best, mean[best], ok, scores))
        print(
            f"{path}: threshold {best:g}, mean JI {mean[best]:.4f}, "
            f"{scores[best]}" + ("" if ok else f"  (RMSE > {args.max_rmse:g} nm)"),
            flush=True,
        )
    eligible = [r for r in results if r[4]]
    if not eligible:
        raise SystemExit("no candidate keeps the RMSE within --max-rmse")
    path, loc, threshold, mean, _, scores = max(eligible, key=lambda r: r[3])
    print(f"chosen: {path} at threshold {threshold:g} (mean JI {mean:.4f})")
    if args.out:
        loc.set_params(threshold=float(threshold))
        loc.training_info_ = dict(
            loc.training_info_ or {},
            selection={
                "script": "scripts/select_pretrained.py",
                "preset": args.preset,
                "n_frames_per_set": args.n_frames,
                "seed": args.seed,
                "threshold": threshold,
                "scores_at_threshold": scores[threshold],
                "candidates": {
                    Path(r[0]).name: {"threshold": r[2], "mean_jaccard": round(r[3], 4)}
                    for r in results
                },
            },
        )
        print(json.dumps(loc.training_info_["selection"], indent=1))
        print(f"saved {loc.save(args.out)}")


if __name__ == "__main__":
    main()
