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
 * error, the per-bit-width laws, the per-factor laws (QiD vs D, vs N, vs P
 * with their median exponents), and the 16-bit loss law on the baseline
 * rows (one per checkpoint), prints them with clear warnings, and writes
 * them to /fits/<name> through qid_results_write_fit (which takes the
 * store's lock); nothing is written when the unified law cannot be fitted.
 * The layout of /fits/<name> is in hdf5-schema/results.md.
 *
 * `qid predict` evaluates a stored or given law on a grid, inverts it
 * (tokens to reach a QiD), and gives the training level a measured QiD, or
 * a checkpoint of the store (qid_fit_cmd_training_level), implies.
 *
 * Also here: small helpers the other fit commands share (the row that
 * counts per task, opening /fits/<name>, float64 matrices in /fits).
 *
 * Does not: plot (report.h), fit the Xu et al. predictor (fit_predictor.h,
 * whose entry point this header re-exports for main.c), or change /tasks.
 * Nothing here uses MPI. */
#ifndef QID_FIT_CMD_H
#define QID_FIT_CMD_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "fit.h"
#include "fit_predictor.h" /* `qid predictor`, dispatched from main.c */
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
    int factors;        /* 1: print every per-factor group, not only the medians (default 0) */
} qid_fit_cmd_opts;

void qid_fit_cmd_opts_init(qid_fit_cmd_opts *o);

/* Fewer points than this in the unified fit earn a warning. */
#define QID_FIT_CMD_MIN_POINTS 20
/* R^2 (log space) below this earns a warning. */
#define QID_FIT_CMD_MIN_R2 0.8
/* Per-factor law QiD vs N: checkpoints whose D lie within this ratio of the
 * smallest D of a bin share the bin (equal D, as in Pythia where every size
 * has the same steps, share one exactly). */
#define QID_FIT_CMD_D_BIN 1.1

/* The per-factor laws, in this order: QiD = c D^beta for each (N, P); QiD =
 * c / N^alpha for each (D bin, P); QiD = c / P^gamma for each (N, D). */
enum { QID_FIT_CMD_FACTOR_D = 0, QID_FIT_CMD_FACTOR_N = 1, QID_FIT_CMD_FACTOR_P = 2, QID_FIT_CMD_N_FACTORS = 3 };

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
    qid_fit_group *factor[QID_FIT_CMD_N_FACTORS]; /* per-factor laws (QID_FIT_CMD_FACTOR_*), by group */
    size_t n_factor[QID_FIT_CMD_N_FACTORS];
    double factor_median[QID_FIT_CMD_N_FACTORS]; /* median exponent over the fitted groups; NaN when none */
    size_t factor_used[QID_FIT_CMD_N_FACTORS];   /* groups with a fit */
    int loss16_status;                           /* QID_OK or why there is no 16-bit law (loss16_msg) */
    char loss16_msg[QID_ERROR_MAX];
    size_t n_loss16_points;
    qid_fit_loss16_result loss16;
    size_t n_warnings;
    char warnings[2048]; /* "; "-separated */
} qid_fit_cmd_report;

void qid_fit_cmd_report_free(qid_fit_cmd_report *rep);

/* Copies obs[0..n) with each D replaced by the geometric mean of its bin
 * (QID_FIT_CMD_D_BIN): the points the per-factor law vs N is fitted to.
 * malloc'd (free()). */
qid_fit_obs *qid_fit_cmd_bin_tokens(const qid_fit_obs *obs, size_t n);

/* Fits obs[0..n) (and the 16-bit law on n16/d16/l16[0..m)) with o's
 * bootstrap settings into *rep (zeroed first): the unified law, its
 * bootstrap and leave-one-model-size-out error, the per-bit-width and the
 * per-factor laws, the 16-bit law. Returns QID_OK, or the
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

/* ---- shared with the other fit commands (fit_predictor.c, report.c) ---- */

