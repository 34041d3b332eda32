/* bench_awq.c - `make bench`: AWQ against round to nearest (and GPTQ) on the
 * demo models (`make demo`'s build/demo: the suite and its corpus), by
 * held-out layer-output error, with each method's quantize time.
 *
 * For the last checkpoint of each demo model and each format, qid quantizes
 * the checkpoint with RTN, AWQ and GPTQ (damp 0.1, as jobs/demo.job) on the
 * first QID_BENCH_AWQ_CALIB windows of the corpus's calibration set
 * (default 32), writes each to a temporary file, then runs the 16-bit model
 * on the first QID_BENCH_AWQ_EVAL windows of the evaluation set (default
 * 32; a set apart from calibration: held out) and, for every linear layer,
 * adds |X (W_q - W)^T|^2 and |X W^T|^2 over those windows' inputs X (the
 * 16-bit model's). It prints the relative error sum over layers of the
 * first divided by the sum of the second, per method.
 *
 * The demo models have d_model 32 to 96: groups of 128 do not divide their
 * rows, so the formats are int3/int4 in groups of 32 and per channel
 * (QID_BENCH_AWQ_FORMATS, comma-separated, to change them).
 *
 * Environment: QID_BENCH_DEMO (default build/demo), QID_BENCH_AWQ_CALIB,
 * QID_BENCH_AWQ_EVAL, QID_BENCH_AWQ_FORMATS. Skipped with a note when the
 * demo is not built. Not a test: prints numbers, asserts nothing. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "checkpoint.h"
#include "model.h"
#include "quantize.h"
#include "tokens.h"

typedef struct held_err {
    qid_ckpt *q; /* the quantized checkpoint */
    double err, ref;
} held_err;

/* Sees each linear's input in the 16-bit model and adds its error. */
static int err_hook(void *ctx, const qid_tensor_spec *t, const float *x, size_t rows, size_t ldx, float *w,
                    qid_error *err)
{
    held_err *h = ctx;
    if (t->kind != QID_TENSOR_LINEAR) return QID_OK;
    const size_t out = (size_t)t->shape[0], cols = (size_t)t->shape[1];
    float *q = malloc(out * cols * sizeof *q);
    if (!q) return qid_error_set(err, QID_E_INVALID, "out of memory");
    int rc = qid_ckpt_read_f32(h->q, t, q, err);
    if (rc) {
        free(q);
        return rc;
    }
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        for (size_t o = 0; o < out; o++) {
            double d = 0.0, y = 0.0;
            for (size_t j = 0; j < cols; j++) {
                d += (double)xr[j] * ((double)q[o * cols + j] - (double)w[o * cols + j]);
                y += (double)xr[j] * (double)w[o * cols + j];
            }
            h->err += d * d;
            h->ref += y * y;
        }
    }
    free(q);
    return QID_OK;
}

/* Relative held-out layer-output error of quantized checkpoint qpath. */
static double heldout(const char *orig, const char *qpath, const uint32_t *tok, size_t nw, size_t L)
{
    qid_model *m;
    qid_ckpt q;
    qid_error err;
    if (qid_model_open(orig, &m, &err) || qid_ckpt_open(qpath, &q, &err)) {
        fprintf(stderr, "bench_awq: %s\n", err.msg);
        exit(1);
    }
    held_err h = {.q = &q};
    qid_batch *b = qid_batch_create(m, tok, nw, L, &err);
    int rc = !b || qid_model_load(m, QID_STAGE_EMBED, &err) || qid_batch_step(m, b, NULL, NULL, &err);
    for (int l = 0; l < (int)qid_model_cfg(m)->n_layers && !rc; l++)
        rc = qid_model_load(m, l, &err) || qid_batch_step(m, b, err_hook, &h, &err);
    if (rc) {
        fprintf(stderr, "bench_awq: %s\n", err.msg);
        exit(1);
    }
    qid_batch_free(b);
    qid_ckpt_close(&q);
    qid_model_free(m);
    return h.err / h.ref;
}

static uint32_t *read_windows(const char *path, size_t want, size_t *nw, size_t *L)
{
    qid_tokens tk;
    qid_error err;
    if (qid_tokens_open(path, &tk, &err)) return NULL;
    size_t have = (size_t)tk.meta.n_windows;
    *nw = want < have ? want : have;
    *L = (size_t)tk.meta.seq_len;
    uint32_t *t = malloc(*nw * *L * sizeof *t);
    if (!t || qid_tokens_read(&tk, 0, *nw, t, &err)) {
        fprintf(stderr, "bench_awq: %s\n", err.msg);
        exit(1);
    }
    qid_tokens_close(&tk);
    return t;
}

