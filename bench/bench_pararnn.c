/* ParaRNN benchmark: the gru_diag token mixer (hidden 256 = d_model, 2 heads, the reference's
 * init, batch 1) forward + backward at L = 1k, 4k, 16k, 64k, three ways, in one run:
 *   newton    the mixer with solver newton: input projection by one GEMM, Newton iterations
 *             (parallel over chunks of the sequence), the parallel transposed backward solve,
 *             weight gradients by GEMMs;
 *   seq-gemm  the mixer with solver sequential: the same GEMMs, the recurrence and its BPTT one
 *             step at a time (the best sequential loop: the input projection precomputed);
 *   seq-step  a per-step loop that also does the input work per step: u_t = x_t B + b by matvec
 *             inside the forward loop; the backward is the same BPTT followed by a per-step dx_t
 *             matvec and rank-1 dB update.
 * Reports each time, the Newton iterations and final residual (and whether it fell back), the
 * Newton output's distance from the sequential one, and the ratios seq-gemm / newton and
 * seq-step / newton. Threads: each count in --threads (default "2,1") for everything (OpenMP and
 * OpenBLAS); the sequential recurrences use one thread whatever the count (batch 1).
 * --profile adds, per row, the kernels alone on the same inputs (best of --reps): the input GEMM,
 * the sequential recurrence, the Newton solve's parallel passes without any linear solve (initial
 * guess + one residual evaluation), the whole Newton solve, one chunked linear solve, and the
 * parallel and sequential backward recurrences: where the Newton path's time goes.
 *   bench_pararnn [--lens 1024,4096,16384,65536] [--threads 2,1] [--reps N] [--iters 3] [--tol 1e-5]
 *                 [--profile] [--clock wall|cpu] */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blocks/block.h"
#include "config/options.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "kernels/pararnn.h"
#include "layers/layer.h"
#include "layers/mixers.h"
#include "layers/pararnn_mixer.h"

/* Wall time by default; --clock cpu: process CPU time (with --threads 1 the work done, which a
 * machine shared with other jobs does not inflate; with more threads it sums them) */
static clockid_t which_clock = CLOCK_MONOTONIC;

static double now(void) {
    struct timespec ts;
    clock_gettime(which_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The 1-minute load average: the machine these numbers come from is shared, so say how busy it was. */
static double loadavg(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c) break;
        s = c + 1;
    }
    return n;
}

typedef struct {
    sf_mixer *m;
    sf_params ps;
    sf_arena arena;
    unsigned char *saved;
} mixer_box;

static void box_make(mixer_box *b, const char *opts_json, int d, int T) {
    cJSON *raw = cJSON_Parse(opts_json), *norm = cJSON_CreateObject();
    SF_ASSERT(sf_options_normalize(raw, sf_mixer_gru_diag.info.opts, sf_mixer_gru_diag.info.n_opts, "bench",
                                   (const char *const[]){"kind", NULL}, norm) == SF_OK);
    sf_mixer_args a = {.d_model = d, .max_T = T, .opts = norm};
    b->m = sf_mixer_create(&sf_mixer_gru_diag, &a);
    SF_ASSERT(b->m);
    cJSON_Delete(raw);
    cJSON_Delete(norm);
    sf_params_init(&b->ps);
    b->m->ops->declare(b->m, &b->ps, "m");
    sf_params_alloc(&b->ps);
    b->saved = sf_calloc(b->ps.saved_bytes + 64, 1);
    sf_arena plan;
    sf_arena_init_plan(&plan);
    sf_ctx pc = {.arena = &plan, .training = 1, .keep = 1, .B = 1, .T = T, .saved = b->saved};
    b->m->ops->forward(b->m, &pc, NULL, NULL);
    b->m->ops->backward(b->m, &pc, NULL, NULL);
    sf_arena_alloc(&b->arena, plan.peak);
}

static void box_free(mixer_box *b) {
    sf_arena_free(&b->arena);
    sf_mixer_destroy(b->m);
    sf_params_free(&b->ps);
    free(b->saved);
}

/* forward + backward through the mixer API; times in t[0] (forward), t[1] (backward) */
static void box_run(mixer_box *b, int T, const float *x, const float *dy, float *y, float *dx, double *t,
                    sf_newton_stats *st) {
    sf_arena_reset_to(&b->arena, 0);
    sf_ctx c = {.arena = &b->arena, .training = 1, .keep = 1, .B = 1, .T = T, .saved = b->saved};
    double t0 = now();
    b->m->ops->forward(b->m, &c, x, y);
    double t1 = now();
    b->m->ops->backward(b->m, &c, dy, dx);
    t[0] = t1 - t0;
    t[1] = now() - t1;
    if (st && !sf_pararnn_stats(b->m, &c, st)) memset(st, 0, sizeof *st);
}

