/* test_import.c - `qid import` of real Hugging Face checkpoints written by
 * transformers' save_pretrained (test/fixtures/hf, from
 * tools/make_hf_fixtures.py): every tensor bit-identical to the source, N
 * counted independently, precision kept, metadata recorded; and every kind
 * of bad input rejected with a one-line error and no output left behind. */
#include <cJSON.h>
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fsutil.h"
#include "import.h"
#include "tap.h"

#define FIX "test/fixtures/hf"

/* ---- an independent reader of the source files (not safetensors.c) ----- */

typedef struct {
    char *bytes;
    size_t size;
    cJSON *header;
    size_t data_offset;
} raw_st;

static raw_st raw_open(const char *path)
{
    raw_st r;
    r.bytes = tap_read_file(path, &r.size);
    uint64_t n = 0;
    memcpy(&n, r.bytes, 8); /* little-endian host */
    r.header = cJSON_ParseWithLength(r.bytes + 8, (size_t)n);
    if (!r.header) bail("fixture %s has an unreadable header", path);
    r.data_offset = 8 + (size_t)n;
    return r;
}

/* Bytes and size of tensor name, or NULL. */
static const char *raw_tensor(const raw_st *r, const char *name, size_t *len)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->header, name);
    if (!e) return NULL;
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, en = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
    *len = en - b;
    return r->bytes + r->data_offset + b;
}

static void raw_close(raw_st *r)
{
    free(r->bytes);
    cJSON_Delete(r->header);
}

/* The shard files of a fixture directory. */
static int shard_paths(const char *dir, char paths[][512], int max)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && n < max) {
        size_t l = strlen(e->d_name);
        if (l > 12 && strcmp(e->d_name + l - 12, ".safetensors") == 0)
            snprintf(paths[n++], 512, "%s/%s", dir, e->d_name);
    }
    if (d) closedir(d);
    return n;
}

static int is_embedding_name(const char *name)
{
    return strcmp(name, "gpt_neox.embed_in.weight") == 0 || strcmp(name, "embed_out.weight") == 0 ||
           strcmp(name, "model.embed_tokens.weight") == 0 || strcmp(name, "lm_head.weight") == 0;
}

static double reference_number(const char *dir, const char *key)
{
    char path[512];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    char *text = tap_read_file(path, NULL);
    cJSON *j = cJSON_Parse(text);
    double v = cJSON_GetObjectItemCaseSensitive(j, key)->valuedouble;
    cJSON_Delete(j);
    free(text);
    return v;
}

/* Number of directory entries of dir whose name contains needle. */
static int count_entries(const char *dir, const char *needle)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, needle)) n++;
    if (d) closedir(d);
    return n;
}

/* Imports fixture `name` and checks it against its source files. */
static void check_fixture(const char *name, const char *arch, const char *dtype, int64_t want_n, int64_t want_total)
{
    char dir[512], out[4200];
    snprintf(dir, sizeof dir, FIX "/%s", name);
    snprintf(out, sizeof out, "%s/%s.h5", tap_tmpdir(), name);
    qid_import_opts o = {.dir = dir, .out = out, .step = 1000, .tokens = 1000LL * 2097152, .model = NULL};
    qid_error err;
    if (!is_int(QID_OK, qid_import_safetensors(&o, &err), "%s: imports", name)) diag("%s", err.msg);
    qid_ckpt ck;
    if (qid_ckpt_open(out, &ck, &err)) bail("%s: cannot reopen: %s", name, err.msg);
    is_string(arch, qid_arch_name(ck.cfg.arch), "%s: architecture", name);
    is_string(dtype, qid_dtype_name(ck.meta.dtype), "%s: precision kept", name);
    ok(ck.meta.step == 1000 && ck.meta.tokens_seen == 1000LL * 2097152, "%s: step and tokens recorded", name);
    is_string(name, ck.meta.model, "%s: model name defaults to the directory", name);

    /* every tensor bit-identical; N counted from the source files alone */
    char paths[8][512];
    int ns = shard_paths(dir, paths, 8);
    raw_st raw[8];
    int64_t n_src = 0, total_src = 0;
    for (int s = 0; s < ns; s++) {
        raw[s] = raw_open(paths[s]);
        for (const cJSON *e = raw[s].header->child; e; e = e->next) {
            if (strcmp(e->string, "__metadata__") == 0) continue;
            int64_t numel = 1;
            const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
            for (int i = 0; i < cJSON_GetArraySize(shape); i++)
                numel *= (int64_t)cJSON_GetArrayItem(shape, i)->valuedouble;
            total_src += numel;
            if (!is_embedding_name(e->string)) n_src += numel;
        }
    }
    size_t nt = 0;
    qid_tensor_spec *specs = qid_ckpt_tensors(&ck.cfg, &nt);
    int identical = 1, present = 1;
    for (size_t i = 0; i < nt; i++) {
        size_t len = 0;
        const char *src = NULL;
        for (int s = 0; s < ns && !src; s++)
            src = raw_tensor(&raw[s], specs[i].hf_name, &len);
        if (!src) {
            present = 0;
            diag("no source for %s", specs[i].hf_name);
            continue;
        }
        char *got = malloc(len);
        if (qid_ckpt_read_raw(&ck, &specs[i], got, &err) || memcmp(got, src, len) != 0) {
            identical = 0;
            diag("tensor %s differs", specs[i].hf_name);
        }
        free(got);
    }
    ok(present, "%s: every tensor of the table is in the source", name);
    ok(identical, "%s: all %zu tensors bit-identical to the source", name, nt);
    is_int(n_src, ck.meta.params_nonembedding, "%s: N equals the count from the source files", name);
    is_int(want_n, ck.meta.params_nonembedding, "%s: N equals the PyTorch count", name);
    is_int(want_total, ck.meta.params_total, "%s: total parameters", name);
    if (ck.cfg.tie_embeddings)
        ok(total_src == ck.meta.params_total, "%s: tied head stored once", name);
    else
        is_int(total_src, ck.meta.params_total, "%s: total equals the count from the source files", name);
    free(specs);
    for (int s = 0; s < ns; s++)
        raw_close(&raw[s]);
    qid_ckpt_close(&ck);
}

