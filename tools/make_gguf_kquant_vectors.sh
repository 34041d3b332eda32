#!/bin/sh
# make_gguf_kquant_vectors.sh - writes test/fixtures/quant/gguf_kquant_vectors.txt,
# bit-exact vectors of llama.cpp's k-quants (Q2_K..Q6_K) and IQ4_NL for
# test/test_quant_gguf.c, produced by ggml's own C code.
#
# Usage: tools/make_gguf_kquant_vectors.sh GGML_TREE [OUT]
#   GGML_TREE  a llama.cpp checkout (or its ggml/ folder, or the vendor/llama.cpp
#              of PyPI's llama-cpp-python source package:
#              pip download llama-cpp-python --no-binary :all: --no-deps)
#   OUT        default test/fixtures/quant/gguf_kquant_vectors.txt
#
# It compiles tools/gguf_kquant_driver.c with the tree's ggml/src/ggml-quants.c
# (nothing of ggml is copied into qid) as ISO C with -O2 -ffp-contract=off
# -DNDEBUG: each float operation rounded on its own, as qid computes them. A
# llama.cpp built for a CPU with FMA in GNU C mode may contract a*b+c in
# ggml-quants.c and then differ in rare last bits of the k-quant search.
# The header of OUT records the ggml version, the git commit when the tree is
# a git checkout, and the SHA-256 of ggml-quants.c.
# Not run by `make check`: the fixture is committed.
set -eu
tree=${1:?usage: tools/make_gguf_kquant_vectors.sh GGML_TREE [OUT]}
out=${2:-test/fixtures/quant/gguf_kquant_vectors.txt}
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$tree/ggml/src/ggml-quants.c" ]; then ggml=$tree/ggml; else ggml=$tree; fi
[ -f "$ggml/src/ggml-quants.c" ] || { echo "make_gguf_kquant_vectors.sh: no ggml/src/ggml-quants.c under '$tree'" >&2; exit 1; }
ver=$(sed -n 's/^set(GGML_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\))/\2/p' "$ggml/CMakeLists.txt" | paste -sd. -)
commit=$(git -C "$tree" rev-parse HEAD 2>/dev/null || echo "not a git checkout")
sum=$(sha256sum "$ggml/src/ggml-quants.c" | cut -d' ' -f1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '#pragma once\n#define GGML_VERSION "%s"\n#define GGML_COMMIT "%s"\n' "$ver" "$commit" > "$work/ggml-version.h"
${CC:-cc} -std=c11 -O2 -ffp-contract=off -DNDEBUG -D_GNU_SOURCE -w -I"$work" -I"$ggml/include" -I"$ggml/src" \
    "$here/gguf_kquant_driver.c" "$ggml/src/ggml-quants.c" -o "$work/driver" -lm
"$work/driver" "ggml $ver (commit: $commit; ggml-quants.c sha256 $sum; $(${CC:-cc} --version | head -1))" > "$work/out"
mv "$work/out" "$out"
echo "wrote $out ($(grep -c "^x " "$out") inputs, $(grep -vc "^[#x]" "$out") vectors)"
