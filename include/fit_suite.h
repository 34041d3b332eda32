/* fit_suite.h - the laws `qid fit` fits to a results store: the unified law
 * with bootstrap intervals and leave-one-model-size-out error, a law per bit
 * width, the per-factor laws (QiD vs D, vs N, vs P, with their median
 * exponents) and the 16-bit loss law, with warnings a person should read.
 *
 * Input: the observations of fit_obs.h; the fit settings (z, seed, n_boot)
 * of fit.h's qid_fit_opts.
 *
 * Does not: read or write the store (fit_store.h stores a suite in /fits),
 * or print (the command layer, cli_fit.h, does). Nothing here uses MPI. */
#ifndef QID_FIT_SUITE_H
#define QID_FIT_SUITE_H

#include <stddef.h>

#include "error.h"
#include "fit.h"
#include "fit_obs.h"

/* Fewer points than this in the unified fit earn a warning. */
#define QID_FIT_SUITE_MIN_POINTS 20
/* R^2 (log space) below this earns a warning. */
#define QID_FIT_SUITE_MIN_R2 0.8
/* A per-factor median exponent bears out the unified law's when it has the same sign and at least this fraction
 * of its size; otherwise qid fit warns. */
#define QID_FIT_SUITE_FACTOR_AGREE 0.25
/* Per-factor law QiD vs N: checkpoints whose D lie within this ratio of the
 * smallest D of a bin share the bin (equal D, as in Pythia where every size
 * has the same steps, share one exactly). */
#define QID_FIT_SUITE_D_BIN 1.1

/* The per-factor laws, in this order: QiD = c D^beta for each (N, P); QiD =
 * c / N^alpha for each (D bin, P); QiD = c / P^gamma for each (N, D). */
enum { QID_FIT_FACTOR_D = 0, QID_FIT_FACTOR_N = 1, QID_FIT_FACTOR_P = 2, QID_FIT_N_FACTORS = 3 };

/* What each per-factor law is: its exponent's name, the law as text, its
 * group under /fits/<name>/factors, and its grouping for qid_fit_groups. */
typedef struct qid_fit_factor_info {
    const char *exponent, *law, *dir;
    enum qid_fit_by by;
} qid_fit_factor_info;
extern const qid_fit_factor_info qid_fit_factors[QID_FIT_N_FACTORS];

/* Everything fitted. Free with qid_fit_suite_free. */
typedef struct qid_fit_suite {
    size_t n_points, n_checkpoints, n_models, n_bits_values, n_tokens_values;
    double n_min, n_max, d_min, d_max, p_min, p_max; /* the range of the points: predictions beyond it extrapolate */
    qid_fit_result law;                              /* the unified law */
    qid_fit_boot boot;                               /* zeroed when no bootstrap (or it failed: boot_msg) */
    int boot_status;
    char boot_msg[QID_ERROR_MAX];
    qid_fit_lomo lomo; /* zeroed when it failed (lomo_status) */
    int lomo_status;
    qid_fit_group *by_bits; /* per-bit-width laws */
    size_t n_by_bits;
    qid_fit_group *factor[QID_FIT_N_FACTORS]; /* per-factor laws (QID_FIT_FACTOR_*), by group */
    size_t n_factor[QID_FIT_N_FACTORS];
    double factor_median[QID_FIT_N_FACTORS]; /* median exponent over the fitted groups; NaN when none */
    size_t factor_used[QID_FIT_N_FACTORS];   /* groups with a fit */
    int loss16_status;                       /* QID_OK or why there is no 16-bit law (loss16_msg) */
    char loss16_msg[QID_ERROR_MAX];
    size_t n_loss16_points;
    qid_fit_loss16_result loss16;
    size_t n_warnings;
    char warnings[2048]; /* "; "-separated */
} qid_fit_suite;

void qid_fit_suite_free(qid_fit_suite *s);

/* Copies obs[0..n) with each D replaced by the geometric mean of its bin
 * (QID_FIT_SUITE_D_BIN): the points the per-factor law vs N is fitted to.
 * malloc'd (free()). */
qid_fit_obs *qid_fit_bin_tokens(const qid_fit_obs *obs, size_t n);

/* Fits obs[0..n) (and the 16-bit law on n16/d16/l16[0..m)) with fo's
 * settings (z, seed, n_boot) into *s (zeroed first): the unified law, its
 * bootstrap and leave-one-model-size-out error, the per-bit-width and the
 * per-factor laws, the 16-bit law. Points of one bit width P fit Ouyang's law
 * with gamma fixed at 0 (k then holds P^-gamma) and a warning saying so;
 * another form fails on them (it needs several bit widths). Returns
 * QID_OK, or the status of the
 * unified fit with a one-line message in err (too few points, one model
 * size, no significant QiD, a rank-deficient design); the other fits'
 * failures are recorded in s, not returned. */
int qid_fit_suite_run(const qid_fit_obs *obs, size_t n, const double *n16, const double *d16, const double *l16,
                      size_t m, const qid_fit_opts *fo, qid_fit_suite *s, qid_error *err);

/* The suite of a store: its rows (qid_results_read: SWMR, no lock) through
 * filter into observations, then qid_fit_suite_run. Errors: as
 * qid_results_read and qid_fit_suite_run (*s is zeroed or filled either
 * way; free it). */
int qid_fit_suite_of_store(const char *store, const qid_fit_filter *filter, const qid_fit_opts *fo, qid_fit_suite *s,
                           qid_error *err);

#endif
