/* cmd_inspect.c - `qid inspect FILE...`: a human summary of any qid HDF5
 * file, chosen by its `format` attribute: a checkpoint (qid_ckpt_summary,
 * with --tensors every tensor), a token set (qid_tokens_summary and, for
 * one written by `qid corpus`, qid_corpus_summary), or a results store
 * (rows, their status, the models).
 *
 * Exit status: 0 when every file was summarised; 1 when one could not be
 * (one "qid inspect: error: ..." line each, the others still printed); 2
 * for a bad command line.
 *
 * Does not: modify the file, or summarise non-qid HDF5 files beyond saying
 * so. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "corpus.h"
#include "error.h"
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
    fprintf(out, "%s: qid results store, schema version %d\n", path, QID_RESULTS_SCHEMA_VERSION);
    fprintf(out, "  %-22s %zu (%zu ok, %zu failed)\n", "rows", n, ok, failed);
    fprintf(out, "  %-22s %zu%s\n", "models", n_models, n_models == 64 ? " or more" : "");
    for (size_t k = 0; k < n_models; k++)
        fprintf(out, "    %s\n", models[k]);
    fprintf(out, "  (qid results %s prints the rows; qid fit %s fits the laws)\n", path, path);
    qid_results_rows_free(rows, n);
    return QID_OK;
}

static int inspect_one(const char *path, int tensors, qid_error *err)
{
    if (qid_h5_check_readable(path, err)) return err ? err->code : QID_E_IO;
    hid_t fid = H5I_INVALID_HID;
    char format[64] = "";
    QID_H5_TRY(err, fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "cannot open '%s'", path);
    int rc = qid_h5_read_format(fid, format, sizeof format, err);
    H5Fclose(fid);
    if (rc) return rc;
    if (strcmp(format, QID_CKPT_FORMAT) == 0) return qid_ckpt_summary(path, stdout, tensors, err);
    if (strcmp(format, QID_TOKENS_FORMAT) == 0) {
        rc = qid_tokens_summary(path, stdout, err);
        return rc ? rc : qid_corpus_summary(path, stdout, err);
    }
    if (strcmp(format, QID_RESULTS_FORMAT) == 0) return results_summary(path, stdout, err);
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
        if (inspect_one(args[i], tensors, &err)) status = cli_fail("inspect", "%s", err.msg);
    }
    return status;
}
