/* quant_gguf_k.c - llama.cpp's k-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the
 * non-linear IQ4_NL as llama-quantize writes them without an importance
 * matrix: ggml_quantize_chunk -> quantize_q*_K(..., imatrix NULL), which is
 * quantize_row_q*_K_ref over the rows, and quantize_iq4_nl(..., NULL), which
 * is quantize_row_iq4_nl_impl with 7 scale tries (quantize_row_iq4_nl_ref
 * takes none: a different, unused result). Dequantization is
 * dequantize_row_q*_K / dequantize_row_iq4_nl. Packed blocks are ggml's
 * block_q*_K / block_iq4_nl structs byte for byte (ggml-common.h).
 *
 * A super-block of 256 weights holds 16 sub-blocks of 16 (Q2_K, Q3_K, Q6_K)
 * or 8 of 32 (Q4_K, Q5_K); each sub-block's scale (and minimum) is found by
 * ggml's search, then the sub-block scales are themselves quantized against
 * one fp16 super-block scale (and min scale), and the codes are taken again
 * from the stored scales:
 *   Q2_K  scale and min per 16 by the weighted-MAD search (weights |x|,
 *         15 + 1 steps from nmax - 0.5 by 0.1), 4-bit scales and mins,
 *         codes 0..3, value = d*sc * q - dmin*m.
 *   Q3_K  signed scale per 16 by make_q3_quants (RMSE with weights x^2,
 *         up to 5 passes of one-code moves), 6-bit scales, codes -4..3.
 *   Q4_K  scale and min per 32 by the weighted-MSE search (weights
 *         rms(x) + |x|, 20 + 1 steps from nmax - 1), 6-bit scales and mins,
 *         codes 0..15; Q5_K the same with codes 0..31 (15 + 1 steps from
 *         nmax - 0.5).
 *   Q6_K  signed scale per 16 by make_qx_quants (weights x^2, 18 trial
 *         scales), 8-bit scales, codes -32..31.
 *   IQ4_NL per block of 32: fp16 d, codes index the table {-127, -104, ..,
 *         113}; d by weighted least squares (weights x^2) over 15 trial
 *         scales; value = d * table[code].
 * Every operation is float32 and rounded on its own, in the reference's
 * order (qid is ISO C: no FMA contraction); nearest_int is ggml's
 * 1.5 * 2^23 trick, which rounds half to even and is reproduced outside its
 * asserted range too. Where a sub-block's stored scale is zero the reference
 * keeps the codes of its search (they decide the sign of a zero output), and
 * so does qid. A super-block scale beyond fp16 becomes Inf and the block
 * dequantizes to Inf/NaN, as in llama.cpp.
 *
 * The fast kernel (AVX2, chosen at run time) runs the scale searches of
 * Q2_K, Q4_K, Q5_K, Q6_K and IQ4_NL with 8 sub-blocks (or blocks) in the 8
 * lanes, each lane doing its own sub-block's operations in the reference's
 * order, so no sum is reassociated and the result is bit-identical (Q3_K's
 * data-dependent passes stay scalar); the rest of each block is the scalar
 * code. The searches are what costs: 4-9x the scalar kernel, still well
 * below the legacy blocks' speed (docs/benchmarks.md).
 *
 * The producer of the test vectors is ggml's own ggml-quants.c
 * (tools/make_gguf_kquant_vectors.sh), compiled without FMA contraction; a
 * llama.cpp built with FMA contraction may differ in rare last bits.
 *
 * Does not: take an importance matrix (quantize_row_q*_K_impl), choose the
 * per-tensor mixture (gguf_mix.c), or check shapes (quant_format.c). A row
 * whose last block is short is quantized as if padded with zeros (the matrix
 * level never asks for one).
 */
#include "quant.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define QID_GGUFK_X86 1
#endif

#define QK_K          256
#define QK_NL         32
#define GROUP_MAX_EPS 1e-15f

