"""Gradient fidelity along a real training trajectory: how far `single` and `stored` are from the exact gradient.

`gradcheck` trains one scheme (`single` or `stored`) and, every few updates, takes the window
of the scheme's next update and computes three gradients there with the same current weights:

- g_single: the stored activations of the trajectory, the current weights in every Jacobian
  (what `single` applies);
- g_stored: the same stored activations, the weights each step's forward pass used in that
  step's Jacobians (what `stored` applies);
- g_exact: the window re-run forward from the stored state before it with the current weights,
  then backpropagated (what `sliding` applies): the exact gradient of the window loss with the
  state before the window held constant.

In float64 a central finite-difference estimate of the window loss's gradient, computed with
the plain-NumPy reference (bpttbench.reference.window_loss), checks g_exact on a random subset
of weights; it must agree to FD_TOLERANCE or the check fails.

The followed trajectory is the chosen scheme's own: between checkpoints it advances in one JIT
call (scheme.run); only in the k2 steps before a checkpoint does Python step it one update
period at a time, copying W_hh and the decoder (the only weights a backward pass reads) after
each update, so that g_stored can be formed whichever scheme is followed.

References:
- R. J. Williams and J. Peng, "An efficient gradient-based algorithm for on-line training of
  recurrent network trajectories", Neural Computation 2(4), 1990: storing past weights
  "requires O(n^2 h) storage. In practice, we have not found much difference".
- The Cross Validated question "Truncated Back Propagation of LSTM with K2 > K1"
  (https://stats.stackexchange.com/q/278806), whose claims this measures.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from bpttbench import reference as ref
from bpttbench.config import TrainConfig
from bpttbench.corpus import check_corpus_fits
from bpttbench.errors import BpttbenchError, ConfigError, ResultsError
from bpttbench.kernels.lstm import forward_step, param_views, read_inputs, window_backward
from bpttbench.model import init_theta, param_shapes, split_theta
from bpttbench.files import atomic_write, check_out_dir
from bpttbench.schemes import make_scheme

# rtrl is followed to compare the truncated gradients with the untruncated one it carries
# (its sensitivities go back to step 1, through the weights of every past step); uoro to see the
# truncated gradients along its trajectory.
FOLLOWABLE = ("single", "stored", "rtrl", "uoro")
# Tensors reported one by one; bias_hh_l0's gradient is bias_ih_l0's, so it only counts in 'all'.
TENSORS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "decoder.weight", "decoder.bias", "all")
# single and stored against the exact gradient, single against stored (what storing past weights
# changes), and the exact gradient against finite differences on a subset of weights.
ESTIMATORS = ("single", "stored", "single_vs_stored", "exact_vs_fd")
FD_TOLERANCE = 1e-6
# Fourth-order central differences: truncation error ~ h^4 f^(5) / 30, rounding ~ 1.5 eps |f| / h.
# With |f| ~ 1 nat and float64 both sit near 1e-12 at h = 1e-3, far below the gradients'
# size; the plain second-order stencil would need h ~ 1e-5 and leave ~1e-10 of rounding.
FD_STEP = 1e-3
LN2 = math.log(2.0)

CSV_NAME = "gradcheck.csv"
MANIFEST_NAME = "gradcheck.json"
FIGURE_STEM = "gradcheck_error_vs_step"
FIGURE_K2_STEM = "gradcheck_error_vs_k2"
COLUMNS = (
    "corpus", "scheme", "k1", "k2", "inject", "hidden", "batch", "dtype", "optimizer", "lr", "clip", "seed",
    "step", "updates", "train_bpc", "drift", "tensor", "estimator", "cosine", "rel_error",
)
ESTIMATOR_STYLE = {  # colours as plot.py's schemes; the FD check in grey
    "single": ("#d62728", "-", "single vs exact"),
    "stored": ("#2ca02c", "--", "stored vs exact"),
    "single_vs_stored": ("#9467bd", "-.", "single vs stored"),
    "exact_vs_fd": ("#7f7f7f", ":", "exact vs finite differences"),
}


class GradientCheckError(BpttbenchError):
    """The exact gradient disagreed with finite differences: a bug, not the user's fault (exit 1)."""


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
    rtrl: np.ndarray | None = None  # when following rtrl: the untruncated gradient it will apply


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
def _drift(scheme, window: Window, past_weights: dict) -> float:
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
    shapes = param_shapes(V, H)
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


