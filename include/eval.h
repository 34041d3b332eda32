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
 * embedding / head at the ends (and, for GPTQ over several passes, the
 * quantized linear weights kept between them). Smaller batches re-read the
 * checkpoint more often. Results are bit-identical for the same batch size and thread
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

#include "divergence.h"
#include "error.h"
#include "model.h"
#include "tokens.h"

/* The default batch (batch_windows 0) is sized by the model: the windows
 * holding QID_EVAL_DEFAULT_BATCH_ROWS token rows (at least one window),
 * enough for the products to run at the sgemm peak and for the weights'
 * reading to be small next to the compute, but no more activation memory
 * (qid_model_batch_bytes, twice with kl) than QID_EVAL_DEFAULT_BATCH_BYTES.
 * When the windows take several passes and a calibration batch drives an
 * activation hook (GPTQ), the weights the hook leaves are kept after the
 * first pass and replayed on the others, so calibration runs once per
 * evaluation, if the model's LINEAR weights take at most
 * QID_EVAL_KEEP_BYTES in float32 (else every pass recomputes them). */
#define QID_EVAL_DEFAULT_BATCH_ROWS  8192
#define QID_EVAL_DEFAULT_BATCH_BYTES ((size_t)1 << 30)
#define QID_EVAL_KEEP_BYTES          ((size_t)4 << 30)

typedef struct qid_eval_opts {
    size_t max_windows;   /* 0: every window */
    size_t seq_len;       /* 0: the token set's; else the token stream (windows concatenated
                             in order) is re-cut into windows of this length, tail dropped */
    size_t batch_windows; /* windows per streamed pass; 0: sized by the model (above) */
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
    int kl; /* 1: also run the unmodified model (or ref_model), giving ref_*, KL and the divergence report */
    qid_model *ref_model; /* with kl, optional: the reference is this open checkpoint (same vocabulary) */
    /* Adaptive evaluation (below): with stop, the windows are evaluated in
     * blocks in the order of qid_eval_window_order and paired with base_nll
     * (the baseline's per-window NLL sums of every window read, in window
     * order, base_windows of them) until the stopping rule holds. */
    const struct qid_eval_stop *stop;
    const double *base_nll;
    size_t base_windows;
} qid_eval_opts;

/* The stopping rule of adaptive evaluation. After each block of `block`
 * windows (in the seeded order), once at least min_windows are evaluated,
 * the paired QiD and its SE (qid_eval_paired_diff) over the windows so far
 * are computed, and evaluation stops when
 *     se < max(target_se, target_rse * |QiD|)
 * or every window is evaluated. */
typedef struct qid_eval_stop {
    size_t min_windows; /* >= 2 */
    size_t block;       /* >= 1 */
    double target_se;   /* absolute target, nats/token, >= 0 */
    double target_rse;  /* relative target, >= 0 */
    uint64_t seed;      /* of the window order */
} qid_eval_stop;

/* The rng stream of the window order (qid_rng_seed(seed, stream)). */
#define QID_EVAL_ORDER_STREAM 0x4f52444552ull /* "ORDER" */

/* order (n) = a permutation of 0..n-1: Fisher-Yates, i from n-1 down to 1
 * swapping i with qid_rng_below(i + 1), on stream QID_EVAL_ORDER_STREAM of
 * seed. The first k of the order for n windows are the windows an adaptive
 * task that stopped after k evaluated. */
void qid_eval_window_order(size_t n, uint64_t seed, size_t *order);

/* 1 when the rule stops after `used` windows (of n) with paired estimate
 * qid and standard error se (NaN se never stops before n). */
int qid_eval_stop_done(const qid_eval_stop *s, size_t used, size_t n, double qid, double se);

typedef struct qid_eval_result {
    size_t n_windows, seq_len;
    size_t score_from;      /* first scored position */
    double *window_nll;     /* (n_windows) sum of NLL (nats) of the scored predictions */
    int64_t *window_tokens; /* (n_windows) scored predictions per window */
    double *ref_window_nll; /* (n_windows) with kl: the unmodified model; else NULL */
    double *window_kl;      /* (n_windows) with kl: sum of KL(P_unmodified || P); else NULL */
    size_t windows_used;    /* windows evaluated: n_windows, or fewer when adaptive (an unevaluated
                               window has NLL NaN and 0 tokens) */
    /* with kl: per scored prediction, window-major (w * per-window + position
     * - score_from), as qid_head_opts; and the report over the used windows */
    double *token_nll, *token_ref_nll, *token_kl;
    uint8_t *token_same_top;
    qid_divergence div;
    int64_t tokens_scored;    /* sum of window_tokens */
    int64_t tokens_processed; /* n_windows * seq_len (forward-pass positions) */
    double loss;              /* sum window_nll / tokens_scored over the used windows, nats per token */
    double qid, qid_se;       /* adaptive: the paired estimate against base_nll where it stopped; else NaN */
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

/* Replays the rule on complete per-window vectors (nll_a baseline, nll_b
 * quantized, counts; n windows) in the given order, as an adaptive
 * evaluation would have run: returns the windows used and fills *out with
 * the paired comparison over them. Used by the simulation test and to
 * measure the rule on a store of fixed-protocol rows. */
size_t qid_eval_stop_replay(const qid_eval_stop *s, const double *nll_a, const double *nll_b, const int64_t *counts,
                            size_t n, const size_t *order, qid_eval_paired *out);

#endif
