/* bench_quant.c - `make bench`: quantizer throughput and GPTQ time per layer.
 *
 *   1. memcpy bandwidth of a 64 MiB float32 matrix, measured in the same run;
 *   2. RTN int4-g128 and int4-g32, MX (mxfp4, mxfp8-e4m3) and the GGUF
 *      blocks (q8_0, q4_0, q4_1, q5_0, q5_1, the k-quants q2_k..q6_k and
 *      iq4_nl; the mixtures run q4_k's kernel) quantize-dequantize
 *      throughput through qid_quant_matrix (one thread, the run-time chosen
 *      kernel and the scalar reference), in GB/s of float32 weights read
 *      (the output written is the same size, as for memcpy);
 *   3. GPTQ seconds (int4-g128-sym, block 128, damp 0.01, no act-order) for
 *      a 768x768 and a 3072x768 layer with H from 2048 correlated samples
 *      (X = Z A, a random mixing A), the Hessian's time apart; plus the MX
 *      micro-block variant (mxfp4, micro-block 32) on the larger layer;
 *   3b. AWQ seconds (int4-g128-sym, the reference's grids, clipping search
 *      on) for the same layers and samples: input statistics (|x| means,
 *      X^T X, the 512-row sample), scale search, clipping search and
 *      quantization, next to GPTQ's;
 *   4. the same GPTQ in PyTorch (tools/bench_torch_gptq.py, best of 2, the
 *      algorithm of tools/make_gptq_fixture.py) on the same weights and samples, same
 *      thread count, when `python3 -c 'import torch'` works (skipped with a
 *      note otherwise), with the share of quantized values that differ.
 *
 * Environment: QID_BENCH_THREADS (default: all cores), QID_BENCH_PYTHON
 * (python3). Not a test: prints numbers, asserts nothing about speed. */
#include <cJSON.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "awq.h"
#include "bench.h"
#include "gptq.h"
#include "model.h"
#include "quant.h"
#include "rng.h"

#define NSAMP 2048

#define SEED 20240607

static qid_rng rng;

static float rng_gauss(void) { return (float)qid_rng_normal(&rng); }

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "bench_quant: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static int write_raw(const char *dir, const char *name, const float *x, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    size_t w = fwrite(x, sizeof *x, n, f);
    return (fclose(f) != 0) | (w != n);
}

static int read_raw(const char *dir, const char *name, float *x, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    size_t r = fread(x, sizeof *x, n, f);
    fclose(f);
    return r != n;
}

