/* megatron.c - Megatron / GPT-NeoX indexed datasets (megatron.h): the .idx
 * parser (untrusted input, parsed from memory so the fuzz target can call
 * it), the selection of sequences or documents, and the feed that hands the
 * selected ids of the .bin to qid_tokens_import in order.
 *
 * The format follows the writer of EleutherAI/gpt-neox
 * megatron/data/indexed_dataset.py (MMapIndexedDataset.Index.writer, commit
 * 1d482247d8791f7df04ba676cb8c328bfc5e59cd), which Pythia's Pile was written
 * with; Megatron-LM's current writer produces the same bytes.
 *
 * Does not: write indexed datasets, or read the .bin through mmap (it is
 * read with pread in blocks: a .bin may be hundreds of GB). */
#include "megatron.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"

static const uint8_t idx_magic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};

/* Bytes of .bin read at a time. */
#define READ_BLOCK ((size_t)1 << 20)

static const struct {
    int code;
    const char *name;
    size_t size;
    int is_signed;
} idx_types[] = {
    {1, "uint8", 1, 0}, {2, "int8", 1, 1},  {3, "int16", 2, 1},
    {4, "int32", 4, 1}, {5, "int64", 8, 1}, {8, "uint16", 2, 0},
};

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = v << 8 | p[k];
    return v;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

__attribute__((format(printf, 3, 4))) static int idx_error(qid_error *err, const char *name, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return qid_error_set(err, QID_E_FORMAT, "invalid Megatron index '%s': %s", name, what);
}

uint64_t qid_megatron_size(const qid_megatron_idx *idx, uint64_t i) { return le32(idx->sizes + 4 * i); }
uint64_t qid_megatron_pointer(const qid_megatron_idx *idx, uint64_t i) { return le64(idx->pointers + 8 * i); }
uint64_t qid_megatron_doc(const qid_megatron_idx *idx, uint64_t d) { return le64(idx->doc_idx + 8 * d); }

int qid_megatron_idx_parse(const void *buf, size_t len, uint64_t bin_size, const char *name, qid_megatron_idx *idx,
                           qid_error *err)
{
    const uint8_t *b = buf;
    memset(idx, 0, sizeof *idx);
    if (len < 9 || memcmp(b, idx_magic, 9) != 0) {
        if (len >= 6 && memcmp(b, "TNTIDX", 6) == 0)
            return idx_error(err, name, "an IndexedDataset ('TNTIDX') index; qid reads the mmap format ('MMIDIDX')");
        return idx_error(err, name, "bad magic (expected 'MMIDIDX\\0\\0'; is it the .idx of a Megatron dataset?)");
    }
    if (len < QID_MEGATRON_HEADER_BYTES)
        return idx_error(err, name, "truncated header (%zu of %d bytes)", len, QID_MEGATRON_HEADER_BYTES);
    uint64_t version = le64(b + 9);
    if (version != 1) return idx_error(err, name, "version %" PRIu64 " (qid reads version 1)", version);
    int code = b[17];
    size_t k = 0, nt = sizeof idx_types / sizeof idx_types[0];
    while (k < nt && idx_types[k].code != code)
        k++;
    if (k == nt) {
        if (code == 6 || code == 7) return idx_error(err, name, "dtype code %d is a float type, not token ids", code);
        return idx_error(err, name, "unknown dtype code %d (known: 1-5 and 8)", code);
    }
    uint64_t n = le64(b + 18), m = le64(b + 26);
    uint64_t body = (uint64_t)len - QID_MEGATRON_HEADER_BYTES;
    if (n > body / 12 || m > (body - 12 * n) / 8)
        return idx_error(err, name,
                         "%" PRIu64 " sequences and %" PRIu64 " document entries need more than the %zu bytes it has",
                         n, m, len);
    if (12 * n + 8 * m != body)
        return idx_error(err, name,
                         "%zu bytes, but %" PRIu64 " sequences and %" PRIu64 " document entries make %" PRIu64, len, n,
                         m, (uint64_t)QID_MEGATRON_HEADER_BYTES + 12 * n + 8 * m);
    idx->dtype_code = code;
    idx->dtype = idx_types[k].name;
    idx->elem_size = idx_types[k].size;
    idx->is_signed = idx_types[k].is_signed;
    idx->n_seqs = n;
    idx->n_doc_idx = m;
    idx->sizes = b + QID_MEGATRON_HEADER_BYTES;
    idx->pointers = idx->sizes + 4 * n;
    idx->doc_idx = idx->pointers + 8 * n;
    uint64_t es = idx->elem_size, total = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t size = le32(idx->sizes + 4 * i);
        uint64_t ptr = qid_megatron_pointer(idx, i);
        if (size > INT32_MAX) return idx_error(err, name, "sequence %" PRIu64 " has a negative size", i);
        if (ptr > bin_size || size * es > bin_size - ptr)
            return idx_error(err, name,
                             "sequence %" PRIu64 " (%" PRIu32 " tokens at byte %" PRIu64
                             ") runs past the end of the .bin (%" PRIu64 " bytes)",
                             i, size, ptr, bin_size);
        total += size; /* <= n * 2^31 < 2^64 */
    }
    uint64_t prev = 0;
    for (uint64_t d = 0; d < m; d++) {
        uint64_t v = qid_megatron_doc(idx, d);
        if (v > n || v < prev)
            return idx_error(err, name,
                             "document index entry %" PRIu64 " is %" PRId64
                             " (must be non-decreasing within 0..%" PRIu64 ")",
                             d, (int64_t)v, n);
        prev = v;
    }
    idx->n_tokens = total;
    return QID_OK;
}

