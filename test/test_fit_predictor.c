/* test_fit_predictor.c - `qid predictor` through its C API
 * (fit_predictor.h) on synthetic results stores written with
 * qid_results_open/append:
 *
 * "forest": 5 families (alpha .. echo, SQNR offsets -3 .. +3 dB) x 3 sizes
 * (10m, 30m, 100m) x 2 checkpoints x 5 formats (int3-g128, int4-g128, mxfp4,
 * mxint4, q4_k_m) x RTN and GPTQ = 300 examples, plus a baseline and a probes
 * row per checkpoint, a failed GPTQ row (skipped) and a GPTQ row with no RTN
 * row of its format (left out: no RTN SQNR). QiD is a steep sigmoid of the
 * RTN SQNR (2 / (1 + exp(sqnr - 20))), halved for GPTQ: a target a forest
 * learns and a line does not, with the SQNR the one informative feature.
 * echo's 16-bit losses lie above the other families' (a forest learning the
 * loss itself cannot reach them; through QiD it need not).
 *
 * "tiny": models tiny-1b and tiny-4b, two checkpoints each, 16-bit, int4 and
 * int2 rows with losses chosen so that the Pareto frontier is known by hand,
 * and the earlier checkpoint's (lower, misleading) losses must be ignored.
 *
 * Checks the family rule, the byte-count parser, every feature of one
 * example against the store's own rows, forest vs linear vs mean on
 * held-out families, importances, determinism, the hand-computed frontier
 * under three budgets, /fits/predictor read back, and the degenerate cases
 * (one family, too few examples) with their messages and nothing written.
 *
 * `fit_predictor.t --write-store PATH forest|tiny` only writes that store
 * (test/cmd_fit.t and test/cmd_report.t use it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_fit.h"
#include "fit_predictor.h"
#include "parse.h"
#include "quant.h"
#include "results.h"
#include "rng.h"
#include "tap.h"

static void append(qid_results *r, const qid_result *row)
{
    qid_error err;
    qid_error_clear(&err);
    if (qid_results_append(r, row, &err)) bail("append: %s", err.msg);
}

static qid_result base_row(const char *ckpt, const char *model, const char *sha, double n, double d, int64_t step)
{
    return (qid_result){.checkpoint = ckpt,
                        .model = model,
                        .ckpt_sha256 = sha,
                        .params = (int64_t)n,
                        .tokens_seen = (int64_t)d,
                        .step = step,
                        .method = "baseline",
                        .format = "",
                        .bits = 16,
                        .elem_bits = -1,
                        .block = -1,
                        .options = "-",
                        .eval_protocol = "windows=8",
                        .eval_sha256 = "e",
                        .loss16 = NAN,
                        .qid = NAN,
                        .qid_se = NAN,
                        .sqnr_db = NAN,
                        .kl = NAN,
                        .tokens = 1000,
                        .status = QID_RESULT_OK,
                        .error = ""};
}

static const char *const fam[] = {"alpha", "bravo", "charlie", "delta", "echo"};
static const double fam_db[] = {-3, -1.5, 0, 1.5, 3};
/* echo's 16-bit losses lie above every other family's */
static const double fam_loss[] = {0, 0.05, 0.1, 0.15, 0.8};
static const char *const sizes[] = {"10m", "30m", "100m"};
static const double size_n[] = {1e7, 3e7, 1e8};
static const double ck_d[] = {1e9, 1e10};
static const char *const fmts[] = {"int3-g128", "int4-g128", "mxfp4", "mxint4", "q4_k_m"};
static const double fmt_db[] = {0, -3, -5, -2, -4};