/* ggml's nearest_int: 1.5 * 2^23 added, the low mantissa bits read back. */
static inline int nearest_int(float f)
{
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

static float f16_round(float f) { return qid_gguf_f16_to_f32(qid_gguf_f32_to_f16(f)); }

static void put_f16(uint8_t *out, float f)
{
    const uint16_t h = qid_gguf_f32_to_f16(f);
    out[0] = (uint8_t)(h & 0xff);
    out[1] = (uint8_t)(h >> 8);
}

static float get_f16(const uint8_t *in) { return qid_gguf_f16_to_f32((uint16_t)(in[0] | in[1] << 8)); }

/* ---- the searches (ggml-quants.c) -------------------------------------- */

/* make_qkx2_quants: scale and minimum of x[n] for codes 0..nmax, the
 * weighted error (|.| when mad, else squared) least over the min-max start
 * and nstep + 1 trial scales (rmin + rdelta * is + nmax) / (max - min), each
 * refined by weighted least squares. L gets the codes, *the_min = -min. */
static float search_min_scale(int n, int nmax, const float *restrict x, const float *restrict w, uint8_t *restrict L,
                              float *the_min, uint8_t *restrict Laux, float rmin, float rdelta, int nstep, int mad)
{
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * (float)L[i] + min - x[i];
        diff = mad ? fabsf(diff) : diff * diff;
        best_error += w[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            const float fl = (float)l;
            sum_l += w[i] * fl;
            sum_l2 += w[i] * fl * fl;
            sum_xl += w[i] * fl * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = mad ? fabsf(diff) : diff * diff;
                cur_error += w[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* The first element of largest magnitude of x[n] (signed) and that magnitude. */
static float signed_amax(int n, const float *x, float *amax_out)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

/* make_q3_quants with do_rmse: signed scale of x[n] for codes -nmax..nmax-1
 * (L gets code + nmax; all 0 for a block below GROUP_MAX_EPS). */
static float search_q3(int n, int nmax, const float *restrict x, int8_t *restrict L)
{
    float amax;
    const float max = signed_amax(n, x, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                const int nl = imax(-nmax, imin(nmax - 1, nearest_int(x[i] * sl2 / slx)));
                if (nl != L[i]) {
                    slx += w * x[i] * (float)nl;
                    sl2 += w * (float)nl * (float)nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* make_qx_quants with rmse_type 1 and no importance: signed scale of x[n]
 * for codes -nmax..nmax-1, weights x^2, the best of 1 + 18 trial scales
 * -(nmax + 0.1 is) / max (L gets code + nmax). */
static float search_qx(int n, int nmax, const float *restrict x, int8_t *restrict L)
{
    float amax;
    const float max = signed_amax(n, x, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(nmax + l);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ---- Q2_K: scales[16] (4-bit scale | 4-bit min << 4), qs[64], d, dmin ---- */

/* Codes L[256] (0..3) into qs[64]: element 128 h + 32 s + l at bits 2s of
 * qs[32 h + l] (Q2_K and Q3_K). */
static void pack2(const uint8_t *restrict L, uint8_t *restrict qs)
{
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

static int unpack2(const uint8_t *qs, int e) { return qs[e / 128 * 32 + e % 32] >> (2 * (e % 128 / 32)) & 3; }

#ifdef QID_GGUFK_X86
__attribute__((target("avx2"))) static void search_min_scale8_avx2(const float *restrict x, int n, int nmax, int q2,
                                                                   uint8_t *restrict L, float *restrict scales,
                                                                   float *restrict mins);
#endif

static void encode_q2_k_impl(const float *restrict x, uint8_t *restrict out, int fast)
{
    uint8_t L[QK_K], Laux[16];
    float w[16], mins[16], scales[16];
    uint8_t *sc = out, *qs = out + 16;
    float max_scale = 0, max_min = 0;
#ifdef QID_GGUFK_X86
    if (fast)
        for (int h = 0; h < 2; h++)
            search_min_scale8_avx2(x + 128 * h, 16, 3, 1, L + 128 * h, scales + 8 * h, mins + 8 * h);
#endif
    for (int j = 0; j < 16; j++) {
        if (!fast) {
            for (int l = 0; l < 16; l++)
                w[l] = fabsf(x[16 * j + l]);
            scales[j] = search_min_scale(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
        }
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
        const float iscale = 15.f / max_scale;
        for (int j = 0; j < 16; j++)
            sc[j] = (uint8_t)nearest_int(iscale * scales[j]);
        put_f16(out + 80, max_scale / 15.f);
    } else {
        memset(sc, 0, 16);
        put_f16(out + 80, 0.f);
    }
    if (max_min > 0) {
        const float iscale = 15.f / max_min;
        for (int j = 0; j < 16; j++) /* unsigned: the reference's l << 4 of a negative l wraps */
            sc[j] = (uint8_t)(sc[j] | (unsigned)nearest_int(iscale * mins[j]) << 4);
        put_f16(out + 82, max_min / 15.f);
    } else {
        put_f16(out + 82, 0.f);
    }
    const float dd = get_f16(out + 80), dmin = get_f16(out + 82);
    for (int j = 0; j < 16; j++) {
        const float d = dd * (float)(sc[j] & 0xF);
        if (d == 0) continue;
        const float dm = dmin * (float)(sc[j] >> 4);
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (uint8_t)imax(0, imin(3, nearest_int((x[16 * j + i] + dm) / d)));
    }
    pack2(L, qs);
}

static void encode_q2_k(const float *restrict x, uint8_t *restrict out) { encode_q2_k_impl(x, out, 0); }
static void encode_q2_k_fast(const float *restrict x, uint8_t *restrict out) { encode_q2_k_impl(x, out, 1); }

static void decode_q2_k(const uint8_t *restrict in, float *restrict y)
{
    const float d = get_f16(in + 80), min = get_f16(in + 82);
    for (int j = 0; j < 16; j++) {
        const uint8_t sc = in[j];
        const float dl = d * (float)(sc & 0xF), ml = min * (float)(sc >> 4);
        for (int i = 0; i < 16; i++)
            y[16 * j + i] = dl * (float)unpack2(in + 16, 16 * j + i) - ml;
    }
}

/* ---- Q3_K: hmask[32], qs[64], scales[12] (6-bit, +32), d --------------- */

/* The 6-bit scale j (0..63, stored + 32) of a Q3_K scales[12]. */
static int q3_scale(const uint8_t *s, int j)
{
    const int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
    return lo | (s[8 + j % 4] >> (2 * (j / 4)) & 3) << 4;
}

static void encode_q3_k(const float *restrict x, uint8_t *restrict out)
{
    int8_t L[QK_K];
    float scales[16];
    uint8_t *hmask = out, *qs = out + 32, *s = out + 96;
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = search_q3(16, 4, x + 16 * j, L + 16 * j);
        const float a = fabsf(scales[j]);
        if (a > amax) {
            amax = a;
            max_scale = scales[j];
        }
    }
    memset(s, 0, 12);
    if (max_scale != 0) {
        const float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; j++) {
            int8_t l = (int8_t)nearest_int(iscale * scales[j]);
            l = (int8_t)(imax(-32, imin(31, l)) + 32);
            if (j < 8)
                s[j] = (uint8_t)(l & 0xF);
            else
                s[j - 8] = (uint8_t)(s[j - 8] | (l & 0xF) << 4);
            l = (int8_t)(l >> 4);
            s[j % 4 + 8] = (uint8_t)(s[j % 4 + 8] | l << (2 * (j / 4)));
        }
        put_f16(out + 108, 1 / iscale);
    } else {
        put_f16(out + 108, 0.f);
    }
    const float dd = get_f16(out + 108);
    for (int j = 0; j < 16; j++) {
        const float d = dd * (float)(int8_t)(q3_scale(s, j) - 32);
        if (d == 0) continue;
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (int8_t)(imax(-4, imin(3, nearest_int(x[16 * j + i] / d))) + 4);
    }
    /* the high bit of element e is bit e / 32 of hmask[e % 32] */
    uint8_t L2[QK_K];
    memset(hmask, 0, 32);
    for (int e = 0; e < QK_K; e++) {
        int l = L[e];
        if (l > 3) {
            hmask[e % 32] = (uint8_t)(hmask[e % 32] | 1u << (e / 32));
            l -= 4;
        }
        L2[e] = (uint8_t)l;
    }
    pack2(L2, qs);
}

static void decode_q3_k(const uint8_t *restrict in, float *restrict y)
{
    const float d = get_f16(in + 108);
    for (int j = 0; j < 16; j++) {
        const float dl = d * (float)(q3_scale(in + 96, j) - 32);
        for (int i = 0; i < 16; i++) {
            const int e = 16 * j + i;
            const int hi = in[e % 32] >> (e / 32) & 1;
            y[e] = dl * (float)(unpack2(in + 32, e) - (hi ? 0 : 4));
        }
    }
}

/* ---- Q4_K / Q5_K: d, dmin, scales[12] (6-bit scales and mins), [qh[32]], qs[128] */

/* get_scale_min_k4: scale and min j (0..7) of a 12-byte scales field. */
static void scale_min_k4(int j, const uint8_t *q, int *d, int *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | (q[j - 4] >> 6) << 4;
        *m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
    }
}

/* The scale search and codes L[256] shared by Q4_K (nmax 15) and Q5_K (31). */
/* The Q4_K (nmax 15) / Q5_K (31) search of the 8 sub-blocks of x[256]:
 * weights rms(x) + |x|, codes L[256], scales[8], mins[8]. */
static void search_q45(const float *restrict x, int nmax, uint8_t *restrict L, float *restrict scales,
                       float *restrict mins)
{
    uint8_t Laux[32];
    float w[32];
    const float rmin = nmax == 15 ? -1.f : -0.5f;
    const int nstep = nmax == 15 ? 20 : 15;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = search_min_scale(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, 0);
    }
}

#ifdef QID_GGUFK_X86
/* nearest_int of 8 floats. */
__attribute__((target("avx2"))) static inline __m256i nearest8(__m256 f)
{
    const __m256i v = _mm256_castps_si256(_mm256_add_ps(f, _mm256_set1_ps(12582912.f)));
    return _mm256_sub_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

/* search_min_scale of 8 sub-blocks of n (16 or 32) at x + n j, one per lane:
 * each lane runs the reference's operations on its own sub-block in the
 * reference's order (no sum is reassociated), so the results are bit for
 * bit the scalar ones. q2: Q2_K's weights |x|, absolute error, 15 + 1 steps
 * from nmax - 0.5; else Q4_K/Q5_K's weights rms(x) + |x|, squared error.
 * L[n j + i], scales[j], mins[j]. */
__attribute__((target("avx2"))) static void search_min_scale8_avx2(const float *restrict x, int n, int nmax, int q2,
                                                                   uint8_t *restrict L, float *restrict scales,
                                                                   float *restrict mins)
{
    /* zeroed: n is 16 or 32, which the compiler cannot see (GCC's -Wmaybe-uninitialized at -O1) */
    __m256 xt[32] = {0}, wt[32] = {0};
    __m256i Lt[32], Lx[32];
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), zero = _mm256_setzero_ps();
    const __m256i izero = _mm256_setzero_si256(), inmax = _mm256_set1_epi32(nmax);
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(n));
    for (int i = 0; i < n; i++)
        xt[i] = _mm256_i32gather_ps(x + i, idx, 4);
    if (q2) {
        for (int i = 0; i < n; i++)
            wt[i] = _mm256_and_ps(xt[i], absmask);
    } else {
        __m256 sum_x2 = zero;
        for (int i = 0; i < n; i++)
            sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(xt[i], xt[i]));
        const __m256 av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps((float)n)));
        for (int i = 0; i < n; i++)
            wt[i] = _mm256_add_ps(av_x, _mm256_and_ps(xt[i], absmask));
    }
    __m256 min = xt[0], max = xt[0], sum_w = wt[0], sum_x = _mm256_mul_ps(wt[0], xt[0]);
    for (int i = 1; i < n; i++) {
        min = _mm256_min_ps(xt[i], min); /* x < min ? x : min */
        max = _mm256_max_ps(xt[i], max);
        sum_w = _mm256_add_ps(sum_w, wt[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(wt[i], xt[i]));
    }
    min = _mm256_blendv_ps(min, zero, _mm256_cmp_ps(min, zero, _CMP_GT_OQ));
    const __m256 flat = _mm256_cmp_ps(max, min, _CMP_EQ_OQ), range = _mm256_sub_ps(max, min), min0 = min;
    const __m256 fnmax = _mm256_set1_ps((float)nmax);
    __m256 iscale = _mm256_div_ps(fnmax, range);
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.f), iscale);
    __m256 best = zero;
    for (int i = 0; i < n; i++) {
        const __m256i l = _mm256_max_epi32(
            izero, _mm256_min_epi32(inmax, nearest8(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], min)))));
        Lt[i] = l;
        __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(l)), min), xt[i]);
        diff = q2 ? _mm256_and_ps(diff, absmask) : _mm256_mul_ps(diff, diff);
        best = _mm256_add_ps(best, _mm256_mul_ps(wt[i], diff));
    }
    const float rmin = nmax == 15 && !q2 ? -1.f : -0.5f, rdelta = 0.1f;
    const int nstep = nmax == 15 && !q2 ? 20 : 15;
    for (int is = 0; is <= nstep; is++) {
        /* max - min again: a taken candidate moves min */
        iscale = _mm256_div_ps(_mm256_set1_ps(rmin + rdelta * (float)is + (float)nmax), _mm256_sub_ps(max, min));
        __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < n; i++) {
            const __m256i l = _mm256_max_epi32(
                izero, _mm256_min_epi32(inmax, nearest8(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], min)))));
            Lx[i] = l;
            const __m256 wl = _mm256_mul_ps(wt[i], _mm256_cvtepi32_ps(l));
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, _mm256_cvtepi32_ps(l)));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, xt[i]));
        }
        const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        const __m256 dpos = _mm256_cmp_ps(D, zero, _CMP_GT_OQ);
        if (_mm256_movemask_ps(dpos) == 0) continue;
        __m256 this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
        __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
        const __m256 mpos = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
        this_min = _mm256_blendv_ps(this_min, zero, mpos);
        this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), mpos);
        __m256 cur = zero;
        for (int i = 0; i < n; i++) {
            __m256 diff =
                _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, _mm256_cvtepi32_ps(Lx[i])), this_min), xt[i]);
            diff = q2 ? _mm256_and_ps(diff, absmask) : _mm256_mul_ps(diff, diff);
            cur = _mm256_add_ps(cur, _mm256_mul_ps(wt[i], diff));
        }
        const __m256 take = _mm256_and_ps(dpos, _mm256_cmp_ps(cur, best, _CMP_LT_OQ));
        if (_mm256_movemask_ps(take) == 0) continue;
        const __m256i takei = _mm256_castps_si256(take);
        for (int i = 0; i < n; i++)
            Lt[i] = _mm256_blendv_epi8(Lt[i], Lx[i], takei);
        best = _mm256_blendv_ps(best, cur, take);
        scale = _mm256_blendv_ps(scale, this_scale, take);
        min = _mm256_blendv_ps(min, this_min, take);
    }
    /* a flat sub-block (max == min after the clamp): codes 0, scale 0 */
    scale = _mm256_blendv_ps(scale, zero, flat);
    min = _mm256_blendv_ps(min, min0, flat);
    const __m256 neg_min = _mm256_xor_ps(min, _mm256_set1_ps(-0.0f)); /* -min, as C's negation */
    _mm256_storeu_ps(scales, scale);
    _mm256_storeu_ps(mins, neg_min);
    int32_t lanes[8];
    const int fm = _mm256_movemask_ps(flat);
    for (int i = 0; i < n; i++) {
        _mm256_storeu_si256((__m256i *)lanes, Lt[i]);
        for (int j = 0; j < 8; j++)
            L[n * j + i] = (uint8_t)(fm >> j & 1 ? 0 : lanes[j]);
    }
}
#endif

