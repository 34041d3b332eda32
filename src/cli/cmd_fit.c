/* cmd_fit.c - `qid fit STORE`: its options, usage and the printing of the
 * laws it fits (cli_fit.h). The work is the library's: rows ->
 * observations (fit_obs.c), the suite of laws (fit_suite.c), /fits/<name>
 * (fit_store.c).
 *
 * Does not: fit or write anything itself. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_fit.h"
#include "fit_store.h"
#include "parse.h"
#include "quant.h"
#include "quantize.h"

void qid_fit_cmd_opts_init(qid_fit_cmd_opts *o)
{
    *o = (qid_fit_cmd_opts){.name = "default"};
    qid_fit_filter_init(&o->filter);
    qid_fit_opts_init(&o->fit);
}

/* "replacing /fits/NAME (...)" when the store already has an entry of that name: a fit never replaces another
 * silently. */
static void print_replaced(FILE *out, const char *store, const char *name)
{
    qid_fit_entry *e = NULL;
    size_t n = 0;
    if (qid_fit_store_entries(store, &e, &n, NULL) == QID_OK)
        for (size_t k = 0; k < n; k++)
            if (strcmp(e[k].name, name) == 0)
                fprintf(out, "replacing /fits/%s: %s%s%s%s%s%s%s\n", name, e[k].form[0] ? e[k].form : e[k].kind,
                        e[k].form[0] ? " law" : "", e[k].filters[0] ? " from " : "", e[k].filters,
                        e[k].created[0] ? ", made " : "", e[k].created,
                        strcmp(name, "default") == 0 ? " (--name NAME keeps both)" : "");
    free(e);
}

int qid_fit_cmd_run(const char *store, const qid_fit_cmd_opts *o, FILE *out, qid_fit_suite *s_out, qid_error *err)
{
    qid_fit_suite local, *s = s_out ? s_out : &local;
    qid_fit_compare cmp;
    int rc = qid_fit_suite_of_store(store, &o->filter, &o->fit, s, err);
    if (rc == QID_OK && o->compare) {
        int forms[QID_FIT_N_FORMS];
        for (int f = 0; f < QID_FIT_N_FORMS; f++)
            forms[f] = f;
        rc = qid_fit_compare_of_store(store, &o->filter, forms, QID_FIT_N_FORMS, &o->fit, &cmp, err);
    }
    if (rc == QID_OK) {
        if (out) qid_fit_cmd_print(out, s, o);
        if (out && o->compare) qid_fit_cmd_print_compare(out, &cmp);
        if (out) print_replaced(out, store, o->name);
        if ((rc = qid_fit_store_write_suite(store, o->name, s, o->compare ? &cmp : NULL, &o->filter, &o->fit, err)) ==
                QID_OK &&
            out)
            fprintf(out, "written to /fits/%s%s of %s\n", o->name, o->compare ? " (and its compare group)" : "", store);
    }
    if (!s_out) qid_fit_suite_free(s);
    return rc;
}

/* ---- printing ------------------------------------------------------------------------ */

void qid_fit_list_print(FILE *out, const char *prefix, const char *list)
{
    for (const char *w = list; *w;) {
        const char *e = strstr(w, "; ");
        int len = e ? (int)(e - w) : (int)strlen(w);
        fprintf(out, "%s%.*s\n", prefix, len, w);
        w = e ? e + 2 : w + len;
    }
}

static void print_filters(FILE *out, const qid_fit_cmd_opts *o)
{
    char bits[256];
    const qid_fit_filter *f = &o->filter;
    qid_fit_bits_text(f->bits_mask, bits, sizeof bits);
    fprintf(out, "filters: method %s, format %s, bits %s, tokens [%.4g, %.4g], models %s\n",
            f->method ? f->method : "any", f->format ? f->format : "any", bits[0] ? bits : "any", f->min_tokens,
            f->max_tokens, f->models ? f->models : "all");
}