/* The torch.save fixture bin_name (test/fixtures/torch) imports to the same
 * tensor hash as the safetensors fixture st_name, with its files recorded. */
static void check_bin(const char *bin_name, const char *st_name, qid_import_format format, const char *files)
{
    char dir[512], out[4200], st_out[4200];
    snprintf(dir, sizeof dir, "test/fixtures/torch/%s", bin_name);
    snprintf(out, sizeof out, "%s/%s.h5", tap_tmpdir(), bin_name);
    snprintf(st_out, sizeof st_out, "%s/%s.h5", tap_tmpdir(), st_name);
    qid_import_opts o = {.dir = dir, .out = out, .step = 1000, .tokens = 1000LL * 2097152, .format = format};
    qid_error err;
    if (!is_int(QID_OK, qid_import(&o, &err), "%s: imports", bin_name)) diag("%s", err.msg);
    qid_ckpt a, b;
    if (qid_ckpt_open(out, &a, &err) || qid_ckpt_open(st_out, &b, &err)) bail("%s", err.msg);
    is_string(b.meta.tensor_sha256, a.meta.tensor_sha256, "%s: the tensor hash of %s", bin_name, st_name);
    is_string("torch", a.meta.source_format, "%s: source format torch", bin_name);
    char got[1024] = "";
    hid_t src = H5Gopen2(a.file, "source", H5P_DEFAULT);
    if (qid_h5_attr_read_str(src, "/source", "files", got, sizeof got, &err)) diag("%s", err.msg);
    is_string(files, got, "%s: source files recorded", bin_name);
    char path[600], hex[65], hashes[2048] = "";
    snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
    if (tap_exists(path)) {
        qid_sha256_file(path, hex, &err);
        qid_h5_attr_read_str(src, "/source", "sha256", hashes, sizeof hashes, &err);
        like(hashes, hex, "%s: SHA-256 of pytorch_model.bin recorded", bin_name);
    }
    H5Gclose(src);
    qid_ckpt_close(&a);
    qid_ckpt_close(&b);
}

/* float32 reading of 16-bit checkpoints is exact: the fp16/bf16 fixtures are
 * the fp32 weights rounded, so rounding our f32 reading of the fp32 file
 * must give back exactly the 16-bit bits stored. */
