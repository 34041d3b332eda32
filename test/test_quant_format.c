/* test_quant_format.c - format names, the traits table and packed sizes, and
 * the matrix-level entry points (quant_format.c): good and bad names with
 * their error text, canonical names, shape and non-finite errors, in-place
 * and packed matrix forms, GPTQ's params + quantize_value against the
 * reference kernel, the scalar/vector switch. */
#include "quant.h"
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    enum qid_qtype type;
    int bits;
    size_t block;
    int sym, mse;
    const char *canonical;
} good[] = {
    {"int4-g128-sym", QID_QTYPE_INT, 4, 128, 1, 0, "int4-g128-sym"},
    {"int3-g128-asym", QID_QTYPE_INT, 3, 128, 0, 0, "int3-g128-asym"},
    {"int2-g64-sym", QID_QTYPE_INT, 2, 64, 1, 0, "int2-g64-sym"},
    {"int8-channel", QID_QTYPE_INT, 8, 0, 1, 0, "int8-channel-sym"},
    {"int8-channel-asym", QID_QTYPE_INT, 8, 0, 0, 0, "int8-channel-asym"},
    {"int4-g128", QID_QTYPE_INT, 4, 128, 1, 0, "int4-g128-sym"},
    {"int4-g128-sym-mse", QID_QTYPE_INT, 4, 128, 1, 1, "int4-g128-sym-mse"},
    {"int3-g32-mse", QID_QTYPE_INT, 3, 32, 1, 1, "int3-g32-sym-mse"},
    {"mxfp4", QID_QTYPE_MXFP4, 4, 32, 1, 0, "mxfp4"},
    {"mxfp4-e2m1", QID_QTYPE_MXFP4, 4, 32, 1, 0, "mxfp4"},
    {"mxfp6-e3m2", QID_QTYPE_MXFP6_E3M2, 6, 32, 1, 0, "mxfp6-e3m2"},
    {"mxfp6-e2m3", QID_QTYPE_MXFP6_E2M3, 6, 32, 1, 0, "mxfp6-e2m3"},
    {"mxfp8-e4m3", QID_QTYPE_MXFP8_E4M3, 8, 32, 1, 0, "mxfp8-e4m3"},
    {"mxfp8-e5m2", QID_QTYPE_MXFP8_E5M2, 8, 32, 1, 0, "mxfp8-e5m2"},
    {"mxint8", QID_QTYPE_MXINT, 8, 32, 1, 0, "mxint8"},
    {"mxint3-b128", QID_QTYPE_MXINT, 3, 128, 1, 0, "mxint3-b128"},
    {"mxint2-b1", QID_QTYPE_MXINT, 2, 1, 1, 0, "mxint2-b1"},
    {"mxfp4-b16", QID_QTYPE_MXFP4, 4, 16, 1, 0, "mxfp4-b16"},
    {"mxfp8-e5m2-b64", QID_QTYPE_MXFP8_E5M2, 8, 64, 1, 0, "mxfp8-e5m2-b64"},
    {"nf4-b64", QID_QTYPE_NF4, 4, 64, 1, 0, "nf4-b64"},
    {"nf4", QID_QTYPE_NF4, 4, 64, 1, 0, "nf4-b64"},
    {"fp4-b64", QID_QTYPE_FP4, 4, 64, 1, 0, "fp4-b64"},
    {"fp4-b128", QID_QTYPE_FP4, 4, 128, 1, 0, "fp4-b128"},
};
#define N_GOOD (sizeof good / sizeof good[0])

static const struct {
    const char *name, *msg;
} bad[] = {
    {"int9-g128", "unknown format 'int9-g128': integer bits must be 2..8"},
    {"int1-g128-sym", "unknown format 'int1-g128-sym': integer bits must be 2..8"},
    {"int4-g0", "unknown format 'int4-g0': group size must be 1..1048576"},
    {"int4-g99999999999999999999", "group size must be 1..1048576"},
    {"int4-g", "group size must be 1..1048576"},
    {"int4", "unknown format 'int4': expected -gG (group of G columns) or -channel after int4"},
    {"int", "unknown format 'int': expected intB-gG or intB-channel with B = 2..8"},
    {"int4-g128-foo", "unknown format 'int4-g128-foo': unexpected '-foo' (expected -sym, -asym and/or -mse)"},
    {"int4-g128-symm", "unexpected '-symm'"},
    {"int4-g128-mse-sym", "unexpected '-mse-sym'"},
    {"mxfp6", "unknown format 'mxfp6': expected mxfp6-e3m2 or mxfp6-e2m3"},
    {"mxfp6-e4m3", "unknown format 'mxfp6-e4m3': expected mxfp6-e3m2 or mxfp6-e2m3"},
    {"mxfp8", "unknown format 'mxfp8': expected mxfp8-e4m3 or mxfp8-e5m2"},
    {"mxint9", "unknown format 'mxint9': MX integer bits must be 2..8"},
    {"mxint", "unknown format 'mxint': expected mxintD[-bB] with D = 2..8"},
    {"mxfp4-b0", "unknown format 'mxfp4-b0': block size must be 1..1048576"},
    {"mxfp4-b16x", "unknown format 'mxfp4-b16x': unexpected 'x' after the block size"},
    {"nf4-g64", "unknown format 'nf4-g64': unexpected '-g64' (expected -bB, a block size)"},
    {"mxfp4x", "unknown format 'mxfp4x': expected intB-gG"},
    {"fp8", "unknown format 'fp8': expected intB-gG[-sym|-asym][-mse], intB-channel"},
    {"INT4-g128", "unknown format 'INT4-g128'"},
    {"", "empty format name: expected"},
};
#define N_BAD (sizeof bad / sizeof bad[0])

