import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sklearn_smlm import (
    DistanceTransformLocalizer,
    DistanceTransformRegressor,
    FrameNormalizer,
    PAFPSimulator,
    PeakExtractor,
    jaccard_scorer,
    load_model,
)
from sklearn_smlm.localizer import (
    MODEL_FORMAT_VERSION,
    ModelFileError,
    pretrained_names,
)
from sklearn_smlm.simulation import PRESETS

TINY = dict(n_layers=2, n_channels=8, batch_size=8, random_state=0)
# the columns of a CNN table: photons, background and uncertainty on every row
CNN_COLUMNS = ["frame", "x_nm", "y_nm", "score"]
CNN_COLUMNS += ["photons", "background", "uncertainty_nm"]


@pytest.fixture(scope="module")
def data():
    sim = PAFPSimulator(frame_shape=(16, 16), density_per_um2=1.0, random_state=0)
    return sim.simulate(24)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return DistanceTransformLocalizer(
        max_epochs=3, validation_fraction=0.25, upscaling=3, d_max=15.0, **TINY
    ).fit(X, y)


def test_fit_lowers_the_loss(fitted):
    history = fitted.net_.history
    assert len(history) == 3
    assert history[-1, "train_loss"] < history[0, "train_loss"]
    assert history[-1, "valid_loss"] < history[0, "valid_loss"]


def test_predict_returns_table_in_field_of_view(fitted, data):
    X, _ = data
    table = fitted.set_params(threshold=1.0).predict(X)
    assert list(table.columns) == CNN_COLUMNS
    assert table["frame"].dtype == np.int64
    assert table["frame"].between(0, len(X) - 1).all()
    assert table["x_nm"].between(0, 1600).all() and table["y_nm"].between(0, 1600).all()
    assert (table["score"] > 1.0).all()
    # frame numbers are those of X: predicting frames one by one agrees
    single = fitted.predict(X[5])
    expected = table[table["frame"] == 5].drop(columns="frame").reset_index(drop=True)
    pd.testing.assert_frame_equal(
        single.drop(columns="frame"), expected, check_exact=False, atol=1e-3
    )


def test_predict_maps_shape_and_scale(fitted, data):
    X, _ = data
    maps = fitted.predict_maps(X[:2])
    assert maps.shape == (2, 48, 48) and maps.dtype == np.float32


def test_predict_empty_frame_gives_empty_table(fitted):
    table = fitted.set_params(threshold=1e9).predict(np.full((2, 16, 16), 100.0))
    assert len(table) == 0
    assert list(table.columns) == CNN_COLUMNS


def test_same_seed_same_network(data):
    X, y = data
    a = DistanceTransformLocalizer(max_epochs=1, validation_fraction=0, **TINY).fit(
        X, y
    )
    b = DistanceTransformLocalizer(max_epochs=1, validation_fraction=0, **TINY).fit(
        X, y
    )
    for pa, pb in zip(
        a.net_.module_.parameters(), b.net_.module_.parameters(), strict=True
    ):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


SPARSE = dict(frame_shape=(16, 16), density_per_um2=0.8, photons=3000.0)


@pytest.fixture(scope="module")
def trained():
    # A network trained on sparse bright spots: a real check of the whole path
    # (encoding, training, peaks, coordinates).
    X, y = PAFPSimulator(**SPARSE, random_state=1).simulate(160)
    return DistanceTransformLocalizer(
        n_layers=4,
        n_channels=16,
        upscaling=3,
        d_max=15.0,
        max_epochs=12,
        lr=3e-3,
        validation_fraction=0.1,
        threshold=150.0,
        random_state=0,
        device="cpu",  # the thresholds below were measured on the CPU
    ).fit(X, y)


def test_learns_to_localize_isolated_spots(trained):
    Xt, yt = PAFPSimulator(**SPARSE, random_state=2).simulate(20)
    assert trained.score(Xt, yt) > 0.6


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.zeros((2, 3, 4, 5)), ValueError, "shape"),
        (np.full((2, 16, 16), np.nan), ValueError, "NaN"),
        (np.zeros((0, 16, 16)), ValueError, "no frames"),
        (np.zeros((1, 16, 16), dtype=bool), TypeError, "boolean"),
    ],
)
def test_predict_rejects_bad_frames(fitted, X, error, match):
    with pytest.raises(error, match=match):
        fitted.predict(X)


