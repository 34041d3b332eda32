/* test_model.c - the streamed forward pass (model.h) against Hugging Face
 * transformers: logits and losses of the tiny fixtures written by
 * tools/make_hf_fixtures.py (gpt-neox with partial rotary and parallel
 * residual, llama with grouped-query attention, qwen2 with q/k/v biases,
 * llama with tied embeddings; gpt2 with its defaults, with scores divided
 * by layer + 1 and without the 1/sqrt(head_dim) scaling, opt pre-LN and post-LN with project_in/out, bloom with 6
 * heads), imported with qid_import_safetensors; RTN, MX, NF4 through the weight hook and GPTQ through the activation
 * hook on the new families; the weight and activation hooks; the reference stream and KL; the stepping API's checks;
 * bad inputs (long windows, ids outside the vocabulary, NaN weights); and peak memory of a streamed pass over a
 * 48-layer model. */
#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cJSON.h>

#include "checkpoint.h"
#include "gptq.h"
#include "h5io.h"
#include "import.h"
#include "kernels.h"
#include "model.h"
#include "quant.h"
#include "quantize.h"
#include "tap.h"

#define FIX   "test/fixtures/hf"
#define NW    3
#define SEQ   16
#define VOCAB 96

static uint32_t tokens[NW * SEQ];

static void load_tokens(void)
{
    size_t len = 0;
    char *raw = tap_read_file(FIX "/tokens.u16", &len);
    if (len != sizeof(uint16_t) * NW * SEQ) bail("tokens.u16 has %zu bytes", len);
    for (size_t i = 0; i < NW * SEQ; i++) {
        uint16_t v;
        memcpy(&v, raw + 2 * i, 2);
        tokens[i] = v;
    }
    free(raw);
}

/* Imports fixture dir into the temporary directory; returns the path (static). */
static qid_model *open_model(const char *path)
{
    qid_model *m = NULL;
    qid_error err;
    if (qid_model_open(path, &m, &err)) bail("cannot open %s: %s", path, err.msg);
    return m;
}

/* ---- reference data ------------------------------------------------------ */

typedef struct {
    float logits[NW * SEQ * VOCAB];
    double loss;
    double window[NW];
} reference;

static void load_reference(const char *name, reference *r)
{
    char path[256];
    size_t len = 0;
    snprintf(path, sizeof path, FIX "/%s/logits.f32", name);
    char *raw = tap_read_file(path, &len);
    if (len != sizeof r->logits) bail("%s has %zu bytes", path, len);
    memcpy(r->logits, raw, len);
    free(raw);
    snprintf(path, sizeof path, FIX "/%s/reference.json", name);
    char *text = tap_read_file(path, &len);
    cJSON *j = cJSON_Parse(text);
    if (!j) bail("cannot parse %s", path);
    r->loss = cJSON_GetObjectItem(j, "loss")->valuedouble;
    const cJSON *w = cJSON_GetObjectItem(j, "per_window_nll_sum");
    for (int i = 0; i < NW; i++)
        r->window[i] = cJSON_GetArrayItem(w, i)->valuedouble;
    cJSON_Delete(j);
    free(text);
}

