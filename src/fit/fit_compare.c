/* fit_compare.c - the law forms side by side (fit_compare.h): each form fitted
 * to the same points, its weighted log RMSE, AIC and BIC, its
 * leave-one-model-size-out and leave-future-out errors, a bootstrap interval
 * on each pairwise difference of the leave-future-out errors, and its
 * predictions far outside the data.
 *
 * Does not: read or write the store, or print. */
#include "fit_compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit_internal.h"
#include "fit_obs.h"
#include "rng.h"

const double qid_fit_compare_pred_n[3] = {7e9, 70e9, 405e9}, qid_fit_compare_pred_d = 1e14,
             qid_fit_compare_pred_p[3] = {2, 3, 4};

static int significant(const qid_fit_obs *o, double z) { return o->qid > 0 && o->qid > z * o->se; }

/* Fits form f on the points with use[i] == 1 and scores the points with
 * score[i] == 1: in log space (in_log), the significant ones with w[i] =
 * (qid/se)^2 and e2[i] = (ln qid - ln law)^2; otherwise every one with
 * w[i] = 1 and e2[i] = ((qid - law)/se)^2. NaN for the others. */
static int fit_score(const qid_fit_obs *obs, size_t n, const unsigned char *use, const unsigned char *score, int in_log,
                     const qid_fit_opts *o, qid_fit_obs *buf, double *w, double *e2, qid_fit_result *res,
                     qid_error *err)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (use[i]) buf[m++] = obs[i];
    int rc = qid_fit_law_fit(buf, m, o, res, err);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        if (!score[i]) continue;
        double f = qid_fit_law_eval_obs(&res->law, &obs[i]);
        if (!in_log) {
            w[i] = 1;
            e2[i] = (obs[i].qid - f) / obs[i].se * ((obs[i].qid - f) / obs[i].se);
            continue;
        }
        if (!significant(&obs[i], o->z)) continue;
        double e = log(obs[i].qid) - log(f);
        w[i] = (obs[i].qid / obs[i].se) * (obs[i].qid / obs[i].se);
        e2[i] = e * e;
    }
    return QID_OK;
}

/* sqrt(sum w e2 / sum w) over the finite entries; NaN when none. */
static double wrms(const double *w, const double *e2, size_t n)
{
    double sw = 0, swe = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(w[i]) && isfinite(e2[i])) sw += w[i], swe += w[i] * e2[i];
    return sw > 0 ? sqrt(swe / sw) : NAN;
}

static void fill_nan(double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = NAN;
}

/* past[i] = 1 when obs[i]'s ln D is within the first `cut` of its group's log D range. */
static void split_future(const qid_fit_obs *obs, size_t n, double cut, unsigned char *past)
{
    for (size_t i = 0; i < n; i++) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t j = 0; j < n; j++)
            if (obs[j].group == obs[i].group) {
                lo = fmin(lo, log(obs[j].d));
                hi = fmax(hi, log(obs[j].d));
            }
        past[i] = log(obs[i].d) <= lo + cut * (hi - lo) + 1e-9 * fmax(1.0, fabs(hi));
    }
}

