/* fit_predictor.c - `qid predictor` (fit_predictor.h): results-store rows ->
 * the features of Xu et al. (2024) -> random forest and linear baseline
 * validated one model family out at a time -> a printed table, the Pareto
 * frontier of model size vs bits per weight, and /fits/<name>.
 *
 * Does not: train anything itself (fit_forest.c does), plot, or print from
 * the library functions except qid_predictor_print (and the entry point). */
#include "fit_predictor.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fit_cmd.h"
#include "fit_internal.h"
#include "h5io.h"
#include "quant.h"
#include "version.h"

void qid_predictor_opts_init(qid_predictor_opts *o)
{
    memset(o, 0, sizeof *o);
    qid_fit_forest_opts_init(&o->forest);
    o->target = QID_PREDICTOR_TARGET_QID;
    o->holdout = QID_PREDICTOR_BY_FAMILY;
    o->name = "predictor";
}

/* ---- families ------------------------------------------------------------------------ */

/* 1 if the token (len bytes) is a model size: digits[.digits][x digits[.digits]] then k/m/b/t. */
static int size_token(const char *t, size_t len)
{
    if (len < 2 || !strchr("kKmMbBtT", t[len - 1])) return 0;
    size_t i = 0;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < len - 1 && isdigit((unsigned char)t[i]))
            i++;
        if (i == start) return 0;
        if (i < len - 1 && t[i] == '.') {
            i++;
            start = i;
            while (i < len - 1 && isdigit((unsigned char)t[i]))
                i++;
            if (i == start) return 0;
        }
        if (i == len - 1) return 1;
        if (part == 0 && (t[i] == 'x' || t[i] == 'X'))
            i++;
        else
            return 0;
    }
    return 0;
}

void qid_predictor_family(const char *model, char *buf, size_t len)
{
    if (!len) return;
    buf[0] = '\0';
    if (!model || !model[0]) {
        snprintf(buf, len, "unknown");
        return;
    }
    size_t out = 0;
    for (const char *s = model; *s;) {
        size_t n = strcspn(s, "-_");
        if (!size_token(s, n) && out + n + 2 <= len) {
            if (out) buf[out++] = '-';
            memcpy(buf + out, s, n);
            out += n;
            buf[out] = '\0';
        }
        s += n;
        if (*s) s++;
    }
    if (!out) snprintf(buf, len, "%s", model);
}

/* ---- rows -> examples ---------------------------------------------------------------- */

static const char *str(const char *s) { return s ? s : ""; }

static int is_quant_method(const char *m) { return strcmp(m, "rtn") == 0 || strcmp(m, "gptq") == 0; }

/* Reads a comma-separated run of numbers at s (stops at the first item that
 * is not one); returns how many, at most max, stored in v. *end after them. */
static size_t read_numbers(const char *s, double *v, size_t max, const char **end)
{
    size_t n = 0;
    for (;;) {
        char *e;
        errno = 0;
        double x = strtod(s, &e);
        if (e == s || errno || !isfinite(x)) break;
        if (n < max) v[n] = x;
        n++;
        s = e;
        if (*s != ',') break;
        s++;
    }
    *end = s;
    return n;
}

/* A probes row's options, "radii=a,b,directions=K,seed=S;losses=l1,l2,...":
 * the radii and, per radius, the mean loss over the directions (losses are
 * radius-major). Returns the number of radii, 0 when malformed. */
static size_t parse_probes(const char *opt, double *radii, double *mean, size_t max)
{
    const char *p = strstr(opt, "radii="), *end;
    if (!p) return 0;
    size_t nr = read_numbers(p + 6, radii, max, &end);
    const char *q = strstr(opt, "directions=");
    const char *l = strstr(opt, ";losses=");
    if (!nr || nr > max || !q || !l) return 0;
    long dirs = strtol(q + 11, NULL, 10);
    if (dirs < 1 || dirs > 1000000) return 0;
    size_t want = nr * (size_t)dirs;
    double *losses = qid_malloc(qid_mul_size(want, sizeof *losses), "probe losses");
    size_t got = read_numbers(l + 8, losses, want, &end);
    if (got != want || *end) {
        free(losses);
        return 0;
    }
    for (size_t r = 0; r < nr; r++) {
        double s = 0;
        for (long k = 0; k < dirs; k++)
            s += losses[r * (size_t)dirs + (size_t)k];
        mean[r] = s / (double)dirs;
    }
    free(losses);
    return nr;
}

/* The fixed features, in column order. */
enum { F_LOG_N, F_LOG_D, F_LOSS16, F_SQNR, F_ELEM, F_SCALES, F_INT, F_MXFP, F_MXINT, F_NF4, F_FP4, F_GPTQ, F_FIXED };
static const char *const fixed_names[F_FIXED] = {"log10_N",   "log10_D",           "loss16",  "rtn_sqnr_db",
                                                 "elem_bits", "scales_per_weight", "fmt_int", "fmt_mxfp",
                                                 "fmt_mxint", "fmt_nf4",           "fmt_fp4", "gptq"};

