"""LSTM + softmax head: one forward step, one backward step, a window backward, evaluation.

Shapes: B streams, H hidden units, V characters, G = 4H gate pre-activations (i, f, g, o).
Activations of past steps live in rings indexed by `t % R` (R = k2 + 1, slot 0 = the zero state
before step 1); a ring is the tuple
    (x, y, gates, c, h, tanh_c, probs)  with shapes (R,B) (R,B) (R,B,G) (R,B,H) (R,B,H) (R,B,H) (R,B,V)
where gates holds the post-activation i, f, g, o of each step.

The math is bpttbench/reference.py's; tests compare the two.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bpttbench.kernels.vecmath import JIT, vexp, vsigmoid, vtanh


@njit(**JIT)
def param_views(theta, V, H):
    """Cut the flat parameter vector into PyTorch-layout tensors (views, no copies)."""
    G = 4 * H
    o = 0
    W_ih = theta[o : o + G * V].reshape((G, V))
    o += G * V
    W_hh = theta[o : o + G * H].reshape((G, H))
    o += G * H
    b_ih = theta[o : o + G]
    o += G
    b_hh = theta[o : o + G]
    o += G
    W_dec = theta[o : o + V * H].reshape((V, H))
    o += V * H
    b_dec = theta[o : o + V]
    return W_ih, W_hh, b_ih, b_hh, W_dec, b_dec


@njit(**JIT)
def read_inputs(ids, track_len, t, x, y):
    """Step t (1-based) of every stream: input = character t, target = character t + 1 of its track.

    Stream b reads track b = ids[b*track_len : (b+1)*track_len]; past the end it wraps around
    (the state carries over), so any budget can run on any corpus.
    """
    p = (t - 1) % (track_len - 1)
    for b in range(x.shape[0]):
        x[b] = ids[b * track_len + p]
        y[b] = ids[b * track_len + p + 1]


@njit(**JIT)
def sigmoid(z):
    return vsigmoid(z)


@njit(**JIT)
def lstm_forward(W_ih, W_hh, b_ih, b_hh, x, h_prev, c_prev, gates, c, h, tanh_c):
    """One LSTM step for all streams; writes gates (post-activation), c, h, tanh(c).

    Each nonlinearity has a loop of its own over contiguous memory so that LLVM vectorises it.
    """
    B, H = h_prev.shape
    G = 4 * H
    np.dot(h_prev, W_hh.T, gates)  # B,G
    for b in range(B):
        xb = x[b]
        z = gates[b]
        for j in range(G):
            z[j] = z[j] + W_ih[j, xb] + b_ih[j] + b_hh[j]
        for j in range(2 * H):  # i, f
            z[j] = vsigmoid(z[j])
        for j in range(2 * H, 3 * H):  # g
            z[j] = vtanh(z[j])
        for j in range(3 * H, G):  # o
            z[j] = vsigmoid(z[j])
        cb, hb, tb, cpb = c[b], h[b], tanh_c[b], c_prev[b]
        for j in range(H):
            cb[j] = z[H + j] * cpb[j] + z[j] * z[2 * H + j]
        for j in range(H):
            tb[j] = vtanh(cb[j])
        for j in range(H):
            hb[j] = z[3 * H + j] * tb[j]


@njit(**JIT)
def head_forward(W_dec, b_dec, h, y, probs):
    """Softmax over the decoder's logits into probs; returns the summed cross-entropy (nats)."""
    B, V = probs.shape
    np.dot(h, W_dec.T, probs)  # B,V logits
    total = 0.0
    for b in range(B):
        p = probs[b]
        for v in range(V):
            p[v] += b_dec[v]
        peak = p[0]
        for v in range(V):
            if p[v] > peak:
                peak = p[v]
        target_logit = p[y[b]]
        for v in range(V):
            p[v] = vexp(p[v] - peak)
        norm = 0.0
        for v in range(V):
            norm += p[v]
        # log-sum-exp form: exact even when the target's probability underflows
        total += np.log(norm) + peak - target_logit
        norm_t = p.dtype.type(norm)
        for v in range(V):
            p[v] = p[v] / norm_t
    return total


