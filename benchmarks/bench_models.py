"""Model evaluation matrix: every shipped model on a fixed grid of simulated conditions.

One command scores every shipped 2D model (``sklearn_smlm/models/*.pt``; the
3D ``astig_3d`` is scored by ``bench_3d.py`` unless named with ``--shipped``)
and any candidate file passed with ``--model PATH`` on

- 48 simulated cells: density (sparse 0.1-0.5, medium 1-2, dense 3-6
  emitters/um^2, drawn per frame) x focus (thin: in focus; thick: a 1.5 um
  slab, z uniform in +-750 nm, defocus widening the PSF) x camera (EMCCD,
  sCMOS) x optics (100 nm pixels with PSF FWHM 258 nm, i.e. sigma 1.10 px;
  160 nm pixels with FWHM 340 nm, sigma 0.90 px) x structure (uniform,
  8 filaments);
- ``data/bt_hd_recreated`` (evaluation only);
- pure background (camera noise only, no emitter; EMCCD and sCMOS): the
  number of detections per um^2 per frame.

Columns: Jaccard index, precision, recall, RMSE (Hungarian matching at 250 nm,
no border exclusion), the 2016 efficiency, and frames/s end to end
(``predict``, array in, table out). Every cell has its own fixed seed, so two
runs see the same frames. Writes ``models.csv``, ``models.md`` and the heat
map ``models.png`` to ``benchmarks/results/`` (``--quick``:
``benchmarks/results/quick/``)::

    python benchmarks/bench_models.py                      # the matrix
    python benchmarks/bench_models.py --model cand.pt      # plus a candidate
    python benchmarks/bench_models.py --quick              # a smoke run
    python benchmarks/bench_models.py --shipped default    # one shipped model

Default size: 48 frames of 64 x 64 per cell, 16 frames of 256 x 256 per
background row, all 361 bt_hd frames. Duration: 51 min for the three shipped
models on a 2-core AMD EPYC shared with other jobs (load average 13-15; most
of it is ``bt_hd_2013``, about 15x slower than the others); on an idle
machine expect well under half of that.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

#: Emitters/um^2, drawn per frame (log-uniform) in each range.
DENSITIES = {"sparse": (0.1, 0.5), "medium": (1.0, 2.0), "dense": (3.0, 6.0)}
FOCUS = {
    "thin": {},
    "thick": {"z_range_nm": (-750.0, 750.0), "focal_depth_nm": 400.0},
}
CAMERAS = {
    "emccd": dict(
        camera="emccd",
        quantum_efficiency=0.9,
        em_gain=100.0,
        read_noise_e=50.0,
        e_per_adu=50.0,
        baseline_adu=100.0,
    ),
    "scmos": dict(
        camera="scmos",
        quantum_efficiency=0.8,
        read_noise_e=1.6,
        e_per_adu=0.5,
        baseline_adu=100.0,
    ),
}
#: Pixel size and PSF: sigma 1.10 px and 0.90 px.
OPTICS = {
    "px100": dict(pixel_size_nm=100.0, psf_fwhm_nm=258.0),
    "px160": dict(pixel_size_nm=160.0, psf_fwhm_nm=340.0),
}
STRUCTURES = {
    "uniform": {"structure": "uniform"},
    "filaments": {"structure": "filaments", "n_filaments": 8},
}
SAMPLE = dict(
    photons=1500.0,
    photon_distribution="lognormal",
    photon_spread=0.5,
    background_photons=20.0,
)
KEYS = ("jaccard", "precision", "recall", "rmse_nm", "efficiency")


def cells():
    """The 48 cells of the grid: ``(name, labels, simulator parameters)``."""
    out = []
    for d, density in DENSITIES.items():
        for f, focus in FOCUS.items():
            for c, camera in CAMERAS.items():
                for o, optics in OPTICS.items():
                    for s, structure in STRUCTURES.items():
                        labels = dict(
                            density=d, focus=f, camera=c, optics=o, structure=s
                        )
                        params = dict(
                            SAMPLE,
                            density_per_um2=density,
                            **focus,
                            **camera,
                            **optics,
                            **structure,
                        )
                        out.append(("/".join(labels.values()), labels, params))
    return out


def load_models(args):
    """``{name: localizer}``: the shipped models and the ``--model`` files."""
    from sklearn_smlm import DistanceTransformLocalizer
    from sklearn_smlm.localizer import pretrained_names

    models = {}
    if not args.no_shipped:
        names = pretrained_names()
        if args.shipped:
            names = [n for n in names if n in args.shipped.split(",")]
        for name in names:
            loc = DistanceTransformLocalizer.pretrained(name, device="cpu")
            if loc.z_range_nm is not None and not args.shipped:
                continue  # a 3D (astigmatic) model: benchmarks/bench_3d.py scores it
            models[name] = loc
    settings = dict(_setting(text) for text in args.set)
    for path in args.model:
        loc = DistanceTransformLocalizer.load(path, device="cpu")
        models[Path(path).stem] = loc.set_params(**settings)
    if not models:
        raise SystemExit("no model to evaluate (--no-shipped without --model)")
    return models


def _setting(text):
    """``"name=value"`` of ``--set`` as ``(name, value)``: a number, None or text."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"--set needs NAME=VALUE, got {text!r}")
    if value == "None":
        return name, None
    try:
        return name, float(value)
    except ValueError:
        return name, value


