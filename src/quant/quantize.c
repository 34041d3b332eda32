/* quantize.c - whole-model quantization (quantize.h): the RTN weight hook,
 * the GPTQ activation hook with Hessians shared by layers that read the same
 * input, calibration windows, and writing a float32 checkpoint of the
 * quantized-dequantized weights.
 *
 * Does not: implement quantizers (quant_*.c, gptq.c) or the forward pass
 * (model.c), which it strings together; or read a command line or print
 * (`qid quantize` is src/cli/cmd_quantize.c). */
#include "quantize.h"

#include "rng.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "tokens.h"

/* Distinct input widths a model has: d_model, attention width, d_ff. */
#define MAX_WIDTHS 8

struct qid_quantizer {
    qid_quantize_opts o;
    qid_quantize_stats st;
    float *scratch; /* RTN output / GPTQ copy of the original weight */
    size_t scratch_n;
    struct {
        size_t cols;
        qid_gptq_hessian *h;
    } hs[MAX_WIDTHS];
    int n_hs;
    /* the previous activation-hook call, to share H between q/k/v and gate/up */
    const float *last_x;
    size_t last_rows, last_ldx, last_cols;
    int last_layer;
    char last_name[48];
};

void qid_quantize_opts_default(qid_quantize_opts *o)
{
    memset(o, 0, sizeof *o);
    o->spec.type = QID_QTYPE_INT;
    o->spec.bits = 4;
    o->spec.block = 128;
    o->spec.sym = 1;
    o->method = QID_QUANTIZE_RTN;
    qid_gptq_opts_default(&o->gptq);
}

const char *qid_quantize_method_name(qid_quantize_method m) { return m == QID_QUANTIZE_GPTQ ? "gptq" : "rtn"; }

int qid_quantize_method_parse(const char *name)
{
    if (!name) return -1;
    if (strcmp(name, "rtn") == 0) return QID_QUANTIZE_RTN;
    if (strcmp(name, "gptq") == 0) return QID_QUANTIZE_GPTQ;
    return -1;
}

/* The spec and the method of o, before any file is touched. */
static int check_format(const qid_quantize_opts *o, qid_error *err)
{
    if (!qid_quant_spec_valid(&o->spec)) return qid_error_set(err, QID_E_INVALID, "invalid quantization format");
    if (o->method != QID_QUANTIZE_RTN && o->method != QID_QUANTIZE_GPTQ)
        return qid_error_set(err, QID_E_INVALID, "unknown quantization method %d", (int)o->method);
    return QID_OK;
}

int qid_quantize_check(const qid_model_config *cfg, const qid_quantize_opts *o, qid_error *err)
{
    int rc = check_format(o, err);
    if (rc) return rc;
    size_t n = 0;
    qid_tensor_spec *t = qid_ckpt_tensors(cfg, &n);
    for (size_t i = 0; i < n && !rc; i++) {
        if (t[i].kind != QID_TENSOR_LINEAR) continue;
        char path[160];
        qid_tensor_path(&t[i], path, sizeof path);
        rc = qid_quant_check_shape(&o->spec, (size_t)t[i].shape[1], path, err);
    }
    free(t);
    return rc;
}

/* ---- hooks ----------------------------------------------------------------- */

qid_quantizer *qid_quantizer_create(const qid_quantize_opts *o)
{
    QID_CHECK(qid_quant_spec_valid(&o->spec), "quantizer created with an invalid spec");
    QID_CHECK(o->method == QID_QUANTIZE_RTN || o->method == QID_QUANTIZE_GPTQ, "unknown method %d", (int)o->method);
    qid_quantizer *q = qid_calloc(1, sizeof *q, "a quantizer");
    q->o = *o;
    q->o.calib = NULL;
    qid_quantizer_reset(q);
    return q;
}

void qid_quantizer_free(qid_quantizer *q)
{
    if (!q) return;
    for (int i = 0; i < q->n_hs; i++)
        qid_gptq_hessian_free(q->hs[i].h);
    free(q->scratch);
    free(q);
}

void qid_quantizer_reset(qid_quantizer *q)
{
    memset(&q->st, 0, sizeof q->st);
    qid_sqnr_acc_init(&q->st.sqnr);
    q->st.percdamp_min = q->st.percdamp_max = NAN;
    q->last_x = NULL;
}

const qid_quantize_stats *qid_quantizer_stats(const qid_quantizer *q) { return &q->st; }

