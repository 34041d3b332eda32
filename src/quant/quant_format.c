/* quant_format.c - the format traits table, format names, packed sizes, and
 * the matrix-level entry points that check shapes and non-finite weights
 * before running the kernels of quant_rtn.c, quant_mx.c, quant_bnb.c,
 * quant_gguf.c and quant_gguf_k.c.
 *
 * Does not: quantize anything itself (kernels live in the family files), or
 * allocate (the in-place entry takes a caller-owned scratch row).
 */
#include "quant.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- MX element types (OCP MX v1.0) ----------------------------------------
 * FP element max normals: E5M2 1.75 * 2^15, E4M3 1.75 * 2^8 (S.1111.111 is
 * NaN, so S.1111.110 = 448 is the largest), E3M2 1.75 * 2^4, E2M3
 * 1.875 * 2^2, E2M1 1.5 * 2^2. No FP6/FP4 element has Inf or NaN. */
static const qid_mx_elem mx_e2m1 = {
    .name = "e2m1", .bits = 4, .ebits = 2, .mbits = 1, .bias = 1, .emin = 0, .emax = 2, .max_norm = 6.0f};
static const qid_mx_elem mx_e3m2 = {
    .name = "e3m2", .bits = 6, .ebits = 3, .mbits = 2, .bias = 3, .emin = -2, .emax = 4, .max_norm = 28.0f};
static const qid_mx_elem mx_e2m3 = {
    .name = "e2m3", .bits = 6, .ebits = 2, .mbits = 3, .bias = 1, .emin = 0, .emax = 2, .max_norm = 7.5f};
static const qid_mx_elem mx_e4m3 = {.name = "e4m3",
                                    .bits = 8,
                                    .ebits = 4,
                                    .mbits = 3,
                                    .bias = 7,
                                    .emin = -6,
                                    .emax = 8,
                                    .max_norm = 448.0f,
                                    .has_nan = 1};
static const qid_mx_elem mx_e5m2 = {.name = "e5m2",
                                    .bits = 8,
                                    .ebits = 5,
                                    .mbits = 2,
                                    .bias = 15,
                                    .emin = -14,
                                    .emax = 15,
                                    .max_norm = 57344.0f,
                                    .has_inf = 1,
                                    .has_nan = 1};
/* MXINTd: bits come from the spec; emax_elem is 0 (elements lie in [-2, 2)),
 * max_norm is filled per call as (2^(d-1) - 1) / 2^(d-2). */
static const qid_mx_elem mx_int = {.name = "int", .bits = 0, .ebits = 0, .mbits = 0, .emin = 0, .emax = 0};

/* ---- packed block layouts ------------------------------------------------
 * The fixed formats as C structs, so that the table's byte counts are
 * checked against a layout a reader can see (ggml style). A GGUF block is
 * header + 32 x bits / 8 bytes, which qid_quant_block_bytes computes too. */
