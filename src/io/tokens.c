/* tokens.c - the qid token set (hdf5-schema/tokens.md): the writer behind
 * `qid tokens` (cmd_tokens.c) imports token ids from raw uint16/uint32
 * files, NumPy .npy arrays or the bytes of any file into fixed-length
 * windows in HDF5, and the reader hands windows to the evaluator as uint32.
 *
 * The source is streamed in blocks of whole windows (one HDF5 chunk at a
 * time), hashed with SHA-256 as it is read, and every id is checked against
 * the vocabulary. The .npy header is untrusted input and is parsed from a
 * memory buffer (qid_tokens_npy_parse, also the fuzz target's entry point).
 *
 * Ids may also come from a feed (megatron.c, text_tokens.c): read in the
 * same blocks, checked against the vocabulary the same way.
 *
 * Does not: tokenize text (tokenizer.c does), read big-endian or Fortran-ordered arrays, do parallel I/O,
 * or read the command line. */
#include "tokens.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "h5io.h"
#include "sha256.h"

#ifndef QID_VERSION
#define QID_VERSION "0.0.0"
#endif

/* HDF5 chunks hold whole windows: at most this many, and about this many bytes. */
#define CHUNK_MAX_WINDOWS  64
#define CHUNK_TARGET_BYTES ((size_t)1 << 20)

/* ---- .npy header --------------------------------------------------------- */

static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static const struct {
    char code[3];
    size_t size;
    int is_signed;
} npy_types[] = {
    {"u1", 1, 0}, {"i1", 1, 1}, {"u2", 2, 0}, {"i2", 2, 1}, {"u4", 4, 0}, {"i4", 4, 1}, {"u8", 8, 0}, {"i8", 8, 1},
};

static int host_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Sets err to "invalid .npy file '<name>': <formatted text>"; returns QID_E_FORMAT. */
__attribute__((format(printf, 3, 4))) static int npy_error(qid_error *err, const char *name, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return qid_error_set(err, QID_E_FORMAT, "invalid .npy file '%s': %s", name, what);
}

/* A cursor over the header dictionary text. */
typedef struct cursor {
    const uint8_t *s;
    size_t n, i;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' || c->s[c->i] == '\r'))
        c->i++;
}

static int peek(cursor *c)
{
    skip_ws(c);
    return c->i < c->n ? c->s[c->i] : -1;
}

/* Consumes ch after optional whitespace; 1 if it was there. */
static int accept(cursor *c, int ch)
{
    if (peek(c) != ch) return 0;
    c->i++;
    return 1;
}

/* A '...' or "..." literal without escapes into out (cap bytes with NUL);
 * 0 on success, -1 when not a string, -2 when longer than cap - 1. */
static int parse_string(cursor *c, char *out, size_t cap)
{
    int q = peek(c);
    if (q != '\'' && q != '"') return -1;
    size_t start = ++c->i;
    while (c->i < c->n && c->s[c->i] != q) {
        if (c->s[c->i] == '\\' || c->s[c->i] == '\n') return -1;
        c->i++;
    }
    if (c->i >= c->n) return -1;
    size_t len = c->i - start;
    c->i++;
    if (len >= cap) return -2;
    memcpy(out, c->s + start, len);
    out[len] = '\0';
    return 0;
}

/* A non-negative decimal integer (an 'L' suffix as Python 2 wrote it is
 * allowed); 0 on success, -1 when not a number, -2 on overflow. */
static int parse_uint(cursor *c, uint64_t *v)
{
    int ch = peek(c);
    if (ch < '0' || ch > '9') return -1;
    uint64_t x = 0;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') {
        unsigned d = (unsigned)(c->s[c->i] - '0');
        if (x > (UINT64_MAX - d) / 10) return -2;
        x = x * 10 + d;
        c->i++;
    }
    if (c->i < c->n && c->s[c->i] == 'L') c->i++;
    *v = x;
    return 0;
}

/* True or False; 0/1 in *v, -1 when neither. */
static int parse_bool(cursor *c, int *v)
{
    skip_ws(c);
    size_t left = c->n - c->i;
    if (left >= 4 && memcmp(c->s + c->i, "True", 4) == 0) {
        c->i += 4;
        *v = 1;
        return 0;
    }
    if (left >= 5 && memcmp(c->s + c->i, "False", 5) == 0) {
        c->i += 5;
        *v = 0;
        return 0;
    }
    return -1;
}

