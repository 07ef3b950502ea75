"""Peaks found on the folded head's channels equal those of the full map."""

import numpy as np
import pandas as pd
import pytest
import torch

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator, _subpixel_maps
from sklearn_smlm._subpixel_maps import SubPixelMaps
from sklearn_smlm.nn import SubPixelCNN, autocast
from sklearn_smlm.peaks import find_peaks, maps_to_localizations


def _assert_same_peaks(maps, threshold, **kwargs):
    got = maps.peaks(threshold, **kwargs)
    expected = find_peaks(np.asarray(maps), threshold, **kwargs)
    assert len(got[0]) == len(expected[0])
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    return len(got[0])


def test_channels_assemble_to_the_networks_map():
    torch.manual_seed(0)
    module = SubPixelCNN(n_layers=2, n_channels=8, upscaling=3).eval()
    module = module.to(memory_format=torch.channels_last)
    x = torch.rand(2, 1, 5, 6).contiguous(memory_format=torch.channels_last)
    for precision in ("fp32", "bf16"):
        with torch.inference_mode(), autocast("cpu", precision):
            expected = (module(x)[:, 0].float() * 1096.6).numpy()
            channels = module.subpixel_channels(x).permute(0, 2, 3, 1)
        maps = SubPixelMaps(channels.contiguous().numpy(), 3, 1096.6)
        assert maps.shape == expected.shape == (2, 15, 18)
        np.testing.assert_array_equal(np.asarray(maps), expected)
        np.testing.assert_array_equal(np.concatenate([maps, maps])[2:], expected)


def _random_channels(rng, n, h, w, r, n_peaks):
    # cone-shaped peaks anywhere, edges included, plus plateaus of equal values
    yy, xx = np.mgrid[0 : h * r, 0 : w * r]
    maps = np.zeros((n, h * r, w * r), np.float32)
    for f in range(n):
        for y0, x0 in rng.uniform(-1, [h * r, w * r], (n_peaks, 2)):
            d = np.hypot(yy - y0, xx - x0)
            maps[f] = np.maximum(maps[f], 1000 * np.clip(1 - d / 9, 0, None))
    maps = np.round(maps / 8) * 8  # coarse steps: plateaus and ties
    channels = maps.reshape(n, h, r, w, r).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(channels.reshape(n, h, w, r * r)), maps


@pytest.mark.parametrize("n_peaks", [1, 4, 40])
@pytest.mark.parametrize("min_distance", [1, 2, 3])
@pytest.mark.parametrize("refine", ["auto", "cone", "quadratic", None])
def test_windowed_peaks_equal_full_map_peaks(
    n_peaks, min_distance, refine, monkeypatch
):
    monkeypatch.setattr(_subpixel_maps, "_MAX_WINDOW_FRACTION", 1.0)  # windows
    rng = np.random.default_rng(n_peaks * 10 + min_distance)
    channels, maps = _random_channels(rng, 3, 12, 10, 3, n_peaks)
    sub = SubPixelMaps(channels, 3, 1.0)
    np.testing.assert_array_equal(np.asarray(sub), maps)
    found = 0
    for threshold in (100.0, 500.0, 990.0, 2000.0):
        found += _assert_same_peaks(
            sub, threshold, min_distance=min_distance, refine=refine
        )
    assert found > 0


@pytest.mark.parametrize("n_peaks", [1, 4, 40])
@pytest.mark.parametrize("min_distance", [1, 2, 3, 4])
@pytest.mark.parametrize("refine", ["auto", "cone", "quadratic", None])
def test_dense_path_peaks_equal_full_map_peaks(
    n_peaks, min_distance, refine, monkeypatch
):
    monkeypatch.setattr(_subpixel_maps, "_MAX_WINDOW_FRACTION", 0.0)  # dense
    rng = np.random.default_rng(n_peaks * 10 + min_distance)
    channels, maps = _random_channels(rng, 3, 12, 10, 3, n_peaks)
    sub = SubPixelMaps(channels, 3, 1.0)
    found = 0
    for threshold in (100.0, 500.0, 990.0, 2000.0, 504.0001, -5.0):
        found += _assert_same_peaks(
            sub, threshold, min_distance=min_distance, refine=refine
        )
    assert found > 0


def test_scaled_channels_dense_path_compares_in_float32(monkeypatch):
    # a threshold between two float32 values of the scaled map, and one that
    # float32 rounds onto a map value: the comparison is find_peaks's
    monkeypatch.setattr(_subpixel_maps, "_MAX_WINDOW_FRACTION", 0.0)
    rng = np.random.default_rng(5)
    channels = rng.uniform(0, 1, (2, 6, 7, 9)).astype(np.float32)
    sub = SubPixelMaps(channels, 3, 1096.6331584284585)
    values = np.sort(np.asarray(sub).ravel())
    for threshold in (float(values[-40]), float(values[-40]) + 1e-9, 700.0):
        assert _assert_same_peaks(sub, threshold) > 0


