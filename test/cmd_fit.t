#!/usr/bin/env bash
# cmd_fit.t - `qid fit` and `qid predict` on the command line: a synthetic
# results store (build/test/fit_cmd.t --write-store: 4 model sizes x 5
# checkpoints x bits 2/3/4 from Ouyang et al.'s law with 5% noise, plus
# baselines) is fitted with and without filters; the report, warnings and
# errors are checked; predictions come from the stored fit (with bootstrap
# intervals) and from published coefficients given with --law, which must
# reproduce the 2-bit column of Ouyang et al.'s Table 1 within 6%; the
# per-factor laws are printed; --training-level CKPT gives the D a
# checkpoint's QiD implies; degenerate stores (QiD <= 0 only, D collinear
# with N, fewer points than coefficients) give one line and write nothing;
# `qid predictor` on the stores of build/test/fit_predictor.t --write-store
# (forest: 5 families; tiny: a frontier known by hand); and the store's lock
# refuses a fit while a writer holds it.
set -u
. "$(dirname "$0")/taplib.sh"
tap_fit_generators
plan 119
tap_tmpdir
T=$TAP_TMP
S=$T/r.h5
"$GEN" --write-store "$S"
ok $? "setup: synthetic store written"

# fit
$QID fit "$S" --boot 100 --seed 3 >"$T/out" 2>"$T/err"
ok $? "fit: exits 0"
like "$(cat "$T/out")" "points 60 (" "fit: 60 points"
like "$(cat "$T/out")" "converged after" "fit: convergence reported"
like "$(cat "$T/out")" "95% interval (bootstrap by checkpoint: 100 draws" "fit: bootstrap intervals"
like "$(cat "$T/out")" "written to /fits/default" "fit: written to /fits/default"
is "" "$(grep '^warning' "$T/out")" "fit: no warnings on a good store"
alpha=$(awk '$1 == "alpha" { print $2 }' "$T/out")
is 1 "$(awk -v a="$alpha" 'BEGIN { print (a > 0.2 && a < 0.25) }')" "fit: alpha $alpha near 0.2261"

like "$(cat "$T/out")" "QiD = c * D^beta for each (N, P)       median beta " "fit: the per-factor law vs D"
is 1 "$(grep -c 'median beta  *[0-9.]* over 12 of 12 groups  \[unified 0\.5' "$T/out")" "fit: its median over 12 (N, P) groups, next to the unified law's"
like "$(cat "$T/out")" "QiD = c / N^alpha for each (D bin, P)  median alpha" "fit: the per-factor law vs N"
like "$(cat "$T/out")" "QiD = c / P^gamma for each (N, D)      median gamma" "fit: the per-factor law vs P"
$QID fit "$S" --boot 0 --factors --name factors >"$T/out" 2>"$T/err"
is 12 "$(grep -cE '^    N [0-9.e+]+ +P [234] +c ' "$T/out")" "fit --factors: one line per (N, P) group of the law vs D"
is 20 "$(grep -cE '^    N [0-9.e+]+ +D [0-9.e+]+ +c ' "$T/out")" "fit --factors: one line per (N, D) group of the law vs P"

