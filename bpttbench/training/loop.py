"""The budgeted training loop for one (scheme, seed): yields `Record`s, never prints.

Python only orchestrates: each call into the scheme runs a block of steps inside JIT code,
sized to about BLOCK_SECONDS so that a time budget is met closely without Python in the
per-step loop. Compilation happens before the clock starts; evaluation is timed apart. Each block
is timed on two clocks: the wall clock and the training thread's CPU time (the kernels and BLAS
run on this one thread); `TrainConfig.clock` says which one the budget counts.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from typing import Callable, Iterator

import numpy as np

from bpttbench.config import CHUNK_SCHEMES, TrainConfig
from bpttbench.defaults import EVAL_BURN_IN, EVAL_MIN_SCORED, EVAL_STREAMS
from bpttbench.kernels.evaluate import evaluate_streams, stream_plan, stream_scratch
from bpttbench.model import init_theta
from bpttbench.results.records import Record, RunOutcome
from bpttbench.schemes import make_scheme
from bpttbench.kernels.threads import single_threaded_blas

LN2 = math.log(2.0)
BLOCK_SECONDS = 0.05  # time between budget checks
MAX_BLOCK_STEPS = 1 << 20
# Divergence is a non-finite loss (seen at the step it happens), or, checked at each log point, a
# non-finite weight (float32 overflows in the weights long before the loss, since saturated gates
# hide it) or a mean online loss above DIVERGED_FACTOR times that of uniform guessing, log(V): SGD
# at a huge learning rate keeps the loss finite (bounded gates) but at hundreds of bits/char,
# numbers that mean nothing and would only squash every other curve of a plot. Checking at log
# points, not per block, keeps the reported step independent of the clock.
DIVERGED_FACTOR = 4.0


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def validation_plan(n_chars: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The parallel streams validation reads n_chars characters in (kernels/evaluate.py)."""
    return stream_plan(n_chars, max_streams=EVAL_STREAMS, burn_in=EVAL_BURN_IN, min_scored=EVAL_MIN_SCORED)


def warm_up(cfg: TrainConfig, train_ids: np.ndarray | None = None, val_ids: np.ndarray | None = None) -> float:
    """Compile (or load from Numba's cache) every kernel cfg's run will call; returns seconds taken.

    Numba specialises on every argument's type, read-only flag and layout included, and a size-1
    axis can change a view's layout: so the warm-up runs a tiny copy of cfg whose every size keeps
    cfg's size-1-ness, on id arrays flagged like the ones the run will read (a corpus's are read-only).
    Otherwise the first real block compiles new specialisations on the training clock.
    """
    start = time.perf_counter()
    warm_up_training(cfg, train_ids)
    warm_up_evaluation(cfg, val_ids)
    return time.perf_counter() - start


WARM_UP_VOCAB = 3
WARM_UP_PATTERN = np.array([0, 1, 2, 1, 0, 2, 1, 0], np.int32)


def warm_up_training(cfg: TrainConfig, train_ids: np.ndarray | None = None) -> None:
    """warm_up's first half: the kernels the scheme's steps call."""
    scheme = _tiny_scheme(cfg, train_ids)
    periods = scheme.cfg.budget_steps
    scheme.run(periods, np.zeros(periods))


def warm_up_update(cfg: TrainConfig) -> None:
    """Of warm_up_training's kernels, only the optimiser step (Scheme.compile_update): another
    process can compile it while one compiles the rest (bpttbench.training.precompile)."""
    _tiny_scheme(cfg).compile_update()


def _tiny_scheme(cfg: TrainConfig, train_ids: np.ndarray | None = None):
    tiny = warm_up_config(cfg)
    train = _warm_up_ids(train_ids, 4 * tiny.batch + 4)
    return make_scheme(tiny, init_theta(WARM_UP_VOCAB, tiny.hidden, 0, cfg.dtype, cfg.cell), WARM_UP_VOCAB, train)


