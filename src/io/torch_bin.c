/* torch_bin.c - torch.save zip archives through libzip: the pickle entry
 * handed to torch_pickle.c, storages checked against their entries, tensor
 * bytes read (and gathered when strided). See torch_bin.h for the contract. */
#include "torch_bin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

/* A deflated entry cannot expand more than about 1032 times. */
#define MAX_DEFLATE_RATIO 1100u

void qid_tb_free(qid_tb_file *f)
{
    if (!f) return;
    if (f->zip) zip_discard(f->zip);
    qid_tp_free(&f->dict);
    free(f->entry);
    free(f->path);
    free(f->mem);
    memset(f, 0, sizeof *f);
}

#define BAD(...) qid_error_set(err, QID_E_FORMAT, __VA_ARGS__)

/* The first bytes of a legacy (pre-zip) torch.save file: protocol 2 and the
 * magic number 0x1950a86a20f9469cfc6c pickled as LONG1. */
static int is_legacy(const uint8_t *b, size_t n)
{
    static const uint8_t magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    return n >= sizeof magic && memcmp(b, magic, sizeof magic) == 0;
}

static int refuse_non_zip(const uint8_t *head, size_t n, const char *name, qid_error *err)
{
    if (is_legacy(head, n))
        return BAD("'%s' is a PyTorch checkpoint in the legacy format (torch < 1.6 or "
                   "_use_new_zipfile_serialization=False), which qid does not read (hint: in Python, "
                   "torch.save(torch.load(f, weights_only=True), f) rewrites it in the zip format)",
                   name);
    if (n >= 1 && head[0] == 0x80) return BAD("'%s' is a bare pickle, not a torch.save zip archive", name);
    return QID_OK;
}

static int zip_fail(zip_error_t *ze, const char *name, qid_error *err)
{
    int code = zip_error_code_zip(ze);
    const char *why =
        code == ZIP_ER_NOZIP ? "not a zip archive (or truncated: no end of central directory)" : zip_error_strerror(ze);
    return BAD("'%s' is not a readable torch.save archive: %s", name, why);
}

/* Reads entry idx (at most max bytes, all of it) into a new buffer. */
static int read_entry(zip_t *z, zip_uint64_t idx, size_t size, uint8_t **out, const char *name, const char *what,
                      qid_error *err)
{
    *out = NULL;
    zip_file_t *zf = zip_fopen_index(z, idx, 0);
    if (!zf) return BAD("'%s': cannot open %s: %s", name, what, zip_strerror(z));
    uint8_t *buf = qid_malloc(size ? size : 1, "a zip entry");
    zip_int64_t got = size ? zip_fread(zf, buf, size) : 0;
    int rc = QID_OK;
    if (got != (zip_int64_t)size)
        rc = BAD("'%s': %s is truncated or corrupt (%s)", name, what,
                 got < 0 ? zip_file_strerror(zf) : "fewer bytes than declared");
    zip_fclose(zf);
    if (rc)
        free(buf);
    else
        *out = buf;
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const qid_tp_tensor *)a)->name, ((const qid_tp_tensor *)b)->name);
}

/* A libzip source over the file at path, or over len bytes at mem. */
static zip_source_t *make_source(const char *path, const void *mem, size_t len, zip_error_t *ze)
{
    return mem ? zip_source_buffer_create(mem, len, 0, ze) : zip_source_file_create(path, 0, -1, ze);
}

static zip_t *open_zip(const char *path, const void *mem, size_t len, int flags, zip_error_t *ze)
{
    zip_source_t *src = make_source(path, mem, len, ze);
    if (!src) return NULL;
    zip_t *z = zip_open_from_source(src, flags, ze);
    if (!z) zip_source_free(src);
    return z;
}

