"""Train the pretrained 3D model shipped as ``sklearn_smlm/models/astig_3d.pt``.

Only simulated data are used: :class:`~sklearn_smlm.PAFPSimulator` frames of
64 x 64 pixels (100 nm) with the astigmatic PSF of the 2016-like presets
(:data:`sklearn_smlm.simulation.ASTIGMATIC_2016`, +-750 nm), EMCCD cameras of
many gains and offsets, and densities from sparse to the high-density presets.
Every step draws fresh frames (no frame is seen twice). The network is the
default 2D model's (9 layers of 32 channels, folded head, r = 7) with a depth
head (``SubPixelCNN(predict_z=True)``); its feature layers and map head start
from ``sklearn_smlm/models/default.pt``. The loss is the map's MSE (as in 2D)
plus ``--z-weight`` times the z map's squared error weighted by the
distance-transform target (z scaled to [-1, 1] over the axial range).

Two stages, run from the repository root::

    # train until a wall-clock time, checkpoints every 10 min in --out
    OMP_NUM_THREADS=1 nice -n 15 python scripts/train_3d.py train --until 02:58
    # choose the checkpoint and threshold on fresh simulated frames, save
    python scripts/train_3d.py select

The selection uses frames of other seeds than training (never the
benchmark's evaluation sets) and writes the model file with its calibration,
axial range and training conditions.
"""

import argparse
import datetime as dt
import json
import math
import time
from pathlib import Path

import numpy as np

from sklearn_smlm import PAFPSimulator
from sklearn_smlm.simulation import PRESETS

ASTIGMATIC_2016 = PRESETS["low_density_as"]["calibration"]

Z_RANGE_NM = (-750.0, 750.0)
CAMERA = dict(
    camera="emccd",
    em_gain=(50.0, 300.0),
    baseline_adu=(50.0, 500.0),
    e_per_adu=45.0,
    read_noise_e=74.4,
    quantum_efficiency=0.9,
)
COMMON = dict(
    frame_shape=(64, 64),
    pixel_size_nm=100.0,
    z_range_nm=Z_RANGE_NM,
    calibration=ASTIGMATIC_2016,
    photon_distribution="lognormal",
    **CAMERA,
)
# name -> (share of the frames, simulator parameters); the presets
# low_density_as (0.3 / um^2, 1500 photons, bg 20), mt0_n1_as_2016 (2 / um^2,
# 3000 photons, bg 20) and mt0_n2_as_2016 (2 / um^2, 1000 photons, bg 100)
# lie inside these ranges.
CONDITIONS = {
    "sparse": (
        0.35,
        dict(
            density_per_um2=(0.1, 1.0),
            photons=(500.0, 5000.0),
            photon_spread=0.5,
            background_photons=(5.0, 150.0),
            **COMMON,
        ),
    ),
    "medium": (
        0.35,
        dict(
            density_per_um2=(1.0, 2.5),
            photons=(500.0, 5000.0),
            photon_spread=0.5,
            background_photons=(5.0, 150.0),
            **COMMON,
        ),
    ),
    "dense": (
        0.3,
        dict(
            density_per_um2=(2.0, 4.0),
            photons=(700.0, 4000.0),
            photon_spread=0.5,
            background_photons=(10.0, 120.0),
            **COMMON,
        ),
    ),
}
ALPHA, D_MAX, UPSCALING, PIXEL_NM = 7.0, 35.0, 7, 100.0
Z_D_MAX = 21.0


