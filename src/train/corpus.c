/* corpus.c - `qid corpus`: the seeded "markov-zipf" synthetic language
 * (tables, exact stationary distribution and entropy rate, streams) and the
 * byte-level split of a text file, written as train / eval / calibration
 * token sets through the token-set writer (tokens.h). See corpus.h for the
 * definition of the source.
 *
 * Does not: write token sets itself (qid_tokens_import does, from raw files
 * staged next to the output), or estimate anything: every entropy here is a
 * finite exact sum over the source's tables. */
#include "corpus.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "h5io.h"
#include "tokens.h"

#ifndef QID_VERSION
#define QID_VERSION "0.0.0"
#endif

/* Power iteration: stop when |pi' - pi|_1 <= PI_TOL; fail when it is still
 * above PI_FAIL after PI_MAX_ITER steps. */
#define PI_TOL      1e-15
#define PI_FAIL     1e-12
#define PI_MAX_ITER 20000
/* Rejected draws of one successor before the exact scan of the rest. */
#define MAX_REJECTS 32
/* Tokens generated per block when writing a stream. */
#define GEN_BLOCK ((size_t)1 << 20)

static const char *const part_names[4] = {"", "train", "eval", "calib"};

const char *qid_corpus_part_name(int part)
{
    return part >= QID_CORPUS_TRAIN && part <= QID_CORPUS_CALIB ? part_names[part] : "?";
}

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

/* The shortest %g form that reads back as v. */
static void fmt_double(double v, char *buf, size_t len)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

void qid_corpus_params_format(const qid_corpus_params *p, char *buf, size_t len)
{
    char z[32], mix[QID_CORPUS_MAX_ORDER + 1][32];
    fmt_double(p->zipf, z, sizeof z);
    for (int j = 0; j <= p->order && j <= QID_CORPUS_MAX_ORDER; j++)
        fmt_double(p->mix[j], mix[j], sizeof mix[j]);
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

/* ---- staging and writing ------------------------------------------------- */

/* What a write has created, removed in reverse order unless committed. */
typedef struct stage {
    char *outdir, *dir; /* DIR and DIR/.corpus.tmp.<pid> */
    int made_outdir;
    char *made[16]; /* files and directories inside dir, in creation order */
    int made_is_dir[16];
    int n_made;
    char *staged[4]; /* dir/<part>.h5 by part */
} stage;

static char *stage_add(stage *st, char *path, int is_dir)
{
    QID_CHECK(st->n_made < 16, "too many staged files");
    st->made[st->n_made] = path;
    st->made_is_dir[st->n_made++] = is_dir;
    return path;
}

/* Removes what is staged (and DIR, when created here and failed is set). */
static void stage_end(stage *st, int failed)
{
    for (int i = st->n_made - 1; i >= 0; i--) {
        if (st->made_is_dir[i])
            rmdir(st->made[i]);
        else
            unlink(st->made[i]);
        free(st->made[i]);
    }
    if (st->dir) rmdir(st->dir);
    if (failed && st->made_outdir) rmdir(st->outdir);
    free(st->dir);
    free(st->outdir);
    memset(st, 0, sizeof *st);
}

/* Checks the outputs and creates DIR (when missing) and the staging dir. */
static int stage_begin(stage *st, const qid_corpus_write_opts *o, qid_corpus_written *w, qid_error *err)
{
    struct stat sb;
    memset(st, 0, sizeof *st);
    memset(w, 0, sizeof *w);
    if (!o->outdir || !o->outdir[0]) return qid_error_set(err, QID_E_INVALID, "no output directory given");
    if (o->seq_len < 2 || o->seq_len > QID_TOKENS_MAX_SEQ_LEN)
        return qid_error_set(err, QID_E_INVALID, "window length %" PRId64 " is outside 2..%" PRId64, o->seq_len,
                             QID_TOKENS_MAX_SEQ_LEN);
    if (stat(o->outdir, &sb) == 0 && !S_ISDIR(sb.st_mode))
        return qid_error_set(err, QID_E_INVALID, "output '%s' exists and is not a directory", o->outdir);
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB; part++) {
        char name[16];
        snprintf(name, sizeof name, "%s.h5", part_names[part]);
        char *path = qid_path_join(o->outdir, name);
        snprintf(w->path[part], sizeof w->path[part], "%s", path);
        int exists = access(path, F_OK) == 0;
        free(path);
        if (exists && !o->force)
            return qid_error_set(err, QID_E_INVALID, "output '%s' exists (use --force to replace it)", w->path[part]);
    }
    st->outdir = qid_strdup(o->outdir);
    if (!qid_path_exists(o->outdir)) {
        if (mkdir(o->outdir, 0777) != 0) {
            int rc = qid_error_set(err, QID_E_IO, "cannot create directory '%s': %s", o->outdir, strerror(errno));
            stage_end(st, 1);
            return rc;
        }
        st->made_outdir = 1;
    }
    char name[64];
    snprintf(name, sizeof name, ".corpus.tmp.%ld", (long)getpid());
    char *dir = qid_path_join(o->outdir, name);
    if (mkdir(dir, 0777) != 0) {
        int rc = qid_error_set(err, QID_E_IO, "cannot create directory '%s': %s", dir, strerror(errno));
        free(dir);
        stage_end(st, 1);
        return rc;
    }
    st->dir = dir;
    return QID_OK;
}