# law forms: Kumar et al.'s exponential in P, stored with its form
$QID fit "$S" --law kumar --boot 100 --seed 3 --name kumar >"$T/out" 2>"$T/err"
ok $? "fit --law kumar: exits 0"
like "$(cat "$T/out")" "unified law (kumar): QiD = C * D^gamma_D * N^-gamma_N * exp(-P/gamma_post)" "fit --law kumar: the form printed"
gp=$(awk '$1 == "gamma_post" { print $2 }' "$T/out")
is 1 "$(awk -v a="$gp" 'BEGIN { print (a > 0.45 && a < 0.6) }')" "fit --law kumar: gamma_post $gp (about 1/ln 6.6: the 3->4 bit ratio of Ouyang's law)"
like "$(cat "$T/out")" "written to /fits/kumar" "fit --law kumar: written to /fits/kumar"
is '(0): "kumar" (0): "ouyang"' "$(echo $(h5dump -a /fits/kumar/form "$S" | grep -o '(0): "[a-z]*"') $(h5dump -a /fits/default/form "$S" | grep -o '(0): "[a-z]*"'))" "the form attribute: kumar, and ouyang for the default"
is "C,gamma_N,gamma_D,gamma_post" "$(h5dump -a /fits/kumar/draws/columns "$S" | grep -o 'C,gamma_[A-Za-z_,]*')" "kumar's draws are named by its coefficients"
$QID predict "$S" --fit kumar --params 1e9 --bits 2 --tokens-for 0.2 >"$T/out" 2>"$T/err"
like "$(cat "$T/out")" "law (kumar): C " "predict --fit kumar: reads the form from the stored fit"
is 1 "$(awk '$1 == "1e+09" && $2 == "2" { print ($4 > 5e8 && $4 < 5e9) }' "$T/out")" "predict --fit kumar --tokens-for 0.2: a D near Ouyang's 1.2e9 ($(awk '$1 == "1e+09" { print $4 }' "$T/out"))"
$QID predict "$S" --fit kumar --training-level m2-3.h5 >"$T/out" 2>"$T/err"
d=$(awk '/all bit widths together/ { print $7 }' "$T/out")
is 1 "$(awk -v d="$d" 'BEGIN { print (d > 2.55e11 && d < 3.45e11) }')" "predict --fit kumar --training-level CKPT: D $d, within 15% of 3e11"
$QID predict --law 2,0.25,0.5,0.5 --form kumar --params 1e8 --bits 3 --tokens 1e10 >"$T/out" 2>"$T/err"
is 4.9575 "$(awk '$1 == "1e+08" { print $4 }' "$T/out")" "predict --law --form kumar: 2 sqrt(1e10) 1e8^-0.25 e^-6 = 4.9575 by hand"
$QID predict --form kumar --params 1e8 --bits 3 --tokens 1e10 "$S" >"$T/out" 2>"$T/err"
is 2 $? "predict --form without --law: usage error"
$QID fit "$S" --law power >"$T/out" 2>"$T/err"
is "2 qid fit: error: --law wants a law form: ouyang, kumar or ouyang-lr, got 'power'" "$? $(cat "$T/err")" "fit --law with an unknown form: usage error naming the forms"
$QID fit "$S" --law kumar --bits 3 --boot 0 --name k3 >"$T/out" 2>"$T/err"
is "1 1" "$? $(wc -l <"$T/err" | tr -d ' ')" "fit --law kumar, one bit width: exits 1 with one line"
like "$(cat "$T/err")" "P 1;" "... saying P does not vary"

# the law forms compared on the same points
$QID fit "$S" --compare --boot 100 --seed 3 --name cmp >"$T/out" 2>"$T/err"
ok $? "fit --compare: exits 0"
tap_doc_sample docs/commands.md "# sample: test/cmd_fit.t's store" "$T/out" "docs/commands.md's --compare sample is this output"

