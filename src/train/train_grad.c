/* train_grad.c - the trainable in-memory GPT-NeoX model (train_grad.h):
 * parameters, the forward pass, the mean next-token cross-entropy, and the
 * backward pass.
 *
 * A step runs in two parallel phases.
 *
 * 1. Per window (T rows, one OpenMP thread each, single-threaded sgemm):
 *    the forward pass through every layer, keeping in the thread's scratch
 *    the window's residual stream x[l], post-rotary qkv, attention
 *    probabilities P (H, T, T) and MLP pre-activations; the loss; then
 *    (for gradients) d loss / d logits and, layer by layer from the top,
 *    with g = d loss / d x[l+1]:
 *      MLP:  dh = g W_down * gelu'(hpre), d xn2 = dh W_up;
 *      attn: d att = g W_out, then per head dP = dO V^T, dV = P^T dO,
 *            dS = P * (dP - rowsum(P * dP)) / sqrt(hd), dQ = dS K,
 *            dK = dS^T Q, rotated back (the rotary table with -sin),
 *            d xn1 = dqkv W_qkv;
 *      d x[l] = g + ln2'(d xn2) + ln1'(d xn1) (parallel residual).
 *    What the weight gradients need goes to the shared per-layer arrays
 *    (xn1, att, xn2, hact and g, dh, dqkv at the window's rows), and the
 *    window's column sums of the bias and norm gradients to its row of
 *    `part`.
 * 2. The weight gradients as a list of jobs run on OpenMP threads: tiles
 *    of dW_down = g^T hact, dW_out = g^T att, dW_up = dh^T xn2,
 *    dW_qkv = dqkv^T xn1, dW_head = dlogits^T xnf over all rows (one
 *    cblas_sgemm each), the sums of `part` over windows in window order,
 *    and the embedding rows (token by token in row order).
 * GELU's derivative is Phi(x) + x phi(x) with Phi(x) = gelu(x) / x taken
 * from the stored forward value (x near 0: 1/2 + x phi(0)) and phi through
 * the vectorized exp, so no scalar erf runs in the backward pass.
 *
 * Does not: read or write files, update parameters (train.c). */
#include "train_grad.h"

#include <cblas.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model.h"
#include "rng.h"

/* Tensors of one layer, in storage order (checked against the table). */
enum {
    P_LN1_W,
    P_LN1_B,
    P_QKV_W,
    P_QKV_B,
    P_OUT_W,
    P_OUT_B,
    P_LN2_W,
    P_LN2_B,
    P_UP_W,
    P_UP_B,
    P_DOWN_W,
    P_DOWN_B,
    P_PER_LAYER
};
static const char *const layer_names[P_PER_LAYER] = {
    "ln1.weight", "ln1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.out.weight", "attn.out.bias",
    "ln2.weight", "ln2.bias", "mlp.up.weight",   "mlp.up.bias",   "mlp.down.weight", "mlp.down.bias",
};
/* Global tensors: embed first, then after the layers final norm and head. */
enum { G_FINAL_W, G_FINAL_B, G_HEAD };

#define INV_SQRT_2PI 0.3989422804014327f

/* ---- the model ------------------------------------------------------------- */

int qid_tmodel_config(qid_model_config *cfg, int64_t vocab, int64_t d_model, int64_t n_layers, int64_t n_heads,
                      int64_t d_ff, int64_t max_seq_len, qid_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (vocab <= 0 || d_model <= 0 || n_layers <= 0 || n_heads <= 0 || d_ff <= 0 || max_seq_len <= 0)
        return qid_error_set(err, QID_E_INVALID,
                             "model sizes must be positive (vocab %" PRId64 ", d_model %" PRId64 ", layers %" PRId64
                             ", heads %" PRId64 ", d_ff %" PRId64 ", positions %" PRId64 ")",
                             vocab, d_model, n_layers, n_heads, d_ff, max_seq_len);
    if (d_model % n_heads != 0)
        return qid_error_set(err, QID_E_INVALID, "%" PRId64 " heads do not divide d_model %" PRId64, n_heads, d_model);
    const int64_t hd = d_model / n_heads, rd = (int64_t)((double)hd * 0.25);
    if (rd % 2 != 0)
        return qid_error_set(err, QID_E_INVALID,
                             "head_dim %" PRId64 " (d_model %" PRId64 " / %" PRId64 " heads) gives %" PRId64
                             " rotary dimensions (int(head_dim * 0.25)), which must be even: make head_dim a "
                             "multiple of 8",
                             hd, d_model, n_heads, rd);
    cfg->arch = QID_ARCH_GPT_NEOX;
    cfg->vocab_size = vocab;
    cfg->d_model = d_model;
    cfg->n_layers = n_layers;
    cfg->n_heads = n_heads;
    cfg->n_kv_heads = n_heads;
    cfg->head_dim = hd;
    cfg->d_ff = d_ff;
    cfg->max_seq_len = max_seq_len;
    cfg->rotary_pct = 0.25;
    cfg->rotary_dim = rd;
    cfg->rope_theta = 10000.0;
    cfg->norm_eps = 1e-5;
    cfg->parallel_residual = 1;
    cfg->tie_embeddings = 0;
    cfg->qkv_bias = cfg->o_bias = cfg->mlp_bias = 1;
    cfg->sliding_window = 0;
    return qid_config_validate(cfg, err);
}

