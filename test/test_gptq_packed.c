/* test_gptq_packed.c - GPTQ-packed models (qweight, qzeros, scales, g_idx)
 * imported as dequantized checkpoints: the unpacking against hand-packed
 * codes (3 bits crossing words, v1 and v2 zero points), and `qid import
 * --from gptq` of models packed by AutoGPTQ 0.7.1 itself (safetensors and
 * pytorch_model.bin)
 * (test/fixtures/gptq-packed, tools/make_gptq_packed_fixtures.py) against
 * the producer's own dequantization, bit for bit; the config recorded in
 * /gptq; packed tensors that disagree with the config refused in one line
 * with no output left. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "gptq_packed.h"
#include "h5io.h"
#include "import.h"
#include "safetensors.h"
#include "tap.h"

#define FIX "test/fixtures/gptq-packed"

/* 3-bit codes of 32 input rows x 1 column packed as one bit stream into 3
 * words (AutoGPTQ's pack: codes 10 and 21 cross words). */
static void hand_packed(void)
{
    uint32_t codes[32], words[3] = {0, 0, 0};
    for (int k = 0; k < 32; k++) {
        codes[k] = (uint32_t)(k * 5 + 3) & 7;
        for (int b = 0; b < 3; b++)
            if (codes[k] >> b & 1) words[(3 * k + b) / 32] |= 1u << ((3 * k + b) % 32);
    }
    /* the zero point of the one group of a 32-wide layer: column 0's field */
    int32_t qw[3] = {(int32_t)words[0], (int32_t)words[1], (int32_t)words[2]};
    int32_t qz[3] = {2, 0, 0}; /* stored 2: v1 zero 3, v2 zero 2 */
    uint16_t scale = qid_f32_to_f16(0.5f);
    /* a layer of out 32 needs 3 zero words; only column 0 is used here */
    qid_gptq_layout l = {.bits = 3, .in = 32, .out = 1, .group_size = -1, .v2 = 0};
    float w[32];
    qid_error err;
    /* out = 1 is not a packable width, but unpack reads only what it needs */
    ok(qid_gptq_unpack(&l, qw, qz, &scale, NULL, w, &err) == QID_OK, "3-bit unpack");
    int bad = 0;
    for (int k = 0; k < 32; k++)
        if (w[k] != 0.5f * ((float)codes[k] - 3.0f)) bad++;
    is_int(0, bad, "3-bit codes across word boundaries, v1 zero = stored + 1");
    l.v2 = 1;
    qid_gptq_unpack(&l, qw, qz, &scale, NULL, w, &err);
    bad = 0;
    for (int k = 0; k < 32; k++)
        if (w[k] != 0.5f * ((float)codes[k] - 2.0f)) bad++;
    is_int(0, bad, "v2 zero = stored");
    int32_t gidx[32] = {0};
    gidx[7] = 1;
    ok(qid_gptq_unpack(&l, qw, qz, &scale, gidx, w, &err) == QID_E_FORMAT, "g_idx beyond the groups refused");
    like(err.msg, "g_idx[7] = 1 is outside 0..0", "g_idx: message");
}

/* Imports fixture name with --from gptq and compares every tensor: linear
 * weights with the producer's dequantization, the rest with model.safetensors. */
static void check_fixture(const char *name, const char *ref_name, int bits, int64_t group, int v2, int n_packed)
{
    char dir[256], out[4200], path[512];
    snprintf(dir, sizeof dir, FIX "/%s", name);
    snprintf(out, sizeof out, "%s/%s.h5", tap_tmpdir(), name);
    qid_import_opts o = {.dir = dir, .out = out, .step = 1000, .tokens = -1, .format = QID_IMPORT_GPTQ};
    qid_error err;
    if (!is_int(QID_OK, qid_import(&o, &err), "%s: imports", name)) diag("%s", err.msg);
    qid_ckpt ck;
    if (qid_ckpt_open(out, &ck, &err)) bail("%s", err.msg);
    is_string("gptq", ck.meta.source_format, "%s: source format gptq", name);
    is_string("float16", qid_dtype_name(ck.meta.dtype), "%s: float16 like the model", name);
    qid_st_file ref, src;
    snprintf(path, sizeof path, FIX "/%s.reference.safetensors", ref_name);
    if (qid_st_open(path, &ref, &err)) bail("%s", err.msg);
    snprintf(path, sizeof path, FIX "/%s/model.safetensors", ref_name);
    if (qid_st_open(path, &src, &err)) bail("%s", err.msg);
    size_t n = 0;
    qid_tensor_spec *specs = qid_ckpt_tensors(&ck.cfg, &n);
    int linear = 0, bad = 0, other = 0;
    for (size_t i = 0; i < n; i++) {
        const qid_st_tensor *t = qid_st_find(&ref, specs[i].hf_name);
        int is_ref = t != NULL;
        if (!t) t = qid_st_find(&src, specs[i].hf_name);
        if (!t) bail("%s: no source for %s", name, specs[i].hf_name);
        size_t bytes = (size_t)(t->end - t->begin);
        char *a = malloc(bytes), *b = malloc(bytes);
        if (qid_st_read(is_ref ? &ref : &src, t, a, &err) || qid_ckpt_read_raw(&ck, &specs[i], b, &err))
            bail("%s", err.msg);
        if (memcmp(a, b, bytes) != 0) {
            bad++;
            diag("%s: %s differs", name, specs[i].hf_name);
        }
        if (is_ref)
            linear++;
        else
            other++;
        free(a);
        free(b);
    }
    is_int(n_packed, linear, "%s: %d packed layers", name, n_packed);
    is_int(0, bad, "%s: %d dequantized layers equal AutoGPTQ's dequantization, %d other tensors equal the source", name,
           linear, other);
    hid_t g = H5Gopen2(ck.file, "gptq", H5P_DEFAULT);
    int64_t v = 0, gs = 0, np = 0;
    char fmt[32] = "";
    qid_h5_attr_read_i64(g, "/gptq", "bits", &v, &err);
    qid_h5_attr_read_i64(g, "/gptq", "group_size", &gs, &err);
    qid_h5_attr_read_i64(g, "/gptq", "packed_layers", &np, &err);
    qid_h5_attr_read_str(g, "/gptq", "checkpoint_format", fmt, sizeof fmt, &err);
    ok(v == bits && gs == group && np == n_packed && strcmp(fmt, v2 ? "gptq_v2" : "gptq") == 0,
       "%s: /gptq records bits %d, group size %lld, %s", name, bits, (long long)group, fmt);
    H5Gclose(g);
    free(specs);
    qid_st_free(&ref);
    qid_st_free(&src);
    qid_ckpt_close(&ck);
}

