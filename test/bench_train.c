/* bench_train.c - `make bench`: training throughput of `qid train`'s step
 * (forward, backward, clipping, AdamW; train_grad.h, train.h) on the demo
 * suite's model shapes (gpt-neox, vocab 256, 128-token windows, 16 windows
 * a step, d_ff 4d, rotary 0.25, parallel residual):
 *   d 32 / 2 layers / 4 heads, d 64 / 4 layers / 4 heads, d 128 / 4 layers / 4 heads,
 * side by side with
 *   - this machine's cblas_sgemm peak with the same threads (best of a
 *     square 1024^3 product before and after the runs);
 *   - PyTorch (transformers GPTNeoXForCausalLM, float32, AdamW, clipping)
 *     on the same shapes and thread count via tools/bench_torch_train.py,
 *     when `python3 -c 'import torch, transformers'` works (skipped otherwise).
 * Achieved GFLOP/s counts the products and attention of forward and
 * backward (qid_tmodel_step_flops); a step's time (qid_tmodel_grad and the
 * optimizer) is split into forward (a forward pass alone, timed beside
 * it), backward (the rest), and the optimizer (gradient norm, clipping,
 * AdamW).
 *
 * Both sides run QID_BENCH_REPEAT times (default 2) and report the best run,
 * which damps the noise of a shared machine.
 *
 * Environment: QID_BENCH_THREADS (default 2: the demo's machine),
 * QID_BENCH_STEPS (steps per run, default 20), QID_BENCH_REPEAT,
 * QID_BENCH_PYTHON (python3). Not a test: prints numbers, asserts nothing
 * about speed. */
#include <cJSON.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "kernels.h"
#include "model.h"
#include "train.h"

/* Best GFLOP/s of a square n^3 cblas_sgemm over reps runs (OpenBLAS threads as set). */
static double sgemm_gflops(size_t n, int reps)
{
    float *A = malloc(n * n * sizeof *A), *B = malloc(n * n * sizeof *B), *C = malloc(n * n * sizeof *C);
    for (size_t i = 0; i < n * n; i++) {
        A[i] = (float)((i * 37) % 101) * 0.01f - 0.5f;
        B[i] = (float)((i * 53) % 103) * 0.01f - 0.5f;
    }
    double best = 0.0;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)n, 1.0f, A, (int)n, B, (int)n, 0.0f,
                    C, (int)n);
        double g = 2.0 * (double)n * (double)n * (double)n / (now() - t0) / 1e9;
        if (r > 0 && g > best) best = g;
    }
    free(A);
    free(B);
    free(C);
    return best;
}

typedef struct {
    double step, fwd, bwd, opt, loss;
} timing;

/* Best of repeat runs of steps training steps of one shape. */
static int run_qid(int64_t d, int64_t L, int64_t H, size_t V, size_t T, size_t B, size_t steps, int repeat,
                   timing *best)
{
    qid_model_config cfg;
    qid_error err;
    if (qid_tmodel_config(&cfg, (int64_t)V, d, L, H, 4 * d, (int64_t)T, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    qid_tmodel *m = qid_tmodel_create(&cfg, &err);
    qid_tacts *a = m ? qid_tacts_create(&cfg, B, T, &err) : NULL;
    if (!a) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    qid_tmodel_init(m, 1, qid_tmodel_default_init_std(d));
    qid_adamw *o = qid_adamw_create(m, 0.9, 0.95, 1e-8, 0.01);
    uint32_t *tok = malloc(B * T * sizeof *tok);
    uint64_t s = 42;
    for (size_t i = 0; i < B * T; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (uint32_t)((s >> 33) % V);
    }
    best->step = INFINITY;
    for (int r = -1; r < repeat; r++) { /* run -1 warms up */
        timing t = {0};
        const size_t n = r < 0 ? 2 : steps;
        for (size_t k = 0; k < n; k++) {
            double t0 = now();
            if (qid_tmodel_forward(m, a, tok, B, &t.loss, NULL, &err)) {
                fprintf(stderr, "bench: %s\n", err.msg);
                return 1;
            }
            double t1 = now();
            if (qid_tmodel_grad(m, a, tok, B, &t.loss, NULL, &err)) {
                fprintf(stderr, "bench: %s\n", err.msg);
                return 1;
            }
            double t2 = now();
            qid_adamw_step(o, m, 1e-3, qid_train_clip_coef(qid_train_grad_norm(m), 1.0));
            double t3 = now();
            t.fwd += t1 - t0;               /* a forward pass alone */
            t.bwd += (t2 - t1) - (t1 - t0); /* the rest of forward + backward */
            t.opt += t3 - t2;
            t.step += t3 - t1; /* a training step: forward + backward, optimizer */
        }
        if (r >= 0 && t.step < best->step) *best = t;
    }
    free(tok);
    qid_adamw_free(o);
    qid_tacts_free(a);
    qid_tmodel_free(m);
    return 0;
}

static int run_torch(const char *python, int64_t d, int64_t L, int64_t H, size_t V, size_t T, size_t B, size_t steps,
                     int threads, int repeat, double *tps, char *versions, size_t vlen)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=%d %s tools/bench_torch_train.py --d-model %lld --layers %lld --heads %lld --vocab %zu "
             "--seq-len %zu --batch %zu --steps %zu --threads %d --repeat %d",
             threads, python, (long long)d, (long long)L, (long long)H, V, T, B, steps, threads, repeat);
    FILE *p = popen(cmd, "r");
    if (!p) return 1;
    char line[2048] = "";
    char *got = fgets(line, sizeof line, p);
    int rc = pclose(p);
    if (!got || rc != 0) return 1;
    cJSON *j = cJSON_Parse(line);
    if (!j) return 1;
    *tps = cJSON_GetObjectItem(j, "tokens_per_s")->valuedouble;
    snprintf(versions, vlen, "torch %s, transformers %s", cJSON_GetObjectItem(j, "torch")->valuestring,
             cJSON_GetObjectItem(j, "transformers")->valuestring);
    cJSON_Delete(j);
    return 0;
}

