/* corpus.c - the seeded "markov-zipf" synthetic language of corpus.h:
 * its parameters, tables (Zipf unigram, sparse successor sets per order),
 * the exact stationary distribution over contexts and entropy rate, and the
 * streams that sample from it.
 *
 * Does not: write files (corpus_write.c stages and writes the token sets),
 * read the command line (cmd_corpus.c), or estimate anything: every entropy
 * here is a finite exact sum over the source's tables. */
#include "corpus.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

/* Power iteration: stop when |pi' - pi|_1 <= PI_TOL; fail when it is still
 * above PI_FAIL after PI_MAX_ITER steps. */
#define PI_TOL      1e-15
#define PI_FAIL     1e-12
#define PI_MAX_ITER 20000
/* Rejected draws of one successor before the exact scan of the rest. */
#define MAX_REJECTS 32

/* ---- parameters --------------------------------------------------------- */

void qid_corpus_default_mix(int order, double mix[QID_CORPUS_MAX_ORDER + 1])
{
    for (int j = 0; j <= QID_CORPUS_MAX_ORDER; j++)
        mix[j] = 0;
    if (order < 1 || order > QID_CORPUS_MAX_ORDER) return;
    mix[0] = 0.05;
    if (order == 1) {
        mix[1] = 0.95;
        return;
    }
    for (int j = 1; j < order; j++)
        mix[j] = 0.55 / (order - 1);
    mix[order] = 0.4;
}

void qid_corpus_params_default(qid_corpus_params *p)
{
    memset(p, 0, sizeof *p);
    p->vocab = 128;
    p->order = 2;
    p->branching = 8;
    p->zipf = 1.0;
    qid_corpus_default_mix(p->order, p->mix);
    p->seed = 1;
}

int qid_corpus_params_check(const qid_corpus_params *p, qid_error *err)
{
    if (p->vocab < 2 || p->vocab > QID_CORPUS_MAX_VOCAB)
        return qid_error_set(err, QID_E_INVALID, "--vocab %" PRId64 " is outside 2..%d", p->vocab,
                             QID_CORPUS_MAX_VOCAB);
    if (p->order < 1 || p->order > QID_CORPUS_MAX_ORDER)
        return qid_error_set(err, QID_E_INVALID, "--order %d is outside 1..%d", p->order, QID_CORPUS_MAX_ORDER);
    if (p->branching < 1 || p->branching > p->vocab)
        return qid_error_set(err, QID_E_INVALID, "--branching %" PRId64 " is outside 1..%" PRId64 " (the vocabulary)",
                             p->branching, p->vocab);
    if (!(p->zipf >= 0 && p->zipf <= QID_CORPUS_MAX_ZIPF))
        return qid_error_set(err, QID_E_INVALID, "--zipf %g is outside 0..%g", p->zipf, QID_CORPUS_MAX_ZIPF);
    if (p->seed > (uint64_t)INT64_MAX)
        return qid_error_set(err, QID_E_INVALID, "--seed %" PRIu64 " is above %" PRId64, p->seed, INT64_MAX);
    double sum = 0;
    for (int j = 0; j <= p->order; j++) {
        if (!(p->mix[j] >= 0 && isfinite(p->mix[j])))
            return qid_error_set(err, QID_E_INVALID, "--mix weight %d is %g; weights must be finite and >= 0", j,
                                 p->mix[j]);
        sum += p->mix[j];
    }
    if (!(sum > 0)) return qid_error_set(err, QID_E_INVALID, "--mix weights are all zero");
    if (p->mix[0] == 0 && p->mix[p->order] == 0)
        return qid_error_set(err, QID_E_INVALID,
                             "--mix gives no weight to the unigram (w_0) nor to order %d: the source would not be "
                             "of order %d",
                             p->order, p->order);
    size_t ctx = 1, entries = 0;
    for (int j = 1; j <= p->order; j++) {
        if (ctx > QID_CORPUS_MAX_CONTEXTS / (size_t)p->vocab)
            return qid_error_set(err, QID_E_INVALID,
                                 "--vocab %" PRId64 " --order %d has more than %zu contexts (lower --vocab or --order)",
                                 p->vocab, p->order, QID_CORPUS_MAX_CONTEXTS);
        ctx *= (size_t)p->vocab;
        if (ctx > QID_CORPUS_MAX_ENTRIES / (size_t)p->branching ||
            entries + ctx * (size_t)p->branching > QID_CORPUS_MAX_ENTRIES)
            return qid_error_set(err, QID_E_INVALID,
                                 "--vocab %" PRId64 " --order %d --branching %" PRId64
                                 " needs more than %zu successor entries (lower one of them)",
                                 p->vocab, p->order, p->branching, QID_CORPUS_MAX_ENTRIES);
        entries += ctx * (size_t)p->branching;
    }
    return QID_OK;
}

