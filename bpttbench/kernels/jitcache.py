"""Where Numba keeps the compiled kernels: a directory named by a digest of every kernel module's source.

Numba's cache=True checks only the timestamp of the file a function is defined in, but a scheme's
kernel has the kernels it calls from other modules compiled into it: after an edit or an upgrade
of one of those, a warm cache would keep running their old code (seen: an optimizer change that
did not reach run_single_block; a changed array shape that failed inside np.dot). Naming the
directory by the sources of all of them makes any change a fresh compile, and an unchanged
package reuses its cache.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from numba.core import config

from bpttbench.files import cache_dir

PACKAGE = Path(__file__).resolve().parents[1]


def kernel_sources_digest(package: Path = PACKAGE) -> str:
    """sha256 prefix over the relative path and bytes of every module that compiles with Numba."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        text = path.read_bytes()
        if b"njit" in text or b"numba" in text:
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
