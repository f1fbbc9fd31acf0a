/* Kernelized attention with relative positional encoding, computed with FFTs (Luo et al., NeurIPS
 * 2021, "Stable, Fast and Accurate: Kernelized Attention with Relative Positional Encoding").
 *
 * Per batch item b and head h, with non-negative features fq_i, fk_j (M of them per head, from a
 * feature map applied by the caller), values v_j (Dv per head), and positive relative-position
 * weights c_m = exp(bias[h][m + max_T - 1]) for the offset m = j - i in -(max_T-1) .. max_T-1:
 *
 *   den_i = sum_j c_{j-i} (fq_i . fk_j) + eps,  out_i = sum_j c_{j-i} (fq_i . fk_j) v_j / den_i
 *
 * over j < n (n = the sequence's valid length), and j <= i as well when causal (offsets <= 0).
 * eps = SF_RPE_ATTENTION_EPS, as the "linear" mixer uses: it keeps a row whose features see no
 * key mass (a ReLU feature map can give fq_i . fk_j = 0 for all j) at out = 0 instead of 0/0.
 * c is exp(bias) itself (no shift by the maximum, so eps means the same thing whatever the bias);
 * it overflows only for a bias above ~700 (double) or outputs above float range.
 *
 * Algorithm: for every feature a and every value column (plus a column of ones for the
 * denominator) the Toeplitz product y_i = sum_j c_{j-i} fk_j[a] v_j[col] is a linear convolution
 * with the kernel g[i - j] = c_{j-i}; it is embedded in a circulant of size N = the smallest power
 * of two >= 2T and computed with real FFTs (kernels/fft.h) in O(N log N), then contracted with
 * fq_i[a]. Forward does M*(Dv+1) such products (2 real FFTs each); backward 2*M*(Dv+1) (4 FFTs
 * each): dfq needs the same products as forward, dfk and dv the transposed ones (kernel spectrum
 * conjugated), and dbias, a cross-correlation of fq*g with fk*v summed over (a, col), is
 * accumulated in the frequency domain and transformed back once per (b, h). Work is
 * O(B*H*M*Dv*T log T); memory O(workers*(T*(M+Dv) + N) + H*N + B*H*T). The FFTs, accumulators and
 * reductions are in double (the FFT's error is relative to the norm of a whole column, see fft.h).
 *
 * Layout: fq, fk, dfq, dfk are [B, T, H, M] contiguous. v (and dv) are rows of stride ldv floats:
 * head h of token (b, t) at v + (b*T + t)*ldv + h*Dv (so v may sit in a fused qkv buffer); out and
 * dout rows of stride ldo: head h of token (b, t) at out + (b*T + t)*ldo + h*Dv. Only the head
 * columns are read or written. den is [B, H, T] (written by forward as den_i including eps, read
 * by backward). bias and dbias are [H, 2*max_T - 1]; backward *accumulates* into dbias (a
 * parameter gradient) and overwrites dfq, dfk, dv.
 *
 * Padding: lens is NULL (all T tokens valid) or lens[B] with 1 <= lens[b] <= T. Keys j >= n are
 * excluded; query rows i >= n are padding: their out head columns and den are 0, and dfq, dfk, dv
 * rows >= n are 0; padded rows of fq, fk, v, dout are not read.
 *
 * Threads: (b, h) pairs are spread over at most n_workers OpenMP threads; each pair is computed
 * by one thread in a fixed order with its worker's slice of scratch, and the per-pair dbias
 * contributions are summed over b in a fixed order afterwards, so results do not depend on the
 * thread count (or on n_workers). Kernels never allocate: scratch holds
 * sf_rpe_attention_scratch_doubles(shape, n_workers) doubles (the same size serves forward and
 * backward; contents on entry are ignored, nothing is kept between calls). The *_ref functions are
 * plain O(T^2) loops with double accumulators (they allocate and ignore scratch); tests compare the
 * two. */
#ifndef SF_KERNELS_RPE_ATTENTION_H
#define SF_KERNELS_RPE_ATTENTION_H

#include <stddef.h>

#define SF_RPE_ATTENTION_EPS 1e-6

typedef struct {
    int B, T, H;
    int M;      /* features per head */
    int Dv;     /* value columns per head */
    int max_T;  /* bias has 2*max_T - 1 offsets per head; T <= max_T */
    int causal; /* 1: query i sees keys j <= i only */
    const int *lens;
    int algo;   /* SF_RPE_AUTO (0), SF_RPE_FFT or SF_RPE_DIRECT; see below */
} sf_rpe_shape;

/* Algorithm: SF_RPE_FFT is the O(T log T) path above. For short sequences the FFTs cost more than
 * the sums themselves (PatchTST's 42 tokens, 4 features per head: ~6x more), so SF_RPE_DIRECT
 * computes the same sums directly, O(T^2 (M + Dv)) per (b, h), with the same threading and double
 * accumulators. SF_RPE_AUTO picks the one with fewer estimated operations
 * (sf_rpe_attention_uses_fft); tests force each. */
enum { SF_RPE_AUTO = 0, SF_RPE_FFT = 1, SF_RPE_DIRECT = 2 };
int sf_rpe_attention_uses_fft(const sf_rpe_shape *s);

size_t sf_rpe_attention_scratch_doubles(const sf_rpe_shape *s, int n_workers);

void sf_rpe_attention_forward(float *out, int ldo, float *den, const float *fq, const float *fk,
                              const float *v, int ldv, const float *bias, const sf_rpe_shape *s,
                              double *scratch, int n_workers);

/* out and den are what forward wrote for the same inputs. */
void sf_rpe_attention_backward(float *dfq, float *dfk, float *dv, float *dbias, const float *dout,
                               int ldo, const float *out, const float *den, const float *fq,
                               const float *fk, const float *v, int ldv, const float *bias,
                               const sf_rpe_shape *s, double *scratch, int n_workers);

/* Plain references with the same signatures; the backward reference recomputes den and out itself
 * (in double) and ignores the out and den arguments (which may be NULL). */
void sf_rpe_attention_forward_ref(float *out, int ldo, float *den, const float *fq,
                                  const float *fk, const float *v, int ldv, const float *bias,
                                  const sf_rpe_shape *s, double *scratch, int n_workers);
void sf_rpe_attention_backward_ref(float *dfq, float *dfk, float *dv, float *dbias,
                                   const float *dout, int ldo, const float *out, const float *den,
                                   const float *fq, const float *fk, const float *v, int ldv,
                                   const float *bias, const sf_rpe_shape *s, double *scratch,
                                   int n_workers);

#endif
