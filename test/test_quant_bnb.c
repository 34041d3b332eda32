/* test_quant_bnb.c - NF4 and FP4 as bitsandbytes (quant_bnb.c): the code
 * books against values derived here independently (NF4 from normal
 * quantiles as bitsandbytes' create_normal_map does, FP4 from its bit
 * layout), the decision trees' tie and threshold behaviour, block behaviour
 * (absmax per block, extremes, zero blocks), nearest-code selection checked
 * by brute force, the packed layout, and the AVX2 kernel against the scalar
 * reference on awkward lengths. */
#include "quant.h"
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qid_quant_spec spec_of(const char *name)
{
    qid_quant_spec s;
    qid_error err;
    if (qid_quant_parse(name, &s, &err)) bail("cannot parse %s: %s", name, err.msg);
    return s;
}

/* Standard normal quantile by Newton's method on erfc (double precision). */
static double normal_ppf(double p)
{
    double x = 0.0;
    for (int i = 0; i < 100; i++) {
        double cdf = 0.5 * erfc(-x / sqrt(2.0));
        double pdf = exp(-0.5 * x * x) / sqrt(2.0 * 3.141592653589793);
        double step = (cdf - p) / pdf;
        x -= step;
        if (fabs(step) < 1e-17) break;
    }
    return x;
}

/* torch.linspace(start, end, steps) in float32 (ATen's formula: the first
 * half counts up from start, the second half down from end). */
static float linspace_f32(float start, float end, int steps, int i)
{
    float step = (end - start) / (float)(steps - 1);
    if (i < steps / 2) return start + step * (float)i;
    return end - step * (float)(steps - 1 - i);
}

static void test_codebooks(void)
{
    /* bitsandbytes' create_normal_map(offset=0.9677083, use_extra_value=True)
     * for 4 bits: 8 positive quantiles of linspace(offset, 0.5, 9)[:-1], 7
     * negative of linspace(offset, 0.5, 8)[:-1], and 0; sorted, divided by
     * the largest (float32). */
    double v[16];
    int k = 0;
    for (int i = 0; i < 8; i++)
        v[k++] = normal_ppf((double)linspace_f32(0.9677083f, 0.5f, 9, i));
    for (int i = 0; i < 7; i++)
        v[k++] = -normal_ppf((double)linspace_f32(0.9677083f, 0.5f, 8, i));
    v[k++] = 0.0;
    for (int i = 0; i < 16; i++) /* insertion sort */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    double worst = 0.0;
    for (int i = 0; i < 16; i++) {
        float want = (float)v[i] / (float)v[15];
        worst = fmax(worst, fabs((double)want - qid_nf4_code[i]));
    }
    /* tolerance 1e-7 absolute (about one float ulp near 1): the quantiles
     * are computed by another method than scipy's */
    ok(worst <= 1e-7, "NF4 code book = normalized normal quantiles (max diff %.3g, tolerance 1e-7)", worst);

    /* FP4: bit 3 sign, bits 2-1 exponent e, bit 0 mantissa m; magnitude
     * (e == 0 ? m / 16 : (1 + m/2) * 2^(4 - e)), all over 12. */
    worst = 0.0;
    for (int c = 0; c < 16; c++) {
        int e = c >> 1 & 3, m = c & 1;
        double mag = e == 0 ? m / 16.0 : (1.0 + m / 2.0) * ldexp(1.0, 4 - e);
        double want = (c & 8 ? -mag : mag) / 12.0;
        worst = fmax(worst, fabs(want - qid_fp4_code[c]));
    }
    /* tolerance 1e-7 absolute: bitsandbytes writes 2/3 as 0.66666667f etc. */
    ok(worst <= 1e-7 && signbit(qid_fp4_code[8]) && !signbit(qid_fp4_code[0]),
       "FP4 code book = {0, 0.0625, 8, 12, 4, 6, 2, 3} / 12 with a sign bit (max diff %.3g, tolerance 1e-7)", worst);
}

