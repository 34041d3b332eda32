/* fit_compare.h - which law form the data support (`qid fit --compare`): every
 * form of fit.h fitted to the same points and scored the same ways, so that
 * the forms can be told apart and their extrapolations set side by side.
 *
 * The scores, for each form:
 *   - wrmse_log: the weighted RMSE of ln QiD on the significant points
 *     (qid > z*se), weights w_i = (qid_i/se_i)^2 (1/variance of ln qid by
 *     the delta method): sqrt(sum w e^2 / sum w), e = ln qid - ln law;
 *   - AIC and BIC under one likelihood for every form: ln qid_i ~
 *     Normal(ln law_i, sigma^2 / w_i) on the significant points, sigma^2 at
 *     its maximum-likelihood value sum w e^2 / m, so
 *         ln L = -m/2 (ln(2 pi sigma^2) + 1) + 1/2 sum ln w_i,
 *     AIC = 2k - 2 ln L, BIC = k ln m - 2 ln L with k = 4 coefficients + 1
 *     (sigma). The coefficients are the robust fit's (fit.h), plugged in;
 *   - lomo_err: leave-one-model-size-out, the RMS standardized residual
 *     sqrt(mean ((qid - law)/se)^2) over the held-out points of every size
 *     (all of them: a log error on the significant ones only is biased by
 *     the selection, which near the noise favours a law that predicts too
 *     much; standardized residuals are the fit's own scale, 1 for a true law);
 *   - lfo_err: leave-future-out. For each model size (obs.group), its points
 *     with ln D <= ln D_min + cut (ln D_max - ln D_min) (cut 2/3: the first
 *     two thirds of its log D range) are fitted, the later ones predicted;
 *     the same RMS standardized residual over the predicted points.
 * Between every pair of forms, the difference of their lfo_err with a
 * percentile interval from a bootstrap over the future checkpoints (the
 * held-out checkpoints resampled with replacement, the fits kept: the
 * interval is the uncertainty of the score on this much future, not of the
 * fits). And each form's QiD at 7B/70B/405B parameters x 1e14 tokens x 2/3/4
 * bits with bootstrap intervals (qid_fit_law_bootstrap, by checkpoint).
 *
 * Errors (tier 3, one line, nothing else computed): fewer than 2 bit widths
 * for a form that needs them, fewer than 2 model sizes, fewer than 2 future
 * checkpoints with a point of QiD significantly above zero, a fit (on all
 * points or on the past) that fails.
 *
 * Does not: read or write the store (fit_store.h writes a comparison under
 * /fits/<name>/compare), or print. Nothing here uses MPI. */
#ifndef QID_FIT_COMPARE_H
#define QID_FIT_COMPARE_H

#include <stddef.h>

#include "error.h"
#include "fit.h"
#include "fit_obs.h"

/* The leave-future-out cut: the fraction of each model's log D range fitted. */
#define QID_FIT_COMPARE_CUT (2.0 / 3.0)
/* The prediction grid: N x D x P. */
#define QID_FIT_COMPARE_N_PRED 9
extern const double qid_fit_compare_pred_n[3], qid_fit_compare_pred_d, qid_fit_compare_pred_p[3];

/* One form's scores. */
typedef struct qid_fit_compare_law {
    int form;           /* QID_FIT_FORM_* */
    qid_fit_result fit; /* on all points */
    size_t n_coef;      /* the form's coefficients: 4, or 5 with a learning-rate term */
    double wrmse_log, loglik, aic, bic;
    double lomo_err;     /* NaN when every size's fit failed */
    size_t lomo_failed;  /* model sizes whose fit without them failed */
    qid_fit_law lfo_law; /* fitted on the past */
    double lfo_err;
    /* QiD at the grid (size-major: N index * 3 + P index), with bootstrap
     * intervals (NaN without a bootstrap). */
    double pred[QID_FIT_COMPARE_N_PRED], pred_lo[QID_FIT_COMPARE_N_PRED], pred_hi[QID_FIT_COMPARE_N_PRED];
    size_t boot_draws;
} qid_fit_compare_law;

/* lfo_err[a] - lfo_err[b] with its interval. */
typedef struct qid_fit_compare_pair {
    int a, b; /* indices into qid_fit_compare.law */
    double diff, lo, hi;
} qid_fit_compare_pair;

typedef struct qid_fit_compare {
    size_t n_laws;
    qid_fit_compare_law law[QID_FIT_N_FORMS];
    size_t n_pairs;
    qid_fit_compare_pair pair[QID_FIT_N_FORMS * (QID_FIT_N_FORMS - 1) / 2];
    int best_lfo; /* index of the lowest lfo_err */
    double cut, level;
    size_t n_boot; /* draws of the bootstraps (0: no intervals) */
    size_t n_points, n_significant, n_past, n_future, n_future_checkpoints, n_future_significant;
    char note[256]; /* forms qid_fit_compare_of_store left out and why ("" when none) */
} qid_fit_compare;

/* Fits and scores forms[0..n_forms) (distinct QID_FIT_FORM_* ids, at most
 * QID_FIT_N_FORMS) on obs[0..n) with opts' settings (z, Huber, n_boot,
 * seed, level; opts->form and the free mask are ignored: every coefficient
 * is free). *out is filled on success. Errors as above. */
int qid_fit_compare_run(const qid_fit_obs *obs, size_t n, const int *forms, size_t n_forms, const qid_fit_opts *opts,
                        qid_fit_compare *out, qid_error *err);

/* The same on a store's rows (qid_results_read) through filter (fit_obs.h).
 * Errors: as qid_results_read and qid_fit_compare_run. */
/* The same on the rows of a results store that pass the filter. A form
 * with a learning-rate term is left out (and out->note says why) when the
 * points do not all have a learning rate or it does not vary; the other
 * forms are compared as asked. */
int qid_fit_compare_of_store(const char *store, const qid_fit_filter *filter, const int *forms, size_t n_forms,
                             const qid_fit_opts *opts, qid_fit_compare *out, qid_error *err);

#endif
