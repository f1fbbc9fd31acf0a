/* Feature maps for linear attention (feature_attention.h consumes their output), each with its
 * backward. All act on rows of stride ld (so inputs may sit in a fused qkv buffer); outputs
 * must not overlap inputs. Float arithmetic; libm exp/sin/cos.
 *
 * relu:      phi(x) = max(x, 0), elementwise (M = Dh). Its derivative at 0 is taken as 0.
 *
 * FAVOR+:    Performer's positive random features for the softmax kernel (Choromanski et al.
 *            2021), as google-research performer/fast_attention/tensorflow/fast_attention.py
 *            (softmax_kernel_transformation) computes them. For one head of a sequence: x [n, D]
 *            rows, a projection W [M, D] (sf_favor_draw_projection), rho = M^-1/2:
 *              xt = D^-1/4 x            (with l2: xt = D^-1/4 x / max(|x|, 1e-12), the "stable"
 *                                        normalised variant of the RPE paper, Luo et al. 2021)
 *              u_m = W_m . xt,  phi_m = rho (exp(u_m - |xt|^2/2 - c) + 1e-6)
 *            so that E[phi(q) . phi(k)] ~ exp(q.k/sqrt(D)) exp(-c_q - c_k) (the 1e-6 aside): the
 *            softmax kernel up to a factor that cancels between numerator and normaliser. The
 *            stabiliser c (SF_FAVOR_*):
 *              QUERY       c = max_m u_m of the row (as the official code);
 *              KEY         c = max of u over all n rows and all features (official: over
 *                          features and positions); the caller passes the valid rows only, so
 *                          padding never enters it;
 *              KEY_CAUSAL  c = max(0, max_m |W_m|^2/2 - SF_FAVOR_CAUSAL_HEADROOM): a max over
 *                          positions would read the future, so causal keys use a bound that
 *                          depends on W alone. It is safe: u_m - |xt|^2/2 <= |W_m||xt| -
 *                          |xt|^2/2 <= |W_m|^2/2 for every x, so every exponent is <= the
 *                          headroom (exp <= e^30 ~ 1e13) and sums over a sequence stay finite.
 *                          It is exact as far as the official stabiliser is: one constant shared
 *                          by all keys of the sequence, so it cancels between numerator and
 *                          normaliser except against the 1e-6 term. For the usual head sizes
 *                          (|W_m|^2 ~ chi^2(D) with D <= 32) it is 0: no stabiliser at all.
 *            The gradient flows through the max (as through the official code's reduce_max;
 *            lucidrains' .detach() would drop it): c cancels between numerator and normaliser
 *            except against the 1e-6 term, so a detached max is not the derivative of the
 *            function computed (finite differences disagreed by up to 13%).
 *
 * cosFormer: (Qin et al. 2022, OpenNLPLab/cosFormer cosformer.py) ReLU features re-weighted by
 *            position: with theta_i = pi/2 * i / len for the 1-based position i,
 *              phi(x_i) = [relu(x_i) sin(theta_i), relu(x_i) cos(theta_i)]   (M = 2 Dh)
 *            so that phi(q_i) . phi(k_j) = relu(q_i) . relu(k_j) cos(pi/2 (i - j) / len).
 *            len is the sequence length the official code uses (max(source, target length));
 *            the caller chooses it (the mixer: docs in layers/cosformer.c). */
#ifndef SF_KERNELS_FEATURE_MAPS_H
#define SF_KERNELS_FEATURE_MAPS_H

#include "core/rng.h"

/* relu: rows r < n, columns [0, D): phi[r*ldphi + a] = max(x[r*ldx + a], 0). */
void sf_relu_features_forward(float *phi, int ldphi, const float *x, int ldx, int n, int D);
/* dx = dphi * (x > 0) (overwrites dx). */
void sf_relu_features_backward(float *dx, int lddx, const float *dphi, int lddphi,
                               const float *x, int ldx, int n, int D);

/* ---- FAVOR+ ---- */
#define SF_FAVOR_STABILIZER 1e-6f
#define SF_FAVOR_CAUSAL_HEADROOM 30.0f
typedef enum { SF_FAVOR_QUERY = 0, SF_FAVOR_KEY = 1, SF_FAVOR_KEY_CAUSAL = 2 } sf_favor_role;

/* W [M, D]: ceil(M/D) blocks of D rows, each the transposed Q of the QR factorisation of a D x D
 * standard Gaussian matrix (orthonormal rows; the last block keeps its first M mod D rows), then
 * row m scaled by the norm of a fresh standard Gaussian D-vector (chi(D) distributed), so each
 * row is marginally N(0, I_D) while rows within a block are orthogonal. Draw order as the
 * official create_projection_matrix: the blocks, then the M norms. Double arithmetic. */
void sf_favor_draw_projection(float *W, int M, int D, sf_rng *rng);

/* One head of one sequence: x [n, D] rows of stride ldx -> phi [n, M] rows of stride ldphi. */
void sf_favor_features_forward(float *phi, int ldphi, const float *x, int ldx, int n, int D,
                               const float *W, int M, sf_favor_role role, int l2);
/* dx [n, D] (stride lddx, overwritten) from dphi [n, M]; recomputes the features from x. */
void sf_favor_features_backward(float *dx, int lddx, const float *dphi, int lddphi,
                                const float *x, int ldx, int n, int D, const float *W, int M,
                                sf_favor_role role, int l2);
/* The plain references: scalar row-by-row loops over libm's expf. The fast versions above
 * vectorise over the M features and use sf_expf_fast; tests compare the two. */
void sf_favor_features_forward_ref(float *phi, int ldphi, const float *x, int ldx, int n, int D,
                                   const float *W, int M, sf_favor_role role, int l2);
void sf_favor_features_backward_ref(float *dx, int lddx, const float *dphi, int lddphi,
                                    const float *x, int ldx, int n, int D, const float *W, int M,
                                    sf_favor_role role, int l2);

/* ---- cosFormer ---- */
/* Rows r < n of H heads of width D (head h of row r at x[r*ldx + h*D]) at 1-based positions
 * pos0 + r + 1 -> phi rows with head h at phi[r*ldphi + h*2D]: sin part then cos part.
 * Requires 0 <= pos0 and pos0 + n <= len. */
void sf_cosformer_features_forward(float *phi, int ldphi, const float *x, int ldx, int n, int H,
                                   int D, int pos0, int len);
void sf_cosformer_features_backward(float *dx, int lddx, const float *dphi, int lddphi,
                                    const float *x, int ldx, int n, int H, int D, int pos0,
                                    int len);

#endif
