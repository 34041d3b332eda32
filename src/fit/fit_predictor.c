/* fit_predictor.c - the Xu et al. (2024) predictor of `qid predictor`
 * (fit_predictor.h): results-store rows -> its features -> random forest and
 * linear baseline validated one model family out at a time -> the Pareto
 * frontier of model size vs bits per weight, and /fits/<name> written and
 * read back.
 *
 * Does not: train anything itself (fit_forest.c does), parse command lines,
 * print or plot. */
#include "fit_predictor.h"

#include <ctype.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit_internal.h"
#include "fit_obs.h"
#include "fit_store.h"
#include "h5io.h"
#include "parse.h"
#include "quant.h"

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

/* Reads a comma-separated run of numbers at s (stops at the first item,
 * up to the next ',' or ';', that is not one); returns how many, at most
 * max, stored in v. *end after them. */
static size_t read_numbers(const char *s, double *v, size_t max, const char **end)
{
    size_t n = 0;
    for (;;) {
        char item[64];
        size_t len = strcspn(s, ",;");
        double x;
        if (len == 0 || len >= sizeof item) break;
        memcpy(item, s, len);
        item[len] = '\0';
        if (qid_parse_real(item, &x)) break;
        if (n < max) v[n] = x;
        n++;
        s += len;
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
    char item[32];
    int64_t dirs;
    size_t len = strcspn(q + 11, ",;");
    if (len >= sizeof item) return 0;
    memcpy(item, q + 11, len);
    item[len] = '\0';
    if (qid_parse_int(item, 1, 1000000, &dirs)) return 0;
    size_t want = nr * (size_t)dirs;
    double *losses = qid_malloc(qid_mul_size(want, sizeof *losses), "probe losses");
    size_t got = read_numbers(l + 8, losses, want, &end);
    if (got != want || *end) {
        free(losses);
        return 0;
    }
    for (size_t r = 0; r < nr; r++) {
        double s = 0;
        for (int64_t k = 0; k < dirs; k++)
            s += losses[r * (size_t)dirs + (size_t)k];
        mean[r] = s / (double)dirs;
    }
    free(losses);
    return nr;
}

/* The fixed features, in column order. */
enum {
    F_LOG_N,
    F_LOG_D,
    F_LOSS16,
    F_SQNR,
    F_ELEM,
    F_SCALES,
    F_INT,
    F_MXFP,
    F_MXINT,
    F_NF4,
    F_FP4,
    F_GGUF,
    F_GPTQ,
    F_FIXED
};
static const char *const fixed_names[F_FIXED] = {
    "log10_N",   "log10_D", "loss16",  "rtn_sqnr_db", "elem_bits", "scales_per_weight", "fmt_int", "fmt_mxfp",
    "fmt_mxint", "fmt_nf4", "fmt_fp4", "fmt_gguf",    "gptq"};

/* Column of the format family of a quant.h type. */
static int family_column(enum qid_qtype t)
{
    switch (t) {
    case QID_QTYPE_INT: return F_INT;
    case QID_QTYPE_MXINT: return F_MXINT;
    case QID_QTYPE_NF4: return F_NF4;
    case QID_QTYPE_FP4: return F_FP4;
    default: return qid_quant_traits_of(t)->kind == QID_QUANT_KIND_GGUF ? F_GGUF : F_MXFP;
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
    if (!qid_fit_in_list(o->models, str(r->model))) return 0;
    return r->params > 0 && r->elem_bits > 0 && isfinite(r->loss);
}

/* The feature table of a store while the examples are built. */
typedef struct feature_table {
    const qid_result *rows;
    size_t n;
    unsigned char *counts;                 /* the rows that count */
    double radii[QID_PREDICTOR_MAX_RADII]; /* the probe radii of the store, sorted, distinct */
    size_t n_radii, n_radii_over;
    size_t nf_all;       /* F_FIXED + n_radii */
    double *full;        /* m x nf_all, NaN where unknown */
    double *l16;         /* each candidate row's 16-bit loss */
    size_t *idx;         /* its index in rows */
    size_t m;            /* candidate rows */
    unsigned char *keep; /* per column: kept */
    unsigned char *use;  /* per candidate row: an example */
    size_t kept;         /* examples */
} feature_table;

static void feature_table_free(feature_table *t)
{
    free(t->keep), free(t->use), free(t->full), free(t->l16), free(t->idx), free(t->counts);
}

static void feature_name(const feature_table *t, size_t j, char *buf, size_t len)
{
    if (j < F_FIXED)
        snprintf(buf, len, "%s", fixed_names[j]);
    else
        snprintf(buf, len, "probe_dloss_r%g", t->radii[j - F_FIXED]);
}

/* The probe radii of the store's probes rows (sorted, distinct, at most QID_PREDICTOR_MAX_RADII). */
static void probe_radii(feature_table *t)
{
    double rr[QID_PREDICTOR_MAX_RADII], rm[QID_PREDICTOR_MAX_RADII];
    for (size_t i = 0; i < t->n; i++) {
        if (!t->counts[i] || strcmp(str(t->rows[i].method), "probes") != 0) continue;
        size_t k = parse_probes(str(t->rows[i].options), rr, rm, QID_PREDICTOR_MAX_RADII);
        for (size_t j = 0; j < k; j++) {
            size_t a = 0;
            while (a < t->n_radii && !qid_fit_same(t->radii[a], rr[j]))
                a++;
            if (a < t->n_radii) continue;
            if (t->n_radii == QID_PREDICTOR_MAX_RADII) {
                t->n_radii_over++;
                continue;
            }
            size_t b = t->n_radii++;
            while (b > 0 && t->radii[b - 1] > rr[j]) {
                t->radii[b] = t->radii[b - 1];
                b--;
            }
            t->radii[b] = rr[j];
        }
    }
    t->nf_all = F_FIXED + t->n_radii;
}

/* The 16-bit loss of row r: its loss16, else the loss of the baseline row of the same checkpoint and windows. */
static double row_loss16(const feature_table *t, const qid_result *r)
{
    double base = r->loss16;
    if (isfinite(base)) return base;
    for (size_t j = 0; j < t->n; j++) {
        const qid_result *b = &t->rows[j];
        if (t->counts[j] && strcmp(str(b->method), "baseline") == 0 && qid_fit_same_checkpoint(b, r) &&
            strcmp(str(b->eval_sha256), str(r->eval_sha256)) == 0 &&
            strcmp(str(b->eval_protocol), str(r->eval_protocol)) == 0 && isfinite(b->loss))
            base = b->loss;
    }
    return base;
}

/* The features f[nf_all] of quantizer row r whose 16-bit loss is base (NaN where unknown). */
static void feature_row(const feature_table *t, const qid_result *r, double base, double *f)
{
    for (size_t j = 0; j < t->nf_all; j++)
        f[j] = NAN;
    f[F_LOG_N] = log10((double)r->params);
    if (r->tokens_seen > 0) f[F_LOG_D] = log10((double)r->tokens_seen);
    f[F_LOSS16] = base;
    int gptq = strcmp(str(r->method), "gptq") == 0;
    if (!gptq) f[F_SQNR] = r->sqnr_db;
    for (size_t j = 0; j < t->n && gptq; j++) {
        const qid_result *q = &t->rows[j];
        if (t->counts[j] && strcmp(str(q->method), "rtn") == 0 && qid_fit_same_checkpoint(q, r) &&
            strcmp(str(q->format), str(r->format)) == 0 && q->status == QID_RESULT_OK)
            f[F_SQNR] = q->sqnr_db;
    }
    if (!isfinite(f[F_SQNR])) f[F_SQNR] = NAN;
    f[F_ELEM] = r->elem_bits;
    qid_quant_spec spec;
    qid_error pe;
    qid_error_clear(&pe);
    int parsed = qid_quant_parse(str(r->format), &spec, &pe) == QID_OK;
    int64_t block = r->block >= 0 ? r->block : parsed ? (int64_t)spec.block : -1;
    if (block >= 0) f[F_SCALES] = block > 0 ? 1.0 / (double)block : 0.0;
    if (parsed) {
        for (int c = F_INT; c <= F_GGUF; c++)
            f[c] = 0;
        f[family_column(spec.type)] = 1;
    }
    f[F_GPTQ] = gptq;
    double rr[QID_PREDICTOR_MAX_RADII], rm[QID_PREDICTOR_MAX_RADII];
    for (size_t j = 0; j < t->n && t->n_radii; j++) {
        const qid_result *q = &t->rows[j];
        if (!t->counts[j] || strcmp(str(q->method), "probes") != 0 || !qid_fit_same_checkpoint(q, r)) continue;
        size_t k = parse_probes(str(q->options), rr, rm, QID_PREDICTOR_MAX_RADII);
        for (size_t a = 0; a < k; a++)
            for (size_t b = 0; b < t->n_radii; b++)
                if (qid_fit_same(t->radii[b], rr[a])) f[F_FIXED + b] = rm[a] - base;
    }
}

/* Every quantizer row that counts and passes o with a 16-bit loss: its features. */
static void collect_rows(feature_table *t, const qid_predictor_opts *o, qid_predictor_data *out)
{
    size_t cap = t->n ? t->n : 1;
    t->full = qid_malloc(qid_mul_size(cap, t->nf_all * sizeof *t->full), "predictor: features");
    t->l16 = qid_malloc(qid_mul_size(cap, sizeof *t->l16), "predictor: 16-bit losses");
    t->idx = qid_malloc(qid_mul_size(cap, sizeof *t->idx), "predictor: rows");
    for (size_t i = 0; i < t->n; i++) {
        const qid_result *r = &t->rows[i];
        if (!t->counts[i] || !wanted_quant_row(r, o)) continue;
        out->n_considered++;
        double base = row_loss16(t, r);
        if (!isfinite(base)) {
            out->n_no_loss16++;
            continue;
        }
        feature_row(t, r, base, t->full + t->m * t->nf_all);
        t->l16[t->m] = base;
        t->idx[t->m++] = i;
    }
}

/* Columns: a feature most rows lack is dropped; the rows that lack a kept one are left out; a feature the same on
 * every kept row informs nothing. The notes say which and why. */
static void select_columns(feature_table *t, qid_predictor_data *out)
{
    size_t m = t->m, nf_all = t->nf_all;
    t->keep = qid_calloc(nf_all ? nf_all : 1, 1, "predictor: kept features");
    t->use = qid_calloc(t->n ? t->n : 1, 1, "predictor: kept rows");
    char name[32];
    for (size_t j = 0; j < nf_all; j++) {
        size_t avail = 0;
        for (size_t i = 0; i < m; i++)
            avail += isfinite(t->full[i * nf_all + j]) != 0;
        feature_name(t, j, name, sizeof name);
        t->keep[j] = m > 0 && 2 * avail >= m;
        if (t->keep[j] || m == 0) continue;
        if (avail > 0)
            qid_fit_list_add(out->notes, sizeof out->notes, "%s dropped: known for %zu of %zu rows", name, avail, m);
        else
            qid_fit_list_add(out->notes, sizeof out->notes, "%s dropped: unknown for every row%s", name,
                             j == F_SQNR ? " (no RTN row of the same checkpoint and format has an SQNR)" : "");
    }
    if (t->n_radii_over)
        qid_fit_list_add(out->notes, sizeof out->notes, "only the %d smallest probe radii are used",
                         QID_PREDICTOR_MAX_RADII);
    for (size_t i = 0; i < m; i++) {
        int okrow = 1;
        for (size_t j = 0; j < nf_all; j++)
            if (t->keep[j] && !isfinite(t->full[i * nf_all + j])) okrow = 0;
        t->use[i] = (unsigned char)okrow;
        t->kept += (size_t)okrow;
        out->n_missing += (size_t)!okrow;
    }
    char same[256] = "";
    for (size_t j = 0; j < nf_all; j++) {
        if (!t->keep[j]) continue;
        double first = NAN;
        int varies = 0;
        for (size_t i = 0; i < m; i++) {
            if (!t->use[i]) continue;
            double v = t->full[i * nf_all + j];
            if (isnan(first))
                first = v;
            else if (v != first)
                varies = 1;
        }
        if (!varies) {
            t->keep[j] = 0;
            if (j < F_INT || j > F_GGUF) /* absent format families need no mention */
                snprintf(same + strlen(same), sizeof same - strlen(same), "%s%s", same[0] ? "," : "",
                         j < F_FIXED ? fixed_names[j] : "probe losses");
        }
    }
    if (same[0] && t->kept)
        qid_fit_list_add(out->notes, sizeof out->notes, "the same on every row, not used: %s", same);
}

/* Renumbers the groups of the examples so that ids follow the names' order (tables read alphabetically). */
static void sort_groups(qid_predictor_data *out)
{
    char **sorted = qid_malloc(qid_mul_size(out->n_groups, sizeof *sorted), "predictor: group names");
    memcpy(sorted, out->groups, out->n_groups * sizeof *sorted);
    qsort(sorted, out->n_groups, sizeof *sorted, cmp_str);
    int *remap = qid_malloc(qid_mul_size(out->n_groups, sizeof *remap), "predictor: group order");
    for (size_t g = 0; g < out->n_groups; g++)
        for (size_t h = 0; h < out->n_groups; h++)
            if (sorted[h] == out->groups[g]) remap[g] = (int)h;
    for (size_t i = 0; i < out->n_rows; i++)
        out->group[i] = remap[out->group[i]];
    free(out->groups);
    out->groups = sorted;
    free(remap);
}

/* The index of the example's group (family or model) of row r, adding it when new. */
static int example_group(qid_predictor_data *out, const qid_result *r, const qid_predictor_opts *o)
{
    char fam[160];
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
    return (int)g;
}

/* The examples: the kept columns of the used rows, targets, groups. */
static void fill_examples(const feature_table *t, const qid_predictor_opts *o, qid_predictor_data *out)
{
    size_t kept = t->kept, nf = 0;
    for (size_t j = 0; j < t->nf_all; j++)
        if (t->keep[j]) feature_name(t, j, out->feat[nf++], sizeof out->feat[0]);
    out->n_rows = kept;
    out->n_feat = nf;
    out->x = qid_malloc(qid_mul_size(kept, nf * sizeof *out->x), "predictor: feature matrix");
    double **cols[] = {&out->y, &out->loss, &out->loss16, &out->n, &out->d, &out->bits, &out->elem};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
        *cols[c] = qid_malloc(qid_mul_size(kept, sizeof **cols[c]), "predictor: example column");
    out->group = qid_malloc(qid_mul_size(kept, sizeof *out->group), "predictor: groups");
    out->row = qid_malloc(qid_mul_size(kept, sizeof *out->row), "predictor: rows");
    size_t k = 0;
    for (size_t i = 0; i < t->m; i++) {
        if (!t->use[i]) continue;
        const qid_result *r = &t->rows[t->idx[i]];
        size_t c = 0;
        for (size_t j = 0; j < t->nf_all; j++)
            if (t->keep[j]) out->x[k * nf + c++] = t->full[i * t->nf_all + j];
        out->loss[k] = r->loss;
        out->loss16[k] = t->l16[i];
        out->y[k] = o->target == QID_PREDICTOR_TARGET_LOSS ? r->loss : r->loss - t->l16[i];
        out->n[k] = (double)r->params;
        out->d[k] = r->tokens_seen > 0 ? (double)r->tokens_seen : NAN;
        out->bits[k] = r->bits;
        out->elem[k] = r->elem_bits;
        out->row[k] = t->idx[i];
        out->group[k++] = example_group(out, r, o);
    }
    sort_groups(out);
}

int qid_predictor_data_build(const qid_result *rows, size_t n, const qid_predictor_opts *o, qid_predictor_data *out,
                             qid_error *err)
{
    memset(out, 0, sizeof *out);
    feature_table t = {.rows = rows, .n = n, .counts = qid_fit_rows_that_count(rows, n)};
    probe_radii(&t);
    collect_rows(&t, o, out);
    select_columns(&t, out);
    size_t nf = 0;
    for (size_t j = 0; j < t.nf_all; j++)
        nf += t.keep[j];
    int rc = QID_OK;
    if (t.kept < QID_PREDICTOR_MIN_ROWS) {
        rc = qid_error_set(err, QID_E_INVALID,
                           "too few examples for the predictor: %zu (needs at least %d; %zu quantizer rows pass the "
                           "filters, %zu without a 16-bit loss, %zu missing a feature)",
                           t.kept, QID_PREDICTOR_MIN_ROWS, out->n_considered, out->n_no_loss16, out->n_missing);
    } else if (nf == 0) {
        rc = qid_error_set(err, QID_E_INVALID, "no feature varies across the %zu examples: nothing to predict from",
                           t.kept);
    }
    if (rc) {
        size_t a = out->n_considered, b = out->n_no_loss16, c = out->n_missing;
        qid_predictor_data_free(out);
        out->n_considered = a, out->n_no_loss16 = b, out->n_missing = c;
    } else {
        fill_examples(&t, o, out);
    }
    feature_table_free(&t);
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
    unsigned char *counts = qid_fit_rows_that_count(rows, n);
    qid_predictor_candidate *c = qid_malloc(qid_mul_size(n ? n : 1, sizeof *c), "predictor: candidates");
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const qid_result *r = &rows[i];
        if (!counts[i] || r->status != QID_RESULT_OK) continue;
        int base = strcmp(str(r->method), "baseline") == 0;
        if (!base && !wanted_quant_row(r, o)) continue;
        if (base && !qid_fit_in_list(o->models, str(r->model))) continue;
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

/* Adds a warning to rep->warnings. */
#define WARN(rep, ...) qid_fit_warn_add((rep)->warnings, sizeof(rep)->warnings, &(rep)->n_warnings, __VA_ARGS__)

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
        WARN(rep, "few examples: %zu (fewer than %d); the errors and importances are unreliable", d->n_rows,
             QID_PREDICTOR_FEW_ROWS);
    if (!(rep->logo.rmse_forest < rep->logo.rmse_mean))
        WARN(rep, "the forest does not beat the training-mean predictor on held-out %s (RMSE %.4g vs %.4g)",
             o->holdout == QID_PREDICTOR_BY_MODEL ? "models" : "families", rep->logo.rmse_forest, rep->logo.rmse_mean);

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

/* names[0..n) joined by commas into buf[len] (cut short when full). */
static void join(char *buf, size_t len, const char *const *names, size_t n)
{
    buf[0] = '\0';
    for (size_t j = 0; j < n; j++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", j ? "," : "", names[j]);
}

/* The scalar attributes: kind, settings, sizes, errors, filters, notes. */
static int write_predictor_attrs(hid_t g, const qid_predictor_report *rep, const qid_predictor_opts *o, qid_error *err)
{
    const qid_predictor_data *d = &rep->data;
    const qid_fit_logo *l = &rep->logo;
    char features[2048], groups[2048];
    const char *feat[QID_PREDICTOR_MAX_FEAT];
    for (size_t j = 0; j < d->n_feat; j++)
        feat[j] = d->feat[j];
    join(features, sizeof features, feat, d->n_feat);
    join(groups, sizeof groups, (const char *const *)d->groups, d->n_groups);
    const qid_fit_attr a[] = {
        QID_FIT_ATTR_STR("kind", "predictor"),
        QID_FIT_ATTR_STR("target", o->target == QID_PREDICTOR_TARGET_LOSS ? "loss" : "qid"),
        QID_FIT_ATTR_STR("holdout", o->holdout == QID_PREDICTOR_BY_MODEL ? "model" : "family"),
        QID_FIT_ATTR_STR("features", features),
        QID_FIT_ATTR_STR("groups", groups),
        QID_FIT_ATTR_I64("n_rows", d->n_rows),
        QID_FIT_ATTR_I64("n_considered", d->n_considered),
        QID_FIT_ATTR_I64("n_groups", d->n_groups),
        QID_FIT_ATTR_F64("rmse_forest", l->rmse_forest),
        QID_FIT_ATTR_F64("rmse_linear", l->rmse_linear),
        QID_FIT_ATTR_F64("rmse_mean", l->rmse_mean),
        QID_FIT_ATTR_F64("rmse_train", rep->rmse_train),
        QID_FIT_ATTR_I64("n_trees", o->forest.n_trees),
        QID_FIT_ATTR_I64("min_leaf", o->forest.min_leaf),
        QID_FIT_ATTR_I64("mtry", o->forest.mtry),
        QID_FIT_ATTR_I64("seed", o->forest.seed),
        QID_FIT_ATTR_F64("budget", o->budget > 0 ? o->budget : NAN),
        QID_FIT_ATTR_STR("filter_method", o->method),
        QID_FIT_ATTR_STR("filter_format", o->format),
        QID_FIT_ATTR_STR("filter_models", o->models),
        QID_FIT_ATTR_STR("notes", d->notes),
        QID_FIT_ATTR_STR("warnings", rep->warnings),
    };
    int rc = qid_fit_store_write_attrs(g, a, sizeof a / sizeof a[0], err);
    return rc ? rc : qid_fit_store_write_provenance(g, err);
}

/* The tables importance, logo and points. */
static int write_predictor_tables(hid_t g, const qid_predictor_report *rep, const qid_predictor_opts *o, qid_error *err)
{
    const qid_predictor_data *d = &rep->data;
    const qid_fit_logo *l = &rep->logo;
    size_t nf = d->n_feat, nr = d->n_rows;
    double *buf = qid_malloc(qid_mul_size(nr + nf + l->n_groups + 2, QID_PREDICTOR_POINT_COLS * sizeof *buf),
                             "predictor: tables");
    for (size_t j = 0; j < nf; j++)
        buf[2 * j] = l->importance[j], buf[2 * j + 1] = rep->lin.coef[1 + j];
    int rc = qid_fit_store_write_matrix(g, "importance", buf, nf, 2,
                                        "importance,linear_coef (one row per feature, in the order of the 'features' "
                                        "attribute; linear intercept in the 'linear_intercept' attribute)",
                                        err);
    if (!rc) rc = qid_h5_attr_write_f64(g, "linear_intercept", rep->lin.coef[0], err);
    for (size_t a = 0; a < l->n_groups; a++) {
        const qid_fit_logo_row *r = &l->rows[a];
        double *b = buf + 5 * a;
        b[0] = r->group, b[1] = (double)r->n_points, b[2] = r->rmse_forest, b[3] = r->rmse_linear, b[4] = r->rmse_mean;
    }
    if (!rc)
        rc = qid_fit_store_write_matrix(g, "logo", buf, l->n_groups, 5,
                                        "group,n_points,rmse_forest,rmse_linear,rmse_mean", err);
    points(rep, o, buf);
    if (!rc)
        rc = qid_fit_store_write_matrix(g, "points", buf, nr, QID_PREDICTOR_POINT_COLS, QID_PREDICTOR_POINT_COLUMNS,
                                        err);
    free(buf);
    return rc;
}

/* The table pareto of the frontier, with its candidates' labels. */
static int write_pareto(hid_t g, const qid_predictor_report *rep, qid_error *err)
{
    double *buf = qid_malloc(qid_mul_size(rep->n_front + 1, 6 * sizeof *buf), "predictor: frontier");
    char *labels = qid_calloc(rep->n_front + 1, 162, "predictor: frontier labels");
    for (size_t a = 0; a < rep->n_front; a++) {
        const qid_predictor_candidate *c = &rep->cand[rep->front[a]];
        double *b = buf + 6 * a;
        b[0] = c->c.params, b[1] = c->d, b[2] = c->c.bits, b[3] = qid_fit_candidate_bytes(&c->c), b[4] = c->c.loss;
        b[5] = c->predicted;
        strcat(labels, a ? "; " : "");
        strcat(labels, c->label);
    }
    int rc = qid_fit_store_write_matrix(g, "pareto", buf, rep->n_front, 6, "n,d,bits,bytes,loss,predicted", err);
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
}

static int write_predictor(int64_t group, void *vctx, qid_error *err)
{
    const write_ctx *ctx = vctx;
    hid_t g = (hid_t)group;
    int rc = write_predictor_attrs(g, ctx->rep, ctx->o, err);
    if (!rc) rc = write_predictor_tables(g, ctx->rep, ctx->o, err);
    if (!rc) rc = write_pareto(g, ctx->rep, err);
    return rc;
}

int qid_predictor_write(const char *store, const qid_predictor_report *rep, const qid_predictor_opts *o, qid_error *err)
{
    write_ctx ctx = {rep, o};
    return qid_results_write_fit(store, o->name, write_predictor, &ctx, err);
}

int qid_predictor_of_store(const char *store, const qid_predictor_opts *o, qid_predictor_report *rep, qid_error *err)
{
    qid_result *rows = NULL;
    size_t n_rows = 0;
    memset(rep, 0, sizeof *rep);
    int rc = qid_fit_rows_read(store, &rows, &n_rows, err);
    if (rc) return rc;
    rc = qid_predictor_fit(rows, n_rows, o, rep, err);
    qid_results_rows_free(rows, n_rows);
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
    int rc = qid_fit_store_open(store, name, "qid predictor", "predictor", &fid, &g, err);
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
        (rc = qid_fit_store_read_matrix(g, where, "points", QID_PREDICTOR_POINT_COLS, &out->points, &out->n_points,
                                        err)))
        qid_predictor_stored_free(out);
out:
    H5Gclose((hid_t)g);
    H5Fclose((hid_t)fid);
    return rc;
}
