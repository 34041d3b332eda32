/* test_awq.c - AWQ (awq.c) against the reference run in PyTorch: AutoAWQ
 * 0.2.9 from PyPI (llm-awq's algorithm, duo_scaling off, its GPT-NeoX
 * scaling plan) on a tiny GPT-NeoX-shaped layer, committed as
 * test/fixtures/awq by tools/make_awq_fixture.py: the 20 losses of each
 * group's scale search, the chosen ratio and scales, the clipping bounds and
 * the quantized weights; then AWQ beating round to nearest on held-out
 * inputs, the pseudo-quantizer's edge cases, and bad input with its
 * messages. */
#include "awq.h"
#include "quant.h"
#include "tap.h"

#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "test/fixtures/awq"

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) bail("out of memory (%zu bytes)", bytes);
    return p;
}

static qid_quant_spec spec_of(const char *name)
{
    qid_quant_spec s;
    qid_error err;
    if (qid_quant_parse(name, &s, &err)) bail("cannot parse %s: %s", name, err.msg);
    return s;
}

static void *read_fix(const char *name, size_t want)
{
    char path[256];
    snprintf(path, sizeof path, FIX "/%s", name);
    size_t len = 0;
    char *p = tap_read_file(path, &len);
    if (len != want) bail("%s: %zu bytes, expected %zu", path, len, want);
    return p;
}

static float half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
    if (e == 0) return (h >> 15 ? -1.0f : 1.0f) * ldexpf((float)m, -24);
    if (e == 31) return tap_bits_f32(sign | 0x7f800000u | (m << 13));
    return tap_bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

static float *read_f16(const char *name, size_t n)
{
    uint16_t *h = read_fix(name, n * 2);
    float *x = xmalloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = half_to_float(h[i]);
    free(h);
    return x;
}

/* The fixture's layer. */
enum { QKV, OUT, UP, DOWN, NLIN };
static const char *lin_name[NLIN] = {"qkv", "out", "up", "down"};
static const char *lin_input[NLIN] = {"ln", "attn", "ln", "act"};
static size_t lin_rows[NLIN], lin_cols[NLIN];
static float *W[NLIN], *Xc[NLIN], *Xt[NLIN];
static size_t n_cal, n_test, group;

static void load_layer(cJSON *j)
{
    n_cal = (size_t)cJSON_GetObjectItem(j, "n_cal")->valuedouble;
    n_test = (size_t)cJSON_GetObjectItem(j, "n_test")->valuedouble;
    group = (size_t)cJSON_GetObjectItem(j, "group")->valuedouble;
    cJSON *lins = cJSON_GetObjectItem(j, "linears");
    for (int k = 0; k < NLIN; k++) {
        cJSON *sh = cJSON_GetObjectItem(lins, lin_name[k]);
        lin_rows[k] = (size_t)cJSON_GetArrayItem(sh, 0)->valuedouble;
        lin_cols[k] = (size_t)cJSON_GetArrayItem(sh, 1)->valuedouble;
        char f[64];
        snprintf(f, sizeof f, "w_%s.f32", lin_name[k]);
        W[k] = read_fix(f, lin_rows[k] * lin_cols[k] * sizeof(float));
        snprintf(f, sizeof f, "x_%s.f16", lin_input[k]);
        Xc[k] = read_f16(f, n_cal * lin_cols[k]);
        snprintf(f, sizeof f, "t_%s.f16", lin_input[k]);
        Xt[k] = read_f16(f, n_test * lin_cols[k]);
    }
}

/* An input accumulator for linear k's calibration rows, added in two
 * batches (the sample step must run across batches). */
static qid_awq_input *input_of(int k)
{
    qid_awq_input *in = qid_awq_input_create(lin_cols[k], NULL);
    qid_awq_input_reset(in, n_cal);
    qid_error err;
    const size_t first = 301;
    if (qid_awq_input_add(in, Xc[k], first, lin_cols[k], "fixture", &err) ||
        qid_awq_input_add(in, Xc[k] + first * lin_cols[k], n_cal - first, lin_cols[k], "fixture", &err))
        bail("add: %s", err.msg);
    return in;
}

