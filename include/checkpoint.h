/* checkpoint.h - the qid checkpoint format (hdf5-schema/checkpoint.md):
 * model hyperparameters, training position (step, tokens seen), parameter
 * counts, provenance hashes, and the weights stored one dataset per tensor,
 * per layer, in their source precision.
 *
 * The tensor table (qid_ckpt_tensors) is the single source of which tensors
 * a model of a given architecture has, their shapes, which are linear layers
 * (quantized) and which are embeddings or norms, and the Hugging Face names
 * they are imported from.
 *
 * Does not: run models (the evaluator does) or parse Hugging Face files
 * (import.c and safetensors.c do). Nothing here is collective: every rank
 * opens checkpoints read-only on its own. */
#ifndef QID_CHECKPOINT_H
#define QID_CHECKPOINT_H

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "h5io.h"

#define QID_CKPT_FORMAT         "qid-checkpoint"
#define QID_CKPT_SCHEMA_VERSION 1

typedef enum qid_arch {
    QID_ARCH_GPT_NEOX = 0, /* Pythia: LayerNorm+bias, parallel residual, partial rotary, GELU */
    QID_ARCH_LLAMA = 1,    /* Llama/Mistral/Qwen2: RMSNorm, SwiGLU, full rotary, GQA */
    QID_ARCH_GPT2 = 2,     /* GPT-2: learned positions, Conv1D weights (transposed on import), tied head */
    QID_ARCH_OPT = 3,      /* OPT: learned positions (offset 2), pre- or post-LayerNorm, project_in/out */
    QID_ARCH_BLOOM = 4,    /* BLOOM: ALiBi, embedding LayerNorm, fused per-head QKV, tied head */
} qid_arch;

#define QID_ARCH_COUNT 5

/* The MLP's activation (the /config "activation" attribute). */
typedef enum qid_act {
    QID_ACT_GELU = 0,      /* "gelu": exact, with erf */
    QID_ACT_GELU_TANH = 1, /* "gelu_tanh": the tanh approximation (gelu_new, bloom_gelu) */
    QID_ACT_RELU = 2,      /* "relu" */
    QID_ACT_SILU = 3,      /* "silu": llama's SwiGLU gate */
} qid_act;

/* "gelu", "gelu_tanh", "relu", "silu"; parse returns -1 when unknown. */
const char *qid_act_name(qid_act act);
int qid_act_parse(const char *name);

/* "gpt-neox", "llama", "gpt2", "opt", "bloom"; parse returns -1 when unknown. */
const char *qid_arch_name(qid_arch arch);
int qid_arch_parse(const char *name);

/* Everything needed to run the model. */
typedef struct qid_model_config {
    qid_arch arch;
    int64_t vocab_size;
    int64_t d_model;
    int64_t n_layers;
    int64_t n_heads;
    int64_t n_kv_heads;  /* = n_heads for gpt-neox */
    int64_t head_dim;    /* d_model / n_heads unless the source says otherwise */
    int64_t d_ff;        /* MLP inner width */
    int64_t max_seq_len; /* max_position_embeddings */
    int64_t rotary_dim;  /* rotated dimensions per head: int(head_dim * rotary_pct) */
    double rotary_pct;   /* 0.25 for Pythia, 1.0 for llama */
    double rope_theta;   /* rotary base */
    double norm_eps;
    int parallel_residual;  /* gpt-neox use_parallel_residual */
    int tie_embeddings;     /* lm_head shares embed.weight (no lm_head tensor stored) */
    int qkv_bias;           /* q/k/v projections have biases */
    int o_bias;             /* attention output projection has a bias */
    int mlp_bias;           /* MLP projections have biases */
    int64_t sliding_window; /* 0 = full causal attention */
    /* Added with gpt2, opt and bloom; zero is what gpt-neox and llama do, and
     * a checkpoint written before them reads as zero. */
    qid_act act;           /* MLP activation (gelu for gpt-neox; llama's is always SwiGLU, this is ignored) */
    int post_norm;         /* 0: x + f(norm(x)); 1: norm(x + f(x)) (OPT do_layer_norm_before false) */
    int no_final_norm;     /* 1: no final norm before the head (OPT post-LN) */
    int64_t d_embed;       /* token embedding width when it differs from d_model (OPT project_in/out), else 0 */
    int attn_unscaled;     /* 1: scores not scaled by 1/sqrt(head_dim) (GPT-2 scale_attn_weights false) */
    int attn_layer_scaled; /* 1: scores also divided by layer index + 1 (GPT-2 scale_attn_by_inverse_layer_idx) */
} qid_model_config;

