"""gradcheck's online rules against rtrl: shadows that follow the trajectory's weights, and their rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bpttbench.fidelity import gradcheck as checker, gradients as fidelity
from bpttbench.config import TrainConfig
from bpttbench.fidelity.gradients import ONLINE_ESTIMATORS, TENSORS, metric_rows
from bpttbench.fidelity.gradcheck import Follower, gradcheck
from bpttbench.kernels.network import param_views
from bpttbench.model import init_theta

from conftest import synthetic_ids, tiny_corpus

V, B = 6, 2
IDS = synthetic_ids(V, 600, seed=5)


def config(scheme="rtrl", hidden=4, *, lr=0.05, optimizer="adam", k2=4):
    return TrainConfig(scheme=scheme, k1=1, k2=k2, hidden=hidden, batch=B, optimizer=optimizer, lr=lr, clip=1.0,
                       dtype="float64", seed=1, budget_steps=1)


def rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("followed", ["rtrl", "snap1"])
def test_snap1_is_rtrl_at_one_unit_along_a_moving_trajectory(followed):
    # lr > 0: the weights move, so a shadow that kept its own (initial) weights would disagree.
    follower = Follower(config(followed, hidden=1, lr=0.1), IDS, V)
    seen = 0
    for cp in follower.checkpoints([5, 40, 120]):
        g = cp.gradients
        assert g.rtrl is not None and set(g.online) == {"snap1", "eprop", "uoro"}
        assert rel(g.online["snap1"], g.rtrl) < 1e-10
        assert rel(g.online["eprop"], g.rtrl) > 1e-6  # e-prop drops the h_{t-1} path even at one unit
        seen += 1
    assert seen == 3 and cp.gradients.drift > 0


def test_shadows_hold_the_followed_weights_and_never_move_them():
    follower = Follower(config("rtrl", lr=0.1), IDS, V)
    next(follower.checkpoints([30]))
    assert set(follower.shadows.schemes) == {"snap1", "eprop", "uoro"}
    for shadow in follower.shadows.schemes.values():
        assert np.array_equal(shadow.theta, follower.scheme.theta)
        assert shadow.t == follower.scheme.t and shadow.lr == 0.0
    assert not Follower(config("single"), IDS, V).shadows  # a truncated scheme is followed alone


def test_without_recurrent_weights_snap1_and_eprop_are_rtrl():
    theta = init_theta(V, 4, 1, "float64")
    param_views(theta, V, 4)[1][:] = 0.0  # W_hh = 0, kept there by lr = 0
    for cp in Follower(config("rtrl", lr=0.0), IDS, V, theta=theta).checkpoints([10, 60]):
        g = cp.gradients
        rows = {(r["estimator"], r["tensor"]): r for r in metric_rows(g, V, 4, None)}
        for rule in ("snap1", "eprop"):
            assert rel(g.online[rule], g.rtrl) < 1e-10
            assert rows[(f"{rule}_vs_rtrl", "all")]["cosine"] == pytest.approx(1.0, abs=1e-12)
            assert rows[(f"{rule}_vs_rtrl", "weight_ih_l0")]["cosine"] == pytest.approx(1.0, abs=1e-12)
        assert rows[("uoro_vs_rtrl", "weight_ih_l0")]["rel_error"] > 1e-3  # a random projection is not exact


def test_following_eprop_compares_it_with_a_shadow_rtrl():
    cp = next(Follower(config("eprop", lr=0.05), IDS, V).checkpoints([20]))
    g = cp.gradients
    assert set(g.online) == {"snap1", "eprop", "uoro"}
    assert np.array_equal(g.online["eprop"], cp.scheme.gradient_for_next_update())
    estimators = {r["estimator"] for r in metric_rows(g, V, 4, None)}
    assert set(ONLINE_ESTIMATORS) | {"exact_vs_rtrl"} <= estimators


def test_gradcheck_writes_a_row_per_rule_and_tensor(tmp_path):
    out = tmp_path / "online"
    result = gradcheck(tiny_corpus(), scheme="rtrl", k2s=(3, 6), lrs=(0.05,), hidden=3, batch=1, steps=120, every=40,
                       n_fd=0, seed=2, out_dir=out)
    data = pd.read_csv(out / checker.CSV_NAME)
    assert len(data) == len(result.data)
    for estimator in ONLINE_ESTIMATORS:
        rows = data[data["estimator"] == estimator]
        assert sorted(rows["tensor"].unique()) == sorted(TENSORS)
        assert len(rows) == 2 * 3 * len(TENSORS)  # 2 trajectories x 3 checkpoints
        assert np.isfinite(rows[["cosine", "rel_error"]].to_numpy()).all()
        assert ((rows["cosine"] >= -1 - 1e-12) & (rows["cosine"] <= 1 + 1e-12)).all()
    summary = result.summary().set_index(["k2", "estimator"])
    assert summary.loc[(3, "uoro_vs_rtrl"), "checkpoints"] == 3
    # the rules do not look at k2: the same trajectory seed gives them the same gradients at either k2
    for estimator in ONLINE_ESTIMATORS:
        assert summary.loc[(3, estimator), "cosine_median"] == pytest.approx(summary.loc[(6, estimator), "cosine_median"])
    manifest = json.loads((out / checker.MANIFEST_NAME).read_text())
    assert manifest["status"] == "complete"
    assert {r["estimator"] for r in manifest["summary"]} >= set(ONLINE_ESTIMATORS)
    for stem in checker.FIGURE_STEMS:
        svg = (out / f"{stem}.svg").read_text()
        for estimator in ONLINE_ESTIMATORS:
            assert checker.ESTIMATOR_STYLE[estimator][2] in svg, (stem, estimator)


def test_every_online_estimator_has_its_scheme_colour():
    from bpttbench import defaults

    for rule in fidelity.RTRL_APPROXIMATIONS:
        assert checker.ESTIMATOR_STYLE[f"{rule}_vs_rtrl"][0] == defaults.SCHEME_COLORS[rule]
    assert set(checker.ESTIMATOR_STYLE) == set(fidelity.ESTIMATORS)
