"""The four truncation schemes in JAX, for `bpttbench speed --against jax`.

Same model, streams, windows and numbers as bpttbench and the PyTorch peer (one-hot input, gate
order i, f, g, o, a linear decoder, the batch-mean cross-entropy of the newest k1 steps, plain SGD,
inject = new). Written as a JAX user would write it for speed: a whole block of updates is one
`jax.jit` call whose carry (parameters, the scheme's state, the step count) is donated, a
`lax.scan` over the updates carrying the parameters and the scheme's state, the block's online
losses returned once, XLA on one CPU thread.

- chunked (k1 = k2 = k): `value_and_grad` of the chunk's mean loss, a `lax.scan` over its k
  steps from the carried state (the input projection of all k steps done before the scan),
  SGD, the final state carried on.
- sliding: `value_and_grad` of the newest k1 losses of a `lax.scan` over the last k2 steps
  from the state before the window, which also returns the state after step t + k1 - k2 (the
  next window's start). The window has a fixed length, so near the start the steps before
  step 1 are masked: they leave the zero state as it is.
- single, stored: the gradient runs the backward pass through the activations stored at
  forward time with the current W_hh (single) or each step's own W_hh (stored), which
  `jax.grad` of a function cannot express; a block scans over forward steps that write rings
  of the last k2 steps' activations (and, for stored, W_hh snapshots), and each update is the
  LSTM's backward recursion as a reverse `lax.scan` over the rings, then one GEMM per weight
  tensor. Ring slots not written yet hold zeros, which contribute nothing. (XLA copies each
  stored snapshot out of the ring before its product, a cost the Numba kernels do not pay; a
  broadcast-and-sum in its place ran ten times slower, and static slots would mean unrolling
  k2 x k2 steps.) The k1 forward steps of an update are unrolled: as a scan, the rings in
  its carry were copied in and out at every update. The head's part
  of the gradient (newest k1 steps only) meets the weights that ran those steps, so stored
  needs no decoder snapshots.

Variants (chunked and sliding; single and stored have the one form above). A variant's name is
its departures from the form above joined by "+", e.g. "take+unroll-full":
  current       the form above: characters gathered inside the call from the streams kept on the
                device, by step number; the input projection as rows of the transposed W_ih
                (W_ih^T[x]); the window's scan not unrolled; the carry donated
  args          each block's characters cut on the host (NumPy) and passed in with the call
  no-donate     the carry not donated (XLA allocates new parameter buffers every call)
  take          the input projection as columns of W_ih (jnp.take(W_ih, x, axis=1)): no transposed
                copy of W_ih, and its gradient a scatter into W_ih's columns
  onehot        the input projection as a product one_hot(x) @ W_ih^T (the model's definition)
  unroll<N>     lax.scan(..., unroll=N) over the window's steps; unroll-full unrolls all of them
  in-out        the weight matrices kept as (inputs, outputs), as Flax's Dense keeps its kernel, for the
                whole run (transposed once, in and out): every product reads them untransposed
VARIANTS lists those benchmarks/peer_variants.py times; DEFAULT_VARIANTS is the one `bpttbench
speed --against jax` times, per scheme (a (scheme, batch) key wins over the scheme's own).

One thread. XLA's CPU backend reads how many threads it may use when it starts, so the choice
is the process's, made before JAX is imported (or at least before its first computation):
ONE_THREAD, or the environment variable BPTTBENCH_JAX_ONE_THREAD, is
  flags         XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
                (single-threaded Eigen products, no intra-op pool)
  affinity      os.sched_setaffinity pins the process's main thread to one CPU before JAX is
                imported, so that XLA sizes its pools to that one CPU and every thread it starts
                inherits the pin. This pins the whole process: bpttbench's kernels and PyTorch,
                timed beside JAX, run on that CPU too (they run on one thread anyway). Pinning
                needs JAX not yet imported; if it was, require() leaves the affinity alone and
                ONE_THREAD_APPLIED says so.
  flags+affinity  both.

`JaxScheme(...).run(n)` returns the online losses (nats, per step, mean over streams) as a
NumPy array. JAX is an optional dependency (pip install 'bpttbench[jax]'); this module imports
it only in require(). float64 weights switch on `jax_enable_x64` for the process.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

SCHEMES = ("chunked", "single", "stored", "sliding")
# The GRU and the RNN run chunked and sliding (value_and_grad through the cell); single's and stored's
# written-out backward is the LSTM's.
CELL_SCHEMES = {"lstm": SCHEMES, "gru": ("chunked", "sliding"), "rnn": ("chunked", "sliding")}
VARIANT_SCHEMES = ("chunked", "sliding")  # the schemes that have variants
VARIANTS = ("current", "args", "no-donate", "take", "onehot", "unroll2", "unroll5", "unroll-full",
            "take+unroll-full", "onehot+unroll-full", "args+take+unroll-full", "in-out", "in-out+args",
            "in-out+unroll-full", "in-out+args+unroll-full")
# What `bpttbench speed --against jax` times: scheme (or (scheme, batch)) -> variant name.
# The fastest in benchmarks/peer_variants.py with XLA pinned (ONE_THREAD; docs/performance.md has the
# figures): with the gates cut by jnp.split, unrolling the window wins at B = 1 and loses at B = 32.
DEFAULT_VARIANTS: dict = {"chunked": "in-out", "sliding": "in-out",
                          ("chunked", 1): "in-out+unroll-full", ("sliding", 1): "in-out+unroll-full"}
# How XLA is held to one thread (see the module docstring); BPTTBENCH_JAX_ONE_THREAD overrides it.
ONE_THREAD = "flags+affinity"  # the fastest of the three in benchmarks/peer_variants.py (docs/performance.md)
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
THREADING_FLAGS = ("xla_cpu_multi_thread_eigen", "intra_op_parallelism_threads")
ONE_THREAD_APPLIED: str | None = None  # what require() did, once: e.g. "flags", "flags+affinity (cpu 1)"
NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "decoder.weight", "decoder.bias")


@dataclass(frozen=True)
class Variant:
    """One form of chunked and sliding (see the module docstring)."""

    inputs: str = "tracks"  # "tracks": gathered inside the call by step number; "args": cut on the host per block
    donate: bool = True  # the carry donated to each call
    xproj: str = "rows"  # "rows": W_ih^T[x]; "take": jnp.take(W_ih, x, axis=1); "onehot": one_hot(x) @ W_ih^T
    unroll: int | bool = 1  # lax.scan's unroll over the window's steps (True: all)
    in_out: bool = False  # weight matrices held as (inputs, outputs)


_TOKENS = {"current": {}, "tracks": dict(inputs="tracks"), "args": dict(inputs="args"), "donate": dict(donate=True),
           "no-donate": dict(donate=False), "rows": dict(xproj="rows"), "take": dict(xproj="take"),
           "onehot": dict(xproj="onehot"), "unroll-full": dict(unroll=True), "in-out": dict(in_out=True)}


def parse_variant(name: str) -> Variant:
    """The Variant a name such as "take+unroll-full" means (ValueError for an unknown part)."""
    variant = Variant()
    for token in name.split("+"):
        if re.fullmatch(r"unroll[1-9][0-9]*", token):
            variant = replace(variant, unroll=int(token[len("unroll"):]))
        elif token in _TOKENS:
            variant = replace(variant, **_TOKENS[token])
        else:
            raise ValueError(f"unknown part {token!r} of the JAX peer's variant {name!r}; the parts are "
                             f"{', '.join(_TOKENS)} and unroll<N>")
    return variant


def default_variant(scheme: str, batch: int) -> str:
    return DEFAULT_VARIANTS.get((scheme, batch), DEFAULT_VARIANTS.get(scheme, "current"))


def one_thread_mode() -> str:
    mode = os.environ.get("BPTTBENCH_JAX_ONE_THREAD", ONE_THREAD)
    if not mode or set(mode.split("+")) - {"flags", "affinity"}:
        from bpttbench.errors import UserError

        raise UserError(f"BPTTBENCH_JAX_ONE_THREAD={mode!r}: say flags, affinity or flags+affinity")
    return mode


def _one_thread() -> str:
    """Hold XLA to one thread as one_thread_mode() says; returns what was done."""
    parts = one_thread_mode().split("+")
    done = []
    if "flags" in parts:
        flags = os.environ.get("XLA_FLAGS", "")
        if "--xla_cpu_multi_thread_eigen=false" in flags:
            done.append("flags (as XLA_FLAGS gave them)")
        elif "jax" in sys.modules:  # XLA read its flags when it started: too late to set them
            done.append("no flags (jax imported before)")
        else:  # the caller's own threading flags (say, =true) give way to ours
            own = [f for f in flags.split() if not f.lstrip("-").startswith(THREADING_FLAGS)]
            os.environ["XLA_FLAGS"] = " ".join([*own, XLA_ONE_THREAD])
            done.append("flags")
    if "affinity" in parts:
        if "jax" in sys.modules or not hasattr(os, "sched_setaffinity"):
            done.append("no affinity (jax imported before)" if "jax" in sys.modules else "no affinity (not Linux)")
        else:
            cpu = min(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cpu})
            done.append(f"affinity (cpu {cpu})")
    return "+".join(done)


def one_thread_shortfall() -> str | None:
    """A one-line warning if require() could not hold XLA to one thread as one_thread_mode() asks
    (JAX was imported before it); None if it could."""
    if ONE_THREAD_APPLIED is None or "no " not in ONE_THREAD_APPLIED:
        return None
    return (f"the JAX peer is not held to one thread as asked ({ONE_THREAD_APPLIED}), so its times are not "
            "comparable: time it in a process that has not imported jax, such as `bpttbench speed --against jax`")


def require():
    """Import jax (on one CPU thread, see ONE_THREAD), or raise a one-line UserError naming the extra."""
    global ONE_THREAD_APPLIED
    if importlib.util.find_spec("jax") is None:
        from bpttbench.peers import missing_framework

        raise missing_framework("jax")
    if ONE_THREAD_APPLIED is None:
        ONE_THREAD_APPLIED = _one_thread()
    try:
        import jax
    except ImportError as exc:
        from bpttbench.peers import missing_framework

        raise missing_framework("jax") from exc
    return jax


def default_block_steps(scheme: str, k1: int) -> int:
    """Steps per jitted call: about 1,000 for chunked, 200 for the others (their steps cost more),
    a whole number of update periods. Dispatch then costs well under 1 % of a block."""
    target = 1000 if scheme == "chunked" else 200
    return k1 * max(1, round(target / k1))


class JaxScheme:
    """One scheme's online training state in JAX; `run(n)` advances n steps (a multiple of k1).

    Runs of `block_steps` steps reuse one compiled function; other lengths compile their own
    (timers call `run` with whole blocks only, after a warm-up call). `variant` names the form of
    chunked and sliding (None: DEFAULT_VARIANTS'); single and stored have one form ("current").
    """

    def __init__(self, scheme: str, theta: np.ndarray, vocab_size: int, hidden: int, train_ids: np.ndarray, *,
                 k1: int, k2: int, batch: int = 1, lr: float = 2e-3, block_steps: int | None = None,
                 variant: str | None = None, cell: str = "lstm"):
        jax = require()
        from bpttbench.model import split_theta

        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
        if scheme not in CELL_SCHEMES.get(cell, ()):
            raise ValueError(f"the JAX peer has no {scheme} for the {cell} cell")
        self.cell = cell
        if scheme == "chunked" and k1 != k2:
            raise ValueError(f"chunked needs k1 == k2, got k1={k1}, k2={k2}")
        if not 1 <= k1 <= k2:
            raise ValueError(f"need 1 <= k1 <= k2, got k1={k1}, k2={k2}")
        if scheme in VARIANT_SCHEMES:
            self.variant = variant or default_variant(scheme, batch)
            self.opts = parse_variant(self.variant)
        else:
            if variant not in (None, "current"):
                raise ValueError(f"{scheme} has one form in the JAX peer; variants are for {', '.join(VARIANT_SCHEMES)}")
            self.variant, self.opts = "current", Variant()
        if theta.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.scheme, self.V, self.H, self.B, self.k1, self.k2, self.lr = scheme, vocab_size, hidden, batch, k1, k2, lr
        self.block_steps = block_steps or default_block_steps(scheme, k1)
        if self.block_steps % k1:
            raise ValueError(f"block_steps={self.block_steps} is not a multiple of k1={k1}")
        dtype = jnp.float64 if theta.dtype == np.float64 else jnp.float32
        ids = np.ascontiguousarray(train_ids, dtype=np.int32)
        L = len(ids) // batch
        if L < 2:
            raise ValueError(f"{len(ids)} training characters cannot feed {batch} streams")
        self.host_tracks = ids[np.arange(batch)[None, :] * L + np.arange(L)[:, None]]  # (L, B)
        self.tracks = jnp.asarray(self.host_tracks)
        self.period = L - 1  # step t reads position (t - 1) mod (L - 1)
        params = {k: jnp.asarray(np.array(v.T if self.opts.in_out else v), dtype)
                  for k, v in split_theta(theta, vocab_size, hidden).items()}
        B, H, K = batch, hidden, k2
        zeros = lambda *shape: jnp.zeros(shape, dtype)  # noqa: E731
        state = {"h": zeros(B, H), "c": zeros(B, H)}
        if scheme in ("single", "stored"):
            state.update(x=jnp.zeros((K, B), jnp.int32), h_prev=zeros(K, B, H), c_prev=zeros(K, B, H),
                         gates=zeros(K, B, 4 * H), tc=zeros(K, B, H))
            if scheme == "stored":
                state["W_snap"] = zeros(K, 4 * H, H)
        self.carry = (params, state, jnp.asarray(0, jnp.int32))  # t: steps done
        self.steps = 0  # the same, on the host
        self._compiled = {}

    def run(self, n_steps: int) -> np.ndarray:
        """Advance n_steps; the online loss of each step (nats, mean over streams)."""
        if n_steps % self.k1:
            raise ValueError(f"{n_steps} steps is not a whole number of update periods k1={self.k1}")
        out = []
        done = 0
        while done < n_steps:
            n = min(self.block_steps, n_steps - done)
            fn = self._compiled.get(n)
            if fn is None:
                fn = self._compiled[n] = self.jax.jit(partial(self._block, n // self.k1),
                                                      donate_argnums=0 if self.opts.donate else ())
            inputs = self._host_inputs(self.steps, n // self.k1) if self.opts.inputs == "args" else None
            self.carry, losses = fn(self.carry, inputs)
            out.append(losses)
            done += n
            self.steps += n
        return np.concatenate([np.asarray(x, np.float64) for x in out])  # waits for the device

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: np.array(v.T if self.opts.in_out else v) for k, v in self.carry[0].items()}

    def _io(self, p, name):
        """Weight matrix `name` as (inputs, outputs), whichever way the variant holds it."""
        return p[name] if self.opts.in_out else p[name].T

    # ------------------------------------------------------------------ the model
    def _ids(self, t):
        """(inputs, targets) of step t (1-based, traced), each (B,)."""
        p = (t - 1) % self.period
        return self.tracks[p], self.tracks[p + 1]

    def _window(self) -> int:
        """Steps an update runs forward: its chunk (chunked) or its window (sliding)."""
        return self.k2 if self.scheme == "sliding" else self.k1

    def _host_inputs(self, t0: int, n_updates: int):
        """(inputs, targets), each (n_updates, window, B), of the updates after step t0 (variant args);
        steps before step 1 (sliding's first windows, masked) read step 1's."""
        W = self._window()
        taus = t0 + self.k1 * np.arange(1, n_updates + 1)[:, None] - W + 1 + np.arange(W)[None, :]
        pos = (np.maximum(taus, 1) - 1) % self.period
        return self.host_tracks[pos], self.host_tracks[pos + 1]

    def _cell(self, p, xp, h, c):
        """One step of the cell from the input projection xp = W_ih x + biases; returns h, c and the
        LSTM's gates (the GRU and the RNN carry c unchanged and return no gates)."""
        jax, jnp, H = self.jax, self.jnp, self.H
        W_hh = self._io(p, "weight_hh_l0")  # (H, G)
        # Gate blocks cut by jnp.split: XLA fused the step less well with one slice per gate
        # (chunked B = 1 about 1.5x slower; benchmarks/independent_jax.py, docs/performance.md).
        if self.cell == "gru":  # torch.nn.GRU: r gates W_hn h + b_hn (kept out of xp)
            x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
            h_r, h_z, h_n = jnp.split(h @ W_hh, 3, axis=-1)
            r = jax.nn.sigmoid(x_r + h_r)
            u = jax.nn.sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + r * (h_n + p["bias_hh_l0"][2 * H :]))
            return (1 - u) * n + u * h, c, None
        if self.cell == "rnn":
            return jnp.tanh(xp + h @ W_hh), c, None
        z_i, z_f, z_g, z_o = jnp.split(xp + h @ W_hh, 4, axis=-1)
        i, f, o = jax.nn.sigmoid(z_i), jax.nn.sigmoid(z_f), jax.nn.sigmoid(z_o)
        g = jnp.tanh(z_g)
        c = f * c + i * g
        tc = jnp.tanh(c)
        return o * tc, c, (i, f, g, o, tc)

    def _xproj(self, p, x):
        """W_ih x + biases for the characters x (any shape): (*x.shape, G); the GRU's b_hn left out."""
        jax, jnp, W = self.jax, self.jnp, p["weight_ih_l0"]
        if self.opts.xproj == "take" and not self.opts.in_out:
            proj = jnp.moveaxis(jnp.take(W, x, axis=1, mode="clip"), 0, -1)
        elif self.opts.xproj == "onehot":
            proj = jax.nn.one_hot(x, self.V, dtype=W.dtype) @ self._io(p, "weight_ih_l0")
        else:  # (in-out: W's rows, for take too)
            proj = self._io(p, "weight_ih_l0")[x]
        b_hh = p["bias_hh_l0"]
        if self.cell == "gru":
            b_hh = b_hh.at[2 * self.H :].set(0)
        return proj + p["bias_ih_l0"] + b_hh

    def _nll(self, p, h, y):
        """Per-stream cross-entropy (..., B) and log-softmax of the decoder's logits."""
        logp = self.jax.nn.log_softmax(h @ self._io(p, "decoder.weight") + p["decoder.bias"], axis=-1)
        return -self.jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0], logp

    def _sgd(self, params, grads):
        return self.jax.tree_util.tree_map(lambda w, g: w - self.lr * g, params, grads)

    def _block(self, n_updates, carry, inputs):
        step = {"chunked": self._chunked, "sliding": self._sliding, "single": self._retained,
                "stored": self._retained}[self.scheme]
        carry, losses = self.jax.lax.scan(step, carry, inputs, length=n_updates)  # (n_updates, k1)
        return carry, losses.reshape(-1)

    # ------------------------------------------------------------------ chunked
    def _chunked(self, carry, inputs):
        jax, jnp = self.jax, self.jnp
        params, state, t = carry
        xs, ys = inputs if inputs is not None else jax.vmap(self._ids)(t + 1 + jnp.arange(self.k1))

        def loss(p, h, c):
            def one(hc, xp):
                h, c, _ = self._cell(p, xp, *hc)
                return (h, c), h

            (h, c), hs = jax.lax.scan(one, (h, c), self._xproj(p, xs), unroll=self.opts.unroll)
            nll, _ = self._nll(p, hs, ys)  # (k, B)
            return nll.mean(), (nll.mean(1), h, c)

        (_, (per_step, h, c)), grads = jax.value_and_grad(loss, has_aux=True)(params, state["h"], state["c"])
        return (self._sgd(params, grads), {"h": h, "c": c}, t + self.k1), per_step

    # ------------------------------------------------------------------ sliding
    def _sliding(self, carry, inputs):
        jax, jnp, k1, k2 = self.jax, self.jnp, self.k1, self.k2
        params, state, t = carry
        taus = t + k1 - k2 + 1 + jnp.arange(k2)  # the window's steps; those before step 1 are masked
        active = taus >= 1
        xs, ys = inputs if inputs is not None else jax.vmap(self._ids)(jnp.maximum(taus, 1))

        def loss(p, h, c):
            def one(hc, inp):
                xp, on = inp
                h, c, _ = self._cell(p, xp, *hc)
                h, c = jnp.where(on, h, hc[0]), jnp.where(on, c, hc[1])
                return (h, c), (h, c)

            _, (hs, cs) = jax.lax.scan(one, (h, c), (self._xproj(p, xs), active), unroll=self.opts.unroll)
            nll, _ = self._nll(p, hs[k2 - k1 :], ys[k2 - k1 :])
            return nll.mean(), (nll.mean(1), hs[k1 - 1], cs[k1 - 1])  # the state after step t + k1 - k2

        (_, (per_step, h, c)), grads = jax.value_and_grad(loss, has_aux=True)(params, state["h"], state["c"])
        return (self._sgd(params, grads), {"h": h, "c": c}, t + k1), per_step

    # ------------------------------------------------------------------ single, stored
    def _retained(self, carry, _):
        jax, jnp, k1, K, H = self.jax, self.jnp, self.k1, self.k2, self.H
        p, state, t = carry
        scale = 1.0 / (k1 * self.B)

        def forward(st, tau):  # step tau with the current weights; rings at slot (tau - 1) mod k2
            x, y = self._ids(tau)
            s = (tau - 1) % K
            h, c, (i, f, g, o, tc) = self._cell(p, self._xproj(p, x), st["h"], st["c"])
            nll, logp = self._nll(p, h, y)
            dl = jnp.exp(logp).at[jnp.arange(self.B), y].add(-1.0)  # softmax - onehot
            new = dict(st, h=h, c=c, x=st["x"].at[s].set(x), h_prev=st["h_prev"].at[s].set(st["h"]),
                       c_prev=st["c_prev"].at[s].set(st["c"]), gates=st["gates"].at[s].set(jnp.concatenate([i, f, g, o], 1)),
                       tc=st["tc"].at[s].set(tc))
            if "W_snap" in st:
                new["W_snap"] = st["W_snap"].at[s].set(p["weight_hh_l0"])
            return new, (nll.mean(), dl, h, scale * dl @ p["decoder.weight"])

        outs = []
        for j in range(k1):  # unrolled: a scan's carry would copy the rings in and out
            state, out = forward(state, t + 1 + j)
            outs.append(out)
        per_step, dls, hs, heads = (jnp.stack(x) for x in zip(*outs))
        t = t + k1

        def backward(dhc, j):  # step t - j, newest first
            dh, dc = dhc
            s = (t - 1 - j) % K
            gates = state["gates"][s]
            i, f, g, o = jnp.split(gates, 4, axis=-1)
            tc, cp = state["tc"][s], state["c_prev"][s]
            dc = dc + dh * o * (1 - tc * tc)
            dz = jnp.concatenate([dc * g * i * (1 - i), dc * cp * f * (1 - f), dc * i * (1 - g * g),
                                  dh * tc * o * (1 - o)], 1)
            head = jnp.where(j + 1 < k1, heads[jnp.maximum(k1 - 2 - j, 0)], 0.0)  # step t - j - 1 injected?
            W = state["W_snap"][s] if "W_snap" in state else p["weight_hh_l0"]
            dh = dz @ W  # (stored: XLA copies the snapshot out of the ring before the product)
            return (dh + head, dc * f), (dz, s)

        _, (dZ, slots) = jax.lax.scan(backward, (heads[k1 - 1], jnp.zeros_like(state["c"])), jnp.arange(K))
        dZ2 = dZ.reshape(-1, 4 * H)
        grads = {
            "weight_hh_l0": dZ2.T @ state["h_prev"][slots].reshape(-1, H),
            "weight_ih_l0": jnp.zeros_like(p["weight_ih_l0"]).at[:, state["x"][slots].reshape(-1)].add(dZ2.T),
            "bias_ih_l0": dZ2.sum(0),
            "bias_hh_l0": dZ2.sum(0),
            "decoder.weight": scale * dls.reshape(-1, self.V).T @ hs.reshape(-1, H),
            "decoder.bias": scale * dls.reshape(-1, self.V).sum(0),
        }
        return (self._sgd(p, grads), state, t), per_step