/* Imports the raw file into dir/<part>.h5 and removes the raw file. */
static int stage_import(stage *st, int part, char *raw, qid_tokens_source kind, int64_t vocab, const char *tokenizer,
                        int64_t seq_len, qid_tokens_meta *m, qid_error *err)
{
    char name[16];
    snprintf(name, sizeof name, "%s.h5", part_names[part]);
    st->staged[part] = stage_add(st, qid_path_join(st->dir, name), 0);
    qid_tokens_import_opts io = {
        .input = raw,
        .output = st->staged[part],
        .source = kind,
        .vocab_size = vocab,
        .tokenizer = tokenizer,
        .seq_len = seq_len,
    };
    int rc = qid_tokens_import(&io, m, err);
    unlink(raw);
    return rc;
}

/* The attributes of one staged part; fill(fid, part, arg) writes the
 * generator-specific ones. */
typedef int (*attr_fn)(hid_t fid, int part, const void *arg, qid_error *err);

static int stage_attrs(stage *st, int part, attr_fn fill, const void *arg, qid_error *err)
{
    hid_t fid = H5I_INVALID_HID;
    QID_H5_TRY(err, fid = H5Fopen(st->staged[part], H5F_ACC_RDWR, H5P_DEFAULT), "cannot open '%s'", st->staged[part]);
    int rc = qid_h5_attr_write_str(fid, "corpus_part", part_names[part], err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "corpus_version", QID_CORPUS_VERSION, err);
    if (!rc) rc = fill(fid, part, arg, err);
    QID_H5_TRY(err, H5Fclose(fid), "cannot close '%s'", st->staged[part]);
    return rc;
fail:
    if (fid >= 0) H5Fclose(fid);
    return err && err->code ? err->code : QID_E_HDF5;
}

/* Renames the three staged files into DIR (each flushed and synced). */
static int stage_commit(stage *st, const qid_corpus_written *w, qid_error *err)
{
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB; part++) {
        hid_t fid = H5I_INVALID_HID;
        QID_H5_TRY(err, fid = H5Fopen(st->staged[part], H5F_ACC_RDWR, H5P_DEFAULT), "cannot open '%s'",
                   st->staged[part]);
        int rc = qid_h5_commit(fid, qid_strdup(st->staged[part]), w->path[part], err);
        if (rc) return rc;
    }
    return QID_OK;
fail:
    return err && err->code ? err->code : QID_E_HDF5;
}

static int write_all(FILE *f, const void *buf, size_t n, const char *path, qid_error *err)
{
    if (fwrite(buf, 1, n, f) != n) return qid_error_set(err, QID_E_IO, "cannot write '%s': %s", path, strerror(errno));
    return QID_OK;
}