void qid_megatron_close(qid_megatron *m)
{
    if (m->map && m->map != MAP_FAILED) munmap(m->map, m->map_len);
    if (m->bin_fd >= 0) close(m->bin_fd);
    free(m->raw);
    m->map = NULL;
    m->bin_fd = -1;
    m->raw = NULL;
}

int qid_megatron_open(const char *idx_path, qid_megatron_unit unit, uint64_t first, uint64_t last, qid_megatron *m,
                      qid_error *err)
{
    struct stat st;
    int fd = -1;
    memset(m, 0, sizeof *m);
    m->bin_fd = -1;
    size_t pl = strlen(idx_path);
    if (pl < 4 || strcmp(idx_path + pl - 4, ".idx") != 0 || pl >= sizeof m->idx_path)
        return qid_error_set(err, QID_E_INVALID, "'%s' is not a Megatron .idx path (DATA.idx, with DATA.bin beside it)",
                             idx_path);
    snprintf(m->idx_path, sizeof m->idx_path, "%s", idx_path);
    snprintf(m->bin_path, sizeof m->bin_path, "%.*s.bin", (int)(pl - 4), idx_path);

    m->bin_fd = open(m->bin_path, O_RDONLY);
    if (m->bin_fd < 0) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", m->bin_path, strerror(errno));
    if (fstat(m->bin_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        qid_error_set(err, QID_E_IO, "'%s' is not a regular file", m->bin_path);
        goto fail;
    }
    m->bin_size = (uint64_t)st.st_size;
    fd = open(idx_path, O_RDONLY);
    if (fd < 0) {
        qid_error_set(err, QID_E_IO, "cannot open '%s': %s", idx_path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        qid_error_set(err, QID_E_IO, "'%s' is not a regular file", idx_path);
        goto fail;
    }
    m->map_len = (size_t)st.st_size;
    if (m->map_len == 0) {
        qid_error_set(err, QID_E_FORMAT, "invalid Megatron index '%s': empty file", idx_path);
        goto fail;
    }
    m->map = mmap(NULL, m->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m->map == MAP_FAILED) {
        m->map = NULL;
        qid_error_set(err, QID_E_IO, "cannot map '%s': %s", idx_path, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    if (qid_megatron_idx_parse(m->map, m->map_len, m->bin_size, idx_path, &m->idx, err)) goto fail;

    const qid_megatron_idx *x = &m->idx;
    uint64_t count = unit == QID_MEGATRON_DOCUMENTS ? (x->n_doc_idx ? x->n_doc_idx - 1 : 0) : x->n_seqs;
    const char *what = unit == QID_MEGATRON_DOCUMENTS ? "documents" : "sequences";
    if (unit == QID_MEGATRON_ALL) first = 0, last = count;
    if (last == 0) last = count;
    if (first >= last || last > count) {
        qid_error_set(err, QID_E_INVALID, "%s %" PRIu64 ":%" PRIu64 " are outside the %" PRIu64 " %s of '%s'", what,
                      first, last, count, what, idx_path);
        goto fail;
    }
    if (unit == QID_MEGATRON_DOCUMENTS) {
        m->seq_first = qid_megatron_doc(x, first);
        m->seq_last = qid_megatron_doc(x, last);
    } else {
        m->seq_first = first;
        m->seq_last = last;
    }
    for (uint64_t i = m->seq_first; i < m->seq_last; i++)
        m->n_tokens += qid_megatron_size(x, i);
    m->seq = m->seq_first;
    qid_sha256_init(&m->hash);
    return QID_OK;
fail:
    if (fd >= 0) close(fd);
    qid_megatron_close(m);
    return err && err->code ? err->code : QID_E_IO;
}

/* The feed's read: the next n ids of the selection, sequence after sequence. */
static int feed_read(void *ctx, uint32_t *ids, size_t n, qid_error *err)
{
    qid_megatron *m = ctx;
    const qid_megatron_idx *x = &m->idx;
    size_t es = x->elem_size, done = 0;
    while (done < n) {
        if (m->seq >= m->seq_last)
            return qid_error_set(err, QID_E_IO, "unexpected end of the selection in '%s'", m->idx_path);
        uint64_t size = qid_megatron_size(x, m->seq);
        if (m->offset == size) {
            m->seq++;
            m->offset = 0;
            continue;
        }
        size_t take = n - done;
        if (take > size - m->offset) take = (size_t)(size - m->offset);
        if (take > READ_BLOCK / es) take = READ_BLOCK / es;
        size_t bytes = take * es;
        if (bytes > m->raw_cap) {
            m->raw = qid_realloc(m->raw, bytes, "a block of .bin bytes");
            m->raw_cap = bytes;
        }
        uint64_t at = qid_megatron_pointer(x, m->seq) + m->offset * es;
        size_t got = 0;
        while (got < bytes) {
            ssize_t r = pread(m->bin_fd, m->raw + got, bytes - got, (off_t)(at + got));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) return qid_error_set(err, QID_E_IO, "cannot read '%s': %s", m->bin_path, strerror(errno));
            if (r == 0)
                return qid_error_set(err, QID_E_IO,
                                     "unexpected end of '%s' at byte %" PRIu64 " (did it change while it was read?)",
                                     m->bin_path, at + got);
            got += (size_t)r;
        }
        qid_sha256_update(&m->hash, m->raw, bytes);
        for (size_t i = 0; i < take; i++) {
            const uint8_t *p = m->raw + i * es;
            uint64_t v = es == 1 ? p[0] : es == 2 ? (uint64_t)p[0] | (uint64_t)p[1] << 8 : es == 4 ? le32(p) : le64(p);
            uint64_t sign = (uint64_t)1 << (8 * es - 1);
            if ((x->is_signed && (v & sign)) || v > UINT32_MAX)
                return qid_error_set(
                    err, QID_E_INVALID,
                    "token id at sequence %" PRIu64 " position %" PRIu64 " of '%s' is %s (not an id of 0..4294967295)",
                    m->seq, m->offset + i, m->bin_path, x->is_signed && (v & sign) ? "negative" : "too large");
            ids[done + i] = (uint32_t)v;
        }
        done += take;
        m->offset += take;
    }
    return QID_OK;
}

static void feed_digest(void *ctx, char hex[65])
{
    qid_megatron *m = ctx;
    uint8_t d[32];
    qid_sha256_final(&m->hash, d);
    qid_sha256_hex(d, hex);
}

void qid_megatron_feed(qid_megatron *m, qid_tokens_feed *feed)
{
    memset(feed, 0, sizeof *feed);
    feed->n_tokens = m->n_tokens;
    feed->read = feed_read;
    feed->digest = feed_digest;
    feed->ctx = m;
}