qid_tmodel *qid_tmodel_create(const qid_model_config *cfg, qid_error *err)
{
    if (qid_config_validate(cfg, err)) return NULL;
    if (cfg->arch != QID_ARCH_GPT_NEOX || !cfg->parallel_residual || cfg->tie_embeddings || !cfg->qkv_bias ||
        !cfg->o_bias || !cfg->mlp_bias || cfg->sliding_window != 0) {
        qid_error_set(err, QID_E_INVALID,
                      "qid train supports gpt-neox with parallel residual, untied head, biases everywhere and full "
                      "attention only (got %s, parallel_residual %d, tie_embeddings %d)",
                      qid_arch_name(cfg->arch), cfg->parallel_residual, cfg->tie_embeddings);
        return NULL;
    }
    qid_tmodel *m = qid_calloc(1, sizeof *m, "the trained model");
    m->cfg = *cfg;
    m->specs = qid_ckpt_tensors(cfg, &m->n_specs);
    const size_t L = (size_t)cfg->n_layers;
    QID_CHECK(m->n_specs == 1 + L * P_PER_LAYER + 3, "unexpected gpt-neox tensor table of %zu tensors", m->n_specs);
    QID_CHECK(strcmp(m->specs[0].name, "embed.weight") == 0, "embed.weight first");
    for (size_t l = 0; l < L; l++)
        for (int k = 0; k < P_PER_LAYER; k++)
            QID_CHECK(strcmp(m->specs[1 + l * P_PER_LAYER + k].name, layer_names[k]) == 0, "layer tensor %s",
                      layer_names[k]);
    QID_CHECK(strcmp(m->specs[1 + L * P_PER_LAYER + G_HEAD].name, "lm_head.weight") == 0, "lm_head.weight last");
    m->offset = qid_calloc(m->n_specs, sizeof *m->offset, "tensor offsets");
    size_t off = 0;
    for (size_t i = 0; i < m->n_specs; i++) {
        m->offset[i] = off;
        off += (size_t)qid_tensor_numel(&m->specs[i]);
    }
    m->n_params = off;
    m->param = qid_calloc(off, sizeof(float), "model parameters");
    m->grad = qid_calloc(off, sizeof(float), "parameter gradients");
    return m;
}

void qid_tmodel_free(qid_tmodel *m)
{
    if (!m) return;
    free(m->specs);
    free(m->offset);
    free(m->param);
    free(m->grad);
    free(m);
}

int qid_tmodel_find(const qid_tmodel *m, const char *name, int layer)
{
    for (size_t i = 0; i < m->n_specs; i++)
        if (m->specs[i].layer == layer && strcmp(m->specs[i].name, name) == 0) return (int)i;
    return -1;
}

double qid_tmodel_default_init_std(int64_t d_model) { return sqrt(2.0 / (5.0 * (double)d_model)); }

void qid_tmodel_init(qid_tmodel *m, uint64_t seed, double init_std)
{
    const double out_std = init_std / sqrt(2.0 * (double)m->cfg.n_layers);
    for (size_t i = 0; i < m->n_specs; i++) {
        const qid_tensor_spec *t = &m->specs[i];
        float *p = m->param + m->offset[i];
        const size_t n = (size_t)qid_tensor_numel(t);
        if (t->kind == QID_TENSOR_LINEAR || t->kind == QID_TENSOR_EMBED) {
            const int is_out = strcmp(t->name, "attn.out.weight") == 0 || strcmp(t->name, "mlp.down.weight") == 0;
            const double sd = is_out ? out_std : init_std;
            qid_rng rng;
            qid_rng_seed(&rng, seed, (uint64_t)i);
            for (size_t k = 0; k < n; k++)
                p[k] = (float)(sd * qid_rng_normal(&rng));
        } else {
            const size_t len = strlen(t->name);
            const int norm_weight = t->kind == QID_TENSOR_NORM && len > 7 && strcmp(t->name + len - 7, ".weight") == 0;
            for (size_t k = 0; k < n; k++)
                p[k] = norm_weight ? 1.0f : 0.0f;
        }
    }
}

/* Tensor k of layer l, or global tensor k (G_*), in params or grads. */
static size_t layer_off(const qid_tmodel *m, size_t l, int k) { return m->offset[1 + l * P_PER_LAYER + (size_t)k]; }
static size_t global_off(const qid_tmodel *m, int k)
{
    return m->offset[1 + (size_t)m->cfg.n_layers * P_PER_LAYER + (size_t)k];
}

/* ---- the workspace ----------------------------------------------------------- */

/* Per-window partial sums of the bias and norm gradients, per layer (width
 * 8d + ff): the column sums of g (both output biases), of dh (up bias), of
 * dqkv (qkv bias), and of dy * xhat and dy of ln1 and ln2; then the final
 * norm's (2d). Offsets within a layer's span: */
enum { PO_G, PO_DH, PO_QKV, PO_LN1W, PO_LN1B, PO_LN2W, PO_LN2B, PO_COUNT };