static int npy_descr(const char *descr, const char *name, qid_tokens_npy *npy, qid_error *err)
{
    static const char known[] = "u1, i1, u2, i2, u4, i4, u8, i8";
    size_t k = 0, nt = sizeof npy_types / sizeof npy_types[0];
    if (strlen(descr) == 3)
        for (k = 0; k < nt; k++)
            if (strcmp(descr + 1, npy_types[k].code) == 0) break;
    if (strlen(descr) != 3 || k == nt || !strchr("<>=|!", descr[0]))
        return npy_error(err, name, "dtype '%s' is not an integer token type (qid reads %s, little-endian)", descr,
                         known);
    size_t size = npy_types[k].size;
    char order = descr[0];
    if ((order == '>' || order == '!' || (order == '=' && !host_little_endian())) && size > 1)
        return npy_error(err, name, "big-endian dtype '%s' is not supported (convert it with numpy: a.astype('<%s'))",
                         descr, npy_types[k].code);
    if (order == '|' && size > 1)
        return npy_error(err, name, "dtype '%s' has no byte order ('|' is for 1-byte types; expected '<%s')", descr,
                         npy_types[k].code);
    snprintf(npy->descr, sizeof npy->descr, "%s", descr);
    npy->elem_size = size;
    npy->is_signed = npy_types[k].is_signed;
    return QID_OK;
}

/* Parses the dictionary text h[0, n) into npy. */
static int npy_dict(const uint8_t *h, size_t n, const char *name, qid_tokens_npy *npy, qid_error *err)
{
    cursor c = {h, n, 0};
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0, rc;
    char descr[16] = "";
    if (!accept(&c, '{')) return npy_error(err, name, "header is not a Python dict literal (no '{')");
    while (!accept(&c, '}')) {
        char key[32];
        size_t at = c.i;
        rc = parse_string(&c, key, sizeof key);
        if (rc == -2) return npy_error(err, name, "unexpected long key in the header at byte %zu", at);
        if (rc) return npy_error(err, name, "expected a quoted key or '}' in the header at byte %zu", c.i);
        if (!accept(&c, ':')) return npy_error(err, name, "expected ':' after '%s' in the header", key);
        if (strcmp(key, "descr") == 0) {
            if (have_descr++) return npy_error(err, name, "header repeats 'descr'");
            rc = parse_string(&c, descr, sizeof descr);
            if (rc == -2) return npy_error(err, name, "dtype descr is too long to be an integer type");
            if (rc) return npy_error(err, name, "descr is not a string (structured dtypes are not supported)");
        } else if (strcmp(key, "fortran_order") == 0) {
            if (have_fortran++) return npy_error(err, name, "header repeats 'fortran_order'");
            if (parse_bool(&c, &fortran)) return npy_error(err, name, "fortran_order is not True or False");
        } else if (strcmp(key, "shape") == 0) {
            if (have_shape++) return npy_error(err, name, "header repeats 'shape'");
            if (!accept(&c, '(')) return npy_error(err, name, "shape is not a tuple");
            int ndim = 0, trailing_comma = 0;
            while (!accept(&c, ')')) {
                uint64_t v = 0;
                rc = parse_uint(&c, &v);
                if (rc == -2) return npy_error(err, name, "shape dimension overflows 64 bits");
                if (rc) return npy_error(err, name, "shape is not a tuple of non-negative integers");
                if (ndim >= 2)
                    return npy_error(err, name, "shape has more than 2 dimensions; qid reads 1-D or 2-D arrays");
                npy->shape[ndim++] = v;
                trailing_comma = accept(&c, ',');
                if (!trailing_comma && peek(&c) != ')') return npy_error(err, name, "shape tuple is malformed");
            }
            if (ndim == 0) return npy_error(err, name, "shape () is a scalar; qid reads 1-D or 2-D arrays");
            if (ndim == 1 && !trailing_comma) return npy_error(err, name, "shape (n) is not a tuple (expected (n,))");
            npy->ndim = ndim;
            if (ndim == 1) npy->shape[1] = 1;
        } else {
            return npy_error(err, name, "unexpected key '%s' in the header", key);
        }
        if (!accept(&c, ',') && peek(&c) != '}') return npy_error(err, name, "expected ',' or '}' after '%s'", key);
    }
    if (peek(&c) != -1) return npy_error(err, name, "unexpected text after the header dict at byte %zu", c.i);
    if (!have_descr || !have_fortran || !have_shape)
        return npy_error(err, name, "header has no '%s' key",
                         !have_descr     ? "descr"
                         : !have_fortran ? "fortran_order"
                                         : "shape");
    if (fortran)
        return npy_error(err, name,
                         "fortran_order is True; qid reads C-order arrays only "
                         "(save np.ascontiguousarray(a))");
    return npy_descr(descr, name, npy, err);
}

