/* quantize.h - quantizing a whole model: the weight and activation hooks that
 * replace every LINEAR tensor (qid_tensor_kind) of a streamed model by its
 * quantized-dequantized values, with RTN (any quant.h format) or GPTQ
 * (gptq.h, layer by layer on calibration windows), and the whole checkpoint
 * written as a float32 checkpoint (the work of `qid quantize`).
 *
 * Two ways to use it:
 *   - in memory (the sweep): qid_quantizer_create, then qid_quantizer_hooks
 *     fills the hook fields of a qid_forward_opts / qid_eval_opts. RTN is a
 *     weight hook (no forward pass needed); GPTQ is an activation hook that
 *     needs a calibration batch in the same pass (calib_tokens of the
 *     options, e.g. from qid_quantize_read_calib). Each linear layer's
 *     Hessian comes from its inputs after every earlier linear layer was
 *     quantized ("true sequential"); layers that read the same input (llama
 *     attn.q/k/v, mlp.gate/up) share one Hessian and its factorization.
 *   - to a file: qid_quantize_checkpoint. RTN streams one tensor at a time
 *     (read, quantize if LINEAR, write); GPTQ runs the calibration batch
 *     through the model stage by stage (model.h) with the activation hook and
 *     writes each stage's tensors once the stage is done. Embeddings, norms
 *     and biases are written exactly as stored (converted to float32, which is
 *     exact). The output is float32 (dequantized values need not fit the
 *     source precision), keeps config, model, step and tokens_seen, has
 *     source_format "qid-quantize", and records the input file and its tensor
 *     hash in /source. It is written under a temporary name and renamed at the
 *     end: on any error nothing is left at the output path.
 *
 * AWQ (awq.h) runs where GPTQ runs (the activation hook, the streamed
 * calibration hooks, the file API), with the groups of linears that share an
 * input: per group, the input statistics, the scale search over the group,
 * then each linear's clipping search (not for the linears that compute
 * attention queries or keys: attn.q, attn.k, gpt-neox's fused attn.qkv, as
 * the reference skips them) and the reference's quantizer; the scales stay
 * in the weight, Q(clip(W s)) / s. As AutoAWQ's plans: attn.qkv (q/k/v),
 * mlp.up (gate/up) and mlp.down are scaled; attn.out only where a separate
 * attn.v has as many rows as attn.out has columns (llama without grouped
 * queries; AutoAWQ's GPT-NeoX plan leaves it unscaled), and is clipped
 * either way. As with GPTQ, later groups see the inputs of the already
 * quantized ones (llm-awq collects every input from the 16-bit model).
 *
 * Both give the same weights: the file written by qid_quantize_checkpoint
 * evaluates exactly as the original model with the hooks, for the same
 * calibration windows and the same thread count (test/test_quantize.c).
 *
 * Memory: RTN, one tensor twice. GPTQ: one layer's weights (model.h), the
 * calibration's residual stream (d_model floats per token of every window,
 * or none with a scratch file) and one chunk's activations (the streamed
 * hooks), or every window's activations at once (the activation hook), the
 * Hessians being accumulated and a copy of the largest linear weight (for
 * SQNR against the original): qid_quantize_mem_estimate.
 *
 * Errors are tier 3 (a returned status with one line in err). Nothing here is
 * collective over MPI; a quantizer is used by one thread at a time.
 *
 * Not here: packed storage of codes (quant.h encodes), the quantizers
 * themselves (quant.h, gptq.h), evaluation metrics (eval.h), the command
 * line of `qid quantize` (cli.h, src/cli/cmd_quantize.c). */
#ifndef QID_QUANTIZE_H
#define QID_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#include "awq.h"
#include "checkpoint.h"
#include "error.h"
#include "gptq.h"
#include "model.h"
#include "quant.h"

/* Default number of calibration windows for GPTQ (or as many as the set has). */
#define QID_QUANTIZE_DEFAULT_SAMPLES 128
/* Default activation budget of one calibration chunk (qid_calib_chunk_windows). */
#define QID_QUANTIZE_DEFAULT_CHUNK_BYTES ((size_t)256 << 20)

