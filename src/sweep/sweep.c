/* sweep.c - `qid run` (sweep.h): start-up, the rank-0 scheduler with its
 * join of quantized results against their baseline and its progress line,
 * the worker loop, and the evaluation of one task.
 *
 * Does not: parse job files (jobfile.c), write HDF5 itself (results.c),
 * quantize or evaluate (quantize.c, eval.c). */
#include "sweep.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "error.h"
#include "eval.h"
#include "jobfile.h"
#include "quant.h"
#include "quantize.h"
#include "results.h"
#include "rng.h"
#include "tokens.h"

enum { TAG_REQUEST = 1, TAG_TASK = 2, TAG_RESULT = 3, TAG_STOP = 4 };

/* start-up flag broadcast by rank 0 */
enum { START_GO = 0, START_FAIL = 1, START_DONE = 2 };

/* 0 -> worker: a task. Followed by path_len bytes of the checkpoint path. */
typedef struct wire_task {
    int64_t id;   /* position in rank 0's (sorted) task list */
    int64_t ckpt; /* checkpoint index */
    int32_t method;
    int32_t quant; /* index into job->quant, -1 for the baseline */
    int32_t path_len;
    int32_t pad;
} wire_task;

/* worker -> 0: a result. Followed by windows doubles (NLL sums), windows
 * int64 (scored tokens) and n_probe doubles (a probe task's losses). */
typedef struct wire_result {
    int64_t id;
    int64_t ckpt;
    int32_t status; /* qid_result_status */
    int32_t rank;
    int64_t windows, tokens;
    int64_t n_probe; /* probe losses, radius-major: [r * directions + d] */
    int64_t params, tokens_seen, step;
    double loss, kl, sqnr_db, seconds, bits;
    int32_t elem_bits;
    int32_t pad;
    char model[128];
    char ckpt_sha256[65];
    char eval_sha256[65];
    char error[QID_ERROR_MAX];
} wire_result;

/* What one task produced, on the rank that ran it. */
typedef struct task_out {
    wire_result r;
    double *nll;    /* (windows) */
    int64_t *count; /* (windows) */
    double *probe;  /* (n_probe) */
} task_out;

/* ---- one task ----------------------------------------------------------- */

/* Storage bits per weight of the LINEAR tensors of cfg under spec,
 * weighted by their element counts. */
static double linear_bits(const qid_model_config *cfg, const qid_quant_spec *spec)
{
    size_t n = 0;
    qid_tensor_spec *ts = qid_ckpt_tensors(cfg, &n);
    double bits = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        if (ts[i].kind != QID_TENSOR_LINEAR) continue;
        double e = (double)qid_tensor_numel(&ts[i]);
        bits += e * qid_quant_bits_per_weight(spec, (size_t)ts[i].shape[1]);
        w += e;
    }
    free(ts);
    return w > 0 ? bits / w : NAN;
}

static void task_fail(task_out *o, const qid_error *err)
{
    o->r.status = QID_RESULT_FAILED;
    snprintf(o->r.error, sizeof o->r.error, "%s", err->msg[0] ? err->msg : "unknown error");
    free(o->nll);
    free(o->count);
    free(o->probe);
    o->nll = NULL;
    o->count = NULL;
    o->probe = NULL;
    o->r.windows = 0;
    o->r.n_probe = 0;
}

/* ---- radial loss probes --------------------------------------------------- */

/* Probe streams of qid_rng: bit 63 set (apart from any other use of the job
 * seed), the direction in bits 32..62, the tensor's index in the model's
 * tensor table (qid_ckpt_tensors) in bits 0..31. */
#define PROBE_STREAM(d, idx) ((UINT64_C(1) << 63) | ((uint64_t)(d) << 32) | (uint64_t)(idx))

typedef struct probe_ctx {
    uint64_t seed;
    uint64_t direction;
    double radius;                  /* relative to each tensor's norm */
    const qid_tensor_spec *tensors; /* the model's tensor table */
    size_t n_tensors;
} probe_ctx;

/* Weight hook: W += r * |W| * u for a LINEAR tensor W, u = z / |z| with z
 * i.i.d. standard normals of W's shape drawn from stream PROBE_STREAM(d,
 * tensor index) of the job seed. z is drawn twice (once for |z|, once to
 * add) so no copy of the tensor is needed; the direction of a tensor
 * depends only on (seed, d, tensor), not on the radius, the batch or the
 * rank. Other tensors (embedding, norms, biases, the head) are left alone. */
static int probe_hook(void *vctx, const qid_tensor_spec *t, float *w, qid_error *err)
{
    const probe_ctx *c = vctx;
    if (t->kind != QID_TENSOR_LINEAR) return QID_OK;
    size_t idx = c->n_tensors;
    for (size_t i = 0; i < c->n_tensors && idx == c->n_tensors; i++)
        if (c->tensors[i].layer == t->layer && strcmp(c->tensors[i].name, t->name) == 0) idx = i;
    if (idx == c->n_tensors)
        return qid_error_set(err, QID_E_INVALID, "probe: tensor '%s' of layer %d is not in the model's table", t->name,
                             t->layer);
    size_t n = (size_t)qid_tensor_numel(t);
    double w2 = 0, z2 = 0;
    for (size_t i = 0; i < n; i++)
        w2 += (double)w[i] * w[i];
    qid_rng rng;
    qid_rng_seed(&rng, c->seed, PROBE_STREAM(c->direction, idx));
    for (size_t i = 0; i < n; i++) {
        double z = qid_rng_normal(&rng);
        z2 += z * z;
    }
    if (!(z2 > 0) || !(w2 > 0)) return QID_OK; /* an all-zero tensor has no scale to probe */
    double scale = c->radius * sqrt(w2) / sqrt(z2);
    qid_rng_seed(&rng, c->seed, PROBE_STREAM(c->direction, idx));
    for (size_t i = 0; i < n; i++)
        w[i] = (float)((double)w[i] + scale * qid_rng_normal(&rng));
    return QID_OK;
}

