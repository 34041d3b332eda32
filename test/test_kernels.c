/* test_kernels.c - the forward-pass kernels (kernels.h): each vectorized
 * form against its scalar reference on awkward lengths, with the tolerance
 * stated beside each comparison; the references against values computed by
 * hand or by libm in float64; the rotary tables against transformers'
 * float32 recipe. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5io.h"
#include "kernels.h"
#include "tap.h"

static const size_t lengths[] = {1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 64, 100, 257, 1000};
#define N_LEN (sizeof lengths / sizeof lengths[0])
#define MAXN  4096

/* Uniform in [lo, hi). */
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)((tap_rand() >> 40) * 0x1p-24); }

static void fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = uniform(lo, hi);
}

/* max over i of |a - b| / (abs + rel * |b|); <= 1 means within tolerance. */
static double tol_ratio(const float *a, const float *b, size_t n, double abs_tol, double rel)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)a[i] - b[i]) / (abs_tol + rel * fabs((double)b[i]));
        if (!(r <= worst)) worst = r; /* NaN makes it fail */
    }
    return worst;
}

static float xa[MAXN * 8], xb[MAXN * 8], w[MAXN], bias[MAXN], y[MAXN * 8], yr[MAXN * 8];

/* ---- elementwise ----------------------------------------------------------- */

typedef void (*inplace_fn)(float *x, size_t n);

static void check_inplace(const char *name, inplace_fn fast, inplace_fn ref, float lo, float hi, double abs_tol,
                          double rel)
{
    for (size_t k = 0; k < N_LEN; k++) {
        size_t n = lengths[k];
        fill(xa, n, lo, hi);
        memcpy(y, xa, n * sizeof *y);
        memcpy(yr, xa, n * sizeof *y);
        fast(y, n);
        ref(yr, n);
        double r = tol_ratio(y, yr, n, abs_tol, rel);
        ok(r <= 1.0, "%s: avx2 vs ref, n=%zu, within %.0e + %.0e*|ref| (worst %.2f of tolerance)", name, n, abs_tol,
           rel, r);
    }
}

static void check_exp(void)
{
    for (size_t k = 0; k < N_LEN; k++) {
        size_t n = lengths[k];
        fill(xa, n, -90.0f, 89.0f);
        qid_k_exp_avx2(y, xa, n);
        qid_k_exp_ref(yr, xa, n);
        /* 2 ulp relative, or both below 2^-126 (flushed to 0 by the fast form) */
        int good = 1;
        for (size_t i = 0; i < n; i++) {
            double ref = exp((double)xa[i]);
            if (ref < 0x1p-126)
                good &= y[i] == 0.0f || fabs(y[i] - ref) < 0x1p-126;
            else if (ref > 3.4028234e38)
                good &= isinf(y[i]);
            else
                good &= fabs(y[i] - ref) <= 2.5 * 0x1p-23 * ref;
        }
        ok(good, "exp: avx2 within 2.5 ulp of exp() in float64, n=%zu, x in [-90, 89)", n);
    }
    /* a dense grid over the useful range */
    double worst = 0.0;
    for (int i = 0; i < 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f, e;
        qid_k_exp_avx2(&e, &x, 1);
        double ref = exp((double)x), u = fabs(e - ref) / (ref * 0x1p-23);
        worst = u > worst ? u : worst;
    }
    ok(worst < 2.5, "exp: worst error on a grid of 200000 points in [-87, 88] is %.2f ulp (< 2.5)", worst);
    float specials[4] = {-INFINITY, INFINITY, NAN, 0.0f}, out[4];
    qid_k_exp_avx2(out, specials, 4);
    ok(out[0] == 0.0f && isinf(out[1]) && isnan(out[2]) && out[3] == 1.0f,
       "exp: -inf -> 0, inf -> inf, NaN -> NaN, 0 -> 1");
}