int qid_fit_compare_run(const qid_fit_obs *obs, size_t n, const int *forms, size_t n_forms, const qid_fit_opts *opts,
                        qid_fit_compare *out, qid_error *err)
{
    memset(out, 0, sizeof *out);
    qid_fit_opts o;
    if (opts)
        o = *opts;
    else
        qid_fit_opts_init(&o);
    o.free = QID_FIT_FREE_ALL;
    if (n_forms < 1 || n_forms > QID_FIT_N_FORMS)
        return qid_error_set(err, QID_E_INVALID, "law comparison: %zu forms (1 to %d)", n_forms, QID_FIT_N_FORMS);
    if (n == 0) return qid_error_set(err, QID_E_INVALID, "law comparison: no points");
    size_t n_bits = qid_fit_obs_count_distinct(obs, n, QID_FIT_OBS_P),
           n_sizes = qid_fit_obs_count_distinct(obs, n, QID_FIT_OBS_N);
    for (size_t f = 0; f < n_forms; f++) {
        const qid_fit_form *F = qid_fit_form_of(forms[f]);
        if (n_bits < F->min_bits)
            return qid_error_set(err, QID_E_INVALID,
                                 "law comparison: the %s law needs at least %zu bit widths P; the %zu points have %zu",
                                 F->name, F->min_bits, n, n_bits);
    }
    if (n_sizes < 2)
        return qid_error_set(err, QID_E_INVALID,
                             "law comparison: leave-one-model-size-out needs at least 2 model sizes; the %zu points "
                             "have %zu",
                             n, n_sizes);

    unsigned char *use = qid_malloc(qid_mul_size(n, 4), "law comparison: masks");
    unsigned char *all = use + n, *past = all + n, *held = past + n;
    memset(all, 1, n);
    out->cut = QID_FIT_COMPARE_CUT;
    split_future(obs, n, out->cut, past);
    /* The future: its points, checkpoints and significant points. */
    int *fck = qid_malloc(qid_mul_size(n, sizeof *fck), "law comparison: future checkpoints");
    size_t n_fck = 0;
    out->n_points = n;
    for (size_t i = 0; i < n; i++) {
        out->n_significant += (size_t)significant(&obs[i], o.z);
        if (past[i]) {
            out->n_past++;
            continue;
        }
        out->n_future++;
        if (!significant(&obs[i], o.z)) continue;
        out->n_future_significant++;
        size_t j = 0;
        while (j < n_fck && fck[j] != obs[i].ckpt)
            j++;
        if (j == n_fck) fck[n_fck++] = obs[i].ckpt;
    }
    out->n_future_checkpoints = n_fck;
    int rc = QID_OK;
    if (n_fck < 2) {
        rc = qid_error_set(err, QID_E_INVALID,
                           "law comparison: leave-future-out needs at least 2 checkpoints beyond the first %.0f%% of "
                           "each model's log D range with QiD significantly above zero; there %s %zu (%zu points "
                           "beyond the cut)",
                           100 * out->cut, n_fck == 1 ? "is" : "are", n_fck, out->n_future);
        free(fck), free(use);
        return rc;
    }

    qid_fit_obs *buf = qid_malloc(qid_mul_size(n, sizeof *buf), "law comparison: points");
    /* Per form f: the weights and squared log errors of its leave-future-out predictions. */
    double *w = qid_malloc(qid_mul_size(n, 2 * QID_FIT_N_FORMS * sizeof *w), "law comparison: scores");
    double *lfo_w[QID_FIT_N_FORMS], *lfo_e2[QID_FIT_N_FORMS];
    for (size_t f = 0; f < n_forms; f++) {
        lfo_w[f] = w + 2 * n * f;
        lfo_e2[f] = lfo_w[f] + n;
    }
    double *tw = qid_malloc(qid_mul_size(n, 2 * sizeof *tw), "law comparison: scratch");
    double *te2 = tw + n;
    out->n_laws = n_forms;
    out->n_boot = o.n_boot;
    out->level = o.level;
    size_t n_groups = 0;
    int *groups = qid_malloc(qid_mul_size(n, sizeof *groups), "law comparison: groups");
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < n_groups && groups[j] != obs[i].group)
            j++;
        if (j == n_groups) groups[n_groups++] = obs[i].group;
    }

    for (size_t f = 0; f < n_forms && rc == QID_OK; f++) {
        qid_fit_compare_law *L = &out->law[f];
        const qid_fit_form *F = qid_fit_form_of(forms[f]);
        o.form = forms[f];
        L->form = forms[f];
        L->n_coef = (size_t)F->n_coef;
        /* All points: the fit, its log RMSE and likelihood. */
        fill_nan(tw, 2 * n);
        if ((rc = fit_score(obs, n, all, all, 1, &o, buf, tw, te2, &L->fit, err))) {
            qid_error_wrap(err, rc, "law comparison: the %s law on all %zu points", F->name, n);
            break;
        }
        double sw = 0, swe = 0, slw = 0;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (isfinite(tw[i])) sw += tw[i], swe += tw[i] * te2[i], slw += log(tw[i]), m++;
        L->wrmse_log = sqrt(swe / sw);
        double s2 = swe / (double)m, k = (double)L->n_coef + 1;
        L->loglik = -0.5 * (double)m * (log(6.283185307179586 * s2) + 1) + 0.5 * slw;
        L->aic = 2 * k - 2 * L->loglik;
        L->bic = k * log((double)m) - 2 * L->loglik;
        /* Leave one model size out. */
        fill_nan(tw, 2 * n);
        for (size_t g = 0; g < n_groups; g++) {
            for (size_t i = 0; i < n; i++)
                use[i] = obs[i].group != groups[g];
            qid_fit_result r;
            qid_error e;
            qid_error_clear(&e);
            for (size_t i = 0; i < n; i++)
                held[i] = !use[i];
            if (fit_score(obs, n, use, held, 0, &o, buf, tw, te2, &r, &e)) L->lomo_failed++;
        }
        L->lomo_err = wrms(tw, te2, n);
        /* Leave the future out. */
        for (size_t i = 0; i < n; i++)
            held[i] = !past[i];
        fill_nan(lfo_w[f], 2 * n);
        qid_fit_result r;
        rc = fit_score(obs, n, past, held, 0, &o, buf, lfo_w[f], lfo_e2[f], &r, err);
        if (rc) {
            qid_error_wrap(err, rc, "law comparison: the %s law on the %zu points before the leave-future-out cut",
                           F->name, out->n_past);
            break;
        }
        L->lfo_law = r.law;
        L->lfo_err = wrms(lfo_w[f], lfo_e2[f], n);
        /* The predictions, with bootstrap intervals. */
        double pn[QID_FIT_COMPARE_N_PRED], pd[QID_FIT_COMPARE_N_PRED], pp[QID_FIT_COMPARE_N_PRED];
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) {
                int j = 3 * a + b;
                pn[j] = qid_fit_compare_pred_n[a], pd[j] = qid_fit_compare_pred_d, pp[j] = qid_fit_compare_pred_p[b];
                L->pred[j] = qid_fit_law_eval(&L->fit.law, pn[j], pd[j], pp[j]);
                L->pred_lo[j] = L->pred_hi[j] = NAN;
            }
        if (o.n_boot >= 10) {
            qid_fit_boot boot;
            qid_error e;
            qid_error_clear(&e);
            if (qid_fit_law_bootstrap(obs, n, &o, &boot, &e) == QID_OK) {
                qid_fit_predict_ci(&boot, pn, pd, pp, QID_FIT_COMPARE_N_PRED, o.level, NULL, L->pred_lo, L->pred_hi);
                L->boot_draws = boot.n_draws;
                qid_fit_boot_free(&boot);
            }
        }
    }

    if (rc == QID_OK) {
        out->best_lfo = 0;
        for (size_t f = 1; f < n_forms; f++)
            if (out->law[f].lfo_err < out->law[out->best_lfo].lfo_err) out->best_lfo = (int)f;
        /* Pairwise differences, the future checkpoints resampled. */
        size_t *pos = qid_malloc(qid_mul_size(n + 1, sizeof *pos), "law comparison: checkpoint index");
        size_t *ord = qid_malloc(qid_mul_size(n + 1, sizeof *ord), "law comparison: checkpoint order");
        size_t k = 0;
        for (size_t c = 0; c < n_fck; c++) {
            pos[c] = k;
            for (size_t i = 0; i < n; i++)
                if (!past[i] && obs[i].ckpt == fck[c]) ord[k++] = i;
        }
        pos[n_fck] = k;
        size_t nb = o.n_boot >= 10 ? o.n_boot : 0;
        double *d = qid_malloc(qid_mul_size(nb + 1, sizeof *d), "law comparison: differences");
        for (size_t a = 0; a < n_forms; a++)
            for (size_t b = a + 1; b < n_forms; b++) {
                qid_fit_compare_pair *P = &out->pair[out->n_pairs++];
                P->a = (int)a, P->b = (int)b;
                P->diff = out->law[a].lfo_err - out->law[b].lfo_err;
                P->lo = P->hi = NAN;
                size_t nd = 0;
                for (size_t t = 0; t < nb; t++) {
                    qid_rng rng;
                    qid_rng_seed(&rng, o.seed, 1000000 + t);
                    double s[2][2] = {{0, 0}, {0, 0}};
                    for (size_t j = 0; j < n_fck; j++) {
                        size_t c = (size_t)qid_rng_below(&rng, n_fck);
                        for (size_t q = pos[c]; q < pos[c + 1]; q++) {
                            size_t i = ord[q];
                            const size_t fa[2] = {a, b};
                            for (int u = 0; u < 2; u++)
                                if (isfinite(lfo_w[fa[u]][i]))
                                    s[u][0] += lfo_w[fa[u]][i], s[u][1] += lfo_w[fa[u]][i] * lfo_e2[fa[u]][i];
                        }
                    }
                    if (s[0][0] > 0 && s[1][0] > 0) d[nd++] = sqrt(s[0][1] / s[0][0]) - sqrt(s[1][1] / s[1][0]);
                }
                if (nd >= 2) {
                    P->lo = qid_fit_quantile_sorted(d, nd, (1 - o.level) / 2);
                    P->hi = qid_fit_quantile_sorted(d, nd, (1 + o.level) / 2);
                }
            }
        free(d), free(pos), free(ord);
    }
    free(groups), free(tw), free(w), free(buf), free(fck), free(use);
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

