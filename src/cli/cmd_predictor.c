/* cmd_predictor.c - `qid predictor STORE`: its options, usage and the
 * printing of the Xu et al. predictor and the Pareto frontier (cli_fit.h).
 * The work is fit_predictor.c's.
 *
 * Does not: build features, train or write anything itself. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_fit.h"
#include "parse.h"

int qid_predictor_cmd_run(const char *store, const qid_predictor_opts *o, FILE *out, qid_predictor_report *rep_out,
                          qid_error *err)
{
    qid_predictor_report local, *rep = rep_out ? rep_out : &local;
    int rc = qid_predictor_of_store(store, o, rep, err);
    if (rc == QID_OK) {
        if (out) qid_predictor_cmd_print(out, rep, o);
        if ((rc = qid_predictor_write(store, rep, o, err)) == QID_OK && out)
            fprintf(out, "written to /fits/%s of %s\n", o->name, store);
    }
    if (!rep_out) qid_predictor_report_free(rep);
    return rc;
}

/* ---- printing ------------------------------------------------------------------------ */

/* "4 GiB"-style text of a byte count. */
static void fmt_bytes(char *buf, size_t len, double b)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (b >= 1024 && u < 5)
        b /= 1024, u++;
    snprintf(buf, len, u ? "%.3g %s" : "%.0f %s", b, unit[u]);
}

/* What was trained on what: settings, filters, counts, target, features, notes. */
static void print_data(FILE *out, const qid_predictor_report *rep, const qid_predictor_opts *o)
{
    const qid_predictor_data *d = &rep->data;
    fprintf(out,
            "predictor of post-quantization loss (Xu et al. 2024): random forest (%zu trees, seed %llu) and "
            "linear baseline\n",
            o->forest.n_trees, (unsigned long long)o->forest.seed);
    fprintf(out, "filters: method %s, format %s, models %s\n", o->method ? o->method : "rtn,gptq",
            o->format ? o->format : "any", o->models ? o->models : "all");
    fprintf(out, "examples %zu of %zu quantizer rows (%zu without a 16-bit loss, %zu missing a feature), %zu %s\n",
            d->n_rows, d->n_considered, d->n_no_loss16, d->n_missing, d->n_groups,
            o->holdout == QID_PREDICTOR_BY_MODEL ? "models" : "families");
    if (o->target == QID_PREDICTOR_TARGET_LOSS)
        fprintf(out, "target: post-quantization loss (nats/token)\n");
    else
        fprintf(out, "target: QiD = loss - loss16; predicted loss = loss16 + predicted QiD (errors are the same in "
                     "either)\n");
    fprintf(out, "features:");
    for (size_t j = 0; j < d->n_feat; j++)
        fprintf(out, " %s", d->feat[j]);
    fprintf(out, "\n");
    qid_fit_list_print(out, "note: ", d->notes);
}

/* The leave-one-out errors, the importances and the linear coefficients. */
static void print_errors(FILE *out, const qid_predictor_report *rep, const qid_predictor_opts *o)
{
    const qid_predictor_data *d = &rep->data;
    const qid_fit_logo *l = &rep->logo;
    const char *what = o->holdout == QID_PREDICTOR_BY_MODEL ? "model" : "family";
    fprintf(out, "leave-one-%s-out RMSE of the loss (nats/token), each %s predicted by models trained without it:\n",
            what, what);
    fprintf(out, "  %-20s %6s %10s %10s %10s\n", what, "rows", "forest", "linear", "mean");
    for (size_t g = 0; g < l->n_groups; g++)
        fprintf(out, "  %-20s %6zu %10.4g %10.4g %10.4g\n", d->groups[l->rows[g].group], l->rows[g].n_points,
                l->rows[g].rmse_forest, l->rows[g].rmse_linear, l->rows[g].rmse_mean);
    fprintf(out, "  %-20s %6zu %10.4g %10.4g %10.4g\n", "all (pooled)", d->n_rows, l->rmse_forest, l->rmse_linear,
            l->rmse_mean);
    fprintf(out, "  forest in-sample RMSE %.4g\n", rep->rmse_train);
    fprintf(out, "feature importance (forest on all examples; impurity decrease) and linear coefficient:\n");
    size_t order[QID_PREDICTOR_MAX_FEAT];
    for (size_t j = 0; j < d->n_feat; j++) {
        size_t a = j;
        while (a > 0 && l->importance[order[a - 1]] < l->importance[j]) {
            order[a] = order[a - 1];
            a--;
        }
        order[a] = j;
    }
    for (size_t a = 0; a < d->n_feat; a++)
        fprintf(out, "  %-20s %8.4f %12.4g\n", d->feat[order[a]], l->importance[order[a]], rep->lin.coef[1 + order[a]]);
    fprintf(out, "  %-20s %8s %12.4g\n", "(intercept)", "", rep->lin.coef[0]);
}