def simulate(n_frames, seed):
    """Frames and (x, y, z) positions of the mixture, shuffled."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_frames, [s for s, _ in CONDITIONS.values()])
    frames, positions = [], []
    for i, ((_, params), n) in enumerate(zip(CONDITIONS.values(), counts, strict=True)):
        if n:
            sim = PAFPSimulator(random_state=seed * 10 + i, **params)
            X, y = sim.simulate(int(n))
            frames.append(X)
            positions += list(y)
    frames = np.concatenate(frames)
    order = rng.permutation(len(frames))
    return frames[order], [positions[i] for i in order]


def targets(positions, frame_shape):
    """Training targets: the map (peak 1), the scaled z and the z weight."""
    from sklearn_smlm._depth import nearest_z_maps, normalize_z
    from sklearn_smlm.encoding import distance_transform_maps

    dt_maps = distance_transform_maps(
        [p[:, :2] for p in positions],
        frame_shape,
        pixel_size_nm=PIXEL_NM,
        upscaling=UPSCALING,
        alpha=ALPHA,
        d_max=D_MAX,
    ) / math.expm1(ALPHA)
    # z within 3 camera pixels of an emitter (the weight beyond is < 0.015)
    z = nearest_z_maps(
        positions,
        frame_shape,
        pixel_size_nm=PIXEL_NM,
        upscaling=UPSCALING,
        d_max=Z_D_MAX,
    )
    weight = np.where(np.isnan(z), 0.0, dt_maps).astype(np.float32)
    z = np.nan_to_num(normalize_z(z, Z_RANGE_NM), nan=0.0)
    return dt_maps.astype(np.float32), z.astype(np.float32), weight


def build_module(init=None):
    """Build the 3D network, its map layers warm-started from a 2D model file."""
    import torch

    from sklearn_smlm.nn import SubPixelCNN

    torch.manual_seed(0)
    module = SubPixelCNN(n_layers=9, n_channels=32, upscaling=UPSCALING, predict_z=True)
    if init is not None:
        payload = torch.load(init, map_location="cpu", weights_only=True)
        state = payload.get("state_dict", payload)
        missing, unexpected = module.load_state_dict(state, strict=False)
        assert not unexpected, unexpected
        print(f"warm start from {init}; new: {sorted(missing)}", flush=True)
    return module.to(memory_format=torch.channels_last)


def normalizer():
    """Return the shipped models' frame normalization (robust, per frame)."""
    from sklearn_smlm import FrameNormalizer

    return FrameNormalizer().fit(np.zeros((1, 2, 2), dtype=np.float32))


def losses(module, x, dt_t, z_t, w_t):
    """Map MSE and weighted z error (as ``sklearn_smlm.nn.DepthMapLoss``)."""
    import torch

    dt_ch, z_ch = module.subpixel_channels_z(x)
    shuffle = torch.nn.functional.pixel_shuffle
    dt_map = shuffle(dt_ch, UPSCALING)[:, 0]
    z_map = shuffle(z_ch, UPSCALING)[:, 0]
    loss_dt = torch.mean((dt_map - dt_t) ** 2)
    loss_z = torch.sum(w_t * (z_map - z_t) ** 2) / w_t.sum().clamp_min(1e-6)
    return loss_dt, loss_z


def to_tensors(frames, positions, norm):
    """Return normalized frames and targets as tensors."""
    import torch

    dt_t, z_t, w_t = targets(positions, frames.shape[1:])
    x = torch.from_numpy(np.ascontiguousarray(norm.transform(frames)))[:, None]
    x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(dt_t), torch.from_numpy(z_t), torch.from_numpy(w_t)


def train(args):
    """Train on fresh simulated frames until ``--until``, with checkpoints."""
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    today = dt.datetime.now(dt.timezone.utc)
    hh, mm = (int(v) for v in args.until.split(":"))
    end = today.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if end <= today:
        end += dt.timedelta(days=1)
    start = time.time()
    budget = end.timestamp() - start
    module = build_module(args.init)
    norm = normalizer()
    opt = torch.optim.Adam(module.parameters(), lr=args.lr)
    vx, vdt, vz, vw = to_tensors(*simulate(args.n_valid, seed=900_001), norm)
    best, step, chunk, last_ckpt = math.inf, 0, 0, time.time()
    log = open(out / "train.log", "a")

    def validate():
        module.eval()
        with torch.no_grad():
            parts = [
                losses(module, *(t[i : i + 16] for t in (vx, vdt, vz, vw)))
                for i in range(0, len(vx), 16)
            ]
        module.train()
        ldt = float(np.mean([float(a) for a, _ in parts]))
        lz = float(np.mean([float(b) for _, b in parts]))
        return ldt, lz

    def checkpoint(tag):
        nonlocal best
        ldt, lz = validate()
        total = ldt + args.z_weight * lz
        state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
        torch.save({"state_dict": state, "step": step}, out / f"ckpt_{step:06d}.pt")
        if total < best:
            best = total
            torch.save({"state_dict": state, "step": step}, out / "best.pt")
        row = dict(
            tag=tag,
            step=step,
            minutes=round((time.time() - start) / 60, 1),
            valid_dt=ldt,
            valid_z=lz,
            valid_z_rmse_nm=math.sqrt(lz) * 750.0,
            best=total == best,
        )
        print(json.dumps(row), file=log, flush=True)

    checkpoint("start")
    running = []
    while time.time() < end.timestamp():
        frames, positions = simulate(args.chunk, seed=1000 + chunk)
        chunk += 1
        tensors = to_tensors(frames, positions, norm)
        for i in range(0, args.passes * len(frames), args.batch_size):
            # later passes: the same frames flipped (x, then y, then both),
            # symmetries that keep the axes and so z
            flip = [(), (-1,), (-2,), (-2, -1)][(i // len(frames)) % 4]
            x, dt_t, z_t, w_t = (t.flip(flip) if flip else t for t in tensors)
            x = x.contiguous(memory_format=torch.channels_last)
            i = i % len(frames)
            frac = min(1.0, (time.time() - start) / budget)
            warm = min(1.0, (step + 1) / 100)
            lr = args.lr_min + 0.5 * (args.lr - args.lr_min) * (
                1 + math.cos(math.pi * frac)
            )
            for g in opt.param_groups:
                g["lr"] = lr * warm
            sl = slice(i, i + args.batch_size)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(args.bf16)):
                ldt, lz = losses(module, x[sl], dt_t[sl], z_t[sl], w_t[sl])
            loss = ldt + args.z_weight * lz
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            running.append((float(ldt.detach()), float(lz.detach())))
            if step % 50 == 0:
                a = np.mean(running, axis=0)
                running = []
                print(
                    json.dumps(
                        dict(
                            step=step,
                            lr=lr,
                            train_dt=a[0],
                            train_z=a[1],
                            minutes=round((time.time() - start) / 60, 1),
                        )
                    ),
                    file=log,
                    flush=True,
                )
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            checkpoint("periodic")
            last_ckpt = time.time()
    checkpoint("final")


def main(argv=None):
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["train", "select"])
    parser.add_argument("--out", default="/tmp/cnn3d")
    parser.add_argument("--init", default="sklearn_smlm/models/default.pt")
    parser.add_argument("--until", default="02:58", help="UTC HH:MM to stop")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--lr-min", type=float, default=2e-5)
    parser.add_argument("--z-weight", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--passes", type=int, default=2, help="per chunk (flipped)")
    parser.add_argument("--bf16", type=int, default=1, help="bf16 autocast")
    parser.add_argument("--n-valid", type=int, default=64)
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0)
    parser.add_argument("--select-frames", type=int, default=100)
    parser.add_argument("--last", type=int, default=3, help="checkpoints compared")
    parser.add_argument("--model", default="sklearn_smlm/models/astig_3d.pt")
    args = parser.parse_args(argv)
    if args.stage == "train":
        train(args)
    else:
        select(args)