struct qid_tacts {
    size_t B_max, T, N_max; /* capacity */
    size_t B, N;            /* of the last pass */
    size_t d, ff, V, H, hd, L, rd;
    uint32_t *tokens; /* (N_max) */
    /* operands of the weight-gradient products, per layer (L, N_max, width) */
    float *xn1, *att, *xn2, *hact; /* ln1(x), attention output, ln2(x), gelu(hpre) */
    float *g, *dh, *dqkv;          /* d loss / d x[l+1], / d hpre, / d qkv (before rotary) */
    float *xnf, *logits;           /* (N_max, d), (N_max, V): logits, then d loss / d logits */
    float *dx0;                    /* (N_max, d) d loss / d x[0], for the embedding */
    double *window_nll;            /* (B_max) */
    size_t *bad;                   /* (B_max) first non-finite position + 1, or 0 */
    float *part;                   /* (B_max, part_w) per-window partial sums */
    size_t part_w, layer_w;
    size_t po[PO_COUNT]; /* offsets of the PO_* sums in a layer's span */
    float *scratch;      /* per thread: one window's forward state and backward temporaries */
    double *dscratch;
    size_t per_thread, dper_thread, threads;
    float *rope_cos, *rope_sin, *rope_nsin; /* (T, rd / 2) */
};

/* Floats (and doubles) of one thread's window scratch. */
static size_t scratch_floats(const qid_tacts *a)
{
    const size_t T = a->T, d = a->d, L = a->L;
    return (L + 1) * T * d + L * T * 3 * d + L * a->H * T * T + L * T * a->ff /* x, qkv, prob, hpre */
           + 3 * T * d + T * T + T * 3 * a->hd + T * a->ff;                   /* dx, dxn, datt, dP, hs, gt */
}

/* Floats of the shared arrays. */
static size_t shared_floats(const qid_model_config *c, size_t B, size_t T)
{
    const size_t N = B * T, d = (size_t)c->d_model, ff = (size_t)c->d_ff, V = (size_t)c->vocab_size;
    const size_t L = (size_t)c->n_layers;
    return L * N * (7 * d + 2 * ff) + N * (2 * d + V) + B * (L * (8 * d + ff) + 2 * d) + N /* tokens */ +
           4 * B /* window_nll, bad */;
}

size_t qid_tacts_bytes(const qid_model_config *cfg, size_t B_max, size_t T)
{
    qid_tacts a = {.T = T,
                   .d = (size_t)cfg->d_model,
                   .L = (size_t)cfg->n_layers,
                   .H = (size_t)cfg->n_heads,
                   .hd = (size_t)cfg->head_dim,
                   .ff = (size_t)cfg->d_ff};
    const size_t threads = (size_t)omp_get_max_threads();
    return (shared_floats(cfg, B_max, T) + threads * scratch_floats(&a)) * sizeof(float);
}

qid_tacts *qid_tacts_create(const qid_model_config *cfg, size_t B_max, size_t T, qid_error *err)
{
    if (B_max == 0 || T == 0 || (int64_t)T > cfg->max_seq_len) {
        qid_error_set(err, QID_E_INVALID,
                      "a batch of %zu windows of %zu tokens does not fit a model of %" PRId64 " positions", B_max, T,
                      cfg->max_seq_len);
        return NULL;
    }
    const size_t V = (size_t)cfg->vocab_size, ff = (size_t)cfg->d_ff, d = (size_t)cfg->d_model;
    const size_t wide = V > 3 * d + ff ? V : 3 * d + ff;
    if (B_max > (size_t)INT_MAX / T || B_max * T > (size_t)INT_MAX / wide) {
        qid_error_set(err, QID_E_INVALID, "a batch of %zu windows of %zu tokens is too large", B_max, T);
        return NULL;
    }
    qid_tacts *a = qid_calloc(1, sizeof *a, "training activations");
    a->B_max = B_max;
    a->T = T;
    a->N_max = B_max * T;
    a->d = d;
    a->ff = ff;
    a->V = V;
    a->H = (size_t)cfg->n_heads;
    a->hd = (size_t)cfg->head_dim;
    a->L = (size_t)cfg->n_layers;
    a->rd = (size_t)cfg->rotary_dim;
    a->layer_w = 8 * d + ff;
    const size_t po[PO_COUNT] = {0, d, d + ff, 4 * d + ff, 5 * d + ff, 6 * d + ff, 7 * d + ff};
    memcpy(a->po, po, sizeof po);
    a->part_w = a->L * a->layer_w + 2 * d;
    const size_t N = a->N_max, L = a->L;
#define ALLOC(field, n) a->field = qid_malloc(qid_mul_size((n), sizeof *a->field), "training activations: " #field)
    ALLOC(tokens, N);
    ALLOC(xn1, L * N * d);
    ALLOC(att, L * N * d);
    ALLOC(xn2, L * N * d);
    ALLOC(hact, L * N * ff);
    ALLOC(g, L * N * d);
    ALLOC(dh, L * N * ff);
    ALLOC(dqkv, L * N * 3 * d);
    ALLOC(xnf, N * d);
    ALLOC(logits, N * V);
    ALLOC(dx0, N * d);
    ALLOC(window_nll, B_max);
    ALLOC(bad, B_max);
    ALLOC(part, B_max * a->part_w);
#undef ALLOC
    const size_t half = a->rd / 2;
    if (half > 0) {
        a->rope_cos = qid_malloc(qid_mul_size(T * half, sizeof(float)), "rotary cos table");
        a->rope_sin = qid_malloc(qid_mul_size(T * half, sizeof(float)), "rotary sin table");
        a->rope_nsin = qid_malloc(qid_mul_size(T * half, sizeof(float)), "rotary -sin table");
        qid_k_rope_table(a->rope_cos, a->rope_sin, T, a->rd, cfg->rope_theta);
        for (size_t i = 0; i < T * half; i++)
            a->rope_nsin[i] = -a->rope_sin[i];
    }
    return a;
}

