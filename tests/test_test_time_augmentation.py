"""Test-time dihedral averaging: the test_time_augmentation parameter."""

import numpy as np
import pytest

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm._dihedral import dihedral_transforms, untransform
from sklearn_smlm._subpixel_maps import SubPixelMaps


@pytest.fixture(scope="module")
def frames():
    X, _ = PAFPSimulator(
        frame_shape=(24, 24), density_per_um2=1.5, random_state=11
    ).simulate(3)
    return X


def _numpy_transform(a, transform):
    """The frame transform on the last two axes, written with numpy only."""
    transpose, flip_rows, flip_cols = transform
    if transpose:
        a = np.swapaxes(a, -1, -2)
    if flip_rows:
        a = np.flip(a, -2)
    if flip_cols:
        a = np.flip(a, -1)
    return np.ascontiguousarray(a)


@pytest.mark.parametrize("transform", dihedral_transforms("dihedral"))
def test_untransform_inverts_on_maps_and_on_channels(transform):
    rng = np.random.default_rng(0)
    maps = rng.random((2, 5 * 3, 4 * 3), dtype=np.float32)
    moved = _numpy_transform(maps, transform)
    assert np.array_equal(untransform(moved, transform), maps)
    # the same on the folded head's channels: camera pixels and sub-pixels
    channels = rng.random((2, 5, 4, 9), dtype=np.float32)
    full = np.asarray(SubPixelMaps(channels.copy(), 3, 1.0))
    # the channels of the moved map, read back by un-shuffling it
    moved = _unshuffle(_numpy_transform(full, transform), 3)
    back = untransform(moved, transform, channels=3)
    assert np.array_equal(back, channels)


def _unshuffle(maps, r):
    n, hr, wr = maps.shape
    return (
        maps.reshape(n, hr // r, r, wr // r, r)
        .transpose(0, 1, 3, 2, 4)
        .reshape(n, hr // r, wr // r, r * r)
    )


def _numpy_inverse(a, transform):
    """Undo ``_numpy_transform``: the flips, then the transpose."""
    transpose, flip_rows, flip_cols = transform
    if flip_rows:
        a = np.flip(a, -2)
    if flip_cols:
        a = np.flip(a, -1)
    if transpose:
        a = np.swapaxes(a, -1, -2)
    return a


@pytest.mark.parametrize("option", ["flips", "dihedral"])
def test_averaged_maps_are_the_mean_of_transformed_back_maps(frames, option):
    loc = DistanceTransformLocalizer.pretrained("default", device="cpu")
    transforms = dihedral_transforms(option)
    assert len(transforms) == {"flips": 4, "dihedral": 8}[option]
    expected = np.mean(
        [
            _numpy_inverse(loc.predict_maps(_numpy_transform(frames, t)), t)
            for t in transforms
        ],
        axis=0,
        dtype=np.float64,
    )
    maps = loc.set_params(test_time_augmentation=option).predict_maps(frames)
    assert maps.shape == expected.shape
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-3)
    # and not the plain map
    plain = loc.set_params(test_time_augmentation=None).predict_maps(frames)
    assert np.abs(maps - plain).max() > 1.0


def test_symmetric_frame_gives_symmetric_averaged_map():
    # one spot in the middle of a 15 x 15 frame, symmetric under all 8
    yy, xx = np.mgrid[:15, :15] - 7.0
    frame = 100.0 + 400.0 * np.exp(-(xx**2 + yy**2) / (2 * 1.2**2))
    frame = frame[None].astype(np.float32)
    loc = DistanceTransformLocalizer.pretrained("default", device="cpu")
    plain = loc.predict_maps(frame)[0]
    maps = loc.set_params(test_time_augmentation="dihedral").predict_maps(frame)[0]
    for t in dihedral_transforms("dihedral"):
        np.testing.assert_allclose(
            _numpy_transform(maps, t), maps, rtol=1e-6, atol=1e-4
        )
    # the plain map is not exactly symmetric (the network is not equivariant)
    assert np.abs(plain - plain.T).max() > 1e-3


@pytest.mark.parametrize("transform", dihedral_transforms("dihedral")[1:])
def test_transformed_frames_give_transformed_localizations(frames, transform):
    loc = DistanceTransformLocalizer.pretrained("default", device="cpu").set_params(
        test_time_augmentation="dihedral"
    )
    table = loc.predict(frames)
    moved = loc.predict(_numpy_transform(frames, transform))
    assert len(table) > 10 and len(moved) == len(table)
    side = 24 * loc.pixel_size_nm
    x, y = table["x_nm"].to_numpy(), table["y_nm"].to_numpy()
    transpose, flip_rows, flip_cols = transform
    if transpose:
        x, y = y, x
    if flip_rows:
        y = side - y
    if flip_cols:
        x = side - x
    expected = np.stack([table["frame"], x, y, table["score"]], 1)
    got = moved[["frame", "x_nm", "y_nm", "score"]].to_numpy()
    order = np.lexsort((expected[:, 2], expected[:, 1], expected[:, 0]))
    got = got[np.lexsort((got[:, 2], got[:, 1], got[:, 0]))]
    np.testing.assert_allclose(got, expected[order], rtol=0, atol=1e-3)


def test_subpixel_head_is_averaged_too():
    X, y = PAFPSimulator(frame_shape=(16, 16), random_state=0).simulate(4)
    loc = DistanceTransformLocalizer(
        n_layers=2,
        n_channels=4,
        upsampling="subpixel",
        upscaling=3,
        d_max=15.0,
        max_epochs=1,
        validation_fraction=0,
        random_state=0,
    ).fit(X, y)
    loc.set_params(test_time_augmentation="dihedral")
    maps = loc.predict_maps(X)
    t = (True, False, True)
    moved = loc.predict_maps(_numpy_transform(X, t))
    np.testing.assert_allclose(_numpy_transform(maps, t), moved, rtol=1e-5, atol=1e-4)


def test_bad_option_and_3d_model_raise(frames):
    loc = DistanceTransformLocalizer.pretrained("default", device="cpu")
    with pytest.raises(ValueError, match="test_time_augmentation must be one of"):
        loc.set_params(test_time_augmentation="rotate").predict(frames)
    loc3d = DistanceTransformLocalizer.pretrained("astig_3d", device="cpu")
    with pytest.raises(ValueError, match="needs a 2D model"):
        loc3d.set_params(test_time_augmentation="flips").predict(frames)


def test_command_line_option_gives_the_averaged_localizations(frames, tmp_path):
    from sklearn_smlm.cli import main
    from sklearn_smlm.io import read_localizations, write_stack

    write_stack(tmp_path / "frames.tif", frames, pixel_size_nm=100.0)
    out = tmp_path / "locs.csv"
    args = ["localize", str(tmp_path / "frames.tif"), "-o", str(out)]
    args += ["--method", "cnn", "--device", "cpu"]
    assert main(args + ["--test-time-augmentation", "flips"]) == 0
    got = read_localizations(out)
    loc = DistanceTransformLocalizer.pretrained("default", device="cpu")
    expected = loc.set_params(test_time_augmentation="flips").predict(frames)
    plain = loc.set_params(test_time_augmentation=None).predict(frames)
    assert len(got) == len(expected) == len(plain) > 10
    np.testing.assert_allclose(got["x_nm"], expected["x_nm"], atol=1e-3)
    np.testing.assert_allclose(got["y_nm"], expected["y_nm"], atol=1e-3)
    # the averaged maps move the positions (not the plain prediction)
    assert np.abs(got["x_nm"].to_numpy() - plain["x_nm"].to_numpy()).max() > 0.1
