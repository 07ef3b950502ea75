"""PAFPSimulator: fast, seeded simulation of PALM/STORM movies with their truth."""

import copy
import functools
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from threadpoolctl import ThreadpoolController

from .._validation import check_int, check_real
from ._augment import SHAPE_PRESERVING, _transform_frames, dihedral_positions
from ._background import background_photons_map
from ._beads import astigmatic_widths
from ._camera import emccd_adu, quantize, scmos_adu
from ._emitters import Structure, blink_expand, make_filaments
from ._presets import PRESETS
from ._psf import fwhm_to_sigma, render_spots, sigma_at_z

__all__ = ["PAFPSimulator"]

# Frames are simulated in blocks of this many, each from its own random stream
# (see PAFPSimulator's "Random streams"); a public constant of the output, so
# changing it changes what a seed produces.
BLOCK_FRAMES = 32

_PHOTON_DISTRIBUTIONS = ("constant", "uniform", "lognormal", "exponential")
_CAMERAS = ("emccd", "scmos", "ideal")


@dataclass
class _Config:
    shape: tuple
    px: float
    structure: Structure
    margin_nm: float
    half_width: int
    l_on: float
    ranged: dict
    fixed: dict
    photon_distribution: str
    photon_spread: float
    z_range: tuple
    focal_depth_nm: float
    astigmatism_nm: float
    widths: object
    bg_gradient: tuple
    bg_mask: np.ndarray
    bg_variation: float
    bg_length_px: float
    density_gradient: tuple
    camera: str
    scmos_maps: tuple
    augment: bool
    fast_noise: bool
    entropy: int


