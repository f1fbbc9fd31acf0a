/* Optional per-operation wall-time profile (issue #11 target 7): where a training step or a
 * forward call spends its time, by operation category.
 *
 * Off by default; sf_profile_enable(1) (the benches do it for SF_PROFILE=1 or --profile) turns it
 * on. When off, each instrumented call costs one load and one predictable branch. Times are
 * *exclusive*: a GEMM inside an attention call counts as GEMM, not attention. Only calls made
 * outside OpenMP parallel regions are timed (inside one, the time goes to the enclosing timed
 * call); the profile is one process-wide table, so profile one model at a time. */
#ifndef SF_CORE_PROFILE_H
#define SF_CORE_PROFILE_H

#include <stdio.h>

typedef enum {
    SF_PROF_GEMM,
    SF_PROF_ATTENTION,
    SF_PROF_NORMS,
    SF_PROF_ACTIVATIONS,
    SF_PROF_FFN, /* the fused feed-forward kernel (kernels/ffn.c): its GEMMs and activation */
    SF_PROF_DROPOUT,
    SF_PROF_OPTIMIZER,
    SF_PROF_DATA, /* batch assembly and the loss (the caller times these) */
    SF_PROF_N
} sf_prof_cat;

extern int sf_profile_on;

void sf_profile_enable(int on);
void sf_profile_reset(void);
/* Exclusive seconds accumulated in a category since the last reset. */
double sf_profile_seconds(sf_prof_cat cat);
const char *sf_profile_name(sf_prof_cat cat);
/* Prints the table: one row per category plus "other" = total_s - sum, as ms per call of the
 * profiled unit (`units` steps or calls) and % of total_s. */
void sf_profile_print(FILE *f, const char *title, double total_s, int units);

double sf_profile_begin_(void);
void sf_profile_end_(sf_prof_cat cat, double t0);

/* Time one statement: SF_PROF(SF_PROF_GEMM, gemm_dispatch(...)); */
#define SF_PROF(cat, ...)                                                       \
    do {                                                                        \
        double sf_prof_t0_ = sf_profile_on ? sf_profile_begin_() : -1.0;        \
        __VA_ARGS__;                                                            \
        if (sf_prof_t0_ >= 0.0) sf_profile_end_((cat), sf_prof_t0_);            \
    } while (0)

#endif
