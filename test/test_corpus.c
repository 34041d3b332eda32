/* test_corpus.c - the synthetic corpus source and the corpus writers:
 * entropy rates with analytic answers (uniform branching: log b; a pure
 * unigram: the Zipf entropy; a two-symbol order-1 chain: the textbook
 * pi_0 h(p) + pi_1 h(q)), the stationary distribution against a dense
 * reference (pi P = pi to 1e-12, the structured pi and entropies equal to a
 * dense power iteration), the empirical log-loss of a long stream against
 * the entropy rate (within 4 standard errors), determinism and independence
 * of streams, the window loss floor, the text splitter (parts concatenate
 * back to the file), and bad input: one line, and nothing left behind.
 *
 * Does not: run the command line (test/cmd_corpus.t does). */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "corpus.h"
#include "h5io.h"
#include "tap.h"
#include "tokens.h"

static qid_corpus_params params(int64_t V, int k, int64_t b, double s, const double *mix, uint64_t seed)
{
    qid_corpus_params p;
    qid_corpus_params_default(&p);
    p.vocab = V;
    p.order = k;
    p.branching = b;
    p.zipf = s;
    p.seed = seed;
    if (mix)
        for (int j = 0; j <= k; j++)
            p.mix[j] = mix[j];
    else
        qid_corpus_default_mix(k, p.mix);
    return p;
}

static void build(const qid_corpus_params *p, qid_corpus_source *src)
{
    qid_error err;
    qid_error_clear(&err);
    if (qid_corpus_source_build(p, src, &err)) bail("cannot build the source: %s", err.msg);
}

/* The dense transition matrix over contexts, [C][V]: P[c][x] = P(x | c). */
static double *dense(const qid_corpus_source *src)
{
    double *P = malloc(src->n_ctx * src->V * sizeof *P);
    if (!P) bail("out of memory");
    for (size_t c = 0; c < src->n_ctx; c++)
        for (size_t x = 0; x < src->V; x++)
            P[c * src->V + x] = qid_corpus_prob(src, c, (uint32_t)x);
    return P;
}

/* |pi P - pi|_1 with the dense matrix, written independently of corpus.c. */
static double dense_residual(const qid_corpus_source *src, const double *P, const double *pi)
{
    size_t C = src->n_ctx, V = src->V;
    double *out = calloc(C, sizeof *out), r = 0;
    if (!out) bail("out of memory");
    for (size_t c = 0; c < C; c++)
        for (size_t x = 0; x < V; x++)
            out[(c * V + x) % C] += pi[c] * P[c * V + x];
    for (size_t c = 0; c < C; c++)
        r += fabs(out[c] - pi[c]);
    free(out);
    return r;
}

/* Dense power iteration from a point mass on context 0 (not the uniform
 * start corpus.c uses), 5000 steps, renormalised each step; returns pi
 * (malloc'd). */
static double *dense_pi(const qid_corpus_source *src, const double *P)
{
    size_t C = src->n_ctx, V = src->V;
    double *pi = calloc(C, sizeof *pi), *nx = calloc(C, sizeof *nx);
    if (!pi || !nx) bail("out of memory");
    pi[0] = 1;
    for (int it = 0; it < 5000; it++) {
        memset(nx, 0, C * sizeof *nx);
        for (size_t c = 0; c < C; c++)
            for (size_t x = 0; x < V; x++)
                nx[(c * V + x) % C] += pi[c] * P[c * V + x];
        double sum = 0;
        for (size_t c = 0; c < C; c++)
            sum += nx[c];
        for (size_t c = 0; c < C; c++)
            nx[c] /= sum;
        double *t = pi;
        pi = nx;
        nx = t;
    }
    free(nx);
    return pi;
}

static double dense_entropy_rate(const qid_corpus_source *src, const double *P, const double *pi)
{
    double h = 0;
    for (size_t c = 0; c < src->n_ctx; c++)
        for (size_t x = 0; x < src->V; x++) {
            double q = P[c * src->V + x];
            if (q > 0) h -= pi[c] * q * log(q);
        }
    return h;
}

static double h2(double p) { return -(p * log(p) + (1 - p) * log(1 - p)); }

