/* test_calib.c - streamed GPTQ calibration (model.h qid_calib with
 * quantize.h's calibration hooks) on the tiny gpt-neox (parallel residual)
 * and llama (sequential) fixtures, against the activation-hook path that
 * holds every calibration window at once:
 *   - one chunk holding every window: every quantized weight and every
 *     evaluated window's NLL bit for bit those of the activation hook;
 *   - chunks of 1 and 3 of 8 windows: the Hessian sums change order only,
 *     so the weights and the loss stay within the tolerances stated below;
 *   - the residual stream in a scratch file: bit for bit the in-memory run
 *     with the same chunks, and nothing left in the directory;
 *   - pass and chunk counts; a scratch directory that does not exist;
 *   - the memory estimate's parts and the memory limit's one-line error. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "import.h"
#include "quantize.h"
#include "tap.h"

#define NW 8 /* calibration windows */
#define L  16

typedef struct weights {
    float *v; /* every LINEAR tensor of every layer, in table order */
    size_t n;
} weights;

static qid_quantize_opts gptq_opts(void)
{
    qid_quantize_opts o;
    qid_quantize_opts_default(&o);
    qid_error err;
    if (qid_quant_parse("int3-g16", &o.spec, &err)) bail("format: %s", err.msg);
    o.method = QID_QUANTIZE_GPTQ;
    return o;
}

/* Appends the loaded layer's LINEAR tensors to w. */
static void grab(qid_model *m, int layer, weights *w)
{
    size_t n = 0;
    qid_tensor_spec *t = qid_ckpt_layer_tensors(qid_model_cfg(m), layer, &n);
    for (size_t i = 0; i < n; i++) {
        if (t[i].kind != QID_TENSOR_LINEAR) continue;
        size_t k = (size_t)qid_tensor_numel(&t[i]);
        const float *x = qid_model_tensor(m, t[i].name, NULL);
        if (!x) bail("tensor %s not loaded", t[i].name);
        w->v = realloc(w->v, (w->n + k) * sizeof *w->v);
        if (!w->v) bail("out of memory");
        memcpy(w->v + w->n, x, k * sizeof *x);
        w->n += k;
    }
    free(t);
}

/* GPTQ of every layer of ckpt on the calibration windows: with the
 * activation hook (chunk 0) or streamed in chunks of `chunk` windows (in a
 * scratch file in `scratch` when given). Returns the quantized weights;
 * *stats gets the calibration's counters (streamed). */
static weights quantize_all(const char *ckpt, const uint32_t *tokens, size_t chunk, const char *scratch,
                            qid_calib_stats *stats)
{
    qid_model *m;
    qid_error err;
    if (qid_model_open(ckpt, &m, &err)) bail("open: %s", err.msg);
    qid_quantize_opts o = gptq_opts();
    qid_quantizer *q = qid_quantizer_create(&o);
    qid_calib_hooks hk;
    qid_quantizer_calib_hooks(q, &hk);
    qid_batch *b = NULL;
    qid_calib *c = NULL;
    if (chunk == 0 && !(b = qid_batch_create(m, tokens, NW, L, &err))) bail("batch: %s", err.msg);
    if (chunk && !(c = qid_calib_create(m, tokens, NW, L, chunk, scratch, &err))) bail("calib: %s", err.msg);
    weights w = {0};
    const int layers = (int)qid_model_cfg(m)->n_layers;
    for (int s = QID_STAGE_EMBED; s < layers; s++) {
        if (qid_model_load(m, s, &err)) bail("load: %s", err.msg);
        int rc = b ? qid_batch_step(m, b, s >= 0 ? qid_quantizer_act_hook : NULL, q, &err)
                   : qid_calib_step(m, c, s >= 0 ? &hk : NULL, &err);
        if (rc) bail("stage %d: %s", s, err.msg);
        if (s >= 0) grab(m, s, &w);
    }
    if (c && stats) *stats = *qid_calib_get_stats(c);
    qid_calib_free(c);
    qid_batch_free(b);
    qid_quantizer_free(q);
    qid_model_free(m);
    return w;
}

