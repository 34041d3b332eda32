#!/usr/bin/env bash
# results_kill.t - kill -9 of a results-store writer at random moments.
#
# A writer (build/test/results.t --writer) appends rows to one store and
# prints "durable KEY" after each append returns. It is killed with SIGKILL
# 15 times: during the first append of a new store, just before a given
# pwrite(2) of HDF5's flush (the writer sends itself SIGKILL there), at
# random moments from outside while it appends as fast as it can, while it
# appends slowly, and during the repair at open. After every kill:
#   1. reopening for appending succeeds (the automatic repair) and every
#      stored row reads back equal to the row the writer made (--check);
#   2. every row the writer reported durable is in the store;
#   3. the file opens with `h5dump -H`, and with h5py when it is importable;
# and the next round appends to the same store (4). At the end one writer
# runs to completion: every row is there exactly once, with its values.
# QID_KILL_SEED=N replays a run (the seed is printed).
set -u
. "$(dirname "$0")/taplib.sh"
BIN=${RESULTS_T:-${BUILD:-build}/test/results.t}
require_exe "$BIN"
require_cmd h5dump "hdf5-tools; make deps installs it"
plan 64
tap_tmpdir
T=$TAP_TMP
F=$T/kill.h5
N=4000
SEED=${QID_KILL_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$SEED
echo "# seed $SEED (QID_KILL_SEED=$SEED replays it)"
if python3 -c "import h5py" 2>/dev/null; then HAVE_H5PY=1; else HAVE_H5PY=0; fi
skip() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip $1"; }
: >"$T/durable"
ROUND=0
KILLS=0

# Starts a writer in the background: writer_bg DELAY_MS
writer_bg() {
    : >"$T/out"
    "$BIN" --writer "$F" "$N" "$1" >"$T/out" 2>"$T/err" &
    WPID=$!
}
# Kills the background writer and collects its report.
writer_kill() {
    kill -9 "$WPID" 2>/dev/null
    { wait "$WPID"; } 2>/dev/null
    WRC=$?
}
# Runs a writer that kills itself before pwrite K: writer_inject K
writer_inject() {
    { "$BIN" --writer "$F" "$N" 0 "$1" >"$T/out" 2>"$T/err"; } 2>/dev/null
    WRC=$?
}

# The four checks after a kill: after_kill WHERE
after_kill() {
    ROUND=$((ROUND + 1))
    [ "$WRC" -eq 137 ] && KILLS=$((KILLS + 1))
    local before stored rep drop rc
    before=$(sort -u "$T/durable" | wc -l)
    grep '^durable ' "$T/out" | cut -d' ' -f2- >>"$T/durable"
    local reported=$(($(sort -u "$T/durable" | wc -l) - before))
    "$BIN" --check "$F" "$N" >"$T/keys" 2>"$T/cerr"
    rc=$?
    ok $rc "round $ROUND ($1): reopening after kill -9 repairs the store and every row reads back exactly"
    [ $rc -ne 0 ] && sed 's/^/# /' "$T/cerr"
    sort "$T/keys" >"$T/keys.sorted"
    is 0 "$(sort -u "$T/durable" | comm -23 - "$T/keys.sorted" | wc -l)" \
        "round $ROUND: every row reported durable is in the store"
    stored=$(wc -l <"$T/keys")
    rep=no; grep -q "was not closed by its last writer" "$T/cerr" && rep=yes
    drop=no; grep -q "dropped the last row" "$T/cerr" && drop=yes
    echo "# round $ROUND: writer exit $WRC, +$reported rows reported durable, $stored stored," \
        "$(sort -u "$T/durable" | wc -l) reported in all; repaired: $rep; unfinished row dropped: $drop"
    h5dump -H "$F" >/dev/null 2>"$T/h5err"
    ok $? "round $ROUND: h5dump -H opens the repaired file"
    if [ $HAVE_H5PY = 1 ]; then
        out=$(python3 -c 'import sys, h5py
f = h5py.File(sys.argv[1], "r")
t = f["tasks"][...]
print(len(t), len(set(k.decode() for k in t["key"])))' "$F" 2>&1)
        is "$stored $stored" "$out" "round $ROUND: h5py opens it and reads $stored distinct rows"
    else
        skip "h5py is not importable (python3-h5py): h5py check not run"
    fi
}

# 1. kill during the first append of a new store: before its 3rd pwrite
rm -f "$F"
writer_inject 3
after_kill "first append of a new store, before its 3rd pwrite"

# 2. from outside, as soon as the writer says it has opened the store (a race:
# the kill lands in the first append of the run or a few rows later)
writer_bg 0
for _ in $(seq 1 3000); do grep -q '^open' "$T/out" && break; sleep 0.001; done
writer_kill
after_kill "kill -9 as soon as the writer has opened the store"

# 3-6. in the middle of HDF5's flush: just before pwrite K (each append makes
# about 8: the window chunks, the object headers, the /tasks chunk, the
# global heap, the superblock)
for _ in 1 2 3 4; do
    K=$((RANDOM % 40 + 1))
    writer_inject "$K"
    after_kill "mid-flush, before pwrite $K after the open"
done

# 7-12. kill -9 from outside at a random moment while appending flat out
for i in 1 2 3 4 5 6; do
    ms=$((RANDOM % 300 + 10))
    writer_bg 0
    sleep "$(printf '0.%03d' "$ms")"
    if [ "$i" = 1 ]; then
        "$BIN" --read "$F" "$N" >"$T/rkeys" 2>"$T/rerr"
        ok $? "a reader (SWMR) reads every row while the writer appends"
        [ -s "$T/rerr" ] && sed 's/^/# /' "$T/rerr"
    fi
    writer_kill
    after_kill "kill -9 after ${ms} ms of appending flat out"
done

# 13-14. kill -9 from outside while appending slowly (mostly between rows)
for _ in 1 2; do
    ms=$((RANDOM % 300 + 50))
    writer_bg 5
    sleep "$(printf '0.%03d' "$ms")"
    writer_kill
    after_kill "kill -9 after ${ms} ms of appending every 5 ms"
done

# 15. during the repair itself: the previous writer is killed, this one too,
# before its 3rd pwrite counting from the open
writer_inject 20
WRC_FIRST=$WRC
grep '^durable ' "$T/out" | cut -d' ' -f2- >>"$T/durable"
writer_inject -3
[ "$WRC_FIRST" -eq 137 ] && KILLS=$((KILLS + 1))
after_kill "during the repair at open, before its 3rd pwrite"

# the end: a writer runs to completion
"$BIN" --writer "$F" "$N" 0 >"$T/out" 2>"$T/err"
is 0 $? "after $KILLS kills a writer appends the remaining rows and closes"
grep '^durable ' "$T/out" | cut -d' ' -f2- >>"$T/durable"
"$BIN" --check "$F" "$N" >"$T/keys" 2>"$T/cerr"
ok $? "the final store reads back exactly"
is "$N" "$(sort -u "$T/keys" | wc -l)" "all $N rows are there exactly once (none lost, none doubled)"
