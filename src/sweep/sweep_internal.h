/* sweep_internal.h - what the two halves of `qid run` share: the result of
 * one task as it travels from the rank that ran it to rank 0, and the
 * worker side's entry point (sweep_task.c) that the scheduler (sweep.c)
 * calls on workers, and on rank 0 itself when it runs alone.
 *
 * Does not: define the MPI protocol (sweep.c) or anything public (sweep.h). */
#ifndef QID_SWEEP_INTERNAL_H
#define QID_SWEEP_INTERNAL_H

#include <stdint.h>

#include "divergence.h"
#include "error.h"
#include "jobfile.h"
#include "model.h"
#include "tokens.h"

/* The scalars of a task's result: sent as MPI_BYTE (ranks of one job share
 * one ABI), followed by the vectors of sweep_result. */
typedef struct sweep_scalars {
    int64_t id;     /* position in rank 0's (sorted) task list */
    int64_t ckpt;   /* checkpoint index */
    int32_t status; /* qid_result_status */
    int32_t rank;
    int64_t windows, tokens;
    int64_t n_probe; /* probe losses, radius-major: [r * directions + d] */
    int64_t params, tokens_seen, step;
    int64_t calib_chunk; /* GPTQ: calibration windows per chunk, -1 otherwise */
    double loss, kl, sqnr_db, seconds, bits, lr_frac;
    int32_t elem_bits;
    int32_t pad;
    char model[128];
    char ckpt_sha256[65];
    char eval_sha256[65];
    char error[QID_ERROR_MAX];
    int64_t windows_used; /* windows evaluated (fewer than windows when adaptive: the others have count 0) */
    qid_divergence div;   /* with kl */
} sweep_scalars;

/* What one task produced. */
typedef struct sweep_result {
    sweep_scalars r;
    double *nll;    /* (windows) per-window NLL sums */
    int64_t *count; /* (windows) scored tokens per window */
    double *probe;  /* (n_probe) a probe task's losses */
} sweep_result;

/* A result before the task ran: status OK, nothing known (-1, NaN), no
 * vectors, run by `rank`. */
void sweep_result_init(sweep_result *o, int rank);
/* Frees the vectors (the scalars stay). */
void sweep_result_free(sweep_result *o);

/* What a rank keeps open between its tasks: the checkpoint of its last
 * task (its next tasks are usually other settings of the same checkpoint:
 * affinity) and the evaluation token set. Zero-initialize; close with
 * sweep_cache_close. Only successful opens are kept: a broken file fails
 * every task that needs it. */
typedef struct sweep_cache {
    qid_model *model; /* NULL when none is open */
    qid_tokens tokens;
    int have_tokens;
} sweep_cache;

void sweep_cache_close(sweep_cache *c);

/* Runs task t of job (its ckpt_path.path, method and quant are used): the
 * baseline (no hook), a quantizer setting (RTN weight hook, GPTQ activation
 * hook on the calibration windows) or the radial probes, each evaluated on
 * the checkpoint and token set opened once (cache). Fills *o (initialized
 * here; free with sweep_result_free); a failure of any kind is a failed
 * result with its one-line error, never a return. threads: per-rank
 * evaluation threads. base_nll (base_windows): the baseline's per-window
 * NLL, which a quantized task of a job with windows = auto is evaluated
 * against (NULL otherwise). Not collective. */
void sweep_task_run(const qid_job *job, const qid_task *t, int threads, int rank, sweep_cache *cache,
                    const double *base_nll, size_t base_windows, sweep_result *o);

#endif
