#!/usr/bin/env bash
# fit_cmd.t - `qid fit` and `qid predict` on the command line: a synthetic
# results store (build/test/fit_cmd.t --write-store: 4 model sizes x 5
# checkpoints x bits 2/3/4 from Ouyang et al.'s law with 5% noise, plus
# baselines) is fitted with and without filters; the report, warnings and
# errors are checked; predictions come from the stored fit (with bootstrap
# intervals) and from published coefficients given with --law, which must
# reproduce the 2-bit column of Ouyang et al.'s Table 1 within 6%; and the
# store's lock refuses a fit while a writer holds it.
set -u
. "$(dirname "$0")/taplib.sh"
if ! $QID fit --help >/dev/null 2>&1; then skip_all "qid fit is not in src/main.c's commands yet"; fi
if ! $QID predict --help >/dev/null 2>&1; then skip_all "qid predict is not in src/main.c's commands yet"; fi
GEN=${BUILD:-build}/test/fit_cmd.t
[ -x "$GEN" ] || skip_all "$GEN (the store generator) is not built"
plan 23
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
like "$(cat "$T/err")" "has no fit '/fits/nope' (fits there: b34, default, few, sub" "predict: a missing fit is named"

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
