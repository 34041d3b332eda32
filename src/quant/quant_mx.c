/* quant_mx.c - OCP Microscaling Formats (MX) v1.0: MXFP8 (E5M2, E4M3), MXFP6
 * (E3M2, E2M3), MXFP4 (E2M1), MXINT8, and MXINTd-b block floating point;
 * fused quantize-dequantize and the packed encoding.
 *
 * The spec's conversion of a block V_1..V_k to an MX block:
 *   X   = 2^(floor(log2(max_i |V_i|)) - emax_elem), the exponent clamped to
 *         the E8M0 range -127..127 (a finite float32 never exceeds 127 since
 *         emax_elem >= 0, so only the lower clamp acts);
 *   P_i = V_i / X rounded to the element type: to nearest, ties to even,
 *         normal values above the largest normal saturate to it, subnormals
 *         are kept;
 *   Q_i = X * P_i.
 * Choices where the spec leaves room, and why:
 *   - max |V_i| == 0: log2 is -inf, the clamp gives X = 2^-127 (E8M0 0x00)
 *     and every P_i is zero. (gfloat does the same.)
 *   - a block holding NaN or +-Inf: its shared exponent is not a finite
 *     number in -127..127, and E8M0's only special encoding is NaN (0xFF);
 *     the spec makes every element of a block with a NaN scale NaN, whatever
 *     its element codes. Packed codes of such a block are written as 0.
 *     (microxcaling also ends with an all-NaN block; torchao sets the NaN
 *     scale for NaN input.)
 *   - MXINT8 elements are 8-bit two's complement with an implicit 2^-6, so
 *     the range is [-2, 127/64]. qid uses the code -128 (-2 = -128/64) where
 *     RNE gives it, and positive values saturate at 127; microsoft/
 *     microxcaling clamps to +-127/64 instead; OCP MX v1.0 allows both.
 *     MXINTd-b generalizes this: d-bit two's complement with implicit
 *     2^-(d-2), emax_elem 0, any block b >= 1.
 *     A negative value that rounds to 0 dequantizes to +0 (there is no -0).
 *     The one overflow: -2 at X = 2^127 is -2^128, which float32 rounds to
 *     -Inf (a block whose most negative value is within a step of -FLT_MAX).
 *   - input float32 subnormals are used as they are (no flush to zero).
 * Differences from microsoft/microxcaling (mx/mx_ops.py, elemwise_ops.py),
 * read as a second opinion, not used as a source:
 *   - its default rounding ("nearest") is half away from zero; "even" is RNE.
 *     We always round ties to even.
 *   - its int8 element clamps symmetrically to +-127/64, never producing -2.
 *   - it maps a shared exponent above 127 to NaN rather than clamping (the
 *     same outcome for our inputs: only Inf/NaN blocks can get there), and a
 *     block max of 0 gives exponent -126 - emax_elem before the clamp (-126
 *     for MXINT8 instead of our -127; the dequantized zeros are equal).
 *   - it has an option to flush float32 subnormal inputs to zero.
 *   - a partial last block is zero-padded there; here it is a shorter
 *     block, which gives the same scale (padding zeros do not change max).
 *
 * Exactness: V_i / X and X * P_i are scalings by powers of two. For every
 * finite input they are exact except when V_i / X lands below 2^-126, where
 * every element type rounds to zero anyway (its smallest subnormal is at
 * least 2^-17), and the MXINT overflow above; so dividing or multiplying by
 * 2^-s gives the same bits; the
 * AVX2 path relies on that and on doing the element rounding with exact
 * power-of-two scalings and _mm256_round_ps (RNE).
 *
 * Does not: check shapes or parse names (quant_format.c), or pad rows.
 */
#include "quant.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define QID_MX_X86 1
#endif

int qid_mx_shared_exp(float amax, const qid_mx_elem *e)
{
    if (!(amax > 0.0f)) return -127;
    int s = ilogbf(amax) - e->emax;
    return s < -127 ? -127 : (s > 127 ? 127 : s);
}

