/* bench_calib.c - `make bench`: peak memory and time of GPTQ calibration on
 * a model of Pythia-1B's width (gpt-neox, d 2048, 8 heads of 256, d_ff
 * 8192, vocab 50304, parallel residual; 2 layers of random float16
 * weights), int4-g128, with W calibration windows of 2048 random tokens,
 * side by side in one run:
 *   - today: the activation hook on one batch of every window (model.h
 *     qid_batch_step with act_hook), (2 d + max(qkv + attn, d_ff)) floats
 *     per token at once;
 *   - streamed: qid_calib in chunks of the default 256 MiB budget, the
 *     residual stream (d floats per token) in memory;
 *   - scratch: the same with the residual stream in a scratch file.
 * Each run loads every stage as `qid quantize` does (embedding, layers with
 * calibration, head) in a child process of its own (this program exec'd
 * again), whose peak resident set and CPU time come from wait4
 * (ru_maxrss, ru_utime + ru_stime), beside qid_quantize_mem_estimate's
 * prediction. Then a least-squares line peak = fixed + per window x W per
 * path, and the predictions at Pythia-1B (16 layers), 6.9B and 12B with
 * 128 x 2048 windows.
 *
 * Time is wall-clock and CPU seconds of the run (on a shared machine the
 * CPU seconds compare the paths better).
 *
 * Environment: QID_BENCH_CALIB_LAYERS (default 2), QID_BENCH_CALIB_WINDOWS
 * (comma-separated, default "16,64,128"), QID_BENCH_CALIB_PATHS (default
 * "today,streamed,scratch"), QID_BENCH_CALIB_SKIP_TODAY_ABOVE (windows;
 * today's path is skipped above it; by default it runs wherever
 * MemAvailable holds its activations (qid_model_batch_bytes) plus 2 GiB:
 * 128 windows need about 13 GiB), QID_BENCH_THREADS (default: all cores),
 * QID_BENCH_SCRATCH (directory of the scratch file, default /tmp),
 * QID_BENCH_CALIB_CKPT (a checkpoint an earlier run wrote, of the same
 * layer count, used instead of writing one). Not a
 * test: prints numbers, asserts nothing. */
#define _GNU_SOURCE
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "checkpoint.h"
#include "h5io.h"
#include "model.h"
#include "quantize.h"

#define SEQ 2048

extern char **environ;

