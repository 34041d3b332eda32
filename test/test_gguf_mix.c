/* test_gguf_mix.c - llama-quantize's per-tensor choice (gguf_mix.c) against
 * tables worked out by hand from llama.cpp's src/llama-quant.cpp
 * (llama_tensor_get_type_impl, tensor_type_fallback) for small layer counts
 * and against llama.cpp's own expected choices for three real models
 * (tests/snapshots via tools/make_gguf_mix_fixture.sh),
 * the fallback for row lengths 256 or 32 does not divide, and the
 * quantizer applying them (quantize.h): each tensor of a model gets its type,
 * an F16 fallback is fp16 rounding, GPTQ refuses the k-quants. */
#include "gguf_mix.h"
#include "quantize.h"
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static qid_quant_spec spec_of(const char *name)
{
    qid_quant_spec s;
    qid_error err;
    if (qid_quant_parse(name, &s, &err)) bail("cannot parse %s: %s", name, err.msg);
    return s;
}

static qid_model_config config(qid_arch arch, int layers, int heads, int kv_heads)
{
    qid_model_config c;
    memset(&c, 0, sizeof c);
    c.arch = arch;
    c.n_layers = layers;
    c.n_heads = heads;
    c.n_kv_heads = kv_heads;
    return c;
}

/* One character per layer: the digit of the k-quant (2..6), '0'/'1'/'8'
 * for q?_0 / q5_1 / q8_0 as their first digit would clash: q4_0 'a',
 * q5_0 'b', q5_1 'c', q8_0 'd', iq4_nl 'n', F16 'h'. */
static char code_of(int quantized, const qid_quant_spec *s)
{
    if (!quantized) return 'h';
    switch (s->type) {
    case QID_QTYPE_Q2_K: return '2';
    case QID_QTYPE_Q3_K: return '3';
    case QID_QTYPE_Q4_K: return '4';
    case QID_QTYPE_Q5_K: return '5';
    case QID_QTYPE_Q6_K: return '6';
    case QID_QTYPE_Q4_0: return 'a';
    case QID_QTYPE_Q5_0: return 'b';
    case QID_QTYPE_Q5_1: return 'c';
    case QID_QTYPE_Q8_0: return 'd';
    case QID_QTYPE_IQ4_NL: return 'n';
    default: return '?';
    }
}

static void check_row(const char *fmt, const qid_model_config *cfg, const char *tensor, size_t cols, const char *want)
{
    qid_quant_spec spec = spec_of(fmt), s;
    char got[128];
    const int n = (int)cfg->n_layers;
    for (int i = 0; i < n; i++)
        got[i] = code_of(qid_gguf_tensor_type(&spec, cfg, qid_gguf_role_of(tensor), i, cols, &s), &s);
    got[n] = '\0';
    is_string(got, want, "%s, %d layers, %s (%zu columns)", fmt, n, tensor, cols);
}

static void test_roles(void)
{
    is_int(QID_GGUF_ROLE_ATTN_QKV, qid_gguf_role_of("attn.qkv.weight"), "attn.qkv.weight is llama.cpp's attn_qkv");
    is_int(QID_GGUF_ROLE_FFN_DOWN, qid_gguf_role_of("mlp.down.weight"), "mlp.down.weight is ffn_down");
    is_int(QID_GGUF_ROLE_OUTPUT, qid_gguf_role_of("lm_head.weight"), "lm_head.weight is output");
    is_int(QID_GGUF_ROLE_OTHER, qid_gguf_role_of("attn.norm.weight"), "a norm is other");
    is_string(qid_gguf_role_name(QID_GGUF_ROLE_ATTN_OUTPUT), "attn_output", "role names are llama.cpp's");
}

/* use_more_bits(i, 8) holds for i = 0, 3, 6, 7 (i < 1, i >= 7, (i - 1) % 3 == 2);
 * use_more_bits(i, 16) for 0, 1, 4, 7, 10, 13, 14, 15. */
