/* corpus_write.c - the train / eval / calibration token sets of `qid
 * corpus` (corpus.h): streams 1, 2, 3 of a synthetic source, or the byte
 * ranges of a text file, staged as raw files in DIR/.corpus.tmp.<pid>/,
 * imported there with the token-set writer (qid_tokens_import), given the
 * corpus attributes (hdf5-schema/tokens.md), and renamed into DIR only when
 * all three are complete; and the reading back of those attributes for
 * `qid inspect`.
 *
 * Does not: write token sets itself (tokens.c does), build or sample the
 * source (corpus.c), or read the command line (cmd_corpus.c). */
#include "corpus.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "h5io.h"
#include "tokens.h"

/* Tokens generated per block when writing a stream. */
#define GEN_BLOCK ((size_t)1 << 20)

static const char *const part_names[4] = {"", "train", "eval", "calib"};

const char *qid_corpus_part_name(int part)
{
    return part >= QID_CORPUS_TRAIN && part <= QID_CORPUS_CALIB ? part_names[part] : "?";
}

/* ---- staging and writing ------------------------------------------------- */

/* What a write has created, removed in reverse order unless committed. */
typedef struct stage {
    char *outdir, *dir; /* DIR and DIR/.corpus.tmp.<pid> */
    int made_outdir;
    char *made[16]; /* files and directories inside dir, in creation order */
    int made_is_dir[16];
    int n_made;
    char *staged[4]; /* dir/<part>.h5 by part */
} stage;

static char *stage_add(stage *st, char *path, int is_dir)
{
    QID_CHECK(st->n_made < 16, "too many staged files");
    st->made[st->n_made] = path;
    st->made_is_dir[st->n_made++] = is_dir;
    return path;
}

/* Removes what is staged (and DIR, when created here and failed is set). */
static void stage_end(stage *st, int failed)
{
    for (int i = st->n_made - 1; i >= 0; i--) {
        if (st->made_is_dir[i])
            rmdir(st->made[i]);
        else
            unlink(st->made[i]);
        free(st->made[i]);
    }
    if (st->dir) rmdir(st->dir);
    if (failed && st->made_outdir) rmdir(st->outdir);
    free(st->dir);
    free(st->outdir);
    memset(st, 0, sizeof *st);
}

/* Checks the outputs and creates DIR (when missing) and the staging dir. */
static int stage_begin(stage *st, const qid_corpus_write_opts *o, qid_corpus_written *w, qid_error *err)
{
    struct stat sb;
    memset(st, 0, sizeof *st);
    memset(w, 0, sizeof *w);
    if (!o->outdir || !o->outdir[0]) return qid_error_set(err, QID_E_INVALID, "no output directory given");
    if (o->seq_len < 2 || o->seq_len > QID_TOKENS_MAX_SEQ_LEN)
        return qid_error_set(err, QID_E_INVALID, "window length %" PRId64 " is outside 2..%" PRId64, o->seq_len,
                             QID_TOKENS_MAX_SEQ_LEN);
    if (stat(o->outdir, &sb) == 0 && !S_ISDIR(sb.st_mode))
        return qid_error_set(err, QID_E_INVALID, "output '%s' exists and is not a directory", o->outdir);
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB; part++) {
        char name[16];
        snprintf(name, sizeof name, "%s.h5", part_names[part]);
        char *path = qid_path_join(o->outdir, name);
        snprintf(w->path[part], sizeof w->path[part], "%s", path);
        free(path);
        int rc = qid_output_check(w->path[part], o->force, err);
        if (rc) return rc;
    }
    st->outdir = qid_strdup(o->outdir);
    if (!qid_path_exists(o->outdir)) {
        if (mkdir(o->outdir, 0777) != 0) {
            int rc = qid_error_set(err, QID_E_IO, "cannot create directory '%s': %s", o->outdir, strerror(errno));
            stage_end(st, 1);
            return rc;
        }
        st->made_outdir = 1;
    }
    char name[64];
    snprintf(name, sizeof name, ".corpus.tmp.%ld", (long)getpid());
    char *dir = qid_path_join(o->outdir, name);
    if (mkdir(dir, 0777) != 0) {
        int rc = qid_error_set(err, QID_E_IO, "cannot create directory '%s': %s", dir, strerror(errno));
        free(dir);
        stage_end(st, 1);
        return rc;
    }
    st->dir = dir;
    return QID_OK;
}

