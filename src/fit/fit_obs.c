/* fit_obs.c - results-store rows -> the observations of the laws (fit_obs.h):
 * the row that counts per task, the filters, one qid_fit_obs per OK
 * quantizer row and one 16-bit point per checkpoint's baseline row.
 *
 * Does not: read the store, fit, print or write. */
#include "fit_obs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *nz(const char *s) { return s ? s : ""; }

void qid_fit_filter_init(qid_fit_filter *f) { *f = (qid_fit_filter){.min_tokens = 0, .max_tokens = INFINITY}; }

int qid_fit_bits_pass(uint64_t bits_mask, int64_t p)
{
    if (p <= 0) return 0;
    return !bits_mask || (p < 64 && (bits_mask >> p & 1u));
}

void qid_fit_bits_text(uint64_t bits_mask, char *buf, size_t len)
{
    if (!len) return;
    buf[0] = '\0';
    for (int p = 1; p < 64; p++)
        if (bits_mask >> p & 1u) {
            size_t used = strlen(buf);
            snprintf(buf + used, len - used, "%s%d", buf[0] ? "," : "", p);
        }
}

int qid_fit_in_list(const char *list, const char *name)
{
    if (!list) return 1;
    size_t len = strlen(name);
    for (const char *s = list; *s;) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == len && strncmp(s, name, n) == 0) return 1;
        if (!e) break;
        s = e + 1;
    }
    return 0;
}

int qid_fit_same_checkpoint(const qid_result *a, const qid_result *b)
{
    const char *x = nz(a->ckpt_sha256), *y = nz(b->ckpt_sha256);
    return strcmp(nz(a->checkpoint), nz(b->checkpoint)) == 0 && (!x[0] || !y[0] || strcmp(x, y) == 0);
}

/* ---- the row that counts ---------------------------------------------------------- */

static const qid_result *sort_rows;
static int cmp_key_index(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(nz(sort_rows[i].key), nz(sort_rows[j].key));
    return c ? c : (i > j) - (i < j);
}

unsigned char *qid_fit_rows_that_count(const qid_result *rows, size_t n)
{
    size_t *idx = qid_malloc(qid_mul_size(n, sizeof *idx), "row order");
    unsigned char *counts = qid_calloc(n ? n : 1, 1, "rows that count");
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    sort_rows = rows;
    qsort(idx, n, sizeof *idx, cmp_key_index);
    for (size_t a = 0; a < n;) {
        size_t b = a, last = SIZE_MAX;
        while (b < n && strcmp(nz(rows[idx[a]].key), nz(rows[idx[b]].key)) == 0) {
            if (rows[idx[b]].status == QID_RESULT_OK) last = idx[b];
            b++;
        }
        if (last != SIZE_MAX) counts[last] = 1;
        a = b;
    }
    free(idx);
    return counts;
}

int qid_fit_rows_read(const char *store, qid_result **rows, size_t *n, qid_error *err)
{
    int rc = qid_results_read(store, rows, n, err);
    if (rc) return rc;
    size_t *idx = qid_malloc(qid_mul_size(*n ? *n : 1, sizeof *idx), "row order");
    for (size_t i = 0; i < *n; i++)
        idx[i] = i;
    sort_rows = *rows;
    qsort(idx, *n, sizeof *idx, cmp_key_index);
    qid_result *sorted = qid_malloc(qid_mul_size(*n ? *n : 1, sizeof *sorted), "rows in key order");
    for (size_t i = 0; i < *n; i++)
        sorted[i] = (*rows)[idx[i]]; /* moves each row's allocations */
    free(idx);
    free(*rows);
    *rows = sorted;
    return QID_OK;
}

/* ---- observations ------------------------------------------------------------------ */

static const char *ckpt_identity(const qid_result *r)
{
    if (r->ckpt_sha256 && r->ckpt_sha256[0]) return r->ckpt_sha256;
    return nz(r->checkpoint);
}

