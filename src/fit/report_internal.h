/* report_internal.h - what the report_*.c files share and nothing else
 * includes: the law and the predictor a report shows, the values of the
 * store it draws them over, and the output files.
 *
 * Not a public contract: include/report.h is. */
#ifndef QID_REPORT_INTERNAL_H
#define QID_REPORT_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"
#include "fit.h"
#include "fit_predictor.h"
#include "fit_store.h"
#include "report.h"

/* The prediction grid of predictions.csv and plot 4: 7B, 70B, 405B at 2, 3,
 * 4 bits after 1e14 tokens. */
#define REPORT_N_PRED_N 3
#define REPORT_N_PRED_P 3
extern const double report_pred_n[REPORT_N_PRED_N];
extern const char *const report_pred_n_label[REPORT_N_PRED_N];
extern const double report_pred_p[REPORT_N_PRED_P];
extern const double report_pred_d;

/* The law a report shows, wherever it came from. */
typedef struct report_fit {
    int have;   /* 1: law (and the statistics below) are valid */
    int stored; /* 1: read from /fits/<name>; 0: fitted in memory */
    qid_fit_law law;
    qid_fit_boot boot; /* draws (owned); n_draws 0 when none */
    double level;
    double r2_log, rmse;
    double n_points;         /* points the fit used */
    double converged;        /* 1/0; NaN unknown */
    double iterations;       /* NaN unknown */
    char msg[QID_ERROR_MAX]; /* why there is no law (have == 0) */
} report_fit;

/* The predictor and the frontier a report shows. */
typedef struct report_pred {
    qid_predictor_candidate *cand; /* the store's candidates (latest checkpoint per model and setting) */
    size_t n_cand;
    size_t *front; /* the frontier within the budget, indices into cand by memory */
    size_t n_front;
    double budget;           /* bytes; NaN none (the stored predictor's --budget) */
    int have;                /* st holds the predictor's points */
    int stored;              /* ... read from /fits/<predictor_name>; 0: trained in memory */
    qid_predictor_stored st; /* points as in /fits/<name>/points */
    int log_axes;            /* every measured and forest-predicted QiD > 0 */
    char msg[QID_ERROR_MAX]; /* why there is no predictor (have == 0) */
} report_pred;

/* Everything one report is written from. */
typedef struct report {
    const char *store, *dir;
    const qid_report_opts *o;
    qid_fit_obs *obs; /* the store's observations (qid fit's default filters) */
    qid_result *rows; /* the store's rows (obs[i].row indexes them) */
    size_t n_rows;
    size_t n_obs;
    double *un, *up, *ud; /* distinct N, P, D of obs, ascending */
    size_t nn, np, nd;
    size_t n_nonpos;       /* points with QiD <= 0 */
    double pos_lo, pos_hi; /* range of the positive measured and fitted QiD (pos_hi 0: none) */
    double dmid;           /* the median D of the store: the D of the lines vs N and vs P */
    double level;          /* the interval level of the law (0.95 when unknown) */
    size_t *cnt;           /* points drawn per block of points.dat (P index * nn + N index) */
    report_fit rf;
    report_pred rp;
    qid_fit_compare_stored cmp; /* the stored fit's law comparison (qid fit --compare); n_laws 0: none */
} report;

/* The gnuplot point type of a quantizer method in the plots of QiD (gptq a filled circle, rtn an open square,
 * any other an open triangle), and the same as text for the files' headers. */
int report_method_pt(const char *method);
extern const char report_method_points[];

/* The fitted QiD of obs[i]; NaN without a law. */
double report_fitted(const report *r, size_t i);

/* Opens dir/name for writing (NULL with err set); closes it, checking for
 * write errors. */
FILE *report_open(const char *dir, const char *name, qid_error *err);
int report_close(FILE *f, const char *dir, const char *name, qid_error *err);

/* The tables and .dat files (report_tables.c): points.csv, predictions.csv
 * and .dat, points.dat (fills r->cnt), lines.dat, pareto.csv and .dat,
 * predictor.csv and .dat, and with a law comparison law_compare.csv and
 * .dat. */
int report_write_tables(report *r, qid_error *err);

/* The gnuplot script report.gp (report_plot.c), after report_write_tables. */
int report_write_script(const report *r, qid_error *err);

/* Runs the gnuplot program in dir on report.gp (its output in
 * dir/gnuplot.log); a missing or failing gnuplot is a warning on log, not
 * an error. */
int report_run_gnuplot(const char *dir, const char *gnuplot, FILE *log, qid_error *err);

#endif
