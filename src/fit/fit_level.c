/* fit_level.c - the training level a checkpoint's measured QiD implies
 * (fit_level.h): the store's rows -> the checkpoints a name picks -> per row
 * and combined D with bootstrap intervals.
 *
 * Does not: print (the command layer does) or fit. */
#include "fit_level.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fit_internal.h"
#include "fit_obs.h"

static const char *nz(const char *s) { return s ? s : ""; }

static int names_checkpoint(const qid_result *r, const char *which)
{
    const char *path = nz(r->checkpoint), *slash = strrchr(path, '/');
    return strcmp(path, which) == 0 || (slash && strcmp(slash + 1, which) == 0) ||
           (r->ckpt_sha256 && r->ckpt_sha256[0] && strcmp(r->ckpt_sha256, which) == 0);
}

static const qid_result *level_rows;
static int cmp_level_ckpt(const void *a, const void *b)
{
    const qid_result *x = &level_rows[*(const size_t *)a], *y = &level_rows[*(const size_t *)b];
    int c = strcmp(nz(x->model), nz(y->model));
    if (c) return c;
    if (x->tokens_seen != y->tokens_seen) return x->tokens_seen < y->tokens_seen ? -1 : 1;
    return strcmp(nz(x->checkpoint), nz(y->checkpoint));
}

static int cmp_level_row(const void *a, const void *b)
{
    const qid_result *x = &level_rows[((const qid_fit_level_row *)a)->row];
    const qid_result *y = &level_rows[((const qid_fit_level_row *)b)->row];
    if (x->elem_bits != y->elem_bits) return x->elem_bits < y->elem_bits ? -1 : 1;
    int c = strcmp(nz(x->method), nz(y->method));
    return c ? c : strcmp(nz(x->format), nz(y->format));
}

/* The interval of the combined training level over the bootstrap draws. */
static void level_ci(const qid_fit_law *draws, size_t n_draws, const double *q, const double *se, double n,
                     const double *p, size_t m, double level, double *lo, double *hi)
{
    double *v = qid_malloc(qid_mul_size(n_draws + 1, sizeof *v), "training level draws");
    size_t k = 0;
    for (size_t b = 0; b < n_draws; b++) {
        double t = qid_fit_training_level(&draws[b], q, se, n, p, m);
        if (isfinite(t)) v[k++] = t;
    }
    *lo = k >= 2 ? qid_fit_quantile_sorted(v, k, (1 - level) / 2) : NAN;
    *hi = k >= 2 ? qid_fit_quantile_sorted(v, k, (1 + level) / 2) : NAN;
    free(v);
}

/* "checkpoints: a, b, ... and N more; models: m1, m2": what the store has. */
static void list_names(const qid_result *rows, size_t n, char *list, size_t len)
{
    list[0] = '\0';
    for (int pass = 0; pass <= 1; pass++) {
        size_t shown = 0, more = 0;
        snprintf(list + strlen(list), len - strlen(list), "%s", pass ? "; models: " : "checkpoints: ");
        for (size_t i = 0; i < n; i++) {
            const char *nm = pass ? nz(rows[i].model) : nz(rows[i].checkpoint);
            int seen = 0;
            for (size_t j = 0; j < i && !seen; j++)
                seen = strcmp(pass ? nz(rows[j].model) : nz(rows[j].checkpoint), nm) == 0;
            if (seen || !nm[0]) continue;
            if (shown < 6)
                snprintf(list + strlen(list), len - strlen(list), "%s%s", shown ? ", " : "", nm);
            else
                more++;
            shown++;
        }
        if (more) snprintf(list + strlen(list), len - strlen(list), " and %zu more", more);
        if (!shown) snprintf(list + strlen(list), len - strlen(list), "none");
    }
}

/* The checkpoints `which` names (a row of each in ck[]); by model, tokens, path. */
static size_t pick_checkpoints(const qid_result *rows, size_t n, const unsigned char *counts, const char *which,
                               size_t *ck)
{
    size_t n_ck = 0;
    /* A checkpoint's path, last path component or hash; else a model name. */
    for (int by_model = 0; by_model <= 1 && n_ck == 0; by_model++)
        for (size_t i = 0; i < n; i++) {
            if (!counts[i]) continue;
            if (by_model ? strcmp(nz(rows[i].model), which) != 0 : !names_checkpoint(&rows[i], which)) continue;
            size_t j = 0;
            while (j < n_ck && !qid_fit_same_checkpoint(&rows[ck[j]], &rows[i]))
                j++;
            if (j == n_ck) ck[n_ck++] = i;
        }
    level_rows = rows;
    qsort(ck, n_ck, sizeof *ck, cmp_level_ckpt);
    return n_ck;
}

