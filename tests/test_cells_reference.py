"""The NumPy reference (bpttbench/reference.py) for every cell: its forward against torch.nn's cell, its
backward against torch autograd and central finite differences, and the identities the schemes promise
(k2 = 1 makes single, stored and sliding one trajectory; stored is single at lr 0; rtrl at lr 0 is full
backpropagation from step 1), each with a control that shows the check can fail. Float64 throughout."""

from __future__ import annotations

import numpy as np
import pytest

from bpttbench import reference as ref
from bpttbench.model import init_theta, param_shapes, split_theta
from bpttbench.scheme_names import CELL_NAMES, CELLS

from conftest import central_differences, synthetic_ids

V, H, B = 6, 5, 3
IDS = synthetic_ids(V, 600, seed=3)
CELL_PARAMS = ref.LSTM_NAMES  # the recurrent cell's parameters: the same names for every cell
TORCH_CELLS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def params(cell, seed=0, scale=3.0):
    """Parameters of the cell by name (float64), scaled so the gates leave their linear regime."""
    theta = init_theta(V, H, seed, "float64", cell) * scale
    return {name: view.copy() for name, view in split_theta(theta, V, H).items()}


def flat(grads, cell):
    return np.concatenate([grads[name].ravel() for name, _ in param_shapes(V, H, cell)])


def random_state(cell, rng, batch=B):
    """(h, c) drawn at random; c is 0 wide for the cells without a cell state."""
    width = H if cell == "lstm" else 0
    return rng.normal(size=(batch, H)), rng.normal(size=(batch, width))


def torch_network(cell, p):
    """torch.nn.<Cell>(V, H) and torch.nn.Linear(H, V) holding p, float64."""
    torch = pytest.importorskip("torch")
    recurrent = getattr(torch.nn, TORCH_CELLS[cell])(V, H).double()
    decoder = torch.nn.Linear(H, V).double()
    with torch.no_grad():
        for name in CELL_PARAMS:
            getattr(recurrent, name).copy_(torch.from_numpy(p[name]))
        decoder.weight.copy_(torch.from_numpy(p["decoder.weight"]))
        decoder.bias.copy_(torch.from_numpy(p["decoder.bias"]))
    return recurrent, decoder


def torch_run(cell, recurrent, xs, h0, c0):
    """Run torch's cell over xs (T, B) from (h0, c0) with autograd on the initial state; returns
    (outputs (T, B, H), final c or None, h0 and c0 tensors)."""
    import torch

    inputs = torch.nn.functional.one_hot(torch.from_numpy(np.asarray(xs)).long(), V).double()  # T,B,V
    h = torch.tensor(h0[None], requires_grad=True)
    if cell == "lstm":
        c = torch.tensor(c0[None], requires_grad=True)
        out, (_, c_last) = recurrent(inputs, (h, c))
        return out, c_last[0], h, c
    out, _ = recurrent(inputs, h)
    return out, None, h, None


# ---------------------------------------------------------------- the cell against torch.nn


def test_the_cell_is_read_off_the_parameters():
    for cell in CELL_NAMES:
        p = params(cell)
        assert p["weight_hh_l0"].shape == (CELLS[cell] * H, H)
        assert ref.cell_of(p) == cell
        h, c = ref.zero_state(p, B)
        assert h.shape == (B, H) and c.shape == (B, H if cell == "lstm" else 0)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_forward_over_a_sequence_is_torch_nn(cell):
    """T reference steps from a random state equal torch.nn.<Cell> over the same T inputs (1e-10)."""
    rng = np.random.default_rng(1)
    p = params(cell)
    xs = rng.integers(0, V, size=(7, B))
    h, c = random_state(cell, rng)
    out, c_torch, _, _ = torch_run(cell, torch_network(cell, p)[0], xs, h, c)
    for t, x in enumerate(xs):
        (h, c), _ = ref.cell_forward(p, x, h, c)
        assert np.max(np.abs(h - out[t].detach().numpy())) < 1e-10, t
    if c_torch is not None:
        assert np.max(np.abs(c - c_torch.detach().numpy())) < 1e-10
    assert c.shape == (B, H if cell == "lstm" else 0)


