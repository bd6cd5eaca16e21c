"""The optimizer bound of `bpttbench speed`, and the targets on the default optimizer's cost.

`bpttbench run` trains with Adam and global-norm clipping at 1 (TrainConfig's defaults). Against
plain SGD, whose step the truncated schemes fuse into the backward pass, such an update needs
the whole gradient first (the clip factor depends on all of it) and then, whatever the code,
one streaming pass that reads each parameter, its gradient and both moments and writes the
parameter and both moments. That pass, timed alone over arrays of the model's size (per time
step: one pass per update, divided by k1), is the optimizer bound: `optimizer_bound_us`.

Adam's cost over SGD (`adam_extra_us`) is reported against it (`adam_extra_over_bound`).
Besides the pass it holds the clip norm (a read of the gradient, less where its producer sums
the squares as it writes: the truncated schemes' backward sums W_ih's few written rows, so the
norm reads the other blocks only) and the gradient's materialisation (the fused step writes
W_hh's update straight into the weights). Where the bound alone, 1 +
optimizer_bound_us / us_per_step, exceeds a target's ratio, that target cannot be met by
this update on this machine: the note of each target says what the bound allows.

On x86 the pass is bound by Adam's square root and division per element (both use the
divider), not by memory: kernels/optim.py.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bpttbench.kernels.optim import adam_step
from bpttbench.kernels.vecmath import JIT
from bpttbench.model import n_params
from bpttbench.scheme_names import DEFAULT_CELL
from bpttbench.schemes.base import aligned_zeros

BOUND_SHRINK = 0.5  # the clip factor of the timed passes: a clipping update (an unclipped one costs the same)
BOUND_COUNT = 10  # Adam's step count in the timed passes (it only sets the bias corrections)
# Adam with clip 1 (the default optimizer) over plain SGD, per scheme: the targets.
ADAM_TARGETS = {"single": 1.5, "sliding": 1.3}


@njit(**JIT)
def optimizer_passes(theta, grad, m, v, n_passes):
    """n_passes Adam steps on BOUND_SHRINK * grad, each one pass over the four arrays.

    The rate is 1e-30, so theta stays as it was (as the BLAS bound's GEMM leaves W_hh), and m,
    v start at their fixed point for this gradient, so no pass drifts them towards denormals.
    """
    for _ in range(n_passes):
        adam_step(theta, grad, m, v, 1e-30, BOUND_COUNT, BOUND_SHRINK)


class OptimizerBoundTimer:
    """The optimizer bound's pass over a model of this size, timed alone: one pass per update."""

    def __init__(self, vocab_size: int, hidden: int, k1: int, dtype: str, seed: int = 0, cell: str = DEFAULT_CELL):
        n = n_params(vocab_size, hidden, cell)
        rng = np.random.default_rng(seed)
        self.theta, self.grad, self.m, self.v = (aligned_zeros(n, dtype) for _ in range(4))
        self.theta[:] = rng.uniform(-1.0, 1.0, n)
        # |g| in [1e-3, 1e-2]: no zero and no square near float32's denormals
        self.grad[:] = rng.uniform(1e-3, 1e-2, n) * rng.choice([-1.0, 1.0], n)
        g = BOUND_SHRINK * self.grad.astype(np.float64)
        self.m[:], self.v[:] = g, g * g  # Adam's moments for a gradient that never changes
        self.unit_steps = k1

    def run(self, n_units: int) -> bool:
        optimizer_passes(self.theta, self.grad, self.m, self.v, n_units)
        return True


def adam_columns(adam_us: float, sgd_us: float, bound_us: float) -> dict:
    """The row's columns on the default optimizer: its time, its extra over SGD, their ratio,
    the optimizer bound and the extra in units of the bound."""
    extra = adam_us - sgd_us
    return dict(adam_us_per_step=adam_us, adam_extra_us=extra, adam_ratio=adam_us / sgd_us,
                optimizer_bound_us=bound_us, adam_extra_over_bound=extra / bound_us)


def adam_targets(one) -> list[dict]:
    """The targets on Adam with clipping against plain SGD; `one(scheme)` is the row (or None).

    The note gives the optimizer bound and the best ratio it leaves, 1 + bound / SGD's time.
    """
    out = []
    for scheme, threshold in ADAM_TARGETS.items():
        row = one(scheme)
        target = f"{scheme}: Adam with clip 1 / plain SGD"
        if row is None or "adam_ratio" not in row or row["adam_ratio"] != row["adam_ratio"]:
            out.append(dict(target=target, measured=None, threshold=f"<= {threshold}", met=None,
                            note="needs --optimizer adam"))
            continue
        ratio, bound, sgd = float(row["adam_ratio"]), float(row["optimizer_bound_us"]), float(row["us_per_step"])
        best = 1.0 + bound / sgd
        note = (f"extra {row['adam_extra_us']:.0f} us = {row['adam_extra_over_bound']:.2f}x the optimizer bound "
                f"({bound:.0f} us); at the bound the ratio would be {best:.2f}")
        if not math.isnan(best) and best > threshold:
            note += f": the update pass alone exceeds the {(threshold - 1) * sgd:.0f} us allowed"
        out.append(dict(target=target, measured=ratio, threshold=f"<= {threshold}", met=ratio <= threshold, note=note))
    return out