/* The scale quantization and final codes shared by Q4_K (nmax 15) and Q5_K
 * (31), after the search found L[256], scales[8] and mins[8]. */
static void encode_q45_k(const float *restrict x, uint8_t *restrict out, int nmax, uint8_t *restrict L, int fast)
{
    float mins[8], scales[8];
    uint8_t *s = out + 4;
#ifdef QID_GGUFK_X86
    if (fast)
        search_min_scale8_avx2(x, 32, nmax, 0, L, scales, mins);
    else
#endif
        search_q45(x, nmax, L, scales, mins);
    (void)fast;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
            s[j - 4] = (uint8_t)(s[j - 4] | (ls >> 4) << 6);
            s[j] = (uint8_t)(s[j] | (lm >> 4) << 6);
        }
    }
    put_f16(out, max_scale / 63.f);
    put_f16(out + 2, max_min / 63.f);
    const float dd = get_f16(out), dmin = get_f16(out + 2);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(j, s, &sc, &m);
        const float d = dd * (float)sc;
        if (d == 0) continue;
        const float dm = dmin * (float)m;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + i] + dm) / d)));
    }
}

/* Element e of a Q4_K/Q5_K qs[128]: low nibble of qs[32 (e / 64) + e % 32]
 * for e % 64 < 32, else its high nibble. */
