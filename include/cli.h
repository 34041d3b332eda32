/* cli.h - the command layer: every `qid <command>`'s entry point (one file
 * each, src/cli/cmd_<command>.c, holding its options, usage and printing)
 * and the one option parser they all use.
 *
 * The rule every command follows (docs/commands.md):
 *   - options may come before or after the positional arguments; "--" ends
 *     the options;
 *   - a long option's value is the next argument or follows '='
 *     (--windows 8, --windows=8); a short option's follows it (-o x, -ox);
 *   - numbers and lists have one syntax, parse.h's: 3e11 is an integer
 *     wherever an integer is wanted, 7e9,70e9 a list;
 *   - a bad command line prints one line "qid CMD: error: ..." (with a hint
 *     where one helps) and exits 2; -h/--help prints the usage on stdout
 *     and exits 0;
 *   - a failure of the work itself prints "qid CMD: error: ..." and exits 1.
 *
 * Does not: do any of the work; a command calls its library module. */
#ifndef QID_CLI_H
#define QID_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

/* ---- the commands (argv[0] is the command's name) ---------------------- */

int qid_import_main(int argc, char **argv);
int qid_tokens_main(int argc, char **argv);
int qid_corpus_main(int argc, char **argv);
int qid_inspect_main(int argc, char **argv);
int qid_eval_main(int argc, char **argv);
int qid_run_main(int argc, char **argv);
int qid_results_main(int argc, char **argv);
int qid_quantize_main(int argc, char **argv);
int qid_fit_main(int argc, char **argv);
int qid_predict_main(int argc, char **argv);
int qid_predictor_main(int argc, char **argv);
int qid_report_main(int argc, char **argv);
int qid_train_main(int argc, char **argv);

/* ---- what the commands print that tests read too ---------------------- */

struct qid_job;
struct qid_task;

/* `qid run --dry-run` (src/cli/run_grid.c): a header with the job's
 * settings, one table row per task of tasks[0, n) in the order given
 * (index, checkpoint, model, params, method, format, options, cost, share
 * of the total), and the estimated total cost. */
void cli_print_job_grid(const struct qid_job *job, const struct qid_task *tasks, size_t n, FILE *out);

/* `qid inspect` of one file (src/cli/cmd_inspect.c): what it holds, chosen
 * by its format attribute (checkpoint, token set, results store), printed
 * to out; with tensors, a checkpoint's tensors one a line. Errors name the
 * file (not HDF5, no or an unknown format attribute, unreadable). */
int cli_inspect_file(const char *path, int tensors, FILE *out, qid_error *err);

/* ---- the option parser ------------------------------------------------- */

typedef enum cli_kind {
    CLI_FLAG, /* no value; sets *(int *)dest = 1 */
    CLI_STR,  /* *(const char **)dest = the value (points into argv) */
    CLI_INT,  /* *(int *)dest, an integer in [lo, hi] */
    CLI_I64,  /* *(int64_t *)dest, an integer in [lo, hi] */
    CLI_U64,  /* *(uint64_t *)dest, an integer in [0, hi], any when hi is 0 (seeds) */
    CLI_SIZE, /* *(size_t *)dest, an integer in [lo, hi] */
    CLI_REAL, /* *(double *)dest, a real in [lo, hi] (open ends: CLI_LO_OPEN, CLI_HI_OPEN) */
    CLI_FN,   /* fn(value, dest) returns 0 when it takes the value */
} cli_kind;

enum { CLI_LO_OPEN = 1, CLI_HI_OPEN = 2 };

/* One option. Ranges are doubles: integer bounds past 2^53 are rounded, so
 * give "no bound" as a round number (e.g. 9e18) or a power of two. */
typedef struct cli_opt {
    const char *name;                         /* long name without "--", e.g. "windows" */
    char short_name;                          /* e.g. 'o', or 0 */
    cli_kind kind;                            /* what the value is and where it goes */
    void *dest;                               /* see cli_kind */
    double lo, hi;                            /* accepted range of a number */
    int open;                                 /* CLI_LO_OPEN | CLI_HI_OPEN for CLI_REAL */
    const char *want;                         /* the message's "--OPT wants WANT, got 'X'" */
    int (*fn)(const char *value, void *dest); /* CLI_FN */
} cli_opt;

