#!/usr/bin/env bash
# cmd_import.t - `qid import` of pytorch_model.bin and GPTQ-packed models end
# to end (the safetensors path is in cli.t): --from detected or given, the
# same tensor hash from .bin as from safetensors, the GPTQ import measured by
# `qid eval`, bad input as one line, its exit status and no output, and what
# import and inspect say of gpt2, opt and bloom checkpoints.
set -u
. "$(dirname "$0")/taplib.sh"
plan 26
tap_tmpdir
T=$TAP_TMP
HF=test/fixtures/hf
TORCH=test/fixtures/torch
GPTQ=test/fixtures/gptq-packed

out=$($QID import "$TORCH/gpt-neox-tiny-bin" --step 1000 --tokens-per-step 2097152 -o "$T/bin.h5" 2>"$T/err")
ok $? "pytorch_model.bin imported without --from"
like "$out" "N = 17152, step 1000, D = 2097152000" "bin: N, step and D"
$QID import --from safetensors "$HF/gpt-neox-tiny" --step 1000 -o "$T/st.h5" 2>/dev/null
h_bin=$($QID inspect "$T/bin.h5" | grep 'tensor sha256')
h_st=$($QID inspect "$T/st.h5" | grep 'tensor sha256')
is "$h_st" "$h_bin" "the .bin and the safetensors file give the same tensor hash"
like "$($QID inspect "$T/bin.h5")" "(torch)" "inspect shows the source format"
$QID import --from torch "$TORCH/llama-tiny-bf16-sharded-bin" -o "$T/sharded.h5" 2>/dev/null; ok $? "--from torch: shards with pytorch_model.bin.index.json"
like "$($QID inspect "$T/sharded.h5")" "bfloat16" "sharded .bin: bfloat16 kept"

# GPTQ: detected from config.json, measured like any checkpoint
tap_tokens_fixture "$T/tok.h5"
out=$($QID import "$GPTQ/neox-int4-g16-sym" --step 1000 -o "$T/gptq.h5" 2>"$T/err")
ok $? "a GPTQ-packed model imported without --from"
like "$($QID inspect "$T/gptq.h5")" "(gptq)" "inspect: source format gptq"
$QID import --from gptq "$GPTQ/neox-int3-g16-asym-descact" -o "$T/gptq3.h5" 2>/dev/null; ok $? "--from gptq: 3 bits, act-order"
like "$($QID inspect "$T/gptq3.h5")" "dequantized from       GPTQ 3-bit, group 16, asymmetric, desc_act yes, gptq format, 8 packed layers" "inspect shows the GPTQ config"
l16=$($QID eval "$T/st.h5" "$T/tok.h5" 2>/dev/null | awk '$1 == "loss" {print $2}')
lq=$($QID eval "$T/gptq.h5" "$T/tok.h5" 2>/dev/null | awk '$1 == "loss" {print $2}')
ok "$([ -n "$l16" ] && [ -n "$lq" ] && [ "$l16" != "$lq" ]; echo $?)" "qid eval measures the released GPTQ model beside its 16-bit source ($l16 vs $lq)"

# bad command lines: exit 2, one line
$QID import --from pickle "$TORCH/gpt-neox-tiny-bin" -o "$T/x.h5" 2>"$T/err"; is 2 $? "unknown --from exits 2"
like "$(cat "$T/err")" "qid import: error: unknown --from 'pickle' (auto, safetensors, torch or gptq)" "unknown --from: message"

# refused input: exit 1, one line, nothing left
mkdir -p "$T/out"
bad() { # bad DIR WANT WHAT [--from F]
    local dir=$1 want=$2 what=$3; shift 3
    $QID import "$@" "$dir" -o "$T/out/x.h5" 2>"$T/err"; is 1 $? "$what exits 1"
    like "$(grep -v '^qid: warning' "$T/err")" "$want" "$what: message"
    is "0 1" "$(ls -A "$T/out" | wc -l) $(grep -cv '^qid: warning' "$T/err")" "$what: one line, no output left"
}
mkdir -p "$T/evil"
cp "$TORCH/gpt-neox-tiny-bin/config.json" "$T/evil/"
cp "$TORCH/hostile/os-system.bin" "$T/evil/pytorch_model.bin"
bad "$T/evil" "qid import: error: '$T/evil/pytorch_model.bin' entry 'archive/data.pkl': global 'os.system' is not allowed" "a pickle calling os.system"
cp "$TORCH/legacy.bin" "$T/evil/pytorch_model.bin"
bad "$T/evil" "in the legacy format (torch < 1.6 or _use_new_zipfile_serialization=False), which qid does not read (hint:" "legacy torch format"
bad "$HF/gpt-neox-tiny" "no pytorch_model.bin or pytorch_model.bin.index.json in" "--from torch without .bin files" --from torch

# the families added with issue 16: what import reports and inspect shows
like "$($QID import "$HF/opt-tiny-postln-proj" -o "$T/opt.h5" 2>&1)" "N = 18112" "opt (post-LN, projection): import reports N"
like "$($QID inspect "$T/opt.h5")" "relu, post-LayerNorm, no final norm, embedding width 16 (project_in/out)" "inspect: opt's MLP, norms and projection"
$QID import "$HF/bloom-tiny" -o "$T/bloom.h5" >/dev/null 2>&1
like "$($QID inspect "$T/bloom.h5")" "6 heads x 8, ALiBi" "inspect: bloom's ALiBi"
$QID import "$HF/gpt2-tiny-scaled" -o "$T/gpt2.h5" >/dev/null 2>&1
like "$($QID inspect "$T/gpt2.h5")" "4 heads x 8, learned positions, scores / (layer + 1)" "inspect: gpt2's learned positions and layer-scaled scores"