def test_predict_before_fit():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        DistanceTransformLocalizer().predict(np.zeros((1, 8, 8)))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"alpha": -1.0}, "alpha"),
        ({"upscaling": 0}, "upscaling"),
        ({"dropout": 1.5}, "dropout"),
        ({"upsampling": "nearest"}, "upsampling"),
        ({"threshold": float("nan")}, "threshold"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_bad_parameters_fail_in_fit(data, params, match):
    X, y = data
    with pytest.raises(ValueError, match=match):
        DistanceTransformLocalizer(max_epochs=1, **{**TINY, **params}).fit(X, y)


def test_mismatched_targets(data):
    X, y = data
    with pytest.raises(ValueError, match="frame"):
        DistanceTransformLocalizer(**TINY).fit(X, y[:-1])


def test_save_load_round_trip(fitted, data, tmp_path):
    X, _ = data
    path = fitted.save(tmp_path / "model.pt")
    loaded = load_model(path, device="cpu")
    pd.testing.assert_frame_equal(loaded.predict(X), fitted.predict(X))
    assert loaded.get_params()["n_layers"] == 2
    assert loaded.model_metadata_["format_version"] == MODEL_FORMAT_VERSION
    assert not list(tmp_path.glob(".*tmp"))


def test_load_rejects_altered_corrupt_and_foreign_files(fitted, tmp_path):
    path = fitted.save(tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)

    altered = dict(payload, state_dict=dict(payload["state_dict"]))
    key = next(iter(altered["state_dict"]))
    altered["state_dict"][key] = altered["state_dict"][key] + 1.0
    torch.save(altered, tmp_path / "altered.pt")
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(tmp_path / "altered.pt")

    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="cut.pt"):
        load_model(tmp_path / "cut.pt")

    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="not an sklearn-smlm model"):
        load_model(tmp_path / "other.pt")

    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_model(tmp_path / "missing.pt")


def test_load_rejects_other_format_version(fitted, tmp_path):
    from sklearn_smlm.localizer import rewrite_model_metadata

    def future(metadata):
        metadata["format_version"] = MODEL_FORMAT_VERSION + 1
        metadata["library_version"] = "9.0.0"

    path = fitted.save(tmp_path / "model.pt")
    rewrite_model_metadata(path, future, out=tmp_path / "future.pt")
    with pytest.raises(ModelFileError, match="format version 3.*9.0.0"):
        load_model(tmp_path / "future.pt")


def test_load_does_not_unpickle_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "sklearn-smlm-model", "evil": Evil()}, tmp_path / "e.pt")
    with pytest.raises(ModelFileError, match="e.pt"):
        load_model(tmp_path / "e.pt")


def test_joblib_pickle(fitted, data, tmp_path):
    X, _ = data
    joblib.dump(fitted, tmp_path / "loc.joblib")
    again = joblib.load(tmp_path / "loc.joblib")
    pd.testing.assert_frame_equal(again.predict(X), fitted.predict(X))


def test_clone_keeps_params_only(fitted):
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params()
    assert not hasattr(fresh, "net_")


def test_partial_fit_continues_training(data):
    X, y = data
    loc = DistanceTransformLocalizer(max_epochs=1, validation_fraction=0.25, **TINY)
    loc.fit(X, y)
    loc.partial_fit(X, y)
    assert len(loc.net_.history) == 2


def _pipeline(memory=None):
    return Pipeline(
        [
            ("normalize", FrameNormalizer()),
            (
                "network",
                DistanceTransformRegressor(
                    max_epochs=1, validation_fraction=0, upscaling=3, d_max=15.0, **TINY
                ),
            ),
            ("peaks", PeakExtractor(upscaling=3)),
        ],
        memory=memory,
    )


def test_pipeline_does_the_same_job_in_steps(data):
    X, y = data
    pipe = _pipeline().fit(X, y)
    table = pipe.set_params(peaks__threshold=1.0).predict(X)
    assert list(table.columns) == ["frame", "x_nm", "y_nm", "score"]
    loc = DistanceTransformLocalizer(
        max_epochs=1,
        validation_fraction=0,
        upscaling=3,
        d_max=15.0,
        threshold=1.0,
        **TINY,
    ).fit(X, y)
    # predict adds the photons and uncertainty measured on the raw frames,
    # which the pipeline's peak step does not see
    pd.testing.assert_frame_equal(loc.predict(X)[list(table.columns)], table)


def test_grid_search_threshold_does_not_retrain(data, tmp_path, monkeypatch):
    X, y = data
    calls = []
    original = DistanceTransformRegressor.fit

    def counting_fit(self, X, y):
        calls.append(self.get_params()["alpha"])
        return original(self, X, y)

    monkeypatch.setattr(DistanceTransformRegressor, "fit", counting_fit)
    search = GridSearchCV(
        _pipeline(memory=str(tmp_path / "cache")),
        {"network__alpha": [5.0, 7.0], "peaks__threshold": [50.0, 150.0, 300.0]},
        scoring=jaccard_scorer,
        cv=2,
        refit=False,
    )
    search.fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 6
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # 2 alphas x 2 folds: the network was trained 4 times, not 12
    assert len(calls) == 4


def test_grid_search_on_the_localizer(data):
    X, y = data
    search = GridSearchCV(
        DistanceTransformLocalizer(max_epochs=1, validation_fraction=0, **TINY),
        {"threshold": [100.0, 300.0]},
        scoring=jaccard_scorer,
        cv=2,
    ).fit(X, y)
    assert search.best_params_["threshold"] in (100.0, 300.0)
    assert isinstance(search.predict(X), pd.DataFrame)


