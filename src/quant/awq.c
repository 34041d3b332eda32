/* awq.c - AWQ (awq.h): the input statistics of a group of linears, the
 * activation-aware scale search, the clipping search and the reference's
 * pseudo-quantizer.
 *
 * Does not: run the model, choose the groups or which layers are clipped
 * (quantize.c), or read a command line. */
#include "awq.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gptq.h"

struct qid_awq_input {
    size_t cols;
    size_t rows;         /* rows added */
    size_t total;        /* rows expected in all (0 = unknown until the first add) */
    size_t step;         /* sample every step-th row (0 = not yet known) */
    size_t n_sample;     /* the options' n_sample_token */
    double *abs_sum;     /* [cols] sum |x| */
    qid_gptq_hessian *h; /* 2/n X^T X */
    float *sample;       /* [ns][cols] */
    size_t ns, ns_cap;
};

void qid_awq_opts_default(qid_awq_opts *o)
{
    o->n_grid = 20;
    o->clip = 1;
    o->clip_grid = 20;
    o->max_shrink = 0.5;
    o->n_sample_token = 512;
}

int qid_awq_spec_ok(const qid_quant_spec *spec)
{
    return qid_quant_spec_valid(spec) && spec->type == QID_QTYPE_INT && !spec->mse;
}

/* ---- the pseudo-quantizer ------------------------------------------------------ */

/* One group x[n] into y[n], as pseudo_quantize_tensor. */
static void pq_group(int bits, int sym, const float *restrict x, float *restrict y, size_t n)
{
    if (sym) {
        float amax = 0.0f;
        for (size_t i = 0; i < n; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        const float max_int = (float)((1 << (bits - 1)) - 1), min_int = -(float)(1 << (bits - 1));
        const float scale = fmaxf(amax, 1e-5f) / max_int;
        for (size_t i = 0; i < n; i++)
            y[i] = fminf(fmaxf(nearbyintf(x[i] / scale), min_int), max_int) * scale;
        return;
    }
    float mx = x[0], mn = x[0];
    for (size_t i = 1; i < n; i++) {
        mx = fmaxf(mx, x[i]);
        mn = fminf(mn, x[i]);
    }
    const float max_int = (float)((1 << bits) - 1);
    const float scale = fmaxf(mx - mn, 1e-5f) / max_int;
    const float zero = fminf(fmaxf(-nearbyintf(mn / scale), 0.0f), max_int);
    for (size_t i = 0; i < n; i++)
        y[i] = (fminf(fmaxf(nearbyintf(x[i] / scale) + zero, 0.0f), max_int) - zero) * scale;
}

void qid_awq_pseudo_quantize_row(const qid_quant_spec *spec, const float *restrict x, float *restrict y, size_t n)
{
    const size_t g = spec->block ? spec->block : n;
    for (size_t j = 0; j < n; j += g)
        pq_group(spec->bits, spec->sym, x + j, y + j, n - j < g ? n - j : g);
}

/* ---- input statistics ------------------------------------------------------------- */

qid_awq_input *qid_awq_input_create(size_t cols, const qid_awq_opts *o)
{
    qid_awq_opts d;
    if (!o) {
        qid_awq_opts_default(&d);
        o = &d;
    }
    qid_awq_input *in = qid_calloc(1, sizeof *in, "AWQ input statistics");
    in->cols = cols;
    in->n_sample = o->n_sample_token ? o->n_sample_token : 512;
    in->abs_sum = qid_calloc(cols, sizeof *in->abs_sum, "AWQ |x| sums");
    in->h = qid_gptq_hessian_create(cols);
    return in;
}

void qid_awq_input_free(qid_awq_input *in)
{
    if (!in) return;
    free(in->abs_sum);
    qid_gptq_hessian_free(in->h);
    free(in->sample);
    free(in);
}

void qid_awq_input_reset(qid_awq_input *in, size_t total_rows)
{
    in->rows = 0;
    in->total = total_rows;
    in->step = total_rows ? (total_rows / in->n_sample > 1 ? total_rows / in->n_sample : 1) : 0;
    in->ns = 0;
    memset(in->abs_sum, 0, in->cols * sizeof *in->abs_sum);
    qid_gptq_hessian_reset(in->h);
}

size_t qid_awq_input_cols(const qid_awq_input *in) { return in->cols; }
size_t qid_awq_input_rows(const qid_awq_input *in) { return in->rows; }

float qid_awq_input_mean(const qid_awq_input *in, size_t j)
{
    return in->rows ? (float)(in->abs_sum[j] / (double)in->rows) : 0.0f;
}

int qid_awq_input_add(qid_awq_input *in, const float *x, size_t rows, size_t ldx, const char *what, qid_error *err)
{
    if (rows == 0) return QID_OK;
    const size_t cols = in->cols;
    /* checks finiteness and accumulates X^T X; nothing else changes on error */
    int rc = qid_gptq_hessian_add(in->h, x, rows, ldx, 0, what, err);
    if (rc) return rc;
    if (!in->step) in->step = rows / in->n_sample > 1 ? rows / in->n_sample : 1;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        for (size_t j = 0; j < cols; j++)
            in->abs_sum[j] += fabs((double)xr[j]);
        if ((in->rows + r) % in->step) continue;
        if (in->ns == in->ns_cap) {
            size_t cap = in->ns_cap ? 2 * in->ns_cap : (in->total ? (in->total + in->step - 1) / in->step : 64);
            in->sample = qid_realloc(in->sample, qid_mul_size(qid_mul_size(cap, cols), sizeof(float)),
                                     "AWQ's sample of calibration rows");
            in->ns_cap = cap;
        }
        memcpy(in->sample + in->ns * cols, xr, cols * sizeof(float));
        in->ns++;
    }
    in->rows += rows;
    return QID_OK;
}

