/* train_cmd.c - the `qid train` command line (train.h): options, usage,
 * and the summary it prints.
 *
 * Does not: train (train.c). */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

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

/* A non-negative integer up to max, also written as 1e6. 0 on success. */
static int parse_int(const char *s, int64_t max, int64_t *out)
{
    char *end = NULL;
    if (!s || !*s || *s == '-') return -1;
    double v = strtod(s, &end);
    if (*end || !(v >= 0) || v > (double)max || v != floor(v)) return -1;
    *out = (int64_t)v;
    return 0;
}

static int parse_num(const char *s, double *out)
{
    char *end = NULL;
    if (!s || !*s) return -1;
    double v = strtod(s, &end);
    if (*end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* "0,1,10,100" into a malloc'd list. 0 on success. */
static int parse_list(const char *s, int64_t **out, size_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int64_t *v = qid_malloc(cap * sizeof *v, "save steps");
    size_t k = 0;
    for (const char *p = s;;) {
        const char *c = strchr(p, ',');
        const size_t len = c ? (size_t)(c - p) : strlen(p);
        char item[32];
        if (len == 0 || len >= sizeof item) break;
        memcpy(item, p, len);
        item[len] = 0;
        if (parse_int(item, (int64_t)1 << 53, &v[k])) break;
        k++;
        if (!c) {
            *out = v;
            *n = k;
            return 0;
        }
        p = c + 1;
    }
    free(v);
    return -1;
}

int qid_train_main(int argc, char **argv)
{
    enum {
        O_TRAIN = 256,
        O_EVAL,
        O_EVALW,
        O_D,
        O_L,
        O_H,
        O_FF,
        O_VOCAB,
        O_MAXSEQ,
        O_INIT,
        O_NAME,
        O_SEQ,
        O_BATCH,
        O_STEPS,
        O_TOKENS,
        O_LR,
        O_MINLR,
        O_WARM,
        O_SCHED,
        O_DECAY,
        O_WD,
        O_CLIP,
        O_B1,
        O_B2,
        O_EPS,
        O_SEED,
        O_THREADS,
        O_SAVE,
        O_EVERY,
        O_PROG,
        O_FORCE,
        O_QUIET,
    };
    static const struct option longopts[] = {
        {"train", required_argument, 0, O_TRAIN},
        {"eval", required_argument, 0, O_EVAL},
        {"eval-windows", required_argument, 0, O_EVALW},
        {"d-model", required_argument, 0, O_D},
        {"layers", required_argument, 0, O_L},
        {"heads", required_argument, 0, O_H},
        {"d-ff", required_argument, 0, O_FF},
        {"vocab", required_argument, 0, O_VOCAB},
        {"max-seq-len", required_argument, 0, O_MAXSEQ},
        {"init-std", required_argument, 0, O_INIT},
        {"name", required_argument, 0, O_NAME},
        {"seq-len", required_argument, 0, O_SEQ},
        {"batch", required_argument, 0, O_BATCH},
        {"steps", required_argument, 0, O_STEPS},
        {"tokens", required_argument, 0, O_TOKENS},
        {"lr", required_argument, 0, O_LR},
        {"min-lr", required_argument, 0, O_MINLR},
        {"warmup", required_argument, 0, O_WARM},
        {"schedule", required_argument, 0, O_SCHED},
        {"decay-frac", required_argument, 0, O_DECAY},
        {"weight-decay", required_argument, 0, O_WD},
        {"clip", required_argument, 0, O_CLIP},
        {"beta1", required_argument, 0, O_B1},
        {"beta2", required_argument, 0, O_B2},
        {"eps", required_argument, 0, O_EPS},
        {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS},
        {"save", required_argument, 0, O_SAVE},
        {"save-every", required_argument, 0, O_EVERY},
        {"progress-every", required_argument, 0, O_PROG},
        {"force", no_argument, 0, O_FORCE},
        {"quiet", no_argument, 0, O_QUIET},
        {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    qid_train_opts o;
    qid_train_opts_default(&o);
    int64_t *save = NULL, v = 0;
    const char *bad = NULL;
    int c;
    const int64_t big = (int64_t)1 << 53;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case O_TRAIN: o.train_path = optarg; break;
        case O_EVAL: o.eval_path = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case O_NAME: o.name = optarg; break;
        case O_EVALW:
            if (parse_int(optarg, big, &o.eval_windows) || o.eval_windows < 1)
                bad = "--eval-windows wants a positive integer";
            break;
        case O_D:
            if (parse_int(optarg, 1 << 16, &o.d_model) || o.d_model < 1) bad = "--d-model wants 1..65536";
            break;
        case O_L:
            if (parse_int(optarg, 1024, &o.n_layers) || o.n_layers < 1) bad = "--layers wants 1..1024";
            break;
        case O_H:
            if (parse_int(optarg, 4096, &o.n_heads) || o.n_heads < 1) bad = "--heads wants 1..4096";
            break;
        case O_FF:
            if (parse_int(optarg, 1 << 20, &o.d_ff) || o.d_ff < 1) bad = "--d-ff wants 1..1048576";
            break;
        case O_VOCAB:
            if (parse_int(optarg, 1 << 24, &o.vocab) || o.vocab < 1) bad = "--vocab wants 1..16777216";
            break;
        case O_MAXSEQ:
            if (parse_int(optarg, 1 << 24, &o.max_seq_len) || o.max_seq_len < 1)
                bad = "--max-seq-len wants 1..16777216";
            break;
        case O_SEQ:
            if (parse_int(optarg, 1 << 24, &o.seq_len) || o.seq_len < 2) bad = "--seq-len wants 2..16777216";
            break;
        case O_BATCH:
            if (parse_int(optarg, 1 << 20, &o.batch) || o.batch < 1) bad = "--batch wants 1..1048576";
            break;
        case O_STEPS:
            if (parse_int(optarg, big, &o.steps) || o.steps < 1) bad = "--steps wants a positive integer";
            break;
        case O_TOKENS:
            if (parse_int(optarg, big, &o.tokens) || o.tokens < 1) bad = "--tokens wants a positive integer";
            break;
        case O_WARM:
            if (parse_int(optarg, big, &o.sched.warmup)) bad = "--warmup wants steps >= 0";
            break;
        case O_SEED:
            if (parse_int(optarg, big - 1, &v)) bad = "--seed wants 0..2^53-1";
            o.seed = (uint64_t)v;
            break;
        case O_THREADS:
            if (parse_int(optarg, 4096, &v) || v < 1) bad = "--threads wants 1..4096";
            o.threads = (int)v;
            break;
        case O_EVERY:
            if (parse_int(optarg, big, &o.save_every) || o.save_every < 1)
                bad = "--save-every wants a positive integer";
            break;
        case O_SAVE:
            free(save);
            save = NULL;
            if (parse_list(optarg, &save, &o.n_save)) bad = "--save wants steps separated by commas, e.g. 0,1,10,100";
            o.save = save;
            break;
        case O_SCHED: {
            int k = qid_sched_parse(optarg);
            if (k < 0) bad = "--schedule wants cosine, constant or wsd";
            o.sched.kind = (qid_sched_kind)(k < 0 ? 0 : k);
            break;
        }
        case O_LR:
            if (parse_num(optarg, &o.sched.lr) || !(o.sched.lr > 0)) bad = "--lr wants a number > 0";
            break;
        case O_MINLR:
            if (parse_num(optarg, &o.min_lr) || !(o.min_lr >= 0)) bad = "--min-lr wants a number >= 0";
            break;
        case O_DECAY:
            if (parse_num(optarg, &o.sched.decay_frac) || !(o.sched.decay_frac > 0) || o.sched.decay_frac > 1)
                bad = "--decay-frac wants a number in (0, 1]";
            break;
        case O_WD:
            if (parse_num(optarg, &o.weight_decay) || !(o.weight_decay >= 0))
                bad = "--weight-decay wants a number >= 0";
            break;
        case O_CLIP:
            if (parse_num(optarg, &o.clip) || !(o.clip >= 0)) bad = "--clip wants a number >= 0 (0: no clipping)";
            break;
        case O_B1:
            if (parse_num(optarg, &o.beta1) || !(o.beta1 >= 0 && o.beta1 < 1)) bad = "--beta1 wants a number in [0, 1)";
            break;
        case O_B2:
            if (parse_num(optarg, &o.beta2) || !(o.beta2 >= 0 && o.beta2 < 1)) bad = "--beta2 wants a number in [0, 1)";
            break;
        case O_EPS:
            if (parse_num(optarg, &o.eps) || !(o.eps > 0)) bad = "--eps wants a number > 0";
            break;
        case O_INIT:
            if (parse_num(optarg, &o.init_std) || !(o.init_std > 0)) bad = "--init-std wants a number > 0";
            break;
        case O_PROG:
            if (parse_num(optarg, &o.progress_every) || !(o.progress_every > 0))
                bad = "--progress-every wants seconds > 0";
            break;
        case O_FORCE: o.force = 1; break;
        case O_QUIET: o.quiet = 1; break;
        case 'h':
            usage(stdout);
            free(save);
            return 0;
        default:
            usage(stderr);
            free(save);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "qid train: error: %s, got '%s'\n", bad, optarg);
            free(save);
            return 2;
        }
    }
    const char *missing = optind < argc   ? "unexpected argument"
                          : !o.train_path ? "give the train token set (--train TOKENS)"
                          : !o.out_dir    ? "give the output directory (-o DIR)"
                          : !o.d_model || !o.n_layers || !o.n_heads
                              ? "give the model sizes (--d-model, --layers, --heads)"
                          : (o.steps > 0) == (o.tokens > 0) ? "give either --steps or --tokens"
                                                            : NULL;
    if (missing) {
        fprintf(stderr, "qid train: error: %s%s%s\n", missing, optind < argc ? " " : "",
                optind < argc ? argv[optind] : "");
        usage(stderr);
        free(save);
        return 2;
    }
    qid_h5_silence();
    qid_error err;
    qid_error_clear(&err);
    qid_train_result r;
    int rc = qid_train_run(&o, &r, &err);
    free(save);
    if (rc) {
        fprintf(stderr, "qid train: error: %s\n", err.msg);
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
