"""The budgeted training loop: budgets on a fake clock, records, determinism, a golden trajectory, bad configs."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest

from bpttbench.config import SCHEME_NAMES, TrainConfig
from bpttbench.errors import ConfigError
from bpttbench.training.loop import Training, train

from conftest import tiny_corpus


def fake_clock(tick=0.01):
    """Each reading is `tick` seconds after the previous one, whatever the machine's speed."""
    counter = itertools.count()
    return lambda: next(counter) * tick


def config(**kw):
    base = dict(scheme="single", k1=1, k2=4, hidden=6, optimizer="adam", lr=0.01, budget_steps=300,
                log_every=50, eval_every=100, eval_chars=100)
    base.update(kw)
    return TrainConfig(**base)


def run_records(cfg, corpus, clock=None):
    training = Training(cfg, corpus, clock=clock or fake_clock())
    return list(training.records()), training.outcome


def test_step_budget_records_and_outcome(corpus):
    records, outcome = run_records(config(), corpus)
    assert [r.step for r in records] == [50, 100, 150, 200, 250, 300]
    assert [r.val_bpc is not None for r in records] == [False, True, False, True, False, True]
    assert all(r.updates == r.step for r in records)  # k1 = 1
    assert outcome.status == "complete" and outcome.steps == 300
    assert outcome.final_val_bpc == records[-1].val_bpc
    assert all(np.isfinite(r.train_bpc) for r in records)
    assert np.all(np.diff([r.wall_s for r in records]) > 0)


def test_wall_clock_budget_stops_at_the_budget_on_a_fake_clock(corpus):
    """A simulated machine doing one step per millisecond: a 0.35 s budget is 350 steps, whatever the real machine."""
    cfg = config(budget_steps=None, budget_seconds=0.35, log_every=100)
    training = Training(cfg, corpus, clock=lambda: training.scheme.t * 1e-3)
    records = list(training.records())
    assert training.outcome.status == "complete"
    assert 0.35 <= training.outcome.wall_s < 0.35 + 0.06  # overshoot of at most one block
    assert [r.step for r in records][:3] == [100, 200, 300]
    assert records[-1].step == training.outcome.steps and records[-1].val_bpc is not None


def test_evaluation_time_is_kept_out_of_the_training_clock(corpus):
    records, outcome = run_records(config(), corpus)
    blocks_wall = outcome.wall_s
    assert outcome.eval_s == pytest.approx(0.01 * 3)  # three evaluations, one tick each
    assert records[-1].wall_s == pytest.approx(blocks_wall)


def test_k1_periods_are_never_split(corpus):
    records, outcome = run_records(config(scheme="sliding", k1=3, k2=6, budget_steps=100, log_every=10), corpus)
    assert all(r.step % 3 == 0 for r in records)
    assert outcome.steps == 99 and records[-1].updates == 33


def test_same_seed_same_numbers_and_other_seed_other_numbers(corpus):
    first, _ = run_records(config(), corpus)
    again, _ = run_records(config(), corpus)
    other, _ = run_records(config(seed=1), corpus)
    key = lambda records: [(r.step, r.updates, r.train_bpc, r.val_bpc) for r in records]
    assert key(first) == key(again)
    assert key(first) != key(other)


def test_records_do_not_depend_on_how_the_clock_cuts_blocks(corpus):
    """Block sizes follow the clock; the numbers must not (same seed, same numbers)."""
    cfg = config(log_every=64, budget_steps=640)
    slow, _ = run_records(cfg, corpus, clock=fake_clock(0.5))  # blocks stay at one step
    fast, _ = run_records(cfg, corpus, clock=fake_clock(1e-5))  # blocks grow to the log interval
    assert [(r.step, r.train_bpc, r.val_bpc) for r in slow] == [(r.step, r.train_bpc, r.val_bpc) for r in fast]


def test_every_scheme_starts_from_the_same_weights(corpus):
    thetas = [Training(config(scheme=s, k1=4 if s == "chunked" else 1), corpus).theta for s in ("chunked", "single", "stored", "sliding")]
    for theta in thetas[1:]:
        assert np.array_equal(theta, thetas[0])


def test_untrained_validation_loss_is_close_to_uniform():
    corpus = tiny_corpus(vocab_size=30, n=20000)
    training = Training(config(hidden=32, eval_chars=1000), corpus)
    assert training.validation_bpc() == pytest.approx(math.log2(30), rel=0.01)


def test_divergence_is_recorded_with_its_step(corpus):
    cfg = config(dtype="float32", optimizer="sgd", lr=1e37, budget_steps=500)
    records, outcome = run_records(cfg, corpus)
    assert outcome.status == "diverged"
    assert 0 < outcome.diverged_at_step < 500
    assert all(np.isfinite(r.train_bpc) for r in records)


def test_training_learns_the_synthetic_structure(corpus):
    cfg = config(budget_steps=3000, log_every=500, hidden=16, lr=0.01)
    records, _ = run_records(cfg, corpus)
    assert records[-1].train_bpc < records[0].train_bpc - 0.3