static void test_trees(void)
{
    /* NF4: bitsandbytes' thresholds are the midpoints m of neighbouring
     * codes (float32 codes, midpoint in double), written as the shortest
     * decimal that reads back as m (Python's repr) and compiled as float
     * literals. When m is not a float it lies exactly halfway between two,
     * and the literal is whichever the decimal rounds to, so the float just
     * above m may still get the lower code. Rebuild each literal the same
     * way: a value equal to it takes the lower code, the next float up the
     * higher. */
    int bad = 0, exact = 0;
    for (int k = 0; k < 15; k++) {
        double m = ((double)qid_nf4_code[k] + qid_nf4_code[k + 1]) / 2.0;
        char dec[40];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(dec, sizeof dec, "%.*g", prec, m);
            if (strtod(dec, NULL) == m) break;
        }
        float t = strtof(dec, NULL);
        exact += (double)t == m;
        if (qid_nf4_encode1(t) != k || qid_nf4_encode1(nextafterf(t, 2.0f)) != k + 1 ||
            fabs((double)t - m) > 0.6 * (nextafterf(t, 2.0f) - t)) {
            bad++;
            diag("nf4 threshold %d (%s): codes %d / %d", k, dec, qid_nf4_encode1(t),
                 qid_nf4_encode1(nextafterf(t, 2.0f)));
        }
    }
    ok(bad == 0 && qid_nf4_encode1(-1.0f) == 0 && qid_nf4_encode1(1.0f) == 15 && qid_nf4_encode1(0.0f) == 7 &&
           qid_nf4_encode1(NAN) == 0,
       "NF4 tree: 15 thresholds = decimal midpoints as float (%d exact); on a threshold the lower code, one float "
       "above the higher; -1 -> 0, 0 -> 7, 1 -> 15, NaN -> 0",
       exact);

    /* FP4: magnitudes sorted with their codes; 1e-6 either side of each
     * midpoint gives the nearer code. */
    static const float mag[8] = {0.0f, 0.0625f / 12, 2.0f / 12, 3.0f / 12, 4.0f / 12, 6.0f / 12, 8.0f / 12, 1.0f};
    static const int code[8] = {0, 1, 6, 7, 4, 5, 2, 3};
    bad = 0;
    for (int k = 0; k < 7; k++) {
        double mid = ((double)mag[k] + mag[k + 1]) / 2.0;
        for (int sgn = 0; sgn < 2; sgn++) {
            float lo = (float)(sgn ? -(mid - 1e-6) : mid - 1e-6), hi = (float)(sgn ? -(mid + 1e-6) : mid + 1e-6);
            if (qid_fp4_encode1(lo) != (code[k] | sgn << 3) || qid_fp4_encode1(hi) != (code[k + 1] | sgn << 3)) {
                bad++;
                diag("fp4 boundary %d sign %d: %d %d", k, sgn, qid_fp4_encode1(lo), qid_fp4_encode1(hi));
            }
        }
    }
    ok(bad == 0, "FP4 tree: 1e-6 below/above each of the 7 midpoints, both signs, gives the nearer code");
    /* bitsandbytes' literal 0.583333f sits 3.3e-7 under 7/12, so 0.5833332
     * goes up to 8/12 though 6/12 is nearer; -0 has no sign; a small
     * negative value gets the signed zero code 8. */
    ok(qid_fp4_encode1(0.5833332f) == 0x2 && qid_fp4_encode1(0.583333f) == 0x5 && qid_fp4_encode1(-0.0f) == 0 &&
           qid_fp4_encode1(-0.001f) == 8 && qid_fp4_encode1(NAN) == 0 && qid_fp4_encode1(-1.0f) == 0xB,
       "FP4 tree quirks kept: 0.5833332 -> 8/12, -0 -> code 0, -0.001 -> code 8 (-0), NaN -> 0");
}

/* Nearest code by brute force in double, or -1 when x is within 1e-6 of a
 * midpoint (where the trees' float thresholds decide). */
static int nearest(const float *book, float x)
{
    int best = 0;
    double bd = fabs((double)x - book[0]);
    for (int c = 1; c < 16; c++) {
        double d = fabs((double)x - book[c]);
        if (d < bd - 1e-6) {
            bd = d;
            best = c;
        } else if (fabs(d - bd) <= 1e-6 && book[c] != book[best]) {
            return -1;
        }
    }
    return best;
}

static void test_blocks(void)
{
    qid_quant_spec nf4 = spec_of("nf4-b64"), fp4 = spec_of("fp4-b64");
    float x[128], y[128];
    /* absmax per block: block 0 spans +-10, block 1 +-0.01; the extremes of
     * each block come back exactly, block 1 is unaffected by block 0. */
    for (int i = 0; i < 128; i++)
        x[i] = (i < 64 ? 2.0f : 0.002f) * tap_gauss(); /* 5 sigma below the extremes */
    x[3] = 10.0f;
    x[70] = -0.01f;
    x[71] = 0.0f;
    qid_bnb_quantize_ref(&nf4, x, y, 128);
    double err1 = 0.0;
    for (int i = 64; i < 128; i++)
        err1 = fmax(err1, fabs((double)y[i] - x[i]));
    ok(y[3] == 10.0f && y[70] == -0.01f && y[71] == 0.0f && err1 <= 0.01 * 0.2,
       "nf4: absmax per block of 64; +absmax -> code 15, -absmax -> code 0, 0 -> code 7 exactly; block 1 error "
       "%.3g <= 0.2 absmax",
       err1);
    /* all-zero block: r = 1/0 = inf, 0 * inf = NaN: NF4 code 0 (-1.0 * 0 =
     * -0.0), FP4 code 0 (+0.0), as bitsandbytes. */
    float z[64] = {0}, yz[64];
    qid_bnb_quantize_fast(&nf4, z, yz, 64);
    int nf4_negzero = signbit(yz[0]) && yz[0] == 0.0f && signbit(yz[63]);
    qid_bnb_quantize_fast(&fp4, z, yz, 64);
    ok(nf4_negzero && !signbit(yz[0]) && yz[0] == 0.0f, "all-zero block: nf4 gives -0.0 (code 0), fp4 +0.0");

    /* brute-force nearest code on random blocks (block sizes 64 and 16) */
    const char *names[3] = {"nf4-b64", "fp4-b64", "nf4-b16"};
    for (int f = 0; f < 3; f++) {
        qid_quant_spec s = spec_of(names[f]);
        const float *book = s.type == QID_QTYPE_NF4 ? qid_nf4_code : qid_fp4_code;
        enum { N = 64 * 200 };
        static float w[N], q[N];
        for (int i = 0; i < N; i++)
            w[i] = tap_gauss() * ldexpf(1.0f, (int)(i / 64 % 9) - 4);
        qid_bnb_quantize_ref(&s, w, q, N);
        int bad = 0, skipped = 0;
        for (size_t b = 0; b < N; b += s.block) {
            float absmax = 0.0f;
            for (size_t j = 0; j < s.block; j++)
                absmax = fmaxf(absmax, fabsf(w[b + j]));
            float r = 1.0f / absmax;
            for (size_t j = 0; j < s.block; j++) {
                int c = nearest(book, w[b + j] * r);
                if (c < 0) {
                    skipped++;
                    continue;
                }
                float want = book[c] * absmax;
                if (want == 0.0f) want = q[b + j]; /* the sign of a zero is the tree's business */
                if (tap_f32_bits(want) != tap_f32_bits(q[b + j]) && bad++ == 0)
                    diag("%s [%zu]: got %a want %a (code %d)", names[f], b + j, (double)q[b + j], (double)want, c);
            }
        }
        ok(bad == 0,
           "%s: every value is the nearest code times its block's absmax (%d of %d near a midpoint "
           "skipped; exact)",
           names[f], skipped, N);
    }
}

