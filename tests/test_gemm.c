/* sf_gemm (small-size kernels and the packed kernel or cblas behind it), sf_gemm_packed and sf_gemm_blas, each
 * against sf_gemm_ref (plain loops, double accumulation): all four transpose combinations, odd sizes, padded leading
 * dimensions, beta 0 (C garbage/NaN ignored) and beta 1, shapes that cross the packed kernel's blocking edges; and
 * the packed kernel bit-identical at 1 and 2 threads. On x86-64-v4 (AVX-512) CPUs the packed kernel is checked both with its
 * 6x32 and 12x16 AVX-512 kernels (the default there) and without, and the two must give the same bits. sf_gemm_bias gives
 * the bits of the bias copied into C and beta = 1, on every path. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/gemm.h"
#include "kernels/gemm_rows.h"
#include "kernels/multiversion.h"
#include "test_util.h"

static sf_rng rng;

typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *,
                        int);
/* sf_gemm_packed with its AVX-512 kernel turned off (the same as sf_gemm_packed on other CPUs) */
static void packed_no512(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                         int ldb, float beta, float *C, int ldc) {
    const int was = sf_avx512();
    sf_set_avx512(0);
    sf_gemm_packed(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    sf_set_avx512(was);
}

static const gemm_fn impls[] = {sf_gemm, sf_gemm_packed, sf_gemm_blas, packed_no512};
static const char *const impl_names[] = {"sf_gemm", "sf_gemm_packed", "sf_gemm_blas", "sf_gemm_packed (no AVX-512)"};
static int impl;

static void one_case(int ta, int tb, int M, int N, int K, float alpha, float beta, int pad) {
#define AT_LEAST_1(v) ((v) > 1 ? (v) : 1)
    int lda = AT_LEAST_1(ta ? M : K) + pad, ldb = AT_LEAST_1(tb ? K : N) + pad, ldc = AT_LEAST_1(N) + pad;
    long na = (long)(ta ? K : M) * lda, nb = (long)(tb ? N : K) * ldb, nc = (long)M * ldc;
    float *A = malloc(sizeof(float) * (size_t)(na + 1));
    float *B = malloc(sizeof(float) * (size_t)(nb + 1));
    float *C1 = malloc(sizeof(float) * (size_t)(nc + 1));
    float *C2 = malloc(sizeof(float) * (size_t)(nc + 1));
    sf_rng_fill_uniform(&rng, A, na, -1.0f, 1.0f);
    sf_rng_fill_uniform(&rng, B, nb, -1.0f, 1.0f);
    sf_rng_fill_uniform(&rng, C1, nc, -1.0f, 1.0f);
    if (beta == 0.0f)
        for (long i = 0; i < nc; i++) C1[i] = NAN; /* must not be read */
    memcpy(C2, C1, sizeof(float) * (size_t)nc);
    /* the size of the terms summed into each C entry, |alpha| |op(A)| |op(B)| + |beta| |C|: the scale
     * float32 rounding is relative to (|C| itself can cancel to ~0, e.g. K = 1 with beta != 0) */
    float *Aa = malloc(sizeof(float) * (size_t)(na + 1)), *Ba = malloc(sizeof(float) * (size_t)(nb + 1));
    float *Ca = malloc(sizeof(float) * (size_t)(nc + 1));
    for (long i = 0; i < na; i++) Aa[i] = fabsf(A[i]);
    for (long i = 0; i < nb; i++) Ba[i] = fabsf(B[i]);
    for (long i = 0; i < nc; i++) Ca[i] = beta == 0.0f ? 0.0f : fabsf(C1[i]);
    sf_gemm_ref(ta, tb, M, N, K, fabsf(alpha), Aa, lda, Ba, ldb, fabsf(beta), Ca, ldc);
    impls[impl](ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
    sf_gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
    /* compare only the [M,N] part; padding columns must be untouched (equal, or both NaN) */
    double md = 0, mb = 1e-6;
    int pad_ok = 1;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            float a = C1[(long)i * ldc + j], b = C2[(long)i * ldc + j];
            if (j >= N) {
                if (!(a == b || (isnan(a) && isnan(b)))) pad_ok = 0;
                continue;
            }
            double d = fabs((double)a - b);
            if (d > md || d != d) md = d;
            if (Ca[(long)i * ldc + j] > mb) mb = Ca[(long)i * ldc + j];
        }
    double rel = md / mb;
    CHECK_MSG(rel <= 1e-5 && pad_ok, "%s ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g pad=%d rel=%.3g pad_ok=%d",
              impl_names[impl], ta, tb, M, N, K, alpha, beta, pad, rel, pad_ok);
    free(A), free(B), free(C1), free(C2), free(Aa), free(Ba), free(Ca);
}

/* The packed kernel at 1 and 2 threads: bit-identical. */
static void thread_invariance(int ta, int tb, int M, int N, int K) {
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
    float *C1 = malloc(sizeof(float) * (size_t)M * N), *C2 = malloc(sizeof(float) * (size_t)M * N);
    sf_rng_fill_uniform(&rng, A, (long)M * K, -1.0f, 1.0f);
    sf_rng_fill_uniform(&rng, B, (long)K * N, -1.0f, 1.0f);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    sf_gemm_packed(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C1, N);
    omp_set_num_threads(2);
    sf_gemm_packed(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C2, N);
    omp_set_num_threads(saved);
    CHECK_MSG(!memcmp(C1, C2, sizeof(float) * (size_t)M * N), "packed ta=%d tb=%d M=%d N=%d K=%d: 1 vs 2 threads differ",
              ta, tb, M, N, K);
    free(A), free(B), free(C1), free(C2);
}

/* The packed kernel with and without its AVX-512 6x32 kernel: bit-identical (same operations per element). */
static void avx512_identity(int ta, int tb, int M, int N, int K, float alpha, float beta) {
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
    float *C1 = malloc(sizeof(float) * (size_t)M * N), *C2 = malloc(sizeof(float) * (size_t)M * N);
    sf_rng_fill_uniform(&rng, A, (long)M * K, -1.0f, 1.0f);
    sf_rng_fill_uniform(&rng, B, (long)K * N, -1.0f, 1.0f);
    sf_rng_fill_uniform(&rng, C1, (long)M * N, -1.0f, 1.0f);
    memcpy(C2, C1, sizeof(float) * (size_t)M * N);
    sf_gemm_packed(ta, tb, M, N, K, alpha, A, ta ? M : K, B, tb ? K : N, beta, C1, N);
    packed_no512(ta, tb, M, N, K, alpha, A, ta ? M : K, B, tb ? K : N, beta, C2, N);
    CHECK_MSG(!memcmp(C1, C2, sizeof(float) * (size_t)M * N),
              "packed ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g: with and without AVX-512 differ", ta, tb, M, N, K,
              alpha, beta);
    free(A), free(B), free(C1), free(C2);
}

/* sf_gemm_bias (bias added as the packed kernel stores C) against the bias copied into every row
 * of C and sf_gemm with beta = 1: the same bits, padding columns of C untouched. */
static void bias_identity(int ta, int tb, int M, int N, int K, float alpha, int pad) {
    int lda = AT_LEAST_1(ta ? M : K), ldb = AT_LEAST_1(tb ? K : N), ldc = AT_LEAST_1(N) + pad;
    long na = (long)(ta ? K : M) * lda, nb = (long)(tb ? N : K) * ldb, nc = (long)M * ldc;
    float *A = malloc(sizeof(float) * (size_t)(na + 1)), *B = malloc(sizeof(float) * (size_t)(nb + 1));
    float *bias = malloc(sizeof(float) * (size_t)(N + 1));
    float *C1 = malloc(sizeof(float) * (size_t)(nc + 1)), *C2 = malloc(sizeof(float) * (size_t)(nc + 1));
    sf_rng_fill_uniform(&rng, A, na, -1.0f, 1.0f);
    sf_rng_fill_uniform(&rng, B, nb, -1.0f, 1.0f);
    sf_rng_fill_uniform(&rng, bias, N, -1.0f, 1.0f);
    for (long i = 0; i < nc; i++) C1[i] = C2[i] = NAN; /* sf_gemm_bias must not read C */
    for (int i = 0; i < M; i++) memcpy(C2 + (long)i * ldc, bias, sizeof(float) * (size_t)N);
    sf_gemm_bias(ta, tb, M, N, K, alpha, A, lda, B, ldb, bias, C1, ldc);
    sf_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, 1.0f, C2, ldc);
    int same = 1;
    for (long i = 0; i < nc; i++)
        if (memcmp(C1 + i, C2 + i, sizeof(float)) && !(isnan(C1[i]) && isnan(C2[i]))) same = 0;
    CHECK_MSG(same, "sf_gemm_bias ta=%d tb=%d M=%d N=%d K=%d alpha=%g pad=%d (AVX-512 %d): not the bits of "
              "copy + beta 1", ta, tb, M, N, K, alpha, pad, sf_avx512());
    free(A), free(B), free(bias), free(C1), free(C2);
}

