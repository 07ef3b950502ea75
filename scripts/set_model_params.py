"""Set prediction parameters of a model file, keeping its weights and metadata.

Only the named entries of the file's ``params`` change (e.g. a detection rule
chosen on simulated frames); every other metadata field (training record,
conditions) and every weight stay as they were, and the checksum is
recomputed. Run from the repository root, e.g.::

    cd sklearn_smlm/models
    python ../../scripts/set_model_params.py default.pt thick_edge_threshold=450
"""

import argparse

import numpy as np

from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
from sklearn_smlm.localizer import rewrite_model_metadata


def _value(text):
    if text == "None":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def rewrite_metadata(path, edit):
    """Rewrite the metadata of the model file ``path`` with ``edit``.

    ``edit(metadata)`` changes the metadata dict in place; the weights stay
    as they are and the checksum is recomputed. Return the models loaded
    before and after, for the caller's checks.
    """
    before = DistanceTransformLocalizer.load(path, device="cpu")
    rewrite_model_metadata(path, edit)
    return before, DistanceTransformLocalizer.load(path, device="cpu")


def map_difference(before, after):
    """Largest difference between two models' maps of a few simulated frames."""
    X, _ = PAFPSimulator(frame_shape=(32, 32), random_state=0).simulate(4)
    return float(np.max(np.abs(before.predict_maps(X) - after.predict_maps(X))))


def set_params(path, params):
    """Rewrite ``path`` with ``params``; return the largest map difference."""
    # an unknown name fails here, before writing
    DistanceTransformLocalizer.load(path, device="cpu").set_params(**params)
    before, after = rewrite_metadata(
        path, lambda metadata: metadata["params"].update(params)
    )
    for name, value in params.items():
        assert after.get_params()[name] == value, name
    assert after.conditions_ == before.conditions_
    return map_difference(before, after)


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
