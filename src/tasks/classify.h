/* The classify task's class probabilities, for ensembles (seqformer eval --ensemble): after
 * sf_task_evaluate, read the probabilities of the split just scored; put back an average over
 * several models and recompute the metrics (and the report's confusion matrix) from it. */
#ifndef SF_TASKS_CLASSIFY_H
#define SF_TASKS_CLASSIFY_H

#include "tasks/task.h"

/* [*n, *K] row-major, owned by the task; NULL unless t is a classify task that has scored a split */
const float *sf_classify_probabilities(const sf_task *t, long *n, int *K);
/* p [n, K]: rows summing to 1, n the examples of the last split scored; SF_ERR otherwise */
int sf_classify_set_probabilities(sf_task *t, const float *p, long n, sf_metrics *out);

#endif
