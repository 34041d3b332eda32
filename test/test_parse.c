/* test_parse.c - the one number syntax (parse.h) and the command-line
 * parser built on it (cli.h): accepted and refused texts, exact integers,
 * lists, byte counts, the shortest round-trip text, and cli_parse's
 * options-anywhere rule with its one-line errors. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "parse.h"
#include "tap.h"

static void test_reals(void)
{
    static const struct {
        const char *s;
        double v;
    } good[] = {{"0", 0},       {"0.1", 0.1}, {"-2.5", -2.5}, {"+3", 3},       {".5", 0.5},  {"5.", 5},
                {"1e-3", 1e-3}, {"7e9", 7e9}, {"3E11", 3e11}, {"1e+20", 1e20}, {"-0", -0.0}, {"1e-400", 0}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        double v = NAN;
        ok(qid_parse_real(good[i].s, &v) == 0 && v == good[i].v, "real '%s' = %g", good[i].s, good[i].v);
    }
    static const char *const bad[] = {"",    " 1",  "1 ",    "1e",  "e5",   ".",   "-",   "+",   "1..2", "0x10",
                                      "inf", "nan", "1e999", "1,5", "1e5x", "--1", "1e+", "NaN", NULL};
    for (size_t i = 0; bad[i]; i++) {
        double v = 42;
        ok(qid_parse_real(bad[i], &v) == -1 && v == 42, "real '%s' refused, output untouched", bad[i]);
    }
    ok(qid_parse_real(NULL, &(double){0}) == -1, "real NULL refused");
}

static void test_ints(void)
{
    int64_t v = 0;
    ok(qid_parse_int("42", 0, 100, &v) == 0 && v == 42, "int 42");
    ok(qid_parse_int("3e11", 0, INT64_MAX, &v) == 0 && v == 300000000000LL, "int 3e11 (token counts)");
    ok(qid_parse_int("2.5e3", 0, INT64_MAX, &v) == 0 && v == 2500, "int 2.5e3");
    ok(qid_parse_int("-3", -5, 5, &v) == 0 && v == -3, "int -3");
    ok(qid_parse_int("9223372036854775807", 0, INT64_MAX, &v) == 0 && v == INT64_MAX, "int 2^63-1 exact");
    ok(qid_parse_int("-9223372036854775808", INT64_MIN, 0, &v) == 0 && v == INT64_MIN, "int -2^63 exact");
    ok(qid_parse_int("9007199254740993", 0, INT64_MAX, &v) == 0 && v == 9007199254740993LL,
       "int 2^53+1 as digits is exact");
    v = 7;
    ok(qid_parse_int("9223372036854775808", 0, INT64_MAX, &v) == -1 && v == 7, "int 2^63 refused");
    ok(qid_parse_int("1.5", 0, 10, &v) == -1, "int 1.5 refused");
    ok(qid_parse_int("1e20", 0, INT64_MAX, &v) == -1, "int 1e20 refused (past 2^53 in exponent form)");
    ok(qid_parse_int("11", 0, 10, &v) == -1, "int above hi refused");
    ok(qid_parse_int("-1", 0, 10, &v) == -1, "int below lo refused");
    ok(qid_parse_int("0x10", 0, 100, &v) == -1, "int hex refused");
    ok(qid_parse_int("12abc", 0, 100, &v) == -1, "int trailing text refused");
    ok(qid_parse_int("", 0, 100, &v) == -1, "int empty refused");
    uint64_t u = 0;
    ok(qid_parse_u64("18446744073709551615", UINT64_MAX, &u) == 0 && u == UINT64_MAX, "u64 2^64-1 exact");
    ok(qid_parse_u64("18446744073709551616", UINT64_MAX, &u) == -1, "u64 2^64 refused");
    ok(qid_parse_u64("-1", UINT64_MAX, &u) == -1, "u64 -1 refused");
    ok(qid_parse_u64("1e3", UINT64_MAX, &u) == 0 && u == 1000, "u64 1e3");
}

static void test_lists(void)
{
    double *r = NULL;
    size_t n = 0;
    ok(qid_parse_real_list("7e9,70e9,0.5", &r, &n) == 0 && n == 3 && r[0] == 7e9 && r[1] == 70e9 && r[2] == 0.5,
       "real list 7e9,70e9,0.5");
    free(r);
    ok(qid_parse_real_list("1", &r, &n) == 0 && n == 1 && r[0] == 1, "real list of one");
    free(r);
    r = NULL;
    static const char *const bad[] = {"", ",", "1,", ",1", "1,,2", "1, 2", "1,x", NULL};
    for (size_t i = 0; bad[i]; i++)
        ok(qid_parse_real_list(bad[i], &r, &n) == -1 && r == NULL, "real list '%s' refused", bad[i]);
    int64_t *iv = NULL;
    ok(qid_parse_int_list("0,1,10,1e3", 0, 1000, &iv, &n) == 0 && n == 4 && iv[3] == 1000, "int list 0,1,10,1e3");
    free(iv);
    iv = NULL;
    ok(qid_parse_int_list("2,3,65", 1, 63, &iv, &n) == -1 && iv == NULL, "int list with an item out of range refused");
}

static void test_bytes(void)
{
    double b = 0;
    ok(qid_parse_bytes("1e9", &b) == 0 && b == 1e9, "bytes 1e9");
    ok(qid_parse_bytes("4GiB", &b) == 0 && b == 4294967296.0, "bytes 4GiB");
    ok(qid_parse_bytes("512mib", &b) == 0 && b == 536870912.0, "bytes 512mib (case-insensitive)");
    ok(qid_parse_bytes("2.5G", &b) == 0 && b == 2.5e9, "bytes 2.5G");
    ok(qid_parse_bytes("4XB", &b) == -1, "bytes 4XB refused");
    ok(qid_parse_bytes("0", &b) == -1, "bytes 0 refused");
    ok(qid_parse_bytes("GiB", &b) == -1, "bytes without a number refused");
}

static void test_format(void)
{
    static const double v[] = {0.1, 100, 1e-5, 2.5e20, 1.0 / 3, -7, 0, 123456789012345678.0, 5e-324};
    static const char *const want[] = {"0.1", "100", "1e-05", "2.5e+20", NULL, "-7", "0", NULL, NULL};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char buf[32];
        double back = NAN;
        qid_format_real(v[i], buf, sizeof buf);
        ok(qid_parse_real(buf, &back) == 0 && back == v[i], "format %.17g -> '%s' reads back", v[i], buf);
        if (want[i]) is_string(want[i], buf, "format %.17g is '%s'", v[i], want[i]);
    }
}

/* ---- cli_parse ------------------------------------------------------------ */

