"""bpttbench's model as a PyTorch module, loading and saving bpttbench's weights as they are.

    from bpttbench.torch import CharModel, validation_bpc
    model = CharModel.from_run("results/run-20261125-120000", scheme="single", seed=0)  # CharLSTM, CharGRU or CharRNN
    ids = torch.tensor([[model.vocab.index(c) for c in "def main"]])  # (batch, time)
    logits, state = model(ids)       # (batch, time, V); the LSTM's (h, c), the GRU's or RNN's h: (1, batch, H) each

CharLSTM, CharGRU and CharRNN hold their cell under its name (`lstm`: torch.nn.LSTM, `gru`: torch.nn.GRU,
`rnn`: torch.nn.RNN with tanh; one layer, batch_first=True) and `decoder` (torch.nn.Linear): their
state_dict keys are the keys bpttbench saves (model.py), so saved weights load with strict=True.
CharModel, their base, picks the class from a file's keys (from_npz, from_run); a subclass refuses
another cell's weights in one line. `evaluate_streams` reads text as bpttbench's validation does
(kernels/evaluate.py: parallel streams from a zero state, scored after a burn-in), so `validation_bpc`
is the number a run reports. Needs the [torch] extra.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

try:
    import torch
    from torch import nn
except ImportError:
    raise ImportError("bpttbench.torch needs PyTorch: pip install 'bpttbench[torch]'") from None

from bpttbench import model as params
from bpttbench.errors import ResultsError
from bpttbench.files import atomic_write
from bpttbench.scheme_names import CELL_NAMES
from bpttbench.weights import choose_weights, read_arrays, read_vocab

# The torch.nn module of each cell (scheme_names.CELLS): one layer, the equations bpttbench's kernels use.
TORCH_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class CharModel(nn.Module):
    """One-hot characters -> one recurrent layer -> linear decoder: the model bpttbench trains.

    A subclass names its cell (`cell = "gru"`) and holds the torch.nn module under that name.
    `vocab`, when known (from_run), maps ids to characters: vocab[i] is the character of id i.
    """

    cell: str | None = None  # None: the base, which only loads (from_npz, from_run pick the subclass)

    def __init__(self, vocab_size: int, hidden: int, vocab: list[str] | None = None):
        if self.cell is None:
            raise TypeError("CharModel has no cell: make a CharLSTM, CharGRU or CharRNN, "
                            "or load weights with CharModel.from_npz or CharModel.from_run")
        super().__init__()
        if vocab is not None and len(vocab) != vocab_size:
            raise ValueError(f"vocab has {len(vocab)} characters, the model {vocab_size}")
        self.vocab_size, self.hidden = vocab_size, hidden
        self.vocab = list(vocab) if vocab is not None else None
        setattr(self, self.cell, TORCH_CELLS[self.cell](vocab_size, hidden, num_layers=1, batch_first=True))
        self.decoder = nn.Linear(hidden, vocab_size)

    @property
    def recurrent(self) -> nn.Module:
        """The torch.nn cell module (the attribute named after the cell)."""
        return getattr(self, self.cell)

    def forward(self, ids: torch.Tensor, state=None):
        """ids: (batch, time) character ids; state: the LSTM's (h, c), the GRU's or RNN's h, each
        (1, batch, H), zero when None.

        Returns the logits (batch, time, V) of each next character and the final state (same form).
        """
        x = nn.functional.one_hot(ids.long(), self.vocab_size).to(self.decoder.weight.dtype)
        out, state = self.recurrent(x, state)
        return self.decoder(out), state

    def load_state_dict(self, state_dict, *args, **kwargs):
        """nn.Module.load_state_dict, refusing another cell's weights in one line (RuntimeError, as
        torch's own refusal, which would list every missing and unexpected key)."""
        other = sorted({key.split(".", 1)[0] for key in state_dict} & (set(CELL_NAMES) - {self.cell}))
        if other and not any(key.startswith(f"{self.cell}.") for key in state_dict):
            theirs = model_class(other[0]).__name__
            raise RuntimeError(f"state dict holds {other[0]} weights ({other[0]}.weight_ih_l0, ...), and "
                               f"{type(self).__name__}'s cell is {self.cell}: load them into {theirs}")
        return super().load_state_dict(state_dict, *args, **kwargs)

    @classmethod
    def from_npz(cls, path: Path, vocab: list[str] | None = None) -> "CharModel":
        """The model holding the weights of a bpttbench .npz (either key style), in the file's dtype:
        of the file's cell when called on CharModel; a subclass refuses another cell's weights."""
        arrays = read_arrays(Path(path))
        dtype = np.result_type(*arrays.values())
        theta, vocab_size, hidden = params.load_state_dict(arrays, dtype=dtype)
        cell = params.cell_of_theta(theta.size, vocab_size, hidden)
        if cls.cell is not None and cls.cell != cell:
            raise ResultsError(f"{path} holds {cell} weights, and {cls.__name__}'s cell is {cls.cell}: load them with "
                               f"{model_class(cell).__name__} (or CharModel, which picks the class from the file)")
        klass = cls if cls.cell is not None else model_class(cell)  # a subclass of Char<cell> stays itself
        module = klass(vocab_size, hidden, vocab).to(getattr(torch, np.dtype(dtype).name))
        state = params.state_dict(theta, vocab_size, hidden)
        module.load_state_dict({key: torch.from_numpy(value) for key, value in state.items()}, strict=True)
        return module

    @classmethod
    def from_run(cls, run_dir: Path, scheme: str | None = None, seed: int | None = None,
                 stage: str = "final") -> "CharModel":
        """The weights a `bpttbench run --save-weights` saved: `stage` 'final' (after training) or 'init'.

        scheme and seed may be left out when the run has only one of each; vocab is set from vocab.json.
        Called on CharModel, the class is the run's cell's.
        """
        weights = choose_weights(Path(run_dir), scheme, seed, stage)
        return cls.from_npz(weights.path, read_vocab(run_dir))

    def to_npz(self, path: Path) -> Path:
        """Save the weights as bpttbench saves them (an .npz of this module's state_dict)."""
        arrays = {key: value.detach().cpu().numpy() for key, value in self.state_dict().items()}
        atomic_write(Path(path), lambda f: np.savez(f, **arrays), binary=True)
        return Path(path)


