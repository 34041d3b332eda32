/* sweep_task.c - the worker side of `qid run` (sweep_internal.h): one
 * task on one rank. Opens (or reuses) the checkpoint and the evaluation
 * token set, reads the calibration windows for GPTQ, builds the quantizer
 * hooks or the radial-probe hook, evaluates, and fills one result.
 *
 * Not collective; never prints (failures become the result's one-line
 * error). Does not: talk MPI, schedule, join against baselines or write
 * the store (sweep.c), or quantize and evaluate itself (quantize.h,
 * eval.h). */
#include <inttypes.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "eval.h"
#include "quant.h"
#include "quantize.h"
#include "results.h"
#include "rng.h"
#include "sweep_internal.h"

void sweep_result_init(sweep_result *o, int rank)
{
    memset(o, 0, sizeof *o);
    o->r.status = QID_RESULT_OK;
    o->r.rank = rank;
    o->r.params = o->r.tokens_seen = o->r.step = o->r.calib_chunk = -1;
    o->r.loss = o->r.kl = o->r.sqnr_db = o->r.bits = o->r.lr_frac = NAN;
    o->r.elem_bits = -1;
    qid_divergence_none(&o->r.div);
}

void sweep_result_free(sweep_result *o)
{
    free(o->nll);
    free(o->count);
    free(o->probe);
    o->nll = NULL;
    o->count = NULL;
    o->probe = NULL;
}

/* Makes o a failed result with err's one line; drops its vectors. */
static void task_fail(sweep_result *o, const qid_error *err)
{
    o->r.status = QID_RESULT_FAILED;
    snprintf(o->r.error, sizeof o->r.error, "%s", err->msg[0] ? err->msg : "unknown error");
    sweep_result_free(o);
    o->r.windows = 0;
    o->r.n_probe = 0;
}

/* Storage bits per weight of the LINEAR tensors of cfg under spec (each
 * tensor's own GGUF type: mixtures, fallbacks; 16 for an F16 fallback),
 * weighted by their element counts. */
