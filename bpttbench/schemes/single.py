"""`single`: one forward step per time step; every k1 steps, backprop through the last k2 steps.

The backward pass uses the stored activations of each past step and the CURRENT weights in
every Jacobian (Williams & Peng's BPTT(h; h'), Sutskever's TBPTT(k1, k2); the red curve of the
Cross Validated question). The gradient stops at the state before the window.
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
def copy_matrix(dst, src):
    for i in range(src.shape[0]):
        d, s = dst[i], src[i]
        for j in range(src.shape[1]):
            d[j] = s[j]


@njit(**JIT)
def run_single_block(theta, grad, V, H, ids, track_len, ring, opt_state, optimizer, lr, clip, t0, n_steps, k1,
                     k2, inject_window, work, index_work, W_in, G_in, W_hh_stack, W_dec_stack, snapshot, fuse_sgd,
                     losses):
    """Steps t0+1 .. t0+n_steps of single/stored/chunked; returns (steps done, updates done).

    With snapshot, the weights each step's forward used are copied into slot t % k2 of the
    stacks before the step (the `stored` scheme); otherwise the stacks are views of theta.
    W_in, G_in: W_ih's and its gradient's rows (see window_gradient_or_sgd_step); W_in is a
    row-major mirror with fuse_sgd (plain SGD, no clipping: the update is applied inside the
    backward pass).
    """
    x_r, y_r = ring[0], ring[1]
    R = x_r.shape[0]
    B = x_r.shape[1]
    _, W_hh, _, _, W_dec, _ = param_views(theta, V, H)
    updates = 0
    for n in range(n_steps):
        t = t0 + n + 1
        s = t % R
        read_inputs(ids, track_len, t, x_r[s], y_r[s])
        if snapshot:
            copy_matrix(W_hh_stack[t % k2], W_hh)
            copy_matrix(W_dec_stack[t % k2], W_dec)
        loss = forward_step_with_input_weights(theta, V, H, ring, t, (t - 1) % R, W_in, True) / B
        losses[n] = loss
        if not np.isfinite(loss):
            return n + 1, updates
        if t % k1 == 0:
            first, first_injected = window_bounds(t, k1, k2, inject_window)
            scale = 1.0 / ((t - first_injected + 1) * B)
            sum_sq_in = window_gradient_or_sgd_step(theta, grad, V, H, ring, t, first, first_injected, scale,
                                                    W_hh_stack, W_dec_stack, work, index_work,
                                                    lr if fuse_sgd else 0.0, W_in, G_in)
            if not fuse_sgd:
                apply_update_with_partial_sum(theta, grad, opt_state, optimizer, lr, clip, G_in.size, sum_sq_in)
            updates += 1
    return n_steps, updates


class Single(TruncatedScheme):
    name = "single"
    block_kernel = staticmethod(run_single_block)
    snapshot = False

    def weight_stacks(self):
        """The weights each window step's Jacobians use: here, views of the current weights."""
        views = param_views(self.theta, self.V, self.H)
        W_hh, W_dec = views[1], views[4]
        return W_hh.reshape((1,) + W_hh.shape), W_dec.reshape((1,) + W_dec.shape)

    def kernel_arguments(self) -> tuple:
        return (self.k2, self.inject_window, self.work, self.index_work, self.input_weights(), self.input_gradient(),
                *self.weight_stacks(), self.snapshot, self.fuses_sgd())
