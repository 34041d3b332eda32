#!/bin/sh
# demo.sh - `make demo`: the embedded default end to end, with no downloads.
#
#   1. qid corpus: a seeded synthetic language with a known entropy rate
#      (train, eval and calibration token sets);
#   2. qid train: a miniature Pythia suite: four tiny GPT-NeoX sizes trained on
#      the same tokens with the same checkpoint steps (log-spaced, then
#      linear) and one cosine schedule across each whole run, plus the
#      smallest size twice more with a warm-up-stable-decay and a constant
#      learning rate (the schedule confound); two single-thread trainings run
#      side by side;
#   3. mpirun qid run jobs/demo.job: GPTQ at 2, 3, 4 and 8 bits, RTN at 2, 3
#      and 4 bits and RTN MXFP4 on every checkpoint, into one results store;
#   4. qid fit: the headline law (GPTQ 2/3/4 bits on the four cosine sizes,
#      Ouyang et al.'s setting) as /fits/default, then the named fits rtn and
#      mxfp4; qid report; a plot of QiD vs D under the three schedules with
#      each run's learning rate;
#   5. a summary: the law with its intervals, its per-factor exponents, the
#      evaluation noise, the 8-bit sanity row and the confound.
#
# Usage: tools/demo.sh [QID]            (QID defaults to build/qid)
# Environment:
#   DEMO_DIR      where everything goes (default build/demo; the job file's
#                 paths are rewritten for another directory)
#   DEMO_SIZE     full (default: the suite of `make demo`) or small (the
#                 end-to-end test of `make check`: two tiny sizes, few tokens,
#                 windows and calibration samples)
#   DEMO_NP       MPI ranks of the sweep (default 1 + the number of cores:
#                 rank 0 schedules, every other rank evaluates with
#                 DEMO_THREADS threads)
#   DEMO_THREADS  threads of each worker and each training (default 1: the
#                 numbers depend on the thread count in the last bits, and do
#                 not depend on the rank count, so with 1 they are those of
#                 docs/demo.md on any machine)
#   DEMO_WINDOWS  evaluation windows of the sweep (default: the job's 768;
#                 docs/demo.md measures the trade-off)
#   DEMO_STEPS    all (default) or prepare: stop once corpus, suite and job
#                 file are ready (test/slurm.t submits that job with slurm/submit)
# Every step is cached: corpus and suite are kept (qid train does nothing for
# a complete training with the same settings) and the sweep resumes its
# store, so a second run only fits and reports again.
set -eu
QID=${1:-build/qid}
OUT=${DEMO_DIR:-build/demo}
SIZE=${DEMO_SIZE:-full}
CORES=$(nproc 2>/dev/null || echo 1)
NP=${DEMO_NP:-$((CORES + 1))}
THREADS=${DEMO_THREADS:-1}
MPIRUN="mpirun --oversubscribe"
if [ "$(id -u)" -eq 0 ]; then MPIRUN="$MPIRUN --allow-run-as-root"; fi
command -v mpirun >/dev/null || { echo "demo: error: mpirun not found (make deps installs openmpi-bin)" >&2; exit 1; }
[ -x "$QID" ] || { echo "demo: error: no qid binary at $QID (run make)" >&2; exit 1; }

t_start=$(date +%s)
stamp() { echo "demo: [$(($(date +%s) - t_start)) s] $*"; }
mkdir -p "$OUT/suite" "$OUT/report"

# ---- the suite ---------------------------------------------------------------
# name d_model layers heads peak-learning-rate schedule lane. Every run sees
# the same TOKENS in steps of BATCH windows of SEQ tokens, saved at the same
# steps SAVE, with a warm-up of WARMUP steps (1%, as Pythia) and, for cosine
# and wsd, a decay to 0.1 of the peak (Pythia's). Widths are multiples of 32
# so that groups and MX blocks of 32 weights tile every row; head_dim 8 or
# more. The peak rate is smaller for larger models, as Pythia's. The lanes
# are the two single-thread processes that train side by side, balanced by
# the trainer's measured speed (docs/demo.md). MAIN are the sizes of the law;
# CONF the runs of one size under three schedules (cosine is MAIN's).
if [ "$SIZE" = small ]; then
    SUITE="s32 32 1 4 0.003 cosine 1
s64 64 1 4 0.002 cosine 2
s32-wsd 32 1 4 0.003 wsd 1
s32-constant 32 1 4 0.003 constant 2"
    MAIN=s32,s64
    CONF=s32,s32-wsd,s32-constant
    TOKENS=65536
    SAVE="4,8,16,32,64,96,128"
    BATCH=8
    SEQ=64
    WARMUP=4
    CORPUS_TOKENS=262144
    WINDOWS=16
    SAMPLES=8