static qid_quant_spec spec_of(const char *name)
{
    qid_quant_spec s;
    qid_error err;
    if (qid_quant_parse(name, &s, &err)) bail("cannot parse %s: %s", name, err.msg);
    return s;
}

static int same_spec(const qid_quant_spec *a, const qid_quant_spec *b)
{
    return a->type == b->type && a->bits == b->bits && a->block == b->block && a->sym == b->sym && a->mse == b->mse;
}

static void test_names(void)
{
    int roundtrip = 1;
    for (size_t i = 0; i < N_GOOD; i++) {
        qid_quant_spec s;
        qid_error err;
        qid_error_clear(&err);
        int rc = qid_quant_parse(good[i].name, &s, &err);
        char canon[64] = "";
        if (rc == QID_OK) qid_quant_name(&s, canon, sizeof canon);
        ok(rc == QID_OK && s.type == good[i].type && s.bits == good[i].bits && s.block == good[i].block &&
               s.sym == good[i].sym && s.mse == good[i].mse && strcmp(canon, good[i].canonical) == 0 &&
               qid_quant_spec_valid(&s),
           "parse '%s': bits %d, block %zu, %s%s, canonical '%s'", good[i].name, good[i].bits, good[i].block,
           good[i].sym ? "sym" : "asym", good[i].mse ? ", mse" : "", canon);
        qid_quant_spec back;
        if (rc == QID_OK && (qid_quant_parse(canon, &back, &err) != QID_OK || !same_spec(&s, &back))) roundtrip = 0;
    }
    ok(roundtrip, "every canonical name parses back to the same spec");
    int codes = 1;
    for (size_t i = 0; i < N_BAD; i++) {
        qid_quant_spec s = {.type = QID_QTYPE_FP4, .bits = 99};
        qid_error err;
        qid_error_clear(&err);
        int rc = qid_quant_parse(bad[i].name, &s, &err);
        if (rc != QID_E_INVALID || s.bits != 99 || strchr(err.msg, '\n')) codes = 0;
        like(err.msg, bad[i].msg, "bad name '%s': %s", bad[i].name, err.msg);
    }
    ok(codes, "bad names return QID_E_INVALID, leave the spec untouched, and give one line");
    qid_quant_spec hand = {.type = QID_QTYPE_MXFP4, .bits = 6, .block = 32, .sym = 1};
    qid_quant_spec hand2 = {.type = QID_QTYPE_INT, .bits = 4, .block = 0, .sym = 2};
    qid_quant_spec hand3 = {.type = QID_QTYPE_NF4, .bits = 4, .block = 0, .sym = 1};
    ok(!qid_quant_spec_valid(&hand) && !qid_quant_spec_valid(&hand2) && !qid_quant_spec_valid(&hand3) &&
           !qid_quant_spec_valid(NULL),
       "spec_valid rejects wrong element bits, a bad sym flag, an MX/NF4 block of 0");
}

