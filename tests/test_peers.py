"""The peers of `bpttbench speed --against` (bpttbench/peers/): they ship in the package and load
lazily, a missing framework is a one-line error naming the extra, and every peer in every variant
follows bpttbench's trajectory step for step. (Their timings belong in benchmarks/peer_variants.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bpttbench.config import TrainConfig
from bpttbench.errors import UserError
from bpttbench.model import init_theta, split_theta
from bpttbench.peers import PEERS, jax_peer, load_peer, peer_module, torch_peer
from bpttbench.schemes import make_scheme

from conftest import invoke, synthetic_ids, skip_without_jax

REPO = Path(__file__).resolve().parent.parent
V, H = 6, 5
IDS = synthetic_ids(V, 600, seed=3)


# ----------------------------------------------------------------------------- the registry, lazily


@pytest.mark.slow
def test_importing_the_peers_imports_no_framework():
    code = ("import sys, bpttbench.peers, bpttbench.peers.torch_peer, bpttbench.peers.jax_peer, bpttbench.speed\n"
            "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("peer", list(PEERS))
def test_a_missing_framework_is_one_line_naming_the_extra(peer, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, peer, None)  # import torch / import jax now fails
    with pytest.raises(UserError) as info:
        load_peer(peer)
    message = str(info.value)
    assert "\n" not in message and f"pip install 'bpttbench[{peer}]'" in message, message
    assert PEERS[peer].framework in message
    code, _, stderr = invoke(["speed", "--scheme", "chunked", "--hidden", "4", "--k2", "3", "--repeats", "1",
                              "--against", peer, "--out", tmp_path / "out"], capsys)
    assert code == 2 and f"pip install 'bpttbench[{peer}]'" in stderr


def test_unknown_peers_are_refused_and_every_peer_names_its_module():
    with pytest.raises(UserError, match="--against takes torch, jax"):
        load_peer("pytorch")
    for name, peer in PEERS.items():
        module = peer_module(name)
        assert hasattr(module, peer.cls) and module.SCHEMES == ("chunked", "single", "stored", "sliding")
        assert set(module.VARIANT_SCHEMES) <= set(module.SCHEMES) and module.VARIANTS[0] == "current"
        for key, variant in module.DEFAULT_VARIANTS.items():  # the defaults set after timing are variants
            assert (key if isinstance(key, str) else key[0]) in module.VARIANT_SCHEMES
            if name == "jax":
                jax_peer.parse_variant(variant)  # any combination of parts
            else:
                assert variant in module.VARIANTS


def test_jax_variant_names_combine_their_parts():
    parse = jax_peer.parse_variant
    assert parse("current") == jax_peer.Variant()
    assert parse("take+unroll-full") == jax_peer.Variant(xproj="take", unroll=True)
    assert parse("args+onehot+unroll5+no-donate") == jax_peer.Variant(inputs="args", xproj="onehot", unroll=5,
                                                                       donate=False)
    for name in jax_peer.VARIANTS:
        parse(name)
    with pytest.raises(ValueError, match="unknown part 'unroll0'"):
        parse("unroll0")
    with pytest.raises(ValueError, match="unknown part 'gather'"):
        parse("take+gather")


# ----------------------------------------------------------------------------- trajectories

# (scheme, k1, k2, batch, updates): windows that fill up and then slide; k2 >= 2 k1 and k2 < 2 k1 split the
# sliding window differently; 160 updates of 4 steps run the 2 tracks of 300 characters past their wrap-around.
PEER_CASES = [("chunked", 4, 4, 2, 12), ("chunked", 4, 4, 2, 160), ("single", 1, 5, 2, 12), ("single", 2, 5, 1, 12),
              ("stored", 1, 5, 2, 12), ("stored", 3, 5, 1, 12), ("sliding", 1, 5, 2, 12), ("sliding", 2, 5, 1, 12),
              ("sliding", 3, 5, 2, 12), ("sliding", 4, 4, 1, 12)]
# torch.compile compiles for tens of seconds per shape: one chunked and one sliding case (whose windows fill up,
# split as k2 >= 2 k1 does and wrap around the tracks).
COMPILE_CASES = [("chunked", 4, 4, 2, 160), ("sliding", 2, 5, 1, 12)]


def variant_cases(module, peer):
    """(variant, case): every case in the peer's default form, and every other variant over the chunked and
    sliding cases (torch's compile over COMPILE_CASES)."""
    out = [pytest.param(None, case, id=f"{peer}-default-{'-'.join(map(str, case))}") for case in PEER_CASES]
    for variant in module.VARIANTS:
        cases = COMPILE_CASES if variant == "compile" else [c for c in PEER_CASES if c[0] in module.VARIANT_SCHEMES]
        out += [pytest.param(variant, case, id=f"{peer}-{variant}-{'-'.join(map(str, case))}") for case in cases]
    return out


def our_trajectory(scheme, k1, k2, batch, n, dtype="float64"):
    """bpttbench's online losses and final parameters over n steps from seed 0's weights (SGD 0.3)."""
    cfg = TrainConfig(scheme=scheme, k1=k1, k2=k2, hidden=H, batch=batch, optimizer="sgd", lr=0.3, clip=0.0,
                      dtype=dtype, seed=1, budget_steps=1)
    theta = init_theta(V, H, 0, dtype)
    ours = make_scheme(cfg, init_theta(V, H, 1, dtype), V, IDS)
    ours.theta[:] = theta
    losses = np.zeros(n)
    assert ours.run(n, losses) == n
    return theta, losses, split_theta(ours.theta, V, H)


@pytest.mark.slow
@pytest.mark.parametrize("variant,case", variant_cases(torch_peer, "torch"))
def test_torch_peer_follows_our_trajectory(variant, case):
    """Same losses at every step and same weights at the end, in float64: the two implement the same scheme."""
    pytest.importorskip("torch")
    scheme, k1, k2, batch, updates = case
    n = updates * k1
    theta, losses, params = our_trajectory(scheme, k1, k2, batch, n)
    theirs = torch_peer.TorchScheme(scheme, theta, V, H, IDS, k1=k1, k2=k2, batch=batch, lr=0.3, variant=variant)
    np.testing.assert_allclose(np.concatenate([theirs.run(n // 2 - n // 2 % k1), theirs.run(n - n // 2 + n // 2 % k1)]),
                               losses, rtol=1e-10)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(value, params[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("variant,case", variant_cases(jax_peer, "jax"))
def test_jax_peer_follows_our_trajectory(variant, case):
    """Same losses at every step and same weights at the end, in float64. Blocks of 6 updates: the state
    crosses jitted calls, and 160 updates end on a shorter block (another compiled length)."""
    skip_without_jax()
    scheme, k1, k2, batch, updates = case
    n = updates * k1
    theta, losses, params = our_trajectory(scheme, k1, k2, batch, n)
    theirs = jax_peer.JaxScheme(scheme, theta, V, H, IDS, k1=k1, k2=k2, batch=batch, lr=0.3, block_steps=6 * k1,
                                variant=variant)
    np.testing.assert_allclose(theirs.run(n), losses, rtol=1e-10)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(value, params[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("peer", list(PEERS))
@pytest.mark.parametrize("scheme,k1,k2,batch", [("chunked", 4, 4, 2), ("sliding", 2, 5, 1)])
def test_every_variant_follows_our_trajectory_in_float32(peer, scheme, k1, k2, batch):
    """The timed precision: in float32 PyTorch's nn.LSTM runs oneDNN's fused LSTM, which float64 never reaches.
    Against our float64 trajectory, to float32's precision over 24 updates."""
    skip_without_jax() if peer == "jax" else pytest.importorskip(peer)
    module = peer_module(peer)
    n = 24 * k1
    theta, losses, params = our_trajectory(scheme, k1, k2, batch, n)
    for variant in module.VARIANTS:
        if variant == "compile" and scheme != "chunked":
            continue  # (one compiled shape is enough here)
        theirs = getattr(module, PEERS[peer].cls)(scheme, theta.astype(np.float32), V, H, IDS, k1=k1, k2=k2,
                                                   batch=batch, lr=0.3, variant=variant)
        np.testing.assert_allclose(theirs.run(n), losses, rtol=2e-5, err_msg=variant)
        for name, value in theirs.state_dict().items():
            np.testing.assert_allclose(value, params[name], rtol=1e-4, atol=1e-5, err_msg=f"{variant} {name}")


def test_single_and_stored_have_one_form():
    skip_without_jax()
    theta = init_theta(V, H, 0, "float64")
    assert jax_peer.JaxScheme("single", theta, V, H, IDS, k1=1, k2=3, variant=None).variant == "current"
    with pytest.raises(ValueError, match="one form"):
        jax_peer.JaxScheme("stored", theta, V, H, IDS, k1=1, k2=3, variant="take")


# ----------------------------------------------------------------------------- the wheel


def _copy_source(dst: Path) -> Path:
    """The checkout's files as they are now (committed or not), without what builds, runs and tests leave."""
    top = {".git", ".venv", "build", "dist", "results", ".pytest_cache", ".hypothesis"}
    anywhere = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.nbi", "*.nbc")

    def ignore(directory, names):
        here = Path(directory)
        skipped = set(anywhere(directory, names))
        if here == REPO:
            skipped |= top & set(names)
        if here == REPO / "corpora":
            skipped |= {"cache"} & set(names)
        return skipped

    return Path(shutil.copytree(REPO, dst, ignore=ignore))


@pytest.mark.slow
def test_the_wheel_ships_the_peers_and_times_jax_from_outside_a_checkout(tmp_path):
    skip_without_jax()
    source = _copy_source(tmp_path / "src")  # a copy: setuptools' build/ of the checkout can hold stale modules
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, text=True)
    (wheel,) = (tmp_path / "dist").glob("bpttbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in sorted((REPO / "bpttbench" / "peers").glob("*.py")):
        assert f"bpttbench/peers/{path.name}" in names, path.name
    studies = sorted((REPO / "bpttbench" / "reference_studies").glob("*.json"))
    for path in studies:
        assert f"bpttbench/reference_studies/{path.name}" in names, path.name
    assert not any(n.startswith("benchmarks/") for n in names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    away = tmp_path / "elsewhere"  # not the checkout, nor beside it: nothing to pick up from the working directory
    away.mkdir()
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(target)}
    code = (f"import sys; sys.path.insert(0, {str(target)!r})\n"
            "import bpttbench\n"
            "from bpttbench.peers import load_peer\n"
            "print(bpttbench.__file__); print(load_peer('jax').__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=away, env=env, capture_output=True, text=True, check=True)
    package, peer = out.stdout.split()
    assert Path(package).is_relative_to(target) and Path(peer).is_relative_to(target), out.stdout

    run = subprocess.run([sys.executable, "-m", "bpttbench", "speed", "--scheme", "chunked", "--hidden", "4", "--k2",
                          "3", "--repeats", "1", "--min-time", "0.001", "--optimizer", "sgd", "--against", "jax",
                          "--json", "--out", str(tmp_path / "speed")], cwd=away, env=env, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    (row,) = json.loads(run.stdout)["rows"]
    assert row["jax_us_per_step"] > 0 and row["peer"] == "jax" and row["jax_variant"]


@pytest.mark.slow
@pytest.mark.parametrize("peer", ["torch", "jax"])
@pytest.mark.parametrize("cell", ["gru", "rnn"])
@pytest.mark.parametrize("scheme,k1,k2", [("chunked", 4, 4), ("sliding", 1, 5), ("sliding", 2, 5)])
def test_each_peer_follows_our_trajectory_for_every_cell(peer, cell, scheme, k1, k2):
    """torch.nn.GRU / torch.nn.RNN with autograd, and JAX's value_and_grad through the same cell, against
    bpttbench's kernels: same losses, same weights (float64)."""
    skip_without_jax() if peer == "jax" else pytest.importorskip(peer)
    n, batch = 6 * k1, 2
    cfg = TrainConfig(scheme=scheme, cell=cell, k1=k1, k2=k2, hidden=H, batch=batch, optimizer="sgd", lr=0.3,
                      clip=0.0, dtype="float64", seed=0, budget_steps=1)
    theta = init_theta(V, H, 0, "float64", cell)
    ours = make_scheme(cfg, theta, V, IDS)
    losses = np.zeros(n)
    assert ours.run(n, losses) == n
    cls = torch_peer.TorchScheme if peer == "torch" else jax_peer.JaxScheme
    theirs = cls(scheme, theta, V, H, IDS, k1=k1, k2=k2, batch=batch, lr=0.3, cell=cell)
    np.testing.assert_allclose(theirs.run(n), losses, rtol=1e-10)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(value, split_theta(ours.theta, V, H)[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_peers_name_the_cells_they_implement():
    from bpttbench.peers import peer_schemes

    assert peer_schemes("torch", "gru") == peer_schemes("jax", "rnn") == ("chunked", "sliding")
    assert peer_schemes("jax", "lstm") == jax_peer.SCHEMES
    with pytest.raises(ValueError, match="no single for the gru cell"):
        torch_peer.TorchScheme("single", init_theta(V, H, 0, "float64", "gru"), V, H, IDS, k1=1, k2=5, cell="gru")


def test_xla_threading_is_set_before_jax_starts_and_a_shortfall_is_said(monkeypatch):
    monkeypatch.setenv("BPTTBENCH_JAX_ONE_THREAD", "flags")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=true")
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    assert jax_peer._one_thread() == "flags"
    flags = os.environ["XLA_FLAGS"].split()
    assert "--xla_force_host_platform_device_count=2" in flags and "--xla_cpu_multi_thread_eigen=true" not in flags
    assert "--xla_cpu_multi_thread_eigen=false" in flags and "intra_op_parallelism_threads=1" in flags
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setitem(sys.modules, "jax", object())  # imported before: too late for flags
    assert jax_peer._one_thread() == "no flags (jax imported before)"
    monkeypatch.setattr(jax_peer, "ONE_THREAD_APPLIED", "no flags (jax imported before)")
    assert "not held to one thread" in jax_peer.one_thread_shortfall()
    monkeypatch.setattr(jax_peer, "ONE_THREAD_APPLIED", "flags+affinity (cpu 0)")
    assert jax_peer.one_thread_shortfall() is None
