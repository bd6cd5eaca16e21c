"""An independent JAX char-LSTM trained by chunked and sliding TBPTT: a bar run for the README's
speed ratios (issue #24), timed in one process beside bpttbench's JAX peer and its Numba kernel.

    python benchmarks/independent_jax.py [--check] [--scheme chunked,sliding] [--batch 1,32] [--hidden 128]
                                         [--k2 20] [--repeats 7] [--min-time 0.3] [--block-steps 1000]

Written from the model's definition, sharing no code with bpttbench.peers: one `jax.jit` over a
block of steps, a `lax.scan` over the block's updates carrying (parameters, h, c), and
`value_and_grad` of each update's loss inside it. chunked (k1 = k2 = k): every k steps the mean
loss of the chunk, backpropagated to the chunk's start, the state carried on. sliding: every k1
steps the last k2 steps are rerun with the current weights from the state before the window, and
the newest k1 losses backpropagated; the window has a fixed length, so steps before step 1 are
masked (they leave the zero state as it is). Plain SGD, no clipping.

--check compares per-step losses and final weights with bpttbench.reference.train in float64.
Otherwise: a short screen of the variants below, then the fastest against bpttbench's JAX peer
and its Numba kernel, all sampled in turns by bpttbench.speed's sampler (CPU time, medians).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np


def hold_xla_to_one_cpu() -> None:
    """XLA reads its flags and sizes its thread pools once, at start: both set before `import jax`."""
    one_thread = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {one_thread}".strip()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


if __name__ == "__main__" and "--check" not in sys.argv:  # the check times nothing: no need to pin it
    hold_xla_to_one_cpu()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

CORPUS = Path("/work/shared/corpora/tinyshakespeare.txt")
CHECK_TOLERANCE = 1e-9  # relative, in float64
TORCH_NAMES = {"w_ih": "weight_ih_l0", "w_hh": "weight_hh_l0", "b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0",
               "w_dec": "decoder.weight", "b_dec": "decoder.bias"}


class Params(NamedTuple):
    w_ih: jax.Array
    w_hh: jax.Array
    b_ih: jax.Array
    b_hh: jax.Array
    w_dec: jax.Array
    b_dec: jax.Array


@dataclass(frozen=True)
class Variant:
    name: str
    in_out: bool = True  # matrices held (inputs, outputs), as Flax kernels: products read them untransposed
    onehot: bool = False  # input projection as one_hot(x) @ W_ih rather than a row gather
    donate: bool = True  # the carry's buffers reused for the next block's
    unroll: int | bool = 1  # lax.scan's unroll over the chunk's or window's steps


VARIANTS = (Variant("gather"), Variant("torch-layout", in_out=False), Variant("onehot", onehot=True),
            Variant("no-donate", donate=False), Variant("unroll-full", unroll=True))


def dense(x, w, in_out):
    return x @ w if in_out else x @ w.T


def input_projection(v: Variant, p: Params, x):
    """W_ih onehot(x) + both biases, for ids x of any shape: (*x.shape, 4H)."""
    kernel = p.w_ih if v.in_out else p.w_ih.T  # (V, 4H)
    proj = jax.nn.one_hot(x, kernel.shape[0], dtype=kernel.dtype) @ kernel if v.onehot else kernel[x]
    return proj + p.b_ih + p.b_hh


def lstm_cell(v: Variant, p: Params, xw, h, c):
    """torch.nn.LSTM's step, gates i, f, g, o; xw the input projection with biases."""
    i, f, g, o = jnp.split(xw + dense(h, p.w_hh, v.in_out), 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def cross_entropy(v: Variant, p: Params, h, y):
    """Per-stream loss in nats of the decoder's softmax at targets y: shape y.shape."""
    log_probs = jax.nn.log_softmax(dense(h, p.w_dec, v.in_out) + p.b_dec, axis=-1)
    return -jnp.take_along_axis(log_probs, y[..., None], axis=-1)[..., 0]


def chunk_loss(v, p, h, c, xs, ys):
    def step(hc, xw):
        hc = lstm_cell(v, p, xw, *hc)
        return hc, hc[0]

    (h, c), hs = lax.scan(step, (h, c), input_projection(v, p, xs), unroll=v.unroll)
    nll = cross_entropy(v, p, hs, ys)  # (k, B)
    return nll.mean(), (nll.mean(axis=1), h, c)


def window_loss(v, k1, p, h, c, xs, ys, live):
    def step(hc, inputs):
        xw, alive = inputs
        new = lstm_cell(v, p, xw, *hc)
        hc = (jnp.where(alive, new[0], hc[0]), jnp.where(alive, new[1], hc[1]))
        return hc, hc

    _, (hs, cs) = lax.scan(step, (h, c), (input_projection(v, p, xs), live), unroll=v.unroll)
    nll = cross_entropy(v, p, hs[-k1:], ys[-k1:])
    # The next window (k1 steps on) starts after this one's step k1: its state is carried.
    return nll.mean(), (nll.mean(axis=1), hs[k1 - 1], cs[k1 - 1])


def make_block(scheme, v: Variant, *, k1, k2, lr, n_updates, tracks):
    """A jitted (carry, t0) -> (carry, per-step losses) running n_updates updates after step t0."""
    period = tracks.shape[0] - 1  # step t reads track position (t - 1) mod period
    window = k2 if scheme == "sliding" else k1
    loss = partial(chunk_loss, v) if scheme == "chunked" else partial(window_loss, v, k1)

    def block(carry, t0):
        taus = t0 + k1 * jnp.arange(1, n_updates + 1)[:, None] - window + 1 + jnp.arange(window)
        pos = (jnp.maximum(taus, 1) - 1) % period
        inputs = (tracks[pos], tracks[pos + 1]) + (() if scheme == "chunked" else (taus >= 1,))

        def update(carry, inputs):
            p, h, c = carry
            (_, (losses, h, c)), grads = jax.value_and_grad(loss, has_aux=True)(p, h, c, *inputs)
            return (jax.tree.map(lambda w, g: w - lr * g, p, grads), h, c), losses

        carry, losses = lax.scan(update, carry, inputs)
        return carry, losses.reshape(-1)

    return jax.jit(block, donate_argnums=(0,) if v.donate else ())


class IndependentTBPTT:
    """chunked or sliding TBPTT from torch-named weights; run(n) advances n steps (whole blocks)."""

    def __init__(self, scheme, torch_params, train_ids, *, k1, k2, batch, lr, block_steps=1000,
                 variant: Variant = VARIANTS[0]):
        if scheme not in ("chunked", "sliding") or (scheme == "chunked" and k1 != k2) or not 1 <= k1 <= k2:
            raise ValueError(f"no {scheme} with k1={k1}, k2={k2}")
        if block_steps % k1:
            raise ValueError(f"block_steps={block_steps} is not a multiple of k1={k1}")
        self.v, self.block_steps = variant, block_steps
        track_len = len(train_ids) // batch
        tracks = np.asarray(train_ids, np.int32)[: track_len * batch].reshape(batch, track_len).T  # (track_len, B)
        self.block = make_block(scheme, variant, k1=k1, k2=k2, lr=lr, n_updates=block_steps // k1,
                                tracks=jnp.asarray(tracks))
        p = Params(**{k: jnp.asarray(self._flip(torch_params[name])) for k, name in TORCH_NAMES.items()})
        state_shape = (batch, p.w_hh.shape[0] if variant.in_out else p.w_hh.shape[1])
        h, c = (jnp.zeros(state_shape, p.w_hh.dtype) for _ in "hc")  # two buffers: both are donated
        self.carry, self.steps = (p, h, c), 0

    def _flip(self, w):
        return np.array(w.T if self.v.in_out and w.ndim == 2 else w)

    def run(self, n_steps) -> np.ndarray:
        """Per-step losses (nats, mean over streams) of n_steps more steps."""
        if n_steps % self.block_steps:
            raise ValueError(f"{n_steps} steps is not a whole number of {self.block_steps}-step blocks")
        losses = []
        for _ in range(n_steps // self.block_steps):
            self.carry, block_losses = self.block(self.carry, self.steps)
            losses.append(block_losses)
            self.steps += self.block_steps
        return np.concatenate([np.asarray(x, np.float64) for x in losses])  # blocks until done

    def torch_params(self) -> dict[str, np.ndarray]:
        return {name: self._flip(getattr(self.carry[0], k)) for k, name in TORCH_NAMES.items()}


# ----------------------------------------------------------------------------- the check

def check(n_steps=240, hidden=8, batch=2, k2=5, vocab=11, n_ids=170, lr=0.5, seed=3) -> dict:
    """Max relative errors against bpttbench.reference.train, float64, per scheme and variant.
    n_ids makes the tracks wrap within the run; blocks of 60 steps test the carry across calls."""
    jax.config.update("jax_enable_x64", True)
    from bpttbench import reference
    from bpttbench.model import init_theta, split_theta

    ids = np.random.default_rng(seed).integers(0, vocab, n_ids).astype(np.int32)
    start = lambda: split_theta(init_theta(vocab, hidden, seed, "float64"), vocab, hidden)  # noqa: E731
    errors = {}
    for label, scheme, k1 in (("chunked", "chunked", k2), ("sliding", "sliding", 1), ("sliding k1=3", "sliding", 3)):
        ref_losses, ref_params = reference.train(scheme, start(), ids, batch=batch, k1=k1, k2=k2, n_steps=n_steps, lr=lr)
        for v in VARIANTS:
            model = IndependentTBPTT(scheme, start(), ids, k1=k1, k2=k2, batch=batch, lr=lr, block_steps=60, variant=v)
            losses, params = model.run(n_steps), model.torch_params()
            errors.setdefault(label, {})[v.name] = {
                "losses": float(np.max(np.abs(losses - ref_losses) / np.abs(ref_losses))),
                "params": max(float(np.max(np.abs(params[k] - ref_params[k])) / np.max(np.abs(ref_params[k])))
                              for k in ref_params)}
    return errors


# ----------------------------------------------------------------------------- the timing

class Timer:
    """What bpttbench.speed._sample drives: run(n) advances n units (blocks); False if it diverged."""

    def __init__(self, model: IndependentTBPTT):
        self.model, self.unit_steps = model, model.block_steps

    def run(self, n_units):
        return bool(np.isfinite(self.model.run(n_units * self.unit_steps)).all())


def compare(args) -> None:
    from bpttbench.config import TrainConfig
    from bpttbench.model import init_theta, split_theta
    from bpttbench.peers import jax_peer
    from bpttbench.speed import LR, PeerTimer, SchemeTimer, _sample, one_thread

    text = CORPUS.read_text(encoding="utf-8")
    vocab = sorted(set(text))
    ids = np.searchsorted(np.array([ord(ch) for ch in vocab]), np.array([ord(ch) for ch in text])).astype(np.int32)
    V, H, K2 = len(vocab), args.hidden, args.k2
    load_start = os.getloadavg()
    jax_peer.require()
    print(f"JAX {jax.__version__}, cpu affinity {sorted(os.sched_getaffinity(0))}, peer's one-thread: "
          f"{jax_peer.ONE_THREAD_APPLIED}; {CORPUS.name} ({len(ids)} chars, V={V}), H={H}, k2={K2}, float32, SGD "
          f"lr={LR}; load average at start: {load_start}", flush=True)
    rows, us = [], lambda samples, clock=0: float(np.median([s[clock] for s in samples]) * 1e6)  # noqa: E731
    with one_thread():
        for scheme in args.scheme.split(","):
            for B in (int(b) for b in args.batch.split(",")):
                K1 = K2 if scheme == "chunked" else 1
                cfg = TrainConfig(scheme=scheme, k1=K1, k2=K2, hidden=H, batch=B, optimizer="sgd", lr=LR, clip=0.0,
                                  dtype="float32", seed=0, budget_steps=1)

                def independent(v):
                    return Timer(IndependentTBPTT(scheme, split_theta(init_theta(V, H, 0, "float32"), V, H), ids,
                                                  k1=K1, k2=K2, batch=B, lr=LR, block_steps=args.block_steps,
                                                  variant=v))

                screen = _sample([independent(v) for v in VARIANTS], 3, args.min_time / 2)
                screened = {v.name: us(s) for v, s in zip(VARIANTS, screen)}
                best = min(VARIANTS, key=lambda v: screened[v.name])
                print(f"  {scheme} B={B} variants: " + ", ".join(f"{n} {t:.1f}" for n, t in screened.items())
                      + f" us/step -> {best.name}", flush=True)
                mine, peer, ours = _sample([independent(best), PeerTimer("jax", scheme, cfg, V, ids),
                                            SchemeTimer(cfg, V, ids)], args.repeats, args.min_time)
                paired = lambda a, b: float(np.median([x[0] / y[0] for x, y in zip(a, b)]))  # noqa: E731
                rows.append((scheme, B, best.name, us(mine), us(peer), us(ours), us(mine) / us(peer),
                             paired(mine, peer), us(mine) / us(ours), paired(mine, ours),
                             us(mine, 1) / us(peer, 1), us(mine, 1) / us(ours, 1)))
    print(f"load average at end: {os.getloadavg()}\n")
    print(f"CPU us/step, medians of {args.repeats} interleaved samples of >= {args.min_time} s; ratios: of the "
          "medians (the median of per-round ratios); wall: the same ratios on the wall clock\n")
    print("| scheme | B | independent (variant) | jax peer | bpttbench | independent / peer | "
          "independent / bpttbench | wall: indep / peer | wall: indep / bpttbench |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s, B, name, m, p, o, rp, pp, ro, po, wp, wo in rows:
        print(f"| {s} | {B} | {m:.1f} ({name}) | {p:.1f} | {o:.1f} | {rp:.2f} ({pp:.2f}) | {ro:.2f} ({po:.2f}) "
              f"| {wp:.2f} | {wo:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with bpttbench.reference (float64); time nothing")
    parser.add_argument("--scheme", default="chunked,sliding")
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--k2", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per sample, at least")
    parser.add_argument("--block-steps", type=int, default=1000)
    args = parser.parse_args()
    if not args.check:
        compare(args)
        return
    errors = check()
    worst = max(e for by_variant in errors.values() for pair in by_variant.values() for e in pair.values())
    for label, by_variant in errors.items():
        print(f"{label}: " + ", ".join(f"{n} losses {e['losses']:.1e} params {e['params']:.1e}"
                                       for n, e in by_variant.items()), file=sys.stderr)
    print(f"worst relative error {worst:.2e} (tolerance {CHECK_TOLERANCE:.0e})", file=sys.stderr)
    print(json.dumps(errors))
    sys.exit(0 if worst <= CHECK_TOLERANCE else 1)


if __name__ == "__main__":
    main()