/* The unified law: counts, coefficients with intervals, quality. */
static void print_unified(FILE *out, const qid_fit_suite *s, const qid_fit_cmd_opts *o)
{
    const qid_fit_result *f = &s->law;
    const qid_fit_form *form = qid_fit_form_of(f->law.form);
    fprintf(out, "unified law (%s): %s\n", form->name, form->text);
    print_filters(out, o);
    fprintf(out,
            "points %zu (all in the robust fit; %zu with QiD > %g se start it; %zu down-weighted by the Huber loss), "
            "checkpoints %zu, model sizes %zu, token counts %zu, bit widths %zu\n",
            s->n_points, f->n_significant, o->fit.z, f->n_downweighted, s->n_checkpoints, s->n_models,
            s->n_tokens_values, s->n_bits_values);
    int have_ci = s->boot.n_draws > 0;
    int w = f->law.form == QID_FIT_FORM_OUYANG ? 6 : 10; /* the width of the longest coefficient name */
    if (have_ci)
        fprintf(out, "%-*s %12s  %2.0f%% interval (bootstrap by checkpoint: %zu draws, %zu failed, seed %llu)\n", w, "",
                "value", 100 * s->boot.level, s->boot.n_draws, s->boot.n_failed, (unsigned long long)o->fit.seed);
    else
        fprintf(out, "%-*s %12s  (no bootstrap intervals)\n", w, "", "value");
    for (int j = 0; j < form->n_coef; j++) {
        fprintf(out, "%-*s %12.6g", w, form->coef[j], qid_fit_law_coef(&f->law, j));
        if (have_ci) fprintf(out, "  [%.6g, %.6g]", qid_fit_law_coef(&s->boot.lo, j), qid_fit_law_coef(&s->boot.hi, j));
        fprintf(out, "   (log-linear start %.6g)\n", qid_fit_law_coef(&f->start, j));
    }
    if (form->n_coef == QID_FIT_MAX_COEF)
        fprintf(out,
                "(predictions at lr %.4g of the peak: the lowest learning rate of the points, the end of their "
                "schedule)\n",
                f->law.lr);
    fprintf(out, "R^2 (log) %.4f, RMSE %.4g nats, residual scale %.3g, %s after %d iterations (step %.2g)\n", f->r2_log,
            f->rmse, f->scale, f->conv.converged ? "converged" : "NOT converged", f->conv.iterations, f->conv.step);
}

static void print_lomo(FILE *out, const qid_fit_suite *s)
{
    if (s->lomo_status != QID_OK) return;
    fprintf(out, "leave-one-model-size-out: pooled RMSE %.4g nats\n", s->lomo.rmse);
    for (size_t g = 0; g < s->lomo.n_groups; g++) {
        const qid_fit_lomo_row *r = &s->lomo.rows[g];
        if (r->status == QID_OK)
            fprintf(out, "  N %-10.4g %4zu points  RMSE %.4g  mean |ln pred/qid| %.3f\n", r->n, r->n_points, r->rmse,
                    r->mean_abs_log);
        else
            fprintf(out, "  N %-10.4g %4zu points  fit without it failed (%s)\n", r->n, r->n_points,
                    qid_status_name(r->status));
    }
}

static void print_by_bits(FILE *out, const qid_fit_suite *s)
{
    if (!s->n_by_bits) return;
    fprintf(out, "per bit width: QiD = k_P * D^beta / N^alpha\n  %-3s %12s %9s %9s %7s  %s\n", "P", "k_P", "alpha",
            "beta", "points", "R^2 (log)");
    for (size_t i = 0; i < s->n_by_bits; i++) {
        const qid_fit_group *g = &s->by_bits[i];
        if (g->status == QID_OK)
            fprintf(out, "  %-3g %12.6g %9.4f %9.4f %7zu  %.4f%s\n", g->p, g->fit.law.k, g->fit.law.alpha,
                    g->fit.law.beta, g->n_points, g->fit.r2_log, g->fit.conv.converged ? "" : "  NOT converged");
        else
            fprintf(out, "  %-3g %7zu points: no fit: %s\n", g->p, g->n_points, g->msg);
    }
}

/* Every group of per-factor law f (qid fit --factors). */
static void print_factor_groups(FILE *out, const qid_fit_suite *s, int f)
{
    const qid_fit_factor_info *fi = &qid_fit_factors[f];
    for (size_t i = 0; i < s->n_factor[f]; i++) {
        const qid_fit_group *g = &s->factor[f][i];
        char at[96] = "";
        if (!isnan(g->n)) snprintf(at + strlen(at), sizeof at - strlen(at), "N %-9.4g ", g->n);
        if (!isnan(g->d)) snprintf(at + strlen(at), sizeof at - strlen(at), "D %-9.4g ", g->d);
        if (!isnan(g->p)) snprintf(at + strlen(at), sizeof at - strlen(at), "P %-3g ", g->p);
        if (g->status == QID_OK)
            fprintf(out, "    %-28s c %-11.5g %s %8.4f  %3zu points  R^2 (log) %.4f\n", at, g->fit.law.k, fi->exponent,
                    qid_fit_group_exponent(g, fi->by), g->n_points, g->fit.r2_log);
        else
            fprintf(out, "    %-28s %3zu points: no fit: %s\n", at, g->n_points, g->msg);
    }
}

