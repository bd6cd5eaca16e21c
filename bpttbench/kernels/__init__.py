"""Numba kernels: pure functions on arrays (no I/O, no globals), checked against bpttbench.reference."""

from bpttbench.kernels.jitcache import lock_cache_saves, use_digest_cache_dir

# Before any kernel is decorated (every kernel module, and every scheme's, imports this package first).
# The BLAS table the products call is installed by kernels/blas.py, when a module whose kernels
# multiply matrices is imported: generating a corpus, say, loads no BLAS library.
use_digest_cache_dir()
lock_cache_saves()
