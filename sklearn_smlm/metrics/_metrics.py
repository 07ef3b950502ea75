"""Detection and accuracy metrics of localization microscopy.

Every metric matches predicted to true localizations one-to-one within a
lateral tolerance (see :func:`~sklearn_smlm.metrics.match_localizations`) and
counts TP (matched pairs), FP (unmatched predictions) and FN (unmatched true
localizations). Then

- Jaccard index ``JI = TP / (TP + FP + FN)``,
- recall ``TP / (TP + FN)``, precision ``TP / (TP + FP)``,
- F1 ``2 TP / (2 TP + FP + FN)`` (the harmonic mean of both),
- lateral RMSE ``sqrt(mean(dx^2 + dy^2))`` over matched pairs, in nm, and per
  axis ``rmse_x_nm``, ``rmse_y_nm`` (and ``rmse_z_nm`` for 3D data),
- the 2016 SMLM challenge efficiency
  ``E = 100 - sqrt((100 - 100 JI)^2 + alpha^2 RMSE^2)`` with
  ``alpha = 1 / nm`` laterally and ``0.5 / nm`` axially.

Empty cases: a ratio whose denominator is zero is 1.0 when both inputs are
empty (nothing to find and nothing wrongly found) and 0.0 otherwise (so no
predictions at all give precision 0, and predictions without any truth give
recall 0). RMSE and efficiency are NaN when no pair was matched.
"""

import numpy as np
import pandas as pd

from ._matching import (
    candidate_pairs,
    check_matching_params,
    match,
    match_prepared,
    prepare,
)

__all__ = [
    "localization_metrics",
    "jaccard_index",
    "rmse",
    "recall",
    "precision",
    "f1",
    "efficiency",
    "tolerance_sweep",
]

METRIC_NAMES = (
    "tp",
    "fp",
    "fn",
    "jaccard",
    "recall",
    "precision",
    "f1",
    "rmse_nm",
    "rmse_x_nm",
    "rmse_y_nm",
    "rmse_z_nm",
    "efficiency",
    "efficiency_axial",
    "tolerance_nm",
    "matching",
)

#: Weights of the RMSE in the 2016 challenge efficiency, per nm.
LATERAL_ALPHA = 1.0
AXIAL_ALPHA = 0.5


def _ratio(numerator, denominator, all_empty):
    if denominator == 0:
        return 1.0 if all_empty else 0.0
    return numerator / denominator


def _efficiency(jaccard, rmse_nm, alpha):
    return 100.0 - np.sqrt((100.0 - 100.0 * jaccard) ** 2 + alpha**2 * rmse_nm**2)


def _root_mean_square(values):
    return float(np.sqrt(np.mean(values**2))) if len(values) else np.nan


def _metrics_from_matching(result, *, tolerance_nm, matching, has_z):
    tp, fp, fn = result.tp, result.fp, result.fn
    all_empty = tp + fp + fn == 0
    pairs = result.pairs
    jaccard = _ratio(tp, tp + fp + fn, all_empty)
    dx = pairs["dx_nm"].to_numpy()
    dy = pairs["dy_nm"].to_numpy()
    rmse_nm = float(np.sqrt(np.mean(dx**2 + dy**2))) if tp else np.nan
    rmse_z_nm = _root_mean_square(pairs["dz_nm"].to_numpy()) if has_z else np.nan
    return {
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "jaccard": float(jaccard),
        "recall": float(_ratio(tp, tp + fn, all_empty)),
        "precision": float(_ratio(tp, tp + fp, all_empty)),
        "f1": float(_ratio(2 * tp, 2 * tp + fp + fn, all_empty)),
        "rmse_nm": rmse_nm,
        "rmse_x_nm": _root_mean_square(dx),
        "rmse_y_nm": _root_mean_square(dy),
        "rmse_z_nm": rmse_z_nm,
        "efficiency": float(_efficiency(jaccard, rmse_nm, LATERAL_ALPHA)),
        "efficiency_axial": float(_efficiency(jaccard, rmse_z_nm, AXIAL_ALPHA)),
        "tolerance_nm": float(tolerance_nm),
        "matching": matching,
    }


