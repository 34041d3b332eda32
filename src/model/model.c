/* model.c - the streamed forward pass of gpt-neox, llama, gpt2, opt and
 * bloom checkpoints (model.h): stage loading into a reused buffer, the
 * embedding, one transformer layer over a batch, and the chunked head with
 * NLL and KL.
 *
 * Layout of a loaded stage: every 2-D tensor in table order, then every 1-D
 * tensor in table order, one float32 buffer. For llama this makes attn.q, .k,
 * .v contiguous (one fused [q; k; v] product, rows (H + 2 KV) * hd) and
 * mlp.gate, mlp.up contiguous (one [gate; up] product), and likewise their
 * biases; gpt-neox's QKV is fused already (Hugging Face layout: rows
 * grouped per head as [H, 3, hd], read in place by the attention kernel with
 * strides).
 *
 * Activations of a batch of N = n_windows * seq_len rows:
 *   x   (N, d)       residual stream
 *   xn  (N, d)       normalized input of the current block
 *   u   (N, max(qkv_w + att_w, ff_w))  qkv (N, qkv_w) followed by att
 *                    (N, H*hd) during attention; the MLP hidden (N, ff_w)
 *                    afterwards (ff_w = d_ff, or 2 d_ff for llama's gate|up).
 * The MLP's down projection and the attention output projection add straight
 * into x (sgemm with beta = 1).
 *
 * Does not: read token sets, compute perplexity or compare runs (eval.c),
 * quantize (the hooks do). */
#include "model.h"

#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"

/* Pointers into a loaded layer (or head) stage. */
typedef struct {
    /* gpt2, opt and llama's q, k, v (also fused gpt2's c_attn) are blocked as [q; k; v] by rows
     * (qkv_blocked); gpt-neox and bloom group them per head as [H, 3, hd] */
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    float *qkv_w, *qkv_b;   /* neox (3 H hd, d) fused; llama [q; k; v] ((H + 2 KV) hd, d) */
    float *out_w, *out_b;   /* (d, H hd) */
    float *up_w, *up_b;     /* neox (ff, d); llama [gate; up] (2 ff, d) */
    float *down_w, *down_b; /* (d, ff) */
    int qkv_spec[3], n_qkv; /* spec indices of the QKV linears */
    int out_spec, up_spec[2], n_up, down_spec;
} layer_view;

typedef struct {
    float *norm_w, *norm_b; /* final norm (b NULL for llama; both NULL without one, OPT post-LN) */
    float *proj_out;        /* (d_embed, d): OPT project_out, or NULL */
    float *proj;            /* (vocab, d_embed): lm_head.weight or embed.weight */
} head_view;

struct qid_model {
    qid_ckpt ck;
    qid_model_config cfg;
    int stage;
    qid_tensor_spec *specs; /* of the loaded stage */
    size_t n_specs;
    float **data; /* per spec, into arena or gbuf */
    float *arena; /* layer weights, sized for the largest layer */
    size_t arena_floats;
    float *gbuf; /* global stage (embedding or head), freed by the next load */
    size_t gbuf_floats;
    float *refbuf; /* qid_model_keep_reference copy of the head stage */
    layer_view lv;
    head_view hv, hv_ref;
    float *rope_cos, *rope_sin; /* (rope_T, rotary_dim / 2) */
    size_t rope_T;
    float *alibi; /* (n_heads) bloom's ALiBi slopes, else NULL */
    qid_model_stats stats;
};

struct qid_batch {
    size_t B, T, N;
    int next_stage;
    uint32_t *tokens; /* (B, T) */
    float *x, *xn, *u;
    size_t u_width;
    float *scratch; /* attention scratch, per OpenMP thread */
    size_t scratch_threads;
};

static int is_llama(const qid_model_config *c) { return c->arch == QID_ARCH_LLAMA; }
/* q, k, v as [q; k; v] blocks of rows (else per head, [H, 3, hd]) */
static int qkv_blocked(const qid_model_config *c) { return c->arch != QID_ARCH_GPT_NEOX && c->arch != QID_ARCH_BLOOM; }
static size_t embed_width(const qid_model_config *c) { return (size_t)qid_embed_width(c); }

/* Widths of the fused products. */
static size_t qkv_width(const qid_model_config *c) { return (size_t)((c->n_heads + 2 * c->n_kv_heads) * c->head_dim); }
static size_t att_width(const qid_model_config *c) { return (size_t)(c->n_heads * c->head_dim); }
static size_t ff_width(const qid_model_config *c) { return (size_t)(is_llama(c) ? 2 * c->d_ff : c->d_ff); }
static size_t u_width(const qid_model_config *c)
{
    size_t a = qkv_width(c) + att_width(c), f = ff_width(c), e = embed_width(c);
    a = a > f ? a : f;
    return a > e ? a : e; /* OPT's narrow embedding is gathered there before project_in */
}

/* ---- opening ------------------------------------------------------------- */

size_t qid_model_layer_bytes(const qid_model_config *cfg)
{
    size_t n = 0, total = 0;
    qid_tensor_spec *t = qid_ckpt_layer_tensors(cfg, 0, &n);
    for (size_t i = 0; i < n; i++)
        total += (size_t)qid_tensor_numel(&t[i]);
    free(t);
    return qid_mul_size(total, sizeof(float));
}

size_t qid_model_batch_bytes(const qid_model_config *cfg, size_t n_windows, size_t seq_len)
{
    size_t N = qid_mul_size(n_windows, seq_len);
    size_t per_row = 2 * (size_t)cfg->d_model + u_width(cfg);
    return qid_mul_size(qid_mul_size(N, per_row), sizeof(float)) + qid_mul_size(N, sizeof(uint32_t));
}

int qid_model_open(const char *path, qid_model **out, qid_error *err)
{
    *out = NULL;
    qid_model *m = qid_calloc(1, sizeof *m, "the model");
    m->stage = QID_STAGE_NONE;
    if (qid_ckpt_open(path, &m->ck, err)) {
        free(m);
        return err ? err->code : QID_E_IO;
    }
    m->cfg = m->ck.cfg;
    if (qid_config_validate(&m->cfg, err)) {
        qid_error_wrap(err, QID_E_INVALID, "cannot run the model in '%s'", path);
        qid_ckpt_close(&m->ck);
        free(m);
        return QID_E_INVALID;
    }
    /* the layer buffer's size comes from the config: first check that the
     * file holds a layer of that size (every layer has the same shapes) */
    size_t n_first = 0;
    qid_tensor_spec *first = qid_ckpt_layer_tensors(&m->cfg, 0, &n_first);
    for (size_t i = 0; i < n_first; i++)
        if (qid_ckpt_check_tensor(&m->ck, &first[i], err)) {
            free(first);
            qid_ckpt_close(&m->ck);
            free(m);
            return err ? err->code : QID_E_FORMAT;
        }
    free(first);
    m->arena_floats = qid_model_layer_bytes(&m->cfg) / sizeof(float);
    m->arena = qid_malloc(m->arena_floats * sizeof(float), "one layer's weights");
    if (m->cfg.arch == QID_ARCH_BLOOM) {
        m->alibi = qid_malloc((size_t)m->cfg.n_heads * sizeof(float), "ALiBi slopes");
        qid_k_alibi_slopes(m->alibi, (size_t)m->cfg.n_heads);
    }
    *out = m;
    return QID_OK;
}

static void drop_stage(qid_model *m)
{
    free(m->specs);
    free(m->data);
    free(m->gbuf);
    free(m->refbuf);
    m->specs = NULL;
    m->data = NULL;
    m->gbuf = NULL;
    m->refbuf = NULL;
    m->n_specs = 0;
    m->gbuf_floats = 0;
    m->stage = QID_STAGE_NONE;
    memset(&m->lv, 0, sizeof m->lv);
    memset(&m->hv, 0, sizeof m->hv);
    memset(&m->hv_ref, 0, sizeof m->hv_ref);
}

void qid_model_free(qid_model *m)
{
    if (!m) return;
    drop_stage(m);
    free(m->arena);
    free(m->rope_cos);
    free(m->rope_sin);
    free(m->alibi);
    qid_ckpt_close(&m->ck);
    free(m);
}