/* a * b + acc rounded once (fused) or twice (multiply, then add) */
static float mul_add(float a, float b, float acc, int fused) {
    if (fused) return fmaf(a, b, acc);
    volatile float prod = a * b; /* no contraction */
    return prod + acc;
}

/* The small-problem paths against their summation order written out: one multiply-add chain over
 * k from 0 per element (the packed kernel, which small problems with K <= 256 now take on the
 * calling thread), or, for a Linear forward (op(B) = W^T) with K >= 32, eight lane partials over
 * k = l, l + 8, ..., added ((0+4)+(1+5))+((2+6)+(3+7)). Bitwise, alpha 1 and beta 0 or 1 (C's old
 * value added once). The kernels' multiply-adds are fused where the compiler contracts them (the
 * optimised build) and not in the -O1 sanitizer build, so the whole result must equal one of the
 * two orders, fused or not. Only where the x86-64-v3 (FMA) clones run. The dot kernel's tail (K
 * not a multiple of 8) is left out: GCC's code for it is not a plain in-order chain, and it is the
 * same code as before the blocking changed (bench/gemm_small_hash.c compares builds). */
static void small_path_order(int ta, int tb, int M, int N, int K, float beta) {
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
    float *C = malloc(sizeof(float) * (size_t)M * N), *R[2];
    sf_rng_fill_uniform(&rng, A, (long)M * K, -1.0f, 1.0f);
    sf_rng_fill_uniform(&rng, B, (long)K * N, -1.0f, 1.0f);
    sf_rng_fill_uniform(&rng, C, (long)M * N, -1.0f, 1.0f);
    const int dot = !ta && tb && K >= 32;
    for (int fused = 0; fused < 2; fused++) {
        R[fused] = malloc(sizeof(float) * (size_t)M * N);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float acc = 0.0f;
                const float *a = A + (ta ? i : (long)i * K), *b = B + (tb ? (long)j * K : j);
                const long sa = ta ? M : 1, sb = tb ? 1 : N; /* op(A)[i][k] = a[k sa], op(B)[k][j] = b[k sb] */
                if (dot) {
                    const int K8 = K / 8 * 8;
                    float t[8] = {0};
                    for (int p = 0; p < K8; p++) t[p % 8] = mul_add(a[p], b[p], t[p % 8], fused);
                    acc = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
                } else {
                    for (int p = 0; p < K; p++) acc = mul_add(a[p * sa], b[p * sb], acc, fused);
                }
                R[fused][(long)i * N + j] = beta == 0.0f ? acc : acc + C[(long)i * N + j];
            }
    }
    sf_gemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, beta, C, N);
    const size_t bytes = sizeof(float) * (size_t)M * N;
    CHECK_MSG(!memcmp(C, R[1], bytes) || !memcmp(C, R[0], bytes),
              "small path ta=%d tb=%d M=%d N=%d K=%d beta=%g: not the bits of its summation order", ta, tb, M, N, K,
              beta);
    free(A), free(B), free(C), free(R[0]), free(R[1]);
}

