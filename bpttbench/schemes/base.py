"""The interface every scheme implements, and the arrays they share.

A scheme owns the online state of one training run: the parameters, the optimiser state, a ring
of the last k2 + 1 steps' activations, and scratch space. `run(n)` advances n time steps inside
one JIT call (the scheme's block kernel) and writes each step's online loss; Python never enters
the per-step loop.

Writing a scheme: subclass `TruncatedScheme`, as single.py does, for one that backprops through a
window of stored steps; `OnlineScheme` (schemes/online.py), as rtrl.py and uoro.py do, for an online
rule with a per-stream step; or `Scheme` itself, and provide
- `name`: listed in bpttbench/scheme_names.py (whether it truncates), with the class added to the
  registry in schemes/__init__.py.
- `block_kernel`: an @njit function, wrapped in staticmethod, that `run` calls as
      block_kernel(theta, grad, V, H, ids, track_len, ring, opt_state, optimizer, lr, clip,
                   t0, n_steps, k1, *self.kernel_arguments(), losses)
  It runs steps t0+1 .. t0+n_steps (kernels.network.read_inputs and forward_step do a step's input
  and forward pass into the ring), writes step t0+n+1's batch-mean loss in nats to losses[n],
  updates after every step that is a multiple of k1 (kernels.optim.apply_update), stops after
  the first step whose loss is not finite (or after its update period, if it forwards whole
  periods at a time as sliding does), and returns (steps done, updates done).
- `kernel_arguments()`: the scheme's own arrays and settings, in block_kernel's order.
- `own_arrays()`: the arrays it allocates in __init__ (after super().__init__, with aligned_zeros),
  so that resident_bytes counts them. tests/test_contract.py checks all of this for every scheme
  in the registry, and the trajectory against bpttbench/reference.py where it has the scheme.
Optionally: `check_fits` (a classmethod refusing sizes that cannot run, as rtrl's memory check),
`single_threaded_blas = True` (the block runs with BLAS on one thread), `whole_periods = True`
(run's n must be a multiple of k1).
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np

from bpttbench.config import TrainConfig
from bpttbench.scheme_names import CELLS
from bpttbench.kernels.network import index_scratch, mirror_input_weights, transpose_input_block, unmirror_input_weights
from bpttbench.kernels.optim import OPTIMIZER_CODES, apply_update_with_partial_sum
from bpttbench.kernels.windows import window_bounds
from bpttbench.kernels.threads import single_threaded_blas

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
    """One training run's online state; see the module docstring for what a subclass provides.

    `grad` holds the gradient of the last update (before clipping: the update scales it as it reads it),
    except where `fuses_sgd()` (see TruncatedScheme).
    """

    name = "base"
    block_kernel = None
    single_threaded_blas = False
    whole_periods = False
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
        self.opt_state = (aligned_zeros(theta.shape, dtype), aligned_zeros(theta.shape, dtype),
                          aligned_zeros(1, np.int64))
        self.ids = np.ascontiguousarray(train_ids, dtype=np.int32)  # borrowed, not counted as resident
        self.track_len = len(self.ids) // B
        if self.track_len < 2:
            raise ValueError(f"{len(self.ids)} training characters cannot feed {B} streams")
        R = k2 + 1
        self.cell = cfg.cell
        G = CELLS[cfg.cell] * H
        self.G = G
        Hc = H if cfg.cell == "lstm" else 0  # only the LSTM has a cell state
        Ha = 0 if cfg.cell == "rnn" else H  # the LSTM's tanh(c), the GRU's W_hn h + b_hn
        self.ring = (
            aligned_zeros((R, B), np.int32),  # x
            aligned_zeros((R, B), np.int32),  # y
            aligned_zeros((R, B, G), dtype),  # gates (post-activation; kernels/cells.py)
            aligned_zeros((R, B, Hc), dtype),  # c
            aligned_zeros((R, B, H), dtype),  # h
            aligned_zeros((R, B, Ha), dtype),  # aux
            aligned_zeros((R, B, V), dtype),  # softmax probabilities
        )
        self.work = (
            aligned_zeros((B, H), dtype),  # dh
            aligned_zeros((B, H), dtype),  # dc
            aligned_zeros((B, H), dtype),  # dh_prev
            aligned_zeros((k2 * B, H), dtype),  # dh from the head of every injected step
            aligned_zeros((k2 * B, G), dtype),  # dz of every step in the window
            aligned_zeros((k2 * B, H), dtype),  # h before every step in the window
            aligned_zeros((k2 * B, V), dtype),  # dlogits of every injected step
            aligned_zeros((k2 * B, H), dtype),  # h of every injected step
            aligned_zeros((k2 * B if cfg.cell == "gru" else 0, G), dtype),  # the GRU's dzh (kernels/cells.py)
        )
        self.t = 0  # time steps done
        self.updates = 0

    @classmethod
    def check_fits(cls, cfg: TrainConfig, vocab_size: int) -> None:
        """ConfigError if cfg cannot run at this size on this vocabulary; call it before starting
        a run, so that a grid fails before its first unit rather than midway. Fits by default."""

    def run(self, n_steps: int, losses: np.ndarray) -> int:
        """Advance n_steps (a multiple of k1), writing each step's batch-mean online loss (nats).

        Returns the number of steps done: fewer than n_steps only when a loss was not finite,
        in which case the run has diverged and must stop.
        """
        if self.whole_periods and n_steps % self.k1:
            raise ValueError(f"{self.name} advances whole update periods: {n_steps} is not a multiple of k1={self.k1}")
        # Where the kernel's GEMVs are small, OpenBLAS's threads only wait for busy cores.
        blas = single_threaded_blas() if self.single_threaded_blas else contextlib.nullcontext()
        with blas:
            done, updates = self.run_block(n_steps, losses)
        self.t += done
        self.updates += updates
        return done

    def run_block(self, n_steps: int, losses: np.ndarray) -> tuple[int, int]:
        """One call of the block kernel from step self.t on; returns (steps done, updates done)."""
        return self.block_kernel(
            self.theta, self.grad, self.V, self.H, self.ids, self.track_len, self.ring, self.opt_state,
            self.optimizer, self.lr, self.clip, self.t, n_steps, self.k1, *self.kernel_arguments(), losses,
        )

    def kernel_arguments(self) -> tuple:
        """The scheme's own arguments of block_kernel, between k1 and losses."""
        raise NotImplementedError

    def compile_update(self) -> None:
        """Compile, alone, the optimiser step block_kernel calls last, where that is one kernel
        (bpttbench.training.precompile compiles it beside the rest); the instance is thrown away after."""

    def own_arrays(self) -> tuple:
        """The arrays the subclass allocates beyond the shared ones."""
        return ()

    def arrays(self) -> tuple:
        """Every array this scheme keeps (parameters, optimiser, ring, scratch, its own)."""
        return (self.theta, self.grad, *self.opt_state, *self.ring, *self.work, *self.own_arrays())

    def resident_bytes(self) -> int:
        """Bytes of every array this scheme keeps."""
        return int(sum(a.nbytes for a in self.arrays()))

    def fuses_sgd(self) -> bool:
        """Whether updates are applied inside the backward pass, leaving `grad` as scratch."""
        return False

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

    def window_bounds(self, t: int) -> tuple[int, int]:
        """(first step of the window, first step whose loss is injected) for an update after step t."""
        return window_bounds(t, self.k1, self.k2, self.inject_window)


