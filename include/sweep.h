/* sweep.h - the MPI sweep behind `qid run` (cmd_run.c): checkpoints x
 * quantizer settings of a job file (jobfile.h), with rank 0 scheduling and
 * writing the results store (results.h) and the other ranks evaluating
 * (eval.h, quantize.h). sweep.c is the scheduler and the protocol,
 * sweep_task.c runs one task on a worker.
 *
 * Protocol (all messages on MPI_COMM_WORLD, MPI_BYTE payloads of structs
 * defined in sweep.c and sweep_internal.h; ranks of one job are assumed to share one ABI):
 *   start-up (collective): rank 0 loads the job, expands it, opens the store
 *     (lock + crash repair), drops the tasks already OK in it, and broadcasts
 *     a go / stop flag, then the job's text. Workers parse that text with
 *     qid_job_parse (same file name, so relative paths resolve the same way);
 *     only rank 0 expands globs and lists and opens checkpoints at expansion.
 *   worker -> 0, tag REQUEST: the checkpoint index it holds (-1 at first).
 *   0 -> worker, tag TASK: task id (position in rank 0's task list),
 *     checkpoint index, method, index into job->quant (qid_task.quant: -1
 *     for the baseline and the probes; every rank's job->quant is the same,
 *     parsed from the same text) and the checkpoint path (the form to
 *     open). The task's key and protocol texts stay on rank 0, which
 *     records them.
 *   worker -> 0, tag RESULT: scalars, the one-line error of a failed task and
 *     the per-window NLL sums and token counts. A result is also the worker's
 *     next request (it holds that task's checkpoint).
 *   0 -> worker, tag STOP: nothing left; the worker returns.
 * Rank 0 answers a request with the next eligible task, or later when none
 * is eligible yet: a quantized task is eligible only once its checkpoint's
 * baseline is OK (in the store from an earlier run, or just appended),
 * because QiD is joined against the baseline's per-window NLL. Among
 * eligible tasks it prefers the worker's checkpoint (affinity), else the
 * largest (qid_task_cmp_cost). Probe tasks do not wait for the baseline.
 * Rank 0 sends a worker its next task, then appends the result it just
 * received (flushed at once, fsync'd in the background and complete before
 * the next append writes anything: results.h), so every result is durable
 * before the next one is written. With one rank, rank 0 runs the tasks
 * itself in the same order.
 *
 * Radial loss probes (jobs/README.md [probes]): for each radius r and
 * direction d, the loss on the probe windows with every LINEAR weight W
 * replaced by W + r*|W|*u, u = z/|z| of W's shape, z i.i.d. normals from
 * qid_rng stream (bit 63 | d << 32 | tensor index) of the job seed, made
 * per tensor by a weight hook (never the whole model in memory; the same
 * direction for every radius). The probe row has no window vectors; its
 * `loss` is the mean over radii x directions and its `options` is the
 * key's options followed by ";losses=" and every loss, radius-major,
 * comma-separated (%.17g): ...,seed=0;losses=L(r0,d0),L(r0,d1),...,L(r1,d0),...
 *
 * Results do not depend on the rank count: each task is evaluated by one
 * rank with the eval's default batch size (a function of the model and the
 * window length only) and a fixed thread count (--threads, default 1).
 *
 * GPTQ calibration uses `samples` windows of the calibration set drawn with
 * the job seed (qid_quantize_read_calib), the same on every rank.
 *
 * A worker keeps the checkpoint and the evaluation token set of its last
 * task open for its next (affinity makes that the common case): a task
 * opens each at most once.
 *
 * Does not: parse the command line (cmd_run.c), fit laws, or print result
 * tables (`qid results`). */
#ifndef QID_SWEEP_H
#define QID_SWEEP_H

#include <stddef.h>

#include "error.h"

/* Default seconds between progress lines when stderr is not a terminal. */
#define QID_SWEEP_PROGRESS_EVERY 30.0

typedef struct qid_sweep_opts {
    const char *job_file;  /* the job file (every rank gets the same name) */
    double progress_every; /* seconds between progress lines when stderr is not a terminal, > 0 */
    int threads;           /* evaluation threads per rank, >= 1; results depend on it */
    double mem_limit;      /* bytes per rank, over the job's mem_limit; 0 = the job's */
} qid_sweep_opts;

/* What a run did, on rank 0 (zero on the other ranks). */
typedef struct qid_sweep_summary {
    size_t run;     /* tasks run (and recorded) */
    size_t failed;  /* of those, failed (recorded with their error) */
    size_t skipped; /* already OK in the store */
} qid_sweep_summary;

/* The sweep of job o->job_file. Collective over MPI_COMM_WORLD, which must
 * be initialized (with MPI_ERRORS_RETURN; MPI is finalized by the caller).
 * Returns QID_OK when the run went through (every task of this run is in
 * the store, OK or failed: see sum). When
 * the run cannot start (a bad job, no checkpoint, a store that cannot be
 * read or is locked by another run) every rank returns the status; on rank
 * 0 err holds the one-line reason, on the others err is empty. Broken
 * invariants and a store that cannot be written abort the job (tier 1). */
int qid_sweep_run(const qid_sweep_opts *o, qid_sweep_summary *sum, qid_error *err);

#endif