static int nibble45(const uint8_t *qs, int e) { return qs[e / 64 * 32 + e % 32] >> (e % 64 < 32 ? 0 : 4) & 0xF; }

static void encode_q4_k_impl(const float *restrict x, uint8_t *restrict out, int fast)
{
    uint8_t L[QK_K];
    encode_q45_k(x, out, 15, L, fast);
    uint8_t *q = out + 16;
    for (int j = 0; j < QK_K; j += 64)
        for (int l = 0; l < 32; l++)
            q[j / 2 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
}

static void decode_q45_k(const uint8_t *restrict in, float *restrict y, const uint8_t *qh, const uint8_t *qs)
{
    const float d = get_f16(in), min = get_f16(in + 2);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(j, in + 4, &sc, &m);
        const float d1 = d * (float)sc, m1 = min * (float)m;
        for (int i = 0; i < 32; i++) {
            const int e = 32 * j + i;
            const int hi = qh ? (qh[i] >> j & 1) << 4 : 0; /* bit j of qh[e % 32] */
            y[e] = d1 * (float)(nibble45(qs, e) + hi) - m1;
        }
    }
}

static void decode_q4_k(const uint8_t *restrict in, float *restrict y) { decode_q45_k(in, y, NULL, in + 16); }
static void encode_q4_k(const float *restrict x, uint8_t *restrict out) { encode_q4_k_impl(x, out, 0); }
static void encode_q4_k_fast(const float *restrict x, uint8_t *restrict out) { encode_q4_k_impl(x, out, 1); }