static int close_file(FILE *f, const char *path, qid_error *err)
{
    if (fclose(f) != 0) return qid_error_set(err, QID_E_IO, "cannot write '%s': %s", path, strerror(errno));
    return QID_OK;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Writes n tokens of stream `part` to path as little-endian uint16. */
static int write_stream(const qid_corpus_source *src, int part, uint64_t n, const char *path, double *seconds,
                        qid_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f) return qid_error_set(err, QID_E_IO, "cannot create '%s': %s", path, strerror(errno));
    uint16_t *ids = qid_malloc(GEN_BLOCK * sizeof *ids, "a block of generated tokens");
    uint8_t *bytes = qid_malloc(GEN_BLOCK * 2, "a block of generated tokens");
    qid_corpus_stream s;
    qid_corpus_stream_init(&s, src, (uint64_t)part);
    int rc = QID_OK;
    for (uint64_t done = 0; done < n && !rc;) {
        size_t m = n - done < GEN_BLOCK ? (size_t)(n - done) : GEN_BLOCK;
        double t0 = now_seconds();
        qid_corpus_generate(&s, ids, m);
        *seconds += now_seconds() - t0;
        for (size_t i = 0; i < m; i++) {
            bytes[2 * i] = (uint8_t)(ids[i] & 0xff);
            bytes[2 * i + 1] = (uint8_t)(ids[i] >> 8);
        }
        rc = write_all(f, bytes, 2 * m, path, err);
        done += m;
    }
    free(ids);
    free(bytes);
    int rc2 = close_file(f, path, err);
    return rc ? rc : rc2;
}

typedef struct synth_attrs {
    const qid_corpus_source *src;
    int64_t seq_len;
} synth_attrs;

static int fill_synthetic(hid_t fid, int part, const void *arg, qid_error *err)
{
    const synth_attrs *a = arg;
    const qid_corpus_source *src = a->src;
    char params[256];
    qid_corpus_params_format(&src->p, params, sizeof params);
    int rc = qid_h5_attr_write_str(fid, "corpus_generator", QID_CORPUS_GENERATOR, err);
    if (!rc) rc = qid_h5_attr_write_str(fid, "corpus_params", params, err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "corpus_seed", (int64_t)src->p.seed, err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "corpus_stream", part, err);
    if (!rc) rc = qid_h5_attr_write_f64(fid, "entropy_rate", src->entropy_rate, err);
    if (!rc) rc = qid_h5_attr_write_f64(fid, "unigram_entropy", src->h[0], err);
    if (!rc) rc = qid_h5_attr_write_f64(fid, "bigram_entropy", src->h[1], err);
    if (!rc) rc = qid_h5_attr_write_f64(fid, "loss_floor", qid_corpus_loss_floor(src, a->seq_len), err);
    return rc;
}

int qid_corpus_write_synthetic(const qid_corpus_source *src, const qid_corpus_write_opts *o, qid_corpus_written *w,
                               qid_error *err)
{
    stage st;
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB; part++)
        if (o->tokens[part] < 1)
            return qid_error_set(err, QID_E_INVALID, "--%s-tokens %" PRId64 " must be at least 1", part_names[part],
                                 o->tokens[part]);
    int rc = stage_begin(&st, o, w, err);
    if (rc) return rc;
    synth_attrs a = {src, o->seq_len};
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB && !rc; part++) {
        uint64_t L = (uint64_t)o->seq_len, windows = ((uint64_t)o->tokens[part] + L - 1) / L;
        if (windows > UINT64_MAX / L) {
            rc = qid_error_set(err, QID_E_INVALID, "--%s-tokens %" PRId64 " is too large", part_names[part],
                               o->tokens[part]);
            break;
        }
        char name[16];
        snprintf(name, sizeof name, "%s.u16", part_names[part]);
        char *raw = stage_add(&st, qid_path_join(st.dir, name), 0);
        qid_tokens_meta m;
        rc = write_stream(src, part, windows * L, raw, &w->generate_seconds, err);
        if (!rc)
            rc = stage_import(&st, part, raw, QID_TOKENS_SRC_U16, (int64_t)src->V, "synthetic", o->seq_len, &m, err);
        if (!rc) rc = stage_attrs(&st, part, fill_synthetic, &a, err);
        if (!rc) w->windows[part] = m.n_windows;
    }
    if (!rc) rc = stage_commit(&st, w, err);
    stage_end(&st, rc != QID_OK);
    return rc;
}

/* ---- text files ----------------------------------------------------------- */