/* Sum over windows of the NLL of positions from..SEQ-2, in float64 from logits. */
static void nll_from_logits(const float *logits, size_t from, double *window)
{
    for (size_t w = 0; w < NW; w++) {
        window[w] = 0.0;
        for (size_t p = from; p + 1 < SEQ; p++) {
            const float *l = logits + (w * SEQ + p) * VOCAB;
            double mx = l[0], s = 0.0;
            for (int v = 1; v < VOCAB; v++)
                mx = l[v] > mx ? l[v] : mx;
            for (int v = 0; v < VOCAB; v++)
                s += exp((double)l[v] - mx);
            window[w] += mx + log(s) - l[tokens[w * SEQ + p + 1]];
        }
    }
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* ---- 1. logits and loss against transformers ------------------------------ */

static float got_logits[NW * SEQ * VOCAB];

static void check_fixture(const char *name)
{
    reference *r = malloc(sizeof *r);
    load_reference(name, r);
    const char *path = tap_import_fixture(name, -1, -1);
    qid_model *m = open_model(path);
    double win[NW];
    qid_forward_opts o = {.window_nll = win, .logits = got_logits};
    qid_error err;
    int rc = qid_model_forward(m, tokens, NW, SEQ, &o, &err);
    ok(rc == QID_OK, "%s: forward pass runs%s%s", name, rc ? ": " : "", rc ? err.msg : "");
    double dl = max_abs_diff(got_logits, r->logits, NW * SEQ * VOCAB);
    ok(dl <= 1e-4, "%s: max |logit - transformers| = %.3g (tolerance 1e-4)", name, dl);
    double loss = (win[0] + win[1] + win[2]) / (NW * (SEQ - 1));
    double rel = fabs(loss - r->loss) / r->loss;
    ok(rel <= 1e-5, "%s: loss %.9f vs transformers %.9f, diff %.3g, relative %.3g (tolerance 1e-5)", name, loss,
       r->loss, loss - r->loss, rel);
    double worst = 0.0;
    for (int w = 0; w < NW; w++) {
        double e = fabs(win[w] - r->window[w]) / r->window[w];
        worst = e > worst ? e : worst;
    }
    ok(worst <= 1e-5, "%s: per-window NLL sums within %.3g relative of transformers' (tolerance 1e-5)", name, worst);

    /* second half only (llama.cpp): positions 8..14 predict tokens 9..15 */
    double half[NW], want[NW];
    qid_forward_opts oh = {.window_nll = half, .score_from = SEQ / 2};
    rc = qid_model_forward(m, tokens, NW, SEQ, &oh, &err);
    nll_from_logits(r->logits, SEQ / 2, want);
    worst = 0.0;
    for (int w = 0; w < NW; w++)
        worst = fmax(worst, fabs(half[w] - want[w]) / want[w]);
    ok(rc == QID_OK && worst <= 1e-5 && qid_scored_per_window(SEQ, SEQ / 2) == 7,
       "%s: second-half scoring (7 predictions a window) matches NLL of transformers' logits within %.3g", name, worst);
    qid_model_free(m);
    free(r);
}

/* ---- 2. hooks ----------------------------------------------------------- */

/* Rounds every tensor (or only LINEAR ones) to float16 and back. */
typedef struct {
    int linear_only;
    int calls;
    int by_kind[4];
} round_ctx;

static void round_f16(float *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h = qid_f32_to_f16(w[i]);
        qid_f16_to_f32(&h, &w[i], 1);
    }
}

static int round_hook(void *ctx, const qid_tensor_spec *t, float *w, qid_error *err)
{
    round_ctx *c = ctx;
    c->calls++;
    c->by_kind[t->kind]++;
    if (!c->linear_only || t->kind == QID_TENSOR_LINEAR) round_f16(w, (size_t)qid_tensor_numel(t));
    return QID_OK;
}

typedef struct {
    char names[64][48];
    int layer[64];
    size_t rows[64], ldx[64];
    int n;
    int round; /* round w to float16 in place */
    float first_x[32];
    int fail_at; /* return an error on this call (1-based), 0 never */
} act_ctx;

static int act_hook(void *ctx, const qid_tensor_spec *t, const float *x, size_t rows, size_t ldx, float *w,
                    qid_error *err)
{
    act_ctx *c = ctx;
    if (c->n == 0) memcpy(c->first_x, x, sizeof c->first_x);
    if (c->n < 64) {
        snprintf(c->names[c->n], 48, "%s", t->name);
        c->layer[c->n] = t->layer;
        c->rows[c->n] = rows;
        c->ldx[c->n] = ldx;
    }
    c->n++;
    if (c->fail_at == c->n) return qid_error_set(err, QID_E_NUMERIC, "hook says no");
    if (c->round) round_f16(w, (size_t)qid_tensor_numel(t));
    return QID_OK;
}

