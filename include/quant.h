/* quant.h - in-memory weight quantizers: formats, kernels, packed codes, SQNR.
 *
 * Every quantizer works on a row-major weight matrix W[rows][cols] (rows =
 * output channels, cols = input features); groups and blocks run along a row.
 * A format is named by a string (`int4-g128-sym`, `mxfp4`, `nf4-b64`, ...)
 * that qid_quant_parse turns into a qid_quant_spec; one traits table
 * (qid_quant_traits_of) holds, per format family, the element width, the
 * default block, the packed bytes per block and the kernels, and is the single
 * source of every size.
 *
 * Families:
 *   INT   round-to-nearest integers with min-max scales exactly as the
 *         reference GPTQ quantizer (IST-DASLab/gptq quant.py), symmetric or
 *         asymmetric, per output channel or per group of G columns, optional
 *         MSE clipping search (grid 100, max shrink 0.8, norm 2.4).
 *   MX    OCP Microscaling Formats v1.0: E8M0 shared scale per block of 32
 *         (overridable), FP elements E2M1/E3M2/E2M3/E4M3/E5M2 or two's
 *         complement integers (MXINT8, and MXINTd-b block floating point).
 *   BNB   NF4 and FP4 as bitsandbytes' CUDA kernels define them (absmax per
 *         block of 64, overridable).
 *   GGUF  llama.cpp's legacy block formats Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 as
 *         ggml's reference quantizers (ggml-quants.c quantize_row_*_ref)
 *         write them: blocks of 32 (fixed), fp16 scale d (and minimum m),
 *         packed as ggml's block_q* structs; the k-quants Q2_K..Q6_K
 *         (super-blocks of 256 with quantized sub-block scales) and IQ4_NL
 *         (blocks of 32, non-linear table) as llama-quantize writes them
 *         without an importance matrix; and llama-quantize's named mixtures
 *         (q4_k_m, ...: one type per tensor, gguf_mix.h), whose kernels are
 *         those of their default type.
 *
 * Each family has a scalar `*_ref` kernel, which is the specification, and a
 * `*_fast` kernel (AVX2 when the CPU has it, chosen at run time) that gives
 * bit-identical results. The reference kernel is written as two steps that
 * the table also exports for GPTQ: the parameters of a group or block
 * (`params`: INT scale and zero, MX shared scale, NF4/FP4 absmax) and one
 * value quantized with them (`quantize_value`). Kernels never allocate and
 * never fail: shapes and non-finite inputs are checked by qid_quant_matrix
 * (tier-3 errors).
 *
 * Not here: GPTQ (gptq.h; it reaches the formats only through this table),
 * the `qid quantize` command, benchmarks.
 *
 * All functions are reentrant; none is collective over MPI.
 */
#ifndef QID_QUANT_H
#define QID_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* ---- formats ---------------------------------------------------------- */

enum qid_quant_kind {
    QID_QUANT_KIND_INT = 0,  /* RTN integer with float scale and zero point */
    QID_QUANT_KIND_MX = 1,   /* OCP MX: E8M0 shared scale + FP or INT elements */
    QID_QUANT_KIND_BNB = 2,  /* bitsandbytes 4-bit: float absmax + 16-entry code book */
    QID_QUANT_KIND_GGUF = 3, /* llama.cpp / ggml legacy blocks: fp16 scale (and min) per 32 */
};

