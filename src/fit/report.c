/* report.c - `qid report`'s library side (report.h): gathers what a report
 * shows (the stored or in-memory law, the stored or in-memory predictor,
 * the frontier, the store's points), writes summary.txt, and calls the
 * tables (report_tables.c), the gnuplot script and gnuplot
 * (report_plot.c).
 *
 * Does not: parse the command line or print the command's output (the
 * command layer, src/cli/cmd_report.c, does); write to the store. */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fit.h"
#include "fit_obs.h"
#include "fit_predictor.h"
#include "fit_store.h"
#include "fit_suite.h"
#include "report_internal.h"
#include "results.h"

void qid_report_opts_init(qid_report_opts *o)
{
    *o = (qid_report_opts){.fit_name = "default", .predictor_name = "predictor", .n_boot = 200, .gnuplot = "gnuplot"};
}

const char report_method_points[] = "gptq 7, rtn 4, awq 6, other 8";

int report_method_pt(const char *method)
{
    if (method && strcmp(method, "gptq") == 0) return 7;
    if (method && strcmp(method, "rtn") == 0) return 4;
    if (method && strcmp(method, "awq") == 0) return 6;
    return 8;
}

double report_fitted(const report *r, size_t i)
{
    const qid_fit_obs *ob = &r->obs[i];
    return r->rf.have ? qid_fit_law_eval_obs(&r->rf.law, ob) : NAN;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile (type 7) of sorted v[0..n). */
static double quantile(const double *v, size_t n, double q)
{
    if (n == 0) return NAN;
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (h - (double)lo) * (v[hi] - v[lo]);
}

/* ---- the law -------------------------------------------------------------------------- */

/* The unified law fitted in memory (the store has no /fits/<fit_name>). */
static void fit_in_memory(const qid_fit_obs *obs, size_t n_obs, const qid_report_opts *o, report_fit *rf)
{
    qid_fit_opts fo;
    qid_fit_opts_init(&fo);
    fo.n_boot = o->n_boot;
    qid_fit_suite s;
    qid_error e;
    qid_error_clear(&e);
    if (qid_fit_suite_run(obs, n_obs, NULL, NULL, NULL, 0, &fo, &s, &e) != QID_OK) {
        snprintf(rf->msg, sizeof rf->msg, "%s", e.msg);
        rf->n_points = (double)n_obs;
        qid_fit_suite_free(&s);
        return;
    }
    rf->have = 1;
    rf->law = s.law.law;
    rf->r2_log = s.law.r2_log;
    rf->rmse = s.law.rmse;
    rf->n_points = (double)s.law.n_points;
    rf->converged = s.law.conv.converged;
    rf->iterations = s.law.conv.iterations;
    rf->boot = s.boot; /* take the draws */
    rf->level = s.boot.n_draws ? s.boot.level : 0.95;
    memset(&s.boot, 0, sizeof s.boot);
    qid_fit_suite_free(&s);
}

/* The stored fit, or one made in memory when the store has none. */
static int get_fit(const char *store, const qid_fit_obs *obs, size_t n_obs, const qid_report_opts *o, FILE *log,
                   report_fit *rf, qid_error *err)
{
    memset(rf, 0, sizeof *rf);
    qid_fit_law *draws = NULL;
    size_t n_draws = 0;
    qid_error e;
    qid_error_clear(&e);
    int st = qid_fit_store_read_law(store, o->fit_name, &rf->law, &draws, &n_draws, &rf->level, &e);
    if (st == QID_OK) {
        qid_fit_stats stats;
        rf->have = rf->stored = 1;
        rf->boot.draws = draws;
        rf->boot.n_draws = n_draws;
        rf->boot.level = rf->level;
        qid_error_clear(&e);
        qid_fit_store_read_stats(store, o->fit_name, &stats, &e);
        rf->r2_log = stats.r2_log, rf->rmse = stats.rmse, rf->n_points = stats.n_points;
        rf->converged = stats.converged, rf->iterations = stats.iterations;
        return QID_OK;
    }
    /* A fit asked for by name must be there; only the default is fitted in memory when missing. */
    if (st != QID_E_INVALID || !strstr(e.msg, "has no fit") || strcmp(o->fit_name, "default") != 0) {
        *err = e;
        return st;
    }
    if (log)
        fprintf(log, "note: '%s' has no /fits/%s; fitting the unified law in memory (%zu bootstrap draws)\n", store,
                o->fit_name, o->n_boot);
    fit_in_memory(obs, n_obs, o, rf);
    return QID_OK;
}

/* ---- the predictor and the frontier ----------------------------------------------------- */

static void report_pred_free(report_pred *rp)
{
    free(rp->cand);
    free(rp->front);
    qid_predictor_stored_free(&rp->st);
}

/* The stored predictor, or one trained in memory (with a note) when the store has none. */
static int get_predictor(const char *store, const qid_result *rows, size_t n_rows, const qid_report_opts *o,
                         const qid_predictor_opts *po, FILE *log, report_pred *rp, qid_error *err)
{
    qid_error e;
    qid_error_clear(&e);
    int st = qid_predictor_read(store, o->predictor_name, &rp->st, &e);
    if (st == QID_OK) {
        rp->have = rp->stored = 1;
        rp->budget = rp->st.budget;
        return QID_OK;
    }
    if (st != QID_E_INVALID || !strstr(e.msg, "has no fit")) {
        *err = e;
        return st;
    }
    qid_predictor_report rep;
    qid_error_clear(&e);
    if (qid_predictor_fit(rows, n_rows, po, &rep, &e) != QID_OK) {
        snprintf(rp->msg, sizeof rp->msg, "%s", e.msg);
        return QID_OK;
    }
    if (log)
        fprintf(log,
                "note: '%s' has no /fits/%s; the predictor was trained in memory ('qid predictor %s' stores one)\n",
                store, o->predictor_name, store);
    qid_predictor_to_stored(&rep, po, &rp->st);
    rp->have = 1;
    qid_predictor_report_free(&rep);
    return QID_OK;
}

/* The frontier of the store's rows, and the stored predictor (or one trained
 * in memory, with a note, when the store has none). */
static int get_pred(const char *store, const qid_result *rows, size_t n_rows, const qid_report_opts *o, FILE *log,
                    report_pred *rp, qid_error *err)
{
    memset(rp, 0, sizeof *rp);
    rp->budget = NAN;
    qid_predictor_opts po;
    qid_predictor_opts_init(&po);
    int st = get_predictor(store, rows, n_rows, o, &po, log, rp, err);
    if (st) return st;
    if (!isnan(rp->budget)) po.budget = rp->budget;
    qid_predictor_candidates(rows, n_rows, &po, &rp->cand, &rp->n_cand);
    qid_fit_candidate *cc = qid_malloc((rp->n_cand + 1) * sizeof *cc, "report: candidates");
    for (size_t j = 0; j < rp->n_cand; j++)
        cc[j] = rp->cand[j].c;
    rp->front = qid_malloc((rp->n_cand + 1) * sizeof *rp->front, "report: frontier");
    rp->n_front = qid_fit_pareto(cc, rp->n_cand, po.budget, rp->front);
    free(cc);
    rp->log_axes = rp->have && rp->st.n_points > 0;
    for (size_t i = 0; i < rp->st.n_points && rp->log_axes; i++) {
        const double *p = rp->st.points + i * QID_PREDICTOR_POINT_COLS;
        rp->log_axes = p[6] - p[5] > 0 && p[7] - p[5] > 0;
    }
    return QID_OK;
}

/* ---- the values of the store ------------------------------------------------------------ */

/* Sorted distinct values (equal within a relative 1e-9) of one field of obs into out (capacity n_obs). */
static size_t distinct(const qid_fit_obs *obs, size_t n, int field, double *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = field == 0 ? obs[i].n : field == 1 ? obs[i].d : obs[i].p;
    qsort(out, n, sizeof *out, cmp_double);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || fabs(out[i] - out[m - 1]) > 1e-9 * fabs(out[m - 1])) out[m++] = out[i];
    return m;
}

