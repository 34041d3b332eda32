/* bench.h - helpers shared by the benchmarks (test/bench_*.c, `make bench`):
 * a monotonic clock and a size from the environment. Header-only: each
 * bench is one source file linked with libqid, without the TAP harness. */
#ifndef QID_BENCH_H
#define QID_BENCH_H
#include <stdlib.h>
#include <time.h>

/* Monotonic seconds. */
static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The positive whole number in environment variable name, else dflt. */
static inline size_t env_size(const char *name, size_t dflt)
{
    const char *s = getenv(name);
    return s && atol(s) > 0 ? (size_t)atol(s) : dflt;
}

#endif
