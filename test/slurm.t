#!/usr/bin/env bash
# slurm.t - the batch scripts of slurm/ against a real one-node Slurm
# (`make check-slurm`; not part of `make check`).
#
# Installs Debian's slurm-wlm and munge when missing (root with apt-get only;
# "$ROOT"/tools/slurm-local.sh install) and skips, with the reason, where that cannot
# be done. Starts a private Slurm (munged, slurmctld, `slurmd -N localhost`,
# everything under a temporary directory; "$ROOT"/tools/slurm-local.sh start) and
# stops it at the end whatever happens (EXIT trap). Then:
#
# - "$ROOT"/slurm/submit JOB with each launcher, `srun --mpi=pmix` and `mpirun`: the
#   sweep and the fit (--dependency=afterok) both complete; every task is in
#   the store exactly once, OK, with loss and QiD equal to a run of the same
#   job outside Slurm; the fit is in the store and the report directory
#   holds its tables (and plots, with gnuplot).
# - requeue: a longer sweep is requeued mid-run by `scontrol requeue`, then
#   in its second run gets the time-limit warning signal (USR1, as
#   --signal=B:USR1@300 sends it) and requeues itself; the third run
#   finishes; the store holds every task once with the values of an
#   uninterrupted run, and the fit ran after it.
# - cancel and resubmit: the sweep is cancelled mid-run with scancel, its
#   fit is cancelled by Slurm (kill_invalid_depend), the same submit command
#   finishes the store (values as uninterrupted) and the fit.
# - "$ROOT"/slurm/qid-import-array.sbatch over a list file (comments, a relative
#   path, a bad line) with a throttle: good lines imported as a direct
#   `qid import` does, the bad line's task fails with its error and leaves
#   no file, a resubmission keeps existing outputs; "$ROOT"/slurm/submit --import
#   with MaxArraySize=3 splits a 3-line list into two arrays and chains
#   import -> sweep -> fit.
#
# The sweep job: QID_SLURM_JOB=FILE (its [job] results store is deleted and
# rewritten several times) or, by default, the demo's (tools/demo.sh with
# DEMO_SIZE=small: two tiny sizes and two schedule runs trained here, 252 tasks). The requeue and
# import parts always use jobs written here from the tiny fixtures
# (test/fixtures/hf, eval windows sampled from the models: test/fixtures/slurm).
set -u
. "$(dirname "$0")/taplib.sh"
tap_abs_paths
require_exe "$QIDA"
require_cmd mpirun
why=$("$ROOT"/tools/slurm-local.sh install) || skip_all "${why:-tools/slurm-local.sh install failed}"
plan 69
tap_tmpdir
T=$TAP_TMP
SL=$T/slurm
export QID=$QIDA
cleanup() {
    if [ -d "$SL" ]; then
        "$ROOT"/tools/slurm-local.sh stop "$SL" >/dev/null 2>"$T/stop.err" || echo "# stopping the private Slurm failed:"
        sed 's/^/# /' "$T/stop.err"
    fi
    tap_end
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t_start=$(date +%s)
# MaxArraySize=3: the import test sees "$ROOT"/slurm/submit split a 3-line list
start_out=$(SLURM_LOCAL_CONF_EXTRA=MaxArraySize=3 "$ROOT"/tools/slurm-local.sh start "$SL" 2>"$T/start.err")
rc=$?
ok $rc "a private one-node Slurm starts (munged, slurmctld, slurmd -N localhost)"
if [ $rc -ne 0 ]; then
    sed 's/^/# /' "$T/start.err"
    echo "Bail out! no Slurm to test against"
    exit 1
fi
eval "$start_out"
export SLURM_CONF
like "$(srun --mpi=list 2>&1 | tr '\n\t' '  ')" " pmix " "srun --mpi=list offers pmix"
echo "# $(sinfo -h -o '%P %D %c %m %T' | head -1) (partition nodes cpus memory state); $(sbatch --version)"

RANKS=2
[ "$(nproc)" -lt 2 ] && RANKS=1
W=$T/work
mkdir -p "$W" "$T/ck"
cd "$W" || exit 1

# ---- helpers ------------------------------------------------------------
field() { # field JOBID NAME: one field of scontrol show job (first line)
    [ -n "$1" ] || return 0
    scontrol show job -o "$1" 2>/dev/null | head -1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}
wait_end() { # wait_end JOBID: its final state (after at most 600 s)
    local s=""
    [ -n "$1" ] || { echo "no job id"; return; }
    for _ in $(seq 1 3000); do
        s=$(field "$1" JobState)
        case "$s" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) break ;; esac
        sleep 0.2
    done
    echo "$s"
}
wait_array() { # wait_array JOBID: until no task of the array is queued or running
    [ -n "$1" ] || return 1
    for _ in $(seq 1 1500); do
        [ -z "$(squeue -h -r -j "$1" -o %i 2>/dev/null)" ] && return 0
        sleep 0.2
    done
    return 1
}
rows() { $QIDA results "$1" --csv 2>/dev/null | tail -n +2 | wc -l | tr -d ' '; }
dump() { $QIDA results "$1" --csv --columns key,status,loss,loss16,qid,qid_se 2>/dev/null | tail -n +2 | sort; }
# wait_progress JOBID LOG N RUN: the job in its run RUN (1 = first) with at
# least N tasks done in that run, from the progress lines of its log (needs
# QID_PROGRESS_EVERY small). The log, not the store: a reader that has the
# store open at the moment a requeued run opens it for appending makes that
# open fail (HDF5 file locking), so the store is read only while no run can
# be starting.
wait_progress() {
    [ -n "$1" ] || return 1
    local k
    for _ in $(seq 1 3000); do
        k=$(awk -v r="(run $4)" 'index($0, r) { k = 0; seen = 1 }
            seen && match($0, /run: [0-9]+\//) { v = substr($0, RSTART + 5, RLENGTH - 6) + 0; if (v > k) k = v }
            END { print k + 0 }' "$2" 2>/dev/null)
        if [ "$(field "$1" JobState)" = RUNNING ] && [ "$(field "$1" Restarts)" = $(($4 - 1)) ] &&
            [ "${k:-0}" -ge "$3" ]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
job_store() { # the [job] results store of a job file, as a path from here
    local s
    s=$(sed -n 's/^[[:space:]]*results[[:space:]]*=[[:space:]]*//p' "$1" | sed -e 's/[[:space:]]#.*//' -e 's/[[:space:]]*$//' | head -1)
    case "$s" in /*) echo "$s" ;; *) echo "$(dirname "$1")/$s" ;; esac
}
submit_ids() { # submit_ids OUTPUT: "import.. sweep fit" ids in order
    echo "$1" | awk '$1 == "sweep" { s = $2 } $1 == "fit" { f = $2 } END { print s, f }'
}

# ---- fixture checkpoints, token sets and jobs ----------------------------
FIX=$ROOT/test/fixtures
tap_import_tiny "$T/ck" gpt-neox-tiny 1000 2000
tap_import_tiny "$T/ck" llama-tiny 1000 2000
$QIDA tokens --from "$FIX/slurm/sampled.u16" --dtype uint16 --vocab 96 --seq-len 16 -o "$T/sampled.h5" \
    >/dev/null 2>&1 || echo "# tokens failed"
for _ in $(seq 1 8); do cat "$FIX/slurm/sampled.u16"; done >"$T/big.u16"
$QIDA tokens --from "$T/big.u16" --dtype uint16 --vocab 96 --seq-len 16 -o "$T/big.h5" \
    >/dev/null 2>&1 || echo "# big tokens failed"
fixture_job() { # fixture_job FILE RESULTS TOKENS CHECKPOINT-GLOB
    cat >"$1" <<EOF
# test/slurm.t: tiny fixture checkpoints x RTN at 2, 3 and 4 bits, groups of 16
[job]
results = $2
[checkpoints]
glob = $4
[eval]
tokens = $3
[quantize]
methods = rtn
formats = int2-g16-sym, int3-g16-sym, int4-g16-sym
EOF
}
fixture_job "$T/main.job" main.h5 sampled.h5 "ck/*.h5"
fixture_job "$T/big.job" bigrun.h5 big.h5 "ck/*.h5"
# the default sweep: the small demo suite (trained here, as make check's
# test/demo.t does), its job submitted with slurm/submit
if [ -z "${QID_SLURM_JOB:-}" ]; then
    (cd "$ROOT" && DEMO_DIR=$T/demo DEMO_SIZE=small DEMO_STEPS=prepare sh tools/demo.sh "$QIDA") >"$T/demo.out" 2>&1 ||
        { echo "# preparing the demo suite failed:"; sed 's/^/# /' "$T/demo.out"; }
fi
JOB=${QID_SLURM_JOB:-$T/demo/demo.job}
case "$JOB" in /*) ;; *) JOB=$ROOT/$JOB ;; esac
STORE=$(job_store "$JOB")
REPORT=${STORE%.h5}-report
echo "# sweep job $JOB, store $STORE"
have_gp=0
command -v gnuplot >/dev/null 2>&1 && have_gp=1

# ---- bad use: nothing submitted -----------------------------------------
rm -rf "$STORE" "$STORE.lock" "$REPORT"
n0=$(squeue -h | wc -l)
out=$("$ROOT"/slurm/submit "$T/nope.job" 2>&1)
is "2 submit: error: cannot read job file '$T/nope.job'" "$? $out" "submit: a missing job file is an error"
is "$n0" "$(squeue -h | wc -l)" "submit: ... and nothing is submitted"
out=$(env -u SLURM_JOB_ID bash "$ROOT"/slurm/qid-run.sbatch "$JOB" 2>&1)
is "2 qid-run.sbatch: error: not inside a Slurm job (submit it with sbatch)" "$? $out" \
    "qid-run.sbatch outside a job: an error, nothing run"
[ ! -e "$STORE" ]
ok $? "qid-run.sbatch outside a job: no store written"

echo "# $(($(date +%s) - t_start)) s"
# ---- the sweep and the fit with each launcher ----------------------------
rm -rf "$STORE" "$STORE.lock" "$REPORT"
$MPIRUN -np $RANKS "$QIDA" run "$JOB" >/dev/null 2>"$T/ref.err" || { echo "# reference run failed:"; sed 's/^/# /' "$T/ref.err"; }
dump "$STORE" >ref.dump
ntask=$(wc -l <ref.dump | tr -d ' ')
echo "# reference run outside Slurm: $ntask rows"
for launcher in srun mpirun; do
    rm -rf "$STORE" "$STORE.lock" "$REPORT"
    out=$(QID_LAUNCHER=$launcher "$ROOT"/slurm/submit "$JOB" --ntasks-per-node=$RANKS 2>&1)
    read -r sid fid <<<"$(submit_ids "$out")"
    [ -n "$sid" ] && [ -n "$fid" ]
    ok $? "$launcher: slurm/submit prints the sweep and fit job ids ($(echo "$out" | tr '\n' ' '))"
    is COMPLETED "$(wait_end "$sid")" "$launcher: the sweep job completes"
    is COMPLETED "$(wait_end "$fid")" "$launcher: the fit job completes after it"
    log=$(cat "qid-run-$sid.out" 2>/dev/null)
    want="launcher mpirun"
    [ $launcher = srun ] && want="launcher srun --mpi=pmix"
    like "$log" "$want" "$launcher: the log names the launcher"
    like "$log" "to run on $RANKS ranks" "$launcher: qid run sees $RANKS ranks"
    dump "$STORE" >"$launcher.dump"
    is "" "$(cut -d, -f1 "$launcher.dump" | sort | uniq -d)" "$launcher: every task exactly once"
    cmp -s ref.dump "$launcher.dump"
    ok $? "$launcher: loss and QiD of all $ntask tasks equal the run outside Slurm"
    missing=""
    for f in summary.txt points.csv predictions.csv report.gp; do [ -s "$REPORT/$f" ] || missing="$missing $f"; done
    is "" "$missing" "$launcher: the report's tables are written"
    like "$(cat "$REPORT/summary.txt" 2>/dev/null)" "fit: /fits/default (stored by 'qid fit')" \
        "$launcher: the report draws the fit stored by qid fit"
    if [ $have_gp = 1 ]; then
        [ -s "$REPORT/qid_vs_d.png" ] && [ -s "$REPORT/qid_vs_d.svg" ]
        ok $? "$launcher: plots drawn"
    else
        TAP_N=$((TAP_N + 1)) && echo "ok $TAP_N # SKIP gnuplot is not installed"
    fi
    [ "$(field "$fid" StartTime | tr -d :T-)" -ge "$(field "$sid" EndTime | tr -d :T-)" ]
    ok $? "$launcher: the fit started after the sweep ended"
done
echo "# $(head -3 "$REPORT/summary.txt" 2>/dev/null | tail -1)"

echo "# $(($(date +%s) - t_start)) s"
# ---- requeue: scontrol requeue, then the time-limit signal ---------------
(cd "$T" && $MPIRUN -np $RANKS "$QIDA" run big.job >/dev/null 2>"$T/bigref.err") || echo "# big reference run failed"
dump "$T/bigrun.h5" >bigref.dump
nbig=$(wc -l <bigref.dump | tr -d ' ')
rm -rf "$T/bigrun.h5" "$T/bigrun.h5.lock" "$T/bigrun-report"
export QID_PROGRESS_EVERY=0.001
out=$("$ROOT"/slurm/submit "$T/big.job" --ntasks-per-node=$RANKS 2>&1)
read -r sid fid <<<"$(submit_ids "$out")"
wait_progress "$sid" "qid-run-$sid.out" 2 1
ok $? "requeue: the sweep runs and stores results"
scontrol requeue "$sid"
ok $? "requeue: scontrol requeue $sid"
r1=$(rows "$T/bigrun.h5") # the next run starts >= 5 s later (cred_expire)
[ "$r1" -lt "$nbig" ]
ok $? "requeue: requeued mid-run ($r1 of $nbig rows stored)"
wait_progress "$sid" "qid-run-$sid.out" 2 2
ok $? "requeue: the requeued job runs again and adds rows"
scancel --signal=USR1 --batch "$sid"
ok $? "requeue: the time-limit warning (USR1 to the batch shell) is sent"
r2=$(rows "$T/bigrun.h5")
[ "$r2" -lt "$nbig" ]
ok $? "requeue: signalled mid-run ($r2 of $nbig rows stored)"
is COMPLETED "$(wait_end "$sid")" "requeue: the sweep completes in the end"
is 2 "$(field "$sid" Restarts)" "requeue: it ran three times (Restarts=2)"
log=$(cat "qid-run-$sid.out" 2>/dev/null)
echo "$log" | grep -E '^qid-run.sbatch: .*(job [0-9]+ \(run|time limit|exited)|run: job' | sed 's/^/# /'
like "$log" "time limit near: requeueing job $sid" "requeue: the script requeued itself on USR1"
like "$log" "job $sid (run 3)" "requeue: the log keeps all three runs (append mode)"
skipped=$(echo "$log" | grep -o '[0-9]* already in' | tail -1 | cut -d' ' -f1)
[ "${skipped:-0}" -ge "$r2" ]
ok $? "requeue: the third run skipped the ${skipped:-?} tasks the store held (>= $r2)"
dump "$T/bigrun.h5" >big.dump
is "" "$(cut -d, -f1 big.dump | sort | uniq -d)" "requeue: every task exactly once"
is "$nbig" "$(grep -c ',OK,' big.dump)" "requeue: all $nbig tasks OK"
cmp -s bigref.dump big.dump
ok $? "requeue: values equal the uninterrupted run"
is COMPLETED "$(wait_end "$fid")" "requeue: the fit completes after the requeued sweep"
[ -s "$T/bigrun-report/summary.txt" ]
ok $? "requeue: report written"

echo "# $(($(date +%s) - t_start)) s"
# ---- cancel and resubmit -------------------------------------------------
rm -rf "$T/bigrun.h5" "$T/bigrun.h5.lock" "$T/bigrun-report"
out=$("$ROOT"/slurm/submit "$T/big.job" --ntasks-per-node=$RANKS 2>&1)
read -r sid fid <<<"$(submit_ids "$out")"
wait_progress "$sid" "qid-run-$sid.out" 2 1
ok $? "cancel: the sweep runs and stores results"
scancel "$sid"
r1=$(rows "$T/bigrun.h5")
is CANCELLED "$(wait_end "$sid")" "cancel: scancel ends the sweep"
[ "$r1" -lt "$nbig" ]
ok $? "cancel: cancelled mid-run ($r1 of $nbig rows stored)"
is CANCELLED "$(wait_end "$fid")" "cancel: its fit is cancelled (dependency never satisfied)"
out=$("$ROOT"/slurm/submit "$T/big.job" --ntasks-per-node=$RANKS 2>&1)
read -r sid fid <<<"$(submit_ids "$out")"
is COMPLETED "$(wait_end "$sid")" "cancel: the resubmitted sweep completes"
like "$(cat "qid-run-$sid.out" 2>/dev/null)" "already in '" "cancel: it resumed the store"
dump "$T/bigrun.h5" >big2.dump
is "" "$(cut -d, -f1 big2.dump | sort | uniq -d)" "cancel: every task exactly once"
cmp -s bigref.dump big2.dump
ok $? "cancel: values equal the uninterrupted run"
is COMPLETED "$(wait_end "$fid")" "cancel: the resubmitted fit completes"

echo "# $(($(date +%s) - t_start)) s"
unset QID_PROGRESS_EVERY
# ---- import array ----------------------------------------------------------
I=$T/imp
mkdir -p "$I/src"
cp -r "$FIX/hf/llama-tiny" "$I/src/"
cat >"$I/list.txt" <<EOF
# SOURCE_DIR STEP TOKENS [MODEL]
$FIX/hf/gpt-neox-tiny   1000  2.097152e9   neox

src/llama-tiny          2000  4194304000
$I/src/missing          3000  6291456000
EOF
# MaxArraySize=3 allows indices up to 2: lines 1-2 in one array (throttle
# %2), line 3 (the bad one) in a second with QID_LINE_OFFSET=2
aid=$(sbatch --parsable --array=1-2%2 "$ROOT"/slurm/qid-import-array.sbatch "$I/list.txt" "$I/out" 2>&1)
ok $? "import: sbatch --array=1-2%2 ($aid)"
is 2 "$(scontrol show job -o "$aid" 2>/dev/null | tr ' ' '\n' | sed -n 's/^ArrayTaskThrottle=//p' | head -1)" \
    "import: throttle %2 set"
bid=$(QID_LINE_OFFSET=2 sbatch --parsable --array=1-1 "$ROOT"/slurm/qid-import-array.sbatch "$I/list.txt" "$I/out" 2>&1)
ok $? "import: QID_LINE_OFFSET=2 sbatch --array=1-1 ($bid)"
wait_array "$aid" && wait_array "$bid"
ok $? "import: every array task ends"
is "COMPLETED COMPLETED FAILED" "$(for j in "${aid}_1" "${aid}_2" "${bid}_1"; do field "$j" JobState; done | tr '\n' ' ' | sed 's/ $//')" \
    "import: lines 1 and 2 complete, the bad line 3 fails"
$QIDA import --from safetensors "$FIX/hf/gpt-neox-tiny" --step 1000 --tokens 2097152000 --model neox -o "$T/d1.h5" >/dev/null 2>&1
$QIDA import --from safetensors "$FIX/hf/llama-tiny" --step 2000 --tokens 4194304000 -o "$T/d2.h5" >/dev/null 2>&1
is "$($QIDA inspect "$T/d1.h5" | tail -n +2)" "$($QIDA inspect "$I/out/neox/step1000.h5" 2>&1 | tail -n +2)" \
    "import: line 1 (absolute path, MODEL, 2.097152e9 tokens) = a direct qid import"
is "$($QIDA inspect "$T/d2.h5" | tail -n +2)" "$($QIDA inspect "$I/out/llama-tiny/step2000.h5" 2>&1 | tail -n +2)" \
    "import: line 2 (path relative to the list, model from the directory) = a direct qid import"
like "$(cat "qid-import-${bid}_1.out" 2>/dev/null)" "qid import: error: " "import: the bad line's error is in its log"
like "$(cat "qid-import-${bid}_1.out" 2>/dev/null)" "$I/src/missing" "import: ... naming the missing directory"
is "" "$(ls -A "$I/out/missing" 2>/dev/null)" "import: the bad line leaves no file"
aid2=$(sbatch --parsable --array=1-2 "$ROOT"/slurm/qid-import-array.sbatch "$I/list.txt" "$I/out" 2>&1)
wait_array "$aid2"
is "COMPLETED COMPLETED" "$(for i in 1 2; do field "${aid2}_$i" JobState; done | tr '\n' ' ' | sed 's/ $//')" \
    "import: a resubmission completes"
like "$(cat "qid-import-${aid2}_1.out" 2>/dev/null)" "exists; kept" "import: ... keeping the existing outputs"

# import -> sweep -> fit, a 3-line list split into arrays of MaxArraySize - 1 = 2
sed -n '1,4p' "$I/list.txt" >"$I/good.txt"
echo "$FIX/hf/gpt-neox-tiny 2000 4194304000 neox" >>"$I/good.txt"
fixture_job "$I/chain.job" chain.h5 ../sampled.h5 "ck/*/step*.h5"
out=$("$ROOT"/slurm/submit --import "$I/good.txt" "$I/ck" "$I/chain.job" --ntasks-per-node=$RANKS 2>&1)
is 2 "$(echo "$out" | grep -c '^import ')" "submit --import: two arrays for 3 lines (MaxArraySize=3)"
read -r sid fid <<<"$(submit_ids "$out")"
is COMPLETED "$(wait_end "$fid")" "submit --import: import, sweep and fit complete"
last_import=$(for a in $(echo "$out" | awk '$1 == "import" { print $2 }'); do
    scontrol show job -o "$a" | tr ' ' '\n' | sed -n 's/^EndTime=//p'; done | tr -d :T- | sort -n | tail -1)
[ "$(field "$sid" StartTime | tr -d :T-)" -ge "${last_import:-99999999999999}" ]
ok $? "submit --import: the sweep started after the last import ended"
is 12 "$(rows "$I/chain.h5")" "submit --import: the sweep found the 3 imported checkpoints (12 tasks)"

echo "# test time: $(($(date +%s) - t_start)) s after the install"