#define QID_MX_BLOCK 32
typedef struct {
    uint8_t e8m0;
    uint8_t qs[QID_MX_BLOCK * 4 / 8];
} qid_block_mxfp4;
typedef struct {
    uint8_t e8m0;
    uint8_t qs[QID_MX_BLOCK * 6 / 8];
} qid_block_mxfp6;
typedef struct {
    uint8_t e8m0;
    uint8_t qs[QID_MX_BLOCK * 8 / 8];
} qid_block_mxfp8;
typedef struct {
    uint8_t absmax[4]; /* float32, little-endian */
    uint8_t qs[64 / 2];
} qid_block_nf4_b64;
/* ggml's legacy blocks (ggml-common.h), fp16 fields as bytes. */
#define QID_GGUF_BLOCK 32
typedef struct {
    uint8_t d[2];
    int8_t qs[QID_GGUF_BLOCK];
} qid_block_q8_0;
typedef struct {
    uint8_t d[2];
    uint8_t qs[QID_GGUF_BLOCK / 2];
} qid_block_q4_0;
typedef struct {
    uint8_t d[2], m[2];
    uint8_t qs[QID_GGUF_BLOCK / 2];
} qid_block_q4_1;
typedef struct {
    uint8_t d[2];
    uint8_t qh[4];
    uint8_t qs[QID_GGUF_BLOCK / 2];
} qid_block_q5_0;
typedef struct {
    uint8_t d[2], m[2];
    uint8_t qh[4];
    uint8_t qs[QID_GGUF_BLOCK / 2];
} qid_block_q5_1;
/* ggml's k-quant super-blocks and IQ4_NL (ggml-common.h), fp16 fields as bytes. */
#define QID_GGUF_SUPER 256
typedef struct {
    uint8_t scales[QID_GGUF_SUPER / 16];
    uint8_t qs[QID_GGUF_SUPER / 4];
    uint8_t d[2], dmin[2];
} qid_block_q2_k;
typedef struct {
    uint8_t hmask[QID_GGUF_SUPER / 8];
    uint8_t qs[QID_GGUF_SUPER / 4];
    uint8_t scales[12];
    uint8_t d[2];
} qid_block_q3_k;
typedef struct {
    uint8_t d[2], dmin[2];
    uint8_t scales[12];
    uint8_t qs[QID_GGUF_SUPER / 2];
} qid_block_q4_k;
typedef struct {
    uint8_t d[2], dmin[2];
    uint8_t scales[12];
    uint8_t qh[QID_GGUF_SUPER / 8];
    uint8_t qs[QID_GGUF_SUPER / 2];
} qid_block_q5_k;
typedef struct {
    uint8_t ql[QID_GGUF_SUPER / 2];
    uint8_t qh[QID_GGUF_SUPER / 4];
    int8_t scales[QID_GGUF_SUPER / 16];
    uint8_t d[2];
} qid_block_q6_k;
typedef struct {
    uint8_t d[2];
    uint8_t qs[QID_GGUF_BLOCK / 2];
} qid_block_iq4_nl;
_Static_assert(sizeof(qid_block_q2_k) == 84, "q2_k is 2.625 bits per weight");
_Static_assert(sizeof(qid_block_q3_k) == 110, "q3_k is 3.4375 bits per weight");
_Static_assert(sizeof(qid_block_q4_k) == 144, "q4_k is 4.5 bits per weight");
_Static_assert(sizeof(qid_block_q5_k) == 176, "q5_k is 5.5 bits per weight");
_Static_assert(sizeof(qid_block_q6_k) == 210, "q6_k is 6.5625 bits per weight");
_Static_assert(sizeof(qid_block_iq4_nl) == 18, "iq4_nl is 4.5 bits per weight");
_Static_assert(sizeof(qid_block_q8_0) == 34, "q8_0 is 8.5 bits per weight");
_Static_assert(sizeof(qid_block_q4_0) == 18, "q4_0 is 4.5 bits per weight");
_Static_assert(sizeof(qid_block_q4_1) == 20, "q4_1 is 5 bits per weight");
_Static_assert(sizeof(qid_block_q5_0) == 22, "q5_0 is 5.5 bits per weight");
_Static_assert(sizeof(qid_block_q5_1) == 24, "q5_1 is 6 bits per weight");
_Static_assert(sizeof(qid_block_mxfp4) == 17, "mxfp4 block is 32 x 4 bits + E8M0");
_Static_assert(sizeof(qid_block_mxfp6) == 25, "mxfp6 block is 32 x 6 bits + E8M0");
_Static_assert(sizeof(qid_block_mxfp8) == 33, "mxfp8 / mxint8 block is 32 x 8 bits + E8M0");
_Static_assert(sizeof(qid_block_nf4_b64) == 36, "nf4/fp4 block is f32 absmax + 64 x 4 bits");

/* What every row of a family shares (designated initializers, so a row
 * reads as one format's whole entry). */
#define QUANT_FAMILY_INT                                                                                               \
    .kind = QID_QUANT_KIND_INT, .scale_bytes = 5, .rejects_nonfinite = 1, .fixed_blocks = 0,                           \
    .quantize_ref = qid_rtn_quantize_ref, .quantize_fast = qid_rtn_quantize_fast, .encode = qid_rtn_encode,            \
    .decode = qid_rtn_decode, .params = qid_rtn_params, .quantize_value = qid_rtn_quantize_value
#define QUANT_FAMILY_MX                                                                                                \
    .kind = QID_QUANT_KIND_MX, .block = QID_MX_BLOCK, .scale_bytes = 1, .rejects_nonfinite = 0, .fixed_blocks = 1,     \
    .quantize_ref = qid_mx_quantize_ref, .quantize_fast = qid_mx_quantize_fast, .encode = qid_mx_encode,               \
    .decode = qid_mx_decode, .params = qid_mx_params, .quantize_value = qid_mx_quantize_value
