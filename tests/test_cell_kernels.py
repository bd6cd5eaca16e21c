"""Every cell's kernels (kernels/cells.py) against torch.nn's cell and autograd in float64, the window
backward against finite differences, and the identities the math promises, for every cell."""

from __future__ import annotations

import numpy as np
import pytest

from bpttbench.config import TrainConfig
from bpttbench.kernels.cells import cell_backward, cell_forward
from bpttbench.kernels.network import forward_step, param_views, read_inputs, window_backward
from bpttbench.model import init_theta, split_theta
from bpttbench.scheme_names import CELL_NAMES, CELLS
from bpttbench.schemes import make_scheme

from conftest import central_differences, run_steps, synthetic_ids

V, H, B = 6, 5, 3
IDS = synthetic_ids(V, 600, seed=3)


def state_widths(cell):
    """(c, aux) widths the ring keeps for the cell (schemes/base.py)."""
    return (H if cell == "lstm" else 0), (0 if cell == "rnn" else H)


def one_step(cell, seed=0):
    """theta, inputs and the kernel's forward of one step from a random state (float64)."""
    rng = np.random.default_rng(seed)
    theta = init_theta(V, H, seed, "float64", cell) * 3  # gates away from their linear regime
    x = rng.integers(0, V, B).astype(np.int32)
    h_prev = rng.normal(size=(B, H))
    Hc, Ha = state_widths(cell)
    c_prev = rng.normal(size=(B, Hc))
    gates = np.zeros((B, CELLS[cell] * H))
    c, h, aux = np.zeros((B, Hc)), np.zeros((B, H)), np.zeros((B, Ha))
    W_ih, W_hh, b_ih, b_hh, _, _ = param_views(theta, V, H)
    cell_forward(W_ih.T, W_hh, b_ih, b_hh, x, h_prev, c_prev, gates, c, h, aux)
    return rng, theta, x, h_prev, c_prev, gates, c, h, aux


def torch_step(cell, theta, x, h_prev, c_prev):
    """torch.nn's cell (one layer, one step) on the same weights, with autograd on its inputs and weights."""
    torch = pytest.importorskip("torch")
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](V, H).double()
    with torch.no_grad():
        for name, value in split_theta(theta, V, H).items():
            if not name.startswith("decoder."):
                getattr(module, name).copy_(torch.from_numpy(value.copy()))
    xs = torch.nn.functional.one_hot(torch.from_numpy(x).long(), V).double()[None]  # 1,B,V
    h0 = torch.tensor(h_prev[None], requires_grad=True)
    if cell == "lstm":
        c0 = torch.tensor(c_prev[None], requires_grad=True)
        out, (_, c) = module(xs, (h0, c0))
        return module, out[0], c[0], h0, c0
    out, _ = module(xs, h0)
    return module, out[0], None, h0, None


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_forward_step_is_torch_nn(cell):
    _, theta, x, h_prev, c_prev, _, c, h, _ = one_step(cell)
    _, h_torch, c_torch, _, _ = torch_step(cell, theta, x, h_prev, c_prev)
    assert np.max(np.abs(h - h_torch.detach().numpy())) < 1e-12
    if c_torch is not None:
        assert np.max(np.abs(c - c_torch.detach().numpy())) < 1e-12


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_backward_step_is_torch_autograd(cell):
    """dh_prev (and dc_prev), and the weight gradients a window assembles from dz, dzh and h_prev."""
    torch = pytest.importorskip("torch")
    rng, theta, x, h_prev, c_prev, gates, c, h, aux = one_step(cell)
    dh, dc = rng.normal(size=(B, H)), rng.normal(size=(B, c.shape[1]))
    module, h_torch, c_torch, h0, c0 = torch_step(cell, theta, x, h_prev, c_prev)
    objective = (h_torch * torch.from_numpy(dh)).sum()
    if c_torch is not None:
        objective = objective + (c_torch * torch.from_numpy(dc)).sum()
    objective.backward()
    G = CELLS[cell] * H
    dz, dzh, dh_prev = np.zeros((B, G)), np.zeros((B, G)), np.zeros((B, H))
    dc_work = np.zeros((B, H))
    dc_work[:, : dc.shape[1]] = dc
    W_hh = param_views(theta, V, H)[1]
    cell_backward(W_hh, gates, c_prev, aux, h_prev, dh, dc_work, dz, dzh if cell == "gru" else dz, dh_prev)
    if cell != "gru":
        dzh = dz
    assert np.max(np.abs(dh_prev - h0.grad[0].numpy())) < 1e-12
    if c0 is not None:
        assert np.max(np.abs(dc_work - c0.grad[0].numpy())) < 1e-12
    g_ih = np.zeros((G, V))
    np.add.at(g_ih.T, x, dz)
    expected = {"weight_ih_l0": g_ih, "weight_hh_l0": dzh.T @ h_prev, "bias_ih_l0": dz.sum(0), "bias_hh_l0": dzh.sum(0)}
    for name, value in expected.items():
        assert np.max(np.abs(value - getattr(module, name).grad.numpy())) < 1e-12, name