def tensor_slices(V: int, H: int) -> dict[str, slice]:
    out, offset = {}, 0
    for name, shape in param_shapes(V, H):
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
    slices = tensor_slices(V, H)
    rows = []
    pairs = [("single", grads.single, grads.exact), ("stored", grads.stored, grads.exact),
             ("single_vs_stored", grads.single, grads.stored)]
    if grads.rtrl is not None:
        pairs += [(f"{name}_vs_rtrl", g, grads.rtrl) for name, g in
                  (("single", grads.single), ("stored", grads.stored), ("exact", grads.exact))]
    for estimator, g, against in pairs:
        for tensor in TENSORS:
            sl = slice(None) if tensor == "all" else slices[tensor]
            cosine, rel = compare(g[sl], against[sl])
            rows.append({"tensor": tensor, "estimator": estimator, "cosine": cosine, "rel_error": rel})
    if fd is not None:
        indices, exact_at, estimate = fd
        for tensor in TENSORS:
            if tensor == "all":
                mask = np.ones(len(indices), bool)
            else:
                mask = (indices >= slices[tensor].start) & (indices < slices[tensor].stop)
            cosine, rel = compare(exact_at[mask], estimate[mask]) if mask.any() else (float("nan"), float("nan"))
            rows.append({"tensor": tensor, "estimator": "exact_vs_fd", "cosine": cosine, "rel_error": rel})
    return rows


# ----------------------------------------------------------------------------- following a trajectory


@dataclass
class Checkpoint:
    """The followed trajectory after `updates` updates (`step` time steps), and its next window's gradients."""

    step: int
    updates: int
    train_bpc: float  # mean online loss since the previous checkpoint, bits/char
    gradients: WindowGradients
    scheme: object  # the followed scheme at this point (do not advance it)
    past_weights: dict  # update count u -> (W_hh, W_dec) that forwarded steps u*k1+1 .. (u+1)*k1


def _snapshot(scheme) -> tuple[np.ndarray, np.ndarray]:
    views = param_views(scheme.theta, scheme.V, scheme.H)
    return views[1].copy(), views[4].copy()


class Follower:
    """The followed trajectory: a Scheme plus the past weights its next window needs."""

    def __init__(self, cfg: TrainConfig, train_ids: np.ndarray, vocab_size: int, theta: np.ndarray | None = None):
        if cfg.scheme not in FOLLOWABLE:
            raise ConfigError(f"gradcheck follows single, stored, rtrl or uoro, not {cfg.scheme!r}; choose one of those with --scheme")
        theta = init_theta(vocab_size, cfg.hidden, cfg.seed, cfg.dtype) if theta is None else theta.astype(cfg.dtype)
        self.scheme = make_scheme(cfg, theta, vocab_size, train_ids)
        self.past_weights = {0: _snapshot(self.scheme)}  # update count -> (W_hh, W_dec) after it
        self.diverged_at: int | None = None
        self._loss_sum, self._loss_count = 0.0, 0

    def _advance(self, n: int) -> bool:
        if n <= 0:
            return True
        losses = np.empty(n)
        done = self.scheme.run(n, losses)
        self._loss_sum += float(losses[:done].sum())
        self._loss_count += done
        if done < n:
            self.diverged_at = self.scheme.t
            return False
        return True

    def checkpoints(self, updates: Sequence[int]) -> Iterator[Checkpoint]:
        scheme = self.scheme
        k1, k2 = scheme.k1, scheme.k2
        for target in sorted(set(int(u) for u in updates)):
            if target < scheme.updates:
                continue
            first = max(1, target * k1 + k1 - k2 + 1)
            oldest = (first - 1) // k1  # the update whose weights forwarded the window's first step
            if scheme.updates < oldest:  # the hot path: one JIT call
                if not self._advance(oldest * k1 - scheme.t):
                    return
                self.past_weights = {scheme.updates: _snapshot(scheme)}
            while scheme.updates < target:  # the last k2 steps: one update period at a time
                if not self._advance(k1):
                    return
                self.past_weights[scheme.updates] = _snapshot(scheme)
            self.past_weights = {u: w for u, w in self.past_weights.items() if u >= oldest}
            window = next_window(scheme)
            single, stored = truncated_gradients(scheme, window, self.past_weights)
            exact = exact_gradient(scheme, window)
            rtrl = scheme.gradient_for_next_update() if scheme.name == "rtrl" else None
            grads = WindowGradients(window, single, stored, exact, scheme.theta.copy(),
                                    _drift(scheme, window, self.past_weights), rtrl)
            bpc = self._loss_sum / self._loss_count / LN2 if self._loss_count else float("nan")
            self._loss_sum, self._loss_count = 0.0, 0
            yield Checkpoint(scheme.t, scheme.updates, bpc, grads, scheme, self.past_weights)


