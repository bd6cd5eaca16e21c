"""Numba kernels: pure functions on arrays (no I/O, no globals), checked against bpttbench.reference."""

from bpttbench.blas_backend import install as install_blas
from bpttbench.kernels.jitcache import lock_cache_saves, use_digest_cache_dir

# Before any kernel is decorated (every kernel module, and every scheme's, imports this package first).
use_digest_cache_dir()
lock_cache_saves()
# Before any kernel runs: the BLAS table the products call (BPTTBENCH_BLAS; a bad value stops here).
install_blas()