void qid_tacts_free(qid_tacts *a)
{
    if (!a) return;
    void *p[] = {a->tokens,  a->xn1,      a->att,      a->xn2,      a->hact,       a->g,   a->dh,
                 a->dqkv,    a->xnf,      a->logits,   a->dx0,      a->window_nll, a->bad, a->part,
                 a->scratch, a->dscratch, a->rope_cos, a->rope_sin, a->rope_nsin};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(p[i]);
    free(a);
}

/* One window's state in a thread's scratch. */
typedef struct wscratch {
    float *xs;   /* (L + 1, T, d) residual stream */
    float *qkv;  /* (L, T, 3d) after rotary */
    float *prob; /* (L, H, T, T) */
    float *hpre; /* (L, T, ff) */
    float *dx, *dxn, *datt, *dP, *hs, *gt;
} wscratch;

static void ensure_scratch(qid_tacts *a)
{
    const size_t threads = (size_t)omp_get_max_threads();
    if (a->scratch && a->threads >= threads) return;
    free(a->scratch);
    a->per_thread = scratch_floats(a);
    a->scratch = qid_malloc(qid_mul_size(qid_mul_size(threads, a->per_thread), sizeof(float)), "training scratch");
    a->threads = threads;
}

static wscratch scratch_of(const qid_tacts *a, size_t thread)
{
    const size_t T = a->T, d = a->d, L = a->L;
    wscratch s;
    float *p = a->scratch + thread * a->per_thread;
    s.xs = p;
    p += (L + 1) * T * d;
    s.qkv = p;
    p += L * T * 3 * d;
    s.prob = p;
    p += L * a->H * T * T;
    s.hpre = p;
    p += L * T * a->ff;
    s.dx = p;
    p += T * d;
    s.dxn = p;
    p += T * d;
    s.datt = p;
    p += T * d;
    s.dP = p;
    p += T * T;
    s.hs = p;
    p += T * 3 * a->hd;
    s.gt = p;
    return s;
}

/* ---- building blocks (one thread each) ---------------------------------------- */

/* C (M, N; ldc) = op(A) op(B) + beta C, row major; one cblas_sgemm. */
static void gemm(int ta, int tb, size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B, size_t ldb,
                 float beta, float *C, size_t ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
                1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* Y (rows, n) = bias + X W^T (or Y += bias + X W^T with accumulate), as
 * model.c computes a linear layer: the bias first, the product added with
 * beta = 1. X (rows, k), W (n, k). */
static void linear(float *Y, const float *X, const float *W, const float *bias, size_t rows, size_t n, size_t k,
                   int accumulate)
{
    for (size_t r = 0; r < rows; r++) {
        float *y = Y + r * n;
        if (accumulate) {
#pragma omp simd
            for (size_t j = 0; j < n; j++)
                y[j] += bias[j];
        } else {
            memcpy(y, bias, n * sizeof *y);
        }
    }
    gemm(0, 1, rows, n, k, X, k, W, k, 1.0f, Y, n);
}

/* LayerNorm backward over rows: dx (rows, C) += d/dx of sum(dy * ln(x)),
 * with y = xhat w + b, xhat = (x - mean) / std (biased variance, statistics
 * recomputed here in float64 from x); pw, pb (C) += the column sums of
 * dy * xhat and dy, row by row. */
static void ln_bwd(float *dx, const float *dy, const float *x, const float *w, float *pw, float *pb, size_t rows,
                   size_t C, float eps)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C, *g = dy + r * C;
        float *o = dx + r * C;
        double sx = 0.0, sxx = 0.0;
#pragma omp simd reduction(+ : sx, sxx)
        for (size_t i = 0; i < C; i++) {
            sx += xr[i];
            sxx += (double)xr[i] * xr[i];
        }
        const double mean = sx / (double)C, rstd = 1.0 / sqrt(sxx / (double)C - mean * mean + (double)eps);
        double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
        for (size_t i = 0; i < C; i++) {
            const double xh = ((double)xr[i] - mean) * rstd, gw = (double)g[i] * w[i];
            s1 += gw;
            s2 += gw * xh;
        }
        s1 /= (double)C;
        s2 /= (double)C;
#pragma omp simd
        for (size_t i = 0; i < C; i++) {
            const double xh = ((double)xr[i] - mean) * rstd, gw = (double)g[i] * w[i];
            o[i] += (float)(rstd * (gw - s1 - xh * s2));
            pw[i] += (float)((double)g[i] * xh);
            pb[i] += g[i];
        }
    }
}

/* p (w) = column sums of G (rows, w), row by row. */
static void colsum(float *p, const float *G, size_t rows, size_t w)
{
    memset(p, 0, w * sizeof *p);
    for (size_t r = 0; r < rows; r++) {
#pragma omp simd
        for (size_t j = 0; j < w; j++)
            p[j] += G[r * w + j];
    }
}

