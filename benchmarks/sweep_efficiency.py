"""Parallel efficiency of `bpttbench sweep`: the same grid (fixed step budgets) on 1 and on 2 local
workers, interleaved, repeated; prints time to finish per sweep, medians, and T1 / (2 T2)."""
import os, sys, time, shutil, statistics, json
from pathlib import Path

def main():
    from bpttbench.data.corpus import load_corpus
    from bpttbench.sweep import parse_spec, plan_sweep, run_sweep
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/sweep-efficiency")
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    spec = parse_spec('steps = 10000\nseeds = 2\nschemes = ["single", "sliding"]\n[parameters.k2]\nvalues = [10, 20]\n'
                      '[parameters.eval_every]\nvalue = 0\n', "eff.toml")
    plan = plan_sweep(spec, load_corpus(None))
    print(f"grid: {len(plan.points)} runs x 10,000 steps, H=128, stdlib-docs; cpu_count={os.cpu_count()}", flush=True)
    times = {1: [], 2: []}
    rates = {1: [], 2: []}
    for rep in range(reps):
        for workers in (1, 2):
            out = root / f"w{workers}-r{rep}"
            shutil.rmtree(out, ignore_errors=True)
            load = os.getloadavg()[0]
            t = time.perf_counter()
            result = run_sweep(plan, out, workers=workers)
            elapsed = time.perf_counter() - t
            assert result.status == "complete"
            per_run = [p["outcome"]["steps"] / p["outcome"]["wall_s"] for p in result.points]
            times[workers].append(elapsed)
            rates[workers].append(statistics.median(per_run))
            print(f"rep {rep} workers {workers}: {elapsed:6.1f} s to finish, median {statistics.median(per_run):7.0f} steps/s per run, "
                  f"load avg before {load:.2f}", flush=True)
    t1, t2 = statistics.median(times[1]), statistics.median(times[2])
    r1, r2 = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"median time to finish: 1 worker {t1:.1f} s, 2 workers {t2:.1f} s; speed-up {t1 / t2:.2f}x; "
          f"parallel efficiency T1/(2*T2) = {t1 / (2 * t2):.2f}")
    print(f"median per-run speed: 1 worker {r1:.0f} steps/s, 2 workers {r2:.0f} steps/s (ratio {r2 / r1:.2f})")

if __name__ == "__main__":
    main()
