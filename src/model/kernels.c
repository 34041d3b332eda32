/* kernels.c - scalar reference kernels of the forward pass (the
 * specification), the run-time choice between them and the AVX2 forms in
 * kernels_avx2.c, the rotary tables, and the blocked attention kernel built
 * on cblas_sgemm.
 *
 * References accumulate in float64 and call libm; they are slow on purpose
 * and only the tests (and CPUs without AVX2) run them.
 *
 * Does not: allocate, start threads, check shapes (see kernels.h). */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

#define K_SQRT1_2 0.70710678118654752440 /* 1/sqrt(2) */

int qid_k_have_avx2(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    static int cached = -1; /* a benign race: every thread computes the same value */
    if (cached < 0) {
        unsigned a = 0, b = 0, c = 0, d = 0; /* F16C: CPUID leaf 1, ecx bit 29 (clang's builtin lacks it) */
        int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    }
    return cached;
#else
    return 0;
#endif
}

const char *qid_k_impl_name(void) { return qid_k_have_avx2() ? "avx2+fma" : "scalar"; }

/* ---- normalization ------------------------------------------------------ */

/* out, x are (rows, C); w, b are (C). */
void qid_k_layernorm_ref(float *out, const float *x, const float *w, const float *b, size_t rows, size_t C, float eps)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        float *o = out + r * C;
        double mean = 0.0, var = 0.0;
        for (size_t i = 0; i < C; i++)
            mean += xr[i];
        mean /= (double)C;
        for (size_t i = 0; i < C; i++)
            var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
        var /= (double)C;
        double rstd = 1.0 / sqrt(var + (double)eps);
        for (size_t i = 0; i < C; i++)
            o[i] = (float)(((double)xr[i] - mean) * rstd * w[i] + b[i]);
    }
}

void qid_k_layernorm(float *out, const float *x, const float *w, const float *b, size_t rows, size_t C, float eps)
{
    if (qid_k_have_avx2())
        qid_k_layernorm_avx2(out, x, w, b, rows, C, eps);
    else
        qid_k_layernorm_ref(out, x, w, b, rows, C, eps);
}

/* out, x are (rows, C); w is (C). */
void qid_k_rmsnorm_ref(float *out, const float *x, const float *w, size_t rows, size_t C, float eps)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        float *o = out + r * C;
        double ss = 0.0;
        for (size_t i = 0; i < C; i++)
            ss += (double)xr[i] * xr[i];
        double s = 1.0 / sqrt(ss / (double)C + (double)eps);
        for (size_t i = 0; i < C; i++)
            o[i] = (float)((double)w[i] * ((double)xr[i] * s));
    }
}

void qid_k_rmsnorm(float *out, const float *x, const float *w, size_t rows, size_t C, float eps)
{
    if (qid_k_have_avx2())
        qid_k_rmsnorm_avx2(out, x, w, rows, C, eps);
    else
        qid_k_rmsnorm_ref(out, x, w, rows, C, eps);
}

/* ---- rotary -------------------------------------------------------------- */

/* cos_t, sin_t are (T, rotary_dim/2). */
void qid_k_rope_table(float *restrict cos_t, float *restrict sin_t, size_t T, size_t rotary_dim, double theta)
{
    const size_t h = rotary_dim / 2;
    for (size_t i = 0; i < h; i++) {
        /* transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all float32 */
        float expo = (float)(2 * i) / (float)rotary_dim;
        float inv = 1.0f / (float)pow(theta, (double)expo);
        for (size_t t = 0; t < T; t++) {
            float angle = (float)t * inv;
            cos_t[t * h + i] = (float)cos((double)angle);
            sin_t[t * h + i] = (float)sin((double)angle);
        }
    }
}

/* x rows are (T, ld); cos_t, sin_t are (T, rotary_dim/2). */
void qid_k_rope_ref(float *x, size_t T, size_t ld, size_t n_heads, size_t head_stride, size_t rotary_dim,
                    const float *cos_t, const float *sin_t)
{
    const size_t h = rotary_dim / 2;
    for (size_t t = 0; t < T; t++) {
        const float *c = cos_t + t * h, *s = sin_t + t * h;
        for (size_t j = 0; j < n_heads; j++) {
            float *xh = x + t * ld + j * head_stride;
            for (size_t i = 0; i < h; i++) {
                double x1 = xh[i], x2 = xh[i + h];
                xh[i] = (float)(x1 * c[i] - x2 * s[i]);
                xh[i + h] = (float)(x2 * c[i] + x1 * s[i]);
            }
        }
    }
}

