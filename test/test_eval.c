/* test_eval.c - evaluation metrics (eval.h): the paired difference and its
 * standard error computed by hand; loss, perplexity and per-window NLL of a
 * token set against transformers' reference; second-half scoring, window
 * re-cutting, --windows and batching; KL against the unmodified model; and
 * the bad inputs: a token set with a larger vocabulary, windows longer than
 * the model's context, NaN weights. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "eval.h"
#include "h5io.h"
#include "import.h"
#include "tap.h"
#include "tokens.h"

#define FIX "test/fixtures/hf"

/* A token set from a raw uint16 file. */
static const char *make_tokens(const char *name, const char *raw, int64_t vocab, int64_t seq_len)
{
    const char *out = tap_path(name);
    qid_tokens_import_opts o = {.input = raw,
                                .output = out,
                                .source = QID_TOKENS_SRC_U16,
                                .vocab_size = vocab,
                                .tokenizer = "test",
                                .seq_len = seq_len,
                                .force = 1};
    qid_error err;
    if (qid_tokens_import(&o, NULL, &err)) bail("tokens %s: %s", name, err.msg);
    return out;
}

static void reference(const char *model, double *loss, double window[3])
{
    char path[256];
    size_t len;
    snprintf(path, sizeof path, FIX "/%s/reference.json", model);
    char *text = tap_read_file(path, &len);
    cJSON *j = cJSON_Parse(text);
    *loss = cJSON_GetObjectItem(j, "loss")->valuedouble;
    for (int i = 0; i < 3; i++)
        window[i] = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "per_window_nll_sum"), i)->valuedouble;
    cJSON_Delete(j);
    free(text);
}

/* ---- paired comparison by hand ---------------------------------------------- */

static void check_paired(void)
{
    qid_eval_paired p;
    qid_error err;
    /* equal counts: per-window mean differences .2 .1 .2 .1 -> mean .15, sd sqrt(.01/3), se sd/2 */
    double a[4] = {10, 12, 9, 11}, b[4] = {11, 12.5, 10, 11.5};
    int64_t n5[4] = {5, 5, 5, 5};
    int rc = qid_eval_paired_diff(a, b, n5, 4, &p, &err);
    ok(rc == QID_OK && p.tokens == 20 && p.n_windows == 4, "paired: 4 windows of 5 tokens");
    is_double(0.15, p.diff, 1e-15, "paired: mean difference 3/20 = 0.15");
    is_double(sqrt(0.01 / 3) / 2, p.se, 1e-15, "paired: se = sd(.2,.1,.2,.1)/sqrt(4) = 0.0288675");
    is_double(42.0 / 20, p.loss_a, 1e-15, "paired: loss_a = 42/20");
    is_double(45.0 / 20, p.loss_b, 1e-15, "paired: loss_b = 45/20");
    /* unequal counts: d = (1, 0), n = (2, 4): diff 1/6, residuals (2/3, -2/3), se = sqrt(2 * 8/9) / 6 = 2/9 */
    double a2[2] = {2, 3}, b2[2] = {3, 3};
    int64_t n2[2] = {2, 4};
    rc = qid_eval_paired_diff(a2, b2, n2, 2, &p, &err);
    is_double(1.0 / 6, p.diff, 1e-15, "paired, unequal counts: diff = 1/6");
    is_double(2.0 / 9, p.se, 1e-15, "paired, unequal counts: ratio-estimator se = 2/9");
    rc = qid_eval_paired_diff(a2, b2, n2, 1, &p, &err);
    ok(rc == QID_OK && isnan(p.se) && p.diff == 0.5, "paired, one window: diff 1/2, se NaN");
    ok(qid_eval_paired_diff(a2, b2, n2, 0, &p, &err) == QID_E_INVALID, "paired: no windows is an error");
    double nan2[2] = {NAN, 1};
    ok(qid_eval_paired_diff(nan2, b2, n2, 2, &p, &err) == QID_E_INVALID, "paired: a NaN NLL is an error");
    int64_t z[2] = {2, 0};
    ok(qid_eval_paired_diff(a2, b2, z, 2, &p, &err) == QID_E_INVALID, "paired: a zero count is an error");
}

/* ---- evaluation of a token set -------------------------------------------- */

static int round_hook(void *ctx, const qid_tensor_spec *t, float *w, qid_error *err)
{
    (void)ctx;
    if (t->kind != QID_TENSOR_LINEAR) return QID_OK;
    for (int64_t i = 0; i < qid_tensor_numel(t); i++) {
        uint16_t h = qid_f32_to_f16(w[i]);
        qid_f16_to_f32(&h, &w[i], 1);
    }
    return QID_OK;
}

