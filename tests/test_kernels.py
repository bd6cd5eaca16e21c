"""Each Numba kernel against the NumPy reference, piece by piece (llm.c style: reference first);
the GEMM and the SGD step fused into the backward pass against their plain versions."""

from __future__ import annotations

import numpy as np
import pytest

from bpttbench import reference as ref
from bpttbench.config import TrainConfig
from bpttbench.kernels.blas import gemm_tn
from bpttbench.kernels.cells import cell_backward, lstm_forward
from bpttbench.kernels.network import (head_forward, mirror_input_weights, param_views, transpose_input_block,
                                       unmirror_input_weights, window_backward, window_gradient_or_sgd_step)
from bpttbench.kernels.optim import (ADAM_BETA1, ADAM_BETA2, ADAM_EPS, ADAM_FLUSH, OPTIMIZER_CODES, SUM_LANES,
                                     adam_step,
                                     apply_update, apply_update_with_partial_sum, apply_update_with_sum_of_squares,
                                     clip_factor, sum_of_squares)
from bpttbench.model import init_theta, split_theta
from bpttbench.schemes import make_scheme

from conftest import synthetic_ids

V, H, B = 6, 5, 3
TOL = {"float64": 1e-10, "float32": 1e-4}


def rel_err(a, b):
    return np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-30)


@pytest.fixture(params=["float64", "float32"])
def dtype(request):
    return request.param


def setup(dtype, seed=0):
    rng = np.random.default_rng(seed)
    theta = init_theta(V, H, seed, dtype) * 3  # larger weights: gates away from their linear regime
    p64 = {k: v.astype(np.float64) for k, v in split_theta(theta, V, H).items()}
    x = rng.integers(0, V, B).astype(np.int32)
    y = rng.integers(0, V, B).astype(np.int32)
    h_prev = rng.normal(size=(B, H)).astype(dtype)
    c_prev = rng.normal(size=(B, H)).astype(dtype)
    return rng, theta, p64, x, y, h_prev, c_prev


def test_param_views_match_model_layout():
    theta = init_theta(V, H, 0, "float64")
    views = param_views(theta, V, H)
    for kernel_view, (name, model_view) in zip(views, split_theta(theta, V, H).items()):
        assert np.array_equal(kernel_view, model_view), name


def test_lstm_and_head_forward_match_reference(dtype):
    _, theta, p64, x, y, h_prev, c_prev = setup(dtype)
    W_ih, W_hh, b_ih, b_hh, W_dec, b_dec = param_views(theta, V, H)
    gates = np.zeros((B, 4 * H), dtype)
    c, h, tanh_c, probs = (np.zeros((B, n), dtype) for n in (H, H, H, V))
    lstm_forward(W_ih.T, W_hh, b_ih, b_hh, x, h_prev, c_prev, gates, c, h, tanh_c)
    loss = head_forward(W_dec, b_dec, h, y, probs)
    (h_ref, c_ref), cache = ref.lstm_forward(p64, x, h_prev.astype(np.float64), c_prev.astype(np.float64))
    loss_ref, (_, probs_ref, _) = ref.head_forward(p64, h_ref, y)
    i, f, g, o = cache[3:7]
    assert rel_err(gates, np.concatenate([i, f, g, o], axis=1)) < TOL[dtype]
    assert rel_err(h, h_ref) < TOL[dtype] and rel_err(c, c_ref) < TOL[dtype]
    assert rel_err(probs, probs_ref) < TOL[dtype]
    assert abs(loss - loss_ref.sum()) / loss_ref.sum() < TOL[dtype]


def test_lstm_backward_matches_reference(dtype):
    rng, theta, p64, x, y, h_prev, c_prev = setup(dtype)
    W_ih, W_hh, b_ih, b_hh, _, _ = param_views(theta, V, H)
    gates = np.zeros((B, 4 * H), dtype)
    c, h, tanh_c = (np.zeros((B, H), dtype) for _ in range(3))
    lstm_forward(W_ih.T, W_hh, b_ih, b_hh, x, h_prev, c_prev, gates, c, h, tanh_c)
    dh = rng.normal(size=(B, H)).astype(dtype)
    dc = rng.normal(size=(B, H)).astype(dtype)
    _, cache = ref.lstm_forward(p64, x, h_prev.astype(np.float64), c_prev.astype(np.float64))
    dh_prev_ref, dc_prev_ref, grads = ref.lstm_backward(dh.astype(np.float64), dc.astype(np.float64), cache, p64)
    dz, dh_prev = np.zeros((B, 4 * H), dtype), np.zeros((B, H), dtype)
    cell_backward(W_hh, gates, c_prev, tanh_c, h_prev, dh, dc, dz, dz, dh_prev)
    assert rel_err(dh_prev, dh_prev_ref) < TOL[dtype]
    assert rel_err(dc, dc_prev_ref) < TOL[dtype]
    assert rel_err(dz.T @ h_prev, grads["weight_hh_l0"]) < TOL[dtype]
    assert rel_err(dz.sum(axis=0), grads["bias_ih_l0"]) < TOL[dtype]


