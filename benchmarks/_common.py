"""Shared helpers of the benchmark scripts: arguments, conditions, timing, output.

Not part of the library: the scripts in ``benchmarks/`` import it as a sibling
module. Every result is written as CSV + markdown (+ PNG curves) under
``benchmarks/results/`` (``benchmarks/results/quick/`` in ``--quick`` mode), each
markdown file starting with the conditions of the run (CPU, cores, versions,
load average at the start and the end), because the numbers of a shared
2-core machine mean little without them.
"""

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache"
DATA_BT_HD = Path("/work/shared/data/bt_hd_recreated")
if not DATA_BT_HD.exists():
    DATA_BT_HD = ROOT / "data" / "bt_hd_recreated"

#: The paper's published figures (method.md section 8), NOT measured here.
PAPER = {
    "table1": [
        ("ThunderSTORM", 0.280, 44.0),
        ("CNN, dropout", 0.644, 43.7),
        ("CNN, no dropout", 0.588, 41.3),
    ],
    "mt0_n1_hd_2016": [
        ("ThunderSTORM", 0.597, 39.5),
        ("CNN, trained on simulation", 0.672, 35.7),
        ("CNN, trained on contest data", 0.669, 39.2),
    ],
    "mt0_n2_hd_2016": [
        ("ThunderSTORM", 0.487, 48.4),
        ("CNN, trained on simulation", 0.594, 52.4),
        ("CNN, trained on contest data", 0.597, 52.2),
    ],
}
#: The paper's speed: 500 validation frames (64x64) in about 90 s.
PAPER_FRAMES_PER_S = 500.0 / 90.0

TOLERANCES_NM = np.arange(10.0, 251.0, 10.0)


# ---------------------------------------------------------------- arguments
def make_parser(doc, sections):
    """Argument parser with the options every benchmark script shares."""
    parser = argparse.ArgumentParser(
        description=doc.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only",
        default=",".join(sections),
        help=f"comma-separated sections to run (default all: {','.join(sections)})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small settings (a few minutes); results go to benchmarks/results/quick/",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny 16x16 frames and a tiny network, only to test that the script "
        "runs (implies --quick; numbers are meaningless)",
    )
    parser.add_argument(
        "--out", default=None, help="output folder (default benchmarks/results)"
    )
    parser.add_argument(
        "--cache",
        default=str(CACHE),
        help="folder of trained models reused by later runs (default "
        "benchmarks/.cache)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="retrain even if a cached model exists"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=40,
        help="epoch limit of every training (early stopping, patience 8, usually "
        "ends sooner)",
    )
    parser.add_argument(
        "--train-device",
        default="cpu",
        help="device of every training: 'cpu' (default, so that training times "
        "are this machine's), 'cuda' or 'auto'; a model trained elsewhere than "
        "on the CPU is cached under its own name (suffix _cuda)",
    )
    parser.add_argument(
        "--picasso-python",
        default=None,
        help="a Python with picassosr installed (own venv: it pins its own numpy), "
        "e.g. /tmp/picasso_venv/bin/python; Picasso rows say 'not run' without it",
    )
    return parser


def finish_args(args, sections):
    """Resolve ``--only``, ``--smoke`` and the output folder in place."""
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(sections))
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; choose from {sections}")
    if args.smoke:
        args.quick = True
    if args.out is None:
        args.out = str(RESULTS / "smoke" if args.smoke else RESULTS / "quick")
        if not args.quick:
            args.out = str(RESULTS)
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    args.cache = Path(args.cache)
    if args.smoke:  # never mix smoke models with real ones
        args.cache = args.out / "cache"
    return args