/* Column of the format family of a quant.h type. */
static int family_column(enum qid_qtype t)
{
    switch (t) {
    case QID_QTYPE_INT: return F_INT;
    case QID_QTYPE_MXINT: return F_MXINT;
    case QID_QTYPE_NF4: return F_NF4;
    case QID_QTYPE_FP4: return F_FP4;
    default: return F_MXFP;
    }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void qid_predictor_data_free(qid_predictor_data *d)
{
    if (!d) return;
    free(d->x), free(d->y), free(d->loss), free(d->loss16), free(d->n), free(d->d), free(d->bits), free(d->elem);
    free(d->group), free(d->row);
    for (size_t g = 0; g < d->n_groups; g++)
        free(d->groups[g]);
    free(d->groups);
    memset(d, 0, sizeof *d);
}

/* 1 when row r is an example candidate under o. */
static int wanted_quant_row(const qid_result *r, const qid_predictor_opts *o)
{
    const char *m = str(r->method);
    if (r->status != QID_RESULT_OK || !is_quant_method(m)) return 0;
    if (o->method && strcmp(m, o->method) != 0) return 0;
    if (o->format && strcmp(str(r->format), o->format) != 0) return 0;
    if (!qid_fit_cmd_in_list(o->models, str(r->model))) return 0;
    return r->params > 0 && r->elem_bits > 0 && isfinite(r->loss);
}

int qid_predictor_data_build(const qid_result *rows, size_t n, const qid_predictor_opts *o, qid_predictor_data *out,
                             qid_error *err)
{
    memset(out, 0, sizeof *out);
    unsigned char *counts = qid_fit_cmd_rows_that_count(rows, n);
    /* The probe radii of the store (sorted, distinct). */
    double radii[QID_PREDICTOR_MAX_RADII], rr[QID_PREDICTOR_MAX_RADII], rm[QID_PREDICTOR_MAX_RADII];
    size_t n_radii = 0, n_radii_over = 0;
    for (size_t i = 0; i < n; i++) {
        if (!counts[i] || strcmp(str(rows[i].method), "probes") != 0) continue;
        size_t k = parse_probes(str(rows[i].options), rr, rm, QID_PREDICTOR_MAX_RADII);
        for (size_t j = 0; j < k; j++) {
            size_t a = 0;
            while (a < n_radii && !qid_fit_same(radii[a], rr[j]))
                a++;
            if (a < n_radii) continue;
            if (n_radii == QID_PREDICTOR_MAX_RADII) {
                n_radii_over++;
                continue;
            }
            size_t b = n_radii++;
            while (b > 0 && radii[b - 1] > rr[j]) {
                radii[b] = radii[b - 1];
                b--;
            }
            radii[b] = rr[j];
        }
    }
    size_t nf_all = F_FIXED + n_radii;
    size_t cap = n ? n : 1;
    double *full = qid_malloc(qid_mul_size(cap, nf_all * sizeof *full), "predictor: features");
    double *l16 = qid_malloc(qid_mul_size(cap, sizeof *l16), "predictor: 16-bit losses");
    size_t *idx = qid_malloc(qid_mul_size(cap, sizeof *idx), "predictor: rows");
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const qid_result *r = &rows[i];
        if (!counts[i] || !wanted_quant_row(r, o)) continue;
        out->n_considered++;
        double base = r->loss16;
        if (!isfinite(base)) /* the baseline row of the same checkpoint and windows */
            for (size_t j = 0; j < n; j++)
                if (counts[j] && strcmp(str(rows[j].method), "baseline") == 0 &&
                    qid_fit_cmd_same_checkpoint(&rows[j], r) &&
                    strcmp(str(rows[j].eval_sha256), str(r->eval_sha256)) == 0 &&
                    strcmp(str(rows[j].eval_protocol), str(r->eval_protocol)) == 0 && isfinite(rows[j].loss))
                    base = rows[j].loss;
        if (!isfinite(base)) {
            out->n_no_loss16++;
            continue;
        }
        double *f = full + m * nf_all;
        for (size_t j = 0; j < nf_all; j++)
            f[j] = NAN;
        f[F_LOG_N] = log10((double)r->params);
        if (r->tokens_seen > 0) f[F_LOG_D] = log10((double)r->tokens_seen);
        f[F_LOSS16] = base;
        int gptq = strcmp(str(r->method), "gptq") == 0;
        if (!gptq) f[F_SQNR] = r->sqnr_db;
        for (size_t j = 0; j < n && gptq; j++)
            if (counts[j] && strcmp(str(rows[j].method), "rtn") == 0 && qid_fit_cmd_same_checkpoint(&rows[j], r) &&
                strcmp(str(rows[j].format), str(r->format)) == 0 && rows[j].status == QID_RESULT_OK)
                f[F_SQNR] = rows[j].sqnr_db;
        if (!isfinite(f[F_SQNR])) f[F_SQNR] = NAN;
        f[F_ELEM] = r->elem_bits;
        qid_quant_spec spec;
        qid_error pe;
        qid_error_clear(&pe);
        int parsed = qid_quant_parse(str(r->format), &spec, &pe) == QID_OK;
        int64_t block = r->block >= 0 ? r->block : parsed ? (int64_t)spec.block : -1;
        if (block >= 0) f[F_SCALES] = block > 0 ? 1.0 / (double)block : 0.0;
        if (parsed) {
            for (int c = F_INT; c <= F_FP4; c++)
                f[c] = 0;
            f[family_column(spec.type)] = 1;
        }
        f[F_GPTQ] = gptq;
        for (size_t j = 0; j < n && n_radii; j++) {
            if (!counts[j] || strcmp(str(rows[j].method), "probes") != 0 || !qid_fit_cmd_same_checkpoint(&rows[j], r))
                continue;
            size_t k = parse_probes(str(rows[j].options), rr, rm, QID_PREDICTOR_MAX_RADII);
            for (size_t a = 0; a < k; a++)
                for (size_t b = 0; b < n_radii; b++)
                    if (qid_fit_same(radii[b], rr[a])) f[F_FIXED + b] = rm[a] - base;
        }
        l16[m] = base;
        idx[m++] = i;
    }
    /* Columns: a feature most rows lack is dropped; the rows that lack a kept one are left out. */
    unsigned char *keep = qid_calloc(nf_all ? nf_all : 1, 1, "predictor: kept features");
    unsigned char *use = qid_calloc(cap, 1, "predictor: kept rows");
    char name[32];
    for (size_t j = 0; j < nf_all; j++) {
        size_t avail = 0;
        for (size_t i = 0; i < m; i++)
            avail += isfinite(full[i * nf_all + j]) != 0;
        if (j < F_FIXED)
            snprintf(name, sizeof name, "%s", fixed_names[j]);
        else
            snprintf(name, sizeof name, "probe_dloss_r%g", radii[j - F_FIXED]);
        keep[j] = m > 0 && 2 * avail >= m;
        if (keep[j] || m == 0) continue;
        if (avail > 0)
            qid_fit_list_add(out->notes, sizeof out->notes, "%s dropped: known for %zu of %zu rows", name, avail, m);
        else
            qid_fit_list_add(out->notes, sizeof out->notes, "%s dropped: unknown for every row%s", name,
                             j == F_SQNR ? " (no RTN row of the same checkpoint and format has an SQNR)" : "");
    }
    if (n_radii_over)
        qid_fit_list_add(out->notes, sizeof out->notes, "only the %d smallest probe radii are used",
                         QID_PREDICTOR_MAX_RADII);
    size_t kept = 0;
    for (size_t i = 0; i < m; i++) {
        int okrow = 1;
        for (size_t j = 0; j < nf_all; j++)
            if (keep[j] && !isfinite(full[i * nf_all + j])) okrow = 0;
        use[i] = (unsigned char)okrow;
        kept += (size_t)okrow;
        out->n_missing += (size_t)!okrow;
    }
    /* A feature the same on every kept row informs nothing. */
    char same[256] = "";
    for (size_t j = 0; j < nf_all; j++) {
        if (!keep[j]) continue;
        double first = NAN;
        int varies = 0;
        for (size_t i = 0; i < m; i++) {
            if (!use[i]) continue;
            double v = full[i * nf_all + j];
            if (isnan(first))
                first = v;
            else if (v != first)
                varies = 1;
        }
        if (!varies) {
            keep[j] = 0;
            if (j < F_INT || j > F_FP4) /* absent format families need no mention */
                snprintf(same + strlen(same), sizeof same - strlen(same), "%s%s", same[0] ? "," : "",
                         j < F_FIXED ? fixed_names[j] : "probe losses");
        }
    }
    if (same[0] && kept) qid_fit_list_add(out->notes, sizeof out->notes, "the same on every row, not used: %s", same);
    size_t nf = 0;
    for (size_t j = 0; j < nf_all; j++)
        if (keep[j]) {
            if (j < F_FIXED)
                snprintf(out->feat[nf], sizeof out->feat[nf], "%s", fixed_names[j]);
            else
                snprintf(out->feat[nf], sizeof out->feat[nf], "probe_dloss_r%g", radii[j - F_FIXED]);
            nf++;
        }
    int rc = QID_OK;
    if (kept < QID_PREDICTOR_MIN_ROWS) {
        rc = qid_error_set(err, QID_E_INVALID,
                           "too few examples for the predictor: %zu (needs at least %d; %zu quantizer rows pass the "
                           "filters, %zu without a 16-bit loss, %zu missing a feature)",
                           kept, QID_PREDICTOR_MIN_ROWS, out->n_considered, out->n_no_loss16, out->n_missing);
    } else if (nf == 0) {
        rc = qid_error_set(err, QID_E_INVALID, "no feature varies across the %zu examples: nothing to predict from",
                           kept);
    }
    if (rc) {
        size_t a = out->n_considered, b = out->n_no_loss16, c = out->n_missing;
        qid_predictor_data_free(out);
        out->n_considered = a, out->n_no_loss16 = b, out->n_missing = c;
        goto done;
    }
    out->n_rows = kept;
    out->n_feat = nf;
    out->x = qid_malloc(qid_mul_size(kept, nf * sizeof *out->x), "predictor: feature matrix");
    double **cols[] = {&out->y, &out->loss, &out->loss16, &out->n, &out->d, &out->bits, &out->elem};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
        *cols[c] = qid_malloc(qid_mul_size(kept, sizeof **cols[c]), "predictor: example column");
    out->group = qid_malloc(qid_mul_size(kept, sizeof *out->group), "predictor: groups");
    out->row = qid_malloc(qid_mul_size(kept, sizeof *out->row), "predictor: rows");
    char fam[160];
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        if (!use[i]) continue;
        const qid_result *r = &rows[idx[i]];
        size_t c = 0;
        for (size_t j = 0; j < nf_all; j++)
            if (keep[j]) out->x[k * nf + c++] = full[i * nf_all + j];
        out->loss[k] = r->loss;
        out->loss16[k] = l16[i];
        out->y[k] = o->target == QID_PREDICTOR_TARGET_LOSS ? r->loss : r->loss - l16[i];
        out->n[k] = (double)r->params;
        out->d[k] = r->tokens_seen > 0 ? (double)r->tokens_seen : NAN;
        out->bits[k] = r->bits;
        out->elem[k] = r->elem_bits;
        out->row[k] = idx[i];
        if (o->holdout == QID_PREDICTOR_BY_MODEL)
            snprintf(fam, sizeof fam, "%s", r->model && r->model[0] ? r->model : "unknown");
        else
            qid_predictor_family(r->model, fam, sizeof fam);
        size_t g = 0;
        while (g < out->n_groups && strcmp(out->groups[g], fam) != 0)
            g++;
        if (g == out->n_groups) {
            out->groups = qid_realloc(out->groups, (out->n_groups + 1) * sizeof *out->groups, "predictor: groups");
            out->groups[out->n_groups++] = qid_strdup(fam);
        }
        out->group[k++] = (int)g;
    }
    /* Group ids in name order, so tables read alphabetically. */
    char **sorted = qid_malloc(qid_mul_size(out->n_groups, sizeof *sorted), "predictor: group names");
    memcpy(sorted, out->groups, out->n_groups * sizeof *sorted);
    qsort(sorted, out->n_groups, sizeof *sorted, cmp_str);
    int *remap = qid_malloc(qid_mul_size(out->n_groups, sizeof *remap), "predictor: group order");
    for (size_t g = 0; g < out->n_groups; g++)
        for (size_t h = 0; h < out->n_groups; h++)
            if (sorted[h] == out->groups[g]) remap[g] = (int)h;
    for (size_t i = 0; i < kept; i++)
        out->group[i] = remap[out->group[i]];
    free(out->groups);
    out->groups = sorted;
    free(remap);