/* The distinct N, P and D, the range of the positive QiD, the median D. */
static void survey(report *r)
{
    size_t cap = r->n_obs ? r->n_obs : 1;
    r->un = qid_malloc(cap * sizeof *r->un, "report: N values");
    r->up = qid_malloc(cap * sizeof *r->up, "report: P values");
    r->ud = qid_malloc(cap * sizeof *r->ud, "report: D values");
    r->nn = distinct(r->obs, r->n_obs, 0, r->un);
    r->np = distinct(r->obs, r->n_obs, 2, r->up);
    r->nd = distinct(r->obs, r->n_obs, 1, r->ud);
    r->pos_lo = INFINITY, r->pos_hi = 0;
    for (size_t i = 0; i < r->n_obs; i++) {
        if (r->obs[i].qid <= 0) r->n_nonpos++;
        double v[2] = {r->obs[i].qid, report_fitted(r, i)};
        for (int j = 0; j < 2; j++)
            if (v[j] > 0) {
                r->pos_lo = fmin(r->pos_lo, v[j]);
                r->pos_hi = fmax(r->pos_hi, v[j]);
            }
    }
    r->dmid = r->nd ? r->ud[r->nd / 2] : 1e11;
    r->level = r->rf.level > 0 ? r->rf.level : 0.95;
    r->cnt = qid_calloc(r->np * r->nn + 1, sizeof *r->cnt, "report: block counts");
}