else
    SUITE="d96l1 96 1 4 0.0015 cosine 1
d64l1 64 1 4 0.002 cosine 2
d32l2 32 2 4 0.003 cosine 1
d32l1 32 1 4 0.003 cosine 2
d32l1-wsd 32 1 4 0.003 wsd 2
d32l1-constant 32 1 4 0.003 constant 2"
    MAIN=d32l1,d32l2,d64l1,d96l1
    CONF=d32l1,d32l1-wsd,d32l1-constant
    TOKENS=4194304
    SAVE="8,16,32,64,128,256,512,1024,1536,2048"
    BATCH=16
    SEQ=128
    WARMUP=20
    CORPUS_TOKENS=4194304
    WINDOWS=
    SAMPLES=
fi
WINDOWS=${DEMO_WINDOWS:-$WINDOWS}
models() { echo "$1" | sed 's/\([^,]*\)/demo-\1/g'; }

stamp "corpus: the synthetic language (qid corpus --synthetic)"
if [ ! -f "$OUT/corpus/eval.h5" ]; then
    "$QID" corpus --synthetic --seed 1 --seq-len "$SEQ" --train-tokens "$CORPUS_TOKENS" -o "$OUT/corpus" |
        grep -E 'entropy rate|bigram|unigram|loss floor' || true
else
    echo "demo: corpus: reusing $OUT/corpus"
fi

# train NAME D LAYERS HEADS LR SCHEDULE: one run, its summary into NAME.log
train() {
    "$QID" train --train "$OUT/corpus/train.h5" --eval "$OUT/corpus/eval.h5" -o "$OUT/suite/$1" \
        --d-model "$2" --layers "$3" --heads "$4" --lr "$5" --schedule "$6" --tokens "$TOKENS" \
        --batch "$BATCH" --seq-len "$SEQ" --warmup "$WARMUP" --save "$SAVE" --threads "$THREADS" \
        --seed 1 --name "demo-$1" --quiet >"$OUT/suite/$1.log" 2>&1
}
lane() {
    echo "$SUITE" | while read -r name d layers heads lr schedule l; do
        [ "$l" = "$1" ] || continue
        train "$name" "$d" "$layers" "$heads" "$lr" "$schedule" || { echo "$name" >>"$OUT/suite/failed"; exit 1; }
    done
}
stamp "train: $(echo "$SUITE" | wc -l | tr -d ' ') runs of $TOKENS tokens, two at a time, $THREADS thread(s) each"
rm -f "$OUT/suite/failed"
lane 1 &
p1=$!
lane 2 &
p2=$!
rc=0
wait $p1 || rc=1
wait $p2 || rc=1
echo "$SUITE" | while read -r name d layers heads lr schedule l; do
    echo "demo:   $name: d_model $d, $layers layer(s), $heads heads, lr $lr $schedule"
    grep -E '^(parameters|eval loss|seconds)|already holds|error' "$OUT/suite/$name.log" | sed 's/^/demo:     /' || true
done
if [ $rc -ne 0 ]; then
    echo "demo: error: training failed: $(cat "$OUT/suite/failed" 2>/dev/null | tr '\n' ' ')(logs in $OUT/suite/)" >&2
    exit 1
fi

# ---- the sweep -----------------------------------------------------------------
JOB=jobs/demo.job
if [ "$OUT" != build/demo ] || [ "$SIZE" = small ] || [ -n "$WINDOWS" ]; then
    # the same job with its paths pointing into $OUT (and the small settings)
    abs=$(cd "$OUT" && pwd)
    JOB="$OUT/demo.job"
    sed -e "s#\.\./build/demo#$abs#g" jobs/demo.job >"$JOB.tmp"
    [ -z "$WINDOWS" ] || sed -i -e "s#^windows = .*#windows = $WINDOWS#" "$JOB.tmp"
    [ -z "$SAMPLES" ] || sed -i -e "s#^samples = .*#samples = $SAMPLES#" "$JOB.tmp"
    mv "$JOB.tmp" "$JOB"
fi
if [ "${DEMO_STEPS:-all}" = prepare ]; then
    stamp "prepared: job $JOB"
    exit 0
fi
stamp "sweep: $MPIRUN -np $NP $QID run --threads $THREADS $JOB"
$MPIRUN -np "$NP" "$QID" run --threads "$THREADS" "$JOB"

