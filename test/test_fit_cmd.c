/* test_fit_cmd.c - `qid fit` through its C API (cli_fit.h) on a synthetic
 * results store written with qid_results_open/append from a known law with
 * noise: 4 model sizes x 5 checkpoints x bits 2/3/4 (60 points), one
 * baseline row per checkpoint from the 16-bit law of Ouyang et al., plus a
 * failed row and a probes row that must be left out. Checks the recovered
 * coefficients against their bootstrap intervals, /fits/<name> read back,
 * the filters' point counts, the too-few-points warning, the degenerate
 * one-model-size error, and the lock message when another process holds the
 * store.
 *
 * `fit_cmd.t --write-store PATH` only writes that store (test/cmd_fit.t
 * uses it for the CLI). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>

#include "cli_fit.h"
#include "fit_store.h"
#include "h5io.h"
#include "results.h"
#include "rng.h"
#include "tap.h"

static const double true_n[] = {1e8, 3e8, 1e9, 3e9};
static const double true_d[] = {1e10, 3e10, 1e11, 3e11, 1e12};
static const int true_p[] = {2, 3, 4};

static void append(qid_results *r, const qid_result *row)
{
    qid_error err;
    qid_error_clear(&err);
    if (qid_results_append(r, row, &err)) bail("append: %s", err.msg);
}

/* What write_store writes. */
enum store_kind {
    STORE_LAW = 0,         /* the law with noise (below) */
    STORE_NONPOSITIVE = 1, /* the same rows with QiD <= 0 everywhere */
    STORE_COLLINEAR = 2,   /* one checkpoint per model at D = 30 N: D and N collinear */
    STORE_FLAT_FUTURE = 3, /* the law, but QiD <= 0 at D >= 3e11 (the last third of log D): no future to predict */
    STORE_LR = 4,          /* the law, learning rates 0.2 + 0.2 ((i + j) mod 5) of model i's checkpoint j: apart from D
                              (no effect on QiD) */
    STORE_LR_FLAT = 5,     /* the law, every checkpoint at learning rate 0.5 */
    STORE_NOISY4 = 6,      /* the law, but 4-bit QiD scattered by a factor e^(0.8 z): no law of its own */
};

/* The synthetic store: law QID_FIT_LAW_OUYANG with 5% log-normal noise,
 * se = 5% of the law's value. */