/* One row of the traits table per format family. */
enum qid_qtype {
    QID_QTYPE_INT = 0,   /* intB-gG[-sym|-asym][-mse], intB-channel[...] */
    QID_QTYPE_MXFP4 = 1, /* mxfp4 (E2M1) */
    QID_QTYPE_MXFP6_E3M2 = 2,
    QID_QTYPE_MXFP6_E2M3 = 3,
    QID_QTYPE_MXFP8_E4M3 = 4,
    QID_QTYPE_MXFP8_E5M2 = 5,
    QID_QTYPE_MXINT = 6, /* mxint8 (OCP MXINT8) and mxintD[-bB] */
    QID_QTYPE_NF4 = 7,
    QID_QTYPE_FP4 = 8,
    QID_QTYPE_Q8_0 = 9,    /* ggml Q8_0: fp16 d, 32 x int8 */
    QID_QTYPE_Q4_0 = 10,   /* ggml Q4_0: fp16 d, 32 x 4 bits (code - 8) */
    QID_QTYPE_Q4_1 = 11,   /* ggml Q4_1: fp16 d and m, 32 x 4 bits */
    QID_QTYPE_Q5_0 = 12,   /* ggml Q5_0: fp16 d, 32 x 5 bits (code - 16) */
    QID_QTYPE_Q5_1 = 13,   /* ggml Q5_1: fp16 d and m, 32 x 5 bits */
    QID_QTYPE_Q2_K = 14,   /* ggml Q2_K: 256 = 16 x 16, 4-bit scales and mins, 2-bit codes */
    QID_QTYPE_Q3_K = 15,   /* ggml Q3_K: 256 = 16 x 16, 6-bit scales, 3-bit codes */
    QID_QTYPE_Q4_K = 16,   /* ggml Q4_K: 256 = 8 x 32, 6-bit scales and mins, 4-bit codes */
    QID_QTYPE_Q5_K = 17,   /* ggml Q5_K: 256 = 8 x 32, 6-bit scales and mins, 5-bit codes */
    QID_QTYPE_Q6_K = 18,   /* ggml Q6_K: 256 = 16 x 16, 8-bit scales, 6-bit codes */
    QID_QTYPE_IQ4_NL = 19, /* ggml IQ4_NL: fp16 d, 32 x 4-bit index into a 16-value table */
    /* llama-quantize's mixtures (gguf_mix.h): the kernels of their default type */
    QID_QTYPE_Q3_K_S = 20,
    QID_QTYPE_Q3_K_M = 21,
    QID_QTYPE_Q3_K_L = 22,
    QID_QTYPE_Q4_K_S = 23,
    QID_QTYPE_Q4_K_M = 24,
    QID_QTYPE_Q5_K_S = 25,
    QID_QTYPE_Q5_K_M = 26,
    QID_QTYPE_COUNT = 27,
};

/* A parsed format: everything a kernel needs. Fill it with qid_quant_parse;
 * a spec built by hand must satisfy qid_quant_spec_valid. */
typedef struct qid_quant_spec {
    enum qid_qtype type;
    int bits;     /* element bits: INT and MXINT 2..8, fixed by the table otherwise */
    size_t block; /* elements per group/block along a row; 0 = the whole row (INT per channel) */
    int sym;      /* INT: 1 symmetric (default), 0 asymmetric; 1 for the other families */
    int mse;      /* INT: 1 = MSE clipping search; 0 otherwise */
} qid_quant_spec;

/* Largest block or group size a name may ask for. */
#define QID_QUANT_BLOCK_MAX ((size_t)1 << 20)

/* Fused quantize-dequantize of one row x[n] into y[n] (x, y do not overlap).
 * The row is cut into blocks of spec->block elements (the whole row when 0);
 * a last block shorter than spec->block is quantized on its own.
 * Preconditions (not checked): spec valid; finite x for INT and BNB. */
typedef void (*qid_quant_row_fn)(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n);
/* Packed encoding of one row x[n] into out[qid_quant_row_bytes(spec, n)]. */
typedef void (*qid_quant_encode_fn)(const qid_quant_spec *spec, const float *restrict x, size_t n,
                                    uint8_t *restrict out);
/* Decoding of a packed row in[qid_quant_row_bytes(spec, n)] into y[n]. */
typedef void (*qid_quant_decode_fn)(const qid_quant_spec *spec, const uint8_t *restrict in, size_t n,
                                    float *restrict y);

/* The parameters of one group or block: what quantizing one of its values
 * needs besides the value and the spec. */
typedef struct qid_quant_params {
    float scale; /* INT: the scale; MX: the shared scale X = 2^s (NaN for a block
                    holding NaN or Inf); NF4/FP4: absmax; GGUF: the stored d
                    (fp16-rounded) */
    float aux;   /* INT: the zero point; NF4/FP4: 1.0f / absmax as bitsandbytes
                    computes it; MX: 0; GGUF: id, the float32 reciprocal of the
                    unrounded d (0 when d is 0) the codes are taken with */
    float min;   /* GGUF _1 types: the float32 block minimum the codes are
                    offset by; 0 otherwise */
    float min_q; /* GGUF _1 types: the stored minimum m (fp16-rounded) added
                    back on dequantization; 0 otherwise */
} qid_quant_params;

