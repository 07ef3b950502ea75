"""Classical localization: filtering, detection and batched integrated-Gaussian fits.

:class:`GaussianFitLocalizer` is the ThunderSTORM / Picasso path on the
library's ``predict(frames) -> DataFrame`` contract; :func:`refine_localizations`
refines another detector's table (a CNN's, say) by single- and multi-emitter
fits on the raw pixels.
"""

from ._astig import (
    ASTIG_COLUMNS,
    AstigmaticFitLocalizer,
    astigmatic_model,
    elliptical_model,
    fit_elliptical,
    fit_z,
)
from ._detect import detect_candidates, filter_frames
from ._gauss import (
    crlb,
    fit_boxes,
    gaussian_model,
    mortensen_variance,
    poisson_deviance,
)
from ._localizer import FIT_COLUMNS, GaussianFitLocalizer, refine_localizations
from ._uncertainty import (
    CNN_UNCERTAINTY_CALIBRATION,
    FIT_UNCERTAINTY_CALIBRATION,
    add_localizer_uncertainty,
    estimate_uncertainty,
)

__all__ = [
    "ASTIG_COLUMNS",
    "AstigmaticFitLocalizer",
    "elliptical_model",
    "astigmatic_model",
    "fit_elliptical",
    "fit_z",
    "FIT_COLUMNS",
    "GaussianFitLocalizer",
    "refine_localizations",
    "detect_candidates",
    "filter_frames",
    "gaussian_model",
    "fit_boxes",
    "crlb",
    "mortensen_variance",
    "poisson_deviance",
    "estimate_uncertainty",
    "add_localizer_uncertainty",
    "CNN_UNCERTAINTY_CALIBRATION",
    "FIT_UNCERTAINTY_CALIBRATION",
]
