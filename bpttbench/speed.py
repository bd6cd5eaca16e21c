"""How fast each truncation scheme runs, against the BLAS work it cannot avoid and against PyTorch and JAX.

`measure_speed(...)` times every scheme over a grid of hidden sizes H, truncation lengths k2
and batch sizes B (defaults: H = 128, V = 65, k1 = 1, k2 = 20, B = 1, float32, plain SGD, one
BLAS thread) and returns one tidy row per configuration; `write_speed` saves the rows as CSV
with a JSON note of the machine and a figure of cost against k2 and against H;
`speed_targets` checks the rows against the speed targets. `bpttbench speed` is a thin
command over these three.

How a number is made. Each configuration gets a few timers: the scheme with SGD, the scheme
with the default optimizer (Adam with clip 1), its lower bound, the optimizer bound, and
(--against torch,jax) the peers: the same scheme written for speed in PyTorch
(bpttbench/peers/torch_peer.py) and in jitted JAX (bpttbench/peers/jax_peer.py), each in the form
its DEFAULT_VARIANTS names (the row says which: torch_variant, jax_variant; the peers implement
chunked, single, stored and sliding, and other schemes' peer columns are NaN). Every timer is
warmed up (compiled, jitted, caches filled), then sized so that one sample lasts `min_time`
seconds, and the samples of all timers are taken in turns, `repeats` rounds, so that a burst of
load from elsewhere hits them alike. A figure is the median over the samples. Each sample is
read on two clocks: CPU time of this process (`us_per_step`, the primary one: on a machine shared
with other work it does not count the time spent waiting for a core) and wall time
(`wall_us_per_step`); on an idle machine they agree, since everything runs on one thread.

Peers. Each row names its strongest peer, the faster of those timed (`peer`,
`peer_us_per_step`), and `peer_speedup` = peer_us_per_step / us_per_step is taken against it:
a speed-up is only claimed against the best implementation measured.

Lower bounds (per time step; G = 4H for the LSTM, 3H for the GRU, H for the RNN; each product is a BLAS call on 64-byte aligned arrays):
- single: per update, k1 forward products h W_hh^T (B x H times H x G); the decoder's forward
  and backward products over the k1 B rows whose losses are injected, one GEMM each; k2 - 1
  backward products dz W_hh (B x G times G x H: the window's first step sends nothing further
  back); the dW_hh GEMM over the window (G x k2 B x H) and the dW_dec GEMM (V x k1 B x H), both
  accumulated into the weights as the fused SGD step does; divided by k1.
- chunked: the same with k1 = k2 = k.
- stored: as single, but the backward products read k2 different matrices (the snapshots),
  so their memory traffic counts, and the decoder's backward is one product per step.
- sliding: as single, with k2 forward products per update.
Left out on purpose (not BLAS work): the gate nonlinearities and softmax, the input weights'
gather and update, the biases, and the copying of stored's snapshots. `ratio` = us_per_step /
bound_us is the price of all of that.

The optimizer bound (`optimizer_bound_us`, bpttbench/speed_bounds.py): the one streaming pass
over parameters, gradient and both moments that any Adam update makes, timed alone; Adam's
extra cost over SGD is reported against it (`adam_ratio`, `adam_extra_over_bound`).

Memory: `resident_bytes` is what the scheme keeps (Scheme.resident_bytes: parameters,
optimiser state, rings, scratch, snapshots); `peak_bytes` is tracemalloc's peak while the
scheme is built and runs one update period (the kernels allocate nothing per step).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time
import tracemalloc
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from numba import njit

from bpttbench.kernels.blas_backend import current as current_blas
from bpttbench.config import CHUNK_SCHEMES, TRUNCATED_SCHEMES, UNTRUNCATED_SCHEMES, TrainConfig
from bpttbench.defaults import TRAIN
from bpttbench.errors import UserError
from bpttbench.kernels.blas import dot, gemm_tn
from bpttbench.kernels.vecmath import JIT
from bpttbench.model import init_theta
from bpttbench.peers import PEERS, load_peer, peer_class, peer_schemes
from bpttbench.scheme_names import CELLS, DEFAULT_CELL
from bpttbench.schemes import REGISTRY, make_scheme
from bpttbench.schemes.base import aligned_zeros
from bpttbench.speed_bounds import OptimizerBoundTimer, adam_columns, adam_targets
from bpttbench.kernels.threads import single_threaded_blas

TIMED_SCHEMES = TRUNCATED_SCHEMES  # what `--scheme all` times and the speed targets are about
# The untruncated schemes are timed when named, without a BLAS bound or a peer (their rows say NaN).
TIMEABLE = TRUNCATED_SCHEMES + UNTRUNCATED_SCHEMES
LR = 2e-3  # small enough that no timed run diverges; the rate does not change the work
# Plain SGD without clipping, as every speed measurement here: its step is fused into the gradient GEMM.
# Adam (adam_us_per_step) runs with the same rate and the default clip (TrainConfig's, 1).
COLUMNS = [
    "scheme", "cell", "hidden", "k1", "k2", "batch", "dtype", "vocab_size",
    "us_per_step", "steps_per_s", "bound_us", "ratio",
    "wall_us_per_step", "wall_bound_us", "wall_ratio",
    "adam_us_per_step", "adam_extra_us", "adam_ratio", "optimizer_bound_us", "adam_extra_over_bound",
    "torch_us_per_step", "torch_wall_us_per_step", "jax_us_per_step", "jax_wall_us_per_step",
    "torch_variant", "jax_variant",
    "peer", "peer_us_per_step", "peer_speedup",
    "resident_bytes", "peak_bytes", "samples", "steps_per_sample",
]


# ----------------------------------------------------------------------------- lower bounds

@njit(**JIT)
def bound_products(W_stack, D_stack, h, gates, dz_all, dh, hprev, h_injected, logits, dlog, dh_head, n_forward,
                   n_backward, n_updates):
    """n_updates times: n_forward products h W^T, the decoder's products over the injected rows,
    n_backward products dz W, the dW and dW_dec GEMMs.

    W_stack[0] and D_stack[0] are the current W_hh and decoder (the forward products and the
    GEMMs use them); the backward products of window row k read W_stack[k % len(W_stack)] and
    D_stack[k % len(D_stack)] (a stack of one, or stored's k2 snapshots: then the decoder's
    backward is one product per injected step, else one over all injected rows). The GEMMs add
    1e-30 times the gradient into the weights: a real accumulate (BLAS skips the product when
    alpha is 0) that leaves them as they were in float32 and float64.
    """
    B = h.shape[0]
    n_stack = W_stack.shape[0]
    W, D = W_stack[0], D_stack[0]
    for _ in range(n_updates):
        for _ in range(n_forward):
            dot(h, W.T, gates)
        dot(h_injected, D.T, logits)
        if n_stack == 1:
            dot(dlog, D, dh_head)
        else:
            for k in range(dlog.shape[0] // B):
                dot(dlog[k * B : (k + 1) * B], D_stack[k % n_stack], dh_head[k * B : (k + 1) * B])
        for k in range(n_backward):
            dot(dz_all[k * B : (k + 1) * B], W_stack[k % n_stack], dh)
        gemm_tn(-1e-30, dz_all, hprev, 1.0, W)
        gemm_tn(-1e-30, dlog, h_injected, 1.0, D)


class BoundTimer:
    """The unavoidable products of one scheme's update period, timed alone."""

    def __init__(self, scheme: str, hidden: int, k1: int, k2: int, batch: int, dtype: str, seed: int = 0,
                 vocab_size: int = 65, cell: str = DEFAULT_CELL):
        rng = np.random.default_rng(seed)
        G, H, B, V = CELLS[cell] * hidden, hidden, batch, vocab_size
        scale = 1.0 / math.sqrt(H)

        def filled(shape, s=1.0):
            a = aligned_zeros(shape, dtype)
            a[...] = rng.uniform(-s, s, size=shape)
            return a

        n_stack = k2 if scheme == "stored" else 1
        rows_injected = k1 * B  # the losses of the newest k1 steps (inject="new")
        self.args = (filled((n_stack, G, H), scale), filled((n_stack, V, H), scale), filled((B, H)), filled((B, G)),
                     filled((k2 * B, G), 0.1), filled((B, H)), filled((k2 * B, H)), filled((rows_injected, H)),
                     filled((rows_injected, V)), filled((rows_injected, V), 0.1), filled((rows_injected, H)))
        self.n_forward = k2 if scheme == "sliding" else k1
        self.n_backward = k2 - 1  # the window's first step sends no gradient further back
        self.unit_steps = k1

    def run(self, n_units: int) -> bool:
        bound_products(*self.args, self.n_forward, self.n_backward, n_units)
        return True