int qid_tokens_npy_parse(const void *buf, size_t len, uint64_t file_size, const char *name, qid_tokens_npy *npy,
                         qid_error *err)
{
    const uint8_t *b = buf;
    QID_CHECK(len <= file_size, "the buffer of %zu bytes is longer than the file (%" PRIu64 ")", len, file_size);
    memset(npy, 0, sizeof *npy);
    if (memcmp(b, npy_magic, len < 6 ? len : 6) != 0) return npy_error(err, name, "bad magic (expected \\x93NUMPY)");
    if (len < 8) return npy_error(err, name, "truncated header (file has %zu bytes)", len);
    npy->major = b[6];
    npy->minor = b[7];
    if (npy->minor != 0 || npy->major < 1 || npy->major > 3)
        return npy_error(err, name, "unsupported format version %d.%d (qid reads 1.0, 2.0 and 3.0)", npy->major,
                         npy->minor);
    size_t start = npy->major == 1 ? 10 : 12;
    if (len < start) return npy_error(err, name, "truncated header (file has %zu bytes)", len);
    uint64_t hlen = npy->major == 1
                        ? (uint64_t)b[8] | (uint64_t)b[9] << 8
                        : (uint64_t)b[8] | (uint64_t)b[9] << 8 | (uint64_t)b[10] << 16 | (uint64_t)b[11] << 24;
    if (hlen > QID_TOKENS_NPY_MAX_HEADER)
        return npy_error(err, name, "header length %" PRIu64 " exceeds the limit of %zu bytes", hlen,
                         QID_TOKENS_NPY_MAX_HEADER);
    if (hlen > len - start)
        return npy_error(err, name, "truncated header (it says %" PRIu64 " bytes, the file ends after %zu)", hlen,
                         len - start);
    npy->data_offset = start + (size_t)hlen;
    int rc = npy_dict(b + start, (size_t)hlen, name, npy, err);
    if (rc) return rc;
    uint64_t n = npy->shape[0];
    if (npy->shape[1] && n > UINT64_MAX / npy->shape[1]) return npy_error(err, name, "shape overflows 64 bits");
    n *= npy->shape[1];
    if (n > (UINT64_MAX - npy->data_offset) / npy->elem_size) return npy_error(err, name, "shape overflows 64 bits");
    npy->n_elements = n;
    uint64_t want = n * npy->elem_size, have = file_size - npy->data_offset;
    if (want != have) {
        char shape[64];
        if (npy->ndim == 1)
            snprintf(shape, sizeof shape, "(%" PRIu64 ",)", npy->shape[0]);
        else
            snprintf(shape, sizeof shape, "(%" PRIu64 ", %" PRIu64 ")", npy->shape[0], npy->shape[1]);
        return npy_error(err, name,
                         "shape %s of '%s' needs %" PRIu64 " data bytes but the file has %" PRIu64
                         " after the %zu-byte header",
                         shape, npy->descr, want, have, npy->data_offset);
    }
    return QID_OK;
}

/* ---- the source stream ------------------------------------------------------ */

typedef struct source {
    FILE *f;
    const char *path;
    size_t elem_size; /* bytes per id in the source */
    int is_signed;
    uint64_t n_tokens; /* ids in the source */
    uint64_t pos;      /* ids consumed so far */
    qid_sha256 hash;   /* of every byte of the file, header included */
    uint8_t *raw;      /* one block of source bytes */
    size_t raw_cap;
    const qid_tokens_feed *feed; /* ids from elsewhere (f is NULL then) */
} source;

static const char *source_kind_name(qid_tokens_source s)
{
    switch (s) {
    case QID_TOKENS_SRC_U16: return "raw uint16";
    case QID_TOKENS_SRC_U32: return "raw uint32";
    case QID_TOKENS_SRC_NPY: return ".npy";
    case QID_TOKENS_SRC_TEXT: return "text bytes";
    case QID_TOKENS_SRC_AUTO: break;
    }
    return "auto";
}

/* Reads exactly n bytes; 0 or QID_E_IO naming the file. */
static int read_exact(source *s, void *buf, size_t n, qid_error *err)
{
    if (n && fread(buf, 1, n, s->f) != n) {
        if (ferror(s->f)) return qid_error_set(err, QID_E_IO, "cannot read '%s': %s", s->path, strerror(errno));
        return qid_error_set(err, QID_E_IO, "unexpected end of '%s' (did the file change while it was read?)", s->path);
    }
    return QID_OK;
}

