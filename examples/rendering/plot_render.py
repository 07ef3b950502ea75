"""
Render a super-resolved image
=============================

Summing the camera frames gives the diffraction-limited image: structures
closer than about 250 nm blur together. Plotting every localization at its
position, with its own precision, gives the super-resolved image.
:func:`~sklearn_smlm.render` draws a table either as a 2-D histogram (counts
per render pixel) or as a sum of Gaussians, one per localization, whose
widths are the localization uncertainties.

To keep this example fast, the localizations come from the classical
:class:`~sklearn_smlm.GaussianFitLocalizer` on sparse frames, where it works
well and reports an uncertainty per localization; a table from the CNN
renders the same way.
"""

# %%
# A sparse movie of filaments
# ---------------------------
import matplotlib.pyplot as plt
import numpy as np

from sklearn_smlm import GaussianFitLocalizer, PAFPSimulator, render
from sklearn_smlm.rendering import auto_contrast

sim = PAFPSimulator.from_preset(
    "low_density",
    structure="filaments",
    n_filaments=4,
    frame_shape=(40, 40),
    density_per_um2=0.6,
    random_state=0,
)
frames, truth = sim.simulate(400, return_table=True)
preset = sim.get_params()
localizer = GaussianFitLocalizer(
    baseline_adu=preset["baseline_adu"],
    e_per_adu=preset["e_per_adu"],
    em_gain=preset["em_gain"],
    quantum_efficiency=preset["quantum_efficiency"],
).fit()
table = localizer.predict(frames)
print(f"{len(table)} localizations from {len(frames)} frames")
print(f"median uncertainty: {table['uncertainty_nm'].median():.1f} nm")

# %%
# Widefield, histogram and Gaussian renderings
# --------------------------------------------
# ``field_of_view_nm`` fixes the image to the camera's field, so the images
# line up with the frames (pixel ``(i, j)`` covers ``y`` from ``i * px`` to
# ``(i + 1) * px``, as for the camera). The histogram is sharp but grainy;
# Gaussians of the localization uncertainty smooth it according to the
# precision of each point. :func:`~sklearn_smlm.rendering.auto_contrast`
# scales a mostly empty image by a percentile of its non-empty pixels.
field_nm = (40 * 100.0, 40 * 100.0)
histogram = render(table, pixel_size_nm=20.0, field_of_view_nm=field_nm)
gaussian = render(
    table, pixel_size_nm=10.0, method="gaussian", field_of_view_nm=field_nm
)

fig, axes = plt.subplots(1, 3, figsize=(11, 4), layout="constrained")
panels = [
    (frames.sum(axis=0), "sum of the frames (100 nm pixels)"),
    (auto_contrast(histogram), "histogram (20 nm pixels)"),
    (auto_contrast(gaussian, gamma=0.7), "Gaussians of the uncertainty (10 nm)"),
]
for ax, (image, title) in zip(axes, panels, strict=True):
    ax.imshow(image, cmap="hot", extent=(0, 4, 4, 0))
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel("x (um)")
axes[0].set_ylabel("y (um)")
plt.show()

# %%
# A close-up
# ----------
# ``origin_nm`` and ``field_of_view_nm`` select a region at any pixel size:
# here 1 x 1 um at 5 nm per pixel, with the true emitters on top. The
# filaments are 25 nm wide tubes; what spreads them is the localization
# error.
origin = np.array([700.0, 3000.0])
zoom = render(
    table,
    pixel_size_nm=5.0,
    method="gaussian",
    origin_nm=tuple(origin),
    field_of_view_nm=(1000.0, 1000.0),
)
inside = truth[
    truth.x_nm.between(origin[0], origin[0] + 1000)
    & truth.y_nm.between(origin[1], origin[1] + 1000)
]
fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
ax.imshow(auto_contrast(zoom, gamma=0.7), cmap="hot", extent=(0, 1000, 1000, 0))
ax.plot(inside.x_nm - origin[0], inside.y_nm - origin[1], ",", color="cyan")
ax.set_title("1 x 1 um close-up; true emitters in cyan")
ax.set_xlabel("x (nm)")
ax.set_ylabel("y (nm)")
plt.show()