int qid_corpus_split_text(uint64_t n, int64_t seq_len, double eval_frac, double calib_frac, int64_t offset[4],
                          int64_t bytes[4], qid_error *err)
{
    if (seq_len < 1) return qid_error_set(err, QID_E_INVALID, "window length %" PRId64 " is not positive", seq_len);
    if (!(eval_frac > 0 && calib_frac > 0 && eval_frac + calib_frac < 1))
        return qid_error_set(err, QID_E_INVALID,
                             "--eval-frac %g and --calib-frac %g must be positive and add up to less than 1", eval_frac,
                             calib_frac);
    uint64_t L = (uint64_t)seq_len, W = n / L;
    uint64_t ev = (uint64_t)llround(eval_frac * (double)W), ca = (uint64_t)llround(calib_frac * (double)W);
    if (ev < 1 || ca < 1 || ev + ca >= W)
        return qid_error_set(err, QID_E_INVALID,
                             "%" PRIu64 " bytes make %" PRIu64 " window%s of %" PRId64
                             ", too few to give train, eval and calib one each at --eval-frac %g --calib-frac %g "
                             "(lower --seq-len or give a larger file)",
                             n, W, W == 1 ? "" : "s", seq_len, eval_frac, calib_frac);
    uint64_t tr = W - ev - ca;
    offset[QID_CORPUS_TRAIN] = 0;
    bytes[QID_CORPUS_TRAIN] = (int64_t)(tr * L);
    offset[QID_CORPUS_EVAL] = (int64_t)(tr * L);
    bytes[QID_CORPUS_EVAL] = (int64_t)(ev * L);
    offset[QID_CORPUS_CALIB] = (int64_t)((tr + ev) * L);
    bytes[QID_CORPUS_CALIB] = (int64_t)(n - (tr + ev) * L);
    return QID_OK;
}

/* Copies bytes [offset, offset + n) of in (path for messages) to path. */
static int copy_range(FILE *in, const char *in_path, int64_t offset, int64_t n, const char *path, qid_error *err)
{
    if (fseeko(in, (off_t)offset, SEEK_SET) != 0)
        return qid_error_set(err, QID_E_IO, "cannot seek in '%s': %s", in_path, strerror(errno));
    FILE *f = fopen(path, "wb");
    if (!f) return qid_error_set(err, QID_E_IO, "cannot create '%s': %s", path, strerror(errno));
    size_t cap = (size_t)1 << 20;
    uint8_t *buf = qid_malloc(cap, "a block of text");
    int rc = QID_OK;
    for (int64_t left = n; left > 0 && !rc;) {
        size_t m = (uint64_t)left < cap ? (size_t)left : cap;
        if (fread(buf, 1, m, in) != m)
            rc = qid_error_set(err, QID_E_IO, "cannot read '%s': %s", in_path,
                               ferror(in) ? strerror(errno) : "unexpected end of file (did it change?)");
        else
            rc = write_all(f, buf, m, path, err);
        left -= (int64_t)m;
    }
    free(buf);
    int rc2 = close_file(f, path, err);
    return rc ? rc : rc2;
}

static int fill_text(hid_t fid, int part, const void *arg, qid_error *err)
{
    const qid_corpus_written *w = arg;
    int rc = qid_h5_attr_write_str(fid, "corpus_generator", QID_CORPUS_GENERATOR_TEXT, err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "source_offset", w->offset[part], err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "source_length", w->bytes[part], err);
    return rc;
}

