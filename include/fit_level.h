/* fit_level.h - the training level of checkpoints of a results store: the
 * training tokens D that a checkpoint's measured QiD implies under a law
 * (`qid predict STORE --training-level CKPT`), per bit width and for all
 * its bit widths together, with bootstrap intervals from a stored fit's
 * draws.
 *
 * Does not: fit the law (fit_suite.h), read it (fit_store.h) or print (the
 * command layer prints a qid_fit_level). Nothing here uses MPI. */
#ifndef QID_FIT_LEVEL_H
#define QID_FIT_LEVEL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "fit.h"
#include "results.h"

/* One quantizer row of a checkpoint: the D its QiD implies. */
typedef struct qid_fit_level_row {
    size_t row;    /* index into qid_fit_level.rows */
    double p;      /* element bits P */
    double t;      /* D implied (qid_fit_tokens_for) */
    double lo, hi; /* bootstrap interval; NaN without draws */
} qid_fit_level_row;

/* One checkpoint. */
typedef struct qid_fit_level_ckpt {
    size_t row;              /* a row of the checkpoint (its path, model, step, N, D) */
    double n;                /* N */
    double seen;             /* its tokens seen; NaN unknown */
    qid_fit_level_row *rows; /* its rows that pass the filters, by P, method, format */
    size_t n_rows;
    double t, lo, hi; /* all bit widths together (qid_fit_training_level, weights 1/se^2) */
} qid_fit_level_ckpt;

/* The training level of every checkpoint `which` names. Free with
 * qid_fit_level_free. */
typedef struct qid_fit_level {
    qid_result *rows; /* the store's rows (owned) */
    size_t n_store_rows;
    qid_fit_level_ckpt *ckpts; /* by model, tokens seen, path */
    size_t n_ckpts;
    int ci;       /* 1: intervals (n_draws >= 2) */
    double level; /* their level */
} qid_fit_level;

/* For every checkpoint of the store that `which` names (its path as the
 * job gave it, the path's last component, its ckpt_sha256, or else a model
 * name: all its checkpoints), the D that each measured QiD implies under
 * law at the row's N and element bits P, with a bootstrap interval from
 * draws when n_draws >= 2, and the D all its bit widths imply together.
 * Uses the quantizer rows (rtn, gptq) that count, OK, with finite QiD and
 * se > 0, of method/format/bits_mask (NULL, NULL, 0: all; normally the
 * stored fit's filters). Errors (*out zeroed): as qid_results_read;
 * QID_E_INVALID when nothing in the store is called `which` (the message
 * lists checkpoints and models there are). */
int qid_fit_level_of_store(const char *store, const char *which, const qid_fit_law *law, const qid_fit_law *draws,
                           size_t n_draws, double level, const char *method, const char *format, uint64_t bits_mask,
                           qid_fit_level *out, qid_error *err);

void qid_fit_level_free(qid_fit_level *lv);

#endif