/* ---- summary.txt -------------------------------------------------------------------------- */

/* The coefficients with their bootstrap intervals (percentiles of the draws). */
static void summary_coefs(FILE *f, const report_fit *rf, double lv)
{
    if (rf->boot.n_draws >= 2)
        fprintf(f, "%-10s %12s   %.0f%% interval (bootstrap by checkpoint, %zu draws)\n", "", "value", 100 * lv,
                rf->boot.n_draws);
    else
        fprintf(f, "%-10s %12s   (no bootstrap draws: no intervals)\n", "", "value");
    double *col = qid_malloc((rf->boot.n_draws + 1) * sizeof *col, "report: bootstrap column");
    for (int j = 0; j < qid_fit_form_of(rf->law.form)->n_coef; j++) {
        fprintf(f, "%-10s %12.6g", qid_fit_form_of(rf->law.form)->coef[j], qid_fit_law_coef(&rf->law, j));
        if (rf->boot.n_draws >= 2) {
            for (size_t b = 0; b < rf->boot.n_draws; b++)
                col[b] = qid_fit_law_coef(&rf->boot.draws[b], j);
            qsort(col, rf->boot.n_draws, sizeof *col, cmp_double);
            fprintf(f, "   [%.6g, %.6g]", quantile(col, rf->boot.n_draws, (1 - lv) / 2),
                    quantile(col, rf->boot.n_draws, (1 + lv) / 2));
        }
        fprintf(f, "\n");
    }
    free(col);
}

/* The explicit TOO FEW POINTS / POOR FIT lines, or "fit OK". */
static void summary_verdict(FILE *f, const report_fit *rf)
{
    int bad = !rf->have;
    if (!(rf->n_points >= QID_FIT_SUITE_MIN_POINTS)) {
        fprintf(f, "TOO FEW POINTS: %.0f points (at least %d wanted); do not trust this law\n", rf->n_points,
                QID_FIT_SUITE_MIN_POINTS);
        bad = 1;
    }
    if (rf->have && !(rf->r2_log >= QID_FIT_SUITE_MIN_R2)) {
        fprintf(f, "POOR FIT: R2 (log) %.3f < %.1f\n", rf->r2_log, QID_FIT_SUITE_MIN_R2);
        bad = 1;
    }
    if (rf->have && !isnan(rf->converged) && rf->converged == 0) {
        fprintf(f, "POOR FIT: the refinement did not converge\n");
        bad = 1;
    }
    if (!bad) fprintf(f, "fit OK: %.0f points, R2 (log) %.3f, converged\n", rf->n_points, rf->r2_log);
}

