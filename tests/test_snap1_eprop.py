"""snap1 and eprop: the kernels against the plain-NumPy rules of bpttbench/fidelity/online_reference.py, the
cases where each equals rtrl exactly, the cases where it must not, and the scheme interface."""

from __future__ import annotations

import numpy as np
import pytest

from bpttbench.fidelity import online_reference as oref
from bpttbench import reference as ref
from bpttbench.config import TrainConfig
from bpttbench.errors import ConfigError
from bpttbench.model import init_theta, param_shapes, split_theta
from bpttbench.schemes import REGISTRY, make_scheme
from bpttbench.schemes.rtrl import sensitivity_columns
from bpttbench.training.loop import Training

from conftest import run_steps, synthetic_ids, tiny_corpus
from test_train import compiled_signatures, fake_clock

V, H, B = 6, 5, 2
IDS = synthetic_ids(V, 600, seed=3)
NAMES = [name for name, _ in param_shapes(V, H)]
RULES = ("snap1", "eprop")


def make(scheme, *, hidden=H, k1=1, batch=B, optimizer="sgd", lr=0.0, clip=0.0, dtype="float64", theta=None,
         cell="lstm"):
    cfg = TrainConfig(scheme=scheme, cell=cell, k1=k1, k2=5, hidden=hidden, batch=batch, optimizer=optimizer, lr=lr,
                      clip=clip, dtype=dtype, seed=1, budget_steps=1)
    theta = init_theta(V, hidden, 1, dtype, cell) if theta is None else theta.copy()
    return make_scheme(cfg, theta, V, IDS)


def as_dict(theta, hidden=H):
    return {name: view.copy() for name, view in split_theta(theta, V, hidden).items()}


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def max_rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def without_recurrence(hidden=H, cell="lstm"):
    """Initial weights with weight_hh_l0 = 0: no path from h_{t-1} to the step's gates."""
    theta = init_theta(V, hidden, 1, "float64", cell)
    split_theta(theta, V, hidden)["weight_hh_l0"][...] = 0.0
    return theta


# ---------------------------------------------------------------- the reference's Jacobians


def test_reference_jacobians_agree_with_the_reference_backward_pass():
    """online_reference's closed-form D_t and I_t, row by row against reference.lstm_backward of a unit vector."""
    p = as_dict(init_theta(V, H, 4, "float64"))
    rng = np.random.default_rng(0)
    h0, c0 = rng.normal(size=(1, H)), rng.normal(size=(1, H))
    _, cache = ref.lstm_forward(p, np.array([2]), h0, c0)
    D, I, _ = oref.step_jacobians(p, cache)
    for r in range(2 * H):
        dh, dc = np.zeros((1, H)), np.zeros((1, H))
        (dh if r < H else dc)[0, r % H] = 1.0
        dh_prev, dc_prev, grads = ref.lstm_backward(dh, dc, cache, p)
        assert np.allclose(D[r], np.concatenate([dh_prev[0], dc_prev[0]]), rtol=0, atol=1e-14), r
        assert np.allclose(I[r], np.concatenate([grads[n].ravel() for n in oref.LSTM_NAMES]), rtol=0, atol=1e-14), r


def test_reference_rtrl_is_the_rtrl_scheme():
    """The dense reference recursion without a mask is the (separately tested) rtrl kernel."""
    scheme = make("rtrl", k1=2, optimizer="adam", lr=0.05, clip=0.5)
    p0 = as_dict(scheme.theta)
    losses = run_steps(scheme, 10)
    ref_losses, ref_p, _ = oref.train_online("rtrl", p0, IDS, batch=B, k1=2, n_steps=10, optimizer="adam", lr=0.05, clip=0.5)
    assert max_rel(losses, ref_losses) < 1e-10
    assert max_rel(scheme.theta, np.concatenate([ref_p[n].ravel() for n in NAMES])) < 1e-10


# ---------------------------------------------------------------- the kernels against the reference


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("k1,optimizer,clip", [(1, "sgd", 0.0), (3, "sgd", 0.0), (1, "adam", 1.0), (2, "adam", 0.05)])
def test_kernel_trajectory_matches_numpy(rule, k1, optimizer, clip):
    n = 18
    lr = 0.05 if optimizer == "adam" else 0.5
    scheme = make(rule, k1=k1, optimizer=optimizer, lr=lr, clip=clip)
    p0 = as_dict(scheme.theta)
    losses = run_steps(scheme, n)
    ref_losses, ref_p, ref_grads = oref.train_online(rule, p0, IDS, batch=B, k1=k1, n_steps=n, optimizer=optimizer,
                                                     lr=lr, clip=clip)
    assert max_rel(losses, ref_losses) < 1e-10
    for name, view in split_theta(scheme.theta, V, H).items():
        assert max_rel(view, ref_p[name]) < 1e-10, name
    if clip == 0.0:  # clipping scales grad in place; the reference's gradients are the unclipped ones
        assert max_rel(scheme.grad, ref_grads[-1]) < 1e-10


