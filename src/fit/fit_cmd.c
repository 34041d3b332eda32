/* fit_cmd.c - `qid fit` and `qid predict` (fit_cmd.h): results-store rows ->
 * qid_fit_obs -> the fits of fit.h -> a printed report and /fits/<name>;
 * predictions from a stored fit or from coefficients on the command line;
 * the training level of a checkpoint of the store.
 *
 * /fits/<name> (hdf5-schema/results.md § /fits) holds scalar attributes
 * (coefficients, intervals, counts, quality, filters, seed), a `draws`
 * dataset [n_draws, 4] (k, alpha, beta, gamma) of the bootstrap, a `lomo`
 * dataset, one group per bit width under `bits/`, the per-factor laws under
 * `factors/{D,N,P}`, and a `loss16` group.
 *
 * Does not: fit the Xu et al. predictor, plot, or print anything from the
 * library functions except qid_fit_cmd_print (and the *_main entry points). */
#include "fit_cmd.h"

#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fit_internal.h"
#include "h5io.h"
#include "version.h"

static const char *const law_names[4] = {"k", "alpha", "beta", "gamma"};

static double law_get(const qid_fit_law *l, int j)
{
    const double v[4] = {l->k, l->alpha, l->beta, l->gamma};
    return v[j];
}

void qid_fit_cmd_opts_init(qid_fit_cmd_opts *o)
{
    *o = (qid_fit_cmd_opts){
        .min_tokens = 0, .max_tokens = INFINITY, .n_boot = 1000, .seed = 1, .z = 2, .name = "default"};
}

/* ---- rows -> observations --------------------------------------------------------- */

int qid_fit_cmd_in_list(const char *list, const char *name)
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

static const qid_result *sort_rows;
static int cmp_key_index(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const char *ki = sort_rows[i].key ? sort_rows[i].key : "", *kj = sort_rows[j].key ? sort_rows[j].key : "";
    int c = strcmp(ki, kj);
    return c ? c : (i > j) - (i < j);
}

unsigned char *qid_fit_cmd_rows_that_count(const qid_result *rows, size_t n)
{
    size_t *idx = qid_malloc(qid_mul_size(n, sizeof *idx), "row order");
    unsigned char *counts = qid_calloc(n ? n : 1, 1, "rows that count");
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    sort_rows = rows;
    qsort(idx, n, sizeof *idx, cmp_key_index);
    for (size_t a = 0; a < n;) {
        size_t b = a, last = SIZE_MAX;
        while (b < n && cmp_key_index(&idx[a], &idx[b]) <= 0 &&
               strcmp(rows[idx[a]].key ? rows[idx[a]].key : "", rows[idx[b]].key ? rows[idx[b]].key : "") == 0) {
            if (rows[idx[b]].status == QID_RESULT_OK) last = idx[b];
            b++;
        }
        if (last != SIZE_MAX) counts[last] = 1;
        a = b;
    }
    free(idx);
    return counts;
}

static const char *ckpt_identity(const qid_result *r)
{
    if (r->ckpt_sha256 && r->ckpt_sha256[0]) return r->ckpt_sha256;
    return r->checkpoint ? r->checkpoint : "";
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

static int intern_num(double **list, size_t *n, double v)
{
    for (size_t i = 0; i < *n; i++)
        if (fabs((*list)[i] - v) <= 1e-9 * fabs(v)) return (int)i;
    *list = qid_realloc(*list, (*n + 1) * sizeof **list, "distinct values");
    (*list)[*n] = v;
    return (int)(*n)++;
}

void qid_fit_cmd_obs(const qid_result *rows, size_t n, const qid_fit_cmd_opts *o, qid_fit_obs **obs, size_t *n_obs,
                     double **n16, double **d16, double **l16, size_t *n_16)
{
    unsigned char *counts = qid_fit_cmd_rows_that_count(rows, n);
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
        if (!(N > 0) || !(D > 0) || D < o->min_tokens || D > o->max_tokens) continue;
        if (!qid_fit_cmd_in_list(o->models, r->model ? r->model : "")) continue;
        const char *method = r->method ? r->method : "";
        if (strcmp(method, "baseline") == 0) {
            size_t before = n_ids16;
            intern(&ids16, &n_ids16, ckpt_identity(r));
            if (n_ids16 == before || !(r->loss > 0) || !isfinite(r->loss)) continue; /* one per checkpoint */
            a[m16] = N, b[m16] = D, c[m16] = r->loss, m16++;
            continue;
        }
        if (strcmp(method, "probes") == 0) continue;
        if (o->method && strcmp(method, o->method) != 0) continue;
        if (o->format && strcmp(r->format ? r->format : "", o->format) != 0) continue;
        if (r->elem_bits <= 0) continue;
        if (o->bits_mask && (r->elem_bits >= 64 || !(o->bits_mask >> r->elem_bits & 1u))) continue;
        if (!isfinite(r->qid) || !(r->qid_se > 0) || !isfinite(r->qid_se)) continue;
        out[m++] = (qid_fit_obs){.ckpt = intern(&ids, &n_ids, ckpt_identity(r)),
                                 .group = intern_num(&groups, &n_groups, N),
                                 .n = N,
                                 .d = D,
                                 .p = r->elem_bits,
                                 .qid = r->qid,
                                 .se = r->qid_se,
                                 .loss16 = r->loss16};
    }
    *obs = out, *n_obs = m;
    if (n16)
        *n16 = a;
    else
        free(a);
    if (d16)
        *d16 = b;
    else
        free(b);
    if (l16)
        *l16 = c;
    else
        free(c);
    if (n_16) *n_16 = m16;
    free(ids), free(ids16), free(groups), free(counts);
}

/* ---- fitting ------------------------------------------------------------------------ */

void qid_fit_list_vadd(char *buf, size_t cap, const char *fmt, va_list ap)
{
    size_t len = strlen(buf);
    if (len && len + 2 < cap) strcat(buf, "; "), len += 2;
    if (len < cap) vsnprintf(buf + len, cap - len, fmt, ap);
}

void qid_fit_list_add(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qid_fit_list_vadd(buf, cap, fmt, ap);
    va_end(ap);
}

void qid_fit_list_print(FILE *out, const char *prefix, const char *list)
{
    for (const char *w = list; *w;) {
        const char *e = strstr(w, "; ");
        int len = e ? (int)(e - w) : (int)strlen(w);
        fprintf(out, "%s%.*s\n", prefix, len, w);
        w = e ? e + 2 : w + len;
    }
}

