"""Camera: one camera description for the simulator, normalizer, fitter and CLI."""

import copy

import numpy as np
import pandas as pd
import pytest
import tifffile
from sklearn.base import clone

from sklearn_smlm import (
    Camera,
    DistanceTransformLocalizer,
    FrameNormalizer,
    GaussianFitLocalizer,
    PAFPSimulator,
    SMLMFileError,
)

EMCCD = dict(baseline_adu=100.0, e_per_adu=50.0, em_gain=100.0, quantum_efficiency=0.9)


def test_to_photons_inverts_the_mean_response():
    cam = Camera(**EMCCD)
    # 1 photon -> 0.9 e -> x100 EM -> /50 e per ADU = 1.8 ADU above the offset
    frames = np.array([[[100.0, 100.0 + 1.8 * 250]]], dtype=np.float32)
    photons = cam.to_photons(frames)
    assert photons.dtype == np.float32
    np.testing.assert_allclose(photons, [[[0.0, 250.0]]], rtol=1e-6)
    assert frames[0, 0, 1] == np.float32(550.0)  # the input is not changed
    assert cam.excess_noise_factor == 2.0
    assert Camera().excess_noise_factor == 1.0
    assert cam.photons_per_adu == pytest.approx(50.0 / 100.0 / 0.9)


def test_per_pixel_maps_and_crop():
    offset = np.arange(12.0).reshape(3, 4) + 100.0
    gain_e = np.full((3, 4), 2.0)
    gain_e[:, 2:] = 4.0
    cam = Camera(baseline_adu=offset, e_per_adu=gain_e, read_noise_e=1.5)
    assert cam.is_per_pixel and cam.shape == (3, 4)
    frames = np.broadcast_to(offset + 10.0, (2, 3, 4)).astype(np.float32)
    expected = np.broadcast_to(10.0 * gain_e, (2, 3, 4))
    np.testing.assert_array_equal(cam.to_photons(frames), expected)
    window = cam.crop(slice(1, 3), slice(2, 4))
    assert window.shape == (2, 2)
    np.testing.assert_array_equal(window.baseline_adu, offset[1:3, 2:4])
    assert window.read_noise_e == 1.5  # scalars stay scalars
    with pytest.raises(ValueError, match="crop the maps"):
        cam.to_photons(np.zeros((1, 5, 5), np.float32))
    with pytest.raises(ValueError, match="different shapes"):
        Camera(baseline_adu=offset, read_noise_e=np.ones((2, 2)))
    assert not cam.baseline_adu.flags.writeable  # a Camera does not change


def test_equality_repr_replace_and_copies():
    cam = Camera(**EMCCD)
    assert cam == Camera(**EMCCD) and cam != Camera()
    assert repr(cam) == (
        "Camera(baseline_adu=100.0, e_per_adu=50.0, em_gain=100.0, "
        "quantum_efficiency=0.9)"
    )
    assert repr(Camera()) == "Camera()"
    maps = Camera(baseline_adu=np.full((4, 6), 99.0))
    assert repr(maps) == "Camera(baseline_adu=<4x6 map, mean 99>)"
    assert maps == copy.deepcopy(maps) and maps != Camera(baseline_adu=99.0)
    assert cam.replace(em_gain=300.0) == Camera(**{**EMCCD, "em_gain": 300.0})
    with pytest.raises(TypeError, match="no field"):
        cam.replace(gain=2.0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"em_gain": 0.5}, ValueError, "em_gain must be >= 1"),
        ({"quantum_efficiency": 1.2}, ValueError, "quantum_efficiency must be <= 1"),
        ({"e_per_adu": 0.0}, ValueError, "e_per_adu must be > 0"),
        ({"baseline_adu": "100"}, TypeError, "baseline_adu must be a number"),
        ({"em_gain": True}, TypeError, "em_gain must be a number"),
        ({"read_noise_e": np.full((2, 2), np.nan)}, ValueError, "NaN"),
        ({"e_per_adu": np.zeros((2, 2))}, ValueError, "> 0 in every pixel"),
        ({"baseline_adu": np.zeros((2, 2, 2))}, ValueError, "2-D per-pixel map"),
    ],
)
def test_bad_values_are_one_clear_error(kwargs, error, match):
    with pytest.raises(error, match=match):
        Camera(**kwargs)