void qid_quantizer_hooks(qid_quantizer *q, qid_weight_hook *weight_hook, void **weight_ctx, qid_act_hook *act_hook,
                         void **act_ctx)
{
    int gptq = q->o.method == QID_QUANTIZE_GPTQ;
    *weight_hook = gptq ? NULL : qid_quantizer_weight_hook;
    *act_hook = gptq ? qid_quantizer_act_hook : NULL;
    *weight_ctx = *act_ctx = q;
}

static float *scratch_of(qid_quantizer *q, size_t n)
{
    if (q->scratch_n < n) {
        free(q->scratch);
        q->scratch = qid_malloc(qid_mul_size(n, sizeof(float)), "a quantizer's weight copy");
        q->scratch_n = n;
    }
    return q->scratch;
}

int qid_quantizer_weight_hook(void *ctx, const qid_tensor_spec *t, float *w, qid_error *err)
{
    qid_quantizer *q = ctx;
    if (q->o.method != QID_QUANTIZE_RTN || t->kind != QID_TENSOR_LINEAR) return QID_OK;
    double t0 = qid_now();
    const size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1], n = rows * cols;
    float *y = scratch_of(q, n);
    char path[160];
    qid_tensor_path(t, path, sizeof path);
    int rc = qid_quant_matrix(&q->o.spec, w, y, rows, cols, path, err);
    if (rc) return rc;
    qid_sqnr_acc_add(&q->st.sqnr, w, y, n);
    memcpy(w, y, n * sizeof *w);
    q->st.tensors++;
    q->st.params += n;
    q->st.seconds += qid_now() - t0;
    return QID_OK;
}

/* 1 when tensor `name` reads the same input as `prev`, the call just before
 * it (llama: attn.q/k/v, mlp.gate/up). */
static int shares_input(const char *prev, const char *name)
{
    return (strcmp(name, "attn.k.weight") == 0 && strcmp(prev, "attn.q.weight") == 0) ||
           (strcmp(name, "attn.v.weight") == 0 && strcmp(prev, "attn.k.weight") == 0) ||
           (strcmp(name, "mlp.up.weight") == 0 && strcmp(prev, "mlp.gate.weight") == 0);
}

static qid_gptq_hessian *hessian_for(qid_quantizer *q, size_t cols)
{
    for (int i = 0; i < q->n_hs; i++)
        if (q->hs[i].cols == cols) return q->hs[i].h;
    QID_CHECK(q->n_hs < MAX_WIDTHS, "more than %d input widths", MAX_WIDTHS);
    q->hs[q->n_hs].cols = cols;
    q->hs[q->n_hs].h = qid_gptq_hessian_create(cols);
    return q->hs[q->n_hs++].h;
}

int qid_quantizer_act_hook(void *ctx, const qid_tensor_spec *t, const float *x, size_t rows, size_t ldx, float *w,
                           qid_error *err)
{
    qid_quantizer *q = ctx;
    if (q->o.method != QID_QUANTIZE_GPTQ || t->kind != QID_TENSOR_LINEAR) return QID_OK;
    double t0 = qid_now();
    const size_t out = (size_t)t->shape[0], cols = (size_t)t->shape[1], n = out * cols;
    char path[160];
    qid_tensor_path(t, path, sizeof path);
    const int shared = q->last_x == x && q->last_rows == rows && q->last_ldx == ldx && q->last_cols == cols &&
                       q->last_layer == t->layer && shares_input(q->last_name, t->name);
    qid_gptq_hessian *h = hessian_for(q, cols);
    q->last_x = NULL;
    int rc;
    if (!shared) {
        /* every calibration row is in this one call: H is complete before quantizing */
        qid_gptq_hessian_reset(h);
        if ((rc = qid_gptq_hessian_add(h, x, rows, ldx, 0, path, err))) return rc;
    }
    float *orig = scratch_of(q, n);
    memcpy(orig, w, n * sizeof *w);
    qid_gptq_stats gs;
    if ((rc = qid_gptq_quantize(h, &q->o.spec, &q->o.gptq, w, out, cols, path, &gs, err))) {
        memcpy(w, orig, n * sizeof *w);
        return rc;
    }
    q->last_x = x;
    q->last_rows = rows;
    q->last_ldx = ldx;
    q->last_cols = cols;
    q->last_layer = t->layer;
    snprintf(q->last_name, sizeof q->last_name, "%s", t->name);
    qid_sqnr_acc_add(&q->st.sqnr, orig, w, n);
    q->st.tensors++;
    q->st.params += n;
    q->st.percdamp_min = isnan(q->st.percdamp_min) ? gs.percdamp : fmin(q->st.percdamp_min, gs.percdamp);
    q->st.percdamp_max = isnan(q->st.percdamp_max) ? gs.percdamp : fmax(q->st.percdamp_max, gs.percdamp);
    q->st.retries += gs.retries;
    q->st.dead += gs.dead;
    q->st.gptq_loss += gs.loss;
    q->st.seconds += qid_now() - t0;
    return QID_OK;
}

