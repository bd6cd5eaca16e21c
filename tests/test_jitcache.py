"""The kernels' Numba cache directory is named by their sources, so an edited kernel never runs stale."""

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bpttbench.kernels.jitcache import PACKAGE, imports_numba, kernel_sources_digest


def test_digest_follows_every_kernel_module_and_nothing_else(tmp_path):
    copy = tmp_path / "bpttbench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    original = kernel_sources_digest(copy)
    assert original == kernel_sources_digest(PACKAGE)

    plain = copy / "console.py"  # no Numba in it: editing it must not throw the compiled kernels away
    plain.write_text(plain.read_text() + "\n# edited\n")
    assert kernel_sources_digest(copy) == original

    callee = copy / "kernels" / "optim.py"  # compiled into the schemes' kernels, defined in another file
    callee.write_text(callee.read_text() + "\n# edited\n")
    assert kernel_sources_digest(copy) != original

    mention = copy / "study.py"  # says "njit" and "numba" in a comment, imports neither: not a kernel module
    mention.write_text(mention.read_text() + "\n# numba's njit\n")
    edited = kernel_sources_digest(copy)
    mention.write_text(mention.read_text() + "\n# again\n")
    assert kernel_sources_digest(copy) == edited


def test_a_kernel_module_is_one_that_imports_numba():
    assert imports_numba(b"from numba import njit\n") and imports_numba(b"import numba.core.config as c\n")
    assert imports_numba(b"def f():\n    from numba.extending import overload\n")
    assert not imports_numba(b"# njit and numba\nx = 'numba'\n") and not imports_numba(b"import numbat\n")


@pytest.mark.slow
def test_cache_dir_is_the_digest_under_numba_cache_dir(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    code = "import bpttbench.kernels.network, numba.core.config as c; print(c.CACHE_DIR)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()) == tmp_path / kernel_sources_digest()


def racing_saves(save, tmp_path, monkeypatch):
    """Two threads save different keys of one function's cache at once: each reads the index, then
    waits for the other to have read it too, as two processes compiling two signatures can."""
    from numba.core.caching import IndexDataCacheFile

    tmp_path.mkdir()
    cache = IndexDataCacheFile(str(tmp_path), "kernel-1.py311", ("stamp", 1))
    read = threading.Barrier(2, timeout=0.5)
    load_index = IndexDataCacheFile._load_index

    def slow_load_index(self):
        overloads = load_index(self)
        with contextlib.suppress(threading.BrokenBarrierError):  # the lock holds one thread back
            read.wait()
        return overloads

    monkeypatch.setattr(IndexDataCacheFile, "_load_index", slow_load_index)
    threads = [threading.Thread(target=save, args=(cache, key, f"code for {key}")) for key in ("int32", "int64")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monkeypatch.setattr(IndexDataCacheFile, "_load_index", load_index)
    return {key: cache.load(key) for key in ("int32", "int64")}


def test_concurrent_saves_of_one_function_keep_every_signature(tmp_path, monkeypatch):
    from numba.core.caching import IndexDataCacheFile

    import bpttbench.kernels  # noqa: F401  (installs the lock)

    assert getattr(IndexDataCacheFile.save, "locked", False)
    unlocked = racing_saves(IndexDataCacheFile.save.unlocked, tmp_path / "unlocked", monkeypatch)
    assert unlocked != {"int32": "code for int32", "int64": "code for int64"}  # the race is real: one is lost
    locked = racing_saves(IndexDataCacheFile.save, tmp_path / "locked", monkeypatch)
    assert locked == {"int32": "code for int32", "int64": "code for int64"}