def test_head_keeps_underflowing_target_probability_exact():
    W_dec = np.zeros((3, 1))
    b_dec = np.array([0.0, 800.0, 0.0])  # exp(-800) underflows float64
    probs = np.zeros((1, 3))
    loss = head_forward(W_dec, b_dec, np.zeros((1, 1)), np.array([0], np.int32), probs)
    assert loss == pytest.approx(800.0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_optimizer_matches_reference(optimizer, clip):
    rng = np.random.default_rng(1)
    theta = init_theta(V, H, 0, "float64")
    p = {k: v.copy() for k, v in split_theta(theta.copy(), V, H).items()}
    opt_ref = ref.Optimizer(p, optimizer, 0.01, clip)
    state = (np.zeros_like(theta), np.zeros_like(theta), np.zeros(1, np.int64))
    for _ in range(3):
        grad = rng.normal(size=theta.size)
        p = opt_ref.step(p, {k: v.copy() for k, v in split_theta(grad.copy(), V, H).items()})
        apply_update(theta, grad, state, OPTIMIZER_CODES[optimizer], 0.01, clip)
    for name, view in split_theta(theta, V, H).items():
        assert rel_err(view, p[name]) < 1e-12, name


@pytest.mark.parametrize("size", [0, 1, 7, SUM_LANES - 1, SUM_LANES, 3 * SUM_LANES + 5, 108_225])
def test_sum_of_squares_is_numpys_in_float64(dtype, size):
    a = np.random.default_rng(size).normal(size=size).astype(dtype) * 1e3
    expected = float(np.sum(a.astype(np.float64) ** 2))
    assert sum_of_squares(a) == pytest.approx(expected, rel=1e-13, abs=0.0)


def test_clip_factor_shrinks_only_a_norm_over_the_clip():
    assert clip_factor(25.0, 2.0) == pytest.approx(0.4)  # norm 5 > 2
    assert clip_factor(25.0, 5.0) == 1.0  # norm at the clip: left alone, as the reference does
    assert clip_factor(1e300, 0.0) == 1.0  # clip 0: off


def numpy_update(theta, grad, m, v, count, optimizer, lr, clip):
    """The update written plainly in float64: clip (when the norm exceeds it), then SGD or Adam."""
    g = grad.astype(np.float64)
    norm = np.sqrt(np.sum(g**2))
    if clip > 0 and norm > clip:
        g = g * (clip / norm)
    if optimizer == "sgd":
        return theta - lr * g, m, v
    m = ADAM_BETA1 * m + (1 - ADAM_BETA1) * g
    v = ADAM_BETA2 * v + (1 - ADAM_BETA2) * g**2
    m_hat, v_hat = m / (1 - ADAM_BETA1**count), v / (1 - ADAM_BETA2**count)
    return theta - lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS), m, v


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("clip,triggered", [(0.0, False), (0.5, True), (1e6, False)])
@pytest.mark.parametrize("known_sum", ["none", "all", "head"])
def test_one_pass_update_matches_numpy(dtype, optimizer, clip, triggered, known_sum):
    """apply_update (norm pass, then one pass), apply_update_with_sum_of_squares (the sum handed
    in) and apply_update_with_partial_sum (a head's sum handed in, the rest summed) against
    numpy_update, clipping or not; grad is left as it was."""
    rng = np.random.default_rng(2)
    n = 3 * SUM_LANES + 11
    theta = rng.normal(size=n).astype(dtype)
    state = (np.zeros(n, dtype), np.zeros(n, dtype), np.zeros(1, np.int64))
    ref_theta, ref_m, ref_v = theta.astype(np.float64), np.zeros(n), np.zeros(n)
    for count in range(1, 4):
        grad = (rng.normal(size=n) * 0.1).astype(dtype)
        grad[::5] = 0.0  # as W_ih's columns of characters not in the window
        kept = grad.copy()
        assert (np.sqrt(np.sum(grad.astype(np.float64) ** 2)) > clip > 0) == triggered
        ref_theta, ref_m, ref_v = numpy_update(ref_theta, grad, ref_m, ref_v, count, optimizer, 0.01, clip)
        code = OPTIMIZER_CODES[optimizer]
        if known_sum == "all":
            apply_update_with_sum_of_squares(theta, grad, state, code, 0.01, clip,
                                             float(np.sum(grad.astype(np.float64) ** 2)))
        elif known_sum == "head":
            head = SUM_LANES + 3
            apply_update_with_partial_sum(theta, grad, state, code, 0.01, clip, head,
                                          float(np.sum(grad[:head].astype(np.float64) ** 2)))
        else:
            apply_update(theta, grad, state, code, 0.01, clip)
        np.testing.assert_array_equal(grad, kept)
    tol = {"float64": 1e-12, "float32": 1e-6}[dtype]  # float32: a few ulps of theta's largest entry
    assert rel_err(theta, ref_theta) < tol
    if optimizer == "adam":
        assert state[2][0] == 3
        assert rel_err(state[0], ref_m) < tol and rel_err(state[1], ref_v) < tol


