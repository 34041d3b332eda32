/* test_gptq.c - GPTQ (gptq.c): the Hessian against the reference add_batch,
 * parity with a PyTorch restatement of the reference fasterquant on a
 * committed fixture (test/fixtures/gptq, tools/make_gptq_fixture.py), GPTQ
 * beating RTN on the layer output with correlated inputs (INT 2/3/4 bit per
 * group and per channel, MX with micro-blocks), the damping retry on a
 * rank-deficient Hessian, dead columns, the cached factorization, thread-count
 * independence, and bad input with its messages. */
#include "gptq.h"
#include "quant.h"
#include "tap.h"

#include <cJSON.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "test/fixtures/gptq"

static qid_quant_spec spec_of(const char *name)
{
    qid_quant_spec s;
    qid_error err;
    if (qid_quant_parse(name, &s, &err)) bail("cannot parse %s: %s", name, err.msg);
    return s;
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) bail("out of memory (%zu bytes)", bytes);
    return p;
}

/* ---- stderr capture (for the damping-retry warning) ------------------------ */

/* ---- correlated inputs ------------------------------------------------------ */

/* X (n x cols) = Z A with Z standard normal and A (cols x cols) a random
 * mixing (I/2 + N(0, 1/cols)) with column scales spread over e^-1..e^1. */
static float *make_mixing(size_t cols)
{
    float *A = xmalloc(cols * cols * sizeof *A);
    for (size_t i = 0; i < cols; i++)
        for (size_t j = 0; j < cols; j++)
            A[i * cols + j] = tap_gauss() / sqrtf((float)cols) + (i == j ? 0.5f : 0.0f);
    for (size_t j = 0; j < cols; j++) {
        float s = expf((float)(2.0 * tap_uniform() - 1.0));
        for (size_t i = 0; i < cols; i++)
            A[i * cols + j] *= s;
    }
    return A;
}

static float *make_inputs(const float *A, size_t n, size_t cols)
{
    float *Z = xmalloc(n * cols * sizeof *Z), *X = xmalloc(n * cols * sizeof *X);
    for (size_t i = 0; i < n * cols; i++)
        Z[i] = tap_gauss();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)cols, (int)cols, 1.0f, Z, (int)cols, A,
                (int)cols, 0.0f, X, (int)cols);
    free(Z);
    return X;
}

/* |W X^T - Q X^T|_F over the n rows of X (n x cols), in double. */
static double output_error(const float *W, const float *Q, size_t rows, size_t cols, const float *X, size_t n)
{
    double *D = xmalloc(rows * cols * sizeof *D), *Xd = xmalloc(n * cols * sizeof *Xd),
           *Y = xmalloc(n * rows * sizeof *Y);
    for (size_t i = 0; i < rows * cols; i++)
        D[i] = (double)W[i] - (double)Q[i];
    for (size_t i = 0; i < n * cols; i++)
        Xd[i] = X[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)rows, (int)cols, 1.0, Xd, (int)cols, D, (int)cols,
                0.0, Y, (int)rows);
    double s = 0.0;
    for (size_t i = 0; i < n * rows; i++)
        s += Y[i] * Y[i];
    free(D);
    free(Xd);
    free(Y);
    return sqrt(s);
}

/* ---- the fixture ------------------------------------------------------------- */

static void *read_fixture(const char *name, size_t want)
{
    char path[512];
    snprintf(path, sizeof path, FIX "/%s", name);
    size_t len;
    char *p = tap_read_file(path, &len);
    if (len != want) bail("%s: %zu bytes, expected %zu", path, len, want);
    return p;
}

static double json_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) bail("fixture.json: '%s' is not a number", key);
    return v->valuedouble;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) bail("fixture.json: '%s' is not a string", key);
    return v->valuestring;
}

#define FIX_VARIANTS 12

