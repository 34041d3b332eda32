/* fit_store.h - the /fits group of a results store (hdf5-schema/results.md
 * § /fits): opening /fits/<name> to read it, float64 tables and scalar
 * attributes in it, the suite of laws `qid fit` writes there, and reading a
 * stored law back (coefficients, bootstrap draws, filters, statistics).
 *
 * /fits/<name> of a suite holds scalar attributes (coefficients, intervals,
 * counts, quality, filters, seed), a `draws` dataset [n_draws, 4] (k, alpha,
 * beta, gamma) of the bootstrap, a `lomo` dataset, one group per bit width
 * under `bits/`, the per-factor laws under `factors/{D,N,P}`, and a `loss16`
 * group. Writes go through qid_results_write_fit, which takes the store's
 * lock; reads open the file read-only (SWMR when they can) and take no lock.
 *
 * Does not: fit, print, or write /tasks. The predictor's entry
 * (fit_predictor.h) uses the helpers here. Nothing here uses MPI. */
#ifndef QID_FIT_STORE_H
#define QID_FIT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "fit.h"
#include "fit_compare.h"
#include "fit_obs.h"
#include "fit_suite.h"

/* ---- the helpers of every /fits entry ---------------------------------- */

/* Opens a store read-only (SWMR when it can) and its group /fits/<name>:
 * *fid and *group are HDF5 ids the caller closes (H5Gclose, H5Fclose).
 * Errors: QID_E_IO/FORMAT/HDF5 for the file; QID_E_INVALID when there is no
 * such fit: the message lists the fits there are and says to run
 * '<command> STORE [--name NAME]' first (--name when name is not
 * default_name). */
int qid_fit_store_open(const char *store, const char *name, const char *command, const char *default_name, int64_t *fid,
                       int64_t *group, qid_error *err);

/* Writes v[rows][cols] as a float64 dataset `name` in the HDF5 group
 * `group` (an hid_t) with a string attribute `columns`. */
int qid_fit_store_write_matrix(int64_t group, const char *name, const double *v, size_t rows, size_t cols,
                               const char *columns, qid_error *err);

/* Reads the [rows, cols] float64 dataset `name` of `group` (`where` names
 * the group in messages): *v malloc'd (free()), *rows set. QID_E_FORMAT
 * when it is not 2-D with cols columns. */
int qid_fit_store_read_matrix(int64_t group, const char *where, const char *name, size_t cols, double **v, size_t *rows,
                              qid_error *err);

/* One scalar attribute to write: a number, an integer or a string. */
typedef struct qid_fit_attr {
    const char *name;
    char type; /* 'f' (f64), 'i' (i64) or 's' (string) */
    double f;
    int64_t i;
    const char *s;
} qid_fit_attr;
#define QID_FIT_ATTR_F64(name, v) ((qid_fit_attr){(name), 'f', (v), 0, NULL})
#define QID_FIT_ATTR_I64(name, v) ((qid_fit_attr){(name), 'i', 0, (int64_t)(v), NULL})
#define QID_FIT_ATTR_STR(name, v) ((qid_fit_attr){(name), 's', 0, 0, (v)})

/* Writes a[0..n) as attributes of the HDF5 object obj; stops at the first
 * failure and returns its status. */
int qid_fit_store_write_attrs(int64_t obj, const qid_fit_attr *a, size_t n, qid_error *err);

/* Writes the attributes every /fits entry ends with: kind is written
 * first by the caller; these are created_utc and qid_version. */
int qid_fit_store_write_provenance(int64_t obj, qid_error *err);

/* ---- the suite of `qid fit` -------------------------------------------- */

/* Writes suite s, fitted from the rows filter kept with fo's settings, to
 * /fits/<name> of store (replacing an entry of that name; the layout
 * above), with the comparison of the law forms cmp as its group `compare`
 * (cmp NULL: none). Errors: as qid_results_write_fit (a store a run is
 * writing: QID_E_INVALID, "... is locked by pid ..."). */
int qid_fit_store_write_suite(const char *store, const char *name, const qid_fit_suite *s, const qid_fit_compare *cmp,
                              const qid_fit_filter *filter, const qid_fit_opts *fo, qid_error *err);

/* Reads /fits/<name> of a store: the law, and its bootstrap draws (*draws
 * malloc'd, n_draws entries, NULL/0 when the fit has none; draws may be
 * NULL to skip them) and the interval level (level may be NULL). Errors:
 * QID_E_IO/FORMAT/HDF5 for the file, QID_E_INVALID when there is no such
 * fit (the message lists the fits there are) or it is not a law of QiD. */
int qid_fit_store_read_law(const char *store, const char *name, qid_fit_law *law, qid_fit_law **draws, size_t *n_draws,
                           double *level, qid_error *err);

/* The filters a stored fit was made with (its filter_* attributes): method
 * and format into buffers ("" = all), bits into a mask (0 = all). Errors as
 * qid_fit_store_open. */
int qid_fit_store_read_filters(const char *store, const char *name, char *method, size_t method_len, char *format,
                               size_t format_len, uint64_t *bits_mask, qid_error *err);

/* The quality of a stored fit: its attributes r2_log, rmse, n_points,
 * converged and iterations; each one the entry lacks is NaN. Errors as
 * qid_fit_store_open (then every field is NaN). */
typedef struct qid_fit_stats {
    double r2_log, rmse, n_points, converged, iterations;
    double n_min, n_max, d_min, d_max, p_min, p_max; /* the range of the points fitted (NaN in older fits) */
} qid_fit_stats;
int qid_fit_store_read_stats(const char *store, const char *name, qid_fit_stats *st, qid_error *err);

/* One entry of /fits as a reader sees it: what it is and what it was made
 * from. */
typedef struct qid_fit_entry {
    char name[64];
    char kind[16];     /* "unified" (qid fit), "predictor" (qid predictor), ... */
    char form[16];     /* the law form of a unified fit ("" otherwise) */
    char filters[320]; /* "method gptq, format any, bits 2,3,4, models all, tokens [0, inf]" ("" when unknown) */
    char created[32];  /* created_utc */
    int compare;       /* 1: it has a law comparison (qid fit --compare) */
} qid_fit_entry;

/* Every entry of /fits of a store, by name: *out malloc'd (free()), *n
 * entries (0 and NULL when there is no /fits). Errors: QID_E_IO/FORMAT for
 * the file. */
int qid_fit_store_entries(const char *store, qid_fit_entry **out, size_t *n, qid_error *err);

/* The law comparison stored with a fit (`qid fit --compare`: the group
 * /fits/<name>/compare): each law's name and scores, and its predictions at
 * the 7B/70B/405B x 1e14 x 2/3/4-bit grid. Free with
 * qid_fit_compare_stored_free. */
typedef struct qid_fit_compare_stored {
    size_t n_laws;
    char name[QID_FIT_N_FORMS][16];
    double aic[QID_FIT_N_FORMS], lomo_err[QID_FIT_N_FORMS], lfo_err[QID_FIT_N_FORMS];
    char best_lfo[16];
    double *pred; /* n_pred rows of law index, n, d, p, qid, lo, hi */
    size_t n_pred;
} qid_fit_compare_stored;

/* Reads it into c: QID_OK; 1 when the fit has no comparison (c empty);
 * errors as qid_fit_store_open, QID_E_FORMAT for a damaged group. */
int qid_fit_store_read_compare(const char *store, const char *name, qid_fit_compare_stored *c, qid_error *err);
void qid_fit_compare_stored_free(qid_fit_compare_stored *c);

#endif