/* Index of s in the string list (adding it when absent). */
static int intern(const char ***list, size_t *n, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*list)[i], s) == 0) return (int)i;
    *list = qid_realloc(*list, (*n + 1) * sizeof **list, "checkpoint identities");
    (*list)[*n] = s;
    return (int)(*n)++;
}

/* Index of v in the list of values (equal within a relative 1e-9; adding it when absent). */
static int intern_num(double **list, size_t *n, double v)
{
    for (size_t i = 0; i < *n; i++)
        if (fabs((*list)[i] - v) <= 1e-9 * fabs(v)) return (int)i;
    *list = qid_realloc(*list, (*n + 1) * sizeof **list, "distinct values");
    (*list)[*n] = v;
    return (int)(*n)++;
}

size_t qid_fit_obs_count_distinct(const qid_fit_obs *obs, size_t n, int field)
{
    double *v = NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        intern_num(&v, &k,
                   field == QID_FIT_OBS_N   ? obs[i].n
                   : field == QID_FIT_OBS_D ? obs[i].d
                   : field == QID_FIT_OBS_P ? obs[i].p
                                            : obs[i].ckpt + 1.0);
    free(v);
    return k;
}

/* Hands *a to *out when out is not NULL; frees it otherwise. */
static void give(double *a, double **out)
{
    if (out)
        *out = a;
    else
        free(a);
}

/* 1 when row r is a usable quantizer row (OK, counted, a quantizer method, finite QiD and SE). */
static int usable(const qid_result *r, unsigned char counts)
{
    if (counts == 2) return 1;
    const char *m = nz(r->method);
    return counts && strcmp(m, "baseline") != 0 && strcmp(m, "probes") != 0 && isfinite(r->qid) && r->qid_se > 0 &&
           isfinite(r->qid_se);
}

/* Filter k of f alone (0 method, 1 format, 2 bits, 3 models, 4 tokens) on row r. */
static int passes(const qid_result *r, const qid_fit_filter *f, int k)
{
    double D = (double)r->tokens_seen;
    switch (k) {
    case 0: return !f->method || strcmp(nz(r->method), f->method) == 0;
    case 1: return !f->format || strcmp(nz(r->format), f->format) == 0;
    case 2: return qid_fit_bits_pass(f->bits_mask, r->elem_bits);
    case 3: return qid_fit_in_list(f->models, nz(r->model));
    default: return D > 0 && D >= f->min_tokens && D <= f->max_tokens;
    }
}

int qid_fit_filter_explain(const qid_result *rows, size_t n, const qid_fit_filter *f, int all_rows, char *buf,
                           size_t len)
{
    int single = 0;
    static const char *const what[5] = {"method", "format", "element bits", "model", "tokens seen"};
    unsigned char *counts = qid_fit_rows_that_count(rows, n);
    if (all_rows) memset(counts, 2, n); /* 2: every row, whatever its method */
    size_t n_usable = 0;
    for (size_t i = 0; i < n; i++)
        n_usable += (size_t)usable(&rows[i], counts[i]);
    snprintf(buf, len,
             n_usable ? "no row passes all the filters together (each passes some rows alone)"
                      : "the store has no OK quantizer row with a QiD and its standard error");
    for (int k = 0; k < 5 && n_usable; k++) {
        size_t pass = 0;
        for (size_t i = 0; i < n; i++)
            pass += (size_t)(usable(&rows[i], counts[i]) && passes(&rows[i], f, k));
        if (pass) continue;
        /* the store's distinct values of that column, in the order met (at most 24) */
        char vals[24][64], have[400] = "";
        size_t nv = 0;
        for (size_t i = 0; i < n && nv < 24; i++) {
            if (!usable(&rows[i], counts[i])) continue;
            char v[64];
            if (k == 2)
                snprintf(v, sizeof v, "%d", (int)rows[i].elem_bits);
            else if (k == 4)
                snprintf(v, sizeof v, "%.3g", (double)rows[i].tokens_seen);
            else
                snprintf(v, sizeof v, "%s",
                         k == 0   ? nz(rows[i].method)
                         : k == 1 ? nz(rows[i].format)
                                  : nz(rows[i].model));
            size_t j = 0;
            while (j < nv && strcmp(vals[j], v) != 0)
                j++;
            if (j < nv) continue;
            snprintf(vals[nv++], sizeof vals[0], "%s", v);
            size_t used = strlen(have);
            snprintf(have + used, sizeof have - used, "%s%s", used ? ", " : "", v);
        }
        char asked[160];
        if (k == 0 || k == 1 || k == 3)
            snprintf(asked, sizeof asked, "'%s'", k == 0 ? f->method : k == 1 ? f->format : f->models);
        else if (k == 2)
            qid_fit_bits_text(f->bits_mask, asked, sizeof asked);
        else
            snprintf(asked, sizeof asked, "in [%.4g, %.4g]", f->min_tokens, f->max_tokens);
        snprintf(buf, len, "no rows with %s %s (the store has: %s)", what[k], asked, have);
        single = 1;
        break;
    }
    free(counts);
    return single;
}