/* The law's part of summary.txt. */
static void summary_law(FILE *f, const report *r)
{
    const report_fit *rf = &r->rf;
    fprintf(f, "qid report of %s\n\n", r->store);
    if (rf->stored) {
        fprintf(f, "fit: /fits/%s (stored by 'qid fit')\n", r->o->fit_name);
        qid_fit_entry *e = NULL;
        size_t n = 0;
        if (qid_fit_store_entries(r->store, &e, &n, NULL) == QID_OK)
            for (size_t k = 0; k < n; k++)
                if (strcmp(e[k].name, r->o->fit_name) == 0 && e[k].filters[0])
                    fprintf(f, "filters: %s\n", e[k].filters);
        free(e);
    } else
        fprintf(f, "fit: made in memory (the store has no /fits/%s; 'qid fit %s' stores one)\n", r->o->fit_name,
                r->store);
    fprintf(f, "law (%s): %s\n\n", qid_fit_form_of(rf->law.form)->name, qid_fit_form_of(rf->law.form)->text);
    if (rf->have) {
        summary_coefs(f, rf, r->level);
        fprintf(f, "\nR2 (log)   %.4f\n", rf->r2_log);
        fprintf(f, "RMSE       %.4g nats/token\n", rf->rmse);
        if (isnan(rf->converged))
            fprintf(f, "converged  unknown\n");
        else
            fprintf(f, "converged  %s after %.0f iterations\n", rf->converged != 0 ? "yes" : "NO", rf->iterations);
    } else {
        fprintf(f, "NO FIT: %s\n", rf->msg);
    }
    fprintf(f, "points     %.0f fitted; %zu usable in the store (%zu model sizes, %zu token counts, %zu bit widths)\n",
            rf->n_points, r->n_obs, r->nn, r->nd, r->np);
    if (r->n_nonpos)
        fprintf(f, "           %zu points with QiD <= 0 are not drawn on the log-scale plots\n", r->n_nonpos);
    fprintf(f, "\n");
    summary_verdict(f, rf);
}

/* The predictor's and the frontier's lines of summary.txt. */
static void summary_pred(FILE *f, const qid_report_opts *o, const report_pred *rp)
{
    fprintf(f, "\npredictor of post-quantization loss (Xu et al.): ");
    if (!rp->have) {
        fprintf(f, "none: %s\n", rp->msg);
    } else {
        if (rp->stored)
            fprintf(f, "/fits/%s (stored by 'qid predictor')\n", o->predictor_name);
        else
            fprintf(f, "trained in memory (the store has no /fits/%s)\n", o->predictor_name);
        fprintf(f,
                "  leave-one-%s-out RMSE of the loss over %zu examples: forest %.4g, linear %.4g, training mean "
                "%.4g nats/token\n",
                rp->st.holdout, rp->st.n_points, rp->st.rmse_forest, rp->st.rmse_linear, rp->st.rmse_mean);
        if (!(rp->st.rmse_forest < rp->st.rmse_mean))
            fprintf(f, "POOR PREDICTOR: the forest does not beat the training mean on held-out %ss\n", rp->st.holdout);
    }
    fprintf(f,
            "Pareto frontier (memory = N x bits / 8, latest checkpoint per model and setting): %zu of %zu "
            "candidates",
            rp->n_front, rp->n_cand);
    if (!isnan(rp->budget)) fprintf(f, " within %.4g bytes", rp->budget);
    if (rp->n_front) {
        const qid_predictor_candidate *b = &rp->cand[rp->front[rp->n_front - 1]];
        fprintf(f, "; lowest loss: %s (%.4f, %.4g bytes)", b->label, b->c.loss, qid_fit_candidate_bytes(&b->c));
    }
    fprintf(f, "\n");
}

