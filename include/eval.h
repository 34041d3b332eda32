/* eval.h - evaluation of a checkpoint on a token set: per-window NLL sums
 * and token counts, mean loss (nats per scored token), perplexity; paired
 * comparison of two runs over the same windows (mean per-token difference
 * and its standard error from per-window differences); KL divergence to the
 * unmodified model. (The `qid eval` command is cmd_eval.c.)
 *
 * Scoring: windows are non-overlapping runs of seq_len tokens; each window
 * starts a fresh context at position 0. By default every predicted token is
 * scored (positions 0 .. seq_len-2 predict tokens 1 .. seq_len-1, seq_len-1
 * predictions a window); with second_half only positions seq_len/2 ..
 * seq_len-2 are (llama.cpp's perplexity convention).
 *
 * Memory: windows are evaluated in batches of batch_windows, each batch one
 * streamed pass over the checkpoint (model.h): peak memory is about one
 * layer's weights plus one batch's activations (twice with kl), plus the
 * embedding / head at the ends. Smaller batches re-read the checkpoint more
 * often. Results are bit-identical for the same batch size and thread
 * count; another batch size changes the shapes of the BLAS products and so
 * the float32 rounding (per-window NLL differ by ~1e-7 relative), so a sweep
 * fixes batch_windows (the default depends only on the model and seq_len).
 *
 * Hooks (quantizers) are passed to qid_model_forward once per batch pass, so
 * they must give the same weights each time (RTN, MX, NF4 do; a GPTQ hook with
 * a calibration batch recomputes the same result, or caches it in its ctx).
 *
 * Nothing here is collective over MPI: a worker rank evaluates on its own. */
#ifndef QID_EVAL_H
#define QID_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "model.h"
#include "tokens.h"

/* Default activation memory of one batch (qid_model_batch_bytes) when
 * batch_windows is 0: as many windows as fit, at least one. */
#define QID_EVAL_DEFAULT_BATCH_BYTES ((size_t)1 << 30)

typedef struct qid_eval_opts {
    size_t max_windows;   /* 0: every window */
    size_t seq_len;       /* 0: the token set's; else the token stream (windows concatenated
                             in order) is re-cut into windows of this length, tail dropped */
    size_t batch_windows; /* windows per streamed pass; 0: QID_EVAL_DEFAULT_BATCH_BYTES worth */
    int second_half;      /* 1: score only the second half of each window */
    int threads;          /* > 0: set OpenMP's and OpenBLAS's thread counts (process-wide, left
                             set); 0: leave them as they are */
    /* passed to qid_model_forward (model.h); all may be zero */
    qid_weight_hook weight_hook;
    void *weight_ctx;
    qid_act_hook act_hook;
    void *act_ctx;
    const uint32_t *calib_tokens;
    size_t calib_windows, calib_seq_len;
    const qid_calib_hooks *calib_hooks; /* streamed calibration (model.h) instead of act_hook */
    size_t calib_chunk;                 /* its windows per chunk (0: one chunk) */
    const char *calib_scratch;          /* its scratch-file directory (NULL: memory) */
    int kl;                             /* 1: also run the unmodified model, giving ref_* and KL */
} qid_eval_opts;

typedef struct qid_eval_result {
    size_t n_windows, seq_len;
    size_t score_from;        /* first scored position */
    double *window_nll;       /* (n_windows) sum of NLL (nats) of the scored predictions */
    int64_t *window_tokens;   /* (n_windows) scored predictions per window */
    double *ref_window_nll;   /* (n_windows) with kl: the unmodified model; else NULL */
    double *window_kl;        /* (n_windows) with kl: sum of KL(P_unmodified || P); else NULL */
    int64_t tokens_scored;    /* sum of window_tokens */
    int64_t tokens_processed; /* n_windows * seq_len (forward-pass positions) */
    double loss;              /* sum window_nll / tokens_scored, nats per token */
    double perplexity;        /* exp(loss) */
    double ref_loss;          /* with kl, else NaN */
    double kl;                /* with kl: mean KL per scored token, else NaN */
    double seconds;           /* wall time of the forward passes */
    double tokens_per_s;      /* tokens_processed / seconds */
    long peak_rss_kb;         /* getrusage ru_maxrss after the evaluation */
    size_t batch_windows;     /* windows per pass used */
    qid_model_stats stats;    /* the model's counters after the evaluation */
} qid_eval_result;

/* Evaluates tokens (n_windows, seq_len) on an open model, with o's batch,
 * scoring, thread and hook options (max_windows and seq_len of o are not
 * used here). Fills *r (free with qid_eval_result_free, also after an error).
 * Errors: those of qid_model_forward (window longer than max_seq_len, ids
 * outside the vocabulary, non-finite weights or logits, hook errors). */
int qid_eval_windows(qid_model *m, const uint32_t *tokens, size_t n_windows, size_t seq_len, const qid_eval_opts *o,
                     qid_eval_result *r, qid_error *err);

/* Evaluates the open model m on the open token set tk: checks that the
 * token set's vocabulary is no larger than the model's and that the windows
 * fit the model's context, reads (and re-cuts) the windows o asks for
 * (max_windows, seq_len) and evaluates them with qid_eval_windows. Neither
 * m nor tk is closed; both can be evaluated again (a sweep keeps them open
 * across the tasks of one checkpoint). Fills *r (free with
 * qid_eval_result_free, also after an error). Every error is one line
 * "cannot evaluate 'CKPT' on 'TOKENS': ..." naming both files. */
int qid_eval_set(qid_model *m, const qid_tokens *tk, const qid_eval_opts *o, qid_eval_result *r, qid_error *err);

/* qid_eval_set on checkpoint ckpt and token set tokens_path, opened and
 * closed here. A file that cannot be opened is an error of
 * qid_tokens_open or qid_model_open (naming the file). */
int qid_eval_file(const char *ckpt, const char *tokens_path, const qid_eval_opts *o, qid_eval_result *r,
                  qid_error *err);

void qid_eval_result_free(qid_eval_result *r);

/* Paired comparison of run b against run a on the same n windows:
 *   diff = sum_i (b_i - a_i) / sum_i n_i            (nats per token; QiD when a is 16-bit)
 *   se   = sqrt(n/(n-1) * sum_i (d_i - diff n_i)^2) / sum_i n_i,   d_i = b_i - a_i
 * (the ratio estimator's standard error; with equal n_i it is the standard
 * deviation of the per-window mean differences over sqrt(n)). a_i, b_i are
 * per-window NLL sums and n_i their token counts. se is NaN for n = 1. */
typedef struct qid_eval_paired {
    size_t n_windows;
    int64_t tokens;
    double loss_a, loss_b; /* per-token means */
    double diff;           /* loss_b - loss_a */
    double se;             /* standard error of diff */
} qid_eval_paired;

/* Fills *out; QID_E_INVALID when n is 0, a count is not positive, or a value
 * is not finite. */
int qid_eval_paired_diff(const double *nll_a, const double *nll_b, const int64_t *counts, size_t n,
                         qid_eval_paired *out, qid_error *err);

#endif
