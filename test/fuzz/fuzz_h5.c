/* fuzz_h5.c - libFuzzer target for qid's readers of its own HDF5 files:
 * checkpoints (qid_model_open and qid_model_load of every stage it can),
 * token sets (qid_tokens_open, qid_tokens_read) and results stores
 * (qid_results_read, qid_results_open for appending, and the /fits readers).
 *
 * Structure-aware: the input is not a file but a program of mutations,
 * applied through the HDF5 API to one of three small valid files this
 * target writes once with qid's own writers (a tiny GPT-NeoX checkpoint, a
 * token set, a store of three rows and one fit). Byte 0 picks the file;
 * then each op rewrites an attribute (value, type, dataspace), deletes or
 * adds one, reshapes or retypes a dataset, changes its layout (contiguous,
 * compact, chunk sizes, filters, extendible), drops a link, drops a member
 * of a compound dataset (an older schema), or overwrites one element (one
 * member of one /tasks row: offsets, counts, status, strings). The files
 * stay well-formed HDF5, so what is tested is qid: it must reject what it
 * cannot use with a one-line error, never crash, overflow, or allocate
 * from a size it has not checked against the file. libFuzzer's
 * -malloc_limit_mb (default: the RSS limit, 2 GiB) turns such an
 * allocation into a reported crash.
 *
 * Built and run by `make fuzz FUZZ_SECONDS=N` (clang with
 * -fsanitize=fuzzer,address,undefined) from test/fuzz/seeds-h5/ (programs
 * that reach each reader, and the regressions of the bugs it found). The
 * base files go to a fresh directory under TMPDIR (default /tmp), removed
 * at exit. FUZZ_H5_RAW=1 also flips bytes: after two ops, the rest of the
 * program is (offset, byte) pairs written into the file, which reaches
 * libhdf5's own parsers (its crashes are listed in docs/testing.md, not
 * fixed here). To look at what an input makes of its file:
 *   FUZZ_H5_SAVE=mutated.h5 build/fuzz/h5 INPUT && h5dump -H mutated.h5 */
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "error.h"
#include "fit.h"
#include "fit_store.h"
#include "model.h"
#include "results.h"
#include "tokens.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { F_CKPT, F_TOKENS, F_RESULTS, F_N };
static char dir[256], base_path[F_N][300], work_path[300];
static uint8_t *base[F_N];
static size_t base_len[F_N];

/* ---- the program's bytes ------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t n, at;
} prog;

static unsigned next8(prog *g) { return g->at < g->n ? g->p[g->at++] : 0; }
static unsigned next16(prog *g) { return next8(g) | next8(g) << 8; }
static uint64_t next64(prog *g)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)next8(g) << (8 * i);
    return v;
}

static const int64_t int_values[] = {0,
                                     1,
                                     -1,
                                     2,
                                     3,
                                     4,
                                     7,
                                     8,
                                     16,
                                     31,
                                     32,
                                     63,
                                     64,
                                     255,
                                     256,
                                     4096,
                                     65535,
                                     65536,
                                     100000,
                                     100001,
                                     (int64_t)1 << 20,
                                     (int64_t)1 << 22,
                                     (int64_t)1 << 24,
                                     ((int64_t)1 << 24) + 1,
                                     INT32_MAX,
                                     (int64_t)INT32_MAX + 1,
                                     INT32_MIN,
                                     (int64_t)1 << 32,
                                     (int64_t)1 << 40,
                                     (int64_t)1 << 62,
                                     INT64_MAX,
                                     INT64_MIN};
#define N_INT (sizeof int_values / sizeof int_values[0])

/* An integer: from the table, the old value nudged, or raw bytes. */
static int64_t pick_int(prog *g, int64_t old)
{
    unsigned k = next8(g);
    if (k < 160) return int_values[k % N_INT];
    if (k < 230) return old + (int64_t)(k % 9) - 4;
    return (int64_t)next64(g);
}

static double pick_double(prog *g, double old)
{
    static const double v[] = {0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-300, 1e300, 4.9e-324, 1e19, -1e19, 9.3e18};
    unsigned k = next8(g);
    if (k < 12) return v[k];
    if (k < 16) return k == 12 ? NAN : k == 13 ? INFINITY : k == 14 ? -INFINITY : -NAN;
    if (k < 200) return old * (1.0 + ((double)(k % 7) - 3.0) / 2.0);
    uint64_t bits = next64(g);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static const char *const words[] = {"",
                                    "qid-checkpoint",
                                    "qid-tokens",
                                    "qid-results",
                                    "gpt-neox",
                                    "llama",
                                    "f32",
                                    "f16",
                                    "bf16",
                                    "unified",
                                    "predictor",
                                    "ouyang",
                                    "k,alpha,beta,gamma",
                                    "gptq",
                                    "rtn",
                                    "2,3,4",
                                    "../../etc/passwd",
                                    "a\nb",
                                    "\xff\xfe bad utf-8 \xc3",
                                    "%s%s%n"};
#define N_WORDS (sizeof words / sizeof words[0])

/* A string: a known word, or up to 40 bytes of the program (NUL-terminated). */
static void pick_string(prog *g, char *buf, size_t cap)
{
    unsigned k = next8(g);
    if (k < 128) {
        snprintf(buf, cap, "%s", words[k % N_WORDS]);
        return;
    }
    size_t len = k % 41, i = 0;
    for (; i < len && i + 1 < cap; i++)
        buf[i] = (char)next8(g);
    buf[i] = '\0';
}

/* ---- what the file holds ------------------------------------------------ */

#define MAX_OBJ 256
typedef struct {
    char obj[MAX_OBJ][200];
    int is_dset[MAX_OBJ];
    size_t n_obj;
    char attr_obj[MAX_OBJ][200], attr_name[MAX_OBJ][64];
    size_t n_attr;
} listing;

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *op)
{
    listing *l = op;
    (void)loc;
    (void)info;
    if (l->n_attr >= MAX_OBJ) return 1;
    snprintf(l->attr_obj[l->n_attr], sizeof l->attr_obj[0], "%s", l->obj[l->n_obj - 1]);
    snprintf(l->attr_name[l->n_attr], sizeof l->attr_name[0], "%s", name);
    l->n_attr++;
    return 0;
}

