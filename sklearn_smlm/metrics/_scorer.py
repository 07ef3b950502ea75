"""Scorers for model selection: ``GridSearchCV(..., scoring=jaccard_scorer)``."""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ._matching import check_matching_params
from ._metrics import _efficiency, localization_metrics

__all__ = [
    "LocalizationScorer",
    "JaccardScorer",
    "RMSEScorer",
    "jaccard_scorer",
    "rmse_scorer",
    "make_localization_scorer",
]

# metric -> sign that makes the score "greater is better"
_SIGNS = {
    "jaccard": 1,
    "recall": 1,
    "precision": 1,
    "f1": 1,
    "efficiency": 1,
    "rmse_nm": -1,
    "rmse_x_nm": -1,
    "rmse_y_nm": -1,
}


class _BaseLocalizationScorer(BaseEstimator):
    """Shared parameters and call logic; subclasses say which metric they score."""

    def __init__(
        self,
        tolerance_nm=250.0,
        matching="hungarian",
        border_nm=None,
        field_of_view_nm=None,
        axial_tolerance_nm=None,
    ):
        self.tolerance_nm = tolerance_nm
        self.matching = matching
        self.border_nm = border_nm
        self.field_of_view_nm = field_of_view_nm
        self.axial_tolerance_nm = axial_tolerance_nm

    @property
    def _sign(self):
        return _SIGNS[self._metric_name()]

    @property
    def greater_is_better(self):
        """Whether larger values of the underlying metric are better."""
        return self._sign > 0

    def _metric_name(self):
        return self._metric

    def __call__(self, estimator, X, y):
        """Score ``estimator.predict(X)`` against the true positions ``y``.

        Parameters
        ----------
        estimator : object
            A fitted localizer whose ``predict(X)`` returns a localization
            table with frames numbered from 0 within ``X``.
        X : array-like of shape (n_frames, height, width)
            The frames.
        y : sequence of array-like or pandas.DataFrame
            True positions: one ``(k, 2)`` array per frame of ``X``, or a
            localization table with frames numbered from 0 within ``X``.

        Returns
        -------
        score : float
            The metric times ``+1`` (greater is better) or ``-1`` (errors,
            such as RMSE). Never NaN: without any matched pair an RMSE counts
            as ``tolerance_nm``, the worst value a matched pair can have.
        """
        metric = self._metric_name()
        if metric not in _SIGNS:
            raise ValueError(f"metric must be one of {sorted(_SIGNS)}, got {metric!r}.")
        check_matching_params(
            self.tolerance_nm,
            self.matching,
            None,
            self.field_of_view_nm,
            self.axial_tolerance_nm,
        )
        if y is None:
            raise ValueError(
                f"{type(self).__name__} needs the true positions y; got y=None."
            )
        n_frames = len(X)
        if not isinstance(y, pd.DataFrame) and len(y) != n_frames:
            raise ValueError(
                f"y holds positions for {len(y)} frame(s) but X has {n_frames} "
                "frame(s); give one array of positions per frame."
            )
        field_of_view_nm = self.field_of_view_nm
        if self.border_nm is not None and field_of_view_nm is None:
            field_of_view_nm = _field_of_view_from(estimator, X)
        metrics = localization_metrics(
            y,
            estimator.predict(X),
            tolerance_nm=self.tolerance_nm,
            matching=self.matching,
            border_nm=self.border_nm,
            field_of_view_nm=field_of_view_nm,
            axial_tolerance_nm=self.axial_tolerance_nm,
        )
        value = metrics[metric]
        if np.isnan(value):
            # Only RMSE-based metrics can be NaN: no pair was matched.
            if metric == "efficiency":
                value = _efficiency(metrics["jaccard"], float(self.tolerance_nm), 1.0)
            else:
                value = float(self.tolerance_nm)
        return float(self._sign * value)


def _field_of_view_from(estimator, X):
    shape = np.shape(X)
    sizes = {
        value
        for key, value in estimator.get_params(deep=True).items()
        if (key == "pixel_size_nm" or key.endswith("__pixel_size_nm"))
        and value is not None
    }
    if len(shape) < 2 or len(sizes) != 1:
        raise ValueError(
            "border_nm needs the field of view: pass field_of_view_nm=(width_nm, "
            "height_nm) to the scorer (it could not be found from the shape of X "
            "and a 'pixel_size_nm' parameter of the estimator)."
        )
    pixel_size_nm = float(sizes.pop())
    height, width = shape[-2:]
    return (width * pixel_size_nm, height * pixel_size_nm)


_PARAMS_DOC = """
    Parameters
    ----------
    tolerance_nm : float, default=250.0
        Largest lateral distance of a matched pair (inclusive), in nm.
    matching : {"hungarian", "greedy"}, default="hungarian"
        Optimal assignment, or the closest-pair-first rule of ThunderSTORM and
        the 2016 challenge.
    border_nm : float, optional
        Width of the unscored band along the edges of the field (2016: 300 nm).
    field_of_view_nm : (float, float), optional
        ``(width_nm, height_nm)``; with ``border_nm`` and no field of view, it
        is taken from the frame shape of ``X`` times the estimator's
        ``pixel_size_nm`` parameter.
    axial_tolerance_nm : float, optional
        Largest ``|dz|`` of a matched pair; lateral matching only by default.
"""


