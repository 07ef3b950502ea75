"""Emitter positions: uniform, filaments, user points or image masks, with blinking."""

import numpy as np

__all__ = ["Structure", "make_filaments", "blink_expand"]


class Structure:
    """Where emitters may sit: a sampler of candidate positions in nanometres.

    Parameters
    ----------
    kind : {"uniform", "points", "filaments", "mask"}
    region : tuple of float
        ``(x0, y0, x1, y1)`` of the sampled region in nm (uniform and mask).
    points : ndarray of shape (m, 2) or (m, 3), optional
        User points (kind "points").
    segments : tuple of ndarray, optional
        ``(start (m, 3), step (m, 3), normal (m, 2))`` of filament segments.
    width_nm : float
        Filament diameter; emitters sit on the surface of the tube.
    mask : ndarray of shape (h, w), optional
        Non-negative weights covering ``region`` (kind "mask").
    z_range_nm : tuple of float, optional
        Axial range for structures without their own z.
    fov : tuple of float, optional
        ``(x0, y0, x1, y1)`` of the field of view; default ``region``.

    Notes
    -----
    :attr:`draw_area_um2` is the area by which the density is multiplied to
    get the expected number of draws per frame, chosen so that the expected
    number of emitters *inside the field of view* is ``density * fov area``
    for every kind (uniform: the whole region including the margin; points
    and filaments: the field's area divided by the fraction of the sites,
    or of the filament length, inside it).
    """

    def __init__(
        self,
        kind,
        region,
        *,
        points=None,
        segments=None,
        width_nm=0.0,
        mask=None,
        z_range_nm=None,
        fov=None,
    ):
        self.kind = kind
        self.region = region
        self.points = points
        self.segments = segments
        self.width_nm = width_nm
        self.z_range_nm = z_range_nm
        self.fov = region if fov is None else fov
        if mask is not None:
            weights = np.asarray(mask, dtype=np.float64)
            self.mask_shape = weights.shape
            cdf = np.cumsum(weights.ravel())
            self.mask_cdf = cdf / cdf[-1]

    @property
    def area_um2(self):
        """Area of the sampled region in square micrometres."""
        x0, y0, x1, y1 = self.region
        return (x1 - x0) * (y1 - y0) * 1e-6

    @property
    def draw_area_um2(self):
        """Area whose density gives the expected draws per frame (see Notes)."""
        x0, y0, x1, y1 = self.fov
        fov_area = (x1 - x0) * (y1 - y0) * 1e-6
        if self.kind in ("uniform", "mask"):
            return self.area_um2
        xy = self.points if self.kind == "points" else self.segments[0]
        inside = (
            (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)
        ).mean()
        # a structure that misses the field entirely gives no emitters in it
        return fov_area / inside if inside > 0 else 0.0

    def sample(self, n, rng):
        """Draw ``n`` positions: ``(x, y, z)`` arrays, ``z`` None for 2D."""
        x0, y0, x1, y1 = self.region
        z = None
        if self.kind == "uniform":
            x = rng.uniform(x0, x1, n)
            y = rng.uniform(y0, y1, n)
        elif self.kind == "mask":
            h, w = self.mask_shape
            flat = np.searchsorted(self.mask_cdf, rng.random(n), side="right")
            flat = np.minimum(flat, h * w - 1)
            r, c = np.divmod(flat, w)
            x = x0 + (c + rng.random(n)) * (x1 - x0) / w
            y = y0 + (r + rng.random(n)) * (y1 - y0) / h
        elif self.kind == "points":
            idx = rng.integers(0, len(self.points), n)
            x, y = self.points[idx, 0].copy(), self.points[idx, 1].copy()
            if self.points.shape[1] == 3:
                z = self.points[idx, 2].copy()
        else:  # filaments
            start, step, normal = self.segments
            idx = rng.integers(0, len(start), n)
            t = rng.random(n)[:, None]
            pos = start[idx] + t * step[idx]
            theta = rng.uniform(0.0, 2.0 * np.pi, n)
            radius = 0.5 * self.width_nm
            x = pos[:, 0] + radius * np.cos(theta) * normal[idx, 0]
            y = pos[:, 1] + radius * np.cos(theta) * normal[idx, 1]
            if self.z_range_nm is not None:
                z = pos[:, 2] + radius * np.sin(theta)
        if z is None and self.z_range_nm is not None:
            z = rng.uniform(self.z_range_nm[0], self.z_range_nm[1], n)
        return x, y, z