#define QUANT_FAMILY_BNB                                                                                               \
    .kind = QID_QUANT_KIND_BNB, .bits = 4, .block = 64, .scale_bytes = 4, .block_bytes = sizeof(qid_block_nf4_b64),    \
    .rejects_nonfinite = 1, .fixed_blocks = 1, .quantize_ref = qid_bnb_quantize_ref,                                   \
    .quantize_fast = qid_bnb_quantize_fast, .encode = qid_bnb_encode, .decode = qid_bnb_decode,                        \
    .params = qid_bnb_params
#define QUANT_FAMILY_GGUF                                                                                              \
    .kind = QID_QUANT_KIND_GGUF, .block = QID_GGUF_BLOCK, .rejects_nonfinite = 1, .fixed_blocks = 1,                   \
    .quantize_ref = qid_gguf_quantize_ref, .quantize_fast = qid_gguf_quantize_fast, .encode = qid_gguf_encode,         \
    .decode = qid_gguf_decode, .params = qid_gguf_params, .quantize_value = qid_gguf_quantize_value

/* k-quants and IQ4_NL: scale_bytes is the block's header besides the codes
 * (fp16 d and dmin, the packed sub-block scales); no GPTQ rows but IQ4_NL's. */
#define QUANT_FAMILY_GGUF_K                                                                                            \
    .kind = QID_QUANT_KIND_GGUF, .block = QID_GGUF_SUPER, .rejects_nonfinite = 1, .fixed_blocks = 1,                   \
    .quantize_ref = qid_gguf_k_quantize_ref, .quantize_fast = qid_gguf_k_quantize_fast, .encode = qid_gguf_k_encode,   \
    .decode = qid_gguf_k_decode
/* A mixture: its default type's row, each tensor's own type from gguf_mix.h. */
#define QUANT_MIXTURE(nm, b, blk) .name = nm, .bits = b, .scale_bytes = 16, .block_bytes = sizeof(blk), .mixture = 1