# ----------------------------------------------------------------------------- the command's library side


@dataclass
class GradcheckResult:
    data: pd.DataFrame  # tidy: one row per (trajectory, checkpoint, estimator, tensor)
    paths: list[Path] = field(default_factory=list)
    fd_worst: float = float("nan")  # largest exact-vs-FD relative error (whole subset) over every checkpoint
    fd_worst_at: dict | None = None  # where it happened
    trajectories: list[dict] = field(default_factory=list)  # per (k2, lr): status, steps, diverged_at
    fd_requested: bool = True  # False when n_fd = 0
    fd_comparisons: int = 0  # checkpoints where the finite-difference check ran

    @property
    def fd_checked(self) -> bool:
        return self.fd_comparisons > 0

    @property
    def fd_passed(self) -> bool:
        """True when at every checkpoint g_exact agreed with finite differences to FD_TOLERANCE on the whole subset.

        The per-tensor rows are reported but do not decide: in a saturated network a tensor's
        sampled entries can be ~1e-10, where float64 rounding in the loss (~1e-13 / h) alone
        makes a relative error of 1e-4 without anything being wrong.
        """
        return self.fd_checked and self.fd_worst < FD_TOLERANCE

    def summary(self) -> pd.DataFrame:
        return summarize(self.data)

    def raise_if_failed(self) -> None:
        """GradientCheckError if the finite-difference check was asked for and did not pass."""
        if not self.fd_requested:
            return
        if not self.fd_checked:
            raise GradientCheckError("the finite-difference check never ran: no trajectory reached a checkpoint "
                                     "(did they diverge?); lower --lr, raise --steps or lower --every")
        if not self.fd_passed:
            at = self.fd_worst_at or {}
            where = ", ".join(f"{k}={v}" for k, v in at.items())
            raise GradientCheckError(
                f"the exact window gradient disagrees with finite differences: relative error {self.fd_worst:.3g} "
                f"> {FD_TOLERANCE:g} at {where}; if that trajectory's loss blew up, lower --lr, "
                "otherwise the backward pass is wrong: report it")


def summarize(data: pd.DataFrame, tensor: str = "all") -> pd.DataFrame:
    """Median (and max) over checkpoints of each estimator's error, per trajectory."""
    keys = ["scheme", "k1", "k2", "optimizer", "lr", "estimator"]
    rows = data[data["tensor"] == tensor]
    if rows.empty:
        return pd.DataFrame(columns=keys + ["checkpoints", "rel_error_median", "rel_error_max", "cosine_median",
                                            "cosine_min", "drift_median"])
    grouped = rows.groupby(keys, sort=False)
    out = grouped.agg(
        checkpoints=("step", "size"),
        rel_error_median=("rel_error", "median"),
        rel_error_max=("rel_error", "max"),
        cosine_median=("cosine", "median"),
        cosine_min=("cosine", "min"),
        drift_median=("drift", "median"),
    ).reset_index()
    return out


def default_out_dir(root: Path = Path("results")) -> Path:
    """results/gradcheck-<UTC time>, with a suffix if that exists already."""
    from bpttbench.runner import default_out_dir as timestamped

    return timestamped(root, prefix="gradcheck")


def _prepare_out_dir(out_dir: Path, force: bool) -> None:
    children = check_out_dir(out_dir, force=force)
    for child in children:
        try:
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        except OSError as exc:
            raise ResultsError(f"could not remove {child}: {exc.strerror or exc}; choose another --out") from exc
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"could not create {out_dir}: {exc.strerror or exc}; choose --out elsewhere") from exc


def _write_csv(data: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda f: data.to_csv(f, index=False, float_format="%.10g"))


class GradcheckObserver:
    """What gradcheck reports as it goes; every method optional."""

    def trajectory_started(self, index: int, total: int, cfg: TrainConfig) -> None: ...

    def checkpoint(self, index: int, cfg: TrainConfig, step: int, rows: list[dict]) -> None: ...

    def trajectory_finished(self, index: int, cfg: TrainConfig, info: dict) -> None: ...


