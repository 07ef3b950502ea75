import os
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from sklearn_smlm import io as smlm_io
from sklearn_smlm.io import (
    SMLMFileError,
    TiffStack,
    read_challenge_csv,
    read_localizations,
    read_stack,
    read_thunderstorm_csv,
    write_challenge_csv,
    write_localizations,
    write_stack,
    write_thunderstorm_csv,
)

GROUND_TRUTH = Path("/work/shared/data/bt_hd_recreated/ground_truth.csv")
FRAMES = Path("/work/shared/data/bt_hd_recreated/frames.tif")

# Values whose decimal text is long or awkward: a round trip through text must
# give back exactly these doubles.
AWKWARD = np.array(
    [0.1, 1 / 3, 2 / 3 * 1e-300, 123456789.12345679, -0.0, 5e-324, 6400.000000000001]
)


def _bits_equal(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def _random_table(n=50, seed=0, uncertainty=True):
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "frame": np.sort(rng.integers(0, 20, n)),
            "x_nm": rng.uniform(0, 6400, n),
            "y_nm": rng.uniform(0, 6400, n),
            "sigma_nm": rng.uniform(80, 200, n),
            "photons": rng.lognormal(7, 1, n),
            "background": rng.uniform(0, 50, n),
            "bkgstd_photons": rng.uniform(1, 5, n),
        }
    )
    table.loc[: len(AWKWARD) - 1, "x_nm"] = AWKWARD
    if uncertainty:
        table["uncertainty_nm"] = rng.uniform(1, 30, n)
    return table


def _assert_tables_identical(a, b):
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for column in a.columns:
        assert a[column].dtype == b[column].dtype, column
        if a[column].dtype.kind == "f":
            assert _bits_equal(a[column], b[column]), column
        else:
            assert (a[column].to_numpy() == b[column].to_numpy()).all(), column


def _no_leftovers(folder, keep=()):
    return sorted(p.name for p in Path(folder).iterdir() if p.name not in keep)


# --------------------------------------------------------------------------- #
# the shared ground truth
# --------------------------------------------------------------------------- #


@pytest.mark.skipif(not GROUND_TRUTH.exists(), reason="shared data not present")
def test_shared_ground_truth_reads_correctly():
    for table in (
        read_thunderstorm_csv(GROUND_TRUTH),
        read_localizations(GROUND_TRUTH),
    ):
        assert list(table.columns) == ["id", "frame", "x_nm", "y_nm"]
        assert len(table) == 81_178
        assert table["frame"].min() == 0 and table["frame"].max() == 360
        assert table["frame"].nunique() == 361
        assert table["frame"].dtype == np.int64 and table["id"].dtype == np.int64
        # first and last lines of the file, by hand:
        # 1,1,777.32214,3753.63916 and 81178,361,5885.60872,2291.58205
        assert table.iloc[0].tolist() == [1, 0, 777.32214, 3753.63916]
        assert table.iloc[-1].tolist() == [81178, 360, 5885.60872, 2291.58205]


@pytest.mark.skipif(not GROUND_TRUTH.exists(), reason="shared data not present")
def test_shared_ground_truth_round_trips_exactly(tmp_path):
    table = read_thunderstorm_csv(GROUND_TRUTH)
    write_thunderstorm_csv(table, tmp_path / "gt.csv")
    _assert_tables_identical(read_thunderstorm_csv(tmp_path / "gt.csv"), table)


@pytest.mark.skipif(not FRAMES.exists(), reason="shared data not present")
def test_shared_frames_read_with_pixel_size():
    with TiffStack(FRAMES) as stack:
        assert stack.shape == (361, 64, 64)
        assert stack.dtype == np.uint16
        # ImageJ unit '\u00B5m' (written as an escape) with 10 pixels per unit
        assert stack.metadata["pixel_size_nm"] == 100.0
        assert stack.metadata["memory_mapped"]
        assert np.array_equal(stack[5], tifffile.imread(FRAMES, key=5))