static const qid_quant_traits quant_traits[QID_QTYPE_COUNT] = {
    [QID_QTYPE_INT] = {.name = "int", .bits = 0, .block = 0, .block_bytes = 0, QUANT_FAMILY_INT},
    [QID_QTYPE_MXFP4] =
        {.name = "mxfp4", .bits = 4, .block_bytes = sizeof(qid_block_mxfp4), .elem = &mx_e2m1, QUANT_FAMILY_MX},
    [QID_QTYPE_MXFP6_E3M2] =
        {.name = "mxfp6-e3m2", .bits = 6, .block_bytes = sizeof(qid_block_mxfp6), .elem = &mx_e3m2, QUANT_FAMILY_MX},
    [QID_QTYPE_MXFP6_E2M3] =
        {.name = "mxfp6-e2m3", .bits = 6, .block_bytes = sizeof(qid_block_mxfp6), .elem = &mx_e2m3, QUANT_FAMILY_MX},
    [QID_QTYPE_MXFP8_E4M3] =
        {.name = "mxfp8-e4m3", .bits = 8, .block_bytes = sizeof(qid_block_mxfp8), .elem = &mx_e4m3, QUANT_FAMILY_MX},
    [QID_QTYPE_MXFP8_E5M2] =
        {.name = "mxfp8-e5m2", .bits = 8, .block_bytes = sizeof(qid_block_mxfp8), .elem = &mx_e5m2, QUANT_FAMILY_MX},
    [QID_QTYPE_MXINT] = {.name = "mxint", .bits = 0, .block_bytes = 0, .elem = &mx_int, QUANT_FAMILY_MX},
    [QID_QTYPE_NF4] = {.name = "nf4", .quantize_value = qid_nf4_quantize_value, QUANT_FAMILY_BNB},
    [QID_QTYPE_FP4] = {.name = "fp4", .quantize_value = qid_fp4_quantize_value, QUANT_FAMILY_BNB},
    [QID_QTYPE_Q8_0] =
        {.name = "q8_0", .bits = 8, .scale_bytes = 2, .block_bytes = sizeof(qid_block_q8_0), QUANT_FAMILY_GGUF},
    [QID_QTYPE_Q4_0] =
        {.name = "q4_0", .bits = 4, .scale_bytes = 2, .block_bytes = sizeof(qid_block_q4_0), QUANT_FAMILY_GGUF},
    [QID_QTYPE_Q4_1] =
        {.name = "q4_1", .bits = 4, .scale_bytes = 4, .block_bytes = sizeof(qid_block_q4_1), QUANT_FAMILY_GGUF},
    [QID_QTYPE_Q5_0] =
        {.name = "q5_0", .bits = 5, .scale_bytes = 2, .block_bytes = sizeof(qid_block_q5_0), QUANT_FAMILY_GGUF},
    [QID_QTYPE_Q5_1] =
        {.name = "q5_1", .bits = 5, .scale_bytes = 4, .block_bytes = sizeof(qid_block_q5_1), QUANT_FAMILY_GGUF},
    [QID_QTYPE_Q2_K] =
        {.name = "q2_k", .bits = 2, .scale_bytes = 20, .block_bytes = sizeof(qid_block_q2_k), QUANT_FAMILY_GGUF_K},
    [QID_QTYPE_Q3_K] =
        {.name = "q3_k", .bits = 3, .scale_bytes = 14, .block_bytes = sizeof(qid_block_q3_k), QUANT_FAMILY_GGUF_K},
    [QID_QTYPE_Q4_K] =
        {.name = "q4_k", .bits = 4, .scale_bytes = 16, .block_bytes = sizeof(qid_block_q4_k), QUANT_FAMILY_GGUF_K},
    [QID_QTYPE_Q5_K] =
        {.name = "q5_k", .bits = 5, .scale_bytes = 16, .block_bytes = sizeof(qid_block_q5_k), QUANT_FAMILY_GGUF_K},
    [QID_QTYPE_Q6_K] =
        {.name = "q6_k", .bits = 6, .scale_bytes = 18, .block_bytes = sizeof(qid_block_q6_k), QUANT_FAMILY_GGUF_K},
    [QID_QTYPE_IQ4_NL] = {.name = "iq4_nl",
                          .kind = QID_QUANT_KIND_GGUF,
                          .bits = 4,
                          .block = QID_GGUF_BLOCK,
                          .scale_bytes = 2,
                          .block_bytes = sizeof(qid_block_iq4_nl),
                          .rejects_nonfinite = 1,
                          .fixed_blocks = 1,
                          .quantize_ref = qid_gguf_k_quantize_ref,
                          .quantize_fast = qid_gguf_k_quantize_fast,
                          .encode = qid_gguf_k_encode,
                          .decode = qid_gguf_k_decode,
                          .params = qid_iq4nl_params,
                          .quantize_value = qid_iq4nl_quantize_value},
    [QID_QTYPE_Q3_K_S] = {QUANT_MIXTURE("q3_k_s", 3, qid_block_q3_k), QUANT_FAMILY_GGUF_K},
    [QID_QTYPE_Q3_K_M] = {QUANT_MIXTURE("q3_k_m", 3, qid_block_q3_k), QUANT_FAMILY_GGUF_K},
    [QID_QTYPE_Q3_K_L] = {QUANT_MIXTURE("q3_k_l", 3, qid_block_q3_k), QUANT_FAMILY_GGUF_K},
    [QID_QTYPE_Q4_K_S] = {QUANT_MIXTURE("q4_k_s", 4, qid_block_q4_k), QUANT_FAMILY_GGUF_K},
    [QID_QTYPE_Q4_K_M] = {QUANT_MIXTURE("q4_k_m", 4, qid_block_q4_k), QUANT_FAMILY_GGUF_K},
    [QID_QTYPE_Q5_K_S] = {QUANT_MIXTURE("q5_k_s", 5, qid_block_q5_k), QUANT_FAMILY_GGUF_K},
    [QID_QTYPE_Q5_K_M] = {QUANT_MIXTURE("q5_k_m", 5, qid_block_q5_k), QUANT_FAMILY_GGUF_K},
};

const qid_quant_traits *qid_quant_traits_of(enum qid_qtype type)
{
    QID_CHECK((unsigned)type < QID_QTYPE_COUNT, "format type %d", (int)type);
    return &quant_traits[type];
}

const qid_mx_elem *qid_mx_elem_of(const qid_quant_spec *spec) { return qid_quant_traits_of(spec->type)->elem; }

/* ---- names ---------------------------------------------------------------- */