/* path names the file (and is opened unless mem is given). */
static int open_archive(const char *path, const void *mem, size_t len, uint64_t file_size, qid_tb_file *out,
                        qid_error *err)
{
    const char *name = path;
    zip_error_t ze;
    zip_error_init(&ze);
    uint8_t *pkl = NULL;
    char *prefix = NULL;
    int rc = QID_OK;
    /* first without libzip's consistency check, so that sizes the file
     * cannot hold are reported as such; then with it */
    zip_t *z = open_zip(path, mem, len, ZIP_RDONLY, &ze);
    if (!z) {
        rc = zip_fail(&ze, name, err);
        zip_error_fini(&ze);
        goto done;
    }
    out->zip = z;
    out->path = qid_strdup(name);
    out->file_size = file_size;

    /* every entry: sizes the file can hold; find <dir>/data.pkl */
    zip_int64_t n = zip_get_num_entries(z, 0);
    zip_int64_t pkl_idx = -1;
    zip_stat_t pst;
    zip_stat_init(&pst);
    for (zip_int64_t i = 0; i < n; i++) {
        zip_stat_t st;
        if (zip_stat_index(z, (zip_uint64_t)i, 0, &st) != 0 ||
            (st.valid & (ZIP_STAT_NAME | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD)) !=
                (ZIP_STAT_NAME | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD)) {
            rc = BAD("'%s': cannot read zip entry %" PRId64 ": %s", name, (int64_t)i, zip_strerror(z));
            goto done;
        }
        int stored = st.comp_method == ZIP_CM_STORE;
        if (st.comp_size > file_size || (stored && st.size != st.comp_size) ||
            (!stored && st.size / MAX_DEFLATE_RATIO > st.comp_size)) {
            rc = BAD("'%s': zip entry '%.100s' declares %" PRIu64 " bytes from %" PRIu64 " in a file of %" PRIu64
                     " bytes (zip bomb or corrupt archive)",
                     name, st.name, (uint64_t)st.size, (uint64_t)st.comp_size, file_size);
            goto done;
        }
        const char *slash = strchr(st.name, '/');
        if (slash && strcmp(slash + 1, "data.pkl") == 0) {
            if (pkl_idx >= 0) {
                rc = BAD("'%s' holds two pickles ('%s' and '%.100s')", name, pst.name, st.name);
                goto done;
            }
            pkl_idx = i;
            pst = st;
        }
    }
    if (pkl_idx < 0) {
        rc = BAD("'%s' is a zip archive without <dir>/data.pkl, not a torch.save checkpoint", name);
        goto done;
    }
    size_t plen = (size_t)(strchr(pst.name, '/') - pst.name) + 1;
    if (plen > 200) {
        rc = BAD("'%s': archive directory name of %zu bytes (at most 200)", name, plen);
        goto done;
    }
    prefix = qid_malloc(plen + 1, "an archive prefix");
    memcpy(prefix, pst.name, plen);
    prefix[plen] = '\0';
    zip_discard(z);
    out->zip = z = open_zip(path, mem, len, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!z) {
        rc = BAD("'%s' is an inconsistent zip archive (local and central headers disagree: %s)", name,
                 zip_error_strerror(&ze));
        goto done;
    }
    if (pst.size > QID_TP_MAX_PICKLE) {
        rc = BAD("'%s': %sdata.pkl is %" PRIu64 " bytes (at most %u)", name, prefix, (uint64_t)pst.size,
                 QID_TP_MAX_PICKLE);
        goto done;
    }
    /* byteorder (absent before torch 2.1: then little-endian) */
    char bo_name[300];
    snprintf(bo_name, sizeof bo_name, "%sbyteorder", prefix);
    zip_int64_t bo = zip_name_locate(z, bo_name, 0);
    if (bo >= 0) {
        zip_stat_t st;
        uint8_t *text = NULL;
        if (zip_stat_index(z, (zip_uint64_t)bo, 0, &st) != 0 || st.size > 16) {
            rc = BAD("'%s': unreadable %s", name, bo_name);
            goto done;
        }
        if ((rc = read_entry(z, (zip_uint64_t)bo, (size_t)st.size, &text, name, bo_name, err))) goto done;
        int little = st.size == 6 && memcmp(text, "little", 6) == 0;
        free(text);
        if (!little) {
            rc = BAD("'%s' was saved on a big-endian machine (qid reads little-endian checkpoints)", name);
            goto done;
        }
    }
    char pkl_name[300], where[1400];
    snprintf(pkl_name, sizeof pkl_name, "%sdata.pkl", prefix);
    snprintf(where, sizeof where, "%s' entry '%s", name, pkl_name);
    if ((rc = read_entry(z, (zip_uint64_t)pkl_idx, (size_t)pst.size, &pkl, name, pkl_name, err))) goto done;
    if ((rc = qid_tp_parse(pkl, (size_t)pst.size, where, &out->dict, err))) goto done;

    /* every storage: a stored entry of exactly numel * element size bytes */
    out->entry = qid_calloc(out->dict.n_storages ? out->dict.n_storages : 1, sizeof *out->entry, "storage entries");
    for (size_t s = 0; s < out->dict.n_storages; s++) {
        const qid_tp_storage *sg = &out->dict.storages[s];
        char ename[400];
        snprintf(ename, sizeof ename, "%sdata/%s", prefix, sg->key);
        zip_int64_t e = zip_name_locate(z, ename, 0);
        if (e < 0) {
            rc = BAD("'%s': the pickle names storage '%s', which is not in the archive (no entry '%s')", name, sg->key,
                     ename);
            goto done;
        }
        zip_stat_t st;
        if (zip_stat_index(z, (zip_uint64_t)e, 0, &st) != 0) {
            rc = BAD("'%s': cannot read entry '%s'", name, ename);
            goto done;
        }
        if (st.comp_method != ZIP_CM_STORE) {
            rc =
                BAD("'%s': storage entry '%s' is compressed (torch.save stores tensor data uncompressed)", name, ename);
            goto done;
        }
        uint64_t bytes;
        if (__builtin_mul_overflow(sg->numel, (uint64_t)qid_st_dtype_size(sg->dtype), &bytes) || bytes != st.size) {
            rc = BAD("'%s': storage '%s' declares %" PRIu64 " elements of %s but entry '%s' has %" PRIu64 " bytes",
                     name, sg->key, sg->numel, qid_st_dtype_name(sg->dtype), ename, (uint64_t)st.size);
            goto done;
        }
        out->entry[s] = (uint64_t)e;
    }
    qsort(out->dict.tensors, out->dict.n, sizeof *out->dict.tensors, by_name);
done:
    zip_error_fini(&ze);
    free(pkl);
    free(prefix);
    if (rc) qid_tb_free(out);
    return rc;
}