static void test_analytic(void)
{
    qid_corpus_source src;
    /* uniform branching, Zipf 0, only the top order: every context has b
     * equally likely successors, H = log b whatever pi is */
    const double top1[] = {0, 1}, top2[] = {0, 0, 1};
    qid_corpus_params p = params(64, 1, 16, 0, top1, 5);
    build(&p, &src);
    is_double(log(16.0), src.entropy_rate, 1e-14, "V 64, k 1, b 16, zipf 0, mix 0,1: H = log 16");
    double *P = dense(&src);
    ok(dense_residual(&src, P, src.pi) < 1e-12, "k 1, sparse chain: pi P = pi to 1e-12 (%.2g)",
       dense_residual(&src, P, src.pi));
    free(P);
    qid_corpus_source_free(&src);

    p = params(32, 2, 8, 0, top2, 1);
    build(&p, &src);
    is_double(log(8.0), src.entropy_rate, 1e-14, "V 32, k 2, b 8, zipf 0, mix 0,0,1: H = log 8");
    P = dense(&src);
    ok(dense_residual(&src, P, src.pi) < 1e-12, "k 2, sparse chain: pi P = pi to 1e-12");
    free(P);
    qid_corpus_source_free(&src);

    /* b = V with zipf 0: uniform next token whatever the mix */
    p = params(16, 2, 16, 0, NULL, 9);
    build(&p, &src);
    is_double(log(16.0), src.entropy_rate, 1e-14, "b = V, zipf 0: H = log V");
    is_double(log(16.0), src.h[0], 1e-14, "b = V, zipf 0: unigram entropy log V");
    is_double(1.0 / 256, src.pi[37], 1e-16, "b = V, zipf 0: pi uniform over the 256 contexts");
    qid_corpus_source_free(&src);

    /* a pure unigram source (mix 1,0): H = h_0 = entropy of Zipf(1.3) over 50 tokens */
    const double uni[] = {1, 0};
    p = params(50, 1, 3, 1.3, uni, 11);
    build(&p, &src);
    double z = 0, hz = 0;
    for (int r = 1; r <= 50; r++)
        z += pow(r, -1.3);
    for (int r = 1; r <= 50; r++)
        hz -= pow(r, -1.3) / z * log(pow(r, -1.3) / z);
    is_double(hz, src.entropy_rate, 1e-13, "mix 1,0 (iid Zipf(1.3), V 50): H = Zipf entropy %.12f", hz);
    is_double(hz, src.h[0], 1e-13, "mix 1,0: unigram entropy equals H");
    qid_corpus_source_free(&src);

    /* two symbols, order 1: P(x|a) = w0 P0(x) + w1 [x == succ(a)], read back
     * from the tables, then the textbook stationary law and entropy rate */
    const double two[] = {0.3, 0.7};
    p = params(2, 1, 1, 1.0, two, 4);
    build(&p, &src);
    double P01 = 0.3 * src.p0[1] + 0.7 * (src.succ[1][0] == 1);
    double P10 = 0.3 * src.p0[0] + 0.7 * (src.succ[1][1] == 0);
    double pi0 = P10 / (P01 + P10), pi1 = P01 / (P01 + P10);
    diag("two-symbol chain: P0 = (%.6f, %.6f), succ(0) = %u, succ(1) = %u, p = P(1|0) = %.6f, q = P(0|1) = %.6f",
         src.p0[0], src.p0[1], src.succ[1][0], src.succ[1][1], P01, P10);
    is_double(pi0, src.pi[0], 1e-15, "two-symbol chain: pi_0 = q / (p + q)");
    is_double(pi1, src.pi[1], 1e-15, "two-symbol chain: pi_1 = p / (p + q)");
    is_double(pi0 * h2(P01) + pi1 * h2(P10), src.entropy_rate, 1e-15, "two-symbol chain: H = pi_0 h(p) + pi_1 h(q)");
    /* the same numbers by hand: with seed 4, P0 = (2/3, 1/3), succ(0) = 1,
     * succ(1) = 0, so p = 0.3/3 + 0.7 = 0.8, q = 0.6/3 + 0.7 = 0.9,
     * pi = (9/17, 8/17) and H = 9/17 h(0.8) + 8/17 h(0.9) */
    ok(src.p0[0] == 2.0 / 3 && src.succ[1][0] == 1 && src.succ[1][1] == 0, "seed 4: P0(0) = 2/3, succ = (1, 0)");
    is_double(9.0 / 17, src.pi[0], 1e-15, "two-symbol chain, seed 4: pi_0 = 9/17");
    is_double(0.41789915288089863, src.entropy_rate, 1e-15,
              "two-symbol chain, seed 4: H = 9/17 h(0.8) + 8/17 h(0.9) = 0.417899 nats");
    qid_corpus_source_free(&src);
}

