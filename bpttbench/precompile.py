"""Compile a run's kernels in a child process while the run gets ready, so the two overlap.

A first run on a fresh install spends most of its time in Numba compiling, and, when the corpus
is not cached yet, seconds more building or downloading it: work that does not need the kernels.
There (corpus_needs_building), `bpttbench run` calls `compiling_in_background(units)`: a child
process compiles the kernels every unit will call (train.warm_up on each distinct warm-up
configuration) into Numba's on-disk cache, and the run's own warm-up waits for it, then loads them.

Only one process compiles at a time: the parent does not compile while the child runs (the child
is joined before the run's own warm-up), so the cache never sees two writers of one function (Numba's
index is not safe for that). Compiling the schemes in two processes at once was measured and
dropped: on this shared 2-core machine it was slower, each process compiling the kernels the
schemes share. The child is only a head start: if it fails, or the cache is not writable, the
run's own warm-up compiles what is missing, as before.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import warnings
from typing import Iterable, Iterator

from bpttbench.config import TrainConfig


def corpus_needs_building(spec: str | None) -> bool:
    """Whether loading the corpus `spec` (None: the default) builds or downloads it: the work worth
    overlapping. A cached corpus loads in well under a second, less than a child costs when Numba's
    cache is warm (the child and then this process would each load every kernel)."""
    from bpttbench.corpus import DEFAULT_CORPUS, list_corpora

    spec = DEFAULT_CORPUS if spec is None else spec
    return any(row["name"] == spec and not row["cached"] for row in list_corpora())


def warm_up_configs(units: Iterable[TrainConfig]) -> list[TrainConfig]:
    """One warm-up configuration per distinct set of kernels the units compile, in unit order."""
    from bpttbench.train import warm_up_config

    return list(dict.fromkeys(warm_up_config(cfg) for cfg in units))


def _compile(configs: list[TrainConfig]) -> None:
    """The child: fill the cache quietly; Ctrl-C is the parent's to handle (it stops the child)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore")  # the parent's warm-up says whatever needs saying
    from bpttbench.train import warm_up

    try:
        for cfg in configs:
            warm_up(cfg)
    except Exception:
        os._exit(1)


class BackgroundCompile:
    """The child process; `wait()` (idempotent) returns once it has finished, whatever its outcome."""

    def __init__(self, child: multiprocessing.process.BaseProcess | None):
        self.child = child

    def wait(self) -> None:
        if self.child is not None:
            self.child.join()

    def stop(self) -> None:
        if self.child is not None and self.child.is_alive():
            self.child.terminate()
        self.wait()


@contextlib.contextmanager
def compiling_in_background(units: Iterable[TrainConfig], *, enabled: bool = True) -> Iterator[BackgroundCompile]:
    """Compile the units' kernels in a child process from now on; call `wait()` on what this yields
    before compiling in this process (execute's kernels_ready does). The block's end waits too, or
    stops the child if the block raises. There is no child unless enabled, nor where processes cannot
    fork, nor where this process runs other threads: one of them could hold a lock the forked child
    would wait on forever."""
    from numba import config as numba_config

    if (not enabled or "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1
            or numba_config.DISABLE_JIT):
        yield BackgroundCompile(None)
        return
    # fork: the child starts at once with everything imported; spawn would re-import for a second.
    child = multiprocessing.get_context("fork").Process(target=_compile, args=(warm_up_configs(units),),
                                                        name="bpttbench-compile", daemon=True)
    child.start()
    background = BackgroundCompile(child)
    try:
        yield background
    except BaseException:
        background.stop()
        raise
    background.wait()
