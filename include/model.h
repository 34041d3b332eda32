/* model.h - the transformer forward pass, streamed layer by layer from a
 * qid checkpoint over a batch of token windows, in float32 whatever the
 * stored precision.
 *
 * Architectures (checkpoint.h): `gpt-neox` as Pythia (LayerNorm with bias,
 * fused QKV in Hugging Face's per-head layout, partial rotary, exact-erf GELU,
 * parallel or sequential residual, untied head) and `llama` (RMSNorm,
 * separate Q/K/V with optional biases, full rotary, grouped-query attention,
 * SwiGLU, optionally tied head); `gpt2` (learned positions, fused QKV as
 * [q; k; v], tanh-GELU, the scaled-attention options, tied head), `opt`
 * (learned positions at offset 2, separate Q/K/V, ReLU, pre- or
 * post-LayerNorm, project_in/out around a narrower embedding, tied head)
 * and `bloom` (ALiBi, embedding LayerNorm, fused QKV per head as gpt-neox,
 * tanh-GELU, tied head). Causal attention over each window; every
 * window starts at position 0. Numerics follow transformers in float32 (see
 * kernels.h); test/test_model.c holds the tolerances against its logits.
 *
 * Streaming. A model (qid_model) owns an open checkpoint and the weights of
 * ONE stage at a time: the embedding (stage QID_STAGE_EMBED), one layer
 * (stages 0 .. n_layers-1), or the head (stage n_layers: final norm and the
 * output projection, which is embed.weight when tied). A batch (qid_batch)
 * owns the activations of n_windows windows of seq_len tokens. A forward pass
 * loads each stage in turn (qid_model_load reads its tensors with
 * qid_ckpt_read_f32 into a buffer sized for the largest layer, reused for
 * the next layer) and runs every batch through it (qid_batch_step, and
 * qid_batch_head at the end). Peak memory is therefore about one layer's
 * weights plus the batches' activations, and, at the ends, the embedding or
 * the head (vocab x d_model); logits are made in chunks of rows (about
 * 64 MiB), never the whole (rows, vocab) matrix unless the caller asks.
 *
 * Hooks, for quantizers:
 *   - a weight hook sees each tensor of a stage after it is read (and
 *     checked finite) and may replace the values in place (RTN, MX, NF4
 *     replace LINEAR weights; others leave them alone);
 *   - an activation hook sees, just before each linear layer is applied, its
 *     input activations x (all rows of the batch) and the weight w it is
 *     about to use, which it may replace in place (GPTQ accumulates
 *     H = 2 X X^T / n and quantizes w right there, so each linear layer's
 *     inputs come from the already-quantized layers before it, including
 *     earlier linears of the same layer: "true sequential" order). It is
 *     not called for the output head (an embedding-kind tensor) nor for
 *     OPT's project_in/project_out (PROJ kind, outside the layers).
 * qid_model_forward strings these together for the common cases (plain
 * evaluation; a weight hook; a calibration batch with an activation hook; a
 * reference stream of the unmodified model alongside for KL divergence).
 *
 * Threads: everything runs on OpenMP's threads (omp_get_max_threads()):
 * kernels over rows, attention over windows x heads, and each matrix product
 * split by output columns into one single-threaded cblas_sgemm per thread
 * (OpenBLAS is set to one thread inside each step and restored after), so
 * two thread pools never compete for the cores. Results are bit-identical
 * for the same batch shape and thread count. A model and its batches are
 * used by one thread at a time; nothing here is collective over MPI (every
 * rank opens its own model).
 *
 * Errors (tier 3, returned with one line in err): unreadable or malformed
 * checkpoint, a non-finite stored weight (naming the tensor and element),
 * windows longer than max_seq_len, token ids outside the vocabulary, a hook's
 * own error (passed through, with the tensor named), non-finite logits.
 *
 * Not here: token sets, metrics over many windows, perplexity, command lines
 * (eval.h); quantizers (quant.h). */
#ifndef QID_MODEL_H
#define QID_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "error.h"

