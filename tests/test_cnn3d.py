"""The CNN localizer in 3D: z targets, the depth head, z at the peaks, files."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from sklearn_smlm import (
    DistanceTransformLocalizer,
    DistanceTransformRegressor,
    PAFPSimulator,
    load_model,
)
from sklearn_smlm._conditions import SHIPPED_CONDITIONS, ConditionsWarning
from sklearn_smlm._depth import (
    denormalize_z,
    depth_targets,
    nearest_z_maps,
    normalize_z,
    z_at_peaks,
)
from sklearn_smlm.encoding import distance_transform_maps
from sklearn_smlm.nn import DepthMapLoss, MapDataset, SubPixelCNN

R = 7  # upscaling
# the default model's conditions with a calibration: a checked 3D model
CONDITIONS_3D = dict(
    SHIPPED_CONDITIONS["default"], name="tiny3d", calibration={"x": {}, "y": {}}
)


def elliptical_frames(n, size=8, seed=0):
    """One noiseless astigmatic spot per frame: z = +300 nm is wide in x."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    frames, positions = [], []
    for i in range(n):
        z = 300.0 if i % 2 else -300.0
        sx, sy = (1.6, 0.9) if z > 0 else (0.9, 1.6)
        cx, cy = rng.uniform(size / 2 - 1, size / 2, 2)
        spot = np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
        frames.append(0.01 + spot)
        positions.append(np.array([[(cx + 0.5) * 100, (cy + 0.5) * 100, z]]))
    return np.array(frames, dtype=np.float32), positions


def z_at_true_positions(module, frames, positions, z_range_nm):
    with torch.no_grad():
        _, z = module.eval().subpixel_channels_z(torch.from_numpy(frames)[:, None])
    channels = z.permute(0, 2, 3, 1).numpy()
    xyz = np.concatenate(positions)
    rows = xyz[:, 1] * R / 100 - 0.5
    cols = xyz[:, 0] * R / 100 - 0.5
    z = z_at_peaks(channels, np.arange(len(frames)), rows, cols, R)
    return denormalize_z(z, z_range_nm), xyz[:, 2]


def test_nearest_z_maps_hold_the_nearest_emitters_z_where_the_map_is_positive():
    xyz = np.array([[150.0, 250.0, -300.0], [450.0, 250.0, 200.0]])
    z = nearest_z_maps([xyz], (6, 8), d_max=14.0)[0]
    dt = distance_transform_maps([xyz[:, :2]], (6, 8), d_max=14.0)[0]
    assert np.array_equal(~np.isnan(z), dt > 0)
    # map pixel centres: x = (j + 0.5) * 100 / 7 nm; columns up to 20 lie
    # nearer the first emitter (x 150 nm -> map column 10), from 21 the second
    row = 17
    assert z[row, 10] == -300.0 and z[row, 20] == -300.0
    assert z[row, 21] == 200.0 and z[row, 31] == 200.0
    assert np.isnan(z[0, 55])


def test_normalize_z_maps_the_range_to_minus_one_one_and_back():
    z = np.array([-750.0, 0.0, 750.0, 375.0])
    scaled = normalize_z(z, (-750.0, 750.0))
    assert scaled.tolist() == [-1.0, 0.0, 1.0, 0.5]
    assert np.allclose(denormalize_z(scaled, (-750.0, 750.0)), z)
    assert np.allclose(normalize_z([100.0], (0.0, 200.0)), [0.0])


def test_z_at_peaks_reads_the_pixel_shuffled_map_around_the_peak():
    rng = np.random.default_rng(1)
    channels = rng.normal(size=(2, 3, 4, R * R)).astype(np.float32)
    # the map the pixel shuffle assembles: pixel (r i + a, r j + b) is
    # channel a r + b of camera pixel (i, j)
    maps = channels.reshape(2, 3, 4, R, R).transpose(0, 1, 3, 2, 4)
    maps = maps.reshape(2, 3 * R, 4 * R)
    frame, row, col = (
        np.array([0, 1, 1]),
        np.array([10.2, 0.4, 20.0]),
        np.array([13.6, 5.0, 27.0]),
    )
    z = z_at_peaks(channels, frame, row, col, R)
    expected = [
        maps[0, 9:12, 13:16].mean(),
        # indices clipped at the edges: the edge row / column counts twice
        maps[1, [0, 0, 1]][:, 4:7].mean(),
        maps[1, [19, 20, 20]][:, [26, 27, 27]].mean(),
    ]
    assert np.allclose(z, expected, atol=1e-6)


