#!/usr/bin/env bash
# sweep_kill.t - kill -9 of a multi-rank sweep at random moments, and resume.
#
# `mpirun --oversubscribe -np 3 qid run k.job` (4 tiny checkpoints x RTN in
# 4 formats on 4000 windows: 20 tasks, a few seconds) is started in its own
# session (setsid) and every process of it (mpirun and every rank: Open MPI
# gives each rank a process group of its own) is killed with SIGKILL at a
# random moment; the same command is then rerun until it completes, and
# every task key must be in the store exactly once, with status OK, and
# loss and QiD per key equal to those of an uninterrupted `-np 1` run of
# the same job into another store. Three rounds, each from a new store; at
# the end `h5dump -H` opens the store. QID_KILL_SEED=N replays the kill
# moments (the seed is printed).
# build/test/sweep.t (test/test_sweep.c) `dump` reads the stores.
set -u
. "$(dirname "$0")/taplib.sh"
require_cmd mpirun
require_cmd setsid "util-linux"
require_cmd h5dump "hdf5-tools; make deps installs it"
HELPER=${HELPER:-${BUILD:-build}/test/sweep.t}
require_exe "$HELPER"
plan 16
tap_tmpdir
T=$TAP_TMP
tap_abs_paths
SEED=${QID_KILL_SEED:-$(($(date +%s) % 32768))}
RANDOM=$SEED
echo "# seed $SEED (QID_KILL_SEED=$SEED replays it)"

tap_import_tiny "$T/ck" gpt-neox-tiny 1000 2000
tap_import_tiny "$T/ck" llama-tiny 1000 2000
cd "$T" || exit 1
perl -e 'srand(1); print pack("v*", map { int(rand(96)) } 1 .. 64000)' >big.u16
$QIDA tokens --from big.u16 --dtype uint16 --vocab 96 --seq-len 16 -o big.h5 >/dev/null 2>&1 || echo "# tokens failed"
job() { # job NAME RESULTS
    cat >"$1.job" <<EOF
# 4 checkpoints x (baseline + rtn in 4 formats) = 20 tasks on 4000 windows
[job]
results = $2
[checkpoints]
glob = ck/*.h5
[eval]
tokens = big.h5
[quantize]
methods = rtn
formats = int4-g16-sym, int3-g16-sym, int8-g16-sym, int4-g8-sym
EOF
}
job k k.h5
job u u.h5

# the uninterrupted reference (and its duration, to place the kills)
t0=$(date +%s%N)
$MPIRUN -np 1 "$QIDA" run u.job >/dev/null 2>err_u; ok $? "uninterrupted -np 1 run exits 0"
t1=$(date +%s%N)
"$HELPERA" dump u.h5 >dump_u
is 20 "$(grep -c "	ok	" dump_u)" "uninterrupted run: 20 tasks OK"
ms=$(((t1 - t0) / 1000000))
[ $ms -lt 600 ] && ms=600
hi=$((ms * 2 / 5))
[ $hi -lt 300 ] && hi=300
echo "# uninterrupted -np 1 run: $ms ms; kills fall in 250 .. $hi ms after the start of each attempt"

# run_until_done: rerun the command until it exits 0 (at most 10 times)
run_until_done() {
    local i rc
    for i in $(seq 1 10); do
        $MPIRUN -np 3 "$QIDA" run k.job >>out_k 2>>err_k && return 0
        rc=$?
        echo "# rerun $i exited $rc: $(tail -1 err_k)"
        sleep 0.2
    done
    return 1
}

for round in 1 2 3; do
    rm -f k.h5 k.h5.lock
    setsid $MPIRUN -np 3 "$QIDA" run k.job >>out_k 2>>err_k &
    pid=$!
    delay=$((250 + RANDOM % (hi - 250 + 1)))
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    # Open MPI puts each rank in a process group of its own, within mpirun's
    # session: kill every process of the session at once, mpirun included
    pids=$(ps -o pid= -s $pid 2>/dev/null)
    if [ -n "$pids" ]; then kill -9 $pids 2>/dev/null; else echo "# round $round: the run had ended before the kill"; fi
    wait $pid 2>/dev/null
    for _ in $(seq 1 50); do [ -z "$(ps -o pid= -s $pid 2>/dev/null)" ] && break; sleep 0.1; done
    echo "# round $round: killed after $delay ms with $("$HELPERA" dump k.h5 2>/dev/null | wc -l) of 20 rows in the store"
    run_until_done; ok $? "round $round: after kill -9 the same command completes the job"
    "$HELPERA" dump k.h5 >dump_k
    is "" "$(cut -f1 dump_k | sort | uniq -d)" "round $round: every task key exactly once"
    is 20 "$(grep -c "	ok	" dump_k)" "round $round: all 20 tasks OK"
    cmp -s dump_u dump_k; ok $? "round $round: loss and QiD per key equal the uninterrupted -np 1 run"
    [ -s dump_k ] && ! cmp -s dump_u dump_k && diff dump_u dump_k | head -5 | sed 's/^/# /'
done
h5dump -H k.h5 >/dev/null 2>h5err; ok $? "h5dump -H opens the store"
[ -s h5err ] && head -3 h5err | sed 's/^/# /'
is 0 "$(grep -c 'is locked' err_k)" "no rerun found the store locked by a killed run"
