/* quant_sqnr.c - signal-to-quantization-noise ratio of quantized weights,
 * 10 log10(|W|^2 / |W - Q(W)|^2) in dB, for one tensor or accumulated over a
 * whole model (sums of energies, so large tensors weigh more, as
 * |W|^2 / |W - Q(W)|^2 of the concatenated weights).
 *
 * Sums are in double, element by element in index order, so the result does
 * not depend on how a model is split into calls except through the order of
 * additions (a few ulps of double).
 *
 * Does not: quantize, or check for NaN (a NaN input gives a NaN SQNR).
 */
#include "quant.h"

#include <math.h>

void qid_sqnr_acc_init(qid_sqnr_acc *acc)
{
    acc->signal = 0.0;
    acc->noise = 0.0;
    acc->count = 0;
}

/* w, q are (n). */
void qid_sqnr_acc_add(qid_sqnr_acc *acc, const float *restrict w, const float *restrict q, size_t n)
{
    double s = 0.0, e = 0.0;
    for (size_t i = 0; i < n; i++) {
        double a = (double)w[i], d = (double)w[i] - (double)q[i];
        s += a * a;
        e += d * d;
    }
    acc->signal += s;
    acc->noise += e;
    acc->count += n;
}

void qid_sqnr_acc_merge(qid_sqnr_acc *acc, const qid_sqnr_acc *other)
{
    acc->signal += other->signal;
    acc->noise += other->noise;
    acc->count += other->count;
}

double qid_sqnr_acc_db(const qid_sqnr_acc *acc)
{
    if (acc->noise == 0.0) return INFINITY;
    if (acc->signal == 0.0) return -INFINITY;
    return 10.0 * log10(acc->signal / acc->noise);
}

double qid_sqnr_db(const float *restrict w, const float *restrict q, size_t n)
{
    qid_sqnr_acc acc;
    qid_sqnr_acc_init(&acc);
    qid_sqnr_acc_add(&acc, w, q, n);
    return qid_sqnr_acc_db(&acc);
}
