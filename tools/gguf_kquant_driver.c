/* gguf_kquant_driver.c - the reference producer of test/fixtures/quant/
 * gguf_kquant_vectors.txt, built by tools/make_gguf_kquant_vectors.sh
 * against ggml's own ggml-quants.c from a llama.cpp / ggml source tree (not
 * part of qid's build; nothing of ggml is in this repository).
 *
 * For each type it calls what llama-quantize calls without an importance
 * matrix: ggml_quantize_chunk -> quantize_q2_K .. quantize_q6_K(src, dst,
 * nrow, n_per_row, NULL), which run quantize_row_q*_K_ref over the rows, and
 * quantize_iq4_nl(src, dst, nrow, n_per_row, NULL) (quantize_row_iq4_nl_impl
 * with ntry 7, not quantize_row_iq4_nl_ref's ntry -1); then dequantize_row_*.
 *
 * Output: first the inputs, one per line, then one line per type and input:
 *     x <case> <n> <x_1> .. <x_n>
 *     <format> <case> <y_1> .. <y_n> <packed>
 * x, y float32 bit patterns in hex (input, dequantized output), packed the
 * ggml blocks as hex bytes; lines starting with '#' are comments.
 *
 * ggml.c is not linked (it pulls in the backends): the symbols ggml-quants.c
 * needs from it are defined below: ggml_abort (prints, aborts), ggml_row_size
 * (only the return value of quantize_* uses it here), and ggml_type_size /
 * ggml_type_name, which only ggml_validate_row_data calls (never here). */
#define GGML_COMMON_DECL_C
#include "ggml-common.h"
#include "ggml-quants.h"
#include "ggml.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ggml_abort(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ggml_abort %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

typedef size_t (*quantize_fn)(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *imatrix);
typedef void (*dequantize_fn)(const void *x, float *y, int64_t k);

static const struct type {
    const char *name;
    enum ggml_type type;
    int block;
    size_t bytes;
    quantize_fn quantize;
    dequantize_fn dequantize;
} types[] = {
    {"q2_k", GGML_TYPE_Q2_K, QK_K, sizeof(block_q2_K), quantize_q2_K, (dequantize_fn)dequantize_row_q2_K},
    {"q3_k", GGML_TYPE_Q3_K, QK_K, sizeof(block_q3_K), quantize_q3_K, (dequantize_fn)dequantize_row_q3_K},
    {"q4_k", GGML_TYPE_Q4_K, QK_K, sizeof(block_q4_K), quantize_q4_K, (dequantize_fn)dequantize_row_q4_K},
    {"q5_k", GGML_TYPE_Q5_K, QK_K, sizeof(block_q5_K), quantize_q5_K, (dequantize_fn)dequantize_row_q5_K},
    {"q6_k", GGML_TYPE_Q6_K, QK_K, sizeof(block_q6_K), quantize_q6_K, (dequantize_fn)dequantize_row_q6_K},
    {"iq4_nl", GGML_TYPE_IQ4_NL, QK4_NL, sizeof(block_iq4_nl), quantize_iq4_nl, (dequantize_fn)dequantize_row_iq4_nl},
};
#define N_TYPES (sizeof types / sizeof types[0])

size_t ggml_row_size(enum ggml_type type, int64_t ne)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (types[i].type == type) return (size_t)(ne / types[i].block) * types[i].bytes;
    abort();
}

size_t ggml_type_size(enum ggml_type type)
{
    (void)type;
    abort();
}

const char *ggml_type_name(enum ggml_type type)
{
    (void)type;
    abort();
}