static void write_store(const char *path, enum store_kind kind)
{
    qid_error err;
    qid_error_clear(&err);
    qid_results *r = qid_results_open(path, NULL, &err);
    if (!r) bail("open %s: %s", path, err.msg);
    qid_rng rng;
    qid_rng_seed(&rng, 42, 0);
    char key[128], ckpt[64], model[16], sha[80];
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < (kind == STORE_COLLINEAR ? 1u : 5u); j++) {
            double D = kind == STORE_COLLINEAR ? 30 * true_n[i] : true_d[j];
            snprintf(model, sizeof model, "m%zu", i + 1);
            snprintf(ckpt, sizeof ckpt, "ck/m%zu-%zu.h5", i + 1, j);
            snprintf(sha, sizeof sha, "sha-%zu-%zu", i, j);
            /* the tensor hash of a real checkpoint file for m2-3 (cmd_fit.t: a checkpoint found by its hash) */
            if (i == 1 && j == 3 && getenv("QID_TEST_M23_SHA"))
                snprintf(sha, sizeof sha, "%s", getenv("QID_TEST_M23_SHA"));
            double l16 = qid_fit_loss16_eval(&QID_FIT_LOSS16_OUYANG, true_n[i], D) * exp(0.005 * qid_rng_normal(&rng));
            qid_result row = {.checkpoint = ckpt,
                              .model = model,
                              .ckpt_sha256 = sha,
                              .params = (int64_t)true_n[i],
                              .tokens_seen = (int64_t)D,
                              .step = (int64_t)j,
                              .lr_frac = kind == STORE_LR        ? 0.2 + 0.2 * (double)((i + j) % 5)
                                         : kind == STORE_LR_FLAT ? 0.5
                                                                 : NAN,
                              .bits = 16,
                              .elem_bits = -1,
                              .block = -1,
                              .options = "-",
                              .eval_protocol = "windows=64",
                              .eval_sha256 = "e",
                              .loss = l16,
                              .loss16 = l16,
                              .qid = 0,
                              .qid_se = NAN,
                              .sqnr_db = NAN,
                              .kl = NAN,
                              .tokens = 1000,
                              .windows = 0,
                              .rank = 0,
                              .status = QID_RESULT_OK};
            snprintf(key, sizeof key, "%s|baseline", ckpt);
            row.key = key;
            row.method = "baseline";
            row.format = "";
            append(r, &row);
            for (size_t k = 0; k < 3; k++) {
                double law = qid_fit_law_eval(&QID_FIT_LAW_OUYANG, true_n[i], D, true_p[k]);
                char fmt[32];
                snprintf(fmt, sizeof fmt, "int%d-g128-sym", true_p[k]);
                snprintf(key, sizeof key, "%s|rtn|%s", ckpt, fmt);
                row.method = "rtn";
                row.format = fmt;
                row.elem_bits = true_p[k];
                row.bits = true_p[k] + 0.125;
                row.qid = law * exp((kind == STORE_NOISY4 && true_p[k] == 4 ? 0.8 : 0.05) * qid_rng_normal(&rng));
                row.qid_se = 0.05 * law;
                if (kind == STORE_NONPOSITIVE || (kind == STORE_FLAT_FUTURE && j >= 3))
                    row.qid = -0.5 * row.qid_se * (double)k;
                row.loss = l16 + row.qid;
                append(r, &row);
            }
            row.elem_bits = -1;
        }
    qid_result failed = {.key = "ck/m1-0.h5|gptq|int4-g128",
                         .checkpoint = "ck/m1-0.h5",
                         .model = "m1",
                         .params = 100000000,
                         .tokens_seen = 10000000000,
                         .method = "gptq",
                         .format = "int4-g128-sym",
                         .elem_bits = 4,
                         .loss = NAN,
                         .loss16 = NAN,
                         .qid = NAN,
                         .qid_se = NAN,
                         .sqnr_db = NAN,
                         .kl = NAN,
                         .status = QID_RESULT_FAILED,
                         .error = "cannot open 'x'"};
    append(r, &failed);
    qid_result probes = failed;
    probes.key = "ck/m1-0.h5|probes";
    probes.method = "probes";
    probes.status = QID_RESULT_OK;
    probes.error = "";
    probes.qid = 1, probes.qid_se = 0.1;
    append(r, &probes);
    if (qid_results_close(r, &err)) bail("close: %s", err.msg);
}

/* The rows of store `from` appended to a new store `to` in reverse order, as
 * a run whose tasks finished in another order would leave them. */
static void write_reversed(const char *from, const char *to)
{
    qid_result *rows = NULL;
    size_t n = 0;
    qid_error err;
    qid_error_clear(&err);
    if (qid_results_read(from, &rows, &n, &err)) bail("read %s: %s", from, err.msg);
    qid_results *r = qid_results_open(to, NULL, &err);
    if (!r) bail("open %s: %s", to, err.msg);
    for (size_t i = n; i-- > 0;)
        append(r, &rows[i]);
    if (qid_results_close(r, &err)) bail("close: %s", err.msg);
    qid_results_rows_free(rows, n);
}

/* Reads what was written to the temporary file f into text[cap] and closes f. */
static void slurp(FILE *f, char *text, size_t cap)
{
    rewind(f);
    size_t got = fread(text, 1, cap - 1, f);
    text[got] = '\0';
    fclose(f);
}

static int in_ci(double v, double lo, double hi) { return v >= lo && v <= hi; }