/* Best seconds of `reps` runs of memcpy(dst, src, bytes). */
static double time_memcpy(float *dst, const float *src, size_t n, int reps)
{
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        memcpy(dst, src, n * sizeof *src);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

/* Best seconds of `reps` runs of qid_quant_matrix. */
static double time_quant(const qid_quant_spec *spec, const float *w, float *q, size_t rows, size_t cols, int reps)
{
    double best = INFINITY;
    qid_error err;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (qid_quant_matrix(spec, w, q, rows, cols, "bench", &err)) {
            fprintf(stderr, "bench_quant: %s\n", err.msg);
            exit(1);
        }
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

typedef struct gptq_timing {
    double hessian_s, seconds, loss;
} gptq_timing;

/* Builds H from X (NSAMP x cols) and quantizes a copy of w (rows x cols) into
 * q, best of reps runs, each with a fresh factorization. */
static gptq_timing time_gptq(const char *fmt, size_t micro, const float *X, const float *w, float *q, size_t rows,
                             size_t cols, int reps)
{
    gptq_timing t = {INFINITY, INFINITY, 0.0};
    qid_quant_spec spec;
    qid_error err;
    if (qid_quant_parse(fmt, &spec, &err)) {
        fprintf(stderr, "bench_quant: %s\n", err.msg);
        exit(1);
    }
    qid_gptq_opts o;
    qid_gptq_opts_default(&o);
    o.micro_block = micro;
    for (int r = 0; r < reps; r++) {
        qid_gptq_hessian *h = qid_gptq_hessian_create(cols);
        double t0 = now();
        if (qid_gptq_hessian_add(h, X, NSAMP, cols, 0, "bench", &err)) {
            fprintf(stderr, "bench_quant: %s\n", err.msg);
            exit(1);
        }
        double th = now() - t0;
        memcpy(q, w, rows * cols * sizeof *q);
        qid_gptq_stats st;
        if (qid_gptq_quantize(h, &spec, &o, q, rows, cols, "bench", &st, &err)) {
            fprintf(stderr, "bench_quant: %s\n", err.msg);
            exit(1);
        }
        t.hessian_s = th < t.hessian_s ? th : t.hessian_s;
        t.seconds = st.seconds < t.seconds ? st.seconds : t.seconds;
        t.loss = st.loss;
        qid_gptq_hessian_free(h);
    }
    return t;
}

typedef struct awq_timing {
    double input_s, search_s, quant_s, ratio;
} awq_timing;

/* AWQ of a copy of w (rows x cols) into q on X (NSAMP x cols), best of reps. */
static awq_timing time_awq(const char *fmt, const float *X, const float *w, float *q, size_t rows, size_t cols,
                           int reps)
{
    awq_timing t = {INFINITY, INFINITY, INFINITY, 0.0};
    qid_quant_spec spec;
    qid_error err;
    if (qid_quant_parse(fmt, &spec, &err)) {
        fprintf(stderr, "bench_quant: %s\n", err.msg);
        exit(1);
    }
    float *s = xmalloc(cols * sizeof *s);
    for (int r = 0; r < reps; r++) {
        qid_awq_input *in = qid_awq_input_create(cols, NULL);
        double t0 = now();
        qid_awq_input_reset(in, NSAMP);
        if (qid_awq_input_add(in, X, NSAMP, cols, "bench", &err)) {
            fprintf(stderr, "bench_quant: %s\n", err.msg);
            exit(1);
        }
        double t1 = now();
        const float *ws[1] = {w};
        const size_t rr[1] = {rows};
        qid_awq_stats st;
        if (qid_awq_search_scale(in, &spec, NULL, ws, rr, 1, s, &st, "bench", &err)) {
            fprintf(stderr, "bench_quant: %s\n", err.msg);
            exit(1);
        }
        double t2 = now();
        memcpy(q, w, rows * cols * sizeof *q);
        if (qid_awq_quantize(in, &spec, NULL, s, 1, q, rows, cols, NULL, NULL, "bench", &err)) {
            fprintf(stderr, "bench_quant: %s\n", err.msg);
            exit(1);
        }
        double t3 = now();
        t.input_s = fmin(t.input_s, t1 - t0);
        t.search_s = fmin(t.search_s, t2 - t1);
        t.quant_s = fmin(t.quant_s, t3 - t2);
        t.ratio = st.ratio;
        qid_awq_input_free(in);
    }
    free(s);
    return t;
}

static void set_threads(int n)
{
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

typedef struct torch_timing {
    double seconds, hessian_s, loss, maxdiff;
    size_t ndiff;
    char version[64];
} torch_timing;

static const size_t layers[2][2] = {{768, 768}, {3072, 768}};
static float *qs[2]; /* qid's results, compared with torch's */

/* Runs tools/bench_torch_gptq.py on the files in dir with `threads`
 * threads; fills t[0..1]. Returns 0, or 1 when it failed. */
static int run_torch(const char *python, const char *dir, int threads, torch_timing t[2])
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s tools/bench_torch_gptq.py --dir %s --threads %d --samples %d --layer %zux%zu --layer %zux%zu "
             "--reps 2",
             python, dir, threads, NSAMP, layers[0][0], layers[0][1], layers[1][0], layers[1][1]);
    FILE *p = popen(cmd, "r");
    if (!p) return 1;
    char line[1024];
    int l = 0;
    while (l < 2 && fgets(line, sizeof line, p)) {
        cJSON *j = cJSON_Parse(line);
        if (!j) continue;
        const size_t rows = layers[l][0], cols = layers[l][1];
        t[l].seconds = cJSON_GetObjectItem(j, "seconds")->valuedouble;
        t[l].hessian_s = cJSON_GetObjectItem(j, "hessian_s")->valuedouble;
        t[l].loss = cJSON_GetObjectItem(j, "loss")->valuedouble;
        snprintf(t[l].version, sizeof t[l].version, "torch %s", cJSON_GetObjectItem(j, "torch")->valuestring);
        cJSON_Delete(j);
        char name[64];
        snprintf(name, sizeof name, "q_%zux%zu.f32", rows, cols);
        float *qt = xmalloc(rows * cols * sizeof *qt);
        t[l].ndiff = 0;
        t[l].maxdiff = 0.0;
        if (read_raw(dir, name, qt, rows * cols)) {
            free(qt);
            break;
        }
        for (size_t i = 0; i < rows * cols; i++)
            if (qt[i] != qs[l][i]) {
                t[l].ndiff++;
                double d = fabs((double)qt[i] - (double)qs[l][i]);
                t[l].maxdiff = d > t[l].maxdiff ? d : t[l].maxdiff;
            }
        free(qt);
        l++;
    }
    int rc = pclose(p);
    return l < 2 || rc != 0;
}

int main(void)
{
    qid_blas_init(); /* OpenBLAS's own kernels where its dispatch falls back, as the qid command */
    const int threads = (int)env_size("QID_BENCH_THREADS", (size_t)omp_get_num_procs());
    const char *python = getenv("QID_BENCH_PYTHON") ? getenv("QID_BENCH_PYTHON") : "python3";
    set_threads(threads);
    qid_rng_seed(&rng, SEED, 0);
    printf("qid bench: quantizers (kernels %s) and GPTQ (%d threads, seed %d)\n", qid_quant_simd(), threads, SEED);

    /* 1-2. throughput against memcpy, one thread */
    const size_t R = 4096, C = 4096, n = R * C;
    float *w = xmalloc(n * sizeof *w), *q = xmalloc(n * sizeof *q);
    for (size_t i = 0; i < n; i++)
        w[i] = 0.02f * rng_gauss();
    memcpy(q, w, n * sizeof *q); /* touch every page */
    const double gb = (double)(n * sizeof *w) / 1e9;
    double tm = time_memcpy(q, w, n, 5);
    printf("  memcpy            %7.2f GB/s  (%zu x %zu float32, %.0f MiB, one thread)\n", gb / tm, R, C,
           (double)(n * sizeof *w) / 1048576.0);
    static const char *fmts[] = {"int4-g128-sym", "int4-g32-sym", "mxfp4", "mxfp8-e4m3", "q8_0",
                                 "q4_0",          "q4_1",         "q5_0",  "q5_1",       "q2_k",
                                 "q3_k",          "q4_k",         "q5_k",  "q6_k",       "iq4_nl"};
    for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
        qid_quant_spec spec;
        qid_error err;
        if (qid_quant_parse(fmts[f], &spec, &err)) return 1;
        double tf = time_quant(&spec, w, q, R, C, 3);
        qid_quant_force_scalar(1);
        double ts = time_quant(&spec, w, q, R, C, 1);
        qid_quant_force_scalar(0);
        printf("  rtn %-13s %7.3f GB/s = %5.1f%% of memcpy  (scalar reference %.3f GB/s)\n", fmts[f], gb / tf,
               100.0 * tm / tf, gb / ts);
    }
    free(w);
    free(q);

    /* 3. GPTQ per layer */
    const size_t cols = 768;
    float *A = xmalloc(cols * cols * sizeof *A), *Z = xmalloc(NSAMP * cols * sizeof *Z),
          *X = xmalloc(NSAMP * cols * sizeof *X);
    for (size_t i = 0; i < cols; i++)
        for (size_t j = 0; j < cols; j++)
            A[i * cols + j] = rng_gauss() / sqrtf((float)cols) + (i == j ? 0.5f : 0.0f);
    for (size_t i = 0; i < NSAMP * cols; i++)
        Z[i] = rng_gauss();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, NSAMP, (int)cols, (int)cols, 1.0f, Z, (int)cols, A,
                (int)cols, 0.0f, X, (int)cols);
    free(Z);
    free(A);
    char dir[] = "/tmp/qid-bench-gptq-XXXXXX";
    int have_dir = mkdtemp(dir) != NULL;
    if (have_dir && write_raw(dir, "x.f32", X, NSAMP * cols)) have_dir = 0;
    float *ws[2];
    gptq_timing tq[2], tq1[2];
    printf("\n  GPTQ int4-g128-sym, block 128, damp 0.01; H from %d correlated samples; best of 3\n", NSAMP);
    for (int l = 0; l < 2; l++) {
        const size_t rows = layers[l][0];
        ws[l] = xmalloc(rows * cols * sizeof *ws[l]);
        qs[l] = xmalloc(rows * cols * sizeof *qs[l]);
        for (size_t i = 0; i < rows * cols; i++)
            ws[l][i] = 0.02f * rng_gauss();
        char name[64];
        snprintf(name, sizeof name, "w_%zux%zu.f32", rows, cols);
        if (have_dir && write_raw(dir, name, ws[l], rows * cols)) have_dir = 0;
        set_threads(1);
        tq1[l] = time_gptq("int4-g128-sym", 1, X, ws[l], qs[l], rows, cols, 3);
        set_threads(threads);
        tq[l] = time_gptq("int4-g128-sym", 1, X, ws[l], qs[l], rows, cols, 3);
        printf("  qid     %4zu x %zu  %7.3f s with %d threads, %7.3f s with 1  (Hessian %.3f s, loss %.5g)\n", rows,
               cols, tq[l].seconds, threads, tq1[l].seconds, tq[l].hessian_s, tq[l].loss);
    }
    {
        float *qm = xmalloc(3072 * cols * sizeof *qm);
        gptq_timing tm4 = time_gptq("mxfp4", 32, X, ws[1], qm, 3072, cols, 3);
        printf("  qid     3072 x %zu  %7.3f s with %d threads: mxfp4, micro-block 32 (loss %.5g)\n", cols, tm4.seconds,
               threads, tm4.loss);
        free(qm);
    }

    /* 3b. AWQ on the same layers */
    printf("\n  AWQ int4-g128-sym, 20 scale ratios, clipping search (10 shrinks, 512 of %d samples); best of 3\n",
           NSAMP);
    for (int l = 0; l < 2; l++) {
        const size_t rows = layers[l][0];
        float *qa = xmalloc(rows * cols * sizeof *qa);
        awq_timing ta = time_awq("int4-g128-sym", X, ws[l], qa, rows, cols, 3);
        const double total = ta.input_s + ta.search_s + ta.quant_s;
        printf("  qid awq %4zu x %zu  %7.3f s with %d threads (input statistics %.3f s, scale search %.3f s, clip and "
               "quantize %.3f s; ratio %.2f) = %.2fx GPTQ's %.3f s + Hessian %.3f s\n",
               rows, cols, total, threads, ta.input_s, ta.search_s, ta.quant_s, ta.ratio,
               total / (tq[l].seconds + tq[l].hessian_s), tq[l].seconds, tq[l].hessian_s);
        free(qa);
    }

    /* 4. PyTorch, at the same thread count and at one thread */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", python);
    if (!have_dir || system(cmd) != 0) {
        printf("  pytorch           skipped: '%s -c \"import torch\"' failed%s\n", python,
               have_dir ? "" : " (or no temporary directory)");
    } else {
        torch_timing tt[2], tt1[2];
        int rc = run_torch(python, dir, threads, tt);
        if (!rc) {
            for (int l = 0; l < 2; l++)
                tt1[l] = tt[l];
            if (threads > 1) rc = run_torch(python, dir, 1, tt1);
        }
        if (rc) {
            printf("  pytorch           failed (run tools/bench_torch_gptq.py by hand to see why)\n");
        } else {
            for (int l = 0; l < 2; l++) {
                const size_t rows = layers[l][0];
                printf("  pytorch %4zu x %zu  %7.3f s with %d threads, %7.3f s with 1  (Hessian %.3f s, loss %.5g)\n",
                       rows, cols, tt[l].seconds, threads, tt1[l].seconds, tt[l].hessian_s, tt[l].loss);
                printf("          qid is %.1fx faster at %d threads, %.1fx at 1; %zu of %zu quantized values differ "
                       "(max %.2g)\n",
                       tt[l].seconds / tq[l].seconds, threads, tt1[l].seconds / tq1[l].seconds, tt[l].ndiff,
                       rows * cols, tt[l].maxdiff);
            }
            printf("          [%s]\n", tt[0].version);
        }
    }
    if (have_dir) {
        static const char *files[] = {"x.f32", "w_768x768.f32", "w_3072x768.f32", "q_768x768.f32", "q_3072x768.f32"};
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, files[i]);
            unlink(path);
        }
        rmdir(dir);
    }
    for (int l = 0; l < 2; l++) {
        free(ws[l]);
        free(qs[l]);
    }
    free(X);
    return 0;
}
