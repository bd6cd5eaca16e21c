"""`adaptive`: chunked TBPTT whose chunk length follows the gradient's decay (Aicher, Foti & Fox,
"Adaptively Truncating Backpropagation Through Time to Control Gradient Bias", UAI 2019).

Training is `chunked` at the truncation k in force (k2 at the start). After every `adapt_every`
updates, just before that update, one extra backward pass from the newest step's loss through
the last n = min(k_max, t) stored steps measures phi_l, the mean over streams of
||dL_t / d(h, c)_{t-l}|| for lags l = 0 .. n-1, and k becomes the smallest truncation whose
estimated relative bias is at most delta (`choose_truncation`), clamped to [1, k_max]; it holds
from the next chunk on. The ring keeps k_max + 1 steps (or k2 + 1 for a larger initial k2).

The estimate (the authors' code, simplified): fit log phi_l = a + l log(beta) by least squares
over the tail half of the lags, l in [tau, n-1] with tau = n // 2 (lags whose norm underflowed to
0 left out; with fewer than two left the tail beyond tau counts as 0); beyond tau the norms are
taken as the fitted geometric sequence, before it as measured. The bias of truncating at k is
bounded by the norms of the dropped lags, so with
    tail(k) = sum_{l=k}^{tau-1} phi_l + phi_hat_tau * beta^(max(k, tau) - tau) / (1 - beta)
(the sum empty when k >= tau), the relative bias is estimated as rel(k) = tail(k) / tail(0), the
dropped norms over all of them (for purely geometric norms, beta^k). beta >= 1 gives no finite
tail: k = k_max. The identical NumPy version is bpttbench/reference.py's `adaptive_truncation`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bpttbench.kernels.blas import dot
from bpttbench.kernels.cells import GRU, cell_backward
from bpttbench.kernels.network import (JIT, forward_step_with_input_weights, param_views, read_inputs,
                                       window_gradient_or_sgd_step)
from bpttbench.kernels.optim import apply_update_with_partial_sum
from bpttbench.schemes.base import aligned_copy, aligned_zeros
from bpttbench.schemes.single import Single


@njit(**JIT)
def choose_truncation(norms, delta, k_max):
    """The smallest k in [1, k_max] whose estimated relative bias is at most delta (module docstring)."""
    n = norms.shape[0]
    tau = n // 2
    m = 0
    x_mean = 0.0
    y_mean = 0.0
    for l in range(tau, n):
        if norms[l] > 0.0:
            m += 1
            x_mean += l
            y_mean += np.log(norms[l])
    geometric = 0.0  # the fitted tail from lag tau on: none when the norms there underflowed to 0
    beta = 0.0
    if m >= 2:
        x_mean /= m
        y_mean /= m
        sxy = 0.0
        sxx = 0.0
        for l in range(tau, n):
            if norms[l] > 0.0:
                sxy += (l - x_mean) * (np.log(norms[l]) - y_mean)
                sxx += (l - x_mean) ** 2
        log_beta = sxy / sxx
        if log_beta >= 0.0:
            return k_max
        beta = np.exp(log_beta)
        geometric = np.exp(y_mean + log_beta * (tau - x_mean)) / (1.0 - beta)
    total = geometric
    for l in range(tau):
        total += norms[l]
    head = 0.0  # norms of lags 0 .. k-1 while k <= tau
    for k in range(1, k_max + 1):
        if k <= tau:
            head += norms[k - 1]
            tail = total - head
        else:
            tail = geometric * beta ** (k - tau)
        if tail <= delta * total:
            return k
    return k_max


@njit(**JIT)
def decay_norms(theta, V, H, ring, t, n, work, norms):
    """norms[l] = mean over streams of ||dL_t / d(h, c)_{t-l}||, l = 0 .. n-1, L_t step t's loss
    (c: the LSTM's cell state; the other cells' state is h alone, and dc stays 0)."""
    x_r, y_r, gates_r, c_r, h_r, aux_r, probs_r = ring
    dh, dc, dh_prev, _, dz_all, _, dlog_all, _, dzh_rows = work
    W_hh, W_dec = param_views(theta, V, H)[1], param_views(theta, V, H)[4]
    R = x_r.shape[0]
    B = dh.shape[0]
    s = t % R
    dlog = dlog_all[:B]
    for b in range(B):
        dlog[b] = probs_r[s, b]
        dlog[b, y_r[s, b]] -= 1.0
    dot(dlog, W_dec, dh)
    dc[:] = 0.0
    dz = dz_all[:B]
    dzh = dzh_rows[:B] if gates_r.shape[2] == GRU * H else dz
    for l in range(n):
        total = 0.0
        for b in range(B):
            sq = 0.0
            for j in range(H):
                sq += dh[b, j] * dh[b, j] + dc[b, j] * dc[b, j]
            total += np.sqrt(sq)
        norms[l] = total / B
        if l + 1 < n:
            tau = t - l
            ps = (tau - 1) % R
            cell_backward(W_hh, gates_r[tau % R], c_r[ps], aux_r[tau % R], h_r[ps], dh, dc, dz, dzh, dh_prev)
            dh, dh_prev = dh_prev, dh


@njit(**JIT)
def run_adaptive_block(theta, grad, V, H, ids, track_len, ring, opt_state, optimizer, lr, clip, t0, n_steps, k1,
                       state, k_max, adapt_every, delta, norms, work, index_work, W_in, G_in, W_hh_stack, W_dec_stack,
                       fuse_sgd, losses):
    """Steps t0+1 .. t0+n_steps of `adaptive`; returns (steps done, updates done).

    k1 is the truncation in force; state = [truncation, step its chunk started after, updates so
    far] carries it across blocks (the kernel writes it back).
    """
    x_r, y_r = ring[0], ring[1]
    R = x_r.shape[0]
    B = x_r.shape[1]
    k = k1
    chunk_start = state[1]
    total_updates = state[2]
    updates = 0
    for n in range(n_steps):
        t = t0 + n + 1
        s = t % R
        read_inputs(ids, track_len, t, x_r[s], y_r[s])
        loss = forward_step_with_input_weights(theta, V, H, ring, t, (t - 1) % R, W_in, True) / B
        losses[n] = loss
        if not np.isfinite(loss):
            state[0], state[1], state[2] = k, chunk_start, total_updates
            return n + 1, updates
        if t - chunk_start == k:
            next_k = k
            if (total_updates + 1) % adapt_every == 0:
                lags = min(k_max, t)
                if lags >= 4:  # a line through fewer tail points says nothing
                    decay_norms(theta, V, H, ring, t, lags, work, norms)
                    next_k = choose_truncation(norms[:lags], delta, k_max)
            first = t - k + 1
            scale = 1.0 / (k * B)
            sum_sq_in = window_gradient_or_sgd_step(theta, grad, V, H, ring, t, first, first, scale, W_hh_stack,
                                                    W_dec_stack, work, index_work, lr if fuse_sgd else 0.0, W_in, G_in)
            if not fuse_sgd:
                apply_update_with_partial_sum(theta, grad, opt_state, optimizer, lr, clip, G_in.size, sum_sq_in)
            updates += 1
            total_updates += 1
            chunk_start = t
            k = next_k
    state[0], state[1], state[2] = k, chunk_start, total_updates
    return n_steps, updates


class Adaptive(Single):
    name = "adaptive"
    block_kernel = staticmethod(run_adaptive_block)

    def __init__(self, cfg, theta, vocab_size, train_ids):
        # Ring, window scratch and index scratch sized for the longest truncation: k_max, or an
        # initial k2 above it (which holds until the first re-estimate).
        longest = max(cfg.k_max, cfg.k2)
        super().__init__(cfg.replace(k1=longest, k2=longest), theta, vocab_size, train_ids)
        self.cfg = cfg
        self.k1 = self.k2 = cfg.k2
        self.k_max, self.adapt_every, self.delta = cfg.k_max, cfg.adapt_every, float(cfg.delta)
        self.state = aligned_copy(np.array([cfg.k2, 0, 0], np.int64))
        self.norms = aligned_zeros(cfg.k_max, np.float64)

    def run_block(self, n_steps: int, losses: np.ndarray) -> tuple[int, int]:
        done = super().run_block(n_steps, losses)
        self.k1 = self.k2 = int(self.state[0])  # the truncation now in force
        return done

    def kernel_arguments(self) -> tuple:
        return (self.state, self.k_max, self.adapt_every, self.delta, self.norms, self.work, self.index_work,
                self.input_weights(), self.input_gradient(), *self.weight_stacks(), self.fuses_sgd())

    def own_arrays(self) -> tuple:
        return (*super().own_arrays(), self.state, self.norms)