static char work[4200];

static void fresh_copy(const char *name)
{
    char cmd[9000];
    snprintf(work, sizeof work, "%s/bad", tap_tmpdir());
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r %s '%s'", work, name, work);
    if (system(cmd) != 0) bail("cannot copy %s", name);
}

static void edit_config(const char *from, const char *to)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/config.json", work);
    char *text = tap_read_file(path, NULL), *at = strstr(text, from);
    if (!at) bail("'%s' not in %s", from, path);
    size_t n = strlen(text) + strlen(to) + 1;
    char *o = malloc(n);
    snprintf(o, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    tap_write_file(path, o, strlen(o));
    free(o);
    free(text);
}

static void import_fails(qid_import_format format, const char *want, const char *what)
{
    char out[4200], cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/out' && mkdir -p '%s/out'", tap_tmpdir(), tap_tmpdir());
    if (system(cmd) != 0) bail("mkdir failed");
    snprintf(out, sizeof out, "%s/out/bad.h5", tap_tmpdir());
    qid_import_opts o = {.dir = work, .out = out, .step = -1, .tokens = -1, .format = format};
    qid_error err;
    qid_error_clear(&err);
    ok(qid_import(&o, &err) != QID_OK, "%s: refused", what);
    like(err.msg, want, "%s: message", what);
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s/out')\"", tap_tmpdir());
    ok(system(cmd) == 0 && !strchr(err.msg, '\n'), "%s: one line, nothing left", what);
}

int main(void)
{
    qid_h5_silence();
    plan(54);
    hand_packed();
    check_fixture("neox-int4-g16-sym", "neox-int4-g16-sym", 4, 16, 0, 8);
    check_fixture("neox-int3-g16-asym-descact", "neox-int3-g16-asym-descact", 3, 16, 0, 8);
    check_fixture("neox-int2-gall-sym", "neox-int2-gall-sym", 2, -1, 0, 8);
    check_fixture("llama-int8-g32-asym-v2", "llama-int8-g32-asym-v2", 8, 32, 1, 15); /* with the head */
    check_fixture("neox-int4-g16-sym-bin", "neox-int4-g16-sym", 4, 16, 0, 8);        /* pytorch_model.bin */

    /* auto-detection: a GPTQ config means --from gptq */
    char out[4200];
    snprintf(out, sizeof out, "%s/auto.h5", tap_tmpdir());
    qid_import_opts o = {.dir = FIX "/neox-int4-g16-sym", .out = out, .step = -1, .tokens = -1};
    qid_error err;
    ok(qid_import(&o, &err) == QID_OK, "a GPTQ directory is imported as gptq without --from");

    fresh_copy(FIX "/neox-int4-g16-sym");
    edit_config("\"group_size\": 16", "\"group_size\": 8");
    import_fails(QID_IMPORT_GPTQ,
                 "packed tensor 'gpt_neox.layers.0.attention.query_key_value.qzeros' in 'model.safetensors' has shape "
                 "[2, 12], but 4-bit GPTQ with group size 8 of a [96, 32] layer implies [4, 12]",
                 "group size disagreeing with the packed tensors");
    fresh_copy(FIX "/neox-int4-g16-sym");
    edit_config("\"bits\": 4", "\"bits\": 8");
    import_fails(QID_IMPORT_GPTQ,
                 "packed tensor 'gpt_neox.layers.0.attention.query_key_value.qweight' in 'model.safetensors' has shape "
                 "[4, 96], but 8-bit GPTQ with group size 16 of a [96, 32] layer implies [8, 96]",
                 "bits disagreeing with the packed tensors");
    fresh_copy(FIX "/neox-int4-g16-sym");
    edit_config("\"bits\": 4", "\"bits\": 5");
    import_fails(QID_IMPORT_GPTQ, "GPTQ bits 5 is not supported (2, 3, 4 or 8)", "5 bits");
    fresh_copy(FIX "/neox-int4-g16-sym");
    edit_config("\"quant_method\": \"gptq\"", "\"quant_method\": \"awq\"");
    import_fails(QID_IMPORT_AUTO, "quant_method 'awq' is not supported (qid imports gptq)", "AWQ");
    fresh_copy(FIX "/neox-int4-g16-sym");
    import_fails(QID_IMPORT_SAFETENSORS, "describes a 4-bit GPTQ model (hint: import it with --from gptq)",
                 "--from safetensors on a GPTQ model");
    fresh_copy("test/fixtures/hf/gpt-neox-tiny");
    import_fails(QID_IMPORT_GPTQ, "has no GPTQ quantization_config", "--from gptq on a 16-bit model");
    return 0;
}