/* The parameters of one group or block x[n] (n >= 1; finite for INT and
 * BNB), found exactly as the family's reference row kernel finds them. */
typedef void (*qid_quant_params_fn)(const qid_quant_spec *spec, const float *restrict x, size_t n, qid_quant_params *p);
/* One value x of a group with parameters p, quantized and dequantized bit
 * for bit as the reference row kernel does it (for an MX block with a NaN
 * scale the kernel writes NaN without calling this). */
typedef float (*qid_quant_value_fn)(const qid_quant_spec *spec, const qid_quant_params *p, float x);

/* An MX element data type (OCP MX v1.0 element types). For FP elements, values
 * are (-1)^s 2^(E-bias) 1.M (normal) or (-1)^s 2^(1-bias) 0.M (subnormal).
 * For INT elements (ebits 0), values are the two's complement code times
 * 2^-(bits-2): MXINT8 is 8-bit with implicit scale 2^-6. */
typedef struct qid_mx_elem {
    const char *name; /* "e2m1", "e3m2", "e2m3", "e4m3", "e5m2", "int" */
    int bits;         /* total bits including the sign; 0 = given by the spec (INT) */
    int ebits, mbits; /* exponent and mantissa field widths; ebits 0 = integer */
    int bias;         /* exponent bias (FP) */
    int emin;         /* exponent of the smallest normal, 1 - bias (FP) */
    int emax;         /* emax_elem: exponent of the largest normal (0 for INT) */
    float max_norm;   /* largest finite magnitude; 0 in the INT entry (it depends on d) */
    int has_inf;      /* E5M2 only */
    int has_nan;      /* E5M2, E4M3 */
} qid_mx_elem;

typedef struct qid_quant_traits {
    const char *name; /* base name: "int", "mxfp4", "mxfp6-e3m2", "mxint", "nf4", ... */
    enum qid_quant_kind kind;
    int bits;                /* element bits; 0 = from the name (2..8) */
    size_t block;            /* default elements per block; 0 = from the name */
    size_t scale_bytes;      /* packed per-block header: INT 5 (f32 scale, u8 zero),
                                MX 1 (E8M0), BNB 4 (f32 absmax), GGUF 2 (fp16 d)
                                or 4 (fp16 d and m) */
    size_t block_bytes;      /* packed bytes of one default block; 0 = depends on the name */
    const qid_mx_elem *elem; /* MX element type; NULL for INT and BNB */
    int rejects_nonfinite;   /* 1: NaN/Inf input is an error (INT, BNB); 0: MX spec semantics */
    /* 1 (MX, NF4/FP4): blocks are fixed runs of the stored row, each with its
     * own stored scale, so GPTQ takes micro-blocks of whole blocks (by
     * default one block), allows act-order only with static groups, and
     * finds a block's parameters from the error-updated weights.
     * 0 (INT): groups as the reference GPTQ forms them: column by column by
     * default, runs of permuted columns under act-order, parameters from W
     * as it stood at the start of the lazy block. Messages call spec->block
     * a "block" (1) or a "group" (0). */
    int fixed_blocks;
    qid_quant_row_fn quantize_ref;
    qid_quant_row_fn quantize_fast;
    qid_quant_encode_fn encode;
    qid_quant_decode_fn decode;
    qid_quant_params_fn params;        /* GPTQ: a group's or block's parameters; NULL
                                          (k-quants, mixtures): no GPTQ path */
    qid_quant_value_fn quantize_value; /* GPTQ: one value with given parameters */
    int mixture;                       /* 1: a llama-quantize mixture (gguf_mix.h), whose
                                          tensors each get their own type */
} qid_quant_traits;

/* The traits of a family; type must be < QID_QTYPE_COUNT (checked, tier 1). */
const qid_quant_traits *qid_quant_traits_of(enum qid_qtype type);