def kernel_window_loss(cell, theta, k2):
    """The summed loss of steps 1..k2 of B streams from the zero state, by the kernels' forward steps,
    and its gradient by window_backward."""
    cfg = TrainConfig(scheme="single", cell=cell, hidden=H, batch=B, k1=1, k2=k2, optimizer="sgd", lr=0.0,
                      clip=0.0, dtype="float64", budget_steps=1)
    scheme = make_scheme(cfg, theta, V, IDS)
    R = k2 + 1
    total = 0.0
    for t in range(1, k2 + 1):
        read_inputs(scheme.ids, scheme.track_len, t, scheme.ring[0][t % R], scheme.ring[1][t % R])
        total += forward_step(scheme.theta, V, H, scheme.ring, t, (t - 1) % R)
    grad = np.zeros_like(theta)
    _, W_hh, _, _, W_dec, _ = param_views(scheme.theta, V, H)
    window_backward(scheme.theta, grad, V, H, scheme.ring, k2, 1, 1, 1.0, W_hh[None], W_dec[None], scheme.work)
    return total, grad


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_window_backward_matches_finite_differences(cell):
    theta = init_theta(V, H, 2, "float64", cell) * 2
    _, grad = kernel_window_loss(cell, theta, 6)
    fd = central_differences(lambda th: kernel_window_loss(cell, th, 6)[0], theta.copy(), np.arange(theta.size))
    assert np.linalg.norm(grad - fd) / np.linalg.norm(fd) < 1e-7


def make(scheme, cell, k1, k2, *, lr=0.05, optimizer="adam", clip=1.0):
    cfg = TrainConfig(scheme=scheme, cell=cell, k1=k1, k2=k2, hidden=H, batch=2, optimizer=optimizer, lr=lr,
                      clip=clip, dtype="float64", seed=1, budget_steps=1)
    return make_scheme(cfg, init_theta(V, H, 1, "float64", cell), V, IDS)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_k2_of_one_makes_single_stored_and_sliding_identical(cell):
    runs = [make(name, cell, 1, 1) for name in ("single", "stored", "sliding")]
    losses = [run_steps(scheme, 40) for scheme in runs]
    for scheme, loss in zip(runs[1:], losses[1:]):
        assert np.array_equal(loss, losses[0])
        assert np.array_equal(scheme.theta, runs[0].theta)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_stored_equals_single_at_learning_rate_zero_and_differs_when_weights_move(cell):
    single, stored = make("single", cell, 2, 6, lr=0.0), make("stored", cell, 2, 6, lr=0.0)
    assert np.array_equal(run_steps(single, 30), run_steps(stored, 30))
    assert np.array_equal(single.gradient_for_next_update(), stored.gradient_for_next_update())
    moving = [run_steps(make(name, cell, 1, 6), 30) for name in ("single", "stored")]
    assert not np.allclose(moving[0], moving[1], rtol=1e-9, atol=0)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_rtrl_is_full_backpropagation_from_step_one_at_learning_rate_zero(cell):
    """rtrl's gradient of the first n losses = single's with a window reaching step 1 (k1 = k2 = n),
    that is stored's, whose window reaches step 1."""
    n = 7
    rtrl = make("rtrl", cell, n, 1, lr=0.0, optimizer="sgd", clip=0.0).gradient_for_next_update()
    full = make("stored", cell, n, n, lr=0.0, optimizer="sgd", clip=0.0).gradient_for_next_update()
    assert np.max(np.abs(rtrl - full)) / np.max(np.abs(full)) < 1e-12


@pytest.mark.parametrize("k1,optimizer", [(1, "sgd"), (3, "adam")])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_stored_is_rtrl_while_its_window_reaches_step_one_as_weights_move(cell, k1, optimizer):
    """Both differentiate through every past step with the weights that ran it: rtrl carries that
    sensitivity forward, stored keeps each step's weights for its backward pass. While stored's
    window still reaches step 1 (n <= k2) their trajectories are one, whatever the updates did."""
    n = 12
    runs = [make(name, cell, k1, n, lr=0.05, optimizer=optimizer) for name in ("rtrl", "stored")]
    losses = [run_steps(scheme, n) for scheme in runs]
    assert runs[0].updates == runs[1].updates == n // k1
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-11, atol=0)
    assert np.max(np.abs(runs[0].theta - runs[1].theta)) < 1e-11 * np.max(np.abs(runs[1].theta))
    assert not np.allclose(runs[1].theta, make("stored", cell, k1, n).theta)  # the weights did move
    beyond = [make(name, cell, k1, n, lr=0.05, optimizer=optimizer) for name in ("rtrl", "stored")]
    assert not np.allclose(run_steps(beyond[0], 3 * n), run_steps(beyond[1], 3 * n), rtol=1e-9, atol=0)  # once it no longer does


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_rules_derived_for_the_lstm_only_are_refused_in_one_line(cell):
    from bpttbench.errors import ConfigError

    with pytest.raises(ConfigError, match=f"lstm cell only, not {cell}.*use --cell lstm"):
        TrainConfig(scheme="uoro", cell=cell, budget_steps=1)