/* Causal attention of every head of one window: qkv (T, 3d) after rotary,
 * prob (H, T, T) out, att (T, d) out. */
static void attention_fwd(const qid_tacts *a, const float *qkv, float *prob, float *att)
{
    const size_t T = a->T, hd = a->hd, ld = 3 * a->d;
    const float scale = (float)pow((double)hd, -0.5);
    for (size_t j = 0; j < a->H; j++) {
        const float *q = qkv + j * 3 * hd, *k = q + hd, *v = q + 2 * hd;
        float *P = prob + j * T * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, scale, q, (int)ld, k, (int)ld,
                    0.0f, P, (int)T);
        for (size_t i = 0; i < T; i++) {
            float *row = P + i * T;
            qid_k_softmax(row, i + 1);
            memset(row + i + 1, 0, (T - i - 1) * sizeof *row);
        }
        gemm(0, 0, T, hd, T, P, T, v, ld, 0.0f, att + j * hd, a->d);
    }
}

/* Its backward: datt (T, d) -> dqkv (T, 3d) (gradients of the post-rotary
 * q and k, and of v); dP (T, T) and hs (T, 3hd) are scratch. */
static void attention_bwd(const qid_tacts *a, const float *qkv, const float *prob, const float *datt, float *dqkv,
                          float *dP, float *hs)
{
    const size_t T = a->T, hd = a->hd, ld = 3 * a->d, d = a->d;
    const float scale = (float)pow((double)hd, -0.5);
    for (size_t j = 0; j < a->H; j++) {
        const float *q = qkv + j * 3 * hd, *k = q + hd, *v = q + 2 * hd;
        const float *P = prob + j * T * T, *dO = datt + j * hd;
        gemm(0, 1, T, T, hd, dO, d, v, ld, 0.0f, dP, T);
        gemm(1, 0, T, hd, T, P, T, dO, d, 0.0f, dqkv + j * 3 * hd + 2 * hd, ld);
        for (size_t i = 0; i < T; i++) {
            const float *pr = P + i * T;
            float *g = dP + i * T;
            double s = 0.0;
#pragma omp simd reduction(+ : s)
            for (size_t t = 0; t <= i; t++)
                s += (double)pr[t] * g[t];
            const float sf = (float)s;
#pragma omp simd
            for (size_t t = 0; t <= i; t++)
                g[t] = pr[t] * (g[t] - sf) * scale;
            memset(g + i + 1, 0, (T - i - 1) * sizeof *g);
        }
        gemm(0, 0, T, hd, T, dP, T, k, ld, 0.0f, dqkv + j * 3 * hd, ld);
        gemm(1, 0, T, hd, T, dP, T, q, ld, 0.0f, hs, hd);
        for (size_t i = 0; i < T; i++)
            memcpy(dqkv + i * ld + j * 3 * hd + hd, hs + i * hd, hd * sizeof *hs);
    }
}

/* Rotary embedding of q and k of one window's qkv (T, 3d), with the table
 * sin (forward) or -sin (its transpose, for gradients). */
static void rope(const qid_tacts *a, float *qkv, const float *sin_t)
{
    if (a->rd == 0) return;
    qid_k_rope(qkv, a->T, 3 * a->d, a->H, 3 * a->hd, a->rd, a->rope_cos, sin_t);
    qid_k_rope(qkv + a->hd, a->T, 3 * a->d, a->H, 3 * a->hd, a->rd, a->rope_cos, sin_t);
}

/* dh (n) *= gelu'(x): Phi(x) + x phi(x), Phi from the stored gelu(x) = x Phi(x)
 * (near 0: 1/2 + x phi(0)), phi through the vectorized exp; t (n) scratch. */
static void gelu_bwd(float *dh, const float *x, const float *h, size_t n, float *t)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        t[i] = -0.5f * x[i] * x[i];
    qid_k_exp(t, t, n);
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        const float xi = x[i];
        const float cdf = fabsf(xi) > 1e-3f ? h[i] / xi : 0.5f + INV_SQRT_2PI * xi;
        dh[i] *= cdf + xi * t[i] * INV_SQRT_2PI;
    }
}

/* ---- one window: forward, loss, and the backward of the activations ------------ */

/* Runs window w of the batch through the model on the calling thread; with
 * grad, also d loss / d logits (scaled by inv) and every activation
 * gradient back to the embedding, leaving the operands of the weight
 * products in the shared arrays and the bias and norm sums in part. */
