"""The paper's CNN localizer as scikit-learn estimators, and its persistence.

:class:`DistanceTransformRegressor` is the network step (normalized frames to
distance-transform maps); :class:`DistanceTransformLocalizer` chains frame
normalization, the network and peak extraction into one estimator whose
``predict`` returns a localization table. The same job can be done step by step
with a :class:`~sklearn.pipeline.Pipeline` of
:class:`~sklearn_smlm.FrameNormalizer`, :class:`DistanceTransformRegressor` and
:class:`~sklearn_smlm.PeakExtractor`.
"""

import math

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._chunks import check_chunk_size, iter_chunk_tables
from ._conditions import (
    check_and_warn,
    choose_pretrained,
    decide_detections,
    drop_noise_frames,
    drop_thick_edge_spill,
)
from ._depth import (
    add_z_column,
    check_depth_and_warn,
    check_z_range,
    depth_targets,
    positions_with_z,
    with_z_column,
)
from ._localizations import check_positions
from ._persistence import (  # noqa: F401 - public and former import paths
    MODEL_FORMAT_VERSION,
    ModelFileError,
    load_model,
    pretrained,
    pretrained_names,
    pretrained_path,
    rewrite_model_metadata,
    save_model,
)
from ._validation import (
    check_frames,
    check_int,
    check_option,
    check_real,
    resolve_device,
)
from .encoding import distance_transform_maps
from .fitting import add_localizer_uncertainty
from .peaks import columns_to_localizations, localization_columns
from .preprocessing import FrameNormalizer

__all__ = [
    "DistanceTransformRegressor",
    "DistanceTransformLocalizer",
    "load_model",
    "ModelFileError",
    "MODEL_FORMAT_VERSION",
]


def _check_params(est):
    """Validate the network parameters shared by the two estimators."""
    for name in ("pixel_size_nm", "alpha", "d_max", "lr"):
        check_real(getattr(est, name), name, low=0, low_open=True)
    for name in ("upscaling", "n_layers", "n_channels", "batch_size", "max_epochs"):
        check_int(getattr(est, name), name, low=1)
    for name in ("dropout", "validation_fraction"):
        check_real(getattr(est, name), name, low=0, high=1, high_open=True)
    if est.upsampling not in ("subpixel", "folded", "multistage"):
        raise ValueError(
            "upsampling must be 'subpixel', 'folded' or 'multistage', got "
            f"{est.upsampling!r}."
        )
    from .nn import PRECISIONS

    if est.precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {PRECISIONS}, got {est.precision!r}."
        )
    if est.z_range_nm is not None:
        check_z_range(est.z_range_nm, est.upsampling)


