/* test_divergence.c - the divergence report (divergence.h) against NumPy,
 * and as the evaluator makes it (eval.h with kl).
 *
 * Fixture test/fixtures/divergence/: 6 windows of 24 tokens of the tiny
 * GPT-NeoX model (test/fixtures/hf/gpt-neox-tiny), its float32 logits
 * (ref.f32) and those of the same model with RTN int3-g16-sym weights
 * (q.f32), written by `build/test/divergence.t --dump DIR`, and
 * expected.txt: every statistic computed in float64 by NumPy from those
 * logits (tools/make_divergence_fixture.py). Checked:
 *   1. the report of qid_divergence_compute from per-token values computed
 *      here in float64 from the committed logits equals NumPy's to 1e-6
 *      relative (1e-12 absolute near zero);
 *   2. qid_eval_file with kl and the same RTN quantizer gives the report
 *      that qid_divergence_compute gives from the logits of the same run,
 *      to 1e-6 relative (the head's KL sums float32 terms in float64), and
 *      per-window KL / NLL sums that match the per-token values;
 *   3. the percentile rule on hand-made values; bad inputs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "divergence.h"
#include "eval.h"
#include "model.h"
#include "quantize.h"
#include "rng.h"
#include "tap.h"
#include "tokens.h"

#define FIXDIR "test/fixtures/divergence"
#define NW     6
#define SEQ    24
#define VOCAB  96
#define FORMAT "int3-g16-sym"

/* The statistics in expected.txt's order (name, member). */
#define STAT(m)                                                                                                        \
    {                                                                                                                  \
#m, offsetof(qid_divergence, m)                                                                                \
    }
static const struct {
    const char *name;
    size_t off;
} stats[] = {
    STAT(kl),           STAT(kl_se),           STAT(kl_median), STAT(kl_p99_9), STAT(kl_p99),    STAT(kl_p95),
    STAT(kl_p90),       STAT(kl_p10),          STAT(kl_p5),     STAT(kl_p1),    STAT(kl_max),    STAT(top1),
    STAT(top1_se),      STAT(dp_mean),         STAT(dp_se),     STAT(dp_rms),   STAT(dp_rms_se), STAT(dp_max),
    STAT(dp_p99_9),     STAT(dp_p99),          STAT(dp_p95),    STAT(dp_p90),   STAT(dp_p75),    STAT(dp_median),
    STAT(dp_p25),       STAT(dp_p10),          STAT(dp_p5),     STAT(dp_p1),    STAT(dp_p0_1),   STAT(dp_min),
    STAT(ln_ppl_ratio), STAT(ln_ppl_ratio_se),
};
#define N_STATS (sizeof stats / sizeof stats[0])

static double stat_of(const qid_divergence *d, size_t i) { return *(const double *)((const char *)d + stats[i].off); }

/* 1 when a and b agree to rel relative (abs absolute near zero). */
static int close_to(double a, double b, double rel, double abs_tol) { return fabs(a - b) <= rel * fabs(a) + abs_tol; }

/* The windows: seeded ids below VOCAB. */
static void make_ids(uint32_t *ids)
{
    qid_rng rng;
    qid_rng_seed(&rng, 18, 0);
    for (size_t i = 0; i < NW * SEQ; i++)
        ids[i] = (uint32_t)qid_rng_below(&rng, VOCAB);
}

/* Per-token values in float64 from the logits of the reference (lr) and
 * the quantized model (lq), both (NW, SEQ, VOCAB), every prediction scored. */
