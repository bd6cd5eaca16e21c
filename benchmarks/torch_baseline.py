"""The four truncation schemes written the way a PyTorch user writes them, for `bpttbench speed --against-torch`.

Same model and numbers as bpttbench (one-hot input, gate order i, f, g, o, a linear decoder,
the batch-mean cross-entropy of the newest k1 steps; parameters loaded from bpttbench's theta),
same streams and windows, plain SGD, eager mode; `bpttbench speed` sets one thread.

- chunked (k1 = k2 = k): nn.LSTM over the chunk from the carried state, detached; backward;
  step; carry the final state on.
- sliding: nn.LSTM over the last k2 steps from the stored state before the window (detached),
  backward of the newest k1 losses, step. The window is run as two calls so that the state the
  next window starts from (the state after step t + k1 - k2) comes out of this pass, as the
  scheme requires (nn.LSTM returns only the last cell state).
- single: nn.LSTMCell one step at a time, with the truncated-BPTT(k1, k2) pattern of the PyTorch
  forum (albanD's answer to "Implementing Truncated Backpropagation Through Time"): each step
  starts from a detached copy of the previous state that requires grad, the last k2 steps'
  graphs are retained, and an update walks them backwards, one `backward` per step, feeding
  each step's input-state gradient to the step before. The weights are updated through `.data`
  (the usual idiom when a retained graph still holds them), so every retained step's backward
  sees the current weights: exactly `single`.
- stored: as single, but each step runs on clones of W_hh and the decoder weights (the
  snapshots), so its backward uses the weights that computed it; gradients reach the
  parameters through the clones.

`TorchScheme(...).run(n)` returns the online losses, so tests can check that the two
implementations agree. PyTorch is an optional dependency: import this module only when it is
wanted (`pip install -e '.[torch]'`).
"""

from __future__ import annotations

import numpy as np

SCHEMES = ("chunked", "single", "stored", "sliding")


def require_torch():
    """Import torch, or raise a one-line UserError saying how to install it."""
    try:
        import torch
    except ImportError as exc:
        from bpttbench.errors import UserError

        raise UserError("--against-torch needs PyTorch, which is not installed; install the extra with "
                        "pip install -e '.[torch]' (the CPU build is enough)") from exc
    return torch


