/* tensor_source.h - one interface over the files a Hugging Face checkpoint
 * keeps its tensors in: safetensors (safetensors.c) and torch.save archives
 * (torch_bin.c, pytorch_model.bin). The importer (import.c) finds, checks
 * and reads tensors through it without knowing which format holds them.
 *
 * Does not: parse either format itself, or map names to a model. */
#ifndef QID_TENSOR_SOURCE_H
#define QID_TENSOR_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "safetensors.h"
#include "torch_bin.h"

typedef enum qid_tsrc_format {
    QID_TSRC_SAFETENSORS = 0, /* *.safetensors */
    QID_TSRC_TORCH = 1,       /* pytorch_model*.bin (torch.save zip archives) */
} qid_tsrc_format;

/* "safetensors" / "torch". */
const char *qid_tsrc_format_name(qid_tsrc_format f);

/* One tensor of a source file, in either format. */
typedef struct qid_tsrc_tensor {
    const char *name;   /* owned by the source */
    qid_st_dtype dtype; /* safetensors' dtype names serve both formats */
    int ndim;
    uint64_t shape[QID_ST_MAX_DIMS];
    uint64_t nbytes;  /* numel * dtype size: what qid_tsrc_read writes */
    const void *impl; /* the format's own record */
} qid_tsrc_tensor;

typedef struct qid_tsrc {
    qid_tsrc_format format;
    size_t n;
    qid_tsrc_tensor *tensors; /* sorted by name */
    qid_st_file st;
    qid_tb_file tb;
} qid_tsrc;

/* Opens path as format and lists its tensors. On failure *out is empty and
 * err holds the format reader's one-line message. */
int qid_tsrc_open(const char *path, qid_tsrc_format format, qid_tsrc *out, qid_error *err);

/* The tensor called name, or NULL. */
const qid_tsrc_tensor *qid_tsrc_find(const qid_tsrc *s, const char *name);

/* Reads t's elements, row-major, into dst (t->nbytes bytes). */
int qid_tsrc_read(const qid_tsrc *s, const qid_tsrc_tensor *t, void *dst, qid_error *err);

void qid_tsrc_close(qid_tsrc *s);

#endif