static double linear_bits(const qid_model_config *cfg, const qid_quant_spec *spec)
{
    size_t n = 0;
    qid_tensor_spec *ts = qid_ckpt_tensors(cfg, &n);
    double bits = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        if (ts[i].kind != QID_TENSOR_LINEAR) continue;
        double e = (double)qid_tensor_numel(&ts[i]);
        qid_quant_spec s;
        bits +=
            e * (qid_quantize_tensor_spec(spec, cfg, &ts[i], &s) ? qid_quant_bits_per_weight(&s, (size_t)ts[i].shape[1])
                                                                 : 16.0);
        w += e;
    }
    free(ts);
    return w > 0 ? bits / w : NAN;
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
static int run_probes(const qid_job *job, qid_model *m, const qid_tokens *tk, qid_eval_opts *eo, sweep_result *o,
                      qid_error *err)
{
    size_t nr = job->probes.n_radii, nd = (size_t)job->probes.directions;
    probe_ctx c = {.seed = job->seed};
    qid_tensor_spec *tensors = qid_ckpt_tensors(qid_model_cfg(m), &c.n_tensors);
    c.tensors = tensors;
    o->probe = qid_malloc(qid_mul_size(nr, nd) * sizeof *o->probe + 1, "probe losses");
    o->r.n_probe = (int64_t)(nr * nd);
    eo->weight_hook = probe_hook;
    eo->weight_ctx = &c;
    int rc = QID_OK;
    for (size_t d = 0; d < nd && rc == QID_OK; d++)
        for (size_t r = 0; r < nr && rc == QID_OK; r++) {
            c.direction = d;
            c.radius = job->probes.radii[r];
            qid_eval_result er;
            rc = qid_eval_set(m, tk, eo, &er, err);
            if (rc == QID_OK && !isfinite(er.loss))
                rc = qid_error_set(err, QID_E_NUMERIC, "non-finite loss probing '%s' at radius %g, direction %zu",
                                   qid_model_ckpt(m)->path, c.radius, d);
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

/* ---- the files a task reads ------------------------------------------------ */

void sweep_cache_close(sweep_cache *c)
{
    qid_model_free(c->model);
    c->model = NULL;
    if (c->have_tokens) qid_tokens_close(&c->tokens);
    c->have_tokens = 0;
}

/* The open checkpoint `path`: the cached one when it is that file, else
 * the cached one is closed and `path` opened. */
static int cached_model(sweep_cache *c, const char *path, qid_model **m, qid_error *err)
{
    if (!c->model || strcmp(qid_model_ckpt(c->model)->path, path) != 0) {
        qid_model_free(c->model);
        c->model = NULL;
        int rc = qid_model_open(path, &c->model, err);
        if (rc) return rc;
    }
    *m = c->model;
    return QID_OK;
}

/* The open token set `path`, as cached_model. */
static int cached_tokens(sweep_cache *c, const char *path, const qid_tokens **tk, qid_error *err)
{
    if (!c->have_tokens || strcmp(c->tokens.path, path) != 0) {
        if (c->have_tokens) qid_tokens_close(&c->tokens);
        c->have_tokens = 0;
        int rc = qid_tokens_open(path, &c->tokens, err);
        if (rc) return rc;
        c->have_tokens = 1;
    }
    *tk = &c->tokens;
    return QID_OK;
}

/* ---- memory ------------------------------------------------------------------ */

/* The job's memory limit (or qid run's --mem-limit) against the task's
 * prediction: QID_OK or a one-line error. */
static int mem_check(const qid_job *job, const qid_job_quant *q, const qid_tokens *tk, const qid_eval_opts *eo,
                     const qid_model_config *cfg, const qid_quantize_opts *qo, size_t calib_n, size_t calib_len,
                     const char *ckpt, qid_error *err)
{
    if (!(job->mem_limit > 0)) return QID_OK;
    size_t ew = (size_t)tk->meta.n_windows;
    if (eo->max_windows && eo->max_windows < ew) ew = eo->max_windows;
    qid_mem_estimate e;
    qid_job_mem_estimate(job, q, cfg, ew, (size_t)tk->meta.seq_len, calib_n, calib_len, &e);
    return qid_mem_check(&e, job->mem_limit, cfg, qo, calib_n, calib_len, ckpt, err);
}

/* ---- one task ---------------------------------------------------------------- */

void sweep_task_run(const qid_job *job, const qid_task *t, int threads, int rank, sweep_cache *cache,
                    const double *base_nll, size_t base_windows, sweep_result *o)
{
    double t0 = MPI_Wtime();
    qid_error err;
    qid_error_clear(&err);
    sweep_result_init(o, rank);
    const char *ckpt_path = t->ckpt_path.path;
    const qid_job_quant *q = t->quant >= 0 ? &job->quant[t->quant] : NULL;
    qid_quantizer *qz = NULL;
    qid_calib_hooks hooks;
    uint32_t *calib = NULL;
    size_t calib_n = 0, calib_len = 0;
    qid_eval_result er;
    memset(&er, 0, sizeof er);

    qid_model *m;
    if (cached_model(cache, ckpt_path, &m, &err)) goto fail;
    const qid_model_config *cfg = qid_model_cfg(m);
    const qid_ckpt_meta *meta = &qid_model_ckpt(m)->meta;
    snprintf(o->r.model, sizeof o->r.model, "%s", meta->model);
    snprintf(o->r.ckpt_sha256, sizeof o->r.ckpt_sha256, "%s", meta->tensor_sha256);
    o->r.params = meta->params_nonembedding;
    o->r.tokens_seen = meta->tokens_seen;
    o->r.step = meta->step;
    o->r.lr_frac = meta->lr_frac;
    int dtype_bits = (int)(8 * qid_dtype_size(meta->dtype));

    const qid_tokens *tk;
    if (cached_tokens(cache, job->eval.tokens.path, &tk, &err)) goto fail;
    snprintf(o->r.eval_sha256, sizeof o->r.eval_sha256, "%s", tk->meta.source_sha256);
    if (job->eval.seq_len && job->eval.seq_len != tk->meta.seq_len) {
        qid_error_set(&err, QID_E_INVALID,
                      "token set '%s' has windows of %" PRId64 " tokens, the job asks for %" PRId64,
                      job->eval.tokens.path, tk->meta.seq_len, job->eval.seq_len);
        goto fail;
    }

    qid_eval_opts eo;
    memset(&eo, 0, sizeof eo);
    eo.max_windows = (size_t)qid_job_eval_windows(job, t->method);
    eo.second_half = job->eval.scoring == QID_JOB_SCORING_SECOND_HALF;
    eo.threads = threads;

    if (t->method == QID_JOB_METHOD_PROBES) {
        if (run_probes(job, m, tk, &eo, o, &err)) goto fail;
        goto done;
    }
    if (!q) {
        o->r.bits = dtype_bits;
        o->r.elem_bits = dtype_bits;
        qid_quantize_opts qo;
        qid_quantize_opts_default(&qo);
        if (mem_check(job, NULL, tk, &eo, cfg, &qo, 0, 0, ckpt_path, &err)) goto fail;
    } else {
        qid_quantize_opts qo;
        qid_quantize_opts_default(&qo);
        qo.spec = q->spec;
        qo.method = q->method == QID_JOB_METHOD_GPTQ  ? QID_QUANTIZE_GPTQ
                    : q->method == QID_JOB_METHOD_AWQ ? QID_QUANTIZE_AWQ
                                                      : QID_QUANTIZE_RTN;
        if (q->method == QID_JOB_METHOD_GPTQ) qo.gptq = q->gptq;
        if (qid_quantize_check(cfg, &qo, &err)) goto fail;
        o->r.bits = linear_bits(cfg, &q->spec);
        o->r.elem_bits = q->spec.bits;
        if (qid_job_method_calibrated(q->method)) {
            if (qid_quantize_read_calib(job->calib.tokens.path, cfg, (size_t)job->calib.samples, job->seed, &calib,
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
            qo.calib_rows = calib_n * calib_len;
            qo.chunk_bytes = job->calib.chunk_bytes;
            qo.scratch_dir = job->calib.scratch_dir.path;
            eo.calib_chunk = qid_calib_chunk_windows(cfg, calib_len, calib_n, qo.chunk_bytes);
            eo.calib_scratch = qo.scratch_dir;
            o->r.calib_chunk = (int64_t)eo.calib_chunk;
        }
        if (mem_check(job, q, tk, &eo, cfg, &qo, calib_n, calib_len, ckpt_path, &err)) goto fail;
        qz = qid_quantizer_create(&qo);
        qid_quantizer_set_model(qz, cfg);
        qid_quantizer_hooks(qz, &eo.weight_hook, &eo.weight_ctx, &eo.act_hook, &eo.act_ctx);
        if (qid_job_method_calibrated(q->method)) {
            qid_quantizer_calib_hooks(qz, &hooks);
            eo.calib_hooks = &hooks;
            eo.act_hook = NULL;
        }
        eo.kl = job->eval.kl;
    }
    qid_eval_stop stop = {.min_windows = (size_t)job->eval.min_windows,
                          .block = (size_t)job->eval.block_windows,
                          .target_se = job->eval.target_se,
                          .target_rse = job->eval.target_rse,
                          .seed = job->seed};
    if (q && job->eval.adaptive) {
        if (!base_nll) {
            qid_error_set(&err, QID_E_INVALID, "adaptive task of '%s' without its baseline's windows", ckpt_path);
            goto fail;
        }
        eo.stop = &stop;
        eo.base_nll = base_nll;
        eo.base_windows = base_windows;
    }

    if (qid_eval_set(m, tk, &eo, &er, &err)) goto fail;
    if (!isfinite(er.loss)) {
        qid_error_set(&err, QID_E_NUMERIC, "non-finite loss evaluating '%s'", ckpt_path);
        goto fail;
    }
    o->r.loss = er.loss;
    o->r.kl = eo.kl ? er.kl : NAN;
    if (qz) o->r.sqnr_db = qid_sqnr_acc_db(&qid_quantizer_stats(qz)->sqnr);
    o->r.windows = (int64_t)er.n_windows;
    o->r.windows_used = (int64_t)er.windows_used;
    if (eo.kl) o->r.div = er.div;
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
