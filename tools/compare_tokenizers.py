#!/usr/bin/env python3
"""compare_tokenizers.py - qid's ids against the `tokenizers` package, one
for one, on real mixed text: the acceptance check of issue 15.

    /tmp/venv/bin/pip install tokenizers h5py
    /tmp/venv/bin/python tools/compare_tokenizers.py --qid build/qid --mb 10 \
        test/fixtures/tokenizers/*.json [any real tokenizer.json]

For each tokenizer.json: the corpus below (at least --mb MB of UTF-8) is
written as JSON lines (one document a line), run through `qid tokens
--tokenizer FILE --seq-len 1` (on 1 thread and on --threads threads) and
through Tokenizer.encode_batch(docs, add_special_tokens=False); the id
streams must be equal. The first difference is printed with its document
and context. Exit status 1 when any tokenizer differs.

The corpus, assembled offline from what a Debian machine has (corpus()):
  - man pages in 25 languages (/usr/share/man/<lang>/: de fr ja ko ru zh_CN
    uk pl tr ...; troff source, real prose in those scripts), interleaved;
  - English documentation (/usr/share/doc: changelogs, copyright files,
    READMEs) and the English man pages;
  - source code: C headers (/usr/include) and Python (the interpreter's
    standard library);
  - stress documents (seeded): emoji and ZWJ sequences, astral characters,
    combining marks, runs of spaces, tabs and newlines, CRLF, special-token
    look-alikes, numbers, mixed scripts.
Invalid UTF-8 is not in it: qid refuses it with the byte offset (Python
cannot pass it to tokenizers either; test/cmd_tokens.t checks the error).
"""
import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAN_LANGS = ["cs", "da", "de", "es", "fi", "fr", "hr", "hu", "id", "it", "ja", "ko", "nl", "pl", "pt", "pt_BR",
             "ro", "ru", "sl", "sr", "sv", "tr", "uk", "zh_CN", "zh_TW"]


def _read(path):
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError):
        return None


def _files(root, pattern, limit=None):
    root = Path(root)
    if not root.is_dir():
        return []
    out = sorted(p for p in root.rglob(pattern) if p.is_file() and not p.is_symlink())
    return out[:limit] if limit else out


STRESS_PARTS = [
    "👋🏽", "🧑‍💻", "🇩🇪🇯🇵", "❤️‍🔥", "😀😃😄😁", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟙𝟚𝟛", "𐍈𐌰", "𝄞𝄢", "🀄", "\U0010FFFD",
    "e\u0301", "n\u0303", "A\u030a", "ﬁ", "ＡＢＣ１２３", "İ", "ΣΑΣ", "ß", "\u200b", "\u00a0", "\u3000", "\u2028",
    "\u0085", "\ufeff", " ", "  ", "   ", "    ", "        ", " " * 24, " " * 30, "\t", "\t\t", " \t ", "\n",
    "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r", " \n", "\n ", "'s", "'S", "'ll", "'ve", "n't", "'RE",
    "<|endoftext|>", "<s>", "</s>", "<|im_start|>", "<0x41>", "▁", "▁▁", "12345", "3.14", "1,000,000", "٣٤٥",
    "hello", "world", "Straße", "Ελληνικά", "日本語", "中文", "한국어", "עברית", "العربية", "हिन्दी", "ไทย",
    "{", "}", "();", "->", "==", "!==", "/*", "*/", "#include", "def ", "return", "...", "—", "–", "«", "»",
]


def stress(n_docs, seed=15):
    rng = random.Random(seed)
    for _ in range(n_docs):
        yield "".join(rng.choice(STRESS_PARTS) for _ in range(rng.randint(1, 400)))


def corpus(max_bytes):
    """Documents (str) of real mixed text, deterministic on one machine, until max_bytes of UTF-8."""
    man = {lang: _files(f"/usr/share/man/{lang}", "*.gz") for lang in MAN_LANGS}
    sources = [
        [p for lang_files in zip(*[man[l] for l in MAN_LANGS if man[l]]) for p in lang_files],  # interleaved
        _files("/usr/share/doc", "*", 4000),
        _files("/usr/share/man/man1", "*.gz", 2000) + _files("/usr/share/man/man3", "*.gz", 2000),
        _files("/usr/include", "*.h", 4000),
        _files(os.path.dirname(os.__file__), "*.py", 3000),
    ]
    stress_docs = list(stress(3000))
    total, k = 0, 0
    iters = [iter(s) for s in sources]
    while total < max_bytes and iters:
        for it in list(iters):
            for path in it:
                text = _read(path)
                if text and text.strip():
                    break
            else:
                iters.remove(it)
                continue
            yield text
            total += len(text.encode("utf-8"))
            if k < len(stress_docs):
                yield stress_docs[k]
                total += len(stress_docs[k].encode("utf-8"))
                k += 1
            if total >= max_bytes:
                return


def qid_ids(qid, tok_path, data, threads, tmp):
    out = Path(tmp) / f"ids-{threads}.h5"
    if out.exists():
        out.unlink()
    t0 = time.time()
    r = subprocess.run([qid, "tokens", "--tokenizer", str(tok_path), "--from", str(data), "--format", "jsonl",
                        "--seq-len", "1", "--threads", str(threads), "-o", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"qid tokens failed: {r.stderr.strip()}")
    import h5py
    with h5py.File(out, "r") as f:
        return f["tokens"][:, 0].astype("int64").tolist(), time.time() - t0, r.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qid", default="build/qid")
    ap.add_argument("--mb", type=float, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("tokenizers", nargs="+")
    a = ap.parse_args()
    from tokenizers import Tokenizer

    docs = list(corpus(int(a.mb * (1 << 20))))
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "corpus.jsonl"
        with open(data, "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
        print(f"corpus: {len(docs)} documents, {nbytes / 1e6:.1f} MB of UTF-8")
        for path in a.tokenizers:
            tok = Tokenizer.from_file(path)
            t0 = time.time()
            ref_docs = [e.ids for e in tok.encode_batch(docs, add_special_tokens=False)]
            t_ref = time.time() - t0
            ref = [i for ids in ref_docs for i in ids]
            got, t_qid, _ = qid_ids(a.qid, path, data, 1, tmp)
            got_t, _, _ = qid_ids(a.qid, path, data, a.threads, tmp)
            same = got == ref
            print(f"{path}: {len(ref)} ids from tokenizers, {len(got)} from qid: "
                  f"{'EQUAL' if same else 'DIFFERENT'}; --threads {a.threads} "
                  f"{'identical' if got_t == got else 'DIFFERENT'} "
                  f"(qid {t_qid:.1f} s incl. writing, tokenizers encode_batch {t_ref:.1f} s)")
            if not same or got_t != got:
                bad += 1
            if not same:
                pos = next((i for i, (x, y) in enumerate(zip(got, ref)) if x != y), min(len(got), len(ref)))
                acc = 0
                for d, ids in enumerate(ref_docs):
                    if acc + len(ids) > pos:
                        break
                    acc += len(ids)
                j = pos - acc
                print(f"  first difference at id {pos} (document {d}, its id {j}): qid {got[pos:pos + 8]} vs "
                      f"tokenizers {ref[pos:pos + 8]}")
                enc = tok.encode(docs[d], add_special_tokens=False)
                if j < len(enc.offsets):
                    s, e = enc.offsets[max(0, j - 3)][0], enc.offsets[min(len(enc.offsets) - 1, j + 3)][1]
                    print(f"  text there: {docs[d][s:e]!r}; tokens {enc.tokens[max(0, j - 3):j + 4]}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
