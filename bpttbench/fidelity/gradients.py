"""Gradient fidelity: in one window of a trajectory, how far `single`'s and `stored`'s gradients are from the exact one.

For the window of a scheme's next update, with the same current weights:

- g_single: the stored activations of the trajectory, the current weights in every Jacobian
  (what `single` applies);
- g_stored: the same stored activations, the weights each step's forward pass used in that
  step's Jacobians (what `stored` applies);
- g_exact: the window re-run forward from the stored state before it with the current weights,
  then backpropagated (what `sliding` applies): the exact gradient of the window loss with the
  state before the window held constant.

In float64 a central finite-difference estimate of the window loss's gradient, computed with
the plain-NumPy reference (bpttbench.reference.window_loss), checks g_exact on a random subset
of weights; it must agree to FD_TOLERANCE. Where rtrl's untruncated online gradient is known
(following rtrl, snap1 or eprop) each of the three is also compared with it, and so is the
gradient each of rtrl's approximations (snap1, eprop, uoro) would apply at the same update, with
the same weights (the *_vs_rtrl estimators). bpttbench.fidelity.gradcheck follows a trajectory and writes
the results.

References:
- R. J. Williams and J. Peng, "An efficient gradient-based algorithm for on-line training of
  recurrent network trajectories", Neural Computation 2(4), 1990: storing past weights
  "requires O(n^2 h) storage. In practice, we have not found much difference".
- The Cross Validated question "Truncated Back Propagation of LSTM with K2 > K1"
  (https://stats.stackexchange.com/q/278806), whose claims this measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bpttbench import reference as ref
from bpttbench.kernels.network import forward_step, param_views, read_inputs, window_backward
from bpttbench.model import cell_of_theta, param_shapes, split_theta
from bpttbench.scheme_names import DEFAULT_CELL

# Tensors reported one by one; bias_hh_l0's gradient is bias_ih_l0's, so it only counts in 'all'.
TENSORS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "decoder.weight", "decoder.bias", "all")
# single and stored against the exact gradient, single against stored (what storing past weights
# changes), and the exact gradient against finite differences on a subset of weights.
WINDOW_ESTIMATORS = ("single", "stored", "single_vs_stored", "exact_vs_fd")
# The online rules that approximate rtrl's influence matrix; where rtrl's gradient is known each
# is compared with it (uoro's from a single sample of its random projection, as the papers report it).
RTRL_APPROXIMATIONS = ("snap1", "eprop", "uoro")
ONLINE_ESTIMATORS = tuple(f"{rule}_vs_rtrl" for rule in RTRL_APPROXIMATIONS)
# Only where rtrl's gradient is known: each window gradient, then each online rule's, against it.
RTRL_ESTIMATORS = ("single_vs_rtrl", "stored_vs_rtrl", "exact_vs_rtrl") + ONLINE_ESTIMATORS
ESTIMATORS = WINDOW_ESTIMATORS + RTRL_ESTIMATORS
FD_TOLERANCE = 1e-6
# Fourth-order central differences: truncation error ~ h^4 f^(5) / 30, rounding ~ 1.5 eps |f| / h.
# With |f| ~ 1 nat and float64 both sit near 1e-12 at h = 1e-3, far below the gradients'
# size; the plain second-order stencil would need h ~ 1e-5 and leave ~1e-10 of rounding.
FD_STEP = 1e-3


# ----------------------------------------------------------------------------- one window


@dataclass
class Window:
    """The next update's window: steps first..t_next, losses from first_injected on, from the state (h0, c0)."""

    first: int
    first_injected: int
    t_next: int
    h0: np.ndarray  # B,H the stored state before the window, as the trajectory computed it
    c0: np.ndarray  # B,H

    @property
    def steps(self) -> range:
        return range(self.first, self.t_next + 1)

    def scale(self, batch: int) -> float:
        return 1.0 / ((self.t_next - self.first_injected + 1) * batch)


@dataclass
class WindowGradients:
    """The three gradients of one window (flat, theta's layout), plus the state they came from."""

    window: Window
    single: np.ndarray
    stored: np.ndarray
    exact: np.ndarray
    theta: np.ndarray  # the current weights (a copy)
    drift: float  # ||W_now - W_oldest|| / ||W_now|| over W_hh and the decoder, across the window
    rtrl: np.ndarray | None = None  # where known: the untruncated gradient rtrl would apply
    online: dict = field(default_factory=dict)  # rule in RTRL_APPROXIMATIONS -> the gradient it would apply


