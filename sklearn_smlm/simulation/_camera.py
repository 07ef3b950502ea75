"""Camera models: photons -> detected electrons -> camera counts (ADU)."""

import numpy as np

__all__ = ["em_register", "emccd_electrons", "emccd_adu", "scmos_adu", "quantize"]

# From this many expected photoelectrons on, the EMCCD output (Poisson then
# gamma) is drawn in one step from a shifted gamma with the same mean,
# variance and skewness; below it, exactly (see emccd_electrons).
_FAST_FROM_E = 10.0

# Below this many input electrons the EM register is sampled from the exact
# gamma law; above it the Wilson-Hilferty cube-of-normal approximation is used
# (relative error of the quantiles < 1e-3 there, and about 3x faster).
_EXACT_GAMMA_BELOW = 16


def em_register(electrons, em_gain, rng):
    """Return the output of an electron-multiplying register.

    The output for ``n`` input electrons follows ``Gamma(shape=n, scale=g)``
    (Basden et al. 2003; Hirsch et al. 2013), 0 for ``n = 0``. For ``n`` of
    16 or more the gamma variate is drawn with the Wilson-Hilferty
    transform ``n * g * (1 - 1/(9n) + z / sqrt(9n))^3`` of a standard normal
    ``z``, which keeps the mean, variance and skewness and is much faster.

    Parameters
    ----------
    electrons : ndarray of int
        Input electrons per pixel (any shape).
    em_gain : float or ndarray broadcastable to ``electrons``
        Mean gain of the register.
    rng : numpy.random.Generator

    Returns
    -------
    output : ndarray of float32, same shape as ``electrons``
    """
    n = np.asarray(electrons)
    gain = np.broadcast_to(np.asarray(em_gain, dtype=np.float32), n.shape)
    nf = n.astype(np.float32)
    out = np.zeros(n.shape, dtype=np.float32)
    large = n >= _EXACT_GAMMA_BELOW
    small = (n > 0) & ~large
    if large.any():
        nl = nf[large]
        inv9n = 1.0 / (9.0 * nl)
        z = rng.standard_normal(nl.shape, dtype=np.float32)
        t = 1.0 - inv9n + z * np.sqrt(inv9n)
        out[large] = nl * gain[large] * t * t * t
    if small.any():
        out[small] = rng.gamma(nf[small].astype(np.float64), gain[small]).astype(
            np.float32
        )
    return out


def _gamma_wilson_hilferty(shape, rng):
    """Approximate ``Gamma(shape, 1)`` draws from one standard normal each."""
    inv9 = 1.0 / (9.0 * shape)
    z = rng.standard_normal(shape.shape, dtype=np.float32)
    t = 1.0 - inv9 + z * np.sqrt(inv9)
    return shape * t * t * t


def emccd_electrons(mean_e, em_gain, rng, *, fast=True):
    """Draw the EM-register output for Poisson photoelectrons of mean ``mean_e``.

    Exactly: ``n ~ Poisson(mean_e)``, output ``~ Gamma(n, em_gain)``
    (:func:`em_register`). This compound law has mean ``lam * g``, variance
    ``2 lam g^2`` and skewness ``3 / sqrt(2 lam)`` (cumulants ``k_j = lam
    j! g^j``). With ``fast=True``, pixels with ``mean_e >= 10`` are instead
    drawn as ``1.5 g G - lam g / 3`` with ``G ~ Gamma(8 lam / 9)`` (itself by
    the Wilson-Hilferty transform of one normal), which has exactly the same
    first three cumulants (the excess kurtosis is ``6.75 / lam`` instead of
    ``6 / lam``, and the mass ``exp(-lam) < 5e-5`` at zero is spread): one
    normal draw per pixel instead of a Poisson and a gamma draw.

    Parameters
    ----------
    mean_e : ndarray of float
        Expected photoelectrons per pixel.
    em_gain : float or ndarray broadcastable to ``mean_e``
    rng : numpy.random.Generator
    fast : bool, default=True

    Returns
    -------
    output : ndarray of float32, same shape as ``mean_e``
        Electrons at the register output.
    """
    lam = np.asarray(mean_e, dtype=np.float32)
    gain = np.broadcast_to(np.asarray(em_gain, dtype=np.float32), lam.shape)
    if not fast:
        return em_register(rng.poisson(lam.astype(np.float64)), gain, rng)
    out = np.empty(lam.shape, dtype=np.float32)
    high = lam >= _FAST_FROM_E
    if high.all():
        shape = lam * np.float32(8.0 / 9.0)
        g = _gamma_wilson_hilferty(shape, rng)
        out[...] = gain * (np.float32(1.5) * g - lam * np.float32(1.0 / 3.0))
        return out
    lh, gh = lam[high], gain[high]
    g = _gamma_wilson_hilferty(lh * np.float32(8.0 / 9.0), rng)
    out[high] = gh * (np.float32(1.5) * g - lh * np.float32(1.0 / 3.0))
    low = ~high
    out[low] = em_register(rng.poisson(lam[low].astype(np.float64)), gain[low], rng)
    return out