/* Per-window NLL of the evaluation windows with GPTQ on the calibration
 * windows in the same pass: activation hook (chunk 0) or streamed. */
static double *eval_nll(const char *ckpt, const uint32_t *calib, const uint32_t *ev, size_t n_ev, size_t chunk)
{
    qid_quantize_opts o = gptq_opts();
    qid_quantizer *q = qid_quantizer_create(&o);
    qid_calib_hooks hk;
    qid_quantizer_calib_hooks(q, &hk);
    qid_eval_opts eo = {.calib_tokens = calib, .calib_windows = NW, .calib_seq_len = L};
    if (chunk) {
        eo.calib_hooks = &hk;
        eo.calib_chunk = chunk;
    } else {
        eo.act_hook = qid_quantizer_act_hook;
        eo.act_ctx = q;
    }
    qid_model *m;
    qid_error err;
    qid_eval_result r;
    if (qid_model_open(ckpt, &m, &err)) bail("open: %s", err.msg);
    if (qid_eval_windows(m, ev, n_ev, L, &eo, &r, &err)) bail("eval: %s", err.msg);
    double *nll = malloc(n_ev * sizeof *nll);
    memcpy(nll, r.window_nll, n_ev * sizeof *nll);
    qid_eval_result_free(&r);
    qid_model_free(m);
    qid_quantizer_free(q);
    return nll;
}

static size_t dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d) bail("opendir %s", path);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void check_model(const char *name, const char *ckpt, int parallel, size_t d)
{
    uint32_t calib[NW * L], ev[4 * L];
    for (size_t i = 0; i < NW * L; i++)
        calib[i] = (uint32_t)(tap_rand() % 96);
    for (size_t i = 0; i < 4 * L; i++)
        ev[i] = (uint32_t)(tap_rand() % 96);

    weights ref = quantize_all(ckpt, calib, 0, NULL, NULL);
    qid_calib_stats st;
    weights one = quantize_all(ckpt, calib, NW, NULL, &st);
    ok(one.n == ref.n && one.n > 0 && memcmp(one.v, ref.v, ref.n * sizeof *ref.v) == 0,
       "%s: one chunk of %d windows gives every quantized weight (%zu) bit for bit as the activation hook", name, NW,
       ref.n);
    const size_t layers = 2, passes = parallel ? 3 : 5;
    ok(st.chunks == 1 && st.chunk_windows == NW && st.chunk_passes == 1 + layers * passes,
       "%s: 1 chunk, %zu chunk passes (embedding + %zu layers x %zu passes)", name, st.chunk_passes, layers, passes);

    double *nll_ref = eval_nll(ckpt, calib, ev, 4, 0), *nll_one = eval_nll(ckpt, calib, ev, 4, NW);
    ok(memcmp(nll_ref, nll_one, 4 * sizeof *nll_ref) == 0,
       "%s: evaluated with GPTQ in the same pass, every window's NLL bit for bit (%.9f)", name, nll_ref[0]);

    /* Smaller chunks: H = sum over chunks of the reference's running
     * rescale, so H changes in its last bits and a weight whose value sits
     * on a rounding boundary may flip to the neighbouring grid point.
     * Tolerances: at most 1% of the weights differ by more than 1e-5
     * relative to the tensor-wide largest |w|, and the loss moves by at most
     * 1e-3 relative. */
    static const size_t chunks[] = {1, 3};
    for (int k = 0; k < 2; k++) {
        weights w = quantize_all(ckpt, calib, chunks[k], NULL, &st);
        double amax = 0;
        for (size_t i = 0; i < ref.n; i++)
            amax = fmax(amax, fabs(ref.v[i]));
        size_t differ = 0, exact = 0;
        for (size_t i = 0; i < ref.n; i++) {
            differ += fabs(w.v[i] - ref.v[i]) > 1e-5 * amax;
            exact += w.v[i] == ref.v[i];
        }
        ok(w.n == ref.n && differ * 100 <= ref.n && st.chunks == (NW + chunks[k] - 1) / chunks[k],
           "%s: chunks of %zu windows (%zu chunks): %zu of %zu weights differ by more than 1e-5 x max|w| (at most "
           "1%%), %zu bit for bit",
           name, chunks[k], st.chunks, differ, ref.n, exact);
        double *nll = eval_nll(ckpt, calib, ev, 4, chunks[k]);
        double a = 0, b = 0;
        for (int i = 0; i < 4; i++) {
            a += nll_ref[i];
            b += nll[i];
        }
        ok(fabs(a - b) <= 1e-3 * fabs(a), "%s: chunks of %zu windows: loss %.9f vs %.9f (relative %.2g, at most 1e-3)",
           name, chunks[k], b / (4.0 * (L - 1)), a / (4.0 * (L - 1)), fabs(a - b) / fabs(a));
        free(nll);
        free(w.v);
    }

    /* the residual stream in a scratch file: the same arithmetic */
    const char *dir = tap_path("scratch");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0) bail("mkdir %s", dir);
    weights mem = quantize_all(ckpt, calib, 3, NULL, NULL);
    weights file = quantize_all(ckpt, calib, 3, dir, &st);
    const size_t resid = NW * L * d * sizeof(float);
    ok(file.n == mem.n && memcmp(file.v, mem.v, mem.n * sizeof *mem.v) == 0 &&
           st.scratch_bytes == resid * (1 + layers * (passes + 1)) && dir_entries(dir) == 0,
       "%s: residual stream in a scratch file: weights bit for bit as in memory (chunks of 3), %zu bytes moved "
       "(%zu reads and %zu writes of %zu), the directory left empty",
       name, st.scratch_bytes, layers * passes, 1 + layers, resid);
    free(mem.v);
    free(file.v);
    free(nll_ref);
    free(nll_one);
    free(ref.v);
    free(one.v);
}

