/* torch_pickle.c - the restricted pickle interpreter for state dicts. See
 * torch_pickle.h for the contract. Values live in one list of nodes freed
 * together; nothing is ever called, REDUCE on an allowed callable only
 * builds a record from its arguments. */
#include "torch_pickle.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- values ------------------------------------------------------------- */

typedef enum {
    V_MARK,
    V_NONE,
    V_BOOL,
    V_INT,
    V_STR,
    V_TUPLE,
    V_LIST,
    V_DICT,
    V_GLOBAL,
    V_STORAGE,
    V_TENSOR,
} vkind;

static const char *const kind_names[] = {"mark", "None", "bool",   "int",     "string", "tuple",
                                         "list", "dict", "global", "storage", "tensor"};

typedef struct val {
    vkind kind;
    int64_t i; /* int, bool, global id, storage or tensor index */
    char *s;   /* string (NUL-terminated, may contain NUL) */
    size_t len;
    struct val **items; /* tuple/list items; dict: key, value, key, value ... */
    size_t n, cap;
} val;

/* The allowed globals. Storage classes map to a dtype. */
enum { G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_REBUILD_PARAMETER, G_STORAGE0 };
static const struct {
    const char *module, *name;
    qid_st_dtype dtype;
} globals[] = {
    {"collections", "OrderedDict", QID_ST_BOOL},
    {"torch._utils", "_rebuild_tensor_v2", QID_ST_BOOL},
    {"torch._utils", "_rebuild_parameter", QID_ST_BOOL},
    {"torch", "FloatStorage", QID_ST_F32},
    {"torch", "HalfStorage", QID_ST_F16},
    {"torch", "BFloat16Storage", QID_ST_BF16},
    {"torch", "DoubleStorage", QID_ST_F64},
    {"torch", "LongStorage", QID_ST_I64},
    {"torch", "IntStorage", QID_ST_I32},
    {"torch", "ShortStorage", QID_ST_I16},
    {"torch", "CharStorage", QID_ST_I8},
    {"torch", "ByteStorage", QID_ST_U8},
    {"torch", "BoolStorage", QID_ST_BOOL},
};
#define N_GLOBALS (sizeof globals / sizeof globals[0])

typedef struct {
    const uint8_t *buf;
    size_t len, pos, op_pos;
    const char *name;
    qid_error *err;
    val **nodes; /* every node, for freeing */
    size_t n_nodes, cap_nodes;
    val **stack;
    size_t sp, cap_stack;
    val **memo;
    size_t n_memo, cap_memo;
    qid_tp_dict *out;
    size_t cap_storages, cap_tensors;
} interp;

static val *new_val(interp *p, vkind k)
{
    if (p->n_nodes == p->cap_nodes) {
        p->cap_nodes = p->cap_nodes ? 2 * p->cap_nodes : 64;
        p->nodes = qid_realloc(p->nodes, p->cap_nodes * sizeof *p->nodes, "pickle values");
    }
    val *v = qid_calloc(1, sizeof *v, "a pickle value");
    v->kind = k;
    p->nodes[p->n_nodes++] = v;
    return v;
}

static void add_item(val *c, val *x)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 4;
        c->items = qid_realloc(c->items, c->cap * sizeof *c->items, "pickle container");
    }
    c->items[c->n++] = x;
}

