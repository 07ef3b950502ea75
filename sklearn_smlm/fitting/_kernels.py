"""Compiled kernels (numba) of the classical localizer: detection filter and fit.

:func:`wavelet_filter` is the detection filter of
:mod:`sklearn_smlm.fitting._detect` in one pass per frame. The fit kernels
work one box at a time, with no Python per box or per iteration.

The model, parameter layout and Levenberg-Marquardt rules are those of
:mod:`sklearn_smlm.fitting._gauss`, whose :func:`fit_boxes` calls
:func:`lm_fit`. A box of ``B x B`` pixels is a row of ``B * B`` values
(row-major). The derivatives of a box are kept parameter-major,
``(n_params, B * B)``. numba compiles these on first use and caches the
machine code next to this file (``cache=True``), so later processes load it.

This module imports numba; it is itself imported only when a fit runs, so
that ``import sklearn_smlm`` stays light.
"""

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

_SQRT2 = math.sqrt(2.0)
_SQRT_PI = math.sqrt(math.pi)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}
_HOLD_BOUNDS = True
#: Fewest boxes (or frames) per piece of work handed to a thread.
_MIN_PER_TASK = 64


def _numba_threads():
    """``numba.get_num_threads()``, without starting numba's thread pool.

    Until someone calls ``numba.set_num_threads`` (or runs a parallel
    kernel), the number is ``NUMBA_NUM_THREADS``; asking numba for it would
    start its threading layer (an OpenMP pool here, about 50 ms), which
    these kernels do not use.
    """
    from numba.np.ufunc import parallel

    if not getattr(parallel, "_is_initialized", True):
        return numba.config.NUMBA_NUM_THREADS
    return numba.get_num_threads()


