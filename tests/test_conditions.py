"""Tests of sklearn_smlm._conditions: the data's conditions against a model's."""

import warnings

import numpy as np
import pytest

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm._conditions import (
    SHIPPED_CONDITIONS,
    ConditionsWarning,
    choose_pretrained,
    conditions_problems,
    estimate_conditions,
)
from sklearn_smlm.simulation import PRESETS

EMCCD = dict(
    camera="emccd",
    quantum_efficiency=0.9,
    em_gain=100.0,
    read_noise_e=50.0,
    e_per_adu=50.0,
    baseline_adu=100.0,
    photons=1500.0,
    photon_distribution="lognormal",
    photon_spread=0.5,
    background_photons=20.0,
)


def _frames(n=32, seed=3, **params):
    params = dict(params, frame_shape=(64, 64))
    X, y = PAFPSimulator(random_state=seed, **params).simulate(n)
    return X, y


@pytest.fixture(scope="module")
def sparse():
    return _frames(density_per_um2=0.3, psf_fwhm_nm=258.0, **EMCCD)


@pytest.fixture(scope="module")
def noise():
    return _frames(density_per_um2=0.0, **EMCCD)[0]


@pytest.fixture(scope="module")
def dense_2013_like():
    return _frames(seed=4, **dict(PRESETS["bt_hd_2013"], density_per_um2=5.5))[0]


@pytest.fixture(scope="module")
def model():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = DistanceTransformLocalizer.pretrained(name, device="cpu")
        return cache[name]

    return get


def clone_pretrained(loc):
    """A copy of a loaded model whose parameters can change (shares weights)."""
    import copy

    return copy.copy(loc)


def _predict_recording(loc, X):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = loc.predict(X)
    return table, [w for w in caught if issubclass(w.category, ConditionsWarning)]


def test_estimate_matches_the_simulated_density_and_psf_width(sparse, model):
    X, y = sparse
    table, _ = _predict_recording(model("default"), X)
    est = estimate_conditions(X, table, pixel_size_nm=100.0)
    true_density = np.mean([len(p) for p in y]) / (6.4 * 6.4)
    assert est["density_per_um2"] == pytest.approx(true_density, rel=0.15)
    # PSF FWHM 258 nm at 100 nm pixels: sigma 1.096 px
    assert est["psf_sigma_px"] == pytest.approx(258.0 / 2.3548 / 100.0, abs=0.08)
    assert est["noise_fraction"] < 0.1


def test_sparse_frames_given_to_a_dense_specialist_warn_once(sparse, model):
    X, _ = sparse
    _, caught = _predict_recording(model("dense_2013"), X)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "'dense_2013'" in message and "pretrained('default')" in message
    assert "fewer than its 3-8" in message
    assert "\n" not in message
    assert caught[0].filename == __file__  # stacklevel: the user's line


def test_in_range_data_do_not_warn(sparse, dense_2013_like, model):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConditionsWarning)
        model("default").predict(sparse[0])
        model("dense_2013").predict(dense_2013_like)


@pytest.mark.parametrize("name", ["default", "dense_2013"])
def test_pure_noise_warns_and_gives_no_detection(noise, model, name):
    table, caught = _predict_recording(model(name), noise)
    assert len(caught) == 1
    assert "pure background" in str(caught[0].message)
    # the frame test (min_frame_snr=6 in the shipped files) drops them all
    assert len(table) == 0
    loc = clone_pretrained(model(name)).set_params(min_frame_snr=None)
    table, caught = _predict_recording(loc, noise)
    assert len(table) > 0 and len(caught) == 1


def test_noise_like_detections_warn():
    est = {
        "n_detections": 50,
        "n_bright_spots": 3,
        "density_per_um2": 0.1,
        "noise_fraction": 0.3,
        "psf_sigma_px": float("nan"),
    }
    problems = conditions_problems(SHIPPED_CONDITIONS["default"], est)
    assert problems == [
        "its 50 detections look like noise (the raw frames hold 3 clearly bright spots)"
    ]


