#!/bin/sh
# demo.sh - `make demo`. PLACEHOLDER until the embedded-default milestone
# (issue 7: qid trains a tiny model suite, sweeps it under mpirun, fits the
# laws and writes a report). Until then it runs what exists for real: imports
# the bundled transformers-written checkpoints and a token set, and inspects them.
set -eu
QID=${1:-build/qid}
OUT=${DEMO_DIR:-build/demo}
mkdir -p "$OUT"
echo "make demo: PLACEHOLDER - the full demo (train, sweep, fit, report) arrives with the demo milestone."
echo "make demo: for now: import the bundled tiny checkpoints and a token set, inspect them, evaluate one,"
echo "make demo: quantize it with RTN and GPTQ (int4, groups of 16) and evaluate the quantized copies."
for m in gpt-neox-tiny llama-tiny-bf16-sharded qwen2-tiny; do
    "$QID" import --from safetensors "test/fixtures/hf/$m" --step 1000 --tokens-per-step 2097152 \
        --force -o "$OUT/$m.h5"
done
rm -f "$OUT/tokens.h5"
"$QID" tokens --from test/fixtures/hf/tokens.u16 --dtype uint16 --vocab 96 --seq-len 16 \
    --tokenizer tiny-random -o "$OUT/tokens.h5"
"$QID" inspect "$OUT/gpt-neox-tiny.h5" "$OUT/llama-tiny-bf16-sharded.h5" "$OUT/tokens.h5"
"$QID" eval "$OUT/gpt-neox-tiny.h5" "$OUT/tokens.h5" | grep -E '^(loss|tokens) '
for m in rtn gptq; do
    "$QID" quantize "$OUT/gpt-neox-tiny.h5" --format int4-g16-sym --method $m --calib "$OUT/tokens.h5" \
        --force -o "$OUT/gpt-neox-tiny-$m-int4.h5" | grep -E '^sqnr'
    printf '%s int4-g16: ' "$m"
    "$QID" eval "$OUT/gpt-neox-tiny-$m-int4.h5" "$OUT/tokens.h5" | grep -E '^loss '
done
echo "make demo: files in $OUT/ (open them with h5dump or h5py)"