done:
    free(keep), free(use), free(full), free(l16), free(idx), free(counts);
    return rc;
}

/* ---- candidates of the frontier ------------------------------------------------------ */

static int cmp_cand(const void *a, const void *b)
{
    const qid_predictor_candidate *x = a, *y = b;
    return strcmp(x->label, y->label);
}

void qid_predictor_candidates(const qid_result *rows, size_t n, const qid_predictor_opts *o,
                              qid_predictor_candidate **out, size_t *n_out)
{
    unsigned char *counts = qid_fit_cmd_rows_that_count(rows, n);
    qid_predictor_candidate *c = qid_malloc(qid_mul_size(n ? n : 1, sizeof *c), "predictor: candidates");
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const qid_result *r = &rows[i];
        if (!counts[i] || r->status != QID_RESULT_OK) continue;
        int base = strcmp(str(r->method), "baseline") == 0;
        if (!base && !wanted_quant_row(r, o)) continue;
        if (base && !qid_fit_cmd_in_list(o->models, str(r->model))) continue;
        if (!(r->params > 0) || !isfinite(r->loss) || !(r->bits > 0)) continue;
        char label[160];
        if (base)
            snprintf(label, sizeof label, "%s %g-bit", str(r->model), r->bits);
        else
            snprintf(label, sizeof label, "%s %s %s", str(r->model), str(r->method), str(r->format));
        double d = r->tokens_seen > 0 ? (double)r->tokens_seen : 0;
        size_t j = 0;
        while (j < m && strcmp(c[j].label, label) != 0)
            j++;
        if (j < m && d < c[j].d) continue; /* an earlier checkpoint of a candidate already there */
        if (j == m) m++;
        c[j] =
            (qid_predictor_candidate){.c = {(double)r->params, r->bits, r->loss}, .d = d, .predicted = NAN, .row = i};
        snprintf(c[j].label, sizeof c[j].label, "%s", label);
    }
    qsort(c, m, sizeof *c, cmp_cand);
    free(counts);
    *out = c;
    *n_out = m;
}

