/* tokens.h - the qid token set (hdf5-schema/tokens.md): token ids cut into
 * fixed-length windows, with the vocabulary size, the tokenizer's name and
 * the SHA-256 of the source they came from.
 *
 * Writing (for `qid tokens`, cmd_tokens.c): imports ids from a raw
 * little-endian uint16/uint32 file, a NumPy .npy array, or the bytes of any
 * file (byte-level vocabulary of 256), streaming the source in blocks of whole windows. Every id is checked
 * against the vocabulary; the output appears only when complete (temporary
 * name, renamed at the end).
 * Reading (the evaluator): open, metadata, windows [first, first + count) as
 * uint32, close.
 *
 * Ids may also come from a feed (qid_tokens_feed): Megatron indexed
 * datasets (megatron.h) and text run through a tokenizer.json (tokenizer.h).
 *
 * Does not: tokenize (tokenizer.h does), shuffle or sample windows, or open
 * files with the MPI-IO driver. Nothing here is collective: every rank opens
 * token sets read-only on its own. */
#ifndef QID_TOKENS_H
#define QID_TOKENS_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

#define QID_TOKENS_FORMAT          "qid-tokens"
#define QID_TOKENS_SCHEMA_VERSION  1
#define QID_TOKENS_DEFAULT_SEQ_LEN 2048
/* Largest window: 16 Mi tokens (64 MiB of uint32 per window). */
#define QID_TOKENS_MAX_SEQ_LEN ((int64_t)1 << 24)
/* Largest vocabulary: ids are stored as uint32. */
#define QID_TOKENS_MAX_VOCAB ((int64_t)1 << 32)
/* Vocabularies up to this size are stored as uint16, larger ones as uint32. */
#define QID_TOKENS_U16_VOCAB ((int64_t)65536)
/* Longest .npy header dictionary accepted (numpy itself reads <= 10000). */
#define QID_TOKENS_NPY_MAX_HEADER ((size_t)65536)

/* ---- .npy headers (untrusted input) --------------------------------------- */

/* What a .npy header says, after validation. */
typedef struct qid_tokens_npy {
    int major, minor;    /* format version: 1.0, 2.0 or 3.0 */
    char descr[8];       /* dtype as written, e.g. "<u2" */
    size_t elem_size;    /* 1, 2, 4 or 8 bytes, little-endian */
    int is_signed;       /* i2, i4, i8 (negative ids are rejected on import) */
    int ndim;            /* 1 or 2 */
    uint64_t shape[2];   /* shape[1] = 1 when ndim = 1 */
    uint64_t n_elements; /* product of the shape, C order */
    size_t data_offset;  /* bytes before the data: magic, version, length, header */
} qid_tokens_npy;

/* Parses and validates the header of a .npy file. buf holds the first len
 * bytes of the file (len may be less than file_size, but must cover the
 * whole header: 12 + QID_TOKENS_NPY_MAX_HEADER bytes always suffice);
 * file_size is the size of the whole file; name is used in messages only.
 *
 * Accepts magic "\x93NUMPY", versions 1.0, 2.0 and 3.0, a header dictionary
 * of at most QID_TOKENS_NPY_MAX_HEADER bytes with exactly the keys 'descr',
 * 'fortran_order' (False only) and 'shape' (1 or 2 dims), descr one of
 * u1 i1 u2 i2 u4 i4 u8 i8 in little-endian ('<'), native ('=', little-endian
 * hosts only) or, for 1-byte types, '|' byte order, and exactly
 * n_elements * elem_size data bytes after the header.
 *
 * Returns QID_OK and fills *npy, or QID_E_FORMAT with one line
 * "invalid .npy file '<name>': <what is wrong>". Never reads outside
 * buf[0, len) and never allocates. */
int qid_tokens_npy_parse(const void *buf, size_t len, uint64_t file_size, const char *name, qid_tokens_npy *npy,
                         qid_error *err);

/* ---- writing ---------------------------------------------------------------- */

typedef enum qid_tokens_source {
    QID_TOKENS_SRC_AUTO = 0, /* a .npy file, recognised by its magic */
    QID_TOKENS_SRC_U16 = 1,  /* raw little-endian uint16 ids */
    QID_TOKENS_SRC_U32 = 2,  /* raw little-endian uint32 ids */
    QID_TOKENS_SRC_NPY = 3,  /* NumPy .npy */
    QID_TOKENS_SRC_TEXT = 4, /* the bytes of any file, vocabulary 256, tokenizer "bytes" */
} qid_tokens_source;

/* Ids from another reader (megatron.h's indexed datasets, tokenizer.h's
 * text): qid_tokens_import takes them in order instead of opening input. */