/* Imports the raw file into dir/<part>.h5 and removes the raw file. */
static int stage_import(stage *st, int part, char *raw, qid_tokens_source kind, int64_t vocab, const char *tokenizer,
                        int64_t seq_len, qid_tokens_meta *m, qid_error *err)
{
    char name[16];
    snprintf(name, sizeof name, "%s.h5", part_names[part]);
    st->staged[part] = stage_add(st, qid_path_join(st->dir, name), 0);
    qid_tokens_import_opts io = {
        .input = raw,
        .output = st->staged[part],
        .source = kind,
        .vocab_size = vocab,
        .tokenizer = tokenizer,
        .seq_len = seq_len,
    };
    int rc = qid_tokens_import(&io, m, err);
    unlink(raw);
    return rc;
}

/* The attributes of one staged part; fill(fid, part, arg) writes the
 * generator-specific ones. */
typedef int (*attr_fn)(hid_t fid, int part, const void *arg, qid_error *err);

static int stage_attrs(stage *st, int part, attr_fn fill, const void *arg, qid_error *err)
{
    hid_t fid = H5I_INVALID_HID;
    QID_H5_TRY(err, fid = H5Fopen(st->staged[part], H5F_ACC_RDWR, H5P_DEFAULT), "cannot open '%s'", st->staged[part]);
    int rc = qid_h5_attr_write_str(fid, "corpus_part", part_names[part], err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "corpus_version", QID_CORPUS_VERSION, err);
    if (!rc) rc = fill(fid, part, arg, err);
    QID_H5_TRY(err, H5Fclose(fid), "cannot close '%s'", st->staged[part]);
    return rc;
fail:
    if (fid >= 0) H5Fclose(fid);
    return err && err->code ? err->code : QID_E_HDF5;
}

/* Renames the three staged files into DIR (each flushed and synced). */
static int stage_commit(stage *st, const qid_corpus_written *w, qid_error *err)
{
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB; part++) {
        hid_t fid = H5I_INVALID_HID;
        QID_H5_TRY(err, fid = H5Fopen(st->staged[part], H5F_ACC_RDWR, H5P_DEFAULT), "cannot open '%s'",
                   st->staged[part]);
        int rc = qid_h5_commit(fid, qid_strdup(st->staged[part]), w->path[part], err);
        if (rc) return rc;
    }
    return QID_OK;
fail:
    return err && err->code ? err->code : QID_E_HDF5;
}

static int write_all(FILE *f, const void *buf, size_t n, const char *path, qid_error *err)
{
    if (fwrite(buf, 1, n, f) != n) return qid_error_set(err, QID_E_IO, "cannot write '%s': %s", path, strerror(errno));
    return QID_OK;
}

static int close_file(FILE *f, const char *path, qid_error *err)
{
    if (fclose(f) != 0) return qid_error_set(err, QID_E_IO, "cannot write '%s': %s", path, strerror(errno));
    return QID_OK;
}

