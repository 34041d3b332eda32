#!/usr/bin/env python3
"""bench_torch_gptq.py - the PyTorch side of test/bench_quant.c's GPTQ timing.

Runs the same algorithm as qid's gptq.c (the reference GPTQ restated in
tools/make_gptq_fixture.py: float64 H and Cholesky chain, float32 column loop)
on the weights and activations that bench_quant wrote, with the same thread
count, and prints one JSON object per layer on stdout:
    {"rows": R, "cols": C, "hessian_s": ..., "seconds": ..., "loss": ..., "torch": "..."}
where seconds is the best of --reps runs of fasterquant (int4, group 128,
symmetric, block 128, damp 0.01) and hessian_s the time of add_batch over all
samples. The quantized weights go to DIR/q_<R>x<C>.f32 for bench_quant to
compare with its own.

Inputs in DIR (raw little-endian float32, row-major): x.f32 (N x C) and
w_<R>x<C>.f32 for each --layer RxC.

Usage: python3 tools/bench_torch_gptq.py --dir DIR --threads T --samples N
       --layer 768x768 --layer 3072x768 [--reps 3]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_gptq_fixture import GPTQ  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--samples", type=int, required=True)
    ap.add_argument("--layer", action="append", required=True)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with torch.no_grad():
        for shape in a.layer:
            rows, cols = (int(v) for v in shape.split("x"))
            x = np.fromfile(os.path.join(a.dir, "x.f32"), dtype="<f4").reshape(a.samples, cols)
            w = np.fromfile(os.path.join(a.dir, "w_%s.f32" % shape), dtype="<f4").reshape(rows, cols)
            X = torch.from_numpy(x)
            W = torch.from_numpy(w)
            g = GPTQ(cols)
            t0 = time.perf_counter()
            g.add_batch(X.reshape(a.samples, 1, cols))
            hs = time.perf_counter() - t0
            best = None
            for _ in range(a.reps):
                t0 = time.perf_counter()
                Q, loss = g.fasterquant(W, ("int", 4, True), blocksize=128, percdamp=0.01, groupsize=128)
                dt = time.perf_counter() - t0
                best = dt if best is None or dt < best else best
            Q.numpy().astype("<f4").tofile(os.path.join(a.dir, "q_%s.f32" % shape))
            print(json.dumps(dict(rows=rows, cols=cols, hessian_s=hs, seconds=best, loss=loss,
                                  torch=torch.__version__)), flush=True)


if __name__ == "__main__":
    main()