/* ---- fitting ------------------------------------------------------------------------- */

void qid_predictor_report_free(qid_predictor_report *rep)
{
    if (!rep) return;
    qid_predictor_data_free(&rep->data);
    qid_fit_logo_free(&rep->logo);
    qid_fit_linear_free(&rep->lin);
    free(rep->cand);
    free(rep->front);
    memset(rep, 0, sizeof *rep);
}

static void warn_add(qid_predictor_report *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn_add(qid_predictor_report *rep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qid_fit_list_vadd(rep->warnings, sizeof rep->warnings, fmt, ap);
    va_end(ap);
    rep->n_warnings++;
}

double qid_predictor_as_loss(const qid_predictor_report *rep, const qid_predictor_opts *o, size_t i, double p)
{
    return o->target == QID_PREDICTOR_TARGET_LOSS ? p : rep->data.loss16[i] + p;
}

int qid_predictor_fit(const qid_result *rows, size_t n, const qid_predictor_opts *o, qid_predictor_report *rep,
                      qid_error *err)
{
    memset(rep, 0, sizeof *rep);
    int rc = qid_predictor_data_build(rows, n, o, &rep->data, err);
    if (rc) return rc;
    const qid_predictor_data *d = &rep->data;
    if (d->n_groups < 2) {
        rc = qid_error_set(
            err, QID_E_INVALID, "leave-one-%s-out needs at least 2 %s; the %zu examples are all of %s '%s'%s",
            o->holdout == QID_PREDICTOR_BY_MODEL ? "model" : "family",
            o->holdout == QID_PREDICTOR_BY_MODEL ? "models" : "model families", d->n_rows,
            o->holdout == QID_PREDICTOR_BY_MODEL ? "model" : "family", d->groups[0],
            o->holdout == QID_PREDICTOR_BY_MODEL ? "" : " (--holdout model holds out one model at a time)");
        goto fail;
    }
    if ((rc = qid_fit_predictor_logo(d->x, d->y, d->group, d->n_rows, d->n_feat, &o->forest, &rep->logo, err)))
        goto fail;
    if ((rc = qid_fit_linear_train(d->x, d->y, d->n_rows, d->n_feat, &rep->lin, err))) goto fail;
    double ss = 0;
    for (size_t i = 0; i < d->n_rows; i++)
        ss += (rep->logo.fit_forest[i] - d->y[i]) * (rep->logo.fit_forest[i] - d->y[i]);
    rep->rmse_train = sqrt(ss / (double)d->n_rows);
    if (d->n_rows < QID_PREDICTOR_FEW_ROWS)
        warn_add(rep, "few examples: %zu (fewer than %d); the errors and importances are unreliable", d->n_rows,
                 QID_PREDICTOR_FEW_ROWS);
    if (!(rep->logo.rmse_forest < rep->logo.rmse_mean))
        warn_add(rep, "the forest does not beat the training-mean predictor on held-out %s (RMSE %.4g vs %.4g)",
                 o->holdout == QID_PREDICTOR_BY_MODEL ? "models" : "families", rep->logo.rmse_forest,
                 rep->logo.rmse_mean);

    qid_predictor_candidates(rows, n, o, &rep->cand, &rep->n_cand);
    for (size_t j = 0; j < rep->n_cand; j++)
        for (size_t i = 0; i < d->n_rows; i++)
            if (d->row[i] == rep->cand[j].row)
                rep->cand[j].predicted = qid_predictor_as_loss(rep, o, i, rep->logo.pred_forest[i]);
    qid_fit_candidate *cc = qid_malloc(qid_mul_size(rep->n_cand + 1, sizeof *cc), "predictor: frontier");
    for (size_t j = 0; j < rep->n_cand; j++)
        cc[j] = rep->cand[j].c;
    rep->front = qid_malloc(qid_mul_size(rep->n_cand + 1, sizeof *rep->front), "predictor: frontier");
    rep->n_front = qid_fit_pareto(cc, rep->n_cand, o->budget, rep->front);
    free(cc);
    return QID_OK;
fail:
    qid_predictor_report_free(rep);
    return rc;
}

/* ---- printing ------------------------------------------------------------------------ */

/* "4 GiB"-style text of a byte count. */
static void fmt_bytes(char *buf, size_t len, double b)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (b >= 1024 && u < 5)
        b /= 1024, u++;
    snprintf(buf, len, u ? "%.3g %s" : "%.0f %s", b, unit[u]);
}

