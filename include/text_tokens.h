/* text_tokens.h - a text file run through a tokenizer (tokenizer.h) into
 * one stream of ids for `qid tokens --tokenizer tokenizer.json --from TEXT`:
 * documents read from plain text (the whole file is one document) or JSON
 * lines (one document per line: the string field --text-field, "text" by
 * default), each checked to be valid UTF-8, encoded on --threads threads,
 * joined in file order with the stated BOS/EOS policy (an id before and/or
 * after every document, or none).
 *
 * The ids are the same on any number of threads: documents are split
 * between threads and joined in order. Memory: the file is mapped, the ids
 * are held (4 bytes each) until the token set is written.
 *
 * Does not: write the token set (qid_tokens_import does, through
 * qid_text_feed), split one document between threads, or repair invalid
 * UTF-8 (it is refused with the byte offset and line). */
#ifndef QID_TEXT_TOKENS_H
#define QID_TEXT_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tokenizer.h"
#include "tokens.h"

typedef enum qid_text_format {
    QID_TEXT_DETECT = 0, /* JSON lines when the first non-blank byte is '{', else plain text */
    QID_TEXT_PLAIN = 1,
    QID_TEXT_JSONL = 2,
} qid_text_format;

typedef struct qid_text_opts {
    const char *input;
    qid_text_format format;
    const char *field; /* JSON lines: the document's string field (NULL: "text") */
    int64_t bos_id;    /* -1: none */
    int64_t eos_id;    /* -1: none */
    int threads;       /* >= 1 */
    int progress;      /* print a progress line to stderr every 10 s */
} qid_text_opts;

typedef struct qid_text_result {
    uint32_t *ids; /* malloc'd; free with qid_text_result_free */
    size_t n_ids;
    size_t n_docs;
    uint64_t bytes;         /* size of the file */
    qid_text_format format; /* as detected */
    char sha256[65];        /* of the file's bytes */
    double seconds;         /* tokenizing alone */
    size_t pos;             /* the feed's position */
} qid_text_result;

/* Tokenizes o->input with t. Errors (one line naming the file): QID_E_IO,
 * QID_E_FORMAT (invalid UTF-8 with its byte offset and line, a JSON line
 * that is not an object with the string field, with its line number),
 * QID_E_INVALID (an empty input: no document). On error r holds nothing. */
int qid_text_tokenize(const qid_tokenizer *t, const qid_text_opts *o, qid_text_result *r, qid_error *err);

/* A qid_tokens_feed over r's ids (source_sha256: the file's). */
void qid_text_feed(qid_text_result *r, qid_tokens_feed *feed);

void qid_text_result_free(qid_text_result *r);

#endif
