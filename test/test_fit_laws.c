/* test_fit_laws.c - recovery of the law forms (fit_compare.h): synthetic
 * stores generated from each form on the embedded suite's design, fitted and
 * compared as `qid fit --compare` does. The generating law must win the
 * leave-future-out comparison in at least 90% of the replicates, and its
 * coefficients must fall inside their 95% bootstrap intervals (by
 * checkpoint) in 88-99% of them (pooled over the four coefficients; each
 * coefficient's rate is printed).
 *
 * The design is `make demo`'s suite: N = 25k, 100k, 336k, 793k
 * non-embedding parameters; D = 4096 * 2^j tokens, j = 0..8 (steps 2..512
 * of 2048 tokens); per checkpoint RTN and GPTQ at 2, 3, 4 and 8 bits and
 * MXFP4 (P = 4): 9 points, 324 in all. The noise is what the demo's points
 * show (build/demo, DEMO_SIZE=small, 96 quantizer rows, 64 windows of 128
 * tokens): the standard error of QiD grows like its square root,
 * se = sqrt(0.045^2 QiD + 1e-4^2) (median se 0.0079 at QiD 0.028, 0.0032 at
 * 0.0068, 0.0015 at 0.0006, 8e-5 for the 8-bit points), and QiD = law +
 * se * normal. The acceptance is asserted for an evaluation 4x the demo's
 * (32768 tokens: 0.045 -> 0.0225); at the demo's own 8192 tokens the test
 * asserts only 2/3 (--full: 43 of 50 for Ouyang's data, 46 of 50 for
 * Kumar's). Coverage: 88-99% over --full's 50 replicates (200 intervals per
 * form); make check's 12 (48 intervals, binomial sd 3%) asserts 80-100%. The Ouyang law is the full demo's fit
 * (k 5.486, alpha 0.2764, beta 0.1235, gamma 4.8651); the Kumar law has the same N and D exponents, gamma_post = 2 /
 * (gamma ln 2) (the same 2-to-4-bit ratio) and C matching it at 3 bits.
 *
 * The learning-rate form (ouyang-lr) is recovered on a second design, the
 * demo's schedule confound (lr_recovery): the same four sizes with a cosine
 * schedule, the smallest also with warm-up-stable-decay and a constant rate,
 * so that D and the learning rate at a checkpoint vary apart. Data with a
 * learning-rate factor (delta 1): ouyang-lr must win leave-future-out in 90%
 * and cover its five coefficients as above, and delta's interval must
 * exclude 0; data without it (Ouyang's law): delta's interval must include 0
 * in at least 80% (how often plain Ouyang beats its superset is printed).
 *
 * `fit_laws.t` runs 12 replicates per form and noise (make check, about 5 s);
 * `fit_laws.t --full` runs 50 (the acceptance; about 30 s). Every draw is seeded:
 * the numbers are the same on every run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit.h"
#include "fit_compare.h"
#include "lr_schedule.h"
#include "rng.h"
#include "tap.h"

static const double design_n[4] = {25472, 99968, 336000, 793344};
static const double design_p[9] = {2, 3, 4, 8, 2, 3, 4, 8, 4};
#define N_CKPT_PER_MODEL 9
#define N_POINTS         (4 * N_CKPT_PER_MODEL * 9)

static double noise_c = 0.045; /* se = sqrt(noise_c^2 QiD + 1e-4^2) */

static void gen(const qid_fit_law *law, uint64_t seed, qid_fit_obs *o)
{
    qid_rng r;
    qid_rng_seed(&r, seed, 0);
    size_t k = 0;
    for (int m = 0; m < 4; m++)
        for (int j = 0; j < N_CKPT_PER_MODEL; j++) {
            double D = 4096.0 * pow(2.0, j);
            for (int q = 0; q < 9; q++) {
                double v = qid_fit_law_eval(law, design_n[m], D, design_p[q]);
                double se = sqrt(noise_c * noise_c * v + 1e-4 * 1e-4);
                o[k++] = (qid_fit_obs){.ckpt = m * N_CKPT_PER_MODEL + j,
                                       .group = m,
                                       .n = design_n[m],
                                       .d = D,
                                       .p = design_p[q],
                                       .qid = v + se * qid_rng_normal(&r),
                                       .se = se,
                                       .loss16 = NAN};
            }
        }
}

static double coef(const qid_fit_law *l, int j) { return qid_fit_law_coef(l, j); }

/* The comparison `qid fit --compare` makes of forms[0..n_forms) on o[0..n) (no bootstrap, seed r + 1),
 * into c; bails naming what and the replicate when it fails. */
