/* cmd_inspect.c - `qid inspect FILE...`: a human summary of any qid HDF5
 * file, chosen by its `format` attribute: a checkpoint (with --tensors
 * every tensor), a token set (and, for one written by `qid corpus`, its
 * source: qid_corpus_info_read), or a results store (rows, their status,
 * the models).
 *
 * Exit status: 0 when every file was summarised; 1 when one could not be
 * (one "qid inspect: error: ..." line each, the others still printed); 2
 * for a bad command line.
 *
 * Does not: modify the file, or summarise non-qid HDF5 files beyond saying
 * so. */
#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "corpus.h"
#include "error.h"
#include "fit_store.h"
#include "h5io.h"
#include "results.h"
#include "tokens.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: qid inspect [--tensors] FILE...\n"
                 "\n"
                 "Prints what a qid HDF5 file holds: kind, schema version, architecture,\n"
                 "sizes, N, D, hashes; for token sets the vocabulary and windows.\n"
                 "\n"
                 "options:\n"
                 "  -t, --tensors   list every tensor with its shape and dtype\n"
                 "  -h, --help      this help\n");
}

static void print_count(FILE *out, const char *label, int64_t n)
{
    if (n >= 1000000000)
        fprintf(out, "  %-22s %" PRId64 " (%.2fB)\n", label, n, (double)n / 1e9);
    else if (n >= 1000000)
        fprintf(out, "  %-22s %" PRId64 " (%.2fM)\n", label, n, (double)n / 1e6);
    else
        fprintf(out, "  %-22s %" PRId64 "\n", label, n);
}

/* A checkpoint: model, architecture, dtype, step, D, N, shapes, hashes;
 * with list_tensors one line per tensor. */