class TruncatedScheme(Scheme):
    """A scheme whose update backprops through a window of stored steps
    (kernels.network.window_gradient_or_sgd_step).

    Under plain SGD (lr > 0, no clipping) the step is applied inside the backward pass, which
    saves a pass over the weights, and `grad` is scratch; set `keep_gradient = True` on an
    instance to keep it (`gradient_for_next_update()` always gives the gradient). For such a
    block W_ih is read and updated through a row-major mirror of its transpose, written back after
    the block. Any other block runs with the W_ih blocks of theta, grad and (Adam) both moments
    transposed in place, back to PyTorch's layout after it (kernels.network.transpose_input_block):
    the forward reads a character's input weights, and the backward writes their gradient, as
    contiguous rows. kernel_arguments() passes `input_weights()` and `input_gradient()`, the
    (V, G) matrices to read W_ih from and write its gradient to.
    """

    def __init__(self, cfg, theta, vocab_size, train_ids):
        super().__init__(cfg, theta, vocab_size, train_ids)
        self.index_work = aligned_copy(index_scratch(self.k2, self.B, self.V))  # the window's distinct characters
        # W_ih.T, row-major, during fused SGD; otherwise the scratch of the in-place transposes
        self.W_in_mirror = aligned_zeros((self.V, self.G), theta.dtype)

    def fuses_sgd(self) -> bool:
        return (self.optimizer == OPTIMIZER_CODES["sgd"] and self.clip == 0.0 and self.lr > 0.0
                and not self.keep_gradient)

    def _input_rows(self, a: np.ndarray) -> np.ndarray:
        """a's W_ih block read as (V, G): its rows while run_block holds the block transposed."""
        return a[: self.V * self.G].reshape(self.V, self.G)

    def input_weights(self) -> np.ndarray:
        """The (V, G) matrix the block reads W_ih from: the mirror under fused SGD, else theta's transposed block."""
        if self.fuses_sgd():
            return self.W_in_mirror
        return self._input_rows(self.theta)

    def input_gradient(self) -> np.ndarray:
        """The (V, G) matrix the block writes W_ih's gradient to: grad's transposed block (unused under fused SGD)."""
        return self._input_rows(self.grad)

    def run_block(self, n_steps: int, losses: np.ndarray) -> tuple[int, int]:
        V, H = self.V, self.H
        if self.fuses_sgd():
            mirror_input_weights(self.theta, V, H, self.W_in_mirror)
            try:
                return super().run_block(n_steps, losses)
            finally:
                unmirror_input_weights(self.theta, V, H, self.W_in_mirror)
        held = (self.theta, self.grad) + (self.opt_state[:2] if self.optimizer == OPTIMIZER_CODES["adam"] else ())
        for a in held:
            transpose_input_block(a, V, H, self.W_in_mirror, True)
        try:
            return super().run_block(n_steps, losses)
        finally:
            for a in held:
                transpose_input_block(a, V, H, self.W_in_mirror, False)

    def compile_update(self) -> None:
        apply_update_with_partial_sum(self.theta, self.grad, self.opt_state, self.optimizer, self.lr, self.clip, 0, 0.0)

    def own_arrays(self) -> tuple:
        return (self.index_work, self.W_in_mirror)