def bound_us(scheme: str, hidden: int = 128, k1: int = 1, k2: int = 20, batch: int = 1, dtype: str = "float32",
             *, repeats: int = 5, min_time: float = 0.02) -> float:
    """The lower bound of one scheme alone, in microseconds of CPU time per step (median)."""
    timer = BoundTimer(scheme, hidden, k2 if scheme in CHUNK_SCHEMES else k1, k2, batch, dtype)
    samples = _sample([timer], repeats, min_time)[0]
    return float(np.median([cpu for cpu, _ in samples]) * 1e6)


# ----------------------------------------------------------------------------- the timed things

def synthetic_ids(vocab_size: int, n_chars: int = 200_000, seed: int = 0) -> np.ndarray:
    """Uniformly random characters: every window holds many distinct ones, the costlier case for
    the input weights' update (real text repeats characters more)."""
    return np.random.default_rng(seed).integers(0, vocab_size, n_chars).astype(np.int32)


class SchemeTimer:
    """A bpttbench scheme advancing whole update periods; rebuilt if a run ever diverges."""

    def __init__(self, cfg: TrainConfig, vocab_size: int, ids: np.ndarray):
        self.cfg, self.V, self.ids = cfg, vocab_size, ids
        self.unit_steps = cfg.k1
        self.losses = np.empty(0)
        self._build()

    def _build(self):
        theta = init_theta(self.V, self.cfg.hidden, self.cfg.seed, self.cfg.dtype, self.cfg.cell)
        self.scheme = make_scheme(self.cfg, theta, self.V, self.ids)

    def run(self, n_units: int) -> bool:
        n = n_units * self.unit_steps
        if self.losses.size < n:
            self.losses = np.empty(n)
        done = self.scheme.run(n, self.losses[:n])
        if done < n:  # a diverged run does less work per step: drop the sample, start again
            self._build()
            return False
        return True