def test_from_file_npz_and_three_page_tiff(tmp_path):
    offset = np.full((4, 5), 100.0)
    offset[0, 0] = 110.0
    gain = np.full((4, 5), 0.5)  # ADU per electron
    variance = np.full((4, 5), 2.25)  # ADU^2: read noise 1.5 ADU = 3 e
    np.savez(
        tmp_path / "cal.npz",
        offset_adu=offset,
        gain_adu_per_e=gain,
        variance_adu2=variance,
        quantum_efficiency=0.8,
    )
    pages = np.stack([offset, gain, variance])
    tifffile.imwrite(tmp_path / "cal.tif", pages, photometric="minisblack")
    a = Camera.from_file(tmp_path / "cal.npz")
    b = Camera.from_file(tmp_path / "cal.tif", quantum_efficiency=0.8)
    assert a == b
    assert a.quantum_efficiency == 0.8
    np.testing.assert_array_equal(a.baseline_adu, offset)
    np.testing.assert_array_equal(a.e_per_adu, np.full((4, 5), 2.0))
    np.testing.assert_array_equal(a.read_noise_e, np.full((4, 5), 3.0))
    tifffile.imwrite(tmp_path / "two.tif", pages[:2], photometric="minisblack")
    with pytest.raises(SMLMFileError, match="3 pages"):
        Camera.from_file(tmp_path / "two.tif")
    np.savez(tmp_path / "bad.npz", gain_adu_per_e=gain)
    with pytest.raises(SMLMFileError, match="no offset map"):
        Camera.from_file(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        Camera.from_file(tmp_path / "missing.npz")


def _frames(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return (100.0 + rng.poisson(20.0, size=(n, 24, 24))).astype(np.float32)


def test_normalizer_with_a_camera_equals_the_shorthand_bit_for_bit():
    X = _frames()
    short = FrameNormalizer(**EMCCD, min_scale=0.5).fit_transform(X)
    with_camera = FrameNormalizer(camera=Camera(**EMCCD), min_scale=0.5)
    assert with_camera.fit_transform(X).tobytes() == short.tobytes()
    # a partial shorthand leaves the other steps out, as before the Camera
    only_gain = FrameNormalizer(em_gain=100.0, min_scale=0.5)
    assert only_gain.get_camera() == Camera(em_gain=100.0)
    assert FrameNormalizer().get_camera() is None
    with pytest.raises(ValueError, match="not both"):
        FrameNormalizer(camera=Camera(), em_gain=2.0).fit(X)
    with pytest.raises(TypeError, match="camera must be a Camera"):
        FrameNormalizer(camera={"em_gain": 2.0}).fit(X)


def test_fitter_with_a_camera_equals_the_shorthand():
    X, _ = PAFPSimulator(frame_shape=(24, 24), random_state=3).simulate(3)
    short = GaussianFitLocalizer(**EMCCD).fit().predict(X)
    camera = GaussianFitLocalizer(camera=Camera(**EMCCD)).fit().predict(X)
    assert len(short) > 0
    assert camera.equals(short)
    # flat per-pixel maps (the sCMOS path of the fit, issue 16) give the same
    # localizations
    flat = dict(EMCCD, baseline_adu=np.full((24, 24), EMCCD["baseline_adu"]))
    per_pixel = GaussianFitLocalizer(camera=Camera(**flat)).fit().predict(X)
    pd.testing.assert_frame_equal(per_pixel, short, check_exact=False, rtol=1e-9)


def test_camera_of_a_loaded_localizer_is_a_parameter():
    X, _ = PAFPSimulator(frame_shape=(24, 24), random_state=1).simulate(4)
    loc = DistanceTransformLocalizer.pretrained(device="cpu")
    # the shorthand on the normalizer, as a model trained with it would have
    reference = clone(loc)
    reference.__dict__.update(loc.__dict__)
    reference.normalizer_ = FrameNormalizer(**EMCCD, min_scale=0.05)
    expected = reference.predict(X)
    loc.normalizer_ = FrameNormalizer(min_scale=0.05)
    got = loc.set_params(camera=Camera(**EMCCD)).predict(X)
    assert got.equals(expected)
    assert loc.normalizer_.get_params()["baseline_adu"] is None  # not replaced
    # a per-pixel map shifts the offset of half the frame
    offset = np.full((24, 24), 100.0)
    offset[:, 12:] = 130.0
    shifted = X.copy()
    shifted[:, :, 12:] += 30.0
    per_pixel = Camera(**{**EMCCD, "baseline_adu": offset})
    table = loc.set_params(camera=per_pixel).predict(shifted)
    columns = ["frame", "x_nm", "y_nm", "score"]  # the network's detections
    assert table[columns].equals(expected[columns])


def test_simulator_takes_a_camera():
    kwargs = dict(frame_shape=(16, 16), random_state=5)
    emccd = PAFPSimulator(**kwargs, camera=Camera(**EMCCD, read_noise_e=50.0))
    plain = PAFPSimulator(**kwargs, **EMCCD)  # the defaults: read noise 50 e
    Xa, ya = emccd.simulate(3)
    Xb, yb = plain.simulate(3)
    np.testing.assert_array_equal(Xa, Xb)
    offset = np.full((16, 16), 100.0)
    offset[8:] = 400.0
    scmos = Camera(baseline_adu=offset, e_per_adu=2.0, read_noise_e=1.0)
    X, _ = PAFPSimulator(**kwargs, camera=scmos).simulate(20)
    # the mean of the frames follows the offset map
    assert X[:, 8:].mean() - X[:, :8].mean() == pytest.approx(300.0, abs=5.0)
    clone(PAFPSimulator(camera=scmos))  # a parameter like any other