static void compare(const qid_fit_obs *o, size_t n, const int *forms, size_t n_forms, size_t r, const char *what,
                    qid_fit_compare *c)
{
    qid_fit_opts op;
    qid_fit_opts_init(&op);
    op.n_boot = 0;
    op.seed = r + 1;
    qid_error e;
    qid_error_clear(&e);
    if (qid_fit_compare_run(o, n, forms, n_forms, &op, c, &e)) bail("%s replicate %zu: compare: %s", what, r, e.msg);
}

/* The bootstrap (n_boot draws, seed r + 1) of the law of `form` on o[0..n) into b; bails when it fails. */
static void bootstrap(const qid_fit_obs *o, size_t n, int form, size_t n_boot, size_t r, const char *what,
                      qid_fit_boot *b)
{
    qid_fit_opts op;
    qid_fit_opts_init(&op);
    op.seed = r + 1;
    op.form = form;
    op.n_boot = n_boot;
    qid_error e;
    qid_error_clear(&e);
    if (qid_fit_law_bootstrap(o, n, &op, b, &e)) bail("%s replicate %zu: bootstrap: %s", what, r, e.msg);
}

/* ---- the learning-rate form ------------------------------------------------------
 * The demo's schedule confound: the four sizes with a cosine schedule and
 * the smallest twice more with warm-up-stable-decay and a constant rate,
 * each saved at steps 8, 16, ..., 1024, 1536, 2048 of 2048 (2048 tokens per
 * step; warm-up 102 steps, decay to 0.1 of the peak, wsd's last 20%). So D
 * and the learning rate at each checkpoint vary, and not together. */
#define LR_RUNS   6
#define LR_CKPTS  10
#define LR_POINTS (LR_RUNS * LR_CKPTS * 9)
static const int lr_run_size[LR_RUNS] = {0, 1, 2, 3, 0, 0};
static const char *const lr_run_sched[LR_RUNS] = {
    "cosine,steps=2048,warmup=102,min=0.1",        "cosine,steps=2048,warmup=102,min=0.1",
    "cosine,steps=2048,warmup=102,min=0.1",        "cosine,steps=2048,warmup=102,min=0.1",
    "wsd,steps=2048,warmup=102,min=0.1,decay=0.2", "constant,warmup=102"};
static const double lr_steps[LR_CKPTS] = {8, 16, 32, 64, 128, 256, 512, 1024, 1536, 2048};

static void gen_lr(const qid_fit_law *law, uint64_t seed, qid_fit_obs *o)
{
    qid_rng r;
    qid_rng_seed(&r, seed, 0);
    size_t k = 0;
    for (int run = 0; run < LR_RUNS; run++) {
        qid_train_sched sched;
        qid_error e;
        if (qid_sched_spec_parse(lr_run_sched[run], &sched, &e)) bail("schedule: %s", e.msg);
        int m = lr_run_size[run];
        for (int j = 0; j < LR_CKPTS; j++) {
            double D = 2048.0 * lr_steps[j], lr = qid_train_lr(&sched, (int64_t)lr_steps[j]);
            for (int q = 0; q < 9; q++) {
                qid_fit_obs x = {.ckpt = run * LR_CKPTS + j,
                                 .group = m,
                                 .n = design_n[m],
                                 .d = D,
                                 .p = design_p[q],
                                 .loss16 = NAN,
                                 .lr = lr};
                double v = qid_fit_law_eval_obs(law, &x);
                x.se = sqrt(noise_c * noise_c * v + 1e-4 * 1e-4);
                x.qid = v + x.se * qid_rng_normal(&r);
                o[k++] = x;
            }
        }
    }
}

/* Data from Ouyang's law with the learning-rate factor (delta 1: QiD 2.5x
 * higher at the end of a decay to 0.1 than at the peak) and from Ouyang's
 * law without it, on the confound design, compared as `qid fit --compare`
 * compares them; returns the number of ok()s. */