like "$(cat "$T/out")" "law comparison on the same 60 points (60 significant" "fit --compare: the table's points"
like "$(cat "$T/out")" "the rest predicted (24 points, 24 significant, 8 checkpoints)" "fit --compare: the last third of log D (3e11, 1e12) is the future"
is ouyang "$(awk '/lowest leave-future-out error:/ { print $NF }' "$T/out")" "fit --compare: Ouyang's law, which made the data, predicts the future best"
is 1 "$(grep -c 'future err ouyang - kumar: -[0-9.]*  95% \[-[0-9.]*, -[0-9.]*\]' "$T/out")" "fit --compare: the difference of the future errors, its bootstrap interval below zero"
is 9 "$(grep -cE '^  [0-9.e+]+ +[234] +[0-9.e+-]+ +\[' "$T/out")" "fit --compare: 9 predictions (7B/70B/405B x 2/3/4 bits), each law side by side"
like "$(cat "$T/out")" "written to /fits/cmp (and its compare group)" "fit --compare: stored"
is '(0): "ouyang"' "$(h5dump -a /fits/cmp/compare/best_lfo "$S" | grep -o '(0): "[a-z]*"')" "/fits/cmp/compare: best_lfo ouyang"
dims() { h5dump -H -d "$1" "$S" | grep -o 'DATASPACE  SIMPLE { ( [0-9]*' | grep -o '[0-9]*$'; }
is "2 1 18" "$(dims /fits/cmp/compare/laws_table) $(dims /fits/cmp/compare/pairs) $(dims /fits/cmp/compare/predictions)" "/fits/cmp/compare: 2 laws, 1 pair, 18 predictions"
FF=$T/flatfuture.h5
"$GEN" --write-store "$FF" flatfuture
$QID fit "$FF" --compare --boot 0 >"$T/out" 2>"$T/err"
is "1 1" "$? $(wc -l <"$T/err" | tr -d ' ')" "fit --compare with no significant QiD beyond the cut: exits 1 with one line"
like "$(cat "$T/err")" "qid fit: error: law comparison: leave-future-out needs at least 2 checkpoints beyond the first 67% of each model's log D range with QiD significantly above zero; there are 0 (24 points beyond the cut)" "... saying why"
$QID predict "$FF" --params 1e9 --bits 2 --tokens 1e10 >/dev/null 2>"$T/err2"
like "$(cat "$T/err2")" "has no fit '/fits/default' (no fits;" "... and nothing written to /fits"
$QID fit "$S" --compare --bits 3 --boot 0 --name c3 >"$T/out" 2>"$T/err"
is "1 1" "$? $(wc -l <"$T/err" | tr -d ' ')" "fit --compare with one bit width: exits 1 with one line"
$QID predict "$S" --fit c3 --params 1e9 --bits 2 --tokens 1e10 >/dev/null 2>"$T/err2"
like "$(cat "$T/err2")" "has no fit '/fits/c3'" "... and /fits/c3 is not written"

# the learning-rate form: refused where the points have no learning rate or it does not vary
$QID fit "$S" --law ouyang-lr --boot 0 --name lr0 >"$T/out" 2>"$T/err"
is "1 1" "$? $(wc -l <"$T/err" | tr -d ' ')" "fit --law ouyang-lr without learning rates: exits 1 with one line"
like "$(cat "$T/err")" "the ouyang-lr law needs the learning rate at every checkpoint: 60 of 60 points have none (hint: qid import --schedule records it" "... saying which points lack it and how to record it"
$QID predict "$S" --fit lr0 --params 1e9 --bits 2 --tokens 1e10 >/dev/null 2>"$T/err2"
like "$(cat "$T/err2")" "has no fit '/fits/lr0'" "... and /fits/lr0 is not written"
like "$(cat "$T/out") $($QID fit "$S" --compare --boot 0 --name cmp0 2>&1)" "(ouyang-lr left out: 60 of 60 points have no learning rate" "fit --compare without learning rates: compares the other forms and says why"
LF=$T/lrflat.h5
"$GEN" --write-store "$LF" lrflat
$QID fit "$LF" --law ouyang-lr --boot 0 --name lr0 >"$T/out" 2>"$T/err"
is "1 1" "$? $(wc -l <"$T/err" | tr -d ' ')" "fit --law ouyang-lr, one learning rate: exits 1 with one line"
like "$(cat "$T/err")" "the ouyang-lr law needs checkpoints at different learning rates: all 60 points have lr 0.5 of the peak" "... saying it does not vary"
LV=$T/lr.h5
"$GEN" --write-store "$LV" lr
$QID fit "$LV" --law ouyang-lr --boot 100 --seed 3 --name lr >"$T/out" 2>"$T/err"
ok $? "fit --law ouyang-lr with learning rates 0.2..1, apart from D: exits 0"
d=$(awk '$1 == "delta" { print $2 }' "$T/out")
is 1 "$(awk -v a="$d" 'BEGIN { print (a > -0.5 && a < 0.5) }')" "fit --law ouyang-lr: delta $d near 0 (the data have no learning-rate effect)"
like "$(cat "$T/out")" "(predictions at lr 0.2 of the peak: the lowest learning rate of the points" "fit --law ouyang-lr: predictions at the end of the schedule, said"
is "k,alpha,beta,gamma,delta 0.2" "$(h5dump -a /fits/lr/draws/columns "$LV" | grep -o 'k,alpha,[a-z,]*') $(h5dump -a /fits/lr/lr "$LV" | sed -n 's/^ *(0): //p')" "/fits/lr: five draws columns and the lr of its predictions"
$QID predict "$LV" --fit lr --params 1e9 --bits 3 --tokens 1e11 --lr 1 >"$T/out" 2>"$T/err"
like "$(cat "$T/out")" "delta" "predict --fit lr --lr 1: the law with delta"
$QID predict "$LV" --fit lr --params 1e9 --bits 3 --tokens-for 0.1 >"$T/out" 2>"$T/err"
is "1 qid predict: error: the ouyang-lr law (QiD = k * D^beta / (N^alpha * P^gamma) * exp(delta * (1 - lr/lr_peak))) cannot be inverted for D: --tokens-for is not defined for it" "$? $(cat "$T/err")" "predict --tokens-for on the ouyang-lr law: a clear error"
$QID fit "$LV" --compare --boot 0 --name cmplr >"$T/out" 2>"$T/err"
like "$(cat "$T/out")" "  ouyang-lr " "fit --compare with learning rates: the ouyang-lr law is compared too"