static const char *formats[] = {"nf4-b64", "fp4-b64", "nf4-b7", "fp4-b16", "nf4-b1"};
#define N_FORMATS (sizeof formats / sizeof formats[0])
static const size_t lengths[] = {1,  2,  3,  5,  7,   8,   9,   15,  16,  17,  31,  32,
                                 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000};
#define N_LENGTHS (sizeof lengths / sizeof lengths[0])

static void test_fast_vs_ref(void)
{
    static float x[1000], yr[1000], yf[1000], yd[1000];
    static uint8_t packed[4 * 1000 + 1000];
    diag("vector path: %s", qid_quant_simd());
    for (size_t k = 0; k < N_FORMATS; k++) {
        qid_quant_spec s = spec_of(formats[k]);
        int bad = 0, rt_bad = 0;
        for (size_t li = 0; li < N_LENGTHS; li++)
            for (int rep = 0; rep < 3; rep++) {
                size_t n = lengths[li];
                for (size_t i = 0; i < n; i++) {
                    uint64_t r = tap_rand() % 20;
                    x[i] = r == 0 ? 0.0f : (r == 1 ? -0.0f : tap_gauss() * ldexpf(1.0f, (int)(tap_rand() % 60) - 30));
                    if (rep == 1 && i % 64 < 32) x[i] = 0.0f; /* zero blocks and half-zero blocks */
                    if (rep == 2 && r == 2) x[i] = 1e-40f;    /* float32 subnormals */
                }
                qid_bnb_quantize_ref(&s, x, yr, n);
                qid_bnb_quantize_fast(&s, x, yf, n);
                for (size_t i = 0; i < n; i++)
                    if (tap_f32_bits(yr[i]) != tap_f32_bits(yf[i]) && bad++ == 0)
                        diag("%s n=%zu [%zu]: ref %a fast %a", formats[k], n, i, (double)yr[i], (double)yf[i]);
                if (qid_quant_row_bytes(&s, n) > sizeof packed) bail("packed buffer too small");
                qid_bnb_encode(&s, x, n, packed);
                qid_bnb_decode(&s, packed, n, yd);
                for (size_t i = 0; i < n; i++)
                    if (tap_f32_bits(yr[i]) != tap_f32_bits(yd[i]) && rt_bad++ == 0)
                        diag("%s n=%zu [%zu]: decode %a fused %a", formats[k], n, i, (double)yd[i], (double)yr[i]);
            }
        ok(bad == 0, "%s: fast == ref bitwise on %zu lengths x 3 rows (zeros, zero blocks, subnormals)", formats[k],
           N_LENGTHS);
        ok(rt_bad == 0, "%s: decode(encode(x)) == fused bitwise", formats[k]);
    }
    /* packed layout: f32 absmax, then the first element in the high nibble */
    qid_quant_spec s = spec_of("nf4-b64");
    float x1[64] = {1.0f, -1.0f, 0.0f};
    uint8_t p[36];
    qid_bnb_encode(&s, x1, 64, p);
    ok(qid_quant_row_bytes(&s, 64) == 36 && p[0] == 0 && p[1] == 0 && p[2] == 0x80 && p[3] == 0x3f && p[4] == 0xF0 &&
           p[5] == 0x77,
       "nf4-b64 packing: absmax 1.0f little-endian, codes 15 0 | 7 7 with the first in the high nibble");
}

int main(void)
{
    plan(2 + 3 + 2 + 3 + 2 * N_FORMATS + 1);
    test_codebooks();
    test_trees();
    test_blocks();
    test_fast_vs_ref();
    return 0;
}
