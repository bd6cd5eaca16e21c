"""Cost per time step of `rtrl` and `uoro` against `single` (k1 = 1, k2 = 20) at the same hidden size.

One process, float32, B = 1; each scheme runs blocks of about 0.3 s, round-robin over 7
repetitions so that a change in the machine's load hits every scheme alike; prints medians
(interquartile range) in microseconds per step and the ratios to `single`.

    python benchmarks/rtrl_uoro_cost.py [CORPUS] [H,H,...]      # default: lag:20 16,32
"""

import os
import sys
import time

import numpy as np

from bpttbench.config import TrainConfig
from bpttbench.data.corpus import load_corpus
from bpttbench.model import init_theta
from bpttbench.schemes import make_scheme

REPS = 7
BLOCK_SECONDS = 0.3


def main():
    corpus = load_corpus(sys.argv[1] if len(sys.argv) > 1 else "lag:20")
    hiddens = [int(h) for h in (sys.argv[2] if len(sys.argv) > 2 else "16,32").split(",")]
    V = corpus.vocab_size
    print(f"corpus {corpus.name} (V={V}), float32, B=1, k1=1; single at k2=20; cpu_count={os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    for H in hiddens:
        schemes = {}
        for name in ("single", "rtrl", "uoro"):
            cfg = TrainConfig(scheme=name, k1=1, k2=20, hidden=H, dtype="float32", budget_steps=1)
            scheme = make_scheme(cfg, init_theta(V, H, 0, "float32"), V, corpus.train_ids)
            scheme.run(50, np.zeros(50))  # compiled, caches warm
            start = time.perf_counter()
            scheme.run(50, np.zeros(50))
            per_step = (time.perf_counter() - start) / 50
            schemes[name] = (scheme, max(20, int(BLOCK_SECONDS / per_step)))
        times = {name: [] for name in schemes}
        for _ in range(REPS):
            for name, (scheme, steps) in schemes.items():
                start = time.perf_counter()
                scheme.run(steps, np.zeros(steps))
                times[name].append((time.perf_counter() - start) / steps * 1e6)
        med = {name: float(np.median(v)) for name, v in times.items()}
        cells = [f"{name} {med[name]:.1f} us ({np.percentile(times[name], 25):.1f}-{np.percentile(times[name], 75):.1f})"
                 for name in med]
        print(f"H={H}: " + ", ".join(cells) + f"; rtrl/single {med['rtrl'] / med['single']:.1f}x, "
              f"uoro/single {med['uoro'] / med['single']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