/* ---- calibration ------------------------------------------------------------- */

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

int qid_quantize_read_calib(const char *path, const qid_model_config *cfg, size_t samples, uint64_t seed,
                            uint32_t **tokens, size_t *n_windows, size_t *seq_len, qid_error *err)
{
    *tokens = NULL;
    qid_tokens tk;
    int rc = qid_tokens_open(path, &tk, err);
    if (rc) return rc;
    const size_t have = (size_t)tk.meta.n_windows, L = (size_t)tk.meta.seq_len;
    size_t n = samples ? samples : (have < QID_QUANTIZE_DEFAULT_SAMPLES ? have : QID_QUANTIZE_DEFAULT_SAMPLES);
    if (tk.meta.vocab_size > cfg->vocab_size)
        rc = qid_error_set(err, QID_E_INVALID,
                           "calibration set '%s' has a vocabulary of %" PRId64 " ids, more than the model's %" PRId64,
                           path, tk.meta.vocab_size, cfg->vocab_size);
    else if (n > have)
        rc = qid_error_set(err, QID_E_INVALID, "calibration set '%s' has %zu windows, fewer than the %zu asked for",
                           path, have, n);
    else if ((int64_t)L > cfg->max_seq_len)
        rc = qid_error_set(err, QID_E_INVALID,
                           "calibration windows of '%s' have %zu tokens, more than the model's context of %" PRId64,
                           path, L, cfg->max_seq_len);
    if (!rc) {
        *tokens = qid_malloc(qid_mul_size(qid_mul_size(n, L), sizeof **tokens), "calibration windows");
        if (n == have) {
            rc = qid_tokens_read(&tk, 0, n, *tokens, err);
        } else { /* a seeded sample without replacement, read in file order */
            size_t *idx = qid_malloc(qid_mul_size(have, sizeof *idx), "calibration window indices");
            for (size_t i = 0; i < have; i++)
                idx[i] = i;
            qid_rng rng;
            qid_rng_seed(&rng, seed, QID_QUANTIZE_CALIB_STREAM);
            for (size_t i = 0; i < n; i++) {
                size_t j = i + (size_t)qid_rng_below(&rng, have - i), t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
            }
            qsort(idx, n, sizeof *idx, cmp_size);
            for (size_t i = 0; i < n && !rc; i++)
                rc = qid_tokens_read(&tk, idx[i], 1, *tokens + i * L, err);
            free(idx);
        }
    }
    qid_tokens_close(&tk);
    if (rc) {
        free(*tokens);
        *tokens = NULL;
        return rc;
    }
    *n_windows = n;
    *seq_len = L;
    return QID_OK;
}

/* ---- to a file ------------------------------------------------------------------ */

/* The writer of the float32 output in *wr; a status. */
static int create_writer(const char *in, const char *out, const qid_ckpt *ck, qid_ckpt_writer **wr, qid_error *err)
{
    qid_ckpt_meta meta = ck->meta;
    meta.dtype = QID_DTYPE_F32;
    snprintf(meta.source_format, sizeof meta.source_format, "%s", "qid-quantize");
    qid_ckpt_source src = {.files = in, .sha256 = ck->meta.tensor_sha256, .config_json = NULL, .directory = NULL};
    *wr = qid_ckpt_create(out, &ck->cfg, &meta, &src, err);
    return *wr ? QID_OK : err ? err->code : QID_E_IO;
}

/* Ends the output: renamed into place when rc is QID_OK, removed otherwise.
 * Returns the final status. */
static int end_writer(qid_ckpt_writer *wr, int rc, qid_error *err)
{
    if (!rc) return qid_ckpt_finish(wr, err);
    qid_ckpt_abort(wr);
    return rc;
}

