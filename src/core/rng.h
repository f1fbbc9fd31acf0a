/* Deterministic random numbers: xoshiro256** seeded through splitmix64. The state is a plain
 * struct so training can save and restore it for --resume, and each consumer (init, dropout,
 * shuffling) can own an independent stream derived from one --seed. */
#ifndef SF_CORE_RNG_H
#define SF_CORE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} sf_rng;

void sf_rng_seed(sf_rng *r, uint64_t seed);
/* An independent stream for a named purpose: same (seed, stream) -> same sequence. */
void sf_rng_seed_stream(sf_rng *r, uint64_t seed, uint64_t stream);
uint64_t sf_rng_u64(sf_rng *r);
uint32_t sf_rng_below(sf_rng *r, uint32_t n); /* uniform in [0, n), unbiased */
float sf_rng_uniform(sf_rng *r);              /* uniform in [0, 1) with 24 random bits */
float sf_rng_normal(sf_rng *r);               /* standard normal (Box-Muller) */
double sf_rng_gamma(sf_rng *r, double shape); /* Gamma(shape, scale 1), shape > 0 */
double sf_rng_beta(sf_rng *r, double a, double b); /* Beta(a, b), a, b > 0 */
void sf_rng_fill_uniform(sf_rng *r, float *x, long n, float lo, float hi);
void sf_rng_fill_normal(sf_rng *r, float *x, long n, float mean, float std);
void sf_rng_shuffle_i32(sf_rng *r, int32_t *a, long n); /* Fisher-Yates */

#endif
