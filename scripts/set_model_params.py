"""Set prediction parameters of a model file, keeping its weights and metadata.

Only the named entries of the file's ``params`` change (e.g. a detection rule
chosen on simulated frames); every other metadata field (training record,
conditions) and every weight stay as they were, and the checksum is
recomputed. Run from the repository root, e.g.::

    cd sklearn_smlm/models
    python ../../scripts/set_model_params.py default.pt thick_edge_threshold=450
"""

import argparse
import json

import numpy as np
import torch

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm._files import atomic_path
from sklearn_smlm._persistence import _checksum, _json_default


def _value(text):
    if text == "None":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def set_params(path, params):
    """Rewrite ``path`` with ``params``; return the largest map difference."""
    before = DistanceTransformLocalizer.load(path, device="cpu")
    before.set_params(**params)  # an unknown name fails here, before writing
    payload = torch.load(path, map_location="cpu", weights_only=True)
    metadata = json.loads(payload["metadata"])
    metadata["params"].update(params)
    metadata_json = json.dumps(metadata, sort_keys=True, default=_json_default)
    payload["metadata"] = metadata_json
    payload["sha256"] = _checksum(metadata_json, payload["state_dict"])
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    after = DistanceTransformLocalizer.load(path, device="cpu")
    for name, value in params.items():
        assert after.get_params()[name] == value, name
    assert after.conditions_ == before.conditions_
    X, _ = PAFPSimulator(frame_shape=(32, 32), random_state=0).simulate(4)
    return float(np.max(np.abs(before.predict_maps(X) - after.predict_maps(X))))


def main(argv=None):
    """Parse ``PATH NAME=VALUE ...`` and rewrite the file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("settings", nargs="+", metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    params = {}
    for text in args.settings:
        name, sep, value = text.partition("=")
        if not sep:
            raise SystemExit(f"expected NAME=VALUE, got {text!r}")
        params[name] = _value(value)
    diff = set_params(args.path, params)
    print(f"{args.path}: {params} set; largest map difference {diff}")


if __name__ == "__main__":
    main()
