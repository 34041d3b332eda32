/* quant_rtn.c - round-to-nearest integer quantization with the min-max scales
 * of the reference GPTQ quantizer (IST-DASLab/gptq, quant.py: Quantizer with
 * perchannel=True on a weight, quantize()), per output channel or per group
 * of G columns, symmetric or asymmetric, with its optional MSE clipping
 * search; the packed INT layout.
 *
 * Matching torch: the reference runs in float32; x / scale is a true
 * division, torch.round is round-half-to-even (nearbyintf here,
 * _mm256_round_ps in the AVX2 path), a Python float times a float32 tensor is
 * rounded to float32 first. Known differences: the sign of a zero output
 * may differ from torch's (no dequantized value changes); and the MSE search
 * takes each error term |Q(x) - x|^2.4 in double (pow of the float32
 * difference) and sums the terms in double, where torch takes the power in
 * float32 and sums float32 in its own order. So on a near tie between two
 * shrink factors the pick can differ; so can it in a group of subnormal
 * weights, whose terms float32 pow underflows to zero (every candidate ties
 * and torch keeps the first) while double tells them apart.
 * A quirk kept on purpose: in symmetric mode a group with no negative weight
 * keeps xmin = 0, so its scale is xmax / maxq, not 2 xmax / maxq (quant.py
 * only mirrors xmin when it is negative).
 *
 * Does not: GPTQ error feedback, act-order, or checks of the input (callers
 * go through qid_quant_matrix, which rejects NaN/Inf and bad shapes).
 */
#include "quant.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define QID_RTN_X86 1
#endif

#define RTN_GRID            100
#define RTN_MAXSHRINK_STEPS 80 /* int(maxshrink * grid) = int(0.8 * 100) */
#define RTN_NORM            2.4

static float rtn_maxq(int bits) { return (float)((1u << bits) - 1u); }

/* The code of x: clamp(round_half_even(x / scale) + zero, 0, maxq). */
static float rtn_code(float x, float scale, float zero, float maxq)
{
    float q = nearbyintf(x / scale) + zero;
    q = q > 0.0f ? q : 0.0f; /* the selections _mm256_max_ps / _min_ps make */
    return q < maxq ? q : maxq;
}

float qid_rtn_quantize1(float x, float scale, float zero, float maxq)
{
    return scale * (rtn_code(x, scale, zero, maxq) - zero);
}

/* Scale and zero from the group's range [xmin, xmax] (xmin <= +0 <= xmax),
 * then the MSE search over x[n] when asked. */
static void rtn_params_from_range(const float *x, size_t n, float xmin, float xmax, int bits, int sym, int mse,
                                  float *scale_out, float *zero_out)
{
    const float maxq = rtn_maxq(bits);
    if (sym) {
        float a = -xmin;
        xmax = a > xmax ? a : xmax;
        if (xmin < 0.0f) xmin = -xmax;
    }
    float scale = (xmax - xmin) / maxq;
    /* The all-zero group of quant.py; a range so small that the scale
     * underflows to 0 is treated the same way (torch would produce NaN). */
    if ((xmin == 0.0f && xmax == 0.0f) || !(scale > 0.0f)) {
        xmin = -1.0f;
        xmax = 1.0f;
        scale = (xmax - xmin) / maxq;
    }
    float zero = sym ? (maxq + 1.0f) / 2.0f : nearbyintf(-xmin / scale);
    if (mse) {
        double best = INFINITY;
        for (int i = 0; i < RTN_MAXSHRINK_STEPS; i++) {
            float p = (float)(1.0 - (double)i / RTN_GRID);
            float xmin1 = p * xmin, xmax1 = p * xmax;
            float scale1 = (xmax1 - xmin1) / maxq;
            if (!(scale1 > 0.0f)) continue;
            float zero1 = sym ? zero : nearbyintf(-xmin1 / scale1);
            double e = 0.0;
            for (size_t j = 0; j < n; j++) {
                float d = qid_rtn_quantize1(x[j], scale1, zero1, maxq) - x[j];
                e += pow(fabs((double)d), RTN_NORM);
            }
            if (e < best) {
                best = e;
                scale = scale1;
                zero = zero1;
            }
        }
    }
    *scale_out = scale;
    *zero_out = zero;
}

/* x is (n): the range scan of the reference. Zeros of either sign end as +0
 * so the vector scan (another order) gives the same bits. */