def run_in_threads(call, n, min_per_task=_MIN_PER_TASK):
    """Run ``call(start, stop)`` over ``range(n)`` in pieces, on numba's threads.

    The kernels release the GIL (``nogil``), so pieces of one batch run in
    parallel on ``numba.get_num_threads()`` threads (``NUMBA_NUM_THREADS``,
    or ``numba.set_num_threads`` in the calling thread). Every box or frame
    is computed by the same code whatever the piece it falls in, so results
    do not depend on the number of threads. Up to four pieces per thread,
    taken in turn, even out boxes that need more iterations than others.
    """
    threads = min(_numba_threads(), n // max(1, min_per_task))
    if threads <= 1:
        call(0, n)
        return
    n_tasks = min(4 * threads, max(threads, n // min_per_task))
    edges = np.linspace(0, n, n_tasks + 1).astype(np.int64)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [
            pool.submit(call, int(a), int(b))
            for a, b in zip(edges[:-1], edges[1:], strict=True)
            if b > a
        ]
        for future in futures:
            future.result()


@njit(**_OPTS)
def _axis(pos, s, size, e, de, ds):
    """Pixel-integrated 1D Gaussian at ``pos`` (width ``s``) and its derivatives."""
    inv = 1.0 / (_SQRT2 * s)
    t0 = (-0.5 - pos) * inv
    erf0 = math.erf(t0)
    g0 = math.exp(-t0 * t0)
    cp = 1.0 / (_SQRT_2PI * s)
    cs = 1.0 / (_SQRT_PI * s)
    for j in range(size):
        t1 = (j + 0.5 - pos) * inv
        erf1 = math.erf(t1)
        g1 = math.exp(-t1 * t1)
        e[j] = 0.5 * (erf1 - erf0)
        de[j] = -(g1 - g0) * cp
        ds[j] = -(t1 * g1 - t0 * g0) * cs
        t0, erf0, g0 = t1, erf1, g1


@njit(**_OPTS)
def _evaluate(
    p, k, fit_sigma, sigma, size, data, w, var, mle, mu, jac, wr, grad, hess, ax
):
    """Model, derivatives, cost, gradient and expected Hessian of one box.

    Fills ``mu`` (B * B), ``jac`` (n_params, B * B), ``grad`` and ``hess``;
    ``wr`` (3, B * B) is work space (pixel weights, residual factors).
    ``ax`` holds six (k, size) work rows: ex, dex, dsx, ey, dey, dsy. The
    cost is the Poisson negative log-likelihood (without log d!) for
    ``mle``, else half the weighted sum of squares; ``hess`` is the
    Fisher-scoring / Gauss-Newton matrix. ``var`` (read-noise variance,
    length 0 when there is none) shifts the model in the likelihood.
    """
    s = p[3 * k + 1] if fit_sigma else sigma
    for e in range(k):
        _axis(p[3 * e], s, size, ax[0, e], ax[1, e], ax[2, e])
        _axis(p[3 * e + 1], s, size, ax[3, e], ax[4, e], ax[5, e])
    bg = p[3 * k]
    npx = size * size
    for q in range(npx):
        mu[q] = bg
        jac[3 * k, q] = 1.0
    if fit_sigma:
        for q in range(npx):
            jac[3 * k + 1, q] = 0.0
    # every emitter's terms as outer products of its two axes (rows of
    # ``jac`` filled in loops over the columns, which vectorize)
    for e in range(k):
        n_e = p[3 * e + 2]
        ex, dex, dsx = ax[0, e], ax[1, e], ax[2, e]
        ey, dey, dsy = ax[3, e], ax[4, e], ax[5, e]
        jx, jy, jn = jac[3 * e], jac[3 * e + 1], jac[3 * e + 2]
        for i in range(size):
            ey_i = ey[i]
            a_x = n_e * ey_i
            a_y = n_e * dey[i]
            o = i * size
            for j in range(size):
                exy = ey_i * ex[j]
                mu[o + j] += n_e * exy
                jx[o + j] = a_x * dex[j]
                jy[o + j] = a_y * ex[j]
                jn[o + j] = exy
            if fit_sigma:
                js = jac[3 * k + 1]
                dsy_i = dsy[i]
                for j in range(size):
                    js[o + j] += n_e * (dsy_i * ex[j] + ey_i * dsx[j])
    cost = 0.0
    if mle:
        has_var = var.shape[0] > 0
        for q in range(npx):
            mm = mu[q] + var[q] if has_var else mu[q]
            cost += mm - data[q] * np.log(mm)
            ww = 1.0 / mm
            wr[0, q] = ww
            wr[1, q] = 1.0 - data[q] * ww
    else:
        for q in range(npx):
            r = data[q] - mu[q]
            cost += 0.5 * w[q] * r * r
            wr[0, q] = w[q]
            wr[1, q] = -w[q] * r
    _normal_equations(jac, wr, grad, hess)
    return cost


@njit(**_OPTS, fastmath={"reassoc", "contract"})
def _normal_equations(jac, wr, grad, hess):
    """Gradient ``J r`` and Hessian ``J W J^T`` from the rows of ``jac``.

    Sums over the pixels in any order (``fastmath`` reassociation), so that
    they vectorize: 1.2-1.6x faster fits in 7-9 pixel boxes with several
    emitters, the same sums to rounding (about 1e-16 relative).
    """
    n_par, npx = jac.shape
    wj = wr[2]
    for a in range(n_par):
        acc = 0.0
        for q in range(npx):
            acc += jac[a, q] * wr[1, q]
        grad[a] = acc
        for q in range(npx):
            wj[q] = wr[0, q] * jac[a, q]
        for b in range(a + 1):
            acc = 0.0
            for q in range(npx):
                acc += wj[q] * jac[b, q]
            hess[a, b] = acc
            hess[b, a] = acc


@njit(**_OPTS)
def _cholesky(a, low, rel_tol):
    """Write the lower Cholesky factor of ``a`` into ``low``.

    Returns False where a pivot is not above ``rel_tol`` times its diagonal
    entry (singular or not finite).
    """
    n = a.shape[0]
    for j in range(n):
        acc = a[j, j]
        for m in range(j):
            acc -= low[j, m] * low[j, m]
        if not (acc > rel_tol * a[j, j]) or not (acc > 0.0) or not np.isfinite(acc):
            return False
        d = math.sqrt(acc)
        low[j, j] = d
        for i in range(j + 1, n):
            acc = a[i, j]
            for m in range(j):
                acc -= low[i, m] * low[j, m]
            low[i, j] = acc / d
    return True


@njit(**_OPTS)
def _damped_step(hess, grad, lam, a, low, step, fixed):
    """Solve ``(H + lam max(diag(H), floor) I) step = -grad``; False if singular.

    Parameters where ``fixed`` is true are held (their step is 0).
    """
    n = hess.shape[0]
    dmax = 0.0
    for i in range(n):
        dmax = max(dmax, hess[i, i])
    floor = 1e-9 * max(dmax, 1e-12)
    for i in range(n):
        for j in range(n):
            a[i, j] = 0.0 if fixed[i] or fixed[j] else hess[i, j]
        a[i, i] = 1.0 if fixed[i] else a[i, i] + lam * max(hess[i, i], floor)
    if not _cholesky(a, low, 0.0):
        return False
    for i in range(n):  # forward: L z = -grad
        acc = 0.0 if fixed[i] else -grad[i]
        for m in range(i):
            acc -= low[i, m] * step[m]
        step[i] = acc / low[i, i]
    for i in range(n - 1, -1, -1):  # back: L^T step = z
        acc = step[i]
        for m in range(i + 1, n):
            acc -= low[m, i] * step[m]
        step[i] = acc / low[i, i]
    return True


@njit(**_OPTS)
def _held_at_bounds(p, step, k, fit_sigma, lo, hi, sigma_hi, fixed):
    """Mark the parameters on a bound of :func:`_clip` that ``step`` pushes out.

    Holding them and solving again for the others (a projected step) keeps
    an emitter at the edge of its box or a background at zero from turning
    every other step into a rejected one. Returns whether any was marked.
    """
    any_held = False
    for e in range(k):
        for c in (3 * e, 3 * e + 1):
            out = (p[c] <= lo and step[c] < 0.0) or (p[c] >= hi and step[c] > 0.0)
            fixed[c] = out
            any_held |= out
        out = p[3 * e + 2] <= 1e-3 and step[3 * e + 2] < 0.0
        fixed[3 * e + 2] = out
        any_held |= out
    out = p[3 * k] <= 1e-6 and step[3 * k] < 0.0
    fixed[3 * k] = out
    any_held |= out
    if fit_sigma:
        c = 3 * k + 1
        out = (p[c] <= 0.1 and step[c] < 0.0) or (p[c] >= sigma_hi and step[c] > 0.0)
        fixed[c] = out
        any_held |= out
    return any_held


@njit(**_OPTS)
def _clip(p, k, fit_sigma, lo, hi, sigma_hi):
    for e in range(k):
        p[3 * e] = min(max(p[3 * e], lo), hi)
        p[3 * e + 1] = min(max(p[3 * e + 1], lo), hi)
        p[3 * e + 2] = max(p[3 * e + 2], 1e-3)
    p[3 * k] = max(p[3 * k], 1e-6)
    if fit_sigma:
        p[3 * k + 1] = min(max(p[3 * k + 1], 0.1), sigma_hi)


@njit(**_OPTS)
def lm_fit(
    data,
    init,
    k,
    fit_sigma,
    sigma,
    mle,
    weights,
    var,
    max_iter,
    tol,
    margin,
    params,
    converged,
    n_iter,
    mu_out,
    jac_out,
):
    """Levenberg-Marquardt fit of every box, in a loop over the boxes.

    ``data`` (n, B * B): counts (for ``mle`` already ``max(d + var, 0)``);
    ``init`` (n, n_params); ``sigma`` (n,) fixed widths (ignored when
    ``fit_sigma``); ``weights`` (n, B * B) for least squares (else shape
    (n, 0)); ``var`` (n, B * B) read-noise variance or shape (n, 0). Fills
    ``params``, ``converged``, ``n_iter``, ``mu_out`` (n, B * B) and
    ``jac_out`` (n, n_params, B * B).
    """
    n, npx = data.shape
    n_par = init.shape[1]
    size = int(round(math.sqrt(npx)))
    lo, hi = -margin, size - 1.0 + margin
    ax = np.empty((6, k, size))
    p = np.empty(n_par)
    trial = np.empty(n_par)
    mu = np.empty(npx)
    mu_t = np.empty(npx)
    jac = np.empty((n_par, npx))
    jac_t = np.empty((n_par, npx))
    wr = np.empty((3, npx))
    grad = np.empty(n_par)
    hess = np.empty((n_par, n_par))
    grad_t = np.empty(n_par)
    hess_t = np.empty((n_par, n_par))
    a = np.empty((n_par, n_par))
    low = np.zeros((n_par, n_par))
    step = np.empty(n_par)
    fixed = np.zeros(n_par, dtype=np.bool_)
    for b in range(n):
        d = data[b]
        w = weights[b]
        v = var[b]
        s_b = sigma[b]
        for c in range(n_par):
            p[c] = init[b, c]
        _clip(p, k, fit_sigma, lo, hi, float(size))
        cost = _evaluate(
            p, k, fit_sigma, s_b, size, d, w, v, mle, mu, jac, wr, grad, hess, ax
        )
        lam = 1e-3
        done = False
        it = 0
        while it < max_iter and not done:
            it += 1
            better = False
            small = False
            fixed[:] = False
            solved = _damped_step(hess, grad, lam, a, low, step, fixed)
            if solved and _HOLD_BOUNDS:
                if _held_at_bounds(p, step, k, fit_sigma, lo, hi, float(size), fixed):
                    solved = _damped_step(hess, grad, lam, a, low, step, fixed)
            if solved:
                for c in range(n_par):
                    trial[c] = p[c] + step[c]
                _clip(trial, k, fit_sigma, lo, hi, float(size))
                cost_t = _evaluate(
                    trial,
                    k,
                    fit_sigma,
                    s_b,
                    size,
                    d,
                    w,
                    v,
                    mle,
                    mu_t,
                    jac_t,
                    wr,
                    grad_t,
                    hess_t,
                    ax,
                )
                better = cost_t <= cost and np.isfinite(cost_t)
                small = True
                for e in range(k):
                    if abs(trial[3 * e] - p[3 * e]) >= tol:
                        small = False
                    if abs(trial[3 * e + 1] - p[3 * e + 1]) >= tol:
                        small = False
                    if not abs(trial[3 * e + 2] - p[3 * e + 2]) < tol * abs(
                        p[3 * e + 2]
                    ):
                        small = False
                if better:  # the trial's arrays become the current ones
                    p[:] = trial
                    mu, mu_t = mu_t, mu
                    jac, jac_t = jac_t, jac
                    grad, grad_t = grad_t, grad
                    hess, hess_t = hess_t, hess
                    cost = cost_t
            if better:
                lam = max(lam * 0.1, 1e-7)
            else:
                lam *= 10.0
            # a damping this large means no step lowers the cost any more:
            # the box sits on its minimum to machine precision
            done = (better and small) or lam > 1e9
        converged[b] = done
        n_iter[b] = it
        params[b] = p
        mu_out[b] = mu
        jac_out[b] = jac


@njit(**_OPTS)
def crlb_deviance(data, mu, jac, excess_noise, var_out, dev_out):
    """CRLB (diagonal of the inverse Poisson Fisher matrix) and Poisson deviance.

    ``data`` and ``mu`` (n, B * B) as the likelihood sees them (read-noise
    variance added to both); ``jac`` (n, n_params, B * B). ``var_out`` is
    ``inf`` where the Fisher matrix is singular (a pivot of its Cholesky
    factor at or below 1e-10 of its diagonal entry: a parameter the data do
    not determine).
    """
    n, n_par, npx = jac.shape
    fisher = np.empty((n_par, n_par))
    low = np.zeros((n_par, n_par))
    inv = np.empty((n_par, n_par))
    for b in range(n):
        fisher[:, :] = 0.0
        dev = 0.0
        for q in range(npx):
            m = mu[b, q]
            dq = max(data[b, q], 0.0)
            dev += m - dq
            if dq > 0.0:
                dev += dq * np.log(dq / m)
            wq = 1.0 / m
            for i in range(n_par):
                wji = wq * jac[b, i, q]
                for j in range(i + 1):
                    fisher[i, j] += wji * jac[b, j, q]
        dev_out[b] = 2.0 * dev
        for i in range(n_par):
            for j in range(i):
                fisher[j, i] = fisher[i, j]
        if not _cholesky(fisher, low, 1e-10):
            for i in range(n_par):
                var_out[b, i] = np.inf
            continue
        # L^-1 by forward substitution, then diag(F^-1) = column sums of squares
        for c in range(n_par):
            for i in range(n_par):
                acc = 1.0 if i == c else 0.0
                for m in range(c, i):
                    acc -= low[i, m] * inv[m, c]
                inv[i, c] = acc / low[i, i] if i >= c else 0.0
        for i in range(n_par):
            acc = 0.0
            for r in range(i, n_par):
                acc += inv[r, i] * inv[r, i]
            var_out[b, i] = acc * excess_noise


@njit(**_OPTS)
def _select(a, k, buf, hist):
    """Return the ``k``-th smallest value of ``a`` (0-based), exactly.

    Histogram select: the values are counted in ``hist.shape[1]`` bins over
    their range, the bin that holds rank ``k`` is collected and binned
    again, until few values (sorted) or one repeated value remain (``a``
    is not changed). The bin of a value is monotone in the value, so the
    rank is exact. About 2x faster than a quickselect on camera frames,
    whose many tied values make its partitions branch badly. ``buf``
    (2, len(a)) is work space; ``hist`` (4, bins) holds four interleaved
    counts (noise piles into few bins, and one count per element in turn
    would wait on the previous increment of the same bin), and the bin is
    collected without a branch (the element is written, the write position
    moves only where it belongs).
    """
    src = a
    m = a.shape[0]
    side = 0
    nb = hist.shape[1]
    while True:
        if m <= 32:
            return np.sort(src[:m])[k]
        lo = src[0]
        hi = src[0]
        for i in range(1, m):
            lo = min(lo, src[i])
            hi = max(hi, src[i])
        if lo == hi or not np.isfinite(hi - lo):
            if lo == hi:
                return lo
            return np.sort(src[:m])[k]
        scale = nb / (hi - lo)
        hist[:, :] = 0
        m4 = m - m % 4
        for i in range(0, m4, 4):
            hist[0, min(int((src[i] - lo) * scale), nb - 1)] += 1
            hist[1, min(int((src[i + 1] - lo) * scale), nb - 1)] += 1
            hist[2, min(int((src[i + 2] - lo) * scale), nb - 1)] += 1
            hist[3, min(int((src[i + 3] - lo) * scale), nb - 1)] += 1
        for i in range(m4, m):
            hist[0, min(int((src[i] - lo) * scale), nb - 1)] += 1
        below = 0
        sel = nb - 1
        for b in range(nb):
            count = hist[0, b] + hist[1, b] + hist[2, b] + hist[3, b]
            if below + count > k:
                sel = b
                break
            below += count
        k -= below
        out = buf[side]
        c = 0
        for i in range(m):
            x = src[i]
            out[c] = x
            c += min(int((x - lo) * scale), nb - 1) == sel
        src = out[:c]
        m = c
        side = 1 - side


@njit(**_OPTS)
def _median(a, buf, hist):
    """Median of ``a`` (as np.median, exactly), by :func:`_select`."""
    n = a.shape[0]
    k = n // 2
    upper = _select(a, k, buf, hist)
    if n % 2:
        return upper
    # the lower middle value: the largest below ``upper`` unless tied with
    # it (a branch-free pass: which values lie below is a coin toss)
    less = 0
    lower = -np.inf
    for i in range(n):
        x = a[i]
        below = x < upper
        less += below
        lower = max(lower, x if below else -np.inf)
    if less < k:
        lower = upper
    return 0.5 * (lower + upper)


@njit(**_OPTS)
def _reflect(i, n):
    """Index ``i`` folded into ``[0, n)`` as scipy.ndimage's mode "reflect"."""
    period = 2 * n
    i = i % period
    if i < 0:
        i += period
    return period - 1 - i if i >= n else i


@njit(**_OPTS)
def _reflect_table(n, offsets):
    """``table[t, i]``: index ``i + offsets[t]`` folded into ``[0, n)``."""
    table = np.empty((offsets.shape[0], n), dtype=np.int64)
    for t in range(offsets.shape[0]):
        for i in range(n):
            table[t, i] = _reflect(i + offsets[t], n)
    return table


@njit(**_OPTS)
def _smooth_rows_cols(src, dst, tmp, taps, rows, cols, dil):
    """Correlate with ``taps`` along axis 0, then axis 1 (separable).

    ``rows`` / ``cols``: the reflected index tables of the two axes; ``dil``:
    the spacing of the five taps. Every output row sums its five input rows
    in one pass; columns whose taps all fall inside the frame are summed
    from five shifted slices of the row (the same terms in the same order
    as through the table, so the same values, but in loops the compiler
    vectorizes: indices from 0 up need no negative-index check), the
    border columns through the table.
    """
    h, w = src.shape
    nt = taps.shape[0]
    c0, c1, c2, c3, c4 = taps[0], taps[1], taps[2], taps[3], taps[4]
    for i in range(h):
        out = tmp[i]
        s0, s1, s2 = src[rows[0, i]], src[rows[1, i]], src[rows[2, i]]
        s3, s4 = src[rows[3, i]], src[rows[4, i]]
        for j in range(w):
            acc = 0.0
            acc += c0 * s0[j]
            acc += c1 * s1[j]
            acc += c2 * s2[j]
            acc += c3 * s3[j]
            acc += c4 * s4[j]
            out[j] = acc
    lo = min(2 * dil, w)
    hi = max(w - 2 * dil, lo)
    m = hi - lo
    for i in range(h):
        row = tmp[i]
        out = dst[i]
        mid = out[lo:hi]
        a0 = row[lo - 2 * dil : hi - 2 * dil]
        a1 = row[lo - dil : hi - dil]
        a2 = row[lo:hi]
        a3 = row[lo + dil : hi + dil]
        a4 = row[lo + 2 * dil : hi + 2 * dil]
        for j in range(m):
            acc = 0.0
            acc += c0 * a0[j]
            acc += c1 * a1[j]
            acc += c2 * a2[j]
            acc += c3 * a3[j]
            acc += c4 * a4[j]
            mid[j] = acc
        for j in range(w):
            if j < lo or j >= hi:
                acc = 0.0
                for t in range(nt):
                    acc += taps[t] * row[cols[t, j]]
                out[j] = acc


@njit(**_OPTS)
def wavelet_filter(frames, step, image, noise_mad):
    """Compute the a trous wavelet image ``V1 - V2`` and the MAD of ``F1 = I - V1``.

    ``frames`` (n, H, W) float32; fills ``image`` (n, H, W) float32 and
    ``noise_mad`` (n,), the median absolute deviation of every ``step``-th
    pixel (raster order) of the fine scale.
    """
    n, h, w = frames.shape
    taps = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    off1 = np.array([-2, -1, 0, 1, 2])
    off2 = np.array([-4, -2, 0, 2, 4])
    src = np.empty((h, w))
    v1 = np.empty((h, w))
    v2 = np.empty((h, w))
    tmp = np.empty((h, w))
    rows1, cols1 = _reflect_table(h, off1), _reflect_table(w, off1)
    rows2, cols2 = _reflect_table(h, off2), _reflect_table(w, off2)
    n_samples = (h * w + step - 1) // step
    fine = np.empty(n_samples)
    buf = np.empty((2, n_samples))
    hist = np.zeros((4, 256), np.int64)
    for f in range(n):
        for i in range(h):
            for j in range(w):
                src[i, j] = frames[f, i, j]
        _smooth_rows_cols(src, v1, tmp, taps, rows1, cols1, 1)
        _smooth_rows_cols(v1, v2, tmp, taps, rows2, cols2, 2)
        for i in range(h):
            for j in range(w):
                image[f, i, j] = v1[i, j] - v2[i, j]
        m = 0
        for q in range(0, h * w, step):
            i, j = q // w, q % w
            fine[m] = src[i, j] - v1[i, j]
            m += 1
        med = _median(fine, buf, hist)
        for q in range(n_samples):
            fine[q] = abs(fine[q] - med)
        noise_mad[f] = _median(fine, buf, hist)


@njit(**_OPTS)
def copy_boxes(frames, f, row, col, size, out, r0, c0):
    """Copy a ``size`` box centred on every (row, col) into ``out`` (float64).

    Boxes that would leave the frame are shifted inwards; their top-left
    corners go to ``r0``, ``c0``. The values are the frames' (float32 to
    float64 is exact), as the fancy indexing of the same boxes.
    """
    n = f.shape[0]
    h, w = frames.shape[1], frames.shape[2]
    half = size // 2
    for b in range(n):
        r = min(max(row[b] - half, 0), h - size)
        c = min(max(col[b] - half, 0), w - size)
        r0[b] = r
        c0[b] = c
        img = frames[f[b]]
        for i in range(size):
            src = img[r + i, c : c + size]
            dst = out[b, i]
            for j in range(size):
                dst[j] = src[j]


@njit(**_OPTS)
def _is_local_max(img, i, j, h, w):
    v = img[i, j]
    for di in (-1, 0, 1):
        r = min(max(i + di, 0), h - 1)
        for dj in (-1, 0, 1):
            if di or dj:
                if img[r, min(max(j + dj, 0), w - 1)] > v:
                    return False
    return True


@njit(**_OPTS)
def local_maxima(image, level):
    """Pixels above ``level[frame]`` that are maxima of their 3 x 3 neighbourhood.

    The border is replicated (a pixel equal to a neighbour counts as a
    maximum). Returns ``frame``, ``row``, ``col`` (int64), in raster order.
    """
    n, h, w = image.shape
    count = 0
    for f in range(n):
        img = image[f]
        lv = level[f]
        for i in range(h):
            for j in range(w):
                if img[i, j] > lv and _is_local_max(img, i, j, h, w):
                    count += 1
    fr = np.empty(count, np.int64)
    rr = np.empty(count, np.int64)
    cc = np.empty(count, np.int64)
    m = 0
    for f in range(n):
        img = image[f]
        lv = level[f]
        for i in range(h):
            for j in range(w):
                if img[i, j] > lv and _is_local_max(img, i, j, h, w):
                    fr[m], rr[m], cc[m] = f, i, j
                    m += 1
    return fr, rr, cc
