/* rng.h - the one seeded random generator of qid (xoshiro256**). Every
 * random choice (bootstrap resampling, forests, synthetic corpora, probe
 * directions, test data) draws from it; seeds are logged and stored.
 *
 * Does not: read entropy from the system, or keep global state. */
#ifndef QID_RNG_H
#define QID_RNG_H

#include <stdint.h>

/* xoshiro256** state. Seed with qid_rng_seed; (seed, stream) pairs give
 * independent, reproducible sequences (the bootstrap uses one stream per
 * draw, the forest one per tree, so results do not depend on threading). */
typedef struct qid_rng {
    uint64_t s[4];
} qid_rng;

void qid_rng_seed(qid_rng *rng, uint64_t seed, uint64_t stream);
uint64_t qid_rng_next(qid_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double qid_rng_uniform(qid_rng *rng);
/* Uniform integer in [0, n); n > 0 (unbiased). */
uint64_t qid_rng_below(qid_rng *rng, uint64_t n);
/* Standard normal (Box-Muller; one value per call, no cached state). */
double qid_rng_normal(qid_rng *rng);

#endif