def test_the_cells_differ():
    """The same input and state give three different steps, so no cell is another's in disguise."""
    rng = np.random.default_rng(2)
    x, (h, _) = rng.integers(0, V, B), random_state("lstm", rng)
    outs = [ref.cell_forward(params(cell), x, h, np.zeros((B, H)))[0][0] for cell in CELL_NAMES]
    assert all(np.max(np.abs(a - b)) > 1e-2 for i, a in enumerate(outs) for b in outs[i + 1 :])


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_backward_step_is_torch_autograd(cell):
    """One step: dL/dh_prev (dL/dc_prev) and every cell weight's gradient for L = <dh, h> + <dc, c>."""
    import torch

    rng = np.random.default_rng(3)
    p = params(cell)
    x = rng.integers(0, V, B)
    h_prev, c_prev = random_state(cell, rng)
    (h, c), cache = ref.cell_forward(p, x, h_prev, c_prev)
    dh, dc = rng.normal(size=h.shape), rng.normal(size=c.shape)
    dh_prev, dc_prev, grads = ref.cell_backward(dh, dc, cache, p)

    recurrent, _ = torch_network(cell, p)
    out, c_torch, h0, c0 = torch_run(cell, recurrent, x[None], h_prev, c_prev)
    objective = (out[0] * torch.from_numpy(dh)).sum()
    if c_torch is not None:
        objective = objective + (c_torch * torch.from_numpy(dc)).sum()
    objective.backward()
    assert np.max(np.abs(dh_prev - h0.grad[0].numpy())) < 1e-10
    if c0 is not None:
        assert np.max(np.abs(dc_prev - c0.grad[0].numpy())) < 1e-10
    else:
        assert dc_prev.shape == (B, 0)
    for name in CELL_PARAMS:
        want = getattr(recurrent, name).grad.numpy()
        assert np.max(np.abs(grads[name] - want)) < 1e-10 * max(1.0, np.abs(want).max()), name


