/* fit_predictor.h - `qid predictor STORE`: the post-quantization loss
 * predictor of Xu et al. (2024) on a results store, validated by holding out
 * one model family at a time, and the Pareto frontier of model size vs bits
 * per weight for a memory budget.
 *
 * Rows -> features. Every quantizer row that counts (the last OK row of its
 * task key; method rtn or gptq, never baseline or probes; failed rows are
 * skipped) that passes the filters becomes one example, with the features
 *     log10_N             non-embedding parameters N (log10)
 *     log10_D             training tokens of the checkpoint (log10)
 *     loss16              the checkpoint's 16-bit loss on the same windows:
 *                         the row's loss16, else its baseline row's loss
 *     rtn_sqnr_db         SQNR of the checkpoint's RTN weights in the row's
 *                         format: sqnr_db of the RTN row of the same
 *                         checkpoint and format (an RTN row's own)
 *     elem_bits           element bits P
 *     scales_per_weight   1 / block (group) size; 0 per channel
 *     fmt_int fmt_mxfp fmt_mxint fmt_nf4 fmt_fp4 fmt_gguf
 *                         the format family, one-hot (quant.h's families:
 *                         RTN integers, MX with FP elements, MXINT, NF4, FP4,
 *                         llama.cpp's GGUF types and mixtures)
 *     gptq                1 for GPTQ, 0 for RTN
 *     probe_dloss_r<R>    per probe radius R of the checkpoint's radial
 *                         probes row (method "probes"): the mean over the
 *                         directions of the probe loss minus loss16
 * A feature that a row lacks (no RTN row of that format, no probes, D
 * unknown) is dropped when more than half of the rows lack it; otherwise the
 * rows that lack it are left out (both are reported). A feature that is the
 * same on every row is dropped (it cannot inform anything).
 *
 * Target: by default QiD = loss - loss16, and the predicted post-quantization
 * loss is loss16 + the predicted QiD; --target loss learns the loss itself,
 * as Xu et al. state it. The errors are the same quantity either way (loss16
 * is known exactly), but trees cannot extrapolate: a family whose 16-bit loss
 * lies outside the others' range is predicted far better through QiD.
 *
 * Families: the model name with its size tokens removed: the name is split at
 * '-' and '_' and tokens such as 160m, 1.4b, 7B, 0.5B, 8x7b (a number with a
 * k/m/b/t suffix) are dropped, so pythia-160m and pythia-1.4b are family
 * "pythia", pythia-1.4b-deduped is "pythia-deduped", Qwen2-0.5B is "Qwen2". A
 * name without a size token is its own family. --holdout model holds out one
 * model name at a time instead.
 *
 * The random forest and the linear baseline are fit.h's (qid_fit_forest_*,
 * qid_fit_linear_*); leave-one-group-out is qid_fit_predictor_logo; the
 * frontier is qid_fit_pareto over the candidates below. Results go to
 * /fits/<name> of the store (hdf5-schema/results.md § /fits, kind
 * "predictor") through qid_results_write_fit (which takes the store's lock).
 *
 * Does not: print (the command layer, cli_fit.h, does), plot (report.c
 * does, from /fits/<name>), predict for checkpoints that were not measured,
 * or count embedding parameters in the memory of a candidate. Nothing here
 * uses MPI.
 */
#ifndef QID_FIT_PREDICTOR_H
#define QID_FIT_PREDICTOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "fit.h"
#include "results.h"

enum qid_predictor_target {
    QID_PREDICTOR_TARGET_QID = 0,  /* learn loss - loss16 (default) */
    QID_PREDICTOR_TARGET_LOSS = 1, /* learn the post-quantization loss */
};

enum qid_predictor_holdout {
    QID_PREDICTOR_BY_FAMILY = 0, /* hold out one model family at a time (default) */
    QID_PREDICTOR_BY_MODEL = 1,  /* ... one model name at a time */
};

/* Start from qid_predictor_opts_init. */
typedef struct qid_predictor_opts {
    const char *method;         /* NULL: rtn and gptq */
    const char *format;         /* NULL: every format */
    const char *models;         /* comma-separated model names; NULL: all */
    int target;                 /* enum qid_predictor_target */
    int holdout;                /* enum qid_predictor_holdout */
    qid_fit_forest_opts forest; /* fit.h defaults: 200 trees, min_leaf 2, seed 1 */
    double budget;              /* memory budget of the frontier in bytes; <= 0: none */
    const char *name;           /* /fits/<name> (default "predictor") */
} qid_predictor_opts;

void qid_predictor_opts_init(qid_predictor_opts *o);

/* Fewest examples the predictor is trained on; fewer is an error. */
#define QID_PREDICTOR_MIN_ROWS 4
/* Fewer examples than this earn a warning. */
#define QID_PREDICTOR_FEW_ROWS 20
/* Most features: 12 fixed ones and up to 8 probe radii. */
#define QID_PREDICTOR_MAX_FEAT  20
#define QID_PREDICTOR_MAX_RADII 8

/* The examples. Arrays have n_rows entries (x: n_rows x n_feat, row-major).
 * Free with qid_predictor_data_free. */
