/* cmd_eval.c - `qid eval CKPT TOKENS`: its usage, its options (cli_parse)
 * and the printing of one evaluation (loss to full precision, perplexity,
 * tokens, speed, peak memory, optionally every window); with a reference
 * (--ref CKPT, or CKPT itself under --quant FORMAT) the paired QiD, with
 * --kl the divergence report as llama.cpp's `llama-perplexity
 * --kl-divergence` prints it, and with --target-se adaptive evaluation.
 *
 * Does not: evaluate (eval.h), quantize (quantize.h). */
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "error.h"
#include "eval.h"
#include "kernels.h"
#include "quantize.h"
#include "tokens.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: qid eval CKPT TOKENS [--windows N] [--seq-len L] [--batch B] [--threads T]\n"
                 "                [--second-half] [--per-window]\n"
                 "                [--quant FORMAT [--method rtn|gptq|awq] [--calib TOKENS] [--samples N] | --ref REF]\n"
                 "                [--kl] [--target-se S] [--target-rse R] [--min-windows M] [--block-windows B]\n"
                 "                [--seed S]\n"
                 "\n"
                 "Evaluates checkpoint CKPT (qid import) on token set TOKENS (qid tokens): the mean\n"
                 "cross-entropy of every predicted token (nats/token, to full precision), perplexity,\n"
                 "speed and peak memory. The model is streamed layer by layer over each batch of windows.\n"
                 "\n"
                 "  --windows N      evaluate the first N windows (default: all)\n"
                 "  --seq-len L      re-cut the token stream into windows of L tokens (default: the set's)\n"
                 "  --batch B        windows per streamed pass (default: 8192 tokens' worth, at most 1 GiB)\n"
                 "  --threads T      OpenMP and OpenBLAS threads (default: the libraries' defaults)\n"
                 "  --second-half    score only the second half of each window (llama.cpp's convention)\n"
                 "  --per-window     also print each window's NLL sum and scored tokens\n"
                 "\n"
                 "Against a reference (QiD = loss - reference loss on the same windows, with its SE):\n"
                 "  --quant FORMAT   quantize CKPT in memory (e.g. int4-g128-sym, mxfp4); CKPT is the reference\n"
                 "  --method M       rtn (default), gptq or awq (both need --calib)\n"
                 "  --calib TOKENS   GPTQ calibration token set; --samples N windows of it (default 128)\n"
                 "  --ref REF        REF is the reference (16-bit) checkpoint and CKPT the one to judge\n"
                 "                   (e.g. written by qid quantize), same vocabulary\n"
                 "  --kl             the divergence report against the reference: KL mean, median,\n"
                 "                   percentiles and max, top-1 agreement, Delta-p, ln(PPL(Q)/PPL(ref))\n"
                 "  --target-se S    adaptive: the reference runs every window, CKPT windows in a seeded\n"
                 "                   order in blocks until the SE of QiD < max(S, R x |QiD|)\n"
                 "  --target-rse R   relative target (default 0.05 with --target-se, else 0)\n"
                 "  --min-windows M  adaptive: at least M windows (default 32); --block-windows B (32)\n"
                 "  --seed S         seed of the window order and of the calibration sample (default 0)\n"
                 "\n"
                 "examples:\n"
                 "  qid eval ckpt.h5 eval.h5 --quant int4-g128-sym --kl\n"
                 "  qid eval q.h5 eval.h5 --ref ckpt.h5 --kl --second-half\n"
                 "  qid eval ckpt.h5 eval.h5 --quant int2-g128-sym --target-se 0.001\n");
}

static int take_method(const char *value, void *dest)
{
    int m = qid_quantize_method_parse(value);
    if (m < 0) return -1;
    *(qid_quantize_method *)dest = (qid_quantize_method)m;
    return 0;
}

/* The divergence report, llama.cpp's lines and units (percent for
 * probabilities). */
