"""gradcheck: its three gradients against the NumPy reference, the identities they obey, and a check with teeth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bpttbench.fidelity import gradcheck as checker, gradients as fidelity
from bpttbench import reference as ref
from bpttbench.config import TrainConfig
from bpttbench.errors import ConfigError, ResultsError
from bpttbench.fidelity.gradients import FD_TOLERANCE, metric_rows
from bpttbench.fidelity.gradcheck import COLUMNS, Follower, GradientCheckError, gradcheck
from bpttbench.model import init_theta, param_shapes, split_theta

from conftest import central_differences, synthetic_ids, tiny_corpus

V, H, B = 6, 5, 2
IDS = synthetic_ids(V, 600, seed=3)


def config(scheme="single", k1=1, k2=5, *, optimizer="adam", lr=0.05, clip=1.0, dtype="float64", batch=B, seed=1):
    return TrainConfig(scheme=scheme, k1=k1, k2=k2, hidden=H, batch=batch, optimizer=optimizer, lr=lr, clip=clip,
                       dtype=dtype, seed=seed, budget_steps=1)


def flat(grads: dict) -> np.ndarray:
    return np.concatenate([grads[name].ravel() for name, _ in param_shapes(V, H)])


def rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


class RefTrajectory:
    """single or stored written literally with the reference's lists of caches, states and past weights."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.p = {k: v.copy() for k, v in split_theta(init_theta(V, H, cfg.seed, "float64"), V, H).items()}
        self.opt = ref.Optimizer(self.p, cfg.optimizer, cfg.lr, cfg.clip)
        zero = np.zeros((B, H))
        self.states, self.caches, self.weights_used = {0: (zero, zero)}, {}, {}
        self.t = 0

    def window(self, t):
        k1, k2 = self.cfg.k1, self.cfg.k2
        steps = list(range(max(1, t - k2 + 1), t + 1))
        return steps, [tau > t - k1 for tau in steps]

    def forward(self, t, states, caches, weights_used):
        weights_used[t] = {k: v.copy() for k, v in self.p.items()}
        states[t], _, caches[t] = ref.step(self.p, *ref.stream_inputs(IDS, B, t), *states[t - 1])

    def advance_to(self, t_end):
        while self.t < t_end:
            self.t += 1
            t = self.t
            self.forward(t, self.states, self.caches, self.weights_used)
            if t % self.cfg.k1 == 0:
                steps, injected = self.window(t)
                weights = [self.weights_used[tau] if self.cfg.scheme == "stored" else self.p for tau in steps]
                grads = ref.backward_window([self.caches[tau] for tau in steps], weights, injected, 1 / (sum(injected) * B))
                self.p = self.opt.step(self.p, grads)

    def next_update_gradients(self):
        """(single, stored, exact, window loss of theta, theta) of the update after step t + k1."""
        states, caches, used = dict(self.states), dict(self.caches), dict(self.weights_used)
        t_next = self.t + self.cfg.k1
        for t in range(self.t + 1, t_next + 1):
            self.forward(t, states, caches, used)
        steps, injected = self.window(t_next)
        scale = 1 / (sum(injected) * B)
        window = [caches[tau] for tau in steps]
        single = ref.backward_window(window, [self.p] * len(steps), injected, scale)
        stored = ref.backward_window(window, [used[tau] for tau in steps], injected, scale)
        h, c = h0, c0 = states[steps[0] - 1]
        recomputed = []
        for tau in steps:
            (h, c), _, cache = ref.step(self.p, *ref.stream_inputs(IDS, B, tau), h, c)
            recomputed.append(cache)
        exact = ref.backward_window(recomputed, [self.p] * len(steps), injected, scale)
        xs, ys = zip(*(ref.stream_inputs(IDS, B, tau) for tau in steps))

        def loss(theta):
            return ref.window_loss(split_theta(theta, V, H), xs, ys, h0, c0, injected)

        return flat(single), flat(stored), flat(exact), loss, flat(self.p)


