"""The interface every truncation scheme implements, and the arrays they share.

A scheme owns the online state of one training run: the parameters, the optimiser state,
a ring of the last k2 + 1 steps' activations, and scratch space. `run(n)` advances n time
steps (a whole number of update periods k1) inside one JIT call and writes each step's
online loss; Python never enters the per-step loop.
"""

from __future__ import annotations

import copy

import numpy as np

from bpttbench.config import TrainConfig
from bpttbench.kernels.lstm import index_scratch
from bpttbench.kernels.optim import OPTIMIZER_CODES

ALIGNMENT = 64  # bytes: a cache line, and whole AVX-512 loads


def aligned_zeros(shape, dtype, alignment: int = ALIGNMENT) -> np.ndarray:
    """np.zeros whose data starts on an `alignment`-byte boundary.

    NumPy only guarantees 16 bytes; OpenBLAS's matrix-vector products at H = 128 run about 12 %
    slower on a W_hh that is not 32-byte aligned, so which alignment malloc happened to return
    showed up as noise between runs.
    """
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buffer = np.zeros(nbytes + alignment, np.uint8)
    start = -buffer.ctypes.data % alignment
    return buffer[start : start + nbytes].view(dtype).reshape(shape)


def aligned_copy(a: np.ndarray) -> np.ndarray:
    out = aligned_zeros(a.shape, a.dtype)
    out[...] = a
    return out


class Scheme:
    """`grad` holds the gradient of the last update, except under plain SGD (lr > 0, no clipping):
    there the step is applied inside the backward pass (see kernels.lstm.window_backward_sgd),
    which saves a pass over the weights, and `grad` is scratch. Set `keep_gradient = True` on an
    instance to keep it; `gradient_for_next_update()` always gives the gradient.
    """

    name = "base"
    keep_gradient = False

    def __init__(self, cfg: TrainConfig, theta: np.ndarray, vocab_size: int, train_ids: np.ndarray):
        dtype = theta.dtype
        B, H, V, k2 = cfg.batch, cfg.hidden, vocab_size, cfg.k2
        self.cfg = cfg
        self.V, self.H, self.B = V, H, B
        self.k1, self.k2 = cfg.k1, cfg.k2
        self.inject_window = cfg.inject == "window"
        self.theta = aligned_copy(theta)  # the scheme's own parameters: read them back from scheme.theta
        self.grad = aligned_zeros(theta.shape, dtype)
        self.optimizer = OPTIMIZER_CODES[cfg.optimizer]
        self.lr = float(cfg.lr)
        self.clip = float(cfg.clip)
        self.opt_state = (aligned_zeros(theta.shape, dtype), aligned_zeros(theta.shape, dtype), np.zeros(1, np.int64))
        self.ids = np.ascontiguousarray(train_ids, dtype=np.int32)
        self.track_len = len(self.ids) // B
        if self.track_len < 2:
            raise ValueError(f"{len(self.ids)} training characters cannot feed {B} streams")
        R = k2 + 1
        G = 4 * H
        self.ring = (
            np.zeros((R, B), np.int32),  # x
            np.zeros((R, B), np.int32),  # y
            aligned_zeros((R, B, G), dtype),  # gates (post-activation i, f, g, o)
            aligned_zeros((R, B, H), dtype),  # c
            aligned_zeros((R, B, H), dtype),  # h
            aligned_zeros((R, B, H), dtype),  # tanh(c)
            aligned_zeros((R, B, V), dtype),  # softmax probabilities
        )
        self.work = (
            aligned_zeros((B, H), dtype),  # dh
            aligned_zeros((B, H), dtype),  # dc
            aligned_zeros((B, H), dtype),  # dh_prev
            aligned_zeros((B, H), dtype),  # dh from the head
            aligned_zeros((k2 * B, G), dtype),  # dz of every step in the window
            aligned_zeros((k2 * B, H), dtype),  # h before every step in the window
            aligned_zeros((k2 * B, V), dtype),  # dlogits of every injected step
            aligned_zeros((k2 * B, H), dtype),  # h of every injected step
        )
        self.index_work = index_scratch(k2, B, V)  # the window's distinct characters and their rows
        self.W_in_mirror = aligned_zeros((V, G), dtype)  # W_ih.T, row-major, while a fused-SGD block runs
        self.t = 0  # time steps done
        self.updates = 0

    def run(self, n_steps: int, losses: np.ndarray) -> int:
        """Advance n_steps (a multiple of k1), writing each step's batch-mean online loss (nats).

        Returns the number of steps done: fewer than n_steps only when a loss was not finite,
        in which case the run has diverged and must stop.
        """
        raise NotImplementedError

    def fuses_sgd(self) -> bool:
        """Whether updates are applied inside the backward pass (plain SGD, no clipping)."""
        return (self.optimizer == OPTIMIZER_CODES["sgd"] and self.clip == 0.0 and self.lr > 0.0
                and not self.keep_gradient)

    def gradient_for_next_update(self) -> np.ndarray:
        """The gradient this scheme would apply at its next update, leaving self untouched."""
        probe = self.clone()
        probe.keep_gradient = True
        probe.lr = 0.0
        probe.optimizer = OPTIMIZER_CODES["sgd"]
        probe.clip = 0.0
        probe.run(self.k1, np.empty(self.k1))
        return probe.grad.copy()

    def clone(self) -> "Scheme":
        return copy.deepcopy(self)

    def resident_bytes(self) -> int:
        """Bytes of every array this scheme keeps (parameters, optimiser, rings, scratch)."""
        arrays = [self.theta, self.grad, *self.opt_state, *self.ring, *self.work, self.index_work, self.W_in_mirror]
        return int(sum(a.nbytes for a in arrays))

    def window_bounds(self, t: int) -> tuple[int, int]:
        """(first step of the window, first step whose loss is injected) for an update after step t."""
        first = max(1, t - self.k2 + 1)
        first_injected = first if self.inject_window else max(first, t - self.k1 + 1)
        return first, first_injected
