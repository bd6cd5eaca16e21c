"""The schemes: kernel trajectories against the reference, finite differences, and the identities the math promises."""

from __future__ import annotations

import numpy as np
import pytest

from bpttbench import reference as ref
from bpttbench.config import TrainConfig
from bpttbench.model import init_theta, split_theta
from bpttbench.schemes import make_scheme

from conftest import central_differences, run_steps, synthetic_ids

V, H, B = 6, 5, 2
IDS = synthetic_ids(V, 600, seed=3)


def make(scheme, k1, k2, *, dtype="float64", inject="new", optimizer="adam", lr=0.05, clip=1.0, batch=B, seed=1):
    cfg = TrainConfig(scheme=scheme, k1=k1, k2=k2, inject=inject, hidden=H, batch=batch, optimizer=optimizer,
                      lr=lr, clip=clip, dtype=dtype, seed=seed, budget_steps=1)
    return make_scheme(cfg, init_theta(V, H, seed, dtype), V, IDS)


def trajectory(scheme_name, k1, k2, n, **kw):
    scheme = make(scheme_name, k1, k2, **kw)
    return run_steps(scheme, n), scheme.theta


CASES = [
    ("chunked", 4, 4, "new"),
    ("single", 1, 5, "new"),
    ("single", 3, 5, "window"),
    ("stored", 1, 5, "new"),
    ("stored", 2, 5, "window"),
    ("sliding", 1, 5, "new"),
    ("sliding", 3, 5, "new"),
    ("sliding", 2, 5, "window"),
]


@pytest.mark.parametrize("scheme,k1,k2,inject", CASES)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-4)])
def test_kernel_trajectory_matches_reference(scheme, k1, k2, inject, dtype, tol):
    n = 24
    theta0 = init_theta(V, H, 1, dtype)
    p0 = {k: v.astype(np.float64) for k, v in split_theta(theta0, V, H).items()}
    losses, theta = trajectory(scheme, k1, k2, n, dtype=dtype, inject=inject)
    ref_losses, ref_p = ref.train(scheme, p0, IDS, batch=B, k1=k1, k2=k2, n_steps=n, inject=inject,
                                  optimizer="adam", lr=0.05, clip=1.0)
    assert np.max(np.abs(losses - ref_losses) / ref_losses) < tol
    for name, view in split_theta(theta, V, H).items():
        scale = np.max(np.abs(ref_p[name]))
        assert np.max(np.abs(view - ref_p[name])) / scale < tol, name


def window_objective(scheme, first, t_next, injected_from, h0, c0):
    """The reference loss of the window first..t_next from the constant state (h0, c0), as a function of theta."""
    inputs = [ref.stream_inputs(IDS, scheme.B, tau) for tau in range(first, t_next + 1)]
    xs, ys = zip(*inputs)
    injected = [tau >= injected_from for tau in range(first, t_next + 1)]

    def f(theta):
        return ref.window_loss(split_theta(theta, V, H), xs, ys, h0, c0, injected)

    return f


def next_window(scheme):
    """(first, first_injected, t_next, h0, c0) of the scheme's next update, from its stored state."""
    t_next = scheme.t + scheme.k1
    first, first_injected = scheme.window_bounds(t_next)
    R = scheme.k2 + 1
    h_ring, c_ring = scheme.ring[4], scheme.ring[3]
    return first, first_injected, t_next, h_ring[(first - 1) % R].copy(), c_ring[(first - 1) % R].copy()


@pytest.mark.parametrize("scheme_name,k1,k2,inject,warm", [
    ("sliding", 1, 5, "new", 11),
    ("sliding", 2, 4, "new", 10),
    ("sliding", 2, 4, "window", 10),
    ("sliding", 1, 5, "new", 2),  # the window still reaches back to step 1
    ("chunked", 4, 4, "new", 12),
])
def test_exact_gradients_match_finite_differences(scheme_name, k1, k2, inject, warm):
    scheme = make(scheme_name, k1, k2, inject=inject)
    run_steps(scheme, warm)  # a real trajectory: weights and carried state away from their start
    grad = scheme.gradient_for_next_update()
    first, first_injected, t_next, h0, c0 = next_window(scheme)
    f = window_objective(scheme, first, t_next, first_injected, h0, c0)
    theta = scheme.theta.copy()
    everything = np.arange(theta.size)  # a tiny model: the full gradient
    fd = central_differences(f, theta, everything)
    assert np.linalg.norm(grad - fd) / np.linalg.norm(fd) < 1e-6
    subset = np.random.default_rng(0).choice(theta.size, 40, replace=False)
    assert np.max(np.abs(grad[subset] - fd[subset])) / np.max(np.abs(fd[subset])) < 1e-6


