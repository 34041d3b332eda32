/* kernels_avx2.c - the AVX2/FMA forms of the forward-pass kernels
 * (kernels.h): 8 floats per instruction, every loop ending in a scalar or
 * masked tail so any length works. Every function is compiled for
 * avx2,fma,f16c by a target attribute (GCC and clang); kernels.c calls them
 * only when the CPU has all three (qid_k_have_avx2). On other targets
 * each _avx2 function is the reference.
 *
 * Vector math: exp is the Cephes single-precision polynomial with a split
 * 2^n scaling (no overflow in the exponent arithmetic); erf is Eigen's
 * 13/8 rational approximation on [-4, 4] (max abs error 4.5e-7, erf = +-1
 * outside). Sums that feed a logarithm (logsumexp, KL) are kept in float64.
 *
 * Does not: allocate, start threads, or depend on -ffast-math. */
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <math.h>

/* Every function here is compiled for these features (GCC and clang). */
#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* ---- vector helpers ----------------------------------------------------- */

AVX2 static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline double hsum4d(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* Adds the 8 floats of v to the float64 accumulator acc (4 lanes). */
AVX2 static inline __m256d add_f64(__m256d acc, __m256 v)
{
    acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

/* A mask selecting the first n (0..8) lanes, for loads and stores of tails. */
AVX2 static inline __m256i tail_mask(size_t n)
{
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(const void *)(m + 8 - n));
}

/* exp(x) per lane (Cephes expf): x = n ln2 + r, |r| <= ln2/2, exp(r) by a
 * degree-7 polynomial, times 2^(n/2) * 2^(n - n/2) so n = 128 works. Lanes
 * below -87.33654 give 0, NaN stays NaN. */
AVX2 static inline __m256 exp8(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(89.0f);
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 c1 = _mm256_set1_ps(0.693359375f), c2 = _mm256_set1_ps(-2.12194440e-4f);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(xc, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, c1, xc);
    r = _mm256_fnmadd_ps(fx, c2, r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i n = _mm256_cvtps_epi32(fx);
    __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    y = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
    y = _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y);
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* erf(x) per lane: Eigen's rational approximation x P(x^2) / Q(x^2) on
 * [-4, 4], clamped outside (erf(4) rounds to 1 in float32). */
AVX2 static inline __m256 erf8(__m256 x)
{
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-4.0f)), _mm256_set1_ps(4.0f));
    __m256 x2 = _mm256_mul_ps(xc, xc);
    __m256 p = _mm256_set1_ps(-2.72614225801306e-10f);
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(2.77068142495902e-08f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-2.10102402082508e-06f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-5.69250639462346e-05f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-7.34990630326855e-04f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-2.95459980854025e-03f));
    p = _mm256_fmadd_ps(x2, p, _mm256_set1_ps(-1.60960333262415e-02f));
    p = _mm256_mul_ps(xc, p);
    __m256 q = _mm256_set1_ps(-1.45660718464996e-05f);
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-2.13374055278905e-04f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-1.68282697438203e-03f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-7.37332916720468e-03f));
    q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(-1.42647390514189e-02f));
    return _mm256_div_ps(p, q);
}

AVX2 static inline __m256 gelu8(__m256 x)
{
    __m256 e = erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* tanh-GELU per lane: tanh(u) = 1 - 2 / (1 + exp(2u)); exp8 saturates to
 * 0 and +inf at the ends, giving -1 and 1. */
AVX2 static inline __m256 gelu_tanh8(__m256 x)
{
    const __m256 c = _mm256_set1_ps(0.79788456080286535588f), a = _mm256_set1_ps(0.044715f);
    const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    __m256 u = _mm256_mul_ps(c, _mm256_fmadd_ps(a, x3, x));
    __m256 e = exp8(_mm256_mul_ps(two, u));
    __m256 t = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(one, e)));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(one, t));
}

/* max(0, x) per lane; a NaN lane stays NaN (maxps returns its second operand). */
AVX2 static inline __m256 relu8(__m256 x) { return _mm256_max_ps(_mm256_setzero_ps(), x); }

