/* test_quant_gguf.c - llama.cpp's GGUF formats: first the legacy blocks (quant_gguf.c):
 * the fp16 conversion, names and sizes, hand-worked blocks (ties, zero and
 * constant blocks, the sign of Q4_0's scale), the committed bit-exact vectors
 * of tools/make_gguf_vectors.py (producer: the `gguf` package's numpy
 * quantizers) through the reference, fast, encode and decode paths, the fast
 * kernel against the reference on awkward data, GPTQ through the traits, and
 * the rejected names and shapes; then the k-quants Q2_K..Q6_K and IQ4_NL
 * (quant_gguf_k.c) against the committed vectors of
 * tools/make_gguf_kquant_vectors.sh (producer: ggml's own ggml-quants.c,
 * llama-quantize's imatrix-free calls) through the reference, fast, encode
 * and decode paths, their names and sizes, and GPTQ (IQ4_NL only).
 *
 * Every float comparison here is bit-exact (tolerance 0); in the vectors a
 * NaN output (0 * Inf in a block whose d overflows fp16) must be NaN. */
#include "gptq.h"
#include "quant.h"
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const formats[] = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1"};
#define N_FORMATS (sizeof formats / sizeof formats[0])

static qid_quant_spec spec_of(const char *name)
{
    qid_quant_spec s;
    qid_error err;
    if (qid_quant_parse(name, &s, &err)) bail("cannot parse %s: %s", name, err.msg);
    return s;
}

/* 1 when a and b have the same bits, or are both NaN. */
static int same(float a, float b) { return tap_f32_bits(a) == tap_f32_bits(b) || (isnan(a) && isnan(b)); }

static size_t first_diff(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!same(a[i], b[i])) return i;
    return n;
}