static void warn_add(qid_fit_cmd_report *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn_add(qid_fit_cmd_report *rep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qid_fit_list_vadd(rep->warnings, sizeof rep->warnings, fmt, ap);
    va_end(ap);
    rep->n_warnings++;
}

static size_t distinct(const qid_fit_obs *obs, size_t n, int field)
{
    double *v = NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        intern_num(&v, &k, field == 0 ? obs[i].n : field == 1 ? obs[i].d : field == 2 ? obs[i].p : obs[i].ckpt + 1.0);
    free(v);
    return k;
}

void qid_fit_cmd_report_free(qid_fit_cmd_report *rep)
{
    if (!rep) return;
    qid_fit_boot_free(&rep->boot);
    qid_fit_lomo_free(&rep->lomo);
    free(rep->by_bits);
    for (int f = 0; f < QID_FIT_CMD_N_FACTORS; f++)
        free(rep->factor[f]);
    memset(rep, 0, sizeof *rep);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

qid_fit_obs *qid_fit_cmd_bin_tokens(const qid_fit_obs *obs, size_t n)
{
    qid_fit_obs *out = qid_malloc(qid_mul_size(n ? n : 1, sizeof *out), "binned observations");
    double *v = qid_malloc(qid_mul_size(n ? n : 1, sizeof *v), "token bins");
    for (size_t i = 0; i < n; i++)
        v[i] = obs[i].d;
    qsort(v, n, sizeof *v, cmp_dbl);
    /* v[a..b) is one bin: every value within QID_FIT_CMD_D_BIN of v[a]. */
    for (size_t a = 0; a < n;) {
        size_t b = a;
        double lsum = 0;
        while (b < n && v[b] <= v[a] * QID_FIT_CMD_D_BIN)
            lsum += log(v[b++]);
        double lo = v[a], hi = v[b - 1], centre = exp(lsum / (double)(b - a));
        if (b - a == 1 || lo == hi) centre = lo;
        for (size_t i = 0; i < n; i++)
            if (obs[i].d >= lo && obs[i].d <= hi) {
                out[i] = obs[i];
                out[i].d = centre;
            }
        a = b;
    }
    free(v);
    return out;
}

int qid_fit_cmd_fit(const qid_fit_obs *obs, size_t n, const double *n16, const double *d16, const double *l16, size_t m,
                    const qid_fit_cmd_opts *o, qid_fit_cmd_report *rep, qid_error *err)
{
    memset(rep, 0, sizeof *rep);
    qid_fit_opts fo;
    qid_fit_opts_init(&fo);
    fo.z = o->z;
    fo.seed = o->seed;
    fo.n_boot = o->n_boot;
    rep->n_points = n;
    rep->n_models = distinct(obs, n, 0);
    rep->n_tokens_values = distinct(obs, n, 1);
    rep->n_bits_values = distinct(obs, n, 2);
    rep->n_checkpoints = distinct(obs, n, 3);
    if (n == 0) return qid_error_set(err, QID_E_INVALID, "no QiD points pass the filters (no OK quantizer rows)");
    if (n < 5)
        return qid_error_set(err, QID_E_INVALID,
                             "too few points to fit the unified law: %zu (needs at least 5 for 4 coefficients)", n);
    if (qid_fit_law_fit(obs, n, &fo, &rep->law, err)) {
        qid_error_wrap(err, err ? err->code : QID_E_INVALID, "cannot fit the unified law to %zu points", n);
        return err ? err->code : QID_E_INVALID;
    }
    if (n < QID_FIT_CMD_MIN_POINTS)
        warn_add(rep, "too few points: %zu (fewer than %d): the coefficients and intervals are unreliable", n,
                 QID_FIT_CMD_MIN_POINTS);
    if (rep->n_models < 3 || rep->n_bits_values < 3 || rep->n_tokens_values < 3)
        warn_add(rep, "few distinct values (N %zu, D %zu, P %zu: 3 or more of each pin the exponents down)",
                 rep->n_models, rep->n_tokens_values, rep->n_bits_values);
    if (!rep->law.conv.converged)
        warn_add(rep, "the robust refinement did not converge (%d iterations, last step %.3g)",
                 rep->law.conv.iterations, rep->law.conv.step);
    if (!(rep->law.r2_log >= QID_FIT_CMD_MIN_R2))
        warn_add(rep, "poor fit: R^2 (log) %.3f < %.2f", rep->law.r2_log, QID_FIT_CMD_MIN_R2);

    qid_error e;
    rep->boot_status = QID_OK;
    if (o->n_boot > 0) {
        qid_error_clear(&e);
        if ((rep->boot_status = qid_fit_law_bootstrap(obs, n, &fo, &rep->boot, &e)) != QID_OK) {
            snprintf(rep->boot_msg, sizeof rep->boot_msg, "%s", e.msg);
            warn_add(rep, "no bootstrap intervals: %s", e.msg);
        }
    }
    qid_error_clear(&e);
    if ((rep->lomo_status = qid_fit_law_lomo(obs, n, &fo, &rep->lomo, &e)) != QID_OK)
        warn_add(rep, "no leave-one-model-size-out error: %s", e.msg);
    else if (rep->lomo.n_failed)
        warn_add(rep, "leave-one-model-size-out: %zu of %zu fits failed", rep->lomo.n_failed, rep->lomo.n_groups);
    qid_error_clear(&e);
    if (qid_fit_groups(obs, n, QID_FIT_BY_BITS, &fo, &rep->by_bits, &rep->n_by_bits, &e)) rep->n_by_bits = 0;
    static const enum qid_fit_by factor_by[QID_FIT_CMD_N_FACTORS] = {QID_FIT_BY_FACTOR_D, QID_FIT_BY_FACTOR_N,
                                                                     QID_FIT_BY_FACTOR_P};
    qid_fit_obs *binned = qid_fit_cmd_bin_tokens(obs, n);
    for (int f = 0; f < QID_FIT_CMD_N_FACTORS; f++) {
        qid_error_clear(&e);
        if (qid_fit_groups(f == QID_FIT_CMD_FACTOR_N ? binned : obs, n, factor_by[f], &fo, &rep->factor[f],
                           &rep->n_factor[f], &e))
            rep->n_factor[f] = 0;
        rep->factor_median[f] =
            qid_fit_groups_median(rep->factor[f], rep->n_factor[f], factor_by[f], 3, &rep->factor_used[f]);
    }
    free(binned);

    rep->n_loss16_points = m;
    if (m == 0) {
        rep->loss16_status = QID_E_INVALID;
        snprintf(rep->loss16_msg, sizeof rep->loss16_msg, "no baseline rows pass the filters");
    } else {
        qid_error_clear(&e);
        if ((rep->loss16_status = qid_fit_loss16_fit(n16, d16, l16, m, &fo, &rep->loss16, &e)) != QID_OK)
            snprintf(rep->loss16_msg, sizeof rep->loss16_msg, "%s", e.msg);
        else if (!rep->loss16.conv.converged)
            warn_add(rep, "the 16-bit loss law did not converge (%d iterations)", rep->loss16.conv.iterations);
    }
    return QID_OK;
}

/* ---- printing ------------------------------------------------------------------------ */

static void print_filters(FILE *out, const qid_fit_cmd_opts *o)
{
    fprintf(out, "filters: method %s, format %s, bits ", o->method ? o->method : "any", o->format ? o->format : "any");
    if (!o->bits_mask) fprintf(out, "any");
    for (int p = 1, first = 1; p < 64; p++)
        if (o->bits_mask >> p & 1u) fprintf(out, "%s%d", first ? "" : ",", p), first = 0;
    fprintf(out, ", tokens [%.4g, %.4g], models %s\n", o->min_tokens, o->max_tokens, o->models ? o->models : "all");
}

/* What each per-factor law is, for print and /fits. */
static const struct {
    const char *exponent, *law, *dir;
} factor_info[QID_FIT_CMD_N_FACTORS] = {
    {"beta", "QiD = c * D^beta for each (N, P)", "D"},
    {"alpha", "QiD = c / N^alpha for each (D bin, P)", "N"},
    {"gamma", "QiD = c / P^gamma for each (N, D)", "P"},
};

static void print_factors(FILE *out, const qid_fit_cmd_report *rep, const qid_fit_cmd_opts *o)
{
    const double unified[QID_FIT_CMD_N_FACTORS] = {rep->law.law.beta, rep->law.law.alpha, rep->law.law.gamma};
    fprintf(out, "per-factor laws (median exponent over the groups with a fit; the unified law's in brackets):\n");
    for (int f = 0; f < QID_FIT_CMD_N_FACTORS; f++) {
        fprintf(out, "  %-38s median %-5s ", factor_info[f].law, factor_info[f].exponent);
        if (rep->factor_used[f])
            fprintf(out, "%8.4f over %zu of %zu groups  [unified %.4f]\n", rep->factor_median[f], rep->factor_used[f],
                    rep->n_factor[f], unified[f]);
        else
            fprintf(out, "no group has a fit (%zu groups%s%s)\n", rep->n_factor[f], rep->n_factor[f] ? "; first: " : "",
                    rep->n_factor[f] ? rep->factor[f][0].msg : "");
        if (!o->factors) continue;
        for (size_t i = 0; i < rep->n_factor[f]; i++) {
            const qid_fit_group *g = &rep->factor[f][i];
            char at[96] = "";
            if (!isnan(g->n)) snprintf(at + strlen(at), sizeof at - strlen(at), "N %-9.4g ", g->n);
            if (!isnan(g->d)) snprintf(at + strlen(at), sizeof at - strlen(at), "D %-9.4g ", g->d);
            if (!isnan(g->p)) snprintf(at + strlen(at), sizeof at - strlen(at), "P %-3g ", g->p);
            if (g->status == QID_OK)
                fprintf(out, "    %-28s c %-11.5g %s %8.4f  %3zu points  R^2 (log) %.4f\n", at, g->fit.law.k,
                        factor_info[f].exponent,
                        qid_fit_group_exponent(g, f == 0   ? QID_FIT_BY_FACTOR_D
                                                  : f == 1 ? QID_FIT_BY_FACTOR_N
                                                           : QID_FIT_BY_FACTOR_P),
                        g->n_points, g->fit.r2_log);
            else
                fprintf(out, "    %-28s %3zu points: no fit: %s\n", at, g->n_points, g->msg);
        }
    }
    if (!o->factors) fprintf(out, "  ('qid fit --factors' prints every group; all are stored in /fits/NAME/factors)\n");
}

void qid_fit_cmd_print(FILE *out, const qid_fit_cmd_report *rep, const qid_fit_cmd_opts *o)
{
    const qid_fit_result *f = &rep->law;
    fprintf(out, "unified law: QiD = k * D^beta / (N^alpha * P^gamma)\n");
    print_filters(out, o);
    fprintf(out,
            "points %zu (significant %zu, down-weighted %zu), checkpoints %zu, model sizes %zu, token counts %zu, "
            "bit widths %zu\n",
            rep->n_points, f->n_significant, f->n_downweighted, rep->n_checkpoints, rep->n_models, rep->n_tokens_values,
            rep->n_bits_values);
    int have_ci = rep->boot.n_draws > 0;
    if (have_ci)
        fprintf(out, "%-6s %12s  %2.0f%% interval (bootstrap by checkpoint: %zu draws, %zu failed, seed %llu)\n", "",
                "value", 100 * rep->boot.level, rep->boot.n_draws, rep->boot.n_failed, (unsigned long long)o->seed);
    else
        fprintf(out, "%-6s %12s  (no bootstrap intervals)\n", "", "value");
    for (int j = 0; j < 4; j++) {
        fprintf(out, "%-6s %12.6g", law_names[j], law_get(&f->law, j));
        if (have_ci) fprintf(out, "  [%.6g, %.6g]", law_get(&rep->boot.lo, j), law_get(&rep->boot.hi, j));
        fprintf(out, "   (log-linear start %.6g)\n", law_get(&f->start, j));
    }
    fprintf(out, "R^2 (log) %.4f, RMSE %.4g nats, residual scale %.3g, %s after %d iterations (step %.2g)\n", f->r2_log,
            f->rmse, f->scale, f->conv.converged ? "converged" : "NOT converged", f->conv.iterations, f->conv.step);
    if (rep->lomo_status == QID_OK) {
        fprintf(out, "leave-one-model-size-out: pooled RMSE %.4g nats\n", rep->lomo.rmse);
        for (size_t g = 0; g < rep->lomo.n_groups; g++) {
            const qid_fit_lomo_row *r = &rep->lomo.rows[g];
            if (r->status == QID_OK)
                fprintf(out, "  N %-10.4g %4zu points  RMSE %.4g  mean |ln pred/qid| %.3f\n", r->n, r->n_points,
                        r->rmse, r->mean_abs_log);
            else
                fprintf(out, "  N %-10.4g %4zu points  fit without it failed (%s)\n", r->n, r->n_points,
                        qid_status_name(r->status));
        }
    }
    if (rep->n_by_bits) {
        fprintf(out, "per bit width: QiD = k_P * D^beta / N^alpha\n  %-3s %12s %9s %9s %7s  %s\n", "P", "k_P", "alpha",
                "beta", "points", "R^2 (log)");
        for (size_t i = 0; i < rep->n_by_bits; i++) {
            const qid_fit_group *g = &rep->by_bits[i];
            if (g->status == QID_OK)
                fprintf(out, "  %-3g %12.6g %9.4f %9.4f %7zu  %.4f%s\n", g->p, g->fit.law.k, g->fit.law.alpha,
                        g->fit.law.beta, g->n_points, g->fit.r2_log, g->fit.conv.converged ? "" : "  NOT converged");
            else
                fprintf(out, "  %-3g %7zu points: no fit: %s\n", g->p, g->n_points, g->msg);
        }
    }
    print_factors(out, rep, o);
    if (rep->loss16_status == QID_OK) {
        const qid_fit_loss16 *l = &rep->loss16.law;
        fprintf(out,
                "16-bit loss law: L = [(Nc/N)^(aN/aD) + Dc/D]^aD: Nc %.4g, Dc %.4g, aN %.4f, aD %.4f (%zu checkpoints, "
                "RMSE log %.3g, R^2 log %.4f, %s)\n",
                l->nc, l->dc, l->an, l->ad, rep->n_loss16_points, rep->loss16.rmse_log, rep->loss16.r2_log,
                rep->loss16.conv.converged ? "converged" : "NOT converged");
    } else {
        fprintf(out, "16-bit loss law: not fitted (%zu checkpoints): %s\n", rep->n_loss16_points, rep->loss16_msg);
    }
    qid_fit_list_print(out, "warning: ", rep->warnings);
}

/* ---- /fits/<name> ------------------------------------------------------------------- */

typedef struct write_ctx {
    const qid_fit_cmd_report *rep;
    const qid_fit_cmd_opts *o;
} write_ctx;

int qid_fit_write_matrix(int64_t group, const char *name, const double *v, size_t rows, size_t cols,
                         const char *columns, qid_error *err)
{
    hid_t g = (hid_t)group, space = H5I_INVALID_HID, d = H5I_INVALID_HID;
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    QID_H5_TRY(err, space = H5Screate_simple(2, dims, NULL), "cannot make the dataspace of '%s'", name);
    QID_H5_TRY(err, d = H5Dcreate2(g, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               "cannot create '%s'", name);
    if (rows)
        QID_H5_TRY(err, H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), "cannot write '%s'", name);
    if (qid_h5_attr_write_str(d, "columns", columns, err)) goto fail;
    H5Dclose(d);
    H5Sclose(space);
    return QID_OK;
fail:
    if (d >= 0) H5Dclose(d);
    if (space >= 0) H5Sclose(space);
    return err ? err->code : QID_E_HDF5;
}

int qid_fit_read_matrix(int64_t group, const char *where, const char *name, size_t cols, double **v, size_t *rows,
                        qid_error *err)
{
    hid_t g = (hid_t)group, d = H5I_INVALID_HID, space = H5I_INVALID_HID;
    hsize_t dims[2] = {0, 0};
    double *buf = NULL;
    *v = NULL;
    *rows = 0;
    QID_H5_TRY(err, d = H5Dopen2(g, name, H5P_DEFAULT), "cannot open '%s/%s'", where, name);
    QID_H5_TRY(err, space = H5Dget_space(d), "cannot read '%s/%s'", where, name);
    if (H5Sget_simple_extent_ndims(space) != 2 || (H5Sget_simple_extent_dims(space, dims, NULL), dims[1] != cols)) {
        qid_error_set(err, QID_E_FORMAT, "'%s/%s' is not an [n, %zu] dataset", where, name, cols);
        goto fail;
    }
    buf = qid_malloc(qid_mul_size((size_t)dims[0] + 1, cols * sizeof *buf), "fit: stored matrix");
    if (dims[0])
        QID_H5_TRY(err, H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), "cannot read '%s/%s'", where,
                   name);
    H5Sclose(space);
    H5Dclose(d);
    *v = buf;
    *rows = (size_t)dims[0];
    return QID_OK;
fail:
    free(buf);
    if (space >= 0) H5Sclose(space);
    if (d >= 0) H5Dclose(d);
    return err && err->code ? err->code : QID_E_HDF5;
}

#define TRY(x)                                                                                                         \
    do {                                                                                                               \
        if ((x) != QID_OK) goto fail;                                                                                  \
    } while (0)

static int write_law_attrs(hid_t g, const qid_fit_result *f, qid_error *err)
{
    for (int j = 0; j < 4; j++)
        TRY(qid_h5_attr_write_f64(g, law_names[j], law_get(&f->law, j), err));
    TRY(qid_h5_attr_write_i64(g, "n_points", (int64_t)f->n_points, err));
    TRY(qid_h5_attr_write_i64(g, "n_significant", (int64_t)f->n_significant, err));
    TRY(qid_h5_attr_write_f64(g, "r2_log", f->r2_log, err));
    TRY(qid_h5_attr_write_f64(g, "rmse", f->rmse, err));
    TRY(qid_h5_attr_write_i64(g, "converged", f->conv.converged, err));
    TRY(qid_h5_attr_write_i64(g, "iterations", f->conv.iterations, err));
    return QID_OK;
fail:
    return err ? err->code : QID_E_HDF5;
}

static int write_fit(int64_t group, void *vctx, qid_error *err)
{
    const write_ctx *ctx = vctx;
    const qid_fit_cmd_report *rep = ctx->rep;
    const qid_fit_cmd_opts *o = ctx->o;
    hid_t g = (hid_t)group, sub = H5I_INVALID_HID, bits = H5I_INVALID_HID;
    double *buf = NULL;
    char text[512], now[32];

    TRY(qid_h5_attr_write_str(g, "kind", "unified", err));
    TRY(qid_h5_attr_write_str(g, "law", "QiD = k * D^beta / (N^alpha * P^gamma)", err));
    TRY(write_law_attrs(g, &rep->law, err));
    for (int j = 0; j < 4; j++) {
        snprintf(text, sizeof text, "start_%s", law_names[j]);
        TRY(qid_h5_attr_write_f64(g, text, law_get(&rep->law.start, j), err));
        int ci = rep->boot.n_draws > 0;
        snprintf(text, sizeof text, "%s_lo", law_names[j]);
        TRY(qid_h5_attr_write_f64(g, text, ci ? law_get(&rep->boot.lo, j) : NAN, err));
        snprintf(text, sizeof text, "%s_hi", law_names[j]);
        TRY(qid_h5_attr_write_f64(g, text, ci ? law_get(&rep->boot.hi, j) : NAN, err));
    }
    TRY(qid_h5_attr_write_f64(g, "level", rep->boot.n_draws ? rep->boot.level : 0.95, err));
    TRY(qid_h5_attr_write_i64(g, "n_downweighted", (int64_t)rep->law.n_downweighted, err));
    TRY(qid_h5_attr_write_f64(g, "scale", rep->law.scale, err));
    TRY(qid_h5_attr_write_i64(g, "n_checkpoints", (int64_t)rep->n_checkpoints, err));
    TRY(qid_h5_attr_write_i64(g, "n_models", (int64_t)rep->n_models, err));
    TRY(qid_h5_attr_write_i64(g, "n_bits", (int64_t)rep->n_bits_values, err));
    TRY(qid_h5_attr_write_i64(g, "n_tokens", (int64_t)rep->n_tokens_values, err));
    TRY(qid_h5_attr_write_i64(g, "boot", (int64_t)o->n_boot, err));
    TRY(qid_h5_attr_write_i64(g, "boot_draws", (int64_t)rep->boot.n_draws, err));
    TRY(qid_h5_attr_write_i64(g, "boot_failed", (int64_t)rep->boot.n_failed, err));
    TRY(qid_h5_attr_write_i64(g, "seed", (int64_t)o->seed, err));
    TRY(qid_h5_attr_write_f64(g, "z", o->z, err));
    TRY(qid_h5_attr_write_f64(g, "lomo_rmse", rep->lomo_status == QID_OK ? rep->lomo.rmse : NAN, err));
    TRY(qid_h5_attr_write_str(g, "filter_method", o->method ? o->method : "", err));
    TRY(qid_h5_attr_write_str(g, "filter_format", o->format ? o->format : "", err));
    text[0] = '\0';
    for (int p = 1; p < 64; p++)
        if (o->bits_mask >> p & 1u)
            snprintf(text + strlen(text), sizeof text - strlen(text), "%s%d", text[0] ? "," : "", p);
    TRY(qid_h5_attr_write_str(g, "filter_bits", text, err));
    TRY(qid_h5_attr_write_str(g, "filter_models", o->models ? o->models : "", err));
    TRY(qid_h5_attr_write_f64(g, "min_tokens", o->min_tokens, err));
    TRY(qid_h5_attr_write_f64(g, "max_tokens", o->max_tokens, err));
    TRY(qid_h5_attr_write_str(g, "warnings", rep->warnings, err));
    qid_utc_now(now, sizeof now);
    TRY(qid_h5_attr_write_str(g, "created_utc", now, err));
    TRY(qid_h5_attr_write_str(g, "qid_version", qid_version(), err));

    size_t nd = rep->boot.n_draws;
    buf = qid_malloc(qid_mul_size(nd ? nd : 1, 4 * sizeof *buf), "bootstrap draws");
    for (size_t i = 0; i < nd; i++)
        for (int j = 0; j < 4; j++)
            buf[4 * i + (size_t)j] = law_get(&rep->boot.draws[i], j);
    TRY(qid_fit_write_matrix(g, "draws", buf, nd, 4, "k,alpha,beta,gamma", err));
    free(buf);
    buf = NULL;

    size_t ng = rep->lomo_status == QID_OK ? rep->lomo.n_groups : 0;
    buf = qid_malloc(qid_mul_size(ng ? ng : 1, 4 * sizeof *buf), "lomo table");
    for (size_t i = 0; i < ng; i++) {
        const qid_fit_lomo_row *r = &rep->lomo.rows[i];
        buf[4 * i] = r->n, buf[4 * i + 1] = (double)r->n_points;
        buf[4 * i + 2] = r->status == QID_OK ? r->rmse : NAN;
        buf[4 * i + 3] = r->status == QID_OK ? r->mean_abs_log : NAN;
    }
    TRY(qid_fit_write_matrix(g, "lomo", buf, ng, 4, "n,n_points,rmse,mean_abs_log", err));
    free(buf);
    buf = NULL;

    QID_H5_TRY(err, bits = H5Gcreate2(g, "bits", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "cannot create 'bits'");
    for (size_t i = 0; i < rep->n_by_bits; i++) {
        const qid_fit_group *b = &rep->by_bits[i];
        snprintf(text, sizeof text, "%g", b->p);
        QID_H5_TRY(err, sub = H5Gcreate2(bits, text, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "cannot create 'bits/%s'",
                   text);
        TRY(qid_h5_attr_write_f64(sub, "p", b->p, err));
        TRY(qid_h5_attr_write_i64(sub, "status", b->status, err));
        TRY(qid_h5_attr_write_str(sub, "message", b->status == QID_OK ? "" : b->msg, err));
        if (b->status == QID_OK)
            TRY(write_law_attrs(sub, &b->fit, err));
        else
            TRY(qid_h5_attr_write_i64(sub, "n_points", (int64_t)b->n_points, err));
        H5Gclose(sub);
        sub = H5I_INVALID_HID;
    }
    H5Gclose(bits);
    bits = H5I_INVALID_HID;

    QID_H5_TRY(err, bits = H5Gcreate2(g, "factors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "cannot create 'factors'");
    for (int f = 0; f < QID_FIT_CMD_N_FACTORS; f++) {
        const double unified[QID_FIT_CMD_N_FACTORS] = {rep->law.law.beta, rep->law.law.alpha, rep->law.law.gamma};
        QID_H5_TRY(err, sub = H5Gcreate2(bits, factor_info[f].dir, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                   "cannot create 'factors/%s'", factor_info[f].dir);
        TRY(qid_h5_attr_write_str(sub, "law", factor_info[f].law, err));
        TRY(qid_h5_attr_write_str(sub, "exponent", factor_info[f].exponent, err));
        TRY(qid_h5_attr_write_f64(sub, "median", rep->factor_median[f], err));
        TRY(qid_h5_attr_write_i64(sub, "n_used", (int64_t)rep->factor_used[f], err));
        TRY(qid_h5_attr_write_i64(sub, "n_groups", (int64_t)rep->n_factor[f], err));
        TRY(qid_h5_attr_write_f64(sub, "unified", unified[f], err));
        size_t nfg = rep->n_factor[f];
        buf = qid_malloc(qid_mul_size(nfg ? nfg : 1, 8 * sizeof *buf), "per-factor table");
        for (size_t i = 0; i < nfg; i++) {
            const qid_fit_group *gr = &rep->factor[f][i];
            int okg = gr->status == QID_OK;
            double *b = buf + 8 * i;
            b[0] = gr->n, b[1] = gr->d, b[2] = gr->p, b[3] = (double)gr->n_points, b[4] = gr->status;
            b[5] = okg ? gr->fit.law.k : NAN;
            b[6] = okg ? qid_fit_group_exponent(gr, f == 0   ? QID_FIT_BY_FACTOR_D
                                                    : f == 1 ? QID_FIT_BY_FACTOR_N
                                                             : QID_FIT_BY_FACTOR_P)
                       : NAN;
            b[7] = okg ? gr->fit.r2_log : NAN;
        }
        TRY(qid_fit_write_matrix(sub, "groups", buf, nfg, 8, "n,d,p,n_points,status,c,exponent,r2_log", err));
        free(buf);
        buf = NULL;
        H5Gclose(sub);
        sub = H5I_INVALID_HID;
    }
    H5Gclose(bits);
    bits = H5I_INVALID_HID;

    QID_H5_TRY(err, sub = H5Gcreate2(g, "loss16", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "cannot create 'loss16'");
    TRY(qid_h5_attr_write_str(sub, "law", "L = [(nc/N)^(an/ad) + dc/D]^ad", err));
    TRY(qid_h5_attr_write_i64(sub, "status", rep->loss16_status, err));
    TRY(qid_h5_attr_write_str(sub, "message", rep->loss16_status == QID_OK ? "" : rep->loss16_msg, err));
    TRY(qid_h5_attr_write_i64(sub, "n_points", (int64_t)rep->n_loss16_points, err));
    {
        int okl = rep->loss16_status == QID_OK;
        const qid_fit_loss16 *l = &rep->loss16.law;
        TRY(qid_h5_attr_write_f64(sub, "nc", okl ? l->nc : NAN, err));
        TRY(qid_h5_attr_write_f64(sub, "dc", okl ? l->dc : NAN, err));
        TRY(qid_h5_attr_write_f64(sub, "an", okl ? l->an : NAN, err));
        TRY(qid_h5_attr_write_f64(sub, "ad", okl ? l->ad : NAN, err));
        TRY(qid_h5_attr_write_f64(sub, "rmse_log", okl ? rep->loss16.rmse_log : NAN, err));
        TRY(qid_h5_attr_write_f64(sub, "r2_log", okl ? rep->loss16.r2_log : NAN, err));
        TRY(qid_h5_attr_write_i64(sub, "converged", okl ? rep->loss16.conv.converged : 0, err));
    }
    H5Gclose(sub);
    return QID_OK;
fail:
    free(buf);
    if (sub >= 0) H5Gclose(sub);
    if (bits >= 0) H5Gclose(bits);
    return err && err->code ? err->code : QID_E_HDF5;
}

int qid_fit_cmd_run(const char *store, const qid_fit_cmd_opts *o, FILE *out, qid_fit_cmd_report *rep_out,
                    qid_error *err)
{
    qid_result *rows = NULL;
    size_t n_rows = 0, n_obs = 0, m16 = 0;
    qid_fit_obs *obs = NULL;
    double *n16 = NULL, *d16 = NULL, *l16 = NULL;
    qid_fit_cmd_report local, *rep = rep_out ? rep_out : &local;
    memset(rep, 0, sizeof *rep);
    int rc = qid_results_read(store, &rows, &n_rows, err);
    if (rc) return rc;
    qid_fit_cmd_obs(rows, n_rows, o, &obs, &n_obs, &n16, &d16, &l16, &m16);
    if ((rc = qid_fit_cmd_fit(obs, n_obs, n16, d16, l16, m16, o, rep, err)) == QID_OK) {
        if (out) qid_fit_cmd_print(out, rep, o);
        write_ctx ctx = {rep, o};
        if ((rc = qid_results_write_fit(store, o->name, write_fit, &ctx, err)) == QID_OK && out)
            fprintf(out, "written to /fits/%s of %s\n", o->name, store);
    }
    free(obs), free(n16), free(d16), free(l16);
    qid_results_rows_free(rows, n_rows);
    if (!rep_out) qid_fit_cmd_report_free(rep);
    return rc;
}

/* ---- reading a stored fit ------------------------------------------------------------ */

int qid_fit_cmd_open(const char *store, const char *name, const char *command, const char *default_name,
                     int64_t *fid_out, int64_t *group_out, qid_error *err)
{
    hid_t fid = H5I_INVALID_HID, fits = H5I_INVALID_HID, g = H5I_INVALID_HID;
    char fmt[64];
    *fid_out = *group_out = H5I_INVALID_HID;
    if (access(store, R_OK) != 0) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", store, strerror(errno));
    H5E_BEGIN_TRY
    {
        fid = H5Fopen(store, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
        if (fid < 0) fid = H5Fopen(store, H5F_ACC_RDONLY, H5P_DEFAULT);
    }
    H5E_END_TRY;
    if (fid < 0) return qid_error_set(err, QID_E_FORMAT, "cannot open '%s' as an HDF5 file", store);
    if (qid_h5_read_format(fid, fmt, sizeof fmt, err)) goto fail;
    if (strcmp(fmt, QID_RESULTS_FORMAT) != 0) {
        qid_error_set(err, QID_E_FORMAT, "'%s' is not a results store (format '%s')", store, fmt);
        goto fail;
    }
    htri_t have = 0;
    H5E_BEGIN_TRY { have = H5Lexists(fid, "fits", H5P_DEFAULT); }
    H5E_END_TRY;
    if (have > 0) QID_H5_TRY(err, fits = H5Gopen2(fid, "fits", H5P_DEFAULT), "cannot open '/fits' in '%s'", store);
    if (have > 0) {
        H5E_BEGIN_TRY { have = H5Lexists(fits, name, H5P_DEFAULT); }
        H5E_END_TRY;
    }
    if (have <= 0) {
        char list[512] = "";
        H5G_info_t info = {0};
        if (fits >= 0 && H5Gget_info(fits, &info) >= 0)
            for (hsize_t i = 0; i < info.nlinks; i++) {
                char nm[128] = "";
                H5Lget_name_by_idx(fits, ".", H5_INDEX_NAME, H5_ITER_INC, i, nm, sizeof nm, H5P_DEFAULT);
                size_t len = strlen(list);
                snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", nm);
            }
        int other = strcmp(name, default_name) != 0;
        qid_error_set(err, QID_E_INVALID, "'%s' has no fit '/fits/%s' (%s%s; run '%s %s%s%s' first)", store, name,
                      list[0] ? "fits there: " : "no fits", list, command, store, other ? " --name " : "",
                      other ? name : "");
        goto fail;
    }
    QID_H5_TRY(err, g = H5Gopen2(fits, name, H5P_DEFAULT), "cannot open '/fits/%s' in '%s'", name, store);
    H5Gclose(fits);
    *fid_out = fid;
    *group_out = g;
    return QID_OK;
fail:
    if (fits >= 0) H5Gclose(fits);
    H5Fclose(fid);
    return err && err->code ? err->code : QID_E_HDF5;
}

int qid_fit_cmd_read(const char *store, const char *name, qid_fit_law *law, qid_fit_law **draws, size_t *n_draws,
                     double *level, qid_error *err)
{
    int64_t fid, g;
    double v[4];
    char where[300];
    if (draws) *draws = NULL;
    if (n_draws) *n_draws = 0;
    int rc = qid_fit_cmd_open(store, name, "qid fit", "default", &fid, &g, err);
    if (rc) return rc;
    snprintf(where, sizeof where, "/fits/%s", name);
    char kind[32] = "unified";
    if (qid_h5_attr_exists(g, "kind") > 0 && qid_h5_attr_read_str(g, where, "kind", kind, sizeof kind, err)) goto fail;
    if (strcmp(kind, "unified") != 0) {
        qid_error_set(err, QID_E_INVALID, "'%s' in '%s' is not a law of QiD (kind '%s'; 'qid fit' writes laws)", where,
                      store, kind);
        goto fail;
    }
    for (int j = 0; j < 4; j++)
        if (qid_h5_attr_read_f64(g, where, law_names[j], &v[j], err)) goto fail;
    *law = (qid_fit_law){v[0], v[1], v[2], v[3]};
    if (level && qid_h5_attr_read_f64(g, where, "level", level, err)) goto fail;
    if (draws) {
        htri_t have = 0;
        H5E_BEGIN_TRY { have = H5Lexists(g, "draws", H5P_DEFAULT); }
        H5E_END_TRY;
        if (have > 0) {
            double *buf = NULL;
            size_t nd = 0;
            if (qid_fit_read_matrix(g, where, "draws", 4, &buf, &nd, err)) goto fail;
            qid_fit_law *dr = qid_malloc(qid_mul_size(nd + 1, sizeof *dr), "bootstrap draws");
            for (size_t i = 0; i < nd; i++)
                dr[i] = (qid_fit_law){buf[4 * i], buf[4 * i + 1], buf[4 * i + 2], buf[4 * i + 3]};
            free(buf);
            *draws = dr;
            *n_draws = nd;
        }
    }
    H5Gclose(g);
    H5Fclose(fid);
    return QID_OK;
fail:
    H5Gclose(g);
    H5Fclose(fid);
    return err && err->code ? err->code : QID_E_HDF5;
}

/* ---- the training level of a checkpoint ---------------------------------------------- */

static const char *nz(const char *s) { return s ? s : ""; }

int qid_fit_cmd_same_checkpoint(const qid_result *a, const qid_result *b)
{
    const char *x = nz(a->ckpt_sha256), *y = nz(b->ckpt_sha256);
    return strcmp(nz(a->checkpoint), nz(b->checkpoint)) == 0 && (!x[0] || !y[0] || strcmp(x, y) == 0);
}

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
    const qid_result *x = &level_rows[*(const size_t *)a], *y = &level_rows[*(const size_t *)b];
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

int qid_fit_cmd_training_level(const char *store, const char *which, const qid_fit_law *law, const qid_fit_law *draws,
                               size_t n_draws, double level, const char *method, const char *format, uint64_t bits_mask,
                               FILE *out, qid_error *err)
{
    qid_result *rows = NULL;
    size_t n = 0;
    int rc = qid_results_read(store, &rows, &n, err);
    if (rc) return rc;
    unsigned char *counts = qid_fit_cmd_rows_that_count(rows, n);
    size_t *ck = qid_malloc(qid_mul_size(n ? n : 1, sizeof *ck), "training level checkpoints");
    size_t *use = qid_malloc(qid_mul_size(n ? n : 1, sizeof *use), "training level rows");
    double *q = qid_malloc(qid_mul_size(n ? n : 1, 3 * sizeof *q), "training level values");
    double *se = q + (n ? n : 1), *p = se + (n ? n : 1);
    size_t n_ck = 0;
    /* A checkpoint's path, last path component or hash; else a model name. */
    for (int by_model = 0; by_model <= 1 && n_ck == 0; by_model++)
        for (size_t i = 0; i < n; i++) {
            if (!counts[i]) continue;
            if (by_model ? strcmp(nz(rows[i].model), which) != 0 : !names_checkpoint(&rows[i], which)) continue;
            size_t j = 0;
            while (j < n_ck && !qid_fit_cmd_same_checkpoint(&rows[ck[j]], &rows[i]))
                j++;
            if (j == n_ck) ck[n_ck++] = i;
        }
    if (n_ck == 0) {
        char list[600] = "";
        size_t shown = 0, more = 0;
        for (int pass = 0; pass <= 1; pass++) {
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s", pass ? "; models: " : "checkpoints: ");
            shown = 0;
            for (size_t i = 0; i < n; i++) {
                const char *nm = pass ? nz(rows[i].model) : nz(rows[i].checkpoint);
                int seen = 0;
                for (size_t j = 0; j < i && !seen; j++)
                    seen = strcmp(pass ? nz(rows[j].model) : nz(rows[j].checkpoint), nm) == 0;
                if (seen || !nm[0]) continue;
                if (shown < 6)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", shown ? ", " : "", nm);
                else
                    more++;
                shown++;
            }
            if (more) snprintf(list + strlen(list), sizeof list - strlen(list), " and %zu more", more), more = 0;
            if (!shown) snprintf(list + strlen(list), sizeof list - strlen(list), "none");
        }
        rc = qid_error_set(err, QID_E_INVALID, "no checkpoint or model '%s' in '%s' (%s)", which, store, list);
        goto out;
    }
    level_rows = rows;
    qsort(ck, n_ck, sizeof *ck, cmp_level_ckpt);
    int ci = n_draws >= 2;
    qid_fit_boot boot = {.n_draws = n_draws, .draws = (qid_fit_law *)draws, .level = level};
    for (size_t c = 0; c < n_ck; c++) {
        const qid_result *r0 = &rows[ck[c]];
        double N = (double)r0->params, seen = r0->tokens_seen > 0 ? (double)r0->tokens_seen : NAN;
        fprintf(out, "checkpoint %s: model %s, N %.4g, step %lld, tokens seen %.4g\n", nz(r0->checkpoint),
                nz(r0->model), N, (long long)r0->step, seen);
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            const qid_result *r = &rows[i];
            if (!counts[i] || r->status != QID_RESULT_OK || !qid_fit_cmd_same_checkpoint(r, r0)) continue;
            const char *meth = nz(r->method);
            if (strcmp(meth, "rtn") != 0 && strcmp(meth, "gptq") != 0) continue;
            if ((method && method[0] && strcmp(meth, method) != 0) ||
                (format && format[0] && strcmp(nz(r->format), format) != 0))
                continue;
            if (r->elem_bits <= 0 || (bits_mask && (r->elem_bits >= 64 || !(bits_mask >> r->elem_bits & 1u)))) continue;
            if (!isfinite(r->qid) || !(r->qid_se > 0)) continue;
            use[m++] = i;
        }
        if (!m) {
            fprintf(out, "  no quantizer row of this checkpoint passes the fit's filters\n");
            continue;
        }
        qsort(use, m, sizeof *use, cmp_level_row);
        fprintf(out, "  %-4s %-6s %-16s %10s %9s %12s %8s", "P", "method", "format", "QiD", "se", "D implied",
                "/ seen");
        if (ci) fprintf(out, "  %.0f%% interval (bootstrap)", 100 * level);
        fprintf(out, "\n");
        size_t k = 0;
        for (size_t a = 0; a < m; a++) {
            const qid_result *r = &rows[use[a]];
            double P = r->elem_bits, t = qid_fit_tokens_for(law, r->qid, N, P), lo = NAN, hi = NAN;
            if (ci) qid_fit_tokens_for_ci(&boot, &r->qid, &N, &P, 1, level, NULL, &lo, &hi);
            fprintf(out, "  %-4g %-6s %-16s %10.5g %9.3g %12.4g %8.3g", P, nz(r->method), nz(r->format), r->qid,
                    r->qid_se, t, t / seen);
            if (ci) fprintf(out, "  [%.4g, %.4g]", lo, hi);
            fprintf(out, "%s\n", r->qid > 0 ? "" : "  (QiD <= 0: no D)");
            q[k] = r->qid, se[k] = r->qid_se, p[k] = P, k++;
        }
        double t = qid_fit_training_level(law, q, se, N, p, k), lo = NAN, hi = NAN;
        if (ci) level_ci(draws, n_draws, q, se, N, p, k, level, &lo, &hi);
        fprintf(out, "  %-28s %21s %12.4g %8.3g", "all bit widths together", "(weights 1/se^2)", t, t / seen);
        if (ci) fprintf(out, "  [%.4g, %.4g]", lo, hi);
        fprintf(out, "\n");
    }
out:
    free(ck), free(use), free(q), free(counts);
    qid_results_rows_free(rows, n);
    return rc;
}

int qid_fit_cmd_read_filters(const char *store, const char *name, char *method, size_t method_len, char *format,
                             size_t format_len, uint64_t *bits_mask, qid_error *err)
{
    int64_t fid, g;
    char where[300], bits[256] = "";
    method[0] = format[0] = '\0';
    *bits_mask = 0;
    int rc = qid_fit_cmd_open(store, name, "qid fit", "default", &fid, &g, err);
    if (rc) return rc;
    snprintf(where, sizeof where, "/fits/%s", name);
    if (qid_h5_attr_exists(g, "filter_method") > 0)
        rc = qid_h5_attr_read_str(g, where, "filter_method", method, method_len, err);
    if (!rc && qid_h5_attr_exists(g, "filter_format") > 0)
        rc = qid_h5_attr_read_str(g, where, "filter_format", format, format_len, err);
    if (!rc && qid_h5_attr_exists(g, "filter_bits") > 0)
        rc = qid_h5_attr_read_str(g, where, "filter_bits", bits, sizeof bits, err);
    for (const char *s = bits; !rc && *s;) {
        char *e;
        long b = strtol(s, &e, 10);
        if (e == s) break;
        if (b > 0 && b < 64) *bits_mask |= (uint64_t)1 << b;
        s = *e == ',' ? e + 1 : e;
    }
    H5Gclose((hid_t)g);
    H5Fclose((hid_t)fid);
    return rc;
}

/* ---- command lines -------------------------------------------------------------------- */

/* Parses a comma-separated list of positive finite numbers into *v. */
static int parse_list(const char *s, const char *what, double **v, size_t *n)
{
    *n = 0;
    free(*v);
    *v = NULL;
    for (const char *p = s;;) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno || !isfinite(x) || !(x > 0) || (*end && *end != ',')) {
            fprintf(stderr, "qid: error: bad %s '%s' (expected positive numbers separated by commas, e.g. 7e9,70e9)\n",
                    what, s);
            free(*v);
            *v = NULL;
            *n = 0;
            return -1;
        }
        *v = qid_realloc(*v, (*n + 1) * sizeof **v, "number list");
        (*v)[(*n)++] = x;
        if (!*end) return 0;
        p = end + 1;
    }
}

static int parse_bits_mask(const char *s, uint64_t *mask)
{
    double *v = NULL;
    size_t n = 0;
    if (parse_list(s, "--bits", &v, &n)) return -1;
    *mask = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] != floor(v[i]) || v[i] >= 64) {
            fprintf(stderr, "qid fit: error: bad --bits '%s' (whole element bit widths 1..63)\n", s);
            free(v);
            return -1;
        }
        *mask |= (uint64_t)1 << (int)v[i];
    }
    free(v);
    return 0;
}

static int parse_count(const char *s, const char *what, unsigned long long *out)
{
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    if (end == s || *end || errno || s[0] == '-') {
        fprintf(stderr, "qid: error: bad %s '%s' (a whole number >= 0)\n", what, s);
        return -1;
    }
    return 0;
}

static void fit_usage(FILE *out)
{
    fprintf(out, "usage: qid fit STORE [--method M] [--format F] [--bits 2,3,4] [--min-tokens D] [--max-tokens D]\n"
                 "               [--models a,b] [--boot N] [--seed S] [--z Z] [--name NAME] [--factors]\n"
                 "\n"
                 "Fits the scaling laws of QiD to a results store and writes them into its\n"
                 "/fits/NAME (hdf5-schema/results.md): the unified law QiD = k D^beta / (N^alpha P^gamma)\n"
                 "with bootstrap intervals (resampling whole checkpoints), R^2 (log), RMSE and\n"
                 "leave-one-model-size-out error; a law per bit width; the per-factor laws QiD vs D\n"
                 "for each (N, P), vs N for each (D, P) (D within 10%% share a bin) and vs P for each\n"
                 "(N, D), with their median exponents next to the unified law's; the 16-bit loss law\n"
                 "from the baseline rows. Uses the last OK row of each task. Needs the store's lock\n"
                 "for the write (fails while a 'qid run' is writing it).\n"
                 "\n"
                 "options:\n"
                 "  --method M        only rows of quantizer method M (rtn, gptq)\n"
                 "  --format F        only rows of format F\n"
                 "  --bits LIST       only these element bit widths P\n"
                 "  --min-tokens D    only checkpoints with D >= this many tokens\n"
                 "  --max-tokens D    only checkpoints with D <= this many tokens\n"
                 "  --models LIST     only these models (comma-separated names)\n"
                 "  --boot N          bootstrap draws (default 1000; 0: none)\n"
                 "  --seed S          bootstrap seed (default 1)\n"
                 "  --z Z             log-linear start on points with qid > Z*se (default 2)\n"
                 "  --name NAME       write /fits/NAME (default 'default')\n"
                 "  --factors         print every group of the per-factor laws, not only their medians\n");
}

int qid_fit_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"method", required_argument, NULL, 'm'},
                                             {"format", required_argument, NULL, 'f'},
                                             {"bits", required_argument, NULL, 'b'},
                                             {"min-tokens", required_argument, NULL, 'a'},
                                             {"max-tokens", required_argument, NULL, 'A'},
                                             {"models", required_argument, NULL, 'M'},
                                             {"boot", required_argument, NULL, 'B'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"z", required_argument, NULL, 'z'},
                                             {"name", required_argument, NULL, 'n'},
                                             {"factors", no_argument, NULL, 'F'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    qid_fit_cmd_opts o;
    qid_fit_cmd_opts_init(&o);
    double *v = NULL;
    size_t nv = 0;
    unsigned long long u;
    int c;
    qid_h5_silence();
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o.method = optarg; break;
        case 'f': o.format = optarg; break;
        case 'b':
            if (parse_bits_mask(optarg, &o.bits_mask)) goto usage_error;
            break;
        case 'a':
        case 'A':
            if (parse_list(optarg, c == 'a' ? "--min-tokens" : "--max-tokens", &v, &nv) || nv != 1) goto usage_error;
            *(c == 'a' ? &o.min_tokens : &o.max_tokens) = v[0];
            break;
        case 'M': o.models = optarg; break;
        case 'B':
            if (parse_count(optarg, "--boot", &u)) goto usage_error;
            o.n_boot = (size_t)u;
            break;
        case 's':
            if (parse_count(optarg, "--seed", &u)) goto usage_error;
            o.seed = u;
            break;
        case 'z':
            if (parse_list(optarg, "--z", &v, &nv) || nv != 1) goto usage_error;
            o.z = v[0];
            break;
        case 'n': o.name = optarg; break;
        case 'F': o.factors = 1; break;
        case 'h':
            free(v);
            fit_usage(stdout);
            return 0;
        default: fit_usage(stderr); goto usage_error;
        }
    }
    free(v);
    if (optind + 1 != argc) {
        fprintf(stderr, "qid fit: error: %s\n",
                optind >= argc ? "no results store given" : "one results store at a time");
        fit_usage(stderr);
        return 2;
    }
    qid_error err;
    qid_error_clear(&err);
    if (qid_fit_cmd_run(argv[optind], &o, stdout, NULL, &err)) {
        fflush(stdout);
        fprintf(stderr, "qid fit: error: %s\n", err.msg);
        return 1;
    }
    return 0;
