/* awq.h - AWQ weight quantization in memory (Lin et al., the llm-awq
 * reference as AutoAWQ 0.2.9 runs it with duo_scaling off: auto_scale's
 * _search_module_scale, auto_clip's auto_clip_layer and the pseudo-quantizer
 * pseudo_quantize_tensor), for the integer group formats (intB-gG-sym/asym,
 * intB-channel-sym/asym; not -mse).
 *
 * Three steps per group of linear layers that read the same input (gpt-neox
 * attn.qkv; llama attn.q/k/v; mlp.gate/up; a single linear otherwise):
 *   1. a qid_awq_input of the input width accumulates, batch by batch, the
 *      mean |x| per input channel, X^T X (a qid_gptq_hessian) and a sample
 *      of the rows for the clipping search: every step-th row of all the
 *      group's rows, step = max(1, total rows / n_sample_token), as the
 *      reference subsamples its input features;
 *   2. qid_awq_search_scale: for ratio = i / n_grid, i = 0 .. n_grid-1,
 *      s = max(x_mean^ratio, 1e-4), s /= sqrt(max s * min s) (float32, as
 *      the reference; an infinite or NaN s_j becomes 1), every weight of the
 *      group becomes Q(W s) / s, and the loss is the mean squared error of
 *      the group's outputs over every calibration token,
 *      sum_r (q_r - w_r)^T X^T X (q_r - w_r) / (tokens x outputs), computed
 *      through X^T X in double; the first smallest loss wins (ratio 0 is
 *      s = 1: plain round to nearest is on the grid);
 *   3. qid_awq_quantize per weight: W s, then (when asked) the clipping
 *      search on the sampled rows divided by s: per output row and group of
 *      G inputs, max_val = amax |w| (1 - i / clip_grid) for
 *      i < max_shrink x clip_grid, w clamped to +-max_val and quantized,
 *      error = mean over the sample of (x_g . (q_g - w_g))^2 (through the
 *      group's Gram matrix in double), the first smallest wins and the row's
 *      group is clamped to it; then Q, and W becomes Q(clip(W s)) / s.
 * Q is the reference's pseudo-quantizer, not qid's RTN kernel (quant.h,
 * which follows GPTQ's quant.py): asymmetric ("zero point"):
 *   scale = max(max - min, 1e-5) / (2^b - 1), zero = clamp(-round(min /
 *   scale), 0, 2^b - 1), q = (clamp(round(w / scale) + zero, 0, 2^b - 1) -
 *   zero) scale (the range is [min, max], zero not forced in);
 * symmetric: scale = max(amax, 1e-5) / (2^(b-1) - 1), q = clamp(round(w /
 * scale), -2^(b-1), 2^(b-1) - 1) scale; round half to even, float32.
 *
 * Where qid differs from the reference, and why:
 *   - the loss is the MSE of the group's own outputs (the concatenation of
 *     its linears' outputs). For gpt-neox, and for llama's attn.out and
 *     mlp.down, that is the reference's loss; for llama's q/k/v and
 *     gate/up the reference inspects the whole attention or MLP block. The
 *     activation hooks see one group at a time, not the block.
 *   - the scales are kept as an explicit input scale: the weight stored is
 *     Q(clip(W s)) / s, where the reference divides the preceding norm's
 *     weight and bias (or the previous linear's rows, or the activation) by
 *     s and stores Q(clip(W s)). In exact arithmetic the two compute the
 *     same function; in float32 they differ by rounding. qid's checkpoints
 *     hold dequantized float32 weights, so nothing else changes.
 *   - the loss is computed in double through X^T X (the reference: float32
 *     outputs); x_mean is summed in double (the reference: float32).
 * Both round float32 values the same way otherwise, so a differing choice
 * needs a near tie; test/test_awq.c states the tolerances.
 *
 * Errors are tier 3 (a returned status with one line in err): a format
 * AWQ does not take (not INT, or -mse), a group size that does not divide
 * the row, non-finite activations or weights, no rows added.
 *
 * Memory: an input holds X^T X (cols^2 doubles and a conversion chunk),
 * cols doubles of |x| sums and the sample (at most 2 n_sample_token - 1
 * rows of cols floats). A search allocates two out x cols double buffers of
 * the largest weight and a float copy of it; a quantize call a cols x G
 * Gram set per group and a few rows. Nothing here is collective over MPI;
 * an input is used by one thread at a time.
 *
 * Not here: running the model (model.h), choosing the groups and which
 * layers are clipped (quantize.c), the `qid quantize` command. */
