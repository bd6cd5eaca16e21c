"""bpttbench.torch: CharLSTM loads bpttbench's weights unchanged and scores text as bpttbench does."""

from __future__ import annotations

import importlib
import json
import math
import sys

import numpy as np
import pytest

from bpttbench.config import TrainConfig
from bpttbench.errors import ResultsError
from bpttbench.kernels.evaluate import evaluate_streams, stream_plan, stream_scratch
from bpttbench.model import load_npz, save_npz
from bpttbench.training.runner import execute
from bpttbench.training.loop import Training

from conftest import tiny_corpus

TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


@pytest.fixture
def ours():
    pytest.importorskip("torch")
    return importlib.import_module("bpttbench.torch")


@pytest.fixture(scope="module", params=["float32", "float64"])
def trained(request):
    """A model trained for a while (so its loss is not log V) and bpttbench's validation of it."""
    cfg = TrainConfig(hidden=16, budget_steps=3000, dtype=request.param, log_every=500, eval_every=0)
    training = Training(cfg, tiny_corpus(n=40_000))
    list(training.records())
    return training


def test_validation_loss_equals_bpttbench_on_the_same_streams(ours, trained, tmp_path):
    save_npz(tmp_path / "w.npz", trained.theta, trained.vocab_size, trained.cfg.hidden)
    model = ours.CharLSTM.from_npz(tmp_path / "w.npz")
    assert str(model.decoder.weight.dtype) == f"torch.{trained.cfg.dtype}"
    starts, lengths, burn_in = trained.val_plan
    assert len(starts) > 1 and burn_in > 0  # the parallel streams with a burn-in, not one plain stream
    total, count = ours.evaluate_streams(model, trained.val_ids, starts, lengths, burn_in)
    assert count == lengths.sum()
    bpc = total / count / math.log(2)
    assert bpc < 0.9 * math.log2(trained.vocab_size)  # trained: well below uniform guessing
    assert abs(bpc - trained.validation_bpc()) <= TOLERANCE[trained.cfg.dtype] * bpc
    assert ours.validation_bpc(model, trained.val_ids) == pytest.approx(bpc, rel=1e-15)


def test_one_plain_stream_through_forward_equals_bpttbench(ours, trained, tmp_path):
    import torch

    save_npz(tmp_path / "w.npz", trained.theta, trained.vocab_size, trained.cfg.hidden)
    model = ours.CharLSTM.from_npz(tmp_path / "w.npz")
    ids = trained.val_ids
    plan = stream_plan(len(ids), max_streams=1, burn_in=0, min_scored=1)
    want, count = evaluate_streams(trained.theta, trained.vocab_size, trained.cfg.hidden, ids, *plan,
                                   stream_scratch(1, trained.cfg.hidden, trained.vocab_size, trained.theta.dtype))
    assert count == len(ids) - 1
    x = torch.from_numpy(ids[None, :-1].astype(np.int64))  # batch of one, from the zero state
    with torch.no_grad():
        logits, _ = model(x)
        losses = torch.nn.functional.cross_entropy(logits[0], torch.from_numpy(ids[1:].astype(np.int64)), reduction="none")
    got = float(losses.to(torch.float64).sum())
    assert abs(got - want) <= TOLERANCE[trained.cfg.dtype] * want


def test_the_final_state_carries_a_sequence_on(ours):
    import torch

    torch.manual_seed(0)
    model = ours.CharLSTM(5, 4).double()
    ids = torch.randint(0, 5, (3, 12))
    whole, (h, c) = model(ids)
    first, state = model(ids[:, :7])
    rest, (h2, c2) = model(ids[:, 7:], state)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(h2, h, rtol=1e-14, atol=1e-14)
    assert h.shape == c.shape == (1, 3, 4) and whole.shape == (3, 12, 5)


def test_from_run_loads_a_runs_final_weights_and_reports_its_validation_loss(ours, tmp_path):
    corpus = tiny_corpus(n=20_000)
    units = [TrainConfig(scheme=s, hidden=8, budget_steps=1000, log_every=500, eval_every=0) for s in ("single", "sliding")]
    execute(units, corpus, tmp_path / "run", save_weights=True)
    with pytest.raises(ResultsError, match="single seed 0, sliding seed 0"):
        ours.CharLSTM.from_run(tmp_path / "run")
    model = ours.CharLSTM.from_run(tmp_path / "run", scheme="sliding")
    assert model.vocab == list(corpus.vocab)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    reported = next(u["final_val_bpc"] for u in manifest["units"] if u["config"]["scheme"] == "sliding")
    assert ours.validation_bpc(model, corpus.val_ids) == pytest.approx(reported, rel=1e-6)
    start = ours.CharLSTM.from_run(tmp_path / "run", scheme="sliding", stage="init")
    assert not bool((start.lstm.weight_hh_l0 == model.lstm.weight_hh_l0).all())


def test_to_npz_writes_what_bpttbench_saves(ours, tmp_path):
    corpus = tiny_corpus(n=5000)
    execute([TrainConfig(hidden=8, budget_steps=100, log_every=50, eval_every=0)], corpus, tmp_path / "run",
            save_weights=True)
    saved = tmp_path / "run" / "weights" / "single-seed0-final.npz"
    ours.CharLSTM.from_npz(saved).to_npz(tmp_path / "back.npz")
    with np.load(saved) as a, np.load(tmp_path / "back.npz") as b:
        assert a.files == b.files and a.files[0] == "lstm.weight_ih_l0"
        for key in a.files:
            assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key
    theta, V, H = load_npz(tmp_path / "back.npz")
    assert (V, H) == (corpus.vocab_size, 8)


def test_without_torch_the_import_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    monkeypatch.delitem(sys.modules, "bpttbench.torch", raising=False)
    with pytest.raises(ImportError) as info:
        importlib.import_module("bpttbench.torch")
    assert str(info.value) == "bpttbench.torch needs PyTorch: pip install 'bpttbench[torch]'"
    assert info.value.__cause__ is None and info.value.__suppress_context__