static void add_obj(hid_t file, listing *l, const char *path)
{
    if (l->n_obj >= MAX_OBJ) return;
    hid_t o = H5Oopen(file, path, H5P_DEFAULT);
    if (o < 0) return;
    snprintf(l->obj[l->n_obj], sizeof l->obj[0], "%s", path);
    l->is_dset[l->n_obj] = H5Iget_type(o) == H5I_DATASET;
    l->n_obj++;
    H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, attr_cb, l);
    H5Oclose(o);
}

static herr_t link_cb(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    (void)info;
    char path[200];
    snprintf(path, sizeof path, "/%s", name);
    add_obj(g, op, path);
    return 0;
}

static void list_file(hid_t file, listing *l)
{
    l->n_obj = l->n_attr = 0;
    add_obj(file, l, "/");
    H5Lvisit(file, H5_INDEX_NAME, H5_ITER_NATIVE, link_cb, l);
}

static int pick_dset(const listing *l, unsigned sel)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n_obj; i++)
        n += (size_t)l->is_dset[i];
    if (!n) return -1;
    size_t k = sel % n;
    for (size_t i = 0; i < l->n_obj; i++)
        if (l->is_dset[i] && k-- == 0) return (int)i;
    return -1;
}

/* ---- attribute mutations ------------------------------------------------- */

static void attr_write(hid_t obj, const char *name, prog *g)
{
    int64_t old_i = 0;
    double old_d = 0;
    H5T_class_t old_class = H5T_NO_CLASS;
    if (H5Aexists(obj, name) > 0) {
        hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : -1;
        hid_t s = a >= 0 ? H5Aget_space(a) : -1;
        old_class = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
        if (s >= 0 && H5Sget_simple_extent_npoints(s) == 1) {
            if (old_class == H5T_INTEGER) H5Aread(a, H5T_NATIVE_INT64, &old_i);
            if (old_class == H5T_FLOAT) H5Aread(a, H5T_NATIVE_DOUBLE, &old_d);
        }
        if (s >= 0) H5Sclose(s);
        if (t >= 0) H5Tclose(t);
        if (a >= 0) H5Aclose(a);
        H5Adelete(obj, name);
    }
    unsigned kind = next8(g) % 10;
    if (kind == 0) kind = old_class == H5T_INTEGER ? 1 : old_class == H5T_FLOAT ? 2 : 4;
    hid_t type = -1, space = -1, a = -1;
    char str[64];
    switch (kind) {
    case 1: { /* int64 */
        int64_t v = pick_int(g, old_i);
        space = H5Screate(H5S_SCALAR);
        a = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_INT64, &v);
        break;
    }
    case 2: { /* float64 */
        double v = pick_double(g, old_d);
        space = H5Screate(H5S_SCALAR);
        a = H5Acreate2(obj, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
        break;
    }
    case 3: { /* fixed-length string, of any length (may hold no NUL) */
        pick_string(g, str, sizeof str);
        size_t len = strlen(str);
        type = H5Tcopy(H5T_C_S1);
        H5Tset_size(type, len ? len : 1);
        H5Tset_strpad(type, next8(g) & 1 ? H5T_STR_NULLPAD : H5T_STR_NULLTERM);
        space = H5Screate(H5S_SCALAR);
        a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, type, str);
        break;
    }
    case 4: { /* variable-length string */
        pick_string(g, str, sizeof str);
        const char *p = str;
        type = H5Tcopy(H5T_C_S1);
        H5Tset_size(type, H5T_VARIABLE);
        space = H5Screate(H5S_SCALAR);
        a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, type, &p);
        break;
    }
    case 5: { /* int32 / uint8 / uint64 */
        int64_t v = pick_int(g, old_i);
        unsigned w = next8(g) % 3;
        hid_t ft = w == 0 ? H5T_STD_I32BE : w == 1 ? H5T_STD_U8LE : H5T_STD_U64LE;
        space = H5Screate(H5S_SCALAR);
        a = H5Acreate2(obj, name, ft, space, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_INT64, &v);
        break;
    }
    case 6: { /* an array of 3 */
        int64_t v[3] = {pick_int(g, old_i), pick_int(g, old_i), pick_int(g, old_i)};
        hsize_t three = 3;
        space = H5Screate_simple(1, &three, NULL);
        a = H5Acreate2(obj, name, next8(g) & 1 ? H5T_STD_I64LE : H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_INT64, v);
        break;
    }
    case 7: { /* an empty (null) dataspace */
        space = H5Screate(H5S_NULL);
        a = H5Acreate2(obj, name, next8(g) & 1 ? H5T_STD_I64LE : H5T_C_S1, space, H5P_DEFAULT, H5P_DEFAULT);
        break;
    }
    case 8: { /* float32 big-endian / float16-like */
        double v = pick_double(g, old_d);
        space = H5Screate(H5S_SCALAR);
        a = H5Acreate2(obj, name, H5T_IEEE_F32BE, space, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
        break;
    }
    default: { /* a zero-length array of strings */
        hsize_t zero = 0;
        type = H5Tcopy(H5T_C_S1);
        H5Tset_size(type, H5T_VARIABLE);
        space = H5Screate_simple(1, &zero, NULL);
        a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
        break;
    }
    }
    if (a >= 0) H5Aclose(a);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
}