void qid_predictor_print(FILE *out, const qid_predictor_report *rep, const qid_predictor_opts *o)
{
    const qid_predictor_data *d = &rep->data;
    const qid_fit_logo *l = &rep->logo;
    const char *what = o->holdout == QID_PREDICTOR_BY_MODEL ? "model" : "family";
    fprintf(out,
            "predictor of post-quantization loss (Xu et al. 2024): random forest (%zu trees, seed %llu) and "
            "linear baseline\n",
            o->forest.n_trees, (unsigned long long)o->forest.seed);
    fprintf(out, "filters: method %s, format %s, models %s\n", o->method ? o->method : "rtn,gptq",
            o->format ? o->format : "any", o->models ? o->models : "all");
    fprintf(out, "examples %zu of %zu quantizer rows (%zu without a 16-bit loss, %zu missing a feature), %zu %s\n",
            d->n_rows, d->n_considered, d->n_no_loss16, d->n_missing, d->n_groups,
            o->holdout == QID_PREDICTOR_BY_MODEL ? "models" : "families");
    if (o->target == QID_PREDICTOR_TARGET_LOSS)
        fprintf(out, "target: post-quantization loss (nats/token)\n");
    else
        fprintf(out, "target: QiD = loss - loss16; predicted loss = loss16 + predicted QiD (errors are the same in "
                     "either)\n");
    fprintf(out, "features:");
    for (size_t j = 0; j < d->n_feat; j++)
        fprintf(out, " %s", d->feat[j]);
    fprintf(out, "\n");
    qid_fit_list_print(out, "note: ", d->notes);
    fprintf(out, "leave-one-%s-out RMSE of the loss (nats/token), each %s predicted by models trained without it:\n",
            what, what);
    fprintf(out, "  %-20s %6s %10s %10s %10s\n", what, "rows", "forest", "linear", "mean");
    for (size_t g = 0; g < l->n_groups; g++)
        fprintf(out, "  %-20s %6zu %10.4g %10.4g %10.4g\n", d->groups[l->rows[g].group], l->rows[g].n_points,
                l->rows[g].rmse_forest, l->rows[g].rmse_linear, l->rows[g].rmse_mean);
    fprintf(out, "  %-20s %6zu %10.4g %10.4g %10.4g\n", "all (pooled)", d->n_rows, l->rmse_forest, l->rmse_linear,
            l->rmse_mean);
    fprintf(out, "  forest in-sample RMSE %.4g\n", rep->rmse_train);
    fprintf(out, "feature importance (forest on all examples; impurity decrease) and linear coefficient:\n");
    size_t order[QID_PREDICTOR_MAX_FEAT];
    for (size_t j = 0; j < d->n_feat; j++) {
        size_t a = j;
        while (a > 0 && l->importance[order[a - 1]] < l->importance[j]) {
            order[a] = order[a - 1];
            a--;
        }
        order[a] = j;
    }
    for (size_t a = 0; a < d->n_feat; a++)
        fprintf(out, "  %-20s %8.4f %12.4g\n", d->feat[order[a]], l->importance[order[a]], rep->lin.coef[1 + order[a]]);
    fprintf(out, "  %-20s %8s %12.4g\n", "(intercept)", "", rep->lin.coef[0]);

    char b1[32], b2[80];
    if (o->budget > 0)
        fmt_bytes(b1, sizeof b1, o->budget), snprintf(b2, sizeof b2, "within %.4g bytes = %s", o->budget, b1);
    else
        snprintf(b2, sizeof b2, "no budget");
    fprintf(out,
            "Pareto frontier of model size vs bits per weight (%s; memory = N x bits / 8 of the non-embedding "
            "weights; latest measured checkpoint per model and setting; %zu candidates):\n",
            b2, rep->n_cand);
    if (!rep->n_front) {
        double least = INFINITY;
        for (size_t j = 0; j < rep->n_cand; j++)
            least = fmin(least, qid_fit_candidate_bytes(&rep->cand[j].c));
        fmt_bytes(b1, sizeof b1, least);
        fprintf(out, "  no candidate fits the budget (the smallest needs %s)\n", rep->n_cand ? b1 : "-");
    } else {
        fprintf(out, "  %-11s %-10s %6s %-32s %-10s %9s %9s\n", "memory", "N", "bits", "model method format", "D",
                "loss", "predicted");
        for (size_t a = 0; a < rep->n_front; a++) {
            const qid_predictor_candidate *c = &rep->cand[rep->front[a]];
            fmt_bytes(b1, sizeof b1, qid_fit_candidate_bytes(&c->c));
            fprintf(out, "  %-11s %-10.4g %6.3g %-32s %-10.4g %9.4f", b1, c->c.params, c->c.bits, c->label, c->d,
                    c->c.loss);
            if (isfinite(c->predicted))
                fprintf(out, " %9.4f\n", c->predicted);
            else
                fprintf(out, " %9s\n", "-");
        }
        const qid_predictor_candidate *best = &rep->cand[rep->front[rep->n_front - 1]];
        fprintf(out, "  lowest loss %s: %s (%.4f)\n", b2, best->label, best->c.loss);
    }
    qid_fit_list_print(out, "warning: ", rep->warnings);
}

