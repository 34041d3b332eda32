/* tap.h - a small Test Anything Protocol producer in the shape of
 * c-tap-harness: an explicit plan, so a test that exits early fails under
 * prove. Every test program in test/ uses it; output goes to stdout.
 *
 * Does not: fork, time out, or compare files (tests do that themselves). */
#ifndef QID_TAP_H
#define QID_TAP_H

#include <stddef.h>
#include <stdint.h>

#define TAP_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Announces n tests; at exit, tap reports if the count run differs. */
void plan(unsigned long n);
/* Announces that the plan comes at the end (for data-driven tests). */
void plan_lazy(void);
/* Skips the whole program with a reason and exits 0. */
_Noreturn void skip_all(const char *fmt, ...) TAP_PRINTF(1, 2);

/* Each returns its success as an int so callers can add diagnostics. */
int ok(int success, const char *fmt, ...) TAP_PRINTF(2, 3);
int is_int(long long wanted, long long seen, const char *fmt, ...) TAP_PRINTF(3, 4);
/* |wanted - seen| <= eps (NaN equals NaN). */
int is_double(double wanted, double seen, double eps, const char *fmt, ...) TAP_PRINTF(4, 5);
int is_string(const char *wanted, const char *seen, const char *fmt, ...) TAP_PRINTF(3, 4);
/* seen contains the substring wanted (error-message checks). */
int like(const char *seen, const char *wanted, const char *fmt, ...) TAP_PRINTF(3, 4);
/* Marks one test as skipped. */
void skip(const char *fmt, ...) TAP_PRINTF(1, 2);

/* A "# " comment line on stdout. */
void diag(const char *fmt, ...) TAP_PRINTF(1, 2);
/* "Bail out!" and exit 255: nothing further can be tested. */
_Noreturn void bail(const char *fmt, ...) TAP_PRINTF(1, 2);

/* Test-only helpers. */
/* Reads a whole file into a malloc'd buffer (NUL-terminated), or bails. */
char *tap_read_file(const char *path, size_t *len);
/* Writes len bytes to path, or bails. */
void tap_write_file(const char *path, const void *data, size_t len);
/* 1 if path exists. */
int tap_exists(const char *path);
/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp), removed with
 * its contents at exit. The returned string is static storage. */
const char *tap_tmpdir(void);

/* Sends stderr to a file in tap_tmpdir() until tap_capture_end, which
 * restores it and returns what was written (malloc'd). Not nested. */
void tap_capture_begin(void);
char *tap_capture_end(void);

/* tap_tmpdir()/name, in one of 16 rotating static buffers. */
const char *tap_path(const char *name);
/* Imports the transformers-written fixture test/fixtures/hf/<name> into
 * tap_path("<name>.h5") (replacing it) with the given step and tokens seen
 * (-1: unknown), or bails. Returns the checkpoint path. */
const char *tap_import_fixture(const char *name, int64_t step, int64_t tokens);

/* Seeded test data from qid's generator (rng.h): the same sequence every
 * run unless tap_seed is called. */
void tap_seed(uint64_t seed);
uint64_t tap_rand(void);
double tap_uniform(void); /* [0, 1) */
float tap_gauss(void);    /* standard normal */
/* Bit patterns of floats, for bit-exact comparisons. */
uint32_t tap_f32_bits(float f);
float tap_bits_f32(uint32_t u);

#endif
