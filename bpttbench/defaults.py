"""Every default bpttbench uses that is not a field of `TrainConfig`, in one commented place.

Training defaults are `TrainConfig`'s own fields (config.py). Commands, the library and the
figures read everything else from here, so a default is changed once and a figure drawn by one
command looks like the same figure drawn by another.
"""

from __future__ import annotations

from bpttbench.config import TrainConfig

TRAIN = TrainConfig(budget_steps=1)  # TrainConfig's field defaults (the budget is set per run)

# ----------------------------------------------------------------------------- runs and sweeps
BUDGET = "60s"  # training time per (scheme, seed), on TrainConfig.clock, when neither a budget nor steps is given
DEFAULT_SCHEMES = ("single", "sliding")  # what `run` trains unless told: the question's red and blue curves
CORPUS = "stdlib-docs"  # built without network from this Python's standard library
# A study's corpora, both built in (no network): docstrings (English prose) and source code, texts of
# different character; tinyshakespeare joins with --corpus.
STUDY_CORPORA = ("stdlib-docs", "stdlib-source")
# Refused before anything is allocated: a plan past these is a typo, not an experiment.
MAX_RUN_UNITS = 10_000  # (scheme, seed) units in one `bpttbench run`
MAX_GRID_POINTS = 100_000  # runs in one sweep

# ----------------------------------------------------------------------------- BLAS
# The kernels' products: BPTTBENCH_BLAS=auto|openblas|mkl overrides (bpttbench/kernels/blas_backend.py).
# auto = MKL when PyTorch or the mkl wheel provides it, else SciPy's OpenBLAS: MKL is the faster one
# on one thread (README's Performance section; benchmarks/blas_backends.py measures both).
BLAS = "auto"

# ----------------------------------------------------------------------------- speed
SPEED_REPEATS = 7  # samples per timer of `bpttbench speed`; medians are reported
SPEED_MIN_TIME = 0.05  # seconds per sample: long enough that a timer's overhead is lost in it

# ----------------------------------------------------------------------------- validation
# The validation split is read as parallel streams from a zero state (kernels/evaluate.py): as many
# as give each EVAL_MIN_SCORED scored characters, at most EVAL_STREAMS, each reading EVAL_BURN_IN
# characters before its predictions count, so that no prediction is made from a cold state.
EVAL_STREAMS = 256
EVAL_BURN_IN = 64
EVAL_MIN_SCORED = 256

# ----------------------------------------------------------------------------- plots and reports
# How a time axis and a time in a report name each TrainConfig.clock.
TIME_UNITS = {"cpu": "CPU s", "wall": "wall s"}
SMOOTH = 5  # log points in the moving average of the online training loss, in figures and reports
DELTA = 0.05  # bits/char: "about the same" means the paired difference stays within ±DELTA
# Curves compared as wholes (the paired per-step difference) skip this first fraction of their
# common log points: early on every scheme is near the initial loss and differences say little.
BURN_IN_FRACTION = 0.1

# Fixed per scheme, as in the question: sliding window blue, single forward pass red.
SCHEME_COLORS = {
    "sliding": "#1f77b4",
    "single": "#d62728",
    "stored": "#2ca02c",
    "chunked": "#9467bd",
    "rtrl": "#ff7f0e",
    "uoro": "#8c564b",
    "snap1": "#e377c2",
    "eprop": "#17becf",
    "adaptive": "#b8860b",
}
OTHER_COLORS = ("#7f7f7f", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39")
FD_COLOR = "#7f7f7f"  # finite differences, wherever they are drawn

# ----------------------------------------------------------------------------- sample
SAMPLE_CHARS = 500  # characters `bpttbench sample` generates after the prime
SAMPLE_TEMPERATURE = 0.8  # below 1 sharpens the model's odds: fewer typos than at 1, still varied

# ----------------------------------------------------------------------------- gradcheck
# rtrl is followed to compare the truncated gradients and the online rules with the untruncated
# gradient it carries (its sensitivities go back to step 1, through the weights of every past
# step); snap1 and eprop to make the same comparisons along their own trajectories (rtrl as a
# shadow); uoro to see the truncated gradients along its trajectory.
GRADCHECK_FOLLOWS = ("single", "stored", "rtrl", "snap1", "eprop", "uoro")
GRADCHECK_K2S = (5, 20, 50)
GRADCHECK_LRS = (2e-3, 2e-2)
GRADCHECK_DTYPE = "float64"  # float64 makes the finite-difference check meaningful
GRADCHECK_CLIP = TRAIN.clip  # the same as training's, so the trajectory followed is the one trained
GRADCHECK_STEPS = 20_000
GRADCHECK_EVERY = 1000  # updates between checkpoints
GRADCHECK_FD_WEIGHTS = 24
GRADCHECK_SETTINGS = {"scheme": "single", "dtype": GRADCHECK_DTYPE, "clip": GRADCHECK_CLIP}  # where training's differ
# TrainConfig fields a gradcheck does not take, and why: it follows a trajectory for a number of
# time steps and measures gradients, not losses over time.
GRADCHECK_UNUSED = {
    "budget_seconds": "a trajectory's length is its steps", "budget_steps": "a trajectory's length is its steps",
    "clock": "nothing is timed", "log_every": "no loss curve is logged", "eval_every": "nothing is validated",
    "eval_chars": "nothing is validated", "k2": "k2s gives one trajectory per k2", "lr": "lrs gives one per lr",
    **{name: "gradcheck does not follow adaptive" for name in ("delta", "k_max", "adapt_every")},
}
