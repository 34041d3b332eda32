/* test_tokenizer.c - the tokenizer.json pipeline's own rules on hand-made
 * files whose answers follow from tokenizers' definitions: merges by rank
 * with ties to the leftmost pair and stale heap entries skipped (word.rs),
 * a 100,000-character word merged through the heap, added tokens split out
 * before the model, unknown characters fused or not (fuse_unk), byte
 * fallback to <0xXX> tokens, ignore_merges, the UTF-8 check on overlong
 * forms, surrogates, code points past U+10FFFF and cut sequences; and
 * loader errors as one line.
 *
 * Does not: compare with the tokenizers package (test/cmd_tokens.t does on
 * its fixtures; tools/compare_tokenizers.py on 10 MB). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "tokenizer.h"

/* vocabulary and merges of the hand-made BPE: "b c" before "a b", "a a" before "aa aa" */
#define VOCAB                                                                                                          \
    "\"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4, \"abc\": 5, \"aa\": 6, \"aaaa\": 7, \"<s>\": 8, " \
    "\"<unk>\": 9, \"<0x78>\": 10, \"<0xC3>\": 11, \"<0xA9>\": 12, \"cab\": 13}, "                                     \
    "\"merges\": [\"b c\", \"a b\", \"a bc\", \"a a\", \"aa aa\"]"

static qid_tokenizer *load(const char *model_extra)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"added_tokens\": [{\"id\": 8, \"content\": \"<s>\", \"special\": true, \"normalized\": false}], "
             "\"normalizer\": null, \"pre_tokenizer\": null, \"model\": {\"type\": \"BPE\", %s, %s}}",
             VOCAB, model_extra);
    qid_tokenizer *t = NULL;
    qid_error err;
    qid_error_clear(&err);
    if (qid_tokenizer_parse(json, strlen(json), "hand-made", &t, &err)) bail("cannot load: %s", err.msg);
    return t;
}

/* The ids of text, as "1 2 3". */
static char *ids_of(const qid_tokenizer *t, const char *text, size_t len)
{
    qid_tokenizer_state *s = qid_tokenizer_state_new(t);
    qid_token_ids ids = {0};
    qid_error err;
    qid_error_clear(&err);
    if (qid_tokenizer_encode(t, s, text, len, &ids, &err)) bail("encode failed: %s", err.msg);
    size_t cap = 16 + ids.n * 8, n = 0;
    char *out = calloc(1, cap);
    for (size_t i = 0; i < ids.n; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%u", i ? " " : "", ids.v[i]);
    free(ids.v);
    qid_tokenizer_state_free(s);
    return out;
}

static void check(const qid_tokenizer *t, const char *text, const char *want, const char *what)
{
    char *got = ids_of(t, text, strlen(text));
    is_string(want, got, "%s", what);
    free(got);
}

int main(void)
{
    plan(20);
    qid_tokenizer *t = load("\"unk_token\": \"<unk>\", \"fuse_unk\": true");
    check(t, "abc", "5", "'b c' (rank 0) before 'a b' (rank 1): a + bc -> abc");
    check(t, "aaa", "6 0", "equal ranks: the leftmost pair merges first (aa a)");
    check(t, "aaaaa", "7 0", "stale heap entries skipped: aaaaa -> aaaa a");
    check(t, "ab<s>c", "3 8 2", "an added token is split out before the model");
    check(t, "xyab", "9 3", "fuse_unk: two unknown characters give one <unk>");
    check(t, "cab", "2 3", "a vocabulary entry without a merge path is not produced (c ab)");
    size_t n = 100000;
    char *word = malloc(n + 1);
    memset(word, 'a', n);
    word[n] = '\0';
    char *got = ids_of(t, word, n);
    size_t count = 0, sevens = 0;
    for (char *p = strtok(got, " "); p; p = strtok(NULL, " "), count++)
        sevens += strcmp(p, "7") == 0;
    ok(count == n / 4 && sevens == count, "a word of 100000 'a's: %zu ids, all aaaa (%zu)", count, sevens);
    free(got);
    free(word);
    qid_tokenizer_free(t);

    t = load("\"unk_token\": \"<unk>\", \"fuse_unk\": false");
    check(t, "xyab", "9 9 3", "without fuse_unk: one <unk> per unknown character");
    qid_tokenizer_free(t);
    t = load("\"byte_fallback\": true, \"unk_token\": \"<unk>\"");
    check(t, "x\xc3\xa9z", "10 11 12 9",
          "byte_fallback: x -> <0x78>, e-acute -> <0xC3> <0xA9>; z has no byte token: <unk>");
    qid_tokenizer_free(t);
    t = load("\"ignore_merges\": true");
    check(t, "cab", "13", "ignore_merges: a word in the vocabulary is taken whole");
    is_int(14, qid_tokenizer_vocab_size(t), "vocabulary size: 1 + the largest id");
    is_int(8, qid_tokenizer_token_id(t, "<s>"), "token_id finds an added token");
    qid_tokenizer_free(t);

    /* UTF-8 */
    is_int(0, (long long)qid_utf8_valid_prefix("\xc0\x80", 2), "overlong NUL is invalid");
    is_int(0, (long long)qid_utf8_valid_prefix("\xed\xa0\x80", 3), "a surrogate is invalid");
    is_int(0, (long long)qid_utf8_valid_prefix("\xf4\x90\x80\x80", 4), "past U+10FFFF is invalid");
    is_int(1, (long long)qid_utf8_valid_prefix("a\xe2\x82", 3), "a cut sequence: valid up to it");
    const char *good = "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x91\x8b";
    is_int((long long)strlen(good), (long long)qid_utf8_valid_prefix(good, strlen(good)),
           "two-, three- and four-byte characters are valid");

    /* loader errors: one line */
    qid_error err;
    qid_error_clear(&err);
    const char *bad = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\\n b\"]}}";
    qid_tokenizer *b = NULL;
    int rc = qid_tokenizer_parse(bad, strlen(bad), "bad.json", &b, &err);
    ok(rc == QID_E_FORMAT && !b, "a merge of unknown tokens is refused");
    ok(!strchr(err.msg, '\n'), "the message stays on one line: %s", err.msg);
    qid_error_clear(&err);
    rc = qid_tokenizer_parse("{\"model\": {\"type\": \"Unigram\"}}", 31, "u.json", &b, &err);
    is_string("invalid tokenizer 'u.json': model type 'Unigram' is not supported (qid runs BPE models)", err.msg,
              "a Unigram model is refused by name");
    return 0;
}