static void print_factors(FILE *out, const qid_fit_suite *s, const qid_fit_cmd_opts *o)
{
    /* Kumar's law has no power of P: its gamma_post is not the per-factor gamma. */
    const double unified[QID_FIT_N_FACTORS] = {s->law.law.beta, s->law.law.alpha,
                                               s->law.law.form == QID_FIT_FORM_OUYANG ? s->law.law.gamma : NAN};
    fprintf(out, "per-factor laws (median exponent over the groups with a fit; the unified law's in brackets):\n");
    for (int f = 0; f < QID_FIT_N_FACTORS; f++) {
        fprintf(out, "  %-38s median %-5s ", qid_fit_factors[f].law, qid_fit_factors[f].exponent);
        if (s->factor_used[f])
            if (isnan(unified[f]))
                fprintf(out, "%8.4f over %zu of %zu groups  [the %s law has no power of P]\n", s->factor_median[f],
                        s->factor_used[f], s->n_factor[f], qid_fit_form_of(s->law.law.form)->name);
            else
                fprintf(out, "%8.4f over %zu of %zu groups  [unified %.4f]\n", s->factor_median[f], s->factor_used[f],
                        s->n_factor[f], unified[f]);
        else
            fprintf(out, "no group has a fit (%zu groups%s%s)\n", s->n_factor[f], s->n_factor[f] ? "; first: " : "",
                    s->n_factor[f] ? s->factor[f][0].msg : "");
        if (o->factors) print_factor_groups(out, s, f);
    }
    if (!o->factors) fprintf(out, "  ('qid fit --factors' prints every group; all are stored in /fits/NAME/factors)\n");
}

static void print_loss16(FILE *out, const qid_fit_suite *s)
{
    if (s->loss16_status != QID_OK) {
        fprintf(out, "16-bit loss law: not fitted (%zu checkpoints): %s\n", s->n_loss16_points, s->loss16_msg);
        return;
    }
    const qid_fit_loss16 *l = &s->loss16.law;
    fprintf(out,
            "16-bit loss law: L = [(Nc/N)^(aN/aD) + Dc/D]^aD: Nc %.4g, Dc %.4g, aN %.4f, aD %.4f (%zu checkpoints, "
            "RMSE log %.3g, R^2 log %.4f, %s)\n",
            l->nc, l->dc, l->an, l->ad, s->n_loss16_points, s->loss16.rmse_log, s->loss16.r2_log,
            s->loss16.conv.converged ? "converged" : "NOT converged");
}

void qid_fit_cmd_print(FILE *out, const qid_fit_suite *s, const qid_fit_cmd_opts *o)
{
    print_unified(out, s, o);
    print_lomo(out, s);
    print_by_bits(out, s);
    print_factors(out, s, o);
    print_loss16(out, s);
    qid_fit_list_print(out, "warning: ", s->warnings);
}