static void encode_q5_k_impl(const float *restrict x, uint8_t *restrict out, int fast)
{
    uint8_t L[QK_K];
    encode_q45_k(x, out, 31, L, fast);
    uint8_t *qh = out + 16, *ql = out + 48;
    memset(qh, 0, 32);
    for (int n = 0, b = 0; n < QK_K; n += 64, b += 2)
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] = (uint8_t)(qh[j] | 1u << b);
            }
            if (l2 > 15) {
                l2 -= 16;
                qh[j] = (uint8_t)(qh[j] | 2u << b);
            }
            ql[n / 2 + j] = (uint8_t)(l1 | l2 << 4);
        }
}

static void decode_q5_k(const uint8_t *restrict in, float *restrict y) { decode_q45_k(in, y, in + 16, in + 48); }
static void encode_q5_k(const float *restrict x, uint8_t *restrict out) { encode_q5_k_impl(x, out, 0); }
static void encode_q5_k_fast(const float *restrict x, uint8_t *restrict out) { encode_q5_k_impl(x, out, 1); }

/* ---- Q6_K: ql[128], qh[64], scales[16] (int8), d ---------------------- */

#ifdef QID_GGUFK_X86
/* search_qx(16, 32, ...) of the 16 sub-blocks of x[256], 8 sub-blocks at a
 * time in the 8 lanes, each lane in the reference's order. */
__attribute__((target("avx2"))) static void search_q6_avx2(const float *restrict x, int8_t *restrict L,
                                                           float *restrict scales)
{
    const int nmax = 32;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), zero = _mm256_setzero_ps();
    const __m256i lo = _mm256_set1_epi32(-nmax), hi = _mm256_set1_epi32(nmax - 1);
    const __m256i idx = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112);
    for (int half = 0; half < 2; half++) {
        const float *xb = x + 128 * half;
        __m256 xt[16], wt[16];
        __m256i Lt[16], Lx[16];
        __m256 amax = zero, max = zero;
        for (int i = 0; i < 16; i++) {
            xt[i] = _mm256_i32gather_ps(xb + i, idx, 4);
            wt[i] = _mm256_mul_ps(xt[i], xt[i]);
            const __m256 ax = _mm256_and_ps(xt[i], absmask), gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
            amax = _mm256_blendv_ps(amax, ax, gt);
            max = _mm256_blendv_ps(max, xt[i], gt);
        }
        const __m256 tiny = _mm256_cmp_ps(amax, _mm256_set1_ps(GROUP_MAX_EPS), _CMP_LT_OQ);
        __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)-nmax), max);
        __m256 sumlx = zero, suml2 = zero;
        for (int i = 0; i < 16; i++) {
            const __m256i l = _mm256_max_epi32(lo, _mm256_min_epi32(hi, nearest8(_mm256_mul_ps(iscale, xt[i]))));
            Lt[i] = l;
            const __m256 fl = _mm256_cvtepi32_ps(l);
            sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(wt[i], xt[i]), fl));
            suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(wt[i], fl), fl));
        }
        __m256 scale = _mm256_blendv_ps(_mm256_div_ps(sumlx, suml2), zero, _mm256_cmp_ps(suml2, zero, _CMP_EQ_OQ));
        __m256 best = _mm256_mul_ps(scale, sumlx);
        for (int is = -9; is <= 9; is++) {
            if (is == 0) continue;
            const float c = (float)nmax + 0.1f * (float)is;
            iscale = _mm256_div_ps(_mm256_set1_ps(-c), max);
            sumlx = suml2 = zero;
            for (int i = 0; i < 16; i++) {
                const __m256i l = _mm256_max_epi32(lo, _mm256_min_epi32(hi, nearest8(_mm256_mul_ps(iscale, xt[i]))));
                Lx[i] = l;
                const __m256 fl = _mm256_cvtepi32_ps(l);
                sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(wt[i], xt[i]), fl));
                suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(wt[i], fl), fl));
            }
            const __m256 take =
                _mm256_and_ps(_mm256_cmp_ps(suml2, zero, _CMP_GT_OQ),
                              _mm256_cmp_ps(_mm256_mul_ps(sumlx, sumlx), _mm256_mul_ps(best, suml2), _CMP_GT_OQ));
            if (_mm256_movemask_ps(take) == 0) continue;
            const __m256i takei = _mm256_castps_si256(take);
            for (int i = 0; i < 16; i++)
                Lt[i] = _mm256_blendv_epi8(Lt[i], Lx[i], takei);
            const __m256 ns = _mm256_div_ps(sumlx, suml2);
            scale = _mm256_blendv_ps(scale, ns, take);
            best = _mm256_blendv_ps(best, _mm256_mul_ps(ns, sumlx), take);
        }
        scale = _mm256_blendv_ps(scale, zero, tiny);
        _mm256_storeu_ps(scales + 8 * half, scale);
        const int tm = _mm256_movemask_ps(tiny);
        int32_t lanes[8];
        for (int i = 0; i < 16; i++) {
            _mm256_storeu_si256((__m256i *)lanes, Lt[i]);
            for (int j = 0; j < 8; j++)
                L[128 * half + 16 * j + i] = (int8_t)(tm >> j & 1 ? 0 : nmax + lanes[j]);
        }
    }
}
#endif