static void check_widening(const char *f32_name, const char *h16_name, qid_dtype dt)
{
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/%s.h5", tap_tmpdir(), f32_name);
    snprintf(b, sizeof b, "%s/%s.h5", tap_tmpdir(), h16_name);
    qid_ckpt ca, cb;
    qid_error err;
    if (qid_ckpt_open(a, &ca, &err) || qid_ckpt_open(b, &cb, &err)) bail("cannot reopen: %s", err.msg);
    size_t nt = 0;
    qid_tensor_spec *specs = qid_ckpt_tensors(&ca.cfg, &nt);
    long mismatches = 0, checked = 0, widen_bad = 0;
    for (size_t i = 0; i < nt; i++) {
        size_t n = (size_t)qid_tensor_numel(&specs[i]);
        float *fa = malloc(4 * n), *fb = malloc(4 * n);
        uint16_t *hb = malloc(2 * n);
        if (qid_ckpt_read_f32(&ca, &specs[i], fa, &err) || qid_ckpt_read_f32(&cb, &specs[i], fb, &err) ||
            qid_ckpt_read_raw(&cb, &specs[i], hb, &err))
            bail("read failed: %s", err.msg);
        for (size_t k = 0; k < n; k++, checked++) {
            uint16_t h = dt == QID_DTYPE_BF16 ? qid_f32_to_bf16(fa[k]) : qid_f32_to_f16(fa[k]);
            if (h != hb[k]) mismatches++;
            float w;
            if (dt == QID_DTYPE_BF16)
                qid_bf16_to_f32(&hb[k], &w, 1);
            else
                qid_f16_to_f32(&hb[k], &w, 1);
            if (memcmp(&w, &fb[k], 4) != 0) widen_bad++;
        }
        free(fa);
        free(fb);
        free(hb);
    }
    is_int(0, mismatches, "%s: %ld values are the round-to-nearest-even %s of the fp32 weights", h16_name, checked,
           qid_dtype_name(dt));
    is_int(0, widen_bad, "%s: float32 reading equals exact widening", h16_name);
    free(specs);
    qid_ckpt_close(&ca);
    qid_ckpt_close(&cb);
}

/* ---- bad input ------------------------------------------------------------ */

static char work[4200];
static qid_import_format fail_format = QID_IMPORT_SAFETENSORS;

/* Fresh copy of fixture name in work/bad. */
static void fresh_copy(const char *name)
{
    char cmd[9000];
    snprintf(work, sizeof work, "%s/bad", tap_tmpdir());
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r " FIX "/%s '%s'", work, name, work);
    if (system(cmd) != 0) bail("cannot copy fixture %s", name);
}

/* Imports work/ into tmp/out-bad.h5; expects failure with want in the
 * message and nothing left in the output directory. */
static void import_fails(const char *want, const char *what)
{
    char out[4200];
    snprintf(out, sizeof out, "%s/out/bad.h5", tap_tmpdir());
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/out'", tap_tmpdir());
    if (system(cmd) != 0) bail("mkdir failed");
    qid_import_opts o = {.dir = work, .out = out, .step = -1, .tokens = -1, .format = fail_format};
    qid_error err;
    qid_error_clear(&err);
    int rc = qid_import(&o, &err);
    ok(rc != QID_OK, "%s: import fails", what);
    like(err.msg, want, "%s: message", what);
    char outdir[4300];
    snprintf(outdir, sizeof outdir, "%s/out", tap_tmpdir());
    ok(count_entries(outdir, "bad.h5") == 0 && strchr(err.msg, '\n') == NULL,
       "%s: one line, no output or temporary file left", what);
}

/* Rewrites work/model.safetensors with a mutated header (same data). */
static void mutate_header(void (*mutate)(cJSON *root))
{
    char path[4300];
    snprintf(path, sizeof path, "%s/model.safetensors", work);
    raw_st r = raw_open(path);
    mutate(r.header);
    char *json = cJSON_PrintUnformatted(r.header);
    size_t hn = strlen(json), dn = r.size - r.data_offset;
    char *out = malloc(8 + hn + dn);
    uint64_t n64 = hn;
    memcpy(out, &n64, 8);
    memcpy(out + 8, json, hn);
    memcpy(out + 8 + hn, r.bytes + r.data_offset, dn);
    tap_write_file(path, out, 8 + hn + dn);
    free(out);
    free(json);
    raw_close(&r);
}

static cJSON *entry(cJSON *root, const char *name) { return cJSON_GetObjectItemCaseSensitive(root, name); }

