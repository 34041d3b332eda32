/* test_torch_bin.c - the torch.save reader (torch_bin.c) and its pickle
 * interpreter (torch_pickle.c) on archives written by torch.save itself
 * (test/fixtures/torch, tools/make_torch_fixtures.py from the safetensors
 * fixtures of test/fixtures/hf): every tensor equal byte for byte to the
 * same tensor read from safetensors, including a non-contiguous one, two
 * names of one storage at different offsets, a tied head, bool and scalar
 * buffers; and every hostile archive or pickle refused with one line naming
 * what is wrong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "tap.h"
#include "torch_bin.h"
#include "torch_pickle.h"

#define HF    "test/fixtures/hf"
#define TORCH "test/fixtures/torch"

/* Every tensor of the safetensors file st_path is in the archive with the
 * same dtype, shape and bytes. Returns the number compared. */
static size_t same_as_safetensors(const qid_tb_file *tb, const char *st_path, const char *what)
{
    qid_st_file st;
    qid_error err;
    if (qid_st_open(st_path, &st, &err)) bail("%s", err.msg);
    size_t n = 0, bad = 0;
    for (size_t i = 0; i < st.n; i++) {
        const qid_st_tensor *s = &st.tensors[i];
        const qid_tp_tensor *t = qid_tb_find(tb, s->name);
        if (!t || t->dtype != s->dtype || t->ndim != s->ndim ||
            memcmp(t->shape, s->shape, sizeof(uint64_t) * (size_t)s->ndim) != 0) {
            diag("%s: %s missing or of another dtype or shape", what, s->name);
            bad++;
            continue;
        }
        size_t bytes = (size_t)(s->end - s->begin);
        char *a = malloc(bytes + 1), *b = malloc(bytes + 1);
        if (qid_st_read(&st, s, a, &err) || qid_tb_read(tb, t, b, &err)) bail("%s", err.msg);
        if (memcmp(a, b, bytes) != 0) {
            diag("%s: %s differs", what, s->name);
            bad++;
        }
        n++;
        free(a);
        free(b);
    }
    ok(bad == 0 && n == st.n, "%s: %zu tensors equal to the safetensors bytes", what, n);
    qid_st_free(&st);
    return n;
}

static void refused(const char *file, const char *want, const char *what)
{
    qid_tb_file f;
    qid_error err;
    qid_error_clear(&err);
    int rc = qid_tb_open(file, &f, &err);
    ok(rc == QID_E_FORMAT, "%s: refused", what);
    like(err.msg, want, "%s: message", what);
    ok(strchr(err.msg, '\n') == NULL && f.zip == NULL && f.dict.n == 0, "%s: one line, nothing kept", what);
}

static void pickle_refused(const char *bytes, size_t len, const char *want, const char *what)
{
    qid_tp_dict d;
    qid_error err;
    int rc = qid_tp_parse((const uint8_t *)bytes, len, "p", &d, &err);
    ok(rc == QID_E_FORMAT && d.n == 0 && d.n_storages == 0, "pickle %s: refused", what);
    like(err.msg, want, "pickle %s: message", what);
}