/* The per-step baseline on the parameters of `p` (A, B, b read by name). */
typedef struct {
    const float *A, *Bw, *b;
    float *dA, *dB, *db;
} gru_params;

static gru_params params_of(sf_params *ps) {
    gru_params g;
    int iA = sf_params_find(ps, "m.A"), iB = sf_params_find(ps, "m.B"), ib = sf_params_find(ps, "m.b");
    SF_ASSERT(iA >= 0 && iB >= 0 && ib >= 0);
    g.A = ps->data + ps->p[iA].offset, g.Bw = ps->data + ps->p[iB].offset, g.b = ps->data + ps->p[ib].offset;
    g.dA = ps->grad + ps->p[iA].offset, g.dB = ps->grad + ps->p[iB].offset, g.db = ps->grad + ps->p[ib].offset;
    return g;
}

static void perstep_run(const gru_params *g, int d, int N, int H, int T, const float *x, const float *dy,
                        float *y, float *dx, float *u, float *s, float *du, float *work, double *t) {
    const int hi = d / H, hs = N / H;
    sf_diag_cell c = {SF_CELL_GRU_DIAG, N, g->A, NULL};
    double t0 = now();
    for (int tt = 0; tt < T; tt++) {
        const float *xt = x + (size_t)tt * d;
        float *ut = u + (size_t)tt * 3 * N;
        memcpy(ut, g->b, (size_t)3 * N * sizeof(float));
        for (int h = 0; h < H; h++)
            for (int gg = 0; gg < 3; gg++)
                sf_gemm(0, 0, 1, hs, hi, 1.0f, xt + h * hi, d, g->Bw + (size_t)h * hi * 3 * hs + gg * hs, 3 * hs,
                        1.0f, ut + gg * N + h * hs, 3 * N);
        sf_diag_cell_step(&c, tt ? s + (size_t)(tt - 1) * N : NULL, ut, s + (size_t)tt * N);
    }
    memcpy(y, s, (size_t)T * N * sizeof(float));
    double t1 = now();
    sf_diag_rnn_backward(&c, 1, T, u, s, dy, du, g->dA, NULL, NULL, 0, work);
    for (int tt = 0; tt < T; tt++) {
        const float *xt = x + (size_t)tt * d, *dut = du + (size_t)tt * 3 * N;
        float *dxt = dx + (size_t)tt * d;
        for (int j = 0; j < 3 * N; j++) g->db[j] += dut[j];
        for (int h = 0; h < H; h++)
            for (int gg = 0; gg < 3; gg++) {
                sf_gemm(0, 1, 1, hi, hs, 1.0f, dut + gg * N + h * hs, 3 * N, g->Bw + (size_t)h * hi * 3 * hs + gg * hs,
                        3 * hs, gg ? 1.0f : 0.0f, dxt + h * hi, d);
                sf_gemm(1, 0, hi, hs, 1, 1.0f, xt + h * hi, d, dut + gg * N + h * hs, 3 * N, 1.0f,
                        g->dB + (size_t)h * hi * 3 * hs + gg * hs, 3 * hs);
            }
    }
    t[0] = t1 - t0;
    t[1] = now() - t1;
}

/* u [T, 3N] = x B + b, as the mixer's input projection (one GEMM per head and gate) */
static void input_gemm(const gru_params *g, int d, int N, int H, int T, const float *x, float *u) {
    const int hi = d / H, hs = N / H;
    for (int t = 0; t < T; t++) memcpy(u + (size_t)t * 3 * N, g->b, (size_t)3 * N * sizeof(float));
    for (int h = 0; h < H; h++)
        for (int gg = 0; gg < 3; gg++)
            sf_gemm(0, 0, T, hs, hi, 1.0f, x + h * hi, d, g->Bw + (size_t)h * hi * 3 * hs + gg * hs, 3 * hs,
                    1.0f, u + gg * N + h * hs, 3 * N);
}

#define BEST(var, stmt)                                                                            \
    do {                                                                                           \
        for (int r_ = 0; r_ < reps; r_++) {                                                        \
            double t0_ = now();                                                                    \
            stmt;                                                                                  \
            double e_ = now() - t0_;                                                               \
            if (e_ < var) var = e_;                                                                \
        }                                                                                          \
    } while (0)

