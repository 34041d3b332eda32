/* rng.c - qid's one seeded generator: xoshiro256** seeded through
 * splitmix64, with independent streams per (seed, stream) pair so parallel
 * work (bootstrap draws, trees, ranks) is reproducible whatever the thread
 * or rank count. No rand() anywhere in qid (docs/style.md). */
#include "rng.h"

#include <math.h>

#include "error.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void qid_rng_seed(qid_rng *rng, uint64_t seed, uint64_t stream)
{
    /* Mix the stream in through a second splitmix so (seed, stream) and
     * (seed + 1, stream - 1) do not collide. */
    uint64_t x = seed;
    uint64_t y = splitmix64(&x) ^ (stream * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull);
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&y);
    if (!(rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3])) rng->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t qid_rng_next(qid_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double qid_rng_uniform(qid_rng *rng) { return (double)(qid_rng_next(rng) >> 11) * 0x1.0p-53; }

uint64_t qid_rng_below(qid_rng *rng, uint64_t n)
{
    QID_CHECK(n > 0, "empty range");
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* accept [0, limit) */
    for (;;) {
        uint64_t v = qid_rng_next(rng);
        if (v < limit) return v % n;
    }
}

double qid_rng_normal(qid_rng *rng)
{
    /* Box-Muller; u1 in (0, 1] so log is finite. The second value is not
     * cached (the state stays a plain xoshiro state). */
    double u1 = 1.0 - qid_rng_uniform(rng);
    double u2 = qid_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
