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
#include "rng.h"
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
    free(r->token_nll);
    free(r->token_ref_nll);
    free(r->token_kl);
    free(r->token_same_top);
    r->window_nll = r->ref_window_nll = r->window_kl = NULL;
    r->token_nll = r->token_ref_nll = r->token_kl = NULL;
    r->token_same_top = NULL;
    r->window_tokens = NULL;
}

/* The divergence report over the windows w with window_tokens[w] > 0 (the
 * used ones) from r's per-token arrays. */
static int divergence_of(qid_eval_result *r, size_t per, qid_error *err)
{
    size_t used = 0;
    for (size_t w = 0; w < r->n_windows; w++)
        used += r->window_tokens[w] > 0;
    if (used == r->n_windows)
        return qid_divergence_compute(r->token_kl, r->token_nll, r->token_ref_nll, r->token_same_top,
                                      r->n_windows * per, &r->div, err);
    size_t n = qid_mul_size(used, per);
    double *kl = qid_malloc(n * sizeof *kl + 1, "divergence inputs"), *a = qid_malloc(n * sizeof *a + 1, "NLL"),
           *b = qid_malloc(n * sizeof *b + 1, "NLL");
    uint8_t *same = qid_malloc(n + 1, "top-1 flags");
    size_t k = 0;
    for (size_t w = 0; w < r->n_windows; w++) {
        if (r->window_tokens[w] <= 0) continue;
        memcpy(kl + k, r->token_kl + w * per, per * sizeof *kl);
        memcpy(a + k, r->token_nll + w * per, per * sizeof *a);
        memcpy(b + k, r->token_ref_nll + w * per, per * sizeof *b);
        memcpy(same + k, r->token_same_top + w * per, per);
        k += per;
    }
    int rc = qid_divergence_compute(kl, a, b, same, n, &r->div, err);
    free(kl);
    free(a);
    free(b);
    free(same);
    return rc;
}

/* Windows per pass: o->batch_windows, or the default (eval.h): the windows
 * of QID_EVAL_DEFAULT_BATCH_ROWS rows within the byte budget. */
static size_t batch_size(const qid_model_config *c, size_t n_windows, size_t seq_len, const qid_eval_opts *o)
{
    size_t bw = o->batch_windows;
    if (bw == 0) {
        size_t per = qid_model_batch_bytes(c, 1, seq_len) * (o->kl ? 2 : 1);
        size_t by_bytes = per ? QID_EVAL_DEFAULT_BATCH_BYTES / per : n_windows;
        size_t by_rows = (QID_EVAL_DEFAULT_BATCH_ROWS + seq_len - 1) / seq_len;
        bw = by_rows < by_bytes ? by_rows : by_bytes;
    }
    if (bw < 1) bw = 1;
    return bw < n_windows ? bw : n_windows;
}

/* The weights GPTQ left in each LINEAR tensor on the first pass (captured
 * after its activation hook), replayed on later passes (and blocks) by a
 * weight hook so the calibration runs once. Holds every LINEAR weight of
 * the model in float32 (keep_ok says whether that fits QID_EVAL_KEEP_BYTES). */
typedef struct wcache {
    qid_act_hook act;
    void *act_ctx;
    size_t n, cap;
    qid_tensor_spec *spec;
    float **w;
} wcache;

static int wcache_capture(void *ctx, const qid_tensor_spec *t, const float *x, size_t rows, size_t ldx, float *w,
                          qid_error *err)
{
    wcache *c = ctx;
    int rc = c->act(c->act_ctx, t, x, rows, ldx, w, err);
    if (rc || t->kind != QID_TENSOR_LINEAR) return rc;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->spec = qid_realloc(c->spec, c->cap * sizeof *c->spec, "weight cache");
        c->w = qid_realloc(c->w, c->cap * sizeof *c->w, "weight cache");
    }
    size_t n = (size_t)qid_tensor_numel(t);
    for (size_t i = 0; i < c->n; i++) /* a second capturing pass: the same weights again */
        if (c->spec[i].layer == t->layer && strcmp(c->spec[i].name, t->name) == 0) {
            memcpy(c->w[i], w, n * sizeof(float));
            return QID_OK;
        }
    c->spec[c->n] = *t;
    c->w[c->n] = qid_malloc(qid_mul_size(n, sizeof(float)), "quantized weights kept between blocks");
    memcpy(c->w[c->n], w, n * sizeof(float));
    c->n++;
    return QID_OK;
}

