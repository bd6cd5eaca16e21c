#!/usr/bin/env bash
# The online learning rules side by side (the README's "Online learning rules" table):
#   1. examples/online.toml swept once per corpus and hidden size (a spec has one corpus);
#   2. gradcheck along rtrl's trajectory for each corpus, hidden size and seed: at k1 = 1 (single,
#      stored, sliding, snap1, eprop and uoro against rtrl's gradient) and at k1 = k2 (chunked's);
#   3. bpttbench report over everything, whose "Online learning rules" section is the table.
# Usage: bash examples/online.sh [OUT]        (default results/online; rerunning resumes the sweeps)
# tinyshakespeare is read from $BPTTBENCH_CORPUS_MIRROR when set (e.g. /work/shared/corpora).
# The ONLINE_* variables shrink it (tests/test_online_example.py runs a tiny version).
set -euo pipefail

OUT=${1:-results/online}
SPEC=$(dirname "$0")/online.toml
SEEDS=${ONLINE_SEEDS:-3}
BUDGET=${ONLINE_BUDGET:-5s}
HIDDEN=${ONLINE_HIDDEN:-16 64}
WORKERS=${ONLINE_WORKERS:-2}
# corpus@k2: the truncated schemes' window on it
CORPORA=${ONLINE_CORPORA:-lag:5:n=2000000@10 lag:10:n=2000000@10 lag:20:n=2000000@10 reber@10 tinyshakespeare@20}
# gradcheck time steps per trajectory, by hidden size (rtrl in float64 at H = 64: ~30-65 ms a step)
GC_STEPS_SMALL=${ONLINE_GC_STEPS_SMALL:-2000}   # H <= 16
GC_STEPS_LARGE=${ONLINE_GC_STEPS_LARGE:-200}    # H > 16
GC_CHECKPOINTS=${ONLINE_GC_CHECKPOINTS:-5}
FD_WEIGHTS=${ONLINE_FD_WEIGHTS:-8}
LR=0.002   # the spec's (TrainConfig's default): the report matches gradcheck trajectories to runs by it

say() { echo "[online $(date -u +%H:%M:%S)] $*" >&2; }

for entry in $CORPORA; do
  corpus=${entry%@*} k2=${entry##*@}
  for H in $HIDDEN; do
    log_every=$([ "$H" -le 16 ] && echo 500 || echo 50)
    say "sweep $corpus H=$H"
    bpttbench sweep "$SPEC" --set corpus="$corpus" --set k2="$k2" --set hidden="$H" --set log_every="$log_every" \
      --set seeds="$SEEDS" --set budget="$BUDGET" --workers "$WORKERS" --out "$OUT/runs/${corpus//[:=]/_}-h$H" -q
  done
done

gradcheck() {  # corpus k2 H seed k1
  local steps=$([ "$3" -le 16 ] && echo "$GC_STEPS_SMALL" || echo "$GC_STEPS_LARGE")
  local every=$(( steps / $5 / GC_CHECKPOINTS )); every=$(( every < 1 ? 1 : every ))
  bpttbench gradcheck --scheme rtrl --corpus "$1" --k1 "$5" --k2 "$2" --hidden "$3" --seed "$4" --lr "$LR" \
    --steps "$steps" --every "$every" --fd-weights "$FD_WEIGHTS" --format png --force -q \
    --out "$OUT/gradcheck/${1//[:=]/_}-h$3-k1=$5-seed$4" > /dev/null
}

running=0
for entry in $CORPORA; do
  corpus=${entry%@*} k2=${entry##*@}
  for H in $HIDDEN; do
    for ((seed = 0; seed < SEEDS; seed++)); do
      for k1 in 1 "$k2"; do
        if (( running >= WORKERS )); then wait -n; running=$((running - 1)); fi
        say "gradcheck $corpus H=$H seed $seed k1=$k1"
        gradcheck "$corpus" "$k2" "$H" "$seed" "$k1" &
        running=$((running + 1))
      done
    done
  done
done
while (( running > 0 )); do wait -n; running=$((running - 1)); done

say "report"
bpttbench report "$OUT"
