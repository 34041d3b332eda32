/* gptq.h - GPTQ weight quantization in memory (Frantar et al., IST-DASLab/gptq
 * gptq.py: GPTQ.add_batch and GPTQ.fasterquant), with the micro-block variant
 * for block formats (Xu et al., 2024; the formula is below), for any qid_quant_spec.
 *
 * Two steps per linear layer, made for the evaluator's streaming forward
 * pass (model.h, activation hook):
 *   1. a qid_gptq_hessian of the layer's input width accumulates
 *      H = 2/n sum_x x x^T over calibration activations, batch by batch
 *      (qid_gptq_hessian_add: rows = tokens, cols = in_features);
 *   2. qid_gptq_quantize replaces a weight W [out][in] in place by its GPTQ
 *      quantization given H. Layers that share an input (llama q/k/v,
 *      gate/up) share one hessian: the factorization of H is cached and
 *      reused by the next call with the same options.
 *
 * The algorithm, as the reference (and where it differs):
 *   - H in double; dead columns (H[i][i] == 0) get H[i][i] = 1 and W[:, i] = 0.
 *   - act-order: columns permuted by descending diag H (a stable sort: ties
 *     keep column order; torch's argsort is not stable), un-permuted at the end.
 *   - damping: percdamp * mean(diag H) added to the diagonal. When a Cholesky
 *     factorization fails (LAPACK info > 0, or a factor that is not finite in
 *     float32), it is retried with percdamp * damp_growth, up to damp_retries
 *     times, each retry logged with qid_warn:
 *       gptq: Cholesky of H failed for 'layers/3/mlp.down.weight' at damp 0.01, retrying with 0.1
 *   - U = upper Cholesky factor of H^-1 (LAPACKE dpotrf, dpotri, dpotrf; the
 *     reference's cholesky, cholesky_inverse, cholesky(upper=True)), in
 *     double, then rounded to float32. Everything on W runs in float32 as in
 *     the reference: err = (w - q) / U[i][i], then the row's later columns
 *     inside the lazy block get -= err * U[i][j] (one product, one
 *     subtraction, bit for bit the reference's), and after each lazy block
 *     of `block` columns W[:, i2:] -= Err[:, i1:i2] U[i1:i2, i2:]. That
 *     product is accumulated in double (dgemm on the float32 values) and
 *     rounded to float32 before the subtraction: the reference's float32
 *     product depends on its BLAS's summation order, this one (almost) never.
 *   - the loss is the reference's printed 'error': sum of (w - q)^2 / d^2 / 2
 *     with d = U[i][i], in double (with micro-blocks: sum err^2 / 2, the same
 *     quantity).
 * Quantization parameters (scale/zero, MX shared exponent, NF4/FP4 absmax):
 *   - INT per channel (`intB-channel`): from the original row, before dead
 *     columns are zeroed (the reference's first find_params).
 *   - INT groups: found when the sweep reaches the group's first column, from
 *     W as it stood at the start of the current lazy block (the reference
 *     slices W, not the block copy it updates: for groups smaller than, or
 *     not aligned with, the lazy block, the group misses the feedback of
 *     earlier columns of the same block). With act-order, groups are runs
 *     of `g` permuted columns, as in the reference.
 *   - MX and NF4/FP4 blocks: found from the current (error-updated) weights
 *     when the sweep reaches the block's first column (with micro-blocks,
 *     when it reaches the micro-block holding it).
 *   - static groups: every group's or block's parameters from the original W
 *     (after dead columns are zeroed) up front; with act-order a column uses
 *     the group of its original index (no effect per channel). MX and
 *     NF4/FP4 with act-order require static groups (their blocks are
 *     contiguous in the original column order).
 * Micro-blocks (micro_block m): inside each lazy block the columns are taken
 * m at a time; Q[:, j:k] = quant(W[:, j:k]) from the values at the start of
 * the micro-block, then E[:, j:k] = (W - Q)[:, j:k] U[j:k, j:k]^-1 and
 * W[:, k:i2] -= E[:, j:k] U[j:k, k:i2], computed column by column (a forward
 * substitution, which is that formula exactly), then the lazy-block update.
 * m = 1 is plain GPTQ. For MX and NF4/FP4, m must be 1 or a multiple of the
 * format's block; with m = 1 a block's shared scale is fixed at its first
 * column and the block's elements are then rounded column by column with it
 * (the plain-GPTQ analogue of INT groups). The default (micro_block 0) is 1
 * for INT and the format's block for MX and NF4/FP4. The lazy block is
 * rounded up to a multiple of m and, for MX and NF4/FP4, of the format block.
 *
 * Memory: a hessian holds H (cols^2 doubles), the cached float32 factor
 * (cols^2 floats, after the first quantize) and a conversion buffer
 * (QID_GPTQ_CHUNK_ROWS x cols doubles). A quantize call allocates, for the
 * time of the call, rows x block + block x cols + rows x 512 doubles, one
 * scratch row of cols + 2 x block floats per thread, and small per-row
 * parameter tables; it never copies W or H.
 *
 * Threads: products and factorizations run on OpenBLAS's threads; the column
 * sweep runs over rows with OpenMP when a lazy block holds at least 2^26
 * multiply-adds (rows x block^2 / 2), on the calling thread otherwise (an
 * OpenMP team's idle threads spin for milliseconds and slow the OpenBLAS
 * call that follows). A hessian is used by one thread at a time. Results do
 * not depend on the thread counts. Nothing here is collective over MPI.
 *
 * Errors are tier 3 (a returned status with one line in err): width
 * mismatch, no samples, non-finite activations or weights (naming the tensor
 * and element), a format whose group or block does not divide the row, a
 * bad micro-block or option, a factorization that fails after every retry.
 *
 * Not here: choosing calibration windows, running the model (model.h), the
 * `qid quantize` command, packed storage of the result (quant.h encodes it).
 */