static int wcache_replay(void *ctx, const qid_tensor_spec *t, float *w, qid_error *err)
{
    const wcache *c = ctx;
    for (size_t i = 0; i < c->n; i++)
        if (c->spec[i].layer == t->layer && strcmp(c->spec[i].name, t->name) == 0) {
            memcpy(w, c->w[i], (size_t)qid_tensor_numel(t) * sizeof(float));
            return QID_OK;
        }
    if (t->kind == QID_TENSOR_LINEAR)
        return qid_error_set(err, QID_E_INVALID, "no quantized weights kept for '%s' of layer %d", t->name, t->layer);
    return QID_OK;
}

static void wcache_free(wcache *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->w[i]);
    free(c->w);
    free(c->spec);
}

/* 1 when the LINEAR weights of cfg fit QID_EVAL_KEEP_BYTES in float32. */
static int keep_ok(const qid_model_config *cfg)
{
    size_t n = 0, bytes = 0;
    qid_tensor_spec *t = qid_ckpt_tensors(cfg, &n);
    for (size_t i = 0; i < n; i++)
        if (t[i].kind == QID_TENSOR_LINEAR) bytes += (size_t)qid_tensor_numel(&t[i]) * sizeof(float);
    free(t);
    return bytes <= QID_EVAL_KEEP_BYTES;
}

int qid_eval_windows(qid_model *m, const uint32_t *tokens, size_t n_windows, size_t seq_len, const qid_eval_opts *o,
                     qid_eval_result *r, qid_error *err)
{
    memset(r, 0, sizeof *r);
    r->ref_loss = r->kl = r->qid = r->qid_se = NAN;
    qid_divergence_none(&r->div);
    r->n_windows = r->windows_used = n_windows;
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
        size_t nt = qid_mul_size(n_windows, per_window);
        r->token_nll = qid_calloc(nt, sizeof *r->token_nll, "per-prediction NLL");
        r->token_ref_nll = qid_calloc(nt, sizeof *r->token_ref_nll, "per-prediction reference NLL");
        r->token_kl = qid_calloc(nt, sizeof *r->token_kl, "per-prediction KL");
        r->token_same_top = qid_calloc(nt, 1, "per-prediction top-1 agreement");
    }
    const size_t bw = batch_size(qid_model_cfg(m), n_windows, seq_len, o);
    r->batch_windows = bw;
    /* several passes with calibration: keep the hook's weights after the
     * first (an adaptive caller's own cache when it passes one) */
    wcache local = {.act = o->act_hook, .act_ctx = o->act_ctx};
    wcache *keep = NULL;
    qid_eval_opts po = *o; /* the hooks of the pass */
    if (n_windows > bw && o->calib_tokens && o->act_hook && keep_ok(qid_model_cfg(m))) {
        keep = o->act_hook == wcache_capture ? (wcache *)o->act_ctx : &local;
        if (keep == &local) po.act_hook = wcache_capture, po.act_ctx = &local;
    }
    double t0 = qid_now();
    int rc = QID_OK;
    for (size_t w0 = 0; w0 < n_windows; w0 += bw) {
        size_t nb = n_windows - w0 < bw ? n_windows - w0 : bw;
        if (keep && w0 > 0) { /* calibration ran in the first pass */
            po.weight_hook = wcache_replay;
            po.weight_ctx = keep;
            po.act_hook = NULL;
            po.calib_tokens = NULL;
        }
        qid_forward_opts f = {.weight_hook = po.weight_hook,
                              .weight_ctx = po.weight_ctx,
                              .act_hook = po.act_hook,
                              .act_ctx = po.act_ctx,
                              .calib_tokens = po.calib_tokens,
                              .calib_windows = o->calib_windows,
                              .calib_seq_len = o->calib_seq_len,
                              .calib_hooks = o->calib_hooks,
                              .calib_chunk = o->calib_chunk,
                              .calib_scratch = o->calib_scratch,
                              .kl = o->kl,
                              .score_from = r->score_from,
                              .window_nll = r->window_nll + w0,
                              .ref_window_nll = o->kl ? r->ref_window_nll + w0 : NULL,
                              .window_kl = o->kl ? r->window_kl + w0 : NULL,
                              .ref_model = o->ref_model,
                              .token_nll = o->kl ? r->token_nll + w0 * per_window : NULL,
                              .token_ref_nll = o->kl ? r->token_ref_nll + w0 * per_window : NULL,
                              .token_kl = o->kl ? r->token_kl + w0 * per_window : NULL,
                              .token_same_top = o->kl ? r->token_same_top + w0 * per_window : NULL};
        rc = qid_model_forward(m, tokens + w0 * seq_len, nb, seq_len, &f, err);
        if (rc) {
            if (n_windows > nb) qid_error_wrap(err, rc, "windows %zu..%zu of %zu", w0, w0 + nb - 1, n_windows);
            break;
        }
    }
    wcache_free(&local);
    if (rc) return rc;
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
        rc = divergence_of(r, per_window, err);
        if (rc) return rc;
    }
    r->tokens_per_s = r->seconds > 0 ? (double)r->tokens_processed / r->seconds : 0.0;
    r->peak_rss_kb = peak_rss_kb();
    r->stats = *qid_model_get_stats(m);
    return QID_OK;
}

