"""Count the cases the fuzz suite (``tests/test_fuzz.py``) runs, per test.

Runs the suite in one process with hypothesis' statistics and writes
``results/fuzz.md`` and ``results/fuzz.csv``: for every property test the
number of passing, failing and invalid (rejected by the strategy) examples,
and the total. The default is what CI runs (derandomized, 100 cases per test,
50 for the CLI); ``--examples N`` and ``--random`` run a deeper hunt, whose
results go to ``results/fuzz_deep.*``.

    python benchmarks/count_fuzz_cases.py
    python benchmarks/count_fuzz_cases.py --examples 1000 --random
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# hypothesis' statistics: a "tests/test_fuzz.py::test_x:" line, then lines
# like "  - 100 passing examples, 0 failing examples, 3 invalid examples"
_TEST = re.compile(r"^(tests/test_fuzz\.py::\S+?):?\s*$")
_COUNTS = re.compile(
    r"(\d+) passing examples?, (\d+) failing examples?, (\d+) invalid examples?"
)


def parse_statistics(text):
    """Rows of (test, passing, failing, invalid) from pytest's output."""
    rows, test = [], None
    for line in text.splitlines():
        line = line.strip()
        found = _TEST.match(line)
        if found:
            test = found.group(1).split("::", 1)[1]
            continue
        counts = _COUNTS.search(line)
        if counts and test is not None:
            passing, failing, invalid = map(int, counts.groups())
            rows.append(
                {
                    "test": test,
                    "passing": passing,
                    "failing": failing,
                    "invalid": invalid,
                }
            )
            test = None
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, help="cases per test (default 100)")
    parser.add_argument("--random", action="store_true", help="fresh random cases")
    args = parser.parse_args(argv)
    env = dict(os.environ, MPLBACKEND="Agg")
    if args.examples:
        env["SKLEARN_SMLM_FUZZ_EXAMPLES"] = str(args.examples)
    if args.random:
        env["SKLEARN_SMLM_FUZZ_RANDOM"] = "1"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/test_fuzz.py",
        "-p",
        "no:xdist",
        "-q",
        "--hypothesis-show-statistics",
    ]
    t0 = time.perf_counter()
    out = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - t0
    rows = parse_statistics(out.stdout)
    if out.returncode != 0 or not rows:
        sys.stdout.write(out.stdout + out.stderr)  # the falsifying examples
        raise SystemExit(f"the fuzz suite failed (exit {out.returncode})")
    table = pd.DataFrame(rows)
    total = table[["passing", "failing", "invalid"]].sum()
    deep = bool(args.examples or args.random)
    name = "fuzz_deep" if deep else "fuzz"
    table.to_csv(HERE / "results" / f"{name}.csv", index=False)
    summary = out.stdout.strip().splitlines()[-1]
    mode = f"{args.examples or 100} cases per test" + (
        ", fresh random cases" if args.random else ", derandomized (as in CI)"
    )
    md = [
        "# Fuzz suite: cases run",
        "",
        f"- command: `python benchmarks/count_fuzz_cases.py"
        f"{' --examples ' + str(args.examples) if args.examples else ''}"
        f"{' --random' if args.random else ''}`",
        f"- {mode}; one process; {seconds:.0f} s; pytest: {summary}",
        "",
        f"{int(total['passing'])} passing cases over {len(table)} property tests "
        f"({int(total['invalid'])} inputs rejected by the strategies, "
        f"{int(total['failing'])} failing). Every case ends in a documented "
        "result or a clear error (see the module docstring of "
        "`tests/test_fuzz.py`).",
        "",
        table.to_markdown(index=False),
        "",
    ]
    (HERE / "results" / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
