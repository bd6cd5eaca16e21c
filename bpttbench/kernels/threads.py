"""BLAS on one thread while training: the kernels' matrix-vector products are too small to share.

OpenBLAS splits products of H = 128 and up over threads; on a busy 2-core machine each call
then waits for a loaded core (gradcheck measured single at k2 = 20 ten times slower threaded).
Every timing bpttbench reports is of one thread, as the speed targets are stated.

The kernels call the BLAS bpttbench.kernels.blas_backend chose: SciPy's OpenBLAS (limited through
threadpoolctl) or MKL. The mkl wheel's MKL runs its sequential layer (never a thread); PyTorch's
threads through OpenMP and is limited here with MKL_Set_Num_Threads_Local, which holds for
the calling thread, the one that runs the kernels.
"""

from __future__ import annotations

import contextlib

_controller = None


@contextlib.contextmanager
def single_threaded_blas():
    """A context in which the kernels' BLAS runs on one thread (OpenBLAS: a no-op without threadpoolctl)."""
    global _controller
    if _controller is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401  the BLAS Numba's np.dot calls, loaded first
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        except ImportError:
            _controller = False
    with _controller.limit(limits=1, user_api="blas") if _controller else contextlib.nullcontext():
        with _mkl_one_thread():
            yield


@contextlib.contextmanager
def _mkl_one_thread():
    from bpttbench.kernels.blas_backend import current

    set_local = current().set_local_threads
    if set_local is None:
        yield
        return
    previous = set_local(1)  # returns this thread's previous setting (0: MKL's global one)
    try:
        yield
    finally:
        set_local(previous)