static int parity_fn(const char *value, void *dest)
{
    if (strcmp(value, "even") && strcmp(value, "odd")) return -1;
    *(const char **)dest = value;
    return 0;
}

static void usage(FILE *out) { fprintf(out, "# usage: qid demo-cmd A [B] [options]\n"); }

typedef struct demo {
    int flag, windows;
    int64_t tokens;
    uint64_t seed;
    size_t count;
    double lr;
    const char *out, *parity;
} demo;

static int run_parse(demo *d, char ***args, int *n_args, const char *line, char **err)
{
    const cli_opt opts[] = {
        CLI_OPT_FLAG("flag", &d->flag),
        CLI_OPT_INT("windows", &d->windows, 1, 1e6, "a positive integer"),
        CLI_OPT_I64("tokens", &d->tokens, 1, 9e18, NULL),
        CLI_OPT_U64("seed", &d->seed, 0, "a seed"),
        CLI_OPT_SIZE("count", &d->count, 0, 100, NULL),
        CLI_OPT_REAL("lr", &d->lr, 0, 1, CLI_LO_OPEN, "a number in (0, 1]"),
        {"output", 'o', CLI_STR, &d->out, 0, 0, 0, NULL, NULL},
        CLI_OPT_FN("parity", &d->parity, parity_fn, "even or odd"),
    };
    const cli_spec spec = {"demo-cmd", usage, opts, sizeof opts / sizeof opts[0], 1, 2, "give A"};
    static char storage[512];
    static char *argv[32];
    int argc = 0;
    snprintf(storage, sizeof storage, "demo-cmd %s", line);
    for (char *tok = strtok(storage, " "); tok && argc < 31; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    argv[argc] = NULL;
    memset(d, 0, sizeof *d);
    tap_capture_begin();
    int rc = cli_parse(&spec, argc, argv, n_args);
    *args = argv + 1;
    *err = tap_capture_end();
    return rc;
}

static void test_cli(void)
{
    demo d;
    char **args = NULL, *err = NULL;
    int n = 0;
    int rc =
        run_parse(&d, &args, &n, "--windows 8 a --tokens=3e11 -o out.h5 b --flag --seed 18446744073709551615", &err);
    ok(rc == CLI_OK && n == 2 && strcmp(args[0], "a") == 0 && strcmp(args[1], "b") == 0,
       "options before, between and after the positionals, in order");
    ok(d.windows == 8 && d.tokens == 300000000000LL && d.flag == 1 && d.seed == UINT64_MAX &&
           strcmp(d.out, "out.h5") == 0,
       "values: --windows 8, --tokens=3e11, --flag, --seed 2^64-1, -o out.h5");
    is_string("", err, "no output on success");
    free(err);

    rc = run_parse(&d, &args, &n, "a -oout.h5 --lr 1 --count 1e2 --parity odd -- --not-an-option", &err);
    ok(rc == CLI_OK && n == 2 && strcmp(args[1], "--not-an-option") == 0 && strcmp(d.out, "out.h5") == 0 && d.lr == 1 &&
           d.count == 100 && strcmp(d.parity, "odd") == 0,
       "-oVALUE, a closed upper bound, 1e2 as a size, a callback, and '--' ending the options");
    free(err);

    static const struct {
        const char *line, *msg;
    } bad[] = {
        {"a --windows 0", "qid demo-cmd: error: --windows wants a positive integer, got '0'\n"},
        {"a --windows 1.5", "qid demo-cmd: error: --windows wants a positive integer, got '1.5'\n"},
        {"a --lr 0", "qid demo-cmd: error: --lr wants a number in (0, 1], got '0'\n"},
        {"a --count 101", "qid demo-cmd: error: --count wants an integer in [0, 100], got '101'\n"},
        {"a --tokens 0x10", "qid demo-cmd: error: --tokens wants an integer in [1, 9e+18], got '0x10'\n"},
        {"a --parity both", "qid demo-cmd: error: --parity wants even or odd, got 'both'\n"},
        {"a --bogus", "qid demo-cmd: error: unknown option '--bogus' (see 'qid demo-cmd --help')\n"},
        {"a -x", "qid demo-cmd: error: unknown option '-x' (see 'qid demo-cmd --help')\n"},
        {"a --windows", "qid demo-cmd: error: --windows needs a value (see 'qid demo-cmd --help')\n"},
        {"--flag", "qid demo-cmd: error: give A (see 'qid demo-cmd --help')\n"},
        {"a b c", "qid demo-cmd: error: unexpected argument 'c' (see 'qid demo-cmd --help')\n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = run_parse(&d, &args, &n, bad[i].line, &err);
        ok(rc == CLI_USAGE, "'%s' is a usage error", bad[i].line);
        is_string(bad[i].msg, err, "'%s': one line naming the option", bad[i].line);
        free(err);
    }
    rc = run_parse(&d, &args, &n, "--help", &err);
    ok(rc == CLI_HELP, "--help returns CLI_HELP");
    free(err);
}

int main(void)
{
    plan_lazy();
    test_reals();
    test_ints();
    test_lists();
    test_bytes();
    test_format();
    test_cli();
    return 0;
}
