/* cmd_tokens.c - `qid tokens`: its usage, options and the line it prints.
 * Token ids from --from INPUT (or INPUT as the one argument): a .npy array,
 * raw little-endian ids (--dtype uint16|uint32), the bytes of any file
 * (--text), text through a tokenizer.json (--tokenizer FILE.json:
 * tokenizer.h, text_tokens.h) or a Megatron DATA.idx (megatron.h), cut
 * into windows of --seq-len and written by qid_tokens_import (tokens.h) as
 * a qid token set, with the attributes that say where the ids came from.
 *
 * Exit status: 0 on success and for --help; 2 for a bad command line (one
 * "qid tokens: error: ..." line with a hint); 1 when the import fails (one
 * line naming the file, and the position of a bad id; no output left).
 *
 * Does not: read or check the ids itself. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "megatron.h"
#include "parse.h"
#include "text_tokens.h"
#include "tokenizer.h"
#include "tokens.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qid tokens --from INPUT -o OUT.h5 [options]\n"
            "\n"
            "Cuts token ids into windows of --seq-len tokens and stores them as a qid token\n"
            "set (HDF5) for evaluation. The tail that does not fill a window is dropped (and\n"
            "counted). Every id is checked against the vocabulary; the output appears only\n"
            "when complete.\n"
            "\n"
            "input (--from INPUT, or INPUT as the one argument), one of:\n"
            "  FILE.npy               NumPy array, 1-D or 2-D, C order, little-endian\n"
            "                         u1/i1/u2/i2/u4/i4/u8/i8 (recognised by its magic)\n"
            "  --dtype uint16|uint32  raw little-endian ids, e.g. a GPT-NeoX .bin document\n"
            "  --text                 the bytes of any file (vocabulary 256, tokenizer 'bytes')\n"
            "  --tokenizer FILE.json  text run through a Hugging Face tokenizer.json (BPE: GPT-2,\n"
            "                         GPT-NeoX/Pythia, Llama 2/3, Mistral, Qwen2), plain text (one\n"
            "                         document) or JSON lines (one document a line); the vocabulary\n"
            "                         defaults to the tokenizer's, the file's SHA-256 is recorded\n"
            "    --format text|jsonl  how to read the text (default: JSON lines when it starts with '{')\n"
            "    --text-field NAME    the JSON lines' field holding a document (default text)\n"
            "    --bos TOKEN          put TOKEN (e.g. '<s>') before every document (default: nothing)\n"
            "    --eos TOKEN          put TOKEN (e.g. '<|endoftext|>') after every document (default:\n"
            "                         nothing)\n"
            "    --tokenizer-name N   the name recorded (default: the tokenizer file's directory)\n"
            "    --threads N          documents tokenized on N threads (the same ids; default 1)\n"
            "  DATA.idx               a Megatron/GPT-NeoX indexed dataset (DATA.bin beside it),\n"
            "                         e.g. Pythia's pre-tokenized Pile; all sequences, or:\n"
            "    --documents A:B      documents A..B-1 (A: to the end)\n"
            "    --sequences A:B      sequences A..B-1 (A: to the end)\n"
            "\n"
            "options:\n"
            "  -o, --output OUT       token set to write\n"
            "  --vocab V              vocabulary size (required except with --text); ids >= V\n"
            "                         are an error\n"
            "  --tokenizer NAME       tokenizer name recorded in the file, e.g. gpt-neox-20b\n"
            "  --seq-len L            window length in tokens (default %d)\n"
            "  --max-windows N        keep only the first N windows\n"
            "  --force                replace OUT if it exists\n"
            "  -h, --help             this help\n"
            "\n"
            "example (Pythia's tokenizer, vocabulary 50304 as in the model's embedding):\n"
            "  qid tokens --from val.bin --dtype uint16 --vocab 50304 --tokenizer gpt-neox-20b \\\n"
            "             --seq-len 2048 -o val-tokens.h5\n"
            "  qid tokens --tokenizer pythia-160m/tokenizer.json --from wiki.test.raw --vocab 50304 \\\n"
            "             -o wikitext2-test.h5\n"
            "  qid tokens --from pile_0.87_deduped_text_document.idx --documents 0:1000 --vocab 50304 \\\n"
            "             --tokenizer gpt-neox-20b --seq-len 2049 -o pile.h5\n",
            QID_TOKENS_DEFAULT_SEQ_LEN);
}

/* "A:B" or "A:" (b = 0: to the end) into *a, *b; 0 when it is one. */
static int parse_range(const char *s, uint64_t *a, uint64_t *b)
{
    const char *colon = s ? strchr(s, ':') : NULL;
    char first[32];
    if (!colon || (size_t)(colon - s) >= sizeof first || colon == s) return -1;
    memcpy(first, s, (size_t)(colon - s));
    first[colon - s] = '\0';
    if (qid_parse_u64(first, UINT64_MAX, a)) return -1;
    *b = 0;
    if (colon[1] && (qid_parse_u64(colon + 1, UINT64_MAX, b) || *b <= *a)) return -1;
    return 0;
}