static void write_forest(const char *path)
{
    qid_error err;
    qid_error_clear(&err);
    qid_results *r = qid_results_open(path, NULL, &err);
    if (!r) bail("open %s: %s", path, err.msg);
    qid_rng rng;
    qid_rng_seed(&rng, 2024, 0);
    char key[160], ckpt[64], model[32], sha[32], opts[256];
    for (int f = 0; f < 5; f++)
        for (int s = 0; s < 3; s++)
            for (int c = 0; c < 2; c++) {
                snprintf(model, sizeof model, "%s-%s", fam[f], sizes[s]);
                snprintf(ckpt, sizeof ckpt, "ck/%s-step%d.h5", model, c + 1);
                snprintf(sha, sizeof sha, "sha-%d-%d-%d", f, s, c);
                double n = size_n[s], d = ck_d[c];
                double l16 = 2.0 + 0.3 * (8 - log10(n)) - 0.1 * log10(d / 1e9) + fam_loss[f];
                qid_result row = base_row(ckpt, model, sha, n, d, c + 1);
                snprintf(key, sizeof key, "%s|baseline", ckpt);
                row.key = key;
                row.loss = row.loss16 = l16;
                append(r, &row);
                /* probes: radius-major, two directions */
                double pl[4] = {l16 + 0.001 * (f + 1), l16 + 0.003 * (f + 1), l16 + 0.01 * (s + 1),
                                l16 + 0.03 * (s + 1)};
                snprintf(opts, sizeof opts, "radii=0.001,0.01,directions=2,seed=0;losses=%.17g,%.17g,%.17g,%.17g",
                         pl[0], pl[1], pl[2], pl[3]);
                snprintf(key, sizeof key, "%s|probes", ckpt);
                row.method = "probes";
                row.options = opts;
                row.loss = (pl[0] + pl[1] + pl[2] + pl[3]) / 4;
                row.loss16 = NAN;
                append(r, &row);
                for (int k = 0; k < 5; k++) {
                    qid_quant_spec spec;
                    if (qid_quant_parse(fmts[k], &spec, &err)) bail("format %s: %s", fmts[k], err.msg);
                    double sqnr = 6.02 * spec.bits + fmt_db[k] + fam_db[f] + 0.5 * qid_rng_normal(&rng);
                    double q = 2.0 / (1.0 + exp(sqnr - 20.0));
                    for (int m = 0; m < 2; m++) {
                        qid_result qr = base_row(ckpt, model, sha, n, d, c + 1);
                        qr.method = m ? "gptq" : "rtn";
                        qr.format = fmts[k];
                        qr.elem_bits = spec.bits;
                        qr.block = (int64_t)spec.block;
                        qr.bits = qid_quant_bits_per_weight(&spec, 4096);
                        qr.options = m ? "damp=0.01" : "-";
                        qr.qid = (m ? 0.5 * q : q) + 0.01 * qid_rng_normal(&rng);
                        qr.qid_se = 0.01;
                        qr.loss16 = l16;
                        qr.loss = l16 + qr.qid;
                        qr.sqnr_db = m ? sqnr + 2.5 : sqnr; /* GPTQ's own SQNR must not be the feature */
                        snprintf(key, sizeof key, "%s|%s|%s", ckpt, qr.method, fmts[k]);
                        qr.key = key;
                        append(r, &qr);
                    }
                }
            }
    /* a failed row (skipped) and a GPTQ row without its RTN row (no SQNR feature) */
    qid_result bad = base_row("ck/alpha-10m-step1.h5", "alpha-10m", "sha-0-0-0", 1e7, 1e9, 1);
    bad.key = "ck/alpha-10m-step1.h5|gptq|int8-g128";
    bad.method = "gptq";
    bad.format = "int8-g128";
    bad.elem_bits = 8;
    bad.status = QID_RESULT_FAILED;
    bad.loss = NAN;
    bad.error = "cannot open 'x'";
    append(r, &bad);
    bad.key = "ck/alpha-10m-step1.h5|gptq|int2-g128";
    bad.format = "int2-g128";
    bad.elem_bits = 2;
    bad.block = 128;
    bad.bits = 2.25;
    bad.status = QID_RESULT_OK;
    bad.error = "";
    bad.loss16 = 2.3;
    bad.loss = 4.0;
    bad.qid = 1.7;
    bad.qid_se = 0.01;
    append(r, &bad);
    if (qid_results_close(r, &err)) bail("close: %s", err.msg);
}

