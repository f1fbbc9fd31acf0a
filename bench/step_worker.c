/* One side of bench/step_ab.py: the ETTh1 PatchTST model of bench/run.sh (random inputs, the
 * bench_patchtst set-up), kept in memory and driven by lines on stdin, so that two builds can be
 * timed alternately, a fraction of a second each, while the other waits on its pipe. Commands:
 *   train S   S training steps (forward, MSE, backward, AdamW) -> "ms <per step>"
 *   b1 N      N batch-1 forward calls -> "ms <median per call>"
 *   sum       checksum of a batch eval forward (equal for two builds that keep the bits, after
 *             the same commands) -> "sum <value>"
 *   quit
 * Usage: step_worker [--threads N (2)] [--batch N (128)] [--mlp-fuse auto|always|never] (the
 * last for bench/ffn_step_ab.sh; libraries from before d9586b4 reject it). Set up by patchtst_setup.h, which uses
 * only long-standing library calls, so bench/step_ab.sh can build it against an older commit's
 * library too. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_args.h"
#include "bench_clock.h"
#include "patchtst_setup.h"

int main(int argc, char **argv) {
    int threads = 2, batch = 128;
    const char *mlp_fuse = NULL;
    for (int i = 1; i < argc; i += 2) {
        if (bench_flag_lacks_value(argc, argv, i, "step_worker")) return 2;
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mlp-fuse")) mlp_fuse = argv[i + 1];
        else {
            fprintf(stderr, "usage: step_worker [--threads N] [--batch N] [--mlp-fuse F]\n");
            return 2;
        }
    }
    if (threads < 1 || batch < 1) {
        fprintf(stderr, "step_worker: --threads and --batch must be >= 1\n");
        return 2;
    }
    omp_set_num_threads(threads);
    bench_patchtst_setup B;
    if (bench_patchtst_init_fuse(&B, "step_worker", batch, NULL, NULL, mlp_fuse)) return 1;
    char line[64];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        int n = 0;
        if (sscanf(line, "train %d", &n) == 1 && n > 0) {
            const double t = wall_seconds();
            for (int s = 0; s < n; s++) bench_patchtst_step(&B, batch);
            printf("ms %.4f\n", (wall_seconds() - t) * 1e3 / n);
        } else if (sscanf(line, "b1 %d", &n) == 1 && n > 0) {
            double *lat = malloc((size_t)n * sizeof(double));
            for (int r = 0; r < n; r++) {
                const double t = wall_seconds();
                sf_model_forward(&B.m, B.x, B.out, 1, 0, NULL);
                lat[r] = (wall_seconds() - t) * 1e3;
            }
            qsort(lat, (size_t)n, sizeof *lat, cmp_double);
            printf("ms %.5f\n", n % 2 ? lat[n / 2] : 0.5 * (lat[n / 2 - 1] + lat[n / 2]));
            free(lat);
        } else if (!strncmp(line, "sum", 3)) {
            sf_model_forward(&B.m, B.x, B.out, batch, 0, NULL);
            double sum = 0;
            for (long i = 0; i < B.ny; i++) sum += (double)B.out[i] * (double)(1 + i % 13);
            printf("sum %.17g\n", sum);
        } else if (!strncmp(line, "quit", 4)) {
            break;
        } else {
            printf("error: unknown command\n");
        }
    }
    bench_patchtst_free(&B);
    return 0;
}
