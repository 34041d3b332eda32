#!/bin/sh
# compare_llama_kl.sh - qid's divergence report (`qid eval --ref --kl`)
# beside llama.cpp's `llama-perplexity --kl-divergence` on the same model,
# the same quantized weights and the same windows. Not part of `make check`
# (it needs a llama.cpp build, h5py and gguf); docs/benchmarks.md has a run.
#
# usage: LLAMA_PERPLEXITY=/path/to/llama-perplexity PYTHON=python3 \
#        sh tools/compare_llama_kl.sh QID CKPT TOKENS FORMAT WINDOWS [THREADS]
#
#   QID      the qid binary (build/qid)
#   CKPT     a gpt-neox qid checkpoint (untied head) whose vocabulary is at
#            most 256 ids, e.g. a model of `qid train` on a byte-level or
#            `qid corpus` token set; the token ids are written as the bytes
#            of a text file, which tools/qid_to_gguf.py's byte vocabulary
#            makes llama.cpp read back as the same ids
#   TOKENS   its token set (qid tokens); the first WINDOWS windows are used,
#            at the set's window length (llama-perplexity -c)
#   FORMAT   q8_0 or q4_0: qid's format of that name is bit-exact to
#            llama.cpp's blocks (gguf-py), so both tools have the same weights
#   PYTHON   an interpreter with h5py and gguf (PyPI)
#
# Three llama.cpp runs score the same windows (second half of each, its
# convention; qid eval --second-half): the base model in F32 (writing the
# base logits), then
#   "F32 of qid's q-weights": `qid quantize --format FORMAT`'s dequantized
#       weights written as F32: the same two distributions qid compares, so
#       the statistics must agree up to llama.cpp's 16-bit storage of the
#       base log-probabilities and float32 arithmetic;
#   "llama.cpp FORMAT": the same blocks as a FORMAT GGUF, run by llama.cpp's
#       own integer kernels, which also round each activation row to 8-bit
#       blocks (q8_0) before the product: a different model from qid's
#       (float32 activations), shown for what that rounding adds.
set -eu
[ $# -ge 5 ] || { sed -n '5,20p' "$0"; exit 2; }
QID=$1 CKPT=$2 TOKENS=$3 FORMAT=$4 WINDOWS=$5 THREADS=${6:-2}
LLAMA=${LLAMA_PERPLEXITY:?set LLAMA_PERPLEXITY to a llama-perplexity binary}
PY=${PYTHON:-python3}
case $FORMAT in q8_0 | q4_0) ;; *) echo "compare_llama_kl: FORMAT is q8_0 or q4_0, not '$FORMAT'" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/qid-llama-kl-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

L=$("$PY" - "$TOKENS" "$WINDOWS" "$tmp/text.txt" <<'EOF'
import sys, h5py, numpy as np
path, w, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with h5py.File(path, "r") as f:
    ids = np.asarray(f["tokens"][:w], dtype=np.int64)
if ids.shape[0] < max(w, 2) or ids.max() > 255:
    sys.exit(f"compare_llama_kl: {path}: need {w} >= 2 windows of ids below 256")
open(out, "wb").write(ids.astype(np.uint8).tobytes())
print(ids.shape[1])
EOF
)
"$QID" quantize "$CKPT" --format "$FORMAT" -o "$tmp/q.h5" >/dev/null
"$PY" "$here/qid_to_gguf.py" "$CKPT" "$tmp/base.gguf"
"$PY" "$here/qid_to_gguf.py" "$tmp/q.h5" "$tmp/qdeq.gguf"
"$PY" "$here/qid_to_gguf.py" "$CKPT" "$tmp/q.gguf" --type "$FORMAT"

run() { # model log [extra args]
    m=$1 log=$2
    shift 2
    "$LLAMA" -m "$m" -c "$L" -t "$THREADS" --chunks "$WINDOWS" "$@" >"$log" 2>&1 || {
        echo "compare_llama_kl: llama-perplexity failed, log:" >&2
        tail -20 "$log" >&2
        exit 1
    }
}
run "$tmp/base.gguf" "$tmp/base.log" -f "$tmp/text.txt" --kl-divergence-base "$tmp/base.kld"
run "$tmp/qdeq.gguf" "$tmp/qdeq.log" --kl-divergence-base "$tmp/base.kld" --kl-divergence
run "$tmp/q.gguf" "$tmp/q.log" --kl-divergence-base "$tmp/base.kld" --kl-divergence
"$QID" eval "$tmp/q.h5" "$TOKENS" --ref "$CKPT" --kl --second-half --windows "$WINDOWS" --threads "$THREADS" \
    >"$tmp/qid.log"

# one line per statistic: qid, llama.cpp on qid's weights in F32, llama.cpp's FORMAT kernels
pick_llama() { # log label -> the first number after the label's colon
    sed -n "s/^$2 *: *\([-0-9.]*\).*/\1/p" "$1" | head -1
}
pick_qid() { # label -> the first number after the label
    sed -n "s/^  $1 *\([-0-9.]*\).*/\1/p" "$tmp/qid.log" | head -1
}
echo "model $CKPT, $FORMAT, $WINDOWS windows of $L tokens (second half scored), $THREADS threads"
echo "llama.cpp: $LLAMA"
printf '%-22s %14s %14s %14s\n' statistic qid "llama F32(qW)" "llama $FORMAT"
line() { # label qid-label llama-label
    printf '%-22s %14s %14s %14s\n' "$1" "$(pick_qid "$2")" "$(pick_llama "$tmp/qdeq.log" "$3")" \
        "$(pick_llama "$tmp/q.log" "$3")"
}
line "ln(PPL(Q)/PPL(ref))" 'ln(PPL(Q)\/PPL(ref))' 'Mean ln(PPL(Q)\/PPL(base))'
line "KLD mean" 'Mean    KLD' 'Mean    KLD'
line "KLD maximum" 'Maximum KLD' 'Maximum KLD'
line "KLD 99.9%" '99.9%   KLD' '99.9%   KLD'
line "KLD 99%" '99.0%   KLD' '99.0%   KLD'
line "KLD 95%" '95.0%   KLD' '95.0%   KLD'
line "KLD 90%" '90.0%   KLD' '90.0%   KLD'
line "KLD median" 'Median  KLD' 'Median  KLD'
line "KLD 10%" '10.0%   KLD' '10.0%   KLD'
line "KLD 5%" ' 5.0%   KLD' ' 5.0%   KLD'
line "KLD 1%" ' 1.0%   KLD' ' 1.0%   KLD'
line "same top p %" 'Same top p' 'Same top p'
line "mean dp %" 'Mean    dp' 'Mean    Δp'
line "RMS dp %" 'RMS     dp' 'RMS Δp'
line "dp 99% %" '99.0%   dp' '99.0%   Δp'
line "dp median %" 'Median  dp' 'Median  Δp'
line "dp 1% %" ' 1.0%   dp' ' 1.0%   Δp'
