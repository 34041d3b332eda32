/* kernels.h - the numerical kernels of the transformer forward pass: layer
 * norm, RMSNorm, rotary position embedding, causal softmax attention (with
 * an optional ALiBi bias), GELU (exact erf and tanh-approximated), ReLU, SiLU
 * and SwiGLU, softmax, log-softmax / cross-entropy and the
 * KL divergence of two next-token distributions.
 *
 * Kernels come in up to three forms:
 *   qid_k_<name>_ref   the scalar specification: plain loops, float64
 *                      accumulation where it matters, libm functions;
 *   qid_k_<name>_avx2  AVX2/FMA/F16C intrinsics (kernels_avx2.c; call only
 *                      when qid_k_have_avx2() says the CPU has them; on
 *                      other targets they are the references);
 *   qid_k_<name>       the one to use: the AVX2 form when the CPU has it
 *                      (chosen at run time), the reference otherwise.
 * Attention, log-softmax and cross-entropy have no _avx2 form of their own:
 * their fast form is built on cblas_sgemm and the other kernels.
 * The vectorized forms agree with the references within the tolerance stated
 * next to each kernel (test/test_kernels.c checks it on awkward lengths).
 *
 * Numerics follow PyTorch / Hugging Face transformers in float32: biased
 * variance in LayerNorm, `x * rsqrt(mean(x^2) + eps) * w` in RMSNorm, the
 * "rotate_half" rotary convention with cos/sin tables computed as
 * transformers computes them, softmax attention scaled by 1/sqrt(head_dim).
 *
 * Contract shared by all kernels: they never allocate, never fail and never
 * start threads (the caller parallelizes over rows, windows or heads);
 * pointers marked restrict do not overlap; shapes are in the comments, row
 * major; sizes are not checked (the model checks them once). The attention
 * kernel is the only one that calls BLAS (cblas_sgemm), and it expects the
 * caller to have set OpenBLAS to one thread when calling it from several
 * threads at once.
 *
 * Not here: matrix products of the linear layers (the model calls
 * cblas_sgemm directly), anything that reads files, anything collective. */
#ifndef QID_KERNELS_H
#define QID_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* 1 when the CPU has AVX2, FMA and F16C (and this build targets x86-64). */
int qid_k_have_avx2(void);
/* "avx2+fma" or "scalar": the forms qid_k_<name> uses on this machine. */
const char *qid_k_impl_name(void);

/* ---- normalization ------------------------------------------------------ */

/* torch.nn.LayerNorm over the last dimension:
 *   out = (x - mean) / sqrt(var + eps) * w + b, var biased (divided by C).
 * out, x are (rows, C) and may be the same array; w, b are (C).
 * Fast form: within 1e-5 * (1 + |out|) of the reference. */
void qid_k_layernorm_ref(float *out, const float *x, const float *w, const float *b, size_t rows, size_t C, float eps);
void qid_k_layernorm_avx2(float *out, const float *x, const float *w, const float *b, size_t rows, size_t C, float eps);
void qid_k_layernorm(float *out, const float *x, const float *w, const float *b, size_t rows, size_t C, float eps);

/* Llama RMSNorm: out = w * (x / sqrt(mean(x^2) + eps)).
 * out, x are (rows, C) and may be the same array; w is (C).
 * Fast form: within 1e-5 * (1 + |out|) of the reference. */
void qid_k_rmsnorm_ref(float *out, const float *x, const float *w, size_t rows, size_t C, float eps);
void qid_k_rmsnorm_avx2(float *out, const float *x, const float *w, size_t rows, size_t C, float eps);
void qid_k_rmsnorm(float *out, const float *x, const float *w, size_t rows, size_t C, float eps);

/* ---- rotary position embedding ------------------------------------------ */

/* The cos/sin tables of rotary_dim rotated dimensions for positions
 * 0..T-1, exactly as transformers' default RoPE computes them in float32:
 *   inv_freq[i] = 1 / theta^((2i) / rotary_dim)    (float32 exponent, pow, divide)
 *   angle       = (float)pos * inv_freq[i]          (float32 product)
 *   cos, sin    = cos(angle), sin(angle) of that float32 angle, rounded to float.
 * cos, sin are (T, rotary_dim / 2): column i serves dimensions i and
 * i + rotary_dim/2 (transformers stores the half twice). rotary_dim is even. */
void qid_k_rope_table(float *restrict cos_t, float *restrict sin_t, size_t T, size_t rotary_dim, double theta);

/* Rotates, in place, the first rotary_dim dimensions of each of n_heads
 * heads in rows 0..T-1 of one window ("rotate_half" convention): with
 * h = rotary_dim/2, for i < h
 *   x'[i]     = x[i] * cos[t][i] - x[i+h] * sin[t][i]
 *   x'[i + h] = x[i+h] * cos[t][i] + x[i] * sin[t][i]
 * Row t starts at x + t*ld, head j of a row at + j*head_stride; dimensions
 * past rotary_dim are untouched. cos, sin are (>= T, rotary_dim/2) from
 * qid_k_rope_table; row t is used for row t of x (position t).
 * Fast form: within 2e-6 * (1 + |x|) of the reference. */
