#!/usr/bin/env bash
# hostile_disk.t - a full disk and a read-only file system, on a small tmpfs
# the test mounts (root only; skips with the reason elsewhere). `qid import`,
# `qid quantize`, `qid corpus`, `qid train`, `qid fit` and `qid run`
# appending to a store each run out of space at several points (the free
# space left is swept from nothing to most of what the command writes): each
# exits 1 with a one-line error naming the file and the system's reason, no
# partial output or temporary file is left, every row the store held is
# still there and the store opens, and the same command completes once the
# space is freed (the run: every task exactly once). Then the file system is
# remounted read-only: every writer fails the same way, `qid results` still
# reads the store, and after remounting read-write the writers complete.
# docs/reliability.md says what a user sees in each case.
set -u
. "$(dirname "$0")/taplib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root to mount a small tmpfs (CI runs it as root)"
require_cmd fallocate "util-linux"
tap_tmpdir
T=$TAP_TMP
M=$T/mnt
mkdir -p "$M"
if ! mount -t tmpfs -o size=4m,mode=0755 qid-test "$M" 2>"$T/merr"; then
    rm -rf "$T"
    skip_all "cannot mount a tmpfs here: $(head -1 "$T/merr" 2>/dev/null || echo 'mount failed')"
fi
LEVELS=4 # free-space levels per command
plan $((4 * (LEVELS * 3 + 2) + (LEVELS + 1) * 4 + 2 + LEVELS * 4 + 17))
trap 'umount "$M" 2>/dev/null; tap_end' EXIT
tap_abs_paths
FIX=$ROOT/test/fixtures/hf
GEN=${BUILD:-build}/test/fit_cmd.t
require_exe "$GEN"
case "$GEN" in /*) ;; *) GEN=$ROOT/$GEN ;; esac

used() { df -B1 --output=used "$M" | tail -1; }
# fill LEAVE: a file takes all the free space but LEAVE bytes
fill() {
    local avail
    avail=$(df -B1 --output=avail "$M" | tail -1)
    [ "$avail" -gt "$1" ] && fallocate -l $((avail - $1)) "$M/fill"
}
unfill() { rm -f "$M/fill"; }
# what the file system holds besides the filler and the names given
others() {
    local keep="^fill\$"
    for k in "$@"; do keep="$keep|^$k\$"; done
    (cd "$M" && find . -mindepth 1 | sed 's|^\./||' | grep -Ev "$keep" | sort | tr '\n' ' ')
}
# the one error line of a failed command: exactly one "error:"/"fatal:" line,
# naming the file and the reason
one_error() { # one_error ERRFILE PATH REASON DESC
    local n line
    n=$(grep -c 'error: \|fatal: ' "$1")
    line=$(grep 'error: \|fatal: ' "$1" | head -1)
    case "$n:$line" in 1:*"$2"*"$3"*) ok 0 "$4" ;; *)
        ok 1 "$4"
        echo "# $n error lines; wanted one naming '$2' and '$3':"
        sed 's/^/#   /' "$1" | head -5
        ;;
    esac
}

# ---- inputs, outside the small file system
"$QIDA" import --from safetensors "$FIX/gpt-neox-tiny" --step 1000 --tokens-per-step 2097152 -o "$T/ck.h5" >/dev/null 2>&1
"$QIDA" import --from safetensors "$FIX/gpt-neox-tiny" --step 2000 --tokens-per-step 2097152 -o "$T/ck2.h5" >/dev/null 2>&1
tap_tokens_fixture "$T/tok.h5"

# writer NAME: runs it into $M (its output: $M/out or $M/out.h5)
writer() {
    case $1 in
    import) "$QIDA" import --from safetensors "$FIX/gpt-neox-tiny" --step 1 --tokens-per-step 10 -o "$M/out.h5" ;;
    quantize) "$QIDA" quantize "$T/ck.h5" --format int4-g16-sym --method gptq --calib "$T/tok.h5" -o "$M/out.h5" ;;
    corpus) "$QIDA" corpus --synthetic --seq-len 64 --train-tokens 20000 --eval-tokens 6400 --calib-tokens 640 -o "$M/out" ;;
    train) "$QIDA" train --train "$T/tok.h5" --d-model 16 --layers 1 --heads 2 --seq-len 16 --batch 2 --steps 8 \
        --save 0,4,8 --threads 1 -o "$M/out" ;;
    esac
}

# ---- the writers of new files: out of space at LEVELS points each
for c in import quantize corpus train; do
    rm -rf "$M/out" "$M/out.h5"
    before=$(used)
    writer $c >/dev/null 2>&1
    need=$(($(used) - before))
    rm -rf "$M/out" "$M/out.h5"
    for k in $(seq 0 $((LEVELS - 1))); do
        leave=$((need * k / LEVELS))
        fill $leave
        writer $c >/dev/null 2>"$T/err"
        is 1 $? "$c, $leave of its $need bytes free: exits 1"
        one_error "$T/err" "$M/out" "No space left on device" "$c, $leave bytes free: one error line naming the file"
        case $c in
        train) # finished checkpoints stay (a rerun starts over); nothing half-written
            is "" "$(others 'out' 'out/step[0-9]*\.h5' 'out/train\.(json|tsv)')" "$c, $leave bytes free: no partial file"
            ;;
        *) is "" "$(others)" "$c, $leave bytes free: no output, no partial file" ;;
        esac
        unfill
        rm -rf "$M/out"
    done
    writer $c >/dev/null 2>"$T/err"
    ok $? "$c completes once the space is freed"
    case $c in
    corpus) f=$M/out/train.h5 ;; train) f=$M/out/step8.h5 ;; *) f=$M/out.h5 ;;
    esac
    "$QIDA" inspect "$f" >/dev/null 2>&1
    ok $? "$c: its output opens"
done
rm -rf "$M/out" "$M/out.h5"

# ---- qid fit: the store keeps every row and opens; no copy is left
"$GEN" --write-store "$M/s.h5" >/dev/null 2>&1
"$QIDA" results "$M/s.h5" --csv >"$T/rows0" 2>/dev/null
before=$(used)
cp "$M/s.h5" "$M/sx.h5"
"$QIDA" fit "$M/sx.h5" --boot 20 --seed 3 >/dev/null 2>&1
need=$(($(used) - before)) # the store's copy with the fit in it
rm -f "$M/sx.h5" "$M/sx.h5.lock"
for k in $(seq 0 $LEVELS); do
    leave=$((need * k / (LEVELS + 1)))
    fill $leave
    "$QIDA" fit "$M/s.h5" --boot 20 --seed 3 >/dev/null 2>"$T/err"
    is 1 $? "fit, $leave of its $need bytes free: exits 1"
    one_error "$T/err" "$M/s.h5" "No space left on device" "fit, $leave bytes free: one error line naming the store"
    is "s.h5 s.h5.lock " "$(others)" "fit, $leave bytes free: no copy of the store left"
    unfill
    "$QIDA" results "$M/s.h5" --csv >"$T/rows" 2>&1
    cmp -s "$T/rows0" "$T/rows"
    ok $? "fit, $leave bytes free: the store opens with every row"
done
"$QIDA" fit "$M/s.h5" --boot 20 --seed 3 >/dev/null 2>&1
ok $? "fit completes once the space is freed"
like "$("$QIDA" inspect "$M/s.h5")" "/fits/default" "the store holds the fit"

# ---- qid run appending: rows of an earlier run, then a larger job runs out
job() { # job NAME FORMATS
    cat >"$T/$1.job" <<EOF
[job]
results = $M/r.h5
[checkpoints]
file = $T/ck.h5
file = $T/ck2.h5
[eval]
tokens = $T/tok.h5
[quantize]
methods = rtn
formats = $2
EOF
}
job small "int4-g16-sym"
formats=$(for g in 16 32; do for b in 2 3 4 5 6 7 8; do printf 'int%s-g%s-sym, ' $b $g; done; done)
job large "${formats%, }"
"$QIDA" run "$T/small.job" >/dev/null 2>&1
cp "$M/r.h5" "$T/r0.h5"
"$QIDA" results "$M/r.h5" --csv --columns key,loss,qid >"$T/rows0" 2>/dev/null
"$QIDA" run "$T/large.job" >/dev/null 2>&1
grow=$(($(stat -c %s "$M/r.h5") - $(stat -c %s "$T/r0.h5")))
most=0 # the most rows a failed run left
# an append first reserves 1 MiB past the end of the store (RESERVE_BYTES in
# src/io/results.c): nothing free, then that and part of what the rows need
for k in $(seq 0 $((LEVELS - 1))); do
    leave=$((k == 0 ? 0 : 1048576 + grow * (k - 1) / (LEVELS - 1)))
    rm -f "$M/r.h5" "$M/r.h5.lock"
    cp "$T/r0.h5" "$M/r.h5"
    fill $leave
    "$QIDA" run "$T/large.job" >/dev/null 2>"$T/err"
    [ $? -ne 0 ]
    ok $? "run, $leave bytes free (the rows take $grow): fails"
    one_error "$T/err" "$M/r.h5" "No space left on device" "run, $leave bytes free: one error line naming the store"
    "$QIDA" results "$M/r.h5" --csv --columns key,loss,qid >"$T/rows" 2>"$T/rerr"
    missing=$(grep -cvxFf "$T/rows" "$T/rows0")
    n=$(($(wc -l <"$T/rows") - 1))
    [ "$n" -gt "$most" ] && most=$n
    is "0" "$missing" "run, $leave bytes free: the store opens with every row of the earlier run ($n rows)"
    unfill
    "$QIDA" run "$T/large.job" >/dev/null 2>"$T/err"
    rc=$?
    "$QIDA" results "$M/r.h5" --csv --columns key >"$T/keys" 2>/dev/null
    is "0 30 30" "$rc $(($(wc -l <"$T/keys") - 1)) $(tail -n +2 "$T/keys" | sort -u | wc -l)" \
        "run, $leave bytes free: the rerun completes, every task exactly once"
done
[ "$most" -gt "$(($(wc -l <"$T/rows0") - 1))" ]
ok $? "a run that ran out of space part-way kept the rows it had stored ($most rows)"

# ---- a read-only file system
rm -rf "$M/out" "$M/out.h5"
"$QIDA" results "$M/r.h5" --csv >"$T/rows0" 2>/dev/null
mount -o remount,ro "$M"
for c in import quantize corpus train; do
    writer $c >/dev/null 2>"$T/err"
    is 1 $? "$c into a read-only directory: exits 1"
    one_error "$T/err" "$M/out" "Read-only file system" "$c, read-only: one error line naming the file"
done
"$QIDA" run "$T/large.job" >/dev/null 2>"$T/err"
is 1 $? "run on a read-only store: exits 1"
one_error "$T/err" "$M/r.h5" "Read-only file system" "run, read-only: one error line naming the store's lock file"
"$QIDA" fit "$M/s.h5" --boot 20 --seed 3 --name ro >/dev/null 2>"$T/err"
is 1 $? "fit on a read-only store: exits 1"
one_error "$T/err" "$M/s.h5" "Read-only file system" "fit, read-only: one error line naming the store's lock file"
"$QIDA" results "$M/r.h5" --csv >"$T/rows" 2>&1
cmp -s "$T/rows0" "$T/rows"
ok $? "qid results reads a store on a read-only file system"
is "r.h5 r.h5.lock s.h5 s.h5.lock " "$(others)" "read-only: nothing was written"
mount -o remount,rw "$M"
"$QIDA" fit "$M/s.h5" --boot 20 --seed 3 --name ro >/dev/null 2>&1
ok $? "fit completes once the file system is writable"
writer import >/dev/null 2>&1
ok $? "import completes once the file system is writable"