def test_the_grus_recurrent_n_block_gets_r_times_the_input_sides_gradient():
    """The GRU's b_hh and b_ih differ in the n block only (where r multiplies the recurrent part):
    the property a backward treating both biases alike (as the LSTM's and the RNN's may) would break."""
    rng = np.random.default_rng(4)
    p = params("gru")
    (h, _), cache = ref.cell_forward(p, rng.integers(0, V, B), *random_state("gru", rng))
    _, _, grads = ref.cell_backward(rng.normal(size=h.shape), np.zeros((B, 0)), cache, p)
    rz = slice(0, 2 * H)
    assert np.array_equal(grads["bias_hh_l0"][rz], grads["bias_ih_l0"][rz])
    assert np.max(np.abs(grads["bias_hh_l0"][2 * H :] - grads["bias_ih_l0"][2 * H :])) > 1e-3


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_window_backward_is_torch_autograd(cell):
    """backward_window over T steps with some losses left out equals autograd of the same objective
    through torch.nn.<Cell> and the Linear decoder, for every parameter, decoder included."""
    import torch

    rng = np.random.default_rng(5)
    p = params(cell, scale=2.0)
    T = 6
    xs, ys = zip(*(ref.stream_inputs(IDS, B, t) for t in range(1, T + 1)))
    injected = [False, True, False, True, True, True]
    scale = 1.0 / (sum(injected) * B)
    h, c = random_state(cell, rng)
    h0, c0 = h, c
    caches = []
    for x, y in zip(xs, ys):
        (h, c), _, cache = ref.step(p, x, y, h, c)
        caches.append(cache)
    got = ref.backward_window(caches, [p] * T, injected, scale)

    recurrent, decoder = torch_network(cell, p)
    out, _, _, _ = torch_run(cell, recurrent, np.array(xs), h0, c0)
    logits = decoder(out)  # T,B,V
    losses = torch.nn.functional.cross_entropy(logits.flatten(0, 1), torch.from_numpy(np.array(ys)).long().flatten(),
                                               reduction="none").reshape(T, B)
    (losses[torch.tensor(injected)].sum() * scale).backward()
    want = {name: getattr(recurrent, name).grad.numpy() for name in CELL_PARAMS}
    want.update({"decoder.weight": decoder.weight.grad.numpy(), "decoder.bias": decoder.bias.grad.numpy()})
    for name, value in want.items():
        assert np.max(np.abs(got[name] - value)) < 1e-10 * max(1.0, np.abs(value).max()), name


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_window_backward_matches_central_differences(cell):
    """The same window's gradient against central differences of window_loss (every parameter)."""
    rng = np.random.default_rng(6)
    theta = init_theta(V, H, 0, "float64", cell) * 2.0
    T = 5
    xs, ys = zip(*(ref.stream_inputs(IDS, B, t) for t in range(1, T + 1)))
    injected = [False, True, True, False, True]
    h0, c0 = random_state(cell, rng)

    def loss(vector):
        return ref.window_loss(split_theta(vector, V, H), xs, ys, h0, c0, injected)

    p = {name: view.copy() for name, view in split_theta(theta, V, H).items()}
    h, c, caches = h0, c0, []
    for x, y in zip(xs, ys):
        (h, c), _, cache = ref.step(p, x, y, h, c)
        caches.append(cache)
    analytic = flat(ref.backward_window(caches, [p] * T, injected, 1.0 / (sum(injected) * B)), cell)
    numeric = central_differences(loss, theta.copy(), eps=1e-6)
    assert np.abs(numeric).max() > 1e-3  # a gradient worth comparing
    assert np.max(np.abs(analytic - numeric)) < 1e-8


# ---------------------------------------------------------------- the schemes' identities


@pytest.fixture
def recorded(monkeypatch):
    """A function running reference.train and returning (losses, final p, every gradient it applied),
    the gradients taken from reference.Optimizer, patched to keep them."""
    seen = []

    class Recording(ref.Optimizer):
        def step(self, p, grads):
            seen.append({name: value.copy() for name, value in grads.items()})
            return super().step(p, grads)

    monkeypatch.setattr(ref, "Optimizer", Recording)

    def run(scheme, cell, **kw):
        seen.clear()
        losses, p = ref.train(scheme, params(cell, seed=1, scale=1.0), IDS, batch=2, **kw)
        return losses, p, list(seen)

    return run


def same_trajectory(a, b, tol=0.0):
    """Whether two (losses, final p, gradients) runs agree to tol (0: exactly)."""
    (la, pa, ga), (lb, pb, gb) = a, b
    close = np.max(np.abs(la - lb)) <= tol and all(np.max(np.abs(pa[k] - pb[k])) <= tol for k in pa)
    return close and len(ga) == len(gb) and all(np.max(np.abs(x[k] - y[k])) <= tol for x, y in zip(ga, gb) for k in x)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_k2_of_one_makes_single_stored_and_sliding_one_trajectory(cell, recorded):
    """With a one-step window each scheme backprops the newest step alone with the weights it ran with:
    the same losses, gradients and final weights (Adam, lr 0.05, so the weights move); at k2 = 3 sliding
    and stored each depart from single."""
    kw = dict(k1=1, n_steps=25, optimizer="adam", lr=0.05, clip=1.0)
    single = recorded("single", cell, k2=1, **kw)
    assert same_trajectory(single, recorded("stored", cell, k2=1, **kw), tol=1e-14)
    assert same_trajectory(single, recorded("sliding", cell, k2=1, **kw), tol=1e-14)
    longer = recorded("single", cell, k2=3, **kw)
    assert not same_trajectory(longer, recorded("stored", cell, k2=3, **kw), tol=1e-6)
    assert not same_trajectory(longer, recorded("sliding", cell, k2=3, **kw), tol=1e-6)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_stored_equals_single_at_learning_rate_zero_and_differs_when_weights_move(cell, recorded):
    """stored backprops with the weights each step ran with, single with the current ones: the same
    gradients while the weights stand still, different ones once they move."""
    kw = dict(k1=2, k2=5, n_steps=20)
    assert same_trajectory(recorded("single", cell, lr=0.0, **kw), recorded("stored", cell, lr=0.0, **kw))
    _, _, single = recorded("single", cell, lr=0.5, **kw)
    _, _, stored = recorded("stored", cell, lr=0.5, **kw)
    assert np.array_equal(flat(single[0], cell), flat(stored[0], cell))  # nothing has moved before the first update
    assert max(np.max(np.abs(flat(a, cell) - flat(b, cell))) for a, b in zip(single, stored)) > 1e-6


