"""
Localize a TIFF stack with the pretrained model
===============================================

The everyday job: a TIFF movie from the microscope in, a table of positions
in nanometres out. The pretrained model shipped with the package
(:meth:`~sklearn_smlm.DistanceTransformLocalizer.pretrained`) was trained on
simulated frames of 100 nm pixels over a wide range of densities, PSF widths,
signal-to-noise ratios and camera settings (see
:doc:`/user_guide/model_card`), so it can be tried on data without any
training.

Here the "microscope" is the simulator: we write a movie of filaments at high
density to a TIFF file, localize it chunk by chunk, compare with the truth
and save the table for ThunderSTORM or Picasso.
"""

# %%
# A movie on disk
# ---------------
# :func:`~sklearn_smlm.write_stack` writes an ImageJ TIFF that records the
# pixel size. Your own files come from the camera software (Micro-Manager,
# ImageJ, ...).
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from sklearn_smlm import (
    DistanceTransformLocalizer,
    PAFPSimulator,
    TiffStack,
    write_localizations,
    write_stack,
)
from sklearn_smlm.metrics import localization_metrics
from sklearn_smlm.rendering import plot_localizations

folder = Path(tempfile.mkdtemp())
sim = PAFPSimulator.from_preset("bt_hd_2013", structure="filaments", random_state=0)
frames, truth = sim.simulate(64, return_table=True)
write_stack(folder / "movie.tif", frames.astype("uint16"), pixel_size_nm=100.0)

# %%
# Open it lazily and localize
# ---------------------------
# :class:`~sklearn_smlm.TiffStack` memory-maps the file, so a stack larger
# than memory is fine: ``predict`` reads it chunk by chunk (``iter_predict``
# yields one table per chunk, to write as you go). Frame numbers are 0-based
# indices into the whole stack.
loc = DistanceTransformLocalizer.pretrained()
with TiffStack(folder / "movie.tif") as stack:
    print(stack.shape, stack.dtype, "pixel size:", stack.metadata["pixel_size_nm"])
    table = loc.predict(stack)
print(f"{len(table)} localizations, {len(truth)} true emitters")
table.head()

# %%
# How well did it do?
# -------------------
# On simulated data we know the truth. At this density (about 225 emitters
# per 64 x 64 frame, spots overlapping everywhere) recall, not precision, is
# the limit: close emitters merge into one peak.
m = localization_metrics(truth, table, tolerance_nm=250.0)
print(
    f"Jaccard {m['jaccard']:.2f}  recall {m['recall']:.2f}  "
    f"precision {m['precision']:.2f}  RMSE {m['rmse_nm']:.1f} nm"
)

fig, ax = plt.subplots(figsize=(6, 6), layout="constrained")
plot_localizations(table, frame=0, image=frames, truth=truth, ax=ax)
ax.set_title("frame 0: localizations (+) and truth (o)")
plt.show()

# %%
# Save for ThunderSTORM or Picasso
# --------------------------------
# The ThunderSTORM CSV layout has 1-based frames and ``"x [nm]"`` columns;
# ThunderSTORM's *Import results* reads it, and Picasso's ``picasso csv2hdf``
# converts it (asking for the pixel size).
write_localizations(table, folder / "movie_locs.csv", format="thunderstorm")
print((folder / "movie_locs.csv").read_text().splitlines()[0])