static void lr_recovery(size_t reps, size_t n_boot, int full)
{
    qid_fit_law lrlaw = {
        .k = 1.2, .alpha = 0.2764, .beta = 0.1235, .gamma = 4.8651, .delta = 1.0, .form = QID_FIT_FORM_OUYANG_LR};
    qid_fit_law plain = {
        .k = 2.4, .alpha = 0.2764, .beta = 0.1235, .gamma = 4.8651, .lr = NAN, .form = QID_FIT_FORM_OUYANG};
    const int forms[QID_FIT_N_FORMS] = {QID_FIT_FORM_OUYANG, QID_FIT_FORM_KUMAR, QID_FIT_FORM_OUYANG_LR};
    qid_fit_obs *o = malloc(LR_POINTS * sizeof *o);
    noise_c = 0.0225; /* 4x the demo's evaluation, as the acceptance above */
    for (int t = 0; t < 2; t++) {
        const qid_fit_law *truth = t == 0 ? &lrlaw : &plain;
        size_t wins = 0, inside[QID_FIT_MAX_COEF] = {0}, n_cov = 0, delta0_in = 0;
        for (size_t r = 0; r < reps; r++) {
            gen_lr(truth, 7000 + 1000 * (uint64_t)t + r, o);
            qid_fit_compare c;
            compare(o, LR_POINTS, forms, QID_FIT_N_FORMS, r, "lr design", &c);
            wins += (size_t)(c.law[c.best_lfo].form == truth->form);
            if (r == 0)
                diag("%s data on the schedule design, replicate 0: future err ouyang %.4f kumar %.4f ouyang-lr %.4f; "
                     "AIC %.1f %.1f %.1f",
                     qid_fit_form_of(truth->form)->name, c.law[0].lfo_err, c.law[1].lfo_err, c.law[2].lfo_err,
                     c.law[0].aic, c.law[1].aic, c.law[2].aic);
            qid_fit_boot b;
            bootstrap(o, LR_POINTS, QID_FIT_FORM_OUYANG_LR, n_boot, r, "lr design", &b);
            for (int j = 0; j < QID_FIT_MAX_COEF; j++)
                inside[j] += coef(&b.lo, j) <= coef(truth, j) && coef(truth, j) <= coef(&b.hi, j);
            delta0_in += b.lo.delta <= 0 && 0 <= b.hi.delta;
            n_cov++;
            qid_fit_boot_free(&b);
        }
        const qid_fit_form *F = qid_fit_form_of(QID_FIT_FORM_OUYANG_LR);
        if (t == 0) {
            size_t all_in = 0;
            for (int j = 0; j < QID_FIT_MAX_COEF; j++) {
                all_in += inside[j];
                diag("ouyang-lr data: true %-6s %-7.5g inside its 95%% interval in %zu of %zu replicates", F->coef[j],
                     coef(truth, j), inside[j], n_cov);
            }
            double rate = (double)all_in / (QID_FIT_MAX_COEF * (double)n_cov);
            ok((double)wins >= 0.9 * (double)reps,
               "ouyang-lr data (delta 1) on the schedule design: the ouyang-lr law wins leave-future-out in %zu of %zu "
               "replicates (>= 90%%)",
               wins, reps);
            double lo = full ? 0.88 : 0.80, hi = full ? 0.99 : 1.0;
            ok(rate >= lo && rate <= hi,
               "ouyang-lr data: its 5 coefficients inside their 95%% bootstrap intervals in %.1f%% of %zu "
               "(%.0f-%.0f%%)",
               100 * rate, QID_FIT_MAX_COEF * n_cov, 100 * lo, 100 * hi);
            ok(delta0_in == 0, "ouyang-lr data: delta's interval excludes 0 in every replicate (%zu of %zu include it)",
               delta0_in, n_cov);
        } else {
            diag("ouyang data (no learning-rate effect) on the schedule design: ouyang wins leave-future-out in %zu of "
                 "%zu replicates against kumar and ouyang-lr (its superset)",
                 wins, reps);
            ok((double)delta0_in >= 0.8 * (double)n_cov,
               "ouyang data: the ouyang-lr fit's delta interval includes 0 in %zu of %zu replicates (>= 80%%): no "
               "learning-rate effect is found where there is none",
               delta0_in, n_cov);
        }
    }
    free(o);
}