static void test_mixtures(void)
{
    const qid_model_config neox8 = config(QID_ARCH_GPT_NEOX, 8, 8, 8);
    check_row("q4_k_m", &neox8, "attn.qkv.weight", 256, "64464466");
    check_row("q4_k_m", &neox8, "mlp.down.weight", 1024, "64464466");
    check_row("q4_k_m", &neox8, "attn.out.weight", 256, "44444444");
    check_row("q4_k_m", &neox8, "mlp.up.weight", 256, "44444444");
    check_row("q5_k_m", &neox8, "attn.qkv.weight", 256, "65565566");
    check_row("q5_k_m", &neox8, "mlp.down.weight", 1024, "65565566");
    check_row("q5_k_m", &neox8, "mlp.up.weight", 256, "55555555");
    check_row("q3_k_m", &neox8, "attn.qkv.weight", 256, "55444444");
    check_row("q3_k_m", &neox8, "mlp.down.weight", 1024, "44444444"); /* n/16 = 0 */
    check_row("q3_k_m", &neox8, "attn.out.weight", 256, "44444444");
    check_row("q3_k_m", &neox8, "mlp.up.weight", 256, "33333333");
    check_row("q3_k_s", &neox8, "attn.qkv.weight", 256, "33333333");
    check_row("q3_k_l", &neox8, "attn.qkv.weight", 256, "55555555");
    check_row("q3_k_l", &neox8, "mlp.down.weight", 1024, "55555555");
    check_row("q3_k_l", &neox8, "attn.out.weight", 256, "55555555");
    check_row("q4_k_s", &neox8, "attn.qkv.weight", 256, "55554444");
    check_row("q4_k_s", &neox8, "mlp.down.weight", 1024, "54444444"); /* i < n/8 = 1 */
    check_row("q5_k_s", &neox8, "mlp.down.weight", 1024, "55555555");

    const qid_model_config llama16 = config(QID_ARCH_LLAMA, 16, 8, 2);
    check_row("q4_k_m", &llama16, "attn.v.weight", 256, "6644644644644666");
    check_row("q4_k_m", &llama16, "attn.k.weight", 256, "4444444444444444");
    check_row("q4_k_m", &llama16, "attn.q.weight", 256, "4444444444444444");
    check_row("q4_k_m", &llama16, "mlp.down.weight", 512, "6644644644644666");
    check_row("q4_k_m", &llama16, "mlp.gate.weight", 256, "4444444444444444");
    check_row("q3_k_m", &llama16, "attn.v.weight", 256, "5544444444444444");
    check_row("q3_k_m", &llama16, "mlp.down.weight", 512, "5444444444444444"); /* i < n/16 = 1 */
    check_row("q4_k_s", &llama16, "mlp.down.weight", 512, "5544444444444444"); /* i < n/8 = 2 */

    /* llama.cpp's 70B: llama, 80 layers, GQA: attn_v q3_k/q4_k -> q5_k */
    const qid_model_config l80 = config(QID_ARCH_LLAMA, 80, 64, 8), l80mha = config(QID_ARCH_LLAMA, 80, 64, 64);
    qid_quant_spec m = spec_of("q4_k_m"), s;
    int q = qid_gguf_tensor_type(&m, &l80, QID_GGUF_ROLE_ATTN_V, 20, 8192, &s);
    ok(q && s.type == QID_QTYPE_Q5_K, "q4_k_m attn_v of an 80-layer GQA llama (layer 20) is q5_k");
    q = qid_gguf_tensor_type(&m, &l80, QID_GGUF_ROLE_ATTN_V, 21, 8192, &s);
    ok(q && s.type == QID_QTYPE_Q6_K, "... and q6_k where use_more_bits holds (layer 21)");
    q = qid_gguf_tensor_type(&m, &l80mha, QID_GGUF_ROLE_ATTN_V, 20, 8192, &s);
    ok(q && s.type == QID_QTYPE_Q4_K, "without GQA (llama.cpp's 65B) it stays q4_k");
    q = qid_gguf_tensor_type(&m, &l80, QID_GGUF_ROLE_FFN_DOWN, 20, 28672, &s);
    ok(q && s.type == QID_QTYPE_Q4_K, "the 70B rule touches attn_v only");

    /* output and token_embd (reported; qid keeps them at stored precision) */
    q = qid_gguf_tensor_type(&m, &neox8, QID_GGUF_ROLE_OUTPUT, -1, 512, &s);
    ok(q && s.type == QID_QTYPE_Q6_K, "q4_k_m output is q6_k");
    q = qid_gguf_tensor_type(&m, &neox8, QID_GGUF_ROLE_OUTPUT, -1, 96, &s);
    ok(q && s.type == QID_QTYPE_Q8_0, "q4_k_m output with 256 not dividing its rows is q8_0");
    q = qid_gguf_tensor_type(&m, &neox8, QID_GGUF_ROLE_TOKEN_EMBD, -1, 512, &s);
    ok(q && s.type == QID_QTYPE_Q4_K, "q4_k_m untied token_embd is the default q4_k");
    qid_model_config tied = neox8;
    tied.tie_embeddings = 1;
    q = qid_gguf_tensor_type(&m, &tied, QID_GGUF_ROLE_TOKEN_EMBD, -1, 512, &s);
    ok(q && s.type == QID_QTYPE_Q6_K, "a tied token_embd follows the output rule: q6_k");

    /* plain formats are --pure: every tensor its own type */
    check_row("q4_k", &neox8, "attn.qkv.weight", 256, "44444444");
    check_row("q6_k", &neox8, "mlp.down.weight", 1024, "66666666");
    check_row("q2_k", &neox8, "attn.qkv.weight", 256, "22222222");
    check_row("iq4_nl", &neox8, "attn.qkv.weight", 256, "nnnnnnnn");
    /* non-GGUF formats are untouched */
    qid_quant_spec i4 = spec_of("int4-g128-sym");
    q = qid_gguf_tensor_type(&i4, &neox8, QID_GGUF_ROLE_ATTN_V, 0, 100, &s);
    ok(q && memcmp(&s, &i4, sizeof s) == 0, "an INT format is its own spec on every tensor");
}