/* The tiny store of the hand-computed frontier (memory = N * bits / 8):
 *   tiny-1b 16-bit 2e9 B loss 3.0 | int4 (4.125) 5.15625e8 B 3.1 | int2 (2.125) 2.65625e8 B 4.0
 *   tiny-4b 16-bit 8e9 B loss 2.6 | int4 2.0625e9 B 2.7          | int2 1.0625e9 B 3.2 (dominated by 1b int4)
 * at step 2; step 1 has loss 1.0 everywhere (must not be used). */
static void write_tiny(const char *path)
{
    qid_error err;
    qid_error_clear(&err);
    qid_results *r = qid_results_open(path, NULL, &err);
    if (!r) bail("open %s: %s", path, err.msg);
    static const char *const models[] = {"tiny-1b", "tiny-4b"};
    static const double n[] = {1e9, 4e9}, loss[2][3] = {{3.0, 3.1, 4.0}, {2.6, 2.7, 3.2}};
    static const char *const f[] = {"", "int4-g128", "int2-g128"};
    static const double bits[] = {16, 4.125, 2.125};
    char key[160], ckpt[64], sha[32];
    for (int m = 0; m < 2; m++)
        for (int c = 0; c < 2; c++) {
            snprintf(ckpt, sizeof ckpt, "ck/%s-%d.h5", models[m], c + 1);
            snprintf(sha, sizeof sha, "t-%d-%d", m, c);
            for (int k = 0; k < 3; k++) {
                qid_result row = base_row(ckpt, models[m], sha, n[m], 1e10 * (c + 1), c + 1);
                row.loss = c ? loss[m][k] : 1.0;
                row.loss16 = c ? loss[m][0] : 1.0;
                if (k) {
                    row.method = "rtn";
                    row.format = f[k];
                    row.elem_bits = k == 1 ? 4 : 2;
                    row.block = 128;
                    row.qid = row.loss - row.loss16;
                    row.qid_se = 0.01;
                }
                row.bits = bits[k];
                snprintf(key, sizeof key, "%s|%s|%s", ckpt, row.method, f[k]);
                row.key = key;
                append(r, &row);
            }
        }
    if (qid_results_close(r, &err)) bail("close: %s", err.msg);
}

static void test_family(void)
{
    static const char *const cases[][2] = {
        {"pythia-160m", "pythia"},
        {"pythia-1.4b-deduped", "pythia-deduped"},
        {"Qwen2-0.5B", "Qwen2"},
        {"Llama-2-7b-hf", "Llama-2-hf"},
        {"Mixtral-8x7B-v0.1", "Mixtral-v0.1"},
        {"m1", "m1"},
        {"", "unknown"},
        {"7b", "7b"},
        {"tiny_12m", "tiny"},
        {"gpt2", "gpt2"},
    };
    int all = 1;
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qid_predictor_family(cases[i][0], buf, sizeof buf);
        if (strcmp(buf, cases[i][1]) != 0) {
            diag("family of '%s': got '%s', want '%s'", cases[i][0], buf, cases[i][1]);
            all = 0;
        }
    }
    ok(all, "families: size tokens (160m, 1.4b, 0.5B, 7b, 8x7B, 12m) removed, other names kept");
}

static void test_bytes(void)
{
    static const struct {
        const char *s;
        double v;
    } good[] = {{"1e9", 1e9},  {"4GiB", 4294967296.0}, {"512MiB", 536870912.0}, {"4GB", 4e9}, {"2.5G", 2.5e9},
                {"800M", 8e8}, {"1T", 1e12},           {"3kib", 3072},          {"100b", 100}};
    int all = 1;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        double v = 0;
        if (qid_parse_bytes(good[i].s, &v) || v != good[i].v) {
            diag("'%s' -> %.17g, want %.17g", good[i].s, v, good[i].v);
            all = 0;
        }
    }
    ok(all, "byte counts (--budget): 1e9, 4GiB, 512MiB, 4GB, 2.5G, 800M, 1T, 3kib, 100b exact");
    static const char *const bad[] = {"", "abc", "-1", "0", "4XB", "1e9x", "GiB", "nan", "inf", "1 GiB"};
    int rej = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v;
        if (qid_parse_bytes(bad[i], &v) == 0) {
            diag("'%s' accepted as %g", bad[i], v);
            rej = 0;
        }
    }
    ok(rej, "byte counts (--budget): '', abc, -1, 0, 4XB, 1e9x, GiB, nan, inf, '1 GiB' (a blank) rejected");
}

