#!/usr/bin/env python3
"""make_divergence_fixture.py - writes test/fixtures/divergence/expected.txt:
the divergence report (include/divergence.h) computed in float64 by NumPy
from the logits qid dumped, so test/test_divergence.c checks qid's report
against an independent computation.

Inputs in DIR (written by `build/test/divergence.t --dump DIR`): meta.txt
("windows W seq_len L vocab V score_from 0 format F"), tokens.u32 (W x L
ids), ref.f32 and q.f32 (W x L x V float32 logits of the 16-bit and the
quantized model; position p predicts token p+1, every prediction scored).

Definitions, as llama.cpp's `llama-perplexity --kl-divergence` prints them
(tools/perplexity/perplexity.cpp) but exact (its base log-probabilities are
16-bit): per prediction KL = sum p_ref (ln p_ref - ln p_q), same = argmax
agreement (first index), dp = p_q(next) - p_ref(next); means with SE
sqrt(var / (n - 1)) (var with divisor n), percentiles by np.percentile's
default linear interpolation, top-1 SE sqrt(p (1 - p) / (n - 1)), RMS
sqrt(mean dp^2) with SE SE(dp^2) / (2 RMS), ln(PPL(Q)/PPL(ref)) = mean
(nll_q - nll_ref) with the SE of the differences.

Output: "name value" lines (%.17g), '#' lines are comments.

Usage: python3 tools/make_divergence_fixture.py [DIR]   (needs numpy)
"""
import sys

import numpy as np


def log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))


def mean_se(x):
    n = len(x)
    return x.mean(), np.sqrt(((x - x.mean()) ** 2).sum() / n / (n - 1))


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/divergence"
    meta = open(f"{d}/meta.txt").read().split()
    kv = dict(zip(meta[0::2], meta[1::2]))
    W, L, V = int(kv["windows"]), int(kv["seq_len"]), int(kv["vocab"])
    ids = np.fromfile(f"{d}/tokens.u32", dtype="<u4").reshape(W, L)
    lr = np.fromfile(f"{d}/ref.f32", dtype="<f4").reshape(W, L, V).astype(np.float64)
    lq = np.fromfile(f"{d}/q.f32", dtype="<f4").reshape(W, L, V).astype(np.float64)
    lpr, lpq = log_softmax(lr[:, :-1]), log_softmax(lq[:, :-1])
    nxt = ids[:, 1:]
    nll_r = -np.take_along_axis(lpr, nxt[..., None], axis=-1)[..., 0].ravel()
    nll_q = -np.take_along_axis(lpq, nxt[..., None], axis=-1)[..., 0].ravel()
    kl = (np.exp(lpr) * (lpr - lpq)).sum(axis=-1).ravel()
    same = (lr[:, :-1].argmax(axis=-1) == lq[:, :-1].argmax(axis=-1)).ravel().astype(np.float64)
    dp = np.exp(-nll_q) - np.exp(-nll_r)
    n = len(kl)
    out = {}
    out["kl"], out["kl_se"] = mean_se(kl)
    out["kl_median"] = np.percentile(kl, 50)
    for name, f in [("p99_9", 99.9), ("p99", 99), ("p95", 95), ("p90", 90), ("p10", 10), ("p5", 5), ("p1", 1)]:
        out["kl_" + name] = np.percentile(kl, f)
    out["kl_max"] = kl.max()
    p = same.mean()
    out["top1"], out["top1_se"] = p, np.sqrt(p * (1 - p) / (n - 1))
    out["dp_mean"], out["dp_se"] = mean_se(dp)
    mse, mse_se = mean_se(dp**2)
    out["dp_rms"] = np.sqrt(mse)
    out["dp_rms_se"] = 0.5 / out["dp_rms"] * mse_se
    out["dp_max"] = dp.max()
    for name, f in [("p99_9", 99.9), ("p99", 99), ("p95", 95), ("p90", 90), ("p75", 75), ("median", 50),
                    ("p25", 25), ("p10", 10), ("p5", 5), ("p1", 1), ("p0_1", 0.1)]:
        out["dp_" + name] = np.percentile(dp, f)
    out["dp_min"] = dp.min()
    out["ln_ppl_ratio"], out["ln_ppl_ratio_se"] = mean_se(nll_q - nll_r)
    with open(f"{d}/expected.txt", "w") as fh:
        fh.write(f"# divergence report of {kv['format']} vs 16-bit over {n} predictions, NumPy {np.__version__} float64\n")
        fh.write("# made by tools/make_divergence_fixture.py from the logits beside this file\n")
        for k, v in out.items():
            fh.write(f"{k} {float(v):.17g}\n")


if __name__ == "__main__":
    main()
