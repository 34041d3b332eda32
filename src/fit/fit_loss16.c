/* fit_loss16.c - the 16-bit loss law L(N, D) = [(Nc/N)^(aN/aD) + Dc/D]^aD
 * (the form Ouyang et al. take from Kaplan et al.): evaluation, and a fit by
 * Levenberg-Marquardt on ln L over theta = (ln Nc, ln Dc, ln aN, ln aD).
 *
 * Initialisation: for fixed aD and r = aN/aD the law is linear in
 * A = Nc^r and Dc, L^(1/aD) = A N^-r + Dc/D, so a grid over (aD, r) with a
 * two-column least-squares solve (LAPACKE_dgels) at each point, scored by the
 * squared error of ln L, gives a start in the right basin; the engine in
 * fit.c refines it.
 *
 * Does not: dedupe checkpoints (the caller passes one row per checkpoint), or
 * fit other loss-law forms.
 */
#include "fit.h"

#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit_internal.h"

const qid_fit_loss16 QID_FIT_LOSS16_OUYANG = {.nc = 4.74e19, .dc = 7.63e10, .an = 0.045, .ad = 0.399};

/* ln(e^u + e^v) without overflow. */
static double logaddexp(double u, double v)
{
    double hi = fmax(u, v), lo = fmin(u, v);
    return hi + log1p(exp(lo - hi));
}

double qid_fit_loss16_eval(const qid_fit_loss16 *law, double n, double d)
{
    double u = law->an / law->ad * (log(law->nc) - log(n));
    double v = log(law->dc) - log(d);
    return exp(law->ad * logaddexp(u, v));
}

typedef struct loss_ctx {
    size_t m;
    const double *ln, *ld; /* ln N, ln D */
} loss_ctx;

/* theta = (ln nc, ln dc, ln an, ln ad); f = ln L. */
static void loss_model(const double *theta, const void *ctx, double *f, double *jac)
{
    const loss_ctx *cx = ctx;
    double lnc = theta[0], ldc = theta[1], an = exp(theta[2]), ad = exp(theta[3]);
    double r = an / ad;
    for (size_t i = 0; i < cx->m; i++) {
        double t = lnc - cx->ln[i];
        double u = r * t, v = ldc - cx->ld[i];
        double lse = logaddexp(u, v);
        f[i] = ad * lse;
        if (!jac) continue;
        double su = exp(u - lse), sv = exp(v - lse); /* shares of the two terms */
        double *row = jac + i * 4;
        row[0] = an * su;
        row[1] = ad * sv;
        row[2] = an * su * t;
        row[3] = ad * lse - an * su * t;
    }
}

static double sse_log(const qid_fit_loss16 *law, const double *n, const double *d, const double *loss, size_t m)
{
    double s = 0;
    for (size_t i = 0; i < m; i++) {
        double e = log(loss[i]) - log(qid_fit_loss16_eval(law, n[i], d[i]));
        s += e * e;
    }
    return isfinite(s) ? s : INFINITY;
}

/* The grid start; QID_E_NUMERIC when no grid point gives A, Dc > 0. */
static int loss_start(const double *n, const double *d, const double *loss, size_t m, double *a, double *b,
                      qid_fit_loss16 *best, qid_error *err)
{
    enum { N_AD = 32, N_R = 32 };
    double best_sse = INFINITY;
    for (int ia = 0; ia < N_AD; ia++) {
        double ad = 0.02 * pow(100.0, ia / (double)(N_AD - 1)); /* 0.02 .. 2 */
        for (int ir = 0; ir < N_R; ir++) {
            double r = 0.01 * pow(300.0, ir / (double)(N_R - 1)); /* 0.01 .. 3 */
            double c0 = 0, c1 = 0;
            for (size_t i = 0; i < m; i++) {
                double x0 = exp(-r * log(n[i])), x1 = 1.0 / d[i];
                a[i * 2] = x0;
                a[i * 2 + 1] = x1;
                b[i] = exp(log(loss[i]) / ad);
                c0 += x0 * x0;
                c1 += x1 * x1;
            }
            c0 = sqrt(c0);
            c1 = sqrt(c1);
            int finite = c0 > 0 && c1 > 0 && isfinite(c0) && isfinite(c1);
            for (size_t i = 0; i < m && finite; i++) {
                a[i * 2] /= c0;
                a[i * 2 + 1] /= c1;
                finite = isfinite(b[i]);
            }
            if (!finite) continue;
            lapack_int info;
            QID_LAPACKE(info, LAPACKE_dgels(LAPACK_ROW_MAJOR, 'N', (lapack_int)m, 2, 1, a, 2, b, 1));
            if (info > 0) continue;
            double A = b[0] / c0, dc = b[1] / c1;
            if (!(A > 0 && dc > 0 && isfinite(A) && isfinite(dc))) continue;
            qid_fit_loss16 law = {.nc = exp(log(A) / r), .dc = dc, .an = r * ad, .ad = ad};
            if (!(isfinite(law.nc) && law.nc > 0)) continue;
            double s = sse_log(&law, n, d, loss, m);
            if (s < best_sse) {
                best_sse = s;
                *best = law;
            }
        }
    }
    if (!isfinite(best_sse))
        return qid_error_set(err, QID_E_NUMERIC,
                             "16-bit loss law on %zu points: no initial guess gives positive Nc and Dc "
                             "(does the loss fall with both N and D?)",
                             m);
    return QID_OK;
}

