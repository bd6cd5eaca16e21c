"""The LSTM written out in PyTorch, for the torch peer's cell, script and compile variants
(bpttbench/peers/torch_peer.py). Imports torch: torch_peer imports this module only when one of
those variants is built."""

from __future__ import annotations

import warnings
from typing import List, Tuple

import torch
import torch.nn.functional as F

_compiled: dict = {}  # "script" / "compile" -> the compiled function, made once per process


def lstm_window(xp: torch.Tensor, h: torch.Tensor, c: torch.Tensor, W_hh: torch.Tensor,
                keep: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the steps of xp (T, B, 4H: W_ih x + biases) from (h, c): every step's h (T, B, H), and
    (h, c) after step `keep` (0-based; the state given if keep < 0)."""
    W_hhT = W_hh.t()
    hs: List[torch.Tensor] = []
    h_keep, c_keep = h, c
    for t in range(xp.size(0)):
        i, f, g, o = torch.addmm(xp[t], h, W_hhT).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        hs.append(h)
        if t == keep:
            h_keep, c_keep = h, c
    return torch.stack(hs), h_keep, c_keep


def window_loss(W_ihT, W_hh, b_ih, b_hh, W_dec, b_dec, h, c, x, y, keep: int, n_loss: int, run_window=lstm_window):
    """(mean loss, per-row losses, h, c) of a window of characters x (T, B) with targets y from (h, c):
    the losses of its newest n_loss steps and the state after step keep (see lstm_window). The input
    projection is a gather of W_ih^T's rows (V, 4H), not a one-hot product."""
    xp = F.embedding(x, W_ihT) + (b_ih + b_hh)
    hs, h, c = run_window(xp, h, c, W_hh, keep)
    logits = F.linear(hs[hs.size(0) - n_loss :], W_dec, b_dec)
    losses = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y[y.size(0) - n_loss :].reshape(-1),
                             reduction="none")
    return losses.mean(), losses, h, c


def scripted_window():
    """lstm_window under torch.jit.script (its DeprecationWarning silenced)."""
    if "script" not in _compiled:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            _compiled["script"] = torch.jit.script(lstm_window)
    return _compiled["script"]


def compiled_loss():
    """window_loss under torch.compile: Inductor, one graph, static shapes."""
    if "compile" not in _compiled:
        _compiled["compile"] = torch.compile(window_loss, fullgraph=True, dynamic=False)
    return _compiled["compile"]


def loss_function(variant: str):
    """window_loss as the variant runs it: cell (eager), script (its loop scripted), compile."""
    if variant == "script":
        window = scripted_window()
        return lambda *args: window_loss(*args, run_window=window)
    if variant == "compile":
        return compiled_loss()
    return window_loss