def test_iter_predict_warns_once_over_many_chunks(sparse, model):
    X, _ = sparse
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tables = list(model("dense_2013").iter_predict(X, chunk_size=8))
    assert len(tables) == 4
    assert sum(issubclass(w.category, ConditionsWarning) for w in caught) == 1


def test_auto_picks_default_for_sparse_and_a_specialist_for_2013_like(
    sparse, dense_2013_like
):
    assert choose_pretrained(sparse[0], device="cpu")[0] == "default"
    name, est = choose_pretrained(dense_2013_like, device="cpu")
    assert name in ("bt_hd_2013", "dense_2013"), est


def test_problems_by_hand():
    est = {
        "n_detections": 100,
        "density_per_um2": 0.3,
        "noise_fraction": 0.1,
        "n_bright_spots": 90,
        "psf_sigma_px": 1.1,
        "psf_sigma_px_p75": 1.2,
    }
    dense = SHIPPED_CONDITIONS["dense_2013"]
    assert conditions_problems(SHIPPED_CONDITIONS["default"], est) == []
    assert any("fewer" in p for p in conditions_problems(dense, est))
    # 0.55 px: below the 0.98-1.23 px of its 230-290 nm FWHM at 100 nm
    narrow = dict(est, density_per_um2=5.0, psf_sigma_px=0.55, psf_sigma_px_p75=0.6)
    assert any("PSF sigma" in p for p in conditions_problems(dense, narrow))
    # the network sees pixels: 2.2 px is out of range at any pixel size
    wide = dict(narrow, psf_sigma_px=2.2, psf_sigma_px_p75=2.4)
    assert any("PSF sigma" in p for p in conditions_problems(dense, wide))
    in_range = dict(narrow, psf_sigma_px=1.1, psf_sigma_px_p75=1.2)
    assert conditions_problems(dense, in_range, pixel_size_nm=160.0) == []
    noisy = dict(est, noise_fraction=0.7)
    assert any("noise" in p for p in conditions_problems(None, noisy))
    assert conditions_problems(None, dict(est, n_detections=3, noise_fraction=1)) == []


def test_conditions_are_saved_and_old_files_load(tmp_path, model):
    loc = model("default")
    assert loc.conditions_["name"] == "default"
    path = loc.save(tmp_path / "m.pt")
    again = DistanceTransformLocalizer.load(path, device="cpu")
    assert again.conditions_ == loc.conditions_
    del loc.conditions_
    try:
        old = DistanceTransformLocalizer.load(loc.save(tmp_path / "o.pt"))
    finally:
        loc.conditions_ = again.conditions_
    assert old.conditions_ is None
    assert "conditions" not in old.model_metadata_


@pytest.mark.parametrize("name", sorted(SHIPPED_CONDITIONS))
def test_shipped_models_record_their_conditions(name, model):
    assert model(name).conditions_ == SHIPPED_CONDITIONS[name]


def test_cli_auto_model_and_one_line_warning(sparse, tmp_path, capsys):
    from sklearn_smlm.cli import main
    from sklearn_smlm.io import write_stack

    path = tmp_path / "sparse.tif"
    write_stack(path, np.clip(sparse[0], 0, 65535).astype(np.uint16))
    out = str(tmp_path / "locs.csv")
    assert main(["localize", str(path), "-o", out, "--model", "auto"]) == 0
    err = capsys.readouterr().err
    assert "--model auto: default" in err and "warning" not in err
    assert main(["localize", str(path), "-o", out, "--model", "dense_2013"]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if "warning:" in x]
    assert len(lines) == 1
    assert lines[0].startswith("sklearn-smlm localize: warning: model 'dense_2013'")


def test_pretrained_auto_needs_frames():
    with pytest.raises(ValueError, match="frames="):
        DistanceTransformLocalizer.pretrained("auto")