static void test_f16(void)
{
    static const struct {
        float f;
        uint16_t h;
    } t[] = {
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {65504.0f, 0x7bff},
        {65519.99f, 0x7bff},
        {65520.0f, 0x7c00},
        {1e9f, 0x7c00},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
        {0x1p-14f, 0x0400},
        {0x1p-24f, 0x0001},
        {0x1p-25f, 0x0000},
        {0x1.8p-25f, 0x0001},
        {0x3p-25f, 0x0002},
        {0x1.ffcp-15f, 0x0400},
        {1.0f + 0x1p-11f, 0x3c00},
        {1.0f + 0x3p-11f, 0x3c02},
        {1.0f + 0x1p-10f, 0x3c01},
        {0x1.ffep-1f, 0x3c00},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint16_t h = qid_gguf_f32_to_f16(t[i].f);
        if (h != t[i].h && bad++ < 3) diag("f16(%a) = %04x, want %04x", (double)t[i].f, h, t[i].h);
    }
    ok(bad == 0, "f32 -> f16 rounds to nearest even, subnormals and overflow as IEEE");
    ok((qid_gguf_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (qid_gguf_f32_to_f16(NAN) & 0x3ff), "f16(NaN) is NaN");
    /* every half back to float and again is the identity (NaNs stay NaN) */
    int rt = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = qid_gguf_f16_to_f32((uint16_t)h);
        if (isnan(f) ? !((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) : qid_gguf_f32_to_f16(f) != h) rt++;
    }
    is_int(0, rt, "all 65536 halves round-trip through float");
}

static void test_names(void)
{
    static const struct {
        const char *name;
        double bpw;
        size_t bytes;
    } t[] = {{"q8_0", 8.5, 34}, {"q4_0", 4.5, 18}, {"q4_1", 5.0, 20}, {"q5_0", 5.5, 22}, {"q5_1", 6.0, 24}};
    int bad = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        qid_quant_spec s = spec_of(t[i].name);
        char buf[32];
        qid_quant_name(&s, buf, sizeof buf);
        const qid_quant_traits *tr = qid_quant_traits_of(s.type);
        if (strcmp(buf, t[i].name) != 0 || s.block != 32 || tr->kind != QID_QUANT_KIND_GGUF ||
            qid_quant_bits_per_weight(&s, 4096) != t[i].bpw || qid_quant_block_bytes(&s, 32) != t[i].bytes ||
            tr->block_bytes != t[i].bytes || qid_quant_row_bytes(&s, 96) != 3 * t[i].bytes || !tr->fixed_blocks ||
            !tr->rejects_nonfinite) {
            bad++;
            diag("%s: name %s, block %zu, bpw %g", t[i].name, buf, s.block, qid_quant_bits_per_weight(&s, 4096));
        }
    }
    ok(bad == 0, "q8_0 8.5, q4_0 4.5, q4_1 5, q5_0 5.5, q5_1 6 bits per weight; names round-trip");

    static const struct {
        const char *name, *msg;
    } e[] = {
        {"q4_0-b64", "unknown format 'q4_0-b64': GGUF formats take no suffix (ggml's block of 32 is fixed)"},
        {"q4_0x", "unknown format 'q4_0x': GGUF formats take no suffix (ggml's block of 32 is fixed)"},
        {"q4_2", "unknown format 'q4_2': expected"},
        {"Q4_0", "unknown format 'Q4_0': expected"},
    };
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
        qid_quant_spec s = {0};
        qid_error err;
        int rc = qid_quant_parse(e[i].name, &s, &err);
        ok(rc == QID_E_INVALID && strncmp(err.msg, e[i].msg, strlen(e[i].msg)) == 0, "%s rejected: %s", e[i].name,
           err.msg);
    }
    qid_quant_spec s = spec_of("q4_0");
    s.block = 64;
    ok(!qid_quant_spec_valid(&s), "a q4_0 spec with another block is invalid");

    s = spec_of("q5_1");
    qid_error err;
    int rc = qid_quant_check_shape(&s, 48, "layers.0.mlp.fc1.weight", &err);
    ok(rc == QID_E_INVALID &&
           strcmp(err.msg, "block size 32 does not divide row length 48 of 'layers.0.mlp.fc1.weight' (format q5_1)") ==
               0,
       "a row not a multiple of 32: %s", err.msg);
    float w[64];
    for (int i = 0; i < 64; i++)
        w[i] = 0.1f * (float)i;
    w[37] = NAN;
    float q[64];
    rc = qid_quant_matrix(&s, w, q, 2, 32, "w", &err);
    ok(rc == QID_E_NUMERIC &&
           strcmp(err.msg, "non-finite weight nan at element 37 (row 1, column 5) of 'w': format q5_1 needs finite "
                           "weights") == 0,
       "NaN weight rejected: %s", err.msg);
}

/* Hand-worked blocks: y = quantize(x) for the first k elements. */
static void check_block(const char *fmt, const float *x, const float *want, size_t k, const char *what)
{
    qid_quant_spec s = spec_of(fmt);
    float y[32];
    qid_gguf_quantize_ref(&s, x, y, 32);
    size_t d = first_diff(y, want, k);
    ok(d == k, "%s %s", fmt, what);
    if (d < k) diag("  [%zu]: x %a got %a want %a", d, (double)x[d], (double)y[d], (double)want[d]);
}