/* Parses a format name into spec. Names (case-sensitive, lower case):
 *   intB-gG[-sym|-asym][-mse]        B in 2..8, G in 1..QID_QUANT_BLOCK_MAX
 *   intB-channel[-sym|-asym][-mse]   per output channel
 *   mxfp4 (= mxfp4-e2m1), mxfp6-e3m2, mxfp6-e2m3, mxfp8-e4m3, mxfp8-e5m2,
 *   mxint8, mxintD (D in 2..8), nf4, fp4
 *   and for MX/NF4/FP4 an optional block override `-bB` (mxfp4-b16,
 *   mxint3-b128, nf4-b64), B in 1..QID_QUANT_BLOCK_MAX;
 *   q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl (ggml's block of 32, no override),
 *   q2_k, q3_k, q4_k, q5_k, q6_k (super-block of 256), and the mixtures
 *   q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m.
 * Symmetric is the default for INT. On failure returns QID_E_INVALID with a
 * one-line message naming the name and what was expected, e.g.
 *   unknown format 'int9-g128': integer bits must be 2..8
 * and leaves spec untouched. */
int qid_quant_parse(const char *name, qid_quant_spec *spec, qid_error *err);

/* 1 if spec is one qid_quant_parse can produce. */
int qid_quant_spec_valid(const qid_quant_spec *spec);

/* Writes the canonical name of spec (parse(name(s)) == s) into buf, always
 * NUL-terminated when len > 0; returns the length it needed, as snprintf. */
int qid_quant_name(const qid_quant_spec *spec, char *buf, size_t len);

/* Bytes of one packed block of `len` elements (len <= block; the header plus
 * ceil(len * bits / 8) code bytes; a GGUF block is always the whole ggml
 * struct, a short one padded with zero codes). */
size_t qid_quant_block_bytes(const qid_quant_spec *spec, size_t len);
/* Bytes of a packed row of n elements (full blocks plus a shorter last one). */
size_t qid_quant_row_bytes(const qid_quant_spec *spec, size_t n);
/* Storage bits per weight of a row of n elements, headers included
 * (e.g. mxfp4: 17 * 8 / 32 = 4.25). */
double qid_quant_bits_per_weight(const qid_quant_spec *spec, size_t n);

/* ---- matrix level (tier-3 errors) ------------------------------------ */

/* QID_OK when a row of `cols` elements can be quantized with spec; otherwise
 * QID_E_INVALID with e.g.
 *   group size 128 does not divide row length 100 of 'layers.0.mlp.fc1.weight'
 * `what` names the tensor in messages (may be NULL). */
int qid_quant_check_shape(const qid_quant_spec *spec, size_t cols, const char *what, qid_error *err);

/* Index of the first NaN or Inf in x[n], or n when all are finite. */
size_t qid_quant_find_nonfinite(const float *x, size_t n);

/* Quantizes and dequantizes w[rows][cols] into q[rows][cols] (no overlap)
 * with the fast kernel. Checks the shape, and for INT and BNB formats that
 * every weight is finite (QID_E_NUMERIC naming the element index, row and
 * column); MX formats follow the spec instead (a block holding NaN or Inf
 * dequantizes to NaN). On error q is left partly written. */
int qid_quant_matrix(const qid_quant_spec *spec, const float *restrict w, float *restrict q, size_t rows, size_t cols,
                     const char *what, qid_error *err);

/* In-place form: w[rows][cols] is replaced by its quantized values; scratch
 * holds `cols` floats owned by the caller. On error w is unchanged. */
int qid_quant_matrix_inplace(const qid_quant_spec *spec, float *restrict w, size_t rows, size_t cols,
                             float *restrict scratch, const char *what, qid_error *err);

/* Packed encoding of w[rows][cols] into out[rows * qid_quant_row_bytes(spec,
 * cols)], rows one after the other; same checks as qid_quant_matrix. */
int qid_quant_encode_matrix(const qid_quant_spec *spec, const float *restrict w, size_t rows, size_t cols,
                            uint8_t *restrict out, const char *what, qid_error *err);
/* Decoding of what qid_quant_encode_matrix wrote. Never fails. */
void qid_quant_decode_matrix(const qid_quant_spec *spec, const uint8_t *restrict in, size_t rows, size_t cols,
                             float *restrict q);

/* Active vector path: "avx2" or "scalar". */
const char *qid_quant_simd(void);
/* 1 when the *_fast kernels take their AVX2 path (x86-64 with AVX2 and FMA,
 * not forced off). */
int qid_quant_use_avx2(void);
/* force != 0 makes every *_fast kernel use the scalar reference (for
 * benchmarks); not thread-safe against running kernels. */