static void window_pass(const qid_tmodel *m, qid_tacts *a, size_t w, int grad, float inv, const wscratch *s)
{
    const size_t T = a->T, d = a->d, ff = a->ff, V = a->V, L = a->L, NM = a->N_max, H = a->H;
    const size_t r0 = w * T;
    const float eps = (float)m->cfg.norm_eps, *p = m->param;
    const uint32_t *tok = a->tokens + r0;
    const float *E = p + m->offset[0];
    for (size_t t = 0; t < T; t++)
        memcpy(s->xs + t * d, E + (size_t)tok[t] * d, d * sizeof(float));
    for (size_t l = 0; l < L; l++) {
        const float *x = s->xs + l * T * d;
        float *xo = s->xs + (l + 1) * T * d, *qkv = s->qkv + l * T * 3 * d, *hpre = s->hpre + l * T * ff;
        float *xn1 = a->xn1 + (l * NM + r0) * d, *xn2 = a->xn2 + (l * NM + r0) * d;
        float *att = a->att + (l * NM + r0) * d, *hact = a->hact + (l * NM + r0) * ff;
        qid_k_layernorm(xn1, x, p + layer_off(m, l, P_LN1_W), p + layer_off(m, l, P_LN1_B), T, d, eps);
        linear(qkv, xn1, p + layer_off(m, l, P_QKV_W), p + layer_off(m, l, P_QKV_B), T, 3 * d, d, 0);
        rope(a, qkv, a->rope_sin);
        attention_fwd(a, qkv, s->prob + l * H * T * T, att);
        qid_k_layernorm(xn2, x, p + layer_off(m, l, P_LN2_W), p + layer_off(m, l, P_LN2_B), T, d, eps);
        memcpy(xo, x, T * d * sizeof *xo);
        linear(xo, att, p + layer_off(m, l, P_OUT_W), p + layer_off(m, l, P_OUT_B), T, d, d, 1);
        linear(hpre, xn2, p + layer_off(m, l, P_UP_W), p + layer_off(m, l, P_UP_B), T, ff, d, 0);
        memcpy(hact, hpre, T * ff * sizeof *hact);
        qid_k_gelu(hact, T * ff);
        linear(xo, hact, p + layer_off(m, l, P_DOWN_W), p + layer_off(m, l, P_DOWN_B), T, d, ff, 1);
    }
    /* head: final norm, logits, cross-entropy of every position that predicts a token */
    float *xnf = a->xnf + r0 * d, *lg = a->logits + r0 * V;
    qid_k_layernorm(xnf, s->xs + L * T * d, p + global_off(m, G_FINAL_W), p + global_off(m, G_FINAL_B), T, d, eps);
    gemm(0, 1, T, V, d, xnf, d, p + global_off(m, G_HEAD), d, 0.0f, lg, V);
    double nll = 0.0;
    a->bad[w] = 0;
    for (size_t t = 0; t + 1 < T; t++) {
        float *row = lg + t * V;
        const double lse = qid_k_logsumexp(row, V), v = lse - (double)row[tok[t + 1]];
        if (!isfinite(v) && !a->bad[w]) a->bad[w] = t + 1;
        nll += v;
        if (grad) { /* d loss / d logits = (softmax - onehot) * inv */
#pragma omp simd
            for (size_t k = 0; k < V; k++)
                row[k] = (float)((double)row[k] - lse);
            qid_k_exp(row, row, V);
#pragma omp simd
            for (size_t k = 0; k < V; k++)
                row[k] *= inv;
            row[tok[t + 1]] -= inv;
        }
    }
    a->window_nll[w] = nll;
    if (!grad || a->bad[w]) return;
    memset(lg + (T - 1) * V, 0, V * sizeof *lg); /* the last position predicts nothing */

    /* backward through the head and the layers */
    float *part = a->part + w * a->part_w, *pf = part + L * a->layer_w;
    memset(pf, 0, 2 * d * sizeof *pf);
    gemm(0, 0, T, d, V, lg, V, p + global_off(m, G_HEAD), d, 0.0f, s->dxn, d);
    memset(s->dx, 0, T * d * sizeof *s->dx);
    ln_bwd(s->dx, s->dxn, s->xs + L * T * d, p + global_off(m, G_FINAL_W), pf, pf + d, T, d, eps);
    for (size_t l = L; l-- > 0;) {
        const float *x = s->xs + l * T * d, *qkv = s->qkv + l * T * 3 * d, *hpre = s->hpre + l * T * ff;
        const float *hact = a->hact + (l * NM + r0) * ff;
        float *g = a->g + (l * NM + r0) * d, *dh = a->dh + (l * NM + r0) * ff, *dq = a->dqkv + (l * NM + r0) * 3 * d;
        float *pl = part + l * a->layer_w;
        memcpy(g, s->dx, T * d * sizeof *g); /* d loss / d x[l+1] */
        colsum(pl + a->po[PO_G], g, T, d);
        /* MLP */
        gemm(0, 0, T, ff, d, g, d, p + layer_off(m, l, P_DOWN_W), ff, 0.0f, dh, ff);
        gelu_bwd(dh, hpre, hact, T * ff, s->gt);
        colsum(pl + a->po[PO_DH], dh, T, ff);
        gemm(0, 0, T, d, ff, dh, ff, p + layer_off(m, l, P_UP_W), d, 0.0f, s->dxn, d);
        memset(pl + a->po[PO_LN1W], 0, 4 * d * sizeof *pl);
        ln_bwd(s->dx, s->dxn, x, p + layer_off(m, l, P_LN2_W), pl + a->po[PO_LN2W], pl + a->po[PO_LN2B], T, d, eps);
        /* attention */
        gemm(0, 0, T, d, d, g, d, p + layer_off(m, l, P_OUT_W), d, 0.0f, s->datt, d);
        attention_bwd(a, qkv, s->prob + l * H * T * T, s->datt, dq, s->dP, s->hs);
        rope(a, dq, a->rope_nsin);
        colsum(pl + a->po[PO_QKV], dq, T, 3 * d);
        gemm(0, 0, T, d, 3 * d, dq, 3 * d, p + layer_off(m, l, P_QKV_W), d, 0.0f, s->dxn, d);
        ln_bwd(s->dx, s->dxn, x, p + layer_off(m, l, P_LN1_W), pl + a->po[PO_LN1W], pl + a->po[PO_LN1B], T, d, eps);
    }
    memcpy(a->dx0 + r0 * d, s->dx, T * d * sizeof *s->dx);
}

