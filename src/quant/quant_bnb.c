/* quant_bnb.c - NF4 and FP4 exactly as bitsandbytes' CUDA kernels define them
 * (csrc/kernels.cu: kQuantizeBlockwise with dQuantizeNF4 / dQuantizeFP4,
 * kDequantizeBlockwise with nf4_dequantization_lut / fp4_dequantization_lut),
 * block by block along a row; the packed layout.
 *
 * Per block: absmax = max |w|; r = 1.0f / absmax; each weight's code comes
 * from the decision tree applied to the float32 product w * r (a multiply by
 * the reciprocal, not a division); the dequantized value is
 * table[code] * absmax. Consequences kept on purpose, as bitsandbytes has them:
 *   - ties: the trees test x > threshold, so a value exactly on a threshold
 *     takes the lower code. The thresholds are bitsandbytes' float literals:
 *     NF4's are the double midpoints of neighbouring codes written as
 *     shortest decimals; 9 of those 15 midpoints are not floats (they lie
 *     halfway between two) and the literal rounds to one side, so the float
 *     just above such a midpoint may still take the lower code. FP4's are
 *     written with 7-8 digits (0.583333f is 3.3e-7 below the midpoint 7/12,
 *     so x in (0.583333f, 7/12) goes up to 8/12 though 6/12 is nearer).
 *   - an all-zero block: r = inf and 0 * inf = NaN, which no comparison
 *     passes, so NF4 gives code 0 (-1.0, dequantized -1.0 * 0 = -0.0) and FP4
 *     code 0 (+0.0), as the CUDA kernel does. bitsandbytes 0.50's CPU path
 *     does not give this result for such a block; qid follows the CUDA
 *     kernel, as everywhere else.
 *   - FP4 takes its sign from x < 0, so -0.0 gets code 0 and a negative value
 *     below the first threshold gets code 8 (dequantized -0.0).
 *   - a block whose absmax is below 2^-128 has r = inf: its non-zero values
 *     go to the extreme codes and its zeros (NaN) to code 0.
 * Outputs stay float32; bitsandbytes would round table[code] * absmax to the
 * tensor's dtype (fp16/bf16).
 *
 * Does not: double quantization of absmax (bitsandbytes' compress_statistics),
 * or non-finite checks (qid_quant_matrix rejects NaN/Inf first).
 */
#include "quant.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define QID_BNB_X86 1
#endif

const float qid_nf4_code[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

/* fp4_dequantization_lut, then the same times -1.0f (bit 3 is the sign:
 * bitsandbytes multiplies by 1.0f - 2 * sign). */
const float qid_fp4_code[16] = {
    0.0f,  0.005208333333f,  0.66666667f,  1.0f,  0.33333333f,  0.5f,  0.16666667f,  0.25f,
    -0.0f, -0.005208333333f, -0.66666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f,
};

/* dQuantizeNF4's thresholds in ascending order: code = how many are < x. */
static const float nf4_thresholds[15] = {
    -0.8480964004993439f,  -0.6106329262256622f,   -0.4599952697753906f, -0.33967943489551544f, -0.23460740596055984f,
    -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f, 0.1202552504837513f,   0.2035212516784668f,
    0.2920137718319893f,   0.3893125355243683f,    0.5016634166240692f,  0.6427869200706482f,   0.8614784181118011f,
};

/* dQuantizeFP4's thresholds on |x| in ascending order, and the magnitude
 * code of each rank (0, 0.0625, 2, 3, 4, 6, 8, 12 over 12). */
static const float fp4_thresholds[7] = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f,
                                        0.4166667f,  0.583333f,  0.8333333f};
static const uint8_t fp4_rank_code[8] = {0x0, 0x1, 0x6, 0x7, 0x4, 0x5, 0x2, 0x3};

