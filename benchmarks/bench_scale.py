"""Scale benchmark: memory and speed of localizing a large stack from disk.

1. Writes an N-frame 256x256 uint16 stack page by page with
   ``tifffile.TiffWriter`` (simulated frames, repeated cyclically), so the
   stack is never in memory.
2. In a fresh process, localizes it with ``DistanceTransformLocalizer.
   iter_predict`` chunk by chunk, appending each chunk's table to a CSV, and
   reports the peak resident memory (``ru_maxrss``) of that process, the
   frames per second and the number of localizations.
3. Frames per second with 1 and 2 workers: ``predict_joblib`` (loky
   processes, torch threads split between workers) and ``predict_dask`` on a
   ``LocalCluster`` (1 thread per worker), warm workers, against the
   single-process ``predict``.

The network is the paper's (9 layers of 32 channels, folded sub-pixel head,
r = 7), briefly trained on simulated frames: speed and memory do not depend
on how well it is trained, only on its size and on the number of detections
(reported). Full run: N = 20000 (2.6 GB on disk); ``--quick``: N = 500, speed
on 128 frames, results under ``benchmarks/results/quick/`` (not committed).

    nice -n 19 python benchmarks/bench_scale.py --quick
    python benchmarks/bench_scale.py            # the full run
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

HERE = Path(__file__).parent

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from sklearn_smlm import TiffStack, load_model

    model, stack_path, csv_path, chunk_size = sys.argv[1:5]
    loc = load_model(model, device="cpu")
    t0 = time.perf_counter()
    n_locs = 0
    with TiffStack(stack_path) as stack, open(csv_path, "w") as out:
        out.write("frame,x_nm,y_nm,score\\n")
        for table in loc.iter_predict(stack, chunk_size=int(chunk_size)):
            table.to_csv(out, header=False, index=False)
            n_locs += len(table)
        n_frames = len(stack)
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"n_frames": n_frames, "seconds": seconds,
                      "peak_rss_mb": peak_kib / 1024, "n_localizations": n_locs}))
    """
)


def make_model(folder, frame_size):
    from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator

    X, y = PAFPSimulator(
        frame_shape=(32, 32), density_per_um2=1.0, random_state=0
    ).simulate(64)
    loc = DistanceTransformLocalizer(
        max_epochs=2, validation_fraction=0, precision="fp32", random_state=0
    ).fit(X, y)
    path = Path(folder) / "model.pt"
    loc.save(path)
    return loc, path


def write_stack_pages(path, n_frames, frame_size, seed=0):
    from sklearn_smlm import PAFPSimulator

    base, _ = PAFPSimulator(
        frame_shape=(frame_size, frame_size), density_per_um2=0.5, random_state=seed
    ).simulate(32)
    base = np.clip(base, 0, 65535).astype(np.uint16)
    t0 = time.perf_counter()
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for i in range(n_frames):
            tif.write(base[i % len(base)], contiguous=True)
    return time.perf_counter() - t0


def run_streaming(model_path, stack_path, folder, chunk_size):
    script = Path(folder) / "child.py"
    script.write_text(CHILD)
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            str(model_path),
            str(stack_path),
            str(Path(folder) / "locs.csv"),
            str(chunk_size),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_call(function, n_frames):
    t0 = time.perf_counter()
    table = function()
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "fps": n_frames / seconds,
        "n_localizations": len(table),
    }