static void test_blocks(void)
{
    float x[32], want[32];
    /* Q8_0: amax 127 gives d = id = 1; ties go away from zero (roundf) */
    memset(x, 0, sizeof x);
    x[0] = 127.0f, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.5f, x[4] = -0.5f, x[5] = 126.4f;
    const float w8[] = {127.0f, 3.0f, -3.0f, 1.0f, -1.0f, 126.0f};
    check_block("q8_0", x, w8, 6, "ties round away from zero");
    /* Q4_0: max -8 gives d = 1; x + 8.5 truncated: 0.5 -> 9, -0.5 -> 8, 7.5 -> 15 (clamped 16) */
    memset(x, 0, sizeof x);
    x[0] = -8.0f, x[1] = 0.5f, x[2] = -0.5f, x[3] = 7.5f, x[4] = -7.5f, x[5] = 0.0f;
    const float w4[] = {-8.0f, 1.0f, 0.0f, 7.0f, -7.0f, 0.0f};
    check_block("q4_0", x, w4, 6, "x * id + 8.5 truncates; codes above 15 clamp");
    /* the first element of largest magnitude sets the sign: +8 first gives
     * d = -1, so -8 * id = 8 takes code 16, clamped to 15: (15 - 8) * -1 */
    memset(x, 0, sizeof x);
    x[0] = 8.0f, x[1] = -8.0f, x[2] = 0.0f;
    const float wsign[] = {8.0f, -7.0f, -0.0f};
    check_block("q4_0", x, wsign, 3, "the first largest magnitude sets d's sign; zero dequantizes to -0.0");
    /* all zero: d = 0 / -8 = -0, code 8, value 0 * -0 = -0 (q4_1: +0) */
    memset(x, 0, sizeof x);
    for (int i = 0; i < 32; i++)
        want[i] = -0.0f;
    check_block("q4_0", x, want, 32, "an all-zero block dequantizes to -0.0 (d = 0 / -8)");
    memset(want, 0, sizeof want);
    check_block("q4_1", x, want, 32, "an all-zero q4_1 block stays +0");
    /* Q4_1 constant block: d = 0, codes 0, every value f16(c) */
    for (int i = 0; i < 32; i++)
        x[i] = 0.1f, want[i] = qid_gguf_f16_to_f32(qid_gguf_f32_to_f16(0.1f));
    check_block("q4_1", x, want, 32, "a constant block is f16(c) everywhere");
    check_block("q5_1", x, want, 32, "a constant q5_1 block is f16(c) everywhere");
    /* Q8_0 with amax above 65504 * 127: d is Inf in fp16; zero times Inf is NaN */
    memset(x, 0, sizeof x);
    x[0] = 1e7f, x[1] = -1e7f;
    qid_quant_spec s = spec_of("q8_0");
    float y[32];
    qid_gguf_quantize_ref(&s, x, y, 32);
    ok(y[0] == INFINITY && y[1] == -INFINITY && isnan(y[2]), "q8_0: d beyond fp16 dequantizes to +-Inf and NaN");
    /* tiny weights: d below 2^-25 stores 0 */
    for (int i = 0; i < 32; i++)
        x[i] = 1e-30f * (float)(i - 16);
    qid_gguf_quantize_ref(&s, x, y, 32);
    int zeros = 1;
    for (int i = 0; i < 32; i++)
        zeros &= y[i] == 0.0f;
    ok(zeros, "q8_0: a block of 1e-30 weights dequantizes to zeros (d rounds to 0 in fp16)");
}

