"""Merging: one row per on-event of a molecule from its consecutive localizations."""

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .._localizations import validate_localizations
from .._validation import check_int, check_real

__all__ = ["merge_localizations", "link_localizations"]

# columns merged by a rule of their own; any other numeric column is averaged
_SUMMED = ("photons",)
_WEIGHTED = ("x_nm", "y_nm", "z_nm")
_MAXED = ("score",)


def _check_params(max_distance_nm, max_dark_frames):
    return (
        check_real(max_distance_nm, "max_distance_nm", low=0, low_open=True),
        check_int(max_dark_frames, "max_dark_frames", low=0),
    )


def link_localizations(table, *, max_distance_nm=50.0, max_dark_frames=1):
    """Label the localizations of one on-event of one molecule.

    Each localization is linked to the nearest localization within
    ``max_distance_nm`` in the first of the next ``max_dark_frames + 1``
    frames that holds one (a KD-tree over ``(x, y, frame)`` with the frames
    spread far apart, queried once per allowed gap); a localization claimed
    by several predecessors keeps the one of the shortest gap, then the
    closest. The links form chains, and each chain is one event.

    Parameters
    ----------
    table : pandas.DataFrame
        Localization table (``frame``, ``x_nm``, ``y_nm``).
    max_distance_nm : float, default=50.0
        Largest distance between linked localizations (about 3-4 times the
        localization precision).
    max_dark_frames : int, default=1
        Frames a molecule may be missed (blinks, missed detections) inside
        one event.

    Returns
    -------
    labels : ndarray of int64, shape (n_rows,)
        Event of each row of ``table``, numbered from 0 in the order of the
        events' first localizations.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"frame": [0, 1, 3, 1], "x_nm": [0.0, 5, 3, 900],
    ...                   "y_nm": [0.0, 0, 0, 0]})
    >>> link_localizations(t, max_distance_nm=20, max_dark_frames=1).tolist()
    [0, 0, 0, 1]
    """
    table = validate_localizations(table, name="table")
    max_distance_nm, max_dark_frames = _check_params(max_distance_nm, max_dark_frames)
    n = len(table)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    frame = table["frame"].to_numpy()
    x = table["x_nm"].to_numpy()
    y = table["y_nm"].to_numpy()
    # frames spread 4 radii apart: a query within the radius never reaches
    # another frame than the one asked for; coordinates relative to the
    # minimum keep float64 exact enough for any realistic acquisition
    spacing = 4.0 * max_distance_nm
    f = (frame - frame.min()).astype(np.float64) * spacing
    xr, yr = x - x.min(), y - y.min()
    tree = cKDTree(np.column_stack([xr, yr, f]))
    succ = np.full(n, -1, dtype=np.int64)
    gap_of = np.zeros(n, dtype=np.int64)
    dist_of = np.full(n, np.inf)
    for gap in range(1, max_dark_frames + 2):
        todo = np.flatnonzero(succ < 0)
        if len(todo) == 0:
            break
        query = np.column_stack([xr[todo], yr[todo], f[todo] + gap * spacing])
        dist, idx = tree.query(
            query, k=1, distance_upper_bound=max_distance_nm, workers=-1
        )
        found = idx < n
        succ[todo[found]] = idx[found]
        gap_of[todo[found]] = gap
        dist_of[todo[found]] = dist[found]
    src = np.flatnonzero(succ >= 0)
    dst = succ[src]
    # one predecessor per localization: the shortest gap, then the closest
    order = np.lexsort((dist_of[src], gap_of[src], dst))
    src, dst = src[order], dst[order]
    first = np.r_[True, dst[1:] != dst[:-1]]
    src, dst = src[first], dst[first]
    graph = sparse.coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # number the events by their first localization (frame, then row)
    first_row = np.full(labels.max() + 1, n, dtype=np.int64)
    rows = np.lexsort((np.arange(n), frame))
    np.minimum.at(first_row, labels[rows], np.arange(n))
    rank = np.empty_like(first_row)
    rank[np.argsort(first_row, kind="stable")] = np.arange(len(first_row))
    return rank[labels].astype(np.int64)


