#!/usr/bin/env bash
# cmd_eval.t - `qid eval` end to end: a transformers-written checkpoint imported
# with `qid import`, the fixture tokens made a token set with `qid tokens`,
# loss and perplexity against transformers' reference, the options
# (--windows, --seq-len, --second-half, --threads, --batch, --per-window),
# against a reference (--quant, --ref, --kl's divergence report, adaptive
# --target-se), and one-line errors for bad usage and bad inputs.
set -u
. "$(dirname "$0")/taplib.sh"
plan 61
tap_tmpdir
T=$TAP_TMP
FIX=test/fixtures/hf

$QID import --from safetensors "$FIX/gpt-neox-tiny" -o "$T/neox.h5" >/dev/null 2>&1
$QID tokens --from "$FIX/tokens.u16" --dtype uint16 --vocab 96 --seq-len 16 --tokenizer test -o "$T/tok.h5" >/dev/null 2>&1
[ -f "$T/neox.h5" ] && [ -f "$T/tok.h5" ] || { echo "Bail out! cannot import the fixtures"; exit 255; }

out=$($QID eval "$T/neox.h5" "$T/tok.h5" 2>"$T/err"); ok $? "qid eval exits 0"
# transformers: loss 5.2186809056522225 (reference.json), perplexity exp(loss) = 184.6887
like "$out" "loss         5.21868" "loss matches transformers' 5.218681 to the printed digits"
like "$out" "perplexity   184.690" "perplexity is exp(loss) = 184.6904"
like "$out" "tokens       45 scored, 48 processed" "3 windows x 15 predictions scored"
like "$out" "tokens/s" "reports tokens/s"
like "$out" "peak memory" "reports peak memory"
like "$out" "windows      3 x 16 tokens" "reports the windows"

out=$($QID eval "$T/neox.h5" "$T/tok.h5" --second-half); ok $? "--second-half exits 0"
like "$out" "tokens       21 scored" "--second-half scores 7 predictions a window"
out=$($QID eval "$T/neox.h5" "$T/tok.h5" --windows 2); like "$out" "tokens       30 scored" "--windows 2 evaluates two windows"
out=$($QID eval "$T/neox.h5" "$T/tok.h5" --seq-len 8); like "$out" "windows      6 x 8 tokens" "--seq-len 8 re-cuts the stream into 6 windows"
a=$($QID eval "$T/neox.h5" "$T/tok.h5" --threads 1 --batch 1 | grep '^loss' | cut -c1-21)
b=$($QID eval "$T/neox.h5" "$T/tok.h5" --threads 2 | grep '^loss' | cut -c1-21)
is "$b" "$a" "--threads 1 --batch 1 gives the same loss to 6 decimals"
out=$($QID eval "$T/neox.h5" "$T/tok.h5" --per-window)
is 3 "$(echo "$out" | grep -c '^window [0-9]* nll')" "--per-window prints one line per window"
like "$out" "window 0 nll 84.1000" "window 0's NLL sum matches transformers' 84.100051"

[[ "$($QID eval "$T/neox.h5" "$T/tok.h5" | grep '^loss')" =~ ^loss\ +5\.21868[0-9]{11}\  ]]; ok $? "the loss is printed to full precision (17 digits)"

# against a reference
out=$($QID eval "$T/neox.h5" "$T/tok.h5" --quant int3-g16-sym --kl 2>"$T/err"); ok $? "--quant int3-g16-sym --kl exits 0"
like "$out" "ref loss     5.218680" "the reference is the checkpoint itself (its loss)"
like "$out" "quantized    int3-g16-sym (rtn, in memory)" "names the quantizer"
like "$out" " +- " "prints QiD with its SE"
like "$out" "divergence   over 45 predictions" "the divergence report over the 45 scored predictions"
for w in "Mean    KLD" "Maximum KLD" "99.9%   KLD" "Median  KLD" "Same top p" "RMS     dp" "ln(PPL(Q)/PPL(ref))"; do
    like "$out" "$w" "the report has '$w'"
done
q1=$(echo "$out" | grep '^qid')
$QID quantize "$T/neox.h5" --format int3-g16-sym -o "$T/q3.h5" >/dev/null 2>&1
out=$($QID eval "$T/q3.h5" "$T/tok.h5" --ref "$T/neox.h5" --kl); ok $? "--ref REF --kl exits 0"
is "$(echo "$out" | grep '^qid')" "$q1" "a qid quantize file against --ref gives the same QiD as --quant"
like "$out" "reference    $T/neox.h5" "names the reference"
out=$($QID eval "$T/q3.h5" "$T/tok.h5" --ref "$T/neox.h5"); is "$(echo "$out" | grep '^qid')" "$q1" "... also without --kl (the reference in its own pass)"
out=$($QID eval "$T/neox.h5" "$T/tok.h5" --quant int3-g16-sym); is "$(echo "$out" | grep '^qid')" "$q1" "--quant without --kl: the same QiD"
out=$($QID eval "$T/neox.h5" "$T/tok.h5" --seq-len 4 --quant int3-g16-sym --target-se 1 --min-windows 4 --block-windows 4)
ok $? "--target-se exits 0"
like "$out" "adaptive     4 of 12 windows (min 4, blocks of 4" "--target-se 1 stops after the first block of 4 of 12 windows"
like "$out" "tokens       12 scored" "scores only those windows"
out=$($QID eval "$T/neox.h5" "$T/tok.h5" --seq-len 4 --quant int3-g16-sym --target-se 0 --min-windows 4 --block-windows 4)
like "$out" "adaptive     12 of 12 windows" "--target-se 0 runs every window"