#ifndef QID_GPTQ_H
#define QID_GPTQ_H

#include <stddef.h>

#include "error.h"
#include "quant.h"

/* Why a format has no GPTQ path (its traits have no params): the k-quants'
 * and their mixtures' scales come from a search over a whole super-block of
 * 256, which GPTQ's column-by-column updates cannot follow. */
#define QID_GPTQ_NO_PATH_WHY "its scales come from a search over whole super-blocks of 256 weights"

/* Activation rows converted to double per dsyrk call. */
#define QID_GPTQ_CHUNK_ROWS 256

typedef struct qid_gptq_hessian qid_gptq_hessian;

/* Options of qid_gptq_quantize; qid_gptq_opts_default gives the reference's. */
typedef struct qid_gptq_opts {
    double percdamp;    /* damping as a fraction of mean(diag H); default 0.01, >= 0 */
    int damp_retries;   /* retries at a higher damping when Cholesky fails; default 4 */
    double damp_growth; /* factor of each retry (> 1); default 10. From percdamp 0 the
                           first retry uses 1e-6 */
    size_t block;       /* lazy-update block in columns (>= 1); default 128 */
    size_t micro_block; /* 0 = the format's default, 1 = column by column, m > 1 micro-blocks */
    int act_order;      /* 1: columns in order of descending diag H */
    int static_groups;  /* 1: parameters of every group/block from the original W up front */
} qid_gptq_opts;

/* What one qid_gptq_quantize call did. */
typedef struct qid_gptq_stats {
    double loss;        /* sum of (w - q)^2 / d^2 / 2, the reference's reported 'error' */
    double percdamp;    /* damping fraction actually used (after retries) */
    double damp;        /* absolute damping added to diag H */
    int retries;        /* factorizations that failed before the one used */
    size_t dead;        /* dead columns (diag H == 0) */
    size_t micro_block; /* micro-block used (1 = plain) */
    size_t block;       /* lazy block used */
    int reused;         /* 1 when the cached factorization was used */
    double seconds;     /* wall-clock time of the call */
} qid_gptq_stats;

void qid_gptq_opts_default(qid_gptq_opts *opts);

/* ---- Hessian ------------------------------------------------------------ */

/* A zero Hessian for layers with `cols` input features (cols >= 1).
 * Dies only when out of memory. Free with qid_gptq_hessian_free. */
qid_gptq_hessian *qid_gptq_hessian_create(size_t cols);
/* Frees h and its cached factorization (h may be NULL). */
void qid_gptq_hessian_free(qid_gptq_hessian *h);
/* Back to zero samples (for the next layer of the same width). */
void qid_gptq_hessian_reset(qid_gptq_hessian *h);

size_t qid_gptq_hessian_cols(const qid_gptq_hessian *h);
/* Samples added so far (the n of 2/n). */
size_t qid_gptq_hessian_nsamples(const qid_gptq_hessian *h);

/* Adds a batch: x has `rows` rows of cols floats, row r at x + r*ldx
 * (ldx >= cols); it counts as m = nsamples samples (0: m = rows, one sample
 * per token). As the reference's add_batch: H *= n/(n+m); H += 2/(n+m) X^T X;
 * n += m (computed with dsyrk on chunks of QID_GPTQ_CHUNK_ROWS rows widened to
 * double; only the lower triangle and diagonal are kept). The reference
 * counts one sample per sequence: pass the number of windows to get its H;
 * the quantized result does not depend on this scale, only the loss does.
 * A non-finite activation is an error naming `what` (may be NULL), the row and
 * the column; h is then unchanged. rows == 0 does nothing. */
int qid_gptq_hessian_add(qid_gptq_hessian *h, const float *x, size_t rows, size_t ldx, size_t nsamples,
                         const char *what, qid_error *err);

/* H[i][j] (any i, j < cols): the accumulated Hessian, for tests and reports. */
double qid_gptq_hessian_get(const qid_gptq_hessian *h, size_t i, size_t j);

/* ---- quantization ------------------------------------------------------- */

/* Replaces w[rows][cols] (row-major; cols == qid_gptq_hessian_cols(h)) by its
 * GPTQ quantization under spec, given the Hessian h (at least one sample
 * added). opts may be NULL (defaults); stats may be NULL. `what` names the
 * tensor in messages and logs (may be NULL).
 * h is used as workspace: its accumulated values are unchanged on return,
 * and it keeps the float32 factor for the next call with the same percdamp,
 * damp_retries, damp_growth and act_order (until the next add or reset).
 * Returns QID_OK, or a tier-3 status with err set; every error is detected
 * before w is touched, except a non-finite result (an ill-conditioned H that
 * made the feedback overflow), which leaves w unspecified. */
int qid_gptq_quantize(qid_gptq_hessian *h, const qid_quant_spec *spec, const qid_gptq_opts *opts, float *w, size_t rows,
                      size_t cols, const char *what, qid_gptq_stats *stats, qid_error *err);

#endif