def powi(x, n):
    """x**n by repeated squaring, as Numba (LLVM's powi) computes it: Python's pow may differ in the last bit."""
    result = 1.0
    while n:
        if n & 1:
            result *= x
        x *= x
        n >>= 1
    return result


@pytest.mark.parametrize("shrink", [1.0, 0.3])
def test_adam_step_is_numpys_in_its_own_precision(dtype, shrink):
    """adam_step against the same arithmetic in NumPy in theta's dtype, bit for bit: a float32 step
    computes in float32 only. Gradients over 12 decades, zeros included."""
    rng = np.random.default_rng(5)
    n = 4099
    theta = rng.normal(size=n).astype(dtype)
    m = (rng.normal(size=n) * 1e-3).astype(dtype)
    v = (rng.random(n) * 1e-6).astype(dtype)
    grad = (rng.normal(size=n) * 10.0 ** rng.uniform(-10, 2, n)).astype(dtype)
    grad[::7] = 0.0
    v[::11] = 0.0  # with grad 0 at 77: the denominator is eps alone
    lr, count = 0.01, 4
    dt = np.dtype(dtype).type
    with np.errstate(all="ignore"):
        g = grad * dt(shrink)
        m_ref = dt(ADAM_BETA1) * m + dt(1 - ADAM_BETA1) * g
        v_ref = dt(ADAM_BETA2) * v + dt(1 - ADAM_BETA2) * g * g
        m_ref[np.abs(m_ref) < ADAM_FLUSH] = 0
        v_ref[v_ref < ADAM_FLUSH] = 0
        step_size, inv_bias2 = dt(lr / (1 - powi(ADAM_BETA1, count))), dt(1 / (1 - powi(ADAM_BETA2, count)))
        delta = step_size * m_ref / (np.sqrt(v_ref * inv_bias2) + dt(ADAM_EPS))
        theta_ref = theta - delta
    got_theta, got_m, got_v = theta.copy(), m.copy(), v.copy()
    adam_step(got_theta, grad, got_m, got_v, lr, count, shrink)
    np.testing.assert_array_equal(got_m, m_ref)
    np.testing.assert_array_equal(got_v, v_ref)
    np.testing.assert_array_equal(got_theta, theta_ref)


def test_adam_moments_never_subnormal(dtype):
    """A parameter whose gradient stays zero (a character not seen for a while) has its moments
    decay towards zero: they must go to zero without passing through float32's subnormal range,
    where every operation on them costs a microcode assist on x86 (run's Adam steps were then far
    slower than speed's, whose moments are fresh). 3,000 steps take m from 1e-3 past 1e-45."""
    n = 64
    theta = np.linspace(-1, 1, n).astype(dtype)
    m = np.full(n, 1e-3, dtype) * np.where(np.arange(n) % 2, 1, -1).astype(dtype)
    v = np.full(n, 1e-6, dtype)
    grad = np.zeros(n, dtype)
    tiny = np.finfo(np.float32).tiny
    seen_zero = False
    for count in range(1, 3001):
        adam_step(theta, grad, m, v, 2e-3, count, 1.0)
        for a in (m, v):
            assert not ((a != 0) & (np.abs(a) < tiny)).any(), f"subnormal moment after {count} steps"
        seen_zero |= bool((m == 0).all())
    assert seen_zero, "m never reached zero"
    v[:] = ADAM_FLUSH * 1.0005  # v decays slower: from just above the threshold, one step takes it below
    adam_step(theta, grad, m, v, 2e-3, 10, 1.0)
    assert (v == 0).all()