# usage errors: exit 2
$QID eval "$T/neox.h5" 2>"$T/err"; is 2 $? "one argument: exit 2"
like "$(head -1 "$T/err")" "qid eval: error: give a checkpoint and a token set" "one argument: message"
$QID eval "$T/neox.h5" "$T/tok.h5" --windows 0 2>"$T/err"; is 2 $? "--windows 0: exit 2"
like "$(head -1 "$T/err")" "--windows wants a positive integer" "--windows 0: message"

$QID eval "$T/neox.h5" "$T/tok.h5" --kl 2>"$T/err"; is 2 $? "--kl without a reference: exit 2"
like "$(head -1 "$T/err")" "--kl needs a reference: --quant FORMAT or --ref REF" "--kl without a reference: message"
$QID eval "$T/neox.h5" "$T/tok.h5" --quant int5-bogus 2>"$T/err"; is 2 $? "an unknown format: exit 2"
like "$(head -1 "$T/err")" "int5-bogus" "an unknown format: named"
$QID eval "$T/neox.h5" "$T/tok.h5" --quant int4-g16-sym --ref "$T/q3.h5" 2>"$T/err"; is 2 $? "--quant and --ref: exit 2"
$QID eval "$T/neox.h5" "$T/tok.h5" --quant int4-g16-sym --method gptq 2>"$T/err"; is 2 $? "gptq without --calib: exit 2"
like "$(head -1 "$T/err")" "--method gptq needs a calibration token set" "gptq without --calib: message"
$QID eval "$T/neox.h5" "$T/tok.h5" --min-windows 4 --quant int4-g16-sym 2>"$T/err"; is 2 $? "--min-windows without --target-se: exit 2"
$QID eval "$T/neox.h5" "$T/tok.h5" --quant int4-g16-asym --method awq 2>"$T/err"; is 2 $? "awq without --calib: exit 2"
like "$(head -1 "$T/err")" "--method awq needs a calibration token set" "awq without --calib: message"
out=$($QID eval "$T/neox.h5" "$T/tok.h5" --quant int4-g16-asym --method awq --calib "$T/tok.h5"); ok $? "--method awq exits 0"
like "$out" "quantized    int4-g16-asym (awq, in memory)" "--method awq: the summary names it"
$QID quantize "$T/neox.h5" --format int4-g16-asym --method awq --calib "$T/tok.h5" -o "$T/awq.h5" >/dev/null
is "$(echo "$out" | grep '^loss ')" "$($QID eval "$T/awq.h5" "$T/tok.h5" | grep '^loss ')" \
    "--method awq in memory: the loss of qid quantize's file, to the last digit"
$QID eval "$T/q3.h5" "$T/tok.h5" --ref "$T/absent.h5" --kl 2>"$T/err"; is 1 $? "a missing reference: exit 1"
like "$(cat "$T/err")" "absent.h5" "a missing reference: named"

# bad inputs: exit 1, one line
$QID tokens --from "$FIX/tokens.u16" --dtype uint16 --vocab 200 --seq-len 16 --tokenizer test -o "$T/v200.h5" >/dev/null 2>&1
$QID eval "$T/neox.h5" "$T/v200.h5" 2>"$T/err"; is 1 $? "a token set with a larger vocabulary: exit 1"
like "$(cat "$T/err")" "has a vocabulary of 200 ids, more than the 96 of model" "names both vocabularies"
is 1 "$(wc -l <"$T/err" | tr -d ' ')" "in one line"
for i in $(seq 160); do printf '\001\000'; done >"$T/long.u16"
$QID tokens --from "$T/long.u16" --dtype uint16 --vocab 96 --seq-len 80 --tokenizer test -o "$T/long.h5" >/dev/null 2>&1
$QID eval "$T/neox.h5" "$T/long.h5" 2>"$T/err"; is 1 $? "windows longer than max_seq_len: exit 1"
like "$(cat "$T/err")" "windows of 80 tokens are longer than the context (max_seq_len 64)" "says so"
$QID eval "$T/missing.h5" "$T/tok.h5" 2>"$T/err"; is 1 $? "a missing checkpoint: exit 1"
