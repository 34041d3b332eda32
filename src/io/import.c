/* import.c - Hugging Face safetensors checkpoints to qid checkpoints, the
 * work behind `qid import` (cmd_import.c). See import.h for the contract.
 *
 * Does not: read the command line or print. */
#include "import.h"

#include <cJSON.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "gptq_packed.h"
#include "h5io.h"
#include "lr_schedule.h"
#include "sha256.h"
#include "tensor_source.h"

#define MAX_JSON_BYTES (16u << 20)

/* ---- config.json ------------------------------------------------------------ */

typedef struct {
    const cJSON *root;
    const char *where;
    qid_error *err;
    int failed;
} json_reader;

static const cJSON *jget(json_reader *r, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* Integer value of key, or def when absent (def < -1 marks it required). */
static int64_t jint(json_reader *r, const char *key, int64_t def)
{
    const cJSON *v = jget(r, key);
    if (!v) {
        if (def < -1 && !r->failed) {
            qid_error_set(r->err, QID_E_INVALID, "'%s' has no '%s'", r->where, key);
            r->failed = 1;
        }
        return def;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble || v->valuedouble < 0 ||
        v->valuedouble > 9.0e15) {
        if (!r->failed) qid_error_set(r->err, QID_E_INVALID, "'%s': '%s' is not a non-negative integer", r->where, key);
        r->failed = 1;
        return def;
    }
    return (int64_t)v->valuedouble;
}

static double jnum_in(json_reader *r, const cJSON *obj, const char *key, double def, int *found)
{
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsNumber(v)) {
        if (!r->failed) qid_error_set(r->err, QID_E_INVALID, "'%s': '%s' is not a number", r->where, key);
        r->failed = 1;
        return def;
    }
    if (found) *found = 1;
    return v->valuedouble;
}

static int jbool(json_reader *r, const char *key, int def)
{
    const cJSON *v = jget(r, key);
    if (!v) return def;
    if (!cJSON_IsBool(v)) {
        if (!r->failed) qid_error_set(r->err, QID_E_INVALID, "'%s': '%s' is not true or false", r->where, key);
        r->failed = 1;
        return def;
    }
    return cJSON_IsTrue(v);
}

static const char *jstr(json_reader *r, const char *key)
{
    const cJSON *v = jget(r, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The first of several spellings of a number (transformers renamed rotary
 * settings over time, and 5.x moves them into rope_parameters). */
static double jnum_any(json_reader *r, const char *const *keys, double def)
{
    const cJSON *rp = jget(r, "rope_parameters");
    for (int i = 0; keys[i]; i++) {
        int found = 0;
        double v = jnum_in(r, r->root, keys[i], def, &found);
        if (found) return v;
        v = jnum_in(r, rp, keys[i], def, &found);
        if (found) return v;
    }
    return def;
}

/* Rope scaling changes positions; the evaluator implements plain rotary only. */
static int check_rope_type(json_reader *r)
{
    const cJSON *scaling = jget(r, "rope_scaling");
    const cJSON *params = jget(r, "rope_parameters");
    const cJSON *type = NULL;
    if (scaling && cJSON_IsObject(scaling)) {
        type = cJSON_GetObjectItemCaseSensitive(scaling, "rope_type");
        if (!type) type = cJSON_GetObjectItemCaseSensitive(scaling, "type");
        if (!type) type = scaling;
    } else if (params && cJSON_IsObject(params)) {
        type = cJSON_GetObjectItemCaseSensitive(params, "rope_type");
    }
    if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "default") == 0)) {
        qid_error_set(r->err, QID_E_INVALID, "'%s': rope scaling '%s' is not supported (plain rotary only)", r->where,
                      cJSON_IsString(type) ? type->valuestring : "?");
        return 1;
    }
    return 0;
}

/* The MLP activation a GPT-2 or OPT config names (activation_function). */
static int family_act(json_reader *r, const char *type, const char *def, qid_model_config *cfg)
{
    const char *a = jstr(r, "activation_function");
    if (!a) a = def;
    if (strcmp(a, "gelu_new") == 0 || strcmp(a, "gelu_pytorch_tanh") == 0 || strcmp(a, "gelu_fast") == 0)
        cfg->act = QID_ACT_GELU_TANH;
    else if (strcmp(a, "gelu") == 0)
        cfg->act = QID_ACT_GELU;
    else if (strcmp(a, "relu") == 0)
        cfg->act = QID_ACT_RELU;
    else
        return qid_error_set(r->err, QID_E_INVALID,
                             "'%s': activation_function '%s' is not supported for %s (gelu_new, gelu or relu)",
                             r->where, a, type);
    return QID_OK;
}

/* A value under either of two keys (BLOOM's n_embed and hidden_size). */
static int64_t jint2(json_reader *r, const char *a, const char *b, int64_t def)
{
    return jget(r, a) ? jint(r, a, def) : jint(r, b, def);
}

/* GPT-2, OPT and BLOOM configs: no rotary, LayerNorm with bias, every
 * linear with a bias, heads of d_model / n_heads. */
