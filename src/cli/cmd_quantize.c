/* cmd_quantize.c - `qid quantize`: the command line of whole-checkpoint
 * quantization (its usage, options and the summary it prints).
 *
 * Does not: quantize anything; qid_quantize_checkpoint (quantize.h) does the
 * work and this file only reads the options and prints what it did. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "parse.h"
#include "quantize.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: qid quantize CKPT --format F --method rtn|gptq|awq [--calib TOKENS] -o OUT.h5 [options]\n"
                 "\n"
                 "Quantizes every linear layer of a checkpoint and writes the quantized-dequantized\n"
                 "weights as a float32 checkpoint (embeddings, norms and biases as stored).\n"
                 "\n"
                 "options:\n"
                 "  --format F             int4-g128-sym, int3-g128-asym, int8-channel, mxfp4,\n"
                 "                         mxfp6-e3m2, mxfp8-e4m3, mxint8, mxint3-b128, nf4, fp4-b64, ...\n"
                 "  --method M             rtn (default), gptq, or awq (integer formats without -mse)\n"
                 "  --calib TOKENS         GPTQ, AWQ: calibration token set (qid tokens)\n"
                 "  --samples N            GPTQ, AWQ: calibration windows (default 128, or all the set has)\n"
                 "  --seed S               GPTQ, AWQ: seed of the calibration sample when it is not the whole set\n"
                 "                         (0)\n"
                 "  --damp X               GPTQ: damping, fraction of mean(diag H) (default 0.01)\n"
                 "  --block B              GPTQ: lazy-update block in columns (default 128)\n"
                 "  --micro-block M        GPTQ: micro-block (default: 1 for int, the format block for MX)\n"
                 "  --act-order            GPTQ: columns in order of descending diag H\n"
                 "  --static-groups        GPTQ: group parameters from the original weights\n"
                 "  --no-clip              AWQ: no clipping search (scales and rounding only)\n"
                 "  --calib-chunk SIZE     GPTQ, AWQ: activation memory of one calibration chunk of windows\n"
                 "                         (bytes: 256MiB (default), 1GiB, ...; 'all': every window at once)\n"
                 "  --scratch-dir DIR      GPTQ, AWQ: keep the calibration residual stream (d_model floats per\n"
                 "                         token) in a scratch file in DIR instead of memory\n"
                 "  --mem-limit SIZE       fail before starting when the predicted peak memory is larger\n"
                 "  -o, --output OUT       checkpoint to write (appears only when complete)\n"
                 "  --force                replace OUT if it exists\n"
                 "  -h, --help             this help\n"
                 "\n"
                 "example:\n"
                 "  qid quantize pythia-160m.h5 --format int4-g128 --method gptq --calib c4.h5 -o q.h5\n");
}

static int take_method(const char *value, void *dest)
{
    int m = qid_quantize_method_parse(value);
    if (m < 0) return -1;
    *(qid_quantize_method *)dest = (qid_quantize_method)m;
    return 0;
}

/* A byte count (qid_parse_bytes) as size_t; "all" is 0 (one chunk). */
static int take_chunk(const char *value, void *dest)
{
    double b;
    if (strcmp(value, "all") == 0) {
        *(size_t *)dest = 0;
        return 0;
    }
    if (qid_parse_bytes(value, &b) || b >= 9e18) return -1;
    *(size_t *)dest = b < 1 ? 1 : (size_t)b;
    return 0;
}

static int take_bytes(const char *value, void *dest) { return qid_parse_bytes(value, dest); }

/* Seeds are stored as int64: 0..2^63-1 exactly (a CLI_U64 bound is a double). */
static int take_seed(const char *value, void *dest) { return qid_parse_u64(value, INT64_MAX, dest); }

