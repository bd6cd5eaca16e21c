"""The four truncation schemes in eager PyTorch, written for speed, for `bpttbench speed --against torch`.

Same model and numbers as bpttbench (one-hot input, gate order i, f, g, o, a linear decoder,
the batch-mean cross-entropy of the newest k1 steps; parameters loaded from bpttbench's theta),
same streams and windows, plain SGD, inject = new. Written as an experienced PyTorch user
would for one CPU thread: one fused call where the scheme allows it, no read-back of a loss
inside the loop (the online losses stay on the device and come back once per `run`), graphs
freed at every update, the SGD step as one foreach call. One thread is the caller's to set
(torch.set_num_threads(1): bpttbench.speed.one_thread does, and benchmarks/peer_variants.py).

- chunked (k1 = k2 = k): one nn.LSTM call over the chunk from the carried (detached) state,
  one cross_entropy over the chunk's k x B logits, backward, step, carry the final state on.
- sliding: nn.LSTM over the last k2 steps from the stored state before the window, backward
  of the newest k1 losses only (the decoder runs on those k1 outputs alone), step. The window
  runs as two calls, [first, split] and [split + 1, t], because the next window starts from
  the state after step split = t + k1 - k2 of this pass and nn.LSTM returns only the last
  cell state; a first part of one step (k1 = 1) runs as one LSTM cell, cheaper than an
  nn.LSTM call.
- single, stored: autograd cannot express them in one backward per update. Their gradient
  runs the window's backward with the activations stored at forward time, which a graph
  would keep, but a graph of the last k2 steps would reach back to step 1 unless cut at every
  step, and then an update needs k2 chained backward calls (the forum recipe, about 3.4 ms
  per step here). So the forward step is written out (inference mode, no graph) and stores,
  per step, the Jacobian factors of its gates and the head's gradient; an update is the
  LSTM's backward recursion over those factors, newest step first, five tensor ops a step,
  then one GEMM each for dW_hh, the index_add into W_ih's columns and the decoder, applied
  straight into the weights. single multiplies by the current W_hh; stored by a ring of k2
  snapshots of W_hh, each copied when its step ran. (The head's part of the gradient, taken
  only for the newest k1 steps, meets weights unchanged since those steps ran: its decoder
  snapshot is the current decoder, so stored keeps no decoder copies.)

Variants (chunked and sliding; single and stored have the one form above):
  current     the form above. In float32, nn.LSTM runs as oneDNN's fused LSTM (one
              mkldnn_rnn_layer call forward, one backward); in float64 oneDNN does not apply and
              it runs its native loop of per-step ops (the trajectory tests check both: float64
              to 1e-10, float32 to float32's precision).
  native-rnn  nn.LSTM with oneDNN switched off (torch.backends.mkldnn.enabled), its native loop
  cell        the LSTM written out (bpttbench/peers/torch_cell.py), eager: the input projection
              gathered (embedding of the characters in W_ih^T, no one-hot product), one addmm and
              the gate ops per step, the states of every step kept, so that sliding needs one
              pass over its window
  script      cell with its loop over the steps under torch.jit.script (deprecated by PyTorch
              in favour of torch.compile; its DeprecationWarning is silenced here)
  compile     the update's forward (projection, loop, decoder, loss) under torch.compile
              (Inductor, fullgraph, static shapes; the backward compiled by AOTAutograd). Needs
              a C++ compiler; the first call of each shape compiles for tens of seconds.
              sliding's first windows, shorter than k2, run eagerly (one shape to compile).
VARIANTS lists those benchmarks/peer_variants.py times; DEFAULT_VARIANTS is the one `bpttbench
speed --against torch` times, per scheme (a (scheme, batch) key wins over the scheme's own).

`TorchScheme(...).run(n)` returns the online losses (nats, per step, mean over streams) as a
NumPy array, so tests can check that both implementations follow one trajectory. PyTorch is an
optional dependency (pip install 'bpttbench[torch]'): this module imports it only in require().
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import numpy as np

SCHEMES = ("chunked", "single", "stored", "sliding")
# The GRU and the RNN run chunked and sliding as torch.nn.GRU / torch.nn.RNN with autograd (the forms
# `current` and `native-rnn`); single's and stored's written-out backward is the LSTM's.
CELL_SCHEMES = {"lstm": SCHEMES, "gru": ("chunked", "sliding"), "rnn": ("chunked", "sliding")}
VARIANT_SCHEMES = ("chunked", "sliding")  # the schemes that have variants
VARIANTS = ("current", "native-rnn", "cell", "script", "compile")
# What `bpttbench speed --against torch` times: scheme (or (scheme, batch)) -> variant name.
DEFAULT_VARIANTS: dict = {"chunked": "current", "sliding": "current"}


def require():
    """Import torch, or raise a one-line UserError naming the extra to install."""
    try:
        import torch
    except ImportError as exc:
        from bpttbench.peers import missing_framework

        raise missing_framework("torch") from exc
    return torch


def default_variant(scheme: str, batch: int) -> str:
    return DEFAULT_VARIANTS.get((scheme, batch), DEFAULT_VARIANTS.get(scheme, "current"))


class TorchScheme:
    """One scheme's online training state in PyTorch; `run(n)` advances n steps (a multiple of k1).
    `variant` names the form of chunked and sliding (None: DEFAULT_VARIANTS'); single and stored
    have one form ("current")."""

    def __init__(self, scheme: str, theta: np.ndarray, vocab_size: int, hidden: int, train_ids: np.ndarray, *,
                 k1: int, k2: int, batch: int = 1, lr: float = 2e-3, variant: str | None = None, cell: str = "lstm"):
        torch = require()
        from bpttbench.model import split_theta

        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
        if scheme not in CELL_SCHEMES.get(cell, ()):
            raise ValueError(f"the PyTorch peer has no {scheme} for the {cell} cell")
        if cell != "lstm":  # torch.nn's module is the GRU's and the RNN's form
            variant = variant or "current"
        if scheme == "chunked" and k1 != k2:
            raise ValueError(f"chunked needs k1 == k2, got k1={k1}, k2={k2}")
        if not 1 <= k1 <= k2:
            raise ValueError(f"need 1 <= k1 <= k2, got k1={k1}, k2={k2}")
        if scheme in VARIANT_SCHEMES:
            variant = variant or default_variant(scheme, batch)
            if variant not in VARIANTS:
                raise ValueError(f"unknown PyTorch peer variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        elif variant not in (None, "current"):
            raise ValueError(f"{scheme} has one form in the PyTorch peer; variants are for {', '.join(VARIANT_SCHEMES)}")
        if cell != "lstm" and variant not in ("current", "native-rnn"):
            raise ValueError(f"the {cell} cell runs as torch.nn's module (current, native-rnn), not {variant!r}")
        self.variant = variant or "current"
        self.cell = cell
        self.torch = torch
        self.scheme, self.V, self.H, self.B, self.k1, self.k2, self.lr = scheme, vocab_size, hidden, batch, k1, k2, lr
        self.dtype = dtype = torch.float64 if theta.dtype == np.float64 else torch.float32
        ids = np.ascontiguousarray(train_ids, dtype=np.int64)
        self.track_len = L = len(ids) // batch
        if L < 2:
            raise ValueError(f"{len(ids)} training characters cannot feed {batch} streams")
        # tracks[p, b] = character p of stream b; step t reads position (t - 1) mod (L - 1)
        self.tracks = torch.tensor(ids[np.arange(batch)[None, :] * L + np.arange(L)[:, None]])
        self.eye = torch.eye(vocab_size, dtype=dtype)
        self.t = 0
        p = {k: torch.tensor(np.array(v), dtype=dtype) for k, v in split_theta(theta, vocab_size, hidden).items()}
        if scheme in ("single", "stored"):
            self._init_manual(p)
        elif self.variant in ("current", "native-rnn"):
            self._init_autograd(p)
        else:
            self._init_cell(p)

    def run(self, n_steps: int) -> np.ndarray:
        """Advance n_steps; the online loss of each step (nats, mean over streams), read back once."""
        if n_steps % self.k1:
            raise ValueError(f"{n_steps} steps is not a whole number of update periods k1={self.k1}")
        torch = self.torch
        if self.scheme in ("chunked", "sliding"):
            step = self._chunked if self.scheme == "chunked" else self._sliding
            with self._no_onednn() if self.variant == "native-rnn" else nullcontext():
                parts = [step() for _ in range(n_steps // self.k1)]  # (k1 x B) per-stream losses, detached
            with torch.no_grad():
                return torch.cat(parts).view(n_steps, self.B).mean(1).numpy().astype(np.float64)
        with torch.inference_mode():
            out = torch.empty(n_steps, self.B, dtype=self.dtype)
            xs, ys = self._ids(self.t + 1, self.t + n_steps)
            for j in range(0, n_steps, self.k1):
                self._manual_update(out[j : j + self.k1], xs[j : j + self.k1], ys[j : j + self.k1])
            return out.mean(1).numpy().astype(np.float64)

    @contextmanager
    def _no_onednn(self):
        """oneDNN off for nn.LSTM (native-rnn), as it was after. (torch.backends.mkldnn.flags would also
        set oneDNN's TF32 switch, with a warning on CPU builds.)"""
        mkldnn = self.torch.backends.mkldnn
        before = mkldnn.enabled
        mkldnn.enabled = False
        try:
            yield
        finally:
            mkldnn.enabled = before

    def state_dict(self) -> dict[str, np.ndarray]:
        """The current parameters by PyTorch name, as NumPy arrays."""
        if self.scheme in ("single", "stored"):
            named = dict(zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "decoder.weight",
                              "decoder.bias"), (self.W_ihT.t(), self.W_hh, self.b_ih, self.b_hh, self.W_dec,
                                                self.b_dec)))
        elif self.variant in ("current", "native-rnn"):
            named = dict(self.recurrent.named_parameters())
            named.update({f"decoder.{k}": v for k, v in self.decoder.named_parameters()})
        else:
            W_ihT, *rest = self.params
            named = dict(zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "decoder.weight",
                              "decoder.bias"), (W_ihT.t(), *rest)))
        return {k: v.detach().numpy().copy() for k, v in named.items()}

    def _ids(self, first: int, last: int):
        """(inputs, targets), each (last - first + 1, B) character ids, of steps first..last."""
        p0, n, period = (first - 1) % (self.track_len - 1), last - first + 1, self.track_len - 1
        if p0 + n <= period:  # no wrap-around: views
            return self.tracks[p0 : p0 + n], self.tracks[p0 + 1 : p0 + n + 1]
        pos = self.torch.arange(first - 1, last) % period
        return self.tracks[pos], self.tracks[pos + 1]

    def _sgd(self, loss):
        torch = self.torch
        grads = torch.autograd.grad(loss, self.params)  # no .grad fields to zero
        with torch.no_grad():
            torch._foreach_add_(self.params, grads, alpha=-self.lr)

    def _chunked(self):
        return self._chunked_module() if self.variant in ("current", "native-rnn") else self._window_cell()

    def _sliding(self):
        return self._sliding_module() if self.variant in ("current", "native-rnn") else self._window_cell()

    # ------------------------------------------------------------------ chunked, sliding: torch.nn's cell + autograd
    def _init_autograd(self, p):
        torch = self.torch
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[self.cell]
        self.recurrent = module(self.V, self.H).to(self.dtype)
        self.decoder = torch.nn.Linear(self.H, self.V).to(self.dtype)
        with torch.no_grad():
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(self.recurrent, name).copy_(p[name])
            self.decoder.weight.copy_(p["decoder.weight"])
            self.decoder.bias.copy_(p["decoder.bias"])
        self.params = list(self.recurrent.parameters()) + list(self.decoder.parameters())
        zero = torch.zeros(1, self.B, self.H, dtype=self.dtype)
        # chunked: the state carried on; sliding: the state before the next window ((h, c), or h)
        self.carried = (zero, zero) if self.cell == "lstm" else zero

    def _detached(self, state):
        return (state[0].detach(), state[1].detach()) if self.cell == "lstm" else state.detach()

    def _one_step(self, x, state):
        """One step of the cell by its fused ATen kernel (cheaper than a module call): (output, state)."""
        r, VF = self.recurrent, self.torch._VF
        weights = (r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0, r.bias_hh_l0)
        if self.cell == "lstm":
            h, c = VF.lstm_cell(x, (state[0][0], state[1][0]), *weights)
            return h[None], (h[None], c[None])
        h = (VF.gru_cell if self.cell == "gru" else VF.rnn_tanh_cell)(x, state[0], *weights)[None]
        return h, h

    def _chunked_module(self):
        first, t = self.t + 1, self.t + self.k1
        xs, ys = self._ids(first, t)
        out, state = self.recurrent(self.eye[xs], self.carried)
        losses = self.torch.nn.functional.cross_entropy(self.decoder(out).view(-1, self.V), ys.reshape(-1),
                                                        reduction="none")
        self._sgd(losses.mean())
        self.carried, self.t = self._detached(state), t
        return losses.detach()

    def _sliding_module(self):
        t = self.t + self.k1
        first = max(1, t - self.k2 + 1)
        split = t + self.k1 - self.k2  # the next window starts after this step
        xs, ys = self._ids(first, t)
        xs = self.eye[xs]
        m = split - first + 1  # steps up to split
        if m > 0:
            if m == 1:  # (k1 = 1) one step: the cell is cheaper than a module call
                out, state = self._one_step(xs[0], self.carried)
            else:
                out, state = self.recurrent(xs[:m], self.carried)
            if m < len(xs):
                rest, _ = self.recurrent(xs[m:], state)
                out = rest if len(rest) >= self.k1 else self.torch.cat([out, rest])
            self.carried = self._detached(state)
        else:
            out, _ = self.recurrent(xs, self.carried)
        losses = self.torch.nn.functional.cross_entropy(self.decoder(out[-self.k1 :]).view(-1, self.V),
                                                        ys[-self.k1 :].reshape(-1), reduction="none")
        self._sgd(losses.mean())
        self.t = t
        return losses.detach()

    # ------------------------------------------------------------------ chunked, sliding: the LSTM written out
    def _init_cell(self, p):
        torch = self.torch
        self.params = [p["weight_ih_l0"].t().contiguous(), p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"],
                       p["decoder.weight"], p["decoder.bias"]]  # W_ih^T (V, 4H): a step gathers B of its rows
        for w in self.params:
            w.requires_grad_(True)
        zero = torch.zeros(self.B, self.H, dtype=self.dtype)
        self.carried = (zero, zero)
        from bpttbench.peers import torch_cell

        self.window_loss, self.loss_fn = torch_cell.window_loss, torch_cell.loss_function(self.variant)

    def _window_cell(self):
        """One update of chunked or sliding: the window from the carried state, the newest k1 losses."""
        t = self.t + self.k1
        first = max(1, t - self.k2 + 1)  # chunked: t - k1 + 1
        keep = t + self.k1 - self.k2 - first if self.scheme == "sliding" else t - first  # < 0: the state stays
        xs, ys = self._ids(first, t)
        fn = self.loss_fn if t - first + 1 == self.k2 else self.window_loss  # compile: full windows only
        loss, losses, h, c = fn(*self.params, *self.carried, xs, ys, keep, self.k1)
        self._sgd(loss)
        self.carried, self.t = (h.detach(), c.detach()), t
        return losses.detach()
    # ------------------------------------------------------------------ single, stored: written-out backward
    def _init_manual(self, p):
        torch = self.torch
        B, H, V, K = self.B, self.H, self.V, self.k2
        z = lambda *shape: torch.zeros(*shape, dtype=self.dtype)  # noqa: E731
        self.W_ihT = p["weight_ih_l0"].t().contiguous()  # (V, 4H): a step gathers B rows
        self.W_hh, self.b_ih, self.b_hh = p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]
        self.W_dec, self.b_dec = p["decoder.weight"], p["decoder.bias"]
        self.W_hhT, self.W_decT = self.W_hh.t(), self.W_dec.t()  # views: they follow in-place updates
        self.bias = self.b_ih + self.b_hh
        # Rings of the last k2 steps, slot (t - 1) mod k2; slots not yet written hold zeros, which add
        # nothing to the gradient. Per-slot views are cut once: indexing a tensor costs an op per call.
        self.x_ring = torch.zeros(K, B, dtype=torch.int64)
        self.h_ring = z(K, B, H)  # h of each step
        self.hp_ring = z(K, B, H)  # the state it started from (the oldest step's is overwritten in h_ring)
        self.sig_ring = z(K, B, 4 * H)  # sigmoid of every gate pre-activation (f is read from it)
        self.P = z(K, B, 4, H)  # dz = dc * P + dh * Q, dc the cell gradient from the later step
        self.Q = z(K, B, 4, H)
        self.AF = z(K, B, H)  # dc_prev = dc * f + dh * AF
        self.head = z(K, B, H)  # the head's gradient wrt h, scaled as the update weights the loss
        self.dlogits = z(K, B, V)  # softmax - onehot, unscaled
        self.dZ = z(K, B, 4, H)
        self.W_snap = z(K, 4 * H, H) if self.scheme == "stored" else None
        u = lambda a: list(a.unbind(0))  # noqa: E731
        self.s_x, self.s_h, self.s_sig, self.s_AF, self.s_head, self.s_dl = map(
            u, (self.x_ring, self.h_ring, self.sig_ring, self.AF, self.head, self.dlogits))
        self.s_hp = u(self.hp_ring)
        self.s_f = [a[:, H : 2 * H] for a in self.s_sig]
        self.s_P, self.s_Q, self.s_dZ = u(self.P), u(self.Q), u(self.dZ)
        self.s_P0, self.s_P1, self.s_P2 = ([a[:, j] for a in self.s_P] for j in range(3))
        self.s_Q012, self.s_Q3 = [a[:, :3] for a in self.s_Q], [a[:, 3] for a in self.s_Q]
        self.s_P012 = [a[:, :3] for a in self.s_P]
        self.s_dZ2 = [a.view(B, 4 * H) for a in self.s_dZ]
        self.s_W = u(self.W_snap) if self.W_snap is not None else [self.W_hh] * K
        self.dZ_all = self.dZ.view(K * B, 4 * H)
        self.h0 = z(B, H)  # the state before step 1
        self.h, self.c = self.h0, z(B, H)
        self.dh3 = z(B, 1, H)  # the backward's dh, shaped to broadcast over the 4 gates
        self.dh, self.dc = self.dh3.view(B, H), z(B, H)
        self.scale = 1.0 / (self.k1 * B)
        self.rows = torch.arange(B)
        self.minus_one = torch.tensor(-1.0, dtype=self.dtype)

    def _forward(self, loss_out, x, y):
        """One LSTM step with the current weights; stores what the window's backward needs."""
        torch, H = self.torch, self.H
        s = self.t % self.k2
        self.t += 1
        self.s_x[s].copy_(x)
        self.s_hp[s].copy_(self.h)
        if self.W_snap is not None:
            self.s_W[s].copy_(self.W_hh)
        z = torch.addmm(self.W_ihT[x], self.h, self.W_hhT).add_(self.bias)
        sig = torch.sigmoid(z, out=self.s_sig[s])
        i, f, o = sig[:, :H], sig[:, H : 2 * H], sig[:, 3 * H :]
        g = torch.tanh(z[:, 2 * H : 3 * H])
        ig = i * g
        c = torch.addcmul(ig, f, self.c)
        tc = torch.tanh(c)
        h = torch.mul(o, tc, out=self.s_h[s])
        logp = torch.log_softmax(torch.addmm(self.b_dec, h, self.W_decT), 1)
        torch.neg(logp[self.rows, y], out=loss_out)
        # this step's Jacobian factors, fixed: single and stored backpropagate through stored activations
        dsig = torch.addcmul(sig, sig, sig, value=-1)
        A = torch.addcmul(o, h, tc, value=-1)  # o (1 - tanh(c)^2): dL/dc from dL/dh
        torch.mul(g, dsig[:, :H], out=self.s_P0[s])
        torch.mul(self.c, dsig[:, H : 2 * H], out=self.s_P1[s])
        torch.addcmul(i, ig, g, value=-1, out=self.s_P2[s])
        torch.mul(self.s_P012[s], A.unsqueeze(1), out=self.s_Q012[s])
        torch.mul(tc, dsig[:, 3 * H :], out=self.s_Q3[s])
        torch.mul(A, f, out=self.s_AF[s])
        dl = torch.exp(logp, out=self.s_dl[s])
        dl.index_put_((self.rows, y), self.minus_one, accumulate=True)
        torch.addmm(self.head[s], dl, self.W_dec, beta=0, alpha=self.scale, out=self.s_head[s])
        self.h, self.c = h, c

    def _manual_update(self, loss_out, xs, ys):
        torch, K, B, lr = self.torch, self.k2, self.B, self.lr
        for j in range(self.k1):
            self._forward(loss_out[j], xs[j], ys[j])
        t = self.t
        n = min(t, K)  # steps in the window
        newest = t - self.k1  # steps after this one have their loss in the objective
        dh, dh3, dc = self.dh, self.dh3, self.dc
        dh.copy_(self.s_head[(t - 1) % K])
        dc.zero_()
        for tau in range(t, t - n, -1):
            s = (tau - 1) % K
            torch.mul(dc.unsqueeze(1), self.s_P[s], out=self.s_dZ[s]).addcmul_(dh3, self.s_Q[s])
            dc.mul_(self.s_f[s]).addcmul_(dh, self.s_AF[s])
            if tau - 1 > t - n:
                if tau - 1 > newest:
                    torch.addmm(self.s_head[s - 1], self.s_dZ2[s], self.s_W[s], out=dh)
                else:
                    torch.mm(self.s_dZ2[s], self.s_W[s], out=dh)
        # the window's parameter gradients, applied straight into the weights (plain SGD)
        dZ = self.dZ_all
        self.W_hh.addmm_(dZ.t(), self.hp_ring.view(K * B, self.H), alpha=-lr)
        self.W_ihT.index_add_(0, self.x_ring.view(-1), dZ, alpha=-lr)
        db = dZ.sum(0)
        self.b_ih.add_(db, alpha=-lr)
        self.b_hh.add_(db, alpha=-lr)
        torch.add(self.b_ih, self.b_hh, out=self.bias)
        if self.k1 == 1:
            s = (t - 1) % K
            dl, h = self.s_dl[s], self.s_h[s]
        else:
            new = [(tau - 1) % K for tau in range(t - self.k1 + 1, t + 1)]
            dl, h = self.dlogits[new].view(-1, self.V), self.h_ring[new].view(-1, self.H)
        self.W_dec.addmm_(dl.t(), h, alpha=-lr * self.scale)
        self.b_dec.add_(dl.sum(0), alpha=-lr * self.scale)