const qid_model_config *qid_model_cfg(const qid_model *m) { return &m->cfg; }
const qid_ckpt *qid_model_ckpt(const qid_model *m) { return &m->ck; }
const qid_model_stats *qid_model_get_stats(const qid_model *m) { return &m->stats; }
int qid_model_stage(const qid_model *m) { return m->stage; }
void qid_model_unload(qid_model *m) { drop_stage(m); }

/* ---- loading a stage ---------------------------------------------------- */

static int spec_index(const qid_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_specs; i++)
        if (strcmp(m->specs[i].name, name) == 0) return (int)i;
    return -1;
}

float *qid_model_tensor(qid_model *m, const char *name, const qid_tensor_spec **spec)
{
    int i = spec_index(m, name);
    if (spec) *spec = i >= 0 ? &m->specs[i] : NULL;
    return i >= 0 ? m->data[i] : NULL;
}

/* The tensors of a stage: a layer's, or the globals the stage uses. */
static qid_tensor_spec *stage_specs(const qid_model *m, int stage, size_t *n)
{
    if (stage >= 0 && stage < m->cfg.n_layers) return qid_ckpt_layer_tensors(&m->cfg, stage, n);
    size_t ng = 0, k = 0;
    qid_tensor_spec *g = qid_ckpt_layer_tensors(&m->cfg, -1, &ng);
    const char *proj = m->cfg.tie_embeddings ? "embed.weight" : "lm_head.weight";
    for (size_t i = 0; i < ng; i++) {
        /* the head: final norm, project_out, the output projection; the embedding: the rest */
        int head = strncmp(g[i].name, "final_norm.", 11) == 0 || strcmp(g[i].name, "proj_out.weight") == 0 ||
                   strcmp(g[i].name, "lm_head.weight") == 0;
        int keep = stage == QID_STAGE_EMBED ? !head : head || strcmp(g[i].name, proj) == 0;
        if (keep) g[k++] = g[i];
    }
    *n = k;
    return g;
}

/* Points data[] into buf: 2-D tensors first, then 1-D, each in table order. */
static void place(qid_model *m, float *buf)
{
    size_t off = 0;
    for (int pass = 2; pass >= 1; pass--)
        for (size_t i = 0; i < m->n_specs; i++)
            if (m->specs[i].ndim == pass) {
                m->data[i] = buf + off;
                off += (size_t)qid_tensor_numel(&m->specs[i]);
            }
}

static float *need(qid_model *m, const char *name)
{
    float *p = qid_model_tensor(m, name, NULL);
    QID_CHECK(p != NULL, "tensor '%s' missing from the loaded stage", name);
    return p;
}

static float *maybe(qid_model *m, const char *name) { return qid_model_tensor(m, name, NULL); }

static void resolve_layer(qid_model *m)
{
    layer_view *v = &m->lv;
    memset(v, 0, sizeof *v);
    const qid_model_config *c = &m->cfg;
    v->ln1_w = need(m, "ln1.weight");
    v->ln2_w = need(m, "ln2.weight");
    v->out_w = need(m, "attn.out.weight");
    v->out_b = maybe(m, "attn.out.bias");
    v->down_w = need(m, "mlp.down.weight");
    v->down_b = maybe(m, "mlp.down.bias");
    v->out_spec = spec_index(m, "attn.out.weight");
    v->down_spec = spec_index(m, "mlp.down.weight");
    const size_t d = (size_t)c->d_model;
    if (!is_llama(c)) {
        v->ln1_b = need(m, "ln1.bias");
        v->ln2_b = need(m, "ln2.bias");
    }
    if (c->arch != QID_ARCH_LLAMA && c->arch != QID_ARCH_OPT) {
        v->qkv_w = need(m, "attn.qkv.weight");
        v->qkv_b = maybe(m, "attn.qkv.bias");
        v->up_w = need(m, "mlp.up.weight");
        v->up_b = maybe(m, "mlp.up.bias");
        v->qkv_spec[0] = spec_index(m, "attn.qkv.weight");
        v->n_qkv = 1;
        v->up_spec[0] = spec_index(m, "mlp.up.weight");
        v->n_up = 1;
        return;
    }
    const size_t hd = (size_t)c->head_dim, H = (size_t)c->n_heads, KV = (size_t)c->n_kv_heads, ff = (size_t)c->d_ff;
    v->qkv_spec[0] = spec_index(m, "attn.q.weight");
    v->qkv_spec[1] = spec_index(m, "attn.k.weight");
    v->qkv_spec[2] = spec_index(m, "attn.v.weight");
    v->n_qkv = 3;
    if (!is_llama(c)) { /* opt: separate q, k, v; one MLP input */
        v->up_w = need(m, "mlp.up.weight");
        v->up_b = maybe(m, "mlp.up.bias");
        v->up_spec[0] = spec_index(m, "mlp.up.weight");
        v->n_up = 1;
    }
    float *q = need(m, "attn.q.weight"), *k = need(m, "attn.k.weight"), *vv = need(m, "attn.v.weight");
    QID_CHECK(k == q + H * hd * d && vv == k + KV * hd * d, "q, k, v weights must be contiguous");
    v->qkv_w = q;
    v->qkv_b = maybe(m, "attn.q.bias");
    if (v->qkv_b)
        QID_CHECK(maybe(m, "attn.k.bias") == v->qkv_b + H * hd && maybe(m, "attn.v.bias") == v->qkv_b + (H + KV) * hd,
                  "q, k, v biases must be contiguous");
    if (!is_llama(c)) return;
    float *gate = need(m, "mlp.gate.weight"), *up = need(m, "mlp.up.weight");
    QID_CHECK(up == gate + ff * d, "gate and up weights must be contiguous");
    v->up_w = gate;
    v->up_b = maybe(m, "mlp.gate.bias");
    if (v->up_b) QID_CHECK(maybe(m, "mlp.up.bias") == v->up_b + ff, "gate and up biases must be contiguous");
    v->up_spec[0] = spec_index(m, "mlp.gate.weight");
    v->up_spec[1] = spec_index(m, "mlp.up.weight");
    v->n_up = 2;
}

static void resolve_head(qid_model *m, head_view *h, float *const *data)
{
    int iw = spec_index(m, "final_norm.weight"), ib = spec_index(m, "final_norm.bias");
    int ip = spec_index(m, m->cfg.tie_embeddings ? "embed.weight" : "lm_head.weight");
    int io = spec_index(m, "proj_out.weight");
    QID_CHECK((iw >= 0 || m->cfg.no_final_norm) && ip >= 0, "head tensors missing");
    h->norm_w = iw >= 0 ? data[iw] : NULL;
    h->norm_b = ib >= 0 ? data[ib] : NULL;
    h->proj_out = io >= 0 ? data[io] : NULL;
    h->proj = data[ip];
    QID_CHECK(is_llama(&m->cfg) || m->cfg.no_final_norm || h->norm_b != NULL, "a LayerNorm final norm needs a bias");
}

/* Reads t as float32 into out (numel floats): the stored bytes, widened in
 * place by the vectorized kernels (exact, as qid_ckpt_read_f32). */
static int read_tensor(qid_model *m, const qid_tensor_spec *t, float *out, qid_error *err)
{
    const size_t n = (size_t)qid_tensor_numel(t);
    if (m->ck.meta.dtype == QID_DTYPE_F32) return qid_ckpt_read_raw(&m->ck, t, out, err);
    uint16_t *raw = (uint16_t *)(void *)out + n; /* the upper half of out */
    int rc = qid_ckpt_read_raw(&m->ck, t, raw, err);
    if (rc) return rc;
    if (m->ck.meta.dtype == QID_DTYPE_BF16)
        qid_k_bf16_to_f32(out, raw, n);
    else
        qid_k_f16_to_f32(out, raw, n);
    return QID_OK;
}