static void encode_q6_k_impl(const float *restrict x, uint8_t *restrict out, int fast)
{
    int8_t L[QK_K];
    float scales[16];
    uint8_t *ql = out, *qh = out + 128;
    int8_t *sc = (int8_t *)(out + 192);
    float max_scale = 0, max_abs = 0;
#ifdef QID_GGUFK_X86
    if (fast) search_q6_avx2(x, L, scales);
#endif
    for (int j = 0; j < 16; j++) {
        if (!fast) scales[j] = search_qx(16, 32, x + 16 * j, L + 16 * j);
        const float a = fabsf(scales[j]);
        if (a > max_abs) {
            max_abs = a;
            max_scale = scales[j];
        }
    }
    if (max_abs < GROUP_MAX_EPS) {
        memset(out, 0, 210);
        return;
    }
    const float iscale = -128.f / max_scale;
    put_f16(out + 208, 1 / iscale);
    for (int j = 0; j < 16; j++)
        sc[j] = (int8_t)imin(127, nearest_int(iscale * scales[j]));
    const float dd = get_f16(out + 208);
    for (int j = 0; j < 16; j++) {
        const float d = dd * (float)sc[j];
        if (d == 0) continue;
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (int8_t)(imax(-32, imin(31, nearest_int(x[16 * j + i] / d))) + 32);
    }
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++) {
            const int a = L[j + l], b = L[j + l + 32], c = L[j + l + 64], e = L[j + l + 96];
            ql[j / 2 + l] = (uint8_t)((a & 0xF) | (c & 0xF) << 4);
            ql[j / 2 + l + 32] = (uint8_t)((b & 0xF) | (e & 0xF) << 4);
            qh[j / 4 + l] = (uint8_t)(a >> 4 | (b >> 4) << 2 | (c >> 4) << 4 | (e >> 4) << 6);
        }
}

static void encode_q6_k(const float *restrict x, uint8_t *restrict out) { encode_q6_k_impl(x, out, 0); }
static void encode_q6_k_fast(const float *restrict x, uint8_t *restrict out) { encode_q6_k_impl(x, out, 1); }

static void decode_q6_k(const uint8_t *restrict in, float *restrict y)
{
    const float d = get_f16(in + 208);
    const int8_t *sc = (const int8_t *)(in + 192);
    for (int e = 0; e < QK_K; e++) {
        const int h = e / 128, k = e % 128 / 32, l = e % 32;
        const uint8_t lo = in[h * 64 + l + (k & 1) * 32];
        const int q = ((lo >> (k & 2 ? 4 : 0)) & 0xF) | ((in[128 + h * 32 + l] >> (2 * k)) & 3) << 4;
        y[e] = d * (float)sc[e / 16] * (float)(q - 32);
    }
}

/* ---- IQ4_NL: d, qs[16] ------------------------------------------------- */