def localization_metrics(
    y_true,
    y_pred,
    *,
    tolerance_nm=250.0,
    matching="hungarian",
    border_nm=None,
    field_of_view_nm=None,
    axial_tolerance_nm=None,
    as_frame=False,
):
    """Compute every localization metric from one matching.

    Parameters
    ----------
    y_true, y_pred : pandas.DataFrame or sequence of array-like
        True and predicted localizations: a localization table or a per-frame
        list of ``(k, 2)`` / ``(k, 3)`` position arrays (see
        :func:`~sklearn_smlm.metrics.match_localizations`).
    tolerance_nm : float, default=250.0
        Largest lateral distance of a matched pair (inclusive), in nm.
    matching : {"hungarian", "greedy"}, default="hungarian"
        Optimal assignment, or the closest-pair-first rule of ThunderSTORM and
        the 2016 challenge.
    border_nm : float, optional
        Width of the unscored band along the edges of the field (2016: 300 nm).
    field_of_view_nm : (float, float), optional
        ``(width_nm, height_nm)`` of the field; needed with ``border_nm``.
    axial_tolerance_nm : float, optional
        Largest ``|dz|`` of a matched pair (2016: 500 nm); lateral matching
        only when not given.
    as_frame : bool, default=False
        Return a one-row DataFrame instead of a dict.

    Returns
    -------
    metrics : dict or pandas.DataFrame
        ``tp``, ``fp``, ``fn`` (int); ``jaccard``, ``recall``, ``precision``,
        ``f1`` (in [0, 1]); ``rmse_nm`` (lateral), ``rmse_x_nm``,
        ``rmse_y_nm``, ``rmse_z_nm`` (NaN unless both inputs have ``z_nm``);
        ``efficiency`` (2016 challenge, lateral, ``alpha = 1 / nm``) and
        ``efficiency_axial`` (``alpha = 0.5 / nm`` on ``rmse_z_nm``);
        ``tolerance_nm`` and ``matching``. The conventions for empty inputs
        are in the module docstring: both empty gives JI = recall =
        precision = F1 = 1; RMSE and efficiency are NaN without any pair.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.metrics import localization_metrics
    >>> truth = [np.array([[0.0, 0.0], [200.0, 0.0]])]
    >>> pred = [np.array([[30.0, 40.0], [900.0, 0.0]])]
    >>> m = localization_metrics(truth, pred, tolerance_nm=100)
    >>> m["tp"], m["fp"], m["fn"], round(m["jaccard"], 4), m["rmse_nm"]
    (1, 1, 1, 0.3333, 50.0)
    """
    result = match(
        y_true,
        y_pred,
        tolerance_nm=tolerance_nm,
        matching=matching,
        border_nm=border_nm,
        field_of_view_nm=field_of_view_nm,
        axial_tolerance_nm=axial_tolerance_nm,
    )
    metrics = _metrics_from_matching(
        result,
        tolerance_nm=tolerance_nm,
        matching=matching,
        has_z="dz_nm" in result.pairs,
    )
    return pd.DataFrame([metrics]) if as_frame else metrics