# ---- laws and report -------------------------------------------------------------
# The headline: Ouyang et al.'s setting (GPTQ, 2/3/4 bits, symmetric, one
# group size) on the four cosine sizes, stored as /fits/default so that the
# report draws it. RTN and MXFP4 get fits of their own; 8 bits never enters
# a law, and the schedule runs never enter one.
stamp "fit: $QID fit $OUT/results.h5 (gptq 2/3/4 bits as /fits/default with the law forms compared, rtn, mxfp4, schedules)"
"$QID" fit "$OUT/results.h5" --method gptq --bits 2,3,4 --models "$(models $MAIN)" --factors --compare >"$OUT/fit.txt"
grep -v '^    ' "$OUT/fit.txt"
for f in "rtn --method rtn --bits 2,3,4" "mxfp4 --format mxfp4"; do
    set -- $f
    name=$1
    shift
    "$QID" fit "$OUT/results.h5" "$@" --models "$(models $MAIN)" --name "$name" >"$OUT/fit-$name.txt" 2>&1 ||
        echo "demo: the $name fit failed: $(tail -1 "$OUT/fit-$name.txt")"
done
# The learning rate as a variable: Ouyang's law with a factor in the rate at
# each checkpoint, on every run (the schedule runs vary it apart from D),
# with the forms compared on the same points.
"$QID" fit "$OUT/results.h5" --method gptq --bits 2,3,4 --law ouyang-lr --compare --name schedules \
    >"$OUT/fit-schedules.txt" 2>&1 || echo "demo: the schedules fit failed: $(tail -1 "$OUT/fit-schedules.txt")"
"$QID" fit "$OUT/results.h5" --method gptq --bits 2,3,4 --name schedules-ouyang >"$OUT/fit-schedules-ouyang.txt" 2>&1 ||
    echo "demo: the schedules-ouyang fit failed: $(tail -1 "$OUT/fit-schedules-ouyang.txt")"
stamp "report: $QID report $OUT/results.h5 -o $OUT/report"
"$QID" report "$OUT/results.h5" -o "$OUT/report" >/dev/null

# every OK row, and each run's learning rate at every step, for the summary and the plots
ROWS=$OUT/report/demo-rows.csv
"$QID" results "$OUT/results.h5" --csv --status ok --latest \
    --columns model,params,step,tokens_seen,method,format,elem_bits,qid,qid_se >"$ROWS"
i=0
for name in $(echo "$CONF" | tr ',' ' '); do
    i=$((i + 1))
    awk -F'\t' -v i=$i 'NR > 1 { print i, $2, $3 }' "$OUT/suite/$name/train.tsv"
done >"$OUT/report/demo-lr.dat"
awk -F, -v main="$(models $MAIN)" -v conf="$(models $CONF)" -v dir="$OUT/report" '
BEGIN { n = split(main, c, ","); for (i = 1; i <= n; i++) ismain[c[i]] = i
        n = split(conf, c, ","); for (i = 1; i <= n; i++) isconf[c[i]] = i }
NR > 1 && $5 == "gptq" && $7 <= 4 {
    if ($1 in ismain) print ismain[$1], $2, $4, $7, $8, $9 >(dir "/demo-main.dat")
    if ($1 in isconf) print isconf[$1], $4, $7, $8, $9 >(dir "/demo-schedules.dat")
}' "$ROWS"
if command -v gnuplot >/dev/null; then
    law=$(awk '/^(k|alpha|beta|gamma) / { printf "%s=%s; ", $1, $2 }' "$OUT/fit.txt")
    sizes=$(for m in $(echo "$MAIN" | tr ',' ' '); do awk -F, -v m="demo-$m" '$1 == m { print $2; exit }' "$ROWS"; done)
    lrmax=$(echo "$SUITE" | awk -v m="${CONF%%,*}" '$1 == m { print $5 }')
    gp=$(pwd)/tools/demo-plots.gp
    (cd "$OUT/report" && gnuplot -e "${law}lrmax=$lrmax; sizes='$(echo $sizes)'" "$gp") >"$OUT/report/demo-plots.log" 2>&1 ||
        echo "demo: warning: the demo plots failed (gnuplot; $OUT/report/demo-plots.log)"
fi