void qid_quant_force_scalar(int force);

/* Bit streams of the INT and MX packed layouts: code i occupies bits
 * [i*bits, i*bits + bits) of out, least significant bit first. Packing
 * overwrites exactly those bits. bits is 1..32. */
void qid_quant_pack_bits(uint8_t *restrict out, size_t i, int bits, uint32_t code);
uint32_t qid_quant_unpack_bits(const uint8_t *restrict in, size_t i, int bits);

/* ---- INT: RTN with reference-GPTQ min-max scales ---------------------- */

/* Computes scale and zero of one group x[n] (n >= 1, finite) for `bits`
 * (2..8) exactly as quant.py's Quantizer.find_params on a weight row:
 * xmin = min(min x, 0), xmax = max(max x, 0); symmetric: xmax = max(|xmin|,
 * xmax) and, when xmin < 0, xmin = -xmax; an all-zero group uses [-1, 1];
 * scale = (xmax - xmin) / maxq with maxq = 2^bits - 1; zero = (maxq + 1) / 2
 * (sym) or round(-xmin / scale) (asym). With mse, the search over
 * p = 1 - i/100, i = 0..79, keeps the candidate with the least
 * sum |Q(x) - x|^2.4 (first wins on ties). Ranges, scales, zero points and
 * Q(x) are float32 as in torch; the MSE error terms are not: each
 * |Q(x) - x|^2.4 is taken in double from the float32 difference and summed in
 * double (torch takes the power and the sum in float32), which can change
 * the pick on a near tie and in groups of subnormal weights, whose terms
 * underflow to zero in float32 (all candidates tie there for torch). */
void qid_rtn_find_params(const float *x, size_t n, int bits, int sym, int mse, float *scale, float *zero);

/* One value: scale * (clamp(round_half_even(x / scale) + zero, 0, maxq) - zero). */
float qid_rtn_quantize1(float x, float scale, float zero, float maxq);

/* The INT rows of the traits table (qid_quant_params_fn, qid_quant_value_fn):
 * qid_rtn_find_params of spec's bits, sym and mse into p->scale, p->aux;
 * qid_rtn_quantize1 with maxq = 2^bits - 1. */
void qid_rtn_params(const qid_quant_spec *spec, const float *restrict x, size_t n, qid_quant_params *p);
float qid_rtn_quantize_value(const qid_quant_spec *spec, const qid_quant_params *p, float x);

/* Row kernels of the INT family (see qid_quant_row_fn). */
void qid_rtn_quantize_ref(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n);
void qid_rtn_quantize_fast(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n);
/* Packed block: f32 scale (little-endian), u8 zero point, then the codes
 * q in 0..maxq as a bit stream, element i at bits [i*B, i*B+B), LSB first. */
void qid_rtn_encode(const qid_quant_spec *spec, const float *restrict x, size_t n, uint8_t *restrict out);
void qid_rtn_decode(const qid_quant_spec *spec, const uint8_t *restrict in, size_t n, float *restrict y);

/* ---- MX: OCP Microscaling Formats v1.0 --------------------------------- */

/* E8M0 code of the scale X = 2^127 .. 2^-127 (codes 254 .. 0); 255 is NaN. */
#define QID_MX_E8M0_NAN 0xFF

/* The element type of an MX spec (NULL for other families). */
const qid_mx_elem *qid_mx_elem_of(const qid_quant_spec *spec);

/* Shared exponent of a block with largest magnitude amax (finite, >= 0):
 * floor(log2 amax) - emax_elem clamped to [-127, 127]; -127 when amax == 0.
 * The E8M0 code is the result + 127. */
int qid_mx_shared_exp(float amax, const qid_mx_elem *e);

/* Rounds v (an already scaled value V_i / X) to the element type `e` with
 * `bits` element bits: round to nearest, ties to even, saturating to
 * +-max_norm, subnormals kept; for INT elements to the nearest multiple of
 * 2^-(bits-2) in [-2, 2 - 2^-(bits-2)], -0 becomes +0 (no such code).
 * MXINT8: qid uses the two's-complement code -128 (-2 = -128/64) where RNE
 * gives it; microsoft/microxcaling clamps to +-127/64 instead; OCP MX v1.0
 * allows both. */
