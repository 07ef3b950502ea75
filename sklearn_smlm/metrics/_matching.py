"""One-to-one matching of predicted to true localizations, frame by frame.

Two rules are offered:

``"hungarian"``
    An optimal assignment: the largest possible number of pairs within the
    tolerance, and among those the one with the least total lateral
    distance. It is solved with :func:`scipy.optimize.linear_sum_assignment`
    on each connected cluster of candidate pairs, so a movie of hundreds of
    frames with hundreds of emitters each takes a fraction of a second.
``"greedy"``
    The rule of the ThunderSTORM performance evaluator and of the 2016 SMLM
    challenge: repeatedly take the closest remaining (true, predicted) pair
    of a frame whose distance is within the tolerance. It never finds more
    pairs than ``"hungarian"`` and may find fewer.

A pair whose lateral distance equals the tolerance exactly is a match
(``distance <= tolerance_nm``).
"""

import numbers

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .._localizations import localizations_from_list, validate_localizations
from .._validation import check_real

__all__ = ["match_localizations"]

MATCHING_RULES = ("hungarian", "greedy")

# Relative slack on the k-d tree search radius, so that rounding inside the
# tree never drops a pair whose exactly recomputed distance is within tolerance.
_SEARCH_SLACK = 1e-9


class _Localizations:
    """Positions of one table as plain arrays (frame, x, y and maybe z)."""

    def __init__(self, table):
        self.table = table
        self.frame = table["frame"].to_numpy(dtype=np.int64)
        self.xy = table[["x_nm", "y_nm"]].to_numpy(dtype=np.float64)
        self.z = table["z_nm"].to_numpy(dtype=np.float64) if "z_nm" in table else None

    def __len__(self):
        return len(self.frame)


class _Matching:
    """Result of a matching: the scored pairs and the scored counts."""

    def __init__(self, pairs, n_true, n_pred):
        self.pairs = pairs
        self.n_true = n_true
        self.n_pred = n_pred

    @property
    def tp(self):
        return len(self.pairs)

    @property
    def fp(self):
        return self.n_pred - len(self.pairs)

    @property
    def fn(self):
        return self.n_true - len(self.pairs)


def as_localization_table(y, name):
    """Return ``y`` (a localization table or a per-frame list) as a table."""
    if isinstance(y, pd.DataFrame):
        return validate_localizations(y, name=name)
    if y is None or isinstance(y, (str, bytes, numbers.Number)):
        raise TypeError(
            f"{name} must be a localization DataFrame (columns 'frame', 'x_nm', "
            "'y_nm'[, 'z_nm']) or a list with one (k, 2) or (k, 3) array of "
            f"positions per frame, got {type(y).__name__}."
        )
    try:
        table = localizations_from_list(y)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc
    return validate_localizations(table, name=name, copy=False)


def check_matching_params(
    tolerance_nm, matching, border_nm, field_of_view_nm, axial_tolerance_nm
):
    """Validate the matching parameters shared by every metric."""
    _check_nonnegative(tolerance_nm, "tolerance_nm")
    if matching not in MATCHING_RULES:
        raise ValueError(
            f"matching must be one of {list(MATCHING_RULES)}, got {matching!r}."
        )
    if axial_tolerance_nm is not None:
        _check_nonnegative(axial_tolerance_nm, "axial_tolerance_nm")
    if border_nm is not None:
        _check_nonnegative(border_nm, "border_nm")
        if field_of_view_nm is None:
            raise ValueError(
                "border_nm needs field_of_view_nm=(width_nm, height_nm) to know "
                "where the edges of the field are."
            )
    if field_of_view_nm is not None:
        try:
            width, height = (float(v) for v in field_of_view_nm)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                "field_of_view_nm must be a pair (width_nm, height_nm), got "
                f"{field_of_view_nm!r}."
            ) from exc
        if not (np.isfinite(width) and np.isfinite(height)) or min(width, height) <= 0:
            raise ValueError(
                f"field_of_view_nm must hold two positive numbers, got "
                f"{field_of_view_nm!r}."
            )


def _check_nonnegative(value, name):
    check_real(value, name, low=0)