int qid_model_load(qid_model *m, int stage, qid_error *err)
{
    double t0 = qid_now();
    drop_stage(m);
    if (stage < QID_STAGE_EMBED || stage > m->cfg.n_layers)
        return qid_error_set(err, QID_E_INVALID, "no stage %d in a model of %" PRId64 " layers", stage,
                             m->cfg.n_layers);
    m->specs = stage_specs(m, stage, &m->n_specs);
    m->data = qid_calloc(m->n_specs, sizeof *m->data, "stage tensor pointers");
    for (size_t i = 0; i < m->n_specs; i++) /* before allocating for them */
        if (qid_ckpt_check_tensor(&m->ck, &m->specs[i], err)) goto fail;
    size_t total = 0;
    for (size_t i = 0; i < m->n_specs; i++)
        total += (size_t)qid_tensor_numel(&m->specs[i]);
    float *buf = m->arena;
    if (stage == QID_STAGE_EMBED || stage == m->cfg.n_layers) {
        m->gbuf =
            qid_malloc(qid_mul_size(total, sizeof(float)), stage == QID_STAGE_EMBED ? "the embedding" : "the head");
        m->gbuf_floats = total;
        buf = m->gbuf;
    }
    QID_CHECK(buf != m->arena || total <= m->arena_floats, "layer %d needs %zu floats, buffer holds %zu", stage, total,
              m->arena_floats);
    place(m, buf);
    for (size_t i = 0; i < m->n_specs; i++) {
        const qid_tensor_spec *t = &m->specs[i];
        size_t n = (size_t)qid_tensor_numel(t);
        if (read_tensor(m, t, m->data[i], err)) goto fail;
        size_t bad = qid_k_find_nonfinite(m->data[i], n);
        if (bad < n) {
            char path[160];
            qid_tensor_path(t, path, sizeof path);
            qid_error_set(err, QID_E_NUMERIC, "non-finite weight %g at element %zu of tensor '%s' in '%s'",
                          (double)m->data[i][bad], bad, path, m->ck.path);
            goto fail;
        }
        m->stats.bytes_read += n * sizeof(float);
    }
    size_t held = (m->arena_floats + m->gbuf_floats) * sizeof(float);
    if (held > m->stats.weight_bytes) m->stats.weight_bytes = held;
    m->stage = stage;
    if (stage >= 0 && stage < m->cfg.n_layers) resolve_layer(m);
    if (stage == m->cfg.n_layers) resolve_head(m, &m->hv, m->data);
    m->stats.read_s += qid_now() - t0;
    return QID_OK;
fail:
    drop_stage(m);
    m->stats.read_s += qid_now() - t0;
    return err ? err->code : QID_E_IO;
}

int qid_model_apply_hook(qid_model *m, qid_weight_hook hook, void *ctx, qid_error *err)
{
    if (m->stage == QID_STAGE_NONE) return qid_error_set(err, QID_E_INVALID, "no stage loaded");
    double t0 = qid_now();
    int rc = QID_OK;
    for (size_t i = 0; i < m->n_specs && rc == QID_OK; i++) {
        rc = hook(ctx, &m->specs[i], m->data[i], err);
        if (rc) {
            char path[160];
            qid_tensor_path(&m->specs[i], path, sizeof path);
            qid_error_wrap(err, rc, "weight hook failed on '%s'", path);
        }
    }
    m->stats.hook_s += qid_now() - t0;
    return rc;
}

int qid_model_keep_reference(qid_model *m, qid_error *err)
{
    if (m->stage != m->cfg.n_layers)
        return qid_error_set(err, QID_E_INVALID, "a reference copy is kept only of the head stage");
    free(m->refbuf);
    m->refbuf = qid_malloc(m->gbuf_floats * sizeof(float), "reference copy of the head");
    memcpy(m->refbuf, m->gbuf, m->gbuf_floats * sizeof(float));
    float **d = qid_calloc(m->n_specs, sizeof *d, "reference pointers");
    for (size_t i = 0; i < m->n_specs; i++)
        d[i] = m->refbuf + (m->data[i] - m->gbuf);
    resolve_head(m, &m->hv_ref, d);
    free(d);
    size_t held = (m->arena_floats + 2 * m->gbuf_floats) * sizeof(float);
    if (held > m->stats.weight_bytes) m->stats.weight_bytes = held;
    return QID_OK;
}

/* ---- batches ----------------------------------------------------------- */

qid_batch *qid_batch_create(qid_model *m, const uint32_t *tokens, size_t n_windows, size_t seq_len, qid_error *err)
{
    const qid_model_config *c = &m->cfg;
    if (n_windows == 0 || seq_len == 0) {
        qid_error_set(err, QID_E_INVALID, "empty batch (%zu windows of %zu tokens)", n_windows, seq_len);
        return NULL;
    }
    if ((int64_t)seq_len > c->max_seq_len) {
        qid_error_set(err, QID_E_INVALID,
                      "window of %zu tokens is longer than the model's context (max_seq_len %" PRId64 ") of '%s'",
                      seq_len, c->max_seq_len, m->ck.path);
        return NULL;
    }
    if (c->sliding_window > 0 && (int64_t)seq_len > c->sliding_window) {
        qid_error_set(err, QID_E_INVALID,
                      "window of %zu tokens exceeds the sliding attention window (%" PRId64
                      "), which is not supported, of '%s'",
                      seq_len, c->sliding_window, m->ck.path);
        return NULL;
    }
    size_t N = qid_mul_size(n_windows, seq_len);
    if (N > (size_t)INT_MAX / 4) {
        qid_error_set(err, QID_E_INVALID, "batch of %zu x %zu tokens is too large for one pass", n_windows, seq_len);
        return NULL;
    }
    for (size_t i = 0; i < N; i++)
        if ((int64_t)tokens[i] >= c->vocab_size) {
            qid_error_set(err, QID_E_INVALID,
                          "token id %" PRIu32 " at window %zu position %zu is outside the vocabulary (%" PRId64
                          ") of '%s'",
                          tokens[i], i / seq_len, i % seq_len, c->vocab_size, m->ck.path);
            return NULL;
        }
    qid_batch *b = qid_calloc(1, sizeof *b, "a batch");
    b->B = n_windows;
    b->T = seq_len;
    b->N = N;
    b->next_stage = QID_STAGE_EMBED;
    b->tokens = qid_malloc(qid_mul_size(N, sizeof *tokens), "batch tokens");
    memcpy(b->tokens, tokens, N * sizeof *tokens);
    const size_t d = (size_t)c->d_model;
    b->u_width = u_width(c);
    b->x = qid_malloc(qid_mul_size(N * d, sizeof(float)), "residual stream");
    b->xn = qid_malloc(qid_mul_size(N * d, sizeof(float)), "normalized activations");
    b->u = qid_malloc(qid_mul_size(qid_mul_size(N, b->u_width), sizeof(float)), "layer activations");
    /* rotary tables for positions 0 .. seq_len-1 */
    size_t half = (size_t)c->rotary_dim / 2;
    if (half > 0 && m->rope_T < seq_len) {
        free(m->rope_cos);
        free(m->rope_sin);
        m->rope_cos = qid_malloc(qid_mul_size(seq_len * half, sizeof(float)), "rotary cos table");
        m->rope_sin = qid_malloc(qid_mul_size(seq_len * half, sizeof(float)), "rotary sin table");
        qid_k_rope_table(m->rope_cos, m->rope_sin, seq_len, (size_t)c->rotary_dim, c->rope_theta);
        m->rope_T = seq_len;
    }
    return b;
}

void qid_batch_free(qid_batch *b)
{
    if (!b) return;
    free(b->tokens);
    free(b->x);
    free(b->xn);
    free(b->u);
    free(b->scratch);
    free(b);
}

int qid_batch_next_stage(const qid_batch *b) { return b->next_stage; }

size_t qid_scored_per_window(size_t seq_len, size_t score_from)
{
    return seq_len >= 1 && score_from < seq_len - 1 ? seq_len - 1 - score_from : 0;
}

/* ---- building blocks ----------------------------------------------------- */

#define ROW_BLOCK 16 /* rows per OpenMP work item in row-wise kernels */

/* out, x are (rows, d). LayerNorm with bias (gpt-neox) or RMSNorm (llama). */
static void norm_rows(const qid_model_config *c, float *out, const float *x, const float *w, const float *b,
                      size_t rows)
{
    const size_t d = (size_t)c->d_model;
    const float eps = (float)c->norm_eps;
    const size_t nblk = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < nblk; k++) {
        size_t r0 = k * ROW_BLOCK, n = rows - r0 < ROW_BLOCK ? rows - r0 : ROW_BLOCK;
        if (is_llama(c))
            qid_k_rmsnorm(out + r0 * d, x + r0 * d, w, n, d, eps);
        else
            qid_k_layernorm(out + r0 * d, x + r0 * d, w, b, n, d, eps);
    }
}

/* OpenBLAS runs single-threaded inside a step: the model splits products
 * across its own OpenMP threads (gemm_nt), so only one pool of threads
 * exists and none spins while the other works. */
