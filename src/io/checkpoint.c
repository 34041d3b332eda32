/* checkpoint.c - the qid checkpoint format: tensor table per architecture,
 * parameter counts, a crash-safe writer and a read-only reader.
 *
 * Layout (hdf5-schema/checkpoint.md): root attributes (format, schema
 * version, arch, model, step, tokens_seen, dtype, counts, hashes), /config
 * attributes (hyperparameters), /source attributes (provenance), global
 * tensors at the root ("/embed.weight"), layer tensors in /layers/<i>.
 *
 * Does not: convert precision on write (tensors are stored exactly as given),
 * run or quantize models. */
#include "checkpoint.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

/* ---- architectures -------------------------------------------------------- */

static const char *const arch_names[QID_ARCH_COUNT] = {"gpt-neox", "llama", "gpt2", "opt", "bloom"};

const char *qid_arch_name(qid_arch arch) { return (unsigned)arch < QID_ARCH_COUNT ? arch_names[arch] : "?"; }

int qid_arch_parse(const char *name)
{
    for (int i = 0; i < QID_ARCH_COUNT; i++)
        if (strcmp(name, arch_names[i]) == 0) return i;
    return -1;
}

static const char *const act_names[] = {"gelu", "gelu_tanh", "relu", "silu"};

const char *qid_act_name(qid_act act) { return (unsigned)act < 4 ? act_names[act] : "?"; }

int qid_act_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, act_names[i]) == 0) return i;
    return -1;
}

int64_t qid_pos_offset(const qid_model_config *c) { return c->arch == QID_ARCH_OPT ? 2 : 0; }

int64_t qid_pos_rows(const qid_model_config *c)
{
    return c->arch == QID_ARCH_GPT2 || c->arch == QID_ARCH_OPT ? c->max_seq_len + qid_pos_offset(c) : 0;
}

int64_t qid_embed_width(const qid_model_config *c) { return c->d_embed > 0 ? c->d_embed : c->d_model; }

int qid_config_validate(const qid_model_config *c, qid_error *err)
{
#define BAD(...) return qid_error_set(err, QID_E_INVALID, __VA_ARGS__)
    if (c->vocab_size <= 0 || c->d_model <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->d_ff <= 0 ||
        c->head_dim <= 0 || c->n_kv_heads <= 0)
        BAD("model sizes must be positive (vocab %" PRId64 ", d_model %" PRId64 ", layers %" PRId64 ", heads %" PRId64
            ", kv heads %" PRId64 ", head_dim %" PRId64 ", d_ff %" PRId64 ")",
            c->vocab_size, c->d_model, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->d_ff);
    if (c->n_layers > 100000 || c->d_model > (1 << 20) || c->d_ff > (1 << 22) || c->vocab_size > (1 << 24) ||
        c->n_heads > 4096)
        BAD("model sizes out of range (layers %" PRId64 ", d_model %" PRId64 ", d_ff %" PRId64 ", vocab %" PRId64 ")",
            c->n_layers, c->d_model, c->d_ff, c->vocab_size);
    if (c->n_heads % c->n_kv_heads != 0)
        BAD("%" PRId64 " attention heads are not a multiple of %" PRId64 " key/value heads", c->n_heads, c->n_kv_heads);
    if (c->arch != QID_ARCH_LLAMA && (c->n_kv_heads != c->n_heads || c->head_dim * c->n_heads != c->d_model))
        BAD("%s needs n_kv_heads = n_heads and head_dim * n_heads = d_model", qid_arch_name(c->arch));
    if (c->arch != QID_ARCH_LLAMA && (unsigned)c->act >= QID_ACT_SILU)
        BAD("activation %d is not one of gelu, gelu_tanh, relu for %s", (int)c->act, qid_arch_name(c->arch));
    if (c->arch != QID_ARCH_OPT && (c->post_norm || c->no_final_norm || c->d_embed != 0))
        BAD("post-LayerNorm, no final norm and an embedding projection are OPT's only");
    if (c->d_embed < 0 || c->d_embed > (1 << 20)) BAD("embedding width %" PRId64 " out of range", c->d_embed);
    if (c->arch != QID_ARCH_GPT_NEOX && c->arch != QID_ARCH_LLAMA && c->rotary_dim != 0)
        BAD("%s has no rotary embedding (rotary_dim %" PRId64 ")", qid_arch_name(c->arch), c->rotary_dim);
    if (c->parallel_residual && c->arch != QID_ARCH_GPT_NEOX) BAD("a parallel residual is gpt-neox's only");
    if (c->rotary_dim < 0 || c->rotary_dim > c->head_dim || c->rotary_dim % 2 != 0)
        BAD("rotary_dim %" PRId64 " must be even and at most head_dim %" PRId64, c->rotary_dim, c->head_dim);
    if (!(c->rope_theta > 0) || !(c->norm_eps > 0) || !(c->norm_eps < 1))
        BAD("rope theta %g and norm eps %g must be positive (eps < 1)", c->rope_theta, c->norm_eps);
    if (c->max_seq_len <= 0) BAD("max_seq_len %" PRId64 " must be positive", c->max_seq_len);
    return QID_OK;
#undef BAD
}

/* ---- the tensor table ------------------------------------------------------ */

/* Shape symbols of the table below. */
enum { S_ONE, S_D, S_V, S_FF, S_Q, S_KV, S_QKV, S_P, S_E };

typedef struct {
    const char *name;
    const char *hf; /* Hugging Face name; "%d" stands for the layer index */
    qid_tensor_kind kind;
    int rows, cols; /* shape symbols; cols S_ONE means a vector */
    int when;       /* condition, see tensor_present */
    int transposed; /* Hugging Face stores it [cols, rows] (Conv1D) */
} tensor_template;

enum { W_ALWAYS, W_UNTIED, W_NORM_BIAS, W_QKV_BIAS, W_O_BIAS, W_MLP_BIAS, W_PROJ, W_FINAL_NORM };

