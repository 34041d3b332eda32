/* quant_gguf.c - llama.cpp's legacy GGUF block formats Q8_0, Q4_0, Q4_1,
 * Q5_0 and Q5_1 as ggml's reference quantizers define them (ggml/src/
 * ggml-quants.c: quantize_row_q8_0_ref, quantize_row_q4_0_ref, ...; and
 * dequantize_row_q*), block by block along a row; the packed layout is ggml's
 * block_q* struct, byte for byte.
 *
 * Per block of 32 (all arithmetic float32, each operation rounded on its own
 * as ISO C evaluates the reference without FMA contraction):
 *   Q8_0  d = amax / 127, id = d ? 1/d : 0, code = roundf(x * id) (ties away
 *         from zero), value = code * f16(d).
 *   Q4_0  max = the first element of largest |x| (signed), d = max / -8,
 *         code = min(15, trunc(x * id + 8.5)), value = (code - 8) * f16(d).
 *   Q5_0  the same with 16 and 31: d = max / -16, code = min(31, trunc(x * id
 *         + 16.5)), value = (code - 16) * f16(d).
 *   Q4_1  d = (max - min) / 15, code = min(15, trunc((x - min) * id + 0.5)),
 *         value = code * f16(d) + f16(min).
 *   Q5_1  d = (max - min) / 31, code = trunc((x - min) * id + 0.5) (at most
 *         31), value = code * f16(d) + f16(min).
 * The codes are taken with the unrounded d and min; only dequantization sees
 * their fp16 roundings, as in ggml. Consequences kept on purpose:
 *   - an all-zero block: d = id = 0, Q4_0 code 8, Q5_0 code 16; as d is
 *     0 / -8 = -0.0 the block dequantizes to -0.0 (Q8_0, Q4_1, Q5_1: +0).
 *     A Q4_0/Q5_0 block whose largest magnitude is positive has d < 0, so
 *     its zero code dequantizes to -0.0 too.
 *   - a constant block in Q4_1/Q5_1: d = 0, codes 0, every value f16(c).
 *   - |d| beyond fp16's range (amax above 65504 * 127 for Q8_0, 65504 * 8
 *     for Q4_0, ...) stores d = +-Inf, and the block dequantizes to +-Inf
 *     and NaN (0 * Inf); a d below 2^-25 stores 0 and the block is zeros.
 *     qid keeps these results, as llama.cpp would compute them.
 *   - Q4_1/Q5_1 with max - min above FLT_MAX: d = Inf, id = 0, and
 *     (x - min) * id is NaN for x = max; the reference converts that NaN to
 *     an integer (undefined in C); qid gives code 0, what x86-64 gives.
 * The fp16 conversions round to nearest even like GGML_FP32_TO_FP16.
 * The `gguf` package 0.19.0 on PyPI (gguf-py quants.py, the producer of the
 * test vectors) computes the same float32 operations. gguf-py's later
 * sources take Q4_0's and Q5_0's x * id + 8.5 in float64 instead (emulating
 * a build that fuses it into an FMA); that can differ from two float32
 * roundings only when x * id lies within about 2^-20 of a half-integer
 * without being one.
 *
 * Does not: parse names or check shapes (quant_format.c), take an importance
 * matrix (ggml's quantize_q4_0 with quant_weights), or the k-quants and
 * IQ4_NL (quant_gguf_k.c).
 */
#include "quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define QID_GGUF_X86 1
#endif

#define GGUF_QK 32

uint16_t qid_gguf_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint16_t sign = (uint16_t)(u >> 16 & 0x8000u);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) return sign | 0x7e00u;  /* NaN */
    if (u >= 0x477ff000u) return sign | 0x7c00u; /* >= 65520 rounds to Inf */
    if (u >= 0x38800000u) {                      /* a normal half: >= 2^-14 */
        /* round the 13 dropped mantissa bits to nearest even, then rebias
         * the exponent from 127 to 15 (a carry moves into the exponent) */
        uint32_t r = u + 0x0fffu + (u >> 13 & 1u);
        return sign | (uint16_t)((r - 0x38000000u) >> 13);
    }
    /* a subnormal half (or zero): units of 2^-24, scaled exactly, rounded
     * to nearest even; 1024 units is the smallest normal's bit pattern */
    float a;
    memcpy(&a, &u, sizeof a);
    return sign | (uint16_t)lrintf(a * 0x1p24f);
}

float qid_gguf_f16_to_f32(uint16_t h)
{
    const uint32_t e = (uint32_t)h >> 10 & 0x1fu, m = h & 0x3ffu;
    float v;
    if (e == 0) {
        v = (float)m * 0x1p-24f; /* subnormal or zero: exact */
    } else {
        /* rebias 15 -> 127; Inf/NaN keep an all-ones exponent */
        const uint32_t u = (e == 0x1f ? 0x7f800000u : (e + 112u) << 23) | m << 13;
        memcpy(&v, &u, sizeof v);
    }
    return h & 0x8000u ? -v : v;
}