/* The probe task: for each radius r and direction d, the loss on the probe
 * windows with every linear weight moved to W + r*|W|*u_d (probe_hook).
 * Fills o->probe (radius-major), o->r.loss (their mean) and o->r.tokens
 * (scored tokens of one evaluation); no per-window vectors. */
static int run_probes(const qid_job *job, const char *ckpt_path, const qid_model_config *cfg, qid_eval_opts *eo,
                      task_out *o, qid_error *err)
{
    size_t nr = job->probes.n_radii, nd = (size_t)job->probes.directions;
    probe_ctx c = {.seed = job->seed};
    qid_tensor_spec *tensors = qid_ckpt_tensors(cfg, &c.n_tensors);
    c.tensors = tensors;
    o->probe = qid_malloc(qid_mul_size(nr, nd) * sizeof *o->probe + 1, "probe losses");
    o->r.n_probe = (int64_t)(nr * nd);
    if (job->probes.windows) eo->max_windows = (size_t)job->probes.windows;
    eo->weight_hook = probe_hook;
    eo->weight_ctx = &c;
    int rc = QID_OK;
    for (size_t d = 0; d < nd && rc == QID_OK; d++)
        for (size_t r = 0; r < nr && rc == QID_OK; r++) {
            c.direction = d;
            c.radius = job->probes.radii[r];
            qid_eval_result er;
            memset(&er, 0, sizeof er);
            rc = qid_eval_file(ckpt_path, job->eval.tokens.path, eo, &er, err);
            if (rc == QID_OK && !isfinite(er.loss))
                rc = qid_error_set(err, QID_E_NUMERIC, "non-finite loss probing '%s' at radius %g, direction %zu",
                                   ckpt_path, c.radius, d);
            if (rc == QID_OK) {
                o->probe[r * nd + d] = er.loss;
                o->r.tokens = er.tokens_scored;
            }
            qid_eval_result_free(&er);
        }
    free(tensors);
    if (rc) return rc;
    double sum = 0;
    for (size_t i = 0; i < nr * nd; i++)
        sum += o->probe[i];
    o->r.loss = sum / (double)(nr * nd);
    return QID_OK;
}

/* What a rank remembers between its tasks: the metadata of the checkpoint of
 * its last task (its next tasks are usually other settings of the same
 * checkpoint: affinity) and of the evaluation token set, so a task does not
 * open them an extra time each (they are read again by the evaluation
 * itself). Only successful reads are kept: a broken file fails every task. */
typedef struct task_cache {
    char ckpt_path[1024];
    qid_model_config cfg;
    qid_ckpt_meta meta;
    char tokens_path[1024];
    char eval_sha256[65];
    int64_t seq_len;
} task_cache;

static int cached_ckpt(task_cache *c, const char *path, qid_error *err)
{
    if (c->ckpt_path[0] && strcmp(c->ckpt_path, path) == 0) return QID_OK;
    c->ckpt_path[0] = '\0';
    qid_ckpt ck;
    int rc = qid_ckpt_open(path, &ck, err);
    if (rc) return rc;
    c->cfg = ck.cfg;
    c->meta = ck.meta;
    qid_ckpt_close(&ck);
    if (strlen(path) < sizeof c->ckpt_path) snprintf(c->ckpt_path, sizeof c->ckpt_path, "%s", path);
    return QID_OK;
}

static int cached_tokens(task_cache *c, const char *path, qid_error *err)
{
    if (c->tokens_path[0] && strcmp(c->tokens_path, path) == 0) return QID_OK;
    c->tokens_path[0] = '\0';
    qid_tokens tk;
    int rc = qid_tokens_open(path, &tk, err);
    if (rc) return rc;
    snprintf(c->eval_sha256, sizeof c->eval_sha256, "%s", tk.meta.source_sha256);
    c->seq_len = tk.meta.seq_len;
    qid_tokens_close(&tk);
    if (strlen(path) < sizeof c->tokens_path) snprintf(c->tokens_path, sizeof c->tokens_path, "%s", path);
    return QID_OK;
}

/* Evaluates one task: the baseline (no hook) or a quantizer setting
 * (RTN weight hook, GPTQ activation hook on the calibration windows). A
 * failure of any kind fills o as failed with its one-line error. */
