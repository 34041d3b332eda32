#!/bin/sh
# demo.t - the embedded default end to end, small: tools/demo.sh with
# DEMO_SIZE=small trains two tiny models on the synthetic corpus (6
# checkpoints each), sweeps them under mpirun -np 2 (baseline, RTN and GPTQ
# at 2/3/4/8 bits), fits the law and writes the report; then checks what each
# stage left behind, and that a second run reuses everything.
. "$(dirname "$0")/taplib.sh"
require_cmd mpirun
plan 17
tap_tmpdir
D=$TAP_TMP/demo

DEMO_DIR=$D DEMO_SIZE=small sh tools/demo.sh "$QID" >"$TAP_TMP/out" 2>"$TAP_TMP/err"
rc=$?
ok $rc "demo (small) exits 0"
[ $rc -eq 0 ] || sed 's/^/# /' "$TAP_TMP/err" | tail -20

ok "$([ -f "$D/corpus/train.h5" ] && [ -f "$D/corpus/eval.h5" ] && [ -f "$D/corpus/calib.h5" ]; echo $?)" \
    "corpus: train, eval and calibration token sets"
is 6 "$(ls "$D"/suite/s16/step*.h5 | wc -l | tr -d ' ')" "suite: 6 checkpoints of s16"
is 6 "$(ls "$D"/suite/s32/step*.h5 | wc -l | tr -d ' ')" "suite: 6 checkpoints of s32"

# the trained loss falls: eval loss of the last checkpoint below the first's
first=$(awk -F'\t' 'NR > 1 && $6 != "" { print $6; exit }' "$D/suite/s32/train.tsv")
last=$(awk -F'\t' 'NR > 1 && $6 != "" { v = $6 } END { print v }' "$D/suite/s32/train.tsv")
ok "$(awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.3) }'; echo $?)" \
    "s32 eval loss falls during training ($first -> $last)"

# qid eval on the last checkpoint gives the loss the trainer logged
evl=$("$QID" eval "$D/suite/s32/step32.h5" "$D/corpus/eval.h5" --windows 64 --threads 1 | awk '$1 == "loss" { print $2 }')
ok "$(awk -v a="$evl" -v b="$last" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * b) }'; echo $?)" \
    "qid eval of step32 equals the logged eval loss ($evl vs $last)"

# the sweep: 12 checkpoints x (baseline + 2 methods x 4 formats) = 108 tasks, all OK, once each
"$QID" results "$D/results.h5" --csv >"$TAP_TMP/rows.csv"
is 108 "$(tail -n +2 "$TAP_TMP/rows.csv" | wc -l | tr -d ' ')" "results store: 108 rows"
is 0 "$(grep -c ',FAILED,' "$TAP_TMP/rows.csv")" "no failed task"
is 108 "$(tail -n +2 "$TAP_TMP/rows.csv" | cut -d, -f1 | sort -u | wc -l | tr -d ' ')" "every task once"
is 12 "$(grep -c ',baseline,' "$TAP_TMP/rows.csv")" "one baseline per checkpoint"

like "$(cat "$TAP_TMP/out")" "unified law (ouyang): QiD = k * D^beta / (N^alpha * P^gamma)" "qid fit printed the law"
like "$(cat "$TAP_TMP/out")" "written to /fits/default" "qid fit wrote /fits/default"
like "$(cat "$TAP_TMP/out")" "demo:   gamma =" "the summary judges gamma"
ok "$([ -s "$D/report/summary.txt" ]; echo $?)" "report: summary.txt"
if command -v gnuplot >/dev/null; then
    ok "$(ls "$D"/report/*.png >/dev/null 2>&1 && ls "$D"/report/*.svg >/dev/null 2>&1; echo $?)" "report: PNG and SVG plots"
else
    ok 0 "# SKIP no gnuplot"
fi

# a second run reuses corpus, suite and store
DEMO_DIR=$D DEMO_SIZE=small sh tools/demo.sh "$QID" >"$TAP_TMP/out2" 2>"$TAP_TMP/err2"
ok $? "second demo run exits 0"
like "$(cat "$TAP_TMP/err2" "$TAP_TMP/out2")" "108 already in" "second run: every task already in the store"