int main(int argc, char **argv)
{
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "--write-store") == 0) {
        const char *k = argc == 4 ? argv[3] : "law";
        write_store(argv[2], strcmp(k, "nonpositive") == 0  ? STORE_NONPOSITIVE
                             : strcmp(k, "collinear") == 0  ? STORE_COLLINEAR
                             : strcmp(k, "flatfuture") == 0 ? STORE_FLAT_FUTURE
                             : strcmp(k, "law") == 0        ? STORE_LAW
                             : strcmp(k, "lr") == 0         ? STORE_LR
                             : strcmp(k, "lrflat") == 0     ? STORE_LR_FLAT
                             : strcmp(k, "noisy4") == 0     ? STORE_NOISY4
                                                            : (bail("unknown store kind '%s'", k), STORE_LAW));
        return 0;
    }
    plan(59);
    char store[512];
    snprintf(store, sizeof store, "%s/r.h5", tap_tmpdir());
    write_store(store, STORE_LAW);

    qid_fit_cmd_opts o;
    qid_fit_cmd_opts_init(&o);
    o.fit.n_boot = 200;
    o.fit.seed = 7;
    qid_fit_suite rep;
    qid_error err;
    qid_error_clear(&err);
    FILE *out = tmpfile();
    int rc = qid_fit_cmd_run(store, &o, out, &rep, &err);
    if (!is_int(QID_OK, rc, "fit: returns OK")) diag("%s", err.msg);
    is_int(60, (long long)rep.n_points, "fit: 60 points (failed and probes rows left out)");
    is_int(20, (long long)rep.n_checkpoints, "fit: 20 checkpoints");
    is_int(4, (long long)rep.n_models, "fit: 4 model sizes");
    ok(rep.law.conv.converged, "fit: converged");
    is_int(200, (long long)(rep.boot.n_draws + rep.boot.n_failed), "fit: 200 bootstrap draws");
    const qid_fit_law *L = &rep.law.law, *lo = &rep.boot.lo, *hi = &rep.boot.hi, *T = &QID_FIT_LAW_OUYANG;
    const qid_fit_law fitted = *L;
    diag("k %.5g [%.5g, %.5g] alpha %.4f [%.4f, %.4f] beta %.4f [%.4f, %.4f] gamma %.4f [%.4f, %.4f]", L->k, lo->k,
         hi->k, L->alpha, lo->alpha, hi->alpha, L->beta, lo->beta, hi->beta, L->gamma, lo->gamma, hi->gamma);
    /* recovery: the true coefficients lie inside the 95% bootstrap intervals,
     * and the estimates themselves are inside their own intervals */
    ok(in_ci(T->k, lo->k, hi->k) && in_ci(L->k, lo->k, hi->k), "recovery: k in its bootstrap interval");
    ok(in_ci(T->alpha, lo->alpha, hi->alpha) && in_ci(L->alpha, lo->alpha, hi->alpha), "recovery: alpha in interval");
    ok(in_ci(T->beta, lo->beta, hi->beta) && in_ci(L->beta, lo->beta, hi->beta), "recovery: beta in interval");
    ok(in_ci(T->gamma, lo->gamma, hi->gamma) && in_ci(L->gamma, lo->gamma, hi->gamma), "recovery: gamma in interval");
    ok(rep.law.r2_log > 0.99, "fit: R^2 (log) %.4f > 0.99", rep.law.r2_log);
    is_int(0, (long long)rep.n_warnings, "fit: no warnings on a good store (%s)", rep.warnings);
    is_int(3, (long long)rep.n_by_bits, "per-bit laws: 3 bit widths");
    ok(rep.n_by_bits == 3 && rep.by_bits[0].status == QID_OK && fabs(rep.by_bits[0].fit.law.beta - T->beta) < 0.05,
       "per-bit laws: P=2 beta within 0.05 of the truth");
    is_int(QID_OK, rep.loss16_status, "16-bit law: fitted (%s)", rep.loss16_msg);
    is_int(20, (long long)rep.n_loss16_points, "16-bit law: one point per checkpoint");
    ok(rep.lomo_status == QID_OK && rep.lomo.n_groups == 4, "lomo: 4 groups");
    {
        /* the same rows in another order (tasks finished otherwise): the same fit, to the bit */
        char reversed[600];
        snprintf(reversed, sizeof reversed, "%s/reversed.h5", tap_tmpdir());
        write_reversed(store, reversed);
        qid_fit_suite rev;
        if (qid_fit_cmd_run(reversed, &o, NULL, &rev, &err)) bail("fit of the reversed store: %s", err.msg);
        const qid_fit_law *a[3] = {&rev.law.law, &rev.boot.lo, &rev.boot.hi};
        const qid_fit_law *b[3] = {&rep.law.law, &rep.boot.lo, &rep.boot.hi};
        int same = rev.lomo.rmse == rep.lomo.rmse;
        for (int i = 0; i < 3; i++)
            same = same && a[i]->k == b[i]->k && a[i]->alpha == b[i]->alpha && a[i]->beta == b[i]->beta &&
                   a[i]->gamma == b[i]->gamma;
        ok(same, "rows in reverse store order: the same law, bootstrap interval and LOMO error, bit for bit");
        qid_fit_suite_free(&rev);
    }
    double width_all = hi->beta - lo->beta;

    /* per-factor laws: medians near the truth and the unified law */
    const size_t *nf = rep.n_factor, *uf = rep.factor_used;
    const double *mf = rep.factor_median;
    diag("per-factor medians: beta %.4f (%zu/%zu) alpha %.4f (%zu/%zu) gamma %.4f (%zu/%zu)", mf[0], uf[0], nf[0],
         mf[1], uf[1], nf[1], mf[2], uf[2], nf[2]);
    ok(nf[0] == 12 && uf[0] == 12 && fabs(mf[0] - T->beta) < 0.03,
       "per-factor D: 12 (N, P) groups fitted, median beta %.4f within 0.03 of %.4f", mf[0], T->beta);
    ok(nf[1] == 15 && uf[1] == 15 && fabs(mf[1] - T->alpha) < 0.03,
       "per-factor N: 15 (D, P) groups fitted, median alpha %.4f within 0.03 of %.4f", mf[1], T->alpha);
    ok(nf[2] == 20 && uf[2] == 20 && fabs(mf[2] - T->gamma) < 0.15,
       "per-factor P: 20 (N, D) groups fitted, median gamma %.4f within 0.15 of %.4f", mf[2], T->gamma);
    ok(isnan(rep.factor[0][0].d) && rep.factor[0][0].n == 1e8 && rep.factor[0][0].p == 2 && isnan(rep.factor[1][0].n) &&
           rep.factor[1][0].d == 1e10 && isnan(rep.factor[2][0].p),
       "per-factor groups: constant values set, the varying one NaN");
    {
        int64_t fid, g;
        if (qid_fit_store_open(store, "default", "qid fit", "default", &fid, &g, &err)) bail("open fit: %s", err.msg);
        hid_t fd = H5Gopen2((hid_t)g, "factors/D", H5P_DEFAULT);
        double med = NAN, *tab = NULL;
        size_t nrow = 0;
        if (fd < 0 || qid_h5_attr_read_f64(fd, "factors/D", "median", &med, &err) ||
            qid_fit_store_read_matrix(fd, "factors/D", "groups", 8, &tab, &nrow, &err))
            bail("factors/D: %s", err.msg);
        ok(med == mf[0] && nrow == 12 && tab[0] == 1e8 && isnan(tab[1]) && tab[2] == 2 && tab[3] == 5 && tab[4] == 0 &&
               tab[6] == rep.factor[0][0].fit.law.beta,
           "stored: /fits/default/factors/D median and its 12-row table (n, d, p, points, status, c, exponent)");
        free(tab);
        H5Gclose(fd);
        H5Gclose((hid_t)g);
        H5Fclose((hid_t)fid);
    }

    /* the printed report */
    char text[8192];
    slurp(out, text, sizeof text);
    like(text, "95% interval (bootstrap by checkpoint: ", "print: names the bootstrap interval");
    like(text, "converged after", "print: reports convergence");
    like(text, "written to /fits/default", "print: says where the fit went");
    like(text, "per-factor laws (median exponent", "print: the per-factor medians");

    /* /fits/default reads back */
    qid_fit_law back, *draws = NULL;
    size_t n_draws = 0;
    double level = 0;
    rc = qid_fit_store_read_law(store, "default", &back, &draws, &n_draws, &level, &err);
    is_int(QID_OK, rc, "read: /fits/default");
    ok(back.k == L->k && back.alpha == L->alpha && back.beta == L->beta && back.gamma == L->gamma,
       "read: coefficients bit-exact");
    is_int((long long)rep.boot.n_draws, (long long)n_draws, "read: every draw stored");
    ok(n_draws && draws[0].k == rep.boot.draws[0].k && draws[n_draws - 1].gamma == rep.boot.draws[n_draws - 1].gamma,
       "read: draws equal");
    is_double(0.95, level, 1e-12, "read: level");
    free(draws);
    qid_fit_suite_free(&rep);

    /* filters */
    qid_fit_cmd_opts f = o;
    f.fit.n_boot = 0;
    f.name = "bits34";
    f.filter.bits_mask = (1u << 3) | (1u << 4);
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    is_int(40, (long long)rep.n_points, "filter --bits 3,4: 40 points (rc %d)", rc);
    qid_fit_suite_free(&rep);
    f = o;
    f.filter.max_tokens = 1e11;
    f.name = "early";
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    is_int(36, (long long)rep.n_points, "filter --max-tokens 1e11: 36 points (rc %d)", rc);
    ok(rc == QID_OK && rep.boot.hi.beta - rep.boot.lo.beta > width_all,
       "intervals shrink with more points: beta width %.4f (36 points) > %.4f (60)",
       rep.boot.hi.beta - rep.boot.lo.beta, width_all);
    qid_fit_suite_free(&rep);
    f = o;
    f.fit.n_boot = 0;
    f.filter.models = "m2,m3,m4";
    f.filter.min_tokens = 3e10;
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    is_int(36, (long long)rep.n_points, "filter --models m2,m3,m4 --min-tokens 3e10: 36 points (rc %d)", rc);
    qid_fit_suite_free(&rep);

    /* too few points: a fit, with a warning */
    f = o;
    f.fit.n_boot = 0;
    f.filter.models = "m1,m2,m3";
    f.filter.bits_mask = (1u << 3) | (1u << 4);
    f.filter.max_tokens = 3e10;
    f.name = "few";
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    is_int(12, (long long)rep.n_points, "too few: 12 points (rc %d: %s)", rc, rc ? err.msg : "");
    like(rep.warnings, "too few points: 12", "too few: warned");
    qid_fit_suite_free(&rep);

    /* degenerate: one model size (a run named like the stored fit leaves it as it was) */
    qid_fit_law before, again;
    if (qid_fit_store_read_law(store, "default", &before, NULL, NULL, NULL, &err)) bail("read default: %s", err.msg);
    f = o;
    f.fit.n_boot = 0;
    f.filter.models = "m2";
    qid_error_clear(&err);
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    ok(rc != QID_OK && strstr(err.msg, "cannot fit the unified law to 15 points") &&
           strstr(err.msg, "N has 1 distinct value") && !strchr(err.msg, '\n'),
       "one model size: one line: %s", err.msg);
    qid_fit_suite_free(&rep);
    ok(qid_fit_store_read_law(store, "default", &again, NULL, NULL, NULL, &err) == QID_OK && again.k == before.k &&
           again.alpha == before.alpha && again.beta == before.beta && again.gamma == before.gamma,
       "... /fits/default is the earlier fit, bit for bit");
    /* fewer points than parameters */
    f = o;
    f.fit.n_boot = 0;
    f.filter.models = "m1,m2";
    f.filter.bits_mask = 1u << 2;
    f.filter.max_tokens = 3e10;
    f.name = "four";
    qid_error_clear(&err);
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    is_string("too few points to fit the unified law: 4 (needs at least 5 for 4 coefficients)", err.msg,
              "4 points: the message");
    qid_fit_suite_free(&rep);
    ok(qid_fit_store_read_law(store, "four", &again, NULL, NULL, NULL, &err) == QID_E_INVALID &&
           strstr(err.msg, "has no fit '/fits/four'"),
       "... and no /fits/four");
    f.filter.models = NULL;
    f.filter.method = "gptq";
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    ok(rc != QID_OK && strstr(err.msg, "no QiD points"), "no points: error: %s", err.msg);
    qid_fit_suite_free(&rep);
    rc = qid_fit_store_read_law(store, "nope", &back, NULL, NULL, NULL, &err);
    like(err.msg, "fits there: bits34, default, early, few", "read: a missing fit lists the fits there are");

    /* zero or negative QiD only; D collinear with N: a message, and /fits stays empty */
    static const struct {
        enum store_kind kind;
        const char *name, *want;
    } degen[] = {
        {STORE_NONPOSITIVE, "nonpositive",
         "cannot fit the unified law to 60 points: no point has QiD significantly "
         "above zero"},
        {STORE_COLLINEAR, "collinear", "cannot fit the unified law to 12 points: "},
    };
    for (size_t k = 0; k < 2; k++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s.h5", tap_tmpdir(), degen[k].name);
        write_store(path, degen[k].kind);
        f = o;
        f.fit.n_boot = 0;
        qid_error_clear(&err);
        rc = qid_fit_cmd_run(path, &f, NULL, &rep, &err);
        ok(rc != QID_OK && strstr(err.msg, degen[k].want) && !strchr(err.msg, '\n'), "%s: one line: %s", degen[k].name,
           err.msg);
        if (degen[k].kind == STORE_COLLINEAR)
            like(err.msg, "rank-deficient design", "... naming the rank-deficient design");
        qid_fit_suite_free(&rep);
        qid_error_clear(&err);
        rc = qid_fit_store_read_law(path, "default", &again, NULL, NULL, NULL, &err);
        ok(rc == QID_E_INVALID && strstr(err.msg, "(no fits;"), "%s: nothing written to /fits (%s)", degen[k].name,
           err.msg);
    }

    /* token bins of the per-factor law vs N */
    {
        qid_fit_obs bo[5] = {{.d = 1e10}, {.d = 1.05e10}, {.d = 3e10}, {.d = 1e10}, {.d = 1.15e10}};
        qid_fit_obs *b = qid_fit_bin_tokens(bo, 5);
        double c = cbrt(1e10 * 1e10 * 1.05e10);
        ok(fabs(b[0].d - c) < 1e-6 * c && b[1].d == b[0].d && b[3].d == b[0].d && b[2].d == 3e10 && b[4].d == 1.15e10,
           "token bins: 1e10, 1e10, 1.05e10 share one (geometric mean %.6g); 1.15e10 and 3e10 are their own", c);
        free(b);
    }

    /* the training level of a checkpoint */
    {
        qid_result *rows;
        size_t nr;
        if (qid_results_read(store, &rows, &nr, &err)) bail("read rows: %s", err.msg);
        FILE *lv = tmpfile();
        rc = qid_fit_cmd_training_level(store, "m2-3.h5", &fitted, NULL, 0, 0.95, NULL, NULL, 0, lv, &err);
        slurp(lv, text, sizeof text);
        is_int(QID_OK, rc, "training level of m2-3.h5: OK");
        like(text, "checkpoint ck/m2-3.h5: model m2, N 3e+08, step 3, tokens seen 3e+11", "... its header");
        int all = 1;
        double q[3], se[3], pp[3] = {2, 3, 4};
        for (int k = 0; k < 3; k++) {
            char key[64], want[64], *line;
            snprintf(key, sizeof key, "ck/m2-3.h5|rtn|int%d-g128-sym", k + 2);
            size_t i = 0;
            while (i < nr && strcmp(rows[i].key, key) != 0)
                i++;
            if (i == nr) bail("no row %s", key);
            q[k] = rows[i].qid, se[k] = rows[i].qid_se;
            snprintf(want, sizeof want, " %.4g ", qid_fit_tokens_for(&fitted, q[k], 3e8, pp[k]));
            snprintf(key, sizeof key, "\n  %d    rtn", k + 2);
            line = strstr(text, key);
            char *eol = line ? strchr(line + 1, '\n') : NULL;
            if (!line || !eol || !strstr(line, want) || strstr(line, want) > eol) {
                diag("P %d: want D%sin its line", k + 2, want);
                all = 0;
            }
        }
        ok(all, "... each bit width's D is the law's inversion of that row's QiD (to 4 digits)");
        double dc = qid_fit_training_level(&fitted, q, se, 3e8, pp, 3);
        char want[64];
        snprintf(want, sizeof want, " %.4g ", dc);
        char *comb = strstr(text, "all bit widths together");
        ok(comb && strstr(comb, want) && fabs(dc / 3e11 - 1) < 0.15,
           "... all bit widths together: D %.4g within 15%% of the 3e11 it was trained on", dc);
        lv = tmpfile();
        rc = qid_fit_cmd_training_level(store, "m2", &fitted, NULL, 0, 0.95, NULL, NULL, 0, lv, &err);
        slurp(lv, text, sizeof text);
        int blocks = 0;
        for (char *t = text; (t = strstr(t, "checkpoint ck/m2-")); t++)
            blocks++;
        ok(rc == QID_OK && blocks == 5, "a model name: its 5 checkpoints, one block each (got %d)", blocks);
        qid_error_clear(&err);
        rc = qid_fit_cmd_training_level(store, "nope", &fitted, NULL, 0, 0.95, NULL, NULL, 0, stdout, &err);
        ok(rc == QID_E_INVALID && strstr(err.msg, "no checkpoint or model 'nope' in") &&
               strstr(err.msg, "models: m1, m2, m3, m4"),
           "an unknown checkpoint: %s", err.msg);
        qid_results_rows_free(rows, nr);
    }

    /* the lock: another process has the store open for writing */
    int to_child[2], to_parent[2];
    if (pipe(to_child) || pipe(to_parent)) bail("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        qid_error e;
        qid_results *r = qid_results_open(store, NULL, &e);
        char ch = r ? 'y' : 'n';
        if (write(to_parent[1], &ch, 1) != 1) _exit(1);
        if (read(to_child[0], &ch, 1) < 0) _exit(1);
        qid_results_close(r, &e);
        _exit(0);
    }
    char ch = 0;
    if (read(to_parent[0], &ch, 1) != 1 || ch != 'y') bail("the child could not open the store");
    f = o;
    f.fit.n_boot = 0;
    f.name = "locked";
    qid_error_clear(&err);
    rc = qid_fit_cmd_run(store, &f, NULL, NULL, &err);
    is_int(QID_E_INVALID, rc, "lock: refused while a writer holds the store");
    char want[64];
    snprintf(want, sizeof want, "is locked by pid %ld", (long)pid);
    like(err.msg, want, "lock: the message names the holder");
    if (write(to_child[1], "x", 1) != 1) bail("pipe write");
    int status = 0;
    waitpid(pid, &status, 0);
    rc = qid_fit_cmd_run(store, &f, NULL, NULL, &err);
    is_int(QID_OK, rc, "lock: works once the writer closed");
    return 0;
}