int qid_blas_single_begin(void)
{
#ifdef OPENBLAS_VERSION
    int saved = openblas_get_num_threads();
    if (saved != 1) openblas_set_num_threads(1);
    return saved;
#else
    return 1;
#endif
}

#if defined(OPENBLAS_VERSION) && defined(__x86_64__) && defined(__GNUC__)
/* exported by DYNAMIC_ARCH builds only, hence weak */
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
#endif

const char *qid_blas_init(void)
{
#ifdef OPENBLAS_VERSION
#if defined(__x86_64__) && defined(__GNUC__)
    const char *core = openblas_get_corename();
    if (!getenv("OPENBLAS_CORETYPE") && core && strcmp(core, "Prescott") == 0 && gotoblas_dynamic_init &&
        gotoblas_dynamic_quit) {
        __builtin_cpu_init();
        const char *want = NULL;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
            want = "SkylakeX";
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            want = "Haswell";
        if (want && setenv("OPENBLAS_CORETYPE", want, 1) == 0) {
            gotoblas_dynamic_quit();
            gotoblas_dynamic_init();
        }
    }
#endif
    return openblas_get_corename();
#else
    return "";
#endif
}

void qid_blas_single_end(int saved)
{
#ifdef OPENBLAS_VERSION
    if (saved != 1) openblas_set_num_threads(saved);
#else
    (void)saved;
#endif
}

/* C (rows, n; ldc) = A (rows, k; lda) W^T + beta C, W (n, k): cut into
 * about 4 slices per OpenMP thread, handed out dynamically, each a
 * single-threaded cblas_sgemm; several slices per thread keep the cores
 * busy when one of them is shared with another process. Each slice packs
 * its own part of the operand it is cut along and the whole of the other,
 * so the cut goes along the longer side: rows when rows >= n (the layers'
 * products over thousands of token rows: each slice packs all of W, a few
 * MiB, instead of all of A, tens of MiB), output columns otherwise (the
 * head: a few hundred rows against the vocabulary). Slices are multiples
 * of 16, at least 64 long; the cut depends only on the shapes and the
 * thread count, so results are reproducible. */
static void gemm_nt(size_t rows, size_t n, size_t k, const float *A, size_t lda, const float *W, float beta, float *C,
                    size_t ldc)
{
    const size_t threads = (size_t)omp_get_max_threads();
    if (threads == 1 || rows * n * k < ((size_t)1 << 20)) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n, (int)k, 1.0f, A, (int)lda, W, (int)k,
                    beta, C, (int)ldc);
        return;
    }
    const int by_rows = rows >= n;
    const size_t len = by_rows ? rows : n;
    size_t per = (len + 4 * threads - 1) / (4 * threads);
    per = (per + 15) / 16 * 16;
    per = per < 64 ? 64 : per;
    const size_t slices = (len + per - 1) / per;
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t t = 0; t < slices; t++) {
        size_t j0 = t * per, j1 = j0 + per < len ? j0 + per : len;
        if (by_rows)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(j1 - j0), (int)n, (int)k, 1.0f, A + j0 * lda,
                        (int)lda, W, (int)k, beta, C + j0 * ldc, (int)ldc);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)(j1 - j0), (int)k, 1.0f, A, (int)lda,
                        W + j0 * k, (int)k, beta, C + j0, (int)ldc);
    }
}

/* C (rows, n_out; ldc) = A (rows, n_in; lda) W^T + bias, W (n_out, n_in);
 * with accumulate, C += instead. bias (n_out) may be NULL. */
static void linear(float *C, size_t ldc, const float *A, size_t lda, size_t rows, const float *W, size_t n_out,
                   size_t n_in, const float *bias, int accumulate)
{
    float beta = accumulate ? 1.0f : 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            float *cr = C + r * ldc;
            if (accumulate)
                for (size_t j = 0; j < n_out; j++)
                    cr[j] += bias[j];
            else
                memcpy(cr, bias, n_out * sizeof *cr);
        }
        beta = 1.0f;
    }
    gemm_nt(rows, n_out, n_in, A, lda, W, beta, C, ldc);
}

/* Calls the activation hook on the linears idx[0..n) of the loaded layer. */
static int call_act_hook(qid_model *m, qid_act_hook hook, void *ctx, const int *idx, int n, const float *x, size_t rows,
                         size_t ldx, qid_error *err)
{
    if (!hook) return QID_OK;
    double t0 = qid_now();
    for (int i = 0; i < n; i++) {
        const qid_tensor_spec *t = &m->specs[idx[i]];
        int rc = hook(ctx, t, x, rows, ldx, m->data[idx[i]], err);
        if (rc) {
            char path[160];
            qid_tensor_path(t, path, sizeof path);
            m->stats.hook_s += qid_now() - t0;
            return qid_error_wrap(err, rc, "activation hook failed on '%s'", path);
        }
    }
    m->stats.hook_s += qid_now() - t0;
    return QID_OK;
}

static void ensure_scratch(qid_batch *b)
{
    size_t threads = (size_t)omp_get_max_threads();
    if (b->scratch && b->scratch_threads >= threads) return;
    free(b->scratch);
    b->scratch = qid_malloc(qid_mul_size(qid_mul_size(threads, qid_k_attention_scratch(b->T)), sizeof(float)),
                            "attention scratch");
    b->scratch_threads = threads;
}

/* Rotary embedding of q and k, then causal attention per (window, head):
 * qkv (N, qkv_w) -> att (N, H hd). */
static void attention(qid_model *m, qid_batch *b, float *qkv, float *att)
{
    const qid_model_config *c = &m->cfg;
    const size_t T = b->T, B = b->B, H = (size_t)c->n_heads, KV = (size_t)c->n_kv_heads, hd = (size_t)c->head_dim;
    const size_t ld = qkv_width(c), ldo = att_width(c), rd = (size_t)c->rotary_dim;
    /* where head j's q, k, v start within a row */
    const int blk = qkv_blocked(c);
    const size_t q_stride = blk ? hd : 3 * hd, k_off = blk ? H * hd : hd, v_off = blk ? (H + KV) * hd : 2 * hd;
    const size_t kv_stride = blk ? hd : 3 * hd, group = H / KV;
    if (rd > 0) {
        const size_t half = rd / 2, nchunk = (T + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for schedule(static)
        for (size_t k = 0; k < B * nchunk; k++) {
            size_t w = k / nchunk, t0 = (k % nchunk) * ROW_BLOCK, n = T - t0 < ROW_BLOCK ? T - t0 : ROW_BLOCK;
            float *rows = qkv + (w * T + t0) * ld;
            const float *ct = m->rope_cos + t0 * half, *st = m->rope_sin + t0 * half;
            qid_k_rope(rows, n, ld, H, q_stride, rd, ct, st);
            qid_k_rope(rows + k_off, n, ld, KV, kv_stride, rd, ct, st);
        }
    }
    ensure_scratch(b);
    /* transformers' scaling, a Python float rounded once: hd^-0.5 (GPT-2: 1 without
     * scale_attn_weights, divided by layer + 1 with scale_attn_by_inverse_layer_idx) */
    double sc = c->attn_unscaled ? 1.0 : pow((double)hd, -0.5);
    if (c->attn_layer_scaled) sc /= (double)(m->stage + 1);
    const float scale = (float)sc;
    const float *slopes = m->alibi;
    const size_t per_thread = qid_k_attention_scratch(T);
#pragma omp parallel
    {
        float *scr = b->scratch + (size_t)omp_get_thread_num() * per_thread;
#pragma omp for schedule(dynamic, 1)
        for (size_t k = 0; k < B * H; k++) {
            size_t w = k / H, j = k % H, g = j / group;
            const float *base = qkv + w * T * ld;
            qid_k_attention_alibi(att + w * T * ldo + j * hd, ldo, base + j * q_stride, ld,
                                  base + k_off + g * kv_stride, ld, base + v_off + g * kv_stride, ld, T, hd, scale,
                                  slopes ? slopes[j] : 0.0f, scr);
        }
    }
}

/* The embedding stage: token rows (through OPT's project_in when the
 * embedding is narrower), plus the learned position row of each token
 * (gpt2, opt: position p of a window at row p + offset), then BLOOM's
 * embedding LayerNorm. */
static int run_embed(qid_model *m, qid_batch *b)
{
    const qid_model_config *c = &m->cfg;
    const size_t d = (size_t)c->d_model, de = embed_width(c), T = b->T;
    const float *E = need(m, "embed.weight"), *P = maybe(m, "pos_embed.weight"), *Win = maybe(m, "proj_in.weight");
    float *dst = Win ? b->u : b->x; /* (N, de) */
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < b->N; r++)
        memcpy(dst + r * de, E + (size_t)b->tokens[r] * de, de * sizeof(float));
    if (Win) linear(b->x, d, b->u, de, b->N, Win, d, de, NULL, 0);
    if (P) {
        const size_t off = (size_t)qid_pos_offset(c);
#pragma omp parallel for schedule(static)
        for (size_t r = 0; r < b->N; r++) {
            float *xr = b->x + r * d;
            const float *pr = P + (r % T + off) * d;
            for (size_t j = 0; j < d; j++)
                xr[j] += pr[j];
        }
    }
    const float *nw = maybe(m, "embed_norm.weight");
    if (nw) norm_rows(c, b->x, b->x, nw, maybe(m, "embed_norm.bias"), b->N);
    return QID_OK;
}