AVX2 static inline __m256 silu8(__m256 x)
{
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* Applies f to x[0..n) into out[0..n), 8 at a time, the tail masked. */
#define MAP8(out, x, n, f)                                                                                             \
    do {                                                                                                               \
        size_t i_ = 0;                                                                                                 \
        for (; i_ + 8 <= (n); i_ += 8)                                                                                 \
            _mm256_storeu_ps((out) + i_, f(_mm256_loadu_ps((x) + i_)));                                                \
        if (i_ < (n)) {                                                                                                \
            __m256i m_ = tail_mask((n)-i_);                                                                            \
            _mm256_maskstore_ps((out) + i_, m_, f(_mm256_maskload_ps((x) + i_, m_)));                                  \
        }                                                                                                              \
    } while (0)

/* ---- normalization ------------------------------------------------------ */

/* out, x are (rows, C); w, b are (C). */
AVX2 void qid_k_layernorm_avx2(float *out, const float *x, const float *w, const float *b, size_t rows, size_t C,
                               float eps)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        float *o = out + r * C;
        __m256 acc = _mm256_setzero_ps();
        size_t i = 0;
        for (; i + 8 <= C; i += 8)
            acc = _mm256_add_ps(acc, _mm256_loadu_ps(xr + i));
        float sum = hsum8(acc);
        for (; i < C; i++)
            sum += xr[i];
        const float mean = sum / (float)C;
        const __m256 vm = _mm256_set1_ps(mean);
        acc = _mm256_setzero_ps();
        for (i = 0; i + 8 <= C; i += 8) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(xr + i), vm);
            acc = _mm256_fmadd_ps(d, d, acc);
        }
        float ss = hsum8(acc);
        for (; i < C; i++)
            ss += (xr[i] - mean) * (xr[i] - mean);
        const float rstd = 1.0f / sqrtf(ss / (float)C + eps);
        const __m256 vr = _mm256_set1_ps(rstd);
        for (i = 0; i + 8 <= C; i += 8) {
            __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), vm), vr);
            _mm256_storeu_ps(o + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
        }
        for (; i < C; i++)
            o[i] = (xr[i] - mean) * rstd * w[i] + b[i];
    }
}

/* out, x are (rows, C); w is (C). */
AVX2 void qid_k_rmsnorm_avx2(float *out, const float *x, const float *w, size_t rows, size_t C, float eps)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        float *o = out + r * C;
        __m256 acc = _mm256_setzero_ps();
        size_t i = 0;
        for (; i + 8 <= C; i += 8) {
            __m256 v = _mm256_loadu_ps(xr + i);
            acc = _mm256_fmadd_ps(v, v, acc);
        }
        float ss = hsum8(acc);
        for (; i < C; i++)
            ss += xr[i] * xr[i];
        const float s = 1.0f / sqrtf(ss / (float)C + eps);
        const __m256 vs = _mm256_set1_ps(s);
        for (i = 0; i + 8 <= C; i += 8)
            _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_mul_ps(_mm256_loadu_ps(xr + i), vs)));
        for (; i < C; i++)
            o[i] = w[i] * (xr[i] * s);
    }
}

/* ---- rotary -------------------------------------------------------------- */

/* x rows are (T, ld); cos_t, sin_t are (T, rotary_dim/2). */
AVX2 void qid_k_rope_avx2(float *x, size_t T, size_t ld, size_t n_heads, size_t head_stride, size_t rotary_dim,
                          const float *cos_t, const float *sin_t)
{
    const size_t h = rotary_dim / 2;
    for (size_t t = 0; t < T; t++) {
        const float *c = cos_t + t * h, *s = sin_t + t * h;
        for (size_t j = 0; j < n_heads; j++) {
            float *x1 = x + t * ld + j * head_stride, *x2 = x1 + h;
            size_t i = 0;
            for (; i + 8 <= h; i += 8) {
                __m256 a = _mm256_loadu_ps(x1 + i), bb = _mm256_loadu_ps(x2 + i);
                __m256 vc = _mm256_loadu_ps(c + i), vs = _mm256_loadu_ps(s + i);
                _mm256_storeu_ps(x1 + i, _mm256_fmsub_ps(a, vc, _mm256_mul_ps(bb, vs)));
                _mm256_storeu_ps(x2 + i, _mm256_fmadd_ps(bb, vc, _mm256_mul_ps(a, vs)));
            }
            for (; i < h; i++) {
                float a = x1[i], bb = x2[i];
                x1[i] = a * c[i] - bb * s[i];
                x2[i] = bb * c[i] + a * s[i];
            }
        }
    }
}

