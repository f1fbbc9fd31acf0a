/* Linear attention over given features: the part of kernelized attention that does not care
 * which feature map made its inputs (ReLU, FAVOR+, cosFormer's re-weighted ReLU; elu+1 has its
 * own fused kernel in linear_attention.h). Per batch b and head h, with non-negative features
 * fq_i = phi(q_i), fk_j = phi(k_j) of width M (M need not equal the head width Dv of v):
 *
 *   S_i = sum_j fk_j v_j^T (M x Dv),  z_i = sum_j fk_j,  s_i = fq_i . z_i
 *   out_i = (fq_i^T S_i) / N(s_i)
 *   N(s) = s + eps        (SF_FA_NORM_ADD: Katharopoulos et al.; eps 0 is allowed when every
 *                          feature is strictly positive, as FAVOR+'s are)
 *   N(s) = max(s, eps)    (SF_FA_NORM_CLAMP: cosFormer's clamp_min; its gradient passes where
 *                          s >= eps, as torch.clamp_min's does)
 * with the sums over all valid j (non-causal) or over j <= i (causal).
 *
 * Layout: fq and fk are rows of stride ldf floats, head h of token t of batch b at
 * (b*T + t)*ldf + h*M (a packed [B, T, H, M] buffer has ldf = H*M); v rows have stride ldv with
 * head h at h*Dv (so v may sit in a fused qkv buffer); out and dout rows have stride ldo, head h
 * at h*Dv. dfq/dfk use the layout of fq/fk, dv the layout of v. Only head columns are touched.
 * Outputs must not overlap inputs.
 *
 * Padding: lens is NULL or lens[B] with 1 <= lens[b] <= T. Keys j >= lens[b] take no part;
 * query rows i >= lens[b] get out = 0 and contribute to no gradient; dfq/dfk/dv rows >= lens[b]
 * are 0. Padded input rows are never read. The valid part equals the unpadded computation.
 *
 * Algorithm: the O(M*Dv) state recurrence, forward order; backward recomputes it forwards (for
 * dfq and the per-token normaliser terms) and runs the reverse recurrence for dfk, dv (causal),
 * or uses the totals (non-causal). Work O(B*H*T*M*Dv), memory O(B*H*(M*Dv + T)). OpenMP over
 * (b, h); each pair is done by one thread in a fixed order, so results do not depend on the
 * thread count. Float accumulators. The _ref functions are the explicit masked quadratic form
 * with double accumulators (they allocate; for tests). */
#ifndef SF_KERNELS_FEATURE_ATTENTION_H
#define SF_KERNELS_FEATURE_ATTENTION_H

#include <stddef.h>

typedef enum { SF_FA_NORM_ADD = 0, SF_FA_NORM_CLAMP = 1 } sf_fa_norm;

/* The shape and normaliser of one call. */
typedef struct {
    int B, T, H;
    int M;  /* features per head */
    int Dv; /* value (and output) width per head */
    int causal;
    sf_fa_norm norm;
    float eps;
} sf_fa_shape;

/* Forward and backward calls with less work than this (B*H*T*M*Dv) stay on the calling thread. */
#define SF_FEATURE_ATTENTION_PAR_MIN 32768L

/* Floats of scratch that forward and backward need (the same size serves both; contents on
 * entry are ignored and nothing is kept between the calls). */
size_t sf_feature_attention_scratch_floats(const sf_fa_shape *s);

void sf_feature_attention_forward(const sf_fa_shape *s, float *out, int ldo, const float *fq,
                                  const float *fk, int ldf, const float *v, int ldv,
                                  float *scratch, const int *lens);

/* Gradients of sum(dout * out) with respect to fq, fk, v (overwritten, not accumulated). */
void sf_feature_attention_backward(const sf_fa_shape *s, float *dfq, float *dfk, float *dv,
                                   const float *dout, int ldo, const float *fq, const float *fk,
                                   int ldf, const float *v, int ldv, float *scratch,
                                   const int *lens);

/* Streaming (causal) step of one sequence; the caller owns the state: S as [H][M][Dv] then z as
 * [H][M], zero at the start of a sequence. fq, fk are [H*M], v and out [H*Dv]. state_in may
 * equal state_out. T steps from a zero state reproduce the causal forward. */
size_t sf_feature_attention_state_floats(int H, int M, int Dv);
void sf_feature_attention_step(const sf_fa_shape *s, float *out, const float *fq,
                               const float *fk, const float *v, const float *state_in,
                               float *state_out);

/* Plain references (same signatures; scratch ignored, may be NULL). */
void sf_feature_attention_forward_ref(const sf_fa_shape *s, float *out, int ldo, const float *fq,
                                      const float *fk, int ldf, const float *v, int ldv,
                                      float *scratch, const int *lens);
void sf_feature_attention_backward_ref(const sf_fa_shape *s, float *dfq, float *dfk, float *dv,
                                       const float *dout, int ldo, const float *fq,
                                       const float *fk, int ldf, const float *v, int ldv,
                                       float *scratch, const int *lens);

#endif
