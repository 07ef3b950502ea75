import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from sklearn_smlm.metrics import localization_metrics
from sklearn_smlm.postprocessing import (
    DriftCorrector,
    frc_curve,
    frc_resolution,
    link_localizations,
    merge_localizations,
    plot_frc,
    rcc_drift,
    simulate_drift,
    simulate_localizations,
    split_localizations,
)
from sklearn_smlm.simulation import PAFPSimulator

FIELD = (6400.0, 6400.0)


def _rms(estimate, truth):
    err = estimate[["dx_nm", "dy_nm"]].to_numpy() - truth[["dx_nm", "dy_nm"]].to_numpy()
    return np.sqrt(np.mean(err**2, axis=0))


@pytest.fixture(scope="module")
def drifting():
    n = 6000
    drift = simulate_drift(n, random_state=3)
    kw = dict(field_of_view_nm=FIELD, n_filaments=10, random_state=3)
    table, truth = simulate_localizations(n, drift=drift, **kw)
    still, _ = simulate_localizations(n, **kw)
    return drift, table, truth, still


# ----------------------------------------------------------------- drift
def test_rcc_recovers_drift_and_jaccard(drifting):
    drift, table, truth, still = drifting
    corrector = DriftCorrector(segment_frames=500).fit(table)
    assert corrector.drift_.shape == (6000, 3)
    assert corrector.drift_.iloc[0][["dx_nm", "dy_nm"]].tolist() == [0.0, 0.0]
    assert (_rms(corrector.drift_, drift) <= 5.0).all()

    corrected = corrector.transform(table)
    ji = {
        name: localization_metrics(truth, t, tolerance_nm=50.0)["jaccard"]
        for name, t in [("free", still), ("drift", table), ("corrected", corrected)]
    }
    # the drift itself ruins the table at 50 nm, and the correction restores it
    assert ji["drift"] < ji["free"] - 0.3
    assert ji["corrected"] >= ji["free"] - 0.02


def test_fiducial_drift():
    n = 3000
    drift = simulate_drift(n, random_state=1)
    table, _ = simulate_localizations(
        n, drift=drift, field_of_view_nm=FIELD, n_fiducials=3, random_state=1
    )
    corrector = DriftCorrector("fiducial").fit(table)
    assert len(corrector.segments_) == 3
    assert (_rms(corrector.drift_, drift) <= 2.0).all()


def test_fiducial_drift_without_fiducials_fails_clearly():
    table, _ = simulate_localizations(500, field_of_view_nm=FIELD, random_state=0)
    with pytest.raises(ValueError, match="no fiducial found"):
        DriftCorrector("fiducial").fit(table)


def test_rcc_on_a_known_shift():
    # two halves of one structure, the second shifted by a known vector
    rng = np.random.default_rng(0)
    sites = rng.uniform(0, 3000, (300, 2))
    xy = np.repeat(sites, 20, axis=0) + rng.normal(0, 8, (6000, 2))
    frame = np.tile(np.arange(20), 300)
    xy[frame >= 10] += (37.0, -21.0)
    table = pd.DataFrame({"frame": frame, "x_nm": xy[:, 0], "y_nm": xy[:, 1]})
    _, segments, _ = rcc_drift(table, segment_frames=10)
    step = segments[["dx_nm", "dy_nm"]].diff().iloc[1].to_numpy()
    np.testing.assert_allclose(step, [37.0, -21.0], atol=1.5)


def test_drift_corrector_checks_and_warnings(drifting):
    _, table, _, _ = drifting
    with pytest.raises(ValueError, match="method must be"):
        DriftCorrector("bogus").fit(table)
    with pytest.raises(ValueError, match="at least 2 time segments"):
        DriftCorrector(segment_frames=100000).fit(table)
    short = table[table["frame"] < 1000]
    corrector = clone(DriftCorrector(segment_frames=250)).fit(short)
    assert corrector.get_params()["segment_frames"] == 250
    with pytest.warns(UserWarning, match="beyond the 1000 fitted"):
        corrector.transform(table.iloc[-5:])


def test_plot_drift(tmp_path, drifting):
    _, table, _, _ = drifting
    corrector = DriftCorrector(segment_frames=1000).fit(table)
    ax = corrector.plot_drift()
    ax.figure.savefig(tmp_path / "drift.png")
    assert (tmp_path / "drift.png").stat().st_size > 1000


# --------------------------------------------------------------- merging
def test_merge_matches_known_on_times_of_the_simulator():
    sim = PAFPSimulator(
        structure="filaments", mean_on_frames=4, density_per_um2=1.0, random_state=0
    )
    _, truth = sim.simulate(300, return_table=True)
    # an emitter keeps its position while it is on: one on-event per position
    n_events = truth.groupby(["x_nm", "y_nm"]).ngroups
    assert n_events < 0.5 * len(truth)  # blinking spans several frames
    rng = np.random.default_rng(0)
    locs = truth.copy()
    locs[["x_nm", "y_nm"]] += rng.normal(0, 10, (len(locs), 2))
    merged = merge_localizations(locs, max_distance_nm=50, max_dark_frames=0)
    assert abs(len(merged) - n_events) <= 0.05 * n_events
    assert merged["n_merged"].sum() == len(locs)
    assert merged["photons"].sum() == pytest.approx(locs["photons"].sum())


