/* test_quantize.c - whole-model quantization (quantize.h) on the tiny
 * transformers-written fixtures: an RTN checkpoint holds exactly
 * qid_quant_matrix of every linear tensor and every other tensor as stored,
 * and evaluates exactly as the in-memory weight hook; MXFP4 RTN; GPTQ at
 * int4-g16 and int3-g16 on llama-tiny with the fixture's calibration windows
 * (completes, finite loss, file equals the in-memory activation hook, lower
 * layer-output error than RTN on layer 0's q/k/v); AWQ at int4-g16-asym and
 * int3-g16-asym on both fixtures with 2 of the 3 windows (file equals the
 * in-memory activation hook and the streamed calibration in chunks of one
 * window); and the bad inputs, each with its message and no output left
 * behind. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval.h"
#include "import.h"
#include "quantize.h"
#include "tap.h"
#include "tokens.h"

#define FIX "test/fixtures/hf"

static const char *make_tokens(void)
{
    const char *out = tap_path("calib.h5");
    qid_tokens_import_opts o = {.input = FIX "/tokens.u16",
                                .output = out,
                                .source = QID_TOKENS_SRC_U16,
                                .vocab_size = 96,
                                .tokenizer = "test",
                                .seq_len = 16,
                                .force = 1};
    qid_error err;
    if (qid_tokens_import(&o, NULL, &err)) bail("tokens: %s", err.msg);
    return out;
}

static qid_quantize_opts opts_for(const char *format, qid_quantize_method method, const char *calib)
{
    qid_quantize_opts o;
    qid_quantize_opts_default(&o);
    qid_error err;
    if (qid_quant_parse(format, &o.spec, &err)) bail("format %s: %s", format, err.msg);
    o.method = method;
    o.calib = calib;
    return o;
}

static double eval_loss(const char *ckpt, const char *tok, const qid_eval_opts *o)
{
    qid_eval_result r;
    qid_error err;
    if (qid_eval_file(ckpt, tok, o, &r, &err)) bail("eval %s: %s", ckpt, err.msg);
    double loss = r.loss;
    qid_eval_result_free(&r);
    return loss;
}

/* Entries in a directory (no ".", ".."). */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) bail("opendir %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Compares every tensor of q against p: LINEAR ones against
 * qid_quant_matrix(spec, p) when spec is given (else against q itself: the
 * caller checks them), others against p, bit for bit. Counts mismatches. */
static void compare_ckpt(const char *p, const char *qpath, const qid_quant_spec *spec, size_t *bad_linear,
                         size_t *bad_other, size_t *n_linear, qid_sqnr_acc *acc)
{
    qid_ckpt a, b;
    qid_error err;
    if (qid_ckpt_open(p, &a, &err) || qid_ckpt_open(qpath, &b, &err)) bail("open: %s", err.msg);
    size_t nt;
    qid_tensor_spec *t = qid_ckpt_tensors(&a.cfg, &nt);
    *bad_linear = *bad_other = *n_linear = 0;
    if (acc) qid_sqnr_acc_init(acc);
    for (size_t i = 0; i < nt; i++) {
        size_t n = (size_t)qid_tensor_numel(&t[i]);
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *want = malloc(n * sizeof *want);
        if (qid_ckpt_read_f32(&a, &t[i], x, &err) || qid_ckpt_read_f32(&b, &t[i], y, &err)) bail("read: %s", err.msg);
        if (t[i].kind == QID_TENSOR_LINEAR) {
            ++*n_linear;
            if (spec) {
                if (qid_quant_matrix(spec, x, want, (size_t)t[i].shape[0], (size_t)t[i].shape[1], t[i].name, &err))
                    bail("quant: %s", err.msg);
                if (memcmp(want, y, n * sizeof *y)) {
                    ++*bad_linear;
                    diag("linear tensor %s differs", t[i].name);
                }
            }
            if (acc) qid_sqnr_acc_add(acc, x, y, n);
        } else if (memcmp(x, y, n * sizeof *y)) {
            ++*bad_other;
            diag("tensor %s differs from the input", t[i].name);
        }
        free(x);
        free(y);
        free(want);
    }
    free(t);
    qid_ckpt_close(&a);
    qid_ckpt_close(&b);
}

/* ---- RTN ---------------------------------------------------------------------- */

static void check_rtn(const char *neox, const char *tok)
{
    const char *out = tap_path("neox-int4.h5");
    qid_quantize_opts o = opts_for("int4-g16-sym", QID_QUANTIZE_RTN, NULL);
    qid_quantize_stats st;
    qid_error err;
    int rc = qid_quantize_checkpoint(neox, out, 0, &o, &st, &err);
    ok(rc == QID_OK, "RTN int4-g16-sym of gpt-neox-tiny%s%s", rc ? ": " : "", rc ? err.msg : "");
    size_t bad_lin, bad_other, n_lin;
    qid_sqnr_acc acc;
    compare_ckpt(neox, out, &o.spec, &bad_lin, &bad_other, &n_lin, &acc);
    ok(n_lin == 8 && st.tensors == 8 && st.params == acc.count, "8 linear tensors quantized (%zu weights)", st.params);
    ok(bad_lin == 0, "every linear tensor equals qid_quant_matrix of the input bit for bit (%zu differ)", bad_lin);
    ok(bad_other == 0, "every embedding, norm and bias equals the input bit for bit (%zu differ)", bad_other);
    is_double(qid_sqnr_acc_db(&acc), qid_sqnr_acc_db(&st.sqnr), 1e-12,
              "model SQNR %.3f dB equals the SQNR recomputed from the two files (tolerance 1e-12 dB)",
              qid_sqnr_acc_db(&st.sqnr));

    qid_ckpt a, b;
    if (qid_ckpt_open(neox, &a, &err) || qid_ckpt_open(out, &b, &err)) bail("open: %s", err.msg);
    ok(b.meta.dtype == QID_DTYPE_F32 && strcmp(b.meta.source_format, "qid-quantize") == 0 &&
           strcmp(a.meta.model, b.meta.model) == 0 && a.meta.step == b.meta.step &&
           a.meta.tokens_seen == b.meta.tokens_seen,
       "output: float32, source_format qid-quantize, model, step and tokens_seen kept (%s step %lld)", b.meta.model,
       (long long)b.meta.step);
    ok(a.cfg.arch == b.cfg.arch && a.cfg.d_model == b.cfg.d_model && a.cfg.n_layers == b.cfg.n_layers &&
           a.cfg.vocab_size == b.cfg.vocab_size && a.cfg.d_ff == b.cfg.d_ff && a.cfg.rotary_dim == b.cfg.rotary_dim &&
           a.cfg.norm_eps == b.cfg.norm_eps && a.cfg.parallel_residual == b.cfg.parallel_residual &&
           a.cfg.tie_embeddings == b.cfg.tie_embeddings,
       "output: same config");
    qid_ckpt_close(&a);
    qid_ckpt_close(&b);

    /* the written file against the in-memory hook on the original */
    qid_quantizer *q = qid_quantizer_create(&o);
    qid_eval_opts eo = {0};
    qid_quantizer_hooks(q, &eo.weight_hook, &eo.weight_ctx, &eo.act_hook, &eo.act_ctx);
    double l_hook = eval_loss(neox, tok, &eo);
    ok(eo.weight_hook && !eo.act_hook && qid_quantizer_stats(q)->tensors == 8,
       "RTN in memory: a weight hook, which quantized the 8 linear tensors");
    qid_quantizer_free(q);
    qid_eval_opts plain = {0};
    double l_file = eval_loss(out, tok, &plain), l_orig = eval_loss(neox, tok, &plain);
    ok(fabs(l_file - l_hook) <= 1e-6 * l_hook,
       "loss of the written checkpoint %.9f = loss with the in-memory hook %.9f (relative 1e-6)", l_file, l_hook);
    ok(isfinite(l_file) && l_file != l_orig, "RTN changes the loss: %.6f -> %.6f", l_orig, l_file);

    /* MXFP4: rows of 32 and 64 are whole blocks */
    const char *mx = tap_path("neox-mxfp4.h5");
    qid_quantize_opts om = opts_for("mxfp4", QID_QUANTIZE_RTN, NULL);
    rc = qid_quantize_checkpoint(neox, mx, 0, &om, &st, &err);
    ok(rc == QID_OK && st.tensors == 8, "RTN mxfp4 of gpt-neox-tiny%s%s (SQNR %.3f dB)", rc ? ": " : "",
       rc ? err.msg : "", qid_sqnr_acc_db(&st.sqnr));
    compare_ckpt(neox, mx, &om.spec, &bad_lin, &bad_other, &n_lin, NULL);
    ok(bad_lin == 0 && bad_other == 0, "mxfp4: linear tensors equal qid_quant_matrix, the rest the input");
}

/* ---- GPTQ ----------------------------------------------------------------------- */

/* Captures the input of layer 0's attention projections. */
typedef struct capture {
    float *x;
    size_t rows, cols;
} capture;

static int capture_hook(void *ctx, const qid_tensor_spec *t, const float *x, size_t rows, size_t ldx, float *w,
                        qid_error *err)
{
    capture *c = ctx;
    if (t->layer != 0 || strcmp(t->name, "attn.q.weight") != 0) return QID_OK;
    c->rows = rows;
    c->cols = (size_t)t->shape[1];
    c->x = malloc(rows * c->cols * sizeof *c->x);
    for (size_t r = 0; r < rows; r++)
        memcpy(c->x + r * c->cols, x + r * ldx, c->cols * sizeof *c->x);
    return QID_OK;
}

static void layer0_input(const char *ckpt, const uint32_t *tokens, size_t nw, size_t L, capture *c)
{
    qid_model *m;
    qid_error err;
    if (qid_model_open(ckpt, &m, &err)) bail("model: %s", err.msg);
    qid_batch *b = qid_batch_create(m, tokens, nw, L, &err);
    if (!b || qid_model_load(m, QID_STAGE_EMBED, &err) || qid_batch_step(m, b, NULL, NULL, &err) ||
        qid_model_load(m, 0, &err) || qid_batch_step(m, b, capture_hook, c, &err))
        bail("layer 0: %s", err.msg);
    qid_batch_free(b);
    qid_model_free(m);
}

/* sum over tokens and outputs of ((W - Q) x)^2, in double. */
static double output_error(const float *w, const float *q, size_t out, const capture *c)
{
    double e = 0;
    for (size_t r = 0; r < c->rows; r++)
        for (size_t o = 0; o < out; o++) {
            double s = 0;
            for (size_t i = 0; i < c->cols; i++)
                s += ((double)w[o * c->cols + i] - (double)q[o * c->cols + i]) * (double)c->x[r * c->cols + i];
            e += s * s;
        }
    return e;
}

/* Layer-output error of layer 0's q, k and v in checkpoint qpath. */
static double qkv_error(const char *orig, const char *qpath, const qid_quant_spec *rtn_spec, const capture *c,
                        double *rtn_err)
{
    qid_ckpt a, b;
    qid_error err;
    if (qid_ckpt_open(orig, &a, &err) || qid_ckpt_open(qpath, &b, &err)) bail("open: %s", err.msg);
    size_t nt;
    qid_tensor_spec *t = qid_ckpt_layer_tensors(&a.cfg, 0, &nt);
    double e = 0;
    *rtn_err = 0;
    for (size_t i = 0; i < nt; i++) {
        if (strcmp(t[i].name, "attn.q.weight") && strcmp(t[i].name, "attn.k.weight") &&
            strcmp(t[i].name, "attn.v.weight"))
            continue;
        size_t out = (size_t)t[i].shape[0], n = (size_t)qid_tensor_numel(&t[i]);
        float *w = malloc(n * sizeof *w), *q = malloc(n * sizeof *q), *r = malloc(n * sizeof *r);
        if (qid_ckpt_read_f32(&a, &t[i], w, &err) || qid_ckpt_read_f32(&b, &t[i], q, &err) ||
            qid_quant_matrix(rtn_spec, w, r, out, c->cols, t[i].name, &err))
            bail("qkv: %s", err.msg);
        e += output_error(w, q, out, c);
        *rtn_err += output_error(w, r, out, c);
        free(w);
        free(q);
        free(r);
    }
    free(t);
    qid_ckpt_close(&a);
    qid_ckpt_close(&b);
    return e;
}

static void check_gptq(const char *llama, const char *tok)
{
    qid_error err;
    uint32_t *tokens;
    size_t nw, L;
    qid_ckpt ck;
    if (qid_ckpt_open(llama, &ck, &err)) bail("open: %s", err.msg);
    int rc = qid_quantize_read_calib(tok, &ck.cfg, 0, 0, &tokens, &nw, &L, &err);
    ok(rc == QID_OK && nw == 3 && L == 16, "calibration: all 3 windows of 16 tokens (fewer than the default 128)");
    /* a sample of 2 of the 3 windows: seeded, reproducible, in file order */
    {
        uint32_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0, la = 0, lb = 0;
        int ra = qid_quantize_read_calib(tok, &ck.cfg, 2, 11, &a, &na, &la, &err);
        int rb = qid_quantize_read_calib(tok, &ck.cfg, 2, 11, &b, &nb, &lb, &err);
        int same = !ra && !rb && na == 2 && nb == 2 && memcmp(a, b, 2 * 16 * sizeof *a) == 0;
        int first = -1, second = -1;
        for (int w = 0; w < 3 && same; w++) {
            if (memcmp(a, tokens + w * 16, 16 * sizeof *a) == 0 && first < 0) first = w;
            if (memcmp(a + 16, tokens + w * 16, 16 * sizeof *a) == 0) second = w;
        }
        ok(same && first >= 0 && second > first,
           "calibration sample of 2 of 3 windows: same for the same seed, source windows %d < %d in file order", first,
           second);
        free(a);
        free(b);
    }
    qid_ckpt_close(&ck);
    capture c = {0};
    layer0_input(llama, tokens, nw, L, &c);
    qid_eval_opts plain = {0};
    const double l_orig = eval_loss(llama, tok, &plain);

    static const char *formats[] = {"int4-g16", "int3-g16"};
    for (int f = 0; f < 2; f++) {
        char name[64];
        snprintf(name, sizeof name, "llama-gptq-%s.h5", formats[f]);
        const char *out = tap_path(name);
        qid_quantize_opts o = opts_for(formats[f], QID_QUANTIZE_GPTQ, tok);
        qid_quantize_stats st;
        rc = qid_quantize_checkpoint(llama, out, 0, &o, &st, &err);
        ok(rc == QID_OK && st.tensors == 14 && st.calib_windows == 3 && st.percdamp_max == 0.01 && st.retries == 0,
           "GPTQ %s of llama-tiny: 14 linear tensors, 3 windows, damping 0.01%s%s (SQNR %.3f dB, %.3f s)", formats[f],
           rc ? ": " : "", rc ? err.msg : "", qid_sqnr_acc_db(&st.sqnr), st.seconds);
        size_t bad_lin, bad_other, n_lin;
        qid_sqnr_acc acc;
        compare_ckpt(llama, out, NULL, &bad_lin, &bad_other, &n_lin, &acc);
        ok(bad_other == 0 && fabs(qid_sqnr_acc_db(&acc) - qid_sqnr_acc_db(&st.sqnr)) <= 1e-9,
           "GPTQ %s: norms and embeddings as stored, SQNR matches the files", formats[f]);
        const double l_file = eval_loss(out, tok, &plain);
        ok(isfinite(l_file), "GPTQ %s: loss %.6f finite (original %.6f)", formats[f], l_file, l_orig);

        /* in memory: the activation hook with the same calibration windows */
        qid_quantizer *q = qid_quantizer_create(&o);
        qid_eval_opts eo = {0};
        qid_quantizer_hooks(q, &eo.weight_hook, &eo.weight_ctx, &eo.act_hook, &eo.act_ctx);
        eo.calib_tokens = tokens;
        eo.calib_windows = nw;
        eo.calib_seq_len = L;
        const double l_hook = eval_loss(llama, tok, &eo);
        qid_quantizer_free(q);
        ok(!eo.weight_hook && eo.act_hook && fabs(l_file - l_hook) <= 1e-6 * l_hook,
           "GPTQ %s: loss of the file %.9f = loss with the in-memory activation hook %.9f (relative 1e-6)", formats[f],
           l_file, l_hook);

        /* layer 0's q/k/v read the (unquantized) embedding through the norm,
         * the same input for GPTQ and RTN: GPTQ minimises exactly this error */
        double e_rtn, e_gptq = qkv_error(llama, out, &o.spec, &c, &e_rtn);
        ok(e_gptq < e_rtn, "GPTQ %s: layer-0 q/k/v output error %.4g < RTN's %.4g", formats[f], e_gptq, e_rtn);
        qid_quantize_opts orr = opts_for(formats[f], QID_QUANTIZE_RTN, NULL);
        qid_quantizer *qr = qid_quantizer_create(&orr);
        qid_eval_opts er = {0};
        qid_quantizer_hooks(qr, &er.weight_hook, &er.weight_ctx, &er.act_hook, &er.act_ctx);
        diag("%s: loss original %.6f, RTN %.6f, GPTQ %.6f", formats[f], l_orig, eval_loss(llama, tok, &er), l_file);
        qid_quantizer_free(qr);
    }
    free(c.x);
    free(tokens);
}

/* ---- bad input ------------------------------------------------------------------- */

static void check_awq(const char *neox, const char *llama, const char *tok)
{
    qid_error err;
    static const char *formats[] = {"int4-g16-asym", "int3-g16-asym"};
    const char *models[] = {neox, llama}, *names[] = {"gpt-neox-tiny", "llama-tiny"};
    const size_t n_lin[] = {8, 14};
    for (int mi = 0; mi < 2; mi++) {
        qid_ckpt ck;
        if (qid_ckpt_open(models[mi], &ck, &err)) bail("open: %s", err.msg);
        uint32_t *all = NULL, *cal = NULL;
        size_t nw = 0, L = 0, nc = 0, Lc = 0;
        if (qid_quantize_read_calib(tok, &ck.cfg, 0, 0, &all, &nw, &L, &err) ||
            qid_quantize_read_calib(tok, &ck.cfg, 2, 7, &cal, &nc, &Lc, &err))
            bail("calib: %s", err.msg);
        qid_ckpt_close(&ck);
        /* the window the sample left out */
        size_t held = 0;
        for (size_t w = 0; w < nw; w++)
            if (memcmp(all + w * L, cal, L * sizeof *cal) && memcmp(all + w * L, cal + L, L * sizeof *cal)) held = w;
        qid_eval_opts plain = {0};
        for (int f = 0; f < 2; f++) {
            char name[64];
            snprintf(name, sizeof name, "%s-awq-%s.h5", names[mi], formats[f]);
            const char *out = tap_path(name);
            qid_quantize_opts o = opts_for(formats[f], QID_QUANTIZE_AWQ, tok);
            o.samples = 2;
            o.seed = 7;
            qid_quantize_stats st;
            int rc = qid_quantize_checkpoint(models[mi], out, 1, &o, &st, &err);
            ok(rc == QID_OK && st.tensors == n_lin[mi] && st.calib_windows == 2 && st.awq_groups > 0 &&
                   st.awq_loss <= st.awq_loss_rtn,
               "AWQ %s of %s: %zu linear tensors, %zu groups scaled, output MSE %.4g <= %.4g at s = 1%s%s", formats[f],
               names[mi], st.tensors, st.awq_groups, st.awq_loss, st.awq_loss_rtn, rc ? ": " : "", rc ? err.msg : "");
            const double l_file = eval_loss(out, tok, &plain);
            /* in memory, the activation hook on the same 2 windows */
            qid_quantizer *q = qid_quantizer_create(&o);
            qid_eval_opts eo = {0};
            qid_quantizer_hooks(q, &eo.weight_hook, &eo.weight_ctx, &eo.act_hook, &eo.act_ctx);
            eo.calib_tokens = cal;
            eo.calib_windows = nc;
            eo.calib_seq_len = Lc;
            const double l_hook = eval_loss(models[mi], tok, &eo);
            qid_quantizer_free(q);
            ok(!eo.weight_hook && eo.act_hook && isfinite(l_file) && fabs(l_file - l_hook) <= 1e-6 * l_hook,
               "AWQ %s of %s: loss of the file %.9f = loss with the activation hook %.9f (relative 1e-6)", formats[f],
               names[mi], l_file, l_hook);
            /* streamed in chunks of one window: the same weights up to summation order */
            o.chunk_bytes = 1;
            snprintf(name, sizeof name, "%s-awq-%s-c1.h5", names[mi], formats[f]);
            const char *out1 = tap_path(name);
            rc = qid_quantize_checkpoint(models[mi], out1, 1, &o, &st, &err);
            const double l_chunk = rc ? NAN : eval_loss(out1, tok, &plain);
            ok(rc == QID_OK && st.calib.chunk_windows == 1 && fabs(l_file - l_chunk) <= 1e-6 * l_file,
               "AWQ %s of %s: chunks of one window give loss %.9f (relative 1e-6)%s%s", formats[f], names[mi], l_chunk,
               rc ? ": " : "", rc ? err.msg : "");
            if (mi == 1) {
                capture c = {0};
                layer0_input(llama, all + held * L, 1, L, &c);
                double e_rtn, e_awq = qkv_error(llama, out, &o.spec, &c, &e_rtn);
                /* random weights without salient channels: no margin to assert on (test_awq.c asserts it on
                 * the fixture layer's held-out inputs) */
                diag("AWQ %s: layer-0 q/k/v output error on the held-out window %zu %.4g, RTN's %.4g", formats[f], held,
                     e_awq, e_rtn);
                free(c.x);
            }
        }
        free(all);
        free(cal);
    }
    /* what AWQ refuses */
    qid_quantize_opts o = opts_for("mxfp4", QID_QUANTIZE_AWQ, tok);
    const char *out = tap_path("awq-mx.h5");
    int rc = qid_quantize_checkpoint(neox, out, 0, &o, NULL, &err);
    ok(rc == QID_E_INVALID && strstr(err.msg, "AWQ takes integer formats") && !tap_exists(out),
       "AWQ of mxfp4 is refused, nothing written: '%s'", err.msg);
    o = opts_for("int4-g16-asym", QID_QUANTIZE_AWQ, NULL);
    rc = qid_quantize_checkpoint(neox, out, 0, &o, NULL, &err);
    ok(rc == QID_E_INVALID && strstr(err.msg, "AWQ needs a calibration token set") && !tap_exists(out),
       "AWQ without calibration: '%s'", err.msg);
}

/* The attention output is scaled only where a separate attn.v has as many
 * rows as attn.out has columns (AutoAWQ's llama plan: v -> o), through the
 * streamed calibration hooks on made-up tensors. */
static void check_awq_out_group(void)
{
    qid_error err;
    const size_t d = 16, n = 64;
    float x[64 * 16], w[4][16 * 16];
    tap_seed(3);
    for (size_t i = 0; i < n * d; i++)
        x[i] = tap_gauss() * (i % d == 2 ? 8.0f : 1.0f);
    for (int gqa = 0; gqa < 2; gqa++) {
        for (int k = 0; k < 4; k++)
            for (size_t i = 0; i < d * d; i++)
                w[k][i] = 0.1f * tap_gauss();
        const int64_t v_rows = gqa ? 8 : 16;
        qid_tensor_spec t[4] = {
            {.name = "attn.q.weight", .layer = 0, .ndim = 2, .shape = {16, 16}, .kind = QID_TENSOR_LINEAR},
            {.name = "attn.k.weight", .layer = 0, .ndim = 2, .shape = {v_rows, 16}, .kind = QID_TENSOR_LINEAR},
            {.name = "attn.v.weight", .layer = 0, .ndim = 2, .shape = {v_rows, 16}, .kind = QID_TENSOR_LINEAR},
            {.name = "attn.out.weight", .layer = 0, .ndim = 2, .shape = {16, 16}, .kind = QID_TENSOR_LINEAR}};
        qid_quantize_opts o = opts_for("int4-g8-asym", QID_QUANTIZE_AWQ, NULL);
        qid_quantizer *q = qid_quantizer_create(&o);
        qid_calib_hooks h;
        qid_quantizer_calib_hooks(q, &h);
        const qid_tensor_spec *tq[3] = {&t[0], &t[1], &t[2]}, *to[1] = {&t[3]};
        float *wq[3] = {w[0], w[1], w[2]}, *wo[1] = {w[3]};
        int rc =
            h.add(h.ctx, QID_GROUP_QKV, 1, &t[0], x, n, d, &err) || h.quantize(h.ctx, QID_GROUP_QKV, tq, wq, 3, &err) ||
            h.add(h.ctx, QID_GROUP_OUT, 1, &t[3], x, n, d, &err) || h.quantize(h.ctx, QID_GROUP_OUT, to, wo, 1, &err);
        const qid_quantize_stats *st = qid_quantizer_stats(q);
        ok(!rc && st->tensors == 4 && st->awq_groups == (gqa ? 1u : 2u),
           "AWQ: attn.out %s (v has %d rows, out %d columns): %zu groups scaled", gqa ? "not scaled" : "scaled",
           (int)v_rows, (int)d, st->awq_groups);
        qid_quantizer_free(q);
    }
}

static void check_errors(const char *neox, const char *tok)
{
    qid_error err;
    qid_quant_spec spec;
    const char *dir = tap_path("errors");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0) bail("mkdir %s", dir);
    char out[600];
    snprintf(out, sizeof out, "%s/q.h5", dir);

    int rc = qid_quant_parse("int9-g16", &spec, &err);
    ok(rc == QID_E_INVALID, "unknown format int9-g16 is rejected");
    like(err.msg, "unknown format 'int9-g16'", "unknown format: message names it (%s)", err.msg);
    char *argv[] = {"quantize", (char *)neox, "--format", "bogus", "-o", out, NULL};
    tap_capture_begin();
    rc = qid_quantize_main(6, argv);
    char *msg = tap_capture_end();
    ok(rc == 2 && dir_entries(dir) == 0, "qid quantize --format bogus exits 2, no output");
    like(msg, "qid quantize: error: unknown format 'bogus'", "qid quantize --format bogus: one line naming the format");
    is_int(1, (long long)(strchr(msg, '\n') ? strchr(msg, '\n') - msg + 1 == (long)strlen(msg) : 0),
           "qid quantize --format bogus: exactly one line");
    free(msg);

    qid_quantize_opts o = opts_for("int4-g16", QID_QUANTIZE_GPTQ, NULL);
    rc = qid_quantize_checkpoint(neox, out, 0, &o, NULL, &err);
    ok(rc == QID_E_INVALID && dir_entries(dir) == 0, "GPTQ without a calibration set fails, no output");
    like(err.msg, "GPTQ needs a calibration token set", "GPTQ without --calib: message");

    o = opts_for("int4-g128", QID_QUANTIZE_RTN, NULL);
    rc = qid_quantize_checkpoint(neox, out, 0, &o, NULL, &err);
    ok(rc == QID_E_INVALID && dir_entries(dir) == 0, "int4-g128 on rows of 32 fails, no output");
    like(err.msg, "group size 128 does not divide row length 32 of '/layers/0/attn.qkv.weight'",
         "group not dividing the row: message names the tensor (%s)", err.msg);
    o.method = QID_QUANTIZE_GPTQ;
    o.calib = tok;
    rc = qid_quantize_checkpoint(neox, out, 0, &o, NULL, &err);
    ok(rc == QID_E_INVALID && dir_entries(dir) == 0, "GPTQ int4-g128 on rows of 32 fails too, no output");

    o = opts_for("int4-g16", QID_QUANTIZE_RTN, NULL);
    rc = qid_quantize_checkpoint("/nonexistent/ck.h5", out, 0, &o, NULL, &err);
    ok(rc != QID_OK && dir_entries(dir) == 0, "missing checkpoint fails, no output");
    like(err.msg, "/nonexistent/ck.h5", "missing checkpoint: message names it (%s)", err.msg);

    tap_write_file(out, "keep", 4);
    rc = qid_quantize_checkpoint(neox, out, 0, &o, NULL, &err);
    size_t len;
    char *kept = tap_read_file(out, &len);
    ok(rc == QID_E_INVALID && len == 4 && memcmp(kept, "keep", 4) == 0 && dir_entries(dir) == 1,
       "existing output without force fails and is left untouched");
    free(kept);
    like(err.msg, "exists (use --force to replace it)", "existing output: message");
    rc = qid_quantize_checkpoint(neox, out, 1, &o, NULL, &err);
    qid_ckpt ck;
    int opened = rc == QID_OK && qid_ckpt_open(out, &ck, &err) == QID_OK;
    if (opened) qid_ckpt_close(&ck);
    ok(opened && dir_entries(dir) == 1, "with force it is replaced by a checkpoint");
}

int main(void)
{
    plan(39 + 2 * 2 * 3 + 2 + 2);
    /* copies: tap_path's buffers rotate */
    char neox[512], llama[512], tok[512];
    snprintf(neox, sizeof neox, "%s", tap_import_fixture("gpt-neox-tiny", 1000, 2097152000));
    snprintf(llama, sizeof llama, "%s", tap_import_fixture("llama-tiny", 1000, 2097152000));
    snprintf(tok, sizeof tok, "%s", make_tokens());
    check_rtn(neox, tok);
    check_gptq(llama, tok);
    check_awq(neox, llama, tok);
    check_awq_out_group();
    check_errors(neox, tok);
    return 0;
}
