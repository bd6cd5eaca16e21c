"""Validation: the held-out text read as many parallel streams, each from a zero state, in one kernel.

One stream read from a zero state is cheap to define but noisy and slow: 10,000 characters of one
place in the text, one matrix-vector product per character. Cut into S streams instead, the whole
split is read with one (S, H) x (H, 4H) product per step, and every character but the first
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

from bpttbench.kernels.lstm import lstm_forward_with_input_weights, param_views
from bpttbench.kernels.vecmath import JIT, vexp


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


def stream_scratch(streams: int, hidden: int, vocab_size: int, dtype) -> tuple:
    """Scratch arrays for evaluate_streams: (x, y, gates, c, h, h_next, tanh_c, logits)."""
    S, H, V = streams, hidden, vocab_size
    return (np.zeros(S, np.int32), np.zeros(S, np.int32), np.zeros((S, 4 * H), dtype), np.zeros((S, H), dtype),
            np.zeros((S, H), dtype), np.zeros((S, H), dtype), np.zeros((S, H), dtype), np.zeros((S, V), dtype))


@njit(**JIT)
def evaluate_streams(theta, V, H, ids, starts, lengths, burn_in, scratch):
    """(summed cross-entropy in nats, predictions scored) over the streams of stream_plan.

    All streams step together; a stream that has scored its part repeats its last input (its
    state is no longer read) until the longest is done, which is at most one step.
    """
    x, y, gates, c, h, h_next, tanh_c, logits = scratch
    W_ih, W_hh, b_ih, b_hh, W_dec, b_dec = param_views(theta, V, H)
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
        # the training kernels' own forward (W_ih.T, as lstm_forward passes it): compiled once for both
        lstm_forward_with_input_weights(W_ih.T, W_hh, b_ih, b_hh, x, h, c, gates, c, h_next, tanh_c)
        h, h_next = h_next, h  # the new state becomes the state: swap, not copy
        if step < burn_in:
            continue
        np.dot(h, W_dec.T, logits)  # S,V
        for s in range(S):
            if step - burn_in < lengths[s]:
                total += _cross_entropy(logits[s], b_dec, y[s])
                count += 1
    return total, count


@njit(**JIT)
def _cross_entropy(logits, bias, target):
    """-log softmax(logits + bias)[target], in the log-sum-exp form (exact when the target underflows)."""
    peak = -np.inf
    for v in range(logits.size):
        logits[v] += bias[v]
        if logits[v] > peak:
            peak = logits[v]
    norm = 0.0
    for v in range(logits.size):
        norm += vexp(logits[v] - peak)
    return np.log(norm) + peak - logits[target]
