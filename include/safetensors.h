/* safetensors.h - a strict reader of the safetensors format (Hugging Face):
 * an 8-byte little-endian header length, a JSON header naming every tensor's
 * dtype, shape and [begin, end) byte range, then the data section.
 *
 * The header is untrusted input: every length, offset, dtype and shape is
 * checked, byte counts must match shapes, and the tensors must tile the data
 * section exactly (as the reference implementation requires), so a truncated
 * or overlapping file is rejected before any tensor is read. Fuzzed by
 * test/fuzz/fuzz_safetensors.c.
 *
 * Does not: convert dtypes, or map tensor names to a model (import.c does). */
#ifndef QID_SAFETENSORS_H
#define QID_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define QID_ST_MAX_HEADER (100u << 20) /* the reference implementation's limit */
#define QID_ST_MAX_DIMS   8

typedef enum qid_st_dtype {
    QID_ST_BOOL,
    QID_ST_U8,
    QID_ST_I8,
    QID_ST_F8_E5M2,
    QID_ST_F8_E4M3,
    QID_ST_I16,
    QID_ST_U16,
    QID_ST_F16,
    QID_ST_BF16,
    QID_ST_I32,
    QID_ST_U32,
    QID_ST_F32,
    QID_ST_F64,
    QID_ST_I64,
    QID_ST_U64,
} qid_st_dtype;

/* "F32", "BF16", ... as in the header. */
const char *qid_st_dtype_name(qid_st_dtype dt);
size_t qid_st_dtype_size(qid_st_dtype dt);

typedef struct qid_st_tensor {
    char *name;
    qid_st_dtype dtype;
    int ndim;
    uint64_t shape[QID_ST_MAX_DIMS];
    uint64_t begin, end; /* byte range within the data section */
} qid_st_tensor;

typedef struct qid_st_file {
    char *path; /* for messages */
    uint64_t file_size;
    uint64_t data_offset; /* 8 + header length */
    size_t n;
    qid_st_tensor *tensors; /* sorted by name */
} qid_st_file;

/* Parses and validates a safetensors header. buf holds the first len bytes of
 * a file of file_size bytes (len >= 8 + header length is needed; the data
 * section need not be in buf). name is used in messages. On success fills
 * *out (free with qid_st_free); on failure returns QID_E_FORMAT with one line
 * "invalid safetensors file '<name>': <what>" and *out is empty. */
int qid_st_parse(const uint8_t *buf, size_t len, uint64_t file_size, const char *name, qid_st_file *out,
                 qid_error *err);

/* Opens path, reads its header and parses it as above. */
int qid_st_open(const char *path, qid_st_file *out, qid_error *err);

/* The tensor called name, or NULL. */
const qid_st_tensor *qid_st_find(const qid_st_file *f, const char *name);

/* Reads tensor t's bytes (t->end - t->begin) from f's file into dst. */
int qid_st_read(const qid_st_file *f, const qid_st_tensor *t, void *dst, qid_error *err);

void qid_st_free(qid_st_file *f);

#endif
