/* fit_suite.c - the laws `qid fit` fits (fit_suite.h): observations -> the
 * unified law with bootstrap and leave-one-model-size-out error, the
 * per-bit-width and per-factor laws, the 16-bit law, and the warnings.
 *
 * Does not: decide which rows are observations (fit_obs.c), store (fit_store.c)
 * or print (the command layer). */
#include "fit_suite.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const qid_fit_factor_info qid_fit_factors[QID_FIT_N_FACTORS] = {
    {"beta", "QiD = c * D^beta for each (N, P)", "D", QID_FIT_BY_FACTOR_D},
    {"alpha", "QiD = c / N^alpha for each (D bin, P)", "N", QID_FIT_BY_FACTOR_N},
    {"gamma", "QiD = c / P^gamma for each (N, D)", "P", QID_FIT_BY_FACTOR_P},
};

void qid_fit_suite_free(qid_fit_suite *s)
{
    if (!s) return;
    qid_fit_boot_free(&s->boot);
    qid_fit_lomo_free(&s->lomo);
    free(s->by_bits);
    for (int f = 0; f < QID_FIT_N_FACTORS; f++)
        free(s->factor[f]);
    memset(s, 0, sizeof *s);
}

/* Adds a warning to s->warnings. */
#define WARN(s, ...) qid_fit_warn_add((s)->warnings, sizeof(s)->warnings, &(s)->n_warnings, __VA_ARGS__)

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

