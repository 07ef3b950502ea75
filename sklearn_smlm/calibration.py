"""Astigmatic z calibration: PSF widths against depth, from beads, files or numbers.

A cylindrical lens makes the PSF elliptical: it is narrowest along x at one
depth and along y at another, so the pair of widths ``(sigma_x, sigma_y)``
tells the depth of an emitter (Huang, Wang, Bates, Zhuang, Science 319:810,
2008). :class:`AstigmaticCalibration` holds the two curves
``sigma_x(z)``, ``sigma_y(z)``:

- measured from a z-stack of beads (:meth:`AstigmaticCalibration.fit`):
  every bead is fitted with an elliptical Gaussian in every slice, then each
  axis gets the defocus model of Huang et al. 2008,
  ``sigma0 * sqrt(1 + t^2 + A t^3 + B t^4)`` with ``t = (z - c) / d``
  (:func:`~sklearn_smlm.simulation.defocus_width`), by robust least squares;
- given as numbers (:meth:`AstigmaticCalibration.from_parameters`), for labs
  that have them from another tool;
- read from a Picasso 3D calibration (:meth:`AstigmaticCalibration.from_picasso`):
  a 6th-order polynomial per axis, kept as such;
- saved to and loaded from a small YAML file (:meth:`AstigmaticCalibration.save`,
  :meth:`AstigmaticCalibration.load`).

Widths are in nanometres in the sample plane, depths in nanometres of the
sample (the axial positions written to ``z_nm``).
"""

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._files import atomic_path
from ._validation import check_frames, check_positive, check_real
from .fitting._astig import cut_boxes, fit_elliptical
from .fitting._detect import detect_candidates
from .simulation._psf import defocus_width

__all__ = ["AstigmaticCalibration", "CALIBRATION_FORMAT"]

#: Value of the ``format`` key of a calibration file.
CALIBRATION_FORMAT = "sklearn-smlm astigmatic calibration"
_VERSION = 1
_HUANG_KEYS = ("sigma0_nm", "focus_nm", "depth_nm", "a", "b")
_MODELS = ("huang2008", "polynomial")


def _check_curve(curve, axis, model):
    if not isinstance(curve, dict):
        raise TypeError(f"the {axis} curve must be a dict, got {curve!r}.")
    if model == "polynomial":
        coef = np.asarray(curve.get("coefficients", ()), dtype=np.float64)
        if coef.ndim != 1 or len(coef) < 2 or not np.isfinite(coef).all():
            raise ValueError(
                f"the {axis} curve needs 'coefficients': at least 2 finite numbers, "
                "highest power first."
            )
        return {"coefficients": [float(v) for v in coef]}
    unknown = set(curve) - set(_HUANG_KEYS)
    if unknown:
        raise ValueError(
            f"unknown key(s) {sorted(unknown)} in the {axis} curve; expected "
            f"{list(_HUANG_KEYS)}."
        )
    missing = {"sigma0_nm", "focus_nm", "depth_nm"} - set(curve)
    if missing:
        raise ValueError(f"the {axis} curve lacks {sorted(missing)}.")
    out = {}
    for key in _HUANG_KEYS:
        value = curve.get(key, 0.0)
        out[key] = check_real(value, f"{axis}.{key}")
    for key in ("sigma0_nm", "depth_nm"):
        if out[key] <= 0:
            raise ValueError(f"{axis}.{key} must be > 0, got {out[key]!r}.")
    return out