static void test_fixture(void)
{
    char *text = tap_read_file(FIX "/fixture.json", NULL);
    cJSON *j = cJSON_Parse(text);
    if (!j) bail("cannot parse " FIX "/fixture.json");
    const size_t rows = (size_t)json_num(j, "rows"), cols = (size_t)json_num(j, "cols");
    const size_t nsamp = (size_t)json_num(j, "nsamples");
    const float xs = (float)json_num(j, "x_scale");
    int8_t *codes = read_fixture(json_str(j, "x"), nsamp * cols);
    float *W0 = read_fixture(json_str(j, "w"), rows * cols * sizeof(float));
    float *X = xmalloc(nsamp * cols * sizeof *X);
    for (size_t i = 0; i < nsamp * cols; i++)
        X[i] = (float)codes[i] * xs;

    /* H: the batches of the reference's add_batch, one sample per row. The
     * fixture's inputs make every partial sum exact, so H must be equal bit
     * for bit (entries), and its sums to 1e-12 relative (summation order). */
    qid_gptq_hessian *h = qid_gptq_hessian_create(cols);
    qid_error err;
    const cJSON *batches = cJSON_GetObjectItemCaseSensitive(j, "batches");
    size_t r0 = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, batches)
    {
        size_t m = (size_t)b->valuedouble;
        if (qid_gptq_hessian_add(h, X + r0 * cols, m, cols, 0, "fixture", &err)) bail("add: %s", err.msg);
        r0 += m;
    }
    int exact = 1;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "h_entries"))
    {
        size_t i = (size_t)cJSON_GetArrayItem(e, 0)->valuedouble, k = (size_t)cJSON_GetArrayItem(e, 1)->valuedouble;
        double want = cJSON_GetArrayItem(e, 2)->valuedouble, got = qid_gptq_hessian_get(h, i, k);
        if (want != got) {
            diag("H[%zu][%zu] = %.17g, torch %.17g", i, k, got, want);
            exact = 0;
        }
    }
    ok(exact && qid_gptq_hessian_nsamples(h) == nsamp, "H entries equal torch's add_batch bit for bit (tol 0)");
    double tr = 0.0, sum = 0.0;
    for (size_t i = 0; i < cols; i++) {
        tr += qid_gptq_hessian_get(h, i, i);
        for (size_t k = 0; k < cols; k++)
            sum += qid_gptq_hessian_get(h, i, k);
    }
    double wtr = json_num(j, "h_trace"), wsum = json_num(j, "h_sum");
    ok(fabs(tr - wtr) <= 1e-12 * fabs(wtr) && fabs(sum - wsum) <= 1e-12 * fabs(wsum),
       "H trace %.10g and sum %.10g match torch (tol 1e-12 relative)", tr, sum);

    /* Each variant: the quantized values equal torch's bit for bit except
     * where float rounding differs (the float64 factorization by MKL vs
     * OpenBLAS, rounded to float32; the double-accumulated block product)
     * and flips a decision: at most 0.2% of the elements may differ. The
     * loss (torch sums float32) agrees to 1e-5 relative. */
    float *W = xmalloc(rows * cols * sizeof *W);
    size_t nvar = 0, total_diff = 0;
    double worst_frac = 0.0;
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(j, "variants"))
    {
        const char *name = json_str(v, "name");
        qid_quant_spec spec = spec_of(json_str(v, "format"));
        qid_gptq_opts o;
        qid_gptq_opts_default(&o);
        o.percdamp = json_num(v, "percdamp");
        o.block = (size_t)json_num(v, "block");
        o.micro_block = (size_t)json_num(v, "micro_block");
        o.act_order = (int)json_num(v, "act_order");
        o.static_groups = (int)json_num(v, "static_groups");
        o.damp_retries = 0;
        float *Qt = read_fixture(json_str(v, "file"), rows * cols * sizeof(float));
        memcpy(W, W0, rows * cols * sizeof *W);
        qid_gptq_stats st;
        if (qid_gptq_quantize(h, &spec, &o, W, rows, cols, name, &st, &err)) {
            ok(0, "%s: %s", name, err.msg);
            ok(0, "%s: loss", name);
        } else {
            size_t ndiff = 0;
            double maxd = 0.0;
            for (size_t i = 0; i < rows * cols; i++)
                if (W[i] != Qt[i]) {
                    ndiff++;
                    double d = fabs((double)W[i] - (double)Qt[i]);
                    maxd = d > maxd ? d : maxd;
                }
            double frac = (double)ndiff / (double)(rows * cols);
            double wl = json_num(v, "loss");
            total_diff += ndiff;
            worst_frac = frac > worst_frac ? frac : worst_frac;
            ok(frac <= 0.002, "%s: %zu of %zu values differ from torch (%.4f%%, max |diff| %.3g; tol 0.2%%)", name,
               ndiff, rows * cols, 100.0 * frac, maxd);
            is_double(wl, st.loss, 1e-5 * wl, "%s: loss %.8g vs torch %.8g (tol 1e-5 relative)", name, st.loss, wl);
            if (st.dead != 3) diag("%s: %zu dead columns, expected 3", name, st.dead);
        }
        free(Qt);
        nvar++;
    }
    is_int(FIX_VARIANTS, (long long)nvar, "fixture has %d variants", FIX_VARIANTS);
    diag("parity over %zu variants: %zu of %zu values differ in all (worst variant %.4f%%)", nvar, total_diff,
         nvar * rows * cols, 100.0 * worst_frac);
    qid_gptq_hessian_free(h);
    cJSON_Delete(j);
    free(text);
    free(codes);
    free(W0);
    free(W);
    free(X);
}