/* ---- dataset mutations --------------------------------------------------- */

#define MAX_ELEMS 4096 /* datasets larger than this get no data written (fill values) */

typedef struct {
    hid_t ftype, mtype;
    int rank;
    hsize_t dims[4];
    hssize_t n;
    void *buf;
} dset_data;

static void data_free(dset_data *d)
{
    if (d->buf && d->n > 0) {
        hid_t s = H5Screate_simple(d->rank, d->dims, NULL);
        if (s >= 0) H5Dvlen_reclaim(d->mtype, s, H5P_DEFAULT, d->buf); /* frees only variable-length parts */
        if (s >= 0) H5Sclose(s);
    }
    free(d->buf);
    if (d->mtype >= 0) H5Tclose(d->mtype);
    if (d->ftype >= 0) H5Tclose(d->ftype);
}

/* Reads a dataset whole (when small) in the native form of its type. */
static int data_read(hid_t file, const char *path, dset_data *d)
{
    memset(d, 0, sizeof *d);
    d->ftype = d->mtype = -1;
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t s = H5Dget_space(ds);
    d->ftype = H5Dget_type(ds);
    d->rank = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    if (d->rank < 0 || d->rank > 4 || d->ftype < 0) {
        if (s >= 0) H5Sclose(s);
        H5Dclose(ds);
        return -1;
    }
    H5Sget_simple_extent_dims(s, d->dims, NULL);
    d->n = H5Sget_simple_extent_npoints(s);
    d->mtype = H5Tget_native_type(d->ftype, H5T_DIR_DEFAULT);
    if (d->mtype >= 0 && d->n > 0 && d->n <= MAX_ELEMS) {
        d->buf = calloc((size_t)d->n, H5Tget_size(d->mtype));
        if (H5Dread(ds, d->mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, d->buf) < 0) {
            free(d->buf);
            d->buf = NULL;
        }
    }
    H5Sclose(s);
    H5Dclose(ds);
    return d->mtype >= 0 ? 0 : -1;
}

/* Creates path anew with type ftype, dims and a layout from the program;
 * writes buf (n elements of mtype) when given and the new size allows. */
static void dset_create(hid_t file, const char *path, hid_t ftype, int rank, const hsize_t *dims, hid_t mtype,
                        const void *buf, size_t buf_n, prog *g)
{
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), space = -1, ds = -1;
    hsize_t max[4], chunk[4], n = 1;
    for (int i = 0; i < rank; i++)
        n = dims[i] && n > UINT64_MAX / dims[i] ? UINT64_MAX : n * dims[i];
    unsigned layout = next8(g) % 4;
    if (rank == 0 || (layout == 1 && n * H5Tget_size(ftype) > 32000)) layout = 0;
    if (n > MAX_ELEMS || n * H5Tget_size(ftype) > (1u << 18)) layout = 2; /* never write a large contiguous dataset */
    for (int i = 0; i < rank; i++) {
        max[i] = dims[i];
        chunk[i] = dims[i] ? dims[i] : 1;
    }
    if (layout == 1) H5Pset_layout(dcpl, H5D_COMPACT);
    if (layout >= 2) {
        for (int i = 0; i < rank; i++) {
            unsigned c = next8(g);
            if (c < 64)
                chunk[i] = 1 + c % 4;
            else if (c < 128)
                chunk[i] = dims[i] > 1 ? dims[i] - 1 : 1;
            else if (c < 200)
                chunk[i] = dims[i] ? (dims[i] + 1) / 2 : 1;
            if (chunk[i] > ((hsize_t)1 << 20)) chunk[i] = (hsize_t)1 << 20;
            if (next8(g) & 1) max[i] = H5S_UNLIMITED;
        }
        hsize_t per_chunk = 1; /* chunks of at most 64 Ki elements: no huge files */
        for (int i = 0; i < rank; i++) {
            if (per_chunk * chunk[i] > 65536) chunk[i] = 65536 / per_chunk ? 65536 / per_chunk : 1;
            per_chunk *= chunk[i];
        }
        H5Pset_chunk(dcpl, rank, chunk);
        if (n > MAX_ELEMS) { /* nothing written: no storage either */
            H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_INCR);
            H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
        }
        if (layout == 3) {
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, 1);
        }
    }
    space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, layout >= 2 ? max : NULL);
    if (space >= 0) ds = H5Dcreate2(file, path, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds >= 0 && buf && n <= MAX_ELEMS && n > 0 && n * H5Tget_size(mtype) <= (1u << 18)) {
        size_t es = H5Tget_size(mtype);
        void *full = calloc((size_t)n, es);
        memcpy(full, buf, (buf_n < n ? buf_n : (size_t)n) * es);
        H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, full);
        free(full);
    }
    if (ds >= 0) H5Dclose(ds);
    if (space >= 0) H5Sclose(space);
    H5Pclose(dcpl);
}