static void check_swiglu(void)
{
    for (size_t k = 0; k < N_LEN; k++) {
        size_t n = lengths[k];
        fill(xa, n, -12.0f, 12.0f);
        fill(xb, n, -3.0f, 3.0f);
        qid_k_swiglu_avx2(y, xa, xb, n);
        qid_k_swiglu_ref(yr, xa, xb, n);
        double r = tol_ratio(y, yr, n, 1e-6, 1e-6);
        ok(r <= 1.0, "swiglu: avx2 vs ref, n=%zu, within 1e-6 + 1e-6*|ref| (worst %.2f)", n, r);
    }
    /* in place: out = gate */
    fill(xa, 33, -5.0f, 5.0f);
    fill(xb, 33, -2.0f, 2.0f);
    memcpy(y, xa, 33 * sizeof *y);
    qid_k_swiglu_ref(yr, xa, xb, 33);
    qid_k_swiglu(y, y, xb, 33);
    ok(tol_ratio(y, yr, 33, 1e-6, 1e-6) <= 1.0, "swiglu: out may be the gate array");
}

/* ---- normalization ------------------------------------------------------ */

static void check_norms(void)
{
    const size_t rows = 3;
    for (size_t k = 0; k < N_LEN; k++) {
        size_t C = lengths[k];
        fill(xa, rows * C, -4.0f, 6.0f);
        fill(w, C, 0.5f, 1.5f);
        fill(bias, C, -0.2f, 0.2f);
        qid_k_layernorm_avx2(y, xa, w, bias, rows, C, 1e-5f);
        qid_k_layernorm_ref(yr, xa, w, bias, rows, C, 1e-5f);
        double r = tol_ratio(y, yr, rows * C, 1e-5, 1e-5);
        ok(r <= 1.0, "layernorm: avx2 vs ref, 3 rows of C=%zu, within 1e-5 + 1e-5*|ref| (worst %.2f)", C, r);
        qid_k_rmsnorm_avx2(y, xa, w, rows, C, 1e-6f);
        qid_k_rmsnorm_ref(yr, xa, w, rows, C, 1e-6f);
        r = tol_ratio(y, yr, rows * C, 1e-5, 1e-5);
        ok(r <= 1.0, "rmsnorm: avx2 vs ref, 3 rows of C=%zu, within 1e-5 + 1e-5*|ref| (worst %.2f)", C, r);
    }
    /* by hand: x = (1, 2, 3, 4), mean 2.5, biased var 1.25 */
    float x4[4] = {1, 2, 3, 4}, w4[4] = {1, 1, 2, 1}, b4[4] = {0, 0, 0, 1}, o4[4];
    qid_k_layernorm(o4, x4, w4, b4, 1, 4, 0.0f);
    double s = 1.0 / sqrt(1.25);
    ok(fabs(o4[0] + 1.5 * s) < 1e-6 && fabs(o4[2] - 1.0 * s) < 1e-6 && fabs(o4[3] - (1.5 * s + 1)) < 1e-6,
       "layernorm of (1,2,3,4): (-1.5, -0.5, 0.5*2, 1.5+1) / sqrt(1.25), within 1e-6");
    qid_k_rmsnorm(o4, x4, w4, 1, 4, 0.0f);
    s = 1.0 / sqrt(7.5);
    ok(fabs(o4[0] - s) < 1e-6 && fabs(o4[2] - 6 * s) < 1e-6, "rmsnorm of (1,2,3,4): x * w / sqrt(7.5), within 1e-6");
    memcpy(y, x4, sizeof x4);
    qid_k_layernorm(y, y, w4, b4, 1, 4, 0.0f);
    qid_k_layernorm_ref(o4, x4, w4, b4, 1, 4, 0.0f);
    ok(tol_ratio(y, o4, 4, 1e-6, 0) <= 1.0, "layernorm works in place");
}

/* ---- rotary -------------------------------------------------------------- */

