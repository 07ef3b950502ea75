"""Resident memory of long prediction runs (Linux: needs /proc/self/status)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm._memory import trim_heap
from sklearn_smlm.peaks import maps_to_localizations

_LINUX = Path("/proc/self/status").is_file()

# A fresh process (a clean heap): localize 48 frames of 256 x 256 chunk by
# chunk with the shipped model, keeping every table as predict(stack) does,
# and report the anonymous resident memory after the first and the last chunk.
_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator

    def rss_anon_mb():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024.0

    loc = DistanceTransformLocalizer.pretrained(device="cpu")
    sim = PAFPSimulator.from_preset(
        "low_density", frame_shape=(256, 256), random_state=3
    )
    frames = np.clip(np.rint(sim.simulate(48)[0]), 0, 65535).astype(np.uint16)
    kept, after = [], []
    for table in loc.iter_predict(frames, chunk_size=8):
        kept.append(table)
        after.append(rss_anon_mb())
    print(json.dumps({"after": after, "n_locs": sum(map(len, kept))}))
    """
)


@pytest.mark.skipif(not _LINUX, reason="needs Linux's /proc/self/status")
def test_resident_memory_of_a_long_run_does_not_grow_with_the_stack():
    out = subprocess.run(
        [sys.executable, "-c", _CHILD],
        capture_output=True,
        text=True,
        check=True,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    after = res["after"]
    # the kept tables hold well under 1 MB; one chunk's maps are 100 MB.
    # Before the fix the heap grew by about 30 MB per chunk (DataFrames made
    # per batch, and the kept tables splitting the freed space): +164 MB.
    assert res["n_locs"] > 48 * 50
    assert after[-1] - after[0] < 40.0, after


def test_heap_trim_is_found_on_glibc_and_a_no_op_elsewhere(monkeypatch):
    import platform

    from sklearn_smlm import _memory

    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert _memory._MALLOC_TRIM is not None
        big = np.ones(50_000_000 // 8)  # freed heap memory to give back
        del big
        assert trim_heap() in (True, False)  # glibc's answer: whether it trimmed
    monkeypatch.setattr(_memory, "_MALLOC_TRIM", None)
    assert trim_heap() is False


def test_batched_prediction_equals_one_table_over_all_maps():
    # predict builds one table from every batch's columns: the same table as
    # the peak extraction of the maps of all frames at once
    X, y = PAFPSimulator(
        frame_shape=(24, 24), density_per_um2=2.0, random_state=0
    ).simulate(10)
    loc = DistanceTransformLocalizer(
        n_layers=2,
        n_channels=4,
        upscaling=2,
        d_max=4.0,
        max_epochs=2,
        threshold=5.0,
        validation_fraction=0,
        random_state=0,
    ).fit(X, y)
    for batch_size in (1, 3, 10):
        maps = loc.predict_maps(X, batch_size=batch_size)
        whole = maps_to_localizations(
            maps,
            loc.threshold,
            upscaling=loc.upscaling,
            pixel_size_nm=loc.pixel_size_nm,
        )
        assert len(whole) > 10
        # (the sub-pixel refinement of differently sized arrays may round
        # the last bit otherwise: 1e-13 relative)
        pd.testing.assert_frame_equal(
            # predict also measures photons and uncertainty on the raw frames
            loc.predict(X, batch_size=batch_size)[list(whole.columns)],
            whole,
            rtol=1e-12,
            atol=0.0,
        )
    empty = loc.set_params(threshold=1e6).predict(X, batch_size=3)
    columns = ["frame", "x_nm", "y_nm", "score", "photons", "background"]
    assert list(empty.columns) == [*columns, "uncertainty_nm"] and not len(empty)
    assert empty["frame"].dtype == np.int64
