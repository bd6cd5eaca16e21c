"""The character-level LSTM's parameters: PyTorch layout, initialisation, state_dict in and out.

All parameters live in one flat vector `theta` (so optimisers and clipping are single loops in
JIT code); `param_views` in kernels/lstm.py cuts it into the tensors below, in this order.
Names and shapes are those of `torch.nn.LSTM(V, H)` followed by `torch.nn.Linear(H, V)` named
`decoder`, gate order i, f, g, o, so weights move to and from PyTorch unchanged. A state dict (and
so a saved .npz) uses the keys of bpttbench.torch.CharLSTM, the module holding the two as `lstm`
and `decoder`: `lstm.weight_ih_l0`, ..., `decoder.bias`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bpttbench.errors import UserError


def param_shapes(vocab_size: int, hidden: int) -> list[tuple[str, tuple[int, ...]]]:
    V, H = vocab_size, hidden
    return [
        ("weight_ih_l0", (4 * H, V)),
        ("weight_hh_l0", (4 * H, H)),
        ("bias_ih_l0", (4 * H,)),
        ("bias_hh_l0", (4 * H,)),
        ("decoder.weight", (V, H)),
        ("decoder.bias", (V,)),
    ]


# Weights saved before the keys followed CharLSTM's state_dict have the bare nn.LSTM names
# (`weight_ih_l0`); load_state_dict still reads them.
LSTM_PREFIX = "lstm."


def state_key(name: str) -> str:
    """The state dict key of the parameter `name` (a name of param_shapes): CharLSTM's own key."""
    return name if name.startswith("decoder.") else LSTM_PREFIX + name


def n_params(vocab_size: int, hidden: int) -> int:
    return sum(int(np.prod(shape)) for _, shape in param_shapes(vocab_size, hidden))


def init_theta(vocab_size: int, hidden: int, seed: int, dtype="float32") -> np.ndarray:
    """Uniform(-1/sqrt(H), 1/sqrt(H)) for every tensor, as PyTorch does.

    Drawn in float64 and then cast, so one seed gives the same weights in both dtypes
    and every scheme starts from the same point (paired comparisons).
    """
    bound = 1.0 / np.sqrt(hidden)
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-bound, bound, size=n_params(vocab_size, hidden))
    return theta.astype(dtype)


def split_theta(theta: np.ndarray, vocab_size: int, hidden: int) -> dict[str, np.ndarray]:
    """Views of theta by PyTorch name (writing to them writes theta)."""
    views, offset = {}, 0
    for name, shape in param_shapes(vocab_size, hidden):
        size = int(np.prod(shape))
        views[name] = theta[offset : offset + size].reshape(shape)
        offset += size
    if offset != theta.size:
        raise ValueError(f"theta has {theta.size} entries, a model with V={vocab_size}, H={hidden} has {offset}")
    return views


def state_dict(theta: np.ndarray, vocab_size: int, hidden: int) -> dict[str, np.ndarray]:
    """Copies of the parameters under CharLSTM's state_dict keys (`lstm.weight_ih_l0`, ...)."""
    return {state_key(name): view.copy() for name, view in split_theta(theta, vocab_size, hidden).items()}


def load_state_dict(state: dict, dtype="float32") -> tuple[np.ndarray, int, int]:
    """Return (theta, vocab_size, hidden) from a state dict with CharLSTM's keys or the older bare ones."""

    def lookup(name: str):
        for key in (state_key(name), name):
            if key in state:
                return state[key]
        raise UserError(f"state dict lacks {state_key(name)!r}; expected the keys of bpttbench.torch.CharLSTM "
                        "(torch.nn.LSTM as `lstm`, torch.nn.Linear as `decoder`)")

    first = np.shape(lookup("weight_ih_l0"))
    if len(first) != 2:
        raise UserError(f"{state_key('weight_ih_l0')} has shape {first}, expected (4 * hidden, vocab_size)")
    four_h, vocab_size = first
    hidden = four_h // 4
    parts = []
    for name, shape in param_shapes(vocab_size, hidden):
        array = np.asarray(lookup(name))
        if array.shape != shape:
            raise UserError(f"{state_key(name)} has shape {array.shape}, expected {shape} for V={vocab_size}, H={hidden}")
        parts.append(array.reshape(-1))
    return np.concatenate(parts).astype(dtype), vocab_size, hidden


def save_npz(path: Path, theta: np.ndarray, vocab_size: int, hidden: int) -> None:
    np.savez(path, **state_dict(theta, vocab_size, hidden))


def load_npz(path: Path, dtype="float32") -> tuple[np.ndarray, int, int]:
    with np.load(path) as data:
        return load_state_dict(dict(data), dtype)
