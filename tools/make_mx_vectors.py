#!/usr/bin/env python3
"""make_mx_vectors.py - writes test/fixtures/quant/mx_vectors.txt, bit-exact
OCP MX v1.0 test vectors for test/test_quant_mx.c.

The conversion is computed here independently of the C code, in exact
rational arithmetic (fractions.Fraction) and by a different method: every
element type's finite values are enumerated from its bit layout, and a
scaled value V/X goes to the nearest of them (ties to the even code, i.e.
mantissa LSB 0, or the even integer for MXINT), saturating to the largest
normal. The shared scale is X = 2^(floor(log2 max|V|) - emax_elem), clamped
to 2^-127..2^127, from frexp of the float32 maximum; a block with NaN or Inf
gets the NaN scale 0xFF (elements all NaN, codes written as 0), an all-zero
block gets 2^-127. E4M3/E5M2 results are also checked against torch's float8
casts of the clamped scaled values.

Output: one case per line,
    <format> <n> <x_1> .. <x_n> <y_1> .. <y_n> <packed>
where x and y are float32 bit patterns in hex (input, fused quantize-
dequantize output) and packed is the packed row as hex bytes (per block: the
E8M0 byte, then element codes LSB-first, element i at bits [i*d, i*d+d)).
Lines starting with '#' are comments.

With --rtn it writes test/fixtures/quant/rtn_vectors.txt instead: a small
weight matrix and its RTN quantize-dequantize under several integer formats,
computed by the reference GPTQ quantizer's code (IST-DASLab/gptq quant.py:
Quantizer.find_params with perchannel=True, quantize) run in torch:
    matrix <rows> <cols> <w bits x rows*cols>
    <format> <q bits x rows*cols>

Usage: python3 tools/make_mx_vectors.py [OUT]          (needs numpy; torch optional)
       python3 tools/make_mx_vectors.py --rtn [OUT]    (needs torch)
Not run by `make check`: the fixtures are committed.
"""
import math
import random
import struct
import sys
from fractions import Fraction as F

import numpy as np

try:
    import torch
except ImportError:  # the cross-check is optional
    torch = None

# name -> (element, bits, block)
FORMATS = {
    "mxfp4": ("e2m1", 4, 32),
    "mxfp6-e3m2": ("e3m2", 6, 32),
    "mxfp6-e2m3": ("e2m3", 6, 32),
    "mxfp8-e4m3": ("e4m3", 8, 32),
    "mxfp8-e5m2": ("e5m2", 8, 32),
    "mxint8": ("int", 8, 32),
    "mxint3-b128": ("int", 3, 128),
    "mxint4-b16": ("int", 4, 16),
    "mxint2": ("int", 2, 32),
    "mxfp4-b16": ("e2m1", 4, 16),
}

# ebits, mbits, bias
FP = {"e2m1": (2, 1, 1), "e3m2": (3, 2, 3), "e2m3": (2, 3, 1), "e4m3": (4, 3, 7), "e5m2": (5, 2, 15)}


def fp_table(elem):
    """Sorted (magnitude, code) of the finite non-negative values."""
    eb, mb, bias = FP[elem]
    out = []
    for code in range(1 << (eb + mb)):
        ef, m = code >> mb, code & ((1 << mb) - 1)
        if elem == "e5m2" and ef == 31:
            continue  # Inf / NaN
        if elem == "e4m3" and ef == 15 and m == 7:
            continue  # NaN
        if ef == 0:
            v = F(m, 1 << mb) * F(2) ** (1 - bias)
        else:
            v = (1 + F(m, 1 << mb)) * F(2) ** (ef - bias)
        out.append((v, code))
    out.sort()
    return out


TABLES = {e: fp_table(e) for e in FP}
# Facts from the spec's element tables, to catch a wrong layout above.
assert [v for v, _ in TABLES["e2m1"]] == [F(0), F(1, 2), F(1), F(3, 2), F(2), F(3), F(4), F(6)]
assert TABLES["e3m2"][-1][0] == 28 and TABLES["e3m2"][1][0] == F(1, 16)
assert TABLES["e2m3"][-1][0] == F(15, 2) and TABLES["e2m3"][1][0] == F(1, 8)
assert TABLES["e4m3"][-1][0] == 448 and TABLES["e4m3"][1][0] == F(1, 512)
assert TABLES["e5m2"][-1][0] == 57344 and TABLES["e5m2"][1][0] == F(1, 65536)
EMAX = {"e2m1": 2, "e3m2": 4, "e2m3": 2, "e4m3": 8, "e5m2": 15, "int": 0}


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def bits_f32(u):
    return struct.unpack("<f", struct.pack("<I", u))[0]