static const tensor_template neox_global_head[] = {
    {"embed.weight", "gpt_neox.embed_in.weight", QID_TENSOR_EMBED, S_V, S_D, W_ALWAYS, 0},
};
static const tensor_template neox_layer[] = {
    {"ln1.weight", "gpt_neox.layers.%d.input_layernorm.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"ln1.bias", "gpt_neox.layers.%d.input_layernorm.bias", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"attn.qkv.weight", "gpt_neox.layers.%d.attention.query_key_value.weight", QID_TENSOR_LINEAR, S_QKV, S_D, W_ALWAYS,
     0},
    {"attn.qkv.bias", "gpt_neox.layers.%d.attention.query_key_value.bias", QID_TENSOR_BIAS, S_QKV, S_ONE, W_QKV_BIAS,
     0},
    {"attn.out.weight", "gpt_neox.layers.%d.attention.dense.weight", QID_TENSOR_LINEAR, S_D, S_Q, W_ALWAYS, 0},
    {"attn.out.bias", "gpt_neox.layers.%d.attention.dense.bias", QID_TENSOR_BIAS, S_D, S_ONE, W_O_BIAS, 0},
    {"ln2.weight", "gpt_neox.layers.%d.post_attention_layernorm.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"ln2.bias", "gpt_neox.layers.%d.post_attention_layernorm.bias", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"mlp.up.weight", "gpt_neox.layers.%d.mlp.dense_h_to_4h.weight", QID_TENSOR_LINEAR, S_FF, S_D, W_ALWAYS, 0},
    {"mlp.up.bias", "gpt_neox.layers.%d.mlp.dense_h_to_4h.bias", QID_TENSOR_BIAS, S_FF, S_ONE, W_MLP_BIAS, 0},
    {"mlp.down.weight", "gpt_neox.layers.%d.mlp.dense_4h_to_h.weight", QID_TENSOR_LINEAR, S_D, S_FF, W_ALWAYS, 0},
    {"mlp.down.bias", "gpt_neox.layers.%d.mlp.dense_4h_to_h.bias", QID_TENSOR_BIAS, S_D, S_ONE, W_MLP_BIAS, 0},
};
static const tensor_template neox_global_tail[] = {
    {"final_norm.weight", "gpt_neox.final_layer_norm.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"final_norm.bias", "gpt_neox.final_layer_norm.bias", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"lm_head.weight", "embed_out.weight", QID_TENSOR_EMBED, S_V, S_D, W_UNTIED, 0},
};

static const tensor_template llama_global_head[] = {
    {"embed.weight", "model.embed_tokens.weight", QID_TENSOR_EMBED, S_V, S_D, W_ALWAYS, 0},
};
static const tensor_template llama_layer[] = {
    {"ln1.weight", "model.layers.%d.input_layernorm.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"attn.q.weight", "model.layers.%d.self_attn.q_proj.weight", QID_TENSOR_LINEAR, S_Q, S_D, W_ALWAYS, 0},
    {"attn.q.bias", "model.layers.%d.self_attn.q_proj.bias", QID_TENSOR_BIAS, S_Q, S_ONE, W_QKV_BIAS, 0},
    {"attn.k.weight", "model.layers.%d.self_attn.k_proj.weight", QID_TENSOR_LINEAR, S_KV, S_D, W_ALWAYS, 0},
    {"attn.k.bias", "model.layers.%d.self_attn.k_proj.bias", QID_TENSOR_BIAS, S_KV, S_ONE, W_QKV_BIAS, 0},
    {"attn.v.weight", "model.layers.%d.self_attn.v_proj.weight", QID_TENSOR_LINEAR, S_KV, S_D, W_ALWAYS, 0},
    {"attn.v.bias", "model.layers.%d.self_attn.v_proj.bias", QID_TENSOR_BIAS, S_KV, S_ONE, W_QKV_BIAS, 0},
    {"attn.out.weight", "model.layers.%d.self_attn.o_proj.weight", QID_TENSOR_LINEAR, S_D, S_Q, W_ALWAYS, 0},
    {"attn.out.bias", "model.layers.%d.self_attn.o_proj.bias", QID_TENSOR_BIAS, S_D, S_ONE, W_O_BIAS, 0},
    {"ln2.weight", "model.layers.%d.post_attention_layernorm.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"mlp.gate.weight", "model.layers.%d.mlp.gate_proj.weight", QID_TENSOR_LINEAR, S_FF, S_D, W_ALWAYS, 0},
    {"mlp.gate.bias", "model.layers.%d.mlp.gate_proj.bias", QID_TENSOR_BIAS, S_FF, S_ONE, W_MLP_BIAS, 0},
    {"mlp.up.weight", "model.layers.%d.mlp.up_proj.weight", QID_TENSOR_LINEAR, S_FF, S_D, W_ALWAYS, 0},
    {"mlp.up.bias", "model.layers.%d.mlp.up_proj.bias", QID_TENSOR_BIAS, S_FF, S_ONE, W_MLP_BIAS, 0},
    {"mlp.down.weight", "model.layers.%d.mlp.down_proj.weight", QID_TENSOR_LINEAR, S_D, S_FF, W_ALWAYS, 0},
    {"mlp.down.bias", "model.layers.%d.mlp.down_proj.bias", QID_TENSOR_BIAS, S_D, S_ONE, W_MLP_BIAS, 0},
};
static const tensor_template llama_global_tail[] = {
    {"final_norm.weight", "model.norm.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"lm_head.weight", "lm_head.weight", QID_TENSOR_EMBED, S_V, S_D, W_UNTIED, 0},
};

/* GPT-2: Conv1D weights are [in, out] in the file. */
static const tensor_template gpt2_global_head[] = {
    {"embed.weight", "transformer.wte.weight", QID_TENSOR_EMBED, S_V, S_D, W_ALWAYS, 0},
    {"pos_embed.weight", "transformer.wpe.weight", QID_TENSOR_EMBED, S_P, S_D, W_ALWAYS, 0},
};
static const tensor_template gpt2_layer[] = {
    {"ln1.weight", "transformer.h.%d.ln_1.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"ln1.bias", "transformer.h.%d.ln_1.bias", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"attn.qkv.weight", "transformer.h.%d.attn.c_attn.weight", QID_TENSOR_LINEAR, S_QKV, S_D, W_ALWAYS, 1},
    {"attn.qkv.bias", "transformer.h.%d.attn.c_attn.bias", QID_TENSOR_BIAS, S_QKV, S_ONE, W_ALWAYS, 0},
    {"attn.out.weight", "transformer.h.%d.attn.c_proj.weight", QID_TENSOR_LINEAR, S_D, S_Q, W_ALWAYS, 1},
    {"attn.out.bias", "transformer.h.%d.attn.c_proj.bias", QID_TENSOR_BIAS, S_D, S_ONE, W_ALWAYS, 0},
    {"ln2.weight", "transformer.h.%d.ln_2.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"ln2.bias", "transformer.h.%d.ln_2.bias", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"mlp.up.weight", "transformer.h.%d.mlp.c_fc.weight", QID_TENSOR_LINEAR, S_FF, S_D, W_ALWAYS, 1},
    {"mlp.up.bias", "transformer.h.%d.mlp.c_fc.bias", QID_TENSOR_BIAS, S_FF, S_ONE, W_ALWAYS, 0},
    {"mlp.down.weight", "transformer.h.%d.mlp.c_proj.weight", QID_TENSOR_LINEAR, S_D, S_FF, W_ALWAYS, 1},
    {"mlp.down.bias", "transformer.h.%d.mlp.c_proj.bias", QID_TENSOR_BIAS, S_D, S_ONE, W_ALWAYS, 0},
};
static const tensor_template gpt2_global_tail[] = {
    {"final_norm.weight", "transformer.ln_f.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"final_norm.bias", "transformer.ln_f.bias", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"lm_head.weight", "lm_head.weight", QID_TENSOR_EMBED, S_V, S_D, W_UNTIED, 0},
};

/* OPT: q, k, v, their biases, in llama's order (contiguous when loaded). */
static const tensor_template opt_global_head[] = {
    {"embed.weight", "model.decoder.embed_tokens.weight", QID_TENSOR_EMBED, S_V, S_E, W_ALWAYS, 0},
    {"pos_embed.weight", "model.decoder.embed_positions.weight", QID_TENSOR_EMBED, S_P, S_D, W_ALWAYS, 0},
    {"proj_in.weight", "model.decoder.project_in.weight", QID_TENSOR_PROJ, S_D, S_E, W_PROJ, 0},
};
static const tensor_template opt_layer[] = {
    {"ln1.weight", "model.decoder.layers.%d.self_attn_layer_norm.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"ln1.bias", "model.decoder.layers.%d.self_attn_layer_norm.bias", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"attn.q.weight", "model.decoder.layers.%d.self_attn.q_proj.weight", QID_TENSOR_LINEAR, S_Q, S_D, W_ALWAYS, 0},
    {"attn.q.bias", "model.decoder.layers.%d.self_attn.q_proj.bias", QID_TENSOR_BIAS, S_Q, S_ONE, W_QKV_BIAS, 0},
    {"attn.k.weight", "model.decoder.layers.%d.self_attn.k_proj.weight", QID_TENSOR_LINEAR, S_KV, S_D, W_ALWAYS, 0},
    {"attn.k.bias", "model.decoder.layers.%d.self_attn.k_proj.bias", QID_TENSOR_BIAS, S_KV, S_ONE, W_QKV_BIAS, 0},
    {"attn.v.weight", "model.decoder.layers.%d.self_attn.v_proj.weight", QID_TENSOR_LINEAR, S_KV, S_D, W_ALWAYS, 0},
    {"attn.v.bias", "model.decoder.layers.%d.self_attn.v_proj.bias", QID_TENSOR_BIAS, S_KV, S_ONE, W_QKV_BIAS, 0},
    {"attn.out.weight", "model.decoder.layers.%d.self_attn.out_proj.weight", QID_TENSOR_LINEAR, S_D, S_Q, W_ALWAYS, 0},
    {"attn.out.bias", "model.decoder.layers.%d.self_attn.out_proj.bias", QID_TENSOR_BIAS, S_D, S_ONE, W_O_BIAS, 0},
    {"ln2.weight", "model.decoder.layers.%d.final_layer_norm.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"ln2.bias", "model.decoder.layers.%d.final_layer_norm.bias", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"mlp.up.weight", "model.decoder.layers.%d.fc1.weight", QID_TENSOR_LINEAR, S_FF, S_D, W_ALWAYS, 0},
    {"mlp.up.bias", "model.decoder.layers.%d.fc1.bias", QID_TENSOR_BIAS, S_FF, S_ONE, W_MLP_BIAS, 0},
    {"mlp.down.weight", "model.decoder.layers.%d.fc2.weight", QID_TENSOR_LINEAR, S_D, S_FF, W_ALWAYS, 0},
    {"mlp.down.bias", "model.decoder.layers.%d.fc2.bias", QID_TENSOR_BIAS, S_D, S_ONE, W_MLP_BIAS, 0},
};
static const tensor_template opt_global_tail[] = {
    {"final_norm.weight", "model.decoder.final_layer_norm.weight", QID_TENSOR_NORM, S_D, S_ONE, W_FINAL_NORM, 0},
    {"final_norm.bias", "model.decoder.final_layer_norm.bias", QID_TENSOR_NORM, S_D, S_ONE, W_FINAL_NORM, 0},
    {"proj_out.weight", "model.decoder.project_out.weight", QID_TENSOR_PROJ, S_E, S_D, W_PROJ, 0},
    {"lm_head.weight", "lm_head.weight", QID_TENSOR_EMBED, S_V, S_E, W_UNTIED, 0},
};

/* BLOOM: query_key_value rows grouped per head as [H, 3, hd], as gpt-neox. */
static const tensor_template bloom_global_head[] = {
    {"embed.weight", "transformer.word_embeddings.weight", QID_TENSOR_EMBED, S_V, S_D, W_ALWAYS, 0},
    {"embed_norm.weight", "transformer.word_embeddings_layernorm.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"embed_norm.bias", "transformer.word_embeddings_layernorm.bias", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
};
static const tensor_template bloom_layer[] = {
    {"ln1.weight", "transformer.h.%d.input_layernorm.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"ln1.bias", "transformer.h.%d.input_layernorm.bias", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"attn.qkv.weight", "transformer.h.%d.self_attention.query_key_value.weight", QID_TENSOR_LINEAR, S_QKV, S_D,
     W_ALWAYS, 0},
    {"attn.qkv.bias", "transformer.h.%d.self_attention.query_key_value.bias", QID_TENSOR_BIAS, S_QKV, S_ONE, W_ALWAYS,
     0},
    {"attn.out.weight", "transformer.h.%d.self_attention.dense.weight", QID_TENSOR_LINEAR, S_D, S_Q, W_ALWAYS, 0},
    {"attn.out.bias", "transformer.h.%d.self_attention.dense.bias", QID_TENSOR_BIAS, S_D, S_ONE, W_ALWAYS, 0},
    {"ln2.weight", "transformer.h.%d.post_attention_layernorm.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"ln2.bias", "transformer.h.%d.post_attention_layernorm.bias", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"mlp.up.weight", "transformer.h.%d.mlp.dense_h_to_4h.weight", QID_TENSOR_LINEAR, S_FF, S_D, W_ALWAYS, 0},
    {"mlp.up.bias", "transformer.h.%d.mlp.dense_h_to_4h.bias", QID_TENSOR_BIAS, S_FF, S_ONE, W_ALWAYS, 0},
    {"mlp.down.weight", "transformer.h.%d.mlp.dense_4h_to_h.weight", QID_TENSOR_LINEAR, S_D, S_FF, W_ALWAYS, 0},
    {"mlp.down.bias", "transformer.h.%d.mlp.dense_4h_to_h.bias", QID_TENSOR_BIAS, S_D, S_ONE, W_ALWAYS, 0},
};
static const tensor_template bloom_global_tail[] = {
    {"final_norm.weight", "transformer.ln_f.weight", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"final_norm.bias", "transformer.ln_f.bias", QID_TENSOR_NORM, S_D, S_ONE, W_ALWAYS, 0},
    {"lm_head.weight", "lm_head.weight", QID_TENSOR_EMBED, S_V, S_D, W_UNTIED, 0},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int64_t shape_value(const qid_model_config *c, int sym)
{
    switch (sym) {
    case S_D: return c->d_model;
    case S_V: return c->vocab_size;
    case S_FF: return c->d_ff;
    case S_Q: return c->n_heads * c->head_dim;
    case S_KV: return c->n_kv_heads * c->head_dim;
    case S_QKV: return (c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
    case S_P: return qid_pos_rows(c);
    case S_E: return qid_embed_width(c);
    default: return 1;
    }
}

static int tensor_present(const qid_model_config *c, int when)
{
    switch (when) {
    case W_UNTIED: return !c->tie_embeddings;
    case W_QKV_BIAS: return c->qkv_bias;
    case W_O_BIAS: return c->o_bias;
    case W_MLP_BIAS: return c->mlp_bias;
    case W_PROJ: return c->d_embed > 0 && c->d_embed != c->d_model;
    case W_FINAL_NORM: return !c->no_final_norm;
    default: return 1;
    }
}

/* Appends the present tensors of templates[0..n) for layer (or -1). */
static void add_templates(const qid_model_config *c, const tensor_template *tpl, size_t n, int layer,
                          qid_tensor_spec *out, size_t *count)
{
    for (size_t i = 0; i < n; i++) {
        if (!tensor_present(c, tpl[i].when)) continue;
        qid_tensor_spec *t = &out[(*count)++];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", tpl[i].name);
        const char *mark = strstr(tpl[i].hf, "%d");
        if (layer >= 0 && mark)
            snprintf(t->hf_name, sizeof t->hf_name, "%.*s%d%s", (int)(mark - tpl[i].hf), tpl[i].hf, layer, mark + 2);
        else
            snprintf(t->hf_name, sizeof t->hf_name, "%s", tpl[i].hf);
        t->layer = layer;
        t->kind = tpl[i].kind;
        t->hf_transposed = tpl[i].transposed;
        t->ndim = tpl[i].cols == S_ONE ? 1 : 2;
        t->shape[0] = shape_value(c, tpl[i].rows);
        t->shape[1] = tpl[i].cols == S_ONE ? 1 : shape_value(c, tpl[i].cols);
    }
}

typedef struct {
    const tensor_template *head, *layer, *tail;
    size_t n_head, n_layer, n_tail;
} arch_table;

#define TABLE(p)                                                                                                       \
    (arch_table)                                                                                                       \
    {                                                                                                                  \
        p##_global_head, p##_layer, p##_global_tail, COUNT(p##_global_head), COUNT(p##_layer), COUNT(p##_global_tail)  \
    }

static arch_table table_of(qid_arch arch)
{
    if (arch == QID_ARCH_GPT2) return TABLE(gpt2);
    if (arch == QID_ARCH_OPT) return TABLE(opt);
    if (arch == QID_ARCH_BLOOM) return TABLE(bloom);
    if (arch == QID_ARCH_LLAMA)
        return (arch_table){llama_global_head,        llama_layer,        llama_global_tail,
                            COUNT(llama_global_head), COUNT(llama_layer), COUNT(llama_global_tail)};
    return (arch_table){neox_global_head,        neox_layer,        neox_global_tail,
                        COUNT(neox_global_head), COUNT(neox_layer), COUNT(neox_global_tail)};
}

qid_tensor_spec *qid_ckpt_tensors(const qid_model_config *cfg, size_t *n)
{
    arch_table tb = table_of(cfg->arch);
    size_t cap = tb.n_head + tb.n_tail + (size_t)cfg->n_layers * tb.n_layer, count = 0;
    qid_tensor_spec *out = qid_calloc(cap, sizeof *out, "the tensor table");
    add_templates(cfg, tb.head, tb.n_head, -1, out, &count);
    for (int l = 0; l < (int)cfg->n_layers; l++)
        add_templates(cfg, tb.layer, tb.n_layer, l, out, &count);
    add_templates(cfg, tb.tail, tb.n_tail, -1, out, &count);
    *n = count;
    return out;
}

qid_tensor_spec *qid_ckpt_layer_tensors(const qid_model_config *cfg, int layer, size_t *n)
{
    arch_table tb = table_of(cfg->arch);
    size_t count = 0;
    qid_tensor_spec *out = qid_calloc(tb.n_head + tb.n_tail + tb.n_layer, sizeof *out, "a layer's tensor table");
    if (layer >= 0) {
        add_templates(cfg, tb.layer, tb.n_layer, layer, out, &count);
    } else {
        add_templates(cfg, tb.head, tb.n_head, -1, out, &count);
        add_templates(cfg, tb.tail, tb.n_tail, -1, out, &count);
    }
    *n = count;
    return out;
}

int64_t qid_tensor_numel(const qid_tensor_spec *t) { return t->shape[0] * t->shape[1]; }

void qid_tensor_path(const qid_tensor_spec *t, char *buf, size_t len)
{
    if (t->layer >= 0)
        snprintf(buf, len, "/layers/%d/%s", t->layer, t->name);
    else
        snprintf(buf, len, "/%s", t->name);
}

static void count_params(const qid_model_config *cfg, int64_t *nonembed, int64_t *total)
{
    size_t n = 0;
    qid_tensor_spec *t = qid_ckpt_tensors(cfg, &n);
    *nonembed = *total = 0;
    for (size_t i = 0; i < n; i++) {
        *total += qid_tensor_numel(&t[i]);
        if (t[i].kind != QID_TENSOR_EMBED) *nonembed += qid_tensor_numel(&t[i]);
    }
    free(t);
}

int64_t qid_params_nonembedding(const qid_model_config *cfg)
{
    int64_t ne, tot;
    count_params(cfg, &ne, &tot);
    return ne;
}

int64_t qid_params_total(const qid_model_config *cfg)
{
    int64_t ne, tot;
    count_params(cfg, &ne, &tot);
    return tot;
}

/* ---- config attributes ------------------------------------------------------ */

/* One table describes every /config attribute: written and read from it. */
typedef struct {
    const char *name;
    char type; /* 'i' int64, 'd' double, 'b' flag stored as int64 */
    size_t offset;
    const char *doc;
    int optional; /* absent in checkpoints written before gpt2/opt/bloom: reads as def */
    int64_t def;
} config_field;

#define CF(n, t, f, d)                                                                                                 \
    {                                                                                                                  \
        n, t, offsetof(qid_model_config, f), d, 0, 0                                                                   \
    }
#define CF_OPT(n, t, f, d, def)                                                                                        \
    {                                                                                                                  \
        n, t, offsetof(qid_model_config, f), d, 1, def                                                                 \
    }
static const config_field config_fields[] = {
    CF("vocab_size", 'i', vocab_size, "vocabulary size (rows of embed.weight)"),
    CF("d_model", 'i', d_model, "hidden size"),
    CF("n_layers", 'i', n_layers, "transformer layers"),
    CF("n_heads", 'i', n_heads, "attention heads"),
    CF("n_kv_heads", 'i', n_kv_heads, "key/value heads (grouped-query attention)"),
    CF("head_dim", 'i', head_dim, "dimension per head"),
    CF("d_ff", 'i', d_ff, "MLP inner width"),
    CF("max_seq_len", 'i', max_seq_len, "maximum positions"),
    CF("rotary_dim", 'i', rotary_dim, "rotated dimensions per head"),
    CF("rotary_pct", 'd', rotary_pct, "fraction of each head rotated"),
    CF("rope_theta", 'd', rope_theta, "rotary base"),
    CF("norm_eps", 'd', norm_eps, "LayerNorm/RMSNorm epsilon"),
    CF("parallel_residual", 'b', parallel_residual, "attention and MLP read the same input"),
    CF("tie_embeddings", 'b', tie_embeddings, "output head shares embed.weight"),
    CF("qkv_bias", 'b', qkv_bias, "q/k/v projections have biases"),
    CF("o_bias", 'b', o_bias, "attention output projection has a bias"),
    CF("mlp_bias", 'b', mlp_bias, "MLP projections have biases"),
    CF("sliding_window", 'i', sliding_window, "attention window, 0 = full causal"),
    CF_OPT("post_norm", 'b', post_norm, "norm after each residual add (OPT post-LN), not before the block", 0),
    CF_OPT("no_final_norm", 'b', no_final_norm, "no final norm before the head", 0),
    CF_OPT("d_embed", 'i', d_embed, "token embedding width when not d_model (OPT project_in/out), else 0", 0),
    CF_OPT("attn_unscaled", 'b', attn_unscaled, "attention scores not scaled by 1/sqrt(head_dim)", 0),
    CF_OPT("attn_layer_scaled", 'b', attn_layer_scaled, "attention scores also divided by layer index + 1", 0),
};
#undef CF
#undef CF_OPT

static int write_config(hid_t grp, const qid_model_config *cfg, qid_error *err)
{
    int rc = qid_h5_attr_write_str(grp, "arch", qid_arch_name(cfg->arch), err);
    if (!rc) rc = qid_h5_attr_write_str(grp, "norm", cfg->arch == QID_ARCH_LLAMA ? "rmsnorm" : "layernorm", err);
    const char *act = cfg->arch == QID_ARCH_LLAMA ? "silu" : qid_act_name(cfg->act);
    if (!rc) rc = qid_h5_attr_write_str(grp, "activation", act, err);
    if (!rc) rc = qid_h5_attr_write_str(grp, "mlp", cfg->arch == QID_ARCH_LLAMA ? "swiglu" : act, err);
    if (!rc)
        rc = qid_h5_attr_write_str(grp, "position",
                                   cfg->arch == QID_ARCH_BLOOM ? "alibi"
                                   : qid_pos_rows(cfg) > 0     ? "learned"
                                                               : "rotary",
                                   err);
    for (size_t i = 0; !rc && i < COUNT(config_fields); i++) {
        const config_field *f = &config_fields[i];
        const char *p = (const char *)cfg + f->offset;
        if (f->type == 'd')
            rc = qid_h5_attr_write_f64(grp, f->name, *(const double *)p, err);
        else if (f->type == 'b')
            rc = qid_h5_attr_write_i64(grp, f->name, *(const int *)p, err);
        else
            rc = qid_h5_attr_write_i64(grp, f->name, *(const int64_t *)p, err);
    }
    return rc;
}

static int read_config(hid_t grp, qid_model_config *cfg, qid_error *err)
{
    char arch[32];
    memset(cfg, 0, sizeof *cfg);
    int rc = qid_h5_attr_read_str(grp, "/config", "arch", arch, sizeof arch, err);
    if (rc) return rc;
    int a = qid_arch_parse(arch);
    if (a < 0) return qid_error_set(err, QID_E_FORMAT, "unknown architecture '%s' in /config", arch);
    cfg->arch = (qid_arch)a;
    cfg->act = cfg->arch == QID_ARCH_LLAMA ? QID_ACT_SILU : QID_ACT_GELU;
    if (cfg->arch != QID_ARCH_LLAMA && qid_h5_attr_exists(grp, "activation")) {
        char act[32];
        if ((rc = qid_h5_attr_read_str(grp, "/config", "activation", act, sizeof act, err))) return rc;
        int k = qid_act_parse(act);
        if (k < 0) return qid_error_set(err, QID_E_FORMAT, "unknown activation '%s' in /config", act);
        cfg->act = (qid_act)k;
    }
    for (size_t i = 0; !rc && i < COUNT(config_fields); i++) {
        const config_field *f = &config_fields[i];
        char *p = (char *)cfg + f->offset;
        if (f->optional && !qid_h5_attr_exists(grp, f->name)) {
            if (f->type == 'b')
                *(int *)p = (int)f->def;
            else
                *(int64_t *)p = f->def;
            continue;
        }
        if (f->type == 'd') {
            rc = qid_h5_attr_read_f64(grp, "/config", f->name, (double *)p, err);
        } else if (f->type == 'b') {
            int64_t v = 0;
            rc = qid_h5_attr_read_i64(grp, "/config", f->name, &v, err);
            *(int *)p = v != 0;
        } else {
            rc = qid_h5_attr_read_i64(grp, "/config", f->name, (int64_t *)p, err);
        }
    }
    return rc;
}

/* ---- writing ------------------------------------------------------------------ */

struct qid_ckpt_writer {
    hid_t file, layers;
    char *tmp_path;
    char path[1024];
    qid_model_config cfg;
    qid_dtype dtype;
    hid_t ftype;
    qid_tensor_spec *tensors;
    size_t n_tensors, next;
    qid_sha256 tensor_hash;
};

static hid_t create_group(hid_t parent, const char *name, qid_error *err)
{
    hid_t gcpl = H5I_INVALID_HID, g = H5I_INVALID_HID;
    QID_H5_TRY(err, gcpl = H5Pcreate(H5P_GROUP_CREATE), "cannot create a property list");
    QID_H5_TRY(err, H5Pset_obj_track_times(gcpl, 0), "cannot set group properties");
    QID_H5_TRY(err, g = H5Gcreate2(parent, name, H5P_DEFAULT, gcpl, H5P_DEFAULT), "cannot create group '%s'", name);
fail:
    if (gcpl >= 0) H5Pclose(gcpl);
    return g;
}

qid_ckpt_writer *qid_ckpt_create(const char *path, const qid_model_config *cfg, const qid_ckpt_meta *meta,
                                 const qid_ckpt_source *src, qid_error *err)
{
    if (qid_config_validate(cfg, err)) return NULL;
    qid_ckpt_writer *w = qid_calloc(1, sizeof *w, "a checkpoint writer");
    hid_t grp = H5I_INVALID_HID;
    w->file = w->layers = w->ftype = H5I_INVALID_HID;
    w->cfg = *cfg;
    w->dtype = meta->dtype;
    snprintf(w->path, sizeof w->path, "%s", path);
    w->tensors = qid_ckpt_tensors(cfg, &w->n_tensors);
    qid_sha256_init(&w->tensor_hash);
    w->ftype = qid_h5_dtype_type(meta->dtype);

    w->file = qid_h5_create_tmp(path, &w->tmp_path, err);
    if (w->file < 0) goto fail;
    int64_t nonembed = 0, total = 0;
    count_params(cfg, &nonembed, &total);
    int rc = qid_h5_write_format(w->file, QID_CKPT_FORMAT, QID_CKPT_SCHEMA_VERSION, err);
    if (!rc) rc = qid_h5_attr_write_str(w->file, "arch", qid_arch_name(cfg->arch), err);
    if (!rc) rc = qid_h5_attr_write_str(w->file, "model", meta->model, err);
    if (!rc) rc = qid_h5_attr_write_i64(w->file, "step", meta->step, err);
    if (!rc) rc = qid_h5_attr_write_i64(w->file, "tokens_seen", meta->tokens_seen, err);
    if (!rc) rc = qid_h5_attr_write_str(w->file, "dtype", qid_dtype_name(meta->dtype), err);
    if (!rc) rc = qid_h5_attr_write_i64(w->file, "params_nonembedding", nonembed, err);
    if (!rc) rc = qid_h5_attr_write_i64(w->file, "params_total", total, err);
    if (!rc) rc = qid_h5_attr_write_str(w->file, "source_format", meta->source_format, err);
    if (!rc) rc = qid_h5_attr_write_f64(w->file, "lr_frac", meta->lr_frac, err);
    if (!rc) rc = qid_h5_attr_write_str(w->file, "lr_schedule", meta->lr_schedule, err);
    if (!rc) rc = qid_h5_attr_write_str(w->file, "created_by", "qid " QID_VERSION, err);
    if (rc) goto fail;

    /* source hash: SHA-256 of the newline-separated per-file digests */
    char source_hex[65];
    {
        qid_sha256 h;
        uint8_t d[32];
        const char *digests = src && src->sha256 ? src->sha256 : "";
        qid_sha256_init(&h);
        qid_sha256_update(&h, digests, strlen(digests));
        qid_sha256_final(&h, d);
        qid_sha256_hex(d, source_hex);
    }
    if (qid_h5_attr_write_str(w->file, "source_sha256", source_hex, err)) goto fail;

    if ((grp = create_group(w->file, "config", err)) < 0) goto fail;
    if (write_config(grp, cfg, err)) goto fail;
    H5Gclose(grp);
    if ((grp = create_group(w->file, "source", err)) < 0) goto fail;
    rc = qid_h5_attr_write_str(grp, "files", src && src->files ? src->files : "", err);
    if (!rc) rc = qid_h5_attr_write_str(grp, "sha256", src && src->sha256 ? src->sha256 : "", err);
    if (!rc) rc = qid_h5_attr_write_str(grp, "config_json", src && src->config_json ? src->config_json : "", err);
    if (!rc) rc = qid_h5_attr_write_str(grp, "directory", src && src->directory ? src->directory : "", err);
    if (rc) goto fail;
    H5Gclose(grp);
    grp = H5I_INVALID_HID;
    if ((w->layers = create_group(w->file, "layers", err)) < 0) goto fail;
    for (int l = 0; l < (int)cfg->n_layers; l++) {
        char name[32];
        snprintf(name, sizeof name, "%d", l);
        hid_t g = create_group(w->layers, name, err);
        if (g < 0) goto fail;
        H5Gclose(g);
    }
    return w;
fail:
    if (grp >= 0) H5Gclose(grp);
    qid_error_wrap(err, err ? err->code : QID_E_HDF5, "cannot create checkpoint '%s'", path);
    qid_ckpt_abort(w);
    return NULL;
}

/* Index of the first non-finite element of data in dtype, or -1. */
static int64_t first_nonfinite(const void *data, qid_dtype dt, int64_t n)
{
    if (dt == QID_DTYPE_F32) {
        const float *f = data;
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(f[i])) return i;
        return -1;
    }
    const uint16_t *h = data;
    uint16_t mask = dt == QID_DTYPE_F16 ? 0x7c00 : 0x7f80;
    for (int64_t i = 0; i < n; i++)
        if ((h[i] & mask) == mask) return i;
    return -1;
}

/* Chunk rows so a chunk stays under 256 MiB (HDF5's limit is 4 GiB); small
 * tensors are one chunk, read with one call. */
static hsize_t chunk_rows(const qid_tensor_spec *t, size_t elem)
{
    const uint64_t max_bytes = 256u << 20;
    uint64_t row_bytes = (uint64_t)t->shape[1] * elem;
    uint64_t rows = max_bytes / (row_bytes ? row_bytes : 1);
    if (rows < 1) rows = 1;
    return (hsize_t)(rows < (uint64_t)t->shape[0] ? rows : (uint64_t)t->shape[0]);
}

int qid_ckpt_write_tensor(qid_ckpt_writer *w, const qid_tensor_spec *t, const void *data, qid_error *err)
{
    hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    char path[160];
    qid_tensor_path(t, path, sizeof path);
    if (w->next >= w->n_tensors || strcmp(w->tensors[w->next].name, t->name) != 0 ||
        w->tensors[w->next].layer != t->layer)
        qid_die("checkpoint tensors written out of order at '%s'", path);
    int64_t n = qid_tensor_numel(t), bad = first_nonfinite(data, w->dtype, n);
    if (bad >= 0)
        return qid_error_set(err, QID_E_NUMERIC,
                             "non-finite value in tensor '%s' at element %" PRId64 " (row %" PRId64 ", column %" PRId64
                             ")",
                             path, bad, bad / t->shape[1], bad % t->shape[1]);
    hsize_t dims[2] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1]};
    hsize_t chunk[2] = {chunk_rows(t, qid_dtype_size(w->dtype)), dims[1]};
    QID_H5_TRY(err, space = H5Screate_simple(t->ndim, dims, NULL), "cannot create dataspace for '%s'", path);
    QID_H5_TRY(err, dcpl = H5Pcreate(H5P_DATASET_CREATE), "cannot create a property list");
    QID_H5_TRY(err, H5Pset_chunk(dcpl, t->ndim, chunk), "cannot set chunking of '%s'", path);
    QID_H5_TRY(err, H5Pset_obj_track_times(dcpl, 0), "cannot set properties of '%s'", path);
    QID_H5_TRY(err, dset = H5Dcreate2(w->file, path, w->ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
               "cannot create dataset '%s' in '%s'", path, w->tmp_path);
    QID_H5_TRY(err, H5Dwrite(dset, w->ftype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "cannot write dataset '%s' in '%s'",
               path, w->tmp_path);
    H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
    qid_sha256_update(&w->tensor_hash, data, (size_t)n * qid_dtype_size(w->dtype));
    w->next++;
    return QID_OK;
fail:
    if (dset >= 0) H5Dclose(dset);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return err ? err->code : QID_E_HDF5;
}

static void writer_free(qid_ckpt_writer *w)
{
    if (w->ftype >= 0) H5Tclose(w->ftype);
    free(w->tensors);
    free(w);
}

int qid_ckpt_finish(qid_ckpt_writer *w, qid_error *err)
{
    if (w->next != w->n_tensors) {
        char path[160];
        qid_tensor_path(&w->tensors[w->next], path, sizeof path);
        qid_error_set(err, QID_E_INVALID, "checkpoint '%s' is incomplete: tensor '%s' was not written", w->path, path);
        qid_ckpt_abort(w);
        return QID_E_INVALID;
    }
    uint8_t d[32];
    char hex[65];
    qid_sha256_final(&w->tensor_hash, d);
    qid_sha256_hex(d, hex);
    int rc = qid_h5_attr_write_str(w->file, "tensor_sha256", hex, err);
    if (rc) {
        qid_ckpt_abort(w);
        return rc;
    }
    H5Gclose(w->layers);
    w->layers = H5I_INVALID_HID;
    rc = qid_h5_commit(w->file, w->tmp_path, w->path, err);
    w->file = H5I_INVALID_HID;
    w->tmp_path = NULL;
    writer_free(w);
    return rc;
}

hid_t qid_ckpt_writer_file(const qid_ckpt_writer *w) { return w->file; }

void qid_ckpt_abort(qid_ckpt_writer *w)
{
    if (!w) return;
    if (w->layers >= 0) H5Gclose(w->layers);
    qid_h5_discard(w->file, w->tmp_path);
    writer_free(w);
}

/* lr_frac and lr_schedule: the root attributes, or for a checkpoint written
 * by `qid train` before they existed its /train group's lr_at_step / lr;
 * NaN and "" when neither is there. */
static int read_lr(hid_t file, qid_ckpt_meta *m, qid_error *err)
{
    m->lr_frac = NAN;
    m->lr_schedule[0] = '\0';
    if (qid_h5_attr_exists(file, "lr_frac")) {
        int rc = qid_h5_attr_read_f64(file, "/", "lr_frac", &m->lr_frac, err);
        if (!rc && qid_h5_attr_exists(file, "lr_schedule"))
            rc = qid_h5_attr_read_str(file, "/", "lr_schedule", m->lr_schedule, sizeof m->lr_schedule, err);
        return rc;
    }
    if (H5Lexists(file, "train", H5P_DEFAULT) <= 0) return QID_OK;
    hid_t g = H5Gopen2(file, "train", H5P_DEFAULT);
    if (g < 0) return QID_OK;
    double at = NAN, peak = NAN;
    if (qid_h5_attr_exists(g, "lr_at_step") && qid_h5_attr_exists(g, "lr") &&
        !qid_h5_attr_read_f64(g, ".", "lr_at_step", &at, NULL) && !qid_h5_attr_read_f64(g, ".", "lr", &peak, NULL) &&
        peak > 0)
        m->lr_frac = at / peak;
    H5Gclose(g);
    return QID_OK;
}

/* ---- reading -------------------------------------------------------------------- */

int qid_ckpt_open(const char *path, qid_ckpt *ck, qid_error *err)
{
    memset(ck, 0, sizeof *ck);
    snprintf(ck->path, sizeof ck->path, "%s", path);
    hid_t grp = H5I_INVALID_HID;
    ck->file = qid_h5_open_format(path, QID_CKPT_FORMAT, QID_CKPT_SCHEMA_VERSION, &ck->schema_version, err);
    if (ck->file < 0) return err ? err->code : QID_E_FORMAT;
    QID_H5_TRY(err, grp = H5Gopen2(ck->file, "config", H5P_DEFAULT), "cannot open group '/config' in '%s'", path);
    int rc = read_config(grp, &ck->cfg, err);
    H5Gclose(grp);
    if (rc) goto fail_wrap;
    if (qid_config_validate(&ck->cfg, err)) goto fail_wrap;
    char dtype[32];
    qid_ckpt_meta *m = &ck->meta;
    rc = qid_h5_attr_read_str(ck->file, "/", "model", m->model, sizeof m->model, err);
    if (!rc) rc = qid_h5_attr_read_i64(ck->file, "/", "step", &m->step, err);
    if (!rc) rc = qid_h5_attr_read_i64(ck->file, "/", "tokens_seen", &m->tokens_seen, err);
    if (!rc) rc = qid_h5_attr_read_str(ck->file, "/", "dtype", dtype, sizeof dtype, err);
    if (!rc) rc = qid_h5_attr_read_i64(ck->file, "/", "params_nonembedding", &m->params_nonembedding, err);
    if (!rc) rc = qid_h5_attr_read_i64(ck->file, "/", "params_total", &m->params_total, err);
    if (!rc) rc = qid_h5_attr_read_str(ck->file, "/", "source_sha256", m->source_sha256, sizeof m->source_sha256, err);
    if (!rc) rc = qid_h5_attr_read_str(ck->file, "/", "tensor_sha256", m->tensor_sha256, sizeof m->tensor_sha256, err);
    if (!rc) rc = qid_h5_attr_read_str(ck->file, "/", "source_format", m->source_format, sizeof m->source_format, err);
    if (!rc) rc = read_lr(ck->file, m, err);
    if (rc) goto fail_wrap;
    int dt = qid_dtype_parse(dtype);
    if (dt < 0) {
        qid_error_set(err, QID_E_FORMAT, "unknown dtype '%s' in '%s'", dtype, path);
        goto fail_close;
    }
    m->dtype = (qid_dtype)dt;
    return QID_OK;
fail:
fail_wrap:
    qid_error_wrap(err, err ? err->code : QID_E_FORMAT, "cannot read checkpoint '%s'", path);
fail_close:
    H5Fclose(ck->file);
    ck->file = H5I_INVALID_HID;
    return err ? err->code : QID_E_FORMAT;
}

/* Opens the dataset of t and checks its shape and element size. */
static hid_t open_tensor(const qid_ckpt *ck, const qid_tensor_spec *t, qid_error *err)
{
    char path[160];
    qid_tensor_path(t, path, sizeof path);
    hid_t dset = H5I_INVALID_HID, space = H5I_INVALID_HID, type = H5I_INVALID_HID;
    hsize_t dims[2] = {0, 0};
    if (H5Lexists(ck->file, t->layer >= 0 ? "layers" : "/", H5P_DEFAULT) <= 0 ||
        H5Lexists(ck->file, path, H5P_DEFAULT) <= 0) {
        qid_error_set(err, QID_E_FORMAT, "tensor '%s' missing in '%s'", path, ck->path);
        return H5I_INVALID_HID;
    }
    QID_H5_TRY(err, dset = H5Dopen2(ck->file, path, H5P_DEFAULT), "cannot open dataset '%s' in '%s'", path, ck->path);
    QID_H5_TRY(err, space = H5Dget_space(dset), "cannot read the shape of '%s' in '%s'", path, ck->path);
    int nd = H5Sget_simple_extent_ndims(space);
    if (nd != t->ndim || H5Sget_simple_extent_dims(space, dims, NULL) < 0 || dims[0] != (hsize_t)t->shape[0] ||
        (nd == 2 && dims[1] != (hsize_t)t->shape[1])) {
        qid_error_set(err, QID_E_FORMAT,
                      "tensor '%s' in '%s' has shape [%llu, %llu] (%d-D), the config implies [%" PRId64 ", %" PRId64
                      "]",
                      path, ck->path, (unsigned long long)dims[0], (unsigned long long)(nd == 2 ? dims[1] : 1), nd,
                      t->shape[0], t->shape[1]);
        goto fail;
    }
    QID_H5_TRY(err, type = H5Dget_type(dset), "cannot read the type of '%s'", path);
    if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != qid_dtype_size(ck->meta.dtype)) {
        qid_error_set(err, QID_E_FORMAT, "tensor '%s' in '%s' is not stored as %s", path, ck->path,
                      qid_dtype_name(ck->meta.dtype));
        goto fail;
    }
    if (qid_h5_check_storage(dset, path, ck->path, (uint64_t)qid_tensor_numel(t), 0, err)) goto fail;
    H5Tclose(type);
    H5Sclose(space);
    return dset;
fail:
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (dset >= 0) H5Dclose(dset);
    return H5I_INVALID_HID;
}

int qid_ckpt_check_tensor(const qid_ckpt *ck, const qid_tensor_spec *t, qid_error *err)
{
    hid_t dset = open_tensor(ck, t, err);
    if (dset < 0) return err && err->code ? err->code : QID_E_FORMAT;
    H5Dclose(dset);
    return QID_OK;
}

int qid_ckpt_read_raw(const qid_ckpt *ck, const qid_tensor_spec *t, void *out, qid_error *err)
{
    char path[160];
    qid_tensor_path(t, path, sizeof path);
    hid_t dset = open_tensor(ck, t, err), mtype = H5I_INVALID_HID;
    if (dset < 0) return err ? err->code : QID_E_FORMAT;
    mtype = qid_h5_dtype_type(ck->meta.dtype);
    QID_H5_TRY(err, H5Dread(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), "cannot read tensor '%s' in '%s'", path,
               ck->path);
    H5Tclose(mtype);
    H5Dclose(dset);
    return QID_OK;
fail:
    H5Tclose(mtype);
    H5Dclose(dset);
    return err ? err->code : QID_E_HDF5;
}

int qid_ckpt_read_f32(const qid_ckpt *ck, const qid_tensor_spec *t, float *out, qid_error *err)
{
    size_t n = (size_t)qid_tensor_numel(t);
    if (ck->meta.dtype == QID_DTYPE_F32) return qid_ckpt_read_raw(ck, t, out, err);
    /* 16-bit: read into the upper half of out, widen in place from the front
     * (element i's write only touches inputs already consumed). */
    uint16_t *raw = (uint16_t *)(void *)out + n;
    int rc = qid_ckpt_read_raw(ck, t, raw, err);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = raw[i];
        if (ck->meta.dtype == QID_DTYPE_BF16)
            qid_bf16_to_f32(&h, &out[i], 1);
        else
            qid_f16_to_f32(&h, &out[i], 1);
    }
    return QID_OK;
}

void qid_ckpt_close(qid_ckpt *ck)
{
    if (ck->file >= 0) H5Fclose(ck->file);
    ck->file = H5I_INVALID_HID;
}
