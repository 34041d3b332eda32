/* test_safetensors.c - the safetensors header parser on valid files and on
 * every kind of malformed header the import must reject, plus SHA-256
 * against FIPS 180-2 vectors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "sha256.h"
#include "tap.h"

static uint8_t buf[1 << 16];

/* Builds "len(json) json data" with data_len zero bytes; returns total size. */
static size_t make(const char *json, size_t data_len)
{
    size_t n = strlen(json);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, json, n);
    memset(buf + 8 + n, 0, data_len);
    return 8 + n + data_len;
}

/* Parses json with data_len data bytes; expects failure containing want. */
static void rejects(const char *json, size_t data_len, const char *want, const char *what)
{
    size_t size = make(json, data_len);
    qid_st_file f;
    qid_error err;
    int rc = qid_st_parse(buf, size, size, "x.safetensors", &f, &err);
    if (!ok(rc == QID_E_FORMAT && f.n == 0 && f.tensors == NULL, "%s is rejected", what)) diag("rc %d", rc);
    like(err.msg, want, "%s: message", what);
}

static void sha_is(const char *input, size_t reps, const char *want, const char *what)
{
    qid_sha256 h;
    uint8_t d[32];
    char hex[65];
    qid_sha256_init(&h);
    for (size_t i = 0; i < reps; i++)
        qid_sha256_update(&h, input, strlen(input));
    qid_sha256_final(&h, d);
    qid_sha256_hex(d, hex);
    is_string(want, hex, "sha256 %s", what);
}

