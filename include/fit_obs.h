/* fit_obs.h - a results store's rows as the fits see them: the row that
 * counts per task, the filters of `qid fit` (method, format, bits, tokens,
 * models), and the observations of the unified law and the 16-bit law that
 * the rows give.
 *
 * The row that counts for a task key is its last OK row (an earlier OK row
 * or a failed retry does not count). The checkpoint of a row is its
 * identity: ckpt_sha256, or its path when the row has no hash.
 *
 * Does not: read the store (results.h's qid_results_read does), fit, print
 * or write. Nothing here uses MPI or HDF5. */
#ifndef QID_FIT_OBS_H
#define QID_FIT_OBS_H

#include <stddef.h>
#include <stdint.h>

#include "fit.h"
#include "results.h"

/* Which rows become observations. Start from qid_fit_filter_init. */
typedef struct qid_fit_filter {
    const char *method; /* NULL: every quantizer method (never baseline/probes) */
    const char *format; /* NULL: every format */
    uint64_t bits_mask; /* bit P set: element bits P kept (P < 64); 0: all */
    double min_tokens;  /* keep D >= min_tokens (default 0) */
    double max_tokens;  /* keep D <= max_tokens (default INFINITY) */
    const char *models; /* comma-separated model names; NULL: all */
} qid_fit_filter;

void qid_fit_filter_init(qid_fit_filter *f);

/* Why no row of rows[0..n) passes f, into buf: the first filter that no
 * row passes on its own, with the values the store has ("no rows with
 * format 'int4-g128-sym' (the store has: int2-g32-sym, int3-g32-sym,
 * mxfp4)"), or that they pass one by one but not together, or that the
 * store has no such row. The rows looked at are the usable quantizer rows
 * (OK, a quantizer method, finite QiD and SE: what qid fit fits), or every
 * row with all_rows. Returns 1 when a single filter matches nothing. */
int qid_fit_filter_explain(const qid_result *rows, size_t n, const qid_fit_filter *f, int all_rows, char *buf,
                           size_t len);

/* 1 when element bits p pass bits_mask (0: every p > 0; else p in 1..63
 * with its bit set). */
int qid_fit_bits_pass(uint64_t bits_mask, int64_t p);

/* The bit widths of bits_mask as text, "2,3,4" ("" for 0), into buf[len]. */
void qid_fit_bits_text(uint64_t bits_mask, char *buf, size_t len);

/* counts[i] = 1 when rows[i] is the row that counts for its task key (its
 * key's last OK row). malloc'd, n entries (at least 1). */
unsigned char *qid_fit_rows_that_count(const qid_result *rows, size_t n);

/* The rows of a results store (qid_results_read) in key order, rows of one
 * key in store order (so the last is still the latest). Every fit reads
 * its rows this way: the points, their checkpoint ids and so the bootstrap
 * draws then do not depend on the order in which a run finished its tasks
 * (1, 2 or 64 ranks give the same fit). Free with qid_results_rows_free.
 * Errors: as qid_results_read. */
int qid_fit_rows_read(const char *store, qid_result **rows, size_t *n, qid_error *err);

/* 1 if name is one of the comma-separated items of list (NULL list: yes). */
int qid_fit_in_list(const char *list, const char *name);

/* 1 if two rows are of the same checkpoint: the same path, and the same
 * tensor hash where both rows have one. */
int qid_fit_same_checkpoint(const qid_result *a, const qid_result *b);

/* The observations of rows[0..n) (as read by qid_results_read): the row
 * that counts per key, status OK, method not baseline or probes, passing
 * every filter of f, with N, D, P > 0, finite qid and qid_se > 0 (checkpoint
 * id from the checkpoint's identity; group from N). *obs is malloc'd
 * (free()); *n_obs may be 0. Also the 16-bit points: one per checkpoint
 * from its baseline row, with the model and token filters (not
 * method/format/bits) applied; n16/d16/l16 are malloc'd arrays of *n_16
 * entries (any of the three pointers may be NULL to skip them). */
void qid_fit_obs_from_rows(const qid_result *rows, size_t n, const qid_fit_filter *f, qid_fit_obs **obs, size_t *n_obs,
                           double **n16, double **d16, double **l16, size_t *n_16);

/* The number of distinct values (equal within a relative 1e-9) of one
 * field of obs[0..n): QID_FIT_OBS_N, _D, _P or _CKPT. */
enum { QID_FIT_OBS_N = 0, QID_FIT_OBS_D = 1, QID_FIT_OBS_P = 2, QID_FIT_OBS_CKPT = 3 };
size_t qid_fit_obs_count_distinct(const qid_fit_obs *obs, size_t n, int field);

#endif