static void run_task(const qid_job *job, const char *ckpt_path, qid_job_method method, const qid_job_quant *q,
                     int threads, int rank, task_cache *cache, task_out *o)
{
    double t0 = MPI_Wtime();
    qid_error err;
    qid_error_clear(&err);
    memset(o, 0, sizeof *o);
    o->r.status = QID_RESULT_OK;
    o->r.rank = rank;
    o->r.params = o->r.tokens_seen = o->r.step = -1;
    o->r.loss = o->r.kl = o->r.sqnr_db = o->r.bits = NAN;
    o->r.elem_bits = -1;

    qid_quantizer *qz = NULL;
    uint32_t *calib = NULL;
    size_t calib_n = 0, calib_len = 0;
    qid_eval_result er;
    memset(&er, 0, sizeof er);

    if (cached_ckpt(cache, ckpt_path, &err)) goto fail;
    qid_model_config cfg = cache->cfg;
    snprintf(o->r.model, sizeof o->r.model, "%s", cache->meta.model);
    snprintf(o->r.ckpt_sha256, sizeof o->r.ckpt_sha256, "%s", cache->meta.tensor_sha256);
    o->r.params = cache->meta.params_nonembedding;
    o->r.tokens_seen = cache->meta.tokens_seen;
    o->r.step = cache->meta.step;
    int dtype_bits = (int)(8 * qid_dtype_size(cache->meta.dtype));

    if (cached_tokens(cache, job->eval.tokens.path, &err)) goto fail;
    snprintf(o->r.eval_sha256, sizeof o->r.eval_sha256, "%s", cache->eval_sha256);
    int64_t set_len = cache->seq_len;
    if (job->eval.seq_len && job->eval.seq_len != set_len) {
        qid_error_set(&err, QID_E_INVALID,
                      "token set '%s' has windows of %" PRId64 " tokens, the job asks for %" PRId64,
                      job->eval.tokens.path, set_len, job->eval.seq_len);
        goto fail;
    }

    qid_eval_opts eo;
    memset(&eo, 0, sizeof eo);
    eo.max_windows = (size_t)job->eval.windows;
    eo.second_half = job->eval.scoring == QID_JOB_SCORING_SECOND_HALF;
    eo.threads = threads;

    if (method == QID_JOB_METHOD_PROBES) {
        if (run_probes(job, ckpt_path, &cfg, &eo, o, &err)) goto fail;
        goto done;
    }
    if (method == QID_JOB_METHOD_BASELINE) {
        o->r.bits = dtype_bits;
        o->r.elem_bits = dtype_bits;
    } else {
        qid_quantize_opts qo;
        qid_quantize_opts_default(&qo);
        qo.spec = q->spec;
        qo.method = method == QID_JOB_METHOD_GPTQ ? QID_QUANTIZE_GPTQ : QID_QUANTIZE_RTN;
        qo.gptq.percdamp = q->gptq.damp;
        qo.gptq.block = q->gptq.block_size;
        qo.gptq.act_order = q->gptq.act_order;
        qo.gptq.static_groups = q->gptq.static_groups;
        qo.gptq.micro_block = q->gptq.micro_block ? q->gptq.micro_block : 1;
        if (qid_quantize_check(&cfg, &qo, &err)) goto fail;
        o->r.bits = linear_bits(&cfg, &q->spec);
        o->r.elem_bits = q->spec.bits;
        if (method == QID_JOB_METHOD_GPTQ) {
            if (qid_quantize_read_calib(job->calib.tokens.path, &cfg, (size_t)job->calib.samples, job->seed, &calib,
                                        &calib_n, &calib_len, &err))
                goto fail;
            if (job->calib.seq_len && (size_t)job->calib.seq_len != calib_len) {
                qid_error_set(&err, QID_E_INVALID,
                              "calibration set '%s' has windows of %zu tokens, the job asks for %" PRId64,
                              job->calib.tokens.path, calib_len, job->calib.seq_len);
                goto fail;
            }
            eo.calib_tokens = calib;
            eo.calib_windows = calib_n;
            eo.calib_seq_len = calib_len;
        }
        qz = qid_quantizer_create(&qo);
        qid_quantizer_hooks(qz, &eo.weight_hook, &eo.weight_ctx, &eo.act_hook, &eo.act_ctx);
        eo.kl = job->eval.kl;
    }

    if (qid_eval_file(ckpt_path, job->eval.tokens.path, &eo, &er, &err)) goto fail;
    if (!isfinite(er.loss)) {
        qid_error_set(&err, QID_E_NUMERIC, "non-finite loss evaluating '%s'", ckpt_path);
        goto fail;
    }
    o->r.loss = er.loss;
    o->r.kl = eo.kl ? er.kl : NAN;
    if (qz) o->r.sqnr_db = qid_sqnr_acc_db(&qid_quantizer_stats(qz)->sqnr);
    o->r.windows = (int64_t)er.n_windows;
    o->r.tokens = er.tokens_scored;
    o->nll = qid_malloc(qid_mul_size(er.n_windows, sizeof *o->nll) + 1, "per-window NLL of a task");
    o->count = qid_malloc(qid_mul_size(er.n_windows, sizeof *o->count) + 1, "per-window tokens of a task");
    memcpy(o->nll, er.window_nll, er.n_windows * sizeof *o->nll);
    memcpy(o->count, er.window_tokens, er.n_windows * sizeof *o->count);
    goto done;
fail:
    task_fail(o, &err);
done:
    qid_eval_result_free(&er);
    if (qz) qid_quantizer_free(qz);
    free(calib);
    o->r.seconds = MPI_Wtime() - t0;
}

/* ---- rank 0: state, join, progress ---------------------------------------- */

enum { T_PENDING = 0, T_RUNNING = 1, T_DONE = 2, T_SKIPPED = 3 };
enum { B_UNKNOWN = 0, B_OK = 1, B_FAILED = 2 };

typedef struct base_info {
    int state;
    size_t n;
    double *nll;
    int64_t *count;
    double loss;
    char error[QID_ERROR_MAX];
} base_info;

typedef struct sched {
    qid_job *job;
    qid_task *tasks; /* sorted largest first */
    size_t n_tasks;
    int *state;     /* per task */
    int *quant_idx; /* per task: index into job->quant, -1 */
    base_info *base;
    size_t n_ckpts;
    qid_results *store;
    size_t total, done, failed, skipped, running;
    double t_start, last_progress;
    double busy; /* rank 0's seconds in scheduling and storing, not in tasks or naps */
    double progress_every;
    int tty;
    int size;
} sched;

/* Field i (0-based) of a task key: '|'-separated, '\' escapes. */
static void key_field(const char *key, int field, char *out, size_t len)
{
    int f = 0;
    size_t k = 0;
    for (const char *p = key; *p; p++) {
        if (*p == '\\' && p[1]) {
            if (f == field && k + 2 < len) {
                out[k++] = p[0];
                out[k++] = p[1];
            }
            p++;
            continue;
        }
        if (*p == '|') {
            f++;
            continue;
        }
        if (f == field && k + 1 < len) out[k++] = *p;
    }
    out[k] = 0;
}

static void progress(sched *s, int force)
{
    double now = MPI_Wtime();
    if (!force && !s->tty && now - s->last_progress < s->progress_every) return;
    if (!force && s->tty && now - s->last_progress < 0.5) return;
    s->last_progress = now;
    double min = (now - s->t_start) / 60.0;
    double rate = min > 0 ? (double)s->done / min : 0;
    char eta[32] = "?";
    if (rate > 0) {
        double sec = (double)(s->total - s->done) / rate * 60.0;
        snprintf(eta, sizeof eta, "%.0fs", sec);
    }
    if (s->tty)
        fprintf(stderr, "\rqid run: %zu/%zu done, %zu failed, %zu running, %.1f tasks/min, ETA %s   ", s->done,
                s->total, s->failed, s->running, rate, eta);
    else
        qid_info("run: %zu/%zu done, %zu failed, %zu running, %.1f tasks/min, ETA %s", s->done, s->total, s->failed,
                 s->running, rate, eta);
}