static void test_dense_reference(void)
{
    /* a small source with every feature: unigram floor, orders 1..3 */
    const double mix[] = {0.1, 0.2, 0.3, 0.4};
    qid_corpus_params p = params(7, 3, 3, 0.8, mix, 21);
    qid_corpus_source src;
    build(&p, &src);
    double *P = dense(&src);
    int rows_sum = 1;
    for (size_t c = 0; c < src.n_ctx; c++) {
        double s = 0;
        for (size_t x = 0; x < src.V; x++)
            s += P[c * src.V + x];
        if (fabs(s - 1) > 1e-14) rows_sum = 0;
    }
    ok(rows_sum, "every P(. | c) sums to 1 within 1e-14 (343 contexts)");
    double r = dense_residual(&src, P, src.pi);
    ok(r < 1e-12, "pi P = pi to 1e-12 in L1 (%.2g) after %d iterations", r, src.iterations);
    is_double(r, src.residual, 1e-14, "the residual corpus.c reports matches the dense one");
    double *pi = dense_pi(&src, P), d = 0;
    for (size_t c = 0; c < src.n_ctx; c++)
        d = fmax(d, fabs(pi[c] - src.pi[c]));
    ok(d < 1e-14, "pi equals a dense power iteration from another start (max diff %.2g)", d);
    is_double(dense_entropy_rate(&src, P, pi), src.entropy_rate, 1e-13, "H equals the dense sum over contexts");
    /* h_1 from the dense bigram joint J(a, x) = sum_{c ends in a} pi(c) P(x|c) */
    double J[7][7] = {{0}}, m[7] = {0}, h1 = 0;
    for (size_t c = 0; c < src.n_ctx; c++)
        for (size_t x = 0; x < 7; x++)
            J[c % 7][x] += pi[c] * P[c * 7 + x];
    for (int a = 0; a < 7; a++)
        for (int x = 0; x < 7; x++)
            m[a] += J[a][x];
    for (int a = 0; a < 7; a++)
        for (int x = 0; x < 7; x++)
            h1 -= J[a][x] * log(J[a][x] / m[a]);
    is_double(h1, src.h[1], 1e-13, "bigram entropy h_1 equals H(X_t | X_t-1) from the dense joint");
    double h0 = 0;
    for (int a = 0; a < 7; a++)
        h0 -= m[a] * log(m[a]);
    is_double(h0, src.h[0], 1e-13, "unigram entropy h_0 equals H of the stationary marginal");
    ok(src.h[0] >= src.h[1] && src.h[1] >= src.h[2] && src.h[2] >= src.h[3],
       "conditional entropies do not grow with context: %.6f >= %.6f >= %.6f >= %.6f", src.h[0], src.h[1], src.h[2],
       src.h[3]);
    /* window floor: (h1 + h2 + (L - 3) H) / (L - 1) for k = 3 */
    is_double((src.h[1] + src.h[2] + 7 * src.h[3]) / 9, qid_corpus_loss_floor(&src, 10), 1e-15,
              "loss floor of 10-token windows = (h1 + h2 + 7 H) / 9");
    is_double(src.h[1], qid_corpus_loss_floor(&src, 2), 1e-15, "loss floor of 2-token windows = h1");
    free(pi);
    free(P);
    qid_corpus_source_free(&src);

    /* the demo's default source: pi P = pi with the dense 16384 x 128 matrix */
    qid_corpus_params_default(&p);
    build(&p, &src);
    P = dense(&src);
    r = dense_residual(&src, P, src.pi);
    ok(r < 1e-12, "default source (V 128, k 2): pi P = pi to 1e-12 in L1 (%.2g)", r);
    is_double(dense_entropy_rate(&src, P, src.pi), src.entropy_rate, 1e-12, "default source: H = %.6f nats/token",
              src.entropy_rate);
    free(P);
    qid_corpus_source_free(&src);
}