/* Index of the row with this key. */
static size_t find_key(const qid_result *rows, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].key && strcmp(rows[i].key, key) == 0) return i;
    bail("no row %s", key);
}

static int feat_col(const qid_predictor_data *d, const char *name)
{
    for (size_t j = 0; j < d->n_feat; j++)
        if (strcmp(d->feat[j], name) == 0) return (int)j;
    return -1;
}

/* The rows of a store, and predictor options with n_trees trees. */
static void setup(const char *store, qid_result **rows, size_t *n, qid_predictor_opts *o, size_t n_trees)
{
    qid_error err;
    qid_error_clear(&err);
    if (qid_results_read(store, rows, n, &err)) bail("read: %s", err.msg);
    qid_predictor_opts_init(o);
    o->forest.n_trees = n_trees;
}

static void test_forest_store(const char *store)
{
    qid_result *rows;
    size_t n;
    qid_error err;
    qid_error_clear(&err);
    qid_predictor_opts o;
    setup(store, &rows, &n, &o, 100);
    qid_predictor_data d;
    if (qid_predictor_data_build(rows, n, &o, &d, &err)) bail("build: %s", err.msg);
    ok(d.n_rows == 300 && d.n_considered == 301 && d.n_missing == 1 && d.n_no_loss16 == 0,
       "examples: 300 of 301 quantizer rows (failed row skipped, 1 without its RTN SQNR) (got %zu of %zu, %zu, %zu)",
       d.n_rows, d.n_considered, d.n_missing, d.n_no_loss16);
    char names[512] = "";
    for (size_t j = 0; j < d.n_feat; j++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", j ? " " : "", d.feat[j]);
    is_string("log10_N log10_D loss16 rtn_sqnr_db elem_bits scales_per_weight fmt_int fmt_mxfp fmt_mxint fmt_gguf "
              "gptq probe_dloss_r0.001 probe_dloss_r0.01",
              names, "features: every kind, fmt_nf4 and fmt_fp4 (absent) dropped, q4_k_m in fmt_gguf");
    ok(d.n_groups == 5 && strcmp(d.groups[0], "alpha") == 0 && strcmp(d.groups[4], "echo") == 0,
       "families: 5, alpha .. echo");

    /* One GPTQ example against the store's own rows. */
    size_t gi = find_key(rows, n, "ck/bravo-30m-step2.h5|gptq|mxfp4");
    size_t ri = find_key(rows, n, "ck/bravo-30m-step2.h5|rtn|mxfp4");
    size_t pi = find_key(rows, n, "ck/bravo-30m-step2.h5|probes");
    size_t ex = d.n_rows;
    for (size_t i = 0; i < d.n_rows; i++)
        if (d.row[i] == gi) ex = i;
    if (ex == d.n_rows) bail("the GPTQ mxfp4 row of bravo-30m step 2 is not an example");
    const double *x = d.x + ex * d.n_feat;
    double l16 = rows[gi].loss16;
    double want[13] = {log10(3e7), 10, l16, rows[ri].sqnr_db, 4, 1.0 / 32, 0, 1, 0, 0, 1, NAN, NAN};
    double pl[4];
    if (sscanf(strstr(rows[pi].options, "losses="), "losses=%lf,%lf,%lf,%lf", &pl[0], &pl[1], &pl[2], &pl[3]) != 4)
        bail("probe losses");
    want[11] = (pl[0] + pl[1]) / 2 - l16;
    want[12] = (pl[2] + pl[3]) / 2 - l16;
    int same = d.n_feat == 13;
    for (size_t j = 0; j < 13 && same; j++)
        if (fabs(x[j] - want[j]) > 1e-12 * fmax(1, fabs(want[j]))) {
            diag("feature %s: %.17g, want %.17g", d.feat[j], x[j], want[j]);
            same = 0;
        }
    ok(same, "one GPTQ example: log10 N, log10 D, loss16, the RTN row's SQNR (not its own), 4 bits, 1/32, mx-fp, "
             "gptq, probe means minus loss16 (1e-12)");
    ok(rows[gi].sqnr_db != rows[ri].sqnr_db && x[feat_col(&d, "rtn_sqnr_db")] == rows[ri].sqnr_db,
       "... the GPTQ row's own sqnr_db %.3f is not used (RTN %.3f)", rows[gi].sqnr_db, rows[ri].sqnr_db);
    is_double(rows[gi].loss - l16, d.y[ex], 1e-15, "target: QiD = loss - loss16");
    qid_predictor_data_free(&d);

    /* forest vs linear vs mean, one family held out at a time */
    qid_predictor_report rep, rep2;
    if (qid_predictor_fit(rows, n, &o, &rep, &err)) bail("fit: %s", err.msg);
    const qid_fit_logo *l = &rep.logo;
    diag("held out: forest %.4f linear %.4f mean %.4f (in-sample forest %.4f)", l->rmse_forest, l->rmse_linear,
         l->rmse_mean, rep.rmse_train);
    for (size_t g = 0; g < l->n_groups; g++)
        diag("  %-8s forest %.4f linear %.4f mean %.4f", rep.data.groups[l->rows[g].group], l->rows[g].rmse_forest,
             l->rows[g].rmse_linear, l->rows[g].rmse_mean);
    ok(l->n_groups == 5 && l->rmse_forest < 0.6 * l->rmse_linear && l->rmse_forest < 0.4 * l->rmse_mean,
       "leave one family out: forest RMSE %.4f < 0.6 x linear %.4f and < 0.4 x mean %.4f", l->rmse_forest,
       l->rmse_linear, l->rmse_mean);
    int top = 0;
    for (size_t j = 1; j < rep.data.n_feat; j++)
        if (l->importance[j] > l->importance[top]) top = (int)j;
    double sum = 0;
    for (size_t j = 0; j < rep.data.n_feat; j++)
        sum += l->importance[j];
    ok(strcmp(rep.data.feat[top], "rtn_sqnr_db") == 0 && fabs(sum - 1) < 1e-12,
       "importances sum to 1 and rank rtn_sqnr_db first (%.3f; top: %s)",
       l->importance[feat_col(&rep.data, "rtn_sqnr_db")], rep.data.feat[top]);
    if (qid_predictor_fit(rows, n, &o, &rep2, &err)) bail("fit 2: %s", err.msg);
    ok(rep2.logo.rmse_forest == l->rmse_forest && rep2.logo.pred_forest[17] == l->pred_forest[17],
       "deterministic: the same seed gives bit-identical errors and predictions");
    qid_predictor_report_free(&rep2);
    int as_loss = 1;
    for (size_t i = 0; i < rep.data.n_rows; i++)
        as_loss &= qid_predictor_as_loss(&rep, &o, i, l->pred_forest[i]) == rep.data.loss16[i] + l->pred_forest[i];
    ok(as_loss, "target qid: the predicted loss is loss16 + the predicted QiD");

    qid_predictor_opts ol = o;
    ol.target = QID_PREDICTOR_TARGET_LOSS;
    if (qid_predictor_fit(rows, n, &ol, &rep2, &err)) bail("fit loss: %s", err.msg);
    diag("target loss: forest %.4f linear %.4f mean %.4f", rep2.logo.rmse_forest, rep2.logo.rmse_linear,
         rep2.logo.rmse_mean);
    ok(rep2.data.y[0] == rep2.data.loss[0] && rep2.logo.rmse_forest > 2 * l->rmse_forest &&
           rep2.logo.rows[4].rmse_forest > 0.5,
       "target loss: learns the loss; held-out RMSE %.4f > 2 x through QiD %.4f (echo %.3f: trees do not "
       "extrapolate loss16)",
       rep2.logo.rmse_forest, l->rmse_forest, rep2.logo.rows[4].rmse_forest);
    qid_predictor_report_free(&rep2);
    qid_predictor_opts om = o;
    om.holdout = QID_PREDICTOR_BY_MODEL;
    if (qid_predictor_fit(rows, n, &om, &rep2, &err)) bail("fit by model: %s", err.msg);
    is_int(15, (long long)rep2.data.n_groups, "--holdout model: 15 models held out in turn");
    qid_predictor_report_free(&rep2);

    /* frontier without a budget: the candidates are latest checkpoints */
    ok(rep.n_cand == 15 * 11 + 1 && rep.n_front > 0,
       "candidates: 15 models x (16-bit + 10 settings) + the lone int2 row = %zu", rep.n_cand);
    qid_predictor_report_free(&rep);

    /* run: printed, stored, read back */
    FILE *out = tmpfile();
    if (qid_predictor_cmd_run(store, &o, out, &rep, &err)) bail("run: %s", err.msg);
    rewind(out);
    char text[16384];
    size_t got = fread(text, 1, sizeof text - 1, out);
    text[got] = '\0';
    fclose(out);
    like(text, "leave-one-family-out RMSE of the loss", "print: the held-out table");
    like(text, "rtn_sqnr_db", "print: the importances");
    like(text, "Pareto frontier of model size vs bits per weight (no budget", "print: the frontier");
    like(text, "written to /fits/predictor", "print: where it went");
    qid_predictor_stored st;
    if (qid_predictor_read(store, "predictor", &st, &err)) bail("read back: %s", err.msg);
    int back = st.n_points == 300 && st.rmse_forest == rep.logo.rmse_forest && strcmp(st.target, "qid") == 0 &&
               strcmp(st.holdout, "family") == 0 && isnan(st.budget);
    for (size_t i = 0; i < st.n_points && back; i++) {
        const double *p = st.points + i * QID_PREDICTOR_POINT_COLS;
        back = p[6] == rep.data.loss[i] && p[7] == rep.data.loss16[i] + rep.logo.pred_forest[i] &&
               p[8] == rep.data.loss16[i] + rep.logo.pred_linear[i];
    }
    ok(back, "read back: 300 points, held-out predictions as losses, errors bit-exact, no budget");
    qid_predictor_stored_free(&st);
    qid_predictor_report_free(&rep);

    /* a failing run of the same name leaves the stored predictor as it was */
    qid_predictor_opts of = o;
    of.models = "alpha-10m,alpha-30m";
    qid_error_clear(&err);
    int rc = qid_predictor_cmd_run(store, &of, NULL, NULL, &err);
    ok(rc == QID_E_INVALID && strstr(err.msg, "leave-one-family-out needs at least 2 model families; the 40 "
                                              "examples are all of family 'alpha'"),
       "one family: a clear error: %s", err.msg);
    ok(qid_predictor_read(store, "predictor", &st, &err) == QID_OK && st.n_points == 300,
       "... and /fits/predictor is the earlier one, untouched");
    qid_predictor_stored_free(&st);
    qid_error_clear(&err);
    rc = qid_predictor_read(store, "default", &st, &err);
    ok(rc == QID_E_INVALID && strstr(err.msg, "has no fit '/fits/default' (fits there: predictor; run 'qid "
                                              "predictor"),
       "read: a missing entry lists what is there: %s", err.msg);
    qid_results_rows_free(rows, n);
}

static void test_tiny_store(const char *store)
{
    qid_result *rows;
    size_t n;
    qid_error err;
    qid_error_clear(&err);
    qid_predictor_opts o;
    setup(store, &rows, &n, &o, 20);
    qid_predictor_candidate *c;
    size_t nc;
    qid_predictor_candidates(rows, n, &o, &c, &nc);
    char got[1024] = "";
    for (size_t j = 0; j < nc; j++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s=%g", j ? "; " : "", c[j].label, c[j].c.loss);
    is_string("tiny-1b 16-bit=3; tiny-1b rtn int2-g128=4; tiny-1b rtn int4-g128=3.1; tiny-4b 16-bit=2.6; "
              "tiny-4b rtn int2-g128=3.2; tiny-4b rtn int4-g128=2.7",
              got, "candidates: latest checkpoint only (step 1's loss 1.0 ignored)");
    free(c);

    o.holdout = QID_PREDICTOR_BY_MODEL;
    static const struct {
        double budget;
        const char *want;
    } cases[] = {
        {0, "tiny-1b rtn int2-g128, tiny-1b rtn int4-g128, tiny-1b 16-bit, tiny-4b rtn int4-g128, tiny-4b 16-bit"},
        {2e9, "tiny-1b rtn int2-g128, tiny-1b rtn int4-g128, tiny-1b 16-bit"},
        {2147483648.0, "tiny-1b rtn int2-g128, tiny-1b rtn int4-g128, tiny-1b 16-bit, tiny-4b rtn int4-g128"},
        {1e8, ""},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        qid_predictor_report rep;
        o.budget = cases[k].budget;
        if (qid_predictor_fit(rows, n, &o, &rep, &err)) bail("tiny fit: %s", err.msg);
        got[0] = '\0';
        for (size_t a = 0; a < rep.n_front; a++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", a ? ", " : "", rep.cand[rep.front[a]].label);
        is_string(cases[k].want, got, "frontier, budget %g bytes: by hand (tiny-4b int2 dominated)", cases[k].budget);
        if (k == 0) is_int(8, (long long)rep.data.n_rows, "tiny: 8 examples (both checkpoints), 2 models");
        qid_predictor_report_free(&rep);
    }

    /* degenerate: one family; too few examples; nothing written */
    qid_predictor_opts_init(&o);
    qid_error_clear(&err);
    int rc = qid_predictor_cmd_run(store, &o, NULL, NULL, &err);
    ok(rc == QID_E_INVALID && strstr(err.msg, "needs at least 2 model families; the 8 examples are all of family "
                                              "'tiny' (--holdout model holds out one model at a time)"),
       "one family: %s", err.msg);
    o.holdout = QID_PREDICTOR_BY_MODEL;
    o.models = "tiny-1b";
    o.format = "int4-g128";
    qid_error_clear(&err);
    rc = qid_predictor_cmd_run(store, &o, NULL, NULL, &err);
    ok(rc == QID_E_INVALID && strstr(err.msg, "too few examples for the predictor: 2 (needs at least 4; 2 quantizer "
                                              "rows pass the filters"),
       "two examples: %s", err.msg);
    qid_predictor_stored st;
    qid_error_clear(&err);
    rc = qid_predictor_read(store, "predictor", &st, &err);
    ok(rc == QID_E_INVALID && strstr(err.msg, "has no fit '/fits/predictor' (no fits;"),
       "after the failures the store has no /fits entry: %s", err.msg);
    qid_results_rows_free(rows, n);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--write-store") == 0) {
        if (strcmp(argv[3], "forest") == 0)
            write_forest(argv[2]);
        else if (strcmp(argv[3], "tiny") == 0)
            write_tiny(argv[2]);
        else
            bail("unknown store kind '%s' (forest or tiny)", argv[3]);
        return 0;
    }
    plan(33);
    test_family();
    test_bytes();
    char forest[512], tiny[512];
    snprintf(forest, sizeof forest, "%s/forest.h5", tap_tmpdir());
    snprintf(tiny, sizeof tiny, "%s/tiny.h5", tap_tmpdir());
    write_forest(forest);
    write_tiny(tiny);
    test_forest_store(forest);
    test_tiny_store(tiny);
    return 0;
}