static int ckpt_summary(const char *path, FILE *out, int list_tensors, qid_error *err)
{
    qid_ckpt ck;
    int rc = qid_ckpt_open(path, &ck, err);
    if (rc) return rc;
    const qid_model_config *c = &ck.cfg;
    const qid_ckpt_meta *m = &ck.meta;
    fprintf(out, "%s: qid checkpoint, schema version %" PRId64 "\n", path, ck.schema_version);
    fprintf(out, "  %-22s %s\n", "model", m->model[0] ? m->model : "(unnamed)");
    fprintf(out, "  %-22s %s\n", "architecture", qid_arch_name(c->arch));
    fprintf(out, "  %-22s %s\n", "dtype", qid_dtype_name(m->dtype));
    fprintf(out, "  %-22s %" PRId64 "\n", "step", m->step);
    if (m->tokens_seen >= 0)
        fprintf(out, "  %-22s %" PRId64 " (%.3g)\n", "tokens seen (D)", m->tokens_seen, (double)m->tokens_seen);
    else
        fprintf(out, "  %-22s unknown\n", "tokens seen (D)");
    if (!isnan(m->lr_frac))
        fprintf(out, "  %-22s %.4g of peak%s%s%s\n", "learning rate", m->lr_frac, m->lr_schedule[0] ? " (" : "",
                m->lr_schedule, m->lr_schedule[0] ? ")" : "");
    else
        fprintf(out, "  %-22s unknown (qid import --schedule)\n", "learning rate");
    print_count(out, "params non-embed (N)", m->params_nonembedding);
    print_count(out, "params total", m->params_total);
    fprintf(out, "  %-22s %" PRId64 " layers, d_model %" PRId64 ", d_ff %" PRId64 ", vocab %" PRId64 "\n", "shape",
            c->n_layers, c->d_model, c->d_ff, c->vocab_size);
    if (c->arch == QID_ARCH_GPT_NEOX || c->arch == QID_ARCH_LLAMA)
        fprintf(out,
                "  %-22s %" PRId64 " heads (%" PRId64 " kv) x %" PRId64 ", rotary %" PRId64 " dims (%.3g), theta %g\n",
                "attention", c->n_heads, c->n_kv_heads, c->head_dim, c->rotary_dim, c->rotary_pct, c->rope_theta);
    else
        fprintf(out, "  %-22s %" PRId64 " heads x %" PRId64 ", %s%s%s\n", "attention", c->n_heads, c->head_dim,
                c->arch == QID_ARCH_BLOOM ? "ALiBi" : "learned positions", c->attn_unscaled ? ", unscaled scores" : "",
                c->attn_layer_scaled ? ", scores / (layer + 1)" : "");
    if (c->arch != QID_ARCH_GPT_NEOX && c->arch != QID_ARCH_LLAMA)
        fprintf(out, "  %-22s %s, %s%s", "mlp, norms", qid_act_name(c->act),
                c->post_norm ? "post-LayerNorm" : "pre-LayerNorm", c->no_final_norm ? ", no final norm" : "");
    if (c->d_embed > 0) fprintf(out, ", embedding width %" PRId64 " (project_in/out)", c->d_embed);
    if (c->arch != QID_ARCH_GPT_NEOX && c->arch != QID_ARCH_LLAMA) fprintf(out, "\n");
    fprintf(out, "  %-22s %s eps %g, %s residual, %s embeddings\n", "blocks",
            c->arch == QID_ARCH_LLAMA ? "rmsnorm" : "layernorm", c->norm_eps,
            c->parallel_residual ? "parallel" : "sequential", c->tie_embeddings ? "tied" : "untied");
    fprintf(out, "  %-22s qkv %s, out %s, mlp %s\n", "biases", c->qkv_bias ? "yes" : "no", c->o_bias ? "yes" : "no",
            c->mlp_bias ? "yes" : "no");
    fprintf(out, "  %-22s %" PRId64 "\n", "max positions", c->max_seq_len);
    fprintf(out, "  %-22s %s (%s)\n", "source sha256", m->source_sha256, m->source_format);
    fprintf(out, "  %-22s %s\n", "tensor sha256", m->tensor_sha256);
    if (H5Lexists(ck.file, "gptq", H5P_DEFAULT) > 0) { /* imported from a GPTQ-packed model */
        hid_t g = H5Gopen2(ck.file, "gptq", H5P_DEFAULT);
        int64_t bits = 0, group = 0, sym = 0, act = 0, layers = 0;
        char fmt[32] = "?";
        qid_error e;
        if (g >= 0 && !qid_h5_attr_read_i64(g, "/gptq", "bits", &bits, &e) &&
            !qid_h5_attr_read_i64(g, "/gptq", "group_size", &group, &e) &&
            !qid_h5_attr_read_i64(g, "/gptq", "sym", &sym, &e) &&
            !qid_h5_attr_read_i64(g, "/gptq", "desc_act", &act, &e) &&
            !qid_h5_attr_read_i64(g, "/gptq", "packed_layers", &layers, &e) &&
            !qid_h5_attr_read_str(g, "/gptq", "checkpoint_format", fmt, sizeof fmt, &e))
            fprintf(out,
                    "  %-22s GPTQ %" PRId64 "-bit, group %" PRId64 ", %s, desc_act %s, %s format, %" PRId64
                    " packed layers\n",
                    "dequantized from", bits, group, sym ? "symmetric" : "asymmetric", act ? "yes" : "no", fmt, layers);
        if (g >= 0) H5Gclose(g);
    }
    size_t n = 0;
    qid_tensor_spec *t = qid_ckpt_tensors(c, &n);
    fprintf(out, "  %-22s %zu\n", "tensors", n);
    if (list_tensors) {
        static const char *kinds[] = {"linear", "bias", "norm", "embed", "proj"};
        for (size_t i = 0; i < n; i++) {
            char p[160], shape[64];
            qid_tensor_path(&t[i], p, sizeof p);
            if (t[i].ndim == 2)
                snprintf(shape, sizeof shape, "[%" PRId64 ", %" PRId64 "]", t[i].shape[0], t[i].shape[1]);
            else
                snprintf(shape, sizeof shape, "[%" PRId64 "]", t[i].shape[0]);
            fprintf(out, "    %-34s %-16s %-8s %s\n", p, shape, qid_dtype_name(m->dtype), kinds[t[i].kind]);
        }
    }
    free(t);
    qid_ckpt_close(&ck);
    return QID_OK;
}