/* f16 round trip of f: what a stored fp16 field reads back as. */
static float f16_round(float f) { return qid_gguf_f16_to_f32(qid_gguf_f32_to_f16(f)); }

/* 1 for the types with a stored minimum (Q4_1, Q5_1). */
static int has_min(enum qid_qtype t) { return t == QID_QTYPE_Q4_1 || t == QID_QTYPE_Q5_1; }

/* x is (n): d, id and the minimum of one block, as the reference. */
void qid_gguf_params(const qid_quant_spec *spec, const float *restrict x, size_t n, qid_quant_params *p)
{
    float d;
    p->min = p->min_q = 0.0f;
    if (spec->type == QID_QTYPE_Q8_0) {
        float amax = 0.0f;
        for (size_t j = 0; j < n; j++) {
            const float a = fabsf(x[j]);
            amax = amax > a ? amax : a;
        }
        d = amax / 127;
    } else if (has_min(spec->type)) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (size_t j = 0; j < n; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        d = (max - min) / (spec->type == QID_QTYPE_Q4_1 ? 15 : 31);
        p->min = min;
        p->min_q = f16_round(min);
    } else {
        float amax = 0.0f, max = 0.0f;
        for (size_t j = 0; j < n; j++)
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        d = max / (spec->type == QID_QTYPE_Q4_0 ? -8 : -16);
    }
    p->aux = d != 0.0f ? 1.0f / d : 0.0f;
    p->scale = f16_round(d);
}

/* The reference's (int8_t)/(uint8_t) conversion of v = x * id + offset,
 * for v in [0, 2^31): truncation. Outside that range the reference is
 * undefined C (NaN or +-Inf when id or d is infinite, negative values when d
 * is float32-subnormal, i.e. a block's largest magnitude is below ~1e-37);
 * qid takes code 0 there (x86-64 gives 0 for NaN and +-Inf). */
static int trunc_code(float v) { return v >= 0.0f && v < 2147483648.0f ? (int)v : 0; }

int qid_gguf_code(const qid_quant_spec *spec, const qid_quant_params *p, float x)
{
    switch (spec->type) {
    case QID_QTYPE_Q8_0: {
        const float v = roundf(x * p->aux);
        return fabsf(v) < 128.0f ? (int)v : 0; /* NaN, Inf: 0 (undefined in the reference) */
    }
    case QID_QTYPE_Q4_0: {
        const int c = trunc_code(x * p->aux + 8.5f);
        return c < 15 ? c : 15;
    }
    case QID_QTYPE_Q5_0: {
        const int c = trunc_code(x * p->aux + 16.5f);
        return c < 31 ? c : 31;
    }
    case QID_QTYPE_Q4_1: {
        const int c = trunc_code((x - p->min) * p->aux + 0.5f);
        return c < 15 ? c : 15;
    }
    default: { /* Q5_1: no clamp in the reference; the code cannot pass 31 */
        const int c = trunc_code((x - p->min) * p->aux + 0.5f);
        return c < 31 ? c : 31;
    }
    }
}

/* The value of code c: dequantize_row_q*'s arithmetic. */
static float gguf_value(enum qid_qtype t, const qid_quant_params *p, int c)
{
    switch (t) {
    case QID_QTYPE_Q8_0: return (float)c * p->scale;
    case QID_QTYPE_Q4_0: return (float)(c - 8) * p->scale;
    case QID_QTYPE_Q5_0: return (float)(c - 16) * p->scale;
    default: return (float)c * p->scale + p->min_q;
    }
}

float qid_gguf_quantize_value(const qid_quant_spec *spec, const qid_quant_params *p, float x)
{
    return gguf_value(spec->type, p, qid_gguf_code(spec, p, x));
}

/* x, y are (n); blocks of spec->block (32) along the row. */
void qid_gguf_quantize_ref(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i += spec->block) {
        const size_t len = n - i < spec->block ? n - i : spec->block;
        qid_quant_params p;
        qid_gguf_params(spec, x + i, len, &p);
        for (size_t j = 0; j < len; j++)
            y[i + j] = qid_gguf_quantize_value(spec, &p, x[i + j]);
    }
}

#ifdef QID_GGUF_X86
/* Horizontal max / min of the 8 lanes. */
__attribute__((target("avx2"))) static float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