@pytest.mark.parametrize("rule", RULES)
def test_kernel_gradient_matches_numpy_at_every_update(rule):
    scheme = make(rule, k1=2)
    p0 = as_dict(scheme.theta)
    _, _, ref_grads = oref.train_online(rule, p0, IDS, batch=B, k1=2, n_steps=20)
    for g in ref_grads:
        run_steps(scheme, 2)
        assert max_rel(scheme.grad, g) < 1e-10


@pytest.mark.parametrize("rule", RULES)
def test_float32_kernel_matches_numpy(rule):
    n = 12
    scheme = make(rule, optimizer="adam", lr=0.02, clip=1.0, dtype="float32")
    p0 = {k: v.astype(np.float64) for k, v in as_dict(scheme.theta).items()}
    losses = run_steps(scheme, n)
    assert scheme.sh.dtype == np.float32 if rule == "snap1" else scheme.eps.dtype == np.float32
    ref_losses, ref_p, _ = oref.train_online(rule, p0, IDS, batch=B, k1=1, n_steps=n, optimizer="adam", lr=0.02, clip=1.0)
    assert max_rel(losses, ref_losses) < 1e-4
    for name, view in split_theta(scheme.theta, V, H).items():
        assert max_rel(view, ref_p[name]) < 1e-4, name


# ---------------------------------------------------------------- exact where they should be