@njit(**JIT)
def forward_step(theta, V, H, ring, t, prev_slot):
    """Forward step t into ring slot t % R from the state in prev_slot; returns the summed loss (nats)."""
    x_r, y_r, gates_r, c_r, h_r, tanh_c_r, probs_r = ring
    W_ih, W_hh, b_ih, b_hh, W_dec, b_dec = param_views(theta, V, H)
    s = t % x_r.shape[0]
    lstm_forward(W_ih, W_hh, b_ih, b_hh, x_r[s], h_r[prev_slot], c_r[prev_slot], gates_r[s], c_r[s], h_r[s], tanh_c_r[s])
    return head_forward(W_dec, b_dec, h_r[s], y_r[s], probs_r[s])


@njit(**JIT)
def lstm_step_only(theta, V, H, ring, t, prev_slot):
    """forward_step without the head: the state of step t, for steps whose loss nobody reads."""
    x_r, y_r, gates_r, c_r, h_r, tanh_c_r, probs_r = ring
    W_ih, W_hh, b_ih, b_hh, W_dec, b_dec = param_views(theta, V, H)
    s = t % x_r.shape[0]
    lstm_forward(W_ih, W_hh, b_ih, b_hh, x_r[s], h_r[prev_slot], c_r[prev_slot], gates_r[s], c_r[s], h_r[s], tanh_c_r[s])


@njit(**JIT)
def lstm_backward(W_hh, gates, c_prev, tanh_c, dh, dc, dz, dh_prev):
    """Backward through one LSTM step: dz (gate pre-activations) and dh_prev; dc becomes dc_prev in place."""
    B, H = dh.shape
    one = dz.dtype.type(1.0)
    for b in range(B):
        gb, dzb, dcb, dhb, cpb, tcb = gates[b], dz[b], dc[b], dh[b], c_prev[b], tanh_c[b]
        for j in range(H):
            i = gb[j]
            f = gb[H + j]
            g = gb[2 * H + j]
            o = gb[3 * H + j]
            tc = tcb[j]
            dcj = dcb[j] + dhb[j] * o * (one - tc * tc)
            dzb[j] = dcj * g * i * (one - i)
            dzb[H + j] = dcj * cpb[j] * f * (one - f)
            dzb[2 * H + j] = dcj * i * (one - g * g)
            dzb[3 * H + j] = dhb[j] * tc * o * (one - o)
            dcb[j] = dcj * f
    np.dot(dz, W_hh, dh_prev)  # B,G @ G,H


SMALL_GEMM_ROWS = 8  # below this many rows a hand loop beats BLAS's packing for the decoder's gradient


@njit(**JIT)
def window_backward(theta, grad, V, H, ring, t, first, first_injected, scale, W_hh_stack, W_dec_stack, work):
    """Gradient of scale * (sum of losses of steps first_injected..t) through steps first..t into grad.

    The gradient stops at the state before step `first`. Step tau's Jacobians use
    W_hh_stack[tau % len] and W_dec_stack[tau % len]: a stack of one (the current weights) for
    `single`, a ring of per-step snapshots for `stored`. Every element of grad is written (its
    previous contents do not matter). dW_hh and dW_dec are written by one GEMM each over the
    window, not summed per step; dW_ih's few nonzero columns (the window's characters) are
    summed row by row, then scattered.
    """
    x_r, y_r, gates_r, c_r, h_r, tanh_c_r, probs_r = ring
    dh, dc, dh_prev, dh_head, dz_all, hprev_all, dlog_all, hinj_all = work
    g_ih, g_hh, g_bih, g_bhh, g_dec, g_bdec = param_views(grad, V, H)
    R = x_r.shape[0]
    n_stack = W_hh_stack.shape[0]
    B = dh.shape[0]
    G = 4 * H
    dh[:] = 0.0
    dc[:] = 0.0
    scale_t = dh.dtype.type(scale)
    for tau in range(t, first - 1, -1):
        s = tau % R
        k = t - tau  # row block of this step in the window matrices
        w = tau % n_stack
        if tau >= first_injected:
            dlog = dlog_all[k * B : (k + 1) * B]
            for b in range(B):
                db, pb = dlog[b], probs_r[s, b]
                for v in range(V):
                    db[v] = pb[v] * scale_t
                db[y_r[s, b]] -= scale_t
                hinj_all[k * B + b, :] = h_r[s, b, :]
            np.dot(dlog, W_dec_stack[w], dh_head)
            dh += dh_head
        dz = dz_all[k * B : (k + 1) * B]
        ps = (tau - 1) % R
        lstm_backward(W_hh_stack[w], gates_r[s], c_r[ps], tanh_c_r[s], dh, dc, dz, dh_prev)
        dh[:] = dh_prev
        hprev_all[k * B : (k + 1) * B] = h_r[ps]
    rows = (t - first + 1) * B
    np.dot(dz_all[:rows].T, hprev_all[:rows], g_hh)
    # biases: the column sums of dz, in the order of the rows (newest step first)
    g_bih[:] = 0.0
    for r in range(rows):
        dzr = dz_all[r]
        for j in range(G):
            g_bih[j] += dzr[j]
    g_bhh[:] = g_bih
    _input_weight_gradient(g_ih, dz_all, x_r, t, rows, B, R)
    rows_injected = (t - first_injected + 1) * B
    if rows_injected < SMALL_GEMM_ROWS:
        for v in range(V):
            gv = g_dec[v]
            d = dlog_all[0, v]
            for j in range(H):
                gv[j] = d * hinj_all[0, j]
            for r in range(1, rows_injected):
                d = dlog_all[r, v]
                hr = hinj_all[r]
                for j in range(H):
                    gv[j] += d * hr[j]
    else:
        np.dot(dlog_all[:rows_injected].T, hinj_all[:rows_injected], g_dec)
    g_bdec[:] = 0.0
    for r in range(rows_injected):
        dr = dlog_all[r]
        for v in range(V):
            g_bdec[v] += dr[v]