static int fail(interp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(interp *p, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return qid_error_set(p->err, QID_E_FORMAT, "'%s': %s at byte %zu", p->name, what, p->op_pos);
}

/* ---- opcodes -------------------------------------------------------------- */

/* Names of every pickle opcode (Python's pickletools), for messages. */
static const char *opcode_name(uint8_t op)
{
    static const struct {
        uint8_t op;
        const char *name;
    } names[] = {
        {'(', "MARK"},          {'.', "STOP"},
        {'0', "POP"},           {'1', "POP_MARK"},
        {'2', "DUP"},           {'F', "FLOAT"},
        {'I', "INT"},           {'J', "BININT"},
        {'K', "BININT1"},       {'L', "LONG"},
        {'M', "BININT2"},       {'N', "NONE"},
        {'P', "PERSID"},        {'Q', "BINPERSID"},
        {'R', "REDUCE"},        {'S', "STRING"},
        {'T', "BINSTRING"},     {'U', "SHORT_BINSTRING"},
        {'V', "UNICODE"},       {'X', "BINUNICODE"},
        {'a', "APPEND"},        {'b', "BUILD"},
        {'c', "GLOBAL"},        {'d', "DICT"},
        {'}', "EMPTY_DICT"},    {'e', "APPENDS"},
        {'g', "GET"},           {'h', "BINGET"},
        {'i', "INST"},          {'j', "LONG_BINGET"},
        {'l', "LIST"},          {']', "EMPTY_LIST"},
        {'o', "OBJ"},           {'p', "PUT"},
        {'q', "BINPUT"},        {'r', "LONG_BINPUT"},
        {'s', "SETITEM"},       {'t', "TUPLE"},
        {')', "EMPTY_TUPLE"},   {'u', "SETITEMS"},
        {'G', "BINFLOAT"},      {0x80, "PROTO"},
        {0x81, "NEWOBJ"},       {0x82, "EXT1"},
        {0x83, "EXT2"},         {0x84, "EXT4"},
        {0x85, "TUPLE1"},       {0x86, "TUPLE2"},
        {0x87, "TUPLE3"},       {0x88, "NEWTRUE"},
        {0x89, "NEWFALSE"},     {0x8a, "LONG1"},
        {0x8b, "LONG4"},        {0x8c, "SHORT_BINUNICODE"},
        {0x8d, "BINUNICODE8"},  {0x8e, "BINBYTES8"},
        {0x8f, "EMPTY_SET"},    {0x90, "ADDITEMS"},
        {0x91, "FROZENSET"},    {0x92, "NEWOBJ_EX"},
        {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"},
        {0x95, "FRAME"},        {0x96, "BYTEARRAY8"},
        {0x97, "NEXT_BUFFER"},  {0x98, "READONLY_BUFFER"},
        {'B', "BINBYTES"},      {'C', "SHORT_BINBYTES"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].op == op) return names[i].name;
    return "unknown";
}

static int need(interp *p, size_t n)
{
    if (p->len - p->pos < n) return fail(p, "pickle ends inside opcode %s", opcode_name(p->buf[p->op_pos]));
    return QID_OK;
}

static uint64_t le(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static int push(interp *p, val *v)
{
    if (p->sp == p->cap_stack) {
        p->cap_stack = p->cap_stack ? 2 * p->cap_stack : 64;
        p->stack = qid_realloc(p->stack, p->cap_stack * sizeof *p->stack, "pickle stack");
    }
    p->stack[p->sp++] = v;
    return QID_OK;
}

/* Pops one value that is not a mark; NULL (err set) when the stack is empty. */
static val *pop(interp *p)
{
    if (p->sp == 0 || p->stack[p->sp - 1]->kind == V_MARK) {
        fail(p, "%s on an empty stack", opcode_name(p->buf[p->op_pos]));
        return NULL;
    }
    return p->stack[--p->sp];
}

static val *top(interp *p)
{
    if (p->sp == 0 || p->stack[p->sp - 1]->kind == V_MARK) {
        fail(p, "%s on an empty stack", opcode_name(p->buf[p->op_pos]));
        return NULL;
    }
    return p->stack[p->sp - 1];
}

/* Index of the topmost mark, or -1 with err set. */
static long find_mark(interp *p)
{
    for (size_t i = p->sp; i > 0; i--)
        if (p->stack[i - 1]->kind == V_MARK) return (long)(i - 1);
    fail(p, "%s without a MARK", opcode_name(p->buf[p->op_pos]));
    return -1;
}

static int memo_put(interp *p, uint64_t idx)
{
    val *v = top(p);
    if (!v) return QID_E_FORMAT;
    /* the pickler numbers entries 0, 1, ...: each costs at least two bytes */
    if (idx > p->len) return fail(p, "memo index %" PRIu64 " is beyond any a pickle of %zu bytes makes", idx, p->len);
    if (idx >= p->n_memo) {
        size_t n = (size_t)idx + 1;
        if (n > p->cap_memo) {
            size_t cap = p->cap_memo ? 2 * p->cap_memo : 64;
            if (cap < n) cap = n;
            p->memo = qid_realloc(p->memo, cap * sizeof *p->memo, "pickle memo");
            p->cap_memo = cap;
        }
        memset(p->memo + p->n_memo, 0, (n - p->n_memo) * sizeof *p->memo);
        p->n_memo = n;
    }
    p->memo[idx] = v;
    return QID_OK;
}

static int memo_get(interp *p, uint64_t idx)
{
    if (idx >= p->n_memo || !p->memo[idx]) return fail(p, "memo index %" PRIu64 " was never stored", idx);
    return push(p, p->memo[idx]);
}

static int push_str(interp *p, size_t n)
{
    if (need(p, n)) return QID_E_FORMAT;
    val *v = new_val(p, V_STR);
    v->s = qid_malloc(n + 1, "a pickle string");
    memcpy(v->s, p->buf + p->pos, n);
    v->s[n] = '\0';
    v->len = n;
    p->pos += n;
    return push(p, v);
}

static int push_int(interp *p, int64_t i)
{
    val *v = new_val(p, V_INT);
    v->i = i;
    return push(p, v);
}

static int global(interp *p, const char *module, const char *name)
{
    for (size_t g = 0; g < N_GLOBALS; g++)
        if (strcmp(globals[g].module, module) == 0 && strcmp(globals[g].name, name) == 0) {
            val *v = new_val(p, V_GLOBAL);
            v->i = (int64_t)g;
            return push(p, v);
        }
    return fail(p,
                "global '%.60s.%.60s' is not allowed (a state dict uses only torch._utils._rebuild_tensor_v2, "
                "collections.OrderedDict and torch storage classes)",
                module, name);
}

/* "module\nname\n" of GLOBAL. */
static int op_global(interp *p)
{
    char parts[2][128];
    for (int k = 0; k < 2; k++) {
        const uint8_t *nl = memchr(p->buf + p->pos, '\n', p->len - p->pos);
        if (!nl) return fail(p, "GLOBAL without its newline");
        size_t n = (size_t)(nl - (p->buf + p->pos));
        if (n == 0 || n >= sizeof parts[k] || memchr(p->buf + p->pos, '\0', n))
            return fail(p, "GLOBAL with a name of %zu bytes", n);
        memcpy(parts[k], p->buf + p->pos, n);
        parts[k][n] = '\0';
        p->pos += n + 1;
    }
    return global(p, parts[0], parts[1]);
}

static int op_stack_global(interp *p)
{
    val *name = pop(p), *module = name ? pop(p) : NULL;
    if (!module) return QID_E_FORMAT;
    if (name->kind != V_STR || module->kind != V_STR || strlen(name->s) != name->len ||
        strlen(module->s) != module->len)
        return fail(p, "STACK_GLOBAL on a %s and a %s", kind_names[module->kind], kind_names[name->kind]);
    return global(p, module->s, name->s);
}

/* Pops everything down to the topmost mark into a new container. */
static int pop_to_mark(interp *p, vkind k)
{
    long m = find_mark(p);
    if (m < 0) return QID_E_FORMAT;
    val *c = new_val(p, k);
    for (size_t i = (size_t)m + 1; i < p->sp; i++)
        add_item(c, p->stack[i]);
    p->sp = (size_t)m;
    return push(p, c);
}

static int tuple_n(interp *p, size_t n)
{
    if (p->sp < n) return fail(p, "%s on a stack of %zu", opcode_name(p->buf[p->op_pos]), p->sp);
    val *c = new_val(p, V_TUPLE);
    for (size_t i = p->sp - n; i < p->sp; i++) {
        if (p->stack[i]->kind == V_MARK) return fail(p, "%s across a MARK", opcode_name(p->buf[p->op_pos]));
        add_item(c, p->stack[i]);
    }
    p->sp -= n;
    return push(p, c);
}

/* SETITEM(S), APPEND(S): items above the mark (or the top two/one) into the
 * dict or list below. */
static int add_items(interp *p, int to_mark, int dict)
{
    size_t first;
    if (to_mark) {
        long m = find_mark(p);
        if (m < 0) return QID_E_FORMAT;
        first = (size_t)m + 1;
    } else {
        size_t k = dict ? 2 : 1;
        if (p->sp < k + 1) return fail(p, "%s on a stack of %zu", opcode_name(p->buf[p->op_pos]), p->sp);
        first = p->sp - k;
    }
    size_t below = to_mark ? first - 1 : first;
    if (below == 0) return fail(p, "%s without a container", opcode_name(p->buf[p->op_pos]));
    val *c = p->stack[below - 1];
    if (c->kind != (dict ? V_DICT : V_LIST))
        return fail(p, "%s on a %s", opcode_name(p->buf[p->op_pos]), kind_names[c->kind]);
    if (dict && (p->sp - first) % 2) return fail(p, "SETITEMS with an odd number of items");
    for (size_t i = first; i < p->sp; i++) {
        if (p->stack[i]->kind == V_MARK) return fail(p, "%s across a MARK", opcode_name(p->buf[p->op_pos]));
        add_item(c, p->stack[i]);
    }
    p->sp = to_mark ? first - 1 : first;
    return QID_OK;
}

/* ---- the allowed calls ------------------------------------------------------ */

static int is_empty_dict(const val *v) { return v->kind == V_DICT && v->n == 0; }

static int rebuild_tensor(interp *p, const val *a, val **res)
{
    if (a->n != 6 && a->n != 7) return fail(p, "_rebuild_tensor_v2 with %zu arguments (expected 6 or 7)", a->n);
    const val *st = a->items[0], *off = a->items[1], *size = a->items[2], *stride = a->items[3];
    if (st->kind != V_STORAGE) return fail(p, "_rebuild_tensor_v2 on a %s, not a storage", kind_names[st->kind]);
    if (off->kind != V_INT || off->i < 0) return fail(p, "_rebuild_tensor_v2 with a bad storage offset");
    if (size->kind != V_TUPLE || stride->kind != V_TUPLE || size->n != stride->n)
        return fail(p, "_rebuild_tensor_v2 with a size and stride that are not tuples of one length");
    if (size->n > QID_TP_MAX_DIMS)
        return fail(p, "_rebuild_tensor_v2 with %zu dimensions (at most %d)", size->n, QID_TP_MAX_DIMS);
    if (a->items[4]->kind != V_BOOL) return fail(p, "_rebuild_tensor_v2 with requires_grad not a bool");
    if (!is_empty_dict(a->items[5])) return fail(p, "_rebuild_tensor_v2 with backward hooks (a state dict has none)");
    if (a->n == 7 && !is_empty_dict(a->items[6]) && a->items[6]->kind != V_NONE)
        return fail(p, "_rebuild_tensor_v2 with tensor metadata (not supported)");
    const qid_tp_storage *s = &p->out->storages[st->i];
    qid_tp_tensor t = {.storage = (size_t)st->i, .dtype = s->dtype, .ndim = (int)size->n, .offset = (uint64_t)off->i};
    /* the last element must lie inside the storage: offset + sum (size-1)*stride < numel */
    uint64_t last = t.offset, numel = 1, want = 1;
    int empty = 0, contiguous = 1;
    for (int d = t.ndim - 1; d >= 0; d--) {
        const val *sz = size->items[d], *sd = stride->items[d];
        if (sz->kind != V_INT || sd->kind != V_INT || sz->i < 0 || sd->i < 0)
            return fail(p, "_rebuild_tensor_v2 with a size or stride that is not a non-negative integer");
        t.shape[d] = (uint64_t)sz->i;
        t.stride[d] = (uint64_t)sd->i;
        if (t.shape[d] == 0) empty = 1;
        if (t.shape[d] != 1 && t.stride[d] != want) contiguous = 0;
        if (__builtin_mul_overflow(numel, t.shape[d], &numel) ||
            (t.shape[d] && __builtin_mul_overflow(want, t.shape[d], &want)))
            return fail(p, "tensor size overflows");
        uint64_t ext;
        if (t.shape[d] &&
            (__builtin_mul_overflow(t.shape[d] - 1, t.stride[d], &ext) || __builtin_add_overflow(last, ext, &last)))
            return fail(p, "tensor strides overflow");
    }
    if (empty ? t.offset > s->numel : last >= s->numel)
        return fail(p,
                    "tensor of %" PRIu64 " elements at offset %" PRIu64 " reaches element %" PRIu64
                    " of storage '%.40s', which has %" PRIu64,
                    numel, t.offset, last, s->key, s->numel);
    /* more elements than the storage holds means a view that repeats
     * elements (a zero stride of an expanded tensor): refused, so that no
     * tensor needs more memory than its bytes in the file */
    if (numel > s->numel)
        return fail(p, "tensor of %" PRIu64 " elements over the %" PRIu64 " of storage '%.40s' (overlapping strides)",
                    numel, s->numel, s->key);
    t.contiguous = contiguous;
    if (p->out->n == p->cap_tensors) {
        p->cap_tensors = p->cap_tensors ? 2 * p->cap_tensors : 64;
        p->out->tensors = qid_realloc(p->out->tensors, p->cap_tensors * sizeof *p->out->tensors, "tensor records");
    }
    p->out->tensors[p->out->n] = t;
    val *v = new_val(p, V_TENSOR);
    v->i = (int64_t)p->out->n++;
    *res = v;
    return QID_OK;
}

static int op_reduce(interp *p)
{
    val *args = pop(p), *fn = args ? pop(p) : NULL;
    if (!fn) return QID_E_FORMAT;
    if (fn->kind != V_GLOBAL)
        return fail(p, "REDUCE on a %s (only allowed globals are callable)", kind_names[fn->kind]);
    if (args->kind != V_TUPLE) return fail(p, "REDUCE with %s arguments, not a tuple", kind_names[args->kind]);
    val *res = NULL;
    switch (fn->i) {
    case G_ORDERED_DICT:
        if (args->n != 0) return fail(p, "REDUCE on collections.OrderedDict with arguments");
        res = new_val(p, V_DICT);
        break;
    case G_REBUILD_TENSOR_V2:
        if (rebuild_tensor(p, args, &res)) return QID_E_FORMAT;
        break;
    case G_REBUILD_PARAMETER:
        if (args->n != 3 || args->items[0]->kind != V_TENSOR || args->items[1]->kind != V_BOOL ||
            !is_empty_dict(args->items[2]))
            return fail(p, "_rebuild_parameter with arguments other than (tensor, requires_grad, no hooks)");
        res = args->items[0];
        break;
    default:
        return fail(p, "REDUCE on '%s.%s' is not allowed (qid calls nothing; storage classes belong in persistent ids)",
                    globals[fn->i].module, globals[fn->i].name);
    }
    return push(p, res);
}

/* BINPERSID: ('storage', storage class, key, location, numel). */
static int op_persid(interp *p)
{
    val *pid = pop(p);
    if (!pid) return QID_E_FORMAT;
    if (pid->kind != V_TUPLE || pid->n != 5 || pid->items[0]->kind != V_STR || strcmp(pid->items[0]->s, "storage") != 0)
        return fail(p, "persistent id is not ('storage', class, key, location, numel)");
    const val *cls = pid->items[1], *key = pid->items[2], *loc = pid->items[3], *numel = pid->items[4];
    if (cls->kind != V_GLOBAL || cls->i < G_STORAGE0)
        return fail(p, "persistent id with a %s where a storage class belongs",
                    cls->kind == V_GLOBAL ? globals[cls->i].name : kind_names[cls->kind]);
    if (key->kind != V_STR || key->len == 0 || key->len > 64 ||
        strspn(key->s, "0123456789abcdefghijklmnopqrstuvwxyz"
                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ_.") != key->len ||
        key->s[0] == '.')
        return fail(p, "persistent id with a storage key that is not a plain name");
    if (loc->kind != V_STR) return fail(p, "persistent id with a location that is not a string");
    if (numel->kind != V_INT || numel->i < 0) return fail(p, "persistent id with a bad element count");
    qid_st_dtype dt = globals[cls->i].dtype;
    long k = qid_tp_find_storage(p->out, key->s);
    if (k >= 0) {
        const qid_tp_storage *s = &p->out->storages[k];
        if (s->dtype != dt || s->numel != (uint64_t)numel->i)
            return fail(p, "storage '%s' declared twice with different types or sizes", key->s);
    } else {
        if (p->out->n_storages == p->cap_storages) {
            p->cap_storages = p->cap_storages ? 2 * p->cap_storages : 64;
            p->out->storages =
                qid_realloc(p->out->storages, p->cap_storages * sizeof *p->out->storages, "storage records");
        }
        k = (long)p->out->n_storages++;
        p->out->storages[k] = (qid_tp_storage){qid_strdup(key->s), dt, (uint64_t)numel->i};
    }
    val *v = new_val(p, V_STORAGE);
    v->i = k;
    return push(p, v);
}

static int op_build(interp *p)
{
    val *state = pop(p), *obj = state ? top(p) : NULL;
    if (!obj) return QID_E_FORMAT;
    /* a state dict's OrderedDict carries _metadata (module versions) as its
     * instance dict: attributes, no call; dropped */
    if (obj->kind != V_DICT || (state->kind != V_DICT && state->kind != V_NONE))
        return fail(p, "BUILD of a %s with a %s", kind_names[obj->kind], kind_names[state->kind]);
    return QID_OK;
}

static int step(interp *p, int *stop)
{
    p->op_pos = p->pos;
    uint8_t op = p->buf[p->pos++];
    switch (op) {
    case 0x80: /* PROTO */
        if (need(p, 1)) return QID_E_FORMAT;
        if (p->buf[p->pos] > 5) return fail(p, "pickle protocol %d (at most 5)", p->buf[p->pos]);
        p->pos++;
        return QID_OK;
    case 0x95: /* FRAME: a length hint */
        if (need(p, 8)) return QID_E_FORMAT;
        p->pos += 8;
        return QID_OK;
    case '.': *stop = 1; return QID_OK;
    case '(': return push(p, new_val(p, V_MARK));
    case '}': return push(p, new_val(p, V_DICT));
    case ']': return push(p, new_val(p, V_LIST));
    case ')': return push(p, new_val(p, V_TUPLE));
    case 't': return pop_to_mark(p, V_TUPLE);
    case 0x85: return tuple_n(p, 1);
    case 0x86: return tuple_n(p, 2);
    case 0x87: return tuple_n(p, 3);
    case 'N': return push(p, new_val(p, V_NONE));
    case 0x88:
    case 0x89: {
        val *v = new_val(p, V_BOOL);
        v->i = op == 0x88;
        return push(p, v);
    }
    case 'J':
        if (need(p, 4)) return QID_E_FORMAT;
        p->pos += 4;
        return push_int(p, (int32_t)(uint32_t)le(p->buf + p->pos - 4, 4));
    case 'K':
        if (need(p, 1)) return QID_E_FORMAT;
        return push_int(p, p->buf[p->pos++]);
    case 'M':
        if (need(p, 2)) return QID_E_FORMAT;
        p->pos += 2;
        return push_int(p, (int64_t)le(p->buf + p->pos - 2, 2));
    case 0x8a: { /* LONG1: n-byte little-endian two's complement */
        if (need(p, 1)) return QID_E_FORMAT;
        size_t n = p->buf[p->pos++];
        if (n > 8) return fail(p, "integer of %zu bytes (at most 8)", n);
        if (need(p, n)) return QID_E_FORMAT;
        uint64_t u = n ? le(p->buf + p->pos, (int)n) : 0;
        if (n && n < 8 && (p->buf[p->pos + n - 1] & 0x80)) u |= ~0ull << (8 * n);
        p->pos += n;
        return push_int(p, (int64_t)u);
    }
    case 'X':
        if (need(p, 4)) return QID_E_FORMAT;
        p->pos += 4;
        return push_str(p, (size_t)le(p->buf + p->pos - 4, 4));
    case 0x8c:
        if (need(p, 1)) return QID_E_FORMAT;
        return push_str(p, p->buf[p->pos++]);
    case 0x8d: {
        if (need(p, 8)) return QID_E_FORMAT;
        uint64_t n = le(p->buf + p->pos, 8);
        p->pos += 8;
        if (n > p->len) return fail(p, "string of %" PRIu64 " bytes", n);
        return push_str(p, (size_t)n);
    }
    case 'c': return op_global(p);
    case 0x93: return op_stack_global(p);
    case 'q':
        if (need(p, 1)) return QID_E_FORMAT;
        return memo_put(p, p->buf[p->pos++]);
    case 'r':
        if (need(p, 4)) return QID_E_FORMAT;
        p->pos += 4;
        return memo_put(p, le(p->buf + p->pos - 4, 4));
    case 0x94: return memo_put(p, p->n_memo);
    case 'h':
        if (need(p, 1)) return QID_E_FORMAT;
        return memo_get(p, p->buf[p->pos++]);
    case 'j':
        if (need(p, 4)) return QID_E_FORMAT;
        p->pos += 4;
        return memo_get(p, le(p->buf + p->pos - 4, 4));
    case 's': return add_items(p, 0, 1);
    case 'u': return add_items(p, 1, 1);
    case 'a': return add_items(p, 0, 0);
    case 'e': return add_items(p, 1, 0);
    case 'R': return op_reduce(p);
    case 'b': return op_build(p);
    case 'Q': return op_persid(p);
    default:
        return fail(p, "pickle opcode %s (0x%02x) is not supported (a state dict does not use it)", opcode_name(op),
                    op);
    }
}

/* ---- the result ------------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const qid_tp_tensor *)a)->name, ((const qid_tp_tensor *)b)->name);
}

static int collect(interp *p)
{
    p->op_pos = p->pos;
    if (p->sp != 1 || p->stack[0]->kind == V_MARK)
        return fail(p, "STOP with %zu values on the stack (expected 1)", p->sp);
    const val *d = p->stack[0];
    if (d->kind != V_DICT) return fail(p, "the pickle holds a %s, not a state dict", kind_names[d->kind]);
    size_t n = d->n / 2;
    qid_tp_tensor *rec = qid_calloc(n ? n : 1, sizeof *rec, "state dict entries");
    for (size_t i = 0; i < n; i++) {
        const val *k = d->items[2 * i], *v = d->items[2 * i + 1];
        if (k->kind != V_STR || strlen(k->s) != k->len || k->len == 0) {
            free(rec);
            return fail(p, "state dict key %zu is not a string", i);
        }
        if (v->kind != V_TENSOR) {
            free(rec);
            return fail(p, "state dict entry '%.100s' is a %s, not a tensor", k->s, kind_names[v->kind]);
        }
        rec[i] = p->out->tensors[v->i];
        rec[i].name = k->s; /* borrowed until the copy below */
    }
    qsort(rec, n, sizeof *rec, by_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(rec[i - 1].name, rec[i].name) == 0) {
            int rc = fail(p, "state dict key '%.100s' appears twice", rec[i].name);
            free(rec);
            return rc;
        }
    for (size_t i = 0; i < n; i++)
        rec[i].name = qid_strdup(rec[i].name);
    free(p->out->tensors);
    p->out->tensors = rec;
    p->out->n = n;
    return QID_OK;
}

int qid_tp_parse(const uint8_t *buf, size_t len, const char *name, qid_tp_dict *out, qid_error *err)
{
    memset(out, 0, sizeof *out);
    qid_error_clear(err);
    interp p = {.buf = buf, .len = len, .name = name, .err = err, .out = out};
    int rc = QID_OK, stop = 0;
    if (len > QID_TP_MAX_PICKLE) {
        rc = qid_error_set(err, QID_E_FORMAT, "'%s': pickle of %zu bytes (at most %u)", name, len, QID_TP_MAX_PICKLE);
        goto done;
    }
    while (!rc && !stop) {
        if (p.pos >= len) {
            p.op_pos = p.pos;
            rc = fail(&p, "pickle ends without STOP");
            break;
        }
        rc = step(&p, &stop);
    }
    if (!rc && p.pos != len) {
        p.op_pos = p.pos;
        rc = fail(&p, "%zu bytes after STOP", len - p.pos);
    }
    if (!rc) rc = collect(&p);
done:
    for (size_t i = 0; i < p.n_nodes; i++) {
        free(p.nodes[i]->s);
        free(p.nodes[i]->items);
        free(p.nodes[i]);
    }
    free(p.nodes);
    free(p.stack);
    free(p.memo);
    if (rc) qid_tp_free(out);
    return rc;
}

long qid_tp_find_storage(const qid_tp_dict *d, const char *key)
{
    for (size_t i = 0; i < d->n_storages; i++)
        if (strcmp(d->storages[i].key, key) == 0) return (long)i;
    return -1;
}

void qid_tp_free(qid_tp_dict *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n_storages; i++)
        free(d->storages[i].key);
    for (size_t i = 0; i < d->n; i++)
        free(d->tensors[i].name);
    free(d->storages);
    free(d->tensors);
    memset(d, 0, sizeof *d);
}
