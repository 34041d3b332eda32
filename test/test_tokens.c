/* test_tokens.c - the qid token set: round trips from raw uint16/uint32,
 * .npy (versions 1.0/2.0/3.0, every accepted dtype, 2-D shapes) and text
 * bytes, with window and dropped-tail counts and every id read back equal to
 * the source; the source SHA-256 against FIPS 180-2 vectors; ids outside the
 * vocabulary and malformed .npy files rejected with one line naming the
 * problem and no output or temporary file left; and the reader's format and
 * schema checks with their hints.
 *
 * Does not: run the command line (test/cmd_tokens.t does). */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "h5io.h"
#include "sha256.h"
#include "tap.h"
#include "tokens.h"

static char dir[512];

/* ---- helpers: sources written byte by byte, independent of tokens.c ------ */

static void put_le(uint8_t *p, uint64_t v, size_t size)
{
    for (size_t k = 0; k < size; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

/* n ids of size bytes each, little-endian, into a malloc'd buffer. */
static uint8_t *encode(const uint64_t *ids, size_t n, size_t size)
{
    uint8_t *b = malloc(n * size + 1);
    if (!b) bail("out of memory");
    for (size_t i = 0; i < n; i++)
        put_le(b + i * size, ids[i], size);
    return b;
}

static void write_ids(const char *path, const uint64_t *ids, size_t n, size_t size)
{
    uint8_t *b = encode(ids, n, size);
    tap_write_file(path, b, n * size);
    free(b);
}

/* A .npy header as numpy writes it: magic, version, length, the dict padded
 * with spaces and a newline so the data starts on a 64-byte boundary. */
static size_t npy_header(uint8_t *out, int major, const char *dict)
{
    size_t start = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t pad = (64 - (start + dl + 1) % 64) % 64, hlen = dl + pad + 1;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (uint8_t)major;
    out[7] = 0;
    put_le(out + 8, hlen, major == 1 ? 2 : 4);
    memcpy(out + start, dict, dl);
    memset(out + start + dl, ' ', pad);
    out[start + dl + pad] = '\n';
    return start + hlen;
}

/* Writes a .npy file with the given dict and n ids of size bytes. */
static void write_npy(const char *path, int major, const char *dict, const uint64_t *ids, size_t n, size_t size)
{
    uint8_t *b = malloc(256 + strlen(dict) + n * size);
    if (!b) bail("out of memory");
    size_t h = npy_header(b, major, dict);
    for (size_t i = 0; i < n; i++)
        put_le(b + h + i * size, ids[i], size);
    tap_write_file(path, b, h + n * size);
    free(b);
}

static uint64_t lcg_state = 0x2545F4914F6CDD1Dull;
static uint64_t next_id(uint64_t vocab)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (lcg_state >> 33) % vocab;
}

static char *path_in(const char *name)
{
    static char buf[8][600];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Files in directory d (not . and ..). */
static int count_files(const char *d)
{
    int n = 0;
    DIR *dp = opendir(d);
    struct dirent *e;
    while (dp && (e = readdir(dp)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (dp) closedir(dp);
    return n;
}

static void sha_hex(const void *data, size_t n, char hex[65])
{
    qid_sha256 h;
    uint8_t d[32];
    qid_sha256_init(&h);
    qid_sha256_update(&h, data, n);
    qid_sha256_final(&h, d);
    qid_sha256_hex(d, hex);
}

static int do_import(const char *in, const char *out, qid_tokens_source src, int64_t vocab, int64_t seq_len,
                     qid_tokens_meta *m, qid_error *err)
{
    qid_tokens_import_opts o = {.input = in,
                                .output = out,
                                .source = src,
                                .vocab_size = vocab,
                                .tokenizer = src == QID_TOKENS_SRC_TEXT ? NULL : "test-tok",
                                .seq_len = seq_len};
    qid_error_clear(err);
    return qid_tokens_import(&o, m, err);
}

/* Reads every window of path and compares with ids[0, n_windows * seq_len). */
static int read_back_equal(const char *path, const uint64_t *ids, qid_tokens_meta *meta)
{
    qid_tokens t;
    qid_error err;
    if (qid_tokens_open(path, &t, &err)) {
        diag("open: %s", err.msg);
        return 0;
    }
    size_t n = (size_t)(t.meta.n_windows * t.meta.seq_len);
    uint32_t *got = malloc(n * sizeof *got + 4);
    int same = qid_tokens_read(&t, 0, (size_t)t.meta.n_windows, got, &err) == QID_OK;
    if (!same) diag("read: %s", err.msg);
    for (size_t i = 0; same && i < n; i++)
        if (got[i] != ids[i]) {
            diag("id %zu: wanted %" PRIu64 ", got %" PRIu32, i, ids[i], got[i]);
            same = 0;
        }
    if (meta) *meta = t.meta;
    free(got);
    qid_tokens_close(&t);
    return same;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_sha256_vectors(void)
{
    char hex[65];
    sha_hex("abc", 3, hex);
    is_string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex, "FIPS 180-2 vector 'abc'");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(two, strlen(two), hex);
    is_string("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", hex, "FIPS 180-2 vector 448 bits");
}

static void test_u16(void)
{
    enum { N = 1000 };
    uint64_t ids[N];
    for (size_t i = 0; i < N; i++)
        ids[i] = next_id(50304);
    ids[0] = 0;
    ids[1] = 50303;
    char *src = path_in("data.u16"), *out = path_in("u16.h5");
    write_ids(src, ids, N, 2);
    qid_tokens_meta m;
    qid_error err;
    int rc = do_import(src, out, QID_TOKENS_SRC_U16, 50304, 64, &m, &err);
    if (!is_int(QID_OK, rc, "u16: import succeeds")) diag("%s", err.msg);
    is_int(15, m.n_windows, "u16: 1000 tokens / 64 = 15 windows");
    is_int(40, m.tokens_dropped, "u16: 40 tokens dropped");
    is_int(1000, m.source_tokens, "u16: 1000 source tokens");
    is_int(16, m.id_bits, "u16: stored as uint16");

    qid_tokens_meta r;
    ok(read_back_equal(out, ids, &r), "u16: every id read back equals the source");
    is_int(1, r.schema_version, "u16: schema_version 1");
    is_int(50304, r.vocab_size, "u16: vocab_size read back");
    is_int(64, r.seq_len, "u16: seq_len read back");
    is_int(15, r.n_windows, "u16: n_windows read back");
    is_int(40, r.tokens_dropped, "u16: tokens_dropped read back");
    is_string("test-tok", r.tokenizer, "u16: tokenizer read back");
    is_string("data.u16", r.source_file, "u16: source_file is the basename");
    is_string("qid " QID_VERSION, r.created_by, "u16: created_by");
    uint8_t *bytes = encode(ids, N, 2);
    char hex[65];
    sha_hex(bytes, N * 2, hex);
    free(bytes);
    is_string(hex, r.source_sha256, "u16: source_sha256 is the sha256 of the file");

    /* a range in the middle, and ranges outside */
    qid_tokens t;
    uint32_t buf[2 * 64];
    rc = qid_tokens_open(out, &t, &err);
    is_int(QID_OK, rc, "u16: open");
    rc = qid_tokens_read(&t, 7, 2, buf, &err);
    int same = rc == QID_OK;
    for (size_t i = 0; same && i < 2 * 64; i++)
        same = buf[i] == ids[7 * 64 + i];
    ok(same, "u16: windows [7, 9) equal source tokens 448..575");
    rc = qid_tokens_read(&t, 14, 2, buf, &err);
    is_int(QID_E_INVALID, rc, "u16: reading windows [14, 16) of 15 fails");
    like(err.msg, "windows [14, 16) are outside [0, 15) of '/tokens' in '", "u16: range error names the dataset");
    is_int(QID_OK, qid_tokens_read(&t, 15, 0, buf, &err), "u16: reading 0 windows at the end is fine");
    qid_tokens_close(&t);
    qid_tokens_close(&t);
    ok(t.file == H5I_INVALID_HID, "u16: close twice is harmless");
}

static void test_u32(void)
{
    enum { N = 700 };
    uint64_t ids[N];
    for (size_t i = 0; i < N; i++)
        ids[i] = next_id(100000);
    ids[5] = 99999;
    ids[6] = 65536;
    char *src = path_in("data.u32"), *out = path_in("u32.h5");
    write_ids(src, ids, N, 4);
    qid_tokens_meta m;
    qid_error err;
    int rc = do_import(src, out, QID_TOKENS_SRC_U32, 100000, 100, &m, &err);
    if (!is_int(QID_OK, rc, "u32: import succeeds")) diag("%s", err.msg);
    is_int(32, m.id_bits, "u32: vocab 100000 is stored as uint32");
    is_int(7, m.n_windows, "u32: 700 tokens / 100 = 7 windows");
    is_int(0, m.tokens_dropped, "u32: nothing dropped");
    ok(read_back_equal(out, ids, NULL), "u32: ids above 65535 read back exactly");

    /* vocab 65536 still fits uint16: id 65535 must survive */
    uint64_t edge[8] = {65535, 0, 1, 65534, 65535, 2, 3, 4};
    src = path_in("edge.u32");
    out = path_in("edge.h5");
    write_ids(src, edge, 8, 4);
    rc = do_import(src, out, QID_TOKENS_SRC_U32, 65536, 4, &m, &err);
    is_int(QID_OK, rc, "u32: vocab 65536 import");
    is_int(16, m.id_bits, "u32: vocab 65536 is stored as uint16");
    ok(read_back_equal(out, edge, NULL), "u32: id 65535 read back from uint16 storage");
}

static void test_npy(void)
{
    static const struct {
        const char *descr;
        size_t size;
        int major;
    } cases[] = {
        {"<u2", 2, 1}, {"<u4", 4, 1}, {"<i4", 4, 2}, {"<i8", 8, 3}, {"<u8", 8, 1},
        {"|u1", 1, 1}, {"<i2", 2, 2}, {"=u2", 2, 1}, {"|i1", 1, 1},
    };
    enum { N = 130 };
    uint64_t ids[N];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint64_t vocab = cases[c].size == 1 ? 100 : 30000;
        for (size_t i = 0; i < N; i++)
            ids[i] = next_id(vocab);
        char dict[128], name[64];
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }", cases[c].descr, N);
        snprintf(name, sizeof name, "a%zu.npy", c);
        char *src = path_in(name), *out = path_in("npy.h5");
        write_npy(src, cases[c].major, dict, ids, N, cases[c].size);
        qid_tokens_meta m;
        qid_error err;
        qid_tokens_import_opts o = {
            .input = src, .output = out, .vocab_size = (int64_t)vocab, .tokenizer = "t", .seq_len = 16, .force = 1};
        int rc = qid_tokens_import(&o, &m, &err); /* QID_TOKENS_SRC_AUTO: recognised by magic */
        if (!is_int(QID_OK, rc, "npy %s v%d.0: import", cases[c].descr, cases[c].major)) diag("%s", err.msg);
        ok(m.n_windows == 8 && m.tokens_dropped == 2 && read_back_equal(out, ids, NULL),
           "npy %s v%d.0: 8 windows, 2 dropped, ids read back", cases[c].descr, cases[c].major);
    }

    /* 2-D, version 2.0: rows flattened in C order, windows across row ends */
    enum { R = 3, C = 50 };
    uint64_t m2[R * C];
    for (size_t i = 0; i < R * C; i++)
        m2[i] = (i * 7919) % 50000;
    char *src = path_in("two-d.npy"), *out = path_in("two-d.h5");
    write_npy(src, 2, "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 50), }", m2, R * C, 8);
    qid_tokens_meta m;
    qid_error err;
    int rc = do_import(src, out, QID_TOKENS_SRC_NPY, 50304, 40, &m, &err);
    if (!is_int(QID_OK, rc, "npy 2-D v2.0: import")) diag("%s", err.msg);
    is_int(3, m.n_windows, "npy 2-D: 150 tokens / 40 = 3 windows");
    is_int(30, m.tokens_dropped, "npy 2-D: 30 dropped");
    ok(read_back_equal(out, m2, NULL), "npy 2-D: C-order flattening read back");
}

static void test_text(void)
{
    const char *text = "The quick brown fox jumps over the lazy dog.\n\xc3\xa9t\xc3\xa9 \xff\x00 end";
    size_t n = 44 + 1 + 4 + 1 + 2 + 4;
    char *src = path_in("story.txt"), *out = path_in("text.h5");
    tap_write_file(src, text, n);
    qid_tokens_meta m;
    qid_error err;
    int rc = do_import(src, out, QID_TOKENS_SRC_TEXT, 0, 8, &m, &err);
    if (!is_int(QID_OK, rc, "text: import")) diag("%s", err.msg);
    is_int(256, m.vocab_size, "text: vocabulary 256");
    is_string("bytes", m.tokenizer, "text: tokenizer 'bytes'");
    is_int(7, m.n_windows, "text: 56 bytes / 8 = 7 windows");
    is_int(0, m.tokens_dropped, "text: nothing dropped");
    uint64_t ids[64];
    for (size_t i = 0; i < n; i++)
        ids[i] = (uint8_t)text[i];
    ok(read_back_equal(out, ids, NULL), "text: ids are the bytes (0xff and 0x00 included)");

    /* "abc" in windows of 1: sha256 is the FIPS vector */
    src = path_in("abc.txt");
    out = path_in("abc.h5");
    tap_write_file(src, "abc", 3);
    rc = do_import(src, out, QID_TOKENS_SRC_TEXT, 0, 1, &m, &err);
    is_int(QID_OK, rc, "text abc: import");
    is_string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", m.source_sha256,
              "text abc: source_sha256 is sha256('abc')");
    uint64_t abc[3] = {'a', 'b', 'c'};
    ok(read_back_equal(out, abc, NULL), "text abc: 3 windows of 1");

    /* max windows: the rest counts as dropped */
    qid_tokens_import_opts o = {.input = path_in("story.txt"),
                                .output = path_in("max.h5"),
                                .source = QID_TOKENS_SRC_TEXT,
                                .seq_len = 8,
                                .max_windows = 3};
    rc = qid_tokens_import(&o, &m, &err);
    is_int(QID_OK, rc, "max-windows: import");
    ok(m.n_windows == 3 && m.tokens_dropped == 32 && m.source_tokens == 56,
       "max-windows 3: 3 windows, 32 of 56 dropped");
}

static void test_out_of_range(void)
{
    enum { N = 20000 };
    static uint64_t ids[N];
    for (size_t i = 0; i < N; i++)
        ids[i] = next_id(50304);
    ids[12345] = 70000;
    char outdir[600];
    snprintf(outdir, sizeof outdir, "%s/range-out", dir);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", outdir);
    if (system(cmd) != 0) bail("cannot create %s", outdir);
    char *src = path_in("data.u32.bad"), out[700];
    snprintf(out, sizeof out, "%s/x.h5", outdir);
    write_ids(src, ids, N, 4);
    qid_tokens_meta m;
    qid_error err;
    int rc = do_import(src, out, QID_TOKENS_SRC_U32, 50304, 128, &m, &err);
    is_int(QID_E_INVALID, rc, "id 70000 >= vocab 50304: import fails");
    char want[900];
    snprintf(want, sizeof want, "token id 70000 at position 12345 is outside the vocabulary (size 50304) in '%s'", src);
    is_string(want, err.msg, "out of range: message names id, position, vocab and file");
    is_int(0, count_files(outdir), "out of range: no output and no .tmp left");

    /* in the dropped tail too: the whole source is checked */
    ids[12345] = 1;
    ids[N - 1] = 50304;
    write_ids(src, ids, N, 4);
    rc = do_import(src, out, QID_TOKENS_SRC_U32, 50304, 128, &m, &err);
    like(err.msg, "token id 50304 at position 19999 is outside", "an id in the dropped tail is checked too");
    is_int(0, count_files(outdir), "tail out of range: nothing left");

    /* with --force, a failed import leaves the existing output untouched */
    ids[N - 1] = 7;
    write_ids(src, ids, N, 4);
    rc = do_import(src, out, QID_TOKENS_SRC_U32, 50304, 128, &m, &err);
    is_int(QID_OK, rc, "good import into the directory");
    rc = do_import(src, out, QID_TOKENS_SRC_U32, 50304, 128, &m, &err);
    is_int(QID_E_INVALID, rc, "existing output without force fails");
    like(err.msg, "exists (use --force to replace it)", "existing output: message");
    ids[3] = 99999;
    write_ids(src, ids, N, 4);
    qid_tokens_import_opts o = {.input = src,
                                .output = out,
                                .source = QID_TOKENS_SRC_U32,
                                .vocab_size = 50304,
                                .tokenizer = "t",
                                .seq_len = 64,
                                .force = 1};
    rc = qid_tokens_import(&o, &m, &err);
    like(err.msg, "token id 99999 at position 3 is outside", "forced import of bad ids fails");
    qid_tokens t;
    rc = qid_tokens_open(out, &t, &err);
    ok(rc == QID_OK && t.meta.seq_len == 128, "forced failure: the previous output is intact");
    qid_tokens_close(&t);
    is_int(1, count_files(outdir), "forced failure: no .tmp left beside it");
}

/* Each malformed .npy: its error substring, and nothing written. */
static void test_bad_npy(void)
{
    uint64_t ids[64];
    for (size_t i = 0; i < 64; i++)
        ids[i] = i;
    char outdir[600], cmd[700], out[700];
    snprintf(outdir, sizeof outdir, "%s/npy-out", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", outdir);
    if (system(cmd) != 0) bail("cannot create %s", outdir);
    snprintf(out, sizeof out, "%s/x.h5", outdir);
    char *bad = path_in("bad.npy");
    static const struct {
        const char *what, *dict, *msg;
        int major;
        size_t size, n;
    } cases[] = {
        {"big-endian", "{'descr': '>u2', 'fortran_order': False, 'shape': (64,), }",
         "big-endian dtype '>u2' is not supported", 1, 2, 64},
        {"fortran order", "{'descr': '<u2', 'fortran_order': True, 'shape': (8, 8), }", "fortran_order is True", 1, 2,
         64},
        {"shape/data mismatch", "{'descr': '<u2', 'fortran_order': False, 'shape': (65,), }",
         "shape (65,) of '<u2' needs 130 data bytes but the file has 128 after the 128-byte header", 1, 2, 64},
        {"2-D mismatch", "{'descr': '<u4', 'fortran_order': False, 'shape': (8, 9), }",
         "shape (8, 9) of '<u4' needs 288 data bytes but the file has 256", 1, 4, 64},
        {"float dtype", "{'descr': '<f4', 'fortran_order': False, 'shape': (64,), }",
         "dtype '<f4' is not an integer token type", 1, 4, 64},
        {"'|' on a 2-byte type", "{'descr': '|u2', 'fortran_order': False, 'shape': (64,), }",
         "dtype '|u2' has no byte order", 1, 2, 64},
        {"3-D shape", "{'descr': '<u2', 'fortran_order': False, 'shape': (4, 4, 4), }",
         "shape has more than 2 dimensions", 1, 2, 64},
        {"scalar", "{'descr': '<u2', 'fortran_order': False, 'shape': (), }", "shape () is a scalar", 1, 2, 1},
        {"missing key", "{'descr': '<u2', 'shape': (64,), }", "header has no 'fortran_order' key", 1, 2, 64},
        {"unknown key", "{'descr': '<u2', 'fortran_order': False, 'shape': (64,), 'x': 1}",
         "unexpected key 'x' in the header", 1, 2, 64},
        {"structured dtype", "{'descr': [('a', '<u2')], 'fortran_order': False, 'shape': (64,), }",
         "descr is not a string (structured dtypes are not supported)", 1, 2, 64},
        {"not a dict", "descr: '<u2'", "header is not a Python dict literal", 1, 2, 64},
        {"negative dimension", "{'descr': '<u2', 'fortran_order': False, 'shape': (-64,), }",
         "shape is not a tuple of non-negative integers", 1, 2, 64},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        write_npy(bad, cases[c].major, cases[c].dict, ids, cases[c].n, cases[c].size);
        qid_tokens_meta m;
        qid_error err;
        int rc = do_import(bad, out, QID_TOKENS_SRC_AUTO, 50304, 4, &m, &err);
        char want[300];
        snprintf(want, sizeof want, "invalid .npy file '%s': %s", bad, cases[c].msg);
        ok(rc == QID_E_FORMAT && strstr(err.msg, want) && !strchr(err.msg, '\n'), "bad npy (%s): one-line error",
           cases[c].what);
        if (!strstr(err.msg, want)) diag("wanted: %s\n#   seen: %s", want, err.msg);
    }

    /* byte-level damage */
    uint8_t b[256];
    size_t h = npy_header(b, 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (64,), }");
    for (size_t i = 0; i < 64; i++)
        put_le(b + h + 2 * i, i, 2);
    qid_error err;
    qid_tokens_meta m;

    b[0] = 0x92;
    tap_write_file(bad, b, h + 128);
    int rc = do_import(bad, out, QID_TOKENS_SRC_NPY, 50304, 4, &m, &err);
    like(err.msg, "invalid .npy file", "bad magic: named");
    like(err.msg, "bad magic (expected \\x93NUMPY)", "bad magic: message");
    rc = do_import(bad, out, QID_TOKENS_SRC_AUTO, 50304, 4, &m, &err);
    like(err.msg, "is not a .npy file (bad magic); give --dtype uint16|uint32", "bad magic without --dtype: hint");
    b[0] = 0x93;

    tap_write_file(bad, b, 40); /* header says 118 bytes, the file ends at 40 */
    rc = do_import(bad, out, QID_TOKENS_SRC_NPY, 50304, 4, &m, &err);
    like(err.msg, "truncated header (it says 118 bytes, the file ends after 30)", "truncated header: message");
    tap_write_file(bad, b, 7);
    rc = do_import(bad, out, QID_TOKENS_SRC_NPY, 50304, 4, &m, &err);
    like(err.msg, "truncated header (file has 7 bytes)", "truncated before the version: message");

    b[6] = 4;
    tap_write_file(bad, b, h + 128);
    rc = do_import(bad, out, QID_TOKENS_SRC_NPY, 50304, 4, &m, &err);
    like(err.msg, "unsupported format version 4.0 (qid reads 1.0, 2.0 and 3.0)", "version 4.0: message");
    b[6] = 2; /* a version 1 header read as version 2: a 4-byte length of ~1.6 GB */
    tap_write_file(bad, b, h + 128);
    rc = do_import(bad, out, QID_TOKENS_SRC_NPY, 50304, 4, &m, &err);
    like(err.msg, "exceeds the limit of 65536 bytes", "header length over the limit: message");
    b[6] = 1;

    /* a negative id in a signed array */
    uint64_t neg[16];
    for (size_t i = 0; i < 16; i++)
        neg[i] = i;
    neg[9] = (uint64_t)-5;
    write_npy(bad, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (16,), }", neg, 16, 4);
    rc = do_import(bad, out, QID_TOKENS_SRC_AUTO, 50304, 4, &m, &err);
    is_int(QID_E_INVALID, rc, "negative id: import fails");
    char want[800];
    snprintf(want, sizeof want, "token id -5 at position 9 is negative in '%s'", bad);
    is_string(want, err.msg, "negative id: message with position");
    neg[9] = (uint64_t)INT64_MIN;
    write_npy(bad, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (16,), }", neg, 16, 8);
    rc = do_import(bad, out, QID_TOKENS_SRC_AUTO, 50304, 4, &m, &err);
    like(err.msg, "token id -9223372036854775808 at position 9 is negative", "INT64_MIN id: message");
    is_int(0, count_files(outdir), "malformed npy: no output and no .tmp left");
}

static void test_other_errors(void)
{
    qid_tokens_meta m;
    qid_error err;
    char *src = path_in("odd.u16");
    tap_write_file(src, "abcde", 5);
    int rc = do_import(src, path_in("odd.h5"), QID_TOKENS_SRC_U16, 50304, 2, &m, &err);
    is_int(QID_E_FORMAT, rc, "raw uint16 of 5 bytes fails");
    like(err.msg, "(5 bytes) is not a multiple of 2 (raw uint16 ids)", "odd raw size: message");
    rc = do_import(path_in("story.txt"), path_in("short.h5"), QID_TOKENS_SRC_TEXT, 0, 57, &m, &err);
    is_int(QID_E_INVALID, rc, "fewer tokens than a window fails");
    like(err.msg, "holds 56 tokens, fewer than one window of 57", "short source: message");
    rc = do_import(path_in("missing.u16"), path_in("m.h5"), QID_TOKENS_SRC_U16, 50304, 2, &m, &err);
    is_int(QID_E_IO, rc, "missing source fails");
    like(err.msg, "missing.u16': No such file or directory", "missing source: message");
    rc = do_import(path_in("data.u16"), path_in("v.h5"), QID_TOKENS_SRC_U16, 0, 2, &m, &err);
    like(err.msg, "vocabulary size 0 is outside 1..4294967296", "vocab 0 rejected");
    ok(!tap_exists(path_in("odd.h5")) && !tap_exists(path_in("short.h5")) && !tap_exists(path_in("v.h5")),
       "failed imports leave no output");
}

static void test_reader_checks(void)
{
    qid_error err;
    qid_tokens t;
    /* a file of another qid format */
    char *other = path_in("ckpt.h5"), *tmp = NULL;
    hid_t fid = qid_h5_create_tmp(other, &tmp, &err);
    int rc = fid >= 0 ? qid_h5_write_format(fid, "qid-checkpoint", 1, &err) : QID_E_HDF5;
    if (!rc) rc = qid_h5_commit(fid, tmp, other, &err);
    if (rc) bail("cannot write %s: %s", other, err.msg);
    rc = qid_tokens_open(other, &t, &err);
    is_int(QID_E_FORMAT, rc, "wrong format: open fails");
    like(err.msg, "is a qid-checkpoint file, expected qid-tokens", "wrong format: says what it is");
    like(err.msg, "hint: token sets are written by 'qid tokens'", "wrong format: hint");
    ok(t.file == H5I_INVALID_HID, "wrong format: handle invalid");

    /* a newer schema version */
    char cmd[1400], *newer = path_in("newer.h5");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path_in("u16.h5"), newer);
    if (system(cmd) != 0) bail("cannot copy");
    fid = H5Fopen(newer, H5F_ACC_RDWR, H5P_DEFAULT);
    if (fid < 0 || qid_h5_attr_write_i64(fid, "schema_version", 2, &err)) bail("cannot edit %s", newer);
    H5Fclose(fid);
    rc = qid_tokens_open(newer, &t, &err);
    is_int(QID_E_FORMAT, rc, "schema_version 2: open fails");
    like(err.msg, "schema_version 2, this qid reads versions 1..1", "schema_version 2: message");
    like(err.msg, "hint: upgrade qid", "schema_version 2: hint");

    /* a corrupt vocab_size: the reader still catches ids outside it */
    char *small = path_in("small.h5");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path_in("u16.h5"), small);
    if (system(cmd) != 0) bail("cannot copy");
    fid = H5Fopen(small, H5F_ACC_RDWR, H5P_DEFAULT);
    if (fid < 0 || qid_h5_attr_write_i64(fid, "vocab_size", 10, &err)) bail("cannot edit %s", small);
    H5Fclose(fid);
    rc = qid_tokens_open(small, &t, &err);
    is_int(QID_OK, rc, "vocab 10: opens");
    uint32_t buf[64];
    rc = qid_tokens_read(&t, 0, 1, buf, &err);
    is_int(QID_E_FORMAT, rc, "vocab 10: reading window 0 fails");
    like(err.msg, "at window 0 position 1 of '/tokens' in", "vocab 10: message names window, position, dataset");
    qid_tokens_close(&t);

    /* inconsistent counts */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path_in("u16.h5"), small);
    if (system(cmd) != 0) bail("cannot copy");
    fid = H5Fopen(small, H5F_ACC_RDWR, H5P_DEFAULT);
    if (fid < 0 || qid_h5_attr_write_i64(fid, "n_windows", 14, &err) ||
        qid_h5_attr_write_i64(fid, "tokens_dropped", 104, &err))
        bail("cannot edit %s", small);
    H5Fclose(fid);
    rc = qid_tokens_open(small, &t, &err);
    like(err.msg, "dataset '/tokens' in '", "shape mismatch: names the dataset");
    like(err.msg, "has 2 dims [15, 64], the attributes say [14, 64]", "shape mismatch: message");

    /* not HDF5 at all */
    rc = qid_tokens_open(path_in("story.txt"), &t, &err);
    like(err.msg, "is not an HDF5 file", "text file: not HDF5");
}