# Checkpoints 4 and 7 are closer than k2 (the period-by-period stepping carries on), 9 and 20 are
# reached through one scheme.run call first; with k1 = 2 they are update counts (steps 8, 14, ...).
CHECKPOINTS = [4, 7, 9, 20]


@pytest.mark.parametrize("scheme", ["single", "stored"])
@pytest.mark.parametrize("k1,k2", [(1, 5), (2, 5)])
def test_gradients_match_the_reference(scheme, k1, k2):
    cfg = config(scheme, k1, k2)
    follower = Follower(cfg, IDS, V)
    reference = RefTrajectory(cfg)
    seen = 0
    for cp in follower.checkpoints(CHECKPOINTS):
        reference.advance_to(cp.step)
        single, stored, exact, loss, theta = reference.next_update_gradients()
        g = cp.gradients
        assert rel(g.theta, theta) < 1e-10  # the same trajectory
        assert rel(g.single, single) < 1e-9
        assert rel(g.stored, stored) < 1e-9
        assert rel(g.exact, exact) < 1e-9
        # the scheme itself applies one of them at its next update
        applied = cp.scheme.gradient_for_next_update()
        assert rel(g.single if scheme == "single" else g.stored, applied) < 1e-12
        # and the exact one is the gradient of the window loss, by finite differences of the reference
        assert rel(g.exact, central_differences(loss, theta.copy())) < 1e-6
        seen += 1
    assert seen == len(CHECKPOINTS)


def test_learning_rate_zero_makes_all_three_agree():
    # No weight ever changes: past weights are the current ones, and recomputing the window from its
    # stored starting state reproduces the stored activations.
    for cp in Follower(config(lr=0.0, k2=6), IDS, V).checkpoints([3, 12]):
        g = cp.gradients
        assert np.array_equal(g.single, g.stored)
        assert rel(g.single, g.exact) < 1e-12
        assert g.drift == 0.0


@pytest.mark.parametrize("k1,k2", [(1, 1), (4, 4)])
def test_windows_forwarded_with_the_current_weights_agree(k1, k2):
    # k2 = 1, or k1 = k2: every step of the window is forwarded after the last update, so the three coincide
    for cp in Follower(config(k1=k1, k2=k2, lr=0.2), IDS, V).checkpoints([5, 11]):
        g = cp.gradients
        assert rel(g.single, g.exact) < 1e-12
        assert rel(g.stored, g.exact) < 1e-12


def test_moving_weights_separate_single_and_stored_from_exact():
    for cp in Follower(config(lr=0.05, k2=5), IDS, V).checkpoints([10, 30]):
        g = cp.gradients
        assert g.drift > 0
        assert rel(g.single, g.exact) > 1e-3
        assert rel(g.stored, g.exact) > 1e-3
        assert rel(g.single, g.stored) > 1e-6


def test_following_rtrl_measures_truncation_against_its_untruncated_gradient():
    # lr = 0: rtrl's gradient is full BPTT from step 1. A window reaching back to step 1 is all of
    # it (exact == rtrl); a 3-step window is not, and that bias is what the _vs_rtrl rows report.
    for cp in Follower(config("rtrl", k2=40, lr=0.0), IDS, V).checkpoints([6, 20]):
        assert cp.gradients.window.first == 1
        assert rel(cp.gradients.exact, cp.gradients.rtrl) < 1e-10
    for cp in Follower(config("rtrl", k2=3, lr=0.0), IDS, V).checkpoints([12, 20]):
        g = cp.gradients
        assert rel(g.exact, g.rtrl) > 1e-4
        assert np.array_equal(g.single, g.stored)
        rows = {(r["estimator"], r["tensor"]): r for r in metric_rows(g, V, H, None)}
        assert rows[("exact_vs_rtrl", "all")]["rel_error"] == pytest.approx(rel(g.exact, g.rtrl))
        assert ("single_vs_rtrl", "all") in rows and ("stored_vs_rtrl", "all") in rows
    # single and uoro trajectories have no rtrl gradient to compare with
    for scheme in ("single", "uoro"):
        cp = next(Follower(config(scheme, k2=3), IDS, V).checkpoints([5]))
        assert cp.gradients.rtrl is None and cp.step == 5
        assert not any(r["estimator"].endswith("_vs_rtrl") for r in metric_rows(cp.gradients, V, H, None))


