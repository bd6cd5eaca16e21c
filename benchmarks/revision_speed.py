"""The same `bpttbench speed` rows at two git revisions, alternated, with their ratio: did a change make a
scheme slower?

    python benchmarks/revision_speed.py BASE [HEAD] [--rounds 3] [-- speed options]
    python benchmarks/revision_speed.py 075a74b -- --scheme chunked,single,stored,sliding --batch 1,32 --optimizer sgd

Each revision is checked out once into a temporary git worktree; its speed command runs in a child
process whose PYTHONPATH is that worktree (so this environment's packages, that revision's code) and
whose Numba cache is its own. The rounds alternate BASE and HEAD, in turn first and second (the
second process of a round measured 1-4% slower, whichever revision it held), so that load from
elsewhere and the order hit both alike; use an even number of rounds; each row's figure is the median over rounds of speed's own median (CPU time, us/step),
and the ratio HEAD / BASE is printed beside it (below 1: HEAD is faster). Also printed: the load
average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

KEY = ("scheme", "cell", "hidden", "k2", "batch", "dtype")


def speed_rows(worktree: Path, cache: Path, options: list[str]) -> dict[tuple, float]:
    """us/step per row of one `bpttbench speed --json` run of the worktree's code."""
    env = {**os.environ, "PYTHONPATH": str(worktree), "BPTTBENCH_CACHE_DIR": str(cache),
           "NUMBA_CACHE_DIR": str(cache)}
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-m", "bpttbench", "speed", "--json", "--out", f"{out}/speed", *options],
                              env=env, capture_output=True, text=True, check=True)
    rows = json.loads(done.stdout)["rows"]
    return {tuple(row.get(k, "lstm" if k == "cell" else None) for k in KEY): row["us_per_step"] for row in rows}


def main() -> None:
    argv = sys.argv[1:]
    speed_options = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("head", nargs="?", default="HEAD")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(own)
    repo = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                               check=True).stdout.strip())
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for name in (args.base, args.head):
            tree = Path(tmp) / name.replace("/", "_")
            subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "-q", str(tree), name], check=True)
            trees[name] = tree
        try:
            load_before = os.getloadavg()
            times: dict[str, dict[tuple, list[float]]] = {name: {} for name in trees}
            for round_ in range(args.rounds):
                # ABBA: the second process of a round ran 1-4% slower whichever revision it held
                order = list(trees.items()) if round_ % 2 == 0 else list(trees.items())[::-1]
                for name, tree in order:
                    for key, us in speed_rows(tree, Path(tmp) / f"cache-{tree.name}", speed_options).items():
                        times[name].setdefault(key, []).append(us)
            load_after = os.getloadavg()
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"us/step, CPU time, median of {args.rounds} alternated rounds of `bpttbench speed {' '.join(speed_options)}`")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"{'scheme':<9}{'cell':<6}{'H':>5}{'k2':>5}{'B':>4} {'dtype':<8}{args.base:>12}{args.head:>12}{'ratio':>8}")
    for key in times[args.base]:
        base = statistics.median(times[args.base][key])
        head = statistics.median(times[args.head].get(key, [float("nan")]))
        scheme, cell, hidden, k2, batch, dtype = key
        print(f"{scheme:<9}{cell:<6}{hidden:>5}{k2:>5}{batch:>4} {dtype:<8}{base:>12.1f}{head:>12.1f}{head / base:>8.3f}")


if __name__ == "__main__":
    main()