uint8_t qid_nf4_encode1(float x)
{
    /* dQuantizeNF4, as written in bitsandbytes. */
    if (x > 0.03979014977812767f)
        if (x > 0.3893125355243683f)
            if (x > 0.6427869200706482f)
                if (x > 0.8614784181118011f)
                    return 0xF;
                else
                    return 0xE;
            else if (x > 0.5016634166240692f)
                return 0xD;
            else
                return 0xC;
        else if (x > 0.2035212516784668f)
            if (x > 0.2920137718319893f)
                return 0xB;
            else
                return 0xA;
        else if (x > 0.1202552504837513f)
            return 0x9;
        else
            return 0x8;
    else if (x > -0.33967943489551544f)
        if (x > -0.13791173323988914f)
            if (x > -0.045525018125772476f)
                return 0x7;
            else
                return 0x6;
        else if (x > -0.23460740596055984f)
            return 0x5;
        else
            return 0x4;
    else if (x > -0.6106329262256622f)
        if (x > -0.4599952697753906f)
            return 0x3;
        else
            return 0x2;
    else if (x > -0.8480964004993439f)
        return 0x1;
    else
        return 0x0;
}

uint8_t qid_fp4_encode1(float x)
{
    /* dQuantizeFP4, as written in bitsandbytes. */
    uint8_t sign = x < 0.0f ? 0x8 : 0x0;
    x = fabsf(x);
    if (x > 0.29166667f)
        if (x > 0.583333f)
            if (x > 0.8333333f)
                return 0x3 + sign;
            else
                return 0x2 + sign;
        else if (x > 0.4166667f)
            return 0x5 + sign;
        else
            return 0x4 + sign;
    else if (x > 0.0859375f)
        if (x > 0.20833333f)
            return 0x7 + sign;
        else
            return 0x6 + sign;
    else if (x > 0.00260417f)
        return 0x1 + sign;
    else
        return 0x0 + sign;
}

/* x is (n): absmax = max |x|, and the reciprocal the kernel multiplies by. */
void qid_bnb_params(const qid_quant_spec *spec, const float *restrict x, size_t n, qid_quant_params *p)
{
    float m = 0.0f;
    for (size_t j = 0; j < n; j++) {
        float a = fabsf(x[j]);
        m = a > m ? a : m;
    }
    p->scale = m;
    p->aux = 1.0f / m;
}

/* The code of x in a block with parameters p. */
static uint8_t bnb_code(int nf4, const qid_quant_params *p, float x)
{
    float v = x * p->aux;
    return nf4 ? qid_nf4_encode1(v) : qid_fp4_encode1(v);
}

float qid_nf4_quantize_value(const qid_quant_spec *spec, const qid_quant_params *p, float x)
{
    return qid_nf4_code[qid_nf4_encode1(x * p->aux)] * p->scale;
}

float qid_fp4_quantize_value(const qid_quant_spec *spec, const qid_quant_params *p, float x)
{
    return qid_fp4_code[qid_fp4_encode1(x * p->aux)] * p->scale;
}

/* x, y are (n); blocks of spec->block along the row. */
void qid_bnb_quantize_ref(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n)
{
    const int nf4 = spec->type == QID_QTYPE_NF4;
    const float *table = nf4 ? qid_nf4_code : qid_fp4_code;
    for (size_t i = 0; i < n; i += spec->block) {
        size_t len = n - i < spec->block ? n - i : spec->block;
        qid_quant_params p;
        qid_bnb_params(spec, x + i, len, &p);
        for (size_t j = 0; j < len; j++)
            y[i + j] = table[bnb_code(nf4, &p, x[i + j])] * p.scale;
    }
}

#ifdef QID_BNB_X86
__attribute__((target("avx2,fma"))) static float bnb_absmax_avx2(const float *x, size_t len)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 vm = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 8 <= len; j += 8)
        vm = _mm256_max_ps(vm, _mm256_and_ps(_mm256_loadu_ps(x + j), absmask));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    float r = _mm_cvtss_f32(m);
    for (; j < len; j++) {
        float a = fabsf(x[j]);
        r = a > r ? a : r;
    }
    return r;
}

/* x, y are (n). The trees become counts of thresholds passed (they are
 * binary searches over sorted thresholds with x > t going up), then a
 * gather from the table. NaN (all-zero block) passes no comparison. */