/* 1 when row i of checkpoint r0 is one the level uses. */
static int level_row_used(const qid_result *r, const qid_result *r0, const char *method, const char *format,
                          uint64_t bits_mask)
{
    if (r->status != QID_RESULT_OK || !qid_fit_same_checkpoint(r, r0)) return 0;
    const char *meth = nz(r->method);
    if (strcmp(meth, "rtn") != 0 && strcmp(meth, "gptq") != 0 && strcmp(meth, "awq") != 0) return 0;
    if ((method && method[0] && strcmp(meth, method) != 0) ||
        (format && format[0] && strcmp(nz(r->format), format) != 0))
        return 0;
    return qid_fit_bits_pass(bits_mask, r->elem_bits) && isfinite(r->qid) && r->qid_se > 0;
}

/* Fills one checkpoint's rows and its combined level. */
static void level_ckpt(const qid_fit_level *lv, const unsigned char *counts, const qid_fit_law *law,
                       const qid_fit_law *draws, size_t n_draws, const char *method, const char *format,
                       uint64_t bits_mask, qid_fit_level_ckpt *c)
{
    const qid_result *rows = lv->rows, *r0 = &rows[c->row];
    size_t n = lv->n_store_rows;
    c->n = (double)r0->params;
    c->seen = r0->tokens_seen > 0 ? (double)r0->tokens_seen : NAN;
    c->rows = qid_malloc(qid_mul_size(n ? n : 1, sizeof *c->rows), "training level rows");
    for (size_t i = 0; i < n; i++)
        if (counts[i] && level_row_used(&rows[i], r0, method, format, bits_mask))
            c->rows[c->n_rows++] = (qid_fit_level_row){.row = i};
    level_rows = rows;
    qsort(c->rows, c->n_rows, sizeof *c->rows, cmp_level_row);
    double *q = qid_malloc(qid_mul_size(c->n_rows + 1, 3 * sizeof *q), "training level values");
    double *se = q + c->n_rows + 1, *p = se + c->n_rows + 1;
    qid_fit_boot boot = {.n_draws = n_draws, .draws = (qid_fit_law *)draws, .level = lv->level};
    for (size_t a = 0; a < c->n_rows; a++) {
        qid_fit_level_row *lr = &c->rows[a];
        const qid_result *r = &rows[lr->row];
        double N = c->n, P = r->elem_bits;
        lr->p = P;
        lr->t = qid_fit_tokens_for(law, r->qid, N, P);
        lr->lo = lr->hi = NAN;
        if (lv->ci) qid_fit_tokens_for_ci(&boot, &r->qid, &N, &P, 1, lv->level, NULL, &lr->lo, &lr->hi);
        q[a] = r->qid, se[a] = r->qid_se, p[a] = P;
    }
    c->t = qid_fit_training_level(law, q, se, c->n, p, c->n_rows);
    c->lo = c->hi = NAN;
    if (lv->ci) level_ci(draws, n_draws, q, se, c->n, p, c->n_rows, lv->level, &c->lo, &c->hi);
    free(q);
}

void qid_fit_level_free(qid_fit_level *lv)
{
    if (!lv) return;
    for (size_t c = 0; c < lv->n_ckpts; c++)
        free(lv->ckpts[c].rows);
    free(lv->ckpts);
    qid_results_rows_free(lv->rows, lv->n_store_rows);
    memset(lv, 0, sizeof *lv);
}

int qid_fit_level_of_store(const char *store, const char *which, const qid_fit_law *law, const qid_fit_law *draws,
                           size_t n_draws, double level, const char *method, const char *format, uint64_t bits_mask,
                           qid_fit_level *out, qid_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = qid_fit_rows_read(store, &out->rows, &out->n_store_rows, err);
    if (rc) return rc;
    size_t n = out->n_store_rows;
    unsigned char *counts = qid_fit_rows_that_count(out->rows, n);
    size_t *ck = qid_malloc(qid_mul_size(n ? n : 1, sizeof *ck), "training level checkpoints");
    size_t n_ck = pick_checkpoints(out->rows, n, counts, which, ck);
    if (n_ck == 0) {
        /* A checkpoint file spelled another way than the job spelled it (a relative path, a link): the rows
         * carry its tensor hash. */
        qid_ckpt c;
        if (qid_ckpt_open(which, &c, NULL) == QID_OK) {
            char sha[sizeof c.meta.tensor_sha256];
            snprintf(sha, sizeof sha, "%s", c.meta.tensor_sha256);
            qid_ckpt_close(&c);
            n_ck = pick_checkpoints(out->rows, n, counts, sha, ck);
        }
    }
    if (n_ck == 0) {
        char list[600];
        list_names(out->rows, n, list, sizeof list);
        rc = qid_error_set(err, QID_E_INVALID, "no checkpoint or model '%s' in '%s' (%s)", which, store, list);
        free(ck), free(counts);
        qid_fit_level_free(out);
        return rc;
    }
    out->ci = n_draws >= 2;
    out->level = level;
    out->ckpts = qid_calloc(n_ck, sizeof *out->ckpts, "training level checkpoints");
    out->n_ckpts = n_ck;
    for (size_t c = 0; c < n_ck; c++) {
        out->ckpts[c].row = ck[c];
        level_ckpt(out, counts, law, draws, n_draws, method, format, bits_mask, &out->ckpts[c]);
    }
    free(ck), free(counts);
    return QID_OK;
}