/* 2^k for k in -149..127 as a float, exactly. */
static float pow2f(int k) { return ldexpf(1.0f, k); }

/* Implicit fraction bits of a d-bit MX integer element. */
static int mx_int_frac(int bits) { return bits - 2; }

float qid_mx_elem_round(const qid_mx_elem *e, int bits, float v)
{
    if (e->ebits == 0) {
        int f = mx_int_frac(bits);
        float lo = -pow2f(bits - 1), hi = pow2f(bits - 1) - 1.0f;
        float t = nearbyintf(v * pow2f(f));
        t = t > lo ? t : lo;
        t = t < hi ? t : hi;
        return t * pow2f(-f) + 0.0f;
    }
    float a = fabsf(v), q = 0.0f;
    if (a > 0.0f) {
        int ex = ilogbf(a);
        if (ex < e->emin) ex = e->emin; /* subnormal range: fixed quantum */
        float quantum = pow2f(ex - e->mbits);
        q = nearbyintf(a / quantum) * quantum;
        if (q > e->max_norm) q = e->max_norm; /* saturate */
    }
    return copysignf(q, v);
}

uint32_t qid_mx_elem_encode(const qid_mx_elem *e, int bits, float v)
{
    if (e->ebits == 0) {
        int t = (int)(v * pow2f(mx_int_frac(bits)));
        return (uint32_t)t & ((1u << bits) - 1u);
    }
    uint32_t sign = signbit(v) ? 1u : 0u, expf_, man;
    float a = fabsf(v);
    if (a < pow2f(e->emin)) {
        expf_ = 0;
        man = (uint32_t)(a / pow2f(e->emin - e->mbits));
    } else {
        int ex = ilogbf(a);
        expf_ = (uint32_t)(ex + e->bias);
        man = (uint32_t)(a / pow2f(ex - e->mbits)) - (1u << e->mbits);
    }
    return sign << (e->ebits + e->mbits) | expf_ << e->mbits | man;
}

float qid_mx_elem_decode(const qid_mx_elem *e, int bits, uint32_t code)
{
    if (e->ebits == 0) {
        int t = (int)(code & ((1u << bits) - 1u));
        if (t >= 1 << (bits - 1)) t -= 1 << bits;
        return (float)t * pow2f(-mx_int_frac(bits));
    }
    uint32_t emask = (1u << e->ebits) - 1u, mmask = (1u << e->mbits) - 1u;
    int neg = (int)(code >> (e->ebits + e->mbits) & 1u);
    uint32_t ef = code >> e->mbits & emask, m = code & mmask;
    float a;
    if (e->has_inf && ef == emask)
        a = m == 0 ? INFINITY : NAN; /* E5M2 follows IEEE */
    else if (e->has_nan && !e->has_inf && ef == emask && m == mmask)
        a = NAN; /* E4M3: only S.1111.111 */
    else if (ef == 0)
        a = (float)m * pow2f(e->emin - e->mbits);
    else
        a = (float)((1u << e->mbits) + m) * pow2f((int)ef - e->bias - e->mbits);
    return neg ? -a : a;
}

/* The element type with max_norm filled in for MXINTd. */
static qid_mx_elem mx_elem(const qid_quant_spec *spec)
{
    qid_mx_elem e = *qid_mx_elem_of(spec);
    if (e.ebits == 0) {
        e.bits = spec->bits;
        e.max_norm = (pow2f(spec->bits - 1) - 1.0f) * pow2f(-mx_int_frac(spec->bits));
    }
    return e;
}

/* x is (len): 1 when every value is finite, with the largest magnitude. */
static int mx_block_scan_ref(const float *x, size_t len, float *amax)
{
    float m = 0.0f;
    for (size_t j = 0; j < len; j++) {
        if (!isfinite(x[j])) return 0;
        float a = fabsf(x[j]);
        m = a > m ? a : m;
    }
    *amax = m;
    return 1;
}

/* y is (n): the output of a block with a NaN scale. */
static void mx_fill_nan(float *y, size_t n)
{
    for (size_t j = 0; j < n; j++)
        y[j] = NAN;
}

