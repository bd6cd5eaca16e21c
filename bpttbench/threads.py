"""BLAS on one thread while training: the kernels' matrix-vector products are too small to share.

OpenBLAS splits products of H = 128 and up over threads; on a busy 2-core machine each call
then waits for a loaded core (gradcheck measured single at k2 = 20 ten times slower threaded).
Every timing bpttbench reports is of one thread, as the speed targets are stated.
"""

from __future__ import annotations

import contextlib

_controller = None


def single_threaded_blas():
    """A context in which BLAS runs on one thread (a no-op without threadpoolctl)."""
    global _controller
    if _controller is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401  the BLAS Numba's np.dot calls, loaded first
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        except ImportError:
            _controller = False
    if not _controller:
        return contextlib.nullcontext()
    return _controller.limit(limits=1, user_api="blas")
