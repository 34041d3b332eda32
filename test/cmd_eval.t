#!/usr/bin/env bash
# cmd_eval.t - `qid eval` end to end: a transformers-written checkpoint imported
# with `qid import`, the fixture tokens made a token set with `qid tokens`,
# loss and perplexity against transformers' reference, the options
# (--windows, --seq-len, --second-half, --threads, --batch, --per-window),
# and one-line errors for bad usage and bad inputs.
set -u
. "$(dirname "$0")/taplib.sh"
plan 24
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
a=$($QID eval "$T/neox.h5" "$T/tok.h5" --threads 1 --batch 1 | grep '^loss')
b=$($QID eval "$T/neox.h5" "$T/tok.h5" --threads 2 | grep '^loss')
is "$b" "$a" "--threads 1 --batch 1 gives the same loss to 6 decimals"
out=$($QID eval "$T/neox.h5" "$T/tok.h5" --per-window)
is 3 "$(echo "$out" | grep -c '^window [0-9]* nll')" "--per-window prints one line per window"
like "$out" "window 0 nll 84.1000" "window 0's NLL sum matches transformers' 84.100051"

# usage errors: exit 2
$QID eval "$T/neox.h5" 2>"$T/err"; is 2 $? "one argument: exit 2"
like "$(head -1 "$T/err")" "qid eval: error: give a checkpoint and a token set" "one argument: message"
$QID eval "$T/neox.h5" "$T/tok.h5" --windows 0 2>"$T/err"; is 2 $? "--windows 0: exit 2"
like "$(head -1 "$T/err")" "--windows wants a positive integer" "--windows 0: message"

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