int qid_tb_open(const char *path, qid_tb_file *out, qid_error *err)
{
    memset(out, 0, sizeof *out);
    qid_error_clear(err);
    FILE *f = fopen(path, "rb");
    if (!f) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", path, strerror(errno));
    uint8_t head[16];
    size_t got = fread(head, 1, sizeof head, f);
    int seek_ok = fseeko(f, 0, SEEK_END) == 0;
    off_t size = seek_ok ? ftello(f) : -1;
    fclose(f);
    if (size < 0) return qid_error_set(err, QID_E_IO, "cannot find the size of '%s'", path);
    if (refuse_non_zip(head, got, path, err)) return QID_E_FORMAT;
    return open_archive(path, NULL, 0, (uint64_t)size, out, err);
}

int qid_tb_open_buffer(const void *data, size_t len, const char *name, qid_tb_file *out, qid_error *err)
{
    memset(out, 0, sizeof *out);
    qid_error_clear(err);
    if (refuse_non_zip(data, len, name, err)) return QID_E_FORMAT;
    void *copy = qid_malloc(len ? len : 1, "an archive");
    memcpy(copy, data, len);
    int rc = open_archive(name, copy, len, len, out, err);
    if (rc)
        free(copy);
    else
        out->mem = copy;
    return rc;
}

const qid_tp_tensor *qid_tb_find(const qid_tb_file *f, const char *name)
{
    qid_tp_tensor key = {.name = (char *)name};
    return bsearch(&key, f->dict.tensors, f->dict.n, sizeof *f->dict.tensors, by_name);
}

uint64_t qid_tb_numel(const qid_tp_tensor *t)
{
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

/* Reads bytes [off, off + n) of entry idx. */
static int read_range(const qid_tb_file *f, uint64_t idx, uint64_t off, uint64_t n, void *dst, const char *tname,
                      qid_error *err)
{
    zip_file_t *zf = zip_fopen_index(f->zip, idx, 0);
    if (!zf)
        return qid_error_set(err, QID_E_IO, "'%s': cannot open tensor '%s': %s", f->path, tname, zip_strerror(f->zip));
    int rc = QID_OK;
    if (off && zip_fseek(zf, (zip_int64_t)off, SEEK_SET) != 0)
        rc =
            qid_error_set(err, QID_E_IO, "'%s': cannot seek in tensor '%s': %s", f->path, tname, zip_file_strerror(zf));
    uint8_t *p = dst;
    while (!rc && n > 0) {
        zip_uint64_t chunk = n > (1u << 30) ? (1u << 30) : n;
        zip_int64_t got = zip_fread(zf, p, chunk);
        if (got <= 0)
            rc = qid_error_set(err, QID_E_IO, "'%s': cannot read tensor '%s': %s", f->path, tname,
                               got < 0 ? zip_file_strerror(zf) : "unexpected end of entry");
        else {
            p += got;
            n -= (uint64_t)got;
        }
    }
    zip_fclose(zf);
    return rc;
}

int qid_tb_read(const qid_tb_file *f, const qid_tp_tensor *t, void *dst, qid_error *err)
{
    size_t es = qid_st_dtype_size(t->dtype);
    uint64_t numel = qid_tb_numel(t), entry = f->entry[t->storage];
    if (numel == 0) return QID_OK;
    if (t->contiguous) return read_range(f, entry, t->offset * es, numel * es, dst, t->name, err);
    /* strided: read the span it covers, then gather row-major */
    uint64_t last = t->offset;
    for (int d = 0; d < t->ndim; d++)
        last += (t->shape[d] - 1) * t->stride[d];
    uint64_t span = last - t->offset + 1;
    uint8_t *buf = qid_malloc((size_t)(span * es), "a strided tensor's span");
    int rc = read_range(f, entry, t->offset * es, span * es, buf, t->name, err);
    uint64_t idx[QID_TP_MAX_DIMS] = {0};
    uint8_t *out = dst;
    for (uint64_t k = 0; !rc && k < numel; k++) {
        uint64_t at = 0;
        for (int d = 0; d < t->ndim; d++)
            at += idx[d] * t->stride[d];
        memcpy(out + k * es, buf + at * es, es);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
    free(buf);
    return rc;
}
