/* fuzz_torch_pickle.c - libFuzzer target for the restricted pickle
 * interpreter (torch_pickle.c). The input is a data.pkl. Built and run by
 * `make fuzz FUZZ_SECONDS=N` (clang with -fsanitize=fuzzer,address,undefined).
 * Any crash, sanitizer report or leak is a bug; a returned error is fine. On
 * success every tensor must lie inside its storage, as torch_bin.c relies on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "torch_pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qid_tp_dict d;
    qid_error err;
    if (qid_tp_parse(data, size, "fuzz", &d, &err) == QID_OK) {
        for (size_t i = 0; i < d.n; i++) {
            const qid_tp_tensor *t = &d.tensors[i];
            if (t->storage >= d.n_storages || t->ndim < 0 || t->ndim > QID_TP_MAX_DIMS || !t->name) abort();
            const qid_tp_storage *s = &d.storages[t->storage];
            uint64_t last = t->offset;
            int empty = 0;
            for (int k = 0; k < t->ndim; k++) {
                if (t->shape[k] == 0)
                    empty = 1;
                else
                    last += (t->shape[k] - 1) * t->stride[k];
            }
            if (empty ? t->offset > s->numel : last >= s->numel) abort();
            if (i && strcmp(d.tensors[i - 1].name, t->name) >= 0) abort();
        }
        qid_tp_free(&d);
    } else if (d.n || d.n_storages || d.tensors || d.storages) {
        abort();
    }
    return 0;
}