/* Mean of -log P(x_t | ctx_t) over a long stream vs H: batch means give a
 * standard error that allows for the correlation of successive contexts;
 * the martingale part -log P - H(ctx) has uncorrelated terms. */
static void test_empirical(void)
{
    qid_corpus_params p;
    qid_corpus_params_default(&p);
    qid_corpus_source src;
    build(&p, &src);
    size_t n = (size_t)1 << 21, nb = 64, per = n / nb;
    uint16_t *t = malloc(n * sizeof *t);
    if (!t) bail("out of memory");
    qid_corpus_stream s;
    qid_corpus_stream_init(&s, &src, 7);
    qid_corpus_generate(&s, t, n);
    size_t ctx = 0;
    for (int i = 0; i < src.k; i++)
        ctx = ctx * src.V + t[i];
    /* H(P(. | c)) of every context, from the dense probabilities */
    double *hctx = calloc(src.n_ctx, sizeof *hctx);
    if (!hctx) bail("out of memory");
    for (size_t c = 0; c < src.n_ctx; c++)
        for (size_t x = 0; x < src.V; x++) {
            double px = qid_corpus_prob(&src, c, (uint32_t)x);
            if (px > 0) hctx[c] -= px * log(px);
        }
    double bm[64] = {0}, sum = 0, ss = 0, mg = 0, mg2 = 0;
    size_t cnt = 0;
    for (size_t i = (size_t)src.k; i < n; i++) {
        double l = -log(qid_corpus_prob(&src, ctx, t[i])), hc = hctx[ctx];
        bm[i / per] += l;
        sum += l;
        mg += l - hc;
        mg2 += (l - hc) * (l - hc);
        cnt++;
        ctx = qid_corpus_next_ctx(&src, ctx, t[i]);
    }
    double mean = sum / (double)cnt;
    for (size_t b = 0; b < nb; b++) {
        double m = bm[b] / (double)(per - (b == 0 ? (size_t)src.k : 0));
        ss += (m - mean) * (m - mean);
    }
    double se = sqrt(ss / (double)(nb - 1) / (double)nb);
    diag("empirical log-loss over %zu tokens: %.6f, H %.6f, batch-means SE %.2g", cnt, mean, src.entropy_rate, se);
    ok(fabs(mean - src.entropy_rate) < 4 * se, "mean -log P(next | ctx) is within 4 SE of H (%.2f SE)",
       (mean - src.entropy_rate) / se);
    double mm = mg / (double)cnt, mse = sqrt((mg2 / (double)cnt - mm * mm) / (double)cnt);
    ok(fabs(mm) < 4 * mse, "the martingale part -log P - H(ctx) has mean 0 within 4 SE (%.2f SE)", mm / mse);
    int below = 1;
    for (size_t i = 0; i < n; i++)
        if (t[i] >= 128) below = 0;
    ok(below, "every generated id is below the vocabulary");
    free(t);
    free(hctx);
    qid_corpus_source_free(&src);
}