# a fit never replaces another silently; inspect lists the fits with their filters
$QID fit "$S" --bits 3,4 --boot 0 --name b34 >/dev/null 2>&1
$QID fit "$S" --bits 2,3 --boot 0 --name b34 >"$T/out" 2>&1
like "$(cat "$T/out")" "replacing /fits/b34: ouyang law from method any, format any, bits 3,4, models all, tokens [0, inf], made " "fit over an existing name: says what it replaced"
$QID fit "$S" --bits 3,4 --boot 0 --name b34 >"$T/out" 2>&1
like "$($QID inspect "$S")" "    /fits/b34            ouyang law: method any, format any, bits 3,4, models all, tokens [0, inf]" "inspect lists each fit with its law and filters"

# filters are checked against the format grammar and against the store
$QID fit "$S" --format int3_g128 --boot 0 --name f1 >"$T/out" 2>"$T/err"
is "2 qid fit: error: --format wants a quantizer format, e.g. int4-g128-sym, mxfp4, nf4 (qid quantize --help lists them), got 'int3_g128'" "$? $(cat "$T/err")" "--format not in the grammar: usage error"
$QID fit "$S" --method RTN --boot 0 --name f1 >"$T/out" 2>"$T/err"
is "2 qid fit: error: --method wants a quantizer method: rtn, gptq or awq, got 'RTN'" "$? $(cat "$T/err")" "--method RTN (case): usage error"
$QID fit "$S" --format int4-g32-sym --boot 0 --name f1 >"$T/out" 2>"$T/err"
is "1 qid fit: error: no QiD points pass the filters: no rows with format 'int4-g32-sym' (the store has: int2-g128-sym, int3-g128-sym, int4-g128-sym)" "$? $(cat "$T/err")" "a valid format the store lacks: what the store has"
$QID fit "$S" --method gptq --boot 0 --name f1 >"$T/out" 2>"$T/err"
is "1 qid fit: error: no QiD points pass the filters: no rows with method 'gptq' (the store has: rtn)" "$? $(cat "$T/err")" "a method the store lacks: what the store has"
$QID fit "$S" --format int3-g128 --boot 0 --name f1 >"$T/out" 2>"$T/err"
like "$(cat "$T/out")" "points 20 (" "--format int3-g128: the canonical int3-g128-sym's 20 points"
like "$(h5dump -a /fits/f1/filter_format "$S")" '(0): "int3-g128-sym"' "... stored as int3-g128-sym"

# extrapolation is stated with its factor; uninformative intervals are flagged
$QID predict "$S" --params 7e9 --tokens 1e14 --bits 3 >"$T/out" 2>&1
like "$(cat "$T/out")" "note: extrapolation beyond the points the law was fitted to: N up to 7e+09 is 2.33x the largest fitted (3e+09); D up to 1e+14 is 100x the largest fitted (1e+12)" "predict beyond the fitted N and D: a note with the factors"
$QID predict "$S" --params 1e9 --tokens 1e11 --bits 3 >"$T/out" 2>&1
is 0 "$(grep -c 'extrapolation' "$T/out")" "predict inside the fitted range: no note"
$QID fit "$S" --models m1,m2,m3 --bits 3,4 --max-tokens 3e10 --boot 200 --seed 3 --name few12 >/dev/null 2>&1
$QID predict "$S" --fit few12 --params 1e9 --bits 2 --tokens-for 1e-8 >"$T/out" 2>&1
like "$(cat "$T/out")" "(uninformative: the interval spans 5 orders of magnitude)  (D outside the fitted 1e+10..3e+10)" "a 12-point fit's tokens-for far below its data: the interval flagged, D outside the fitted range"