int main(int argc, char **argv)
{
    int full = argc > 1 && strcmp(argv[1], "--full") == 0;
    size_t reps = full ? 50 : 12, n_boot = full ? 400 : 200;
    const qid_fit_law ouyang = {
        .k = 5.486, .alpha = 0.2764, .beta = 0.1235, .gamma = 4.8651, .lr = NAN, .form = QID_FIT_FORM_OUYANG};
    double gpost = 2.0 / (ouyang.gamma * log(2.0));
    qid_fit_law kumar = {
        .k = 0, .alpha = ouyang.alpha, .beta = ouyang.beta, .gamma = gpost, .lr = NAN, .form = QID_FIT_FORM_KUMAR};
    kumar.k = ouyang.k * pow(3.0, -ouyang.gamma) * exp(3.0 / gpost);
    const qid_fit_law *truth[2] = {&ouyang, &kumar};
    plan(2 * (2 * 2) + 1 + 4);
    diag("%zu replicates per form, %zu bootstrap draws each (%s)", reps, n_boot,
         full ? "--full" : "make check; --full runs 50");

    qid_fit_obs *o = malloc(N_POINTS * sizeof *o);
    /* Ouyang's and Kumar's forms on the suite without learning rates (the
     * learning-rate form needs them: lr_recovery below). */
    const int forms[2] = {QID_FIT_FORM_OUYANG, QID_FIT_FORM_KUMAR};
    double max_spread = 0;
    /* Two evaluation sizes: 4x the demo's (256 windows of 128 tokens), where
     * the acceptance is asserted, and the demo's own 8192 tokens,
     * where leave-future-out tells the forms apart less often. */
    static const double eval_tokens[2] = {32768, 8192};
    for (int level = 0; level < 2; level++) {
        noise_c = 0.045 * sqrt(8192.0 / eval_tokens[level]);
        diag("noise of an evaluation on %.0f tokens: se = sqrt(%.4f^2 QiD + 1e-4^2)", eval_tokens[level], noise_c);
        for (int g = 0; g < 2; g++) {
            const qid_fit_form *F = qid_fit_form_of(g);
            size_t wins = 0, inside[4] = {0, 0, 0, 0}, n_cov = 0;
            double margin_sum = 0;
            for (size_t r = 0; r < reps; r++) {
                gen(truth[g], 1000 * (uint64_t)(g + 1) + 100000 * (uint64_t)level + r, o);
                qid_fit_compare c;
                compare(o, N_POINTS, forms, 2, r, F->name, &c);
                int won = c.law[c.best_lfo].form == g;
                wins += (size_t)won;
                margin_sum += c.law[1 - g].lfo_err - c.law[g].lfo_err;
                if (r == 0 && level == 0) {
                    diag(
                        "%s data, replicate 0: %zu future points (%zu significant); future err ouyang %.4f kumar %.4f; "
                        "AIC ouyang %.1f kumar %.1f; LOMO ouyang %.4f kumar %.4f",
                        F->name, c.n_future, c.n_future_significant, c.law[0].lfo_err, c.law[1].lfo_err, c.law[0].aic,
                        c.law[1].aic, c.law[0].lomo_err, c.law[1].lomo_err);
                    for (int j = 0; j < QID_FIT_COMPARE_N_PRED; j += 4) {
                        double a = c.law[0].pred[j], b = c.law[1].pred[j];
                        diag("  QiD at N %.3g, D 1e14, P %g: ouyang %.4g kumar %.4g", qid_fit_compare_pred_n[j / 3],
                             qid_fit_compare_pred_p[j % 3], a, b);
                        max_spread = fmax(max_spread, fabs(log(a / b)));
                    }
                }
                qid_fit_boot b;
                bootstrap(o, N_POINTS, g, n_boot, r, F->name, &b);
                for (int j = 0; j < 4; j++)
                    inside[j] += coef(&b.lo, j) <= coef(truth[g], j) && coef(truth[g], j) <= coef(&b.hi, j);
                n_cov++;
                qid_fit_boot_free(&b);
            }
            size_t all_in = inside[0] + inside[1] + inside[2] + inside[3];
            double rate = (double)all_in / (4.0 * (double)n_cov);
            for (int j = 0; j < 4; j++)
                diag("%s data, %.0f tokens: true %-10s %-9.5g inside its 95%% interval in %zu of %zu replicates "
                     "(%.0f%%)",
                     F->name, eval_tokens[level], F->coef[j], coef(truth[g], j), inside[j], n_cov,
                     100.0 * (double)inside[j] / (double)n_cov);
            if (level == 0)
                ok((double)wins >= 0.9 * (double)reps,
                   "%s data, %.0f eval tokens: the %s law wins leave-future-out in %zu of %zu replicates (>= 90%%; "
                   "mean margin %.4f in RMS standardized residual)",
                   F->name, eval_tokens[level], F->name, wins, reps, margin_sum / (double)reps);
            else
                ok(3.0 * (double)wins >= 2.0 * (double)reps,
                   "%s data, %.0f eval tokens (the demo's): the %s law wins leave-future-out in %zu of %zu replicates "
                   "(at least 2/3, not 90%%: at this noise the forms are told apart less often; mean margin %.4f)",
                   F->name, eval_tokens[level], F->name, wins, reps, margin_sum / (double)reps);
            double lo = full ? 0.88 : 0.80, hi = full ? 0.99 : 1.0;
            ok(rate >= lo && rate <= hi,
               "%s data, %.0f eval tokens: its coefficients inside their 95%% bootstrap intervals in %.1f%% of %zu "
               "(%.0f-%.0f%%)",
               F->name, eval_tokens[level], 100 * rate, 4 * n_cov, 100 * lo, 100 * hi);
        }
    }
    ok(max_spread > 0.05,
       "the two laws' predictions at 1e14 tokens differ (largest |ln ratio| %.3f): the spread is "
       "extrapolation uncertainty the comparison shows",
       max_spread);
    free(o);
    lr_recovery(reps, n_boot, full);
    return 0;
}
