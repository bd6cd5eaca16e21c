"""`sliding`: at each update, re-run the last k2 steps forward with the current weights, then backprop.

The forward pass starts from the stored state of the step before the window (as most recently
computed, treated as a constant) and its recomputed states replace the old ones. The newest k1
steps are forwarded only by this pass, so their online losses are the ones it computes. The
result is the exact gradient of the window loss (the blue curve of the Cross Validated question).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bpttbench.kernels.network import (JIT, forward_step_with_input_weights, param_views, read_inputs,
                                    window_gradient_or_sgd_step)
from bpttbench.kernels.optim import apply_update_with_partial_sum
from bpttbench.kernels.windows import window_bounds
from bpttbench.schemes.base import TruncatedScheme


@njit(**JIT)
def run_sliding_block(theta, grad, V, H, ids, track_len, ring, opt_state, optimizer, lr, clip, t0, n_steps, k1,
                      k2, inject_window, work, index_work, W_in, G_in, fuse_sgd, losses):
    """Steps t0+1 .. t0+n_steps (a multiple of k1); returns (steps done, updates done).

    W_in, G_in: W_ih's and its gradient's rows (see window_gradient_or_sgd_step); W_in is a
    row-major mirror with fuse_sgd (plain SGD, no clipping: the update is applied inside the
    backward pass).
    """
    x_r, y_r = ring[0], ring[1]
    R = x_r.shape[0]
    B = x_r.shape[1]
    _, W_hh, _, _, W_dec, _ = param_views(theta, V, H)
    W_hh_stack = W_hh.reshape((1, W_hh.shape[0], W_hh.shape[1]))
    W_dec_stack = W_dec.reshape((1, W_dec.shape[0], W_dec.shape[1]))
    updates = 0
    for n in range(k1 - 1, n_steps, k1):
        t = t0 + n + 1
        first, first_injected = window_bounds(t, k1, k2, inject_window)
        newest = t - k1 + 1
        diverged = False
        for tau in range(first, t + 1):
            s = tau % R
            if tau < first_injected:  # neither its loss nor its softmax is read: the state is all we need
                forward_step_with_input_weights(theta, V, H, ring, tau, (tau - 1) % R, W_in, False)
                continue
            if tau >= newest:
                read_inputs(ids, track_len, tau, x_r[s], y_r[s])
            loss = forward_step_with_input_weights(theta, V, H, ring, tau, (tau - 1) % R, W_in, True) / B
            if tau >= newest:
                losses[n - (t - tau)] = loss
                diverged = diverged or not np.isfinite(loss)
        if diverged:
            return n + 1, updates
        scale = 1.0 / ((t - first_injected + 1) * B)
        sum_sq_in = window_gradient_or_sgd_step(theta, grad, V, H, ring, t, first, first_injected, scale, W_hh_stack,
                                                W_dec_stack, work, index_work, lr if fuse_sgd else 0.0, W_in, G_in)
        if not fuse_sgd:
            apply_update_with_partial_sum(theta, grad, opt_state, optimizer, lr, clip, G_in.size, sum_sq_in)
        updates += 1
    return n_steps, updates


class Sliding(TruncatedScheme):
    name = "sliding"
    block_kernel = staticmethod(run_sliding_block)
    whole_periods = True

    def kernel_arguments(self) -> tuple:
        return (self.k2, self.inject_window, self.work, self.index_work, self.input_weights(), self.input_gradient(),
                self.fuses_sgd())
