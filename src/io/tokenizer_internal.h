/* tokenizer_internal.h - what tokenizer.c (the tokenizer.json pipeline) and
 * tokenizer_bpe.c (the BPE model) share: a string-to-id hash map, the BPE
 * model's tables and its per-thread word cache.
 *
 * Does not: belong to the public contract (include/tokenizer.h). */
#ifndef QID_TOKENIZER_INTERNAL_H
#define QID_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tokenizer.h"

/* ---- byte strings to ids (open addressing; keys copied into one arena) -- */

typedef struct tk_map {
    uint32_t *slot; /* cap slots: entry index + 1, 0 = empty */
    size_t cap;
    struct tk_entry {
        uint64_t hash;
        size_t off; /* key in arena */
        uint32_t len;
        uint32_t id;
    } * e;
    size_t n, e_cap;
    char *arena;
    size_t arena_len, arena_cap;
} tk_map;

uint64_t tk_hash(const void *s, size_t n);
/* Inserts (key, id); returns 0, or 1 when the key was there (id unchanged). */
int tk_map_put(tk_map *m, const char *key, size_t n, uint32_t id);
/* The id of key, or -1. */
int64_t tk_map_get(const tk_map *m, const char *key, size_t n);
void tk_map_free(tk_map *m);

/* ---- the BPE model ----------------------------------------------------- */

typedef struct tk_bpe {
    tk_map vocab;         /* token -> id (byte-level: the raw bytes a token stands for) */
    int byte_level;       /* symbols are bytes (ByteLevel pre-tokenizer) rather than characters */
    int64_t byte_id[256]; /* byte-level: the id of each single byte; else the <0xXX> token (byte_fallback) */
    int byte_fallback, fuse_unk, ignore_merges;
    int64_t unk_id; /* -1: none */
    /* merges: (left id, right id) -> rank and merged id, open addressing on the pair */
    struct tk_merge {
        uint64_t pair; /* left << 32 | right; UINT64_MAX = empty */
        uint32_t rank, id;
    } * merge;
    size_t merge_cap, n_merges;
} tk_bpe;

/* Adds merge (left, right) -> id with the given rank (a repeated pair keeps
 * its first, lower rank, as tokenizers does). */
void tk_bpe_add_merge(tk_bpe *b, uint32_t left, uint32_t right, uint32_t rank, uint32_t id);
void tk_bpe_free(tk_bpe *b);

/* A growable vector of ids. */
typedef qid_token_ids tk_ids;
#define tk_ids_push qid_token_ids_push

/* Per-thread scratch of the model: symbols, the merge heap, the word cache. */
typedef struct tk_bpe_scratch tk_bpe_scratch;
tk_bpe_scratch *tk_bpe_scratch_new(void);
void tk_bpe_scratch_free(tk_bpe_scratch *s);

/* Encodes one pre-tokenized word w[0, n) (byte-level: raw bytes; else UTF-8
 * characters) and appends its ids to out. */
void tk_bpe_encode_word(const tk_bpe *b, tk_bpe_scratch *s, const char *w, size_t n, tk_ids *out);

#endif
