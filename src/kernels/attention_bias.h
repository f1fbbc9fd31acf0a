/* Softmax attention with an additive relative-position bias on the logits (the hook T5's
 * relative attention bias needs): per batch b and head h,
 *
 *   S_ij = scale * q_i . k_j + bias[h, j - i],   P = softmax_rows(S) (causal: j <= i), O = P V,
 *
 * bias of head h and offset r = j - i at bias[h * bias_ld + bias_center + r] (the caller's table
 * covers every offset that occurs: -(T-1) .. T-1, or .. 0 when causal). Layout, padding (lens)
 * and the lse output as kernels/attention.h (q, k, v rows of stride ld, o and dout of stride ldo,
 * lse [B, H, T]); padded queries give 0 and contribute nothing, padded keys are never attended.
 *
 * Memory O(T) (one online-softmax pass per query row, nothing T x T), time O(T^2 Dh). Forward is
 * OpenMP over (b, h, query); backward over heads h (each thread owns head h's columns of dq, dk,
 * dv and its row of dbias), so results do not depend on the thread count. The tiled kernel of
 * kernels/attention.h stays the fast path without a bias; this one is plain and vectorises only
 * over Dh. backward OVERWRITES dq, dk, dv head columns and ACCUMULATES into dbias.
 * The *_ref functions materialise S and P in double (they allocate), for tests. */
#ifndef SF_KERNELS_ATTENTION_BIAS_H
#define SF_KERNELS_ATTENTION_BIAS_H

/* T5's _relative_position_bucket (mesh-tensorflow / HF T5Attention) for offset rel = key
 * position - query position: bidirectional splits the buckets between the two directions
 * (rel > 0 in the upper half); |rel| below max_exact = buckets/2 gets its own bucket, larger
 * distances share logarithmically wider buckets up to max_distance, beyond which the last bucket.
 * Causal (bidirectional 0): positive offsets (the future) fall in bucket 0 as in T5. The log is
 * taken in double (T5 uses float32; see docs/config.md). */
int sf_t5_bucket(int rel, int bidirectional, int num_buckets, int max_distance);

void sf_attention_bias_forward(float *o, int ldo, float *lse, const float *q, const float *k,
                               const float *v, int ld, int B, int T, int H, int Dh, float scale,
                               int causal, const int *lens, const float *bias, int bias_ld,
                               int bias_center);
void sf_attention_bias_backward(float *dq, float *dk, float *dv, float *dbias, const float *dout,
                                int ldo, const float *o, const float *lse, const float *q,
                                const float *k, const float *v, int ld, int B, int T, int H,
                                int Dh, float scale, int causal, const int *lens,
                                const float *bias, int bias_ld, int bias_center);
/* One decoding step: the query at position n_keys - 1 against n_keys cached keys/values (the
 * layout of sf_attention_step); the bias of key j is bias[h * bias_ld + bias_center + j -
 * (n_keys - 1)]. */
void sf_attention_bias_step(float *o, const float *q, const float *kcache, const float *vcache,
                            int n_keys, int H, int Dh, float scale, const float *bias,
                            int bias_ld, int bias_center);

void sf_attention_bias_forward_ref(float *o, int ldo, float *lse, const float *q, const float *k,
                                   const float *v, int ld, int B, int T, int H, int Dh,
                                   float scale, int causal, const int *lens, const float *bias,
                                   int bias_ld, int bias_center);
/* Does not read o or lse. */
void sf_attention_bias_backward_ref(float *dq, float *dk, float *dv, float *dbias,
                                    const float *dout, int ldo, const float *q, const float *k,
                                    const float *v, int ld, int B, int T, int H, int Dh,
                                    float scale, int causal, const int *lens, const float *bias,
                                    int bias_ld, int bias_center);

#endif
