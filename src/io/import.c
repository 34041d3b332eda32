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
#include "lr_schedule.h"
#include "safetensors.h"

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
    if (!neox && !llama) {
        rc = qid_error_set(err, QID_E_INVALID,
                           "unknown architecture '%s' in '%s' (supported: gpt_neox, llama, mistral, qwen2)", type,
                           where);
        goto done;
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
    char **names;       /* shard file names (basenames) */
    qid_st_file *files; /* parsed headers */
    char *index_json;   /* text of model.safetensors.index.json or NULL */
} shard_set;

static void shards_free(shard_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->names[i]);
        if (s->files) qid_st_free(&s->files[i]);
    }
    free(s->names);
    free(s->files);
    free(s->index_json);
    memset(s, 0, sizeof *s);
}

static int plain_name(const char *s) { return s[0] && s[0] != '.' && !strchr(s, '/'); }

/* Finds model.safetensors or the shards named by the index. */
static int find_shards(const char *dir, shard_set *s, cJSON **weight_map_root, qid_error *err)
{
    memset(s, 0, sizeof *s);
    *weight_map_root = NULL;
    char *index = qid_path_join(dir, "model.safetensors.index.json");
    char *single = qid_path_join(dir, "model.safetensors");
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
        s->names[0] = qid_strdup("model.safetensors");
        s->n = 1;
    } else {
        rc = qid_error_set(err, QID_E_IO,
                           "no model.safetensors or model.safetensors.index.json in '%s' (hint: convert "
                           "pytorch_model.bin with tools/bin_to_safetensors.py)",
                           dir);
        goto done;
    }
    s->files = qid_calloc(s->n, sizeof *s->files, "shard headers");
    for (size_t i = 0; i < s->n && !rc; i++) {
        char *p = qid_path_join(dir, s->names[i]);
        rc = qid_st_open(p, &s->files[i], err);
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
    static const char *const suffixes[] = {".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq"};
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

int qid_import_safetensors(const qid_import_opts *o, qid_error *err)
{
    char *config_path = qid_path_join(o->dir, "config.json"), *config_json = NULL;
    shard_set shards = {0};
    cJSON *index_root = NULL;
    qid_tensor_spec *specs = NULL;
    const qid_st_tensor **found = NULL;
    size_t *found_shard = NULL;
    qid_ckpt_writer *w = NULL;
    void *buf = NULL;
    char *files = NULL, *hashes = NULL;
    size_t n_specs = 0;
    qid_model_config cfg;
    int rc;

    if ((rc = qid_output_check(o->out, o->force, err))) goto done;
    if ((rc = qid_read_text_file(config_path, MAX_JSON_BYTES, &config_json, NULL, err))) goto done;
    if ((rc = qid_import_parse_config(config_json, config_path, &cfg, err))) goto done;
    if ((rc = find_shards(o->dir, &shards, &index_root, err))) goto done;

    /* Every tensor the config implies must be in exactly one shard, with the
     * shape it implies, in one float dtype; nothing else may be there. */
    specs = qid_ckpt_tensors(&cfg, &n_specs);
    found = qid_calloc(n_specs, sizeof *found, "tensor lookup");
    found_shard = qid_calloc(n_specs, sizeof *found_shard, "tensor lookup");
    int dtype = -1;
    for (size_t i = 0; i < n_specs; i++) {
        for (size_t s = 0; s < shards.n; s++) {
            const qid_st_tensor *t = qid_st_find(&shards.files[s], specs[i].hf_name);
            if (!t) continue;
            if (found[i]) {
                rc = qid_error_set(err, QID_E_FORMAT, "tensor '%s' is in both '%s' and '%s'", specs[i].hf_name,
                                   shards.names[found_shard[i]], shards.names[s]);
                goto done;
            }
            found[i] = t;
            found_shard[i] = s;
        }
        const qid_st_tensor *t = found[i];
        if (!t) {
            rc = qid_error_set(err, QID_E_FORMAT,
                               "tensor '%s' missing in '%s' (config.json implies a %s model with %" PRId64 " layers)",
                               specs[i].hf_name, o->dir, qid_arch_name(cfg.arch), cfg.n_layers);
            goto done;
        }
        int shape_ok = t->ndim == specs[i].ndim && t->shape[0] == (uint64_t)specs[i].shape[0] &&
                       (specs[i].ndim == 1 || t->shape[1] == (uint64_t)specs[i].shape[1]);
        if (!shape_ok) {
            char have[160] = "", want[64];
            for (int d = 0; d < t->ndim; d++)
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s%" PRIu64, d ? ", " : "", t->shape[d]);
            if (specs[i].ndim == 2)
                snprintf(want, sizeof want, "%" PRId64 ", %" PRId64, specs[i].shape[0], specs[i].shape[1]);
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
    const cJSON *wmap = index_root ? cJSON_GetObjectItemCaseSensitive(index_root, "weight_map") : NULL;
    for (size_t s = 0; s < shards.n; s++) {
        for (size_t k = 0; k < shards.files[s].n; k++) {
            const qid_st_tensor *t = &shards.files[s].tensors[k];
            int known = 0;
            for (size_t i = 0; i < n_specs && !known; i++)
                known = found[i] == t;
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

    /* Provenance: every source file and its SHA-256 (a safetensors file's
     * hash equals its Hugging Face hub LFS oid). */
    size_t cap = 256 * (shards.n + 3);
    files = qid_calloc(cap, 1, "source file list");
    hashes = qid_calloc(cap, 1, "source hash list");
    for (size_t s = 0; s < shards.n + 2; s++) {
        const char *name = s == 0 ? "config.json" : s == 1 ? "model.safetensors.index.json" : shards.names[s - 2];
        if (s == 1 && !shards.index_json) continue;
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
    snprintf(meta.source_format, sizeof meta.source_format, "safetensors");
    qid_ckpt_source src = {files, hashes, config_json, o->dir};
    w = qid_ckpt_create(o->out, &cfg, &meta, &src, err);
    if (!w) {
        rc = err ? err->code : QID_E_IO;
        goto done;
    }
    for (size_t i = 0; i < n_specs; i++) {
        const qid_st_tensor *t = found[i];
        buf = qid_realloc(buf, (size_t)(t->end - t->begin), "a tensor being imported");
        if ((rc = qid_st_read(&shards.files[found_shard[i]], t, buf, err))) goto done;
        if ((rc = qid_ckpt_write_tensor(w, &specs[i], buf, err))) {
            qid_error_wrap(err, rc, "'%s' in '%s'", t->name, shards.names[found_shard[i]]);
            goto done;
        }
    }
    rc = qid_ckpt_finish(w, err);
    w = NULL;
done:
    if (w) qid_ckpt_abort(w);
    free(buf);
    free(files);
    free(hashes);
    free(found);
    free(found_shard);
    free(specs);
    cJSON_Delete(index_root);
    shards_free(&shards);
    free(config_json);
    free(config_path);
    return rc;
}