# ---- summary -----------------------------------------------------------------------
# tools/demo_summary.awk reads fit.txt, fit-rtn.txt, fit-mxfp4.txt and the
# rows; every rule is stated here:
# - exponents: the sign is judged by the 95% bootstrap interval (resampling
#   whole checkpoints); Ouyang et al. found alpha, beta, gamma > 0; beta's
#   sign is claimed only when the per-(N, P) fits agree with the interval
#   (median of the same sign, and that sign in more than half of the groups
#   with at least 6 checkpoints), else "not resolved" with both stated;
# - evaluation noise: SE/QiD of 4-bit GPTQ on the MAIN sizes at the last third
#   of the checkpoints (the last ceil(C/3) of the C saved steps);
# - 8 bits: GPTQ int8 on the MAIN sizes, never in a law: max |QiD| and max |QiD|/SE;
# - the confound: per bit width, QiD at the last checkpoint of each schedule
#   and its ratio to the constant-rate run's, with a 95% interval from the
#   two SEs (log ratio +- 1.96 sqrt((se1/q1)^2 + (se2/q2)^2): the runs share
#   the evaluation windows, so treating them as independent widens it); and
#   the change of QiD from the second-last to the last checkpoint, over which
#   wsd decays its rate and constant does not.
echo
nsave=$(echo "$SAVE" | tr ',' ' ' | wc -w | tr -d ' ')
last_third=$(echo "$SAVE" | tr ',' '\n' | tail -n $(((nsave + 2) / 3)) | head -1)
{
    awk -v size="$SIZE" -v main="$(models $MAIN)" -v conf="$(models $CONF)" -v from="$last_third" -v nsave="$nsave" \
        -v rtn="$OUT/fit-rtn.txt" -v mx="$OUT/fit-mxfp4.txt" -v plot="$OUT/report/demo-schedules.png" \
        -f "$(dirname "$0")/demo_summary.awk" "$OUT/fit.txt" "$ROWS"
    # the learning-rate form (fit-schedules.txt) and the forms compared on the headline points (fit.txt)
    awk -v beta="$(awk '/^beta / { print $2 }' "$OUT/fit-schedules-ouyang.txt")" -v runs="$(echo "$SUITE" | wc -l | tr -d ' ')" '
    /^points / { pts = $2; ck = $6 }
    /^(beta|delta) / { gsub(/[\[\],]/, " "); v[$1] = $2; lo[$1] = $3; hi[$1] = $4 }
    /^  (ouyang|kumar|ouyang-lr) +[0-9.-]+ / { err = err sprintf("%s%s %s", err == "" ? "" : ", ", $1, $7) }
    /lowest leave-future-out error:/ { best = $NF }
    END {
        printf "demo: the learning rate as a variable (/fits/schedules: ouyang-lr, QiD = k D^beta / (N^alpha P^gamma) exp(delta (1 - lr/peak)), GPTQ 2/3/4 bits, all %d runs'"'"' %s points):\n", runs, pts
        if (!("delta" in v)) { print "demo:   no fit (fit-schedules.txt)"; exit }
        s = lo["delta"] > 0 ? "yes" : hi["delta"] < 0 ? "no, the opposite" : "not resolved (interval includes 0)"
        printf "demo:   delta = %9.4f  95%% [%9.4f, %9.4f]   QiD rises as the rate decays, beyond D: %s\n", v["delta"], lo["delta"], hi["delta"], s
        printf "demo:   beta  = %9.4f  95%% [%9.4f, %9.4f]   (Ouyang'"'"'s law on the same points, without the rate: %.4f)\n", v["beta"], lo["beta"], hi["beta"], beta
        printf "demo:   leave-future-out error (RMS of (qid - law)/se): %s; lowest: %s\n", err, best
    }' "$OUT/fit-schedules.txt"
    awk '/^  (ouyang|kumar|ouyang-lr) +[0-9.-]+ / { err = err sprintf("%s%s %s (AIC %s)", err == "" ? "" : ", ", $1, $7, $4) }
    /lowest leave-future-out error:/ { best = $NF }
    /^  future err / { pair = pair "\ndemo:   " substr($0, 3) }
    END { if (err != "") printf "demo: the law forms on the headline points: leave-future-out error %s; lowest: %s%s\n", err, best, pair }' "$OUT/fit.txt"
} >"$OUT/summary.txt"
cat "$OUT/summary.txt"
# The manual's sample (docs/demo.md) is this summary of the full suite, copied
# by tools/demo_docs.sh; test/docs_demo.t checks the prose against the sample.
docs=$(dirname "$0")/../docs/demo.md
if [ "$SIZE" = full ] && [ -f "$docs" ]; then
    grep '^demo: ' "$OUT/summary.txt" >"$OUT/summary.new" || true
    grep '^demo: ' "$docs" >"$OUT/summary.doc" || true
    if cmp -s "$OUT/summary.doc" "$OUT/summary.new"; then
        echo "demo: this summary equals docs/demo.md's sample to the last digit"
    else
        echo "demo: note: this summary differs from docs/demo.md's sample (tools/demo_docs.sh copies it there); first difference:"
        diff "$OUT/summary.doc" "$OUT/summary.new" | awk '/^< / && !a { a = $0 } /^> / && !b { b = $0 }
            END { sub(/^< demo: */, "demo:   docs: ", a); sub(/^> demo: */, "demo:   now:  ", b); if (a != "") print a; if (b != "") print b }'
    fi
    rm -f "$OUT/summary.doc" "$OUT/summary.new"
fi
stamp "done: results $OUT/results.h5, report $OUT/report/ (summary.txt, *.png, *.svg, demo-schedules.png)"
