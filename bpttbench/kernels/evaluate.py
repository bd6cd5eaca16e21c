"""Validation: the held-out text read as many parallel streams, each from a zero state, in one kernel.

One stream read from a zero state is cheap to define but noisy and slow: 10,000 characters of one
place in the text, one matrix-vector product per character. Cut into S streams instead, the whole
split is read with one (S, H) x (H, G) product per step, and every character but the first
`burn_in` of the split is scored exactly once:

    predictions q = burn_in .. n-2 (input ids[q], target ids[q+1]) are split into S contiguous,
    near-equal parts; stream s, scoring the part that starts at q_s, starts from the zero state
    at input q_s - burn_in, so it has read `burn_in` characters (unscored) before it scores.

`stream_plan` fixes the streams from the text's length; the kernel runs them; the reference
(bpttbench/reference.py's evaluate_streams) reads each stream alone and a test compares the two.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bpttbench.kernels.blas import dot
from bpttbench.kernels.cells import GRU, LSTM
from bpttbench.kernels.network import param_views
from bpttbench.kernels.vecmath import JIT, vexp, vsigmoid, vtanh
from bpttbench.scheme_names import CELLS, DEFAULT_CELL


def stream_plan(n_chars: int, *, max_streams: int, burn_in: int, min_scored: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(first input of each stream, scored predictions of each stream, burn-in) for n_chars characters.

    As many streams as give each at least `min_scored` scored predictions, at most max_streams; the
    burn-in shrinks on texts too short for it, so that at least half of the predictions count.
    """
    if n_chars < 2:
        raise ValueError(f"evaluation needs at least 2 characters, got {n_chars}")
    burn_in = min(burn_in, (n_chars - 1) // 2)
    scored = n_chars - 1 - burn_in
    streams = max(1, min(max_streams, scored // max(min_scored, 1)))
    bounds = burn_in + (np.arange(streams + 1, dtype=np.int64) * scored) // streams
    return bounds[:-1] - burn_in, np.diff(bounds), burn_in


def stream_scratch(streams: int, hidden: int, vocab_size: int, dtype, cell: str = DEFAULT_CELL) -> tuple:
    """Scratch arrays for evaluate_streams: (x, y, gates, c, h, W_in, logits, peak, norm)."""
    S, H, V = streams, hidden, vocab_size
    G = CELLS[cell] * H
    return (np.zeros(S, np.int32), np.zeros(S, np.int32), np.zeros((S, G), dtype), np.zeros((S, H), dtype),
            np.zeros((S, H), dtype), np.zeros((V, G), dtype), np.zeros((V, S), dtype), np.zeros(S, dtype),
            np.zeros(S, dtype))


@njit(**JIT)
def evaluate_streams(theta, V, H, ids, starts, lengths, burn_in, scratch):
    """(summed cross-entropy in nats, predictions scored) over the streams of stream_plan.

    All streams step together; a stream that has scored its part repeats its last input (its
    state is no longer read) until the longest is done, which is at most one step.

    Speed: besides the two products per step, the work is elementwise, and every loop of it runs
    over contiguous memory so that LLVM vectorises it: the input weights are copied once into
    rows per character with the biases folded in (the GRU's b_hn stays apart: r scales it), the
    cell is one fused loop per stream,
    and the logits are laid out (V, S) so that the log-sum-exp's max and sum run across streams.
    """
    x, y, gates, c, h, W_in, logits, peak, norm = scratch
    W_ih, W_hh, b_ih, b_hh, W_dec, b_dec = param_views(theta, V, H)
    G = W_hh.shape[0]
    blocks = G // H
    folded = 2 * H if blocks == GRU else G  # the GRU's b_hn is added to W_hn h, inside r's product
    for v in range(V):
        for j in range(G):
            W_in[v, j] = W_ih[j, v] + b_ih[j] + (b_hh[j] if j < folded else 0.0)
    S = starts.size
    h[:] = 0.0
    c[:] = 0.0
    total = 0.0
    count = 0
    longest = 0
    for s in range(S):
        longest = max(longest, lengths[s])
    for step in range(burn_in + longest):
        for s in range(S):
            q = starts[s] + min(step, burn_in + lengths[s] - 1)
            x[s] = ids[q]
            y[s] = ids[q + 1]
        if blocks == GRU:  # it reads h after the product: keep it
            c[:] = h
        dot(h, W_hh.T, gates)  # S,G; h is read here, so the cell may overwrite it
        if blocks == LSTM:
            _lstm_cells(gates, W_in, x, c, h)
        elif blocks == GRU:
            _gru_cells(gates, W_in, b_hh[2 * H :], x, c, h)
        else:
            _rnn_cells(gates, W_in, x, h)
        if step < burn_in:
            continue
        dot(W_dec, h.T, logits)  # V,S
        _log_sum_exp_columns(logits, b_dec, peak, norm)
        for s in range(S):
            if step - burn_in < lengths[s]:
                total += np.log(norm[s]) + peak[s] - logits[y[s], s]
                count += 1
    return total, count


@njit(**JIT)
def _lstm_cells(z, W_in, x, c, h):
    """Every stream's LSTM cell in place: gates z (S, 4H: W_hh h, no bias) plus row x[s] of W_in
    (the input's weights with the biases) -> c, h. One function over 2-D arrays, not a call per
    stream on row slices: that took half as long again (reference counts of the slices)."""
    S, H = h.shape
    for s in range(S):
        w = x[s]
        for j in range(H):
            c_j = (vsigmoid(z[s, H + j] + W_in[w, H + j]) * c[s, j]
                   + vsigmoid(z[s, j] + W_in[w, j]) * vtanh(z[s, 2 * H + j] + W_in[w, 2 * H + j]))
            c[s, j] = c_j
            h[s, j] = vsigmoid(z[s, 3 * H + j] + W_in[w, 3 * H + j]) * vtanh(c_j)


@njit(**JIT)
def _gru_cells(z, W_in, b_hn, x, h_prev, h):
    """Every stream's GRU cell: gates z (S, 3H: W_hh h_prev, no bias), row x[s] of W_in (the
    input's weights with the biases but b_hn), h_prev a copy of the state -> h."""
    S, H = h.shape
    for s in range(S):
        w = x[s]
        for j in range(H):
            r = vsigmoid(z[s, j] + W_in[w, j])
            u = vsigmoid(z[s, H + j] + W_in[w, H + j])
            n = vtanh(W_in[w, 2 * H + j] + r * (z[s, 2 * H + j] + b_hn[j]))
            h[s, j] = (1.0 - u) * n + u * h_prev[s, j]


@njit(**JIT)
def _rnn_cells(z, W_in, x, h):
    """Every stream's tanh RNN cell: z (S, H: W_hh h, no bias) plus row x[s] of W_in -> h."""
    S, H = h.shape
    for s in range(S):
        w = x[s]
        for j in range(H):
            h[s, j] = vtanh(z[s, j] + W_in[w, j])


@njit(**JIT)
def _log_sum_exp_columns(logits, bias, peak, norm):
    """Per column s of logits (V, S): adds the bias in place, peak[s] = max over v, norm[s] = sum
    of exp(logit - peak); -log softmax[target] is then log(norm) + peak - logit (exact when the
    target's probability underflows)."""
    V, S = logits.shape
    row = logits[0]
    for s in range(S):
        peak[s] = row[s] + bias[0]
        norm[s] = 0.0
    for v in range(V):
        row = logits[v]
        b = bias[v]
        for s in range(S):
            row[s] += b
            peak[s] = row[s] if row[s] > peak[s] else peak[s]
    for v in range(V):
        row = logits[v]
        for s in range(S):
            norm[s] += vexp(row[s] - peak[s])