int qid_fit_loss16_fit(const double *n, const double *d, const double *loss, size_t m, const qid_fit_opts *opts,
                       qid_fit_loss16_result *res, qid_error *err)
{
    qid_fit_opts o;
    if (opts)
        o = *opts;
    else
        qid_fit_opts_init(&o);
    if (m < 5) return qid_error_set(err, QID_E_INVALID, "16-bit loss law: need at least 5 points (got %zu)", m);
    for (size_t i = 0; i < m; i++)
        if (!(isfinite(n[i]) && n[i] > 0 && isfinite(d[i]) && d[i] > 0 && isfinite(loss[i]) && loss[i] > 0))
            return qid_error_set(err, QID_E_INVALID,
                                 "16-bit loss law: point %zu needs positive finite N, D and loss (N=%g D=%g L=%g)", i,
                                 n[i], d[i], loss[i]);
    double *buf = qid_malloc(qid_mul_size(m, 6 * sizeof(double)), "fit: 16-bit loss law");
    double *ln = buf, *ld = buf + m, *y = buf + 2 * m, *a = buf + 3 * m, *b = buf + 5 * m;
    memcpy(a, n, m * sizeof *a);
    size_t dn = qid_fit_count_distinct(a, m);
    memcpy(a, d, m * sizeof *a);
    size_t dd = qid_fit_count_distinct(a, m);
    int rc = QID_OK;
    if (dn < 2 || dd < 2) {
        rc = qid_error_set(err, QID_E_INVALID,
                           "16-bit loss law: N and D must each take at least 2 values (N has %zu, D %zu)", dn, dd);
        goto out;
    }
    qid_fit_loss16 start;
    rc = loss_start(n, d, loss, m, a, b, &start, err);
    if (rc) goto out;
    for (size_t i = 0; i < m; i++) {
        ln[i] = log(n[i]);
        ld[i] = log(d[i]);
        y[i] = log(loss[i]);
    }
    loss_ctx cx = {.m = m, .ln = ln, .ld = ld};
    qid_fit_lm pb = {.m = m,
                     .p = 4,
                     .model = loss_model,
                     .ctx = &cx,
                     .y = y,
                     .s = NULL,
                     .huber_c = o.huber_c,
                     .fixed_scale = o.fixed_scale,
                     .max_iter = o.max_iter,
                     .xtol = o.xtol,
                     .gtol = o.gtol};
    static const char *const names[4] = {"ln Nc", "ln Dc", "ln aN", "ln aD"};
    pb.names = names;
    double theta[4] = {log(start.nc), log(start.dc), log(start.an), log(start.ad)};
    qid_fit_lm_work w;
    qid_fit_lm_work_init(&w, m, 4);
    char what[96];
    snprintf(what, sizeof what, "16-bit loss law on %zu points", m);
    qid_fit_conv conv;
    rc = qid_fit_lm_run(&pb, theta, &conv, NULL, &w, what, err);
    qid_fit_lm_work_free(&w);
    if (rc) goto out;
    qid_fit_loss16 law = {.nc = exp(theta[0]), .dc = exp(theta[1]), .an = exp(theta[2]), .ad = exp(theta[3])};
    if (!(isfinite(law.nc) && isfinite(law.dc) && isfinite(law.an) && isfinite(law.ad))) {
        rc = qid_error_set(err, QID_E_NUMERIC, "%s: the fit diverged", what);
        goto out;
    }
    double mean = 0, sst = 0, sse = sse_log(&law, n, d, loss, m);
    for (size_t i = 0; i < m; i++)
        mean += y[i];
    mean /= (double)m;
    for (size_t i = 0; i < m; i++)
        sst += (y[i] - mean) * (y[i] - mean);
    memset(res, 0, sizeof *res);
    res->law = law;
    res->start = start;
    res->n_points = m;
    res->rmse_log = sqrt(sse / (double)m);
    res->r2_log = sst > 0 ? 1.0 - sse / sst : NAN;
    res->conv = conv;
out:
    free(buf);
    return rc;
}