class PAFPSimulator(BaseEstimator):
    """Simulate photo-activated fluorescent protein (PALM/STORM) movies.

    Frames are built as the physics goes: emitters (uniform, on filaments,
    on given points or following an image mask; optionally 3D) blink on for a
    random number of consecutive frames with a broad photon distribution;
    each is drawn as a Gaussian PSF integrated over every pixel (error
    functions), widening with defocus or astigmatic; a background is added;
    the camera turns photons into counts (ideal, EMCCD or sCMOS). Everything
    is vectorized over all emitters of a block of frames.

    Parameters
    ----------
    frame_shape : tuple of int, default=(64, 64)
        ``(height, width)`` of a frame in pixels.
    pixel_size_nm : float, default=100.0
        Camera pixel size in the sample plane.
    density_per_um2 : float or (float, float), default=1.0
        Mean number of emitters *on* per frame per square micrometre of the
        field of view: for every ``structure``, a frame holds on average
        ``density_per_um2 * H * W * px^2`` true emitters (Poisson), besides
        those in the margin.
    structure : "uniform", "filaments", ndarray of shape (m, 2) or (m, 3), or \
2-D ndarray, default="uniform"
        Where emitters sit. "uniform": anywhere in the field of view plus a
        margin (same density). "filaments": on ``n_filaments`` random smooth
        tubes drawn once per call (fixed over the movie), emitters on the
        tube surface. An ``(m, 2)`` or ``(m, 3)`` array: ``(x_nm, y_nm[,
        z_nm])`` sites drawn uniformly with replacement (3 columns make the
        sample 3D). Any other 2-D array
        (boolean, or float with more than 3 columns): an image mask of
        non-negative weights over the field of view (any resolution), no
        margin.
    n_filaments : int, default=8
        Number of filaments for ``structure="filaments"``.
    filament_width_nm : float, default=25.0
        Diameter of the filament tubes.
    filament_persistence_nm : float, default=3000.0
        Persistence length of the filament curves (larger is straighter).
    margin_nm : float, optional
        Width of the band around the field of view where emitters are also
        simulated so that spots at the border look real (their light spills
        into the frame). Default: 4 times the largest PSF width. Emitters
        in the margin are in the image but NOT in ``y``: ``y`` holds every
        emitter whose centre lies in ``[0, W * px) x [0, H * px)``.
    mean_on_frames : float, default=1.0
        Mean number of consecutive frames an emitter stays on (geometric
        distribution); 1 makes every frame independent. The population is
        started in its steady state, so the density holds from frame 0.
    photons : float or (float, float), default=1500.0
        Mean photons per emitter per frame.
    photon_distribution : {"lognormal", "uniform", "exponential", "constant"}, \
default="lognormal"
        Law of each emitter's photons in each frame around the mean:
        log-normal with ``photon_spread`` the standard deviation of the log,
        uniform in ``mean * [1 - spread, 1 + spread]``, exponential, or fixed.
    photon_spread : float, default=0.4
        Width parameter of ``photon_distribution``.
    psf_sigma_nm : float or (float, float), optional
        In-focus PSF standard deviation. Takes precedence over ``psf_fwhm_nm``.
    psf_fwhm_nm : float or (float, float), default=258.0
        In-focus PSF full width at half maximum (sigma = FWHM / 2.355).
    z_range_nm : (float, float), optional
        Axial range of a thick sample; emitters get a ``z`` (uniform in the
        range for uniform structures) and ``y`` then has ``(k, 3)`` arrays.
    focal_depth_nm : float, default=400.0
        Defocus ``d`` of ``sigma(z) = sigma0 * sqrt(1 + (z / d)^2)``.
    astigmatism_nm : float, optional
        Focal offset of an astigmatic PSF: x in focus at ``+c``, y at ``-c``.
    calibration : AstigmaticCalibration or dict, optional
        Astigmatic PSF widths from a calibration: an
        :class:`~sklearn_smlm.calibration.AstigmaticCalibration` (from beads,
        numbers or a file) or a dict ``{"x": {...}, "y": {...}}`` of
        :func:`defocus_width` parameters per axis. The widths at each
        emitter's ``z`` then come from it (``psf_fwhm_nm``, ``psf_sigma_nm``,
        ``focal_depth_nm`` and ``astigmatism_nm`` are not used for the PSF),
        and ``z_range_nm`` defaults to the calibration's ``z_range_nm_``.
    background_photons : float or (float, float), default=20.0
        Background photons per pixel per frame.
    background_mask : ndarray of shape frame_shape, optional
        Factors multiplying the background pixel by pixel.
    background_variation : float, default=0.0
        Relative amplitude of a smooth random background modulation drawn
        for each frame.
    background_length_nm : float, default=2000.0
        Wavelength of that modulation.
    camera : {"emccd", "scmos", "ideal"} or Camera, default="emccd"
        "ideal" returns Poisson photon counts (no QE, gain or offset). A
        :class:`~sklearn_smlm.Camera` gives all the camera values at once
        (the parameters below are then not used): with ``em_gain`` above 1
        the EMCCD model, else the sCMOS model with its per-pixel maps.
    quantum_efficiency : float, default=0.9
        Fraction of photons detected (electrons per photon).
    em_gain : float or (float, float), default=100.0
        Mean EM gain (EMCCD; gamma-distributed register output).
    read_noise_e : float, default=50.0
        Read noise in electrons (rms).
    e_per_adu : float, default=50.0
        Electrons per count of the converter.
    baseline_adu : float or (float, float), default=100.0
        Camera offset.
    saturation_adu : float, default=65535.0
        Largest count; brighter pixels are clipped.
    scmos_offset_adu, scmos_gain_adu_per_e, scmos_read_noise_e : ndarray of \
shape frame_shape, optional
        sCMOS per-pixel maps. Missing maps are drawn once per call: offsets
        ``baseline_adu + Normal(0, 2)``, gains ``(1 / e_per_adu) * (1 +
        Normal(0, 0.02))``, read noise ``read_noise_e * LogNormal(0, 0.3)``.
    fast_noise : bool, default=True
        Draw EMCCD pixels with 10 or more expected electrons in one step from
        a shifted gamma law with the exact mean, variance and skewness of
        Poisson shot noise followed by the gamma-distributed EM register
        (about 1.5x faster); ``False`` samples both stages exactly everywhere.
    density_gradient : (float, float), optional
        Factors multiplying the density from the top row (first) to the
        bottom row (second), linear in y (the paper's 2016 training set).
    background_gradient : (float, float), optional
        Factors multiplying the background from the left column to the
        right column, linear in x.
    augment : bool, default=False
        Apply a random flip/rotation (:func:`augment_dihedral`) to each
        frame and its positions; only the four that keep the x and y axes
        (identity, 180-degree turn, left-right and up-down flips) for
        non-square frames and for an astigmatic PSF, whose x and y widths a
        quarter turn would swap.
    random_state : int, numpy.random.Generator, RandomState or None, \
default=None
        Seed. An int gives the same movie at every call.

    Notes
    -----
    **Ranges.** Parameters marked "or (float, float)" accept a 2-tuple
    ``(low, high)``: one value per frame is drawn log-uniformly in the range
    (uniformly when ``low`` is 0), so one simulator covers many conditions.
    A scalar is fixed.

    **Random streams.** Frames are made in blocks of 32. Block ``b`` uses
    the stream ``SeedSequence(entropy, spawn_key=(1, b))`` and the structure
    (filaments, sCMOS maps) ``SeedSequence(entropy, spawn_key=(0,))``; the
    state carried between blocks (emitters still on) is deterministic. So
    ``simulate(n)`` equals the concatenation of ``iter_simulate(n,
    chunk_size=c)`` for every ``c``, and the first ``m`` frames of
    ``simulate(n)`` equal ``simulate(m)``.

    **Threads.** Each block is computed on one thread (BLAS is limited to
    one thread while it runs): the work is many small products, which
    threads slow down. Run several simulators in separate processes to use
    more cores.

    **Truth.** ``y`` and the table list emitters with their centre inside
    the field of view; margin emitters only add light. ``photons`` is the
    emitter's total photons in the frame (before QE, including light that
    falls outside the frame), ``background`` the background photons of the
    emitter's pixel, ``sigma_nm`` its PSF width (the geometric mean of the
    x and y widths for an astigmatic PSF, with ``sigma_x_nm`` and
    ``sigma_y_nm`` also given).

    Examples
    --------
    >>> from sklearn_smlm.simulation import PAFPSimulator
    >>> sim = PAFPSimulator(density_per_um2=2.0, random_state=0)
    >>> X, y = sim.simulate(3)
    >>> X.shape, X.dtype, len(y), y[0].shape[1]
    ((3, 64, 64), dtype('float32'), 3, 2)
    >>> table = sim.simulate(3, return_table=True)[1]
    >>> list(table.columns)
    ['frame', 'x_nm', 'y_nm', 'photons', 'background', 'sigma_nm']
    """

    def __init__(
        self,
        *,
        frame_shape=(64, 64),
        pixel_size_nm=100.0,
        density_per_um2=1.0,
        structure="uniform",
        n_filaments=8,
        filament_width_nm=25.0,
        filament_persistence_nm=3000.0,
        margin_nm=None,
        mean_on_frames=1.0,
        photons=1500.0,
        photon_distribution="lognormal",
        photon_spread=0.4,
        psf_sigma_nm=None,
        psf_fwhm_nm=258.0,
        z_range_nm=None,
        focal_depth_nm=400.0,
        astigmatism_nm=None,
        calibration=None,
        background_photons=20.0,
        background_mask=None,
        background_variation=0.0,
        background_length_nm=2000.0,
        camera="emccd",
        quantum_efficiency=0.9,
        em_gain=100.0,
        read_noise_e=50.0,
        e_per_adu=50.0,
        baseline_adu=100.0,
        saturation_adu=65535.0,
        scmos_offset_adu=None,
        scmos_gain_adu_per_e=None,
        scmos_read_noise_e=None,
        fast_noise=True,
        density_gradient=None,
        background_gradient=None,
        augment=False,
        random_state=None,
    ):
        self.frame_shape = frame_shape
        self.pixel_size_nm = pixel_size_nm
        self.density_per_um2 = density_per_um2
        self.structure = structure
        self.n_filaments = n_filaments
        self.filament_width_nm = filament_width_nm
        self.filament_persistence_nm = filament_persistence_nm
        self.margin_nm = margin_nm
        self.mean_on_frames = mean_on_frames
        self.photons = photons
        self.photon_distribution = photon_distribution
        self.photon_spread = photon_spread
        self.psf_sigma_nm = psf_sigma_nm
        self.psf_fwhm_nm = psf_fwhm_nm
        self.z_range_nm = z_range_nm
        self.focal_depth_nm = focal_depth_nm
        self.astigmatism_nm = astigmatism_nm
        self.calibration = calibration
        self.background_photons = background_photons
        self.background_mask = background_mask
        self.background_variation = background_variation
        self.background_length_nm = background_length_nm
        self.camera = camera
        self.quantum_efficiency = quantum_efficiency
        self.em_gain = em_gain
        self.read_noise_e = read_noise_e
        self.e_per_adu = e_per_adu
        self.baseline_adu = baseline_adu
        self.saturation_adu = saturation_adu
        self.scmos_offset_adu = scmos_offset_adu
        self.scmos_gain_adu_per_e = scmos_gain_adu_per_e
        self.scmos_read_noise_e = scmos_read_noise_e
        self.fast_noise = fast_noise
        self.density_gradient = density_gradient
        self.background_gradient = background_gradient
        self.augment = augment
        self.random_state = random_state

    @classmethod
    def from_preset(cls, name, **overrides):
        """Return a simulator set up like a reference data set.

        Parameters
        ----------
        name : str
            A key of :data:`PRESETS`: "bt_hd_2013", "mt0_n1_hd_2016",
            "mt0_n2_hd_2016", "low_density", or the astigmatic 3D
            "mt0_n1_as_2016", "mt0_n2_as_2016" and "low_density_as" (their
            sources are documented in ``sklearn_smlm.simulation._presets``).
        **overrides
            Parameters that replace the preset's (``random_state=0``,
            ``structure="filaments"``, ...).

        Returns
        -------
        simulator : PAFPSimulator

        Examples
        --------
        >>> sim = PAFPSimulator.from_preset("bt_hd_2013", random_state=0)
        >>> sim.density_per_um2, sim.em_gain
        (5.49, 100.0)
        """
        if name not in PRESETS:
            raise ValueError(
                f"unknown preset {name!r}; choose one of {sorted(PRESETS)}."
            )
        params = dict(PRESETS[name])
        params.update(overrides)
        return cls(**params)

    # ------------------------------------------------------------------ API
    def simulate(self, n_frames, *, return_table=False):
        """Simulate a movie and its ground truth.

        Parameters
        ----------
        n_frames : int
            Number of frames (>= 1).
        return_table : bool, default=False
            Return the truth as a localization table instead of a list.

        Returns
        -------
        X : ndarray of shape (n_frames, H, W), float32
            Frames in ADU (whole counts), or photons for ``camera="ideal"``.
        y : list of ndarray of shape (k_i, 2) or (k_i, 3), or pandas.DataFrame
            True ``(x_nm, y_nm[, z_nm])`` per frame, or a table with columns
            ``frame`` (0-based), ``x_nm``, ``y_nm``, [``z_nm``], ``photons``,
            ``background`` (photons/pixel), ``sigma_nm``.
        """
        n_frames = self._check_n_frames(n_frames)
        config = self._validate()
        X = None
        ys, tables = [], []
        start = 0
        for Xb, yb, tb in self._blocks(config, n_frames, return_table):
            if X is None:
                X = np.empty((n_frames,) + Xb.shape[1:], dtype=np.float32)
            X[start : start + len(Xb)] = Xb
            start += len(Xb)
            ys.extend(yb)
            if return_table:
                tables.append(tb)
        if return_table:
            return X, pd.concat(tables, ignore_index=True)
        return X, ys

    def iter_simulate(self, n_frames, *, chunk_size=256, return_table=False):
        """Yield the movie of :meth:`simulate` chunk by chunk (bounded memory).

        Parameters
        ----------
        n_frames : int
            Total number of frames.
        chunk_size : int, default=256
            Frames per chunk (the last may be shorter).
        return_table : bool, default=False
            Truth as a table, with global (movie) frame numbers.

        Yields
        ------
        X_chunk : ndarray of shape (m, H, W), float32
        y_chunk : list of ndarray or pandas.DataFrame

        Examples
        --------
        >>> sim = PAFPSimulator(random_state=0)
        >>> [len(X) for X, _ in sim.iter_simulate(5, chunk_size=2)]
        [2, 2, 1]
        """
        n_frames = self._check_n_frames(n_frames)
        chunk_size = check_int(chunk_size, "chunk_size", low=1)
        config = self._validate()
        buf_X, buf_y, buf_t, n_buf = [], [], [], 0
        first = 0
        for Xb, yb, tb in self._blocks(config, n_frames, return_table):
            buf_X.append(Xb)
            buf_y.extend(yb)
            if return_table:
                buf_t.append(tb)
            n_buf += len(Xb)
            while n_buf >= chunk_size or (n_buf and first + n_buf == n_frames):
                m = min(chunk_size, n_buf)
                X_all = np.concatenate(buf_X) if len(buf_X) > 1 else buf_X[0]
                X_out, rest = X_all[:m], X_all[m:]
                buf_X = [rest] if len(rest) else []
                if return_table:
                    t_all = pd.concat(buf_t, ignore_index=True)
                    in_chunk = t_all["frame"].to_numpy() < first + m
                    y_out = t_all[in_chunk].reset_index(drop=True)
                    buf_t = [t_all[~in_chunk].reset_index(drop=True)]
                else:
                    y_out = buf_y[:m]
                buf_y = buf_y[m:]
                n_buf -= m
                first += m
                yield X_out, y_out

    # ------------------------------------------------------------ internals
    @staticmethod
    def _check_n_frames(n_frames):
        return check_int(n_frames, "n_frames", low=1)

    def _validate(self):
        if not isinstance(self.camera, str) and self.camera is not None:
            return self._with_camera_values()._validate()
        shape = _check_shape(self.frame_shape)
        px = _positive(self.pixel_size_nm, "pixel_size_nm")
        ranged = {}
        ranged["density"] = _value_or_range(
            self.density_per_um2, "density_per_um2", allow_zero=True
        )
        ranged["photons"] = _value_or_range(self.photons, "photons", allow_zero=True)
        if self.psf_sigma_nm is not None:
            ranged["sigma"] = _value_or_range(self.psf_sigma_nm, "psf_sigma_nm")
        else:
            fwhm = _value_or_range(self.psf_fwhm_nm, "psf_fwhm_nm")
            ranged["sigma"] = tuple(float(fwhm_to_sigma(v)) for v in fwhm)
        ranged["background"] = _value_or_range(
            self.background_photons, "background_photons", allow_zero=True
        )
        ranged["em_gain"] = _value_or_range(self.em_gain, "em_gain")
        ranged["baseline"] = _value_or_range(
            self.baseline_adu, "baseline_adu", allow_zero=True
        )
        if self.camera not in _CAMERAS:
            raise ValueError(f"camera must be one of {_CAMERAS}, got {self.camera!r}.")
        fixed = {
            "qe": _positive(self.quantum_efficiency, "quantum_efficiency"),
            "read_noise_e": _positive(
                self.read_noise_e, "read_noise_e", allow_zero=True
            ),
            "e_per_adu": _positive(self.e_per_adu, "e_per_adu"),
            "saturation_adu": _positive(self.saturation_adu, "saturation_adu"),
        }
        if fixed["qe"] > 1:
            raise ValueError(
                "quantum_efficiency must be in (0, 1], got "
                f"{self.quantum_efficiency!r}."
            )
        if self.photon_distribution not in _PHOTON_DISTRIBUTIONS:
            raise ValueError(
                f"photon_distribution must be one of {_PHOTON_DISTRIBUTIONS}, got "
                f"{self.photon_distribution!r}."
            )
        spread = _positive(self.photon_spread, "photon_spread", allow_zero=True)
        if self.photon_distribution == "uniform" and spread > 1:
            raise ValueError(
                "photon_spread must be <= 1 for a uniform distribution, got "
                f"{spread!r}."
            )
        l_on = _positive(self.mean_on_frames, "mean_on_frames")
        if l_on < 1:
            raise ValueError(f"mean_on_frames must be >= 1, got {l_on!r}.")
        z_range = None
        widths = None
        z_range_nm = self.z_range_nm
        if self.calibration is not None:
            widths = astigmatic_widths(self.calibration)
            if z_range_nm is None:
                z_range_nm = getattr(self.calibration, "z_range_nm_", None)
        if z_range_nm is not None:
            z_range = _pair(z_range_nm, "z_range_nm", ordered=True, signed=True)
        focal_depth = _positive(self.focal_depth_nm, "focal_depth_nm")
        astig = self.astigmatism_nm
        if astig is not None:
            astig = float(_positive(abs(astig), "astigmatism_nm", allow_zero=True)) * (
                np.sign(astig) or 1.0
            )
        sigma_max = max(ranged["sigma"])
        z_abs = []
        if z_range is not None:
            z_abs.append(max(abs(z_range[0]), abs(z_range[1])) + 25.0)
        if not isinstance(self.structure, str):
            sites = np.asarray(self.structure)
            if sites.ndim == 2 and sites.shape[1] == 3 and sites.dtype != bool:
                z_abs.append(float(np.nanmax(np.abs(sites[:, 2]), initial=0.0)))
        if widths is not None:
            # widest calibrated PSF over the sample's depths
            zmax = max(z_abs, default=0.0)
            zs = np.linspace(-zmax, zmax, 101)
            sigma_max = float(np.max(np.concatenate(widths(zs))))
            if not (np.isfinite(sigma_max) and sigma_max > 0):
                raise ValueError(
                    "the calibration gives no finite positive PSF width over the "
                    "sample's depths; check its curves and z_range_nm."
                )
        elif z_abs or astig is not None:
            # widest PSF in the sample (the filament radius may add a little z)
            zmax = max(z_abs, default=0.0) + abs(astig or 0.0)
            sigma_max *= np.sqrt(1.0 + (zmax / focal_depth) ** 2)
        if self.margin_nm is None:
            margin = 4.0 * sigma_max
        else:
            margin = _positive(self.margin_nm, "margin_nm", allow_zero=True)
        half_width = int(np.ceil(4.0 * sigma_max / px))
        entropy = _entropy(self.random_state)
        structure_rng = np.random.default_rng(
            np.random.SeedSequence(entropy, spawn_key=(0,))
        )
        structure = self._make_structure(shape, px, margin, z_range, structure_rng)
        density_gradient = None
        if self.density_gradient is not None:
            density_gradient = _pair(self.density_gradient, "density_gradient")
        bg_gradient = None
        if self.background_gradient is not None:
            bg_gradient = _pair(self.background_gradient, "background_gradient")
        bg_mask = None
        if self.background_mask is not None:
            bg_mask = _check_map(self.background_mask, shape, "background_mask")
        bg_variation = _positive(
            self.background_variation, "background_variation", allow_zero=True
        )
        bg_length_px = _positive(self.background_length_nm, "background_length_nm") / px
        scmos_maps = None
        if self.camera == "scmos":
            scmos_maps = self._scmos_maps(shape, ranged, fixed, structure_rng)
        if not isinstance(self.augment, (bool, np.bool_)):
            raise TypeError(f"augment must be True or False, got {self.augment!r}.")
        return _Config(
            shape=shape,
            px=px,
            structure=structure,
            margin_nm=margin,
            half_width=half_width,
            l_on=l_on,
            ranged=ranged,
            fixed=fixed,
            photon_distribution=self.photon_distribution,
            photon_spread=spread,
            z_range=z_range,
            focal_depth_nm=focal_depth,
            astigmatism_nm=astig,
            widths=widths,
            bg_gradient=bg_gradient,
            bg_mask=bg_mask,
            bg_variation=bg_variation,
            bg_length_px=bg_length_px,
            density_gradient=density_gradient,
            camera=self.camera,
            scmos_maps=scmos_maps,
            augment=bool(self.augment),
            fast_noise=bool(self.fast_noise),
            entropy=entropy,
        )

    def _make_structure(self, shape, px, margin, z_range, rng):
        h, w = shape
        fov = (0.0, 0.0, w * px, h * px)
        extended = (-margin, -margin, w * px + margin, h * px + margin)
        s = self.structure
        if isinstance(s, str):
            if s == "uniform":
                return Structure("uniform", extended, z_range_nm=z_range)
            if s == "filaments":
                n_fil = check_int(self.n_filaments, "n_filaments", low=1)
                width = _positive(
                    self.filament_width_nm, "filament_width_nm", allow_zero=True
                )
                persistence = _positive(
                    self.filament_persistence_nm, "filament_persistence_nm"
                )
                segments = make_filaments(
                    rng,
                    int(n_fil),
                    extended,
                    persistence_nm=persistence,
                    z_range_nm=z_range,
                )
                return Structure(
                    "filaments",
                    extended,
                    segments=segments,
                    width_nm=width,
                    z_range_nm=z_range,
                    fov=fov,
                )
            raise ValueError(
                "structure must be 'uniform', 'filaments', an (m, 2) or (m, 3) array "
                f"of points in nm or a 2-D image mask, got {s!r}."
            )
        arr = np.asarray(s)
        if arr.ndim == 2 and arr.shape[1] in (2, 3) and arr.dtype != bool:
            points = arr.astype(np.float64)
            if len(points) == 0:
                raise ValueError("structure holds no points.")
            if not np.isfinite(points).all():
                raise ValueError("structure points must be finite.")
            if points.shape[1] == 2 and z_range is not None:
                return Structure("points", fov, points=points, z_range_nm=z_range)
            return Structure(
                "points",
                fov,
                points=points,
                z_range_nm=z_range if points.shape[1] == 3 else None,
            )
        if arr.ndim == 2:
            mask = arr.astype(np.float64)
            if not np.isfinite(mask).all() or (mask < 0).any() or mask.sum() <= 0:
                raise ValueError(
                    "a structure mask must hold finite non-negative weights, not all "
                    "zero."
                )
            return Structure("mask", fov, mask=mask, z_range_nm=z_range)
        raise ValueError(
            "structure must be 'uniform', 'filaments', an (m, 2) or (m, 3) array of "
            f"points in nm or a 2-D image mask, got an array of shape {arr.shape}."
        )

    def _with_camera_values(self):
        """Return a copy whose camera parameters are a Camera object's values.

        An EM gain above 1 makes it the EMCCD model, else the sCMOS model
        with the Camera's per-pixel maps (scalars broadcast to the frame).
        """
        from ..camera import Camera

        camera = self.camera
        if not isinstance(camera, Camera):
            raise TypeError(
                f"camera must be one of {_CAMERAS} or a Camera, got {camera!r}."
            )
        sim = copy.copy(self)
        sim.quantum_efficiency = camera.quantum_efficiency
        if camera.saturation_adu is not None:
            sim.saturation_adu = camera.saturation_adu
        if camera.em_gain > 1:
            if camera.is_per_pixel:
                raise ValueError(
                    "the simulator's EMCCD model takes one baseline, gain and read "
                    "noise; give per-pixel maps with em_gain=1 (sCMOS)."
                )
            sim.camera = "emccd"
            sim.em_gain = camera.em_gain
            sim.e_per_adu = camera.e_per_adu
            sim.baseline_adu = camera.baseline_adu
            sim.read_noise_e = camera.read_noise_e
            return sim
        shape = _check_shape(self.frame_shape)
        camera.check_frame_shape(shape)
        sim.camera = "scmos"
        sim.scmos_offset_adu = np.broadcast_to(camera.baseline_adu, shape)
        sim.scmos_gain_adu_per_e = np.broadcast_to(1.0 / camera.e_per_adu, shape)
        sim.scmos_read_noise_e = np.broadcast_to(camera.read_noise_e, shape)
        return sim

    def _scmos_maps(self, shape, ranged, fixed, rng):
        baseline = float(np.mean(ranged["baseline"]))
        offset = self.scmos_offset_adu
        if offset is None:
            offset = baseline + rng.normal(0.0, 2.0, shape)
        gain = self.scmos_gain_adu_per_e
        if gain is None:
            gain = (1.0 / fixed["e_per_adu"]) * (1.0 + rng.normal(0.0, 0.02, shape))
        noise = self.scmos_read_noise_e
        if noise is None:
            noise = fixed["read_noise_e"] * rng.lognormal(0.0, 0.3, shape)
        return (
            _check_map(offset, shape, "scmos_offset_adu"),
            _check_map(gain, shape, "scmos_gain_adu_per_e"),
            _check_map(noise, shape, "scmos_read_noise_e"),
        )

    def _blocks(self, config, n_frames, return_table):
        """Yield ``(X, y_list, table)`` per block, truncated to ``n_frames``."""
        carried = None
        for b, start in enumerate(range(0, n_frames, BLOCK_FRAMES)):
            rng = np.random.default_rng(
                np.random.SeedSequence(config.entropy, spawn_key=(1, b))
            )
            # The block's many small matrix products are fastest on one BLAS
            # thread; threaded OpenBLAS was measured 4-15x slower on a busy
            # 2-core machine.
            with _blas_controller().limit(limits=1, user_api="blas"):
                X, y, table, carried = _simulate_block(
                    config, rng, carried, first=b == 0
                )
            m = min(BLOCK_FRAMES, n_frames - start)
            if m < BLOCK_FRAMES:
                X, y = X[:m], y[:m]
                if table is not None:
                    table = table[table["frame"].to_numpy() < m]
            if return_table:
                table = table.reset_index(drop=True)
                table["frame"] += start
            yield X, y, table