static hsize_t pick_dim(prog *g, hsize_t old)
{
    unsigned k = next8(g);
    if (k < 100) return old;
    if (k < 150) return old + (k % 5) - 2 > old + 2 ? 0 : old + (k % 5) - 2;
    if (k < 200) return k % 9;
    if (k < 230) return old * 2;
    static const hsize_t big[] = {(hsize_t)1 << 20, (hsize_t)1 << 24, (hsize_t)1 << 31, (hsize_t)1 << 40,
                                  ((hsize_t)1 << 62) - 1};
    return big[k % 5];
}

static void dset_reshape(hid_t file, const char *path, prog *g)
{
    dset_data d;
    if (data_read(file, path, &d) == 0) {
        int rank = d.rank;
        unsigned r = next8(g);
        if (r >= 200) rank = (int)(r % 4);
        hsize_t dims[4];
        for (int i = 0; i < rank; i++)
            dims[i] = pick_dim(g, i < d.rank ? d.dims[i] : 1);
        if (H5Ldelete(file, path, H5P_DEFAULT) >= 0)
            dset_create(file, path, d.ftype, rank, dims, d.mtype, d.buf, d.buf ? (size_t)d.n : 0, g);
    }
    data_free(&d);
}

/* A compound type without member `drop` (an older schema's /tasks). */
static hid_t compound_without(hid_t t, unsigned drop, int native)
{
    int nm = H5Tget_nmembers(t);
    size_t size = 0;
    hid_t out = -1;
    for (int pass = 0; pass < 2; pass++) {
        size_t off = 0;
        for (int i = 0; i < nm; i++) {
            if ((unsigned)i == drop % (unsigned)nm) continue;
            hid_t mt = H5Tget_member_type(t, (unsigned)i);
            hid_t nt = native ? H5Tget_native_type(mt, H5T_DIR_DEFAULT) : H5Tcopy(mt);
            char *name = H5Tget_member_name(t, (unsigned)i);
            if (pass == 1) H5Tinsert(out, name, off, nt);
            off += H5Tget_size(nt);
            H5free_memory(name);
            H5Tclose(nt);
            H5Tclose(mt);
        }
        size = off;
        if (pass == 0) out = H5Tcreate(H5T_COMPOUND, size ? size : 1);
    }
    return out;
}

static void dset_retype(hid_t file, const char *path, prog *g)
{
    dset_data d;
    if (data_read(file, path, &d) != 0) {
        data_free(&d);
        return;
    }
    unsigned k = next8(g) % 16;
    if (H5Tget_class(d.ftype) == H5T_COMPOUND && k < 8) {
        /* drop a member: read the rest by name, write them back */
        hid_t ft = compound_without(d.ftype, next8(g), 0), mt = compound_without(d.ftype, g->p[g->at - 1], 1);
        void *buf = NULL;
        if (d.n > 0 && d.n <= MAX_ELEMS && ft >= 0 && mt >= 0) {
            buf = calloc((size_t)d.n, H5Tget_size(mt));
            hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
            if (ds < 0 || H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
                free(buf);
                buf = NULL;
            }
            if (ds >= 0) H5Dclose(ds);
        }
        if (ft >= 0 && H5Ldelete(file, path, H5P_DEFAULT) >= 0)
            dset_create(file, path, ft, d.rank, d.dims, mt, buf, buf ? (size_t)d.n : 0, g);
        if (buf) {
            hid_t s = H5Screate_simple(d.rank, d.dims, NULL);
            H5Dvlen_reclaim(mt, s, H5P_DEFAULT, buf);
            H5Sclose(s);
            free(buf);
        }
        if (ft >= 0) H5Tclose(ft);
        if (mt >= 0) H5Tclose(mt);
        data_free(&d);
        return;
    }
    static const hid_t *const types[] = {&H5T_STD_U8LE_g,   &H5T_STD_I8LE_g,   &H5T_STD_U16LE_g, &H5T_STD_I16LE_g,
                                         &H5T_STD_U32LE_g,  &H5T_STD_I32LE_g,  &H5T_STD_U64LE_g, &H5T_STD_I64LE_g,
                                         &H5T_IEEE_F32LE_g, &H5T_IEEE_F64LE_g, &H5T_STD_U16BE_g, &H5T_IEEE_F32BE_g};
    hid_t ft;
    if (k < 12) {
        H5open();
        ft = H5Tcopy(*types[k]);
    } else if (k == 12) { /* a 16-bit float of HDF5's own description */
        ft = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(ft, 15, 10, 5, 0, 10);
        H5Tset_precision(ft, 16);
        H5Tset_size(ft, 2);
        H5Tset_ebias(ft, 15);
    } else if (k == 13) {
        ft = H5Tcopy(H5T_C_S1);
        H5Tset_size(ft, 8);
    } else if (k == 14) {
        ft = H5Tcopy(H5T_C_S1);
        H5Tset_size(ft, H5T_VARIABLE);
    } else {
        ft = H5Tarray_create2(H5T_STD_I32LE, 1, (hsize_t[]){2});
    }
    /* data: the program's bytes, cycled (strings: short pieces of them) */
    size_t es = H5Tget_size(ft), n = d.n > 0 && d.n <= MAX_ELEMS ? (size_t)d.n : 0;
    void *buf = n ? calloc(n, k == 14 ? sizeof(char *) : es) : NULL;
    char **strs = NULL;
    if (buf && k == 14) {
        strs = buf;
        for (size_t i = 0; i < n; i++) {
            strs[i] = calloc(8, 1);
            for (int j = 0; j < 7; j++)
                strs[i][j] = (char)(g->n ? g->p[(g->at + i * 7 + (size_t)j) % g->n] : 'x');
        }
    } else if (buf) {
        for (size_t i = 0; i < n * es; i++)
            ((uint8_t *)buf)[i] = g->n ? g->p[(g->at + i) % g->n] : 0;
    }
    if (H5Ldelete(file, path, H5P_DEFAULT) >= 0) dset_create(file, path, ft, d.rank, d.dims, ft, buf, n, g);
    if (strs)
        for (size_t i = 0; i < n; i++)
            free(strs[i]);
    free(buf);
    H5Tclose(ft);
    data_free(&d);
}