__attribute__((target("avx2,fma"))) static void bnb_quantize_avx2(const qid_quant_spec *spec, const float *restrict x,
                                                                  float *restrict y, size_t n)
{
    const int nf4 = spec->type == QID_QTYPE_NF4;
    const float *table = nf4 ? qid_nf4_code : qid_fp4_code;
    const __m256 signmask = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    const __m256i rank_code = _mm256_setr_epi32(fp4_rank_code[0], fp4_rank_code[1], fp4_rank_code[2], fp4_rank_code[3],
                                                fp4_rank_code[4], fp4_rank_code[5], fp4_rank_code[6], fp4_rank_code[7]);
    for (size_t i = 0; i < n; i += spec->block) {
        size_t len = n - i < spec->block ? n - i : spec->block;
        const float *xb = x + i;
        float *yb = y + i;
        const float absmax = bnb_absmax_avx2(xb, len);
        const float r = 1.0f / absmax;
        const __m256 vr = _mm256_set1_ps(r), vam = _mm256_set1_ps(absmax);
        size_t j = 0;
        for (; j + 8 <= len; j += 8) {
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xb + j), vr);
            __m256i code = _mm256_setzero_si256();
            if (nf4) {
                for (int k = 0; k < 15; k++)
                    code = _mm256_sub_epi32(
                        code, _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_set1_ps(nf4_thresholds[k]), _CMP_GT_OQ)));
            } else {
                __m256 a = _mm256_andnot_ps(signmask, v);
                __m256i rank = _mm256_setzero_si256();
                for (int k = 0; k < 7; k++)
                    rank = _mm256_sub_epi32(
                        rank, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(fp4_thresholds[k]), _CMP_GT_OQ)));
                __m256i neg = _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
                code = _mm256_or_si256(_mm256_permutevar8x32_epi32(rank_code, rank),
                                       _mm256_and_si256(neg, _mm256_set1_epi32(8)));
            }
            _mm256_storeu_ps(yb + j, _mm256_mul_ps(_mm256_i32gather_ps(table, code, 4), vam));
        }
        const qid_quant_params p = {.scale = absmax, .aux = r};
        for (; j < len; j++)
            yb[j] = table[bnb_code(nf4, &p, xb[j])] * absmax;
    }
}
#endif

void qid_bnb_quantize_fast(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n)
{
#ifdef QID_BNB_X86
    if (qid_quant_use_avx2()) {
        bnb_quantize_avx2(spec, x, y, n);
        return;
    }
#endif
    qid_bnb_quantize_ref(spec, x, y, n);
}

/* x is (n); out is qid_quant_row_bytes(spec, n) bytes. */
void qid_bnb_encode(const qid_quant_spec *spec, const float *restrict x, size_t n, uint8_t *restrict out)
{
    const int nf4 = spec->type == QID_QTYPE_NF4;
    for (size_t i = 0; i < n; i += spec->block) {
        size_t len = n - i < spec->block ? n - i : spec->block;
        size_t bytes = qid_quant_block_bytes(spec, len);
        qid_quant_params p;
        qid_bnb_params(spec, x + i, len, &p);
        uint32_t u;
        memcpy(&u, &p.scale, sizeof u);
        for (int k = 0; k < 4; k++)
            out[k] = (uint8_t)(u >> (8 * k));
        memset(out + 4, 0, bytes - 4);
        for (size_t j = 0; j < len; j++) {
            uint8_t c = bnb_code(nf4, &p, x[i + j]);
            out[4 + j / 2] |= (uint8_t)(j % 2 ? c : c << 4);
        }
        out += bytes;
    }
}

/* in is qid_quant_row_bytes(spec, n) bytes; y is (n). */
void qid_bnb_decode(const qid_quant_spec *spec, const uint8_t *restrict in, size_t n, float *restrict y)
{
    const float *table = spec->type == QID_QTYPE_NF4 ? qid_nf4_code : qid_fp4_code;
    for (size_t i = 0; i < n; i += spec->block) {
        size_t len = n - i < spec->block ? n - i : spec->block;
        uint32_t u = 0;
        for (int k = 0; k < 4; k++)
            u |= (uint32_t)in[k] << (8 * k);
        float absmax;
        memcpy(&absmax, &u, sizeof absmax);
        for (size_t j = 0; j < len; j++) {
            uint8_t byte = in[4 + j / 2];
            y[i + j] = table[j % 2 ? byte & 0xF : byte >> 4] * absmax;
        }
        in += qid_quant_block_bytes(spec, len);
    }
}