@pytest.mark.parametrize("k1", [1, 3])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_rtrl_at_learning_rate_zero_is_full_backpropagation_from_step_one(cell, k1, recorded):
    """Each gradient rtrl applies after step t is the full BPTT gradient, from step 1, of the mean of
    the k1 newest losses (relative error < 1e-10); a 5-step window is visibly different."""
    n, batch = 24, 2
    _, _, applied = recorded("rtrl", cell, k1=k1, k2=1, n_steps=n, lr=0.0)
    p = params(cell, seed=1, scale=1.0)
    h, c = ref.zero_state(p, batch)
    caches = []
    for t in range(1, n + 1):
        (h, c), _, cache = ref.step(p, *ref.stream_inputs(IDS, batch, t), h, c)
        caches.append(cache)
        if t % k1:
            continue
        exact = flat(ref.backward_window(caches, [p] * t, [tau > t - k1 for tau in range(1, t + 1)],
                                         1.0 / (k1 * batch)), cell)
        got = flat(applied[t // k1 - 1], cell)
        assert np.linalg.norm(got - exact) < 1e-10 * np.linalg.norm(exact), t
    window = flat(ref.backward_window(caches[-5:], [p] * 5, [False] * (5 - k1) + [True] * k1, 1.0 / (k1 * batch)), cell)
    assert np.linalg.norm(window - exact) > 1e-3 * np.linalg.norm(exact)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_uoros_reference_refuses_the_cells_it_has_no_derivation_for(cell):
    with pytest.raises(ValueError, match=f"uoro's reference runs the lstm cell only, not the {cell}"):
        ref.train("uoro", params(cell), IDS, batch=2, k1=1, k2=1, n_steps=2)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_decay_norms_are_the_norms_of_the_state_gradient(cell):
    """adaptive's decay estimate: lag l's norm is the mean over streams of ||dL/d(h, c)|| l steps back,
    L the last step's loss: against torch autograd of L with respect to each past state."""
    import torch

    p = params(cell, scale=2.0)
    T, batch = 6, 2
    xs, ys = zip(*(ref.stream_inputs(IDS, batch, t) for t in range(1, T + 1)))
    h, c = ref.zero_state(p, batch)
    caches = []
    for x, y in zip(xs, ys):
        (h, c), _, cache = ref.step(p, x, y, h, c)
        caches.append(cache)
    norms = ref.decay_norms(caches, p)

    recurrent, decoder = torch_network(cell, p)
    inputs = torch.nn.functional.one_hot(torch.from_numpy(np.array(xs)).long(), V).double()
    state = (torch.zeros(1, batch, H, dtype=torch.float64),) * (2 if cell == "lstm" else 1)
    states = []  # states[k]: the state after step k, the input of step k + 1 (in the graph, not cut)
    for t in range(T):
        states.append(state)
        out, new = recurrent(inputs[t : t + 1], state if cell == "lstm" else state[0])
        state = new if cell == "lstm" else (new,)
    targets = torch.from_numpy(np.array(ys[-1])).long()
    last = torch.nn.functional.cross_entropy(decoder(out[0]), targets, reduction="sum")
    # lag l: the state after step T - l, which is the input state of step T - l + 1
    wrt = [s for st in states[1:] for s in st]
    grads = torch.autograd.grad(last, wrt)
    per_step = [grads[i : i + len(states[0])] for i in range(0, len(grads), len(states[0]))]
    assert norms.shape == (T,)
    for lag in range(1, T):
        g = per_step[T - 1 - lag]
        want = np.sqrt(sum((gi[0].numpy() ** 2).sum(axis=1) for gi in g)).mean()
        assert abs(norms[lag] - want) < 1e-12 * max(1.0, want), lag


# ---------------------------------------------------------------- fidelity/online_reference.py's rules


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_online_references_closed_form_jacobians_are_the_backward_of_unit_vectors(cell):
    """D = ds/ds_prev and I = ds/dtheta written out per cell, row by row against reference.state_jacobians
    (the cell's backward of each unit vector): two derivations that share no formula."""
    from bpttbench.fidelity import online_reference as oref

    rng = np.random.default_rng(7)
    p = params(cell)
    _, cache = ref.cell_forward(p, np.array([2]), *random_state(cell, rng, batch=1))
    D, I, _ = oref.step_jacobians(p, cache)
    J_s, J_theta = ref.state_jacobians(p, cache)
    S = H * (2 if cell == "lstm" else 1)
    assert D.shape == J_s.shape == (S, S) and I.shape == J_theta.shape
    assert np.max(np.abs(D - J_s)) < 1e-13 and np.max(np.abs(I - J_theta)) < 1e-13


def online_gradients(rule, cell, hidden, *, k1=2, n=20, batch=2):
    """The gradients online_reference's rule applies at lr 0, and the parameters it ran with."""
    from bpttbench.fidelity import online_reference as oref

    p = {name: view.copy() for name, view in split_theta(init_theta(V, hidden, 1, "float64", cell), V, hidden).items()}
    _, _, applied = oref.train_online(rule, p, IDS, batch=batch, k1=k1, n_steps=n)
    return p, applied


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_online_references_rtrl_is_full_backpropagation_from_step_one(cell):
    k1, n, batch = 2, 20, 2
    p, applied = online_gradients("rtrl", cell, H, k1=k1, n=n, batch=batch)
    h, c = ref.zero_state(p, batch)
    caches = []
    for t in range(1, n + 1):
        (h, c), _, cache = ref.step(p, *ref.stream_inputs(IDS, batch, t), h, c)
        caches.append(cache)
        if t % k1 == 0:
            exact = flat(ref.backward_window(caches, [p] * t, [tau > t - k1 for tau in range(1, t + 1)],
                                             1.0 / (k1 * batch)), cell)
            assert np.linalg.norm(applied[t // k1 - 1] - exact) < 1e-10 * np.linalg.norm(exact), t


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_snap1_is_rtrl_at_one_hidden_unit_and_not_beyond(cell):
    """With H = 1 every parameter feeds the one unit, so SnAp-1's mask keeps all of the influence matrix;
    at H = 5 it drops the cross-unit terms and the gradients part."""
    for hidden, same in ((1, True), (H, False)):
        _, exact = online_gradients("rtrl", cell, hidden)
        _, sparse = online_gradients("snap1", cell, hidden)
        gap = max(np.linalg.norm(a - b) / np.linalg.norm(a) for a, b in zip(exact, sparse))
        assert (gap < 1e-14) if same else (gap > 1e-3), (hidden, gap)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_online_references_eprop_refuses_the_cells_without_a_cell_state(cell):
    with pytest.raises(ValueError, match=f"eprop's reference runs the lstm cell only .*, not the {cell}"):
        online_gradients("eprop", cell, H)