/* Opens the source and reads its header (if any); *kind is resolved from AUTO. */
static int source_open(source *s, const char *path, qid_tokens_source *kind, qid_error *err)
{
    struct stat st;
    uint8_t *prefix = NULL;
    memset(s, 0, sizeof *s);
    s->path = path;
    qid_sha256_init(&s->hash);
    s->f = fopen(path, "rb");
    if (!s->f) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", path, strerror(errno));
    if (fstat(fileno(s->f), &st) != 0)
        return qid_error_set(err, QID_E_IO, "cannot stat '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return qid_error_set(err, QID_E_IO, "'%s' is not a regular file", path);
    uint64_t size = (uint64_t)st.st_size;

    if (*kind == QID_TOKENS_SRC_AUTO || *kind == QID_TOKENS_SRC_NPY) {
        size_t want = QID_TOKENS_NPY_MAX_HEADER + 12;
        size_t len = size < want ? (size_t)size : want;
        prefix = qid_malloc(len, "a .npy header");
        if (read_exact(s, prefix, len, err)) goto fail;
        if (*kind == QID_TOKENS_SRC_AUTO) {
            if (len < 6 || memcmp(prefix, npy_magic, 6) != 0) {
                qid_error_set(err, QID_E_FORMAT,
                              "'%s' is not a .npy file (bad magic); give --dtype uint16|uint32 for raw ids or "
                              "--text for bytes",
                              path);
                goto fail;
            }
            *kind = QID_TOKENS_SRC_NPY;
        }
        qid_tokens_npy npy;
        if (qid_tokens_npy_parse(prefix, len, size, path, &npy, err)) goto fail;
        qid_sha256_update(&s->hash, prefix, npy.data_offset);
        if (fseeko(s->f, (off_t)npy.data_offset, SEEK_SET) != 0) {
            qid_error_set(err, QID_E_IO, "cannot seek in '%s': %s", path, strerror(errno));
            goto fail;
        }
        s->elem_size = npy.elem_size;
        s->is_signed = npy.is_signed;
        s->n_tokens = npy.n_elements;
        free(prefix);
        return QID_OK;
    }
    s->elem_size = *kind == QID_TOKENS_SRC_U16 ? 2 : *kind == QID_TOKENS_SRC_U32 ? 4 : 1;
    if (size % s->elem_size)
        return qid_error_set(err, QID_E_FORMAT, "size of '%s' (%" PRIu64 " bytes) is not a multiple of %zu (%s ids)",
                             path, size, s->elem_size, source_kind_name(*kind));
    s->n_tokens = size / s->elem_size;
    return QID_OK;
fail:
    free(prefix);
    return err ? err->code : QID_E_IO;
}

static void source_close(source *s)
{
    if (s->f) fclose(s->f);
    free(s->raw);
    s->f = NULL;
    s->raw = NULL;
}

static uint64_t load_le(const uint8_t *p, size_t size)
{
    switch (size) {
    case 1: return p[0];
    case 2: return (uint64_t)p[0] | (uint64_t)p[1] << 8;
    case 4: return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
    default: {
        uint64_t v = 0;
        for (size_t k = 8; k-- > 0;)
            v = v << 8 | p[k];
        return v;
    }
    }
}

/* Reads the next n ids into ids (n <= what is left), hashing the bytes and
 * checking every id is in [0, vocab). */
static int source_read(source *s, uint32_t *ids, size_t n, int64_t vocab, qid_error *err)
{
    if (s->feed) {
        int rc = s->feed->read(s->feed->ctx, ids, n, err);
        if (rc) return rc;
        for (size_t i = 0; i < n; i++)
            if ((int64_t)ids[i] >= vocab)
                return qid_error_set(err, QID_E_INVALID,
                                     "token id %" PRIu32 " at position %" PRIu64
                                     " is outside the vocabulary (size %" PRId64 ") in '%s'",
                                     ids[i], s->pos + i, vocab, s->path);
        s->pos += n;
        return QID_OK;
    }
    size_t es = s->elem_size, bytes = qid_mul_size(n, es);
    if (bytes > s->raw_cap) {
        s->raw = qid_realloc(s->raw, bytes, "a block of source tokens");
        s->raw_cap = bytes;
    }
    int rc = read_exact(s, s->raw, bytes, err);
    if (rc) return rc;
    qid_sha256_update(&s->hash, s->raw, bytes);
    uint64_t sign = (uint64_t)1 << (8 * es - 1), limit = (uint64_t)vocab;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = load_le(s->raw + i * es, es);
        if (s->is_signed && (v & sign)) {
            uint64_t ext = es < 8 ? v | (UINT64_MAX << (8 * es)) : v;
            return qid_error_set(err, QID_E_INVALID, "token id %" PRId64 " at position %" PRIu64 " is negative in '%s'",
                                 -(int64_t)~ext - 1, s->pos + i, s->path);
        }
        if (v >= limit)
            return qid_error_set(err, QID_E_INVALID,
                                 "token id %" PRIu64 " at position %" PRIu64 " is outside the vocabulary (size %" PRId64
                                 ") in '%s'",
                                 v, s->pos + i, vocab, s->path);
        ids[i] = (uint32_t)v;
    }
    s->pos += n;
    return QID_OK;
}