static void check_hooks(void)
{
    const char *p32 = tap_import_fixture("gpt-neox-tiny", -1, -1),
               *p16 = tap_import_fixture("gpt-neox-tiny-fp16", -1, -1);
    qid_model *m = open_model(p32), *m16 = open_model(p16);
    static float l16[NW * SEQ * VOCAB], lh[NW * SEQ * VOCAB], la[NW * SEQ * VOCAB], lw[NW * SEQ * VOCAB];
    double w16[NW], wh[NW], wa[NW], ww[NW], base[NW], kl[NW], refn[NW];
    qid_error err;
    qid_forward_opts o16 = {.window_nll = w16, .logits = l16};
    int rc = qid_model_forward(m16, tokens, NW, SEQ, &o16, &err);
    ok(rc == QID_OK, "gpt-neox-tiny-fp16 (float16 storage) runs");

    /* a weight hook rounding everything to float16 = the float16 checkpoint, bit for bit */
    round_ctx rc_all = {.linear_only = 0};
    qid_forward_opts oh = {.window_nll = wh, .logits = lh, .weight_hook = round_hook, .weight_ctx = &rc_all};
    rc = qid_model_forward(m, tokens, NW, SEQ, &oh, &err);
    ok(rc == QID_OK && memcmp(lh, l16, sizeof lh) == 0,
       "weight hook rounding every tensor to float16 gives the float16 checkpoint's logits exactly");
    size_t n_all = 0;
    free(qid_ckpt_tensors(qid_model_cfg(m), &n_all));
    ok(rc_all.calls == (int)n_all, "weight hook called once per tensor (%d calls for %zu tensors)", rc_all.calls,
       n_all);
    ok(rc_all.by_kind[QID_TENSOR_LINEAR] == 8 && rc_all.by_kind[QID_TENSOR_EMBED] == 2,
       "weight hook sees 8 linear weights (2 layers x qkv, out, up, down) and 2 embeddings");

    /* an activation hook rounding linear weights right before use = a weight hook on LINEAR only */
    round_ctx rc_lin = {.linear_only = 1};
    qid_forward_opts ow = {.window_nll = ww, .logits = lw, .weight_hook = round_hook, .weight_ctx = &rc_lin};
    rc = qid_model_forward(m, tokens, NW, SEQ, &ow, &err);
    act_ctx *ac = calloc(1, sizeof *ac);
    ac->round = 1;
    qid_forward_opts oa = {.window_nll = wa, .logits = la, .act_hook = act_hook, .act_ctx = ac};
    rc |= qid_model_forward(m, tokens, NW, SEQ, &oa, &err);
    ok(rc == QID_OK && memcmp(la, lw, sizeof la) == 0,
       "activation hook replacing each linear weight before use = weight hook on linears (logits equal)");
    ok(ac->n == 8 && strcmp(ac->names[0], "attn.qkv.weight") == 0 && strcmp(ac->names[1], "attn.out.weight") == 0 &&
           strcmp(ac->names[2], "mlp.up.weight") == 0 && strcmp(ac->names[3], "mlp.down.weight") == 0 &&
           ac->layer[4] == 1,
       "activation hook order: qkv, out, up, down per layer (%d calls)", ac->n);
    ok(ac->rows[0] == NW * SEQ && ac->ldx[0] == 32 && ac->ldx[3] == 64,
       "activation hook sees all %d rows; ldx = in_features (32, 64 for mlp.down)", NW * SEQ);
    /* the first hook's x is ln1(embedding) */
    {
        const qid_ckpt *ck = qid_model_ckpt(m);
        size_t ng = 0;
        qid_tensor_spec *g = qid_ckpt_layer_tensors(&ck->cfg, -1, &ng), *l0 = qid_ckpt_layer_tensors(&ck->cfg, 0, &ng);
        static float E[VOCAB * 32], lw1[32], lb1[32], want[32];
        qid_ckpt_read_f32(ck, &g[0], E, &err);
        qid_ckpt_read_f32(ck, &l0[0], lw1, &err);
        qid_ckpt_read_f32(ck, &l0[1], lb1, &err);
        qid_k_layernorm_ref(want, E + tokens[0] * 32, lw1, lb1, 1, 32, 1e-5f);
        double d = max_abs_diff(ac->first_x, want, 32);
        ok(d < 1e-5, "first activation hook input is ln1(embedding of token 0), within %.2g (tolerance 1e-5)", d);
        free(g);
        free(l0);
    }

    /* a calibration batch: the hook sees it, the evaluated batch runs with what the hook left */
    uint32_t calib[2 * 10];
    for (int i = 0; i < 20; i++)
        calib[i] = (uint32_t)(i * 7 % VOCAB);
    act_ctx *cc = calloc(1, sizeof *cc);
    cc->round = 1;
    qid_forward_opts oc = {.window_nll = wa,
                           .logits = la,
                           .act_hook = act_hook,
                           .act_ctx = cc,
                           .calib_tokens = calib,
                           .calib_windows = 2,
                           .calib_seq_len = 10};
    rc = qid_model_forward(m, tokens, NW, SEQ, &oc, &err);
    ok(rc == QID_OK && cc->n == 8 && cc->rows[0] == 20 && memcmp(la, lw, sizeof la) == 0,
       "calibration batch: the hook sees its 20 rows only; the evaluated batch uses the replaced weights");

    /* the reference stream and KL */
    qid_forward_opts ok_kl = {.window_nll = wh,
                              .ref_window_nll = refn,
                              .window_kl = kl,
                              .kl = 1,
                              .weight_hook = round_hook,
                              .weight_ctx = &rc_all};
    /* same rows in the head as the kl run (no logits asked), so equal bit for bit */
    double w16n[NW];
    qid_forward_opts ob = {.window_nll = base}, o16n = {.window_nll = w16n};
    rc = qid_model_forward(m, tokens, NW, SEQ, &ok_kl, &err);
    rc |= qid_model_forward(m, tokens, NW, SEQ, &ob, &err);
    rc |= qid_model_forward(m16, tokens, NW, SEQ, &o16n, &err);
    ok(rc == QID_OK && memcmp(refn, base, sizeof base) == 0 && memcmp(wh, w16n, sizeof wh) == 0,
       "kl: the reference stream's NLL is the unhooked model's, the hooked stream's the float16 model's");
    ob.logits = la;
    rc = qid_model_forward(m, tokens, NW, SEQ, &ob, &err);
    double want_kl[NW] = {0};
    for (size_t w = 0; w < NW; w++)
        for (size_t p = 0; p + 1 < SEQ; p++) {
            const float *P = la + (w * SEQ + p) * VOCAB, *Q = l16 + (w * SEQ + p) * VOCAB;
            double lp = qid_k_logsumexp_ref(P, VOCAB), lq = qid_k_logsumexp_ref(Q, VOCAB);
            want_kl[w] += qid_k_kl_ref(P, Q, VOCAB, lp, lq);
        }
    double worst = 0.0;
    for (int w = 0; w < NW; w++)
        worst = fmax(worst, fabs(kl[w] - want_kl[w]));
    ok(worst < 1e-7 && kl[0] > 0,
       "kl: per-window KL(P16bit-rounded) = %.3e, %.3e, %.3e; from the two logit sets within %.2g", kl[0], kl[1], kl[2],
       worst);
    qid_forward_opts o0 = {.window_nll = wh, .window_kl = kl, .kl = 1};
    rc = qid_model_forward(m, tokens, NW, SEQ, &o0, &err);
    ok(rc == QID_OK && kl[0] == 0.0 && kl[1] == 0.0 && kl[2] == 0.0, "kl without a hook is exactly 0");

    /* a hook's error stops the pass and names the tensor */
    act_ctx *cf = calloc(1, sizeof *cf);
    cf->fail_at = 6;
    qid_forward_opts of = {.window_nll = wa, .act_hook = act_hook, .act_ctx = cf};
    rc = qid_model_forward(m, tokens, NW, SEQ, &of, &err);
    ok(rc == QID_E_NUMERIC, "an activation hook's error is returned");
    like(err.msg, "activation hook failed on '/layers/1/attn.out.weight': hook says no", "and names the tensor: %s",
         err.msg);
    free(ac);
    free(cc);
    free(cf);
    qid_model_free(m);
    qid_model_free(m16);
}

