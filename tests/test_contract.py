"""The contract every registered scheme keeps, checked for each entry of the registry (so a new
scheme is held to it the day it is registered): block boundaries change nothing, the gradient
probe changes nothing, a non-finite loss stops the run, every array is cache-line aligned,
resident_bytes is what it holds, and the trajectory is the NumPy reference's."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from bpttbench import reference as ref
from bpttbench import scheme_names
from bpttbench.config import TrainConfig
from bpttbench.errors import ConfigError
from bpttbench.fidelity import online_reference as online_ref
from bpttbench.model import init_theta, split_theta
from bpttbench.schemes import REGISTRY, Scheme, make_scheme
from bpttbench.schemes.base import ALIGNMENT

from conftest import run_steps, synthetic_ids

V, H, B = 6, 5, 2
IDS = synthetic_ids(V, 600, seed=3)
NAMES = list(REGISTRY)
# every (scheme, cell) pair a scheme runs: the contract holds for each
PAIRS = [pytest.param(name, cell, id=f"{name}-{cell}") for name in REGISTRY for cell in scheme_names.cells_of(name)]
OPTIMIZERS = {"adam": dict(optimizer="adam", lr=0.05, clip=1.0),
              "sgd": dict(optimizer="sgd", lr=0.3, clip=0.0)}  # plain SGD: the truncated schemes fuse the step


def config(name, *, cell="lstm", hidden=H, vocab_size=V, batch=B, dtype="float64", optimizer="adam",
           **changes) -> TrainConfig:
    """A small configuration of the scheme: k1 = 2 inside a 5-step window, or k1 = k2 = 2 where the
    scheme needs them equal (chunked)."""
    settings = dict(scheme=name, cell=cell, k1=2, k2=5, hidden=hidden, batch=batch, dtype=dtype, seed=1, budget_steps=1,
                    **OPTIMIZERS[optimizer], **changes)
    try:
        return TrainConfig(**settings)
    except ConfigError:
        return TrainConfig(**{**settings, "k2": settings["k1"]})


def make(name, **kw) -> Scheme:
    cfg = config(name, **kw)
    V_ = kw.get("vocab_size", V)
    ids = IDS if V_ == V else synthetic_ids(V_, 600, seed=3)
    return make_scheme(cfg, init_theta(V_, cfg.hidden, 1, cfg.dtype, cfg.cell), V_, ids)


def held_arrays(scheme) -> list[np.ndarray]:
    """Every distinct array the scheme holds, found by walking its attributes (through tuples,
    lists and dicts), without asking the scheme; the training ids are borrowed, not held."""
    found: dict[int, np.ndarray] = {}

    def walk(value):
        if isinstance(value, np.ndarray):
            found.setdefault(id(value), value)
        elif isinstance(value, (tuple, list)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    for name, value in vars(scheme).items():
        if name != "ids":
            walk(value)
    return list(found.values())


def snapshot(scheme) -> tuple:
    return scheme.t, scheme.updates, [a.tobytes() for a in held_arrays(scheme)]


@pytest.mark.parametrize("name", NAMES)
def test_registered_under_its_name(name):
    cls = REGISTRY[name]
    assert issubclass(cls, Scheme) and cls.name == name and name in scheme_names.SCHEME_NAMES
    assert cls.block_kernel is not None
    assert cls.check_fits(config(name), V) is None  # a small model fits


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("name,cell", PAIRS)
def test_one_call_equals_many_shorter_calls(name, cell, optimizer):
    """Block boundaries change nothing: T periods in one call = the same periods in calls of 1, 2, 3, ... periods."""
    whole, pieces = make(name, cell=cell, optimizer=optimizer), make(name, cell=cell, optimizer=optimizer)
    k1 = whole.k1
    expected = run_steps(whole, 12 * k1)
    got = np.concatenate([run_steps(pieces, periods * k1) for periods in (1, 2, 3, 1, 5)])
    assert np.array_equal(expected, got) and np.all(np.isfinite(got))
    assert np.array_equal(whole.theta, pieces.theta)
    assert (whole.t, whole.updates) == (pieces.t, pieces.updates) == (12 * k1, 12)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("name,cell", PAIRS)
def test_gradient_probe_leaves_the_scheme_untouched(name, cell, optimizer):
    probed, twin = make(name, cell=cell, optimizer=optimizer), make(name, cell=cell, optimizer=optimizer)
    run_steps(probed, 4 * probed.k1)
    run_steps(twin, 4 * twin.k1)
    before = snapshot(probed)
    gradient = probed.gradient_for_next_update()
    assert snapshot(probed) == before
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)
    assert np.array_equal(gradient, probed.gradient_for_next_update())
    # and it goes on exactly as a scheme never probed
    assert np.array_equal(run_steps(probed, 3 * probed.k1), run_steps(twin, 3 * twin.k1))
    assert np.array_equal(probed.theta, twin.theta)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("name,cell", PAIRS)
def test_a_non_finite_loss_stops_the_run(name, cell, optimizer):
    scheme = make(name, cell=cell, optimizer=optimizer)
    run_steps(scheme, 3 * scheme.k1)
    t = scheme.t
    split_theta(scheme.theta, V, H)["decoder.bias"][0] = np.nan  # every softmax from here on is NaN
    losses = np.full(10 * scheme.k1, -1.0)
    done = scheme.run(len(losses), losses)
    assert 1 <= done <= scheme.k1, "it should stop within the update period whose loss was not finite"
    assert not np.all(np.isfinite(losses[:done]))
    assert np.all(losses[done:] == -1.0), "steps after the stop were run"
    assert scheme.t == t + done


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,cell", PAIRS)
def test_every_array_is_cache_line_aligned(name, cell, dtype):
    arrays = held_arrays(make(name, cell=cell, dtype=dtype))
    assert len(arrays) >= 10  # the walk found the shared arrays
    misaligned = [a.shape for a in arrays if a.size and a.ctypes.data % ALIGNMENT]  # an empty one holds nothing
    assert not misaligned, f"not {ALIGNMENT}-byte aligned: arrays of shapes {misaligned}"


@pytest.mark.parametrize("name,cell", PAIRS)
def test_resident_bytes_is_what_the_scheme_holds(name, cell):
    kw = dict(name=name, cell=cell, hidden=12, vocab_size=9, batch=3, dtype="float32")
    make(**kw)  # anything allocated once per process is allocated now, not below
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        scheme = make(**kw)
        allocated = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    arrays = held_arrays(scheme)
    held = sum(a.nbytes for a in arrays)
    assert scheme.resident_bytes() == held
    # No two arrays share memory (resident_bytes would count it twice) ...
    bounds = sorted((a.ctypes.data, a.ctypes.data + a.nbytes) for a in arrays)  # all are contiguous
    assert all(end <= next_start for (_, end), (next_start, _) in zip(bounds, bounds[1:]))
    # ... and construction allocated nothing the walk missed: beyond the arrays, only an
    # alignment pad and a Python object per array, and the instance itself.
    assert held <= allocated <= held + 400 * len(arrays) + 4096, (held, allocated)


@pytest.mark.parametrize("dtype,optimizer,tol", [("float64", "adam", 1e-10), ("float64", "sgd", 1e-10),
                                                 ("float32", "adam", 1e-4)])
@pytest.mark.parametrize("name,cell", PAIRS)
def test_trajectory_matches_the_reference(name, cell, dtype, optimizer, tol):
    scheme = make(name, cell=cell, dtype=dtype, optimizer=optimizer)
    p0 = {k: v.astype(np.float64) for k, v in split_theta(scheme.theta, V, H).items()}
    n = 8 * scheme.k1
    losses = run_steps(scheme, n)
    cfg = scheme.cfg
    if name in online_ref.RULES:  # snap1 and eprop: their rules written out in fidelity/online_reference.py
        ref_losses, ref_p, _ = online_ref.train_online(name, p0, IDS, batch=B, k1=cfg.k1, n_steps=n,
                                                       optimizer=cfg.optimizer, lr=cfg.lr, clip=cfg.clip)
    else:
        assert name in ref.REFERENCE_SCHEMES, f"{name} has no NumPy reference"
        ref_losses, ref_p = ref.train(name, p0, IDS, batch=B, k1=cfg.k1, k2=cfg.k2, n_steps=n, inject=cfg.inject,
                                      optimizer=cfg.optimizer, lr=cfg.lr, clip=cfg.clip, seed=cfg.seed,
                                      k_max=cfg.k_max, adapt_every=cfg.adapt_every, delta=cfg.delta)
    assert np.max(np.abs(losses - ref_losses) / ref_losses) < tol
    for param, view in split_theta(scheme.theta, V, H).items():
        assert np.max(np.abs(view - ref_p[param])) / np.max(np.abs(ref_p[param])) < tol, param


@pytest.mark.parametrize("name", ["chunked", "adaptive"])
def test_a_last_partial_chunk_runs_forward_only_as_in_the_reference(name):
    scheme = make(name)
    p0 = split_theta(scheme.theta.copy(), V, H)
    n = 3 * scheme.k1 + 1
    losses = run_steps(scheme, n)
    assert scheme.updates == 3
    cfg = scheme.cfg
    ref_losses, ref_p = ref.train(name, p0, IDS, batch=B, k1=cfg.k1, k2=cfg.k2, n_steps=n, optimizer=cfg.optimizer,
                                  lr=cfg.lr, clip=cfg.clip, k_max=cfg.k_max, adapt_every=cfg.adapt_every, delta=cfg.delta)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)
    for param, view in split_theta(scheme.theta, V, H).items():
        np.testing.assert_allclose(view, ref_p[param], rtol=0, atol=1e-10 * np.abs(ref_p[param]).max(), err_msg=param)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("name", ["single", "stored", "sliding"])
def test_the_studys_size_follows_the_reference_too(name, cell):
    """The study's configuration (H = 128, a 65-symbol vocabulary, k2 = 20, Adam with clipping), where
    the GRU's and the LSTM's answers part (README, the full-preset table by cell): what the kernels
    compute there is still what the schemes define."""
    V_, H_ = 65, 128
    ids = synthetic_ids(V_, 3000, seed=3)
    cfg = TrainConfig(scheme=name, cell=cell, k1=1, k2=20, hidden=H_, batch=1, optimizer="adam", lr=0.002, clip=1.0,
                      dtype="float64", seed=0, budget_steps=1)
    scheme = make_scheme(cfg, init_theta(V_, H_, 0, "float64", cell), V_, ids)
    p0 = split_theta(scheme.theta.copy(), V_, H_)
    losses = run_steps(scheme, 45)
    ref_losses, ref_p = ref.train(name, p0, ids, batch=1, k1=1, k2=20, n_steps=45, optimizer="adam", lr=0.002,
                                  clip=1.0)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)
    for param, view in split_theta(scheme.theta, V_, H_).items():
        assert np.max(np.abs(view - ref_p[param])) < 1e-11 * np.max(np.abs(ref_p[param])), param
