/* The classify task's class probabilities, for ensembles (seqformer eval --ensemble): after
 * sf_task_evaluate, read the probabilities of the split just scored; put back an average over
 * several models and recompute the metrics (and the report's confusion matrix) from it. */
#ifndef SF_TASKS_CLASSIFY_H
#define SF_TASKS_CLASSIFY_H

#include "tasks/task.h"

/* [*n, *K] row-major, owned by the task, and the K class names; NULL unless t is a classify task
 * that has scored a split */
const float *sf_classify_probabilities(const sf_task *t, long *n, int *K, char *const **names);
/* p [n, K]: rows summing to 1, n the examples of the last split scored; SF_ERR otherwise */
int sf_classify_set_probabilities(sf_task *t, const float *p, long n, sf_metrics *out);

/* An ensemble: prob [n, K] holds --model's probabilities on every series of the file `data` (in file
 * order; classes `names`); each checkpoint of the comma-separated list scores the same file with
 * its own stored protocol (normalisation), and prob becomes the mean over all the models
 * (*members of them). The classes must be the same, in the same order. */
int sf_classify_add_ensemble(const char *list, const char *data, char *const *names, int K, int n,
                             float *prob, int *members);

#endif