/* Rounds every tensor to bfloat16 and back (round to nearest even, as torch's .to(bfloat16)). */
static int bf16_hook(void *ctx, const qid_tensor_spec *t, float *w, qid_error *err)
{
    for (int64_t i = 0; i < qid_tensor_numel(t); i++) {
        uint16_t h = qid_f32_to_bf16(w[i]);
        qid_bf16_to_f32(&h, &w[i], 1);
    }
    return QID_OK;
}

/* bfloat16 storage, and the same logits whatever the thread count */
static void check_precision_threads(void)
{
    qid_model *m = open_model(tap_import_fixture("llama-tiny", -1, -1)),
              *mb = open_model(tap_import_fixture("llama-tiny-bf16-sharded", -1, -1));
    static float lb[NW * SEQ * VOCAB], lh[NW * SEQ * VOCAB], l1[NW * SEQ * VOCAB], l2[NW * SEQ * VOCAB];
    double wb[NW], wh[NW];
    qid_error err;
    qid_forward_opts ob = {.window_nll = wb, .logits = lb},
                     oh = {.window_nll = wh, .logits = lh, .weight_hook = bf16_hook};
    int rc = qid_model_forward(mb, tokens, NW, SEQ, &ob, &err);
    rc |= qid_model_forward(m, tokens, NW, SEQ, &oh, &err);
    ok(rc == QID_OK && memcmp(lb, lh, sizeof lb) == 0,
       "llama-tiny-bf16-sharded (bfloat16 storage) = llama-tiny with weights rounded to bfloat16, logits bit for bit");
    int saved = omp_get_max_threads();
    qid_forward_opts o1 = {.window_nll = wb, .logits = l1}, o2 = {.window_nll = wh, .logits = l2};
    omp_set_num_threads(1);
    rc = qid_model_forward(m, tokens, NW, SEQ, &o1, &err);
    omp_set_num_threads(saved > 1 ? saved : 2);
    rc |= qid_model_forward(m, tokens, NW, SEQ, &o2, &err);
    omp_set_num_threads(saved);
    double d = max_abs_diff(l1, l2, NW * SEQ * VOCAB);
    ok(rc == QID_OK && d <= 1e-5, "1 thread vs %d threads: max logit difference %.2g (tolerance 1e-5)",
       saved > 1 ? saved : 2, d);
    qid_model_free(m);
    qid_model_free(mb);
}

/* ---- 3. the stepping API ------------------------------------------------------ */

