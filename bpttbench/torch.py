"""bpttbench's model as a PyTorch module, loading and saving bpttbench's weights as they are.

    from bpttbench.torch import CharLSTM, validation_bpc
    model = CharLSTM.from_run("results/run-20261125-120000", scheme="single", seed=0)
    ids = torch.tensor([[model.vocab.index(c) for c in "def main"]])  # (batch, time)
    logits, (h, c) = model(ids)                                        # (batch, time, V); (1, batch, H) each

CharLSTM holds `lstm` (torch.nn.LSTM, one layer, batch_first=True) and `decoder` (torch.nn.Linear):
its state_dict keys are the keys bpttbench saves (model.py), so saved weights load with strict=True.
`evaluate_streams` reads text as bpttbench's validation does (kernels/evaluate.py: parallel streams
from a zero state, scored after a burn-in), so `validation_bpc` is the number a run reports.
Needs the [torch] extra.
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
from bpttbench.files import atomic_write
from bpttbench.weights import choose_weights, read_arrays, read_vocab


class CharLSTM(nn.Module):
    """One-hot characters -> one LSTM layer -> linear decoder: the model bpttbench trains.

    `vocab`, when known (from_run), maps ids to characters: vocab[i] is the character of id i.
    """

    def __init__(self, vocab_size: int, hidden: int, vocab: list[str] | None = None):
        super().__init__()
        if vocab is not None and len(vocab) != vocab_size:
            raise ValueError(f"vocab has {len(vocab)} characters, the model {vocab_size}")
        self.vocab_size, self.hidden = vocab_size, hidden
        self.vocab = list(vocab) if vocab is not None else None
        self.lstm = nn.LSTM(vocab_size, hidden, num_layers=1, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab_size)

    def forward(self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """ids: (batch, time) character ids; state: (h, c), each (1, batch, H), zero when None.

        Returns the logits (batch, time, V) of each next character and the final (h, c).
        """
        x = nn.functional.one_hot(ids.long(), self.vocab_size).to(self.decoder.weight.dtype)
        out, state = self.lstm(x, state)
        return self.decoder(out), state

    @classmethod
    def from_npz(cls, path: Path, vocab: list[str] | None = None) -> "CharLSTM":
        """A CharLSTM holding the weights of a bpttbench .npz (either key style), in the file's dtype."""
        arrays = read_arrays(Path(path))
        dtype = np.result_type(*arrays.values())
        theta, vocab_size, hidden = params.load_state_dict(arrays, dtype=dtype)
        module = cls(vocab_size, hidden, vocab).to(getattr(torch, np.dtype(dtype).name))
        state = params.state_dict(theta, vocab_size, hidden)
        module.load_state_dict({key: torch.from_numpy(value) for key, value in state.items()}, strict=True)
        return module

    @classmethod
    def from_run(cls, run_dir: Path, scheme: str | None = None, seed: int | None = None,
                 stage: str = "final") -> "CharLSTM":
        """The weights a `bpttbench run --save-weights` saved: `stage` 'final' (after training) or 'init'.

        scheme and seed may be left out when the run has only one of each; vocab is set from vocab.json.
        """
        weights = choose_weights(Path(run_dir), scheme, seed, stage)
        return cls.from_npz(weights.path, read_vocab(run_dir))

    def to_npz(self, path: Path) -> Path:
        """Save the weights as bpttbench saves them (an .npz of this module's state_dict)."""
        arrays = {key: value.detach().cpu().numpy() for key, value in self.state_dict().items()}
        atomic_write(Path(path), lambda f: np.savez(f, **arrays), binary=True)
        return Path(path)


@torch.no_grad()
def evaluate_streams(module: CharLSTM, ids, starts, lengths, burn_in: int) -> tuple[float, int]:
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


def validation_bpc(module: CharLSTM, ids) -> float:
    """Bits per character on ids read as a run's validation reads its split (train.validation_plan)."""
    from bpttbench.training.loop import validation_plan

    total, count = evaluate_streams(module, ids, *validation_plan(len(ids)))
    return total / count / math.log(2.0)