$QID fit "$S" --boot 0 --name pts >"$T/out" 2>&1
like "$(cat "$T/out")" "points 60 (all in the robust fit; 60 with QiD > 2 se start it; " "the counts say what each is: all points fitted, the significant ones start it"

# a poor law of one bit width is a warning (the unified law on all three can still look fine)
"$GEN" --write-store "$T/noisy4.h5" noisy4
$QID fit "$T/noisy4.h5" --boot 0 >"$T/out" 2>&1
like "$(cat "$T/out")" "warning: poor per-bit fit at P 4: R^2 (log) 0.496 < 0.80" "4-bit QiD without a law of its own: the per-bit warning"
$QID fit "$S" --boot 0 --name clean >"$T/out" 2>&1
is 0 "$(grep -c '^warning' "$T/out")" "the clean store (Ouyang's law, 5% noise): no warning"

# filters
$QID fit "$S" --bits 3,4 --boot 0 --name b34 >"$T/out" 2>"$T/err"
like "$(cat "$T/out")" "points 40 (" "filter --bits 3,4: 40 points"
$QID fit "$S" --models m2,m3,m4 --min-tokens 3e10 --boot 0 --name sub >"$T/out" 2>"$T/err"
like "$(cat "$T/out")" "points 36 (" "filter --models m2,m3,m4 --min-tokens 3e10: 36 points"
$QID fit "$S" --models m1,m2,m3 --bits 3,4 --max-tokens 3e10 --boot 0 --name few >"$T/out" 2>"$T/err"
like "$(cat "$T/out")" "warning: too few points: 12" "too few points: a clear warning"
$QID fit "$S" --models m2 --boot 0 --name one >"$T/out" 2>"$T/err"
is 1 $? "one model size: exits 1"
like "$(cat "$T/err")" "qid fit: error: cannot fit the unified law" "one model size: a message, not a number"
$QID fit "$S" --bits 2,x >"$T/out" 2>"$T/err"
is 2 $? "bad --bits: usage error"

# predict from the stored fit
$QID predict "$S" --params 7e9,70e9 --tokens 1e14 --bits 2,3,4 >"$T/out" 2>"$T/err"
ok $? "predict: exits 0"
is 6 "$(grep -c '^7e+' "$T/out")" "predict: one row per (N, P)"
like "$(cat "$T/out")" "95% interval (bootstrap, QiD)" "predict: intervals from the stored draws"
$QID predict "$S" --params 1e9 --bits 3 --training-level 0.1 >"$T/out" 2>"$T/err"
like "$(cat "$T/out")" "D implied" "predict --training-level: the D a QiD implies"
$QID predict "$S" --fit nope --params 1e9 --bits 3 --tokens 1e12 >"$T/out" 2>"$T/err"
like "$(cat "$T/err")" "has no fit '/fits/nope' (fits there: b34, clean, cmp, cmp0, default, f1, factors, few, few12, kumar, pts, sub" "predict: a missing fit is named"

