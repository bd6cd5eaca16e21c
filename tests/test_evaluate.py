"""Validation in parallel streams: the plan covers the split once, and the kernel equals the reference."""

from __future__ import annotations

import numpy as np
import pytest

from bpttbench import reference
from bpttbench.config import TrainConfig
from bpttbench.kernels.evaluate import evaluate_streams, stream_plan, stream_scratch
from bpttbench.model import init_theta, split_theta
from bpttbench.training.loop import Training

from conftest import synthetic_ids, tiny_corpus


@pytest.mark.parametrize("n,streams,burn_in,min_scored", [(2, 4, 8, 1), (10, 4, 8, 1), (1000, 7, 16, 10),
                                                          (1001, 256, 64, 256), (170_000, 256, 64, 256)])
def test_the_plan_scores_every_prediction_after_the_burn_in_once(n, streams, burn_in, min_scored):
    starts, lengths, burn = stream_plan(n, max_streams=streams, burn_in=burn_in, min_scored=min_scored)
    assert 1 <= len(starts) <= streams and burn <= burn_in
    scored = np.concatenate([np.arange(s + burn, s + burn + n) for s, n in zip(starts, lengths)])
    assert np.array_equal(scored, np.arange(burn, n - 1))  # every input q >= burn, in order, once
    assert (starts >= 0).all() and lengths.max() - lengths.min() <= 1
    assert scored.size >= (n - 1) // 2


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("n,streams", [(600, 5), (97, 1)])
def test_kernel_equals_each_stream_read_alone(dtype, tol, n, streams):
    V, H = 9, 6
    ids = synthetic_ids(V, n, seed=3)
    theta = init_theta(V, H, 4, dtype) * 3  # larger weights: states that differ from zero
    starts, lengths, burn = stream_plan(n, max_streams=streams, burn_in=11, min_scored=20)
    total, count = evaluate_streams(theta, V, H, ids, starts, lengths, burn, stream_scratch(len(starts), H, V, np.dtype(dtype)))
    p = {k: v.astype(np.float64) for k, v in split_theta(theta, V, H).items()}
    want, want_count = reference.evaluate_streams(p, ids, starts, lengths, burn)
    assert count == want_count == n - 1 - burn
    assert abs(total - want) <= tol * abs(want)


def test_validation_reads_the_whole_split_by_default():
    corpus = tiny_corpus(n=40_000)
    training = Training(TrainConfig(hidden=4, budget_steps=10), corpus)
    starts, lengths, burn = training.val_plan
    assert len(training.val_ids) == corpus.n_val and lengths.sum() == corpus.n_val - 1 - burn
    assert len(starts) > 1  # parallel streams, not one
    p = split_theta(training.theta, corpus.vocab_size, 4)
    p = {k: v.astype(np.float64) for k, v in p.items()}
    total, count = reference.evaluate_streams(p, np.asarray(corpus.val_ids), starts, lengths, burn)
    assert training.validation_bpc() == pytest.approx(total / count / np.log(2), rel=1e-5)


def test_eval_chars_reads_only_the_start_of_the_split():
    corpus = tiny_corpus(n=40_000)
    training = Training(TrainConfig(hidden=4, budget_steps=10, eval_chars=500), corpus)
    assert len(training.val_ids) == 501 and np.array_equal(training.val_ids, corpus.val_ids[:501])