def quantize(adu, saturation_adu):
    """Round to whole counts and clip to the ADC range ``[0, saturation_adu]``."""
    np.rint(adu, out=adu)
    np.clip(adu, 0.0, saturation_adu, out=adu)
    return adu


def emccd_adu(
    photons,
    rng,
    *,
    quantum_efficiency,
    em_gain,
    read_noise_e,
    e_per_adu,
    baseline_adu,
    saturation_adu,
    fast=True,
):
    """Turn expected photons per pixel into EMCCD counts.

    ``electrons ~ Poisson(QE * photons)`` -> EM register ``Gamma(electrons,
    em_gain)`` -> ``+ Normal(0, read_noise_e)`` -> ``/ e_per_adu +
    baseline_adu`` -> rounded and clipped to ``[0, saturation_adu]``. So the
    mean is ``baseline + QE * photons * em_gain / e_per_adu`` and the variance
    ``2 * QE * photons * (em_gain / e_per_adu)^2 + (read_noise_e / e_per_adu)^2``
    (the excess-noise factor 2 of EM gain) plus the quantization 1/12.
    ``fast`` selects the one-draw sampler of :func:`emccd_electrons`.

    Parameters
    ----------
    photons : ndarray of shape (n_frames, H, W)
        Expected photons per pixel (signal plus background).
    rng : numpy.random.Generator
    quantum_efficiency, em_gain, read_noise_e, e_per_adu, baseline_adu : float
        or ndarray of shape (n_frames, 1, 1) for per-frame values.
    saturation_adu : float
    fast : bool, default=True

    Returns
    -------
    adu : ndarray of float32, same shape as ``photons``
    """
    amplified = emccd_electrons(photons * quantum_efficiency, em_gain, rng, fast=fast)
    if np.any(np.asarray(read_noise_e) > 0):
        noise = rng.standard_normal(amplified.shape, dtype=np.float32)
        amplified += noise * np.asarray(read_noise_e, dtype=np.float32)
    adu = amplified / np.asarray(e_per_adu, dtype=np.float32)
    adu += np.asarray(baseline_adu, dtype=np.float32)
    return quantize(adu, saturation_adu)


def scmos_adu(
    photons,
    rng,
    *,
    quantum_efficiency,
    offset_adu,
    gain_adu_per_e,
    read_noise_e,
    saturation_adu,
):
    """Turn expected photons per pixel into sCMOS counts with per-pixel maps.

    ``electrons ~ Poisson(QE * photons)``, ``+ Normal(0, read_noise_e[pixel])``,
    ``* gain_adu_per_e[pixel] + offset_adu[pixel]``, rounded and clipped
    (Huang et al., Nat. Methods 2013).

    Parameters
    ----------
    photons : ndarray of shape (n_frames, H, W)
    rng : numpy.random.Generator
    quantum_efficiency : float
    offset_adu, gain_adu_per_e, read_noise_e : ndarray of shape (H, W)
        Per-pixel maps (or per-frame ``(n_frames, 1, 1)`` arrays, or floats).
    saturation_adu : float

    Returns
    -------
    adu : ndarray of float32, same shape as ``photons``
    """
    electrons = rng.poisson(photons * quantum_efficiency).astype(np.float32)
    noise = rng.standard_normal(electrons.shape, dtype=np.float32)
    electrons += noise * np.asarray(read_noise_e, dtype=np.float32)
    adu = electrons * np.asarray(gain_adu_per_e, dtype=np.float32)
    adu += np.asarray(offset_adu, dtype=np.float32)
    return quantize(adu, saturation_adu)