/* ---- adaptive evaluation ----------------------------------------------------- */

void qid_eval_window_order(size_t n, uint64_t seed, size_t *order)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qid_rng rng;
    qid_rng_seed(&rng, seed, QID_EVAL_ORDER_STREAM);
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)qid_rng_below(&rng, (uint64_t)i + 1);
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

int qid_eval_stop_done(const qid_eval_stop *s, size_t used, size_t n, double qid, double se)
{
    if (used >= n) return 1;
    if (used < s->min_windows || !isfinite(se) || !isfinite(qid)) return 0;
    double target = s->target_se > s->target_rse * fabs(qid) ? s->target_se : s->target_rse * fabs(qid);
    return se < target;
}

size_t qid_eval_stop_replay(const qid_eval_stop *s, const double *nll_a, const double *nll_b, const int64_t *counts,
                            size_t n, const size_t *order, qid_eval_paired *out)
{
    double *a = qid_malloc(n * sizeof *a + 1, "replay"), *b = qid_malloc(n * sizeof *b + 1, "replay");
    int64_t *c = qid_malloc(n * sizeof *c + 1, "replay");
    size_t used = 0, block = s->block ? s->block : 1;
    memset(out, 0, sizeof *out);
    while (used < n) {
        size_t nb = n - used < block ? n - used : block;
        for (size_t j = used; j < used + nb; j++) {
            a[j] = nll_a[order[j]];
            b[j] = nll_b[order[j]];
            c[j] = counts[order[j]];
        }
        used += nb;
        if (qid_eval_paired_diff(a, b, c, used, out, NULL)) continue;
        if (qid_eval_stop_done(s, used, n, out->diff, out->se)) break;
    }
    free(a);
    free(b);
    free(c);
    return used;
}

/* Adaptive evaluation of ids (n windows of L) against o->base_nll: blocks
 * in the seeded order until the rule of o->stop holds. */