static void overlap(cJSON *root)
{
    /* point ln1.bias at ln1.weight's bytes */
    cJSON *w = entry(root, "gpt_neox.layers.0.input_layernorm.weight");
    cJSON *b = entry(root, "gpt_neox.layers.0.input_layernorm.bias");
    cJSON_ReplaceItemInObject(b, "data_offsets", cJSON_Duplicate(cJSON_GetObjectItem(w, "data_offsets"), 1));
}
static void outside(cJSON *root)
{
    cJSON *off = cJSON_GetObjectItem(entry(root, "gpt_neox.final_layer_norm.bias"), "data_offsets");
    double b = cJSON_GetArrayItem(off, 0)->valuedouble + 1e6;
    cJSON_ReplaceItemInArray(off, 0, cJSON_CreateNumber(b));
    cJSON_ReplaceItemInArray(off, 1, cJSON_CreateNumber(b + 128));
}
static void bad_dtype(cJSON *root)
{
    cJSON_ReplaceItemInObject(entry(root, "gpt_neox.final_layer_norm.bias"), "dtype", cJSON_CreateString("F12"));
}
static void int_dtype(cJSON *root)
{
    cJSON_ReplaceItemInObject(entry(root, "gpt_neox.final_layer_norm.bias"), "dtype", cJSON_CreateString("I32"));
}
static void shape_bytes(cJSON *root)
{
    cJSON *shape = cJSON_GetObjectItem(entry(root, "gpt_neox.final_layer_norm.bias"), "shape");
    cJSON_ReplaceItemInArray(shape, 0, cJSON_CreateNumber(31));
}
static void shape_swap(cJSON *root)
{
    /* [64, 32] -> [32, 64]: same bytes, wrong orientation */
    cJSON *shape = cJSON_GetObjectItem(entry(root, "gpt_neox.layers.1.mlp.dense_h_to_4h.weight"), "shape");
    cJSON_ReplaceItemInArray(shape, 0, cJSON_CreateNumber(32));
    cJSON_ReplaceItemInArray(shape, 1, cJSON_CreateNumber(64));
}
/* every name without its "transformer." prefix, as the hub's gpt2 files are */
static void strip_transformer(cJSON *root)
{
    for (cJSON *e = root->child; e; e = e->next)
        if (strncmp(e->string, "transformer.", 12) == 0) memmove(e->string, e->string + 12, strlen(e->string + 12) + 1);
}
static void rename_tensor(cJSON *root)
{
    cJSON *e = cJSON_DetachItemFromObject(root, "gpt_neox.layers.1.mlp.dense_4h_to_h.bias");
    cJSON_AddItemToObject(root, "gpt_neox.layers.1.mlp.extra.bias", e);
}

static void edit_file(const char *file, const char *from, const char *to)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", work, file);
    char *text = tap_read_file(path, NULL), *at = strstr(text, from);
    if (!at) bail("'%s' not in %s", from, path);
    size_t n = strlen(text) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    tap_write_file(path, out, strlen(out));
    free(out);
    free(text);
}

/* Overwrites bytes of work/model.safetensors at offset. */
static void poke(long offset, const void *bytes, size_t n, int from_end)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/model.safetensors", work);
    size_t size;
    char *data = tap_read_file(path, &size);
    size_t at = from_end ? size - (size_t)offset : (size_t)offset;
    memcpy(data + at, bytes, n);
    tap_write_file(path, data, size);
    free(data);
}

static void truncate_model(size_t cut)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/model.safetensors", work);
    size_t size;
    char *data = tap_read_file(path, &size);
    tap_write_file(path, data, size - cut);
    free(data);
}

/* A GPT-2, OPT or BLOOM fixture: imported with the architecture and
 * settings its config implies, N and the total equal to PyTorch's counts
 * (reference.json: every nn.Embedding, learned positions included, and the
 * head left out), and a Conv1D weight stored transposed. */
static void check_family(const char *name, const char *arch)
{
    char dir[512], out[4200];
    snprintf(dir, sizeof dir, FIX "/%s", name);
    snprintf(out, sizeof out, "%s/%s.h5", tap_tmpdir(), name);
    qid_import_opts o = {.dir = dir, .out = out, .step = -1, .tokens = -1};
    qid_error err;
    if (!is_int(QID_OK, qid_import_safetensors(&o, &err), "%s: imports", name)) diag("%s", err.msg);
    qid_ckpt ck;
    if (qid_ckpt_open(out, &ck, &err)) bail("%s: cannot reopen: %s", name, err.msg);
    is_string(arch, qid_arch_name(ck.cfg.arch), "%s: architecture", name);
    is_int((int64_t)reference_number(dir, "params_nonembedding"), ck.meta.params_nonembedding,
           "%s: N equals the PyTorch count (embeddings and learned positions left out)", name);
    is_int((int64_t)reference_number(dir, "params_total"), ck.meta.params_total, "%s: total parameters", name);
    /* the first layer's MLP input weight against the source: transposed for GPT-2's Conv1D */
    size_t nt = 0;
    qid_tensor_spec *t = qid_ckpt_layer_tensors(&ck.cfg, 0, &nt);
    const qid_tensor_spec *up = NULL;
    for (size_t i = 0; i < nt; i++)
        if (strcmp(t[i].name, "mlp.up.weight") == 0) up = &t[i];
    char paths[8][512];
    shard_paths(dir, paths, 8);
    raw_st raw = raw_open(paths[0]);
    size_t len = 0;
    const float *src = (const float *)(const void *)raw_tensor(&raw, up->hf_name, &len);
    float *got = malloc(len);
    int same = src && qid_ckpt_read_f32(&ck, up, got, &err) == QID_OK;
    const size_t R = (size_t)up->shape[0], C = (size_t)up->shape[1];
    for (size_t r = 0; same && r < R; r++)
        for (size_t c = 0; c < C; c++)
            same &= got[r * C + c] == (up->hf_transposed ? src[c * R + r] : src[r * C + c]);
    ok(same, "%s: mlp.up.weight [%zu, %zu] equals the source%s", name, R, C,
       up->hf_transposed ? " transposed (Conv1D)" : "");
    free(got);
    free(t);
    raw_close(&raw);
    qid_ckpt_close(&ck);
}

