/* cmd_eval.c - `qid eval CKPT TOKENS`: its usage, its options (cli_parse)
 * and the printing of one evaluation (loss, perplexity, tokens, speed,
 * peak memory, optionally every window).
 *
 * Does not: evaluate (eval.h, qid_eval_file does). */
#include <inttypes.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "error.h"
#include "eval.h"
#include "kernels.h"
#include "tokens.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: qid eval CKPT TOKENS [--windows N] [--seq-len L] [--batch B] [--threads T]\n"
                 "                [--second-half] [--per-window]\n"
                 "\n"
                 "Evaluates checkpoint CKPT (qid import) on token set TOKENS (qid tokens): the mean\n"
                 "cross-entropy of every predicted token (nats/token), perplexity, speed and peak memory.\n"
                 "The model is streamed layer by layer over each batch of windows.\n"
                 "\n"
                 "  --windows N    evaluate the first N windows (default: all)\n"
                 "  --seq-len L    re-cut the token stream into windows of L tokens (default: the set's)\n"
                 "  --batch B      windows per streamed pass (default: about 1 GiB of activations)\n"
                 "  --threads T    OpenMP and OpenBLAS threads (default: the libraries' defaults)\n"
                 "  --second-half  score only the second half of each window (llama.cpp's convention)\n"
                 "  --per-window   also print each window's NLL sum and scored tokens\n");
}

/* `qid eval CKPT TOKENS [--windows N] [--seq-len L] [--batch B] [--threads T]
 * [--second-half] [--per-window]`: prints loss, perplexity, tokens, tokens/s
 * and peak memory, one "key value" per line. Returns 0, 1 on a failed
 * evaluation (one "qid eval: error: ..." line on stderr), 2 on bad usage. */
int qid_eval_main(int argc, char **argv)
{
    qid_eval_opts o = {0};
    int per_window = 0;
    const cli_opt opts[] = {
        CLI_OPT_SIZE("windows", &o.max_windows, 1, 9e18, "a positive integer"),
        CLI_OPT_SIZE("seq-len", &o.seq_len, 1, QID_TOKENS_MAX_SEQ_LEN, "1..16777216"),
        CLI_OPT_SIZE("batch", &o.batch_windows, 1, 9e18, "a positive integer"),
        CLI_OPT_INT("threads", &o.threads, 1, 4096, "1..4096"),
        CLI_OPT_FLAG("second-half", &o.second_half),
        CLI_OPT_FLAG("per-window", &per_window),
    };
    const cli_spec spec = {
        "eval", usage, opts, sizeof opts / sizeof opts[0], 2, 2, "give a checkpoint and a token set"};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1; /* the positional arguments */
    if (rc != CLI_OK) {
        return rc == CLI_HELP ? 0 : rc;
    }
    const char *ckpt = args[0], *tokens = args[1];
    qid_error err;
    qid_error_clear(&err);
    qid_eval_result r;
    if (qid_eval_file(ckpt, tokens, &o, &r, &err)) {
        qid_eval_result_free(&r);
        return cli_fail("eval", "%s", err.msg);
    }
    const size_t per = qid_scored_per_window(r.seq_len, r.score_from);
    printf("checkpoint   %s\n", ckpt);
    printf("token set    %s\n", tokens);
    printf("windows      %zu x %zu tokens, %zu per pass\n", r.n_windows, r.seq_len, r.batch_windows);
    printf("scoring      %s: %zu predictions a window\n", o.second_half ? "second half" : "every predicted token", per);
    printf("loss         %.6f nats/token\n", r.loss);
    printf("perplexity   %.4f\n", r.perplexity);
    printf("tokens       %" PRId64 " scored, %" PRId64 " processed\n", r.tokens_scored, r.tokens_processed);
    printf("seconds      %.3f (reading %.3f)\n", r.seconds, r.stats.read_s);
    printf("tokens/s     %.1f\n", r.tokens_per_s);
    printf("threads      %d OpenMP, kernels %s\n", omp_get_max_threads(), qid_k_impl_name());
    printf("peak memory  %.1f MiB (maximum resident set)\n", (double)r.peak_rss_kb / 1024.0);
    if (per_window)
        for (size_t w = 0; w < r.n_windows; w++)
            printf("window %zu nll %.9f tokens %" PRId64 "\n", w, r.window_nll[w], r.window_tokens[w]);
    qid_eval_result_free(&r);
    return 0;
}
