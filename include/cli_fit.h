/* cli_fit.h - the command layer of the regression stage: `qid fit`,
 * `qid predict` and `qid predictor` (src/cli/cmd_fit.c, cmd_predict.c,
 * cmd_predictor.c; their entry points are in cli.h). What is here: the
 * options of `qid fit`, the printing of what the commands compute, and each
 * command's work as a function (read, fit, print, store) that the tests
 * call with their own output stream.
 *
 * The work is the library's: rows -> observations (fit_obs.h), the laws
 * (fit_suite.h), /fits (fit_store.h), the training level (fit_level.h), the
 * Xu et al. predictor (fit_predictor.h).
 *
 * Does not: fit, read or write anything itself. Nothing here uses MPI. */
#ifndef QID_CLI_FIT_H
#define QID_CLI_FIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "fit.h"
#include "fit_compare.h"
#include "fit_level.h"
#include "fit_obs.h"
#include "fit_predictor.h"
#include "fit_suite.h"

/* The options of `qid fit`. Start from qid_fit_cmd_opts_init. */
typedef struct qid_fit_cmd_opts {
    qid_fit_filter filter; /* which rows become points (fit_obs.h; --method, --format, --bits, ...) */
    qid_fit_opts fit;      /* the fit's settings (fit.h; --boot, --seed, --z; n_boot 0: no bootstrap) */
    const char *name;      /* /fits/<name> (default "default") */
    int factors;           /* 1: print every per-factor group, not only the medians (default 0) */
    int compare;           /* 1: compare every law form (fit_compare.h), print it, store it in /fits/<name>/compare */
} qid_fit_cmd_opts;

void qid_fit_cmd_opts_init(qid_fit_cmd_opts *o);

/* A law form's name to its QID_FIT_FORM_* in the int at dest (cli_opt fn: `qid fit --law`, `qid predict
 * --form`); -1 for a name fit.h does not know. */
int qid_fit_cmd_take_form(const char *value, void *dest);
#define QID_FIT_CMD_FORM_WANT "a law form: ouyang, kumar or ouyang-lr"

/* The whole of `qid fit` on a store: read and fit (qid_fit_suite_of_store),
 * with o->compare the comparison of the law forms (qid_fit_compare_of_store),
 * print to out (NULL: no printing), write /fits/<o->name>
 * (qid_fit_store_write_suite; nothing is written when the unified law, or
 * with o->compare the comparison, cannot be made). s may be NULL; else it
 * holds the suite (free it). Errors: as qid_fit_suite_of_store,
 * qid_fit_compare_of_store and qid_fit_store_write_suite. */
int qid_fit_cmd_run(const char *store, const qid_fit_cmd_opts *o, FILE *out, qid_fit_suite *s, qid_error *err);

/* Prints a suite: coefficients with intervals, convergence, counts, the
 * per-bit-width and per-factor laws (every group with o->factors), the
 * 16-bit law, warnings. */
void qid_fit_cmd_print(FILE *out, const qid_fit_suite *s, const qid_fit_cmd_opts *o);

/* Prints a comparison of the law forms: the table of scores, the pairwise
 * leave-future-out differences, the predictions side by side, the winner. */
void qid_fit_cmd_print_compare(FILE *out, const qid_fit_compare *c);

/* `qid predict STORE --training-level CKPT`: qid_fit_level_of_store, printed
 * to out (a block per checkpoint: each bit width's D next to the tokens
 * seen, then all bit widths together). Errors: as qid_fit_level_of_store. */
int qid_fit_cmd_training_level(const char *store, const char *which, const qid_fit_law *law, const qid_fit_law *draws,
                               size_t n_draws, double level, const char *method, const char *format, uint64_t bits_mask,
                               FILE *out, qid_error *err);

/* The whole of `qid predictor` on a store: read and fit
 * (qid_predictor_of_store), print to out (NULL: no printing), write
 * /fits/<o->name> (qid_predictor_write). rep may be NULL; else it holds the
 * report (free it). Nothing is written when the fit fails. */
int qid_predictor_cmd_run(const char *store, const qid_predictor_opts *o, FILE *out, qid_predictor_report *rep,
                          qid_error *err);

/* Prints a predictor report: counts, features, the leave-one-out table,
 * importances with the linear coefficients, the frontier, warnings. */
void qid_predictor_cmd_print(FILE *out, const qid_predictor_report *rep, const qid_predictor_opts *o);

/* Prints each item of a "; "-separated list (qid_fit_list_add) on a line
 * of its own after prefix (e.g. "warning: "). */
void qid_fit_list_print(FILE *out, const char *prefix, const char *list);

#endif