# --------------------------------------------------------------------------- #
# ThunderSTORM
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("variant", ["uncertainty [nm]", "uncertainty_xy [nm]"])
def test_thunderstorm_file_round_trip_is_exact(tmp_path, variant):
    rng = np.random.default_rng(1)
    n = 30
    header = (
        '"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]",'
        f'"offset [photon]","bkgstd [photon]","chi2","{variant}"'
    )
    values = rng.uniform(0, 7000, (n, 8))
    values[:7, 0] = AWKWARD
    lines = [header] + [
        # ThunderSTORM writes ids and frames as doubles ("3.0")
        f"{i + 1}.0,{i // 3 + 1}.0," + ",".join(repr(float(v)) for v in row)
        for i, row in enumerate(values)
    ]
    path = tmp_path / "ts.csv"
    path.write_text("\n".join(lines) + "\n")

    table = read_thunderstorm_csv(path)
    assert list(table.columns) == [
        "id",
        "frame",
        "x_nm",
        "y_nm",
        "sigma_nm",
        "photons",
        "background",
        "bkgstd_photons",
        "chi2",
        "uncertainty_nm",
    ]
    assert table.attrs["thunderstorm_uncertainty_column"] == variant
    assert table["id"].tolist() == list(range(1, n + 1))
    assert table["frame"].tolist() == [i // 3 for i in range(n)]
    assert _bits_equal(table["x_nm"], values[:, 0])
    assert _bits_equal(table["uncertainty_nm"], values[:, 7])

    write_thunderstorm_csv(table, tmp_path / "out.csv")
    written = (tmp_path / "out.csv").read_text().splitlines()
    assert written[0] == header
    assert written[1].startswith("1,1,")
    again = read_thunderstorm_csv(tmp_path / "out.csv")
    _assert_tables_identical(again, table)
    assert again.attrs["thunderstorm_uncertainty_column"] == variant


def test_thunderstorm_table_round_trip_adds_id_and_keeps_extra_columns(tmp_path):
    table = _random_table()
    table["score"] = np.linspace(0, 1, len(table))
    table["label"] = ["a,b" if i % 2 else "c" for i in range(len(table))]
    path = tmp_path / "locs.csv"
    write_thunderstorm_csv(table, path)
    header = path.read_text().splitlines()[0]
    assert header == (
        '"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]",'
        '"offset [photon]","bkgstd [photon]","uncertainty [nm]","score","label"'
    )
    back = read_thunderstorm_csv(path)
    assert back["id"].tolist() == list(range(1, len(table) + 1))
    _assert_tables_identical(back.drop(columns="id"), table)


def test_thunderstorm_3d_columns(tmp_path):
    path = tmp_path / "3d.csv"
    path.write_text(
        '"id","frame","x [nm]","y [nm]","z [nm]","uncertainty [nm]",'
        '"uncertainty_z [nm]"\n1,1,100,200,10,7.5,21\n2,2,300,400,-5,9,30\n'
    )
    table = read_thunderstorm_csv(path)
    assert table["z_nm"].tolist() == [10.0, -5.0]
    assert table["uncertainty_z_nm"].tolist() == [21.0, 30.0]
    assert table["frame"].tolist() == [0, 1]
    write_thunderstorm_csv(table, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == (
        '"id","frame","x [nm]","y [nm]","z [nm]","uncertainty [nm]",'
        '"uncertainty_z [nm]"'
    )


def test_header_only_file_is_an_empty_valid_table(tmp_path):
    path = tmp_path / "empty_ts.csv"
    path.write_text('"id","frame","x [nm]","y [nm]","sigma [nm]"\n')
    table = read_thunderstorm_csv(path)
    assert len(table) == 0
    assert list(table.columns) == ["id", "frame", "x_nm", "y_nm", "sigma_nm"]
    assert table["frame"].dtype == np.int64 and table["x_nm"].dtype == np.float64
    write_thunderstorm_csv(table, tmp_path / "again.csv")
    assert len(read_localizations(tmp_path / "again.csv")) == 0


# --------------------------------------------------------------------------- #
# SMLM challenge
# --------------------------------------------------------------------------- #


def test_challenge_round_trip_is_exact(tmp_path):
    table = _random_table(uncertainty=False)[["frame", "x_nm", "y_nm", "photons"]]
    table.insert(0, "id", np.arange(10, 10 + len(table)))
    table.insert(4, "z_nm", np.linspace(-750.1, 750.3, len(table)))
    path = tmp_path / "activations.csv"
    write_challenge_csv(table, path)
    lines = path.read_text().splitlines()
    assert lines[0] == "Ground-truth,frame,xnano,ynano,znano,intensity"
    assert lines[1].split(",")[:2] == ["10", str(table["frame"].iloc[0] + 1)]
    back = read_challenge_csv(path)
    _assert_tables_identical(back, table)
    _assert_tables_identical(read_localizations(path), table)

    write_challenge_csv(table, tmp_path / "noheader.csv", header=False)
    _assert_tables_identical(read_challenge_csv(tmp_path / "noheader.csv"), table)


def test_challenge_layouts(tmp_path):
    # 2016 generator: header with a trailing space, ", " separated rows
    path = tmp_path / "a.csv"
    path.write_text(
        "Ground-truth,frame,xnano,ynano,znano,intensity \n"
        "1, 1, 3256.75, 4501.5, -120.0, 1520.3\n"
        "2, 3, 10.0, 20.0, 0.0, 99.0\n"
    )
    table = read_challenge_csv(path)
    assert list(table.columns) == ["id", "frame", "x_nm", "y_nm", "z_nm", "photons"]
    assert table["frame"].tolist() == [0, 2]
    assert table["x_nm"].tolist() == [3256.75, 10.0]

    path.write_text("1,100.5,200.25\n4,1.0,2.0\n")  # frame, x, y without header
    table = read_localizations(path)
    assert list(table.columns) == ["frame", "x_nm", "y_nm"]
    assert table["frame"].tolist() == [0, 3]
    assert table["y_nm"].tolist() == [200.25, 2.0]

    path.write_text("2,1.5,2.5,-3.5,40\n")  # frame, x, y, z, intensity
    table = read_challenge_csv(path)
    assert table.iloc[0].tolist() == [1, 1.5, 2.5, -3.5, 40.0]

    path.write_text("1,2,3,4,5,6,7\n")
    with pytest.raises(SMLMFileError, match="3 to 6 fields"):
        read_challenge_csv(path)


def test_challenge_frame_zero_is_an_error(tmp_path):
    path = tmp_path / "zero.csv"
    path.write_text("Ground-truth,frame,xnano,ynano,znano,intensity\n1,0,1,2,0,5\n")
    with pytest.raises(SMLMFileError, match="start at 1") as info:
        read_challenge_csv(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- #
# native layout and format sniffing
# --------------------------------------------------------------------------- #


def test_native_round_trip_and_sniffing(tmp_path):
    table = _random_table()
    table["score"] = AWKWARD[np.arange(len(table)) % len(AWKWARD)]
    table["label"] = [f"s{i}" for i in range(len(table))]
    write_localizations(table, tmp_path / "n.csv", format="native")
    header = (tmp_path / "n.csv").read_text().splitlines()[0]
    assert header == ",".join(table.columns)
    _assert_tables_identical(read_localizations(tmp_path / "n.csv"), table)

    write_localizations(table, tmp_path / "t.csv")  # ThunderSTORM by default
    back = read_localizations(tmp_path / "t.csv")
    _assert_tables_identical(back.drop(columns="id"), table)

    write_localizations(table, tmp_path / "c.csv", format="challenge")
    back = read_localizations(tmp_path / "c.csv")
    assert _bits_equal(back["x_nm"], table["x_nm"])
    assert (back["frame"] == table["frame"]).all()

    with pytest.raises(ValueError, match="format must be one of"):
        write_localizations(table, tmp_path / "x.csv", format="excel")

    (tmp_path / "odd.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(SMLMFileError, match="unrecognised CSV header") as info:
        read_localizations(tmp_path / "odd.csv")
    assert "odd.csv" in str(info.value)


# --------------------------------------------------------------------------- #
# broken CSV files
# --------------------------------------------------------------------------- #

TS_HEADER = '"id","frame","x [nm]","y [nm]","sigma [nm]"\n'


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (TS_HEADER.encode() + b"1,1,10,20,100\n2,1,30,4", "truncated"),
        (TS_HEADER.encode() + b"1,1,10,20\n2,1,30,40,100\n", "line 2 has 4 fields"),
        (TS_HEADER.encode() + b"1,1,10,20,100,7\n", "line 2 has 6 fields"),
        (TS_HEADER.encode() + b"1,1,10,20,100\n2,1,abc,40,100\n", "'x_nm'.*line 3"),
        (TS_HEADER.encode() + b"1,1,10,nan,100\n", "NaN"),
        (TS_HEADER.encode() + b"1,0,10,20,100\n", "start at 1"),
        (TS_HEADER.encode() + b"1,1.5,10,20,100\n", "whole numbers"),
        (b'"id","frame","x [px]","y [px]"\n1,1,2,3\n', r"missing column.*x \[nm\]"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary"),
        (b"\xff\xfe\xfa garbage \xc3\x28", "not UTF-8"),
    ],
)
def test_broken_thunderstorm_files_name_the_file(tmp_path, content, match):
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    with pytest.raises(SMLMFileError, match=match) as info:
        read_thunderstorm_csv(path)
    assert str(path) in str(info.value)
    if content.strip():
        with pytest.raises(SMLMFileError) as info:
            read_localizations(path)
        assert str(path) in str(info.value)


def test_missing_csv_file(tmp_path):
    path = tmp_path / "nope.csv"
    for reader in (read_thunderstorm_csv, read_challenge_csv, read_localizations):
        with pytest.raises(FileNotFoundError) as info:
            reader(path)
        assert str(path) in str(info.value)


# --------------------------------------------------------------------------- #
# atomic writes
# --------------------------------------------------------------------------- #


class _Exploding:
    def __init__(self, i):
        self.i = i

    def __str__(self):
        if self.i == 70_000:
            raise RuntimeError("disk on fire")
        return str(self.i)


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "locs.csv"
    path.write_text("precious\n")
    bad = pd.DataFrame({"frame": [0, 1], "x_nm": ["1.0", "oops"], "y_nm": [1.0, 2.0]})
    for fmt in ("thunderstorm", "challenge", "native"):
        with pytest.raises(ValueError, match="x_nm"):
            write_localizations(bad, path, format=fmt)
        with pytest.raises(ValueError, match="x_nm"):
            write_localizations(bad, tmp_path / "new.csv", format=fmt)
    assert path.read_text() == "precious\n"
    assert _no_leftovers(tmp_path) == ["locs.csv"]

    # a failure after part of the rows went to disk (the writer works in blocks)
    n = 80_000
    table = pd.DataFrame(
        {
            "frame": np.zeros(n, dtype=np.int64),
            "x_nm": np.ones(n),
            "y_nm": np.ones(n),
            "note": [_Exploding(i) for i in range(n)],
        }
    )
    for fmt in ("thunderstorm", "native"):
        with pytest.raises(RuntimeError, match="disk on fire"):
            write_localizations(table, path, format=fmt)
        with pytest.raises(RuntimeError, match="disk on fire"):
            write_localizations(table, tmp_path / "new.csv", format=fmt)
    assert path.read_text() == "precious\n"
    assert _no_leftovers(tmp_path) == ["locs.csv"]


def test_crlf_line_ends(tmp_path):
    path = tmp_path / "win.csv"
    path.write_bytes(
        b'"id","frame","x [nm]","y [nm]"\r\n1.0,1.0,10.5,20\r\n2,3,11,21\r\n'
    )
    table = read_localizations(path)
    assert table["frame"].tolist() == [0, 2]
    assert table["x_nm"].tolist() == [10.5, 11.0]


def test_failed_stack_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "movie.tif"
    write_stack(path, np.ones((2, 3, 3), np.uint16))
    before = path.read_bytes()

    def broken(filename, *args, **kwargs):
        Path(filename).write_bytes(b"II*\x00 half")
        raise OSError("no space left on device")

    monkeypatch.setattr(tifffile, "imwrite", broken)
    with pytest.raises(OSError, match="no space"):
        write_stack(path, np.zeros((2, 3, 3), np.uint16))
    assert path.read_bytes() == before
    assert _no_leftovers(tmp_path) == ["movie.tif"]


# --------------------------------------------------------------------------- #
# TIFF stacks
# --------------------------------------------------------------------------- #


def _frames(n=7, h=5, w=6, seed=0, dtype=np.uint16):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4000, (n, h, w)).astype(dtype)


def test_single_file_matches_tifffile(tmp_path):
    data = _frames()
    path = tmp_path / "m.tif"
    write_stack(path, data, pixel_size_nm=117.3)
    reference = tifffile.imread(path)
    with TiffStack(path) as stack:
        assert stack.shape == data.shape == (7, 5, 6)
        assert len(stack) == stack.n_frames == 7
        assert stack.frame_shape == (5, 6)
        assert stack.dtype == np.uint16
        assert stack.paths == [str(path)]
        assert stack.metadata["pixel_size_nm"] == 117.3
        assert stack.metadata["memory_mapped"]
        assert np.array_equal(stack[:], reference)
        assert np.array_equal(stack[3], reference[3])
        assert np.array_equal(stack[-1], reference[6])
        assert np.array_equal(stack[np.int64(2)], reference[2])
        assert np.array_equal(stack[1:6:2], reference[1:6:2])
        assert np.array_equal(stack[5:2], reference[5:2])
        assert np.array_equal(np.stack(list(stack)), reference)
        with pytest.raises(IndexError, match="out of range"):
            stack[7]
        with pytest.raises(TypeError):
            stack[1.5]
        with pytest.raises(ValueError, match="chunk_size"):
            next(stack.iter_chunks(0))
    with pytest.raises(ValueError, match="closed"):
        stack[0]
    assert np.array_equal(read_stack(path), data)
    assert np.array_equal(read_stack(path, frames=[6, 0]), data[[6, 0]])
    assert np.array_equal(read_stack(path, frames=2), data[2:3])


def test_multi_file_list_and_glob_give_global_frame_numbers(tmp_path):
    parts = [_frames(n, seed=n) for n in (3, 4, 2)]
    names = ["run_2.tif", "run_10.tif", "run_1.tif"]
    for name, part in zip(names, parts, strict=True):
        write_stack(tmp_path / name, part)
    listed = [tmp_path / name for name in names]
    expected = np.concatenate(parts)
    with TiffStack(listed) as stack:
        assert stack.shape == (9, 5, 6)
        assert stack.paths == [str(p) for p in listed]
        assert stack.metadata["frames_per_file"] == [3, 4, 2]
        starts = []
        for start, chunk in stack.iter_chunks(chunk_size=2):
            starts.append(start)
            assert np.array_equal(chunk, expected[start : start + len(chunk)])
        assert starts == [0, 2, 4, 6, 8]
        assert np.array_equal(stack[2:5], expected[2:5])  # across a file boundary
        assert np.array_equal(stack[7], expected[7])

    # a glob is natural-sorted: run_1, run_2, run_10
    with TiffStack(str(tmp_path / "run_*.tif")) as stack:
        assert [Path(p).name for p in stack.paths] == [
            "run_1.tif",
            "run_2.tif",
            "run_10.tif",
        ]
        assert np.array_equal(stack[:], np.concatenate([parts[2], parts[0], parts[1]]))
    with pytest.raises(FileNotFoundError, match="nothing_"):
        TiffStack(str(tmp_path / "nothing_*.tif"))


def test_compressed_file_is_read_page_by_page(tmp_path):
    data = _frames(9)
    path = tmp_path / "zip.tif"
    tifffile.imwrite(path, data, compression="zlib")
    with TiffStack(path) as stack:
        assert not stack.metadata["memory_mapped"]
        chunks = list(stack.iter_chunks(4))
        assert [s for s, _ in chunks] == [0, 4, 8]
        assert np.array_equal(np.concatenate([c for _, c in chunks]), data)


def test_chunked_iteration_does_not_load_the_stack(tmp_path):
    # 1600 frames of 128 x 128 uint16 = 52 MB on disk
    path = tmp_path / "big.tif"
    frame = np.arange(128 * 128, dtype=np.uint16).reshape(128, 128)
    with tifffile.TiffWriter(path, imagej=True) as writer:
        writer.write(np.broadcast_to(frame, (1600, 128, 128)), contiguous=True)
    with TiffStack(path) as stack:
        assert stack.metadata["memory_mapped"]
        tracemalloc.start()
        try:
            total = 0
            for start, chunk in stack.iter_chunks(chunk_size=32):
                assert chunk.shape == (min(32, 1600 - start), 128, 128)
                total += int(chunk[:, 5, 7].sum())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert total == 1600 * int(frame[5, 7])
    # one chunk is 1 MB; loading the stack would take 52 MB
    assert peak < 4 * 2**20


def _rss_file_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024.0
    return None


@pytest.mark.skipif(
    not Path("/proc/self/status").is_file() or _rss_file_mb() is None,
    reason="needs Linux's /proc/self/status",
)
def test_frames_read_from_the_memory_map_leave_the_resident_set(tmp_path):
    # 64 MB of frames read chunk by chunk: the pages read must not pile up in
    # the process (RssFile), or the RSS of a long stack grows to its size
    path = tmp_path / "big.tif"
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 60000, (1024, 128, 256), dtype=np.uint16)
    tifffile.imwrite(path, frames, imagej=True)
    with TiffStack(path) as stack:
        assert stack.metadata["memory_mapped"]
        before = _rss_file_mb()
        grown = 0.0
        for start, chunk in stack.iter_chunks(chunk_size=64):
            np.testing.assert_array_equal(chunk, frames[start : start + 64])
            grown = max(grown, _rss_file_mb() - before)
        # read again after the pages were released: the same data
        np.testing.assert_array_equal(stack[100:110], frames[100:110])
        np.testing.assert_array_equal(stack[-1], frames[-1])
    assert grown < 16.0  # one chunk is 4 MB; the whole file 64 MB


def test_single_image_and_squeezed_axes(tmp_path):
    image = _frames(1)[0]
    tifffile.imwrite(tmp_path / "one.tif", image)
    with TiffStack(tmp_path / "one.tif") as stack:
        assert stack.shape == (1, 5, 6)
        assert np.array_equal(stack[0], image)
    data = _frames(4)
    tifffile.imwrite(tmp_path / "n1.tif", data[:, np.newaxis])  # (n, 1, H, W)
    assert np.array_equal(read_stack(tmp_path / "n1.tif"), data)


def test_unsupported_layouts_raise(tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(SMLMFileError, match="RGB") as info:
        TiffStack(tmp_path / "rgb.tif")
    assert "rgb.tif" in str(info.value)
    tifffile.imwrite(
        tmp_path / "4d.tif", np.zeros((2, 3, 4, 5), np.uint16), photometric="minisblack"
    )
    with pytest.raises(SMLMFileError, match="4-D"):
        TiffStack(tmp_path / "4d.tif")
    write_stack(tmp_path / "a.tif", _frames(h=5))
    write_stack(tmp_path / "b.tif", _frames(h=4))
    with pytest.raises(SMLMFileError, match="do not match") as info:
        TiffStack([tmp_path / "a.tif", tmp_path / "b.tif"])
    assert "b.tif" in str(info.value)
    write_stack(tmp_path / "c.tif", _frames(dtype=np.float32))
    with pytest.raises(SMLMFileError, match="dtype"):
        TiffStack([tmp_path / "a.tif", tmp_path / "c.tif"])


@pytest.mark.parametrize(
    "dtype", [np.uint16, np.uint8, np.int16, np.float32, np.float64, np.int32]
)
def test_write_stack_round_trips_data_and_pixel_size(tmp_path, dtype):
    data = _frames(dtype=np.uint8).astype(dtype)
    path = tmp_path / "s.tif"
    write_stack(path, data, pixel_size_nm=106.66666666666667)
    assert np.array_equal(tifffile.imread(path), data)
    with TiffStack(path) as stack:
        assert stack.dtype == dtype
        assert stack.metadata["pixel_size_nm"] == 106.66666666666667
        assert stack.metadata["imagej"] == (dtype not in (np.float64, np.int32))
        assert np.array_equal(stack[:], data)
    write_stack(path, data)
    assert TiffStack(path).metadata["pixel_size_nm"] is None


def test_write_stack_dtype_conversion(tmp_path):
    path = tmp_path / "u16.tif"
    write_stack(path, np.array([[[100.0, 65535.0]]]), dtype=np.uint16)
    assert tifffile.imread(path).dtype == np.uint16
    assert tifffile.imread(path).tolist() == [[100, 65535]]
    with pytest.raises(ValueError, match="whole numbers"):
        write_stack(path, np.array([[[100.5]]]), dtype=np.uint16)
    with pytest.raises(ValueError, match="outside the range"):
        write_stack(path, np.array([[[70000.0]]]), dtype=np.uint16)
    with pytest.raises(ValueError, match="pixel_size_nm"):
        write_stack(path, np.zeros((1, 2, 2)), pixel_size_nm=-1)
    with pytest.raises(ValueError, match="shape"):
        write_stack(path, np.zeros(3))
    assert _no_leftovers(tmp_path) == ["u16.tif"]


def test_bigtiff_branch(tmp_path, monkeypatch):
    monkeypatch.setattr(smlm_io._tiff, "_BIGTIFF_BYTES", 0)
    data = _frames()
    path = tmp_path / "big.tif"
    write_stack(path, data, pixel_size_nm=160.0)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
    with TiffStack(path) as stack:
        assert stack.metadata["pixel_size_nm"] == 160.0
        assert np.array_equal(stack[:], data)


def test_pixel_size_from_ome_and_resolution_tags(tmp_path):
    data = _frames()
    tifffile.imwrite(
        tmp_path / "o.ome.tif",
        data,
        ome=True,
        metadata={"axes": "TYX", "PhysicalSizeX": 0.16, "PhysicalSizeXUnit": "µm"},
    )
    with TiffStack(tmp_path / "o.ome.tif") as stack:
        assert stack.metadata["ome"]
        assert stack.metadata["pixel_size_nm"] == pytest.approx(160.0, rel=1e-12)
        assert np.array_equal(stack[:], data)
    # several OME files given as a list: each contributes its own pages
    tifffile.imwrite(
        tmp_path / "p.ome.tif",
        data[:2] + 1,
        ome=True,
        metadata={"axes": "TYX", "PhysicalSizeX": 0.16},
    )
    with TiffStack([tmp_path / "o.ome.tif", tmp_path / "p.ome.tif"]) as stack:
        assert stack.shape == (9, 5, 6)
        assert stack.metadata["ome"]
        assert stack.metadata["pixel_size_nm"] == pytest.approx(160.0, rel=1e-12)
        assert np.array_equal(stack[:, 1, 2], [*data[:, 1, 2], *(data[:2, 1, 2] + 1)])
        assert np.array_equal(stack[8, 1:3], data[1, 1:3] + 1)
    # pixels per centimetre: 1e5 per cm is 100 nm
    tifffile.imwrite(
        tmp_path / "cm.tif", data, resolution=(1e5, 1e5), resolutionunit="CENTIMETER"
    )
    assert TiffStack(tmp_path / "cm.tif").metadata["pixel_size_nm"] == 100.0
    # dots per inch is a display setting, not a pixel size
    tifffile.imwrite(tmp_path / "dpi.tif", data, resolution=(72, 72))
    assert TiffStack(tmp_path / "dpi.tif").metadata["pixel_size_nm"] is None


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_tiff_raises_with_file_name(tmp_path, compression, keep):
    data = _frames(20, 16, 16)
    full = tmp_path / "full.tif"
    if compression:
        tifffile.imwrite(full, data, compression=compression)
    else:
        write_stack(full, data)
    content = full.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(content[: int(len(content) * keep)])
    with pytest.raises(SMLMFileError) as info:
        with TiffStack(cut) as stack:
            stack[:]
    assert str(cut) in str(info.value)
    assert any(w in str(info.value) for w in ("truncated", "corrupt"))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a readable TIFF"),
        (b"hello, this is a text file\n", "not a readable TIFF"),
        (b"II*\x00", "not a readable TIFF"),
    ],
)
def test_bad_tiff_files(tmp_path, content, match):
    path = tmp_path / "frames.tif"
    path.write_bytes(content)
    with pytest.raises(SMLMFileError, match=match) as info:
        TiffStack(path)
    assert str(path) in str(info.value)


