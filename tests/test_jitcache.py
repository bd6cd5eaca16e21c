"""The kernels' Numba cache directory is named by their sources, so an edited kernel never runs stale."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bpttbench.kernels.jitcache import PACKAGE, kernel_sources_digest


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


def test_cache_dir_is_the_digest_under_numba_cache_dir(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    code = "import bpttbench.kernels.lstm, numba.core.config as c; print(c.CACHE_DIR)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()) == tmp_path / kernel_sources_digest()
