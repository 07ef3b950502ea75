import sys
import time

import numpy as np
import pandas as pd
import pytest

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm.io import TiffStack, write_stack
from sklearn_smlm.parallel import predict_dask, predict_joblib


@pytest.fixture(scope="module")
def localizer():
    X, y = PAFPSimulator(frame_shape=(16, 16), random_state=0).simulate(16)
    return DistanceTransformLocalizer(
        n_layers=2,
        n_channels=8,
        max_epochs=2,
        batch_size=4,
        upscaling=3,
        d_max=15.0,
        validation_fraction=0,
        precision="fp32",
        threshold=20.0,  # an untrained-ish net: many peaks to compare
        random_state=0,
    ).fit(X, y)


@pytest.fixture(scope="module")
def frames():
    X, _ = PAFPSimulator(
        frame_shape=(20, 24), density_per_um2=2.0, random_state=1
    ).simulate(23)
    return X.astype(np.uint16)


@pytest.fixture(scope="module")
def expected(localizer, frames):
    table = localizer.predict(frames)
    # the comparison is only meaningful with detections in most frames
    assert len(table) > 200 and table.frame.nunique() == len(frames)
    return table


@pytest.fixture(scope="module")
def tiff_files(frames, tmp_path_factory):
    folder = tmp_path_factory.mktemp("stack")
    paths = []
    for i, (a, b) in enumerate([(0, 10), (10, 11), (11, 23)]):
        paths.append(folder / f"part_{i}.tif")
        write_stack(paths[-1], frames[a:b])
    return paths


def test_joblib_two_processes_equals_predict(localizer, frames, expected):
    table = predict_joblib(localizer, frames, n_jobs=2, chunk_size=5)
    pd.testing.assert_frame_equal(table, expected, check_exact=True)


@pytest.mark.parametrize("backend", ["threading", "sequential"])
def test_joblib_in_process_backends(localizer, frames, expected, backend):
    table = predict_joblib(localizer, frames, n_jobs=2, chunk_size=7, backend=backend)
    pd.testing.assert_frame_equal(table, expected, check_exact=True)


def test_joblib_reads_tiff_files_in_workers(localizer, tiff_files, expected):
    with TiffStack(tiff_files) as stack:
        table = predict_joblib(localizer, stack, n_jobs=2, chunk_size=4)
    pd.testing.assert_frame_equal(table, expected, check_exact=True)


def test_joblib_frame_numbers_are_global(localizer, frames, expected):
    # the last chunk alone: its frames keep their stack numbers 20, 21, 22
    table = predict_joblib(localizer, frames[20:], n_jobs=1, chunk_size=2)
    part = expected[expected.frame >= 20].reset_index(drop=True)
    pd.testing.assert_frame_equal(table.assign(frame=table.frame + 20), part)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(chunk_size=0), ValueError, "chunk_size must be >= 1"),
        (dict(chunk_size=2.5), TypeError, "chunk_size must be an integer"),
        (dict(n_jobs=0), ValueError, "n_jobs must not be 0"),
        (dict(n_jobs="2"), TypeError, "n_jobs must be an integer"),
    ],
)
def test_joblib_bad_parameters(localizer, frames, kwargs, error, match):
    with pytest.raises(error, match=match):
        predict_joblib(localizer, frames, **kwargs)


@pytest.mark.parametrize("function", [predict_joblib, predict_dask])
def test_bad_frames_and_localizers(localizer, function):
    pytest.importorskip("dask.array")
    from sklearn.exceptions import NotFittedError

    with pytest.raises(ValueError, match="no frames"):
        function(localizer, np.zeros((0, 8, 8)))
    with pytest.raises(ValueError, match="shape"):
        function(localizer, np.zeros((2, 3, 8, 8)))
    with pytest.raises(TypeError, match="DistanceTransformLocalizer"):
        function(object(), np.zeros((2, 8, 8)))
    with pytest.raises(NotFittedError):
        function(DistanceTransformLocalizer(), np.zeros((2, 8, 8)))


