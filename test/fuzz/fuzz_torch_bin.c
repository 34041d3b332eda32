/* fuzz_torch_bin.c - libFuzzer target for the torch.save archive reader
 * (torch_bin.c through libzip, with the pickle interpreter). The input is a
 * whole pytorch_model.bin. Built and run by `make fuzz FUZZ_SECONDS=N`
 * (clang with -fsanitize=fuzzer,address,undefined). Any crash, sanitizer
 * report or leak is a bug; a returned error is fine. On success every
 * tensor is read (gathered when strided) and found by its name. */
#include <stdint.h>
#include <stdlib.h>

#include "torch_bin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qid_tb_file f;
    qid_error err;
    if (qid_tb_open_buffer(data, size, "fuzz", &f, &err) != QID_OK) return 0;
    for (size_t i = 0; i < f.dict.n; i++) {
        const qid_tp_tensor *t = &f.dict.tensors[i];
        if (qid_tb_find(&f, t->name) != t) abort();
        uint64_t bytes = qid_tb_numel(t) * qid_st_dtype_size(t->dtype);
        if (bytes > size) abort(); /* a tensor lies inside a storage inside the input */
        void *buf = malloc(bytes ? bytes : 1);
        qid_tb_read(&f, t, buf, &err);
        free(buf);
    }
    qid_tb_free(&f);
    return 0;
}
