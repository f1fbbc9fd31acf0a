/* The few LAPACK routines seqformer calls (double precision, column-major), declared here
 * because Debian's liblapack-dev ships no C header. Linked from the system LAPACK (the
 * liblapack.so.3 alternative: reference LAPACK or OpenBLAS's copy).
 *
 * The trailing size_t arguments are the hidden lengths of the Fortran CHARACTER arguments
 * (gfortran ABI); passing them explicitly keeps the calls well defined. */
#ifndef SF_KERNELS_LAPACK_H
#define SF_KERNELS_LAPACK_H

#include <stddef.h>

/* Cholesky factorisation A = L L^T (uplo "L"): info > 0 when A is not positive definite. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
/* Solve A X = B with the factor from dpotrf_. */
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info, size_t uplo_len);
/* Inverse of A from its Cholesky factor (the uplo triangle only). */
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
/* Triangular solve op(A) X = B. */
void dtrtrs_(const char *uplo, const char *trans, const char *diag, const int *n, const int *nrhs,
             const double *a, const int *lda, double *b, const int *ldb, int *info, size_t uplo_len,
             size_t trans_len, size_t diag_len);

#endif