def gradcheck(
    corpus,
    *,
    scheme: str = "single",
    k1: int = 1,
    k2s: Sequence[int] = (5, 20, 50),
    lrs: Sequence[float] = (2e-3, 2e-2),
    hidden: int = 128,
    batch: int = 1,
    optimizer: str = "adam",
    clip: float = 0.0,
    inject: str = "new",
    dtype: str = "float64",
    seed: int = 0,
    steps: int = 20000,
    every: int = 1000,
    n_fd: int = 24,
    fd_step: float = FD_STEP,
    out_dir: Path | None = None,
    force: bool = False,
    formats: Sequence[str] = ("png", "svg"),
    observer: GradcheckObserver | None = None,
) -> GradcheckResult:
    """Follow one trajectory per (k2, lr) for `steps` time steps and measure gradients every `every` updates.

    Every trajectory starts from the same weights (init_theta(seed)). n_fd = 0 skips the
    finite-difference check (the result then reports fd_checked False). With out_dir, writes
    gradcheck.csv (after every trajectory), gradcheck.json and the figures there.
    """
    if scheme not in FOLLOWABLE:
        raise ConfigError(f"gradcheck follows single, stored, rtrl or uoro, not {scheme!r}; choose one of those with --scheme")
    k2s = list(dict.fromkeys(int(k) for k in k2s))
    lrs = list(dict.fromkeys(float(lr) for lr in lrs))
    if not k2s or not lrs:
        raise ConfigError("give at least one k2 and one learning rate")
    if not isinstance(every, int) or every < 1:
        raise ConfigError(f"--every must be a whole number of updates >= 1, got {every!r}")
    if not isinstance(n_fd, int) or n_fd < 0:
        raise ConfigError(f"--fd-weights must be a whole number >= 0, got {n_fd!r}")
    if not (isinstance(fd_step, (int, float)) and 0 < fd_step < 1):
        raise ConfigError(f"the finite-difference step must be in (0, 1), got {fd_step!r}")
    configs = [TrainConfig(scheme=scheme, k1=k1, k2=k2, inject=inject, hidden=hidden, batch=batch, optimizer=optimizer,
                           lr=lr, clip=clip, dtype=dtype, seed=seed, budget_steps=steps)
               for k2 in k2s for lr in lrs]  # validates each
    n_updates = steps // k1
    checkpoints = list(range(every, n_updates + 1, every))
    if not checkpoints:
        raise ConfigError(f"{steps} steps make {n_updates} updates, fewer than --every={every}: no checkpoint; "
                          "raise --steps or lower --every")
    # Before any output exists: a corpus too short for the streams is the user's to fix (no validation is read).
    check_corpus_fits(corpus, k2=max(k2s), eval_chars=1, batch=batch)
    if out_dir is not None:
        out_dir = Path(out_dir)
        _prepare_out_dir(out_dir, force)
    observer = observer or GradcheckObserver()
    V, H = corpus.vocab_size, hidden
    train_ids = corpus.train_ids
    started = time.perf_counter()
    rows: list[dict] = []
    result = GradcheckResult(pd.DataFrame(columns=COLUMNS), fd_requested=n_fd > 0)
    manifest = {
        "command": "gradcheck",
        "corpus": corpus.info() if hasattr(corpus, "info") else {"name": getattr(corpus, "name", "?")},
        "settings": {"scheme": scheme, "k1": k1, "k2s": k2s, "lrs": lrs, "hidden": hidden, "batch": batch,
                     "optimizer": optimizer, "clip": clip, "inject": inject, "dtype": dtype, "seed": seed,
                     "steps": steps, "every": every, "n_fd": n_fd, "fd_step": fd_step, "fd_tolerance": FD_TOLERANCE},
        "status": "running",
    }
    if out_dir is not None:
        from bpttbench.runner import machine_info

        manifest["machine"] = machine_info()
        _write_json(out_dir / MANIFEST_NAME, manifest)
    corpus_name = getattr(corpus, "name", "?")
    try:
        for index, cfg in enumerate(configs):
            observer.trajectory_started(index, len(configs), cfg)
            follower = Follower(cfg, train_ids, V)
            rng = np.random.default_rng([seed, cfg.k2, index])
            t0 = time.perf_counter()
            n_done = 0
            for cp in follower.checkpoints(checkpoints):
                fd = None
                if n_fd:
                    window = cp.gradients.window
                    indices = fd_subset(cp.scheme, window, n_fd, rng)
                    exact64 = cp.gradients.exact if cp.gradients.exact.dtype == np.float64 else \
                        exact_gradient(cp.scheme, window, np.float64)
                    estimate = central_differences(window_objective(cp.scheme, window), cp.gradients.theta, indices, fd_step)
                    fd = (indices, exact64[indices], estimate)
                base = {"corpus": corpus_name, "scheme": cfg.scheme, "k1": cfg.k1, "k2": cfg.k2, "inject": cfg.inject,
                        "hidden": cfg.hidden, "batch": cfg.batch, "dtype": cfg.dtype, "optimizer": cfg.optimizer,
                        "lr": cfg.lr, "clip": cfg.clip, "seed": cfg.seed, "step": cp.step, "updates": cp.updates,
                        "train_bpc": cp.train_bpc, "drift": cp.gradients.drift}
                new = [{**base, **r} for r in metric_rows(cp.gradients, V, H, fd)]
                rows.extend(new)
                n_done += 1
                for r in new:  # the subset as a whole decides; see fd_passed
                    if r["estimator"] != "exact_vs_fd" or r["tensor"] != "all":
                        continue
                    err = r["rel_error"] if np.isfinite(r["rel_error"]) else float("inf")  # never a pass
                    result.fd_comparisons += 1
                    if not err <= result.fd_worst:
                        result.fd_worst = err
                        result.fd_worst_at = {"k2": cfg.k2, "lr": cfg.lr, "step": cp.step}
                observer.checkpoint(index, cfg, cp.step, new)
            info = {"k2": cfg.k2, "lr": cfg.lr, "status": "diverged" if follower.diverged_at is not None else "complete",
                    "steps": follower.scheme.t, "diverged_at_step": follower.diverged_at, "checkpoints": n_done,
                    "seconds": round(time.perf_counter() - t0, 3)}
            result.trajectories.append(info)
            observer.trajectory_finished(index, cfg, info)
            result.data = pd.DataFrame(rows, columns=COLUMNS)
            if out_dir is not None:
                _write_csv(result.data, out_dir / CSV_NAME)
                manifest["trajectories"] = result.trajectories
                _write_json(out_dir / MANIFEST_NAME, manifest)
    except BaseException as exc:  # Ctrl-C, SIGTERM (as KeyboardInterrupt) or a failure: never left saying 'running'
        if out_dir is not None:
            manifest["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            try:
                _write_json(out_dir / MANIFEST_NAME, manifest)
            except BpttbenchError:
                pass  # the original error matters more
        raise
    if out_dir is not None:
        result.paths.append(out_dir / CSV_NAME)
        result.paths.extend(plot_gradcheck(result.data, out_dir, formats=formats))
        manifest.update(status="complete", seconds=round(time.perf_counter() - started, 3),
                        fd_checked=result.fd_checked, fd_passed=result.fd_passed,
                        fd_worst_rel_error=result.fd_worst, fd_worst_at=result.fd_worst_at,
                        summary=summarize(result.data).to_dict(orient="records"))
        _write_json(out_dir / MANIFEST_NAME, manifest)
        result.paths.append(out_dir / MANIFEST_NAME)
    return result


def _write_json(path: Path, data: dict) -> None:
    def finite(obj):
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else None
        if isinstance(obj, dict):
            return {str(k): finite(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [finite(v) for v in obj]
        if isinstance(obj, np.generic):
            return finite(obj.item())
        return obj

    text = json.dumps(finite(data), indent=2, default=str) + "\n"
    atomic_write(path, lambda f: f.write(text))


# ----------------------------------------------------------------------------- figures


def _save(fig: Figure, stem: Path, formats: Sequence[str]) -> list[Path]:
    written = []
    for fmt in formats:
        target = stem.with_suffix(f".{fmt}")
        meta = {"Date": None} if fmt == "svg" else None
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            atomic_write(target, lambda f, fmt=fmt, meta=meta: fig.savefig(f, format=fmt, dpi=130, metadata=meta), binary=True)
        written.append(target)
    return written


def _positive(values: np.ndarray) -> np.ndarray:
    """Exact zeros (lr = 0, k2 = 1) have no place on a log axis: masked here, named in the panel instead."""
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def plot_gradcheck(data: pd.DataFrame, out_dir: Path, *, tensor: str = "all",
                   formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Relative error against training step, one panel per (lr, k2), one line per estimator; and error against k2.

    Returns the written files (none if data holds no checkpoint).
    """
    rows = data[data["tensor"] == tensor]
    if rows.empty:
        return []
    out_dir = Path(out_dir)
    corpus = ", ".join(sorted(rows["corpus"].astype(str).unique()))
    followed = ", ".join(sorted(rows["scheme"].astype(str).unique()))
    k2s = sorted(rows["k2"].unique())
    lrs = sorted(rows["lr"].unique())
    log_y = bool(np.isfinite(_positive(rows["rel_error"].to_numpy(float))).any())  # else nothing to draw on it
    fig = Figure(figsize=(3.4 * len(k2s) + 1.0, 2.7 * len(lrs) + 1.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(lrs), len(k2s), sharex=True, sharey=True, squeeze=False)
    for i, lr in enumerate(lrs):
        for j, k2 in enumerate(k2s):
            ax = axes[i][j]
            panel = rows[(rows["lr"] == lr) & (rows["k2"] == k2)]
            exact_zero = []
            for estimator in ESTIMATORS:
                color, ls, label = ESTIMATOR_STYLE[estimator]
                line = panel[panel["estimator"] == estimator].sort_values("step")
                if line.empty:
                    continue
                if (line["rel_error"] == 0).all():
                    exact_zero.append(label)
                ax.plot(line["step"], _positive(line["rel_error"].to_numpy(float)), color=color, linestyle=ls,
                        marker="o", markersize=2.5, linewidth=1.4, label=label)
            ax.axhline(FD_TOLERANCE, color="0.5", linewidth=0.8, linestyle=(0, (1, 3)))
            if exact_zero:  # a log axis cannot show them: say so rather than leave the panel looking empty
                ax.text(0.03, 0.95, "error exactly 0:\n" + "\n".join(exact_zero), transform=ax.transAxes,
                        va="top", fontsize="small", color="0.25")
            if log_y:
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            optimizer = ", ".join(sorted(panel["optimizer"].astype(str).unique()))
            ax.set_title(f"k2 = {k2}, {optimizer} lr = {lr:g}", fontsize="medium")
            if i == len(lrs) - 1:
                ax.set_xlabel("time steps")
            if j == 0:
                ax.set_ylabel("relative error ||g − g_ref|| / ||g_ref||")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize="small")
    fig.suptitle(f"Gradient error along a {followed} trajectory — corpus {corpus}, tensor: {tensor} "
                 f"(dotted: FD tolerance {FD_TOLERANCE:g})")
    written = _save(fig, out_dir / FIGURE_STEM, formats)

    # The same numbers against truncation length: median over checkpoints, one line per (estimator, lr).
    summary = summarize(data, tensor)
    summary = summary[summary["estimator"] != "exact_vs_fd"]
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lr_styles = ("-", "--", ":", "-.")
    for estimator, lr in [(e, lr) for e in ESTIMATORS for lr in lrs]:
        line = summary[(summary["estimator"] == estimator) & (summary["lr"] == lr)].sort_values("k2")
        if line.empty:
            continue
        color, _, label = ESTIMATOR_STYLE[estimator]
        rank = lrs.index(lr)
        ax.plot(line["k2"], _positive(line["rel_error_median"].to_numpy(float)), color=color,
                linestyle=lr_styles[rank % len(lr_styles)], marker="o", markersize=4,
                label=f"{label}, lr = {lr:g}")
    ax.set_xscale("log")
    if np.isfinite(_positive(summary["rel_error_median"].to_numpy(float))).any():
        ax.set_yscale("log")
    ax.set_xticks(k2s, [str(k) for k in k2s])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("k2 (steps backpropagated)")
    ax.set_ylabel("median relative error ||g − g_ref|| / ||g_ref||")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.suptitle(f"Gradient error against truncation length — {followed} trajectory, corpus {corpus}")
    optimizers = ", ".join(sorted(rows["optimizer"].astype(str).unique()))
    ax.set_title(f"{optimizers}; median over checkpoints; tensor: {tensor}", fontsize="small", color="0.35")
    written += _save(fig, out_dir / FIGURE_K2_STEM, formats)
    return written