static void dset_relayout(hid_t file, const char *path, prog *g)
{
    dset_data d;
    if (data_read(file, path, &d) == 0 && (d.buf || d.n == 0) && H5Ldelete(file, path, H5P_DEFAULT) >= 0)
        dset_create(file, path, d.ftype, d.rank, d.dims, d.mtype, d.buf, d.buf ? (size_t)d.n : 0, g);
    data_free(&d);
}

/* Overwrites one element (of a compound: one member of it). */
static void dset_poke(hid_t file, const char *path, prog *g)
{
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0) return;
    hid_t s = H5Dget_space(ds), ft = H5Dget_type(ds), mt = -1, ms = H5Screate(H5S_SCALAR);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    int rank = H5Sget_simple_extent_ndims(s);
    hsize_t dims[8] = {0}, at[8] = {0};
    if (n > 0 && rank >= 0 && rank <= 8) {
        H5Sget_simple_extent_dims(s, dims, NULL);
        unsigned which = next16(g);
        for (int i = 0; i < rank; i++)
            at[i] = which == 0xffff ? dims[i] - 1 : (hsize_t)(which % dims[i]);
        if (rank) H5Sselect_elements(s, H5S_SELECT_SET, 1, at);
        H5T_class_t cls = H5Tget_class(ft);
        hid_t member = -1;
        char *mname = NULL;
        if (cls == H5T_COMPOUND) {
            int nm = H5Tget_nmembers(ft);
            unsigned m = next8(g) % (unsigned)(nm > 0 ? nm : 1);
            member = H5Tget_member_type(ft, m);
            mname = H5Tget_member_name(ft, m);
            cls = H5Tget_class(member);
        }
        union {
            int64_t i;
            double d;
            const char *s;
            uint8_t raw[16];
        } v;
        char str[64];
        hid_t et = -1;
        memset(&v, 0, sizeof v);
        if (cls == H5T_INTEGER) {
            et = H5Tcopy(H5T_NATIVE_INT64);
            v.i = pick_int(g, 0);
        } else if (cls == H5T_FLOAT) {
            et = H5Tcopy(H5T_NATIVE_DOUBLE);
            v.d = pick_double(g, 1.0);
        } else if (cls == H5T_STRING && member >= 0 && H5Tis_variable_str(member) > 0) {
            et = H5Tcopy(member);
            pick_string(g, str, sizeof str);
            v.s = str;
        } else if (cls == H5T_ENUM && member >= 0 && H5Tget_size(member) <= 8) {
            et = H5Tcopy(member); /* any value, named by the enum or not */
            v.raw[0] = (uint8_t)next8(g);
        }
        if (et >= 0) {
            if (mname) {
                mt = H5Tcreate(H5T_COMPOUND, H5Tget_size(et));
                H5Tinsert(mt, mname, 0, et);
            } else {
                mt = H5Tcopy(et);
            }
            H5Dwrite(ds, mt, ms, s, H5P_DEFAULT, &v);
            H5Tclose(et);
        }
        if (mname) H5free_memory(mname);
        if (member >= 0) H5Tclose(member);
    }
    if (mt >= 0) H5Tclose(mt);
    H5Sclose(ms);
    H5Sclose(s);
    H5Tclose(ft);
    H5Dclose(ds);
}