static void check_rope(void)
{
    static float ct[300 * 64], st[300 * 64];
    /* the float32 recipe of transformers, for rotary_dim 16, theta 10000 */
    qid_k_rope_table(ct, st, 300, 16, 10000.0);
    float inv3 = 1.0f / (float)pow(10000.0, (double)(6.0f / 16.0f));
    float a = 299.0f * inv3;
    ok(ct[299 * 8 + 3] == (float)cos((double)a) && st[299 * 8 + 3] == (float)sin((double)a),
       "rope table: position 299, pair 3 is cos/sin of the float32 angle 299 * inv_freq");
    ok(ct[0] == 1.0f && st[0] == 0.0f && ct[8] == (float)cos(1.0) && st[8] == (float)sin(1.0),
       "rope table: position 0 is (1, 0); position 1, pair 0 is (cos 1, sin 1)");

    /* fast vs ref on strided heads: 3 heads of head_dim hd, rotating rd dims */
    const size_t hds[] = {2, 8, 16, 32, 34, 64, 128};
    for (size_t k = 0; k < sizeof hds / sizeof hds[0]; k++) {
        size_t hd = hds[k], rd = hd == 34 ? 18 : (hd >= 16 ? hd / 4 * 2 : hd), T = 37, H = 3, ld = 3 * hd + 5;
        qid_k_rope_table(ct, st, T, rd, 10000.0);
        fill(xa, T * ld, -2.0f, 2.0f);
        memcpy(y, xa, T * ld * sizeof *y);
        memcpy(yr, xa, T * ld * sizeof *y);
        qid_k_rope_avx2(y, T, ld, H, hd, rd, ct, st);
        qid_k_rope_ref(yr, T, ld, H, hd, rd, ct, st);
        double r = tol_ratio(y, yr, T * ld, 2e-6, 2e-6);
        ok(r <= 1.0, "rope: avx2 vs ref, head_dim %zu, rotary_dim %zu, 37 rows, within 2e-6 + 2e-6*|ref| (worst %.2f)",
           hd, rd, r);
        int untouched = 1;
        for (size_t t = 0; t < T; t++)
            for (size_t j = 0; j < ld; j++) {
                size_t in_head = j % hd;
                if (j >= H * hd || in_head >= rd) untouched &= y[t * ld + j] == xa[t * ld + j];
            }
        ok(untouched, "rope: dimensions past rotary_dim and the row padding are untouched (head_dim %zu)", hd);
    }
    /* by hand: a 90-degree rotation of the pair (1, 2) with cos 0, sin 1 -> (-2, 1) */
    float x2[2] = {1.0f, 2.0f}, c1 = 0.0f, s1 = 1.0f;
    qid_k_rope(x2, 1, 2, 1, 2, 2, &c1, &s1);
    ok(x2[0] == -2.0f && x2[1] == 1.0f, "rope: rotate_half of (1, 2) at 90 degrees is (-2, 1)");
}

/* ---- softmax, attention --------------------------------------------------- */

static void check_attention(void)
{
    static float q[200 * 128], kk[200 * 128], v[200 * 128], o[200 * 128], orf[200 * 128], scratch[128 * 200];
    const size_t Ts[] = {1, 2, 3, 5, 17, 127, 128, 129, 130, 200};
    const size_t hds[] = {1, 8, 16, 64, 80};
    for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++)
        for (size_t b = 0; b < sizeof hds / sizeof hds[0]; b++) {
            size_t T = Ts[a], hd = hds[b], ld = hd + 3;
            if (qid_k_attention_scratch(T) > sizeof scratch / sizeof *scratch) bail("attention scratch too small");
            fill(q, T * ld, -1.5f, 1.5f);
            fill(kk, T * ld, -1.5f, 1.5f);
            fill(v, T * ld, -2.0f, 2.0f);
            float scale = 1.0f / sqrtf((float)hd);
            memset(orf, 0, sizeof orf);
            qid_k_attention_ref(orf, ld, q, ld, kk, ld, v, ld, T, hd, scale, scratch);
            memset(o, 0, sizeof o);
            qid_k_attention(o, ld, q, ld, kk, ld, v, ld, T, hd, scale, scratch);
            double r = tol_ratio(o, orf, T * ld, 2e-5, 2e-5);
            ok(r <= 1.0, "attention: sgemm blocks vs ref, T=%zu, head_dim %zu, within 2e-5 + 2e-5*|ref| (worst %.2f)",
               T, hd, r);
        }
    /* by hand: T=2, hd=1, q=(1,1), k=(0, ln 3), v=(10, 20), scale 1:
     * row 0 sees only key 0 -> 10; row 1: weights (1, 3)/4 -> 17.5 */
    float q2[2] = {1, 1}, k2[2] = {0, (float)log(3.0)}, v2[2] = {10, 20}, o2[2];
    qid_k_attention(o2, 1, q2, 1, k2, 1, v2, 1, 2, 1, 1.0f, scratch);
    ok(fabs(o2[0] - 10.0) < 1e-5 && fabs(o2[1] - 17.5) < 1e-5, "attention by hand: (10, 17.5), got (%g, %g)", o2[0],
       o2[1]);
}

