"""Training: the budgeted loop (loop.py), a run of several units into a run directory (runner.py), the
kernels compiled ahead in a second process (precompile.py), BLAS's backend and threads, and what a
training step reports (records.py)."""
