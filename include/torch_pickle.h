/* torch_pickle.h - a restricted interpreter for the pickle of a PyTorch
 * state dict: the data.pkl entry of an archive written by torch.save (zip
 * format, torch >= 1.6).
 *
 * It understands the few opcodes and globals a state dict uses and nothing
 * else, and it never calls anything (the contract of torch.load's
 * weights_only=True): `collections.OrderedDict` with no arguments makes an
 * empty dict, `torch._utils._rebuild_tensor_v2` and `_rebuild_parameter`
 * make a tensor record (storage, offset, shape, strides) from their
 * arguments, and the storage classes (`torch.FloatStorage`, `HalfStorage`,
 * `BFloat16Storage`, and the integer and bool ones a checkpoint's buffers
 * use) may appear only inside a persistent id ('storage', class, key,
 * location, numel). Any other global, a REDUCE on anything but those
 * callables, an opcode outside the set, or a size, stride or offset that
 * overflows or reaches past its storage is a one-line error naming the
 * opcode, the global or the tensor, and its byte position.
 *
 * The input is untrusted: every length, memo index and stack access is
 * checked; memory is bounded by a small multiple of the input length.
 * Fuzzed by test/fuzz/fuzz_torch_pickle.c.
 *
 * Does not: read the archive or the tensor bytes (torch_bin.c does), or
 * check storage keys against the archive. */
#ifndef QID_TORCH_PICKLE_H
#define QID_TORCH_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "safetensors.h"

#define QID_TP_MAX_DIMS   8
#define QID_TP_MAX_PICKLE (64u << 20) /* a 12B-parameter shard's pickle is under 1 MiB */

/* One storage named by a persistent id: the archive entry data/<key>. */
typedef struct qid_tp_storage {
    char *key;
    qid_st_dtype dtype; /* from the storage class */
    uint64_t numel;     /* elements, as the persistent id declares */
} qid_tp_storage;

/* One name of the state dict. Several names may share a storage (tied or
 * sliced tensors). Offsets and strides are in elements. */
typedef struct qid_tp_tensor {
    char *name;
    size_t storage; /* index into qid_tp_dict.storages */
    qid_st_dtype dtype;
    int ndim;
    uint64_t shape[QID_TP_MAX_DIMS];
    uint64_t stride[QID_TP_MAX_DIMS];
    uint64_t offset;
    int contiguous; /* row-major without gaps: the bytes are one range */
} qid_tp_tensor;

typedef struct qid_tp_dict {
    size_t n_storages;
    qid_tp_storage *storages;
    size_t n;
    qid_tp_tensor *tensors; /* in the order of the pickle */
} qid_tp_dict;

/* Interprets a state-dict pickle. name is used in messages. On success fills
 * *out (free with qid_tp_free): the top-level object must be a dict (or
 * OrderedDict) of string keys to tensors, each inside its storage's declared
 * numel. On failure returns QID_E_FORMAT with one line "'<name>': <what>
 * at byte <pos>" and *out is empty. */
int qid_tp_parse(const uint8_t *buf, size_t len, const char *name, qid_tp_dict *out, qid_error *err);

/* Index of the storage with this key, or -1. */
long qid_tp_find_storage(const qid_tp_dict *d, const char *key);

void qid_tp_free(qid_tp_dict *d);

#endif
