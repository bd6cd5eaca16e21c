"""The character-level network's parameters: PyTorch layout, initialisation, state_dict in and out.

All parameters live in one flat vector `theta` (so optimisers and clipping are single loops in
JIT code); `param_views` in kernels/network.py cuts it into the tensors below, in this order.
Names and shapes are those of `torch.nn.LSTM(V, H)`, `torch.nn.GRU(V, H)` or `torch.nn.RNN(V, H)`
(the cell; gate order i, f, g, o for the LSTM, r, z, n for the GRU) followed by `torch.nn.Linear(H, V)`
named `decoder`, so weights move to and from PyTorch unchanged. A state dict (and so a saved .npz)
uses the keys of bpttbench.torch's CharLSTM, CharGRU or CharRNN, the module holding the cell under its
name and the decoder as `decoder`: `lstm.weight_ih_l0` (`gru.`, `rnn.`), ..., `decoder.bias`.

The cell need not be passed where theta is given: its length tells the cells apart (cell_of_theta).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bpttbench.errors import UserError
from bpttbench.scheme_names import CELLS, DEFAULT_CELL


def param_shapes(vocab_size: int, hidden: int, cell: str = DEFAULT_CELL) -> list[tuple[str, tuple[int, ...]]]:
    V, H = vocab_size, hidden
    G = CELLS[cell] * H
    return [
        ("weight_ih_l0", (G, V)),
        ("weight_hh_l0", (G, H)),
        ("bias_ih_l0", (G,)),
        ("bias_hh_l0", (G,)),
        ("decoder.weight", (V, H)),
        ("decoder.bias", (V,)),
    ]


# Weights saved before the keys followed CharLSTM's state_dict have the bare nn.LSTM names
# (`weight_ih_l0`); load_state_dict still reads them, as an LSTM's.


def state_key(name: str, cell: str = DEFAULT_CELL) -> str:
    """The state dict key of the parameter `name` (a name of param_shapes): the Char<cell> module's own key."""
    return name if name.startswith("decoder.") else f"{cell}.{name}"


def n_params(vocab_size: int, hidden: int, cell: str = DEFAULT_CELL) -> int:
    return sum(int(np.prod(shape)) for _, shape in param_shapes(vocab_size, hidden, cell))


def cell_of_theta(size: int, vocab_size: int, hidden: int) -> str:
    """The cell whose parameter vector at this V and H has `size` entries (ValueError if none has)."""
    for cell in CELLS:
        if n_params(vocab_size, hidden, cell) == size:
            return cell
    raise ValueError(f"no cell has {size} parameters at V={vocab_size}, H={hidden}")


def init_theta(vocab_size: int, hidden: int, seed: int, dtype="float32", cell: str = DEFAULT_CELL) -> np.ndarray:
    """Uniform(-1/sqrt(H), 1/sqrt(H)) for every tensor, as PyTorch does.

    Drawn in float64 and then cast, so one seed gives the same weights in both dtypes
    and every scheme starts from the same point (paired comparisons).
    """
    bound = 1.0 / np.sqrt(hidden)
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-bound, bound, size=n_params(vocab_size, hidden, cell))
    return theta.astype(dtype)


def split_theta(theta: np.ndarray, vocab_size: int, hidden: int) -> dict[str, np.ndarray]:
    """Views of theta by PyTorch name (writing to them writes theta)."""
    views, offset = {}, 0
    try:
        cell = cell_of_theta(theta.size, vocab_size, hidden)
    except ValueError:
        raise ValueError(f"theta has {theta.size} entries; no model with V={vocab_size}, H={hidden} has as many") from None
    for name, shape in param_shapes(vocab_size, hidden, cell):
        size = int(np.prod(shape))
        views[name] = theta[offset : offset + size].reshape(shape)
        offset += size
    return views


def state_dict(theta: np.ndarray, vocab_size: int, hidden: int) -> dict[str, np.ndarray]:
    """Copies of the parameters under the Char<cell> module's state_dict keys (`lstm.weight_ih_l0`, ...)."""
    cell = cell_of_theta(theta.size, vocab_size, hidden)
    return {state_key(name, cell): view.copy() for name, view in split_theta(theta, vocab_size, hidden).items()}


def load_state_dict(state: dict, dtype="float32") -> tuple[np.ndarray, int, int]:
    """Return (theta, vocab_size, hidden) from a state dict with the keys of CharLSTM, CharGRU or
    CharRNN (the cell is the prefix of its keys), or the older bare ones of an LSTM."""
    cells = [cell for cell in CELLS if state_key("weight_ih_l0", cell) in state]
    if len(cells) > 1:
        raise UserError(f"state dict holds weights of several cells ({', '.join(cells)}); give one model's")
    cell = cells[0] if cells else DEFAULT_CELL

    def lookup(name: str):
        for key in (state_key(name, cell), name):
            if key in state:
                return state[key]
        raise UserError(f"state dict lacks {state_key(name, cell)!r}; expected the keys of bpttbench.torch's "
                        "CharLSTM, CharGRU or CharRNN (the torch.nn cell under its name, torch.nn.Linear as `decoder`)")

    first = np.shape(lookup("weight_ih_l0"))
    blocks = CELLS[cell]
    if len(first) != 2 or first[0] % blocks:
        raise UserError(f"{state_key('weight_ih_l0', cell)} has shape {first}, expected ({blocks} * hidden, vocab_size)")
    rows, vocab_size = first
    hidden = rows // blocks
    parts = []
    for name, shape in param_shapes(vocab_size, hidden, cell):
        array = np.asarray(lookup(name))
        if array.shape != shape:
            raise UserError(f"{state_key(name, cell)} has shape {array.shape}, expected {shape} for a {cell} "
                            f"with V={vocab_size}, H={hidden}")
        parts.append(array.reshape(-1))
    return np.concatenate(parts).astype(dtype), vocab_size, hidden


def save_npz(path: Path, theta: np.ndarray, vocab_size: int, hidden: int) -> None:
    np.savez(path, **state_dict(theta, vocab_size, hidden))


def load_npz(path: Path, dtype="float32") -> tuple[np.ndarray, int, int]:
    with np.load(path) as data:
        return load_state_dict(dict(data), dtype)