/* Writes n tokens of stream `part` to path as little-endian uint16. */
static int write_stream(const qid_corpus_source *src, int part, uint64_t n, const char *path, double *seconds,
                        qid_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f) return qid_error_set(err, QID_E_IO, "cannot create '%s': %s", path, strerror(errno));
    uint16_t *ids = qid_malloc(GEN_BLOCK * sizeof *ids, "a block of generated tokens");
    uint8_t *bytes = qid_malloc(GEN_BLOCK * 2, "a block of generated tokens");
    qid_corpus_stream s;
    qid_corpus_stream_init(&s, src, (uint64_t)part);
    int rc = QID_OK;
    for (uint64_t done = 0; done < n && !rc;) {
        size_t m = n - done < GEN_BLOCK ? (size_t)(n - done) : GEN_BLOCK;
        double t0 = qid_now();
        qid_corpus_generate(&s, ids, m);
        *seconds += qid_now() - t0;
        for (size_t i = 0; i < m; i++) {
            bytes[2 * i] = (uint8_t)(ids[i] & 0xff);
            bytes[2 * i + 1] = (uint8_t)(ids[i] >> 8);
        }
        rc = write_all(f, bytes, 2 * m, path, err);
        done += m;
    }
    free(ids);
    free(bytes);
    int rc2 = close_file(f, path, err);
    return rc ? rc : rc2;
}

typedef struct synth_attrs {
    const qid_corpus_source *src;
    int64_t seq_len;
} synth_attrs;

static int fill_synthetic(hid_t fid, int part, const void *arg, qid_error *err)
{
    const synth_attrs *a = arg;
    const qid_corpus_source *src = a->src;
    char params[256];
    qid_corpus_params_format(&src->p, params, sizeof params);
    int rc = qid_h5_attr_write_str(fid, "corpus_generator", QID_CORPUS_GENERATOR, err);
    if (!rc) rc = qid_h5_attr_write_str(fid, "corpus_params", params, err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "corpus_seed", (int64_t)src->p.seed, err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "corpus_stream", part, err);
    if (!rc) rc = qid_h5_attr_write_f64(fid, "entropy_rate", src->entropy_rate, err);
    if (!rc) rc = qid_h5_attr_write_f64(fid, "unigram_entropy", src->h[0], err);
    if (!rc) rc = qid_h5_attr_write_f64(fid, "bigram_entropy", src->h[1], err);
    if (!rc) rc = qid_h5_attr_write_f64(fid, "loss_floor", qid_corpus_loss_floor(src, a->seq_len), err);
    return rc;
}

int qid_corpus_write_synthetic(const qid_corpus_source *src, const qid_corpus_write_opts *o, qid_corpus_written *w,
                               qid_error *err)
{
    stage st;
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB; part++)
        if (o->tokens[part] < 1)
            return qid_error_set(err, QID_E_INVALID, "--%s-tokens %" PRId64 " must be at least 1", part_names[part],
                                 o->tokens[part]);
    int rc = stage_begin(&st, o, w, err);
    if (rc) return rc;
    synth_attrs a = {src, o->seq_len};
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB && !rc; part++) {
        uint64_t L = (uint64_t)o->seq_len, windows = ((uint64_t)o->tokens[part] + L - 1) / L;
        if (windows > UINT64_MAX / L) {
            rc = qid_error_set(err, QID_E_INVALID, "--%s-tokens %" PRId64 " is too large", part_names[part],
                               o->tokens[part]);
            break;
        }
        char name[16];
        snprintf(name, sizeof name, "%s.u16", part_names[part]);
        char *raw = stage_add(&st, qid_path_join(st.dir, name), 0);
        qid_tokens_meta m;
        rc = write_stream(src, part, windows * L, raw, &w->generate_seconds, err);
        if (!rc)
            rc = stage_import(&st, part, raw, QID_TOKENS_SRC_U16, (int64_t)src->V, "synthetic", o->seq_len, &m, err);
        if (!rc) rc = stage_attrs(&st, part, fill_synthetic, &a, err);
        if (!rc) w->windows[part] = m.n_windows;
    }
    if (!rc) rc = stage_commit(&st, w, err);
    stage_end(&st, rc != QID_OK);
    return rc;
}

/* ---- text files ----------------------------------------------------------- */