@functools.cache
def _blas_controller():
    return ThreadpoolController()


def _draw(spec, n, rng):
    """One value per frame: fixed, or log-uniform (uniform from 0) in the range."""
    low, high = spec
    if low == high:
        return np.full(n, float(low))
    if low > 0:
        return np.exp(rng.uniform(np.log(low), np.log(high), n))
    return rng.uniform(low, high, n)


def _simulate_block(c, rng, carried, first):
    F = BLOCK_FRAMES
    h, w = c.shape
    px = c.px
    r = c.ranged
    density = _draw(r["density"], F, rng)
    photons_mean = _draw(r["photons"], F, rng)
    background = _draw(r["background"], F, rng)
    sigma0 = _draw(r["sigma"], F, rng)
    em_gain = _draw(r["em_gain"], F, rng)
    baseline = _draw(r["baseline"], F, rng)

    # Emitters switching on in each frame (a thinned Poisson process: the
    # structure gives candidates, the density gradient keeps a fraction).
    area = c.structure.draw_area_um2
    g_max = 1.0 if c.density_gradient is None else max(c.density_gradient)
    rate = density * area * g_max / c.l_on
    births = rng.poisson(rate)
    start = np.repeat(np.arange(F), births)
    if first and c.l_on > 1:
        # steady state at frame 0: survivors of earlier switch-ons, whose
        # remaining on-time is again geometric (memoryless)
        n0 = rng.poisson(rate[0] * (c.l_on - 1.0))
        start = np.concatenate([np.zeros(n0, dtype=np.int64), start])
    n_new = len(start)
    x, y, z = c.structure.sample(n_new, rng)
    if c.density_gradient is not None:
        low, high = c.density_gradient
        factor = low + (high - low) * np.clip(y / (h * px), 0.0, 1.0)
        keep = rng.random(n_new) * g_max < factor
        x, y, start = x[keep], y[keep], start[keep]
        if z is not None:
            z = z[keep]
    duration = (
        np.ones(len(x), dtype=np.int64)
        if c.l_on == 1
        else rng.geometric(1.0 / c.l_on, len(x))
    )
    if carried is not None and len(carried[0]):
        cx, cy, cz, crem = carried
        x = np.concatenate([cx, x])
        y = np.concatenate([cy, y])
        z = None if z is None else np.concatenate([cz, z])
        start = np.concatenate([np.zeros(len(cx), dtype=np.int64), start])
        duration = np.concatenate([crem, duration])
    emitter, frame, remaining = blink_expand(start, duration, F)
    if len(frame) and not np.all(frame[1:] >= frame[:-1]):
        # frame order makes the rendering and the truth tables cheaper
        order = np.argsort(frame, kind="stable")
        emitter, frame = emitter[order], frame[order]
    alive = remaining > 0
    carried = (x[alive], y[alive], None if z is None else z[alive], remaining[alive])
    ex, ey = x[emitter], y[emitter]
    ez = None if z is None else z[emitter]

    # Photons of each emitter in each frame.
    mean = photons_mean[frame]
    k = len(frame)
    spread = c.photon_spread
    if c.photon_distribution == "lognormal":
        phot = mean * np.exp(spread * rng.standard_normal(k) - 0.5 * spread**2)
    elif c.photon_distribution == "uniform":
        phot = mean * (1.0 + spread * rng.uniform(-1.0, 1.0, k))
    elif c.photon_distribution == "exponential":
        phot = rng.exponential(mean)
    else:
        phot = mean.copy()

    sig = sigma0[frame]
    if c.widths is not None:
        sx, sy = c.widths(np.zeros(len(frame)) if ez is None else ez)
    elif ez is not None:
        sx, sy = sigma_at_z(
            sig, ez, focal_depth_nm=c.focal_depth_nm, astigmatism_nm=c.astigmatism_nm
        )
    elif c.astigmatism_nm is not None:
        sx, sy = sigma_at_z(
            sig, 0.0, focal_depth_nm=c.focal_depth_nm, astigmatism_nm=c.astigmatism_nm
        )
    else:
        sx = sy = sig
    image = render_spots(
        F, (h, w), frame, ex / px, ey / px, sx / px, sy / px, phot, c.half_width
    )
    bg = background_photons_map(
        background,
        (h, w),
        gradient=c.bg_gradient,
        mask=c.bg_mask,
        variation=c.bg_variation,
        length_px=c.bg_length_px,
        rng=rng,
    )
    image += bg

    f = c.fixed
    if c.camera == "emccd":
        X = emccd_adu(
            image,
            rng,
            quantum_efficiency=f["qe"],
            em_gain=em_gain[:, None, None],
            read_noise_e=f["read_noise_e"],
            e_per_adu=f["e_per_adu"],
            baseline_adu=baseline[:, None, None],
            saturation_adu=f["saturation_adu"],
            fast=c.fast_noise,
        )
    elif c.camera == "scmos":
        offset, gain, noise = c.scmos_maps
        X = scmos_adu(
            image,
            rng,
            quantum_efficiency=f["qe"],
            offset_adu=offset
            + (baseline - np.mean(c.ranged["baseline"]))[:, None, None]
            if c.ranged["baseline"][0] != c.ranged["baseline"][1]
            else offset,
            gain_adu_per_e=gain,
            read_noise_e=noise,
            saturation_adu=f["saturation_adu"],
        )
    else:
        X = quantize(rng.poisson(image).astype(np.float32), np.inf)

    inside = (ex >= 0) & (ex < w * px) & (ey >= 0) & (ey < h * px)
    frame_in = frame[inside]
    pos = [ex[inside], ey[inside]] + ([] if ez is None else [ez[inside]])
    pos = np.stack(pos, axis=1)
    col = np.clip((pos[:, 0] / px).astype(np.int64), 0, w - 1)
    row = np.clip((pos[:, 1] / px).astype(np.int64), 0, h - 1)
    bg_at = bg[frame_in, row, col]

    if c.augment:
        # quarter turns would swap H and W, and for an astigmatic PSF the x
        # and y widths (so the sign of z): keep the axes in those cases
        keep_axes = h != w or c.astigmatism_nm is not None or c.widths is not None
        choices = np.array(SHAPE_PRESERVING) if keep_axes else np.arange(8)
        ks = choices[rng.integers(0, len(choices), F)]
        for j in np.unique(ks):
            sel = ks == j
            X[sel] = _transform_frames(X[sel], int(j))
            rows = sel[frame_in]
            pos[rows] = dihedral_positions(pos[rows], int(j), (h, w), px)

    order = np.argsort(frame_in, kind="stable")
    frame_in, pos = frame_in[order], pos[order]
    bounds = np.searchsorted(frame_in, np.arange(F + 1))
    y_list = [pos[bounds[i] : bounds[i + 1]] for i in range(F)]
    sx_in = np.broadcast_to(sx, ex.shape)[inside][order]
    sy_in = np.broadcast_to(sy, ex.shape)[inside][order]
    columns = {"frame": frame_in, "x_nm": pos[:, 0], "y_nm": pos[:, 1]}
    if ez is not None:
        columns["z_nm"] = pos[:, 2]
    columns["photons"] = phot[inside][order]
    columns["background"] = bg_at[order]
    if c.astigmatism_nm is not None or c.widths is not None:
        columns["sigma_nm"] = np.sqrt(sx_in * sy_in)
        columns["sigma_x_nm"] = sx_in
        columns["sigma_y_nm"] = sy_in
    else:
        columns["sigma_nm"] = sx_in
    table = pd.DataFrame(columns)
    table["frame"] = table["frame"].astype(np.int64)
    return X.astype(np.float32, copy=False), y_list, table, carried