def test_depth_targets_stack_map_scaled_z_and_weight():
    xyz = [np.array([[350.0, 350.0, 375.0]])]
    maps = distance_transform_maps([xyz[0][:, :2]], (8, 8)) / np.float32(np.expm1(7))
    t = depth_targets(
        xyz, maps, (8, 8), pixel_size_nm=100.0, upscaling=R, z_range_nm=(-750, 750)
    )
    assert t.shape == (1, 3, 56, 56) and t.dtype == np.float32
    assert np.array_equal(t[0, 0], maps[0])
    near = t[0, 2] > 0  # within 3 camera pixels (21 map pixels) of the emitter
    assert np.allclose(t[0, 1][near], 0.5) and np.all(t[0, 1][~near] == 0)
    assert np.array_equal(t[0, 2][near], maps[0][near])
    assert maps[0][~near].max() < 0.015


def test_depth_map_loss_is_map_mse_plus_weighted_z_error():
    pred = torch.zeros(1, 2, 2, 2)
    pred[0, 1] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    target = torch.zeros(1, 3, 2, 2)
    target[0, 0] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # map error 1 on 1/4
    target[0, 1] = torch.tensor([[0.0, 0.0], [0.5, 0.0]])
    target[0, 2] = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # weights 1 and 3
    loss = DepthMapLoss(z_weight=0.1)(pred, target)
    # 1/4 + 0.1 * (1 * 1^2 + 3 * 0.5^2) / 4
    assert float(loss) == pytest.approx(0.25 + 0.1 * 1.75 / 4)


def test_depth_head_leaves_the_map_and_the_2d_network_alone():
    torch.manual_seed(0)
    net2d = SubPixelCNN(n_layers=2, n_channels=4, upscaling=3)
    torch.manual_seed(0)
    net3d = SubPixelCNN(n_layers=2, n_channels=4, upscaling=3, predict_z=True)
    # the same random draws up to the depth head: same 2D weights
    state2d = net2d.state_dict()
    assert all(torch.equal(state2d[k], net3d.state_dict()[k]) for k in state2d)
    assert not any(k.startswith("z_head") for k in state2d)
    x = torch.rand(2, 1, 5, 6)
    with torch.no_grad():
        both = net3d(x)
        maps, z = net3d.subpixel_channels_z(x)
        assert both.shape == (2, 2, 15, 18)
        assert torch.equal(both[:, :1], net2d(x))
        assert torch.equal(maps, net2d.subpixel_channels(x))
    with pytest.raises(ValueError, match="folded"):
        SubPixelCNN(upsampling="subpixel", predict_z=True)
    with pytest.raises(ValueError, match="predict_z=True"):
        net2d.subpixel_channels_z(x)


def test_axis_keeping_augmentation_never_turns_a_quarter():
    frames = torch.arange(16.0).reshape(1, 4, 4)
    data = MapDataset(frames, torch.zeros(1, 3, 28, 28), augment=True, keep_axes=True)
    seen = set()
    for _ in range(64):
        x, y = data[0]
        assert y.shape == (3, 28, 28)
        seen.add(tuple(x[0].flatten().tolist()))
    f = frames[0]
    allowed = {
        tuple(a.flatten().tolist())
        for a in (f, f.flip(-1), f.flip(-2), f.flip(-1).flip(-2))
    }
    assert seen == allowed