/* sf_gemm_rows (kernels/gemm_rows.h) against sf_gemm_ref within float32 accuracy, in its three
 * modes (plain, + bias, +=), op(A) = A or A^T, padded strides; where its AVX-512 kernel runs and
 * K <= 256, the same bits as sf_gemm (the packed kernel's per-element order). */
static void rows_case(int ta, int M, int N, int K, int mode, int pad) {
    const int lda = (ta ? M : K) + pad + ((ta ? M : K) + pad == 0), ldb = N + pad, ldc = N + pad;
    float *A = malloc(sizeof(float) * (size_t)((ta ? K : M) * lda + 1));
    float *B = malloc(sizeof(float) * (size_t)(K * ldb + 1)), *bias = malloc(sizeof(float) * (size_t)N);
    float *C = malloc(sizeof(float) * (size_t)(M * ldc + 1)), *R = malloc(sizeof(float) * (size_t)(M * ldc + 1));
    float *G = malloc(sizeof(float) * (size_t)(M * ldc + 1));
    sf_rng_fill_normal(&rng, A, (ta ? K : M) * lda + 1, 0, 1);
    sf_rng_fill_normal(&rng, B, K * ldb + 1, 0, 1);
    sf_rng_fill_normal(&rng, bias, N, 0, 1);
    sf_rng_fill_normal(&rng, C, M * ldc + 1, 0, 1);
    memcpy(R, C, sizeof(float) * (size_t)(M * ldc + 1));
    memcpy(G, C, sizeof(float) * (size_t)(M * ldc + 1));
    if (mode == 1) /* bias: the reference gets it copied into C and beta 1 */
        for (int i = 0; i < M; i++) memcpy(R + (long)i * ldc, bias, sizeof(float) * (size_t)N);
    sf_gemm_rows(ta, M, N, K, A, lda, B, ldb, mode == 1 ? bias : NULL, mode == 2, C, ldc);
    sf_gemm_ref(ta, 0, M, N, K, 1.0f, A, lda, B, ldb, mode == 0 ? 0.0f : 1.0f, R, ldc);
    double worst = 0, scale = 1e-6;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            const double d = fabs((double)C[(long)i * ldc + j] - R[(long)i * ldc + j]);
            if (d > worst || d != d) worst = d;
            if (fabs(R[(long)i * ldc + j]) > scale) scale = fabs(R[(long)i * ldc + j]);
        }
    CHECK_MSG(worst / scale <= 1e-5, "gemm_rows ta %d M %d N %d K %d mode %d: rel err %.3g", ta, M, N, K,
              mode, worst / scale);
    if (sf_gemm_rows_fast(N) && K <= 256) {
        if (mode == 1) sf_gemm_bias(ta, 0, M, N, K, 1.0f, A, lda, B, ldb, bias, G, ldc);
        else sf_gemm(ta, 0, M, N, K, 1.0f, A, lda, B, ldb, mode == 2 ? 1.0f : 0.0f, G, ldc);
        int same = 1;
        for (int i = 0; i < M; i++)
            same &= memcmp(C + (long)i * ldc, G + (long)i * ldc, sizeof(float) * (size_t)N) == 0;
        CHECK_MSG(same, "gemm_rows ta %d M %d N %d K %d mode %d: bits differ from sf_gemm", ta, M, N, K, mode);
    }
    free(A), free(B), free(bias), free(C), free(R), free(G);
}