# ---------------------------------------------------------------- validation
def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _positive(value, name, *, allow_zero=False):
    return check_real(value, name, low=0, low_open=not allow_zero)


def _value_or_range(value, name, *, allow_zero=False):
    """Return ``(v, v)`` for a scalar, the checked ``(low, high)`` for a pair."""
    if _is_real(value):
        v = _positive(value, name, allow_zero=allow_zero)
        return (v, v)
    if isinstance(value, (tuple, list, np.ndarray)) and len(value) == 2:
        low = _positive(value[0], f"{name}[0]", allow_zero=allow_zero)
        high = _positive(value[1], f"{name}[1]", allow_zero=allow_zero)
        if high < low:
            raise ValueError(f"{name} range must have low <= high, got {value!r}.")
        return (low, high)
    raise ValueError(
        f"{name} must be a number or a (low, high) pair for a per-frame draw, got "
        f"{value!r}."
    )


def _pair(value, name, *, ordered=False, signed=False):
    if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}.")
    if signed:
        a, b = value
        if not (_is_real(a) and _is_real(b)) or not np.isfinite([a, b]).all():
            raise ValueError(f"{name} must hold two finite numbers, got {value!r}.")
        a, b = float(a), float(b)
    else:
        a = _positive(value[0], f"{name}[0]", allow_zero=True)
        b = _positive(value[1], f"{name}[1]", allow_zero=True)
        if a == 0 and b == 0:
            raise ValueError(f"{name} must not be (0, 0).")
    if ordered and b < a:
        raise ValueError(f"{name} must have low <= high, got {value!r}.")
    return (a, b)


def _check_shape(shape):
    try:
        h, w = shape
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"frame_shape must be a pair (height, width), got {shape!r}."
        ) from None
    try:
        return check_int(h, "frame_shape", low=1), check_int(w, "frame_shape", low=1)
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"frame_shape must be two integers >= 1 (height, width), got {shape!r}."
        ) from None


def _check_map(value, shape, name):
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}.")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} must hold finite non-negative values.")
    return arr


def _entropy(random_state):
    """Return the integer seed of the random streams of one call."""
    if random_state is None:
        return np.random.SeedSequence().entropy
    if isinstance(random_state, np.random.SeedSequence):
        return random_state.entropy
    if isinstance(random_state, numbers.Integral) and not isinstance(
        random_state, bool
    ):
        if random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state!r}.")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31))
    raise ValueError(
        "random_state must be None, an int, a numpy Generator, RandomState or "
        f"SeedSequence, got {random_state!r}."
    )
