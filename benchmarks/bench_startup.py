"""Start-up: how long a user waits before the first localization (issue 15, part 2).

Every measurement runs in a fresh Python process, ``--repeats`` times (default
5), and reports the median and the best wall time. Measured:

- the interpreter alone (``python -c pass``);
- ``import sklearn_smlm`` (must stay light: no torch, no numba);
- ``import torch``, then ``import sklearn.base`` and ``pandas`` (the
  dependencies every estimator needs: scikit-learn's ``BaseEstimator`` module
  imports scipy.stats and pandas);
- ``DistanceTransformLocalizer.pretrained()`` after ``import torch``, timed
  inside the child (the goal: <= 1.0 s), and the share of it that is
  ``import sklearn.base`` + ``pandas``;
- ``sklearn-smlm localize`` of a 16-frame 64x64 uint16 TIFF to a CSV, the whole
  command (the goal: <= 2.5 s wall on 2 cores), next to the floor set by its
  imports alone (``import torch, sklearn.base, pandas, tifffile``).

Usage::

    python benchmarks/bench_startup.py [--repeats 5]

Writes ``benchmarks/results/startup.csv`` and ``startup.md``. The machine's
load shifts these numbers by tens of percent: the load average is recorded,
and the goals are read against the floor measured in the same run.
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

SECTIONS = ["startup"]

PRETRAINED_AFTER_TORCH = """
import time
import torch
t0 = time.perf_counter()
import sklearn.base, pandas
t1 = time.perf_counter()
from sklearn_smlm import DistanceTransformLocalizer
DistanceTransformLocalizer.pretrained()
t2 = time.perf_counter()
print(t2 - t0, t1 - t0)
"""

LIGHT_IMPORT = """
import sys
import sklearn_smlm
heavy = sorted(m for m in ("torch", "numba", "skorch") if m in sys.modules)
print(",".join(heavy) or "none")
"""


def wall(cmd):
    """Wall seconds and stdout of one run of ``cmd`` (raises on failure)."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1][:200]
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {last}")
    return seconds, out.stdout.strip()


def summarize(name, values, goal="", note=""):
    return {
        "measure": name,
        "median_s": C.fmt(statistics.median(values), 3),
        "best_s": C.fmt(min(values), 3),
        "runs": len(values),
        "goal": goal,
        "note": note,
    }


def localize_command():
    """The installed console script beside this Python, else ``-m``."""
    script = Path(sys.executable).with_name("sklearn-smlm")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sklearn_smlm"]


def section_startup(args, repeats):
    py = sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        import tifffile

        tif = Path(tmp) / "f16.tif"
        rng = np.random.default_rng(0)
        tifffile.imwrite(tif, rng.poisson(100, (16, 64, 64)).astype(np.uint16))
        localize = localize_command() + ["localize", str(tif), "-o", str(tif) + ".csv"]
        cases = [
            ("python -c pass", [py, "-c", "pass"]),
            ("import sklearn_smlm", [py, "-c", LIGHT_IMPORT]),
            ("import torch", [py, "-c", "import torch"]),
            (
                "import torch, sklearn.base, pandas, tifffile (floor of localize)",
                [py, "-c", "import torch, sklearn.base, pandas, tifffile"],
            ),
            ("pretrained() after import torch", [py, "-c", PRETRAINED_AFTER_TORCH]),
            ("sklearn-smlm localize, 16 frames 64x64", localize),
        ]
        times = {name: [] for name, _ in cases}
        inner = {"pretrained": [], "deps": []}
        heavy = set()
        wall(localize)  # warm the file cache and any compiled-code cache
        for _ in range(repeats):  # interleaved, so load drifts hit all alike
            for name, cmd in cases:
                seconds, out = wall(cmd)
                times[name].append(seconds)
                if name.startswith("pretrained"):
                    total, deps = map(float, out.split())
                    inner["pretrained"].append(total)
                    inner["deps"].append(deps)
                elif name == "import sklearn_smlm":
                    heavy.add(out)
            C.log("  ", {k: round(v[-1], 2) for k, v in times.items()})
    for name, _ in cases:
        if name.startswith("pretrained"):
            rows.append(
                summarize(
                    "pretrained() after import torch (timed in the process)",
                    inner["pretrained"],
                    goal="<= 1.0 s",
                    note="of which import sklearn.base + pandas: median "
                    f"{statistics.median(inner['deps']):.3f} s",
                )
            )
            rows.append(summarize(name + ", whole process", times[name]))
        elif name == "import sklearn_smlm":
            rows.append(
                summarize(
                    name,
                    times[name],
                    note="heavy modules loaded: " + ", ".join(sorted(heavy)),
                )
            )
        elif name.startswith("sklearn-smlm localize"):
            rows.append(summarize(name, times[name], goal="<= 2.5 s wall"))
        else:
            rows.append(summarize(name, times[name]))
    return rows


def main(argv=None):
    parser = C.make_parser(__doc__, SECTIONS)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each measure")
    args = C.finish_args(parser.parse_args(argv), SECTIONS)
    conditions = C.Conditions(argv)
    rows = section_startup(args, 2 if args.smoke else args.repeats)
    conditions.close()
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False))
    notes = (
        "Each measure is a fresh process, run interleaved with the others; "
        "median and best wall time. `pretrained()` is timed inside the process "
        "after `import torch`. The 16-frame file holds Poisson background "
        "(100 counts). A goal is read against the floor measured in the same run: "
        "what `import torch`, `sklearn.base` and `pandas` cost on this machine."
    )
    return C.write_section(
        args.out, "startup", "Start-up", table, conditions=conditions, notes=notes
    )


if __name__ == "__main__":
    main()