/* The options column of a probe row: the key's options, then, for an OK
 * task (o not NULL), ";losses=" and the loss of every (radius, direction)
 * radius-major, comma-separated, %.17g:
 *   radii=0.001,0.01,directions=2,seed=0;losses=3.51,3.52,3.60,3.58
 * (radius 0.001 directions 0, 1, then radius 0.01). Returns malloc'd text. */
static char *probe_options(const char *key, const task_out *o)
{
    char opts[QID_JOB_MAX_LINE];
    key_field(key, 3, opts, sizeof opts);
    size_t n = o ? (size_t)o->r.n_probe : 0;
    size_t cap = strlen(opts) + 16 + 26 * n;
    char *out = qid_malloc(cap, "probe options");
    size_t k = (size_t)snprintf(out, cap, "%s", opts);
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%.17g", i ? "," : ";losses=", o->probe[i]);
    return out;
}

/* Appends the row of task t with result o (joined with the baseline), or
 * dies when the store cannot be written (tier 1: the run cannot go on). */
static void record(sched *s, size_t t, const task_out *o)
{
    const qid_task *task = &s->tasks[t];
    base_info *b = &s->base[task->ckpt];
    qid_result row;
    memset(&row, 0, sizeof row);
    char calib[QID_JOB_MAX_LINE], evalp[QID_JOB_MAX_LINE], fin[32], errtxt[QID_ERROR_MAX];
    key_field(task->key, 4, calib, sizeof calib);
    key_field(task->key, 5, evalp, sizeof evalp);
    qid_utc_now(fin, sizeof fin);
    snprintf(errtxt, sizeof errtxt, "%s", o->r.error);
    int status = o->r.status;
    double loss16 = NAN, qid = NAN, se = NAN;
    int32_t *tok32 = NULL;

    char *probe_opts = NULL;
    if (status == QID_RESULT_OK && task->method == QID_JOB_METHOD_BASELINE) {
        loss16 = o->r.loss;
        qid = 0;
        se = 0;
    } else if (task->method == QID_JOB_METHOD_PROBES) {
        probe_opts = probe_options(task->key, status == QID_RESULT_OK ? o : NULL);
    } else if (status == QID_RESULT_OK) {
        qid_error err;
        qid_error_clear(&err);
        qid_eval_paired p;
        QID_CHECK(b->state == B_OK, "task '%s' ran before its baseline", task->key);
        int bad = (size_t)o->r.windows != b->n;
        for (size_t i = 0; !bad && i < b->n; i++)
            bad = o->count[i] != b->count[i];
        if (bad)
            qid_error_set(&err, QID_E_INVALID, "windows of '%s' differ from those of its baseline (%" PRId64 " vs %zu)",
                          task->ckpt_path.rel, o->r.windows, b->n);
        else if (qid_eval_paired_diff(b->nll, o->nll, o->count, b->n, &p, &err) == QID_OK) {
            loss16 = p.loss_a;
            qid = p.diff;
            se = p.se;
        }
        if (err.code) {
            status = QID_RESULT_FAILED;
            snprintf(errtxt, sizeof errtxt, "%s", err.msg);
        }
    }

    row.key = task->key;
    row.checkpoint = task->ckpt_path.rel;
    row.model = o->r.model[0] ? o->r.model : task->model;
    row.ckpt_sha256 = o->r.ckpt_sha256;
    row.params = o->r.params;
    row.tokens_seen = o->r.tokens_seen;
    row.step = o->r.step;
    row.method = qid_job_method_name(task->method);
    row.format = task->method == QID_JOB_METHOD_RTN || task->method == QID_JOB_METHOD_GPTQ ? task->quant.format : "";
    row.bits = o->r.bits;
    row.elem_bits = o->r.elem_bits;
    row.block = task->method == QID_JOB_METHOD_RTN || task->method == QID_JOB_METHOD_GPTQ
                    ? (int64_t)task->quant.spec.block
                    : -1;
    row.options = task->method == QID_JOB_METHOD_RTN || task->method == QID_JOB_METHOD_GPTQ ? task->quant.options
                  : probe_opts                                                              ? probe_opts
                                                                                            : "-";
    row.calib = calib;
    row.eval_protocol = evalp;
    row.eval_sha256 = o->r.eval_sha256;
    row.loss = status == QID_RESULT_OK ? o->r.loss : NAN;
    row.loss16 = loss16;
    row.qid = qid;
    row.qid_se = se;
    row.sqnr_db = o->r.sqnr_db;
    row.kl = o->r.kl;
    row.tokens = status == QID_RESULT_OK ? o->r.tokens : -1;
    row.windows = status == QID_RESULT_OK ? o->r.windows : 0;
    row.seconds = o->r.seconds;
    row.rank = o->r.rank;
    row.status = (qid_result_status)status;
    row.error = status == QID_RESULT_OK ? "" : errtxt;
    row.finished_utc = fin;
    if (status == QID_RESULT_OK && o->r.windows > 0) {
        tok32 = qid_malloc((size_t)o->r.windows * sizeof *tok32, "per-window tokens of a row");
        for (int64_t i = 0; i < o->r.windows; i++)
            tok32[i] = (int32_t)o->count[i];
        row.window_nll = o->nll;
        row.window_tokens = tok32;
    }
    qid_error err;
    qid_error_clear(&err);
    if (qid_results_append(s->store, &row, &err)) qid_die("cannot append the result of '%s': %s", task->key, err.msg);
    free(tok32);
    free(probe_opts);

    s->done++;
    if (status != QID_RESULT_OK) {
        s->failed++;
        qid_warn("task failed: %s: %s", task->key, row.error);
    }
    progress(s, 0);
}

