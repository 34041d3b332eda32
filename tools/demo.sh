#!/bin/sh
# demo.sh - `make demo`: the embedded default end to end, with no downloads.
#
#   1. qid corpus: a seeded synthetic language with a known entropy rate
#      (train, eval and calibration token sets);
#   2. qid train: a suite of tiny GPT-NeoX models of several sizes, each saved
#      at log-spaced points of its training;
#   3. mpirun -np 2 qid run jobs/demo.job: RTN and GPTQ at 2, 3, 4 and 8 bits
#      and MXFP4 on every checkpoint, into one results store;
#   4. qid fit, qid report: the laws with bootstrap intervals, tables, plots;
#   5. a short summary: the fitted law and whether QiD rises with training
#      tokens and falls with model size and bit width on this suite.
#
# Usage: tools/demo.sh [QID]            (QID defaults to build/qid)
# Environment:
#   DEMO_DIR    where everything goes (default build/demo; the job file's
#               paths are rewritten for another directory)
#   DEMO_SIZE   full (default: the suite of `make demo`) or small (the
#               end-to-end test of `make check`: smaller models, fewer
#               tokens and settings)
#   DEMO_NP     MPI ranks of the sweep (default 2: rank 0 schedules, one
#               worker evaluates with DEMO_THREADS threads, default
#               min(2, cores))
#   DEMO_STEPS  all (default) or prepare: stop once corpus, suite and job
#               file are ready (test/slurm.t submits that job with slurm/submit)
# Every step is cached: corpus and suite are kept (qid train does nothing for
# a complete training with the same settings) and the sweep resumes its
# store, so a second run only fits and reports again.
set -eu
QID=${1:-build/qid}
OUT=${DEMO_DIR:-build/demo}
SIZE=${DEMO_SIZE:-full}
NP=${DEMO_NP:-2}
# threads of the trainer and of the sweep's worker: at most 2 by default, so
# that the numbers (which depend on the thread count in the last bits) are
# those of docs/demo.md on any machine with 2 or more cores
THREADS=${DEMO_THREADS:-$(nproc 2>/dev/null || echo 1)}
[ -n "${DEMO_THREADS:-}" ] || [ "$THREADS" -le 2 ] || THREADS=2
MPIRUN="mpirun --oversubscribe"
if [ "$(id -u)" -eq 0 ]; then MPIRUN="$MPIRUN --allow-run-as-root"; fi
command -v mpirun >/dev/null || { echo "demo: error: mpirun not found (make deps installs openmpi-bin)" >&2; exit 1; }
[ -x "$QID" ] || { echo "demo: error: no qid binary at $QID (run make)" >&2; exit 1; }

t_start=$(date +%s)
stamp() { echo "demo: [$(($(date +%s) - t_start)) s] $*"; }
mkdir -p "$OUT/suite"

# ---- the suite ---------------------------------------------------------------
# name d_model layers heads training-tokens peak-learning-rate (smaller for
# larger models, as Pythia's). Widths are multiples of 32 so that groups and
# MX blocks of 32 weights tile every row.
if [ "$SIZE" = small ]; then
    SUITE="s16 16 1 2 65536 0.003
s32 32 2 2 65536 0.002"
    CORPUS_TOKENS=262144
    SAVE="1,2,4,8,16,32"
    BATCH=8
    SEQ=64
    FORMATS="int2-g16-sym, int3-g16-sym, int4-g16-sym, int8-g16-sym"
    WINDOWS=16
    SAMPLES=8
else
    SUITE="d32 32 2 2 1048576 0.003
d64 64 2 4 1048576 0.002
d96 96 3 4 1048576 0.0015
d128 128 4 4 1048576 0.001"
    CORPUS_TOKENS=2097152
    SAVE="2,4,8,16,32,64,128,256,512"
    BATCH=16
    SEQ=128
    FORMATS=
    WINDOWS=
    SAMPLES=
fi

