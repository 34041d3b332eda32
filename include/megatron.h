/* megatron.h - Megatron / GPT-NeoX indexed datasets (`MMapIndexedDataset`,
 * the `.idx` + `.bin` pair Pythia's pre-tokenized Pile ships as) read as a
 * token stream for `qid tokens --from DATA.idx`.
 *
 * The `.idx` (little-endian): 9-byte magic "MMIDIDX\0\0", uint64 version 1,
 * uint8 dtype code (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6/7 floats,
 * 8 uint16), uint64 sequence count n, uint64 document-index length m,
 * int32 sizes[n] (tokens per sequence), int64 pointers[n] (byte offset of
 * each sequence in the `.bin`), int64 doc_idx[m] (document d is sequences
 * doc_idx[d] .. doc_idx[d+1]-1; the writer starts it with 0, so a file of D
 * documents has m = D + 1). The `.bin` is the raw token stream.
 *
 * Does not: write indexed datasets (tools/make_megatron_fixture.py does, for
 * the tests), read the older "TNTIDX" (IndexedDataset) or cached formats, or
 * read float token types. Nothing here is collective. */
#ifndef QID_MEGATRON_H
#define QID_MEGATRON_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "sha256.h"
#include "tokens.h"

#define QID_MEGATRON_HEADER_BYTES 34 /* magic 9 + version 8 + dtype 1 + n 8 + m 8 */

/* A parsed, validated .idx. The arrays point into the buffer given to the
 * parser (little-endian, possibly unaligned: read them with the accessors). */
typedef struct qid_megatron_idx {
    int dtype_code;     /* 1, 2, 3, 4, 5 or 8 */
    const char *dtype;  /* "uint8", "int8", "int16", "int32", "int64", "uint16" */
    size_t elem_size;   /* bytes per id: 1, 2, 4 or 8 */
    int is_signed;      /* negative ids are rejected when read */
    uint64_t n_seqs;    /* sequences */
    uint64_t n_doc_idx; /* doc_idx entries (documents + 1 as Megatron writes it) */
    uint64_t n_tokens;  /* sum of all sizes */
    const uint8_t *sizes, *pointers, *doc_idx;
} qid_megatron_idx;

/* Parses and validates an .idx held in buf[0, len); bin_size is the size of
 * the .bin beside it; name is used in messages only. Checks the magic, the
 * version, the dtype code, that the file is exactly header + 4n + 8n + 8m
 * bytes, that every size is >= 0 and every sequence [pointer, pointer +
 * size * elem_size) lies inside the .bin (no overflow), and that doc_idx is
 * non-decreasing within [0, n].
 *
 * Returns QID_OK and fills *idx, or QID_E_FORMAT with one line
 * "invalid Megatron index '<name>': <what>". Never reads outside buf[0, len)
 * and never allocates (the fuzz target's entry point). */
int qid_megatron_idx_parse(const void *buf, size_t len, uint64_t bin_size, const char *name, qid_megatron_idx *idx,
                           qid_error *err);

/* Sequence i's size (tokens) and byte pointer; document d's first sequence
 * (d < n_doc_idx). No bounds checks: the parser made them. */
uint64_t qid_megatron_size(const qid_megatron_idx *idx, uint64_t i);
uint64_t qid_megatron_pointer(const qid_megatron_idx *idx, uint64_t i);
uint64_t qid_megatron_doc(const qid_megatron_idx *idx, uint64_t d);

/* Which sequences to read: all (the default), sequences [first, last) or
 * documents [first, last) (document d = sequences doc_idx[d]..doc_idx[d+1]). */
typedef enum qid_megatron_unit {
    QID_MEGATRON_ALL = 0,
    QID_MEGATRON_SEQUENCES = 1,
    QID_MEGATRON_DOCUMENTS = 2,
} qid_megatron_unit;

/* An open dataset: the .idx mapped read-only, the .bin open. */
typedef struct qid_megatron {
    char idx_path[1024], bin_path[1024];
    void *map; /* the .idx */
    size_t map_len;
    int bin_fd;
    uint64_t bin_size;
    qid_megatron_idx idx;
    uint64_t seq_first, seq_last; /* the selection, in sequences */
    uint64_t n_tokens;            /* ids in the selection */
    /* reading state (qid_megatron_feed) */
    uint64_t seq, offset; /* next sequence and the ids of it already read */
    uint8_t *raw;
    size_t raw_cap;
    qid_sha256 hash; /* of the selected .bin bytes in order */
} qid_megatron;

/* Opens idx_path (must end in ".idx") and the ".bin" beside it, validates
 * the index (qid_megatron_idx_parse) and selects [first, last) in unit
 * (ignored for QID_MEGATRON_ALL; last 0 means "to the end"). Errors: QID_E_IO
 * (a file cannot be opened or mapped), QID_E_FORMAT (the index is invalid),
 * QID_E_INVALID (a selection outside the file or empty), each one line
 * naming the file; on error m is closed. */
int qid_megatron_open(const char *idx_path, qid_megatron_unit unit, uint64_t first, uint64_t last, qid_megatron *m,
                      qid_error *err);

/* A qid_tokens_feed (tokens.h) that reads the selection's ids in order,
 * hashing the .bin bytes it reads; m must stay open while it is used. */
void qid_megatron_feed(qid_megatron *m, qid_tokens_feed *feed);

/* Unmaps and closes (m may be closed or failed to open). */
void qid_megatron_close(qid_megatron *m);

#endif
