/* safetensors.c - strict, bounded parsing of safetensors headers with cJSON
 * and positioned reads of tensor bytes. See safetensors.h for the contract. */
#include "safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [QID_ST_BOOL] = {"BOOL", 1},       [QID_ST_U8] = {"U8", 1},           [QID_ST_I8] = {"I8", 1},
    [QID_ST_F8_E5M2] = {"F8_E5M2", 1}, [QID_ST_F8_E4M3] = {"F8_E4M3", 1}, [QID_ST_I16] = {"I16", 2},
    [QID_ST_U16] = {"U16", 2},         [QID_ST_F16] = {"F16", 2},         [QID_ST_BF16] = {"BF16", 2},
    [QID_ST_I32] = {"I32", 4},         [QID_ST_U32] = {"U32", 4},         [QID_ST_F32] = {"F32", 4},
    [QID_ST_F64] = {"F64", 8},         [QID_ST_I64] = {"I64", 8},         [QID_ST_U64] = {"U64", 8},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *qid_st_dtype_name(qid_st_dtype dt) { return (size_t)dt < N_DTYPES ? dtypes[dt].name : "?"; }
size_t qid_st_dtype_size(qid_st_dtype dt) { return (size_t)dt < N_DTYPES ? dtypes[dt].size : 0; }

void qid_st_free(qid_st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    memset(f, 0, sizeof *f);
}

#define BAD(...) qid_error_wrap(err, QID_E_FORMAT, __VA_ARGS__)

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const qid_st_tensor *)a)->name, ((const qid_st_tensor *)b)->name);
}

