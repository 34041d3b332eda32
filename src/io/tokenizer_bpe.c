/* tokenizer_bpe.c - the BPE model of a tokenizer.json (tokenizer.h): a word
 * becomes symbols (bytes for byte-level pipelines, characters otherwise,
 * with byte fallback and unknown-token fusing as tokenizers does them), then
 * the merge of lowest rank is applied until none applies. Merges come from a
 * binary heap ordered by (rank, position), so a long word costs
 * O(n log n), not a rescan per merge; a stale heap entry is recognised as
 * tokenizers' word.rs does it (the pair now at its position no longer
 * merges into the same id). Words up to CACHE_WORD_MAX bytes are cached per
 * thread.
 *
 * Does not: read JSON or know about normalizers and pre-tokenizers
 * (tokenizer.c), do BPE dropout, or handle continuing-subword prefixes and
 * end-of-word suffixes (the loader refuses them). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

/* ---- hash map ---------------------------------------------------------------- */

uint64_t tk_hash(const void *s, size_t n)
{
    const uint8_t *p = s;
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static void map_grow(tk_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint32_t *slot = qid_calloc(cap, sizeof *slot, "a tokenizer hash table");
    for (size_t i = 0; i < m->n; i++) {
        size_t j = m->e[i].hash & (cap - 1);
        while (slot[j])
            j = (j + 1) & (cap - 1);
        slot[j] = (uint32_t)(i + 1);
    }
    free(m->slot);
    m->slot = slot;
    m->cap = cap;
}

int64_t tk_map_get(const tk_map *m, const char *key, size_t n)
{
    if (!m->cap) return -1;
    uint64_t h = tk_hash(key, n);
    for (size_t j = h & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
        uint32_t s = m->slot[j];
        if (!s) return -1;
        const struct tk_entry *e = &m->e[s - 1];
        if (e->hash == h && e->len == n && memcmp(m->arena + e->off, key, n) == 0) return e->id;
    }
}

int tk_map_put(tk_map *m, const char *key, size_t n, uint32_t id)
{
    if (tk_map_get(m, key, n) >= 0) return 1;
    if ((m->n + 1) * 2 > m->cap) map_grow(m);
    if (m->n == m->e_cap) {
        m->e_cap = m->e_cap ? m->e_cap * 2 : 1024;
        m->e = qid_realloc(m->e, qid_mul_size(m->e_cap, sizeof *m->e), "tokenizer vocabulary entries");
    }
    if (m->arena_len + n + 1 > m->arena_cap) {
        while (m->arena_len + n + 1 > m->arena_cap)
            m->arena_cap = m->arena_cap ? m->arena_cap * 2 : 65536;
        m->arena = qid_realloc(m->arena, m->arena_cap, "tokenizer vocabulary strings");
    }
    memcpy(m->arena + m->arena_len, key, n);
    struct tk_entry *e = &m->e[m->n];
    e->hash = tk_hash(key, n);
    e->off = m->arena_len;
    e->len = (uint32_t)n;
    e->id = id;
    m->arena_len += n;
    m->arena[m->arena_len++] = '\0';
    size_t j = e->hash & (m->cap - 1);
    while (m->slot[j])
        j = (j + 1) & (m->cap - 1);
    m->slot[j] = (uint32_t)(++m->n);
    return 0;
}

void tk_map_free(tk_map *m)
{
    free(m->slot);
    free(m->e);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

void qid_token_ids_push(qid_token_ids *v, uint32_t id)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 256;
        v->v = qid_realloc(v->v, qid_mul_size(v->cap, sizeof *v->v), "token ids");
    }
    v->v[v->n++] = id;
}

/* ---- merges ------------------------------------------------------------------- */

static uint64_t pair_hash(uint64_t p)
{
    p ^= p >> 33;
    p *= 0xff51afd7ed558ccdull;
    p ^= p >> 33;
    return p;
}

static const struct tk_merge *merge_get(const tk_bpe *b, uint32_t left, uint32_t right)
{
    if (!b->merge_cap) return NULL;
    uint64_t p = (uint64_t)left << 32 | right;
    for (size_t j = pair_hash(p) & (b->merge_cap - 1);; j = (j + 1) & (b->merge_cap - 1)) {
        if (b->merge[j].pair == p) return &b->merge[j];
        if (b->merge[j].pair == UINT64_MAX) return NULL;
    }
}

