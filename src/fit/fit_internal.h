/* fit_internal.h - what the fit_*.c files share and nothing else includes:
 * the Levenberg-Marquardt engine with Huber/IRLS weights, order statistics,
 * and small helpers.
 *
 * Not a public contract: include/fit.h is. */
#ifndef QID_FIT_INTERNAL_H
#define QID_FIT_INTERNAL_H

#include <stddef.h>

#include "fit.h"

/* A model for the engine: fills f[m] with the model at theta[p] and, when jac
 * is not NULL, jac[m][p] (row-major) with df_i/dtheta_j. Must not allocate. */
typedef void (*qid_fit_model_fn)(const double *theta, const void *ctx, double *f, double *jac);

/* A robust nonlinear least-squares problem: minimise
 *     sum_i scale^2 * huber_c((y_i - f_i(theta)) / (s_i * scale))
 * over theta, where scale is fixed at 1 or re-estimated (MAD of the
 * standardized residuals) at every iteration. */
typedef struct qid_fit_lm {
    size_t m, p;
    qid_fit_model_fn model;
    const void *ctx;
    const double *y;          /* m observations */
    const double *s;          /* m positive scales (standard errors), or NULL for all 1 */
    const char *const *names; /* p parameter names for messages, or NULL */
    double huber_c;           /* INFINITY: plain least squares */
    int fixed_scale;
    int max_iter;
    double xtol, gtol;
} qid_fit_lm;

/* Scratch for qid_fit_lm_run, sized once for the largest problem so that the
 * iterations (and the draws of a bootstrap) do not allocate. */
typedef struct qid_fit_lm_work {
    size_t m_max, p_max;
    double *buf; /* the one allocation */
    double *f, *jac, *r, *w, *a, *b, *f_try, *r_try, *theta_try, *dscale, *tmp;
} qid_fit_lm_work;

void qid_fit_lm_work_init(qid_fit_lm_work *w, size_t m_max, size_t p_max);
void qid_fit_lm_work_free(qid_fit_lm_work *w);

/* What the engine reports besides theta and conv. */
typedef struct qid_fit_lm_out {
    double scale;  /* residual scale at the solution */
    size_t n_down; /* points with Huber weight < 1 at the solution */
} qid_fit_lm_out;

/* Runs the engine from theta (in: start, out: solution). A step's linear
 * least-squares problem [sqrt(W) J / s; sqrt(lambda) D] delta = [sqrt(W) r; 0]
 * is solved by LAPACKE_dgels; info > 0 (a Jacobian column that is exactly
 * zero, i.e. a parameter the data cannot see) is a QID_E_NUMERIC error with
 * `what` as context. A fit that does not converge is not an error. */
int qid_fit_lm_run(const qid_fit_lm *pb, double *theta, qid_fit_conv *conv, qid_fit_lm_out *out, qid_fit_lm_work *w,
                   const char *what, qid_error *err);

/* Huber weight of a standardized residual u. */
double qid_fit_huber_weight(double u, double c);

/* 1.4826 * median |r_i| (a consistent sigma for normal residuals centred at
 * zero), using tmp[m] as scratch. 0 when m == 0. */
double qid_fit_mad_scale(const double *r, size_t m, double *tmp);

/* Type-7 quantile (linear interpolation) of v[0..m) for q in [0, 1]; sorts v
 * in place. NaN when m == 0. */
double qid_fit_quantile_sorted(double *v, size_t m, double q);

/* Sorts v[0..m) ascending (NaN last). */
void qid_fit_sort_doubles(double *v, size_t m);

/* 1 if a and b are equal within a relative 1e-9. */
int qid_fit_same(double a, double b);

/* Number of distinct values (qid_fit_same) in v[0..m); sorts v in place. */
size_t qid_fit_count_distinct(double *v, size_t m);

#endif
