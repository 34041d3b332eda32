#!/usr/bin/env python3
"""make_gguf_vectors.py - writes test/fixtures/quant/gguf_vectors.txt,
bit-exact vectors of llama.cpp's legacy GGUF block formats for
test/test_quant_gguf.c.

The producer is the `gguf` package from PyPI (gguf-py, gguf/quants.py: numpy
ports of ggml-quants.c's quantize_row_{q8_0,q4_0,q4_1,q5_0,q5_1}_ref and
dequantize_row_*), version printed into the file's header. Each row of
float32 weights is quantized with gguf.quants.quantize into ggml's packed
blocks and dequantized with gguf.quants.dequantize.

Rows: random normal ones of one to four blocks, and awkward ones: all zeros,
constant positive and negative, negative-only, a huge outlier among small
values, magnitudes near fp16's limits (d rounds to a subnormal half, to zero,
to the largest half), float32 subnormals beside a normal maximum, exact ties
of the code rounding (Q8_0 x * id = k + 0.5, Q4_0 x * id = k - 0.5), and a
block whose largest magnitude appears twice with both signs (the first one
sets Q4_0's sign).

Output: one case per line,
    <format> <n> <x_1> .. <x_n> <y_1> .. <y_n> <packed>
x, y float32 bit patterns in hex (input, dequantized output), packed the
blocks as hex bytes. Lines starting with '#' are comments.

Usage: python3 tools/make_gguf_vectors.py [OUT]   (needs gguf and numpy)
Not run by `make check`: the fixture is committed.
"""
import importlib.metadata
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

FORMATS = {"q8_0": T.Q8_0, "q4_0": T.Q4_0, "q4_1": T.Q4_1, "q5_0": T.Q5_0, "q5_1": T.Q5_1}


def rows(rng):
    f = np.float32
    out = []
    for nb in (1, 2, 4):
        out.append(rng.standard_normal(32 * nb).astype(f))
    out.append((rng.standard_normal(64) * 0.02).astype(f))  # weight-like scale
    out.append(np.zeros(32, f))
    out.append(np.full(32, 0.75, f))
    out.append(np.full(32, -3.0, f))
    out.append(-np.abs(rng.standard_normal(32)).astype(f) - f(0.1))  # negative only
    r = (rng.standard_normal(32) * 0.01).astype(f)
    r[7] = f(40.0)  # one outlier
    out.append(r)
    for scale in (3e5, 6e4, 1e-5, 1e-9, 1e-30):  # fp16 overflow of d .. d flushed to 0
        out.append((rng.standard_normal(32) * scale).astype(f))
    r = (rng.standard_normal(32) * 1e-39).astype(f)  # float32 subnormals
    r[3] = f(1e-3)
    out.append(r)
    # ties: Q8_0 with amax 127 has d = id = 1 and x = k + 0.5 rounds away from 0;
    # Q4_0/Q5_0 with max -8 / -16 have id = 1 and x = k - 0.5 lands on an integer
    t = np.array([127, -127, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 3.5, -7.5, 100.5, -126.5] + [0.25] * 20, f)
    out.append(t)
    t = np.array([-8, 0.5, -0.5, 1.5, -1.5, 2.5, 7.5, -7.5, 6.5, 0.0] + [0.25, -0.25] * 11, f)
    out.append(t)
    t = np.array([-16, 0.5, -0.5, 15.5, -15.5, 3.5] + [0.25, -0.75] * 13, f)
    out.append(t)
    r = rng.standard_normal(32).astype(f)
    r[5], r[20] = f(9.0), f(-9.0)  # equal magnitudes, + first
    out.append(r)
    r = rng.standard_normal(32).astype(f)
    r[4], r[9] = f(-9.0), f(9.0)  # equal magnitudes, - first
    out.append(r)
    # Q4_1/Q5_1 ties: min 0, max 15 / 31 give d = id = 1; x = k + 0.5 truncates after + 0.5
    out.append(np.array([0, 15, 0.5, 1.5, 14.5, 7.5, 2.25] + [3.0] * 25, f))
    out.append(np.array([0, 31, 0.5, 1.5, 30.5, 15.5, 2.25] + [3.0] * 25, f))
    return out


def hexf(a):
    return " ".join("%08x" % v for v in a.view(np.uint32))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/quant/gguf_vectors.txt"
    rng = np.random.default_rng(20261205)
    data = rows(rng)
    lines = [
        "# GGUF legacy block vectors: tools/make_gguf_vectors.py, producer gguf %s (numpy %s)"
        % (importlib.metadata.version("gguf"), np.__version__),
        "# <format> <n> <x f32 hex x n> <y f32 hex x n> <packed blocks hex>",
    ]
    for name, qt in FORMATS.items():
        for x in data:
            with np.errstate(all="ignore"):
                packed = quants.quantize(x.reshape(1, -1), qt)
                y = quants.dequantize(packed, qt).reshape(-1).astype(np.float32)
            lines.append("%s %d %s %s %s" % (name, x.size, hexf(x), hexf(y), packed.tobytes().hex()))
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("wrote %d cases to %s" % (len(lines) - 2, path))


if __name__ == "__main__":
    main()
