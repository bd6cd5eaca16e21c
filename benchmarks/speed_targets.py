"""The speed targets in one process: the default configuration against the peers, PyTorch and JAX
(B = 1 and B = 32), cost against k2 and against H, float64 against float32; writes speed.csv,
speed.json and speed.png and prints the targets.

    python benchmarks/speed_targets.py [OUT] [--repeats N] [--quick] [--against torch,jax]

The same measurements as `bpttbench speed --against torch,jax --batch 1,32`, then
`bpttbench speed --k2 5,10,20,50,100,200`, `--hidden 32,64,128,256,512` and `--dtype float64`,
gathered into one table. Timings are CPU time per step, medians of interleaved samples (see
bpttbench/speed.py); on a shared machine, quote ratios, which are taken within one process.
Speed-ups are against the faster peer of each row, which the table names.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from bpttbench.speed import measure_speed, speed_targets, write_speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/speed-targets", type=Path)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small grids, for a look in a minute")
    parser.add_argument("--against", default="torch,jax", help="peers, a comma list (default: torch,jax)")
    args = parser.parse_args()
    say = lambda message: print(f"  {message}", flush=True)  # noqa: E731
    k2s = (5, 20, 50) if args.quick else (5, 10, 20, 50, 100, 200)
    hs = (64, 128, 256) if args.quick else (32, 64, 128, 256, 512)
    peers = tuple(p.strip() for p in args.against.split(",") if p.strip())
    started, load = time.perf_counter(), os.getloadavg()
    parts = [
        ("default, B = 1 and 32, against the peers", dict(batch=(1, 32), against=peers)),
        ("cost against k2", dict(k2=tuple(k for k in k2s if k != 20), adam=False)),
        ("cost against H", dict(hidden=tuple(h for h in hs if h != 128), adam=False)),
        ("float64", dict(dtypes=("float64",), adam=False)),
    ]
    frames = []
    for title, kw in parts:
        print(title, flush=True)
        frames.append(measure_speed(repeats=args.repeats, progress=say, **kw))
    df = pd.concat(frames, ignore_index=True)
    df.attrs.update(frames[0].attrs, load_average_after=frames[-1].attrs.get("load_average_after"))
    write_speed(df, args.out, parameters={"repeats": args.repeats, "k2": k2s, "hidden": hs, "against": peers,
                                          "command": "python benchmarks/speed_targets.py"})
    pd.set_option("display.width", 200)
    shown = ["scheme", "hidden", "k2", "batch", "dtype", "us_per_step", "bound_us", "ratio", "adam_extra_us",
             "torch_us_per_step", "jax_us_per_step", "peer", "peer_speedup", "resident_bytes"]
    print(df[shown].round(2).to_string(index=False))
    print()
    print(speed_targets(df).to_string(index=False))
    print(f"\n{time.perf_counter() - started:.0f} s; load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f};"
          f" written to {args.out}")


if __name__ == "__main__":
    main()
