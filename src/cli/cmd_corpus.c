/* cmd_corpus.c - `qid corpus`: its usage, options and the lines it prints.
 * --synthetic builds the markov-zipf source (corpus.c) from the source
 * options, prints its exact entropies and, unless --info, writes streams
 * 1, 2, 3 as DIR/train.h5, eval.h5 and calib.h5 (corpus_write.c); --text
 * FILE splits the bytes of FILE into the same three parts.
 *
 * Exit status: 0 on success and for --help; 2 for a bad command line
 * (options that do not fit the mode, source parameters out of range); 1
 * when the source cannot be built or the files cannot be written, with one
 * "qid corpus: error: ..." line and nothing left in DIR.
 *
 * Does not: build, sample or write anything itself. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "corpus.h"
#include "parse.h"
#include "tokens.h"

/* --mix as given: its weights and their count. */
typedef struct mix_arg {
    double w[QID_CORPUS_MAX_ORDER + 1];
    int n;
} mix_arg;

/* "w0,w1,...": 1..QID_CORPUS_MAX_ORDER + 1 reals (cli_opt's fn). */
static int take_mix(const char *value, void *dest)
{
    mix_arg *m = dest;
    double *w = NULL;
    size_t n = 0;
    if (qid_parse_real_list(value, &w, &n)) return -1;
    int fits = n <= QID_CORPUS_MAX_ORDER + 1;
    if (fits) {
        for (size_t j = 0; j < n; j++)
            m->w[j] = w[j];
        m->n = (int)n;
    }
    free(w);
    return fits ? 0 : -1;
}

static void usage(FILE *out)
{
    qid_corpus_params d;
    qid_corpus_params_default(&d);
    fprintf(out,
            "usage: qid corpus --synthetic [source options] [sizes] -o DIR\n"
            "       qid corpus --synthetic [source options] --info\n"
            "       qid corpus --text FILE [--eval-frac F] [--calib-frac F] -o DIR\n"
            "\n"
            "Writes DIR/train.h5, DIR/eval.h5 and DIR/calib.h5 (qid token sets), all three\n"
            "or none.\n"
            "\n"
            "--synthetic: a seeded order-k Markov language whose entropy rate (the loss\n"
            "floor of a perfect model) is computed exactly: P(x|c) = w_0 Zipf(x) +\n"
            "sum_j w_j P_j(x | last j tokens), each j-gram context with b successors of\n"
            "Zipf(s) weights. The three parts are independent streams of the same source.\n"
            "  --vocab V          vocabulary size, 2..65536 (default %" PRId64 ")\n"
            "  --order K          Markov order, 1..%d (default %d)\n"
            "  --branching B      successors of each context, 1..V (default %" PRId64 ")\n"
            "  --zipf S           Zipf exponent of the unigram and of successor ranks, 0..8\n"
            "                     (default %g; 0 is uniform)\n"
            "  --mix W0,..,WK     weights of the unigram and of orders 1..K (normalised;\n"
            "                     default 0.05, 0.55 shared by orders 1..K-1, 0.4 for K)\n"
            "  --seed N           seed of the tables and streams (default %" PRIu64 ")\n"
            "  --train-tokens N   tokens in train.h5 (default 4194304)\n"
            "  --eval-tokens N    tokens in eval.h5 (default 262144)\n"
            "  --calib-tokens N   tokens in calib.h5 (default 65536); each rounded up to\n"
            "                     whole windows\n"
            "  --info             print the source's entropies, write nothing\n"
            "\n"
            "--text FILE: the bytes of FILE (vocabulary 256) split into contiguous parts\n"
            "train | eval | calib on window boundaries.\n"
            "  --eval-frac F      fraction of the windows for eval.h5 (default 0.1)\n"
            "  --calib-frac F     fraction for calib.h5 (default 0.05)\n"
            "\n"
            "common options:\n"
            "  -o, --output DIR   output directory (created if missing)\n"
            "  --seq-len L        window length in tokens (default 128)\n"
            "  --force            replace existing train/eval/calib.h5\n"
            "  -h, --help         this help\n"
            "\n"
            "example:\n"
            "  qid corpus --synthetic --seed 1 --train-tokens 8388608 -o corpus/\n",
            d.vocab, QID_CORPUS_MAX_ORDER, d.order, d.branching, d.zipf, d.seed);
}