void tk_bpe_add_merge(tk_bpe *b, uint32_t left, uint32_t right, uint32_t rank, uint32_t id)
{
    if ((b->n_merges + 1) * 2 > b->merge_cap) {
        size_t cap = b->merge_cap ? b->merge_cap * 2 : 4096;
        struct tk_merge *m = qid_malloc(qid_mul_size(cap, sizeof *m), "the BPE merge table");
        for (size_t i = 0; i < cap; i++)
            m[i].pair = UINT64_MAX;
        for (size_t i = 0; i < b->merge_cap; i++) {
            if (b->merge[i].pair == UINT64_MAX) continue;
            size_t j = pair_hash(b->merge[i].pair) & (cap - 1);
            while (m[j].pair != UINT64_MAX)
                j = (j + 1) & (cap - 1);
            m[j] = b->merge[i];
        }
        free(b->merge);
        b->merge = m;
        b->merge_cap = cap;
    }
    uint64_t p = (uint64_t)left << 32 | right;
    size_t j = pair_hash(p) & (b->merge_cap - 1);
    while (b->merge[j].pair != UINT64_MAX) {
        if (b->merge[j].pair == p) return;
        j = (j + 1) & (b->merge_cap - 1);
    }
    b->merge[j].pair = p;
    b->merge[j].rank = rank;
    b->merge[j].id = id;
    b->n_merges++;
}

void tk_bpe_free(tk_bpe *b)
{
    tk_map_free(&b->vocab);
    free(b->merge);
    memset(b, 0, sizeof *b);
}

/* ---- per-thread scratch: symbols, heap, cache ---------------------------------- */

#define CACHE_SLOTS    (1u << 16)
#define CACHE_WORD_MAX 64 /* bytes */
#define CACHE_IDS_MAX  16

typedef struct symbol {
    uint32_t id;
    int32_t prev, next; /* -1 at the ends */
    uint32_t len;       /* bytes; 0 once merged into its left neighbour */
} symbol;

typedef struct hentry {
    uint32_t rank, pos, id;
} hentry;

typedef struct centry {
    uint64_t hash;
    uint8_t len, n_ids; /* len 0 = empty */
    char word[CACHE_WORD_MAX];
    uint32_t ids[CACHE_IDS_MAX];
} centry;

struct tk_bpe_scratch {
    symbol *sym;
    size_t sym_cap;
    hentry *heap;
    size_t heap_n, heap_cap;
    centry *cache;
};

tk_bpe_scratch *tk_bpe_scratch_new(void)
{
    return qid_calloc(1, sizeof(tk_bpe_scratch), "tokenizer scratch"); /* the cache comes with the first word */
}

void tk_bpe_scratch_free(tk_bpe_scratch *s)
{
    if (!s) return;
    free(s->sym);
    free(s->heap);
    free(s->cache);
    free(s);
}

static int hless(const hentry *a, const hentry *b) { return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos; }

static void heap_push(tk_bpe_scratch *s, uint32_t rank, uint32_t pos, uint32_t id)
{
    if (s->heap_n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 256;
        s->heap = qid_realloc(s->heap, qid_mul_size(s->heap_cap, sizeof *s->heap), "the BPE merge heap");
    }
    size_t i = s->heap_n++;
    hentry e = {rank, pos, id};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&e, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
}

