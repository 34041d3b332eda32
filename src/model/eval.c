/* eval.c - evaluation metrics over many windows (eval.h): batching the
 * windows into streamed passes, per-window NLL and counts, loss and
 * perplexity, the paired difference and its standard error, reading and
 * re-cutting token sets.
 *
 * Does not: run the network itself (model.c), quantize (the hooks), write
 * results files (the sweep does), or the `qid eval` command (cmd_eval.c). */
#include "eval.h"

#include <cblas.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "checkpoint.h"
#include "tokens.h"

static long peak_rss_kb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

void qid_eval_result_free(qid_eval_result *r)
{
    if (!r) return;
    free(r->window_nll);
    free(r->window_tokens);
    free(r->ref_window_nll);
    free(r->window_kl);
    r->window_nll = r->ref_window_nll = r->window_kl = NULL;
    r->window_tokens = NULL;
}

/* Windows per pass: o->batch_windows, or as many as fit the default budget. */
static size_t batch_size(const qid_model_config *c, size_t n_windows, size_t seq_len, const qid_eval_opts *o)
{
    size_t bw = o->batch_windows;
    if (bw == 0) {
        size_t per = qid_model_batch_bytes(c, 1, seq_len) * (o->kl ? 2 : 1);
        bw = per ? QID_EVAL_DEFAULT_BATCH_BYTES / per : n_windows;
    }
    if (bw < 1) bw = 1;
    return bw < n_windows ? bw : n_windows;
}

int qid_eval_windows(qid_model *m, const uint32_t *tokens, size_t n_windows, size_t seq_len, const qid_eval_opts *o,
                     qid_eval_result *r, qid_error *err)
{
    memset(r, 0, sizeof *r);
    r->ref_loss = r->kl = NAN;
    r->n_windows = n_windows;
    r->seq_len = seq_len;
    r->score_from = o->second_half ? seq_len / 2 : 0;
    const size_t per_window = qid_scored_per_window(seq_len, r->score_from);
    if (n_windows == 0 || per_window == 0)
        return qid_error_set(err, QID_E_INVALID, "nothing to score: %zu windows of %zu tokens%s", n_windows, seq_len,
                             o->second_half ? " (second half only)" : "");
    if (o->threads > 0) {
        omp_set_num_threads(o->threads);
#ifdef OPENBLAS_VERSION
        openblas_set_num_threads(o->threads);
#endif
    }
    r->window_nll = qid_calloc(n_windows, sizeof *r->window_nll, "per-window NLL");
    r->window_tokens = qid_calloc(n_windows, sizeof *r->window_tokens, "per-window token counts");
    if (o->kl) {
        r->ref_window_nll = qid_calloc(n_windows, sizeof *r->ref_window_nll, "per-window reference NLL");
        r->window_kl = qid_calloc(n_windows, sizeof *r->window_kl, "per-window KL");
    }
    const size_t bw = batch_size(qid_model_cfg(m), n_windows, seq_len, o);
    r->batch_windows = bw;
    double t0 = qid_now();
    for (size_t w0 = 0; w0 < n_windows; w0 += bw) {
        size_t nb = n_windows - w0 < bw ? n_windows - w0 : bw;
        qid_forward_opts f = {.weight_hook = o->weight_hook,
                              .weight_ctx = o->weight_ctx,
                              .act_hook = o->act_hook,
                              .act_ctx = o->act_ctx,
                              .calib_tokens = o->calib_tokens,
                              .calib_windows = o->calib_windows,
                              .calib_seq_len = o->calib_seq_len,
                              .calib_hooks = o->calib_hooks,
                              .calib_chunk = o->calib_chunk,
                              .calib_scratch = o->calib_scratch,
                              .kl = o->kl,
                              .score_from = r->score_from,
                              .window_nll = r->window_nll + w0,
                              .ref_window_nll = o->kl ? r->ref_window_nll + w0 : NULL,
                              .window_kl = o->kl ? r->window_kl + w0 : NULL};
        int rc = qid_model_forward(m, tokens + w0 * seq_len, nb, seq_len, &f, err);
        if (rc) {
            if (n_windows > nb) qid_error_wrap(err, rc, "windows %zu..%zu of %zu", w0, w0 + nb - 1, n_windows);
            return rc;
        }
    }
    r->seconds = qid_now() - t0;
    double sum = 0.0, ref_sum = 0.0, kl_sum = 0.0;
    for (size_t w = 0; w < n_windows; w++) {
        r->window_tokens[w] = (int64_t)per_window;
        sum += r->window_nll[w];
        if (o->kl) {
            ref_sum += r->ref_window_nll[w];
            kl_sum += r->window_kl[w];
        }
    }
    r->tokens_scored = (int64_t)(per_window * n_windows);
    r->tokens_processed = (int64_t)(seq_len * n_windows);
    r->loss = sum / (double)r->tokens_scored;
    r->perplexity = exp(r->loss);
    if (o->kl) {
        r->ref_loss = ref_sum / (double)r->tokens_scored;
        r->kl = kl_sum / (double)r->tokens_scored;
    }
    r->tokens_per_s = r->seconds > 0 ? (double)r->tokens_processed / r->seconds : 0.0;
    r->peak_rss_kb = peak_rss_kb();
    r->stats = *qid_model_get_stats(m);
    return QID_OK;
}

