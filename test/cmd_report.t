#!/usr/bin/env bash
# cmd_report.t - `qid report` on the synthetic results store of
# build/test/fit_cmd.t --write-store (4 model sizes x 5 checkpoints x bits
# 2/3/4 from Ouyang et al.'s law with 5% noise): every table, script and
# plot is written and non-empty, PNGs are PNGs and SVGs SVGs, the summary
# carries the coefficients and says "fit OK", predictions.csv has the 9
# (N, P) rows; without a stored fit the law is fitted in memory with a
# note; a fit on 12 points gets the TOO FEW POINTS line; without gnuplot the
# tables are still written and one warning says the plots were skipped. The
# Xu et al. predictor (trained in memory, then stored with a budget) and the
# Pareto frontier have their tables, plots and summary lines; a store of one
# model family (build/test/fit_predictor.t --write-store tiny) gets the
# frontier and a line saying why there is no predictor.
set -u
. "$(dirname "$0")/taplib.sh"
tap_fit_generators
plan 44
tap_tmpdir
T=$TAP_TMP
S=$T/r.h5
"$GEN" --write-store "$S"
ok $? "setup: synthetic store written"
$QID fit "$S" --boot 100 --seed 3 >"$T/fit.out" 2>&1
ok $? "setup: qid fit stores /fits/default"
HAVE_GP=0
command -v gnuplot >/dev/null 2>&1 && HAVE_GP=1
skip_ok() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # SKIP $1"; }

# a full report from the stored fit
R=$T/rep
$QID report "$S" -o "$R" >"$T/out" 2>"$T/err"
ok $? "report: exits 0"
like "$(cat "$T/out")" "report written to $R" "report: says where"
missing=""
for f in summary.txt points.csv predictions.csv pareto.csv predictor.csv report.gp points.dat lines.dat \
    predictions.dat pareto.dat predictor.dat; do
    [ -s "$R/$f" ] || missing="$missing $f"