class PeerTimer:
    """A peer's version of the scheme (`peer` in PEERS), advancing whole units: k1 steps for
    PyTorch, one jitted block for JAX (so no timed call compiles anything). `variant` names the
    peer's form of chunked or sliding (None: the peer's default); .variant says which ran."""

    def __init__(self, peer: str, scheme: str, cfg: TrainConfig, vocab_size: int, ids: np.ndarray,
                 variant: str | None = None):
        theta = init_theta(vocab_size, cfg.hidden, cfg.seed, cfg.dtype, cfg.cell)
        self.model = peer_class(peer)(scheme, theta, vocab_size, cfg.hidden, ids, k1=cfg.k1, k2=cfg.k2,
                                      batch=cfg.batch, lr=cfg.lr, variant=variant, cell=cfg.cell)
        self.variant = self.model.variant
        self.unit_steps = getattr(self.model, "block_steps", cfg.k1)

    def run(self, n_units: int) -> bool:
        losses = self.model.run(n_units * self.unit_steps)  # read back once: waits for the work to finish
        return bool(np.isfinite(losses).all())


def strongest_peer(times: dict[str, float]) -> tuple[str | None, float]:
    """(name, us/step) of the fastest peer among those timed; (None, nan) if none was."""
    timed = {name: us for name, us in times.items() if us == us}
    if not timed:
        return None, math.nan
    name = min(timed, key=timed.get)
    return name, timed[name]


def _sample(timers: Sequence, repeats: int, min_time: float) -> list[list[tuple[float, float]]]:
    """Warm each timer up, size its samples to about min_time seconds, then take `repeats`
    rounds of one sample per timer in turn; returns per timer [(cpu s/step, wall s/step), ...]."""
    sizes = []
    for timer in timers:
        timer.run(1)
        timer.run(1)  # compiled, caches warm
        n, elapsed = 1, 0.0
        while True:
            start = time.process_time()
            timer.run(n)
            elapsed = time.process_time() - start
            if elapsed >= min_time / 4 or n >= 1 << 20:
                break
            n *= 4
        sizes.append(max(1, round(n * min_time / max(elapsed, 1e-9))))
    samples: list[list[tuple[float, float]]] = [[] for _ in timers]
    for _ in range(repeats):
        for timer, n, out in zip(timers, sizes, samples):
            wall, cpu = time.perf_counter(), time.process_time()
            ok = timer.run(n)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if ok:
                steps = n * timer.unit_steps
                out.append((cpu / steps, wall / steps))
    for timer, n, out in zip(timers, sizes, samples):
        timer.steps_per_sample = n * timer.unit_steps
    return samples