static void check_eval(void)
{
    const char *tok = make_tokens("fixture.h5", FIX "/tokens.u16", 96, 16);
    const char *llama = tap_import_fixture("llama-tiny", -1, -1), *neox = tap_import_fixture("gpt-neox-tiny", -1, -1);
    const char *neox16 = tap_import_fixture("gpt-neox-tiny-fp16", -1, -1);
    double want, wwin[3];
    reference("llama-tiny", &want, wwin);
    qid_eval_opts o = {0};
    qid_eval_result r, r2;
    qid_error err;
    int rc = qid_eval_file(llama, tok, &o, &r, &err);
    ok(rc == QID_OK, "llama-tiny evaluates on the fixture token set%s%s", rc ? ": " : "", rc ? err.msg : "");
    ok(r.n_windows == 3 && r.seq_len == 16 && r.tokens_scored == 45 && r.tokens_processed == 48 &&
           r.window_tokens[2] == 15,
       "3 windows x 16 tokens: 45 predictions scored, 15 a window");
    ok(fabs(r.loss - want) / want <= 1e-5, "loss %.9f vs transformers %.9f (relative %.2g, tolerance 1e-5)", r.loss,
       want, fabs(r.loss - want) / want);
    is_double(exp(r.loss), r.perplexity, 1e-12 * r.perplexity, "perplexity = exp(loss) = %.4f", r.perplexity);
    double worst = 0;
    for (int i = 0; i < 3; i++)
        worst = fmax(worst, fabs(r.window_nll[i] - wwin[i]) / wwin[i]);
    ok(worst <= 1e-5, "per-window NLL sums match transformers within %.2g relative", worst);
    ok(r.tokens_per_s > 0 && r.peak_rss_kb > 0 && r.seconds > 0,
       "speed (%.0f tokens/s) and peak memory (%ld KiB) reported", r.tokens_per_s, r.peak_rss_kb);

    /* batching: one window per pass gives the same numbers (float rounding) */
    qid_eval_opts ob = {.batch_windows = 1};
    rc = qid_eval_file(llama, tok, &ob, &r2, &err);
    worst = 0;
    for (int i = 0; i < 3; i++)
        worst = fmax(worst, fabs(r2.window_nll[i] - r.window_nll[i]) / r.window_nll[i]);
    ok(rc == QID_OK && r2.batch_windows == 1 && worst < 1e-6,
       "one window per pass: per-window NLL equal up to float32 rounding (%.2g relative, < 1e-6)", worst);
    qid_eval_result_free(&r2);

    /* --windows */
    qid_eval_opts ow = {.max_windows = 2};
    rc = qid_eval_file(llama, tok, &ow, &r2, &err);
    ok(rc == QID_OK && r2.n_windows == 2 && fabs(r2.window_nll[1] - r.window_nll[1]) < 1e-6 * r.window_nll[1],
       "--windows 2: the first two windows, same NLL up to float32 rounding (1e-6 relative)");
    qid_eval_result_free(&r2);

    /* second half */
    qid_eval_opts oh = {.second_half = 1};
    rc = qid_eval_file(llama, tok, &oh, &r2, &err);
    ok(rc == QID_OK && r2.tokens_scored == 21 && r2.score_from == 8 && r2.loss > 0,
       "second half: 7 predictions a window (positions 8..14), loss %.6f", r2.loss);
    qid_eval_result_free(&r2);

    /* re-cut into windows of 8: the same as evaluating the stream cut by hand */
    qid_eval_opts os = {.seq_len = 8};
    rc = qid_eval_file(llama, tok, &os, &r2, &err);
    {
        size_t len;
        char *raw = tap_read_file(FIX "/tokens.u16", &len);
        uint32_t ids[48];
        for (int i = 0; i < 48; i++) {
            uint16_t v;
            memcpy(&v, raw + 2 * i, 2);
            ids[i] = v;
        }
        free(raw);
        qid_model *m = NULL;
        qid_model_open(llama, &m, &err);
        qid_eval_result r3;
        qid_eval_opts plain = {0};
        int rc3 = qid_eval_windows(m, ids, 6, 8, &plain, &r3, &err);
        ok(rc == QID_OK && rc3 == QID_OK && r2.n_windows == 6 && r2.seq_len == 8 && r2.tokens_scored == 42 &&
               memcmp(r2.window_nll, r3.window_nll, 6 * sizeof(double)) == 0,
           "--seq-len 8: 6 windows of 8, equal to the stream cut by hand");
        qid_eval_result_free(&r3);
        qid_model_free(m);
    }
    qid_eval_result_free(&r2);
    qid_eval_result_free(&r);

    /* KL and a paired comparison: float16-rounded linears against the float32 model */
    qid_eval_result base, q;
    qid_eval_opts ok_kl = {.kl = 1, .weight_hook = round_hook};
    rc = qid_eval_file(neox, tok, &o, &base, &err);
    rc |= qid_eval_file(neox, tok, &ok_kl, &q, &err);
    ok(rc == QID_OK && q.ref_loss == base.loss && q.kl > 0 && q.kl < 1e-4,
       "kl: reference loss is the unmodified loss; mean KL of float16 linears %.3e nats/token", q.kl);
    qid_eval_paired p;
    rc = qid_eval_paired_diff(q.ref_window_nll, q.window_nll, q.window_tokens, q.n_windows, &p, &err);
    ok(rc == QID_OK && fabs(p.diff - (q.loss - q.ref_loss)) < 1e-12 && isfinite(p.se) && p.se > 0,
       "paired: QiD of float16 linears %.3e +- %.1e nats/token", p.diff, p.se);
    qid_eval_result_free(&q);
    qid_eval_result r16;
    rc = qid_eval_file(neox16, tok, &o, &r16, &err);
    rc |= qid_eval_paired_diff(base.window_nll, r16.window_nll, base.window_tokens, 3, &p, &err);
    ok(rc == QID_OK && fabs(p.diff - (r16.loss - base.loss)) < 1e-12,
       "paired: float16 checkpoint vs float32, diff %.3e +- %.1e nats/token", p.diff, p.se);
    qid_eval_result_free(&r16);
    qid_eval_result_free(&base);
}