def test_empty_result_has_the_columns(localizer, frames):
    localizer.set_params(threshold=1e9)
    try:
        table = predict_joblib(localizer, frames, n_jobs=1, chunk_size=10)
        direct = localizer.predict(frames)
    finally:
        localizer.set_params(threshold=20.0)
    # the columns of predict's own empty table (uncertainty columns included)
    assert len(table) == 0 and list(table.columns) == list(direct.columns)
    assert {"photons", "background", "uncertainty_nm"} <= set(table.columns)


# ---------------------------------------------------------------------- dask
def test_dask_local_scheduler_equals_predict(localizer, frames, expected):
    da = pytest.importorskip("dask.array")
    # uneven input chunks: rechunked along the frames only
    table = predict_dask(
        localizer, da.from_array(frames, chunks=(9, 5, 7)), chunk_size=4
    )
    pd.testing.assert_frame_equal(table, expected, check_exact=True)
    # numpy and a single frame are wrapped
    pd.testing.assert_frame_equal(
        predict_dask(localizer, frames, chunk_size=6), expected, check_exact=True
    )
    single = predict_dask(localizer, frames[3])
    pd.testing.assert_frame_equal(single, localizer.predict(frames[3]))
    part = expected[expected.frame == 3].assign(frame=0).reset_index(drop=True)
    # a batch of one frame may round differently from a batch of eight
    pd.testing.assert_frame_equal(single, part, check_exact=False, atol=1e-2)


def test_chunks_are_whole_batches(localizer, frames, expected):
    # chunk_size=3 with batches of 4 (the localizer's batch_size) would give
    # passes of 3 frames; rounded up to 4, every pass holds the frames of
    # predict's passes
    from sklearn_smlm.parallel import _aligned_chunk_size

    assert localizer.batch_size == 4
    assert _aligned_chunk_size(localizer, 3, None, (20, 24)) == 4
    assert _aligned_chunk_size(localizer, 9, None, (20, 24)) == 12
    assert _aligned_chunk_size(localizer, 9, 3, (20, 24)) == 9
    # large frames: predict's batch is bounded to about 32 MB of maps
    # (2**23 map pixels): 512 x 512 at r = 3 -> 3 frames, chunks of 21
    assert _aligned_chunk_size(localizer, 20, None, (512, 512)) == 21
    table = predict_joblib(localizer, frames, n_jobs=1, chunk_size=1, batch_size=2)
    pd.testing.assert_frame_equal(
        table, localizer.predict(frames, batch_size=2), check_exact=True
    )
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        predict_joblib(localizer, frames, batch_size=0)


def test_dask_reads_zarr_and_tiff_files(localizer, frames, expected, tiff_files):
    pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    store = zarr.create_array(
        store={}, shape=frames.shape, chunks=(5, 20, 24), dtype=frames.dtype
    )
    store[:] = frames
    pd.testing.assert_frame_equal(
        predict_dask(localizer, store, chunk_size=8), expected, check_exact=True
    )
    with TiffStack(tiff_files) as stack:
        table = predict_dask(localizer, stack, chunk_size=8)
    pd.testing.assert_frame_equal(table, expected, check_exact=True)


def test_dask_local_cluster_two_workers_equals_predict(
    localizer, frames, expected, tiff_files
):
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    start = time.perf_counter()
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        # the active client is picked up without being passed
        table = predict_dask(localizer, frames, chunk_size=5)
        with TiffStack(tiff_files) as stack:
            from_files = predict_dask(localizer, stack, chunk_size=5, client=client)
        # both workers took part
        assert len(client.scheduler_info()["workers"]) == 2
    pd.testing.assert_frame_equal(table, expected, check_exact=True)
    pd.testing.assert_frame_equal(from_files, expected, check_exact=True)
    assert time.perf_counter() - start < 60


def test_dask_missing_gives_a_clear_import_error(localizer, frames, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"pip install 'sklearn-smlm\[dask\]'"):
        predict_dask(localizer, frames)


def test_dask_bad_chunk_size(localizer, frames):
    pytest.importorskip("dask.array")
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        predict_dask(localizer, frames, chunk_size=0)
