/* Rotary position embedding (RoFormer, Su et al. 2021), in the "rotate half" layout of GPT-NeoX
 * and LLaMA: within each head of width Dh (even), feature i < Dh/2 is paired with i + Dh/2 and the
 * pair is rotated by the angle p * base^(-2i/Dh) for the token's absolute position p:
 *   x'_i = x_i cos - x_{i+Dh/2} sin,   x'_{i+Dh/2} = x_{i+Dh/2} cos + x_i sin.
 * Then q'_m . k'_n depends on the positions only through m - n. Angles, cos and sin are computed
 * in double and rounded once.
 *
 * x: rows of stride ld floats (token t of batch b at x + (b*T + t)*ld), the H*Dh head columns of
 * each row rotated in place; token t has position pos_offset + t. inverse = 1 rotates by -angle:
 * the transpose, which maps the gradient of the rotated tensor to the gradient of the input. */
#ifndef SF_KERNELS_ROPE_H
#define SF_KERNELS_ROPE_H

void sf_rope_rotate(float *x, long ld, int B, int T, int H, int Dh, int pos_offset, float base,
                    int inverse);

#endif