/* xorshift64* and Box-Muller: the inputs, seeded, independent of libc. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static double uniform(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545f4914f6cdd1du) >> 11) * 0x1p-53;
}
static float gauss(void)
{
    double u = uniform(), v = uniform();
    if (u < 1e-300) u = 1e-300;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void emit(const struct type *t, int c, const float *x, int n)
{
    const int nb = n / t->block;
    unsigned char *q = calloc((size_t)nb, t->bytes);
    float *y = calloc((size_t)n, sizeof *y);
    t->quantize(x, q, 1, n, NULL);
    t->dequantize(q, y, n);
    printf("%s %d", t->name, c);
    for (int i = 0; i < n; i++)
        printf(" %08x", bits(y[i]));
    printf(" ");
    for (size_t i = 0; i < (size_t)nb * t->bytes; i++)
        printf("%02x", q[i]);
    printf("\n");
    free(q);
    free(y);
}

#define NMAX 1024
static float cases[64][NMAX];
static int case_n[64];
static int n_cases;

static float *new_case(int n)
{
    case_n[n_cases] = n;
    return cases[n_cases++];
}

static void make_cases(void)
{
    float *x;
    int n;
    /* random normal, one and two super-blocks; weight-like scale */
    for (int k = 1; k <= 2; k *= 2) {
        x = new_case(n = 256 * k);
        for (int i = 0; i < n; i++)
            x[i] = gauss();
    }
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = 0.02f * gauss();
    /* heavy tails: gauss / sqrt(uniform) */
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = gauss() / (float)sqrt(uniform() + 1e-3);
    /* all zeros; all equal, positive and negative */
    x = new_case(256);
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = 0.75f;
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = -3.0f;
    /* negative-only and positive-only */
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = -fabsf(gauss()) - 0.1f;
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = fabsf(gauss()) + 0.5f;
    /* one huge outlier, one typical outlier */
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = 0.01f * gauss();
    x[77] = 1e4f;
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = 0.02f * gauss();
    x[200] = -0.9f;
    /* sub-block magnitudes 2^-15 .. 2^0: small sub-block scales quantize to
     * 0 (the reference keeps the search's codes there) */
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = ldexpf(gauss(), i / 16 - 15);
    /* one zero sub-block of 16 and one of 32 among random ones */
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = (i >= 16 && i < 32) || (i >= 96 && i < 128) ? 0.0f : gauss();
    /* float32 subnormals, with and without a normal value beside them */
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = 1e-39f * gauss();
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = 1e-39f * gauss();
    x[40] = 1e-3f;
    /* below GROUP_MAX_EPS (1e-15) and just above */
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = (i < 128 ? 1e-16f : 1e-14f) * gauss();
    /* fp16 limits of the super-block scales: d overflows, d near the top,
     * d a subnormal half */
    static const float mags[] = {1e8f, 3e5f, 1e-6f};
    for (size_t m = 0; m < sizeof mags / sizeof mags[0]; m++) {
        x = new_case(n = 256);
        for (int i = 0; i < n; i++)
            x[i] = mags[m] * gauss();
    }
    /* ties: an exact integer grid 0..15 and -8..7, halves and quarters */
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = (float)(i % 16);
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = (float)(i % 16 - 8);
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = 0.5f * (float)((i * 7) % 31 - 15);
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = 0.25f * (float)((i * 5) % 13 - 6);
    /* alternating +-1, two values, sparse */
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = i % 2 ? -1.0f : 1.0f;
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = i % 3 ? 0.1f : 0.7f;
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = i % 37 == 0 ? gauss() : 0.0f;
    /* the largest magnitude twice with both signs; -0.0 */
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = 0.3f * gauss();
    for (int j = 0; j < 256; j += 32) {
        x[j + 3] = 2.0f;
        x[j + 9] = -2.0f;
    }
    x = new_case(n = 256);
    for (int i = 0; i < n; i++)
        x[i] = i % 4 ? -0.0f : 0.5f * gauss();
}

int main(int argc, char **argv)
{
    printf("# GGUF k-quant and IQ4_NL vectors: tools/make_gguf_kquant_vectors.sh, producer %s\n",
           argc > 1 ? argv[1] : "ggml");
    printf("# quantize_q*_K(..., imatrix NULL) = quantize_row_q*_K_ref; quantize_iq4_nl(..., NULL)\n");
    printf("# x <case> <n> <x f32 hex x n>, then <format> <case> <y f32 hex x n> <packed blocks hex>\n");
    make_cases();
    for (int c = 0; c < n_cases; c++) {
        printf("x %d %d", c, case_n[c]);
        for (int i = 0; i < case_n[c]; i++)
            printf(" %08x", bits(cases[c][i]));
        printf("\n");
    }
    for (size_t t = 0; t < N_TYPES; t++)
        for (int c = 0; c < n_cases; c++)
            emit(&types[t], c, cases[c], case_n[c]);
    return 0;
}