/* The Pareto frontier within the budget. */
static void print_frontier(FILE *out, const qid_predictor_report *rep, const qid_predictor_opts *o)
{
    char b1[32], b2[80];
    if (o->budget > 0)
        fmt_bytes(b1, sizeof b1, o->budget), snprintf(b2, sizeof b2, "within %.4g bytes = %s", o->budget, b1);
    else
        snprintf(b2, sizeof b2, "no budget");
    fprintf(out,
            "Pareto frontier of model size vs bits per weight (%s; memory = N x bits / 8 of the non-embedding "
            "weights; latest measured checkpoint per model and setting; %zu candidates):\n",
            b2, rep->n_cand);
    if (!rep->n_front) {
        double least = INFINITY;
        for (size_t j = 0; j < rep->n_cand; j++)
            least = fmin(least, qid_fit_candidate_bytes(&rep->cand[j].c));
        fmt_bytes(b1, sizeof b1, least);
        fprintf(out, "  no candidate fits the budget (the smallest needs %s)\n", rep->n_cand ? b1 : "-");
    } else {
        fprintf(out, "  %-11s %-10s %6s %-32s %-10s %9s %9s\n", "memory", "N", "bits", "model method format", "D",
                "loss", "predicted");
        for (size_t a = 0; a < rep->n_front; a++) {
            const qid_predictor_candidate *c = &rep->cand[rep->front[a]];
            fmt_bytes(b1, sizeof b1, qid_fit_candidate_bytes(&c->c));
            fprintf(out, "  %-11s %-10.4g %6.3g %-32s %-10.4g %9.4f", b1, c->c.params, c->c.bits, c->label, c->d,
                    c->c.loss);
            if (isfinite(c->predicted))
                fprintf(out, " %9.4f\n", c->predicted);
            else
                fprintf(out, " %9s\n", "-");
        }
        const qid_predictor_candidate *best = &rep->cand[rep->front[rep->n_front - 1]];
        fprintf(out, "  lowest loss %s: %s (%.4f)\n", b2, best->label, best->c.loss);
    }
}

void qid_predictor_cmd_print(FILE *out, const qid_predictor_report *rep, const qid_predictor_opts *o)
{
    print_data(out, rep, o);
    print_errors(out, rep, o);
    print_frontier(out, rep, o);
    qid_fit_list_print(out, "warning: ", rep->warnings);
}

/* ---- the command line ------------------------------------------------------------------ */