class TorchScheme:
    """One scheme's online training state in PyTorch; `run(n)` advances n steps (a multiple of k1)."""

    def __init__(self, scheme: str, theta: np.ndarray, vocab_size: int, hidden: int, train_ids: np.ndarray, *,
                 k1: int, k2: int, batch: int = 1, lr: float = 2e-3):
        torch = require_torch()
        from bpttbench.model import split_theta

        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
        if scheme == "chunked" and k1 != k2:
            raise ValueError(f"chunked needs k1 == k2, got k1={k1}, k2={k2}")
        if not 1 <= k1 <= k2:
            raise ValueError(f"need 1 <= k1 <= k2, got k1={k1}, k2={k2}")
        self.torch = torch
        self.scheme, self.V, self.H, self.B, self.k1, self.k2, self.lr = scheme, vocab_size, hidden, batch, k1, k2, lr
        dtype = torch.float64 if theta.dtype == np.float64 else torch.float32
        p = {k: torch.tensor(np.array(v), dtype=dtype) for k, v in split_theta(theta, vocab_size, hidden).items()}
        self.lstm = torch.nn.LSTM(vocab_size, hidden).to(dtype)
        self.decoder = torch.nn.Linear(hidden, vocab_size).to(dtype)
        with torch.no_grad():
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(self.lstm, name).copy_(p[name])
            self.decoder.weight.copy_(p["decoder.weight"])
            self.decoder.bias.copy_(p["decoder.bias"])
        self.params = list(self.lstm.parameters()) + list(self.decoder.parameters())
        ids = np.ascontiguousarray(train_ids, dtype=np.int64)
        self.track_len = len(ids) // batch
        if self.track_len < 2:
            raise ValueError(f"{len(ids)} training characters cannot feed {batch} streams")
        self.ids = torch.tensor(ids)
        self.starts = torch.arange(batch) * self.track_len
        self.eye = torch.eye(vocab_size, dtype=dtype)
        zero = torch.zeros(batch, hidden, dtype=dtype)
        self.t = 0
        self.carried = (zero, zero)  # chunked: the state carried on; sliding: the state before the next window
        self.window = []  # single/stored: (state_in, state_out, loss) of the retained steps, oldest first

    # ------------------------------------------------------------------ shared pieces
    def inputs(self, t: int):
        """(one-hot x (B, V), targets y (B,)) of step t (1-based) for every stream."""
        p = (t - 1) % (self.track_len - 1)
        return self.eye[self.ids[self.starts + p]], self.ids[self.starts + p + 1]

    def loss(self, h, y, weight=None):
        weight = self.decoder.weight if weight is None else weight
        return self.torch.nn.functional.cross_entropy(self.torch.nn.functional.linear(h, weight, self.decoder.bias), y)

    def sgd_step(self):
        """p -= lr * grad through .data: the retained graphs keep the live weights (see `single`)."""
        with self.torch.no_grad():
            for p in self.params:
                if p.grad is not None:
                    p.data.add_(p.grad, alpha=-self.lr)
                    p.grad = None

    def run(self, n_steps: int) -> list[float]:
        if n_steps % self.k1:
            raise ValueError(f"{n_steps} steps is not a whole number of update periods k1={self.k1}")
        step = {"chunked": self._chunked, "sliding": self._sliding, "single": self._retained,
                "stored": self._retained}[self.scheme]
        losses: list[float] = []
        for _ in range(n_steps // self.k1):
            losses.extend(step())
        return losses

    # ------------------------------------------------------------------ chunked, sliding: nn.LSTM
    def _lstm(self, first: int, last: int, state):
        xs = self.torch.stack([self.inputs(tau)[0] for tau in range(first, last + 1)])
        h0, c0 = state
        out, (h, c) = self.lstm(xs, (h0[None], c0[None]))
        return out, (h[0], c[0])

    def _chunked(self):
        first, t = self.t + 1, self.t + self.k1
        out, (h, c) = self._lstm(first, t, tuple(s.detach() for s in self.carried))
        losses = [self.loss(out[i], self.inputs(first + i)[1]) for i in range(self.k1)]
        self.torch.stack(losses).mean().backward()
        self.sgd_step()
        self.carried, self.t = (h.detach(), c.detach()), t
        return [float(x.detach()) for x in losses]

    def _sliding(self):
        t = self.t + self.k1
        first = max(1, t - self.k2 + 1)
        split = t + self.k1 - self.k2  # the next window starts after this step
        start = tuple(s.detach() for s in self.carried)
        if split >= first:
            out_a, state = self._lstm(first, split, start)
            out_b, _ = self._lstm(split + 1, t, state)
            out = self.torch.cat([out_a, out_b])
            self.carried = tuple(s.detach() for s in state)
        else:
            out, _ = self._lstm(first, t, start)
        n = t - first + 1
        losses = [self.loss(out[i], self.inputs(first + i)[1]) for i in range(n - self.k1, n)]
        self.torch.stack(losses).mean().backward()
        self.sgd_step()
        self.t = t
        return [float(x.detach()) for x in losses]

    # ------------------------------------------------------------------ single, stored: retained graphs
    def _retained(self):
        torch = self.torch
        out = []
        for _ in range(self.k1):
            self.t += 1
            x, y = self.inputs(self.t)
            prev = self.window[-1][1] if self.window else self.carried
            state_in = tuple(s.detach().requires_grad_() for s in prev)
            if self.scheme == "stored":  # this step's weights, kept for its backward pass
                w_hh, w_dec = self.lstm.weight_hh_l0.clone(), self.decoder.weight.clone()
            else:
                w_hh, w_dec = self.lstm.weight_hh_l0, None
            h, c = torch._VF.lstm_cell(x, state_in, self.lstm.weight_ih_l0, w_hh, self.lstm.bias_ih_l0,
                                       self.lstm.bias_hh_l0)
            loss = self.loss(h, y, w_dec)
            self.window.append((state_in, (h, c), loss))
            out.append(float(loss.detach()))
            if len(self.window) > self.k2:
                self.window.pop(0)
        # backward through the window, newest step first, one step's graph at a time
        grad_h = grad_c = None
        newest = len(self.window) - self.k1
        for i in range(len(self.window) - 1, -1, -1):
            state_in, (h, c), loss = self.window[i]
            tensors, grads = [], []
            if i >= newest:
                tensors.append(loss / self.k1)
                grads.append(None)
            if grad_h is not None:
                tensors += [h, c]
                grads += [grad_h, grad_c]
            torch.autograd.backward(tensors, grads, retain_graph=True)
            grad_h, grad_c = state_in[0].grad, state_in[1].grad
            state_in[0].grad = state_in[1].grad = None
        self.sgd_step()
        return out