DEDUPLICATE_MAX_ROWS = 64  # windows up to this many rows (k2 * B) sum repeated characters' rows first


@njit(**JIT)
def _input_weight_gradient(g_ih, dz_all, x_r, t, rows, B, R):
    """g_ih[:, c] = sum of the dz rows whose input character is c (row r is step t - r // B, stream r % B).

    g_ih is (4H, V) row-major, so a column is a strided walk. For small windows the rows of a
    repeated character are first summed into that character's first row (contiguous, vectorised)
    and each distinct character's column is then written once; larger windows accumulate
    straight into the columns. Both add the rows in row order, so both give the same sums.
    dz_all is clobbered: call this after dz's last reader.
    """
    G = g_ih.shape[0]
    g_ih[:] = 0.0
    if rows > DEDUPLICATE_MAX_ROWS:
        for r in range(rows):
            c = x_r[(t - r // B) % R, r % B]
            dzr = dz_all[r]
            for j in range(G):
                g_ih[j, c] += dzr[j]
        return
    for r in range(rows):
        c = x_r[(t - r // B) % R, r % B]
        first_row = r
        for q in range(r):
            if x_r[(t - q // B) % R, q % B] == c:
                first_row = q
                break
        if first_row < r:
            acc, add = dz_all[first_row], dz_all[r]
            for j in range(G):
                acc[j] += add[j]
    for r in range(rows):
        c = x_r[(t - r // B) % R, r % B]
        repeated = False
        for q in range(r):
            if x_r[(t - q // B) % R, q % B] == c:
                repeated = True
                break
        if not repeated:
            acc = dz_all[r]
            for j in range(G):
                g_ih[j, c] = acc[j]


@njit(**JIT)
def evaluate(theta, V, H, ids, n_chars, state):
    """Mean cross-entropy (nats) of predicting ids[1:n_chars] one stream from a zero state.

    state = (x, y, gates, c, h, h2, tanh_c, probs) scratch arrays for B = 1.
    """
    x, y, gates, c, h, h2, tanh_c, probs = state
    W_ih, W_hh, b_ih, b_hh, W_dec, b_dec = param_views(theta, V, H)
    h[:] = 0.0
    c[:] = 0.0
    total = 0.0
    for p in range(n_chars - 1):
        x[0] = ids[p]
        y[0] = ids[p + 1]
        lstm_forward(W_ih, W_hh, b_ih, b_hh, x, h, c, gates, c, h2, tanh_c)
        h[:] = h2
        total += head_forward(W_dec, b_dec, h, y, probs)
    return total / (n_chars - 1)
