/* bench_import.c - `make bench`: import throughput and memory of a
 * Pythia-160M-shaped checkpoint (fp16, 12 layers, d 768, vocab 50304,
 * random weights), side by side with the machine's plain file copy and the
 * SHA-256 hashing rate that bound it. Peak memory is compared with the
 * checkpoint size to show the import streams one tensor at a time.
 *
 * Not a test: prints numbers, asserts nothing about speed. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    free(src);
    free(copy);
    free(out);
    free(buf);
    return 0;
}