static int parse_family(json_reader *r, const char *type, qid_model_config *cfg)
{
    const int gpt2 = strcmp(type, "gpt2") == 0, opt = strcmp(type, "opt") == 0;
    cfg->arch = gpt2 ? QID_ARCH_GPT2 : opt ? QID_ARCH_OPT : QID_ARCH_BLOOM;
    cfg->rotary_pct = 0.0;
    cfg->rope_theta = 10000.0; /* unused */
    cfg->qkv_bias = cfg->o_bias = cfg->mlp_bias = 1;
    cfg->tie_embeddings = jbool(r, "tie_word_embeddings", 1);
    int rc = QID_OK;
    if (gpt2) {
        cfg->vocab_size = jint(r, "vocab_size", -2);
        cfg->d_model = jint(r, "n_embd", -2);
        cfg->n_layers = jint(r, "n_layer", -2);
        cfg->n_heads = jint(r, "n_head", -2);
        cfg->max_seq_len = jint(r, "n_positions", -2);
        cfg->d_ff = jint(r, "n_inner", 4 * (cfg->d_model > 0 ? cfg->d_model : 0));
        static const char *const eps_keys[] = {"layer_norm_epsilon", NULL};
        cfg->norm_eps = jnum_any(r, eps_keys, 1e-5);
        cfg->attn_unscaled = !jbool(r, "scale_attn_weights", 1);
        cfg->attn_layer_scaled = jbool(r, "scale_attn_by_inverse_layer_idx", 0);
        (void)jbool(r, "reorder_and_upcast_attn", 0); /* float32 throughout here: the same scores */
        if (!r->failed) rc = family_act(r, type, "gelu_new", cfg);
        if (!rc && !r->failed && jget(r, "add_cross_attention") && jbool(r, "add_cross_attention", 0))
            rc = qid_error_set(r->err, QID_E_INVALID, "'%s': GPT-2 with cross-attention is not a language model",
                               r->where);
    } else if (opt) {
        cfg->vocab_size = jint(r, "vocab_size", -2);
        cfg->d_model = jint(r, "hidden_size", -2);
        cfg->n_layers = jint(r, "num_hidden_layers", -2);
        cfg->n_heads = jint(r, "num_attention_heads", -2);
        cfg->d_ff = jint(r, "ffn_dim", -2);
        cfg->max_seq_len = jint(r, "max_position_embeddings", 2048);
        cfg->norm_eps = 1e-5; /* nn.LayerNorm's default: OPT configs carry no epsilon */
        int64_t proj = jint(r, "word_embed_proj_dim", cfg->d_model);
        cfg->d_embed = proj != cfg->d_model ? proj : 0;
        int pre = jbool(r, "do_layer_norm_before", 1);
        cfg->post_norm = !pre;
        cfg->no_final_norm = !pre || jbool(r, "_remove_final_layer_norm", 0);
        int bias = jbool(r, "enable_bias", 1);
        cfg->qkv_bias = cfg->o_bias = cfg->mlp_bias = bias;
        if (!r->failed && !jbool(r, "layer_norm_elementwise_affine", 1))
            rc = qid_error_set(r->err, QID_E_INVALID,
                               "'%s': layer_norm_elementwise_affine false (LayerNorm without weights) is not supported",
                               r->where);
        if (!rc && !r->failed) rc = family_act(r, type, "relu", cfg);
    } else {
        cfg->vocab_size = jint(r, "vocab_size", -2);
        cfg->d_model = jint2(r, "n_embed", "hidden_size", -2);
        cfg->n_layers = jint2(r, "n_layer", "num_hidden_layers", -2);
        cfg->n_heads = jint2(r, "n_head", "num_attention_heads", -2);
        cfg->d_ff = 4 * (cfg->d_model > 0 ? cfg->d_model : 0);
        cfg->max_seq_len = 1 << 20; /* ALiBi has no position table: any window length */
        static const char *const eps_keys[] = {"layer_norm_epsilon", NULL};
        cfg->norm_eps = jnum_any(r, eps_keys, 1e-5);
        cfg->act = QID_ACT_GELU_TANH;
        if (!r->failed && jbool(r, "apply_residual_connection_post_layernorm", 0))
            rc = qid_error_set(r->err, QID_E_INVALID,
                               "'%s': apply_residual_connection_post_layernorm true is not supported", r->where);
    }
    if (!rc && r->failed) rc = r->err ? r->err->code : QID_E_INVALID;
    if (rc) return rc;
    cfg->n_kv_heads = cfg->n_heads;
    cfg->head_dim = cfg->n_heads ? cfg->d_model / cfg->n_heads : 0;
    cfg->rotary_dim = 0;
    return QID_OK;
}