static int is_idx_path(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    return n > 4 && strcmp(p + n - 4, ".idx") == 0;
}

/* qid tokens --from DATA.idx: the selection of a Megatron dataset. */
static int import_megatron(qid_tokens_import_opts *o, const char *docs, const char *seqs)
{
    qid_megatron_unit unit = docs ? QID_MEGATRON_DOCUMENTS : seqs ? QID_MEGATRON_SEQUENCES : QID_MEGATRON_ALL;
    uint64_t a = 0, b = 0;
    if ((docs || seqs) && parse_range(docs ? docs : seqs, &a, &b))
        return cli_usage_error("tokens", "--%s wants A:B or A: (0-based, B > A), got '%s'",
                               docs ? "documents" : "sequences", docs ? docs : seqs);
    qid_error err;
    qid_error_clear(&err);
    qid_megatron mg;
    if (qid_megatron_open(o->input, unit, a, b, &mg, &err)) return cli_fail("tokens", "%s", err.msg);
    qid_tokens_feed feed;
    qid_megatron_feed(&mg, &feed);
    char sel[96];
    if (unit == QID_MEGATRON_ALL)
        snprintf(sel, sizeof sel, "all");
    else
        snprintf(sel, sizeof sel, "%s %" PRIu64 ":%" PRIu64, docs ? "documents" : "sequences", a,
                 b ? b : (docs ? mg.idx.n_doc_idx - 1 : mg.idx.n_seqs));
    const qid_tokens_attr attrs[] = {
        {"megatron_dtype", mg.idx.dtype, 0},
        {"megatron_selection", sel, 0},
        {"megatron_first_sequence", NULL, (int64_t)mg.seq_first},
        {"megatron_sequences", NULL, (int64_t)(mg.seq_last - mg.seq_first)},
    };
    o->feed = &feed;
    o->attrs = attrs;
    o->n_attrs = sizeof attrs / sizeof attrs[0];
    qid_tokens_meta m;
    int rc = qid_tokens_import(o, &m, &err);
    if (rc) {
        qid_megatron_close(&mg);
        return cli_fail("tokens", "%s", err.msg);
    }
    printf("wrote %s: %" PRId64 " windows x %" PRId64 " tokens (uint%d, vocab %" PRId64 ", tokenizer %s) from %s "
           "(%s, sequences %" PRIu64 ":%" PRIu64 "); %" PRId64 " of %" PRId64 " source tokens dropped\n",
           o->output, m.n_windows, m.seq_len, m.id_bits, m.vocab_size, m.tokenizer, sel, mg.idx.dtype, mg.seq_first,
           mg.seq_last, m.tokens_dropped, m.source_tokens);
    qid_megatron_close(&mg);
    return 0;
}

static int is_json_path(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    return n > 5 && strcmp(p + n - 5, ".json") == 0;
}

/* The recorded name of a tokenizer file: its directory's name for
 * DIR/tokenizer.json, else the file name without .json. */
static void tokenizer_name(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strcmp(base, "tokenizer.json") == 0 && base > path + 1) {
        const char *end = base - 1, *start = end;
        while (start > path && start[-1] != '/')
            start--;
        if (end > start) {
            snprintf(out, cap, "%.*s", (int)(end - start), start);
            return;
        }
    }
    snprintf(out, cap, "%.*s", (int)(strlen(base) - 5), base);
}

typedef struct text_args {
    const char *format, *field, *bos, *eos, *name;
    int threads;
} text_args;

