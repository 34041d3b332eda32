/* report.h - `qid report STORE -o DIR`: the tables and plots of a results
 * store's scaling law, for people to read.
 *
 * Reads the store's rows (qid_results_read, SWMR, no lock) and its fit
 * /fits/<name> (qid_fit_store_read_law; when that fit is absent the unified law is
 * fitted in memory with a bootstrap and the report says so), and writes into
 * DIR: summary.txt (the law with intervals, R^2, RMSE, counts, and explicit
 * "POOR FIT" / "TOO FEW POINTS" lines), points.csv, predictions.csv (QiD at
 * D = 1e14 for 7B/70B/405B at 2/3/4 bits, bootstrap intervals), the .dat
 * files and the gnuplot script report.gp that draws them, and, when gnuplot
 * is installed, the plots as PNG and SVG. Without gnuplot the tables and the
 * script are still written and one warning line says the plots were skipped.
 *
 * The Xu et al. predictor (fit_predictor.h) comes from
 * /fits/<predictor_name> (or is trained in memory, with a note, when absent;
 * when it cannot be trained, e.g. one model family, the summary says why):
 * predictor.csv and predictor_actual_vs_predicted.{png,svg} (measured vs
 * held-out predicted QiD of the forest and the linear baseline). The Pareto
 * frontier of model size vs bits per weight (qid_predictor_candidates,
 * measured losses, the stored predictor's budget) is always drawn:
 * pareto.csv and pareto.{png,svg}.
 *
 * Does not: parse the command line (src/cli/cmd_report.c does), write to
 * the store, or show the per-factor laws (qid fit prints and stores them).
 * Nothing here uses MPI. */
#ifndef QID_REPORT_H
#define QID_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"

typedef struct qid_report_opts {
    const char *fit_name;       /* /fits/<fit_name> (default "default") */
    const char *predictor_name; /* /fits/<predictor_name> (default "predictor") */
    size_t n_boot;              /* bootstrap draws of an in-memory fit (default 200) */
    const char *gnuplot;        /* gnuplot program (default "gnuplot"; NULL or "" skips the plots) */
} qid_report_opts;

void qid_report_opts_init(qid_report_opts *o);

/* Writes the report of `store` into `dir` (created if absent; files there of
 * the same names are replaced). Notes and the one-line gnuplot warning go to
 * `log` (may be NULL). Returns QID_OK, or QID_E_IO for a directory or file
 * that cannot be written, or the status of qid_results_read /
 * qid_fit_store_read_law. A poor fit, too few points or a fit that cannot be made
 * are not errors: the summary says so (and has no coefficients for the
 * last). A gnuplot that fails is not an error either: the warning names
 * DIR/gnuplot.log. */
int qid_report_write(const char *store, const char *dir, const qid_report_opts *o, FILE *log, qid_error *err);

#endif