/* sum over held-out rows of |X (Wq - W)^T|^2, in double */
static double heldout_err(int k, const float *wq)
{
    const size_t R = lin_rows[k], C = lin_cols[k];
    double e = 0.0;
    for (size_t t = 0; t < n_test; t++)
        for (size_t r = 0; r < R; r++) {
            double d = 0.0;
            for (size_t j = 0; j < C; j++)
                d += (double)Xt[k][t * C + j] * ((double)wq[r * C + j] - (double)W[k][r * C + j]);
            e += d * d;
        }
    return e;
}

static float *copy_w(int k)
{
    float *w = xmalloc(lin_rows[k] * lin_cols[k] * sizeof *w);
    memcpy(w, W[k], lin_rows[k] * lin_cols[k] * sizeof *w);
    return w;
}

static void test_variant(cJSON *v)
{
    const char *fmt = cJSON_GetObjectItem(v, "format")->valuestring, *vn = cJSON_GetObjectItem(v, "name")->valuestring;
    qid_quant_spec spec = spec_of(fmt);
    qid_error err;
    cJSON *groups = cJSON_GetObjectItem(v, "groups");
    float *ref_s[NLIN] = {0}, *our_s[NLIN] = {0};
    const int scaled[] = {QKV, UP, DOWN};
    for (int gi = 0; gi < 3; gi++) {
        const int k = scaled[gi];
        cJSON *g = cJSON_GetObjectItem(groups, lin_name[k]);
        char f[96];
        snprintf(f, sizeof f, "%s_s_%s.f32", vn, lin_name[k]);
        ref_s[k] = read_fix(f, lin_cols[k] * sizeof(float));
        our_s[k] = xmalloc(lin_cols[k] * sizeof(float));
        qid_awq_input *in = input_of(k);
        qid_awq_stats st;
        const float *ws[1] = {W[k]};
        const size_t rows[1] = {lin_rows[k]};
        int rc = qid_awq_search_scale(in, &spec, NULL, ws, rows, 1, our_s[k], &st, lin_name[k], &err);
        ok(rc == QID_OK, "%s %s: scale search runs%s%s", fmt, lin_name[k], rc ? ": " : "", rc ? err.msg : "");
        /* the reference's losses are float32 sums of float32 outputs; qid's go through X^T X in double */
        double worst = 0.0;
        cJSON *ls = cJSON_GetObjectItem(g, "losses");
        for (int i = 0; i < 20; i++) {
            double r = cJSON_GetArrayItem(ls, i)->valuedouble;
            worst = fmax(worst, fabs(st.losses[i] - r) / r);
        }
        ok(worst < 1e-4, "%s %s: the 20 losses of the scale search equal the reference's to 1e-4 relative (%.2e)", fmt,
           lin_name[k], worst);
        is_int(cJSON_GetObjectItem(g, "best")->valueint, st.best, "%s %s: the reference's ratio %d/20", fmt,
               lin_name[k], cJSON_GetObjectItem(g, "best")->valueint);
        /* powf against torch's float pow: a few ulps */
        double sd = 0.0;
        for (size_t j = 0; j < lin_cols[k]; j++)
            sd = fmax(sd, fabs((double)our_s[k][j] - ref_s[k][j]) / ref_s[k][j]);
        ok(sd < 2e-6, "%s %s: scales equal the reference's to 2e-6 relative (%.2e)", fmt, lin_name[k], sd);
        qid_awq_input_free(in);
    }
    /* each linear from the reference's scales (the clipping search and Q
     * alone), then from qid's own scales (the whole method) */
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < NLIN; k++) {
            const size_t R = lin_rows[k], C = lin_cols[k], ng = C / group;
            const int clip = k != QKV; /* the reference skips q/k ("query" in the fused name) */
            char f[96];
            snprintf(f, sizeof f, "%s_q_%s.f32", vn, lin_name[k]);
            float *ref_q = read_fix(f, R * C * sizeof(float));
            float *ref_clip = NULL;
            if (clip) {
                snprintf(f, sizeof f, "%s_clip_%s.f32", vn, lin_name[k]);
                ref_clip = read_fix(f, R * ng * sizeof(float));
            }
            qid_awq_input *in = input_of(k);
            float *w = copy_w(k), *qs = xmalloc(R * C * sizeof(float)), *cm = xmalloc(R * ng * sizeof(float));
            const float *s = pass == 0 ? ref_s[k] : our_s[k];
            int rc = qid_awq_quantize(in, &spec, NULL, s, clip, w, R, C, cm, qs, lin_name[k], &err);
            ok(rc == QID_OK, "%s %s (%s scales): quantize runs%s%s", fmt, lin_name[k], pass ? "qid's" : "reference",
               rc ? ": " : "", rc ? err.msg : "");
            size_t clip_diff = 0, q_diff = 0;
            double q_max = 0.0;
            if (clip)
                for (size_t i = 0; i < R * ng; i++)
                    clip_diff += pass ? fabsf(cm[i] - ref_clip[i]) > 1e-6f * fabsf(ref_clip[i]) : cm[i] != ref_clip[i];
            for (size_t i = 0; i < R * C; i++) {
                double dd = fabs((double)qs[i] - ref_q[i]);
                q_diff += pass ? dd > 1e-6 * fabs((double)ref_q[i]) : dd != 0.0;
                q_max = fmax(q_max, dd);
            }
            if (clip)
                is_int(0, (long long)clip_diff,
                       "%s %s (%s scales): clipping bounds of %zu row groups equal the reference's %s", fmt,
                       lin_name[k], pass ? "qid's" : "reference", R * ng, pass ? "to 1e-6 relative" : "bit for bit");
            is_int(0, (long long)q_diff, "%s %s (%s scales): Q(clip(W s)) equals the reference's %s (max |diff| %.2e)",
                   fmt, lin_name[k], pass ? "qid's" : "reference", pass ? "to 1e-6 relative" : "bit for bit", q_max);
            /* the stored weight is Q(clip(W s)) / s */
            size_t back = 0;
            for (size_t r = 0; r < R; r++)
                for (size_t j = 0; j < C; j++)
                    back += w[r * C + j] != (s && k != OUT ? qs[r * C + j] / s[j] : qs[r * C + j]);
            if (pass == 1) is_int(0, (long long)back, "%s %s: the weight kept is Q(clip(W s)) / s", fmt, lin_name[k]);
            free(ref_q);
            free(ref_clip);
            free(w);
            free(qs);
            free(cm);
            qid_awq_input_free(in);
        }
    }
    for (int k = 0; k < NLIN; k++) {
        free(ref_s[k]);
        free(our_s[k]);
    }
}

