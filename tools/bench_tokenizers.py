#!/usr/bin/env python3
"""The `tokenizers` side of `make bench` (test/bench_tokens.c): encodes the
documents of a JSON-lines file ({"text": ...} a line) with a tokenizer.json
on the given number of threads, as qid does, and reports the speed.

    python3 tools/bench_tokenizers.py --tokenizer FILE.json --jsonl DATA.jsonl --threads 1 [--repeat 2]

The thread count must be set before tokenizers starts its pool, so run it
with RAYON_NUM_THREADS=N (the bench does). Timed: Tokenizer.encode_batch
over every document, add_special_tokens=False (reading and JSON parsing
are not timed; qid's figure includes them). The best of --repeat runs.
Prints one JSON object: tokens, seconds, tokens_per_s, bytes, version.
Exits 3 when the package is missing, so the caller can skip the column.
"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--jsonl", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    try:
        import tokenizers
        from tokenizers import Tokenizer
    except ImportError as e:
        print(f"tokenizers is not installed: {e}", file=sys.stderr)
        sys.exit(3)
    tok = Tokenizer.from_file(a.tokenizer)
    with open(a.jsonl, encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f if line.strip()]
    best, n = None, 0
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        enc = tok.encode_batch(docs, add_special_tokens=False)
        dt = time.perf_counter() - t0
        n = sum(len(e.ids) for e in enc)
        best = dt if best is None or dt < best else best
    print(json.dumps({"tokens": n, "seconds": best, "tokens_per_s": n / best, "threads": a.threads,
                      "bytes": sum(len(d.encode("utf-8")) for d in docs), "version": tokenizers.__version__}))


if __name__ == "__main__":
    main()