stamp "corpus: the synthetic language (qid corpus --synthetic)"
if [ ! -f "$OUT/corpus/eval.h5" ]; then
    "$QID" corpus --synthetic --seed 1 --seq-len "$SEQ" --train-tokens "$CORPUS_TOKENS" -o "$OUT/corpus" |
        grep -E 'entropy rate|bigram|unigram|loss floor' || true
else
    echo "demo: corpus: reusing $OUT/corpus"
fi

echo "$SUITE" | while read -r name d layers heads tokens lr; do
    stamp "train $name: d_model $d, $layers layers, $heads heads, $tokens tokens, lr $lr"
    "$QID" train --train "$OUT/corpus/train.h5" --eval "$OUT/corpus/eval.h5" -o "$OUT/suite/$name" \
        --d-model "$d" --layers "$layers" --heads "$heads" --tokens "$tokens" --batch "$BATCH" \
        --seq-len "$SEQ" --save "$SAVE" --lr "$lr" --threads "$THREADS" --seed 1 --name "demo-$name" --quiet |
        grep -E '^(parameters|eval loss|seconds|tokens/s)' | sed 's/^/demo:   /'
done

# ---- the sweep -----------------------------------------------------------------
JOB=jobs/demo.job
if [ "$OUT" != build/demo ] || [ "$SIZE" = small ]; then
    # the same job with its paths pointing into $OUT (and the small settings)
    abs=$(cd "$OUT" && pwd)
    JOB="$OUT/demo.job"
    sed -e "s#\.\./build/demo#$abs#g" jobs/demo.job >"$JOB.tmp"
    if [ -n "$FORMATS" ]; then
        sed -i -e "s#^formats = .*#formats = $FORMATS#" \
            -e "s#^windows = .*#windows = $WINDOWS#" -e "s#^samples = .*#samples = $SAMPLES#" "$JOB.tmp"
    fi
    mv "$JOB.tmp" "$JOB"
fi
if [ "${DEMO_STEPS:-all}" = prepare ]; then
    stamp "prepared: job $JOB"
    exit 0
fi
stamp "sweep: $MPIRUN -np $NP $QID run --threads $THREADS $JOB"
$MPIRUN -np "$NP" "$QID" run --threads "$THREADS" "$JOB"

# ---- laws and report -------------------------------------------------------------
stamp "fit: $QID fit $OUT/results.h5"
"$QID" fit "$OUT/results.h5" --boot 200 >"$OUT/fit.txt"
cat "$OUT/fit.txt"
stamp "report: $QID report $OUT/results.h5 -o $OUT/report"
"$QID" report "$OUT/results.h5" -o "$OUT/report" >/dev/null

# ---- summary -----------------------------------------------------------------------
# The signs of the fitted exponents, judged by their 95% bootstrap intervals:
# Ouyang et al. found beta > 0 (QiD rises with training tokens), alpha > 0
# (falls with model size) and gamma > 0 (falls with bit width).
echo
echo "demo: summary ($SIZE suite: $(echo "$SUITE" | wc -l) model sizes; the law fitted to every method and format)"
awk '
function verdict(name, v, lo, hi, what, sign) {
    if (lo > 0) s = "yes"; else if (hi < 0) s = "no, the opposite"; else s = "not resolved (interval includes 0)";
    printf "demo:   %-5s = %9.4f  95%% [%9.4f, %9.4f]   QiD %s: %s\n", name, v, lo, hi, what, s
}
/^k / { gsub(/[\[\],]/, " "); printf "demo:   QiD = k D^beta / (N^alpha P^gamma) with k = %.4g [%.4g, %.4g]\n", $2, $3, $4 }
/^beta / { gsub(/[\[\],]/, " "); verdict("beta", $2, $3, $4, "rises with training tokens D") }
/^alpha / { gsub(/[\[\],]/, " "); verdict("alpha", $2, $3, $4, "falls with model size N") }
/^gamma / { gsub(/[\[\],]/, " "); verdict("gamma", $2, $3, $4, "falls with bit width P") }
/^R\^2/ { print "demo:   " $0 }
/^warning:/ { print "demo:   " $0 }
' "$OUT/fit.txt"
stamp "done: results $OUT/results.h5, report $OUT/report/ (summary.txt, *.png, *.svg)"