/* The whole method against round to nearest on the held-out inputs. */
static void test_heldout(const char *fmt)
{
    qid_quant_spec spec = spec_of(fmt);
    qid_error err;
    double e_awq = 0.0, e_rtn = 0.0, e_pq = 0.0;
    for (int k = 0; k < NLIN; k++) {
        const size_t R = lin_rows[k], C = lin_cols[k];
        float *w = copy_w(k), *y = xmalloc(R * C * sizeof(float)), *s = xmalloc(C * sizeof(float));
        qid_awq_input *in = input_of(k);
        const float *ws[1] = {W[k]};
        const size_t rows[1] = {R};
        if (k != OUT && qid_awq_search_scale(in, &spec, NULL, ws, rows, 1, s, NULL, "w", &err)) bail("%s", err.msg);
        if (qid_awq_quantize(in, &spec, NULL, k != OUT ? s : NULL, k != QKV, w, R, C, NULL, NULL, "w", &err))
            bail("%s", err.msg);
        e_awq += heldout_err(k, w);
        if (qid_quant_matrix(&spec, W[k], y, R, C, "w", &err)) bail("%s", err.msg);
        e_rtn += heldout_err(k, y);
        for (size_t r = 0; r < R; r++)
            qid_awq_pseudo_quantize_row(&spec, W[k] + r * C, y + r * C, C);
        e_pq += heldout_err(k, y);
        free(w);
        free(y);
        free(s);
        qid_awq_input_free(in);
    }
    ok(e_awq < e_rtn && e_awq < e_pq,
       "%s: AWQ's held-out output error %.4g is below RTN's (qid's kernel %.4g, the reference's quantizer %.4g)", fmt,
       e_awq, e_rtn, e_pq);
}

