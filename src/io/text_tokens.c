/* text_tokens.c - text files to ids through a tokenizer (text_tokens.h):
 * the file mapped and hashed, cut into documents (the whole file, or JSON
 * lines parsed with cJSON), documents encoded in batches on OpenMP threads
 * with one tokenizer state each, and the ids joined in document order.
 *
 * Does not: write HDF5, or know what a tokenizer does inside. */
#include "text_tokens.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"

/* Documents handed to the threads at a time (per thread). */
#define BATCH_PER_THREAD 256

typedef struct doc {
    size_t off, len; /* the line (JSON) or the whole text, in the file */
    size_t line;     /* 1-based */
} doc;

typedef struct doc_out {
    qid_token_ids ids;
    int rc;
    qid_error err;
} doc_out;

/* Line number of byte offset at in s. */
static size_t line_of(const char *s, size_t at)
{
    size_t line = 1;
    for (size_t i = 0; i < at; i++)
        line += s[i] == '\n';
    return line;
}

static int encode_doc(const qid_tokenizer *t, qid_tokenizer_state *st, const qid_text_opts *o, const char *file,
                      const doc *d, int jsonl, doc_out *out)
{
    const char *text = file + d->off;
    size_t len = d->len;
    cJSON *root = NULL;
    qid_error *err = &out->err;
    if (jsonl) {
        const char *field = o->field ? o->field : "text";
        root = cJSON_ParseWithLength(text, len);
        const cJSON *v = root ? cJSON_GetObjectItemCaseSensitive(root, field) : NULL;
        if (!cJSON_IsString(v)) {
            int rc = qid_error_set(err, QID_E_FORMAT, "line %zu of '%s' is not a JSON object with a string field '%s'",
                                   d->line, o->input, field);
            cJSON_Delete(root);
            return rc;
        }
        text = v->valuestring;
        len = strlen(text);
        for (size_t i = 0; i + 6 <= d->len; i++) /* cJSON's strings end at a NUL: refuse rather than cut */
            if (memcmp(file + d->off + i, "\\u0000", 6) == 0 && (i == 0 || file[d->off + i - 1] != '\\')) {
                int rc = qid_error_set(err, QID_E_FORMAT,
                                       "line %zu of '%s' holds a \\u0000 character, which qid cannot "
                                       "tokenize",
                                       d->line, o->input);
                cJSON_Delete(root);
                return rc;
            }
    }
    size_t bad = qid_utf8_valid_prefix(text, len);
    if (bad != len) {
        int rc = jsonl ? qid_error_set(err, QID_E_FORMAT,
                                       "invalid UTF-8 at byte %zu of the '%s' field on line %zu of '%s' (byte 0x%02x)",
                                       bad, o->field ? o->field : "text", d->line, o->input, (uint8_t)text[bad])
                       : qid_error_set(err, QID_E_FORMAT,
                                       "invalid UTF-8 at byte %zu (line %zu) of '%s' (byte 0x%02x; qid tokenizes UTF-8 "
                                       "text only: convert it, e.g. iconv -f latin1 -t utf-8)",
                                       d->off + bad, line_of(file, d->off + bad), o->input, (uint8_t)text[bad]);
        cJSON_Delete(root);
        return rc;
    }
    if (o->bos_id >= 0) qid_token_ids_push(&out->ids, (uint32_t)o->bos_id);
    int rc = qid_tokenizer_encode(t, st, text, len, &out->ids, err);
    if (!rc && o->eos_id >= 0) qid_token_ids_push(&out->ids, (uint32_t)o->eos_id);
    cJSON_Delete(root);
    return rc;
}

/* The documents of file[0, n): the whole file, or its non-blank lines. */
static doc *find_docs(const char *file, size_t n, int jsonl, size_t *n_docs)
{
    size_t cap = 1024, k = 0, line = 1;
    doc *d = qid_malloc(cap * sizeof *d, "document offsets");
    if (!jsonl) {
        d[0] = (doc){0, n, 1};
        *n_docs = n > 0;
        return d;
    }
    for (size_t i = 0; i < n; line++) {
        const char *nl = memchr(file + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - file) : n, a = i, b = end;
        while (a < b && (file[a] == ' ' || file[a] == '\t' || file[a] == '\r'))
            a++;
        if (a < b) {
            if (k == cap) {
                cap *= 2;
                d = qid_realloc(d, qid_mul_size(cap, sizeof *d), "document offsets");
            }
            d[k++] = (doc){i, end - i, line};
        }
        i = end + 1;
    }
    *n_docs = k;
    return d;
}

static void progress(const qid_text_opts *o, size_t done, size_t total, double t0, double *last)
{
    double now = qid_now();
    if (!o->progress || now - *last < 10) return;
    *last = now;
    fprintf(stderr, "qid tokens: %.0f of %.0f MiB tokenized (%.1f MiB/s)\n", done / 1048576.0, total / 1048576.0,
            done / 1048576.0 / (now - t0));
}

