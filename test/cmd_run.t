#!/usr/bin/env bash
# cmd_run.t - `qid run` end to end under mpirun: a job over four tiny imported
# checkpoints (gpt-neox-tiny and llama-tiny, two steps each) x RTN and GPTQ
# int4/int3 with groups of 16, run with 1, 2 and 3 ranks: every task OK, the
# same loss and QiD per key whatever the rank count, QiD joined against the
# baseline; a rerun skips everything; corrupt, missing and NaN checkpoints
# fail with their error while the rest finish; --dry-run; the store's lock
# against a second run; kill -9 of a run and its resume; radial loss probes
# (the same losses with 1 and 2 ranks, the smallest radius at the baseline
# loss, the mean loss over directions growing with the radius); a job mixing
# five families (gpt-neox, llama, gpt2, opt, bloom) with the same numbers at
# 1 and 3 ranks, and `qid predictor` holding out each family in turn.
# build/test/sweep.t (test/test_sweep.c) reads the store: `dump` and `check`.
set -u
. "$(dirname "$0")/taplib.sh"
require_cmd mpirun
HELPER=${HELPER:-${BUILD:-build}/test/sweep.t}
require_exe "$HELPER"
plan 77
tap_tmpdir
T=$TAP_TMP
tap_abs_paths

mkdir -p "$T/bad"
tap_import_tiny "$T/ck" gpt-neox-tiny 1000 2000
tap_import_tiny "$T/ck" llama-tiny 1000 2000
tap_tokens_fixture "$T/tok.h5"