/* N from the published configs of gpt2, facebook/opt-125m and
 * bigscience/bloom-560m (the numbers of their config.json on the Hugging
 * Face hub, written in), against transformers 5.25's
 * num_parameters(exclude_embeddings=True) of those configs, which equals
 * the total less the token and position tables (tools/make_hf_fixtures.py
 * --families prints them): gpt2 85,056,000 of 124,439,808; opt-125m
 * 85,056,000 of 125,239,296; bloom-560m 302,313,472 of 559,214,592 (the
 * totals as the model cards give them: 124M, 125M, 559,214,592). */
static void check_published(void)
{
    static const struct {
        const char *name, *config;
        int64_t n, total;
    } pub[] = {
        {"gpt2",
         "{\"model_type\": \"gpt2\", \"vocab_size\": 50257, \"n_positions\": 1024, \"n_ctx\": 1024, \"n_embd\": 768, "
         "\"n_layer\": 12, \"n_head\": 12, \"activation_function\": \"gelu_new\", \"layer_norm_epsilon\": 1e-05}",
         85056000, 124439808},
        {"opt-125m",
         "{\"model_type\": \"opt\", \"vocab_size\": 50272, \"hidden_size\": 768, \"num_hidden_layers\": 12, "
         "\"ffn_dim\": 3072, \"num_attention_heads\": 12, \"max_position_embeddings\": 2048, "
         "\"word_embed_proj_dim\": 768, \"do_layer_norm_before\": true, \"activation_function\": \"relu\"}",
         85056000, 125239296},
        {"bloom-560m",
         "{\"model_type\": \"bloom\", \"vocab_size\": 250880, \"hidden_size\": 1024, \"n_layer\": 24, \"n_head\": 16, "
         "\"layer_norm_epsilon\": 1e-05, \"apply_residual_connection_post_layernorm\": false}",
         302313472, 559214592},
    };
    for (size_t i = 0; i < sizeof pub / sizeof pub[0]; i++) {
        qid_model_config cfg;
        qid_error err;
        int rc = qid_import_parse_config(pub[i].config, pub[i].name, &cfg, &err);
        if (rc) diag("%s", err.msg);
        ok(rc == QID_OK && qid_params_nonembedding(&cfg) == pub[i].n && qid_params_total(&cfg) == pub[i].total,
           "%s: N %" PRId64 " (published %" PRId64 "), total %" PRId64 " (published %" PRId64 ")", pub[i].name,
           rc ? -1 : qid_params_nonembedding(&cfg), pub[i].n, rc ? -1 : qid_params_total(&cfg), pub[i].total);
    }
}

/* The families' rejected settings (one line, nothing left) and gpt2 tensor
 * names without the base model's prefix (same tensors). */
static void check_family_errors(void)
{
    fresh_copy("opt-tiny");
    edit_file("config.json", "\"layer_norm_elementwise_affine\": true", "\"layer_norm_elementwise_affine\": false");
    import_fails("layer_norm_elementwise_affine false (LayerNorm without weights) is not supported",
                 "OPT without LayerNorm weights");
    fresh_copy("opt-tiny");
    edit_file("config.json", "\"activation_function\": \"relu\"", "\"activation_function\": \"swish\"");
    import_fails("activation_function 'swish' is not supported for opt (gelu_new, gelu or relu)", "OPT with swish");
    fresh_copy("bloom-tiny");
    edit_file("config.json", "\"apply_residual_connection_post_layernorm\": false",
              "\"apply_residual_connection_post_layernorm\": true");
    import_fails("apply_residual_connection_post_layernorm true is not supported", "BLOOM residual after the norm");
    fresh_copy("gpt2-tiny");
    edit_file("config.json", "\"add_cross_attention\": false", "\"add_cross_attention\": true");
    import_fails("GPT-2 with cross-attention is not a language model", "GPT-2 with cross-attention");
    fresh_copy("gpt2-tiny");
    mutate_header(strip_transformer);
    char out[4200], ref[4200];
    snprintf(out, sizeof out, "%s/gpt2-base-names.h5", tap_tmpdir());
    snprintf(ref, sizeof ref, "%s/gpt2-tiny.h5", tap_tmpdir());
    qid_import_opts o = {.dir = work, .out = out, .step = -1, .tokens = -1};
    qid_error err;
    int rc = qid_import_safetensors(&o, &err);
    qid_ckpt a, b;
    if (rc) diag("%s", err.msg);
    int same = rc == QID_OK && !qid_ckpt_open(out, &a, &err) && !qid_ckpt_open(ref, &b, &err) &&
               strcmp(a.meta.tensor_sha256, b.meta.tensor_sha256) == 0;
    ok(same, "gpt2 with the hub's names ('h.0.attn.c_attn.weight', no 'transformer.'): the same tensors");
    if (rc == QID_OK) {
        qid_ckpt_close(&a);
        qid_ckpt_close(&b);
    }
}