/* Runs every window of the batch (one parallel region over windows). */
static int run_windows(const qid_tmodel *m, qid_tacts *a, const uint32_t *tokens, size_t n_windows, int grad,
                       double *loss, double *window_nll, qid_error *err)
{
    const qid_model_config *c = &m->cfg;
    if (n_windows == 0 || n_windows > a->B_max)
        return qid_error_set(err, QID_E_INVALID, "batch of %zu windows outside 1..%zu", n_windows, a->B_max);
    if (a->d != (size_t)c->d_model || a->V != (size_t)c->vocab_size || a->L != (size_t)c->n_layers ||
        a->ff != (size_t)c->d_ff || a->H != (size_t)c->n_heads)
        return qid_error_set(err, QID_E_INVALID, "the workspace was made for another model");
    const size_t T = a->T, N = n_windows * T, V = a->V;
    for (size_t i = 0; i < N; i++)
        if (tokens[i] >= V)
            return qid_error_set(err, QID_E_INVALID,
                                 "token id %" PRIu32 " at window %zu position %zu is outside the vocabulary (%zu)",
                                 tokens[i], i / T, i % T, V);
    a->B = n_windows;
    a->N = N;
    memcpy(a->tokens, tokens, N * sizeof *tokens);
    ensure_scratch(a);
    const float inv = T > 1 ? (float)(1.0 / (double)(n_windows * (T - 1))) : 0.0f;
    const int saved = qid_blas_single_begin();
#pragma omp parallel
    {
        const wscratch s = scratch_of(a, (size_t)omp_get_thread_num());
#pragma omp for schedule(dynamic, 1)
        for (size_t w = 0; w < n_windows; w++)
            window_pass(m, a, w, grad, inv, &s);
    }
    qid_blas_single_end(saved);
    double total = 0.0;
    for (size_t w = 0; w < n_windows; w++) {
        if (a->bad[w])
            return qid_error_set(err, QID_E_NUMERIC, "non-finite loss at window %zu position %zu", w, a->bad[w] - 1);
        if (window_nll) window_nll[w] = a->window_nll[w];
        total += a->window_nll[w];
    }
    *loss = T > 1 ? total / (double)(n_windows * (T - 1)) : 0.0;
    return QID_OK;
}

int qid_tmodel_forward(const qid_tmodel *m, qid_tacts *a, const uint32_t *tokens, size_t n_windows, double *loss,
                       double *window_nll, qid_error *err)
{
    return run_windows(m, a, tokens, n_windows, 0, loss, window_nll, err);
}

/* ---- the weight gradients ------------------------------------------------------- */

/* One piece of the weight-gradient work: a tile of C = A^T B (the product
 * over all rows of the batch), the sum over windows of a span of the
 * partial sums, or the embedding rows of a range of the vocabulary. */
typedef struct grad_job {
    int kind; /* 0 product tile, 1 partial sums, 2 embedding rows */
    const float *A, *B;
    size_t lda, ldb, M, Nc, K, ldc;
    float *C;
    size_t off, w; /* partial sums: columns [off, off + w) of part into C */
    size_t v0, v1; /* embedding: vocabulary rows [v0, v1) */
} grad_job;

#define JOB_ROWS 64  /* rows of a product tile */
#define JOB_COLS 256 /* columns of a product tile */

/* Adds the tiles of dW (M, Nc) = G^T X, G (K, M; ldg), X (K, Nc; ldx). */
static size_t add_product(grad_job *j, size_t n, const float *G, size_t ldg, const float *X, size_t ldx, size_t M,
                          size_t Nc, size_t K, float *dW)
{
    for (size_t r0 = 0; r0 < M; r0 += JOB_ROWS)
        for (size_t c0 = 0; c0 < Nc; c0 += JOB_COLS)
            j[n++] = (grad_job){.kind = 0,
                                .A = G + r0,
                                .lda = ldg,
                                .B = X + c0,
                                .ldb = ldx,
                                .M = M - r0 < JOB_ROWS ? M - r0 : JOB_ROWS,
                                .Nc = Nc - c0 < JOB_COLS ? Nc - c0 : JOB_COLS,
                                .K = K,
                                .C = dW + r0 * Nc + c0,
                                .ldc = Nc};
    return n;
}

/* Product tiles of an (M, Nc) gradient. */
static size_t tiles(size_t M, size_t Nc) { return ((M + JOB_ROWS - 1) / JOB_ROWS) * ((Nc + JOB_COLS - 1) / JOB_COLS); }

static size_t add_sum(grad_job *j, size_t n, size_t off, size_t w, float *out)
{
    j[n++] = (grad_job){.kind = 1, .off = off, .w = w, .C = out};
    return n;
}

