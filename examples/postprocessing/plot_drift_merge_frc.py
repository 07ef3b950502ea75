"""
Drift correction, merging and FRC resolution
============================================

A localization table is the middle of the work: over a long acquisition the
stage drifts by tens to hundreds of nanometres, each molecule blinks on for a
few frames and is localized in every one of them, and a user wants to know
the resolution of the final image. This example runs the chain: simulate and
localize a movie, correct the drift of a long acquisition, merge the blinks,
render, and measure the resolution by Fourier ring correlation (FRC).
"""

# %%
# From a movie to a table
# -----------------------
# A short sparse movie of filaments, localized by the classical Gaussian
# fitter, gives the kind of table that post-processing takes: frame, position,
# photons, background and an uncertainty per localization.
import matplotlib.pyplot as plt

from sklearn_smlm import (
    DriftCorrector,
    GaussianFitLocalizer,
    PAFPSimulator,
    frc_curve,
    frc_resolution,
    merge_localizations,
    render,
)
from sklearn_smlm.postprocessing import plot_frc, simulate_drift, simulate_localizations
from sklearn_smlm.rendering import auto_contrast

sim = PAFPSimulator.from_preset(
    "low_density", structure="filaments", frame_shape=(32, 32), random_state=0
)
frames, truth = sim.simulate(100, return_table=True)
p = sim.get_params()
localizer = GaussianFitLocalizer(
    baseline_adu=p["baseline_adu"],
    e_per_adu=p["e_per_adu"],
    em_gain=p["em_gain"],
    quantum_efficiency=p["quantum_efficiency"],
).fit()
movie_table = localizer.predict(frames)
print(movie_table.head(3).round(1).to_string())
print(f"median uncertainty: {movie_table['uncertainty_nm'].median():.1f} nm")

# %%
# A long drifting acquisition
# ---------------------------
# Drift correction needs thousands of frames, too many to render and fit in
# an example. :func:`~sklearn_smlm.postprocessing.simulate_localizations`
# makes the table directly, with the simulator's filaments and blinking
# (emitters on for 3 frames on average) and each position displaced by its
# Cramér-Rao precision; :func:`~sklearn_smlm.postprocessing.simulate_drift`
# draws a stage drift: a linear trend plus a slow wander.
n_frames = 10000
field_nm = (6400.0, 6400.0)
drift = simulate_drift(n_frames, random_state=1)
table, truth = simulate_localizations(
    n_frames, drift=drift, field_of_view_nm=field_nm, n_filaments=10, random_state=1
)
print(
    f"{len(table)} localizations, median uncertainty "
    f"{table['uncertainty_nm'].median():.1f} nm"
)

# %%
# Drift correction by redundant cross-correlation
# -----------------------------------------------
# :class:`~sklearn_smlm.DriftCorrector` renders segments of 500 frames,
# cross-correlates every pair, solves the over-determined system of pairwise
# shifts by least squares (rejecting outliers) and interpolates a smoothing
# spline per frame. ``drift_`` is the displacement since frame 0.
corrector = DriftCorrector(segment_frames=500).fit(table)
corrected = corrector.transform(table)
err = corrector.drift_[["dx_nm", "dy_nm"]] - drift[["dx_nm", "dy_nm"]]
print("RMS error of the drift (nm):", err.pow(2).mean().pow(0.5).round(2).to_dict())

ax = corrector.plot_drift()
ax.plot(drift["frame"], drift["dx_nm"], "k:", lw=1, label="true")
ax.plot(drift["frame"], drift["dy_nm"], "k:", lw=1)
ax.legend()
plt.show()

# %%
# Merging the blinks
# ------------------
# :func:`~sklearn_smlm.merge_localizations` links the localizations of one
# molecule over consecutive frames (within 50 nm, bridging one missed frame)
# and averages their positions weighted by 1 / uncertainty^2; the merged
# uncertainty shrinks as 1 / sqrt(n).
merged = merge_localizations(corrected, max_distance_nm=50, max_dark_frames=1)
print(
    f"{len(corrected)} localizations -> {len(merged)} events "
    f"(true on-events: {truth['emitter'].nunique()})"
)
print(f"median uncertainty after merging: {merged['uncertainty_nm'].median():.1f} nm")

# %%
# Images and resolution
# ---------------------
# The drifting table smears every filament along the drift's path; the
# corrected one shows the 25 nm tubes. The FRC splits the table into two
# halves (even and odd blocks of 500 frames, so each blink stays in one
# half), and reports where the correlation of their images falls below 1/7.
region = dict(origin_nm=(1600.0, 1600.0), field_of_view_nm=(3200.0, 3200.0))
fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), layout="constrained")
for ax, (t, title) in zip(
    axes, [(table, "drifting"), (corrected, "drift corrected")], strict=True
):
    image = render(t, pixel_size_nm=10.0, **region)
    ax.imshow(auto_contrast(image), cmap="hot", extent=(1.6, 4.8, 4.8, 1.6))
    ax.set_title(title)
    ax.set_xlabel("x (um)")
axes[0].set_ylabel("y (um)")
plt.show()

for name, t in [("drifting", table), ("corrected", corrected)]:
    print(f"FRC resolution, {name}: {frc_resolution(t, pixel_size_nm=5.0):.1f} nm")
curve = frc_curve(corrected, pixel_size_nm=5.0)
plot_frc(curve)
plt.show()
