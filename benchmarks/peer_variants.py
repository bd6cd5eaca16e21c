"""Every variant of each peer for chunked and sliding, timed side by side in one process: which form
of a peer is its strongest (bpttbench/peers/: torch_peer.VARIANTS, jax_peer.VARIANTS)?

    python benchmarks/peer_variants.py [--scheme chunked,sliding] [--batch 1,32] [--hidden 128] [--k2 20]
                                       [--repeats 7] [--min-time 0.05] [--peers torch,jax]
                                       [--torch-variants a,b] [--jax-variants a,b]
                                       [--jax-one-thread flags|affinity|flags+affinity|all] [--csv PATH]

Per (scheme, B): one timer per variant of each peer, and bpttbench's own scheme (plain SGD) as
the anchor, all sampled together by bpttbench.speed's sampler (each warmed up, compiled and
jitted first, then `repeats` rounds of one sample per timer in turns); figures are medians of
CPU time in us per time step, H = 128, V = 65, k1 = 1, k2 = 20 (chunked: k = k2), float32, SGD,
one thread (BLAS and PyTorch by bpttbench.speed.one_thread). Beside each time: its ratio to ours
in the same rounds, which moves less than the times on a shared machine. `*` marks each peer's
fastest variant in each column. A variant that fails to build or run (say, torch.compile without
a C++ compiler) is reported and left out.

How XLA is held to one thread is the process's choice, made before JAX starts (see
bpttbench/peers/jax_peer.py): --jax-one-thread sets it for this process; `all` runs this script
once per mode, in child processes one after the other (compare their ratios to ours, taken
within each process, rather than their times).

To make a variant a peer's default, set DEFAULT_VARIANTS in its module (per scheme, or per
(scheme, batch)); jax_peer's ONE_THREAD likewise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

ONE_THREAD_MODES = ("flags", "affinity", "flags+affinity")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="chunked,sliding")
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--k2", type=int, default=20)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.05)
    parser.add_argument("--peers", default="torch,jax")
    parser.add_argument("--torch-variants", default=None, help="comma list [default: torch_peer.VARIANTS]")
    parser.add_argument("--jax-variants", default=None,
                        help="comma list; any combination such as take+unroll-full [default: jax_peer.VARIANTS]")
    parser.add_argument("--jax-one-thread", choices=[*ONE_THREAD_MODES, "all"], default=None,
                        help="how XLA is held to one thread [default: jax_peer.ONE_THREAD]")
    parser.add_argument("--csv", default=None, help="also write the figures here")
    args = parser.parse_args()

    if args.jax_one_thread == "all":  # one child process per mode
        for mode in ONE_THREAD_MODES:
            argv = _without(sys.argv[1:], "--jax-one-thread")
            if args.csv:
                argv = _without(argv, "--csv") + ["--csv", f"{args.csv.removesuffix('.csv')}-{mode}.csv"]
            print(f"\n=== --jax-one-thread {mode}", flush=True)
            subprocess.run([sys.executable, __file__, *argv, "--jax-one-thread", mode], check=True)
        return
    if args.jax_one_thread:  # before anything imports JAX
        os.environ["BPTTBENCH_JAX_ONE_THREAD"] = args.jax_one_thread
    run(args)


def run(args) -> None:
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")  # its own TorchScript uses
    from bpttbench.config import CHUNK_SCHEMES, TrainConfig
    from bpttbench.peers import PEERS, load_peer
    from bpttbench.speed import LR, PeerTimer, SchemeTimer, _median_us, _sample, one_thread, synthetic_ids

    peers = [p for p in args.peers.split(",") if p]
    variants = {}
    for peer in peers:
        module = load_peer(peer)  # imports the framework (JAX on one thread, as chosen above)
        given = getattr(args, f"{peer}_variants")
        variants[peer] = given.split(",") if given else list(module.VARIANTS)
    jax_mode = sys.modules["bpttbench.peers.jax_peer"].ONE_THREAD_APPLIED if "jax" in peers else None
    V, H, K2 = args.vocab, args.hidden, args.k2
    ids = synthetic_ids(V)
    versions = ", ".join(f"{PEERS[p].framework} {sys.modules[p].__version__}" for p in peers)
    print(f"us/step (CPU), medians of {args.repeats} interleaved samples of {args.min_time} s; H {H}, V {V}, k1 1, "
          f"k2 {K2}, float32, SGD, one thread; {versions}" + (f"; XLA one thread by {jax_mode}" if jax_mode else ""))
    print(f"load average before: {os.getloadavg()}", flush=True)
    columns = []  # (scheme, B)
    table = {}  # (label, column) -> (us, us / ours)
    csv_rows = []
    with one_thread(torch_too="torch" in peers):
        for B in (int(b) for b in args.batch.split(",")):
            for scheme in args.scheme.split(","):
                cfg = TrainConfig(scheme=scheme, k1=K2 if scheme in CHUNK_SCHEMES else 1, k2=K2, hidden=H, batch=B,
                                  optimizer="sgd", lr=LR, clip=0.0, dtype="float32", seed=0, budget_steps=1)
                timers = {"ours": SchemeTimer(cfg, V, ids)}
                for peer in peers:
                    for variant in variants[peer]:
                        label = f"{peer} {variant}"
                        try:
                            timer = PeerTimer(peer, scheme, cfg, V, ids, variant=variant)
                            timer.run(1)  # builds, compiles: a failure here leaves the variant out
                        except Exception as exc:  # noqa: BLE001 (reported, the others still timed)
                            first = (str(exc).strip().splitlines() or [""])[0][:160]
                            print(f"  {scheme} B={B}: {label} failed: {type(exc).__name__}: {first}", flush=True)
                            continue
                        timers[label] = timer
                samples = dict(zip(timers, _sample(list(timers.values()), args.repeats, args.min_time)))
                column = (scheme, B)
                columns.append(column)
                ours = _median_us(samples["ours"], 0)
                for label, s in samples.items():
                    us = _median_us(s, 0)
                    table[label, column] = (us, us / ours)
                    peer, _, variant = label.partition(" ")
                    csv_rows.append(dict(scheme=scheme, batch=B, hidden=H, k2=K2, peer=peer, variant=variant or "",
                                         us_per_step=us, wall_us_per_step=_median_us(s, 1), over_ours=us / ours,
                                         samples=len(s), jax_one_thread=jax_mode or ""))
                print(f"  {scheme} B={B}: ours {ours:.1f} us/step; " + ", ".join(
                    f"{label} {table[label, column][0]:.1f}" for label in timers if label != "ours"), flush=True)
    print(f"load average after: {os.getloadavg()}\n")
    print_table(table, columns, ["ours"] + [f"{p} {v}" for p in peers for v in variants[p]])
    if args.csv:
        import pandas as pd

        pd.DataFrame(csv_rows).to_csv(args.csv, index=False)
        print(f"\nwritten: {args.csv}")


def _without(argv: list[str], option: str) -> list[str]:
    """argv without `option VALUE` and `option=VALUE`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def print_table(table, columns, labels) -> None:
    """One row per timer, one column per (scheme, B): us/step and its ratio to ours; * the fastest of each peer."""
    best = {}  # (peer, column) -> label of its fastest variant
    for (label, column), (us, _) in table.items():
        key = (label.split(" ")[0], column)
        if label != "ours" and us == us and (key not in best or us < table[best[key], column][0]):
            best[key] = label
    width = max(len(label) for label in labels) + 2
    print(" " * width + "".join(f"{f'{s} B={b}':>22s}" for s, b in columns))
    for label in labels:
        cells = []
        for column in columns:
            if (label, column) not in table:
                cells.append("-")
            elif label == "ours":
                cells.append(f"{table[label, column][0]:.1f}" + " " * 10)
            else:
                us, ratio = table[label, column]
                mark = "*" if best.get((label.split(" ")[0], column)) == label else " "
                cells.append(f"{us:.1f} ({ratio:5.2f}x){mark}")
        print(f"{label:<{width}s}" + "".join(f"{c:>22s}" for c in cells))


if __name__ == "__main__":
    main()