/* Takes note of the result o of task t before it is recorded: a baseline's
 * outcome makes its checkpoint's quantized tasks eligible (or orphans). */
static void note_result(sched *s, size_t t, const task_out *o)
{
    const qid_task *task = &s->tasks[t];
    base_info *b = &s->base[task->ckpt];
    if (task->method != QID_JOB_METHOD_BASELINE) return;
    if (o->r.status == QID_RESULT_OK) {
        b->state = B_OK;
        b->n = (size_t)o->r.windows;
        b->nll = qid_malloc(b->n * sizeof *b->nll + 1, "baseline per-window NLL");
        b->count = qid_malloc(b->n * sizeof *b->count + 1, "baseline per-window tokens");
        memcpy(b->nll, o->nll, b->n * sizeof *b->nll);
        memcpy(b->count, o->count, b->n * sizeof *b->count);
        b->loss = o->r.loss;
    } else {
        b->state = B_FAILED;
        snprintf(b->error, sizeof b->error, "%s", o->r.error[0] ? o->r.error : "unknown error");
    }
}

/* Quantized tasks are joined against their checkpoint's baseline; the
 * baseline and the probes stand alone. */
static int needs_baseline(qid_job_method m) { return m == QID_JOB_METHOD_RTN || m == QID_JOB_METHOD_GPTQ; }

/* Tasks of checkpoints whose baseline failed cannot be joined: record them
 * as failed (they are retried by a later run). */
static void fail_orphans(sched *s)
{
    for (size_t t = 0; t < s->n_tasks; t++) {
        if (s->state[t] != T_PENDING || !needs_baseline(s->tasks[t].method)) continue;
        const base_info *b = &s->base[s->tasks[t].ckpt];
        if (b->state != B_FAILED) continue;
        task_out o;
        memset(&o, 0, sizeof o);
        o.r.status = QID_RESULT_FAILED;
        o.r.rank = 0;
        o.r.params = o.r.tokens_seen = o.r.step = -1;
        o.r.loss = o.r.kl = o.r.sqnr_db = o.r.bits = NAN;
        o.r.elem_bits = s->tasks[t].quant.spec.bits;
        snprintf(o.r.error, sizeof o.r.error, "baseline failed: %s", b->error);
        s->state[t] = T_DONE;
        record(s, t, &o);
    }
}

/* The next task for a worker holding checkpoint `held`: the first eligible
 * pending task of that checkpoint, else the first eligible one; -1 if none. */
static long pick(const sched *s, int64_t held)
{
    long any = -1;
    for (size_t t = 0; t < s->n_tasks; t++) {
        if (s->state[t] != T_PENDING) continue;
        const qid_task *k = &s->tasks[t];
        if (needs_baseline(k->method) && s->base[k->ckpt].state != B_OK) continue;
        if ((int64_t)k->ckpt == held) return (long)t;
        if (any < 0) any = (long)t;
    }
    return any;
}

static int quant_index(const qid_job *job, const qid_task *t)
{
    if (t->method != QID_JOB_METHOD_RTN && t->method != QID_JOB_METHOD_GPTQ) return -1;
    for (size_t j = 0; j < job->n_quant; j++)
        if (job->quant[j].method == t->method && strcmp(job->quant[j].format, t->quant.format) == 0 &&
            strcmp(job->quant[j].options, t->quant.options) == 0)
            return (int)j;
    qid_die("task '%s' has no quantizer setting in the job", t->key);
}

static void send_task(const sched *s, size_t t, int dest)
{
    const qid_task *k = &s->tasks[t];
    size_t plen = strlen(k->ckpt_path.path) + 1;
    size_t bytes = sizeof(wire_task) + plen;
    unsigned char *buf = qid_malloc(bytes, "task message");
    wire_task w;
    memset(&w, 0, sizeof w);
    w.id = (int64_t)t;
    w.ckpt = (int64_t)k->ckpt;
    w.method = (int32_t)k->method;
    w.quant = s->quant_idx[t];
    w.path_len = qid_mpi_count(plen, "checkpoint path bytes");
    memcpy(buf, &w, sizeof w);
    memcpy(buf + sizeof w, k->ckpt_path.path, plen);
    QID_MPI(MPI_Send(buf, qid_mpi_count(bytes, "task message bytes"), MPI_BYTE, dest, TAG_TASK, MPI_COMM_WORLD));
    free(buf);
}