int qid_corpus_write_text(const qid_corpus_write_opts *o, qid_corpus_written *w, qid_error *err)
{
    struct stat sb;
    stage st;
    if (!o->text) return qid_error_set(err, QID_E_INVALID, "no text file given");
    FILE *in = fopen(o->text, "rb");
    if (!in) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", o->text, strerror(errno));
    int rc = QID_OK;
    if (fstat(fileno(in), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = qid_error_set(err, QID_E_IO, "'%s' is not a regular file", o->text);
        fclose(in);
        return rc;
    }
    int64_t offset[4], bytes[4];
    if ((rc = qid_corpus_split_text((uint64_t)sb.st_size, o->seq_len, o->eval_frac, o->calib_frac, offset, bytes,
                                    err))) {
        qid_error_wrap(err, rc, "cannot split '%s'", o->text);
        fclose(in);
        return rc;
    }
    if ((rc = stage_begin(&st, o, w, err))) {
        fclose(in);
        return rc;
    }
    memcpy(w->offset, offset, sizeof offset);
    memcpy(w->bytes, bytes, sizeof bytes);
    const char *slash = strrchr(o->text, '/'), *base = slash ? slash + 1 : o->text;
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB && !rc; part++) {
        /* dir/<part>/<name of the text file>: the token set records that name */
        char *sub = stage_add(&st, qid_path_join(st.dir, part_names[part]), 1);
        if (mkdir(sub, 0777) != 0) {
            rc = qid_error_set(err, QID_E_IO, "cannot create directory '%s': %s", sub, strerror(errno));
            break;
        }
        char *raw = stage_add(&st, qid_path_join(sub, base), 0);
        qid_tokens_meta m;
        rc = copy_range(in, o->text, offset[part], bytes[part], raw, err);
        if (!rc) rc = stage_import(&st, part, raw, QID_TOKENS_SRC_TEXT, 256, "bytes", o->seq_len, &m, err);
        if (!rc) rc = stage_attrs(&st, part, fill_text, w, err);
        if (!rc) w->windows[part] = m.n_windows;
    }
    fclose(in);
    if (!rc) rc = stage_commit(&st, w, err);
    stage_end(&st, rc != QID_OK);
    return rc;
}

/* ---- inspect -------------------------------------------------------------- */

int qid_corpus_summary(const char *path, FILE *out, qid_error *err)
{
    hid_t fid = H5I_INVALID_HID;
    QID_H5_TRY(err, fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "cannot open '%s'", path);
    int rc = QID_OK;
    char gen[64] = "", part[16] = "", params[256] = "";
    int64_t version = 0, stream = 0, seq_len = 0, offset = 0, length = 0;
    double h = 0, h0 = 0, h1 = 0, floor = 0;
    if (!qid_h5_attr_exists(fid, "corpus_generator")) goto done;
    rc = qid_h5_attr_read_str(fid, "/", "corpus_generator", gen, sizeof gen, err);
    if (!rc) rc = qid_h5_attr_read_str(fid, "/", "corpus_part", part, sizeof part, err);
    if (!rc) rc = qid_h5_attr_read_i64(fid, "/", "corpus_version", &version, err);
    if (rc) goto done;
    if (strcmp(gen, QID_CORPUS_GENERATOR) == 0) {
        rc = qid_h5_attr_read_str(fid, "/", "corpus_params", params, sizeof params, err);
        if (!rc) rc = qid_h5_attr_read_i64(fid, "/", "corpus_stream", &stream, err);
        if (!rc) rc = qid_h5_attr_read_i64(fid, "/", "seq_len", &seq_len, err);
        if (!rc) rc = qid_h5_attr_read_f64(fid, "/", "entropy_rate", &h, err);
        if (!rc) rc = qid_h5_attr_read_f64(fid, "/", "unigram_entropy", &h0, err);
        if (!rc) rc = qid_h5_attr_read_f64(fid, "/", "bigram_entropy", &h1, err);
        if (!rc) rc = qid_h5_attr_read_f64(fid, "/", "loss_floor", &floor, err);
        if (rc) goto done;
        fprintf(out, "  %-22s %s v%" PRId64 ", part %s (stream %" PRId64 ")\n", "corpus", gen, version, part, stream);
        fprintf(out, "  %-22s %s\n", "corpus params", params);
        fprintf(out, "  %-22s %.6f nats/token (%.6f bits)\n", "entropy rate", h, h / log(2.0));
        fprintf(out, "  %-22s %.6f nats/token on %" PRId64 "-token windows\n", "loss floor", floor, seq_len);
        fprintf(out, "  %-22s %.6f / %.6f nats/token\n", "unigram / bigram", h0, h1);
    } else {
        if (qid_h5_attr_exists(fid, "source_offset")) {
            rc = qid_h5_attr_read_i64(fid, "/", "source_offset", &offset, err);
            if (!rc) rc = qid_h5_attr_read_i64(fid, "/", "source_length", &length, err);
            if (rc) goto done;
        }
        fprintf(out, "  %-22s %s v%" PRId64 ", part %s: bytes %" PRId64 "..%" PRId64 " of the source\n", "corpus", gen,
                version, part, offset, offset + length);
    }
done:
    H5Fclose(fid);
    return rc;
fail:
    return err && err->code ? err->code : QID_E_HDF5;
}