usage_error:
    free(v);
    return 2;
}

/* 1 if s is a comma-separated list of numbers (so --training-level gets QiD values, not a checkpoint). */
static int number_list(const char *s)
{
    for (;;) {
        char *end;
        (void)strtod(s, &end);
        if (end == s || (*end && *end != ',')) return 0;
        if (!*end) return 1;
        s = end + 1;
    }
}

static void predict_usage(FILE *out)
{
    fprintf(out, "usage: qid predict STORE [--fit NAME] | --law k,alpha,beta,gamma\n"
                 "                   --params N,... --bits P,... (--tokens D,... | --tokens-for QID,... |\n"
                 "                   --training-level QID,...)\n"
                 "       qid predict STORE [--fit NAME | --law k,alpha,beta,gamma] [--bits P,...]\n"
                 "                   --training-level CKPT\n"
                 "\n"
                 "Evaluates QiD = k D^beta / (N^alpha P^gamma), from /fits/NAME of a store (with\n"
                 "bootstrap intervals when the fit has draws) or from coefficients given with\n"
                 "--law (e.g. Ouyang et al.'s --law 0.017,0.2261,0.5251,5.4967), on the grid of\n"
                 "the lists given:\n"
                 "  --tokens D,...           the QiD predicted after D training tokens\n"
                 "  --tokens-for QID,...     the training tokens after which QiD reaches this value\n"
                 "                           (D = (QiD N^alpha P^gamma / k)^(1/beta))\n"
                 "  --training-level QID,... the training level D a measured QiD implies for N and P\n"
                 "  --training-level CKPT    the D that checkpoint CKPT's measured QiD at each bit width\n"
                 "                           of the store implies, next to its actual tokens seen, and all\n"
                 "                           bit widths together (weighted least squares); CKPT is the\n"
                 "                           checkpoint's path as the job names it, its file name, its\n"
                 "                           tensor hash, or a model name (every checkpoint of the model).\n"
                 "                           Uses the rows the fit was made from (its method, format and\n"
                 "                           bits filters; --bits narrows them)\n"
                 "  --fit NAME               the stored fit to use (default 'default')\n"
                 "  --level L                interval level (default: the fit's, 0.95)\n");
}

