/* results.h - the qid results store (hdf5-schema/results.md): one HDF5
 * file per sweep holding one row per finished task, the per-window NLL
 * vectors behind every loss, the fitted laws (/fits, written by `qid fit`)
 * and the provenance of the run.
 *
 * Only rank 0 of `qid run` writes it, one result at a time, each durable
 * before the next is accepted. The file is written in HDF5's single-writer /
 * multiple-reader (SWMR) mode, whose ordered, checksummed metadata writes
 * keep it consistent when the writer is killed; what a kill leaves behind is
 * only the "file open for writing" flag, which qid_results_open clears (the
 * same repair as `h5clear -s`) after taking the store's lock. Two writers
 * cannot open one store: a lock file next to it (flock) says who holds it.
 *
 * Does not: evaluate, schedule, or fit (callers do); open with MPI-IO.
 * Nothing here is collective. */
#ifndef QID_RESULTS_H
#define QID_RESULTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "divergence.h"
#include "error.h"

#define QID_RESULTS_FORMAT         "qid-results"
#define QID_RESULTS_SCHEMA_VERSION 3

typedef enum qid_result_status {
    QID_RESULT_OK = 0,
    QID_RESULT_FAILED = 1,
} qid_result_status;

/* One row of /tasks. Strings are owned by the caller on append and by the
 * store (freed by qid_results_rows_free) on read. Numbers not computed for a
 * task are NaN (floats) or -1 (integers). */
typedef struct qid_result {
    const char *key;         /* the task's stable key (jobfile.h) */
    const char *checkpoint;  /* checkpoint path as the job names it */
    const char *model;       /* model name (groups checkpoints of one model) */
    const char *ckpt_sha256; /* checkpoint tensor hash */
    int64_t params;          /* N, non-embedding parameters */
    int64_t tokens_seen;     /* D */
    int64_t step;
    double lr_frac;            /* learning rate at step / its peak (checkpoint.h); NaN if unknown */
    const char *method;        /* "baseline", "rtn", "gptq", "probes" */
    const char *format;        /* canonical quantizer name, "" for the baseline */
    double bits;               /* storage bits per weight incl. scales; 16 or the source's for the baseline */
    int32_t elem_bits;         /* element bits (P of the laws) */
    int64_t block;             /* group / block size, 0 = per channel */
    const char *options;       /* method options as in the key */
    const char *calib;         /* calibration set description */
    int64_t calib_chunk;       /* GPTQ: calibration windows per chunk of the streamed calibration
                                  (model.h qid_calib; the Hessian sums' order), -1 otherwise */
    const char *eval_protocol; /* e.g. "windows=64,seq_len=2048,scoring=all" */
    const char *eval_sha256;   /* token set source hash */
    double loss;               /* mean NLL, nats per token */
    double loss16;             /* baseline loss of the same checkpoint and windows */
    double qid;                /* loss - loss16 from paired windows */
    double qid_se;             /* standard error of qid from per-window differences */
    double sqnr_db;            /* model SQNR of the quantized weights */
    double kl;                 /* mean KL(16-bit || quantized) per token, NaN if not computed */
    int64_t tokens;            /* tokens scored */
    int64_t windows;
    double seconds; /* task wall time */
    int32_t rank;   /* MPI rank that computed it */
    qid_result_status status;
    const char *error;        /* one-line error of a failed task, "" otherwise */
    const char *finished_utc; /* ISO 8601 */
    /* Per-window NLL sums and scored-token counts, `windows` entries each.
     * On append: both given, or window_nll NULL (no vectors: failed and probe
     * rows); nll_offset is ignored (the store assigns it). On read: malloc'd
     * copies owned by the rows (NULL when the row has none) and nll_offset,
     * the index of the first entry in /window_nll and /window_tokens (-1
     * when none). */
    const double *window_nll;
    const int32_t *window_tokens;
    int64_t nll_offset;
    /* schema 3: adaptive evaluation (eval.h) and the divergence report
     * (divergence.h; div.kl is not a column: `kl` above is the same number).
     * Rows of a version-1 or -2 store read as windows_used = windows,
     * stop_rule "", div all NaN. */
    int64_t windows_used;  /* windows evaluated (window_tokens > 0); = windows for a fixed protocol */
    const char *stop_rule; /* "" (fixed windows) or the adaptive rule and its parameters */
    qid_divergence div;
} qid_result;

