"""PSF, camera and background models of sklearn_smlm.simulation."""

import numpy as np
import pytest
from scipy import integrate, stats

from sklearn_smlm.simulation import (
    em_register,
    emccd_adu,
    emccd_electrons,
    fwhm_to_sigma,
    integrated_gaussian_1d,
    render_spots,
    sigma_at_z,
)


def test_integrated_gaussian_matches_numerical_integral():
    edges = np.array([-1.0, 0.0, 0.5, 2.0])
    centre, sigma = 0.3, 0.7
    mass = integrated_gaussian_1d(edges, centre, sigma)
    pdf = stats.norm(centre, sigma).pdf
    expected = [
        integrate.quad(pdf, a, b)[0] for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    np.testing.assert_allclose(mass, expected, rtol=1e-10)


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_rendered_spot_sums_to_photons_and_is_centred(method):
    # 4-sigma window drops 2 * (1 - Phi(4)) per axis -> 1.3e-4 of the photons
    img = render_spots(
        2,
        (21, 21),
        np.array([0, 1]),
        np.array([10.3, 7.5]),
        np.array([9.8, 10.5]),
        1.2,
        np.array([1.2, 2.0]),
        np.array([1000.0, 250.0]),
        10,
        method=method,
    )
    np.testing.assert_allclose(img.sum(axis=(1, 2)), [1000.0, 250.0], rtol=1e-6)
    # centre of mass equals the continuous position (pixel centre at c + 0.5)
    rows, cols = np.mgrid[0:21, 0:21] + 0.5
    for f, (x, y) in enumerate([(10.3, 9.8), (7.5, 10.5)]):
        w = img[f] / img[f].sum()
        assert abs((w * cols).sum() - x) < 1e-6
        assert abs((w * rows).sum() - y) < 1e-6
    # pixel value equals the product of the two 1-D pixel integrals
    ex = integrated_gaussian_1d(np.array([10.0, 11.0]), 10.3, 1.2)[0]
    ey = integrated_gaussian_1d(np.array([9.0, 10.0]), 9.8, 1.2)[0]
    assert img[0, 9, 10] == pytest.approx(1000.0 * ex * ey, rel=1e-5)


def test_dense_and_sparse_rendering_agree_with_border_spots():
    rng = np.random.default_rng(1)
    k = 300
    args = (
        4,
        (16, 24),
        rng.integers(0, 4, k),
        rng.uniform(-6, 30, k),
        rng.uniform(-6, 22, k),
        rng.uniform(0.8, 1.5, k),
        rng.uniform(0.8, 1.5, k),
        rng.uniform(100, 2000, k),
        6,
    )
    a = render_spots(*args, method="dense")
    b = render_spots(*args, method="sparse")
    np.testing.assert_allclose(a, b, atol=1e-3 * b.max())


def test_fwhm_and_defocus_widths():
    assert fwhm_to_sigma(2.0 * np.sqrt(2.0 * np.log(2.0))) == pytest.approx(1.0)
    sx, sy = sigma_at_z(110.0, np.array([-400.0, 0.0, 400.0]), focal_depth_nm=400.0)
    np.testing.assert_allclose(sx, [110 * np.sqrt(2), 110, 110 * np.sqrt(2)])
    np.testing.assert_allclose(sx, sy)
    sx, sy = sigma_at_z(
        100.0, np.array([300.0]), focal_depth_nm=300.0, astigmatism_nm=300
    )
    assert sx[0] == pytest.approx(100.0) and sy[0] == pytest.approx(100.0 * np.sqrt(5))


def _compound_moments(lam, g):
    # cumulants of Poisson(lam)-many Exp(g) sums: k_j = lam * j! * g^j
    mean, var = lam * g, 2 * lam * g**2
    skew = 6 * lam * g**3 / var**1.5
    return mean, var, skew


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("lam", [3.0, 20.0, 200.0])
def test_emccd_electrons_moments(lam, fast):
    rng = np.random.default_rng(0)
    out = emccd_electrons(np.full(200_000, lam), 100.0, rng, fast=fast).astype(float)
    mean, var, skew = _compound_moments(lam, 100.0)
    assert out.mean() == pytest.approx(mean, rel=0.01)
    assert out.var() == pytest.approx(var, rel=0.02)
    assert stats.skew(out) == pytest.approx(skew, abs=0.05)


def test_fast_and_exact_emccd_have_the_same_distribution():
    rng = np.random.default_rng(3)
    lam = 20.0
    fast = emccd_electrons(np.full(50_000, lam), 50.0, rng, fast=True)
    exact = emccd_electrons(np.full(50_000, lam), 50.0, rng, fast=False)
    assert stats.ks_2samp(fast, exact).pvalue > 1e-3
    # quantiles from 1 % to 99 % agree within 5 % of the standard deviation
    qs = [0.01, 0.1, 0.5, 0.9, 0.99]
    std = np.sqrt(2 * lam) * 50.0
    np.testing.assert_allclose(
        np.quantile(fast, qs), np.quantile(exact, qs), atol=0.05 * std
    )


def test_em_register_zero_electrons_give_zero():
    rng = np.random.default_rng(0)
    out = em_register(np.array([0, 0, 1, 30]), 100.0, rng)
    assert out[0] == 0 and out[1] == 0 and out[2] > 0 and out[3] > 0


def test_emccd_mean_and_variance_in_adu():
    rng = np.random.default_rng(0)
    photons = np.full((20, 50, 50), 40.0)
    qe, gain, rn, e_per_adu, base = 0.9, 300.0, 74.4, 45.0, 100.0
    adu = emccd_adu(
        photons,
        rng,
        quantum_efficiency=qe,
        em_gain=gain,
        read_noise_e=rn,
        e_per_adu=e_per_adu,
        baseline_adu=base,
        saturation_adu=65535.0,
    )
    assert np.all(adu == np.round(adu))
    mean = base + qe * 40.0 * gain / e_per_adu  # 340 ADU
    var = 2 * qe * 40.0 * (gain / e_per_adu) ** 2 + (rn / e_per_adu) ** 2 + 1 / 12
    n = adu.size
    assert abs(adu.mean() - mean) < 4 * np.sqrt(var / n)
    assert adu.var() == pytest.approx(var, rel=0.03)


def test_emccd_saturation_clips():
    rng = np.random.default_rng(0)
    adu = emccd_adu(
        np.full((1, 4, 4), 1e5),
        rng,
        quantum_efficiency=1.0,
        em_gain=300.0,
        read_noise_e=0.0,
        e_per_adu=1.0,
        baseline_adu=100.0,
        saturation_adu=1000.0,
    )
    assert np.all(adu == 1000.0)