/* ---- GPTQ beats RTN on the layer output -------------------------------------- */

static void test_beats_rtn(void)
{
    const size_t rows = 128, cols = 512, ncal = 2048, nev = 1024;
    float *A = make_mixing(cols);
    float *Xc = make_inputs(A, ncal, cols), *Xe = make_inputs(A, nev, cols);
    float *W = xmalloc(rows * cols * sizeof *W), *Q = xmalloc(rows * cols * sizeof *Q),
          *R = xmalloc(rows * cols * sizeof *R);
    for (size_t i = 0; i < rows * cols; i++)
        W[i] = 0.02f * tap_gauss();
    qid_gptq_hessian *h = qid_gptq_hessian_create(cols);
    qid_error err;
    /* two batches, as a forward pass would add them */
    if (qid_gptq_hessian_add(h, Xc, ncal / 2, cols, 0, "mlp", &err) ||
        qid_gptq_hessian_add(h, Xc + ncal / 2 * cols, ncal / 2, cols, 0, "mlp", &err))
        bail("add: %s", err.msg);
    /* INT at the studies' damping 0.1 (Ouyang et al.'s released configs), MX
     * and NF4 at the default 0.01. */
    static const struct {
        const char *fmt;
        size_t micro;
        double percdamp;
    } cases[] = {
        {"int2-g128-sym", 1, 0.1},    {"int3-g128-sym", 1, 0.1},    {"int4-g128-sym", 1, 0.1},
        {"int2-channel-sym", 1, 0.1}, {"int3-channel-sym", 1, 0.1}, {"int4-channel-sym", 1, 0.1},
        {"mxfp4", 32, 0.01},          {"mxfp4", 64, 0.01},          {"mxfp4", 1, 0.01},
        {"mxfp8-e4m3", 32, 0.01},     {"mxint8", 32, 0.01},         {"nf4", 64, 0.01},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        qid_quant_spec spec = spec_of(cases[c].fmt);
        if (qid_quant_matrix(&spec, W, R, rows, cols, "mlp", &err)) bail("rtn: %s", err.msg);
        memcpy(Q, W, rows * cols * sizeof *Q);
        qid_gptq_opts o;
        qid_gptq_opts_default(&o);
        o.micro_block = cases[c].micro;
        o.percdamp = cases[c].percdamp;
        qid_gptq_stats st;
        if (qid_gptq_quantize(h, &spec, &o, Q, rows, cols, "mlp", &st, &err)) {
            ok(0, "%s: %s", cases[c].fmt, err.msg);
            continue;
        }
        double eg = output_error(W, Q, rows, cols, Xe, nev), er = output_error(W, R, rows, cols, Xe, nev);
        double egc = output_error(W, Q, rows, cols, Xc, ncal), erc = output_error(W, R, rows, cols, Xc, ncal);
        ok(eg < er,
           "%s micro-block %zu damp %g: held-out |WX - QX| GPTQ %.4g < RTN %.4g (ratio %.3f; calibration %.3f)",
           cases[c].fmt, st.micro_block, cases[c].percdamp, eg, er, eg / er, egc / erc);
    }
    /* Not a test: the reference algorithm at 2 bits with groups and damp 0.01
     * can lose to RTN on such inputs (the feedback pushes later weights out
     * of the group's range); reported for the record. */
    {
        qid_quant_spec spec = spec_of("int2-g128-sym");
        if (qid_quant_matrix(&spec, W, R, rows, cols, "mlp", &err)) bail("rtn: %s", err.msg);
        memcpy(Q, W, rows * cols * sizeof *Q);
        if (qid_gptq_quantize(h, &spec, NULL, Q, rows, cols, "mlp", NULL, &err)) bail("gptq: %s", err.msg);
        diag("int2-g128-sym at damp 0.01: GPTQ / RTN held-out output error %.3f",
             output_error(W, Q, rows, cols, Xe, nev) / output_error(W, R, rows, cols, Xe, nev));
    }
    qid_gptq_hessian_free(h);
    free(A);
    free(Xc);
    free(Xe);
    free(W);
    free(Q);
    free(R);
}