def make_filaments(
    rng,
    n_filaments,
    region,
    *,
    persistence_nm=3000.0,
    step_nm=10.0,
    z_range_nm=None,
):
    """Draw random smooth curves (worm-like chains) crossing a region.

    Each filament starts at a uniform random point with a random direction and
    grows both ways in steps of ``step_nm``; its direction turns by a normal
    angle of variance ``step_nm / persistence_nm`` per step, which gives the
    tangent correlation ``exp(-s / (2 persistence_nm))`` of a 2-D worm-like
    chain. With ``z_range_nm`` its axial position varies along it as a slow
    sine spanning the range.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_filaments : int
    region : tuple of float
        ``(x0, y0, x1, y1)`` in nm; segments outside are dropped.
    persistence_nm : float, default=3000.0
    step_nm : float, default=10.0
    z_range_nm : tuple of float, optional

    Returns
    -------
    start : ndarray of shape (m, 3)
        Segment start points ``(x, y, z)`` (z is 0 for 2D).
    step : ndarray of shape (m, 3)
        Segment vectors.
    normal : ndarray of shape (m, 2)
        Unit lateral normals of the segments.

    Examples
    --------
    >>> import numpy as np
    >>> start, step, normal = make_filaments(
    ...     np.random.default_rng(0), 2, (0.0, 0.0, 1000.0, 1000.0))
    >>> bool(np.allclose(np.hypot(step[:, 0], step[:, 1]), 10.0))
    True
    """
    x0, y0, x1, y1 = region
    diag = np.hypot(x1 - x0, y1 - y0)
    n_steps = int(np.ceil(diag / step_nm)) + 1
    sx = rng.uniform(x0, x1, n_filaments)
    sy = rng.uniform(y0, y1, n_filaments)
    angle0 = rng.uniform(0.0, 2.0 * np.pi, n_filaments)
    turn = rng.normal(
        0.0, np.sqrt(step_nm / persistence_nm), (n_filaments, 2 * n_steps)
    )
    # forward half grows from the start point, the backward half from the
    # start point in the opposite direction; together one smooth curve
    fwd = angle0[:, None] + np.cumsum(turn[:, :n_steps], axis=1)
    bwd = angle0[:, None] + np.pi + np.cumsum(turn[:, n_steps:], axis=1)
    starts, steps = [], []
    for angles in (fwd, bwd):
        dx, dy = step_nm * np.cos(angles), step_nm * np.sin(angles)
        px = sx[:, None] + np.concatenate(
            [np.zeros((n_filaments, 1)), np.cumsum(dx, 1)[:, :-1]], 1
        )
        py = sy[:, None] + np.concatenate(
            [np.zeros((n_filaments, 1)), np.cumsum(dy, 1)[:, :-1]], 1
        )
        starts.append((px, py))
        steps.append((dx, dy))
    px = np.concatenate([starts[0][0], starts[1][0]], axis=1)
    py = np.concatenate([starts[0][1], starts[1][1]], axis=1)
    dx = np.concatenate([steps[0][0], steps[1][0]], axis=1)
    dy = np.concatenate([steps[0][1], steps[1][1]], axis=1)
    if z_range_nm is not None:
        arc = (
            np.concatenate([np.arange(n_steps), -np.arange(n_steps)], dtype=np.float64)[
                None, :
            ]
            * step_nm
        )
        period = rng.uniform(3000.0, 10000.0, (n_filaments, 1))
        phase = rng.uniform(0.0, 2.0 * np.pi, (n_filaments, 1))
        mid, amp = (
            0.5 * (z_range_nm[0] + z_range_nm[1]),
            0.5 * (z_range_nm[1] - z_range_nm[0]),
        )
        pz = mid + amp * np.sin(2.0 * np.pi * arc / period + phase)
        dz = np.zeros_like(pz)
        dz[:, :n_steps] = (
            2.0
            * np.pi
            * amp
            / period
            * np.cos(2.0 * np.pi * arc[:, :n_steps] / period + phase)
            * step_nm
        )
        dz[:, n_steps:] = (
            -2.0
            * np.pi
            * amp
            / period
            * np.cos(2.0 * np.pi * arc[:, n_steps:] / period + phase)
            * step_nm
        )
    else:
        pz = np.zeros_like(px)
        dz = np.zeros_like(px)
    start = np.stack([px.ravel(), py.ravel(), pz.ravel()], axis=1)
    step = np.stack([dx.ravel(), dy.ravel(), dz.ravel()], axis=1)
    inside = (
        (start[:, 0] >= x0)
        & (start[:, 0] < x1)
        & (start[:, 1] >= y0)
        & (start[:, 1] < y1)
    )
    start, step = start[inside], step[inside]
    length = np.hypot(step[:, 0], step[:, 1])
    normal = np.stack([-step[:, 1] / length, step[:, 0] / length], axis=1)
    return start, step, normal


def blink_expand(start_frame, duration, n_frames):
    """Expand emitters on from ``start_frame`` for ``duration`` frames.

    Parameters
    ----------
    start_frame, duration : ndarray of int, shape (k,)
    n_frames : int
        Length of the current block; the part of an on-period beyond it is
        returned as what remains to carry into the next block.

    Returns
    -------
    emitter : ndarray of int
        Index of the emitter of each (emitter, frame) pair.
    frame : ndarray of int
        Frame of each pair, in ``[0, n_frames)``.
    remaining : ndarray of int, shape (k,)
        Frames each emitter is still on after the block (0 when done).

    Examples
    --------
    >>> import numpy as np
    >>> e, f, rem = blink_expand(np.array([0, 3]), np.array([2, 3]), 4)
    >>> e.tolist(), f.tolist(), rem.tolist()
    ([0, 0, 1], [0, 1, 3], [0, 2])
    """
    start_frame = np.asarray(start_frame, dtype=np.int64)
    duration = np.asarray(duration, dtype=np.int64)
    on = np.minimum(duration, n_frames - start_frame)
    on = np.maximum(on, 0)
    emitter = np.repeat(np.arange(len(on)), on)
    first = np.cumsum(on) - on
    frame = start_frame[emitter] + (np.arange(len(emitter)) - first[emitter])
    remaining = duration - on
    return emitter, frame, remaining