int qid_import_parse_config(const char *json, const char *where, qid_model_config *cfg, qid_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qid_error_set(err, QID_E_FORMAT, "'%s' is not a JSON object", where);
    }
    json_reader r = {root, where, err, 0};
    const char *type = jstr(&r, "model_type");
    int rc = QID_OK;
    if (!type) {
        rc = qid_error_set(err, QID_E_INVALID, "'%s' has no 'model_type' (hint: is this a Hugging Face config.json?)",
                           where);
        goto done;
    }
    int neox = strcmp(type, "gpt_neox") == 0;
    int qwen2 = strcmp(type, "qwen2") == 0;
    int llama = strcmp(type, "llama") == 0 || strcmp(type, "mistral") == 0 || qwen2;
    int gpt2 = strcmp(type, "gpt2") == 0, opt = strcmp(type, "opt") == 0, bloom = strcmp(type, "bloom") == 0;
    if (!neox && !llama && !gpt2 && !opt && !bloom) {
        rc = qid_error_set(err, QID_E_INVALID,
                           "unknown architecture '%s' in '%s' (supported: gpt_neox, llama, mistral, qwen2, gpt2, opt, "
                           "bloom)",
                           type, where);
        goto done;
    }
    if (gpt2 || opt || bloom) {
        rc = parse_family(&r, type, cfg);
        goto validate;
    }
    if (check_rope_type(&r)) {
        rc = QID_E_INVALID;
        goto done;
    }
    cfg->arch = neox ? QID_ARCH_GPT_NEOX : QID_ARCH_LLAMA;
    cfg->vocab_size = jint(&r, "vocab_size", -2);
    cfg->d_model = jint(&r, "hidden_size", -2);
    cfg->n_layers = jint(&r, "num_hidden_layers", -2);
    cfg->n_heads = jint(&r, "num_attention_heads", -2);
    cfg->d_ff = jint(&r, "intermediate_size", -2);
    cfg->max_seq_len = jint(&r, "max_position_embeddings", 2048);
    if (r.failed) goto fail_reader;
    const char *act = jstr(&r, "hidden_act");
    const char *want_act = neox ? "gelu" : "silu";
    if (act && strcmp(act, want_act) != 0) {
        rc = qid_error_set(err, QID_E_INVALID, "'%s': hidden_act '%s' is not supported for %s (expected '%s')", where,
                           act, type, want_act);
        goto done;
    }
    static const char *const theta_keys[] = {"rope_theta", "rotary_emb_base", NULL};
    static const char *const pct_keys[] = {"rotary_pct", "partial_rotary_factor", NULL};
    if (neox) {
        cfg->n_kv_heads = cfg->n_heads;
        cfg->head_dim = cfg->n_heads ? cfg->d_model / cfg->n_heads : 0;
        cfg->rotary_pct = jnum_any(&r, pct_keys, 0.25);
        cfg->rope_theta = jnum_any(&r, theta_keys, 10000.0);
        static const char *const eps_keys[] = {"layer_norm_eps", NULL};
        cfg->norm_eps = jnum_any(&r, eps_keys, 1e-5);
        cfg->parallel_residual = jbool(&r, "use_parallel_residual", 1);
        cfg->tie_embeddings = jbool(&r, "tie_word_embeddings", 0);
        int bias = jbool(&r, "attention_bias", 1);
        cfg->qkv_bias = cfg->o_bias = bias;
        cfg->mlp_bias = 1;
    } else {
        cfg->n_kv_heads = jint(&r, "num_key_value_heads", cfg->n_heads);
        cfg->head_dim = jint(&r, "head_dim", cfg->n_heads ? cfg->d_model / cfg->n_heads : 0);
        cfg->rotary_pct = jnum_any(&r, pct_keys, 1.0);
        cfg->rope_theta = jnum_any(&r, theta_keys, 10000.0);
        static const char *const eps_keys[] = {"rms_norm_eps", NULL};
        cfg->norm_eps = jnum_any(&r, eps_keys, 1e-6);
        cfg->parallel_residual = 0;
        cfg->tie_embeddings = jbool(&r, "tie_word_embeddings", 0);
        if (qwen2) {
            cfg->qkv_bias = 1;
            cfg->o_bias = 0;
        } else {
            cfg->qkv_bias = cfg->o_bias = jbool(&r, "attention_bias", 0);
        }
        cfg->mlp_bias = jbool(&r, "mlp_bias", 0);
        int sliding = qwen2 ? jbool(&r, "use_sliding_window", 0) : 1;
        cfg->sliding_window = sliding ? jint(&r, "sliding_window", 0) : 0;
    }
    if (r.failed) goto fail_reader;
    cfg->rotary_dim = (int64_t)((double)cfg->head_dim * cfg->rotary_pct);
    cfg->act = neox ? QID_ACT_GELU : QID_ACT_SILU;
validate:
    if (rc) goto done;
    if (qid_config_validate(cfg, err)) {
        rc = qid_error_wrap(err, QID_E_INVALID, "'%s'", where);
        goto done;
    }
    goto done;
fail_reader:
    rc = err ? err->code : QID_E_INVALID;
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- shards ----------------------------------------------------------------- */

typedef struct {
    size_t n;
    char **names;     /* shard file names (basenames) */
    qid_tsrc *files;  /* their tensor lists */
    char *index_json; /* text of the index or NULL */
    const char *index_name, *single_name;
    qid_tsrc_format format;
} shard_set;

static void shards_free(shard_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->names[i]);
        if (s->files) qid_tsrc_close(&s->files[i]);
    }
    free(s->names);
    free(s->files);
    free(s->index_json);
    memset(s, 0, sizeof *s);
}

static int plain_name(const char *s) { return s[0] && s[0] != '.' && !strchr(s, '/'); }

static const char *index_file(qid_tsrc_format f)
{
    return f == QID_TSRC_TORCH ? "pytorch_model.bin.index.json" : "model.safetensors.index.json";
}
static const char *single_file(qid_tsrc_format f)
{
    return f == QID_TSRC_TORCH ? "pytorch_model.bin" : "model.safetensors";
}

static int dir_has(const char *dir, const char *name)
{
    char *p = qid_path_join(dir, name);
    int yes = qid_path_exists(p);
    free(p);
    return yes;
}

/* The weight files present: safetensors first (Hugging Face's own
 * preference), then torch.save archives; -1 when neither. */
static int detect_weights(const char *dir)
{
    for (int f = QID_TSRC_SAFETENSORS; f <= QID_TSRC_TORCH; f++)
        if (dir_has(dir, index_file((qid_tsrc_format)f)) || dir_has(dir, single_file((qid_tsrc_format)f))) return f;
    return -1;
}