/* ---- damping retry, dead columns, caching, threads ---------------------------- */

static void test_rank_deficient(void)
{
    /* 32 samples for 256 columns: H has rank 32. At damp 1e-18, far below
     * the rounding noise of H's null space, the Cholesky of H fails; retries
     * x10 reach a damping that works. */
    const size_t rows = 32, cols = 256, n = 32;
    float *A = make_mixing(cols), *X = make_inputs(A, n, cols);
    float *W = xmalloc(rows * cols * sizeof *W), *W0 = xmalloc(rows * cols * sizeof *W0);
    for (size_t i = 0; i < rows * cols; i++)
        W0[i] = W[i] = 0.02f * tap_gauss();
    qid_gptq_hessian *h = qid_gptq_hessian_create(cols);
    qid_error err;
    if (qid_gptq_hessian_add(h, X, n, cols, 0, "rankdef", &err)) bail("add: %s", err.msg);
    qid_quant_spec spec = spec_of("int4-g128-sym");
    qid_gptq_opts o;
    qid_gptq_opts_default(&o);
    o.percdamp = 0.0;
    o.damp_retries = 0;
    int rc = qid_gptq_quantize(h, &spec, &o, W, rows, cols, "layers/3/mlp.down.weight", NULL, &err);
    ok(rc == QID_E_NUMERIC && memcmp(W, W0, rows * cols * sizeof *W) == 0,
       "singular H without retries: numeric error, weights untouched");
    like(err.msg, "gptq: Cholesky of H failed for 'layers/3/mlp.down.weight' at damp 0", "message: %s", err.msg);

    o.percdamp = 1e-18;
    o.damp_retries = 12;
    qid_gptq_stats st;
    tap_capture_begin();
    rc = qid_gptq_quantize(h, &spec, &o, W, rows, cols, "layers/3/mlp.down.weight", &st, &err);
    char *log = tap_capture_end();
    ok(rc == QID_OK, "rank-deficient H (32 samples, 256 columns) at damp 1e-18 completes%s%s", rc ? ": " : "",
       rc ? err.msg : "");
    ok(st.retries >= 1 && fabs(st.percdamp - 1e-18 * pow(10.0, st.retries)) <= 1e-6 * st.percdamp,
       "it needed %d retries and ended at damp %g = 1e-18 x 10^%d", st.retries, st.percdamp, st.retries);
    like(log, "warning: gptq: Cholesky of H failed for 'layers/3/mlp.down.weight' at damp 1e-18, retrying with 1e-17",
         "the retry is logged");
    diag("log: %.*s", (int)strcspn(log, "\n"), log);
    ok(qid_quant_find_nonfinite(W, rows * cols) == rows * cols, "the result is finite");
    free(log);
    qid_gptq_hessian_free(h);
    free(A);
    free(X);
    free(W);
    free(W0);
}

