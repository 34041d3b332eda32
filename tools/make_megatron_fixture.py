#!/usr/bin/env python3
"""make_megatron_fixture.py - writes the Megatron indexed datasets that
test/cmd_tokens.t reads (test/fixtures/megatron/), with numpy only.

The bytes follow the writer Pythia's pre-tokenized Pile was made with:
EleutherAI/gpt-neox, megatron/data/indexed_dataset.py at commit
1d482247d8791f7df04ba676cb8c328bfc5e59cd: MMapIndexedDatasetBuilder.add_item
appends a sequence's ids to the .bin, end_document appends len(sizes) to
doc_idx (which starts as [0]), and MMapIndexedDataset.Index.writer writes
magic b'MMIDIDX\\x00\\x00', '<Q' version 1, '<B' dtype code, '<Q' len(sizes),
'<Q' len(doc_idx), then sizes as int32, pointers (running byte offsets,
size * itemsize) as int64 and doc_idx as int64. Written here without torch.

Each dataset NAME gets NAME.idx, NAME.bin and NAME.expected: one line per
sequence, "DOC SEQ id id id ...", the ids in order, which the test compares
with what qid stored.

    python3 tools/make_megatron_fixture.py test/fixtures/megatron
"""
import struct
import sys
from pathlib import Path

import numpy as np

CODES = {np.uint8: 1, np.int8: 2, np.int16: 3, np.int32: 4, np.int64: 5, np.float64: 6, np.float32: 7, np.uint16: 8}


def write(prefix, dtype, documents):
    """documents: a list of documents, each a list of sequences (lists of ids)."""
    sizes, doc_idx = [], [0]
    with open(f"{prefix}.bin", "wb") as data:
        for doc in documents:
            for seq in doc:
                a = np.array(seq, dtype=dtype)
                data.write(a.tobytes(order="C"))
                sizes.append(a.size)
            doc_idx.append(len(sizes))
    itemsize = np.dtype(dtype).itemsize
    pointers, address = [], 0
    for s in sizes:
        pointers.append(address)
        address += s * itemsize
    with open(f"{prefix}.idx", "wb") as idx:
        idx.write(b"MMIDIDX\x00\x00")
        idx.write(struct.pack("<Q", 1))
        idx.write(struct.pack("<B", CODES[dtype]))
        idx.write(struct.pack("<Q", len(sizes)))
        idx.write(struct.pack("<Q", len(doc_idx)))
        idx.write(np.array(sizes, dtype=np.int32).tobytes(order="C"))
        idx.write(np.array(pointers, dtype=np.int64).tobytes(order="C"))
        idx.write(np.array(doc_idx, dtype=np.int64).tobytes(order="C"))
    with open(f"{prefix}.expected", "w") as ex:
        k = 0
        for d, doc in enumerate(documents):
            for seq in doc:
                ex.write(f"{d} {k} " + " ".join(str(int(v)) for v in seq) + "\n")
                k += 1


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/megatron")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(15)
    # uint16 as Pythia (vocabulary 50304): 5 documents of 1-3 sequences of 1-40 tokens
    docs = [[list(rng.integers(0, 50304, rng.integers(1, 41))) for _ in range(rng.integers(1, 4))] for _ in range(5)]
    write(out / "u16", np.uint16, docs)
    # int32 (Megatron's choice for vocabularies of 65500 and more): ids up to 151935 as Qwen2's
    docs = [[list(rng.integers(0, 151936, rng.integers(1, 30))) for _ in range(rng.integers(1, 3))] for _ in range(4)]
    docs[1].append([0])  # a one-token sequence
    write(out / "i32", np.int32, docs)


if __name__ == "__main__":
    main()
