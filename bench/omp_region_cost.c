/* What an OpenMP parallel region costs when it runs on one thread (src/core/parallel.h): the time
 * per `#pragma omp parallel if (0)` and `parallel for if (0)` region, outside any region and nested
 * in a 2-thread one, after a 2-thread team exists (as in seqformer, which uses both cores).
 * Built with the project: ./build/omp_region_cost
 * (`strace -c -f` on it shows the futex calls each region makes). */
#include <omp.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile int sink;

int main(void) {
    const int n = 200000;
    omp_set_num_threads(2);
#pragma omp parallel
    sink++; /* the 2-thread team now exists */
    double t = now();
    for (int i = 0; i < n; i++) {
#pragma omp parallel if (0)
        sink++;
    }
    printf("parallel if (0), outside any region: %.3f us per region\n", (now() - t) / n * 1e6);
    t = now();
#pragma omp parallel num_threads(2)
    if (omp_get_thread_num() == 0)
        for (int i = 0; i < n; i++) {
#pragma omp parallel if (0)
            sink++;
        }
    printf("parallel if (0), nested in a 2-thread region: %.3f us per region\n",
           (now() - t) / n * 1e6);
    t = now();
    for (int i = 0; i < n; i++) {
#pragma omp parallel for if (0) schedule(static)
        for (int j = 0; j < 4; j++) sink++;
    }
    printf("parallel for if (0): %.3f us per region\n", (now() - t) / n * 1e6);
    t = now();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 4; j++) sink++;
    printf("the same loop without a region: %.3f us\n", (now() - t) / n * 1e6);
    return 0;
}