#ifndef QID_AWQ_H
#define QID_AWQ_H

#include <stddef.h>

#include "error.h"
#include "quant.h"

/* Options; qid_awq_opts_default gives the reference's. */
typedef struct qid_awq_opts {
    int n_grid;            /* scale ratios i / n_grid, i < n_grid; default 20 */
    int clip;              /* 1: clipping search where the caller allows it (default); 0: none */
    int clip_grid;         /* default 20 */
    double max_shrink;     /* default 0.5: shrink factors 1 - i / clip_grid, i < max_shrink x clip_grid */
    size_t n_sample_token; /* default 512: the clipping search takes every max(1, rows / this)-th row */
} qid_awq_opts;

void qid_awq_opts_default(qid_awq_opts *o);

/* What a scale search found. */
typedef struct qid_awq_stats {
    int best;          /* index of the chosen ratio */
    double ratio;      /* best / n_grid */
    double loss;       /* the chosen ratio's loss (mean squared output error per element) */
    double loss_rtn;   /* the loss at ratio 0 (s = 1: plain rounding with Q) */
    double losses[64]; /* every ratio's loss, the first min(n_grid, 64) */
} qid_awq_stats;

/* 1 when spec is a format AWQ takes (INT family without -mse), else 0. */
int qid_awq_spec_ok(const qid_quant_spec *spec);

/* The reference's pseudo-quantizer on one row x[n] into y[n] (groups of
 * spec->block, the whole row when 0; a shorter last group on its own).
 * spec must be qid_awq_spec_ok; x finite. */
void qid_awq_pseudo_quantize_row(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n);

/* ---- input statistics ---------------------------------------------------- */

typedef struct qid_awq_input qid_awq_input;

/* An empty accumulator for `cols` input features (cols >= 1). Dies only when
 * out of memory. */
qid_awq_input *qid_awq_input_create(size_t cols, const qid_awq_opts *o);
void qid_awq_input_free(qid_awq_input *in);
/* Back to zero rows. total_rows: the rows that will be added in all (for the
 * sample step); 0 = take the rows of the first add call as the total. */
void qid_awq_input_reset(qid_awq_input *in, size_t total_rows);
size_t qid_awq_input_cols(const qid_awq_input *in);
size_t qid_awq_input_rows(const qid_awq_input *in);
/* Adds rows activation rows, row r at x + r*ldx (ldx >= cols). A non-finite
 * value is an error naming `what`, the row and the column; in is then
 * unchanged except that its samples may hold part of the batch. */
int qid_awq_input_add(qid_awq_input *in, const float *x, size_t rows, size_t ldx, const char *what, qid_error *err);
/* The mean |x| of column j, as float (the reference's x_mean). */
float qid_awq_input_mean(const qid_awq_input *in, size_t j);

/* ---- search and quantization -------------------------------------------- */

/* The scales s[cols] of the group w[0..n-1] (w[k]: rows[k] x cols,
 * row-major; not changed) on the accumulated input (at least one row).
 * stats may be NULL. Errors: spec, shapes, non-finite weights. */
int qid_awq_search_scale(const qid_awq_input *in, const qid_quant_spec *spec, const qid_awq_opts *o,
                         const float *const *w, const size_t *rows, int n, float *s, qid_awq_stats *stats,
                         const char *what, qid_error *err);

/* Replaces w[rows][cols] by Q(clip(W s)) / s (s NULL: all ones; clip 0: no
 * clipping search; in may be NULL when clip is 0). Optional outputs:
 * clip_max[rows][ceil(cols / G)] the max_val chosen per row and group (the
 * group's amax when clip is 0), q_scaled[rows][cols] the quantized weight in
 * the scaled space, Q(clip(W s)). Errors: spec, shape, non-finite weights,
 * a clip request without sampled rows. */
int qid_awq_quantize(const qid_awq_input *in, const qid_quant_spec *spec, const qid_awq_opts *o, const float *s,
                     int clip, float *w, size_t rows, size_t cols, float *clip_max, float *q_scaled, const char *what,
                     qid_error *err);

#endif