static const char quant_expected[] =
    "expected intB-gG[-sym|-asym][-mse], intB-channel[-sym|-asym][-mse], mxfp4, mxfp6-e3m2, mxfp6-e2m3, "
    "mxfp8-e4m3, mxfp8-e5m2, mxint8, mxintD, nf4, fp4 (MX/NF4/FP4 take -bB), q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, "
    "q3_k, q4_k, q5_k, q6_k, iq4_nl, or a mixture q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m";

/* Parses a run of decimal digits at *p into *out (saturating above
 * QID_QUANT_BLOCK_MAX); returns 0 when there is no digit. */
static int parse_count(const char **p, size_t *out)
{
    const char *s = *p;
    size_t v = 0;
    if (*s < '0' || *s > '9') return 0;
    while (*s >= '0' && *s <= '9') {
        if (v <= QID_QUANT_BLOCK_MAX) v = v * 10 + (size_t)(*s - '0');
        s++;
    }
    *p = s;
    *out = v;
    return 1;
}

/* The optional "-bB" block override at *p (MX, NF4, FP4). */
static int parse_block_suffix(const char *name, const char **p, size_t *block, qid_error *err)
{
    const char *s = *p;
    if (*s == '\0') return QID_OK;
    if (strncmp(s, "-b", 2) != 0)
        return qid_error_set(err, QID_E_INVALID, "unknown format '%s': unexpected '%s' (expected -bB, a block size)",
                             name, s);
    s += 2;
    size_t b = 0;
    if (!parse_count(&s, &b) || b == 0 || b > QID_QUANT_BLOCK_MAX)
        return qid_error_set(err, QID_E_INVALID, "unknown format '%s': block size must be 1..%zu", name,
                             (size_t)QID_QUANT_BLOCK_MAX);
    if (*s != '\0')
        return qid_error_set(err, QID_E_INVALID, "unknown format '%s': unexpected '%s' after the block size", name, s);
    *block = b;
    *p = s;
    return QID_OK;
}

static int parse_int_format(const char *name, qid_quant_spec *out, qid_error *err)
{
    const char *s = name + 3;
    size_t bits = 0;
    if (!parse_count(&s, &bits))
        return qid_error_set(err, QID_E_INVALID, "unknown format '%s': expected intB-gG or intB-channel with B = 2..8",
                             name);
    if (bits < 2 || bits > 8)
        return qid_error_set(err, QID_E_INVALID, "unknown format '%s': integer bits must be 2..8", name);
    qid_quant_spec spec = {.type = QID_QTYPE_INT, .bits = (int)bits, .sym = 1};
    if (strncmp(s, "-channel", 8) == 0) {
        s += 8;
        spec.block = 0;
    } else if (strncmp(s, "-g", 2) == 0) {
        s += 2;
        size_t g = 0;
        if (!parse_count(&s, &g) || g == 0 || g > QID_QUANT_BLOCK_MAX)
            return qid_error_set(err, QID_E_INVALID, "unknown format '%s': group size must be 1..%zu", name,
                                 (size_t)QID_QUANT_BLOCK_MAX);
        spec.block = g;
    } else {
        return qid_error_set(err, QID_E_INVALID,
                             "unknown format '%s': expected -gG (group of G columns) or -channel after int%zu", name,
                             bits);
    }
    if (strncmp(s, "-sym", 4) == 0 && (s[4] == '\0' || s[4] == '-')) {
        s += 4;
    } else if (strncmp(s, "-asym", 5) == 0 && (s[5] == '\0' || s[5] == '-')) {
        s += 5;
        spec.sym = 0;
    }
    if (strcmp(s, "-mse") == 0) {
        s += 4;
        spec.mse = 1;
    }
    if (*s != '\0')
        return qid_error_set(err, QID_E_INVALID,
                             "unknown format '%s': unexpected '%s' (expected -sym, -asym and/or -mse)", name, s);
    *out = spec;
    return QID_OK;
}

