"""`single`: one forward step per time step; every k1 steps, backprop through the last k2 steps.

The backward pass uses the stored activations of each past step and the CURRENT weights in
every Jacobian (Williams & Peng's BPTT(h; h'), Sutskever's TBPTT(k1, k2); the red curve of the
Cross Validated question). The gradient stops at the state before the window.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bpttbench.kernels.lstm import (JIT, forward_step_in, mirror_input_weights, param_views, read_inputs,
                                    unmirror_input_weights, window_backward_sgd)
from bpttbench.kernels.optim import apply_update
from bpttbench.schemes.base import Scheme


@njit(**JIT)
def run_single_block(theta, grad, V, H, ids, track_len, ring, work, index_work, W_in_mirror, opt_state, optimizer,
                     lr, clip, t0, n_steps, k1, k2, inject_window, W_hh_stack, W_dec_stack, snapshot, fuse_sgd, losses):
    """Steps t0+1 .. t0+n_steps of single/stored/chunked; returns (steps done, updates done).

    With snapshot, the weights each step's forward used are copied into slot t % k2 of the
    stacks before the step (the `stored` scheme); otherwise the stacks are views of theta.
    With fuse_sgd (plain SGD, no clipping) the update is applied inside the backward pass, and
    W_ih is read and updated through its row-major mirror for the block.
    """
    args = (theta, grad, V, H, ids, track_len, ring, work, index_work, opt_state, optimizer, lr, clip, t0, n_steps,
            k1, k2, inject_window, W_hh_stack, W_dec_stack, snapshot, fuse_sgd, losses)
    if not fuse_sgd:
        return _single_steps(*args, param_views(theta, V, H)[0].T)
    mirror_input_weights(theta, V, H, W_in_mirror)
    done = _single_steps(*args, W_in_mirror)
    unmirror_input_weights(theta, V, H, W_in_mirror)
    return done


@njit(**JIT)
def copy_matrix(dst, src):
    for i in range(src.shape[0]):
        d, s = dst[i], src[i]
        for j in range(src.shape[1]):
            d[j] = s[j]


@njit(**JIT)
def _single_steps(theta, grad, V, H, ids, track_len, ring, work, index_work, opt_state, optimizer, lr, clip,
                  t0, n_steps, k1, k2, inject_window, W_hh_stack, W_dec_stack, snapshot, fuse_sgd, losses, W_in):
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
        loss = forward_step_in(theta, V, H, ring, t, (t - 1) % R, W_in, True) / B
        losses[n] = loss
        if not np.isfinite(loss):
            return n + 1, updates
        if t % k1 == 0:
            first = max(1, t - k2 + 1)
            first_injected = first if inject_window else max(first, t - k1 + 1)
            scale = 1.0 / ((t - first_injected + 1) * B)
            window_backward_sgd(theta, grad, V, H, ring, t, first, first_injected, scale, W_hh_stack, W_dec_stack,
                                work, index_work, lr if fuse_sgd else 0.0, W_in)
            if not fuse_sgd:
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
            self.theta, self.grad, self.V, self.H, self.ids, self.track_len, self.ring, self.work, self.index_work,
            self.W_in_mirror,
            self.opt_state, self.optimizer, self.lr, self.clip, self.t, n_steps, self.k1, self.k2,
            self.inject_window, W_hh_stack, W_dec_stack, self.snapshot, self.fuses_sgd(), losses,
        )
        self.t += done
        self.updates += updates
        return done
