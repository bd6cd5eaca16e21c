"""bpttbench.torch for every cell: a cell's weights load strictly into its Char<cell> and score text as
the NumPy reference does; CharModel picks the class from a file; a model refuses another cell's weights."""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest

from bpttbench import reference as ref
from bpttbench.config import TrainConfig
from bpttbench.errors import ResultsError
from bpttbench.model import init_theta, save_npz, split_theta, state_dict
from bpttbench.scheme_names import CELL_NAMES

from conftest import synthetic_ids, tiny_corpus

V, H = 6, 5
IDS = synthetic_ids(V, 600, seed=3)
CLASSES = {"lstm": "CharLSTM", "gru": "CharGRU", "rnn": "CharRNN"}


@pytest.fixture
def ours():
    pytest.importorskip("torch")
    return importlib.import_module("bpttbench.torch")


def theta_of(cell, seed=0):
    return init_theta(V, H, seed, "float64", cell) * 3  # gates away from their linear regime


def loaded(ours, cell, theta):
    """Char<cell> in float64 holding theta, loaded with strict=True from model.state_dict."""
    import torch

    module = getattr(ours, CLASSES[cell])(V, H).double()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(theta, V, H).items()}, strict=True)
    return module


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_a_cells_state_dict_loads_strictly_and_its_evaluation_is_the_references(ours, cell):
    theta = theta_of(cell)
    module = loaded(ours, cell, theta)
    assert module.cell == cell and type(module.recurrent).__name__ == cell.upper()
    assert sorted(module.state_dict()) == sorted(state_dict(theta, V, H))
    # several streams of unequal length after a burn-in: the padding of the shorter ones is not scored
    starts, lengths, burn_in = np.array([0, 150, 300, 451]), np.array([40, 37, 45, 12]), 5
    total, count = ours.evaluate_streams(module, IDS, starts, lengths, burn_in)
    want, want_count = ref.evaluate_streams(split_theta(theta, V, H), IDS, starts, lengths, burn_in)
    assert count == want_count == lengths.sum()
    assert abs(total - want) <= 1e-12 * want
    # and the reference is the cell's: another cell's weights score differently
    other = next(c for c in CELL_NAMES if c != cell)
    assert abs(ref.evaluate_streams(split_theta(theta_of(other), V, H), IDS, starts, lengths, burn_in)[0] - want) > 1e-3


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_the_final_state_carries_a_sequence_on(ours, cell):
    import torch

    module = loaded(ours, cell, theta_of(cell))
    ids = torch.from_numpy(IDS[:36].reshape(3, 12).astype(np.int64))
    whole, state = module(ids)
    first, middle = module(ids[:, :7])
    rest, end = module(ids[:, 7:], middle)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole, rtol=1e-14, atol=1e-14)
    if cell == "lstm":
        assert state[0].shape == state[1].shape == (1, 3, H)
        torch.testing.assert_close(end[1], state[1], rtol=1e-14, atol=1e-14)
    else:  # the state is h alone
        assert isinstance(state, torch.Tensor) and state.shape == (1, 3, H)
        torch.testing.assert_close(end, state, rtol=1e-14, atol=1e-14)


def test_a_grus_state_dict_is_refused_by_charlstm_in_one_line(ours):
    import torch

    gru = {k: torch.from_numpy(v) for k, v in state_dict(theta_of("gru"), V, H).items()}
    with pytest.raises(RuntimeError) as info:
        ours.CharLSTM(V, H).double().load_state_dict(gru)
    assert str(info.value) == ("state dict holds gru weights (gru.weight_ih_l0, ...), and CharLSTM's cell is lstm: "
                               "load them into CharGRU")
    lstm = {k: torch.from_numpy(v) for k, v in state_dict(theta_of("lstm"), V, H).items()}
    with pytest.raises(RuntimeError, match="CharRNN's cell is rnn: load them into CharLSTM"):
        ours.CharRNN(V, H).double().load_state_dict(lstm)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_charmodel_from_npz_picks_the_files_cell_and_a_subclass_refuses_another(ours, cell, tmp_path):
    theta = theta_of(cell)
    save_npz(tmp_path / "w.npz", theta, V, H)
    model = ours.CharModel.from_npz(tmp_path / "w.npz")
    assert type(model).__name__ == CLASSES[cell] and str(model.decoder.weight.dtype) == "torch.float64"
    assert np.array_equal(model.recurrent.weight_hh_l0.detach().numpy(), split_theta(theta, V, H)["weight_hh_l0"])
    assert type(getattr(ours, CLASSES[cell]).from_npz(tmp_path / "w.npz")) is type(model)
    own = type("Own", (getattr(ours, CLASSES[cell]),), {})  # a user's subclass loads as itself
    assert type(own.from_npz(tmp_path / "w.npz")) is own
    for other in CELL_NAMES:
        if other != cell:
            with pytest.raises(ResultsError, match=f"holds {cell} weights, and {CLASSES[other]}'s cell is {other}: "
                                                   f"load them with {CLASSES[cell]}"):
                getattr(ours, CLASSES[other]).from_npz(tmp_path / "w.npz")
    model.to_npz(tmp_path / "back.npz")
    with np.load(tmp_path / "w.npz") as a, np.load(tmp_path / "back.npz") as b:
        assert a.files == b.files and a.files[0] == f"{cell}.weight_ih_l0"
        assert all(np.array_equal(a[key], b[key]) for key in a.files)


def test_charmodel_itself_has_no_cell(ours):
    with pytest.raises(TypeError, match="make a CharLSTM, CharGRU or CharRNN"):
        ours.CharModel(V, H)
    assert [ours.model_class(c).__name__ for c in CELL_NAMES] == [CLASSES[c] for c in CELL_NAMES]


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_from_run_loads_a_cells_run_and_reports_its_validation_loss(ours, cell, tmp_path):
    from bpttbench.training.runner import execute

    corpus = tiny_corpus(n=20_000)
    execute([TrainConfig(scheme="single", cell=cell, hidden=8, budget_steps=600, log_every=300, eval_every=0)], corpus,
            tmp_path / "run", save_weights=True)
    model = ours.CharModel.from_run(tmp_path / "run")
    assert type(model).__name__ == CLASSES[cell] and model.vocab == list(corpus.vocab)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    reported = manifest["units"][0]["final_val_bpc"]
    assert reported < 0.95 * math.log2(corpus.vocab_size)  # it learnt something
    assert ours.validation_bpc(model, corpus.val_ids) == pytest.approx(reported, rel=1e-6)