class LocalizationScorer(_BaseLocalizationScorer):
    __doc__ = (
        """Score a localizer with any metric of :func:`localization_metrics`.

    Use it as ``scoring=`` in :class:`~sklearn.model_selection.GridSearchCV`
    or :func:`~sklearn.model_selection.cross_validate`: calling
    ``scorer(estimator, X, y)`` returns a number where greater is better
    (errors are negated, as scikit-learn's ``neg_...`` scorers do).
"""
        + _PARAMS_DOC
        + """    metric : {"jaccard", "recall", "precision", "f1", "efficiency", \
"rmse_nm", "rmse_x_nm", "rmse_y_nm"}, default="jaccard"
        The metric to score.

    Attributes
    ----------
    greater_is_better : bool
        Whether the metric itself grows with quality; the returned score is
        always the metric times ``+1`` or ``-1`` so that greater is better.

    Examples
    --------
    >>> from sklearn_smlm.metrics import LocalizationScorer
    >>> LocalizationScorer(metric="recall", tolerance_nm=100)
    LocalizationScorer(metric='recall', tolerance_nm=100)
    """
    )

    def __init__(
        self,
        tolerance_nm=250.0,
        matching="hungarian",
        border_nm=None,
        field_of_view_nm=None,
        axial_tolerance_nm=None,
        metric="jaccard",
    ):
        super().__init__(
            tolerance_nm=tolerance_nm,
            matching=matching,
            border_nm=border_nm,
            field_of_view_nm=field_of_view_nm,
            axial_tolerance_nm=axial_tolerance_nm,
        )
        self.metric = metric

    def _metric_name(self):
        return self.metric


class JaccardScorer(_BaseLocalizationScorer):
    __doc__ = (
        """Score a localizer by its Jaccard index (greater is better).

    ``scorer(estimator, X, y)`` matches ``estimator.predict(X)`` to ``y``
    and returns ``TP / (TP + FP + FN)``.
"""
        + _PARAMS_DOC
        + """
    Attributes
    ----------
    greater_is_better : bool
        ``True``.

    Examples
    --------
    >>> from sklearn_smlm.metrics import JaccardScorer
    >>> JaccardScorer(tolerance_nm=100)
    JaccardScorer(tolerance_nm=100)
    """
    )

    _metric = "jaccard"


class RMSEScorer(_BaseLocalizationScorer):
    __doc__ = (
        """Score a localizer by minus its lateral RMSE in nm (greater is better).

    ``scorer(estimator, X, y)`` matches ``estimator.predict(X)`` to ``y``
    and returns ``-sqrt(mean(dx^2 + dy^2))`` over the matched pairs. When no
    pair matched, it returns ``-tolerance_nm`` (the worst RMSE a matched set
    can have), so model selection never sees NaN.
"""
        + _PARAMS_DOC
        + """
    Attributes
    ----------
    greater_is_better : bool
        ``False``: the RMSE is an error, hence the minus sign of the score.

    Examples
    --------
    >>> from sklearn_smlm.metrics import RMSEScorer
    >>> RMSEScorer().greater_is_better
    False
    """
    )

    _metric = "rmse_nm"


def make_localization_scorer(metric="jaccard", **kwargs):
    """Make a scorer for one localization metric.

    Parameters
    ----------
    metric : {"jaccard", "recall", "precision", "f1", "efficiency", \
"rmse_nm", "rmse_x_nm", "rmse_y_nm"}, default="jaccard"
        The metric; errors (RMSE) are negated so that greater is better.
    **kwargs
        ``tolerance_nm``, ``matching``, ``border_nm``, ``field_of_view_nm``,
        ``axial_tolerance_nm`` (see :class:`LocalizationScorer`).

    Returns
    -------
    scorer : JaccardScorer, RMSEScorer or LocalizationScorer

    Examples
    --------
    >>> from sklearn_smlm.metrics import make_localization_scorer
    >>> make_localization_scorer("rmse_nm", tolerance_nm=100)
    RMSEScorer(tolerance_nm=100)
    """
    if metric not in _SIGNS:
        raise ValueError(f"metric must be one of {sorted(_SIGNS)}, got {metric!r}.")
    if metric == "jaccard":
        return JaccardScorer(**kwargs)
    if metric == "rmse_nm":
        return RMSEScorer(**kwargs)
    return LocalizationScorer(metric=metric, **kwargs)


#: Jaccard index at 250 nm with optimal matching.
jaccard_scorer = JaccardScorer()
#: Minus the lateral RMSE at 250 nm with optimal matching.
rmse_scorer = RMSEScorer()
