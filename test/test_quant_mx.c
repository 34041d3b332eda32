/* test_quant_mx.c - OCP MX v1.0 quantizers (quant_mx.c): element tables,
 * hand-worked blocks (ties to even, saturation, subnormals, zero and NaN/Inf
 * blocks, MXINT8's -2), the committed bit-exact vectors of
 * tools/make_mx_vectors.py for every element type, the packed round trip,
 * and the AVX2 kernel against the scalar reference on awkward lengths.
 *
 * Every float comparison here is bit-exact (tolerance 0) unless stated. */
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

/* Index of the first element whose bits differ, or n. */
static size_t first_diff(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tap_f32_bits(a[i]) != tap_f32_bits(b[i])) return i;
    return n;
}

/* ---- element tables ------------------------------------------------------- */

static void test_elements(void)
{
    static const struct {
        const char *fmt;
        float max_norm, min_sub, min_norm;
        int emax;
    } t[] = {
        {"mxfp4", 6.0f, 0.5f, 1.0f, 2},
        {"mxfp6-e3m2", 28.0f, 0.0625f, 0.25f, 4},
        {"mxfp6-e2m3", 7.5f, 0.125f, 1.0f, 2},
        {"mxfp8-e4m3", 448.0f, 0x1p-9f, 0x1p-6f, 8},
        {"mxfp8-e5m2", 57344.0f, 0x1p-16f, 0x1p-14f, 15},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        qid_quant_spec s = spec_of(t[k].fmt);
        const qid_mx_elem *e = qid_mx_elem_of(&s);
        int bits = s.bits, roundtrip = 1;
        float largest = 0.0f;
        for (uint32_t c = 0; c < (1u << bits); c++) {
            float v = qid_mx_elem_decode(e, bits, c);
            if (!isfinite(v)) continue;
            if (fabsf(v) > largest) largest = fabsf(v);
            if (qid_mx_elem_encode(e, bits, v) != c || tap_f32_bits(qid_mx_elem_round(e, bits, v)) != tap_f32_bits(v)) {
                roundtrip = 0;
                diag("%s code 0x%02x -> %g -> 0x%02x", t[k].fmt, c, (double)v, qid_mx_elem_encode(e, bits, v));
            }
        }
        ok(roundtrip && largest == t[k].max_norm && e->max_norm == t[k].max_norm && e->emax == t[k].emax &&
               qid_mx_elem_decode(e, bits, 1) == t[k].min_sub &&
               qid_mx_elem_decode(e, bits, 1u << e->mbits) == t[k].min_norm,
           "%s: every finite code decodes and encodes back; max %g, min subnormal %g, min normal %g, emax %d", t[k].fmt,
           (double)t[k].max_norm, (double)t[k].min_sub, (double)t[k].min_norm, t[k].emax);
    }
    qid_quant_spec s4 = spec_of("mxfp8-e4m3"), s5 = spec_of("mxfp8-e5m2");
    const qid_mx_elem *e4 = qid_mx_elem_of(&s4), *e5 = qid_mx_elem_of(&s5);
    ok(isnan(qid_mx_elem_decode(e4, 8, 0x7F)) && isnan(qid_mx_elem_decode(e4, 8, 0xFF)) &&
           qid_mx_elem_decode(e4, 8, 0x7E) == 448.0f && qid_mx_elem_decode(e4, 8, 0x78) == 256.0f,
       "e4m3: S.1111.111 is NaN, S.1111.110 = 448, 1111.000 = 256 is a normal");
    ok(qid_mx_elem_decode(e5, 8, 0x7C) == INFINITY && qid_mx_elem_decode(e5, 8, 0xFC) == -INFINITY &&
           isnan(qid_mx_elem_decode(e5, 8, 0x7D)) && qid_mx_elem_decode(e5, 8, 0x7B) == 57344.0f,
       "e5m2: 11111.00 is Inf, 11111.01 NaN, 11110.11 = 57344");
    qid_quant_spec si = spec_of("mxint8");
    const qid_mx_elem *ei = qid_mx_elem_of(&si);
    ok(qid_mx_elem_decode(ei, 8, 0x80) == -2.0f && qid_mx_elem_decode(ei, 8, 0x7F) == 127.0f / 64 &&
           qid_mx_elem_decode(ei, 8, 0x01) == 1.0f / 64 && qid_mx_elem_encode(ei, 8, -2.0f) == 0x80 &&
           qid_mx_elem_encode(ei, 8, -1.0f / 64) == 0xFF,
       "mxint8 element: two's complement times 2^-6, -2 .. 127/64");
    qid_quant_spec s3 = spec_of("mxint3-b128");
    ok(qid_mx_elem_decode(ei, 3, 0x4) == -2.0f && qid_mx_elem_decode(ei, 3, 0x3) == 1.5f &&
           qid_mx_elem_decode(ei, 3, 0x1) == 0.5f && s3.bits == 3 && s3.block == 128,
       "mxint3 element: codes -4..3 times 2^-1");
}