def _median_us(samples, clock: int) -> float:
    return float(np.median([s[clock] for s in samples]) * 1e6) if samples else float("nan")


def memory_bytes(cfg: TrainConfig, vocab_size: int, ids: np.ndarray) -> tuple[int, int]:
    """(resident bytes, tracemalloc peak) of a freshly built scheme running one update period."""
    tracemalloc.start()
    try:
        timer = SchemeTimer(cfg, vocab_size, ids)
        timer.run(1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return timer.scheme.resident_bytes(), peak


@contextmanager
def one_thread(torch_too: bool = False):
    """One BLAS thread (and one PyTorch thread) for the duration. (JAX's one thread is set
    by bpttbench.peers.jax_peer.require, before JAX starts: see its ONE_THREAD.)

    bpttbench.kernels.threads loads SciPy's BLAS (the one numba's np.dot calls) before limiting it:
    kernels loaded from numba's cache have not loaded it yet, and a limit set before it loads
    misses it (its worker then competes for the second core: 3 to 80 times slower here).
    """
    torch_threads = None
    if torch_too:
        import torch

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        with single_threaded_blas():
            yield
    finally:
        if torch_threads is not None:
            import torch

            torch.set_num_threads(torch_threads)


# ----------------------------------------------------------------------------- the measurement

def _as_tuple(values) -> tuple:
    return tuple(values) if isinstance(values, Iterable) and not isinstance(values, (str, bytes)) else (values,)


def measure_speed(schemes: Iterable[str] = TIMED_SCHEMES, hidden: Iterable[int] = (128,), k2: Iterable[int] = (20,),
                  batch: Iterable[int] = (1,), *, k1: int = 1, vocab_size: int = 65,
                  dtypes: Iterable[str] = ("float32",), repeats: int = 7, min_time: float = 0.05,
                  adam: bool = True, against: Iterable[str] = (), against_torch: bool = False, seed: int = 0,
                  cells: Iterable[str] = (DEFAULT_CELL,),
                  progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Time every scheme over the grid cells x hidden x k2 x batch x dtypes; one row per configuration.

    chunked and adaptive always run with k1 = k2 (their definition); the other schemes with the given k1.
    `against` names peers to time too ("torch", "jax"); against_torch=True is against=("torch",).
    Columns (times in microseconds per time step, medians over `repeats` samples):
      us_per_step, steps_per_s    the scheme with plain SGD, CPU time
      bound_us, ratio             its lower bound (see the module docstring) and us_per_step / bound_us
      wall_*                      the same on the wall clock
      adam_us_per_step            the scheme with Adam and clip 1 (adam=True), adam_extra_us over SGD and
                                  adam_ratio = adam_us_per_step / us_per_step
      optimizer_bound_us          the optimizer bound (see speed_bounds.py), and adam_extra_over_bound =
                                  adam_extra_us / optimizer_bound_us
      torch_us_per_step,          each peer's version (NaN when not timed)
      jax_us_per_step
      peer, peer_us_per_step      the fastest of the timed peers, and peer_speedup =
                                  peer_us_per_step / us_per_step
      resident_bytes, peak_bytes  memory, see the module docstring
    """
    schemes, hidden, k2, batch, dtypes = map(_as_tuple, (schemes, hidden, k2, batch, dtypes))
    for name in schemes:
        if name not in TIMEABLE:
            raise UserError(f"unknown scheme {name!r}; bpttbench speed times {', '.join(TIMEABLE)}")
    if repeats < 1 or min_time <= 0:
        raise UserError("--repeats must be at least 1 and the sample time positive")
    peers = tuple(dict.fromkeys((*_as_tuple(against), *(("torch",) if against_torch else ()))))
    for peer in peers:
        module = load_peer(peer)  # fail before any timing if a peer is missing
        shortfall = getattr(module, "one_thread_shortfall", lambda: None)()
        if shortfall:
            warnings.warn(shortfall, stacklevel=2)
    ids = synthetic_ids(vocab_size, seed=seed)
    rows = []
    say = progress or (lambda message: None)
    load_before = list(os.getloadavg())
    with one_thread(torch_too="torch" in peers):
        blas = blas_info()  # as limited for the measurement
        for cell, dtype, H, K2, B, name in itertools.product(_as_tuple(cells), dtypes, hidden, k2, batch, schemes):
            K1 = K2 if name in CHUNK_SCHEMES else k1
            try:
                cfg = TrainConfig(scheme=name, cell=cell, k1=K1, k2=K2, hidden=H, batch=B, optimizer="sgd", lr=LR,
                                  clip=0.0, dtype=dtype, seed=seed, budget_steps=1)
            except UserError as exc:
                raise UserError(f"bpttbench speed: {exc}") from exc
            say(f"{name} {cell} H={H} k2={K2} B={B} {dtype}")
            rows.append(_measure_one(name, cfg, vocab_size, ids, repeats, min_time, adam, peers))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs.update(blas=blas, blas_backend=current_blas().info(), load_average_before=load_before,
                    load_average_after=list(os.getloadavg()))
    return df


def _measure_one(name, cfg, vocab_size, ids, repeats, min_time, adam, peers) -> dict:
    REGISTRY[cfg.scheme].check_fits(cfg, vocab_size)  # rtrl's memory limit, before anything is built
    truncated = name in TRUNCATED_SCHEMES
    timers = {"sgd": SchemeTimer(cfg, vocab_size, ids)}
    if truncated:
        timers["bound"] = BoundTimer(name, cfg.hidden, cfg.k1, cfg.k2, cfg.batch, cfg.dtype, cfg.seed, vocab_size, cfg.cell)
    if adam:
        timers["adam"] = SchemeTimer(cfg.replace(optimizer="adam", clip=TRAIN.clip), vocab_size, ids)
        timers["optimizer_bound"] = OptimizerBoundTimer(vocab_size, cfg.hidden, cfg.k1, cfg.dtype, cfg.seed, cfg.cell)
    if truncated:
        for peer in peers:
            if name in peer_schemes(peer, cfg.cell):  # (adaptive has no peer; not every cell every scheme)
                timers[peer] = PeerTimer(peer, name, cfg, vocab_size, ids)
    samples = dict(zip(timers, _sample(list(timers.values()), repeats, min_time)))
    us = _median_us(samples["sgd"], 0)
    wall = _median_us(samples["sgd"], 1)
    bound, wall_bound = (_median_us(samples["bound"], 0), _median_us(samples["bound"], 1)) if truncated else (math.nan, math.nan)
    resident, peak = memory_bytes(cfg, vocab_size, ids)
    row = dict(
        scheme=name, cell=cfg.cell, hidden=cfg.hidden, k1=cfg.k1, k2=cfg.k2, batch=cfg.batch, dtype=cfg.dtype,
        vocab_size=vocab_size, us_per_step=us, steps_per_s=1e6 / us, bound_us=bound, ratio=us / bound,
        wall_us_per_step=wall, wall_bound_us=wall_bound, wall_ratio=wall / wall_bound,
        resident_bytes=resident, peak_bytes=peak, samples=len(samples["sgd"]),
        steps_per_sample=timers["sgd"].steps_per_sample,
    )
    if adam:
        row.update(adam_columns(_median_us(samples["adam"], 0), us, _median_us(samples["optimizer_bound"], 0)))
    times = {}
    for peer in PEERS:
        timed = peer in samples
        times[peer] = row[f"{peer}_us_per_step"] = _median_us(samples[peer], 0) if timed else math.nan
        row[f"{peer}_wall_us_per_step"] = _median_us(samples[peer], 1) if timed else math.nan
        row[f"{peer}_variant"] = timers[peer].variant if timed else None
    row["peer"], row["peer_us_per_step"] = strongest_peer(times)
    row["peer_speedup"] = row["peer_us_per_step"] / us
    return row


# ----------------------------------------------------------------------------- targets, files, figure

def _pick(df: pd.DataFrame, **where) -> pd.DataFrame:
    mask = np.ones(len(df), bool)
    for key, value in where.items():
        mask &= (df[key] == value).to_numpy()
    return df[mask]


def speed_targets(df: pd.DataFrame, *, hidden: int = 128, k2: int = 20) -> pd.DataFrame:
    """The speed targets against the rows: one row per target with measured, threshold, met.

    The targets against other implementations compare with the fastest peer timed (and name
    it in `note`); their thresholds were first set against PyTorch. Targets that the rows
    cannot decide (say, no peer timed, or a single k2) say so in `note` and have met = None.
    """
    out = []
    if "cell" in df:  # the targets are the LSTM's (rows from before the cell column are)
        df = df[df["cell"].fillna(DEFAULT_CELL) == DEFAULT_CELL]
    base = dict(hidden=hidden, k2=k2, dtype="float32")

    def one(scheme, batch=1, **extra):
        rows = _pick(df, scheme=scheme, batch=batch, **{**base, **extra})
        return rows.iloc[0] if len(rows) else None

    def add(target, measured, threshold, met, note=""):
        ok = None if measured is None or (isinstance(measured, float) and math.isnan(measured)) else bool(met)
        out.append(dict(target=target, measured=measured, threshold=threshold, met=ok, note=note))

    def has(row, column):
        return row is not None and column in row and not pd.isna(row[column])

    single, sliding, stored = one("single"), one("sliding"), one("stored")
    chunked1, chunked32 = one("chunked"), one("chunked", batch=32)

    def against_peer(label, row, threshold, needs="needs --against torch,jax"):
        """The fastest peer's time over ours (peer_speedup), the peer named in the note, with the
        speed-up the scheme would have at its own BLAS bound (the most exact arithmetic allows)."""
        if not has(row, "peer_speedup"):
            add(f"{label}: fastest peer's time / ours", None, f">= {threshold}", False, needs)
            return
        others = ", ".join(f"{p} {row[f'{p}_us_per_step']:.0f} us" for p in PEERS
                           if p != row["peer"] and has(row, f"{p}_us_per_step"))
        note = f"against {row['peer']} ({row['peer_us_per_step']:.0f} us/step{'; ' + others if others else ''})"
        if has(row, "bound_us"):
            note += f"; at most {row['peer_us_per_step'] / row['bound_us']:.2f} at the BLAS bound"
        add(f"{label}: fastest peer's time / ours", float(row["peer_speedup"]), f">= {threshold}",
            row["peer_speedup"] >= threshold, note)

    def within_bound(label, row, threshold):
        ratio = float(row["ratio"]) if has(row, "ratio") else None
        add(f"{label}: time / BLAS lower bound", ratio, f"<= {threshold}", ratio is not None and ratio <= threshold)

    # The lead the project holds itself to: 2x the fastest peer at B = 1 and 1.5x at B = 32; chunked within
    # 1.15x of its bound.
    for scheme in ("chunked", "single", "sliding"):
        for batch, threshold in ((1, 2), (32, 1.5)):
            against_peer(f"{scheme} (B={batch})", one(scheme, batch=batch), threshold,
                         "needs --against torch,jax" + (" and --batch 32" if batch > 1 else ""))
    within_bound("chunked (B=1)", chunked1, 1.15)
    within_bound("chunked (B=32)", chunked32, 1.15)
    within_bound("single", single, 1.15)
    within_bound("sliding", sliding, 1.25)
    out.extend(adam_targets(one))
    stored_ratio = stored["us_per_step"] / single["us_per_step"] if stored is not None and single is not None else None
    add("stored: time / single's", stored_ratio, "<= 1.1", stored_ratio is not None and stored_ratio <= 1.1,
        f"stored's BLAS bound alone is {stored['bound_us'] / single['bound_us']:.2f}x single's (k2 distinct W_hh)"
        if stored_ratio is not None else "")
    for scheme in ("single", "stored", "sliding"):  # chunked's cost per step does not grow with k = k2
        rows = _pick(df, scheme=scheme, hidden=hidden, batch=1, dtype="float32").sort_values("k2")
        if rows["k2"].nunique() < 3:
            continue
        x, y = rows["k2"].to_numpy(float), rows["us_per_step"].to_numpy(float)
        slope, intercept = np.polyfit(x, y, 1, w=1.0 / y)  # a fit of relative errors: k2 = 5 counts as much as 200
        worst = float(np.max(np.abs(intercept + slope * x - y) / y))
        add(f"{scheme}: cost linear in k2 ({int(x.min())}..{int(x.max())}), worst relative deviation from a line",
            worst, "<= 0.1", worst <= 0.1, f"{slope:.2f} us per unit of k2")
    if stored is not None and single is not None:
        G, H, V = 4 * hidden, hidden, int(stored["vocab_size"])
        snapshots = k2 * (G * H + V * H) * np.dtype("float32").itemsize
        extra = (stored["peak_bytes"] - single["peak_bytes"]) / snapshots
        add("stored: extra memory over single / k2 snapshots of W_hh and decoder", float(extra), "0.9 .. 1.1",
            0.9 <= extra <= 1.1)
    for scheme in TIMED_SCHEMES:
        r32 = _pick(df, scheme=scheme, hidden=hidden, k2=k2, batch=1, dtype="float32")
        r64 = _pick(df, scheme=scheme, hidden=hidden, k2=k2, batch=1, dtype="float64")
        if len(r32) and len(r64):
            ratio = float(r64["us_per_step"].iloc[0] / r32["us_per_step"].iloc[0])
            bound_ratio = float(r64["bound_us"].iloc[0] / r32["bound_us"].iloc[0])
            add(f"{scheme}: float64 time / float32", ratio, "<= 2.5", ratio <= 2.5,
                f"the BLAS bound's own ratio: {bound_ratio:.2f}")
    return pd.DataFrame(out, columns=["target", "measured", "threshold", "met", "note"])


def blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: v for k, v in lib.items() if k in ("internal_api", "prefix", "version", "num_threads", "architecture")}
            for lib in threadpool_info()]


def write_speed(df: pd.DataFrame, out: Path, *, parameters: dict | None = None) -> list[Path]:
    """speed.csv (the rows), speed.json (machine, parameters, targets) and speed.png into out."""
    from bpttbench.files import atomic_write
    from bpttbench.training.runner import machine_info

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv, meta, png = out / "speed.csv", out / "speed.json", out / "speed.png"
    atomic_write(csv, lambda f: df.to_csv(f, index=False))
    info = {"machine": machine_info(), "blas_while_measuring": df.attrs.get("blas", blas_info()),
            "blas_backend": df.attrs.get("blas_backend", current_blas().info()),
            "load_average_before": df.attrs.get("load_average_before"),
            "load_average_after": df.attrs.get("load_average_after", list(os.getloadavg())),
            "parameters": parameters or {}, "targets": speed_targets(df).to_dict(orient="records")}
    for peer in ("torch", "jax"):  # versions of the peers this process timed
        if peer in sys.modules:
            info["machine"][peer] = sys.modules[peer].__version__
    jax_peer = sys.modules.get("bpttbench.peers.jax_peer")
    if jax_peer is not None and jax_peer.ONE_THREAD_APPLIED is not None:
        info["machine"]["jax_one_thread"] = jax_peer.ONE_THREAD_APPLIED
    atomic_write(meta, lambda f: json.dump(info, f, indent=2, default=str))
    plot_speed(df, png)
    return [csv, meta, png]


def plot_speed(df: pd.DataFrame, path: Path) -> Path:
    """Cost per step against k2 (left) and against H (right), each scheme with its bound dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    colours = {"chunked": "tab:green", "single": "tab:red", "stored": "tab:orange", "sliding": "tab:blue",
               "rtrl": "tab:brown", "uoro": "tab:gray"}
    rows = df[(df["batch"] == df["batch"].min()) & (df["dtype"] == df["dtype"].iloc[0])] if len(df) else df
    for ax, along, fixed in ((fig.add_subplot(1, 2, 1), "k2", "hidden"), (fig.add_subplot(1, 2, 2), "hidden", "k2")):
        if len(rows):
            at = rows[fixed].mode().iloc[0]
            for scheme, group in rows[rows[fixed] == at].groupby("scheme"):
                group = group.sort_values(along)
                c = colours.get(scheme)
                ax.plot(group[along], group["us_per_step"], "o-", color=c, label=scheme)
                ax.plot(group[along], group["bound_us"], "--", color=c, alpha=0.6)
                for peer, marker in (("torch", "x"), ("jax", "+")):
                    column = f"{peer}_us_per_step"
                    if column in group and group[column].notna().any():
                        ax.plot(group[along], group[column], ":", marker=marker, color=c, alpha=0.6)
            ax.set_title(f"{'H' if fixed == 'hidden' else 'k2'} = {at}")
        ax.set_xlabel("k2 (steps backpropagated)" if along == "k2" else "H (hidden units)")
        ax.set_ylabel("CPU microseconds per time step")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    fig.axes[0].legend(title="solid: scheme, dashed: BLAS bound, dotted: PyTorch (x), JAX (+)", fontsize=8, title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)
