/* parse.h - the one syntax of numbers and lists in qid's command lines and
 * job files, and its inverse (the shortest text that reads back).
 *
 * A real: an optional sign, decimal digits with an optional point, and an
 * optional exponent: 0.1, -2.5, .5, 1e-3, 7e9, +3. Refused: empty text,
 * blanks anywhere, any other character (so hexadecimal 0x10, inf and nan),
 * and values that overflow a double.
 * An integer: the same text with a whole value: 42, -3, 1e6, 3e11, 2.5e3.
 * A digit string is read exactly (to 2^63-1, or 2^64-1 for qid_parse_u64);
 * a form with a point or an exponent must be whole and at most 2^53 in
 * magnitude, where every integer is exact in a double.
 * A list: items separated by single commas, no blanks, no empty item:
 * 2,3,4 or 7e9,70e9.
 * A byte count: a real > 0 with an optional unit, case-insensitive: b, k,
 * kb, m, mb, g, gb, t, tb (powers of 1000) or kib, mib, gib, tib (powers of
 * 1024): 1e9, 4GiB, 512MiB, 2.5G.
 *
 * Every parser returns 0 and sets *out when the whole text is accepted,
 * and -1 without touching *out otherwise; the caller writes the message
 * (cli.h does it for command options, jobfile.c for job files).
 *
 * Does not: print, skip blanks, or accept a locale's decimal comma. */
#ifndef QID_PARSE_H
#define QID_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* A real (above); finite. */
int qid_parse_real(const char *s, double *out);

/* An integer (above) in [lo, hi]. */
int qid_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* An integer (above) in [0, hi], read exactly up to 2^64-1 (seeds). */
int qid_parse_u64(const char *s, uint64_t hi, uint64_t *out);

/* A list of reals; *out is malloc'd (free it), *n its length (>= 1). */
int qid_parse_real_list(const char *s, double **out, size_t *n);

/* A list of integers, each in [lo, hi]; *out is malloc'd, *n >= 1. */
int qid_parse_int_list(const char *s, int64_t lo, int64_t hi, int64_t **out, size_t *n);

/* A byte count (above) as a double > 0. */
int qid_parse_bytes(const char *s, double *out);

/* Writes the shortest text that qid_parse_real reads back as v ("0.1", not
 * "0.10000000000000001"; "100", not "1e+02") into buf (32 bytes always
 * suffice). v must be finite. */
void qid_format_real(double v, char *buf, size_t len);

#endif