/* The embedding stage; layers are 0 .. n_layers-1 and the head is n_layers. */
#define QID_STAGE_EMBED (-1)
/* No stage loaded (after open, or after a failed load). */
#define QID_STAGE_NONE (-2)

/* Sees tensor t (its spec: name, layer, shape [out, in], kind) with its
 * values w (qid_tensor_numel(t) floats, row-major), which it may change in
 * place. Returns QID_OK or an error code with err set; an error stops the
 * forward pass and is returned to its caller. */
typedef int (*qid_weight_hook)(void *ctx, const qid_tensor_spec *t, float *w, qid_error *err);

/* Sees the input x of the linear layer whose weight is t, just before it is
 * applied: rows activation rows (every token of the batch) of t->shape[1]
 * input features, row r at x + r*ldx (ldx >= t->shape[1]); x is read-only.
 * w (t->shape[0] x t->shape[1] floats) is the weight about to be used and
 * may be changed in place. For llama, attn.q/k/v see the same x (three
 * calls, then one fused product), as do mlp.gate and mlp.up. Returns QID_OK
 * or an error code with err set. */
typedef int (*qid_act_hook)(void *ctx, const qid_tensor_spec *t, const float *x, size_t rows, size_t ldx, float *w,
                            qid_error *err);

typedef struct qid_model qid_model;
typedef struct qid_batch qid_batch;

/* Time and bytes spent, accumulated since open (wall-clock seconds). */
typedef struct qid_model_stats {
    double read_s;       /* reading and checking tensors (HDF5, conversion, finiteness) */
    double hook_s;       /* inside weight and activation hooks */
    double gemm_s;       /* linear-layer matrix products (embedding gather included) */
    double attn_s;       /* rotary and attention */
    double other_s;      /* norms, activations, bias adds */
    double head_s;       /* final norm, output projection, log-softmax, KL */
    size_t bytes_read;   /* float32 bytes of tensors loaded */
    size_t weight_bytes; /* largest weight memory held at once (arena + globals + reference copy) */
    double flops;        /* useful floating-point operations of the products and attention */
} qid_model_stats;

/* ---- the model ------------------------------------------------------------ */

/* Opens a checkpoint for streaming and allocates the layer buffer (the
 * largest layer, float32). On failure returns the status with err set and
 * *out = NULL. Free with qid_model_free. */
int qid_model_open(const char *path, qid_model **out, qid_error *err);
/* Closes the checkpoint and frees everything (m may be NULL). Batches made
 * for m must be freed separately (before or after). */
void qid_model_free(qid_model *m);

const qid_model_config *qid_model_cfg(const qid_model *m);
const qid_ckpt *qid_model_ckpt(const qid_model *m);
const qid_model_stats *qid_model_get_stats(const qid_model *m);

/* Float32 bytes of the largest layer's tensors (the streaming buffer). */
size_t qid_model_layer_bytes(const qid_model_config *cfg);
/* Bytes of activations a batch of n_windows x seq_len needs (qid_batch_create
 * allocates this much, plus attention scratch per OpenMP thread). */
size_t qid_model_batch_bytes(const qid_model_config *cfg, size_t n_windows, size_t seq_len);

/* Reads the tensors of a stage (QID_STAGE_EMBED, a layer, or n_layers for
 * the head), replacing the previous stage's. Every value is checked finite:
 * a NaN or Inf is QID_E_NUMERIC "non-finite weight <v> at element <i> of
 * tensor '<path>' in '<file>'". On failure no stage is loaded. */
int qid_model_load(qid_model *m, int stage, qid_error *err);
/* Drops the loaded stage: frees the embedding or head buffers (the layer
 * buffer stays allocated until qid_model_free). */
void qid_model_unload(qid_model *m);
/* The loaded stage (QID_STAGE_NONE if none). */
int qid_model_stage(const qid_model *m);
/* Calls hook on every tensor of the loaded stage, in storage order. The hook's
 * error is returned, wrapped with the tensor's path. */
int qid_model_apply_hook(qid_model *m, qid_weight_hook hook, void *ctx, qid_error *err);
/* The loaded stage's tensor called name ("attn.qkv.weight", "lm_head.weight",
 * ...), or NULL; *spec (may be NULL) gets its spec. The values may be read
 * and changed until the next load. */