static void rtn_range_ref(const float *x, size_t n, float *xmin, float *xmax)
{
    float lo = x[0], hi = x[0];
    for (size_t j = 1; j < n; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    *xmin = lo < 0.0f ? lo : 0.0f;
    *xmax = hi > 0.0f ? hi : 0.0f;
}

void qid_rtn_find_params(const float *x, size_t n, int bits, int sym, int mse, float *scale, float *zero)
{
    float xmin, xmax;
    rtn_range_ref(x, n, &xmin, &xmax);
    rtn_params_from_range(x, n, xmin, xmax, bits, sym, mse, scale, zero);
}

/* x is (n). */
void qid_rtn_params(const qid_quant_spec *spec, const float *restrict x, size_t n, qid_quant_params *p)
{
    qid_rtn_find_params(x, n, spec->bits, spec->sym, spec->mse, &p->scale, &p->aux);
}

float qid_rtn_quantize_value(const qid_quant_spec *spec, const qid_quant_params *p, float x)
{
    return qid_rtn_quantize1(x, p->scale, p->aux, rtn_maxq(spec->bits));
}

/* Length of the group of a row of n that starts at i (spec->block, the
 * whole row when 0, or what is left). */
static size_t rtn_group_len(const qid_quant_spec *spec, size_t n, size_t i)
{
    const size_t g = spec->block ? spec->block : n;
    return n - i < g ? n - i : g;
}

/* x, y are (n); groups of spec->block (whole row when 0) along the row. */
void qid_rtn_quantize_ref(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n)
{
    const float maxq = rtn_maxq(spec->bits);
    for (size_t i = 0, len; i < n; i += len) {
        len = rtn_group_len(spec, n, i);
        qid_quant_params p;
        qid_rtn_params(spec, x + i, len, &p);
        for (size_t j = 0; j < len; j++)
            y[i + j] = qid_rtn_quantize1(x[i + j], p.scale, p.aux, maxq);
    }
}

#ifdef QID_RTN_X86
__attribute__((target("avx2,fma"))) static float hmin8(__m256 v)
{
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

__attribute__((target("avx2,fma"))) static float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

/* x is (n): min and max with 8 lanes, then the scalar tail. */
__attribute__((target("avx2,fma"))) static void rtn_range_avx2(const float *x, size_t n, float *xmin, float *xmax)
{
    float lo = x[0], hi = x[0];
    size_t j = 0;
    if (n >= 8) {
        __m256 vlo = _mm256_loadu_ps(x), vhi = vlo;
        for (j = 8; j + 8 <= n; j += 8) {
            __m256 v = _mm256_loadu_ps(x + j);
            vlo = _mm256_min_ps(vlo, v);
            vhi = _mm256_max_ps(vhi, v);
        }
        lo = hmin8(vlo);
        hi = hmax8(vhi);
    }
    for (; j < n; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    *xmin = lo < 0.0f ? lo : 0.0f;
    *xmax = hi > 0.0f ? hi : 0.0f;
}

/* x, y are (n). */
__attribute__((target("avx2,fma"))) static void rtn_quantize_avx2(const qid_quant_spec *spec, const float *restrict x,
                                                                  float *restrict y, size_t n)
{
    const float maxq = rtn_maxq(spec->bits);
    for (size_t i = 0, len; i < n; i += len) {
        len = rtn_group_len(spec, n, i);
        const float *xg = x + i;
        float *yg = y + i;
        float xmin, xmax, scale, zero;
        rtn_range_avx2(xg, len, &xmin, &xmax);
        rtn_params_from_range(xg, len, xmin, xmax, spec->bits, spec->sym, spec->mse, &scale, &zero);
        const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(zero), vmaxq = _mm256_set1_ps(maxq);
        const __m256 v0 = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + 8 <= len; j += 8) {
            __m256 q = _mm256_div_ps(_mm256_loadu_ps(xg + j), vs);
            q = _mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q = _mm256_add_ps(q, vz);
            q = _mm256_max_ps(q, v0);
            q = _mm256_min_ps(q, vmaxq);
            _mm256_storeu_ps(yg + j, _mm256_mul_ps(vs, _mm256_sub_ps(q, vz)));
        }
        for (; j < len; j++)
            yg[j] = qid_rtn_quantize1(xg[j], scale, zero, maxq);
    }
}
#endif

void qid_rtn_quantize_fast(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n)
{
#ifdef QID_RTN_X86
    if (qid_quant_use_avx2()) {
        rtn_quantize_avx2(spec, x, y, n);
        return;
    }
#endif
    qid_rtn_quantize_ref(spec, x, y, n);
}

static void put_f32(uint8_t *out, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    for (int k = 0; k < 4; k++)
        out[k] = (uint8_t)(u >> (8 * k));
}

static float get_f32(const uint8_t *in)
{
    uint32_t u = 0;
    for (int k = 0; k < 4; k++)
        u |= (uint32_t)in[k] << (8 * k);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* x is (n); out is qid_quant_row_bytes(spec, n) bytes. */
void qid_rtn_encode(const qid_quant_spec *spec, const float *restrict x, size_t n, uint8_t *restrict out)
{
    const float maxq = rtn_maxq(spec->bits);
    for (size_t i = 0, len; i < n; i += len) {
        len = rtn_group_len(spec, n, i);
        qid_quant_params p;
        qid_rtn_params(spec, x + i, len, &p);
        QID_CHECK(p.aux >= 0.0f && p.aux <= maxq, "zero point %g outside 0..%g", (double)p.aux, (double)maxq);
        put_f32(out, p.scale);
        out[4] = (uint8_t)p.aux;
        for (size_t j = 0; j < len; j++)
            qid_quant_pack_bits(out + 5, j, spec->bits, (uint32_t)rtn_code(x[i + j], p.scale, p.aux, maxq));
        out += qid_quant_block_bytes(spec, len);
    }
}

/* in is qid_quant_row_bytes(spec, n) bytes; y is (n). */
void qid_rtn_decode(const qid_quant_spec *spec, const uint8_t *restrict in, size_t n, float *restrict y)
{
    for (size_t i = 0, len; i < n; i += len) {
        len = rtn_group_len(spec, n, i);
        float scale = get_f32(in), zero = (float)in[4];
        const uint8_t *codes = in + 5;
        for (size_t j = 0; j < len; j++)
            y[i + j] = scale * ((float)qid_quant_unpack_bits(codes, j, spec->bits) - zero);
        in += qid_quant_block_bytes(spec, len);
    }
}
