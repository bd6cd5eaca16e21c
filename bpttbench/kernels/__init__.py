"""Numba kernels: pure functions on arrays (no I/O, no globals), checked against bpttbench.reference."""