float *qid_model_tensor(qid_model *m, const char *name, const qid_tensor_spec **spec);
/* Head stage only: keeps a copy of the loaded head tensors as they are now,
 * which qid_batch_head uses for its reference batch, so the reference stream
 * sees the head unmodified after a weight hook changes it (vocab x d_model
 * more floats). Dropped by the next load. */
int qid_model_keep_reference(qid_model *m, qid_error *err);

/* ---- batches -------------------------------------------------------------- */

/* A batch of n_windows windows of seq_len tokens (tokens is (n_windows,
 * seq_len), copied). Checks: n_windows, seq_len >= 1; seq_len <= the
 * model's max_seq_len ("window of L tokens is longer than the model's
 * context"); every id < vocab_size (naming window and position); sizes that
 * BLAS's int dimensions can hold. Returns NULL with err set on failure. */
qid_batch *qid_batch_create(qid_model *m, const uint32_t *tokens, size_t n_windows, size_t seq_len, qid_error *err);
void qid_batch_free(qid_batch *b);
/* The stage the batch runs next (QID_STAGE_EMBED first, n_layers = head,
 * n_layers + 1 when the head is done). */
int qid_batch_next_stage(const qid_batch *b);

/* Runs the loaded stage (embedding or a layer) on the batch, which must be
 * at that stage. act_hook (may be NULL) is called for each linear layer. */
int qid_batch_step(qid_model *m, qid_batch *b, qid_act_hook act_hook, void *act_ctx, qid_error *err);

/* Which predictions are scored and what comes out of the head. Position p of
 * a window predicts token p+1, for p = score_from .. seq_len-2: score_from 0
 * scores every predicted token, seq_len/2 the second half (llama.cpp). */
typedef struct qid_head_opts {
    size_t score_from;
    /* optional: a batch of the same tokens, also at the head stage, run by
     * the unmodified model (the baseline P); enables ref_window_nll and
     * window_kl. It uses the copy from qid_model_keep_reference if made. */
    const qid_batch *ref;
    double *window_nll;     /* (n_windows) out: sum of NLL (nats) of the scored predictions */
    double *ref_window_nll; /* (n_windows) out, with ref; may be NULL */
    double *window_kl;      /* (n_windows) out, with ref: sum over scored predictions of KL(P_ref || P_this) */
    float *logits;          /* optional out (n_windows, seq_len, vocab): every position's logits */
    /* optional, with ref: ref runs the head loaded in ref_model (another
     * checkpoint of the same vocabulary, its own stage loaded) instead of
     * this model's */
    const qid_model *ref_model;
    /* optional outs, with ref, one entry per scored prediction, window-major
     * (entry w * qid_scored_per_window + p - score_from): the NLL of this
     * model and of the reference, KL(P_ref || P_this), and 1 when both
     * distributions have the same argmax (first index of the maximum) */
    double *token_nll, *token_ref_nll, *token_kl;
    uint8_t *token_same_top;
} qid_head_opts;

/* Number of scored predictions per window for seq_len and score_from. */
size_t qid_scored_per_window(size_t seq_len, size_t score_from);

/* Runs the head (loaded) on the batch (at the head stage): final norm,
 * output projection in chunks of rows, log-softmax and the NLL of each
 * scored next token, summed per window in position order (so results do
 * not depend on the thread count). Non-finite logits are QID_E_NUMERIC. */
int qid_batch_head(qid_model *m, qid_batch *b, const qid_head_opts *o, qid_error *err);

/* ---- threads ------------------------------------------------------------- */

/* Sets OpenBLAS to one thread, for callers that split products over their
 * own OpenMP threads (one single-threaded cblas_sgemm each), and returns the
 * previous count for qid_blas_single_end, which restores it. No-ops with
 * another BLAS. */
int qid_blas_single_begin(void);
void qid_blas_single_end(int saved);