def exact_f32(fr, neg=False):
    """Float32 bits of the rational fr (must be exact), with -0 when neg.
    The one value that does not fit is MXINT's -2 at scale 2^127: -2^128
    overflows to -Inf, as IEEE rounding of X * P gives."""
    if abs(fr) >= F(2) ** 128:
        return 0xFF800000 if fr < 0 else 0x7F800000
    v = np.float32(float(fr))
    assert F(float(v)) == fr, (fr, v)
    if fr == 0:
        return 0x80000000 if neg else 0
    return f32_bits(float(v))


def round_fp(elem, a):
    """Nearest table value to a >= 0, ties to even code, saturating."""
    tab = TABLES[elem]
    if a >= tab[-1][0]:
        return tab[-1]
    for (lo, clo), (hi, chi) in zip(tab, tab[1:]):
        if lo <= a <= hi:
            if a - lo < hi - a:
                return lo, clo
            if a - lo > hi - a:
                return hi, chi
            return (lo, clo) if clo % 2 == 0 else (hi, chi)
    raise AssertionError(a)


def round_int(bits, v):
    """Two's complement d-bit element with implicit 2^-(d-2): (value, code)."""
    t = v * 2 ** (bits - 2)
    k = math.floor(t)
    r = t - k
    if r > F(1, 2) or (r == F(1, 2) and k % 2 == 1):
        k += 1
    k = max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, k))
    return F(k, 2 ** (bits - 2)), k & ((1 << bits) - 1)


def quantize_block(elem, bits, xs):
    """xs: float32 values (python floats). Returns (y bits list, packed bytes)."""
    nbytes = 1 + (len(xs) * bits + 7) // 8
    if any(not math.isfinite(x) for x in xs):
        return [0x7FC00000] * len(xs), bytes([0xFF]) + bytes(nbytes - 1)
    amax = max(abs(x) for x in xs)
    if amax == 0:
        s = -127
    else:
        s = math.frexp(amax)[1] - 1 - EMAX[elem]
        s = max(-127, min(127, s))
    X = F(2) ** s
    ys, codes = [], []
    for x in xs:
        v = F(x) / X
        neg = math.copysign(1.0, x) < 0
        if elem == "int":
            q, code = round_int(bits, v)
            ys.append(exact_f32(q * X))
        else:
            mag, code = round_fp(elem, abs(v))
            if neg:
                code |= 1 << (bits - 1)
            ys.append(exact_f32((-mag if neg else mag) * X, neg))
        codes.append(code)
    acc = 0
    for i, c in enumerate(codes):
        acc |= c << (i * bits)
    packed = bytes([s + 127]) + acc.to_bytes(nbytes - 1, "little")
    if torch is not None and elem in ("e4m3", "e5m2"):
        dt = torch.float8_e4m3fn if elem == "e4m3" else torch.float8_e5m2
        mx = float(TABLES[elem][-1][0])
        scaled = torch.tensor([float(F(x) / X) for x in xs], dtype=torch.float64).float()
        ref = scaled.clamp(-mx, mx).to(dt).float().double() * float(X)
        ours = torch.tensor([bits_f32(y) for y in ys], dtype=torch.float64)
        assert torch.equal(ref, ours), (elem, xs)
    return ys, packed


def quantize_row(fmt, xs):
    elem, bits, block = FORMATS[fmt]
    ys, packed = [], b""
    for i in range(0, len(xs), block):
        y, p = quantize_block(elem, bits, xs[i : i + block])
        ys += y
        packed += p
    return ys, packed


def f32(x):
    return float(np.float32(x))


def elem_values(fmt):
    """Finite non-negative element values of a format, ascending."""
    elem, bits, _ = FORMATS[fmt]
    if elem == "int":
        return [F(k, 2 ** (bits - 2)) for k in range(0, 1 << (bits - 1))]
    return [v for v, _ in TABLES[elem]]


