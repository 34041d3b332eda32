/* fuzz_tokenizer.c - libFuzzer target for the tokenizer.json loader of
 * `qid tokens --tokenizer` (qid_tokenizer_parse) and the pipeline it builds:
 * the input is a whole tokenizer.json; when it loads, a fixed text of mixed
 * scripts, whitespace runs and special-token look-alikes is encoded with it.
 * Built and run by `make fuzz FUZZ_SECONDS=N` from the seeds in
 * test/fuzz/seeds-tokenizer/ (the six fixture tokenizers). Any crash,
 * sanitizer report or leak is a bug; a returned error must be one line, and
 * every id produced must be below the tokenizer's vocabulary size.
 *
 * Does not: compare ids with the tokenizers package (test/cmd_tokens.t and
 * tools/compare_tokenizers.py do). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char text[] = "Hello  world\n\t 123 It's 3.14! \xc3\x80\xc3\x89 e\xcc\x81 \xe6\x97\xa5\xe6\x9c\xac "
                           "\xf0\x9f\x91\x8b\xf0\x9f\x8f\xbd <|endoftext|> <s>   end\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qid_tokenizer *t = NULL;
    qid_error err;
    qid_error_clear(&err);
    int rc = qid_tokenizer_parse((const char *)data, size, "fuzz", &t, &err);
    if (rc != QID_OK) {
        if (!err.msg[0] || strchr(err.msg, '\n') || t) abort();
        return 0;
    }
    qid_tokenizer_state *s = qid_tokenizer_state_new(t);
    qid_token_ids ids = {0};
    rc = qid_tokenizer_encode(t, s, text, sizeof text - 1, &ids, &err);
    if (rc == QID_OK)
        for (size_t i = 0; i < ids.n; i++)
            if ((int64_t)ids.v[i] >= qid_tokenizer_vocab_size(t)) abort();
    free(ids.v);
    qid_tokenizer_state_free(s);
    qid_tokenizer_free(t);
    return 0;
}
