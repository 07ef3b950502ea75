"""Where the localization error comes from: precision against the Cramer-Rao bound.

Splits the errors of the CNN, the hybrid (CNN + Gaussian refinement) and the
classical ``GaussianFitLocalizer`` on simulated sparse and medium-density
frames by cause: neighbours in the fit box, the frame edge, fit status, free
or fixed PSF width, the background estimate, the detection's offset, the
camera conversion of the refinement; and checks the calibration of the
uncertainty of every CNN localization (z-scores per photon tertile). Three
bounds per matched emitter:

- ``crlb_iso``: an isolated pixel-integrated Gaussian with the emitter's true
  photons, background and width (the bound of benchmarks/results/lowdensity.md);
- ``crlb_frame``: the same, cut by the frame edge (an emitter 0.3 px from the
  edge loses almost half its light);
- ``crlb_ctx``: with the frame edge and the true neighbours fitted jointly
  (emitters whose joint bound is infinite, pairs on top of each other, are
  left out of its mean).

Run from the repository root::

    python benchmarks/diag_precision.py                 # about 5 min on 2 cores
    python benchmarks/diag_precision.py --n-frames 60   # quick look
    python benchmarks/diag_precision.py --picasso-python /tmp/picasso_venv/bin/python

Writes ``benchmarks/results/precision_diagnostic.md`` (``--out``) and prints
the tables.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

CAMERA = {"baseline_adu": 100.0, "e_per_adu": 50.0, "em_gain": 100.0}
DENSE_CAMERAS = {
    "bt_hd_2013": CAMERA,
    "mt0_n1_hd_2016": dict(
        baseline_adu=100.0, e_per_adu=45.0, em_gain=300.0, quantum_efficiency=0.9
    ),
}
#: the refinement as it was before issue 16 (for the before/after rows)
BEFORE = dict(
    box_size=7,
    max_shift_px=1.0,
    max_local_density_per_um2=None,
    split_min_deviance_drop=None,
)


def previous_defaults(fn):
    """Run ``fn`` as the first session left the hybrid.

    Density counted in a 1 um disc, no split (``PREVIOUS``), no refit with a
    fixed width at the frame edge; today's fitter.
    """
    import sklearn_smlm.fitting._localizer as L

    saved = L._DENSITY_RADIUS_NM, L._EDGE_PX
    try:
        L._DENSITY_RADIUS_NM, L._EDGE_PX = 1000.0, 0.0
        return fn()
    finally:
        L._DENSITY_RADIUS_NM, L._EDGE_PX = saved


PREVIOUS = dict(split_min_deviance_drop=None)


def bounds_nm(truth, frame_shape, px=100.0, box=11, excess=2.0, max_emitters=6):
    """Per true emitter: lateral CRLB isolated, cut by the frame, with neighbours."""
    from sklearn_smlm.fitting import crlb, gaussian_model

    h, w = frame_shape
    f = truth["frame"].to_numpy()
    x = truth["x_nm"].to_numpy() / px - 0.5
    y = truth["y_nm"].to_numpy() / px - 0.5
    n = truth["photons"].to_numpy()
    bg = truth["background"].to_numpy()
    s = truth["sigma_nm"].to_numpy() / px
    c = (box - 1) / 2.0
    mu, jac = gaussian_model(
        np.column_stack([np.full_like(x, c), np.full_like(x, c), n, bg, s]),
        box,
        jacobian=True,
    )
    v = crlb(mu, jac, excess)
    iso = np.sqrt(v[:, 0] + v[:, 1]) * px
    r0 = np.clip(np.round(y).astype(int) - box // 2, 0, h - box)
    c0 = np.clip(np.round(x).astype(int) - box // 2, 0, w - box)
    pts = np.column_stack([x, y, f * 1e4])
    near = cKDTree(pts).query_ball_point(pts, r=box, p=np.inf)
    members = []
    for i in range(len(f)):
        o = [
            j
            for j in near[i]
            if j != i
            and -1.5 <= x[j] - c0[i] <= box + 0.5
            and -1.5 <= y[j] - r0[i] <= box + 0.5
        ]
        o = sorted(o, key=lambda j: np.hypot(x[j] - x[i], y[j] - y[i]))
        members.append([i, *o[: max_emitters - 1]])
    k_of = np.array([len(m) for m in members])
    frame_b, ctx = np.empty(len(f)), np.empty(len(f))
    for k in np.unique(k_of):
        idx = np.flatnonzero(k_of == k)
        m = np.array([members[i] for i in idx])
        cols = []
        for e in range(k):
            cols += [x[m[:, e]] - c0[idx], y[m[:, e]] - r0[idx], n[m[:, e]]]
        mu, jac = gaussian_model(
            np.column_stack([*cols, bg[idx], s[idx]]), box, k=int(k), jacobian=True
        )
        v = crlb(mu, jac, excess)
        ctx[idx] = np.sqrt(v[:, 0] + v[:, 1]) * px
        mu, jac = gaussian_model(
            np.column_stack(
                [x[idx] - c0[idx], y[idx] - r0[idx], n[idx], bg[idx], s[idx]]
            ),
            box,
            jacobian=True,
        )
        v = crlb(mu, jac, excess)
        frame_b[idx] = np.sqrt(v[:, 0] + v[:, 1]) * px
    return iso, frame_b, ctx


def context(truth, frame_shape, px=100.0):
    """Nearest true neighbour (px) and distance to the frame edge (px)."""
    x = truth["x_nm"].to_numpy() / px
    y = truth["y_nm"].to_numpy() / px
    pts = np.column_stack([x, y, truth["frame"].to_numpy() * 1e4])
    nn = cKDTree(pts).query(pts, k=2)[0][:, 1]
    h, w = frame_shape
    edge = np.minimum.reduce([x, y, w - x, h - y])
    return nn, edge


def categories(nn, edge):
    iso = (nn >= 5) & (edge >= 3)
    return {
        "all": np.ones(len(nn), bool),
        "isolated (neighbour >= 5 px, edge >= 3 px)": iso,
        "neighbour < 2.2 px (2 sigma)": nn < 2.2,
        "neighbour 2.2-3.5 px (in a 7 px box)": (nn >= 2.2) & (nn < 3.5),
        "neighbour 3.5-5 px (at the box edge)": (nn >= 3.5) & (nn < 5),
        "frame edge < 1.5 px": edge < 1.5,
        "frame edge 1.5-3 px": (edge >= 1.5) & (edge < 3),
    }


def rmse(d2, sel):
    return float(np.sqrt(d2[sel].mean())) if sel.any() else np.nan


def split_rows(name, truth, table, b, cats):
    """Rows per category: RMSE, the three bounds, share of the squared error."""
    from sklearn_smlm.metrics import match_localizations

    pairs = match_localizations(
        truth[["frame", "x_nm", "y_nm"]], table, tolerance_nm=250.0
    )
    ti = pairs["true_index"].to_numpy()
    d2 = pairs["distance_nm"].to_numpy() ** 2

    def bound(values, sel):
        # a pair on top of each other has no finite joint bound: left out
        v = values[ti[sel]]
        v = v[np.isfinite(v)]
        return float(np.sqrt((v**2).mean())) if len(v) else np.nan

    rows = []
    for label, mask in cats.items():
        sel = mask[ti]
        err = rmse(d2, sel)
        rows.append(
            {
                "method": name,
                "emitters": label,
                "matched": int(sel.sum()),
                "rmse_nm": C.fmt(err, 2),
                "crlb_iso_nm": C.fmt(bound(b[0], sel), 2),
                "rmse/crlb_iso": C.fmt(err / bound(b[0], sel), 3),
                "rmse/crlb_frame": C.fmt(err / bound(b[1], sel), 3),
                "rmse/crlb_ctx": C.fmt(err / bound(b[2], sel), 3),
                "share_sq_err": C.fmt(float(d2[sel].sum() / d2.sum()), 3),
            }
        )
    return rows, pairs


def status_rows(name, table, pairs, cnn, truth):
    """Per fit status: RMSE of the refined and of the network's position."""
    ti = pairs["true_index"].to_numpy()
    pi = pairs["pred_index"].to_numpy()
    d2 = pairs["distance_nm"].to_numpy() ** 2
    tx, ty = truth["x_nm"].to_numpy()[ti], truth["y_nm"].to_numpy()[ti]
    # rows added by a split follow their detection: map every row of the
    # refined table to the network's detection it came from
    split = table["fit_status"].to_numpy() == "split"
    detection = np.cumsum(~split) - 1
    c2 = (cnn["x_nm"].to_numpy()[detection[pi]] - tx) ** 2 + (
        cnn["y_nm"].to_numpy()[detection[pi]] - ty
    ) ** 2
    status = table["fit_status"].to_numpy()[pi]
    rows = []
    for s in pd.unique(status):
        sel = status == s
        rows.append(
            {
                "method": name,
                "fit_status": s,
                "matched": int(sel.sum()),
                "rmse_nm": C.fmt(rmse(d2, sel), 2),
                "rmse_cnn_nm": C.fmt(rmse(c2, sel), 2),
                "share_sq_err": C.fmt(float(d2[sel].sum() / d2.sum()), 3),
            }
        )
    # the detection's own error: how far off the box centre the fit starts
    err_det = np.sqrt(c2) / 100.0
    for lo, hi in ((0, 0.25), (0.25, 0.5), (0.5, 3.0)):
        sel = (err_det >= lo) & (err_det < hi)
        rows.append(
            {
                "method": name,
                "fit_status": f"detection {lo}-{hi} px from the truth",
                "matched": int(sel.sum()),
                "rmse_nm": C.fmt(rmse(d2, sel), 2),
                "rmse_cnn_nm": C.fmt(rmse(c2, sel), 2),
                "share_sq_err": C.fmt(float(d2[sel].sum() / d2.sum()), 3),
            }
        )
    return rows