/* One element: X * P with P = x / X rounded to the element type. */
static float mx_value(const qid_mx_elem *e, int bits, float X, float x)
{
    return X * qid_mx_elem_round(e, bits, x / X);
}

/* x is (n). */
void qid_mx_params(const qid_quant_spec *spec, const float *restrict x, size_t n, qid_quant_params *p)
{
    float amax;
    p->scale = mx_block_scan_ref(x, n, &amax) ? pow2f(qid_mx_shared_exp(amax, qid_mx_elem_of(spec))) : NAN;
    p->aux = 0.0f;
}

float qid_mx_quantize_value(const qid_quant_spec *spec, const qid_quant_params *p, float x)
{
    return mx_value(qid_mx_elem_of(spec), spec->bits, p->scale, x);
}

/* x, y are (n); blocks of spec->block along the row. */
void qid_mx_quantize_ref(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n)
{
    const qid_mx_elem *e = qid_mx_elem_of(spec);
    for (size_t i = 0; i < n; i += spec->block) {
        size_t len = n - i < spec->block ? n - i : spec->block;
        qid_quant_params p;
        qid_mx_params(spec, x + i, len, &p);
        if (isnan(p.scale)) {
            mx_fill_nan(y + i, len);
            continue;
        }
        for (size_t j = 0; j < len; j++)
            y[i + j] = mx_value(e, spec->bits, p.scale, x[i + j]);
    }
}

#ifdef QID_MX_X86
__attribute__((target("avx2,fma"))) static float mx_hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

/* x is (len): as mx_block_scan_ref. Non-finite is detected on the bits
 * (exponent all ones), the maximum on magnitudes (sign bit cleared). */
__attribute__((target("avx2,fma"))) static int mx_block_scan_avx2(const float *x, size_t len, float *amax)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i maxfin = _mm256_set1_epi32(0x7f7fffff);
    __m256 vm = _mm256_setzero_ps();
    __m256i bad = _mm256_setzero_si256();
    size_t j = 0;
    for (; j + 8 <= len; j += 8) {
        __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + j), absmask);
        bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(_mm256_castps_si256(a), maxfin));
        vm = _mm256_max_ps(vm, a);
    }
    if (!_mm256_testz_si256(bad, bad)) return 0;
    float m = mx_hmax8(vm);
    for (; j < len; j++) {
        if (!isfinite(x[j])) return 0;
        float a = fabsf(x[j]);
        m = a > m ? a : m;
    }
    *amax = m;
    return 1;
}

/* x, y are (n). Per block: scan, shared exponent (scalar), then 8 elements
 * at a time: v = x * 2^-s; FP: |v| rounded at the quantum 2^(max(e, emin) -
 * mbits) where e is |v|'s exponent field, saturated, sign restored; INT:
 * round(v * 2^f) clamped, times 2^-f; then times X. Scalar tail per block. */
