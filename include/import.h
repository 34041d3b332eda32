/* import.h - the work of `qid import` (cmd_import.c): a Hugging Face
 * checkpoint directory (config.json plus model.safetensors or
 * pytorch_model.bin, single or sharded with an index) to one qid checkpoint
 * file.
 *
 * Maps config.json to a qid_model_config (gpt_neox; llama, mistral, qwen2),
 * maps tensor names through the checkpoint tensor table, reads the weight
 * files through tensor_source.h (safetensors or torch.save archives alike),
 * checks every shape and dtype, and copies the bytes unchanged (fp32, fp16,
 * bf16 kept). A GPTQ-packed model (quantization_config in config.json) is
 * imported as its dequantized weights with the config recorded in /gptq.
 * The output appears only when complete (temporary name, renamed at the end).
 *
 * Does not: download anything, or change the precision of an unpacked tensor. */
#ifndef QID_IMPORT_H
#define QID_IMPORT_H

#include <stdint.h>

#include "checkpoint.h"
#include "error.h"

typedef enum qid_import_format {
    QID_IMPORT_AUTO = 0,        /* gptq when config.json says so, else the weight files present */
    QID_IMPORT_SAFETENSORS = 1, /* model.safetensors (or shards with its index) */
    QID_IMPORT_TORCH = 2,       /* pytorch_model.bin (or shards with its index) */
    QID_IMPORT_GPTQ = 3,        /* GPTQ-packed weights in either file format */
} qid_import_format;

/* "auto", "safetensors", "torch", "gptq" to the enum; -1 when unknown. */
int qid_import_format_parse(const char *s);

/* Called after each tensor is written: tensors and output bytes done of
 * their totals. */
typedef void (*qid_import_progress_fn)(void *ctx, size_t done, size_t total, uint64_t bytes_done, uint64_t bytes_total);

typedef struct qid_import_opts {
    const char *dir;      /* Hugging Face checkpoint directory */
    const char *out;      /* output .h5 path */
    const char *model;    /* model name; NULL: from config.json _name_or_path or the directory name */
    int64_t step;         /* -1 if unknown */
    int64_t tokens;       /* -1 if unknown */
    const char *schedule; /* learning-rate schedule spec (lr_schedule.h) or NULL: gives the checkpoint's
                             lr_frac at `step`, which must then be known */
    int force;            /* replace an existing output */
    qid_import_format format;
    qid_import_progress_fn progress; /* NULL: none */
    void *progress_ctx;
} qid_import_opts;

/* Reads a Hugging Face config.json text into cfg. `where` names the file in
 * messages. Unknown architectures and unsupported features (rope scaling,
 * activations other than the architecture's) are QID_E_INVALID. */
int qid_import_parse_config(const char *json, const char *where, qid_model_config *cfg, qid_error *err);

/* Imports opts->dir into opts->out. On failure nothing is left at opts->out
 * (nor a temporary file) and err says what and where. AUTO prefers
 * safetensors when both file formats are present; an explicit format reads
 * only its own files; a GPTQ config with another format asked for, or gptq
 * without one, is QID_E_INVALID with a hint. */
int qid_import(const qid_import_opts *opts, qid_error *err);

/* qid_import with format AUTO taken as SAFETENSORS (the original entry). */
int qid_import_safetensors(const qid_import_opts *opts, qid_error *err);

#endif