int qid_quant_parse(const char *name, qid_quant_spec *out, qid_error *err)
{
    if (!name || !*name) return qid_error_set(err, QID_E_INVALID, "empty format name: %s", quant_expected);
    if (strncmp(name, "int", 3) == 0) return parse_int_format(name, out, err);
    /* GGUF names: longest first so q4_k does not take q4_k_m */
    static const enum qid_qtype gguf[] = {
        QID_QTYPE_Q3_K_S, QID_QTYPE_Q3_K_M, QID_QTYPE_Q3_K_L, QID_QTYPE_Q4_K_S, QID_QTYPE_Q4_K_M, QID_QTYPE_Q5_K_S,
        QID_QTYPE_Q5_K_M, QID_QTYPE_Q8_0,   QID_QTYPE_Q4_0,   QID_QTYPE_Q4_1,   QID_QTYPE_Q5_0,   QID_QTYPE_Q5_1,
        QID_QTYPE_Q2_K,   QID_QTYPE_Q3_K,   QID_QTYPE_Q4_K,   QID_QTYPE_Q5_K,   QID_QTYPE_Q6_K,   QID_QTYPE_IQ4_NL,
    };
    for (size_t i = 0; i < sizeof gguf / sizeof gguf[0]; i++) {
        const qid_quant_traits *t = qid_quant_traits_of(gguf[i]);
        size_t len = strlen(t->name);
        if (strncmp(name, t->name, len) != 0) continue;
        if (name[len] != '\0')
            return qid_error_set(err, QID_E_INVALID,
                                 "unknown format '%s': GGUF formats take no suffix (ggml's block of %zu is fixed)",
                                 name, t->block);
        *out = (qid_quant_spec){.type = gguf[i], .bits = t->bits, .block = t->block, .sym = 1};
        return QID_OK;
    }

    qid_quant_spec spec = {.sym = 1};
    const char *s = NULL;
    /* Fixed-element families: longest names first so prefixes cannot clash. */
    static const struct {
        const char *prefix;
        enum qid_qtype type;
    } fixed[] = {
        {"mxfp4-e2m1", QID_QTYPE_MXFP4},
        {"mxfp4", QID_QTYPE_MXFP4},
        {"mxfp6-e3m2", QID_QTYPE_MXFP6_E3M2},
        {"mxfp6-e2m3", QID_QTYPE_MXFP6_E2M3},
        {"mxfp8-e4m3", QID_QTYPE_MXFP8_E4M3},
        {"mxfp8-e5m2", QID_QTYPE_MXFP8_E5M2},
        {"nf4", QID_QTYPE_NF4},
        {"fp4", QID_QTYPE_FP4},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        size_t len = strlen(fixed[i].prefix);
        if (strncmp(name, fixed[i].prefix, len) == 0 && (name[len] == '\0' || name[len] == '-')) {
            const qid_quant_traits *t = qid_quant_traits_of(fixed[i].type);
            spec.type = fixed[i].type;
            spec.bits = t->bits;
            spec.block = t->block;
            s = name + len;
            break;
        }
    }
    if (!s) {
        if (strcmp(name, "mxfp6") == 0 || strncmp(name, "mxfp6-", 6) == 0)
            return qid_error_set(err, QID_E_INVALID, "unknown format '%s': expected mxfp6-e3m2 or mxfp6-e2m3", name);
        if (strcmp(name, "mxfp8") == 0 || strncmp(name, "mxfp8-", 6) == 0)
            return qid_error_set(err, QID_E_INVALID, "unknown format '%s': expected mxfp8-e4m3 or mxfp8-e5m2", name);
        if (strncmp(name, "mxint", 5) == 0) {
            s = name + 5;
            size_t bits = 0;
            if (!parse_count(&s, &bits))
                return qid_error_set(err, QID_E_INVALID, "unknown format '%s': expected mxintD[-bB] with D = 2..8",
                                     name);
            if (bits < 2 || bits > 8)
                return qid_error_set(err, QID_E_INVALID, "unknown format '%s': MX integer bits must be 2..8", name);
            spec.type = QID_QTYPE_MXINT;
            spec.bits = (int)bits;
            spec.block = QID_MX_BLOCK;
        } else {
            return qid_error_set(err, QID_E_INVALID, "unknown format '%s': %s", name, quant_expected);
        }
    }
    int rc = parse_block_suffix(name, &s, &spec.block, err);
    if (rc) return rc;
    *out = spec;
    return QID_OK;
}