/* ---- /fits/<name> -------------------------------------------------------------------- */

/* The `points` table: buf[n_rows][QID_PREDICTOR_POINT_COLS]. */
static void points(const qid_predictor_report *rep, const qid_predictor_opts *o, double *buf)
{
    const qid_predictor_data *d = &rep->data;
    const qid_fit_logo *l = &rep->logo;
    for (size_t i = 0; i < d->n_rows; i++) {
        double *b = buf + QID_PREDICTOR_POINT_COLS * i;
        b[0] = d->n[i], b[1] = d->d[i], b[2] = d->elem[i], b[3] = d->bits[i], b[4] = d->group[i];
        b[5] = d->loss16[i], b[6] = d->loss[i];
        b[7] = qid_predictor_as_loss(rep, o, i, l->pred_forest[i]);
        b[8] = qid_predictor_as_loss(rep, o, i, l->pred_linear[i]);
        b[9] = qid_predictor_as_loss(rep, o, i, l->fit_forest[i]);
    }
}

void qid_predictor_to_stored(const qid_predictor_report *rep, const qid_predictor_opts *o, qid_predictor_stored *out)
{
    memset(out, 0, sizeof *out);
    out->n_points = rep->data.n_rows;
    out->points = qid_malloc(qid_mul_size(out->n_points + 1, QID_PREDICTOR_POINT_COLS * sizeof *out->points),
                             "predictor: points");
    points(rep, o, out->points);
    out->budget = o->budget > 0 ? o->budget : NAN;
    out->rmse_forest = rep->logo.rmse_forest;
    out->rmse_linear = rep->logo.rmse_linear;
    out->rmse_mean = rep->logo.rmse_mean;
    snprintf(out->target, sizeof out->target, "%s", o->target == QID_PREDICTOR_TARGET_LOSS ? "loss" : "qid");
    snprintf(out->holdout, sizeof out->holdout, "%s", o->holdout == QID_PREDICTOR_BY_MODEL ? "model" : "family");
}

typedef struct write_ctx {
    const qid_predictor_report *rep;
    const qid_predictor_opts *o;
} write_ctx;

#define TRY(x)                                                                                                         \
    do {                                                                                                               \
        if ((x) != QID_OK) goto fail;                                                                                  \
    } while (0)

