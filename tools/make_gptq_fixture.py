#!/usr/bin/env python3
"""make_gptq_fixture.py - writes test/fixtures/gptq/, the PyTorch side of the
GPTQ parity test in test/test_gptq.c.

The algorithm is the reference GPTQ (IST-DASLab/gptq, gptq.py: GPTQ.add_batch
and GPTQ.fasterquant; quant.py: Quantizer with perchannel=True, quantize),
restated here line for line, with the changes qid makes (include/gptq.h):
  - H is float64 (the reference keeps float32); the Cholesky chain runs in
    float64 and U = cholesky(cholesky_inverse(cholesky(H)), upper=True) is
    rounded to float32; the column loop is float32 as in the reference.
  - act-order sorts with stable=True (qid breaks ties by column index).
  - micro-blocks (include/gptq.h): inside each lazy block, columns are
    taken `micro` at a time; the micro-block is quantized from its values at
    its start, then the reference's per-column error feedback runs over it.
    This is the formula E = (W - Q) U[j:k, j:k]^-1, W[:, k:] -= E U[j:k, k:]
    computed by forward substitution; check_microblock_formula() verifies
    the identity in float64 on the fixture.
  - formats besides INT: MX (OCP v1.0 E8M0 shared scale per block of 32,
    elements rounded to nearest even and saturated), with the block's scale
    found from the current weights when the sweep reaches the block; static
    groups take every group's parameters from the original W.
  - no damping retry here (the fixture's H is positive definite).

The calibration activations are chosen so H is exact in float64 in any
summation order: X = code / 16 with int8 codes, added in batches of 128 and
384 rows (n + m = 128 and 512, so n/(n+m) and sqrt(2/(n+m)) are powers of
two and every partial sum is an exactly representable multiple of 2^-16).
qid's H must therefore equal this H bit for bit. Three columns of X are zero
(dead columns).

Files (raw little-endian, row-major):
  x.i8          512 x 256 int8 activation codes (X = code / 16)
  w.f32         64 x 256 float32 weights
  q_<name>.f32  64 x 256 float32 GPTQ results, one per variant
  fixture.json  shapes, batches, H checks, and per variant the format name,
                options, file, and the reference's loss (sum of Losses)

Usage: python3 tools/make_gptq_fixture.py [OUTDIR]   (needs numpy and torch)
Not run by `make check`: the fixture is committed.
"""
import json
import math
import os
import sys

import numpy as np
import torch

ROWS, COLS, NSAMP = 64, 256, 512
BATCHES = [128, 384]
X_SCALE = 1.0 / 16.0
DEAD = [5, 77, 200]
SEED = 20240607


# ---- quant.py (reference), restated --------------------------------------

def quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


class Quantizer:
    """quant.py's Quantizer restricted to perchannel=True, weight=True."""

    def __init__(self, bits, sym):
        self.maxq = torch.tensor(2 ** bits - 1)
        self.sym = sym
        self.scale = torch.zeros(1)

    def find_params(self, x):
        x = x.flatten(1)
        tmp = torch.zeros(x.shape[0])
        xmin = torch.minimum(x.min(1)[0], tmp)
        xmax = torch.maximum(x.max(1)[0], tmp)
        if self.sym:
            xmax = torch.maximum(torch.abs(xmin), xmax)
            tmp = xmin < 0
            if torch.any(tmp):
                xmin[tmp] = -xmax[tmp]
        tmp = (xmin == 0) & (xmax == 0)
        xmin[tmp] = -1
        xmax[tmp] = +1
        self.scale = (xmax - xmin) / self.maxq
        if self.sym:
            self.zero = torch.full_like(self.scale, (self.maxq + 1) / 2)
        else:
            self.zero = torch.round(-xmin / self.scale)
        self.scale = self.scale.reshape(-1, 1)
        self.zero = self.zero.reshape(-1, 1)

    def ready(self):
        return torch.all(self.scale != 0)

    def quant(self, w):
        return quantize(w.unsqueeze(1), self.scale, self.zero, self.maxq).flatten()


