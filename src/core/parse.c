/* parse.c - the one number and list syntax of qid (parse.h): strict
 * decimal reals and integers, comma lists, byte counts, and the shortest
 * text that reads back.
 *
 * Does not: print or allocate except for the lists it returns. */
#include "parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"

/* Largest magnitude at which every integer is exact in a double. */
#define EXACT_LIMIT 9007199254740992.0 /* 2^53 */

/* Length of the longest prefix of s that is a decimal number in the syntax
 * of parse.h ([+-] digits [. digits] [(e|E) [+-] digits], at least one
 * digit in the mantissa); 0 when there is none. *plain is set when the
 * prefix is a sign and digits only. */
static size_t number_span(const char *s, int *plain)
{
    size_t i = 0, digits = 0;
    *plain = 1;
    if (s[i] == '+' || s[i] == '-') i++;
    while (s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (s[i] == '.') {
        *plain = 0;
        i++;
        while (s[i] >= '0' && s[i] <= '9')
            i++, digits++;
    }
    if (digits == 0) return 0;
    if (s[i] == 'e' || s[i] == 'E') {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-') j++;
        if (s[j] < '0' || s[j] > '9') return i; /* "1e" is a number and a stray 'e' */
        while (s[j] >= '0' && s[j] <= '9')
            j++;
        *plain = 0;
        i = j;
    }
    return i;
}

/* Reads the number at the start of s (n characters, from number_span)
 * with strtod; -1 when it overflows. */
static int read_double(const char *s, size_t n, double *out)
{
    char buf[64];
    if (n >= sizeof buf) {
        /* too long for buf: strtod reads it in place and must stop where the scan did */
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if ((size_t)(end - s) != n || !isfinite(v)) return -1;
        *out = v;
        return 0;
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    errno = 0;
    double v = strtod(buf, NULL);
    if (!isfinite(v)) return -1;
    *out = v;
    return 0;
}

int qid_parse_real(const char *s, double *out)
{
    int plain;
    if (!s) return -1;
    size_t n = number_span(s, &plain);
    double v;
    if (n == 0 || s[n] != '\0' || read_double(s, n, &v)) return -1;
    *out = v;
    return 0;
}

/* An integer in the syntax of parse.h as a sign and magnitude; -1 when it is
 * not one or the magnitude passes max_mag. */
static int parse_integer(const char *s, uint64_t max_mag, int *neg, uint64_t *mag)
{
    int plain;
    if (!s) return -1;
    size_t n = number_span(s, &plain);
    if (n == 0 || s[n] != '\0') return -1;
    *neg = s[0] == '-';
    if (plain) {
        const char *d = s + (s[0] == '+' || s[0] == '-');
        uint64_t v = 0;
        for (; *d; d++) {
            const uint64_t digit = (uint64_t)(*d - '0');
            if (v > (UINT64_MAX - digit) / 10) return -1;
            v = v * 10 + digit;
        }
        if (v > max_mag) return -1;
        *mag = v;
        return 0;
    }
    double v;
    if (read_double(s, n, &v) || v != floor(v) || fabs(v) > EXACT_LIMIT || fabs(v) > (double)max_mag) return -1;
    *mag = (uint64_t)fabs(v);
    return 0;
}

int qid_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    int neg;
    uint64_t mag;
    if (parse_integer(s, (uint64_t)INT64_MAX + 1, &neg, &mag)) return -1;
    if (!neg && mag > (uint64_t)INT64_MAX) return -1;
    const int64_t v = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int qid_parse_u64(const char *s, uint64_t hi, uint64_t *out)
{
    int neg;
    uint64_t mag;
    if (parse_integer(s, UINT64_MAX, &neg, &mag)) return -1;
    if ((neg && mag != 0) || mag > hi) return -1;
    *out = mag;
    return 0;
}

/* Calls item(text, arg, slot) on each comma-separated item of s (copied,
 * NUL-terminated) into an array of n items of size bytes; -1 at the first
 * refused or empty item. */
static int parse_list(const char *s, size_t size, int (*item)(const char *, const void *, void *), const void *arg,
                      void **out, size_t *n)
{
    if (!s || !*s) return -1;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char *v = qid_malloc(qid_mul_size(cap, size), "number list");
    char *copy = qid_strdup(s);
    size_t k = 0;
    int rc = 0;
    for (char *p = copy;; k++) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (item(p, arg, v + k * size)) {
            rc = -1;
            break;
        }
        if (!comma) break;
        p = comma + 1;
    }
    free(copy);
    if (rc) {
        free(v);
        return -1;
    }
    *out = v;
    *n = k + 1;
    return 0;
}

static int real_item(const char *s, const void *arg, void *slot)
{
    (void)arg;
    return qid_parse_real(s, slot);
}

static int int_item(const char *s, const void *arg, void *slot)
{
    const int64_t *range = arg;
    return qid_parse_int(s, range[0], range[1], slot);
}

int qid_parse_real_list(const char *s, double **out, size_t *n)
{
    void *v;
    if (parse_list(s, sizeof **out, real_item, NULL, &v, n)) return -1;
    *out = v;
    return 0;
}

int qid_parse_int_list(const char *s, int64_t lo, int64_t hi, int64_t **out, size_t *n)
{
    const int64_t range[2] = {lo, hi};
    void *v;
    if (parse_list(s, sizeof **out, int_item, range, &v, n)) return -1;
    *out = v;
    return 0;
}

int qid_parse_bytes(const char *s, double *out)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"", 1},
                 {"b", 1},
                 {"k", 1e3},
                 {"kb", 1e3},
                 {"kib", 1024.0},
                 {"m", 1e6},
                 {"mb", 1e6},
                 {"mib", 1048576.0},
                 {"g", 1e9},
                 {"gb", 1e9},
                 {"gib", 1073741824.0},
                 {"t", 1e12},
                 {"tb", 1e12},
                 {"tib", 1099511627776.0}};
    int plain;
    if (!s) return -1;
    size_t n = number_span(s, &plain);
    double v;
    if (n == 0 || read_double(s, n, &v) || !(v > 0)) return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(s + n, units[i].unit) == 0) {
            const double bytes = v * units[i].mult;
            if (!isfinite(bytes)) return -1;
            *out = bytes;
            return 0;
        }
    return -1;
}

void qid_format_real(double v, char *buf, size_t len)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) != v) continue;
        const int e = v != 0 ? (int)floor(log10(fabs(v))) : 0;
        if (e >= prec && e < 17) snprintf(buf, len, "%.*g", e + 1, v);
        return;
    }
}