def zscore_rows(name, truth, table, pairs):
    """SD of the per-axis z-scores (error / uncertainty_nm) per photon tertile."""
    ti = pairs["true_index"].to_numpy()
    pi = pairs["pred_index"].to_numpy()
    u = table["uncertainty_nm"].to_numpy()[pi]
    zx = (table["x_nm"].to_numpy()[pi] - truth["x_nm"].to_numpy()[ti]) / u
    zy = (table["y_nm"].to_numpy()[pi] - truth["y_nm"].to_numpy()[ti]) / u
    photons = truth["photons"].to_numpy()[ti]
    edges = np.quantile(photons, [0, 1 / 3, 2 / 3, 1])
    rows = []
    for i in range(3):
        sel = (photons >= edges[i]) & (photons <= edges[i + 1])
        z = np.r_[zx[sel], zy[sel]]
        rows.append(
            {
                "localizations": name,
                "true photons": f"{edges[i]:.0f}-{edges[i + 1]:.0f}",
                "n": int(sel.sum()),
                "z_sd": C.fmt(float(z.std()), 3),
                "z_robust_sd": C.fmt(float(1.4826 * np.median(np.abs(z))), 3),
                "within_0.8-1.25": bool(0.8 <= z.std() <= 1.25),
            }
        )
    return rows


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