/* counts[i] = 1 when rows[i] is the row that counts for its task key (its
 * key's last OK row). malloc'd, n entries (at least 1). */
unsigned char *qid_fit_cmd_rows_that_count(const qid_result *rows, size_t n);

/* Appends a printf-formatted item to the "; "-separated list in buf[cap]
 * (cut short when full): how the fit commands collect warnings and notes. */
void qid_fit_list_add(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void qid_fit_list_vadd(char *buf, size_t cap, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* Prints each item of a "; "-separated list on a line of its own after
 * prefix (e.g. "warning: "). */
void qid_fit_list_print(FILE *out, const char *prefix, const char *list);

/* 1 if name is one of the comma-separated items of list (NULL list: yes). */
int qid_fit_cmd_in_list(const char *list, const char *name);

/* 1 if two rows are of the same checkpoint: the same path, and the same
 * tensor hash where both rows have one. */
int qid_fit_cmd_same_checkpoint(const qid_result *a, const qid_result *b);

/* `qid predict STORE --training-level CKPT`: for every checkpoint of the
 * store that `which` names (its path as the job gave it, the path's last
 * component, its ckpt_sha256, or else a model name: all its checkpoints),
 * prints the training tokens D that each measured QiD implies under law
 * (qid_fit_tokens_for at the row's N and element bits P), with a bootstrap
 * interval from draws when n_draws >= 2, next to the checkpoint's actual
 * tokens_seen and their ratio, and the D all its bit widths imply together
 * (qid_fit_training_level, weights 1/se^2). Uses the quantizer rows that
 * count, OK, with finite QiD and se > 0, of method/format/bits_mask (NULL,
 * NULL, 0: all; normally the stored fit's filters). Errors: as
 * qid_results_read; QID_E_INVALID when nothing in the store is called
 * `which` (the message lists checkpoints and models there are). */
int qid_fit_cmd_training_level(const char *store, const char *which, const qid_fit_law *law, const qid_fit_law *draws,
                               size_t n_draws, double level, const char *method, const char *format, uint64_t bits_mask,
                               FILE *out, qid_error *err);

/* The filters a stored fit was made with (its filter_* attributes): method
 * and format into buffers ("" = all), bits into a mask (0 = all). Errors as
 * qid_fit_cmd_open. */
int qid_fit_cmd_read_filters(const char *store, const char *name, char *method, size_t method_len, char *format,
                             size_t format_len, uint64_t *bits_mask, qid_error *err);

/* Opens a store read-only (SWMR when it can) and its group /fits/<name>:
 * *fid and *group are HDF5 ids the caller closes (H5Gclose, H5Fclose).
 * Errors: QID_E_IO/FORMAT/HDF5 for the file; QID_E_INVALID when there is no
 * such fit: the message lists the fits there are and says to run
 * '<command> STORE [--name NAME]' first (--name when name is not
 * default_name). */
int qid_fit_cmd_open(const char *store, const char *name, const char *command, const char *default_name, int64_t *fid,
                     int64_t *group, qid_error *err);

/* Writes v[rows][cols] as a float64 dataset `name` in the HDF5 group
 * `group` (an hid_t) with a string attribute `columns`. */
int qid_fit_write_matrix(int64_t group, const char *name, const double *v, size_t rows, size_t cols,
                         const char *columns, qid_error *err);

/* Reads the [rows, cols] float64 dataset `name` of `group` (`where` names
 * the group in messages): *v malloc'd (free()), *rows set. QID_E_FORMAT
 * when it is not 2-D with cols columns. */
int qid_fit_read_matrix(int64_t group, const char *where, const char *name, size_t cols, double **v, size_t *rows,
                        qid_error *err);

/* `qid fit ...` and `qid predict ...` (see --help). Return 0, 1 on a
 * failure (one "qid fit: error: ..." line), 2 on bad usage. */
int qid_fit_main(int argc, char **argv);
int qid_predict_main(int argc, char **argv);

#endif
