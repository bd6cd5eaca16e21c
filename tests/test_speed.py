"""The speed work, for correctness only (timings belong in benchmarks/): measure_speed's rows,
the lower-bound kernels, the peers' columns. (The peers' trajectories are checked in test_peers.py,
the fused SGD path and the GEMM in test_kernels.py, alignment in test_contract.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bpttbench.config import TRUNCATED_SCHEMES, TrainConfig
from bpttbench.errors import UserError
from bpttbench.model import init_theta
from bpttbench.schemes import make_scheme
from bpttbench.speed import (COLUMNS, BoundTimer, bound_us, measure_speed, speed_targets, strongest_peer,
                             write_speed)
from bpttbench.speed_bounds import OptimizerBoundTimer

from conftest import invoke, synthetic_ids, skip_without_jax

V, H, B = 6, 5, 2
IDS = synthetic_ids(V, 600, seed=3)
SCHEMES = ("chunked", "single", "stored", "sliding")


def make(scheme, k1, k2, *, dtype="float64", batch=B, lr=0.3, keep_gradient=False, optimizer="sgd", clip=0.0):
    cfg = TrainConfig(scheme=scheme, k1=k1, k2=k2, hidden=H, batch=batch, optimizer=optimizer, lr=lr, clip=clip,
                      dtype=dtype, seed=1, budget_steps=1)
    scheme = make_scheme(cfg, init_theta(V, H, 1, dtype), V, IDS)
    scheme.keep_gradient = keep_gradient
    return scheme


# ----------------------------------------------------------------------------- measure_speed


def test_measure_speed_returns_one_row_per_configuration_with_every_column():
    df = measure_speed(SCHEMES, hidden=(8,), k2=(3, 4), batch=(1,), vocab_size=7, repeats=2, min_time=0.002)
    assert list(df.columns) == COLUMNS
    assert len(df) == 8
    assert set(df["scheme"]) == set(SCHEMES)
    assert (df[df["scheme"] == "chunked"]["k1"] == df[df["scheme"] == "chunked"]["k2"]).all()
    assert (df[df["scheme"] != "chunked"]["k1"] == 1).all()
    for column in ("us_per_step", "bound_us", "ratio", "wall_us_per_step", "adam_us_per_step", "resident_bytes",
                   "peak_bytes"):
        assert (df[column] > 0).all(), column
    assert np.allclose(df["ratio"], df["us_per_step"] / df["bound_us"])
    assert np.allclose(df["steps_per_s"], 1e6 / df["us_per_step"])
    assert (df["optimizer_bound_us"] > 0).all()
    assert np.allclose(df["adam_ratio"], df["adam_us_per_step"] / df["us_per_step"])
    assert np.allclose(df["adam_extra_over_bound"], df["adam_extra_us"] / df["optimizer_bound_us"])
    assert df[["torch_us_per_step", "jax_us_per_step", "peer_us_per_step", "peer_speedup"]].isna().all().all()
    assert df["peer"].isna().all()
    stored, single = (df[(df["scheme"] == s) & (df["k2"] == 4)].iloc[0] for s in ("stored", "single"))
    assert stored["resident_bytes"] - single["resident_bytes"] == 4 * (4 * 8 * 8 + 7 * 8) * 4


def test_rtrl_and_uoro_are_timed_when_named_without_a_bound():
    df = measure_speed(["rtrl", "uoro", "single"], hidden=(4,), k2=(3,), vocab_size=5, repeats=2, min_time=0.002)
    online = df[df["scheme"].isin(["rtrl", "uoro"])]
    assert len(online) == 2 and (online["us_per_step"] > 0).all() and (online["adam_us_per_step"] > 0).all()
    assert online["bound_us"].isna().all() and online["ratio"].isna().all()
    assert (df[df["scheme"] == "single"]["bound_us"] > 0).all()
    with pytest.raises(UserError, match="rtrl at hidden=4096"):
        measure_speed(["rtrl"], hidden=(4096,), repeats=1)


def test_measure_speed_refuses_unknown_schemes_and_bad_repeats():
    with pytest.raises(UserError, match="unknown scheme"):
        measure_speed(["bogus"], hidden=(4,), repeats=1)
    with pytest.raises(UserError, match="repeats"):
        measure_speed(["single"], hidden=(4,), repeats=0)


def test_write_speed_writes_csv_json_and_figure(tmp_path):
    df = measure_speed(["single", "stored"], hidden=(4, 8), k2=(2, 3, 4), vocab_size=5, repeats=1, min_time=0.001,
                       adam=False)
    paths = write_speed(df, tmp_path / "speed", parameters={"repeats": 1})
    assert [p.name for p in paths] == ["speed.csv", "speed.json", "speed.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    import json

    import pandas as pd

    assert len(pd.read_csv(paths[0])) == len(df)
    meta = json.loads(paths[1].read_text())
    assert meta["parameters"] == {"repeats": 1} and "cpu" in meta["machine"]


def test_speed_targets_read_the_rows():
    import pandas as pd

    rows = []
    for scheme, us, bound in (("single", 100.0, 90.0), ("sliding", 200.0, 150.0), ("stored", 105.0, 95.0),
                              ("chunked", 10.0, 7.0)):
        rows.append(dict(scheme=scheme, hidden=128, k1=1, k2=20, batch=1, dtype="float32", vocab_size=65,
                         us_per_step=us, bound_us=bound, ratio=us / bound, peak_bytes=1000,
                         torch_speedup=float("nan")))
    table = speed_targets(pd.DataFrame(rows)).set_index("target")
    assert table.loc["single: time / BLAS lower bound", "met"]
    assert not table.loc["sliding: time / BLAS lower bound", "met"]
    assert table.loc["stored: time / single's", "met"]
    assert table.loc["single (B=1): fastest peer's time / ours", "met"] is None
    assert "needs --against" in table.loc["single (B=1): fastest peer's time / ours", "note"]
    # with peers: the target is read against the faster one, and names both
    rows[0].update(torch_us_per_step=6000.0, jax_us_per_step=900.0, peer="jax", peer_us_per_step=900.0,
                   peer_speedup=9.0)
    table = speed_targets(pd.DataFrame(rows)).set_index("target")
    single = table.loc["single (B=1): fastest peer's time / ours"]
    assert single["measured"] == 9.0 and single["met"] is True  # the lead held: at least 2x the fastest peer
    assert "against jax (900 us/step; torch 6000 us)" in single["note"]
    assert "at most 10.00 at the BLAS bound" in single["note"]  # 900 / 90
    rows[0].update(peer_speedup=1.9)
    assert speed_targets(pd.DataFrame(rows)).set_index("target").loc[
        "single (B=1): fastest peer's time / ours", "met"] is False
    # chunked is held to its bound at 1.15: 10 / 7 misses
    assert table.loc["chunked (B=1): time / BLAS lower bound", "met"] is False


def test_adam_targets_say_what_the_optimizer_bound_allows():
    import pandas as pd

    def row(scheme, us, adam_us, optimizer_bound):
        return dict(scheme=scheme, hidden=128, k1=1, k2=20, batch=1, dtype="float32", vocab_size=65, us_per_step=us,
                    bound_us=us, ratio=1.0, peak_bytes=1000, adam_us_per_step=adam_us, adam_extra_us=adam_us - us,
                    adam_ratio=adam_us / us, optimizer_bound_us=optimizer_bound,
                    adam_extra_over_bound=(adam_us - us) / optimizer_bound)

    table = speed_targets(pd.DataFrame([row("single", 100.0, 140.0, 30.0), row("sliding", 200.0, 290.0, 70.0)]))
    table = table.set_index("target")
    single, sliding = (table.loc[f"{s}: Adam with clip 1 / plain SGD"] for s in ("single", "sliding"))
    assert single["measured"] == pytest.approx(1.4) and single["met"] and single["threshold"] == "<= 1.5"
    assert "1.33x the optimizer bound (30 us); at the bound the ratio would be 1.30" in single["note"]
    assert "exceeds" not in single["note"]
    assert sliding["measured"] == pytest.approx(1.45) and sliding["met"] is False
    assert "at the bound the ratio would be 1.35: the update pass alone exceeds the 60 us allowed" in sliding["note"]
    sgd_only = speed_targets(pd.DataFrame([{**row("single", 100.0, 1.0, 1.0), "adam_ratio": float("nan")}]))
    sgd_only = sgd_only.set_index("target").loc["single: Adam with clip 1 / plain SGD"]
    assert sgd_only["met"] is None and "--optimizer adam" in sgd_only["note"]


def test_the_strongest_peer_is_the_fastest_timed_one():
    assert strongest_peer({"torch": 44.0, "jax": 16.0}) == ("jax", 16.0)
    assert strongest_peer({"torch": 44.0, "jax": 160.0}) == ("torch", 44.0)
    assert strongest_peer({"torch": 44.0, "jax": math.nan}) == ("torch", 44.0)  # jax not timed
    name, us = strongest_peer({"torch": math.nan, "jax": math.nan})
    assert name is None and math.isnan(us)


# ----------------------------------------------------------------------------- lower bounds


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lower_bound_kernels_run_and_leave_the_weights_alone(scheme, dtype):
    timer = BoundTimer(scheme, hidden=8, k1=2, k2=4, batch=3, dtype=dtype, vocab_size=6)
    W, D = timer.args[0].copy(), timer.args[1].copy()
    assert timer.run(3)
    assert np.array_equal(W, timer.args[0]) and np.array_equal(D, timer.args[1])  # the GEMMs add 1e-30 x the gradient
    assert timer.args[0].shape[0] == timer.args[1].shape[0] == (4 if scheme == "stored" else 1)
    assert timer.args[1].shape[1:] == (6, 8)  # the decoder's products are in the bound
    assert timer.n_forward == (4 if scheme == "sliding" else 2)
    assert timer.n_backward == 3  # the window's first step sends no gradient back
    us = bound_us(scheme, hidden=8, k2=4, repeats=2, min_time=0.001)
    assert math.isfinite(us) and us > 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optimizer_bound_runs_adams_pass_and_leaves_its_arrays_alone(dtype):
    """The timed pass is a real Adam step (it moves m and v off a gradient they have not seen) that
    leaves theta, m and v where they were for the gradient it is given: passes do not drift."""
    timer = OptimizerBoundTimer(vocab_size=V, hidden=H, k1=3, dtype=dtype)
    assert timer.theta.size == init_theta(V, H, 0).size and timer.unit_steps == 3
    before = [a.copy() for a in (timer.theta, timer.m, timer.v)]
    assert timer.run(5)
    tol = 1e-6 if dtype == "float32" else 1e-13
    for a, b in zip((timer.theta, timer.m, timer.v), before):
        np.testing.assert_allclose(a, b, rtol=tol, atol=0)
    timer.grad[:] *= -1.0  # another gradient: the moments move towards it
    timer.run(1)
    assert np.all(np.sign(timer.m) == np.sign(before[1])) and not np.allclose(timer.m, before[1], rtol=0.1)


@pytest.mark.slow
def test_measure_speed_against_torch_fills_the_torch_columns():
    pytest.importorskip("torch")
    df = measure_speed(["chunked", "single"], hidden=(4,), k2=(3,), vocab_size=5, repeats=1, min_time=0.001,
                       adam=False, against_torch=True)
    assert (df["torch_us_per_step"] > 0).all() and df["jax_us_per_step"].isna().all()
    assert df["torch_variant"].notna().all() and df["jax_variant"].isna().all()
    assert (df["peer"] == "torch").all()
    assert np.allclose(df["peer_speedup"], df["torch_us_per_step"] / df["us_per_step"])


@pytest.mark.slow
def test_measure_speed_against_both_peers_divides_by_the_faster():
    import pandas as pd

    pytest.importorskip("torch"), skip_without_jax()
    df = measure_speed(["chunked", "sliding", "adaptive"], hidden=(4,), k2=(3,), vocab_size=5, repeats=1,
                       min_time=0.001, adam=False, against=("torch", "jax"))
    adaptive = df[df["scheme"] == "adaptive"].iloc[0]  # no peer implements it: its peer columns stay empty
    assert adaptive["us_per_step"] > 0 and pd.isna(adaptive["torch_us_per_step"]) and pd.isna(adaptive["peer"])
    assert pd.isna(adaptive["jax_variant"]) and pd.isna(adaptive["peer_speedup"])
    df = df[df["scheme"] != "adaptive"]
    from bpttbench.peers import jax_peer, torch_peer

    assert list(df["torch_variant"]) == [torch_peer.default_variant(s, 1) for s in df["scheme"]]
    assert list(df["jax_variant"]) == [jax_peer.default_variant(s, 1) for s in df["scheme"]]
    assert (df["torch_us_per_step"] > 0).all() and (df["jax_us_per_step"] > 0).all()
    fastest = np.minimum(df["torch_us_per_step"], df["jax_us_per_step"])
    assert np.allclose(df["peer_us_per_step"], fastest)
    assert np.allclose(df["peer_speedup"], fastest / df["us_per_step"])
    assert list(df["peer"]) == ["torch" if t < j else "jax" for t, j in zip(df["torch_us_per_step"], df["jax_us_per_step"])]


def test_speed_command_times_every_truncated_scheme_by_default(tmp_path, capsys):
    # --scheme all includes adaptive, which (like chunked) must take k1 = k2 rather than the default k1 = 1
    code, stdout, stderr = invoke(["speed", "--hidden", "4", "--k2", "3", "--repeats", "1", "--min-time", "0.001",
                                   "--optimizer", "sgd", "--json", "--out", str(tmp_path)], capsys)
    assert code == 0, stderr
    import json

    rows = {r["scheme"]: r for r in json.loads(stdout)["rows"]}
    assert set(rows) == set(TRUNCATED_SCHEMES) and "adaptive" in rows
    assert (rows["adaptive"]["k1"], rows["chunked"]["k1"], rows["single"]["k1"]) == (3, 3, 1)
    assert rows["adaptive"]["us_per_step"] > 0


@pytest.mark.slow
def test_speed_command_takes_peers_and_the_old_flag(tmp_path, capsys):
    pytest.importorskip("torch")
    small = ["speed", "--scheme", "chunked", "--hidden", "4", "--k2", "3", "--repeats", "1", "--min-time", "0.001",
             "--optimizer", "sgd", "--json"]
    code, stdout, stderr = invoke([*small, "--against-torch", "--out", str(tmp_path / "a")], capsys)
    assert code == 0, stderr
    import json

    (row,) = json.loads(stdout)["rows"]
    assert row["peer"] == "torch" and row["torch_us_per_step"] > 0 and row["jax_us_per_step"] is None
    code, _, stderr = invoke([*small, "--against", "torch,pytorch", "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and "--against takes torch, jax" in stderr