PICASSO_GRID = [(box, g) for box in (5, 7) for g in (100, 250, 500, 1000, 2000, 4000)]


def picasso_rows(python, X, truth, b, cats, recall_target, log, ours):
    """Picasso (localize_frames, gausslq) at its best JI and at the hybrid's recall.

    The setting is chosen on the same frames (this is a diagnostic, not a
    benchmark): the best Jaccard index over ``PICASSO_GRID``, and the setting
    whose recall is closest to ``recall_target``. Picasso's recall stays
    below ours (it leaves out spots whose box would cross the frame edge), so
    ``ours`` (name -> table) are also scored on the true emitters that
    Picasso matched at its best JI: the same emitters, equal recall.
    """
    from sklearn_smlm.metrics import jaccard_index, match_localizations

    xy = truth[["frame", "x_nm", "y_nm"]]
    with C.PicassoServer(python) as server:
        server.load(X)
        camera = C.picasso_camera(
            baseline_adu=CAMERA["baseline_adu"],
            e_per_adu=CAMERA["e_per_adu"],
            em_gain=CAMERA["em_gain"],
        )
        runs = []
        for box, g in PICASSO_GRID:
            _, table = server.localize(box, g, camera=camera)
            pairs = match_localizations(xy, table, tolerance_nm=250.0)
            recall = len(pairs) / len(truth)
            ji = jaccard_index(xy, table, tolerance_nm=250.0)
            runs.append((ji, recall, box, g, table))
            log(f"  picasso box {box} min_ng {g}: JI {ji:.4f} recall {recall:.4f}")
        version = server.version
    best = max(runs, key=lambda r: r[0])
    equal = min(runs, key=lambda r: abs(r[1] - recall_target))
    rows = []
    for label, (ji, recall, box, g, table) in (
        ("best JI", best),
        (f"recall closest to the hybrid's {recall_target:.4f}", equal),
    ):
        name = f"Picasso {version} localize_frames, {label} (box {box}, min_ng {g})"
        r, _ = split_rows(name, truth, table, b, {"all": cats["all"]})
        r[0]["recall"] = round(recall, 4)
        r[0]["jaccard_250nm"] = round(ji, 4)
        rows += r
    matched = match_localizations(xy, best[4], tolerance_nm=250.0)["true_index"]
    same = np.zeros(len(truth), bool)
    same[matched.to_numpy()] = True
    for name, table in ours.items():
        r, _ = split_rows(
            f"{name}, on the emitters Picasso (best JI) matched",
            truth,
            table,
            b,
            {"all": same},
        )
        rows += r
    return rows