/* Finds the single weight file or the shards named by the index. */
static int find_shards(const char *dir, qid_tsrc_format format, shard_set *s, cJSON **weight_map_root, qid_error *err)
{
    memset(s, 0, sizeof *s);
    *weight_map_root = NULL;
    s->format = format;
    s->index_name = index_file(format);
    s->single_name = single_file(format);
    char *index = qid_path_join(dir, s->index_name);
    char *single = qid_path_join(dir, s->single_name);
    int rc = QID_OK;
    if (qid_path_exists(index)) {
        rc = qid_read_text_file(index, MAX_JSON_BYTES, &s->index_json, NULL, err);
        if (rc) goto done;
        cJSON *root = cJSON_Parse(s->index_json);
        const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
        if (!cJSON_IsObject(map)) {
            cJSON_Delete(root);
            rc = qid_error_set(err, QID_E_FORMAT, "'%s' has no 'weight_map' object", index);
            goto done;
        }
        *weight_map_root = root;
        for (const cJSON *e = map->child; e; e = e->next) {
            if (!cJSON_IsString(e) || !plain_name(e->valuestring)) {
                rc = qid_error_set(err, QID_E_FORMAT, "'%s': weight_map entry '%s' is not a plain file name", index,
                                   e->string ? e->string : "?");
                goto done;
            }
            size_t k = 0;
            while (k < s->n && strcmp(s->names[k], e->valuestring) != 0)
                k++;
            if (k == s->n) {
                s->names = qid_realloc(s->names, (s->n + 1) * sizeof *s->names, "shard names");
                s->names[s->n++] = qid_strdup(e->valuestring);
            }
        }
        if (s->n == 0) {
            rc = qid_error_set(err, QID_E_FORMAT, "'%s' names no shards", index);
            goto done;
        }
    } else if (qid_path_exists(single)) {
        s->names = qid_malloc(sizeof *s->names, "shard names");
        s->names[0] = qid_strdup(s->single_name);
        s->n = 1;
    } else {
        rc = qid_error_set(err, QID_E_IO, "no %s or %s in '%s'", s->single_name, s->index_name, dir);
        goto done;
    }
    s->files = qid_calloc(s->n, sizeof *s->files, "shard headers");
    for (size_t i = 0; i < s->n && !rc; i++) {
        char *p = qid_path_join(dir, s->names[i]);
        rc = qid_tsrc_open(p, format, &s->files[i], err);
        free(p);
    }
done:
    free(index);
    free(single);
    return rc;
}

/* Tensors a Hugging Face checkpoint may carry that are not weights. */
static int ignorable(const char *name)
{
    static const char *const suffixes[] = {".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq",
                                           ".attn.bias", ".attn.masked_bias"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && strcmp(name + n - k, suffixes[i]) == 0) return 1;
    }
    return 0;
}

/* ---- import ------------------------------------------------------------------- */

static int st_to_dtype(qid_st_dtype dt)
{
    switch (dt) {
    case QID_ST_F32: return QID_DTYPE_F32;
    case QID_ST_F16: return QID_DTYPE_F16;
    case QID_ST_BF16: return QID_DTYPE_BF16;
    default: return -1;
    }
}

/* Default model name: config's _name_or_path (last component) or the directory. */
static void default_model_name(const char *config_json, const char *dir, char *out, size_t len)
{
    cJSON *root = cJSON_Parse(config_json);
    const cJSON *v = root ? cJSON_GetObjectItemCaseSensitive(root, "_name_or_path") : NULL;
    const char *src = cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : dir;
    char *copy = qid_strdup(src);
    size_t n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/')
        copy[--n] = '\0';
    snprintf(out, len, "%s", basename(copy));
    free(copy);
    cJSON_Delete(root);
}

/* meta->lr_frac and lr_schedule from o->schedule at o->step (NaN and ""
 * without a schedule). */
static int import_lr(const qid_import_opts *o, qid_ckpt_meta *meta, qid_error *err)
{
    meta->lr_frac = NAN;
    meta->lr_schedule[0] = '\0';
    if (!o->schedule) return QID_OK;
    if (o->step < 0)
        return qid_error_set(err, QID_E_INVALID,
                             "a learning-rate schedule needs the checkpoint's step (--step) to say where in it the "
                             "checkpoint is");
    qid_train_sched s;
    int rc = qid_sched_spec_parse(o->schedule, &s, err);
    if (rc) return rc;
    meta->lr_frac = qid_train_lr(&s, o->step);
    qid_sched_spec_format(&s, meta->lr_schedule, sizeof meta->lr_schedule);
    return QID_OK;
}

/* ---- GPTQ ----------------------------------------------------------------------- */

typedef struct {
    int on;
    qid_gptq_layout l; /* bits, group_size, v2 (in and out per layer) */
    int sym, desc_act;
    char format[16];
    char *json; /* the quantization config as read, for /gptq */
} gptq_cfg;

enum { P_QWEIGHT, P_QZEROS, P_SCALES, P_GIDX, N_PACKED };
static const char *const packed_suffix[N_PACKED] = {".qweight", ".qzeros", ".scales", ".g_idx"};

/* The quantization config: config.json's quantization_config, else
 * quantize_config.json (older AutoGPTQ). Sets g->on when one says gptq. */