# ---- MX (OCP v1.0) in float32 ------------------------------------------------

MX_ELEMS = {
    "mxfp4": dict(mbits=1, emin=0, emax=2, max_norm=6.0),
    "mxfp8-e4m3": dict(mbits=3, emin=-6, emax=8, max_norm=448.0),
}


class MXQuantizer:
    """Shared scale per row of a block; element rounding as quant_mx.c."""

    def __init__(self, name):
        self.e = MX_ELEMS[name]
        self.block = 32

    def find_params(self, x):
        amax = x.abs().max(1)[0]
        _, ex = torch.frexp(amax)
        s = (ex - 1) - self.e["emax"]
        s = torch.where(amax > 0, s, torch.full_like(s, -127)).clamp(-127, 127)
        self.X = torch.ldexp(torch.ones_like(amax), s).reshape(-1, 1)

    def quant(self, w):
        X = self.X.flatten()
        v = w / X
        a = v.abs()
        _, ex = torch.frexp(a)
        ex = torch.clamp(ex - 1, min=self.e["emin"])
        quantum = torch.ldexp(torch.ones_like(a), ex - self.e["mbits"])
        q = torch.round(a / quantum) * quantum
        q = torch.clamp(q, max=self.e["max_norm"])
        return X * torch.copysign(q, v)


# ---- gptq.py (reference), restated ------------------------------------------