/* OpenBLAS (DYNAMIC_ARCH) picks its kernels by CPU model and falls back to
 * its SSE3 "Prescott" kernels on a model it does not know (0.3.21, Debian
 * 12's, on Emerald Rapids: sgemm at a quarter of the AVX-512 kernels' speed).
 * When it has done so on a CPU with AVX-512 (F, BW, DQ, VL) or AVX2 + FMA
 * and OPENBLAS_CORETYPE is not set, this re-initializes it with SkylakeX
 * or Haswell kernels (setting OPENBLAS_CORETYPE, which children inherit).
 * Call before any BLAS call, with no other thread running; the qid command
 * does so first thing. Returns OpenBLAS's core name after it ("" with
 * another BLAS). */
const char *qid_blas_init(void);

/* ---- streamed calibration -------------------------------------------------- */

/* The linears of a layer by the input they share: the attention input
 * (gpt-neox, gpt2, bloom attn.qkv; llama, opt attn.q, .k, .v), the attention output
 * (attn.out), the MLP input (mlp.up; llama mlp.gate, mlp.up) and the MLP
 * hidden (mlp.down). */
typedef enum qid_linear_group {
    QID_GROUP_QKV = 0,
    QID_GROUP_OUT = 1,
    QID_GROUP_UP = 2,
    QID_GROUP_DOWN = 3,
    QID_GROUP_COUNT = 4
} qid_linear_group;

/* What a streamed calibration tells its quantizer, per layer and group:
 * add sees one chunk's input rows of the group (t: the group's first
 * tensor; x, rows, ldx as qid_act_hook; first: 1 for the layer's first
 * chunk of this group, so accumulators start over), once per chunk, every
 * chunk before the group's quantize; quantize then sees the group's n
 * weights (t[i], w[i], in table order) and may change them in place. Both
 * return QID_OK or an error code with err set. */
typedef struct qid_calib_hooks {
    int (*add)(void *ctx, int group, int first, const qid_tensor_spec *t, const float *x, size_t rows, size_t ldx,
               qid_error *err);
    int (*quantize)(void *ctx, int group, const qid_tensor_spec *const *t, float *const *w, int n, qid_error *err);
    void *ctx;
} qid_calib_hooks;

/* Calibration windows streamed through the model in chunks. Only the
 * residual stream of every window (d_model floats per token, in memory or
 * in a scratch file) lives from one layer to the next; a layer's other
 * activations exist for one chunk of windows at a time. A layer runs in
 * "true sequential" order as the activation hook sees it (each group's
 * inputs come from the already-quantized groups before it), as passes over
 * every chunk: parallel residual (gpt-neox as Pythia), pass 1 adds the QKV
 * and UP groups (both read the layer input), quantize, pass 2 adds OUT and
 * DOWN, quantize; sequential residual (llama), one pass per group; then a
 * last pass runs the quantized layer and updates the residual stream. So a
 * layer costs qid_calib_passes chunk passes where the activation hook's
 * path costs one: the passes before the last recompute the layer as far as
 * their groups' inputs (parallel residual: the QKV product, attention and
 * the UP product once more). With one chunk holding every window the
 * weights, the statistics' inputs and the residual stream are bit for bit
 * those of the activation-hook path (qid_batch_step with act_hook); with
 * smaller chunks only the Hessian sums change order.
 *
 * With a scratch file (scratch_dir given) the residual stream lives in an
 * unlinked file in that directory (removed by the system whatever happens
 * to the process): memory no longer grows with the windows; every pass
 * reads it once and the last pass writes it back (qid_calib_passes reads,
 * one write per layer). */
typedef struct qid_calib qid_calib;

typedef struct qid_calib_stats {
    size_t windows, seq_len; /* all calibration windows */
    size_t chunk_windows;    /* windows per chunk (the last may hold fewer) */
    size_t chunks;           /* chunks per pass */
    size_t chunk_passes;     /* chunk passes run so far (layers x passes x chunks) */
    size_t scratch_bytes;    /* read and written in the scratch file */
    double scratch_s;        /* seconds in scratch-file I/O */
    double seconds;          /* wall time of qid_calib_step */
} qid_calib_stats;