/* tensor_type_fallback: rows 256 does not divide */
static void test_fallback(void)
{
    const qid_model_config neox8 = config(QID_ARCH_GPT_NEOX, 8, 8, 8);
    check_row("q2_k", &neox8, "mlp.up.weight", 96, "aaaaaaaa");
    check_row("q3_k", &neox8, "mlp.up.weight", 96, "aaaaaaaa");
    check_row("q4_k", &neox8, "mlp.up.weight", 96, "bbbbbbbb");
    check_row("q5_k", &neox8, "mlp.up.weight", 96, "cccccccc");
    check_row("q6_k", &neox8, "mlp.up.weight", 96, "dddddddd");
    check_row("q4_k_m", &neox8, "attn.qkv.weight", 64, "dbbdbbdd"); /* q6_k -> q8_0, q4_k -> q5_0 */
    check_row("q4_k", &neox8, "mlp.up.weight", 48, "hhhhhhhh");
    check_row("iq4_nl", &neox8, "mlp.up.weight", 48, "hhhhhhhh");
    check_row("q4_0", &neox8, "mlp.up.weight", 48, "hhhhhhhh");
    check_row("iq4_nl", &neox8, "mlp.up.weight", 96, "nnnnnnnn");
}

/* The type qid gives llama.cpp tensor `name` (blk.I.ROLE.weight or
 * output.weight) of a model; 0 when it is not one qid rules on. */
