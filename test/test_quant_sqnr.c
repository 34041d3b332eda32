/* test_quant_sqnr.c - SQNR of quantized weights (quant_sqnr.c): known cases,
 * the infinite cases, and the model accumulator (sums of energies). */
#include "quant.h"
#include "tap.h"

#include <math.h>
#include <stddef.h>

int main(void)
{
    plan(7);

    /* |W|^2 = 9 + 16 = 25, |W - Q|^2 = 1: 10 log10 25 = 13.979400086720377 */
    float w[2] = {3.0f, 4.0f}, q[2] = {3.0f, 3.0f};
    is_double(13.979400086720377, qid_sqnr_db(w, q, 2), 1e-12, "SQNR of (3,4) vs (3,3) is 10 log10 25 dB (tol 1e-12)");

    /* Every element off by 1/8 on a unit vector of 64: 64 / (64 / 64) -> 10 log10 64. */
    float a[64], b[64];
    for (int i = 0; i < 64; i++) {
        a[i] = i % 2 ? -1.0f : 1.0f;
        b[i] = a[i] + (i % 3 ? 0.125f : -0.125f);
    }
    is_double(10.0 * log10(64.0), qid_sqnr_db(a, b, 64), 1e-12,
              "constant error 1/8 on +-1 weights: 18.06 dB (tol 1e-12)");

    ok(qid_sqnr_db(w, w, 2) == INFINITY && qid_sqnr_db(w, w, 0) == INFINITY,
       "exact reconstruction and an empty tensor give +inf");
    float zero[2] = {0.0f, 0.0f};
    ok(qid_sqnr_db(zero, q, 2) == -INFINITY && qid_sqnr_db(zero, zero, 2) == INFINITY,
       "zero signal with noise gives -inf; all-zero exact gives +inf");

    /* The model accumulator sums energies: two tensors == their concatenation. */
    float cat_w[66], cat_q[66];
    for (int i = 0; i < 2; i++) {
        cat_w[i] = w[i];
        cat_q[i] = q[i];
    }
    for (int i = 0; i < 64; i++) {
        cat_w[2 + i] = a[i];
        cat_q[2 + i] = b[i];
    }
    qid_sqnr_acc acc, other, merged;
    qid_sqnr_acc_init(&acc);
    qid_sqnr_acc_add(&acc, w, q, 2);
    qid_sqnr_acc_add(&acc, a, b, 64);
    /* (25 + 64) / (1 + 1) */
    is_double(10.0 * log10(89.0 / 2.0), qid_sqnr_acc_db(&acc), 1e-12,
              "accumulated over two tensors: 10 log10(89 / 2) dB (tol 1e-12)");
    qid_sqnr_acc_init(&merged);
    qid_sqnr_acc_init(&other);
    qid_sqnr_acc_add(&merged, w, q, 2);
    qid_sqnr_acc_add(&other, a, b, 64);
    qid_sqnr_acc_merge(&merged, &other);
    ok(merged.signal == acc.signal && merged.noise == acc.noise && merged.count == 66 && acc.count == 66,
       "merging per-rank accumulators equals adding in sequence (exact)");
    is_double(qid_sqnr_db(cat_w, cat_q, 66), qid_sqnr_acc_db(&acc), 1e-12,
              "accumulator equals the SQNR of the concatenated weights (tol 1e-12)");
    return 0;
}