static void test_pseudo_quantizer(void)
{
    qid_quant_spec a = spec_of("int4-g4-asym"), s = spec_of("int3-g4-sym");
    const float x[8] = {0.5f, 0.5f, 0.5f, 0.5f, -1.0f, 0.0f, 0.25f, 3.0f};
    float y[8];
    qid_awq_pseudo_quantize_row(&a, x, y, 8);
    /* an all-equal group: scale 1e-5 / 15, zero = clamp(-round(0.5 / scale), 0, 15) = 0: codes clamp at 15 */
    const float sc = 1e-5f / 15.0f;
    ok(y[0] == 15.0f * sc && y[3] == y[0], "asym: an all-equal group saturates at code 15 times 1e-5/15 (%g)",
       (double)y[0]);
    /* [-1, 3]: scale 4/15, zero round(15/4) = 4; 0.25 / scale = 0.9375 -> 1 */
    const float sc2 = 4.0f / 15.0f;
    ok(y[4] == (0.0f - 4.0f) * sc2 && y[5] == 0.0f && y[6] == (5.0f - 4.0f) * sc2 && y[7] == (15.0f - 4.0f) * sc2,
       "asym: [-1, 3] on the 4/15 grid with zero point 4");
    qid_awq_pseudo_quantize_row(&s, x, y, 8);
    /* symmetric 3 bit: scale amax/3, codes -4..3 */
    ok(y[0] == 3.0f * (0.5f / 3.0f) && y[7] == 3.0f && y[4] == -1.0f && y[6] == 0.0f,
       "sym 3-bit: amax/3 scale, 0.25 -> 0 at scale 1 (%g %g %g %g)", (double)y[0], (double)y[7], (double)y[4],
       (double)y[6]);
    const float z[4] = {0, 0, 0, 0};
    qid_awq_pseudo_quantize_row(&s, z, y, 4);
    ok(y[0] == 0.0f && y[3] == 0.0f, "sym: an all-zero group stays zero (scale clamped at 1e-5/3)");
}

/* The 20 losses computed directly: x_mean, the scales as the reference,
 * Q(W s)/s - W, and the output error summed over every row of X. */
static void brute_losses(const float *X, size_t n, const float *Wm, size_t rows, size_t cols,
                         const qid_quant_spec *spec, double *loss)
{
    float *mean = xmalloc(cols * sizeof *mean), *s = xmalloc(cols * sizeof *s), *ws = xmalloc(cols * sizeof *ws),
          *qs = xmalloc(cols * sizeof *qs), *d = xmalloc(rows * cols * sizeof *d);
    for (size_t j = 0; j < cols; j++) {
        double a = 0.0;
        for (size_t t = 0; t < n; t++)
            a += fabs((double)X[t * cols + j]);
        mean[j] = (float)(a / (double)n);
    }
    for (int i = 0; i < 20; i++) {
        float mx = -INFINITY, mn = INFINITY;
        for (size_t j = 0; j < cols; j++) {
            s[j] = fmaxf(powf(mean[j], (float)(i / 20.0)), 1e-4f);
            mx = fmaxf(mx, s[j]);
            mn = fminf(mn, s[j]);
        }
        const float norm = sqrtf(mx * mn);
        for (size_t j = 0; j < cols; j++)
            s[j] = s[j] / norm;
        for (size_t r = 0; r < rows; r++) {
            for (size_t j = 0; j < cols; j++)
                ws[j] = Wm[r * cols + j] * s[j];
            qid_awq_pseudo_quantize_row(spec, ws, qs, cols);
            for (size_t j = 0; j < cols; j++)
                d[r * cols + j] = qs[j] / s[j] - Wm[r * cols + j];
        }
        double e = 0.0;
        for (size_t t = 0; t < n; t++)
            for (size_t r = 0; r < rows; r++) {
                double y = 0.0;
                for (size_t j = 0; j < cols; j++)
                    y += (double)X[t * cols + j] * (double)d[r * cols + j];
                e += y * y;
            }
        loss[i] = e / (double)(n * rows);
    }
    free(mean);
    free(s);
    free(ws);
    free(qs);
    free(d);
}

/* The loss through the Cholesky factor of X^T X, and through X^T X itself
 * when an always-zero input column makes it singular, against the direct sum. */
