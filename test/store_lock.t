#!/usr/bin/env bash
# store_lock.t - the results store's lock on file systems without flock,
# injected with build/test/noflock.so (test/noflock.c, LD_PRELOAD): flock
# refused (ENOSYS, as Lustre without -o flock answers) falls back to an
# fcntl record lock, which keeps a second run out; flock and fcntl both
# refused falls back to PATH.lock.excl created with O_EXCL, holding
# "pid host": a live holder, or one on another host, keeps runs and fits
# out with a one-line error saying which file to remove; a holder of this
# host that no longer runs is a stale lock, removed with a warning; the file
# is gone after the run. HDF5's own file lock: ENOSYS is ignored by HDF5,
# EOPNOTSUPP fails an open with the HDF5_USE_FILE_LOCKING=FALSE hint, and
# with it set a run completes. The flock path itself: cmd_run.t.
set -u
. "$(dirname "$0")/taplib.sh"
SHIM=${BUILD:-build}/test/noflock.so
require_exe "$SHIM"
require_cmd python3
tap_fit_generators
plan 27
tap_tmpdir
T=$TAP_TMP
tap_abs_paths
case "$SHIM" in /*) ;; *) SHIM=$ROOT/$SHIM ;; esac
case "$GEN" in /*) ;; *) GEN=$ROOT/$GEN ;; esac
# a sanitized qid (make check-sanitize) loads the shim after its runtime
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
HOST=$(hostname)

# nolocks FLOCK-ERRNO FCNTL-ERRNO COMMAND...: COMMAND on a file system that
# refuses flock (and fcntl locks) with those errno names ("" = allowed)
nolocks() {
    local fl=$1 fc=$2
    shift 2
    env LD_PRELOAD="$SHIM" QID_NOFLOCK="$fl" QID_NOFCNTL="$fc" "$@"
}
rows() { "$QIDA" results "$T/r.h5" --csv 2>/dev/null | tail -n +2 | wc -l; }

tap_import_tiny "$T/ck" gpt-neox-tiny 1000
tap_tokens_fixture "$T/tok.h5"
job() { # job NAME FORMATS
    cat >"$T/$1.job" <<EOF
[job]
results = $T/r.h5
[checkpoints]
file = $T/ck/neox-1000.h5
[eval]
tokens = $T/tok.h5
[quantize]
methods = rtn
formats = $2
EOF
}
job a "int4-g16-sym"
job b "int4-g16-sym, int3-g16-sym"
job c "int4-g16-sym, int3-g16-sym, int2-g16-sym"
job d "int4-g16-sym, int3-g16-sym, int2-g16-sym, int8-g16-sym"

# ---- flock refused: an fcntl lock
nolocks ENOSYS "" "$QIDA" run "$T/a.job" >/dev/null 2>"$T/err"
ok $? "flock ENOSYS: the run completes (an fcntl lock)"
is 2 "$(rows)" "... with its rows"
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
f.truncate(0); f.write("4242 node7\n"); f.flush()
print("held", flush=True)
time.sleep(60)' "$T/r.h5.lock" >"$T/held" &
HOLDER=$!
for _ in $(seq 50); do [ -s "$T/held" ] && break; sleep 0.1; done
nolocks ENOSYS "" "$QIDA" run "$T/b.job" >/dev/null 2>"$T/err"
is 1 $? "flock ENOSYS: a run while another process holds the fcntl lock exits 1"
like "$(cat "$T/err")" "results store '$T/r.h5' is locked by pid 4242 on node7 (another qid run is writing it)" \
    "... naming the holder"
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
is 2 "$(rows)" "... and the store is untouched"

# ---- flock and fcntl refused: PATH.lock.excl
nolocks ENOSYS ENOSYS "$QIDA" run "$T/b.job" >/dev/null 2>"$T/err"
ok $? "flock and fcntl ENOSYS: the run completes (an O_EXCL lock file)"
is 3 "$(rows)" "... with its rows"
[ ! -e "$T/r.h5.lock.excl" ]
ok $? "... and removes its lock file"

echo "$$ $HOST" >"$T/r.h5.lock.excl"
nolocks ENOSYS ENOSYS "$QIDA" run "$T/c.job" >/dev/null 2>"$T/err"
is 1 $? "a live holder on this host: the run exits 1"
is "qid run: error: results store '$T/r.h5' is locked by pid $$ on $HOST (lock file '$T/r.h5.lock.excl'; this file system has no file locks): if no qid run is writing it, remove that file" \
    "$(cat "$T/err")" "... with one line naming the holder and the file to remove"
[ -e "$T/r.h5.lock.excl" ] && [ "$(rows)" -eq 3 ]
ok $? "... the lock file and the store are untouched"

echo "4242 elsewhere.example" >"$T/r.h5.lock.excl"
nolocks ENOSYS ENOSYS "$QIDA" run "$T/c.job" >/dev/null 2>"$T/err"
is 1 $? "a holder on another host (which cannot be checked): the run exits 1"
like "$(cat "$T/err")" "locked by pid 4242 on elsewhere.example (lock file '$T/r.h5.lock.excl'" "... naming it"

sleep 0 &
DEAD=$!
wait "$DEAD"
echo "$DEAD $HOST" >"$T/r.h5.lock.excl"
nolocks ENOSYS ENOSYS "$QIDA" run "$T/c.job" >/dev/null 2>"$T/err"
ok $? "a holder of this host that no longer runs: the run completes"
like "$(cat "$T/err")" "warning: removed the stale lock file '$T/r.h5.lock.excl' of results store '$T/r.h5' (pid $DEAD on $HOST no longer runs)" \
    "... with a warning that it removed the stale lock"
is "4 absent" "$(rows) $([ -e "$T/r.h5.lock.excl" ] && echo present || echo absent)" "... its rows stored, no lock file left"

# qid fit takes the same lock
"$GEN" --write-store "$T/s.h5" >/dev/null 2>&1
echo "$$ $HOST" >"$T/s.h5.lock.excl"
nolocks ENOSYS ENOSYS "$QIDA" fit "$T/s.h5" --boot 0 >/dev/null 2>"$T/err"
is 1 $? "fit: a live holder of the lock file: exits 1"
like "$(cat "$T/err")" "results store '$T/s.h5' is locked by pid $$ on $HOST (lock file" "... naming it"
rm -f "$T/s.h5.lock.excl"
nolocks ENOSYS ENOSYS "$QIDA" fit "$T/s.h5" --boot 0 >/dev/null 2>"$T/err"
ok $? "fit: without a holder it completes"
[ ! -e "$T/s.h5.lock.excl" ]
ok $? "... and removes its lock file"

# ---- HDF5's own lock
nolocks ENOSYS ENOSYS "$QIDA" inspect "$T/ck/neox-1000.h5" >/dev/null 2>"$T/err"
ok $? "HDF5's lock and flock ENOSYS: HDF5 ignores it, the checkpoint opens"
nolocks EOPNOTSUPP EOPNOTSUPP "$QIDA" inspect "$T/ck/neox-1000.h5" >/dev/null 2>"$T/err"
is 1 $? "flock EOPNOTSUPP: HDF5's lock fails the open, exit 1"
like "$(cat "$T/err")" "unable to lock file: Operation not supported (this file system refuses file locks: set HDF5_USE_FILE_LOCKING=FALSE)" \
    "... with the hint"
is 1 "$(wc -l <"$T/err")" "... in one line"
nolocks EOPNOTSUPP EOPNOTSUPP env HDF5_USE_FILE_LOCKING=FALSE "$QIDA" run "$T/d.job" >/dev/null 2>"$T/err"
ok $? "flock and fcntl EOPNOTSUPP with HDF5_USE_FILE_LOCKING=FALSE: the run completes"
nolocks ENOLCK ENOLCK env HDF5_USE_FILE_LOCKING=FALSE "$QIDA" run "$T/d.job" >/dev/null 2>"$T/err"
ok $? "flock and fcntl ENOLCK (NFS without lockd) with HDF5_USE_FILE_LOCKING=FALSE: the rerun completes"
is "5 absent" "$(rows) $([ -e "$T/r.h5.lock.excl" ] && echo present || echo absent)" "... every task once, no lock file left"
