/* quantize.c - whole-model quantization (quantize.h): the RTN weight hook,
 * the GPTQ activation hook with Hessians shared by layers that read the same
 * input, AWQ's groups (scales shared by the layers that read the same
 * input), calibration windows, and writing a float32 checkpoint of the
 * quantized-dequantized weights.
 *
 * Does not: implement quantizers (quant_*.c, gptq.c) or the forward pass
 * (model.c), which it strings together; or read a command line or print
 * (`qid quantize` is src/cli/cmd_quantize.c). */
#include "quantize.h"

#include "rng.h"

#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "fsutil.h"
#include "gguf_mix.h"
#include "kernels.h"
#include "tokens.h"

/* Distinct input widths a model has: d_model, attention width, d_ff. */
#define MAX_WIDTHS 8

struct qid_quantizer {
    qid_quantize_opts o;
    qid_model_config cfg; /* the model, for GGUF's per-tensor types (have_cfg) */
    int have_cfg;
    qid_quantize_stats st;
    float *scratch; /* RTN output / GPTQ copy of the original weight */
    size_t scratch_n;
    struct {
        size_t cols;
        qid_gptq_hessian *h;
    } hs[MAX_WIDTHS];
    int n_hs;
    /* the streamed calibration's Hessians: group (-1: free) and width; a
     * free one is reused by the next group of its width */
    struct {
        size_t cols;
        int group;
        qid_gptq_hessian *h;
    } pool[QID_GROUP_COUNT];
    int n_pool;
    /* the previous activation-hook call, to share H between q/k/v and gate/up */
    const float *last_x;
    size_t last_rows, last_ldx, last_cols;
    int last_layer;
    char last_name[48];
    /* AWQ: an input accumulator per linear group, the rows of the layer's
     * separate attn.v (0: none) and the activation hook's pending group */
    qid_awq_input *awq_in[QID_GROUP_COUNT];
    size_t v_rows;
    int v_layer;
    struct {
        qid_tensor_spec t[3];
        float *w[3];
        int n;
    } pend;
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
    qid_awq_opts_default(&o->awq);
    o->chunk_bytes = QID_QUANTIZE_DEFAULT_CHUNK_BYTES;
}

const char *qid_quantize_method_name(qid_quantize_method m)
{
    return m == QID_QUANTIZE_GPTQ ? "gptq" : m == QID_QUANTIZE_AWQ ? "awq" : "rtn";
}

int qid_quantize_method_calibrated(qid_quantize_method m) { return m == QID_QUANTIZE_GPTQ || m == QID_QUANTIZE_AWQ; }

int qid_quantize_method_parse(const char *name)
{
    if (!name) return -1;
    if (strcmp(name, "rtn") == 0) return QID_QUANTIZE_RTN;
    if (strcmp(name, "gptq") == 0) return QID_QUANTIZE_GPTQ;
    if (strcmp(name, "awq") == 0) return QID_QUANTIZE_AWQ;
    return -1;
}

/* The spec and the method of o, before any file is touched. */
static int check_format(const qid_quantize_opts *o, qid_error *err)
{
    if (!qid_quant_spec_valid(&o->spec)) return qid_error_set(err, QID_E_INVALID, "invalid quantization format");
    if (o->method != QID_QUANTIZE_RTN && o->method != QID_QUANTIZE_GPTQ && o->method != QID_QUANTIZE_AWQ)
        return qid_error_set(err, QID_E_INVALID, "unknown quantization method %d", (int)o->method);
    if (o->method == QID_QUANTIZE_AWQ && !qid_awq_spec_ok(&o->spec)) {
        char fmt[64];
        qid_quant_name(&o->spec, fmt, sizeof fmt);
        return qid_error_set(err, QID_E_INVALID,
                             "AWQ takes integer formats without -mse (intB-gG-sym/asym, intB-channel), not '%s'", fmt);
    }
    if (o->method == QID_QUANTIZE_GPTQ && !qid_quant_traits_of(o->spec.type)->params) {
        char fmt[64];
        qid_quant_name(&o->spec, fmt, sizeof fmt);
        return qid_error_set(err, QID_E_INVALID, "format %s has no GPTQ path (%s); expected method rtn", fmt,
                             QID_GPTQ_NO_PATH_WHY);
    }
    return QID_OK;
}