class GPTQ:
    def __init__(self, columns):
        self.columns = columns
        self.H = torch.zeros((columns, columns), dtype=torch.float64)
        self.nsamples = 0

    def add_batch(self, inp):
        # inp is (m, 1, cols): m sequences of one token, so tmp = m samples.
        tmp = inp.shape[0]
        inp = inp.reshape((-1, inp.shape[-1])).t()
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = math.sqrt(2 / self.nsamples) * inp.double()
        self.H += inp.matmul(inp.t())

    def fasterquant(self, W, fmt, blocksize=128, percdamp=.01, groupsize=-1, actorder=False,
                    static_groups=False, micro=1):
        """Returns (Q, loss). fmt: ("int", bits, sym) or ("mx", name)."""
        W = W.clone().float()
        H = self.H.clone()
        if fmt[0] == "int":
            quantizer = Quantizer(fmt[1], fmt[2])
            new_quantizer = lambda: Quantizer(fmt[1], fmt[2])
        else:
            quantizer = MXQuantizer(fmt[1])
            new_quantizer = lambda: MXQuantizer(fmt[1])
            groupsize = quantizer.block
        if fmt[0] == "int" and not quantizer.ready():
            quantizer.find_params(W)

        dead = torch.diag(H) == 0
        H[dead, dead] = 1
        W[:, dead] = 0

        if static_groups:
            groups = []
            for i in range(0, self.columns, groupsize):
                q1 = new_quantizer()
                q1.find_params(W[:, i:(i + groupsize)])
                groups.append(q1)

        if actorder:
            perm = torch.argsort(torch.diag(H), descending=True, stable=True)
            W = W[:, perm]
            H = H[perm][:, perm]
            invperm = torch.argsort(perm)

        Losses = torch.zeros_like(W)
        Q = torch.zeros_like(W)

        damp = percdamp * torch.mean(torch.diag(H))
        diag = torch.arange(self.columns)
        H[diag, diag] += damp
        H = torch.linalg.cholesky(H)
        H = torch.cholesky_inverse(H)
        H = torch.linalg.cholesky(H, upper=True)
        Hinv = H.float()

        for i1 in range(0, self.columns, blocksize):
            i2 = min(i1 + blocksize, self.columns)
            count = i2 - i1

            W1 = W[:, i1:i2].clone()
            Q1 = torch.zeros_like(W1)
            Err1 = torch.zeros_like(W1)
            Losses1 = torch.zeros_like(W1)
            Hinv1 = Hinv[i1:i2, i1:i2]

            for j in range(0, count, micro):
                k = min(j + micro, count)
                Qm = torch.zeros((W1.shape[0], k - j), dtype=W1.dtype)
                for i in range(j, k):
                    if groupsize != -1:
                        if not static_groups:
                            if (i1 + i) % groupsize == 0:
                                if fmt[0] == "int":
                                    quantizer.find_params(W[:, (i1 + i):(i1 + i + groupsize)])
                                else:
                                    quantizer.find_params(W1[:, i:(i + groupsize)])
                        else:
                            idx = i1 + i
                            if actorder:
                                idx = perm[idx]
                            quantizer = groups[idx // groupsize]
                    Qm[:, i - j] = quantizer.quant(W1[:, i])
                for i in range(j, k):
                    w = W1[:, i]
                    d = Hinv1[i, i]
                    q = Qm[:, i - j]
                    Q1[:, i] = q
                    Losses1[:, i] = (w - q) ** 2 / d ** 2
                    err1 = (w - q) / d
                    W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
                    Err1[:, i] = err1

            Q[:, i1:i2] = Q1
            Losses[:, i1:i2] = Losses1 / 2

            W[:, i2:] -= Err1.double().matmul(Hinv[i1:i2, i2:].double()).float()

        loss = torch.sum(Losses).item()
        if actorder:
            Q = Q[:, invperm]
        return Q, loss


def check_microblock_formula(W, H, micro, mxq):
    """In float64: the forward-substitution form used above equals the micro-block formula of include/gptq.h,
    E[:, j:k] = (W - Q)[:, j:k] U[j:k, j:k]^-1; W[:, k:i2] -= E U[j:k, k:i2];
    W[:, i2:] -= E[:, i1:i2] U[i1:i2, i2:]. Quantization is frozen (Q from
    the first form) so only the linear algebra is compared. Returns the max
    abs difference of the pre-quantization weights seen by each micro-block."""
    n = W.shape[1]
    Hd = H.clone()
    dead = torch.diag(Hd) == 0
    Hd[dead, dead] = 1
    Hd[range(n), range(n)] += 0.01 * torch.mean(torch.diag(Hd))
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(Hd)), upper=True)
    W0 = W.double().clone()
    W0[:, dead] = 0
    B = 128

    def run(formula):
        Wc = W0.clone()
        seen = []
        for i1 in range(0, n, B):
            i2 = min(i1 + B, n)
            E = torch.zeros((Wc.shape[0], i2 - i1), dtype=torch.float64)
            for j in range(i1, i2, micro):
                k = min(j + micro, i2)
                seen.append(Wc[:, j:k].clone())
                Qm = torch.round(Wc[:, j:k] * 8) / 8  # a fixed grid stands in for the quantizer
                if formula:
                    Ej = torch.linalg.solve_triangular(U[j:k, j:k], Wc[:, j:k] - Qm, upper=True, left=False)
                    Wc[:, k:i2] -= Ej @ U[j:k, k:i2]
                else:
                    Ej = torch.zeros_like(Qm)
                    for c in range(j, k):
                        e = (Wc[:, c] - Qm[:, c - j]) / U[c, c]
                        Wc[:, c:i2] -= e.unsqueeze(1) @ U[c, c:i2].unsqueeze(0)
                        Ej[:, c - j] = e
                Wc[:, j:k] = Qm
                E[:, j - i1:k - i1] = Ej
            Wc[:, i2:] -= E @ U[i1:i2, i2:]
        return torch.cat(seen, 1)

    return (run(True) - run(False)).abs().max().item()