/* ---- writing -------------------------------------------------------------- */

static int check_opts(const qid_tokens_import_opts *o, int64_t *vocab, int64_t *seq_len, const char **tokenizer,
                      qid_error *err)
{
    int text = o->source == QID_TOKENS_SRC_TEXT;
    if (!o->input || !o->output)
        return qid_error_set(err, QID_E_INVALID, "no %s given", !o->input ? "input" : "output");
    *vocab = text && o->vocab_size == 0 ? 256 : o->vocab_size;
    *seq_len = o->seq_len ? o->seq_len : QID_TOKENS_DEFAULT_SEQ_LEN;
    *tokenizer = o->tokenizer ? o->tokenizer : text ? "bytes" : "unknown";
    if (text && *vocab != 256)
        return qid_error_set(err, QID_E_INVALID, "text bytes have a vocabulary of 256, not %" PRId64, *vocab);
    if (text && strcmp(*tokenizer, "bytes") != 0)
        return qid_error_set(err, QID_E_INVALID, "text bytes use the tokenizer 'bytes', not '%s'", *tokenizer);
    if (*vocab < 1 || *vocab > QID_TOKENS_MAX_VOCAB)
        return qid_error_set(err, QID_E_INVALID, "vocabulary size %" PRId64 " is outside 1..%" PRId64, *vocab,
                             QID_TOKENS_MAX_VOCAB);
    if (*seq_len < 1 || *seq_len > QID_TOKENS_MAX_SEQ_LEN)
        return qid_error_set(err, QID_E_INVALID, "window length %" PRId64 " is outside 1..%" PRId64, *seq_len,
                             QID_TOKENS_MAX_SEQ_LEN);
    if (o->max_windows < 0) return qid_error_set(err, QID_E_INVALID, "negative --max-windows");
    size_t tl = strlen(*tokenizer);
    if (tl == 0 || tl >= sizeof((qid_tokens_meta *)0)->tokenizer)
        return qid_error_set(err, QID_E_INVALID, "tokenizer name must have 1..%zu characters",
                             sizeof((qid_tokens_meta *)0)->tokenizer - 1);
    return qid_output_check(o->output, o->force, err);
}

static int write_root_attrs(hid_t fid, const qid_tokens_meta *m, qid_error *err)
{
    int rc = qid_h5_write_format(fid, QID_TOKENS_FORMAT, QID_TOKENS_SCHEMA_VERSION, err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "vocab_size", m->vocab_size, err);
    if (!rc) rc = qid_h5_attr_write_str(fid, "tokenizer", m->tokenizer, err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "seq_len", m->seq_len, err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "n_windows", m->n_windows, err);
    if (!rc) rc = qid_h5_attr_write_str(fid, "source_file", m->source_file, err);
    if (!rc) rc = qid_h5_attr_write_str(fid, "source_sha256", m->source_sha256, err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "source_tokens", m->source_tokens, err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "tokens_dropped", m->tokens_dropped, err);
    if (!rc) rc = qid_h5_attr_write_str(fid, "created_by", m->created_by, err);
    return rc;
}

static int write_extra_attrs(hid_t fid, const qid_tokens_import_opts *o, qid_error *err)
{
    int rc = QID_OK;
    for (size_t i = 0; i < o->n_attrs && !rc; i++) {
        const qid_tokens_attr *a = &o->attrs[i];
        rc = a->str ? qid_h5_attr_write_str(fid, a->name, a->str, err)
                    : qid_h5_attr_write_i64(fid, a->name, a->i64, err);
    }
    return rc;
}