/* ---- command line ------------------------------------------------------------ */

static void usage(FILE *out)
{
    qid_corpus_params d;
    qid_corpus_params_default(&d);
    fprintf(out,
            "usage: qid corpus --synthetic [source options] [sizes] -o DIR\n"
            "       qid corpus --synthetic [source options] --info\n"
            "       qid corpus --text FILE [--eval-frac F] [--calib-frac F] -o DIR\n"
            "\n"
            "Writes DIR/train.h5, DIR/eval.h5 and DIR/calib.h5 (qid token sets), all three\n"
            "or none.\n"
            "\n"
            "--synthetic: a seeded order-k Markov language whose entropy rate (the loss\n"
            "floor of a perfect model) is computed exactly: P(x|c) = w_0 Zipf(x) +\n"
            "sum_j w_j P_j(x | last j tokens), each j-gram context with b successors of\n"
            "Zipf(s) weights. The three parts are independent streams of the same source.\n"
            "  --vocab V          vocabulary size, 2..65536 (default %" PRId64 ")\n"
            "  --order K          Markov order, 1..%d (default %d)\n"
            "  --branching B      successors of each context, 1..V (default %" PRId64 ")\n"
            "  --zipf S           Zipf exponent of the unigram and of successor ranks, 0..8\n"
            "                     (default %g; 0 is uniform)\n"
            "  --mix W0,..,WK     weights of the unigram and of orders 1..K (normalised;\n"
            "                     default 0.05, 0.55 shared by orders 1..K-1, 0.4 for K)\n"
            "  --seed N           seed of the tables and streams (default %" PRIu64 ")\n"
            "  --train-tokens N   tokens in train.h5 (default 4194304)\n"
            "  --eval-tokens N    tokens in eval.h5 (default 262144)\n"
            "  --calib-tokens N   tokens in calib.h5 (default 65536); each rounded up to\n"
            "                     whole windows\n"
            "  --info             print the source's entropies, write nothing\n"
            "\n"
            "--text FILE: the bytes of FILE (vocabulary 256) split into contiguous parts\n"
            "train | eval | calib on window boundaries.\n"
            "  --eval-frac F      fraction of the windows for eval.h5 (default 0.1)\n"
            "  --calib-frac F     fraction for calib.h5 (default 0.05)\n"
            "\n"
            "common options:\n"
            "  -o, --output DIR   output directory (created if missing)\n"
            "  --seq-len L        window length in tokens (default 128)\n"
            "  --force            replace existing train/eval/calib.h5\n"
            "  -h, --help         this help\n"
            "\n"
            "example:\n"
            "  qid corpus --synthetic --seed 1 --train-tokens 8388608 -o corpus/\n",
            d.vocab, QID_CORPUS_MAX_ORDER, d.order, d.branching, d.zipf, d.seed);
}