/* Shorthands for the table of a command (names without "--"). */
#define CLI_OPT_FLAG(name, dest)                                                                                       \
    {                                                                                                                  \
        (name), 0, CLI_FLAG, (dest), 0, 0, 0, NULL, NULL                                                               \
    }
#define CLI_OPT_STR(name, dest)                                                                                        \
    {                                                                                                                  \
        (name), 0, CLI_STR, (dest), 0, 0, 0, NULL, NULL                                                                \
    }
#define CLI_OPT_INT(name, dest, lo, hi, want)                                                                          \
    {                                                                                                                  \
        (name), 0, CLI_INT, (dest), (lo), (hi), 0, (want), NULL                                                        \
    }
#define CLI_OPT_I64(name, dest, lo, hi, want)                                                                          \
    {                                                                                                                  \
        (name), 0, CLI_I64, (dest), (lo), (hi), 0, (want), NULL                                                        \
    }
#define CLI_OPT_U64(name, dest, hi, want)                                                                              \
    {                                                                                                                  \
        (name), 0, CLI_U64, (dest), 0, (hi), 0, (want), NULL                                                           \
    }
#define CLI_OPT_SIZE(name, dest, lo, hi, want)                                                                         \
    {                                                                                                                  \
        (name), 0, CLI_SIZE, (dest), (lo), (hi), 0, (want), NULL                                                       \
    }
#define CLI_OPT_REAL(name, dest, lo, hi, open, want)                                                                   \
    {                                                                                                                  \
        (name), 0, CLI_REAL, (dest), (lo), (hi), (open), (want), NULL                                                  \
    }
#define CLI_OPT_FN(name, dest, fn, want)                                                                               \
    {                                                                                                                  \
        (name), 0, CLI_FN, (dest), 0, 0, 0, (want), (fn)                                                               \
    }

/* A command's command line. */
typedef struct cli_spec {
    const char *name;         /* "eval": messages read "qid eval: error: ..." */
    void (*usage)(FILE *out); /* the whole usage text */
    const cli_opt *opts;      /* the options; -h/--help is added */
    size_t n_opts;
    int min_args, max_args; /* how many positional arguments (max -1: any) */
    const char *args_hint;  /* what to say when too few: "give a checkpoint and a token set" */
} cli_spec;

enum { CLI_OK = 0, CLI_HELP = -1, CLI_USAGE = 2 };

/* Parses argv[1..argc-1] by spec: sets each option's dest (values point
 * into the argument strings) and moves the positional arguments, in order,
 * to argv[1..*n_args] (argv's slots are reused; the strings stay where they
 * are). Returns CLI_OK; CLI_HELP after printing the usage on stdout (the
 * command exits 0); or CLI_USAGE after printing one error line on stderr
 * (the command exits 2). Options seen before an error keep the values they
 * were given. */
int cli_parse(const cli_spec *spec, int argc, char **argv, int *n_args);

/* Prints "qid CMD: error: <message> (see 'qid CMD --help')" and returns
 * CLI_USAGE. For the checks across options that follow cli_parse. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --format F as a filter of stored rows (cli_opt fn): a format name in quant.h's grammar, kept in the
 * canonical spelling the store's rows carry (int4-g32 is int4-g32-sym); dest is a cli_format. */
typedef struct cli_format {
    char canon[64];
    int given;
} cli_format;
int cli_take_format(const char *value, void *dest);
#define CLI_FORMAT_WANT "a quantizer format, e.g. int4-g128-sym, mxfp4, nf4 (qid quantize --help lists them)"

/* --bits 2,3,4 (cli_opt fn): element bit widths 1..63 as a uint64_t mask (bit P set). */
int cli_take_bits(const char *value, void *dest);

/* Prints "qid CMD: error: <message>" for a failure of the work itself;
 * returns 1, the exit status. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