/* ---- scale search --------------------------------------------------------------------- */

static int check_spec(const qid_quant_spec *spec, size_t cols, const char *what, qid_error *err)
{
    if (!qid_awq_spec_ok(spec)) {
        char fmt[64] = "?";
        if (qid_quant_spec_valid(spec)) qid_quant_name(spec, fmt, sizeof fmt);
        return qid_error_set(err, QID_E_INVALID,
                             "AWQ takes integer formats without -mse (intB-gG-sym/asym, intB-channel), not '%s'", fmt);
    }
    return qid_quant_check_shape(spec, cols, what, err);
}

static int check_finite(const float *w, size_t rows, size_t cols, const char *what, qid_error *err)
{
    size_t n = rows * cols, bad = qid_quant_find_nonfinite(w, n);
    if (bad == n) return QID_OK;
    return qid_error_set(err, QID_E_INVALID, "non-finite weight %g at [%zu][%zu] of '%s'", (double)w[bad], bad / cols,
                         bad % cols, what ? what : "tensor");
}

/* The scales of ratio r from the means, as the reference (float32). */
static void scales_of(const float *mean, size_t cols, float ratio, float *s)
{
    float mx = -INFINITY, mn = INFINITY;
    for (size_t j = 0; j < cols; j++) {
        s[j] = fmaxf(powf(mean[j], ratio), 1e-4f);
        mx = fmaxf(mx, s[j]);
        mn = fminf(mn, s[j]);
    }
    const float norm = sqrtf(mx * mn);
    for (size_t j = 0; j < cols; j++) {
        s[j] = s[j] / norm;
        if (!isfinite(s[j])) s[j] = 1.0f;
    }
}

