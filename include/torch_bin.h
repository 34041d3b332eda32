/* torch_bin.h - a strict reader of PyTorch checkpoints as torch.save writes
 * them since torch 1.6 (pytorch_model.bin): a zip archive (read with
 * libzip) holding <dir>/data.pkl, the state dict's pickle (interpreted by
 * torch_pickle.c, which never calls anything), and one stored entry
 * <dir>/data/<key> per storage with its raw little-endian bytes.
 *
 * The archive is untrusted input: libzip checks the central directory
 * against the local headers (ZIP_CHECKCONS); every storage must be a stored
 * (uncompressed) entry whose size equals its declared element count times
 * the element size, inside the file; the pickle entry is at most
 * QID_TP_MAX_PICKLE bytes, and no entry may declare more bytes than the
 * file could hold (a zip bomb is refused before anything is inflated).
 * Tensors may share a storage, start at an offset in it and have any
 * strides inside it; reads return them row-major.
 *
 * The legacy format (torch < 1.6, or _use_new_zipfile_serialization=False:
 * pickles concatenated without a zip) is refused with a message that says
 * so and how to convert it. Fuzzed by test/fuzz/fuzz_torch_bin.c.
 *
 * Does not: map names to a model (import.c does) or convert dtypes. */
#ifndef QID_TORCH_BIN_H
#define QID_TORCH_BIN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "torch_pickle.h"

typedef struct qid_tb_file {
    char *path; /* for messages */
    uint64_t file_size;
    qid_tp_dict dict; /* tensors sorted by name, their storages */
    uint64_t *entry;  /* per storage: libzip index of data/<key> */
    void *zip;        /* zip_t */
    void *mem;        /* the bytes, for qid_tb_open_buffer */
} qid_tb_file;

/* Opens a torch.save archive and reads its state dict. On failure returns
 * QID_E_FORMAT (or QID_E_IO) with one line naming path, and *out is empty. */
int qid_tb_open(const char *path, qid_tb_file *out, qid_error *err);

/* The same for an archive held in memory (len bytes, copied); name is used
 * in messages. For tests and the fuzzer. */
int qid_tb_open_buffer(const void *data, size_t len, const char *name, qid_tb_file *out, qid_error *err);

/* The tensor called name, or NULL. */
const qid_tp_tensor *qid_tb_find(const qid_tb_file *f, const char *name);

/* Number of elements of t. */
uint64_t qid_tb_numel(const qid_tp_tensor *t);

/* Reads t's elements row-major into dst (numel * element size bytes),
 * gathering strided tensors. */
int qid_tb_read(const qid_tb_file *f, const qid_tp_tensor *t, void *dst, qid_error *err);

void qid_tb_free(qid_tb_file *f);

#endif
