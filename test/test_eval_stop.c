/* test_eval_stop.c - adaptive evaluation (eval.h qid_eval_stop): the seeded
 * window order, the stopping rule, its replay on stored per-window
 * vectors, the coverage of its 95% interval, and adaptive evaluation of a
 * model (RTN, and GPTQ whose weights are kept between blocks) against the
 * same windows evaluated in full; GPTQ in several passes of the default
 * batch against one pass.
 *
 * Coverage: test/fixtures/stop/windows.txt holds the per-window NLL
 * differences of eight GPTQ tasks of the embedded demo (768 windows each,
 * 2- to 8-bit; tools/make_stop_fixture.py). Each replicate draws 768
 * windows with replacement from one task's windows (the population, whose
 * QiD is the ratio of its sums), runs the rule in draw order, and asks
 * whether QiD +- 1.96 SE where it stopped covers the population's QiD;
 * 4000 replicates per rule, coverage must lie in 93-97%. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "quantize.h"
#include "rng.h"
#include "tap.h"
#include "tokens.h"

#define MAX_TASKS 16

typedef struct pop {
    char name[96];
    size_t n;
    double *d;
    int64_t *c;
} pop;

static size_t read_pops(pop *p)
{
    char *text = tap_read_file("test/fixtures/stop/windows.txt", NULL);
    size_t k = 0, i = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        size_t n;
        if (strncmp(line, "task ", 5) == 0 && sscanf(line + 5, "%95s %zu", p[k].name, &n) == 2) {
            if (k == MAX_TASKS) bail("too many tasks");
            p[k].n = n;
            p[k].d = calloc(n, sizeof(double));
            p[k].c = calloc(n, sizeof(int64_t));
            k++;
            i = 0;
            continue;
        }
        if (!k || i >= p[k - 1].n || sscanf(line, "%lf %" SCNd64, &p[k - 1].d[i], &p[k - 1].c[i]) != 2)
            bail("bad line in windows.txt: %s", line);
        i++;
    }
    free(text);
    return k;
}

static void check_order(void)
{
    size_t a[100], b[100], c[100], seen[100] = {0};
    qid_eval_window_order(100, 7, a);
    qid_eval_window_order(100, 7, b);
    qid_eval_window_order(100, 8, c);
    int perm = 1;
    for (size_t i = 0; i < 100; i++)
        perm &= a[i] < 100 && !seen[a[i]]++;
    ok(perm, "the window order is a permutation");
    ok(memcmp(a, b, sizeof a) == 0, "... the same for the same seed");
    ok(memcmp(a, c, sizeof a) != 0, "... another for another seed");
    size_t one;
    qid_eval_window_order(1, 7, &one);
    is_int(0, (int)one, "one window: order 0");
}

static void check_rule(void)
{
    qid_eval_stop s = {.min_windows = 32, .block = 16, .target_se = 0.001, .target_rse = 0.05};
    ok(!qid_eval_stop_done(&s, 16, 768, 0.5, 1e-9), "never before min_windows");
    ok(qid_eval_stop_done(&s, 32, 768, 0.5, 0.02), "se 0.02 < 0.05 x 0.5: stops");
    ok(!qid_eval_stop_done(&s, 32, 768, 0.5, 0.03), "se 0.03 > 0.025: goes on");
    ok(qid_eval_stop_done(&s, 32, 768, 0.0, 0.0009), "se below the absolute target: stops");
    ok(!qid_eval_stop_done(&s, 32, 768, 0.0, 0.0011), "above it with QiD 0: goes on");
    ok(!qid_eval_stop_done(&s, 48, 768, 0.1, NAN), "NaN se: goes on");
    ok(qid_eval_stop_done(&s, 768, 768, 0.1, NAN), "every window: done");
}

static void check_replay(const pop *p)
{
    qid_eval_stop s = {.min_windows = 32, .block = 32, .target_se = 0.001, .target_rse = 0.05, .seed = 0};
    size_t *order = malloc(p->n * sizeof *order);
    qid_eval_window_order(p->n, 0, order);
    double *a = calloc(p->n, sizeof *a), *b = malloc(p->n * sizeof *b);
    for (size_t i = 0; i < p->n; i++)
        b[i] = p->d[i];
    qid_eval_paired r, full;
    size_t used = qid_eval_stop_replay(&s, a, b, p->c, p->n, order, &r);
    ok(used >= 32 && used <= p->n && (used % 32 == 0 || used == p->n), "%s: stopped after %zu windows", p->name, used);
    double *sa = calloc(used, sizeof *sa), *sb = malloc(used * sizeof *sb);
    int64_t *sc = malloc(used * sizeof *sc);
    for (size_t i = 0; i < used; i++)
        sb[i] = b[order[i]], sc[i] = p->c[order[i]];
    qid_eval_paired_diff(sa, sb, sc, used, &full, NULL);
    ok(full.diff == r.diff && full.se == r.se, "QiD and SE are those of the first %zu windows of the order", used);
    ok(r.se < fmax(s.target_se, s.target_rse * fabs(r.diff)) || used == p->n, "... which meet the target");
    free(order);
    free(a);
    free(b);
    free(sa);
    free(sb);
    free(sc);
}

/* Coverage of the 95% interval of the rule s over reps replicates. */
static void check_coverage(const pop *p, size_t np, const qid_eval_stop *s, size_t reps, const char *what)
{
    qid_rng rng;
    qid_rng_seed(&rng, 2026, 18);
    size_t cover = 0, windows = 0, full = 0, n_max = 0;
    double bias = 0;
    for (size_t i = 0; i < np; i++)
        n_max = p[i].n > n_max ? p[i].n : n_max;
    double *a = calloc(n_max, sizeof *a), *b = malloc(n_max * sizeof *b);
    int64_t *c = malloc(n_max * sizeof *c);
    size_t *order = malloc(n_max * sizeof *order);
    for (size_t r = 0; r < reps; r++) {
        const pop *t = &p[r % np];
        double sd = 0, sn = 0;
        for (size_t i = 0; i < t->n; i++)
            sd += t->d[i], sn += (double)t->c[i];
        double truth = sd / sn;
        for (size_t i = 0; i < t->n; i++) {
            size_t j = (size_t)qid_rng_below(&rng, t->n);
            b[i] = t->d[j];
            c[i] = t->c[j];
            order[i] = i;
        }
        qid_eval_paired e;
        size_t used = qid_eval_stop_replay(s, a, b, c, t->n, order, &e);
        windows += used;
        full += t->n;
        cover += fabs(e.diff - truth) <= 1.96 * e.se;
        bias += (e.diff - truth) / e.se;
    }
    double cov = (double)cover / (double)reps;
    ok(cov >= 0.93 && cov <= 0.97, "%s: coverage of the 95%% interval %.4f (93-97%%)", what, cov);
    diag("%s: %zu of %zu windows (%.1fx fewer), mean (QiD - truth) / SE %+.3f", what, windows, full,
         (double)full / (double)windows, bias / (double)reps);
    free(a);
    free(b);
    free(c);
    free(order);
}

