"""
How the network localizes: frame, target, prediction, detections
=================================================================

The method of Yee, Hagen & Ventura in four pictures. A convolutional network
looks at a camera frame and regresses a *distance-transform map* seven times
finer than the camera: every emitter is a sharp peak of height
``exp(alpha) - 1`` that falls to zero ``d_max`` map pixels away. The local
maxima of the predicted map above a threshold, refined to sub-pixel
precision, are the localizations.

We train a small network for a few seconds on simulated frames and follow one
test frame through every stage.
"""

# %%
# Training data
# -------------
# Sparse-to-medium density frames of 32 x 32 pixels of 100 nm, with the
# emitters' true positions as the targets.
import matplotlib.pyplot as plt

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm.encoding import distance_transform_maps
from sklearn_smlm.rendering import plot_localizations

sim = PAFPSimulator(
    frame_shape=(32, 32),
    density_per_um2=0.8,
    photons=2000.0,
    background_photons=20.0,
    random_state=0,
)
X_train, y_train = sim.simulate(256)
X_test, y_test = sim.set_params(random_state=1).simulate(8)

# %%
# A small network, quickly trained
# --------------------------------
# The paper's network has 9 layers of 32 channels; 4 layers of 16 channels
# trained for a few epochs (with a higher learning rate than the default) are
# enough to show the idea. The upscaling
# ``r = 7``, ``alpha = 7`` and ``d_max = 35`` map pixels are the paper's
# values: one map pixel is 100 / 7 = 14.3 nm.
loc = DistanceTransformLocalizer(
    n_layers=4,
    n_channels=16,
    max_epochs=8,
    batch_size=8,
    lr=3e-3,
    validation_fraction=0,
    random_state=0,
)
loc.fit(X_train, y_train)
print(f"trained {len(loc.net_.history)} epochs on {len(X_train)} frames")

# %%
# The four stages of one frame
# ----------------------------
# 1. the camera frame (ADU);
# 2. the training target of that frame: the distance transform of its true
#    positions, :func:`~sklearn_smlm.encoding.distance_transform_maps`;
# 3. the network's prediction for it,
#    :meth:`~sklearn_smlm.DistanceTransformLocalizer.predict_maps`;
# 4. the detections (local maxima above ``threshold``, red crosses) against
#    the truth (green circles).
frame = 0
target = distance_transform_maps([y_test[frame]], X_test.shape[1:])[0]
predicted = loc.predict_maps(X_test[frame : frame + 1])[0]
table = loc.predict(X_test)

fig, axes = plt.subplots(2, 2, figsize=(8.5, 8.5), layout="constrained")
axes[0, 0].imshow(X_test[frame], cmap="gray")
axes[0, 0].set_title("1. camera frame, 32 x 32 pixels")
axes[0, 1].imshow(target, cmap="magma", vmin=0, vmax=loc.regressor_.peak_value)
axes[0, 1].set_title("2. target: distance transform, 224 x 224")
axes[1, 0].imshow(predicted, cmap="magma", vmin=0, vmax=loc.regressor_.peak_value)
axes[1, 0].set_title("3. predicted map")
plot_localizations(table, frame=frame, image=X_test, truth=y_test[frame], ax=axes[1, 1])
axes[1, 1].set_title("4. detections (+) and truth (o)")
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])

# %%
# The target's profile
# --------------------
# Along a line through an emitter, the target is
# ``exp(alpha * (1 - d / d_max)) - 1`` for distances ``d < d_max`` and 0
# beyond: a narrow peak (most of its height lies within a few map pixels, a
# few tens of nanometres) on a wide base that lets the network learn where
# emitters are not. The predicted map follows it closely near isolated
# emitters.
row = int(round(y_test[frame][0, 1] / 100 * 7 - 0.5))
fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
ax.plot(target[row], label="target")
ax.plot(predicted[row], label="prediction")
ax.axhline(loc.threshold, color="gray", linestyle="--", label="threshold")
ax.set_xlabel("map column (14.3 nm per pixel)")
ax.set_ylabel("map value")
ax.legend()
plt.show()

# %%
# Detection and sub-pixel refinement
# ----------------------------------
# Each local maximum is refined on its 3 x 3 neighbourhood, so the positions
# are not restricted to the 14.3 nm map grid. How close are they to the
# truth?
from sklearn_smlm.metrics import localization_metrics

m = localization_metrics(y_test, table, tolerance_nm=250.0)
print(
    f"{m['tp']} matched, {m['fp']} false, {m['fn']} missed: "
    f"Jaccard {m['jaccard']:.2f}, RMSE {m['rmse_nm']:.1f} nm"
)