static void test_fixture(void)
{
    size_t len = 0;
    char *text = tap_read_file("test/fixtures/quant/gguf_vectors.txt", &len);
    int cases[N_FORMATS] = {0}, bad[N_FORMATS][4];
    memset(bad, 0, sizeof bad);
    int total = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0') continue;
        char *tsave = NULL;
        char *fmt = strtok_r(line, " ", &tsave);
        char *ntok = strtok_r(NULL, " ", &tsave);
        if (!fmt || !ntok) bail("malformed fixture line");
        size_t n = strtoul(ntok, NULL, 10), k = 0;
        for (k = 0; k < N_FORMATS; k++)
            if (strcmp(fmt, formats[k]) == 0) break;
        if (k == N_FORMATS) bail("unknown format %s in the fixture", fmt);
        qid_quant_spec s = spec_of(fmt);
        size_t nbytes = qid_quant_row_bytes(&s, n);
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *got = malloc(n * sizeof *got);
        uint8_t *packed = malloc(nbytes), *enc = malloc(nbytes);
        if (!x || !y || !got || !packed || !enc) bail("out of memory");
        for (size_t i = 0; i < 2 * n; i++) {
            char *tok = strtok_r(NULL, " ", &tsave);
            if (!tok) bail("short fixture line for %s", fmt);
            float v = tap_bits_f32((uint32_t)strtoul(tok, NULL, 16));
            if (i < n)
                x[i] = v;
            else
                y[i - n] = v;
        }
        char *hex = strtok_r(NULL, " ", &tsave);
        if (!hex || strlen(hex) != 2 * nbytes)
            bail("%s: packed row has %zu hex digits, want %zu", fmt, hex ? strlen(hex) : 0, 2 * nbytes);
        for (size_t i = 0; i < nbytes; i++) {
            char b[3] = {hex[2 * i], hex[2 * i + 1], 0};
            packed[i] = (uint8_t)strtoul(b, NULL, 16);
        }
        cases[k]++;
        total++;
        qid_gguf_quantize_ref(&s, x, got, n);
        size_t d = first_diff(got, y, n);
        if (d < n && bad[k][0]++ == 0)
            diag("%s case %d ref [%zu]: in %08x got %08x want %08x", fmt, cases[k], d, tap_f32_bits(x[d]),
                 tap_f32_bits(got[d]), tap_f32_bits(y[d]));
        qid_gguf_quantize_fast(&s, x, got, n);
        d = first_diff(got, y, n);
        if (d < n && bad[k][1]++ == 0)
            diag("%s case %d fast [%zu]: in %08x got %08x want %08x", fmt, cases[k], d, tap_f32_bits(x[d]),
                 tap_f32_bits(got[d]), tap_f32_bits(y[d]));
        memset(enc, 0xA5, nbytes);
        qid_gguf_encode(&s, x, n, enc);
        if (memcmp(enc, packed, nbytes) != 0 && bad[k][2]++ == 0) {
            size_t i = 0;
            while (enc[i] == packed[i])
                i++;
            diag("%s case %d packed byte %zu: got %02x want %02x", fmt, cases[k], i, enc[i], packed[i]);
        }
        qid_gguf_decode(&s, packed, n, got);
        d = first_diff(got, y, n);
        if (d < n && bad[k][3]++ == 0)
            diag("%s case %d decode [%zu]: got %08x want %08x", fmt, cases[k], d, tap_f32_bits(got[d]),
                 tap_f32_bits(y[d]));
        free(x), free(y), free(got), free(packed), free(enc);
    }
    free(text);
    for (size_t k = 0; k < N_FORMATS; k++)
        ok(cases[k] >= 20 && !bad[k][0] && !bad[k][1] && !bad[k][2] && !bad[k][3],
           "%s: %d gguf-py vectors bit-exact (ref %d, fast %d, packed %d, decode %d differ)", formats[k], cases[k],
           bad[k][0], bad[k][1], bad[k][2], bad[k][3]);
    ok(total == 110, "fixture has %d cases", total);
}

/* ---- k-quants and IQ4_NL ------------------------------------------------ */

static const char *const kformats[] = {"q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl"};
#define N_KFORMATS (sizeof kformats / sizeof kformats[0])

static void hex_bytes(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char b[3] = {hex[2 * i], hex[2 * i + 1], 0};
        out[i] = (uint8_t)strtoul(b, NULL, 16);
    }
}

/* The vectors of tools/make_gguf_kquant_vectors.sh (ggml's own C code):
 * inputs "x <case> <n> <x..>", then "<format> <case> <y..> <packed>". */