def compiled_signatures() -> dict[str, int]:
    """How many specialisations each of bpttbench's Numba dispatchers holds now."""
    import importlib
    import pkgutil

    from numba.core.dispatcher import Dispatcher

    import bpttbench.kernels
    import bpttbench.schemes

    counts = {}
    for package in (bpttbench.kernels, bpttbench.schemes):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if isinstance(obj, Dispatcher) and obj.__module__ == info.name:
                    counts[f"{info.name}.{name}"] = len(obj.signatures)
    return counts


NO_COMPILE_CASES = [
    dict(scheme=scheme, dtype=dtype, optimizer=optimizer, clip=clip, batch=batch)
    for scheme in SCHEME_NAMES  # every registered scheme, so a new one is covered the day it lands
    for dtype in ("float32", "float64")
    for optimizer, clip in (("adam", 1.0), ("sgd", 0.0))
    for batch in (1, 3)
] + [dict(scheme="single", k2=1, hidden=1), dict(scheme="sliding", k1=2, k2=2, batch=2, hidden=2)]


@pytest.mark.parametrize("case", NO_COMPILE_CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_nothing_compiles_once_the_clock_runs(corpus, case):
    """compile() must leave the budgeted loop nothing to compile: on a cold cache that time would
    land on the training clock (a corpus's ids are read-only, and Numba types them apart)."""
    settings = dict(k1=4 if case["scheme"] in ("chunked", "adaptive") else 1, k2=4, hidden=4, budget_steps=40, log_every=20,
                    eval_every=20, eval_chars=50, lr=0.01)
    cfg = config(**{**settings, **case})
    assert not corpus.train_ids.flags.writeable  # as every real corpus's
    training = Training(cfg, corpus, clock=fake_clock())
    training.compile()
    before = compiled_signatures()
    assert before, "no Numba dispatchers found: the test would pass vacuously"
    records = list(training.records())
    assert training.outcome.status == "complete" and records[-1].step == 40
    grown = {name: (before.get(name, 0), n) for name, n in compiled_signatures().items() if n > before.get(name, 0)}
    assert not grown, f"compiled on the clock (before, after): {grown}"


def test_train_generator_yields_every_log_point(corpus):
    records = list(train(config(budget_steps=100), corpus))
    assert [r.step for r in records] == [50, 100]


# First ten online losses (nats) of a fixed tiny run: catches any silent change in the numerics.
GOLDEN = [
    1.7866491918, 1.9029634883, 1.9467620397, 1.7522195863, 2.0510949496,
    2.3791574915, 2.5718226136, 1.8045582329, 1.8308127213, 2.3651068117,
]


def golden_losses():
    from bpttbench.model import init_theta
    from bpttbench.schemes import make_scheme

    corpus = tiny_corpus()
    cfg = config(scheme="single", k1=1, k2=3, hidden=8, dtype="float64", lr=0.05, clip=0.0)
    scheme = make_scheme(cfg, init_theta(corpus.vocab_size, 8, 0, "float64"), corpus.vocab_size, corpus.train_ids)
    losses = np.zeros(10)
    scheme.run(10, losses)
    return losses


def test_golden_trajectory():
    np.testing.assert_allclose(golden_losses(), GOLDEN, rtol=1e-9)


@pytest.mark.parametrize("changes,message", [
    (dict(k1=5, k2=4), "larger than k2"),
    (dict(k2=0), "k2 must be at least 1"),
    (dict(k1=0), "k1 must be at least 1"),
    (dict(scheme="chunked", k1=2, k2=4), "chunked needs k1 == k2"),
    (dict(scheme="bogus"), "unknown scheme"),
    (dict(budget_steps=0), "step budget"),
    (dict(budget_steps=None, budget_seconds=0), "time budget"),
    (dict(budget_steps=None, budget_seconds=-5.0), "time budget"),
    (dict(budget_steps=None), "no budget"),
    (dict(lr=float("nan")), "learning rate"),
    (dict(lr=-1.0), "learning rate"),
    (dict(hidden=0), "hidden"),
    (dict(batch=0), "batch"),
    (dict(inject="all"), "inject"),
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(dtype="float16"), "dtype"),
    (dict(clip=-1.0), "clip"),
    (dict(k2=2.5), "whole number"),
])
def test_invalid_configurations_raise_clear_errors(changes, message):
    with pytest.raises(ConfigError, match=message) as info:
        config(**changes)
    assert "\n" not in str(info.value)


def test_config_round_trips_through_a_dict():
    cfg = config(scheme="stored", k1=2, k2=7, clip=1.5, budget_seconds=3.0, budget_steps=None)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown configuration key"):
        TrainConfig.from_dict({**cfg.to_dict(), "colour": "red"})


def test_an_interruption_while_compiling_takes_effect_after_the_compile():
    import os
    import signal

    from bpttbench.training.loop import interruptions_held

    order = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: order.append("handled"))
    try:
        with interruptions_held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # ample time for a delivered signal's handler to have run
            order.append("compiled")
        order.append("after")
        os.kill(os.getpid(), signal.SIGTERM)  # and outside it, at once
        time.sleep(0.05)
        order.append("end")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert order == ["compiled", "handled", "after", "handled", "end"]
