"""Does `bpttbench speed` predict `bpttbench run`? Both, side by side in one process, per configuration.

    python benchmarks/speed_vs_run.py [--scheme chunked,single,stored,sliding] [--batch 1,32]
                                      [--optimizer sgd,adam] [--steps 10000] [--repeats 3]
                                      [--corpus PATH-OR-NAME] [--hidden 128] [--k2 20]

For each (scheme, B) and each round: `speed`'s figure (bpttbench.speed.measure_speed with its
defaults: us_per_step for plain SGD, adam_us_per_step for Adam with clip 1), then `run`'s, through
the library's run (bpttbench.api.run): `--steps` time steps on the corpus with the same optimizer,
its training clock's seconds (CPU by default, as `run`'s) over its steps. Rounds alternate speed
and run, so a burst of load from elsewhere hits both; the figures are medians over rounds, and the
ratio run / speed is the median of each round's ratio. H = 128, k1 = 1 (chunked: k1 = k2 = 20),
float32; the corpus defaults to tinyshakespeare if /work/shared has it, else the built-in one
(speed then times its vocabulary size).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

TINYSHAKESPEARE = Path("/work/shared/corpora/tinyshakespeare.txt")
OPTIMIZERS = {"sgd": dict(optimizer="sgd", clip=0.0), "adam": dict(optimizer="adam", clip=1.0)}
SPEED_COLUMN = {"sgd": "us_per_step", "adam": "adam_us_per_step"}


def run_us(scheme: str, batch: int, optimizer: str, args, corpus, out: Path) -> float:
    """µs per step of one `run` on its training clock (CPU by default)."""
    from bpttbench.api import run

    result = run(scheme, steps=args.steps, corpus=corpus, out=out, force=True, hidden=args.hidden, k2=args.k2,
                 batch=batch, eval_every=0, eval_chars=2000, **OPTIMIZERS[optimizer])
    unit = result.units[0]
    if unit.outcome.status != "complete":
        raise SystemExit(f"{scheme} B={batch} {optimizer}: run ended {unit.outcome.status}")
    return unit.outcome.time_s(unit.cfg.clock) / unit.outcome.steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="chunked,single,stored,sliding")
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--optimizer", default="sgd,adam")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", default=str(TINYSHAKESPEARE) if TINYSHAKESPEARE.exists() else None)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--k2", type=int, default=20)
    args = parser.parse_args()

    from bpttbench.data.corpus import load_corpus
    from bpttbench.speed import measure_speed

    corpus = load_corpus(args.corpus)
    schemes = [s for s in args.scheme.split(",") if s]
    batches = [int(b) for b in args.batch.split(",") if b]
    optimizers = [o for o in args.optimizer.split(",") if o]
    print(f"corpus {corpus.name} (V = {corpus.vocab_size}), H = {args.hidden}, k2 = {args.k2}, {args.steps:,} steps "
          f"per run, {args.repeats} rounds; {os.cpu_count()} cores, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
          flush=True)
    speed: dict[tuple, list[float]] = {}
    ran: dict[tuple, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats):
            for scheme in schemes:
                for batch in batches:
                    row = measure_speed([scheme], hidden=args.hidden, k2=args.k2, batch=batch,
                                        vocab_size=corpus.vocab_size, adam="adam" in optimizers).iloc[0]
                    for optimizer in optimizers:
                        key = (scheme, batch, optimizer)
                        speed.setdefault(key, []).append(float(row[SPEED_COLUMN[optimizer]]))
                        ran.setdefault(key, []).append(run_us(scheme, batch, optimizer, args, corpus, Path(tmp) / "run"))
                        print(f"  round {round_ + 1}: {scheme:8} B={batch:<3} {optimizer:5} speed {speed[key][-1]:8.1f}"
                              f"  run {ran[key][-1]:8.1f} us/step", flush=True)
    print(f"\nmedians over {args.repeats} rounds (load now {' '.join(f'{x:.2f}' for x in os.getloadavg())}):")
    print(f"{'scheme':8} {'B':>3} {'optimizer':9} {'speed us':>9} {'run us':>9} {'run/speed':>9}")
    worst = 0.0
    for key in speed:
        ratio = statistics.median(r / s for r, s in zip(ran[key], speed[key]))
        worst = max(worst, abs(ratio - 1))
        print(f"{key[0]:8} {key[1]:3} {key[2]:9} {statistics.median(speed[key]):9.1f} {statistics.median(ran[key]):9.1f} "
              f"{ratio:9.3f}")
    print(f"largest |run/speed - 1|: {worst:.3f}")


if __name__ == "__main__":
    main()