/* Chunk passes per layer (3 for parallel residual, 5 for sequential). */
int qid_calib_passes(const qid_model_config *cfg);
/* Windows per chunk for an activation budget of budget bytes (as many
 * windows of seq_len tokens as qid_model_batch_bytes fits, at least one,
 * at most n_windows); budget 0: every window in one chunk. */
size_t qid_calib_chunk_windows(const qid_model_config *cfg, size_t seq_len, size_t n_windows, size_t budget);

/* Calibration windows tokens (n_windows, seq_len), copied, for model m, in
 * chunks of chunk_windows (>= 1; more than n_windows means one chunk). The
 * checks of qid_batch_create. scratch_dir: NULL keeps the residual stream
 * in memory, else a scratch file there (an error names the directory).
 * Returns NULL with err set on failure. */
qid_calib *qid_calib_create(qid_model *m, const uint32_t *tokens, size_t n_windows, size_t seq_len,
                            size_t chunk_windows, const char *scratch_dir, qid_error *err);
/* Frees c and closes its scratch file (c may be NULL). */
void qid_calib_free(qid_calib *c);
const qid_calib_stats *qid_calib_get_stats(const qid_calib *c);

/* Runs the loaded stage (the embedding or a layer; c must be at that
 * stage) on every window, with hooks (may be NULL: the layer as loaded)
 * for a layer. After the last layer the residual stream is released. The
 * hooks' errors are returned wrapped with the tensor's path. */
int qid_calib_step(qid_model *m, qid_calib *c, const qid_calib_hooks *hooks, qid_error *err);

/* ---- the whole pass -------------------------------------------------------- */

typedef struct qid_forward_opts {
    qid_weight_hook weight_hook; /* may be NULL: applied to each stage's tensors after reading */
    void *weight_ctx;
    qid_act_hook act_hook; /* may be NULL: sees the calibration batch if any, else the batch */
    void *act_ctx;
    const uint32_t *calib_tokens;       /* optional (calib_windows, calib_seq_len): run through each layer, */
    size_t calib_windows;               /* with act_hook, before the evaluated batch, which then runs with */
    size_t calib_seq_len;               /* the weights the hook left and without the hook */
    const qid_calib_hooks *calib_hooks; /* optional: calibrate with these instead of act_hook, */
    size_t calib_chunk;                 /* streamed (qid_calib) in chunks of calib_chunk windows, */
    const char *calib_scratch;          /* 0 = one chunk; the residual stream in a scratch file there */
    int kl;                             /* 1: also run the unmodified model (the reference stream) */
    size_t score_from;                  /* as qid_head_opts */
    double *window_nll;                 /* (n_windows) out, required */
    double *ref_window_nll;             /* (n_windows) out with kl: the unmodified model's NLL */
    double *window_kl;                  /* (n_windows) out with kl */
    float *logits;                      /* optional (n_windows, seq_len, vocab) out */
    qid_model *ref_model;               /* with kl, optional: the reference stream runs this open model (another
                                           checkpoint, same vocabulary) instead of m's unmodified weights */
    double *token_nll, *token_ref_nll, *token_kl; /* optional per-prediction outs with kl (qid_head_opts) */
    uint8_t *token_same_top;
} qid_forward_opts;

/* One streamed pass over every stage for the windows tokens (n_windows,
 * seq_len). Per stage: load; if kl, run the reference batch (unmodified
 * weights); apply weight_hook; run the calibration batch with act_hook;
 * run the batch. With calib_hooks the calibration windows are streamed
 * (qid_calib_step) instead of one batch. Each stage's tensors are read once. Memory: one layer,
 * plus one batch's activations per stream (kl doubles them, a calibration
 * batch adds its own), plus the embedding / head at the ends (twice the head
 * when kl and a weight hook). With ref_model, each stage of ref_model is
 * loaded and the reference batch run on it before m's stage (two layers
 * held at once). */
int qid_model_forward(qid_model *m, const uint32_t *tokens, size_t n_windows, size_t seq_len, const qid_forward_opts *o,
                      qid_error *err);

#endif