/* qid tokens --tokenizer FILE.json --from TEXT */
static int import_text(qid_tokens_import_opts *o, const text_args *a)
{
    qid_error err;
    qid_error_clear(&err);
    qid_tokenizer *tk = NULL;
    const char *path = o->tokenizer;
    if (qid_tokenizer_load(path, &tk, &err)) return cli_fail("tokens", "%s", err.msg);
    qid_text_opts to = {
        .input = o->input, .field = a->field, .bos_id = -1, .eos_id = -1, .threads = a->threads, .progress = 1};
    to.format = !a->format                        ? (a->field ? QID_TEXT_JSONL : QID_TEXT_DETECT)
                : strcmp(a->format, "jsonl") == 0 ? QID_TEXT_JSONL
                                                  : QID_TEXT_PLAIN;
    const char *which[2] = {a->bos, a->eos};
    int64_t *id[2] = {&to.bos_id, &to.eos_id};
    for (int k = 0; k < 2; k++)
        if (which[k] && (*id[k] = qid_tokenizer_token_id(tk, which[k])) < 0) {
            qid_tokenizer_free(tk);
            return cli_fail("tokens", "--%s '%s' is not a token of '%s' (give the token's text, e.g. '<s>')",
                            k ? "eos" : "bos", which[k], path);
        }
    char name[128];
    if (a->name)
        snprintf(name, sizeof name, "%s", a->name);
    else
        tokenizer_name(path, name, sizeof name);
    if (!o->vocab_size) o->vocab_size = qid_tokenizer_vocab_size(tk);
    qid_text_result r;
    if (qid_text_tokenize(tk, &to, &r, &err)) {
        qid_tokenizer_free(tk);
        return cli_fail("tokens", "%s", err.msg);
    }
    if (a->threads > 1 && r.n_docs < (size_t)a->threads)
        qid_warn("tokens: %zu document%s for %d threads: threads split documents, never one document (JSON lines give "
                 "one document a line)",
                 r.n_docs, r.n_docs == 1 ? "" : "s", a->threads);
    char policy[160];
    snprintf(policy, sizeof policy, "bos %s, eos %s", a->bos ? a->bos : "none", a->eos ? a->eos : "none");
    const char *base = strrchr(path, '/');
    const qid_tokens_attr attrs[] = {
        {"tokenizer_file", base ? base + 1 : path, 0},
        {"tokenizer_sha256", qid_tokenizer_sha256(tk), 0},
        {"text_format", r.format == QID_TEXT_JSONL ? "jsonl" : "text", 0},
        {"text_field", r.format == QID_TEXT_JSONL ? (a->field ? a->field : "text") : "", 0},
        {"documents", NULL, (int64_t)r.n_docs},
        {"document_policy", policy, 0},
        {"bos_id", NULL, to.bos_id},
        {"eos_id", NULL, to.eos_id},
    };
    qid_tokens_feed feed;
    qid_text_feed(&r, &feed);
    o->tokenizer = name;
    o->feed = &feed;
    o->attrs = attrs;
    o->n_attrs = sizeof attrs / sizeof attrs[0];
    qid_tokens_meta m;
    int rc = qid_tokens_import(o, &m, &err);
    if (rc) {
        qid_text_result_free(&r);
        qid_tokenizer_free(tk);
        return cli_fail("tokens", "%s", err.msg);
    }
    printf("wrote %s: %" PRId64 " windows x %" PRId64 " tokens (uint%d, vocab %" PRId64 ", tokenizer %s) from %zu "
           "document%s (%" PRIu64 " bytes, %s; %s) in %.2f s (%.0f tokens/s on %d thread%s); %" PRId64 " of %" PRId64
           " tokens dropped\n",
           o->output, m.n_windows, m.seq_len, m.id_bits, m.vocab_size, m.tokenizer, r.n_docs, r.n_docs == 1 ? "" : "s",
           r.bytes, r.format == QID_TEXT_JSONL ? "JSON lines" : "plain text", policy, r.seconds,
           r.seconds > 0 ? (double)r.n_ids / r.seconds : 0.0, a->threads, a->threads == 1 ? "" : "s", m.tokens_dropped,
           m.source_tokens);
    qid_text_result_free(&r);
    qid_tokenizer_free(tk);
    return 0;
}