static void token_values(const float *lr, const float *lq, const uint32_t *ids, double *kl, double *nll, double *ref,
                         uint8_t *same)
{
    size_t t = 0;
    for (size_t w = 0; w < NW; w++)
        for (size_t p = 0; p + 1 < SEQ; p++, t++) {
            const float *a = lr + (w * SEQ + p) * VOCAB, *b = lq + (w * SEQ + p) * VOCAB;
            double ma = a[0], mb = b[0], sa = 0, sb = 0;
            size_t ia = 0, ib = 0;
            for (size_t v = 1; v < VOCAB; v++) {
                if (a[v] > a[ia]) ia = v;
                if (b[v] > b[ib]) ib = v;
            }
            ma = a[ia];
            mb = b[ib];
            for (size_t v = 0; v < VOCAB; v++) {
                sa += exp((double)a[v] - ma);
                sb += exp((double)b[v] - mb);
            }
            double la = ma + log(sa), lb = mb + log(sb), k = 0;
            for (size_t v = 0; v < VOCAB; v++) {
                double pa = (double)a[v] - la, pb = (double)b[v] - lb;
                k += exp(pa) * (pa - pb);
            }
            uint32_t next = ids[w * SEQ + p + 1];
            kl[t] = k;
            ref[t] = la - (double)a[next];
            nll[t] = lb - (double)b[next];
            same[t] = ia == ib;
        }
}

/* Logits of every position of the windows, with the RTN quantizer (q) or not. */
static void run_logits(const char *ckpt, const uint32_t *ids, int quantized, float *logits)
{
    qid_model *m = NULL;
    qid_error err;
    if (qid_model_open(ckpt, &m, &err)) bail("open: %s", err.msg);
    qid_quantize_opts qo;
    qid_quantize_opts_default(&qo);
    if (qid_quant_parse(FORMAT, &qo.spec, &err)) bail("%s", err.msg);
    qid_quantizer *qz = qid_quantizer_create(&qo);
    double nll[NW];
    qid_forward_opts f = {.window_nll = nll, .logits = logits};
    if (quantized) {
        qid_act_hook ah;
        void *actx;
        qid_quantizer_hooks(qz, &f.weight_hook, &f.weight_ctx, &ah, &actx);
    }
    if (qid_model_forward(m, ids, NW, SEQ, &f, &err)) bail("forward: %s", err.msg);
    qid_quantizer_free(qz);
    qid_model_free(m);
}

static const char *tokens_file(const uint32_t *ids)
{
    uint16_t raw[NW * SEQ];
    for (size_t i = 0; i < NW * SEQ; i++)
        raw[i] = (uint16_t)ids[i];
    const char *rawp = tap_path("div.u16"), *out = tap_path("div.h5");
    tap_write_file(rawp, raw, sizeof raw);
    qid_tokens_import_opts o = {.input = rawp,
                                .output = out,
                                .source = QID_TOKENS_SRC_U16,
                                .vocab_size = VOCAB,
                                .tokenizer = "test",
                                .seq_len = SEQ,
                                .force = 1};
    qid_error err;
    if (qid_tokens_import(&o, NULL, &err)) bail("tokens: %s", err.msg);
    return out;
}

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tap_write_file(path, p, n);
}

/* --dump DIR: the fixture's inputs (tools/make_divergence_fixture.py reads them). */
static int dump(const char *dir)
{
    const char *ckpt = tap_import_fixture("gpt-neox-tiny", -1, -1);
    static uint32_t ids[NW * SEQ];
    static float lr[NW * SEQ * VOCAB], lq[NW * SEQ * VOCAB];
    make_ids(ids);
    run_logits(ckpt, ids, 0, lr);
    run_logits(ckpt, ids, 1, lq);
    char meta[128];
    int n =
        snprintf(meta, sizeof meta, "windows %d seq_len %d vocab %d score_from 0 format %s\n", NW, SEQ, VOCAB, FORMAT);
    write_file(dir, "meta.txt", meta, (size_t)n);
    write_file(dir, "tokens.u32", ids, sizeof ids);
    write_file(dir, "ref.f32", lr, sizeof lr);
    write_file(dir, "q.f32", lq, sizeof lq);
    return 0;
}

static float *read_f32(const char *name, size_t n)
{
    size_t len;
    char *p = tap_read_file(name, &len);
    if (len != n * sizeof(float)) bail("%s: %zu bytes, expected %zu", name, len, n * sizeof(float));
    return (float *)(void *)p;
}