class DistanceTransformRegressor(TransformerMixin, BaseEstimator):
    """Network step: regress distance-transform maps from normalized frames.

    ``fit(X, y)`` encodes the true positions ``y`` as distance-transform maps
    (:func:`~sklearn_smlm.encoding.distance_transform_maps`) and trains a
    :class:`~sklearn_smlm.nn.SubPixelCNN` through skorch; ``transform(X)``
    returns the predicted maps, ``upscaling`` times finer than the frames, on
    the paper's scale (an isolated emitter peaks at ``exp(alpha) - 1``).

    Parameters
    ----------
    pixel_size_nm : float, default=100.0
        Camera pixel size in the sample plane.
    upscaling : int, default=7
        Upscaling factor ``r`` of the maps (one map pixel is
        ``pixel_size_nm / r``).
    alpha : float, default=7.0
        Sharpness of the target peaks: an emitter peaks at ``exp(alpha) - 1``.
    d_max : float, default=35.0
        Radius of the target peaks, in map pixels (35 map pixels at r = 7 are
        5 camera pixels).
    z_range_nm : tuple of float (low, high), optional
        Learn z as well (a 3D model, for astigmatic frames): the network gets
        a depth head that regresses a z map beside the distance-transform map
        (:class:`~sklearn_smlm.nn.SubPixelCNN` with ``predict_z=True``,
        folded head only), ``fit`` needs ``(x_nm, y_nm, z_nm)`` positions and
        z is scaled to [-1, 1] over this axial range. None (default): 2D.
    n_layers : int, default=9
        Number of 3x3 convolution layers before the upscaling.
    n_channels : int, default=32
        Channels of each convolution layer.
    upsampling : {"folded", "subpixel", "multistage"}, default="folded"
        Upscaling head, see :class:`~sklearn_smlm.nn.SubPixelCNN`. ``"folded"``
        computes the paper's sub-pixel layer and 1x1 output exactly, faster.
    stages : tuple of int, optional
        Per-stage upscaling factors of the ``"multistage"`` head.
    dropout : float, default=0.0
        Channel dropout between the convolution layers during training.
    max_epochs : int, default=30
        Maximum number of passes over the training frames.
    batch_size : int, default=16
        Frames per optimization step.
    lr : float, default=1e-3
        Learning rate of the Adam optimizer.
    validation_fraction : float, default=0.1
        Fraction of the frames held out (without augmentation) to monitor the
        validation loss, keep the best epoch's weights, stop early and lower
        the learning rate on plateaus. 0 trains on everything for
        ``max_epochs``.
    patience : int, default=8
        Epochs without improvement of the validation loss before stopping;
        the learning rate is halved after ``patience // 2`` such epochs.
    augment : bool, default=True
        Apply a random one of the 8 flips/rotations to every training frame
        and its target at each epoch.
    precision : {"auto", "fp32", "bf16", "bf16-map", "int8"}, default="auto"
        Arithmetic of the convolutions. ``"auto"`` uses bfloat16 autocast
        (``"bf16"``) where the hardware supports it natively (AVX-512/AMX CPUs,
        recent GPUs), else ``"fp32"``; the output layer and the maps stay in
        float32. Two faster prediction settings change the maps, so they are
        opt-in (their Jaccard index on the model matrix:
        ``benchmarks/results/precision.md``): ``"bf16-map"``, the output layer
        in bfloat16 too, and ``"int8"``, the feature layers quantized to int8
        (oneDNN, CPU, folded 2D networks; ranges calibrated on simulated
        frames), the output layer in float32. Training runs ``"bf16-map"`` as
        ``"bf16"`` and ``"int8"`` as ``"fp32"``.
    device : str, default="auto"
        Torch device; ``"auto"`` picks CUDA when present, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialization, the validation split, the batch order,
        dropout and augmentation. The same seed gives the same network on CPU.
    verbose : int, default=0
        0 is silent, 1 prints skorch's table of epochs.

    Attributes
    ----------
    module_ : sklearn_smlm.nn.SubPixelCNN
        The fitted network, all that prediction uses.
    net_ : sklearn_smlm.nn.MapNet
        The skorch net that trains ``module_``; its ``history`` holds the
        losses per epoch. A loaded model builds it on first use (training
        needs it, prediction does not).
    frame_shape_ : tuple of int
        Shape of the training frames.
    device_ : str
        The device used.
    precision_ : str
        ``precision``, with ``"auto"`` resolved to ``"bf16"`` or ``"fp32"``.
    """

    def __init__(
        self,
        *,
        pixel_size_nm=100.0,
        upscaling=7,
        alpha=7.0,
        d_max=35.0,
        z_range_nm=None,
        n_layers=9,
        n_channels=32,
        upsampling="folded",
        stages=None,
        dropout=0.0,
        max_epochs=30,
        batch_size=16,
        lr=1e-3,
        validation_fraction=0.1,
        patience=8,
        augment=True,
        precision="auto",
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.pixel_size_nm = pixel_size_nm
        self.upscaling = upscaling
        self.alpha = alpha
        self.d_max = d_max
        self.z_range_nm = z_range_nm
        self.n_layers = n_layers
        self.n_channels = n_channels
        self.upsampling = upsampling
        self.stages = stages
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.augment = augment
        self.precision = precision
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    @property
    def peak_value(self):
        """Height ``exp(alpha) - 1`` of an isolated emitter's peak in the map."""
        return math.expm1(self.alpha)

    def _module_kwargs(self):
        kwargs = {
            "n_layers": self.n_layers,
            "n_channels": self.n_channels,
            "upscaling": self.upscaling,
            "upsampling": self.upsampling,
            "stages": self.stages,
            "dropout": self.dropout,
        }
        if self.z_range_nm is not None:  # a 3D model: the depth head
            kwargs["predict_z"] = True
        return kwargs

    def _build_net(self, train_split=None, callbacks=(), seed=0):
        import torch
        from skorch.callbacks import EarlyStopping, LRScheduler

        from .nn import DepthMapLoss, MapNet, SubPixelCNN

        kwargs = {f"module__{k}": v for k, v in self._module_kwargs().items()}
        callbacks = list(callbacks)
        if train_split is not None:
            callbacks += [
                (
                    "lr_scheduler",
                    LRScheduler(
                        policy=torch.optim.lr_scheduler.ReduceLROnPlateau,
                        monitor="valid_loss",
                        factor=0.5,
                        patience=max(1, self.patience // 2),
                    ),
                ),
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor="valid_loss", patience=self.patience, load_best=True
                    ),
                ),
            ]
        generator = torch.Generator().manual_seed(seed)
        return MapNet(
            SubPixelCNN,
            criterion=torch.nn.MSELoss if self.z_range_nm is None else DepthMapLoss,
            optimizer=torch.optim.Adam,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=train_split,
            callbacks=callbacks or None,
            iterator_train__shuffle=True,
            iterator_train__generator=generator,
            device=self.device_,
            precision=self.precision_,
            verbose=self.verbose,
            **kwargs,
        )

    def _encode_targets(self, positions, frame_shape):
        # Scaled to a peak of 1 for training and stored as float16: 448 x 448
        # maps of a thousand frames would take 800 MB in float32.
        import torch

        chunks = []
        for start in range(0, len(positions), 64):
            maps = distance_transform_maps(
                positions[start : start + 64],
                frame_shape,
                pixel_size_nm=self.pixel_size_nm,
                upscaling=self.upscaling,
                alpha=self.alpha,
                d_max=self.d_max,
            )
            maps = maps / self.peak_value
            if self.z_range_nm is not None:  # 3D: (n, 3, rH, rW) map, z, weight
                maps = depth_targets(
                    positions[start : start + 64],
                    maps,
                    frame_shape,
                    pixel_size_nm=self.pixel_size_nm,
                    upscaling=self.upscaling,
                    z_range_nm=self.z_range_nm,
                )
            chunks.append(torch.from_numpy(maps).to(torch.float16))
        return torch.cat(chunks)

    def fit(self, X, y):
        """Train the network on frames and their true emitter positions.

        Parameters
        ----------
        X : array-like of shape (n_frames, height, width)
            Normalized frames (see :class:`~sklearn_smlm.FrameNormalizer`).
        y : list of array-like of shape (k_i, 2), or DataFrame
            True ``(x_nm, y_nm)`` positions of every frame.

        Returns
        -------
        self : DistanceTransformRegressor
        """
        return self._fit(X, y, warm_start=False)

    def partial_fit(self, X, y):
        """Continue training the fitted network on more frames.

        The training loop (``max_epochs``, early stopping, learning-rate
        schedule) runs again on all of ``X`` starting from the current
        weights; the validation frames of the first ``fit`` stay the
        reference. This lets a training script feed fresh simulated frames
        chunk after chunk. Without a previous fit it is ``fit``.

        Parameters
        ----------
        X : array-like of shape (n_frames, height, width)
            Normalized frames.
        y : list of array-like of shape (k_i, 2), or DataFrame
            True ``(x_nm, y_nm)`` positions of every frame.

        Returns
        -------
        self : DistanceTransformRegressor
        """
        return self._fit(X, y, warm_start=hasattr(self, "module_"))

    def _fit(self, X, y, warm_start):
        import torch
        from skorch.helper import predefined_split

        from .nn import MapDataset, resolve_precision

        _check_params(self)
        frames = check_frames(X)
        if self.z_range_nm is not None:  # keep z: (x_nm, y_nm, z_nm) per frame
            positions = positions_with_z(y, n_frames=len(frames))
        else:
            positions = check_positions(y, n_frames=len(frames))
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        self.device_ = resolve_device(self.device)
        self.precision_ = resolve_precision(self.precision, self.device_)
        self.frame_shape_ = tuple(frames.shape[1:])

        targets = self._encode_targets(positions, self.frame_shape_)
        frames_t = torch.from_numpy(np.ascontiguousarray(frames))
        # quarter turns swap the x and y widths of an astigmatic PSF (z's sign)
        keep = self.z_range_nm is not None
        if warm_start:
            # More training frames; the validation frames of the first fit stay
            # the reference for early stopping and the learning-rate schedule.
            train = MapDataset(
                frames_t, targets, augment=self.augment, seed=seed, keep_axes=keep
            )
            net = self.net_
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net.set_params(max_epochs=self.max_epochs, lr=self.lr)
                net.partial_fit(train, y=None)
            self.net_ = net
            self.n_epochs_ = len(net.history)
            return self
        order = np.random.default_rng(seed).permutation(len(frames))
        n_valid = int(round(self.validation_fraction * len(frames)))
        if self.validation_fraction > 0 and (n_valid < 1 or n_valid >= len(frames)):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} of {len(frames)} "
                "frame(s) leaves no training or no validation frame; give more frames "
                "or set validation_fraction=0."
            )
        valid_idx = torch.from_numpy(np.sort(order[:n_valid]))
        train_idx = torch.from_numpy(np.sort(order[n_valid:]))
        train = MapDataset(
            frames_t[train_idx],
            targets[train_idx],
            augment=self.augment,
            seed=seed,
            keep_axes=keep,
        )
        split = None
        if n_valid:
            split = predefined_split(
                MapDataset(frames_t[valid_idx], targets[valid_idx], augment=False)
            )

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = self._build_net(train_split=split, seed=seed)
            net.fit(train, y=None)
        self.net_ = net
        self.n_epochs_ = len(net.history)
        return self

    @property
    def net_(self):
        """The skorch net that trains ``module_``, built on first use."""
        net = self.__dict__.get("_net")
        if net is None:
            if "module_" not in self.__dict__:
                raise AttributeError(
                    f"{type(self).__name__!r} object has no attribute 'net_'"
                )
            net = self._net = self._wrap_module()
        elif net.module_ is not self.module_:  # module_ was replaced by hand
            net.module_ = self.module_
            net.initialize_optimizer()
        return net

    @net_.setter
    def net_(self, net):
        self._net = net
        self.module_ = net.module_

    def _wrap_module(self):
        """Build the skorch net around ``module_`` (a loaded model's training)."""
        import torch

        net = self._build_net()
        # initialize() draws a module of its own: keep the global RNG as it was
        with torch.random.fork_rng(devices=[]):
            net.initialize()
        net.module_ = self.module_
        net.initialize_optimizer()
        return net

    def _history(self):
        """Return the skorch history, empty where no net was built (loaded)."""
        net = self.__dict__.get("_net")
        return [] if net is None else net.history

    def transform(self, X, *, batch_size=None):
        """Predict distance-transform maps.

        Parameters
        ----------
        X : array-like of shape (n_frames, height, width)
            Normalized frames, of any size (the network is fully convolutional).
        batch_size : int, optional
            Frames per forward pass; default ``self.batch_size``.

        Returns
        -------
        maps : ndarray of shape (n_frames, r * height, r * width)
            float32 maps on the paper's scale (peaks near ``exp(alpha) - 1``).
        """
        check_is_fitted(self, "module_")
        frames = check_frames(X)
        return np.concatenate(
            list(self._iter_maps(frames, batch_size or self.batch_size))
        )

    def _iter_maps(self, frames, batch_size, *, threshold=None, tta=None):
        """Yield the maps of ``frames`` batch by batch.

        Each batch is a float32 ``(n, r * H, r * W)`` array, or, for the
        folded head, a ``sklearn_smlm._subpixel_maps.SubPixelMaps``
        that holds the head's channels before the pixel shuffle: it is the
        same maps where an array is asked for (``np.asarray``), and its peaks
        are found without assembling them. With a ``threshold`` (prediction)
        the folded 2D head is computed only around the pixels that may hold
        a value above it (``SubPixelCNN.subpixel_channels_above``): the peaks
        above the threshold are the same, bit for bit, but such a batch is
        not the maps (``SubPixelMaps.complete`` is False). With ``tta``
        (``"flips"`` or ``"dihedral"``, see ``sklearn_smlm._dihedral``) the
        maps are the average of the network's maps of the flipped (and
        transposed) frames, each transformed back; the whole head is computed.
        """
        if tta is not None:
            yield from self._iter_averaged_maps(frames, batch_size, tta)
            return
        import torch

        from ._subpixel_maps import SubPixelMaps
        from .nn import autocast

        module = self.module_
        module.eval()
        device = self.device_
        folded = getattr(module, "upsampling", None) == "folded"
        depth = hasattr(module, "z_head")
        precision = self.precision_
        int8 = self._int8_features(frames) if precision == "int8" else None
        # the head only where a peak may be: positive finite thresholds, the
        # float32 head (fp32, bf16), peaks found in windows of one cell
        limit = np.nan if threshold is None else threshold / self.peak_value
        partial = (
            folded
            and not depth
            and precision in ("fp32", "bf16")
            and np.isfinite(limit)
            and limit > 0
        )
        skip_bound = 0
        with torch.inference_mode(), autocast(device, precision), _int8_context(int8):
            for start in range(0, len(frames), batch_size):
                x = torch.from_numpy(
                    np.ascontiguousarray(frames[start : start + batch_size])
                )
                x = x[:, None].to(device).contiguous(memory_format=torch.channels_last)
                if depth:  # 3D: the map's channels and the z map's
                    channels, z = module.subpixel_channels_z(x)
                    maps = SubPixelMaps(
                        _channels_last(channels), self.upscaling, self.peak_value
                    )
                    maps.z_channels = _channels_last(z)
                    yield maps
                    continue
                # dense batches compute the whole head after the bound: after
                # one, skip the bound for the next 7 (same result either way)
                skip_bound = skip_bound - 1 if skip_bound else 0
                if folded and partial and not skip_bound:
                    channels, complete = module.subpixel_channels_above(x, limit)
                    skip_bound = 8 if complete else 0
                    channels = channels.float().permute(0, 2, 3, 1)
                    channels = channels.contiguous().cpu().numpy()
                    maps = SubPixelMaps(channels, self.upscaling, self.peak_value)
                    maps.complete = complete
                    yield maps
                    continue
                if folded:
                    # (n, r^2, H, W) channels-last is (n, H, W, r^2) in memory
                    channels = module.subpixel_channels(
                        x, fp32_head=precision != "bf16-map", features=int8
                    )
                    channels = channels.float().permute(0, 2, 3, 1)
                    channels = channels.contiguous().cpu().numpy()
                    yield SubPixelMaps(channels, self.upscaling, self.peak_value)
                    continue
                maps = module(x)[:, 0].float() * self.peak_value
                yield maps.cpu().numpy()

    def _iter_averaged_maps(self, frames, batch_size, tta):
        """``_iter_maps`` with test-time dihedral averaging (2D models only)."""
        import torch

        from ._dihedral import (
            average_outputs,
            dihedral_transforms,
            transform_frames,
            untransform,
        )
        from ._subpixel_maps import SubPixelMaps
        from .nn import autocast

        module = self.module_
        module.eval()
        device = self.device_
        if hasattr(module, "z_head"):
            raise ValueError(
                "test_time_augmentation needs a 2D model: an astigmatic PSF is "
                "not symmetric under flips and rotations; set it to None."
            )
        folded = getattr(module, "upsampling", None) == "folded"
        precision = self.precision_
        int8 = self._int8_features(frames) if precision == "int8" else None
        r = self.upscaling
        transforms = dihedral_transforms(tta)
        with torch.inference_mode(), autocast(device, precision), _int8_context(int8):
            for start in range(0, len(frames), batch_size):
                x = torch.from_numpy(
                    np.ascontiguousarray(frames[start : start + batch_size])
                )[:, None]
                outputs = []
                for transform in transforms:
                    xt = transform_frames(x, transform).to(device)
                    xt = xt.contiguous(memory_format=torch.channels_last)
                    if folded:
                        channels = module.subpixel_channels(
                            xt, fp32_head=precision != "bf16-map", features=int8
                        )
                        out = untransform(
                            _channels_last(channels), transform, channels=r
                        )
                    else:
                        maps = module(xt)[:, 0].float() * self.peak_value
                        out = untransform(maps.cpu().numpy(), transform)
                    outputs.append(out)
                average = average_outputs(outputs)
                if folded:
                    yield SubPixelMaps(average, r, self.peak_value)
                else:
                    yield average

    def _int8_features(self, frames):
        """Return the int8 copy of the feature layers (``precision="int8"``).

        Cached. Calibrated on ``int8_calibration_`` (normalized frames the localizer
        sets: simulated frames of fixed seeds), else on the first frames
        predicted. Rebuilt when the weights change.
        """
        import torch

        from .nn import quantize_features

        module = self.module_
        if getattr(module, "upsampling", None) != "folded" or hasattr(module, "z_head"):
            raise ValueError(
                "precision='int8' needs a folded 2D network (upsampling='folded', "
                "no z_range_nm); use precision='bf16'."
            )
        if str(self.device_) != "cpu":
            raise ValueError(
                f"precision='int8' runs on the CPU only, not on {self.device_!r}; "
                "use precision='bf16'."
            )
        key = (id(module), sum(p._version for p in module.parameters()))
        cached = self.__dict__.get("_int8_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        calibration = getattr(self, "int8_calibration_", None)
        if calibration is None:
            calibration = frames[:16]
        x = torch.from_numpy(np.ascontiguousarray(calibration, dtype=np.float32))
        features = quantize_features(module.features, x[:, None])
        self._int8_cache = (key, features)
        return features

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.non_deterministic = False
        return tags

    # Persistence of the torch state without pickles, see save_model/load_model.
    def _state(self):
        return {k: v.detach().cpu() for k, v in self.module_.state_dict().items()}


def _int8_context(features):
    """Return the quantized engine's context for int8 features, else nothing."""
    import contextlib

    from .nn import int8_inference

    return contextlib.nullcontext() if features is None else int8_inference()


def _channels_last(channels):
    """(n, c, H, W) tensor to a contiguous float32 (n, H, W, c) numpy array."""
    return channels.float().permute(0, 2, 3, 1).contiguous().cpu().numpy()


class DistanceTransformLocalizer(BaseEstimator):
    """Localize emitters with the super-resolution CNN of Yee, Hagen & Ventura.

    Frames are normalized (:class:`~sklearn_smlm.FrameNormalizer`), a
    convolutional network with a sub-pixel upscaling layer regresses a
    distance-transform map ``upscaling`` times finer than the camera, and the
    local maxima of the map above ``threshold``, refined with a quadratic fit,
    are the localizations (:class:`~sklearn_smlm.PeakExtractor`).

    Parameters
    ----------
    normalizer : FrameNormalizer, optional
        Preprocessing of the camera frames; default ``FrameNormalizer()``
        (robust per-frame background and scale, which makes a model work
        across camera gains and offsets). Pass one with ``baseline_adu`` and
        gains to convert to photons first.
    threshold : float, default=300.0
        Detection threshold on the map (the paper: 300 for alpha = 7, whose
        peaks are about 1096 high).
    min_distance : int, default=1
        Half-size, in map pixels, of the neighbourhood a peak must dominate.
    min_frame_snr : float, optional
        Drop every detection of a frame whose raw pixels hold no spot of
        this signal-to-noise ratio (ThunderSTORM's wavelet detector, in units
        of the frame's own noise): the network, whose frame normalization
        stretches an empty frame's noise, then reports nothing there. The
        shipped models use 6 (pure background: 0.004-0.006 false detections
        per um^2 per frame before, 0-0.0001 after; no Jaccard change in any
        cell of ``benchmarks/bench_models.py``). ``None`` keeps every
        detection.
    duplicate_radius_nm : float, optional
        In frames with fewer than 0.5 detections per um^2, of two detections
        closer than this keep only the higher score: there two true emitters
        that close are rare, and a defocused spot reported twice is the
        commonest false detection. ``None`` keeps every detection.
    edge_threshold : float, optional
        Least score of a detection closer than half a pixel to the frame's
        edge, where emitters just outside the field, whose light spills in,
        are reported (``threshold`` applies elsewhere). ``None``: no extra
        test.
    sparse_score_fraction : float, optional
        In frames with fewer than 0.5 detections per um^2, drop detections
        scoring below this fraction of the median score of the call's (or
        chunk's) detections: noise peaks and partial spots, where true
        emitters are whole, isolated spots. ``None``: no extra test.
    thick_edge_threshold : float, optional
        ``edge_threshold`` for sparse chunks of a thick sample only (fewer
        than 0.5 detections per um^2 per frame, and spot widths that spread
        as in a 1.5 um slab; a test of about 20-60 ms per call or chunk),
        where weak edge detections are mostly defocused emitters outside
        the field. ``None``: no such test.
    test_time_augmentation : {"flips", "dihedral"}, optional
        Average the maps of the network run on transformed copies of each
        frame, each transformed back (the map is aligned with the pixel
        grid, so the inverse is exact): ``"flips"`` the 4 flips (4x the
        network's time), ``"dihedral"`` also their transposes, the 8
        symmetries of the square (8x). A rotated frame then gives the
        rotated localizations. 2D models only. ``None``: one pass. See
        :ref:`test-time-augmentation` for what it gives.
    refiner : GaussianFitLocalizer, optional
        Hybrid mode: every CNN detection is refined by a Gaussian fit on the
        raw pixels (jointly with its neighbours where spots overlap, see
        :meth:`~sklearn_smlm.GaussianFitLocalizer.refine`), which adds
        ``photons``, ``background``, ``sigma_nm`` and ``uncertainty_nm``. Give
        it the camera's ``baseline_adu``, ``e_per_adu`` and ``em_gain``. This
        keeps the network's recall at high density and adds the precision of
        a fit on sparse spots.
    camera : Camera, optional
        The camera of the frames to localize; set it, also on a fitted or
        loaded localizer (``set_params(camera=...)``), to convert ADU to
        photons before the normalizer (which then uses this camera instead of
        its own) and to give the ``refiner`` the same camera. None keeps the
        fitted normalizer's conversion.
    pixel_size_nm, upscaling, alpha, d_max, z_range_nm, n_layers, n_channels, \
upsampling, stages, dropout, max_epochs, batch_size, lr, validation_fraction, \
patience, augment, precision, device, random_state, verbose
        As in :class:`DistanceTransformRegressor`.

    Attributes
    ----------
    normalizer_ : FrameNormalizer
        The fitted normalizer.
    regressor_ : DistanceTransformRegressor
        The fitted network step.
    net_ : sklearn_smlm.nn.MapNet
        The skorch net (``regressor_.net_``); a loaded model builds it on
        first use.
    frame_shape_ : tuple of int
        Shape of the training frames.

    Examples
    --------
    >>> from sklearn_smlm import DistanceTransformLocalizer, PAFPSimulator
    >>> X, y = PAFPSimulator(frame_shape=(16, 16), random_state=0).simulate(8)
    >>> loc = DistanceTransformLocalizer(n_layers=2, n_channels=8, max_epochs=1,
    ...                                  validation_fraction=0, random_state=0)
    >>> table = loc.fit(X, y).predict(X)
    >>> list(table.columns)  # photons and uncertainty from the raw pixels
    ['frame', 'x_nm', 'y_nm', 'score', 'photons', 'background', 'uncertainty_nm']
    """

    def __init__(
        self,
        *,
        normalizer=None,
        threshold=300.0,
        min_distance=1,
        min_frame_snr=None,
        duplicate_radius_nm=None,
        edge_threshold=None,
        sparse_score_fraction=None,
        thick_edge_threshold=None,
        test_time_augmentation=None,
        refiner=None,
        camera=None,
        pixel_size_nm=100.0,
        upscaling=7,
        alpha=7.0,
        d_max=35.0,
        z_range_nm=None,
        n_layers=9,
        n_channels=32,
        upsampling="folded",
        stages=None,
        dropout=0.0,
        max_epochs=30,
        batch_size=16,
        lr=1e-3,
        validation_fraction=0.1,
        patience=8,
        augment=True,
        precision="auto",
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.normalizer = normalizer
        self.threshold = threshold
        self.min_distance = min_distance
        self.min_frame_snr = min_frame_snr
        self.duplicate_radius_nm = duplicate_radius_nm
        self.edge_threshold = edge_threshold
        self.sparse_score_fraction = sparse_score_fraction
        self.thick_edge_threshold = thick_edge_threshold
        self.test_time_augmentation = test_time_augmentation
        self.refiner = refiner
        self.camera = camera
        self.pixel_size_nm = pixel_size_nm
        self.upscaling = upscaling
        self.alpha = alpha
        self.d_max = d_max
        self.z_range_nm = z_range_nm
        self.n_layers = n_layers
        self.n_channels = n_channels
        self.upsampling = upsampling
        self.stages = stages
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.augment = augment
        self.precision = precision
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    _REGRESSOR_PARAMS = tuple(
        DistanceTransformRegressor().get_params(deep=False).keys()
    )

    def _make_regressor(self):
        return DistanceTransformRegressor(
            **{k: getattr(self, k) for k in self._REGRESSOR_PARAMS}
        )

    def _check_threshold(self):
        check_real(self.threshold, "threshold")

    def _check_targets(self, y, n_frames):
        if self.z_range_nm is not None:  # a 3D model learns z: keep it
            return positions_with_z(y, n_frames=n_frames)
        return check_positions(y, n_frames=n_frames)

    def fit(self, X, y):
        """Train the network on frames and their true emitter positions.

        Parameters
        ----------
        X : array-like of shape (n_frames, height, width)
            Camera frames (ADU), e.g. from :class:`~sklearn_smlm.PAFPSimulator`.
        y : list of array-like of shape (k_i, 2), or DataFrame
            True ``(x_nm, y_nm)`` positions, one array per frame (or a
            localization table with 0-based frames).

        Returns
        -------
        self : DistanceTransformLocalizer
        """
        self._check_threshold()
        self._check_tta()
        frames = check_frames(X)
        positions = self._check_targets(y, len(frames))
        self.normalizer_ = clone(self.normalizer or FrameNormalizer()).fit(frames)
        self.regressor_ = self._make_regressor().fit(
            self.normalizer_.transform(frames), positions
        )
        self._copy_fitted()
        return self

    def partial_fit(self, X, y):
        """Continue training on more frames.

        See :meth:`DistanceTransformRegressor.partial_fit`; the normalizer of
        the first fit is kept.

        Parameters
        ----------
        X : array-like of shape (n_frames, height, width)
            Camera frames.
        y : list of array-like of shape (k_i, 2), or DataFrame
            True ``(x_nm, y_nm)`` positions of every frame.

        Returns
        -------
        self : DistanceTransformLocalizer
        """
        if not hasattr(self, "regressor_"):
            return self.fit(X, y)
        frames = check_frames(X)
        positions = self._check_targets(y, len(frames))
        self.regressor_.set_params(
            **{k: getattr(self, k) for k in ("max_epochs", "lr", "verbose")}
        )
        self.regressor_.partial_fit(self.normalizer_.transform(frames), positions)
        self._copy_fitted()
        return self

    def _copy_fitted(self):
        self.frame_shape_ = self.regressor_.frame_shape_

    @property
    def net_(self):
        """The skorch net of ``regressor_``, built on first use."""
        if "regressor_" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute 'net_'"
            )
        return self.regressor_.net_

    @net_.setter
    def net_(self, net):
        self.regressor_.net_ = net

    def _sync_regressor(self):
        # Parameters that only matter at prediction time (device, precision)
        # may be changed on a fitted localizer, by hand or by GridSearchCV,
        # without refitting.
        from .nn import resolve_precision

        reg = self.regressor_
        device = resolve_device(self.device)
        if device != reg.device_:
            reg.module_.to(device)
            reg.device_ = device
        reg.precision_ = resolve_precision(self.precision, device)

    def predict_maps(self, X, *, batch_size=None, normalized=False):
        """Return the predicted distance-transform maps of camera frames.

        The first two steps of :meth:`predict`: :attr:`normalizer_` then the
        network. :meth:`localize_maps` is the third.

        Parameters
        ----------
        X : array-like of shape (n_frames, height, width)
            Camera frames (or normalized frames, see ``normalized``).
        batch_size : int, optional
            Frames per forward pass; default :meth:`prediction_batch_size`,
            the batches of :meth:`predict` (so the maps are bit for bit those
            that :meth:`predict` localizes).
        normalized : bool, default=False
            ``X`` is already normalized by :attr:`normalizer_` (e.g. tiles
            cut from normalized frames); skip the normalizer.

        Returns
        -------
        maps : ndarray of shape (n_frames, r * height, r * width)
            float32, ``r = upscaling``.
        """
        check_is_fitted(self, "regressor_")
        frames = check_frames(X)
        batches = self._iter_maps(frames, batch_size, normalized=normalized)
        return np.concatenate(list(batches))

    def localize_maps(self, maps, *, frames=None, frame_offset=0):
        """Localizations of predicted maps: peaks, positions in nm, refinement.

        The last step of :meth:`predict`: local maxima of the maps above
        ``threshold`` (:func:`~sklearn_smlm.peaks.find_peaks`, refined),
        converted to nanometres with ``upscaling`` and ``pixel_size_nm``, then,
        with a ``refiner`` and ``frames``, refined by Gaussian fits
        (:meth:`refine`).

        Parameters
        ----------
        maps : ndarray of shape (n_frames, r * height, r * width)
            Maps from :meth:`predict_maps`.
        frames : ndarray of shape (n_frames, height, width), optional
            The camera frames of the maps; needed for the hybrid refinement.
        frame_offset : int, default=0
            Number of the first map's frame in the table.

        Returns
        -------
        localizations : pandas.DataFrame
            As :meth:`predict` returns them.
        """
        check_is_fitted(self, "regressor_")
        self._check_threshold()
        table = columns_to_localizations([self._peak_columns(maps, 0)])
        if self.z_range_nm is not None:
            table = with_z_column(table)
        if frames is not None:
            table = self.refine(frames, table)
        table["frame"] += np.int64(frame_offset)
        return table

    def predict(self, X, *, batch_size=None, frame_offset=0):
        """Localize the emitters of camera frames.

        Parameters
        ----------
        X : array-like of shape (n_frames, height, width), or TiffStack
            Camera frames; a 2-D array is one frame. A
            :class:`~sklearn_smlm.io.TiffStack` is streamed through
            :meth:`iter_predict`.
        batch_size : int, optional
            Frames per forward pass; default :meth:`prediction_batch_size`:
            ``self.batch_size``, fewer for large frames so that a batch of
            maps stays near 32 MB.
        frame_offset : int, default=0
            Number of the first frame in the table (for a chunk of a longer
            stack: the chunk's first frame in the stack).

        Returns
        -------
        localizations : pandas.DataFrame
            Columns ``frame`` (0-based index into ``X``, plus
            ``frame_offset``), ``x_nm``, ``y_nm`` and ``score`` (the map height
            at the peak). No detection gives an empty table with these
            columns.
        """
        check_is_fitted(self, "regressor_")
        self._check_threshold()
        frame_offset = check_int(frame_offset, "frame_offset", low=0)
        if hasattr(X, "iter_chunks"):  # a TiffStack: stream it
            tables = list(self.iter_predict(X, batch_size=batch_size))
            table = pd.concat(tables, ignore_index=True)
            table["frame"] += np.int64(frame_offset)
            return table
        frames = check_frames(X)
        table = self._predict_frames(
            frames, batch_size=batch_size, frame_offset=frame_offset
        )
        if frame_offset == 0:  # data outside the model's range: one warning
            check_and_warn(self, frames, table)
            if self.z_range_nm is not None:  # a 3D model: astigmatic frames?
                check_depth_and_warn(self, frames)
        return table

    def iter_predict(self, frames, *, chunk_size=256, batch_size=None):
        """Localize a stack chunk by chunk, with memory bounded by the chunk.

        Parameters
        ----------
        frames : ndarray, TiffStack or sequence of frames
            Anything with ``len`` and slicing along the first axis (a numpy
            memory map, a :class:`~sklearn_smlm.io.TiffStack`, a zarr or dask
            array), or an object with ``iter_chunks(chunk_size)`` yielding
            ``(start_frame, chunk)`` pairs.
        chunk_size : int, default=256
            Frames read and localized at a time.
        batch_size : int, optional
            Frames per forward pass.

        Yields
        ------
        table : pandas.DataFrame
            The localizations of one chunk; ``frame`` numbers are global
            (0-based in the whole stack).
        """
        check_is_fitted(self, "regressor_")
        self._check_threshold()
        check_chunk_size(chunk_size)

        checked = []

        def predict_chunk(chunk, start):
            table = self._predict_frames(
                chunk, batch_size=batch_size, frame_offset=start
            )
            if not checked:  # the first chunk only: one warning at most
                checked.append(start)
                check_and_warn(self, chunk, table, frame_offset=start, stacklevel=5)
                if self.z_range_nm is not None:
                    check_depth_and_warn(self, chunk, stacklevel=5)
            return table

        yield from iter_chunk_tables(predict_chunk, frames, chunk_size)

    def _predict_frames(self, frames, *, batch_size=None, frame_offset=0):
        if self.refiner is not None and not hasattr(self.refiner, "refine"):
            raise TypeError(
                "refiner must be a GaussianFitLocalizer (an object with a "
                f"refine(X, table) method), got {type(self.refiner).__name__}."
            )
        if self.refiner is not None and self.z_range_nm is not None:
            raise ValueError(
                "a 3D model (z_range_nm set) has no hybrid mode: the refiner's "
                "Gaussian fits are 2D; set refiner=None."
            )
        if batch_size is None:
            batch_size = self.prediction_batch_size(frames.shape[1:])
        # plain arrays per batch and one DataFrame at the end (see
        # columns_to_localizations: per-batch DataFrames made the heap grow)
        parts = [
            self._peak_columns(maps, i * batch_size)
            for i, maps in enumerate(
                self._iter_maps(frames, batch_size, threshold=self._head_threshold())
            )
        ]
        table = columns_to_localizations(parts)
        if self.z_range_nm is not None:  # an empty table of a 3D model too
            table = with_z_column(table)
        table = drop_noise_frames(frames, table, self.min_frame_snr)
        table = decide_detections(
            table,
            frame_shape=frames.shape[1:3],
            pixel_size_nm=self.pixel_size_nm,
            duplicate_radius_nm=self.duplicate_radius_nm,
            edge_threshold=self.edge_threshold,
            sparse_score_fraction=self.sparse_score_fraction,
        )
        table = drop_thick_edge_spill(
            frames, table, self.thick_edge_threshold, pixel_size_nm=self.pixel_size_nm
        )
        table = self.refine(frames, table)
        table["frame"] += frame_offset
        return table

    def _iter_maps(self, frames, batch_size, *, normalized=False, threshold=None):
        """Yield the maps of checked frames batch by batch, on the current device.

        ``threshold``: the batches need only be right around values above it
        (the regressor's ``_iter_maps``); :meth:`predict_maps` passes none.
        """
        self._sync_regressor()
        if batch_size is None:
            batch_size = self.prediction_batch_size(frames.shape[1:])
        if not normalized:
            frames = self._prediction_normalizer().transform(frames)
        reg = self.regressor_
        if reg.precision_ == "int8" and "int8_calibration_" not in reg.__dict__:
            reg.int8_calibration_ = self._int8_calibration_frames()
        tta = self._check_tta()
        return reg._iter_maps(frames, batch_size, threshold=threshold, tta=tta)

    def _check_tta(self):
        """Return the checked ``test_time_augmentation`` (None or an option)."""
        from ._dihedral import TTA_OPTIONS

        tta = self.test_time_augmentation
        if tta is None:
            return None
        check_option(tta, "test_time_augmentation", TTA_OPTIONS)
        if self.z_range_nm is not None:
            raise ValueError(
                "test_time_augmentation needs a 2D model: an astigmatic PSF is "
                "not symmetric under flips and rotations; set it to None."
            )
        return tta

    def _int8_calibration_frames(self):
        """Return normalized simulated frames that set ``precision="int8"``'s ranges.

        Fixed seeds, so that int8 predictions do not depend on the frames
        predicted first: 8 frames of 64 x 64 each at 0.3, 2 and 6 emitters
        per um^2, at the model's pixel size.
        """
        from .simulation import PAFPSimulator

        frames = [
            PAFPSimulator(
                frame_shape=(64, 64),
                pixel_size_nm=self.pixel_size_nm,
                density_per_um2=density,
                random_state=seed,
            ).simulate(8)[0]
            for seed, density in enumerate((0.3, 2.0, 6.0))
        ]
        return self.normalizer_.transform(np.concatenate(frames))

    def _head_threshold(self):
        """Return the threshold below which predict's maps need not be computed.

        None (compute them all) where the peak finder's neighbourhood reaches
        past the neighbour camera pixels (``min_distance > upscaling``).
        """
        return self.threshold if self.min_distance <= self.upscaling else None

    def _prediction_normalizer(self):
        """Return the fitted normalizer, with ``camera`` when one is set."""
        if self.camera is None:
            return self.normalizer_
        if "camera" not in self.normalizer_.get_params():
            raise TypeError(
                f"camera needs a normalizer with a camera parameter (such as "
                f"FrameNormalizer), got {type(self.normalizer_).__name__}."
            )
        params = dict.fromkeys(("baseline_adu", "e_per_adu", "em_gain"))
        params.update(quantum_efficiency=None, camera=self.camera)
        return clone(self.normalizer_).set_params(**params)

    def _peak_columns(self, maps, frame_offset):
        columns = localization_columns(
            maps,
            self.threshold,
            upscaling=self.upscaling,
            pixel_size_nm=self.pixel_size_nm,
            frame_offset=frame_offset,
            min_distance=self.min_distance,
            refine="auto",
        )
        if getattr(maps, "z_channels", None) is not None:  # a 3D model
            columns = add_z_column(
                columns,
                maps.z_channels,
                frame_offset,
                self.z_range_nm,
                upscaling=self.upscaling,
                pixel_size_nm=self.pixel_size_nm,
            )
        return columns

    def prediction_batch_size(self, frame_shape):
        """Frames per forward pass when none is given.

        At most ``batch_size`` (16 frames of 64 x 64 ran fastest on a 2-core
        AVX-512 CPU: 547 frames/s against 449 for 32, bf16, end to end), and
        few enough that a batch of maps stays near 32 MB of float32: 2 frames
        of 256 x 256 at r = 7. Chunked, tiled and parallel prediction use the
        same rule so that their batches, and so their float rounding, are
        those of ``predict``.

        Parameters
        ----------
        frame_shape : tuple of int
            ``(height, width)`` of the frames (or tiles).

        Returns
        -------
        batch_size : int
        """
        map_pixels = int(frame_shape[0]) * int(frame_shape[1]) * self.upscaling**2
        return max(1, min(self.batch_size, 2**23 // map_pixels))

    def refine(self, frames, table):
        """Refine detections with the ``refiner`` (hybrid mode); else return them.

        Parameters
        ----------
        frames : ndarray of shape (n_frames, height, width)
            The camera frames of the detections (``frame`` indexes them).
        table : pandas.DataFrame
            Detections, e.g. from :meth:`localize_maps`.

        Returns
        -------
        table : pandas.DataFrame
            ``table`` without a refiner, else the refined table (see
            :meth:`~sklearn_smlm.GaussianFitLocalizer.refine`), with
            ``photons``, ``background`` and ``uncertainty_nm`` on every row:
            the fit's where a fit was kept, else a calibrated estimate
            (:func:`~sklearn_smlm.fitting.estimate_uncertainty`).
        """
        if self.refiner is not None:
            table = self._refine_with_fits(frames, table)
        # photons, background and uncertainty_nm on every row (issue 16)
        return add_localizer_uncertainty(self, frames, table)

    def _refine_with_fits(self, frames, table):
        refiner = self.refiner
        if self.camera is not None and refiner.get_params().get("camera") is None:
            refiner = clone(refiner).set_params(camera=self.camera)
        if refiner.get_params().get("pixel_size_nm") != self.pixel_size_nm:
            refiner = clone(refiner).set_params(pixel_size_nm=self.pixel_size_nm)
        if not hasattr(refiner, "e_per_count_"):
            refiner = clone(refiner).fit()
        return refiner.refine(frames, table)

    def score(self, X, y, *, tolerance_nm=250.0):
        """Jaccard index of the localizations of ``X`` against ``y``.

        Parameters
        ----------
        X : array-like of shape (n_frames, height, width)
            Camera frames.
        y : list of array-like of shape (k_i, 2), or DataFrame
            True positions.
        tolerance_nm : float, default=250.0
            Matching radius (optimal one-to-one assignment per frame).

        Returns
        -------
        jaccard : float
        """
        from .metrics import jaccard_index

        frames = check_frames(X)
        positions = check_positions(y, n_frames=len(frames))
        return jaccard_index(positions, self.predict(frames), tolerance_nm=tolerance_nm)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    # ------------------------------------------------------------------ files
    def save(self, path):
        """Save the fitted localizer as tensors plus JSON metadata.

        The file holds no pickled Python objects: :func:`load_model` reads it
        with ``torch.load(weights_only=True)`` and checks a SHA-256 checksum of
        the metadata and the weights, so an altered file is refused.

        Parameters
        ----------
        path : str or path-like
            Destination, conventionally ``*.pt``. Written atomically: a failure
            leaves no partial file.
        """
        check_is_fitted(self, "regressor_")
        return save_model(self, path)

    @classmethod
    def load(cls, path, *, device="auto"):
        """Load a localizer saved by :meth:`save` (see :func:`load_model`).

        Parameters
        ----------
        path : str or path-like
            The model file.
        device : str, default="auto"
            Device to place the network on.

        Returns
        -------
        localizer : DistanceTransformLocalizer
            A fitted localizer.
        """
        return load_model(path, device=device)

    @classmethod
    def pretrained(cls, name="default", *, device="auto", frames=None):
        """Return the pretrained localizer shipped inside the package.

        Parameters
        ----------
        name : str, default="default"
            Name of the shipped model; ``"default"`` was trained only on
            :class:`~sklearn_smlm.PAFPSimulator` frames of 100 nm pixels over
            a wide range of densities, PSF widths, SNRs and camera settings
            (see ``scripts/train_pretrained.py`` and the model card in the
            docs). ``"auto"``: the shipped model that fits ``frames``
            (:func:`~sklearn_smlm.choose_pretrained`).
        device : str, default="auto"
            Torch device to load it on.
        frames : array-like of shape (n_frames, height, width), optional
            The first frames of the data, for ``name="auto"``.

        Returns
        -------
        localizer : DistanceTransformLocalizer
            A fitted localizer, ready to ``predict``.
        """
        if name == "auto":
            if frames is None:
                raise ValueError("pretrained('auto') needs frames=: the data's frames.")
            name = choose_pretrained(check_frames(frames), device=device)[0]
        return pretrained(name, device=device)
