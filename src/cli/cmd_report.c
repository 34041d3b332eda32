/* cmd_report.c - `qid report STORE -o DIR`: its options and usage; the
 * report itself is report.c's (report.h).
 *
 * Does not: read the store or write any file itself. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "report.h"

static void report_usage(FILE *out)
{
    fprintf(out, "usage: qid report STORE -o DIR [--fit NAME] [--predictor NAME] [--boot N] [--gnuplot PROG]\n"
                 "\n"
                 "Writes a report of a results store's unified law QiD = k D^beta / (N^alpha P^gamma)\n"
                 "into DIR: summary.txt (coefficients with intervals, R^2, RMSE, counts, and\n"
                 "'POOR FIT' / 'TOO FEW POINTS' lines; the predictor's errors and the Pareto\n"
                 "frontier), points.csv, predictions.csv (QiD at 1e14 tokens for 7B/70B/405B at\n"
                 "2/3/4 bits), pareto.csv, predictor.csv, the gnuplot script report.gp with its\n"
                 ".dat files, and PNG + SVG plots: qid_vs_d, qid_vs_n, qid_vs_p, predictions,\n"
                 "actual_vs_predicted, pareto (loss vs memory of every model and setting, the\n"
                 "frontier, the budget) and predictor_actual_vs_predicted (the Xu et al. predictor's\n"
                 "held-out predictions), and law_compare when the fit has a comparison of the law\n"
                 "forms (qid fit --compare). Uses /fits/NAME and /fits/PREDICTOR of the store;\n"
                 "without /fits/default the law is fitted in memory (a fit named with --fit must\n"
                 "exist), without the predictor it is trained in memory. Without gnuplot the plots\n"
                 "are skipped with a warning.\n"
                 "\n"
                 "options:\n"
                 "  -o, --output DIR  the report directory (created if absent)\n"
                 "  --fit NAME        the stored fit to show (default 'default')\n"
                 "  --predictor NAME  the stored predictor to show (default 'predictor')\n"
                 "  --boot N          bootstrap draws of an in-memory fit (default 200)\n"
                 "  --gnuplot PROG    the gnuplot program (default 'gnuplot')\n");
}

int qid_report_main(int argc, char **argv)
{
    qid_report_opts o;
    qid_report_opts_init(&o);
    const char *dir = NULL;
    const cli_opt opts[] = {
        {"output", 'o', CLI_STR, &dir, 0, 0, 0, NULL, NULL}, CLI_OPT_STR("fit", &o.fit_name),
        CLI_OPT_SIZE("boot", &o.n_boot, 0, 9e18, "a count"), CLI_OPT_STR("gnuplot", &o.gnuplot),
        CLI_OPT_STR("predictor", &o.predictor_name),
    };
    const cli_spec spec = {"report", report_usage, opts, sizeof opts / sizeof opts[0], 1, 1, "no results store given"};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1; /* the positional arguments */
    if (rc == CLI_OK && !dir) rc = cli_usage_error("report", "no output directory given (-o DIR)");
    if (rc == CLI_OK) {
        qid_error err;
        qid_error_clear(&err);
        if (qid_report_write(args[0], dir, &o, stdout, &err)) {
            fflush(stdout);
            rc = cli_fail("report", "%s", err.msg);
        } else {
            printf("report written to %s (summary.txt)\n", dir);
        }
    }
    return rc == CLI_HELP ? 0 : rc;
}