int qid_tokens_main(int argc, char **argv)
{
    qid_tokens_import_opts o = {.source = QID_TOKENS_SRC_AUTO};
    const char *dtype = NULL, *docs = NULL, *seqs = NULL;
    int text = 0;
    text_args ta = {.threads = 1};
    const cli_opt opts[] = {
        CLI_OPT_I64("seq-len", &o.seq_len, 1, QID_TOKENS_MAX_SEQ_LEN, "1..16777216"),
        CLI_OPT_I64("vocab", &o.vocab_size, 1, QID_TOKENS_MAX_VOCAB, "1..4294967296"),
        CLI_OPT_STR("tokenizer", &o.tokenizer),
        CLI_OPT_STR("dtype", &dtype),
        CLI_OPT_FLAG("text", &text),
        CLI_OPT_I64("max-windows", &o.max_windows, 1, 9e18, "a positive integer"),
        {"output", 'o', CLI_STR, &o.output, 0, 0, 0, NULL, NULL},
        CLI_OPT_FLAG("force", &o.force),
        CLI_OPT_STR("from", &o.input),
        CLI_OPT_STR("documents", &docs),
        CLI_OPT_STR("sequences", &seqs),
        CLI_OPT_STR("format", &ta.format),
        CLI_OPT_STR("text-field", &ta.field),
        CLI_OPT_STR("bos", &ta.bos),
        CLI_OPT_STR("eos", &ta.eos),
        CLI_OPT_STR("tokenizer-name", &ta.name),
        CLI_OPT_INT("threads", &ta.threads, 1, 1024, "1..1024"),
    };
    const cli_spec spec = {"tokens", usage, opts, sizeof opts / sizeof opts[0], 0, -1, NULL};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1;                           /* the positional arguments */
    const int extra = n_args + (o.input != NULL) > 1; /* --from INPUT or INPUT, not both nor two */
    if (!o.input && n_args > 0) o.input = args[0];
    if (rc == CLI_HELP) return 0;
    if (rc != CLI_OK) return rc;
    int u16 = dtype && strcmp(dtype, "uint16") == 0, u32 = dtype && strcmp(dtype, "uint32") == 0;
    o.source = text ? QID_TOKENS_SRC_TEXT : u16 ? QID_TOKENS_SRC_U16 : u32 ? QID_TOKENS_SRC_U32 : QID_TOKENS_SRC_AUTO;
    int idx = is_idx_path(o.input), tj = is_json_path(o.tokenizer);
    int text_only = ta.format || ta.field || ta.bos || ta.eos || ta.name || ta.threads != 1;
    const char *why =
        !o.input                 ? "no input file given (--from INPUT)"
        : extra                  ? "too many arguments (give one input: --from INPUT or INPUT)"
        : !o.output              ? "no output given (-o OUT.h5)"
        : docs && seqs           ? "--documents and --sequences exclude each other"
        : (docs || seqs) && !idx ? "--documents and --sequences select from a Megatron DATA.idx"
        : idx && (text || dtype) ? "a .idx says its own dtype; drop --text and --dtype"
        : tj && (text || dtype || idx)
            ? "--tokenizer FILE.json reads text; drop --text, --dtype (and give a text file, not a .idx)"
        : text_only && !tj ? "--format, --text-field, --bos, --eos, --tokenizer-name and --threads go "
                             "with --tokenizer FILE.json"
        : ta.format && strcmp(ta.format, "text") != 0 && strcmp(ta.format, "jsonl") != 0
            ? "--format must be text or jsonl"
        : ta.field && ta.format && strcmp(ta.format, "jsonl") != 0 ? "--text-field reads JSON lines; drop --format text"
        : text && dtype                                            ? "--text and --dtype exclude each other"
        : dtype && !u16 && !u32                                    ? "--dtype must be uint16 or uint32"
        : text && o.vocab_size && o.vocab_size != 256 ? "--text uses the byte vocabulary of 256; drop --vocab"
        : text && o.tokenizer && strcmp(o.tokenizer, "bytes") != 0
            ? "--text uses the tokenizer 'bytes'; drop --tokenizer"
        : !text && !tj && !o.vocab_size ? "--vocab V is required (the model's vocabulary size)"
        : !tj && o.tokenizer && (!o.tokenizer[0] || strlen(o.tokenizer) > 127)
            ? "--tokenizer wants a name of 1..127 characters"
            : NULL;
    if (why) return cli_usage_error("tokens", "%s", why);
    if (!text && !o.tokenizer) qid_warn("tokens: no --tokenizer given: recorded as 'unknown'");
    if (idx) return import_megatron(&o, docs, seqs);
    if (tj) return import_text(&o, &ta);
    qid_error err;
    qid_error_clear(&err);
    qid_tokens_meta m;
    if (qid_tokens_import(&o, &m, &err)) return cli_fail("tokens", "%s", err.msg);
    printf("wrote %s: %" PRId64 " windows x %" PRId64 " tokens (uint%d, vocab %" PRId64 ", tokenizer %s); "
           "%" PRId64 " of %" PRId64 " source tokens dropped\n",
           o.output, m.n_windows, m.seq_len, m.id_bits, m.vocab_size, m.tokenizer, m.tokens_dropped, m.source_tokens);
    return 0;
}