int qid_awq_search_scale(const qid_awq_input *in, const qid_quant_spec *spec, const qid_awq_opts *o,
                         const float *const *w, const size_t *rows, int n, float *s, qid_awq_stats *stats,
                         const char *what, qid_error *err)
{
    qid_awq_opts d;
    if (!o) {
        qid_awq_opts_default(&d);
        o = &d;
    }
    const size_t cols = in->cols;
    int rc = check_spec(spec, cols, what, err);
    if (rc) return rc;
    if (in->rows == 0) return qid_error_set(err, QID_E_INVALID, "AWQ of '%s': no calibration rows", what ? what : "?");
    if (o->n_grid < 1) return qid_error_set(err, QID_E_INVALID, "AWQ: n_grid must be at least 1");
    size_t max_rows = 0, out_total = 0;
    for (int k = 0; k < n; k++) {
        if ((rc = check_finite(w[k], rows[k], cols, what, err))) return rc;
        if (rows[k] > max_rows) max_rows = rows[k];
        out_total += rows[k];
    }
    double *H = qid_malloc(qid_mul_size(qid_mul_size(cols, cols), sizeof(double)), "AWQ's X^T X");
    for (size_t i = 0; i < cols; i++)
        for (size_t j = 0; j <= i; j++)
            H[i * cols + j] = H[j * cols + i] = qid_gptq_hessian_get(in->h, i, j);
    /* d^T H d = |d L|^2 with H = L L^T: one triangular product per ratio, half
     * a general one; a singular H (an input column that is always zero) keeps
     * the general product */
    lapack_int info;
    QID_LAPACKE(info, LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)cols, H, (lapack_int)cols));
    const int chol = info == 0;
    if (!chol)
        for (size_t i = 0; i < cols; i++)
            for (size_t j = 0; j <= i; j++)
                H[i * cols + j] = H[j * cols + i] = qid_gptq_hessian_get(in->h, i, j);
    float *mean = qid_malloc(qid_mul_size(cols, 2 * sizeof(float)), "AWQ means"), *cur = mean + cols;
    for (size_t j = 0; j < cols; j++)
        mean[j] = qid_awq_input_mean(in, j);
    const size_t mc = qid_mul_size(max_rows, cols);
    double *D = qid_malloc(qid_mul_size(mc, 2 * sizeof(double)), "AWQ's weight errors"), *T = D + mc;
    float *ws = qid_malloc(qid_mul_size(cols, 2 * sizeof(float)), "an AWQ row"), *qs = ws + cols;
    double best = INFINITY;
    int best_i = -1;
    if (stats) memset(stats, 0, sizeof *stats);
    for (int i = 0; i < o->n_grid; i++) {
        const float ratio = (float)((double)i / o->n_grid);
        scales_of(mean, cols, ratio, cur);
        double loss = 0.0;
        for (int k = 0; k < n; k++) {
            for (size_t r = 0; r < rows[k]; r++) {
                const float *wr = w[k] + r * cols;
                for (size_t j = 0; j < cols; j++)
                    ws[j] = wr[j] * cur[j];
                qid_awq_pseudo_quantize_row(spec, ws, qs, cols);
                for (size_t j = 0; j < cols; j++)
                    D[r * cols + j] = (double)(qs[j] / cur[j] - wr[j]);
            }
            const size_t m = rows[k] * cols;
            if (chol) {
                cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)rows[k], (int)cols,
                            1.0, H, (int)cols, D, (int)cols);
                for (size_t e = 0; e < m; e++)
                    loss += D[e] * D[e];
            } else {
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows[k], (int)cols, (int)cols, 1.0, D,
                            (int)cols, H, (int)cols, 0.0, T, (int)cols);
                for (size_t e = 0; e < m; e++)
                    loss += D[e] * T[e];
            }
        }
        /* H = 2/n X^T X: sum_t (x_t . d)^2 = n/2 d^T H d; the reference divides by n x outputs */
        loss = loss / 2.0 / (double)out_total;
        if (stats && i < 64) stats->losses[i] = loss;
        if (i == 0 && stats) stats->loss_rtn = loss;
        if (loss < best) {
            best = loss;
            best_i = i;
            memcpy(s, cur, cols * sizeof *s);
        }
    }
    free(ws);
    free(D);
    free(mean);
    free(H);
    if (best_i < 0)
        return qid_error_set(err, QID_E_INVALID, "AWQ of '%s': no finite loss on the scale grid", what ? what : "?");
    if (stats) {
        stats->best = best_i;
        stats->ratio = (double)best_i / o->n_grid;
        stats->loss = best;
    }
    return QID_OK;
}

/* ---- clipping and quantization ------------------------------------------------------- */