void qid_k_rope(float *x, size_t T, size_t ld, size_t n_heads, size_t head_stride, size_t rotary_dim,
                const float *cos_t, const float *sin_t)
{
    if (qid_k_have_avx2())
        qid_k_rope_avx2(x, T, ld, n_heads, head_stride, rotary_dim, cos_t, sin_t);
    else
        qid_k_rope_ref(x, T, ld, n_heads, head_stride, rotary_dim, cos_t, sin_t);
}

/* ---- softmax and attention --------------------------------------------- */

/* x is (n). */
void qid_k_softmax_ref(float *x, size_t n)
{
    float mx = x[0];
    for (size_t i = 1; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += exp((double)x[i] - mx);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(exp((double)x[i] - mx) / sum);
}

void qid_k_softmax(float *x, size_t n)
{
    if (qid_k_have_avx2())
        qid_k_softmax_avx2(x, n);
    else
        qid_k_softmax_ref(x, n);
}

size_t qid_k_attention_scratch(size_t T) { return (size_t)QID_K_ATT_BLOCK * (T > 0 ? T : 1); }

/* out row i at out + i*ldo, (T, hd); q, k, v likewise; scratch is (T). */
void qid_k_attention_alibi_ref(float *restrict out, size_t ldo, const float *q, size_t ldq, const float *k, size_t ldk,
                               const float *v, size_t ldv, size_t T, size_t hd, float scale, float slope,
                               float *restrict scratch)
{
    for (size_t i = 0; i < T; i++) {
        const float *qi = q + i * ldq;
        float mx = -INFINITY;
        for (size_t j = 0; j <= i; j++) {
            double dot = 0.0;
            for (size_t d = 0; d < hd; d++)
                dot += (double)qi[d] * k[j * ldk + d];
            scratch[j] = (float)(dot * scale) + slope * (float)j;
            mx = scratch[j] > mx ? scratch[j] : mx;
        }
        double sum = 0.0;
        for (size_t j = 0; j <= i; j++)
            sum += exp((double)scratch[j] - mx);
        for (size_t d = 0; d < hd; d++) {
            double acc = 0.0;
            for (size_t j = 0; j <= i; j++)
                acc += exp((double)scratch[j] - mx) * v[j * ldv + d];
            out[i * ldo + d] = (float)(acc / sum);
        }
    }
}

void qid_k_attention_ref(float *restrict out, size_t ldo, const float *q, size_t ldq, const float *k, size_t ldk,
                         const float *v, size_t ldv, size_t T, size_t hd, float scale, float *restrict scratch)
{
    qid_k_attention_alibi_ref(out, ldo, q, ldq, k, ldk, v, ldv, T, hd, scale, 0.0f, scratch);
}

/* out row i at out + i*ldo, (T, hd); q, k, v likewise; scratch is (QID_K_ATT_BLOCK, T).
 * The masked upper half of each diagonal block is the only wasted work
 * (QID_K_ATT_BLOCK / (2 T) of the total). */
void qid_k_attention_alibi(float *restrict out, size_t ldo, const float *q, size_t ldq, const float *k, size_t ldk,
                           const float *v, size_t ldv, size_t T, size_t hd, float scale, float slope,
                           float *restrict scratch)
{
    for (size_t i0 = 0; i0 < T; i0 += QID_K_ATT_BLOCK) {
        const size_t m = T - i0 < QID_K_ATT_BLOCK ? T - i0 : QID_K_ATT_BLOCK; /* query rows i0 .. i0+m-1 */
        const size_t n = i0 + m;                                              /* keys 0 .. n-1 */
        float *S = scratch;                                                   /* (m, n) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)hd, scale, q + i0 * ldq, (int)ldq, k,
                    (int)ldk, 0.0f, S, (int)n);
        for (size_t r = 0; r < m; r++) {
            const size_t valid = i0 + r + 1;
            if (slope != 0.0f) qid_k_alibi_add(S + r * n, valid, slope);
            qid_k_softmax(S + r * n, valid);
            memset(S + r * n + valid, 0, (n - valid) * sizeof *S);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)hd, (int)n, 1.0f, S, (int)n, v, (int)ldv,
                    0.0f, out + i0 * ldo, (int)ldo);
    }
}

void qid_k_attention(float *restrict out, size_t ldo, const float *q, size_t ldq, const float *k, size_t ldk,
                     const float *v, size_t ldv, size_t T, size_t hd, float scale, float *restrict scratch)
{
    qid_k_attention_alibi(out, ldo, q, ldq, k, ldk, v, ldv, T, hd, scale, 0.0f, scratch);
}

/* s is (n). */
void qid_k_alibi_add_ref(float *s, size_t n, float slope)
{
    for (size_t j = 0; j < n; j++) {
        float b = slope * (float)j;
        s[j] += b;
    }
}

void qid_k_alibi_add(float *s, size_t n, float slope)
{
    if (qid_k_have_avx2())
        qid_k_alibi_add_avx2(s, n, slope);
    else
        qid_k_alibi_add_ref(s, n, slope);
}

/* slopes is (n_heads). */
void qid_k_alibi_slopes(float *slopes, size_t n_heads)
{
    size_t c = 1;
    while (c * 2 <= n_heads)
        c *= 2;
    const float base = (float)pow(2.0, -pow(2.0, -(log2((double)c) - 3.0)));
    for (size_t h = 0; h < c && h < n_heads; h++)
        slopes[h] = powf(base, (float)(h + 1));
    if (c != n_heads) {
        const float extra = (float)pow(2.0, -pow(2.0, -(log2((double)(2 * c)) - 3.0)));
        for (size_t h = c; h < n_heads; h++)
            slopes[h] = powf(extra, (float)(2 * (h - c) + 1));
    }
}

/* ---- activations ------------------------------------------------------- */

/* x is (n). */
void qid_k_gelu_ref(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        x[i] = (float)(0.5 * v * (1.0 + erf(v * K_SQRT1_2)));
    }
}

void qid_k_gelu(float *x, size_t n)
{
    if (qid_k_have_avx2())
        qid_k_gelu_avx2(x, n);
    else
        qid_k_gelu_ref(x, n);
}

/* x is (n). */
void qid_k_gelu_tanh_ref(float *x, size_t n)
{
    const double c = 0.79788456080286535588; /* sqrt(2 / pi) */
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        x[i] = (float)(0.5 * v * (1.0 + tanh(c * (v + 0.044715 * v * v * v))));
    }
}

void qid_k_gelu_tanh(float *x, size_t n)
{
    if (qid_k_have_avx2())
        qid_k_gelu_tanh_avx2(x, n);
    else
        qid_k_gelu_tanh_ref(x, n);
}

/* x is (n). */
void qid_k_relu_ref(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void qid_k_relu(float *x, size_t n)
{
    if (qid_k_have_avx2())
        qid_k_relu_avx2(x, n);
    else
        qid_k_relu_ref(x, n);
}

/* x is (n). */
void qid_k_silu_ref(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        x[i] = (float)(v / (1.0 + exp(-v)));
    }
}

void qid_k_silu(float *x, size_t n)
{
    if (qid_k_have_avx2())
        qid_k_silu_avx2(x, n);
    else
        qid_k_silu_ref(x, n);
}

/* out, gate, up are (n). */
void qid_k_swiglu_ref(float *out, const float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double g = gate[i];
        out[i] = (float)(g / (1.0 + exp(-g)) * up[i]);
    }
}