def test_missing_tiff_file(tmp_path):
    path = tmp_path / "absent.tif"
    with pytest.raises(FileNotFoundError) as info:
        read_stack(path)
    assert str(path) in str(info.value)
    write_stack(tmp_path / "ok.tif", _frames())
    with pytest.raises(FileNotFoundError):  # one missing file of a list
        TiffStack([tmp_path / "ok.tif", path])
    with pytest.raises(SMLMFileError, match="folder"):
        TiffStack(tmp_path)
    assert os.listdir(tmp_path) == ["ok.tif"]


# --------------------------------------------------------------------------- #
# streaming writer
# --------------------------------------------------------------------------- #


def _chunks_table():
    rng = np.random.default_rng(3)
    n = 23
    return pd.DataFrame(
        {
            "frame": np.sort(rng.integers(0, 9, n)),
            "x_nm": rng.uniform(0, 6400, n),
            "y_nm": rng.uniform(0, 6400, n) / 3.0,  # floats with long reprs
            "score": rng.uniform(300, 1100, n).astype(np.float32),
        }
    )


@pytest.mark.parametrize("fmt", ["thunderstorm", "challenge", "native"])
def test_streaming_writer_gives_the_bytes_of_one_write(fmt, tmp_path):
    from sklearn_smlm.io import LocalizationWriter

    table = _chunks_table()
    whole, streamed = tmp_path / "whole.csv", tmp_path / "streamed.csv"
    write_localizations(table, whole, format=fmt)
    with LocalizationWriter(streamed, format=fmt) as writer:
        # an empty chunk first and uneven chunks after
        for start, stop in [(0, 0), (0, 5), (5, 6), (6, 23)]:
            writer.write(table.iloc[start:stop].reset_index(drop=True))
            assert not streamed.exists()  # only the .partial until closed
    assert writer.n_rows == 23
    assert streamed.read_bytes() == whole.read_bytes()
    assert not (tmp_path / "streamed.csv.partial").exists()