static void test_dead_cache_threads(void)
{
    const size_t rows = 48, cols = 256, n = 600;
    float *A = make_mixing(cols), *X = make_inputs(A, n, cols);
    const size_t dead[] = {0, 7, 130, 255};
    for (size_t r = 0; r < n; r++)
        for (size_t d = 0; d < 4; d++)
            X[r * cols + dead[d]] = 0.0f;
    float *W0 = xmalloc(rows * cols * sizeof *W0), *W1 = xmalloc(rows * cols * sizeof *W1),
          *W2 = xmalloc(rows * cols * sizeof *W2);
    for (size_t i = 0; i < rows * cols; i++)
        W0[i] = 0.02f * tap_gauss();
    qid_error err;
    qid_quant_spec spec = spec_of("int3-g64-sym");
    qid_gptq_opts o;
    qid_gptq_opts_default(&o);
    o.act_order = 1;
    o.block = 32;

    /* Strided activations (ldx > cols), in three batches. */
    const size_t ldx = cols + 3;
    float *Xs = xmalloc(n * ldx * sizeof *Xs);
    for (size_t r = 0; r < n; r++) {
        memcpy(Xs + r * ldx, X + r * cols, cols * sizeof *Xs);
        Xs[r * ldx + cols] = NAN; /* padding is never read */
    }
    qid_gptq_hessian *h = qid_gptq_hessian_create(cols), *h2 = qid_gptq_hessian_create(cols);
    if (qid_gptq_hessian_add(h, Xs, 100, ldx, 0, "d", &err) ||
        qid_gptq_hessian_add(h, Xs + 100 * ldx, 200, ldx, 0, "d", &err) ||
        qid_gptq_hessian_add(h, Xs + 300 * ldx, 300, ldx, 0, "d", &err))
        bail("add: %s", err.msg);
    if (qid_gptq_hessian_add(h2, X, n, cols, 0, "d", &err)) bail("add: %s", err.msg);
    double maxrel = 0.0;
    for (size_t i = 0; i < cols; i++)
        for (size_t k = 0; k <= i; k++) {
            double a = qid_gptq_hessian_get(h, i, k), b = qid_gptq_hessian_get(h2, i, k);
            double scale = sqrt(qid_gptq_hessian_get(h2, i, i) * qid_gptq_hessian_get(h2, k, k)) + 1e-300;
            double rel = fabs(a - b) / scale;
            maxrel = rel > maxrel ? rel : maxrel;
        }
    ok(maxrel <= 1e-13, "three strided batches give the H of one batch (max diff %.2g of sqrt(Hii Hkk), tol 1e-13)",
       maxrel);

    double *Hsnap = xmalloc(cols * cols * sizeof *Hsnap);
    for (size_t i = 0; i < cols; i++)
        for (size_t k = 0; k < cols; k++)
            Hsnap[i * cols + k] = qid_gptq_hessian_get(h, i, k);
    memcpy(W1, W0, rows * cols * sizeof *W1);
    qid_gptq_stats st;
    int rc = qid_gptq_quantize(h, &spec, &o, W1, rows, cols, "dead", &st, &err);
    int zero = rc == QID_OK;
    for (size_t r = 0; r < rows && zero; r++)
        for (size_t d = 0; d < 4; d++)
            zero = zero && W1[r * cols + dead[d]] == 0.0f;
    ok(zero && st.dead == 4 && !st.reused, "dead columns: %zu found, their weights quantized to 0", st.dead);

    memcpy(W2, W0, rows * cols * sizeof *W2);
    rc = qid_gptq_quantize(h, &spec, &o, W2, rows, cols, "dead", &st, &err);
    ok(rc == QID_OK && st.reused && memcmp(W1, W2, rows * cols * sizeof *W1) == 0,
       "a second weight on the same H reuses the factorization, same result");
    o.act_order = 0;
    memcpy(W2, W0, rows * cols * sizeof *W2);
    rc = qid_gptq_quantize(h, &spec, &o, W2, rows, cols, "dead", &st, &err);
    ok(rc == QID_OK && !st.reused, "other options refactor");
    o.act_order = 1;
    int same = 1;
    for (size_t i = 0; i < cols; i++)
        for (size_t k = 0; k < cols; k++)
            same = same && Hsnap[i * cols + k] == qid_gptq_hessian_get(h, i, k);
    ok(same, "H is unchanged by three quantize calls (tol 0)");
    free(Hsnap);

    /* Same result with one and with two OpenMP threads (tol 0), on a matrix
     * large enough for the sweep to run in parallel (2048 rows, block 256:
     * rows x block^2 / 2 = 2^26 multiply-adds per block, gptq.c's threshold). */
    {
        const size_t big = 2048;
        float *B0 = xmalloc(big * cols * sizeof *B0), *B1 = xmalloc(big * cols * sizeof *B1),
              *B2 = xmalloc(big * cols * sizeof *B2);
        for (size_t i = 0; i < big * cols; i++)
            B0[i] = 0.02f * tap_gauss();
        qid_gptq_opts ob = o;
        ob.block = 256;
        int nt = omp_get_max_threads(), nt2 = nt > 1 ? nt : 2;
        omp_set_num_threads(nt2);
        memcpy(B1, B0, big * cols * sizeof *B1);
        int rc1 = qid_gptq_quantize(h, &spec, &ob, B1, big, cols, "big", &st, &err);
        omp_set_num_threads(1);
        memcpy(B2, B0, big * cols * sizeof *B2);
        int rc2 = qid_gptq_quantize(h, &spec, &ob, B2, big, cols, "big", &st, &err);
        omp_set_num_threads(nt);
        ok(rc1 == QID_OK && rc2 == QID_OK && memcmp(B1, B2, big * cols * sizeof *B1) == 0,
           "%zu x %zu: 1 thread gives the result of %d threads bit for bit", big, cols, nt2);
        free(B0);
        free(B1);
        free(B2);
    }

    /* The generic (SSE2) error-feedback loop gives the AVX2 one's bits. */
    qid_quant_force_scalar(1);
    memcpy(W2, W0, rows * cols * sizeof *W2);
    rc = qid_gptq_quantize(h, &spec, &o, W2, rows, cols, "dead", &st, &err);
    qid_quant_force_scalar(0);
    ok(rc == QID_OK && memcmp(W1, W2, rows * cols * sizeof *W1) == 0,
       "scalar/SSE2 kernels give the %s path's result bit for bit", qid_quant_simd());

    /* NF4: the default micro-block is its block of 64; the lazy block 32 is rounded up to it. */
    qid_quant_spec nf4 = spec_of("nf4");
    o.act_order = 0;
    o.micro_block = 0;
    memcpy(W2, W0, rows * cols * sizeof *W2);
    rc = qid_gptq_quantize(h, &nf4, &o, W2, rows, cols, "nf4", &st, &err);
    ok(rc == QID_OK && st.micro_block == 64 && st.block == 64, "nf4: default micro-block 64, lazy block 32 -> %zu",
       st.block);

    qid_gptq_hessian_free(h);
    qid_gptq_hessian_free(h2);
    free(A);
    free(X);
    free(Xs);
    free(W0);
    free(W1);
    free(W2);
}