static void check_errors(const char *ckpt)
{
    uint32_t calib[NW * L] = {0};
    qid_model *m;
    qid_error err;
    if (qid_model_open(ckpt, &m, &err)) bail("open: %s", err.msg);
    const char *dir = tap_path("no-such-dir");
    qid_calib *c = qid_calib_create(m, calib, NW, L, 2, dir, &err);
    ok(!c && strstr(err.msg, "cannot create a scratch file in '") && strstr(err.msg, "no-such-dir"),
       "a scratch directory that does not exist: %s", err.msg);
    calib[5] = 1000;
    c = qid_calib_create(m, calib, NW, L, 2, NULL, &err);
    ok(!c && strstr(err.msg, "token id 1000 at window 0 position 5 is outside the vocabulary"),
       "a token outside the vocabulary: %s", err.msg);
    calib[5] = 0;
    calib[6 * L + 3] = 96;
    c = qid_calib_create(m, calib, NW, L, 2, NULL, &err);
    ok(!c && strstr(err.msg, "token id 96 at window 6 position 3 is outside the vocabulary (96)"),
       "... also in a later chunk: %s", err.msg);
    qid_model_free(m);
}

/* Pythia-1B's shape (gpt-neox, d 2048, d_ff 8192, 8 heads of 256). */
static void check_estimate(void)
{
    qid_model_config c;
    memset(&c, 0, sizeof c);
    c.arch = QID_ARCH_GPT_NEOX;
    c.vocab_size = 50304;
    c.d_model = 2048;
    c.n_layers = 16;
    c.n_heads = 8;
    c.n_kv_heads = 8;
    c.head_dim = 256;
    c.d_ff = 8192;
    c.max_seq_len = 2048;
    c.rotary_dim = 64;
    c.parallel_residual = 1;
    qid_quantize_opts o = gptq_opts();
    qid_mem_estimate e;
    qid_quantize_mem_estimate(&c, &o, 128, 2048, 0, &e);
    const double N = 128.0 * 2048, d = 2048, ff = 8192;
    const double per_window = 2048.0 * ((2 * d + 4 * d) * 4 + 4);
    ok(e.residual == (size_t)(N * d * 4 + 2 * N * 4) && e.chunk_windows == (size_t)((256 << 20) / per_window),
       "estimate at Pythia-1B x 128 x 2048: residual stream %zu bytes (8 KiB a token), %zu windows a 256 MiB chunk",
       e.residual, e.chunk_windows);
    /* Hessians: two of d inputs (QKV and UP, reused by OUT) and one of d_ff, each with its float32 factor */
    const double hb = 12 * (2 * d * d + ff * ff);
    ok(e.hessians >= (size_t)hb && e.hessians < (size_t)(hb * 1.03) && e.layer >= (size_t)(12 * d * d * 4),
       "estimate: Hessians %zu bytes (2 x d^2 + d_ff^2 doubles and floats, and up to 3%% of conversion buffers), "
       "layer %zu",
       e.hessians, e.layer);
    ok(e.peak == e.base + e.layer + e.hessians + e.quant + e.residual + e.activations,
       "estimate: the peak is at a layer: base + layer + Hessians + weight copy + residual + one chunk = %zu", e.peak);
    qid_quantize_opts s = o;
    s.scratch_dir = "/tmp";
    qid_mem_estimate es;
    qid_quantize_mem_estimate(&c, &s, 128, 2048, 0, &es);
    /* without the residual stream the head (vocab x d) with the Hessians is the largest moment */
    ok(es.residual == (size_t)(2 * N * 4) && es.peak < es.base + es.layer + es.ends + es.hessians + es.quant &&
           es.peak > es.base + es.layer + es.ends + es.hessians && es.peak < ((size_t)2 << 30),
       "estimate with a scratch file: the residual stream leaves it; peak %zu bytes at the head (the weight copy "
       "without GPTQ's work buffers), under 2 GiB",
       es.peak);
    qid_error err;
    int rc = qid_mem_check(&e, (double)e.peak, &c, &o, 128, 2048, "p.h5", &err);
    ok(rc == QID_OK, "a limit equal to the prediction passes");
    rc = qid_mem_check(&e, 2.0 * (1u << 30), &c, &o, 128, 2048, "p.h5", &err);
    ok(strncmp(err.msg, "'p.h5' needs about 3.", 20) == 0 && strstr(err.msg, " GiB (layer ") &&
           strstr(err.msg, ", residual stream 2.00 GiB, ") &&
           strstr(err.msg, ") with 128 calibration windows of 2048 tokens, more than the memory limit 2.00 GiB; "
                           "chunks of one window with a scratch file need 1."),
       "a limit below the prediction: one line with the parts and the hint: %s", err.msg);
    ok(rc == QID_E_INVALID && !strchr(err.msg, '\n'), "... and QID_E_INVALID");
}

int main(void)
{
    plan(5 * 8 + 3 + 7);
    const char *neox = tap_import_fixture("gpt-neox-tiny", 1000, 2097152000),
               *llama = tap_import_fixture("llama-tiny", 1000, 2097152000);
    check_model("gpt-neox-tiny", neox, 1, 32);
    check_model("llama-tiny", llama, 0, 32);
    /* the families with their own embedding and block order: fused Conv1D QKV, post-LayerNorm with project_in/out,
     * ALiBi */
    check_model("gpt2-tiny", tap_import_fixture("gpt2-tiny", -1, -1), 0, 32);
    check_model("opt-tiny-postln-proj", tap_import_fixture("opt-tiny-postln-proj", -1, -1), 0, 32);
    check_model("bloom-tiny", tap_import_fixture("bloom-tiny", -1, -1), 0, 48);
    check_errors(neox);
    check_estimate();
    return 0;
}