static void print_divergence(const qid_divergence *d)
{
    printf("divergence   over %" PRId64 " predictions (SEs take tokens as independent)\n", d->tokens);
    printf("  ln(PPL(Q)/PPL(ref)) %12.6f +- %.6f\n", d->ln_ppl_ratio, d->ln_ppl_ratio_se);
    printf("  Mean    KLD  %12.6f +- %.6f\n", d->kl, d->kl_se);
    printf("  Maximum KLD  %12.6f\n", d->kl_max);
    printf("  99.9%%   KLD  %12.6f\n", d->kl_p99_9);
    printf("  99.0%%   KLD  %12.6f\n", d->kl_p99);
    printf("  95.0%%   KLD  %12.6f\n", d->kl_p95);
    printf("  90.0%%   KLD  %12.6f\n", d->kl_p90);
    printf("  Median  KLD  %12.6f\n", d->kl_median);
    printf("  10.0%%   KLD  %12.6f\n", d->kl_p10);
    printf("   5.0%%   KLD  %12.6f\n", d->kl_p5);
    printf("   1.0%%   KLD  %12.6f\n", d->kl_p1);
    printf("  Same top p   %9.3f +- %.3f %%\n", 100 * d->top1, 100 * d->top1_se);
    printf("  Mean    dp   %9.3f +- %.3f %%\n", 100 * d->dp_mean, 100 * d->dp_se);
    printf("  RMS     dp   %9.3f +- %.3f %%\n", 100 * d->dp_rms, 100 * d->dp_rms_se);
    const struct {
        const char *label;
        double v;
    } dp[] = {{"Maximum", d->dp_max}, {"99.9%  ", d->dp_p99_9}, {"99.0%  ", d->dp_p99},    {"95.0%  ", d->dp_p95},
              {"90.0%  ", d->dp_p90}, {"75.0%  ", d->dp_p75},   {"Median ", d->dp_median}, {"25.0%  ", d->dp_p25},
              {"10.0%  ", d->dp_p10}, {" 5.0%  ", d->dp_p5},    {" 1.0%  ", d->dp_p1},     {" 0.1%  ", d->dp_p0_1},
              {"Minimum", d->dp_min}};
    for (size_t i = 0; i < sizeof dp / sizeof dp[0]; i++)
        printf("  %s dp   %9.3f %%\n", dp[i].label, 100 * dp[i].v);
}

/* `qid eval CKPT TOKENS [options]` (usage above): prints "key value" lines.
 * Returns 0, 1 on a failed evaluation (one "qid eval: error: ..." line on
 * stderr), 2 on bad usage. */
