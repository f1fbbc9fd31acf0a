/* MemoryFormer's hashed lookup table (Ding et al., NeurIPS 2024, "MemoryFormer: Minimize
 * Transformer Computation by Removing Fully-Connected Layers"; code C0-Design/MemoryFormer,
 * memory_module/memory.py and compute_code_score/kernel.py), without a hashing projection (the
 * released configs' remove_projection: the chunks of x are hashed directly).
 *
 * Each input row z [K*tau] is split into K chunks z_k [tau]. Chunk k's sign bits (z >= 0 -> 1, the
 * first element the most significant bit, as the reference's bin2dec) give the bucket h_k in
 * [0, 2^tau), and
 *
 *   y = sum_k p_k * T_k[h_k] + bias,      T [K, 2^tau, dout], bias [dout]
 *
 * where p_k is the probability of the chosen bucket under a softmax over all 2^tau buckets with
 * logits <z_k, s_b> (s_b in {-1, +1}^tau the bucket's sign vector). It factorises:
 *   score "paper": p = prod_i sigma(2|z_i|) = 1 / prod_i (1 + exp(-2|z_i|))
 *   score "code":  p = ||z_k||_1 / prod_i (1 + exp(-2|z_i|))   (the released code's score)
 * Gradients: d T_k[h_k] += p_k dy (sparse: only the K chosen rows of a token), d bias += dy, and
 * through p only (the bucket is piecewise constant in z):
 *   paper: dz_i = g_k p_k * 2 sgn(z_i) (1 - sigma(2|z_i|)),  g_k = <dy, T_k[h_k]>
 *   code:  dz_i = g_k sgn(z_i) (P + L P * 2 (1 - sigma(2|z_i|))),  P = the paper's p, L = ||z_k||_1
 * with sgn(z) = +1 for z >= 0 (the bit's side; the gradient is not defined on a sign change).
 *
 * Layout: z [N, K*tau] row-major; code [N, K] (int32), score [N, K] (saved by forward for
 * backward); y, dy [N, dout]; dz [N, K*tau] is OVERWRITTEN; dtables, dbias ACCUMULATE (+=).
 * touched [K * 2^tau] (may be NULL): backward sets touched[k * 2^tau + h] = 1 for every row it
 * adds a gradient to (a lazy optimizer updates only those rows).
 *
 * Fast kernels: forward OpenMP over tokens (gather-and-scale rows, vectorised over dout);
 * backward dz over tokens, dtables over tables k (each thread owns whole tables, so accumulation
 * is race-free and in token order, independent of the thread count). The *_ref functions compute
 * p from the explicit softmax over all 2^tau bucket logits in double (and its gradient from the
 * softmax Jacobian), an independent check of the closed forms above. */
#ifndef SF_KERNELS_LUT_H
#define SF_KERNELS_LUT_H

#include <stdint.h>

#define SF_LUT_MAX_TAU 16

typedef enum { SF_LUT_SCORE_PAPER = 0, SF_LUT_SCORE_CODE = 1 } sf_lut_score;

void sf_lut_forward(float *y, int32_t *code, float *score, const float *z, const float *tables,
                    const float *bias, long N, int K, int tau, int dout, sf_lut_score sm);
void sf_lut_backward(float *dz, float *dtables, float *dbias, unsigned char *touched,
                     const float *dy, const float *z, const int32_t *code, const float *score,
                     const float *tables, long N, int K, int tau, int dout, sf_lut_score sm);

void sf_lut_forward_ref(float *y, int32_t *code, float *score, const float *z, const float *tables,
                        const float *bias, long N, int K, int tau, int dout, sf_lut_score sm);
/* Does not read code or score (recomputes them). */
void sf_lut_backward_ref(float *dz, float *dtables, float *dbias, const float *dy, const float *z,
                         const float *tables, long N, int K, int tau, int dout, sf_lut_score sm);

#endif