#: Selection sets: the benchmark's presets, simulated with other seeds than
#: the benchmark's (9300 + seed) and than training's.
SELECT_PRESETS = ("low_density_as", "mt0_n1_as_2016", "mt0_n2_as_2016")
SELECT_SEED = 777_000
THRESHOLDS = (200.0, 300.0, 400.0, 500.0, 600.0, 700.0)
MIN_FRAME_SNR = 6.0
RULES = dict(
    tolerance_nm=250.0, axial_tolerance_nm=500.0, matching="hungarian", border_nm=300.0
)


def conditions():
    """Return the model file's ``conditions`` entry (see _conditions.py)."""
    from sklearn_smlm.calibration import AstigmaticCalibration

    cal = AstigmaticCalibration.from_parameters(
        **ASTIGMATIC_2016, z_range_nm=Z_RANGE_NM
    )
    z = np.linspace(*Z_RANGE_NM, 301)
    sx, sy = cal.widths(z)
    # what _spot_sigmas measures: sqrt of the mean of the two variances
    sigma_px = np.sqrt(0.5 * (sx**2 + sy**2)) / PIXEL_NM
    densities = [p["density_per_um2"] for _, p in CONDITIONS.values()]
    photons = [p["photons"] for _, p in CONDITIONS.values()]
    backgrounds = [p["background_photons"] for _, p in CONDITIONS.values()]
    return {
        "name": "astig_3d",
        "density_per_um2": [min(d[0] for d in densities), max(d[1] for d in densities)],
        "pixel_size_nm": PIXEL_NM,
        "psf_sigma_px": [
            round(float(sigma_px.min()), 2),
            round(float(sigma_px.max()), 2),
        ],
        "photons": [min(p[0] for p in photons), max(p[1] for p in photons)],
        "background_photons": [
            min(b[0] for b in backgrounds),
            max(b[1] for b in backgrounds),
        ],
        "z_range_nm": list(Z_RANGE_NM),
        "focal_depth_nm": None,
        "calibration": {
            "x": dict(ASTIGMATIC_2016["x"]),
            "y": dict(ASTIGMATIC_2016["y"]),
            "z_range_nm": list(Z_RANGE_NM),
        },
        "cameras": ["emccd"],
        "structures": ["uniform"],
        "summary": "astigmatic 3D frames of the 2016-like PSF (x in focus at -250 nm, "
        "y at +250 nm, +-750 nm), 0.1-4 emitters/um^2 at 100 nm pixels, EMCCD",
    }


