"""How long the main job takes from the command to its end: `bpttbench run --steps 1000` on a
fresh install (an empty Numba cache: every kernel compiles), with the corpus cached or not, and
again with everything cached. Each repeat is a new process with its own empty cache directory.

    python benchmarks/first_run.py                      # 3 cold, 3 warm, 1 with the corpus built too
    python benchmarks/first_run.py --repeats 5 --src /tmp/old-checkout   # another checkout's bpttbench

Hold the timing lock (flock /tmp/bpttbench-timing.lock) on a shared machine; the load average
is printed with every figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = ["-m", "bpttbench", "run", "--steps", "1000", "--quiet"]


def timed_run(env: dict, scratch: Path) -> float:
    out = tempfile.mkdtemp(dir=scratch)
    start = time.perf_counter()
    subprocess.run([sys.executable, *COMMAND, "--out", out, "--force"], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def report(label: str, seconds: list[float], loads: list[float]) -> None:
    runs = ", ".join(f"{s:.1f}" for s in seconds)
    print(f"{label:<34} median {statistics.median(seconds):5.1f} s  ({runs})  load {statistics.median(loads):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--src", type=Path, default=None, help="a checkout whose bpttbench to time (default: this one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="first-run-") as tmp:
        scratch = Path(tmp)
        env = {**os.environ, "BPTTBENCH_CACHE_DIR": str(scratch / "corpora")}
        if args.src is not None:
            env["PYTHONPATH"] = str(args.src.resolve())

        def cold(*, new_corpus: bool) -> tuple[float, float]:
            run_env = {**env, "NUMBA_CACHE_DIR": tempfile.mkdtemp(dir=scratch)}
            if new_corpus:
                run_env["BPTTBENCH_CACHE_DIR"] = tempfile.mkdtemp(dir=scratch)
            return timed_run(run_env, scratch), os.getloadavg()[0]

        cold(new_corpus=False)  # builds the corpus once (untimed), for the runs that find it cached
        rows = {"cold, corpus cached": [cold(new_corpus=False) for _ in range(args.repeats)],
                "cold, corpus built too": [cold(new_corpus=True)]}
        warm_env = {**env, "NUMBA_CACHE_DIR": str(scratch / "warm")}
        timed_run(warm_env, scratch)  # fills the cache
        rows["warm (everything cached)"] = [(timed_run(warm_env, scratch), os.getloadavg()[0])
                                            for _ in range(args.repeats)]
    for label, runs in rows.items():
        report(label, [s for s, _ in runs], [load for _, load in runs])


if __name__ == "__main__":
    main()
