/* bench.h - helpers shared by the benchmarks (test/bench_*.c, `make bench`):
 * a monotonic clock, a size from the environment and this process's
 * resident-set figures from /proc. Header-only: each
 * bench is one source file linked with libqid, without the TAP harness. */
#ifndef QID_BENCH_H
#define QID_BENCH_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* A field of /proc/self/status in kB (VmRSS, VmHWM), or -1. */
static inline long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') v = strtol(line + kl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0; it resets the process's
 * ru_maxrss too); 1 when it worked. */
static inline int reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

#endif