static void test_loss_paths(void)
{
    const size_t n = 200, cols = 32, rows = 12;
    qid_quant_spec spec = spec_of("int3-g16-asym");
    qid_error err;
    float *X = xmalloc(n * cols * sizeof *X), *Wm = xmalloc(rows * cols * sizeof *Wm), s[32];
    tap_seed(5);
    for (size_t i = 0; i < rows * cols; i++)
        Wm[i] = 0.1f * tap_gauss();
    for (int dead = 0; dead < 2; dead++) {
        for (size_t t = 0; t < n; t++)
            for (size_t j = 0; j < cols; j++)
                X[t * cols + j] = dead && j == 7 ? 0.0f : tap_gauss() * (j % 5 == 0 ? 6.0f : 1.0f);
        qid_awq_input *in = qid_awq_input_create(cols, NULL);
        qid_awq_input_reset(in, 0);
        if (qid_awq_input_add(in, X, n, cols, "x", &err)) bail("%s", err.msg);
        const float *ws[1] = {Wm};
        const size_t rr[1] = {rows};
        qid_awq_stats st;
        int rc = qid_awq_search_scale(in, &spec, NULL, ws, rr, 1, s, &st, "x", &err);
        double want[20], worst = 0.0;
        brute_losses(X, n, Wm, rows, cols, &spec, want);
        for (int i = 0; i < 20; i++)
            worst = fmax(worst, fabs(st.losses[i] - want[i]) / want[i]);
        ok(rc == QID_OK && worst < 1e-9, "%s: the 20 losses equal the direct sum over rows to 1e-9 (%.2e)",
           dead ? "a dead input column (X^T X singular, general product)" : "X^T X definite (Cholesky)", worst);
        qid_awq_input_free(in);
    }
    free(X);
    free(Wm);
}

static void test_errors(void)
{
    qid_error err;
    qid_awq_input *in = qid_awq_input_create(8, NULL);
    qid_awq_input_reset(in, 0);
    float w[16] = {0}, s[8];
    const float *ws[1] = {w};
    const size_t rows[1] = {2};
    qid_quant_spec sp = spec_of("int4-g4-asym");
    int rc = qid_awq_search_scale(in, &sp, NULL, ws, rows, 1, s, NULL, "layers/0/mlp.up.weight", &err);
    ok(rc == QID_E_INVALID && strstr(err.msg, "no calibration rows") && strstr(err.msg, "mlp.up"),
       "no rows added: '%s'", err.msg);
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i;
    x[11] = NAN;
    rc = qid_awq_input_add(in, x, 2, 8, "layers/0/mlp.up.weight", &err);
    ok(rc != QID_OK && strstr(err.msg, "mlp.up") && qid_awq_input_rows(in) == 0,
       "a NaN activation is an error naming the tensor, nothing added: '%s'", err.msg);
    x[11] = 1.0f;
    if (qid_awq_input_add(in, x, 2, 8, "x", &err)) bail("%s", err.msg);
    const char *bad[] = {"int4-g4-mse", "mxfp4", "nf4", "q4_0"};
    for (int i = 0; i < 4; i++) {
        qid_quant_spec b;
        if (qid_quant_parse(bad[i], &b, &err)) continue;
        b.block = bad[i][0] == 'i' ? 4 : b.block;
        rc = qid_awq_search_scale(in, &b, NULL, ws, rows, 1, s, NULL, "t", &err);
        ok(rc == QID_E_INVALID && strstr(err.msg, "AWQ takes integer formats"), "%s is refused: '%s'", bad[i], err.msg);
    }
    qid_quant_spec g3 = spec_of("int4-g3-asym");
    rc = qid_awq_search_scale(in, &g3, NULL, ws, rows, 1, s, NULL, "layers/0/mlp.up.weight", &err);
    ok(rc == QID_E_INVALID && strstr(err.msg, "does not divide row length 8"), "group 3 of a row of 8: '%s'", err.msg);
    w[5] = INFINITY;
    rc = qid_awq_quantize(in, &sp, NULL, NULL, 1, w, 2, 8, NULL, NULL, "layers/0/mlp.up.weight", &err);
    ok(rc == QID_E_INVALID && strstr(err.msg, "non-finite weight") && strstr(err.msg, "[0][5]"),
       "an infinite weight: '%s'", err.msg);
    qid_awq_input_free(in);
}

int main(void)
{
    plan_lazy();
    char *text = tap_read_file(FIX "/fixture.json", NULL);
    cJSON *j = cJSON_Parse(text);
    if (!j) bail("cannot parse " FIX "/fixture.json");
    diag("reference: %s", cJSON_GetObjectItem(j, "reference")->valuestring);
    load_layer(j);
    cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(j, "variants")) test_variant(v);
    test_heldout("int4-g32-asym");
    test_heldout("int3-g32-sym");
    test_heldout("int3-g16-asym");
    test_heldout("int4-g16-sym");
    test_pseudo_quantizer();
    test_loss_paths();
    test_errors();
    for (int k = 0; k < NLIN; k++) {
        free(W[k]);
        free(Xc[k]);
        free(Xt[k]);
    }
    cJSON_Delete(j);
    free(text);
    return 0;
}