static int read_gptq_config(const char *dir, const char *config_json, gptq_cfg *g, qid_error *err)
{
    memset(g, 0, sizeof *g);
    cJSON *root = cJSON_Parse(config_json), *own = NULL;
    const cJSON *q = root ? cJSON_GetObjectItemCaseSensitive(root, "quantization_config") : NULL;
    char *where = qid_path_join(dir, "config.json"), *text = NULL;
    int rc = QID_OK;
    if (!cJSON_IsObject(q)) {
        free(where);
        where = qid_path_join(dir, "quantize_config.json");
        if (qid_path_exists(where)) {
            if ((rc = qid_read_text_file(where, MAX_JSON_BYTES, &text, NULL, err))) goto done;
            q = own = cJSON_Parse(text);
            if (!cJSON_IsObject(q)) {
                rc = qid_error_set(err, QID_E_FORMAT, "'%s' is not a JSON object", where);
                goto done;
            }
        }
    }
    if (!cJSON_IsObject(q)) goto done;
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(q, "quant_method");
    if (cJSON_IsString(method) && strcmp(method->valuestring, "gptq") != 0) {
        rc = qid_error_set(err, QID_E_INVALID, "'%s': quant_method '%s' is not supported (qid imports gptq)", where,
                           method->valuestring);
        goto done;
    }
    json_reader r = {q, where, err, 0};
    g->l.bits = (int)jint(&r, "bits", -2);
    int64_t gs = -1;
    const cJSON *gsv = cJSON_GetObjectItemCaseSensitive(q, "group_size");
    if (cJSON_IsNumber(gsv) && gsv->valuedouble == -1)
        gs = -1;
    else
        gs = jint(&r, "group_size", -2);
    g->sym = jbool(&r, "sym", 1);
    g->desc_act = jbool(&r, "desc_act", 0);
    const char *fmt = jstr(&r, "checkpoint_format");
    if (r.failed) {
        rc = err ? err->code : QID_E_INVALID;
        goto done;
    }
    if (g->l.bits != 2 && g->l.bits != 3 && g->l.bits != 4 && g->l.bits != 8) {
        rc = qid_error_set(err, QID_E_INVALID, "'%s': GPTQ bits %d is not supported (2, 3, 4 or 8)", where, g->l.bits);
        goto done;
    }
    if (gs == 0) {
        rc = qid_error_set(err, QID_E_INVALID, "'%s': group_size 0 (expected -1 or a positive size)", where);
        goto done;
    }
    if (fmt && strcmp(fmt, "gptq") != 0 && strcmp(fmt, "gptq_v2") != 0) {
        rc = qid_error_set(err, QID_E_INVALID, "'%s': checkpoint_format '%s' is not supported (gptq or gptq_v2)", where,
                           fmt);
        goto done;
    }
    g->l.group_size = gs;
    g->l.v2 = fmt && strcmp(fmt, "gptq_v2") == 0;
    snprintf(g->format, sizeof g->format, "%s", fmt ? fmt : "gptq");
    g->json = cJSON_PrintUnformatted(q);
    g->on = 1;
done:
    free(where);
    free(text);
    cJSON_Delete(own);
    cJSON_Delete(root);
    return rc;
}

/* The shard holding name: *t and *shard, 0 when absent; two shards holding
 * it is an error. */
static int locate(const shard_set *sh, const char *name, const qid_tsrc_tensor **t, size_t *shard, qid_error *err)
{
    *t = NULL;
    for (size_t s = 0; s < sh->n; s++) {
        const qid_tsrc_tensor *x = qid_tsrc_find(&sh->files[s], name);
        if (!x) continue;
        if (*t)
            return qid_error_set(err, QID_E_FORMAT, "tensor '%s' is in both '%s' and '%s'", name, sh->names[*shard],
                                 sh->names[s]);
        *t = x;
        *shard = s;
    }
    return QID_OK;
}

/* locate, and when name is absent, the name without its base-model prefix
 * ("transformer." or "model."): GPT-2, OPT and BLOOM checkpoints on the
 * hub were often saved from the base model (gpt2's "h.0.attn.c_attn.weight",
 * opt-125m's "decoder.layers.0...."). */
static int locate_any(const shard_set *sh, const char *name, const qid_tsrc_tensor **t, size_t *shard, qid_error *err)
{
    int rc = locate(sh, name, t, shard, err);
    if (rc || *t) return rc;
    static const char *const prefixes[] = {"transformer.", "model."};
    for (int i = 0; i < 2; i++) {
        size_t k = strlen(prefixes[i]);
        if (strncmp(name, prefixes[i], k) == 0) return locate(sh, name + k, t, shard, err);
    }
    return QID_OK;
}

/* Transposes a (rows, cols) matrix of elem-byte values from in to out. */
static void transpose_bytes(void *restrict out, const void *restrict in, size_t rows, size_t cols, size_t elem)
{
    const char *a = in;
    char *b = out;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            memcpy(b + (c * rows + r) * elem, a + (r * cols + c) * elem, elem);
}

