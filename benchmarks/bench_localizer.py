"""DistanceTransformLocalizer: prediction speed, bf16 parity and training time.

Three sections (``--only speed,parity,training``):

``speed``
    Frames per second, end to end from a numpy array of 64x64 frames to the
    localization table, with the time split into normalize / network / peaks;
    fp32 and bf16, batch sizes 16, 32 and 64, torch threads 1 and 2, on a
    model of the paper's architecture (9 layers of 3x3x32, sub-pixel r = 7) with
    its folded head (the library's default) and with the paper's unfolded
    ``"subpixel"`` head computing exactly the same function (checked: the max
    map difference is printed). Target: >= 300 frames/s on this CPU.
``parity``
    bf16 against fp32 on the same trained model and the same simulated frames:
    detections, Jaccard index and RMSE at 250 nm, max |map difference|.
``training``
    The paper's 2013 setting: 1000 simulated 64x64 frames of the
    ``"bt_hd_2013"`` preset (uniform emitters), alpha 7, d_max 35, threshold
    300, with and without dropout; time to the best validation loss (from
    ``net_.history``); JI and RMSE at 250 nm on ``bt_hd_recreated`` (evaluation
    only: nothing is trained or tuned on it). ``--model PATH`` evaluates a saved
    model instead of training.

Run from the repository root (the lead's full run; about 35-45 minutes on 2
shared cores, mostly training; cached models make re-runs much shorter)::

    python benchmarks/bench_localizer.py
    python benchmarks/bench_localizer.py --only speed,parity \
        --model sklearn_smlm/models/default.pt
    python benchmarks/bench_localizer.py --quick      # a few minutes, results/quick/

Writes ``localizer_<section>.csv/.md`` (and ``localizer_training_curves.png``)
under ``benchmarks/results/``.
"""

import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

SECTIONS = ["training", "speed", "parity"]


def staged_predict(loc, frames, batch_size, sw):
    """``loc.predict(frames)`` with each stage timed in ``sw``.

    The same steps as ``DistanceTransformLocalizer._predict_frames``; the
    network step is the library's own batch iterator (for the folded head it
    yields the head's channels, and "peaks" includes assembling the map
    around candidates, see ``sklearn_smlm._subpixel_maps``).
    """
    from sklearn_smlm.peaks import columns_to_localizations, localization_columns

    with sw("normalize"):
        normalized = loc.normalizer_.transform(frames)
    batches = loc.regressor_._iter_maps(normalized, batch_size)
    parts, i = [], 0
    while True:
        with sw("network"):
            maps = next(batches, None)
        if maps is None:
            break
        with sw("peaks"):  # as predict: columns per batch, one table at the end
            parts.append(
                localization_columns(
                    maps,
                    loc.threshold,
                    upscaling=loc.upscaling,
                    pixel_size_nm=loc.pixel_size_nm,
                    frame_offset=i * batch_size,
                    min_distance=loc.min_distance,
                    refine="auto",
                )
            )
        i += 1
    with sw("peaks"):  # the table, then photons/background/uncertainty as predict
        table = loc.refine(frames, columns_to_localizations(parts))
    return table


def unfold_to_subpixel(loc):
    """A copy of a folded-head localizer with the paper's unfolded head.

    The folded head is a 3x3 convolution to r^2 channels + pixel shuffle; the
    paper's head is a 3x3 convolution to 32 r^2 channels, pixel shuffle and a
    1x1 convolution to one channel. Putting the folded weights on the r^2
    channels that the shuffle sends to feature map 0 and a 1x1 weight of
    (1, 0, ..., 0) gives exactly the same function at the paper's cost.
    """
    import torch

    from sklearn_smlm.nn import SubPixelCNN

    module = loc.regressor_.module_
    if getattr(module, "upsampling", None) != "folded":
        raise ValueError(f"needs a folded head, got {module.upsampling!r}")
    conv = module.head[0]
    r = module.upscaling
    n_channels = conv.in_channels
    new = SubPixelCNN(
        n_layers=loc.n_layers,
        n_channels=n_channels,
        upscaling=r,
        upsampling="subpixel",
        dropout=loc.dropout,
    )
    new.features.load_state_dict(module.features.state_dict())
    with torch.no_grad():
        up = new.upsample[0]
        up.weight.zero_()
        up.bias.zero_()
        up.weight[: r * r] = conv.weight
        up.bias[: r * r] = conv.bias
        new.head.weight.zero_()
        new.head.weight[0, 0] = 1.0
        new.head.bias.zero_()
    sub = copy.deepcopy(loc)
    sub.regressor_.module_ = new.to(memory_format=torch.channels_last).eval()
    return sub