float qid_mx_elem_round(const qid_mx_elem *e, int bits, float v);
/* The code of an element value returned by qid_mx_elem_round, and back.
 * Decoding maps E4M3 S.1111.111 to NaN and E5M2 exponent 31 to Inf/NaN. */
uint32_t qid_mx_elem_encode(const qid_mx_elem *e, int bits, float v);
float qid_mx_elem_decode(const qid_mx_elem *e, int bits, uint32_t code);

/* The MX rows of the traits table: p->scale = X = 2^qid_mx_shared_exp(max
 * |x|) (NaN when x holds NaN or Inf), p->aux = 0; a value is
 * X * qid_mx_elem_round(x / X). */
void qid_mx_params(const qid_quant_spec *spec, const float *restrict x, size_t n, qid_quant_params *p);
float qid_mx_quantize_value(const qid_quant_spec *spec, const qid_quant_params *p, float x);

void qid_mx_quantize_ref(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n);
void qid_mx_quantize_fast(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n);
/* Packed block: the E8M0 byte, then the element codes as a bit stream,
 * element i at bits [i*d, i*d+d), LSB first (MXFP4: element 2j in the low
 * nibble of byte j). A block with NaN or Inf gets scale 0xFF and codes 0. */
void qid_mx_encode(const qid_quant_spec *spec, const float *restrict x, size_t n, uint8_t *restrict out);
void qid_mx_decode(const qid_quant_spec *spec, const uint8_t *restrict in, size_t n, float *restrict y);

/* ---- NF4 / FP4 as bitsandbytes --------------------------------------- */

/* bitsandbytes' dequantization tables (csrc/kernels.cu), indexed by code.
 * NF4 is sorted ascending; FP4 bit 3 is the sign and bits 0-2 index
 * {0, 0.0625, 8, 12, 4, 6, 2, 3} / 12. */
extern const float qid_nf4_code[16];
extern const float qid_fp4_code[16];

/* Codes of a normalized value x = w * (1 / absmax) chosen by bitsandbytes'
 * decision trees (dQuantizeNF4 / dQuantizeFP4): x > threshold goes up, so a
 * value exactly on a threshold takes the lower code; NaN gives code 0. */
uint8_t qid_nf4_encode1(float x);
uint8_t qid_fp4_encode1(float x);

/* The NF4/FP4 rows of the traits table: p->scale = absmax = max |x|,
 * p->aux = 1.0f / absmax; a value is code[encode1(x * p->aux)] * absmax
 * with NF4's or FP4's tree and table. */
void qid_bnb_params(const qid_quant_spec *spec, const float *restrict x, size_t n, qid_quant_params *p);
float qid_nf4_quantize_value(const qid_quant_spec *spec, const qid_quant_params *p, float x);
float qid_fp4_quantize_value(const qid_quant_spec *spec, const qid_quant_params *p, float x);

void qid_bnb_quantize_ref(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n);
void qid_bnb_quantize_fast(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n);
/* Packed block: f32 absmax (little-endian), then two codes per byte with the
 * first element in the high nibble, as bitsandbytes stores them. */
void qid_bnb_encode(const qid_quant_spec *spec, const float *restrict x, size_t n, uint8_t *restrict out);
void qid_bnb_decode(const qid_quant_spec *spec, const uint8_t *restrict in, size_t n, float *restrict y);

/* ---- GGUF legacy blocks as ggml's reference quantizers -------------------- */

/* IEEE binary16 <-> float32: to half rounds to nearest even (subnormals kept,
 * overflow to +-Inf, NaN stays NaN), as GGML_FP32_TO_FP16 and numpy's
 * astype(float16); to float is exact. */
uint16_t qid_gguf_f32_to_f16(float f);
float qid_gguf_f16_to_f32(uint16_t h);

/* The GGUF rows of the traits table. params (x[n], finite) as the type's
 * quantize_row_*_ref: Q8_0 d = amax / 127; Q4_0, Q5_0 d = max / -8, / -16
 * with max the first element of largest magnitude (signed); Q4_1, Q5_1
 * d = (max - min) / 15, / 31 and min; id = d ? 1.0f / d : 0; p->scale =
 * f16(d), p->min_q = f16(min). A value: its code as the reference takes it,
 * times p->scale (plus p->min_q for the _1 types). */