static void test_shared_exp(void)
{
    qid_quant_spec s4 = spec_of("mxfp4"), s5 = spec_of("mxfp8-e5m2"), si = spec_of("mxint8");
    const qid_mx_elem *e2m1 = qid_mx_elem_of(&s4), *e5m2 = qid_mx_elem_of(&s5), *eint = qid_mx_elem_of(&si);
    ok(qid_mx_shared_exp(0.0f, e2m1) == -127 && qid_mx_shared_exp(1.0f, e2m1) == -2 &&
           qid_mx_shared_exp(7.99f, e2m1) == 0 && qid_mx_shared_exp(8.0f, e2m1) == 1 &&
           qid_mx_shared_exp(3.4028235e38f, e5m2) == 112 && qid_mx_shared_exp(0x1p-149f, e2m1) == -127 &&
           qid_mx_shared_exp(0x1p-125f, eint) == -125 && qid_mx_shared_exp(0x1p-125f, e5m2) == -127,
       "shared exponent floor(log2 amax) - emax_elem, clamped at -127, amax 0 -> -127");
}

/* ---- hand-worked blocks ------------------------------------------------------ */

/* Runs ref and fast on x[n] and checks both against want[n] bitwise. */
static void check_block(const char *fmt, const float *x, const float *want, size_t n, const char *what)
{
    qid_quant_spec s = spec_of(fmt);
    float yr[64], yf[64];
    qid_mx_quantize_ref(&s, x, yr, n);
    qid_mx_quantize_fast(&s, x, yf, n);
    size_t dr = first_diff(yr, want, n), df = first_diff(yf, want, n);
    if (dr < n) diag("ref [%zu]: got %a want %a", dr, (double)yr[dr], (double)want[dr]);
    if (df < n) diag("fast [%zu]: got %a want %a", df, (double)yf[df], (double)want[df]);
    ok(dr == n && df == n, "%s: %s", fmt, what);
}