def next_window(scheme) -> Window:
    """The window of the scheme's next update (after step t + k1), and the stored state before it."""
    t_next = scheme.t + scheme.k1
    first, first_injected = scheme.window_bounds(t_next)
    R = scheme.ring[0].shape[0]
    c_ring, h_ring = scheme.ring[3], scheme.ring[4]
    s = (first - 1) % R
    return Window(first, first_injected, t_next, h_ring[s].copy(), c_ring[s].copy())


def _ring_copy(ring, dtype) -> tuple:
    return tuple(a.copy() if a.dtype.kind != "f" else a.astype(dtype) for a in ring)


def _forward(theta, scheme, ring, steps) -> None:
    """Forward the given steps with theta into ring, each from the previous slot's state."""
    R = ring[0].shape[0]
    for tau in steps:
        s = tau % R
        read_inputs(scheme.ids, scheme.track_len, tau, ring[0][s], ring[1][s])
        forward_step(theta, scheme.V, scheme.H, ring, tau, (tau - 1) % R)


def _backward(theta, scheme, ring, window: Window, W_hh_stack, W_dec_stack) -> np.ndarray:
    grad = np.zeros_like(theta)
    work = tuple(a.astype(theta.dtype) for a in scheme.work)
    window_backward(theta, grad, scheme.V, scheme.H, ring, window.t_next, window.first, window.first_injected,
                    window.scale(scheme.B), W_hh_stack, W_dec_stack, work)
    return grad


def _current_stacks(theta, V, H):
    views = param_views(theta, V, H)
    return views[1][None], views[4][None]


def exact_gradient(scheme, window: Window, dtype=None) -> np.ndarray:
    """The window recomputed from its stored starting state with the current weights, then backpropagated.

    In `dtype` (default the scheme's): float64 for the finite-difference check of a float32 run.
    """
    dtype = np.dtype(dtype or scheme.theta.dtype)
    theta = scheme.theta.astype(dtype)
    ring = _ring_copy(scheme.ring, dtype)
    _forward(theta, scheme, ring, window.steps)
    return _backward(theta, scheme, ring, window, *_current_stacks(theta, scheme.V, scheme.H))