int qid_predict_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"fit", required_argument, NULL, 'F'},
                                             {"law", required_argument, NULL, 'L'},
                                             {"params", required_argument, NULL, 'N'},
                                             {"tokens", required_argument, NULL, 'D'},
                                             {"bits", required_argument, NULL, 'P'},
                                             {"tokens-for", required_argument, NULL, 'T'},
                                             {"training-level", required_argument, NULL, 'R'},
                                             {"level", required_argument, NULL, 'l'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *fit_name = "default", *law_arg = NULL, *which = NULL;
    double *N = NULL, *D = NULL, *P = NULL, *Q = NULL, *lv = NULL, level = NAN;
    size_t nN = 0, nD = 0, nP = 0, nQ = 0, nl = 0;
    int mode = 0; /* 'D', 'T' or 'R' */
    int c, rc = 2;
    qid_fit_law law, *draws = NULL;
    size_t n_draws = 0;
    qid_h5_silence();
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'F': fit_name = optarg; break;
        case 'L': law_arg = optarg; break;
        case 'N':
            if (parse_list(optarg, "--params", &N, &nN)) goto out;
            break;
        case 'P':
            if (parse_list(optarg, "--bits", &P, &nP)) goto out;
            break;
        case 'l':
            if (parse_list(optarg, "--level", &lv, &nl) || nl != 1 || lv[0] >= 1) {
                fprintf(stderr, "qid predict: error: bad --level '%s' (one number in (0, 1))\n", optarg);
                goto out;
            }
            level = lv[0];
            break;
        case 'R':
            if (!number_list(optarg)) { /* a checkpoint or model of the store */
                if (mode) {
                    fprintf(stderr, "qid predict: error: give one of --tokens, --tokens-for, --training-level\n");
                    goto out;
                }
                mode = 'C';
                which = optarg;
                break;
            }
            /* fall through */
        case 'D':
        case 'T':
            if (mode && mode != c) {
                fprintf(stderr, "qid predict: error: give one of --tokens, --tokens-for, --training-level\n");
                goto out;
            }
            mode = c;
            if (parse_list(optarg,
                           c == 'D'   ? "--tokens"
                           : c == 'T' ? "--tokens-for"
                                      : "--training-level",
                           c == 'D' ? &D : &Q, c == 'D' ? &nD : &nQ))
                goto out;
            break;
        case 'h':
            predict_usage(stdout);
            rc = 0;
            goto out;
        default: predict_usage(stderr); goto out;
        }
    }
    if (mode == 'C' && (nN || optind + 1 != argc)) {
        fprintf(stderr,
                "qid predict: error: --training-level %s needs the results store it is in, and no --params "
                "(the checkpoint's N is used)\n",
                which);
        goto out;
    }
    if (!mode || (mode != 'C' && (!nN || !nP))) {
        fprintf(stderr, "qid predict: error: need --params, --bits and one of --tokens, --tokens-for, "
                        "--training-level\n");
        predict_usage(stderr);
        goto out;
    }
    if (law_arg) {
        double *lw = NULL;
        size_t nlw = 0;
        char *endp;
        /* the exponents may be any finite value; parse them by hand */
        const char *s = law_arg;
        for (int j = 0; j < 4; j++) {
            errno = 0;
            double x = strtod(s, &endp);
            if (endp == s || errno || !isfinite(x) || (j < 3 && *endp != ',') || (j == 3 && *endp)) {
                fprintf(stderr,
                        "qid predict: error: bad --law '%s' (expected k,alpha,beta,gamma, e.g. "
                        "0.017,0.2261,0.5251,5.4967)\n",
                        law_arg);
                free(lw);
                goto out;
            }
            lw = qid_realloc(lw, (nlw + 1) * sizeof *lw, "law");
            lw[nlw++] = x;
            s = endp + 1;
        }
        law = (qid_fit_law){lw[0], lw[1], lw[2], lw[3]};
        free(lw);
        if (!(law.k > 0)) {
            fprintf(stderr, "qid predict: error: --law needs k > 0\n");
            goto out;
        }
        if (optind != argc && mode != 'C') {
            fprintf(stderr, "qid predict: error: give a store or --law, not both\n");
            goto out;
        }
        printf("law: k %.6g, alpha %.6g, beta %.6g, gamma %.6g (given with --law)\n", law.k, law.alpha, law.beta,
               law.gamma);
    } else {
        if (optind + 1 != argc) {
            fprintf(stderr, "qid predict: error: give one results store (or --law k,alpha,beta,gamma)\n");
            goto out;
        }
        qid_error err;
        qid_error_clear(&err);
        double stored_level = 0.95;
        if (qid_fit_cmd_read(argv[optind], fit_name, &law, &draws, &n_draws, &stored_level, &err)) {
            fprintf(stderr, "qid predict: error: %s\n", err.msg);
            rc = 1;
            goto out;
        }
        if (!(level > 0)) level = stored_level;
        printf("law: k %.6g, alpha %.6g, beta %.6g, gamma %.6g (/fits/%s of %s, %zu bootstrap draws)\n", law.k,
               law.alpha, law.beta, law.gamma, fit_name, argv[optind], n_draws);
    }
    if (!(level > 0)) level = 0.95;
    if (mode == 'C') {
        char fm[64] = "", ff[128] = "";
        uint64_t mask = 0;
        qid_error err;
        qid_error_clear(&err);
        if (!law_arg && qid_fit_cmd_read_filters(argv[optind], fit_name, fm, sizeof fm, ff, sizeof ff, &mask, &err)) {
            fprintf(stderr, "qid predict: error: %s\n", err.msg);
            rc = 1;
            goto out;
        }
        for (size_t k = 0; k < nP; k++)
            if (P[k] == floor(P[k]) && P[k] < 64) mask |= (uint64_t)1 << (int)P[k];
        if (fm[0] || ff[0] || mask)
            printf("rows: method %s, format %s, bits %s (%s)\n", fm[0] ? fm : "any", ff[0] ? ff : "any",
                   mask ? "as listed" : "any", nP ? "--bits" : "the fit's filters");
        if (qid_fit_cmd_training_level(argv[optind], which, &law, draws, n_draws, level, fm, ff, mask, stdout, &err)) {
            fflush(stdout);
            fprintf(stderr, "qid predict: error: %s\n", err.msg);
            rc = 1;
            goto out;
        }
        rc = 0;
        goto out;
    }
    int ci = n_draws >= 2;
    qid_fit_boot boot = {.n_draws = n_draws, .draws = draws, .level = level};
    size_t nX = mode == 'D' ? nD : nQ;
    const char *xname = mode == 'D' ? "D" : "QiD";
    if (mode == 'D')
        printf("%-10s %-10s %-4s %12s", "N", xname, "P", "QiD");
    else
        printf("%-10s %-4s %-8s %12s %12s", "N", "P", xname, mode == 'T' ? "D (tokens)" : "D implied", "D (T tokens)");
    if (ci) printf("  %.0f%% interval (bootstrap, %s)", 100 * level, mode == 'D' ? "QiD" : "tokens");
    printf("\n");
    for (size_t i = 0; i < nN; i++)
        for (size_t k = 0; k < nP; k++)
            for (size_t j = 0; j < nX; j++) {
                double mid, lo = NAN, hi = NAN;
                if (mode == 'D') {
                    double y = qid_fit_law_eval(&law, N[i], D[j], P[k]);
                    if (ci) qid_fit_predict_ci(&boot, &N[i], &D[j], &P[k], 1, level, &mid, &lo, &hi);
                    printf("%-10.4g %-10.4g %-4g %12.5g", N[i], D[j], P[k], y);
                } else {
                    double t = qid_fit_tokens_for(&law, Q[j], N[i], P[k]);
                    if (ci) qid_fit_tokens_for_ci(&boot, &Q[j], &N[i], &P[k], 1, level, &mid, &lo, &hi);
                    printf("%-10.4g %-4g %-8g %12.4g %12.4g", N[i], P[k], Q[j], t, t / 1e12);
                }
                if (ci) printf("  [%.4g, %.4g]", lo, hi);
                printf("\n");
            }
    rc = 0;
out:
    free(N), free(D), free(P), free(Q), free(lv), free(draws);
    return rc;
}