class CharLSTM(CharModel):
    """CharModel with `lstm`: torch.nn.LSTM (gates i, f, g, o); its state is (h, c)."""

    cell = "lstm"


class CharGRU(CharModel):
    """CharModel with `gru`: torch.nn.GRU (gates r, z, n, r applied to W_hn h + b_hn); its state is h."""

    cell = "gru"


class CharRNN(CharModel):
    """CharModel with `rnn`: torch.nn.RNN, the tanh Elman cell; its state is h."""

    cell = "rnn"


def model_class(cell: str) -> type[CharModel]:
    """The CharModel subclass of a cell (lstm, gru, rnn)."""
    for klass in (CharLSTM, CharGRU, CharRNN):
        if klass.cell == cell:
            return klass
    raise ValueError(f"no model for cell {cell!r}; the cells are {', '.join(CELL_NAMES)}")


@torch.no_grad()
def evaluate_streams(module: CharModel, ids, starts, lengths, burn_in: int) -> tuple[float, int]:
    """(summed cross-entropy in nats, predictions scored) over the streams of a stream_plan.

    The streams are one batch read from the zero state: stream s reads ids[starts[s]:] and scores
    its lengths[s] predictions after `burn_in` unscored steps, as kernels/evaluate.py does.
    """
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    starts, lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    steps = np.arange(burn_in + lengths.max())
    # A stream that has scored its part repeats its last input; those steps are not scored.
    inputs = starts[:, None] + np.minimum(steps[None, :], burn_in + lengths[:, None] - 1)  # S,T
    scored = (steps[None, :] >= burn_in) & (steps[None, :] < burn_in + lengths[:, None])  # S,T
    logits, _ = module(ids[inputs])
    losses = nn.functional.cross_entropy(logits.flatten(0, 1), ids[inputs + 1].flatten(), reduction="none")
    total = losses.to(torch.float64)[torch.from_numpy(scored.ravel())].sum()
    return float(total), int(scored.sum())


def validation_bpc(module: CharModel, ids) -> float:
    """Bits per character on ids read as a run's validation reads its split (train.validation_plan)."""
    from bpttbench.training.loop import validation_plan

    total, count = evaluate_streams(module, ids, *validation_plan(len(ids)))
    return total / count / math.log(2.0)