def cases_for(fmt, rng):
    elem, bits, block = FORMATS[fmt]
    emax = EMAX[elem]
    vals = elem_values(fmt)
    out = []

    def pad(xs, anchor):
        """Fill a block: the anchor fixes amax (so X), the rest is xs."""
        xs = [anchor] + xs
        while len(xs) < block:
            xs.append(0.0)
        return xs[:block]

    # Scale 2^s0: anchor amax = 2^(s0 + emax) * 1.5 keeps floor(log2) = s0 + emax.
    for s0 in (0, -3):
        X = F(2) ** s0
        anchor = float(F(3, 2) * 2 ** emax * X)
        # ties: midpoints of neighbours, both signs; and just off them
        mids = [(a + b) / 2 for a, b in zip(vals, vals[1:])]
        if len(mids) > 62:  # keep the ends, thin the middle binades
            mids = mids[:16] + mids[16:-16:3] + mids[-16:]
        xs = []
        for m in mids:
            xs.append(float(m * X))
            xs.append(-float(m * X))
        tie_blocks = [pad(xs[i : i + block - 1], anchor) for i in range(0, len(xs), block - 1)]
        out.append(("ties s=%d" % s0, sum(tie_blocks, [])))
        near = []
        for m in mids[: block - 1]:
            mx = float(m * X)
            up = np.nextafter(np.float32(mx), np.float32(np.inf))
            down = np.nextafter(np.float32(mx), np.float32(-np.inf))
            near += [float(up), float(down)]
        near_blocks = [pad(near[i : i + block - 1], -anchor) for i in range(0, len(near), block - 1)]
        out.append(("beside ties s=%d" % s0, sum(near_blocks, [])))
    # saturation: amax / X just under 2^(emax+1), above the largest normal
    top = vals[-1]
    for hi in (F(2) ** (emax + 1) * F(2 ** 24 - 1, 2 ** 24), (top + F(2) ** (emax + 1)) / 2, top * F(1025, 1024)):
        if hi >= F(2) ** (emax + 1):
            continue
        xs = [f32(float(hi)), -f32(float(hi)), float(top), -float(top)]
        xs += [f32(float(top + (hi - top) * k / 7)) for k in range(1, 7)]
        out.append(("saturation", pad(xs, f32(float(hi)))))
    # subnormals of the element (and below them) at X = 1
    if elem != "int":
        sub = [v for v in vals if 0 < v < F(2) ** (1 - FP[elem][2])]
        xs = []
        for v in sub + [sub[0] / 2, sub[0] * F(3, 4), sub[0] / 4, sub[0] * F(5, 4)]:
            xs += [float(v), -float(v)]
        out.append(("subnormals", pad(xs, float(F(3, 2) * 2 ** emax))))
    # zeros, signed zeros
    out.append(("zeros", [0.0] * block))
    out.append(("signed zeros", [(-0.0 if i % 3 else 0.0) for i in range(block)]))
    # non-finite blocks next to a normal one
    normal = [f32(rng.gauss(0, 1)) for _ in range(block)]
    for bad in (float("nan"), float("inf"), float("-inf")):
        xs = [f32(rng.gauss(0, 1)) for _ in range(block)]
        xs[block // 3] = bad
        out.append(("non-finite %s" % bad, xs + normal))
    # scale clamped at 2^-127: float32 subnormal and tiny inputs
    xs = [bits_f32(rng.randrange(1, 1 << 23)) * rng.choice((1, -1)) for _ in range(block)]
    out.append(("fp32 subnormals", xs))
    xs = [f32(rng.gauss(0, 1) * 2.0 ** -125) for _ in range(block)]
    out.append(("tiny", xs))
    # largest float32
    xs = [f32(rng.uniform(-1, 1) * 3.0e38) for _ in range(block)]
    xs[0] = float(np.finfo(np.float32).max)
    xs[1] = -xs[0]  # MXINT: -2 * 2^127 overflows to -Inf
    out.append(("huge", xs))
    # random rows, block magnitudes spread over many binades, a partial block
    for n in ((3 * block, 2 * block + block // 2 + 1) if block < 64 else (block + block // 2 + 1,)):
        xs = []
        for i in range(n):
            if i % block == 0:
                mag = 2.0 ** rng.randint(-30, 30)
            xs.append(f32(rng.gauss(0, 1) * mag))
        out.append(("random n=%d" % n, xs))
    return out


def gptq_quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def gptq_find_params(x, bits, sym, mse, norm=2.4, grid=100, maxshrink=0.8):
    """quant.py Quantizer.find_params(x, weight=True) with perchannel=True."""
    maxq = torch.tensor(2**bits - 1)
    tmp = torch.zeros(x.shape[0])
    xmin = torch.minimum(x.min(1)[0], tmp)
    xmax = torch.maximum(x.max(1)[0], tmp)
    if sym:
        xmax = torch.maximum(torch.abs(xmin), xmax)
        tmp = xmin < 0
        if torch.any(tmp):
            xmin[tmp] = -xmax[tmp]
    tmp = (xmin == 0) & (xmax == 0)
    xmin[tmp] = -1
    xmax[tmp] = +1
    scale = (xmax - xmin) / maxq
    zero = torch.full_like(scale, (maxq + 1) / 2) if sym else torch.round(-xmin / scale)
    if mse:
        best = torch.full([x.shape[0]], float("inf"))
        for i in range(int(maxshrink * grid)):
            p = 1 - i / grid
            xmin1, xmax1 = p * xmin, p * xmax
            scale1 = (xmax1 - xmin1) / maxq
            zero1 = torch.round(-xmin1 / scale1) if not sym else zero
            q = gptq_quantize(x, scale1.unsqueeze(1), zero1.unsqueeze(1), maxq)
            q -= x
            q.abs_()
            q.pow_(norm)
            err = torch.sum(q, 1)
            tmp = err < best
            if torch.any(tmp):
                best[tmp] = err[tmp]
                scale[tmp] = scale1[tmp]
                zero[tmp] = zero1[tmp]
    return scale.reshape(-1, 1), zero.reshape(-1, 1), maxq


RTN_FORMATS = [  # name, bits, group (0 = channel), sym, mse
    ("int4-g128-sym", 4, 128, True, False),
    ("int3-g128-asym", 3, 128, False, False),
    ("int2-g64-sym", 2, 64, True, False),
    ("int8-channel-sym", 8, 0, True, False),
    ("int8-channel-asym", 8, 0, False, False),
    ("int4-g64-sym-mse", 4, 64, True, True),
    ("int3-g128-asym-mse", 3, 128, False, True),
]


def write_rtn(path):
    gen = torch.Generator().manual_seed(20240611)
    rows, cols = 5, 256
    w = torch.randn(rows, cols, generator=gen) * torch.exp(torch.randn(rows, 1, generator=gen))
    w[1, :128] = w[1, :128].abs()  # no negative weight in a group: quant.py keeps xmin = 0
    w[2, 128:] = 0.0  # all-zero group: [-1, 1]
    w[3, 5] = 30.0  # an outlier, which the MSE search clips
    # every value of row 4, columns 0..127, is a tie for a 4-bit symmetric
    # scale of 1/8 (range +-0.9375 = 7.5 / 8): round-half-even decides
    w[4, :128] = (torch.arange(128) % 16 - 8).float() * 0.125 + 0.0625
    lines = ["# RTN vectors from quant.py's code in torch, written by tools/make_mx_vectors.py --rtn; do not edit."]
    lines.append("matrix %d %d " % (rows, cols) + " ".join("%08x" % f32_bits(float(v)) for v in w.flatten()))
    for name, bits, g, sym, mse in RTN_FORMATS:
        q = torch.zeros_like(w)
        step = g or cols
        for i in range(0, cols, step):
            scale, zero, maxq = gptq_find_params(w[:, i : i + step].clone(), bits, sym, mse)
            q[:, i : i + step] = gptq_quantize(w[:, i : i + step], scale, zero, maxq)
        lines.append(name + " " + " ".join("%08x" % f32_bits(float(v)) for v in q.flatten()))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%s: %d formats" % (path, len(RTN_FORMATS)))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--rtn":
        return write_rtn(sys.argv[2] if len(sys.argv) > 2 else "test/fixtures/quant/rtn_vectors.txt")
    path = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/quant/mx_vectors.txt"
    rng = random.Random(20240611)
    lines = [
        "# OCP MX v1.0 test vectors, generated by tools/make_mx_vectors.py; do not edit.",
        "# <format> <n> <x bits x n> <y bits x n> <packed hex>",
    ]
    count = 0
    for fmt in FORMATS:
        for label, xs in cases_for(fmt, rng):
            xs = [f32(x) if math.isfinite(x) else x for x in xs]
            ys, packed = quantize_row(fmt, xs)
            lines.append("# %s: %s" % (fmt, label))
            fields = [fmt, str(len(xs))]
            fields += ["%08x" % f32_bits(x) for x in xs]
            fields += ["%08x" % y for y in ys]
            fields.append(packed.hex())
            lines.append(" ".join(fields))
            count += 1
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%s: %d cases" % (path, count))


if __name__ == "__main__":
    main()