const int8_t qid_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* best_index_int8 over the table: the nearest entry, the upper one on a tie. */
static int iq4nl_index(float x)
{
    const int8_t *val = qid_iq4nl_values;
    if (x <= (float)val[0]) return 0;
    if (x >= (float)val[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        const int mav = (ml + mu) / 2;
        if (x < (float)val[mav])
            mu = mav;
        else
            ml = mav;
    }
    return x - (float)val[mu - 1] < (float)val[mu] - x ? mu - 1 : mu;
}

/* The scale of one block x[32] (quantize_row_iq4_nl_impl, one block per
 * super-block, no importance, ntry 7); 0 for a block below GROUP_MAX_EPS. */
static float iq4nl_scale(const float *restrict x, size_t n)
{
    float amax, w[QK_NL];
    const float max = signed_amax((int)n, x, &amax);
    if (amax < GROUP_MAX_EPS) return 0;
    for (size_t j = 0; j < n; j++)
        w[j] = x[j] * x[j];
    const float v0 = (float)qid_iq4nl_values[0];
    float d = -max / v0, id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (size_t j = 0; j < n; j++) {
        const float q = (float)qid_iq4nl_values[iq4nl_index(id * x[j])];
        sumqx += w[j] * q * x[j];
        sumq2 += w[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -7; itry <= 7; itry++) {
        id = (float)(itry + qid_iq4nl_values[0]) / max;
        sumqx = sumq2 = 0;
        for (size_t j = 0; j < n; j++) {
            const float q = (float)qid_iq4nl_values[iq4nl_index(id * x[j])];
            sumqx += w[j] * q * x[j];
            sumq2 += w[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

void qid_iq4nl_params(const qid_quant_spec *spec, const float *restrict x, size_t n, qid_quant_params *p)
{
    (void)spec;
    const float d = iq4nl_scale(x, n < QK_NL ? n : QK_NL);
    p->scale = f16_round(d);
    p->aux = d != 0 ? 1 / d : 0;
    p->min = p->min_q = 0;
}

int qid_iq4nl_code(const qid_quant_params *p, float x) { return iq4nl_index(p->aux * x); }

float qid_iq4nl_quantize_value(const qid_quant_spec *spec, const qid_quant_params *p, float x)
{
    (void)spec;
    return p->scale * (float)qid_iq4nl_values[qid_iq4nl_code(p, x)];
}

/* One IQ4_NL block x[32] with its searched scale d. */
static void encode_iq4_nl_d(const float *restrict x, float d, uint8_t *restrict out)
{
    const qid_quant_params p = {.scale = f16_round(d), .aux = d != 0 ? 1 / d : 0};
    put_f16(out, p.scale); /* f16 of an f16 value is itself */
    for (int j = 0; j < 16; j++)
        out[2 + j] = (uint8_t)(qid_iq4nl_code(&p, x[j]) | qid_iq4nl_code(&p, x[j + 16]) << 4);
}

static void encode_iq4_nl(const float *restrict x, uint8_t *restrict out)
{
    encode_iq4_nl_d(x, iq4nl_scale(x, QK_NL), out);
}

#ifdef QID_GGUFK_X86
/* iq4nl_index of 8 values: for v0 < x < v15 the count of table entries
 * <= x is the upper neighbour mu, then the nearer of mu - 1 and mu (the
 * upper on a tie, x - lo and hi - x rounded as the reference); x <= v0
 * gives 0, x >= v15 and NaN 15. Returns the table values. */
__attribute__((target("avx2"))) static inline __m256 iq4nl_value8(__m256 x, const float *table)
{
    __m256i cnt = _mm256_setzero_si256();
    for (int k = 1; k < 15; k++)
        cnt = _mm256_sub_epi32(cnt, _mm256_castps_si256(_mm256_cmp_ps(_mm256_set1_ps(table[k]), x, _CMP_LE_OQ)));
    const __m256i mu = _mm256_add_epi32(cnt, _mm256_set1_epi32(1)); /* 1..15 */
    const __m256 lo = _mm256_i32gather_ps(table, _mm256_sub_epi32(mu, _mm256_set1_epi32(1)), 4);
    const __m256 hi = _mm256_i32gather_ps(table, mu, 4);
    const __m256 down = _mm256_cmp_ps(_mm256_sub_ps(x, lo), _mm256_sub_ps(hi, x), _CMP_LT_OQ);
    __m256 v = _mm256_blendv_ps(hi, lo, down);
    v = _mm256_blendv_ps(v, _mm256_set1_ps(table[0]), _mm256_cmp_ps(x, _mm256_set1_ps(table[0]), _CMP_LE_OQ));
    const __m256 top =
        _mm256_or_ps(_mm256_cmp_ps(x, _mm256_set1_ps(table[15]), _CMP_GE_OQ), _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    return _mm256_blendv_ps(v, _mm256_set1_ps(table[15]), top);
}

/* iq4nl_scale of the 8 blocks of x[256], one block per lane in the
 * reference's order. */
__attribute__((target("avx2"))) static void iq4nl_scales8_avx2(const float *restrict x, float *restrict d8)
{
    float table[16];
    for (int k = 0; k < 16; k++)
        table[k] = (float)qid_iq4nl_values[k];
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), zero = _mm256_setzero_ps();
    const __m256i idx = _mm256_setr_epi32(0, 32, 64, 96, 128, 160, 192, 224);
    __m256 xt[32], wt[32], amax = zero, max = zero;
    for (int i = 0; i < 32; i++) {
        xt[i] = _mm256_i32gather_ps(x + i, idx, 4);
        wt[i] = _mm256_mul_ps(xt[i], xt[i]);
        const __m256 ax = _mm256_and_ps(xt[i], absmask), gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = _mm256_blendv_ps(amax, ax, gt);
        max = _mm256_blendv_ps(max, xt[i], gt);
    }
    const __m256 tiny = _mm256_cmp_ps(amax, _mm256_set1_ps(GROUP_MAX_EPS), _CMP_LT_OQ);
    const __m256 neg_max = _mm256_xor_ps(max, _mm256_set1_ps(-0.0f));
    __m256 id = _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_div_ps(neg_max, _mm256_set1_ps(table[0])));
    __m256 sumqx = zero, sumq2 = zero;
    for (int i = 0; i < 32; i++) {
        const __m256 q = iq4nl_value8(_mm256_mul_ps(id, xt[i]), table), wq = _mm256_mul_ps(wt[i], q);
        sumqx = _mm256_add_ps(sumqx, _mm256_mul_ps(wq, xt[i]));
        sumq2 = _mm256_add_ps(sumq2, _mm256_mul_ps(wq, q));
    }
    __m256 d = _mm256_blendv_ps(zero, _mm256_div_ps(sumqx, sumq2), _mm256_cmp_ps(sumq2, zero, _CMP_GT_OQ));
    __m256 best = _mm256_mul_ps(d, sumqx);
    for (int itry = -7; itry <= 7; itry++) {
        id = _mm256_div_ps(_mm256_set1_ps((float)(itry + qid_iq4nl_values[0])), max);
        sumqx = sumq2 = zero;
        for (int i = 0; i < 32; i++) {
            const __m256 q = iq4nl_value8(_mm256_mul_ps(id, xt[i]), table), wq = _mm256_mul_ps(wt[i], q);
            sumqx = _mm256_add_ps(sumqx, _mm256_mul_ps(wq, xt[i]));
            sumq2 = _mm256_add_ps(sumq2, _mm256_mul_ps(wq, q));
        }
        const __m256 take =
            _mm256_and_ps(_mm256_cmp_ps(sumq2, zero, _CMP_GT_OQ),
                          _mm256_cmp_ps(_mm256_mul_ps(sumqx, sumqx), _mm256_mul_ps(best, sumq2), _CMP_GT_OQ));
        const __m256 nd = _mm256_div_ps(sumqx, sumq2);
        d = _mm256_blendv_ps(d, nd, take);
        best = _mm256_blendv_ps(best, _mm256_mul_ps(nd, sumqx), take);
    }
    _mm256_storeu_ps(d8, _mm256_blendv_ps(d, zero, tiny));
}
#endif

static void decode_iq4_nl(const uint8_t *restrict in, float *restrict y)
{
    const float d = get_f16(in);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)qid_iq4nl_values[in[2 + j] & 0xF];
        y[j + 16] = d * (float)qid_iq4nl_values[in[2 + j] >> 4];
    }
}

/* ---- rows ---------------------------------------------------------------- */

typedef void (*block_enc_fn)(const float *restrict x, uint8_t *restrict out);
typedef void (*block_dec_fn)(const uint8_t *restrict in, float *restrict y);

static void block_fns(enum qid_qtype t, block_enc_fn *enc, block_dec_fn *dec, int fast)
{
    switch (t) {
    case QID_QTYPE_Q2_K: *enc = fast ? encode_q2_k_fast : encode_q2_k, *dec = decode_q2_k; break;
    case QID_QTYPE_Q3_K: *enc = encode_q3_k, *dec = decode_q3_k; break;
    case QID_QTYPE_Q5_K: *enc = fast ? encode_q5_k_fast : encode_q5_k, *dec = decode_q5_k; break;
    case QID_QTYPE_Q6_K: *enc = fast ? encode_q6_k_fast : encode_q6_k, *dec = decode_q6_k; break;
    case QID_QTYPE_IQ4_NL: *enc = encode_iq4_nl, *dec = decode_iq4_nl; break;
    default: *enc = fast ? encode_q4_k_fast : encode_q4_k, *dec = decode_q4_k; break; /* Q4_K, mixtures */
    }
}

/* The block of x[len] (len <= block), padded with zeros when short. */
static const float *padded(const float *x, size_t len, size_t block, float *buf)
{
    if (len == block) return x;
    memcpy(buf, x, len * sizeof *x);
    memset(buf + len, 0, (block - len) * sizeof *x);
    return buf;
}

void qid_gguf_k_encode(const qid_quant_spec *spec, const float *restrict x, size_t n, uint8_t *restrict out)
{
    block_enc_fn enc;
    block_dec_fn dec;
    block_fns(spec->type, &enc, &dec, 0);
    const size_t bytes = qid_quant_traits_of(spec->type)->block_bytes;
    float buf[QK_K];
    for (size_t i = 0; i < n; i += spec->block) {
        const size_t len = n - i < spec->block ? n - i : spec->block;
        enc(padded(x + i, len, spec->block, buf), out);
        out += bytes;
    }
}

void qid_gguf_k_decode(const qid_quant_spec *spec, const uint8_t *restrict in, size_t n, float *restrict y)
{
    block_enc_fn enc;
    block_dec_fn dec;
    block_fns(spec->type, &enc, &dec, 0);
    const size_t bytes = qid_quant_traits_of(spec->type)->block_bytes;
    float buf[QK_K];
    for (size_t i = 0; i < n; i += spec->block) {
        const size_t len = n - i < spec->block ? n - i : spec->block;
        dec(in, buf);
        memcpy(y + i, buf, len * sizeof *y);
        in += bytes;
    }
}

/* The fused kernel: each block encoded (reference or vector search) and decoded. */
static void quantize_rows(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n, int fast)
{
    block_enc_fn enc;
    block_dec_fn dec;
    block_fns(spec->type, &enc, &dec, fast);
    uint8_t blk[256];
    float buf[QK_K], out[QK_K];
    size_t i = 0;
#ifdef QID_GGUFK_X86
    if (fast && spec->type == QID_QTYPE_IQ4_NL) /* 8 blocks of 32 at a time */
        for (; i + QK_K <= n; i += QK_K) {
            float d8[8];
            iq4nl_scales8_avx2(x + i, d8);
            for (int b = 0; b < 8; b++) {
                encode_iq4_nl_d(x + i + QK_NL * b, d8[b], blk);
                decode_iq4_nl(blk, y + i + QK_NL * b);
            }
        }
#endif
    for (; i < n; i += spec->block) {
        const size_t len = n - i < spec->block ? n - i : spec->block;
        enc(padded(x + i, len, spec->block, buf), blk);
        dec(blk, out);
        memcpy(y + i, out, len * sizeof *y);
    }
}

void qid_gguf_k_quantize_ref(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n)
{
    quantize_rows(spec, x, y, n, 0);
}

/* The AVX2 searches (Q2_K, Q4_K, Q5_K, Q6_K, IQ4_NL and the mixtures; Q3_K
 * takes the reference). */
void qid_gguf_k_quantize_fast(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n)
{
    quantize_rows(spec, x, y, n, qid_quant_use_avx2());
}