int qid_eval_set(qid_model *m, const qid_tokens *tk, const qid_eval_opts *o, qid_eval_result *r, qid_error *err)
{
    memset(r, 0, sizeof *r);
    const char *ckpt = qid_model_ckpt(m)->path, *tokens_path = tk->path;
    const qid_model_config *c = qid_model_cfg(m);
    uint32_t *ids = NULL;
    int rc;
    if (tk->meta.vocab_size > c->vocab_size) {
        rc =
            qid_error_set(err, QID_E_INVALID,
                          "token set '%s' has a vocabulary of %" PRId64 " ids, more than the %" PRId64 " of model '%s'",
                          tokens_path, tk->meta.vocab_size, c->vocab_size, ckpt);
        goto done;
    }
    const size_t L0 = (size_t)tk->meta.seq_len, W0 = (size_t)tk->meta.n_windows;
    const size_t L = o->seq_len ? o->seq_len : L0;
    if ((int64_t)L > c->max_seq_len) {
        rc = qid_error_set(err, QID_E_INVALID,
                           "windows of %zu tokens are longer than the context (max_seq_len %" PRId64 ") of model '%s'",
                           L, c->max_seq_len, ckpt);
        goto done;
    }
    size_t n = qid_mul_size(W0, L0) / L;
    if (o->max_windows && o->max_windows < n) n = o->max_windows;
    if (n == 0) {
        rc = qid_error_set(err, QID_E_INVALID, "token set '%s' holds %zu tokens, fewer than one window of %zu",
                           tokens_path, W0 * L0, L);
        goto done;
    }
    const size_t need = qid_mul_size(n, L), stored = (need + L0 - 1) / L0;
    ids = qid_malloc(qid_mul_size(qid_mul_size(stored, L0), sizeof *ids), "evaluation tokens");
    if ((rc = qid_tokens_read(tk, 0, stored, ids, err))) goto done;
    rc = qid_eval_windows(m, ids, n, L, o, r, err);
done:
    if (rc) qid_error_wrap(err, rc, "cannot evaluate '%s' on '%s'", ckpt, tokens_path);
    free(ids);
    return rc;
}

int qid_eval_file(const char *ckpt, const char *tokens_path, const qid_eval_opts *o, qid_eval_result *r, qid_error *err)
{
    memset(r, 0, sizeof *r);
    qid_tokens tk;
    qid_model *m = NULL;
    int rc = qid_tokens_open(tokens_path, &tk, err);
    if (rc) return rc;
    if ((rc = qid_model_open(ckpt, &m, err)) == QID_OK) rc = qid_eval_set(m, &tk, o, r, err);
    qid_model_free(m);
    qid_tokens_close(&tk);
    return rc;
}

int qid_eval_paired_diff(const double *nll_a, const double *nll_b, const int64_t *counts, size_t n,
                         qid_eval_paired *out, qid_error *err)
{
    memset(out, 0, sizeof *out);
    if (n == 0) return qid_error_set(err, QID_E_INVALID, "paired comparison of no windows");
    double sa = 0.0, sb = 0.0, sn = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (counts[i] <= 0 || !isfinite(nll_a[i]) || !isfinite(nll_b[i]))
            return qid_error_set(err, QID_E_INVALID, "window %zu: count %" PRId64 ", NLL %g and %g", i, counts[i],
                                 nll_a[i], nll_b[i]);
        sa += nll_a[i];
        sb += nll_b[i];
        sn += (double)counts[i];
    }
    out->n_windows = n;
    out->tokens = (int64_t)sn;
    out->loss_a = sa / sn;
    out->loss_b = sb / sn;
    double diff = 0.0;
    for (size_t i = 0; i < n; i++)
        diff += nll_b[i] - nll_a[i];
    diff /= sn;
    out->diff = diff;
    if (n < 2) {
        out->se = NAN;
        return QID_OK;
    }
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = (nll_b[i] - nll_a[i]) - diff * (double)counts[i];
        ss += e * e;
    }
    out->se = sqrt((double)n / (double)(n - 1) * ss) / sn;
    return QID_OK;
}
