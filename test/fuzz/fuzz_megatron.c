/* fuzz_megatron.c - libFuzzer target for the Megatron .idx parser of
 * `qid tokens --from DATA.idx` (qid_megatron_idx_parse). The input is a
 * whole .idx; the .bin beside it is taken to be 4096 bytes. Built and run by
 * `make fuzz FUZZ_SECONDS=N` from the seeds in test/fuzz/seeds-megatron/.
 * Any crash, sanitizer report or leak is a bug; a returned error must be one
 * line. On success every sequence must lie inside the .bin and the document
 * index must be in order, as the reader relies on.
 *
 * Does not: read a .bin (the feed's reads are bounded by what the parser
 * checked; test/cmd_tokens.t covers them). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "megatron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BIN_SIZE 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qid_megatron_idx idx;
    qid_error err;
    qid_error_clear(&err);
    int rc = qid_megatron_idx_parse(data, size, BIN_SIZE, "fuzz", &idx, &err);
    if (rc != QID_OK) {
        if (rc != QID_E_FORMAT || !err.msg[0] || strchr(err.msg, '\n')) abort();
        return 0;
    }
    if (QID_MEGATRON_HEADER_BYTES + 12 * idx.n_seqs + 8 * idx.n_doc_idx != size) abort();
    uint64_t total = 0;
    for (uint64_t i = 0; i < idx.n_seqs; i++) {
        uint64_t s = qid_megatron_size(&idx, i), p = qid_megatron_pointer(&idx, i);
        if (p > BIN_SIZE || s * idx.elem_size > BIN_SIZE - p) abort();
        total += s;
    }
    if (total != idx.n_tokens) abort();
    for (uint64_t d = 0; d < idx.n_doc_idx; d++)
        if (qid_megatron_doc(&idx, d) > idx.n_seqs || (d && qid_megatron_doc(&idx, d) < qid_megatron_doc(&idx, d - 1)))
            abort();
    return 0;
}