/* 1. the committed logits: qid's report vs NumPy's */
static void check_numpy(void)
{
    size_t len, nt = NW * (SEQ - 1);
    char *tk = tap_read_file(FIXDIR "/tokens.u32", &len);
    if (len != NW * SEQ * sizeof(uint32_t)) bail("tokens.u32: %zu bytes", len);
    float *lr = read_f32(FIXDIR "/ref.f32", NW * SEQ * VOCAB), *lq = read_f32(FIXDIR "/q.f32", NW * SEQ * VOCAB);
    double *kl = malloc(nt * sizeof *kl), *nll = malloc(nt * sizeof *nll), *ref = malloc(nt * sizeof *ref);
    uint8_t *same = malloc(nt);
    token_values(lr, lq, (const uint32_t *)(void *)tk, kl, nll, ref, same);
    qid_divergence d;
    qid_error err;
    is_int(QID_OK, qid_divergence_compute(kl, nll, ref, same, nt, &d, &err), "report over %zu predictions", nt);
    is_int((int)nt, (int)d.tokens, "... counts them");
    char *exp_text = tap_read_file(FIXDIR "/expected.txt", NULL);
    size_t bad = 0, seen = 0;
    for (char *line = strtok(exp_text, "\n"); line; line = strtok(NULL, "\n")) {
        char name[64];
        double want;
        if (line[0] == '#' || sscanf(line, "%63s %lf", name, &want) != 2) continue;
        for (size_t i = 0; i < N_STATS; i++)
            if (strcmp(stats[i].name, name) == 0) {
                seen++;
                double got = stat_of(&d, i);
                if (!close_to(want, got, 1e-6, 1e-12)) {
                    diag("%s: NumPy %.17g, qid %.17g", name, want, got);
                    bad++;
                }
            }
    }
    is_int((int)N_STATS, (int)seen, "expected.txt has every statistic");
    is_int(0, (int)bad, "every statistic equals NumPy's float64 computation to 1e-6 relative");
    diag("KL mean %.6g median %.6g max %.6g, top-1 %.4f, dp rms %.6g, ln ppl ratio %.6g +- %.3g", d.kl, d.kl_median,
         d.kl_max, d.top1, d.dp_rms, d.ln_ppl_ratio, d.ln_ppl_ratio_se);
    free(exp_text);
    free(tk);
    free(lr);
    free(lq);
    free(kl);
    free(nll);
    free(ref);
    free(same);
}

/* 2. the evaluator's report vs the same computation from the same run's logits */
static void check_eval(void)
{
    const char *ckpt = tap_import_fixture("gpt-neox-tiny", -1, -1);
    static uint32_t ids[NW * SEQ];
    static float lr[NW * SEQ * VOCAB], lq[NW * SEQ * VOCAB];
    make_ids(ids);
    run_logits(ckpt, ids, 0, lr);
    run_logits(ckpt, ids, 1, lq);
    size_t nt = NW * (SEQ - 1);
    double kl[NW * (SEQ - 1)], nll[NW * (SEQ - 1)], ref[NW * (SEQ - 1)];
    uint8_t same[NW * (SEQ - 1)];
    token_values(lr, lq, ids, kl, nll, ref, same);
    qid_divergence want;
    qid_error err;
    if (qid_divergence_compute(kl, nll, ref, same, nt, &want, &err)) bail("%s", err.msg);

    qid_quantize_opts qo;
    qid_quantize_opts_default(&qo);
    if (qid_quant_parse(FORMAT, &qo.spec, &err)) bail("%s", err.msg);
    qid_quantizer *qz = qid_quantizer_create(&qo);
    qid_eval_opts o = {.kl = 1};
    qid_quantizer_hooks(qz, &o.weight_hook, &o.weight_ctx, &o.act_hook, &o.act_ctx);
    qid_eval_result r;
    int rc = qid_eval_file(ckpt, tokens_file(ids), &o, &r, &err);
    is_int(QID_OK, rc, "qid_eval_file with kl and %s: %s", FORMAT, rc ? err.msg : "ok");
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < N_STATS; i++) {
        double a = stat_of(&want, i), b = stat_of(&r.div, i);
        if (a != 0 && fabs(a - b) / fabs(a) > worst) worst = fabs(a - b) / fabs(a);
        if (!close_to(a, b, 1e-6, 1e-9)) {
            diag("%s: from the logits %.17g, from the evaluator %.17g", stats[i].name, a, b);
            bad++;
        }
    }
    is_int(0, (int)bad, "the evaluator's report equals the one from its logits (1e-6 relative)");
    diag("largest relative difference %.3g", worst);
    is_double(r.kl, r.div.kl, 1e-12, "kl (per-window sums) equals the report's mean KL");
    is_double(r.loss - r.ref_loss, r.div.ln_ppl_ratio, 1e-12, "ln(PPL(Q)/PPL(ref)) = loss - reference loss");
    double s = 0;
    for (size_t t = 0; t < SEQ - 1; t++)
        s += r.token_kl[t];
    is_double(r.window_kl[0], s, 1e-12, "window 0's KL is the sum of its tokens'");
    qid_eval_result_free(&r);

    /* without kl: no report */
    qid_eval_opts plain = {0};
    rc = qid_eval_file(ckpt, tokens_file(ids), &plain, &r, &err);
    ok(rc == QID_OK && isnan(r.div.kl) && r.div.tokens == 0 && !r.token_kl, "without kl the report is NaN");
    qid_eval_result_free(&r);
    qid_quantizer_free(qz);
}

