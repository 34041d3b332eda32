#!/bin/sh
# demo.t - the embedded default end to end, small: tools/demo.sh with
# DEMO_SIZE=small trains two tiny sizes and the smaller one twice more under
# other learning-rate schedules (7 checkpoints each), sweeps them under mpirun
# (baseline, GPTQ at 2/3/4/8 bits, RTN at 2/3/4 bits and MXFP4), fits the
# headline law and the named fits, writes the report and the plots; then
# checks what each stage left behind, and that a second run reuses
# everything. At this size the law's numbers are noise: only what does not
# depend on them is asserted.
. "$(dirname "$0")/taplib.sh"
require_cmd mpirun
plan 30
tap_tmpdir
D=$TAP_TMP/demo

DEMO_DIR=$D DEMO_SIZE=small sh tools/demo.sh "$QID" >"$TAP_TMP/out" 2>"$TAP_TMP/err"
rc=$?
ok $rc "demo (small) exits 0"
[ $rc -eq 0 ] || sed 's/^/# /' "$TAP_TMP/err" | tail -20

ok "$([ -f "$D/corpus/train.h5" ] && [ -f "$D/corpus/eval.h5" ] && [ -f "$D/corpus/calib.h5" ]; echo $?)" \
    "corpus: train, eval and calibration token sets"
for run in s32 s64 s32-wsd s32-constant; do
    is 7 "$(ls "$D"/suite/$run/step*.h5 | wc -l | tr -d ' ')" "suite: 7 checkpoints of $run"
done

# the trained loss falls: eval loss of the last checkpoint below the first's
first=$(awk -F'\t' 'NR > 1 && $6 != "" { print $6; exit }' "$D/suite/s32/train.tsv")
last=$(awk -F'\t' 'NR > 1 && $6 != "" { v = $6 } END { print v }' "$D/suite/s32/train.tsv")
ok "$(awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.3) }'; echo $?)" \
    "s32 eval loss falls during training ($first -> $last)"

# qid eval on the last checkpoint gives the loss the trainer logged
evl=$("$QID" eval "$D/suite/s32/step128.h5" "$D/corpus/eval.h5" --windows 64 --threads 1 | awk '$1 == "loss" { print $2 }')
ok "$(awk -v a="$evl" -v b="$last" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * b) }'; echo $?)" \
    "qid eval of step128 equals the logged eval loss ($evl vs $last)"

# the three schedules: the same rate through warm-up, then cosine and wsd end
# at 0.1 of the peak and constant stays at it
lr_at() { awk -F'\t' -v s="$2" 'NR > 1 && $1 == s { print $3 }' "$D/suite/$1/train.tsv"; }
is "$(lr_at s32 4) $(lr_at s32-wsd 4) $(lr_at s32-constant 4)" "0.003 0.003 0.003" "schedules: one peak rate after warm-up"
is "$(lr_at s32 128) $(lr_at s32-wsd 96) $(lr_at s32-wsd 128) $(lr_at s32-constant 128)" \
    "0.0003 0.003 0.0003 0.003" "schedules: cosine and wsd decay to 0.1x (wsd only after step 96), constant does not"

# the sweep: 28 checkpoints x (baseline + 4 GPTQ + 4 RTN settings) = 252 tasks, all OK, once each
"$QID" results "$D/results.h5" --csv >"$TAP_TMP/rows.csv"
is 252 "$(tail -n +2 "$TAP_TMP/rows.csv" | wc -l | tr -d ' ')" "results store: 252 rows"
is 0 "$(grep -c ',FAILED,' "$TAP_TMP/rows.csv")" "no failed task"
is 252 "$(tail -n +2 "$TAP_TMP/rows.csv" | cut -d, -f1 | sort -u | wc -l | tr -d ' ')" "every task once"
is 28 "$(grep -c ',baseline,' "$TAP_TMP/rows.csv")" "one baseline per checkpoint"

out=$(cat "$TAP_TMP/out")
like "$out" "unified law (ouyang): QiD = k * D^beta / (N^alpha * P^gamma)" "qid fit printed the law"
like "$out" "filters: method gptq, format any, bits 2,3,4, tokens [0, inf], models demo-s32,demo-s64" \
    "the headline law: GPTQ at 2/3/4 bits on the cosine sizes only"
like "$out" "written to /fits/default" "qid fit wrote /fits/default"
like "$out" "demo:   gamma =" "the summary judges gamma"
like "$out" "groups with >= 6 checkpoints" "the summary counts the per-(N, P) betas"
like "$out" "demo: evaluation noise: SE/QiD of 4-bit GPTQ at the last third of the checkpoints (step >= 64)" \
    "the summary gives the 4-bit noise"
like "$out" "demo: 8-bit sanity row (GPTQ int8-g32, in no law): max |QiD|" "the summary has the 8-bit row"
like "$out" "demo:   QiD from step 96 to 128 (wsd decays its rate in between" "the summary has the confound"
# a sign of beta is claimed only when the per-(N, P) fits bear it out
bline=$(printf '%s\n' "$out" | grep -m1 '^demo:   beta  =')
pline=$(printf '%s\n' "$out" | grep -m1 '^demo:   per-(N, P) laws')
mb=$(printf '%s\n' "$pline" | sed -n 's/.*median beta \([-0-9.e][-0-9.e]*\) .*/\1/p')
pos=$(printf '%s\n' "$pline" | sed -n 's/.*beta > 0 in \([0-9]*\) of \([0-9]*\) groups.*/\1 \2/p')
ok "$(awk -v l="$bline" -v m="$mb" -v p="$pos" 'BEGIN { split(p, a, " "); exit !(l !~ /: yes$/ || (m > 0 && 2 * a[1] > a[2])) }'; echo $?)" \
    "the beta verdict ('${bline##*: }') agrees with the per-(N, P) fits (median $mb, positive in ${pos% *} of ${pos#* })"
like "$out" "demo: the learning rate as a variable (/fits/schedules: ouyang-lr, QiD = k D^beta / (N^alpha P^gamma) exp(delta (1 - lr/peak)), GPTQ 2/3/4 bits, all 4 runs'" \
    "the summary fits the learning-rate form on every run"
like "$out" "demo: the law forms on the headline points: leave-future-out error ouyang " "the summary compares the law forms"
ok "$([ -s "$D/report/summary.txt" ] && grep -q 'written to /fits/rtn' "$D/fit-rtn.txt"; echo $?)" \
    "report: summary.txt; the rtn fit stored"
if command -v gnuplot >/dev/null; then
    ok "$([ -s "$D/report/demo-qid-vs-d.png" ] && [ -s "$D/report/demo-schedules.png" ] &&
        ls "$D"/report/*.svg >/dev/null 2>&1; echo $?)" "report: PNG and SVG plots, the demo's two among them"
else
    ok 0 "# SKIP no gnuplot"
fi

# a second run reuses corpus, suite and store, and prints the same summary
DEMO_DIR=$D DEMO_SIZE=small sh tools/demo.sh "$QID" >"$TAP_TMP/out2" 2>"$TAP_TMP/err2"
ok $? "second demo run exits 0"
like "$(cat "$TAP_TMP/err2" "$TAP_TMP/out2")" "252 already in" "second run: every task already in the store"
is "$(sed -n '/^demo: summary/,/plot:/p' "$TAP_TMP/out2")" "$(sed -n '/^demo: summary/,/plot:/p' "$TAP_TMP/out")" \
    "second run: the same summary to the last digit"