/* Rows of the learned position table (max_seq_len + OPT's offset of 2),
 * 0 for an architecture without one (gpt2 and opt have one); the offset of
 * position 0 in it. */
int64_t qid_pos_rows(const qid_model_config *cfg);
int64_t qid_pos_offset(const qid_model_config *cfg);
/* Width of the token embedding: d_embed when set (OPT's word_embed_proj_dim
 * with project_in / project_out), else d_model. */
int64_t qid_embed_width(const qid_model_config *cfg);

/* Checks a config for consistency (positive sizes, heads dividing, rotary_dim
 * even and <= head_dim, ...). Returns QID_E_INVALID with what is wrong. */
int qid_config_validate(const qid_model_config *cfg, qid_error *err);

/* Role of a tensor: only LINEAR weights are quantized by default. */
typedef enum qid_tensor_kind {
    QID_TENSOR_LINEAR = 0, /* [out, in] weight of a linear layer */
    QID_TENSOR_BIAS = 1,   /* [out] */
    QID_TENSOR_NORM = 2,   /* [d] norm weight or bias */
    QID_TENSOR_EMBED = 3,  /* [vocab, d] input embedding or output head; [positions, d] learned positions */
    QID_TENSOR_PROJ = 4,   /* [out, in] linear outside the layers (OPT project_in/out): counted in N, not quantized */
} qid_tensor_kind;

/* One tensor of a model. Names are qid's: "attn.qkv.weight" inside
 * /layers/<i>, or "embed.weight" at the root. */
typedef struct qid_tensor_spec {
    char name[48];    /* qid name, e.g. "mlp.up.weight" */
    char hf_name[96]; /* Hugging Face name with the layer index filled in */
    int layer;        /* -1 for global tensors */
    int ndim;         /* 1 or 2 */
    int64_t shape[2]; /* rows (out), cols (in); shape[1] = 1 when ndim = 1 */
    qid_tensor_kind kind;
    int hf_transposed; /* stored [in, out] by Hugging Face (GPT-2's Conv1D): transposed on import */
} qid_tensor_spec;

/* The tensors a model with this config has, in storage order (globals, then
 * layer 0, 1, ...). Returns a malloc'd array and its length in *n. The
 * config must be valid. */
qid_tensor_spec *qid_ckpt_tensors(const qid_model_config *cfg, size_t *n);
/* The tensors of one layer (layer >= 0) or the globals (layer = -1). */
qid_tensor_spec *qid_ckpt_layer_tensors(const qid_model_config *cfg, int layer, size_t *n);
/* Number of elements of a spec. */
int64_t qid_tensor_numel(const qid_tensor_spec *t);
/* HDF5 path of a tensor: "/layers/3/attn.qkv.weight" or "/embed.weight". */
void qid_tensor_path(const qid_tensor_spec *t, char *buf, size_t len);

/* Parameter counts from the config: N (everything but the input embedding,
 * a learned position table and the output head, as Pythia and Ouyang et al.
 * count it and as transformers' num_parameters(exclude_embeddings=True)
 * does; BLOOM's embedding LayerNorm and OPT's project_in/out are counted)
 * and the total of unique parameters. */
int64_t qid_params_nonembedding(const qid_model_config *cfg);
int64_t qid_params_total(const qid_model_config *cfg);

