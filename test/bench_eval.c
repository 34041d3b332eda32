/* bench_eval.c - `make bench`: evaluation throughput of the streamed forward
 * pass on a Pythia-160M-shaped model (gpt-neox, 12 layers, d 768, 12 heads,
 * d_ff 3072, vocab 50304, rotary 0.25, parallel residual; random float16
 * weights) over 2048-token windows, side by side with
 *   - this machine's cblas_sgemm peak, measured in the same run (the best of
 *     a square 2048^3 product, before and after every run, and of the
 *     model's own largest product shape);
 *   - PyTorch (transformers GPTNeoXForCausalLM, float32) on the same weights,
 *     tokens and thread count, via tools/bench_torch_eval.py when
 *     `python3 -c 'import torch'` works (the column is skipped otherwise);
 *   - the model size, for peak memory;
 *   - llama.cpp's `llama-perplexity` in float32, when LLAMA_PERPLEXITY names
 *     a build of it: the checkpoint written as a GGUF F32 file by
 *     tools/qid_to_gguf.py (QID_BENCH_GGUF_PYTHON, default QID_BENCH_PYTHON,
 *     needs h5py and gguf), an ASCII text whose bytes are the token ids on
 *     both sides, windows of each length in QID_BENCH_LLAMA_SEQ (default
 *     512,2048) over QID_BENCH_LLAMA_TOKENS tokens (8192), the second half of
 *     each window scored (llama-perplexity's convention, qid_eval_opts
 *     second_half), QID_BENCH_LLAMA_REPEAT (3) alternating runs of each, the
 *     medians; llama.cpp's rate is from its log's timestamps, from
 *     "calculating perplexity" (model loaded, text tokenized) to "Final
 *     estimate" (every window decoded and scored), qid's the eval's own
 *     (which includes reading and converting the fp16 checkpoint on every
 *     pass).
 * Achieved GFLOP/s counts the useful work of the whole forward pass: every
 * linear product (2 * rows * in * out), causal attention (4 * hd * H * T(T+1)/2
 * per window) and the output projection of the scored rows; time includes
 * reading and converting the checkpoint.
 *
 * Both sides run QID_BENCH_REPEAT times (default 2) and report the best
 * time, which damps the noise of a shared machine.
 *
 * Then the same evaluation (qid only) of an OPT-125M-shaped model (opt, 12
 * layers, d 768, 12 heads, d_ff 3072, vocab 50272, learned positions, ReLU,
 * tied head) and a BLOOM-560M-shaped one (bloom, 24 layers, d 1024, 16
 * heads, d_ff 4096, vocab 250880, ALiBi, tanh-GELU, tied head), next to the
 * GPT-NeoX figure (QID_BENCH_FAMILIES=0 skips them).
 *
 * Environment: QID_BENCH_WINDOWS (default 2), QID_BENCH_SEQ (2048),
 * QID_BENCH_THREADS (default: all cores), QID_BENCH_PYTHON (python3),
 * QID_BENCH_KEEP (set: keep the checkpoint and tokens, and print where).
 * Not a test: prints numbers, asserts nothing about speed. */
#define _GNU_SOURCE
#include <cJSON.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "checkpoint.h"
#include "eval.h"
#include "h5io.h"
#include "kernels.h"
#include "model.h"

/* Best GFLOP/s of C (m, n) = A (m, k) B^T (n, k) over reps runs. */
static double sgemm_gflops(size_t m, size_t n, size_t k, int reps)
{
    float *A = malloc(m * k * sizeof *A), *B = malloc(n * k * sizeof *B), *C = malloc(m * n * sizeof *C);
    for (size_t i = 0; i < m * k; i++)
        A[i] = (float)((i * 37) % 101) * 0.01f - 0.5f;
    for (size_t i = 0; i < n * k; i++)
        B[i] = (float)((i * 53) % 103) * 0.01f - 0.5f;
    double best = 0.0;
    for (int r = 0; r < reps + 1; r++) { /* the first run warms up */
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, A, (int)k, B, (int)k, 0.0f,
                    C, (int)n);
        double g = 2.0 * (double)m * (double)n * (double)k / (now() - t0) / 1e9;
        if (r > 0 && g > best) best = g;
    }
    free(A);
    free(B);
    free(C);
    return best;
}