static void test_kquant_fixture(void)
{
    enum { MAX_CASES = 64 };
    size_t len = 0;
    char *text = tap_read_file("test/fixtures/quant/gguf_kquant_vectors.txt", &len);
    float *xs[MAX_CASES] = {0};
    size_t ns[MAX_CASES] = {0};
    int n_x = 0, cases[N_KFORMATS] = {0}, bad[N_KFORMATS][4];
    memset(bad, 0, sizeof bad);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0') continue;
        char *tsave = NULL;
        char *fmt = strtok_r(line, " ", &tsave), *ctok = strtok_r(NULL, " ", &tsave);
        if (!fmt || !ctok) bail("malformed k-quant fixture line");
        const int c = atoi(ctok);
        if (c < 0 || c >= MAX_CASES) bail("case %d out of range", c);
        if (strcmp(fmt, "x") == 0) {
            const size_t n = strtoul(strtok_r(NULL, " ", &tsave), NULL, 10);
            xs[c] = malloc(n * sizeof *xs[c]);
            if (!xs[c]) bail("out of memory");
            ns[c] = n;
            for (size_t i = 0; i < n; i++) {
                char *tok = strtok_r(NULL, " ", &tsave);
                if (!tok) bail("short input %d", c);
                xs[c][i] = tap_bits_f32((uint32_t)strtoul(tok, NULL, 16));
            }
            n_x++;
            continue;
        }
        size_t k;
        for (k = 0; k < N_KFORMATS; k++)
            if (strcmp(fmt, kformats[k]) == 0) break;
        if (k == N_KFORMATS || !xs[c]) bail("unknown format %s or case %d in the fixture", fmt, c);
        const size_t n = ns[c];
        const float *x = xs[c];
        qid_quant_spec s = spec_of(fmt);
        const size_t nbytes = qid_quant_row_bytes(&s, n);
        float *y = malloc(n * sizeof *y), *got = malloc(n * sizeof *got);
        uint8_t *packed = malloc(nbytes), *enc = malloc(nbytes);
        if (!y || !got || !packed || !enc) bail("out of memory");
        for (size_t i = 0; i < n; i++) {
            char *tok = strtok_r(NULL, " ", &tsave);
            if (!tok) bail("short fixture line for %s", fmt);
            y[i] = tap_bits_f32((uint32_t)strtoul(tok, NULL, 16));
        }
        char *hex = strtok_r(NULL, " ", &tsave);
        if (!hex || strlen(hex) != 2 * nbytes)
            bail("%s: packed row has %zu hex digits, want %zu", fmt, hex ? strlen(hex) : 0, 2 * nbytes);
        hex_bytes(hex, packed, nbytes);
        cases[k]++;
        const qid_quant_traits *t = qid_quant_traits_of(s.type);
        t->quantize_ref(&s, x, got, n);
        size_t d = first_diff(got, y, n);
        if (d < n && bad[k][0]++ == 0)
            diag("%s case %d ref [%zu]: in %08x got %08x want %08x", fmt, c, d, tap_f32_bits(x[d]),
                 tap_f32_bits(got[d]), tap_f32_bits(y[d]));
        t->quantize_fast(&s, x, got, n);
        d = first_diff(got, y, n);
        if (d < n && bad[k][1]++ == 0)
            diag("%s case %d fast [%zu]: in %08x got %08x want %08x", fmt, c, d, tap_f32_bits(x[d]),
                 tap_f32_bits(got[d]), tap_f32_bits(y[d]));
        memset(enc, 0xA5, nbytes);
        t->encode(&s, x, n, enc);
        if (memcmp(enc, packed, nbytes) != 0 && bad[k][2]++ == 0) {
            size_t i = 0;
            while (enc[i] == packed[i])
                i++;
            diag("%s case %d packed byte %zu: got %02x want %02x", fmt, c, i, enc[i], packed[i]);
        }
        t->decode(&s, packed, n, got);
        d = first_diff(got, y, n);
        if (d < n && bad[k][3]++ == 0)
            diag("%s case %d decode [%zu]: got %08x want %08x", fmt, c, d, tap_f32_bits(got[d]), tap_f32_bits(y[d]));
        free(y), free(got), free(packed), free(enc);
    }
    free(text);
    for (size_t k = 0; k < N_KFORMATS; k++)
        ok(cases[k] == n_x && n_x >= 28 && !bad[k][0] && !bad[k][1] && !bad[k][2] && !bad[k][3],
           "%s: %d vectors of ggml's ggml-quants.c bit-exact (ref %d, fast %d, packed %d, decode %d differ)",
           kformats[k], cases[k], bad[k][0], bad[k][1], bad[k][2], bad[k][3]);
    for (int c = 0; c < MAX_CASES; c++)
        free(xs[c]);
}

