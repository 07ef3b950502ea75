"""The CNN's arithmetic precisions on the model matrix: Jaccard index and speed.

Scores one model (default: the shipped ``default``) at several
``precision`` settings on the 48 cells of ``bench_models.py`` (same cells,
same seeds), ``data/bt_hd_recreated`` and pure background, the settings
interleaved per cell. Reference: the first setting (``bf16``, what
``precision="auto"`` resolves to on AVX-512-BF16 CPUs). For each other
setting it reports the change of the Jaccard index per cell, the largest
drop, and frames/s (``predict`` end to end, one torch thread unless
``--threads``), so an opt-in setting can be judged by the rule "no cell's JI
drops by more than 0.005". Writes ``precision.csv`` and ``precision.md`` to
``benchmarks/results/`` (``--quick``: ``benchmarks/results/quick/``)::

    python benchmarks/bench_precision.py                 # bf16, bf16-map, int8
    python benchmarks/bench_precision.py --precisions bf16,fp32 --quick

Duration: about 4 min per setting on 2 cores (48 cells of 48 frames of
64 x 64, 361 bt_hd frames, 32 background frames of 256 x 256).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import bench_models  # noqa: E402


def models_at(args):
    """``{"name@precision": localizer}`` for every requested precision."""
    from sklearn_smlm import DistanceTransformLocalizer

    models = {}
    for precision in args.precisions:
        if args.model:
            loc = DistanceTransformLocalizer.load(args.model, device="cpu")
            name = Path(args.model).stem
        else:
            loc = DistanceTransformLocalizer.pretrained(args.shipped, device="cpu")
            name = args.shipped
        models[f"{name}@{precision}"] = loc.set_params(precision=precision)
    return models


def summary(table, reference):
    """One row per setting: mean JI, largest JI drop per cell, frames/s."""
    cells = table[~table["cell"].str.startswith("background")]
    ji = cells.pivot(index="cell", columns="model", values="jaccard")
    rows = []
    for model in ji.columns:
        delta = ji[model] - ji[reference]
        matrix = delta.drop("bt_hd_recreated", errors="ignore")
        fps = table.loc[
            (table["model"] == model) & ~table["cell"].str.startswith("background"),
            "frames_per_s",
        ]
        rows.append(
            {
                "setting": model,
                "mean_JI_48_cells": round(
                    float(ji[model].drop("bt_hd_recreated", errors="ignore").mean()), 4
                ),
                "min_dJI": round(float(matrix.min()), 4),
                "worst_cell": str(matrix.idxmin()),
                "max_dJI": round(float(matrix.max()), 4),
                "cells_dropping_over_0.005": int((matrix < -0.005).sum()),
                "bt_hd_JI": round(float(ji[model].get("bt_hd_recreated", np.nan)), 4),
                "median_frames_per_s_64x64": round(float(fps.median()), 1),
            }
        )
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--precisions",
        default="bf16,bf16-map,int8",
        help="comma-separated settings; the first is the reference "
        "(default bf16,bf16-map,int8)",
    )
    parser.add_argument("--shipped", default="default", help="shipped model")
    parser.add_argument("--model", default=None, help="a model file instead")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--frames", type=int, default=48, help="frames per cell")
    parser.add_argument("--size", type=int, default=64, help="frame side, pixels")
    parser.add_argument("--background-frames", type=int, default=16)
    parser.add_argument(
        "--quick", action="store_true", help="4 frames of 32 x 32 per cell"
    )
    parser.add_argument("--out", default=None, help="output folder")
    parser.add_argument("--name", default="precision", help="output stem")
    args = parser.parse_args(argv)
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    import torch

    torch.set_num_threads(args.threads)
    out = Path(
        args.out or (_common.RESULTS / "quick" if args.quick else _common.RESULTS)
    )
    out.mkdir(parents=True, exist_ok=True)
    conditions = _common.Conditions(argv if argv is not None else sys.argv)
    bench_models.load_models = lambda _args: models_at(args)
    t0 = time.time()
    table, size, n_frames = bench_models.run(args)
    conditions.close()
    reference = next(
        m for m in table["model"].unique() if m.endswith(args.precisions[0])
    )
    summ = summary(table, reference)
    table.to_csv(out / f"{args.name}.csv", index=False)
    ji = table[~table["cell"].str.startswith("background")].pivot(
        index="cell", columns="model", values="jaccard"
    )
    background = table[table["cell"].str.startswith("background")]
    text = [
        f"# CNN precision settings on the model matrix ({args.name})",
        "",
        f"48 cells of {n_frames} frames of {size[0]} x {size[1]} (bench_models.py "
        "cells and seeds), data/bt_hd_recreated and pure background; every "
        f"setting on the same frames, interleaved per cell; {args.threads} torch "
        f"thread(s). Reference: `{reference}`. dJI = JI minus the reference's "
        f"in the same cell. Run time {time.time() - t0:.0f} s.",
        "",
        conditions.markdown(),
        "",
        "## Summary",
        "",
        summ.to_markdown(index=False),
        "",
        "## JI per cell",
        "",
        ji.round(4).to_markdown(),
        "",
        "## Pure background (detections per um^2 per frame)",
        "",
        background[["model", "cell", "background_per_um2_frame"]]
        .round(5)
        .to_markdown(index=False),
        "",
    ]
    (out / f"{args.name}.md").write_text("\n".join(text))
    print(summ.to_string(index=False))


if __name__ == "__main__":
    main()