def test_stored_weights_are_those_of_each_step():
    """Following `stored`, the past weights kept by gradcheck are the scheme's own snapshots."""
    follower = Follower(config("stored", k1=1, k2=5, lr=0.1), IDS, V)
    cp = next(follower.checkpoints([9]))
    scheme = cp.scheme
    for tau in range(cp.gradients.window.first, scheme.t + 1):
        W_hh, W_dec = cp.past_weights[tau - 1]
        assert np.array_equal(W_hh, scheme.W_hh_snapshots[tau % 5])
        assert np.array_equal(W_dec, scheme.W_dec_snapshots[tau % 5])


# ----------------------------------------------------------------------------- gradcheck end to end


def small_check(tmp_path=None, **kw):
    # Unclipped, so the learning rate alone sets how far the weights move between checkpoints.
    args = dict(k2s=(3, 8), lrs=(0.01, 0.1), hidden=5, batch=1, steps=200, every=50, n_fd=12, seed=2, clip=0.0)
    args.update(kw)
    return gradcheck(tiny_corpus(), out_dir=tmp_path, **args)


def test_gradcheck_writes_tidy_rows_figures_and_a_manifest(tmp_path):
    out = tmp_path / "check"
    result = small_check(out)
    data = result.data
    assert tuple(data.columns) == COLUMNS
    n_rows_per_checkpoint = 3 * 6 + 6  # single, stored, single_vs_stored on 6 tensors; exact_vs_fd on 6
    assert len(data) == 4 * 4 * n_rows_per_checkpoint  # 2 k2 x 2 lr trajectories x 4 checkpoints
    assert set(data["estimator"]) == set(fidelity.WINDOW_ESTIMATORS)  # no *_vs_rtrl rows off an rtrl trajectory
    assert result.fd_checked and result.fd_passed and result.fd_worst < FD_TOLERANCE
    result.raise_if_failed()
    on_disk = pd.read_csv(out / "gradcheck.csv")
    assert len(on_disk) == len(data) and tuple(on_disk.columns) == COLUMNS
    for name in ("gradcheck_error_vs_step", "gradcheck_error_vs_k2"):
        for fmt in ("png", "svg"):
            assert (out / f"{name}.{fmt}").stat().st_size > 1000
    assert "single vs exact" in (out / "gradcheck_error_vs_step.svg").read_text()
    manifest = json.loads((out / "gradcheck.json").read_text())
    assert manifest["status"] == "complete" and manifest["fd_passed"] is True
    assert manifest["settings"]["k2s"] == [3, 8] and len(manifest["trajectories"]) == 4
    assert "cpu" in manifest["machine"]


def test_following_rtrl_draws_its_rows_and_completes_the_manifest(tmp_path):
    out = tmp_path / "rtrl"
    result = small_check(out, scheme="rtrl", k2s=(3,), lrs=(0.05,), steps=100, n_fd=0)
    assert set(result.data["estimator"]) == set(fidelity.ESTIMATORS) - {"exact_vs_fd"}
    for stem in checker.FIGURE_STEMS:
        svg = (out / f"{stem}.svg").read_text()
        for estimator in fidelity.RTRL_ESTIMATORS:
            assert checker.ESTIMATOR_STYLE[estimator][2] in svg, (stem, estimator)
    manifest = json.loads((out / checker.MANIFEST_NAME).read_text())
    assert manifest["status"] == "complete" and manifest["finished_at"] is not None


