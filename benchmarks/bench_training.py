"""Training throughput on the CPU: target encoding and one epoch of the default network.

Run: ``python benchmarks/bench_training.py [--frames 256] [--threads 2]``.
Prints a Markdown table and writes ``benchmarks/results/bench_training.md``.
Frames per second are CPU time per frame where ``--threads 1`` (robust on a
shared machine), wall time otherwise; the machine's load average is recorded.
"""

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from sklearn_smlm import DistanceTransformRegressor, FrameNormalizer, PAFPSimulator

RESULTS = Path(__file__).parent / "results"


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(n_frames, density, threads, seed=0):
    torch.set_num_threads(threads)
    clock = time.process_time if threads == 1 else time.perf_counter
    X, y = PAFPSimulator(
        frame_shape=(64, 64), density_per_um2=density, random_state=seed
    ).simulate(n_frames)
    frames = FrameNormalizer().fit(X).transform(X)
    reg = DistanceTransformRegressor(
        max_epochs=1, validation_fraction=0, random_state=seed
    )
    t0 = clock()
    reg._encode_targets(y, frames.shape[1:])
    encode_s = clock() - t0
    t0 = clock()
    reg.fit(frames, y)  # encodes again, then one epoch
    fit_s = clock() - t0
    epoch_s = fit_s - encode_s
    return {
        "emitters_per_frame": float(np.mean([len(p) for p in y])),
        "encode_frames_per_s": n_frames / encode_s,
        "epoch_frames_per_s": n_frames / epoch_s,
        "fit_1_epoch_frames_per_s": n_frames / fit_s,
        "precision": reg.precision_,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_training.md")
    args = parser.parse_args(argv)
    lines = [
        f"CPU: {cpu_model()}; {args.threads} thread(s); load average "
        f"{os.getloadavg()[0]:.1f} at the start; {args.frames} frames of 64x64; "
        "default network (9 layers, 32 channels, folded head, r = 7).",
        "",
        "| density /um^2 | emitters/frame | precision | targets frames/s "
        "| epoch frames/s | fit of 1 epoch frames/s |",
        "|---|---|---|---|---|---|",
    ]
    for density in (1.0, 5.0):
        r = measure(args.frames, density, args.threads)
        lines.append(
            f"| {density} | {r['emitters_per_frame']:.0f} | {r['precision']} "
            f"| {r['encode_frames_per_s']:.0f} | {r['epoch_frames_per_s']:.0f} "
            f"| {r['fit_1_epoch_frames_per_s']:.0f} |"
        )
    lines.append("")
    lines.append(f"load average at the end {os.getloadavg()[0]:.1f}")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