static hentry heap_pop(tk_bpe_scratch *s)
{
    hentry top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && hless(&s->heap[c + 1], &s->heap[c])) c++;
        if (!hless(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static void sym_add(tk_bpe_scratch *s, size_t *n, uint32_t id, uint32_t len)
{
    if (*n == s->sym_cap) {
        s->sym_cap = s->sym_cap ? s->sym_cap * 2 : 256;
        s->sym = qid_realloc(s->sym, qid_mul_size(s->sym_cap, sizeof *s->sym), "BPE symbols");
    }
    symbol *y = &s->sym[*n];
    y->id = id;
    y->len = len;
    y->prev = (int32_t)*n - 1;
    y->next = -1;
    if (*n) s->sym[*n - 1].next = (int32_t)*n;
    (*n)++;
}

/* Length of the UTF-8 character starting with byte c (input is valid UTF-8). */
static size_t utf8_len(uint8_t c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

/* The initial symbols of w, as tokenizers' BPE::merge_word makes them. */
static size_t initial_symbols(const tk_bpe *b, tk_bpe_scratch *s, const char *w, size_t n)
{
    size_t ns = 0;
    if (b->byte_level) {
        for (size_t i = 0; i < n; i++) {
            int64_t id = b->byte_id[(uint8_t)w[i]];
            if (id >= 0)
                sym_add(s, &ns, (uint32_t)id, 1);
            else if (b->unk_id >= 0) {
                if (b->fuse_unk && ns && s->sym[ns - 1].id == (uint32_t)b->unk_id && s->sym[ns - 1].len)
                    s->sym[ns - 1].len += 1;
                else
                    sym_add(s, &ns, (uint32_t)b->unk_id, 1);
            }
        }
        return ns;
    }
    int unk_open = 0; /* the last symbol is an unknown that may still fuse */
    for (size_t i = 0; i < n;) {
        size_t cl = utf8_len((uint8_t)w[i]);
        if (cl > n - i) cl = n - i;
        int64_t id = tk_map_get(&b->vocab, w + i, cl);
        if (id >= 0) {
            sym_add(s, &ns, (uint32_t)id, (uint32_t)cl);
            unk_open = 0;
        } else {
            int done = 0;
            if (b->byte_fallback) {
                size_t k = 0;
                while (k < cl && b->byte_id[(uint8_t)w[i + k]] >= 0)
                    k++;
                if (k == cl) {
                    for (k = 0; k < cl; k++)
                        sym_add(s, &ns, (uint32_t)b->byte_id[(uint8_t)w[i + k]], 1);
                    unk_open = 0;
                    done = 1;
                }
            }
            if (!done && b->unk_id >= 0) {
                if (b->fuse_unk && unk_open)
                    s->sym[ns - 1].len += (uint32_t)cl;
                else
                    sym_add(s, &ns, (uint32_t)b->unk_id, (uint32_t)cl);
                unk_open = 1;
            }
        }
        i += cl;
    }
    return ns;
}

static void merge_all(const tk_bpe *b, tk_bpe_scratch *s, size_t ns)
{
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        const struct tk_merge *m = merge_get(b, s->sym[i].id, s->sym[i + 1].id);
        if (m) heap_push(s, m->rank, (uint32_t)i, m->id);
    }
    while (s->heap_n) {
        hentry top = heap_pop(s);
        symbol *cur = &s->sym[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        symbol *right = &s->sym[cur->next];
        const struct tk_merge *m = merge_get(b, cur->id, right->id);
        if (!m || m->id != top.id) continue;
        cur->id = top.id;
        cur->len += right->len;
        right->len = 0;
        cur->next = right->next;
        if (cur->next >= 0) s->sym[cur->next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            const struct tk_merge *p = merge_get(b, s->sym[cur->prev].id, cur->id);
            if (p) heap_push(s, p->rank, (uint32_t)cur->prev, p->id);
        }
        if (cur->next >= 0) {
            const struct tk_merge *q = merge_get(b, cur->id, s->sym[cur->next].id);
            if (q) heap_push(s, q->rank, top.pos, q->id);
        }
    }
}

void tk_bpe_encode_word(const tk_bpe *b, tk_bpe_scratch *s, const char *w, size_t n, tk_ids *out)
{
    if (n == 0) return;
    if (b->ignore_merges) {
        int64_t id = tk_map_get(&b->vocab, w, n);
        if (id >= 0) {
            tk_ids_push(out, (uint32_t)id);
            return;
        }
    }
    centry *c = NULL;
    uint64_t h = 0;
    if (n <= CACHE_WORD_MAX) {
        if (!s->cache) s->cache = qid_calloc(CACHE_SLOTS, sizeof *s->cache, "the tokenizer word cache");
        h = tk_hash(w, n);
        c = &s->cache[h & (CACHE_SLOTS - 1)];
        if (c->len == n && c->hash == h && memcmp(c->word, w, n) == 0) {
            for (unsigned i = 0; i < c->n_ids; i++)
                tk_ids_push(out, c->ids[i]);
            return;
        }
    }
    size_t ns = initial_symbols(b, s, w, n), first = out->n;
    if (ns == 0) return;
    merge_all(b, s, ns);
    for (int32_t i = 0; i >= 0; i = s->sym[i].next)
        tk_ids_push(out, s->sym[i].id);
    size_t got = out->n - first;
    if (c && got <= CACHE_IDS_MAX) {
        c->hash = h;
        c->len = (uint8_t)n;
        c->n_ids = (uint8_t)got;
        memcpy(c->word, w, n);
        memcpy(c->ids, out->v + first, got * sizeof *out->v);
    }
}