/* A token set: tokenizer, vocabulary, windows x seq_len, stored dtype,
 * source file, token counts, sha256. */
static int tokens_summary(const char *path, FILE *out, qid_error *err)
{
    qid_tokens t;
    int rc = qid_tokens_open(path, &t, err);
    if (rc) return rc;
    const qid_tokens_meta *m = &t.meta;
    fprintf(out, "%s: qid token set, schema version %" PRId64 "\n", path, m->schema_version);
    fprintf(out, "  %-22s %s\n", "tokenizer", m->tokenizer);
    fprintf(out, "  %-22s %" PRId64 "\n", "vocab size", m->vocab_size);
    fprintf(out, "  %-22s %" PRId64 " x %" PRId64 " tokens (%" PRId64 " tokens)\n", "windows", m->n_windows, m->seq_len,
            m->n_windows * m->seq_len);
    fprintf(out, "  %-22s uint%d\n", "dtype", m->id_bits);
    fprintf(out, "  %-22s %s (%" PRId64 " tokens, %" PRId64 " dropped)\n", "source", m->source_file, m->source_tokens,
            m->tokens_dropped);
    fprintf(out, "  %-22s %s\n", "source sha256", m->source_sha256);
    char a[256], b[256], c[256];
    int64_t docs = 0;
    if (qid_h5_attr_exists(t.file, "tokenizer_sha256") > 0 &&
        !qid_h5_attr_read_str(t.file, "/", "tokenizer_file", a, sizeof a, err) &&
        !qid_h5_attr_read_str(t.file, "/", "tokenizer_sha256", b, sizeof b, err) &&
        !qid_h5_attr_read_str(t.file, "/", "document_policy", c, sizeof c, err) &&
        !qid_h5_attr_read_i64(t.file, "/", "documents", &docs, err)) {
        fprintf(out, "  %-22s %s (sha256 %s)\n", "tokenizer file", a, b);
        fprintf(out, "  %-22s %" PRId64 " (%s)\n", "documents", docs, c);
    }
    if (qid_h5_attr_exists(t.file, "megatron_selection") > 0 &&
        !qid_h5_attr_read_str(t.file, "/", "megatron_selection", a, sizeof a, err) &&
        !qid_h5_attr_read_str(t.file, "/", "megatron_dtype", b, sizeof b, err))
        fprintf(out, "  %-22s %s (%s)\n", "megatron selection", a, b);
    qid_error_clear(err);
    fprintf(out, "  %-22s %s\n", "created by", m->created_by);
    qid_tokens_close(&t);
    return QID_OK;
}

/* The corpus attributes of a token set written by qid corpus, if any. */
static int corpus_summary(const char *path, FILE *out, qid_error *err)
{
    qid_corpus_info c;
    int rc = qid_corpus_info_read(path, &c, err);
    if (rc || !c.present) return rc;
    if (c.synthetic) {
        fprintf(out, "  %-22s %s v%" PRId64 ", part %s (stream %" PRId64 ")\n", "corpus", c.generator, c.version,
                c.part, c.stream);
        fprintf(out, "  %-22s %s\n", "corpus params", c.params);
        fprintf(out, "  %-22s %.6f nats/token (%.6f bits)\n", "entropy rate", c.entropy_rate,
                c.entropy_rate / log(2.0));
        fprintf(out, "  %-22s %.6f nats/token on %" PRId64 "-token windows\n", "loss floor", c.loss_floor, c.seq_len);
        fprintf(out, "  %-22s %.6f / %.6f nats/token\n", "unigram / bigram", c.unigram_entropy, c.bigram_entropy);
    } else {
        fprintf(out, "  %-22s %s v%" PRId64 ", part %s: bytes %" PRId64 "..%" PRId64 " of the source\n", "corpus",
                c.generator, c.version, c.part, c.source_offset, c.source_offset + c.source_length);
    }
    return QID_OK;
}

