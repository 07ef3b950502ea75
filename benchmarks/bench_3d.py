"""Astigmatic 3D localization on simulated 2016-challenge-like sets, and z precision.

Sections:

- ``presets``: the astigmatic presets ``mt0_n1_as_2016``, ``mt0_n2_as_2016``
  (high density, high / low SNR) and ``low_density_as``, localized by
  :class:`AstigmaticFitLocalizer` with the true PSF curves and with a
  calibration measured on a simulated bead z-stack of the same PSF
  (``AstigmaticCalibration.fit``, the user's path). 2016 challenge rules:
  250 nm lateral and 500 nm axial tolerance, 300 nm border excluded;
  Hungarian matching. Jaccard index, recall, precision, lateral and axial
  RMSE, lateral and axial efficiency, frames per second.
- ``precision``: on ``low_density_as``, the axial (and lateral) RMSE of the
  matched emitters against the Cramer-Rao bound of an isolated emitter with
  the true photons, background and depth (11-pixel box, EMCCD excess noise
  2), over the whole calibrated range, per depth bin and per photon tertile.

Picasso 3D (``--picasso-python``, an interpreter with picassosr): the same
frames through its current API, ``localize.localize_frames`` (``gausslq``,
numba threads = ours) then ``zfit.zfit`` with a Picasso calibration written
from the same curves (:meth:`AstigmaticCalibration.to_picasso`, widths as
its point-sampled Gaussian fit measures them), box and minimum net gradient
chosen by the best Jaccard index on the first third of the frames; frames/s
of the 2D localization plus the z fit. Without the interpreter the table
says "not run".

Run ``python benchmarks/bench_3d.py --picasso-python /tmp/picasso_venv/bin/python``
(writes benchmarks/results/3d.md), ``--quick`` for a short run
(benchmarks/results/quick/), ``--smoke`` to test.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

PRESET_NAMES = ("mt0_n1_as_2016", "mt0_n2_as_2016", "low_density_as")
RULES = dict(tolerance_nm=250.0, axial_tolerance_nm=500.0, matching="hungarian")
BORDER_NM = 300.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="frames per set")
    parser.add_argument(
        "--precision-frames",
        type=int,
        default=None,
        help="frames of the precision section (default: twice --frames)",
    )
    parser.add_argument("--quick", action="store_true", help="100 frames per set")
    parser.add_argument("--smoke", action="store_true", help="tiny run, to test")
    parser.add_argument("--only", default="presets,precision")
    parser.add_argument("--out", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--picasso-python",
        default=None,
        help="python of a venv with picassosr, for the Picasso 3D rows",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="threads of both methods (numba, BLAS)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.quick = True
    if args.frames is None:
        args.frames = 8 if args.smoke else (100 if args.quick else 300)
    if args.out is None:
        sub = "smoke" if args.smoke else ("quick" if args.quick else "")
        args.out = C.RESULTS / sub if sub else C.RESULTS
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    args.sections = [s for s in args.only.split(",") if s]
    return args


def preset_calibration(name):
    from sklearn_smlm.calibration import AstigmaticCalibration
    from sklearn_smlm.simulation import PRESETS

    p = PRESETS[name]
    return AstigmaticCalibration.from_parameters(
        **p["calibration"], z_range_nm=p["z_range_nm"]
    )


def bead_calibration(true, seed, smoke=False):
    """The user's path: a simulated bead stack of the true PSF, then fit."""
    from sklearn_smlm.calibration import AstigmaticCalibration
    from sklearn_smlm.simulation import simulate_bead_stack

    step = 50.0 if smoke else 10.0
    stack, _ = simulate_bead_stack(
        true, n_beads=6, z_step_nm=step, random_state=7000 + seed
    )
    return AstigmaticCalibration(z_step_nm=step).fit(stack)


def localizer(name, calibration):
    from sklearn_smlm.fitting import AstigmaticFitLocalizer
    from sklearn_smlm.simulation import PRESETS

    p = PRESETS[name]
    return AstigmaticFitLocalizer(
        calibration,
        pixel_size_nm=p["pixel_size_nm"],
        baseline_adu=p["baseline_adu"],
        e_per_adu=p["e_per_adu"],
        em_gain=p["em_gain"],
        quantum_efficiency=p["quantum_efficiency"],
    ).fit()