void qid_k_rope_ref(float *x, size_t T, size_t ld, size_t n_heads, size_t head_stride, size_t rotary_dim,
                    const float *cos_t, const float *sin_t);
void qid_k_rope_avx2(float *x, size_t T, size_t ld, size_t n_heads, size_t head_stride, size_t rotary_dim,
                     const float *cos_t, const float *sin_t);
void qid_k_rope(float *x, size_t T, size_t ld, size_t n_heads, size_t head_stride, size_t rotary_dim,
                const float *cos_t, const float *sin_t);

/* ---- attention --------------------------------------------------------- */

/* Query rows per block of the fast attention form. */
#define QID_K_ATT_BLOCK 128

/* Floats of scratch qid_k_attention needs for a window of T tokens. */
size_t qid_k_attention_scratch(size_t T);

/* Causal softmax attention of one head over one window of T tokens:
 *   out[i] = sum_{j <= i} softmax_j(scale * q[i].k[j]) v[j]
 * q row i (hd floats) is at q + i*ldq; k, v, out likewise with ldk, ldv,
 * ldo, so heads of a fused QKV buffer are read in place; grouped-query
 * attention is the caller passing the same k, v to several query heads.
 * out must not overlap q, k, v. scratch holds qid_k_attention_scratch(T)
 * floats, private to the calling thread.
 * The reference accumulates in float64. The fast form works on blocks of
 * QID_K_ATT_BLOCK query rows against the keys up to the block's end: the
 * scores with one cblas_sgemm, a vectorized softmax (qid_k_softmax), the
 * probabilities times the values with another; it is within 2e-5 * (1 +
 * |out|) of the reference for |scale q.k| below ~30. (A hand-tiled AVX2
 * version of the two products was tried and was no faster than OpenBLAS
 * for head_dim 64.) */
void qid_k_attention_ref(float *restrict out, size_t ldo, const float *q, size_t ldq, const float *k, size_t ldk,
                         const float *v, size_t ldv, size_t T, size_t hd, float scale, float *restrict scratch);
void qid_k_attention(float *restrict out, size_t ldo, const float *q, size_t ldq, const float *k, size_t ldk,
                     const float *v, size_t ldv, size_t T, size_t hd, float scale, float *restrict scratch);

/* Causal attention with an ALiBi bias (BLOOM): as qid_k_attention, with
 * slope * j added to the score of key j before the softmax, as transformers
 * adds slope * j (a float32 product) to scale * q.k. slope 0 is plain
 * attention. The same tolerance as qid_k_attention. */
void qid_k_attention_alibi_ref(float *restrict out, size_t ldo, const float *q, size_t ldq, const float *k, size_t ldk,
                               const float *v, size_t ldv, size_t T, size_t hd, float scale, float slope,
                               float *restrict scratch);
void qid_k_attention_alibi(float *restrict out, size_t ldo, const float *q, size_t ldq, const float *k, size_t ldk,
                           const float *v, size_t ldv, size_t T, size_t hd, float scale, float slope,
                           float *restrict scratch);

/* The ALiBi bias of one row of scores: s[j] += slope * j (the product in
 * float32), j = 0 .. n-1. s is (n). Fast form: within 1e-6 * (1 + |s|). */
void qid_k_alibi_add_ref(float *s, size_t n, float slope);
void qid_k_alibi_add_avx2(float *s, size_t n, float slope);
void qid_k_alibi_add(float *s, size_t n, float slope);

/* BLOOM's ALiBi slopes of n_heads heads (slopes is (n_heads)), as
 * transformers' _get_alibi_slopes: with c the largest power of two <= n_heads,
 * slope h = b^(h+1) for h < c, b = 2^(-8/c) rounded to float32; the
 * remaining heads take the odd powers 1, 3, 5, ... of b' = 2^(-4/c). The
 * powers are correctly rounded (powf); torch's float32 pow is not always:
 * for 1..48 heads every slope has transformers' bits up to 31 heads, and
 * beyond one value (2^(-1/4))^15 is 1 ulp above torch's (test_kernels.c). */
void qid_k_alibi_slopes(float *slopes, size_t n_heads);

/* In-place softmax of one row: x = exp(x - max) / sum. x is (n), n >= 1.
 * Fast form: within 1e-7 + 4e-6 * x of the reference. */
void qid_k_softmax_ref(float *x, size_t n);
void qid_k_softmax_avx2(float *x, size_t n);
void qid_k_softmax(float *x, size_t n);

/* ---- activations ----------------------------------------------------------- */

/* Exact GELU in place: x = 0.5 x (1 + erf(x / sqrt 2)). x is (n).
 * The fast form uses a rational erf approximation (max abs error 4.5e-7,
 * Eigen's): within 1e-6 * (1 + |x|) of the reference. */
void qid_k_gelu_ref(float *x, size_t n);
void qid_k_gelu_avx2(float *x, size_t n);
void qid_k_gelu(float *x, size_t n);