job() { # job NAME RESULTS EXTRA-CHECKPOINT-LINES
    cat >"$T/$1.job" <<EOF
# test job: 4 checkpoints x (baseline + rtn/gptq x int4/int3, groups of 16)
[job]
results = $2
[checkpoints]
glob = ck/*.h5
$3
[eval]
tokens = tok.h5
[calibration]
tokens = tok.h5
samples = 3
[quantize]
methods = rtn, gptq
formats = int4-g16-sym, int3-g16-sym
EOF
}
job a a.h5 ""
cd "$T" || exit 1

# --dry-run
out=$($QIDA run --dry-run a.job 2>/dev/null); ok $? "--dry-run exits 0"
like "$out" "grid         20 tasks over 4 checkpoints" "--dry-run prints the grid"
[ ! -e a.h5 ]; ok $? "--dry-run creates no store"
like "$out" "predicted peak memory per rank: " "--dry-run predicts each task's peak memory"
like "$out" "residual stream in memory" "--dry-run: the calibration's chunks and where its residual stream lives"
out=$($QIDA run --dry-run a.job --mem-limit 1MiB 2>/dev/null)
like "$out" "; 20 tasks over the limit will fail" "--dry-run --mem-limit: every task over the limit"

# a memory limit below the predictions: the quantizer tasks fail up front with the message
$QIDA run a.job --mem-limit 1MiB >/dev/null 2>"merr"; is 1 $? "--mem-limit below the predictions: exits 1"
"$HELPERA" dump a.h5 >dump_mem
is 4 "$(grep '|baseline|' dump_mem | grep -c "ck/[a-z]*-[0-9]*\.h5' needs about .* more than the memory limit 1 MiB")" \
    "--mem-limit: each baseline failed up front with the one-line message"
is 20 "$(grep -c "more than the memory limit 1 MiB" dump_mem)" "--mem-limit: every task failed with it"
rm -f a.h5 a.h5.lock

# 1, 2, 3 ranks: same numbers
for np in 1 2 3 4; do
    rm -f a.h5 a.h5.lock
    $MPIRUN -np $np "$QIDA" run a.job >"out$np" 2>"err$np"; ok $? "-np $np: run exits 0"
    "$HELPERA" dump a.h5 >"dump$np"
    is 20 "$(grep -c "	ok	" "dump$np")" "-np $np: 20 tasks OK"
    "$HELPERA" check a.h5 >"check$np"; ok $? "-np $np: baselines present, qid = loss - loss16 for every row"
    [ -s "check$np" ] && sed 's/^/# /' "check$np" | head -5
done
cmp -s dump1 dump2; ok $? "-np 2 gives the same loss and qid per key as -np 1"
cmp -s dump1 dump3; ok $? "-np 3 gives the same loss and qid per key as -np 1"
cmp -s dump1 dump4; ok $? "-np 4 gives the same loss and qid per key as -np 1"
is 4 "$(grep -c '|baseline|' dump1)" "one baseline row per checkpoint"
is "3" "$($QIDA results a.h5 --csv --method gptq --columns calib_chunk | tail -n +2 | sort -u)" \
    "gptq rows record their calibration chunk: the 3 windows in one"
is "-1" "$($QIDA results a.h5 --csv --method rtn --columns calib_chunk | tail -n +2 | sort -u)" "rtn rows: calib_chunk -1"
like "$(cat err1)" "20 to run on 1 rank" "-np 1: log line with the task count"

# rerun: nothing recomputed
$MPIRUN -np 2 "$QIDA" run a.job >/dev/null 2>err; ok $? "rerun exits 0"
like "$(cat err)" "0 tasks run, 0 failed, 20 skipped" "rerun: every task skipped"
"$HELPERA" dump a.h5 >dump_re; cmp -s dump3 dump_re; ok $? "rerun: store unchanged"

# bad checkpoints: missing, truncated, NaN weights
head -c 4000 ck/neox-1000.h5 >bad/corrupt.h5
cp ck/neox-2000.h5 bad/nan.h5 && "$HELPERA" poison bad/nan.h5 || echo "# poison failed"
job b a.h5 "file = bad/corrupt.h5
file = bad/missing.h5
file = bad/nan.h5"
$MPIRUN -np 3 "$QIDA" run --progress-every 0.001 b.job >/dev/null 2>err; is 1 $? "run with bad checkpoints exits 1"
"$HELPERA" dump a.h5 >dump_bad
is 15 "$(grep -c "	failed	" dump_bad)" "15 tasks of the 3 bad checkpoints recorded as failed"
is 20 "$(grep -c "	ok	" dump_bad)" "the 20 good tasks are still OK (not recomputed)"
like "$(grep 'bad/missing.h5|baseline' dump_bad)" "cannot open 'bad/missing.h5'" "missing: its error recorded"
like "$(grep 'bad/corrupt.h5|baseline' dump_bad)" "truncated file" "truncated: its error recorded"
like "$(grep 'bad/nan.h5|baseline' dump_bad)" "non-finite weight nan" "NaN weights: its error recorded"
like "$(grep 'bad/nan.h5|rtn|int4' dump_bad)" "baseline failed: " "quantized task of a failed baseline: failed with its cause"
like "$(cat err)" "tasks/min, ETA" "progress lines in a log"

# radial loss probes: 3 radii x 4 directions on one gpt-neox and one llama
# checkpoint. These fixtures are random models, not at a minimum, so the
# growth of the loss with the radius is checked on the mean over directions
# at this seed (deterministic), not claimed for every direction.
cat >p.job <<EOF
[job]
results = p.h5
seed = 3
[checkpoints]
file = ck/neox-1000.h5
file = ck/llama-1000.h5
[eval]
tokens = tok.h5
[quantize]
methods = rtn
formats = int4-g16-sym
[probes]
radii = 0.0001, 0.01, 0.1
directions = 4
EOF
probe_means() { # per probe row: checkpoint, loss, |loss - mean of losses|, mean loss per radius
    $QIDA results p.h5 --csv --method probes --columns checkpoint,loss,options | perl -ne '
        next if $. == 1;
        /^([^,]*),([^,]*),"?([^"]*)"?$/ or next;
        my ($c, $l, $o) = ($1, $2, $3);
        my ($r) = $o =~ /^radii=(.*?),directions=/;
        my ($d) = $o =~ /directions=(\d+)/;
        my @L = split /,/, (($o =~ /;losses=(.*)/)[0] // "");
        my @r = split /,/, $r;
        next unless @L == @r * $d;
        my ($all, @m) = (0);
        for my $i (0 .. $#r) { my $s = 0; $s += $L[$i * $d + $_] for 0 .. $d - 1; push @m, $s / $d; $all += $s }
        printf "%s %.17g %.3g %s\n", $c, $l, abs($l - $all / @L), join(" ", map { sprintf "%.17g", $_ } @m)'
}
for np in 1 2; do
    rm -f p.h5 p.h5.lock
    $MPIRUN -np $np "$QIDA" run p.job >/dev/null 2>"perr$np"; ok $? "probes, -np $np: run exits 0"
    $QIDA results p.h5 --csv --columns key,status,loss,options >"pcsv$np"
    probe_means >"pmean$np"
done
is 6 "$(grep -c ',OK,' pcsv1)" "probes: 6 rows OK (2 baselines, 2 probes, 2 rtn)"
cmp -s pcsv1 pcsv2; ok $? "probes: -np 2 gives the same losses per key as -np 1"
is 2 "$(wc -l <pmean1)" "probes: 2 probe rows with 3 radii x 4 losses each"
is "" "$(awk '$3 > 1e-12' pmean1)" "probes: loss is the mean of the 12 probe losses"
base=$($QIDA results p.h5 --csv --method baseline --columns checkpoint,loss | tail -n +2 | tr ',' ' ' | sort)
near=$(sort pmean1 | join - <(echo "$base") | awk '{ d = $4 - $7; if (d < 0) d = -d; if (!(d <= 1e-3)) print }')
is "" "$near" "probes: loss at radius 1e-4 within 1e-3 of the baseline loss"
is 2 "$(sort pmean1 | join - <(echo "$base") | wc -l)" "probes: a baseline row for each probe row"
is "" "$(awk '!($4 < $5 && $5 < $6)' pmean1)" "probes: mean loss grows with radius (1e-4 < 1e-2 < 1e-1)"

# a second run on a store being written fails with the lock message; kill -9 and resume
perl -e 'srand(1); print pack("v*", map { int(rand(96)) } 1 .. 64000)' >big.u16
$QIDA tokens --from big.u16 --dtype uint16 --vocab 96 --seq-len 16 -o big.h5 >/dev/null 2>&1 || echo "# big tokens failed"
sed -e 's/results = a.h5/results = s.h5/' -e 's/tokens = tok.h5/tokens = big.h5/' -e '/^\[calibration\]/,/^samples/d' \
    -e 's/methods = rtn, gptq/methods = rtn/' a.job >s.job
# the lock, held as a live writer holds it (flock on s.h5.lock, "pid host"
# inside); deterministic, unlike racing a real run that may finish first
echo "4242 node7" >s.h5.lock
exec 9>>s.h5.lock
flock -n 9 || echo "# flock on s.h5.lock failed"
$QIDA run s.job >/dev/null 2>lockerr; rc=$?
exec 9>&-
is 1 $rc "a second run on a locked store exits 1"
like "$(cat lockerr)" "qid run: error: results store 's.h5' is locked by pid 4242 on node7" "a second run: the lock message"
$QIDA run s.job >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 200); do [ "$("$HELPERA" dump s.h5 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.05; done
echo "# killing the first run with $("$HELPERA" dump s.h5 2>/dev/null | wc -l) of 12 rows in the store"
kill -9 $pid 2>/dev/null || echo "# the run finished before it could be killed"
wait $pid 2>/dev/null
$QIDA run s.job >/dev/null 2>err; ok $? "after kill -9 the same command finishes the job"
"$HELPERA" dump s.h5 >dump_kill
is "" "$(cut -f1 dump_kill | sort | uniq -d)" "after resume: every task exactly once"
is 12 "$(grep -c "	ok	" dump_kill)" "after resume: all 12 tasks OK"
sed 's/results = s.h5/results = s2.h5/' s.job >s2.job
$QIDA run s2.job >/dev/null 2>&1 || echo "# uninterrupted run failed"
"$HELPERA" dump s2.h5 >dump_s2
cmp -s dump_s2 dump_kill; ok $? "after resume: the same values as an uninterrupted run"

# windows = auto: 64 windows of 16 (big.h5's first 64), quantized tasks stop
# early against their baseline; the same rows with 1 and 2 ranks, QiD, its SE
# and loss16 recomputed from the stored vectors (sweep.t check), the rule and
# the divergence report (kl = yes) in each quantized row
sed -e 's/results = a.h5/results = auto1.h5/' -e 's/tokens = tok.h5/tokens = big.h5/' \
    -e 's/^\[calibration\]/windows = auto\nmax_windows = 64\nmin_windows = 8\nblock_windows = 8\ntarget_se = 0.02\nkl = yes\n[calibration]/' \
    -e 's/^tokens = big.h5$/&/' a.job >auto1.job
sed -i '/^\[calibration\]/,/^samples/s/tokens = big.h5/tokens = tok.h5/' auto1.job
sed 's/results = auto1.h5/results = auto2.h5/' auto1.job >auto2.job
like "$($QIDA run --dry-run auto1.job 2>/dev/null)" "adaptive     baselines every window, quantized tasks stop early: auto,min_windows=8" "windows = auto: --dry-run says so"
$QIDA run auto1.job >/dev/null 2>autoerr; ok $? "windows = auto: -np 1 exits 0"
[ -s autoerr ] && grep -v '^qid: \[' autoerr | sed 's/^/# /' | head -5
$MPIRUN -np 2 "$QIDA" run auto2.job >/dev/null 2>&1; ok $? "windows = auto: -np 2 exits 0"
"$HELPERA" dump auto1.h5 >dump_auto1
"$HELPERA" dump auto2.h5 >dump_auto2
is 20 "$(grep -c "	ok	" dump_auto1)" "windows = auto: 20 tasks OK"
cmp -s dump_auto1 dump_auto2; ok $? "windows = auto: the same loss and qid per key with 1 and 2 ranks"
"$HELPERA" check auto1.h5 >check_auto; ok $? "windows = auto: qid, qid_se and loss16 recomputed from the stored vectors"
[ -s check_auto ] && sed 's/^/# /' check_auto | head -5
csv=$($QIDA results auto1.h5 --csv --columns method,windows,windows_used,stop_rule,kl_median,top1 | tail -n +2)
is "" "$(echo "$csv" | awk -F, '$1 == "baseline" && $3 != 64')" "windows = auto: every baseline evaluates all 64 windows"
early=$(echo "$csv" | awk -F, '$1 != "baseline" && $3 < $2' | wc -l)
ok "$([ "$early" -gt 0 ] && echo 0 || echo 1)" "windows = auto: $early of 16 quantized tasks stopped before 64 windows"
is "" "$(echo "$csv" | awk -F, '$1 != "baseline" && ($3 < 8 || $3 % 8 != 0)')" "... each after whole blocks of 8, at least 8"
like "$(echo "$csv" | awk -F, '$1 != "baseline"' | head -1)" "auto,min_windows=8,block_windows=8,target_se=0.02,target_rse=0.05,seed=0" "the rule is recorded per row"
is "" "$(echo "$csv" | awk -F, '$1 != "baseline" && ($5 == "nan" || $6 == "nan")')" "kl = yes: every quantized row has the divergence report"

# AWQ tasks: method = awq in the store, qid results and qid fit filter on it
sed -e 's/^methods = rtn, gptq/methods = rtn, awq/' -e 's/int4-g16-sym, int3-g16-sym/int4-g16-asym, int3-g16-asym/' \
    -e 's/^results = .*/results = awq.h5/' a.job >awq.job
$QIDA run awq.job >/dev/null 2>awqerr; ok $? "methods = rtn, awq: run exits 0"
[ -s awqerr ] && grep -v '^qid: \[' awqerr | sed 's/^/# /' | head -5
csv=$($QIDA results awq.h5 --csv --method awq --columns method,format,calib_chunk | tail -n +2 | sort | uniq -c | sed 's/^ *//')
is "4 awq,int3-g16-asym,3
4 awq,int4-g16-asym,3" "$csv" "8 awq rows, both formats, the calibration chunk recorded"
"$HELPERA" check awq.h5 >check_awq; ok $? "awq rows: qid = loss - loss16"
$QIDA fit awq.h5 --method awq >fit_awq 2>&1
like "$(cat fit_awq)" "to 8 points" "qid fit --method awq takes the 8 awq rows (too few significant to fit)"

# five families in one job (issue 16): gpt-neox, llama, gpt2, opt (post-LN
# with project_in/out) and bloom tiny models, two steps each, x RTN and GPTQ:
# the same numbers with 1 and 3 ranks, and `qid predictor` holds out each of
# the five families in turn
for m in gpt-neox-tiny llama-tiny gpt2-tiny opt-tiny-postln-proj bloom-tiny; do tap_import_tiny "$T/fam" $m 1000 2000; done
cat >fam.job <<EOF
[job]
results = fam1.h5
[checkpoints]
glob = fam/*.h5
[eval]
tokens = tok.h5
[calibration]
tokens = tok.h5
samples = 3
[quantize]
methods = rtn, gptq
formats = int4-g16-sym, int3-g16-sym, int8-g16-sym
EOF
sed 's/results = fam1.h5/results = fam3.h5/' fam.job >fam3.job
$QIDA run fam.job >/dev/null 2>famerr1; ok $? "five families: -np 1 exits 0"
[ -s famerr1 ] && grep -v '^qid: \[' famerr1 | sed 's/^/# /' | head -5
$MPIRUN -np 3 "$QIDA" run fam3.job >/dev/null 2>famerr3; ok $? "five families: -np 3 exits 0"
"$HELPERA" dump fam1.h5 >dump_fam1
"$HELPERA" dump fam3.h5 >dump_fam3
is 70 "$(grep -c "	ok	" dump_fam1)" "five families: 70 tasks OK (10 checkpoints x baseline + 6 quantizers)"
cmp -s dump_fam1 dump_fam3; ok $? "five families: -np 3 gives the same loss and qid per key as -np 1"
is "bloom-tiny gpt-neox-tiny gpt2-tiny llama-tiny opt-tiny-postln-proj" \
    "$($QIDA results fam1.h5 --csv --columns model | tail -n +2 | sort -u | tr '\n' ' ' | sed 's/ $//')" \
    "five families: the store's models"
$QIDA predictor fam1.h5 --trees 20 >famp 2>famperr; ok $? "five families: qid predictor exits 0"
like "$(cat famp)" "60 of 60 quantizer rows (0 without a 16-bit loss, 0 missing a feature), 5 families" \
    "five families: 60 quantizer rows of 5 families"
is "bloom-tiny gpt-neox-tiny gpt2-tiny llama-tiny opt-tiny-postln-proj" \
    "$(awk '/^leave-one-family-out/ { on = 1; getline; next } on && /^  all/ { on = 0 } on { print $1 }' famp | tr '\n' ' ' | sed 's/ $//')" \
    "five families: each family held out and predicted in turn"
sed 's/^/# /' famp | head -30
