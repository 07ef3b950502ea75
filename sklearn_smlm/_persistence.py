"""Model files: save and load a fitted localizer as tensors plus JSON metadata.

Loading for prediction builds the torch network only: no skorch net, no
optimizer (creating torch's Adam imports ``torch._dynamo``, seconds of start-up).
The skorch net is built from the loaded network when training continues
(:attr:`DistanceTransformRegressor.net_ <sklearn_smlm.DistanceTransformRegressor>`).
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from ._files import atomic_path

__all__ = [
    "MODEL_FORMAT_VERSION",
    "ModelFileError",
    "load_model",
    "pretrained",
    "pretrained_names",
    "pretrained_path",
    "rewrite_model_metadata",
    "save_model",
]

#: Version of the model file layout that is written. Version 2 added 3D
#: models (``z_range_nm`` and the network's depth head); version 1 files
#: (2D, written before) still load. Files of other versions are refused.
MODEL_FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_MODEL_FORMAT = "sklearn-smlm-model"
_PRETRAINED_DIR = Path(__file__).parent / "models"


class ModelFileError(ValueError):
    """A model file is missing, corrupt, altered or from an incompatible version."""


def save_model(localizer, path):
    """Save a fitted localizer, see :meth:`DistanceTransformLocalizer.save`."""
    import torch

    state = localizer.regressor_._state()
    objects = ("normalizer", "refiner", "camera")
    params = {
        k: v for k, v in localizer.get_params(deep=False).items() if k not in objects
    }
    params["stages"] = list(params["stages"]) if params["stages"] else None
    if params.get("z_range_nm") is not None:
        params["z_range_nm"] = [float(v) for v in params["z_range_nm"]]
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None
    normalizer = localizer.normalizer_
    refiner = localizer.refiner
    metadata = {
        "format": _MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "library_version": _library_version(),
        "torch_version": torch.__version__,
        "estimator": type(localizer).__name__,
        "params": params,
        "normalizer": {
            "class": type(normalizer).__name__,
            "params": normalizer.get_params(deep=False),
        },
        "refiner": None
        if refiner is None
        else {
            "class": type(refiner).__name__,
            "params": refiner.get_params(deep=False),
        },
        "frame_shape": list(localizer.frame_shape_),
        "n_epochs": int(localizer.regressor_.n_epochs_),
        "history": _history_summary(localizer.regressor_._history()),
        "training": getattr(localizer, "training_info_", None),
    }
    conditions = getattr(localizer, "conditions_", None)
    if conditions is not None:  # what it was trained for (_conditions.py)
        metadata["conditions"] = conditions
    metadata_json = json.dumps(metadata, sort_keys=True, default=_json_default)
    payload = {
        "format": _MODEL_FORMAT,
        "metadata": metadata_json,
        "state_dict": state,
        "sha256": _checksum(metadata_json, state),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def pretrained_names():
    """Names of the pretrained models shipped with the package (sorted)."""
    return sorted(p.stem for p in _PRETRAINED_DIR.glob("*.pt"))


def pretrained_path(name="default"):
    """Path of the file of the pretrained model ``name`` shipped with the package."""
    available = pretrained_names()
    if name not in available:
        raise ValueError(f"no pretrained model named {name!r}; available: {available}.")
    return _PRETRAINED_DIR / f"{name}.pt"


def pretrained(name="default", *, device="auto"):
    """Load a pretrained model, see :meth:`DistanceTransformLocalizer.pretrained`."""
    return load_model(pretrained_path(name), device=device)


def rewrite_model_metadata(path, edit, *, out=None):
    """Rewrite the metadata of a model file, keeping its weights.

    For maintenance of model files (a parameter chosen after training, a
    recorded condition) and for tests of the loader: the metadata dict is
    read, changed by ``edit`` and written back with the file's checksum
    recomputed. Nothing is checked here: loading the file checks it.

    Parameters
    ----------
    path : str or path-like
        The model file.
    edit : callable
        ``edit(metadata)`` changes the metadata dict in place.
    out : str or path-like, optional
        Where to write the result (atomically); default ``path``.

    Returns
    -------
    path : Path
        The file written.
    """
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    metadata = json.loads(payload["metadata"])
    edit(metadata)
    metadata_json = json.dumps(metadata, sort_keys=True, default=_json_default)
    payload["metadata"] = metadata_json
    payload["sha256"] = _checksum(metadata_json, payload["state_dict"])
    out = Path(path if out is None else out)
    with atomic_path(out) as tmp:
        torch.save(payload, tmp)
    return out


def load_model(path, *, device="auto"):
    """Load a localizer saved with :meth:`DistanceTransformLocalizer.save`.

    No pickled code is executed: the file is read with
    ``torch.load(weights_only=True)``, which only rebuilds tensors and plain
    containers, and its checksum is verified. Only the network is built; the
    skorch net that training needs is built when first used.

    Parameters
    ----------
    path : str or path-like
        The model file.
    device : str, default="auto"
        Device to place the network on; a model trained on a GPU loads on a
        machine without one.

    Returns
    -------
    localizer : DistanceTransformLocalizer
        A fitted localizer.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ModelFileError
        If the file is not a model of this library, is corrupt or altered, or
        was written in an incompatible format version.
    """
    import torch

    from ._validation import resolve_device
    from .localizer import DistanceTransformLocalizer
    from .nn import SubPixelCNN, resolve_precision
    from .preprocessing import FrameNormalizer

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        raise ModelFileError(
            f"{path}: not a readable sklearn-smlm model file (corrupt, truncated or "
            f"another format): {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != _MODEL_FORMAT:
        raise ModelFileError(f"{path}: not an sklearn-smlm model file.")
    try:
        metadata_json, state = payload["metadata"], payload["state_dict"]
        metadata = json.loads(metadata_json)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: the model file's metadata is damaged.") from exc
    if _checksum(metadata_json, state) != payload.get("sha256"):
        raise ModelFileError(
            f"{path}: checksum mismatch; the file was altered or damaged after it "
            "was saved."
        )
    version = metadata.get("format_version")
    if version not in _READABLE_VERSIONS:
        raise ModelFileError(
            f"{path}: model file format version {version} (written by sklearn-smlm "
            f"{metadata.get('library_version')}) cannot be read by sklearn-smlm "
            f"{_library_version()}, which reads versions 1-{MODEL_FORMAT_VERSION}; "
            "retrain the model or use the library version that wrote it."
        )
    if metadata.get("estimator") != "DistanceTransformLocalizer":
        raise ModelFileError(f"{path}: holds a {metadata.get('estimator')!r}.")

    params = dict(metadata["params"])
    params["stages"] = tuple(params["stages"]) if params["stages"] else None
    if params.get("z_range_nm") is not None:  # a 3D model (version 2)
        params["z_range_nm"] = tuple(params["z_range_nm"])
    params["device"] = device
    normalizer = FrameNormalizer(**metadata["normalizer"]["params"])
    params.pop("refiner", None)  # files of the same format may list it (None)
    refiner = metadata.get("refiner")
    if refiner is not None:
        from .fitting import GaussianFitLocalizer

        refiner_params = dict(refiner["params"])
        for key, value in refiner_params.items():  # JSON turned tuples to lists
            if isinstance(value, list):
                refiner_params[key] = tuple(value)
        refiner = GaussianFitLocalizer(**refiner_params)
    loc = DistanceTransformLocalizer(normalizer=normalizer, refiner=refiner, **params)
    reg = loc._make_regressor()
    reg.device_ = resolve_device(device)
    reg.precision_ = resolve_precision(reg.precision, reg.device_)
    reg.frame_shape_ = tuple(metadata["frame_shape"])
    reg.n_epochs_ = metadata.get("n_epochs", 0)
    try:
        # the random initialization is overwritten: keep the global RNG as it was
        with torch.random.fork_rng(devices=[]):
            module = SubPixelCNN(**reg._module_kwargs())
        # channels-last as MapNet builds it, so the maps are those of the fit
        module = module.to(memory_format=torch.channels_last)
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(
            f"{path}: the weights do not fit the network described by its metadata."
        ) from exc
    reg.module_ = module.to(reg.device_)
    loc.normalizer_ = normalizer.fit(np.zeros((1, 2, 2), dtype=np.float32))
    loc.regressor_ = reg
    loc._copy_fitted()
    loc.training_info_ = metadata.get("training")
    loc.conditions_ = metadata.get("conditions")  # None in older files
    loc.model_metadata_ = metadata
    return loc


def _checksum(metadata_json, state):
    digest = hashlib.sha256(metadata_json.encode())
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _history_summary(history):
    keys = ("epoch", "train_loss", "valid_loss", "dur")
    return [{k: row[k] for k in keys if k in row} for row in history]


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a model file.")


def _library_version():
    from . import __version__

    return __version__
