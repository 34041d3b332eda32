/* gptq_packed.c - GPTQ-packed layers to float weights. See gptq_packed.h
 * for the format and the contract. */
#include "gptq_packed.h"

#include <inttypes.h>
#include <stdlib.h>

#include "h5io.h"

int64_t qid_gptq_groups(const qid_gptq_layout *l)
{
    return l->group_size > 0 ? (l->in + l->group_size - 1) / l->group_size : 1;
}

/* Code k of a bit stream whose word w is at words[w * step]. */
static inline uint32_t field(const int32_t *words, int64_t step, int bits, int64_t k)
{
    uint64_t bit = (uint64_t)k * (uint64_t)bits;
    uint64_t w = bit >> 5, off = bit & 31;
    uint64_t v = (uint32_t)words[(int64_t)w * step];
    if (off + (uint64_t)bits > 32) v |= (uint64_t)(uint32_t)words[(int64_t)(w + 1) * step] << 32;
    return (uint32_t)(v >> off) & ((1u << bits) - 1);
}

int qid_gptq_unpack(const qid_gptq_layout *l, const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales,
                    const int32_t *g_idx, float *w, qid_error *err)
{
    int64_t groups = qid_gptq_groups(l), zwords = l->out * l->bits / 32;
    for (int64_t i = 0; i < l->in; i++) {
        int64_t g = g_idx ? g_idx[i] : (l->group_size > 0 ? i / l->group_size : 0);
        if (g < 0 || g >= groups)
            return qid_error_set(err, QID_E_FORMAT, "g_idx[%" PRId64 "] = %" PRId64 " is outside 0..%" PRId64, i, g,
                                 groups - 1);
    }
    for (int64_t o = 0; o < l->out; o++) {
        for (int64_t i = 0; i < l->in; i++) {
            int64_t g = g_idx ? g_idx[i] : (l->group_size > 0 ? i / l->group_size : 0);
            int32_t q = (int32_t)field(qweight + o, l->out, l->bits, i);
            int32_t z = (int32_t)field(qzeros + g * zwords, 1, l->bits, o) + (l->v2 ? 0 : 1);
            float s;
            qid_f16_to_f32(&scales[g * l->out + o], &s, 1);
            w[o * l->in + i] = s * (float)(q - z);
        }
    }
    return QID_OK;
}
