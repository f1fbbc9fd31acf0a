/* kernels/tile_gemm.h, the register-blocked tile products inside the tiled attention kernels:
 * every row count 1..20 (6-row blocks and the 4-, 2- and 1-row remainders), column counts with
 * 16-wide, 8-wide and scalar parts, A read in place and transposed, accumulate 0 and 1, against a
 * double reference (relative to sum |a||b|), and bit for bit against the same product done one row
 * at a time (each element is summed in the same order whatever the blocking). Both the portable
 * build and, where the CPU has them, an AVX2+FMA build of the same header. The seed is printed. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/tile_gemm.h"
#include "test_util.h"

typedef void (*tile_fn)(int, int, int, const float *, long, long, const float *, long, float *,
                        long, int);

static void tile_portable(int m, int n, int k, const float *A, long a_rs, long a_ks,
                          const float *B, long b_ks, float *C, long c_rs, int acc) {
    sf_tile_gemm(m, n, k, A, a_rs, a_ks, B, b_ks, C, c_rs, acc);
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HAVE_AVX2_BUILD 1
__attribute__((target("avx2,fma"), optimize("fp-contract=fast"))) static void tile_avx2(
    int m, int n, int k, const float *A, long a_rs, long a_ks, const float *B, long b_ks, float *C,
    long c_rs, int acc) {
    sf_tile_gemm(m, n, k, A, a_rs, a_ks, B, b_ks, C, c_rs, acc);
}
#else
#define HAVE_AVX2_BUILD 0
#endif

static sf_rng rng;
static double worst;

static void one_case(tile_fn f, int m, int n, int k, int transA, int acc) {
    /* A is m x k; stored [m][k+1] or transposed [k][m+3] (padded strides) */
    const long a_rs = transA ? 1 : k + 1, a_ks = transA ? m + 3 : 1;
    const long na = transA ? (long)k * (m + 3) : (long)m * (k + 1);
    const long b_ks = n + 5, c_rs = n + 2;
    float *A = malloc(sizeof(float) * (size_t)(na + 1)), *B = malloc(sizeof(float) * (size_t)(k * b_ks + 1));
    float *C = malloc(sizeof(float) * (size_t)(m * c_rs + 1)), *Crow = malloc(sizeof(float) * (size_t)(m * c_rs + 1));
    sf_rng_fill_uniform(&rng, A, na, -1.0f, 1.0f);
    sf_rng_fill_uniform(&rng, B, k * b_ks, -1.0f, 1.0f);
    sf_rng_fill_uniform(&rng, C, m * c_rs, -1.0f, 1.0f);
    memcpy(Crow, C, sizeof(float) * (size_t)(m * c_rs));
    double *ref = malloc(sizeof(double) * (size_t)(m * n)), *scale = malloc(sizeof(double) * (size_t)(m * n));
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) {
            double s = acc ? C[r * c_rs + j] : 0.0, a = acc ? fabs(C[r * c_rs + j]) : 0.0;
            for (int p = 0; p < k; p++) {
                const double x = A[r * a_rs + p * a_ks], y = B[p * b_ks + j];
                s += x * y;
                a += fabs(x * y);
            }
            ref[r * n + j] = s;
            scale[r * n + j] = a;
        }
    f(m, n, k, A, a_rs, a_ks, B, b_ks, C, c_rs, acc);
    for (int r = 0; r < m; r++) f(1, n, k, A + r * a_rs, a_rs, a_ks, B, b_ks, Crow + r * c_rs, c_rs, acc);
    double err = 0;
    int same = 1;
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) {
            const double e = fabs(C[r * c_rs + j] - ref[r * n + j]) / (scale[r * n + j] + 1e-30);
            if (e > err || e != e) err = e;
            same &= memcmp(&C[r * c_rs + j], &Crow[r * c_rs + j], sizeof(float)) == 0;
        }
    if (err > worst) worst = err;
    /* k terms rounded in float32: k * 2^-24 of sum |a b| at most (k <= 70 here: 4.2e-6) */
    CHECK_MSG(err <= k * 6e-8 + 1e-7, "m %d n %d k %d transA %d acc %d: rel err %.3g", m, n, k,
              transA, acc, err);
    CHECK_MSG(same, "m %d n %d k %d transA %d acc %d: blocked != row by row", m, n, k, transA, acc);
    free(A), free(B), free(C), free(Crow), free(ref), free(scale);
}

static void all_cases(tile_fn f) {
    static const int ns[] = {1, 7, 8, 9, 16, 24, 31, 32, 40, 64};
    static const int ks[] = {1, 3, 32, 64, 70};
    for (int m = 1; m <= 20; m++)
        for (int in = 0; in < 10; in++)
            for (int ik = 0; ik < 5; ik++)
                one_case(f, m, ns[in], ks[ik], (m + in + ik) % 2, (m + ik) % 3 == 0);
    one_case(f, 64, 32, 32, 0, 0); /* the Dh 32 attention tiles */
    one_case(f, 32, 32, 64, 1, 1);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    all_cases(tile_portable);
    printf("portable: worst relative error %.3g\n", worst);
#if HAVE_AVX2_BUILD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        worst = 0;
        all_cases(tile_avx2);
        printf("avx2+fma: worst relative error %.3g\n", worst);
    } else {
        printf("avx2+fma: not run (CPU lacks it)\n");
    }
#endif
    return test_finish();
}