static void check_steps(void)
{
    qid_model *m = open_model(tap_import_fixture("llama-tiny", -1, -1));
    qid_error err;
    qid_batch *b = qid_batch_create(m, tokens, NW, SEQ, &err);
    ok(b && qid_batch_next_stage(b) == QID_STAGE_EMBED, "a new batch starts at the embedding stage");
    ok(qid_model_load(m, 1, &err) == QID_OK && qid_model_stage(m) == 1, "layer 1 loads");
    int rc = qid_batch_step(m, b, NULL, NULL, &err);
    ok(rc == QID_E_INVALID, "running layer 1 on a batch at the embedding stage fails");
    like(err.msg, "the batch is at stage -1 but stage 1 is loaded", "with: %s", err.msg);
    const qid_tensor_spec *s = NULL;
    float *kw = qid_model_tensor(m, "attn.k.weight", &s);
    ok(kw && s && s->shape[0] == 16 && s->shape[1] == 32 && s->layer == 1,
       "qid_model_tensor gives the loaded GQA k weight [16, 32] of layer 1");
    ok(qid_model_load(m, 2, &err) == QID_OK && qid_model_tensor(m, "lm_head.weight", NULL) &&
           qid_model_tensor(m, "final_norm.weight", NULL),
       "stage n_layers is the head: final norm and lm_head");
    ok(qid_model_load(m, 3, &err) == QID_E_INVALID && qid_model_stage(m) == QID_STAGE_NONE, "no stage past the head");
    qid_batch_free(b);
    qid_model_free(m);
}

/* ---- 4. bad inputs ----------------------------------------------------------- */

static void check_errors(void)
{
    const char *path = tap_import_fixture("gpt-neox-tiny", -1, -1);
    qid_model *m = open_model(path);
    qid_error err;
    double win[2];
    static uint32_t longw[65];
    qid_forward_opts o = {.window_nll = win};
    int rc = qid_model_forward(m, longw, 1, 65, &o, &err);
    ok(rc == QID_E_INVALID, "a window of 65 tokens on a model with max_seq_len 64 fails");
    like(err.msg, "window of 65 tokens is longer than the model's context (max_seq_len 64)", "with: %s", err.msg);
    ok(qid_model_forward(m, longw, 1, 64, &o, &err) == QID_OK, "a window of exactly 64 tokens runs");
    uint32_t bad[2 * 8] = {0};
    bad[11] = VOCAB;
    rc = qid_model_forward(m, bad, 2, 8, &o, &err);
    ok(rc == QID_E_INVALID, "a token id equal to the vocabulary size fails");
    like(err.msg, "token id 96 at window 1 position 3 is outside the vocabulary (96)", "with: %s", err.msg);
    qid_model_free(m);

    /* a checkpoint with a NaN weight: written by HDF5 directly (qid's writer refuses NaN) */
    char nanpath[512];
    snprintf(nanpath, sizeof nanpath, "%s/nan.h5", tap_tmpdir());
    qid_import_opts io = {.dir = FIX "/gpt-neox-tiny", .out = nanpath, .step = -1, .tokens = -1};
    if (qid_import_safetensors(&io, &err)) bail("import: %s", err.msg);
    hid_t f = H5Fopen(nanpath, H5F_ACC_RDWR, H5P_DEFAULT), d = H5Dopen2(f, "/layers/1/mlp.up.weight", H5P_DEFAULT);
    static float w[64 * 32];
    H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
    w[77] = NAN;
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
    H5Dclose(d);
    H5Fclose(f);
    m = open_model(nanpath);
    rc = qid_model_forward(m, tokens, NW, SEQ, &o, &err);
    ok(rc == QID_E_NUMERIC, "a NaN weight fails with a numeric error");
    like(err.msg, "non-finite weight nan at element 77 of tensor '/layers/1/mlp.up.weight'", "naming it: %s", err.msg);
    ok(strchr(err.msg, '\n') == NULL, "the message is one line");
    qid_model_free(m);
}

/* ---- 5. peak memory of a streamed pass -------------------------------------- */

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') v = strtol(line + kl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* Writes a gpt-neox checkpoint of n_layers layers of width d with small
 * random weights, one tensor in memory at a time. */
static void write_synthetic(const char *path, int n_layers, int d, int vocab)
{
    qid_model_config c = {.arch = QID_ARCH_GPT_NEOX,
                          .vocab_size = vocab,
                          .d_model = d,
                          .n_layers = n_layers,
                          .n_heads = d / 64,
                          .n_kv_heads = d / 64,
                          .head_dim = 64,
                          .d_ff = 4 * d,
                          .max_seq_len = 2048,
                          .rotary_dim = 16,
                          .rotary_pct = 0.25,
                          .rope_theta = 10000,
                          .norm_eps = 1e-5,
                          .parallel_residual = 1,
                          .qkv_bias = 1,
                          .o_bias = 1,
                          .mlp_bias = 1};
    qid_ckpt_meta meta = {.step = -1, .tokens_seen = -1, .dtype = QID_DTYPE_F32, .lr_frac = NAN};
    snprintf(meta.model, sizeof meta.model, "synthetic-%dx%d", n_layers, d);
    snprintf(meta.source_format, sizeof meta.source_format, "test");
    qid_ckpt_source src = {0};
    qid_error err;
    qid_ckpt_writer *wr = qid_ckpt_create(path, &c, &meta, &src, &err);
    if (!wr) bail("cannot create %s: %s", path, err.msg);
    size_t n = 0;
    qid_tensor_spec *t = qid_ckpt_tensors(&c, &n);
    uint64_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        size_t numel = (size_t)qid_tensor_numel(&t[i]);
        float *v = malloc(numel * sizeof *v);
        for (size_t j = 0; j < numel; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            float u = (float)((s >> 40) * 0x1p-24) - 0.5f;
            v[j] = t[i].kind == QID_TENSOR_NORM && strstr(t[i].name, "weight") ? 1.0f + 0.1f * u : 0.1f * u;
        }
        if (qid_ckpt_write_tensor(wr, &t[i], v, &err)) bail("write %s: %s", t[i].name, err.msg);
        free(v);
    }
    free(t);
    if (qid_ckpt_finish(wr, &err)) bail("finish: %s", err.msg);
}