/* The law comparison's lines of summary.txt (none without one). */
static void summary_compare(FILE *f, const report *r)
{
    const qid_fit_compare_stored *c = &r->cmp;
    if (!c->n_laws) return;
    fprintf(f, "\nlaw forms compared on the same points (qid fit --compare; law_compare.png):\n");
    fprintf(f, "  %-10s %10s %12s %12s\n", "law", "AIC", "LOMO err", "future err");
    for (size_t k = 0; k < c->n_laws; k++)
        fprintf(f, "  %-10s %10.2f %12.4f %12.4f\n", c->name[k], c->aic[k], c->lomo_err[k], c->lfo_err[k]);
    fprintf(f, "  lowest leave-future-out error: %s (errors: RMS of (qid - law)/se on held-out points)\n", c->best_lfo);
}

static int write_summary(const report *r, qid_error *err)
{
    FILE *f = report_open(r->dir, "summary.txt", err);
    if (!f) return err->code ? err->code : QID_E_IO;
    summary_law(f, r);
    summary_compare(f, r);
    summary_pred(f, r->o, &r->rp);
    fprintf(f, "\nfiles: points.csv, predictions.csv, pareto.csv, predictor.csv; plots *.png, *.svg drawn by gnuplot "
               "from report.gp and *.dat\n");
    return report_close(f, r->dir, "summary.txt", err);
}

/* ---- the report ----------------------------------------------------------------------------- */

/* The store's observations, its predictor and frontier, and its law. */
static int gather(report *r, FILE *log, qid_error *err)
{
    int st = qid_fit_rows_read(r->store, &r->rows, &r->n_rows, err);
    if (st) return st;
    const qid_result *rows = r->rows;
    size_t n_rows = r->n_rows;
    qid_fit_filter filter;
    qid_fit_filter_init(&filter);
    qid_fit_obs_from_rows(rows, n_rows, &filter, &r->obs, &r->n_obs, NULL, NULL, NULL, NULL);
    /* The law first: a fit asked for by name and missing ends the report before anything else is said. */
    st = get_fit(r->store, r->obs, r->n_obs, r->o, log, &r->rf, err);
    if (!st && r->rf.stored) { /* its comparison of the law forms, when qid fit --compare made one */
        st = qid_fit_store_read_compare(r->store, r->o->fit_name, &r->cmp, err);
        if (st == 1) st = QID_OK;
    }
    if (!st) st = get_pred(r->store, rows, n_rows, r->o, log, &r->rp, err);
    return st;
}

int qid_report_write(const char *store, const char *dir, const qid_report_opts *o, FILE *log, qid_error *err)
{
    qid_report_opts def;
    if (!o) {
        qid_report_opts_init(&def);
        o = &def;
    }
    report r = {.store = store, .dir = dir, .o = o};
    int st = gather(&r, log, err);
    if (!st && mkdir(dir, 0777) != 0 && errno != EEXIST)
        st = qid_error_set(err, QID_E_IO, "cannot create '%s': %s", dir, strerror(errno));
    if (!st) {
        survey(&r);
        if (!(st = write_summary(&r, err)) && !(st = report_write_tables(&r, err)) &&
            !(st = report_write_script(&r, err)))
            st = report_run_gnuplot(dir, o->gnuplot, log, err);
    }
    qid_fit_boot_free(&r.rf.boot);
    report_pred_free(&r.rp);
    qid_fit_compare_stored_free(&r.cmp);
    qid_results_rows_free(r.rows, r.n_rows);
    free(r.obs), free(r.un), free(r.up), free(r.ud), free(r.cnt);
    return st;
}