void qid_fit_cmd_print_compare(FILE *out, const qid_fit_compare *c)
{
    fprintf(out,
            "\nlaw comparison on the same %zu points (%zu significant, qid > z*se):\n"
            "  wRMSE log, AIC, BIC: ln QiD on the significant points, weights (qid/se)^2; ln qid ~ Normal(ln law, "
            "sigma^2 (se/qid)^2), k = coefficients + 1\n"
            "  LOMO and future err: RMS of (qid - law)/se over every held-out point (1 for the true law)\n"
            "  leave-future-out: each model size's first %.0f%% of its log D range fitted (%zu points), the rest "
            "predicted (%zu points, %zu significant, %zu checkpoints)\n",
            c->n_points, c->n_significant, 100 * c->cut, c->n_past, c->n_future, c->n_future_significant,
            c->n_future_checkpoints);
    if (c->note[0]) fprintf(out, "  (%s)\n", c->note);
    fprintf(out, "  %-10s %10s %10s %10s %10s %12s %12s  %s\n", "law", "wRMSE log", "ln L", "AIC", "BIC", "LOMO err",
            "future err", "R^2 (log)");
    for (size_t f = 0; f < c->n_laws; f++) {
        const qid_fit_compare_law *L = &c->law[f];
        fprintf(out, "  %-10s %10.4f %10.2f %10.2f %10.2f %12.4f %12.4f  %.4f%s\n", qid_fit_form_of(L->form)->name,
                L->wrmse_log, L->loglik, L->aic, L->bic, L->lomo_err, L->lfo_err, L->fit.r2_log,
                L->lomo_failed ? "  (some leave-one-size-out fits failed)" : "");
    }
    for (size_t p = 0; p < c->n_pairs; p++) {
        const qid_fit_compare_pair *P = &c->pair[p];
        fprintf(out, "  future err %s - %s: %+.4f", qid_fit_form_of(c->law[P->a].form)->name,
                qid_fit_form_of(c->law[P->b].form)->name, P->diff);
        if (!isnan(P->lo))
            fprintf(out, "  %.0f%% [%+.4f, %+.4f] (bootstrap over the future checkpoints, %zu draws)%s\n",
                    100 * c->level, P->lo, P->hi, c->n_boot, P->lo > 0 || P->hi < 0 ? "" : ": not resolved");
        else
            fprintf(out, "  (no bootstrap)\n");
    }
    fprintf(out, "  lowest leave-future-out error: %s\n", qid_fit_form_of(c->law[c->best_lfo].form)->name);
    fprintf(out,
            "predictions at D = %.3g tokens (extrapolation: the spread between laws is part of its uncertainty):\n",
            qid_fit_compare_pred_d);
    for (size_t f = 0; f < c->n_laws; f++)
        if (c->law[f].n_coef == QID_FIT_MAX_COEF)
            fprintf(out, "  (%s at lr %.4g of the peak, the lowest of the points: the end of their schedule)\n",
                    qid_fit_form_of(c->law[f].form)->name, c->law[f].fit.law.lr);
    fprintf(out, "  %-8s %-4s", "N", "P");
    for (size_t f = 0; f < c->n_laws; f++)
        fprintf(out, " %32s", qid_fit_form_of(c->law[f].form)->name);
    fprintf(out, "\n");
    for (int j = 0; j < QID_FIT_COMPARE_N_PRED; j++) {
        fprintf(out, "  %-8.3g %-4g", qid_fit_compare_pred_n[j / 3], qid_fit_compare_pred_p[j % 3]);
        for (size_t f = 0; f < c->n_laws; f++) {
            const qid_fit_compare_law *L = &c->law[f];
            char ci[48] = "";
            if (!isnan(L->pred_lo[j])) snprintf(ci, sizeof ci, "[%.3g, %.3g]", L->pred_lo[j], L->pred_hi[j]);
            fprintf(out, " %10.4g %21s", L->pred[j], ci);
        }
        fprintf(out, "\n");
    }
}

/* ---- the command line ------------------------------------------------------------------ */

