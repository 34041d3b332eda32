/* tensor_source.c - safetensors and torch.save files behind one tensor
 * list. See tensor_source.h for the contract. */
#include "tensor_source.h"

#include <stdlib.h>
#include <string.h>

const char *qid_tsrc_format_name(qid_tsrc_format f) { return f == QID_TSRC_TORCH ? "torch" : "safetensors"; }

int qid_tsrc_open(const char *path, qid_tsrc_format format, qid_tsrc *out, qid_error *err)
{
    memset(out, 0, sizeof *out);
    out->format = format;
    if (format == QID_TSRC_SAFETENSORS) {
        int rc = qid_st_open(path, &out->st, err);
        if (rc) return rc;
        out->n = out->st.n;
        out->tensors = qid_calloc(out->n ? out->n : 1, sizeof *out->tensors, "tensor list");
        for (size_t i = 0; i < out->n; i++) { /* already sorted by name */
            const qid_st_tensor *t = &out->st.tensors[i];
            qid_tsrc_tensor *d = &out->tensors[i];
            d->name = t->name;
            d->dtype = t->dtype;
            d->ndim = t->ndim;
            memcpy(d->shape, t->shape, sizeof d->shape);
            d->nbytes = t->end - t->begin;
            d->impl = t;
        }
        return QID_OK;
    }
    int rc = qid_tb_open(path, &out->tb, err);
    if (rc) return rc;
    out->n = out->tb.dict.n;
    out->tensors = qid_calloc(out->n ? out->n : 1, sizeof *out->tensors, "tensor list");
    for (size_t i = 0; i < out->n; i++) { /* sorted by name by qid_tb_open */
        const qid_tp_tensor *t = &out->tb.dict.tensors[i];
        qid_tsrc_tensor *d = &out->tensors[i];
        d->name = t->name;
        d->dtype = t->dtype;
        d->ndim = t->ndim;
        memcpy(d->shape, t->shape, sizeof d->shape);
        d->nbytes = qid_tb_numel(t) * qid_st_dtype_size(t->dtype);
        d->impl = t;
    }
    return QID_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const qid_tsrc_tensor *)a)->name, ((const qid_tsrc_tensor *)b)->name);
}

const qid_tsrc_tensor *qid_tsrc_find(const qid_tsrc *s, const char *name)
{
    qid_tsrc_tensor key = {.name = name};
    return bsearch(&key, s->tensors, s->n, sizeof *s->tensors, by_name);
}

int qid_tsrc_read(const qid_tsrc *s, const qid_tsrc_tensor *t, void *dst, qid_error *err)
{
    if (s->format == QID_TSRC_SAFETENSORS) return qid_st_read(&s->st, t->impl, dst, err);
    return qid_tb_read(&s->tb, t->impl, dst, err);
}

void qid_tsrc_close(qid_tsrc *s)
{
    if (!s) return;
    if (s->format == QID_TSRC_SAFETENSORS)
        qid_st_free(&s->st);
    else
        qid_tb_free(&s->tb);
    free(s->tensors);
    memset(s, 0, sizeof *s);
}