# the training level of a checkpoint of the store
tap_abs_paths
tap_import_tiny "$T/files" gpt-neox-tiny 3
sha=$(h5dump -a /tensor_sha256 "$T/files/neox-3.h5" | sed -n 's/^ *(0): "\(.*\)"$/\1/p')
QID_TEST_M23_SHA=$sha "$GEN" --write-store "$T/bysha.h5"
$QID fit "$T/bysha.h5" --boot 0 >/dev/null 2>&1
$QID predict "$T/bysha.h5" --training-level "$T/files/neox-3.h5" >"$T/out" 2>"$T/err"
like "$(cat "$T/out")" "checkpoint ck/m2-3.h5: model m2" "--training-level FILE spelled another way than the job: found by its tensor hash"
$QID predict "$S" --training-level m2-3.h5 >"$T/out" 2>"$T/err"
ok $? "--training-level CKPT: exits 0"
like "$(cat "$T/out")" "checkpoint ck/m2-3.h5: model m2, N 3e+08, step 3, tokens seen 3e+11" "--training-level CKPT: the checkpoint and its tokens"
is 3 "$(grep -cE '^  [234] +rtn +int[234]-g128-sym ' "$T/out")" "--training-level CKPT: one D per bit width"
d=$(awk '/all bit widths together/ { print $7 }' "$T/out")
is 1 "$(awk -v d="$d" 'BEGIN { print (d > 2.55e11 && d < 3.45e11) }')" "--training-level CKPT: all bit widths imply D $d, within 15% of 3e11"
like "$(cat "$T/out")" "95% interval (bootstrap)" "--training-level CKPT: intervals from the stored draws"
$QID predict "$S" --training-level m3 --bits 4 >"$T/out" 2>"$T/err"
is "5 5" "$(grep -c '^checkpoint ck/m3-' "$T/out") $(grep -cE '^  4 +rtn' "$T/out")" "--training-level MODEL --bits 4: its 5 checkpoints, 4 bits only"
$QID predict "$S" --training-level nope >"$T/out" 2>"$T/err"
is 1 $? "--training-level with an unknown checkpoint: exits 1"
like "$(cat "$T/err")" "qid predict: error: no checkpoint or model 'nope' in" "... naming it and listing what is there"
$QID predict "$S" --training-level m2-3.h5 --params 1e9 >"$T/out" 2>"$T/err"
is 2 $? "--training-level CKPT with --params: usage error"

# degenerate stores: one clear line, and nothing written to /fits
for kind in nonpositive collinear; do
    "$GEN" --write-store "$T/$kind.h5" $kind
    $QID fit "$T/$kind.h5" --boot 0 >"$T/out" 2>"$T/err"
    is "1 1" "$? $(wc -l <"$T/err" | tr -d ' ')" "$kind store: exits 1 with one line"
    $QID predict "$T/$kind.h5" --params 1e9 --bits 2 --tokens 1e10 >/dev/null 2>"$T/err2"
    like "$(cat "$T/err2")" "has no fit '/fits/default' (no fits;" "$kind store: nothing written to /fits"
    cp "$T/err" "$T/err-$kind"
done
like "$(cat "$T/err-nonpositive")" "qid fit: error: cannot fit the unified law to 60 points: no point has QiD significantly above zero" "zero or negative QiD only: the message"
like "$(cat "$T/err-collinear")" "rank-deficient design" "D collinear with N: the message"
$QID fit "$S" --bits 3 --boot 50 --name p3 >"$T/out" 2>"$T/err"
is "0 0" "$? $(wc -l <"$T/err" | tr -d ' ')" "one bit width: fitted, exit 0"
like "$(cat "$T/out")" "warning: one bit width (P 3): gamma is not fitted but fixed at 0, so k is k / P^gamma of that P" \
    "one bit width: the warning says gamma is fixed at 0"
like "$(grep '^gamma ' "$T/out")" " 0  [0, 0]   (log-linear start 0)" "one bit width: gamma 0, also in every bootstrap draw"
$QID fit "$S" --models m1,m2 --bits 2 --max-tokens 3e10 --boot 0 --name four >"$T/out" 2>"$T/err"
is "1 qid fit: error: too few points to fit the unified law: 4 (needs at least 5 for 4 coefficients)" "$? $(cat "$T/err")" \
    "fewer points than parameters: exits 1 with the message"