VARIANTS = [
    # name, format name, fmt tuple, kwargs
    ("int4_g128", "int4-g128-sym", ("int", 4, True), dict(groupsize=128)),
    ("int3_g128_damp01", "int3-g128-sym", ("int", 3, True), dict(groupsize=128, percdamp=0.1)),
    ("int2_g128", "int2-g128-sym", ("int", 2, True), dict(groupsize=128)),
    ("int4_channel_asym", "int4-channel-asym", ("int", 4, False), dict()),
    ("int4_g32_asym_b64", "int4-g32-asym", ("int", 4, False), dict(groupsize=32, blocksize=64)),
    ("int4_g128_act", "int4-g128-sym", ("int", 4, True), dict(groupsize=128, actorder=True)),
    ("int3_g64_act", "int3-g64-sym", ("int", 3, True), dict(groupsize=64, actorder=True)),
    ("int4_g32_act_static", "int4-g32-sym", ("int", 4, True),
     dict(groupsize=32, actorder=True, static_groups=True)),
    ("mxfp4_mb32", "mxfp4", ("mx", "mxfp4"), dict(micro=32)),
    ("mxfp4_mb1", "mxfp4", ("mx", "mxfp4"), dict(micro=1)),
    ("mxfp8_e4m3_mb64", "mxfp8-e4m3", ("mx", "mxfp8-e4m3"), dict(micro=64)),
    ("mxfp4_act_static_mb32", "mxfp4", ("mx", "mxfp4"), dict(micro=32, actorder=True, static_groups=True)),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "test", "fixtures",
                                                              "gptq")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)

    # Correlated inputs X = Z A (A a random mixing with uneven column scales),
    # on the grid 1/16 as int8 codes, three dead columns.
    Z = rng.standard_normal((NSAMP, COLS))
    A = rng.standard_normal((COLS, COLS)) / math.sqrt(COLS) + 0.5 * np.eye(COLS)
    A *= np.exp(rng.uniform(-1.0, 1.0, COLS))[None, :]
    Xf = Z @ A
    Xf *= 30.0 / Xf.std()
    codes = np.clip(np.rint(Xf), -127, 127).astype(np.int8)
    codes[:, DEAD] = 0
    X = torch.from_numpy(codes.astype(np.float32) * np.float32(X_SCALE))

    W = rng.standard_normal((ROWS, COLS)).astype(np.float32) * np.float32(0.05)
    W[rng.integers(0, ROWS, 12), rng.integers(0, COLS, 12)] *= np.float32(8.0)  # a few outliers
    Wt = torch.from_numpy(W)

    g = GPTQ(COLS)
    r0 = 0
    for m in BATCHES:
        g.add_batch(X[r0:r0 + m].reshape(m, 1, COLS))
        r0 += m
    H = g.H

    codes.tofile(os.path.join(out, "x.i8"))
    W.astype("<f4").tofile(os.path.join(out, "w.f32"))

    variants = []
    for name, fmt_name, fmt, kw in VARIANTS:
        opts = dict(blocksize=128, percdamp=0.01, groupsize=-1, actorder=False, static_groups=False, micro=1)
        opts.update(kw)
        Q, loss = g.fasterquant(Wt, fmt, **opts)
        fname = "q_%s.f32" % name
        Q.numpy().astype("<f4").tofile(os.path.join(out, fname))
        variants.append(dict(name=name, format=fmt_name, percdamp=opts["percdamp"], block=opts["blocksize"],
                             micro_block=opts["micro"], act_order=int(opts["actorder"]),
                             static_groups=int(opts["static_groups"]), file=fname, loss=loss))
        print("%-24s %-18s loss %.6g" % (name, fmt_name, loss))

    dmax = check_microblock_formula(Wt, H, 32, None)
    print("micro-block formula vs forward substitution (float64): max |diff| %.3g" % dmax)
    assert dmax < 1e-9, dmax

    Hn = H.numpy()
    meta = dict(
        rows=ROWS, cols=COLS, nsamples=NSAMP, batches=BATCHES, x_scale=X_SCALE, dead=DEAD, seed=SEED,
        x="x.i8", w="w.f32",
        h_trace=float(np.trace(Hn)), h_sum=float(Hn.sum()),
        h_entries=[[i, j, float(Hn[i, j])] for (i, j) in [(0, 0), (1, 0), (17, 3), (255, 254), (128, 64), (5, 5)]],
        torch=torch.__version__, microblock_formula_maxdiff=dmax,
        variants=variants)
    with open(os.path.join(out, "fixture.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
