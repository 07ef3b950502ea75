"""The thick-sample test of the conditions check (spread of fitted spot widths)."""

import warnings

import numpy as np
import pytest

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm._conditions import (
    SHIPPED_CONDITIONS,
    THICK_SPREAD,
    ConditionsWarning,
    conditions_problems,
    estimate_conditions,
)
from sklearn_smlm.fitting import gaussian_model

# The model matrix's EMCCD camera and sample (benchmarks/bench_models.py).
MEDIUM = dict(
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
    psf_fwhm_nm=258.0,
    density_per_um2=1.5,
    frame_shape=(64, 64),
)
THICK = dict(z_range_nm=(-750.0, 750.0), focal_depth_nm=400.0)


@pytest.fixture(scope="module")
def thin():
    return PAFPSimulator(random_state=11, **MEDIUM).simulate(32)[0]


@pytest.fixture(scope="module")
def thick():
    return PAFPSimulator(random_state=11, **MEDIUM, **THICK).simulate(32)[0]


def _spots_of_two_widths(widths, n_per_width=24, size=64):
    """Noise-free frames of isolated spots whose widths are known."""
    rng = np.random.default_rng(0)
    frames = np.full((len(widths) * n_per_width // 4, size, size), 10.0)
    k = 0
    for sigma in widths:
        for _ in range(n_per_width):
            f, cell = divmod(k, 4)
            r0, c0 = 8 + 32 * (cell // 2), 8 + 32 * (cell % 2)
            x, y = 3.0 + rng.uniform(-0.3, 0.3), 3.0 + rng.uniform(-0.3, 0.3)
            box = gaussian_model(np.array([[x, y, 3000.0, 0.0, sigma]]), 7)[0]
            frames[f, r0 - 3 : r0 + 4, c0 - 3 : c0 + 4] += box
            k += 1
    return rng.poisson(frames).astype(np.float32)


def test_width_spread_is_the_quartile_ratio_of_known_widths():
    # half the spots 1.0 px wide, half 1.6 px: quartiles 1.0 and 1.6 px
    frames = _spots_of_two_widths([1.0, 1.6])
    est = estimate_conditions(frames, spread=True)
    assert est["n_fitted"] == 48
    # (Poisson noise on 3000-photon spots: a few % of scatter)
    assert est["psf_width_spread"] == pytest.approx(1.6, abs=0.05)
    same = estimate_conditions(_spots_of_two_widths([1.2, 1.2]), spread=True)
    assert same["psf_width_spread"] == pytest.approx(1.0, abs=0.05)
    # the fit is only made on request, and needs 30 spots
    assert "psf_width_spread" not in estimate_conditions(frames)
    few = estimate_conditions(frames[:4], spread=True)
    assert np.isnan(few["psf_width_spread"]) and few["n_fitted"] == 0


def test_thick_sample_spreads_the_widths_and_in_focus_frames_do_not(thin, thick):
    assert estimate_conditions(thin, spread=True)["psf_width_spread"] < THICK_SPREAD
    assert estimate_conditions(thick, spread=True)["psf_width_spread"] >= THICK_SPREAD


def test_medium_thick_frames_given_to_an_in_focus_specialist_warn(thin, thick):
    loc = DistanceTransformLocalizer.pretrained("dense_2013", device="cpu")
    messages = {}
    for name, frames in (("thin", thin), ("thick", thick)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loc.predict(frames)
        messages[name] = " ".join(
            str(w.message) for w in caught if issubclass(w.category, ConditionsWarning)
        )
    assert "thick sample" in messages["thick"]
    assert "thick sample" not in messages["thin"]


def test_thick_problem_by_hand():
    est = {
        "n_detections": 100,
        "density_per_um2": 1.5,
        "noise_fraction": 0.1,
        "n_bright_spots": 90,
        "psf_sigma_px": 1.2,
        "psf_sigma_px_p75": 1.4,
        "psf_width_spread": 1.5,
    }
    dense = SHIPPED_CONDITIONS["dense_2013"]
    assert any("thick sample" in p for p in conditions_problems(dense, est))
    # the default model was trained on thick samples too
    assert conditions_problems(SHIPPED_CONDITIONS["default"], est) == []
    # in focus, or not measured: nothing
    for spread in (1.2, float("nan")):
        est_ok = dict(est, psf_width_spread=spread)
        assert not any("thick" in p for p in conditions_problems(dense, est_ok))
    # 3 emitters/um^2 on 160 nm pixels is 0.077 per pixel^2: too dense to tell
    crowded = dict(est, density_per_um2=3.0)
    problems = conditions_problems(dense, crowded, pixel_size_nm=160.0)
    assert not any("thick" in p for p in problems)
    assert any("thick" in p for p in conditions_problems(dense, crowded))
