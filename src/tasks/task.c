/* The task registry and what every task shares: whole-split evaluation. */
#include "tasks/task.h"

#include <string.h>

#include "core/error.h"

const sf_task_def *const sf_task_registry[] = {&sf_task_forecast, &sf_task_classify, &sf_task_lm};
const int sf_task_registry_n = (int)(sizeof sf_task_registry / sizeof *sf_task_registry);

const sf_task_def *sf_task_find(const char *name) {
    for (int i = 0; i < sf_task_registry_n; i++)
        if (strcmp(sf_task_registry[i]->info.name, name) == 0) return sf_task_registry[i];
    return NULL;
}

void sf_task_names(char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < sf_task_registry_n && len + 1 < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? ", " : "",
                                sf_task_registry[i]->info.name);
}

void sf_task_evaluate(const sf_task *t, sf_model *m, sf_split s, int batch, sf_metrics *out) {
    int n = t->ops->n_examples(t, s);
    if (batch > n) batch = n;
    float *x = sf_malloc((size_t)batch * t->x_floats * sizeof(float));
    float *y = sf_malloc((size_t)batch * t->y_floats * sizeof(float));
    float *o = sf_malloc((size_t)batch * t->y_floats * sizeof(float));
    int *idx = sf_malloc((size_t)batch * sizeof(int));
    double acc[SF_MAX_METRICS] = {0};
    for (int start = 0; start < n; start += batch) {
        int k = n - start < batch ? n - start : batch;
        for (int i = 0; i < k; i++) idx[i] = start + i;
        t->ops->gather(t, s, idx, k, x, y);
        sf_model_infer(m, x, o, t->y_floats, k); /* in chunks, one thread each */
        t->ops->metrics_add(t, o, y, k, acc);
    }
    t->ops->metrics_finish(t, acc, n, out);
    free(x);
    free(y);
    free(o);
    free(idx);
}

void sf_task_close(sf_task *t) {
    if (t->ops && t->ops->close) t->ops->close(t);
    memset(t, 0, sizeof *t);
}