static int by_begin(const void *a, const void *b)
{
    const qid_st_tensor *x = *(const qid_st_tensor *const *)a, *y = *(const qid_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Fills t from one header entry; returns 0 or sets err (message without the
 * file prefix). */
static int parse_entry(const cJSON *e, qid_st_tensor *t, qid_error *err)
{
    if (!cJSON_IsObject(e)) return qid_error_set(err, QID_E_FORMAT, "entry '%s' is not an object", t->name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !dt->valuestring)
        return qid_error_set(err, QID_E_FORMAT, "tensor '%s' has no string 'dtype'", t->name);
    size_t k = 0;
    while (k < N_DTYPES && strcmp(dtypes[k].name, dt->valuestring) != 0)
        k++;
    if (k == N_DTYPES)
        return qid_error_set(err, QID_E_FORMAT, "tensor '%s' has unknown dtype '%.32s'", t->name, dt->valuestring);
    t->dtype = (qid_st_dtype)k;
    if (!cJSON_IsArray(shape)) return qid_error_set(err, QID_E_FORMAT, "tensor '%s' has no 'shape' array", t->name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > QID_ST_MAX_DIMS)
        return qid_error_set(err, QID_E_FORMAT, "tensor '%s' has %d dimensions (at most %d)", t->name, nd,
                             QID_ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < nd; i++) {
        if (!json_u64(cJSON_GetArrayItem(shape, i), &t->shape[i]))
            return qid_error_set(err, QID_E_FORMAT, "tensor '%s' shape[%d] is not a non-negative integer", t->name, i);
        if (t->shape[i] && numel > UINT64_MAX / t->shape[i]) overflow = 1;
        numel *= t->shape[i];
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_u64(cJSON_GetArrayItem(off, 0), &t->begin) ||
        !json_u64(cJSON_GetArrayItem(off, 1), &t->end))
        return qid_error_set(err, QID_E_FORMAT, "tensor '%s' 'data_offsets' is not two non-negative integers", t->name);
    if (t->begin > t->end)
        return qid_error_set(err, QID_E_FORMAT, "tensor '%s' data_offsets [%" PRIu64 ", %" PRIu64 ") are reversed",
                             t->name, t->begin, t->end);
    size_t es = dtypes[t->dtype].size;
    if (overflow || numel > UINT64_MAX / es || numel * es != t->end - t->begin)
        return qid_error_set(
            err, QID_E_FORMAT,
            "tensor '%s' shape needs %s%" PRIu64 " bytes of %s but data_offsets span %" PRIu64 " bytes", t->name,
            overflow || numel > UINT64_MAX / es ? "more than " : "",
            overflow || numel > UINT64_MAX / es ? UINT64_MAX : numel * es, dtypes[t->dtype].name, t->end - t->begin);
    return QID_OK;
}

int qid_st_parse(const uint8_t *buf, size_t len, uint64_t file_size, const char *name, qid_st_file *out, qid_error *err)
{
    memset(out, 0, sizeof *out);
    cJSON *root = NULL;
    qid_st_tensor **order = NULL;
    qid_error_clear(err);
    if (file_size < 8 || len < 8) {
        qid_error_set(err, QID_E_FORMAT, "file is %" PRIu64 " bytes, shorter than the 8-byte header length", file_size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > file_size - 8) {
        qid_error_set(err, QID_E_FORMAT, "header length %" PRIu64 " is larger than the file (%" PRIu64 " bytes)", hlen,
                      file_size);
        goto fail;
    }
    if (hlen > QID_ST_MAX_HEADER || hlen < 2) {
        qid_error_set(err, QID_E_FORMAT, "header length %" PRIu64 " outside 2..%u bytes", hlen, QID_ST_MAX_HEADER);
        goto fail;
    }
    if (len < 8 + hlen) {
        qid_error_set(err, QID_E_FORMAT, "header of %" PRIu64 " bytes not fully read", hlen);
        goto fail;
    }
    const char *json = (const char *)buf + 8;
    if (json[0] != '{') {
        qid_error_set(err, QID_E_FORMAT, "header does not start with '{'");
        goto fail;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        const char *at = cJSON_GetErrorPtr();
        long pos = at && at >= json && at <= json + hlen ? (long)(at - json) : -1;
        qid_error_set(err, QID_E_FORMAT, "header is not valid JSON (near byte %ld of %" PRIu64 ")", pos, hlen);
        goto fail;
    }
    for (const char *p = end; p && p < json + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            qid_error_set(err, QID_E_FORMAT, "trailing bytes after the header JSON at byte %ld", (long)(p - json));
            goto fail;
        }
    }
    size_t count = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (!e->string || strcmp(e->string, "__metadata__") != 0) count++;
    out->tensors = qid_calloc(count, sizeof *out->tensors, "safetensors entries");
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) {
            qid_error_set(err, QID_E_FORMAT, "header entry without a name");
            goto fail;
        }
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                qid_error_set(err, QID_E_FORMAT, "'__metadata__' is not an object");
                goto fail;
            }
            for (const cJSON *m = e->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    qid_error_set(err, QID_E_FORMAT, "'__metadata__' value '%.64s' is not a string",
                                  m->string ? m->string : "");
                    goto fail;
                }
            continue;
        }
        qid_st_tensor *t = &out->tensors[out->n++];
        t->name = qid_strdup(e->string);
        if (parse_entry(e, t, err)) goto fail;
    }
    qsort(out->tensors, out->n, sizeof *out->tensors, by_name);
    for (size_t i = 1; i < out->n; i++)
        if (strcmp(out->tensors[i - 1].name, out->tensors[i].name) == 0) {
            qid_error_set(err, QID_E_FORMAT, "tensor '%.200s' appears twice", out->tensors[i].name);
            goto fail;
        }
    /* The tensors must tile [0, data_len) without gaps or overlaps. */
    uint64_t data_len = file_size - 8 - hlen, pos = 0;
    order = qid_calloc(out->n, sizeof *order, "safetensors order");
    for (size_t i = 0; i < out->n; i++)
        order[i] = &out->tensors[i];
    qsort(order, out->n, sizeof *order, by_begin);
    /* Checked in order of diagnostic value: out of bounds, overlap, gap. */
    for (size_t i = 0; i < out->n; i++) {
        const qid_st_tensor *t = order[i];
        if (t->end > data_len) {
            qid_error_set(err, QID_E_FORMAT,
                          "tensor '%.200s' data [%" PRIu64 ", %" PRIu64 ") lies outside the %" PRIu64
                          "-byte data section (file truncated?)",
                          t->name, t->begin, t->end, data_len);
            goto fail;
        }
    }
    for (size_t i = 1; i < out->n; i++) {
        if (order[i]->begin < order[i - 1]->end) {
            qid_error_set(err, QID_E_FORMAT, "tensor '%.200s' data [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%.200s'",
                          order[i]->name, order[i]->begin, order[i]->end, order[i - 1]->name);
            goto fail;
        }
    }
    for (size_t i = 0; i < out->n; i++) {
        if (order[i]->begin > pos) {
            qid_error_set(err, QID_E_FORMAT, "gap of %" PRIu64 " bytes in the data section before tensor '%.200s'",
                          order[i]->begin - pos, order[i]->name);
            goto fail;
        }
        pos = order[i]->end;
    }
    if (pos != data_len) {
        qid_error_set(err, QID_E_FORMAT, "%" PRIu64 " bytes after the last tensor are not described by the header",
                      data_len - pos);
        goto fail;
    }
    free(order);
    cJSON_Delete(root);
    out->path = qid_strdup(name);
    out->file_size = file_size;
    out->data_offset = 8 + hlen;
    return QID_OK;
