"""`sliding`: at each update, re-run the last k2 steps forward with the current weights, then backprop.

The forward pass starts from the stored state of the step before the window (as most recently
computed, treated as a constant) and its recomputed states replace the old ones. The newest k1
steps are forwarded only by this pass, so their online losses are the ones it computes. The
result is the exact gradient of the window loss (the blue curve of the Cross Validated question).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bpttbench.kernels.lstm import (JIT, forward_step_in, mirror_input_weights, param_views, read_inputs,
                                    unmirror_input_weights, window_backward_sgd)
from bpttbench.kernels.optim import apply_update
from bpttbench.schemes.base import Scheme


@njit(**JIT)
def run_sliding_block(theta, grad, V, H, ids, track_len, ring, work, index_work, W_in_mirror, opt_state, optimizer,
                      lr, clip, t0, n_steps, k1, k2, inject_window, fuse_sgd, losses):
    """Steps t0+1 .. t0+n_steps (a multiple of k1); returns (steps done, updates done).

    With fuse_sgd (plain SGD, no clipping) the update is applied inside the backward pass, and
    W_ih is read and updated through its row-major mirror for the block.
    """
    args = (theta, grad, V, H, ids, track_len, ring, work, index_work, opt_state, optimizer, lr, clip, t0, n_steps,
            k1, k2, inject_window, fuse_sgd, losses)
    if not fuse_sgd:
        return _sliding_steps(*args, param_views(theta, V, H)[0].T)
    mirror_input_weights(theta, V, H, W_in_mirror)
    done = _sliding_steps(*args, W_in_mirror)
    unmirror_input_weights(theta, V, H, W_in_mirror)
    return done


@njit(**JIT)
def _sliding_steps(theta, grad, V, H, ids, track_len, ring, work, index_work, opt_state, optimizer, lr, clip,
                   t0, n_steps, k1, k2, inject_window, fuse_sgd, losses, W_in):
    x_r, y_r = ring[0], ring[1]
    R = x_r.shape[0]
    B = x_r.shape[1]
    _, W_hh, _, _, W_dec, _ = param_views(theta, V, H)
    W_hh_stack = W_hh.reshape((1, W_hh.shape[0], W_hh.shape[1]))
    W_dec_stack = W_dec.reshape((1, W_dec.shape[0], W_dec.shape[1]))
    updates = 0
    for n in range(k1 - 1, n_steps, k1):
        t = t0 + n + 1
        first = max(1, t - k2 + 1)
        newest = t - k1 + 1
        first_injected = first if inject_window else max(first, newest)
        diverged = False
        for tau in range(first, t + 1):
            s = tau % R
            if tau < first_injected:  # neither its loss nor its softmax is read: the state is all we need
                forward_step_in(theta, V, H, ring, tau, (tau - 1) % R, W_in, False)
                continue
            if tau >= newest:
                read_inputs(ids, track_len, tau, x_r[s], y_r[s])
            loss = forward_step_in(theta, V, H, ring, tau, (tau - 1) % R, W_in, True) / B
            if tau >= newest:
                losses[n - (t - tau)] = loss
                diverged = diverged or not np.isfinite(loss)
        if diverged:
            return n + 1, updates
        scale = 1.0 / ((t - first_injected + 1) * B)
        window_backward_sgd(theta, grad, V, H, ring, t, first, first_injected, scale, W_hh_stack, W_dec_stack, work,
                            index_work, lr if fuse_sgd else 0.0, W_in)
        if not fuse_sgd:
            apply_update(theta, grad, opt_state, optimizer, lr, clip)
        updates += 1
    return n_steps, updates


class Sliding(Scheme):
    name = "sliding"

    def run(self, n_steps: int, losses: np.ndarray) -> int:
        if n_steps % self.k1:
            raise ValueError(f"sliding advances whole update periods: {n_steps} is not a multiple of k1={self.k1}")
        done, updates = run_sliding_block(
            self.theta, self.grad, self.V, self.H, self.ids, self.track_len, self.ring, self.work, self.index_work,
            self.W_in_mirror,
            self.opt_state, self.optimizer, self.lr, self.clip, self.t, n_steps, self.k1, self.k2,
            self.inject_window, self.fuses_sgd(), losses,
        )
        self.t += done
        self.updates += updates
        return done
