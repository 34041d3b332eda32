/* divergence.c - the divergence report (divergence.h) from per-token KL,
 * NLL pairs and top-1 agreement: means and standard errors in two passes
 * of float64, percentiles of sorted copies.
 *
 * Does not: make the per-token values (model.c) or store them. */
#include "divergence.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void qid_divergence_none(qid_divergence *d)
{
    double *v = &d->kl;
    size_t n = (size_t)(&d->ln_ppl_ratio_se - &d->kl) + 1;
    for (size_t i = 0; i < n; i++)
        v[i] = NAN;
    d->tokens = 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double qid_percentile_sorted(const double *sorted, size_t n, double f)
{
    if (f <= 0) return sorted[0];
    if (f >= 1) return sorted[n - 1];
    double p = f * (double)(n - 1);
    size_t i = (size_t)p;
    double frac = p - (double)i;
    size_t j = i + 1 < n ? i + 1 : n - 1;
    return (1 - frac) * sorted[i] + frac * sorted[j];
}

/* Mean and standard error of the mean of x (two passes). */
static void mean_se(const double *x, size_t n, double *mean, double *se)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    double m = s / (double)n, ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *se = n > 1 ? sqrt(ss / (double)n / (double)(n - 1)) : NAN;
}

int qid_divergence_compute(const double *kl, const double *nll, const double *ref_nll, const uint8_t *same_top,
                           size_t n, qid_divergence *out, qid_error *err)
{
    qid_divergence_none(out);
    if (n == 0) return qid_error_set(err, QID_E_INVALID, "divergence report over no predictions");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(kl[i]) || !isfinite(nll[i]) || !isfinite(ref_nll[i]))
            return qid_error_set(err, QID_E_INVALID, "prediction %zu: KL %g, NLL %g, reference NLL %g", i, kl[i],
                                 nll[i], ref_nll[i]);
    double *a = qid_malloc(qid_mul_size(n, sizeof *a), "divergence values");
    double *b = qid_malloc(qid_mul_size(n, sizeof *b), "divergence values");
    out->tokens = (int64_t)n;

    memcpy(a, kl, n * sizeof *a);
    mean_se(a, n, &out->kl, &out->kl_se);
    qsort(a, n, sizeof *a, cmp_double);
    out->kl_max = a[n - 1];
    out->kl_p99_9 = qid_percentile_sorted(a, n, 0.999);
    out->kl_p99 = qid_percentile_sorted(a, n, 0.99);
    out->kl_p95 = qid_percentile_sorted(a, n, 0.95);
    out->kl_p90 = qid_percentile_sorted(a, n, 0.90);
    out->kl_median = qid_percentile_sorted(a, n, 0.5);
    out->kl_p10 = qid_percentile_sorted(a, n, 0.10);
    out->kl_p5 = qid_percentile_sorted(a, n, 0.05);
    out->kl_p1 = qid_percentile_sorted(a, n, 0.01);

    size_t same = 0;
    for (size_t i = 0; i < n; i++)
        same += same_top[i] != 0;
    out->top1 = (double)same / (double)n;
    out->top1_se = n > 1 ? sqrt(out->top1 * (1 - out->top1) / (double)(n - 1)) : NAN;

    for (size_t i = 0; i < n; i++) {
        a[i] = exp(-nll[i]) - exp(-ref_nll[i]);
        b[i] = a[i] * a[i];
    }
    mean_se(a, n, &out->dp_mean, &out->dp_se);
    double mse, mse_se;
    mean_se(b, n, &mse, &mse_se);
    out->dp_rms = sqrt(mse);
    out->dp_rms_se = out->dp_rms > 0 ? 0.5 / out->dp_rms * mse_se : NAN;
    qsort(a, n, sizeof *a, cmp_double);
    out->dp_max = a[n - 1];
    out->dp_p99_9 = qid_percentile_sorted(a, n, 0.999);
    out->dp_p99 = qid_percentile_sorted(a, n, 0.99);
    out->dp_p95 = qid_percentile_sorted(a, n, 0.95);
    out->dp_p90 = qid_percentile_sorted(a, n, 0.90);
    out->dp_p75 = qid_percentile_sorted(a, n, 0.75);
    out->dp_median = qid_percentile_sorted(a, n, 0.5);
    out->dp_p25 = qid_percentile_sorted(a, n, 0.25);
    out->dp_p10 = qid_percentile_sorted(a, n, 0.10);
    out->dp_p5 = qid_percentile_sorted(a, n, 0.05);
    out->dp_p1 = qid_percentile_sorted(a, n, 0.01);
    out->dp_p0_1 = qid_percentile_sorted(a, n, 0.001);
    out->dp_min = a[0];

    for (size_t i = 0; i < n; i++)
        a[i] = nll[i] - ref_nll[i];
    mean_se(a, n, &out->ln_ppl_ratio, &out->ln_ppl_ratio_se);
    free(a);
    free(b);
    return QID_OK;
}