static void test_summary(void)
{
    char *buf = NULL;
    size_t len = 0;
    qid_error err;
    FILE *f = open_memstream(&buf, &len);
    int rc = cli_inspect_file(path_in("u16.h5"), 0, f, &err);
    fclose(f);
    is_int(QID_OK, rc, "summary succeeds");
    like(buf, "qid token set, schema version 1", "summary: kind and schema version");
    like(buf, "vocab size             50304", "summary: vocab");
    like(buf, "windows                15 x 64 tokens (960 tokens)", "summary: windows x seq_len");
    like(buf, "dtype                  uint16", "summary: dtype");
    like(buf, "source                 data.u16 (1000 tokens, 40 dropped)", "summary: source");
    like(buf, "tokenizer              test-tok", "summary: tokenizer");
    free(buf);
}

static void test_parse_direct(void)
{
    uint8_t b[200];
    size_t h = npy_header(b, 3, "{\"descr\": \"<u2\", \"shape\": (2, 3), \"fortran_order\": False}");
    qid_tokens_npy npy;
    qid_error err;
    int rc = qid_tokens_npy_parse(b, h, h + 12, "mem", &npy, &err);
    if (!is_int(QID_OK, rc, "parse: double quotes, any key order, no trailing comma")) diag("%s", err.msg);
    ok(npy.ndim == 2 && npy.shape[0] == 2 && npy.shape[1] == 3 && npy.n_elements == 6 && npy.elem_size == 2 &&
           npy.data_offset == h && npy.major == 3,
       "parse: fields");
    h = npy_header(b, 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (99999999999999999999,), }");
    rc = qid_tokens_npy_parse(b, h, h, "mem", &npy, &err);
    like(err.msg, "shape dimension overflows 64 bits", "parse: huge dimension");
    h = npy_header(b, 1, "{'descr': '<u8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }");
    rc = qid_tokens_npy_parse(b, h, h, "mem", &npy, &err);
    like(err.msg, "shape overflows 64 bits", "parse: huge product");
    h = npy_header(b, 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (5), }");
    rc = qid_tokens_npy_parse(b, h, h + 10, "mem", &npy, &err);
    like(err.msg, "shape (n) is not a tuple", "parse: (5) is not a tuple");
    h = npy_header(b, 1, "{'descr': '<u2', 'fortran_order': False, 'descr': '<u2', 'shape': (5,), }");
    rc = qid_tokens_npy_parse(b, h, h + 10, "mem", &npy, &err);
    like(err.msg, "header repeats 'descr'", "parse: repeated key");
    h = npy_header(b, 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (5,), } x");
    rc = qid_tokens_npy_parse(b, h, h + 10, "mem", &npy, &err);
    like(err.msg, "unexpected text after the header dict", "parse: trailing text");
    h = npy_header(b, 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (0,), }");
    rc = qid_tokens_npy_parse(b, h, h, "mem", &npy, &err);
    ok(rc == QID_OK && npy.n_elements == 0, "parse: an empty array is a valid header");
}

int main(void)
{
    plan(135);
    qid_h5_silence();
    snprintf(dir, sizeof dir, "%s", tap_tmpdir());
    test_sha256_vectors();
    test_u16();
    test_u32();
    test_npy();
    test_text();
    test_out_of_range();
    test_bad_npy();
    test_other_errors();
    test_reader_checks();
    test_summary();
    test_parse_direct();
    return 0;
}
