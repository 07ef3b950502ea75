"""A long stack from disk: CNN frames/s and peak memory, Picasso's command beside it.

Moved out of ``bench_paper.py`` (its ``speed`` section) so that the paper's
default run fits 30 minutes with cached models; this one takes about 20
minutes at 20,000 frames (written 1-2 min, the CNN 11 min, Picasso's command
about 2 min per thread setting on an idle 2-core machine; added up from the
recorded parts, see ``benchmarks/README.md``).

1. Writes a 256x256 uint16 stack of ``--stack-frames`` (default 20,000: 2.6 GB)
   simulated sparse frames (``low_density`` preset) page by page to a
   temporary BigTIFF (``--tmp-dir``), never whole in memory.
2. Localizes it from disk with ``iter_predict(TiffStack(...), chunk_size=256)``
   in a fresh process (the pretrained ``default`` model, bf16 or
   ``--precision``): frames/s, peak RSS (``VmHWM``, which counts the
   memory-mapped file pages read) and the peak anonymous RSS (the process's
   own memory, sampled per chunk).
3. Runs Picasso's ``picasso localize FILE -a lq -d 0`` on the same file (its
   file-to-file path; box and minimum net gradient of the best Jaccard index
   on simulated frames of the same preset) with ``NUMBA_NUM_THREADS`` = 1 and
   all cores: the whole command's wall time, start-up and writing included.

Usage::

    python benchmarks/bench_stack.py --picasso-python /tmp/picasso_venv/bin/python
    python benchmarks/bench_stack.py --stack-frames 2000   # a few minutes
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

SECTIONS = ["stack"]
PICASSO_GRID = [(box, g) for box in (3, 5, 7) for g in (250, 500, 1000, 2000, 4000)]

STACK_WORKER = r"""
import json, sys, time
from pathlib import Path
def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")
from sklearn_smlm import DistanceTransformLocalizer
from sklearn_smlm.io import TiffStack
model, path, chunk, precision = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
loc = DistanceTransformLocalizer.load(model, device="cpu")
sys.path.insert(0, sys.argv[5])
import _common
_common.set_precision(loc, precision)
stack = TiffStack(path)
loc.predict(stack[:8])
before = status("VmHWM")
anon = status("RssAnon")
n_locs, t0 = 0, time.perf_counter()
for table in loc.iter_predict(stack, chunk_size=chunk):
    n_locs += len(table)
    anon = max(anon, status("RssAnon"))
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "n_frames": len(stack), "n_locs": n_locs,
                  "vmhwm_before_mb": before, "vmhwm_mb": status("VmHWM"),
                  "rss_anon_peak_mb": anon}))
"""


def write_stack_tiff(path, sim, n_frames, chunk=500):
    """Write a simulated uint16 stack page by page (never whole in memory)."""
    import tifffile

    h, w = sim.frame_shape

    def pages():
        for X, _ in sim.iter_simulate(n_frames, chunk_size=chunk):
            yield from np.clip(np.rint(X), 0, 65535).astype(np.uint16)

    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(
            pages(), shape=(n_frames, h, w), dtype=np.uint16, metadata={"axes": "QYX"}
        )


def picasso_choose(args, settings):
    """(box, min_ng) of Picasso's best JI on simulated frames of the preset."""
    from sklearn_smlm.metrics import jaccard_index

    Xv, yv = C.test_frames(
        args, settings, C.preset("low_density"), settings["n_valid"], 6300
    )
    results = C.run_picasso(args.picasso_python, Xv, PICASSO_GRID)
    scored = [
        (jaccard_index(yv, table, tolerance_nm=250.0), box, g)
        for box, g, _, table in results
    ]
    _, box, g = max(scored)
    return box, g


def model_for(args, settings):
    """The pretrained default model, or (``--smoke``) a tiny trained one."""
    from sklearn_smlm import DistanceTransformLocalizer

    if not args.smoke:
        return DistanceTransformLocalizer.pretrained("default", device="cpu"), (
            "pretrained 'default'"
        )
    loc, info = C.train_model(
        args,
        settings,
        key="bt_hd_2013",
        simulator_params=C.preset("bt_hd_2013"),
        n_frames=settings["n_train_2013"],
    )
    return loc, info["key"]