int main(void)
{
    qid_h5_silence();
    plan(191 + 6 * 5 + 3 + 3 * 5 + 4 * 3 + 1);
    check_family("gpt2-tiny", "gpt2");
    check_family("gpt2-tiny-scaled", "gpt2");
    check_family("gpt2-tiny-unscaled", "gpt2");
    check_family("opt-tiny", "opt");
    check_family("opt-tiny-postln-proj", "opt");
    check_family("bloom-tiny", "bloom");
    check_published();
    /* the hub's .bin layout of the families: base-model names, gpt2's mask buffers */
    check_bin("gpt2-tiny-bin", "gpt2-tiny", QID_IMPORT_TORCH, "config.json\npytorch_model.bin");
    check_bin("opt-tiny-postln-proj-bin", "opt-tiny-postln-proj", QID_IMPORT_AUTO, "config.json\npytorch_model.bin");
    check_bin("bloom-tiny-bin", "bloom-tiny", QID_IMPORT_AUTO, "config.json\npytorch_model.bin");
    check_fixture("gpt-neox-tiny", "gpt-neox", "float32",
                  (int64_t)reference_number(FIX "/gpt-neox-tiny", "params_nonembedding"),
                  (int64_t)reference_number(FIX "/gpt-neox-tiny", "params_total"));
    check_fixture("gpt-neox-tiny-fp16", "gpt-neox", "float16", 17152, 23296);
    check_fixture("llama-tiny", "llama", "float32", (int64_t)reference_number(FIX "/llama-tiny", "params_nonembedding"),
                  (int64_t)reference_number(FIX "/llama-tiny", "params_total"));
    check_fixture("llama-tiny-bf16-sharded", "llama", "bfloat16",
                  (int64_t)reference_number(FIX "/llama-tiny", "params_nonembedding"),
                  (int64_t)reference_number(FIX "/llama-tiny", "params_total"));
    check_fixture("qwen2-tiny", "llama", "float32", (int64_t)reference_number(FIX "/qwen2-tiny", "params_nonembedding"),
                  (int64_t)reference_number(FIX "/qwen2-tiny", "params_total"));
    check_fixture("llama-tiny-tied", "llama", "float32",
                  (int64_t)reference_number(FIX "/llama-tiny-tied", "params_nonembedding"),
                  (int64_t)reference_number(FIX "/llama-tiny-tied", "params_total"));
    check_widening("gpt-neox-tiny", "gpt-neox-tiny-fp16", QID_DTYPE_F16);
    check_bin("gpt-neox-tiny-bin", "gpt-neox-tiny", QID_IMPORT_TORCH, "config.json\npytorch_model.bin");
    check_bin("gpt-neox-tiny-fp16-bin", "gpt-neox-tiny-fp16", QID_IMPORT_AUTO, "config.json\npytorch_model.bin");
    check_bin("llama-tiny-bf16-sharded-bin", "llama-tiny-bf16-sharded", QID_IMPORT_TORCH,
              "config.json\npytorch_model.bin.index.json\npytorch_model-00003-of-00003.bin\n"
              "pytorch_model-00001-of-00003.bin\npytorch_model-00002-of-00003.bin"); /* the index's order */
    check_bin("llama-tiny-tied-bin", "llama-tiny-tied", QID_IMPORT_AUTO, "config.json\npytorch_model.bin");
    check_widening("llama-tiny", "llama-tiny-bf16-sharded", QID_DTYPE_BF16);

    /* hyperparameters read from transformers 5 config files */
    qid_ckpt ck;
    qid_error err;
    char path[4300];
    snprintf(path, sizeof path, "%s/gpt-neox-tiny.h5", tap_tmpdir());
    if (qid_ckpt_open(path, &ck, &err)) bail("%s", err.msg);
    ok(ck.cfg.rotary_dim == 2 && ck.cfg.head_dim == 8 && fabs(ck.cfg.rotary_pct - 0.25) < 1e-12,
       "gpt-neox: partial rotary 0.25 of head_dim 8 = 2 dims");
    ok(ck.cfg.parallel_residual && !ck.cfg.tie_embeddings && ck.cfg.qkv_bias && ck.cfg.mlp_bias &&
           ck.cfg.norm_eps == 1e-5 && ck.cfg.rope_theta == 10000.0,
       "gpt-neox: parallel residual, untied, biases, eps, theta");
    char tensor_hash[65];
    memcpy(tensor_hash, ck.meta.tensor_sha256, 65);
    qid_ckpt_close(&ck);
    snprintf(path, sizeof path, "%s/llama-tiny.h5", tap_tmpdir());
    if (qid_ckpt_open(path, &ck, &err)) bail("%s", err.msg);
    ok(ck.cfg.n_kv_heads == 2 && ck.cfg.n_heads == 4 && ck.cfg.rotary_dim == 8 && !ck.cfg.qkv_bias,
       "llama: 2 kv heads, full rotary, no biases");
    qid_ckpt_close(&ck);
    snprintf(path, sizeof path, "%s/qwen2-tiny.h5", tap_tmpdir());
    if (qid_ckpt_open(path, &ck, &err)) bail("%s", err.msg);
    ok(ck.cfg.qkv_bias && !ck.cfg.o_bias, "qwen2: qkv bias, no o_proj bias");
    qid_ckpt_close(&ck);

    /* determinism: importing again gives the same tensor hash; --force needed */
    snprintf(path, sizeof path, "%s/gpt-neox-tiny.h5", tap_tmpdir());
    qid_import_opts o = {.dir = FIX "/gpt-neox-tiny", .out = path, .step = 5, .tokens = -1};
    is_int(QID_E_INVALID, qid_import_safetensors(&o, &err), "existing output is not replaced without --force");
    like(err.msg, "exists (use --force", "existing output: message");
    o.force = 1;
    is_int(QID_OK, qid_import_safetensors(&o, &err), "--force replaces it");
    if (qid_ckpt_open(path, &ck, &err)) bail("%s", err.msg);
    is_string(tensor_hash, ck.meta.tensor_sha256, "re-import gives the same tensor hash");
    ok(ck.meta.step == 5 && ck.meta.tokens_seen == -1, "unknown tokens recorded as -1");
    qid_ckpt_close(&ck);

    /* bad input: each a one-line error and nothing left behind */
    fresh_copy("gpt-neox-tiny");
    truncate_model(100);
    import_fails("(file truncated?)", "truncated safetensors");
    fresh_copy("gpt-neox-tiny");
    uint64_t huge = 1u << 30;
    poke(0, &huge, 8, 0);
    import_fails("header length 1073741824 is larger than the file", "header length beyond the file");
    fresh_copy("gpt-neox-tiny");
    poke(9, "!", 1, 0);
    import_fails("header is not valid JSON", "malformed header JSON");
    fresh_copy("gpt-neox-tiny");
    mutate_header(overlap);
    import_fails("overlaps tensor", "overlapping tensor offsets");
    fresh_copy("gpt-neox-tiny");
    mutate_header(outside);
    import_fails("lies outside the", "offsets outside the data");
    fresh_copy("gpt-neox-tiny");
    mutate_header(bad_dtype);
    import_fails("unknown dtype 'F12'", "unknown dtype");
    fresh_copy("gpt-neox-tiny");
    mutate_header(int_dtype);
    import_fails("has dtype I32 (qid imports F32, F16 or BF16)", "integer weights");
    fresh_copy("gpt-neox-tiny");
    mutate_header(shape_bytes);
    import_fails("shape needs 124 bytes of F32 but data_offsets span 128 bytes", "shape/byte-count mismatch");
    fresh_copy("gpt-neox-tiny");
    mutate_header(shape_swap);
    import_fails("has shape [32, 64], config.json implies [64, 32]", "shape disagreeing with config.json");
    fresh_copy("gpt-neox-tiny");
    mutate_header(rename_tensor);
    import_fails("tensor 'gpt_neox.layers.1.mlp.dense_4h_to_h.bias' missing", "missing tensor");
    fresh_copy("gpt-neox-tiny");
    edit_file("config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    import_fails("tensor 'gpt_neox.layers.2.input_layernorm.weight' missing in", "more layers than stored");
    fresh_copy("gpt-neox-tiny");
    edit_file("config.json", "\"gpt_neox\"", "\"bert\"");
    import_fails("unknown architecture 'bert'", "unknown architecture");
    fresh_copy("gpt-neox-tiny");
    edit_file("config.json", "\"rope_type\": \"default\"", "\"rope_type\": \"yarn\"");
    import_fails("rope scaling 'yarn' is not supported", "rope scaling");
    fresh_copy("gpt-neox-tiny");
    edit_file("config.json", "\"intermediate_size\": 64", "\"intermediate_size\": 60");
    import_fails("has shape [64, 32], config.json implies [60, 32]", "MLP width disagreeing with the tensors");
    fresh_copy("gpt-neox-tiny");
    float nan = NAN;
    poke(4, &nan, 4, 1);
    import_fails("non-finite value in tensor '/layers/1/ln2.weight' at element 31", "NaN weight");
    fresh_copy("llama-tiny-bf16-sharded");
    edit_file("model.safetensors.index.json", "\"lm_head.weight\": \"model-00003", "\"lm_head.weight\": \"model-00001");
    import_fails("tensor 'lm_head.weight' is in 'model-00003-of-00003.safetensors' but the index says",
                 "index naming the wrong shard");
    fresh_copy("llama-tiny-bf16-sharded");
    edit_file("model.safetensors.index.json", "model-00002-of-00003.safetensors", "../evil.safetensors");
    import_fails("is not a plain file name", "index escaping the directory");
    fresh_copy("gpt-neox-tiny");
    snprintf(path, sizeof path, "%s/model.safetensors", work);
    remove(path);
    import_fails("no model.safetensors or model.safetensors.index.json", "no weights");

    /* torch.save archives: refused ones leave nothing behind */
    fail_format = QID_IMPORT_AUTO;
    static const char *const hostile[][2] = {
        {"legacy.bin", "in the legacy format (torch < 1.6 or _use_new_zipfile_serialization=False)"},
        {"hostile/os-system.bin", "global 'os.system' is not allowed"},
        {"hostile/reduce-storage.bin", "REDUCE on 'torch.FloatStorage' is not allowed"},
        {"hostile/pid-outside.bin", "names storage '9', which is not in the archive"},
        {"hostile/size-overflow.bin", "tensor size overflows"},
        {"hostile/stride-past.bin", "reaches element 8 of storage '0', which has 4"},
        {"hostile/truncated.bin", "(or truncated: no end of central directory)"},
        {"hostile/zip-bomb.bin", "(zip bomb or corrupt archive)"},
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        fresh_copy("../torch/gpt-neox-tiny-bin");
        char cmd[9000];
        snprintf(cmd, sizeof cmd, "cp test/fixtures/torch/%s '%s/pytorch_model.bin'", hostile[i][0], work);
        if (system(cmd) != 0) bail("cannot copy %s", hostile[i][0]);
        import_fails(hostile[i][1], hostile[i][0]);
    }
    fresh_copy("../torch/gpt-neox-tiny-bin");
    edit_file("config.json", "\"intermediate_size\": 64", "\"intermediate_size\": 60");
    import_fails("tensor 'gpt_neox.layers.0.mlp.dense_h_to_4h.weight' in 'pytorch_model.bin' has shape [64, 32], "
                 "config.json implies [60, 32]",
                 "torch: shape disagreeing with config.json");
    fail_format = QID_IMPORT_TORCH;
    fresh_copy("gpt-neox-tiny");
    import_fails("no pytorch_model.bin or pytorch_model.bin.index.json in", "--from torch without .bin files");
    fail_format = QID_IMPORT_AUTO;
    fresh_copy("gpt-neox-tiny");
    snprintf(path, sizeof path, "%s/model.safetensors", work);
    remove(path);
    import_fails("no model.safetensors, model.safetensors.index.json, pytorch_model.bin or", "auto without weights");
    fail_format = QID_IMPORT_SAFETENSORS;

    /* wrong schema version and wrong format on read */
    snprintf(path, sizeof path, "%s/gpt-neox-tiny.h5", tap_tmpdir());
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    qid_h5_attr_write_i64(f, "schema_version", 99, &err);
    H5Fclose(f);
    is_int(QID_E_FORMAT, qid_ckpt_open(path, &ck, &err), "newer schema version rejected on read");
    like(err.msg, "schema_version 99, this qid reads versions 1..1 (hint: upgrade qid", "schema version: message");
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    qid_h5_attr_write_str(f, "format", "qid-tokens", &err);
    H5Fclose(f);
    is_int(QID_E_FORMAT, qid_ckpt_open(path, &ck, &err), "another qid format rejected");
    like(err.msg, "is a qid-tokens file, expected qid-checkpoint", "wrong format: message");
    snprintf(path, sizeof path, FIX "/gpt-neox-tiny/config.json");
    is_int(QID_E_FORMAT, qid_ckpt_open(path, &ck, &err), "a non-HDF5 file rejected");
    like(err.msg, "is not an HDF5 file", "non-HDF5: message");
    check_family_errors();
    return 0;
}