void qid_fit_obs_from_rows(const qid_result *rows, size_t n, const qid_fit_filter *f, qid_fit_obs **obs, size_t *n_obs,
                           double **n16, double **d16, double **l16, size_t *n_16)
{
    unsigned char *counts = qid_fit_rows_that_count(rows, n);
    const char **ids = NULL, **ids16 = NULL;
    size_t n_ids = 0, n_ids16 = 0, m = 0, m16 = 0;
    double *groups = NULL;
    size_t n_groups = 0;
    qid_fit_obs *out = qid_malloc(qid_mul_size(n ? n : 1, sizeof *out), "observations");
    double *a = qid_malloc(qid_mul_size(n ? n : 1, sizeof *a), "16-bit N");
    double *b = qid_malloc(qid_mul_size(n ? n : 1, sizeof *b), "16-bit D");
    double *c = qid_malloc(qid_mul_size(n ? n : 1, sizeof *c), "16-bit loss");
    for (size_t i = 0; i < n; i++) {
        const qid_result *r = &rows[i];
        if (!counts[i]) continue;
        double N = (double)r->params, D = (double)r->tokens_seen;
        if (!(N > 0) || !(D > 0) || D < f->min_tokens || D > f->max_tokens) continue;
        if (!qid_fit_in_list(f->models, nz(r->model))) continue;
        const char *method = nz(r->method);
        if (strcmp(method, "baseline") == 0) {
            size_t before = n_ids16;
            intern(&ids16, &n_ids16, ckpt_identity(r));
            if (n_ids16 == before || !(r->loss > 0) || !isfinite(r->loss)) continue; /* one per checkpoint */
            a[m16] = N, b[m16] = D, c[m16] = r->loss, m16++;
            continue;
        }
        if (strcmp(method, "probes") == 0) continue;
        if (f->method && strcmp(method, f->method) != 0) continue;
        if (f->format && strcmp(nz(r->format), f->format) != 0) continue;
        if (!qid_fit_bits_pass(f->bits_mask, r->elem_bits)) continue;
        if (!isfinite(r->qid) || !(r->qid_se > 0) || !isfinite(r->qid_se)) continue;
        out[m++] = (qid_fit_obs){.ckpt = intern(&ids, &n_ids, ckpt_identity(r)),
                                 .group = intern_num(&groups, &n_groups, N),
                                 .n = N,
                                 .d = D,
                                 .p = r->elem_bits,
                                 .qid = r->qid,
                                 .se = r->qid_se,
                                 .loss16 = r->loss16,
                                 .lr = r->lr_frac,
                                 .row = i};
    }
    *obs = out, *n_obs = m;
    give(a, n16), give(b, d16), give(c, l16);
    if (n_16) *n_16 = m16;
    free(ids), free(ids16), free(groups), free(counts);
}