int qid_corpus_split_text(uint64_t n, int64_t seq_len, double eval_frac, double calib_frac, int64_t offset[4],
                          int64_t bytes[4], qid_error *err)
{
    if (seq_len < 1) return qid_error_set(err, QID_E_INVALID, "window length %" PRId64 " is not positive", seq_len);
    if (!(eval_frac > 0 && calib_frac > 0 && eval_frac + calib_frac < 1))
        return qid_error_set(err, QID_E_INVALID,
                             "--eval-frac %g and --calib-frac %g must be positive and add up to less than 1", eval_frac,
                             calib_frac);
    uint64_t L = (uint64_t)seq_len, W = n / L;
    uint64_t ev = (uint64_t)llround(eval_frac * (double)W), ca = (uint64_t)llround(calib_frac * (double)W);
    if (ev < 1 || ca < 1 || ev + ca >= W)
        return qid_error_set(err, QID_E_INVALID,
                             "%" PRIu64 " bytes make %" PRIu64 " window%s of %" PRId64
                             ", too few to give train, eval and calib one each at --eval-frac %g --calib-frac %g "
                             "(lower --seq-len or give a larger file)",
                             n, W, W == 1 ? "" : "s", seq_len, eval_frac, calib_frac);
    uint64_t tr = W - ev - ca;
    offset[QID_CORPUS_TRAIN] = 0;
    bytes[QID_CORPUS_TRAIN] = (int64_t)(tr * L);
    offset[QID_CORPUS_EVAL] = (int64_t)(tr * L);
    bytes[QID_CORPUS_EVAL] = (int64_t)(ev * L);
    offset[QID_CORPUS_CALIB] = (int64_t)((tr + ev) * L);
    bytes[QID_CORPUS_CALIB] = (int64_t)(n - (tr + ev) * L);
    return QID_OK;
}

/* Copies bytes [offset, offset + n) of in (path for messages) to path. */
static int copy_range(FILE *in, const char *in_path, int64_t offset, int64_t n, const char *path, qid_error *err)
{
    if (fseeko(in, (off_t)offset, SEEK_SET) != 0)
        return qid_error_set(err, QID_E_IO, "cannot seek in '%s': %s", in_path, strerror(errno));
    FILE *f = fopen(path, "wb");
    if (!f) return qid_error_set(err, QID_E_IO, "cannot create '%s': %s", path, strerror(errno));
    size_t cap = (size_t)1 << 20;
    uint8_t *buf = qid_malloc(cap, "a block of text");
    int rc = QID_OK;
    for (int64_t left = n; left > 0 && !rc;) {
        size_t m = (uint64_t)left < cap ? (size_t)left : cap;
        if (fread(buf, 1, m, in) != m)
            rc = qid_error_set(err, QID_E_IO, "cannot read '%s': %s", in_path,
                               ferror(in) ? strerror(errno) : "unexpected end of file (did it change?)");
        else
            rc = write_all(f, buf, m, path, err);
        left -= (int64_t)m;
    }
    free(buf);
    int rc2 = close_file(f, path, err);
    return rc ? rc : rc2;
}

static int fill_text(hid_t fid, int part, const void *arg, qid_error *err)
{
    const qid_corpus_written *w = arg;
    int rc = qid_h5_attr_write_str(fid, "corpus_generator", QID_CORPUS_GENERATOR_TEXT, err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "source_offset", w->offset[part], err);
    if (!rc) rc = qid_h5_attr_write_i64(fid, "source_length", w->bytes[part], err);
    return rc;
}

