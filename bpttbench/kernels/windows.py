"""Which steps an update backpropagates through: the one statement of the window's bounds, for the
schemes' block kernels and for Python alike (bpttbench/reference.py states it again, independently)."""

from __future__ import annotations

from numba import njit

from bpttbench.kernels.vecmath import JIT


@njit(**JIT)
def window_bounds(t, k1, k2, inject_window):
    """(first step of the window, first step whose loss is injected) for an update after step t: the
    last k2 steps, none before step 1; their losses all (inject_window) or the newest k1."""
    first = max(1, t - k2 + 1)
    first_injected = first if inject_window else max(first, t - k1 + 1)
    return first, first_injected