def candidate_pairs(true, pred, max_distance_nm, axial_tolerance_nm=None):
    """All (true, predicted) pairs of the same frame within a lateral distance.

    Returns
    -------
    true_index, pred_index : ndarray of int64
        Row positions of the pair members.
    distance_nm : ndarray of float64
        Exact lateral distance of each pair, all ``<= max_distance_nm``.
    """
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    if len(true) == 0 or len(pred) == 0:
        return empty
    # A third coordinate puts each frame on its own plane, so one tree search
    # covers every frame: points of different frames are at least `spacing`
    # apart, which is beyond the search radius, and within a frame the third
    # coordinates are identical, so they add exactly nothing to a distance.
    spacing = 2.0 * max_distance_nm + 1.0
    true_tree = cKDTree(np.column_stack([true.xy, true.frame * spacing]))
    pred_tree = cKDTree(np.column_stack([pred.xy, pred.frame * spacing]))
    radius = max_distance_nm * (1.0 + _SEARCH_SLACK) + _SEARCH_SLACK
    found = true_tree.sparse_distance_matrix(pred_tree, radius, output_type="ndarray")
    ti = found["i"].astype(np.int64)
    pi = found["j"].astype(np.int64)
    if len(ti) == 0:
        return empty
    delta = pred.xy[pi] - true.xy[ti]
    distance = np.hypot(delta[:, 0], delta[:, 1])
    keep = (distance <= max_distance_nm) & (true.frame[ti] == pred.frame[pi])
    if axial_tolerance_nm is not None:
        keep &= np.abs(pred.z[pi] - true.z[ti]) <= axial_tolerance_nm
    ti, pi, distance = ti[keep], pi[keep], distance[keep]
    # Sorted by (true, pred) so that results never depend on the tree's internals.
    order = np.lexsort((pi, ti))
    return ti[order], pi[order], distance[order]


def assign(true_index, pred_index, distance_nm, n_true, n_pred, matching):
    """Choose one-to-one pairs among candidate pairs.

    Returns the positions (into the candidate arrays) of the chosen pairs.
    """
    n_edges = len(true_index)
    if n_edges == 0:
        return np.empty(0, dtype=np.int64)
    graph = coo_matrix(
        (np.ones(n_edges), (true_index, n_true + pred_index)),
        shape=(n_true + n_pred, n_true + n_pred),
    )
    _, label = connected_components(graph, directed=False)
    true_label, pred_label = label[:n_true], label[n_true:]
    n_labels = int(label.max()) + 1
    true_per_label = np.bincount(true_label, minlength=n_labels)
    pred_per_label = np.bincount(pred_label, minlength=n_labels)
    edge_label = true_label[true_index]
    # In a cluster with a single true or a single predicted localization (most
    # clusters) both rules take its shortest pair, found here for all at once.
    star = (true_per_label[edge_label] == 1) | (pred_per_label[edge_label] == 1)
    star_edges = np.flatnonzero(star)
    order = star_edges[
        np.lexsort(
            (
                pred_index[star_edges],
                true_index[star_edges],
                distance_nm[star_edges],
                edge_label[star_edges],
            )
        )
    ]
    first = np.diff(edge_label[order], prepend=-1) != 0
    chosen = [order[first]]
    shared = np.flatnonzero(~star)
    if len(shared):
        if matching == "greedy":
            chosen.append(_greedy(true_index, pred_index, distance_nm, shared))
        else:
            chosen.append(
                _hungarian(
                    true_index,
                    pred_index,
                    distance_nm,
                    shared,
                    edge_label,
                    _rank_in_label(true_label),
                    _rank_in_label(pred_label),
                    true_per_label,
                    pred_per_label,
                )
            )
    return np.sort(np.concatenate(chosen))


def _rank_in_label(label):
    """Position of each node among the nodes of its cluster."""
    order = np.argsort(label, kind="stable")
    sorted_label = label[order]
    rank = np.empty(len(label), dtype=np.int64)
    rank[order] = np.arange(len(label)) - np.searchsorted(sorted_label, sorted_label)
    return rank


def _greedy(true_index, pred_index, distance_nm, edges):
    # Closest first; exact ties go to the lower true row, then the lower
    # predicted row, so the result never depends on the order of the search.
    order = edges[
        np.lexsort((pred_index[edges], true_index[edges], distance_nm[edges]))
    ]
    used_true, used_pred, chosen = set(), set(), []
    for e, t, p in zip(
        order.tolist(),
        true_index[order].tolist(),
        pred_index[order].tolist(),
        strict=True,
    ):
        if t not in used_true and p not in used_pred:
            used_true.add(t)
            used_pred.add(p)
            chosen.append(e)
    return np.asarray(chosen, dtype=np.int64)


