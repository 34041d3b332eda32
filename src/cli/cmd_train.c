/* cmd_train.c - `qid train`: its usage, options and the summary it prints.
 * `qid train --train TOKENS -o DIR --d-model D --layers L --heads H
 * (--steps S | --tokens N) ...` fills a qid_train_opts (train.h) and runs
 * qid_train_run; integers take parse.h's syntax (--tokens 1e6), --save a
 * list of steps (0,1,10,100).
 *
 * Exit status: 0 on success, also when DIR already holds this training
 * (nothing is run); 2 for a bad command line or settings the trainer
 * refuses as usage (QID_E_USAGE); 1 when the training fails (one
 * "qid train: error: ..." line).
 *
 * Does not: train (train.c). */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "parse.h"
#include "train.h"

#define BIG 0x1p53 /* 2^53: the largest step or token count */

static void usage(FILE *out)
{
    fprintf(out, "usage: qid train --train TOKENS -o DIR --d-model D --layers L --heads H (--steps S | --tokens N)\n"
                 "                 [--eval TOKENS] [options]\n"
                 "\n"
                 "Trains a gpt-neox model (Pythia's architecture: parallel residual, rotary on 25%% of each\n"
                 "head, GELU, LayerNorm, untied head) on a qid token set with AdamW and writes float32 qid\n"
                 "checkpoints DIR/step<S>.h5 at log-spaced then linear steps, DIR/train.tsv (per step: tokens,\n"
                 "lr, train loss, gradient norm, eval loss at saved steps) and DIR/train.json (settings and\n"
                 "checkpoints). A rerun with the same settings into a complete DIR does nothing.\n"
                 "\n"
                 "model:\n"
                 "  --d-model D --layers L --heads H   sizes (head_dim = D / H, a multiple of 8)\n"
                 "  --d-ff F           MLP width (default 4 D)\n"
                 "  --vocab V          vocabulary (default: the train set's)\n"
                 "  --max-seq-len P    positions the checkpoint allows (default: --seq-len)\n"
                 "  --init-std S       std of the initial weights (default sqrt(2 / (5 D)); output\n"
                 "                     projections S / sqrt(2 L))\n"
                 "  --name MODEL       model name in the checkpoints (default: DIR's base name)\n"
                 "data:\n"
                 "  --train TOKENS     token set to train on (read into memory, re-cut into windows of --seq-len,\n"
                 "                     visited in a seeded random order, a new one each epoch)\n"
                 "  --eval TOKENS      token set for the eval loss at every saved step\n"
                 "  --eval-windows N   eval windows (default 64, at most what the set holds)\n"
                 "  --seq-len T        tokens per window (default: the train set's)\n"
                 "  --batch B          windows per step (default 16)\n"
                 "  --steps S          updates, or\n"
                 "  --tokens N         train tokens (steps = ceil(N / (B T)); 1e6 is accepted)\n"
                 "optimizer:\n"
                 "  --lr X             peak learning rate (default 1e-3)\n"
                 "  --min-lr X         final learning rate of cosine and wsd (default 0.1 lr)\n"
                 "  --warmup W         linear warm-up steps (default steps / 20)\n"
                 "  --schedule K       cosine (default), constant or wsd\n"
                 "  --decay-frac F     wsd: fraction of the steps that decay (default 0.2)\n"
                 "  --weight-decay X   AdamW decoupled weight decay of the linear weights (default 0.01)\n"
                 "  --clip X           global gradient-norm clipping, 0 for none (default 1.0)\n"
                 "  --beta1 X --beta2 X --eps X   AdamW (defaults 0.9, 0.95, 1e-8)\n"
                 "run:\n"
                 "  --seed N           initialisation and data order (default 1234)\n"
                 "  --threads T        OpenMP threads (default: all); results are bit-identical for a seed\n"
                 "  --save LIST        steps to save, e.g. 0,1,10,100 (default: 1, 2, 4, ... below\n"
                 "                     --save-every, then every --save-every steps, and the last step)\n"
                 "  --save-every K     (default 1000)\n"
                 "  --progress-every S seconds between progress lines when stderr is not a terminal (30)\n"
                 "  --force            replace a DIR that holds another training\n"
                 "  --quiet            no progress output\n");
}

/* --save: steps separated by commas (cli_opt's fn); a repeated --save
 * replaces the list. */
typedef struct save_arg {
    int64_t *steps;
    size_t n;
} save_arg;

static int take_save(const char *value, void *dest)
{
    save_arg *a = dest;
    int64_t *steps = NULL;
    size_t n = 0;
    if (qid_parse_int_list(value, 0, (int64_t)1 << 53, &steps, &n)) return -1;
    free(a->steps);
    a->steps = steps;
    a->n = n;
    return 0;
}

/* --schedule: cosine, constant or wsd (cli_opt's fn). */
static int take_schedule(const char *value, void *dest)
{
    int k = qid_sched_parse(value);
    if (k < 0) return -1;
    *(qid_sched_kind *)dest = (qid_sched_kind)k;
    return 0;
}