/* ALiBi: the bias add on awkward lengths, attention with a slope against its
 * reference, a case by hand, and the slopes against transformers'. */
static void check_alibi(void)
{
    for (size_t k = 0; k < N_LEN; k++) {
        size_t n = lengths[k];
        fill(xa, n, -5.0f, 5.0f);
        memcpy(y, xa, n * sizeof *y);
        memcpy(yr, xa, n * sizeof *y);
        float slope = -0.0078125f * (float)(k + 1) - 0.3f;
        qid_k_alibi_add_avx2(y, n, slope);
        qid_k_alibi_add_ref(yr, n, slope);
        double r = tol_ratio(y, yr, n, 1e-6, 1e-6);
        ok(r <= 1.0, "alibi_add: avx2 vs ref, n=%zu, within 1e-6 + 1e-6*|ref| (worst %.2f of tolerance)", n, r);
    }
    static float q[200 * 67], kk[200 * 67], v[200 * 67], o[200 * 67], orf[200 * 67], scratch[128 * 200];
    const size_t Ts[] = {1, 7, 33, 129, 200};
    const float slopes[] = {-0.5f, -0.0625f, -0.7071068f, -0.00390625f, -0.25f};
    for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++) {
        size_t T = Ts[a], hd = 64, ld = hd + 3;
        fill(q, T * ld, -1.5f, 1.5f);
        fill(kk, T * ld, -1.5f, 1.5f);
        fill(v, T * ld, -2.0f, 2.0f);
        memset(orf, 0, sizeof orf);
        memset(o, 0, sizeof o);
        qid_k_attention_alibi_ref(orf, ld, q, ld, kk, ld, v, ld, T, hd, 0.125f, slopes[a], scratch);
        qid_k_attention_alibi(o, ld, q, ld, kk, ld, v, ld, T, hd, 0.125f, slopes[a], scratch);
        double r = tol_ratio(o, orf, T * ld, 2e-5, 2e-5);
        ok(r <= 1.0, "attention with ALiBi slope %g: fast vs ref, T=%zu, within 2e-5 + 2e-5*|ref| (worst %.2f)",
           (double)slopes[a], T, r);
    }
    /* by hand: T=2, hd=1, q.k = 0, slope ln 3: row 1 weights (1, 3)/4 over v = (10, 20) -> 17.5 */
    float q2[2] = {1, 1}, k2[2] = {0, 0}, v2[2] = {10, 20}, o2[2];
    qid_k_attention_alibi(o2, 1, q2, 1, k2, 1, v2, 1, 2, 1, 1.0f, (float)log(3.0), scratch);
    ok(fabs(o2[0] - 10.0) < 1e-5 && fabs(o2[1] - 17.5) < 1e-5, "attention with ALiBi by hand: (10, 17.5), got (%g, %g)",
       o2[0], o2[1]);
    /* slopes: test/fixtures/hf/alibi_slopes.txt has transformers' _get_alibi_slopes for 1..48 heads,
     * one line per head count: n, then n float32 values as hex bits */
    size_t len = 0;
    char *text = tap_read_file("test/fixtures/hf/alibi_slopes.txt", &len);
    size_t counts = 0, values = 0, differ = 0, far = 0, differ_small = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *p = line, *end;
        size_t n = strtoul(p, &end, 10);
        float s[64];
        if (n == 0 || n > 64) bail("alibi_slopes.txt: bad head count in '%s'", line);
        qid_k_alibi_slopes(s, n);
        for (size_t h = 0; h < n; h++) {
            p = end;
            uint32_t bits = (uint32_t)strtoul(p, &end, 16), got;
            if (end == p) bail("alibi_slopes.txt: short line for %zu heads", n);
            memcpy(&got, &s[h], 4);
            differ += got != bits;
            differ_small += got != bits && n < 32;
            far += got > bits + 1 || bits > got + 1;
            values++;
        }
        counts++;
    }
    free(text);
    /* torch.pow in float32 is not correctly rounded: 2^(-1/4)^15 (32 heads and more) comes out 1 ulp
     * below the correctly rounded power qid takes; every other slope is the same bits */
    ok(counts == 48 && far == 0 && differ_small == 0 && differ <= 17,
       "alibi slopes equal transformers' for 1..48 heads: bit for bit up to 31 heads, within 1 ulp beyond (%zu of "
       "%zu differ by 1 ulp)",
       differ, values);
}

