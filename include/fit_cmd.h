/* fit_cmd.h - `qid fit` and `qid predict`: the scaling laws of a results
 * store (hdf5-schema/results.md), fitted with the regression core (fit.h),
 * printed, and stored in the store's /fits group; and predictions from a
 * stored fit or from coefficients given on the command line.
 *
 * `qid fit` reads the rows through qid_results_read (SWMR, no lock), keeps
 * per task key the row that counts (its last OK row), turns the OK
 * quantizer rows that pass the filters into qid_fit_obs (checkpoint id from
 * the checkpoint's identity, ckpt_sha256 or else its path; group from N),
 * fits the unified law with bootstrap intervals and leave-one-model-size-out
 * error, the per-bit-width laws, and the 16-bit loss law on the baseline
 * rows (one per checkpoint), prints them with clear warnings, and writes
 * them to /fits/<name> through qid_results_write_fit (which takes the
 * store's lock). The layout of /fits/<name> is in hdf5-schema/results.md.
 *
 * Does not: plot, fit the Xu et al. predictor, or change /tasks. Nothing
 * here uses MPI. */
#ifndef QID_FIT_CMD_H
#define QID_FIT_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "fit.h"
#include "results.h"

/* Which rows `qid fit` uses, and how. Start from qid_fit_cmd_opts_init. */
typedef struct qid_fit_cmd_opts {
    const char *method; /* NULL: every quantizer method (never baseline/probes) */
    const char *format; /* NULL: every format */
    uint64_t bits_mask; /* bit P set: element bits P kept (P < 64); 0: all */
    double min_tokens;  /* keep D >= min_tokens (default 0) */
    double max_tokens;  /* keep D <= max_tokens (default INFINITY) */
    const char *models; /* comma-separated model names; NULL: all */
    size_t n_boot;      /* bootstrap draws (default 1000); 0: no bootstrap */
    uint64_t seed;      /* bootstrap seed (default 1) */
    double z;           /* significance threshold of the log-linear start (default 2) */
    const char *name;   /* /fits/<name> (default "default") */
} qid_fit_cmd_opts;

void qid_fit_cmd_opts_init(qid_fit_cmd_opts *o);

/* Fewer points than this in the unified fit earn a warning. */
#define QID_FIT_CMD_MIN_POINTS 20
/* R^2 (log space) below this earns a warning. */
#define QID_FIT_CMD_MIN_R2 0.8

/* Builds the observations of the unified law from rows[0..n) (as read by
 * qid_results_read): the row that counts per key, status OK, method not
 * baseline or probes, passing every filter of o, with N, D, P > 0, finite
 * qid and qid_se > 0. *obs is malloc'd (free()); *n_obs may be 0. Also the
 * 16-bit points: one per checkpoint from its baseline row, with the model
 * and token filters (not method/format/bits) applied; n16/d16/l16 are
 * malloc'd arrays of *n_16 entries (any of the three pointers may be NULL
 * to skip them). */
void qid_fit_cmd_obs(const qid_result *rows, size_t n, const qid_fit_cmd_opts *o, qid_fit_obs **obs, size_t *n_obs,
                     double **n16, double **d16, double **l16, size_t *n_16);

/* Everything `qid fit` computed. Free with qid_fit_cmd_report_free. */
typedef struct qid_fit_cmd_report {
    size_t n_points, n_checkpoints, n_models, n_bits_values, n_tokens_values;
    qid_fit_result law; /* the unified law */
    qid_fit_boot boot;  /* zeroed when no bootstrap (or it failed: boot_msg) */
    int boot_status;
    char boot_msg[QID_ERROR_MAX];
    qid_fit_lomo lomo; /* zeroed when it failed (lomo_status) */
    int lomo_status;
    qid_fit_group *by_bits; /* per-bit-width laws */
    size_t n_by_bits;
    int loss16_status; /* QID_OK or why there is no 16-bit law (loss16_msg) */
    char loss16_msg[QID_ERROR_MAX];
    size_t n_loss16_points;
    qid_fit_loss16_result loss16;
    size_t n_warnings;
    char warnings[2048]; /* "; "-separated */
} qid_fit_cmd_report;

void qid_fit_cmd_report_free(qid_fit_cmd_report *rep);

/* Fits obs[0..n) (and the 16-bit law on n16/d16/l16[0..m)) with o's
 * bootstrap settings into *rep (zeroed first). Returns QID_OK, or the
 * status of the unified fit with a one-line message in err (too few points,
 * one model size, no significant QiD, a rank-deficient design); the other
 * fits' failures are recorded in rep, not returned. */
int qid_fit_cmd_fit(const qid_fit_obs *obs, size_t n, const double *n16, const double *d16, const double *l16, size_t m,
                    const qid_fit_cmd_opts *o, qid_fit_cmd_report *rep, qid_error *err);

/* Prints rep (coefficients with intervals, convergence, counts, warnings). */
void qid_fit_cmd_print(FILE *out, const qid_fit_cmd_report *rep, const qid_fit_cmd_opts *o);

/* The whole of `qid fit` on a store: read, fit, print to out (NULL: no
 * printing), write /fits/<o->name>. rep may be NULL. Errors: as
 * qid_results_read, qid_fit_cmd_fit and qid_results_write_fit (a store a
 * run is writing: QID_E_INVALID, "... is locked by pid ..."). */
int qid_fit_cmd_run(const char *store, const qid_fit_cmd_opts *o, FILE *out, qid_fit_cmd_report *rep, qid_error *err);

/* Reads /fits/<name> of a store: the law, and its bootstrap draws (*draws
 * malloc'd, n_draws entries, NULL/0 when the fit has none; draws may be
 * NULL to skip them) and the interval level. Errors: QID_E_IO/FORMAT/HDF5
 * for the file, QID_E_INVALID when there is no such fit (the message lists
 * the fits there are). */
int qid_fit_cmd_read(const char *store, const char *name, qid_fit_law *law, qid_fit_law **draws, size_t *n_draws,
                     double *level, qid_error *err);

/* `qid fit ...` and `qid predict ...` (see --help). Return 0, 1 on a
 * failure (one "qid fit: error: ..." line), 2 on bad usage. */
int qid_fit_main(int argc, char **argv);
int qid_predict_main(int argc, char **argv);

#endif