/* 3. hand-made values and bad inputs */
static void check_rules(void)
{
    double v[5] = {1, 2, 3, 4, 10};
    is_double(3, qid_percentile_sorted(v, 5, 0.5), 0, "median of 5 values is the middle one");
    is_double(2.4, qid_percentile_sorted(v, 5, 0.35), 1e-12, "percentile 35 interpolates at 1.4");
    is_double(10, qid_percentile_sorted(v, 5, 1), 0, "percentile 100 is the maximum");
    is_double(1, qid_percentile_sorted(v, 5, 0), 0, "percentile 0 is the minimum");
    is_double(9.76, qid_percentile_sorted(v, 5, 0.99), 1e-12, "percentile 99 interpolates at 3.96");
    double even[4] = {1, 2, 3, 4};
    is_double(2.5, qid_percentile_sorted(even, 4, 0.5), 0, "median of 4 values: mean of the middle two");

    double kl[3] = {0.1, 0.2, 0.3}, a[3] = {1, 2, 3}, b[3] = {1, 1.5, 2.5};
    uint8_t same[3] = {1, 0, 1};
    qid_divergence d;
    qid_error err;
    is_int(QID_OK, qid_divergence_compute(kl, a, b, same, 3, &d, &err), "three predictions");
    is_double(0.2, d.kl, 1e-15, "mean KL");
    is_double(sqrt(0.02 / 3 / 2), d.kl_se, 1e-15, "its SE: sqrt(sum (x - mean)^2 / n / (n - 1))");
    is_double(2.0 / 3, d.top1, 1e-15, "top-1 agreement 2 of 3");
    is_double(sqrt(2.0 / 9 / 2), d.top1_se, 1e-15, "its SE sqrt(p (1 - p) / (n - 1))");
    is_double(exp(-2.0) - exp(-1.5), d.dp_min, 1e-15, "Delta-p = exp(-nll) - exp(-ref nll)");
    is_double(1.0 / 3, d.ln_ppl_ratio, 1e-15, "ln(PPL(Q)/PPL(ref)) = mean NLL difference");

    is_int(QID_E_INVALID, qid_divergence_compute(kl, a, b, same, 0, &d, &err), "no predictions: QID_E_INVALID");
    like(err.msg, "divergence report over no predictions", "... saying so");
    a[1] = NAN;
    is_int(QID_E_INVALID, qid_divergence_compute(kl, a, b, same, 3, &d, &err), "a NaN NLL: QID_E_INVALID");
    like(err.msg, "prediction 1: KL 0.2, NLL nan", "... naming the prediction: %s", err.msg);
    ok(isnan(d.kl) && d.tokens == 0, "... and the report is NaN");
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dump") == 0) return dump(argv[2]);
    plan(28);
    check_numpy();
    check_eval();
    check_rules();
    return 0;
}
