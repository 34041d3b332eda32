/* gguf_mix.c - llama-quantize's per-tensor type choice for the named
 * mixtures and llama.cpp's fallback for row lengths a block does not divide
 * (gguf_mix.h has the rules).
 *
 * Does not: quantize (quant_gguf*.c), or walk a model (quantize.c asks per
 * tensor).
 */
#include "gguf_mix.h"

#include <string.h>

qid_gguf_role qid_gguf_role_of(const char *name)
{
    static const struct {
        const char *name;
        qid_gguf_role role;
    } t[] = {
        {"lm_head.weight", QID_GGUF_ROLE_OUTPUT},       {"embed.weight", QID_GGUF_ROLE_TOKEN_EMBD},
        {"attn.qkv.weight", QID_GGUF_ROLE_ATTN_QKV},    {"attn.v.weight", QID_GGUF_ROLE_ATTN_V},
        {"attn.k.weight", QID_GGUF_ROLE_ATTN_K},        {"attn.q.weight", QID_GGUF_ROLE_ATTN_Q},
        {"attn.out.weight", QID_GGUF_ROLE_ATTN_OUTPUT}, {"mlp.up.weight", QID_GGUF_ROLE_FFN_UP},
        {"mlp.gate.weight", QID_GGUF_ROLE_FFN_GATE},    {"mlp.down.weight", QID_GGUF_ROLE_FFN_DOWN},
    };
    for (size_t i = 0; name && i < sizeof t / sizeof t[0]; i++)
        if (strcmp(name, t[i].name) == 0) return t[i].role;
    return QID_GGUF_ROLE_OTHER;
}

const char *qid_gguf_role_name(qid_gguf_role role)
{
    static const char *const names[] = {"other",  "output",      "token_embd", "attn_qkv", "attn_v",  "attn_k",
                                        "attn_q", "attn_output", "ffn_up",     "ffn_gate", "ffn_down"};
    return (unsigned)role < sizeof names / sizeof names[0] ? names[role] : "other";
}

int qid_gguf_is_gguf(const qid_quant_spec *spec)
{
    return qid_quant_traits_of(spec->type)->kind == QID_QUANT_KIND_GGUF;
}

/* llama-quantize's use_more_bits. */
static int more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The default type of a mixture (llama_ftype_get_default_type). */
static enum qid_qtype mix_default(enum qid_qtype t)
{
    switch (t) {
    case QID_QTYPE_Q3_K_S:
    case QID_QTYPE_Q3_K_M:
    case QID_QTYPE_Q3_K_L: return QID_QTYPE_Q3_K;
    case QID_QTYPE_Q4_K_S:
    case QID_QTYPE_Q4_K_M: return QID_QTYPE_Q4_K;
    case QID_QTYPE_Q5_K_S:
    case QID_QTYPE_Q5_K_M: return QID_QTYPE_Q5_K;
    default: return t;
    }
}

/* llama_tensor_get_type_impl for the mixtures qid names, on a model with no
 * experts and not Falcon; i_attention_wv, i_ffn_down are the layer index as
 * each layer has one such tensor. */
static enum qid_qtype mix_rule(enum qid_qtype mix, const qid_model_config *cfg, qid_gguf_role role, int i, size_t cols)
{
    const enum qid_qtype def = mix_default(mix);
    const int n = (int)cfg->n_layers;
    enum qid_qtype t = def;
    switch (role) {
    case QID_GGUF_ROLE_OUTPUT: return cols % 256 != 0 ? QID_QTYPE_Q8_0 : QID_QTYPE_Q6_K;
    case QID_GGUF_ROLE_TOKEN_EMBD:
        return cfg->tie_embeddings ? (cols % 256 != 0 ? QID_QTYPE_Q8_0 : QID_QTYPE_Q6_K) : def;
    case QID_GGUF_ROLE_ATTN_V:
    case QID_GGUF_ROLE_ATTN_QKV:
        if (mix == QID_QTYPE_Q3_K_M)
            t = i < 2 ? QID_QTYPE_Q5_K : QID_QTYPE_Q4_K;
        else if (mix == QID_QTYPE_Q3_K_L)
            t = QID_QTYPE_Q5_K;
        else if ((mix == QID_QTYPE_Q4_K_M || mix == QID_QTYPE_Q5_K_M) && more_bits(i, n))
            t = QID_QTYPE_Q6_K;
        else if (mix == QID_QTYPE_Q4_K_S && i < 4)
            t = QID_QTYPE_Q5_K;
        /* llama.cpp's LLM_TYPE_70B: llama architecture, 80 layers, GQA */
        if (cfg->arch == QID_ARCH_LLAMA && n == 80 && cfg->n_heads != cfg->n_kv_heads &&
            (t == QID_QTYPE_Q3_K || t == QID_QTYPE_Q4_K))
            t = QID_QTYPE_Q5_K;
        return t;
    case QID_GGUF_ROLE_FFN_DOWN:
        if (mix == QID_QTYPE_Q3_K_M) return i < n / 16 ? QID_QTYPE_Q5_K : QID_QTYPE_Q4_K;
        if (mix == QID_QTYPE_Q3_K_L) return QID_QTYPE_Q5_K;
        if ((mix == QID_QTYPE_Q4_K_M || mix == QID_QTYPE_Q5_K_M) && more_bits(i, n)) return QID_QTYPE_Q6_K;
        if (mix == QID_QTYPE_Q4_K_S && i < n / 8) return QID_QTYPE_Q5_K;
        return def;
    case QID_GGUF_ROLE_ATTN_OUTPUT:
        if (mix == QID_QTYPE_Q3_K_M) return QID_QTYPE_Q4_K;
        if (mix == QID_QTYPE_Q3_K_L) return QID_QTYPE_Q5_K;
        return def;
    default: return def;
    }
}

/* tensor_type_fallback: the type for a row length its block does not
 * divide; QID_QTYPE_COUNT for F16. */
static enum qid_qtype fallback(enum qid_qtype t, size_t cols)
{
    const size_t b = qid_quant_traits_of(t)->block;
    if (cols % b == 0) return t;
    enum qid_qtype f;
    switch (t) {
    case QID_QTYPE_Q2_K:
    case QID_QTYPE_Q3_K: f = QID_QTYPE_Q4_0; break;
    case QID_QTYPE_Q4_K: f = QID_QTYPE_Q5_0; break;
    case QID_QTYPE_Q5_K: f = QID_QTYPE_Q5_1; break;
    case QID_QTYPE_Q6_K: f = QID_QTYPE_Q8_0; break;
    default: f = t; break;
    }
    return cols % qid_quant_traits_of(f)->block == 0 ? f : QID_QTYPE_COUNT;
}

int qid_gguf_tensor_type(const qid_quant_spec *spec, const qid_model_config *cfg, qid_gguf_role role, int layer,
                         size_t cols, qid_quant_spec *out)
{
    *out = *spec;
    if (!qid_gguf_is_gguf(spec)) return 1;
    enum qid_qtype t = spec->type;
    if (qid_quant_traits_of(t)->mixture) t = mix_rule(t, cfg, role, layer, cols);
    t = fallback(t, cols);
    if (t == QID_QTYPE_COUNT) return 0;
    const qid_quant_traits *tr = qid_quant_traits_of(t);
    *out = (qid_quant_spec){.type = t, .bits = tr->bits, .block = tr->block, .sym = 1};
    return 1;
}

void qid_gguf_round_f16(float *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        w[i] = qid_gguf_f16_to_f32(qid_gguf_f32_to_f16(w[i]));
}