__attribute__((target("avx2"))) static float hmin8(__m256 v)
{
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

/* The parameters of a whole block xb[32], equal to qid_gguf_params: the
 * reductions are order-free for finite values except for the sign of a zero
 * extreme, which the scalar loop then settles. */
__attribute__((target("avx2"))) static void gguf_params32_avx2(const qid_quant_spec *spec, const float *xb,
                                                               qid_quant_params *p)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const enum qid_qtype t = spec->type;
    if (t == QID_QTYPE_Q4_1 || t == QID_QTYPE_Q5_1) {
        __m256 lo = _mm256_loadu_ps(xb), hi = lo;
        for (int k = 8; k < GGUF_QK; k += 8) {
            const __m256 v = _mm256_loadu_ps(xb + k);
            lo = _mm256_min_ps(lo, v);
            hi = _mm256_max_ps(hi, v);
        }
        const float min = hmin8(lo), max = hmax8(hi);
        if (min == 0.0f || max == 0.0f) {
            qid_gguf_params(spec, xb, GGUF_QK, p);
            return;
        }
        const float d = (max - min) / (t == QID_QTYPE_Q4_1 ? 15 : 31);
        p->min = min;
        p->min_q = f16_round(min);
        p->aux = d != 0.0f ? 1.0f / d : 0.0f;
        p->scale = f16_round(d);
        return;
    }
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < GGUF_QK; k += 8)
        m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(xb + k), absmask));
    const float amax = hmax8(m);
    float d;
    if (t == QID_QTYPE_Q8_0) {
        d = amax / 127;
    } else {
        float max = 0.0f; /* the first element of largest magnitude; +0 for a zero block */
        if (amax > 0.0f) {
            const __m256 va = _mm256_set1_ps(amax);
            for (int k = 0; k < GGUF_QK; k += 8) {
                const int hit =
                    _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(xb + k), absmask), va, _CMP_EQ_OQ));
                if (hit) {
                    max = xb[k + __builtin_ctz((unsigned)hit)];
                    break;
                }
            }
        }
        d = max / (t == QID_QTYPE_Q4_0 ? -8 : -16);
    }
    p->min = p->min_q = 0.0f;
    p->aux = d != 0.0f ? 1.0f / d : 0.0f;
    p->scale = f16_round(d);
}

/* trunc of v (exact, RNE-free) */
#define GGUF_TRUNC(v) _mm256_round_ps((v), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)

/* x, y are (n). Whole blocks with finite id and d take 8 lanes at a time,
 * each product and sum rounded on its own as the reference (mul then add,
 * never an FMA); codes are clamped to [0, top], where the reference stays
 * for such blocks; roundf (ties away from zero) is trunc(v) plus the sign
 * where |v - trunc(v)| >= 0.5 (v - trunc(v) is exact). Other blocks and a
 * short last block take the reference. */
__attribute__((target("avx2"))) static void gguf_quantize_avx2(const qid_quant_spec *spec, const float *restrict x,
                                                               float *restrict y, size_t n)
{
    const enum qid_qtype t = spec->type;
    const __m256 half = _mm256_set1_ps(0.5f), mhalf = _mm256_set1_ps(-0.5f), one = _mm256_set1_ps(1.0f);
    const __m256 zero = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += GGUF_QK) {
        const size_t len = n - i < GGUF_QK ? n - i : GGUF_QK;
        const float *xb = x + i;
        float *yb = y + i;
        qid_quant_params p;
        if (len == GGUF_QK)
            gguf_params32_avx2(spec, xb, &p);
        else
            qid_gguf_params(spec, xb, len, &p);
        if (len != GGUF_QK || !isfinite(p.aux) || !isfinite(p.scale)) {
            for (size_t j = 0; j < len; j++)
                yb[j] = qid_gguf_quantize_value(spec, &p, xb[j]);
            continue;
        }
        const __m256 id = _mm256_set1_ps(p.aux), d = _mm256_set1_ps(p.scale);
        switch (t) {
        case QID_QTYPE_Q8_0:
            for (int k = 0; k < GGUF_QK; k += 8) {
                const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xb + k), id);
                const __m256 tr = GGUF_TRUNC(v), f = _mm256_sub_ps(v, tr);
                const __m256 up = _mm256_and_ps(_mm256_cmp_ps(f, half, _CMP_GE_OQ), one);
                const __m256 dn = _mm256_and_ps(_mm256_cmp_ps(f, mhalf, _CMP_LE_OQ), one);
                const __m256 r = _mm256_sub_ps(_mm256_add_ps(tr, up), dn);
                _mm256_storeu_ps(yb + k, _mm256_mul_ps(r, d));
            }
            break;
        case QID_QTYPE_Q4_0:
        case QID_QTYPE_Q5_0: {
            const int four = t == QID_QTYPE_Q4_0;
            const __m256 off = _mm256_set1_ps(four ? 8.5f : 16.5f), top = _mm256_set1_ps(four ? 15.0f : 31.0f);
            const __m256 z = _mm256_set1_ps(four ? 8.0f : 16.0f);
            for (int k = 0; k < GGUF_QK; k += 8) {
                const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + k), id), off);
                const __m256 c = _mm256_max_ps(_mm256_min_ps(GGUF_TRUNC(v), top), zero);
                _mm256_storeu_ps(yb + k, _mm256_mul_ps(_mm256_sub_ps(c, z), d));
            }
            break;
        }
        default: {
            const __m256 mn = _mm256_set1_ps(p.min), m = _mm256_set1_ps(p.min_q);
            const __m256 top = _mm256_set1_ps(t == QID_QTYPE_Q4_1 ? 15.0f : 31.0f);
            for (int k = 0; k < GGUF_QK; k += 8) {
                const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xb + k), mn), id), half);
                const __m256 c = _mm256_max_ps(_mm256_min_ps(GGUF_TRUNC(v), top), zero);
                _mm256_storeu_ps(yb + k, _mm256_add_ps(_mm256_mul_ps(c, d), m));
            }
            break;
        }
        }
    }
}
#endif