done
is "" "$missing" "tables, script and data: every file exists and is non-empty"
PLOTS="qid_vs_d qid_vs_n qid_vs_p predictions actual_vs_predicted pareto predictor_actual_vs_predicted"
if [ $HAVE_GP = 1 ]; then
    missing=""
    for p in $PLOTS; do for e in png svg; do [ -s "$R/$p.$e" ] || missing="$missing $p.$e"; done; done
    is "" "$missing" "plots: 7 PNG + 7 SVG, non-empty"
    bad=""
    for p in $PLOTS; do
        [ "$(head -c 8 "$R/$p.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || bad="$bad $p.png"
    done
    is "" "$bad" "plots: PNG signature"
    bad=""
    for p in $PLOTS; do grep -q '<svg' "$R/$p.svg" || bad="$bad $p.svg"; done
    is "" "$bad" "plots: SVGs contain <svg"
    is "" "$(cat "$T/err")" "plots: no warning"
else
    for i in 1 2 3 4; do skip_ok "gnuplot is not installed"; done
fi
is 4 "$(grep -cE '^(k|alpha|beta|gamma) +[0-9.e+-]+ +\[' "$R/summary.txt")" "summary: 4 coefficients with intervals"
alpha=$(awk '$1 == "alpha" { print $2 }' "$R/summary.txt")
is 1 "$(awk -v a="$alpha" 'BEGIN { print (a > 0.2 && a < 0.25) }')" "summary: alpha $alpha near 0.2261"
like "$(cat "$R/summary.txt")" "fit OK: 60 points" "summary: fit OK on 60 points"
is 0 "$(grep -cE 'POOR FIT|TOO FEW POINTS' "$R/summary.txt")" "summary: no POOR FIT / TOO FEW POINTS line"
is 9 "$(tail -n +2 "$R/predictions.csv" | grep -c '^[47]')" "predictions.csv: 9 rows (7B/70B/405B x 2/3/4 bit)"
is 61 "$(wc -l <"$R/points.csv" | tr -d ' ')" "points.csv: header + 60 points"
is "model,checkpoint,step,method,format,N,D,P,qid,qid_se,predicted" "$(head -1 "$R/points.csv")" "points.csv: the identity columns first, so methods and checkpoints can be told apart"
like "$(sed -n 2p "$R/points.csv")" "m1,ck/m1-0.h5,0,rtn,int2-g128-sym," "points.csv: a row names its model, checkpoint, step, method and format"
is 24 "$(grep -c "using 1:2:7 with points pt variable" "$R/report.gp")" "qid_vs_d: the point type follows the method (3 bit widths x 4 sizes, PNG and SVG)"

# a fit with its law comparison (qid fit --compare): the forms side by side
[ ! -e "$R/law_compare.csv" ]; ok $? "no comparison stored: no law_compare.csv"
$QID fit "$S" --compare --boot 100 --seed 3 --name cmp >/dev/null 2>&1
$QID report "$S" --fit cmp -o "$T/cmp" >/dev/null 2>"$T/err"
is 19 "$(wc -l <"$T/cmp/law_compare.csv" | tr -d ' ')" "law_compare.csv: header + 2 laws x 9 grid points"
like "$(cat "$T/cmp/summary.txt")" "fit: /fits/cmp (stored by 'qid fit')
filters: method any, format any, bits any, models all, tokens [0, inf]" "summary: the fit's filters"
like "$(cat "$T/cmp/summary.txt")" "law forms compared on the same points (qid fit --compare; law_compare.png):" "summary: the comparison's section"
like "$(cat "$T/cmp/summary.txt")" "lowest leave-future-out error: ouyang" "summary: the form that predicts the future best"
if [ $HAVE_GP = 1 ]; then
    is 89504e470d0a1a0a "$(head -c 8 "$T/cmp/law_compare.png" | od -An -tx1 | tr -d ' \n')" "law_compare.png drawn"
else
    skip_ok "gnuplot is not installed"
fi

# the predictor (trained in memory: the store has no /fits/predictor) and the frontier
like "$(cat "$T/out")" "has no /fits/predictor; the predictor was trained in memory" "predictor: a note, trained in memory"
like "$(cat "$R/summary.txt")" "leave-one-family-out RMSE of the loss over 60 examples: forest " "summary: the predictor's held-out errors"
is 17 "$(wc -l <"$R/pareto.csv" | tr -d ' ')" "pareto.csv: header + 4 models x (16-bit + 3 formats)"
nf=$(awk -F, 'NR > 1 && $NF == 1' "$R/pareto.csv" | wc -l | tr -d ' ')
like "$(cat "$R/summary.txt")" "Pareto frontier (memory = N x bits / 8, latest checkpoint per model and setting): $nf of 16 candidates; lowest loss: " "summary: the frontier, as many as pareto.csv marks ($nf)"
is 61 "$(wc -l <"$R/predictor.csv" | tr -d ' ')" "predictor.csv: header + 60 examples"

# a stored predictor with a budget
$QID predictor "$S" --trees 50 --budget 100MB >/dev/null 2>&1
$QID report "$S" -o "$T/pred" --gnuplot /nonexistent/gnuplot >"$T/out" 2>&1
like "$(cat "$T/pred/summary.txt")" "(Xu et al.): /fits/predictor (stored by 'qid predictor')" "stored predictor: used"
like "$(cat "$T/pred/summary.txt")" "candidates within 1e+08 bytes; lowest loss: " "stored predictor: its budget bounds the frontier"
is 2 "$(grep -c "^set arrow 1 from 1e+08, graph 0" "$T/pred/report.gp")" "report.gp: the budget drawn as a line (PNG and SVG)"

# one family: no predictor, the frontier still drawn
"$GENP" --write-store "$T/tiny.h5" tiny
$QID fit "$T/tiny.h5" --boot 0 >/dev/null 2>&1
$QID report "$T/tiny.h5" -o "$T/tiny" --gnuplot /nonexistent/gnuplot >"$T/out" 2>&1
ok $? "one family: the report is written"
like "$(cat "$T/tiny/summary.txt")" "(Xu et al.): none: leave-one-family-out needs at least 2 model families" "one family: the summary says why there is no predictor"
like "$(cat "$T/tiny/summary.txt")" "5 of 6 candidates; lowest loss: tiny-4b 16-bit (2.6000, 8e+09 bytes)" "one family: the frontier by hand"
is "0 2" "$(grep -c predictor_actual_vs_predicted "$T/tiny/report.gp") $(grep -cE "^set output 'pareto\.(png|svg)'" "$T/tiny/report.gp")" \
    "one family: no predictor plot in report.gp, the frontier's PNG and SVG are there"

# no stored fit: the default is fitted in memory, with a note; a fit asked for by name must exist
"$GEN" --write-store "$T/nofit.h5"
$QID report "$T/nofit.h5" --boot 20 -o "$T/mem" --gnuplot /nonexistent/gnuplot >"$T/out" 2>&1
like "$(cat "$T/out")" "has no /fits/default; fitting the unified law in memory" "no stored fit: a note, fitted in memory"
$QID report "$S" --fit nope -o "$T/nope" >"$T/out" 2>"$T/err"
is "1 1" "$? $(wc -l <"$T/err" | tr -d ' ')" "--fit of a fit that is not there: exits 1 with one line"
like "$(cat "$T/err")" "qid report: error: '$S' has no fit '/fits/nope' (fits there: cmp, default, predictor; run 'qid fit $S --name nope' first)" "... listing the stored fits"
[ ! -e "$T/nope" ]; ok $? "... and no report directory"

# too few points: a fit on 12 points, and no gnuplot
$QID fit "$S" --models m1,m2,m3 --bits 3,4 --max-tokens 3e10 --boot 0 --name few >/dev/null 2>&1
$QID report "$S" --fit few -o "$T/few" --gnuplot /nonexistent/gnuplot >"$T/out" 2>&1
ok $? "few points, no gnuplot: exits 0"
like "$(cat "$T/few/summary.txt")" "TOO FEW POINTS: 12 points" "few points: the TOO FEW POINTS line"
is "1 1" "$(grep -c '^warning: plots skipped' "$T/out") $(ls "$T/few"/predictions.csv | wc -l)" \
    "no gnuplot: one warning line, tables still written"

$QID report "$S" >/dev/null 2>&1
is 2 $? "no -o DIR: usage error"
