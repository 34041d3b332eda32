/* divergence.h - the divergence report of a quantized model against its
 * 16-bit reference, as llama.cpp's `llama-perplexity --kl-divergence`
 * prints it, computed exactly (float64) from per-token values: KL
 * divergence (mean with SE, median, percentiles, max), the top-1 agreement
 * ("same top p") with its SE, Delta-p = p_Q(next token) - p_ref(next token)
 * (mean with SE, RMS with SE, percentiles), and ln(PPL(Q)/PPL(ref)) with
 * its SE.
 *
 * Definitions (n scored predictions t; values per prediction):
 *   KL_t   = sum_v p_ref(v) (ln p_ref(v) - ln p_Q(v))
 *   same_t = 1 when argmax p_ref = argmax p_Q (first index of the maximum)
 *   dp_t   = exp(-nll_Q,t) - exp(-nll_ref,t)
 *   mean(x) = sum x / n;  SE(x) = sqrt(sum (x - mean)^2 / n / (n - 1))
 *   kl = mean(KL), kl_se = SE(KL); top1 = mean(same), top1_se =
 *   sqrt(top1 (1 - top1) / (n - 1)); dp_mean, dp_se likewise;
 *   dp_rms = sqrt(mean(dp^2)), dp_rms_se = SE(dp^2) / (2 dp_rms);
 *   ln_ppl_ratio = mean(nll_Q - nll_ref), ln_ppl_ratio_se = SE(nll_Q - nll_ref)
 *   (llama.cpp's sqrt(se_Q^2 + se_ref^2 - 2 cov), the same number);
 *   a percentile at fraction f of n sorted values is the linear
 *   interpolation at position f (n - 1) (NumPy's default; llama.cpp's),
 *   the median the one at 0.5.
 * llama.cpp gives SEs of 0 below 11 values; here they are NaN below 2.
 * The SEs treat tokens as independent (as llama.cpp does); qid's own QiD
 * SE (eval.h) is over windows and is the one to trust.
 *
 * Does not: run models (model.c makes the per-token values), store rows
 * (results.h has the columns). */
#ifndef QID_DIVERGENCE_H
#define QID_DIVERGENCE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct qid_divergence {
    int64_t tokens; /* predictions the report is over (0: not computed) */
    double kl, kl_se, kl_median, kl_p99_9, kl_p99, kl_p95, kl_p90, kl_p10, kl_p5, kl_p1, kl_max;
    double top1, top1_se;
    double dp_mean, dp_se, dp_rms, dp_rms_se;
    double dp_max, dp_p99_9, dp_p99, dp_p95, dp_p90, dp_p75, dp_median, dp_p25, dp_p10, dp_p5, dp_p1, dp_p0_1, dp_min;
    double ln_ppl_ratio, ln_ppl_ratio_se;
} qid_divergence;

/* Every statistic NaN, tokens 0 (not computed). */
void qid_divergence_none(qid_divergence *d);

/* The report over n predictions: kl[i], nll[i] (quantized), ref_nll[i]
 * (reference) and same_top[i] (0/1) of prediction i. Fills *out. Errors:
 * QID_E_INVALID when n is 0 or a value is not finite (naming the index). */
int qid_divergence_compute(const double *kl, const double *nll, const double *ref_nll, const uint8_t *same_top,
                           size_t n, qid_divergence *out, qid_error *err);

/* The percentile at fraction f (0..1) of n >= 1 ascending values, by linear
 * interpolation at f (n - 1). */
double qid_percentile_sorted(const double *sorted, size_t n, double f);

#endif