int qid_tokens_import(const qid_tokens_import_opts *o, qid_tokens_meta *meta_out, qid_error *err)
{
    source src = {0};
    qid_tokens_meta m;
    hid_t fid = H5I_INVALID_HID, space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    char *tmp_path = NULL;
    uint32_t *ids = NULL;
    const char *tokenizer = NULL;
    int rc;

    memset(&m, 0, sizeof m);
    if ((rc = check_opts(o, &m.vocab_size, &m.seq_len, &tokenizer, err))) return rc;
    qid_tokens_source kind = o->source;
    if (o->feed) {
        src.path = o->input;
        src.feed = o->feed;
        src.n_tokens = o->feed->n_tokens;
    } else if ((rc = source_open(&src, o->input, &kind, err))) {
        source_close(&src);
        return rc;
    }
    size_t seq_len = (size_t)m.seq_len;
    uint64_t n_windows = src.n_tokens / seq_len;
    if (o->max_windows > 0 && n_windows > (uint64_t)o->max_windows) n_windows = (uint64_t)o->max_windows;
    if (n_windows == 0) {
        qid_error_set(err, QID_E_INVALID,
                      "'%s' holds %" PRIu64 " tokens, fewer than one window of %zu (lower --seq-len)", o->input,
                      src.n_tokens, seq_len);
        goto fail;
    }
    m.schema_version = QID_TOKENS_SCHEMA_VERSION;
    m.n_windows = (int64_t)n_windows;
    m.source_tokens = (int64_t)src.n_tokens;
    m.tokens_dropped = (int64_t)(src.n_tokens - n_windows * seq_len);
    m.id_bits = m.vocab_size <= QID_TOKENS_U16_VOCAB ? 16 : 32;
    snprintf(m.tokenizer, sizeof m.tokenizer, "%s", tokenizer);
    snprintf(m.source_file, sizeof m.source_file, "%s", qid_path_base(o->input));
    snprintf(m.created_by, sizeof m.created_by, "qid %s", QID_VERSION);

    /* chunk = whole windows: up to 64 of them, about 1 MiB */
    size_t window_bytes = seq_len * (size_t)(m.id_bits / 8);
    size_t chunk_windows = CHUNK_TARGET_BYTES / window_bytes;
    if (chunk_windows < 1) chunk_windows = 1;
    if (chunk_windows > CHUNK_MAX_WINDOWS) chunk_windows = CHUNK_MAX_WINDOWS;
    if (chunk_windows > n_windows) chunk_windows = (size_t)n_windows;
    size_t block = chunk_windows * seq_len;
    ids = qid_malloc(qid_mul_size(block, sizeof *ids), "a block of token ids");

    fid = qid_h5_create_tmp(o->output, &tmp_path, err);
    if (fid < 0) goto fail;
    hsize_t dims[2] = {(hsize_t)n_windows, (hsize_t)seq_len}, chunk[2] = {(hsize_t)chunk_windows, (hsize_t)seq_len};
    hid_t ftype = m.id_bits == 16 ? H5T_STD_U16LE : H5T_STD_U32LE;
    QID_H5_TRY(err, space = H5Screate_simple(2, dims, NULL), "cannot create the dataspace of '/tokens'");
    QID_H5_TRY(err, dcpl = H5Pcreate(H5P_DATASET_CREATE), "cannot create a property list");
    QID_H5_TRY(err, H5Pset_chunk(dcpl, 2, chunk), "cannot set the chunks of '/tokens'");
    QID_H5_TRY(err, H5Pset_obj_track_times(dcpl, 0), "cannot set dataset properties");
    QID_H5_TRY(err, H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), "cannot set dataset properties");
    QID_H5_TRY(err, dset = H5Dcreate2(fid, "tokens", ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
               "cannot create dataset '/tokens' in '%s'", tmp_path);

    for (uint64_t pos = 0; pos < src.n_tokens;) {
        size_t n = src.n_tokens - pos < block ? (size_t)(src.n_tokens - pos) : block;
        if ((rc = source_read(&src, ids, n, m.vocab_size, err))) goto fail;
        uint64_t window = pos / seq_len; /* blocks start on window boundaries */
        if (window < n_windows) {
            uint64_t nw = n / seq_len;
            if (nw > n_windows - window) nw = n_windows - window;
            if (nw > 0) {
                hsize_t start[2] = {(hsize_t)window, 0}, count[2] = {(hsize_t)nw, (hsize_t)seq_len};
                QID_H5_TRY(err, fspace = H5Dget_space(dset), "cannot get the dataspace of '/tokens'");
                QID_H5_TRY(err, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL),
                           "cannot select windows of '/tokens'");
                QID_H5_TRY(err, mspace = H5Screate_simple(2, count, NULL), "cannot create a memory dataspace");
                QID_H5_TRY(err, H5Dwrite(dset, H5T_NATIVE_UINT32, mspace, fspace, H5P_DEFAULT, ids),
                           "cannot write windows %" PRIu64 "..%" PRIu64 " of '/tokens' in '%s'", window,
                           window + nw - 1, tmp_path);
                H5Sclose(mspace);
                H5Sclose(fspace);
                mspace = fspace = H5I_INVALID_HID;
            }
        }
        pos += n;
    }
    if (src.feed) {
        src.feed->digest(src.feed->ctx, m.source_sha256);
    } else {
        uint8_t digest[32];
        qid_sha256_final(&src.hash, digest);
        qid_sha256_hex(digest, m.source_sha256);
    }
    if ((rc = write_root_attrs(fid, &m, err)) || (rc = write_extra_attrs(fid, o, err))) goto fail;
    H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
    free(ids);
    source_close(&src);
    rc = qid_h5_commit(fid, tmp_path, o->output, err);
    if (rc == QID_OK && meta_out) *meta_out = m;
    return rc;
