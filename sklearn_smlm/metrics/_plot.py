"""Plot metrics against the matching tolerance (JI and RMSE side by side)."""

import numpy as np
import pandas as pd

__all__ = ["plot_tolerance_sweep"]

_LABELS = {
    "jaccard": "Jaccard index",
    "recall": "recall",
    "precision": "precision",
    "f1": "F1",
    "rmse_nm": "lateral RMSE (nm)",
    "rmse_x_nm": "RMSE x (nm)",
    "rmse_y_nm": "RMSE y (nm)",
    "rmse_z_nm": "RMSE z (nm)",
    "efficiency": "efficiency",
    "efficiency_axial": "axial efficiency",
    "tp": "true positives",
    "fp": "false positives",
    "fn": "false negatives",
}


def plot_tolerance_sweep(sweeps, *, ax=None, metrics=("jaccard", "rmse_nm")):
    """Plot metrics against the tolerance for one or several methods.

    Parameters
    ----------
    sweeps : pandas.DataFrame or dict of str to pandas.DataFrame
        Output of :func:`~sklearn_smlm.metrics.tolerance_sweep`, or a mapping
        from method name to such a table to compare methods on one figure.
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per metric. Default: a new figure with the metrics side by
        side.
    metrics : sequence of str, default=("jaccard", "rmse_nm")
        Columns of the sweeps to plot, one panel each.

    Returns
    -------
    axes : ndarray of matplotlib Axes
        One per metric; ``axes[0].figure`` is the figure.

    Raises
    ------
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_smlm.metrics import plot_tolerance_sweep, tolerance_sweep
    >>> truth = [np.array([[0.0, 0.0], [200.0, 0.0]])]
    >>> pred = [np.array([[30.0, 40.0], [900.0, 0.0]])]
    >>> axes = plot_tolerance_sweep({"toy": tolerance_sweep(truth, pred)})
    >>> [a.get_ylabel() for a in axes]
    ['Jaccard index', 'lateral RMSE (nm)']
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plot_tolerance_sweep needs matplotlib; install it with "
            "`pip install sklearn-smlm[plot]` (or `pip install matplotlib`)."
        ) from exc

    if isinstance(sweeps, pd.DataFrame):
        sweeps = {None: sweeps}
    elif not isinstance(sweeps, dict) or not sweeps:
        raise TypeError(
            "sweeps must be a DataFrame from tolerance_sweep or a non-empty dict "
            f"mapping method names to such DataFrames, got {type(sweeps).__name__}."
        )
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    for name, sweep in sweeps.items():
        missing = [c for c in ["tolerance_nm", *metrics] if c not in sweep]
        if missing:
            label = "sweeps" if name is None else f"sweeps[{name!r}]"
            raise ValueError(f"{label} has no column(s) {missing}.")

    if ax is None:
        _, ax = plt.subplots(
            1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False
        )
    axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
    if len(axes) != len(metrics):
        raise ValueError(
            f"ax holds {len(axes)} Axes for {len(metrics)} metric(s); give one "
            "Axes per metric."
        )
    for axis, metric in zip(axes, metrics, strict=True):
        for name, sweep in sweeps.items():
            axis.plot(
                sweep["tolerance_nm"], sweep[metric], marker="o", ms=3, label=name
            )
        axis.set_xlabel("tolerance (nm)")
        axis.set_ylabel(_LABELS.get(metric, metric))
        if any(name is not None for name in sweeps):
            axis.legend()
    axes[0].figure.tight_layout()
    return axes