int qid_quant_spec_valid(const qid_quant_spec *spec)
{
    if (!spec || (unsigned)spec->type >= QID_QTYPE_COUNT) return 0;
    const qid_quant_traits *t = &quant_traits[spec->type];
    if (spec->block > QID_QUANT_BLOCK_MAX) return 0;
    if (t->bits ? spec->bits != t->bits : (spec->bits < 2 || spec->bits > 8)) return 0;
    if (spec->type == QID_QTYPE_INT) return (spec->sym == 0 || spec->sym == 1) && (spec->mse == 0 || spec->mse == 1);
    if (t->kind == QID_QUANT_KIND_GGUF && spec->block != t->block) return 0;
    return spec->block >= 1 && spec->sym == 1 && spec->mse == 0;
}

int qid_quant_name(const qid_quant_spec *spec, char *buf, size_t len)
{
    QID_CHECK(qid_quant_spec_valid(spec), "invalid quantizer spec");
    const qid_quant_traits *t = &quant_traits[spec->type];
    switch (spec->type) {
    case QID_QTYPE_INT: {
        const char *tail = spec->sym ? (spec->mse ? "sym-mse" : "sym") : (spec->mse ? "asym-mse" : "asym");
        if (spec->block == 0) return snprintf(buf, len, "int%d-channel-%s", spec->bits, tail);
        return snprintf(buf, len, "int%d-g%zu-%s", spec->bits, spec->block, tail);
    }
    case QID_QTYPE_MXINT:
        if (spec->block == t->block) return snprintf(buf, len, "mxint%d", spec->bits);
        return snprintf(buf, len, "mxint%d-b%zu", spec->bits, spec->block);
    case QID_QTYPE_NF4:
    case QID_QTYPE_FP4: return snprintf(buf, len, "%s-b%zu", t->name, spec->block);
    default:
        if (spec->block == t->block) return snprintf(buf, len, "%s", t->name);
        return snprintf(buf, len, "%s-b%zu", t->name, spec->block);
    }
}

/* ---- sizes ---------------------------------------------------------------- */

size_t qid_quant_block_bytes(const qid_quant_spec *spec, size_t len)
{
    const qid_quant_traits *t = qid_quant_traits_of(spec->type);
    if (t->kind == QID_QUANT_KIND_GGUF) return t->block_bytes;
    size_t code_bits = qid_mul_size(len, (size_t)spec->bits);
    return t->scale_bytes + code_bits / 8 + (code_bits % 8 != 0);
}

size_t qid_quant_row_bytes(const qid_quant_spec *spec, size_t n)
{
    if (n == 0) return 0;
    size_t b = spec->block ? spec->block : n;
    size_t full = n / b, rem = n % b;
    return qid_mul_size(full, qid_quant_block_bytes(spec, b)) + (rem ? qid_quant_block_bytes(spec, rem) : 0);
}

double qid_quant_bits_per_weight(const qid_quant_spec *spec, size_t n)
{
    if (n == 0) return 0.0;
    return 8.0 * (double)qid_quant_row_bytes(spec, n) / (double)n;
}

/* ---- bit streams shared by the INT and MX encoders ------------------------ */

void qid_quant_pack_bits(uint8_t *restrict out, size_t i, int bits, uint32_t code)
{
    size_t bit = i * (size_t)bits;
    for (int k = 0; k < bits; k++, bit++) {
        uint8_t mask = (uint8_t)(1u << (bit % 8));
        if (code >> k & 1u)
            out[bit / 8] |= mask;
        else
            out[bit / 8] &= (uint8_t)~mask;
    }
}

uint32_t qid_quant_unpack_bits(const uint8_t *restrict in, size_t i, int bits)
{
    size_t bit = i * (size_t)bits;
    uint32_t code = 0;
    for (int k = 0; k < bits; k++, bit++)
        code |= (uint32_t)(in[bit / 8] >> (bit % 8) & 1u) << k;
    return code;
}

/* ---- vector path selection ------------------------------------------------ */

static int quant_force_scalar_flag;

void qid_quant_force_scalar(int force) { quant_force_scalar_flag = force != 0; }