def _predict(loc, frames, pixel_size_nm):
    """Table and seconds of ``loc.predict`` at the data's pixel size."""
    loc.set_params(pixel_size_nm=float(pixel_size_nm))
    with warnings.catch_warnings():
        # The matrix puts models outside their range on purpose.
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        table = loc.predict(frames)
        seconds = time.perf_counter() - t0
    return table, seconds


def score(loc, frames, truth, pixel_size_nm):
    """The matrix columns of one model on one set of frames."""
    from sklearn_smlm.metrics import localization_metrics

    table, seconds = _predict(loc, frames, pixel_size_nm)
    m = localization_metrics(truth, table, tolerance_nm=250.0)
    return {
        **{k: m[k] for k in KEYS},
        "n_true": m["tp"] + m["fn"],
        "n_pred": m["tp"] + m["fp"],
        "frames_per_s": len(frames) / seconds,
    }


def run(args):
    """The matrix as a long table (one row per model and condition)."""
    from sklearn_smlm import PAFPSimulator

    size = (32, 32) if args.quick else (args.size, args.size)
    n_frames = 4 if args.quick else args.frames
    models = load_models(args)
    for loc in models.values():  # warm-up: the first call pays one-time costs
        _predict(loc, np.full((2, *size), 100.0, np.float32), 100.0)
    rows = []
    for i, (name, labels, params) in enumerate(cells()):
        X, y = PAFPSimulator(
            frame_shape=size, random_state=7000 + i, **params
        ).simulate(n_frames)
        truth = [np.asarray(p)[:, :2] for p in y]
        for model, loc in models.items():
            res = score(loc, X, truth, params["pixel_size_nm"])
            rows.append(
                {"model": model, "cell": name, **labels, "n_frames": n_frames, **res}
            )
        _common.log(
            f"{i + 1:2d}/48 {name:42s} "
            + " ".join(
                f"{r['model']}={r['jaccard']:.3f}/{r['precision']:.3f}"
                for r in rows[-len(models) :]
            )
        )
    rows += bt_hd_rows(args, models)
    rows += background_rows(args, models)
    return pd.DataFrame(rows), size, n_frames


def bt_hd_rows(args, models):
    """Every model on ``data/bt_hd_recreated`` (skipped where it is absent)."""
    if not _common.DATA_BT_HD.exists():
        _common.log(f"bt_hd_recreated not found at {_common.DATA_BT_HD}: skipped")
        return []
    frames, truth = _common.load_bt_hd(max_frames=8 if args.quick else None)
    rows = []
    for model, loc in models.items():
        res = score(loc, frames, truth, 100.0)
        rows.append(
            {"model": model, "cell": "bt_hd_recreated", "n_frames": len(frames), **res}
        )
        _common.log(f"bt_hd_recreated {model}: {res}")
    return rows


def background_rows(args, models):
    """Detections per um^2 per frame on pure background (no emitter)."""
    from sklearn_smlm import PAFPSimulator

    shape = (64, 64) if args.quick else (256, 256)
    n_frames = 2 if args.quick else args.background_frames
    rows = []
    for j, (camera, params) in enumerate(CAMERAS.items()):
        X, _ = PAFPSimulator(
            frame_shape=shape,
            density_per_um2=0.0,
            random_state=8000 + j,
            **dict(SAMPLE, **params, **OPTICS["px100"]),
        ).simulate(n_frames)
        area_um2 = shape[0] * shape[1] * (100.0 / 1000.0) ** 2
        for model, loc in models.items():
            table, seconds = _predict(loc, X, 100.0)
            rows.append(
                {
                    "model": model,
                    "cell": f"background/{camera}",
                    "camera": camera,
                    "n_frames": n_frames,
                    "n_pred": len(table),
                    "background_per_um2_frame": len(table) / (area_um2 * n_frames),
                    "median_score": float(np.median(table["score"]))
                    if len(table)
                    else np.nan,
                    "frames_per_s": n_frames / seconds,
                }
            )
            _common.log(f"background/{camera} {model}: {len(table)} detections")
    return rows