int qid_quantize_tensor_spec(const qid_quant_spec *spec, const qid_model_config *cfg, const qid_tensor_spec *t,
                             qid_quant_spec *out)
{
    return qid_gguf_tensor_type(spec, cfg, qid_gguf_role_of(t->name), t->layer, (size_t)t->shape[1], out);
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
        qid_quant_spec s;
        if (qid_quantize_tensor_spec(&o->spec, cfg, &t[i], &s)) /* else F16: any shape */
            rc = qid_quant_check_shape(&s, (size_t)t[i].shape[1], path, err);
    }
    free(t);
    return rc;
}

/* ---- hooks ----------------------------------------------------------------- */

qid_quantizer *qid_quantizer_create(const qid_quantize_opts *o)
{
    QID_CHECK(qid_quant_spec_valid(&o->spec), "quantizer created with an invalid spec");
    QID_CHECK(o->method == QID_QUANTIZE_RTN || qid_quantize_method_calibrated(o->method), "unknown method %d",
              (int)o->method);
    qid_quantizer *q = qid_calloc(1, sizeof *q, "a quantizer");
    q->o = *o;
    q->o.calib = NULL;
    qid_quantizer_reset(q);
    return q;
}

void qid_quantizer_set_model(qid_quantizer *q, const qid_model_config *cfg)
{
    q->cfg = *cfg;
    q->have_cfg = 1;
}

/* The spec tensor t gets (1), or 0 for llama.cpp's F16 fallback. */
static int spec_for(const qid_quantizer *q, const qid_tensor_spec *t, qid_quant_spec *s)
{
    if (!qid_gguf_is_gguf(&q->o.spec)) {
        *s = q->o.spec;
        return 1;
    }
    QID_CHECK(q->have_cfg, "a GGUF quantizer used before qid_quantizer_set_model");
    return qid_quantize_tensor_spec(&q->o.spec, &q->cfg, t, s);
}

void qid_quantizer_free(qid_quantizer *q)
{
    if (!q) return;
    for (int i = 0; i < q->n_hs; i++)
        qid_gptq_hessian_free(q->hs[i].h);
    for (int i = 0; i < q->n_pool; i++)
        qid_gptq_hessian_free(q->pool[i].h);
    for (int g = 0; g < QID_GROUP_COUNT; g++)
        qid_awq_input_free(q->awq_in[g]);
    free(q->scratch);
    free(q);
}

void qid_quantizer_reset(qid_quantizer *q)
{
    memset(&q->st, 0, sizeof q->st);
    qid_sqnr_acc_init(&q->st.sqnr);
    q->st.percdamp_min = q->st.percdamp_max = NAN;
    q->last_x = NULL;
    q->pend.n = 0;
    q->v_rows = 0;
    q->v_layer = -1;
}

const qid_quantize_stats *qid_quantizer_stats(const qid_quantizer *q) { return &q->st; }

