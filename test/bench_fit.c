/* bench_fit.c - cost of the regression core at the scale of Ouyang et al.
 * (about 1500 points) and of the predictor, and a calibration study of the
 * bootstrap: how often the 95% intervals of laws fitted to synthetic data
 * cover the true coefficients. Prints; asserts nothing (docs/testing.md: no timed
 * assertions in tests).
 *
 *   build/bench/fit [replicates]      (default 50 replicates)
 */
#include "fit.h"

#include "bench.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const double sizes[8] = {7e7, 1.6e8, 4.1e8, 1.0e9, 1.4e9, 2.8e9, 6.9e9, 1.2e10};

/* As test_fit.c: Pythia-like N, log-uniform D in [2e9, 3e11], P = 2, 3, 4,
 * se = sqrt((rel q)^2 + abs^2). */
static void gen(qid_fit_obs *o, size_t n, uint64_t seed, double rel, double abs_se)
{
    const qid_fit_law *law = &QID_FIT_LAW_OUYANG;
    qid_rng r;
    qid_rng_seed(&r, seed, 0);
    size_t k = 0;
    for (int c = 0; k < n; c++) {
        double N = sizes[c % 8], D = exp(log(2e9) + qid_rng_uniform(&r) * (log(3e11) - log(2e9)));
        for (int P = 2; P <= 4 && k < n; P++) {
            double q = qid_fit_law_eval(law, N, D, P), se = sqrt(rel * rel * q * q + abs_se * abs_se);
            o[k++] = (qid_fit_obs){c, c % 8, N, D, P, q + se * qid_rng_normal(&r), se, NAN, NAN, 0};
        }
    }
}

static void die(const char *what, const qid_error *e)
{
    fprintf(stderr, "bench_fit: %s: %s\n", what, e->msg);
    exit(1);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 50;
    qid_error e;
    qid_fit_opts op;
    qid_fit_opts_init(&op);

    size_t n = 1500;
    qid_fit_obs *o = malloc(n * sizeof *o);
    gen(o, n, 3, 0.05, 0.005);
    qid_fit_result r;
    double t0 = now();
    for (int i = 0; i < 20; i++)
        if (qid_fit_law_fit(o, n, &op, &r, &e)) die("fit", &e);
    double t_fit = (now() - t0) / 20;
    qid_fit_boot b;
    t0 = now();
    if (qid_fit_law_bootstrap(o, n, &op, &b, &e)) die("bootstrap", &e);
    double t_boot = now() - t0;
    qid_fit_lomo lomo;
    t0 = now();
    if (qid_fit_law_lomo(o, n, &op, &lomo, &e)) die("lomo", &e);
    double t_lomo = now() - t0;
    printf(
        "fit: law on %zu points %.2f ms (%d LM iterations); bootstrap %zu draws %.2f s; leave-one-size-out %.1f ms\n",
        n, 1e3 * t_fit, r.conv.iterations, b.n_draws, t_boot, 1e3 * t_lomo);
    qid_fit_boot_free(&b);
    qid_fit_lomo_free(&lomo);
    free(o);

    size_t rows = 2000, feat = 8;
    double *x = malloc(rows * feat * sizeof *x), *y = malloc(rows * sizeof *y);
    qid_rng g;
    qid_rng_seed(&g, 4, 0);
    for (size_t i = 0; i < rows; i++) {
        for (size_t j = 0; j < feat; j++)
            x[i * feat + j] = qid_rng_uniform(&g);
        y[i] = sin(6 * x[i * feat]) + x[i * feat + 1] * x[i * feat + 2] + 0.1 * qid_rng_normal(&g);
    }
    qid_fit_forest_opts fo;
    qid_fit_forest_opts_init(&fo);
    qid_fit_forest *f;
    t0 = now();
    if (qid_fit_forest_train(x, y, rows, feat, &fo, &f, &e)) die("forest", &e);
    double t_train = now() - t0;
    t0 = now();
    double s = 0;
    for (size_t i = 0; i < rows; i++)
        s += qid_fit_forest_predict(f, x + i * feat);
    double t_pred = now() - t0;
    printf("fit: forest %zu trees on %zu x %zu: train %.2f s (%zu nodes), predict %.1f us/row (checksum %.6g)\n",
           fo.n_trees, rows, feat, t_train, qid_fit_forest_n_nodes(f), 1e6 * t_pred / (double)rows, s);
    qid_fit_forest_free(f);
    free(x);
    free(y);

    /* Coverage of the 95% percentile intervals (whole-checkpoint resampling). */
    static const size_t counts[2] = {40, 400};
    for (int c = 0; c < 2; c++) {
        size_t m = counts[c];
        qid_fit_obs *d = malloc(m * sizeof *d);
        const qid_fit_law *T = &QID_FIT_LAW_OUYANG;
        double tv[4] = {T->k, T->alpha, T->beta, T->gamma};
        int cover[4] = {0, 0, 0, 0}, done = 0;
        qid_fit_opts bo = op;
        bo.n_boot = 200;
        t0 = now();
        for (int rep = 0; rep < reps; rep++) {
            gen(d, m, 1000 + (uint64_t)rep, 0.05, 0.002);
            bo.seed = (uint64_t)rep;
            qid_fit_boot bb;
            if (qid_fit_law_bootstrap(d, m, &bo, &bb, &e)) continue;
            double lo[4] = {bb.lo.k, bb.lo.alpha, bb.lo.beta, bb.lo.gamma};
            double hi[4] = {bb.hi.k, bb.hi.alpha, bb.hi.beta, bb.hi.gamma};
            for (int j = 0; j < 4; j++)
                cover[j] += lo[j] <= tv[j] && tv[j] <= hi[j];
            done++;
            qid_fit_boot_free(&bb);
        }
        printf("fit: 95%% bootstrap coverage, %zu points, %d data sets x 200 draws: k %.2f alpha %.2f beta %.2f "
               "gamma %.2f (%.1f s)\n",
               m, done, cover[0] / (double)done, cover[1] / (double)done, cover[2] / (double)done,
               cover[3] / (double)done, now() - t0);
        free(d);
    }
    return 0;
}