/* The MLP's activation in place on h (N, ff_w): GELU (erf or tanh), ReLU,
 * or llama's silu(gate) * up into the gate half. */
static void mlp_act(const qid_model_config *c, float *h, size_t N)
{
    const size_t ff = (size_t)c->d_ff, fw = ff_width(c);
    const size_t nblk = (N + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < nblk; k++) {
        size_t r0 = k * ROW_BLOCK, r1 = r0 + ROW_BLOCK < N ? r0 + ROW_BLOCK : N;
        for (size_t r = r0; r < r1; r++) {
            float *hr = h + r * fw;
            if (is_llama(c))
                qid_k_swiglu(hr, hr, hr + ff, ff); /* silu(gate) * up, into the gate half */
            else if (c->act == QID_ACT_GELU_TANH)
                qid_k_gelu_tanh(hr, ff);
            else if (c->act == QID_ACT_RELU)
                qid_k_relu(hr, ff);
            else
                qid_k_gelu(hr, ff);
        }
    }
}

static int run_layer(qid_model *m, qid_batch *b, qid_act_hook hook, void *ctx, qid_error *err)
{
    const qid_model_config *c = &m->cfg;
    const layer_view *v = &m->lv;
    const size_t N = b->N, d = (size_t)c->d_model, ff = (size_t)c->d_ff;
    const size_t qw = qkv_width(c), aw = att_width(c), fw = ff_width(c);
    float *qkv = b->u, *att = b->u + N * qw, *h = b->u;
    double t = qid_now();
#define LAP(field)                                                                                                     \
    do {                                                                                                               \
        double t1_ = qid_now();                                                                                        \
        m->stats.field += t1_ - t;                                                                                     \
        t = t1_;                                                                                                       \
    } while (0)

    /* pre-norm blocks read norm(x) (in xn); post-norm (OPT do_layer_norm_before
     * false) read x and normalize after each residual add */
    const int post = c->post_norm;
    const float *in = post ? b->x : b->xn;
    if (!post) norm_rows(c, b->xn, b->x, v->ln1_w, v->ln1_b, N);
    LAP(other_s);
    if (call_act_hook(m, hook, ctx, v->qkv_spec, v->n_qkv, in, N, d, err)) return err ? err->code : QID_E_INVALID;
    t = qid_now();
    linear(qkv, qw, in, d, N, v->qkv_w, qw, d, v->qkv_b, 0);
    LAP(gemm_s);
    attention(m, b, qkv, att);
    LAP(attn_s);
    if (call_act_hook(m, hook, ctx, &v->out_spec, 1, att, N, aw, err)) return err ? err->code : QID_E_INVALID;
    t = qid_now();
    if (c->parallel_residual) {
        /* x + attn(ln1(x)) + mlp(ln2(x)): ln2 sees the layer's input */
        norm_rows(c, b->xn, b->x, v->ln2_w, v->ln2_b, N);
        LAP(other_s);
        linear(b->x, d, att, aw, N, v->out_w, d, aw, v->out_b, 1);
        LAP(gemm_s);
    } else if (post) {
        linear(b->x, d, att, aw, N, v->out_w, d, aw, v->out_b, 1);
        LAP(gemm_s);
        norm_rows(c, b->x, b->x, v->ln1_w, v->ln1_b, N);
        LAP(other_s);
    } else {
        linear(b->x, d, att, aw, N, v->out_w, d, aw, v->out_b, 1);
        LAP(gemm_s);
        norm_rows(c, b->xn, b->x, v->ln2_w, v->ln2_b, N);
        LAP(other_s);
    }
    if (call_act_hook(m, hook, ctx, v->up_spec, v->n_up, in, N, d, err)) return err ? err->code : QID_E_INVALID;
    t = qid_now();
    linear(h, fw, in, d, N, v->up_w, fw, d, v->up_b, 0);
    LAP(gemm_s);
    mlp_act(c, h, N);
    LAP(other_s);
    if (call_act_hook(m, hook, ctx, &v->down_spec, 1, h, N, fw, err)) return err ? err->code : QID_E_INVALID;
    t = qid_now();
    linear(b->x, d, h, fw, N, v->down_w, d, ff, v->down_b, 1);
    LAP(gemm_s);
    if (post) {
        norm_rows(c, b->x, b->x, v->ln2_w, v->ln2_b, N);
        LAP(other_s);
    }
#undef LAP
    /* useful flops: the products, and causal attention (q.k and p.v for j <= i) */
    double T = (double)b->T;
    m->stats.flops += 2.0 * (double)N * (double)(qw * d + d * aw + fw * d + d * ff) +
                      4.0 * (double)b->B * (double)c->n_heads * (double)c->head_dim * T * (T + 1) / 2;
    return QID_OK;
}

int qid_batch_step(qid_model *m, qid_batch *b, qid_act_hook act_hook, void *act_ctx, qid_error *err)
{
    if (m->stage == QID_STAGE_NONE || m->stage == m->cfg.n_layers)
        return qid_error_set(err, QID_E_INVALID, "qid_batch_step needs the embedding or a layer loaded (stage %d)",
                             m->stage);
    if (b->next_stage != m->stage)
        return qid_error_set(err, QID_E_INVALID, "the batch is at stage %d but stage %d is loaded", b->next_stage,
                             m->stage);
    int rc, saved = qid_blas_single_begin();
    if (m->stage == QID_STAGE_EMBED) {
        double t0 = qid_now();
        rc = run_embed(m, b);
        m->stats.gemm_s += qid_now() - t0;
    } else {
        rc = run_layer(m, b, act_hook, act_ctx, err);
    }
    qid_blas_single_end(saved);
    if (rc == QID_OK) b->next_stage++;
    return rc;
}

/* ---- the head ------------------------------------------------------------ */

/* Rows of logits per chunk: about 64 MiB of logits (OpenBLAS needs a few
 * hundred rows to reach its peak on (rows, d) x (d, vocab)), 64 .. 1024 rows,
 * a multiple of 64. */
static size_t head_chunk_rows(size_t vocab, size_t rows)
{
    size_t r = ((size_t)16 << 20) / vocab;
    r = r < 64 ? 64 : (r > 1024 ? 1024 : r);
    r -= r % 64;
    return r < rows ? r : rows;
}

/* The index of the first maximum of x (n >= 1). */
static size_t argmax_first(const float *x, size_t n)
{
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[k]) k = i;
    return k;
}

/* The head's inputs of the n rows of a chunk: final_norm(x[rows[i]]) (a
 * copy without a final norm) into G (n, d), then through OPT's project_out
 * into A (n, d_embed); returns G, or A with project_out. */
static const float *gather_norm(const qid_model_config *c, float *A, float *G, const float *x, const size_t *rows,
                                size_t n, const head_view *h)
{
    const size_t d = (size_t)c->d_model;
    const float eps = (float)c->norm_eps;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        if (!h->norm_w)
            memcpy(G + i * d, x + rows[i] * d, d * sizeof(float));
        else if (is_llama(c))
            qid_k_rmsnorm(G + i * d, x + rows[i] * d, h->norm_w, 1, d, eps);
        else
            qid_k_layernorm(G + i * d, x + rows[i] * d, h->norm_w, h->norm_b, 1, d, eps);
    }
    if (!h->proj_out) return G;
    const size_t de = embed_width(c);
    gemm_nt(n, de, d, G, d, h->proj_out, 0.0f, A, de);
    return A;
}

