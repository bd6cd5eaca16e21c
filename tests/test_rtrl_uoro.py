"""rtrl and uoro: the exact gradient against full backpropagation, the kernels against the reference,
uoro's unbiasedness by a statistical test, the sign stream, and the configuration rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpttbench import reference as ref
from bpttbench.config import TrainConfig
from bpttbench.errors import ConfigError
from bpttbench.model import init_theta, param_shapes, split_theta
from bpttbench.training.runner import expand_schemes
from bpttbench.schemes import REGISTRY, make_scheme
from bpttbench.schemes.rtrl import RTRL_MAX_BYTES, rtrl_bytes
from bpttbench.schemes.uoro import random_signs, rng_state, splitmix64
from bpttbench.training.loop import Training

from conftest import run_steps, synthetic_ids, tiny_corpus

V, H, B = 6, 5, 2
IDS = synthetic_ids(V, 600, seed=3)
NAMES = [name for name, _ in param_shapes(V, H)]
LSTM = NAMES[:4]


def make(scheme, *, k1=1, k2=5, batch=B, optimizer="sgd", lr=0.0, clip=0.0, dtype="float64", seed=1, theta=None):
    cfg = TrainConfig(scheme=scheme, k1=k1, k2=k2, hidden=H, batch=batch, optimizer=optimizer, lr=lr, clip=clip,
                      dtype=dtype, seed=seed, budget_steps=1)
    theta = init_theta(V, H, 1, dtype) if theta is None else theta.copy()
    return make_scheme(cfg, theta, V, IDS)


def flat(grads):
    return np.concatenate([grads[name].ravel() for name in NAMES])


def unflat(vector):
    return {name: view.copy() for name, view in split_theta(vector, V, H).items()}


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# ---------------------------------------------------------------- rtrl is exact


@pytest.mark.parametrize("k1", [1, 3])
def test_rtrl_gradient_equals_full_backpropagation_from_step_1(k1):
    """lr = 0: the gradient rtrl applies after step t is the full BPTT gradient, from step 1, of the
    mean of the k1 newest losses (float64, relative error < 1e-8)."""
    scheme = make("rtrl", k1=k1)
    p = unflat(scheme.theta.copy())
    h = c = np.zeros((B, H))
    caches = []
    for t in range(1, 31):
        x, y = ref.stream_inputs(IDS, B, t)
        (h, c), _, cache = ref.step(p, x, y, h, c)
        caches.append(cache)
        if t % k1:
            continue
        run_steps(scheme, k1)
        injected = [tau > t - k1 for tau in range(1, t + 1)]
        exact = flat(ref.backward_window(caches, [p] * t, injected, 1.0 / (k1 * B)))
        assert rel(scheme.grad, exact) < 1e-8, t
    # and it is not truncated: a 5-step window gives a visibly different gradient
    window = flat(ref.backward_window(caches[-5:], [p] * 5, [False] * (5 - k1) + [True] * k1, 1.0 / (k1 * B)))
    assert rel(window, exact) > 1e-3


@pytest.mark.parametrize("kind", ["rtrl", "uoro"])
@pytest.mark.parametrize("k1,optimizer,clip", [(1, "adam", 1.0), (3, "sgd", 0.0), (2, "adam", 0.05)])
def test_kernel_trajectory_matches_the_reference(kind, k1, optimizer, clip):
    n = 18
    lr = 0.05 if optimizer == "adam" else 0.5
    scheme = make(kind, k1=k1, optimizer=optimizer, lr=lr, clip=clip)
    p0 = unflat(scheme.theta.copy())
    losses = run_steps(scheme, n)
    ref_losses, ref_p = ref.train(kind, p0, IDS, batch=B, k1=k1, k2=5, n_steps=n, optimizer=optimizer, lr=lr, clip=clip,
                                  seed=1)
    assert np.max(np.abs(losses - ref_losses) / ref_losses) < 1e-10
    for name, view in split_theta(scheme.theta, V, H).items():
        assert np.max(np.abs(view - ref_p[name])) / np.max(np.abs(ref_p[name])) < 1e-10, name


# ---------------------------------------------------------------- uoro is unbiased


def test_uoro_mean_converges_to_the_rtrl_gradient():
    """N independent sign streams (seeds) from the same weights, lr = 0, T steps, one stream.

    Stated tolerance: per LSTM parameter the z-score of the mean against rtrl's gradient, using the
    sample standard deviation, has |z| < 5 everywhere and mean z^2 < 1.5 (about 1 if unbiased);
    the decoder's gradient needs no estimate and equals rtrl's to 1e-12. The same statistic
    against a truncated gradient (single, k2 = 3) exceeds 3, so the test can fail.
    """
    T, N = 30, 4000
    theta = init_theta(V, H, 1, "float64")
    exact = make("rtrl", batch=1, theta=theta)
    run_steps(exact, T)
    g = exact.grad.copy()
    samples = np.empty((N, g.size))
    for seed in range(N):
        est = make("uoro", batch=1, seed=seed, theta=theta)
        run_steps(est, T)
        samples[seed] = est.grad
    n_lstm = sum(np.prod(shape) for name, shape in param_shapes(V, H) if name in LSTM)
    mean, sd = samples.mean(axis=0), samples.std(axis=0, ddof=1)
    assert rel(mean[n_lstm:], g[n_lstm:]) < 1e-12
    varying = sd[:n_lstm] > 0
    assert varying.sum() > 0.8 * n_lstm

    def z(target):
        return (mean[:n_lstm] - target[:n_lstm])[varying] / (sd[:n_lstm][varying] / math.sqrt(N))

    assert np.abs(z(g)).max() < 5 and np.mean(z(g) ** 2) < 1.5
    assert np.all(mean[:n_lstm][~varying] == g[:n_lstm][~varying])
    truncated = make("single", k2=3, batch=1, theta=theta)
    run_steps(truncated, T)
    assert rel(truncated.grad, g) > 0.01
    assert np.mean(z(truncated.grad) ** 2) > 3
    # a single estimate is noisy: averaging is doing real work
    assert rel(samples[0], g) > 10 * rel(mean, g)


def test_signs_are_balanced_and_uncorrelated():
    """uoro is unbiased because E[nu nu^T] = I: 20000 draws of 8 signs have mean ~0 and covariance ~I."""
    state = rng_state(5)
    draws = np.empty((20000, 8))
    for i in range(len(draws)):
        random_signs(state, draws[i])
    assert set(np.unique(draws)) == {-1.0, 1.0}
    assert np.abs(draws.mean(axis=0)).max() < 0.03
    assert np.abs(draws.T @ draws / len(draws) - np.eye(8)).max() < 0.03


def test_sign_stream_is_the_references_splitmix64():
    stream, state = ref.SignStream(0), np.zeros(1, np.uint64)
    stream.state = 0
    outputs = [stream.next64() for _ in range(5)]
    assert outputs[0] == 0xE220A8397B1DCDAF  # Vigna's first output from state 0
    assert [int(splitmix64(state)) for _ in range(5)] == outputs
    signs = np.empty(150)  # more than two 64-bit draws
    random_signs(rng_state(7), signs)
    assert np.array_equal(signs, ref.SignStream(7).draw(150))


def test_uoro_is_deterministic_given_the_seed():
    a, b, c = (make("uoro", optimizer="adam", lr=0.05, seed=s) for s in (7, 7, 8))
    la, lb = run_steps(a, 40), run_steps(b, 40)
    run_steps(c, 40)
    assert np.array_equal(la, lb) and np.array_equal(a.theta, b.theta)
    assert not np.array_equal(a.theta, c.theta)


# ---------------------------------------------------------------- the scheme interface


@pytest.mark.parametrize("kind", ["rtrl", "uoro"])
def test_gradient_for_next_update_is_the_one_applied(kind):
    scheme = make(kind, k1=2, optimizer="sgd", lr=0.3)
    run_steps(scheme, 6)
    probe = scheme.gradient_for_next_update()
    before = scheme.theta.copy()
    run_steps(scheme, 2)
    assert np.array_equal(scheme.grad, probe)
    assert np.allclose(scheme.theta, before - 0.3 * probe, rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", ["rtrl", "uoro"])
def test_k2_is_not_used_and_steps_may_be_split(kind):
    a, b = make(kind, k1=2, k2=2, optimizer="adam", lr=0.05), make(kind, k1=2, k2=9, optimizer="adam", lr=0.05)
    la = run_steps(a, 20)
    lb = np.concatenate([run_steps(b, 3), run_steps(b, 8), run_steps(b, 9)])  # calls need not end on an update
    assert np.array_equal(la, lb) and np.array_equal(a.theta, b.theta)


@pytest.mark.parametrize("kind", ["rtrl", "uoro"])
def test_training_loop_runs_and_learns(kind):
    corpus = tiny_corpus()
    # Unclipped, as tuned: clipping uoro's high-variance estimates at norm 1 slows it past 1500 steps.
    cfg = TrainConfig(scheme=kind, k1=1, k2=1, hidden=8, lr=0.01, clip=0.0, budget_steps=1500, log_every=500,
                      eval_every=0, eval_chars=300)
    training = Training(cfg, corpus)
    training.compile()
    records = list(training.records())
    assert training.outcome.status == "complete" and records[-1].step == 1500
    assert records[-1].train_bpc < records[0].train_bpc - 0.1
    assert np.isfinite(records[-1].val_bpc)


def test_config_rules():
    assert {"rtrl", "uoro"} <= set(REGISTRY)
    assert "rtrl" not in expand_schemes(["all"]) and expand_schemes(["all", "uoro"])[-1] == "uoro"
    TrainConfig(scheme="rtrl", k1=30, k2=5, budget_steps=1)  # k2 is not used: k1 > k2 is fine
    for kind in ("rtrl", "uoro"):
        with pytest.raises(ConfigError, match="inject='new'"):
            TrainConfig(scheme=kind, inject="window", budget_steps=1)


def test_rtrl_refuses_sizes_that_do_not_fit():
    cfg = TrainConfig(scheme="rtrl", hidden=512, budget_steps=1)
    assert rtrl_bytes(65, 512, 1, "float32") > RTRL_MAX_BYTES
    with pytest.raises(ConfigError) as e:
        REGISTRY["rtrl"].check_fits(cfg, 65)
    message = str(e.value)
    assert "\n" not in message and "GiB" in message and "--hidden" in message
    fits = int(message.split("--hidden ")[1].split()[0])
    assert rtrl_bytes(65, fits, 1, "float32") <= RTRL_MAX_BYTES < rtrl_bytes(65, fits + 1, 1, "float32")
    REGISTRY["rtrl"].check_fits(cfg.replace(hidden=32), 65)
    REGISTRY["uoro"].check_fits(cfg.replace(scheme="uoro"), 65)  # uoro has no such limit
    with pytest.raises(ConfigError):
        make_scheme(cfg, init_theta(65, 512, 0, "float32"), 65, np.arange(65, dtype=np.int32).repeat(3))
