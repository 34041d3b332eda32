#!/usr/bin/env python3
"""make_stop_fixture.py - writes test/fixtures/stop/windows.txt: the
per-window NLL differences (quantized - 16-bit) and token counts of a few
GPTQ tasks of a results store (the embedded demo's, `make demo`), the
population test/test_stop.c draws replicates from to measure the coverage
of adaptive evaluation's 95% interval (eval.h qid_eval_stop).

Tasks: GPTQ at 2, 3, 4 and 8 bits on the last checkpoint of the smallest
and of the largest model (by params): eight tasks from 2-bit (QiD large,
settled early) to 8-bit (QiD near zero, relative target out of reach).

Output: '#' comments, then per task a line "task NAME N" followed by N
lines "d n" (d: %.9g nats, n: tokens).

Usage: python3 tools/make_stop_fixture.py STORE [OUT]   (needs numpy, h5py)
"""
import sys

import h5py
import numpy as np


def main():
    store = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else "test/fixtures/stop/windows.txt"
    f = h5py.File(store, "r")
    t = f["tasks"][...]
    nll, tok = f["window_nll"][...], f["window_tokens"][...]
    s = lambda r, c: r[c].decode() if isinstance(r[c], bytes) else r[c]
    ok = [r for r in t if r["status"] == 0]
    base = {(s(r, "ckpt_sha256")): r for r in ok if s(r, "method") == "baseline"}
    models = sorted({(int(r["params"]), s(r, "model")) for r in ok if s(r, "method") == "gptq"})
    picks = [models[0][1], models[-1][1]]
    with open(out, "w") as fh:
        fh.write(f"# per-window NLL differences of GPTQ tasks of {store.split('/')[-1]}\n")
        fh.write("# made by tools/make_stop_fixture.py\n")
        for m in picks:
            last = max(int(r["step"]) for r in ok if s(r, "model") == m)
            for bits in (2, 3, 4, 8):
                r = [r for r in ok if s(r, "model") == m and int(r["step"]) == last and s(r, "method") == "gptq"
                     and int(r["elem_bits"]) == bits][-1]
                b = base[s(r, "ckpt_sha256")]
                o, k, ob = int(r["nll_offset"]), int(r["windows"]), int(b["nll_offset"])
                d = nll[o:o + k] - nll[ob:ob + k]
                n = tok[o:o + k]
                fh.write(f"task {m}-step{last}-gptq{bits} {k}\n")
                for di, ni in zip(d, n):
                    fh.write(f"{di:.9g} {int(ni)}\n")


if __name__ == "__main__":
    main()