int main(void)
{
    qid_blas_init(); /* OpenBLAS's own kernels where its dispatch falls back, as the qid command */
    const int threads = (int)env_size("QID_BENCH_THREADS", 2), repeat = (int)env_size("QID_BENCH_REPEAT", 2);
    const size_t steps = env_size("QID_BENCH_STEPS", 20), V = 256, T = 128, B = 16;
    const char *python = getenv("QID_BENCH_PYTHON") ? getenv("QID_BENCH_PYTHON") : "python3";
    omp_set_num_threads(threads);
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(threads);
#endif
    printf("qid bench: training steps (forward, backward, clipping, AdamW) of the demo suite's shapes\n");
    printf("  vocab %zu, %zu windows x %zu tokens a step, %d threads, kernels %s, best of %d runs of %zu steps\n", V, B,
           T, threads, qid_k_impl_name(), repeat, steps);
    double peak = sgemm_gflops(1024, 3);
    char probe[512];
    snprintf(probe, sizeof probe, "%s -c 'import torch, transformers' >/dev/null 2>&1", python);
    const int have_torch = system(probe) == 0;
    static const int64_t shapes[3][3] = {{32, 2, 4}, {64, 4, 4}, {128, 4, 4}};
    timing q[3];
    double ttps[3] = {0, 0, 0};
    char versions[256] = "";
    int trc[3] = {1, 1, 1};
    for (int i = 0; i < 3; i++) {
        const int64_t d = shapes[i][0], L = shapes[i][1], H = shapes[i][2];
        if (run_qid(d, L, H, V, T, B, steps, repeat, &q[i])) return 1;
        if (have_torch)
            trc[i] = run_torch(python, d, L, H, V, T, B, steps, threads, repeat, &ttps[i], versions, sizeof versions);
    }
    double g = sgemm_gflops(1024, 3);
    if (g > peak) peak = g;
    printf("  cblas_sgemm peak (1024^3, %d threads, best before and after): %.1f GFLOP/s\n\n", threads, peak);
    printf("  %-22s %10s %8s %8s   %-28s %10s %7s\n", "model", "N", "tokens/s", "GFLOP/s", "time a step (fwd/bwd/opt)",
           "pytorch", "qid/pt");
    for (int i = 0; i < 3; i++) {
        const int64_t d = shapes[i][0], L = shapes[i][1], H = shapes[i][2];
        qid_model_config cfg;
        qid_tmodel_config(&cfg, (int64_t)V, d, L, H, 4 * d, (int64_t)T, NULL);
        const double tps = (double)(steps * B * T) / q[i].step;
        const double gf = qid_tmodel_step_flops(&cfg, B, T) * (double)steps / q[i].step / 1e9;
        char name[64], tp[32] = "skipped", ratio[16] = "-";
        snprintf(name, sizeof name, "d%lld L%lld H%lld", (long long)d, (long long)L, (long long)H);
        if (have_torch && trc[i] == 0) {
            snprintf(tp, sizeof tp, "%.0f", ttps[i]);
            snprintf(ratio, sizeof ratio, "%.2fx", tps / ttps[i]);
        } else if (have_torch) {
            snprintf(tp, sizeof tp, "failed");
        }
        printf("  %-22s %10lld %8.0f %8.1f   %5.1f ms (%4.1f/%4.1f/%4.1f)     %10s %7s\n", name,
               (long long)qid_params_nonembedding(&cfg), tps, gf, 1e3 * q[i].step / (double)steps,
               1e3 * q[i].fwd / (double)steps, 1e3 * q[i].bwd / (double)steps, 1e3 * q[i].opt / (double)steps, tp,
               ratio);
        printf("  %-22s %10s %8s %7.0f%% of sgemm peak; 1M tokens in %.0f s\n", "", "", "", 100.0 * gf / peak,
               1e6 / tps);
    }
    if (!have_torch)
        printf("  pytorch: skipped: '%s -c \"import torch, transformers\"' failed\n", python);
    else
        printf("  pytorch: %s, same shapes and threads (tools/bench_torch_train.py)\n", versions);
    return 0;
}