qid_fit_obs *qid_fit_bin_tokens(const qid_fit_obs *obs, size_t n)
{
    qid_fit_obs *out = qid_malloc(qid_mul_size(n ? n : 1, sizeof *out), "binned observations");
    double *v = qid_malloc(qid_mul_size(n ? n : 1, sizeof *v), "token bins");
    for (size_t i = 0; i < n; i++)
        v[i] = obs[i].d;
    qsort(v, n, sizeof *v, cmp_dbl);
    /* v[a..b) is one bin: every value within QID_FIT_SUITE_D_BIN of v[a]. */
    for (size_t a = 0; a < n;) {
        size_t b = a;
        double lsum = 0;
        while (b < n && v[b] <= v[a] * QID_FIT_SUITE_D_BIN)
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

/* The warnings of the unified fit itself. */
static void warn_unified(qid_fit_suite *s, size_t n)
{
    if (n < QID_FIT_SUITE_MIN_POINTS)
        WARN(s, "too few points: %zu (fewer than %d): the coefficients and intervals are unreliable", n,
             QID_FIT_SUITE_MIN_POINTS);
    if (s->n_models < 3 || (s->n_bits_values < 3 && s->n_bits_values != 1) || s->n_tokens_values < 3)
        WARN(s, "few distinct values (N %zu, D %zu, P %zu: 3 or more of each pin the exponents down)", s->n_models,
             s->n_tokens_values, s->n_bits_values);
    if (!s->law.conv.converged)
        WARN(s, "the robust refinement did not converge (%d iterations, last step %.3g)", s->law.conv.iterations,
             s->law.conv.step);
    if (!(s->law.r2_log >= QID_FIT_SUITE_MIN_R2))
        WARN(s, "poor fit: R^2 (log) %.3f < %.2f", s->law.r2_log, QID_FIT_SUITE_MIN_R2);
}

/* The bootstrap and the leave-one-model-size-out error of the unified law. */
static void fit_uncertainty(const qid_fit_obs *obs, size_t n, const qid_fit_opts *fo, qid_fit_suite *s)
{
    qid_error e;
    s->boot_status = QID_OK;
    if (fo->n_boot > 0) {
        qid_error_clear(&e);
        if ((s->boot_status = qid_fit_law_bootstrap(obs, n, fo, &s->boot, &e)) != QID_OK) {
            snprintf(s->boot_msg, sizeof s->boot_msg, "%s", e.msg);
            WARN(s, "no bootstrap intervals: %s", e.msg);
        }
    }
    qid_error_clear(&e);
    if ((s->lomo_status = qid_fit_law_lomo(obs, n, fo, &s->lomo, &e)) != QID_OK)
        WARN(s, "no leave-one-model-size-out error: %s", e.msg);
    else if (s->lomo.n_failed)
        WARN(s, "leave-one-model-size-out: %zu of %zu fits failed", s->lomo.n_failed, s->lomo.n_groups);
}

/* The per-bit-width and the per-factor laws. */
static void fit_groups(const qid_fit_obs *obs, size_t n, const qid_fit_opts *fo, qid_fit_suite *s)
{
    qid_error e;
    qid_error_clear(&e);
    if (qid_fit_groups(obs, n, QID_FIT_BY_BITS, fo, &s->by_bits, &s->n_by_bits, &e)) s->n_by_bits = 0;
    qid_fit_obs *binned = qid_fit_bin_tokens(obs, n);
    for (int f = 0; f < QID_FIT_N_FACTORS; f++) {
        enum qid_fit_by by = qid_fit_factors[f].by;
        qid_error_clear(&e);
        if (qid_fit_groups(f == QID_FIT_FACTOR_N ? binned : obs, n, by, fo, &s->factor[f], &s->n_factor[f], &e))
            s->n_factor[f] = 0;
        s->factor_median[f] = qid_fit_groups_median(s->factor[f], s->n_factor[f], by, 3, &s->factor_used[f]);
    }
    free(binned);
    /* A poor law of one bit width, and per-factor exponents that do not bear out the unified law's, are said. */
    for (size_t g = 0; g < s->n_by_bits; g++)
        if (s->by_bits[g].status == QID_OK && s->by_bits[g].n_points >= 5 &&
            !(s->by_bits[g].fit.r2_log >= QID_FIT_SUITE_MIN_R2))
            WARN(s, "poor per-bit fit at P %g: R^2 (log) %.3f < %.2f", s->by_bits[g].p, s->by_bits[g].fit.r2_log,
                 QID_FIT_SUITE_MIN_R2);
    const double unified[QID_FIT_N_FACTORS] = {s->law.law.beta, s->law.law.alpha, s->law.law.gamma};
    for (int f = 0; f < QID_FIT_N_FACTORS; f++) {
        double m = s->factor_median[f], u = unified[f];
        if (!s->factor_used[f] || isnan(m) || (f == QID_FIT_FACTOR_P && s->law.law.form != QID_FIT_FORM_OUYANG))
            continue;
        if (m * u <= 0 || fabs(m) < QID_FIT_SUITE_FACTOR_AGREE * fabs(u))
            WARN(s, "the per-factor laws do not bear out the unified %s: median %s %.3g over %zu groups (%s) vs %.3g",
                 qid_fit_factors[f].exponent, qid_fit_factors[f].exponent, m, s->factor_used[f], qid_fit_factors[f].law,
                 u);
    }
}

/* The 16-bit loss law on the baseline points. */
static void fit_loss16(const double *n16, const double *d16, const double *l16, size_t m, const qid_fit_opts *fo,
                       qid_fit_suite *s)
{
    s->n_loss16_points = m;
    if (m == 0) {
        s->loss16_status = QID_E_INVALID;
        snprintf(s->loss16_msg, sizeof s->loss16_msg, "no baseline rows pass the filters");
        return;
    }
    qid_error e;
    qid_error_clear(&e);
    if ((s->loss16_status = qid_fit_loss16_fit(n16, d16, l16, m, fo, &s->loss16, &e)) != QID_OK)
        snprintf(s->loss16_msg, sizeof s->loss16_msg, "%s", e.msg);
    else if (!s->loss16.conv.converged)
        WARN(s, "the 16-bit loss law did not converge (%d iterations)", s->loss16.conv.iterations);
    if (s->loss16_status == QID_OK && !(s->loss16.r2_log >= QID_FIT_SUITE_MIN_R2))
        WARN(s, "poor 16-bit loss law: R^2 (log) %.3f < %.2f", s->loss16.r2_log, QID_FIT_SUITE_MIN_R2);
}

int qid_fit_suite_run(const qid_fit_obs *obs, size_t n, const double *n16, const double *d16, const double *l16,
                      size_t m, const qid_fit_opts *fo, qid_fit_suite *s, qid_error *err)
{
    memset(s, 0, sizeof *s);
    s->n_points = n;
    s->n_models = qid_fit_obs_count_distinct(obs, n, QID_FIT_OBS_N);
    s->n_tokens_values = qid_fit_obs_count_distinct(obs, n, QID_FIT_OBS_D);
    s->n_bits_values = qid_fit_obs_count_distinct(obs, n, QID_FIT_OBS_P);
    s->n_checkpoints = qid_fit_obs_count_distinct(obs, n, QID_FIT_OBS_CKPT);
    s->n_min = s->d_min = s->p_min = INFINITY;
    s->n_max = s->d_max = s->p_max = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        s->n_min = fmin(s->n_min, obs[i].n), s->n_max = fmax(s->n_max, obs[i].n);
        s->d_min = fmin(s->d_min, obs[i].d), s->d_max = fmax(s->d_max, obs[i].d);
        s->p_min = fmin(s->p_min, obs[i].p), s->p_max = fmax(s->p_max, obs[i].p);
    }
    if (n == 0) return qid_error_set(err, QID_E_INVALID, "no QiD points pass the filters (no OK quantizer rows)");
    if (n < 5)
        return qid_error_set(err, QID_E_INVALID,
                             "too few points to fit the unified law: %zu (needs at least 5 for 4 coefficients)", n);
    /* One bit width: Ouyang's law is the per-bit law k_P D^beta / N^alpha,
     * with gamma fixed at 0 (k holds P^-gamma) rather than a singular design.
     * Other forms need several bit widths (fit.h); they fail below. */
    qid_fit_opts one_p;
    if (s->n_bits_values == 1 && (fo->free & QID_FIT_FREE_GAMMA) && fo->form == QID_FIT_FORM_OUYANG) {
        one_p = *fo;
        one_p.free &= ~QID_FIT_FREE_GAMMA;
        one_p.fixed.gamma = 0;
        fo = &one_p;
        WARN(s, "one bit width (P %g): gamma is not fitted but fixed at 0, so k is k / P^gamma of that P", obs[0].p);
    }
    if (qid_fit_law_fit(obs, n, fo, &s->law, err)) {
        qid_error_wrap(err, err ? err->code : QID_E_INVALID, "cannot fit the unified law to %zu points", n);
        return err ? err->code : QID_E_INVALID;
    }
    warn_unified(s, n);
    fit_uncertainty(obs, n, fo, s);
    fit_groups(obs, n, fo, s);
    fit_loss16(n16, d16, l16, m, fo, s);
    return QID_OK;
}

int qid_fit_suite_of_store(const char *store, const qid_fit_filter *filter, const qid_fit_opts *fo, qid_fit_suite *s,
                           qid_error *err)
{
    qid_result *rows = NULL;
    size_t n_rows = 0, n_obs = 0, m16 = 0;
    qid_fit_obs *obs = NULL;
    double *n16 = NULL, *d16 = NULL, *l16 = NULL;
    memset(s, 0, sizeof *s);
    int rc = qid_fit_rows_read(store, &rows, &n_rows, err);
    if (rc) return rc;
    qid_fit_obs_from_rows(rows, n_rows, filter, &obs, &n_obs, &n16, &d16, &l16, &m16);
    if (n_obs == 0) {
        char why[600];
        qid_fit_filter_explain(rows, n_rows, filter, 0, why, sizeof why);
        rc = qid_error_set(err, QID_E_INVALID, "no QiD points pass the filters: %s", why);
    } else {
        rc = qid_fit_suite_run(obs, n_obs, n16, d16, l16, m16, fo, s, err);
    }
    free(obs), free(n16), free(d16), free(l16);
    qid_results_rows_free(rows, n_rows);
    return rc;
}
