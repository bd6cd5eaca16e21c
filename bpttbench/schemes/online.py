"""The block kernel the online rules (rtrl, uoro, snap1, eprop) share, and the class they subclass.

`run_online_block` runs each step's forward pass and loss, then per stream the decoder's gradient and
dL/dh and the rule's own per-stream step, then the update at the end of each period. A rule gives its
per-stream arrays as a namedtuple of a class of its own, and registers its step for that class with
`stream_step_of`: the skeleton's call `stream_step(state, ...)` is resolved when Numba types it, so
each rule's block kernel is compiled once and cached.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

from bpttbench.kernels.cells import GRU, gate_blocks
from bpttbench.kernels.network import JIT, forward_step, param_views, read_inputs
from bpttbench.kernels.optim import apply_update
from bpttbench.schemes.base import Scheme, aligned_zeros


@njit(**JIT)
def head_gradient(W_dec, probs, h, y, scale, g_dec, g_bdec, dh):
    """Add scale * the decoder gradient of one stream's loss to (g_dec, g_bdec); dL/dh into dh."""
    V, H = W_dec.shape
    dh[:] = 0.0
    for v in range(V):
        d = probs[v] * scale
        if v == y:
            d -= scale
        g_bdec[v] += d
        for k in range(H):
            g_dec[v, k] += d * h[k]
            dh[k] += d * W_dec[v, k]


@njit(**JIT)
def online_step(theta, grad, V, H, ids, track_len, ring, t, k1, losses, n):
    """Step t of an online rule (rtrl, uoro, snap1, eprop) up to its loss: zero the gradient when an
    update period starts, read the step's inputs, run its forward pass into the ring, write its
    batch-mean loss (nats) to losses[n]; returns whether that loss is finite."""
    R, B = ring[0].shape
    if (t - 1) % k1 == 0:
        grad[:] = 0.0
    read_inputs(ids, track_len, t, ring[0][t % R], ring[1][t % R])
    losses[n] = forward_step(theta, V, H, ring, t, (t - 1) % R) / B
    return np.isfinite(losses[n])


@njit(**JIT)
def online_update(theta, grad, V, H, opt_state, optimizer, lr, clip, t, k1, tie_biases):
    """After step t of an online rule: at the end of an update period apply its gradient; returns
    the number of updates made (0 or 1). With tie_biases, bias_hh's gradient is copied from
    bias_ih's (the two biases add, so their gradients are the same sum)."""
    if t % k1 != 0:
        return 0
    if tie_biases:  # (not the GRU's n block: r scales b_hn, whose columns are its own)
        views = param_views(grad, V, H)
        tied = 2 * H if gate_blocks(views[1]) == GRU else views[1].shape[0]
        views[3][:tied] = views[2][:tied]
    apply_update(theta, grad, opt_state, optimizer, lr, clip)
    return 1


def stream_step(state, b, W_hh, gates, c_prev, aux, h_prev, x, V, dh, grad):
    """One stream's step of an online rule, inside run_online_block: advance stream b's part of
    `state` (a namedtuple of the rule's arrays) through the step whose cell values are gates, c_prev,
    aux, h_prev and x, and add the gradient of the step's loss (dh = dL/dh, already scaled) to grad's
    cell part (the decoder's is done). A stub: each rule registers its step with stream_step_of."""
    raise NotImplementedError("stream_step runs inside Numba, for a state class given to stream_step_of")


def stream_step_of(state_class):
    """Decorator for an @njit step(state, b, W_hh, gates, c_prev, aux, h_prev, x, V, dh, grad): make it
    stream_step's implementation for states of `state_class` (a module-level namedtuple class, so each
    rule's state is a type of its own). Chosen when run_online_block is typed (numba.extending.overload),
    so the skeleton is compiled once per rule and cached; a function passed in or closed over would
    not be (Numba caches no kernel that takes or closes over one: every process recompiled)."""

    def register(step):
        @overload(stream_step, jit_options=JIT)
        def typed(state, b, W_hh, gates, c_prev, aux, h_prev, x, V, dh, grad):
            if isinstance(state, types.BaseNamedTuple) and state.instance_class is state_class:
                return lambda state, b, W_hh, gates, c_prev, aux, h_prev, x, V, dh, grad: step(
                    state, b, W_hh, gates, c_prev, aux, h_prev, x, V, dh, grad)
            return None

        return step

    return register


@njit(**JIT)
def run_online_block(theta, grad, V, H, ids, track_len, ring, opt_state, optimizer, lr, clip,
                     t0, n_steps, k1, state, dh, tie_biases, losses):
    """Steps t0+1 .. t0+n_steps of the online rule whose state this is; returns (steps done, updates done).

    The block kernel of rtrl, uoro, snap1 and eprop: each step's forward pass and loss (online_step),
    then per stream the decoder's gradient and dL/dh (head_gradient) and the rule's stream_step, then
    the update at the end of a period (online_update; tie_biases: the rule leaves bias_hh's gradient
    to be copied from bias_ih's)."""
    x_r, y_r, gates_r, c_r, h_r, aux_r, probs_r = ring
    R = x_r.shape[0]
    B = x_r.shape[1]
    W_hh = param_views(theta, V, H)[1]
    W_dec = param_views(theta, V, H)[4]
    g_dec, g_bdec = param_views(grad, V, H)[4], param_views(grad, V, H)[5]
    scale = 1.0 / (k1 * B)
    updates = 0
    for n in range(n_steps):
        t = t0 + n + 1
        s, ps = t % R, (t - 1) % R
        if not online_step(theta, grad, V, H, ids, track_len, ring, t, k1, losses, n):
            return n + 1, updates
        for b in range(B):
            head_gradient(W_dec, probs_r[s, b], h_r[s, b], y_r[s, b], scale, g_dec, g_bdec, dh)
            stream_step(state, b, W_hh, gates_r[s, b], c_r[ps, b], aux_r[s, b], h_r[ps, b], x_r[s, b], V, dh, grad)
        updates += online_update(theta, grad, V, H, opt_state, optimizer, lr, clip, t, k1, tie_biases)
    return n_steps, updates


class OnlineScheme(Scheme):
    """An online rule run by run_online_block: a subclass sets `tie_biases` and gives `state()`, the
    namedtuple (of a class registered with stream_step_of) of its per-stream arrays and scratch; dh is
    the skeleton's scratch."""

    block_kernel = staticmethod(run_online_block)
    tie_biases = True

    def __init__(self, cfg, theta, vocab_size, train_ids):
        super().__init__(cfg, theta, vocab_size, train_ids)
        self.dh = aligned_zeros(self.H, theta.dtype)

    def state(self) -> tuple:
        raise NotImplementedError

    def kernel_arguments(self) -> tuple:
        return (self.state(), self.dh, self.tie_biases)

    def own_arrays(self) -> tuple:
        return (*self.state(), self.dh)