static void print_source(const qid_corpus_source *src)
{
    char params[256];
    qid_corpus_params_format(&src->p, params, sizeof params);
    double l2 = log(2.0);
    printf("source %s %s\n", QID_CORPUS_GENERATOR, params);
    printf("  %zu contexts; stationary distribution after %d iterations, |pi P - pi|_1 = %.2g\n", src->n_ctx,
           src->iterations, src->residual);
    printf("  entropy rate   %.6f nats/token (%.6f bits)  the loss floor of a perfect model\n", src->entropy_rate,
           src->entropy_rate / l2);
    for (int i = src->k - 1; i >= 0; i--) {
        char name[32], what[64];
        snprintf(name, sizeof name, "%s", i == 0 ? "unigram model" : i == 1 ? "bigram model" : "");
        if (i > 1) snprintf(name, sizeof name, "%d-gram model", i + 1);
        snprintf(what, sizeof what, "%s", i == 0 ? "from token frequencies" : i == 1 ? "from the previous token" : "");
        if (i > 1) snprintf(what, sizeof what, "from the previous %d tokens", i);
        printf("  %-14s %.6f nats/token (%.6f bits)  best loss %s\n", name, src->h[i], src->h[i] / l2, what);
    }
    printf("  %-14s %.6f nats/token (%.6f bits)  log V\n", "uniform", log((double)src->V), log((double)src->V) / l2);
}

/* Marks the options that were given: set to these before parsing, the
 * defaults replace what is left after. */
#define UNSET_I64  INT64_MIN
#define UNSET_SEED UINT64_MAX