def test_the_library_and_the_command_clip_alike(tmp_path):
    from bpttbench import defaults
    from bpttbench.cli import gradcheck as command

    (clip,) = [p.default for p in command.params if p.name == "clip"]
    gradcheck(tiny_corpus(), k2s=(3,), lrs=(0.1,), hidden=3, steps=20, every=10, n_fd=0, out_dir=tmp_path, formats=())
    recorded = json.loads((tmp_path / checker.MANIFEST_NAME).read_text())["settings"]["clip"]
    assert clip == recorded == defaults.GRADCHECK_CLIP


def test_error_and_drift_grow_with_the_learning_rate():
    summary = small_check().summary()
    for k2 in (3, 8):
        for estimator in ("single", "stored"):
            rows = summary[(summary["k2"] == k2) & (summary["estimator"] == estimator)].set_index("lr")
            assert rows.loc[0.1, "drift_median"] > rows.loc[0.01, "drift_median"] > 0
            assert rows.loc[0.1, "rel_error_median"] > rows.loc[0.01, "rel_error_median"] > 1e-6


@pytest.mark.parametrize("factor,passes", [(1 + 1e-8, True), (1 + 1e-5, False), (np.nan, False)])
def test_finite_differences_catch_a_wrong_exact_gradient(monkeypatch, tmp_path, factor, passes):
    honest = fidelity.exact_gradient
    monkeypatch.setattr(checker, "exact_gradient", lambda *a, **kw: honest(*a, **kw) * factor)
    result = small_check(tmp_path / "out", k2s=(4,), lrs=(0.05,))
    assert result.fd_passed is passes
    manifest = json.loads((tmp_path / "out" / "gradcheck.json").read_text())
    assert manifest["fd_passed"] is passes
    if passes:
        result.raise_if_failed()
    else:
        with pytest.raises(GradientCheckError, match="finite differences"):
            result.raise_if_failed()


def test_float32_trajectory_is_checked_in_float64():
    result = small_check(k2s=(4,), lrs=(0.0, 0.05), dtype="float32")
    assert result.fd_passed
    at_rest = result.data[(result.data["lr"] == 0.0) & (result.data["estimator"] == "single")]
    assert at_rest["rel_error"].max() < 1e-5  # float32 rounding, nothing else


def test_a_diverging_trajectory_is_reported_not_raised():
    result = small_check(k2s=(4,), lrs=(1e300,), optimizer="sgd", clip=0.0)
    (info,) = result.trajectories
    assert info["status"] == "diverged" and info["diverged_at_step"] is not None
    assert not result.fd_checked
    with pytest.raises(GradientCheckError, match="never ran"):
        result.raise_if_failed()


def test_skipping_finite_differences_is_not_a_failure():
    result = small_check(k2s=(4,), lrs=(0.05,), n_fd=0)
    assert not result.fd_checked and "exact_vs_fd" not in set(result.data["estimator"])
    result.raise_if_failed()


@pytest.mark.parametrize("kw,match", [
    (dict(scheme="sliding"), "single, stored, rtrl, snap1, eprop or uoro"),
    (dict(every=1000), "no checkpoint"),
    (dict(k2s=(0,)), "k2 must be at least 1"),
    (dict(n_fd=-1), "fd-weights"),
])
def test_bad_settings_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        small_check(**kw)


def test_an_occupied_out_dir_needs_force(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(ResultsError, match="--force"):
        small_check(tmp_path, k2s=(4,), lrs=(0.05,), steps=50)
    small_check(tmp_path, k2s=(4,), lrs=(0.05,), steps=50, force=True)
    assert not (tmp_path / "old.txt").exists() and (tmp_path / "gradcheck.csv").exists()


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_every_cell_passes_the_finite_difference_check_and_names_its_tensors(tmp_path, cell):
    result = small_check(tmp_path / "out", k2s=(4,), lrs=(0.05,), cell=cell)
    assert result.fd_checked and result.fd_passed
    result.raise_if_failed()
    tensors = set(result.data["tensor"])
    assert {"weight_ih_l0", "weight_hh_l0", "decoder.weight"} <= tensors
    assert ("bias_hh_l0" in tensors) == (cell == "gru")  # the GRU's differs from bias_ih_l0's
