/* sweep.h - `qid run`: the MPI sweep over checkpoints x quantizer settings
 * of a job file (jobfile.h), with rank 0 scheduling and writing the results
 * store (results.h) and the other ranks evaluating (eval.h, quantize.h).
 *
 * Protocol (all messages on MPI_COMM_WORLD, MPI_BYTE payloads of structs
 * defined in sweep.c; ranks of one job are assumed to share one ABI):
 *   start-up (collective): rank 0 loads the job, expands it, opens the store
 *     (lock + crash repair), drops the tasks already OK in it, and broadcasts
 *     a go / stop flag, then the job's text. Workers parse that text with
 *     qid_job_parse (same file name, so relative paths resolve the same way);
 *     only rank 0 expands globs and lists and opens checkpoints at expansion.
 *   worker -> 0, tag REQUEST: the checkpoint index it holds (-1 at first).
 *   0 -> worker, tag TASK: task id (position in rank 0's task list),
 *     checkpoint index, method, index into job->quant (-1 for the baseline)
 *     and the checkpoint path (the form to open).
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
 * Does not: fit laws, or print result tables (`qid results`). */
#ifndef QID_SWEEP_H
#define QID_SWEEP_H

/* `qid run [--dry-run] [--progress-every S] [--threads T] JOB`. The only
 * command that calls MPI_Init (and MPI_Finalize); collective over
 * MPI_COMM_WORLD. Returns 0 when every task of this run finished OK (or
 * nothing was left to do), 1 when some task failed (the rest still ran and
 * the failures are in the store) or the run could not start (a bad job, a
 * store locked by another run: one "qid run: error: ..." line on rank 0),
 * 2 on bad usage. */
int qid_run_main(int argc, char **argv);

#endif
