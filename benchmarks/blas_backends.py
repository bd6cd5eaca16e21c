"""SciPy's OpenBLAS against MKL for the kernels' products, one thread, in one process.

    python benchmarks/blas_backends.py products [--batch 1,32] [--repeats 9] [--mkl torch|wheel]
    python benchmarks/blas_backends.py schemes [--batch 1,32] [--scheme chunked,single,sliding] [--repeats 9]
                                               [--against torch,jax] [--mkl torch|wheel]

`products`: GFLOP/s of each product the B-stream kernels make at H = 128, V = 65, k2 = 20, with
the kernels' own layouts, through Numba's np.dot (SciPy's BLAS by numba_xxgemm/xxgemv: the
path before bpttbench.kernels.blas) and through bpttbench.kernels.blas's table on OpenBLAS and on
MKL (the one BPTTBENCH_BLAS=mkl takes, or --mkl torch / --mkl wheel: one MKL per process, see
bpttbench/kernels/blas_backend.py). `schemes`: microseconds per step of each scheme
with plain SGD on every backend, beside the peers (bpttbench speed's timers and its interleaved
sampling: one timer per backend, switched between samples). Figures are medians of CPU time
over interleaved rounds; `cpu/wall` above 1 would mean a BLAS used more than one thread.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
from numba import njit

from bpttbench.kernels.blas_backend import find_mkl, mkl_from, scipy_blas, use_blas
from bpttbench.kernels.blas import dot, gemm_tn
from bpttbench.kernels.vecmath import JIT
from bpttbench.schemes.base import aligned_zeros
from bpttbench.kernels.threads import single_threaded_blas

H, V, K2, G = 128, 65, 20, 512


@njit(**JIT)
def _loop_np_dot(a, b, out, n):
    for _ in range(n):
        np.dot(a, b, out)


@njit(**JIT)
def _loop_dot(a, b, out, n):
    for _ in range(n):
        dot(a, b, out)


@njit(**JIT)
def _loop_gemm_tn(a, b, out, n):
    for _ in range(n):
        gemm_tn(-1e-30, a, b, 1.0, out)


def _filled(shape, rng):
    a = aligned_zeros(shape, "float32")
    a[...] = rng.uniform(-0.1, 0.1, size=shape)
    return a


def product_cases(B: int):
    """(label, kind, a, b, out, flops): the products of a B-stream step at k2 = 20."""
    rng = np.random.default_rng(0)
    W_hh, W_dec = _filled((G, H), rng), _filled((V, H), rng)
    R = K2 * B
    cases = [
        (f"gates  h W_hh^T      ({B}x{H})({H}x{G})", "dot", _filled((B, H), rng), W_hh.T, _filled((B, G), rng)),
        (f"back   dz W_hh       ({B}x{G})({G}x{H})", "dot", _filled((B, G), rng), W_hh, _filled((B, H), rng)),
        (f"dW_hh  dz^T h window ({G}x{R})({R}x{H})", "gemm_tn", _filled((R, G), rng), _filled((R, H), rng), W_hh),
        (f"dW_hh  one step      ({G}x{B})({B}x{H})", "gemm_tn", _filled((B, G), rng), _filled((B, H), rng), W_hh),
        (f"dec    h W_dec^T     ({B}x{H})({H}x{V})", "dot", _filled((B, H), rng), W_dec.T, _filled((B, V), rng)),
        (f"dec    dlog W_dec    ({B}x{V})({V}x{H})", "dot", _filled((B, V), rng), W_dec, _filled((B, H), rng)),
        (f"dW_dec dlog^T h      ({V}x{B})({B}x{H})", "gemm_tn", _filled((B, V), rng), _filled((B, H), rng), W_dec),
        (f"chunk  dlog W_dec    ({R}x{V})({V}x{H})", "dot", _filled((R, V), rng), W_dec, _filled((R, H), rng)),
        (f"chunk  dW_dec        ({V}x{R})({R}x{H})", "gemm_tn", _filled((R, V), rng), _filled((R, H), rng), W_dec),
    ]
    if B == 32:  # the validation kernel's products (256 streams)
        cases += [
            ("eval   h W_hh^T      (256x128)(128x512)", "dot", _filled((256, H), rng), W_hh.T, _filled((256, G), rng)),
            ("eval   W_dec h^T     (65x128)(128x256)", "dot", W_dec, _filled((256, H), rng).T, _filled((V, 256), rng)),
        ]
    out = []
    for label, kind, a, b, c in cases:
        if kind == "dot":
            m, k = a.shape
            n = b.shape[1]
        else:
            k, m = a.shape
            n = b.shape[1]
        out.append((label, kind, a, b, c, 2.0 * m * n * k))
    return out


def _time(fn, args, n):
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args, n)
    return time.process_time() - cpu, time.perf_counter() - wall


def pick_backends(mkl: str | None) -> dict:
    found = mkl_from("mkl wheel" if mkl == "wheel" else mkl) if mkl else find_mkl()
    return {"openblas": scipy_blas(), **({f"mkl-{found.source.split()[-1]}": found} if found else {})}


def products(backends, batches, repeats: int, min_time: float = 0.02) -> None:
    print(f"backends: " + "; ".join(f"{k}: {b.version} ({b.library})" for k, b in backends.items()))
    with single_threaded_blas():
        for B in batches:
            print(f"\nB = {B}: GFLOP/s (median of {repeats} interleaved rounds, CPU time), ratio to numba np.dot")
            names = ["np.dot (numba)", *backends]
            print(f"{'product':42s}" + "".join(f"{n:>16s}" for n in names) + "   cpu/wall(max)")
            for label, kind, a, b, c, flops in product_cases(B):
                variants = [(None, _loop_np_dot if kind == "dot" else None)] + [(bk, _loop_dot if kind == "dot" else
                                                                                _loop_gemm_tn) for bk in backends.values()]
                sizes = []
                for backend, fn in variants:
                    if fn is None:
                        sizes.append(0)
                        continue
                    use_blas(backend or backends["openblas"])
                    fn(a, b, c, 2)
                    n = 1
                    while _time(fn, (a, b, c), n)[0] < min_time / 4:
                        n *= 4
                    sizes.append(max(1, round(n * min_time / max(_time(fn, (a, b, c), n)[0], 1e-9))))
                samples = [[] for _ in variants]
                for _ in range(repeats):
                    for (backend, fn), n, out in zip(variants, sizes, samples):
                        if fn is None:
                            continue
                        use_blas(backend or backends["openblas"])
                        cpu, wall = _time(fn, (a, b, c), n)
                        out.append((cpu / n, wall / n))
                rates = [flops / np.median([s[0] for s in out]) / 1e9 if out else math.nan for out in samples]
                threads = max(np.median([s[0] for s in out]) / np.median([s[1] for s in out]) for out in samples if out)
                base = rates[0] if rates[0] == rates[0] else rates[1]
                print(f"{label:42s}" + "".join(f"{r:9.1f} ({r / base:4.2f})" for r in rates) + f"   {threads:.2f}")
    use_blas(backends["openblas"])


class OnBackend:
    """A timer whose samples run with the kernels on one backend (switched before each sample)."""

    def __init__(self, timer, backend):
        self.timer, self.backend = timer, backend
        self.unit_steps = timer.unit_steps

    def run(self, n_units: int) -> bool:
        use_blas(self.backend)
        return self.timer.run(n_units)


def schemes(backends, names, batches, repeats: int, peers, min_time: float = 0.05) -> None:
    from bpttbench.config import CHUNK_SCHEMES, TrainConfig
    from bpttbench.speed import LR, PeerTimer, SchemeTimer, _median_us, _sample, one_thread, synthetic_ids

    ids = synthetic_ids(V)
    columns = [*backends, *peers]
    print(f"us/step, CPU time, medians of {repeats} interleaved samples; H {H}, V {V}, k1 1, k2 {K2}, float32, SGD")
    print(f"{'scheme':8s} {'B':>3s}" + "".join(f"{c:>12s}" for c in columns) +
          "".join(f"{'best peer/' + b:>22s}" for b in backends))
    with one_thread(torch_too="torch" in peers):
        for B in batches:
            for name in names:
                cfg = TrainConfig(scheme=name, k1=K2 if name in CHUNK_SCHEMES else 1, k2=K2, hidden=H, batch=B,
                                  optimizer="sgd", lr=LR, clip=0.0, dtype="float32", seed=0, budget_steps=1)
                timers = [OnBackend(SchemeTimer(cfg, V, ids), b) for b in backends.values()]
                timers += [PeerTimer(p, name, cfg, V, ids) for p in peers]
                us = [_median_us(s, 0) for s in _sample(timers, repeats, min_time)]
                best = min(us[len(backends):]) if peers else math.nan
                print(f"{name:8s} {B:3d}" + "".join(f"{u:12.0f}" for u in us) +
                      "".join(f"{best / u:22.2f}" for u in us[:len(backends)]), flush=True)
    use_blas(backends["openblas"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["products", "schemes"])
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--scheme", default="chunked,single,sliding")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--against", default="torch,jax")
    parser.add_argument("--mkl", choices=["torch", "wheel"], default=None, help="the MKL to time [default: auto's]")
    args = parser.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    print(f"load average before: {os.getloadavg()}")
    if args.what == "products":
        products(pick_backends(args.mkl), batches, args.repeats)
    else:
        peers = [p for p in args.against.split(",") if p]
        schemes(pick_backends(args.mkl), args.scheme.split(","), batches, args.repeats, peers)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