/* Counting a batch as fewer samples (one per window, as the reference does)
 * scales H by a power of two here, which scales the factorization exactly:
 * the same quantized weights, the loss times 256. */
static void test_nsamples(void)
{
    const size_t rows = 16, cols = 128, n = 512;
    float *A = make_mixing(cols), *X = make_inputs(A, n, cols);
    float *W0 = xmalloc(rows * cols * sizeof *W0), *W1 = xmalloc(rows * cols * sizeof *W1),
          *W2 = xmalloc(rows * cols * sizeof *W2);
    for (size_t i = 0; i < rows * cols; i++)
        W0[i] = W1[i] = W2[i] = 0.02f * tap_gauss();
    qid_gptq_hessian *h1 = qid_gptq_hessian_create(cols), *h2 = qid_gptq_hessian_create(cols);
    qid_error err;
    if (qid_gptq_hessian_add(h1, X, n, cols, 0, "t", &err) || qid_gptq_hessian_add(h2, X, n, cols, 2, "t", &err))
        bail("add: %s", err.msg);
    int scaled = qid_gptq_hessian_nsamples(h2) == 2;
    for (size_t i = 0; i < cols && scaled; i++)
        for (size_t k = 0; k <= i; k++)
            scaled = scaled && fabs(qid_gptq_hessian_get(h2, i, k) - 256.0 * qid_gptq_hessian_get(h1, i, k)) <=
                                   1e-12 * fabs(qid_gptq_hessian_get(h2, i, k));
    ok(scaled, "512 rows counted as 2 samples: H x 256 (tol 1e-12 relative)");
    qid_quant_spec spec = spec_of("int4-g64-sym");
    qid_gptq_stats s1, s2;
    if (qid_gptq_quantize(h1, &spec, NULL, W1, rows, cols, "t", &s1, &err) ||
        qid_gptq_quantize(h2, &spec, NULL, W2, rows, cols, "t", &s2, &err))
        bail("gptq: %s", err.msg);
    ok(memcmp(W1, W2, rows * cols * sizeof *W1) == 0 && fabs(s2.loss - 256.0 * s1.loss) <= 1e-9 * s2.loss,
       "same quantized weights; loss %.6g = 256 x %.6g (tol 1e-9 relative)", s2.loss, s1.loss);
    qid_gptq_hessian_free(h1);
    qid_gptq_hessian_free(h2);
    free(A);
    free(X);
    free(W0);
    free(W1);
    free(W2);
}

