"""Background photons per pixel: uniform level, gradients, masks, smooth variation."""

import numpy as np

__all__ = ["gradient_profile", "background_photons_map"]


def gradient_profile(n, low, high):
    """Return a linear ramp from ``low`` to ``high`` sampled at ``n`` pixel centres.

    Examples
    --------
    >>> gradient_profile(4, 1.0, 2.0).tolist()
    [1.125, 1.375, 1.625, 1.875]
    """
    centres = (np.arange(n) + 0.5) / n
    return low + (high - low) * centres


def background_photons_map(
    levels, shape, *, gradient=None, mask=None, variation=0.0, length_px=20.0, rng=None
):
    """Return background photons per pixel for a stack of frames.

    Parameters
    ----------
    levels : ndarray of shape (n_frames,)
        Mean background of each frame in photons per pixel.
    shape : tuple of int
        ``(height, width)``.
    gradient : tuple of float, optional
        ``(low, high)`` factors multiplying the level from the left column
        (``low``) to the right column (``high``), linear in x.
    mask : ndarray of shape (height, width), optional
        Factors multiplying the level pixel by pixel.
    variation : float, default=0.0
        Relative amplitude (standard deviation) of a smooth random modulation
        drawn anew for every frame: a sum of three plane waves of wavelength
        about ``length_px`` pixels with random directions and phases.
    length_px : float, default=20.0
        Wavelength of the smooth modulation in pixels.
    rng : numpy.random.Generator, optional
        Needed when ``variation > 0``.

    Returns
    -------
    background : ndarray of shape (n_frames, height, width)
    """
    height, width = shape
    levels = np.asarray(levels, dtype=np.float64)
    spatial = np.ones((height, width))
    if gradient is not None:
        spatial = spatial * gradient_profile(width, *gradient)[None, :]
    if mask is not None:
        spatial = spatial * mask
    out = levels[:, None, None] * spatial[None]
    if variation > 0:
        n, n_waves = len(levels), 3
        angle = rng.uniform(0.0, 2.0 * np.pi, (n, n_waves))
        phase = rng.uniform(0.0, 2.0 * np.pi, (n, n_waves))
        k = 2.0 * np.pi / length_px
        yy = np.arange(height)[:, None] + 0.5
        xx = np.arange(width)[None, :] + 0.5
        field = np.zeros((n, height, width))
        for j in range(n_waves):
            kx = (k * np.cos(angle[:, j]))[:, None, None]
            ky = (k * np.sin(angle[:, j]))[:, None, None]
            field += np.cos(kx * xx + ky * yy + phase[:, j, None, None])
        # each cosine has variance 1/2, so the sum of three has variance 3/2
        out *= np.clip(1.0 + variation * field / np.sqrt(1.5), 0.0, None)
    return out