@pytest.mark.parametrize("scheme", ["single", "sliding", "chunked"])
def test_training_on_text_with_a_rare_character_leaves_no_subnormal_moment(scheme):
    """The same through a scheme, as `run` trains: a character seen once, at the start, leaves its
    input weights' first moments decaying for the rest of the run (they pass the subnormal range
    some 800-1,000 updates later, checked every 10 updates up to 1,500)."""
    ids = np.resize(np.array([1, 2, 1, 3, 2], np.int32), 2000)
    ids[0] = 0  # the rare character
    k1 = 5 if scheme == "chunked" else 1
    cfg = TrainConfig(scheme=scheme, k1=k1, k2=5, hidden=4, optimizer="adam", clip=1.0, lr=2e-3, budget_steps=1)
    s = make_scheme(cfg, init_theta(4, 4, 0, "float32"), 4, ids)
    tiny = np.finfo(np.float32).tiny
    losses = np.empty(10 * k1)
    for _ in range(150):
        assert s.run(10 * k1, losses) == 10 * k1
        m, v, _ = s.opt_state
        for a in (m, v):
            assert not ((a != 0) & (np.abs(a) < tiny)).any(), f"subnormal moment after {s.updates} updates"


# ----------------------------------------------------------------------------- GEMM and the fused SGD step


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm_tn_accumulates_like_numpy(dtype):
    """C = beta C + alpha X^T Y, in place (the fused step's W_hh -= lr dz^T h_prev)."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(7, 12)).astype(dtype), rng.normal(size=(7, 5)).astype(dtype)
    C = rng.normal(size=(12, 5)).astype(dtype)
    expected = 0.5 * C.astype(np.float64) - 0.25 * X.T.astype(np.float64) @ Y
    gemm_tn(-0.25, X, Y, 0.5, C)
    np.testing.assert_allclose(C, expected, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)


IDS = synthetic_ids(V, 600, seed=3)


def scheme(name, k1, k2, *, dtype="float64", batch=2, optimizer="sgd", lr=0.3, clip=0.0, keep_gradient=False):
    cfg = TrainConfig(scheme=name, k1=k1, k2=k2, hidden=H, batch=batch, optimizer=optimizer, lr=lr, clip=clip,
                      dtype=dtype, seed=1, budget_steps=1)
    made = make_scheme(cfg, init_theta(V, H, 1, dtype), V, IDS)
    made.keep_gradient = keep_gradient
    return made


@pytest.mark.parametrize("k1,k2,batch", [(1, 5, 2), (3, 5, 1), (2, 4, 3), (1, 40, 2)])  # k2 = 40: more rows than characters
def test_fused_sgd_step_is_the_gradient_step_in_place(dtype, k1, k2, batch):
    """window_gradient_or_sgd_step with lr > 0 (W_ih through its mirror) = theta - lr * its gradient at lr = 0."""
    lr = 0.3
    warm = scheme("single", k1, k2, dtype=dtype, batch=batch, optimizer="adam", lr=0.05)
    n = 45 * k1
    warm.run(n, np.zeros(n))  # a ring of real steps and weights away from their start
    t = warm.t
    first, first_injected = warm.window_bounds(t)
    scale = 1.0 / ((t - first_injected + 1) * batch)

    def backward(step_lr):
        theta, grad = warm.theta.copy(), np.zeros_like(warm.theta)
        views = param_views(theta, V, H)
        stacks = views[1][None], views[4][None]
        W_in = np.zeros((V, 4 * H), theta.dtype) if step_lr else views[0].T
        if step_lr:
            mirror_input_weights(theta, V, H, W_in)
        work, index_work = tuple(a.copy() for a in warm.work), warm.index_work.copy()
        sum_sq_in = window_gradient_or_sgd_step(theta, grad, V, H, warm.ring, t, first, first_injected, scale, *stacks,
                                                work, index_work, step_lr, W_in, param_views(grad, V, H)[0].T)
        if step_lr:
            unmirror_input_weights(theta, V, H, W_in)
        return theta, grad, sum_sq_in

    theta, grad, sum_sq_in = backward(0.0)
    assert np.array_equal(theta, warm.theta) and np.any(grad != 0)  # lr = 0: the weights stay, the gradient is written
    # the W_ih block's sum of squares, summed from the rows the backward wrote, is the block's
    assert sum_sq_in == pytest.approx(sum_of_squares(grad[: 4 * H * V]), rel=1e-13, abs=0.0) and sum_sq_in > 0
    stepped, _, fused_sum = backward(lr)
    assert fused_sum == 0.0
    tol = TOL[dtype] * 1e-2
    np.testing.assert_allclose(stepped, theta - lr * grad, rtol=tol, atol=tol * np.abs(theta).max())
    assert not np.allclose(stepped, theta, rtol=0, atol=tol)


@pytest.mark.parametrize("name,k1,k2,batch", [("chunked", 4, 4, 2), ("single", 1, 5, 2), ("single", 3, 5, 1),
                                              ("stored", 1, 5, 2), ("stored", 2, 5, 1), ("sliding", 1, 5, 2),
                                              ("sliding", 2, 5, 1), ("single", 1, 40, 2)])
def test_fused_sgd_gives_the_trajectory_of_gradient_then_update(dtype, name, k1, k2, batch):
    """Each scheme's fused blocks follow the trajectory of gradient, then apply_update's SGD step."""
    fused = scheme(name, k1, k2, dtype=dtype, batch=batch)
    plain = scheme(name, k1, k2, dtype=dtype, batch=batch, keep_gradient=True)
    assert fused.fuses_sgd() and not plain.fuses_sgd()
    n = 30 * k1
    a, b = np.zeros(n), np.zeros(n)
    assert fused.run(n, a) == n and plain.run(n, b) == n
    tol = TOL[dtype] * 1e-2
    np.testing.assert_allclose(a, b, rtol=tol)
    np.testing.assert_allclose(fused.theta, plain.theta, rtol=tol, atol=tol)


def test_only_plain_sgd_fuses_and_a_kept_gradient_is_the_one_applied():
    assert scheme("single", 1, 5).fuses_sgd()
    assert not scheme("single", 1, 5, lr=0.0).fuses_sgd()  # nothing to apply: the gradient is kept
    assert not scheme("single", 1, 5, clip=1.0).fuses_sgd()  # the norm needs the whole gradient first
    assert not scheme("single", 1, 5, optimizer="adam").fuses_sgd()
    assert not scheme("rtrl", 1, 5).fuses_sgd()  # rtrl and uoro form the gradient before the update
    kept = scheme("single", 1, 5, keep_gradient=True)
    probe = kept.gradient_for_next_update()
    before = kept.theta.copy()
    kept.run(1, np.zeros(1))
    np.testing.assert_array_equal(kept.grad, probe)
    np.testing.assert_allclose(kept.theta, before - 0.3 * probe, rtol=0, atol=1e-15)


def test_transpose_input_block_is_the_mirror_in_place_and_back(dtype):
    a = np.random.default_rng(4).normal(size=init_theta(V, H, 0, dtype).size).astype(dtype)
    before, scratch = a.copy(), np.zeros((V, 4 * H), dtype)
    transpose_input_block(a, V, H, scratch, True)
    np.testing.assert_array_equal(a[: 4 * H * V].reshape(V, 4 * H), param_views(before, V, H)[0].T)
    np.testing.assert_array_equal(a[4 * H * V :], before[4 * H * V :])  # the other blocks stay
    transpose_input_block(a, V, H, scratch, False)
    np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize("name,k1,k2,batch", [("single", 1, 3, 1), ("sliding", 1, 3, 1), ("stored", 2, 4, 1),
                                              ("single", 1, 5, 2)])
def test_row_sparse_input_gradient_is_the_dense_gradient(dtype, name, k1, k2, batch):
    """Adam with clipping, update after update: the gradient each update used (the block writes W_ih's
    rows of the window's characters and zeroes only the rows an earlier window wrote) equals
    window_backward's into a NaN-filled buffer (every column zeroed or written), bit for bit, in
    PyTorch's layout; the characters leave the window often enough to need that zeroing."""
    s = scheme(name, k1, k2, dtype=dtype, batch=batch, optimizer="adam", lr=0.05, clip=0.5)
    rows_left = 0
    previous = None
    for _ in range(25):
        before = s.theta.copy()  # the weights of the window's Jacobians (and of sliding's re-run)
        s.run(k1, np.zeros(k1))
        t = s.t
        first, first_injected = s.window_bounds(t)
        if name == "stored":
            stacks = s.weight_stacks()
        else:
            views = param_views(before, V, H)
            stacks = views[1][None], views[4][None]
        dense = np.full_like(s.grad, np.nan)
        window_backward(before, dense, V, H, s.ring, t, first, first_injected,
                        1.0 / ((t - first_injected + 1) * batch), *stacks, tuple(a.copy() for a in s.work))
        np.testing.assert_array_equal(s.grad, dense)
        nonzero = np.any(param_views(dense, V, H)[0] != 0, axis=0)
        if previous is not None:
            rows_left += np.sum(previous & ~nonzero)
        previous = nonzero
    assert rows_left > 0