fail:
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (dset >= 0) H5Dclose(dset);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (tmp_path) qid_h5_discard(fid, tmp_path);
    free(ids);
    source_close(&src);
    return err && err->code ? err->code : QID_E_IO;
}

/* ---- reading ---------------------------------------------------------------- */

/* Appends a hint to a format error that does not carry one. */
static void add_open_hint(qid_error *err)
{
    if (!err || err->code != QID_E_FORMAT || strstr(err->msg, "hint:")) return;
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof err->msg - n,
             " (hint: token sets are written by 'qid tokens'; 'qid inspect FILE' "
             "says what a file holds)");
}

int qid_tokens_open(const char *path, qid_tokens *t, qid_error *err)
{
    qid_tokens_meta *m = &t->meta;
    hid_t type = H5I_INVALID_HID, space = H5I_INVALID_HID;
    memset(t, 0, sizeof *t);
    t->file = t->dset = H5I_INVALID_HID;
    snprintf(t->path, sizeof t->path, "%s", path);
    t->file = qid_h5_open_format(path, QID_TOKENS_FORMAT, QID_TOKENS_SCHEMA_VERSION, &m->schema_version, err);
    if (t->file < 0) {
        add_open_hint(err);
        return err ? err->code : QID_E_FORMAT;
    }
    int rc = qid_h5_attr_read_i64(t->file, "/", "vocab_size", &m->vocab_size, err);
    if (!rc) rc = qid_h5_attr_read_str(t->file, "/", "tokenizer", m->tokenizer, sizeof m->tokenizer, err);
    if (!rc) rc = qid_h5_attr_read_i64(t->file, "/", "seq_len", &m->seq_len, err);
    if (!rc) rc = qid_h5_attr_read_i64(t->file, "/", "n_windows", &m->n_windows, err);
    if (!rc) rc = qid_h5_attr_read_str(t->file, "/", "source_file", m->source_file, sizeof m->source_file, err);
    if (!rc) rc = qid_h5_attr_read_str(t->file, "/", "source_sha256", m->source_sha256, sizeof m->source_sha256, err);
    if (!rc) rc = qid_h5_attr_read_i64(t->file, "/", "source_tokens", &m->source_tokens, err);
    if (!rc) rc = qid_h5_attr_read_i64(t->file, "/", "tokens_dropped", &m->tokens_dropped, err);
    if (!rc) rc = qid_h5_attr_read_str(t->file, "/", "created_by", m->created_by, sizeof m->created_by, err);
    if (rc) goto fail;
    if (m->vocab_size < 1 || m->vocab_size > QID_TOKENS_MAX_VOCAB || m->seq_len < 1 ||
        m->seq_len > QID_TOKENS_MAX_SEQ_LEN || m->n_windows < 1 || m->n_windows > INT64_MAX / m->seq_len ||
        m->tokens_dropped < 0 || m->source_tokens != m->n_windows * m->seq_len + m->tokens_dropped) {
        qid_error_set(err, QID_E_FORMAT,
                      "inconsistent attributes on '/' in '%s': vocab_size %" PRId64 ", seq_len %" PRId64
                      ", n_windows %" PRId64 ", source_tokens %" PRId64 ", tokens_dropped %" PRId64,
                      path, m->vocab_size, m->seq_len, m->n_windows, m->source_tokens, m->tokens_dropped);
        goto fail;
    }
    if (H5Lexists(t->file, "tokens", H5P_DEFAULT) <= 0) {
        qid_error_set(err, QID_E_FORMAT, "dataset '/tokens' missing in '%s'", path);
        goto fail;
    }
    QID_H5_TRY(err, t->dset = H5Dopen2(t->file, "tokens", H5P_DEFAULT), "cannot open dataset '/tokens' in '%s'", path);
    QID_H5_TRY(err, type = H5Dget_type(t->dset), "cannot read the type of '/tokens' in '%s'", path);
    size_t tsize = H5Tget_size(type);
    if (H5Tget_class(type) != H5T_INTEGER || H5Tget_sign(type) != H5T_SGN_NONE || (tsize != 2 && tsize != 4)) {
        qid_error_set(err, QID_E_FORMAT, "dataset '/tokens' in '%s' is not uint16 or uint32", path);
        goto fail;
    }
    m->id_bits = (int)tsize * 8;
    QID_H5_TRY(err, space = H5Dget_space(t->dset), "cannot read the shape of '/tokens' in '%s'", path);
    hsize_t dims[2] = {0, 0};
    int ndim = H5Sget_simple_extent_ndims(space);
    if (ndim == 2) H5Sget_simple_extent_dims(space, dims, NULL);
    if (ndim != 2 || dims[0] != (hsize_t)m->n_windows || dims[1] != (hsize_t)m->seq_len) {
        qid_error_set(err, QID_E_FORMAT,
                      "dataset '/tokens' in '%s' has %d dims [%llu, %llu], the attributes say [%" PRId64 ", %" PRId64
                      "]",
                      path, ndim, (unsigned long long)dims[0], (unsigned long long)dims[1], m->n_windows, m->seq_len);
        goto fail;
    }
    if (qid_h5_check_storage(t->dset, "/tokens", path, (uint64_t)m->n_windows * (uint64_t)m->seq_len, 0, err))
        goto fail;
    H5Sclose(space);
    H5Tclose(type);
    return QID_OK;
fail:
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    qid_tokens_close(t);
    return err && err->code ? err->code : QID_E_FORMAT;
}

