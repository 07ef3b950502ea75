"""
Simulate a PALM/STORM movie and look at it
==========================================

:class:`~sklearn_smlm.PAFPSimulator` makes camera frames together with the
true position of every emitter in them, the way the physics goes: emitters
blink on, each spreads its photons over the pixels as a Gaussian spot, a
background is added, and a camera turns photons into counts (ADU).

Here we simulate a few frames that look like the 2013 SMLM challenge's
"Bundled Tubes High Density" data set, look at one frame with its truth, and
compare the three camera models.
"""

# %%
# A movie like the 2013 challenge
# -------------------------------
# Presets hold parameter sets calibrated on reference data.
# ``structure="filaments"`` puts the emitters on random tubes, as in the
# challenge's sample (the preset's default, like the paper's training set,
# is uniformly placed emitters).
import matplotlib.pyplot as plt
import numpy as np

from sklearn_smlm import PAFPSimulator

sim = PAFPSimulator.from_preset("bt_hd_2013", structure="filaments", random_state=0)
X, truth = sim.simulate(20, return_table=True)
print(f"frames: {X.shape} {X.dtype}, {len(truth)} true emitters")
print(f"emitters per frame: {truth.groupby('frame').size().mean():.0f}")
truth.head()

# %%
# The frames are in camera units (ADU, whole counts above a baseline of about
# 100), and the truth is a localization table: ``frame`` (0-based), ``x_nm``,
# ``y_nm`` and what the simulator knows about each emitter (photons, local
# background, PSF width).
#
# One frame with its truth
# ------------------------
# About 225 emitters in 6.4 x 6.4 um: their spots overlap everywhere, which is
# what makes this data set hard for classical one-spot-at-a-time fitting.
# To draw positions in nanometres over the camera pixels, use the library's
# coordinate convention: pixel ``(row, col)`` has its centre at
# ``x_nm = (col + 0.5) * pixel_size_nm``, and ``imshow`` puts that centre at
# ``x = col``, so a position is drawn at ``x_nm / pixel_size_nm - 0.5``
# (:func:`~sklearn_smlm.rendering.plot_localizations` does this for you).
fig, axes = plt.subplots(1, 2, figsize=(9, 4.6), layout="constrained")
axes[0].imshow(X[0], cmap="gray")
axes[0].set_title("frame 0 (ADU)")
first = truth[truth.frame == 0]
axes[1].imshow(X[0], cmap="gray")
axes[1].plot(
    first.x_nm / 100.0 - 0.5,
    first.y_nm / 100.0 - 0.5,
    "o",
    color="lime",
    markerfacecolor="none",
    markersize=6,
)
axes[1].set_title("frame 0 with the true positions")
for ax in axes:
    ax.set_axis_off()

# %%
# The sum of all frames already shows the filaments, blurred by the
# diffraction limit: localization is what sharpens it.
fig, ax = plt.subplots(figsize=(4.6, 4.6), layout="constrained")
ax.imshow(X.sum(axis=0), cmap="magma")
ax.set_title("sum of 20 frames (diffraction-limited)")
ax.set_axis_off()

# %%
# Camera models
# -------------
# The same emitters seen by an ideal photon counter, an EMCCD and an sCMOS
# camera. The EMCCD multiplies every photo-electron by a random gain (its
# *excess noise* doubles the variance), then adds read noise and a baseline;
# the sCMOS has per-pixel offsets, gains and read noise maps. Ranges such as
# ``em_gain=(10, 300)`` draw one value per frame, so one simulator can cover
# many cameras.
params = dict(frame_shape=(32, 32), density_per_um2=1.0, random_state=1)
cameras = {
    "ideal": PAFPSimulator(camera="ideal", **params),
    "emccd": PAFPSimulator(camera="emccd", em_gain=100.0, e_per_adu=50.0, **params),
    "scmos": PAFPSimulator(camera="scmos", e_per_adu=0.5, read_noise_e=1.5, **params),
}
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), layout="constrained")
for ax, (name, camera_sim) in zip(axes, cameras.items(), strict=True):
    frames, _ = camera_sim.simulate(1)
    im = ax.imshow(frames[0], cmap="gray")
    fig.colorbar(im, ax=ax, shrink=0.8, label="photons" if name == "ideal" else "ADU")
    ax.set_title(name)
    ax.set_axis_off()

# %%
# Because every frame is drawn from its own seeded random stream, a movie is
# reproducible and can be made chunk by chunk: the first 5 frames of a
# 20-frame movie equal a 5-frame movie.
X5, _ = sim.simulate(5)
print("same first frames:", np.array_equal(X5, X[:5]))
