"""Where Numba keeps the compiled kernels: a directory named by a digest of every kernel module's source.

Numba's cache=True checks only the timestamp of the file a function is defined in, but a scheme's
kernel has the kernels it calls from other modules compiled into it: after an edit or an upgrade
of one of those, a warm cache would keep running their old code (seen: an optimizer change that
did not reach run_single_block; a changed array shape that failed inside np.dot). Naming the
directory by the sources of all of them makes any change a fresh compile, and an unchanged
package reuses its cache.
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import os
from pathlib import Path

from numba.core import config

from bpttbench.files import cache_dir

PACKAGE = Path(__file__).resolve().parents[1]


def imports_numba(source: bytes) -> bool:
    """Whether a module's code imports numba (or a part of it): what makes it compile kernels."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(name.split(".")[0] == "numba" for name in names):
            return True
    return False


def kernel_sources_digest(package: Path = PACKAGE) -> str:
    """sha256 prefix over the relative path and bytes of every module that imports numba."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        text = path.read_bytes()
        if imports_numba(text):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + text)
    return digest.hexdigest()[:16]


def default_cache_base() -> Path:
    """$NUMBA_CACHE_DIR when set, else numba/ in the bpttbench cache directory (files.cache_dir)."""
    own = os.environ.get("NUMBA_CACHE_DIR")
    return Path(own).expanduser() if own else cache_dir() / "numba"


def use_digest_cache_dir() -> str:
    """Point Numba's cache at <base>/<digest>; must run before the first kernel is decorated."""
    config.CACHE_DIR = str(default_cache_base() / kernel_sources_digest())
    return config.CACHE_DIR


def lock_cache_saves() -> None:
    """Make Numba's cache safe for two processes compiling one function's signatures at once.

    IndexDataCacheFile.save reads the function's index, picks the first unused data file, then
    writes the index and the data: two processes saving different signatures at once can both
    pick file N, and the index one leaves can name the other's code (which a later load would
    run for the wrong types). An exclusive lock on a file beside the index, held for the save,
    makes the second saver read the first's index. Loads need no lock: both files are replaced
    atomically, and a load that finds the index ahead of its data file is a miss.
    bpttbench.training.precompile compiles in two processes at once, and a sweep's workers share the cache.

    Why a private class: Numba's public cache surface (cache=True, NUMBA_CACHE_DIR) has no hook around
    its index writes, and the public ways around the race give up what the sharing is for: a cache
    directory per process would make the parent compile again what the child compiled, and a lock
    around whole compilations would run the two processes one after the other (a fresh install's
    first run took 16.6-20.6 s with both cores, 24.8-31.5 s before). So the save is wrapped, not
    changed: the same method runs under a lock; tests/test_jitcache.py shows the race it closes.
    """
    from numba.core.caching import IndexDataCacheFile

    save = IndexDataCacheFile.save
    if getattr(save, "locked", False):
        return

    def locked_save(self, key, data):
        with open(self._index_path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            save(self, key, data)

    locked_save.locked = True
    locked_save.unlocked = save  # for the test that shows the race
    IndexDataCacheFile.save = locked_save
