/* train.h - `qid train`: trains a small gpt-neox model (train_grad.h) on a
 * qid token set with AdamW, global-norm gradient clipping, linear warm-up
 * and a cosine / constant / warm-up-stable-decay learning-rate schedule, and
 * writes qid checkpoints at log-spaced then linear steps, as Pythia saves
 * its checkpoints, plus a per-step log.
 *
 * What a run writes into its directory DIR:
 *   step<S>.h5   a float32 qid checkpoint after S updates (step = S,
 *                tokens_seen = S * batch * seq_len, source_format
 *                "qid-train", the training settings in its /train group and
 *                as JSON in /source/config_json; hdf5-schema/checkpoint.md);
 *   train.tsv    one row per step: step, tokens, lr, train_loss (the
 *                step's batch before its update), grad_norm (before
 *                clipping), eval_loss (at saved steps: of the checkpoint),
 *                seconds since the start;
 *   train.json   the settings, their SHA-256 (with the token ids' hashes),
 *                the checkpoints and "complete": true at the end. A rerun
 *                with the same settings into a DIR whose train.json is
 *                complete and whose checkpoints exist does nothing.
 * Every file is written under a temporary name and renamed when complete
 * (train.tsv grows line by line while the run goes on).
 *
 * Choices: the schedules and AdamW (weight decay on the linear weights
 * only, and why) are train_optim.h's; windows are visited in a seeded
 * random order, a fresh permutation each epoch, after re-cutting the train
 * set into windows of seq_len; train_loss at step s is the loss of update
 * s's batch before the update (as GPT-NeoX logs it), eval_loss the saved
 * checkpoint's.
 *
 * Determinism: the same settings, seed and token sets give bit-identical
 * checkpoints, whatever the thread count (train_grad.h says why).
 *
 * Nothing here is collective over MPI. */
#ifndef QID_TRAIN_H
#define QID_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "train_grad.h"
#include "train_optim.h"

/* ---- models from checkpoints ------------------------------------------------------ */

/* A model with the parameters of a float32/16-bit gpt-neox checkpoint
 * (parallel residual, untied, biases), e.g. one imported from Hugging Face.
 * NULL with err set when the file cannot be read or the architecture is not
 * trainable here. */
qid_tmodel *qid_tmodel_open(const char *ckpt, qid_error *err);

/* ---- the trainer -------------------------------------------------------------- */

typedef struct qid_train_opts {
    const char *train_path; /* token set to train on */
    const char *eval_path;  /* token set for eval loss at saved steps, or NULL */
    const char *out_dir;
    const char *name; /* model name in the checkpoints; NULL: basename of out_dir */
    int64_t vocab;    /* 0: the train set's vocabulary */
    int64_t d_model, n_layers, n_heads;
    int64_t d_ff;          /* 0: 4 d_model */
    int64_t seq_len;       /* 0: the train set's */
    int64_t max_seq_len;   /* 0: seq_len */
    int64_t batch;         /* windows per step */
    int64_t steps;         /* updates; or 0 and tokens */
    int64_t tokens;        /* train tokens: steps = ceil(tokens / (batch seq_len)) */
    qid_train_sched sched; /* steps filled in by the trainer; warmup -1: steps / 20 */
    double min_lr;         /* < 0: 0.1 lr */
    double weight_decay, clip, beta1, beta2, eps;
    uint64_t seed;
    double init_std;     /* <= 0: qid_tmodel_default_init_std */
    int threads;         /* > 0: OpenMP threads; 0: the default */
    const int64_t *save; /* explicit steps to save (n_save), or NULL: the default schedule */
    size_t n_save;
    int64_t save_every;    /* default schedule: 1, 2, 4, ... < save_every, then multiples, and the last */
    int64_t eval_windows;  /* eval windows (0: 64, at most what the set holds) */
    double progress_every; /* seconds between log lines when stderr is not a terminal */
    int force;             /* replace a DIR that holds another training */
    int quiet;             /* no progress output */
} qid_train_opts;

/* Options with every default set (sizes and paths left zero/NULL). */
void qid_train_opts_default(qid_train_opts *o);

typedef struct qid_train_result {
    int cached;            /* 1: DIR already held this training; nothing was run */
    int64_t steps, tokens; /* updates and tokens trained */
    size_t n_saved;
    double final_train_loss, final_eval_loss; /* eval NaN without an eval set */
    double seconds, tokens_per_s, gflops;
    int64_t params_nonembedding, params_total;
    char settings_sha256[65];
} qid_train_result;

/* The default save steps for a run of steps updates: powers of two below
 * save_every, then multiples of save_every, then the last step. Returns a
 * malloc'd sorted list in *out and its length. */
size_t qid_train_default_saves(int64_t steps, int64_t save_every, int64_t **out);

/* Runs a training as the header describes. Errors (one line, nothing
 * half-written left: checkpoints are renamed into place when complete):
 * unreadable token sets, a token set's vocabulary larger than the model's,
 * fewer windows than one batch, bad sizes or schedule values, a DIR that
 * holds another training (without force), a save step past the last. */
int qid_train_run(const qid_train_opts *o, qid_train_result *r, qid_error *err);

#endif