static int write_predictor(int64_t group, void *vctx, qid_error *err)
{
    const write_ctx *ctx = vctx;
    const qid_predictor_report *rep = ctx->rep;
    const qid_predictor_opts *o = ctx->o;
    const qid_predictor_data *d = &rep->data;
    const qid_fit_logo *l = &rep->logo;
    hid_t g = (hid_t)group;
    char text[2048], now[32];
    double *buf = NULL;

    TRY(qid_h5_attr_write_str(g, "kind", "predictor", err));
    TRY(qid_h5_attr_write_str(g, "target", o->target == QID_PREDICTOR_TARGET_LOSS ? "loss" : "qid", err));
    TRY(qid_h5_attr_write_str(g, "holdout", o->holdout == QID_PREDICTOR_BY_MODEL ? "model" : "family", err));
    text[0] = '\0';
    for (size_t j = 0; j < d->n_feat; j++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s%s", j ? "," : "", d->feat[j]);
    TRY(qid_h5_attr_write_str(g, "features", text, err));
    text[0] = '\0';
    for (size_t j = 0; j < d->n_groups; j++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s%s", j ? "," : "", d->groups[j]);
    TRY(qid_h5_attr_write_str(g, "groups", text, err));
    TRY(qid_h5_attr_write_i64(g, "n_rows", (int64_t)d->n_rows, err));
    TRY(qid_h5_attr_write_i64(g, "n_considered", (int64_t)d->n_considered, err));
    TRY(qid_h5_attr_write_i64(g, "n_groups", (int64_t)d->n_groups, err));
    TRY(qid_h5_attr_write_f64(g, "rmse_forest", l->rmse_forest, err));
    TRY(qid_h5_attr_write_f64(g, "rmse_linear", l->rmse_linear, err));
    TRY(qid_h5_attr_write_f64(g, "rmse_mean", l->rmse_mean, err));
    TRY(qid_h5_attr_write_f64(g, "rmse_train", rep->rmse_train, err));
    TRY(qid_h5_attr_write_i64(g, "n_trees", (int64_t)o->forest.n_trees, err));
    TRY(qid_h5_attr_write_i64(g, "min_leaf", (int64_t)o->forest.min_leaf, err));
    TRY(qid_h5_attr_write_i64(g, "mtry", (int64_t)o->forest.mtry, err));
    TRY(qid_h5_attr_write_i64(g, "seed", (int64_t)o->forest.seed, err));
    TRY(qid_h5_attr_write_f64(g, "budget", o->budget > 0 ? o->budget : NAN, err));
    TRY(qid_h5_attr_write_str(g, "filter_method", o->method ? o->method : "", err));
    TRY(qid_h5_attr_write_str(g, "filter_format", o->format ? o->format : "", err));
    TRY(qid_h5_attr_write_str(g, "filter_models", o->models ? o->models : "", err));
    TRY(qid_h5_attr_write_str(g, "notes", d->notes, err));
    TRY(qid_h5_attr_write_str(g, "warnings", rep->warnings, err));
    qid_utc_now(now, sizeof now);
    TRY(qid_h5_attr_write_str(g, "created_utc", now, err));
    TRY(qid_h5_attr_write_str(g, "qid_version", qid_version(), err));

    size_t nf = d->n_feat, nr = d->n_rows;
    buf = qid_malloc(qid_mul_size(nr + nf + 2, QID_PREDICTOR_POINT_COLS * sizeof *buf), "predictor: stored tables");
    for (size_t j = 0; j < nf; j++)
        buf[2 * j] = l->importance[j], buf[2 * j + 1] = rep->lin.coef[1 + j];
    snprintf(text, sizeof text,
             "importance,linear_coef (one row per feature, in the order of the 'features' "
             "attribute; linear intercept in the 'linear_intercept' attribute)");
    TRY(qid_fit_write_matrix(g, "importance", buf, nf, 2, text, err));
    TRY(qid_h5_attr_write_f64(g, "linear_intercept", rep->lin.coef[0], err));
    for (size_t a = 0; a < l->n_groups; a++) {
        const qid_fit_logo_row *r = &l->rows[a];
        double *b = buf + 5 * a;
        b[0] = r->group, b[1] = (double)r->n_points, b[2] = r->rmse_forest, b[3] = r->rmse_linear, b[4] = r->rmse_mean;
    }
    TRY(qid_fit_write_matrix(g, "logo", buf, l->n_groups, 5, "group,n_points,rmse_forest,rmse_linear,rmse_mean", err));
    points(rep, o, buf);
    TRY(qid_fit_write_matrix(g, "points", buf, nr, QID_PREDICTOR_POINT_COLS, QID_PREDICTOR_POINT_COLUMNS, err));
    free(buf);
    buf = qid_malloc(qid_mul_size(rep->n_front + 1, 6 * sizeof *buf), "predictor: frontier");
    char *labels = qid_calloc(rep->n_front + 1, 162, "predictor: frontier labels");
    for (size_t a = 0; a < rep->n_front; a++) {
        const qid_predictor_candidate *c = &rep->cand[rep->front[a]];
        double *b = buf + 6 * a;
        b[0] = c->c.params, b[1] = c->d, b[2] = c->c.bits, b[3] = qid_fit_candidate_bytes(&c->c), b[4] = c->c.loss;
        b[5] = c->predicted;
        strcat(labels, a ? "; " : "");
        strcat(labels, c->label);
    }
    int rc = qid_fit_write_matrix(g, "pareto", buf, rep->n_front, 6, "n,d,bits,bytes,loss,predicted", err);
    hid_t ds = H5I_INVALID_HID;
    if (!rc) {
        H5E_BEGIN_TRY { ds = H5Dopen2(g, "pareto", H5P_DEFAULT); }
        H5E_END_TRY;
        rc = ds >= 0 ? qid_h5_attr_write_str(ds, "labels", labels, err)
                     : qid_error_set(err, QID_E_HDF5, "cannot reopen 'pareto'");
        if (ds >= 0) H5Dclose(ds);
    }
    free(labels);
    free(buf);
    return rc;
fail:
    free(buf);
    return err && err->code ? err->code : QID_E_HDF5;
}

int qid_predictor_run(const char *store, const qid_predictor_opts *o, FILE *out, qid_predictor_report *rep_out,
                      qid_error *err)
{
    qid_result *rows = NULL;
    size_t n_rows = 0;
    qid_predictor_report local, *rep = rep_out ? rep_out : &local;
    memset(rep, 0, sizeof *rep);
    int rc = qid_results_read(store, &rows, &n_rows, err);
    if (rc) return rc;
    if ((rc = qid_predictor_fit(rows, n_rows, o, rep, err)) == QID_OK) {
        if (out) qid_predictor_print(out, rep, o);
        write_ctx ctx = {rep, o};
        if ((rc = qid_results_write_fit(store, o->name, write_predictor, &ctx, err)) == QID_OK && out)
            fprintf(out, "written to /fits/%s of %s\n", o->name, store);
    }
    qid_results_rows_free(rows, n_rows);
    if (!rep_out) qid_predictor_report_free(rep);
    return rc;
}

/* ---- reading it back ----------------------------------------------------------------- */

void qid_predictor_stored_free(qid_predictor_stored *s)
{
    if (!s) return;
    free(s->points);
    memset(s, 0, sizeof *s);
}

int qid_predictor_read(const char *store, const char *name, qid_predictor_stored *out, qid_error *err)
{
    memset(out, 0, sizeof *out);
    int64_t fid, g;
    char where[300], kind[32] = "";
    int rc = qid_fit_cmd_open(store, name, "qid predictor", "predictor", &fid, &g, err);
    if (rc) return rc;
    snprintf(where, sizeof where, "/fits/%s", name);
    if (qid_h5_attr_exists(g, "kind") > 0) qid_h5_attr_read_str(g, where, "kind", kind, sizeof kind, err);
    if (strcmp(kind, "predictor") != 0) {
        rc = qid_error_set(err, QID_E_FORMAT, "'%s' in '%s' is not a predictor (kind '%s'; 'qid predictor' writes one)",
                           where, store, kind);
        goto out;
    }
    if ((rc = qid_h5_attr_read_str(g, where, "target", out->target, sizeof out->target, err)) ||
        (rc = qid_h5_attr_read_str(g, where, "holdout", out->holdout, sizeof out->holdout, err)) ||
        (rc = qid_h5_attr_read_f64(g, where, "budget", &out->budget, err)) ||
        (rc = qid_h5_attr_read_f64(g, where, "rmse_forest", &out->rmse_forest, err)) ||
        (rc = qid_h5_attr_read_f64(g, where, "rmse_linear", &out->rmse_linear, err)) ||
        (rc = qid_h5_attr_read_f64(g, where, "rmse_mean", &out->rmse_mean, err)) ||
        (rc = qid_fit_read_matrix(g, where, "points", QID_PREDICTOR_POINT_COLS, &out->points, &out->n_points, err)))
        qid_predictor_stored_free(out);
out:
    H5Gclose((hid_t)g);
    H5Fclose((hid_t)fid);
    return rc;
}

/* ---- command line -------------------------------------------------------------------- */

int qid_predictor_parse_bytes(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || !(v > 0)) return -1;
    while (*end == ' ')
        end++;
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"", 1},
                 {"b", 1},
                 {"k", 1e3},
                 {"kb", 1e3},
                 {"kib", 1024.0},
                 {"m", 1e6},
                 {"mb", 1e6},
                 {"mib", 1048576.0},
                 {"g", 1e9},
                 {"gb", 1e9},
                 {"gib", 1073741824.0},
                 {"t", 1e12},
                 {"tb", 1e12},
                 {"tib", 1099511627776.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(end, units[i].unit) == 0) {
            *out = v * units[i].mult;
            return 0;
        }
    return -1;
}