/* ReLU: the fast form is bit-identical, NaN kept. */
static void check_relu(void)
{
    for (size_t k = 0; k < N_LEN; k++) {
        size_t n = lengths[k];
        fill(xa, n, -3.0f, 3.0f);
        xa[n / 2] = NAN;
        memcpy(y, xa, n * sizeof *y);
        memcpy(yr, xa, n * sizeof *y);
        qid_k_relu_avx2(y, n);
        qid_k_relu_ref(yr, n);
        int same = memcmp(y, yr, n * sizeof *y) == 0 && isnan(y[n / 2]);
        for (size_t i = 0; i < n; i++)
            same &= i == n / 2 || (yr[i] >= 0.0f && (yr[i] == xa[i] || xa[i] < 0.0f));
        ok(same, "relu: avx2 bit-identical to ref, n=%zu, NaN kept", n);
    }
}

/* ---- log-softmax, cross-entropy, KL -------------------------------------- */

static void check_logits(void)
{
    const size_t Vs[] = {1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 96, 1000, 50304};
    static float p[50304], qq[50304], o[50304], orf[50304];
    for (size_t k = 0; k < sizeof Vs / sizeof Vs[0]; k++) {
        size_t V = Vs[k];
        fill(p, V, -8.0f, 12.0f);
        for (size_t i = 0; i < V; i++)
            qq[i] = p[i] + uniform(-0.3f, 0.3f);
        double a = qid_k_logsumexp_avx2(p, V), b = qid_k_logsumexp_ref(p, V);
        ok(fabs(a - b) <= 1e-6 * (1 + fabs(b)), "logsumexp: avx2 %.9f vs ref %.9f, V=%zu, within 1e-6*(1+|ref|)", a, b,
           V);
        uint32_t t = (uint32_t)(tap_rand() % V);
        a = qid_k_cross_entropy(p, V, t);
        b = qid_k_cross_entropy_ref(p, V, t);
        ok(fabs(a - b) <= 1e-6 * (1 + fabs(b)), "cross-entropy: %.9f vs ref %.9f, V=%zu", a, b, V);
        double lp = qid_k_logsumexp(p, V), lq = qid_k_logsumexp(qq, V);
        a = qid_k_kl_avx2(p, qq, V, lp, lq);
        b = qid_k_kl_ref(p, qq, V, lp, lq);
        ok(fabs(a - b) <= 1e-6 * (1 + b) && b >= 0, "kl: avx2 %.3e vs ref %.3e, V=%zu, within 1e-6*(1+kl)", a, b, V);
        if (V <= 1000) {
            qid_k_log_softmax(o, p, V);
            qid_k_log_softmax_ref(orf, p, V);
            ok(tol_ratio(o, orf, V, 1e-6, 1e-6) <= 1.0, "log-softmax: fast vs ref, V=%zu", V);
            memcpy(o, p, V * sizeof *o);
            memcpy(orf, p, V * sizeof *o);
            qid_k_softmax_avx2(o, V);
            qid_k_softmax_ref(orf, V);
            ok(tol_ratio(o, orf, V, 1e-7, 4e-6) <= 1.0, "softmax: avx2 vs ref, V=%zu, within 1e-7 + 4e-6*ref", V);
        }
    }
    /* by hand: logits (0, ln 2, ln 5): sum exp = 8 */
    float l3[3] = {0.0f, (float)log(2.0), (float)log(5.0)};
    ok(fabs(qid_k_logsumexp(l3, 3) - log(8.0)) < 1e-6, "logsumexp(0, ln 2, ln 5) = ln 8");
    ok(fabs(qid_k_cross_entropy(l3, 3, 1) - log(4.0)) < 1e-6, "cross-entropy of target 1 = -ln(2/8) = ln 4");
    /* KL((1/2,1/2) || (1/4,3/4)) = 0.5 ln 2 + 0.5 ln(2/3) */
    float pp[2] = {0.0f, 0.0f}, q2[2] = {0.0f, (float)log(3.0)};
    double kl = qid_k_kl(pp, q2, 2, qid_k_logsumexp(pp, 2), qid_k_logsumexp(q2, 2));
    ok(fabs(kl - (0.5 * log(2.0) + 0.5 * log(2.0 / 3.0))) < 1e-7, "KL((1/2,1/2)||(1/4,3/4)) by hand: %.9f", kl);
    ok(qid_k_kl(p, p, 1000, qid_k_logsumexp(p, 1000), qid_k_logsumexp(p, 1000)) < 1e-7 &&
           qid_k_kl(p, p, 1000, qid_k_logsumexp(p, 1000), qid_k_logsumexp(p, 1000)) > -1e-7,
       "KL(P||P) is 0 within 1e-7");
}

