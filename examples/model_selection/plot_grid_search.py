"""
Tune alpha, d_max and the threshold with GridSearchCV
=====================================================

The target's sharpness ``alpha``, its radius ``d_max`` and the detection
``threshold`` are hyperparameters like any other: scikit-learn's
:class:`~sklearn.model_selection.GridSearchCV` picks them by cross-validation
with a localization scorer, here the Jaccard index
(:class:`~sklearn_smlm.JaccardScorer`).

Two details make this cheap and correct:

* ``y`` is a per-frame list of position arrays, so the folds split *frames*,
  never the emitters of one frame;
* in a :class:`~sklearn.pipeline.Pipeline` with ``memory``, the network step
  is cached: trying several thresholds does not retrain the network.
"""

# %%
# Data and pipeline
# -----------------
import tempfile

import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from sklearn_smlm import (
    DistanceTransformRegressor,
    FrameNormalizer,
    JaccardScorer,
    PAFPSimulator,
    PeakExtractor,
)

sim = PAFPSimulator(frame_shape=(24, 24), density_per_um2=1.5, random_state=0)
X, y = sim.simulate(192)

cache = tempfile.mkdtemp()
pipe = Pipeline(
    [
        ("normalize", FrameNormalizer()),
        (
            "network",
            DistanceTransformRegressor(
                n_layers=3,
                n_channels=16,
                max_epochs=6,
                batch_size=8,
                lr=3e-3,
                validation_fraction=0,
                random_state=0,
            ),
        ),
        ("peaks", PeakExtractor()),
    ],
    memory=cache,
)

# %%
# The grid
# --------
# The threshold acts on the map, whose peaks are ``exp(alpha) - 1`` high
# (148 for alpha = 5, 1096 for alpha = 7), so it is given as a fraction of
# the peak for each alpha: one sub-grid per alpha.
fractions = np.array([0.1, 0.2, 0.3, 0.45, 0.6])
param_grid = [
    {
        "network__alpha": [alpha],
        "network__d_max": [20.0, 35.0],
        "peaks__threshold": [round(f * np.expm1(alpha), 1) for f in fractions],
    }
    for alpha in (5.0, 7.0)
]
search = GridSearchCV(
    pipe,
    param_grid,
    scoring=JaccardScorer(tolerance_nm=150.0),
    cv=KFold(2, shuffle=True, random_state=0),
)
search.fit(X, y)
print("best:", search.best_params_, f"Jaccard {search.best_score_:.3f}")

# %%
# The scores
# ----------
# Four networks were trained per fold (two alphas times two radii), not
# twenty: the cache served the threshold candidates.
results = pd.DataFrame(search.cv_results_)
results["alpha"] = results["param_network__alpha"].astype(float)
results["d_max"] = results["param_network__d_max"].astype(float)
results["threshold / peak"] = (
    results["param_peaks__threshold"].astype(float) / np.expm1(results["alpha"])
).round(2)
table = results.pivot_table(
    index=["alpha", "d_max"], columns="threshold / peak", values="mean_test_score"
)
table.round(3)

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6.5, 3.8), layout="constrained")
for (alpha, d_max), row in table.iterrows():
    ax.plot(row.index, row.values, "o-", label=f"alpha={alpha:g}, d_max={d_max:g}")
ax.set_xlabel("threshold / peak height exp(alpha) - 1")
ax.set_ylabel("Jaccard index (150 nm), 2-fold CV")
ax.legend()
plt.show()

# %%
# The refitted best pipeline localizes new frames directly:
X_new, y_new = sim.set_params(random_state=1).simulate(8)
print(search.predict(X_new).head())
print(f"Jaccard on new frames: {search.score(X_new, y_new):.3f}")
