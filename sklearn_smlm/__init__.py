"""Single-molecule localization microscopy with super-resolution neural networks.

The public names are loaded lazily, so that ``import sklearn_smlm`` is fast and
does not import torch until a neural-network estimator is used.
"""

import importlib

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("sklearn-smlm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

# public name -> submodule that defines it
_LAZY = {
    # localization table
    "LOCALIZATION_COLUMNS": "_localizations",
    "empty_localizations": "_localizations",
    "validate_localizations": "_localizations",
    "localizations_from_list": "_localizations",
    "localizations_to_list": "_localizations",
    # files
    "TiffStack": "io",
    "read_stack": "io",
    "write_stack": "io",
    "read_localizations": "io",
    "write_localizations": "io",
    "SMLMFileError": "io",
    # camera
    "Camera": "camera",
    # simulation
    "PAFPSimulator": "simulation",
    # neural localizer and its steps
    "FrameNormalizer": "preprocessing",
    "DistanceTransform": "encoding",
    "PeakExtractor": "peaks",
    "DistanceTransformLocalizer": "localizer",
    "DistanceTransformRegressor": "localizer",
    "load_model": "localizer",
    "ModelFileError": "localizer",
    "ConditionsWarning": "_conditions",
    "choose_pretrained": "_conditions",
    "estimate_conditions": "_conditions",
    # classical localizer
    "GaussianFitLocalizer": "fitting",
    # 3D: astigmatic calibration and fits
    "AstigmaticCalibration": "calibration",
    "AstigmaticFitLocalizer": "fitting",
    # scorers
    "JaccardScorer": "metrics",
    "RMSEScorer": "metrics",
    "jaccard_scorer": "metrics",
    "rmse_scorer": "metrics",
    "localization_metrics": "metrics",
    "match_localizations": "metrics",
    # rendering
    "render": "rendering",
    # post-processing
    "DriftCorrector": "postprocessing",
    "merge_localizations": "postprocessing",
    "frc_curve": "postprocessing",
    "frc_resolution": "postprocessing",
    # scale
    "predict_dask": "parallel",
    "predict_joblib": "parallel",
    "predict_tiled": "tiling",
}

_SUBMODULES = [
    "camera",
    "io",
    "metrics",
    "simulation",
    "encoding",
    "peaks",
    "preprocessing",
    "localizer",
    "fitting",
    "calibration",
    "rendering",
    "nn",
    "parallel",
    "tiling",
    "postprocessing",
    "cli",
]

__all__ = sorted(_LAZY) + _SUBMODULES + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