/* ---- 16-bit widening ---------------------------------------------------- */

static void check_widen(void)
{
    static uint16_t all[65536 + 7];
    static float a[65536 + 7], r[65536 + 7], h[65536 + 7];
    static float inplace[65536 + 7];
    for (size_t i = 0; i < 65536 + 7; i++)
        all[i] = (uint16_t)(i * 40503u); /* every value, then 7 more */
    const size_t n = 65536 + 7;
    qid_k_f16_to_f32_avx2(a, all, n);
    qid_k_f16_to_f32_ref(r, all, n);
    qid_f16_to_f32(all, h, n);
    int same = memcmp(a, r, sizeof a) == 0;
    for (size_t i = 0; i < n; i++)
        same &= isnan(h[i]) ? isnan(r[i]) : memcmp(&h[i], &r[i], sizeof *r) == 0;
    ok(same, "float16 -> float32: avx2 = ref (bits) = h5io's converter on all 65536 values (NaN for NaN)");
    qid_k_bf16_to_f32_avx2(a, all, n);
    qid_k_bf16_to_f32_ref(r, all, n);
    qid_bf16_to_f32(all, h, n);
    ok(memcmp(a, r, sizeof a) == 0 && memcmp(r, h, sizeof r) == 0,
       "bfloat16 -> float32: avx2 = ref = h5io's converter on all 65536 values");
    for (size_t k = 0; k < N_LEN; k++) {
        size_t m = lengths[k];
        memcpy((uint16_t *)(void *)inplace + m, all + 1000, m * sizeof(uint16_t));
        qid_k_f16_to_f32(inplace, (uint16_t *)(void *)inplace + m, m);
        qid_k_f16_to_f32_ref(r, all + 1000, m);
        if (memcmp(inplace, r, m * sizeof *r) != 0) {
            ok(0, "in-place widening, n=%zu", m);
            return;
        }
    }
    ok(1, "float16 widening in place (input in the upper half of the output) on awkward lengths");
}