int qid_corpus_main(int argc, char **argv)
{
    qid_corpus_params d, p;
    qid_corpus_params_default(&d);
    p = d;
    p.vocab = p.branching = UNSET_I64;
    p.order = -1;
    p.zipf = NAN;
    p.seed = UNSET_SEED;
    qid_corpus_write_opts o = {
        .seq_len = 128,
        .tokens = {0, UNSET_I64, UNSET_I64, UNSET_I64},
        .eval_frac = NAN,
        .calib_frac = NAN,
    };
    mix_arg mix = {{0}, 0};
    int synthetic = 0, info = 0;
    const cli_opt opts[] = {
        CLI_OPT_FLAG("synthetic", &synthetic),
        CLI_OPT_STR("text", &o.text),
        CLI_OPT_I64("vocab", &p.vocab, 2, QID_CORPUS_MAX_VOCAB, "2..65536"),
        CLI_OPT_INT("order", &p.order, 1, QID_CORPUS_MAX_ORDER, "1..4"),
        CLI_OPT_I64("branching", &p.branching, 1, QID_CORPUS_MAX_VOCAB, "1..V"),
        CLI_OPT_REAL("zipf", &p.zipf, 0, QID_CORPUS_MAX_ZIPF, 0, "a number in 0..8"),
        CLI_OPT_FN("mix", &mix, take_mix, "2..5 comma-separated weights"),
        CLI_OPT_U64("seed", &p.seed, (double)INT64_MAX, "an integer in 0..9223372036854775807"),
        CLI_OPT_I64("train-tokens", &o.tokens[QID_CORPUS_TRAIN], 1, 0x1p62, "a positive integer"),
        CLI_OPT_I64("eval-tokens", &o.tokens[QID_CORPUS_EVAL], 1, 0x1p62, "a positive integer"),
        CLI_OPT_I64("calib-tokens", &o.tokens[QID_CORPUS_CALIB], 1, 0x1p62, "a positive integer"),
        CLI_OPT_REAL("eval-frac", &o.eval_frac, 0, 1, CLI_LO_OPEN | CLI_HI_OPEN, "a number between 0 and 1"),
        CLI_OPT_REAL("calib-frac", &o.calib_frac, 0, 1, CLI_LO_OPEN | CLI_HI_OPEN, "a number between 0 and 1"),
        CLI_OPT_I64("seq-len", &o.seq_len, 2, QID_TOKENS_MAX_SEQ_LEN, "2..16777216"),
        {"output", 'o', CLI_STR, &o.outdir, 0, 0, 0, NULL, NULL},
        CLI_OPT_FLAG("force", &o.force),
        CLI_OPT_FLAG("info", &info),
    };
    const cli_spec spec = {"corpus", usage, opts, sizeof opts / sizeof opts[0], 0, -1, NULL};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1; /* the positional arguments */
    const char *extra = n_args > 0 ? args[0] : NULL;
    if (rc == CLI_HELP) return 0;
    if (rc != CLI_OK) return rc;

    const int synth_opt = p.vocab != UNSET_I64 || p.order >= 0 || p.branching != UNSET_I64 || !isnan(p.zipf) ||
                          mix.n > 0 || p.seed != UNSET_SEED || o.tokens[QID_CORPUS_TRAIN] != UNSET_I64 ||
                          o.tokens[QID_CORPUS_EVAL] != UNSET_I64 || o.tokens[QID_CORPUS_CALIB] != UNSET_I64;
    const int text_opt = !isnan(o.eval_frac) || !isnan(o.calib_frac);
    if (p.vocab == UNSET_I64) p.vocab = d.vocab;
    if (p.order < 0) p.order = d.order;
    if (p.branching == UNSET_I64) p.branching = d.branching;
    if (isnan(p.zipf)) p.zipf = d.zipf;
    if (p.seed == UNSET_SEED) p.seed = d.seed;
    static const int64_t default_tokens[4] = {0, 4194304, 262144, 65536};
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB; part++)
        if (o.tokens[part] == UNSET_I64) o.tokens[part] = default_tokens[part];
    if (isnan(o.eval_frac)) o.eval_frac = 0.1;
    if (isnan(o.calib_frac)) o.calib_frac = 0.05;
    if (mix.n == 0)
        qid_corpus_default_mix(p.order, p.mix);
    else
        for (int j = 0; j < mix.n; j++)
            p.mix[j] = mix.w[j];

    if (extra)
        return cli_usage_error("corpus", "unexpected argument '%s' (options only; the text file follows --text)",
                               extra);
    const char *why = synthetic && o.text             ? "--synthetic and --text exclude each other"
                      : !synthetic && !o.text         ? "give --synthetic or --text FILE"
                      : o.text && synth_opt           ? "source and token-count options belong to --synthetic"
                      : synthetic && text_opt         ? "--eval-frac and --calib-frac belong to --text"
                      : info && o.text                ? "--info belongs to --synthetic"
                      : mix.n && mix.n != p.order + 1 ? "--mix wants order + 1 weights (w_0 for the unigram, then "
                                                        "orders 1..K)"
                      : !info && !o.outdir            ? "no output directory given (-o DIR)"
                                                      : NULL;
    if (why) return cli_usage_error("corpus", "%s", why);
    qid_error err;
    qid_error_clear(&err);
    if (synthetic && qid_corpus_params_check(&p, &err)) {
        cli_fail("corpus", "%s", err.msg); /* the message names the option; no hint */
        return CLI_USAGE;
    }
    qid_corpus_written w;
    if (o.text) {
        if (qid_corpus_write_text(&o, &w, &err)) return cli_fail("corpus", "%s", err.msg);
        for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB; part++)
            printf("wrote %s: %" PRId64 " window%s x %" PRId64 " bytes (bytes %" PRId64 "..%" PRId64 " of %s)\n",
                   w.path[part], w.windows[part], w.windows[part] == 1 ? "" : "s", o.seq_len, w.offset[part],
                   w.offset[part] + w.bytes[part], o.text);
        return 0;
    }
    qid_corpus_source src;
    if (qid_corpus_source_build(&p, &src, &err)) return cli_fail("corpus", "%s", err.msg);
    print_source(&src);
    if (info) {
        qid_corpus_source_free(&src);
        return 0;
    }
    if (qid_corpus_write_synthetic(&src, &o, &w, &err)) {
        qid_corpus_source_free(&src);
        return cli_fail("corpus", "%s", err.msg);
    }
    int64_t total = 0;
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB; part++) {
        printf("wrote %s: %" PRId64 " window%s x %" PRId64 " tokens (stream %d)\n", w.path[part], w.windows[part],
               w.windows[part] == 1 ? "" : "s", o.seq_len, part);
        total += w.windows[part] * o.seq_len;
    }
    printf("loss floor on %" PRId64 "-token windows (every predicted token scored): %.6f nats/token\n", o.seq_len,
           qid_corpus_loss_floor(&src, o.seq_len));
    printf("generated %" PRId64 " tokens in %.3f s (%.1f M tokens/s)\n", total, w.generate_seconds,
           w.generate_seconds > 0 ? (double)total / w.generate_seconds / 1e6 : 0.0);
    qid_corpus_source_free(&src);
    return 0;
}
