"""Each Numba kernel against the NumPy reference, piece by piece (llm.c style: reference first)."""

from __future__ import annotations

import numpy as np
import pytest

from bpttbench import reference as ref
from bpttbench.kernels.lstm import evaluate, head_forward, lstm_backward, lstm_forward, param_views
from bpttbench.kernels.optim import OPTIMIZER_CODES, apply_update
from bpttbench.model import init_theta, split_theta
from bpttbench.train import eval_scratch

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
    lstm_forward(W_ih, W_hh, b_ih, b_hh, x, h_prev, c_prev, gates, c, h, tanh_c)
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
    lstm_forward(W_ih, W_hh, b_ih, b_hh, x, h_prev, c_prev, gates, c, h, tanh_c)
    dh = rng.normal(size=(B, H)).astype(dtype)
    dc = rng.normal(size=(B, H)).astype(dtype)
    _, cache = ref.lstm_forward(p64, x, h_prev.astype(np.float64), c_prev.astype(np.float64))
    dh_prev_ref, dc_prev_ref, grads = ref.lstm_backward(dh.astype(np.float64), dc.astype(np.float64), cache, p64)
    dz, dh_prev = np.zeros((B, 4 * H), dtype), np.zeros((B, H), dtype)
    lstm_backward(W_hh, gates, c_prev, tanh_c, dh, dc, dz, dh_prev)
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


def test_evaluate_matches_reference(dtype):
    rng = np.random.default_rng(2)
    theta = init_theta(V, H, 3, dtype) * 3
    ids = rng.integers(0, V, 50).astype(np.int32)
    nats = evaluate(theta, V, H, ids, 40, eval_scratch(H, V, np.dtype(dtype)))
    p64 = {k: v.astype(np.float64) for k, v in split_theta(theta, V, H).items()}
    assert abs(nats - ref.evaluate(p64, ids, 40)) / nats < TOL[dtype]