static void fit_usage(FILE *out)
{
    fprintf(out, "usage: qid fit STORE [--method M] [--format F] [--bits 2,3,4] [--min-tokens D] [--max-tokens D]\n"
                 "               [--models a,b] [--boot N] [--seed S] [--z Z] [--name NAME] [--factors]\n"
                 "               [--law NAME] [--compare]\n"
                 "\n"
                 "Fits the scaling laws of QiD to a results store and writes them into its\n"
                 "/fits/NAME (hdf5-schema/results.md): the unified law QiD = k D^beta / (N^alpha P^gamma)\n"
                 "with bootstrap intervals (resampling whole checkpoints), R^2 (log), RMSE and\n"
                 "leave-one-model-size-out error; a law per bit width; the per-factor laws QiD vs D\n"
                 "for each (N, P), vs N for each (D, P) (D within 10%% share a bin) and vs P for each\n"
                 "(N, D), with their median exponents next to the unified law's; the 16-bit loss law\n"
                 "from the baseline rows. Uses the last OK row of each task. Needs the store's lock\n"
                 "for the write (fails while a 'qid run' is writing it).\n"
                 "\n"
                 "options:\n"
                 "  --method M        only rows of quantizer method M (rtn, gptq, awq)\n"
                 "  --format F        only rows of format F\n"
                 "  --bits LIST       only these element bit widths P\n"
                 "  --min-tokens D    only checkpoints with D >= this many tokens\n"
                 "  --max-tokens D    only checkpoints with D <= this many tokens\n"
                 "  --models LIST     only these models (comma-separated names)\n"
                 "  --boot N          bootstrap draws (default 1000; 0: none)\n"
                 "  --seed S          bootstrap seed (default 1)\n"
                 "  --z Z             log-linear start on points with qid > Z*se (default 2)\n"
                 "  --name NAME       write /fits/NAME (default 'default')\n"
                 "  --factors         print every group of the per-factor laws, not only their medians\n"
                 "  --law NAME        the form of the unified law: ouyang (default), QiD = k D^beta /\n"
                 "                    (N^alpha P^gamma); kumar, QiD = C D^gamma_D N^-gamma_N\n"
                 "                    exp(-P/gamma_post) (Kumar et al. 2025); or ouyang-lr, Ouyang's law\n"
                 "                    times exp(delta (1 - lr/lr_peak)), the learning rate at each\n"
                 "                    checkpoint (the store's lr_frac: qid train, qid import --schedule);\n"
                 "                    stored with the fit\n"
                 "  --compare         fit every law form to the same points and compare them (ouyang-lr\n"
                 "                    only where the points have learning rates that vary): weighted\n"
                 "                    RMSE of ln QiD, AIC/BIC, leave-one-model-size-out and leave-future-out\n"
                 "                    error (each size's first 2/3 of log D fitted, the rest predicted)\n"
                 "                    with bootstrap intervals on the differences, and each law's QiD at\n"
                 "                    7B/70B/405B x 1e14 tokens x 2/3/4 bits; stored in /fits/NAME/compare\n");
}

int qid_fit_cmd_take_form(const char *value, void *dest)
{
    int f = qid_fit_form_find(value);
    if (f < 0) return -1;
    *(int *)dest = f;
    return 0;
}

/* --method M: rtn, gptq or awq, as the store spells them. */
static int take_method(const char *value, void *dest)
{
    if (qid_quantize_method_parse(value) < 0) return -1;
    *(const char **)dest = value;
    return 0;
}

int qid_fit_main(int argc, char **argv)
{
    qid_fit_cmd_opts o;
    qid_fit_cmd_opts_init(&o);
    cli_format fa = {.given = 0};
    const cli_opt opts[] = {
        CLI_OPT_FN("method", &o.filter.method, take_method, "a quantizer method: rtn, gptq or awq"),
        CLI_OPT_FN("format", &fa, cli_take_format, CLI_FORMAT_WANT),
        CLI_OPT_FN("bits", &o.filter.bits_mask, cli_take_bits, "whole element bit widths 1..63, e.g. 2,3,4"),
        CLI_OPT_REAL("min-tokens", &o.filter.min_tokens, 0, HUGE_VAL, CLI_LO_OPEN, "a positive number of tokens"),
        CLI_OPT_REAL("max-tokens", &o.filter.max_tokens, 0, HUGE_VAL, CLI_LO_OPEN, "a positive number of tokens"),
        CLI_OPT_STR("models", &o.filter.models),
        CLI_OPT_SIZE("boot", &o.fit.n_boot, 0, 9e18, "a whole number >= 0"),
        CLI_OPT_U64("seed", &o.fit.seed, 0, "a whole number >= 0"),
        CLI_OPT_REAL("z", &o.fit.z, 0, HUGE_VAL, CLI_LO_OPEN, "a positive number"),
        CLI_OPT_STR("name", &o.name),
        CLI_OPT_FN("law", &o.fit.form, qid_fit_cmd_take_form, QID_FIT_CMD_FORM_WANT),
        CLI_OPT_FLAG("factors", &o.factors),
        CLI_OPT_FLAG("compare", &o.compare),
    };
    const cli_spec spec = {"fit", fit_usage, opts, sizeof opts / sizeof opts[0], 1, 1, "no results store given"};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1; /* the positional arguments */
    if (fa.given) o.filter.format = fa.canon;
    if (rc == CLI_OK) {
        qid_error err;
        qid_error_clear(&err);
        if (qid_fit_cmd_run(args[0], &o, stdout, NULL, &err)) {
            fflush(stdout);
            rc = cli_fail("fit", "%s", err.msg);
        }
    }
    return rc == CLI_HELP ? 0 : rc;
}