int qid_text_tokenize(const qid_tokenizer *t, const qid_text_opts *o, qid_text_result *r, qid_error *err)
{
    struct stat st;
    memset(r, 0, sizeof *r);
    int fd = open(o->input, O_RDONLY);
    if (fd < 0) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", o->input, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return qid_error_set(err, QID_E_IO, "'%s' is not a regular file", o->input);
    }
    size_t n = (size_t)st.st_size;
    const char *file = "";
    void *map = NULL;
    if (n) {
        map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            return qid_error_set(err, QID_E_IO, "cannot map '%s': %s", o->input, strerror(errno));
        }
        file = map;
    }
    close(fd);
    r->bytes = n;
    qid_sha256 h;
    uint8_t dg[32];
    qid_sha256_init(&h);
    qid_sha256_update(&h, file, n);
    qid_sha256_final(&h, dg);
    qid_sha256_hex(dg, r->sha256);

    int jsonl = o->format == QID_TEXT_JSONL;
    if (o->format == QID_TEXT_DETECT) {
        size_t i = 0;
        while (i < n && (file[i] == ' ' || file[i] == '\t' || file[i] == '\r' || file[i] == '\n'))
            i++;
        jsonl = i < n && file[i] == '{';
    }
    r->format = jsonl ? QID_TEXT_JSONL : QID_TEXT_PLAIN;
    size_t n_docs = 0;
    doc *docs = find_docs(file, n, jsonl, &n_docs);
    int rc = QID_OK;
    if (n_docs == 0) {
        rc = qid_error_set(err, QID_E_INVALID, "'%s' holds no document (%s)", o->input,
                           jsonl ? "no non-blank line" : "empty file");
        goto done;
    }
    int nt = o->threads > 0 ? o->threads : 1;
    size_t batch = (size_t)nt * BATCH_PER_THREAD;
    doc_out *outs = qid_calloc(batch, sizeof *outs, "per-document ids");
    qid_tokenizer_state **states = qid_calloc((size_t)nt, sizeof *states, "tokenizer states");
    for (int i = 0; i < nt; i++)
        states[i] = qid_tokenizer_state_new(t);
    size_t cap = n / 3 + 1024;
    r->ids = qid_malloc(cap * sizeof *r->ids, "token ids");
    double t0 = qid_now(), last = t0;
    for (size_t first = 0; first < n_docs && !rc; first += batch) {
        size_t nb = n_docs - first < batch ? n_docs - first : batch;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (size_t i = 0; i < nb; i++) {
            doc_out *out = &outs[i];
            out->ids.n = 0;
            qid_error_clear(&out->err);
            out->rc = encode_doc(t, states[omp_get_thread_num()], o, file, &docs[first + i], jsonl, out);
        }
        for (size_t i = 0; i < nb && !rc; i++) {
            if (outs[i].rc) {
                rc = outs[i].rc;
                if (err) *err = outs[i].err;
                break;
            }
            if (r->n_ids + outs[i].ids.n > cap) {
                while (r->n_ids + outs[i].ids.n > cap)
                    cap *= 2;
                r->ids = qid_realloc(r->ids, qid_mul_size(cap, sizeof *r->ids), "token ids");
            }
            memcpy(r->ids + r->n_ids, outs[i].ids.v, outs[i].ids.n * sizeof *r->ids);
            r->n_ids += outs[i].ids.n;
        }
        const doc *lastd = &docs[first + nb - 1];
        progress(o, lastd->off + lastd->len, n, t0, &last);
    }
    r->seconds = qid_now() - t0;
    r->n_docs = n_docs;
    for (size_t i = 0; i < batch; i++)
        free(outs[i].ids.v);
    free(outs);
    for (int i = 0; i < nt; i++)
        qid_tokenizer_state_free(states[i]);
    free(states);
done:
    free(docs);
    if (map) munmap(map, n);
    if (rc) qid_text_result_free(r);
    return rc;
}

static int feed_read(void *ctx, uint32_t *ids, size_t n, qid_error *err)
{
    qid_text_result *r = ctx;
    if (n > r->n_ids - r->pos) return qid_error_set(err, QID_E_IO, "read past the tokenized text");
    memcpy(ids, r->ids + r->pos, n * sizeof *ids);
    r->pos += n;
    return QID_OK;
}

static void feed_digest(void *ctx, char hex[65])
{
    const qid_text_result *r = ctx;
    memcpy(hex, r->sha256, 65);
}

void qid_text_feed(qid_text_result *r, qid_tokens_feed *feed)
{
    memset(feed, 0, sizeof *feed);
    r->pos = 0;
    feed->n_tokens = r->n_ids;
    feed->read = feed_read;
    feed->digest = feed_digest;
    feed->ctx = r;
}

void qid_text_result_free(qid_text_result *r)
{
    free(r->ids);
    r->ids = NULL;
    r->n_ids = 0;
}