def warm_up_evaluation(cfg: TrainConfig, val_ids: np.ndarray | None = None) -> None:
    """warm_up's second half: the validation kernel."""
    tiny = warm_up_config(cfg)
    val = _warm_up_ids(val_ids, 8)
    starts, lengths, burn_in = validation_plan(len(val))
    evaluate_streams(init_theta(WARM_UP_VOCAB, tiny.hidden, 0, cfg.dtype, cfg.cell), WARM_UP_VOCAB, tiny.hidden, val, starts,
                     lengths, burn_in, stream_scratch(len(starts), tiny.hidden, WARM_UP_VOCAB, np.dtype(cfg.dtype), cfg.cell))


def warm_up_config(cfg: TrainConfig) -> TrainConfig:
    """The tiny copy of cfg that warm_up runs: configurations with the same one compile the same kernels."""
    small = {name: min(getattr(cfg, name), 2) for name in ("k1", "k2", "hidden", "batch")}
    if cfg.scheme in CHUNK_SCHEMES:
        small["k1"] = small["k2"]
    return cfg.replace(**small, seed=0, budget_seconds=None, budget_steps=2 * small["k1"])


def _warm_up_ids(like: np.ndarray | None, n: int) -> np.ndarray:
    """n ids of WARM_UP_PATTERN, typed like `like` (writable or not; read-only, as a corpus's, by default)."""
    ids = np.resize(WARM_UP_PATTERN, n).astype(np.int32)
    ids.flags.writeable = bool(like is not None and like.flags.writeable)
    return ids


