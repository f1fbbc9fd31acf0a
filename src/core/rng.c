#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void sf_rng_seed(sf_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

void sf_rng_seed_stream(sf_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = stream * 0xD1B54A32D192ED03ull;
    sf_rng_seed(r, seed ^ splitmix64(&x));
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sf_rng_u64(sf_rng *r) {
    uint64_t *s = r->s;
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

uint32_t sf_rng_below(sf_rng *r, uint32_t n) {
    /* Lemire's multiply-shift with rejection: exact uniformity. */
    uint64_t m = (uint64_t)(uint32_t)(sf_rng_u64(r) >> 32) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t thresh = (uint32_t)(-n) % n;
        while (lo < thresh) {
            m = (uint64_t)(uint32_t)(sf_rng_u64(r) >> 32) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float sf_rng_uniform(sf_rng *r) { return (float)(sf_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float sf_rng_normal(sf_rng *r) {
    double u1 = ((double)(sf_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0,1] */
    double u2 = (double)(sf_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

/* Gamma(shape, 1) by Marsaglia and Tsang (2000); shape < 1 through Gamma(shape + 1) U^(1/shape). */
double sf_rng_gamma(sf_rng *r, double shape) {
    if (shape < 1) {
        double u = ((double)(sf_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0,1] */
        return sf_rng_gamma(r, shape + 1) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = sf_rng_normal(r), v = 1 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = ((double)(sf_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
    }
}

double sf_rng_beta(sf_rng *r, double a, double b) {
    double x = sf_rng_gamma(r, a), y = sf_rng_gamma(r, b);
    return x + y > 0 ? x / (x + y) : 0.5; /* both underflow only for tiny a, b */
}

void sf_rng_fill_uniform(sf_rng *r, float *x, long n, float lo, float hi) {
    for (long i = 0; i < n; i++) x[i] = lo + (hi - lo) * sf_rng_uniform(r);
}

void sf_rng_fill_normal(sf_rng *r, float *x, long n, float mean, float std) {
    for (long i = 0; i < n; i++) x[i] = mean + std * sf_rng_normal(r);
}

void sf_rng_shuffle_i32(sf_rng *r, int32_t *a, long n) {
    for (long i = n - 1; i > 0; i--) {
        long j = (long)sf_rng_below(r, (uint32_t)(i + 1));
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