void qid_gguf_params(const qid_quant_spec *spec, const float *restrict x, size_t n, qid_quant_params *p);
float qid_gguf_quantize_value(const qid_quant_spec *spec, const qid_quant_params *p, float x);
/* The code of x in a block with parameters p: Q8_0 -127..127 (as int8),
 * Q4_0 0..15, Q4_1 0..15, Q5_0 0..31, Q5_1 0..31. */
int qid_gguf_code(const qid_quant_spec *spec, const qid_quant_params *p, float x);

void qid_gguf_quantize_ref(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n);
void qid_gguf_quantize_fast(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n);
/* Packed blocks exactly as ggml's block_q8_0 / q4_0 / q4_1 / q5_0 / q5_1
 * (little-endian fp16 d, [fp16 m], [u32 qh: bit j = bit 4 of code j], then
 * qs: Q8_0 one int8 per element; 4/5-bit types element j < 16 in the low
 * nibble and j + 16 in the high nibble of byte j), so a row of whole blocks
 * is the bytes llama.cpp writes into a GGUF file. */
void qid_gguf_encode(const qid_quant_spec *spec, const float *restrict x, size_t n, uint8_t *restrict out);
void qid_gguf_decode(const qid_quant_spec *spec, const uint8_t *restrict in, size_t n, float *restrict y);

/* ---- GGUF k-quants and IQ4_NL as llama-quantize without an imatrix ------ */

/* The rows of the traits table for Q2_K..Q6_K, IQ4_NL and the mixtures
 * (which use their default type's kernels): each block (256 or 32) encoded
 * as ggml's quantize_q*_K / quantize_iq4_nl with no importance matrix and
 * decoded as dequantize_row_*; the fused kernel is encode then decode, so
 * it is bit-identical to llama.cpp's stored weights (the fast one runs the
 * scale searches of 8 sub-blocks at once in AVX2 lanes, same bits). A short last block is
 * quantized as if padded with zeros. Packed blocks are ggml's block_q2_K ..
 * block_q6_K, block_iq4_nl, byte for byte. */
void qid_gguf_k_quantize_ref(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n);
void qid_gguf_k_quantize_fast(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n);
void qid_gguf_k_encode(const qid_quant_spec *spec, const float *restrict x, size_t n, uint8_t *restrict out);
void qid_gguf_k_decode(const qid_quant_spec *spec, const uint8_t *restrict in, size_t n, float *restrict y);

/* IQ4_NL's table (kvalues_iq4nl) and its GPTQ rows: params finds a block's
 * d by the reference search (p->scale = f16(d), p->aux = 1 / d or 0); a
 * value is p->scale * table[nearest entry to p->aux * x, the upper on a
 * tie]. */
extern const int8_t qid_iq4nl_values[16];
void qid_iq4nl_params(const qid_quant_spec *spec, const float *restrict x, size_t n, qid_quant_params *p);
float qid_iq4nl_quantize_value(const qid_quant_spec *spec, const qid_quant_params *p, float x);
int qid_iq4nl_code(const qid_quant_params *p, float x);

/* ---- SQNR -------------------------------------------------------------- */

/* Signal and noise energies, summed in double over any number of tensors. */
typedef struct qid_sqnr_acc {
    double signal; /* sum of w^2 */
    double noise;  /* sum of (w - q)^2 */
    size_t count;  /* elements added */
} qid_sqnr_acc;

void qid_sqnr_acc_init(qid_sqnr_acc *acc);
/* Adds w[n] and its quantized q[n]. */
void qid_sqnr_acc_add(qid_sqnr_acc *acc, const float *restrict w, const float *restrict q, size_t n);
/* Adds the sums of another accumulator (e.g. one reduced from other ranks). */
void qid_sqnr_acc_merge(qid_sqnr_acc *acc, const qid_sqnr_acc *other);
/* 10 log10(signal / noise) in dB; +inf when noise == 0 (exact, including an
 * empty or all-zero input), -inf when signal == 0 < noise. */
double qid_sqnr_acc_db(const qid_sqnr_acc *acc);
/* SQNR of one tensor, same conventions. */
double qid_sqnr_db(const float *restrict w, const float *restrict q, size_t n);

#endif
