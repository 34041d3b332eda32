/* tokenizer.c - a Hugging Face tokenizer.json loaded and run (tokenizer.h):
 * the JSON (untrusted input, parsed with cJSON), the added tokens, the
 * normalizers (utf8proc for Unicode normalization), the pre-tokenizers
 * (PCRE2 with JIT for the split regexes) and the hand-over of each word to
 * the BPE model (tokenizer_bpe.c).
 *
 * Each step follows the tokenizers crate (huggingface/tokenizers, tokenizers/
 * src): added_vocabulary.rs (split out added tokens, raw then normalized),
 * normalizers/, pre_tokenizers/ (byte_level.rs, split.rs, metaspace.rs,
 * digits.rs, sequence.rs), tokenizer/normalizer.rs (the split behaviours)
 * and models/bpe/. Empty pieces are dropped, as PreTokenizedString::split
 * drops them.
 *
 * Does not: compute offsets, run post-processors or decoders, or accept
 * invalid UTF-8 (callers check it with qid_utf8_valid_prefix). */
#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cJSON.h>
#include <inttypes.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "fsutil.h"
#include "sha256.h"
#include "tokenizer_internal.h"

#define MAX_STEPS 16 /* normalizers or pre-tokenizers in one pipeline */
#define MAX_REGEX 16

/* GPT-2's pattern, which ByteLevel uses when use_regex is true. */
static const char gpt2_pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef enum norm_kind { N_NFC, N_NFD, N_NFKC, N_NFKD, N_LOWER, N_REPLACE, N_PREPEND, N_STRIP } norm_kind;
typedef enum pre_kind { P_BYTELEVEL, P_SPLIT, P_METASPACE } pre_kind;
typedef enum split_behavior { B_REMOVED, B_ISOLATED, B_PREVIOUS, B_NEXT, B_CONTIGUOUS } split_behavior;
typedef enum prepend_scheme { PS_ALWAYS, PS_FIRST, PS_NEVER } prepend_scheme;

/* A pattern: a literal string, or a regex (index into t->re). */
typedef struct pattern {
    char *lit;
    size_t lit_len;
    int re; /* -1: literal */
} pattern;

typedef struct norm_step {
    norm_kind kind;
    pattern pat;   /* Replace */
    char *content; /* Replace, Prepend */
    size_t content_len;
    int left, right; /* Strip */
} norm_step;

typedef struct pre_step {
    pre_kind kind;
    int add_prefix_space; /* ByteLevel */
    pattern pat;          /* Split (ByteLevel with use_regex: the GPT-2 regex) */
    int use_pat;
    split_behavior behavior;
    int invert;
    char repl[8]; /* Metaspace */
    size_t repl_len;
    prepend_scheme scheme;
    int split;
} pre_step;

typedef struct added {
    char *content;
    size_t len;
    uint32_t id;
    int normalized, lstrip, rstrip, single_word;
} added;

struct qid_tokenizer {
    char name[256];
    char sha256[65];
    char describe[256];
    norm_step norm[MAX_STEPS];
    int n_norm;
    pre_step pre[MAX_STEPS];
    int n_pre;
    pcre2_code *re[MAX_REGEX];
    int n_re;
    added *add;
    size_t n_add;
    tk_map added_map; /* content -> id */
    tk_map orig;      /* the model's vocabulary as written */
    tk_bpe bpe;
    int64_t vocab_size;
};

struct qid_tokenizer_state {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    tk_bpe_scratch *bpe;
    /* scratch strings */
    char *buf[3];
    size_t cap[3];
    struct piece {
        size_t off, len; /* in buf[2] */
        int at_start;
    } * pc[2];
    size_t pc_n[2], pc_cap[2];
};

/* ---- errors ----------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int tk_error(qid_error *err, const char *name, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    for (char *p = what; *p; p++) /* tokens and types quoted from the file stay on one line */
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return qid_error_set(err, QID_E_FORMAT, "invalid tokenizer '%s': %s", name, what);
}

/* ---- UTF-8 ------------------------------------------------------------------- */

size_t qid_utf8_valid_prefix(const char *str, size_t n)
{
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF)
            len = 2, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4, cp = c & 0x07, min = 0x10000;
        else
            return i;
        if (len > n - i) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += len;
    }
    return n;
}