int main(void) {
    sf_rng_seed(&rng, test_seed());
    {
        /* the fused feed-forward's shapes (d 16, d_ff 128, blocks of 256 rows; the kernel takes
         * the N = 128 ones, sf_gemm the rest), N = 64, row counts with every remainder of the
         * 6-row blocks, N the kernel does not take, K = 0 */
        const int rs[][3] = {{256, 128, 16}, {256, 16, 128}, {16, 128, 256}, {128, 16, 256}, {42, 32, 128},
                             {13, 64, 7}, {7, 64, 33}, {9, 128, 5}, {5, 128, 9}, {4, 64, 2}, {8, 128, 1},
                             {11, 64, 300}, {3, 24, 5}, {1, 64, 0}};
        for (int s = 0; s < (int)(sizeof rs / sizeof rs[0]); s++)
            for (int ta = 0; ta < 2; ta++)
                for (int mode = 0; mode < 3; mode++) {
                    rows_case(ta, rs[s][0], rs[s][1], rs[s][2], mode, 0);
                    rows_case(ta, rs[s][0], rs[s][1], rs[s][2], mode, 3);
                }
        printf("gemm_rows: AVX-512 kernel %s\n", sf_gemm_rows_fast(16) ? "on" : "off (sf_gemm)");
    }
    sf_set_blas_threads(1);
    printf("packed kernel clone: %s\n", sf_gemm_packed_path());
    const int sizes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 13, 11}, {64, 33, 129}, {100, 1, 37}, {1, 70, 3}, {5, 9, 0},
                            /* batch-1 PatchTST shapes (small-GEMM kernels), one past the small limit (packed) */
                            {7, 96, 672}, {294, 128, 16}, {294, 16, 128}, {13, 19, 1025}, {300, 128, 40},
                            /* packed-kernel edges: 6x16 micro-tiles, MC 96, NC 256, KC 256 (and tile splitting) */
                            {6, 16, 256}, {97, 257, 257}, {203, 301, 515}, {16, 16, 5000}, {1000, 23, 300},
                            /* op(A) = A^T read in place (lda <= 512) or packed (600), B read in place
                             * (M <= 256) or packed (M > 256), also in K chunks (weight gradients) */
                            {600, 40, 300}, {250, 40, 1100}, {257, 33, 700}, {128, 16, 4100}};
    const int has512 = sf_avx512();
    const int n_impls = (int)(sizeof impls / sizeof impls[0]) - (has512 ? 0 : 1); /* no512 = packed elsewhere */
    for (impl = 0; impl < n_impls; impl++)
        for (int s = 0; s < (int)(sizeof sizes / sizeof sizes[0]); s++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++) {
                    const int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                    one_case(ta, tb, M, N, K, 1.0f, 0.0f, 0);
                    one_case(ta, tb, M, N, K, 1.0f, 1.0f, 0);
                    one_case(ta, tb, M, N, K, 0.5f, 1.0f, 3);
                    one_case(ta, tb, M, N, K, -2.0f, 0.0f, 2);
                    one_case(ta, tb, M, N, K, 1.5f, 0.25f, 1);
                }
    for (int w = has512; w >= 0; w--) { /* with the AVX-512 kernel where the CPU has it, then without */
        const int was = sf_avx512();
        sf_set_avx512(w);
        for (int s = 0; s < (int)(sizeof sizes / sizeof sizes[0]); s++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++) {
                    bias_identity(ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], 1.0f, 0);
                    bias_identity(ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], -0.5f, 3);
                }
        bias_identity(0, 1, 37632, 128, 16, 1.0f, 0); /* PatchTST's fc1 (direct A, packed) */
        bias_identity(0, 1, 2000, 96, 672, 1.0f, 1);  /* several K slices */
        bias_identity(0, 1, 5003, 16, 64, 1.0f, 0);   /* one panel: the 12x16 kernel */
        bias_identity(1, 0, 3001, 48, 300, 1.0f, 2);  /* packed A, a pair and a single panel */
        sf_set_avx512(was);
    }
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            thread_invariance(ta, tb, 389, 530, 601); /* many work units, several K slices */
            thread_invariance(ta, tb, 40, 70, 9000);  /* K cut into chunks (weight-gradient shape) */
        }