def simulate(name, n_frames, seed, smoke):
    from sklearn_smlm.simulation import PAFPSimulator

    extra = {"frame_shape": (24, 24)} if smoke else {}
    sim = PAFPSimulator.from_preset(name, random_state=9300 + seed, **extra)
    return sim.simulate(n_frames, return_table=True)


PICASSO_3D = r"""
import json, sys, time
real_stdout, sys.stdout = sys.stdout, sys.stderr  # Picasso prints notes
import numpy as np, numba, yaml
from picasso import localize, zfit
try:
    from picasso import __version__ as version
except ImportError:
    version = "?"
req = json.loads(sys.argv[1])
movie = np.ascontiguousarray(np.load(req["frames"]))
with open(req["calibration"], encoding="utf-8") as handle:
    calibration = yaml.safe_load(handle)
threads = int(req["threads"])
numba.set_num_threads(threads)
px = float(req["camera"]["Pixelsize"])
out = {"version": version, "runs": []}
for i, (box, g) in enumerate(req["configs"]):
    params = {"Min. Net Gradient": float(g), "Box Size": int(box)}
    kw = dict(camera_info=req["camera"], fitting_method="gausslq",
              threaded=threads > 1)
    info = [{"Frames": len(movie), "Height": movie.shape[1],
             "Width": movie.shape[2]}]
    if i == 0:  # numba compilation / cache load, not timed
        warm = localize.localize_frames(movie[:2], None, params, **kw)
        zfit.zfit(warm, list(info), calibration=dict(calibration), pixelsize=px)
    t0 = time.perf_counter()
    locs = localize.localize_frames(movie, None, params, **kw)
    t1 = time.perf_counter()
    locs, _ = zfit.zfit(locs, list(info), calibration=dict(calibration),
                        pixelsize=px, filter=int(req["filter"]))
    t2 = time.perf_counter()
    # Picasso's pixel centres are at whole numbers: x_nm = (x + 0.5) * px
    out["runs"].append({
        "box": int(box), "min_ng": float(g), "n_2d": int(len(locs)),
        "seconds_2d": t1 - t0, "seconds_z": t2 - t1,
        "frame": locs["frame"].to_numpy().tolist(),
        "x_nm": ((locs["x"].to_numpy() + 0.5) * px).tolist(),
        "y_nm": ((locs["y"].to_numpy() + 0.5) * px).tolist(),
        "z_nm": locs["z"].to_numpy().tolist(),
    })
real_stdout.write(json.dumps(out) + "\n")
"""

# Picasso's box sizes and minimum net gradients tried (astigmatic spots are
# wide: larger boxes than in 2D)
PICASSO_GRID = [(box, g) for box in (7, 9) for g in (500, 1000, 2000, 4000)]


def run_picasso_3d(python, frames, calibration, camera, *, configs, threads, filt=2):
    """Picasso 3D on ``frames``: ``(version, [(box, min_ng, seconds, table)])``.

    Raises ``RuntimeError`` ("not run: ...") when Picasso cannot run.
    """
    import json
    import os
    import subprocess
    import tempfile

    if not python:
        raise RuntimeError("not run: no --picasso-python given")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "frames.npy", np.clip(np.rint(frames), 0, 65535).astype("u2"))
        calibration.to_picasso(
            tmp / "calibration.yaml", pixel_size_nm=camera["Pixelsize"]
        )
        (tmp / "picasso_3d.py").write_text(PICASSO_3D)
        request = {
            "frames": str(tmp / "frames.npy"),
            "calibration": str(tmp / "calibration.yaml"),
            "camera": camera,
            "configs": configs,
            "threads": threads,
            "filter": filt,
        }
        env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS="1")
        try:
            done = subprocess.run(
                [python, str(tmp / "picasso_3d.py"), json.dumps(request)],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp,
                check=False,
            )
        except OSError as exc:
            raise RuntimeError(f"not run: cannot start {python}: {exc}") from None
    if done.returncode != 0 or not done.stdout.strip():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"not run: Picasso failed: {last[:200]}")
    reply = json.loads(done.stdout.strip().splitlines()[-1])
    runs = []
    for r in reply["runs"]:
        table = pd.DataFrame(
            {k: np.asarray(r[k]) for k in ("frame", "x_nm", "y_nm", "z_nm")}
        )
        table["frame"] = table["frame"].astype(np.int64)
        table.attrs["seconds_2d"] = r["seconds_2d"]
        table.attrs["seconds_z"] = r["seconds_z"]
        runs.append((r["box"], r["min_ng"], r["seconds_2d"] + r["seconds_z"], table))
    return reply["version"], runs