static void test_kquant_names(void)
{
    static const struct {
        const char *name;
        double bpw;
        size_t block, bytes;
    } t[] = {{"q2_k", 2.625, 256, 84},     {"q3_k", 3.4375, 256, 110},   {"q4_k", 4.5, 256, 144},
             {"q5_k", 5.5, 256, 176},      {"q6_k", 6.5625, 256, 210},   {"iq4_nl", 4.5, 32, 18},
             {"q3_k_s", 3.4375, 256, 110}, {"q3_k_m", 3.4375, 256, 110}, {"q3_k_l", 3.4375, 256, 110},
             {"q4_k_s", 4.5, 256, 144},    {"q4_k_m", 4.5, 256, 144},    {"q5_k_s", 5.5, 256, 176},
             {"q5_k_m", 5.5, 256, 176}};
    int bad = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        qid_quant_spec s = spec_of(t[i].name);
        char buf[32];
        qid_quant_name(&s, buf, sizeof buf);
        const qid_quant_traits *tr = qid_quant_traits_of(s.type);
        if (strcmp(buf, t[i].name) != 0 || s.block != t[i].block || tr->kind != QID_QUANT_KIND_GGUF ||
            qid_quant_bits_per_weight(&s, 4096) != t[i].bpw || qid_quant_block_bytes(&s, s.block) != t[i].bytes ||
            tr->mixture != (strlen(t[i].name) == 6 && t[i].name[4] == '_') || !qid_quant_spec_valid(&s)) {
            bad++;
            diag("%s: name %s, block %zu, bpw %g", t[i].name, buf, s.block, qid_quant_bits_per_weight(&s, 4096));
        }
    }
    ok(bad == 0, "k-quants 2.625, 3.4375, 4.5, 5.5, 6.5625 and iq4_nl 4.5 bits per weight (scales included); the "
                 "mixtures as their default type; names round-trip");
    qid_quant_spec s = {0};
    qid_error err;
    int rc = qid_quant_parse("q4_k_x", &s, &err);
    ok(rc == QID_E_INVALID &&
           strcmp(err.msg, "unknown format 'q4_k_x': GGUF formats take no suffix (ggml's block of 256 is fixed)") == 0,
       "q4_k_x rejected: %s", err.msg);
    rc = qid_quant_parse("q4_k_m-b32", &s, &err);
    ok(rc == QID_E_INVALID && strstr(err.msg, "GGUF formats take no suffix") != NULL, "q4_k_m-b32 rejected");
    s = spec_of("q4_k");
    rc = qid_quant_check_shape(&s, 128, "layers.0.mlp.fc1.weight", &err);
    ok(rc == QID_E_INVALID && strcmp(err.msg, "block size 256 does not divide row length 128 of "
                                              "'layers.0.mlp.fc1.weight' (format q4_k)") == 0,
       "the matrix level refuses a row 256 does not divide (the model level falls back): %s", err.msg);
    float w[512], q[512];
    for (int i = 0; i < 512; i++)
        w[i] = 0.01f * (float)i;
    w[300] = INFINITY;
    rc = qid_quant_matrix(&s, w, q, 2, 256, "w", &err);
    ok(rc == QID_E_NUMERIC && strcmp(err.msg, "non-finite weight +inf at element 300 (row 1, column 44) of 'w': "
                                              "format q4_k needs finite weights") == 0,
       "Inf weight rejected: %s", err.msg);
}

