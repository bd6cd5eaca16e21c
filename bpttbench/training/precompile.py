"""Compile a run's kernels on both cores while the run gets ready.

A first run on a fresh install spends most of its time in Numba compiling, and seconds more
building the default corpus. There, `bpttbench run` calls `compiling_in_background(units)`:

- a child process compiles the first warm-up configuration's training kernels (train.warm_up_training)
  into Numba's on-disk cache, while this process builds the corpus;
- when this process is ready to train (`wait()`, which the run's first warm-up calls), it compiles
  what the child would reach last or never: the validation kernel, and the optimiser step the
  first block kernel calls last (train.warm_up_update), which the child then loads;
- it waits for the child to have compiled every function its block kernel calls (the end of
  that kernel's type inference, which compiles them), and only then compiles the next
  configuration: its block kernel finds the shared callees in the cache instead of compiling
  them a second time, and is compiled while the child compiles its own. Any further
  configurations go to whichever process is free first;
- the run's own warm-ups then load everything.

Two processes may compile signatures of one function at once (a leaf both chains call): Numba's
cache is made safe for that by kernels.jitcache.lock_cache_saves. The child is only a head start:
if it fails, the run's own warm-up compiles what is missing, as before.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import warnings
from multiprocessing.connection import wait as wait_for_any
from pathlib import Path
from typing import Callable, Iterable, Iterator

from bpttbench.config import TrainConfig

CALLEES_COMPILED = "callees compiled"


def corpus_needs_building(spec: str | None) -> bool:
    """Whether loading the corpus `spec` (None: the default) builds or downloads it: the work worth
    overlapping. A cached corpus loads in well under a second."""
    from bpttbench.data.corpus import DEFAULT_CORPUS, list_corpora

    spec = DEFAULT_CORPUS if spec is None else spec
    return any(row["name"] == spec and not row["cached"] for row in list_corpora())


def kernels_never_compiled() -> bool:
    """Whether Numba's cache holds nothing for this version of the kernels (a fresh install or an
    upgrade): compiling then takes long enough to share between two processes. When it holds
    some, a child costs more than it saves (the child and then this process would each load them)."""
    from numba.core import config

    import bpttbench.kernels  # noqa: F401  (points config.CACHE_DIR at this version's directory)

    return not any(Path(config.CACHE_DIR).rglob("*.nbi"))


def warm_up_configs(units: Iterable[TrainConfig]) -> list[TrainConfig]:
    """One warm-up configuration per distinct set of kernels the units compile, in unit order."""
    from bpttbench.training.loop import warm_up_config

    return list(dict.fromkeys(warm_up_config(cfg) for cfg in units))


def block_kernel_name(cfg: TrainConfig) -> str | None:
    """The qualified name of the @njit function cfg's scheme runs its steps in, if it has one."""
    from bpttbench.schemes import REGISTRY

    kernel = getattr(REGISTRY[cfg.scheme], "block_kernel", None)
    return getattr(getattr(kernel, "py_func", None), "__qualname__", None)


class _Claims:
    """Configurations 1, 2, ... handed out once each to whichever process asks first."""

    def __init__(self, count: int, context):
        self.count = count
        self.next = context.Value("i", 1)

    def __iter__(self) -> Iterator[int]:
        while True:
            with self.next.get_lock():
                index = self.next.value
                self.next.value += 1
            if index >= self.count:
                return
            yield index


def callees_compiled_listener(qualname: str | None, send: Callable[[str], None]):
    """A Numba event listener that calls send(CALLEES_COMPILED) when the type inference of the
    function `qualname` ends: typing a call compiles the callee, so every function it calls is
    compiled (and cached) by then, and only its own lowering is left."""
    from numba.core import event

    class CalleesCompiled(event.Listener):
        def on_start(self, ev):
            pass

        def on_end(self, ev):
            if ev.data["qualname"] == qualname and ev.data["name"].startswith("nopython_type_inference"):
                send(CALLEES_COMPILED)

    return CalleesCompiled()


def parent_watch_listener(parent: int):
    """A Numba event listener that ends this (child) process, between two compiler passes, once
    its parent `parent` has gone (killed before it could stop the child): an orphan would compile
    on for seconds."""
    from numba.core import event

    class ParentWatch(event.Listener):
        def on_start(self, ev):
            if os.getppid() != parent:
                os._exit(1)

        def on_end(self, ev):
            pass

    return ParentWatch()


def _compile_training(configs: list[TrainConfig], claims: _Claims, conn) -> None:
    """The child: configuration 0's training kernels, announcing when its block kernel's callees
    are in the cache, then whatever configurations are left. Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore")  # the parent's warm-up says whatever needs saying
    from numba.core import event

    from bpttbench.training.loop import warm_up_training

    announce = callees_compiled_listener(block_kernel_name(configs[0]), conn.send)
    try:
        with event.install_listener("numba:run_pass", parent_watch_listener(os.getppid())):
            with event.install_listener("numba:run_pass", announce):
                warm_up_training(configs[0])
            for index in claims:
                warm_up_training(configs[index])
    except Exception:
        os._exit(1)


class BackgroundCompile:
    """The child process; `wait()` (idempotent) does this process's share of the compiling, then
    returns once the child has finished, whatever its outcome."""

    def __init__(self, child=None, conn=None, configs: Iterable[TrainConfig] = (), claims: _Claims | None = None):
        self.child, self.conn, self.configs, self.claims = child, conn, list(configs), claims
        self.shared = False

    def wait(self) -> None:
        if self.child is None:
            return
        if not self.shared:
            self.shared = True
            self._compile_share()
        self.child.join()

    def _compile_share(self) -> None:
        from bpttbench.training.loop import warm_up_evaluation, warm_up_training, warm_up_update

        # The validation kernel's types follow the dtype and whether the hidden size is 1, not the scheme.
        for cfg in {(cfg.dtype, cfg.hidden): cfg for cfg in self.configs}.values():
            warm_up_evaluation(cfg)
        warm_up_update(self.configs[0])
        if len(self.configs) < 2:
            return
        # Until the child's first block kernel has its callees, compiling here would repeat them.
        wait_for_any([self.conn, self.child.sentinel])
        for index in self.claims:
            warm_up_training(self.configs[index])

    def stop(self) -> None:
        if self.child is None:
            return
        if self.child.is_alive():
            self.child.terminate()
        self.child.join()


@contextlib.contextmanager
def compiling_in_background(units: Iterable[TrainConfig], *, enabled: bool = True) -> Iterator[BackgroundCompile]:
    """Compile the units' training kernels in a child process from now on; call `wait()` on what
    this yields before compiling in this process (execute's kernels_ready does). The block's end
    waits too, or stops the child if the block raises. There is no child unless enabled, nor where
    processes cannot fork, nor where this process runs other threads: one of them could hold a lock
    the forked child would wait on forever."""
    from numba import config as numba_config

    if (not enabled or "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1
            or numba_config.DISABLE_JIT):
        yield BackgroundCompile()
        return
    # fork: the child starts at once with everything imported; spawn would re-import for a second.
    context = multiprocessing.get_context("fork")
    configs = warm_up_configs(units)
    claims = _Claims(len(configs), context)
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_compile_training, args=(configs, claims, sender), name="bpttbench-compile",
                            daemon=True)
    child.start()
    sender.close()
    background = BackgroundCompile(child, receiver, configs, claims)
    try:
        yield background
    except BaseException:
        background.stop()
        raise
    background.wait()