int qid_batch_head(qid_model *m, qid_batch *b, const qid_head_opts *o, qid_error *err)
{
    const qid_model_config *c = &m->cfg;
    if (m->stage != c->n_layers) return qid_error_set(err, QID_E_INVALID, "qid_batch_head needs the head loaded");
    if (b->next_stage != c->n_layers)
        return qid_error_set(err, QID_E_INVALID, "the batch is at stage %d, not at the head", b->next_stage);
    const qid_batch *ref = o->ref;
    const int ref_head = o->ref_model ? (int)o->ref_model->cfg.n_layers : (int)c->n_layers;
    if (ref && (ref->next_stage != ref_head || ref->B != b->B || ref->T != b->T ||
                memcmp(ref->tokens, b->tokens, b->N * sizeof *b->tokens) != 0))
        return qid_error_set(err, QID_E_INVALID, "the reference batch is not the same tokens at the head stage");
    if (ref && !o->window_kl) return qid_error_set(err, QID_E_INVALID, "a reference batch needs window_kl");
    double t0 = qid_now();
    const qid_model *rm = o->ref_model;
    if (rm && (rm->stage != rm->cfg.n_layers || rm->cfg.vocab_size != c->vocab_size))
        return qid_error_set(err, QID_E_INVALID, "the reference model needs its head loaded and the same vocabulary");
    const size_t B = b->B, T = b->T, d = (size_t)c->d_model, V = (size_t)c->vocab_size, de = embed_width(c);
    const qid_model_config *cr = rm ? &rm->cfg : c; /* the reference head's shape */
    const size_t dr = (size_t)cr->d_model, der = embed_width(cr);
    const size_t lo = o->logits ? 0 : (o->score_from < T ? o->score_from : T);
    const size_t hi = o->logits ? T : (T >= 1 ? T - 1 : 0);
    const size_t per = hi > lo ? hi - lo : 0, nrows = B * per;
    const size_t scored = qid_scored_per_window(T, o->score_from);
    const head_view *hv = &m->hv, *hr = rm ? &rm->hv : m->refbuf ? &m->hv_ref : &m->hv;
    size_t *rows = qid_malloc(qid_mul_size(nrows + 1, sizeof *rows), "head row list");
    double *nll = qid_calloc(nrows + 1, sizeof *nll, "per-row NLL");
    double *nll_r = ref ? qid_calloc(nrows + 1, sizeof *nll_r, "per-row reference NLL") : NULL;
    double *kl = ref ? qid_calloc(nrows + 1, sizeof *kl, "per-row KL") : NULL;
    for (size_t w = 0, i = 0; w < B; w++)
        for (size_t p = lo; p < hi; p++)
            rows[i++] = w * T + p;
    const size_t R = head_chunk_rows(V, nrows ? nrows : 1);
    float *A = qid_malloc(qid_mul_size(R * d, sizeof(float)), "head inputs");
    float *Ap = de != d ? qid_malloc(qid_mul_size(R * de, sizeof(float)), "projected head inputs") : NULL;
    float *L = qid_malloc(qid_mul_size(R * V, sizeof(float)), "logits chunk");
    float *Ar = ref ? qid_malloc(qid_mul_size(R * dr, sizeof(float)), "reference head inputs") : NULL;
    float *Apr = ref && der != dr ? qid_malloc(qid_mul_size(R * der, sizeof(float)), "projected head inputs") : NULL;
    float *Lr = ref ? qid_malloc(qid_mul_size(R * V, sizeof(float)), "reference logits chunk") : NULL;
    int rc = QID_OK, saved = qid_blas_single_begin();
    size_t bad_row = SIZE_MAX;
    for (size_t c0 = 0; c0 < nrows && rc == QID_OK; c0 += R) {
        const size_t n = nrows - c0 < R ? nrows - c0 : R;
        const float *in = gather_norm(c, Ap, A, b->x, rows + c0, n, hv);
        gemm_nt(n, V, de, in, de, hv->proj, 0.0f, L, V);
        if (ref) {
            const float *inr = gather_norm(cr, Apr, Ar, ref->x, rows + c0, n, hr);
            gemm_nt(n, V, der, inr, der, hr->proj, 0.0f, Lr, V);
        }
        if (o->logits)
            for (size_t i = 0; i < n; i++)
                memcpy(o->logits + rows[c0 + i] * V, L + i * V, V * sizeof(float));
#pragma omp parallel for schedule(dynamic, 4)
        for (size_t i = 0; i < n; i++) {
            size_t row = rows[c0 + i], p = row % T;
            if (p < o->score_from || p + 1 >= T) continue;
            uint32_t target = b->tokens[row + 1];
            double lse = qid_k_logsumexp(L + i * V, V);
            nll[c0 + i] = lse - (double)L[i * V + target];
            if (ref) {
                double lse_r = qid_k_logsumexp(Lr + i * V, V);
                nll_r[c0 + i] = lse_r - (double)Lr[i * V + target];
                kl[c0 + i] = qid_k_kl(Lr + i * V, L + i * V, V, lse_r, lse);
                if (o->token_same_top) {
                    size_t t = row / T * scored + (p - o->score_from);
                    o->token_same_top[t] = argmax_first(L + i * V, V) == argmax_first(Lr + i * V, V);
                }
            }
        }
        for (size_t i = 0; i < n; i++) {
            size_t k = c0 + i;
            if (!isfinite(nll[k]) || (ref && (!isfinite(nll_r[k]) || !isfinite(kl[k])))) {
                bad_row = rows[k];
                rc = QID_E_NUMERIC;
                break;
            }
        }
    }
    if (rc == QID_OK) {
        for (size_t w = 0; w < B; w++) {
            o->window_nll[w] = 0.0;
            if (ref && o->ref_window_nll) o->ref_window_nll[w] = 0.0;
            if (ref) o->window_kl[w] = 0.0;
        }
        for (size_t i = 0; i < nrows; i++) {
            size_t w = rows[i] / T, p = rows[i] % T;
            o->window_nll[w] += nll[i];
            if (ref && o->ref_window_nll) o->ref_window_nll[w] += nll_r[i];
            if (ref) o->window_kl[w] += kl[i];
            if (ref && p >= o->score_from && p + 1 < T) {
                size_t t = w * scored + (p - o->score_from);
                if (o->token_nll) o->token_nll[t] = nll[i];
                if (o->token_ref_nll) o->token_ref_nll[t] = nll_r[i];
                if (o->token_kl) o->token_kl[t] = kl[i];
            }
        }
        b->next_stage++;
        m->stats.flops += 2.0 * (double)nrows * (double)V * (double)(de + (ref ? der : 0));
    } else {
        qid_error_set(err, QID_E_NUMERIC, "non-finite logits at window %zu position %zu of '%s'", bad_row / T,
                      bad_row % T, m->ck.path);
    }
    qid_blas_single_end(saved);
    free(rows);
    free(nll);
    free(nll_r);
    free(kl);
    free(A);
    free(Ap);
    free(L);
    free(Ar);
    free(Apr);
    free(Lr);
    m->stats.head_s += qid_now() - t0;
    return rc;
}

/* ---- streamed calibration ------------------------------------------------ */

struct qid_calib {
    size_t B, T, d;    /* every window */
    size_t C, nchunks; /* windows per chunk, chunks */
    uint32_t *tokens;  /* (B, T) */
    float *resid;      /* (B T, d) residual stream in memory, or NULL */
    int fd;            /* scratch file holding it instead (unlinked), or -1 */
    char *scratch_dir; /* for messages */
    qid_batch *b;      /* one chunk's activations */
    int next_stage;    /* as a batch's */
    qid_calib_stats st;
};

int qid_calib_passes(const qid_model_config *cfg) { return cfg->parallel_residual ? 3 : 5; }

size_t qid_calib_chunk_windows(const qid_model_config *cfg, size_t seq_len, size_t n_windows, size_t budget)
{
    size_t per = qid_model_batch_bytes(cfg, 1, seq_len), c = budget == 0 ? n_windows : budget / (per ? per : 1);
    if (c > n_windows) c = n_windows;
    return c < 1 ? 1 : c;
}