def build_localizer(state_dict, threshold):
    """Return a fitted 3D localizer holding ``state_dict``."""
    import torch

    from sklearn_smlm import DistanceTransformLocalizer

    loc = DistanceTransformLocalizer(
        z_range_nm=Z_RANGE_NM,
        threshold=threshold,
        min_frame_snr=MIN_FRAME_SNR,
        max_epochs=1,
        validation_fraction=0,
        random_state=0,
    )
    # one epoch on two frames builds the fitted estimator; the weights are
    # then replaced by the trained ones (and the dummy epoch forgotten)
    frames, positions = simulate(2, seed=5)
    with torch.random.fork_rng(devices=[]):
        loc.fit(frames, positions)
    loc.regressor_.module_.load_state_dict(state_dict)
    loc.regressor_.__dict__["_net"] = None
    loc.regressor_.n_epochs_ = 0
    loc.conditions_ = conditions()
    return loc


def select_sets(n_frames):
    """Simulate the selection frames of the three presets (other seeds)."""
    from sklearn_smlm import PAFPSimulator

    sets = {}
    for i, name in enumerate(SELECT_PRESETS):
        sim = PAFPSimulator.from_preset(name, random_state=SELECT_SEED + i)
        sets[name] = sim.simulate(n_frames, return_table=True)
    return sets


def evaluate(loc, sets, thresholds=None):
    """Metrics per set (and per threshold: one prediction, then score cuts)."""
    import warnings

    from sklearn_smlm.metrics import localization_metrics

    thresholds = [loc.threshold] if thresholds is None else sorted(thresholds)
    rows = []
    for name, (X, truth) in sets.items():
        fov = (X.shape[2] * PIXEL_NM, X.shape[1] * PIXEL_NM)
        loc.set_params(threshold=thresholds[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            table = loc.predict(X)
            seconds = time.perf_counter() - t0
        for threshold in thresholds:
            # peaks above a higher threshold: those whose height passes it
            # (the refined height, within a fraction of a percent of the
            # pixel value that predict tests)
            kept = table[table["score"] > threshold]
            m = localization_metrics(truth, kept, field_of_view_nm=fov, **RULES)
            rows.append(
                dict(
                    set=name,
                    threshold=threshold,
                    jaccard=m["jaccard"],
                    rmse_nm=m["rmse_nm"],
                    rmse_z_nm=m["rmse_z_nm"],
                    efficiency=m["efficiency"],
                    efficiency_axial=m["efficiency_axial"],
                    frames_per_s=len(X) / seconds,
                )
            )
    return rows


def select(args):
    """Choose checkpoint and threshold on fresh frames; save the model file."""
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    sets = select_sets(args.select_frames)
    paths = sorted(out.glob("ckpt_*.pt"))[-args.last :]
    results = []
    for path in paths:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        loc = build_localizer(state, THRESHOLDS[0])
        for row in evaluate(loc, sets, THRESHOLDS):
            row["checkpoint"] = path.name
            results.append(row)
            print(json.dumps(row), flush=True)
    table = pd.DataFrame(results)
    table.to_csv(out / "selection.csv", index=False)
    # threshold and checkpoint: the best mean of lateral and axial efficiency
    # over the three sets
    table["score"] = 0.5 * (table["efficiency"] + table["efficiency_axial"])
    mean = table.groupby(["checkpoint", "threshold"])["score"].mean()
    best_ckpt, best_threshold = mean.idxmax()
    print("chosen", best_ckpt, best_threshold, float(mean.max()), flush=True)
    state = torch.load(out / best_ckpt, map_location="cpu", weights_only=True)
    loc = build_localizer(state["state_dict"], float(best_threshold))
    # the chosen model's own predict at its threshold
    chosen = pd.DataFrame(evaluate(loc, sets))
    print(chosen.to_string(), flush=True)
    loc.training_info_ = {
        "script": "scripts/train_3d.py",
        "simulator": "PAFPSimulator",
        "conditions": {k: [share, p] for k, (share, p) in CONDITIONS.items()},
        "warm_start": args.init,
        "steps": int(state["step"]),
        "batch_size": args.batch_size,
        "z_weight": args.z_weight,
        "checkpoint": best_ckpt,
        "selection": {
            "sets": list(SELECT_PRESETS),
            "seed": SELECT_SEED,
            "frames_per_set": args.select_frames,
            "thresholds": list(THRESHOLDS),
            "rules": RULES,
            "chosen": chosen.to_dict("records"),
        },
    }
    loc.save(args.model)
    print("saved", args.model, flush=True)


if __name__ == "__main__":
    main()