def jaccard_index(
    y_true,
    y_pred,
    *,
    tolerance_nm=250.0,
    matching="hungarian",
    border_nm=None,
    field_of_view_nm=None,
    axial_tolerance_nm=None,
):
    """Jaccard index TP / (TP + FP + FN) of the matched localizations.

    Parameters
    ----------
    y_true, y_pred : pandas.DataFrame or sequence of array-like
        True and predicted localizations: a localization table or a per-frame
        list of ``(k, 2)`` / ``(k, 3)`` position arrays.
    tolerance_nm : float, default=250.0
        Largest lateral distance of a matched pair (inclusive), in nm.
    matching : {"hungarian", "greedy"}, default="hungarian"
        Optimal assignment, or the closest-pair-first rule of ThunderSTORM and
        the 2016 challenge.
    border_nm, field_of_view_nm, axial_tolerance_nm : optional
        See :func:`localization_metrics`.

    Returns
    -------
    jaccard : float
        In [0, 1]; 1.0 when both inputs are empty.

    See Also
    --------
    localization_metrics : all metrics from one matching.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.metrics import jaccard_index
    >>> truth = [np.array([[0.0, 0.0], [200.0, 0.0]])]
    >>> pred = [np.array([[30.0, 40.0], [900.0, 0.0]])]
    >>> round(jaccard_index(truth, pred, tolerance_nm=100), 4)
    0.3333
    """
    return localization_metrics(
        y_true,
        y_pred,
        tolerance_nm=tolerance_nm,
        matching=matching,
        border_nm=border_nm,
        field_of_view_nm=field_of_view_nm,
        axial_tolerance_nm=axial_tolerance_nm,
    )["jaccard"]


def rmse(
    y_true,
    y_pred,
    *,
    tolerance_nm=250.0,
    matching="hungarian",
    border_nm=None,
    field_of_view_nm=None,
    axial_tolerance_nm=None,
):
    """Lateral root-mean-square error of the matched pairs, in nm.

    Parameters
    ----------
    y_true, y_pred : pandas.DataFrame or sequence of array-like
        True and predicted localizations: a localization table or a per-frame
        list of ``(k, 2)`` / ``(k, 3)`` position arrays.
    tolerance_nm : float, default=250.0
        Largest lateral distance of a matched pair (inclusive), in nm.
    matching : {"hungarian", "greedy"}, default="hungarian"
        Optimal assignment, or the closest-pair-first rule of ThunderSTORM and
        the 2016 challenge.
    border_nm, field_of_view_nm, axial_tolerance_nm : optional
        See :func:`localization_metrics`.

    Returns
    -------
    rmse_nm : float
        ``sqrt(mean(dx^2 + dy^2))`` over matched pairs; NaN when no pair
        matched.

    See Also
    --------
    localization_metrics : all metrics from one matching.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.metrics import rmse
    >>> truth = [np.array([[0.0, 0.0], [200.0, 0.0]])]
    >>> pred = [np.array([[30.0, 40.0], [900.0, 0.0]])]
    >>> round(rmse(truth, pred, tolerance_nm=100), 4)
    50.0
    """
    return localization_metrics(
        y_true,
        y_pred,
        tolerance_nm=tolerance_nm,
        matching=matching,
        border_nm=border_nm,
        field_of_view_nm=field_of_view_nm,
        axial_tolerance_nm=axial_tolerance_nm,
    )["rmse_nm"]


def recall(
    y_true,
    y_pred,
    *,
    tolerance_nm=250.0,
    matching="hungarian",
    border_nm=None,
    field_of_view_nm=None,
    axial_tolerance_nm=None,
):
    """Recall TP / (TP + FN): the fraction of true localizations found.

    Parameters
    ----------
    y_true, y_pred : pandas.DataFrame or sequence of array-like
        True and predicted localizations: a localization table or a per-frame
        list of ``(k, 2)`` / ``(k, 3)`` position arrays.
    tolerance_nm : float, default=250.0
        Largest lateral distance of a matched pair (inclusive), in nm.
    matching : {"hungarian", "greedy"}, default="hungarian"
        Optimal assignment, or the closest-pair-first rule of ThunderSTORM and
        the 2016 challenge.
    border_nm, field_of_view_nm, axial_tolerance_nm : optional
        See :func:`localization_metrics`.

    Returns
    -------
    recall : float
        In [0, 1]; 0.0 without truth (1.0 when both inputs are empty).

    See Also
    --------
    localization_metrics : all metrics from one matching.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.metrics import recall
    >>> truth = [np.array([[0.0, 0.0], [200.0, 0.0]])]
    >>> pred = [np.array([[30.0, 40.0], [900.0, 0.0]])]
    >>> round(recall(truth, pred, tolerance_nm=100), 4)
    0.5
    """
    return localization_metrics(
        y_true,
        y_pred,
        tolerance_nm=tolerance_nm,
        matching=matching,
        border_nm=border_nm,
        field_of_view_nm=field_of_view_nm,
        axial_tolerance_nm=axial_tolerance_nm,
    )["recall"]