static void check_memory(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/deep.h5", tap_tmpdir());
    write_synthetic(path, 48, 256, 512);
    qid_model *m = open_model(path);
    const qid_model_config *c = qid_model_cfg(m);
    const size_t B = 2, T = 128;
    double model_mb = (double)qid_params_total(c) * 4 / 1e6, layer_mb = (double)qid_model_layer_bytes(c) / 1e6;
    double act_mb = (double)qid_model_batch_bytes(c, B, T) / 1e6,
           embed_mb = (double)(c->vocab_size * c->d_model) * 4 / 1e6;
    uint32_t *tok = malloc(B * T * sizeof *tok);
    for (size_t i = 0; i < B * T; i++)
        tok[i] = (uint32_t)(i * 31 % 512);
    double win[2];
    qid_forward_opts o = {.window_nll = win};
    qid_error err;
    /* reset the high-water mark where the kernel allows it (Linux >= 4.0) */
    FILE *cr = fopen("/proc/self/clear_refs", "w");
    int reset = cr && fputs("5", cr) >= 0;
    if (cr) reset &= fclose(cr) == 0;
    long rss0 = status_kb("VmRSS"), hwm0 = status_kb("VmHWM");
    int rc = qid_model_forward(m, tok, B, T, &o, &err);
    long hwm1 = status_kb("VmHWM");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    ok(rc == QID_OK && isfinite(win[0]), "48-layer model (d=256, %.0f MB of float32 weights) evaluates", model_mb);
    const qid_model_stats *st = qid_model_get_stats(m);
    ok(st->bytes_read == (size_t)qid_params_total(c) * 4, "every tensor was read once (%zu bytes)", st->bytes_read);
    double grow_mb = (double)(hwm1 - (reset ? rss0 : hwm0)) / 1024.0 * 1.024;
    diag("model %.1f MB, one layer %.2f MB, batch activations %.2f MB, embedding %.2f MB", model_mb, layer_mb, act_mb,
         embed_mb);
    diag("RSS before %.1f MB; peak during the pass %.1f MB (%s); growth %.1f MB; ru_maxrss %.1f MB",
         (double)rss0 / 1000 * 1.024, (double)hwm1 / 1000 * 1.024, reset ? "high-water mark reset" : "no reset",
         grow_mb, (double)ru.ru_maxrss / 1000 * 1.024);
#if defined(__SANITIZE_ADDRESS__)
    (void)model_mb;
    skip("peak RSS budget: AddressSanitizer's quarantine and shadow memory change the numbers");
#else
    double budget = layer_mb + act_mb + 2 * embed_mb + 24.0;
    ok(hwm1 > 0 && grow_mb < budget && grow_mb < model_mb / 4,
       "peak RSS growth %.1f MB stays below one layer + activations + head + 24 MB slack (%.1f MB), far below the "
       "model (%.0f MB)",
       grow_mb, budget, model_mb);
#endif
    free(tok);
    qid_model_free(m);
}

/* ---- RTN, MX and NF4 through the weight hook, per family ---------------- */

/* Wraps a quantizer's weight hook: counts, by kind, the tensors it changed. */
typedef struct {
    qid_weight_hook inner;
    void *inner_ctx;
    int changed[5], seen[5];
} rtn_cap;

static int rtn_cap_hook(void *ctx, const qid_tensor_spec *t, float *w, qid_error *err)
{
    rtn_cap *c = ctx;
    size_t n = (size_t)qid_tensor_numel(t);
    float *before = malloc(n * sizeof *before);
    memcpy(before, w, n * sizeof *w);
    int rc = c->inner(c->inner_ctx, t, w, err);
    c->seen[t->kind]++;
    c->changed[t->kind] += memcmp(before, w, n * sizeof *w) != 0;
    free(before);
    return rc;
}

/* Each format's weight hook on a family's fixture: every linear weight
 * changes, nothing else (embeddings, positions, norms, biases, OPT's
 * project_in/out), and the loss stays finite. */