/* ---- softmax --------------------------------------------------------------- */

/* x is (n). */
AVX2 void qid_k_softmax_avx2(float *x, size_t n)
{
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float mx = hmax8(vmax);
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (i < n) {
        __m256i m = tail_mask(n - i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vm));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(x + i, m, e);
        acc = _mm256_add_ps(acc, e);
    }
    const float inv = 1.0f / hsum8(acc);
    const __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
    for (; i < n; i++)
        x[i] *= inv;
}

/* ---- activations ------------------------------------------------------- */

/* x is (n). */
AVX2 void qid_k_gelu_avx2(float *x, size_t n) { MAP8(x, x, n, gelu8); }

/* x is (n). */
AVX2 void qid_k_silu_avx2(float *x, size_t n) { MAP8(x, x, n, silu8); }

/* x is (n). */
AVX2 void qid_k_gelu_tanh_avx2(float *x, size_t n) { MAP8(x, x, n, gelu_tanh8); }

/* x is (n). */
AVX2 void qid_k_relu_avx2(float *x, size_t n) { MAP8(x, x, n, relu8); }

/* s is (n): lane j gets slope * (float)j, the product rounded, then added. */
AVX2 void qid_k_alibi_add_avx2(float *s, size_t n, float slope)
{
    const __m256 sl = _mm256_set1_ps(slope), step = _mm256_set1_ps(8.0f);
    __m256 j = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    size_t i = 0;
    for (; i + 8 <= n; i += 8, j = _mm256_add_ps(j, step))
        _mm256_storeu_ps(s + i, _mm256_add_ps(_mm256_loadu_ps(s + i), _mm256_mul_ps(sl, j)));
    for (; i < n; i++)
        s[i] += slope * (float)i;
}

/* out, x are (n). */
AVX2 void qid_k_exp_avx2(float *out, const float *x, size_t n) { MAP8(out, x, n, exp8); }

/* out, gate, up are (n). */
AVX2 void qid_k_swiglu_avx2(float *out, const float *gate, const float *up, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(silu8(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
    if (i < n) {
        __m256i m = tail_mask(n - i);
        _mm256_maskstore_ps(out + i, m,
                            _mm256_mul_ps(silu8(_mm256_maskload_ps(gate + i, m)), _mm256_maskload_ps(up + i, m)));
    }
}

/* out, in are (n): 8 loaded before 8 stored, front to back, so the
 * in-place layout of kernels.h is safe; the tail is the reference. */
AVX2 void qid_k_f16_to_f32_avx2(float *out, const uint16_t *in, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
    }
    qid_k_f16_to_f32_ref(out + i, in + i, n - i);
}

/* out, in are (n), as qid_k_f16_to_f32_avx2. */
AVX2 void qid_k_bf16_to_f32_avx2(float *out, const uint16_t *in, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
        _mm256_storeu_si256((__m256i *)(void *)(out + i), _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    qid_k_bf16_to_f32_ref(out + i, in + i, n - i);
}

/* x is (n). */
AVX2 size_t qid_k_find_nonfinite_avx2(const float *x, size_t n)
{
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 inf = _mm256_set1_ps(INFINITY);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 bad = _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask), inf, _CMP_NLT_UQ);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + i + 8), abs_mask), inf, _CMP_NLT_UQ));
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + i + 16), abs_mask), inf, _CMP_NLT_UQ));
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + i + 24), abs_mask), inf, _CMP_NLT_UQ));
        if (_mm256_movemask_ps(bad)) break;
    }
    for (; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

/* ---- log-softmax, cross-entropy, KL ------------------------------------ */

/* x is (V). */
AVX2 double qid_k_logsumexp_avx2(const float *x, size_t V)
{
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 8 <= V; i += 8)
        vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float mx = hmax8(vmax);
    for (; i < V; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (isinf(mx)) return mx;
    const __m256 vm = _mm256_set1_ps(mx);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    for (i = 0; i + 16 <= V; i += 16) {
        a0 = add_f64(a0, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm)));
        a1 = add_f64(a1, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm)));
    }
    for (; i + 8 <= V; i += 8)
        a0 = add_f64(a0, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm)));
    if (i < V) {
        __m256i m = tail_mask(V - i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vm));
        a1 = add_f64(a1, _mm256_and_ps(e, _mm256_castsi256_ps(m)));
    }
    return (double)mx + log(hsum4d(_mm256_add_pd(a0, a1)));
}