qid_calib *qid_calib_create(qid_model *m, const uint32_t *tokens, size_t n_windows, size_t seq_len,
                            size_t chunk_windows, const char *scratch_dir, qid_error *err)
{
    const size_t C = chunk_windows < 1 ? 1 : chunk_windows > n_windows ? n_windows : chunk_windows;
    /* the checks of qid_batch_create: on the first chunk, then the ids of the rest */
    qid_batch *b = qid_batch_create(m, tokens, C, seq_len, err);
    if (!b) return NULL;
    const size_t N = qid_mul_size(n_windows, seq_len);
    for (size_t i = C * seq_len; i < N; i++)
        if ((int64_t)tokens[i] >= m->cfg.vocab_size) {
            qid_error_set(err, QID_E_INVALID,
                          "token id %" PRIu32 " at window %zu position %zu is outside the vocabulary (%" PRId64
                          ") of '%s'",
                          tokens[i], i / seq_len, i % seq_len, m->cfg.vocab_size, m->ck.path);
            qid_batch_free(b);
            return NULL;
        }
    qid_calib *c = qid_calloc(1, sizeof *c, "a calibration stream");
    c->B = n_windows;
    c->T = seq_len;
    c->d = (size_t)m->cfg.d_model;
    c->C = C;
    c->nchunks = (n_windows + C - 1) / C;
    c->fd = -1;
    c->next_stage = QID_STAGE_EMBED;
    c->st.windows = n_windows;
    c->st.seq_len = seq_len;
    c->st.chunk_windows = C;
    c->st.chunks = c->nchunks;
    c->b = b;
    c->tokens = qid_malloc(qid_mul_size(N, sizeof *tokens), "calibration tokens");
    memcpy(c->tokens, tokens, N * sizeof *tokens);
    if (scratch_dir) {
        c->scratch_dir = qid_strdup(scratch_dir);
        size_t len = strlen(scratch_dir) + 32;
        char *path = qid_malloc(len, "scratch file name");
        snprintf(path, len, "%s/qid-calib-XXXXXX", scratch_dir);
        c->fd = mkstemp(path);
        int e = errno;
        if (c->fd >= 0) unlink(path);
        free(path);
        if (c->fd < 0) {
            qid_error_set(err, QID_E_IO, "cannot create a scratch file in '%s': %s", scratch_dir, strerror(e));
            qid_calib_free(c);
            return NULL;
        }
    } else {
        c->resid = qid_malloc(qid_mul_size(qid_mul_size(N, c->d), sizeof(float)), "calibration residual stream");
    }
    return c;
}

void qid_calib_free(qid_calib *c)
{
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    free(c->scratch_dir);
    free(c->tokens);
    free(c->resid);
    qid_batch_free(c->b);
    free(c);
}

const qid_calib_stats *qid_calib_get_stats(const qid_calib *c) { return &c->st; }

