"""Peaks of folded-head maps found on the network's low-resolution channels.

The folded head (:class:`~sklearn_smlm.nn.SubPixelCNN`, ``upsampling="folded"``)
computes ``r**2`` channels at camera resolution; a pixel shuffle turns them
into the map, ``r`` times finer. Map pixel ``(r i + a, r j + b)`` is channel
``a r + b`` of camera pixel ``(i, j)``. A peak above the threshold can only lie
in a camera pixel whose largest channel is above it, so on sparse frames the
map is only assembled, and scanned, in small windows around those pixels (the
pixel and a margin of ``min_distance`` map pixels): the full map is never
built, shuffled or scanned. Where more than 12 % of the camera pixels are
candidates (dense frames) the full map is cheaper and is used. Either way the
detections are exactly those of :func:`~sklearn_smlm.peaks.find_peaks` on the
full map.
"""

import numpy as np

from ._peak_kernels import _DX, _DY, _first_of_plateau, _refine_peaks
from ._validation import check_real

__all__ = ["SubPixelMaps"]

# A window gathers ~1.7 cells' channels in random order; past this fraction
# of candidate cells one sequential pass over the full map is cheaper (AMD
# EPYC, one thread: 64x64 frames at 5 emitters/um^2 have 26 % candidate cells
# and windows took 1.8x the full map's time; 256x256 frames at 0.15/um^2 have
# 1 % and windows took a sixth).
_MAX_WINDOW_FRACTION = 0.12