static int qid_type_of(const qid_quant_spec *spec, const qid_model_config *cfg, const char *name, size_t n_embd,
                       size_t n_ff, qid_quant_spec *out)
{
    static const struct {
        const char *gguf;
        qid_gguf_role role;
    } roles[] = {{"attn_q", QID_GGUF_ROLE_ATTN_Q},     {"attn_k", QID_GGUF_ROLE_ATTN_K},
                 {"attn_v", QID_GGUF_ROLE_ATTN_V},     {"attn_output", QID_GGUF_ROLE_ATTN_OUTPUT},
                 {"ffn_gate", QID_GGUF_ROLE_FFN_GATE}, {"ffn_up", QID_GGUF_ROLE_FFN_UP},
                 {"ffn_down", QID_GGUF_ROLE_FFN_DOWN}};
    if (strcmp(name, "output.weight") == 0)
        return qid_gguf_tensor_type(spec, cfg, QID_GGUF_ROLE_OUTPUT, -1, n_embd, out) ? 1 : -1;
    int layer = -1;
    char role[32];
    if (sscanf(name, "blk.%d.%31[a-z_].weight", &layer, role) != 2) return 0;
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(role, roles[i].gguf) == 0) {
            const size_t cols = roles[i].role == QID_GGUF_ROLE_FFN_DOWN ? n_ff : n_embd;
            return qid_gguf_tensor_type(spec, cfg, roles[i].role, layer, cols, out) ? 1 : -1;
        }
    return 0;
}

/* llama.cpp's own expected choices (tests/snapshots, through
 * tools/make_gguf_mix_fixture.sh): every linear tensor of every layer of
 * Llama-3.1-70B, Qwen3-0.6B and Qwen3-14B under Q4_0, Q5_0, Q8_0, Q6_K and
 * the mixtures Q3_K_S .. Q5_K_M, and the head under the mixtures. */