int qid_quant_use_avx2(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (quant_force_scalar_flag) return 0;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

const char *qid_quant_simd(void) { return qid_quant_use_avx2() ? "avx2" : "scalar"; }

/* ---- matrix level ----------------------------------------------------------- */

int qid_quant_check_shape(const qid_quant_spec *spec, size_t cols, const char *what, qid_error *err)
{
    char fmt[64];
    if (!qid_quant_spec_valid(spec)) return qid_error_set(err, QID_E_INVALID, "invalid quantizer spec");
    qid_quant_name(spec, fmt, sizeof fmt);
    if (spec->block && cols % spec->block != 0)
        return qid_error_set(err, QID_E_INVALID, "%s size %zu does not divide row length %zu of '%s' (format %s)",
                             quant_traits[spec->type].fixed_blocks ? "block" : "group", spec->block, cols,
                             what ? what : "tensor", fmt);
    return QID_OK;
}

size_t qid_quant_find_nonfinite(const float *x, size_t n)
{
    /* Checks the exponent bits so the test holds whatever the FP flags; the
     * OR-reduction over a chunk auto-vectorizes, the exact index is found
     * only in a chunk that has one. */
    const size_t chunk = 256;
    for (size_t i = 0; i < n; i += chunk) {
        size_t len = n - i < chunk ? n - i : chunk;
        uint32_t bad = 0;
        for (size_t j = 0; j < len; j++) {
            uint32_t u;
            memcpy(&u, &x[i + j], sizeof u);
            bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
        }
        if (bad)
            for (size_t j = 0; j < len; j++)
                if (!isfinite(x[i + j])) return i + j;
    }
    return n;
}

/* Shape and (INT, BNB) finiteness of a whole matrix. */
static int check_matrix(const qid_quant_spec *spec, const float *w, size_t rows, size_t cols, const char *what,
                        qid_error *err)
{
    int rc = qid_quant_check_shape(spec, cols, what, err);
    if (rc) return rc;
    const qid_quant_traits *t = &quant_traits[spec->type];
    size_t n = qid_mul_size(rows, cols);
    if (!t->rejects_nonfinite || n == 0) return QID_OK;
    size_t bad = qid_quant_find_nonfinite(w, n);
    if (bad == n) return QID_OK;
    char fmt[64];
    qid_quant_name(spec, fmt, sizeof fmt);
    float v = w[bad];
    return qid_error_set(err, QID_E_NUMERIC,
                         "non-finite weight %s at element %zu (row %zu, column %zu) of '%s': format %s needs finite "
                         "weights",
                         isnan(v) ? "nan" : (v > 0 ? "+inf" : "-inf"), bad, bad / cols, bad % cols,
                         what ? what : "tensor", fmt);
}

int qid_quant_matrix(const qid_quant_spec *spec, const float *restrict w, float *restrict q, size_t rows, size_t cols,
                     const char *what, qid_error *err)
{
    int rc = check_matrix(spec, w, rows, cols, what, err);
    if (rc) return rc;
    qid_quant_row_fn fn = quant_traits[spec->type].quantize_fast;
    for (size_t r = 0; r < rows; r++)
        fn(spec, w + r * cols, q + r * cols, cols);
    return QID_OK;
}

int qid_quant_matrix_inplace(const qid_quant_spec *spec, float *restrict w, size_t rows, size_t cols,
                             float *restrict scratch, const char *what, qid_error *err)
{
    int rc = check_matrix(spec, w, rows, cols, what, err);
    if (rc) return rc;
    qid_quant_row_fn fn = quant_traits[spec->type].quantize_fast;
    for (size_t r = 0; r < rows; r++) {
        fn(spec, w + r * cols, scratch, cols);
        memcpy(w + r * cols, scratch, cols * sizeof *scratch);
    }
    return QID_OK;
}

int qid_quant_encode_matrix(const qid_quant_spec *spec, const float *restrict w, size_t rows, size_t cols,
                            uint8_t *restrict out, const char *what, qid_error *err)
{
    int rc = check_matrix(spec, w, rows, cols, what, err);
    if (rc) return rc;
    qid_quant_encode_fn fn = quant_traits[spec->type].encode;
    size_t row_bytes = qid_quant_row_bytes(spec, cols);
    for (size_t r = 0; r < rows; r++)
        fn(spec, w + r * cols, cols, out + r * row_bytes);
    return QID_OK;
}

void qid_quant_decode_matrix(const qid_quant_spec *spec, const uint8_t *restrict in, size_t rows, size_t cols,
                             float *restrict q)
{
    QID_CHECK(qid_quant_spec_valid(spec), "invalid quantizer spec");
    qid_quant_decode_fn fn = quant_traits[spec->type].decode;
    size_t row_bytes = qid_quant_row_bytes(spec, cols);
    for (size_t r = 0; r < rows; r++)
        fn(spec, in + r * row_bytes, cols, q + r * cols);
}
