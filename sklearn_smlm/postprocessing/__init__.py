"""After localization: drift correction, merging of blinks and FRC resolution."""

from ._drift import DriftCorrector, fiducial_drift, rcc_drift
from ._frc import (
    FRC_THRESHOLD,
    frc_curve,
    frc_resolution,
    plot_frc,
    split_localizations,
)
from ._merge import link_localizations, merge_localizations
from ._simulate import simulate_drift, simulate_localizations

__all__ = [
    "FRC_THRESHOLD",
    "DriftCorrector",
    "fiducial_drift",
    "frc_curve",
    "frc_resolution",
    "link_localizations",
    "merge_localizations",
    "plot_frc",
    "rcc_drift",
    "simulate_drift",
    "simulate_localizations",
    "split_localizations",
]