int qid_train_main(int argc, char **argv)
{
    qid_train_opts o;
    qid_train_opts_default(&o);
    save_arg save = {NULL, 0};
    const cli_opt opts[] = {
        CLI_OPT_STR("train", &o.train_path),
        CLI_OPT_STR("eval", &o.eval_path),
        CLI_OPT_I64("eval-windows", &o.eval_windows, 1, BIG, "a positive integer"),
        CLI_OPT_I64("d-model", &o.d_model, 1, 1 << 16, "1..65536"),
        CLI_OPT_I64("layers", &o.n_layers, 1, 1024, "1..1024"),
        CLI_OPT_I64("heads", &o.n_heads, 1, 4096, "1..4096"),
        CLI_OPT_I64("d-ff", &o.d_ff, 1, 1 << 20, "1..1048576"),
        CLI_OPT_I64("vocab", &o.vocab, 1, 1 << 24, "1..16777216"),
        CLI_OPT_I64("max-seq-len", &o.max_seq_len, 1, 1 << 24, "1..16777216"),
        CLI_OPT_REAL("init-std", &o.init_std, 0, INFINITY, CLI_LO_OPEN, "a number > 0"),
        CLI_OPT_STR("name", &o.name),
        CLI_OPT_I64("seq-len", &o.seq_len, 2, 1 << 24, "2..16777216"),
        CLI_OPT_I64("batch", &o.batch, 1, 1 << 20, "1..1048576"),
        CLI_OPT_I64("steps", &o.steps, 1, BIG, "a positive integer"),
        CLI_OPT_I64("tokens", &o.tokens, 1, BIG, "a positive integer"),
        CLI_OPT_REAL("lr", &o.sched.lr, 0, INFINITY, CLI_LO_OPEN, "a number > 0"),
        CLI_OPT_REAL("min-lr", &o.min_lr, 0, INFINITY, 0, "a number >= 0"),
        CLI_OPT_I64("warmup", &o.sched.warmup, 0, BIG, "steps >= 0"),
        CLI_OPT_FN("schedule", &o.sched.kind, take_schedule, "cosine, constant or wsd"),
        CLI_OPT_REAL("decay-frac", &o.sched.decay_frac, 0, 1, CLI_LO_OPEN, "a number in (0, 1]"),
        CLI_OPT_REAL("weight-decay", &o.weight_decay, 0, INFINITY, 0, "a number >= 0"),
        CLI_OPT_REAL("clip", &o.clip, 0, INFINITY, 0, "a number >= 0 (0: no clipping)"),
        CLI_OPT_REAL("beta1", &o.beta1, 0, 1, CLI_HI_OPEN, "a number in [0, 1)"),
        CLI_OPT_REAL("beta2", &o.beta2, 0, 1, CLI_HI_OPEN, "a number in [0, 1)"),
        CLI_OPT_REAL("eps", &o.eps, 0, INFINITY, CLI_LO_OPEN, "a number > 0"),
        CLI_OPT_U64("seed", &o.seed, BIG - 1, "0..2^53-1"),
        CLI_OPT_INT("threads", &o.threads, 1, 4096, "1..4096"),
        CLI_OPT_FN("save", &save, take_save, "steps separated by commas, e.g. 0,1,10,100"),
        CLI_OPT_I64("save-every", &o.save_every, 1, BIG, "a positive integer"),
        CLI_OPT_REAL("progress-every", &o.progress_every, 0, INFINITY, CLI_LO_OPEN, "seconds > 0"),
        CLI_OPT_FLAG("force", &o.force),
        CLI_OPT_FLAG("quiet", &o.quiet),
        {"output", 'o', CLI_STR, &o.out_dir, 0, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {"train", usage, opts, sizeof opts / sizeof opts[0], 0, 0, NULL};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    o.save = save.steps;
    o.n_save = save.n;
    const char *missing = !o.train_path ? "give the train token set (--train TOKENS)"
                          : !o.out_dir  ? "give the output directory (-o DIR)"
                          : !o.d_model || !o.n_layers || !o.n_heads
                              ? "give the model sizes (--d-model, --layers, --heads)"
                          : (o.steps > 0) == (o.tokens > 0) ? "give either --steps or --tokens"
                                                            : NULL;
    if (rc == CLI_OK && missing) rc = cli_usage_error("train", "%s", missing);
    if (rc != CLI_OK) {
        free(save.steps);
        return rc == CLI_HELP ? 0 : rc;
    }
    qid_h5_silence();
    qid_error err;
    qid_error_clear(&err);
    qid_train_result r;
    rc = qid_train_run(&o, &r, &err);
    free(save.steps);
    if (rc) {
        cli_fail("train", "%s", err.msg);
        return rc == QID_E_USAGE ? 2 : 1;
    }
    if (r.cached) {
        printf("%s already holds this training (%zu checkpoints, settings %.12s): nothing to do\n", o.out_dir,
               r.n_saved, r.settings_sha256);
        return 0;
    }
    printf("directory    %s\n", o.out_dir);
    printf("parameters   N = %" PRId64 " non-embedding, %" PRId64 " in all\n", r.params_nonembedding, r.params_total);
    printf("trained      %" PRId64 " steps, %" PRId64 " tokens\n", r.steps, r.tokens);
    printf("train loss   %.6f (last step)\n", r.final_train_loss);
    if (o.eval_path) printf("eval loss    %.6f (last checkpoint)\n", r.final_eval_loss);
    printf("checkpoints  %zu\n", r.n_saved);
    printf("seconds      %.2f\n", r.seconds);
    printf("tokens/s     %.0f (%.1f GFLOP/s)\n", r.tokens_per_s, r.gflops);
    return 0;
}
