/* fuzz_npy.c - libFuzzer target for the .npy header parser of `qid tokens`
 * (qid_tokens_npy_parse). The input is a whole .npy file. Built and run by
 * `make fuzz FUZZ_SECONDS=N` (clang with -fsanitize=fuzzer,address,undefined)
 * from the seeds in test/fuzz/seeds-npy/. Any crash, sanitizer report or leak
 * is a bug; a returned error is fine, but it must be one line. On success the
 * header must satisfy the invariants the importer relies on.
 *
 * Does not: write token sets (the parser is the untrusted-input boundary;
 * the id checks after it are covered by test/test_tokens.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qid_tokens_npy npy;
    qid_error err;
    qid_error_clear(&err);
    int rc = qid_tokens_npy_parse(data, size, size, "fuzz", &npy, &err);
    if (rc != QID_OK) {
        if (rc != QID_E_FORMAT || !err.msg[0] || strchr(err.msg, '\n')) abort();
        return 0;
    }
    if (npy.data_offset > size || npy.data_offset < 10) abort();
    if (npy.ndim != 1 && npy.ndim != 2) abort();
    if (npy.elem_size != 1 && npy.elem_size != 2 && npy.elem_size != 4 && npy.elem_size != 8) abort();
    if (npy.ndim == 1 && npy.shape[1] != 1) abort();
    if (npy.shape[0] * npy.shape[1] != npy.n_elements) abort();
    if (npy.n_elements * npy.elem_size != size - npy.data_offset) abort();
    if (npy.major < 1 || npy.major > 3 || npy.minor != 0) abort();
    /* the importer hands the parser only a prefix of the file: same answer */
    size_t prefix = size < QID_TOKENS_NPY_MAX_HEADER + 12 ? size : QID_TOKENS_NPY_MAX_HEADER + 12;
    qid_tokens_npy again;
    if (qid_tokens_npy_parse(data, prefix, size, "fuzz", &again, &err) != QID_OK) abort();
    if (memcmp(&npy, &again, sizeof npy) != 0) abort();
    return 0;
}