def test_merge_bridges_missed_frames():
    table, truth = simulate_localizations(
        1000,
        field_of_view_nm=FIELD,
        mean_on_frames=5,
        detection_probability=0.85,
        random_state=2,
    )
    n_events = truth["emitter"].nunique()
    strict = merge_localizations(table, max_distance_nm=50, max_dark_frames=0)
    bridged = merge_localizations(table, max_distance_nm=50, max_dark_frames=2)
    assert len(strict) > 1.1 * n_events
    assert abs(len(bridged) - n_events) <= 0.05 * n_events
    # each merged event spans frames of one emitter
    labels = link_localizations(table, max_distance_nm=50, max_dark_frames=2)
    per_label = pd.Series(truth["emitter"].to_numpy()).groupby(labels).nunique()
    assert (per_label == 1).mean() > 0.95


def test_merge_weights_and_columns():
    table = pd.DataFrame(
        {
            "frame": [5, 6, 7, 6],
            "x_nm": [0.0, 30.0, 10.0, 2000.0],
            "y_nm": [0.0, 0.0, 0.0, 0.0],
            "photons": [100.0, 200.0, 300.0, 50.0],
            "uncertainty_nm": [10.0, 20.0, 10.0, 5.0],
            "background": [1.0, 2.0, 3.0, 4.0],
        }
    )
    merged = merge_localizations(table, max_distance_nm=40, max_dark_frames=0)
    assert len(merged) == 2
    first = merged.iloc[0]
    # weights 1/100, 1/400, 1/100: (0 + 30/4 + 10) / 2.25
    assert first["x_nm"] == pytest.approx(17.5 / 2.25)
    assert first["uncertainty_nm"] == pytest.approx(1 / np.sqrt(0.0225))
    assert first["photons"] == 600.0
    assert first["background"] == 2.0
    assert (first["n_merged"], first["first_frame"], first["last_frame"]) == (3, 5, 7)
    assert merged["frame"].tolist() == [5, 6]
    # row ids do not survive merging
    with_ids = merge_localizations(table.assign(id=[1, 2, 3, 4]), max_distance_nm=40)
    assert "id" not in with_ids.columns
    # without uncertainties the positions are plain means
    plain = merge_localizations(
        table.drop(columns="uncertainty_nm"), max_distance_nm=40
    )
    assert plain.iloc[0]["x_nm"] == pytest.approx(40.0 / 3)


def test_merge_empty_and_bad_parameters():
    empty = pd.DataFrame({"frame": [], "x_nm": [], "y_nm": []})
    assert len(merge_localizations(empty)) == 0
    table = pd.DataFrame({"frame": [0], "x_nm": [0.0], "y_nm": [0.0]})
    with pytest.raises(ValueError, match="max_distance_nm"):
        merge_localizations(table, max_distance_nm=0)
    with pytest.raises(ValueError, match="max_dark_frames"):
        merge_localizations(table, max_dark_frames=-1)


# ------------------------------------------------------------------- FRC
def _halves(sigma, n, rng, n_sites=600, side=3000.0):
    sites = rng.uniform(0, side, (n_sites, 2))

    def half():
        xy = np.repeat(sites, n, axis=0) + rng.normal(0, sigma, (n_sites * n, 2))
        return pd.DataFrame({"frame": 0, "x_nm": xy[:, 0], "y_nm": xy[:, 1]})

    return half(), half()


def test_frc_identical_halves_correlate_fully():
    a, _ = _halves(10.0, 3, np.random.default_rng(0))
    curve = frc_curve(a, a, pixel_size_nm=5.0)
    powered = curve["n_pixels"] > 0
    np.testing.assert_allclose(curve.loc[powered, "frc"], 1.0, atol=1e-9)
    assert np.isnan(frc_resolution(curve))


@pytest.mark.parametrize("sigma", [10.0, 20.0])
def test_frc_resolution_matches_theory_and_scales_with_precision(sigma):
    # independent halves of n localizations per site with precision sigma:
    # FRC(q) = 1 / (1 + (exp(4 pi^2 sigma^2 q^2) - 1) / n), so 1/7 is reached
    # at 1/q = 2 pi sigma / sqrt(ln(6 n + 1))
    n = 5
    a, b = _halves(sigma, n, np.random.default_rng(1))
    expected = 2 * np.pi * sigma / np.sqrt(np.log(6 * n + 1))
    resolution = frc_resolution(a, b, pixel_size_nm=sigma / 4)
    assert resolution == pytest.approx(expected, rel=0.05)


def test_frc_split_and_plot(tmp_path):
    table, _ = simulate_localizations(2000, field_of_view_nm=FIELD, random_state=0)
    first, second = split_localizations(table, block_frames=100)
    assert set(first["frame"] // 100 % 2) == {0}
    assert set(second["frame"] // 100 % 2) == {1}
    assert len(first) + len(second) == len(table)
    curve = frc_curve(table, pixel_size_nm=10.0, block_frames=100)
    resolution = frc_resolution(curve)
    # ~7 nm precision on 25 nm wide filaments: a few tens of nm
    assert 15 < resolution < 80
    ax = plot_frc(curve)
    ax.figure.savefig(tmp_path / "frc.png")
    assert (tmp_path / "frc.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="split must be"):
        split_localizations(table, split="halves")