int main(void)
{
    plan(77);
    qid_tb_file tb;
    qid_error err;

    /* float32, with a transposed tensor, a shared storage and buffers */
    if (qid_tb_open(TORCH "/gpt-neox-tiny-bin/pytorch_model.bin", &tb, &err)) bail("%s", err.msg);
    size_t n = same_as_safetensors(&tb, HF "/gpt-neox-tiny/model.safetensors", "gpt-neox-tiny F32");
    is_int((long long)n + 4, (long long)tb.dict.n, "two buffers per layer beside the weights");
    const qid_tp_tensor *t = qid_tb_find(&tb, "gpt_neox.layers.0.mlp.dense_h_to_4h.weight");
    ok(t && !t->contiguous && t->stride[0] == 1 && t->stride[1] == 64, "transposed tensor: strides (1, 64)");
    const qid_tp_tensor *lw = qid_tb_find(&tb, "gpt_neox.layers.0.input_layernorm.weight");
    const qid_tp_tensor *lb = qid_tb_find(&tb, "gpt_neox.layers.0.input_layernorm.bias");
    ok(lw && lb && lw->storage == lb->storage && lw->offset == 0 && lb->offset == 32,
       "norm weight and bias: one storage, offsets 0 and 32");
    is_int(64, (long long)tb.dict.storages[lw->storage].numel, "their storage holds both");
    t = qid_tb_find(&tb, "gpt_neox.layers.1.attention.bias");
    ok(t && t->dtype == QID_ST_BOOL && t->ndim == 4 && t->shape[2] == 16, "bool buffer [1, 1, 16, 16]");
    t = qid_tb_find(&tb, "gpt_neox.layers.1.attention.masked_bias");
    ok(t && t->dtype == QID_ST_F32 && t->ndim == 0 && qid_tb_numel(t) == 1, "scalar buffer");
    float mb = 0;
    ok(t && qid_tb_read(&tb, t, &mb, &err) == QID_OK && mb == -1e9f, "scalar value -1e9");
    qid_tb_free(&tb);

    /* the same archive from memory */
    size_t len;
    char *bytes = tap_read_file(TORCH "/gpt-neox-tiny-bin/pytorch_model.bin", &len);
    ok(qid_tb_open_buffer(bytes, len, "mem", &tb, &err) == QID_OK, "opens from memory");
    same_as_safetensors(&tb, HF "/gpt-neox-tiny/model.safetensors", "from memory");
    qid_tb_free(&tb);
    free(bytes);

    if (qid_tb_open(TORCH "/gpt-neox-tiny-fp16-bin/pytorch_model.bin", &tb, &err)) bail("%s", err.msg);
    same_as_safetensors(&tb, HF "/gpt-neox-tiny-fp16/model.safetensors", "gpt-neox-tiny F16");
    qid_tb_free(&tb);
    const char *shards[] = {"00001", "00002", "00003"};
    for (int s = 0; s < 3; s++) {
        char a[256], b[256], what[64];
        snprintf(a, sizeof a, TORCH "/llama-tiny-bf16-sharded-bin/pytorch_model-%s-of-00003.bin", shards[s]);
        snprintf(b, sizeof b, HF "/llama-tiny-bf16-sharded/model-%s-of-00003.safetensors", shards[s]);
        snprintf(what, sizeof what, "BF16 shard %d", s + 1);
        if (qid_tb_open(a, &tb, &err)) bail("%s", err.msg);
        same_as_safetensors(&tb, b, what);
        qid_tb_free(&tb);
    }
    if (qid_tb_open(TORCH "/llama-tiny-tied-bin/pytorch_model.bin", &tb, &err)) bail("%s", err.msg);
    same_as_safetensors(&tb, HF "/llama-tiny-tied/model.safetensors", "tied");
    const qid_tp_tensor *e = qid_tb_find(&tb, "model.embed_tokens.weight"), *h = qid_tb_find(&tb, "lm_head.weight");
    ok(e && h && e->storage == h->storage && e->offset == h->offset, "tied head: one storage under two names");
    qid_tb_free(&tb);

    /* refused archives */
    refused(TORCH "/legacy.bin", "in the legacy format (torch < 1.6", "legacy format");
    refused(TORCH "/hostile/os-system.bin", "global 'os.system' is not allowed", "os.system");
    refused(TORCH "/hostile/reduce-storage.bin", "REDUCE on 'torch.FloatStorage' is not allowed",
            "REDUCE on a storage");
    refused(TORCH "/hostile/pid-outside.bin", "names storage '9', which is not in the archive",
            "persistent id outside");
    refused(TORCH "/hostile/size-overflow.bin", "tensor size overflows", "size overflow");
    refused(TORCH "/hostile/stride-past.bin", "reaches element 8 of storage '0', which has 4",
            "strides past the storage");
    refused(TORCH "/hostile/expanded.bin", "tensor of 8 elements over the 4 of storage '0' (overlapping strides)",
            "expanded view");
    refused(TORCH "/hostile/storage-size.bin", "declares 8 elements of F32 but entry 'archive/data/0' has 16 bytes",
            "storage size");
    refused(TORCH "/hostile/truncated.bin", "not a zip archive (or truncated", "truncated zip");
    refused(TORCH "/hostile/zip-bomb.bin", "declares 2147483632 bytes from 2147483632 in a file of 695 bytes (zip bomb",
            "zip bomb");
    refused(TORCH "/hostile/not-a-dict.bin", "the pickle holds a list, not a state dict", "not a dict");
    refused(HF "/gpt-neox-tiny/config.json", "not a zip archive", "a JSON file");

    /* the interpreter on its own */
    pickle_refused("\x80\x02(i\n", 5, "opcode INST (0x69) is not supported", "INST");
    pickle_refused("\x80\x02}q\x00", 5, "pickle ends without STOP", "no STOP");
    pickle_refused("\x80\x02h\x05.", 5, "memo index 5 was never stored", "memo get");
    pickle_refused("\x80\x02}r\xff\xff\xff\x7f.", 9, "memo index 2147483647 is beyond", "memo index beyond the input");
    pickle_refused("\x80\x02}R.", 5, "REDUCE on an empty stack", "REDUCE on an empty stack");
    pickle_refused("\x80\x02}}R.", 6, "REDUCE on a dict (only allowed globals are callable)", "REDUCE on a dict");
    pickle_refused("\x80\x02"
                   "ccollections\nOrderedDict\n(K\x01"
                   "tR.",
                   33, "REDUCE on collections.OrderedDict with arguments", "OrderedDict with arguments");
    pickle_refused("\x80\x02}.}", 5, "1 bytes after STOP", "trailing bytes");
    pickle_refused("\x80\x02}X\xff\xff\xff\x00", 9, "pickle ends inside opcode BINUNICODE", "string beyond the end");
    pickle_refused("\x80\x02"
                   "cbuiltins\neval\n",
                   18, "global 'builtins.eval' is not allowed", "eval");
    pickle_refused("\x80\x02}X\x01\x00\x00\x00"
                   "aK\x01"
                   "s.",
                   13, "entry 'a' is a int, not a tensor", "non-tensor value");
    pickle_refused("\x80\x06}.", 4, "pickle protocol 6", "protocol 6");
    qid_tp_dict d;
    ok(qid_tp_parse((const uint8_t *)"\x80\x02}.", 4, "p", &d, &err) == QID_OK && d.n == 0, "an empty state dict");
    qid_tp_free(&d);
    return 0;
}