int qid_corpus_write_text(const qid_corpus_write_opts *o, qid_corpus_written *w, qid_error *err)
{
    struct stat sb;
    stage st;
    if (!o->text) return qid_error_set(err, QID_E_INVALID, "no text file given");
    FILE *in = fopen(o->text, "rb");
    if (!in) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", o->text, strerror(errno));
    int rc = QID_OK;
    if (fstat(fileno(in), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = qid_error_set(err, QID_E_IO, "'%s' is not a regular file", o->text);
        fclose(in);
        return rc;
    }
    int64_t offset[4], bytes[4];
    if ((rc = qid_corpus_split_text((uint64_t)sb.st_size, o->seq_len, o->eval_frac, o->calib_frac, offset, bytes,
                                    err))) {
        qid_error_wrap(err, rc, "cannot split '%s'", o->text);
        fclose(in);
        return rc;
    }
    if ((rc = stage_begin(&st, o, w, err))) {
        fclose(in);
        return rc;
    }
    memcpy(w->offset, offset, sizeof offset);
    memcpy(w->bytes, bytes, sizeof bytes);
    const char *base = qid_path_base(o->text);
    for (int part = QID_CORPUS_TRAIN; part <= QID_CORPUS_CALIB && !rc; part++) {
        /* dir/<part>/<name of the text file>: the token set records that name */
        char *sub = stage_add(&st, qid_path_join(st.dir, part_names[part]), 1);
        if (mkdir(sub, 0777) != 0) {
            rc = qid_error_set(err, QID_E_IO, "cannot create directory '%s': %s", sub, strerror(errno));
            break;
        }
        char *raw = stage_add(&st, qid_path_join(sub, base), 0);
        qid_tokens_meta m;
        rc = copy_range(in, o->text, offset[part], bytes[part], raw, err);
        if (!rc) rc = stage_import(&st, part, raw, QID_TOKENS_SRC_TEXT, 256, "bytes", o->seq_len, &m, err);
        if (!rc) rc = stage_attrs(&st, part, fill_text, w, err);
        if (!rc) w->windows[part] = m.n_windows;
    }
    fclose(in);
    if (!rc) rc = stage_commit(&st, w, err);
    stage_end(&st, rc != QID_OK);
    return rc;
}

/* ---- reading the attributes back ------------------------------------------- */

int qid_corpus_info_read(const char *path, qid_corpus_info *info, qid_error *err)
{
    memset(info, 0, sizeof *info);
    hid_t fid = H5I_INVALID_HID;
    QID_H5_TRY(err, fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "cannot open '%s'", path);
    int rc = QID_OK;
    if (!qid_h5_attr_exists(fid, "corpus_generator")) goto done;
    rc = qid_h5_attr_read_str(fid, "/", "corpus_generator", info->generator, sizeof info->generator, err);
    if (!rc) rc = qid_h5_attr_read_str(fid, "/", "corpus_part", info->part, sizeof info->part, err);
    if (!rc) rc = qid_h5_attr_read_i64(fid, "/", "corpus_version", &info->version, err);
    if (rc) goto done;
    info->synthetic = strcmp(info->generator, QID_CORPUS_GENERATOR) == 0;
    if (info->synthetic) {
        rc = qid_h5_attr_read_str(fid, "/", "corpus_params", info->params, sizeof info->params, err);
        if (!rc) rc = qid_h5_attr_read_i64(fid, "/", "corpus_stream", &info->stream, err);
        if (!rc) rc = qid_h5_attr_read_i64(fid, "/", "seq_len", &info->seq_len, err);
        if (!rc) rc = qid_h5_attr_read_f64(fid, "/", "entropy_rate", &info->entropy_rate, err);
        if (!rc) rc = qid_h5_attr_read_f64(fid, "/", "unigram_entropy", &info->unigram_entropy, err);
        if (!rc) rc = qid_h5_attr_read_f64(fid, "/", "bigram_entropy", &info->bigram_entropy, err);
        if (!rc) rc = qid_h5_attr_read_f64(fid, "/", "loss_floor", &info->loss_floor, err);
    } else if (qid_h5_attr_exists(fid, "source_offset")) {
        rc = qid_h5_attr_read_i64(fid, "/", "source_offset", &info->source_offset, err);
        if (!rc) rc = qid_h5_attr_read_i64(fid, "/", "source_length", &info->source_length, err);
    }
    info->present = rc == QID_OK;
done:
    H5Fclose(fid);
    return rc;
fail:
    return err && err->code ? err->code : QID_E_HDF5;
}