/* Writes a float16 checkpoint of cfg with random weights: matrices uniform
 * with standard deviation 0.02, norm weights 1 + small noise, biases small. */
static int write_model(const char *path, const qid_model_config *cfg, const char *name)
{
    qid_ckpt_meta meta = {.step = -1, .tokens_seen = -1, .dtype = QID_DTYPE_F16, .lr_frac = NAN};
    snprintf(meta.model, sizeof meta.model, "%s", name);
    snprintf(meta.source_format, sizeof meta.source_format, "bench");
    qid_ckpt_source src = {0};
    qid_error err;
    qid_ckpt_writer *w = qid_ckpt_create(path, cfg, &meta, &src, &err);
    if (!w) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    size_t n = 0;
    qid_tensor_spec *t = qid_ckpt_tensors(cfg, &n);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        size_t numel = (size_t)qid_tensor_numel(&t[i]);
        uint16_t *h = malloc(numel * sizeof *h);
        int is_norm_w = t[i].kind == QID_TENSOR_NORM && strstr(t[i].name, "weight") != NULL;
        float scale = t[i].ndim == 2 ? 0.0346f : (is_norm_w ? 0.1f : 0.02f); /* 0.0346 = 0.02 * sqrt(3) */
        for (size_t j = 0; j < numel; j++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            float u = (float)((s >> 40) * 0x1p-23) - 1.0f; /* [-1, 1) */
            h[j] = qid_f32_to_f16((is_norm_w ? 1.0f : 0.0f) + scale * u);
        }
        if (qid_ckpt_write_tensor(w, &t[i], h, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            qid_ckpt_abort(w);
            free(h);
            free(t);
            return 1;
        }
        free(h);
    }
    free(t);
    if (qid_ckpt_finish(w, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* Runs the PyTorch side once; fills *secs, *tps, *loss, *rss_mib; 0 on success. */
static int run_torch(const char *python, const char *ckpt, const char *tokens, size_t B, size_t T, int threads,
                     int repeat, double *secs, double *tps, double *loss, double *rss_mib, char *versions, size_t vlen)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=%d %s tools/bench_torch_eval.py '%s' '%s' --windows %zu --seq-len %zu --threads %d "
             "--repeat %d",
             threads, python, ckpt, tokens, B, T, threads, repeat);
    FILE *p = popen(cmd, "r");
    if (!p) return 1;
    char line[4096] = "";
    char *got = fgets(line, sizeof line, p);
    int rc = pclose(p);
    if (!got || rc != 0) return 1;
    cJSON *j = cJSON_Parse(line);
    if (!j) return 1;
    *secs = cJSON_GetObjectItem(j, "seconds")->valuedouble;
    *tps = cJSON_GetObjectItem(j, "tokens_per_s")->valuedouble;
    *loss = cJSON_GetObjectItem(j, "loss")->valuedouble;
    *rss_mib = cJSON_GetObjectItem(j, "peak_rss_mib")->valuedouble;
    snprintf(versions, vlen, "torch %s, transformers %s, attention %s", cJSON_GetObjectItem(j, "torch")->valuestring,
             cJSON_GetObjectItem(j, "transformers")->valuestring,
             cJSON_GetObjectItem(j, "attn_implementation")->valuestring);
    cJSON_Delete(j);
    return 0;
}

/* qid's evaluation of a model of cfg (random float16 weights written to
 * path) on tok (B, T): the best tokens/s of repeat runs, with the loss. */
static int family_tps(const char *path, const qid_model_config *cfg, const char *name, const uint32_t *tok, size_t B,
                      size_t T, int threads, int repeat, double *tps, double *loss, double *secs, double *gflops)
{
    if (write_model(path, cfg, name)) return 1;
    qid_model *m = NULL;
    qid_error err;
    if (qid_model_open(path, &m, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    qid_eval_opts o = {.batch_windows = B, .threads = threads};
    double best = INFINITY;
    for (int k = 0; k < repeat; k++) {
        qid_eval_result r;
        double f0 = qid_model_get_stats(m)->flops;
        if (qid_eval_windows(m, tok, B, T, &o, &r, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            qid_model_free(m);
            return 1;
        }
        if (r.seconds < best) {
            best = r.seconds;
            *gflops = (r.stats.flops - f0) / r.seconds / 1e9;
        }
        *loss = r.loss;
        qid_eval_result_free(&r);
    }
    qid_model_free(m);
    unlink(path);
    *secs = best;
    *tps = (double)(B * T) / best;
    return 0;
}

/* The OPT-125M- and BLOOM-560M-shaped models, printed under the GPT-NeoX figure. */
static void other_families(const char *dir, const uint32_t *tok, size_t B, size_t T, int threads, int repeat,
                           double neox_tps, double neox_gflops, double peak)
{
    const qid_model_config opt = {.arch = QID_ARCH_OPT,
                                  .vocab_size = 50272,
                                  .d_model = 768,
                                  .n_layers = 12,
                                  .n_heads = 12,
                                  .n_kv_heads = 12,
                                  .head_dim = 64,
                                  .d_ff = 3072,
                                  .max_seq_len = 2048,
                                  .rope_theta = 10000,
                                  .norm_eps = 1e-5,
                                  .tie_embeddings = 1,
                                  .qkv_bias = 1,
                                  .o_bias = 1,
                                  .mlp_bias = 1,
                                  .act = QID_ACT_RELU};
    const qid_model_config bloom = {.arch = QID_ARCH_BLOOM,
                                    .vocab_size = 250880,
                                    .d_model = 1024,
                                    .n_layers = 24,
                                    .n_heads = 16,
                                    .n_kv_heads = 16,
                                    .head_dim = 64,
                                    .d_ff = 4096,
                                    .max_seq_len = 1 << 20,
                                    .rope_theta = 10000,
                                    .norm_eps = 1e-5,
                                    .tie_embeddings = 1,
                                    .qkv_bias = 1,
                                    .o_bias = 1,
                                    .mlp_bias = 1,
                                    .act = QID_ACT_GELU_TANH};
    const struct {
        const char *name;
        const qid_model_config *cfg;
    } fam[] = {{"opt-125m-shape", &opt}, {"bloom-560m-shape", &bloom}};
    printf("\n  other families (qid only, the same windows and threads; ids below 50277):\n");
    printf("    %-22s %8.1f tokens/s  %.1f GFLOP/s = %.0f%% of sgemm peak (the GPT-NeoX figure above)\n",
           "pythia-160m-shape", neox_tps, neox_gflops, 100.0 * neox_gflops / peak);
    for (size_t i = 0; i < 2; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s.h5", dir, fam[i].name);
        double tps = 0, loss = NAN, secs = 0, gf = 0;
        if (family_tps(path, fam[i].cfg, fam[i].name, tok, B, T, threads, repeat, &tps, &loss, &secs, &gf)) {
            printf("    %-22s failed\n", fam[i].name);
            continue;
        }
        printf("    %-22s %8.1f tokens/s  %.1f GFLOP/s = %.0f%% of sgemm peak  %6.2f s  loss %.6f  (N = %lld, %.0f MiB "
               "fp32 with the embedding)\n",
               fam[i].name, tps, gf, 100.0 * gf / peak, secs, loss, (long long)qid_params_nonembedding(fam[i].cfg),
               (double)qid_params_total(fam[i].cfg) * 4 / 1048576.0);
    }
}

/* ---- llama.cpp (LLAMA_PERPLEXITY) ------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The seconds of a llama.cpp log line's timestamp ("M.SS.mmm.uuu I ..."),
 * NaN when it has none. */
static double log_stamp(const char *line)
{
    int mi, se, ms, us;
    return sscanf(line, "%d.%d.%d.%d", &mi, &se, &ms, &us) == 4 ? mi * 60.0 + se + ms * 1e-3 + us * 1e-6 : NAN;
}

/* One llama-perplexity run over text (ctx T, threads): its tokens/s into
 * *tps, from the log's timestamps of "calculating perplexity" (tokenized,
 * model loaded) to "Final estimate" (every window decoded and scored), the
 * whole process's wall seconds into *wall and its final PPL into *ppl;
 * 0 on success. The log goes to logpath. */
static int run_llama(const char *bin, const char *gguf, const char *text, size_t T, size_t chunks, int threads,
                     const char *logpath, double *tps, double *wall, double *ppl)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' -f '%s' -c %zu --chunks %zu -t %d -tb %d >'%s' 2>&1", bin, gguf, text, T,
             chunks, threads, threads, logpath);
    double t0 = now();
    int rc = system(cmd);
    *wall = now() - t0;
    if (rc != 0) return 1;
    FILE *f = fopen(logpath, "r");
    if (!f) return 1;
    char line[1024];
    double start = NAN, end = NAN;
    *tps = *ppl = NAN;
    while (fgets(line, sizeof line, f)) {
        const char *p;
        if (strstr(line, "calculating perplexity")) start = log_stamp(line);
        if ((p = strstr(line, "Final estimate: PPL =")) != NULL) {
            sscanf(p, "Final estimate: PPL = %lf", ppl);
            end = log_stamp(line);
        }
    }
    fclose(f);
    if (end > start) *tps = (double)(T * chunks) / (end - start);
    return isnan(*tps) ? 1 : 0;
}

/* qid against llama.cpp's F32 path on the same weights (ckpt written as a
 * GGUF F32 file by tools/qid_to_gguf.py) and the same windows (an ASCII
 * text whose bytes are the ids on both sides), scoring the second half of
 * each window as llama-perplexity does, runs alternating, medians. */
static int llama_compare(const char *bin, const char *python, const char *dir, const char *ckpt, int threads,
                         double peak)
{
    char gguf[512], cmd[2048];
    snprintf(gguf, sizeof gguf, "%s/model-f32.gguf", dir);
    snprintf(cmd, sizeof cmd, "%s tools/qid_to_gguf.py '%s' '%s' >/dev/null", python, ckpt, gguf);
    printf("\n  llama.cpp         %s, F32 weights from tools/qid_to_gguf.py (%s)\n", bin, python);
    fflush(stdout);
    if (system(cmd) != 0) {
        printf("    skipped: tools/qid_to_gguf.py failed (it needs h5py and gguf; QID_BENCH_GGUF_PYTHON names the "
               "interpreter)\n");
        unlink(gguf);
        return 0;
    }
    const size_t ntok = env_size("QID_BENCH_LLAMA_TOKENS", 8192);
    const int reps = (int)env_size("QID_BENCH_LLAMA_REPEAT", 3);
    const char *seqs = getenv("QID_BENCH_LLAMA_SEQ") ? getenv("QID_BENCH_LLAMA_SEQ") : "512,2048";
    char text[512], logpath[512];
    snprintf(text, sizeof text, "%s/text.txt", dir);
    snprintf(logpath, sizeof logpath, "%s/llama.log", dir);
    uint32_t *ids = malloc(ntok * sizeof *ids);
    char *bytes = malloc(ntok);
    uint64_t s = 7;
    for (size_t i = 0; i < ntok; i++) { /* letters and spaces: one byte, one token on both sides */
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        unsigned k = (unsigned)((s >> 33) % 27);
        bytes[i] = k == 26 ? ' ' : (char)('a' + k);
        ids[i] = (uint8_t)bytes[i];
    }
    FILE *f = fopen(text, "wb");
    fwrite(bytes, 1, ntok, f);
    fclose(f);
    free(bytes);
    qid_model *m = NULL;
    qid_error err;
    if (qid_model_open(ckpt, &m, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    printf("    %zu tokens of text, %d threads, second half of each window scored (llama-perplexity's "
           "convention), median of %d alternating runs\n",
           ntok, threads, reps);
    printf("    %6s %7s %12s %12s %7s %13s %10s %12s %12s\n", "window", "windows", "qid tok/s", "llama tok/s", "ratio",
           "qid GFLOP/s", "of peak", "qid PPL", "llama PPL");
    int rc = 0;
    for (const char *p = seqs; *p && rc == 0;) {
        size_t T = strtoul(p, NULL, 10);
        p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p);
        size_t W = T ? ntok / T : 0;
        if (W < 2) {
            printf("    %6zu  skipped: llama-perplexity needs 2 windows (QID_BENCH_LLAMA_TOKENS)\n", T);
            continue;
        }
        double q_tps[16], l_tps[16], q_gf[16], l_wall = 0, qppl = NAN, lppl = NAN;
        int n = reps < 16 ? reps : 16;
        for (int k = 0; k < n && rc == 0; k++) {
            qid_eval_opts o = {.second_half = 1, .threads = threads};
            qid_eval_result r;
            qid_model_stats before = *qid_model_get_stats(m);
            if (qid_eval_windows(m, ids, W, T, &o, &r, &err)) {
                fprintf(stderr, "bench: %s\n", err.msg);
                rc = 1;
                break;
            }
            q_tps[k] = r.tokens_per_s;
            q_gf[k] = (r.stats.flops - before.flops) / r.seconds / 1e9;
            qppl = r.perplexity;
            qid_eval_result_free(&r);
            if (run_llama(bin, gguf, text, T, W, threads, logpath, &l_tps[k], &l_wall, &lppl)) {
                printf("    llama-perplexity failed; its log: %s\n", logpath);
                rc = 1;
            }
        }
        if (rc) break;
        double qm = median(q_tps, n), lm = median(l_tps, n), gm = median(q_gf, n);
        printf("    %6zu %7zu %12.1f %12.1f %6.2fx %13.1f %9.0f%% %12.4f %12.4f\n", T, W, qm, lm, qm / lm, gm,
               100.0 * gm / peak, qppl, lppl);
        printf("           runs: qid");
        for (int k = 0; k < n; k++)
            printf(" %.1f", q_tps[k]);
        printf(", llama.cpp");
        for (int k = 0; k < n; k++)
            printf(" %.1f", l_tps[k]);
        printf(" tokens/s\n");
        fflush(stdout);
    }
    qid_model_free(m);
    free(ids);
    if (!getenv("QID_BENCH_KEEP")) {
        unlink(gguf);
        unlink(text);
        if (rc == 0) unlink(logpath);
    }
    return rc;
}

int main(void)
{
    qid_h5_silence();
    const char *core = qid_blas_init(); /* as the qid command does */
    const size_t B = env_size("QID_BENCH_WINDOWS", 2), T = env_size("QID_BENCH_SEQ", 2048);
    const int threads = (int)env_size("QID_BENCH_THREADS", (size_t)omp_get_num_procs());
    const int repeat = (int)env_size("QID_BENCH_REPEAT", 2);
    const char *python = getenv("QID_BENCH_PYTHON") ? getenv("QID_BENCH_PYTHON") : "python3";
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
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
    printf("qid bench: evaluation of a Pythia-160M-shaped model (fp16 storage, fp32 compute, random weights)\n");
    printf("  %zu windows x %zu tokens, %d threads, kernels %s, OpenBLAS %s, best of %d runs\n", B, T, threads,
           qid_k_impl_name(), core, repeat);

    /* 1. the machine's sgemm peak */
    const double g_sq = sgemm_gflops(2048, 2048, 2048, 3), g_model = sgemm_gflops(B * T, 3072, 768, 2);
    double peak = g_sq > g_model ? g_sq : g_model;
    printf("  cblas_sgemm: %.1f GFLOP/s (2048^3), %.1f GFLOP/s (%zu x 3072 x 768): peak %.1f GFLOP/s\n", g_sq, g_model,
           B * T, peak);

    /* 2. the model and the tokens */
    char dir[] = "/tmp/qid-bench-eval-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char ckpt[256], tokpath[256];
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", dir);
    snprintf(tokpath, sizeof tokpath, "%s/tokens.u32", dir);
    double t0 = now();
    if (write_model(ckpt, &cfg, "bench-pythia-160m-shape")) return 1;
    double model_mb = (double)qid_params_total(&cfg) * 4 / 1048576.0;
    printf("  wrote the checkpoint in %.1f s: %.1f MiB as float32 (N = %lld)\n", now() - t0, model_mb,
           (long long)qid_params_nonembedding(&cfg));
    uint32_t *tok = malloc(B * T * sizeof *tok);
    uint64_t s = 42;
    for (size_t i = 0; i < B * T; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (uint32_t)((s >> 33) % 50277);
    }
    FILE *f = fopen(tokpath, "wb");
    fwrite(tok, sizeof *tok, B * T, f);
    fclose(f);

    /* 3. qid */
    qid_model *m = NULL;
    qid_error err;
    if (qid_model_open(ckpt, &m, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    long rss0 = status_kb("VmRSS");
    int reset = reset_peak();
    qid_eval_opts o = {.batch_windows = B, .threads = threads};
    qid_eval_result r;
    double best = INFINITY, loss = NAN;
    qid_model_stats st = {0};
    /* torch, best of the same number of runs, interleaved with qid's so both see the same machine load */
    double ts = INFINITY, ttps = 0, tloss = NAN, trss = 0;
    char versions[256] = "";
    int trc = -1;
    char probe[512];
    snprintf(probe, sizeof probe, "%s -c 'import torch, transformers, h5py' >/dev/null 2>&1", python);
    const int have_torch = system(probe) == 0;
    long hwm = 0;
    for (int k = 0; k < repeat; k++) {
        qid_model_stats before = *qid_model_get_stats(m);
        if (qid_eval_windows(m, tok, B, T, &o, &r, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        if (k == 0) hwm = status_kb("VmHWM");
        if (r.seconds < best) { /* this pass's own counters */
            best = r.seconds;
            st = r.stats;
            st.read_s -= before.read_s;
            st.gemm_s -= before.gemm_s;
            st.attn_s -= before.attn_s;
            st.other_s -= before.other_s;
            st.head_s -= before.head_s;
            st.flops -= before.flops;
        }
        loss = r.loss;
        qid_eval_result_free(&r);
        double g = sgemm_gflops(2048, 2048, 2048, 3); /* the peak again: the machine may be shared */
        if (g > peak) peak = g;
        if (have_torch) {
            double s1, tps1, l1, rss1;
            int rc =
                run_torch(python, ckpt, tokpath, B, T, threads, 1, &s1, &tps1, &l1, &rss1, versions, sizeof versions);
            if (rc == 0 && s1 < ts) {
                ts = s1;
                ttps = tps1;
                tloss = l1;
                trss = rss1;
            }
            trc = rc == 0 || trc == 0 ? 0 : rc;
        }
    }
    qid_model_free(m);
    printf("  cblas_sgemm peak, the best of measurements before and after each run: %.1f GFLOP/s\n", peak);

    const double qid_tps = (double)(B * T) / best, gflops = st.flops / best / 1e9;
    printf("\n  qid eval          %8.1f tokens/s  %6.2f s  loss %.6f\n", qid_tps, best, loss);
    printf("    achieved        %8.1f GFLOP/s = %.0f%% of sgemm peak (%.1f GFLOP of work)\n", gflops,
           100.0 * gflops / peak, st.flops / 1e9);
    printf(
        "    time            read %.2f s, products %.2f s, attention %.2f s, norms/activations %.2f s, head %.2f s\n",
        st.read_s, st.gemm_s, st.attn_s, st.other_s, st.head_s);
    printf("    memory          peak RSS %.0f MiB during the pass%s (%.0f MiB before); model %.0f MiB fp32; "
           "one layer %.0f MiB; batch activations %.0f MiB; head %.0f MiB\n",
           (double)hwm / 1024, reset ? "" : " (process peak: no reset)", (double)rss0 / 1024, model_mb,
           (double)qid_model_layer_bytes(&cfg) / 1048576, (double)qid_model_batch_bytes(&cfg, B, T) / 1048576,
           (double)(cfg.vocab_size * cfg.d_model) * 4 / 1048576);

    /* 4. PyTorch */
    if (!have_torch) {
        printf("  pytorch           skipped: '%s -c \"import torch, transformers, h5py\"' failed\n", python);
    } else if (trc != 0) {
        printf("  pytorch           failed (run tools/bench_torch_eval.py by hand to see why)\n");
    } else {
        printf("  pytorch           %8.1f tokens/s  %6.2f s  loss %.6f  (%s)\n", ttps, ts, tloss, versions);
        printf("    qid / pytorch   %.2fx throughput; |loss difference| %.2g\n", qid_tps / ttps, fabs(tloss - loss));
        printf("    memory          peak RSS %.0f MiB (whole model and full logits resident)\n", trss);
    }
    if (!getenv("QID_BENCH_FAMILIES") || atoi(getenv("QID_BENCH_FAMILIES")) != 0)
        other_families(dir, tok, B, T, threads, repeat, qid_tps, gflops, peak);
    free(tok);
    const char *llama = getenv("LLAMA_PERPLEXITY");
    if (llama && *llama) {
        const char *gpy = getenv("QID_BENCH_GGUF_PYTHON") ? getenv("QID_BENCH_GGUF_PYTHON") : python;
        if (llama_compare(llama, gpy, dir, ckpt, threads, peak)) return 1;
    } else {
        printf("\n  llama.cpp         skipped: LLAMA_PERPLEXITY=/path/to/llama-perplexity is not set\n");
    }
    if (getenv("QID_BENCH_KEEP")) {
        printf("  kept %s and %s\n", ckpt, tokpath);
        return 0;
    }
    unlink(ckpt);
    unlink(tokpath);
    rmdir(dir);
    return 0;
}