/* A decimal integer in [lo, hi]; -1 when not. */
static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_f64(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* "w0,w1,..." into mix; the count in *n; -1 when malformed. */
static int parse_mix(const char *s, double mix[QID_CORPUS_MAX_ORDER + 1], int *n)
{
    *n = 0;
    for (const char *p = s;;) {
        char *end = NULL;
        if (*n > QID_CORPUS_MAX_ORDER) return -1;
        errno = 0;
        double v = strtod(p, &end);
        if (errno || end == p || !isfinite(v)) return -1;
        mix[(*n)++] = v;
        if (*end == '\0') return 0;
        if (*end != ',') return -1;
        p = end + 1;
    }
}

static void print_source(const qid_corpus_source *src)
{
    char params[256];
    qid_corpus_params_format(&src->p, params, sizeof params);
    double l2 = log(2.0);
    printf("source %s %s\n", QID_CORPUS_GENERATOR, params);
    printf("  %zu contexts; stationary distribution after %d iterations, |pi P - pi|_1 = %.2g\n", src->n_ctx,
           src->iterations, src->residual);
    printf("  entropy rate   %.6f nats/token (%.6f bits)  the loss floor of a perfect model\n", src->entropy_rate,
           src->entropy_rate / l2);
    for (int i = src->k - 1; i >= 0; i--) {
        char name[32], what[64];
        snprintf(name, sizeof name, "%s", i == 0 ? "unigram model" : i == 1 ? "bigram model" : "");
        if (i > 1) snprintf(name, sizeof name, "%d-gram model", i + 1);
        snprintf(what, sizeof what, "%s", i == 0 ? "from token frequencies" : i == 1 ? "from the previous token" : "");
        if (i > 1) snprintf(what, sizeof what, "from the previous %d tokens", i);
        printf("  %-14s %.6f nats/token (%.6f bits)  best loss %s\n", name, src->h[i], src->h[i] / l2, what);
    }
    printf("  %-14s %.6f nats/token (%.6f bits)  log V\n", "uniform", log((double)src->V), log((double)src->V) / l2);
}

int qid_corpus_main(int argc, char **argv)
{
    enum {
        OPT_SYNTH = 256,
        OPT_TEXT,
        OPT_VOCAB,
        OPT_ORDER,
        OPT_BRANCH,
        OPT_ZIPF,
        OPT_MIX,
        OPT_SEED,
        OPT_TRAIN,
        OPT_EVAL,
        OPT_CALIB,
        OPT_EFRAC,
        OPT_CFRAC,
        OPT_SEQ,
        OPT_FORCE,
        OPT_INFO,
    };
    static const struct option longopts[] = {
        {"synthetic", no_argument, 0, OPT_SYNTH},
        {"text", required_argument, 0, OPT_TEXT},
        {"vocab", required_argument, 0, OPT_VOCAB},
        {"order", required_argument, 0, OPT_ORDER},
        {"branching", required_argument, 0, OPT_BRANCH},
        {"zipf", required_argument, 0, OPT_ZIPF},
        {"mix", required_argument, 0, OPT_MIX},
        {"seed", required_argument, 0, OPT_SEED},
        {"train-tokens", required_argument, 0, OPT_TRAIN},
        {"eval-tokens", required_argument, 0, OPT_EVAL},
        {"calib-tokens", required_argument, 0, OPT_CALIB},
        {"eval-frac", required_argument, 0, OPT_EFRAC},
        {"calib-frac", required_argument, 0, OPT_CFRAC},
        {"seq-len", required_argument, 0, OPT_SEQ},
        {"output", required_argument, 0, 'o'},
        {"force", no_argument, 0, OPT_FORCE},
        {"info", no_argument, 0, OPT_INFO},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    qid_corpus_params p;
    qid_corpus_params_default(&p);
    qid_corpus_write_opts o = {
        .seq_len = 128,
        .tokens = {0, 4194304, 262144, 65536},
        .eval_frac = 0.1,
        .calib_frac = 0.05,
    };
    int synthetic = 0, info = 0, n_mix = 0, c, synth_opt = 0, text_opt = 0;
    int64_t v = 0;
    const char *bad = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SYNTH: synthetic = 1; break;
        case OPT_TEXT: o.text = optarg; break;
        case OPT_VOCAB:
            synth_opt = 1;
            if (parse_i64(optarg, 2, QID_CORPUS_MAX_VOCAB, &p.vocab)) bad = "--vocab wants 2..65536";
            break;
        case OPT_ORDER:
            synth_opt = 1;
            if (parse_i64(optarg, 1, QID_CORPUS_MAX_ORDER, &v))
                bad = "--order wants 1..4";
            else
                p.order = (int)v;
            break;
        case OPT_BRANCH:
            synth_opt = 1;
            if (parse_i64(optarg, 1, QID_CORPUS_MAX_VOCAB, &p.branching)) bad = "--branching wants 1..V";
            break;
        case OPT_ZIPF:
            synth_opt = 1;
            if (parse_f64(optarg, &p.zipf) || p.zipf < 0 || p.zipf > QID_CORPUS_MAX_ZIPF)
                bad = "--zipf wants a number in 0..8";
            break;
        case OPT_MIX:
            synth_opt = 1;
            if (parse_mix(optarg, p.mix, &n_mix)) bad = "--mix wants 2..5 comma-separated weights";
            break;
        case OPT_SEED:
            synth_opt = 1;
            if (parse_i64(optarg, 0, INT64_MAX, &v))
                bad = "--seed wants an integer in 0..9223372036854775807";
            else
                p.seed = (uint64_t)v;
            break;
        case OPT_TRAIN:
        case OPT_EVAL:
        case OPT_CALIB:
            synth_opt = 1;
            if (parse_i64(optarg, 1, INT64_MAX / 2, &o.tokens[c - OPT_TRAIN + QID_CORPUS_TRAIN]))
                bad = "token counts want a positive integer";
            break;
        case OPT_EFRAC:
        case OPT_CFRAC: {
            double f = 0;
            text_opt = 1;
            if (parse_f64(optarg, &f) || !(f > 0 && f < 1))
                bad = "--eval-frac and --calib-frac want a number between 0 and 1";
            else if (c == OPT_EFRAC)
                o.eval_frac = f;
            else
                o.calib_frac = f;
            break;
        }
        case OPT_SEQ:
            if (parse_i64(optarg, 2, QID_TOKENS_MAX_SEQ_LEN, &o.seq_len)) bad = "--seq-len wants 2..16777216";
            break;
        case OPT_FORCE: o.force = 1; break;
        case OPT_INFO: info = 1; break;
        case 'o': o.outdir = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "qid corpus: error: %s, got '%s'\n", bad, optarg);
            return 2;
        }
    }
    if (n_mix == 0) qid_corpus_default_mix(p.order, p.mix);
    const char *why = optind < argc           ? "unexpected argument (options only; the text file follows --text)"
                      : synthetic && o.text   ? "--synthetic and --text exclude each other"
                      : !synthetic && !o.text ? "give --synthetic or --text FILE"
                      : o.text && synth_opt   ? "source and token-count options belong to --synthetic"
                      : synthetic && text_opt ? "--eval-frac and --calib-frac belong to --text"
                      : info && o.text        ? "--info belongs to --synthetic"
                      : n_mix && n_mix != p.order + 1 ? "--mix wants order + 1 weights (w_0 for the unigram, then "
                                                        "orders 1..K)"
                      : !info && !o.outdir            ? "no output directory given (-o DIR)"
                                                      : NULL;
    if (why) {
        fprintf(stderr, "qid corpus: error: %s\n", why);
        usage(stderr);
        return 2;
    }
    qid_error err;
    qid_error_clear(&err);
    if (synthetic && qid_corpus_params_check(&p, &err)) {
        fprintf(stderr, "qid corpus: error: %s\n", err.msg);
        return 2;
    }
    qid_corpus_written w;
    if (o.text) {
        if (qid_corpus_write_text(&o, &w, &err)) {
            fprintf(stderr, "qid corpus: error: %s\n", err.msg);
            return 1;
        }
        for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB; part++)
            printf("wrote %s: %" PRId64 " window%s x %" PRId64 " bytes (bytes %" PRId64 "..%" PRId64 " of %s)\n",
                   w.path[part], w.windows[part], w.windows[part] == 1 ? "" : "s", o.seq_len, w.offset[part],
                   w.offset[part] + w.bytes[part], o.text);
        return 0;
    }
    qid_corpus_source src;
    if (qid_corpus_source_build(&p, &src, &err)) {
        fprintf(stderr, "qid corpus: error: %s\n", err.msg);
        return 1;
    }
    print_source(&src);
    if (info) {
        qid_corpus_source_free(&src);
        return 0;
    }
    int rc = qid_corpus_write_synthetic(&src, &o, &w, &err);
    if (rc) {
        fprintf(stderr, "qid corpus: error: %s\n", err.msg);
        qid_corpus_source_free(&src);
        return 1;
    }
    int64_t total = 0;
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB; part++) {
        printf("wrote %s: %" PRId64 " window%s x %" PRId64 " tokens (stream %d)\n", w.path[part], w.windows[part],
               w.windows[part] == 1 ? "" : "s", o.seq_len, part);
        total += w.windows[part] * o.seq_len;
    }
    printf("loss floor on %" PRId64 "-token windows (every predicted token scored): %.6f nats/token\n", o.seq_len,
           qid_corpus_loss_floor(&src, o.seq_len));
    printf("generated %" PRId64 " tokens in %.3f s (%.1f M tokens/s)\n", total, w.generate_seconds,
           w.generate_seconds > 0 ? (double)total / w.generate_seconds / 1e6 : 0.0);
    qid_corpus_source_free(&src);
    return 0;
}
