"""Parameters: PyTorch layout, initialisation, state_dict and .npz round trips."""

from __future__ import annotations

import numpy as np
import pytest

from bpttbench.errors import UserError
from bpttbench.model import init_theta, load_npz, load_state_dict, n_params, param_shapes, save_npz, state_dict


def test_shapes_follow_torch_lstm_and_linear():
    assert dict(param_shapes(65, 128)) == {
        "weight_ih_l0": (512, 65), "weight_hh_l0": (512, 128), "bias_ih_l0": (512,), "bias_hh_l0": (512,),
        "decoder.weight": (65, 128), "decoder.bias": (65,),
    }
    assert n_params(65, 128) == 108225


def test_init_is_uniform_in_torch_bounds_and_seeded():
    theta = init_theta(65, 128, seed=0)
    assert theta.dtype == np.float32
    assert np.abs(theta).max() <= 1 / np.sqrt(128)
    assert np.array_equal(theta, init_theta(65, 128, seed=0))
    assert not np.array_equal(theta, init_theta(65, 128, seed=1))
    assert np.array_equal(theta, init_theta(65, 128, seed=0, dtype="float64").astype(np.float32))


def test_state_dict_round_trip(tmp_path):
    theta = init_theta(11, 7, seed=3, dtype="float64")
    back, V, H = load_state_dict(state_dict(theta, 11, 7), dtype="float64")
    assert (V, H) == (11, 7) and np.array_equal(back, theta)
    save_npz(tmp_path / "w.npz", theta, 11, 7)
    back, V, H = load_npz(tmp_path / "w.npz", dtype="float64")
    assert (V, H) == (11, 7) and np.array_equal(back, theta)


def test_state_dict_keys_are_the_torch_modules_and_old_bare_keys_still_load():
    theta = init_theta(11, 7, seed=3, dtype="float64")
    state = state_dict(theta, 11, 7)
    assert list(state) == ["lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0",
                           "decoder.weight", "decoder.bias"]
    old = {key.removeprefix("lstm."): value for key, value in state.items()}  # as saved before the prefix
    back, V, H = load_state_dict(old, dtype="float64")
    assert (V, H) == (11, 7) and np.array_equal(back, theta)


def test_state_dict_with_wrong_shape_is_refused():
    state = state_dict(init_theta(11, 7, seed=3), 11, 7)
    state["decoder.bias"] = np.zeros(12)
    with pytest.raises(UserError, match="decoder.bias has shape"):
        load_state_dict(state)
    del state["decoder.bias"]
    with pytest.raises(UserError, match="lacks 'decoder.bias'"):
        load_state_dict(state)