fail:
    free(order);
    cJSON_Delete(root);
    qid_st_free(out);
    return BAD("invalid safetensors file '%s'", name);
}

int qid_st_open(const char *path, qid_st_file *out, qid_error *err)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    uint8_t head[8];
    uint8_t *buf = NULL;
    int rc;
    if (fstat(fd, &st) != 0) {
        rc = qid_error_set(err, QID_E_IO, "cannot stat '%s': %s", path, strerror(errno));
        goto done;
    }
    uint64_t size = (uint64_t)st.st_size;
    ssize_t got = size >= 8 ? pread(fd, head, 8, 0) : 0;
    if (size < 8 || got != 8) {
        rc = qid_st_parse(head, got > 0 ? (size_t)got : 0, size, path, out, err);
        goto done;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | head[i];
    if (hlen > size - 8 || hlen > QID_ST_MAX_HEADER) { /* let the parser word the error */
        rc = qid_st_parse(head, 8, size, path, out, err);
        goto done;
    }
    buf = qid_malloc((size_t)(8 + hlen), "a safetensors header");
    got = pread(fd, buf, (size_t)(8 + hlen), 0);
    if (got != (ssize_t)(8 + hlen)) {
        rc = qid_error_set(err, QID_E_IO, "cannot read the header of '%s'", path);
        goto done;
    }
    rc = qid_st_parse(buf, (size_t)(8 + hlen), size, path, out, err);
done:
    free(buf);
    close(fd);
    return rc;
}

const qid_st_tensor *qid_st_find(const qid_st_file *f, const char *name)
{
    qid_st_tensor key = {.name = (char *)name};
    return bsearch(&key, f->tensors, f->n, sizeof *f->tensors, by_name);
}

int qid_st_read(const qid_st_file *f, const qid_st_tensor *t, void *dst, qid_error *err)
{
    int fd = open(f->path, O_RDONLY);
    if (fd < 0) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", f->path, strerror(errno));
    uint64_t left = t->end - t->begin, off = f->data_offset + t->begin;
    uint8_t *p = dst;
    while (left > 0) {
        size_t chunk = left > (1u << 30) ? (1u << 30) : (size_t)left;
        ssize_t got = pread(fd, p, chunk, (off_t)off);
        if (got <= 0) {
            close(fd);
            return qid_error_set(err, QID_E_IO, "cannot read tensor '%s' from '%s': %s", t->name, f->path,
                                 got < 0 ? strerror(errno) : "unexpected end of file");
        }
        p += got;
        off += (uint64_t)got;
        left -= (uint64_t)got;
    }
    close(fd);
    return QID_OK;
}