int qid_awq_quantize(const qid_awq_input *in, const qid_quant_spec *spec, const qid_awq_opts *o, const float *s,
                     int clip, float *w, size_t rows, size_t cols, float *clip_max, float *q_scaled, const char *what,
                     qid_error *err)
{
    qid_awq_opts d;
    if (!o) {
        qid_awq_opts_default(&d);
        o = &d;
    }
    int rc = check_spec(spec, cols, what, err);
    if (!rc) rc = check_finite(w, rows, cols, what, err);
    if (rc) return rc;
    if (clip && (!in || in->ns == 0 || in->cols != cols))
        return qid_error_set(err, QID_E_INVALID, "AWQ clipping of '%s': no calibration rows of width %zu",
                             what ? what : "?", cols);
    const size_t G = spec->block ? spec->block : cols, ng = cols / G;
    /* W s */
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cols; j++)
            w[r * cols + j] = s ? w[r * cols + j] * s[j] : w[r * cols + j];
    const int n_shrink = (int)(o->max_shrink * o->clip_grid);
    if (clip && n_shrink > 0) {
        const size_t ns = in->ns;
        double *X = qid_malloc(qid_mul_size(qid_mul_size(ns, G), sizeof(double)), "AWQ's clipping sample");
        double *Gm = qid_malloc(qid_mul_size(qid_mul_size(G, G), sizeof(double)), "AWQ's Gram matrix");
        double *Dl = qid_malloc(qid_mul_size(qid_mul_size(rows, G), 2 * sizeof(double)), "AWQ's clip errors");
        double *T = Dl + rows * G;
        double *best_err = qid_malloc(qid_mul_size(rows, sizeof(double)), "AWQ's clip errors");
        float *best_max = qid_malloc(qid_mul_size(rows, 2 * sizeof(float)), "AWQ's clip bounds"),
              *org = best_max + rows;
        float *cw = qid_malloc(qid_mul_size(G, 2 * sizeof(float)), "an AWQ group"), *cq = cw + G;
        for (size_t g = 0; g < ng; g++) {
            const size_t j0 = g * G;
            /* the sampled inputs of this group, divided by s as the reference's input_feat */
            for (size_t t = 0; t < ns; t++)
                for (size_t j = 0; j < G; j++) {
                    float x = in->sample[t * cols + j0 + j];
                    X[t * G + j] = (double)(s ? x / s[j0 + j] : x);
                }
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)G, (int)G, (int)ns, 1.0, X, (int)G, X, (int)G,
                        0.0, Gm, (int)G);
            for (size_t r = 0; r < rows; r++) {
                float a = 0.0f;
                for (size_t j = 0; j < G; j++)
                    a = fmaxf(a, fabsf(w[r * cols + j0 + j]));
                org[r] = best_max[r] = a;
                best_err[r] = 1e9;
            }
            for (int i = 0; i < n_shrink; i++) {
                const float f = (float)(1.0 - (double)i / o->clip_grid);
                for (size_t r = 0; r < rows; r++) {
                    const float mv = org[r] * f;
                    const float *wr = w + r * cols + j0;
                    for (size_t j = 0; j < G; j++)
                        cw[j] = fminf(fmaxf(wr[j], -mv), mv);
                    pq_group(spec->bits, spec->sym, cw, cq, G);
                    for (size_t j = 0; j < G; j++)
                        Dl[r * G + j] = (double)cq[j] - (double)wr[j];
                }
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)G, (int)G, 1.0, Dl, (int)G, Gm,
                            (int)G, 0.0, T, (int)G);
                for (size_t r = 0; r < rows; r++) {
                    double e = 0.0;
                    for (size_t j = 0; j < G; j++)
                        e += Dl[r * G + j] * T[r * G + j];
                    e /= (double)ns;
                    if (e < best_err[r]) {
                        best_err[r] = e;
                        best_max[r] = org[r] * f;
                    }
                }
            }
            for (size_t r = 0; r < rows; r++) {
                float *wr = w + r * cols + j0;
                for (size_t j = 0; j < G; j++)
                    wr[j] = fminf(fmaxf(wr[j], -best_max[r]), best_max[r]);
                if (clip_max) clip_max[r * ng + g] = best_max[r];
            }
        }
        free(cw);
        free(best_max);
        free(best_err);
        free(Dl);
        free(Gm);
        free(X);
    } else if (clip_max) {
        for (size_t r = 0; r < rows; r++)
            for (size_t g = 0; g < ng; g++) {
                float a = 0.0f;
                for (size_t j = 0; j < G; j++)
                    a = fmaxf(a, fabsf(w[r * cols + g * G + j]));
                clip_max[r * ng + g] = a;
            }
    }
    float *row = qid_malloc(qid_mul_size(cols, sizeof(float)), "an AWQ row");
    for (size_t r = 0; r < rows; r++) {
        float *wr = w + r * cols;
        qid_awq_pseudo_quantize_row(spec, wr, row, cols);
        if (q_scaled) memcpy(q_scaled + r * cols, row, cols * sizeof(float));
        for (size_t j = 0; j < cols; j++)
            wr[j] = s ? row[j] / s[j] : row[j];
    }
    free(row);
    return QID_OK;
}
