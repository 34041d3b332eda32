/* gptq_packed.h - the GPTQ storage format of AutoGPTQ, optimum and
 * GPTQModel (qweight, qzeros, scales, g_idx per linear layer) unpacked to
 * weights: W[o][i] = scales[g][o] * (q[i][o] - z[g][o]) with g = g_idx[i].
 *
 * Packing (AutoGPTQ 0.7.1 nn_modules/qlinear/qlinear_cuda.py, QuantLinear.pack;
 * GPTQModel and optimum write the same): the B-bit codes of one output
 * column, input rows 0, 1, 2, ..., are one little-endian bit stream over the
 * int32 words qweight[0..in*B/32)[o], code k at bits B*k..B*k+B-1 (for B = 3
 * a code may cross a word: bit 30 of one word and bit 0 of the next). The
 * zero points of one group are the same stream along qzeros[g][0..out*B/32).
 * Format v1 ("gptq", AutoGPTQ and optimum) stores zero - 1 and the producer
 * reads z = (field & (2^B - 1)) + 1 (qlinear_cuda.py's torch path); v2
 * ("gptq_v2", GPTQModel) stores z itself.
 *
 * Does not: read files (import.c does), or quantize (quant/gptq.c does). */
#ifndef QID_GPTQ_PACKED_H
#define QID_GPTQ_PACKED_H

#include <stdint.h>

#include "error.h"

typedef struct qid_gptq_layout {
    int bits;           /* 2, 3, 4 or 8 */
    int64_t in, out;    /* the linear layer: weight [out, in] */
    int64_t group_size; /* -1: one group for the whole column */
    int v2;             /* zero points stored as is (gptq_v2) rather than minus one */
} qid_gptq_layout;

/* Groups of a layer: ceil(in / group_size), or 1. */
int64_t qid_gptq_groups(const qid_gptq_layout *l);

/* Unpacks one layer into w ([out, in] row-major floats, exact: an fp16
 * scale times a code difference of at most 9 bits fits float's 24).
 * qweight is [in*bits/32, out], qzeros [groups, out*bits/32], scales
 * [groups, out] as fp16 bits, g_idx [in] or NULL (then i / group_size).
 * A g_idx value outside [0, groups) is QID_E_FORMAT naming it. Shapes are
 * the caller's to check. */
int qid_gptq_unpack(const qid_gptq_layout *l, const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales,
                    const int32_t *g_idx, float *w, qid_error *err);

#endif