/* ---- adaptive evaluation of a model --------------------------------------- */

#define NW  48
#define SEQ 16

static const char *token_set(void)
{
    uint16_t raw[NW * SEQ];
    qid_rng rng;
    qid_rng_seed(&rng, 5, 0);
    for (size_t i = 0; i < NW * SEQ; i++)
        raw[i] = (uint16_t)qid_rng_below(&rng, 96);
    const char *rawp = tap_path("stop.u16"), *out = tap_path("stop.h5");
    tap_write_file(rawp, raw, sizeof raw);
    qid_tokens_import_opts o = {.input = rawp,
                                .output = out,
                                .source = QID_TOKENS_SRC_U16,
                                .vocab_size = 96,
                                .tokenizer = "test",
                                .seq_len = SEQ,
                                .force = 1};
    qid_error err;
    if (qid_tokens_import(&o, NULL, &err)) bail("tokens: %s", err.msg);
    return out;
}

static void check_model(const char *method)
{
    const char *ckpt = tap_import_fixture("gpt-neox-tiny", -1, -1), *tok = token_set();
    qid_error err;
    qid_eval_result base, full, ad;
    qid_eval_opts bo = {0};
    if (qid_eval_file(ckpt, tok, &bo, &base, &err)) bail("baseline: %s", err.msg);

    qid_quantize_opts qo;
    qid_quantize_opts_default(&qo);
    if (qid_quant_parse("int3-g16-sym", &qo.spec, &err)) bail("%s", err.msg);
    int gptq = strcmp(method, "gptq") == 0;
    qo.method = gptq ? QID_QUANTIZE_GPTQ : QID_QUANTIZE_RTN;
    uint32_t *calib = NULL;
    size_t cn = 0, cl = 0;
    qid_model *m = NULL;
    if (qid_model_open(ckpt, &m, &err)) bail("%s", err.msg);
    if (gptq && qid_quantize_read_calib(tok, qid_model_cfg(m), 4, 0, &calib, &cn, &cl, &err)) bail("%s", err.msg);
    qid_model_free(m);
    qid_quantizer *q1 = qid_quantizer_create(&qo), *q2 = qid_quantizer_create(&qo);
    qid_eval_opts fo = {.calib_tokens = calib, .calib_windows = cn, .calib_seq_len = cl, .kl = 1};
    qid_quantizer_hooks(q1, &fo.weight_hook, &fo.weight_ctx, &fo.act_hook, &fo.act_ctx);
    if (qid_eval_file(ckpt, tok, &fo, &full, &err)) bail("full: %s", err.msg);

    qid_eval_stop s = {.min_windows = 8, .block = 8, .target_se = 0.02, .target_rse = 0, .seed = 3};
    qid_eval_opts ao = fo;
    qid_quantizer_hooks(q2, &ao.weight_hook, &ao.weight_ctx, &ao.act_hook, &ao.act_ctx);
    ao.stop = &s;
    ao.base_nll = base.window_nll;
    ao.base_windows = base.n_windows;
    int rc = qid_eval_file(ckpt, tok, &ao, &ad, &err);
    is_int(QID_OK, rc, "%s: adaptive evaluation runs: %s", method, rc ? err.msg : "ok");

    /* what the rule does on the full run's vectors, in the same order */
    size_t order[NW];
    qid_eval_window_order(NW, s.seed, order);
    qid_eval_paired rp;
    size_t used = qid_eval_stop_replay(&s, base.window_nll, full.window_nll, full.window_tokens, NW, order, &rp);
    is_int((int)used, (int)ad.windows_used, "%s: stops after %zu of %d windows, as the replay on the full run", method,
           used, NW);
    int same = 1, unused_ok = 1;
    for (size_t k = 0; k < NW; k++) {
        size_t w = order[k];
        if (k < ad.windows_used)
            same &= fabs(ad.window_nll[w] - full.window_nll[w]) <= 1e-5 * fabs(full.window_nll[w]) &&
                    ad.window_tokens[w] == full.window_tokens[w];
        else
            unused_ok &= isnan(ad.window_nll[w]) && ad.window_tokens[w] == 0;
    }
    ok(same, "%s: the evaluated windows' NLL equal the full run's (1e-5 relative: other batch shapes)", method);
    ok(unused_ok, "%s: the other windows are NaN with 0 tokens", method);
    ok(fabs(ad.qid - rp.diff) <= 1e-5 * fabs(rp.diff) + 1e-9 && fabs(ad.qid_se - rp.se) <= 1e-4 * rp.se,
       "%s: QiD %.6f +- %.6f, as the replay's %.6f +- %.6f", method, ad.qid, ad.qid_se, rp.diff, rp.se);
    ok(ad.div.tokens == (int64_t)(ad.windows_used * (SEQ - 1)) && isfinite(ad.div.kl_median),
       "%s: the divergence report covers the evaluated windows", method);
    is_int((int)(ad.windows_used * (SEQ - 1)), (int)ad.tokens_scored, "%s: tokens scored of those windows", method);
    qid_eval_result_free(&base);
    qid_eval_result_free(&full);
    qid_eval_result_free(&ad);
    qid_quantizer_free(q1);
    qid_quantizer_free(q2);
    if (!gptq) free(calib);

    if (gptq) { /* several passes: the weights of the first are kept, as one pass computes them */
        qid_eval_result one, many;
        qid_quantizer *q3 = qid_quantizer_create(&qo), *q4 = qid_quantizer_create(&qo);
        qid_eval_opts o1 = {.calib_tokens = calib, .calib_windows = cn, .calib_seq_len = cl, .batch_windows = NW};
        qid_eval_opts o6 = o1;
        o6.batch_windows = 8;
        qid_quantizer_hooks(q3, &o1.weight_hook, &o1.weight_ctx, &o1.act_hook, &o1.act_ctx);
        qid_quantizer_hooks(q4, &o6.weight_hook, &o6.weight_ctx, &o6.act_hook, &o6.act_ctx);
        if (qid_eval_file(ckpt, tok, &o1, &one, &err) || qid_eval_file(ckpt, tok, &o6, &many, &err))
            bail("%s", err.msg);
        int eq = 1;
        for (size_t w = 0; w < NW; w++)
            eq &= fabs(one.window_nll[w] - many.window_nll[w]) <= 1e-5 * fabs(one.window_nll[w]);
        ok(eq && many.batch_windows == 8, "gptq in 6 passes of 8 windows (weights kept) equals one pass (1e-5)");
        ok(qid_quantizer_stats(q4)->tensors == qid_quantizer_stats(q3)->tensors, "... and quantized each tensor once");
        qid_eval_result_free(&one);
        qid_eval_result_free(&many);
        qid_quantizer_free(q3);
        qid_quantizer_free(q4);
        free(calib);
        return;
    }
    /* bad inputs */
    qid_eval_opts bad = ao;
    double nll[3] = {1, 2, 3};
    bad.base_nll = nll;
    bad.base_windows = 3;
    rc = qid_eval_file(ckpt, tok, &bad, &ad, &err);
    ok(rc == QID_E_INVALID, "a baseline of 3 windows for 48 is refused");
    like(err.msg, "adaptive evaluation of 48 windows needs the baseline's 3", "... saying so: %s", err.msg);
    qid_eval_result_free(&ad);
}

int main(void)
{
    plan(39);
    check_order();
    check_rule();
    static pop p[MAX_TASKS];
    size_t np = read_pops(p);
    is_int(8, (int)np, "eight tasks in the fixture");
    check_replay(&p[0]);
    check_replay(&p[3]);
    qid_eval_stop def = {.min_windows = 32, .block = 32, .target_se = 0.001, .target_rse = 0.05};
    check_coverage(p, np, &def, 4000, "the job defaults (min 32, block 32, 0.001, 5%)");
    qid_eval_stop tight = {.min_windows = 32, .block = 16, .target_se = 0.0002, .target_rse = 0.02};
    check_coverage(p, np, &tight, 4000, "min 32, block 16, 0.0002, 2%");
    qid_eval_stop loose = {.min_windows = 16, .block = 16, .target_se = 0.002, .target_rse = 0.1};
    check_coverage(p, np, &loose, 4000, "min 16, block 16, 0.002, 10%");
    check_model("rtn");
    check_model("gptq");
    for (size_t i = 0; i < np; i++) {
        free(p[i].d);
        free(p[i].c);
    }
    return 0;
}
