"""Torch modules of the super-resolution localization network."""

import math

import torch
from torch import nn

__all__ = ["DepthMapLoss", "SubPixelCNN", "fold_subpixel_head"]

_UPSAMPLINGS = ("subpixel", "folded", "multistage")


class SubPixelCNN(nn.Module):
    """Convolutional network with sub-pixel upscaling (Yee, Hagen & Ventura).

    ``n_layers`` 3x3 convolutions with ReLU extract features at camera
    resolution; a sub-pixel convolution (Shi et al. 2016) then upsamples by
    ``upscaling`` and a final layer regresses one output channel, the
    distance-transform map at ``upscaling`` times the camera resolution.

    Parameters
    ----------
    n_layers : int, default=9
        Number of 3x3 convolutions of the feature extractor.
    n_channels : int, default=32
        Width of the feature extractor.
    upscaling : int, default=7
        Total upscaling factor ``r`` of the output map.
    upsampling : {"subpixel", "folded", "multistage"}, default="folded"
        ``"subpixel"`` is the paper's head: a 3x3 convolution to
        ``n_channels * r**2`` channels, a pixel shuffle and a 1x1 convolution.
        ``"folded"`` is the same function with the 1x1 convolution folded into
        the 3x3 one (``r**2`` output channels, about 6x fewer operations; see
        :func:`fold_subpixel_head`). ``"multistage"`` follows the paper's future
        work: several stages, each a 3x3 convolution, a pixel shuffle and a
        ReLU, then a 3x3 convolution to one channel.
    stages : sequence of int, optional
        Upscaling factor of each stage for ``upsampling="multistage"``; their
        product must equal ``upscaling``. Default: the prime factors of
        ``upscaling``.
    dropout : float, default=0.0
        Probability of the channel dropout applied after every feature layer
        past the first (only active in training).
    in_channels : int, default=1
        Number of input channels.
    predict_z : bool, default=False
        Add a depth head (folded head only): a 3x3 convolution with ReLU and
        a 3x3 convolution to ``r**2`` channels beside the map's, a z map at
        the map's resolution (see :meth:`subpixel_channels_z`). ``forward``
        and the map are unchanged; a network without it has no such weights.
    """

    def __init__(
        self,
        n_layers=9,
        n_channels=32,
        upscaling=7,
        upsampling="folded",
        stages=None,
        dropout=0.0,
        in_channels=1,
        predict_z=False,
    ):
        super().__init__()
        if upsampling not in _UPSAMPLINGS:
            raise ValueError(
                f"upsampling must be one of {_UPSAMPLINGS}, got {upsampling!r}."
            )
        if n_layers < 1 or n_channels < 1 or upscaling < 1:
            raise ValueError("n_layers, n_channels and upscaling must be >= 1.")
        self.upscaling = upscaling
        self.upsampling = upsampling
        layers = []
        for i in range(n_layers):
            layers.append(
                nn.Conv2d(
                    in_channels if i == 0 else n_channels, n_channels, 3, padding=1
                )
            )
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0 and i > 0:
                layers.append(nn.Dropout2d(dropout))
        self.features = nn.Sequential(*layers)
        r2 = upscaling**2
        if upsampling == "subpixel":
            self.upsample = nn.Sequential(
                nn.Conv2d(n_channels, n_channels * r2, 3, padding=1),
                nn.PixelShuffle(upscaling),
            )
            self.head = nn.Conv2d(n_channels, 1, 1)
        elif upsampling == "folded":
            self.upsample = nn.Identity()
            self.head = nn.Sequential(
                nn.Conv2d(n_channels, r2, 3, padding=1), nn.PixelShuffle(upscaling)
            )
        else:
            stages = tuple(stages) if stages is not None else _prime_factors(upscaling)
            if math.prod(stages) != upscaling:
                raise ValueError(
                    f"the product of stages {stages} must equal upscaling={upscaling}."
                )
            blocks = []
            for s in stages:
                blocks += [
                    nn.Conv2d(n_channels, n_channels * s * s, 3, padding=1),
                    nn.PixelShuffle(s),
                    nn.ReLU(inplace=True),
                ]
            self.upsample = nn.Sequential(*blocks)
            self.head = nn.Conv2d(n_channels, 1, 3, padding=1)
        if predict_z:
            if upsampling != "folded":
                raise ValueError("predict_z needs upsampling='folded'.")
            self.z_head = nn.Sequential(
                nn.Conv2d(n_channels, n_channels, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(n_channels, r2, 3, padding=1),
            )

    def forward(self, x):
        """Map frames (n, c, H, W) to maps (n, 1, r * H, r * W).

        With ``predict_z=True``: (n, 2, r * H, r * W), the map and the z map.
        """
        if hasattr(self, "z_head"):
            shuffle = self.head[1]
            return torch.cat([shuffle(c) for c in self.subpixel_channels_z(x)], 1)
        if self.upsampling == "folded":
            return self.head[1](self.subpixel_channels(x))
        x = self.upsample(self.features(x))
        if torch.is_autocast_enabled(x.device.type):
            # The map stays in float32: a bf16 map is quantized in steps of about
            # 0.4 % of the peak, which turns maxima into plateaus and duplicates
            # detections (method.md, section 10).
            with torch.autocast(x.device.type, enabled=False):
                return self.head(x.float())
        return self.head(x)

    def subpixel_channels(self, x, *, fp32_head=True, features=None):
        """Return the folded head's ``r**2`` channels, before the pixel shuffle.

        Only for ``upsampling="folded"``: ``forward(x)`` is the pixel shuffle
        of this ``(n, r**2, H, W)`` float32 output. Peaks can be found on it
        without building the map (``sklearn_smlm._subpixel_maps.SubPixelMaps``).

        Parameters
        ----------
        x : torch.Tensor of shape (n, c, H, W)
            Frames.
        fp32_head : bool, default=True
            Under autocast, run the head in float32 all the same (the map's
            precision); False leaves it to autocast (``precision="bf16-map"``).
        features : torch.nn.Module, optional
            Feature layers to use instead of ``self.features`` (an int8 copy,
            ``precision="int8"``).
        """
        if self.upsampling != "folded":
            raise ValueError(
                f"subpixel_channels needs the folded head, not {self.upsampling!r}."
            )
        x = self.upsample((self.features if features is None else features)(x))
        conv = self.head[0]
        if not fp32_head:
            return conv(x).float()
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return conv(x.float())
        return conv(x)

    def subpixel_channels_above(self, x, limit, *, tile=4, max_fraction=0.12):
        """:meth:`subpixel_channels` where a channel may exceed ``limit``, else 0.

        The head is a 3x3 convolution of non-negative (ReLU) features, so a
        camera pixel's channels are at most ``max_k bias_k + sum_i w+_i f_i``,
        with ``w+_i`` the largest positive weight of input ``i`` over the
        channels: one cheap bound per pixel. The head is then computed only
        on tiles of ``tile`` x ``tile`` pixels that hold a pixel whose bound
        reaches ``limit`` or a neighbour of one (all tiles in one call, each
        with its one-pixel margin of features), which gives values identical,
        bit for bit, to the whole frame's convolution on this CPU (checked by
        the tests). Elsewhere the channels are 0. Peaks above ``limit`` and
        everything the peak finder reads around them are therefore those of
        :meth:`subpixel_channels`; the other values are not.

        Parameters
        ----------
        x : torch.Tensor of shape (n, c, H, W)
            Frames (channels-last).
        limit : float
            Positive channel value that matters (``threshold / scale``).
        tile : int, default=4
            Tile side, in camera pixels.
        max_fraction : float, default=0.12
            Above this fraction of pixels whose bound reaches ``limit`` the
            whole head is computed (dense frames).

        Returns
        -------
        channels : torch.Tensor of shape (n, r**2, H, W)
            float32.
        complete : bool
            True where every channel was computed (then it equals
            :meth:`subpixel_channels`).
        """
        import torch.nn.functional as F

        if self.upsampling != "folded":
            raise ValueError(
                f"subpixel_channels_above needs the folded head, not "
                f"{self.upsampling!r}."
            )
        raw = self.features(x)
        conv = self.head[0]
        with torch.autocast(x.device.type, enabled=False):
            n, c, h, w = raw.shape
            positive = conv.weight.float().clamp_min(0).amax(0)  # (c, 3, 3)
            taps = positive.permute(1, 2, 0).reshape(9, c)
            # the bound as 9 per-tap sums of the features (in their own
            # precision, bf16 weights rounded up), shifted and added
            taps = (taps * (1 + 2**-7)).to(raw.dtype)
            per_tap = (raw.permute(0, 2, 3, 1).reshape(-1, c) @ taps.T).float()
            per_tap = F.pad(per_tap.view(n, h, w, 9).permute(0, 3, 1, 2), (1, 1) * 2)
            bound = per_tap[:, 0, :h, :w].clone()
            for k in range(1, 9):
                dy, dx = divmod(k, 3)
                bound += per_tap[:, k, dy : dy + h, dx : dx + w]
            # a wide margin for the rounding (bf16 sums: 2**-8 relative);
            # extra pixels cost time only
            bound = bound * (1 + 2**-6) + 1e-3 + conv.bias.float().max()
            wanted = bound >= limit
            features = raw.float()
            if not bool(torch.isfinite(bound).all()) or (
                float(wanted.float().mean()) > max_fraction
            ):
                return conv(features), True
            # the wanted pixels and their neighbours (the peak finder's windows)
            near = F.max_pool2d(wanted[:, None].float(), 3, 1, 1)[:, 0] > 0
            th, tw = -(-h // tile), -(-w // tile)
            grid = F.pad(near, (0, tw * tile - w, 0, th * tile - h))
            grid = grid.view(n, th, tile, tw, tile).any(4).any(2)
            frame, ty, tx = torch.nonzero(grid, as_tuple=True)
            # channels-last (n, H, W, r2) memory, in whole tiles
            full = features.new_zeros((n, th * tile, tw * tile, conv.out_channels))
            channels = full[:, :h, :w].permute(0, 3, 1, 2)
            if not len(frame):
                return channels, False
            # zero margins as the convolution's padding, and up to whole tiles
            padded = F.pad(features, (1, tw * tile - w + 1, 1, th * tile - h + 1))
            span = torch.arange(tile + 2, device=x.device)
            rows = (ty * tile)[:, None] + span  # (k, tile + 2)
            cols = (tx * tile)[:, None] + span
            crops = padded[
                frame[:, None, None], :, rows[:, :, None], cols[:, None, :]
            ]  # (k, tile + 2, tile + 2, c)
            # as many tiles as a power of two (zero tiles added): few distinct
            # shapes, so the convolution library's cache of kernels per shape
            # (about 2.5 MB each) stays small over a long stack
            k = len(frame)
            crops = F.pad(crops, (0, 0, 0, 0, 0, 0, 0, (1 << (k - 1).bit_length()) - k))
            crops = crops.permute(0, 3, 1, 2).contiguous(
                memory_format=torch.channels_last
            )
            out = F.conv2d(crops, conv.weight, conv.bias)[:k]  # (k, r2, tile, tile)
            full.view(n, th, tile, tw, tile, -1)[frame, ty, :, tx] = out.permute(
                0, 2, 3, 1
            )
            return channels, False

    def subpixel_channels_z(self, x):
        """Return the folded head's channels and the depth head's, (n, r**2, H, W).

        Only for a network built with ``predict_z=True``: one pass of the
        feature layers feeds both heads. The first output is
        :meth:`subpixel_channels`; the second holds the z map's channels in
        the same layout (channel ``a r + b`` of camera pixel ``(i, j)`` is map
        pixel ``(r i + a, r j + b)``), on the normalized depth scale the
        network was trained on. Both are float32.
        """
        if not hasattr(self, "z_head"):
            raise ValueError("subpixel_channels_z needs a network with predict_z=True.")
        features = self.features(x)
        conv = self.head[0]
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                features = features.float()
                return conv(features), self.z_head(features)
        return conv(features), self.z_head(features)


class DepthMapLoss(nn.Module):
    """Training loss of a 3D network: the map's MSE plus a weighted z error.

    ``input`` is the network's ``(n, 2, H, W)`` output (map, z map);
    ``target`` is ``(n, 3, H, W)``: the target map, the target z and the
    per-pixel weight of the z error (see
    ``sklearn_smlm._depth.depth_targets``). The loss is
    ``mean((map - target_map)**2) + z_weight * sum(w (z - target_z)**2) /
    sum(w)``.

    Parameters
    ----------
    z_weight : float, default=0.1
        Weight of the z term.
    """

    def __init__(self, z_weight=0.1):
        super().__init__()
        self.z_weight = z_weight

    def forward(self, input, target):
        target = target.float()
        loss_map = torch.mean((input[:, 0] - target[:, 0]) ** 2)
        weight = target[:, 2]
        error = weight * (input[:, 1] - target[:, 1]) ** 2
        loss_z = error.sum() / weight.sum().clamp_min(1e-6)
        return loss_map + self.z_weight * loss_z


def fold_subpixel_head(module):
    """Return a copy of a ``"subpixel"`` network with its head folded.

    Without a nonlinearity between the pixel shuffle and the 1x1 output
    convolution, output pixel ``(i, j)`` of each ``r x r`` block is a fixed
    linear combination of the sub-pixel convolution's channels
    ``k * r**2 + i * r + j``. Folding the 1x1 weights into the 3x3 convolution
    gives a network with ``r**2`` output channels that computes exactly the same
    map with about 6x fewer operations.

    Parameters
    ----------
    module : SubPixelCNN
        A network built with ``upsampling="subpixel"``.

    Returns
    -------
    folded : SubPixelCNN
        A network with ``upsampling="folded"`` and the same function.
    """
    if not isinstance(module, SubPixelCNN) or module.upsampling != "subpixel":
        raise ValueError(
            "fold_subpixel_head needs a SubPixelCNN with upsampling='subpixel'."
        )
    conv, head = module.upsample[0], module.head
    r = module.upscaling
    r2 = r * r
    n_channels = head.in_channels
    folded = SubPixelCNN.__new__(SubPixelCNN)
    nn.Module.__init__(folded)
    folded.upscaling, folded.upsampling = r, "folded"
    folded.features = module.features
    folded.upsample = nn.Identity()
    new = nn.Conv2d(conv.in_channels, r2, 3, padding=1)
    with torch.no_grad():
        w = head.weight.reshape(n_channels)  # (k,)
        weight = conv.weight.reshape(n_channels, r2, *conv.weight.shape[1:])
        bias = conv.bias.reshape(n_channels, r2)
        new.weight.copy_(torch.einsum("k,ksihw->sihw", w, weight))
        new.bias.copy_(torch.einsum("k,ks->s", w, bias) + head.bias)
    folded.head = nn.Sequential(new, nn.PixelShuffle(r))
    import copy

    return copy.deepcopy(folded)


def _prime_factors(n):
    factors, p = [], 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    return tuple(factors) or (1,)