static void test_snapshots(void)
{
    size_t len = 0;
    char *text = tap_read_file("test/fixtures/quant/gguf_mix_types.txt", &len);
    char *save = NULL, model[64] = "";
    size_t n_embd = 0, n_ff = 0;
    qid_model_config cfg = config(QID_ARCH_LLAMA, 1, 1, 1);
    int sections = 0, checked = 0, bad = 0;
    enum { MAXT = 1024 };
    static char names[MAXT][48], want[MAXT][8];
    int nt = 0;
    qid_quant_spec spec = {0};
    char def[8] = "";
    /* one section at a time: collect its lines, then check every tensor */
    for (char *line = strtok_r(text, "\n", &save);; line = strtok_r(NULL, "\n", &save)) {
        if (!line || line[0] == '[' || strncmp(line, "model ", 6) == 0) {
            if (def[0]) {
                const char *roles[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
                /* plain formats are --pure in qid: the head's Q6_K rule of
                 * llama-quantize's Q4_0/Q5_0 ftypes is theirs, not qid's */
                const int from = qid_quant_traits_of(spec.type)->mixture ? -1 : 0;
                for (int l = from; l < (int)cfg.n_layers; l++)
                    for (size_t r = 0; r < (l < 0 ? 1 : sizeof roles / sizeof roles[0]); r++) {
                        char name[64];
                        if (l < 0)
                            snprintf(name, sizeof name, "output.weight");
                        else
                            snprintf(name, sizeof name, "blk.%d.%s.weight", l, roles[r]);
                        const char *w = def;
                        for (int k = 0; k < nt; k++)
                            if (strcmp(names[k], name) == 0) w = want[k];
                        qid_quant_spec got;
                        const int rc = qid_type_of(&spec, &cfg, name, n_embd, n_ff, &got);
                        const char *g = rc > 0 ? qid_quant_traits_of(got.type)->name : "f16";
                        checked++;
                        if (strcmp(g, w) != 0 && bad++ < 5)
                            diag("%s %s: %s gets %s, llama.cpp %s", model, def, name, g, w);
                    }
                def[0] = '\0';
            }
            if (!line) break;
            nt = 0;
            if (line[0] == '[') {
                char ft[16];
                if (sscanf(line, "[%15[a-z0-9_]] %7s", ft, def) != 2) bail("bad section line %s", line);
                qid_error err;
                if (qid_quant_parse(ft, &spec, &err)) bail("%s", err.msg);
                sections++;
            } else {
                long long e, f, v, nl, nh, nkv;
                if (sscanf(line, "model %63s %lld %lld %lld %lld %lld %lld", model, &e, &f, &v, &nl, &nh, &nkv) != 7)
                    bail("bad model line %s", line);
                n_embd = (size_t)e, n_ff = (size_t)f;
                cfg = config(QID_ARCH_LLAMA, (int)nl, (int)nh, (int)nkv);
            }
            continue;
        }
        if (line[0] == '#') continue;
        if (nt == MAXT || sscanf(line, "%47s %7s", names[nt], want[nt]) != 2) bail("bad tensor line %s", line);
        nt++;
    }
    free(text);
    ok(sections == 33 && checked > 10000 && bad == 0,
       "llama.cpp's snapshots: %d tensors in %d (model, ftype) sections, %d differ", checked, sections, bad);
}

/* A tiny GPT-NeoX through the RTN weight hook and GPTQ's refusal. */
static void test_quantizer(void)
{
    qid_model_config c = config(QID_ARCH_GPT_NEOX, 8, 2, 2);
    qid_quantize_opts o;
    qid_quantize_opts_default(&o);
    o.spec = spec_of("q4_k_m");
    qid_quantizer *q = qid_quantizer_create(&o);
    qid_quantizer_set_model(q, &c);
    enum { R = 2, C = 512 };
    float w[R * C], orig[R * C], want[R * C];
    tap_seed(3);
    for (int i = 0; i < R * C; i++)
        orig[i] = tap_gauss();
    qid_error err;
    int bad = 0;
    for (int layer = 0; layer < 8; layer++) {
        qid_tensor_spec t = {.name = "attn.qkv.weight", .layer = layer, .ndim = 2, .shape = {R, C}};
        memcpy(w, orig, sizeof w);
        if (qid_quantizer_weight_hook(q, &t, w, &err)) bail("%s", err.msg);
        qid_quant_spec s = spec_of(layer == 0 || layer == 3 || layer >= 6 ? "q6_k" : "q4_k");
        if (qid_quant_matrix(&s, orig, want, R, C, "w", &err)) bail("%s", err.msg);
        bad += memcmp(w, want, sizeof w) != 0;
    }
    ok(bad == 0, "q4_k_m through the weight hook: attn_qkv of layers 0, 3, 6, 7 as q6_k, the others as q4_k");
    /* a row of 48: the F16 fallback rounds to fp16 */
    qid_tensor_spec t48 = {.name = "mlp.up.weight", .layer = 1, .ndim = 2, .shape = {1, 48}};
    float x[48], y[48];
    for (int i = 0; i < 48; i++)
        x[i] = y[i] = 0.1f * (float)i + 1e-4f;
    if (qid_quantizer_weight_hook(q, &t48, y, &err)) bail("%s", err.msg);
    int f16 = 1;
    for (int i = 0; i < 48; i++)
        f16 &= y[i] == qid_gguf_f16_to_f32(qid_gguf_f32_to_f16(x[i]));
    ok(f16, "a row of 48 under q4_k_m falls back to F16: fp16-rounded weights");
    qid_quantizer_free(q);

    /* GPTQ has no k-quant path */
    o.method = QID_QUANTIZE_GPTQ;
    int rc = qid_quantize_check(&c, &o, &err);
    ok(rc == QID_E_INVALID &&
           strcmp(err.msg, "format q4_k_m has no GPTQ path (its scales come from a search over whole super-blocks of "
                           "256 weights); expected method rtn") == 0,
       "GPTQ with q4_k_m is refused: %s", err.msg);
    o.spec = spec_of("iq4_nl");
    c.d_model = 64;
    ok(qid_quant_traits_of(o.spec.type)->params != NULL, "iq4_nl has a GPTQ path");
}

int main(void)
{
    plan_lazy();
    test_roles();
    test_mixtures();
    test_fallback();
    test_snapshots();
    test_quantizer();
    return 0;
}