void qid_corpus_params_format(const qid_corpus_params *p, char *buf, size_t len)
{
    char z[32], mix[QID_CORPUS_MAX_ORDER + 1][32];
    qid_format_real(p->zipf, z, sizeof z);
    for (int j = 0; j <= p->order && j <= QID_CORPUS_MAX_ORDER; j++)
        qid_format_real(p->mix[j], mix[j], sizeof mix[j]);
    size_t n = (size_t)snprintf(buf, len, "--vocab %" PRId64 " --order %d --branching %" PRId64 " --zipf %s --mix ",
                                p->vocab, p->order, p->branching, z);
    for (int j = 0; j <= p->order && j <= QID_CORPUS_MAX_ORDER && n < len; j++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", j ? "," : "", mix[j]);
    if (n < len) snprintf(buf + n, len - n, " --seed %" PRIu64, p->seed);
}

/* ---- sums and tables ----------------------------------------------------- */

/* Neumaier's compensated sum. */
typedef struct ksum {
    double s, c;
} ksum;

static void ksum_add(ksum *k, double x)
{
    double t = k->s + x;
    if (fabs(k->s) >= fabs(x))
        k->c += (k->s - t) + x;
    else
        k->c += (x - t) + k->s;
    k->s = t;
}

static double ksum_value(const ksum *k) { return k->s + k->c; }

static double xlogx(double x) { return x > 0 ? x * log(x) : 0.0; }

/* -sum q log q over n entries. */
static double entropy_of(const double *q, size_t n)
{
    ksum h = {0, 0};
    for (size_t i = 0; i < n; i++)
        ksum_add(&h, -xlogx(q[i]));
    return ksum_value(&h);
}

/* Cumulative sums of p[0..n) into cdf. */
static void make_cdf(const double *p, double *cdf, size_t n)
{
    ksum s = {0, 0};
    for (size_t i = 0; i < n; i++) {
        ksum_add(&s, p[i]);
        cdf[i] = ksum_value(&s);
    }
}

/* The entry a uniform u in [0, 1) picks from a cumulative table of n
 * entries: the smallest i with u * cdf[n-1] < cdf[i]; entries of zero width
 * are never picked. */
static size_t cdf_pick(const double *cdf, size_t n, double u)
{
    double t = u * cdf[n - 1];
    size_t lo = 0, hi = n - 1;
    if (!(t < cdf[hi])) { /* rounding: take the last entry of positive width */
        while (hi > 0 && cdf[hi - 1] == cdf[hi])
            hi--;
        return hi;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t < cdf[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* b distinct tokens drawn without replacement with probabilities
 * proportional to p0: rejection of repeats, then (after MAX_REJECTS in a
 * row) an exact scan of the tokens not yet drawn. chosen[V] is all zero on
 * entry and on return. */
static void draw_successors(const qid_corpus_source *src, qid_rng *rng, uint8_t *chosen, uint16_t *out)
{
    size_t V = src->V, b = src->b;
    for (size_t r = 0; r < b; r++) {
        size_t x = V;
        for (int t = 0; t < MAX_REJECTS && x == V; t++) {
            size_t y = cdf_pick(src->p0_cdf, V, qid_rng_uniform(rng));
            if (!chosen[y]) x = y;
        }
        if (x == V) {
            ksum rest = {0, 0};
            for (size_t y = 0; y < V; y++)
                if (!chosen[y]) ksum_add(&rest, src->p0[y]);
            double t = qid_rng_uniform(rng) * ksum_value(&rest), acc = 0;
            for (size_t y = 0; y < V; y++) {
                if (chosen[y] || src->p0[y] <= 0) continue;
                x = y;
                acc += src->p0[y];
                if (t < acc) break;
            }
        }
        chosen[x] = 1;
        out[r] = (uint16_t)x;
    }
    for (size_t r = 0; r < b; r++)
        chosen[out[r]] = 0;
}

size_t qid_corpus_next_ctx(const qid_corpus_source *src, size_t ctx, uint32_t x)
{
    return (ctx % src->pow[src->k - 1]) * src->V + x;
}

double qid_corpus_prob(const qid_corpus_source *src, size_t ctx, uint32_t x)
{
    double p = src->w[0] * src->p0[x];
    for (int j = 1; j <= src->k; j++) {
        if (src->w[j] == 0) continue;
        const uint16_t *row = src->succ[j] + (ctx % src->pow[j]) * src->b;
        for (size_t r = 0; r < src->b; r++)
            if (row[r] == x) p += src->w[j] * src->rank_w[r];
    }
    return p;
}

/* ---- the chain over contexts ------------------------------------------- */

/* out = pi P (not normalised). m is scratch of V^(k-1) doubles. */
static void apply_chain(const qid_corpus_source *src, const double *pi, double *out, double *m)
{
    size_t C = src->n_ctx, V = src->V, b = src->b, D = src->pow[src->k - 1];
    int k = src->k;
    memset(out, 0, C * sizeof *out);
    if (src->w[0] > 0) {
        /* the unigram part: out[h V + x] = w_0 p0[x] sum_a pi[a D + h] */
        memset(m, 0, D * sizeof *m);
        for (size_t c = 0; c < C; c++)
            m[c % D] += pi[c];
        for (size_t h = 0; h < D; h++)
            for (size_t x = 0; x < V; x++)
                out[h * V + x] = src->w[0] * src->p0[x] * m[h];
    }
    for (size_t c = 0; c < C; c++) {
        double p = pi[c];
        if (p == 0) continue;
        double *dst = out + (c % D) * V;
        for (int j = 1; j <= k; j++) {
            if (src->w[j] == 0) continue;
            const uint16_t *row = src->succ[j] + (c % src->pow[j]) * b;
            double pw = p * src->w[j];
            for (size_t r = 0; r < b; r++)
                dst[row[r]] += pw * src->rank_w[r];
        }
    }
}

static size_t gcd_size(size_t a, size_t b)
{
    while (b) {
        size_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Calls fn(ctx, next, arg) for every edge of positive probability out of ctx
 * when w_0 = 0 (the sparse successors only). Returns the first non-zero fn. */
typedef int (*edge_fn)(size_t from, size_t to, void *arg);

static int for_each_edge(const qid_corpus_source *src, size_t c, edge_fn fn, void *arg)
{
    size_t base = (c % src->pow[src->k - 1]) * src->V;
    for (int j = 1; j <= src->k; j++) {
        if (src->w[j] == 0) continue;
        const uint16_t *row = src->succ[j] + (c % src->pow[j]) * src->b;
        for (size_t r = 0; r < src->b; r++) {
            int rc = fn(c, base + row[r], arg);
            if (rc) return rc;
        }
    }
    return 0;
}

typedef struct bfs {
    int64_t *level;
    uint32_t *queue;
    size_t tail, g;
    uint8_t *reach; /* backward: can reach context 0 */
} bfs;

static int bfs_visit(size_t from, size_t to, void *arg)
{
    bfs *s = arg;
    if (s->level[to] < 0) {
        s->level[to] = s->level[from] + 1;
        s->queue[s->tail++] = (uint32_t)to;
    }
    return 0;
}

static int period_visit(size_t from, size_t to, void *arg)
{
    bfs *s = arg;
    int64_t d = s->level[from] + 1 - s->level[to];
    s->g = gcd_size(s->g, (size_t)(d < 0 ? -d : d));
    return 0;
}

static int reach_visit(size_t from, size_t to, void *arg)
{
    bfs *s = arg;
    return s->reach[to];
}

/* With w_0 = 0 the chain over contexts is sparse: checks that every context
 * reaches every other (forward search from context 0, then repeated sweeps
 * for "reaches context 0") and that the gcd of the cycle lengths is 1 (from
 * the BFS levels: gcd over edges u->v of level(u) + 1 - level(v)). */
static int check_chain(const qid_corpus_source *src, qid_error *err)
{
    size_t C = src->n_ctx;
    char params[256];
    qid_corpus_params_format(&src->p, params, sizeof params);
    bfs s = {0};
    s.level = qid_malloc(qid_mul_size(C, sizeof *s.level), "BFS levels over contexts");
    s.queue = qid_malloc(qid_mul_size(C, sizeof *s.queue), "a BFS queue over contexts");
    s.reach = qid_calloc(C, 1, "reachability of contexts");
    for (size_t c = 0; c < C; c++)
        s.level[c] = -1;
    s.level[0] = 0;
    s.queue[s.tail++] = 0;
    for (size_t head = 0; head < s.tail; head++)
        for_each_edge(src, s.queue[head], bfs_visit, &s);
    int rc = QID_OK;
    if (s.tail < C) {
        size_t c = 0;
        while (s.level[c] >= 0)
            c++;
        rc = qid_error_set(err, QID_E_INVALID,
                           "the chain of '%s' is not irreducible: context %zu cannot be reached from context 0 "
                           "(give the unigram weight w_0 in --mix a positive value)",
                           params, c);
        goto done;
    }
    s.reach[0] = 1;
    for (size_t changed = 1; changed;) {
        changed = 0;
        for (size_t c = 0; c < C; c++)
            if (!s.reach[c] && for_each_edge(src, c, reach_visit, &s)) {
                s.reach[c] = 1;
                changed++;
            }
    }
    for (size_t c = 0; c < C; c++)
        if (!s.reach[c]) {
            rc = qid_error_set(err, QID_E_INVALID,
                               "the chain of '%s' is not irreducible: context %zu cannot reach context 0 "
                               "(give the unigram weight w_0 in --mix a positive value)",
                               params, c);
            goto done;
        }
    for (size_t c = 0; c < C; c++)
        for_each_edge(src, c, period_visit, &s);
    if (s.g != 1)
        rc = qid_error_set(err, QID_E_INVALID,
                           "the chain of '%s' is periodic (period %zu): it has no limiting distribution "
                           "(give the unigram weight w_0 in --mix a positive value)",
                           params, s.g);
done:
    free(s.level);
    free(s.queue);
    free(s.reach);
    return rc;
}

/* Power iteration from the uniform distribution, normalised every step. */
static int stationary(qid_corpus_source *src, qid_error *err)
{
    size_t C = src->n_ctx;
    double *next = qid_malloc(qid_mul_size(C, sizeof *next), "the next power-iteration vector");
    double *m = qid_malloc(qid_mul_size(src->pow[src->k - 1], sizeof *m), "context marginals");
    double *pi = src->pi, diff = INFINITY;
    for (size_t c = 0; c < C; c++)
        pi[c] = 1.0 / (double)C;
    int it = 0;
    while (it < PI_MAX_ITER && diff > PI_TOL) {
        apply_chain(src, pi, next, m);
        ksum total = {0, 0}, d = {0, 0};
        for (size_t c = 0; c < C; c++)
            ksum_add(&total, next[c]);
        double inv = 1.0 / ksum_value(&total);
        for (size_t c = 0; c < C; c++) {
            next[c] *= inv;
            ksum_add(&d, fabs(next[c] - pi[c]));
        }
        memcpy(pi, next, C * sizeof *pi);
        diff = ksum_value(&d);
        it++;
    }
    apply_chain(src, pi, next, m);
    ksum r = {0, 0};
    for (size_t c = 0; c < C; c++)
        ksum_add(&r, fabs(next[c] - pi[c]));
    src->iterations = it;
    src->residual = ksum_value(&r);
    free(next);
    free(m);
    if (!(diff <= PI_FAIL)) {
        char params[256];
        qid_corpus_params_format(&src->p, params, sizeof params);
        return qid_error_set(err, QID_E_NUMERIC,
                             "the stationary distribution of '%s' did not converge in %d iterations "
                             "(|pi P - pi| = %.3g; give the unigram weight w_0 in --mix a larger value)",
                             params, it, diff);
    }
    return QID_OK;
}

/* h[k] = sum_c pi(c) H(P(.|c)) and h[i] = H(last i+1 tokens) - H(last i),
 * i < k, from the marginals of pi. */
static void entropies(qid_corpus_source *src)
{
    size_t C = src->n_ctx, V = src->V, b = src->b;
    int k = src->k;
    double *acc = qid_calloc(V, sizeof *acc, "a next-token distribution");
    double *alog = qid_malloc(qid_mul_size(V, sizeof *alog), "unigram-part terms");
    uint32_t *touched = qid_malloc(qid_mul_size((size_t)k * b, sizeof *touched), "a successor list");
    ksum t0 = {0, 0}, h = {0, 0};
    for (size_t x = 0; x < V; x++) {
        alog[x] = xlogx(src->w[0] * src->p0[x]);
        ksum_add(&t0, -alog[x]);
    }
    double T0 = ksum_value(&t0);
    for (size_t c = 0; c < C; c++) {
        size_t nt = 0;
        for (int j = 1; j <= k; j++) {
            if (src->w[j] == 0) continue;
            const uint16_t *row = src->succ[j] + (c % src->pow[j]) * b;
            for (size_t r = 0; r < b; r++) {
                if (acc[row[r]] == 0) touched[nt++] = row[r];
                acc[row[r]] += src->w[j] * src->rank_w[r];
            }
        }
        ksum hc = {T0, 0};
        for (size_t i = 0; i < nt; i++) {
            uint32_t x = touched[i];
            ksum_add(&hc, alog[x] - xlogx(src->w[0] * src->p0[x] + acc[x]));
            acc[x] = 0;
        }
        ksum_add(&h, src->pi[c] * ksum_value(&hc));
    }
    src->h[k] = src->entropy_rate = ksum_value(&h);
    /* marginals of pi over the last m tokens, m = 1..k */
    double *q = qid_malloc(qid_mul_size(C, sizeof *q), "marginals of pi");
    double prev = 0;
    for (int mlen = 1; mlen <= k; mlen++) {
        size_t n = src->pow[mlen];
        memset(q, 0, n * sizeof *q);
        for (size_t c = 0; c < C; c++)
            q[c % n] += src->pi[c];
        double hm = entropy_of(q, n);
        src->h[mlen - 1] = hm - prev;
        prev = hm;
    }
    free(q);
    free(acc);
    free(alog);
    free(touched);
}

int qid_corpus_source_build(const qid_corpus_params *p, qid_corpus_source *src, qid_error *err)
{
    memset(src, 0, sizeof *src);
    int rc = qid_corpus_params_check(p, err);
    if (rc) return rc;
    src->p = *p;
    size_t V = (size_t)p->vocab, b = (size_t)p->branching;
    int k = p->order;
    src->V = V;
    src->b = b;
    src->k = k;
    src->pow[0] = 1;
    for (int j = 1; j <= k; j++)
        src->pow[j] = src->pow[j - 1] * V;
    src->n_ctx = src->pow[k];
    double sum = 0;
    for (int j = 0; j <= k; j++)
        sum += p->mix[j];
    for (int j = 0; j <= k; j++)
        src->w[j] = p->mix[j] / sum;
    make_cdf(src->w, src->w_cdf, (size_t)k + 1);

    qid_rng rng;
    qid_rng_seed(&rng, p->seed, 0);
    /* popularity: Zipf(s) over a random permutation of the ids */
    uint32_t *perm = qid_malloc(qid_mul_size(V, sizeof *perm), "a permutation of the vocabulary");
    for (size_t i = 0; i < V; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = V - 1; i > 0; i--) {
        size_t j = (size_t)qid_rng_below(&rng, i + 1);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    src->p0 = qid_malloc(qid_mul_size(V, sizeof *src->p0), "the unigram distribution");
    src->p0_cdf = qid_malloc(qid_mul_size(V, sizeof *src->p0_cdf), "the unigram CDF");
    ksum z = {0, 0};
    for (size_t r = V; r >= 1; r--)
        ksum_add(&z, pow((double)r, -p->zipf));
    for (size_t x = 0; x < V; x++)
        src->p0[x] = pow((double)perm[x] + 1, -p->zipf) / ksum_value(&z);
    free(perm);
    make_cdf(src->p0, src->p0_cdf, V);
    src->rank_w = qid_malloc(qid_mul_size(b, sizeof *src->rank_w), "successor rank weights");
    src->rank_cdf = qid_malloc(qid_mul_size(b, sizeof *src->rank_cdf), "successor rank CDF");
    ksum zb = {0, 0};
    for (size_t r = b; r >= 1; r--)
        ksum_add(&zb, pow((double)r, -p->zipf));
    for (size_t r = 0; r < b; r++)
        src->rank_w[r] = pow((double)r + 1, -p->zipf) / ksum_value(&zb);
    make_cdf(src->rank_w, src->rank_cdf, b);

    uint8_t *chosen = qid_calloc(V, 1, "successor marks");
    for (int j = 1; j <= k; j++) {
        src->succ[j] = qid_malloc(qid_mul_size(src->pow[j], b * sizeof(uint16_t)), "successor tables");
        for (size_t c = 0; c < src->pow[j]; c++)
            draw_successors(src, &rng, chosen, src->succ[j] + c * b);
    }
    free(chosen);

    src->pi = qid_malloc(qid_mul_size(src->n_ctx, sizeof *src->pi), "the stationary distribution");
    src->pi_cdf = qid_malloc(qid_mul_size(src->n_ctx, sizeof *src->pi_cdf), "the stationary CDF");
    if (src->w[0] == 0 && (rc = check_chain(src, err))) goto fail;
    if ((rc = stationary(src, err))) goto fail;
    make_cdf(src->pi, src->pi_cdf, src->n_ctx);
    entropies(src);
    return QID_OK;
fail:
    qid_corpus_source_free(src);
    return rc;
}

void qid_corpus_source_free(qid_corpus_source *src)
{
    free(src->p0);
    free(src->p0_cdf);
    free(src->rank_w);
    free(src->rank_cdf);
    for (int j = 0; j <= QID_CORPUS_MAX_ORDER; j++)
        free(src->succ[j]);
    free(src->pi);
    free(src->pi_cdf);
    memset(src, 0, sizeof *src);
}

double qid_corpus_loss_floor(const qid_corpus_source *src, int64_t seq_len)
{
    QID_CHECK(seq_len >= 2, "a window of %" PRId64 " tokens predicts nothing", seq_len);
    ksum s = {0, 0};
    for (int64_t i = 1; i < seq_len && i < src->k; i++)
        ksum_add(&s, src->h[i]);
    if (seq_len > src->k) ksum_add(&s, (double)(seq_len - src->k) * src->h[src->k]);
    return ksum_value(&s) / (double)(seq_len - 1);
}

/* ---- streams ------------------------------------------------------------- */

void qid_corpus_stream_init(qid_corpus_stream *s, const qid_corpus_source *src, uint64_t stream)
{
    s->src = src;
    qid_rng_seed(&s->rng, src->p.seed, stream);
    s->ctx = cdf_pick(src->pi_cdf, src->n_ctx, qid_rng_uniform(&s->rng));
    s->pending = (size_t)src->k;
}

void qid_corpus_generate(qid_corpus_stream *s, uint16_t *out, size_t n)
{
    const qid_corpus_source *src = s->src;
    size_t V = src->V, b = src->b, D = src->pow[src->k - 1], nw = (size_t)src->k + 1;
    size_t ctx = s->ctx, i = 0;
    for (; i < n && s->pending > 0; i++, s->pending--) /* the initial context, oldest token first */
        out[i] = (uint16_t)(ctx / src->pow[s->pending - 1] % V);
    for (; i < n; i++) {
        size_t j = cdf_pick(src->w_cdf, nw, qid_rng_uniform(&s->rng));
        double u = qid_rng_uniform(&s->rng);
        size_t tail = ctx % D, x; /* tail: the last k-1 tokens */
        if (j == 0)
            x = cdf_pick(src->p0_cdf, V, u);
        else {
            size_t cj = j == (size_t)src->k ? ctx : j + 1 == (size_t)src->k ? tail : ctx % src->pow[j];
            x = src->succ[j][cj * b + cdf_pick(src->rank_cdf, b, u)];
        }
        out[i] = (uint16_t)x;
        ctx = tail * V + x;
    }
    s->ctx = ctx;
}
