"""How much of a scheme's step is not its products: the same compiled kernels with every BLAS call a no-op.

    python benchmarks/non_blas_time.py [--scheme chunked,single,sliding] [--batch 1,32] [--repeats 9]

The kernels call their products through one table of function pointers (bpttbench/kernels/blas_backend.py);
here a second table points every slot at a native function that returns at once, and the same
scheme objects are timed under both, in interleaved rounds with bpttbench speed's sampler, beside
the BLAS lower bound (speed.BoundTimer). Plain SGD, H = 128, V = 65, k2 = 20, float32, one thread.

Per scheme and batch size it prints, in microseconds of CPU time per step (medians):
- `us/step`: the scheme as `bpttbench speed` times it;
- `without products`: the scheme with no-op products: the gate nonlinearities, softmax, copies,
  sums and bookkeeping that no BLAS can do for it (the values it computes are then meaningless,
  but bounded: every array keeps its shape and the work per step is the same);
- `products inside`: the difference, what the products cost where the kernel makes them;
- `floor / bound` = (bound + without products) / bound: the ratio to the bound even if every
  product ran as fast as in the bound's tight loop. Where that is above a target, the target is
  out of reach without removing work that is not a product.
"""

from __future__ import annotations

import argparse

import numpy as np
from numba import cfunc, types

from bpttbench.kernels.blas_backend import Backend, blas, current, install
from bpttbench.config import TrainConfig
from bpttbench.speed import BoundTimer, SchemeTimer, _median_us, _sample, one_thread, synthetic_ids

VOCAB = 65


@cfunc(types.void(*[types.voidptr] * 13))
def _no_gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    pass


@cfunc(types.void(*[types.voidptr] * 11))
def _no_gemv(trans, m, n, alpha, a, lda, x, incx, beta, y, incy):
    pass


NO_PRODUCTS = Backend(name="none", source="benchmarks/non_blas_time.py", library="", version="no-op",
                      addresses=(_no_gemm.address, _no_gemm.address, _no_gemv.address, _no_gemv.address))


class WithoutProducts:
    """A SchemeTimer whose runs call the no-op table."""

    def __init__(self, timer: SchemeTimer):
        self.timer, self.unit_steps = timer, timer.unit_steps

    def run(self, n_units: int) -> bool:
        with blas(NO_PRODUCTS):
            return self.timer.run(n_units)


def measure(scheme: str, batch: int, repeats: int, min_time: float) -> dict:
    k1 = 20 if scheme == "chunked" else 1
    cfg = TrainConfig(scheme=scheme, k1=k1, k2=20, hidden=128, batch=batch, optimizer="sgd", lr=1e-3, clip=0.0,
                      budget_steps=1)
    ids = synthetic_ids(VOCAB)
    timers = [SchemeTimer(cfg, VOCAB, ids), WithoutProducts(SchemeTimer(cfg, VOCAB, ids)),
              BoundTimer(scheme, 128, k1, 20, batch, "float32")]
    ours, without, bound = (_median_us(s, 0) for s in _sample(timers, repeats, min_time))
    return dict(scheme=scheme, batch=batch, ours=ours, without=without, inside=ours - without, bound=bound,
                ratio=ours / bound, floor=(bound + without) / bound)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="chunked,single,sliding")
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--min-time", type=float, default=0.05)
    args = parser.parse_args()
    install()
    print(f"BLAS: {current().info()['version']} ({current().source}); CPU time per step, medians of {args.repeats}")
    print("| scheme | B | us/step | without products | products inside | bound | ratio | floor / bound |")
    print("| :-- | --: | --: | --: | --: | --: | --: | --: |")
    with one_thread():
        for batch in (int(b) for b in args.batch.split(",")):
            for scheme in args.scheme.split(","):
                r = measure(scheme, batch, args.repeats, args.min_time)
                print(f"| {r['scheme']} | {r['batch']} | {r['ours']:.1f} | {r['without']:.1f} | {r['inside']:.1f} | "
                      f"{r['bound']:.1f} | {r['ratio']:.2f} | {r['floor']:.2f} |", flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
