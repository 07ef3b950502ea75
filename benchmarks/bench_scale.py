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
(reported). Full run: N = 20000 (2.6 GB on disk); ``--quick``: N = 300, speed
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

    model, stack_path, csv_path, chunk_size, batch_size, n_max = sys.argv[1:7]
    loc = load_model(model, device="cpu")
    loc.set_params(threshold=float(sys.argv[7]))
    t0 = time.perf_counter()
    n_locs = 0
    with TiffStack(stack_path) as stack, open(csv_path, "w") as out:
        out.write("frame,x_nm,y_nm,score\\n")
        class Head:  # the first n_max frames, still read lazily chunk by chunk
            def __len__(self):
                return min(len(stack), int(n_max))

            def __getitem__(self, key):  # iter_predict slices [start:stop]
                return stack[key.start : min(key.stop, len(self))]

        frames = Head()
        for table in loc.iter_predict(
            frames,
            chunk_size=int(chunk_size),
            batch_size=None if batch_size == "default" else int(batch_size),
        ):
            table.to_csv(out, header=False, index=False)
            n_locs += len(table)
        n_frames = min(len(stack), int(n_max))
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

    base, truth = PAFPSimulator(
        frame_shape=(frame_size, frame_size), density_per_um2=0.5, random_state=seed
    ).simulate(32)
    base = np.clip(base, 0, 65535).astype(np.uint16)
    t0 = time.perf_counter()
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for i in range(n_frames):
            tif.write(base[i % len(base)], contiguous=True)
    return time.perf_counter() - t0, truth


def run_streaming(
    model_path, stack_path, folder, chunk_size, batch_size, n_frames, threshold
):
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
            str(batch_size),
            str(n_frames),
            str(threshold),
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


def pick_threshold(loc, stack_path, truth, n=4):
    """Threshold that gives as many detections as there are emitters.

    The briefly trained network's maps do not reach the paper's 300, and a
    threshold far below its peaks would turn noise into millions of
    detections; the height of the k-th highest peak of the first ``n``
    frames, k their number of emitters, keeps the peak finder's work
    realistic.
    """
    from sklearn_smlm import TiffStack
    from sklearn_smlm.peaks import find_peaks

    with TiffStack(stack_path) as stack:
        maps = loc.predict_maps(stack[:n], batch_size=2)
    _, _, _, heights = find_peaks(maps, float(maps.min()) - 1.0, refine=None)
    k = sum(len(p) for p in truth[:n])
    return float(np.sort(heights)[::-1][min(k, len(heights)) - 1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-frames", type=int)
    parser.add_argument("--speed-frames", type=int)
    parser.add_argument("--frame-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--tmp", help="folder for the stack (default: a temp dir)")
    parser.add_argument("--out", help="results folder (default: results/)")
    args = parser.parse_args(argv)
    n_frames = args.n_frames or (300 if args.quick else 20000)
    speed_frames = args.speed_frames or (128 if args.quick else 1024)
    speed_chunk = 32 if args.quick else 128
    out_dir = Path(args.out) if args.out else HERE / "results"
    if args.quick and not args.out:
        out_dir = out_dir / "quick"
    out_dir.mkdir(parents=True, exist_ok=True)

    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        loc, model_path = make_model(folder, args.frame_size)
        stack_path = Path(folder) / "stack.tif"
        write_s, truth = write_stack_pages(stack_path, n_frames, args.frame_size)
        size_mb = os.path.getsize(stack_path) / 2**20
        print(f"wrote {n_frames} frames ({size_mb:.0f} MB) in {write_s:.1f} s")
        threshold = pick_threshold(loc, stack_path, truth)
        print(f"threshold {threshold:.2f}")
        loc.set_params(threshold=threshold)
        # peak memory: the batch of maps dominates (r^2 times the frames), so
        # the default batch and 32 frames (the old default), and two stack
        # lengths to show that it does not grow with the stack
        default_batch = loc.prediction_batch_size((args.frame_size,) * 2)
        # (the batch of 32 on a third of the stack: the peak is reached in the
        # first chunk, and the full run stays near 2 x N / fps seconds)
        configs = [
            (n_frames // 3, "default"),
            (n_frames, "default"),
            (n_frames // 3, 32),
        ]
        for n, batch in configs:
            stream = run_streaming(
                model_path, stack_path, folder, args.chunk_size, batch, n, threshold
            )
            print(json.dumps(stream))
            rows.append(
                {
                    "benchmark": "iter_predict from disk (fresh process)",
                    "n_frames": stream["n_frames"],
                    "stack_mb": round(size_mb * n / n_frames, 1),
                    "chunk_size": args.chunk_size,
                    "batch_size": default_batch if batch == "default" else batch,
                    "workers": 1,
                    "peak_rss_mb": round(stream["peak_rss_mb"], 1),
                    "seconds": round(stream["seconds"], 2),
                    "fps": round(stream["n_frames"] / stream["seconds"], 2),
                    "n_localizations": stream["n_localizations"],
                }
            )
        for r in run_speed(loc, stack_path, speed_frames, speed_chunk):
            rows.append(
                {
                    "benchmark": r["method"],
                    "n_frames": speed_frames,
                    "chunk_size": speed_chunk,
                    "batch_size": default_batch,
                    "workers": r["workers"],
                    "seconds": round(r["seconds"], 2),
                    "fps": round(r["fps"], 2),
                    "n_localizations": r["n_localizations"],
                }
            )

    table = pd.DataFrame(rows)
    table.insert(1, "frame_size", args.frame_size)
    table.to_csv(out_dir / "scale.csv", index=False)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    md = [
        "# Scale benchmark (`benchmarks/bench_scale.py`)",
        "",
        f"Machine: {machine}; torch threads {torch_threads()} in the parent; "
        f"load average at the end {os.getloadavg()[0]:.1f} (other jobs share "
        "the cores: compare rows of one run only). Network: 9 layers x 32 "
        f"channels, folded head, r = 7, float32; threshold {threshold:.2f} "
        "(as many detections as emitters on the first frames, see "
        "`pick_threshold`).",
        "",
        table.to_markdown(index=False),
        "",
    ]
    (out_dir / "scale.md").write_text("\n".join(md))
    print(table.to_string(index=False))
    print(f"written to {out_dir}")


def torch_threads():
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