def test_dense_maps_and_large_min_distance_skip_the_windows(monkeypatch):
    rng = np.random.default_rng(1)
    channels, _ = _random_channels(rng, 2, 8, 8, 3, 30)
    calls = []
    original = SubPixelMaps._dense_peaks

    def spy(self, threshold, min_distance, refine):
        calls.append(min_distance)
        return original(self, threshold, min_distance, refine)

    monkeypatch.setattr(SubPixelMaps, "_dense_peaks", spy)
    sub = SubPixelMaps(channels, 3, 1.0)
    sub.peaks(500.0, min_distance=4)  # neighbourhood wider than one cell
    assert calls == [4]
    monkeypatch.setattr(_subpixel_maps, "_MAX_WINDOW_FRACTION", 0.0)
    sub.peaks(500.0)  # every frame is "dense"
    assert calls == [4, 1]
    monkeypatch.setattr(_subpixel_maps, "_MAX_WINDOW_FRACTION", 1.0)
    sub.peaks(500.0)
    assert calls == [4, 1]  # the windows


def test_non_finite_channels_are_refused_as_maps_are():
    channels = np.zeros((1, 4, 4, 4), np.float32)
    channels[0, 1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        SubPixelMaps(channels, 2, 1.0).peaks(1.0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        find_peaks(np.asarray(SubPixelMaps(channels, 2, 1.0)), 1.0)


@pytest.mark.parametrize(
    "frame_shape, density", [((64, 64), 5.0), ((96, 96), 0.3), ((37, 50), 1.0)]
)
def test_pretrained_predict_equals_the_full_map_path(frame_shape, density):
    loc = DistanceTransformLocalizer.pretrained(device="cpu")
    X, _ = PAFPSimulator(
        frame_shape=frame_shape, density_per_um2=density, random_state=0
    ).simulate(4)
    batches = list(loc.regressor_._iter_maps(loc.normalizer_.transform(X), 2))
    assert all(isinstance(b, SubPixelMaps) for b in batches)
    n_found = sum(_assert_same_peaks(b, loc.threshold) for b in batches)
    assert n_found > 4
    maps = loc.predict_maps(X)
    assert isinstance(maps, np.ndarray) and maps.shape == (
        4,
        *np.multiply(7, X.shape[1:]),
    )
    expected = maps_to_localizations(maps, loc.threshold)
    table = loc.predict(X)[list(expected.columns)]  # other columns may follow
    pd.testing.assert_frame_equal(table, expected)


def _network_input(frame_shape, density_per_um2, random_state, n_frames):
    """The default network, normalized simulated frames and its head's limit."""
    loc = DistanceTransformLocalizer.pretrained(device="cpu")
    module = loc.regressor_.module_.eval()
    X, _ = PAFPSimulator(
        frame_shape=frame_shape,
        density_per_um2=density_per_um2,
        random_state=random_state,
    ).simulate(n_frames)
    x = torch.from_numpy(loc.normalizer_.transform(X).astype(np.float32))[:, None]
    x = x.contiguous(memory_format=torch.channels_last)
    return module, x, loc.threshold / loc.regressor_.peak_value


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("tile", [1, 4, 8])
def test_head_above_a_limit_is_the_whole_head_where_it_matters(precision, tile):
    module, x, limit = _network_input((45, 38), 0.4, 4, 3)
    with torch.inference_mode(), autocast("cpu", precision):
        whole = module.subpixel_channels(x)
        part, complete = module.subpixel_channels_above(x, limit, tile=tile)
    assert not complete
    computed = part.abs().sum(1) > 0  # (n, H, W)
    # every pixel with a channel above the limit, and its neighbours, computed
    above = whole.amax(1) >= limit
    assert above.any()
    near = torch.nn.functional.max_pool2d(above[:, None].float(), 3, 1, 1)[:, 0] > 0
    assert bool(computed[near].all())
    # computed values equal the whole head's bit for bit; the others are 0
    mask = computed[:, None].expand_as(whole)
    assert torch.equal(part[mask], whole[mask])
    assert bool((part[~mask] == 0).all())
    assert computed.float().mean() < 0.9  # something was skipped


def test_dense_frames_compute_the_whole_head():
    module, x, limit = _network_input((32, 32), 6.0, 5, 2)
    with torch.inference_mode(), autocast("cpu", "bf16"):
        whole = module.subpixel_channels(x)
        part, complete = module.subpixel_channels_above(x, limit)
    assert complete
    assert torch.equal(part, whole)


def test_partial_maps_refuse_to_be_maps():
    maps = SubPixelMaps(np.zeros((1, 2, 2, 4), np.float32), 2, 1.0)
    maps.complete = False
    with pytest.raises(ValueError, match="use predict_maps"):
        np.asarray(maps)