def picasso_tuned(name, X, truth, args, **matching):
    """Picasso 3D on a set at its best grid setting: ``(version, run)``.

    ``run`` is ``(box, min_net_gradient, seconds, table)``, the setting with
    the best Jaccard index (``matching`` as in :func:`localization_metrics`)
    on the first third of the frames. Raises RuntimeError when Picasso fails.
    """
    from sklearn_smlm.metrics import localization_metrics
    from sklearn_smlm.simulation import PRESETS

    p = PRESETS[name]
    camera = C.picasso_camera(
        baseline_adu=p["baseline_adu"],
        e_per_adu=p["e_per_adu"],
        em_gain=p["em_gain"],
        qe=p["quantum_efficiency"],
        pixel_size_nm=p["pixel_size_nm"],
    )
    configs = PICASSO_GRID[:2] if args.smoke else PICASSO_GRID
    version, runs = run_picasso_3d(
        args.picasso_python,
        X,
        preset_calibration(name),
        camera,
        configs=configs,
        threads=args.threads,
    )
    n_tune = max(len(X) // 3, 1)
    tune = truth[truth["frame"] < n_tune]

    def jaccard(run):
        table = run[3]
        return localization_metrics(tune, table[table["frame"] < n_tune], **matching)[
            "jaccard"
        ]

    return version, max(runs, key=jaccard)


def picasso_rows(name, X, truth, fov, args):
    """Picasso 3D rows of one set (tuned on the first third of its frames)."""
    from sklearn_smlm.metrics import localization_metrics

    matching = dict(border_nm=BORDER_NM, field_of_view_nm=fov, **RULES)
    try:
        version, (box, g, seconds, table) = picasso_tuned(
            name, X, truth, args, **matching
        )
    except RuntimeError as exc:
        return [{"set": name, "method": "Picasso 3D", "jaccard": str(exc)}]
    m = localization_metrics(truth, table, **matching)
    method = f"Picasso {version} 3D (gausslq + zfit, box {box}, min net gradient {g:g})"
    return [result_row(name, method, X, truth, m, seconds)]


def picasso_precision_setting(name, X, truth, args):
    """``[(label, table)]`` of Picasso 3D on the precision frames, or ``[]``.

    Box and minimum net gradient of the best Jaccard index (3D matching) on
    the first third of the frames.
    """
    if not args.picasso_python:
        return []
    try:
        version, (box, g, _, table) = picasso_tuned(name, X, truth, args, **RULES)
    except RuntimeError as exc:
        C.log("  Picasso:", exc)
        return []
    return [(f"Picasso {version} 3D (box {box}, min net gradient {g:g})", table)]


def result_row(name, method, X, truth, m, seconds):
    """One row of the presets table (also logged): set, method, metrics."""
    row = {
        "set": name,
        "method": method,
        "emitters/frame": C.fmt(len(truth) / len(X), 1),
        "jaccard": C.fmt(m["jaccard"]),
        "recall": C.fmt(m["recall"]),
        "precision": C.fmt(m["precision"]),
        "rmse_lateral_nm": C.fmt(m["rmse_nm"], 1),
        "rmse_z_nm": C.fmt(m["rmse_z_nm"], 1),
        "efficiency_lateral": C.fmt(m["efficiency"], 1),
        "efficiency_axial": C.fmt(m["efficiency_axial"], 1),
        "frames_per_s": C.fmt(len(X) / seconds, 1),
    }
    C.log("  ", row)
    return row


def section_presets(args, conditions):
    from sklearn_smlm.metrics import localization_metrics

    rows = []
    for name in PRESET_NAMES:
        X, truth = simulate(name, args.frames, args.seed, args.smoke)
        true = preset_calibration(name)
        fov = (X.shape[2] * 100.0, X.shape[1] * 100.0)
        beads = bead_calibration(true, args.seed, args.smoke)
        for label, cal, params in (
            ("true curves", true, {}),
            ("bead calibration", beads, {}),
            ("true curves, no deviance filter", true, {"max_deviance_ratio": None}),
        ):
            loc = localizer(name, cal).set_params(**params)
            t0 = time.perf_counter()
            with warnings.catch_warnings(), threadpool_limits(args.threads):
                # the dense sets warn that many fits are dropped: measured here
                warnings.simplefilter("ignore", UserWarning)
                table = loc.predict(X)
            seconds = time.perf_counter() - t0
            m = localization_metrics(
                truth,
                table,
                border_nm=BORDER_NM,
                field_of_view_nm=fov,
                **RULES,
            )
            method = f"AstigmaticFitLocalizer, {label}"
            rows.append(result_row(name, method, X, truth, m, seconds))
        rows += cnn_rows(name, X, truth, fov)
        rows += picasso_rows(name, X, truth, fov, args)
    table = pd.DataFrame(rows)
    notes = (
        f"{args.frames} simulated 64x64 frames per set (seed {9300 + args.seed}), "
        "astigmatic PSF `ASTIGMATIC_2016` over +-750 nm (x in focus at -250 nm, "
        "y at +250 nm, focal depth 450 nm). 2016 challenge rules: lateral "
        "tolerance 250 nm, axial 500 nm, 300 nm border excluded, Hungarian "
        "matching; efficiency E = 100 - sqrt((100 - 100 JI)^2 + alpha^2 RMSE^2), "
        "alpha 1/nm lateral, 0.5/nm axial. 'bead calibration': curves fitted by "
        "AstigmaticCalibration to a simulated stack of 6 beads, 10 nm steps. "
        "'no deviance filter': max_deviance_ratio=None keeps the poor fits "
        "(the default 1.5 drops them; in dense frames that is most of them). "
        f"Speed: AstigmaticFitLocalizer.predict on the in-memory stack, one "
        f"process (numpy, {args.threads} BLAS threads); Picasso: "
        f"localize.localize_frames (gausslq, numba {args.threads} threads) then "
        "zfit.zfit (its default filter 2: fits farther than 2 RMS from the "
        "calibration curve dropped) with the curves written by "
        "AstigmaticCalibration.to_picasso (point-sampled widths), box and minimum "
        "net gradient of the best Jaccard index on the first third of the frames "
        f"(tried: {PICASSO_GRID}), frames/s of localize_frames + zfit."
    )
    return C.write_section(
        args.out,
        "3d_presets",
        "Astigmatic 3D on simulated 2016-like sets",
        table,
        conditions=conditions,
        notes=notes,
    )


def z_crlb_nm(
    truth, calibration, *, box=11, excess_noise=2.0, qe=1.0, frame_shape=None
):
    """Axial and lateral CRLB of an isolated emitter with the true parameters.

    Without ``frame_shape`` the emitter sits at the centre of its box; with
    it, in the box the localizer cuts around it (centred on its pixel,
    shifted inwards at the frame's border), so that an emitter near the
    border has the bound of the pixels that exist.
    """
    from sklearn_smlm.fitting import astigmatic_model, crlb

    c = (box - 1) / 2.0
    bx = np.full(len(truth), c)
    by = np.full(len(truth), c)
    if frame_shape is not None:
        h, w = frame_shape
        px_x = truth["x_nm"].to_numpy() / 100.0 - 0.5
        px_y = truth["y_nm"].to_numpy() / 100.0 - 0.5
        bx = px_x - np.clip(np.rint(px_x).astype(int) - box // 2, 0, w - box)
        by = px_y - np.clip(np.rint(px_y).astype(int) - box // 2, 0, h - box)
    params = np.column_stack(
        [
            bx,
            by,
            truth["photons"].to_numpy() * qe,
            truth["background"].to_numpy() * qe,
            truth["z_nm"].to_numpy(),
        ]
    )
    mu, jac = astigmatic_model(
        params,
        box,
        lambda z: calibration.widths(z, derivative=True),
        pixel_size_nm=100.0,
        jacobian=True,
    )
    var = crlb(mu, jac, excess_noise)
    return np.sqrt(var[:, 4]), np.sqrt(var[:, 0] + var[:, 1]) * 100.0


def section_precision(args, conditions):
    from sklearn_smlm.metrics import match_localizations
    from sklearn_smlm.simulation import PRESETS

    name = "low_density_as"
    n_frames = args.precision_frames or 2 * args.frames
    X, truth = simulate(name, n_frames, args.seed + 1, args.smoke)
    cal = preset_calibration(name)
    qe = PRESETS[name]["quantum_efficiency"]
    z_bound, xy_bound = z_crlb_nm(truth, cal, qe=qe, frame_shape=X.shape[1:])
    # distance of every true emitter to its nearest neighbour in its frame
    from scipy.spatial import cKDTree

    pts = truth[["x_nm", "y_nm"]].to_numpy()
    pts = np.column_stack([pts, truth["frame"].to_numpy() * 1e7])
    nearest = cKDTree(pts).query(pts, k=2)[0][:, 1]
    rows = []
    for label, params in (
        ("default (max_deviance_ratio 1.5, max_iter 300, joint fits)", {}),
        ("max_deviance_ratio 2.0", {"max_deviance_ratio": 2.0}),
        ("no deviance filter", {"max_deviance_ratio": None}),
        (
            "the previous defaults (max_iter 100, max_deviance_ratio 2.0)",
            {"max_iter": 100, "max_deviance_ratio": 2.0},
        ),
        ("no joint fits, no filter", {"max_emitters": 1, "max_deviance_ratio": None}),
        *picasso_precision_setting(name, X, truth, args),
    ):
        if isinstance(params, pd.DataFrame):  # Picasso's table, already made
            table = params
        else:
            table = localizer(name, cal).set_params(**params).predict(X)
        pairs = match_localizations(truth, table, **RULES)
        ti = pairs["true_index"].to_numpy()
        dz = pairs["dz_nm"].to_numpy()
        d2 = pairs["distance_nm"].to_numpy() ** 2
        z_true = truth["z_nm"].to_numpy()[ti]
        photons = truth["photons"].to_numpy()
        edges = np.quantile(photons, [0, 1 / 3, 2 / 3, 1])
        groups = [("all", "all", np.ones(len(ti), bool))]
        if label.startswith("default"):
            for lo in np.arange(-750.0, 750.0, 250.0):
                sel = (z_true >= lo) & (z_true < lo + 250.0)
                groups.append(("z", f"{lo:.0f} to {lo + 250:.0f}", sel))
            for i in range(3):
                sel = (photons[ti] >= edges[i]) & (photons[ti] <= edges[i + 1])
                groups.append(("photons", f"{edges[i]:.0f}-{edges[i + 1]:.0f}", sel))
            for lo, hi in ((0, 500), (500, 1000), (1000, np.inf)):
                sel = (nearest[ti] >= lo) & (nearest[ti] < hi)
                groups.append(("nearest neighbour", f"{lo}-{hi} nm", sel))
            # the 2016 challenge's scoring leaves out a 300 nm border
            xt, yt = truth["x_nm"].to_numpy()[ti], truth["y_nm"].to_numpy()[ti]
            w_nm, h_nm = X.shape[2] * 100.0, X.shape[1] * 100.0
            edge = np.minimum.reduce([xt, yt, w_nm - xt, h_nm - yt])
            groups.append(("border", f"{BORDER_NM:.0f} nm excluded", edge > BORDER_NM))
        for kind, group, sel in groups:
            if not sel.any():
                continue
            rmse_z = float(np.sqrt(np.mean(dz[sel] ** 2)))
            bound_z = float(np.sqrt(np.mean(z_bound[ti[sel]] ** 2)))
            rmse_xy = float(np.sqrt(np.mean(d2[sel])))
            bound_xy = float(np.sqrt(np.mean(xy_bound[ti[sel]] ** 2)))
            rows.append(
                {
                    "setting": label,
                    "group": f"{kind}: {group}" if kind != "all" else "all",
                    "matched": int(sel.sum()),
                    "recall": C.fmt(len(ti) / len(truth), 3) if kind == "all" else "",
                    "rmse_z_nm": C.fmt(rmse_z, 1),
                    "crlb_z_nm": C.fmt(bound_z, 1),
                    "z_rmse_over_crlb": C.fmt(rmse_z / bound_z, 2),
                    "median_abs_dz_nm": C.fmt(float(np.median(np.abs(dz[sel]))), 1),
                    "rmse_lateral_nm": C.fmt(rmse_xy, 1),
                    "crlb_lateral_nm": C.fmt(bound_xy, 1),
                    "lateral_over_crlb": C.fmt(rmse_xy / bound_xy, 2),
                }
            )
            C.log("  ", rows[-1])
    table = pd.DataFrame(rows)
    notes = (
        f"{len(X)} simulated frames of `low_density_as` ({len(truth) / len(X):.1f} "
        "emitters per frame, 0.3 per um^2, log-normal photons around 1500, "
        "background 20 photons/px, EMCCD excess noise 2, z uniform in +-750 nm = "
        "the calibrated range). Per matched emitter (Hungarian, 250 nm / 500 nm), "
        "the CRLB of an isolated emitter with its true photons, background and "
        "depth in the 11-pixel box the localizer cuts around it (shifted inwards "
        "at the frame's border: the bound of the pixels that exist; the previous "
        "run placed every emitter at the box centre, a bound 6 % lower over all "
        "emitters); ratios are RMSE / RMS of the bound over the same emitters (1 "
        "is the best an unbiased estimator can do). 'nearest neighbour': "
        "distance to the nearest other true emitter of the frame. Picasso "
        "(with --picasso-python): localize_frames (gausslq) + zfit with the "
        "calibration written by to_picasso, its box and minimum net gradient "
        "of the best Jaccard index on the first third of the frames. The goal "
        "of issue 19 is z_rmse_over_crlb <= 1.3 over the calibrated range."
    )
    return C.write_section(
        args.out,
        "3d_precision",
        "Astigmatic 3D: z precision against the Cramer-Rao bound (low density)",
        table,
        conditions=conditions,
        notes=notes,
    )


CNN_MODEL = "astig_3d"


def cnn_rows(name, X, truth, fov):
    """CNN 3D row of one set: the shipped ``astig_3d`` model, its own threshold."""
    import torch

    from sklearn_smlm import DistanceTransformLocalizer
    from sklearn_smlm.localizer import pretrained_names
    from sklearn_smlm.metrics import localization_metrics

    if Path(CNN_MODEL).is_file():  # a model file instead of the shipped one
        loc = DistanceTransformLocalizer.load(CNN_MODEL, device="cpu")
    elif CNN_MODEL in pretrained_names():
        loc = DistanceTransformLocalizer.pretrained(CNN_MODEL, device="cpu")
    else:
        return [{"set": name, "method": "CNN 3D", "jaccard": "not run: no model"}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loc.predict(X[:2])  # warm-up: first-call costs out of the timing
        t0 = time.perf_counter()
        table = loc.predict(X)
        seconds = time.perf_counter() - t0
    m = localization_metrics(
        truth, table, border_nm=BORDER_NM, field_of_view_nm=fov, **RULES
    )
    method = (
        f"CNN 3D (pretrained {CNN_MODEL!r}, threshold {loc.threshold:g}, "
        f"{torch.get_num_threads()} torch threads)"
    )
    return [result_row(name, method, X, truth, m, seconds)]


def section_cnn(args, conditions):
    """The CNN 3D alone on the presets section's frames (same seeds)."""
    rows = []
    for name in PRESET_NAMES:
        X, truth = simulate(name, args.frames, args.seed, args.smoke)
        fov = (X.shape[2] * 100.0, X.shape[1] * 100.0)
        rows += cnn_rows(name, X, truth, fov)
    notes = (
        f"The presets section's frames ({args.frames} per set, seed "
        f"{9300 + args.seed}) and rules, localized by the shipped 3D CNN "
        f"{CNN_MODEL!r} (trained only on simulated astigmatic frames by "
        "scripts/train_3d.py; threshold and checkpoint chosen on frames of other "
        "seeds). Speed: predict on the in-memory stack after a 2-frame warm-up, "
        "CPU, bf16 where supported."
    )
    return C.write_section(
        args.out,
        "3d_cnn",
        "CNN 3D on simulated 2016-like astigmatic sets",
        pd.DataFrame(rows),
        conditions=conditions,
        notes=notes,
    )


def main(argv=None):
    args = parse_args(argv)
    conditions = C.Conditions(argv)
    parts = []
    if "presets" in args.sections:
        parts.append(section_presets(args, conditions))
    if "precision" in args.sections:
        parts.append(section_precision(args, conditions))
    if "cnn" in args.sections:
        parts.append(section_cnn(args, conditions))
    conditions.close()
    text = "# Astigmatic 3D benchmark\n\n" + conditions.markdown() + "\n"
    for part in parts:
        # each section's own heading and table, without its repeated conditions
        lines = part.splitlines()
        body = [ln for ln in lines if not ln.startswith("- ")]
        text += "\n".join(body).replace("# ", "## ", 1) + "\n\n"
    if "presets" in args.sections:  # --only cnn leaves the full report alone
        (args.out / "3d.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