# the predictor of Xu et al.
F=$T/forest.h5
"$GENP" --write-store "$F" forest
$QID predictor "$F" --trees 100 --budget 40MB >"$T/out" 2>"$T/err"
ok $? "predictor: exits 0"
like "$(cat "$T/out")" "examples 300 of 301 quantizer rows (0 without a 16-bit loss, 1 missing a feature), 5 families" "predictor: examples and families"
is rtn_sqnr_db "$(awk '/^feature importance/ { getline; print $1 }' "$T/out")" "predictor: the RTN SQNR is the most important feature"
pooled=$(awk '$1 == "all" && $2 == "(pooled)" { print $4, $5, $6 }' "$T/out")
is 1 "$(echo "$pooled" | awk '{ print ($1 < 0.6 * $2 && $1 < 0.4 * $3) }')" "predictor: held-out forest RMSE beats linear and mean ($pooled)"
like "$(cat "$T/out")" "lowest loss within 4e+07 bytes = 38.1 MiB: " "predictor: the best setting within the budget"
like "$(cat "$T/out")" "written to /fits/predictor of" "predictor: stored"
TI=$T/tiny.h5
"$GENP" --write-store "$TI" tiny
$QID predictor "$TI" --trees 20 >"$T/out" 2>"$T/err"
is "1 1" "$? $(wc -l <"$T/err" | tr -d ' ')" "predictor, one family: exits 1 with one line"
like "$(cat "$T/err")" "qid predictor: error: leave-one-family-out needs at least 2 model families; the 8 examples are all of family 'tiny'" "... saying why"
$QID predictor "$TI" --holdout model --trees 20 --budget 2GiB >"$T/out" 2>"$T/err"
like "$(cat "$T/out")" "lowest loss within 2.147e+09 bytes = 2 GiB: tiny-4b rtn int4-g128 (2.7000)" "predictor --budget 2GiB: the 4B model at 4 bits"
$QID predictor "$TI" --holdout model --trees 20 --budget 2e9 --name p2 >"$T/out" 2>"$T/err"
like "$(cat "$T/out")" "lowest loss within 2e+09 bytes = 1.86 GiB: tiny-1b 16-bit (3.0000)" "predictor --budget 2e9: the 1B model at 16 bits"
is 3 "$(sed -n '/^Pareto frontier/,/lowest loss/p' "$T/out" | grep -c '^  [0-9]')" "predictor --budget 2e9: 3 settings on the frontier"
$QID predict "$F" --fit predictor --params 1e9 --bits 4 --tokens 1e12 >"$T/out" 2>"$T/err"
like "$(cat "$T/err")" "'/fits/predictor' in '$F' is not a law of QiD (kind 'predictor'" "predict --fit on a predictor: refused with a message"
$QID predictor "$TI" --budget 4XB >"$T/out" 2>"$T/err"
is "2 qid predictor: error: bad --budget '4XB' (bytes: e.g. 1e9, 4GiB, 512MiB, 4GB)" "$? $(cat "$T/err")" "predictor: a bad budget is a usage error"
$QID predictor "$TI" --target nats >/dev/null 2>"$T/err"
is 2 $? "predictor: a bad --target is a usage error"

# published coefficients: Ouyang et al. Table 1, 2-bit column (T tokens)
$QID predict --law 0.017,0.2261,0.5251,5.4967 --tokens-for 0.2 --params 1e9 --bits 2 >"$T/out" 2>"$T/err"
t=$(awk '$1 == "1e+09" { print $5 }' "$T/out")
is 1 "$(awk -v t="$t" 'BEGIN { print (t > 0.0011 * 0.94 && t < 0.0011 * 1.06) }')" \
    "--law --tokens-for 0.2, 1B, 2 bit: $t T tokens (Table 1: 0.0011)"
$QID predict --law 0.017,0.2261,0.5251,5.4967 --tokens-for 0.2,0.3,0.4,0.5 --params 1e9,405e9 --bits 2 >"$T/out" 2>"$T/err"
got=$(awk '$2 == "2" { printf "%s ", $5 }' "$T/out")
want="0.0011 0.0025 0.0043 0.0066 0.0151"
is 1 "$(echo "$got" | awk -v w="$want" '{ n = split(w, W, " "); bad = 0
    for (i = 1; i <= 4; i++) if ($i < W[i] * 0.94 || $i > W[i] * 1.06) bad = 1
    if ($5 < W[5] * 0.94 || $5 > W[5] * 1.06) bad = 1; print 1 - bad }')" \
    "Table 1, 2-bit column within 6%: $got(1B at 0.2..0.5, then 405B; table: $want)"

# the lock: a writer holds the store
echo "4242 node7" >"$S.lock"
exec 9>>"$S.lock"
flock -n 9 || echo "# flock on $S.lock failed"
$QID fit "$S" --boot 0 --name locked >"$T/out" 2>"$T/err"
is 1 $? "lock: fit refused while the store is held"
like "$(cat "$T/err")" "is locked by pid 4242 on node7" "lock: the message names the holder"
exec 9>&-
