/* gguf_mix.h - which GGUF type each tensor of a model gets: llama-quantize's
 * per-tensor choice (llama.cpp src/llama-quant.cpp, llama_tensor_get_type)
 * for the named mixtures q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s,
 * q5_k_m (llama-quantize's Q3_K_S .. Q5_K_M without an importance matrix),
 * and llama.cpp's fallback for a row length its block does not divide.
 *
 * The rules, with i the layer and n the layer count, use_more_bits(i, n) =
 * i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2 (integer division):
 *   attn_v and the fused attn_qkv (llama.cpp counts both as attn_v-like and
 *   tests that rule first, so its separate attn_qkv rule is never reached):
 *     q3_k_m  i < 2 ? q5_k : q4_k      q3_k_l  q5_k
 *     q4_k_m, q5_k_m  use_more_bits ? q6_k : the default
 *     q4_k_s  i < 4 ? q5_k : q4_k      then, for a Llama-architecture model of
 *     80 layers with grouped-query attention (llama.cpp's 70B), q3_k / q4_k
 *     become q5_k.
 *   ffn_down:
 *     q3_k_m  i < n/16 ? q5_k : q4_k   q3_k_l  q5_k
 *     q4_k_m, q5_k_m  use_more_bits ? q6_k : the default
 *     q4_k_s  i < n/8 ? q5_k : q4_k
 *   attn_output: q3_k_m q4_k, q3_k_l q5_k.
 *   output (the head): q6_k (q8_0 when 256 does not divide its rows);
 *   token_embd: the default type, or the head's rule when tied.
 *   everything else (attn_q, attn_k, ffn_up, ffn_gate): the default type,
 *   q3_k for q3_k_*, q4_k for q4_k_*, q5_k for q5_k_*.
 * Plain formats (q4_0, q4_k, ...) give every tensor their own type, as
 * `llama-quantize --pure`; on attention and MLP weights that is also what
 * the Q4_0, Q5_0, Q8_0 and Q6_K mixtures choose.
 *
 * Fallback (tensor_type_fallback): a row length not a multiple of the
 * type's block takes q2_k, q3_k -> q4_0; q4_k -> q5_0; q5_k -> q5_1;
 * q6_k -> q8_0; a 32-block type stays; and when 32 does not divide it
 * either, the tensor is stored as F16 (qid_gguf_tensor_type returns 0: the
 * weights are rounded to fp16).
 *
 * qid applies the choice to the LINEAR tensors (quantize.h); the embedding
 * and the head stay at their stored precision as for every qid format, so
 * the output and token_embd rules are reported (qid_gguf_role) but not
 * applied. Nothing here allocates or is collective over MPI.
 */
#ifndef QID_GGUF_MIX_H
#define QID_GGUF_MIX_H

#include <stddef.h>

#include "checkpoint.h"
#include "quant.h"

/* llama-quantize's tensor categories (tensor_get_category). */
typedef enum qid_gguf_role {
    QID_GGUF_ROLE_OTHER = 0,
    QID_GGUF_ROLE_OUTPUT,      /* output.weight: qid's lm_head.weight */
    QID_GGUF_ROLE_TOKEN_EMBD,  /* token_embd.weight: qid's embed.weight */
    QID_GGUF_ROLE_ATTN_QKV,    /* attn_qkv: qid's attn.qkv.weight (GPT-NeoX) */
    QID_GGUF_ROLE_ATTN_V,      /* attn_v: attn.v.weight */
    QID_GGUF_ROLE_ATTN_K,      /* attn_k: attn.k.weight */
    QID_GGUF_ROLE_ATTN_Q,      /* attn_q: attn.q.weight */
    QID_GGUF_ROLE_ATTN_OUTPUT, /* attn_output: attn.out.weight */
    QID_GGUF_ROLE_FFN_UP,      /* ffn_up: mlp.up.weight */
    QID_GGUF_ROLE_FFN_GATE,    /* ffn_gate: mlp.gate.weight */
    QID_GGUF_ROLE_FFN_DOWN,    /* ffn_down: mlp.down.weight */
} qid_gguf_role;

/* The role of a qid tensor name ("attn.qkv.weight", "mlp.down.weight", ...). */
qid_gguf_role qid_gguf_role_of(const char *name);
/* llama.cpp's name of a role ("attn_v", "ffn_down", "output", ...). */
const char *qid_gguf_role_name(qid_gguf_role role);

/* 1 when spec's format has per-tensor choices or a fallback (the GGUF
 * family); other formats give every tensor spec itself. */
int qid_gguf_is_gguf(const qid_quant_spec *spec);

/* The type a tensor of role `role` in layer `layer` (0-based; ignored for
 * global roles) of a model with config cfg, with rows of `cols` elements,
 * gets under spec: the mixture's rule (a plain format: itself), then the
 * fallback. Returns 1 with *out set, or 0 when llama.cpp stores the tensor
 * as F16 (*out is then spec itself). Non-GGUF specs return 1 and spec. */
int qid_gguf_tensor_type(const qid_quant_spec *spec, const qid_model_config *cfg, qid_gguf_role role, int layer,
                         size_t cols, qid_quant_spec *out);

/* Rounds w[n] to fp16 and back (llama.cpp's F16 fallback), in place. */
void qid_gguf_round_f16(float *w, size_t n);

#endif
