#!/bin/sh
# soak.sh - `make bench-soak`: a job of about 20,000 tiny tasks at 3 ranks.
#
# The demo's small suite (tools/demo.sh DEMO_SIZE=small DEMO_STEPS=prepare:
# 28 checkpoints of two tiny trained GPT-NeoX sizes under three schedules)
# copied to CHECKPOINTS files (qid runs a file named twice once: copies are
# distinct checkpoints) cycling over them; RTN at int2..int8, groups of 16
# and 32, symmetric and asymmetric (28 formats) plus the baseline: 29 tasks a
# checkpoint, each evaluated on the demo's 16 windows of 64 tokens. Then:
#
#   - rank 0's resident memory (VmRSS), sampled every SAMPLE seconds with
#     the rows in the store, in OUT/rss.tsv; and qid run's own summary of
#     the store's append time over the first and the last 1000 rows and of
#     rank 0's memory after the first 1000 rows and at the end;
#   - the wall time of `qid results` (table and CSV) and `qid fit` on the
#     finished store.
#
# Usage: tools/soak.sh [QID]           (QID defaults to build/qid)
# Environment: SOAK_DIR (default build/soak, emptied first), SOAK_CHECKPOINTS
# (default 690: 20,010 tasks), SOAK_NP (default 3), SOAK_SAMPLE (default 5).
set -eu
QID=${1:-build/qid}
OUT=${SOAK_DIR:-build/soak}
NCK=${SOAK_CHECKPOINTS:-690}
NP=${SOAK_NP:-3}
SAMPLE=${SOAK_SAMPLE:-5}
ROOT=$(pwd)
case "$QID" in /*) ;; *) QID=$ROOT/$QID ;; esac
[ -x "$QID" ] || { echo "soak: error: no qid binary at $QID (run make)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "soak: error: mpirun not found (make deps installs openmpi-bin)" >&2; exit 1; }
MPIRUN="mpirun --oversubscribe"
if [ "$(id -u)" -eq 0 ]; then MPIRUN="$MPIRUN --allow-run-as-root"; fi

rm -rf "$OUT"
mkdir -p "$OUT/ck"
# the demo's small suite: 28 trained checkpoints, two sizes, four schedules
DEMO_DIR=$OUT/demo DEMO_SIZE=small DEMO_STEPS=prepare sh "$ROOT/tools/demo.sh" "$QID" >"$OUT/prepare.log" 2>&1 ||
    { echo "soak: error: preparing the demo's suite failed (see $OUT/prepare.log)" >&2; exit 1; }
cd "$OUT"
set -- demo/suite/*/step*.h5
nreal=$#
i=0
while [ $i -lt "$NCK" ]; do
    k=$((i % nreal + 1))
    eval "target=\${$k}"
    cp "$target" "ck/c$(printf %05d $i).h5"
    i=$((i + 1))
done
formats=""
for b in 2 3 4 5 6 7 8; do
    for g in 16 32; do
        for s in sym asym; do formats="$formats${formats:+, }int$b-g$g-$s"; done
    done
done
cat >soak.job <<EOF
[job]
name = soak
results = soak.h5
[checkpoints]
glob = ck/*.h5
[eval]
tokens = demo/corpus/eval.h5
windows = 16
[quantize]
methods = rtn
formats = $formats
EOF

echo "soak: $NCK checkpoints x 29 tasks on $NP ranks ($(nproc) cores)"
t0=$(date +%s)
$MPIRUN -np "$NP" "$QID" run --threads 1 soak.job >run.out 2>run.err &
job=$!
# rank 0: the qid process whose environment says rank 0
r0=""
while [ -z "$r0" ] && kill -0 $job 2>/dev/null; do
    for p in $(pgrep -f "qid run --threads 1 soak.job" || true); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=0; then r0=$p; fi
    done
    sleep 0.2
done
printf 'seconds\trows\trss_kib\n' >rss.tsv
while kill -0 $job 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$r0/status" 2>/dev/null || true)
    rows=$("$QID" results soak.h5 --csv --columns key 2>/dev/null | tail -n +2 | wc -l | tr -d ' ')
    [ -n "$rss" ] && printf '%s\t%s\t%s\n' "$(($(date +%s) - t0))" "${rows:-0}" "$rss" >>rss.tsv
    sleep "$SAMPLE"
done
wait $job || { echo "soak: qid run failed:" >&2; tail -5 run.err >&2; exit 1; }
t1=$(date +%s)
echo "soak: qid run: $((t1 - t0)) s"
grep -E "run: done|store appends" run.err | sed 's/^/soak:   /'
awk -F'\t' 'NR > 1 { if (!n++) { r0 = $2; m0 = $3 } r1 = $2; m1 = $3; if ($3 > mx) mx = $3 }
    END { printf "soak: rank 0 VmRSS: %.1f MiB at %d rows, %.1f MiB at %d rows, peak %.1f MiB (%d samples, rss.tsv)\n",
          m0 / 1024, r0, m1 / 1024, r1, mx / 1024, n }' rss.tsv
timeit() { # timeit LABEL CMD...: wall seconds of CMD (output to /dev/null)
    label=$1
    shift
    s=$(date +%s.%N)
    "$@" >/dev/null 2>timeit.err || { echo "soak: $label failed: $(tail -1 timeit.err)" >&2; exit 1; }
    e=$(date +%s.%N)
    echo "soak: $label: $(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }') s"
}
echo "soak: $("$QID" results soak.h5 --csv --columns key | tail -n +2 | wc -l) rows, $("$QID" results soak.h5 --csv --columns key | tail -n +2 | sort -u | wc -l) distinct tasks"
timeit "qid results (table)" "$QID" results soak.h5
timeit "qid results --csv" "$QID" results soak.h5 --csv
timeit "qid fit (rtn, 2-4 bits, the cosine runs)" "$QID" fit soak.h5 --method rtn --bits 2,3,4 --models demo-s32,demo-s64