def precision(
    y_true,
    y_pred,
    *,
    tolerance_nm=250.0,
    matching="hungarian",
    border_nm=None,
    field_of_view_nm=None,
    axial_tolerance_nm=None,
):
    """Precision TP / (TP + FP): the fraction of predictions that are right.

    Parameters
    ----------
    y_true, y_pred : pandas.DataFrame or sequence of array-like
        True and predicted localizations: a localization table or a per-frame
        list of ``(k, 2)`` / ``(k, 3)`` position arrays.
    tolerance_nm : float, default=250.0
        Largest lateral distance of a matched pair (inclusive), in nm.
    matching : {"hungarian", "greedy"}, default="hungarian"
        Optimal assignment, or the closest-pair-first rule of ThunderSTORM and
        the 2016 challenge.
    border_nm, field_of_view_nm, axial_tolerance_nm : optional
        See :func:`localization_metrics`.

    Returns
    -------
    precision : float
        In [0, 1]; 0.0 without predictions (1.0 when both inputs are
        empty).

    See Also
    --------
    localization_metrics : all metrics from one matching.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.metrics import precision
    >>> truth = [np.array([[0.0, 0.0], [200.0, 0.0]])]
    >>> pred = [np.array([[30.0, 40.0], [900.0, 0.0]])]
    >>> round(precision(truth, pred, tolerance_nm=100), 4)
    0.5
    """
    return localization_metrics(
        y_true,
        y_pred,
        tolerance_nm=tolerance_nm,
        matching=matching,
        border_nm=border_nm,
        field_of_view_nm=field_of_view_nm,
        axial_tolerance_nm=axial_tolerance_nm,
    )["precision"]


def f1(
    y_true,
    y_pred,
    *,
    tolerance_nm=250.0,
    matching="hungarian",
    border_nm=None,
    field_of_view_nm=None,
    axial_tolerance_nm=None,
):
    """F1 score 2 TP / (2 TP + FP + FN), the harmonic mean of recall and precision.

    Parameters
    ----------
    y_true, y_pred : pandas.DataFrame or sequence of array-like
        True and predicted localizations: a localization table or a per-frame
        list of ``(k, 2)`` / ``(k, 3)`` position arrays.
    tolerance_nm : float, default=250.0
        Largest lateral distance of a matched pair (inclusive), in nm.
    matching : {"hungarian", "greedy"}, default="hungarian"
        Optimal assignment, or the closest-pair-first rule of ThunderSTORM and
        the 2016 challenge.
    border_nm, field_of_view_nm, axial_tolerance_nm : optional
        See :func:`localization_metrics`.

    Returns
    -------
    f1 : float
        In [0, 1]; 1.0 when both inputs are empty.

    See Also
    --------
    localization_metrics : all metrics from one matching.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.metrics import f1
    >>> truth = [np.array([[0.0, 0.0], [200.0, 0.0]])]
    >>> pred = [np.array([[30.0, 40.0], [900.0, 0.0]])]
    >>> round(f1(truth, pred, tolerance_nm=100), 4)
    0.5
    """
    return localization_metrics(
        y_true,
        y_pred,
        tolerance_nm=tolerance_nm,
        matching=matching,
        border_nm=border_nm,
        field_of_view_nm=field_of_view_nm,
        axial_tolerance_nm=axial_tolerance_nm,
    )["f1"]