static void check_rtn_family(const char *name, const char *format)
{
    const char *path = tap_import_fixture(name, -1, -1);
    qid_quantize_opts qo;
    qid_quantize_opts_default(&qo);
    qid_error err;
    if (qid_quant_parse(format, &qo.spec, &err)) bail("%s", err.msg);
    qo.method = QID_QUANTIZE_RTN;
    qid_quantizer *q = qid_quantizer_create(&qo);
    rtn_cap cap = {0};
    qid_act_hook ah;
    void *actx;
    qid_quantizer_hooks(q, &cap.inner, &cap.inner_ctx, &ah, &actx);
    qid_model *m = open_model(path);
    size_t nt = 0;
    qid_tensor_spec *t = qid_ckpt_tensors(qid_model_cfg(m), &nt);
    int linears = 0;
    for (size_t i = 0; i < nt; i++)
        linears += t[i].kind == QID_TENSOR_LINEAR;
    free(t);
    double win[NW];
    qid_forward_opts o = {.weight_hook = rtn_cap_hook, .weight_ctx = &cap, .window_nll = win};
    int rc = qid_model_forward(m, tokens, NW, SEQ, &o, &err);
    if (rc) diag("%s", err.msg);
    int others = cap.changed[QID_TENSOR_BIAS] + cap.changed[QID_TENSOR_NORM] + cap.changed[QID_TENSOR_EMBED] +
                 cap.changed[QID_TENSOR_PROJ];
    ok(rc == QID_OK && cap.changed[QID_TENSOR_LINEAR] == linears && others == 0 && isfinite(win[0]),
       "%s, %s through the weight hook: %d of %d linears changed, %d other tensors (%d proj), loss %.4f", name, format,
       cap.changed[QID_TENSOR_LINEAR], linears, others, cap.seen[QID_TENSOR_PROJ],
       (win[0] + win[1] + win[2]) / (NW * (SEQ - 1)));
    qid_model_free(m);
    qid_quantizer_free(q);
}

/* ---- GPTQ through the activation hook, per family ----------------------- */

/* What the quantizer's activation hook saw and did to the linears of layers
 * 0 and 1: the input rows (contiguous), the weight before and after. */
typedef struct {
    char name[48];
    int layer;
    size_t rows, cols, out;
    float *x, *w0, *w1;
} gptq_rec;

typedef struct {
    qid_act_hook inner;
    void *inner_ctx;
    int n;
    gptq_rec rec[16];
    int capture_only; /* 1: record x of layer 1's first linear, do not call inner */
} gptq_cap;

static int gptq_cap_hook(void *ctx, const qid_tensor_spec *t, const float *x, size_t rows, size_t ldx, float *w,
                         qid_error *err)
{
    gptq_cap *c = ctx;
    if (t->kind != QID_TENSOR_LINEAR || t->layer > 1 || c->n == 16)
        return c->inner ? c->inner(c->inner_ctx, t, x, rows, ldx, w, err) : QID_OK;
    gptq_rec *r = &c->rec[c->n++];
    snprintf(r->name, sizeof r->name, "%s", t->name);
    r->layer = t->layer;
    r->rows = rows;
    r->cols = (size_t)t->shape[1];
    r->out = (size_t)t->shape[0];
    r->x = malloc(rows * r->cols * sizeof(float));
    for (size_t i = 0; i < rows; i++)
        memcpy(r->x + i * r->cols, x + i * ldx, r->cols * sizeof(float));
    r->w0 = malloc(r->out * r->cols * sizeof(float));
    memcpy(r->w0, w, r->out * r->cols * sizeof(float));
    int rc = c->capture_only ? QID_OK : c->inner(c->inner_ctx, t, x, rows, ldx, w, err);
    r->w1 = malloc(r->out * r->cols * sizeof(float));
    memcpy(r->w1, w, r->out * r->cols * sizeof(float));
    return rc;
}

static void gptq_cap_free(gptq_cap *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->rec[i].x);
        free(c->rec[i].w0);
        free(c->rec[i].w1);
    }
    c->n = 0;
}

/* int4-g16 GPTQ of a family's fixture through the activation hook (the
 * calibration batch is the 3 fixture windows): every linear of layers 0
 * and 1 equals qid_gptq_quantize run on the inputs the hook saw, bit for
 * bit; and layer 1's inputs are those of the model whose layer 0 holds the
 * quantized weights ("true sequential"). */