/* p, q are (V). */
AVX2 double qid_k_kl_avx2(const float *p, const float *q, size_t V, double lse_p, double lse_q)
{
    /* exp(p - lse_p) * ((p - q) - (lse_p - lse_q)) */
    const __m256 vl = _mm256_set1_ps((float)lse_p), vc = _mm256_set1_ps((float)(lse_p - lse_q));
    __m256d acc = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 8 <= V; i += 8) {
        __m256 vp = _mm256_loadu_ps(p + i), vq = _mm256_loadu_ps(q + i);
        __m256 w = exp8(_mm256_sub_ps(vp, vl));
        __m256 d = _mm256_sub_ps(_mm256_sub_ps(vp, vq), vc);
        acc = add_f64(acc, _mm256_mul_ps(w, d));
    }
    double kl = hsum4d(acc);
    for (; i < V; i++) {
        double lp = (double)p[i] - lse_p, lq = (double)q[i] - lse_q;
        kl += exp(lp) * (lp - lq);
    }
    return kl;
}

#else /* not x86-64 with GCC: the references */

void qid_k_layernorm_avx2(float *out, const float *x, const float *w, const float *b, size_t rows, size_t C, float eps)
{
    qid_k_layernorm_ref(out, x, w, b, rows, C, eps);
}
void qid_k_rmsnorm_avx2(float *out, const float *x, const float *w, size_t rows, size_t C, float eps)
{
    qid_k_rmsnorm_ref(out, x, w, rows, C, eps);
}
void qid_k_rope_avx2(float *x, size_t T, size_t ld, size_t n_heads, size_t head_stride, size_t rotary_dim,
                     const float *cos_t, const float *sin_t)
{
    qid_k_rope_ref(x, T, ld, n_heads, head_stride, rotary_dim, cos_t, sin_t);
}
void qid_k_softmax_avx2(float *x, size_t n) { qid_k_softmax_ref(x, n); }
void qid_k_gelu_avx2(float *x, size_t n) { qid_k_gelu_ref(x, n); }
void qid_k_silu_avx2(float *x, size_t n) { qid_k_silu_ref(x, n); }
void qid_k_gelu_tanh_avx2(float *x, size_t n) { qid_k_gelu_tanh_ref(x, n); }
void qid_k_relu_avx2(float *x, size_t n) { qid_k_relu_ref(x, n); }
void qid_k_alibi_add_avx2(float *s, size_t n, float slope) { qid_k_alibi_add_ref(s, n, slope); }
void qid_k_exp_avx2(float *out, const float *x, size_t n) { qid_k_exp_ref(out, x, n); }
void qid_k_swiglu_avx2(float *out, const float *gate, const float *up, size_t n) { qid_k_swiglu_ref(out, gate, up, n); }
double qid_k_logsumexp_avx2(const float *x, size_t V) { return qid_k_logsumexp_ref(x, V); }
size_t qid_k_find_nonfinite_avx2(const float *x, size_t n) { return qid_k_find_nonfinite_ref(x, n); }
void qid_k_f16_to_f32_avx2(float *out, const uint16_t *in, size_t n) { qid_k_f16_to_f32_ref(out, in, n); }
void qid_k_bf16_to_f32_avx2(float *out, const uint16_t *in, size_t n) { qid_k_bf16_to_f32_ref(out, in, n); }
double qid_k_kl_avx2(const float *p, const float *q, size_t V, double lse_p, double lse_q)
{
    return qid_k_kl_ref(p, q, V, lse_p, lse_q);
}

#endif
