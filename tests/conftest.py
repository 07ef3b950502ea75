"""Test-session settings shared by every test module."""

import os

import matplotlib
import pytest

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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Put torch back on one thread after any test that changed it.

    A test (or a benchmark smoke run) that sets another thread count would
    otherwise change the float sums of every later test in its worker, and
    make the golden tables, recorded at one thread, skip.
    """
    yield
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
