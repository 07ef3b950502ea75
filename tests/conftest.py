"""Test-session settings shared by every test module."""

import os

import matplotlib

# Figures are drawn off-screen, and each of the 2 xdist workers uses one
# thread: tests run the same on every machine (float sums in a fixed order)
# and do not oversubscribe the cores.
matplotlib.use("Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch
except ImportError:  # pragma: no cover - torch is a core dependency
    torch = None
else:
    torch.set_num_threads(1)