/* ---- the base files ------------------------------------------------------ */

static void die(const char *what, const qid_error *e)
{
    fprintf(stderr, "fuzz_h5: %s: %s\n", what, e ? e->msg : "");
    abort();
}

static void make_ckpt(const char *path)
{
    qid_model_config c = {.arch = QID_ARCH_GPT_NEOX,
                          .vocab_size = 16,
                          .d_model = 8,
                          .n_layers = 2,
                          .n_heads = 2,
                          .n_kv_heads = 2,
                          .head_dim = 4,
                          .d_ff = 16,
                          .max_seq_len = 32,
                          .rotary_dim = 2,
                          .rotary_pct = 0.5,
                          .rope_theta = 10000,
                          .norm_eps = 1e-5,
                          .parallel_residual = 1,
                          .qkv_bias = 1,
                          .o_bias = 1,
                          .mlp_bias = 1};
    qid_ckpt_meta meta = {.model = "fuzz",
                          .step = 8,
                          .tokens_seen = 512,
                          .dtype = QID_DTYPE_F32,
                          .source_format = "qid-train",
                          .lr_frac = 0.5,
                          .lr_schedule = "cosine"};
    qid_error e;
    qid_error_clear(&e);
    qid_ckpt_writer *w = qid_ckpt_create(path, &c, &meta, NULL, &e);
    if (!w) die("qid_ckpt_create", &e);
    size_t n = 0;
    qid_tensor_spec *t = qid_ckpt_tensors(&c, &n);
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)qid_tensor_numel(&t[i]);
        float *v = malloc(k * sizeof *v);
        for (size_t j = 0; j < k; j++)
            v[j] = (float)((int)((i * 31 + j * 7) % 13) - 6) / 16.0f;
        if (qid_ckpt_write_tensor(w, &t[i], v, &e)) die("qid_ckpt_write_tensor", &e);
        free(v);
    }
    free(t);
    if (qid_ckpt_finish(w, &e)) die("qid_ckpt_finish", &e);
}

static void make_tokens(const char *path)
{
    char raw[320];
    snprintf(raw, sizeof raw, "%s/ids.u16", dir);
    uint16_t ids[200];
    for (int i = 0; i < 200; i++)
        ids[i] = (uint16_t)((i * 37) % 50);
    FILE *f = fopen(raw, "wb");
    if (!f || fwrite(ids, sizeof ids, 1, f) != 1 || fclose(f)) die("writing ids", NULL);
    qid_tokens_import_opts o = {.input = raw,
                                .output = path,
                                .source = QID_TOKENS_SRC_U16,
                                .vocab_size = 50,
                                .tokenizer = "fuzz",
                                .seq_len = 16};
    qid_error e;
    qid_error_clear(&e);
    if (qid_tokens_import(&o, NULL, &e)) die("qid_tokens_import", &e);
    unlink(raw);
}

static int write_fit(int64_t group, void *ctx, qid_error *err)
{
    (void)ctx;
    const qid_fit_form *f = &qid_fit_forms[0];
    qid_fit_attr a[] = {QID_FIT_ATTR_STR("kind", "unified"),   QID_FIT_ATTR_STR("form", "ouyang"),
                        QID_FIT_ATTR_F64(f->coef[0], 0.5),     QID_FIT_ATTR_F64(f->coef[1], 0.2),
                        QID_FIT_ATTR_F64(f->coef[2], 0.3),     QID_FIT_ATTR_F64(f->coef[3], 1.5),
                        QID_FIT_ATTR_F64("level", 0.9),        QID_FIT_ATTR_STR("filter_method", "gptq"),
                        QID_FIT_ATTR_STR("filter_format", ""), QID_FIT_ATTR_STR("filter_bits", "2,3,4"),
                        QID_FIT_ATTR_F64("r2_log", 0.9),       QID_FIT_ATTR_F64("rmse", 0.01),
                        QID_FIT_ATTR_I64("n_points", 3)};
    int rc = qid_fit_store_write_attrs(group, a, sizeof a / sizeof a[0], err);
    double draws[12] = {0.5, 0.2, 0.3, 1.5, 0.6, 0.21, 0.31, 1.4, 0.4, 0.19, 0.29, 1.6};
    if (!rc) rc = qid_fit_store_write_matrix(group, "draws", draws, 3, 4, "k,alpha,beta,gamma", err);
    if (!rc) rc = qid_fit_store_write_provenance(group, err);
    return rc;
}

