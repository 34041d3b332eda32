/* test_fit_cmd.c - `qid fit` through its C API (fit_cmd.h) on a synthetic
 * results store written with qid_results_open/append from a known law with
 * noise: 4 model sizes x 5 checkpoints x bits 2/3/4 (60 points), one
 * baseline row per checkpoint from the 16-bit law of Ouyang et al., plus a
 * failed row and a probes row that must be left out. Checks the recovered
 * coefficients against their bootstrap intervals, /fits/<name> read back,
 * the filters' point counts, the too-few-points warning, the degenerate
 * one-model-size error, and the lock message when another process holds the
 * store.
 *
 * `fit_cmd.t --write-store PATH` only writes that store (test/fit_cmd.t
 * uses it for the CLI). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fit_cmd.h"
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

/* The synthetic store: law QID_FIT_LAW_OUYANG with 5% log-normal noise,
 * se = 5% of the law's value. */
static void write_store(const char *path)
{
    qid_error err;
    qid_error_clear(&err);
    qid_results *r = qid_results_open(path, NULL, &err);
    if (!r) bail("open %s: %s", path, err.msg);
    qid_rng rng;
    qid_rng_seed(&rng, 42, 0);
    char key[128], ckpt[64], model[16], sha[64];
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 5; j++) {
            snprintf(model, sizeof model, "m%zu", i + 1);
            snprintf(ckpt, sizeof ckpt, "ck/m%zu-%zu.h5", i + 1, j);
            snprintf(sha, sizeof sha, "sha-%zu-%zu", i, j);
            double l16 =
                qid_fit_loss16_eval(&QID_FIT_LOSS16_OUYANG, true_n[i], true_d[j]) * exp(0.005 * qid_rng_normal(&rng));
            qid_result row = {.checkpoint = ckpt,
                              .model = model,
                              .ckpt_sha256 = sha,
                              .params = (int64_t)true_n[i],
                              .tokens_seen = (int64_t)true_d[j],
                              .step = (int64_t)j,
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
                double law = qid_fit_law_eval(&QID_FIT_LAW_OUYANG, true_n[i], true_d[j], true_p[k]);
                char fmt[32];
                snprintf(fmt, sizeof fmt, "int%d-g128", true_p[k]);
                snprintf(key, sizeof key, "%s|rtn|%s", ckpt, fmt);
                row.method = "rtn";
                row.format = fmt;
                row.elem_bits = true_p[k];
                row.bits = true_p[k] + 0.125;
                row.qid = law * exp(0.05 * qid_rng_normal(&rng));
                row.qid_se = 0.05 * law;
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
                         .format = "int4-g128",
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

static int in_ci(double v, double lo, double hi) { return v >= lo && v <= hi; }

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-store") == 0) {
        write_store(argv[2]);
        return 0;
    }
    plan(37);
    char store[512];
    snprintf(store, sizeof store, "%s/r.h5", tap_tmpdir());
    write_store(store);

    qid_fit_cmd_opts o;
    qid_fit_cmd_opts_init(&o);
    o.n_boot = 200;
    o.seed = 7;
    qid_fit_cmd_report rep;
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
    double width_all = hi->beta - lo->beta;

    /* the printed report */
    rewind(out);
    char text[8192];
    size_t got = fread(text, 1, sizeof text - 1, out);
    text[got] = '\0';
    fclose(out);
    like(text, "95% interval (bootstrap by checkpoint: ", "print: names the bootstrap interval");
    like(text, "converged after", "print: reports convergence");
    like(text, "written to /fits/default", "print: says where the fit went");

    /* /fits/default reads back */
    qid_fit_law back, *draws = NULL;
    size_t n_draws = 0;
    double level = 0;
    rc = qid_fit_cmd_read(store, "default", &back, &draws, &n_draws, &level, &err);
    is_int(QID_OK, rc, "read: /fits/default");
    ok(back.k == L->k && back.alpha == L->alpha && back.beta == L->beta && back.gamma == L->gamma,
       "read: coefficients bit-exact");
    is_int((long long)rep.boot.n_draws, (long long)n_draws, "read: every draw stored");
    ok(n_draws && draws[0].k == rep.boot.draws[0].k && draws[n_draws - 1].gamma == rep.boot.draws[n_draws - 1].gamma,
       "read: draws equal");
    is_double(0.95, level, 1e-12, "read: level");
    free(draws);
    qid_fit_cmd_report_free(&rep);

    /* filters */
    qid_fit_cmd_opts f = o;
    f.n_boot = 0;
    f.name = "bits34";
    f.bits_mask = (1u << 3) | (1u << 4);
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    is_int(40, (long long)rep.n_points, "filter --bits 3,4: 40 points (rc %d)", rc);
    qid_fit_cmd_report_free(&rep);
    f = o;
    f.max_tokens = 1e11;
    f.name = "early";
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    is_int(36, (long long)rep.n_points, "filter --max-tokens 1e11: 36 points (rc %d)", rc);
    ok(rc == QID_OK && rep.boot.hi.beta - rep.boot.lo.beta > width_all,
       "intervals shrink with more points: beta width %.4f (36 points) > %.4f (60)",
       rep.boot.hi.beta - rep.boot.lo.beta, width_all);
    qid_fit_cmd_report_free(&rep);
    f = o;
    f.n_boot = 0;
    f.models = "m2,m3,m4";
    f.min_tokens = 3e10;
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    is_int(36, (long long)rep.n_points, "filter --models m2,m3,m4 --min-tokens 3e10: 36 points (rc %d)", rc);
    qid_fit_cmd_report_free(&rep);

    /* too few points: a fit, with a warning */
    f = o;
    f.n_boot = 0;
    f.models = "m1,m2,m3";
    f.bits_mask = (1u << 3) | (1u << 4);
    f.max_tokens = 3e10;
    f.name = "few";
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    is_int(12, (long long)rep.n_points, "too few: 12 points (rc %d: %s)", rc, rc ? err.msg : "");
    like(rep.warnings, "too few points: 12", "too few: warned");
    qid_fit_cmd_report_free(&rep);

    /* degenerate: one model size, and nothing at all */
    f = o;
    f.n_boot = 0;
    f.models = "m2";
    qid_error_clear(&err);
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    ok(rc != QID_OK && strstr(err.msg, "cannot fit the unified law"), "one model size: error: %s", err.msg);
    qid_fit_cmd_report_free(&rep);
    f.models = NULL;
    f.method = "gptq";
    rc = qid_fit_cmd_run(store, &f, NULL, &rep, &err);
    ok(rc != QID_OK && strstr(err.msg, "no QiD points"), "no points: error: %s", err.msg);
    qid_fit_cmd_report_free(&rep);
    rc = qid_fit_cmd_read(store, "nope", &back, NULL, NULL, NULL, &err);
    like(err.msg, "fits there: bits34, default, early, few", "read: a missing fit lists the fits there are");

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
    f.n_boot = 0;
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