/* The fast kernel against the reference on awkward lengths and data. */
static void test_fast(void)
{
    static const size_t lens[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 96, 1000, 4096};
    enum { N = 4096 };
    float *x = malloc(N * sizeof *x), *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    if (!x || !a || !b) bail("out of memory");
    tap_seed(21);
    for (size_t f = 0; f < N_FORMATS; f++) {
        qid_quant_spec s = spec_of(formats[f]);
        int bad = 0;
        for (int pass = 0; pass < 6; pass++)
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                size_t n = lens[li];
                for (size_t i = 0; i < n; i++) {
                    float g = tap_gauss();
                    /* normal; subnormal d; ties and equal magnitudes of both
                     * signs; overflowing ranges and signed zeros; signed
                     * zeros only; blocks of one value or zero */
                    x[i] = pass == 0   ? g
                           : pass == 1 ? g * 1e-38f
                           : pass == 2 ? (float)((int)(g * 4.0f)) * 0.5f
                           : pass == 3 ? (i % 5 == 0 ? 3e38f : -3e38f) * (float)(i % 3 != 0)
                           : pass == 4
                               ? (g < 0.0f ? -0.0f : 0.0f)
                               : (i / 32 % 3 == 0 ? (g < 0.0f ? -0.0f : 0.0f) : (i / 32 % 3 == 1 ? 0.3f : -1e-3f));
                }
                qid_gguf_quantize_ref(&s, x, a, n);
                qid_gguf_quantize_fast(&s, x, b, n);
                size_t d = first_diff(a, b, n);
                if (d < n && bad++ < 2)
                    diag("%s pass %d n %zu [%zu]: x %a ref %a fast %a", formats[f], pass, n, d, (double)x[d],
                         (double)a[d], (double)b[d]);
            }
        ok(bad == 0, "%s (%s): fast kernel equals the reference on awkward lengths and data", formats[f],
           qid_quant_simd());
        /* encode + decode is the fused kernel, short last blocks included */
        int rt = 0;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            size_t n = lens[li];
            for (size_t i = 0; i < n; i++)
                x[i] = tap_gauss();
            uint8_t *p = malloc(qid_quant_row_bytes(&s, n));
            if (!p) bail("out of memory");
            qid_gguf_encode(&s, x, n, p);
            qid_gguf_decode(&s, p, n, b);
            qid_gguf_quantize_ref(&s, x, a, n);
            if (first_diff(a, b, n) < n) rt++;
            free(p);
        }
        ok(rt == 0, "%s: decode(encode(x)) equals the fused kernel, short blocks too", formats[f]);
    }
    free(x), free(a), free(b);
}

/* GPTQ reaches the formats through params and quantize_value: with an
 * identity Hessian (no cross-column correlation) it is RTN. */
static void test_gptq(void)
{
    enum { R = 4, C = 64 };
    for (size_t f = 0; f < N_FORMATS; f++) {
        qid_quant_spec s = spec_of(formats[f]);
        float w[R * C], want[R * C];
        tap_seed(7 + f);
        for (int i = 0; i < R * C; i++)
            w[i] = tap_gauss();
        qid_error err;
        if (qid_quant_matrix(&s, w, want, R, C, "w", &err)) bail("%s", err.msg);
        qid_gptq_hessian *h = qid_gptq_hessian_create(C);
        float xs[C * C];
        memset(xs, 0, sizeof xs);
        for (int i = 0; i < C; i++)
            xs[i * C + i] = 1.0f;
        if (qid_gptq_hessian_add(h, xs, C, C, 0, "x", &err)) bail("%s", err.msg);
        qid_gptq_opts o;
        qid_gptq_opts_default(&o);
        o.percdamp = 0.0;
        int rc = qid_gptq_quantize(h, &s, &o, w, R, C, "w", NULL, &err);
        ok(rc == QID_OK && first_diff(w, want, R * C) == R * C, "%s: GPTQ with a diagonal Hessian is the RTN result",
           formats[f]);
        qid_gptq_hessian_free(h);
    }
}

/* The k-quants' fast kernel (AVX2 search for Q4_K, Q5_K) against the
 * reference on awkward data: 96 super-blocks per type and pass. */