def section_stack(args, settings, conditions):
    from sklearn_smlm import PAFPSimulator

    model, model_name = model_for(args, settings)
    n = settings["stack_frames"]
    h, w = settings["stack_shape"]
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        tmp = Path(tmp)
        path = tmp / "stack.tif"
        sim = PAFPSimulator.from_preset(
            "low_density", frame_shape=(h, w), random_state=3
        )
        t0 = time.perf_counter()
        write_stack_tiff(path, sim, n)
        size_gb = path.stat().st_size / 1e9
        C.log(
            f"  wrote {n} frames {h}x{w} ({size_gb:.2f} GB) in "
            f"{time.perf_counter() - t0:.0f} s"
        )
        model_path = tmp / "model.pt"
        model.save(model_path)
        worker = tmp / "worker.py"
        worker.write_text(STACK_WORKER)
        out = subprocess.run(
            [
                sys.executable,
                str(worker),
                str(model_path),
                str(path),
                "256",
                args.precision,
                str(Path(__file__).resolve().parent),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        cnn_fps = None
        if out.returncode == 0:
            res = json.loads(out.stdout.strip().splitlines()[-1])
            cnn_fps = n / res["seconds"]
            what = (
                f"CNN iter_predict, {n} frames {h}x{w} uint16 TIFF ({size_gb:.2f} GB)"
            )
            rows += [
                {
                    "measure": what,
                    "value": C.fmt(cnn_fps, 1),
                    "unit": "frames/s",
                    "note": f"{model_name}, precision {args.precision}, chunk 256, "
                    f"{res['n_locs']} locs, "
                    "fresh process, all cores",
                },
                {
                    "measure": "  peak RSS (VmHWM)",
                    "value": C.fmt(res["vmhwm_mb"], 0),
                    "unit": "MiB",
                    "note": "the whole process, including transient map arrays and "
                    "memory-mapped file pages read; after "
                    f"loading + warm-up: {res['vmhwm_before_mb']:.0f} MiB",
                },
                {
                    "measure": "  peak anonymous RSS",
                    "value": C.fmt(res["rss_anon_peak_mb"], 0),
                    "unit": "MiB",
                    "note": "RssAnon sampled after each chunk: misses transient "
                    "peaks inside a chunk",
                },
            ]
        else:
            last = (out.stderr.strip().splitlines() or ["?"])[-1][:200]
            rows.append(
                {"measure": "CNN iter_predict on the stack", "note": f"failed: {last}"}
            )
        for r in rows:
            C.log("  ", r)
        rows += picasso_rows(args, settings, path, n, cnn_fps)
    table = pd.DataFrame(rows)
    notes = (
        "Wall-clock numbers (see the load average). Picasso's rows time its "
        "whole command (start-up, reading, identification, fit, writing HDF5); "
        "the CNN's row times the localization loop of a process that has "
        "loaded its model. `x_cnn`: the CNN's frames/s over Picasso's."
    )
    return C.write_section(
        args.out,
        "stack",
        "A long stack from disk: CNN and Picasso's command",
        table,
        conditions=conditions,
        notes=notes,
    )


def picasso_rows(args, settings, path, n, cnn_fps):
    rows = []
    try:
        box, g = picasso_choose(args, settings)
    except RuntimeError as exc:
        return [{"measure": "picasso localize, same stack", "note": str(exc)}]
    camera = C.picasso_camera()
    for threads in sorted({1, os.cpu_count() or 1}):
        cmd = C.picasso_cli_command(args.picasso_python, path, box, g, camera)
        try:
            seconds, _ = C.run_command(
                cmd,
                env={"NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": "1"},
                cwd=str(Path(path).parent),
            )
        except RuntimeError as exc:
            rows.append({"measure": "picasso localize, same stack", "note": str(exc)})
            continue
        fps = n / seconds
        rows.append(
            {
                "measure": f"picasso localize -a lq, same stack, {threads} thread(s)",
                "value": C.fmt(fps, 1),
                "unit": "frames/s",
                "x_cnn": C.fmt(cnn_fps / fps, 2) if cnn_fps else "n/a",
                "note": f"box {box}, min net gradient {g:g}, NUMBA_NUM_THREADS="
                f"{threads}, whole command {seconds:.0f} s",
            }
        )
        C.log("  ", rows[-1])
    return rows


def main(argv=None):
    parser = C.make_parser(__doc__, SECTIONS)
    parser.add_argument(
        "--stack-frames",
        type=int,
        default=None,
        help="frames of the 256x256 stack (default 20000, 500 with --quick)",
    )
    parser.add_argument(
        "--precision",
        default="bf16",
        help="the CNN's precision (default bf16; the opt-in bf16-map or int8)",
    )
    parser.add_argument(
        "--tmp-dir",
        default=None,
        help="folder for the temporary stack (2.6 GB at 20,000 frames; default: "
        "the system's temporary folder)",
    )
    args = C.finish_args(parser.parse_args(argv), SECTIONS)
    settings = C.run_settings(args)
    if args.stack_frames:
        settings["stack_frames"] = args.stack_frames
    conditions = C.Conditions(argv)
    part = section_stack(args, settings, conditions)
    conditions.close()
    return part


if __name__ == "__main__":
    main()