/* A results store: rows, their status, models and methods. */
static int results_summary(const char *path, FILE *out, qid_error *err)
{
    qid_result *rows = NULL;
    size_t n = 0, ok = 0, failed = 0, n_models = 0;
    const char *models[64];
    int rc = qid_results_read(path, &rows, &n, err);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].status == QID_RESULT_OK)
            ok++;
        else
            failed++;
        size_t k = 0;
        while (k < n_models && strcmp(models[k], rows[i].model) != 0)
            k++;
        if (k == n_models && n_models < 64) models[n_models++] = rows[i].model;
    }
    int64_t version = 0;
    hid_t fid = qid_h5_open_format(path, QID_RESULTS_FORMAT, QID_RESULTS_SCHEMA_VERSION, &version, NULL);
    if (fid >= 0) H5Fclose(fid);
    fprintf(out, "%s: qid results store, schema version %" PRId64 "\n", path, version);
    fprintf(out, "  %-22s %zu (%zu ok, %zu failed)\n", "rows", n, ok, failed);
    fprintf(out, "  %-22s %zu%s\n", "models", n_models, n_models == 64 ? " or more" : "");
    for (size_t k = 0; k < n_models; k++)
        fprintf(out, "    %s\n", models[k]);
    qid_fit_entry *fits = NULL;
    size_t n_fits = 0;
    qid_fit_store_entries(path, &fits, &n_fits, NULL);
    fprintf(out, "  %-22s %zu\n", "fits", n_fits);
    for (size_t k = 0; k < n_fits; k++) {
        const qid_fit_entry *e = &fits[k];
        fprintf(out, "    /fits/%-14s %s%s%s%s%s\n", e->name, e->form[0] ? e->form : e->kind, e->form[0] ? " law" : "",
                e->filters[0] ? ": " : "", e->filters, e->compare ? "; forms compared" : "");
    }
    free(fits);
    fprintf(out, "  (qid results %s prints the rows; qid fit %s fits the laws)\n", path, path);
    qid_results_rows_free(rows, n);
    return QID_OK;
}

int cli_inspect_file(const char *path, int tensors, FILE *out, qid_error *err)
{
    if (qid_h5_check_readable(path, err)) return err ? err->code : QID_E_IO;
    hid_t fid = H5I_INVALID_HID;
    char format[64] = "";
    QID_H5_TRY(err, fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "cannot open '%s'", path);
    int rc = qid_h5_read_format(fid, format, sizeof format, err);
    H5Fclose(fid);
    if (rc) return rc;
    if (strcmp(format, QID_CKPT_FORMAT) == 0) return ckpt_summary(path, out, tensors, err);
    if (strcmp(format, QID_TOKENS_FORMAT) == 0) {
        rc = tokens_summary(path, out, err);
        return rc ? rc : corpus_summary(path, out, err);
    }
    if (strcmp(format, QID_RESULTS_FORMAT) == 0) return results_summary(path, out, err);
    if (!format[0])
        return qid_error_set(err, QID_E_FORMAT, "'%s' is an HDF5 file without a qid 'format' attribute", path);
    return qid_error_set(err, QID_E_FORMAT, "'%s' has format '%s', which this qid does not know", path, format);
fail:
    return err ? err->code : QID_E_HDF5;
}

int qid_inspect_main(int argc, char **argv)
{
    int tensors = 0;
    const cli_opt opts[] = {
        {"tensors", 't', CLI_FLAG, &tensors, 0, 0, 0, NULL, NULL},
    };
    const cli_spec spec = {"inspect", usage, opts, sizeof opts / sizeof opts[0], 1, -1, "no file given"};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1; /* the positional arguments */
    int status = rc == CLI_HELP ? 0 : rc;
    for (int i = 0; rc == CLI_OK && i < n_args; i++) {
        qid_error err;
        qid_error_clear(&err);
        if (cli_inspect_file(args[i], tensors, stdout, &err)) status = cli_fail("inspect", "%s", err.msg);
    }
    return status;
}