/* Moves n bytes between buf and the scratch file at offset off (write: 1). */
static int scratch_io(qid_calib *c, int write, void *buf, size_t n, size_t off, qid_error *err)
{
    double t0 = qid_now();
    char *p = buf;
    size_t done = 0;
    while (done < n) {
        ssize_t r = write ? pwrite(c->fd, p + done, n - done, (off_t)(off + done))
                          : pread(c->fd, p + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return qid_error_set(err, QID_E_IO, "cannot %s the calibration scratch file in '%s': %s",
                                 write ? "write" : "read", c->scratch_dir, r < 0 ? strerror(errno) : "end of file");
        done += (size_t)r;
    }
    c->st.scratch_bytes += n;
    c->st.scratch_s += qid_now() - t0;
    return QID_OK;
}

/* Makes the chunk batch hold chunk k at stage `stage`: its tokens and, for
 * a layer, its rows of the residual stream. */
static int chunk_load(qid_calib *c, size_t k, int stage, qid_error *err)
{
    qid_batch *b = c->b;
    const size_t w0 = k * c->C, nb = c->B - w0 < c->C ? c->B - w0 : c->C;
    b->B = nb;
    b->N = nb * c->T;
    b->next_stage = stage;
    memcpy(b->tokens, c->tokens + w0 * c->T, b->N * sizeof *b->tokens);
    if (stage == QID_STAGE_EMBED) return QID_OK;
    const size_t off = w0 * c->T * c->d, n = b->N * c->d;
    if (c->resid) {
        memcpy(b->x, c->resid + off, n * sizeof(float));
        return QID_OK;
    }
    return scratch_io(c, 0, b->x, n * sizeof(float), off * sizeof(float), err);
}

/* Writes the chunk batch's residual stream back as chunk k's. */
static int chunk_store(qid_calib *c, size_t k, qid_error *err)
{
    const qid_batch *b = c->b;
    const size_t off = k * c->C * c->T * c->d, n = b->N * c->d;
    if (c->resid) {
        memcpy(c->resid + off, b->x, n * sizeof(float));
        return QID_OK;
    }
    return scratch_io(c, 1, b->x, n * sizeof(float), off * sizeof(float), err);
}

#define GROUP_BIT(g) (1u << (g))

/* hooks->add on group g of the loaded layer with input x (b's rows). */
static int calib_add(qid_model *m, const qid_calib_hooks *hk, int g, int first, const float *x, size_t rows, size_t ldx,
                     qid_error *err)
{
    const layer_view *v = &m->lv;
    const int idx = g == QID_GROUP_QKV   ? v->qkv_spec[0]
                    : g == QID_GROUP_OUT ? v->out_spec
                    : g == QID_GROUP_UP  ? v->up_spec[0]
                                         : v->down_spec;
    double t0 = qid_now();
    int rc = hk->add(hk->ctx, g, first, &m->specs[idx], x, rows, ldx, err);
    m->stats.hook_s += qid_now() - t0;
    if (rc) {
        char path[160];
        qid_tensor_path(&m->specs[idx], path, sizeof path);
        return qid_error_wrap(err, rc, "calibration hook failed on '%s'", path);
    }
    return QID_OK;
}

/* hooks->quantize on the tensors of group g of the loaded layer. */
static int calib_quantize(qid_model *m, const qid_calib_hooks *hk, int g, qid_error *err)
{
    const layer_view *v = &m->lv;
    const int *idx = g == QID_GROUP_QKV   ? v->qkv_spec
                     : g == QID_GROUP_OUT ? &v->out_spec
                     : g == QID_GROUP_UP  ? v->up_spec
                                          : &v->down_spec;
    const int n = g == QID_GROUP_QKV ? v->n_qkv : g == QID_GROUP_UP ? v->n_up : 1;
    const qid_tensor_spec *t[3];
    float *w[3];
    for (int i = 0; i < n; i++) {
        t[i] = &m->specs[idx[i]];
        w[i] = m->data[idx[i]];
    }
    double t0 = qid_now();
    int rc = hk->quantize(hk->ctx, g, t, w, n, err);
    m->stats.hook_s += qid_now() - t0;
    if (rc) {
        char path[160];
        qid_tensor_path(t[0], path, sizeof path);
        return qid_error_wrap(err, rc, "calibration hook failed on '%s'", path);
    }
    return QID_OK;
}

/* One pass of the loaded layer over the chunk in b: the inputs of the
 * groups in mask go to hooks->add, computed as run_layer computes them and
 * no further than the last of them. b->x may change (sequential residual:
 * the attention output is added); the caller reloads it. */
static int calib_pass(qid_model *m, qid_batch *b, unsigned mask, const qid_calib_hooks *hk, int first, qid_error *err)
{
    const qid_model_config *c = &m->cfg;
    const layer_view *v = &m->lv;
    const size_t N = b->N, d = (size_t)c->d_model;
    const size_t qw = qkv_width(c), aw = att_width(c), fw = ff_width(c);
    float *qkv = b->u, *att = b->u + N * qw, *h = b->u;
    const int par = c->parallel_residual != 0;
    const unsigned mlp = GROUP_BIT(QID_GROUP_UP) | GROUP_BIT(QID_GROUP_DOWN);
    const int need_attn = (mask & GROUP_BIT(QID_GROUP_OUT)) || (!par && (mask & mlp));
    int rc;
    const int post = c->post_norm;
    const float *in = post ? b->x : b->xn;
    if (!post) norm_rows(c, b->xn, b->x, v->ln1_w, v->ln1_b, N);
    if ((mask & GROUP_BIT(QID_GROUP_QKV)) && (rc = calib_add(m, hk, QID_GROUP_QKV, first, in, N, d, err))) return rc;
    if (need_attn) {
        linear(qkv, qw, in, d, N, v->qkv_w, qw, d, v->qkv_b, 0);
        attention(m, b, qkv, att);
        if ((mask & GROUP_BIT(QID_GROUP_OUT)) && (rc = calib_add(m, hk, QID_GROUP_OUT, first, att, N, aw, err)))
            return rc;
    }
    if (!(mask & mlp)) return QID_OK;
    if (!par) linear(b->x, d, att, aw, N, v->out_w, d, aw, v->out_b, 1);
    if (post)
        norm_rows(c, b->x, b->x, v->ln1_w, v->ln1_b, N);
    else
        norm_rows(c, b->xn, b->x, v->ln2_w, v->ln2_b, N);
    if ((mask & GROUP_BIT(QID_GROUP_UP)) && (rc = calib_add(m, hk, QID_GROUP_UP, first, in, N, d, err))) return rc;
    if (!(mask & GROUP_BIT(QID_GROUP_DOWN))) return QID_OK;
    linear(h, fw, in, d, N, v->up_w, fw, d, v->up_b, 0);
    mlp_act(c, h, N);
    return calib_add(m, hk, QID_GROUP_DOWN, first, h, N, fw, err);
}

int qid_calib_step(qid_model *m, qid_calib *c, const qid_calib_hooks *hk, qid_error *err)
{
    const int stage = m->stage;
    if (stage == QID_STAGE_NONE || stage == m->cfg.n_layers)
        return qid_error_set(err, QID_E_INVALID, "qid_calib_step needs the embedding or a layer loaded (stage %d)",
                             stage);
    if (c->next_stage != stage)
        return qid_error_set(err, QID_E_INVALID, "the calibration is at stage %d but stage %d is loaded", c->next_stage,
                             stage);
    double t0 = qid_now();
    int rc = QID_OK, saved = qid_blas_single_begin();
    /* the passes of a layer: the groups whose inputs each adds (0: the last, which runs the layer) */
    unsigned passes[5];
    int np = 0;
    if (stage >= 0 && hk) {
        if (m->cfg.parallel_residual) {
            passes[np++] = GROUP_BIT(QID_GROUP_QKV) | GROUP_BIT(QID_GROUP_UP);
            passes[np++] = GROUP_BIT(QID_GROUP_OUT) | GROUP_BIT(QID_GROUP_DOWN);
        } else {
            for (int g = 0; g < QID_GROUP_COUNT; g++)
                passes[np++] = GROUP_BIT(g);
        }
    }
    passes[np++] = 0;
    for (int p = 0; p < np && !rc; p++) {
        for (size_t k = 0; k < c->nchunks && !rc; k++) {
            if ((rc = chunk_load(c, k, stage, err))) break;
            if (stage == QID_STAGE_EMBED)
                rc = run_embed(m, c->b);
            else if (passes[p])
                rc = calib_pass(m, c->b, passes[p], hk, k == 0, err);
            else
                rc = run_layer(m, c->b, NULL, NULL, err);
            if (!rc && !passes[p]) rc = chunk_store(c, k, err);
            c->st.chunk_passes++;
        }
        for (int g = 0; g < QID_GROUP_COUNT && !rc; g++)
            if (passes[p] & GROUP_BIT(g)) rc = calib_quantize(m, hk, g, err);
    }
    qid_blas_single_end(saved);
    c->st.seconds += qid_now() - t0;
    if (rc) return rc;
    c->next_stage++;
    if (c->next_stage == m->cfg.n_layers) { /* the residual stream is not needed at the head */
        free(c->resid);
        c->resid = NULL;
        qid_batch_free(c->b);
        c->b = NULL;
        if (c->fd >= 0) close(c->fd);
        c->fd = -1;
    }
    return QID_OK;
}

/* ---- the whole pass ------------------------------------------------------- */

int qid_model_forward(qid_model *m, const uint32_t *tokens, size_t n_windows, size_t seq_len, const qid_forward_opts *o,
                      qid_error *err)
{
    const int L = (int)m->cfg.n_layers;
    qid_batch *b = NULL, *ref = NULL, *cal = NULL;
    qid_calib *scal = NULL;
    int rc = QID_OK;
    if (!o->window_nll || (o->kl && !o->window_kl)) {
        return qid_error_set(err, QID_E_INVALID, "qid_model_forward needs window_nll (and window_kl with kl)");
    }
    if (!(b = qid_batch_create(m, tokens, n_windows, seq_len, err))) return err ? err->code : QID_E_INVALID;
    qid_model *rm = o->kl ? o->ref_model : NULL;
    if (rm && rm->cfg.vocab_size != m->cfg.vocab_size) {
        rc = qid_error_set(err, QID_E_INVALID, "reference '%s' has a vocabulary of %" PRId64 " ids, '%s' of %" PRId64,
                           rm->ck.path, rm->cfg.vocab_size, m->ck.path, m->cfg.vocab_size);
        goto fail;
    }
    if (o->kl && !(ref = qid_batch_create(rm ? rm : m, tokens, n_windows, seq_len, err))) goto fail;
    if (o->calib_tokens && o->calib_hooks) {
        size_t chunk = o->calib_chunk ? o->calib_chunk : o->calib_windows;
        if (!(scal = qid_calib_create(m, o->calib_tokens, o->calib_windows, o->calib_seq_len, chunk, o->calib_scratch,
                                      err))) {
            qid_error_wrap(err, err ? err->code : QID_E_INVALID, "calibration windows");
            goto fail;
        }
    } else if (o->calib_tokens &&
               !(cal = qid_batch_create(m, o->calib_tokens, o->calib_windows, o->calib_seq_len, err))) {
        qid_error_wrap(err, err ? err->code : QID_E_INVALID, "calibration batch");
        goto fail;
    }
    /* another checkpoint as the reference: its whole stream first, then
     * its head stays loaded for qid_batch_head */
    for (int stage = QID_STAGE_EMBED; rm && stage <= (int)rm->cfg.n_layers; stage++) {
        if ((rc = qid_model_load(rm, stage, err))) goto fail;
        if (stage < (int)rm->cfg.n_layers && (rc = qid_batch_step(rm, ref, NULL, NULL, err))) goto fail;
    }
    for (int stage = QID_STAGE_EMBED; stage <= L; stage++) {
        if ((rc = qid_model_load(m, stage, err))) goto fail;
        if (ref && !rm && stage < L && (rc = qid_batch_step(m, ref, NULL, NULL, err))) goto fail;
        if (ref && !rm && stage == L && o->weight_hook && (rc = qid_model_keep_reference(m, err))) goto fail;
        if (o->weight_hook && (rc = qid_model_apply_hook(m, o->weight_hook, o->weight_ctx, err))) goto fail;
        if (stage < L) {
            if (cal && (rc = qid_batch_step(m, cal, o->act_hook, o->act_ctx, err))) goto fail;
            if (scal && (rc = qid_calib_step(m, scal, stage >= 0 ? o->calib_hooks : NULL, err))) goto fail;
            if ((rc = qid_batch_step(m, b, cal || scal ? NULL : o->act_hook, o->act_ctx, err))) goto fail;
        } else {
            qid_head_opts h = {.score_from = o->score_from,
                               .ref = ref,
                               .window_nll = o->window_nll,
                               .ref_window_nll = o->ref_window_nll,
                               .window_kl = o->window_kl,
                               .logits = o->logits,
                               .ref_model = rm,
                               .token_nll = o->token_nll,
                               .token_ref_nll = o->token_ref_nll,
                               .token_kl = o->token_kl,
                               .token_same_top = o->token_same_top};
            if ((rc = qid_batch_head(m, b, &h, err))) goto fail;
        }
    }
    drop_stage(m); /* the head: nothing large stays */
    if (rm) drop_stage(rm);
    qid_batch_free(b);
    qid_batch_free(ref);
    qid_batch_free(cal);
    qid_calib_free(scal);
    return QID_OK;
fail:
    drop_stage(m);
    if (rm) drop_stage(rm);
    qid_batch_free(b);
    qid_batch_free(ref);
    qid_batch_free(cal);
    qid_calib_free(scal);
    return rc ? rc : (err ? err->code : QID_E_INVALID);
}