typedef enum qid_quantize_method {
    QID_QUANTIZE_RTN = 0,  /* round to nearest with the format's kernels (qid_quant_matrix) */
    QID_QUANTIZE_GPTQ = 1, /* GPTQ on calibration activations (qid_gptq_quantize) */
    QID_QUANTIZE_AWQ = 2,  /* AWQ on calibration activations (awq.h), INT formats without -mse */
} qid_quantize_method;

/* 1 for the methods that need calibration windows (GPTQ, AWQ). */
int qid_quantize_method_calibrated(qid_quantize_method m);

/* What to do. Fill with qid_quantize_opts_default, then set spec (e.g. with
 * qid_quant_parse) and the rest. */
typedef struct qid_quantize_opts {
    qid_quant_spec spec;        /* the format */
    qid_quantize_method method; /* default RTN */
    qid_gptq_opts gptq;         /* GPTQ options (qid_gptq_opts_default) */
    qid_awq_opts awq;           /* AWQ options (qid_awq_opts_default) */
    size_t calib_rows;          /* AWQ: calibration tokens in all (windows x seq_len), for the clipping
                                   search's sample step; 0 = the rows of a group's first chunk (the
                                   file API sets it) */
    const char *calib;          /* GPTQ, file API: calibration token set path */
    size_t samples;             /* GPTQ, file API: windows to use; 0 = min(128, windows in the set) */
    uint64_t seed;              /* GPTQ, file API: seed of the calibration sample (default 0) */
    size_t chunk_bytes;         /* GPTQ: activation budget of a calibration chunk (default
                                   QID_QUANTIZE_DEFAULT_CHUNK_BYTES); 0 = every window in one chunk */
    const char *scratch_dir;    /* GPTQ: keep the calibration residual stream in a scratch file in
                                   this directory instead of memory (NULL: memory) */
    double mem_limit;           /* file API: bytes; a run whose predicted peak is larger fails before
                                   it starts (qid_quantize_plan); 0 = no limit */
} qid_quantize_opts;

/* What was done, accumulated over every hook call since create or reset. */
typedef struct qid_quantize_stats {
    qid_sqnr_acc sqnr;                /* over the LINEAR tensors, quantized against original */
    size_t tensors;                   /* LINEAR tensors quantized */
    size_t params;                    /* their elements */
    size_t per_type[QID_QTYPE_COUNT]; /* GGUF: LINEAR tensors quantized with each type (a mixture's
                                         choices, fallbacks); unused for other formats */
    size_t f16;                       /* GGUF: LINEAR tensors stored as F16 (llama.cpp's last fallback) */
    double percdamp_min;              /* GPTQ: smallest and largest damping fraction used */
    double percdamp_max;              /*       (after retries); NaN when no GPTQ call ran */
    int retries;                      /* GPTQ: failed factorizations retried at a higher damping */
    size_t dead;                      /* GPTQ: dead input columns, summed over tensors */
    double gptq_loss;                 /* GPTQ: sum of the per-tensor reference 'error' */
    size_t awq_groups;                /* AWQ: groups of linears whose scales were searched */
    double awq_ratio_sum;             /* AWQ: sum of their chosen ratios (mean = sum / groups) */
    double awq_loss;                  /* AWQ: sum of the groups' output MSE at the chosen scales */
    double awq_loss_rtn;              /* AWQ: the same at s = 1 (plain rounding with the AWQ quantizer) */
    double seconds;                   /* wall time inside the quantizers (file API: of the whole run) */
    size_t calib_windows;             /* file API, GPTQ: windows x tokens of calibration used */
    size_t calib_seq_len;
    qid_calib_stats calib; /* file API, GPTQ: the streamed calibration (chunks, passes, scratch I/O) */
    long peak_rss_kb;      /* file API: getrusage's maximum resident set at the end */
} qid_quantize_stats;

void qid_quantize_opts_default(qid_quantize_opts *o);

/* "rtn" / "gptq" / "awq"; parse returns -1 when unknown. */
const char *qid_quantize_method_name(qid_quantize_method m);
int qid_quantize_method_parse(const char *name);