void qid_gguf_quantize_fast(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n)
{
#ifdef QID_GGUF_X86
    if (qid_quant_use_avx2()) {
        gguf_quantize_avx2(spec, x, y, n);
        return;
    }
#endif
    qid_gguf_quantize_ref(spec, x, y, n);
}

/* Bytes of one ggml block of type t. */
static size_t gguf_block_bytes(enum qid_qtype t) { return qid_quant_traits_of(t)->block_bytes; }

static void put_f16(uint8_t *out, float f)
{
    const uint16_t h = qid_gguf_f32_to_f16(f);
    out[0] = (uint8_t)(h & 0xff);
    out[1] = (uint8_t)(h >> 8);
}

static float get_f16(const uint8_t *in) { return qid_gguf_f16_to_f32((uint16_t)(in[0] | in[1] << 8)); }

/* x is (n); out is qid_quant_row_bytes(spec, n) bytes. */
void qid_gguf_encode(const qid_quant_spec *spec, const float *restrict x, size_t n, uint8_t *restrict out)
{
    const enum qid_qtype t = spec->type;
    const size_t bytes = gguf_block_bytes(t);
    for (size_t i = 0; i < n; i += spec->block) {
        const size_t len = n - i < spec->block ? n - i : spec->block;
        qid_quant_params p;
        qid_gguf_params(spec, x + i, len, &p);
        memset(out, 0, bytes);
        put_f16(out, p.scale);
        size_t h = 2;
        if (has_min(t)) {
            put_f16(out + 2, p.min_q);
            h = 4;
        }
        if (t == QID_QTYPE_Q8_0) {
            for (size_t j = 0; j < len; j++)
                out[h + j] = (uint8_t)(int8_t)qid_gguf_code(spec, &p, x[i + j]);
        } else {
            const int five = t == QID_QTYPE_Q5_0 || t == QID_QTYPE_Q5_1;
            uint32_t qh = 0;
            uint8_t *qs = out + h + (five ? 4 : 0);
            for (size_t j = 0; j < len; j++) {
                const uint32_t c = (uint32_t)qid_gguf_code(spec, &p, x[i + j]);
                qs[j % 16] |= (uint8_t)((c & 0xfu) << (j < 16 ? 0 : 4));
                qh |= (c >> 4 & 1u) << j;
            }
            if (five)
                for (int k = 0; k < 4; k++)
                    out[h + (size_t)k] = (uint8_t)(qh >> (8 * k));
        }
        out += bytes;
    }
}

/* in is qid_quant_row_bytes(spec, n) bytes; y is (n). */
void qid_gguf_decode(const qid_quant_spec *spec, const uint8_t *restrict in, size_t n, float *restrict y)
{
    const enum qid_qtype t = spec->type;
    const size_t bytes = gguf_block_bytes(t);
    for (size_t i = 0; i < n; i += spec->block) {
        const size_t len = n - i < spec->block ? n - i : spec->block;
        qid_quant_params p = {.scale = get_f16(in)};
        size_t h = 2;
        if (has_min(t)) {
            p.min_q = get_f16(in + 2);
            h = 4;
        }
        if (t == QID_QTYPE_Q8_0) {
            for (size_t j = 0; j < len; j++)
                y[i + j] = gguf_value(t, &p, (int8_t)in[h + j]);
        } else {
            const int five = t == QID_QTYPE_Q5_0 || t == QID_QTYPE_Q5_1;
            uint32_t qh = 0;
            if (five)
                for (int k = 0; k < 4; k++)
                    qh |= (uint32_t)in[h + (size_t)k] << (8 * k);
            const uint8_t *qs = in + h + (five ? 4 : 0);
            for (size_t j = 0; j < len; j++) {
                const int c = (qs[j % 16] >> (j < 16 ? 0 : 4) & 0xf) | (int)((qh >> j & 1u) << 4);
                y[i + j] = gguf_value(t, &p, c);
            }
        }
        in += bytes;
    }
}