def test_a_tiny_network_learns_z_of_astigmatic_spots():
    frames, positions = elliptical_frames(32)
    reg = DistanceTransformRegressor(
        n_layers=2,
        n_channels=8,
        z_range_nm=(-400.0, 400.0),
        max_epochs=20,
        lr=3e-3,
        batch_size=8,
        validation_fraction=0,
        augment=False,
        precision="fp32",
        random_state=0,
    ).fit(frames, positions)
    z_pred, z_true = z_at_true_positions(reg.module_, frames, positions, (-400, 400))
    # chance (a constant) is 300 nm off; the learnt z map separates the two
    # depths and lands within 100 nm (measured 50 nm)
    assert np.all(np.sign(z_pred) == np.sign(z_true))
    assert np.sqrt(np.mean((z_pred - z_true) ** 2)) < 100.0
    assert reg.net_.history[-1, "train_loss"] < reg.net_.history[0, "train_loss"] / 3


@pytest.fixture(scope="module")
def fitted3d():
    sim = PAFPSimulator.from_preset(
        "low_density_as", frame_shape=(16, 16), density_per_um2=2.0, random_state=0
    )
    X, y = sim.simulate(8)
    loc = DistanceTransformLocalizer(
        n_layers=2,
        n_channels=4,
        max_epochs=1,
        validation_fraction=0,
        z_range_nm=(-750.0, 750.0),
        threshold=1.0,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConditionsWarning)
        return loc.fit(X, y), X, y


def test_predict_returns_z_nm_for_a_3d_model_only(fitted3d):
    loc, X, y = fitted3d
    with pytest.warns(ConditionsWarning, match="no astigmatic calibration"):
        table = loc.predict(X)
    assert list(table.columns[:4]) == ["frame", "x_nm", "y_nm", "z_nm"]
    assert len(table) and table["z_nm"].notna().all()
    loc2d = DistanceTransformLocalizer(
        n_layers=2, n_channels=4, max_epochs=1, validation_fraction=0, threshold=1.0
    ).fit(X, [p[:, :2] for p in y])
    assert "z_nm" not in loc2d.predict(X).columns
    # an empty table of a 3D model has the column too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConditionsWarning)
        empty = loc.set_params(threshold=1e9).predict(X)
    loc.set_params(threshold=1.0)
    assert len(empty) == 0 and "z_nm" in empty.columns


def test_3d_model_file_round_trip(fitted3d, tmp_path):
    loc, X, _ = fitted3d
    loc.conditions_ = CONDITIONS_3D
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConditionsWarning)
        before = loc.predict(X)
        path = loc.save(tmp_path / "tiny3d.pt")
        loaded = load_model(path, device="cpu")
        after = loaded.predict(X)
    del loc.conditions_
    assert loaded.z_range_nm == (-750.0, 750.0)
    assert loaded.model_metadata_["format_version"] == 2
    assert loaded.conditions_ == CONDITIONS_3D
    pd.testing.assert_frame_equal(before, after)


def test_version_1_files_still_load(fitted3d, tmp_path):
    from sklearn_smlm.localizer import rewrite_model_metadata

    _, X, y = fitted3d
    loc2d = DistanceTransformLocalizer(
        n_layers=2, n_channels=4, max_epochs=1, validation_fraction=0, threshold=1.0
    ).fit(X, [p[:, :2] for p in y])
    path = loc2d.save(tmp_path / "v2.pt")

    # the file as version 1 wrote it: no z_range_nm parameter
    def as_version_1(metadata):
        assert metadata["format_version"] == 2
        metadata["format_version"] = 1
        del metadata["params"]["z_range_nm"]

    rewrite_model_metadata(path, as_version_1, out=tmp_path / "v1.pt")
    loaded = load_model(tmp_path / "v1.pt", device="cpu")
    assert loaded.z_range_nm is None
    pd.testing.assert_frame_equal(loaded.predict(X), loc2d.predict(X))