static void predictor_usage(FILE *out)
{
    fprintf(out, "usage: qid predictor STORE [--budget BYTES] [--target qid|loss] [--holdout family|model]\n"
                 "                     [--method M] [--format F] [--models a,b] [--trees N] [--min-leaf N]\n"
                 "                     [--mtry N] [--seed S] [--name NAME]\n"
                 "\n"
                 "The post-quantization loss predictor of Xu et al. (2024) on a results store: one\n"
                 "example per quantizer row (rtn, gptq; the last OK row of each task), with the\n"
                 "features log10 N, log10 D, the 16-bit loss, the SQNR of the RTN weights in that\n"
                 "format, element bits, scales per weight (1/block), format family, method and the\n"
                 "radial-probe loss increases where the store has probes rows. A random forest and a\n"
                 "linear baseline are validated by leaving one model family (the model name without\n"
                 "its size, e.g. pythia-160m -> pythia) out at a time; prints their errors, the\n"
                 "feature importances and the Pareto frontier of model size vs bits per weight, and\n"
                 "writes everything to /fits/NAME of the store (default 'predictor'; needs the\n"
                 "store's lock).\n"
                 "\n"
                 "options:\n"
                 "  --budget BYTES     memory budget of the frontier: 1e9, 4GiB, 512MiB, 4GB, 2.5G (default none)\n"
                 "  --target T         qid (default): learn loss - loss16; loss: learn the loss itself\n"
                 "  --holdout H        family (default) or model: what one validation fold holds out\n"
                 "  --method M         only rows of method M (rtn or gptq)\n"
                 "  --format F         only rows of format F\n"
                 "  --models LIST      only these models (comma-separated names)\n"
                 "  --trees N          trees of the forest (default 200)\n"
                 "  --min-leaf N       fewest examples in a leaf (default 2)\n"
                 "  --mtry N           features tried per split (default: a third of them, at least 1)\n"
                 "  --seed S           forest seed (default 1)\n"
                 "  --name NAME        write /fits/NAME (default 'predictor')\n");
}

static int parse_size_arg(const char *s, const char *what, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || s[0] == '-') {
        fprintf(stderr, "qid predictor: error: bad %s '%s' (a whole number)\n", what, s);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

/* 0 or 1 when s is a or b; -1 with a message otherwise. */
static int one_of(const char *s, const char *a, const char *b, const char *what)
{
    if (strcmp(s, a) == 0) return 0;
    if (strcmp(s, b) == 0) return 1;
    fprintf(stderr, "qid predictor: error: bad %s '%s' (%s or %s)\n", what, s, a, b);
    return -1;
}

int qid_predictor_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"budget", required_argument, NULL, 'b'},
                                             {"target", required_argument, NULL, 't'},
                                             {"holdout", required_argument, NULL, 'H'},
                                             {"method", required_argument, NULL, 'm'},
                                             {"format", required_argument, NULL, 'f'},
                                             {"models", required_argument, NULL, 'M'},
                                             {"trees", required_argument, NULL, 'T'},
                                             {"min-leaf", required_argument, NULL, 'L'},
                                             {"mtry", required_argument, NULL, 'y'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"name", required_argument, NULL, 'n'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    qid_predictor_opts o;
    qid_predictor_opts_init(&o);
    size_t v;
    int c;
    qid_h5_silence();
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (qid_predictor_parse_bytes(optarg, &o.budget)) {
                fprintf(stderr, "qid predictor: error: bad --budget '%s' (bytes: e.g. 1e9, 4GiB, 512MiB, 4GB)\n",
                        optarg);
                return 2;
            }
            break;
        case 't':
            if ((o.target = one_of(optarg, "qid", "loss", "--target")) < 0) return 2;
            break;
        case 'H':
            if ((o.holdout = one_of(optarg, "family", "model", "--holdout")) < 0) return 2;
            break;
        case 'm': o.method = optarg; break;
        case 'f': o.format = optarg; break;
        case 'M': o.models = optarg; break;
        case 'T':
            if (parse_size_arg(optarg, "--trees", &v)) return 2;
            if (v == 0) {
                fprintf(stderr, "qid predictor: error: --trees must be at least 1\n");
                return 2;
            }
            o.forest.n_trees = v;
            break;
        case 'L':
            if (parse_size_arg(optarg, "--min-leaf", &v)) return 2;
            if (v == 0) {
                fprintf(stderr, "qid predictor: error: --min-leaf must be at least 1\n");
                return 2;
            }
            o.forest.min_leaf = v;
            break;
        case 'y':
            if (parse_size_arg(optarg, "--mtry", &v)) return 2;
            o.forest.mtry = v;
            break;
        case 's':
            if (parse_size_arg(optarg, "--seed", &v)) return 2;
            o.forest.seed = v;
            break;
        case 'n': o.name = optarg; break;
        case 'h': predictor_usage(stdout); return 0;
        default: predictor_usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "qid predictor: error: %s\n",
                optind >= argc ? "no results store given" : "one results store at a time");
        predictor_usage(stderr);
        return 2;
    }
    if (o.method && !is_quant_method(o.method)) {
        fprintf(stderr, "qid predictor: error: bad --method '%s' (rtn or gptq)\n", o.method);
        return 2;
    }
    qid_error err;
    qid_error_clear(&err);
    if (qid_predictor_run(argv[optind], &o, stdout, NULL, &err)) {
        fflush(stdout);
        fprintf(stderr, "qid predictor: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
