/* cli.c - the one option parser of the qid commands (cli.h): a table of
 * options per command, read with getopt_long in its in-order mode so that
 * options and positional arguments may come in any order, numbers through
 * parse.h, and one-line errors.
 *
 * Does not: know any command; each cmd_*.c brings its table. */
#include "cli.h"

#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "parse.h"
#include "quant.h"

/* "qid CMD: error: <message><tail>\n" on stderr. */
static void say_error(const char *cmd, const char *tail, const char *fmt, va_list ap)
{
    fprintf(stderr, "qid %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "%s\n", tail);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char hint[128];
    snprintf(hint, sizeof hint, " (see 'qid %s --help')", cmd);
    va_list ap;
    va_start(ap, fmt);
    say_error(cmd, hint, fmt, ap);
    va_end(ap);
    return CLI_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say_error(cmd, "", fmt, ap);
    va_end(ap);
    return 1;
}

static int in_range(const cli_opt *o, double v)
{
    if (o->open & CLI_LO_OPEN ? !(v > o->lo) : !(v >= o->lo)) return 0;
    if (o->open & CLI_HI_OPEN ? !(v < o->hi) : !(v <= o->hi)) return 0;
    return 1;
}

/* Stores value in o's destination; -1 when refused. */
static int take_value(const cli_opt *o, const char *value)
{
    int64_t i;
    uint64_t u;
    double r;
    switch (o->kind) {
    case CLI_FLAG: *(int *)o->dest = 1; return 0;
    case CLI_STR: *(const char **)o->dest = value; return 0;
    case CLI_INT:
    case CLI_I64:
    case CLI_SIZE:
        if (qid_parse_int(value, INT64_MIN, INT64_MAX, &i) || !in_range(o, (double)i)) return -1;
        if (o->kind == CLI_INT)
            *(int *)o->dest = (int)i;
        else if (o->kind == CLI_I64)
            *(int64_t *)o->dest = i;
        else if (i < 0)
            return -1;
        else
            *(size_t *)o->dest = (size_t)i;
        return 0;
    case CLI_U64:
        if (qid_parse_u64(value, UINT64_MAX, &u) || (o->hi > 0 && (double)u > o->hi)) return -1;
        *(uint64_t *)o->dest = u;
        return 0;
    case CLI_REAL:
        if (qid_parse_real(value, &r) || !in_range(o, r)) return -1;
        *(double *)o->dest = r;
        return 0;
    case CLI_FN: return o->fn(value, o->dest) ? -1 : 0;
    }
    return -1;
}

/* "--name wants WANT, got 'VALUE'" with a default WANT from the range. */
static int bad_value(const cli_spec *spec, const cli_opt *o, const char *value)
{
    char want[96];
    if (o->want)
        snprintf(want, sizeof want, "%s", o->want);
    else if (o->kind == CLI_REAL)
        snprintf(want, sizeof want, "a number in %c%g, %g%c", o->open & CLI_LO_OPEN ? '(' : '[', o->lo, o->hi,
                 o->open & CLI_HI_OPEN ? ')' : ']');
    else
        snprintf(want, sizeof want, "an integer in [%.17g, %.17g]", o->lo, o->hi);
    fprintf(stderr, "qid %s: error: --%s wants %s, got '%s'\n", spec->name, o->name, want, value);
    return CLI_USAGE;
}

int cli_parse(const cli_spec *spec, int argc, char **argv, int *n_args)
{
    char **args = qid_calloc((size_t)argc + 1, sizeof *args, "positional arguments");
    const size_t n = spec->n_opts;
    struct option *longopts = qid_calloc(n + 2, sizeof *longopts, "option table");
    char shorts[2 * 64 + 8];
    size_t ns = 0;
    shorts[ns++] = '-'; /* positionals are returned in order as code 1 */
    shorts[ns++] = ':'; /* a missing value is returned as ':' */
    shorts[ns++] = 'h';
    for (size_t k = 0; k < n; k++) {
        const cli_opt *o = &spec->opts[k];
        longopts[k] =
            (struct option){o->name, o->kind == CLI_FLAG ? no_argument : required_argument, NULL, 256 + (int)k};
        if (o->short_name && ns + 3 < sizeof shorts) {
            shorts[ns++] = o->short_name;
            if (o->kind != CLI_FLAG) shorts[ns++] = ':';
        }
    }
    shorts[ns] = '\0';
    longopts[n] = (struct option){"help", no_argument, NULL, 'h'};

    int rc = CLI_OK, c;
    *n_args = 0;
    optind = 0; /* 0 re-initialises glibc's getopt for a second call */
    opterr = 0;
    while (rc == CLI_OK && (c = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
        const cli_opt *o = NULL;
        if (c >= 256 && c < 256 + (int)n)
            o = &spec->opts[c - 256];
        else
            for (size_t k = 0; k < n && c > 1 && c < 256; k++)
                if (spec->opts[k].short_name == c) o = &spec->opts[k];
        if (o) {
            if (take_value(o, optarg)) rc = bad_value(spec, o, optarg);
        } else if (c == 1) {
            args[(*n_args)++] = optarg;
        } else if (c == 'h') {
            spec->usage(stdout);
            rc = CLI_HELP;
        } else if (c == ':') {
            const char *arg = argv[optind - 1];
            rc = cli_usage_error(spec->name, "%s needs a value", arg);
        } else {
            const char *arg = argv[optind - 1];
            if (optopt && strncmp(arg, "--", 2) != 0)
                rc = cli_usage_error(spec->name, "unknown option '-%c'", optopt);
            else
                rc = cli_usage_error(spec->name, "unknown option '%s'", arg);
        }
    }
    for (; rc == CLI_OK && optind < argc; optind++) /* after "--" */
        args[(*n_args)++] = argv[optind];
    free(longopts);
    /* getopt's in-order mode does not permute argv, so its slots are free now */
    for (int i = 0; i < *n_args; i++)
        argv[1 + i] = args[i];
    free(args);
    if (rc != CLI_OK) return rc;
    if (*n_args < spec->min_args)
        return cli_usage_error(spec->name, "%s", spec->args_hint ? spec->args_hint : "missing argument");
    if (spec->max_args >= 0 && *n_args > spec->max_args)
        return cli_usage_error(spec->name, "unexpected argument '%s'", argv[1 + spec->max_args]);
    return CLI_OK;
}

int cli_take_format(const char *value, void *dest)
{
    cli_format *a = dest;
    qid_quant_spec spec;
    if (qid_quant_parse(value, &spec, NULL)) return -1;
    qid_quant_name(&spec, a->canon, sizeof a->canon);
    a->given = 1;
    return 0;
}

int cli_take_bits(const char *value, void *dest)
{
    int64_t *v = NULL;
    size_t n = 0;
    if (qid_parse_int_list(value, 1, 63, &v, &n)) return -1;
    uint64_t mask = 0;
    for (size_t i = 0; i < n; i++)
        mask |= (uint64_t)1 << v[i];
    free(v);
    *(uint64_t *)dest = mask;
    return 0;
}