def merge_localizations(table, *, max_distance_nm=50.0, max_dark_frames=1):
    """Merge the localizations of each molecule on-event into one row.

    Events are found by :func:`link_localizations`. Positions (``x_nm``,
    ``y_nm``, ``z_nm``) are averaged with weights ``1 / uncertainty_nm^2``
    (equal weights when the table has no finite positive uncertainties), and
    the merged ``uncertainty_nm`` is ``1 / sqrt(sum(1 / uncertainty_nm^2))``;
    ``photons`` are summed, ``score`` takes the maximum, every other numeric
    column the mean; a row ``id`` column is dropped (writers number the merged
    rows afresh).

    Parameters
    ----------
    table : pandas.DataFrame
        Localization table (``frame``, ``x_nm``, ``y_nm``, optionally
        ``photons``, ``uncertainty_nm``, ...).
    max_distance_nm : float, default=50.0
        Largest distance between linked localizations.
    max_dark_frames : int, default=1
        Frames a molecule may be missed inside one event.

    Returns
    -------
    merged : pandas.DataFrame
        One row per event, in the order of first frames: ``frame`` (= the first
        frame), the merged columns, ``n_merged``, ``first_frame`` and
        ``last_frame``.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"frame": [0, 1, 2], "x_nm": [10.0, 20.0, 500.0],
    ...                   "y_nm": [0.0, 0.0, 0.0], "photons": [100.0, 300.0, 50.0],
    ...                   "uncertainty_nm": [10.0, 10.0, 20.0]})
    >>> merged = merge_localizations(t, max_distance_nm=30)
    >>> merged[["frame", "x_nm", "photons", "uncertainty_nm", "n_merged"]]
       frame   x_nm  photons  uncertainty_nm  n_merged
    0      0   15.0    400.0        7.071068         2
    1      2  500.0     50.0       20.000000         1
    """
    table = validate_localizations(table, name="table")
    labels = link_localizations(
        table, max_distance_nm=max_distance_nm, max_dark_frames=max_dark_frames
    )
    n_events = int(labels.max()) + 1 if len(labels) else 0
    frame = table["frame"].to_numpy()
    count = np.bincount(labels, minlength=n_events)

    weights = np.ones(len(table))
    has_unc = "uncertainty_nm" in table.columns
    if has_unc:
        u = table["uncertainty_nm"].to_numpy(dtype=float)
        if np.all(np.isfinite(u) & (u > 0)):
            weights = 1.0 / u**2
        else:
            has_unc = False
    wsum = np.bincount(labels, weights=weights, minlength=n_events)

    out = {}
    first_frame = np.full(n_events, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_frame, labels, frame)
    last_frame = np.full(n_events, -1, dtype=np.int64)
    np.maximum.at(last_frame, labels, frame)
    for column in table.columns:
        values = table[column]
        if column == "frame":
            out[column] = first_frame
        elif not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(
            values
        ):
            continue
        elif column in _WEIGHTED:
            v = values.to_numpy(dtype=float)
            out[column] = (
                np.bincount(labels, weights=weights * v, minlength=n_events) / wsum
            )
        elif column == "uncertainty_nm" and has_unc:
            out[column] = 1.0 / np.sqrt(wsum)
        elif column in _SUMMED:
            out[column] = np.bincount(
                labels, weights=values.to_numpy(dtype=float), minlength=n_events
            )
        elif column in _MAXED:
            m = np.full(n_events, -np.inf)
            np.maximum.at(m, labels, values.to_numpy(dtype=float))
            out[column] = m
        elif column in ("n_merged", "first_frame", "last_frame", "id"):
            continue  # row ids (ThunderSTORM's) name rows that no longer exist
        else:
            out[column] = (
                np.bincount(
                    labels, weights=values.to_numpy(dtype=float), minlength=n_events
                )
                / count
            )
    out["n_merged"] = count.astype(np.int64)
    out["first_frame"] = first_frame
    out["last_frame"] = last_frame
    return pd.DataFrame(out)
