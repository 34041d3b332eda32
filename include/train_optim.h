/* train_optim.h - the optimizer side of `qid train`: learning-rate
 * schedules (linear warm-up, then cosine, constant or warm-up-stable-decay),
 * AdamW with decoupled weight decay on the linear weights, and global-norm
 * gradient clipping as torch.nn.utils.clip_grad_norm_.
 *
 * The schedules themselves are in lr_schedule.h (shared with `qid import
 * --schedule`).
 *
 * Weight decay is decoupled (AdamW) and applies to the LINEAR tensors only
 * (attn.qkv, attn.out, mlp.up, mlp.down weights): not to norms and biases
 * (standard), and not to the embeddings and head (their rows are per-token
 * statistics; a rare token's row would be pulled to zero between its
 * updates). The linear weights are also exactly what the quantizers touch.
 *
 * Every update is elementwise and in float32 in the order PyTorch computes
 * it, so the result does not depend on the thread count (test/test_train.c
 * compares three clipped steps with torch.optim.AdamW).
 *
 * Does not: compute gradients (train_grad.h) or run the training loop
 * (train.h). Nothing is collective. */
#ifndef QID_TRAIN_OPTIM_H
#define QID_TRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "lr_schedule.h"
#include "train_grad.h"

/* ---- AdamW and clipping ----------------------------------------------------- */

/* A span of one tensor's elements, the unit of the optimizer's parallel loop. */
typedef struct qid_adamw_block {
    size_t off, n;
    int decayed;
} qid_adamw_block;

typedef struct qid_adamw {
    double beta1, beta2, eps, weight_decay;
    int64_t t;              /* updates done */
    float *m, *v;           /* (n_params) first and second moments */
    unsigned char *decayed; /* (n_specs) 1 for tensors with weight decay */
    qid_adamw_block *blocks;
    size_t n_blocks;
} qid_adamw;

/* Moments zero, t = 0; weight decay on the model's LINEAR tensors. */
qid_adamw *qid_adamw_create(const qid_tmodel *m, double beta1, double beta2, double eps, double weight_decay);
void qid_adamw_free(qid_adamw *o);
/* One AdamW update of m->param from the gradients g = m->grad * grad_scale
 * (the clipping coefficient; 1: as they are, and g is then m->grad exactly)
 * with learning rate lr, in float32 and in the order torch.optim.AdamW
 * (single-tensor) computes it:
 *   p *= 1 - lr wd (decayed tensors); m = lerp(m, g, 1 - b1);
 *   v = v b2 + (1 - b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * m->grad is not changed. One parallel loop over fixed blocks. */
void qid_adamw_step(qid_adamw *o, qid_tmodel *m, double lr, float grad_scale);

/* L2 norm of all gradients (float64, fixed order). */
double qid_train_grad_norm(const qid_tmodel *m);
/* torch.nn.utils.clip_grad_norm_'s factor: coef = clip / (norm + 1e-6) in
 * float32 when below 1, else 1 (and 1 when clip <= 0: no clipping). */
float qid_train_clip_coef(double norm, double clip);
/* Multiplies the gradients by qid_train_clip_coef(norm, clip) in place, as
 * clip_grad_norm_ does; returns the factor. */
double qid_train_clip(qid_tmodel *m, double norm, double clip);

#endif
