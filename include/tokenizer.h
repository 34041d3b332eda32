/* tokenizer.h - Hugging Face tokenizer.json files run in C: the pipeline
 * `tokenizers` runs for the BPE families qid imports, so that `qid tokens
 * --tokenizer tokenizer.json --from TEXT` gives the ids the model was
 * trained on, with no Python.
 *
 * The pipeline, as tokenizers' Tokenizer::encode runs it (no post-processor):
 *   1. added tokens with "normalized": false are split out of the raw text
 *      (leftmost-longest; lstrip, rstrip and single_word honoured);
 *   2. each remaining piece is normalized: NFC, NFD, NFKC, NFKD (utf8proc),
 *      Lowercase, Replace (string or regex), Prepend, Strip, Sequence;
 *   3. added tokens with "normalized": true are split out of the result;
 *   4. the pre-tokenizer cuts pieces into words: ByteLevel (add_prefix_space,
 *      use_regex with GPT-2's pattern), Split (string or regex, every
 *      behaviour, invert), Metaspace (replacement, prepend_scheme, split),
 *      Digits, Sequence; regexes run on PCRE2 with JIT and Unicode
 *      properties;
 *   5. each word goes through the BPE model: byte-level symbols, or
 *      characters with byte_fallback (<0xXX> tokens), unk_token and fuse_unk;
 *      ignore_merges; merges applied by rank.
 * Families covered: GPT-2, GPT-NeoX/Pythia, Llama 3, Qwen2 (byte-level) and
 * Llama 2, Mistral (SentencePiece-style BPE with byte fallback).
 *
 * Does not: run the post-processor (documents get BOS/EOS by the caller's
 * stated policy instead), truncate, pad, decode, or load WordPiece, Unigram
 * or WordLevel models (refused with a one-line error). Text must be valid
 * UTF-8 (the caller checks it). A loaded tokenizer is read-only and may be
 * shared between threads; each thread needs its own qid_tokenizer_state. */
#ifndef QID_TOKENIZER_H
#define QID_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Largest tokenizer.json read: 256 MiB (Llama 3's is 9 MB). */
#define QID_TOKENIZER_MAX_BYTES ((size_t)256 << 20)

typedef struct qid_tokenizer qid_tokenizer;
typedef struct qid_tokenizer_state qid_tokenizer_state;

/* A growable vector of ids (malloc'd v; free it). */
typedef struct qid_token_ids {
    uint32_t *v;
    size_t n, cap;
} qid_token_ids;

/* Appends id to v (growing it; dies when memory runs out). */
void qid_token_ids_push(qid_token_ids *v, uint32_t id);

/* Parses a tokenizer.json held in json[0, len) (need not be NUL-terminated);
 * name is used in messages. Returns QID_OK and *out, or QID_E_FORMAT with one
 * line "invalid tokenizer '<name>': <what>" (malformed JSON, a model or
 * component qid does not run, a merge naming a token outside the
 * vocabulary, a regex PCRE2 refuses, ...). The fuzz target's entry point. */
int qid_tokenizer_parse(const char *json, size_t len, const char *name, qid_tokenizer **out, qid_error *err);

/* Reads path (at most QID_TOKENIZER_MAX_BYTES) and parses it; records the
 * SHA-256 of its bytes. QID_E_IO when it cannot be read. */
int qid_tokenizer_load(const char *path, qid_tokenizer **out, qid_error *err);

void qid_tokenizer_free(qid_tokenizer *t);

/* 1 + the largest id of the vocabulary and the added tokens. */
int64_t qid_tokenizer_vocab_size(const qid_tokenizer *t);

/* The id of a token given by its content (an added token first, then the
 * model's vocabulary as written in the file), or -1. */
int64_t qid_tokenizer_token_id(const qid_tokenizer *t, const char *content);

/* 64 hex digits of the file's SHA-256 ("" after qid_tokenizer_parse). */
const char *qid_tokenizer_sha256(const qid_tokenizer *t);

/* "byte-level BPE" or "BPE" and what the pipeline holds, e.g.
 * "byte-level BPE (NFC; ByteLevel), 50277 ids, 50009 merges". */
const char *qid_tokenizer_describe(const qid_tokenizer *t);

/* Per-thread scratch (regex match data, the BPE word cache). */
qid_tokenizer_state *qid_tokenizer_state_new(const qid_tokenizer *t);
void qid_tokenizer_state_free(qid_tokenizer_state *s);

/* Encodes text[0, len), valid UTF-8, appending its ids to out. Fails only
 * when a regex cannot be matched (QID_E_INVALID naming PCRE2's reason). */
int qid_tokenizer_encode(const qid_tokenizer *t, qid_tokenizer_state *s, const char *text, size_t len,
                         qid_token_ids *out, qid_error *err);

/* Index of the first byte of s[0, n) that is not part of valid UTF-8
 * (overlong forms, surrogates and code points past U+10FFFF are invalid),
 * or n when it is all valid. */
size_t qid_utf8_valid_prefix(const char *s, size_t n);

#endif