int qid_tokens_read(const qid_tokens *t, size_t first, size_t count, uint32_t *out, qid_error *err)
{
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    size_t n_windows = (size_t)t->meta.n_windows, seq_len = (size_t)t->meta.seq_len;
    if (count == 0) return QID_OK;
    if (first > n_windows || count > n_windows - first)
        return qid_error_set(err, QID_E_INVALID, "windows [%zu, %zu) are outside [0, %zu) of '/tokens' in '%s'", first,
                             first + count, n_windows, t->path);
    hsize_t start[2] = {(hsize_t)first, 0}, cnt[2] = {(hsize_t)count, (hsize_t)seq_len};
    QID_H5_TRY(err, fspace = H5Dget_space(t->dset), "cannot get the dataspace of '/tokens' in '%s'", t->path);
    QID_H5_TRY(err, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, cnt, NULL),
               "cannot select windows of '/tokens' in '%s'", t->path);
    QID_H5_TRY(err, mspace = H5Screate_simple(2, cnt, NULL), "cannot create a memory dataspace");
    QID_H5_TRY(err, H5Dread(t->dset, H5T_NATIVE_UINT32, mspace, fspace, H5P_DEFAULT, out),
               "cannot read windows [%zu, %zu) of '/tokens' in '%s'", first, first + count, t->path);
    H5Sclose(mspace);
    H5Sclose(fspace);
    size_t n = qid_mul_size(count, seq_len);
    uint64_t vocab = (uint64_t)t->meta.vocab_size;
    for (size_t i = 0; i < n; i++)
        if (out[i] >= vocab)
            return qid_error_set(err, QID_E_FORMAT,
                                 "token id %" PRIu32 " at window %zu position %zu of '/tokens' in '%s' is outside the "
                                 "vocabulary (size %" PRIu64 ")",
                                 out[i], first + i / seq_len, i % seq_len, t->path, vocab);
    return QID_OK;
fail:
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    return err && err->code ? err->code : QID_E_HDF5;
}

void qid_tokens_close(qid_tokens *t)
{
    if (t->dset >= 0) H5Dclose(t->dset);
    if (t->file >= 0) H5Fclose(t->file);
    t->dset = t->file = H5I_INVALID_HID;
}