static void predictor_usage(FILE *out)
{
    fprintf(out, "usage: qid predictor STORE [--budget BYTES] [--target qid|loss] [--holdout family|model]\n"
                 "                     [--method M] [--format F] [--models a,b] [--trees N] [--min-leaf N]\n"
                 "                     [--mtry N] [--seed S] [--name NAME]\n"
                 "\n"
                 "The post-quantization loss predictor of Xu et al. (2024) on a results store: one\n"
                 "example per quantizer row (rtn, gptq; the last OK row of each task), with the\n"
                 "features log10 N, log10 D, the 16-bit loss, the SQNR of the RTN weights in that\n"
                 "format, element bits, scales per weight (1/block), format family, method and the\n"
                 "radial-probe loss increases where the store has probes rows. A random forest and a\n"
                 "linear baseline are validated by leaving one model family (the model name without\n"
                 "its size, e.g. pythia-160m -> pythia) out at a time; prints their errors, the\n"
                 "feature importances and the Pareto frontier of model size vs bits per weight, and\n"
                 "writes everything to /fits/NAME of the store (default 'predictor'; needs the\n"
                 "store's lock).\n"
                 "\n"
                 "options:\n"
                 "  --budget BYTES     memory budget of the frontier: 1e9, 4GiB, 512MiB, 4GB, 2.5G (default none)\n"
                 "  --target T         qid (default): learn loss - loss16; loss: learn the loss itself\n"
                 "  --holdout H        family (default) or model: what one validation fold holds out\n"
                 "  --method M         only rows of method M (rtn or gptq)\n"
                 "  --format F         only rows of format F\n"
                 "  --models LIST      only these models (comma-separated names)\n"
                 "  --trees N          trees of the forest (default 200)\n"
                 "  --min-leaf N       fewest examples in a leaf (default 2)\n"
                 "  --mtry N           features tried per split (default: a third of them, at least 1)\n"
                 "  --seed S           forest seed (default 1)\n"
                 "  --name NAME        write /fits/NAME (default 'predictor')\n");
}

/* --target qid|loss and --holdout family|model. */
static int take_target(const char *value, void *dest)
{
    if (strcmp(value, "qid") && strcmp(value, "loss")) return -1;
    *(int *)dest = strcmp(value, "loss") == 0 ? QID_PREDICTOR_TARGET_LOSS : QID_PREDICTOR_TARGET_QID;
    return 0;
}

static int take_holdout(const char *value, void *dest)
{
    if (strcmp(value, "family") && strcmp(value, "model")) return -1;
    *(int *)dest = strcmp(value, "model") == 0 ? QID_PREDICTOR_BY_MODEL : QID_PREDICTOR_BY_FAMILY;
    return 0;
}

int qid_predictor_main(int argc, char **argv)
{
    qid_predictor_opts o;
    qid_predictor_opts_init(&o);
    const char *budget = NULL;
    const cli_opt opts[] = {
        CLI_OPT_STR("budget", &budget),
        CLI_OPT_FN("target", &o.target, take_target, "qid or loss"),
        CLI_OPT_FN("holdout", &o.holdout, take_holdout, "family or model"),
        CLI_OPT_STR("method", &o.method),
        CLI_OPT_STR("format", &o.format),
        CLI_OPT_STR("models", &o.models),
        CLI_OPT_SIZE("trees", &o.forest.n_trees, 1, 9e18, "a whole number >= 1"),
        CLI_OPT_SIZE("min-leaf", &o.forest.min_leaf, 1, 9e18, "a whole number >= 1"),
        CLI_OPT_SIZE("mtry", &o.forest.mtry, 0, 9e18, "a whole number >= 0"),
        CLI_OPT_U64("seed", &o.forest.seed, 0, "a whole number >= 0"),
        CLI_OPT_STR("name", &o.name),
    };
    const cli_spec spec = {"predictor", predictor_usage,         opts, sizeof opts / sizeof opts[0], 1,
                           1,           "no results store given"};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1; /* the positional arguments */
    if (rc != CLI_OK) goto out;
    rc = CLI_USAGE;
    if (budget && qid_parse_bytes(budget, &o.budget)) {
        cli_fail("predictor", "bad --budget '%s' (bytes: e.g. 1e9, 4GiB, 512MiB, 4GB)", budget);
        goto out;
    }
    if (o.method && strcmp(o.method, "rtn") && strcmp(o.method, "gptq")) {
        cli_usage_error("predictor", "bad --method '%s' (rtn or gptq)", o.method);
        goto out;
    }
    qid_error err;
    qid_error_clear(&err);
    rc = 0;
    if (qid_predictor_cmd_run(args[0], &o, stdout, NULL, &err)) {
        fflush(stdout);
        rc = cli_fail("predictor", "%s", err.msg);
    }
out:
    return rc == CLI_HELP ? 0 : rc;
}