static int eval_adaptive(qid_model *m, const uint32_t *ids, size_t n, size_t L, const qid_eval_opts *o,
                         qid_eval_result *r, qid_error *err)
{
    const qid_eval_stop *s = o->stop;
    memset(r, 0, sizeof *r);
    r->ref_loss = r->kl = r->qid = r->qid_se = NAN;
    qid_divergence_none(&r->div);
    if (!o->base_nll || o->base_windows != n)
        return qid_error_set(err, QID_E_INVALID, "adaptive evaluation of %zu windows needs the baseline's %zu", n,
                             o->base_nll ? o->base_windows : 0);
    if (s->min_windows < 2 || s->block < 1 || !(s->target_se >= 0) || !(s->target_rse >= 0))
        return qid_error_set(err, QID_E_INVALID, "stopping rule: min_windows %zu (>= 2), block %zu (>= 1)",
                             s->min_windows, s->block);
    const size_t score_from = o->second_half ? L / 2 : 0, per = qid_scored_per_window(L, score_from);
    size_t *order = qid_malloc(n * sizeof *order, "window order");
    qid_eval_window_order(n, s->seed, order);
    r->n_windows = n;
    r->seq_len = L;
    r->score_from = score_from;
    r->window_nll = qid_malloc(n * sizeof *r->window_nll, "per-window NLL");
    r->window_tokens = qid_calloc(n, sizeof *r->window_tokens, "per-window token counts");
    for (size_t w = 0; w < n; w++)
        r->window_nll[w] = NAN;
    const size_t nt = qid_mul_size(n, per);
    if (o->kl) {
        r->ref_window_nll = qid_calloc(n, sizeof *r->ref_window_nll, "per-window reference NLL");
        r->window_kl = qid_calloc(n, sizeof *r->window_kl, "per-window KL");
        r->token_nll = qid_calloc(nt, sizeof *r->token_nll, "per-prediction NLL");
        r->token_ref_nll = qid_calloc(nt, sizeof *r->token_ref_nll, "per-prediction reference NLL");
        r->token_kl = qid_calloc(nt, sizeof *r->token_kl, "per-prediction KL");
        r->token_same_top = qid_calloc(nt, 1, "per-prediction top-1 agreement");
    }
    qid_eval_opts sub = *o;
    sub.stop = NULL;
    sub.base_nll = NULL;
    wcache wc = {.act = o->act_hook, .act_ctx = o->act_ctx};
    const int cache = o->calib_tokens && o->act_hook && keep_ok(qid_model_cfg(m));
    if (cache) sub.act_hook = wcache_capture, sub.act_ctx = &wc;
    double *a = qid_malloc(n * sizeof *a, "paired baseline"), *b = qid_malloc(n * sizeof *b, "paired NLL");
    int64_t *c = qid_malloc(n * sizeof *c, "paired counts");
    uint32_t *buf = qid_malloc(qid_mul_size(qid_mul_size(s->block < n ? s->block : n, L), sizeof *buf), "block");
    size_t used = 0;
    int rc = QID_OK;
    qid_eval_paired p = {0};
    while (used < n) {
        size_t nb = n - used < s->block ? n - used : s->block;
        for (size_t j = 0; j < nb; j++)
            memcpy(buf + j * L, ids + order[used + j] * L, L * sizeof *buf);
        qid_eval_result br;
        rc = qid_eval_windows(m, buf, nb, L, &sub, &br, err);
        if (rc) {
            qid_eval_result_free(&br);
            break;
        }
        for (size_t j = 0; j < nb; j++) {
            size_t w = order[used + j];
            r->window_nll[w] = br.window_nll[j];
            r->window_tokens[w] = br.window_tokens[j];
            a[used + j] = o->base_nll[w];
            b[used + j] = br.window_nll[j];
            c[used + j] = br.window_tokens[j];
            if (o->kl) {
                r->ref_window_nll[w] = br.ref_window_nll[j];
                r->window_kl[w] = br.window_kl[j];
                memcpy(r->token_nll + w * per, br.token_nll + j * per, per * sizeof(double));
                memcpy(r->token_ref_nll + w * per, br.token_ref_nll + j * per, per * sizeof(double));
                memcpy(r->token_kl + w * per, br.token_kl + j * per, per * sizeof(double));
                memcpy(r->token_same_top + w * per, br.token_same_top + j * per, per);
            }
        }
        r->seconds += br.seconds;
        r->batch_windows = br.batch_windows;
        qid_eval_result_free(&br);
        used += nb;
        if (cache && used == nb) { /* GPTQ ran once: replay its weights from now on */
            sub.weight_hook = wcache_replay;
            sub.weight_ctx = &wc;
            sub.act_hook = NULL;
            sub.calib_tokens = NULL;
            sub.calib_windows = 0;
        }
        if ((rc = qid_eval_paired_diff(a, b, c, used, &p, err))) break;
        if (qid_eval_stop_done(s, used, n, p.diff, p.se)) break;
    }
    if (rc == QID_OK) {
        double sum = 0, ref_sum = 0, kl_sum = 0;
        for (size_t w = 0; w < n; w++)
            if (r->window_tokens[w] > 0) {
                sum += r->window_nll[w];
                if (o->kl) ref_sum += r->ref_window_nll[w], kl_sum += r->window_kl[w];
            }
        r->windows_used = used;
        r->tokens_scored = (int64_t)(per * used);
        r->tokens_processed = (int64_t)(L * used);
        r->loss = sum / (double)r->tokens_scored;
        r->perplexity = exp(r->loss);
        r->qid = p.diff;
        r->qid_se = p.se;
        if (o->kl) {
            r->ref_loss = ref_sum / (double)r->tokens_scored;
            r->kl = kl_sum / (double)r->tokens_scored;
            rc = divergence_of(r, per, err);
        }
        r->tokens_per_s = r->seconds > 0 ? (double)r->tokens_processed / r->seconds : 0.0;
        r->peak_rss_kb = peak_rss_kb();
        r->stats = *qid_model_get_stats(m);
    }
    wcache_free(&wc);
    free(order);
    free(a);
    free(b);
    free(c);
    free(buf);
    return rc;
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
    rc = o->stop ? eval_adaptive(m, ids, n, L, o, r, err) : qid_eval_windows(m, ids, n, L, o, r, err);
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