static void test_hand_blocks(void)
{
    /* mxfp4, amax 6 -> X = 2^(2-2) = 1. E2M1 values 0 .5 1 1.5 2 3 4 6;
     * ties go to the even code (mantissa bit 0): 5 -> 4, 2.5 -> 2, 0.25 -> 0,
     * 0.75 -> 1, 1.25 -> 1, 1.75 -> 2, 3.5 -> 4, -5 -> -4; 0.3 -> 0.5. */
    float x1[32] = {6, 5, 2.5f, 0.25f, 0.75f, 1.25f, 1.75f, 3.5f, -5, 0.3f, -0.0f};
    float w1[32] = {6, 4, 2, 0, 1, 1, 2, 4, -4, 0.5f, -0.0f};
    check_block("mxfp4", x1, w1, 32, "ties to even at X = 1");
    /* amax 7.9 -> X = 1 (floor(log2 7.9) = 2): 7.9 and 6.5 saturate to 6;
     * -7 is a tie between 6 and 8 before saturation -> -6. */
    float x2[32] = {7.9f, 6.5f, -7.0f, 0.5f};
    float w2[32] = {6, 6, -6, 0.5f};
    check_block("mxfp4", x2, w2, 32, "saturation to 6 with a scale of 1");
    /* amax 48 -> floor(log2) = 5, X = 2^3 = 8: 48 -> 6*8; 20 -> 2.5 (tie) -> 2 -> 16;
     * 0.1 -> 0.0125 -> 0; 2 -> 0.25 (tie 0 / 0.5) -> 0; 2.01 -> 0.5 -> 4. */
    float x3[32] = {48, 20, 0.1f, 2, 2.01f, -44};
    float w3[32] = {48, 16, 0, 0, 4, -48};
    check_block("mxfp4", x3, w3, 32, "scale 2^3, ties and rounding up to the block max");
    /* e4m3, amax 300 -> X = 2^(8-8) = 1: 300 -> 288 (quantum 32 in [256,
     * 512)); subnormals 2^-9 kept, 2^-10 (tie with 0) -> 0, 3 * 2^-10 (tie
     * 2^-9 / 2^-8) -> 2^-8; 17 (tie 16 / 18) -> 16, 17.5 -> 18. */
    float x4[32] = {300, 0x1p-9f, 0x1p-10f, 0x3p-10f, -0x1p-10f, 17, 17.5f};
    float w4[32] = {288, 0x1p-9f, 0, 0x1p-8f, -0.0f, 16, 18};
    check_block("mxfp8-e4m3", x4, w4, 32, "subnormals kept, ties to even, -0 for a negative tie to zero");
    /* e4m3 saturation: amax 500 -> X = 1; 500 -> 448, 464 (tie 448/480) -> 448. */
    float x5[32] = {500, 464, -470, 440};
    float w5[32] = {448, 448, -448, 448};
    check_block("mxfp8-e4m3", x5, w5, 32, "saturation at 448");
    /* e5m2: amax 62000 -> floor(log2) = 15 -> X = 1: 62000 / 2^13 = 7.57
     * rounds to 8 -> 65536, saturated to 57344; 2^-16 kept, 2^-17 (tie with
     * 0) -> 0, 1.125 (tie 1 / 1.25) -> 1, 1.375 (tie 1.25 / 1.5) -> 1.5. */
    float x6[32] = {62000, 0x1p-16f, 0x1p-17f, 1.125f, 1.375f};
    float w6[32] = {57344, 0x1p-16f, 0, 1, 1.5f};
    check_block("mxfp8-e5m2", x6, w6, 32, "saturation at 57344, subnormal 2^-16, ties");
    /* mxint8, amax 1.5 -> X = 1: 3/128 * 64 = 1.5 -> 2 -> 1/32; 1/128 -> 0.5
     * -> 0; -3/128 -> -2 -> -1/32; -1/256 -> -0.25 -> -0 -> +0. */
    float x7[32] = {1.5f, -1.5f, 3.0f / 128, 1.0f / 128, -3.0f / 128, -1.0f / 256};
    float w7[32] = {1.5f, -1.5f, 1.0f / 32, 0, -1.0f / 32, 0};
    check_block("mxint8", x7, w7, 32, "ties to even, no negative zero");
    /* mxint8, amax 1.999 -> X = 1: -1.999 * 64 = -127.9 -> -128 = -2 (the
     * two's complement minimum); +1.999 -> 128 -> saturates to 127/64. */
    float x8[32] = {-1.999f, 1.999f, 1.0f};
    float w8[32] = {-2.0f, 127.0f / 64, 1.0f};
    check_block("mxint8", x8, w8, 32, "-2 is reachable, +2 saturates to 127/64");
    /* zero block: X = 2^-127 (E8M0 0x00), all zeros, signs kept by FP elements. */
    float x9[32] = {0, -0.0f};
    float w9[32] = {0, -0.0f};
    check_block("mxfp6-e3m2", x9, w9, 32, "all-zero block");
    /* NaN and Inf blocks: the whole block NaN, the next block unaffected. */
    float x10[64], w10[64];
    for (int i = 0; i < 64; i++) {
        x10[i] = (float)(i % 7) - 3.0f; /* amax 3 -> e2m3: X = 2^(1-2) = 0.5, exact */
        w10[i] = i < 32 ? NAN : x10[i];
    }
    x10[5] = INFINITY;
    check_block("mxfp6-e2m3", x10, w10, 64, "a block with +Inf is all NaN; the next block is not");
    x10[5] = NAN;
    check_block("mxfp6-e2m3", x10, w10, 64, "a block with NaN is all NaN");
    x10[5] = -INFINITY;
    check_block("mxfp8-e5m2", x10, w10, 64, "e5m2 (which has Inf) still gives NaN for a block with -Inf");
}

/* ---- committed vectors ------------------------------------------------------- */

static const char *fixture_formats[] = {"mxfp4",  "mxfp6-e3m2",  "mxfp6-e2m3", "mxfp8-e4m3", "mxfp8-e5m2",
                                        "mxint8", "mxint3-b128", "mxint4-b16", "mxint2",     "mxfp4-b16"};
#define N_FIXTURE_FORMATS (sizeof fixture_formats / sizeof fixture_formats[0])

typedef struct {
    int cases, ref_bad, fast_bad, enc_bad, dec_bad;
} fixture_stats;