static void make_results(const char *path)
{
    qid_error e;
    qid_error_clear(&e);
    qid_results_provenance prov = {"fuzz", "fuzz.job", "[job]\nname = fuzz\n", 7, 3};
    qid_results *r = qid_results_open(path, &prov, &e);
    if (!r) die("qid_results_open", &e);
    double nll[4] = {10.5, 11.0, 9.75, 10.25};
    int32_t tok[4] = {16, 16, 16, 15};
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "task-%d", i);
        qid_result row = {.key = key,
                          .checkpoint = "c.h5",
                          .model = "m",
                          .ckpt_sha256 = "00",
                          .params = 1000,
                          .tokens_seen = 512 << i,
                          .step = 8 << i,
                          .lr_frac = 0.5,
                          .method = i ? "gptq" : "baseline",
                          .format = i ? "int3" : "",
                          .bits = i ? 3.25 : 16,
                          .elem_bits = i ? 3 : 16,
                          .block = 128,
                          .options = "",
                          .calib = "c",
                          .calib_chunk = -1,
                          .eval_protocol = "windows=4",
                          .eval_sha256 = "11",
                          .loss = 0.6,
                          .loss16 = 0.5,
                          .qid = 0.1 * i,
                          .qid_se = 0.01,
                          .sqnr_db = 20,
                          .kl = NAN,
                          .tokens = 63,
                          .windows = 4,
                          .seconds = 1,
                          .rank = 1,
                          .status = i == 2 ? QID_RESULT_FAILED : QID_RESULT_OK,
                          .error = i == 2 ? "boom" : "",
                          .finished_utc = "2026-01-01T00:00:00Z",
                          .window_nll = i == 2 ? NULL : nll,
                          .window_tokens = i == 2 ? NULL : tok,
                          .windows_used = 4,
                          .stop_rule = ""};
        if (qid_results_append(r, &row, &e)) die("qid_results_append", &e);
    }
    if (qid_results_close(r, &e)) die("qid_results_close", &e);
    if (qid_results_write_fit(path, "default", write_fit, NULL, &e)) die("qid_results_write_fit", &e);
}

static void cleanup(void)
{
    for (int i = 0; i < F_N; i++)
        unlink(base_path[i]);
    char lock[320];
    snprintf(lock, sizeof lock, "%s.lock", base_path[F_RESULTS]);
    unlink(lock);
    snprintf(lock, sizeof lock, "%s.lock", work_path);
    unlink(lock);
    unlink(work_path);
    rmdir(dir);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) die(path, NULL);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) die(path, NULL);
    fclose(f);
    *len = (size_t)n;
    return b;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    qid_h5_silence();
    qid_log_set_level(QID_LOG_ERROR);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/qid-fuzz-h5-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) die("mkdtemp", NULL);
    static const char *const names[F_N] = {"ckpt.h5", "tokens.h5", "results.h5"};
    for (int i = 0; i < F_N; i++)
        snprintf(base_path[i], sizeof base_path[i], "%s/%s", dir, names[i]);
    snprintf(work_path, sizeof work_path, "%s/work.h5", dir);
    atexit(cleanup);
    make_ckpt(base_path[F_CKPT]);
    make_tokens(base_path[F_TOKENS]);
    make_results(base_path[F_RESULTS]);
    for (int i = 0; i < F_N; i++)
        base[i] = slurp(base_path[i], &base_len[i]);
    return 0;
}

/* qid_results_read retries an HDF5 error six times with pauses of 10 to
 * 60 ms (for a SWMR reader racing a writer): here every retry fails the
 * same way, so the pauses are skipped (the retries still run). */
int nanosleep(const struct timespec *req, struct timespec *rem)
{
    (void)req;
    (void)rem;
    return 0;
}

/* ---- the readers ---------------------------------------------------------- */

/* A returned error must be one line. */
static void check_err(int rc, const qid_error *e)
{
    if (rc != QID_OK && (!e->msg[0] || strchr(e->msg, '\n'))) {
        fprintf(stderr, "bad error message (rc %d): '%s'\n", rc, e->msg);
        abort();
    }
}

static void read_ckpt(const char *path)
{
    qid_error e;
    qid_error_clear(&e);
    qid_model *m = NULL;
    int rc = qid_model_open(path, &m, &e);
    check_err(rc, &e);
    if (rc) return;
    int64_t nl = qid_model_cfg(m)->n_layers;
    int stages[] = {QID_STAGE_EMBED, 0, 1, (int)(nl - 1), (int)nl};
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        if (stages[i] < QID_STAGE_EMBED || stages[i] > nl) continue;
        qid_error_clear(&e);
        rc = qid_model_load(m, stages[i], &e);
        check_err(rc, &e);
        if (rc) break;
    }
    qid_model_free(m);
}

static void read_tokens(const char *path)
{
    qid_error e;
    qid_error_clear(&e);
    qid_tokens t;
    int rc = qid_tokens_open(path, &t, &e);
    check_err(rc, &e);
    if (rc) return;
    size_t nw = (size_t)t.meta.n_windows, sl = (size_t)t.meta.seq_len;
    /* as qid eval reads: a batch of up to 4 windows from the front, and the last */
    size_t first_n = nw < 4 ? nw : 4;
    uint32_t *buf = malloc(first_n * sl * sizeof *buf);
    qid_error_clear(&e);
    check_err(qid_tokens_read(&t, 0, first_n, buf, &e), &e);
    qid_error_clear(&e);
    check_err(qid_tokens_read(&t, nw - 1, 1, buf, &e), &e);
    free(buf);
    qid_tokens_close(&t);
}

