"""Add the ``conditions`` entry to the shipped model files (weights untouched).

The entry (what each model was trained for: densities, PSF widths, pixel size,
photons, background, focus range, cameras; see ``sklearn_smlm/_conditions.py``
and the model card) is written into the metadata; every other metadata field
and every weight stay as they were, and the file's checksum is recomputed.
Run from the repository root::

    python scripts/add_model_conditions.py
"""

import json

import numpy as np
import torch

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm._conditions import SHIPPED_CONDITIONS
from sklearn_smlm._files import atomic_path
from sklearn_smlm._persistence import _PRETRAINED_DIR, _checksum, _json_default


def add_conditions(path, conditions):
    """Rewrite ``path`` with ``conditions``; return the largest map difference."""
    before = DistanceTransformLocalizer.load(path, device="cpu")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    metadata = json.loads(payload["metadata"])
    metadata["conditions"] = conditions
    metadata_json = json.dumps(metadata, sort_keys=True, default=_json_default)
    payload["metadata"] = metadata_json
    payload["sha256"] = _checksum(metadata_json, payload["state_dict"])
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    after = DistanceTransformLocalizer.load(path, device="cpu")
    assert after.conditions_ == conditions
    X, _ = PAFPSimulator(frame_shape=(32, 32), random_state=0).simulate(4)
    return float(np.max(np.abs(before.predict_maps(X) - after.predict_maps(X))))


if __name__ == "__main__":
    for name, conditions in SHIPPED_CONDITIONS.items():
        diff = add_conditions(_PRETRAINED_DIR / f"{name}.pt", conditions)
        print(f"{name}: conditions added; largest map difference {diff}")