static void test_fixture(void)
{
    size_t len = 0;
    char *text = tap_read_file("test/fixtures/quant/mx_vectors.txt", &len);
    fixture_stats st[N_FIXTURE_FORMATS];
    memset(st, 0, sizeof st);
    int total = 0, unknown = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0') continue;
        char *tsave = NULL;
        char *fmt = strtok_r(line, " ", &tsave);
        char *ntok = strtok_r(NULL, " ", &tsave);
        if (!fmt || !ntok) bail("malformed fixture line");
        size_t n = strtoul(ntok, NULL, 10), k = 0;
        for (k = 0; k < N_FIXTURE_FORMATS; k++)
            if (strcmp(fmt, fixture_formats[k]) == 0) break;
        if (k == N_FIXTURE_FORMATS) {
            unknown++;
            continue;
        }
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *got = malloc(n * sizeof *got);
        qid_quant_spec s = spec_of(fmt);
        size_t nbytes = qid_quant_row_bytes(&s, n);
        uint8_t *packed = malloc(nbytes), *enc = malloc(nbytes);
        if (!x || !y || !got || !packed || !enc) bail("out of memory");
        for (size_t i = 0; i < 2 * n; i++) {
            char *tok = strtok_r(NULL, " ", &tsave);
            if (!tok) bail("short fixture line for %s", fmt);
            uint32_t u = (uint32_t)strtoul(tok, NULL, 16);
            if (i < n)
                x[i] = tap_bits_f32(u);
            else
                y[i - n] = tap_bits_f32(u);
        }
        char *hex = strtok_r(NULL, " ", &tsave);
        if (!hex || strlen(hex) != 2 * nbytes)
            bail("%s: packed row has %zu hex digits, want %zu", fmt, hex ? strlen(hex) : 0, 2 * nbytes);
        for (size_t i = 0; i < nbytes; i++) {
            char b[3] = {hex[2 * i], hex[2 * i + 1], 0};
            packed[i] = (uint8_t)strtoul(b, NULL, 16);
        }
        fixture_stats *f = &st[k];
        f->cases++;
        total++;
        qid_mx_quantize_ref(&s, x, got, n);
        size_t d = first_diff(got, y, n);
        if (d < n && f->ref_bad++ == 0)
            diag("%s case %d ref [%zu]: in %08x got %08x want %08x", fmt, f->cases, d, tap_f32_bits(x[d]),
                 tap_f32_bits(got[d]), tap_f32_bits(y[d]));
        qid_mx_quantize_fast(&s, x, got, n);
        d = first_diff(got, y, n);
        if (d < n && f->fast_bad++ == 0)
            diag("%s case %d fast [%zu]: in %08x got %08x want %08x", fmt, f->cases, d, tap_f32_bits(x[d]),
                 tap_f32_bits(got[d]), tap_f32_bits(y[d]));
        memset(enc, 0xA5, nbytes);
        qid_mx_encode(&s, x, n, enc);
        if (memcmp(enc, packed, nbytes) != 0 && f->enc_bad++ == 0) {
            size_t i = 0;
            while (enc[i] == packed[i])
                i++;
            diag("%s case %d packed byte %zu: got %02x want %02x", fmt, f->cases, i, enc[i], packed[i]);
        }
        qid_mx_decode(&s, packed, n, got);
        d = first_diff(got, y, n);
        if (d < n && f->dec_bad++ == 0)
            diag("%s case %d decode [%zu]: got %08x want %08x", fmt, f->cases, d, tap_f32_bits(got[d]),
                 tap_f32_bits(y[d]));
        free(x);
        free(y);
        free(got);
        free(packed);
        free(enc);
    }
    free(text);
    ok(total >= 150 && unknown == 0, "fixture: %d cases read, all of known formats", total);
    for (size_t k = 0; k < N_FIXTURE_FORMATS; k++) {
        const fixture_stats *f = &st[k];
        ok(f->cases >= 10 && f->ref_bad == 0 && f->fast_bad == 0,
           "%s: %d vectors (ties, saturation, subnormals, zero/NaN/Inf blocks, clamped scales, random): ref "
           "and fast bit-exact",
           fixture_formats[k], f->cases);
        ok(f->cases >= 10 && f->enc_bad == 0 && f->dec_bad == 0,
           "%s: packed encoding equals the vectors' bytes, decoding gives their values", fixture_formats[k]);
    }
}

/* ---- vector path and packed round trip on random data ----------------------- */

static const char *all_formats[] = {"mxfp4",       "mxfp6-e3m2", "mxfp6-e2m3", "mxfp8-e4m3", "mxfp8-e5m2",    "mxint8",
                                    "mxint3-b128", "mxint5-b7",  "mxint2-b1",  "mxfp4-b16",  "mxfp8-e4m3-b48"};
#define N_ALL_FORMATS (sizeof all_formats / sizeof all_formats[0])

static const size_t lengths[] = {1,  2,  3,  5,  7,   8,   9,   15,  16,  17,  31,   32,  33,
                                 47, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 4099};
#define N_LENGTHS (sizeof lengths / sizeof lengths[0])
#define MAX_LEN   4099

