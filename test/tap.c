/* tap.c - implementation of the TAP producer in tap.h. */
#define _GNU_SOURCE
#include "tap.h"

#include "import.h"
#include "rng.h"

#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long tap_planned, tap_run, tap_failed;
static int tap_lazy;
static char tap_dir[4096];

static void tap_finish(void)
{
    if (tap_dir[0]) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tap_dir);
        if (system(cmd) != 0) fprintf(stdout, "# could not remove %s\n", tap_dir);
    }
    if (tap_lazy) {
        printf("1..%lu\n", tap_run);
    } else if (tap_run != tap_planned) {
        printf("# planned %lu tests but ran %lu\n", tap_planned, tap_run);
    }
    if (tap_failed) printf("# failed %lu of %lu tests\n", tap_failed, tap_run);
    fflush(stdout);
}

void plan(unsigned long n)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    tap_planned = n;
    printf("1..%lu\n", n);
    atexit(tap_finish);
}

void plan_lazy(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    tap_lazy = 1;
    atexit(tap_finish);
}

_Noreturn void skip_all(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("1..0 # SKIP ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    exit(0);
}

static int report(int success, const char *fmt, va_list ap)
{
    tap_run++;
    if (!success) tap_failed++;
    printf("%s %lu - ", success ? "ok" : "not ok", tap_run);
    vprintf(fmt, ap);
    printf("\n");
    return success;
}

int ok(int success, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(success, fmt, ap);
    va_end(ap);
    return success;
}

int is_int(long long wanted, long long seen, const char *fmt, ...)
{
    int success = wanted == seen;
    va_list ap;
    va_start(ap, fmt);
    report(success, fmt, ap);
    va_end(ap);
    if (!success) printf("#   wanted: %lld\n#     seen: %lld\n", wanted, seen);
    return success;
}

int is_double(double wanted, double seen, double eps, const char *fmt, ...)
{
    int success = (isnan(wanted) && isnan(seen)) || fabs(wanted - seen) <= eps;
    va_list ap;
    va_start(ap, fmt);
    report(success, fmt, ap);
    va_end(ap);
    if (!success) printf("#   wanted: %.17g\n#     seen: %.17g (eps %g)\n", wanted, seen, eps);
    return success;
}

int is_string(const char *wanted, const char *seen, const char *fmt, ...)
{
    int success = (wanted == NULL && seen == NULL) || (wanted && seen && strcmp(wanted, seen) == 0);
    va_list ap;
    va_start(ap, fmt);
    report(success, fmt, ap);
    va_end(ap);
    if (!success) printf("#   wanted: %s\n#     seen: %s\n", wanted ? wanted : "(null)", seen ? seen : "(null)");
    return success;
}

int like(const char *seen, const char *wanted, const char *fmt, ...)
{
    int success = seen && wanted && strstr(seen, wanted) != NULL;
    va_list ap;
    va_start(ap, fmt);
    report(success, fmt, ap);
    va_end(ap);
    if (!success) printf("#   wanted substring: %s\n#               seen: %s\n", wanted, seen ? seen : "(null)");
    return success;
}

void skip(const char *fmt, ...)
{
    tap_run++;
    printf("ok %lu # SKIP ", tap_run);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

_Noreturn void bail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("Bail out! ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    exit(255);
}

static int capture_saved = -1;

void tap_capture_begin(void)
{
    const char *path = tap_path("stderr.txt");
    fflush(stderr);
    capture_saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || capture_saved < 0) bail("cannot capture stderr in %s", path);
    dup2(fd, 2);
    close(fd);
}

char *tap_capture_end(void)
{
    fflush(stderr);
    dup2(capture_saved, 2);
    close(capture_saved);
    capture_saved = -1;
    return tap_read_file(tap_path("stderr.txt"), NULL);
}

char *tap_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) bail("cannot open %s", path);
    if (fseek(f, 0, SEEK_END) != 0) bail("cannot seek %s", path);
    long n = ftell(f);
    if (n < 0) bail("cannot size %s", path);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (!buf) bail("out of memory reading %s", path);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) bail("cannot read %s", path);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

void tap_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) bail("cannot create %s", path);
    if (fwrite(data, 1, len, f) != len || fclose(f) != 0) bail("cannot write %s", path);
}

int tap_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

const char *tap_tmpdir(void)
{
    if (tap_dir[0]) return tap_dir;
    const char *base = getenv("TMPDIR");
    snprintf(tap_dir, sizeof tap_dir, "%s/qid-test-XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(tap_dir)) bail("cannot create a temporary directory");
    return tap_dir;
}

static qid_rng tap_rng;
static int tap_rng_ready;

void tap_seed(uint64_t seed)
{
    qid_rng_seed(&tap_rng, seed, 0);
    tap_rng_ready = 1;
}

uint64_t tap_rand(void)
{
    if (!tap_rng_ready) tap_seed(0x243F6A8885A308D3ull);
    return qid_rng_next(&tap_rng);
}

double tap_uniform(void) { return (double)(tap_rand() >> 11) * 0x1.0p-53; }

float tap_gauss(void)
{
    if (!tap_rng_ready) tap_seed(0x243F6A8885A308D3ull);
    return (float)qid_rng_normal(&tap_rng);
}

uint32_t tap_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float tap_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

const char *tap_path(const char *name)
{
    static char buf[16][4352];
    static int next = 0;
    char *p = buf[next++ % 16];
    snprintf(p, sizeof buf[0], "%s/%s", tap_tmpdir(), name);
    return p;
}

const char *tap_import_fixture(const char *name, int64_t step, int64_t tokens)
{
    char dir[512], file[256];
    snprintf(dir, sizeof dir, "test/fixtures/hf/%s", name);
    snprintf(file, sizeof file, "%s.h5", name);
    const char *out = tap_path(file);
    qid_import_opts o = {.dir = dir, .out = out, .step = step, .tokens = tokens, .force = 1};
    qid_error err;
    qid_error_clear(&err);
    if (qid_import_safetensors(&o, &err)) bail("cannot import fixture %s: %s", name, err.msg);
    return out;
}