typedef struct qid_tokens_feed {
    uint64_t n_tokens; /* ids the feed gives in all */
    /* Puts the next n ids (n <= what is left) in ids: QID_OK, or a status
     * with err naming the file and position (an id that is negative or does
     * not fit 32 bits is the feed's error; the vocabulary is checked after). */
    int (*read)(void *ctx, uint32_t *ids, size_t n, qid_error *err);
    /* After the last read: the source_sha256 to record (64 hex digits). */
    void (*digest)(void *ctx, char hex[65]);
    void *ctx;
} qid_tokens_feed;

/* An extra root attribute: a string when str is set, else the integer. */
typedef struct qid_tokens_attr {
    const char *name;
    const char *str;
    int64_t i64;
} qid_tokens_attr;

typedef struct qid_tokens_import_opts {
    const char *input;  /* source file */
    const char *output; /* token set to write */
    qid_tokens_source source;
    int64_t vocab_size;           /* 1..QID_TOKENS_MAX_VOCAB; required except for TEXT (0 there means 256) */
    const char *tokenizer;        /* NULL: "bytes" for TEXT, "unknown" otherwise */
    int64_t seq_len;              /* 1..QID_TOKENS_MAX_SEQ_LEN; 0 means QID_TOKENS_DEFAULT_SEQ_LEN */
    int64_t max_windows;          /* 0: as many as the source fills */
    int force;                    /* replace an existing output */
    const qid_tokens_feed *feed;  /* when set: the ids (source is ignored; input names the source file) */
    const qid_tokens_attr *attrs; /* extra root attributes, n_attrs of them */
    size_t n_attrs;
} qid_tokens_import_opts;

/* What a token set says about itself (the root attributes). */
typedef struct qid_tokens_meta {
    int64_t schema_version;
    int64_t vocab_size;
    int64_t seq_len;
    int64_t n_windows;
    int64_t source_tokens;  /* ids in the source */
    int64_t tokens_dropped; /* source_tokens - n_windows * seq_len: the tail that did
                               not fill a window, and any windows past --max-windows */
    int id_bits;            /* stored id type: 16 (uint16) or 32 (uint32) */
    char tokenizer[128];
    char source_file[256];  /* basename */
    char source_sha256[65]; /* of the whole source file's bytes */
    char created_by[64];    /* "qid <version>" */
} qid_tokens_meta;

/* Imports o->input into the token set o->output. Reads the source once,
 * in blocks of whole windows (one HDF5 chunk: at most 64 windows and about
 * 1 MiB of stored ids, or one window when windows are longer; memory does not
 * grow with the source), hashing every byte and checking every id, including
 * those in the dropped tail. On success fills *meta (may
 * be NULL) with what was written.
 *
 * Errors (one line naming the file, and the 0-based position of a bad id):
 * QID_E_IO (cannot read the source or write the output), QID_E_FORMAT
 * (malformed .npy, raw size not a multiple of the id size), QID_E_INVALID
 * (bad options, an id >= vocab_size or negative, fewer tokens than one
 * window, output exists without force), QID_E_HDF5. On any error no output
 * and no temporary file remain, and an existing output is left untouched. */
int qid_tokens_import(const qid_tokens_import_opts *o, qid_tokens_meta *meta, qid_error *err);

/* ---- reading ----------------------------------------------------------- */

typedef struct qid_tokens {
    hid_t file; /* H5I_INVALID_HID when closed */
    hid_t dset; /* /tokens */
    char path[1024];
    qid_tokens_meta meta;
} qid_tokens;

/* Opens a token set read-only: checks format and schema version (a hint
 * when the file is another qid format or newer than this qid), reads the
 * metadata and checks it against the /tokens dataset (shape, unsigned
 * 16/32-bit type, counts adding up). On failure returns the status with
 * err naming the file and object, and t->file is H5I_INVALID_HID (closing
 * it is then a no-op). */
int qid_tokens_open(const char *path, qid_tokens *t, qid_error *err);

/* Reads windows [first, first + count) into out, which holds
 * count * t->meta.seq_len ids (row-major: window, position). uint16 storage
 * is widened by HDF5. Every id read is checked against vocab_size, so a
 * corrupt file cannot index outside an embedding. count = 0 reads nothing.
 * Fails with QID_E_INVALID when the range is outside [0, n_windows). */
int qid_tokens_read(const qid_tokens *t, size_t first, size_t count, uint32_t *out, qid_error *err);

/* Closes the file (t may be closed or failed to open). */
void qid_tokens_close(qid_tokens *t);

#endif