def test_3d_input_errors_are_one_clear_line(fitted3d):
    loc, X, y = fitted3d
    reg = DistanceTransformRegressor(n_layers=1, n_channels=2, z_range_nm=(-1, 1))
    with pytest.raises(ValueError, match=r"y\[0\] needs \(x_nm, y_nm, z_nm\)"):
        reg.fit(X[:1], [y[0][:, :2]])
    with pytest.raises(ValueError, match="z_nm column"):
        reg.fit(X[:1], pd.DataFrame({"frame": [0], "x_nm": [1.0], "y_nm": [1.0]}))
    with pytest.raises(ValueError, match="low < high"):
        DistanceTransformRegressor(z_range_nm=(5, -5)).fit(X[:1], y[:1])
    with pytest.raises(ValueError, match="folded"):
        DistanceTransformRegressor(z_range_nm=(-5, 5), upsampling="subpixel").fit(
            X[:1], y[:1]
        )
    from sklearn_smlm import GaussianFitLocalizer
    from sklearn_smlm.tiling import predict_tiled

    hybrid = DistanceTransformLocalizer(refiner=GaussianFitLocalizer())
    hybrid.__dict__.update(loc.__dict__, refiner=GaussianFitLocalizer())
    with pytest.raises(ValueError, match="no hybrid mode"):
        hybrid.predict(X)
    with pytest.raises(ValueError, match="predict_tiled reads the 2D maps only"):
        predict_tiled(loc, X)


def test_3d_model_warns_on_round_2d_frames(fitted3d):
    loc, _, _ = fitted3d
    loc.conditions_ = CONDITIONS_3D
    loc.set_params(threshold=1e3)  # the depth check reads the raw frames only

    def messages(frames):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            loc.predict(frames)
        return [str(w.message) for w in seen if w.category is ConditionsWarning]

    try:
        sim2d = PAFPSimulator.from_preset("low_density", random_state=3)
        sim3d = PAFPSimulator.from_preset("low_density_as", random_state=3)
        round_ = [m for m in messages(sim2d.simulate(16)[0]) if "round" in m]
        assert len(round_) == 1 and "\n" not in round_[0]
        assert "use a 2D model" in round_[0]
        assert not [m for m in messages(sim3d.simulate(16)[0]) if "round" in m]
    finally:
        del loc.conditions_
        loc.set_params(threshold=1.0)


# ------------------------------------------------------- the shipped model
@pytest.fixture(scope="module")
def astig_3d():
    return DistanceTransformLocalizer.pretrained("astig_3d", device="cpu")


def test_shipped_3d_model_records_what_it_was_trained_for(astig_3d):
    from sklearn_smlm.simulation import PRESETS

    conditions = astig_3d.conditions_
    assert astig_3d.z_range_nm == (-750.0, 750.0)
    calibration = PRESETS["low_density_as"]["calibration"]
    assert {k: conditions["calibration"][k] for k in "xy"} == calibration
    training = astig_3d.training_info_
    assert training["script"] == "scripts/train_3d.py"
    assert training["selection"]["seed"] not in (9300, 9301)  # not the benchmark's


def test_shipped_3d_model_z_on_simulated_frames(astig_3d):
    from sklearn_smlm.metrics import localization_metrics

    sim = PAFPSimulator.from_preset("low_density_as", random_state=4242)
    X, truth = sim.simulate(12, return_table=True)
    table = astig_3d.predict(X)
    m = localization_metrics(
        truth,
        table,
        tolerance_nm=250.0,
        axial_tolerance_nm=500.0,
        border_nm=300.0,
        field_of_view_nm=(6400.0, 6400.0),
    )
    # measured on these 12 frames (135 emitters): Jaccard 0.845, z RMSE 105 nm
    # (AMD EPYC, bf16); the bounds leave room for other arithmetic
    assert m["jaccard"] > 0.75 and m["rmse_z_nm"] < 130.0, m


def test_localize_command_line_with_the_3d_model(tmp_path, capsys):
    import tifffile

    from sklearn_smlm.cli import main

    sim = PAFPSimulator.from_preset("low_density_as", random_state=7)
    X, _ = sim.simulate(4)
    tifffile.imwrite(
        tmp_path / "movie.tif", X.astype(np.uint16), photometric="minisblack"
    )
    out = tmp_path / "locs.csv"
    rc = main(
        [
            "localize",
            str(tmp_path / "movie.tif"),
            "-o",
            str(out),
            "--model",
            "astig_3d",
            "--baseline-adu",
            "100",
            "--e-per-adu",
            "50",
            "--em-gain",
            "100",
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "astig_3d is a 3D model: it localizes alone" in err
    table = pd.read_csv(out)
    assert "z [nm]" in table.columns and len(table)