static void test_kquant_fast(void)
{
    enum { N = 256 * 96 };
    float *x = malloc(N * sizeof *x), *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    if (!x || !a || !b) bail("out of memory");
    tap_seed(256);
    for (size_t f = 0; f < N_KFORMATS; f++) {
        qid_quant_spec s = spec_of(kformats[f]);
        int bad = 0;
        for (int pass = 0; pass < 6; pass++) {
            for (size_t i = 0; i < N; i++) {
                const float g = tap_gauss();
                /* normal; sub-blocks of very different scales; a grid with
                 * ties; sparse; one sign per sub-block; flat sub-blocks */
                x[i] = pass == 0   ? g
                       : pass == 1 ? ldexpf(g, (int)(i / 32 % 24) - 16)
                       : pass == 2 ? (float)((int)(g * 4.0f)) * 0.25f
                       : pass == 3 ? (i % 7 == 0 ? g : 0.0f)
                       : pass == 4 ? (i / 32 % 2 ? fabsf(g) : -fabsf(g))
                                   : (i / 32 % 3 == 0 ? 0.5f : g);
            }
            qid_quant_traits_of(s.type)->quantize_ref(&s, x, a, N);
            qid_quant_traits_of(s.type)->quantize_fast(&s, x, b, N);
            const size_t d = first_diff(a, b, N);
            if (d < N && bad++ < 2)
                diag("%s pass %d [%zu]: x %a ref %a fast %a", kformats[f], pass, d, (double)x[d], (double)a[d],
                     (double)b[d]);
        }
        ok(bad == 0, "%s (%s): fast kernel equals the reference on awkward data", kformats[f], qid_quant_simd());
    }
    free(x), free(a), free(b);
}

/* IQ4_NL has GPTQ rows (params, quantize_value); the k-quants do not. */
static void test_kquant_gptq(void)
{
    enum { R = 4, C = 64 };
    float w[R * C], want[R * C], xs[C * C];
    tap_seed(11);
    for (int i = 0; i < R * C; i++)
        w[i] = tap_gauss();
    qid_error err;
    qid_quant_spec s = spec_of("iq4_nl");
    if (qid_quant_matrix(&s, w, want, R, C, "w", &err)) bail("%s", err.msg);
    qid_gptq_hessian *h = qid_gptq_hessian_create(C);
    memset(xs, 0, sizeof xs);
    for (int i = 0; i < C; i++)
        xs[i * C + i] = 1.0f;
    if (qid_gptq_hessian_add(h, xs, C, C, 0, "x", &err)) bail("%s", err.msg);
    qid_gptq_opts o;
    qid_gptq_opts_default(&o);
    o.percdamp = 0.0;
    int rc = qid_gptq_quantize(h, &s, &o, w, R, C, "w", NULL, &err);
    ok(rc == QID_OK && first_diff(w, want, R * C) == R * C, "iq4_nl: GPTQ with a diagonal Hessian is the RTN result");
    qid_gptq_hessian_free(h);
    enum { C2 = 256 };
    float w2[C2], x2[C2 * 2];
    for (int i = 0; i < C2; i++)
        w2[i] = tap_gauss();
    for (int i = 0; i < 2 * C2; i++)
        x2[i] = tap_gauss();
    h = qid_gptq_hessian_create(C2);
    if (qid_gptq_hessian_add(h, x2, 2, C2, 0, "x", &err)) bail("%s", err.msg);
    s = spec_of("q4_k");
    rc = qid_gptq_quantize(h, &s, &o, w2, 1, C2, "w", NULL, &err);
    ok(rc == QID_E_INVALID && strcmp(err.msg, "gptq: format q4_k has no GPTQ path (its scales come from a search "
                                              "over whole super-blocks of 256 weights); expected method rtn") == 0,
       "q4_k has no GPTQ path: %s", err.msg);
    qid_gptq_hessian_free(h);
}

int main(void)
{
    plan_lazy();
    test_f16();
    test_names();
    test_blocks();
    test_fixture();
    test_kquant_fixture();
    test_kquant_names();
    test_kquant_fast();
    test_fast();
    test_gptq();
    test_kquant_gptq();
    return 0;
}