def test_iter_predict_streams_with_global_frames(fitted, data, tmp_path):
    from sklearn_smlm.io import TiffStack, write_stack

    X, _ = data
    fitted.set_params(threshold=1.0)
    whole = fitted.predict(X)
    parts = list(fitted.iter_predict(X, chunk_size=5))
    assert len(parts) == 5
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    write_stack(tmp_path / "stack.tif", X)
    with TiffStack(tmp_path / "stack.tif") as stack:
        from_disk = fitted.predict(stack)
    pd.testing.assert_frame_equal(from_disk, whole)
    with pytest.raises(ValueError, match="chunk_size"):
        next(fitted.iter_predict(X, chunk_size=0))


def test_hybrid_refiner_keeps_detections_and_sharpens_them(trained):
    from sklearn_smlm.fitting import GaussianFitLocalizer
    from sklearn_smlm.metrics import localization_metrics, match_localizations

    X, y = PAFPSimulator(**SPARSE, random_state=3).simulate(40)
    plain = trained.predict(X)
    hybrid = clone(trained).set_params(
        refiner=GaussianFitLocalizer(
            baseline_adu=100.0, e_per_adu=50.0, em_gain=100.0, quantum_efficiency=0.9
        )
    )
    hybrid.normalizer_, hybrid.regressor_ = trained.normalizer_, trained.regressor_
    table = hybrid.predict(X)
    # every CNN detection is kept, in order, with the fit's columns added;
    # detections split into two emitters add a row after them
    split = (table["fit_status"] == "split").to_numpy()
    assert table["fit_ok"][split].all()
    assert (table["n_emitters"][np.flatnonzero(split) - 1] == 2).all()
    table = table[~split].reset_index(drop=True)
    assert len(table) == len(plain)
    np.testing.assert_array_equal(table["frame"], plain["frame"])
    for column in ("photons", "background", "sigma_nm", "uncertainty_nm"):
        assert table[column].notna().all()
    # the fits of the true detections succeed (false detections on noise may
    # fail; they keep the network's position and are flagged)
    matched = match_localizations(y, plain, tolerance_nm=100.0)["pred_index"]
    # (a fit moving more than a pixel from this tiny network's detection keeps
    # the detection: flagged, not failed)
    # detections in crowded surroundings (over 0.7 per um^2) keep the network's
    # position on purpose and are not fitted
    # (16x16 frames: every spot is within 8 px of an edge, and 6 of 72 fits
    # did not converge, 4 left the frame; measured 0.85 with the density
    # counted in a 2 um disc, which fits the detections of these small frames)
    status = table["fit_status"].iloc[matched]
    assert status.isin(["ok", "moved_from_detection", "crowded"]).mean() > 0.8
    assert table["fit_ok"].iloc[matched][status != "crowded"].mean() > 0.8
    # the fit on the raw pixels localizes bright isolated spots more precisely
    before = localization_metrics(y, plain, tolerance_nm=100.0)
    after = localization_metrics(y, table, tolerance_nm=100.0)
    assert after["tp"] >= 0.95 * before["tp"]
    assert after["rmse_nm"] < before["rmse_nm"]
    with pytest.raises(TypeError, match="refiner"):
        clone(hybrid).set_params(refiner="gauss")._predict_frames(X)


def test_precision_can_change_after_fit(fitted, data):
    X, _ = data
    fitted.set_params(precision="fp32", threshold=1.0)
    fitted.predict(X[:2])
    assert fitted.regressor_.precision_ == "fp32"
    fitted.set_params(precision="bf16")
    fitted.predict(X[:2])
    assert fitted.regressor_.precision_ == "bf16"
    fitted.set_params(precision="auto")


def test_save_load_keeps_the_hybrid_refiner(fitted, data, tmp_path):
    from sklearn_smlm.fitting import GaussianFitLocalizer

    X, _ = data
    hybrid = clone(fitted).set_params(
        refiner=GaussianFitLocalizer(baseline_adu=100.0, e_per_adu=50.0, em_gain=100.0)
    )
    hybrid.normalizer_, hybrid.regressor_ = fitted.normalizer_, fitted.regressor_
    hybrid.frame_shape_, hybrid.net_ = fitted.frame_shape_, fitted.net_
    loaded = load_model(hybrid.save(tmp_path / "hybrid.pt"))
    assert loaded.refiner.get_params() == hybrid.refiner.get_params()
    pd.testing.assert_frame_equal(loaded.predict(X), hybrid.predict(X))


@pytest.mark.parametrize(
    "name, conditions",
    [
        ("default", {"density_per_um2": 1.0}),
        # 1 emitter/um^2 is outside its 3-8 (a ConditionsWarning, see
        # test_conditions.py): it is given the 2013 density it was made for
        ("dense_2013", PRESETS["bt_hd_2013"]),
        # a specialist: the calibrated 2013 conditions (5.49 emitters/um^2)
        ("bt_hd_2013", PRESETS["bt_hd_2013"]),
    ],
)
def test_shipped_pretrained_models_load_and_localize(name, conditions):
    assert name in pretrained_names()
    loc = DistanceTransformLocalizer.pretrained(name, device="cpu")
    assert loc.model_metadata_["training"]["pixel_size_nm"] == 100.0
    X, y = PAFPSimulator(**conditions, random_state=0).simulate(4)
    assert loc.score(X, y) > 0.8