__attribute__((target("avx2,fma"))) static void mx_quantize_avx2(const qid_quant_spec *spec, const float *restrict x,
                                                                 float *restrict y, size_t n)
{
    const qid_mx_elem e = mx_elem(spec);
    const __m256 signmask = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    const __m256 vmaxn = _mm256_set1_ps(e.max_norm);
    const __m256i vemin = _mm256_set1_epi32(e.emin), vmb = _mm256_set1_epi32(e.mbits);
    const __m256i v127 = _mm256_set1_epi32(127);
    const int f = mx_int_frac(spec->bits);
    const __m256 vup = _mm256_set1_ps(pow2f(f)), vdown = _mm256_set1_ps(pow2f(-f));
    const __m256 vlo = _mm256_set1_ps(-pow2f(spec->bits - 1)), vhi = _mm256_set1_ps(pow2f(spec->bits - 1) - 1.0f);
    const __m256 v0 = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += spec->block) {
        size_t len = n - i < spec->block ? n - i : spec->block;
        const float *xb = x + i;
        float *yb = y + i;
        float amax;
        if (!mx_block_scan_avx2(xb, len, &amax)) {
            mx_fill_nan(yb, len);
            continue;
        }
        int s = qid_mx_shared_exp(amax, &e);
        const float X = pow2f(s);
        const __m256 vX = _mm256_set1_ps(X), vinvX = _mm256_set1_ps(pow2f(-s));
        size_t j = 0;
        if (e.ebits == 0) {
            for (; j + 8 <= len; j += 8) {
                __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xb + j), vinvX);
                __m256 t = _mm256_round_ps(_mm256_mul_ps(v, vup), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                t = _mm256_max_ps(t, vlo);
                t = _mm256_min_ps(t, vhi);
                __m256 q = _mm256_add_ps(_mm256_mul_ps(t, vdown), v0);
                _mm256_storeu_ps(yb + j, _mm256_mul_ps(vX, q));
            }
        } else {
            for (; j + 8 <= len; j += 8) {
                __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xb + j), vinvX);
                __m256 sign = _mm256_and_ps(v, signmask);
                __m256 a = _mm256_andnot_ps(signmask, v);
                __m256i ex = _mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(a), 23), v127);
                ex = _mm256_max_epi32(ex, vemin);
                __m256 up =
                    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(vmb, ex), v127), 23));
                __m256 down =
                    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ex, vmb), v127), 23));
                __m256 q = _mm256_round_ps(_mm256_mul_ps(a, up), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                q = _mm256_min_ps(_mm256_mul_ps(q, down), vmaxn);
                _mm256_storeu_ps(yb + j, _mm256_mul_ps(vX, _mm256_or_ps(q, sign)));
            }
        }
        for (; j < len; j++)
            yb[j] = mx_value(&e, spec->bits, X, xb[j]);
    }
}
#endif

void qid_mx_quantize_fast(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n)
{
#ifdef QID_MX_X86
    if (qid_quant_use_avx2()) {
        mx_quantize_avx2(spec, x, y, n);
        return;
    }
#endif
    qid_mx_quantize_ref(spec, x, y, n);
}

/* x is (n); out is qid_quant_row_bytes(spec, n) bytes. */
void qid_mx_encode(const qid_quant_spec *spec, const float *restrict x, size_t n, uint8_t *restrict out)
{
    const qid_mx_elem e = mx_elem(spec);
    for (size_t i = 0; i < n; i += spec->block) {
        size_t len = n - i < spec->block ? n - i : spec->block;
        size_t bytes = qid_quant_block_bytes(spec, len);
        float amax;
        memset(out, 0, bytes);
        if (!mx_block_scan_ref(x + i, len, &amax)) {
            out[0] = QID_MX_E8M0_NAN;
        } else {
            int s = qid_mx_shared_exp(amax, &e);
            float X = pow2f(s);
            out[0] = (uint8_t)(s + 127);
            for (size_t j = 0; j < len; j++) {
                float p = qid_mx_elem_round(&e, spec->bits, x[i + j] / X);
                qid_quant_pack_bits(out + 1, j, spec->bits, qid_mx_elem_encode(&e, spec->bits, p));
            }
        }
        out += bytes;
    }
}

/* in is qid_quant_row_bytes(spec, n) bytes; y is (n). */
void qid_mx_decode(const qid_quant_spec *spec, const uint8_t *restrict in, size_t n, float *restrict y)
{
    const qid_mx_elem e = mx_elem(spec);
    for (size_t i = 0; i < n; i += spec->block) {
        size_t len = n - i < spec->block ? n - i : spec->block;
        if (in[0] == QID_MX_E8M0_NAN) {
            mx_fill_nan(y + i, len);
        } else {
            float X = pow2f((int)in[0] - 127);
            for (size_t j = 0; j < len; j++)
                y[i + j] = X * qid_mx_elem_decode(&e, spec->bits, qid_quant_unpack_bits(in + 1, j, spec->bits));
        }
        in += qid_quant_block_bytes(spec, len);
    }
}