/* The checkpoint of suite/<model> with the largest step, into out. */
static int last_step(const char *dir, char *out, size_t len)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    long best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        long s;
        if (sscanf(e->d_name, "step%ld.h5", &s) == 1 && s > best) {
            best = s;
            snprintf(out, len, "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    return best < 0 ? -1 : 0;
}

int main(void)
{
    qid_blas_init(); /* OpenBLAS's own kernels where its dispatch falls back, as the qid command */
    const char *demo = getenv("QID_BENCH_DEMO") ? getenv("QID_BENCH_DEMO") : "build/demo";
    const size_t n_cal = env_size("QID_BENCH_AWQ_CALIB", 32), n_eval = env_size("QID_BENCH_AWQ_EVAL", 32);
    char fmts[256];
    snprintf(fmts, sizeof fmts, "%s",
             getenv("QID_BENCH_AWQ_FORMATS")
                 ? getenv("QID_BENCH_AWQ_FORMATS")
                 : "int3-g32-asym,int4-g32-asym,int3-g32-sym,int4-g32-sym,int4-channel-asym");
    char path[512], suite[512];
    snprintf(path, sizeof path, "%s/corpus/eval.h5", demo);
    snprintf(suite, sizeof suite, "%s/suite", demo);
    printf("qid bench: AWQ vs RTN and GPTQ, held-out layer-output error on the demo models (%s)\n", demo);
    size_t nw, L, cw, cL;
    uint32_t *ev = read_windows(path, n_eval, &nw, &L);
    snprintf(path, sizeof path, "%s/corpus/calib.h5", demo);
    uint32_t *cal = access(path, R_OK) == 0 ? read_windows(path, n_cal, &cw, &cL) : NULL;
    DIR *d = opendir(suite);
    if (!ev || !cal || !d) {
        printf("  skipped: no demo in %s (make demo builds it)\n", demo);
        free(ev);
        free(cal);
        if (d) closedir(d);
        return 0;
    }
    char tmp[] = "/tmp/qid-bench-awq-XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    printf("  calibration %zu windows of %zu tokens (calib.h5), held out %zu windows of %zu tokens (eval.h5)\n", cw, cL,
           nw, L);
    printf("  relative error sum |X (Wq - W)^T|^2 / sum |X W^T|^2 over every linear layer; quantize seconds\n");
    printf("  %-16s %-18s %10s %10s %10s %8s %8s %8s  %s\n", "model", "format", "rtn", "awq", "gptq", "rtn s", "awq s",
           "gptq s", "awq/rtn");
    struct dirent *e;
    char names[16][64];
    int n_models = 0;
    while ((e = readdir(d)) && n_models < 16)
        if (e->d_name[0] != '.' && !strstr(e->d_name, ".log") && !strchr(e->d_name, '-'))
            snprintf(names[n_models++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    for (int i = 0; i < n_models; i++)
        for (int j = i + 1; j < n_models; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char t[64];
                memcpy(t, names[i], 64);
                memcpy(names[i], names[j], 64);
                memcpy(names[j], t, 64);
            }
    for (int mi = 0; mi < n_models; mi++) {
        char dir[600], ck[700];
        snprintf(dir, sizeof dir, "%s/%s", suite, names[mi]);
        if (last_step(dir, ck, sizeof ck)) continue;
        char list[256];
        snprintf(list, sizeof list, "%s", fmts);
        for (char *f = strtok(list, ","); f; f = strtok(NULL, ",")) {
            double rel[3], sec[3];
            const qid_quantize_method meth[3] = {QID_QUANTIZE_RTN, QID_QUANTIZE_AWQ, QID_QUANTIZE_GPTQ};
            int bad = 0;
            for (int k = 0; k < 3 && !bad; k++) {
                qid_quantize_opts o;
                qid_quantize_opts_default(&o);
                qid_error err;
                if (qid_quant_parse(f, &o.spec, &err)) {
                    printf("  %s: %s\n", f, err.msg);
                    bad = 1;
                    break;
                }
                o.method = meth[k];
                o.calib = path;
                o.samples = cw;
                o.gptq.percdamp = 0.1;
                char out[600];
                snprintf(out, sizeof out, "%s/q.h5", tmp);
                qid_quantize_stats st;
                double t0 = now();
                if (qid_quantize_checkpoint(ck, out, 1, &o, &st, &err)) {
                    printf("  %-16s %-18s %s\n", names[mi], f, err.msg);
                    bad = 1;
                    break;
                }
                sec[k] = now() - t0;
                rel[k] = heldout(ck, out, ev, nw, L);
                unlink(out);
            }
            if (!bad)
                printf("  %-16s %-18s %10.3e %10.3e %10.3e %8.2f %8.2f %8.2f  %.3f\n", names[mi], f, rel[0], rel[1],
                       rel[2], sec[0], sec[1], sec[2], rel[1] / rel[0]);
        }
    }
    rmdir(tmp);
    free(ev);
    free(cal);
    return 0;
}