/* Receives a message whose size is known only from the probe. */
static unsigned char *recv_bytes(int src, int tag, MPI_Status *st, int *count)
{
    QID_MPI(MPI_Probe(src, tag, MPI_COMM_WORLD, st));
    QID_MPI(MPI_Get_count(st, MPI_BYTE, count));
    unsigned char *buf = qid_malloc((size_t)*count + 1, "message");
    QID_MPI(MPI_Recv(buf, *count, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    return buf;
}

static void unpack_result(const unsigned char *buf, int count, task_out *o)
{
    QID_CHECK((size_t)count >= sizeof(wire_result), "short result message (%d bytes)", count);
    memcpy(&o->r, buf, sizeof o->r);
    size_t n = o->r.windows > 0 ? (size_t)o->r.windows : 0;
    size_t np = o->r.n_probe > 0 ? (size_t)o->r.n_probe : 0;
    QID_CHECK((size_t)count == sizeof(wire_result) + n * (sizeof(double) + sizeof(int64_t)) + np * sizeof(double),
              "result message of %d bytes for %zu windows and %zu probes", count, n, np);
    o->r.error[sizeof o->r.error - 1] = 0;
    o->r.model[sizeof o->r.model - 1] = 0;
    o->r.ckpt_sha256[64] = o->r.eval_sha256[64] = 0;
    o->nll = qid_malloc(n * sizeof *o->nll + 1, "per-window NLL");
    o->count = qid_malloc(n * sizeof *o->count + 1, "per-window tokens");
    memcpy(o->nll, buf + sizeof(wire_result), n * sizeof *o->nll);
    memcpy(o->count, buf + sizeof(wire_result) + n * sizeof *o->nll, n * sizeof *o->count);
    o->probe = qid_malloc(np * sizeof *o->probe + 1, "probe losses");
    memcpy(o->probe, buf + sizeof(wire_result) + n * (sizeof *o->nll + sizeof *o->count), np * sizeof *o->probe);
}

static void send_result(const task_out *o)
{
    size_t n = o->r.windows > 0 ? (size_t)o->r.windows : 0;
    size_t np = o->r.n_probe > 0 ? (size_t)o->r.n_probe : 0;
    size_t bytes = sizeof(wire_result) + n * (sizeof(double) + sizeof(int64_t)) + np * sizeof(double);
    unsigned char *buf = qid_malloc(bytes, "result message");
    memcpy(buf, &o->r, sizeof o->r);
    if (n) {
        memcpy(buf + sizeof(wire_result), o->nll, n * sizeof(double));
        memcpy(buf + sizeof(wire_result) + n * sizeof(double), o->count, n * sizeof(int64_t));
    }
    if (np) memcpy(buf + sizeof(wire_result) + n * (sizeof(double) + sizeof(int64_t)), o->probe, np * sizeof(double));
    QID_MPI(MPI_Send(buf, qid_mpi_count(bytes, "result message bytes"), MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD));
    free(buf);
}

static void task_out_free(task_out *o)
{
    free(o->nll);
    free(o->count);
    free(o->probe);
    o->nll = NULL;
    o->count = NULL;
    o->probe = NULL;
}

/* size == 1: rank 0 runs every task itself, in scheduling order. */
static void run_serial(sched *s, int threads)
{
    int64_t held = -1;
    task_cache cache = {0};
    for (;;) {
        double t0 = MPI_Wtime();
        fail_orphans(s);
        long t = pick(s, held);
        s->busy += MPI_Wtime() - t0;
        if (t < 0) break;
        const qid_task *k = &s->tasks[t];
        s->state[t] = T_RUNNING;
        s->running = 1;
        task_out o;
        run_task(s->job, k->ckpt_path.path, k->method, s->quant_idx[t] >= 0 ? &s->job->quant[s->quant_idx[t]] : NULL,
                 threads, 0, &cache, &o);
        s->running = 0;
        t0 = MPI_Wtime();
        s->state[t] = T_DONE;
        note_result(s, (size_t)t, &o);
        record(s, (size_t)t, &o);
        task_out_free(&o);
        s->busy += MPI_Wtime() - t0;
        held = (int64_t)k->ckpt;
    }
}

/* Answers every waiting worker that can be answered now: its next task, or
 * STOP once every task is recorded. Returns the number of STOPs sent. */
static int dispatch(sched *s, int *waiting, const int64_t *held, long *assigned)
{
    int stopped = 0;
    for (int w = 1; w < s->size; w++) {
        if (!waiting[w]) continue;
        long t = pick(s, held[w]);
        if (t >= 0) {
            s->state[t] = T_RUNNING;
            s->running++;
            assigned[w] = t;
            send_task(s, (size_t)t, w);
            waiting[w] = 0;
        } else if (s->done == s->total && s->running == 0) {
            QID_MPI(MPI_Send(NULL, 0, MPI_BYTE, w, TAG_STOP, MPI_COMM_WORLD));
            waiting[w] = 0;
            stopped++;
        }
    }
    return stopped;
}

/* size > 1: rank 0 only schedules. A result is received, its worker (and
 * any other waiting one) gets its next task, and only then is the result
 * appended (flushed; its fsync completes before the next append writes),
 * so the worker computes while rank 0 writes. Rank 0 polls with MPI_Iprobe and sleeps
 * between polls (Open MPI's blocking receive would spin on a core the
 * workers need), 20 us after a message, doubling to at most 200 us while
 * idle: a result waits at most that long (the timer slack is set to 1 us
 * so a nap is not stretched), and 5000 wake-ups a second cost rank 0 about
 * 1% of a core. */
static void run_scheduler(sched *s)
{
#ifdef __linux__
    /* Linux lets a sleep overrun by its timer slack (50 us by default),
     * which would add that much to every result's wait. */
    (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
#endif
    int alive = s->size - 1;
    int *waiting = qid_calloc((size_t)s->size, sizeof *waiting, "waiting workers");
    int64_t *held = qid_malloc((size_t)s->size * sizeof *held, "held checkpoints");
    long *assigned = qid_malloc((size_t)s->size * sizeof *assigned, "assigned tasks");
    for (int w = 0; w < s->size; w++)
        held[w] = -1, assigned[w] = -1;
    long nap_ns = 20000;
    while (alive > 0) {
        int flag = 0;
        MPI_Status st;
        QID_MPI(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st));
        if (!flag) {
            progress(s, 0);
            struct timespec ts = {0, nap_ns};
            nanosleep(&ts, NULL);
            if (nap_ns < 200000) nap_ns *= 2;
            continue;
        }
        nap_ns = 20000;
        double t0 = MPI_Wtime();
        int src = st.MPI_SOURCE, count = 0;
        QID_CHECK(src > 0 && src < s->size, "message from rank %d", src);
        if (st.MPI_TAG == TAG_REQUEST) {
            int64_t h = -1;
            QID_MPI(MPI_Recv(&h, 1, MPI_INT64_T, src, TAG_REQUEST, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
            held[src] = h;
            waiting[src] = 1;
        } else if (st.MPI_TAG == TAG_RESULT) {
            unsigned char *buf = recv_bytes(src, TAG_RESULT, &st, &count);
            task_out o;
            unpack_result(buf, count, &o);
            free(buf);
            QID_CHECK(o.r.id >= 0 && (size_t)o.r.id < s->n_tasks && o.r.id == assigned[src],
                      "result for task %" PRId64 " from rank %d", o.r.id, src);
            s->state[o.r.id] = T_DONE;
            s->running--;
            assigned[src] = -1;
            held[src] = o.r.ckpt;
            waiting[src] = 1;
            note_result(s, (size_t)o.r.id, &o);
            alive -= dispatch(s, waiting, held, assigned); /* the next task before the append */
            record(s, (size_t)o.r.id, &o);
            task_out_free(&o);
        } else {
            qid_die("unexpected message tag %d from rank %d", st.MPI_TAG, src);
        }
        fail_orphans(s);
        alive -= dispatch(s, waiting, held, assigned);
        s->busy += MPI_Wtime() - t0;
    }
    free(waiting);
    free(held);
    free(assigned);
}

/* ---- workers -------------------------------------------------------------- */

static void run_worker(const qid_job *job, int rank, int threads)
{
    int64_t held = -1;
    task_cache cache = {0};
    QID_MPI(MPI_Send(&held, 1, MPI_INT64_T, 0, TAG_REQUEST, MPI_COMM_WORLD));
    for (;;) {
        MPI_Status st;
        QID_MPI(MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
        if (st.MPI_TAG == TAG_STOP) {
            QID_MPI(MPI_Recv(NULL, 0, MPI_BYTE, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
            return;
        }
        QID_CHECK(st.MPI_TAG == TAG_TASK, "unexpected message tag %d", st.MPI_TAG);
        int count = 0;
        unsigned char *buf = recv_bytes(0, TAG_TASK, &st, &count);
        wire_task w;
        QID_CHECK((size_t)count > sizeof w, "short task message (%d bytes)", count);
        memcpy(&w, buf, sizeof w);
        QID_CHECK((size_t)count == sizeof w + (size_t)w.path_len && buf[count - 1] == 0, "bad task message");
        QID_CHECK(w.quant < (int32_t)job->n_quant, "task with quantizer %d of %zu", w.quant, job->n_quant);
        const char *path = (const char *)buf + sizeof w;
        task_out o;
        run_task(job, path, (qid_job_method)w.method, w.quant >= 0 ? &job->quant[w.quant] : NULL, threads, rank, &cache,
                 &o);
        o.r.id = w.id;
        o.r.ckpt = w.ckpt;
        held = w.ckpt;
        send_result(&o);
        task_out_free(&o);
        free(buf);
    }
}

/* ---- start-up ------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out, "usage: mpirun -np N qid run [--dry-run] [--progress-every S] [--threads T] JOB\n"
                 "\n"
                 "Runs every task of a job file (jobs/README.md): the 16-bit baseline and each quantizer\n"
                 "setting of every checkpoint, and appends one row per task to the job's results store.\n"
                 "Tasks already in the store are skipped, so rerunning a killed job finishes it.\n"
                 "Rank 0 schedules and writes the store; the other ranks evaluate (one rank runs all).\n"
                 "\n"
                 "  --dry-run            print the task grid and its estimated cost, run nothing\n"
                 "  --progress-every S   seconds between progress lines when stderr is not a terminal (30)\n"
                 "  --threads T          threads per rank for evaluation (1); results depend on it\n"
                 "  -h, --help           this text\n"
                 "\n"
                 "Exit status: 0 all tasks OK, 1 some task failed (recorded) or the run could not start, 2 usage.\n");
}

typedef struct run_args {
    int dry_run;
    double progress_every;
    int threads;
    const char *job;
} run_args;

static int parse_args(int argc, char **argv, run_args *a)
{
    static const struct option longopts[] = {{"dry-run", no_argument, NULL, 'n'},
                                             {"progress-every", required_argument, NULL, 'p'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    a->progress_every = 30;
    a->threads = 1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'n': a->dry_run = 1; break;
        case 'p':
            a->progress_every = strtod(optarg, &end);
            if (!*optarg || *end || !(a->progress_every > 0) || a->progress_every > 1e6) {
                fprintf(stderr, "qid run: error: --progress-every needs seconds > 0, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 't': {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > 4096) {
                fprintf(stderr, "qid run: error: --threads needs a count 1..4096, not '%s'\n", optarg);
                return 2;
            }
            a->threads = (int)v;
            break;
        }
        case 'h': usage(stdout); return -1;
        default:
            fprintf(stderr, "qid run: error: unknown option '%s' (see 'qid run --help')\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "qid run: error: %s (see 'qid run --help')\n",
                optind >= argc ? "no job file given" : "more than one job file given");
        return 2;
    }
    a->job = argv[optind];
    return 0;
}

static int cmp_row_key(const void *a, const void *b)
{
    return strcmp(((const qid_result *)a)->key, ((const qid_result *)b)->key);
}

/* Rank 0 before the go flag: job, grid, store, skipped tasks, baselines
 * from earlier runs. Returns START_* and prints its error. */
static int prepare(sched *s, const run_args *a, qid_job *job)
{
    qid_error err;
    qid_error_clear(&err);
    if (qid_job_load(a->job, job, &err)) {
        fprintf(stderr, "qid run: error: %s\n", err.msg);
        return START_FAIL;
    }
    s->job = job;
    if (qid_job_tasks(job, &s->tasks, &s->n_tasks, &err)) {
        fprintf(stderr, "qid run: error: %s\n", err.msg);
        return START_FAIL;
    }
    if (a->dry_run) {
        qid_job_print_grid(job, s->tasks, s->n_tasks, stdout);
        fflush(stdout);
        return START_DONE;
    }
    qsort(s->tasks, s->n_tasks, sizeof *s->tasks, qid_task_cmp_cost);
    for (size_t t = 0; t < s->n_tasks; t++)
        if (s->tasks[t].ckpt + 1 > s->n_ckpts) s->n_ckpts = s->tasks[t].ckpt + 1;

    /* Rows of earlier runs, read before the store is opened for writing (a
     * reader and the writer cannot share the file in one process): the
     * baselines' per-window NLL that later quantized tasks join against. */
    qid_result *rows = NULL;
    size_t n_rows = 0;
    struct stat sb;
    if (stat(job->results.path, &sb) == 0 && qid_results_read(job->results.path, &rows, &n_rows, &err)) {
        fprintf(stderr, "qid run: error: %s\n", err.msg);
        return START_FAIL;
    }
    qid_results_provenance prov = {job->name, job->file, job->text, job->seed, s->size};
    s->store = qid_results_open(job->results.path, &prov, &err);
    if (!s->store) {
        qid_results_rows_free(rows, n_rows);
        fprintf(stderr, "qid run: error: %s\n", err.msg);
        return START_FAIL;
    }
    qsort(rows, n_rows, sizeof *rows, cmp_row_key);

    s->state = qid_calloc(s->n_tasks + 1, sizeof *s->state, "task states");
    s->quant_idx = qid_malloc((s->n_tasks + 1) * sizeof *s->quant_idx, "task quantizers");
    s->base = qid_calloc(s->n_ckpts + 1, sizeof *s->base, "baselines");
    for (size_t t = 0; t < s->n_tasks; t++) {
        const qid_task *k = &s->tasks[t];
        s->quant_idx[t] = quant_index(job, k);
        if (!qid_results_has(s->store, k->key)) continue;
        if (k->method == QID_JOB_METHOD_BASELINE) {
            /* the last OK row with this key */
            const qid_result *hit = NULL;
            qid_result probe;
            memset(&probe, 0, sizeof probe);
            probe.key = k->key;
            const qid_result *r = bsearch(&probe, rows, n_rows, sizeof *rows, cmp_row_key);
            if (r) {
                while (r > rows && strcmp(r[-1].key, k->key) == 0)
                    r--;
                for (; r < rows + n_rows && strcmp(r->key, k->key) == 0; r++)
                    if (r->status == QID_RESULT_OK && r->window_nll && r->window_tokens) hit = r;
            }
            if (!hit) continue; /* not readable: compute it again */
            base_info *b = &s->base[k->ckpt];
            b->state = B_OK;
            b->n = (size_t)hit->windows;
            b->nll = qid_malloc(b->n * sizeof *b->nll + 1, "baseline per-window NLL");
            b->count = qid_malloc(b->n * sizeof *b->count + 1, "baseline per-window tokens");
            for (size_t i = 0; i < b->n; i++) {
                b->nll[i] = hit->window_nll[i];
                b->count[i] = hit->window_tokens[i];
            }
            b->loss = hit->loss;
        }
        s->state[t] = T_SKIPPED;
        s->skipped++;
    }
    qid_results_rows_free(rows, n_rows);
    s->total = s->n_tasks - s->skipped;
    qid_info("run: job '%s': %zu tasks, %zu already in '%s', %zu to run on %d rank%s", job->name, s->n_tasks,
             s->skipped, job->results.path, s->total, s->size, s->size == 1 ? "" : "s");
    return START_GO;
}

static void sched_free(sched *s)
{
    for (size_t c = 0; c < s->n_ckpts && s->base; c++) {
        free(s->base[c].nll);
        free(s->base[c].count);
    }
    free(s->base);
    free(s->state);
    free(s->quant_idx);
    qid_job_tasks_free(s->tasks, s->n_tasks);
}

int qid_run_main(int argc, char **argv)
{
    run_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;

    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "qid run: error: MPI_Init failed\n");
        return 1;
    }
    QID_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    int rank = 0, size = 1;
    QID_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    QID_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size));
    qid_log_set_rank(rank);

    qid_job job;
    memset(&job, 0, sizeof job);
    sched s;
    memset(&s, 0, sizeof s);
    s.size = size;
    s.progress_every = a.progress_every;
    s.tty = isatty(2);

    int32_t start = START_GO;
    if (rank == 0) start = prepare(&s, &a, &job);
    QID_MPI(MPI_Bcast(&start, 1, MPI_INT32_T, 0, MPI_COMM_WORLD));
    if (start != START_GO) {
        if (rank == 0) sched_free(&s);
        qid_job_free(&job);
        MPI_Finalize();
        return start == START_DONE ? 0 : 1;
    }

    /* the job text to the workers, which parse it themselves */
    if (size > 1) {
        int64_t len = rank == 0 ? (int64_t)job.text_len : 0;
        QID_MPI(MPI_Bcast(&len, 1, MPI_INT64_T, 0, MPI_COMM_WORLD));
        char *text = rank == 0 ? job.text : qid_malloc((size_t)len + 1, "job text");
        QID_MPI(MPI_Bcast(text, qid_mpi_count((size_t)len, "job text bytes"), MPI_CHAR, 0, MPI_COMM_WORLD));
        if (rank != 0) {
            qid_error err;
            qid_error_clear(&err);
            if (qid_job_parse(text, (size_t)len, a.job, &job, &err))
                qid_die("cannot parse the job text rank 0 sent: %s", err.msg);
            free(text);
        }
    }

    int failed = 0;
    if (rank == 0) {
        s.t_start = s.last_progress = MPI_Wtime();
        if (size == 1)
            run_serial(&s, a.threads);
        else
            run_scheduler(&s);
        if (s.tty) fputc('\n', stderr);
        qid_error err;
        qid_error_clear(&err);
        if (qid_results_close(s.store, &err)) qid_die("cannot close the results store: %s", err.msg);
        qid_info("run: done: %zu tasks run, %zu failed, %zu skipped (already in the store), %.1f s; rank 0 spent "
                 "%.3f ms a task scheduling and storing results",
                 s.done, s.failed, s.skipped, MPI_Wtime() - s.t_start, s.done ? 1e3 * s.busy / (double)s.done : 0.0);
        failed = s.failed > 0;
        sched_free(&s);
    } else {
        run_worker(&job, rank, a.threads);
    }
    qid_job_free(&job);
    MPI_Finalize();
    return failed ? 1 : 0;
}