def test_finite_differences_reject_the_truncated_single_gradient():
    """single's gradient is not the window gradient once weights have moved: the check has teeth."""
    scheme = make("single", 1, 5, lr=0.2, optimizer="sgd", clip=0.0)
    run_steps(scheme, 11)
    grad = scheme.gradient_for_next_update()
    sliding = make("sliding", 1, 5, lr=0.2, optimizer="sgd", clip=0.0)
    run_steps(sliding, 11)
    first, first_injected, t_next, _, _ = next_window(scheme)
    _, _, _, h0, c0 = next_window(sliding)
    f = window_objective(scheme, first, t_next, first_injected, h0, c0)
    fd = central_differences(f, scheme.theta.copy(), np.arange(scheme.theta.size))
    assert np.linalg.norm(grad - fd) / np.linalg.norm(fd) > 1e-4


def test_k2_of_one_makes_single_stored_and_sliding_identical():
    results = [trajectory(name, 1, 1, 40) for name in ("single", "stored", "sliding")]
    for losses, theta in results[1:]:
        assert np.array_equal(losses, results[0][0])
        assert np.array_equal(theta, results[0][1])


@pytest.mark.parametrize("inject", ["new", "window"])
def test_k1_equal_k2_makes_all_four_schemes_identical(inject):
    results = [trajectory(name, 4, 4, 40, inject=inject) for name in ("chunked", "single", "stored", "sliding")]
    for losses, theta in results[1:]:
        assert np.array_equal(losses, results[0][0])
        assert np.array_equal(theta, results[0][1])


def test_stored_equals_single_when_the_learning_rate_is_zero():
    single = make("single", 2, 6, lr=0.0)
    stored = make("stored", 2, 6, lr=0.0)
    assert np.array_equal(run_steps(single, 30), run_steps(stored, 30))
    assert np.array_equal(single.gradient_for_next_update(), stored.gradient_for_next_update())


def test_stored_differs_from_single_when_weights_move():
    assert not np.allclose(trajectory("single", 1, 6, 30)[0], trajectory("stored", 1, 6, 30)[0], rtol=1e-9, atol=0)


def test_reference_one_step_calls_equal_a_window():
    """Karpathy's checkSequentialMatchesBatch for the reference: T steps carrying (h, c) = one window pass."""
    p = split_theta(init_theta(V, H, 0, "float64"), V, H)
    h = c = np.zeros((B, H))
    xs, ys = zip(*(ref.stream_inputs(IDS, B, t) for t in range(1, 9)))
    total = 0.0
    for x, y in zip(xs, ys):
        (h, c), loss, _ = ref.step(p, x, y, h, c)
        total += loss.sum()
    assert ref.window_loss(p, xs, ys, np.zeros((B, H)), np.zeros((B, H)), [True] * 8) == pytest.approx(total / (8 * B), rel=1e-14)


def test_diverging_run_stops_and_reports_the_step():
    scheme = make("single", 1, 3, dtype="float32", optimizer="sgd", lr=1e37, clip=0.0)  # weights overflow
    losses = np.zeros(200)
    done = scheme.run(200, losses)
    assert done < 200 and not np.isfinite(losses[done - 1])
    assert np.all(np.isfinite(losses[: done - 1]))


def test_stored_memory_is_k2_snapshots_of_w_hh_and_decoder():
    single, stored = make("single", 1, 9, dtype="float32"), make("stored", 1, 9, dtype="float32")
    snapshot = (4 * H * H + V * H) * 4
    assert stored.resident_bytes() - single.resident_bytes() == 9 * snapshot