def truncated_gradients(scheme, window: Window, past_weights: dict) -> tuple[np.ndarray, np.ndarray]:
    """(g_single, g_stored) of the next update, leaving the scheme untouched.

    The newest k1 steps are forwarded with the current weights (no update falls among them);
    past_weights maps an update count u to the (W_hh, W_dec) that steps u*k1+1 .. (u+1)*k1
    were forwarded with, for every step of the window.
    """
    theta = scheme.theta
    ring = _ring_copy(scheme.ring, theta.dtype)
    _forward(theta, scheme, ring, range(scheme.t + 1, window.t_next + 1))
    single = _backward(theta, scheme, ring, window, *_current_stacks(theta, scheme.V, scheme.H))
    k1, k2 = scheme.k1, scheme.k2
    W_hh_stack = np.empty((k2,) + past_weights[scheme.updates][0].shape, theta.dtype)
    W_dec_stack = np.empty((k2,) + past_weights[scheme.updates][1].shape, theta.dtype)
    for tau in window.steps:  # window_backward reads step tau's weights from slot tau % k2
        W_hh_stack[tau % k2], W_dec_stack[tau % k2] = past_weights[(tau - 1) // k1]
    stored = _backward(theta, scheme, ring, window, W_hh_stack, W_dec_stack)
    return single, stored


@np.errstate(over="ignore", invalid="ignore")  # a diverging run's weights overflow; its drift is then inf/nan
def weight_drift(scheme, window: Window, past_weights: dict) -> float:
    now_hh, now_dec = past_weights[scheme.updates]
    old_hh, old_dec = past_weights[(window.first - 1) // scheme.k1]
    num = np.sum((now_hh - old_hh) ** 2) + np.sum((now_dec - old_dec) ** 2)
    den = np.sum(now_hh**2) + np.sum(now_dec**2)
    return float(np.sqrt(num / den)) if den > 0 else 0.0


# ----------------------------------------------------------------------------- finite differences


def window_objective(scheme, window: Window):
    """The window's loss as a function of a float64 theta, by the NumPy reference (shares no code with the kernels)."""
    V, H, B = scheme.V, scheme.H, scheme.B
    xs, ys = zip(*(ref.stream_inputs(scheme.ids, B, tau) for tau in window.steps))
    injected = [tau >= window.first_injected for tau in window.steps]
    h0, c0 = window.h0.astype(np.float64), window.c0.astype(np.float64)

    def loss(theta: np.ndarray) -> float:
        return ref.window_loss(split_theta(theta, V, H), xs, ys, h0, c0, injected)

    return loss


def fd_subset(scheme, window: Window, n: int, rng: np.random.Generator) -> np.ndarray:
    """n flat indices spread over the six tensors (round robin), drawn uniformly within each.

    weight_ih_l0 is drawn from the columns of characters the window reads: the other columns
    do not touch the loss, and exact zeros on both sides would make the check look better than it is.
    """
    V, H = scheme.V, scheme.H
    shapes = param_shapes(V, H, scheme.cell)
    offsets = np.cumsum([0] + [int(np.prod(s)) for _, s in shapes])
    chars = np.unique(np.concatenate([ref.stream_inputs(scheme.ids, scheme.B, tau)[0] for tau in window.steps]))
    counts = [n // len(shapes) + (i < n % len(shapes)) for i in range(len(shapes))]
    picked = []
    for (name, shape), offset, count in zip(shapes, offsets, counts):
        if name == "weight_ih_l0":
            pool = (np.arange(shape[0])[:, None] * shape[1] + chars[None, :]).ravel()
        else:
            pool = np.arange(int(np.prod(shape)))
        picked.append(offset + rng.choice(pool, size=min(count, pool.size), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


@np.errstate(over="ignore", invalid="ignore")  # huge weights saturate the reference's sigmoid; the check then fails
def central_differences(f, theta: np.ndarray, indices: np.ndarray, h: float = FD_STEP) -> np.ndarray:
    """Fourth-order central differences of f at theta (float64) for the given flat indices."""
    theta = theta.astype(np.float64)  # a private copy: f reads views of it
    out = np.empty(len(indices))
    for n, i in enumerate(indices):
        saved = theta[i]
        values = []
        for d in (h, -h, 2 * h, -2 * h):
            theta[i] = saved + d
            values.append(f(theta))
        theta[i] = saved
        up, down, up2, down2 = values
        out[n] = (8.0 * (up - down) - (up2 - down2)) / (12.0 * h)
    return out


# ----------------------------------------------------------------------------- metrics


def tensor_slices(V: int, H: int, cell: str = DEFAULT_CELL) -> dict[str, slice]:
    out, offset = {}, 0
    for name, shape in param_shapes(V, H, cell):
        size = int(np.prod(shape))
        out[name] = slice(offset, offset + size)
        offset += size
    return out


def compare(g: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(cosine similarity, ||g - exact|| / ||exact||); both exactly zero counts as agreement."""
    g, exact = g.astype(np.float64), exact.astype(np.float64)
    n_g, n_e = np.linalg.norm(g), np.linalg.norm(exact)
    diff = np.linalg.norm(g - exact)
    if n_e == 0.0:
        return (float("nan"), 0.0 if diff == 0.0 else float("inf"))
    cosine = float(g @ exact / (n_g * n_e)) if n_g > 0 else float("nan")
    return cosine, float(diff / n_e)


def metric_rows(grads: WindowGradients, V: int, H: int, fd: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> list[dict]:
    """One row per (estimator, tensor); fd = (indices, g_exact in float64 at them, FD estimates) or None."""
    cell = cell_of_theta(grads.exact.size, V, H)
    slices = tensor_slices(V, H, cell)
    # bias_hh_l0's gradient is bias_ih_l0's, but for the GRU's n block (r scales it): reported for the GRU only
    tensors = TENSORS[:3] + ("bias_hh_l0",) + TENSORS[3:] if cell == "gru" else TENSORS
    rows = []
    pairs = [("single", grads.single, grads.exact), ("stored", grads.stored, grads.exact),
             ("single_vs_stored", grads.single, grads.stored)]
    if grads.rtrl is not None:
        pairs += [("single_vs_rtrl", grads.single, grads.rtrl), ("stored_vs_rtrl", grads.stored, grads.rtrl),
                  ("exact_vs_rtrl", grads.exact, grads.rtrl)]
        pairs += [(f"{rule}_vs_rtrl", grads.online[rule], grads.rtrl)
                  for rule in RTRL_APPROXIMATIONS if rule in grads.online]
    for estimator, g, against in pairs:
        for tensor in tensors:
            sl = slice(None) if tensor == "all" else slices[tensor]
            cosine, rel = compare(g[sl], against[sl])
            rows.append({"tensor": tensor, "estimator": estimator, "cosine": cosine, "rel_error": rel})
    if fd is not None:
        indices, exact_at, estimate = fd
        for tensor in tensors:
            if tensor == "all":
                mask = np.ones(len(indices), bool)
            else:
                mask = (indices >= slices[tensor].start) & (indices < slices[tensor].stop)
            cosine, rel = compare(exact_at[mask], estimate[mask]) if mask.any() else (float("nan"), float("nan"))
            rows.append({"tensor": tensor, "estimator": "exact_vs_fd", "cosine": cosine, "rel_error": rel})
    return rows