/* Tanh-approximated GELU in place (GPT-2's gelu_new, BLOOM's bloom_gelu,
 * torch's gelu(approximate="tanh")):
 *   x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).   x is (n).
 * The fast form takes tanh(u) as 1 - 2 / (1 + exp(2u)) with the vectorized
 * exp: within 1e-6 * (1 + |x|) of the reference. */
void qid_k_gelu_tanh_ref(float *x, size_t n);
void qid_k_gelu_tanh_avx2(float *x, size_t n);
void qid_k_gelu_tanh(float *x, size_t n);

/* ReLU in place: x = max(x, 0), NaN kept. x is (n). Fast form: bit-identical. */
void qid_k_relu_ref(float *x, size_t n);
void qid_k_relu_avx2(float *x, size_t n);
void qid_k_relu(float *x, size_t n);

/* SiLU in place: x = x / (1 + exp(-x)). x is (n).
 * Fast form: within 1e-6 * (1 + |x|) of the reference. */
void qid_k_silu_ref(float *x, size_t n);
void qid_k_silu_avx2(float *x, size_t n);
void qid_k_silu(float *x, size_t n);

/* SwiGLU: out = silu(gate) * up. out, gate, up are (n); out may be gate or up.
 * Fast form: within 1e-6 * (1 + |out|) of the reference. */
void qid_k_swiglu_ref(float *out, const float *gate, const float *up, size_t n);
void qid_k_swiglu_avx2(float *out, const float *gate, const float *up, size_t n);
void qid_k_swiglu(float *out, const float *gate, const float *up, size_t n);

/* Elementwise exp: out = exp(x), out and x (n) may be the same array.
 * The fast form (Cephes polynomial) is within 2 ulp; inputs below -87.33
 * give 0 (the true value is a float32 subnormal), above 88.72 give +inf. */
void qid_k_exp_ref(float *out, const float *x, size_t n);
void qid_k_exp_avx2(float *out, const float *x, size_t n);
void qid_k_exp(float *out, const float *x, size_t n);

/* Exact widening of IEEE float16 / bfloat16 values in (n) to float32 out (n).
 * out may hold the input in its upper half (in == (uint16_t *)out + n): the
 * checkpoint reader converts in place that way. Fast form: bit-identical.
 * A float16 NaN keeps its payload and comes out quiet (as F16C does). */
void qid_k_f16_to_f32_ref(float *out, const uint16_t *in, size_t n);
void qid_k_f16_to_f32_avx2(float *out, const uint16_t *in, size_t n);
void qid_k_f16_to_f32(float *out, const uint16_t *in, size_t n);
void qid_k_bf16_to_f32_ref(float *out, const uint16_t *in, size_t n);
void qid_k_bf16_to_f32_avx2(float *out, const uint16_t *in, size_t n);
void qid_k_bf16_to_f32(float *out, const uint16_t *in, size_t n);

/* Index of the first NaN or +-Inf in x (n), or n when all are finite.
 * Fast form: the same index. */
size_t qid_k_find_nonfinite_ref(const float *x, size_t n);
size_t qid_k_find_nonfinite_avx2(const float *x, size_t n);
size_t qid_k_find_nonfinite(const float *x, size_t n);

/* ---- log-softmax, cross-entropy, KL -------------------------------------- */

/* log(sum_v exp(x[v])) of one row of logits x (V), V >= 1, computed as
 * max + log(sum exp(x - max)) with float64 sums.
 * Fast form: within 1e-6 * (1 + |lse|) of the reference. */
double qid_k_logsumexp_ref(const float *x, size_t V);
double qid_k_logsumexp_avx2(const float *x, size_t V);
double qid_k_logsumexp(const float *x, size_t V);

/* Full log-softmax of one row: out = x - logsumexp(x). out, x (V) may be the
 * same array. Fast form: within 1e-6 * (1 + |out|). */
void qid_k_log_softmax_ref(float *out, const float *x, size_t V);
void qid_k_log_softmax(float *out, const float *x, size_t V);

/* Cross-entropy of one row: -log softmax(x)[target] = logsumexp(x) - x[target].
 * target < V. Fast form: within 1e-6 * (1 + |nll|). */
double qid_k_cross_entropy_ref(const float *x, size_t V, uint32_t target);
double qid_k_cross_entropy(const float *x, size_t V, uint32_t target);

/* KL(P || Q) of the next-token distributions of two rows of logits p, q (V):
 *   sum_v softmax(p)_v (log softmax(p)_v - log softmax(q)_v)   (nats, >= 0)
 * lse_p, lse_q are the rows' logsumexp (qid_k_logsumexp). Sums in float64.
 * Fast form: within 1e-6 * (1 + kl) of the reference. */
double qid_k_kl_ref(const float *p, const float *q, size_t V, double lse_p, double lse_q);
double qid_k_kl_avx2(const float *p, const float *q, size_t V, double lse_p, double lse_q);
double qid_k_kl(const float *p, const float *q, size_t V, double lse_p, double lse_q);

#endif
