/* fuzz_safetensors.c - libFuzzer target for the safetensors header parser.
 * The input is a whole file: 8-byte length, header, data. Built and run by
 * `make fuzz FUZZ_SECONDS=N` (clang with -fsanitize=fuzzer,address,undefined).
 * Any crash, sanitizer report or leak is a bug; a returned error is fine. On
 * success the parsed table must satisfy the invariants the importer relies on. */
#include <stdint.h>
#include <stdlib.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qid_st_file f;
    qid_error err;
    if (qid_st_parse(data, size, size, "fuzz", &f, &err) == QID_OK) {
        uint64_t data_len = size - f.data_offset, covered = 0;
        for (size_t i = 0; i < f.n; i++) {
            const qid_st_tensor *t = &f.tensors[i];
            if (t->end > data_len || t->begin > t->end) abort();
            covered += t->end - t->begin;
            if (qid_st_find(&f, t->name) != t) abort();
        }
        if (covered != data_len) abort();
        qid_st_free(&f);
    }
    return 0;
}