/* A field of /proc/meminfo in kB, or -1. */
static long meminfo_kb(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') v = strtol(line + kl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* A float16 checkpoint of cfg with random weights (as bench_eval.c). */
static int write_model(const char *path, const qid_model_config *cfg)
{
    qid_ckpt_meta meta = {.step = -1, .tokens_seen = -1, .dtype = QID_DTYPE_F16};
    snprintf(meta.model, sizeof meta.model, "bench-pythia-1b-width");
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
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t numel = (size_t)qid_tensor_numel(&t[i]);
        uint16_t *h = malloc(numel * sizeof *h);
        int is_norm_w = t[i].kind == QID_TENSOR_NORM && strstr(t[i].name, "weight") != NULL;
        float scale = t[i].ndim == 2 ? 0.0346f : (is_norm_w ? 0.1f : 0.02f);
        for (size_t j = 0; j < numel; j++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            float u = (float)((s >> 40) * 0x1p-23) - 1.0f;
            h[j] = qid_f32_to_f16((is_norm_w ? 1.0f : 0.0f) + scale * u);
        }
        if (qid_ckpt_write_tensor(w, &t[i], h, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            rc = 1;
        }
        free(h);
    }
    free(t);
    if (rc) {
        qid_ckpt_abort(w);
        return 1;
    }
    if (qid_ckpt_finish(w, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    return 0;
}

typedef struct run {
    double seconds, cpu_s;
    long peak_kb;            /* the whole run: the larger of the two below and ru_maxrss (which the
                                VmHWM reset before the head also resets: alone it is the head's) */
    long layers_kb, head_kb; /* through the last layer; from there to the end (VmHWM reset between) */
    size_t chunk;
    double gptq_loss;
} run;

/* W windows of SEQ random ids (the first W of every larger set). */
static uint32_t *make_tokens(size_t W)
{
    uint32_t *tokens = malloc(W * SEQ * sizeof *tokens);
    uint64_t s = 12345;
    for (size_t i = 0; tokens && i < W * SEQ; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (uint32_t)((s >> 33) % 50304);
    }
    return tokens;
}

/* The child process of one run (argv: --child ckpt W path dir threads):
 * GPTQ of every layer of ckpt on W windows, path 0 today, 1 streamed, 2
 * streamed with a scratch file in dir, loading every stage as `qid
 * quantize` does. Prints "chunk gptq_loss VmHWM_kB" on stdout. */
static int child_main(char **argv)
{
    const char *ckpt = argv[2], *dir = argv[5];
    const size_t W = (size_t)strtoul(argv[3], NULL, 10);
    const int path = atoi(argv[4]), threads = atoi(argv[6]);
    qid_h5_silence();
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    uint32_t *tokens = make_tokens(W);
    qid_model *m;
    qid_error err;
    if (!tokens || qid_model_open(ckpt, &m, &err)) {
        fprintf(stderr, "bench: %s\n", tokens ? err.msg : "out of memory");
        return 1;
    }
    qid_quantize_opts o;
    qid_quantize_opts_default(&o);
    if (qid_quant_parse("int4-g128-sym", &o.spec, &err)) return 1;
    o.method = QID_QUANTIZE_GPTQ;
    qid_quantizer *q = qid_quantizer_create(&o);
    qid_calib_hooks hk;
    qid_quantizer_calib_hooks(q, &hk);
    const qid_model_config *cfg = qid_model_cfg(m);
    qid_batch *b = NULL;
    qid_calib *c = NULL;
    size_t chunk = W;
    int rc = 0;
    if (path == 0)
        b = qid_batch_create(m, tokens, W, SEQ, &err);
    else {
        chunk = qid_calib_chunk_windows(cfg, SEQ, W, o.chunk_bytes);
        c = qid_calib_create(m, tokens, W, SEQ, chunk, path == 2 ? dir : NULL, &err);
    }
    if (!b && !c) rc = 1;
    const int L = (int)cfg->n_layers;
    long layers_kb = -1;
    for (int s = QID_STAGE_EMBED; s <= L && !rc; s++) {
        if (s == L) { /* the peak through the layers, then the head's alone */
            layers_kb = status_kb("VmHWM");
            reset_peak();
        }
        rc = qid_model_load(m, s, &err);
        if (!rc && s < L)
            rc = b ? qid_batch_step(m, b, s >= 0 ? qid_quantizer_act_hook : NULL, q, &err)
                   : qid_calib_step(m, c, s >= 0 ? &hk : NULL, &err);
    }
    if (rc) fprintf(stderr, "bench: %s\n", err.msg);
    const double loss = qid_quantizer_stats(q)->gptq_loss;
    qid_batch_free(b);
    qid_calib_free(c);
    qid_quantizer_free(q);
    qid_model_free(m);
    free(tokens);
    if (rc) return 1;
    printf("%zu %.17g %ld %ld\n", chunk, loss, layers_kb, status_kb("VmHWM"));
    return 0;
}

/* Runs child_main in a fresh process (this program, exec'd again) and
 * takes its peak RSS and CPU time from wait4: nothing of an earlier run
 * (heap, thread pools, page cache of the model file mapped in) counts. */
static int spawn_run(const char *ckpt, size_t W, int path, const char *dir, int threads, run *r)
{
    memset(r, 0, sizeof *r);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 1;
    self[n] = 0;
    char ws[32], ps[8], ts[16];
    snprintf(ws, sizeof ws, "%zu", W);
    snprintf(ps, sizeof ps, "%d", path);
    snprintf(ts, sizeof ts, "%d", threads);
    char *args[] = {self, "--child", (char *)ckpt, ws, ps, (char *)dir, ts, NULL};
    int fds[2];
    if (pipe(fds)) return 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    const double t0 = now();
    pid_t pid;
    int e = posix_spawn(&pid, self, &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (e) {
        close(fds[0]);
        fprintf(stderr, "bench: cannot start %s: %s\n", self, strerror(e));
        return 1;
    }
    char out[256];
    size_t got = 0;
    ssize_t k;
    while (got < sizeof out - 1 && (k = read(fds[0], out + got, sizeof out - 1 - got)) != 0)
        if (k > 0)
            got += (size_t)k;
        else if (errno != EINTR)
            break;
    out[got] = 0;
    close(fds[0]);
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR) return 1;
    r->seconds = now() - t0;
    r->cpu_s = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
               1e-6 * (double)ru.ru_stime.tv_usec;
    r->peak_kb = ru.ru_maxrss;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
        sscanf(out, "%zu %lg %ld %ld", &r->chunk, &r->gptq_loss, &r->layers_kb, &r->head_kb) != 4) {
        fprintf(stderr, "bench: the run of %zu windows (path %d) failed\n", W, path);
        return 1;
    }
    if (r->layers_kb > r->peak_kb) r->peak_kb = r->layers_kb;
    if (r->head_kb > r->peak_kb) r->peak_kb = r->head_kb;
    return 0;
}

static qid_model_config pythia(int64_t d, int64_t layers, int64_t heads)
{
    qid_model_config c = {.arch = QID_ARCH_GPT_NEOX,
                          .vocab_size = 50304,
                          .d_model = d,
                          .n_layers = layers,
                          .n_heads = heads,
                          .n_kv_heads = heads,
                          .head_dim = d / heads,
                          .d_ff = 4 * d,
                          .max_seq_len = 2048,
                          .rotary_dim = d / heads / 4,
                          .rotary_pct = 0.25,
                          .rope_theta = 10000,
                          .norm_eps = 1e-5,
                          .parallel_residual = 1,
                          .qkv_bias = 1,
                          .o_bias = 1,
                          .mlp_bias = 1};
    return c;
}

static double gib(double b) { return b / (double)(1u << 30); }

/* Least-squares line peak = a + b W through the n points (w, y); 0 when
 * fewer than two distinct window counts. */
static int fit_line(const size_t *w, const double *y, size_t n, double *a, double *b)
{
    double sw = 0, sy = 0, sww = 0, swy = 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (y[i] > 0) {
            sw += (double)w[i];
            sy += y[i];
            sww += (double)w[i] * (double)w[i];
            swy += (double)w[i] * y[i];
            m++;
        }
    const double den = (double)m * sww - sw * sw;
    if (m < 2 || den <= 0) return 0;
    *b = ((double)m * swy - sw * sy) / den;
    *a = (sy - *b * sw) / (double)m;
    return 1;
}

int main(int argc, char **argv)
{
    qid_blas_init(); /* OpenBLAS's own kernels where its dispatch falls back, as the qid command */
    if (argc == 7 && strcmp(argv[1], "--child") == 0) return child_main(argv);
    qid_h5_silence();
    setvbuf(stdout, NULL, _IOLBF, 0);
    const int threads = (int)env_size("QID_BENCH_THREADS", (size_t)omp_get_num_procs());
    const size_t skip_today = env_size("QID_BENCH_CALIB_SKIP_TODAY_ABOVE", (size_t)-1);
    const char *wlist = getenv("QID_BENCH_CALIB_WINDOWS") ? getenv("QID_BENCH_CALIB_WINDOWS") : "16,64,128";
    const char *plist = getenv("QID_BENCH_CALIB_PATHS") ? getenv("QID_BENCH_CALIB_PATHS") : "today,streamed,scratch";
    const char *sdir = getenv("QID_BENCH_SCRATCH") ? getenv("QID_BENCH_SCRATCH") : "/tmp";
    qid_model_config cfg = pythia(2048, (int64_t)env_size("QID_BENCH_CALIB_LAYERS", 2), 8);
    printf("qid bench: GPTQ calibration memory, int4-g128, Pythia-1B width (d 2048, d_ff 8192, %d layers, vocab "
           "50304), windows of %d tokens, %d threads; each run in a child process (peak RSS and CPU time from "
           "wait4)\n",
           (int)cfg.n_layers, SEQ, threads);

    size_t windows[16], nw = 0;
    for (const char *p = wlist; *p && nw < 16;) {
        char *end;
        windows[nw] = (size_t)strtoul(p, &end, 10);
        if (end == p) break;
        p = end;
        nw += windows[nw] > 0;
        while (*p == ',' || *p == ' ')
            p++;
    }
    int want[3] = {strstr(plist, "today") != NULL, strstr(plist, "streamed") != NULL, strstr(plist, "scratch") != NULL};

    char dir[] = "/tmp/qid-bench-calib-XXXXXX";
    char ckpt[256];
    const char *given = getenv("QID_BENCH_CALIB_CKPT");
    if (given && *given)
        snprintf(ckpt, sizeof ckpt, "%s", given);
    else {
        if (!mkdtemp(dir)) return 1;
        snprintf(ckpt, sizeof ckpt, "%s/model.h5", dir);
        if (write_model(ckpt, &cfg)) return 1;
    }

    static const char *names[3] = {"today", "streamed", "scratch"};
    printf("\n%8s  %-9s  %6s  %9s  %9s  %11s  %11s  %10s  %14s  %11s  %11s  %11s  %s\n", "windows", "path", "chunk",
           "seconds", "CPU s", "peak RSS", "predicted", "pred/meas", "vs today (CPU)", "at layers", "predicted",
           "at head", "GPTQ loss");
    double peak[3][16] = {{0}}, layers[3][16] = {{0}}, cpu_today[16] = {0};
    int rc = 0;
    for (size_t i = 0; i < nw && !rc; i++) {
        const size_t W = windows[i];
        for (int p = 0; p < 3 && !rc; p++) {
            if (!want[p] || (p == 0 && W > skip_today)) continue;
            const double need = (double)qid_model_batch_bytes(&cfg, W, SEQ) + 2.0 * (1u << 30),
                         avail = (double)meminfo_kb("MemAvailable") * 1024.0;
            if (p == 0 && avail > 0 && avail < need) {
                printf("%8zu  %-9s  skipped: needs about %.1f GiB, %.1f GiB available\n", W, names[p], gib(need),
                       gib(avail));
                continue;
            }
            run r;
            if ((rc = spawn_run(ckpt, W, p, sdir, threads, &r))) break;
            qid_quantize_opts o;
            qid_quantize_opts_default(&o);
            qid_quant_parse("int4-g128-sym", &o.spec, NULL);
            o.method = QID_QUANTIZE_GPTQ;
            o.scratch_dir = p == 2 ? sdir : NULL;
            char pred[32] = "-", ratio[32] = "-", vs[32] = "-", lpred[32] = "-";
            peak[p][i] = (double)r.peak_kb * 1024.0;
            if (p > 0) {
                qid_mem_estimate e;
                omp_set_num_threads(threads); /* the estimate counts attention scratch per thread */
                qid_quantize_mem_estimate(&cfg, &o, W, SEQ, 0, &e);
                snprintf(pred, sizeof pred, "%.2f GiB", gib((double)e.peak));
                snprintf(ratio, sizeof ratio, "%.3f", (double)e.peak / peak[p][i]);
                /* the estimate's moment at a layer (its other two: the embedding, the head) */
                snprintf(lpred, sizeof lpred, "%.2f GiB",
                         gib((double)(e.base + e.layer + e.eval + e.hessians + e.quant + e.residual + e.activations)));
                layers[p][i] = (double)r.layers_kb * 1024.0;
            }
            if (p == 0) cpu_today[i] = r.cpu_s;
            if (p > 0 && cpu_today[i] > 0) snprintf(vs, sizeof vs, "%+.1f%%", 100.0 * (r.cpu_s / cpu_today[i] - 1));
            char chunk[16] = "all";
            if (p > 0) snprintf(chunk, sizeof chunk, "%zu", r.chunk);
            printf("%8zu  %-9s  %6s  %9.1f  %9.1f  %7.2f GiB  %11s  %10s  %14s  %7.2f GiB  %11s  %7.2f GiB  %.9g\n", W,
                   names[p], chunk, r.seconds, r.cpu_s, gib(peak[p][i]), pred, ratio, vs,
                   gib((double)r.layers_kb * 1024.0), lpred, gib((double)r.head_kb * 1024.0), r.gptq_loss);
        }
    }
    if (!(given && *given)) {
        unlink(ckpt);
        rmdir(dir);
    }
    if (rc) return 1;

    /* the measured formula: peak = fixed + per window x W */
    printf("\nmeasured peak RSS as fixed + per window x windows (least squares over the window counts run):\n");
    for (int p = 0; p < 3; p++) {
        double a, b;
        if (!fit_line(windows, peak[p], nw, &a, &b)) continue;
        printf("  %-9s %.3f GiB + %.2f MiB x windows", names[p], gib(a), b / (1 << 20));
        if (fit_line(windows, layers[p], nw, &a, &b))
            printf("; through the layers %.3f GiB + %.2f MiB x windows", gib(a), b / (1 << 20));
        printf("\n");
    }
    printf("  (the residual stream: %.2f MiB a window of %d tokens at d 2048)\n", (double)SEQ * 2048 * 4 / (1 << 20),
           SEQ);

    printf("\npredicted peak per rank with 128 x 2048 calibration windows (int4-g128, streamed, 256 MiB chunks):\n");
    const struct {
        const char *name;
        qid_model_config c;
    } big[] = {{"Pythia-1B", pythia(2048, 16, 8)},
               {"Pythia-6.9B", pythia(4096, 32, 32)},
               {"Pythia-12B", pythia(5120, 36, 40)}};
    for (size_t i = 0; i < 3; i++) {
        qid_quantize_opts o;
        qid_quantize_opts_default(&o);
        qid_quant_parse("int4-g128-sym", &o.spec, NULL);
        o.method = QID_QUANTIZE_GPTQ;
        qid_mem_estimate e, es;
        qid_quantize_mem_estimate(&big[i].c, &o, 128, SEQ, 0, &e);
        o.scratch_dir = "/tmp";
        qid_quantize_mem_estimate(&big[i].c, &o, 128, SEQ, 0, &es);
        char line[512];
        qid_mem_estimate_format(&e, line, sizeof line);
        printf("  %-12s %s; with a scratch file %.2f GiB; today's path %.1f GiB of activations alone\n", big[i].name,
               line, gib((double)es.peak), gib((double)qid_model_batch_bytes(&big[i].c, 128, SEQ)));
    }
    return 0;
}
