/* import.h - the work of `qid import` (cmd_import.c): a Hugging Face
 * checkpoint directory (config.json plus one or sharded *.safetensors) to
 * one qid checkpoint file.
 *
 * Maps config.json to a qid_model_config (gpt_neox; llama, mistral, qwen2),
 * maps tensor names through the checkpoint tensor table, checks every shape
 * and dtype, and copies the bytes unchanged (fp32, fp16, bf16 kept). The
 * output appears only when complete (temporary name, renamed at the end).
 *
 * Does not: download anything, convert pytorch_model.bin (see
 * tools/bin_to_safetensors.py and docs/commands.md), or change precision. */
#ifndef QID_IMPORT_H
#define QID_IMPORT_H

#include <stdint.h>

#include "checkpoint.h"
#include "error.h"

typedef struct qid_import_opts {
    const char *dir;      /* Hugging Face checkpoint directory */
    const char *out;      /* output .h5 path */
    const char *model;    /* model name; NULL: from config.json _name_or_path or the directory name */
    int64_t step;         /* -1 if unknown */
    int64_t tokens;       /* -1 if unknown */
    const char *schedule; /* learning-rate schedule spec (lr_schedule.h) or NULL: gives the checkpoint's
                             lr_frac at `step`, which must then be known */
    int force;            /* replace an existing output */
} qid_import_opts;

/* Reads a Hugging Face config.json text into cfg. `where` names the file in
 * messages. Unknown architectures and unsupported features (rope scaling,
 * activations other than the architecture's) are QID_E_INVALID. */
int qid_import_parse_config(const char *json, const char *where, qid_model_config *cfg, qid_error *err);

/* Imports opts->dir into opts->out. On failure nothing is left at opts->out
 * (nor a temporary file) and err says what and where. */
int qid_import_safetensors(const qid_import_opts *opts, qid_error *err);

#endif