def _check_range(z_range_nm):
    try:
        low, high = (float(v) for v in z_range_nm)
    except (TypeError, ValueError):
        raise ValueError(
            f"z_range_nm must be a pair (low, high) in nm, got {z_range_nm!r}."
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(
            f"z_range_nm must hold two finite numbers with low < high, got "
            f"{z_range_nm!r}."
        )
    return (low, high)


def _curve_widths(curve, model, z, derivative):
    if model == "polynomial":
        coef = np.asarray(curve["coefficients"])
        s = np.polyval(coef, z)
        return (s, np.polyval(np.polyder(coef), z)) if derivative else s
    return defocus_width(
        z,
        curve["sigma0_nm"],
        curve["focus_nm"],
        curve["depth_nm"],
        curve["a"],
        curve["b"],
        derivative=derivative,
    )


class AstigmaticCalibration(BaseEstimator):
    """Widths of an astigmatic PSF against depth, measured on a bead z-stack.

    :meth:`fit` takes a z-stack of sparse fluorescent beads (slice ``i`` at
    depth ``z_start_nm + i * z_step_nm``), finds the beads on the stack's
    maximum projection, fits every bead in every slice with an elliptical
    integrated Gaussian (both widths free, Poisson maximum likelihood) and
    fits each axis's widths with the defocus model of Huang et al. 2008
    (:func:`~sklearn_smlm.simulation.defocus_width`) by robust least squares
    (:func:`scipy.optimize.least_squares`, soft-L1 loss).

    A calibration from numbers, a file or Picasso needs no :meth:`fit`: see
    :meth:`from_parameters`, :meth:`load` and :meth:`from_picasso`.

    Parameters
    ----------
    z_step_nm : float, default=10.0
        Depth step between slices (negative when the stack was recorded
        from the top down).
    z_start_nm : float, optional
        Depth of the first slice; default: the stack is centred on 0.
    pixel_size_nm : float, default=100.0
        Camera pixel size in the sample plane.
    baseline_adu, e_per_adu, em_gain : float, default=100.0, 1.0, 1.0
        Camera: counts in photoelectrons are ``(ADU - baseline) * e_per_adu /
        em_gain``. Only the relative weights of the fit depend on them.
    box_size : int, default=15
        Side of the box fitted around each bead (defocused beads are wide).
    threshold : float, default=8.0
        Bead detection threshold on the maximum projection, in units of its
        noise std (beads are bright).
    min_slices : int, default=5
        Beads fitted well in fewer slices are dropped.

    Attributes
    ----------
    model_ : {"huang2008", "polynomial"}
        Form of the curves.
    curve_x_, curve_y_ : dict
        ``{"sigma0_nm", "focus_nm", "depth_nm", "a", "b"}`` for
        ``"huang2008"``; ``{"coefficients"}`` (width in nm as a polynomial in
        ``z`` in nm, highest power first) for ``"polynomial"``.
    z_range_nm_ : (float, float)
        Depths over which the curves hold (the slices with bead fits).
    beads_ : pandas.DataFrame
        The bead fits used: ``bead``, ``slice``, ``z_nm``, ``x_nm``, ``y_nm``,
        ``sigma_x_nm``, ``sigma_y_nm``, ``photons``, ``inlier``. Empty for a
        calibration that was not measured here.
    rms_residual_nm_ : (float, float)
        Root-mean-square width residual of the inliers, per axis (NaN when
        not measured here).

    Examples
    --------
    >>> from sklearn_smlm.calibration import AstigmaticCalibration
    >>> from sklearn_smlm.simulation import simulate_bead_stack
    >>> true = AstigmaticCalibration.from_parameters(
    ...     x=dict(sigma0_nm=110.0, focus_nm=-200.0, depth_nm=400.0),
    ...     y=dict(sigma0_nm=120.0, focus_nm=250.0, depth_nm=450.0),
    ...     z_range_nm=(-600.0, 600.0))
    >>> stack, beads = simulate_bead_stack(true, n_beads=4, z_step_nm=20.0,
    ...                                    random_state=0)
    >>> cal = AstigmaticCalibration(z_step_nm=20.0).fit(stack)
    >>> round(cal.curve_x_["focus_nm"], -1), round(cal.curve_y_["focus_nm"], -1)
    (-200.0, 250.0)
    """

    def __init__(
        self,
        *,
        z_step_nm=10.0,
        z_start_nm=None,
        pixel_size_nm=100.0,
        baseline_adu=100.0,
        e_per_adu=1.0,
        em_gain=1.0,
        box_size=15,
        threshold=8.0,
        min_slices=5,
    ):
        self.z_step_nm = z_step_nm
        self.z_start_nm = z_start_nm
        self.pixel_size_nm = pixel_size_nm
        self.baseline_adu = baseline_adu
        self.e_per_adu = e_per_adu
        self.em_gain = em_gain
        self.box_size = box_size
        self.threshold = threshold
        self.min_slices = min_slices

    # ------------------------------------------------------------ building
    @classmethod
    def from_parameters(cls, x, y, *, z_range_nm, model="huang2008"):
        """Return a calibration from known curve parameters.

        Parameters
        ----------
        x, y : dict
            For ``model="huang2008"``: ``sigma0_nm``, ``focus_nm`` (the depth
            ``c`` where the axis is in focus) and ``depth_nm`` (``d``), and
            optionally ``a`` and ``b`` (third- and fourth-order terms, default
            0). For ``model="polynomial"``: ``coefficients``, the width in nm
            as a polynomial in ``z`` in nm, highest power first.
        z_range_nm : (float, float)
            Depths over which the curves hold; localizers drop fits outside.
        model : {"huang2008", "polynomial"}, default="huang2008"

        Returns
        -------
        calibration : AstigmaticCalibration
            Ready to use (no :meth:`fit` needed).

        Examples
        --------
        >>> cal = AstigmaticCalibration.from_parameters(
        ...     x=dict(sigma0_nm=100.0, focus_nm=-200.0, depth_nm=400.0),
        ...     y=dict(sigma0_nm=100.0, focus_nm=200.0, depth_nm=400.0),
        ...     z_range_nm=(-500.0, 500.0))
        >>> [w.round(1).tolist() for w in cal.widths([-200.0, 0.0])]
        [[100.0, 111.8], [141.4, 111.8]]
        """
        if model not in _MODELS:
            raise ValueError(f"model must be one of {_MODELS}, got {model!r}.")
        cal = cls()
        cal.model_ = model
        cal.curve_x_ = _check_curve(x, "x", model)
        cal.curve_y_ = _check_curve(y, "y", model)
        cal.z_range_nm_ = _check_range(z_range_nm)
        cal.beads_ = _empty_beads()
        cal.rms_residual_nm_ = (np.nan, np.nan)
        cal._check_widths_positive()
        return cal

    @classmethod
    def from_picasso(
        cls, path, *, pixel_size_nm, magnification_factor=None, point_sampled=True
    ):
        """Read a Picasso 3D calibration file (YAML from Picasso's calibrate_z).

        Picasso stores, per axis, the 7 coefficients of a 6th-order polynomial
        (highest power first) giving the spot width in camera pixels against
        the stage depth in nm (``X Coefficients``, ``Y Coefficients``), with
        ``Number of frames`` and ``Step size in nm`` of the bead stack and a
        ``Magnification factor`` ``m`` (refractive-index correction): the
        sample depth is ``m`` times the stage depth. The curves are kept as
        polynomials, converted to nm of width against nm of sample depth:
        ``sigma_nm(z) = pixel_size_nm * P(z / m)``.

        Parameters
        ----------
        path : str or path-like
        pixel_size_nm : float
            Camera pixel size of the calibration (Picasso does not store it).
        magnification_factor : float, optional
            Overrides the file's value (files written without it get 1).
        point_sampled : bool, default=True
            The file's widths are those of a Gaussian sampled at the pixel
            centres, as Picasso's least-squares fitter (``gausslq``, its
            default) measures them on the beads: convert them to the widths
            of the pixel-integrated Gaussian this library fits,
            ``sqrt(w^2 - pixel^2 / 12)`` (about 3 % narrower for 100 nm
            pixels and 110 nm spots), refitted as 6th-order polynomials over
            the range; the inverse of :meth:`to_picasso`'s default, so the
            two round-trip. False takes the widths as they are: a
            calibration measured with Picasso's MLE fitter (an integrated
            Gaussian) or written by another tool in these units.

        Returns
        -------
        calibration : AstigmaticCalibration
            With ``model_ = "polynomial"`` and ``z_range_nm_`` the bead
            stack's range times ``m`` (Picasso's own search range, +-1000 nm,
            when the file lacks the stack's size).
        """
        import yaml

        pixel_size_nm = float(check_positive(pixel_size_nm, "pixel_size_nm"))
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
        if not isinstance(doc, dict) or not {"X Coefficients", "Y Coefficients"} <= set(
            doc
        ):
            raise ValueError(
                f"{str(path)!r} is not a Picasso 3D calibration: it needs the keys "
                "'X Coefficients' and 'Y Coefficients'."
            )
        mag = magnification_factor
        if mag is None:
            mag = doc.get("Magnification factor", 1.0)
        mag = float(check_positive(mag, "magnification_factor"))
        curves = []
        for key in ("X Coefficients", "Y Coefficients"):
            coef = np.asarray(doc[key], dtype=np.float64)
            if coef.ndim != 1 or len(coef) < 2 or not np.isfinite(coef).all():
                raise ValueError(f"{key} of {str(path)!r} must be a list of numbers.")
            powers = np.arange(len(coef) - 1, -1, -1)
            curves.append({"coefficients": pixel_size_nm * coef / mag**powers})
        if "Number of frames" in doc and "Step size in nm" in doc:
            half = (
                0.5 * (int(doc["Number of frames"]) - 1) * float(doc["Step size in nm"])
            )
        else:
            half = 1000.0
        half = abs(half) * mag
        if point_sampled:
            z = np.linspace(-half, half, 201)
            for curve in curves:
                w2 = np.polyval(curve["coefficients"], z) ** 2 - pixel_size_nm**2 / 12
                if (w2 <= 0).any():
                    raise ValueError(
                        f"{str(path)!r}: a width is at most pixel / sqrt(12) in the "
                        "range, so it cannot be a point-sampled width; use "
                        "point_sampled=False."
                    )
                curve["coefficients"] = np.polyfit(z, np.sqrt(w2), 6)
        return cls.from_parameters(
            curves[0], curves[1], z_range_nm=(-half, half), model="polynomial"
        )

    @classmethod
    def load(cls, path):
        """Read a calibration saved by :meth:`save`.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        calibration : AstigmaticCalibration
        """
        import yaml

        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
        if not isinstance(doc, dict) or doc.get("format") != CALIBRATION_FORMAT:
            raise ValueError(
                f"{str(path)!r} is not an sklearn-smlm calibration file (its "
                f"'format' must be {CALIBRATION_FORMAT!r}); for a Picasso file use "
                "AstigmaticCalibration.from_picasso."
            )
        if doc.get("version", 0) > _VERSION:
            raise ValueError(
                f"{str(path)!r} has version {doc.get('version')}; this library "
                f"reads up to {_VERSION}. Upgrade sklearn-smlm."
            )
        cal = cls.from_parameters(
            doc["x"],
            doc["y"],
            z_range_nm=doc["z_range_nm"],
            model=doc.get("model", "huang2008"),
        )
        source = doc.get("source") or {}
        params = {k: source[k] for k in ("z_step_nm", "pixel_size_nm") if k in source}
        if params:
            cal.set_params(**params)
        if "rms_residual_nm" in source:
            cal.rms_residual_nm_ = tuple(float(v) for v in source["rms_residual_nm"])
        return cal

    def save(self, path):
        """Write the calibration as a small human-readable YAML file.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        path : pathlib.Path

        Examples
        --------
        >>> import tempfile, pathlib
        >>> cal = AstigmaticCalibration.from_parameters(
        ...     x=dict(sigma0_nm=100.0, focus_nm=-200.0, depth_nm=400.0),
        ...     y=dict(sigma0_nm=100.0, focus_nm=200.0, depth_nm=400.0),
        ...     z_range_nm=(-500.0, 500.0))
        >>> path = cal.save(pathlib.Path(tempfile.mkdtemp()) / "calib.yaml")
        >>> AstigmaticCalibration.load(path).curve_y_["focus_nm"]
        200.0
        """
        import yaml

        check_is_fitted(self)
        doc = {
            "format": CALIBRATION_FORMAT,
            "version": _VERSION,
            "model": self.model_,
            "z_range_nm": [float(v) for v in self.z_range_nm_],
            "x": _plain(self.curve_x_),
            "y": _plain(self.curve_y_),
        }
        if len(self.beads_):
            doc["source"] = {
                "kind": "beads",
                "z_step_nm": float(self.z_step_nm),
                "pixel_size_nm": float(self.pixel_size_nm),
                "n_beads": int(self.beads_["bead"].nunique()),
                "n_points": int(self.beads_["inlier"].sum()),
                "rms_residual_nm": [float(v) for v in self.rms_residual_nm_],
            }
        text = (
            "# Astigmatic PSF widths against depth; sigma(z) = sigma0_nm * sqrt(1 + "
            "t^2 + a t^3 + b t^4),\n# t = (z - focus_nm) / depth_nm (Huang et al. "
            "2008), or a polynomial in z (nm).\n"
        ) + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)
        path = Path(path)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
        return path

    def to_picasso(self, path, *, pixel_size_nm, point_sampled=True, z_step_nm=10.0):
        """Write the curves as a Picasso 3D calibration YAML (for ``zfit``).

        Picasso (``picasso.zfit``) takes, per axis, a 6th-order polynomial of
        the spot width in camera pixels against depth in nm. The polynomials
        are least-squares fits of :meth:`widths` on a grid of ``z_step_nm``
        over the calibrated range; ``Number of frames`` and ``Step size in
        nm`` describe that grid, ``Magnification factor`` is 1 (the depths
        are already the sample's). Picasso takes the range as symmetric
        around 0: :meth:`from_picasso` reads back ``-h .. h``, ``h`` the
        half span.

        Parameters
        ----------
        path : str or path-like
        pixel_size_nm : float
            Camera pixel size of the data Picasso will fit.
        point_sampled : bool, default=True
            Write the widths Picasso's Gaussian fitters measure: they sample
            the Gaussian at the pixel centres instead of integrating it over
            the pixel, so a spot of width ``sigma`` fits as about
            ``sqrt(sigma^2 + pixel^2 / 12)`` (what a bead calibration made
            in Picasso records). False writes :meth:`widths` themselves.
        z_step_nm : float, default=10.0
            Spacing of the depths the polynomials are fitted on.

        Returns
        -------
        path : pathlib.Path

        Examples
        --------
        >>> import tempfile, pathlib
        >>> cal = AstigmaticCalibration.from_parameters(
        ...     x=dict(sigma0_nm=100.0, focus_nm=-200.0, depth_nm=400.0),
        ...     y=dict(sigma0_nm=100.0, focus_nm=200.0, depth_nm=400.0),
        ...     z_range_nm=(-500.0, 500.0))
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "picasso_3d.yaml"
        >>> back = AstigmaticCalibration.from_picasso(
        ...     cal.to_picasso(path, pixel_size_nm=100.0), pixel_size_nm=100.0)
        >>> [w.round(0).tolist() for w in back.widths([-200.0, 0.0])]
        [[100.0, 112.0], [141.0, 112.0]]
        """
        import yaml

        check_is_fitted(self)
        px = float(check_positive(pixel_size_nm, "pixel_size_nm"))
        step = float(check_positive(z_step_nm, "z_step_nm"))
        lo, hi = self.z_range_nm_
        half = 0.5 * (hi - lo)
        n = int(np.ceil(2.0 * half / step)) + 1
        z = np.linspace(lo, hi, max(n, 7))
        doc = {}
        keys = ("X Coefficients", "Y Coefficients")
        for key, s in zip(keys, self.widths(z), strict=True):
            s = s / px
            if point_sampled:
                s = np.sqrt(s * s + 1.0 / 12.0)
            # Picasso evaluates the polynomial at z in nm (magnification 1)
            coef = np.polyfit(z, s, 6)
            doc[key] = [float(c) for c in coef]
        doc.update(
            {
                "Number of frames": len(z),
                "Step size in nm": float(2.0 * half / (len(z) - 1)),
                "Magnification factor": 1.0,
            }
        )
        path = Path(path)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(
                yaml.safe_dump(doc, sort_keys=False, default_flow_style=None),
                encoding="utf-8",
            )
        return path

    # ------------------------------------------------------------- fitting
    def fit(self, X, y=None):
        """Measure the curves on a bead z-stack.

        Parameters
        ----------
        X : array-like of shape (n_slices, height, width)
            The z-stack in ADU, slice ``i`` at ``z_start_nm + i * z_step_nm``.
        y : ignored

        Returns
        -------
        self : AstigmaticCalibration
        """
        frames = check_frames(X, dtype=np.float32, allow_single=False)
        step = self.z_step_nm
        if check_real(step, "z_step_nm") == 0:
            raise ValueError(f"z_step_nm must be a non-zero number, got {step!r}.")
        for name in ("pixel_size_nm", "e_per_adu", "em_gain"):
            check_positive(getattr(self, name), name)
        check_positive(self.box_size, "box_size", integer=True)
        check_positive(self.threshold, "threshold")
        check_positive(self.min_slices, "min_slices", integer=True)
        n_slices, h, w = frames.shape
        size = int(self.box_size)
        if n_slices < 7:
            raise ValueError(
                f"a bead z-stack needs at least 7 slices to fit the curves, got "
                f"{n_slices}."
            )
        if min(h, w) < size:
            raise ValueError(
                f"slices of {h}x{w} pixels are smaller than box_size={size}."
            )
        start = self.z_start_nm
        if start is None:
            start = -0.5 * (n_slices - 1) * float(step)
        z_slices = float(start) + np.arange(n_slices) * float(step)
        px = float(self.pixel_size_nm)

        beads = self._find_beads(frames, size)
        if not len(beads):
            raise ValueError(
                "no bead found on the stack's maximum projection; lower threshold "
                f"(now {self.threshold}) or check baseline_adu."
            )
        table = self._fit_beads(frames, beads, z_slices, size, px)
        counts = table.groupby("bead")["slice"].transform("size")
        table = table[counts >= self.min_slices].reset_index(drop=True)
        if len(table) < 10:
            raise ValueError(
                f"only {len(table)} good bead fits in the stack; a calibration needs "
                "beads visible in many slices (check z_step_nm, box_size and the "
                "camera parameters)."
            )
        self.curve_x_, in_x, rms_x = _fit_curve(
            table["z_nm"].to_numpy(), table["sigma_x_nm"].to_numpy()
        )
        self.curve_y_, in_y, rms_y = _fit_curve(
            table["z_nm"].to_numpy(), table["sigma_y_nm"].to_numpy()
        )
        table["inlier"] = in_x & in_y
        self.model_ = "huang2008"
        self.beads_ = table
        self.rms_residual_nm_ = (rms_x, rms_y)
        used = table.loc[table["inlier"], "z_nm"]
        self.z_range_nm_ = (float(used.min()), float(used.max()))
        self._check_widths_positive()
        return self

    def _find_beads(self, frames, size):
        projection = frames.max(axis=0)[None]
        _, row, col, _ = detect_candidates(
            projection, method="wavelet", threshold=float(self.threshold)
        )
        if len(row) > 1:
            # beads whose boxes overlap would pull each other's fits
            d = np.hypot(row[:, None] - row[None], col[:, None] - col[None])
            np.fill_diagonal(d, np.inf)
            keep = d.min(axis=1) >= size
            row, col = row[keep], col[keep]
        return np.column_stack([row, col])

    def _fit_beads(self, frames, beads, z_slices, size, px):
        n_slices = len(frames)
        n_beads = len(beads)
        f = np.repeat(np.arange(n_slices), n_beads)
        row = np.tile(beads[:, 0], n_slices)
        col = np.tile(beads[:, 1], n_slices)
        boxes, r0, c0 = cut_boxes(frames, f, row, col, size)
        data = (boxes - float(self.baseline_adu)) * (
            float(self.e_per_adu) / float(self.em_gain)
        )
        ring = np.concatenate(
            [data[:, 0, :], data[:, -1, :], data[:, 1:-1, 0], data[:, 1:-1, -1]],
            axis=1,
        )
        bg = np.maximum(np.median(ring, axis=1), 1e-3)
        signal = np.maximum(data - bg[:, None, None], 0.0)
        photons = np.maximum(signal.sum(axis=(1, 2)), 1.0)
        ar = np.arange(size, dtype=np.float64)
        # centroid start: robust for the wide spots far from focus
        x0 = (signal.sum(axis=1) * ar).sum(axis=1) / photons
        y0 = (signal.sum(axis=2) * ar).sum(axis=1) / photons
        init = np.column_stack(
            [x0, y0, photons, bg, np.full(len(f), 1.5), np.full(len(f), 1.5)]
        )
        p, ok, _ = fit_elliptical(data, init, max_iter=100)
        good = (
            ok
            & (p[:, 0] >= 0)
            & (p[:, 0] <= size - 1)
            & (p[:, 1] >= 0)
            & (p[:, 1] <= size - 1)
            & (p[:, 4] > 0.31)
            & (p[:, 5] > 0.31)
            & (p[:, 4] < 0.4 * size)
            & (p[:, 5] < 0.4 * size)
            & (p[:, 2] > 10.0)
        )
        table = pd.DataFrame(
            {
                "bead": np.tile(np.arange(n_beads), n_slices),
                "slice": f,
                "z_nm": z_slices[f],
                "x_nm": (c0 + p[:, 0] + 0.5) * px,
                "y_nm": (r0 + p[:, 1] + 0.5) * px,
                "sigma_x_nm": p[:, 4] * px,
                "sigma_y_nm": p[:, 5] * px,
                "photons": p[:, 2],
            }
        )
        return table[good].reset_index(drop=True)

    def _check_widths_positive(self):
        z = np.linspace(*self.z_range_nm_, 201)
        sx, sy = self.widths(z)
        if not (np.all(sx > 0) and np.all(sy > 0)):
            raise ValueError(
                "the calibration curves give a width <= 0 inside z_range_nm "
                f"{self.z_range_nm_}; narrow the range or check the coefficients."
            )

    # ---------------------------------------------------------------- using
    def widths(self, z_nm, *, derivative=False):
        """PSF widths along x and y at the given depths.

        Parameters
        ----------
        z_nm : array-like
            Depths in nm.
        derivative : bool, default=False
            Also return the derivatives of both widths by ``z``.

        Returns
        -------
        sigma_x_nm, sigma_y_nm : ndarray
        dsigma_x_dz, dsigma_y_dz : ndarray
            Only with ``derivative``.
        """
        check_is_fitted(self)
        z = np.asarray(z_nm, dtype=np.float64)
        if derivative:
            sx, dsx = _curve_widths(self.curve_x_, self.model_, z, True)
            sy, dsy = _curve_widths(self.curve_y_, self.model_, z, True)
            return sx, sy, dsx, dsy
        return (
            _curve_widths(self.curve_x_, self.model_, z, False),
            _curve_widths(self.curve_y_, self.model_, z, False),
        )

    def z_from_widths(self, sigma_x_nm, sigma_y_nm, *, step_nm=1.0):
        """Depth whose calibrated widths are closest to measured ones.

        The distance is Huang et al.'s ``(sqrt(sx) - sqrt(wx(z)))^2 +
        (sqrt(sy) - sqrt(wy(z)))^2``, minimized over the calibrated range on a
        grid of ``step_nm`` (the method of ThunderSTORM and Picasso for
        elliptical fits).

        Parameters
        ----------
        sigma_x_nm, sigma_y_nm : array-like
            Measured widths in nm.
        step_nm : float, default=1.0

        Returns
        -------
        z_nm : ndarray
        distance : ndarray
            The square root of the minimized distance (sqrt(nm)); large values
            mean widths that no depth explains.

        Examples
        --------
        >>> cal = AstigmaticCalibration.from_parameters(
        ...     x=dict(sigma0_nm=100.0, focus_nm=-200.0, depth_nm=400.0),
        ...     y=dict(sigma0_nm=100.0, focus_nm=200.0, depth_nm=400.0),
        ...     z_range_nm=(-500.0, 500.0))
        >>> z, _ = cal.z_from_widths(*cal.widths([-321.0, 123.0]))
        >>> z.tolist()
        [-321.0, 123.0]
        """
        check_is_fitted(self)
        check_positive(step_nm, "step_nm")
        sx = np.sqrt(np.maximum(np.asarray(sigma_x_nm, dtype=np.float64), 0.0))
        sy = np.sqrt(np.maximum(np.asarray(sigma_y_nm, dtype=np.float64), 0.0))
        lo, hi = self.z_range_nm_
        grid = np.arange(lo, hi + 0.5 * step_nm, step_nm)
        wx, wy = (np.sqrt(v) for v in self.widths(grid))
        flat_x, flat_y = sx.ravel(), sy.ravel()
        z = np.empty(flat_x.shape)
        dist = np.empty(flat_x.shape)
        chunk = max(1, 2_000_000 // len(grid))
        for s in range(0, len(flat_x), chunk):
            d = (flat_x[s : s + chunk, None] - wx) ** 2 + (
                flat_y[s : s + chunk, None] - wy
            ) ** 2
            best = d.argmin(axis=1)
            z[s : s + chunk] = grid[best]
            dist[s : s + chunk] = np.sqrt(d[np.arange(len(best)), best])
        return z.reshape(sx.shape), dist.reshape(sx.shape)

    def plot(self, path=None, *, ax=None):
        """Draw both curves with the bead widths they were fitted to.

        Parameters
        ----------
        path : str or path-like, optional
            Save the figure there (PNG or any format matplotlib writes).
        ax : matplotlib Axes, optional
            Where to draw; default a new figure.

        Returns
        -------
        ax : matplotlib Axes
        """
        import matplotlib.pyplot as plt

        check_is_fitted(self)
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        lo, hi = self.z_range_nm_
        z = np.linspace(lo, hi, 300)
        sx, sy = self.widths(z)
        beads = self.beads_
        if len(beads):
            good = beads["inlier"].to_numpy()
            for col, colour, label in (
                ("sigma_x_nm", "tab:blue", "x"),
                ("sigma_y_nm", "tab:orange", "y"),
            ):
                ax.plot(
                    beads.loc[good, "z_nm"],
                    beads.loc[good, col],
                    ".",
                    color=colour,
                    alpha=0.4,
                    markersize=4,
                    label=f"beads, {label}",
                )
                ax.plot(
                    beads.loc[~good, "z_nm"],
                    beads.loc[~good, col],
                    "x",
                    color=colour,
                    alpha=0.4,
                    markersize=4,
                )
        ax.plot(z, sx, color="tab:blue", lw=2, label="sigma_x(z)")
        ax.plot(z, sy, color="tab:orange", lw=2, label="sigma_y(z)")
        ax.set_xlabel("z (nm)")
        ax.set_ylabel("PSF width sigma (nm)")
        title = f"astigmatic calibration ({self.model_})"
        if np.isfinite(self.rms_residual_nm_).all():
            title += (
                f", rms residual x {self.rms_residual_nm_[0]:.1f} nm, "
                f"y {self.rms_residual_nm_[1]:.1f} nm"
            )
        ax.set_title(title, fontsize="small")
        ax.legend(fontsize="small")
        if path is not None:
            ax.figure.savefig(path, dpi=120, bbox_inches="tight")
        return ax

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.non_deterministic = False
        return tags


def _plain(curve):
    return {
        k: ([float(x) for x in v] if isinstance(v, (list, np.ndarray)) else float(v))
        for k, v in curve.items()
    }


def _empty_beads():
    return pd.DataFrame(
        {
            "bead": np.empty(0, np.int64),
            "slice": np.empty(0, np.int64),
            **{
                c: np.empty(0)
                for c in ("z_nm", "x_nm", "y_nm", "sigma_x_nm", "sigma_y_nm", "photons")
            },
            "inlier": np.empty(0, bool),
        }
    )


def _huang_residual(theta, z, s):
    return defocus_width(z, *theta) - s


def _fit_curve(z, s):
    """Robust fit of the Huang model to widths ``s`` at depths ``z``.

    Returns the curve dict, the inlier mask and the inlier RMS residual (nm).
    """
    order = np.argsort(z)
    z_sorted, s_sorted = z[order], s[order]
    # start: the narrowest depth (median width per slice) and its width
    levels = np.unique(z_sorted)
    med = np.array([np.median(s_sorted[z_sorted == v]) for v in levels])
    i = int(np.argmin(med))
    sigma0, c0 = float(med[i]), float(levels[i])
    span = float(levels[-1] - levels[0])
    lower = [1e-3, levels[0] - span, 1.0, -np.inf, -np.inf]
    upper = [np.inf, levels[-1] + span, 10.0 * span, np.inf, np.inf]
    inlier = np.ones(len(z), dtype=bool)
    theta = None
    for _ in range(2):
        best = None
        starts = (
            [[sigma0, c0, d, 0.0, 0.0] for d in (0.15 * span, 0.3 * span, 0.6 * span)]
            if theta is None
            else [theta]
        )
        for start in starts:
            fit = least_squares(
                _huang_residual,
                np.clip(start, np.array(lower) + 1e-9, np.array(upper) - 1e-9),
                bounds=(lower, upper),
                loss="soft_l1",
                f_scale=0.05 * sigma0,
                args=(z[inlier], s[inlier]),
            )
            if best is None or fit.cost < best.cost:
                best = fit
        theta = best.x
        resid = _huang_residual(theta, z, s)
        mad = 1.4826 * np.median(np.abs(resid[inlier] - np.median(resid[inlier])))
        inlier = np.abs(resid) <= max(5.0 * mad, 1e-9)
    rms = float(np.sqrt(np.mean(resid[inlier] ** 2)))
    curve = dict(zip(_HUANG_KEYS, (float(v) for v in theta), strict=True))
    return curve, inlier, rms