static void test_determinism(void)
{
    qid_corpus_params p;
    qid_corpus_params_default(&p);
    qid_corpus_source a, b;
    build(&p, &a);
    build(&p, &b);
    ok(memcmp(a.succ[2], b.succ[2], a.n_ctx * a.b * sizeof(uint16_t)) == 0 && a.entropy_rate == b.entropy_rate,
       "same parameters: identical tables and entropy rate");
    size_t n = 100000;
    uint16_t *x = malloc(n * 2), *y = malloc(n * 2), *z = malloc(n * 2);
    if (!x || !y || !z) bail("out of memory");
    qid_corpus_stream s;
    qid_corpus_stream_init(&s, &a, 1);
    qid_corpus_generate(&s, x, n);
    qid_corpus_stream_init(&s, &b, 1);
    qid_corpus_generate(&s, y, 1000); /* in pieces: the same stream */
    qid_corpus_generate(&s, y + 1000, 1);
    qid_corpus_generate(&s, y + 1001, n - 1001);
    ok(memcmp(x, y, n * 2) == 0, "same seed and stream: identical tokens, however the stream is cut");
    qid_corpus_stream_init(&s, &a, 2);
    qid_corpus_generate(&s, z, n);
    size_t same = 0;
    for (size_t i = 0; i < n; i++)
        same += x[i] == z[i];
    ok(same < n / 5, "streams 1 and 2 differ (%zu of %zu positions agree)", same, n);
    qid_corpus_source_free(&b);
    p.seed = 2;
    build(&p, &b);
    ok(memcmp(a.succ[2], b.succ[2], a.n_ctx * a.b * sizeof(uint16_t)) != 0 && a.entropy_rate != b.entropy_rate,
       "another seed: other tables (H %.6f vs %.6f)", a.entropy_rate, b.entropy_rate);
    qid_corpus_stream_init(&s, &b, 1);
    qid_corpus_generate(&s, z, n);
    same = 0;
    for (size_t i = 0; i < n; i++)
        same += x[i] == z[i];
    ok(same < n / 5, "another seed, same stream id: other tokens (%zu agree)", same);
    /* a reference vector: the first tokens of the default train stream (a
     * change here changes every corpus: bump QID_CORPUS_VERSION) */
    static const uint16_t first[12] = {52, 67, 26, 46, 92, 71, 46, 127, 14, 56, 114, 95};
    int match = 1;
    for (int i = 0; i < 12; i++)
        match &= x[i] == first[i];
    ok(match, "default source, stream 1 starts 52 67 26 46 92 71 46 127 14 56 114 95 (markov-zipf version 1)");
    is_double(2.527220, a.entropy_rate, 5e-7, "default source: entropy rate 2.527220 nats/token");
    free(x);
    free(y);
    free(z);
    qid_corpus_source_free(&a);
    qid_corpus_source_free(&b);
}