def _hungarian(
    true_index,
    pred_index,
    distance_nm,
    edges,
    edge_label,
    true_rank,
    pred_rank,
    true_per_label,
    pred_per_label,
):
    chosen = []
    max_distance = float(distance_nm[edges].max())
    edges = edges[np.argsort(edge_label[edges], kind="stable")]
    bounds = np.flatnonzero(np.diff(edge_label[edges])) + 1
    for cluster in np.split(edges, bounds):
        cluster_label = edge_label[cluster[0]]
        shape = (true_per_label[cluster_label], pred_per_label[cluster_label])
        rows_local = true_rank[true_index[cluster]]
        cols_local = pred_rank[pred_index[cluster]]
        distance = distance_nm[cluster]
        # A pair outside the tolerance costs more than any set of pairs within
        # it, so the assignment first maximizes the number of real pairs and
        # only then minimizes their total distance.
        outside = (min(shape) + 1) * (max_distance + 1.0)
        cost = np.full(shape, outside)
        cost[rows_local, cols_local] = distance
        edge_of = np.full(shape, -1, dtype=np.int64)
        edge_of[rows_local, cols_local] = cluster
        rows, cols = linear_sum_assignment(cost)
        picked = edge_of[rows, cols]
        chosen.append(picked[picked >= 0])
    return np.concatenate(chosen)


def inside_field(xy, border_nm, field_of_view_nm):
    """Whether each position lies at least ``border_nm`` inside the field."""
    width, height = (float(v) for v in field_of_view_nm)
    x, y = xy[:, 0], xy[:, 1]
    return (
        (x >= border_nm)
        & (x <= width - border_nm)
        & (y >= border_nm)
        & (y <= height - border_nm)
    )


def match_prepared(
    true,
    pred,
    candidates,
    *,
    tolerance_nm,
    matching,
    border_nm=None,
    field_of_view_nm=None,
):
    """Match two prepared tables, reusing candidate pairs found at a larger radius."""
    ti, pi, distance = candidates
    within = distance <= tolerance_nm
    ti, pi, distance = ti[within], pi[within], distance[within]
    chosen = assign(ti, pi, distance, len(true), len(pred), matching)
    ti, pi, distance = ti[chosen], pi[chosen], distance[chosen]

    n_true, n_pred = len(true), len(pred)
    if border_nm is not None:
        # The 2016 challenge rule: true emitters in the border band are not
        # scored, nor are the predictions matched to them; an unmatched
        # prediction is scored only if it lies outside the band.
        true_in = inside_field(true.xy, border_nm, field_of_view_nm)
        pred_in = inside_field(pred.xy, border_nm, field_of_view_nm)
        matched_pred = np.zeros(n_pred, dtype=bool)
        matched_pred[pi] = True
        keep = true_in[ti]
        ti, pi, distance = ti[keep], pi[keep], distance[keep]
        n_true = int(true_in.sum())
        n_pred = len(ti) + int((pred_in & ~matched_pred).sum())

    order = np.lexsort((ti, true.frame[ti]))
    ti, pi, distance = ti[order], pi[order], distance[order]
    delta = pred.xy[pi] - true.xy[ti]
    pairs = {
        "frame": true.frame[ti],
        "true_index": ti,
        "pred_index": pi,
        "distance_nm": distance,
        "dx_nm": delta[:, 0],
        "dy_nm": delta[:, 1],
    }
    if true.z is not None and pred.z is not None:
        pairs["dz_nm"] = pred.z[pi] - true.z[ti]
    return _Matching(pd.DataFrame(pairs), n_true, n_pred)


def prepare(y_true, y_pred, axial_tolerance_nm=None):
    """Validate both inputs and return them as :class:`_Localizations`."""
    true = _Localizations(as_localization_table(y_true, "y_true"))
    pred = _Localizations(as_localization_table(y_pred, "y_pred"))
    if axial_tolerance_nm is not None and (true.z is None or pred.z is None):
        raise ValueError(
            "axial_tolerance_nm needs axial positions: both y_true and y_pred must "
            "have a 'z_nm' column (or (k, 3) arrays)."
        )
    return true, pred


