/* bench_tokens.c - `make bench`: tokenization speed of `qid tokens
 * --tokenizer` (text_tokens.h: JSON lines, one document a line) on 1 and 2
 * threads, side by side with the `tokenizers` package on one thread (and
 * two) on the same file and tokenizer.json, via tools/bench_tokenizers.py
 * when `python3 -c 'import tokenizers'` works (skipped with a line
 * otherwise).
 *
 * The text: QID_BENCH_TOKENS_MB MB (default 8) of what a Debian machine
 * has, one document per file: man pages in German, French, Japanese,
 * Korean, Russian, Chinese, Ukrainian, Polish and Turkish interleaved with
 * English ones and C headers (files that are not valid UTF-8 are skipped),
 * written as JSON lines under $TMPDIR. The tokenizers: the fixtures
 * test/fixtures/tokenizers/neox.json (byte-level, GPT-NeoX's pipeline) and
 * llama2.json (SentencePiece-style, byte fallback), each about 1000 merges
 * (a real vocabulary has 50-150 times more merges, which makes words
 * shorter to merge, and the caches of both sides matter more).
 *
 * qid's time covers mapping the file, parsing the JSON lines and encoding;
 * the tokenizers side times encode_batch alone. Both: best of
 * QID_BENCH_REPEAT runs (default 2). The ids are the same (the token
 * counts are printed side by side; tools/compare_tokenizers.py checks them
 * one for one). Not a test: prints numbers, asserts nothing about speed. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "text_tokens.h"
#include "tokenizer.h"

/* Appends s[0, n) to f as one JSON line {"text": ...}. */
static void put_jsonl(FILE *f, const char *s, size_t n)
{
    fputs("{\"text\": \"", f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputs("\"}\n", f);
}

/* Writes about mb MB of documents to path; returns the number of documents. */
static size_t make_corpus(const char *path, size_t mb)
{
    const char *cmd = "for f in $( (find /usr/share/man/de /usr/share/man/fr /usr/share/man/ja /usr/share/man/ko "
                      "/usr/share/man/ru /usr/share/man/zh_CN /usr/share/man/uk /usr/share/man/pl /usr/share/man/tr "
                      "/usr/share/man/man1 -name '*.gz' | sort -t/ -k6 | awk '{print NR%17, $0}'; "
                      "find /usr/include -name '*.h' | sort | awk '{print NR%17, $0}') 2>/dev/null | sort -s -n -k1,1 "
                      "| cut -d' ' -f2); do case $f in *.gz) zcat \"$f\" ;; *) cat \"$f\" ;; esac; printf '\\036'; "
                      "done 2>/dev/null";
    FILE *p = popen(cmd, "r"), *out = fopen(path, "w");
    if (!p || !out) return 0;
    size_t cap = 1 << 20, n = 0, docs = 0, bytes = 0;
    char *buf = malloc(cap);
    int c;
    while (bytes < mb << 20 && (c = fgetc(p)) != EOF) {
        if (c == 036) {
            if (n && qid_utf8_valid_prefix(buf, n) == n) {
                put_jsonl(out, buf, n);
                docs++;
                bytes += n;
            }
            n = 0;
            continue;
        }
        if (n == cap) buf = realloc(buf, cap *= 2);
        buf[n++] = (char)c;
    }
    pclose(p);
    fclose(out);
    free(buf);
    return docs;
}

static int run_python(const char *python, const char *tok, const char *data, int threads, int repeat, double *tps,
                      long *tokens, char *version, size_t vlen)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "RAYON_NUM_THREADS=%d RAYON_RS_NUM_CPUS=%d %s tools/bench_tokenizers.py --tokenizer %s --jsonl %s "
             "--threads %d --repeat %d",
             threads, threads, python, tok, data, threads, repeat);
    FILE *p = popen(cmd, "r");
    if (!p) return 1;
    char line[1024] = "";
    char *got = fgets(line, sizeof line, p);
    int rc = pclose(p);
    cJSON *j = got && rc == 0 ? cJSON_Parse(line) : NULL;
    if (!j) return 1;
    *tps = cJSON_GetObjectItem(j, "tokens_per_s")->valuedouble;
    *tokens = (long)cJSON_GetObjectItem(j, "tokens")->valuedouble;
    snprintf(version, vlen, "%s", cJSON_GetObjectItem(j, "version")->valuestring);
    cJSON_Delete(j);
    return 0;
}

int main(void)
{
    const size_t mb = env_size("QID_BENCH_TOKENS_MB", 8);
    const int repeat = (int)env_size("QID_BENCH_REPEAT", 2);
    const char *python = getenv("QID_BENCH_PYTHON") ? getenv("QID_BENCH_PYTHON") : "python3";
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char data[1024];
    snprintf(data, sizeof data, "%s/qid-bench-tokens-%d.jsonl", tmp, (int)getpid());
    size_t docs = make_corpus(data, mb);
    if (docs == 0) {
        printf("tokens: skipped: no text found under /usr/share/man and /usr/include\n");
        unlink(data);
        return 0;
    }
    char probe[512];
    snprintf(probe, sizeof probe, "%s -c 'import tokenizers' >/dev/null 2>&1", python);
    const int have_py = system(probe) == 0;
    printf("tokens: %zu documents (man pages in 10 languages, C headers), %zu MB of JSON lines; best of %d\n", docs, mb,
           repeat);
    const char *toks[] = {"test/fixtures/tokenizers/neox.json", "test/fixtures/tokenizers/llama2.json"};
    for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++) {
        qid_tokenizer *t = NULL;
        qid_error err;
        qid_error_clear(&err);
        if (qid_tokenizer_load(toks[k], &t, &err)) {
            printf("  %s: %s\n", toks[k], err.msg);
            continue;
        }
        printf("  %s: %s\n", toks[k], qid_tokenizer_describe(t));
        for (int threads = 1; threads <= 2; threads++) {
            double best = 0;
            size_t n_ids = 0;
            uint64_t bytes = 0;
            for (int r = 0; r < repeat; r++) {
                qid_text_opts o = {
                    .input = data, .format = QID_TEXT_JSONL, .bos_id = -1, .eos_id = -1, .threads = threads};
                qid_text_result res;
                double t0 = now();
                if (qid_text_tokenize(t, &o, &res, &err)) {
                    printf("    qid: %s\n", err.msg);
                    break;
                }
                double dt = now() - t0;
                if (r == 0 || dt < best) best = dt;
                n_ids = res.n_ids;
                bytes = res.bytes;
                qid_text_result_free(&res);
            }
            printf("    qid        %d thread%s: %9.0f tokens/s  %6.2f MB/s  (%zu tokens)\n", threads,
                   threads == 1 ? " " : "s", n_ids / best, bytes / best / 1e6, n_ids);
        }
        for (int threads = 1; threads <= 2; threads++) {
            double tps = 0;
            long tokens = 0;
            char version[64] = "";
            if (!have_py) {
                printf("    tokenizers: skipped: '%s -c \"import tokenizers\"' failed\n", python);
                break;
            }
            if (run_python(python, toks[k], data, threads, repeat, &tps, &tokens, version, sizeof version))
                printf("    tokenizers %d thread: failed\n", threads);
            else
                printf("    tokenizers %d thread%s: %9.0f tokens/s             (%ld tokens; tokenizers %s)\n", threads,
                       threads == 1 ? " " : "s", tps, tokens, version);
        }
        qid_tokenizer_free(t);
    }
    unlink(data);
    return 0;
}