static void test_traits(void)
{
    /* The table's byte counts equal the packed layout's: header + codes. */
    static const struct {
        enum qid_qtype type;
        size_t bytes;
    } fixed[] = {{QID_QTYPE_MXFP4, 17},      {QID_QTYPE_MXFP6_E3M2, 25}, {QID_QTYPE_MXFP6_E2M3, 25},
                 {QID_QTYPE_MXFP8_E4M3, 33}, {QID_QTYPE_MXFP8_E5M2, 33}, {QID_QTYPE_NF4, 36},
                 {QID_QTYPE_FP4, 36}};
    int good_sizes = 1;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        const qid_quant_traits *t = qid_quant_traits_of(fixed[i].type);
        qid_quant_spec s = {.type = fixed[i].type, .bits = t->bits, .block = t->block, .sym = 1};
        if (t->block_bytes != fixed[i].bytes || qid_quant_block_bytes(&s, t->block) != fixed[i].bytes) {
            good_sizes = 0;
            diag("%s: table %zu, computed %zu, want %zu", t->name, t->block_bytes, qid_quant_block_bytes(&s, t->block),
                 fixed[i].bytes);
        }
    }
    ok(good_sizes, "traits: mxfp4 17 B per 32, mxfp6 25, mxfp8 33, nf4/fp4-b64 36, equal to header + packed codes");
    int complete = 1;
    for (int k = 0; k < QID_QTYPE_COUNT; k++) {
        const qid_quant_traits *t = qid_quant_traits_of((enum qid_qtype)k);
        /* only GGUF's k-quants and mixtures have no GPTQ path (no params) */
        const int gptq_ok = t->params ? t->quantize_value != NULL
                                      : t->quantize_value == NULL && t->kind == QID_QUANT_KIND_GGUF && t->block == 256;
        if (!t->name || !t->quantize_ref || !t->quantize_fast || !t->encode || !t->decode || !gptq_ok ||
            t->fixed_blocks != (t->kind != QID_QUANT_KIND_INT) || (t->kind == QID_QUANT_KIND_MX) != (t->elem != NULL) ||
            t->rejects_nonfinite == (t->kind == QID_QUANT_KIND_MX))
            complete = 0;
    }
    ok(complete, "traits: every family has a name, ref/fast/encode/decode and GPTQ's params/quantize_value (not "
                 "the k-quants); MX "
                 "alone has an element type and accepts NaN/Inf; MX and NF4/FP4 have fixed blocks");
    static const struct {
        const char *fmt;
        size_t cols;
        double bpw;
    } bpw[] = {{"mxfp4", 4096, 4.25},     {"mxfp8-e4m3", 4096, 8.25},      {"mxint3-b128", 4096, 3.0625},
               {"nf4-b64", 4096, 4.5},    {"int4-g128-sym", 4096, 4.3125}, {"int8-channel", 4096, 8.0 + 40.0 / 4096},
               {"mxfp6-e2m3", 4096, 6.25}};
    for (size_t i = 0; i < sizeof bpw / sizeof bpw[0]; i++) {
        qid_quant_spec s = spec_of(bpw[i].fmt);
        is_double(bpw[i].bpw, qid_quant_bits_per_weight(&s, bpw[i].cols), 1e-12, "%s: %.6g bits per weight (tol 1e-12)",
                  bpw[i].fmt, bpw[i].bpw);
    }
}

static void test_matrix_errors(void)
{
    qid_error err;
    qid_quant_spec s = spec_of("int4-g128-sym");
    qid_error_clear(&err);
    int rc = qid_quant_check_shape(&s, 100, "layers.0.mlp.fc1.weight", &err);
    ok(rc == QID_E_INVALID, "group size must divide the row length");
    like(err.msg, "group size 128 does not divide row length 100 of 'layers.0.mlp.fc1.weight'", "message: %s", err.msg);
    s = spec_of("mxfp4");
    rc = qid_quant_check_shape(&s, 48, "w", &err);
    like(err.msg, "block size 32 does not divide row length 48 of 'w' (format mxfp4)", "MX message: %s", err.msg);
    qid_quant_spec c = spec_of("int8-channel"), n = spec_of("nf4-b64");
    ok(rc == QID_E_INVALID && qid_quant_check_shape(&c, 37, "w", &err) == QID_OK &&
           qid_quant_check_shape(&n, 4096, "w", &err) == QID_OK,
       "per-channel formats take any row length; nf4-b64 takes 4096");

    enum { R = 3, C = 16 };
    float w[R * C], q[R * C], keep[R * C];
    for (int i = 0; i < R * C; i++)
        w[i] = (float)(i % 5) - 2.0f;
    w[2 * C + 5] = NAN;
    memcpy(keep, w, sizeof w);
    s = spec_of("int4-g8-sym");
    rc = qid_quant_matrix(&s, w, q, R, C, "layers.1.attn.qkv.weight", &err);
    ok(rc == QID_E_NUMERIC, "int4: a NaN weight is a tier-3 numeric error");
    like(err.msg,
         "non-finite weight nan at element 37 (row 2, column 5) of 'layers.1.attn.qkv.weight': format int4-g8-sym "
         "needs finite weights",
         "message: %s", err.msg);
    w[2 * C + 5] = 1.0f;
    w[7] = -INFINITY;
    s = spec_of("nf4-b16");
    rc = qid_quant_matrix(&s, w, q, R, C, "x", &err);
    like(err.msg, "non-finite weight -inf at element 7 (row 0, column 7) of 'x'", "nf4: %s (rc %d)", err.msg, rc);
    memcpy(keep, w, sizeof w);
    float scratch[C];
    rc = qid_quant_matrix_inplace(&s, w, R, C, scratch, "x", &err);
    ok(rc == QID_E_NUMERIC && memcmp(keep, w, sizeof w) == 0, "in-place form leaves the weights unchanged on error");
    /* MX follows the spec: the block with Inf is NaN, the others are finite. */
    s = spec_of("mxfp8-e4m3-b8");
    rc = qid_quant_matrix(&s, w, q, R, C, "x", &err);
    int nan_block = 1, rest_finite = 1;
    for (int i = 0; i < R * C; i++) {
        if (i < 8 && !isnan(q[i])) nan_block = 0;
        if (i >= 8 && !isfinite(q[i])) rest_finite = 0;
    }
    ok(rc == QID_OK && nan_block && rest_finite, "mxfp8: a block holding -Inf dequantizes to NaN, no error");

    static float big[1000];
    for (int i = 0; i < 1000; i++)
        big[i] = (float)i;
    size_t none = qid_quant_find_nonfinite(big, 1000);
    big[999] = INFINITY;
    size_t last = qid_quant_find_nonfinite(big, 1000);
    big[300] = -NAN;
    size_t mid = qid_quant_find_nonfinite(big, 1000);
    ok(none == 1000 && last == 999 && mid == 300 && qid_quant_find_nonfinite(big, 0) == 0,
       "find_nonfinite: none -> n, the first NaN/Inf index otherwise");
}