def match(
    y_true,
    y_pred,
    *,
    tolerance_nm=250.0,
    matching="hungarian",
    border_nm=None,
    field_of_view_nm=None,
    axial_tolerance_nm=None,
):
    """Validate, find candidate pairs and match; returns a :class:`_Matching`."""
    check_matching_params(
        tolerance_nm, matching, border_nm, field_of_view_nm, axial_tolerance_nm
    )
    true, pred = prepare(y_true, y_pred, axial_tolerance_nm)
    candidates = candidate_pairs(true, pred, tolerance_nm, axial_tolerance_nm)
    return match_prepared(
        true,
        pred,
        candidates,
        tolerance_nm=tolerance_nm,
        matching=matching,
        border_nm=border_nm,
        field_of_view_nm=field_of_view_nm,
    )


def match_localizations(
    y_true,
    y_pred,
    *,
    tolerance_nm=250.0,
    matching="hungarian",
    border_nm=None,
    field_of_view_nm=None,
    axial_tolerance_nm=None,
):
    """Match predicted to true localizations one-to-one, frame by frame.

    Parameters
    ----------
    y_true, y_pred : pandas.DataFrame or sequence of array-like
        True and predicted localizations: a localization table (columns
        ``frame``, ``x_nm``, ``y_nm`` and optionally ``z_nm``) or a per-frame
        list with one ``(k, 2)`` or ``(k, 3)`` array of positions per frame.
        Only localizations of the same frame are matched; a frame present in
        one input only contributes unmatched localizations.
    tolerance_nm : float, default=250.0
        Largest lateral distance of a matched pair, in nm. A pair exactly at
        the tolerance is matched (``distance <= tolerance_nm``).
    matching : {"hungarian", "greedy"}, default="hungarian"
        ``"hungarian"``: the most pairs within the tolerance, then the least
        total distance (optimal assignment). ``"greedy"``: repeatedly take the
        closest remaining pair, as the ThunderSTORM evaluator and the 2016 SMLM
        challenge do (exact ties go to the lower true row, then the lower
        predicted row).
    border_nm : float, optional
        Width of a band along the edges of the field that is not scored (the
        2016 challenge uses 300 nm). Matching is done on all localizations
        first; then true localizations in the band (closer than ``border_nm``
        to an edge) are dropped together with the predictions matched to
        them, and unmatched predictions in the band are dropped as well.
        Needs ``field_of_view_nm``.
    field_of_view_nm : (float, float), optional
        ``(width_nm, height_nm)`` of the field, whose corner is at (0, 0): for
        frames of ``W`` x ``H`` pixels of size ``px``, ``(W * px, H * px)``.
    axial_tolerance_nm : float, optional
        If given, a pair also needs ``|dz| <= axial_tolerance_nm`` (the 2016
        challenge uses 500 nm); both inputs must then have ``z_nm``. Otherwise
        the matching is lateral only, even for 3D data.

    Returns
    -------
    pairs : pandas.DataFrame
        One row per scored matched pair, ordered by frame and true row, with
        columns ``frame``, ``true_index`` and ``pred_index`` (row positions in
        ``y_true`` and ``y_pred``; for a per-frame list, positions in the
        frames concatenated in order), ``distance_nm`` (lateral),
        ``dx_nm`` and ``dy_nm`` (predicted minus true), and ``dz_nm`` when both
        inputs have ``z_nm``. ``pairs.attrs`` holds ``n_true`` and ``n_pred``,
        the numbers of scored true and predicted localizations (all of them
        without ``border_nm``), so ``fp = n_pred - len(pairs)`` and
        ``fn = n_true - len(pairs)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_smlm.metrics import match_localizations
    >>> truth = [np.array([[0.0, 0.0], [200.0, 0.0]])]
    >>> pred = [np.array([[30.0, 40.0], [900.0, 0.0]])]
    >>> match_localizations(truth, pred, tolerance_nm=100)
       frame  true_index  pred_index  distance_nm  dx_nm  dy_nm
    0      0           0           0         50.0   30.0   40.0
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
    pairs = result.pairs
    pairs.attrs["n_true"] = result.n_true
    pairs.attrs["n_pred"] = result.n_pred
    return pairs