class SubPixelMaps:
    """A batch of maps held as the folded head's channels (not yet shuffled).

    Behaves as the ``(n, r * H, r * W)`` float32 maps where an array is needed
    (``np.asarray``, ``np.concatenate``): they are then assembled exactly as
    the network's pixel shuffle and scaling would. :meth:`peaks` finds their
    local maxima without assembling them.

    Parameters
    ----------
    channels : ndarray of shape (n, H, W, r * r), float32
        The head's channels, channel-last (as the channels-last network
        returns them), before scaling.
    upscaling : int
        ``r``.
    scale : float
        Factor of the map values (the peak value ``exp(alpha) - 1``); applied
        in float32, as the network's map is scaled.
    """

    def __init__(self, channels, upscaling, scale):
        self.channels = channels
        self.upscaling = upscaling
        self.scale = np.float32(scale)
        # False: the channels are right only around values above the
        # prediction threshold (SubPixelCNN.subpixel_channels_above); their
        # peaks above it are right, the maps are not
        self.complete = True

    @property
    def shape(self):
        n, h, w, _ = self.channels.shape
        return (n, h * self.upscaling, w * self.upscaling)

    @property
    def dtype(self):
        return np.dtype(np.float32)

    @property
    def ndim(self):
        return 3

    def __len__(self):
        return self.channels.shape[0]

    def __array__(self, dtype=None, copy=None):
        if not self.complete:
            raise ValueError(
                "these maps were computed only around values above the "
                "threshold; use predict_maps for whole maps."
            )
        n, h, w, _ = self.channels.shape
        r = self.upscaling
        maps = self.channels.reshape(n, h, w, r, r).transpose(0, 1, 3, 2, 4)
        maps = maps.reshape(n, h * r, w * r)  # a copy: the shuffle
        maps *= self.scale
        return maps if dtype is None else maps.astype(dtype, copy=False)

    def peaks(self, threshold, *, min_distance=1, refine="auto"):
        """Return ``find_peaks(np.asarray(self), threshold, ...)``, faster.

        Parameters
        ----------
        threshold : float
            Peaks must be strictly greater.
        min_distance : int, default=1
            Half-size of the local-maximum neighbourhood, in map pixels.
        refine : {"auto", "cone", "quadratic"} or None, default="auto"
            See :func:`~sklearn_smlm.peaks.find_peaks`.

        Returns
        -------
        frame, row, col, value : ndarray
            As :func:`~sklearn_smlm.peaks.find_peaks` returns them, in the same
            order (frame, then raster order of the map).
        """
        from .peaks import find_peaks

        threshold = check_real(threshold, "threshold")
        channels, r, scale = self.channels, self.upscaling, self.scale
        n, h, w, r2 = channels.shape
        # one sum finds any NaN or infinity (or overflows: then look closer)
        if not np.isfinite(channels.sum()) and not np.isfinite(channels).all():
            raise ValueError("maps holds NaN or infinite values.")
        largest = float(np.finfo(np.float32).max)
        if abs(threshold) > largest:  # as find_peaks: no overflow in the test
            threshold = np.inf if threshold > 0 else -np.inf
        # channels above the threshold, then their cells (sorted, so unique by
        # comparing neighbours); cheaper than a maximum over the short channel
        # axis. Scaled in float32 as the map is.
        if not scale > 0 or not np.isfinite(threshold):
            return find_peaks(
                np.asarray(self), threshold, min_distance=min_distance, refine=refine
            )
        if min_distance > r:  # windows need the neighbour cells only
            return self._dense_peaks(threshold, min_distance, refine)
        flat = channels.reshape(-1)
        # a bound a little below threshold / scale keeps every channel whose
        # scaled value passes; the exact test follows on those few
        bound = threshold / float(scale)
        bound -= abs(bound) * 1e-5 + 1e-30
        above = np.flatnonzero(flat > np.float32(bound))
        if len(above) > _MAX_WINDOW_FRACTION * flat.size:  # surely dense
            return self._dense_peaks(threshold, min_distance, refine)
        above = above[flat[above] * scale > threshold]
        cells = above // r2
        if len(cells):
            new = np.empty(len(cells), dtype=bool)
            new[0] = True
            np.not_equal(cells[1:], cells[:-1], out=new[1:])
            cells = cells[new]
        if len(cells) > _MAX_WINDOW_FRACTION * n * h * w:
            return self._dense_peaks(threshold, min_distance, refine)
        frame, rest = np.divmod(cells, h * w)
        ci, cj = np.divmod(rest, w)
        # each candidate cell's r x r map pixels and a margin of m map pixels
        # (the neighbourhood of the maximum test and of the 3x3 refinement),
        # gathered from the channels of it and its neighbour cells
        m = max(min_distance, 1)
        u = np.arange(-m, r + m)
        cell_step, sub = np.divmod(u, r)  # neighbour cell (-1, 0, 1), sub-pixel
        offsets = (cell_step[:, None] * w + cell_step) * r2
        offsets = offsets + (sub[:, None] * r + sub)
        rows_ok = (ci[:, None] + cell_step >= 0) & (ci[:, None] + cell_step < h)
        cols_ok = (cj[:, None] + cell_step >= 0) & (cj[:, None] + cell_step < w)
        inside = rows_ok[:, :, None] & cols_ok[:, None, :]
        index = cells[:, None, None] * r2 + offsets
        windows = flat.take(np.where(inside, index, 0))
        windows *= scale
        # -inf outside the frame: a window cut at the edge, as the full map's
        # maximum filter is, and never equal to a candidate
        windows[~inside] = -np.inf
        # local maxima of the central cell only (its neighbourhood is inside)
        centre = windows[:, m : m + r, m : m + r]
        local_max = centre.copy()
        for dy in range(-min_distance, min_distance + 1):
            for dx in range(-min_distance, min_distance + 1):
                if dy or dx:
                    np.maximum(
                        local_max,
                        windows[:, m + dy : m + dy + r, m + dx : m + dx + r],
                        out=local_max,
                    )
        is_peak = centre > threshold
        is_peak &= centre == local_max
        win, a, b = np.nonzero(is_peak)
        win_row, win_col = a + m, b + m
        if len(win):
            keep = _first_of_plateau(windows, win, win_row, win_col, min_distance)
            win, win_row, win_col = win[keep], win_row[keep], win_col[keep]
        row = ci[win] * r + (win_row - m)
        col = cj[win] * r + (win_col - m)
        frame = frame[win]
        order = np.lexsort((col, row, frame))
        win, win_row, win_col = win[order], win_row[order], win_col[order]
        row, col, frame = row[order], col[order], frame[order].astype(np.int64)
        if refine is None or not len(frame):
            value = windows[win, win_row, win_col].astype(np.float64)
            return frame, row.astype(np.float64), col.astype(np.float64), value
        # 3x3 patches, edge pixels of the map repeated at its border, as
        # find_peaks does; clipped map pixels lie inside the window
        rows = np.clip(row[:, None] + _DY.astype(np.intp), 0, h * r - 1)
        cols = np.clip(col[:, None] + _DX.astype(np.intp), 0, w * r - 1)
        rows += win_row[:, None] - row[:, None]
        cols += win_col[:, None] - col[:, None]
        return _refine_peaks(frame, row, col, windows[win[:, None], rows, cols], refine)

    def _dense_peaks(self, threshold, min_distance, refine):
        """:meth:`peaks` on the assembled map, tested only where it is high.

        For dense frames, where windows cost more than the whole map. The map
        is assembled once into a buffer with a border of ``min_distance``
        pixels of -inf (the maximum filter's cut window). Only the pixels above
        the threshold are compared with their neighbours: a pixel is a peak
        when it is greater than every neighbour that precedes it in raster
        order and not less than the others, which is ``find_peaks``'s "equal to
        the neighbourhood's maximum, first of a plateau", so the detections,
        their order and their values are those of ``find_peaks``.
        """
        channels, r, scale = self.channels, self.upscaling, self.scale
        n, h, w, _ = channels.shape
        m = min_distance
        height, width = h * r, w * r
        padded = np.empty((n, height + 2 * m, width + 2 * m), dtype=np.float32)
        padded[:, :m] = -np.inf
        padded[:, height + m :] = -np.inf
        padded[:, :, :m] = -np.inf
        padded[:, :, width + m :] = -np.inf
        inner = padded[:, m : height + m, m : width + m].reshape(n, h, r, w, r)
        # the pixel shuffle and the scaling of np.asarray(self), in one pass
        blocks = channels.reshape(n, h, w, r, r).transpose(0, 1, 3, 2, 4)
        np.multiply(blocks, scale, out=inner)
        flat = padded.reshape(-1)
        # above the threshold (compared as find_peaks compares) and a maximum
        # along its row first: streaming passes over the buffer, which leave
        # a few percent of the pixels (the borders are -inf, so the first and
        # last pixel of a row never compare with the next row's)
        centre = flat[1:-1]
        candidate = centre > threshold
        candidate &= centre > flat[:-2]
        candidate &= centre >= flat[2:]
        index = np.flatnonzero(candidate) + 1
        value = flat[index]
        stride = width + 2 * m
        for dy in range(-m, m + 1):
            for dx in range(-m, m + 1):
                if dy == 0 and abs(dx) <= 1:
                    continue
                neighbour = flat[index + (dy * stride + dx)]
                # raster order: rows above, then the left part of the row
                keep = value > neighbour if (dy, dx) < (0, 0) else value >= neighbour
                index, value = index[keep], value[keep]
        frame, pixel = np.divmod(index, (height + 2 * m) * stride)
        row, col = np.divmod(pixel, stride)
        row -= m
        col -= m
        frame = frame.astype(np.int64)
        if refine is None or not len(frame):
            return (
                frame,
                row.astype(np.float64),
                col.astype(np.float64),
                (value.astype(np.float64)),
            )
        rows = np.clip(row[:, None] + _DY.astype(np.intp), 0, height - 1) + m
        cols = np.clip(col[:, None] + _DX.astype(np.intp), 0, width - 1) + m
        return _refine_peaks(
            frame, row, col, padded[frame[:, None], rows, cols], refine
        )