def efficiency(
    y_true,
    y_pred,
    *,
    tolerance_nm=250.0,
    matching="hungarian",
    border_nm=None,
    field_of_view_nm=None,
    axial_tolerance_nm=None,
):
    """Lateral efficiency of the 2016 SMLM challenge.

    ``E = 100 - sqrt((100 - 100 JI)^2 + RMSE^2)`` with the RMSE in nm (the
    challenge's ``alpha = 1 / nm``); at most 100, higher is better.

    Parameters
    ----------
    y_true, y_pred : pandas.DataFrame or sequence of array-like
        True and predicted localizations: a localization table or a per-frame
        list of ``(k, 2)`` / ``(k, 3)`` position arrays.
    tolerance_nm : float, default=250.0
        Largest lateral distance of a matched pair (inclusive), in nm.
    matching : {"hungarian", "greedy"}, default="hungarian"
        Optimal assignment, or the closest-pair-first rule of ThunderSTORM and
        the 2016 challenge.
    border_nm, field_of_view_nm, axial_tolerance_nm : optional
        See :func:`localization_metrics`.

    Returns
    -------
    efficiency : float
        NaN when no pair matched.

    See Also
    --------
    localization_metrics : all metrics from one matching.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.metrics import efficiency
    >>> truth = [np.array([[0.0, 0.0], [200.0, 0.0]])]
    >>> pred = [np.array([[30.0, 40.0], [900.0, 0.0]])]
    >>> round(efficiency(truth, pred, tolerance_nm=100), 4)
    16.6667
    """
    return localization_metrics(
        y_true,
        y_pred,
        tolerance_nm=tolerance_nm,
        matching=matching,
        border_nm=border_nm,
        field_of_view_nm=field_of_view_nm,
        axial_tolerance_nm=axial_tolerance_nm,
    )["efficiency"]


def tolerance_sweep(
    y_true,
    y_pred,
    *,
    tolerances_nm=None,
    matching="hungarian",
    border_nm=None,
    field_of_view_nm=None,
    axial_tolerance_nm=None,
):
    """Compute the metrics at a range of lateral tolerances.

    The candidate pairs are searched once at the largest tolerance and reused
    for the smaller ones, so a sweep costs little more than one matching.

    Parameters
    ----------
    y_true, y_pred : pandas.DataFrame or sequence of array-like
        True and predicted localizations (see :func:`localization_metrics`).
    tolerances_nm : sequence of float, optional
        The tolerances, in nm. Default: 10, 20, ..., 250 (the paper's range).
    matching : {"hungarian", "greedy"}, default="hungarian"
        The matching rule.
    border_nm, field_of_view_nm, axial_tolerance_nm : optional
        See :func:`localization_metrics`.

    Returns
    -------
    sweep : pandas.DataFrame
        One row per tolerance, in the given order, with the columns of
        :func:`localization_metrics`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.metrics import tolerance_sweep
    >>> truth = [np.array([[0.0, 0.0], [200.0, 0.0]])]
    >>> pred = [np.array([[30.0, 40.0], [900.0, 0.0]])]
    >>> tolerance_sweep(truth, pred, tolerances_nm=[40, 50])[["tolerance_nm", "tp"]]
       tolerance_nm  tp
    0          40.0   0
    1          50.0   1
    """
    if tolerances_nm is None:
        tolerances_nm = np.arange(10.0, 251.0, 10.0)
    try:
        tolerances_nm = [float(t) for t in np.asarray(tolerances_nm, float).ravel()]
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"tolerances_nm must be a sequence of numbers, got {tolerances_nm!r}."
        ) from exc
    if not tolerances_nm:
        raise ValueError("tolerances_nm must hold at least one tolerance.")
    for t in tolerances_nm:
        check_matching_params(
            t, matching, border_nm, field_of_view_nm, axial_tolerance_nm
        )
    true, pred = prepare(y_true, y_pred, axial_tolerance_nm)
    candidates = candidate_pairs(true, pred, max(tolerances_nm), axial_tolerance_nm)
    rows = []
    for t in tolerances_nm:
        result = match_prepared(
            true,
            pred,
            candidates,
            tolerance_nm=t,
            matching=matching,
            border_nm=border_nm,
            field_of_view_nm=field_of_view_nm,
        )
        rows.append(
            _metrics_from_matching(
                result,
                tolerance_nm=t,
                matching=matching,
                has_z=true.z is not None and pred.z is not None,
            )
        )
    return pd.DataFrame(rows, columns=list(METRIC_NAMES))