/* The /tasks columns in schema order: one table, the single source of the
 * row layout (results.c builds the HDF5 compound type from it, `qid results`
 * prints from it). */
typedef enum qid_result_col_kind {
    QID_COL_STR,
    QID_COL_I64,
    QID_COL_I32,
    QID_COL_F64,
    QID_COL_STATUS
} qid_result_col_kind;

typedef struct qid_result_column {
    const char *name;
    qid_result_col_kind kind;
    size_t offset; /* in qid_result */
} qid_result_column;

#define QID_RESULT_N_COLUMNS 65
extern const qid_result_column qid_result_columns[QID_RESULT_N_COLUMNS];

/* What to record in /provenance when a store is created (NULL strings are
 * stored as ""). seed must be at most 2^63-1 (stored as int64). */
typedef struct qid_results_provenance {
    const char *job_name;
    const char *job_file;
    const char *job_text; /* verbatim */
    uint64_t seed;
    int mpi_ranks;
} qid_results_provenance;

typedef struct qid_results qid_results;

/* Opens path for appending, creating it (with /provenance from prov, which
 * may be NULL) if absent; creation is atomic (a temporary name, renamed).
 * Takes the lock first: if another process holds it, fails with
 * QID_E_INVALID naming the holder. Checks format and schema version of an
 * existing store before changing anything in it (QID_E_FORMAT). If the
 * previous writer was killed, repairs the store and logs that it did:
 * clears the open-for-writing flags, drops an unfinished last row (its task
 * is then not `has`, so it runs again) and unreferenced window entries.
 * Returns NULL with err set on failure. */
qid_results *qid_results_open(const char *path, const qid_results_provenance *prov, qid_error *err);

/* 1 if a row with this key and status OK is in the store (failed tasks are
 * retried on resume). */
int qid_results_has(const qid_results *r, const char *key);

/* Appends one row (and its window vectors) and makes it durable: it is
 * flushed to the file before returning (a kill -9 from then on keeps it),
 * and its fsync runs in the background and is complete before the next
 * append writes anything or the close returns (an fsync failure is the
 * error of that next call). An OK row's key is `has` from then on. Rejects
 * with QID_E_INVALID, writing nothing, a row without a key, a status other
 * than OK/FAILED, or window NLLs without token counts. NULL strings are
 * stored as "", invalid UTF-8 bytes as '?'. After an HDF5 or I/O failure
 * part-way the handle refuses further appends (close it; the next open
 * drops the unfinished row). */
int qid_results_append(qid_results *r, const qid_result *row, qid_error *err);

/* Flushes, closes and releases the lock; frees r in every case (r may be
 * NULL). */
int qid_results_close(qid_results *r, qid_error *err);

/* Reads every row of a store (read-only, no lock needed; works while a
 * writer is appending, and after one was killed, through SWMR; a last row
 * such a writer has not finished is left out). *rows is malloc'd; free with
 * qid_results_rows_free. Errors: QID_E_IO (cannot open), QID_E_FORMAT (not
 * a store this qid reads, or a damaged row), QID_E_HDF5. */
int qid_results_read(const char *path, qid_result **rows, size_t *n, qid_error *err);
void qid_results_rows_free(qid_result *rows, size_t n);

/* Writes one entry of /fits (hdf5-schema/results.md § /fits): takes the
 * store's lock (PATH.lock, as qid_results_open; if a run holds it, fails
 * with QID_E_INVALID and the same "is locked by pid ..." message), opens
 * the store read-write without SWMR, checks its format, deletes
 * /fits/<name> if present, creates it as a group and calls
 * write(group, ctx, err) to fill it (group is an HDF5 hid_t), then flushes,
 * closes and releases the lock. A store a killed writer left open is
 * refused (QID_E_INVALID: the next `qid run` repairs it). When write
 * returns nonzero the entry is deleted again and its status returned.
 * name must be non-empty without '/'. */
typedef int (*qid_results_fit_writer)(int64_t group, void *ctx, qid_error *err);
int qid_results_write_fit(const char *path, const char *name, qid_results_fit_writer write, void *ctx, qid_error *err);

#endif