/* ---- bad input ----------------------------------------------------------------- */

static void test_bad_input(void)
{
    const size_t rows = 8, cols = 256;
    float *A = make_mixing(cols), *X = make_inputs(A, 300, cols);
    float *W = xmalloc(rows * cols * sizeof *W), *W0 = xmalloc(rows * cols * sizeof *W0);
    for (size_t i = 0; i < rows * cols; i++)
        W0[i] = W[i] = 0.02f * tap_gauss();
    qid_gptq_hessian *h = qid_gptq_hessian_create(cols);
    qid_error err;
    qid_gptq_opts o;
    qid_gptq_opts_default(&o);
    qid_quant_spec s4 = spec_of("int4-g128-sym"), mx = spec_of("mxfp4");

    int rc = qid_gptq_quantize(h, &s4, &o, W, rows, cols, "empty.weight", NULL, &err);
    ok(rc == QID_E_INVALID, "no samples: invalid");
    like(err.msg, "no calibration samples were added for 'empty.weight'", "message: %s", err.msg);

    X[17 * cols + 5] = INFINITY;
    rc = qid_gptq_hessian_add(h, X, 300, cols, 0, "layers/0/attn.dense.weight", &err);
    ok(rc == QID_E_NUMERIC && qid_gptq_hessian_nsamples(h) == 0, "non-finite activation: numeric error, H unchanged");
    like(err.msg, "non-finite activation inf at row 17, column 5 of the input of 'layers/0/attn.dense.weight'",
         "message: %s", err.msg);
    X[17 * cols + 5] = 0.5f;
    if (qid_gptq_hessian_add(h, X, 300, cols, 0, "x", &err)) bail("add: %s", err.msg);

    W[3 * cols + 9] = NAN;
    rc = qid_gptq_quantize(h, &s4, &o, W, rows, cols, "layers/1/mlp.fc1.weight", NULL, &err);
    ok(rc == QID_E_NUMERIC, "NaN weight: numeric error");
    like(err.msg, "non-finite weight nan at element 777 (row 3, column 9) of 'layers/1/mlp.fc1.weight'", "message: %s",
         err.msg);
    W[3 * cols + 9] = -INFINITY;
    rc = qid_gptq_quantize(h, &mx, &o, W, rows, cols, "layers/1/mlp.fc1.weight", NULL, &err);
    like(err.msg, "non-finite weight -inf at element 777", "MX formats reject -inf too: %s", err.msg);
    W[3 * cols + 9] = W0[3 * cols + 9];
    ok(memcmp(W, W0, rows * cols * sizeof *W) == 0, "rejected weights are left untouched");

    qid_quant_spec g100 = spec_of("int4-g100-sym");
    rc = qid_gptq_quantize(h, &g100, &o, W, rows, cols, "layers/2/attn.qkv.weight", NULL, &err);
    ok(rc == QID_E_INVALID, "group 100 with 256 columns: invalid");
    like(err.msg, "group size 100 does not divide row length 256 of 'layers/2/attn.qkv.weight'", "message: %s",
         err.msg);

    o.micro_block = 48;
    rc = qid_gptq_quantize(h, &mx, &o, W, rows, cols, "layers/2/mlp.fc2.weight", NULL, &err);
    ok(rc == QID_E_INVALID, "micro-block 48 with mxfp4: invalid");
    like(err.msg,
         "gptq: micro-block 48 for 'layers/2/mlp.fc2.weight' is not a multiple of the block size 32 of format "
         "mxfp4",
         "message: %s", err.msg);
    o.micro_block = 0;
    o.act_order = 1;
    rc = qid_gptq_quantize(h, &mx, &o, W, rows, cols, "m", NULL, &err);
    like(err.msg, "gptq: act-order with format mxfp4 for 'm' needs static groups", "MX act-order without static: %s",
         err.msg);
    o.act_order = 0;

    float *Wn = xmalloc(rows * 128 * sizeof *Wn);
    memcpy(Wn, W, rows * 128 * sizeof *Wn);
    rc = qid_gptq_quantize(h, &s4, &o, Wn, rows, 128, "narrow", NULL, &err);
    like(err.msg, "gptq: 'narrow' has 128 columns but its Hessian is 256 x 256", "width mismatch: %s", err.msg);
    free(Wn);

    o.percdamp = -0.1;
    rc = qid_gptq_quantize(h, &s4, &o, W, rows, cols, "p", NULL, &err);
    like(err.msg, "gptq: percdamp -0.1 for 'p' must be finite and >= 0", "negative percdamp: %s", err.msg);
    ok(memcmp(W, W0, rows * cols * sizeof *W) == 0, "every rejection leaves the weights untouched");

    qid_gptq_hessian_free(h);
    free(A);
    free(X);
    free(W);
    free(W0);
}

int main(void)
{
    plan(2 + 2 * FIX_VARIANTS + 1 + 12 + 6 + 8 + 2 + 16);
    qid_log_set_level(QID_LOG_WARN);
    test_fixture();
    test_beats_rtn();
    test_rank_deficient();
    test_dead_cache_threads();
    test_nsamples();
    test_bad_input();
    return 0;
}