static void shape_text(const qid_tsrc_tensor *t, char *buf, size_t len)
{
    buf[0] = '\0';
    for (int d = 0; d < t->ndim; d++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%" PRIu64, d ? ", " : "", t->shape[d]);
}

/* Checks the packed tensors of one layer against the config. */
static int check_packed(const qid_tensor_spec *spec, const gptq_cfg *g, const qid_tsrc_tensor *const *pt,
                        const size_t *ps, const shard_set *sh, qid_error *err)
{
    qid_gptq_layout l = g->l;
    l.out = spec->shape[0];
    l.in = spec->shape[1];
    int64_t groups = qid_gptq_groups(&l);
    if (l.in * l.bits % 32 || l.out * l.bits % 32)
        return qid_error_set(err, QID_E_FORMAT,
                             "layer '%.80s' of [%" PRId64 ", %" PRId64 "] cannot hold %d-bit packing", spec->hf_name,
                             l.out, l.in, l.bits);
    const int64_t want[N_PACKED][2] = {
        {l.in * l.bits / 32, l.out}, {groups, l.out * l.bits / 32}, {groups, l.out}, {l.in, 0}};
    const qid_st_dtype want_dt[N_PACKED] = {QID_ST_I32, QID_ST_I32, QID_ST_F16, QID_ST_I32};
    for (int k = 0; k < N_PACKED; k++) {
        const qid_tsrc_tensor *t = pt[k];
        if (!t) {
            if (k == P_GIDX) continue;
            return qid_error_set(err, QID_E_FORMAT, "packed layer has '%.80s' but no '%.80s%s'", pt[P_QWEIGHT]->name,
                                 spec->hf_name, packed_suffix[k]);
        }
        int nd = k == P_GIDX ? 1 : 2;
        int ok =
            t->ndim == nd && t->shape[0] == (uint64_t)want[k][0] && (nd == 1 || t->shape[1] == (uint64_t)want[k][1]);
        if (!ok) {
            char have[160], exp[64];
            shape_text(t, have, sizeof have);
            if (nd == 2)
                snprintf(exp, sizeof exp, "%" PRId64 ", %" PRId64, want[k][0], want[k][1]);
            else
                snprintf(exp, sizeof exp, "%" PRId64, want[k][0]);
            return qid_error_set(err, QID_E_FORMAT,
                                 "packed tensor '%s' in '%s' has shape [%s], but %d-bit GPTQ with group size %" PRId64
                                 " of a [%" PRId64 ", %" PRId64 "] layer implies [%s]",
                                 t->name, sh->names[ps[k]], have, l.bits, l.group_size, l.out, l.in, exp);
        }
        if (t->dtype != want_dt[k])
            return qid_error_set(err, QID_E_FORMAT, "packed tensor '%s' in '%s' has dtype %s (expected %s)", t->name,
                                 sh->names[ps[k]], qid_st_dtype_name(t->dtype), qid_st_dtype_name(want_dt[k]));
    }
    return QID_OK;
}

/* Reads and unpacks one layer into out in dtype. */
static int dequant_layer(const qid_tensor_spec *spec, const gptq_cfg *g, const qid_tsrc_tensor *const *pt,
                         const size_t *ps, const shard_set *sh, qid_dtype dtype, void *out, qid_error *err)
{
    qid_gptq_layout l = g->l;
    l.out = spec->shape[0];
    l.in = spec->shape[1];
    void *buf[N_PACKED] = {0};
    int64_t n = l.out * l.in;
    float *w = qid_malloc((size_t)n * sizeof *w, "a dequantized layer");
    int rc = QID_OK;
    for (int k = 0; k < N_PACKED && !rc; k++) {
        if (!pt[k]) continue;
        buf[k] = qid_malloc((size_t)pt[k]->nbytes + 4, "a packed tensor");
        rc = qid_tsrc_read(&sh->files[ps[k]], pt[k], buf[k], err);
    }
    if (!rc && (rc = qid_gptq_unpack(&l, buf[P_QWEIGHT], buf[P_QZEROS], buf[P_SCALES], buf[P_GIDX], w, err)))
        qid_error_wrap(err, rc, "'%s' in '%s'", pt[P_GIDX] ? pt[P_GIDX]->name : pt[P_QWEIGHT]->name,
                       sh->names[ps[pt[P_GIDX] ? P_GIDX : P_QWEIGHT]]);
    if (!rc) {
        if (dtype == QID_DTYPE_F32)
            memcpy(out, w, (size_t)n * sizeof *w);
        else
            for (int64_t i = 0; i < n; i++)
                ((uint16_t *)out)[i] = dtype == QID_DTYPE_F16 ? qid_f32_to_f16(w[i]) : qid_f32_to_bf16(w[i]);
    }
    for (int k = 0; k < N_PACKED; k++)
        free(buf[k]);
    free(w);
    return rc;
}

/* /gptq: where the dequantized weights came from. */
static int write_gptq_group(qid_ckpt_writer *w, const gptq_cfg *g, int64_t n_packed, qid_error *err)
{
    hid_t grp = H5I_INVALID_HID;
    hid_t file = qid_ckpt_writer_file(w);
    QID_H5_TRY(err, grp = H5Gcreate2(file, "gptq", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
               "cannot create group '/gptq'");
    int rc = qid_h5_attr_write_i64(grp, "bits", g->l.bits, err);
    if (!rc) rc = qid_h5_attr_write_i64(grp, "group_size", g->l.group_size, err);
    if (!rc) rc = qid_h5_attr_write_i64(grp, "sym", g->sym, err);
    if (!rc) rc = qid_h5_attr_write_i64(grp, "desc_act", g->desc_act, err);
    if (!rc) rc = qid_h5_attr_write_str(grp, "checkpoint_format", g->format, err);
    if (!rc)
        rc = qid_h5_attr_write_str(grp, "zero_point", g->l.v2 ? "stored as is (gptq_v2)" : "stored minus one (gptq v1)",
                                   err);
    if (!rc) rc = qid_h5_attr_write_i64(grp, "packed_layers", n_packed, err);
    if (!rc) rc = qid_h5_attr_write_str(grp, "quantization_config", g->json ? g->json : "", err);
    H5Gclose(grp);
    return rc;
fail:
    return err ? err->code : QID_E_HDF5;
}

int qid_import_format_parse(const char *s)
{
    static const char *const names[] = {"auto", "safetensors", "torch", "gptq"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

int qid_import(const qid_import_opts *o, qid_error *err)
{
    char *config_path = qid_path_join(o->dir, "config.json"), *config_json = NULL;
    shard_set shards = {0};
    cJSON *index_root = NULL;
    qid_tensor_spec *specs = NULL;
    const qid_tsrc_tensor **found = NULL, *(*packed)[N_PACKED] = NULL;
    size_t *found_shard = NULL, (*packed_shard)[N_PACKED] = NULL;
    qid_ckpt_writer *w = NULL;
    void *buf = NULL, *tbuf = NULL;
    char *files = NULL, *hashes = NULL;
    size_t n_specs = 0;
    int64_t n_packed = 0;
    qid_model_config cfg;
    gptq_cfg gq = {0};
    int rc;

    if ((rc = qid_output_check(o->out, o->force, err))) goto done;
    if ((rc = qid_read_text_file(config_path, MAX_JSON_BYTES, &config_json, NULL, err))) goto done;
    if ((rc = qid_import_parse_config(config_json, config_path, &cfg, err))) goto done;
    if ((rc = read_gptq_config(o->dir, config_json, &gq, err))) goto done;
    qid_import_format from = o->format;
    if (from == QID_IMPORT_AUTO) from = gq.on ? QID_IMPORT_GPTQ : QID_IMPORT_SAFETENSORS;
    if (from == QID_IMPORT_GPTQ && !gq.on) {
        rc = qid_error_set(err, QID_E_INVALID,
                           "'%s' has no GPTQ quantization_config (and there is no quantize_config.json): not a "
                           "GPTQ model",
                           config_path);
        goto done;
    }
    if (from != QID_IMPORT_GPTQ && gq.on) {
        rc = qid_error_set(err, QID_E_INVALID, "'%s' describes a %d-bit GPTQ model (hint: import it with --from gptq)",
                           config_path, gq.l.bits);
        goto done;
    }
    /* the weight files: the format asked for, or whichever is present */
    int wf = from == QID_IMPORT_TORCH ? QID_TSRC_TORCH : from == QID_IMPORT_SAFETENSORS ? QID_TSRC_SAFETENSORS : -1;
    if (o->format == QID_IMPORT_AUTO || from == QID_IMPORT_GPTQ) {
        wf = detect_weights(o->dir);
        if (wf < 0) {
            rc = qid_error_set(err, QID_E_IO,
                               "no model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
                               "pytorch_model.bin.index.json in '%s'",
                               o->dir);
            goto done;
        }
    }
    if ((rc = find_shards(o->dir, (qid_tsrc_format)wf, &shards, &index_root, err))) goto done;

    /* Every tensor the config implies must be in exactly one shard, with the
     * shape it implies, in one float dtype; nothing else may be there. A
     * GPTQ model may hold a linear weight packed instead. */
    specs = qid_ckpt_tensors(&cfg, &n_specs);
    found = qid_calloc(n_specs, sizeof *found, "tensor lookup");
    found_shard = qid_calloc(n_specs, sizeof *found_shard, "tensor lookup");
    packed = qid_calloc(n_specs, sizeof *packed, "tensor lookup");
    packed_shard = qid_calloc(n_specs, sizeof *packed_shard, "tensor lookup");
    int dtype = -1;
    for (size_t i = 0; i < n_specs; i++) {
        if ((rc = locate_any(&shards, specs[i].hf_name, &found[i], &found_shard[i], err))) goto done;
        /* linear layers, and the head when the packer quantized it too */
        if (gq.on && (specs[i].kind == QID_TENSOR_LINEAR || strcmp(specs[i].name, "lm_head.weight") == 0)) {
            char base[128];
            size_t bl = strlen(specs[i].hf_name) - strlen(".weight");
            for (int k = 0; k < N_PACKED && !rc; k++) {
                snprintf(base, sizeof base, "%.*s%s", (int)bl, specs[i].hf_name, packed_suffix[k]);
                rc = locate(&shards, base, &packed[i][k], &packed_shard[i][k], err);
            }
            if (rc) goto done;
            if (packed[i][P_QWEIGHT]) {
                if (found[i]) {
                    rc = qid_error_set(err, QID_E_FORMAT, "layer '%s' is stored both packed and as a plain weight",
                                       specs[i].hf_name);
                    goto done;
                }
                if ((rc = check_packed(&specs[i], &gq, packed[i], packed_shard[i], &shards, err))) goto done;
                n_packed++;
                continue;
            }
        }
        const qid_tsrc_tensor *t = found[i];
        if (!t) {
            rc = qid_error_set(err, QID_E_FORMAT,
                               "tensor '%s' missing in '%s' (config.json implies a %s model with %" PRId64 " layers)",
                               specs[i].hf_name, o->dir, qid_arch_name(cfg.arch), cfg.n_layers);
            goto done;
        }
        const int tr = specs[i].hf_transposed; /* stored [in, out] */
        const int64_t want0 = tr ? specs[i].shape[1] : specs[i].shape[0],
                      want1 = tr ? specs[i].shape[0] : specs[i].shape[1];
        int shape_ok = t->ndim == specs[i].ndim && t->shape[0] == (uint64_t)want0 &&
                       (specs[i].ndim == 1 || t->shape[1] == (uint64_t)want1);
        if (!shape_ok) {
            char have[160], want[64];
            shape_text(t, have, sizeof have);
            if (specs[i].ndim == 2)
                snprintf(want, sizeof want, "%" PRId64 ", %" PRId64, want0, want1);
            else
                snprintf(want, sizeof want, "%" PRId64, specs[i].shape[0]);
            rc = qid_error_set(err, QID_E_FORMAT, "tensor '%s' in '%s' has shape [%s], config.json implies [%s]",
                               t->name, shards.names[found_shard[i]], have, want);
            goto done;
        }
        int dt = st_to_dtype(t->dtype);
        if (dt < 0) {
            rc = qid_error_set(err, QID_E_FORMAT, "tensor '%s' in '%s' has dtype %s (qid imports F32, F16 or BF16)",
                               t->name, shards.names[found_shard[i]], qid_st_dtype_name(t->dtype));
            goto done;
        }
        if (dtype >= 0 && dt != dtype) {
            rc = qid_error_set(err, QID_E_FORMAT, "tensor '%s' is %s but earlier tensors are %s (mixed precision)",
                               t->name, qid_st_dtype_name(t->dtype), qid_dtype_name((qid_dtype)dtype));
            goto done;
        }
        dtype = dt;
    }
    if (gq.on && n_packed == 0) {
        rc = qid_error_set(err, QID_E_FORMAT, "'%s' says GPTQ but no layer has a .qweight tensor", config_path);
        goto done;
    }
    const cJSON *wmap = index_root ? cJSON_GetObjectItemCaseSensitive(index_root, "weight_map") : NULL;
    for (size_t s = 0; s < shards.n; s++) {
        for (size_t k = 0; k < shards.files[s].n; k++) {
            const qid_tsrc_tensor *t = &shards.files[s].tensors[k];
            int known = 0;
            for (size_t i = 0; i < n_specs && !known; i++) {
                known = found[i] == t;
                for (int q = 0; q < N_PACKED && !known && packed[i][P_QWEIGHT]; q++)
                    known = packed[i][q] == t;
            }
            int tied_head = cfg.tie_embeddings &&
                            (strcmp(t->name, "lm_head.weight") == 0 || strcmp(t->name, "embed_out.weight") == 0);
            if (!known && !ignorable(t->name) && !tied_head) {
                rc = qid_error_set(err, QID_E_FORMAT,
                                   "unexpected tensor '%s' in '%s' (not part of a %s model as config.json "
                                   "describes it)",
                                   t->name, shards.names[s], qid_arch_name(cfg.arch));
                goto done;
            }
            const cJSON *where = wmap ? cJSON_GetObjectItemCaseSensitive(wmap, t->name) : NULL;
            if (known && wmap && !(cJSON_IsString(where) && strcmp(where->valuestring, shards.names[s]) == 0)) {
                rc = qid_error_set(err, QID_E_FORMAT, "tensor '%s' is in '%s' but the index says '%s'", t->name,
                                   shards.names[s], cJSON_IsString(where) ? where->valuestring : "(absent)");
                goto done;
            }
        }
    }

    /* Provenance: every source file and its SHA-256 (a safetensors or .bin
     * file's hash equals its Hugging Face hub LFS oid). */
    size_t cap = 256 * (shards.n + 4);
    files = qid_calloc(cap, 1, "source file list");
    hashes = qid_calloc(cap, 1, "source hash list");
    for (size_t s = 0; s < shards.n + 3; s++) {
        const char *name = s == 0   ? "config.json"
                           : s == 1 ? shards.index_name
                           : s == 2 ? "quantize_config.json"
                                    : shards.names[s - 3];
        if (s == 1 && !shards.index_json) continue;
        if (s == 2 && !(gq.on && dir_has(o->dir, name))) continue;
        char *p = qid_path_join(o->dir, name), hex[65];
        rc = qid_sha256_file(p, hex, err);
        free(p);
        if (rc) goto done;
        snprintf(files + strlen(files), cap - strlen(files), "%s%s", files[0] ? "\n" : "", name);
        snprintf(hashes + strlen(hashes), cap - strlen(hashes), "%s%s", hashes[0] ? "\n" : "", hex);
    }

    qid_ckpt_meta meta = {0};
    if (o->model)
        snprintf(meta.model, sizeof meta.model, "%s", o->model);
    else
        default_model_name(config_json, o->dir, meta.model, sizeof meta.model);
    meta.step = o->step;
    meta.tokens_seen = o->tokens;
    if ((rc = import_lr(o, &meta, err))) goto done;
    meta.dtype = (qid_dtype)dtype;
    snprintf(meta.source_format, sizeof meta.source_format, "%s", gq.on ? "gptq" : qid_tsrc_format_name(shards.format));
    qid_ckpt_source src = {files, hashes, config_json, o->dir};
    w = qid_ckpt_create(o->out, &cfg, &meta, &src, err);
    if (!w) {
        rc = err ? err->code : QID_E_IO;
        goto done;
    }
    uint64_t bytes_total = 0, bytes_done = 0;
    for (size_t i = 0; i < n_specs; i++)
        bytes_total += (uint64_t)qid_tensor_numel(&specs[i]) * qid_dtype_size(meta.dtype);
    for (size_t i = 0; i < n_specs; i++) {
        if (packed[i][P_QWEIGHT]) {
            buf = qid_realloc(buf, (size_t)qid_tensor_numel(&specs[i]) * qid_dtype_size(meta.dtype),
                              "a tensor being imported");
            if ((rc = dequant_layer(&specs[i], &gq, packed[i], packed_shard[i], &shards, meta.dtype, buf, err)))
                goto done;
        } else {
            const qid_tsrc_tensor *t = found[i];
            buf = qid_realloc(buf, (size_t)t->nbytes, "a tensor being imported");
            if ((rc = qid_tsrc_read(&shards.files[found_shard[i]], t, buf, err))) goto done;
            if (specs[i].hf_transposed) { /* Conv1D [in, out] -> [out, in] */
                tbuf = qid_realloc(tbuf, (size_t)t->nbytes, "a transposed tensor");
                transpose_bytes(tbuf, buf, (size_t)specs[i].shape[1], (size_t)specs[i].shape[0],
                                qid_dtype_size(meta.dtype));
                void *swap = buf;
                buf = tbuf;
                tbuf = swap;
            }
        }
        if ((rc = qid_ckpt_write_tensor(w, &specs[i], buf, err))) {
            qid_error_wrap(err, rc, "'%s' in '%s'", specs[i].hf_name,
                           shards.names[packed[i][P_QWEIGHT] ? packed_shard[i][P_QWEIGHT] : found_shard[i]]);
            goto done;
        }
        bytes_done += (uint64_t)qid_tensor_numel(&specs[i]) * qid_dtype_size(meta.dtype);
        if (o->progress) o->progress(o->progress_ctx, i + 1, n_specs, bytes_done, bytes_total);
    }
    if (gq.on && (rc = write_gptq_group(w, &gq, n_packed, err))) goto done;
    rc = qid_ckpt_finish(w, err);
    w = NULL;
done:
    if (w) qid_ckpt_abort(w);
    free(buf);
    free(tbuf);
    free(files);
    free(hashes);
    free(found);
    free(found_shard);
    free(packed);
    free(packed_shard);
    free(specs);
    cJSON_free(gq.json);
    cJSON_Delete(index_root);
    shards_free(&shards);
    free(config_json);
    free(config_path);
    return rc;
}

int qid_import_safetensors(const qid_import_opts *o, qid_error *err)
{
    qid_import_opts copy = *o;
    if (copy.format == QID_IMPORT_AUTO) copy.format = QID_IMPORT_SAFETENSORS;
    return qid_import(&copy, err);
}