int qid_eval_main(int argc, char **argv)
{
    qid_eval_opts o = {0};
    int per_window = 0, kl = 0;
    const char *quant = NULL, *ref = NULL, *calib = NULL;
    qid_quantize_method method = QID_QUANTIZE_RTN;
    size_t samples = 0, min_windows = 32, block = 32;
    double target_se = -1, target_rse = -1;
    uint64_t seed = 0;
    const cli_opt opts[] = {
        CLI_OPT_SIZE("windows", &o.max_windows, 1, 9e18, "a positive integer"),
        CLI_OPT_SIZE("seq-len", &o.seq_len, 1, QID_TOKENS_MAX_SEQ_LEN, "1..16777216"),
        CLI_OPT_SIZE("batch", &o.batch_windows, 1, 9e18, "a positive integer"),
        CLI_OPT_INT("threads", &o.threads, 1, 4096, "1..4096"),
        CLI_OPT_FLAG("second-half", &o.second_half),
        CLI_OPT_FLAG("per-window", &per_window),
        CLI_OPT_STR("quant", &quant),
        CLI_OPT_FN("method", &method, take_method, "rtn, gptq or awq"),
        CLI_OPT_STR("calib", &calib),
        CLI_OPT_SIZE("samples", &samples, 1, 1000000, "1..1000000"),
        CLI_OPT_STR("ref", &ref),
        CLI_OPT_FLAG("kl", &kl),
        CLI_OPT_REAL("target-se", &target_se, 0, 1, 0, "a number 0..1 (nats/token)"),
        CLI_OPT_REAL("target-rse", &target_rse, 0, 1, 0, "a number 0..1"),
        CLI_OPT_SIZE("min-windows", &min_windows, 2, 9e18, "an integer >= 2"),
        CLI_OPT_SIZE("block-windows", &block, 1, 9e18, "a positive integer"),
        CLI_OPT_U64("seed", &seed, 0, "a whole number"),
    };
    const cli_spec spec = {
        "eval", usage, opts, sizeof opts / sizeof opts[0], 2, 2, "give a checkpoint and a token set"};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1; /* the positional arguments */
    if (rc != CLI_OK) {
        return rc == CLI_HELP ? 0 : rc;
    }
    const char *ckpt = args[0], *tokens = args[1];
    const int adaptive = target_se >= 0 || target_rse >= 0;
    if (quant && ref) return cli_usage_error("eval", "give --quant FORMAT or --ref REF, not both");
    if ((kl || adaptive) && !quant && !ref)
        return cli_usage_error("eval", "--%s needs a reference: --quant FORMAT or --ref REF", kl ? "kl" : "target-se");
    if (!quant && (calib || samples || method != QID_QUANTIZE_RTN))
        return cli_usage_error("eval", "--method, --calib and --samples need --quant FORMAT");
    if (quant && qid_quantize_method_calibrated(method) && !calib)
        return cli_usage_error("eval", "--method %s needs a calibration token set (--calib TOKENS)",
                               qid_quantize_method_name(method));
    if (!adaptive && (min_windows != 32 || block != 32))
        return cli_usage_error("eval", "--min-windows and --block-windows need --target-se or --target-rse");

    qid_error err;
    qid_error_clear(&err);
    qid_quantize_opts qo;
    qid_quantize_opts_default(&qo);
    if (quant && qid_quant_parse(quant, &qo.spec, &err)) return cli_usage_error("eval", "%s", err.msg);
    qo.method = method;
    qid_quantizer *qz = NULL;
    qid_model *refm = NULL, *m = NULL;
    uint32_t *cal = NULL;
    qid_eval_result r = {0}, base = {0};
    qid_eval_stop stop = {.min_windows = min_windows,
                          .block = block,
                          .target_se = target_se >= 0 ? target_se : 0,
                          .target_rse = target_rse >= 0 ? target_rse : (target_se >= 0 ? 0.05 : 0),
                          .seed = seed};
    int status = 0;
    if (quant) {
        if (qid_model_open(ckpt, &m, &err)) goto fail;
        if (qid_quantize_check(qid_model_cfg(m), &qo, &err)) goto fail;
        if (qid_quantize_method_calibrated(method)) {
            size_t cn = 0, cl = 0;
            if (qid_quantize_read_calib(calib, qid_model_cfg(m), samples, seed, &cal, &cn, &cl, &err)) goto fail;
            o.calib_tokens = cal;
            o.calib_windows = cn;
            o.calib_seq_len = cl;
        }
        qz = qid_quantizer_create(&qo);
        qid_quantizer_set_model(qz, qid_model_cfg(m));
        qid_model_free(m);
        m = NULL;
        qid_quantizer_hooks(qz, &o.weight_hook, &o.weight_ctx, &o.act_hook, &o.act_ctx);
    }
    const char *base_ckpt = ref ? ref : ckpt;
    if (adaptive || ((quant || ref) && !kl)) { /* the reference alone, every window */
        qid_eval_opts bo = {.max_windows = o.max_windows,
                            .seq_len = o.seq_len,
                            .batch_windows = o.batch_windows,
                            .second_half = o.second_half,
                            .threads = o.threads};
        if (qid_eval_file(base_ckpt, tokens, &bo, &base, &err)) goto fail;
    }
    if (kl) {
        o.kl = 1;
        if (ref && qid_model_open(ref, &refm, &err)) goto fail;
        o.ref_model = refm;
    }
    if (adaptive) {
        o.stop = &stop;
        o.base_nll = base.window_nll;
        o.base_windows = base.n_windows;
    }
    if (qid_eval_file(ckpt, tokens, &o, &r, &err)) goto fail;

    const size_t per = qid_scored_per_window(r.seq_len, r.score_from);
    printf("checkpoint   %s\n", ckpt);
    if (quant) printf("quantized    %s (%s, in memory)\n", quant, qid_quantize_method_name(method));
    if (ref) printf("reference    %s\n", ref);
    printf("token set    %s\n", tokens);
    printf("windows      %zu x %zu tokens, %zu per pass\n", r.windows_used, r.seq_len, r.batch_windows);
    if (adaptive)
        printf("adaptive     %zu of %zu windows (min %zu, blocks of %zu, SE target max(%g, %g |QiD|), seed %" PRIu64
               ")\n",
               r.windows_used, r.n_windows, stop.min_windows, stop.block, stop.target_se, stop.target_rse, seed);
    printf("scoring      %s: %zu predictions a window\n", o.second_half ? "second half" : "every predicted token", per);
    printf("loss         %.17g nats/token\n", r.loss);
    printf("perplexity   %.6f\n", r.perplexity);
    if (quant || ref) {
        double qid = NAN, se = NAN, loss16 = NAN;
        if (adaptive) {
            qid = r.qid;
            se = r.qid_se;
            loss16 = r.loss - r.qid;
        } else {
            qid_eval_paired p;
            const double *a = kl ? r.ref_window_nll : base.window_nll;
            if (qid_eval_paired_diff(a, r.window_nll, r.window_tokens, r.n_windows, &p, &err)) goto fail;
            qid = p.diff;
            se = p.se;
            loss16 = p.loss_a;
        }
        printf("ref loss     %.17g nats/token\n", loss16);
        printf("qid          %.17g +- %.3g (paired over windows)\n", qid, se);
    }
    printf("tokens       %" PRId64 " scored, %" PRId64 " processed\n", r.tokens_scored, r.tokens_processed);
    printf("seconds      %.3f (reading %.3f)\n", r.seconds, r.stats.read_s);
    printf("tokens/s     %.1f\n", r.tokens_per_s);
    printf("threads      %d OpenMP, kernels %s, OpenBLAS %s\n", omp_get_max_threads(), qid_k_impl_name(),
           qid_blas_init());
    printf("peak memory  %.1f MiB (maximum resident set)\n", (double)r.peak_rss_kb / 1024.0);
    if (kl) print_divergence(&r.div);
    if (per_window)
        for (size_t w = 0; w < r.n_windows; w++)
            if (r.window_tokens[w] > 0)
                printf("window %zu nll %.9f tokens %" PRId64 "\n", w, r.window_nll[w], r.window_tokens[w]);
    goto done;
fail:
    status = cli_fail("eval", "%s", err.msg);
done:
    qid_eval_result_free(&r);
    qid_eval_result_free(&base);
    qid_model_free(refm);
    qid_model_free(m);
    if (qz) qid_quantizer_free(qz);
    free(cal);
    return status;
}