static void print_summary(const char *in, const char *out, const qid_quantize_opts *o, const qid_quantize_stats *st)
{
    char name[64];
    qid_quant_name(&o->spec, name, sizeof name);
    printf("checkpoint   %s\n", in);
    printf("output       %s (float32)\n", out);
    printf("format       %s\n", name);
    printf("method       %s\n", qid_quantize_method_name(o->method));
    if (qid_quantize_method_calibrated(o->method)) {
        printf("calibration  %zu windows x %zu tokens from %s\n", st->calib_windows, st->calib_seq_len, o->calib);
        printf("chunks       %zu of %zu windows, %zu chunk passes, residual stream in %s\n", st->calib.chunks,
               st->calib.chunk_windows, st->calib.chunk_passes, o->scratch_dir ? "a scratch file" : "memory");
        if (o->method == QID_QUANTIZE_GPTQ)
            printf("damping      %g requested, %g..%g used, %d retries\n", o->gptq.percdamp, st->percdamp_min,
                   st->percdamp_max, st->retries);
    }
    if (o->method == QID_QUANTIZE_AWQ && st->awq_groups)
        printf("awq          %zu groups scaled, mean ratio %.3f, output MSE %.4g (%.4g at s = 1), clipping %s\n",
               st->awq_groups, st->awq_ratio_sum / (double)st->awq_groups, st->awq_loss, st->awq_loss_rtn,
               o->awq.clip ? "searched" : "off");
    printf("tensors      %zu linear quantized (%zu weights)\n", st->tensors, st->params);
    if (qid_quant_traits_of(o->spec.type)->kind == QID_QUANT_KIND_GGUF) {
        /* each tensor's llama.cpp type: a mixture's choices and the fallbacks */
        printf("types       ");
        for (int t = 0; t < QID_QTYPE_COUNT; t++)
            if (st->per_type[t]) printf(" %s x%zu", qid_quant_traits_of((enum qid_qtype)t)->name, st->per_type[t]);
        if (st->f16) printf(" f16 x%zu", st->f16);
        printf("\n");
    }
    printf("sqnr         %.3f dB\n", qid_sqnr_acc_db(&st->sqnr));
    printf("seconds      %.3f\n", st->seconds);
    printf("peak memory  %.1f MiB (maximum resident set)\n", (double)st->peak_rss_kb / 1024.0);
}

int qid_quantize_main(int argc, char **argv)
{
    /* Counts (windows, columns) up to 2^30, as before the common parser. */
    const double max_count = (double)QID_QUANT_BLOCK_MAX * 1024;
    qid_quantize_opts o;
    qid_quantize_opts_default(&o);
    const char *format = NULL, *out = NULL;
    int force = 0, no_clip = 0;
    const cli_opt opts[] = {
        CLI_OPT_STR("format", &format),
        CLI_OPT_FN("method", &o.method, take_method, "rtn, gptq or awq"),
        CLI_OPT_STR("calib", &o.calib),
        CLI_OPT_SIZE("samples", &o.samples, 1, max_count, "a positive integer"),
        CLI_OPT_FN("seed", &o.seed, take_seed, "an integer in 0..2^63-1"),
        CLI_OPT_REAL("damp", &o.gptq.percdamp, 0, INFINITY, CLI_HI_OPEN, "a non-negative number"),
        CLI_OPT_SIZE("block", &o.gptq.block, 1, max_count, "a positive integer"),
        CLI_OPT_SIZE("micro-block", &o.gptq.micro_block, 1, max_count, "a positive integer"),
        CLI_OPT_FLAG("act-order", &o.gptq.act_order),
        CLI_OPT_FLAG("static-groups", &o.gptq.static_groups),
        CLI_OPT_FLAG("no-clip", &no_clip),
        CLI_OPT_FN("calib-chunk", &o.chunk_bytes, take_chunk, "a byte count (e.g. 256MiB, 1GiB) or 'all'"),
        CLI_OPT_STR("scratch-dir", &o.scratch_dir),
        CLI_OPT_FN("mem-limit", &o.mem_limit, take_bytes, "a byte count (e.g. 16GiB, 512MiB)"),
        {"output", 'o', CLI_STR, &out, 0, 0, 0, NULL, NULL},
        CLI_OPT_FLAG("force", &force),
    };
    const cli_spec spec = {"quantize", usage, opts, sizeof opts / sizeof opts[0], 1, 1, "no checkpoint given"};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1; /* the positional arguments */
    const char *in = n_args > 0 ? args[0] : NULL;
    if (rc == CLI_HELP) return 0;
    if (rc) return rc;
    if (!format) return cli_usage_error("quantize", "no format given (--format F)");
    if (!out) return cli_usage_error("quantize", "no output given (-o OUT.h5)");
    if (qid_quantize_method_calibrated(o.method) && !o.calib)
        return cli_usage_error("quantize", "--method %s needs a calibration token set (--calib TOKENS)",
                               qid_quantize_method_name(o.method));
    if (no_clip) o.awq.clip = 0;
    qid_error err;
    qid_error_clear(&err);
    if (qid_quant_parse(format, &o.spec, &err)) return cli_usage_error("quantize", "%s", err.msg);

    qid_h5_silence();
    /* the prediction, before anything is spent; the limit and every file
     * error are qid_quantize_checkpoint's to report */
    qid_quantize_opts plain = o;
    plain.mem_limit = 0;
    qid_mem_estimate e;
    qid_error perr;
    if (qid_quantize_plan(in, &plain, &e, &perr) == QID_OK) {
        char mem[320];
        qid_mem_estimate_format(&e, mem, sizeof mem);
        printf("expected     %s peak\n", mem);
        fflush(stdout);
    }
    qid_quantize_stats st;
    if (qid_quantize_checkpoint(in, out, force, &o, &st, &err)) return cli_fail("quantize", "%s", err.msg);
    print_summary(in, out, &o, &st);
    return 0;
}