static void read_results(const char *path)
{
    qid_error e;
    qid_error_clear(&e);
    qid_result *rows = NULL;
    size_t n = 0;
    int rc = qid_results_read(path, &rows, &n, &e);
    check_err(rc, &e);
    if (!rc) qid_results_rows_free(rows, n);
    qid_fit_entry *ents = NULL;
    qid_error_clear(&e);
    rc = qid_fit_store_entries(path, &ents, &n, &e);
    check_err(rc, &e);
    for (size_t i = 0; !rc && i < n; i++) {
        qid_fit_law law, *draws = NULL;
        size_t nd = 0;
        double level;
        qid_error_clear(&e);
        check_err(qid_fit_store_read_law(path, ents[i].name, &law, &draws, &nd, &level, &e), &e);
        free(draws);
        char method[64], format[64];
        uint64_t bits;
        qid_error_clear(&e);
        check_err(
            qid_fit_store_read_filters(path, ents[i].name, method, sizeof method, format, sizeof format, &bits, &e),
            &e);
        qid_fit_stats st;
        qid_error_clear(&e);
        check_err(qid_fit_store_read_stats(path, ents[i].name, &st, &e), &e);
    }
    free(ents);
    /* and as `qid run` resumes it: open for appending, close */
    qid_error_clear(&e);
    qid_results *r = qid_results_open(path, NULL, &e);
    check_err(r ? QID_OK : e.code, &e);
    if (r) {
        (void)qid_results_has(r, "task-0");
        qid_error_clear(&e);
        check_err(qid_results_close(r, &e), &e);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    prog g = {data, size, 1};
    int which = data[0] % F_N;
    int fd = open(work_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, base[which], base_len[which]) != (ssize_t)base_len[which] || close(fd)) die("work", NULL);
    hid_t file = H5Fopen(work_path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0) die("H5Fopen of the work copy", NULL);
    static listing l;
    int raw_mode = getenv("FUZZ_H5_RAW") != NULL;
    for (int ops = 0; ops < (raw_mode ? 2 : 16) && g.at < g.n; ops++) {
        unsigned op = next8(&g) % 8, sel = next16(&g);
        list_file(file, &l);
        int d = pick_dset(&l, sel);
        switch (op) {
        case 0: /* rewrite an attribute */
        case 1: /* delete one */
            if (l.n_attr) {
                size_t a = sel % l.n_attr;
                hid_t o = H5Oopen(file, l.attr_obj[a], H5P_DEFAULT);
                if (o >= 0) {
                    if (op == 0)
                        attr_write(o, l.attr_name[a], &g);
                    else
                        H5Adelete(o, l.attr_name[a]);
                    H5Oclose(o);
                }
            }
            break;
        case 2: { /* add an attribute named as one elsewhere, to any object */
            if (l.n_attr && l.n_obj) {
                hid_t o = H5Oopen(file, l.obj[next8(&g) % l.n_obj], H5P_DEFAULT);
                if (o >= 0) {
                    attr_write(o, l.attr_name[sel % l.n_attr], &g);
                    H5Oclose(o);
                }
            }
            break;
        }
        case 3:
            if (d >= 0) dset_reshape(file, l.obj[d], &g);
            break;
        case 4:
            if (d >= 0) dset_retype(file, l.obj[d], &g);
            break;
        case 5:
            if (d >= 0) dset_relayout(file, l.obj[d], &g);
            break;
        case 6: /* delete a link (not the root) */
            if (l.n_obj > 1) H5Ldelete(file, l.obj[1 + sel % (l.n_obj - 1)], H5P_DEFAULT);
            break;
        default:
            if (d >= 0) dset_poke(file, l.obj[d], &g);
            break;
        }
    }
    if (H5Fclose(file) < 0) die("H5Fclose of the work copy", NULL);
    if (raw_mode) { /* the rest of the program: (offset, byte) pairs written into the file */
        int fdw = open(work_path, O_RDWR);
        off_t len = fdw >= 0 ? lseek(fdw, 0, SEEK_END) : 0;
        while (fdw >= 0 && len > 0 && g.at + 3 <= g.n) {
            unsigned off = next16(&g) | (next8(&g) << 16);
            uint8_t b = (uint8_t)next8(&g);
            if (pwrite(fdw, &b, 1, (off_t)(off % (unsigned)len)) != 1) break;
        }
        if (fdw >= 0) close(fdw);
    }
    const char *save = getenv("FUZZ_H5_SAVE"); /* the mutated file, to look at with h5dump */
    if (save && save[0]) {
        size_t len = 0;
        uint8_t *b = slurp(work_path, &len);
        FILE *f = fopen(save, "wb");
        if (!f || fwrite(b, 1, len, f) != len || fclose(f)) die(save, NULL);
        free(b);
    }
    if (which == F_CKPT)
        read_ckpt(work_path);
    else if (which == F_TOKENS)
        read_tokens(work_path);
    else
        read_results(work_path);
    /* every HDF5 object the readers opened is closed again */
    ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (open_ids != 0) {
        hid_t ids[16];
        ssize_t k = H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_ALL, 16, ids);
        fprintf(stderr, "fuzz_h5: %zd HDF5 objects left open after reading the file:", open_ids);
        for (ssize_t i = 0; i < k; i++) {
            char name[200] = "?";
            H5Iget_name(ids[i], name, sizeof name);
            fprintf(stderr, " %s (type %d)", name, (int)H5Iget_type(ids[i]));
        }
        fprintf(stderr, "\n");
        abort();
    }
    return 0;
}