static void run_job(const grad_job *j, qid_tmodel *m, const qid_tacts *a)
{
    if (j->kind == 0) {
        gemm(1, 0, j->M, j->Nc, j->K, j->A, j->lda, j->B, j->ldb, 0.0f, j->C, j->ldc);
    } else if (j->kind == 1) {
        double acc[256];
        for (size_t c0 = 0; c0 < j->w; c0 += 256) {
            const size_t n = j->w - c0 < 256 ? j->w - c0 : 256;
            memset(acc, 0, n * sizeof *acc);
            for (size_t w = 0; w < a->B; w++) {
                const float *p = a->part + w * a->part_w + j->off + c0;
#pragma omp simd
                for (size_t k = 0; k < n; k++)
                    acc[k] += p[k];
            }
            for (size_t k = 0; k < n; k++)
                j->C[c0 + k] = (float)acc[k];
        }
    } else {
        const size_t d = a->d;
        float *dE = m->grad + m->offset[0];
        memset(dE + j->v0 * d, 0, (j->v1 - j->v0) * d * sizeof *dE);
        for (size_t r = 0; r < a->N; r++) {
            const size_t t = a->tokens[r];
            if (t < j->v0 || t >= j->v1) continue;
            float *e = dE + t * d;
            const float *g = a->dx0 + r * d;
#pragma omp simd
            for (size_t k = 0; k < d; k++)
                e[k] += g[k];
        }
    }
}

int qid_tmodel_grad(qid_tmodel *m, qid_tacts *a, const uint32_t *tokens, size_t n_windows, double *loss,
                    double *window_nll, qid_error *err)
{
    int rc = run_windows(m, a, tokens, n_windows, 1, loss, window_nll, err);
    if (rc) return rc;
    const size_t N = a->N, d = a->d, ff = a->ff, V = a->V, L = a->L, NM = a->N_max;
    const size_t n_jobs =
        L * (tiles(d, ff) + tiles(ff, d) + tiles(3 * d, d) + tiles(d, d) + 8) + tiles(V, d) + 2 + (V + 63) / 64;
    grad_job *jobs = qid_malloc(qid_mul_size(n_jobs, sizeof *jobs), "gradient jobs");
    size_t n = 0;
    float *gr = m->grad;
    for (size_t l = 0; l < L; l++) {
        const float *g = a->g + l * NM * d, *dh = a->dh + l * NM * ff, *dq = a->dqkv + l * NM * 3 * d;
        n = add_product(jobs, n, g, d, a->hact + l * NM * ff, ff, d, ff, N, gr + layer_off(m, l, P_DOWN_W));
        n = add_product(jobs, n, dh, ff, a->xn2 + l * NM * d, d, ff, d, N, gr + layer_off(m, l, P_UP_W));
        n = add_product(jobs, n, dq, 3 * d, a->xn1 + l * NM * d, d, 3 * d, d, N, gr + layer_off(m, l, P_QKV_W));
        n = add_product(jobs, n, g, d, a->att + l * NM * d, d, d, d, N, gr + layer_off(m, l, P_OUT_W));
        const size_t o = l * a->layer_w;
        n = add_sum(jobs, n, o + a->po[PO_G], d, gr + layer_off(m, l, P_DOWN_B));
        n = add_sum(jobs, n, o + a->po[PO_G], d, gr + layer_off(m, l, P_OUT_B));
        n = add_sum(jobs, n, o + a->po[PO_DH], ff, gr + layer_off(m, l, P_UP_B));
        n = add_sum(jobs, n, o + a->po[PO_QKV], 3 * d, gr + layer_off(m, l, P_QKV_B));
        n = add_sum(jobs, n, o + a->po[PO_LN1W], d, gr + layer_off(m, l, P_LN1_W));
        n = add_sum(jobs, n, o + a->po[PO_LN1B], d, gr + layer_off(m, l, P_LN1_B));
        n = add_sum(jobs, n, o + a->po[PO_LN2W], d, gr + layer_off(m, l, P_LN2_W));
        n = add_sum(jobs, n, o + a->po[PO_LN2B], d, gr + layer_off(m, l, P_LN2_B));
    }
    n = add_product(jobs, n, a->logits, V, a->xnf, d, V, d, N, gr + global_off(m, G_HEAD));
    n = add_sum(jobs, n, L * a->layer_w, d, gr + global_off(m, G_FINAL_W));
    n = add_sum(jobs, n, L * a->layer_w + d, d, gr + global_off(m, G_FINAL_B));
    for (size_t v0 = 0; v0 < V; v0 += 64)
        jobs[n++] = (grad_job){.kind = 2, .v0 = v0, .v1 = v0 + 64 < V ? v0 + 64 : V};
    QID_CHECK(n <= n_jobs, "gradient job list overflow (%zu > %zu)", n, n_jobs);
    const int saved = qid_blas_single_begin();
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t k = 0; k < n; k++)
        run_job(&jobs[k], m, a);
    qid_blas_single_end(saved);
    free(jobs);
    return QID_OK;
}

double qid_tmodel_step_flops(const qid_model_config *c, size_t n_windows, size_t T)
{
    const double N = (double)n_windows * (double)T, d = (double)c->d_model, ff = (double)c->d_ff;
    const double V = (double)c->vocab_size, L = (double)c->n_layers;
    const double linear = 2.0 * N * (L * (3 * d * d + d * d + 2 * ff * d) + V * d); /* forward products */
    const double attn = L * 2.0 * N * (double)T * d * 2.0;                          /* q.k and p.v, full T x T */
    return 3.0 * linear + 3.0 * attn; /* backward: twice the forward's products */
}
