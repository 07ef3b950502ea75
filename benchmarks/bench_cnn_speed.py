"""The CNN's frames/s next to Picasso's, before and after the peak-path change.

One process, the same frames (``bench_fitting.py``'s frame sets), every
method interleaved at each thread count, best of ``--repeats``:

- Picasso ``localize.localize_frames`` (gausslq) at its best-JI setting on
  the first third of the frames (``bench_fitting.tune_picasso``), numba at 1
  thread / all cores;
- the CNN ``default`` as it was before (the head computed on the whole
  frame, dense frames' peaks found on the assembled map by ``find_peaks``,
  as at 5c1c911; the tables are checked to be identical to the current
  ones);
- the CNN ``default`` now (``precision="auto"``, bf16 on AVX-512-BF16);
- the opt-in ``precision="bf16-map"`` and ``"int8"``.

Columns: frames/s, ``x_picasso`` (over Picasso's frames/s, same threads,
same run), JI (250 nm), CPU ms per frame. Writes ``cnn_speed.csv`` and
``cnn_speed.md``::

    python benchmarks/bench_cnn_speed.py --picasso-python /tmp/picasso_venv/bin/python
    python benchmarks/bench_cnn_speed.py --full ...   # bench_fitting's full sets
"""

import argparse
import os
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import bench_fitting as BF  # noqa: E402


def cnn_variants():
    """``{label: (localizer, old_dense_path)}``."""
    from sklearn_smlm import DistanceTransformLocalizer

    def load(precision):
        loc = DistanceTransformLocalizer.pretrained("default", device="cpu")
        return loc.set_params(precision=precision)

    return {
        "CNN before (whole head, find_peaks)": (load("auto"), True),
        "CNN default": (load("auto"), False),
        "CNN precision='bf16-map'": (load("bf16-map"), False),
        "CNN precision='int8'": (load("int8"), False),
    }


def old_dense_path():
    """Context: the code before: whole head, dense maps' peaks by find_peaks.

    ``predict`` then computes the folded head on the whole frame (no
    threshold reaches the network) and SubPixelMaps' dense frames go to
    ``find_peaks`` on the whole map, as at 5c1c911.
    """
    import contextlib

    from sklearn_smlm import DistanceTransformLocalizer
    from sklearn_smlm._subpixel_maps import SubPixelMaps
    from sklearn_smlm.peaks import find_peaks

    @contextlib.contextmanager
    def patched():
        new = SubPixelMaps._dense_peaks
        new_threshold = DistanceTransformLocalizer._head_threshold

        def old(self, threshold, min_distance, refine):
            maps = np.asarray(self)
            return find_peaks(maps, threshold, min_distance=min_distance, refine=refine)

        SubPixelMaps._dense_peaks = old
        DistanceTransformLocalizer._head_threshold = lambda self: None
        try:
            yield
        finally:
            SubPixelMaps._dense_peaks = new
            DistanceTransformLocalizer._head_threshold = new_threshold

    return patched()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--picasso-python", default=None)
    parser.add_argument("--frames", default="bt_hd,sparse256,medium256")
    parser.add_argument("--full", action="store_true", help="bench_fitting's full sets")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    out = Path(args.out or C.RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    conditions = C.Conditions(argv if argv is not None else sys.argv)
    sets_args = types.SimpleNamespace(
        smoke=False, quick=not args.full, only_frames=args.frames.split(",")
    )
    camera = C.picasso_camera(**{"qe": 1.0, **BF.CAMERA})
    variants = cnn_variants()
    thread_counts = sorted({1, os.cpu_count() or 1})
    server = C.PicassoServer(args.picasso_python) if args.picasso_python else None
    rows = []
    warnings.simplefilter("ignore")  # conditions warnings of the simulated sets
    try:
        for name, desc, frames, truth, n_tune in BF.frame_sets(sets_args):
            C.log(f"== {name}: {desc} (load {C.load_average()})")
            methods = {}
            if server is not None:
                server.load(frames)
                pji, pbox, pg = BF.tune_picasso(
                    server, n_tune, BF.truth_subset(truth, n_tune), camera
                )

                def run_picasso(box=pbox, g=pg, threads=1):
                    seconds, table = server.localize(
                        box, g, camera=camera, threads=threads
                    )
                    return seconds, table.attrs["cpu_seconds"], table

                methods["Picasso localize_frames"] = (
                    f"box {pbox}, min net gradient {pg:g}",
                    run_picasso,
                )
            for label, (loc, old) in variants.items():
                loc.predict(frames[:4])

                def run_cnn(threads=1, loc=loc, old=old, X=frames):
                    with BF.our_threads(threads):
                        if old:
                            with old_dense_path():
                                return BF.timed_call(lambda: loc.predict(X))
                        return BF.timed_call(lambda: loc.predict(X))

                methods[label] = (f"threshold {loc.threshold:g}", run_cnn)
            for threads in thread_counts:
                best = {}
                for _ in range(args.repeats):
                    for label, (_, run) in methods.items():
                        seconds, cpu, table = run(threads=threads)
                        if label not in best or seconds < best[label][0]:
                            best[label] = (seconds, cpu, table)
                before = best["CNN before (whole head, find_peaks)"][2]
                now = best["CNN default"][2]
                pd.testing.assert_frame_equal(before, now)  # bit for bit
                picasso = best.get("Picasso localize_frames")
                for label, (seconds, cpu, table) in best.items():
                    m = BF.metrics(truth, table)
                    fps = len(frames) / seconds
                    rows.append(
                        {
                            "frames": name,
                            "description": desc,
                            "method": label,
                            "setting": methods[label][0],
                            "threads": threads,
                            "frames_per_s": round(fps, 1),
                            "x_picasso": round(fps * picasso[0] / len(frames), 3)
                            if picasso
                            else np.nan,
                            "jaccard": round(m["jaccard"], 4),
                            "rmse_nm": round(m["rmse_nm"], 2),
                            "cpu_ms_per_frame": round(1e3 * cpu / len(frames), 2),
                            "load_1min": C.load_average().split(" / ")[0],
                        }
                    )
                    C.log(
                        f"  {threads} thread(s) {label:42s} {fps:8.1f} f/s "
                        f"JI {m['jaccard']:.4f}"
                    )
    finally:
        if server is not None:
            server.close()
    conditions.close()
    table = pd.DataFrame(rows)
    notes = (
        "One process; every method interleaved at each thread count on the same "
        f"frames, best of {args.repeats} (wall clock). Picasso: "
        + (f"{server.version}, localize_frames" if server else "not run")
        + ". 'CNN before' and 'CNN default' give identical tables (asserted). "
        "The machine was shared with other jobs: compare ratios within a run."
    )
    print(
        C.write_section(
            out,
            "cnn_speed",
            "CNN frames/s next to Picasso (in memory, same frames, one run)",
            table,
            conditions=conditions,
            notes=notes,
        )
    )


if __name__ == "__main__":
    main()