@contextlib.contextmanager
def interruptions_held():
    """Hold SIGINT and SIGTERM back for the duration: one that comes meanwhile takes effect as it ends.

    Numba compiles through ctypes callbacks, and a Python signal handler that raises inside one is
    swallowed ("Exception ignored on calling ctypes callback function"), leaving the kernel half
    built: Ctrl-C or SIGTERM while compiling then ended a run as failed, with Numba's "no compiled
    object yet", instead of interrupted. Meanwhile the handlers only note the signal, which is then
    raised again under the handlers that were there before. The wait is one warm-up: seconds on a
    first run. (Masking the signals would not do: BLAS's own threads would still take them.)
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread handles signals
        yield
        return
    noted = []
    replaced = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not None:  # None: a handler not set from Python, left alone
            replaced[signum] = signal.signal(signum, lambda number, frame: noted.append(number))
    try:
        yield
    finally:
        for signum, handler in replaced.items():
            signal.signal(signum, handler)
        if noted:
            signal.raise_signal(noted[0])


class Training:
    """One (scheme, seed) on one corpus. `records()` trains and yields; `outcome` says how it ended.

    `corpus` needs `train_ids`, `val_ids` and `vocab_size`. `clock`, when given, stands in for
    both clocks (`cpu_clock` for the CPU one alone), so tests of the budget logic do not depend on
    the machine's speed.
    """

    def __init__(self, cfg: TrainConfig, corpus, *, clock: Callable[[], float] | None = None,
                 cpu_clock: Callable[[], float] | None = None):
        self.cfg = cfg
        self.wall_clock = clock or time.perf_counter
        self.cpu_clock = cpu_clock or clock or time.thread_time
        self.vocab_size = corpus.vocab_size
        val_ids = np.ascontiguousarray(corpus.val_ids, dtype=np.int32)
        # eval_chars = 0 reads the whole validation split; otherwise its first eval_chars predictions.
        self.val_ids = val_ids[: cfg.eval_chars + 1] if cfg.eval_chars else val_ids
        self.val_plan = validation_plan(len(self.val_ids))
        theta = init_theta(corpus.vocab_size, cfg.hidden, cfg.seed, cfg.dtype, cfg.cell)
        self.initial_theta = theta.copy()
        self.scheme = make_scheme(cfg, theta, corpus.vocab_size, corpus.train_ids)
        self.outcome = RunOutcome(resident_bytes=self.scheme.resident_bytes())
        self._scratch = stream_scratch(len(self.val_plan[0]), cfg.hidden, corpus.vocab_size, theta.dtype, cfg.cell)

    @property
    def theta(self) -> np.ndarray:
        return self.scheme.theta

    def compile(self, ready: Callable[[], None] | None = None) -> float:
        """Compile (or load) every kernel the run calls; returns seconds taken. `ready`, if given, is
        called first and counts too: it waits for kernels compiled elsewhere (bpttbench.training.precompile)."""
        start = time.perf_counter()
        with interruptions_held():
            if ready is not None:
                ready()
            waited = time.perf_counter() - start
            self.outcome.compile_s = waited + warm_up(self.cfg, self.scheme.ids, self.val_ids)
        return self.outcome.compile_s

    def validation_bpc(self) -> float:
        """Mean validation loss (bits/char) over the parallel streams of val_plan, each from a zero state."""
        total, count = evaluate_streams(self.theta, self.vocab_size, self.cfg.hidden, self.val_ids, *self.val_plan,
                                        self._scratch)
        return total / count / LN2

    def records(self) -> Iterator[Record]:
        with single_threaded_blas():
            yield from self._records()

    def _records(self) -> Iterator[Record]:
        cfg, scheme, out = self.cfg, self.scheme, self.outcome
        k1 = cfg.k1
        # Log and evaluation points fall on update boundaries, so every record sees whole periods.
        log_every = round_up(cfg.log_every, k1)
        eval_every = round_up(cfg.eval_every, log_every) if cfg.eval_every else 0
        max_steps = max(k1, cfg.budget_steps // k1 * k1) if cfg.budget_steps else None
        block = k1
        # Each log interval's per-step losses, summed in one go at the log point: block
        # boundaries follow the clock, so summing per block would make the mean clock-dependent.
        interval = np.empty(log_every)
        count = 0
        limit = DIVERGED_FACTOR * max(math.log(self.vocab_size), LN2)  # nats per step
        while True:
            n = min(log_every - count, block)
            if max_steps is not None:
                n = min(n, max_steps - scheme.t)
            wall_start, cpu_start = self.wall_clock(), self.cpu_clock()
            done = scheme.run(n, interval[count : count + n])
            cpu_end, wall_end = self.cpu_clock(), self.wall_clock()
            out.wall_s += wall_end - wall_start
            out.cpu_s += cpu_end - cpu_start
            elapsed = (cpu_end - cpu_start) if cfg.clock == "cpu" else (wall_end - wall_start)
            out.steps, out.updates = scheme.t, scheme.updates
            if done < n:
                out.status, out.diverged_at_step = "diverged", scheme.t
                return
            count += done
            block = min(MAX_BLOCK_STEPS, max(k1, round_up(int(done * BLOCK_SECONDS / max(elapsed, 1e-9)), k1)))
            finished = (cfg.budget_seconds is not None and out.time_s(cfg.clock) >= cfg.budget_seconds) or (
                max_steps is not None and scheme.t >= max_steps
            )
            if count < log_every and not finished:
                continue
            mean_nats = float(interval[:count].sum()) / count
            if mean_nats > limit or not np.isfinite(scheme.theta).all():
                out.status, out.diverged_at_step = "diverged", scheme.t
                return
            val_bpc = None
            if finished or (eval_every and scheme.t % eval_every == 0):
                start = self.wall_clock()
                val_bpc = self.validation_bpc()
                out.eval_s += self.wall_clock() - start
                if not math.isfinite(val_bpc):
                    out.status, out.diverged_at_step = "diverged", scheme.t
                    return
                out.final_val_bpc = val_bpc
            out.final_train_bpc = mean_nats / LN2
            chosen_k2 = scheme.k2 if cfg.scheme == "adaptive" else None
            yield Record(scheme.t, scheme.updates, out.wall_s, out.final_train_bpc, val_bpc, out.eval_s, chosen_k2,
                         out.cpu_s)
            count = 0
            if finished:
                out.status = "complete"
                return


def train(cfg: TrainConfig, corpus, *, clock: Callable[[], float] | None = None) -> Iterator[Record]:
    """Compile, then train cfg on corpus, yielding a Record at every log point."""
    training = Training(cfg, corpus, clock=clock)
    training.compile()
    yield from training.records()
