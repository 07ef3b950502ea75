"""Matching of localizations to ground truth, metrics, sweeps and scorers.

The metrics follow the ThunderSTORM performance evaluator and the SMLM
challenges: predictions and ground truth are matched one-to-one per frame
within a lateral tolerance, then counted as true positives (matched),
false positives (unmatched predictions) and false negatives (unmatched truth).
"""

from ._matching import match_localizations
from ._metrics import (
    efficiency,
    f1,
    jaccard_index,
    localization_metrics,
    precision,
    recall,
    rmse,
    tolerance_sweep,
)
from ._plot import plot_tolerance_sweep
from ._scorer import (
    JaccardScorer,
    LocalizationScorer,
    RMSEScorer,
    jaccard_scorer,
    make_localization_scorer,
    rmse_scorer,
)

__all__ = [
    "match_localizations",
    "localization_metrics",
    "jaccard_index",
    "rmse",
    "recall",
    "precision",
    "f1",
    "efficiency",
    "tolerance_sweep",
    "plot_tolerance_sweep",
    "LocalizationScorer",
    "JaccardScorer",
    "RMSEScorer",
    "jaccard_scorer",
    "rmse_scorer",
    "make_localization_scorer",
]
