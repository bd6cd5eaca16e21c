"""`single`: one forward step per time step; every k1 steps, backprop through the last k2 steps.

The backward pass uses the stored activations of each past step and the CURRENT weights in
every Jacobian (Williams & Peng's BPTT(h; h'), Sutskever's TBPTT(k1, k2); the red curve of the
Cross Validated question). The gradient stops at the state before the window.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bpttbench.kernels.lstm import JIT, forward_step, param_views, read_inputs, window_backward
from bpttbench.kernels.optim import apply_update
from bpttbench.schemes.base import Scheme


@njit(**JIT)
def run_single_block(theta, grad, V, H, ids, track_len, ring, work, opt_state, optimizer, lr, clip,
                     t0, n_steps, k1, k2, inject_window, W_hh_stack, W_dec_stack, snapshot, losses):
    """Steps t0+1 .. t0+n_steps of single/stored/chunked; returns (steps done, updates done).

    With snapshot, the weights each step's forward used are copied into slot t % k2 of the
    stacks before the step (the `stored` scheme); otherwise the stacks are views of theta.
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
            W_hh_stack[t % k2] = W_hh
            W_dec_stack[t % k2] = W_dec
        loss = forward_step(theta, V, H, ring, t, (t - 1) % R) / B
        losses[n] = loss
        if not np.isfinite(loss):
            return n + 1, updates
        if t % k1 == 0:
            first = max(1, t - k2 + 1)
            first_injected = first if inject_window else max(first, t - k1 + 1)
            scale = 1.0 / ((t - first_injected + 1) * B)
            window_backward(theta, grad, V, H, ring, t, first, first_injected, scale, W_hh_stack, W_dec_stack, work)
            apply_update(theta, grad, opt_state, optimizer, lr, clip)
            updates += 1
    return n_steps, updates


class Single(Scheme):
    name = "single"
    snapshot = False

    def weight_stacks(self):
        """The weights each window step's Jacobians use: here, views of the current weights."""
        views = param_views(self.theta, self.V, self.H)
        W_hh, W_dec = views[1], views[4]
        return W_hh.reshape((1,) + W_hh.shape), W_dec.reshape((1,) + W_dec.shape)

    def run(self, n_steps: int, losses: np.ndarray) -> int:
        W_hh_stack, W_dec_stack = self.weight_stacks()
        done, updates = run_single_block(
            self.theta, self.grad, self.V, self.H, self.ids, self.track_len, self.ring, self.work,
            self.opt_state, self.optimizer, self.lr, self.clip, self.t, n_steps, self.k1, self.k2,
            self.inject_window, W_hh_stack, W_dec_stack, self.snapshot, losses,
        )
        self.t += done
        self.updates += updates
        return done