void qid_quantizer_hooks(qid_quantizer *q, qid_weight_hook *weight_hook, void **weight_ctx, qid_act_hook *act_hook,
                         void **act_ctx)
{
    int gptq = qid_quantize_method_calibrated(q->o.method);
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
    qid_quant_spec s;
    int rc = QID_OK;
    if (spec_for(q, t, &s)) {
        rc = qid_quant_matrix(&s, w, y, rows, cols, path, err);
        q->st.per_type[s.type]++;
    } else {
        memcpy(y, w, n * sizeof *w);
        qid_gguf_round_f16(y, n);
        q->st.f16++;
    }
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

static int gptq_one(qid_quantizer *q, qid_gptq_hessian *h, const qid_tensor_spec *t, float *w, const char *path,
                    qid_error *err);

/* ---- AWQ ------------------------------------------------------------------------ */

static int name_is(const char *name, const char *prefix) { return strncmp(name, prefix, strlen(prefix)) == 0; }

/* The group of a linear by its name (model.h's order); -1 for none. */
static int awq_group_of(const char *name)
{
    if (name_is(name, "attn.q.") || name_is(name, "attn.k.") || name_is(name, "attn.v.") || name_is(name, "attn.qkv."))
        return QID_GROUP_QKV;
    if (name_is(name, "attn.out.")) return QID_GROUP_OUT;
    if (name_is(name, "mlp.gate.") || name_is(name, "mlp.up.")) return QID_GROUP_UP;
    if (name_is(name, "mlp.down.")) return QID_GROUP_DOWN;
    return -1;
}

/* 1 for the group's last linear (the activation hook sees them in this order). */
static int awq_group_last(const char *name)
{
    return name_is(name, "attn.v.") || name_is(name, "attn.qkv.") || name_is(name, "attn.out.") ||
           name_is(name, "mlp.up.") || name_is(name, "mlp.down.");
}

/* The reference clips every linear but those that compute queries or keys. */
static int awq_clips(const char *name)
{
    return !(name_is(name, "attn.q.") || name_is(name, "attn.k.") || name_is(name, "attn.qkv."));
}

static qid_awq_input *awq_input_for(qid_quantizer *q, int group, size_t cols)
{
    if (q->awq_in[group] && qid_awq_input_cols(q->awq_in[group]) != cols) {
        qid_awq_input_free(q->awq_in[group]);
        q->awq_in[group] = NULL;
    }
    if (!q->awq_in[group]) q->awq_in[group] = qid_awq_input_create(cols, &q->o.awq);
    return q->awq_in[group];
}

/* AWQ of the n linears of one group (t[k], w[k]) on the accumulated input
 * in: the scale search where the group is scaled, then each linear's
 * clipping search and quantization, with the statistics. */
static int awq_group(qid_quantizer *q, qid_awq_input *in, int group, const qid_tensor_spec *const *t, float *const *w,
                     int n, qid_error *err)
{
    const size_t cols = (size_t)t[0]->shape[1];
    char path[160];
    qid_tensor_path(t[0], path, sizeof path);
    for (int k = 0; k < n; k++)
        if (name_is(t[k]->name, "attn.v.")) {
            q->v_rows = (size_t)t[k]->shape[0];
            q->v_layer = t[k]->layer;
        }
    int scaled = group != QID_GROUP_OUT || (q->v_layer == t[0]->layer && q->v_rows == cols);
    float *s = NULL;
    int rc = QID_OK;
    if (scaled) {
        size_t rows[3];
        const float *ws[3];
        for (int k = 0; k < n; k++) {
            rows[k] = (size_t)t[k]->shape[0];
            ws[k] = w[k];
        }
        s = qid_malloc(qid_mul_size(cols, sizeof *s), "AWQ scales");
        qid_awq_stats as;
        rc = qid_awq_search_scale(in, &q->o.spec, &q->o.awq, ws, rows, n, s, &as, path, err);
        if (!rc) {
            q->st.awq_groups++;
            q->st.awq_ratio_sum += as.ratio;
            q->st.awq_loss += as.loss;
            q->st.awq_loss_rtn += as.loss_rtn;
        }
    }
    for (int k = 0; k < n && !rc; k++) {
        const size_t out = (size_t)t[k]->shape[0], nn = out * cols;
        qid_tensor_path(t[k], path, sizeof path);
        float *orig = scratch_of(q, nn);
        memcpy(orig, w[k], nn * sizeof *orig);
        rc = qid_awq_quantize(in, &q->o.spec, &q->o.awq, s, q->o.awq.clip && awq_clips(t[k]->name), w[k], out, cols,
                              NULL, NULL, path, err);
        if (rc) {
            memcpy(w[k], orig, nn * sizeof *orig);
            break;
        }
        qid_sqnr_acc_add(&q->st.sqnr, orig, w[k], nn);
        q->st.tensors++;
        q->st.params += nn;
    }
    free(s);
    return rc;
}

/* The activation hook for AWQ: a group's linears are held until its last
 * one (q/k/v and gate/up see the same x, then one product), then quantized
 * together. */
static int awq_act_hook(qid_quantizer *q, const qid_tensor_spec *t, const float *x, size_t rows, size_t ldx, float *w,
                        qid_error *err)
{
    double t0 = qid_now();
    const int group = awq_group_of(t->name);
    const size_t cols = (size_t)t->shape[1];
    char path[160];
    qid_tensor_path(t, path, sizeof path);
    int rc = QID_OK;
    if (group < 0) return qid_error_set(err, QID_E_INVALID, "AWQ: '%s' belongs to no group of linears", path);
    if (q->pend.n == 0) {
        qid_awq_input *in = awq_input_for(q, group, cols);
        qid_awq_input_reset(in, q->o.calib_rows);
        if ((rc = qid_awq_input_add(in, x, rows, ldx, path, err))) return rc;
    }
    QID_CHECK(q->pend.n < 3, "more than 3 linears share the input of '%s'", path);
    q->pend.t[q->pend.n] = *t;
    q->pend.w[q->pend.n++] = w;
    if (!awq_group_last(t->name)) return QID_OK;
    const qid_tensor_spec *ts[3] = {&q->pend.t[0], &q->pend.t[1], &q->pend.t[2]};
    rc = awq_group(q, q->awq_in[group], group, ts, q->pend.w, q->pend.n, err);
    q->pend.n = 0;
    q->st.seconds += qid_now() - t0;
    return rc;
}

int qid_quantizer_act_hook(void *ctx, const qid_tensor_spec *t, const float *x, size_t rows, size_t ldx, float *w,
                           qid_error *err)
{
    qid_quantizer *q = ctx;
    if (q->o.method == QID_QUANTIZE_AWQ && t->kind == QID_TENSOR_LINEAR)
        return awq_act_hook(q, t, x, rows, ldx, w, err);
    if (q->o.method != QID_QUANTIZE_GPTQ || t->kind != QID_TENSOR_LINEAR) return QID_OK;
    double t0 = qid_now();
    const size_t cols = (size_t)t->shape[1];
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
    if ((rc = gptq_one(q, h, t, w, path, err))) return rc;
    q->last_x = x;
    q->last_rows = rows;
    q->last_ldx = ldx;
    q->last_cols = cols;
    q->last_layer = t->layer;
    snprintf(q->last_name, sizeof q->last_name, "%s", t->name);
    q->st.seconds += qid_now() - t0;
    return QID_OK;
}

/* GPTQ of weight w of tensor t (named path) given h, with the statistics;
 * w is restored on error. */
static int gptq_one(qid_quantizer *q, qid_gptq_hessian *h, const qid_tensor_spec *t, float *w, const char *path,
                    qid_error *err)
{
    const size_t out = (size_t)t->shape[0], cols = (size_t)t->shape[1], n = out * cols;
    float *orig = scratch_of(q, n);
    memcpy(orig, w, n * sizeof *w);
    qid_quant_spec s;
    if (!spec_for(q, t, &s)) { /* llama.cpp's F16 fallback: no GPTQ */
        qid_gguf_round_f16(w, n);
        q->st.f16++;
        qid_sqnr_acc_add(&q->st.sqnr, orig, w, n);
        q->st.tensors++;
        q->st.params += n;
        return QID_OK;
    }
    qid_gptq_stats gs;
    int rc = qid_gptq_quantize(h, &s, &q->o.gptq, w, out, cols, path, &gs, err);
    if (rc) {
        memcpy(w, orig, n * sizeof *w);
        return rc;
    }
    qid_sqnr_acc_add(&q->st.sqnr, orig, w, n);
    q->st.tensors++;
    q->st.params += n;
    q->st.per_type[s.type]++;
    q->st.percdamp_min = isnan(q->st.percdamp_min) ? gs.percdamp : fmin(q->st.percdamp_min, gs.percdamp);
    q->st.percdamp_max = isnan(q->st.percdamp_max) ? gs.percdamp : fmax(q->st.percdamp_max, gs.percdamp);
    q->st.retries += gs.retries;
    q->st.dead += gs.dead;
    q->st.gptq_loss += gs.loss;
    return QID_OK;
}

/* ---- streamed calibration hooks ---------------------------------------------- */

static int pool_find(const qid_quantizer *q, int group)
{
    for (int i = 0; i < q->n_pool; i++)
        if (q->pool[i].group == group) return i;
    return -1;
}

static int calib_add(void *ctx, int group, int first, const qid_tensor_spec *t, const float *x, size_t rows, size_t ldx,
                     qid_error *err)
{
    qid_quantizer *q = ctx;
    if (q->o.method == QID_QUANTIZE_AWQ) {
        double t0 = qid_now();
        qid_awq_input *in = awq_input_for(q, group, (size_t)t->shape[1]);
        if (first) qid_awq_input_reset(in, q->o.calib_rows);
        char path[160];
        qid_tensor_path(t, path, sizeof path);
        int rc = qid_awq_input_add(in, x, rows, ldx, path, err);
        q->st.seconds += qid_now() - t0;
        return rc;
    }
    if (q->o.method != QID_QUANTIZE_GPTQ) return QID_OK;
    double t0 = qid_now();
    const size_t cols = (size_t)t->shape[1];
    int i = pool_find(q, group);
    if (first || i < 0) {
        if (i >= 0) q->pool[i].group = -1;
        i = -1;
        for (int j = 0; j < q->n_pool && i < 0; j++)
            if (q->pool[j].group < 0 && q->pool[j].cols == cols) i = j;
        if (i < 0) {
            QID_CHECK(q->n_pool < QID_GROUP_COUNT, "more than %d Hessians at once", QID_GROUP_COUNT);
            i = q->n_pool++;
            q->pool[i].cols = cols;
            q->pool[i].h = qid_gptq_hessian_create(cols);
        }
        q->pool[i].group = group;
        qid_gptq_hessian_reset(q->pool[i].h);
    }
    char path[160];
    qid_tensor_path(t, path, sizeof path);
    int rc = qid_gptq_hessian_add(q->pool[i].h, x, rows, ldx, 0, path, err);
    q->st.seconds += qid_now() - t0;
    return rc;
}

static int calib_quantize(void *ctx, int group, const qid_tensor_spec *const *t, float *const *w, int n, qid_error *err)
{
    qid_quantizer *q = ctx;
    if (q->o.method == QID_QUANTIZE_AWQ) {
        double t0 = qid_now();
        QID_CHECK(q->awq_in[group] != NULL, "group %d quantized before any calibration rows were added", group);
        int rc = awq_group(q, q->awq_in[group], group, t, w, n, err);
        q->st.seconds += qid_now() - t0;
        return rc;
    }
    if (q->o.method != QID_QUANTIZE_GPTQ) return QID_OK;
    double t0 = qid_now();
    int i = pool_find(q, group), rc = QID_OK;
    QID_CHECK(i >= 0, "group %d quantized before any calibration rows were added", group);
    for (int k = 0; k < n && !rc; k++) {
        if (t[k]->kind != QID_TENSOR_LINEAR) continue;
        char path[160];
        qid_tensor_path(t[k], path, sizeof path);
        rc = gptq_one(q, q->pool[i].h, t[k], w[k], path, err);
    }
    q->pool[i].group = -1;
    q->st.seconds += qid_now() - t0;
    return rc;
}

void qid_quantizer_calib_hooks(qid_quantizer *q, qid_calib_hooks *hooks)
{
    hooks->add = calib_add;
    hooks->quantize = calib_quantize;
    hooks->ctx = q;
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

/* ---- memory ---------------------------------------------------------------------- */

/* Bytes of one GPTQ Hessian of `cols` inputs: H in double, the float32
 * factor, the conversion chunk and the column tables (gptq.h). */
static size_t hessian_bytes(size_t cols)
{
    return cols * cols * (sizeof(double) + sizeof(float)) + QID_GPTQ_CHUNK_ROWS * cols * sizeof(double) +
           cols * (2 * sizeof(double) + sizeof(size_t));
}

/* Widths of the four linear groups' inputs (model.h's order). */
static void group_widths(const qid_model_config *c, size_t w[QID_GROUP_COUNT])
{
    w[QID_GROUP_QKV] = w[QID_GROUP_UP] = (size_t)c->d_model;
    w[QID_GROUP_OUT] = (size_t)(c->n_heads * c->head_dim);
    w[QID_GROUP_DOWN] = (size_t)c->d_ff;
}

/* The Hessians the streamed hooks hold after a layer: the pool as
 * calib_add grows it over the passes of qid_calib_step. */
static size_t pool_bytes(const qid_model_config *c)
{
    size_t w[QID_GROUP_COUNT], cols[QID_GROUP_COUNT], total = 0;
    int n = 0;
    group_widths(c, w);
    unsigned passes[4] = {0};
    int np = 0;
    if (c->parallel_residual) {
        passes[np++] = 1u << QID_GROUP_QKV | 1u << QID_GROUP_UP;
        passes[np++] = 1u << QID_GROUP_OUT | 1u << QID_GROUP_DOWN;
    } else {
        for (int g = 0; g < QID_GROUP_COUNT; g++)
            passes[np++] = 1u << g;
    }
    for (int p = 0; p < np; p++) {
        int busy[QID_GROUP_COUNT] = {0};
        for (int g = 0; g < QID_GROUP_COUNT; g++) {
            if (!(passes[p] & 1u << g)) continue;
            int k = -1;
            for (int j = 0; j < n && k < 0; j++)
                if (!busy[j] && cols[j] == w[g]) k = j;
            if (k < 0) {
                k = n++;
                cols[k] = w[g];
                total += hessian_bytes(w[g]);
            }
            busy[k] = 1;
        }
    }
    return total;
}

/* The largest LINEAR tensor's copy (kept from the first quantized tensor
 * on) plus GPTQ's or AWQ's work buffers for the tensor that needs most (held
 * only while it is quantized); *copy_only gets the copy. AWQ's input
 * statistics are counted as GPTQ's Hessians (pool_bytes; their float32
 * factor, which AWQ has not, covers its row sample from 1023 inputs on). */
static size_t quant_bytes(const qid_model_config *c, const qid_quantize_opts *o, size_t *copy_only)
{
    size_t n = 0, copy = 0, work = 0;
    qid_tensor_spec *t = qid_ckpt_layer_tensors(c, 0, &n);
    const size_t B = o->gptq.block ? o->gptq.block : 128;
    const size_t threads = (size_t)omp_get_max_threads();
    for (size_t i = 0; i < n; i++) {
        if (t[i].kind != QID_TENSOR_LINEAR) continue;
        const size_t rows = (size_t)t[i].shape[0], cols = (size_t)t[i].shape[1], b = B < cols ? B : cols;
        if (rows * cols * sizeof(float) > copy) copy = rows * cols * sizeof(float);
        if (!qid_quantize_method_calibrated(o->method)) continue;
        if (o->method == QID_QUANTIZE_AWQ) { /* the search's X^T X copy and two error buffers (awq.h) */
            size_t wk = (cols * cols + 2 * rows * cols) * sizeof(double);
            if (wk > work) work = wk;
            continue;
        }
        size_t wk = (rows * b + b * cols + rows * (cols < 512 ? cols : 512) + 2 * rows) * sizeof(double) +
                    threads * (cols + 2 * b) * sizeof(float) + 2 * rows * sizeof(qid_quant_params);
        if (wk > work) work = wk;
    }
    free(t);
    *copy_only = copy;
    return copy + work;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

void qid_quantize_mem_estimate(const qid_model_config *cfg, const qid_quantize_opts *o, size_t calib_windows,
                               size_t seq_len, size_t eval_bytes, qid_mem_estimate *e)
{
    memset(e, 0, sizeof *e);
    const size_t d = (size_t)cfg->d_model, V = (size_t)cfg->vocab_size;
    e->base = QID_MEM_BASE_BYTES;
    e->layer = qid_model_layer_bytes(cfg);
    const size_t embed = V * d * sizeof(float), head = (V * d + 2 * d) * sizeof(float);
    e->ends = max_size(embed, head);
    e->eval = eval_bytes;
    size_t copy = 0;
    e->quant = quant_bytes(cfg, o, &copy);
    const size_t fixed = e->base + e->layer + e->eval;
    if (!qid_quantize_method_calibrated(o->method) || calib_windows == 0 || seq_len == 0) {
        e->peak = fixed + e->ends + e->quant;
        return;
    }
    const size_t W = calib_windows, N = W * seq_len;
    e->chunk_windows = qid_calib_chunk_windows(cfg, seq_len, W, o->chunk_bytes);
    e->activations = qid_model_batch_bytes(cfg, e->chunk_windows, seq_len) +
                     (size_t)omp_get_max_threads() * qid_k_attention_scratch(seq_len) * sizeof(float);
    /* the ids: the caller's copy and the calibration's */
    e->residual = 2 * N * sizeof(uint32_t) + (o->scratch_dir ? 0 : N * d * sizeof(float));
    e->hessians = pool_bytes(cfg);
    const size_t at_embed = embed + e->residual + e->activations;
    const size_t at_layer = e->hessians + e->quant + e->residual + e->activations;
    const size_t at_head = head + e->hessians + copy; /* no GPTQ call runs at the head */
    e->peak = fixed + max_size(at_embed, max_size(at_layer, at_head));
}

static void fmt_bytes(double b, char *buf, size_t len)
{
    if (b >= (double)(1u << 30))
        snprintf(buf, len, "%.2f GiB", b / (double)(1u << 30));
    else
        snprintf(buf, len, "%.0f MiB", b / (double)(1u << 20));
}

void qid_mem_estimate_format(const qid_mem_estimate *e, char *buf, size_t len)
{
    char p[32], l[32], h[32], a[32], r[32], q[32], en[32];
    fmt_bytes((double)e->peak, p, sizeof p);
    fmt_bytes((double)e->layer, l, sizeof l);
    fmt_bytes((double)e->hessians, h, sizeof h);
    fmt_bytes((double)e->activations, a, sizeof a);
    fmt_bytes((double)e->residual, r, sizeof r);
    fmt_bytes((double)e->quant, q, sizeof q);
    fmt_bytes((double)e->ends, en, sizeof en);
    int n = snprintf(buf, len,
                     "%s (layer %s, Hessians %s, activations %s, residual stream %s, weight copy %s, "
                     "embedding/head %s",
                     p, l, h, a, r, q, en);
    if (e->eval && n > 0 && (size_t)n < len) {
        char ev[32];
        fmt_bytes((double)e->eval, ev, sizeof ev);
        n += snprintf(buf + n, len - (size_t)n, ", evaluation %s", ev);
    }
    if (n > 0 && (size_t)n < len) snprintf(buf + n, len - (size_t)n, ")");
}

int qid_mem_check(const qid_mem_estimate *e, double limit, const qid_model_config *cfg, const qid_quantize_opts *o,
                  size_t calib_windows, size_t seq_len, const char *what, qid_error *err)
{
    if (!(limit > 0) || (double)e->peak <= limit) return QID_OK;
    char need[32], lim[32], parts[320];
    fmt_bytes((double)e->peak, need, sizeof need);
    fmt_bytes(limit, lim, sizeof lim);
    qid_mem_estimate_format(e, parts, sizeof parts);
    const char *paren = strchr(parts, '(');
    if (!qid_quantize_method_calibrated(o->method))
        return qid_error_set(err, QID_E_INVALID, "'%s' needs about %s %s, more than the memory limit %s", what, need,
                             paren ? paren : "", lim);
    qid_quantize_opts least = *o;
    least.chunk_bytes = 1;
    least.scratch_dir = ".";
    qid_mem_estimate m;
    qid_quantize_mem_estimate(cfg, &least, calib_windows, seq_len, e->eval, &m);
    char low[32];
    fmt_bytes((double)m.peak, low, sizeof low);
    return qid_error_set(err, QID_E_INVALID,
                         "'%s' needs about %s %s with %zu calibration windows of %zu tokens, more than the memory "
                         "limit %s; chunks of one window with a scratch file need %s",
                         what, need, paren ? paren : "", calib_windows, seq_len, lim, low);
}

int qid_quantize_plan(const char *in, const qid_quantize_opts *o, qid_mem_estimate *e, qid_error *err)
{
    memset(e, 0, sizeof *e);
    qid_ckpt ck;
    int rc = qid_ckpt_open(in, &ck, err);
    if (rc) return rc;
    const qid_model_config cfg = ck.cfg;
    qid_ckpt_close(&ck);
    size_t W = 0, L = 0;
    if (qid_quantize_method_calibrated(o->method) && o->calib) {
        qid_tokens tk;
        if ((rc = qid_tokens_open(o->calib, &tk, err))) return rc;
        const size_t have = (size_t)tk.meta.n_windows;
        W = o->samples ? o->samples : have < QID_QUANTIZE_DEFAULT_SAMPLES ? have : QID_QUANTIZE_DEFAULT_SAMPLES;
        L = (size_t)tk.meta.seq_len;
        qid_tokens_close(&tk);
    }
    qid_quantize_mem_estimate(&cfg, o, W, L, 0, e);
    return qid_mem_check(e, o->mem_limit, &cfg, o, W, L, in, err);
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
    qid_quantizer_set_model(q, &ck.cfg);
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

/* GPTQ: the calibration windows streamed through every stage with the
 * calibration hooks; each stage's tensors are written when the stage is done. */
static int quantize_calibrated(const char *in, const char *out, qid_quantizer *q, const char *calib, size_t samples,
                               uint64_t seed, qid_error *err)
{
    qid_model *m = NULL;
    qid_calib *b = NULL;
    qid_ckpt_writer *wr = NULL;
    qid_tensor_spec *t = NULL;
    uint32_t *tokens = NULL;
    size_t nt = 0, nw = 0, L = 0;
    int rc = qid_model_open(in, &m, err);
    if (rc) return rc;
    const qid_model_config *cfg = qid_model_cfg(m);
    if ((rc = qid_quantize_check(cfg, &q->o, err))) goto done;
    qid_quantizer_set_model(q, cfg);
    if ((rc = qid_quantize_read_calib(calib, cfg, samples, seed, &tokens, &nw, &L, err))) goto done;
    const size_t chunk = qid_calib_chunk_windows(cfg, L, nw, q->o.chunk_bytes);
    if (!(b = qid_calib_create(m, tokens, nw, L, chunk, q->o.scratch_dir, err))) {
        rc = err ? err->code : QID_E_INVALID;
        goto done;
    }
    qid_calib_hooks hooks;
    qid_quantizer_calib_hooks(q, &hooks);
    q->st.calib_windows = nw;
    q->st.calib_seq_len = L;
    if (!q->o.calib_rows) q->o.calib_rows = nw * L;
    if ((rc = create_writer(in, out, qid_model_ckpt(m), &wr, err))) goto done;
    t = qid_ckpt_tensors(cfg, &nt);
    const int n_layers = (int)cfg->n_layers;
    size_t next = 0;
    int seen_layer = 0;
    for (int stage = QID_STAGE_EMBED; stage <= n_layers && !rc; stage++) {
        if ((rc = qid_model_load(m, stage, err))) break;
        if (stage < n_layers && (rc = qid_calib_step(m, b, stage >= 0 ? &hooks : NULL, err))) break;
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
    if (b) q->st.calib = *qid_calib_get_stats(b);
    free(t);
    free(tokens);
    qid_calib_free(b);
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
    if (qid_quantize_method_calibrated(o->method) && !o->calib)
        return qid_error_set(err, QID_E_INVALID, "%s needs a calibration token set (--calib TOKENS)",
                             o->method == QID_QUANTIZE_AWQ ? "AWQ" : "GPTQ");
    if (!force && qid_path_exists(out))
        return qid_error_set(err, QID_E_INVALID, "output '%s' exists (use --force to replace it)", out);
    if (!qid_path_exists(in)) return qid_error_set(err, QID_E_IO, "cannot open checkpoint '%s': no such file", in);
    if (o->mem_limit > 0) {
        qid_mem_estimate e;
        if ((rc = qid_quantize_plan(in, o, &e, err))) return rc;
    }
    qid_quantizer *q = qid_quantizer_create(o);
    rc = qid_quantize_method_calibrated(o->method) ? quantize_calibrated(in, out, q, o->calib, o->samples, o->seed, err)
                                                   : quantize_stream(in, out, q, err);
    if (stats) {
        *stats = q->st;
        stats->seconds = qid_now() - t0;
        struct rusage ru;
        stats->peak_rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
    }
    qid_quantizer_free(q);
    return rc;
}