def run_speed(loc, stack_path, n_frames, chunk_size):
    from sklearn_smlm import TiffStack
    from sklearn_smlm.parallel import predict_dask, predict_joblib

    rows = []
    with TiffStack(stack_path) as full:
        frames = np.asarray(full[:n_frames])
    tmp = Path(stack_path).with_name("speed.tif")
    tifffile.imwrite(tmp, frames, contiguous=True)
    with TiffStack(tmp) as stack:
        rows.append(
            {"method": "predict (1 process)", "workers": 1}
            | time_call(lambda: loc.predict(stack), n_frames)
        )
        for n_jobs in (1, 2):
            # warm the workers (process start, imports, model) first
            predict_joblib(loc, frames[:8], n_jobs=n_jobs, chunk_size=4)
            rows.append(
                {"method": "predict_joblib (loky)", "workers": n_jobs}
                | time_call(
                    lambda n=n_jobs: predict_joblib(
                        loc, stack, n_jobs=n, chunk_size=chunk_size
                    ),
                    n_frames,
                )
            )
        try:
            import distributed
        except ImportError:
            distributed = None
        if distributed is not None:
            for n_workers in (1, 2):
                with (
                    distributed.LocalCluster(
                        n_workers=n_workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        silence_logs=50,
                    ) as cluster,
                    distributed.Client(cluster) as client,
                ):
                    predict_dask(loc, frames[:8], chunk_size=4, client=client)
                    rows.append(
                        {"method": "predict_dask (LocalCluster)", "workers": n_workers}
                        | time_call(
                            lambda c=client: predict_dask(
                                loc, stack, chunk_size=chunk_size, client=c
                            ),
                            n_frames,
                        )
                    )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-frames", type=int)
    parser.add_argument("--speed-frames", type=int)
    parser.add_argument("--frame-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--tmp", help="folder for the stack (default: a temp dir)")
    args = parser.parse_args(argv)
    n_frames = args.n_frames or (500 if args.quick else 20000)
    speed_frames = args.speed_frames or (128 if args.quick else 1024)
    speed_chunk = 32 if args.quick else 128
    out_dir = HERE / "results" / ("quick" if args.quick else "")
    out_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        loc, model_path = make_model(folder, args.frame_size)
        stack_path = Path(folder) / "stack.tif"
        write_s = write_stack_pages(stack_path, n_frames, args.frame_size)
        size_mb = os.path.getsize(stack_path) / 2**20
        print(f"wrote {n_frames} frames ({size_mb:.0f} MB) in {write_s:.1f} s")
        stream = run_streaming(model_path, stack_path, folder, args.chunk_size)
        print(json.dumps(stream))
        speed = run_speed(loc, stack_path, speed_frames, speed_chunk)

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    stream_row = {
        "benchmark": "iter_predict from disk",
        "n_frames": stream["n_frames"],
        "frame_size": args.frame_size,
        "stack_mb": round(size_mb, 1),
        "chunk_size": args.chunk_size,
        "peak_rss_mb": round(stream["peak_rss_mb"], 1),
        "seconds": round(stream["seconds"], 2),
        "fps": round(stream["n_frames"] / stream["seconds"], 1),
        "n_localizations": stream["n_localizations"],
    }
    speed_rows = [
        {
            "benchmark": r["method"],
            "n_frames": speed_frames,
            "frame_size": args.frame_size,
            "workers": r["workers"],
            "chunk_size": speed_chunk,
            "seconds": round(r["seconds"], 2),
            "fps": round(r["fps"], 1),
            "n_localizations": r["n_localizations"],
        }
        for r in speed
    ]
    table = pd.DataFrame([stream_row] + speed_rows)
    table.to_csv(out_dir / "scale.csv", index=False)
    md = [
        "# Scale benchmark (`benchmarks/bench_scale.py`)",
        "",
        f"Machine: {machine}; torch threads {torch_threads()}; "
        f"load average at the end {os.getloadavg()[0]:.1f}.",
        "",
        f"Streaming: {stream_row['n_frames']} frames of {args.frame_size}x"
        f"{args.frame_size} ({stream_row['stack_mb']} MB uint16 on disk), "
        f"chunks of {args.chunk_size}: peak RSS {stream_row['peak_rss_mb']} MB, "
        f"{stream_row['fps']} frames/s, {stream_row['n_localizations']} "
        "localizations.",
        "",
        table.to_markdown(index=False) if _has_tabulate() else table.to_string(),
        "",
    ]
    (out_dir / "scale.md").write_text("\n".join(md))
    print(table.to_string(index=False))
    print(f"written to {out_dir}")


def torch_threads():
    import torch

    return torch.get_num_threads()


def _has_tabulate():
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