def heat_map(table, path):
    """JI and precision per cell (rows) and model (columns), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = table[table["jaccard"].notna()]
    order = list(dict.fromkeys(scored["cell"]))
    models = list(dict.fromkeys(scored["model"]))
    fig, axes = plt.subplots(
        1, 2, figsize=(3.2 + 2.2 * len(models), 0.21 * len(order) + 2.0)
    )
    for ax, key in zip(axes, ("jaccard", "precision"), strict=True):
        grid = scored.pivot(index="cell", columns="model", values=key)
        grid = grid.loc[order, models]
        im = ax.imshow(grid.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (r, c), v in np.ndenumerate(grid.to_numpy()):
            ax.text(
                c,
                r,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="w" if v < 0.6 else "k",
            )
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
        ax.set_yticks(range(len(order)), order if key == "jaccard" else [""] * 0)
        ax.tick_params(axis="y", labelsize=6)
        ax.set_title(key)
        fig.colorbar(im, ax=ax, fraction=0.05)
    bg = table[table["cell"].str.startswith("background")]
    if len(bg):
        text = "; ".join(
            f"{r.model} {r.cell.split('/')[1]} {r.background_per_um2_frame:.4f}"
            for r in bg.itertuples()
        )
        fig.suptitle(
            "pure background, detections per um^2 per frame: " + text, fontsize=7
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_tables(table):
    """Pivot tables (JI, precision, RMSE) per cell and model, then everything."""
    scored = table[table["jaccard"].notna()]
    order = list(dict.fromkeys(scored["cell"]))
    models = list(dict.fromkeys(scored["model"]))
    parts = []
    for key, digits in (
        ("jaccard", 3),
        ("precision", 3),
        ("recall", 3),
        ("rmse_nm", 1),
        ("frames_per_s", 0),
    ):
        grid = scored.pivot(index="cell", columns="model", values=key)
        grid = grid.loc[order, models].round(digits)
        parts.append(f"### {key}\n\n" + grid.to_markdown() + "\n")
    bg = table[table["cell"].str.startswith("background")]
    if len(bg):
        cols = [
            "model",
            "cell",
            "n_frames",
            "n_pred",
            "background_per_um2_frame",
            "median_score",
            "frames_per_s",
        ]
        parts.append(
            "### pure background (no emitter)\n\n"
            + bg[cols].round(5).to_markdown(index=False)
            + "\n"
        )
    return "\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="PATH",
        help="a candidate model file (repeatable), scored beside the shipped ones",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the --model files (repeatable), e.g. "
        "test_time_augmentation=flips or threshold=450",
    )
    parser.add_argument(
        "--no-shipped", action="store_true", help="score only the --model files"
    )
    parser.add_argument(
        "--shipped",
        default=None,
        metavar="NAMES",
        help="comma-separated shipped models to score (default all)",
    )
    parser.add_argument("--frames", type=int, default=48, help="frames per cell")
    parser.add_argument("--size", type=int, default=64, help="frame side, pixels")
    parser.add_argument(
        "--background-frames",
        type=int,
        default=16,
        help="256 x 256 frames per pure-background row",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="4 frames of 32 x 32 per cell (a smoke test; numbers meaningless)",
    )
    parser.add_argument("--out", default=None, help="output folder")
    parser.add_argument(
        "--name", default="models", help="stem of the output files (default models)"
    )
    args = parser.parse_args(argv)
    out = Path(
        args.out or (_common.RESULTS / "quick" if args.quick else _common.RESULTS)
    )
    out.mkdir(parents=True, exist_ok=True)
    conditions = _common.Conditions(argv if argv is not None else sys.argv)
    table, size, n_frames = run(args)
    conditions.close()
    table.to_csv(out / f"{args.name}.csv", index=False)
    heat_map(table, out / f"{args.name}.png")
    notes = (
        f"48 cells of {n_frames} frames of {size[0]} x {size[1]} pixels each "
        "(PAFPSimulator, seed 7000 + cell index; photons log-normal, mean 1500, "
        "spread 0.5; background 20 photons/pixel; EMCCD: QE 0.9, gain 100, read "
        "noise 50 e-, 50 e-/ADU; sCMOS: QE 0.8, read noise 1.6 e-, 0.5 e-/ADU), "
        "data/bt_hd_recreated (evaluation only), and pure background. Hungarian "
        "matching at 250 nm, no border exclusion; each model at its stored "
        "threshold; frames/s is `predict` end to end on this machine (shared "
        "when the load average is above 1). Heat map: "
        f"`{args.name}.png`; every number: `{args.name}.csv`."
    )
    md = (
        f"# Model evaluation matrix\n\n{conditions.markdown()}\n{notes}\n\n"
        + markdown_tables(table)
    )
    (out / f"{args.name}.md").write_text(md)
    _common.log(f"wrote {out}/{args.name}.csv, .md, .png")
    return table


if __name__ == "__main__":
    main()
