"""Steps a 3-second budget buys alone and beside two CPU-bound processes, on the CPU and the wall clock.

    python benchmarks/clock_under_load.py [--seconds 3] [--rounds 3]

Alone and loaded alternate, per clock, and medians are printed with their ratio: a CPU-clock budget
should buy about the same steps under load, a wall-clock one about half on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from bpttbench.config import TrainConfig
from bpttbench.data.corpus import load_corpus
from bpttbench.training.loop import Training

SPINNER = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end:\n    pass\n"


def steps(cfg: TrainConfig, corpus) -> int:
    training = Training(cfg, corpus)
    training.compile()
    for _ in training.records():
        pass
    return training.outcome.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    corpus = load_corpus("stdlib-docs")
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; single, H = 128, k2 = 20, "
          f"{args.seconds:g} s budget, {args.rounds} rounds")
    for clock in ("cpu", "wall"):
        cfg = TrainConfig(scheme="single", budget_seconds=args.seconds, clock=clock, eval_every=0, eval_chars=2000)
        steps(cfg.replace(budget_seconds=0.2), corpus)
        alone, loaded = [], []
        for _ in range(args.rounds):
            alone.append(steps(cfg, corpus))
            spinners = [subprocess.Popen([sys.executable, "-c", SPINNER.format(s=4 * args.seconds + 10)])
                        for _ in range(2)]
            try:
                time.sleep(0.2)
                loaded.append(steps(cfg, corpus))
            finally:
                for p in spinners:
                    p.kill()
                    p.wait()
        a, b = statistics.median(alone), statistics.median(loaded)
        print(f"{clock:>4} clock: alone {a:,.0f} steps, beside two busy processes {b:,.0f} steps: {b / a:.2f}x "
              f"(alone {alone}, loaded {loaded})")


if __name__ == "__main__":
    main()