static void check_nonfinite(void)
{
    int good = 1;
    for (size_t k = 0; k < N_LEN; k++) {
        size_t n = lengths[k];
        fill(xa, n, -1.0f, 1.0f);
        good &= qid_k_find_nonfinite_avx2(xa, n) == n;
        for (size_t pos = 0; pos < n; pos += (n / 5 + 1)) {
            float keep = xa[pos];
            xa[pos] = (pos & 1) ? INFINITY : NAN;
            good &= qid_k_find_nonfinite_avx2(xa, n) == pos && qid_k_find_nonfinite_ref(xa, n) == pos;
            xa[pos] = keep;
        }
    }
    ok(good, "find_nonfinite: avx2 and ref find the first NaN/Inf (or none) on awkward lengths");
}

static void gelu_hand(void)
{
    float g[4] = {1.0f, -1.0f, 0.0f, 3.0f};
    qid_k_gelu(g, 4);
    ok(fabs(g[0] - 0.8413447460685429) < 1e-6 && fabs(g[1] + 0.15865525393145707) < 1e-6 && g[2] == 0.0f &&
           fabs(g[3] - 2.995950177) < 2e-6,
       "gelu(1, -1, 0, 3) = (0.841345, -0.158655, 0, 2.995950)");
    float s[2] = {1.0f, -2.0f};
    qid_k_silu(s, 2);
    ok(fabs(s[0] - 0.7310585786300049) < 1e-6 && fabs(s[1] + 0.23840584404423515) < 1e-6,
       "silu(1, -2) = (0.731059, -0.238406)");
    /* torch.nn.functional.gelu(approximate="tanh") in float64 */
    float t[4] = {1.0f, -1.0f, 0.0f, 3.0f};
    qid_k_gelu_tanh(t, 4);
    ok(fabs(t[0] - 0.8411919906082768) < 1e-6 && fabs(t[1] + 0.15880800939172324) < 1e-6 && t[2] == 0.0f &&
           fabs(t[3] - 2.996362607918227) < 2e-6,
       "gelu_tanh(1, -1, 0, 3) = (0.841192, -0.158808, 0, 2.996363) as torch");
}

int main(void)
{
    plan(4 * N_LEN             /* gelu, gelu_tanh, silu, softmax */
         + N_LEN               /* relu */
         + N_LEN + 5 + 1 + 1   /* alibi add, attention with alibi, by hand, slopes */
         + N_LEN + 2           /* exp */
         + N_LEN + 1           /* swiglu */
         + 2 * N_LEN + 3       /* layernorm, rmsnorm */
         + 2 + 7 * 2 + 1       /* rope */
         + 10 * 5 + 1          /* attention */
         + 14 * 3 + 13 * 2 + 4 /* logsumexp, cross-entropy, KL, log-softmax, softmax */
         + 3                   /* gelu, silu, gelu_tanh by hand */
         + 3 + 1);             /* 16-bit widening, non-finite search */
    diag("kernels: %s", qid_k_impl_name());
    if (!qid_k_have_avx2()) diag("no AVX2 on this CPU: the _avx2 forms are the references");
    check_inplace("gelu", qid_k_gelu_avx2, qid_k_gelu_ref, -10.0f, 10.0f, 1e-6, 1e-6);
    check_inplace("gelu_tanh", qid_k_gelu_tanh_avx2, qid_k_gelu_tanh_ref, -10.0f, 10.0f, 1e-6, 1e-6);
    check_relu();
    check_alibi();
    check_inplace("silu", qid_k_silu_avx2, qid_k_silu_ref, -30.0f, 30.0f, 1e-6, 1e-6);
    check_inplace("softmax", qid_k_softmax_avx2, qid_k_softmax_ref, -20.0f, 20.0f, 1e-7, 4e-6);
    check_exp();
    check_swiglu();
    check_norms();
    check_rope();
    check_attention();
    check_logits();
    gelu_hand();
    check_widen();
    check_nonfinite();
    return 0;
}