/* The Newton path's kernels one by one (see the header comment). */
static void profile_row(const gru_params *g, int d, int N, int H, int T, int thr, int reps, int iters,
                        float tol, const float *x, const float *dy) {
    sf_diag_cell c = {SF_CELL_GRU_DIAG, N, g->A, NULL};
    float *u = sf_malloc((size_t)T * 3 * N * 4), *s = sf_malloc((size_t)T * N * 4);
    float *du = sf_malloc((size_t)T * 3 * N * 4), *da = sf_calloc((size_t)3 * N, 4);
    float *work = sf_malloc(sf_diag_rnn_work_floats(&c, 1, T) * 4);
    float *A = sf_malloc((size_t)T * N * 4), *r = sf_malloc((size_t)T * N * 4), *y = sf_malloc((size_t)T * N * 4);
    float *lw = sf_malloc(sf_linrec_work_floats(N, 0, thr) * 4);
    for (long i = 0; i < (long)T * N; i++) A[i] = 0.9f, r[i] = 0.01f;
    double tg = 1e30, tq = 1e30, te = 1e30, tn = 1e30, tl = 1e30, tbp = 1e30, tbs = 1e30;
    sf_newton_stats st;
    BEST(tg, input_gemm(g, d, N, H, T, x, u));
    BEST(tq, sf_diag_rnn_sequential(&c, 1, T, u, s, NULL));
    BEST(te, sf_diag_rnn_newton(&c, 1, T, u, s, NULL, 0, INFINITY, work, &st));
    BEST(tn, sf_diag_rnn_newton(&c, 1, T, u, s, NULL, iters, tol, work, &st));
    BEST(tl, sf_linrec_solve(T, N, 0, 0, A, r, y, thr, lw));
    BEST(tbp, sf_diag_rnn_backward(&c, 1, T, u, s, dy, du, da, NULL, NULL, 1, work));
    BEST(tbs, sf_diag_rnn_backward(&c, 1, T, u, s, dy, du, da, NULL, NULL, 0, work));
    double per_iter = st.iters ? (tn - te) / st.iters : 0;
    printf("  profile thr %d L %d (ms): input gemm %.1f | sequential recurrence %.1f | newton: guess + 1 "
           "residual pass %.1f, whole solve %.1f (%d iters: %.1f per iter = residual+Jacobian pass + linear "
           "solve; one linear solve alone %.1f) = %.1fx the sequential recurrence | backward recurrence: "
           "parallel %.1f, sequential %.1f\n",
           thr, T, tg * 1e3, tq * 1e3, te * 1e3, tn * 1e3, st.iters, per_iter * 1e3, tl * 1e3, tn / tq,
           tbp * 1e3, tbs * 1e3);
    fflush(stdout);
    free(u), free(s), free(du), free(da), free(work), free(A), free(r), free(y), free(lw);
}

