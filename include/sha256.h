/* sha256.h - SHA-256 (FIPS 180-4) for source-file and tensor hashes.
 *
 * qid records the SHA-256 of every imported file (it equals the Hugging Face
 * hub's LFS oid of a safetensors file, so a user can check a download) and of
 * every checkpoint's tensor bytes (to spot duplicated checkpoints).
 * Does not: read files (callers stream bytes in). */
#ifndef QID_SHA256_H
#define QID_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct qid_sha256 {
    uint32_t state[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t fill;
} qid_sha256;

void qid_sha256_init(qid_sha256 *h);
void qid_sha256_update(qid_sha256 *h, const void *data, size_t len);
/* Writes the 32-byte digest; h must be re-initialised before reuse. */
void qid_sha256_final(qid_sha256 *h, uint8_t out[32]);
/* 64 lower-case hex digits and a NUL. */
void qid_sha256_hex(const uint8_t digest[32], char hex[65]);

/* Chooses the portable compression function (on = 1) or the CPU's SHA
 * instructions where present (on = 0; the default unless QID_NO_SHA_NI is
 * set). Returns 1 when the SHA instructions are now in use. For tests. */
int qid_sha256_use_portable(int on);

#endif