void qid_k_swiglu(float *out, const float *gate, const float *up, size_t n)
{
    if (qid_k_have_avx2())
        qid_k_swiglu_avx2(out, gate, up, n);
    else
        qid_k_swiglu_ref(out, gate, up, n);
}

/* out, x are (n). */
void qid_k_exp_ref(float *out, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = expf(x[i]);
}

void qid_k_exp(float *out, const float *x, size_t n)
{
    if (qid_k_have_avx2())
        qid_k_exp_avx2(out, x, n);
    else
        qid_k_exp_ref(out, x, n);
}

/* out, in are (n); see kernels.h for the in-place layout. */
void qid_k_f16_to_f32_ref(float *out, const uint16_t *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t h = in[i], sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
        if (e == 0x1f) {
            bits = sign | 0x7f800000u | (mant << 13); /* Inf, NaN (payload kept, made quiet as F16C does) */
            if (mant) bits |= 0x00400000u;
        } else if (e != 0) {
            bits = sign | ((e + 112) << 23) | (mant << 13); /* normal: rebias 15 -> 127 */
        } else if (mant == 0) {
            bits = sign; /* +-0 */
        } else {         /* subnormal: mant * 2^-24, normal in float32 */
            int k = 0;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                k++;
            }
            bits = sign | ((uint32_t)(113 - k) << 23) | ((mant & 0x3ffu) << 13);
        }
        memcpy(&out[i], &bits, sizeof bits);
    }
}