static void check_gptq_family(const char *name)
{
    const char *path = tap_import_fixture(name, -1, -1);
    qid_quantize_opts qo;
    qid_quantize_opts_default(&qo);
    qid_error err;
    if (qid_quant_parse("int4-g16", &qo.spec, &err)) bail("%s", err.msg);
    qo.method = QID_QUANTIZE_GPTQ;
    qid_quantizer *q = qid_quantizer_create(&qo);
    gptq_cap cap = {0};
    qid_weight_hook wh;
    void *wctx;
    qid_quantizer_hooks(q, &wh, &wctx, &cap.inner, &cap.inner_ctx);
    qid_model *m = open_model(path);
    double win[NW];
    qid_forward_opts o = {.act_hook = gptq_cap_hook,
                          .act_ctx = &cap,
                          .calib_tokens = tokens,
                          .calib_windows = NW,
                          .calib_seq_len = SEQ,
                          .window_nll = win};
    int rc = qid_model_forward(m, tokens, NW, SEQ, &o, &err);
    if (rc) diag("%s", err.msg);
    size_t differ = 0, first1 = 0, linears = 0;
    for (int i = 0; i < cap.n; i++) {
        gptq_rec *r = &cap.rec[i];
        if (r->layer == 1 && !first1) first1 = (size_t)i + 1;
        linears++;
        qid_gptq_hessian *h = qid_gptq_hessian_create(r->cols);
        float *w = malloc(r->out * r->cols * sizeof *w);
        memcpy(w, r->w0, r->out * r->cols * sizeof *w);
        qid_gptq_stats st;
        if (qid_gptq_hessian_add(h, r->x, r->rows, r->cols, 0, r->name, &err) ||
            qid_gptq_quantize(h, &qo.spec, &qo.gptq, w, r->out, r->cols, r->name, &st, &err))
            bail("reference GPTQ of %s: %s", r->name, err.msg);
        if (memcmp(w, r->w1, r->out * r->cols * sizeof *w) != 0 || memcmp(w, r->w0, r->out * r->cols * sizeof *w) == 0)
            differ++;
        free(w);
        qid_gptq_hessian_free(h);
    }
    ok(rc == QID_OK && linears >= 8 && differ == 0,
       "%s: GPTQ int4-g16 through the activation hook: each of the %zu linears of layers 0-1 equals qid_gptq_quantize "
       "on the inputs the hook saw, bit for bit (%zu differ)",
       name, linears, differ);

    /* layer 1's input from a model whose layer 0 holds the quantized weights */
    gptq_cap plain = {.capture_only = 1};
    qid_batch *b = qid_batch_create(m, tokens, NW, SEQ, &err);
    int ok1 = b && !qid_model_load(m, QID_STAGE_EMBED, &err) && !qid_batch_step(m, b, NULL, NULL, &err) &&
              !qid_model_load(m, 0, &err);
    for (int i = 0; ok1 && i < cap.n; i++)
        if (cap.rec[i].layer == 0) {
            float *w = qid_model_tensor(m, cap.rec[i].name, NULL);
            ok1 = w != NULL;
            if (w) memcpy(w, cap.rec[i].w1, cap.rec[i].out * cap.rec[i].cols * sizeof *w);
        }
    ok1 = ok1 && !qid_batch_step(m, b, NULL, NULL, &err) && !qid_model_load(m, 1, &err) &&
          !qid_batch_step(m, b, gptq_cap_hook, &plain, &err);
    const gptq_rec *want = first1 ? &cap.rec[first1 - 1] : NULL, *got = plain.n ? &plain.rec[0] : NULL;
    ok(ok1 && want && got && got->rows == want->rows && got->cols == want->cols &&
           memcmp(got->x, want->x, got->rows * got->cols * sizeof(float)) == 0,
       "%s: layer 1's %s saw the output of the quantized layer 0 (true sequential), bit for bit", name,
       want ? want->name : "?");
    qid_batch_free(b);
    gptq_cap_free(&plain);
    gptq_cap_free(&cap);
    qid_model_free(m);
    qid_quantizer_free(q);
}

int main(void)
{
    plan(10 * 5 + 13 + 2 + 7 + 9 + 3 + 2 * 5 + 4);
    qid_h5_silence();
    load_tokens();
    diag("kernels: %s", qid_k_impl_name());
    check_fixture("gpt-neox-tiny");
    check_fixture("llama-tiny");
    check_fixture("qwen2-tiny");
    check_fixture("llama-tiny-tied");
    check_fixture("gpt2-tiny");
    check_fixture("gpt2-tiny-scaled");
    check_fixture("gpt2-tiny-unscaled");
    check_fixture("opt-tiny");
    check_fixture("opt-tiny-postln-proj");
    check_fixture("bloom-tiny");
    check_rtn_family("gpt2-tiny", "mxfp4");
    check_rtn_family("opt-tiny", "nf4-b32");
    check_rtn_family("opt-tiny-postln-proj", "int4-g16-sym");
    check_rtn_family("bloom-tiny", "int4-g16-sym");
    check_gptq_family("gpt2-tiny");
    check_gptq_family("gpt2-tiny-scaled");
    check_gptq_family("opt-tiny");
    check_gptq_family("opt-tiny-postln-proj");
    check_gptq_family("bloom-tiny");
    check_hooks();
    check_precision_threads();
    check_steps();
    check_errors();
    check_memory();
    return 0;
}