/* RTN and the other formats without calibration: one tensor at a time. */
static int quantize_stream(const char *in, const char *out, qid_quantizer *q, qid_error *err)
{
    qid_ckpt ck;
    qid_ckpt_writer *wr = NULL;
    qid_tensor_spec *t = NULL;
    float *buf = NULL;
    size_t nt = 0;
    int rc = qid_ckpt_open(in, &ck, err);
    if (rc) return rc;
    if ((rc = qid_quantize_check(&ck.cfg, &q->o, err))) goto done;
    if ((rc = create_writer(in, out, &ck, &wr, err))) goto done;
    t = qid_ckpt_tensors(&ck.cfg, &nt);
    size_t max = 0;
    for (size_t i = 0; i < nt; i++)
        if ((size_t)qid_tensor_numel(&t[i]) > max) max = (size_t)qid_tensor_numel(&t[i]);
    buf = qid_malloc(qid_mul_size(max, sizeof *buf), "a tensor being quantized");
    for (size_t i = 0; i < nt && !rc; i++) {
        rc = qid_ckpt_read_f32(&ck, &t[i], buf, err);
        if (!rc) rc = qid_quantizer_weight_hook(q, &t[i], buf, err);
        if (!rc) rc = qid_ckpt_write_tensor(wr, &t[i], buf, err);
    }
    rc = end_writer(wr, rc, err);
done:
    free(buf);
    free(t);
    qid_ckpt_close(&ck);
    return rc;
}

/* GPTQ: the calibration batch through every stage with the activation hook;
 * each stage's tensors are written when the stage is done. */
static int quantize_calibrated(const char *in, const char *out, qid_quantizer *q, const char *calib, size_t samples,
                               uint64_t seed, qid_error *err)
{
    qid_model *m = NULL;
    qid_batch *b = NULL;
    qid_ckpt_writer *wr = NULL;
    qid_tensor_spec *t = NULL;
    uint32_t *tokens = NULL;
    size_t nt = 0, nw = 0, L = 0;
    int rc = qid_model_open(in, &m, err);
    if (rc) return rc;
    const qid_model_config *cfg = qid_model_cfg(m);
    if ((rc = qid_quantize_check(cfg, &q->o, err))) goto done;
    if ((rc = qid_quantize_read_calib(calib, cfg, samples, seed, &tokens, &nw, &L, err))) goto done;
    if (!(b = qid_batch_create(m, tokens, nw, L, err))) {
        rc = err ? err->code : QID_E_INVALID;
        goto done;
    }
    q->st.calib_windows = nw;
    q->st.calib_seq_len = L;
    if ((rc = create_writer(in, out, qid_model_ckpt(m), &wr, err))) goto done;
    t = qid_ckpt_tensors(cfg, &nt);
    const int n_layers = (int)cfg->n_layers;
    size_t next = 0;
    int seen_layer = 0;
    for (int stage = QID_STAGE_EMBED; stage <= n_layers && !rc; stage++) {
        if ((rc = qid_model_load(m, stage, err))) break;
        if (stage < n_layers && (rc = qid_batch_step(m, b, stage >= 0 ? qid_quantizer_act_hook : NULL, q, err))) break;
        for (; next < nt && !rc; next++) {
            int s = t[next].layer >= 0 ? t[next].layer : seen_layer ? n_layers : QID_STAGE_EMBED;
            if (s != stage) break;
            if (t[next].layer >= 0) seen_layer = 1;
            const float *w = qid_model_tensor(m, t[next].name, NULL);
            QID_CHECK(w != NULL, "tensor '%s' of stage %d not loaded", t[next].name, stage);
            rc = qid_ckpt_write_tensor(wr, &t[next], w, err);
        }
    }
    rc = end_writer(wr, rc, err);
done:
    free(t);
    free(tokens);
    qid_batch_free(b);
    qid_model_free(m);
    return rc;
}

int qid_quantize_checkpoint(const char *in, const char *out, int force, const qid_quantize_opts *o,
                            qid_quantize_stats *stats, qid_error *err)
{
    double t0 = qid_now();
    if (stats) memset(stats, 0, sizeof *stats);
    int rc = check_format(o, err);
    if (rc) return rc;
    if (o->method == QID_QUANTIZE_GPTQ && !o->calib)
        return qid_error_set(err, QID_E_INVALID, "GPTQ needs a calibration token set (--calib TOKENS)");
    if (!force && qid_path_exists(out))
        return qid_error_set(err, QID_E_INVALID, "output '%s' exists (use --force to replace it)", out);
    if (!qid_path_exists(in)) return qid_error_set(err, QID_E_IO, "cannot open checkpoint '%s': no such file", in);
    qid_quantizer *q = qid_quantizer_create(o);
    rc = o->method == QID_QUANTIZE_GPTQ ? quantize_calibrated(in, out, q, o->calib, o->samples, o->seed, err)
                                        : quantize_stream(in, out, q, err);
    if (stats) {
        *stats = q->st;
        stats->seconds = qid_now() - t0;
    }
    qid_quantizer_free(q);
    return rc;
}