/* QID_OK when every LINEAR tensor of a model with config cfg has rows the
 * format can cut (qid_quant_check_shape), else QID_E_INVALID naming the
 * first tensor that does not fit, e.g.
 *   group size 128 does not divide row length 32 of '/layers/0/attn.qkv.weight'
 * Also rejects an invalid spec or method. */
int qid_quantize_check(const qid_model_config *cfg, const qid_quantize_opts *o, qid_error *err);

/* The spec a LINEAR tensor t of a model with config cfg is quantized with:
 * spec itself, or for a GGUF format the per-tensor type of gguf_mix.h
 * (mixtures, fallback for row lengths the block does not divide). Returns 1,
 * or 0 when the tensor falls back to F16 (its weights are rounded to fp16:
 * RTN and GPTQ alike). */
int qid_quantize_tensor_spec(const qid_quant_spec *spec, const qid_model_config *cfg, const qid_tensor_spec *t,
                             qid_quant_spec *out);

/* ---- in memory: hooks -------------------------------------------------- */

typedef struct qid_quantizer qid_quantizer;

/* A quantizer for o (copied; o->calib and o->samples are not used). The spec
 * must be valid (checked, tier 1). Dies only when out of memory. */
qid_quantizer *qid_quantizer_create(const qid_quantize_opts *o);
void qid_quantizer_free(qid_quantizer *q);
/* The model the hooks will see (copied): needed before any hook call with a
 * GGUF format (its per-tensor types depend on the layer count), harmless for
 * the others. qid_quantize_checkpoint sets it itself. */
void qid_quantizer_set_model(qid_quantizer *q, const qid_model_config *cfg);

/* Sets the hooks of a forward pass for this quantizer: RTN sets *weight_hook
 * (and NULLs *act_hook), GPTQ sets *act_hook (and NULLs *weight_hook); both
 * contexts are q. The caller gives GPTQ its calibration batch (calib_tokens
 * of qid_forward_opts or qid_eval_opts); without one, the activation hook
 * sees the evaluated batch itself. Every pass recomputes the same weights
 * for the same calibration windows (GPTQ re-runs on each evaluation pass). */
void qid_quantizer_hooks(qid_quantizer *q, qid_weight_hook *weight_hook, void **weight_ctx, qid_act_hook *act_hook,
                         void **act_ctx);

/* The hooks of a streamed calibration (model.h, qid_calib_step and
 * qid_forward_opts.calib_hooks) for this quantizer, ctx q: GPTQ with the
 * Hessians of the linears that share an input accumulated over every chunk
 * (a Hessian per group being accumulated; one whose group is quantized is
 * reused by the next group of its width), the same weights and statistics
 * as the activation hook when one chunk holds every window. They do nothing
 * for RTN. */
void qid_quantizer_calib_hooks(qid_quantizer *q, qid_calib_hooks *hooks);

/* The hooks themselves (ctx is a qid_quantizer). Both leave non-LINEAR
 * tensors alone; the weight hook does nothing for GPTQ. Errors: a shape the
 * format cannot cut, a non-finite weight (INT, NF4/FP4) or activation, a
 * GPTQ factorization that fails after every retry. */
int qid_quantizer_weight_hook(void *ctx, const qid_tensor_spec *t, float *w, qid_error *err);
int qid_quantizer_act_hook(void *ctx, const qid_tensor_spec *t, const float *x, size_t rows, size_t ldx, float *w,
                           qid_error *err);

const qid_quantize_stats *qid_quantizer_stats(const qid_quantizer *q);
/* Zeroes the statistics and forgets the cached shared input (call between
 * passes to get one pass's numbers). */
void qid_quantizer_reset(qid_quantizer *q);

/* The rng stream of calibration sampling (independent of probe streams). */
#define QID_QUANTIZE_CALIB_STREAM 0x43414c4942ull /* "CALIB" */

/* Reads the calibration windows of token set path for a model with config
 * cfg: `samples` windows (0: min(QID_QUANTIZE_DEFAULT_SAMPLES, windows in
 * the set); more than the set has is an error), all of them when that is the
 * whole set, otherwise a random sample without replacement drawn with seed
 * (as the reference GPTQ draws its calibration segments), kept in file order.
 * Checks the set's vocabulary against the model's and its window length
 * against max_seq_len. On success *tokens (malloc'd, free()) holds
 * (*n_windows, *seq_len) ids. */
