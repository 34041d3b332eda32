#!/bin/sh
# make_gguf_mix_fixture.sh - writes test/fixtures/quant/gguf_mix_types.txt,
# llama-quantize's own per-tensor type choice for real models, for
# test/test_gguf_mix.c.
#
# Usage: tools/make_gguf_mix_fixture.sh LLAMA_CPP_TREE [OUT]
#
# The producer is llama.cpp's tests/snapshots/*.schema (what
# tests/test-quant-type-selection.cpp checks llama_quant_compute_types
# against: for each ftype, its default type and every tensor whose type
# differs from it). This keeps, for Meta-Llama-3.1-70B-Instruct (llama, 80
# layers, grouped-query attention: llama.cpp's "70B" rule), Qwen3-0.6B and
# Qwen3-14B, the model line (n_embd, n_ff, n_vocab, n_layer, n_head, n_head_kv) and
# the sections of the ftypes qid names (Q4_0, Q5_0, Q8_0, Q6_K, Q3_K_S ..
# Q5_K_M), lower-cased; the header records the llama.cpp commit.
# Not run by `make check`: the fixture is committed.
set -eu
tree=${1:?usage: tools/make_gguf_mix_fixture.sh LLAMA_CPP_TREE [OUT]}
out=${2:-test/fixtures/quant/gguf_mix_types.txt}
snap=$tree/tests/snapshots
[ -d "$snap" ] || { echo "make_gguf_mix_fixture.sh: no tests/snapshots under '$tree'" >&2; exit 1; }
commit=$(git -C "$tree" rev-parse HEAD 2>/dev/null || echo "not a git checkout")
{
    echo "# llama-quantize's per-tensor types: tools/make_gguf_mix_fixture.sh from llama.cpp tests/snapshots (commit $commit)"
    echo "# model NAME n_embd n_ff n_vocab n_layer n_head n_head_kv; [ftype] default; then TENSOR TYPE where it differs"
    for m in meta-llama-3.1-70b-instruct qwen3-0.6b qwen3-14b; do
        awk -v m="$m" '
            /^# n_embd=/ { gsub(/[a-z_]+=/, ""); sub(/^# /, ""); gsub(/,/, ""); print "model " m " " $0; next }
            /^\[/ { keep = ($1 ~ /^\[(Q4_0|Q5_0|Q8_0|Q6_K|Q3_K_S|Q3_K_M|Q3_K_L|Q4_K_S|Q4_K_M|Q5_K_S|Q5_K_M)\]$/) }
            keep && NF == 2 { print tolower($0) }
        ' "$snap/$m.schema"
    done
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(grep -c '^\[' "$out") sections)"