/* What a checkpoint says about itself besides its config. */
typedef struct qid_ckpt_meta {
    char model[128];     /* model (family/size) name, e.g. "pythia-160m" */
    int64_t step;        /* training step, -1 if unknown */
    int64_t tokens_seen; /* D, -1 if unknown */
    qid_dtype dtype;     /* precision the tensors are stored in */
    int64_t params_nonembedding;
    int64_t params_total;
    char source_sha256[65]; /* hash over the source files' hashes */
    char tensor_sha256[65]; /* hash of all tensor bytes in storage order */
    char source_format[32]; /* "safetensors", "qid-train", ... */
    /* Where in its learning-rate schedule the checkpoint was saved: the
     * learning rate at `step` over the schedule's peak, in [0, 1], and the
     * schedule (lr_schedule.h spec); NaN and "" when unknown. Written by
     * `qid train` and by `qid import --schedule`; checkpoints written before
     * these attributes existed read as unknown, or from /train when they
     * have it. */
    double lr_frac;
    char lr_schedule[128];
} qid_ckpt_meta;

/* ---- writing ----------------------------------------------------------- */

typedef struct qid_ckpt_writer qid_ckpt_writer;

/* Provenance stored in /source. Strings may be NULL (stored as ""). */
typedef struct qid_ckpt_source {
    const char *files;       /* newline-separated file names */
    const char *sha256;      /* newline-separated hex digests, one per file */
    const char *config_json; /* the source config text, verbatim */
    const char *directory;   /* where it was imported from */
} qid_ckpt_source;

/* Starts writing a checkpoint to a temporary name next to path. meta's
 * counts and hashes are computed here and on close, not taken from meta
 * (model, step, tokens_seen, dtype and source_format are). Returns NULL on
 * failure with err set. */
qid_ckpt_writer *qid_ckpt_create(const char *path, const qid_model_config *cfg, const qid_ckpt_meta *meta,
                                 const qid_ckpt_source *src, qid_error *err);
/* Writes one tensor's raw bytes (numel * dtype size, little-endian, in the
 * writer's dtype). Tensors must come in qid_ckpt_tensors order; each is
 * hashed. Non-finite values are rejected (QID_E_NUMERIC naming the tensor
 * and element). On failure the writer stays valid only for _abort. */
int qid_ckpt_write_tensor(qid_ckpt_writer *w, const qid_tensor_spec *t, const void *data, qid_error *err);
/* Checks every tensor was written, writes the tensor hash, and renames the
 * file into place. Frees w in every case; on failure nothing is left behind. */
int qid_ckpt_finish(qid_ckpt_writer *w, qid_error *err);
/* Removes the temporary file and frees w. */
void qid_ckpt_abort(qid_ckpt_writer *w);
/* The writer's open (temporary) file, for a writer that adds a group of its
 * own before qid_ckpt_finish (qid train's /train). Not to be closed. */
hid_t qid_ckpt_writer_file(const qid_ckpt_writer *w);

/* ---- reading ----------------------------------------------------------- */

typedef struct qid_ckpt {
    hid_t file;
    char path[1024];
    int64_t schema_version;
    qid_model_config cfg;
    qid_ckpt_meta meta;
} qid_ckpt;

/* Opens a checkpoint read-only, checks format and schema version and reads
 * config and metadata. On failure ck->file is H5I_INVALID_HID. */
int qid_ckpt_open(const char *path, qid_ckpt *ck, qid_error *err);
/* Reads a tensor as float32 (exact for every stored dtype) into out, which
 * holds qid_tensor_numel(t) floats. Checks the stored shape against the
 * spec. Does not check finiteness. */
int qid_ckpt_read_f32(const qid_ckpt *ck, const qid_tensor_spec *t, float *out, qid_error *err);
/* Checks, without reading it, that tensor t is stored with the shape and
 * dtype the config implies and that the file holds its data (h5io.h
 * qid_h5_check_storage): what a reader checks before it allocates for it. */
int qid_ckpt_check_tensor(const qid_ckpt *ck, const qid_tensor_spec *t, qid_error *err);
/* Reads a tensor's stored bytes unconverted (numel * dtype size). */
int qid_ckpt_read_raw(const qid_ckpt *ck, const qid_tensor_spec *t, void *out, qid_error *err);
void qid_ckpt_close(qid_ckpt *ck);

#endif
