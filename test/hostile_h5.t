#!/bin/sh
# hostile_h5.t - qid's HDF5 files rewritten by someone else (Debian's h5py):
# extents and shapes that claim more data than the file holds. Each must be
# a one-line error naming the file and the dataset, before qid allocates
# for it (regressions of test/fuzz/fuzz_h5.c's findings, docs/testing.md):
#
# - a results store whose /tasks extent was grown to 2^40 rows without data
#   (qid results, qid run resuming it, qid fit): qid used to calloc 598 TB
#   for the rows and die out of memory; /window_nll grown the same way was
#   accepted;
# - a token set whose /tokens and n_windows claim 2^30 windows of no data
#   (qid eval): it was accepted, the missing windows read as token 0;
# - a checkpoint whose /config claims d_model 2^20 (qid eval): qid used to
#   allocate the layer buffer from the config (53 TB) before reading a
#   tensor, and die out of memory; now the tensors' shapes are checked first;
# - a checkpoint tensor of the right shape with no data written (qid eval):
#   it used to read as zeros, a silently wrong model;
# - a format attribute holding a newline (qid eval): the error quoted it and
#   broke over two lines; every error now writes control characters as \n,
#   \xHH (error.c).
set -u
. "$(dirname "$0")/taplib.sh"
tap_abs_paths
PY=/usr/bin/python3
$PY -c 'import h5py' 2>/dev/null || fail_all "Debian's python3-h5py not found (make deps installs it)"
plan 20
tap_tmpdir
T=$TAP_TMP

tap_import_tiny "$T" gpt-neox-tiny 1000
tap_tokens_fixture "$T/tok.h5"
cd "$T" || exit 1
cat >a.job <<EOF
[job]
results = a.h5
[checkpoints]
file = neox-1000.h5
[eval]
tokens = tok.h5
windows = 2
[quantize]
methods = rtn
formats = int4-g16-sym
EOF
"$QIDA" run a.job >/dev/null 2>&1
ok $? "setup: a store of two rows"

# mutate SRC DST PYTHON: a copy of SRC as DST, changed by h5py (f is the file)
mutate() {
    cp "$1" "$2"
    $PY -c "import h5py, numpy as np
f = h5py.File('$2', 'r+')
$3
f.close()" || echo "# mutation of $2 failed"
}
# expect_error DESC CMD...: exit 1, one line naming the file, no sanitizer/oom message
expect_error() {
    desc=$1
    shift
    "$@" >out 2>err
    rc=$?
    is "1 1" "$rc $(wc -l <err | tr -d ' ')" "$desc: exit 1, one line"
    like "$(cat err)" "$want" "$desc: the message says what is wrong"
}

mutate a.h5 big-tasks.h5 "f['tasks'].resize((1 << 40,))"
want="'/tasks' in 'big-tasks.h5' claims 1099511627776 elements"
expect_error "qid results, /tasks grown to 2^40 rows without data" "$QIDA" results big-tasks.h5
sed "s#^results = .*#results = big-tasks.h5#" a.job >big.job
expect_error "qid run resuming it" "$QIDA" run big.job
expect_error "qid fit on it" "$QIDA" fit big-tasks.h5

mutate a.h5 big-nll.h5 "f['window_nll'].resize((1 << 40,))"
want="'/window_nll' in 'big-nll.h5' claims 1099511627776 elements (8796093022208 bytes) but holds"
expect_error "qid results, /window_nll grown to 2^40 entries" "$QIDA" results big-nll.h5

mutate tok.h5 big-tok.h5 "n = 1 << 30
del f['tokens']
f.create_dataset('tokens', shape=(n, 16), dtype='u2', chunks=(64, 16))
f.attrs['source_tokens'] = np.int64(n * 16 + f.attrs['tokens_dropped'])
f.attrs['n_windows'] = np.int64(n)"
want="'/tokens' in 'big-tok.h5' claims 17179869184 elements (34359738368 bytes) but holds 0 bytes of data"
expect_error "qid eval, a token set of 2^30 windows without data" "$QIDA" eval neox-1000.h5 big-tok.h5 --windows 2

mutate neox-1000.h5 big-cfg.h5 "c = f['config']
c.attrs['d_model'] = np.int64(1 << 20)
c.attrs['head_dim'] = np.int64((1 << 20) // int(c.attrs['n_heads']))
c.attrs['d_ff'] = np.int64(1 << 22)"
want="in 'big-cfg.h5' has shape [32, 1] (1-D), the config implies [1048576, 1]"
expect_error "qid eval, /config claims d_model 2^20" "$QIDA" eval big-cfg.h5 tok.h5 --windows 2

mutate neox-1000.h5 empty-tensor.h5 "d = f['layers/0/mlp.up.weight']
shape, dt = d.shape, d.dtype
del f['layers/0/mlp.up.weight']
f.create_dataset('layers/0/mlp.up.weight', shape=shape, dtype=dt, chunks=shape)"
want="'/layers/0/mlp.up.weight' in 'empty-tensor.h5' claims"
expect_error "qid eval, a tensor with no data written" "$QIDA" eval empty-tensor.h5 tok.h5 --windows 2
like "$(cat err)" "holds 0 bytes of data (a truncated or damaged file)" "qid eval, a tensor with no data written: says it holds no data"

mutate tok.h5 nl-format.h5 "f.attrs['format'] = 'a\\nb'"
want="'nl-format.h5' is a a\\nb file, expected qid-tokens"
expect_error "qid eval, a format attribute holding a newline" "$QIDA" eval neox-1000.h5 nl-format.h5 --windows 2

# the untouched files still read
"$QIDA" results a.h5 >out 2>err
ok $? "the original store reads"
"$QIDA" eval neox-1000.h5 tok.h5 --windows 2 >out 2>err
ok $? "the original checkpoint and token set evaluate"