static void test_params(void)
{
    qid_corpus_params p;
    qid_corpus_params_default(&p);
    char buf[256];
    qid_corpus_params_format(&p, buf, sizeof buf);
    is_string("--vocab 128 --order 2 --branching 8 --zipf 1 --mix 0.05,0.55,0.4 --seed 1", buf,
              "default parameters as options");
    p.zipf = 0.1 + 0.2;
    p.mix[1] = 1.0 / 3;
    qid_corpus_params_format(&p, buf, sizeof buf);
    like(buf, "--zipf 0.30000000000000004 --mix 0.05,0.3333333333333333,0.4", "doubles in their shortest exact form");
    double m3[QID_CORPUS_MAX_ORDER + 1];
    qid_corpus_default_mix(3, m3);
    ok(m3[0] == 0.05 && m3[1] == 0.55 / 2 && m3[2] == 0.55 / 2 && m3[3] == 0.4, "default mix for order 3");
    qid_corpus_default_mix(1, m3);
    ok(m3[0] == 0.05 && m3[1] == 0.95, "default mix for order 1");

    struct {
        qid_corpus_params p;
        const char *msg;
    } bad[] = {
        {params(1, 1, 1, 1, NULL, 1), "--vocab 1 is outside 2..65536"},
        {params(128, 5, 8, 1, NULL, 1), "--order 5 is outside 1..4"},
        {params(128, 2, 129, 1, NULL, 1), "--branching 129 is outside 1..128 (the vocabulary)"},
        {params(128, 2, 8, 9, NULL, 1), "--zipf 9 is outside 0..8"},
        {params(4096, 2, 8, 1, NULL, 1), "--vocab 4096 --order 2 has more than 4194304 contexts"},
        {params(2048, 2, 1024, 1, NULL, 1), "needs more than 67108864 successor entries"},
        {params(128, 2, 8, 1, (const double[]){0, 1, 0}, 1),
         "--mix gives no weight to the unigram (w_0) nor to order 2"},
        {params(128, 2, 8, 1, (const double[]){0.1, -1, 1}, 1), "--mix weight 1 is -1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qid_error err;
        qid_error_clear(&err);
        qid_corpus_source src;
        int rc = qid_corpus_source_build(&bad[i].p, &src, &err);
        is_int(QID_E_INVALID, rc, "bad parameters %zu rejected", i);
        like(err.msg, bad[i].msg, "bad parameters %zu: message", i);
    }
    /* w_0 = 0 with a reducible chain: successors of V 8, b 1 */
    qid_error err;
    qid_error_clear(&err);
    qid_corpus_source src;
    p = params(8, 1, 1, 0, (const double[]){0, 1}, 1);
    int rc = qid_corpus_source_build(&p, &src, &err);
    is_int(QID_E_INVALID, rc, "a chain of single successors (V 8, b 1, w_0 0) is refused");
    like(err.msg, "is not irreducible", "reducible chain: message");
    like(err.msg, "give the unigram weight w_0 in --mix a positive value", "reducible chain: hint");
    p = params(32, 2, 8, 0, (const double[]){0, 0, 1}, 3);
    qid_error_clear(&err);
    rc = qid_corpus_source_build(&p, &src, &err);
    is_int(QID_E_INVALID, rc, "V 32, k 2, b 8, w_0 0, seed 3 (a context nothing leads to) is refused");
    like(err.msg, "context 616 cannot be reached from context 0", "unreachable context: message names it");
    /* periodic: V 2, b 1, w_0 0 and succ(0) = 1, succ(1) = 0 for some seed */
    int found = 0;
    for (uint64_t seed = 0; seed < 64 && !found; seed++) {
        p = params(2, 1, 1, 0, (const double[]){0, 1}, seed);
        qid_error_clear(&err);
        rc = qid_corpus_source_build(&p, &src, &err);
        if (rc && strstr(err.msg, "periodic")) found = 1;
        if (!rc) qid_corpus_source_free(&src);
    }
    ok(found, "a 2-cycle (V 2, b 1, w_0 0) is refused as periodic: %s", err.msg);
}

/* ---- writers ---------------------------------------------------------------- */

static size_t count_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return (size_t)-1;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static uint32_t *read_all(const char *path, qid_tokens_meta *m)
{
    qid_tokens t;
    qid_error err;
    qid_error_clear(&err);
    if (qid_tokens_open(path, &t, &err)) bail("cannot open %s: %s", path, err.msg);
    *m = t.meta;
    size_t n = (size_t)(t.meta.n_windows * t.meta.seq_len);
    uint32_t *ids = malloc(n * sizeof *ids);
    if (!ids || qid_tokens_read(&t, 0, (size_t)t.meta.n_windows, ids, &err)) bail("cannot read %s", path);
    qid_tokens_close(&t);
    return ids;
}

static void test_write_synthetic(void)
{
    qid_corpus_params p;
    qid_corpus_params_default(&p);
    qid_corpus_source src;
    build(&p, &src);
    const char *dir = tap_path("syn");
    qid_corpus_write_opts o = {.outdir = dir, .seq_len = 64, .tokens = {0, 1000, 640, 65}};
    qid_corpus_written w;
    qid_error err;
    qid_error_clear(&err);
    int rc = qid_corpus_write_synthetic(&src, &o, &w, &err);
    is_int(QID_OK, rc, "synthetic corpus written (%s)", err.msg);
    is_int(3, (long long)count_entries(dir), "DIR holds train.h5, eval.h5, calib.h5 and nothing staged");
    is_int(16, w.windows[QID_CORPUS_TRAIN], "1000 train tokens: 16 windows of 64 (rounded up)");
    is_int(10, w.windows[QID_CORPUS_EVAL], "640 eval tokens: 10 windows");
    is_int(2, w.windows[QID_CORPUS_CALIB], "65 calib tokens: 2 windows");
    qid_tokens_meta m;
    uint32_t *ids = read_all(w.path[QID_CORPUS_TRAIN], &m);
    uint16_t *ref = malloc(1024 * sizeof *ref);
    qid_corpus_stream s;
    qid_corpus_stream_init(&s, &src, QID_CORPUS_TRAIN);
    qid_corpus_generate(&s, ref, 1024);
    int same = 1;
    for (size_t i = 0; i < 1024; i++)
        same &= ids[i] == ref[i];
    ok(same, "train.h5 holds stream 1 of the source, in order");
    is_string("synthetic", m.tokenizer, "tokenizer 'synthetic'");
    is_int(128, m.vocab_size, "vocab_size 128");
    is_string("train.u16", m.source_file, "source_file names the staged stream");
    free(ids);
    uint32_t *ev = read_all(w.path[QID_CORPUS_EVAL], &m);
    qid_corpus_stream_init(&s, &src, QID_CORPUS_EVAL);
    qid_corpus_generate(&s, ref, 640);
    same = 1;
    for (size_t i = 0; i < 640; i++)
        same &= ev[i] == ref[i];
    ok(same, "eval.h5 holds stream 2");
    free(ev);

    hid_t fid = H5Fopen(w.path[QID_CORPUS_CALIB], H5F_ACC_RDONLY, H5P_DEFAULT);
    char sbuf[256];
    int64_t iv = 0;
    double dv = 0;
    qid_h5_attr_read_str(fid, "/", "corpus_generator", sbuf, sizeof sbuf, &err);
    is_string("markov-zipf", sbuf, "calib.h5: corpus_generator");
    qid_h5_attr_read_str(fid, "/", "corpus_part", sbuf, sizeof sbuf, &err);
    is_string("calib", sbuf, "calib.h5: corpus_part");
    qid_h5_attr_read_str(fid, "/", "corpus_params", sbuf, sizeof sbuf, &err);
    is_string("--vocab 128 --order 2 --branching 8 --zipf 1 --mix 0.05,0.55,0.4 --seed 1", sbuf,
              "calib.h5: corpus_params");
    qid_h5_attr_read_i64(fid, "/", "corpus_stream", &iv, &err);
    is_int(3, iv, "calib.h5: corpus_stream 3");
    qid_h5_attr_read_f64(fid, "/", "entropy_rate", &dv, &err);
    ok(dv == src.entropy_rate, "calib.h5: entropy_rate exactly the source's");
    qid_h5_attr_read_f64(fid, "/", "loss_floor", &dv, &err);
    ok(dv == qid_corpus_loss_floor(&src, 64), "calib.h5: loss_floor for 64-token windows");
    qid_h5_attr_read_f64(fid, "/", "bigram_entropy", &dv, &err);
    ok(dv == src.h[1], "calib.h5: bigram_entropy");
    H5Fclose(fid);

    /* existing outputs: refused without force, untouched */
    struct stat before, after;
    stat(w.path[QID_CORPUS_TRAIN], &before);
    o.tokens[QID_CORPUS_TRAIN] = 2000;
    qid_error_clear(&err);
    rc = qid_corpus_write_synthetic(&src, &o, &w, &err);
    is_int(QID_E_INVALID, rc, "existing outputs without force are refused");
    like(err.msg, "train.h5' exists (use --force to replace it)", "existing output: message");
    stat(w.path[QID_CORPUS_TRAIN], &after);
    ok(before.st_size == after.st_size && before.st_ino == after.st_ino, "existing train.h5 untouched");
    o.force = 1;
    qid_error_clear(&err);
    rc = qid_corpus_write_synthetic(&src, &o, &w, &err);
    is_int(QID_OK, rc, "--force replaces them");
    is_int(32, w.windows[QID_CORPUS_TRAIN], "replaced train.h5 has 32 windows");
    is_int(3, (long long)count_entries(dir), "still only the three files");

    /* a failure in the middle (output directory is a file) leaves nothing */
    const char *file = tap_path("plainfile");
    tap_write_file(file, "x", 1);
    o.outdir = file;
    qid_error_clear(&err);
    rc = qid_corpus_write_synthetic(&src, &o, &w, &err);
    is_int(QID_E_INVALID, rc, "an output path that is a file is refused");
    like(err.msg, "exists and is not a directory", "output is a file: message");
    o.outdir = tap_path("missing/deeper");
    qid_error_clear(&err);
    rc = qid_corpus_write_synthetic(&src, &o, &w, &err);
    is_int(QID_E_IO, rc, "an output directory whose parent is missing fails");
    like(err.msg, "cannot create directory", "missing parent: message");
    ok(!tap_exists(tap_path("missing")), "missing parent: nothing created");
    free(ref);
    qid_corpus_source_free(&src);
}

static void test_text(void)
{
    int64_t off[4], len[4];
    qid_error err;
    qid_error_clear(&err);
    is_int(QID_OK, qid_corpus_split_text(10000, 100, 0.1, 0.05, off, len, &err), "split 10000 bytes in 100s");
    ok(off[1] == 0 && len[1] == 8500 && off[2] == 8500 && len[2] == 1000 && off[3] == 9500 && len[3] == 500,
       "train 85 windows, eval 10, calib 5");
    is_int(QID_OK, qid_corpus_split_text(10077, 100, 0.1, 0.05, off, len, &err), "split 10077 bytes");
    ok(off[3] == 9500 && len[3] == 577 && off[3] + len[3] == 10077, "the last part runs to the end of the file");
    qid_error_clear(&err);
    is_int(QID_E_INVALID, qid_corpus_split_text(250, 100, 0.1, 0.05, off, len, &err), "2 windows are too few");
    like(err.msg, "250 bytes make 2 windows of 100, too few to give train, eval and calib one each",
         "too few windows: message");

    /* a file of 5000 pseudo-random bytes, windows of 64 */
    size_t n = 5000;
    uint8_t *text = malloc(n);
    tap_seed(3);
    for (size_t i = 0; i < n; i++)
        text[i] = (uint8_t)(tap_rand() >> 56);
    const char *path = tap_path("book.txt");
    tap_write_file(path, text, n);
    const char *dir = tap_path("text");
    qid_corpus_write_opts o = {.outdir = dir, .seq_len = 64, .text = path, .eval_frac = 0.2, .calib_frac = 0.1};
    qid_corpus_written w;
    qid_error_clear(&err);
    int rc = qid_corpus_write_text(&o, &w, &err);
    is_int(QID_OK, rc, "text corpus written (%s)", err.msg);
    is_int(3, (long long)count_entries(dir), "DIR holds the three files only");
    /* 78 windows: eval round(15.6) = 16, calib round(7.8) = 8, train 54 */
    ok(w.windows[1] == 54 && w.windows[2] == 16 && w.windows[3] == 8,
       "windows 54 / 16 / 8 (%" PRId64 "/%" PRId64 "/%" PRId64 ")", w.windows[1], w.windows[2], w.windows[3]);
    size_t pos = 0;
    int same = 1;
    int64_t dropped = 0;
    for (int part = 1; part <= 3; part++) {
        qid_tokens_meta m;
        uint32_t *ids = read_all(w.path[part], &m);
        for (size_t i = 0; i < (size_t)(m.n_windows * m.seq_len); i++)
            same &= ids[i] == text[pos + i];
        pos += (size_t)(m.n_windows * m.seq_len);
        dropped += m.tokens_dropped;
        if (part == 1) is_string("book.txt", m.source_file, "source_file is the text file's name");
        free(ids);
    }
    ok(same && pos + (size_t)dropped == n, "train | eval | calib windows and the dropped tail concatenate to the file");
    is_int(5000 - 78 * 64, dropped, "only the last part drops a tail (%" PRId64 " bytes)", dropped);
    hid_t fid = H5Fopen(w.path[2], H5F_ACC_RDONLY, H5P_DEFAULT);
    int64_t a = 0, b = 0;
    qid_h5_attr_read_i64(fid, "/", "source_offset", &a, &err);
    qid_h5_attr_read_i64(fid, "/", "source_length", &b, &err);
    ok(a == 54 * 64 && b == 16 * 64, "eval.h5: source_offset %" PRId64 ", source_length %" PRId64, a, b);
    H5Fclose(fid);

    /* bad input: nothing written, no directory created */
    const char *dir2 = tap_path("text2");
    o.outdir = dir2;
    o.text = tap_path("no-such.txt");
    qid_error_clear(&err);
    rc = qid_corpus_write_text(&o, &w, &err);
    is_int(QID_E_IO, rc, "a missing text file fails");
    like(err.msg, "cannot open '", "missing file: message");
    const char *tiny = tap_path("tiny.txt");
    tap_write_file(tiny, text, 150);
    o.text = tiny;
    qid_error_clear(&err);
    rc = qid_corpus_write_text(&o, &w, &err);
    is_int(QID_E_INVALID, rc, "a file too small for three parts fails");
    like(err.msg, "cannot split '", "too small: message names the file");
    o.text = tap_tmpdir();
    qid_error_clear(&err);
    rc = qid_corpus_write_text(&o, &w, &err);
    is_int(QID_E_IO, rc, "a directory as the text file fails");
    like(err.msg, "is not a regular file", "directory: message");
    ok(!tap_exists(dir2), "bad input: no output directory created");
    free(text);
}

int main(void)
{
    plan(111);
    test_analytic();
    test_dense_reference();
    test_empirical();
    test_determinism();
    test_params();
    test_write_synthetic();
    test_text();
    return 0;
}