int qid_fit_compare_of_store(const char *store, const qid_fit_filter *filter, const int *forms, size_t n_forms,
                             const qid_fit_opts *opts, qid_fit_compare *out, qid_error *err)
{
    qid_result *rows = NULL;
    size_t n_rows = 0, n_obs = 0, m16 = 0;
    qid_fit_obs *obs = NULL;
    memset(out, 0, sizeof *out);
    int rc = qid_fit_rows_read(store, &rows, &n_rows, err);
    if (rc) return rc;
    qid_fit_obs_from_rows(rows, n_rows, filter, &obs, &n_obs, NULL, NULL, NULL, &m16);
    /* The learning-rate form only where the points can tell it apart. */
    int keep[QID_FIT_N_FORMS];
    size_t n_keep = 0, no_lr = 0, n_lr = 0;
    double lr0 = NAN;
    int lr_varies = 0;
    for (size_t i = 0; i < n_obs; i++) {
        if (!(obs[i].lr >= 0 && obs[i].lr <= 1)) {
            no_lr++;
            continue;
        }
        if (n_lr++ == 0) lr0 = obs[i].lr;
        lr_varies |= obs[i].lr != lr0;
    }
    char note[256] = "";
    for (size_t f = 0; f < n_forms && f < QID_FIT_N_FORMS; f++) {
        const qid_fit_form *F = qid_fit_form_of(forms[f]);
        if (F->n_coef == QID_FIT_MAX_COEF && (no_lr || !lr_varies)) {
            if (no_lr)
                snprintf(note, sizeof note,
                         "%s left out: %zu of %zu points have no learning rate (qid import --schedule)", F->name, no_lr,
                         n_obs);
            else
                snprintf(note, sizeof note, "%s left out: every point has learning rate %g of the peak", F->name, lr0);
            continue;
        }
        keep[n_keep++] = forms[f];
    }
    rc = n_keep ? qid_fit_compare_run(obs, n_obs, keep, n_keep, opts, out, err)
                : qid_error_set(err, QID_E_INVALID, "law comparison: %s", note);
    if (rc == QID_OK) snprintf(out->note, sizeof out->note, "%s", note);
    free(obs);
    qid_results_rows_free(rows, n_rows);
    return rc;
}