static void test_matrix_forms(void)
{
    enum { R = 7, C = 256 };
    static float w[R * C], q[R * C], q2[R * C], ref[R * C], scratch[C];
    static uint8_t packed[R * C * 2];
    uint64_t st = 12345;
    for (int i = 0; i < R * C; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        w[i] = (float)((int64_t)(st >> 33) % 20001 - 10000) * 1e-4f;
    }
    static const char *fmts[] = {"int4-g128-asym", "int3-channel", "mxfp4", "mxint3-b128", "nf4-b64", "fp4-b64"};
    for (size_t k = 0; k < sizeof fmts / sizeof fmts[0]; k++) {
        qid_quant_spec s = spec_of(fmts[k]);
        qid_error err;
        int rc = qid_quant_matrix(&s, w, q, R, C, "w", &err);
        const qid_quant_traits *t = qid_quant_traits_of(s.type);
        for (int r = 0; r < R; r++)
            t->quantize_ref(&s, w + r * C, ref + r * C, C);
        memcpy(q2, w, sizeof w);
        rc |= qid_quant_matrix_inplace(&s, q2, R, C, scratch, "w", &err);
        int same = memcmp(q, ref, sizeof q) == 0 && memcmp(q, q2, sizeof q) == 0;
        if (R * qid_quant_row_bytes(&s, C) > sizeof packed) bail("packed buffer too small");
        rc |= qid_quant_encode_matrix(&s, w, R, C, packed, "w", &err);
        qid_quant_decode_matrix(&s, packed, R, C, q2);
        same = same && memcmp(q, q2, sizeof q) == 0;
        ok(rc == QID_OK && same, "%s: matrix, in-place and decode(encode) all equal the reference kernel bitwise",
           fmts[k]);
        /* GPTQ's view: params of each group, then every value through quantize_value. */
        const size_t g = s.block ? s.block : C;
        for (int r = 0; r < R; r++)
            for (size_t i = 0; i < C; i += g) {
                qid_quant_params p;
                t->params(&s, w + r * C + i, g, &p);
                for (size_t j = 0; j < g; j++)
                    q2[r * C + i + j] = t->quantize_value(&s, &p, w[r * C + i + j]);
            }
        ok(memcmp(q2, ref, sizeof q2) == 0, "%s: params + quantize_value equal the reference kernel bitwise", fmts[k]);
    }
    qid_quant_force_scalar(1);
    const char *forced = qid_quant_simd();
    qid_quant_spec s = spec_of("mxfp6-e3m2");
    qid_error err;
    qid_quant_matrix(&s, w, q, R, C, "w", &err);
    qid_quant_force_scalar(0);
    qid_quant_matrix(&s, w, q2, R, C, "w", &err);
    diag("vector path: %s", qid_quant_simd());
    ok(strcmp(forced, "scalar") == 0 && memcmp(q, q2, sizeof q) == 0,
       "force_scalar switches the fast kernels to the reference; same bits");
}

int main(void)
{
    plan(N_GOOD + 1 + N_BAD + 1 + 1 + 2 + 7 + 10 + 6 + 6 + 1);
    test_names();
    test_traits();
    test_matrix_errors();
    test_matrix_forms();
    return 0;
}
