/* bench_import.c - `make bench`: import throughput and memory of a
 * Pythia-160M-shaped checkpoint (fp16, 12 layers, d 768, vocab 50304,
 * random weights), side by side with the machine's plain file copy and the
 * SHA-256 hashing rate that bound it. Peak memory is compared with the
 * checkpoint size to show the import streams one tensor at a time. The same
 * weights are then written as a pytorch_model.bin (a stored zip through
 * libzip and a state-dict pickle written here, as torch.save lays them out:
 * no Python at bench time) and imported too: the .bin import against the
 * safetensors import (target: within 1.5x), and the same tensor hash.
 *
 * Not a test: prints numbers, asserts nothing about speed. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <zip.h>

#include "bench.h"
#include "checkpoint.h"
#include "fsutil.h"
#include "import.h"
#include "sha256.h"

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Writes DIR/config.json and DIR/model.safetensors for cfg in fp16. */
static size_t write_checkpoint(const char *dir, const qid_model_config *cfg)
{
    char *path = qid_path_join(dir, "config.json");
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{\"model_type\":\"gpt_neox\",\"vocab_size\":%lld,\"hidden_size\":%lld,\"num_hidden_layers\":%lld,"
            "\"num_attention_heads\":%lld,\"intermediate_size\":%lld,\"rotary_pct\":0.25,\"rotary_emb_base\":10000,"
            "\"max_position_embeddings\":2048,\"layer_norm_eps\":1e-5,\"use_parallel_residual\":true,"
            "\"hidden_act\":\"gelu\",\"tie_word_embeddings\":false}",
            (long long)cfg->vocab_size, (long long)cfg->d_model, (long long)cfg->n_layers, (long long)cfg->n_heads,
            (long long)cfg->d_ff);
    fclose(f);
    free(path);
    size_t n = 0;
    qid_tensor_spec *t = qid_ckpt_tensors(cfg, &n);
    size_t cap = 256 * n + 64, len = 0, offset = 0;
    char *hdr = malloc(cap);
    len += (size_t)snprintf(hdr + len, cap - len, "{");
    for (size_t i = 0; i < n; i++) {
        size_t bytes = 2 * (size_t)qid_tensor_numel(&t[i]);
        if (t[i].ndim == 2)
            len += (size_t)snprintf(
                hdr + len, cap - len, "%s\"%s\":{\"dtype\":\"F16\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                i ? "," : "", t[i].hf_name, (long long)t[i].shape[0], (long long)t[i].shape[1], offset, offset + bytes);
        else
            len += (size_t)snprintf(hdr + len, cap - len,
                                    "%s\"%s\":{\"dtype\":\"F16\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                                    i ? "," : "", t[i].hf_name, (long long)t[i].shape[0], offset, offset + bytes);
        offset += bytes;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    path = qid_path_join(dir, "model.safetensors");
    f = fopen(path, "wb");
    uint64_t hl = len;
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, len, f);
    enum { CHUNK = 1 << 20 };
    uint16_t *buf = malloc(CHUNK * 2);
    uint64_t state = 88172645463325252ull;
    for (size_t done = 0; done < offset; done += CHUNK * 2) {
        size_t m = offset - done < CHUNK * 2 ? (offset - done) / 2 : CHUNK;
        for (size_t k = 0; k < m; k++) { /* xorshift -> fp16 in about [-0.06, 0.06] */
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            buf[k] = (uint16_t)(0x2000 + (state & 0x0fff)) | (uint16_t)((state >> 20) & 0x8000);
        }
        fwrite(buf, 2, m, f);
    }
    fclose(f);
    free(buf);
    free(path);
    free(hdr);
    free(t);
    return 8 + len + offset;
}

/* ---- pytorch_model.bin of the same weights ---------------------------------- */

typedef struct {
    char *b;
    size_t n, cap;
} pbuf;

static void put(pbuf *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = 2 * (o->n + n);
        o->b = realloc(o->b, o->cap);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void put_s(pbuf *o, const char *s) { put(o, s, strlen(s)); }
static void put_str(pbuf *o, const char *s) /* BINUNICODE */
{
    uint32_t n = (uint32_t)strlen(s);
    put(o, "X", 1);
    put(o, &n, 4);
    put(o, s, n);
}
static void put_int(pbuf *o, uint64_t v) /* LONG1, 8 bytes (values < 2^63) */
{
    put(o, "\x8a\x08", 2);
    put(o, &v, 8);
}

/* DIR/model.safetensors (from write_checkpoint) -> DIR/bin/pytorch_model.bin
 * and config.json: one HalfStorage per tensor, as torch.save stores them. */
static void write_bin(const char *dir, const qid_model_config *cfg)
{
    char path[600], cmd[1400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/bin' && cp '%s/config.json' '%s/bin/'", dir, dir, dir);
    if (system(cmd) != 0) exit(1);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *st = malloc(size);
    if (fread(st, 1, size, f) != size) exit(1);
    fclose(f);
    uint64_t hl;
    memcpy(&hl, st, 8);
    const char *data = st + 8 + hl;
    snprintf(path, sizeof path, "%s/bin/pytorch_model.bin", dir);
    int zerr = 0;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    size_t n = 0, off = 0;
    qid_tensor_spec *t = qid_ckpt_tensors(cfg, &n);
    pbuf pk = {0};
    put_s(&pk, "\x80\x02"
               "ccollections\nOrderedDict\n)R(");
    for (size_t i = 0; i < n; i++) {
        uint64_t numel = (uint64_t)qid_tensor_numel(&t[i]);
        char key[32], ename[64];
        snprintf(key, sizeof key, "%zu", i);
        snprintf(ename, sizeof ename, "archive/data/%zu", i);
        zip_source_t *src = zip_source_buffer(z, data + off, numel * 2, 0);
        zip_int64_t idx = zip_file_add(z, ename, src, ZIP_FL_OVERWRITE);
        zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0);
        off += numel * 2;
        put_str(&pk, t[i].hf_name);
        put_s(&pk, "ctorch._utils\n_rebuild_tensor_v2\n((");
        put_str(&pk, "storage");
        put_s(&pk, "ctorch\nHalfStorage\n");
        put_str(&pk, key);
        put_str(&pk, "cpu");
        put_int(&pk, numel);
        put_s(&pk, "tQ");
        put_int(&pk, 0);
        put_s(&pk, "(");
        put_int(&pk, (uint64_t)t[i].shape[0]);
        if (t[i].ndim == 2) put_int(&pk, (uint64_t)t[i].shape[1]);
        put_s(&pk, "t(");
        if (t[i].ndim == 2) put_int(&pk, (uint64_t)t[i].shape[1]);
        put_int(&pk, 1);
        put_s(&pk, "t\x89"
                   "ccollections\nOrderedDict\n)RtR");
    }
    put_s(&pk, "u.");
    zip_source_t *src = zip_source_buffer(z, pk.b, pk.n, 0);
    zip_int64_t idx = zip_file_add(z, "archive/data.pkl", src, ZIP_FL_OVERWRITE);
    zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0);
    src = zip_source_buffer(z, "little", 6, 0);
    idx = zip_file_add(z, "archive/byteorder", src, ZIP_FL_OVERWRITE);
    zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0);
    if (zip_close(z) != 0) {
        printf("cannot write %s: %s\n", path, zip_strerror(z));
        exit(1);
    }
    free(pk.b);
    free(t);
    free(st);
}

static double time_import(const char *dir, qid_import_format fmt, const char *out, char hash[65])
{
    qid_import_opts o = {.dir = dir, .out = out, .step = 143000, .tokens = -1, .force = 1, .format = fmt};
    qid_error err;
    double t0 = now();
    if (qid_import(&o, &err)) {
        printf("import failed: %s\n", err.msg);
        exit(1);
    }
    double t = now() - t0;
    qid_ckpt ck;
    qid_ckpt_open(out, &ck, &err);
    memcpy(hash, ck.meta.tensor_sha256, 65);
    qid_ckpt_close(&ck);
    return t;
}

int main(void)
{
    qid_h5_silence();
    qid_model_config cfg = {.arch = QID_ARCH_GPT_NEOX,
                            .vocab_size = 50304,
                            .d_model = 768,
                            .n_layers = 12,
                            .n_heads = 12,
                            .n_kv_heads = 12,
                            .head_dim = 64,
                            .d_ff = 3072,
                            .max_seq_len = 2048,
                            .rotary_dim = 16,
                            .rotary_pct = 0.25,
                            .rope_theta = 10000,
                            .norm_eps = 1e-5,
                            .parallel_residual = 1,
                            .qkv_bias = 1,
                            .o_bias = 1,
                            .mlp_bias = 1};
    char dir[] = "/tmp/qid-bench-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    printf("qid bench: import of a Pythia-160M-shaped checkpoint (fp16, random weights)\n");
    size_t bytes = write_checkpoint(dir, &cfg);
    double mb = (double)bytes / 1e6;
    char *src = qid_path_join(dir, "model.safetensors"), *copy = qid_path_join(dir, "copy.bin");
    char *out = qid_path_join(dir, "ck.h5");
    long rss0 = peak_rss_kb();

    /* reference 1: plain copy through a 1 MiB buffer (what cp does) */
    double t0 = now();
    FILE *in = fopen(src, "rb"), *o = fopen(copy, "wb");
    char *buf = malloc(1 << 20);
    size_t got;
    while ((got = fread(buf, 1, 1 << 20, in)) > 0)
        fwrite(buf, 1, got, o);
    fclose(in);
    fclose(o);
    double t_copy = now() - t0;
    /* reference 2: SHA-256 of the file (import hashes every source file) */
    char hex[65];
    qid_error err;
    t0 = now();
    qid_sha256_file(src, hex, &err);
    double t_hash = now() - t0;
    /* qid import */
    qid_import_opts opts = {.dir = dir, .out = out, .step = 143000, .tokens = 143000LL * 2097152, .force = 1};
    t0 = now();
    int rc = qid_import_safetensors(&opts, &err);
    double t_import = now() - t0;
    long rss1 = peak_rss_kb();
    if (rc) {
        printf("import failed: %s\n", err.msg);
        return 1;
    }
    qid_ckpt ck;
    qid_ckpt_open(out, &ck, &err);
    printf("  checkpoint: %.1f MB, N = %lld (Pythia-160M: 85056000)\n", mb, (long long)ck.meta.params_nonembedding);
    qid_ckpt_close(&ck);
    printf("  %-34s %8.3f s %9.1f MB/s\n", "file copy (reference)", t_copy, mb / t_copy);
    printf("  %-34s %8.3f s %9.1f MB/s\n", "sha256 of the file (reference)", t_hash, mb / t_hash);
    printf("  %-34s %8.3f s %9.1f MB/s  (%.2fx copy time)\n", "qid import (hash + read + write)", t_import,
           mb / t_import, t_import / t_copy);
    printf("  peak RSS during import: %.1f MB (%.1f MB before), largest tensor %.1f MB, checkpoint %.1f MB\n",
           (double)rss1 / 1e3, (double)rss0 / 1e3, 2.0 * 50304 * 768 / 1e6, mb);

    /* the same weights as pytorch_model.bin: best of 2 imports of each */
    write_bin(dir, &cfg);
    char *bin_dir = qid_path_join(dir, "bin"), h_st[65], h_bin[65];
    double t_st = 1e30, t_bin = 1e30;
    for (int r = 0; r < 2; r++) {
        double a = time_import(dir, QID_IMPORT_SAFETENSORS, out, h_st);
        double b = time_import(bin_dir, QID_IMPORT_TORCH, out, h_bin);
        t_st = a < t_st ? a : t_st;
        t_bin = b < t_bin ? b : t_bin;
    }
    printf("  %-34s %8.3f s %9.1f MB/s\n", "import of model.safetensors", t_st, mb / t_st);
    printf("  %-34s %8.3f s %9.1f MB/s  (%.2fx the safetensors import; target 1.5x)\n", "import of pytorch_model.bin",
           t_bin, mb / t_bin, t_bin / t_st);
    printf("  tensor hash: %s (%s)\n", strcmp(h_st, h_bin) == 0 ? "equal" : "DIFFERENT", h_bin);
    free(bin_dir);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    free(src);
    free(copy);
    free(out);
    free(buf);
    return 0;
}
