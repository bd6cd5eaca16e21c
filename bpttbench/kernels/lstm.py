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

JIT = dict(cache=True, nogil=True)


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
    return 1.0 / (1.0 + np.exp(-z))


@njit(**JIT)
def lstm_forward(W_ih, W_hh, b_ih, b_hh, x, h_prev, c_prev, gates, c, h, tanh_c):
    """One LSTM step for all streams; writes gates (post-activation), c, h, tanh(c)."""
    B, H = h_prev.shape
    np.dot(h_prev, W_hh.T, gates)  # B,G
    for b in range(B):
        xb = x[b]
        for j in range(H):
            i = sigmoid(gates[b, j] + W_ih[j, xb] + b_ih[j] + b_hh[j])
            f = sigmoid(gates[b, H + j] + W_ih[H + j, xb] + b_ih[H + j] + b_hh[H + j])
            g = np.tanh(gates[b, 2 * H + j] + W_ih[2 * H + j, xb] + b_ih[2 * H + j] + b_hh[2 * H + j])
            o = sigmoid(gates[b, 3 * H + j] + W_ih[3 * H + j, xb] + b_ih[3 * H + j] + b_hh[3 * H + j])
            gates[b, j] = i
            gates[b, H + j] = f
            gates[b, 2 * H + j] = g
            gates[b, 3 * H + j] = o
            cj = f * c_prev[b, j] + i * g
            c[b, j] = cj
            tc = np.tanh(cj)
            tanh_c[b, j] = tc
            h[b, j] = o * tc


@njit(**JIT)
def head_forward(W_dec, b_dec, h, y, probs):
    """Softmax over the decoder's logits into probs; returns the summed cross-entropy (nats)."""
    B, V = probs.shape
    np.dot(h, W_dec.T, probs)  # B,V logits
    total = 0.0
    for b in range(B):
        peak = probs[b, 0] + b_dec[0]
        for v in range(V):
            probs[b, v] += b_dec[v]
            if probs[b, v] > peak:
                peak = probs[b, v]
        norm = 0.0
        for v in range(V):
            norm += np.exp(probs[b, v] - peak)
        # log-sum-exp form: exact even when the target's probability underflows
        total += np.log(norm) + peak - probs[b, y[b]]
        for v in range(V):
            probs[b, v] = np.exp(probs[b, v] - peak) / norm
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
def lstm_backward(W_hh, gates, c_prev, tanh_c, dh, dc, dz, dh_prev):
    """Backward through one LSTM step: dz (gate pre-activations) and dh_prev; dc becomes dc_prev in place."""
    B, H = dh.shape
    for b in range(B):
        for j in range(H):
            i = gates[b, j]
            f = gates[b, H + j]
            g = gates[b, 2 * H + j]
            o = gates[b, 3 * H + j]
            tc = tanh_c[b, j]
            dcj = dc[b, j] + dh[b, j] * o * (1.0 - tc * tc)
            dz[b, j] = dcj * g * i * (1.0 - i)
            dz[b, H + j] = dcj * c_prev[b, j] * f * (1.0 - f)
            dz[b, 2 * H + j] = dcj * i * (1.0 - g * g)
            dz[b, 3 * H + j] = dh[b, j] * tc * o * (1.0 - o)
            dc[b, j] = dcj * f
    np.dot(dz, W_hh, dh_prev)  # B,G @ G,H


@njit(**JIT)
def window_backward(theta, grad, V, H, ring, t, first, first_injected, scale, W_hh_stack, W_dec_stack, work):
    """Gradient of scale * (sum of losses of steps first_injected..t) through steps first..t into grad.

    The gradient stops at the state before step `first`. Step tau's Jacobians use
    W_hh_stack[tau % len] and W_dec_stack[tau % len]: a stack of one (the current weights) for
    `single`, a ring of per-step snapshots for `stored`. grad must be zero on entry.
    dW_hh and dW_dec are written by one GEMM each over the window, not summed per step.
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
    for tau in range(t, first - 1, -1):
        s = tau % R
        k = t - tau  # row block of this step in the window matrices
        w = tau % n_stack
        if tau >= first_injected:
            dlog = dlog_all[k * B : (k + 1) * B]
            for b in range(B):
                for v in range(V):
                    dlog[b, v] = probs_r[s, b, v] * scale
                dlog[b, y_r[s, b]] -= scale
                hinj_all[k * B + b, :] = h_r[s, b, :]
            np.dot(dlog, W_dec_stack[w], dh_head)
            dh += dh_head
        dz = dz_all[k * B : (k + 1) * B]
        ps = (tau - 1) % R
        lstm_backward(W_hh_stack[w], gates_r[s], c_r[ps], tanh_c_r[s], dh, dc, dz, dh_prev)
        dh[:] = dh_prev
        for b in range(B):
            hprev_all[k * B + b, :] = h_r[ps, b, :]
            xb = x_r[s, b]
            for j in range(G):
                g_ih[j, xb] += dz[b, j]
                g_bih[j] += dz[b, j]
    g_bhh[:] = g_bih
    rows = (t - first + 1) * B
    np.dot(dz_all[:rows].T, hprev_all[:rows], g_hh)
    rows_injected = (t - first_injected + 1) * B
    np.dot(dlog_all[:rows_injected].T, hinj_all[:rows_injected], g_dec)
    for r in range(rows_injected):
        for v in range(V):
            g_bdec[v] += dlog_all[r, v]


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
