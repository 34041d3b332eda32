/* train_optim.c - AdamW and gradient clipping (train_optim.h); the
 * learning-rate schedules are in src/core/lr_schedule.c.
 *
 * Does not: compute gradients (train_grad.c) or run the loop (train.c). */
#include "train_optim.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ---- AdamW and clipping ---------------------------------------------------------- */

/* Elements per block of the optimizer's parallel loop. */
#define OPT_BLOCK 16384

qid_adamw *qid_adamw_create(const qid_tmodel *m, double beta1, double beta2, double eps, double weight_decay)
{
    qid_adamw *o = qid_calloc(1, sizeof *o, "the optimizer");
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    o->m = qid_calloc(m->n_params, sizeof(float), "AdamW first moments");
    o->v = qid_calloc(m->n_params, sizeof(float), "AdamW second moments");
    o->decayed = qid_calloc(m->n_specs, 1, "weight-decay flags");
    size_t nb = 0;
    for (size_t i = 0; i < m->n_specs; i++) {
        o->decayed[i] = m->specs[i].kind == QID_TENSOR_LINEAR;
        nb += ((size_t)qid_tensor_numel(&m->specs[i]) + OPT_BLOCK - 1) / OPT_BLOCK;
    }
    o->blocks = qid_malloc(nb * sizeof *o->blocks, "optimizer blocks");
    for (size_t i = 0; i < m->n_specs; i++) {
        const size_t n = (size_t)qid_tensor_numel(&m->specs[i]);
        for (size_t k = 0; k < n; k += OPT_BLOCK)
            o->blocks[o->n_blocks++] = (qid_adamw_block){
                .off = m->offset[i] + k, .n = n - k < OPT_BLOCK ? n - k : OPT_BLOCK, .decayed = o->decayed[i]};
    }
    return o;
}

void qid_adamw_free(qid_adamw *o)
{
    if (!o) return;
    free(o->m);
    free(o->v);
    free(o->decayed);
    free(o->blocks);
    free(o);
}

void qid_adamw_step(qid_adamw *o, qid_tmodel *m, double lr, float grad_scale)
{
    o->t++;
    const double bc1 = 1.0 - pow(o->beta1, (double)o->t), bc2 = 1.0 - pow(o->beta2, (double)o->t);
    const float neg_step = (float)(-(lr / bc1)), bc2_sqrt = (float)sqrt(bc2), eps = (float)o->eps;
    const float decay = (float)(1.0 - lr * o->weight_decay);
    const float w1 = (float)(1.0 - o->beta1), b2 = (float)o->beta2, w2 = (float)(1.0 - o->beta2);
    const int scaled = grad_scale != 1.0f, any_decay = o->weight_decay != 0.0;
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < o->n_blocks; b++) {
        const qid_adamw_block *bl = &o->blocks[b];
        float *p = m->param + bl->off, *mo = o->m + bl->off, *vo = o->v + bl->off;
        const float *gp = m->grad + bl->off;
        const int dec = bl->decayed && any_decay;
#pragma omp simd
        for (size_t k = 0; k < bl->n; k++) {
            const float g = scaled ? gp[k] * grad_scale : gp[k];
            float pk = p[k];
            if (dec) pk *= decay;
            const float mk = mo[k] + w1 * (g - mo[k]);
            float vk = vo[k] * b2;
            vk = vk + w2 * g * g;
            mo[k] = mk;
            vo[k] = vk;
            const float denom = sqrtf(vk) / bc2_sqrt + eps;
            p[k] = pk + neg_step * mk / denom;
        }
    }
}

double qid_train_grad_norm(const qid_tmodel *m)
{
    const size_t blk = 4096, n = m->n_params, nb = (n + blk - 1) / blk;
    double *part = qid_malloc(qid_mul_size(nb + 1, sizeof *part), "gradient norm partial sums");
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        const size_t k1 = (b + 1) * blk < n ? (b + 1) * blk : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (size_t k = b * blk; k < k1; k++)
            s += (double)m->grad[k] * m->grad[k];
        part[b] = s;
    }
    double s = 0.0;
    for (size_t b = 0; b < nb; b++)
        s += part[b];
    free(part);
    return sqrt(s);
}

float qid_train_clip_coef(double norm, double clip)
{
    if (!(clip > 0)) return 1.0f;
    const float coef = (float)(clip / (norm + 1e-6));
    return coef < 1.0f ? coef : 1.0f;
}

double qid_train_clip(qid_tmodel *m, double norm, double clip)
{
    const float coef = qid_train_clip_coef(norm, clip);
    if (coef == 1.0f) return 1.0;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < m->n_params; k++)
        m->grad[k] *= coef;
    return coef;
}