#if SF_HAVE_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v3")) {
        /* batch-1 PatchTST (fc1, fc2, qkv, out, head), t2-like and edge shapes, all below the small limit */
        const int small[][3] = {{294, 128, 16}, {168, 16, 128}, {294, 48, 16}, {126, 16, 16}, {7, 96, 672},
                                {16, 5, 32}, {33, 7, 40}, {5, 130, 256}, {3, 3, 1}, {9, 21, 5}, {7, 9, 48}, {2, 3, 64}, {1, 17, 40},
                                /* columns in the lanes (16 at a time, rows in threes, twos and ones), the rest by the dot kernel */
                                {294, 16, 128}, {40, 37, 64}, {17, 48, 40}, {30, 130, 256}, {16, 16, 1024}};
        for (int s = 0; s < (int)(sizeof small / sizeof small[0]); s++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++)
                    for (int w = has512; w >= 0; w--) {
                        const int was = sf_avx512();
                        sf_set_avx512(w);
                        small_path_order(ta, tb, small[s][0], small[s][1], small[s][2], 0.0f);
                        small_path_order(ta, tb, small[s][0], small[s][1], small[s][2], 1.0f);
                        sf_set_avx512(was);
                    }
    } else {
        printf("no x86-64-v3 clone on this CPU: small-path summation order not compared\n");
    }
#endif
    if (has512) {
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                avx512_identity(ta, tb, 389, 530, 601, 1.0f, 0.0f);
                avx512_identity(ta, tb, 97, 257, 257, 0.5f, 1.0f);
                avx512_identity(ta, tb, 294, 48, 16, 1.0f, 1.0f); /* direct (K <= 128) row-major A */
                avx512_identity(ta, tb, 40, 70, 9000, -2.0f, 0.25f);
                /* one 16-column panel (12x16 kernel): read in place, packed, K slices, row edges */
                avx512_identity(ta, tb, 1003, 16, 128, 1.0f, 0.0f);
                avx512_identity(ta, tb, 301, 48, 600, 0.5f, 1.0f);
                avx512_identity(ta, tb, 95, 16, 16, 1.0f, 1.0f);
            }
    } else {
        printf("AVX-512 kernel off (no x86-64-v4 on this CPU, or SF_AVX512=0): not compared\n");
    }
    return test_finish();
}
