/* train_grad.h - the trainable GPT-NeoX model held whole in memory: its
 * parameters and gradients, a forward pass over a batch of windows that
 * keeps what the backward pass needs, the mean next-token cross-entropy,
 * and the backward pass (every parameter's gradient).
 *
 * Architecture: `gpt-neox` exactly as checkpoint.h and model.h describe it
 * (Pythia): LayerNorm with bias, fused QKV in Hugging Face's per-head layout
 * ([H, 3, hd] rows), partial rotary (rotate_half convention, tables from
 * qid_k_rope_table), causal softmax attention scaled by 1/sqrt(hd),
 * exact-erf GELU MLP, parallel residual
 *   x' = x + attn(ln1(x)) + mlp(ln2(x)),
 * biases everywhere, final LayerNorm and an untied head. The forward pass is
 * the evaluator's function on the evaluator's kernels (layer norm, GELU,
 * rotary, softmax, logsumexp of kernels.h; linear layers as bias plus
 * cblas_sgemm; attention on whole windows), so `qid eval` of a saved
 * checkpoint gives the loss this forward pass computes to ~1e-9 relative
 * (test/test_train.c checks 1e-6). The backward pass recomputes the layer
 * norms' statistics in float64 and takes GELU's derivative from the stored
 * forward values.
 *
 * Loss: the mean over the batch of -log softmax(logits[w, p])[tokens[w, p+1]]
 * for every window w and position p = 0 .. T-2 (B (T-1) predictions), in
 * float64 from float32 logits, as qid eval scores every predicted token.
 *
 * Memory: parameters and gradients are each one float32 array in checkpoint
 * storage order (qid_ckpt_tensors: embed, layer 0 .. L-1, final norm, head),
 * so a tensor is a contiguous slice and a checkpoint is written straight
 * from it. A workspace (qid_tacts) holds, for up to B_max windows of T
 * tokens, the operands of the weight-gradient products of every layer
 * (normalized inputs, attention outputs, GELU outputs and the gradients
 * that meet them), and per OpenMP thread one window's forward state
 * (residual stream, q/k/v, attention probabilities, MLP pre-activations):
 * qid_tacts_bytes says how much.
 *
 * Threads and determinism: windows are independent until the weight
 * gradients, so one parallel region runs each window's forward pass, loss
 * and activation gradients on one thread (single-threaded cblas_sgemm on
 * the window's rows, OpenBLAS set to one thread for the duration as model.c
 * does), and a second one runs the weight-gradient products over all rows
 * (tiles fixed by the shapes) and sums the per-window bias and norm
 * gradients in window order. No result depends on which thread ran what,
 * so the same inputs give bit-identical losses and gradients for any
 * thread count on one machine and OpenBLAS build (test_train checks 1 vs 2
 * threads), and a step has only two synchronisation points, which keeps a
 * shared machine from stalling it.
 *
 * Does not: read token sets, update parameters or schedule learning rates
 * (train.h), write files, or train llama or sequential-residual models (the
 * forward pass of those lives in model.c only). Nothing is collective. */
#ifndef QID_TRAIN_GRAD_H
#define QID_TRAIN_GRAD_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "error.h"

/* A gpt-neox model in memory. Fields are read-only for callers except the
 * contents of param (the optimizer updates it) and grad. */
typedef struct qid_tmodel {
    qid_model_config cfg;
    qid_tensor_spec *specs; /* (n_specs) qid_ckpt_tensors order */
    size_t n_specs;
    size_t *offset;  /* (n_specs) first element of tensor i in param / grad */
    size_t n_params; /* floats in param (= qid_params_total) */
    float *param;    /* (n_params) */
    float *grad;     /* (n_params) */
} qid_tmodel;

/* A gpt-neox config as qid train builds it: rotary_pct 0.25 (rotary_dim =
 * int(head_dim * 0.25)), rope theta 10000, LayerNorm eps 1e-5, parallel
 * residual, untied head, biases everywhere, max_seq_len positions.
 * QID_E_INVALID with one line when a size is not positive, heads do not
 * divide d_model, or the rotary dimensions come out odd (head_dim must then
 * be a multiple of 8). */
int qid_tmodel_config(qid_model_config *cfg, int64_t vocab, int64_t d_model, int64_t n_layers, int64_t n_heads,
                      int64_t d_ff, int64_t max_seq_len, qid_error *err);

/* Allocates a model for cfg with parameters and gradients zero. Only the
 * architecture above: another arch, sequential residual, tied embeddings or
 * a missing bias is QID_E_INVALID ("qid train supports ..."). Returns NULL
 * with err set on failure. Free with qid_tmodel_free. */
qid_tmodel *qid_tmodel_create(const qid_model_config *cfg, qid_error *err);
void qid_tmodel_free(qid_tmodel *m);

/* Index of tensor name ("attn.qkv.weight") of layer (-1: global), or -1. */
int qid_tmodel_find(const qid_tmodel *m, const char *name, int layer);

/* GPT-NeoX initialisation from the seed: every linear weight and both
 * embeddings ~ N(0, init_std^2), except the output projections of each
 * layer (attn.out, mlp.down) ~ N(0, (init_std / sqrt(2 n_layers))^2);
 * biases 0, norm weights 1, norm biases 0. Tensor i draws from
 * qid_rng_seed(seed, i), so a tensor's values do not depend on the others. */
void qid_tmodel_init(qid_tmodel *m, uint64_t seed, double init_std);

/* The default init_std: sqrt(2 / (5 d_model)), GPT-NeoX's "small_init". */
double qid_tmodel_default_init_std(int64_t d_model);

/* ---- forward and backward ------------------------------------------------ */

typedef struct qid_tacts qid_tacts;

/* Bytes of a workspace for B_max windows of T tokens. */
size_t qid_tacts_bytes(const qid_model_config *cfg, size_t B_max, size_t T);
/* A workspace for up to B_max windows of T tokens of a model of cfg
 * (1 <= T <= max_seq_len). NULL with err set when the batch is too large
 * for BLAS's int sizes or T is out of range. */
qid_tacts *qid_tacts_create(const qid_model_config *cfg, size_t B_max, size_t T, qid_error *err);
void qid_tacts_free(qid_tacts *a);

/* Forward pass of n_windows (1..B_max) windows tokens (n_windows, T) of the
 * workspace's T. Returns the mean loss in *loss and, if window_nll is not
 * NULL, each window's NLL sum (n_windows, nats, positions in order).
 * Errors: a token id outside the vocabulary (naming window and position),
 * a non-finite loss (naming the first window and position). */
int qid_tmodel_forward(const qid_tmodel *m, qid_tacts *a, const uint32_t *tokens, size_t n_windows, double *loss,
                       double *window_nll, qid_error *err);

/* The same forward pass, then the gradient of the loss with respect to every
 * parameter into m->grad (overwritten, not accumulated). */
int qid_tmodel_grad(qid_tmodel *m, qid_tacts *a, const uint32_t *tokens, size_t n_windows, double *loss,
                    double *window_nll, qid_error *err);

/* FLOPs of one training step (forward + backward, products and attention)
 * on n_windows windows of T tokens: for tokens/s and GFLOP/s reports. */
double qid_tmodel_step_flops(const qid_model_config *cfg, size_t n_windows, size_t T);

#endif