/* Random row: per block of 32 a magnitude 2^[-40, 40], some exact zeros,
 * some values on element grid ties, a rare block with NaN or Inf. */
static void fill_row(float *x, size_t n, int specials)
{
    float mag = 1.0f;
    for (size_t i = 0; i < n; i++) {
        if (i % 32 == 0) mag = ldexpf(1.0f, (int)(tap_rand() % 81) - 40);
        uint64_t r = tap_rand() % 100;
        if (r < 5)
            x[i] = 0.0f;
        else if (r < 15)
            x[i] = mag * (float)((int)(tap_rand() % 33) - 16) * 0.0625f; /* grid points, many ties */
        else
            x[i] = mag * tap_gauss();
    }
    if (specials && n > 40) {
        x[tap_rand() % n] = NAN;
        x[tap_rand() % n] = (tap_rand() & 1) ? INFINITY : -INFINITY;
    }
}

static void test_fast_vs_ref(void)
{
    static float x[MAX_LEN], yr[MAX_LEN], yf[MAX_LEN], yd[MAX_LEN];
    static uint8_t packed[MAX_LEN * 2];
    diag("vector path: %s", qid_quant_simd());
    for (size_t k = 0; k < N_ALL_FORMATS; k++) {
        qid_quant_spec s = spec_of(all_formats[k]);
        int bad = 0, rt_bad = 0;
        for (size_t li = 0; li < N_LENGTHS; li++) {
            for (int rep = 0; rep < 4; rep++) {
                size_t n = lengths[li];
                fill_row(x, n, rep == 3);
                qid_mx_quantize_ref(&s, x, yr, n);
                qid_mx_quantize_fast(&s, x, yf, n);
                size_t d = first_diff(yr, yf, n);
                if (d < n && bad++ == 0)
                    diag("%s n=%zu [%zu]: in %a ref %a fast %a", all_formats[k], n, d, (double)x[d], (double)yr[d],
                         (double)yf[d]);
                size_t nb = qid_quant_row_bytes(&s, n);
                if (nb > sizeof packed) bail("packed buffer too small");
                qid_mx_encode(&s, x, n, packed);
                qid_mx_decode(&s, packed, n, yd);
                d = first_diff(yr, yd, n);
                if (d < n && rt_bad++ == 0)
                    diag("%s n=%zu [%zu]: decode(encode) %a, fused %a", all_formats[k], n, d, (double)yd[d],
                         (double)yr[d]);
            }
        }
        ok(bad == 0, "%s: fast == ref bitwise on %zu lengths x 4 random rows (1..4099, NaN/Inf blocks)", all_formats[k],
           N_LENGTHS);
        ok(rt_bad == 0, "%s: decode(encode(x)) == fused quantize-dequantize bitwise", all_formats[k]);
    }
}

static void test_sizes(void)
{
    static const struct {
        const char *fmt;
        size_t n, bytes;
    } t[] = {
        {"mxfp4", 32, 17},        {"mxfp6-e3m2", 32, 25}, {"mxfp8-e5m2", 64, 66}, {"mxint8", 32, 33},
        {"mxint3-b128", 128, 49}, {"mxfp4", 40, 22},      {"mxint5-b7", 7, 6},    {"mxfp4-b16", 32, 18},
    };
    int good = 1;
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        qid_quant_spec s = spec_of(t[k].fmt);
        size_t got = qid_quant_row_bytes(&s, t[k].n);
        if (got != t[k].bytes) {
            good = 0;
            diag("%s n=%zu: %zu bytes, want %zu", t[k].fmt, t[k].n, got, t[k].bytes);
        }
    }
    ok(good, "packed sizes: mxfp4 17 B/32, mxfp6 25, mxfp8 33, mxint3-b128 49, partial blocks");
    /* MXFP4 nibble order: element 0 in the low nibble of the first code byte. */
    qid_quant_spec s = spec_of("mxfp4");
    float x[32] = {6.0f, -0.5f, 1.0f};
    uint8_t p[17];
    qid_mx_encode(&s, x, 32, p);
    ok(p[0] == 127 && p[1] == 0x97 && p[2] == 0x02 && p[3] == 0,
       "mxfp4 packing: E8M0 127 (X = 1), then 6 = 0x7 | -0.5 = 0x9 << 4, 1.0 = 0x2");
}

int main(void)
{
    plan(9 + 1 + 12 + 1 + 2 * N_FIXTURE_FORMATS + 2 * N_ALL_FORMATS + 2);
    test_elements();
    test_shared_exp();
    test_hand_blocks();
    test_fixture();
    test_fast_vs_ref();
    test_sizes();
    return 0;
}
