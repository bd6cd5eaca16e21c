"""`bpttbench sample`: text from a run's saved weights, deterministic, and one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bpttbench.config import TrainConfig
from bpttbench.training.runner import execute
from bpttbench.sample import sample_text
from bpttbench.weights import read_arrays

from conftest import invoke, tiny_corpus

VOCAB = "abcdefg"  # tiny_corpus's characters: a noisy cycle a, b, ..., g, a, ...


def _train(out, schemes, seeds, steps=3000):
    units = [TrainConfig(scheme=s, seed=n, hidden=16, budget_steps=steps, log_every=500, eval_every=0)
             for s in schemes for n in seeds]
    execute(units, tiny_corpus(), out, save_weights=True)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("sample") / "run", ("single", "sliding"), (0, 1))


@pytest.fixture(scope="module")
def one_unit_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("sample") / "one", ("single",), (0,))


def test_sample_is_the_prime_then_chars_drawn_from_the_vocabulary_and_repeatable(one_unit_run, capsys):
    args = ["sample", one_unit_run, "--chars", 300, "--prime", "abc", "--rng-seed", 7, "--quiet"]
    code, out, err = invoke(args, capsys)
    assert code == 0 and err == ""
    text = out.removesuffix("\n")
    assert len(text) == 303 and text.startswith("abc") and set(text) <= set(VOCAB)
    assert invoke(args, capsys)[1] == out  # the only run, picked without --scheme/--seed; same seed, same text
    other = invoke(args[:-3] + ["--rng-seed", 8, "--quiet"], capsys)[1]
    assert other != out


def test_a_trained_model_at_low_temperature_continues_the_cycle(one_unit_run, capsys):
    code, out, _ = invoke(["sample", one_unit_run, "--chars", 200, "--temperature", 0.05, "--quiet"], capsys)
    ids = np.array([VOCAB.index(c) for c in out.strip()])
    # Untrained or broken sampling would follow the cycle about 1/7 of the time.
    assert code == 0 and np.mean(np.diff(ids) % 7 == 1) > 0.9


def test_temperature_reshapes_the_models_odds():
    """Over many draws of the first character, the frequencies follow softmax(decoder.bias / T)."""
    rng = np.random.default_rng(0)
    V, H = 4, 3
    state = {"lstm.weight_ih_l0": rng.normal(size=(4 * H, V)), "lstm.weight_hh_l0": rng.normal(size=(4 * H, H)),
             "lstm.bias_ih_l0": np.zeros(4 * H), "lstm.bias_hh_l0": np.zeros(4 * H),
             "decoder.weight": rng.normal(size=(V, H)), "decoder.bias": np.array([0.0, 1.0, 2.0, -1.0])}
    for temperature in (0.5, 2.0):
        firsts = [sample_text(state, list("wxyz"), chars=1, temperature=temperature, rng_seed=s) for s in range(4000)]
        freq = np.array([firsts.count(c) for c in "wxyz"]) / len(firsts)
        odds = np.exp(state["decoder.bias"] / temperature)
        np.testing.assert_allclose(freq, odds / odds.sum(), atol=0.03)


def test_json_has_the_weights_used_and_the_text(run_dir, capsys):
    code, out, _ = invoke(["sample", run_dir, "--scheme", "sliding", "--seed", 1, "--chars", 50, "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and set(data) == {"out", "status", "text"} and data["status"] == "complete"
    assert data["out"].endswith("sliding-seed1-final.npz") and len(data["text"]) == 50


def test_without_a_choice_among_several_the_error_lists_them(run_dir, capsys):
    for extra in ([], ["--scheme", "single"], ["--seed", 0]):
        code, out, err = invoke(["sample", run_dir, *extra], capsys)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
        assert "single seed 0, single seed 1, sliding seed 0, sliding seed 1" in err and "--scheme" in err
    code, _, err = invoke(["sample", run_dir, "--scheme", "chunked"], capsys)
    assert code == 2 and "no final weights for scheme chunked" in err


def test_a_run_without_weights_says_to_save_them(tmp_path, capsys, text_file):
    run = tmp_path / "plain"
    assert invoke(["run", "--scheme", "single", "--steps", 50, "--hidden", 4, "--corpus", text_file, "--out", run,
                   "--quiet"], capsys)[0] == 0
    code, out, err = invoke(["sample", run], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--save-weights" in err
    code, _, err = invoke(["sample", tmp_path / "nowhere"], capsys)
    assert code == 2 and "no run directory" in err


def test_a_prime_outside_the_vocabulary_is_named(one_unit_run, capsys):
    code, out, err = invoke(["sample", one_unit_run, "--prime", "abXcYX"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "'X', 'Y'" in err


def test_weights_saved_with_the_old_bare_keys_still_sample(one_unit_run, tmp_path, capsys):
    old = tmp_path / "old"
    (old / "weights").mkdir(parents=True)
    (old / "vocab.json").write_text((one_unit_run / "vocab.json").read_text())
    arrays = read_arrays(one_unit_run / "weights" / "single-seed0-final.npz")
    assert "lstm.weight_ih_l0" in arrays
    np.savez(old / "weights" / "single-seed0-final.npz", **{k.removeprefix("lstm."): v for k, v in arrays.items()})
    args = ["--chars", 100, "--quiet"]
    assert invoke(["sample", old, *args], capsys)[1] == invoke(["sample", one_unit_run, *args], capsys)[1]


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_every_cell_samples_and_a_trained_one_continues_the_cycle(tmp_path, capsys, cell):
    units = [TrainConfig(scheme="single", cell=cell, hidden=16, budget_steps=3000, log_every=500, eval_every=0)]
    execute(units, tiny_corpus(), tmp_path / "run", save_weights=True)
    code, out, _ = invoke(["sample", tmp_path / "run", "--chars", 200, "--temperature", 0.05, "--quiet"], capsys)
    ids = np.array([VOCAB.index(c) for c in out.strip()])
    assert code == 0 and np.mean(np.diff(ids) % 7 == 1) > 0.9