int main(int argc, char **argv) {
    int lens[16] = {1024, 4096, 16384, 65536}, n_lens = 4, threads[8] = {2, 1}, n_threads = 2, reps = 1;
    int iters = 3, profile = 0;
    float tol = 1e-5f;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--lens") && i + 1 < argc) n_lens = parse_list(argv[++i], lens, 16);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) n_threads = parse_list(argv[++i], threads, 8);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tol") && i + 1 < argc) tol = (float)atof(argv[++i]);
        else if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (!strcmp(argv[i], "--clock") && i + 1 < argc)
            which_clock = strcmp(argv[++i], "cpu") ? CLOCK_MONOTONIC : CLOCK_PROCESS_CPUTIME_ID;
        else {
            fprintf(stderr, "usage: bench_pararnn [--lens L,L..] [--threads n,n..] [--reps N] [--iters K] [--tol F] [--profile] [--clock wall|cpu]\n");
            return 2;
        }
    }
    const int d = 256, N = 256, H = 2;
    char opts_newton[160], opts_seq[160];
    snprintf(opts_newton, sizeof opts_newton, "{\"heads\":%d,\"solver\":\"newton\",\"newton_iters\":%d,\"newton_tol\":%g}",
             H, iters, (double)tol);
    snprintf(opts_seq, sizeof opts_seq, "{\"heads\":%d,\"solver\":\"sequential\"}", H);
    printf("gru_diag d=hidden=%d heads=%d batch 1, forward+backward %s seconds (best of %d); newton_iters %d, "
           "newton_tol %g; load average %.2f at start (cores: %d)\n", d, H,
           which_clock == CLOCK_MONOTONIC ? "wall" : "process CPU", reps, iters, (double)tol, loadavg(),
           omp_get_num_procs());
    printf("%3s %6s | %8s %8s %8s | %8s %8s %8s | %8s %8s %8s | %5s %9s %3s %9s | %8s %8s\n", "thr", "L",
           "new.fwd", "new.bwd", "newton", "sg.fwd", "sg.bwd", "seq-gemm", "ss.fwd", "ss.bwd", "seq-step", "iters",
           "residual", "fb", "|y-yseq|", "sg/new", "ss/new");
    for (int ti = 0; ti < n_threads; ti++) {
        omp_set_num_threads(threads[ti]);
        sf_set_blas_threads(threads[ti]);
        for (int li = 0; li < n_lens; li++) {
            const int T = lens[li];
            sf_rng rng;
            sf_rng_seed(&rng, 5150);
            mixer_box bn, bs;
            box_make(&bn, opts_newton, d, T);
            box_make(&bs, opts_seq, d, T);
            sf_rng r1, r2;
            sf_rng_seed(&r1, 7), sf_rng_seed(&r2, 7);
            bn.m->ops->init(bn.m, &r1);
            bs.m->ops->init(bs.m, &r2); /* same weights */
            float *x = sf_malloc((size_t)T * d * 4), *dy = sf_malloc((size_t)T * d * 4);
            float *y1 = sf_malloc((size_t)T * d * 4), *y2 = sf_malloc((size_t)T * d * 4);
            float *dx = sf_malloc((size_t)T * d * 4);
            sf_rng_fill_normal(&rng, x, (long)T * d, 0, 1);
            sf_rng_fill_normal(&rng, dy, (long)T * d, 0, 1);
            double tn[2] = {1e30, 1e30}, tsg[2] = {1e30, 1e30}, tss[2] = {1e30, 1e30}, t[2];
            sf_newton_stats st;
            for (int r = 0; r < reps; r++) {
                box_run(&bn, T, x, dy, y1, dx, t, &st);
                if (t[0] + t[1] < tn[0] + tn[1]) tn[0] = t[0], tn[1] = t[1];
                box_run(&bs, T, x, dy, y2, dx, t, NULL);
                if (t[0] + t[1] < tsg[0] + tsg[1]) tsg[0] = t[0], tsg[1] = t[1];
            }
            double ydiff = 0;
            for (long i = 0; i < (long)T * d; i++) ydiff = fmax(ydiff, fabs((double)y1[i] - y2[i]));
            box_free(&bn);
            /* per-step baseline on the sequential box's parameters */
            {
                gru_params g = params_of(&bs.ps);
                sf_diag_cell c = {SF_CELL_GRU_DIAG, N, g.A, NULL};
                float *u = sf_malloc((size_t)T * 3 * N * 4), *s = sf_malloc((size_t)T * N * 4);
                float *du = sf_malloc((size_t)T * 3 * N * 4);
                float *work = sf_malloc(sf_diag_rnn_work_floats(&c, 1, T) * 4);
                for (int r = 0; r < reps; r++) {
                    perstep_run(&g, d, N, H, T, x, dy, y1, dx, u, s, du, work, t);
                    if (t[0] + t[1] < tss[0] + tss[1]) tss[0] = t[0], tss[1] = t[1];
                }
                free(u), free(s), free(du), free(work);
            }
            gru_params gp = params_of(&bs.ps);
            double n_tot = tn[0] + tn[1], sg_tot = tsg[0] + tsg[1], ss_tot = tss[0] + tss[1];
            printf("%3d %6d | %8.3f %8.3f %8.3f | %8.3f %8.3f %8.3f | %8.3f %8.3f %8.3f | %5d %9.2e %3d %9.2e | "
                   "%7.2fx %7.2fx\n",
                   threads[ti], T, tn[0], tn[1], n_tot, tsg[0], tsg[1], sg_tot, tss[0], tss[1], ss_tot, st.iters,
                   (double)st.residual, st.fallback, ydiff, sg_tot / n_tot, ss_tot / n_tot);
            fflush(stdout);
            if (profile) profile_row(&gp, d, N, H, T, threads[ti], reps, iters, tol, x, dy);
            box_free(&bs);
            free(x), free(dy), free(y1), free(y2), free(dx);
        }
    }
    printf("load average %.2f at the end\n", loadavg());
    return 0;
}