@pytest.mark.parametrize("k1,optimizer,lr,clip", [(1, "sgd", 0.5, 0.0), (3, "sgd", 0.5, 0.0), (2, "adam", 0.05, 0.3)])
def test_snap1_is_rtrl_with_one_hidden_unit(k1, optimizer, lr, clip):
    """H = 1: the mask keeps every entry, so the whole trajectory is rtrl's (float64, relative error < 1e-10)."""
    kw = {"hidden": 1, "k1": k1, "optimizer": optimizer, "lr": lr, "clip": clip}
    snap1, rtrl, eprop = make("snap1", **kw), make("rtrl", **kw), make("eprop", **kw)
    for _ in range(30):
        la, lb = run_steps(snap1, k1), run_steps(rtrl, k1)
        assert max_rel(la, lb) < 1e-10
        assert max_rel(snap1.theta, rtrl.theta) < 1e-10
    run_steps(eprop, 30 * k1)
    # e-prop drops the path through W_hh[gate, 0] even at H = 1, so it leaves rtrl's trajectory
    assert max_rel(eprop.theta, rtrl.theta) > 1e-4


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("k1", [1, 3])
def test_gradient_is_rtrls_without_recurrent_weights(rule, k1):
    """weight_hh_l0 = 0 and lr = 0: every update's gradient equals rtrl's (relative error < 1e-10)."""
    theta = without_recurrence()
    approx, exact = make(rule, k1=k1, theta=theta), make("rtrl", k1=k1, theta=theta)
    for _ in range(40 // k1):
        run_steps(approx, k1)
        run_steps(exact, k1)
        assert rel(approx.grad, exact.grad) < 1e-10
    assert np.any(split_theta(exact.grad, V, H)["weight_hh_l0"] != 0)  # W_hh's own gradient is in the comparison


@pytest.mark.parametrize("rule", RULES)
def test_gradient_is_not_rtrls_with_recurrent_weights(rule):
    """With W_hh != 0 and H > 1 both rules are approximations: the identities above are not vacuous."""
    approx, exact = make(rule), make("rtrl")
    run_steps(approx, 30)
    run_steps(exact, 30)
    n_lstm = sensitivity_columns(V, H) + 4 * H
    assert rel(approx.grad[:n_lstm], exact.grad[:n_lstm]) > 1e-3
    assert rel(approx.grad[n_lstm:], exact.grad[n_lstm:]) < 1e-12  # the decoder's gradient is exact


def test_eprop_differs_from_snap1_by_the_self_recurrent_paths():
    """Only W_hh's diagonal (W_hh[gate*H + k, k]) separates the two: zero it and they agree."""
    a, b = make("snap1"), make("eprop")
    run_steps(a, 30)
    run_steps(b, 30)
    assert rel(b.grad, a.grad) > 1e-4
    theta = init_theta(V, H, 1, "float64")
    W_hh = split_theta(theta, V, H)["weight_hh_l0"]
    for gate in range(4):
        W_hh[gate * H + np.arange(H), np.arange(H)] = 0.0
    a, b = make("snap1", theta=theta), make("eprop", theta=theta)
    run_steps(a, 30)
    run_steps(b, 30)
    assert rel(b.grad, a.grad) < 1e-12


# ---------------------------------------------------------------- the scheme interface


@pytest.mark.parametrize("rule", RULES)
def test_gradient_for_next_update_is_the_one_applied(rule):
    scheme = make(rule, k1=2, lr=0.3)
    run_steps(scheme, 6)
    probe = scheme.gradient_for_next_update()
    before = scheme.theta.copy()
    run_steps(scheme, 2)
    assert np.array_equal(scheme.grad, probe)
    assert np.allclose(scheme.theta, before - 0.3 * probe, rtol=0, atol=1e-15)


@pytest.mark.parametrize("rule", RULES)
def test_k2_is_not_used_and_steps_may_be_split(rule):
    a = make_scheme(TrainConfig(scheme=rule, k1=2, k2=2, hidden=H, batch=B, lr=0.05, dtype="float64", budget_steps=1),
                    init_theta(V, H, 1, "float64"), V, IDS)
    b = make_scheme(a.cfg.replace(k2=9), init_theta(V, H, 1, "float64"), V, IDS)
    la = run_steps(a, 20)
    lb = np.concatenate([run_steps(b, 3), run_steps(b, 8), run_steps(b, 9)])
    assert np.array_equal(la, lb) and np.array_equal(a.theta, b.theta)


@pytest.mark.parametrize("rule", RULES)
def test_config_rules_and_no_size_limit(rule):
    assert REGISTRY[rule].name == rule
    TrainConfig(scheme=rule, k1=30, k2=5, budget_steps=1)  # k2 is not used: k1 > k2 is fine
    with pytest.raises(ConfigError, match="inject='new'"):
        TrainConfig(scheme=rule, inject="window", budget_steps=1)
    REGISTRY[rule].check_fits(TrainConfig(scheme=rule, hidden=1024, budget_steps=1), 65)  # O(parameters): nothing to refuse


@pytest.mark.parametrize("rule", RULES)
def test_resident_bytes_count_the_traces(rule):
    # O(parameters) per stream: snap1 keeps (h, c) sensitivities, eprop one trace, per parameter.
    # (That resident_bytes counts own_arrays is tests/test_contract.py's check.)
    scheme = make(rule, batch=3)
    per_stream = (2 if rule == "snap1" else 1) * sensitivity_columns(V, H) * 8
    assert sum(a.nbytes for a in scheme.own_arrays()) == 3 * per_stream + H * 8


@pytest.mark.parametrize("rule", RULES)
def test_training_loop_runs_and_learns(rule):
    cfg = TrainConfig(scheme=rule, k1=1, k2=1, hidden=8, lr=0.01, clip=0.0, budget_steps=1500, log_every=500,
                      eval_every=0, eval_chars=300)
    training = Training(cfg, tiny_corpus())
    training.compile()
    records = list(training.records())
    assert training.outcome.status == "complete" and records[-1].step == 1500
    assert records[-1].train_bpc < records[0].train_bpc - 0.1
    assert np.isfinite(records[-1].val_bpc)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dtype,batch", [("float32", 1), ("float64", 3)])
def test_nothing_compiles_once_the_clock_runs(rule, dtype, batch):
    cfg = TrainConfig(scheme=rule, k1=1, k2=4, hidden=4, batch=batch, dtype=dtype, lr=0.01, budget_steps=40,
                      log_every=20, eval_every=20, eval_chars=50)
    training = Training(cfg, tiny_corpus(), clock=fake_clock())
    training.compile()
    before = compiled_signatures()
    assert any(name.startswith(f"bpttbench.schemes.{rule}.") for name in before)
    list(training.records())
    grown = {name: n for name, n in compiled_signatures().items() if n > before.get(name, 0)}
    assert not grown, f"compiled on the clock: {grown}"


# ---------------------------------------------------------------- snap1 for the GRU


@pytest.mark.parametrize("k1,optimizer,clip", [(1, "sgd", 0.0), (3, "sgd", 0.0), (2, "adam", 0.05)])
def test_gru_kernel_trajectory_matches_numpy(k1, optimizer, clip):
    """The GRU's masked recursion (its b_hn columns its own) against online_reference's dense one."""
    n = 18
    lr = 0.05 if optimizer == "adam" else 0.5
    scheme = make("snap1", cell="gru", k1=k1, optimizer=optimizer, lr=lr, clip=clip)
    p0 = as_dict(scheme.theta)
    losses = run_steps(scheme, n)
    ref_losses, ref_p, ref_grads = oref.train_online("snap1", p0, IDS, batch=B, k1=k1, n_steps=n, optimizer=optimizer,
                                                     lr=lr, clip=clip)
    assert max_rel(losses, ref_losses) < 1e-10
    for name, view in split_theta(scheme.theta, V, H).items():
        assert max_rel(view, ref_p[name]) < 1e-10, name
    if clip == 0.0:
        assert max_rel(scheme.grad, ref_grads[-1]) < 1e-10


def test_gru_float32_kernel_matches_numpy():
    scheme = make("snap1", cell="gru", optimizer="adam", lr=0.02, clip=1.0, dtype="float32")
    p0 = {k: v.astype(np.float64) for k, v in as_dict(scheme.theta).items()}
    losses = run_steps(scheme, 12)
    assert scheme.sh.dtype == np.float32 and scheme.sc.shape == (B, 0)
    ref_losses, ref_p, _ = oref.train_online("snap1", p0, IDS, batch=B, k1=1, n_steps=12, optimizer="adam", lr=0.02,
                                             clip=1.0)
    assert max_rel(losses, ref_losses) < 1e-4
    for name, view in split_theta(scheme.theta, V, H).items():
        assert max_rel(view, ref_p[name]) < 1e-4, name


@pytest.mark.parametrize("k1,optimizer,lr,clip", [(1, "sgd", 0.5, 0.0), (3, "sgd", 0.5, 0.0), (2, "adam", 0.05, 0.3)])
def test_gru_snap1_is_rtrl_with_one_hidden_unit(k1, optimizer, lr, clip):
    """H = 1: the mask keeps every entry, so the GRU's whole trajectory is rtrl's (float64, < 1e-10)."""
    kw = {"hidden": 1, "k1": k1, "optimizer": optimizer, "lr": lr, "clip": clip, "cell": "gru"}
    snap1, rtrl = make("snap1", **kw), make("rtrl", **kw)
    for _ in range(30):
        la, lb = run_steps(snap1, k1), run_steps(rtrl, k1)
        assert max_rel(la, lb) < 1e-10
        assert max_rel(snap1.theta, rtrl.theta) < 1e-10
    assert np.any(split_theta(rtrl.grad, V, 1)["bias_hh_l0"][2] != split_theta(rtrl.grad, V, 1)["bias_ih_l0"][2])


@pytest.mark.parametrize("k1", [1, 3])
def test_gru_gradient_is_rtrls_without_recurrent_weights(k1):
    """weight_hh_l0 = 0, lr = 0: D_t = diag(z) is diagonal per unit, so every gradient is rtrl's."""
    theta = without_recurrence(cell="gru")
    approx, exact = make("snap1", k1=k1, theta=theta, cell="gru"), make("rtrl", k1=k1, theta=theta, cell="gru")
    for _ in range(40 // k1):
        run_steps(approx, k1)
        run_steps(exact, k1)
        assert rel(approx.grad, exact.grad) < 1e-10
    assert np.any(split_theta(exact.grad, V, H)["weight_hh_l0"] != 0)


def test_gru_gradient_is_not_rtrls_with_recurrent_weights():
    approx, exact = make("snap1", cell="gru"), make("rtrl", cell="gru")
    run_steps(approx, 30)
    run_steps(exact, 30)
    n_cell = sensitivity_columns(V, H, "gru") + 2 * H  # with bias_hh_l0's tied r and z blocks
    assert rel(approx.grad[:n_cell], exact.grad[:n_cell]) > 1e-3
    assert rel(approx.grad[n_cell:], exact.grad[n_cell:]) < 1e-12  # the decoder's gradient is exact


def test_gru_training_loop_runs_and_learns():
    cfg = TrainConfig(scheme="snap1", cell="gru", k1=1, k2=1, hidden=8, lr=0.01, clip=0.0, budget_steps=1500,
                      log_every=500, eval_every=0, eval_chars=300)
    training = Training(cfg, tiny_corpus())
    training.compile()
    records = list(training.records())
    assert training.outcome.status == "complete" and records[-1].step == 1500
    assert all(np.isfinite(r.train_bpc) for r in records)
    assert records[-1].train_bpc < records[0].train_bpc - 0.1
    assert np.isfinite(records[-1].val_bpc)


def test_the_other_rules_refuse_the_gru_and_snap1_the_rnn():
    for rule in ("uoro", "eprop"):
        with pytest.raises(ConfigError, match="lstm cell only"):
            TrainConfig(scheme=rule, cell="gru", budget_steps=1)
    with pytest.raises(ConfigError, match="lstm and gru cell only"):
        TrainConfig(scheme="snap1", cell="rnn", budget_steps=1)