int qid_quantize_read_calib(const char *path, const qid_model_config *cfg, size_t samples, uint64_t seed,
                            uint32_t **tokens, size_t *n_windows, size_t *seq_len, qid_error *err);

/* ---- memory -------------------------------------------------------------- */

/* Bytes a process needs besides what is counted below (code, libraries,
 * OpenBLAS's and HDF5's buffers), as measured by `make bench`. */
#define QID_MEM_BASE_BYTES ((size_t)48 << 20)

/* Predicted memory of a quantize (or sweep) task, in bytes, by part. */
typedef struct qid_mem_estimate {
    size_t layer;         /* one layer's weights, float32 (the streaming buffer) */
    size_t ends;          /* the embedding or the head, whichever is larger (at the ends only) */
    size_t hessians;      /* GPTQ: the Hessians held at once, with their factors */
    size_t quant;         /* a copy of the largest linear weight and GPTQ's work buffers */
    size_t activations;   /* one calibration chunk's activations */
    size_t residual;      /* the calibration residual stream, d_model floats per token (0 with a
                             scratch file) and the calibration token ids */
    size_t eval;          /* what the caller adds (the sweep: its evaluation batches) */
    size_t base;          /* QID_MEM_BASE_BYTES */
    size_t peak;          /* the largest total at any one time: base + layer + eval + the largest of
                             (embedding + residual + activations), (hessians + quant + residual +
                             activations), (head + hessians + the weight copy alone) */
    size_t chunk_windows; /* GPTQ: windows per calibration chunk */
} qid_mem_estimate;

/* Predicts the peak memory of quantizing a model of config cfg with o
 * (method, chunk_bytes, scratch_dir, gptq.block) on calib_windows windows
 * of seq_len tokens (GPTQ; ignored for RTN), plus eval_bytes held
 * throughout. Pure arithmetic. */
void qid_quantize_mem_estimate(const qid_model_config *cfg, const qid_quantize_opts *o, size_t calib_windows,
                               size_t seq_len, size_t eval_bytes, qid_mem_estimate *e);

/* One line "1.23 GiB (layer 201 MiB, Hessians 805 MiB, ...)" of e into buf. */
void qid_mem_estimate_format(const qid_mem_estimate *e, char *buf, size_t len);

/* The predicted memory of qid_quantize_checkpoint(in, ..., o): reads the
 * checkpoint's config and, for GPTQ, the calibration set's shape (o->calib,
 * o->samples), and fills *e. QID_E_INVALID when o->mem_limit is set and the
 * peak is larger: one line naming the checkpoint, the prediction and the
 * limit, with the smallest peak a chunk of one window and a scratch file
 * would give as the hint. Errors of opening either file. */
int qid_quantize_plan(const char *in, const qid_quantize_opts *o, qid_mem_estimate *e, qid_error *err);

/* The limit check of qid_quantize_plan on a prediction: QID_OK, or
 * QID_E_INVALID with the one line (`what` names the checkpoint). */
int qid_mem_check(const qid_mem_estimate *e, double limit, const qid_model_config *cfg, const qid_quantize_opts *o,
                  size_t calib_windows, size_t seq_len, const char *what, qid_error *err);

/* ---- to a file ------------------------------------------------------------ */

/* Quantizes checkpoint `in` with o and writes the float32 checkpoint `out`
 * (see the top of this file). An existing out is an error unless force.
 * GPTQ streams the calibration windows (qid_calib) in chunks of
 * o->chunk_bytes, in memory or with o->scratch_dir; o->mem_limit is checked
 * first (qid_quantize_plan).
 * GPTQ needs o->calib. Fills *stats (may be NULL). On error nothing is left
 * at out (an existing file there is untouched) and err says what and where. */
int qid_quantize_checkpoint(const char *in, const char *out, int force, const qid_quantize_opts *o,
                            qid_quantize_stats *stats, qid_error *err);

#endif