def sparse_section(loc, density, n_frames, seed, log, picasso_python=None):
    import sklearn_smlm.fitting._localizer as L
    from sklearn_smlm import PAFPSimulator
    from sklearn_smlm.fitting import (
        FIT_UNCERTAINTY_CALIBRATION,
        GaussianFitLocalizer,
        estimate_uncertainty,
        refine_localizations,
    )

    sim = PAFPSimulator.from_preset(
        "low_density", density_per_um2=density, random_state=seed
    )
    X, truth = sim.simulate(n_frames, return_table=True)
    b = bounds_nm(truth, X.shape[1:])
    cats = categories(*context(truth, X.shape[1:]))
    # the pairs too close to resolve (their joint bound runs to 100s of nm)
    # left out: what the joint bound says about the others
    cats["joint bound <= 3x isolated"] = b[2] <= 3.0 * b[0]
    loc_cnn = loc
    cnn, t_cnn = timed(lambda: loc_cnn.predict(X))
    dets = cnn[["frame", "x_nm", "y_nm"]]
    methods = {"CNN (pretrained default)": (cnn, t_cnn)}
    methods["hybrid, before (box 7, shift 1 px, no density rule)"] = timed(
        lambda: refine_localizations(X, dets, **CAMERA, **BEFORE)
    )
    methods[
        "hybrid, previous defaults (1 um density disc, no split, no edge refit)"
    ] = timed(
        lambda: previous_defaults(
            lambda: refine_localizations(X, dets, **CAMERA, **PREVIOUS)
        )
    )
    methods["hybrid, now, no split"] = timed(
        lambda: refine_localizations(X, dets, split_min_deviance_drop=None, **CAMERA)
    )
    methods["hybrid, now (defaults)"] = timed(
        lambda: refine_localizations(X, dets, **CAMERA)
    )
    methods["hybrid, now, PSF width fixed (110 nm)"] = timed(
        lambda: refine_localizations(X, dets, psf_sigma_nm=110.0, **CAMERA)
    )
    methods["hybrid, now, no camera given (1 e/ADU)"] = timed(
        lambda: refine_localizations(X, dets)
    )
    clf = GaussianFitLocalizer(box_size=7, threshold=4.0, **CAMERA).fit()
    saved = L._MAX_EMITTERS, L._SPLIT_DROP, L._POLISH_SHIFT_PX
    try:
        L._MAX_EMITTERS, L._SPLIT_DROP, L._POLISH_SHIFT_PX = 1, np.inf, None
        methods["classical, before (one spot per box)"] = timed(lambda: clf.predict(X))
        L._MAX_EMITTERS, L._SPLIT_DROP = saved[:2]
        methods["classical, now without the second fit in a 9 px box"] = timed(
            lambda: clf.predict(X)
        )
    finally:
        L._MAX_EMITTERS, L._SPLIT_DROP, L._POLISH_SHIFT_PX = saved
    methods["classical, now (joint fits + split)"] = timed(lambda: clf.predict(X))
    methods["classical, now, PSF width fixed (110 nm)"] = timed(
        lambda: clf.set_params(psf_sigma_nm=110.0).predict(X)
    )
    clf.set_params(psf_sigma_nm=None)
    from sklearn_smlm.metrics import jaccard_index

    rows, status, zrows, speed, summary = [], [], [], [], []
    xy = truth[["frame", "x_nm", "y_nm"]]
    for name, (table, seconds) in methods.items():
        r, pairs = split_rows(name, truth, table, b, cats)
        rows += r
        if name.startswith(("CNN", "hybrid, now (defaults)", "classical, now (joint")):
            s0 = dict(r[0])
            s0["recall"] = round(len(pairs) / len(truth), 4)
            s0["jaccard_250nm"] = round(jaccard_index(xy, table, tolerance_nm=250.0), 4)
            summary.append(s0)
        speed.append({"method": name, "seconds": round(seconds, 3), "locs": len(table)})
        log(f"  {name}: {r[0]['rmse_nm']} nm, {r[0]['rmse/crlb_iso']} x crlb_iso")
        if name.startswith("hybrid"):
            status += status_rows(name, table, pairs, cnn, truth)
        if name == "CNN (pretrained default)":
            zrows += zscore_rows(name + ", gain measured", truth, table, pairs)
        if name == "hybrid, now (defaults)":
            # as the localizer's predict gives them: fitted rows get the
            # bound with the crowding term, the others the CNN estimate
            calibrated = estimate_uncertainty(
                X, table, fit_calibration=FIT_UNCERTAINTY_CALIBRATION, **CAMERA
            )
            zrows += zscore_rows(name + ", as predict", truth, calibrated, pairs)
            ok = table["fit_ok"].to_numpy()
            fit_only = table[ok]
            pairs_fit = pairs[ok[pairs["pred_index"].to_numpy()]]
            pairs_fit = pairs_fit.assign(
                pred_index=np.searchsorted(
                    np.flatnonzero(ok), pairs_fit["pred_index"].to_numpy()
                )
            )
            zrows += zscore_rows(
                "hybrid rows refined by a fit, bare CRLB",
                truth,
                fit_only.reset_index(drop=True),
                pairs_fit,
            )
            zrows += zscore_rows(
                "hybrid rows refined by a fit, CRLB + crowding term",
                truth,
                calibrated[ok].reset_index(drop=True),
                pairs_fit,
            )
            bg = table["background"].to_numpy()[ok]
            log(f"  fitted background: median {np.median(bg):.2f} (true 20)")
    # the uncertainty estimate alone, camera known and gain measured
    _, pairs = split_rows("cnn", truth, cnn, b, {"all": cats["all"]})
    for label, kw in (
        ("CNN estimate, camera given", CAMERA),
        ("CNN estimate, gain measured", {"baseline_adu": 100.0}),
    ):
        est, seconds = timed(lambda kw=kw: estimate_uncertainty(X, dets, **kw))
        zrows += zscore_rows(label, truth, est, pairs)
        speed.append(
            {
                "method": f"estimate_uncertainty ({label})",
                "seconds": round(seconds, 3),
                "locs": len(est),
            }
        )
    if picasso_python:
        target = summary[1]["recall"]
        try:
            ours = {
                name: methods[name][0]
                for name in ("CNN (pretrained default)", "hybrid, now (defaults)")
            }
            summary += picasso_rows(
                picasso_python, X, truth, b, cats, target, log, ours
            )
        except RuntimeError as exc:
            summary.append({"method": f"Picasso: {exc}"})
    return (
        pd.DataFrame(rows),
        pd.DataFrame(status),
        pd.DataFrame(zrows),
        pd.DataFrame(speed),
        pd.DataFrame(summary),
    )