def get_model(args, settings):
    """The trained model of the speed and parity sections, and its name."""
    from sklearn_smlm import DistanceTransformLocalizer

    if args.model:
        return DistanceTransformLocalizer.load(args.model, device="cpu"), args.model
    if not args.smoke:
        try:
            return (
                DistanceTransformLocalizer.pretrained(device="cpu"),
                "pretrained 'default'",
            )
        except ValueError:
            pass
    loc, info = C.train_model(
        args,
        settings,
        key="bt_hd_2013",
        simulator_params=C.preset("bt_hd_2013"),
        n_frames=settings["n_train_2013"],
    )
    return loc, f"trained here ({info['key']})"


# ------------------------------------------------------------------ speed
def section_speed(args, settings, conditions):
    import torch

    loc, model_name = get_model(args, settings)
    X, _ = C.test_frames(
        args, settings, C.preset("bt_hd_2013"), settings["n_speed"], 7000
    )
    sub = unfold_to_subpixel(loc)
    C.set_precision(loc, "fp32")
    C.set_precision(sub, "fp32")
    diff = np.abs(loc.predict_maps(X[:8]) - sub.predict_maps(X[:8])).max()
    C.log(f"  folded vs unfolded head: max |map difference| {diff:.2e}")

    threads_before = torch.get_num_threads()
    rows = []
    configs = []
    for threads in (1, 2):
        for precision in ("fp32", "bf16"):
            for bs in settings["batch_sizes"]:
                configs.append(("folded", threads, precision, bs))
            mid = settings["batch_sizes"][len(settings["batch_sizes"]) // 2]
            configs.append(("subpixel", threads, precision, mid))
    for head, threads, precision, bs in configs:
        torch.set_num_threads(threads)
        model = loc if head == "folded" else sub
        C.set_precision(model, precision)
        staged_predict(model, X[: min(len(X), 2 * bs)], bs, C.Stopwatch())  # warm
        best = None
        repeats = settings["repeats"] if head == "folded" else 1
        # The unfolded head is ~6x slower: fewer frames keep the run short.
        Xh = X if head == "folded" else X[: max(2 * bs, len(X) // 4)]
        for _ in range(repeats):
            sw = C.Stopwatch()
            t0 = time.perf_counter()
            table = staged_predict(model, Xh, bs, sw)
            total = time.perf_counter() - t0
            if best is None or total < best[0]:
                best = (total, dict(sw.seconds), len(table))
        total, stages, n_locs = best
        e2e = np.nan
        if head == "folded":
            e2e, _ = C.best_of(
                lambda m=model, b=bs: m.predict(X, batch_size=b), repeats
            )
        n = len(Xh)
        rows.append(
            {
                "head": head,
                "frames": n,
                "threads": threads,
                "precision": precision,
                "batch_size": bs,
                "frames_per_s": C.fmt(n / total, 1),
                "predict_frames_per_s": C.fmt(n / e2e, 1) if np.isfinite(e2e) else "",
                "normalize_ms_per_frame": C.fmt(1e3 * stages["normalize"] / n, 3),
                "network_ms_per_frame": C.fmt(1e3 * stages["network"] / n, 3),
                "peaks_ms_per_frame": C.fmt(1e3 * stages["peaks"] / n, 3),
                "locs_per_frame": C.fmt(n_locs / n, 1),
                "target_300_fps": "yes" if n / total >= 300 else "no",
            }
        )
        C.log("  ", rows[-1])
    torch.set_num_threads(threads_before)
    table = pd.DataFrame(rows)
    best = table[table["head"] == "folded"]["frames_per_s"].max()
    notes = (
        f"Model: {model_name}; {len(X)} simulated 64x64 frames of the bt_hd_2013 "
        "preset (about 225 emitters per frame), float32 arrays in memory. "
        "`frames_per_s`: the whole path (normalize + network + peak extraction + "
        "table), best of the repeats, timed stage by stage; "
        "`predict_frames_per_s`: the same through `predict()`. The unfolded "
        "'subpixel' head is the paper's layer with weights set so that it "
        f"computes the folded head's function (max |map difference| {diff:.2e}). "
        f"Best folded: {best:.0f} frames/s, {best / 300:.2f}x the 300 frames/s "
        f"target and {best / C.PAPER_FRAMES_PER_S:.0f}x the paper's 500 frames "
        "in 90 s (published, which included file I/O)."
    )
    return C.write_section(
        args.out,
        "localizer_speed",
        "DistanceTransformLocalizer prediction speed",
        table,
        conditions=conditions,
        notes=notes,
    )


# ----------------------------------------------------------------- parity
def section_parity(args, settings, conditions):
    from sklearn_smlm.metrics import localization_metrics

    loc, model_name = get_model(args, settings)
    rows = []
    for preset in ("bt_hd_2013", "low_density"):
        X, y = C.test_frames(
            args, settings, C.preset(preset), settings["n_test"] // 2, 8000
        )
        out = {}
        for precision in ("fp32", "bf16"):
            C.set_precision(loc, precision)
            t0 = time.perf_counter()
            maps = loc.predict_maps(X)
            table = loc.predict(X)
            seconds = time.perf_counter() - t0
            out[precision] = (maps, table, seconds)
        diff = np.abs(out["fp32"][0] - out["bf16"][0])
        for precision, (_, table, seconds) in out.items():
            m = localization_metrics(y, table, tolerance_nm=250.0)
            rows.append(
                {
                    "frames": f"{preset} ({len(X)} simulated)",
                    "precision": precision,
                    "true_per_frame": C.fmt(sum(map(len, y)) / len(X), 1),
                    "detections": len(table),
                    "jaccard_250nm": C.fmt(m["jaccard"], 4),
                    "rmse_nm": C.fmt(m["rmse_nm"], 2),
                    "precision_250nm": C.fmt(m["precision"], 4),
                    "recall_250nm": C.fmt(m["recall"], 4),
                    "max_abs_map_diff": C.fmt(float(diff.max()), 3),
                    "max_diff_over_peak": C.fmt(float(diff.max()) / np.expm1(7.0), 5),
                    "seconds_maps_plus_predict": C.fmt(seconds, 2),
                }
            )
            C.log("  ", rows[-1])
    C.set_precision(loc, "fp32")
    table = pd.DataFrame(rows)
    notes = (
        f"Model: {model_name}. The same frames and weights in both precisions; "
        "bf16 autocast covers the feature layers, the output layer and the map "
        "stay float32. Hungarian matching at 250 nm. The map difference is on "
        "the paper's scale (peak exp(7) - 1 = 1096)."
    )
    return C.write_section(
        args.out,
        "localizer_parity",
        "bf16 against fp32 on the same model",
        table,
        conditions=conditions,
        notes=notes,
    )


# --------------------------------------------------------------- training
def evaluate_on_bt_hd(loc, frames, truth, thresholds_val=None):
    """JI/RMSE on bt_hd_recreated at the model's threshold (and a chosen one)."""
    t0 = time.perf_counter()
    table = loc.predict(frames)
    seconds = time.perf_counter() - t0
    sweep, at250 = C.evaluate(truth, table)
    return sweep, at250, seconds


def section_training(args, settings, conditions):
    from sklearn_smlm import DistanceTransformLocalizer

    frames, truth, data_name = C.table1_frames(args, settings)
    Xv, yv = C.test_frames(
        args, settings, C.preset("bt_hd_2013"), settings["n_valid"], 6000
    )
    models = []
    if args.model:
        loc = DistanceTransformLocalizer.load(args.model, device="cpu")
        models.append((f"saved model {args.model}", loc, {}))
    else:
        for dropout in (0.0, args.dropout):
            loc, info = C.train_model(
                args,
                settings,
                key="bt_hd_2013",
                simulator_params=C.preset("bt_hd_2013"),
                n_frames=settings["n_train_2013"],
                dropout=dropout,
            )
            name = "CNN, dropout" if dropout else "CNN, no dropout"
            models.append((f"{name} ({dropout:g})", loc, info))
    rows, sweeps = [], {}
    for name, loc, info in models:
        paper_threshold = loc.threshold
        chosen, scores = C.choose_threshold(
            loc, Xv, yv, [100, 150, 200, 250, 300, 400, 500, 600]
        )
        for label, threshold in (("model", paper_threshold), ("sim-val", chosen)):
            loc.set_params(threshold=float(threshold))
            sweep, m, seconds = evaluate_on_bt_hd(loc, frames, truth)
            key = f"{name}, threshold {threshold:g} ({label})"
            sweeps[key] = sweep
            rows.append(
                {
                    "model": name,
                    "threshold": f"{threshold:g} ({label})",
                    "train_frames": info.get("n_frames", ""),
                    "epochs": info.get("n_epochs", ""),
                    "best_epoch": info.get("best_epoch", ""),
                    "min_to_best_valid": C.fmt(
                        info.get("seconds_to_best", np.nan) / 60, 2
                    ),
                    "min_all_epochs": C.fmt(
                        info.get("seconds_total_epochs", np.nan) / 60, 2
                    ),
                    "under_10_min": (
                        "yes" if info.get("seconds_to_best", np.inf) < 600 else "no"
                    )
                    if info
                    else "",
                    "jaccard_250nm": C.fmt(m["jaccard"], 4),
                    "rmse_nm": C.fmt(m["rmse_nm"], 2),
                    "recall": C.fmt(m["recall"], 4),
                    "precision": C.fmt(m["precision"], 4),
                    "eval_frames_per_s": C.fmt(len(frames) / seconds, 1),
                    "cached": "yes" if info.get("from_cache") else "no",
                }
            )
            C.log("  ", rows[-1])
        loc.set_params(threshold=paper_threshold)
    table = pd.DataFrame(rows)
    ref = pd.DataFrame(
        [
            {"method": f"{m} (paper, published)", "jaccard_250nm": ji, "rmse_nm": r}
            for m, ji, r in C.PAPER["table1"]
        ]
    )
    C.plot_curves(
        sweeps,
        args.out / "localizer_training_curves.png",
        f"Trained on simulated bt_hd_2013 frames, evaluated on {data_name}",
    )
    notes = (
        f"Training: {settings['n_train_2013']} simulated frames of the "
        "bt_hd_2013 preset (uniform emitters), 10 % held out for the validation "
        f"loss, at most {settings['max_epochs']} epochs (early stopping, patience "
        "8, best epoch's weights kept); time to best = sum of the epoch "
        "durations up to the epoch of the lowest validation loss (training "
        "only, without simulation and target encoding before the first epoch). "
        f"Evaluation on {data_name} ({len(frames)} frames), Hungarian matching at "
        "250 nm. Thresholds: the model's own (the paper's 300) and the best on "
        f"{len(Xv)} fresh simulated bt_hd_2013 frames (never on the evaluation "
        "data)."
    )
    return C.write_section(
        args.out,
        "localizer_training",
        "Training time and accuracy (paper's 2013 setting)",
        table,
        conditions=conditions,
        notes=notes,
        extra_md="Reference, the paper's published Table I (not measured here):\n\n"
        + ref.to_markdown(index=False),
    )


def main(argv=None):
    parser = C.make_parser(__doc__, SECTIONS)
    parser.add_argument(
        "--model", default=None, help="evaluate/time this saved model, no training"
    )
    parser.add_argument(
        "--dropout", type=float, default=0.2, help="dropout of the dropout variant"
    )
    args = C.finish_args(parser.parse_args(argv), SECTIONS)
    settings = C.run_settings(args)
    conditions = C.Conditions(argv)
    parts = []
    for name in SECTIONS:
        if name in args.sections:
            C.log(f"== {name}")
            t0 = time.perf_counter()
            parts.append(globals()[f"section_{name}"](args, settings, conditions))
            C.log(f"== {name} done in {(time.perf_counter() - t0) / 60:.1f} min")
    conditions.close()
    C.log(conditions.markdown())
    return parts


if __name__ == "__main__":
    main()