int main(void)
{
    plan(63);
    qid_st_file f;
    qid_error err;

    /* a valid file: two tensors tiling 40 bytes, with space padding */
    const char *good =
        "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"F32\",\"shape\":[4],"
        "\"data_offsets\":[24,40]},\"a\":{\"dtype\":\"BF16\",\"shape\":[3,4],\"data_offsets\":[0,24]}}   ";
    size_t size = make(good, 40);
    is_int(QID_OK, qid_st_parse(buf, size, size, "good", &f, &err), "valid header parses");
    is_int(2, (long long)f.n, "two tensors, metadata skipped");
    const qid_st_tensor *a = qid_st_find(&f, "a");
    ok(a && a->dtype == QID_ST_BF16 && a->ndim == 2 && a->shape[0] == 3 && a->shape[1] == 4, "tensor a: BF16 [3,4]");
    ok(a && a->begin == 0 && a->end == 24, "tensor a offsets [0,24)");
    is_int((long long)(8 + strlen(good)), (long long)f.data_offset, "data section starts after the header");
    ok(qid_st_find(&f, "c") == NULL, "absent tensor not found");
    qid_st_free(&f);

    /* empty file list and scalar tensors are legal */
    size = make("{}", 0);
    is_int(QID_OK, qid_st_parse(buf, size, size, "empty", &f, &err), "empty header parses");
    qid_st_free(&f);
    size = make("{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}", 8);
    is_int(QID_OK, qid_st_parse(buf, size, size, "scalar", &f, &err), "scalar tensor parses");
    qid_st_free(&f);

    /* the file itself */
    size = make(good, 40);
    {
        qid_st_file g;
        qid_error e2;
        is_int(QID_E_FORMAT, qid_st_parse(buf, size - 4, size - 4, "cut", &g, &e2), "truncated file rejected");
        like(e2.msg, "lies outside the 36-byte data section (file truncated?)", "truncated: message");
        like(e2.msg, "invalid safetensors file 'cut'", "message names the file");
    }
    {
        qid_st_file g;
        qid_error e2;
        is_int(QID_E_FORMAT, qid_st_parse(buf, 5, 5, "tiny", &g, &e2), "5-byte file rejected");
        like(e2.msg, "shorter than the 8-byte header length", "5-byte file: message");
    }
    buf[0] = 0xff;
    buf[1] = 0xff;
    {
        qid_st_file g;
        qid_error e2;
        is_int(QID_E_FORMAT, qid_st_parse(buf, size, size, "long", &g, &e2), "header length beyond the file rejected");
        like(e2.msg, "header length 65535 is larger than the file", "header length: message");
    }

    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, "header is not valid JSON",
            "unterminated JSON");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}xyz", 4,
            "trailing bytes after the header JSON", "trailing garbage");
    rejects("[1,2]", 0, "header does not start with '{'", "non-object header");
    rejects("{\"a\":{\"dtype\":\"F13\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype 'F13'",
            "unknown dtype");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20,
            "shape needs 24 bytes of F32 but data_offsets span 20 bytes", "shape/byte-count mismatch");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
            "\"data_offsets\":[4,12]}}",
            12, "overlaps tensor 'a'", "overlapping offsets");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
            "\"data_offsets\":[12,20]}}",
            20, "gap of 4 bytes in the data section before tensor 'b'", "gap between tensors");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1000,1008]}}", 8, "lies outside the 8-byte data",
            "offsets outside the data");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12,
            "4 bytes after the last tensor are not described", "undescribed trailing data");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
            "shape[0] is not a non-negative integer", "negative dimension");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "shape[0] is not a non-negative",
            "fractional dimension");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
            "shape needs more than", "shape product overflow");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "are reversed", "reversed offsets");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "is not two non-negative integers",
            "one offset");
    rejects("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
            "\"data_offsets\":[4,8]}}",
            8, "tensor 'a' appears twice", "duplicate tensor name");
    rejects("{\"__metadata__\":{\"x\":1}}", 0, "'__metadata__' value 'x' is not a string", "non-string metadata");
    rejects("{\"a\":[1,2]}", 0, "entry 'a' is not an object", "entry not an object");
    rejects("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "has no string 'dtype'", "missing dtype");

    /* open + read from disk */
    const char *dir = tap_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    size = make(good, 40);
    for (int i = 0; i < 40; i++)
        buf[8 + strlen(good) + (size_t)i] = (uint8_t)i;
    tap_write_file(path, buf, size);
    is_int(QID_OK, qid_st_open(path, &f, &err), "qid_st_open reads a file");
    uint8_t got[16] = {0};
    const qid_st_tensor *b = qid_st_find(&f, "b");
    is_int(QID_OK, qid_st_read(&f, b, got, &err), "qid_st_read reads tensor b");
    ok(got[0] == 24 && got[15] == 39, "tensor b bytes are bytes 24..39 of the data section");
    qid_st_free(&f);
    tap_write_file(path, buf, 20);
    is_int(QID_E_FORMAT, qid_st_open(path, &f, &err), "qid_st_open rejects a file cut inside the header");
    like(err.msg, "is larger than the file", "cut header: message");
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    is_int(QID_E_IO, qid_st_open(path, &f, &err), "missing file is an I/O error");
    like(err.msg, "cannot open", "missing file: message");

    sha_is("abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "of 'abc'");
    sha_is("", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "of ''");
    sha_is("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
           "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", "of the 448-bit FIPS message");
    /* the SHA-NI path (where the CPU has it) equals the portable one on
     * every length and split of random data */
    {
        static uint8_t rnd[4099];
        uint64_t x = 12345;
        for (size_t i = 0; i < sizeof rnd; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            rnd[i] = (uint8_t)(x >> 56);
        }
        int differ = 0, fast = 0;
        for (size_t len = 0; len < sizeof rnd; len += 1 + len / 3) {
            uint8_t d[2][32];
            for (int k = 0; k < 2; k++) {
                fast |= qid_sha256_use_portable(k);
                qid_sha256 h;
                qid_sha256_init(&h);
                qid_sha256_update(&h, rnd, len / 3); /* split updates */
                qid_sha256_update(&h, rnd + len / 3, len - len / 3);
                qid_sha256_final(&h, d[k]);
            }
            differ += memcmp(d[0], d[1], 32) != 0;
        }
        qid_sha256_use_portable(0);
        is_int(0, differ, "SHA-NI (%s here) and portable digests agree on random data", fast ? "used" : "absent");
    }
    sha_is("a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "of a million 'a'");
    return 0;
}