def dense_section(loc, n_frames, log):
    from sklearn_smlm import PAFPSimulator
    from sklearn_smlm.fitting import refine_localizations
    from sklearn_smlm.metrics import jaccard_index, match_localizations

    sets = {}
    if C.DATA_BT_HD.exists():
        fr, tr = C.load_bt_hd()
        sets["bt_hd_recreated"] = (fr, tr, CAMERA)
    for key, cam in DENSE_CAMERAS.items():
        X, t = PAFPSimulator.from_preset(key, random_state=77).simulate(
            n_frames, return_table=True
        )
        sets[f"{key} (simulated)"] = (X, t[["frame", "x_nm", "y_nm"]], cam)
    rows = []
    for name, (X, truth, cam) in sets.items():
        cnn = loc.predict(X)
        x = truth["x_nm"].to_numpy() / 100.0
        y = truth["y_nm"].to_numpy() / 100.0
        pts = np.column_stack([x, y, truth["frame"].to_numpy() * 1e4])
        nn = cKDTree(pts).query(pts, k=2)[0][:, 1]
        dets = cnn[["frame", "x_nm", "y_nm"]]
        for label, table in (
            ("CNN", cnn),
            ("hybrid, before", refine_localizations(X, dets, **cam, **BEFORE)),
            (
                "hybrid, previous defaults (1 um disc, no split, no edge refit)",
                previous_defaults(
                    lambda X=X, dets=dets, cam=cam: refine_localizations(
                        X, dets, **cam, **PREVIOUS
                    )
                ),
            ),
            ("hybrid, now", refine_localizations(X, dets, **cam)),
        ):
            p = match_localizations(truth, table, tolerance_nm=250.0)
            ti = p["true_index"].to_numpy()
            d2 = p["distance_nm"].to_numpy() ** 2
            iso = nn[ti] >= 4
            rows.append(
                {
                    "frames": f"{name}, {len(X)} frames",
                    "method": label,
                    "jaccard_250nm": C.fmt(
                        jaccard_index(truth, table, tolerance_nm=250.0), 4
                    ),
                    "rmse_nm": C.fmt(rmse(d2, np.ones(len(d2), bool)), 2),
                    "rmse_isolated_nm (neighbour >= 4 px)": C.fmt(rmse(d2, iso), 2),
                    "isolated": int(iso.sum()),
                }
            )
            log("  ", rows[-1])
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-frames", type=int, default=300)
    parser.add_argument("--n-dense", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-dense", action="store_true")
    parser.add_argument(
        "--picasso-python",
        default=None,
        help="interpreter with picassosr: adds Picasso at its best JI and at "
        "the hybrid's recall",
    )
    parser.add_argument("--out", default=str(C.RESULTS))
    args = parser.parse_args(argv)
    from sklearn_smlm import DistanceTransformLocalizer

    cond = C.Conditions(["benchmarks/diag_precision.py", *(argv or sys.argv[1:])])
    loc = DistanceTransformLocalizer.pretrained("default", device="cpu")
    parts = []
    for label, density, n, seed in (
        (
            "low density (0.3 emitters/um^2, the lowdensity benchmark's preset)",
            0.3,
            args.n_frames,
            9200,
        ),
        ("medium density (1.0 emitters/um^2)", 1.0, max(args.n_frames // 2, 10), 9300),
    ):
        C.log(label)
        rows, status, z, speed, summary = sparse_section(
            loc, density, n, seed + args.seed, C.log, args.picasso_python
        )
        parts.append(
            f"## {label}, {n} frames of 64x64\n\n### Summary\n\n"
            + summary.to_markdown(index=False)
            + "\n\n### RMSE by cause\n\n"
            + rows.to_markdown(index=False)
            + "\n\n### Hybrid: fit status and the detection's own error\n\n"
            + status.to_markdown(index=False)
            + "\n\n### Uncertainty calibration"
            + " (per-axis z = error / uncertainty_nm)\n\n"
            + z.to_markdown(index=False)
            + "\n\n### Time (same run)\n\n"
            + speed.to_markdown(index=False)
        )
        print(summary.to_string(index=False))
        print(rows.to_string(index=False))
        print(status.to_string(index=False))
        print(z.to_string(index=False))
        print(speed.to_string(index=False))
    if not args.no_dense:
        C.log("dense frames")
        dense = dense_section(loc, args.n_dense, C.log)
        parts.append(
            "## Dense frames: the hybrid against the network\n\n"
            + dense.to_markdown(index=False)
        )
        print(dense.to_string(index=False))
    cond.close()
    md = (
        "# Precision diagnostic: where the localization error comes from\n\n"
        + cond.markdown()
        + "\n"
        + __doc__.split("\n\n", 1)[1].split("Run from")[0].strip()
        + "\n\nMatching: Hungarian, 250 nm. `share_sq_err`: the category's part of the "
        "method's summed squared error (categories overlap).\n\n"
        + "\n\n".join(parts)
        + "\n"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision_diagnostic.md").write_text(md)
    C.log(f"wrote {out / 'precision_diagnostic.md'}")


if __name__ == "__main__":
    main()