static size_t u8len(uint8_t c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

static uint32_t u8dec(const char *s, size_t *len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t l = u8len(p[0]);
    uint32_t cp = l == 1 ? p[0] : l == 2 ? p[0] & 0x1F : l == 3 ? p[0] & 0x0F : p[0] & 0x07;
    for (size_t k = 1; k < l; k++)
        cp = cp << 6 | (p[k] & 0x3F);
    *len = l;
    return cp;
}

static size_t u8enc(uint32_t cp, char *out)
{
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
               out[2] = (char)(0x80 | (cp & 0x3F)), 3;
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Rust's char::is_whitespace (the White_Space property). */
static int is_ws(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int is_word_char(uint32_t c)
{
    if (c == '_') return 1;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* GPT-2's bytes_to_unicode: the code point standing for each byte. */
static uint32_t byte_char(int b)
{
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    int n = 0;
    for (int k = 0; k < b; k++)
        if (!((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF))) n++;
    return (uint32_t)(256 + n);
}

/* ---- scratch buffers ----------------------------------------------------------- */

static void buf_reserve(qid_tokenizer_state *s, int k, size_t n)
{
    if (n <= s->cap[k]) return;
    size_t c = s->cap[k] ? s->cap[k] : 4096;
    while (c < n)
        c *= 2;
    s->buf[k] = qid_realloc(s->buf[k], c, "tokenizer scratch");
    s->cap[k] = c;
}

/* Appends bytes to buf[2] (the piece arena); returns their offset. p may
 * point into the arena itself (it is found again after the arena grows). */
static size_t arena_add(qid_tokenizer_state *s, size_t *used, const char *p, size_t n)
{
    const char *base = s->buf[2];
    int inside = base && p >= base && p < base + s->cap[2];
    size_t at = inside ? (size_t)(p - base) : 0;
    buf_reserve(s, 2, *used + n + 1);
    if (inside) p = s->buf[2] + at;
    memcpy(s->buf[2] + *used, p, n);
    size_t off = *used;
    *used += n;
    return off;
}

static void piece_push(qid_tokenizer_state *s, int k, size_t off, size_t len, int at_start)
{
    if (len == 0) return;
    if (s->pc_n[k] == s->pc_cap[k]) {
        s->pc_cap[k] = s->pc_cap[k] ? s->pc_cap[k] * 2 : 256;
        s->pc[k] = qid_realloc(s->pc[k], qid_mul_size(s->pc_cap[k], sizeof *s->pc[k]), "tokenizer pieces");
    }
    s->pc[k][s->pc_n[k]++] = (struct piece){off, len, at_start};
}

/* ---- matching ---------------------------------------------------------------- */

/* The next match of pattern p in s[0, n) at or after from: 1 and [*a, *b),
 * 0 when none, -1 on a PCRE2 error (err set). Empty regex matches are
 * skipped. */
static int find_next(const qid_tokenizer *t, qid_tokenizer_state *st, const pattern *p, const char *s, size_t n,
                     size_t from, size_t *a, size_t *b, qid_error *err)
{
    if (p->re < 0) {
        if (p->lit_len == 0 || p->lit_len > n) return 0;
        for (size_t i = from; i + p->lit_len <= n; i++)
            if (s[i] == p->lit[0] && memcmp(s + i, p->lit, p->lit_len) == 0) {
                *a = i;
                *b = i + p->lit_len;
                return 1;
            }
        return 0;
    }
    while (from < n) {
        int rc = pcre2_match(t->re[p->re], (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, st->md, st->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            qid_error_set(err, QID_E_INVALID, "regex match failed: %s", (const char *)msg);
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->md);
        if (ov[1] > ov[0]) {
            *a = ov[0];
            *b = ov[1];
            return 1;
        }
        from = ov[0] + u8len((uint8_t)s[ov[0]]);
    }
    return 0;
}

/* ---- normalizers ------------------------------------------------------------------ */

/* Normalizes s[0, n) (in buf[k]) into buf[1 - k]; returns the new length
 * and sets *k to the buffer now holding it. */
static int normalize(const qid_tokenizer *t, qid_tokenizer_state *st, int *k, size_t n, size_t *out_n, qid_error *err)
{
    for (int i = 0; i < t->n_norm; i++) {
        const norm_step *ns = &t->norm[i];
        const char *s = st->buf[*k];
        int o = 1 - *k;
        size_t m = 0;
        switch (ns->kind) {
        case N_NFC:
        case N_NFD:
        case N_NFKC:
        case N_NFKD: {
            size_t j = 0;
            while (j < n && (uint8_t)s[j] < 0x80)
                j++;
            if (j == n) continue; /* ASCII is in every normal form */
            int opt = UTF8PROC_STABLE |
                      (ns->kind == N_NFC || ns->kind == N_NFKC ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) |
                      (ns->kind == N_NFKC || ns->kind == N_NFKD ? UTF8PROC_COMPAT : 0);
            utf8proc_uint8_t *dst = NULL;
            utf8proc_ssize_t r =
                utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, (utf8proc_option_t)opt);
            if (r < 0) return qid_error_set(err, QID_E_INVALID, "Unicode normalization failed: %s", utf8proc_errmsg(r));
            buf_reserve(st, o, (size_t)r + 1);
            memcpy(st->buf[o], dst, (size_t)r);
            free(dst);
            m = (size_t)r;
            break;
        }
        case N_LOWER: {
            buf_reserve(st, o, 2 * n + 8);
            for (size_t j = 0; j < n;) {
                size_t l;
                uint32_t c = u8dec(s + j, &l);
                if (c == 0x130) { /* the one unconditional multi-character lowercase mapping */
                    m += u8enc('i', st->buf[o] + m);
                    m += u8enc(0x307, st->buf[o] + m);
                } else {
                    m += u8enc((uint32_t)utf8proc_tolower((utf8proc_int32_t)c), st->buf[o] + m);
                }
                j += l;
            }
            break;
        }
        case N_REPLACE: {
            size_t from = 0, a, b;
            buf_reserve(st, o, n + 1);
            for (;;) {
                int r = find_next(t, st, &ns->pat, s, n, from, &a, &b, err);
                if (r < 0) return QID_E_INVALID;
                size_t end = r ? a : n;
                buf_reserve(st, o, m + (end - from) + ns->content_len + 1);
                s = st->buf[*k];
                memcpy(st->buf[o] + m, s + from, end - from);
                m += end - from;
                if (!r) break;
                memcpy(st->buf[o] + m, ns->content, ns->content_len);
                m += ns->content_len;
                from = b;
            }
            break;
        }
        case N_PREPEND:
            if (n == 0) continue;
            buf_reserve(st, o, n + ns->content_len + 1);
            memcpy(st->buf[o], ns->content, ns->content_len);
            memcpy(st->buf[o] + ns->content_len, s, n);
            m = n + ns->content_len;
            break;
        case N_STRIP: {
            size_t a = 0, b = n, l;
            while (ns->left && a < b && is_ws(u8dec(s + a, &l)))
                a += l;
            while (ns->right && b > a) {
                size_t p = b - 1;
                while (p > a && ((uint8_t)s[p] & 0xC0) == 0x80)
                    p--;
                if (!is_ws(u8dec(s + p, &l))) break;
                b = p;
            }
            buf_reserve(st, o, b - a + 1);
            memcpy(st->buf[o], s + a, b - a);
            m = b - a;
            break;
        }
        }
        *k = o;
        n = m;
    }
    *out_n = n;
    return QID_OK;
}

/* ---- added tokens ----------------------------------------------------------------- */

/* The leftmost-longest added token (of the normalized kind given) in
 * s[from, n): 1 with [*a, *b) (after lstrip/rstrip) and its id. */
static int find_added(const qid_tokenizer *t, int normalized, const char *s, size_t n, size_t from, size_t *a,
                      size_t *b, uint32_t *id)
{
    for (size_t i = from; i < n; i++) {
        const added *best = NULL;
        for (size_t k = 0; k < t->n_add; k++) {
            const added *x = &t->add[k];
            if (x->normalized != normalized || x->len > n - i || (best && x->len <= best->len)) continue;
            if (s[i] != x->content[0] || memcmp(s + i, x->content, x->len) != 0) continue;
            if (x->single_word) {
                size_t l;
                if (i > 0) {
                    size_t p = i - 1;
                    while (p > 0 && ((uint8_t)s[p] & 0xC0) == 0x80)
                        p--;
                    if (is_word_char(u8dec(s + p, &l))) continue;
                }
                if (i + x->len < n && is_word_char(u8dec(s + i + x->len, &l))) continue;
            }
            best = x;
        }
        if (!best) continue;
        size_t s0 = i, e0 = i + best->len, l;
        if (best->lstrip)
            while (s0 > from) {
                size_t p = s0 - 1;
                while (p > from && ((uint8_t)s[p] & 0xC0) == 0x80)
                    p--;
                if (!is_ws(u8dec(s + p, &l))) break;
                s0 = p;
            }
        if (best->rstrip)
            while (e0 < n && is_ws(u8dec(s + e0, &l)))
                e0 += l;
        *a = s0;
        *b = e0;
        *id = best->id;
        return 1;
    }
    return 0;
}

/* ---- pre-tokenizers ----------------------------------------------------------------- */

typedef struct span {
    size_t a, b;
    int match;
} span;

/* Splits piece p (list src) by a pattern with a behaviour into list dst. */
static int split_piece(const qid_tokenizer *t, qid_tokenizer_state *st, const pre_step *ps, const struct piece *p,
                       int dst, qid_error *err)
{
    const char *s = st->buf[2] + p->off;
    size_t n = p->len, from = 0, a, b;
    int first = 1;
#define EMIT(x)                                                                                                        \
    do {                                                                                                               \
        piece_push(st, dst, p->off + (x).a, (x).b - (x).a, p->at_start && first);                                      \
        first = 0;                                                                                                     \
    } while (0)
    /* The spans (matches and the gaps between them, in order) are folded
     * left to right as tokenizers' split behaviours fold them, keeping one
     * pending span. */
    span pend = {0, 0, 0};
    int have = 0, prev_match = 0;
    span next_pending = {0, 0, 0};
    int have_next = 0; /* MergedWithNext: a match waiting to be prepended to the next span */
    for (;;) {
        int r = find_next(t, st, &ps->pat, s, n, from, &a, &b, err);
        if (r < 0) return QID_E_INVALID;
        span sp[2];
        int ns = 0;
        if (!r) a = b = n;
        if (a > from) sp[ns++] = (span){from, a, ps->invert};
        if (r) sp[ns++] = (span){a, b, !ps->invert};
        for (int k = 0; k < ns; k++) {
            span x = sp[k];
            switch (ps->behavior) {
            case B_REMOVED:
                if (!x.match) EMIT(x);
                break;
            case B_ISOLATED: EMIT(x); break;
            case B_PREVIOUS:
                if (x.match && !prev_match && have) {
                    pend.b = x.b;
                } else {
                    if (have) EMIT(pend);
                    pend = x;
                    have = 1;
                }
                break;
            case B_NEXT:
                if (x.match && !have_next) {
                    next_pending = x;
                    have_next = 1;
                } else if (have_next) {
                    if (x.match) { /* a match after a match: the first stands alone */
                        EMIT(next_pending);
                        next_pending = x;
                    } else {
                        x.a = next_pending.a;
                        EMIT(x);
                        have_next = 0;
                    }
                } else {
                    EMIT(x);
                }
                break;
            case B_CONTIGUOUS:
                if (have && x.match == prev_match) {
                    pend.b = x.b;
                } else {
                    if (have) EMIT(pend);
                    pend = x;
                    have = 1;
                }
                break;
            }
            prev_match = x.match;
        }
        if (!r) break;
        from = b;
    }
    if ((ps->behavior == B_PREVIOUS || ps->behavior == B_CONTIGUOUS) && have) EMIT(pend);
    if (ps->behavior == B_NEXT && have_next) EMIT(next_pending);
#undef EMIT
    return QID_OK;
}

/* Runs the pre-tokenizers over list 0 (pieces in the arena); the words end in
 * list *cur. */
static int pretokenize(const qid_tokenizer *t, qid_tokenizer_state *st, size_t *used, int *cur, qid_error *err)
{
    for (int i = 0; i < t->n_pre; i++) {
        const pre_step *ps = &t->pre[i];
        int src = *cur, dst = 1 - src;
        st->pc_n[dst] = 0;
        for (size_t j = 0; j < st->pc_n[src]; j++) {
            struct piece p = st->pc[src][j];
            if (ps->kind == P_BYTELEVEL && ps->add_prefix_space && st->buf[2][p.off] != ' ') {
                size_t off = arena_add(st, used, " ", 1);
                arena_add(st, used, st->buf[2] + p.off, p.len);
                p.off = off;
                p.len++;
            } else if (ps->kind == P_METASPACE) {
                size_t off = *used;
                int pre = ps->scheme == PS_ALWAYS || (ps->scheme == PS_FIRST && p.at_start);
                const char *s = st->buf[2] + p.off;
                if (pre && !(p.len >= ps->repl_len && memcmp(s, ps->repl, ps->repl_len) == 0) && s[0] != ' ')
                    arena_add(st, used, ps->repl, ps->repl_len);
                for (size_t q = 0; q < p.len; q++) {
                    s = st->buf[2] + p.off;
                    if (s[q] == ' ')
                        arena_add(st, used, ps->repl, ps->repl_len);
                    else
                        arena_add(st, used, s + q, 1);
                }
                p.off = off;
                p.len = *used - off;
            }
            if (ps->use_pat) {
                int rc = split_piece(t, st, ps, &p, dst, err);
                if (rc) return rc;
            } else {
                piece_push(st, dst, p.off, p.len, p.at_start);
            }
        }
        *cur = dst;
    }
    return QID_OK;
}

/* One piece of normalized text (buf[k][0, n)) without added tokens: pre-tokenize, BPE. */
static int encode_plain(const qid_tokenizer *t, qid_tokenizer_state *st, const char *s, size_t n, int at_start,
                        tk_ids *out, qid_error *err)
{
    size_t used = 0;
    st->pc_n[0] = st->pc_n[1] = 0;
    size_t off = arena_add(st, &used, s, n);
    piece_push(st, 0, off, n, at_start);
    int cur = 0, rc = pretokenize(t, st, &used, &cur, err);
    if (rc) return rc;
    for (size_t j = 0; j < st->pc_n[cur]; j++) {
        const struct piece *p = &st->pc[cur][j];
        tk_bpe_encode_word(&t->bpe, st->bpe, st->buf[2] + p->off, p->len, out);
    }
    return QID_OK;
}

/* A piece of raw text between non-normalized added tokens. */
static int encode_segment(const qid_tokenizer *t, qid_tokenizer_state *st, const char *s, size_t n, int at_start,
                          tk_ids *out, qid_error *err)
{
    if (n == 0) return QID_OK;
    buf_reserve(st, 0, n + 1);
    memcpy(st->buf[0], s, n);
    int k = 0;
    size_t m = n;
    int rc = normalize(t, st, &k, n, &m, err);
    if (rc) return rc;
    /* the normalized text moves out of the scratch buffers: encode_plain uses them */
    char *norm = qid_malloc(m + 1, "normalized text");
    memcpy(norm, st->buf[k], m);
    size_t from = 0, a, b;
    uint32_t id;
    int first = 1;
    while (from < m || first) {
        int r = find_added(t, 1, norm, m, from, &a, &b, &id);
        size_t end = r ? a : m;
        if (end > from) rc = encode_plain(t, st, norm + from, end - from, at_start && from == 0, out, err);
        if (rc) break;
        first = 0;
        if (!r) break;
        tk_ids_push(out, id);
        from = b;
    }
    free(norm);
    return rc;
}

int qid_tokenizer_encode(const qid_tokenizer *t, qid_tokenizer_state *st, const char *text, size_t len,
                         qid_token_ids *out, qid_error *err)
{
    size_t from = 0, a, b;
    uint32_t id;
    while (from < len) {
        int r = find_added(t, 0, text, len, from, &a, &b, &id);
        size_t end = r ? a : len;
        int rc = encode_segment(t, st, text + from, end - from, from == 0, out, err);
        if (rc) return rc;
        if (!r) break;
        tk_ids_push(out, id);
        from = b;
    }
    return QID_OK;
}

/* ---- state -------------------------------------------------------------------------- */

qid_tokenizer_state *qid_tokenizer_state_new(const qid_tokenizer *t)
{
    qid_tokenizer_state *s = qid_calloc(1, sizeof *s, "tokenizer state");
    s->md = pcre2_match_data_create(1, NULL);
    s->mctx = pcre2_match_context_create(NULL);
    s->jit = pcre2_jit_stack_create(32 << 10, 16 << 20, NULL);
    if (!s->md || !s->mctx || !s->jit) qid_die("cannot allocate PCRE2 match data");
    pcre2_jit_stack_assign(s->mctx, NULL, s->jit);
    s->bpe = tk_bpe_scratch_new();
    (void)t;
    return s;
}

void qid_tokenizer_state_free(qid_tokenizer_state *s)
{
    if (!s) return;
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->jit);
    tk_bpe_scratch_free(s->bpe);
    for (int k = 0; k < 3; k++)
        free(s->buf[k]);
    free(s->pc[0]);
    free(s->pc[1]);
    free(s);
}

/* ---- loading ------------------------------------------------------------------------ */

static const cJSON *jget(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

static int jbool(const cJSON *o, const char *key, int dflt)
{
    const cJSON *v = jget(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = jget(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int add_regex(qid_tokenizer *t, const char *src, int *index, qid_error *err)
{
    if (t->n_re == MAX_REGEX) return tk_error(err, t->name, "more than %d regexes", MAX_REGEX);
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return tk_error(err, t->name, "regex '%.80s' does not compile at offset %zu: %s", src, (size_t)eo,
                        (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT (an error here) the interpreter runs it */
    t->re[t->n_re] = re;
    *index = t->n_re++;
    return QID_OK;
}

/* {"String": "..."} or {"Regex": "..."} */
static int load_pattern(qid_tokenizer *t, const cJSON *o, const char *what, pattern *p, qid_error *err)
{
    const char *lit = jstr(o, "String"), *re = jstr(o, "Regex");
    p->re = -1;
    if (lit) {
        p->lit = qid_strdup(lit);
        p->lit_len = strlen(lit);
        return QID_OK;
    }
    if (re) return add_regex(t, re, &p->re, err);
    return tk_error(err, t->name, "%s has no \"String\" or \"Regex\" pattern", what);
}

static int load_normalizer(qid_tokenizer *t, const cJSON *o, int depth, qid_error *err)
{
    if (!o || cJSON_IsNull(o)) return QID_OK;
    const char *type = jstr(o, "type");
    if (!type) return tk_error(err, t->name, "a normalizer without a \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = jget(o, "normalizers"), *x;
        if (!cJSON_IsArray(list) || depth > 4) return tk_error(err, t->name, "a Sequence normalizer without a list");
        cJSON_ArrayForEach(x, list)
        {
            int rc = load_normalizer(t, x, depth + 1, err);
            if (rc) return rc;
        }
        return QID_OK;
    }
    if (t->n_norm == MAX_STEPS) return tk_error(err, t->name, "more than %d normalizers", MAX_STEPS);
    norm_step *ns = &t->norm[t->n_norm];
    memset(ns, 0, sizeof *ns);
    ns->pat.re = -1;
    static const struct {
        const char *name;
        norm_kind kind;
    } simple[] = {{"NFC", N_NFC}, {"NFD", N_NFD}, {"NFKC", N_NFKC}, {"NFKD", N_NFKD}, {"Lowercase", N_LOWER}};
    for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++)
        if (strcmp(type, simple[k].name) == 0) {
            ns->kind = simple[k].kind;
            t->n_norm++;
            return QID_OK;
        }
    if (strcmp(type, "Replace") == 0 || strcmp(type, "Prepend") == 0) {
        int rep = type[0] == 'R';
        const char *c = jstr(o, rep ? "content" : "prepend");
        if (!c) return tk_error(err, t->name, "a %s normalizer without \"%s\"", type, rep ? "content" : "prepend");
        ns->kind = rep ? N_REPLACE : N_PREPEND;
        ns->content = qid_strdup(c);
        ns->content_len = strlen(c);
        t->n_norm++;
        if (rep) return load_pattern(t, jget(o, "pattern"), "a Replace normalizer", &ns->pat, err);
        return QID_OK;
    }
    if (strcmp(type, "Strip") == 0) {
        ns->kind = N_STRIP;
        ns->left = jbool(o, "strip_left", 1);
        ns->right = jbool(o, "strip_right", 1);
        t->n_norm++;
        return QID_OK;
    }
    return tk_error(err, t->name,
                    "normalizer '%.40s' is not supported (qid runs NFC, NFD, NFKC, NFKD, Lowercase, "
                    "Replace, Prepend, Strip and Sequence)",
                    type);
}

static int load_pre(qid_tokenizer *t, const cJSON *o, int depth, int *byte_level, qid_error *err)
{
    if (!o || cJSON_IsNull(o)) return QID_OK;
    const char *type = jstr(o, "type");
    if (!type) return tk_error(err, t->name, "a pre-tokenizer without a \"type\"");
    if (*byte_level) return tk_error(err, t->name, "a pre-tokenizer after ByteLevel (qid runs ByteLevel last)");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = jget(o, "pretokenizers"), *x;
        if (!cJSON_IsArray(list) || depth > 4) return tk_error(err, t->name, "a Sequence pre-tokenizer without a list");
        cJSON_ArrayForEach(x, list)
        {
            int rc = load_pre(t, x, depth + 1, byte_level, err);
            if (rc) return rc;
        }
        return QID_OK;
    }
    if (t->n_pre == MAX_STEPS) return tk_error(err, t->name, "more than %d pre-tokenizers", MAX_STEPS);
    pre_step *ps = &t->pre[t->n_pre];
    memset(ps, 0, sizeof *ps);
    ps->pat.re = -1;
    if (strcmp(type, "ByteLevel") == 0) {
        ps->kind = P_BYTELEVEL;
        ps->add_prefix_space = jbool(o, "add_prefix_space", 1);
        if (jbool(o, "use_regex", 1)) {
            ps->use_pat = 1;
            ps->behavior = B_ISOLATED;
            int rc = add_regex(t, gpt2_pattern, &ps->pat.re, err);
            if (rc) return rc;
        }
        *byte_level = 1;
    } else if (strcmp(type, "Split") == 0) {
        static const struct {
            const char *name;
            split_behavior b;
        } beh[] = {{"Removed", B_REMOVED},
                   {"Isolated", B_ISOLATED},
                   {"MergedWithPrevious", B_PREVIOUS},
                   {"MergedWithNext", B_NEXT},
                   {"Contiguous", B_CONTIGUOUS}};
        const char *b = jstr(o, "behavior");
        size_t k = 0, nb = sizeof beh / sizeof beh[0];
        while (b && k < nb && strcmp(b, beh[k].name) != 0)
            k++;
        if (!b || k == nb) return tk_error(err, t->name, "a Split pre-tokenizer with behavior '%.40s'", b ? b : "");
        ps->kind = P_SPLIT;
        ps->behavior = beh[k].b;
        ps->invert = jbool(o, "invert", 0);
        ps->use_pat = 1;
        int rc = load_pattern(t, jget(o, "pattern"), "a Split pre-tokenizer", &ps->pat, err);
        if (rc) return rc;
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *r = jstr(o, "replacement"), *scheme = jstr(o, "prepend_scheme");
        if (!r || !r[0] || strlen(r) >= sizeof ps->repl || u8len((uint8_t)r[0]) != strlen(r))
            return tk_error(err, t->name, "a Metaspace pre-tokenizer whose replacement is not one character");
        ps->kind = P_METASPACE;
        memcpy(ps->repl, r, strlen(r) + 1);
        ps->repl_len = strlen(r);
        int sc = PS_ALWAYS;
        if (scheme)
            sc = strcmp(scheme, "always") == 0  ? PS_ALWAYS
                 : strcmp(scheme, "first") == 0 ? PS_FIRST
                 : strcmp(scheme, "never") == 0 ? PS_NEVER
                                                : -1;
        else
            sc = jbool(o, "add_prefix_space", 1) ? PS_ALWAYS : PS_NEVER;
        if (sc < 0)
            return tk_error(err, t->name, "Metaspace prepend_scheme '%.20s' is not always, first or never", scheme);
        ps->scheme = (prepend_scheme)sc;
        ps->split = jbool(o, "split", 1);
        if (ps->split) {
            ps->use_pat = 1;
            ps->behavior = B_NEXT;
            ps->pat.lit = qid_strdup(r);
            ps->pat.lit_len = strlen(r);
        }
    } else if (strcmp(type, "Digits") == 0) {
        ps->kind = P_SPLIT;
        ps->use_pat = 1;
        ps->behavior = B_ISOLATED;
        int rc = add_regex(t, jbool(o, "individual_digits", 0) ? "\\p{N}" : "\\p{N}+", &ps->pat.re, err);
        if (rc) return rc;
    } else {
        return tk_error(err, t->name,
                        "pre-tokenizer '%.40s' is not supported (qid runs ByteLevel, Split, Metaspace, Digits and "
                        "Sequence)",
                        type);
    }
    t->n_pre++;
    return QID_OK;
}

static const tk_map *orig_vocab(const qid_tokenizer *t) { return t->bpe.byte_level ? &t->orig : &t->bpe.vocab; }

/* The byte-level alphabet's inverse: code point -> byte, -1 outside it. */
static void byte_inverse(int16_t inv[324])
{
    for (int c = 0; c < 324; c++)
        inv[c] = -1;
    for (int b = 0; b < 256; b++)
        inv[byte_char(b)] = (int16_t)b;
}

static int load_vocab(qid_tokenizer *t, const cJSON *model, qid_error *err)
{
    const cJSON *vocab = jget(model, "vocab"), *x;
    if (!cJSON_IsObject(vocab)) return tk_error(err, t->name, "model has no \"vocab\" object");
    int16_t inv[324];
    byte_inverse(inv);
    char *raw = NULL;
    size_t raw_cap = 0;
    tk_map *orig = t->bpe.byte_level ? &t->orig : &t->bpe.vocab;
    cJSON_ArrayForEach(x, vocab)
    {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > INT32_MAX ||
            x->valuedouble != (double)(int64_t)x->valuedouble) {
            free(raw);
            return tk_error(err, t->name, "vocabulary entry '%.40s' has no id in 0..2147483647", x->string);
        }
        uint32_t id = (uint32_t)x->valuedouble;
        size_t n = strlen(x->string);
        if (qid_utf8_valid_prefix(x->string, n) != n) {
            free(raw);
            return tk_error(err, t->name, "vocabulary entry %" PRIu32 " is not valid UTF-8", id);
        }
        if (tk_map_put(orig, x->string, n, id)) {
            free(raw);
            return tk_error(err, t->name, "vocabulary entry '%.40s' appears twice", x->string);
        }
        if ((int64_t)id + 1 > t->vocab_size) t->vocab_size = (int64_t)id + 1;
        if (!t->bpe.byte_level) continue;
        /* byte-level: the raw bytes the token stands for (tokens outside the alphabet cannot be produced) */
        if (n + 1 > raw_cap) {
            raw_cap = 2 * n + 16;
            raw = qid_realloc(raw, raw_cap, "a vocabulary entry");
        }
        size_t m = 0, l;
        int ok = 1;
        for (size_t i = 0; i < n && ok; i += l) {
            uint32_t c = u8dec(x->string + i, &l);
            if (c >= 324 || inv[c] < 0)
                ok = 0;
            else
                raw[m++] = (char)inv[c];
        }
        if (ok) tk_map_put(&t->bpe.vocab, raw, m, id);
    }
    free(raw);
    return QID_OK;
}

static int load_merges(qid_tokenizer *t, const cJSON *model, qid_error *err)
{
    const cJSON *merges = jget(model, "merges"), *x;
    if (!cJSON_IsArray(merges)) return tk_error(err, t->name, "model has no \"merges\" list");
    const tk_map *orig = orig_vocab(t);
    char *cat = NULL;
    size_t cat_cap = 0;
    uint32_t rank = 0;
    cJSON_ArrayForEach(x, merges)
    {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(x)) {
            const char *sp = strchr(x->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                free(cat);
                return tk_error(err, t->name, "merge %" PRIu32 " '%.40s' is not two tokens separated by a space", rank,
                                x->valuestring);
            }
            a = x->valuestring;
            la = (size_t)(sp - a);
            b = sp + 1;
            lb = strlen(b);
        } else if (cJSON_IsArray(x) && cJSON_GetArraySize(x) == 2 && cJSON_IsString(cJSON_GetArrayItem(x, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(x, 1))) {
            a = cJSON_GetArrayItem(x, 0)->valuestring;
            b = cJSON_GetArrayItem(x, 1)->valuestring;
            la = strlen(a);
            lb = strlen(b);
        } else {
            free(cat);
            return tk_error(err, t->name, "merge %" PRIu32 " is neither \"a b\" nor [\"a\", \"b\"]", rank);
        }
        if (la + lb + 1 > cat_cap) {
            cat_cap = 2 * (la + lb) + 16;
            cat = qid_realloc(cat, cat_cap, "a merge");
        }
        memcpy(cat, a, la);
        memcpy(cat + la, b, lb);
        int64_t ia = tk_map_get(orig, a, la), ib = tk_map_get(orig, b, lb), im = tk_map_get(orig, cat, la + lb);
        if (ia < 0 || ib < 0 || im < 0) {
            cat[la + lb] = '\0';
            int rc = tk_error(err, t->name, "merge %" PRIu32 " makes '%.40s' from tokens%s not in the vocabulary", rank,
                              cat, im < 0 ? " or a result" : "");
            free(cat);
            return rc;
        }
        tk_bpe_add_merge(&t->bpe, (uint32_t)ia, (uint32_t)ib, rank, (uint32_t)im);
        rank++;
    }
    free(cat);
    return QID_OK;
}

static int load_model(qid_tokenizer *t, const cJSON *model, qid_error *err)
{
    if (!cJSON_IsObject(model)) return tk_error(err, t->name, "no \"model\" object");
    const char *type = jstr(model, "type");
    if (type ? strcmp(type, "BPE") != 0 : !jget(model, "merges"))
        return tk_error(err, t->name, "model type '%.40s' is not supported (qid runs BPE models)", type ? type : "?");
    const cJSON *drop = jget(model, "dropout");
    if (cJSON_IsNumber(drop) && drop->valuedouble != 0)
        return tk_error(err, t->name, "BPE dropout %g is random at encoding time; qid runs deterministic BPE",
                        drop->valuedouble);
    const char *pre = jstr(model, "continuing_subword_prefix"), *suf = jstr(model, "end_of_word_suffix");
    if ((pre && pre[0]) || (suf && suf[0]))
        return tk_error(err, t->name, "continuing_subword_prefix and end_of_word_suffix are not supported");
    t->bpe.byte_fallback = jbool(model, "byte_fallback", 0);
    t->bpe.fuse_unk = jbool(model, "fuse_unk", 0);
    t->bpe.ignore_merges = jbool(model, "ignore_merges", 0);
    int rc = load_vocab(t, model, err);
    if (!rc) rc = load_merges(t, model, err);
    if (rc) return rc;
    const char *unk = jstr(model, "unk_token");
    t->bpe.unk_id = -1;
    if (unk && (t->bpe.unk_id = tk_map_get(orig_vocab(t), unk, strlen(unk))) < 0)
        return tk_error(err, t->name, "unk_token '%.40s' is not in the vocabulary", unk);
    for (int b = 0; b < 256; b++) {
        char key[16];
        size_t n;
        if (t->bpe.byte_level) {
            key[0] = (char)b;
            t->bpe.byte_id[b] = tk_map_get(&t->bpe.vocab, key, 1);
        } else {
            n = (size_t)snprintf(key, sizeof key, "<0x%02X>", b);
            t->bpe.byte_id[b] = t->bpe.byte_fallback ? tk_map_get(&t->bpe.vocab, key, n) : -1;
        }
    }
    return QID_OK;
}

static int load_added(qid_tokenizer *t, const cJSON *list, qid_error *err)
{
    if (!list || cJSON_IsNull(list)) return QID_OK;
    if (!cJSON_IsArray(list)) return tk_error(err, t->name, "\"added_tokens\" is not a list");
    size_t n = (size_t)cJSON_GetArraySize(list), k = 0;
    t->add = qid_calloc(n ? n : 1, sizeof *t->add, "added tokens");
    qid_tokenizer_state *st = qid_tokenizer_state_new(t);
    const cJSON *x;
    int rc = QID_OK;
    cJSON_ArrayForEach(x, list)
    {
        const char *c = jstr(x, "content");
        const cJSON *id = jget(x, "id");
        if (!c || !c[0] || !cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > INT32_MAX ||
            id->valuedouble != (double)(int64_t)id->valuedouble || qid_utf8_valid_prefix(c, strlen(c)) != strlen(c)) {
            rc = tk_error(err, t->name, "added token %zu has no content or no id in 0..2147483647", k);
            break;
        }
        added *a = &t->add[k++];
        a->id = (uint32_t)id->valuedouble;
        a->normalized = jbool(x, "normalized", !jbool(x, "special", 0));
        a->lstrip = jbool(x, "lstrip", 0);
        a->rstrip = jbool(x, "rstrip", 0);
        a->single_word = jbool(x, "single_word", 0);
        size_t len = strlen(c);
        if (a->normalized) { /* matched in normalized text: its content is normalized too, as tokenizers does */
            buf_reserve(st, 0, len + 1);
            memcpy(st->buf[0], c, len);
            int b = 0;
            rc = normalize(t, st, &b, len, &len, err);
            if (rc) break;
            a->content = qid_malloc(len + 1, "an added token");
            memcpy(a->content, st->buf[b], len);
            a->content[len] = '\0';
        } else {
            a->content = qid_strdup(c);
        }
        a->len = len;
        tk_map_put(&t->added_map, c, strlen(c), a->id);
        if ((int64_t)a->id + 1 > t->vocab_size) t->vocab_size = (int64_t)a->id + 1;
        if (a->len == 0) k--; /* normalized away: never matches */
    }
    t->n_add = k;
    qid_tokenizer_state_free(st);
    return rc;
}

static void describe(qid_tokenizer *t)
{
    static const char *nn[] = {"NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Replace", "Prepend", "Strip"};
    static const char *pn[] = {"ByteLevel", "Split", "Metaspace"};
    char steps[160] = "";
    size_t m = 0;
    for (int i = 0; i < t->n_norm && m < sizeof steps; i++)
        m += (size_t)snprintf(steps + m, sizeof steps - m, "%s%s", i ? ", " : "", nn[t->norm[i].kind]);
    if (m < sizeof steps && t->n_norm && t->n_pre) m += (size_t)snprintf(steps + m, sizeof steps - m, "; ");
    for (int i = 0; i < t->n_pre && m < sizeof steps; i++)
        m += (size_t)snprintf(steps + m, sizeof steps - m, "%s%s", i ? ", " : "", pn[t->pre[i].kind]);
    snprintf(t->describe, sizeof t->describe, "%s (%s), %" PRId64 " ids, %zu merges, %zu added tokens",
             t->bpe.byte_level      ? "byte-level BPE"
             : t->bpe.byte_fallback ? "BPE with byte fallback"
                                    : "BPE",
             m ? steps : "no normalizer or pre-tokenizer", t->vocab_size, t->bpe.n_merges, t->n_add);
}

int qid_tokenizer_parse(const char *json, size_t len, const char *name, qid_tokenizer **out, qid_error *err)
{
    *out = NULL;
    qid_tokenizer *t = qid_calloc(1, sizeof *t, "a tokenizer");
    snprintf(t->name, sizeof t->name, "%s", name);
    t->bpe.unk_id = -1;
    cJSON *root = cJSON_ParseWithLength(json, len);
    int rc;
    if (!root || !cJSON_IsObject(root)) {
        rc = tk_error(err, t->name, "not a JSON object%s", root ? "" : " (malformed JSON)");
        goto done;
    }
    int byte_level = 0;
    rc = load_normalizer(t, jget(root, "normalizer"), 0, err);
    if (!rc) rc = load_pre(t, jget(root, "pre_tokenizer"), 0, &byte_level, err);
    t->bpe.byte_level = byte_level;
    if (!rc) rc = load_model(t, jget(root, "model"), err);
    if (!rc) rc = load_added(t, jget(root, "added_tokens"), err);
    if (!rc && t->vocab_size == 0) rc = tk_error(err, t->name, "empty vocabulary");
done:
    cJSON_Delete(root);
    if (rc) {
        qid_tokenizer_free(t);
        return rc;
    }
    describe(t);
    *out = t;
    return QID_OK;
}

int qid_tokenizer_load(const char *path, qid_tokenizer **out, qid_error *err)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = qid_read_text_file(path, QID_TOKENIZER_MAX_BYTES, &text, &len, err);
    if (rc) return rc;
    rc = qid_tokenizer_parse(text, len, path, out, err);
    if (!rc) {
        qid_sha256 h;
        uint8_t d[32];
        qid_sha256_init(&h);
        qid_sha256_update(&h, text, len);
        qid_sha256_final(&h, d);
        qid_sha256_hex(d, (*out)->sha256);
    }
    free(text);
    return rc;
}

void qid_tokenizer_free(qid_tokenizer *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].pat.lit);
        free(t->norm[i].content);
    }
    for (int i = 0; i < t->n_pre; i++)
        free(t->pre[i].pat.lit);
    for (int i = 0; i < t->n_re; i++)
        pcre2_code_free(t->re[i]);
    for (size_t i = 0; i < t->n_add; i++)
        free(t->add[i].content);
    free(t->add);
    tk_map_free(&t->added_map);
    tk_map_free(&t->orig);
    tk_bpe_free(&t->bpe);
    free(t);
}

int64_t qid_tokenizer_vocab_size(const qid_tokenizer *t) { return t->vocab_size; }

int64_t qid_tokenizer_token_id(const qid_tokenizer *t, const char *content)
{
    int64_t id = tk_map_get(&t->added_map, content, strlen(content));
    return id >= 0 ? id : tk_map_get(orig_vocab(t), content, strlen(content));
}

const char *qid_tokenizer_sha256(const qid_tokenizer *t) { return t->sha256; }
const char *qid_tokenizer_describe(const qid_tokenizer *t) { return t->describe; }