void qid_k_f16_to_f32(float *out, const uint16_t *in, size_t n)
{
    if (qid_k_have_avx2())
        qid_k_f16_to_f32_avx2(out, in, n);
    else
        qid_k_f16_to_f32_ref(out, in, n);
}

/* out, in are (n). */
void qid_k_bf16_to_f32_ref(float *out, const uint16_t *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)in[i] << 16;
        memcpy(&out[i], &bits, sizeof bits);
    }
}

void qid_k_bf16_to_f32(float *out, const uint16_t *in, size_t n)
{
    if (qid_k_have_avx2())
        qid_k_bf16_to_f32_avx2(out, in, n);
    else
        qid_k_bf16_to_f32_ref(out, in, n);
}

/* x is (n). */
size_t qid_k_find_nonfinite_ref(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

size_t qid_k_find_nonfinite(const float *x, size_t n)
{
    return qid_k_have_avx2() ? qid_k_find_nonfinite_avx2(x, n) : qid_k_find_nonfinite_ref(x, n);
}

/* ---- log-softmax, cross-entropy, KL ------------------------------------ */

/* x is (V). */
double qid_k_logsumexp_ref(const float *x, size_t V)
{
    float mx = x[0];
    for (size_t i = 1; i < V; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (isinf(mx)) return mx; /* all -inf, or a +inf logit */
    double sum = 0.0;
    for (size_t i = 0; i < V; i++)
        sum += exp((double)x[i] - mx);
    return mx + log(sum);
}

double qid_k_logsumexp(const float *x, size_t V)
{
    return qid_k_have_avx2() ? qid_k_logsumexp_avx2(x, V) : qid_k_logsumexp_ref(x, V);
}

/* out, x are (V). */
void qid_k_log_softmax_ref(float *out, const float *x, size_t V)
{
    double lse = qid_k_logsumexp_ref(x, V);
    for (size_t i = 0; i < V; i++)
        out[i] = (float)((double)x[i] - lse);
}

void qid_k_log_softmax(float *out, const float *x, size_t V)
{
    double lse = qid_k_logsumexp(x, V);
    for (size_t i = 0; i < V; i++)
        out[i] = (float)((double)x[i] - lse);
}

/* x is (V). */
double qid_k_cross_entropy_ref(const float *x, size_t V, uint32_t target)
{
    return qid_k_logsumexp_ref(x, V) - (double)x[target];
}

double qid_k_cross_entropy(const float *x, size_t V, uint32_t target)
{
    return qid_k_logsumexp(x, V) - (double)x[target];
}

/* p, q are (V). */
double qid_k_kl_ref(const float *p, const float *q, size_t V, double lse_p, double lse_q)
{
    double kl = 0.0;
    for (size_t i = 0; i < V; i++) {
        double lp = (double)p[i] - lse_p, lq = (double)q[i] - lse_q;
        kl += exp(lp) * (lp - lq);
    }
    return kl;
}

double qid_k_kl(const float *p, const float *q, size_t V, double lse_p, double lse_q)
{
    return qid_k_have_avx2() ? qid_k_kl_avx2(p, q, V, lse_p, lse_q) : qid_k_kl_ref(p, q, V, lse_p, lse_q);
}