def test_streaming_writer_keeps_the_partial_file_on_error(tmp_path):
    from sklearn_smlm.io import LocalizationWriter

    table = _chunks_table()
    path = tmp_path / "locs.csv"
    with pytest.raises(KeyboardInterrupt), LocalizationWriter(path) as writer:
        writer.write(table.iloc[:4])
        raise KeyboardInterrupt
    assert not path.exists()
    kept = read_localizations(tmp_path / "locs.csv.partial")
    assert kept["id"].tolist() == [1, 2, 3, 4]
    np.testing.assert_array_equal(kept["x_nm"], table["x_nm"][:4])


def test_streaming_writer_refuses_changed_columns_and_unknown_formats(tmp_path):
    from sklearn_smlm.io import LocalizationWriter

    table = _chunks_table()
    writer = LocalizationWriter(tmp_path / "a.csv", format="native")
    writer.write(table)
    with pytest.raises(ValueError, match="the columns changed between chunks"):
        writer.write(table.drop(columns="score"))
    writer.abandon(remove=True)
    assert not (tmp_path / "a.csv.partial").exists()
    with pytest.raises(ValueError, match="format must be one of"):
        LocalizationWriter(tmp_path / "b.csv", format="xlsx")


def test_registered_appender_receives_chunks_with_running_ids(tmp_path, monkeypatch):
    from sklearn_smlm.io import LocalizationWriter, _writer, register_appender

    calls = []

    class Recorder:
        def __init__(self, path, fmt):
            calls.append(("open", os.path.basename(path), fmt))
            Path(path).write_text("x")

        def append(self, table, first_id):
            calls.append(("append", len(table), first_id))

        def close(self):
            calls.append(("close",))

        def abort(self):  # pragma: no cover - not reached here
            calls.append(("abort",))

    monkeypatch.setattr(_writer, "APPENDERS", dict(_writer.APPENDERS))
    register_appender("recorder", Recorder)
    table = _chunks_table()
    with LocalizationWriter(tmp_path / "r.bin", format="recorder") as writer:
        writer.write(table.iloc[:3])
        writer.write(table.iloc[3:10])
    assert calls == [
        ("open", "r.bin.partial", "recorder"),
        ("append", 3, 1),
        ("append", 7, 4),
        ("close",),
    ]
    assert (tmp_path / "r.bin").read_text() == "x"