# --------------------------------------------------------------- conditions
def cpu_model():
    """The CPU's model name (from /proc/cpuinfo, else platform)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def git_commit():
    """Short commit of the repository, with ``+dirty`` if files changed."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Conditions:
    """Machine and run conditions, recorded at the start and closed at the end."""

    def __init__(self, argv=None):
        import torch

        import sklearn_smlm

        self.start = time.time()
        self.info = {
            "command": "python " + " ".join(argv if argv is not None else sys.argv),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "numpy": np.__version__,
            "sklearn_smlm": getattr(sklearn_smlm, "__version__", "?"),
            "commit": git_commit(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
            "load_start": load_average(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def close(self):
        """Record the load average and the duration at the end."""
        self.info["load_end"] = load_average()
        self.info["duration_s"] = round(time.time() - self.start, 1)
        return self

    def markdown(self):
        """The conditions as a markdown bullet list."""
        i = self.info
        lines = [
            f"- command: `{i['command']}`",
            f"- date: {i['date']}, commit {i['commit']}",
            f"- CPU: {i['cpu']}, {i['cores']} cores "
            f"(torch capability {i['torch_cpu_capability']}, torch threads "
            f"{i['torch_threads']}, OMP_NUM_THREADS={i['OMP_NUM_THREADS']})",
            f"- versions: python {i['python']}, torch {i['torch']}, numpy "
            f"{i['numpy']}, sklearn-smlm {i['sklearn_smlm']}",
            f"- load average (1/5/15 min) at start {i['load_start']}"
            + (f", at end {i['load_end']}" if "load_end" in i else ""),
        ]
        if "duration_s" in i:
            lines.append(f"- duration: {i['duration_s'] / 60:.1f} min")
        return "\n".join(lines) + "\n"


def load_average():
    """The 1, 5 and 15 minute load averages as "a / b / c" ("n/a" where unknown)."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


# ------------------------------------------------------------------- timing
class Stopwatch:
    """Accumulate wall time per named stage: ``with sw("network"): ...``."""

    def __init__(self):
        self.seconds = {}

    @contextlib.contextmanager
    def __call__(self, name):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + (
                time.perf_counter() - t0
            )


def best_of(fn, repeats):
    """Run ``fn()`` ``repeats`` times; return (best seconds, last result)."""
    best, result = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def peak_rss_mb():
    """Peak resident memory of this process so far (VmHWM), in MiB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------- output
def fmt(value, digits=3):
    """Round floats for tables; keep strings and ints."""
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return value
        return round(float(value), digits)
    return value


def write_section(out, name, title, table, *, conditions, notes="", extra_md=""):
    """Write ``<name>.csv`` and ``<name>.md``; return the markdown text."""
    out = Path(out)
    table.to_csv(out / f"{name}.csv", index=False)
    md = (
        f"# {title}\n\n"
        + conditions.markdown()
        + "\n"
        + (notes.strip() + "\n\n" if notes else "")
        + table.to_markdown(index=False)
        + "\n"
        + (("\n" + extra_md.strip() + "\n") if extra_md else "")
    )
    (out / f"{name}.md").write_text(md)
    return md


def plot_curves(sweeps, path, title):
    """JI and RMSE against tolerance (the paper's Fig. 3) for several methods."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sklearn_smlm.metrics import plot_tolerance_sweep

    sweeps = {k: v for k, v in sweeps.items() if v is not None and len(v)}
    if not sweeps:
        return None
    axes = plot_tolerance_sweep(sweeps)
    fig = axes[0].figure
    fig.set_size_inches(11, 4.2)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_summary(out, parts, conditions, title="Benchmark summary"):
    """Combine section markdown files into ``SUMMARY.md``."""
    text = f"# {title}\n\n" + conditions.markdown() + "\n"
    for part in parts:
        # Demote the section titles one level under the summary's.
        text += "\n" + "\n".join(
            ("#" + line if line.startswith("#") else line) for line in part.splitlines()
        )
        text += "\n"
    (Path(out) / "SUMMARY.md").write_text(text)
    return text


# --------------------------------------------------------------------- data
def load_bt_hd(max_frames=None):
    """Frames and truth of ``bt_hd_recreated`` (evaluation only, never training)."""
    from sklearn_smlm.io import read_localizations, read_stack

    frames = read_stack(DATA_BT_HD / "frames.tif").astype(np.float32)
    truth = read_localizations(DATA_BT_HD / "ground_truth.csv")
    if max_frames is not None:
        frames = frames[:max_frames]
        truth = truth[truth["frame"] < max_frames].reset_index(drop=True)
    return frames, truth[["frame", "x_nm", "y_nm"]]


def positions_2d(y):
    """Per-frame positions without ``z`` (the CNN localizes laterally)."""
    return [np.asarray(p)[:, :2] for p in y]


# --------------------------------------------------------------- evaluation
def evaluate(truth, table, *, tolerances_nm=TOLERANCES_NM, **kwargs):
    """Tolerance sweep and the row at the largest tolerance (250 nm)."""
    from sklearn_smlm.metrics import tolerance_sweep

    sweep = tolerance_sweep(truth, table, tolerances_nm=tolerances_nm, **kwargs)
    return sweep, sweep.iloc[-1].to_dict()


def n_frames_of(y):
    return len(y) if not isinstance(y, pd.DataFrame) else int(y["frame"].max()) + 1


def set_precision(loc, precision):
    """Switch a fitted localizer between fp32 and bf16 inference.

    ``predict`` resolves the localizer's ``precision`` at each call; the
    fitted network step is set too, for code that calls it directly. (The
    skorch net is not touched: on a loaded model it is built only on demand,
    and prediction does not read it.)
    """
    from sklearn_smlm.nn import resolve_precision

    loc.set_params(precision=precision)
    loc.regressor_.set_params(precision=precision)
    loc.regressor_.precision_ = resolve_precision(precision, loc.regressor_.device_)
    return loc


def choose_threshold(
    loc, X, y, thresholds, tolerance_nm=250.0, *, metric="jaccard", **evaluate_kwargs
):
    """Threshold of the best ``metric`` on (simulated) validation frames.

    ``metric`` is a key of ``localization_metrics`` (``"jaccard"``, or
    ``"efficiency"`` with the challenge's ``evaluate_kwargs``); returns the
    threshold and ``{threshold: score}``.
    """
    from sklearn_smlm.metrics import localization_metrics
    from sklearn_smlm.peaks import maps_to_localizations

    maps = loc.predict_maps(X)
    scores = {}
    for t in thresholds:
        table = maps_to_localizations(
            maps,
            t,
            upscaling=loc.upscaling,
            pixel_size_nm=loc.pixel_size_nm,
            min_distance=loc.min_distance,
        )
        scores[t] = localization_metrics(
            y, table, tolerance_nm=tolerance_nm, **evaluate_kwargs
        )[metric]
    return max(scores, key=scores.get), scores


# ----------------------------------------------------------------- training
def history_summary(loc):
    """Epoch of the best validation loss and the training time to reach it."""
    history = loc.net_.history
    durations = np.array([row.get("dur", np.nan) for row in history], float)
    valid = np.array([row.get("valid_loss", np.nan) for row in history], float)
    if np.isfinite(valid).any():
        best = int(np.nanargmin(valid))
    else:
        best = len(history) - 1
    return {
        "n_epochs": len(history),
        "best_epoch": best + 1,
        "best_valid_loss": float(valid[best]) if np.isfinite(valid[best]) else None,
        "seconds_to_best": float(np.nansum(durations[: best + 1])),
        "seconds_total_epochs": float(np.nansum(durations)),
    }


def cached_model(cache, key, build, *, use_cache=True, log=print):
    """Load ``<cache>/<key>.pt`` or build, save and return a localizer.

    ``build()`` returns ``(localizer, info)``; ``info`` (a JSON-able dict,
    e.g. the training time) is stored in the model file as ``training_info_``
    so that a cached model still reports how long its training took.
    """
    from sklearn_smlm import DistanceTransformLocalizer

    path = Path(cache) / f"{key}.pt"
    if use_cache and path.is_file():
        loc = DistanceTransformLocalizer.load(path, device="cpu")
        info = dict(loc.training_info_ or {})
        info["from_cache"] = str(path)
        log(f"  loaded cached model {path}")
        return loc, info
    loc, info = build()
    info = json.loads(json.dumps(info, default=_json_default))
    loc.training_info_ = info
    loc.save(path)
    info = dict(info, from_cache=None)
    return loc, info


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, Path)):
        return list(value) if isinstance(value, tuple) else str(value)
    return str(value)


# ------------------------------------------------------------------ Picasso
#: Picasso's current in-memory path, ``localize.localize_frames`` (identify +
#: the ``gausslq`` fit of ``picasso localize``), served by one process of
#: Picasso's own venv so that its runs can be interleaved with ours: one JSON
#: request per line on stdin, one JSON reply per line on stdout.
PICASSO_SERVER = r"""
import json, os, sys, time
real_stdout, sys.stdout = sys.stdout, sys.stderr  # Picasso prints notes
import numpy as np
import numba
from picasso import localize
try:
    from picasso import __version__ as version
except ImportError:
    version = "?"
movie = None
real_stdout.write(json.dumps({"version": version,
                              "numba_threads": numba.config.NUMBA_NUM_THREADS}) + "\n")
real_stdout.flush()
for line in sys.stdin:
    req = json.loads(line)
    try:
        if req["cmd"] == "load":
            path = req["path"]
            if path.endswith(".npy"):
                movie = np.load(path)
            else:
                import tifffile
                movie = tifffile.imread(path)
            movie = np.ascontiguousarray(movie)
            reply = {"n_frames": len(movie)}
        else:
            threads = int(req["threads"])
            numba.set_num_threads(threads)
            params = {"Min. Net Gradient": float(req["min_ng"]),
                      "Box Size": int(req["box"])}
            kw = dict(camera_info=req["camera"], fitting_method=req["method"],
                      threaded=threads > 1)
            if req.get("warm"):  # numba compilation / cache load
                localize.localize_frames(movie[:2], None, params, **kw)
            t, t_cpu = time.perf_counter(), time.process_time()
            locs = localize.localize_frames(movie, None, params, **kw)
            seconds = time.perf_counter() - t
            cpu_seconds = time.process_time() - t_cpu
            x, y, f, ng = (np.asarray(locs[c], dtype=float)
                           for c in ("x", "y", "frame", "net_gradient"))
            ok = np.isfinite(x) & np.isfinite(y)
            px = float(req["camera"]["Pixelsize"])
            # Picasso's pixel centres are at whole numbers: x_nm = (x + 0.5) * px.
            np.save(req["out"], np.stack([f[ok], (x[ok] + 0.5) * px,
                                          (y[ok] + 0.5) * px, ng[ok]]))
            reply = {"seconds": seconds, "cpu_seconds": cpu_seconds,
                     "n": int(ok.sum())}
    except Exception as exc:  # reported to the caller, the server goes on
        reply = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    real_stdout.write(json.dumps(reply) + "\n")
    real_stdout.flush()
"""


def picasso_camera(
    *, baseline_adu=100.0, e_per_adu=1.0, em_gain=1.0, qe=1.0, pixel_size_nm=100.0
):
    """Picasso's ``camera_info`` for the camera of our simulator's presets."""
    return {
        "Baseline": float(baseline_adu),
        "Sensitivity": float(e_per_adu),
        "Gain": float(em_gain),
        "Qe": float(qe),
        "Pixelsize": float(pixel_size_nm),
    }


class PicassoServer:
    """Picasso (``localize.localize_frames``) in a process of its own venv.

    ``python`` is an interpreter with ``picassosr`` installed (it pins its own
    numpy and pandas, hence the separate venv). The process starts with
    ``NUMBA_NUM_THREADS`` = all cores; every call sets the numba threads it
    asks for (``numba.set_num_threads``) and ``threaded=threads > 1``, which is
    what ``localize_frames`` does by default (Picasso's identification then
    runs on ``int(0.8 * cores)`` threads, at least 1, and polls its workers
    every 0.2 s; its CPU ``gausslq`` fit is one loop over the spots).
    Frames are loaded once (:meth:`load`) and stay in the server's memory, so
    that the timing covers the same thing as ours: frames in memory to table.
    Raises ``RuntimeError`` ("not run: ...") when Picasso cannot start.
    """

    def __init__(self, python):
        if not python:
            raise RuntimeError("not run: no --picasso-python given")
        self._tmp = tempfile.TemporaryDirectory()
        script = Path(self._tmp.name) / "picasso_server.py"
        script.write_text(PICASSO_SERVER)
        env = dict(
            os.environ,
            NUMBA_NUM_THREADS=str(os.cpu_count() or 1),
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
        )
        try:
            self._proc = subprocess.Popen(
                [python, str(script)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
                cwd=self._tmp.name,
            )
        except OSError as exc:
            self._tmp.cleanup()
            raise RuntimeError(f"not run: cannot start {python}: {exc}") from None
        hello = self._proc.stdout.readline()
        if not hello:
            self.close()
            raise RuntimeError(
                f"not run: {python} cannot import picasso (pip install picassosr)"
            )
        hello = json.loads(hello)
        self.version = hello["version"]
        self.max_threads = int(hello["numba_threads"])
        self._n_calls = 0

    def _ask(self, request):
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("not run: the Picasso process ended")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"not run: Picasso failed: {reply['error']}")
        return reply

    def load(self, frames):
        """Give the server its frames: an array (sent as uint16) or a TIFF path."""
        if isinstance(frames, (str, Path)):
            path = str(frames)
        else:
            path = str(Path(self._tmp.name) / "frames.npy")
            np.save(path, np.clip(np.rint(frames), 0, 65535).astype(np.uint16))
        return self._ask({"cmd": "load", "path": path})["n_frames"]

    def localize(self, box, min_ng, *, camera=None, threads=1, method="gausslq"):
        """Time ``localize_frames`` on the loaded frames; ``(seconds, table)``.

        ``table`` has ``frame``, ``x_nm``, ``y_nm`` and Picasso's
        ``net_gradient``; the CPU seconds of the call (all its threads) are
        in ``table.attrs["cpu_seconds"]``.
        """
        camera = camera or picasso_camera()
        out = str(Path(self._tmp.name) / f"locs{self._n_calls}.npy")
        self._n_calls += 1
        reply = self._ask(
            {
                "cmd": "run",
                "box": int(box),
                "min_ng": float(min_ng),
                "camera": camera,
                "threads": int(threads),
                "method": method,
                "out": out,
                "warm": self._n_calls == 1,
            }
        )
        f, x, y, ng = np.load(out)
        os.remove(out)
        table = pd.DataFrame(
            {"frame": f.astype(np.int64), "x_nm": x, "y_nm": y, "net_gradient": ng}
        )
        table.attrs["cpu_seconds"] = reply["cpu_seconds"]
        return reply["seconds"], table

    def close(self):
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_picasso(
    python,
    frames,
    configs,
    *,
    pixel_size_nm=100.0,
    baseline_adu=100.0,
    camera=None,
    threads=1,
    repeats=1,
):
    """Run Picasso's ``localize_frames`` on ``frames`` for several (box, min_ng).

    ``frames`` is an array or the path of a TIFF file, loaded into memory.
    ``threads`` numba threads (1: ``threaded=False``, Picasso's serial path).
    Returns a list of ``(box, min_ng, seconds, table)``, ``seconds`` the best
    of ``repeats``; raises ``RuntimeError`` with the reason when Picasso
    cannot run.
    """
    camera = camera or picasso_camera(
        baseline_adu=baseline_adu, pixel_size_nm=pixel_size_nm
    )
    results = []
    with PicassoServer(python) as server:
        server.load(frames)
        for box, min_ng in configs:
            best, table = np.inf, None
            for _ in range(repeats):
                seconds, table = server.localize(
                    box, min_ng, camera=camera, threads=threads
                )
                best = min(best, seconds)
            results.append((box, min_ng, best, table))
    return results


def picasso_cli_command(python, path, box, min_ng, camera, method="lq"):
    """The ``picasso localize`` command line for one file (no drift correction)."""
    return [
        python,
        "-m",
        "picasso",
        "localize",
        str(path),
        "-b",
        str(int(box)),
        "-g",
        str(int(min_ng)),
        "-a",
        method,
        "-d",
        "0",
        "-bl",
        str(int(camera["Baseline"])),
        "-s",
        str(camera["Sensitivity"]),
        "-ga",
        str(int(camera["Gain"])),
        "-qe",
        str(camera["Qe"]),
        "-px",
        str(int(camera["Pixelsize"])),
    ]


def run_command(cmd, *, env=None, cwd=None):
    """Run a command; return (wall seconds, peak RSS of the children in MiB).

    Raises ``RuntimeError`` with the last line of stderr if it fails.
    """
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
        cwd=cwd,
        check=False,
    )
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1][:200]
        raise RuntimeError(f"not run: {Path(cmd[0]).name} failed: {last}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of the children is the largest of any child so far
    return seconds, (peak / 1024.0 if peak > before else float("nan"))


def log(*parts):
    """Print with a flush (benchmarks run for minutes; show progress)."""
    print(*parts, flush=True)


# ------------------------------------------------------------ paper models
def run_settings(args):
    """Sizes of the run: full, ``--quick`` or ``--smoke``."""
    if args.smoke:
        return {
            "frame_shape": (16, 16),
            "net": {"n_layers": 2, "n_channels": 8},
            "n_train_2013": 24,
            "n_train_2016": 24,
            "max_epochs": 1,
            "n_valid": 8,
            "n_test": 8,
            "n_speed": 16,
            "repeats": 1,
            "batch_sizes": (16,),
            "stack_frames": 40,
            "stack_shape": (32, 32),
        }
    if args.quick:
        return {
            "frame_shape": (64, 64),
            "net": {},
            "n_train_2013": 96,
            "n_train_2016": 96,
            "max_epochs": 2,
            "n_valid": 48,
            "n_test": 64,
            "n_speed": 128,
            "repeats": 1,
            "batch_sizes": (16, 32, 64),
            "stack_frames": 500,
            "stack_shape": (256, 256),
        }
    return {
        "frame_shape": (64, 64),
        "net": {},
        "n_train_2013": 1000,
        "n_train_2016": 4000,
        "max_epochs": args.max_epochs,
        "n_valid": 200,
        "n_test": 1000,
        "n_speed": 512,
        "repeats": 3,
        "batch_sizes": (16, 32, 64),
        "stack_frames": 20000,
        "stack_shape": (256, 256),
    }


def train_model(
    args,
    settings,
    *,
    key,
    simulator_params,
    n_frames,
    dropout=0.0,
    threshold=300.0,
    log=log,
):
    """Train (or load from the cache) a localizer on simulated frames only.

    The paper's settings: alpha 7, d_max 35, threshold 300, 9 layers of 32
    channels, sub-pixel upscaling 7 (folded head, the same function), Adam,
    10 % of the frames held out for the validation loss (best epoch kept).
    """
    from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator

    device = getattr(args, "train_device", "cpu")
    full_key = (
        f"{key}_n{n_frames}_e{settings['max_epochs']}_do{dropout:g}_s{args.seed}"
        + ("" if device == "cpu" else f"_{device}")
        + ("_smoke" if args.smoke else "")
    )

    def build():
        t0 = time.perf_counter()
        sim = PAFPSimulator(
            **dict(
                simulator_params,
                frame_shape=settings["frame_shape"],
                random_state=1000 + args.seed,
            )
        )
        X, y = sim.simulate(n_frames)
        simulate_s = time.perf_counter() - t0
        loc = DistanceTransformLocalizer(
            threshold=threshold,
            alpha=7.0,
            d_max=35.0,
            upscaling=7,
            dropout=dropout,
            max_epochs=settings["max_epochs"],
            validation_fraction=0.1,
            random_state=args.seed,
            device=device,
            verbose=0,
            **settings["net"],
        )
        log(
            f"  training {full_key}: {n_frames} frames, up to "
            f"{settings['max_epochs']} epochs ..."
        )
        t1 = time.perf_counter()
        loc.fit(X, positions_2d(y))
        fit_s = time.perf_counter() - t1
        info = {
            "key": full_key,
            "n_frames": n_frames,
            "dropout": dropout,
            "simulate_seconds": simulate_s,
            "fit_seconds": fit_s,
            "train_device": describe_device(loc.regressor_.device_),
            **history_summary(loc),
        }
        log(
            f"  trained in {fit_s / 60:.1f} min, best epoch {info['best_epoch']}"
            f"/{info['n_epochs']} after {info['seconds_to_best'] / 60:.1f} min"
        )
        return loc, info

    return cached_model(
        args.cache, full_key, build, use_cache=not args.no_cache, log=log
    )


def describe_device(device):
    """``"cpu"`` or ``"cuda (NVIDIA H200)"``: where a model was trained."""
    import torch

    device = str(device)
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def test_frames(args, settings, preset_overrides, n_frames, seed_offset):
    """Frames and truth for evaluation; never the frames a model was trained on."""
    from sklearn_smlm import PAFPSimulator

    sim = PAFPSimulator(
        **dict(
            preset_overrides,
            frame_shape=settings["frame_shape"],
            random_state=seed_offset + args.seed,
        )
    )
    X, y = sim.simulate(n_frames)
    return X, positions_2d(y)


def preset(name, **overrides):
    """Parameters of a simulator preset, with overrides."""
    from sklearn_smlm.simulation import PRESETS

    return dict(PRESETS[name], **overrides)


def table1_frames(args, settings):
    """Evaluation frames, truth and name of the Table I look-alike.

    ``bt_hd_recreated`` (evaluation only), or simulated filaments standing in
    for it in ``--smoke`` runs.
    """
    if args.smoke:
        frames, truth = test_frames(
            args,
            settings,
            preset("bt_hd_2013", structure="filaments"),
            settings["n_test"],
            9000,
        )
        return frames, truth, "smoke stand-in (simulated filaments)"
    frames, truth = load_bt_hd()
    return frames, truth, "bt_hd_recreated"