typedef struct qid_predictor_data {
    size_t n_rows, n_feat;
    char feat[QID_PREDICTOR_MAX_FEAT][32]; /* feature names, in column order */
    double *x;
    double *y;                   /* the target (QiD or loss, per opts) */
    double *loss, *loss16;       /* measured post-quantization and 16-bit loss */
    double *n, *d, *bits, *elem; /* N, D (NaN unknown), storage bits/weight, element bits */
    int *group;                  /* index into groups[] */
    size_t n_groups;             /* distinct families (or models) */
    char **groups;               /* their names, sorted */
    size_t *row;                 /* index of the example's row in the store's rows */
    size_t n_considered;         /* quantizer rows that count and pass the filters */
    size_t n_no_loss16;          /* ... left out: no 16-bit loss (no baseline) */
    size_t n_missing;            /* ... left out: a kept feature missing */
    char notes[1024];            /* features dropped and why, "; "-separated */
} qid_predictor_data;

/* The family of a model name (rules above) into buf (always terminated;
 * "unknown" for an empty name). */
void qid_predictor_family(const char *model, char *buf, size_t len);

/* Builds the examples from a store's rows (as qid_results_read returns
 * them). Errors (out zeroed): QID_E_INVALID when fewer than
 * QID_PREDICTOR_MIN_ROWS examples remain, naming what was left out. */
int qid_predictor_data_build(const qid_result *rows, size_t n, const qid_predictor_opts *o, qid_predictor_data *out,
                             qid_error *err);
void qid_predictor_data_free(qid_predictor_data *data);

/* A candidate of the frontier: one (model, method, format) at the latest
 * checkpoint (largest D) of that model the store measured it on, with its
 * measured loss; the 16-bit baselines are candidates too (method
 * "baseline"). Memory = N * bits / 8 (qid_fit_candidate_bytes; bits are the
 * storage bits per weight, scales included; embeddings not counted). */
typedef struct qid_predictor_candidate {
    qid_fit_candidate c; /* params N, bits, measured loss */
    double d;            /* the checkpoint's tokens */
    double predicted;    /* the held-out forest prediction of the loss, NaN when none */
    size_t row;          /* the store row */
    char label[160];     /* "model method format" */
} qid_predictor_candidate;

/* The candidates of rows[0..n) under o's filters (method/format filters do
 * not remove the baselines; the model filter does). *out malloc'd (free()),
 * *n_out entries, by model, method, format. */
void qid_predictor_candidates(const qid_result *rows, size_t n, const qid_predictor_opts *o,
                              qid_predictor_candidate **out, size_t *n_out);

/* Everything `qid predictor` computed. Free with qid_predictor_report_free. */
typedef struct qid_predictor_report {
    qid_predictor_data data;
    qid_fit_logo logo;  /* predictions in the target's units */
    qid_fit_linear lin; /* the linear baseline on all examples */
    double rmse_train;  /* in-sample RMSE of the forest on all examples */
    qid_predictor_candidate *cand;
    size_t n_cand;
    size_t *front; /* the frontier within the budget: indices into cand, by memory */
    size_t n_front;
    size_t n_warnings;
    char warnings[1024]; /* "; "-separated */
} qid_predictor_report;

void qid_predictor_report_free(qid_predictor_report *rep);

/* Builds the examples, trains and validates (one family out at a time), and
 * computes the frontier. Errors (rep freed): as qid_predictor_data_build;
 * QID_E_INVALID for fewer than 2 groups (the message names the one there is
 * and suggests --holdout model); the trainers' errors. */
int qid_predictor_fit(const qid_result *rows, size_t n, const qid_predictor_opts *o, qid_predictor_report *rep,
                      qid_error *err);

/* The held-out (or in-sample) prediction of example i as a loss, whatever
 * the target: p is logo.pred_forest[i], pred_linear[i] or fit_forest[i]. */
double qid_predictor_as_loss(const qid_predictor_report *rep, const qid_predictor_opts *o, size_t i, double p);

/* Reads a store's rows (qid_results_read: SWMR, no lock) and fits them
 * (qid_predictor_fit). Errors: as qid_results_read and qid_predictor_fit. */
int qid_predictor_of_store(const char *store, const qid_predictor_opts *o, qid_predictor_report *rep, qid_error *err);

/* Writes rep to /fits/<o->name> of store (hdf5-schema/results.md § /fits,
 * kind "predictor") through qid_results_write_fit, which takes the store's
 * lock. Errors: as qid_results_write_fit. */
int qid_predictor_write(const char *store, const qid_predictor_report *rep, const qid_predictor_opts *o,
                        qid_error *err);

/* What qid report needs of a stored predictor. Free with
 * qid_predictor_stored_free. */
typedef struct qid_predictor_stored {
    size_t n_points;
    double *points; /* n_points x QID_PREDICTOR_POINT_COLS, the `points` dataset */
    double budget;  /* bytes, NaN when none */
    double rmse_forest, rmse_linear, rmse_mean;
    char target[16], holdout[16];
} qid_predictor_stored;

/* Columns of /fits/<name>/points. */
#define QID_PREDICTOR_POINT_COLUMNS                                                                                    \
    "n,d,elem_bits,bits,group,loss16,loss,loss_forest_heldout,loss_linear_heldout,loss_forest_all"
#define QID_PREDICTOR_POINT_COLS 10

/* The same from an in-memory report (what qid_predictor_write stores). */
void qid_predictor_to_stored(const qid_predictor_report *rep, const qid_predictor_opts *o, qid_predictor_stored *out);

/* Reads /fits/<name> written by qid_predictor_write. Errors: as
 * qid_fit_store_open; QID_E_FORMAT when the entry is not a predictor. */
int qid_predictor_read(const char *store, const char *name, qid_predictor_stored *out, qid_error *err);
void qid_predictor_stored_free(qid_predictor_stored *s);

#endif