/* ---- bad inputs ----------------------------------------------------------- */

static void check_errors(void)
{
    const char *neox = tap_import_fixture("gpt-neox-tiny", -1, -1);
    qid_eval_opts o = {0};
    qid_eval_result r;
    qid_error err;

    /* a token set whose vocabulary (200) exceeds the model's (96), ids all small */
    const char *big = make_tokens("vocab200.h5", FIX "/tokens.u16", 200, 16);
    int rc = qid_eval_file(neox, big, &o, &r, &err);
    ok(rc == QID_E_INVALID, "a token set with a vocabulary of 200 on a model of 96 fails");
    like(err.msg, "has a vocabulary of 200 ids, more than the 96 of model", "with: %s", err.msg);
    qid_eval_result_free(&r);

    /* windows of 80 tokens on a model with max_seq_len 64 */
    uint16_t ids[160];
    for (int i = 0; i < 160; i++)
        ids[i] = (uint16_t)(i % 96);
    const char *raw = tap_path("long.u16");
    tap_write_file(raw, ids, sizeof ids);
    const char *longset = make_tokens("long.h5", raw, 96, 80);
    rc = qid_eval_file(neox, longset, &o, &r, &err);
    ok(rc == QID_E_INVALID, "windows of 80 tokens on a model with max_seq_len 64 fail");
    like(err.msg, "windows of 80 tokens are longer than the context (max_seq_len 64)", "with: %s", err.msg);
    qid_eval_result_free(&r);
    qid_eval_opts cut = {.seq_len = 64};
    rc = qid_eval_file(neox, longset, &cut, &r, &err);
    ok(rc == QID_OK && r.n_windows == 2, "the same set re-cut with --seq-len 64 runs (2 windows)");
    qid_eval_result_free(&r);

    /* NaN weights */
    const char *nan = tap_path("nan.h5");
    qid_import_opts io = {.dir = FIX "/llama-tiny", .out = nan, .step = -1, .tokens = -1};
    if (qid_import_safetensors(&io, &err)) bail("import: %s", err.msg);
    hid_t f = H5Fopen(nan, H5F_ACC_RDWR, H5P_DEFAULT), d = H5Dopen2(f, "/layers/0/attn.v.weight", H5P_DEFAULT);
    static float w[16 * 32];
    H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
    w[3] = INFINITY;
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
    H5Dclose(d);
    H5Fclose(f);
    const char *tok = make_tokens("fixture2.h5", FIX "/tokens.u16", 96, 16);
    rc = qid_eval_file(nan, tok, &o, &r, &err);
    ok(rc == QID_E_NUMERIC, "an infinite weight fails with a numeric error");
    like(err.msg, "non-finite weight inf at element 3 of tensor '/layers/0/attn.v.weight'", "naming it: %s", err.msg);
    ok(strchr(err.msg, '\n') == NULL, "in one line");
    qid_eval_result_free(&r);

    /* a missing token set */
    rc = qid_eval_file(neox, tap_path("missing.h5"), &o, &r, &err);
    ok(rc != QID_OK && strstr(err.msg, "missing.h5"), "a missing token set names the file: %s", err.msg);
    qid_eval_result_free(&r);
}

int main(void)
{
    plan(11 + 13 + 9);
    qid_h5_silence();
    check_paired();
    check_eval();
    check_errors();
    return 0;
}
